//! The response future of [`Limit`](crate::Limit).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use evenkeel_core::Classify;
use evenkeel_core::ext::AttemptContext;
use http::Response;
use pin_project_lite::pin_project;

use crate::algorithm::Algorithm;
use crate::reject::Reject;
use crate::shared::{Permit, Shared, Start};

pin_project! {
    /// The response future of [`Limit`](crate::Limit).
    ///
    /// Holds the request's permit: it is returned when the inner future
    /// completes (after the outcome is reported to the algorithm) or when
    /// this future is dropped (and then nothing is reported).
    pub struct ResponseFuture<F, A, C, R> {
        #[pin]
        kind: Kind<F, A, C, R>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, A, C, R> {
        Called {
            #[pin]
            future: F,
            permit: Option<Permit<A, C, R>>,
            start: Option<Start>,
            context: Option<AttemptContext>,
        },
        Rejected {
            shared: Option<Arc<Shared<A, C, R>>>,
        },
    }
}

impl<F, A, C, R> ResponseFuture<F, A, C, R> {
    pub(crate) fn called(
        future: F,
        permit: Permit<A, C, R>,
        start: Option<Start>,
        context: Option<AttemptContext>,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                future,
                permit: Some(permit),
                start,
                context,
            },
        }
    }

    pub(crate) fn rejected(shared: Arc<Shared<A, C, R>>) -> Self {
        ResponseFuture {
            kind: Kind::Rejected {
                shared: Some(shared),
            },
        }
    }
}

impl<F, B, E, A, C, R> Future for ResponseFuture<F, A, C, R>
where
    F: Future<Output = Result<Response<B>, E>>,
    A: Algorithm,
    C: Classify<Response<B>>,
    R: Reject<B, E>,
{
    type Output = Result<Response<B>, R::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                future,
                permit,
                start,
                context,
            } => {
                let result = ready!(future.poll(cx)).map_err(R::convert);
                let permit = permit
                    .take()
                    .expect("ResponseFuture polled after completion");
                if A::ADAPTIVE
                    && let Some(start) = *start
                {
                    permit.shared.complete(&result, start, context.as_ref());
                }
                drop(permit);
                Poll::Ready(result)
            }
            KindProj::Rejected { shared } => {
                let shared = shared
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(shared.reject.reject())
            }
        }
    }
}

impl<F, A, C, R> fmt::Debug for ResponseFuture<F, A, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
