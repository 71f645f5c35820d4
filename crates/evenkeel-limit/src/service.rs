use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use evenkeel_core::ext::AttemptContext;
use evenkeel_core::{Classify, HttpClassifier, clock};
use http::{Request, Response};
use tokio::time::Sleep;
use tower_service::Service;

use crate::algorithm::{Algorithm, Fixed};
use crate::body::LimitBody;
use crate::future::ResponseFuture;
use crate::handle::LimitHandle;
use crate::reject::{Reject, RejectWithError};
use crate::shared::{Permit, Shared, Start, Waiting};

/// A service that holds requests to the limit of its [`LimitLayer`].
///
/// [`poll_ready`](Service::poll_ready) takes a permit (waiting in the shared
/// queue when none is free), then readies the inner service; the permit is
/// returned when the response future completes or is dropped. A rejected
/// request (queue full, waited too long, or no permit in reject mode) is
/// still `Ready`: its `call` never reaches the inner service and answers as
/// the layer's [`Reject`] says.
///
/// [`LimitLayer`]: crate::LimitLayer
pub struct Limit<S, A = Fixed, C = HttpClassifier, R = RejectWithError> {
    inner: S,
    shared: Arc<Shared<A, C, R>>,
    state: State<A, C, R>,
    timer: Option<Pin<Box<Sleep>>>,
}

enum State<A, C, R> {
    Idle,
    Waiting(Waiting<A, C, R>),
    Ready(Permit<A, C, R>),
    Rejected,
}

impl<S, A, C, R> Limit<S, A, C, R> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<A, C, R>>) -> Self {
        Limit {
            inner,
            shared,
            state: State::Idle,
            timer: None,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service (a permit this service held is returned).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, A, C, R> Limit<S, A, C, R>
where
    A: Algorithm,
    C: Send + Sync + 'static,
    R: Send + Sync + 'static,
{
    /// A view of the shared limiter.
    pub fn handle(&self) -> LimitHandle {
        LimitHandle::new(self.shared.clone())
    }
}

impl<S: Clone, A, C, R> Clone for Limit<S, A, C, R> {
    /// A clone shares the limiter but holds no permit: it must be readied
    /// on its own.
    fn clone(&self) -> Self {
        Limit::from_shared(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, A, C, R> fmt::Debug for Limit<S, A, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::Waiting(_) => "waiting",
            State::Ready(_) => "ready",
            State::Rejected => "rejected",
        };
        f.debug_struct("Limit")
            .field("inner", &self.inner)
            .field("state", &state)
            .field("limit", &self.shared.gate.limit())
            .field("in_flight", &self.shared.gate.in_flight())
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, B, A, C, R> Service<Request<ReqBody>> for Limit<S, A, C, R>
where
    S: Service<Request<ReqBody>, Response = Response<B>>,
    A: Algorithm,
    C: Classify<Response<B>> + Send + Sync + 'static,
    R: Reject<B, S::Error> + Send + Sync + 'static,
{
    type Response = Response<LimitBody<B>>;
    type Error = R::Error;
    type Future = ResponseFuture<S::Future, A, C, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            match &mut self.state {
                State::Ready(_) => return self.inner.poll_ready(cx).map_err(R::convert),
                State::Rejected => return Poll::Ready(Ok(())),
                State::Idle => {
                    let mut key = None;
                    match self.shared.gate.poll_acquire(&mut key, cx) {
                        Poll::Ready(Ok(())) => {
                            self.state = State::Ready(Permit::new(Arc::clone(&self.shared)));
                        }
                        Poll::Ready(Err(_full)) => self.reject(),
                        Poll::Pending => {
                            self.state = State::Waiting(Waiting {
                                key,
                                shared: Arc::clone(&self.shared),
                            });
                            if let Some(wait) = self.shared.max_wait {
                                let deadline = clock::now() + wait;
                                match &mut self.timer {
                                    Some(timer) => timer.as_mut().reset(deadline),
                                    None => {
                                        self.timer =
                                            Some(Box::pin(tokio::time::sleep_until(deadline)))
                                    }
                                }
                            }
                        }
                    }
                }
                State::Waiting(waiting) => {
                    match self.shared.gate.poll_acquire(&mut waiting.key, cx) {
                        Poll::Ready(_) => {
                            self.state = State::Ready(Permit::new(Arc::clone(&self.shared)));
                        }
                        Poll::Pending => {
                            let expired = match (&self.shared.max_wait, &mut self.timer) {
                                (Some(_), Some(timer)) => timer.as_mut().poll(cx).is_ready(),
                                _ => false,
                            };
                            if !expired {
                                return Poll::Pending;
                            }
                            // Dropping the place in the queue gives it up
                            // (and returns a permit granted meanwhile).
                            self.reject();
                        }
                    }
                }
            }
        }
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Ready(permit) => {
                let start = A::ADAPTIVE.then(|| Start {
                    at: clock::now(),
                    in_flight: self.shared.gate.in_flight(),
                    limit: self.shared.gate.limit(),
                });
                // Where the verdict on the answer is left, for the
                // algorithm to learn from.
                let context = A::ADAPTIVE
                    .then(|| AttemptContext::of(&request).cloned())
                    .flatten();
                ResponseFuture::called(self.inner.call(request), permit, start, context)
            }
            State::Rejected => ResponseFuture::rejected(Arc::clone(&self.shared)),
            State::Idle | State::Waiting(_) => {
                panic!("Limit::call without poll_ready returning Ready first")
            }
        }
    }
}

impl<S, A: Algorithm, C, R> Limit<S, A, C, R> {
    fn reject(&mut self) {
        self.state = State::Rejected;
        self.shared.rejected();
    }
}
