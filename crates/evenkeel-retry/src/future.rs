//! The retry layer's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use evenkeel_core::body::{Replay, ReplayBody};
use evenkeel_core::error::{DeadlineExceeded, TimedOut};
use evenkeel_core::event::{Event, GiveUp};
use evenkeel_core::ext::{AttemptContext, Deadline, keep_head, outcome_or, resend_head};
use evenkeel_core::timer::LazyTimer;
use evenkeel_core::{BoxError, Classify, Outcome, clock};
use http::{HeaderMap, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};
use tower_service::Service;

use crate::backoff::{BackoffState, secs_to_duration};
use crate::body::ResponseBody;
use crate::config::Config;
use crate::info::RetryInfo;
use crate::policy::Policy;

pin_project! {
    /// The future returned by [`Retry`](crate::Retry).
    ///
    /// Drives the attempts of one request: sends, classifies, waits, re-polls
    /// the inner service's readiness and sends again. Dropping it cancels the
    /// attempt in flight and releases everything it holds.
    pub struct ResponseFuture<S, B, RB, C, P>
    where
        S: Service<Request<ReplayBody<B>>>,
        RB: Body,
    {
        #[pin]
        state: State<S::Future, RB>,
        // One timer, armed for whatever comes first of: the attempt timeout
        // or the total deadline while calling; the end of the wait before a
        // retry; the bound on reading a body to classify it. Made only when
        // one of those has to be waited for: an attempt that finishes at once
        // makes none, and the future stays small for the layers that hold it.
        timer: LazyTimer,
        // When the attempt in flight must end: the timer is armed for it
        // only once the attempt has to be waited for.
        until: Option<Instant>,
        deadline: Option<Instant>,
        service: S,
        config: Arc<Config<C, P>>,
        parts: http::request::Parts,
        // The request's context: its attempt number, deadline, and the
        // verdict on each attempt's answer.
        context: Option<AttemptContext>,
        replay: Replay<B>,
        next_body: Option<ReplayBody<B>>,
        attempt: u32,
        waited: Duration,
        backoff: BackoffState,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, RB: Body> {
        Calling { #[pin] future: F },
        Peeking { peek: Box<Peek<RB>> },
        Waiting { drain: Option<Pin<Box<ResponseBody<RB>>>>, drained: usize },
        Readying,
        Done,
    }
}

/// A response whose body is being read to classify it. Boxed: rare, and
/// it keeps the future small.
struct Peek<RB> {
    head: Option<http::response::Parts>,
    body: Option<Pin<Box<RB>>>,
    buf: Vec<u8>,
    trailers: Option<HeaderMap>,
    outcome: Outcome,
    arrived: Instant,
}

/// What to do after an attempt.
enum Step<B> {
    Return(Option<GiveUp>),
    Peek,
    Retry {
        wait: Duration,
        server_directed: bool,
        body: ReplayBody<B>,
    },
}

impl<S, B, RB, C, P> ResponseFuture<S, B, RB, C, P>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    RB: Body,
{
    pub(crate) fn start(mut service: S, config: Arc<Config<C, P>>, request: Request<B>) -> Self {
        let now = clock::now();
        config.budget.deposit_at(now);
        let (mut parts, body) = request.into_parts();
        let deadline = total_deadline(&config, Deadline::of_parts(&parts), now);
        let context = match parts.extensions.get_mut::<AttemptContext>() {
            Some(context) => {
                context.set_deadline(deadline);
                Some(context.clone())
            }
            None => deadline.map(|d| {
                // Every layer below learns the deadline from it. A request
                // without one carries no context: an absent context means
                // just that, and costs no allocation.
                let context = AttemptContext::new(1, Some(d));
                parts.extensions.insert(context.clone());
                context
            }),
        };
        let mut replay = Replay::new(body, config.replay_cap);
        let first = replay
            .body()
            .expect("a new replay always yields its first body");
        let kept = keep_head(&mut parts);
        let future = service.call(Request::from_parts(parts, first));
        // The attempt's timer is made only if the attempt does not finish
        // at once.
        let until = attempt_until(&config, deadline, now);
        ResponseFuture {
            state: State::Calling { future },
            timer: LazyTimer::new(),
            until,
            deadline,
            service,
            config,
            parts: kept,
            context,
            replay,
            next_body: None,
            attempt: 1,
            waited: Duration::ZERO,
            backoff: BackoffState::default(),
        }
    }
}

/// The deadline of a call starting now: the layer's total deadline from
/// now, or the caller's own `outer` one if that is earlier.
pub(crate) fn total_deadline<C, P>(
    config: &Config<C, P>,
    outer: Option<Instant>,
    now: Instant,
) -> Option<Instant> {
    let own = config.deadline.map(|total| now + total);
    evenkeel_core::ext::earlier(own, outer)
}

/// The request of a later attempt, which starts in the context (a new
/// attempt number; the verdict on the last one turns stale).
fn retry_request<B>(
    parts: &http::request::Parts,
    context: &mut Option<AttemptContext>,
    body: B,
) -> Request<B> {
    let context = context.get_or_insert_with(|| AttemptContext::new(1, None));
    context.begin_attempt();
    Request::from_parts(resend_head(parts, Some(context)), body)
}

/// The response handed to the caller: its body bounded by the deadline
/// and the idle timeout between frames.
fn bounded<RB: Body, C, P>(
    response: Response<ResponseBody<RB>>,
    config: &Config<C, P>,
    deadline: Option<Instant>,
) -> Response<ResponseBody<RB>> {
    response.map(|body| body.bounded(deadline, config.body_idle_timeout))
}

/// When the attempt starting now must end: its own timeout or the total
/// deadline, whichever is first.
pub(crate) fn attempt_until<C, P>(
    config: &Config<C, P>,
    deadline: Option<Instant>,
    now: Instant,
) -> Option<Instant> {
    let own = config.attempt_timeout.map(|t| now + t);
    match (own, deadline) {
        (Some(a), Some(d)) => Some(a.min(d)),
        (a, None) => a,
        (None, d) => d,
    }
}

/// Arms `timer` for `until` (or disarms it), reusing the timer entry when
/// there is one.
pub(crate) fn arm(mut timer: Pin<&mut Option<Sleep>>, until: Option<Instant>) {
    match (timer.as_mut().as_pin_mut(), until) {
        (Some(sleep), Some(until)) => sleep.reset(until),
        (None, Some(until)) => timer.set(Some(sleep_until(until))),
        (Some(_), None) => timer.set(None),
        (None, None) => {}
    }
}

pub(crate) fn timer_fired(timer: Pin<&mut Option<Sleep>>, cx: &mut Context<'_>) -> bool {
    timer.as_pin_mut().is_some_and(|t| t.poll(cx).is_ready())
}

impl<S, B, RB, C, P> Future for ResponseFuture<S, B, RB, C, P>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    RB: Body,
    RB::Error: Into<BoxError>,
    C: Classify<Response<RB>>,
    P: Policy,
{
    type Output = Result<Response<ResponseBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            // Each arm either returns, or yields the outcome of an attempt.
            let (outcome, last, arrived, peeked): (Outcome, Self::Output, Instant, bool) =
                match this.state.as_mut().project() {
                    StateProj::Calling { future } => {
                        let result = match future.poll(cx) {
                            Poll::Ready(result) => result.map_err(Into::into),
                            Poll::Pending => {
                                if let Some(until) = this.until.take() {
                                    this.timer.arm(until);
                                }
                                if !this.timer.poll_fired(cx) {
                                    return Poll::Pending;
                                }
                                if this.deadline.is_some_and(|d| clock::now() >= d) {
                                    return Poll::Ready(Err(deadline_error(
                                        this.config,
                                        this.context.as_ref(),
                                        *this.attempt,
                                    )));
                                }
                                let after = this.config.attempt_timeout.unwrap_or_default();
                                Err(TimedOut::after(after).into())
                            }
                        };
                        match result {
                            Ok(response) => {
                                let outcome = outcome_or(this.context.as_ref(), false, || {
                                    this.config.classifier.classify_response(&response)
                                });
                                if outcome.is_success() && *this.attempt == 1 {
                                    // The path every healthy request takes: no
                                    // bookkeeping beyond the body wrapper.
                                    this.state.set(State::Done);
                                    let response = response.map(ResponseBody::inner);
                                    return Poll::Ready(Ok(bounded(
                                        response,
                                        this.config,
                                        *this.deadline,
                                    )));
                                }
                                let arrived = clock::now();
                                (
                                    outcome,
                                    Ok(response.map(ResponseBody::inner)),
                                    arrived,
                                    false,
                                )
                            }
                            Err(error) => {
                                let outcome = outcome_or(this.context.as_ref(), true, || {
                                    this.config.classifier.classify_error(&*error)
                                });
                                (outcome, Err(error), clock::now(), false)
                            }
                        }
                    }
                    StateProj::Peeking { peek } => {
                        let Peek {
                            head,
                            body,
                            buf,
                            trailers,
                            outcome,
                            arrived,
                        } = &mut **peek;
                        let limit_hit = this.timer.poll_fired(cx);
                        if limit_hit && this.deadline.is_some_and(|d| clock::now() >= d) {
                            return Poll::Ready(Err(deadline_error(
                                this.config,
                                this.context.as_ref(),
                                *this.attempt,
                            )));
                        }
                        let mut error = None;
                        while !limit_hit && buf.len() < this.config.peek_limit {
                            let Some(b) = body.as_mut() else { break };
                            match b.as_mut().poll_frame(cx) {
                                Poll::Pending => return Poll::Pending,
                                Poll::Ready(None) => {
                                    *body = None;
                                    break;
                                }
                                // An error ends the peek; the caller sees it
                                // after the bytes read before it.
                                Poll::Ready(Some(Err(e))) => {
                                    error = Some(e);
                                    *body = None;
                                    break;
                                }
                                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                                    Ok(mut data) => {
                                        while data.has_remaining() {
                                            let chunk = data.chunk();
                                            buf.extend_from_slice(chunk);
                                            let n = chunk.len();
                                            data.advance(n);
                                        }
                                    }
                                    Err(frame) => {
                                        if let Ok(t) = frame.into_trailers() {
                                            *trailers = Some(t);
                                            *body = None;
                                            break;
                                        }
                                    }
                                },
                            }
                        }
                        let refined = this.config.classifier.classify_body(*outcome, buf);
                        let head = head.take().expect("peek head is taken once");
                        let prefix = Bytes::from(std::mem::take(buf));
                        let response = Response::from_parts(
                            head,
                            ResponseBody::peeked(prefix, trailers.take(), error, body.take()),
                        );
                        (refined, Ok(response), *arrived, true)
                    }
                    StateProj::Waiting { drain, drained } => {
                        // Drain the discarded response while waiting, so its
                        // connection can go back to the pool.
                        while let Some(body) = drain.as_mut() {
                            if *drained >= this.config.drain_limit {
                                *drain = None;
                                break;
                            }
                            match body.as_mut().poll_frame(cx) {
                                Poll::Ready(Some(Ok(frame))) => {
                                    *drained += frame.data_ref().map_or(0, |d| d.remaining());
                                }
                                Poll::Ready(_) => *drain = None,
                                Poll::Pending => break,
                            }
                        }
                        if this.timer.is_armed() && !this.timer.poll_fired(cx) {
                            return Poll::Pending;
                        }
                        // Readiness may take a while; it is bounded by the
                        // deadline.
                        match *this.deadline {
                            Some(deadline) => this.timer.arm(deadline),
                            None => this.timer.disarm(),
                        }
                        this.state.set(State::Readying);
                        continue;
                    }
                    StateProj::Readying => {
                        let ready = match this.service.poll_ready(cx) {
                            Poll::Ready(ready) => ready,
                            Poll::Pending => {
                                if this.timer.poll_fired(cx) {
                                    return Poll::Ready(Err(deadline_error(
                                        this.config,
                                        this.context.as_ref(),
                                        *this.attempt,
                                    )));
                                }
                                return Poll::Pending;
                            }
                        };
                        if let Err(error) = ready {
                            this.state.set(State::Done);
                            return Poll::Ready(Err(error.into()));
                        }
                        *this.attempt += 1;
                        let body = this
                            .next_body
                            .take()
                            .expect("a retry is scheduled with its body");
                        let request = retry_request(this.parts, this.context, body);
                        let future = this.service.call(request);
                        *this.until = attempt_until(this.config, *this.deadline, clock::now());
                        this.state.set(State::Calling { future });
                        continue;
                    }
                    StateProj::Done => panic!("ResponseFuture polled after completion"),
                };

            let step = decide::<C, P, B, RB>(
                this.config,
                &outcome,
                *this.attempt,
                this.parts,
                this.replay,
                arrived,
                *this.deadline,
                !peeked && last.is_ok(),
                this.backoff,
            );
            match step {
                Step::Return(reason) => {
                    this.state.set(State::Done);
                    if let Some(reason) = reason
                        && reason != GiveUp::NotRetryable
                    {
                        give_up(this.config, reason, &outcome, *this.attempt);
                    }
                    let notable = reason.is_some_and(|r| r != GiveUp::NotRetryable);
                    let last = last.map(|r| bounded(r, this.config, *this.deadline));
                    return Poll::Ready(last.map(|mut response| {
                        if *this.attempt > 1 || notable {
                            response.extensions_mut().insert(RetryInfo {
                                attempts: *this.attempt,
                                waited: *this.waited,
                                gave_up: reason.filter(|_| notable),
                            });
                        }
                        response
                    }));
                }
                Step::Peek => {
                    let response = last.expect("only responses are peeked");
                    let (head, body) = response.into_parts();
                    let body = match body.into_inner() {
                        Some(body) => body,
                        None => unreachable!("responses are peeked before any wrapping"),
                    };
                    let peek_end = clock::now() + this.config.peek_timeout;
                    this.timer
                        .arm(this.deadline.map_or(peek_end, |d| d.min(peek_end)));
                    this.state.set(State::Peeking {
                        peek: Box::new(Peek {
                            head: Some(head),
                            body: Some(Box::pin(body)),
                            buf: Vec::new(),
                            trailers: None,
                            outcome,
                            arrived,
                        }),
                    });
                }
                Step::Retry {
                    wait,
                    server_directed,
                    body,
                } => {
                    this.config.events.emit(|| Event::Retry {
                        attempt: *this.attempt + 1,
                        outcome: &outcome,
                        wait,
                        server_directed,
                    });
                    #[cfg(feature = "tracing")]
                    tracing::debug!(
                        attempt = *this.attempt + 1,
                        outcome = outcome.as_str(),
                        wait_ms = wait.as_millis() as u64,
                        server_directed,
                        "retrying request"
                    );
                    *this.waited += wait;
                    *this.next_body = Some(body);
                    this.timer.arm(arrived + wait);
                    this.state.set(State::Waiting {
                        drain: last.ok().map(|r| Box::pin(r.into_body())),
                        drained: 0,
                    });
                }
            }
        }
    }
}

