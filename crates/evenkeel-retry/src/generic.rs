//! Retry for any request type, with a policy that says how to copy it.
//!
//! The HTTP layer ([`RetryLayer`](crate::RetryLayer)) knows how to keep an
//! `http::Request` for resending. For other request types (a protocol of
//! your own, a message type in a queue client), [`GenericRetryLayer`] does
//! the same scheduling — server waits, backoff, cap, deadline, budget,
//! events — and asks a [`ResendPolicy`] whether and how to send again.
//!
//! ```
//! use std::time::Duration;
//! use evenkeel_core::{Classify, Outcome, Signal};
//! use evenkeel_retry::RetryLayer;
//! use evenkeel_retry::generic::ResendPolicy;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! /// Replies are strings; "busy" means try again in 10 ms.
//! #[derive(Clone)]
//! struct Busy;
//! impl Classify<String> for Busy {
//!     fn classify_response(&self, reply: &String) -> Outcome {
//!         if reply == "busy" {
//!             Outcome::Overloaded(Signal::wait(Duration::from_millis(10)))
//!         } else {
//!             Outcome::Success
//!         }
//!     }
//! }
//!
//! /// Queries are plain strings and always safe to repeat.
//! struct Queries;
//! impl ResendPolicy<String> for Queries {
//!     fn may_retry(&self, outcome: &Outcome, _: &String) -> bool {
//!         !outcome.is_hopeless()
//!     }
//!     fn clone_request(&self, query: &String) -> Option<String> {
//!         Some(query.clone())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), evenkeel_core::BoxError> {
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let counter = calls.clone();
//! let upstream = service_fn(move |q: String| {
//!     let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     async move {
//!         Ok::<_, std::convert::Infallible>(if n == 0 { "busy".to_string() } else { q })
//!     }
//! });
//! let layer = RetryLayer::builder().classifier(Busy).policy(Queries).build_generic()?;
//! let reply = layer.layer(upstream).oneshot("ping".to_string()).await?;
//! assert_eq!(reply, "ping");
//! assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use evenkeel_core::error::TimedOut;
use evenkeel_core::event::{Event, GiveUp};
use evenkeel_core::ext::AttemptContext;
use evenkeel_core::{BoxError, Classify, Outcome, clock};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use crate::backoff::BackoffState;
use crate::budget::RetryBudget;
use crate::config::Config;
use crate::future::{
    arm, attempt_until, deadline_error, give_up, is_local_refusal, plan, timer_fired,
    total_deadline,
};

/// Decides whether, and how, a request of type `Req` is sent again.
pub trait ResendPolicy<Req>: Send + Sync + 'static {
    /// `true` when `request` may be sent again after `outcome` (never asked
    /// about successes).
    fn may_retry(&self, outcome: &Outcome, request: &Req) -> bool;

    /// A copy of `request` for the next attempt, or `None` when it cannot be
    /// copied (the attempt's result then goes to the caller). Called once
    /// per attempt that may need a successor, before the attempt is sent.
    fn clone_request(&self, request: &Req) -> Option<Req>;

    /// The caller's own deadline for `request`, if it carries one; the
    /// layer keeps the earlier of it and its total deadline. The default
    /// reads none.
    fn deadline(&self, request: &Req) -> Option<Instant> {
        let _ = request;
        None
    }

    /// Hands the attempt's [`AttemptContext`] (attempt number, deadline) to
    /// `request` before it is sent, so the layers below can read it. The
    /// default drops it: a request type without a place for it cannot
    /// carry it.
    fn set_context(&self, request: &mut Req, context: AttemptContext) {
        let _ = (request, context);
    }
}

/// A [`Layer`] that retries any request type; see the [module docs](self).
///
/// Made by [`RetryBuilder::build_generic`](crate::RetryBuilder::build_generic).
/// Clones share one configuration and budget.
pub struct GenericRetryLayer<C, P> {
    config: Arc<Config<C, P>>,
}

impl<C, P> GenericRetryLayer<C, P> {
    pub(crate) fn from_config(config: Arc<Config<C, P>>) -> Self {
        GenericRetryLayer { config }
    }

    /// The budget shared by every service of this layer.
    pub fn budget(&self) -> &RetryBudget {
        &self.config.budget
    }
}

impl<C, P> Clone for GenericRetryLayer<C, P> {
    fn clone(&self) -> Self {
        GenericRetryLayer {
            config: Arc::clone(&self.config),
        }
    }
}

impl<C: fmt::Debug, P: fmt::Debug> fmt::Debug for GenericRetryLayer<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenericRetryLayer")
            .field("config", &*self.config)
            .finish()
    }
}

impl<S, C, P> Layer<S> for GenericRetryLayer<C, P> {
    type Service = GenericRetry<S, C, P>;

