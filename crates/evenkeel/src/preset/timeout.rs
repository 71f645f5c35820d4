//! The per-attempt timeout of the preset's endpoint stacks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use evenkeel_core::BoxError;
use evenkeel_core::error::TimedOut;
use evenkeel_core::timer::LazyTimer;
use pin_project_lite::pin_project;
use tower_service::Service;

/// Fails an attempt that takes longer than its timeout with
/// [`TimedOut`], which every evenkeel layer classifies as a timeout that
/// may have been processed.
#[derive(Clone)]
pub struct AttemptTimeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S> AttemptTimeout<S> {
    /// Wraps `inner` with `timeout` per call.
    pub fn new(inner: S, timeout: Duration) -> Self {
        AttemptTimeout { inner, timeout }
    }

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

impl<S: fmt::Debug> fmt::Debug for AttemptTimeout<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptTimeout")
            .field("inner", &self.inner)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<S, R> Service<R> for AttemptTimeout<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = TimeoutFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: R) -> Self::Future {
        TimeoutFuture {
            inner: self.inner.call(request),
            timer: LazyTimer::new(),
            timeout: self.timeout,
        }
    }
}

pin_project! {
    /// The future of [`AttemptTimeout`]. Its timer starts when the attempt
    /// first has to be waited for: one that finishes at once makes none,
    /// and the future stays small for the layers that hold it.
    pub struct TimeoutFuture<F> {
        #[pin]
        inner: F,
        timer: LazyTimer,
        timeout: Duration,
    }
}

impl<F, T, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        if !this.timer.is_armed() {
            this.timer.arm_in(*this.timeout);
        }
        if this.timer.poll_fired(cx) {
            return Poll::Ready(Err(TimedOut::after(*this.timeout).into()));
        }
        Poll::Pending
    }
}

impl<F> fmt::Debug for TimeoutFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutFuture")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