/// The part of the decision every retry layer shares: attempts left, the
/// cap on server waits, the wait itself (`max(backoff, server wait)`, jitter
/// only adding to a server wait) and whether it fits the deadline. Returns
/// the wait and whether the server directed it.
pub(crate) fn plan<C, P>(
    config: &Config<C, P>,
    outcome: &Outcome,
    attempt: u32,
    arrived: Instant,
    deadline: Option<Instant>,
    backoff: &mut BackoffState,
) -> Result<(Duration, bool), GiveUp> {
    if attempt >= config.max_attempts {
        return Err(GiveUp::Attempts);
    }
    let server_wait = outcome.server_wait();
    if server_wait.is_some_and(|w| w > config.max_server_wait) {
        return Err(GiveUp::WaitTooLong);
    }
    let backoff_policy = if outcome.is_pushback() {
        config.throttle_backoff()
    } else {
        &config.backoff
    };
    let backoff_wait = backoff_policy.delay(attempt - 1, backoff, &config.jitter);
    let (wait, server_directed) = match server_wait {
        // Jitter on a server wait only ever adds: up to 10 % of it, at most
        // one second, so clients told the same time do not return together.
        Some(server) if server >= backoff_wait => {
            let spread = (server.as_secs_f64() * 0.1).min(1.0);
            let extra = secs_to_duration(spread * config.jitter.unit());
            (server.saturating_add(extra), true)
        }
        _ => (backoff_wait, false),
    };
    if deadline.is_some_and(|d| arrived + wait >= d) {
        return Err(GiveUp::Deadline);
    }
    Ok((wait, server_directed))
}