    fn layer(&self, inner: S) -> Self::Service {
        GenericRetry {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// A service that retries any request type; made by [`GenericRetryLayer`].
pub struct GenericRetry<S, C, P> {
    inner: S,
    config: Arc<Config<C, P>>,
}

impl<S, C, P> GenericRetry<S, C, P> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C, P> Clone for GenericRetry<S, C, P> {
    fn clone(&self) -> Self {
        GenericRetry {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug, P: fmt::Debug> fmt::Debug for GenericRetry<S, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenericRetry")
            .field("inner", &self.inner)
            .field("config", &*self.config)
            .finish()
    }
}

impl<S, Req, C, P> Service<Req> for GenericRetry<S, C, P>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<S::Response>,
    P: ResendPolicy<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = GenericFuture<S, Req, C, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Req) -> Self::Future {
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        config.budget.deposit();
        let now = clock::now();
        let deadline = total_deadline(&config, config.policy.deadline(&request), now);
        let spare = config.policy.clone_request(&request);
        config
            .policy
            .set_context(&mut request, AttemptContext::new(1, deadline));
        let future = service.call(request);
        // The attempt's timer is made only if the attempt does not finish
        // at once.
        let until = attempt_until(&config, deadline, now);
        GenericFuture {
            state: GenericState::Calling { future },
            timer: None,
            until,
            deadline,
            service,
            config,
            spare,
            attempt: 1,
            backoff: BackoffState::default(),
        }
    }
}

pin_project! {
    /// The future of [`GenericRetry`].
    pub struct GenericFuture<S, Req, C, P>
    where
        S: Service<Req>,
    {
        #[pin]
        state: GenericState<S::Future>,
        #[pin]
        timer: Option<Sleep>,
        // When the attempt in flight must end: the timer is armed for it
        // only once the attempt has to be waited for.
        until: Option<Instant>,
        deadline: Option<Instant>,
        service: S,
        config: Arc<Config<C, P>>,
        // The copy for the next attempt.
        spare: Option<Req>,
        attempt: u32,
        backoff: BackoffState,
    }
}

pin_project! {
    #[project = GenericStateProj]
    enum GenericState<F> {
        Calling { #[pin] future: F },
        Waiting,
        Readying,
        Done,
    }
}

impl<S, Req, C, P> Future for GenericFuture<S, Req, C, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response>,
    P: ResendPolicy<Req>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                GenericStateProj::Calling { future } => {
                    let result: Result<S::Response, BoxError> = match future.poll(cx) {
                        Poll::Ready(result) => result.map_err(Into::into),
                        Poll::Pending => {
                            if let Some(until) = this.until.take() {
                                arm(this.timer.as_mut(), Some(until));
                            }
                            if !timer_fired(this.timer.as_mut(), cx) {
                                return Poll::Pending;
                            }
                            if this.deadline.is_some_and(|d| clock::now() >= d) {
                                this.state.set(GenericState::Done);
                                return Poll::Ready(Err(deadline_error(
                                    this.config,
                                    None,
                                    *this.attempt,
                                )));
                            }
                            let after = this.config.attempt_timeout.unwrap_or_default();
                            Err(TimedOut::after(after).into())
                        }
                    };
                    let outcome = match &result {
                        Ok(response) => this.config.classifier.classify_response(response),
                        Err(error) => this.config.classifier.classify_error(&**error),
                    };
                    if outcome.is_success() {
                        this.state.set(GenericState::Done);
                        return Poll::Ready(result);
                    }
                    let arrived = clock::now();
                    let decision = match this.spare.as_ref() {
                        _ if is_local_refusal(&outcome) => Err(GiveUp::Local),
                        None => Err(GiveUp::BodyNotReplayable),
                        Some(spare) if !this.config.policy.may_retry(&outcome, spare) => {
                            Err(if outcome.retry_forbidden() {
                                GiveUp::Forbidden
                            } else {
                                GiveUp::NotRetryable
                            })
                        }
                        Some(_) => plan(
                            this.config,
                            &outcome,
                            *this.attempt,
                            arrived,
                            *this.deadline,
                            this.backoff,
                        )
                        .and_then(|wait| {
                            if this.config.budget.withdraw() {
                                Ok(wait)
                            } else {
                                Err(GiveUp::Budget)
                            }
                        }),
                    };
                    match decision {
                        Err(reason) => {
                            if reason != GiveUp::NotRetryable {
                                give_up(this.config, reason, &outcome, *this.attempt);
                            }
                            this.state.set(GenericState::Done);
                            return Poll::Ready(result);
                        }
                        Ok((wait, server_directed)) => {
                            this.config.events.emit(|| Event::Retry {
                                attempt: *this.attempt + 1,
                                outcome: &outcome,
                                wait,
                                server_directed,
                            });
                            drop(result);
                            arm(this.timer.as_mut(), Some(arrived + wait));
                            this.state.set(GenericState::Waiting);
                        }
                    }
                }
                GenericStateProj::Waiting => {
                    if let Some(timer) = this.timer.as_mut().as_pin_mut() {
                        ready!(timer.poll(cx));
                    }
                    arm(this.timer.as_mut(), *this.deadline);
                    this.state.set(GenericState::Readying);
                }
                GenericStateProj::Readying => {
                    let ready = match this.service.poll_ready(cx) {
                        Poll::Ready(ready) => ready,
                        Poll::Pending => {
                            if timer_fired(this.timer.as_mut(), cx) {
                                this.state.set(GenericState::Done);
                                return Poll::Ready(Err(deadline_error(
                                    this.config,
                                    None,
                                    *this.attempt,
                                )));
                            }
                            return Poll::Pending;
                        }
                    };
                    if let Err(error) = ready {
                        this.state.set(GenericState::Done);
                        return Poll::Ready(Err(error.into()));
                    }
                    *this.attempt += 1;
                    let mut request = this.spare.take().expect("a retry is scheduled with a copy");
                    *this.spare = this.config.policy.clone_request(&request);
                    let context = AttemptContext::new(*this.attempt, *this.deadline);
                    this.config.policy.set_context(&mut request, context);
                    let future = this.service.call(request);
                    *this.until = attempt_until(this.config, *this.deadline, clock::now());
                    this.state.set(GenericState::Calling { future });
                }
                GenericStateProj::Done => panic!("GenericFuture polled after completion"),
            }
        }
    }
}

impl<S, Req, C, P> fmt::Debug for GenericFuture<S, Req, C, P>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenericFuture")
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}
