//! The future returned by [`Metrics`](crate::Metrics).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use evenkeel_core::ext::{AttemptContext, outcome_or};
use evenkeel_core::{BoxError, Classify, clock};
use http::Response;
use pin_project_lite::pin_project;

use crate::labels::OTHER;
use crate::layer::Shared;
use crate::record::Pending;

pin_project! {
    /// The response future of [`Metrics`](crate::Metrics): the inner future,
    /// timed. Dropped before it completes, it records the call with
    /// `error.type="cancelled"`.
    pub struct ResponseFuture<F, C> {
        #[pin]
        inner: F,
        shared: Arc<Shared<C>>,
        pending: Option<Pending>,
        context: Option<AttemptContext>,
    }

    impl<F, C> PinnedDrop for ResponseFuture<F, C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(pending) = this.pending.take() {
                pending.cancel(&this.shared.instruments);
            }
        }
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn new(
        inner: F,
        shared: Arc<Shared<C>>,
        pending: Pending,
        context: Option<AttemptContext>,
    ) -> Self {
        ResponseFuture {
            inner,
            shared,
            pending: Some(pending),
            context,
        }
    }
}

impl<F, C, RB, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
    C: Classify<Response<RB>>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let at = clock::now();
        let shared = &**this.shared;
        let instruments = &shared.instruments;
        // Polled again after completion: pass through, record nothing.
        let Some(pending) = this.pending.take() else {
            return Poll::Ready(result.map_err(Into::into));
        };
        let context = this.context.take();
        match result {
            Ok(response) => {
                // The verdict left below, with its readings of the headers;
                // else the answer is judged and read here.
                let judged = context.as_ref().and_then(|c| {
                    c.with_verdict(|v| {
                        (!v.is_error()).then(|| {
                            instruments.headroom(pending.address(instruments), &v.limits);
                            v.outcome
                        })
                    })
                    .flatten()
                });
                let outcome = judged.unwrap_or_else(|| {
                    instruments.rate_limits(pending.address(instruments), response.headers(), at);
                    shared.classifier.classify_response(&response)
                });
                let error = (!outcome.is_success()).then(|| outcome.as_str());
                pending.complete(instruments, Some(response.status()), error, at);
                Poll::Ready(Ok(response))
            }
            Err(error) => {
                let error: BoxError = error.into();
                let outcome = outcome_or(context.as_ref(), true, || {
                    shared.classifier.classify_error(&*error)
                });
                let name = if outcome.is_success() {
                    OTHER
                } else {
                    outcome.as_str()
                };
                pending.complete(instruments, None, Some(name), at);
                Poll::Ready(Err(error))
            }
        }
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}