/// A refusal by the stack itself: a wait it imposes on itself that could
/// not fit. Nothing went on the wire, so it is no attempt to retry; the
/// layer that refused already waited as long as it could.
pub(crate) fn is_local_refusal(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Failed(f) if matches!(
            f.kind,
            evenkeel_core::FailureKind::LocalQuota | evenkeel_core::FailureKind::LocalOverload
        )
    )
}

/// Reports the deadline and makes the caller's error. The last attempt's
/// verdict no longer describes the answer: layers above judge this one.
pub(crate) fn deadline_error<C, P>(
    config: &Config<C, P>,
    context: Option<&AttemptContext>,
    attempts: u32,
) -> BoxError {
    if let Some(context) = context {
        context.forget_verdict();
    }
    let outcome = Outcome::Failed(evenkeel_core::FailureKind::Deadline.into());
    give_up(config, GiveUp::Deadline, &outcome, attempts);
    DeadlineExceeded::new().into()
}

pub(crate) fn give_up<C, P>(
    config: &Config<C, P>,
    reason: GiveUp,
    outcome: &Outcome,
    attempts: u32,
) {
    config.events.emit(|| Event::GaveUp {
        reason,
        outcome,
        attempts,
    });
    #[cfg(feature = "tracing")]
    tracing::debug!(
        reason = reason.as_str(),
        outcome = outcome.as_str(),
        attempts,
        "not retrying request"
    );
}

/// Decides what follows an attempt. Budget is withdrawn only when the
/// answer is a retry.
#[allow(clippy::too_many_arguments)]
fn decide<C, P, B, RB>(
    config: &Config<C, P>,
    outcome: &Outcome,
    attempt: u32,
    parts: &http::request::Parts,
    replay: &mut Replay<B>,
    arrived: Instant,
    deadline: Option<Instant>,
    may_peek: bool,
    backoff: &mut BackoffState,
) -> Step<B>
where
    P: Policy,
    C: Classify<Response<RB>>,
{
    if outcome.is_success() {
        return Step::Return(None);
    }
    if is_local_refusal(outcome) {
        return Step::Return(Some(GiveUp::Local));
    }
    if !config.policy.may_retry(outcome, parts) {
        let reason = if outcome.retry_forbidden() {
            GiveUp::Forbidden
        } else if matches!(outcome, Outcome::ClientError) || outcome.is_hopeless() {
            GiveUp::NotRetryable
        } else if !evenkeel_core::resend::is_idempotent(&parts.method, &parts.headers) {
            GiveUp::NotIdempotent
        } else {
            GiveUp::NotRetryable
        };
        return Step::Return(Some(reason));
    }
    let (wait, server_directed) = match plan(config, outcome, attempt, arrived, deadline, backoff) {
        Ok(wait) => wait,
        Err(reason) => return Step::Return(Some(reason)),
    };
    if may_peek && Classify::<Response<RB>>::wants_body(&config.classifier, outcome) {
        return Step::Peek;
    }
    let Some(body) = replay.body() else {
        return Step::Return(Some(GiveUp::BodyNotReplayable));
    };
    if !config.budget.withdraw() {
        return Step::Return(Some(GiveUp::Budget));
    }
    Step::Retry {
        wait,
        server_directed,
        body,
    }
}

impl<S, B, RB, C, P> fmt::Debug for ResponseFuture<S, B, RB, C, P>
where
    S: Service<Request<ReplayBody<B>>>,
    RB: Body,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempt", &self.attempt)
            .field("waited", &self.waited)
            .finish_non_exhaustive()
    }
}
