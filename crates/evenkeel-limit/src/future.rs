//! The response future of [`Limit`](crate::Limit).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use evenkeel_core::Classify;
use evenkeel_core::ext::AttemptContext;
use evenkeel_core::sse::is_event_stream;
use http::Response;
use pin_project_lite::pin_project;

use crate::algorithm::Algorithm;
use crate::body::{LimitBody, Release};
use crate::reject::Reject;
use crate::shared::{Permit, Shared, Start};

pin_project! {
    /// The response future of [`Limit`](crate::Limit).
    ///
    /// Holds the request's permit: it is returned when the inner future
    /// completes (after the outcome is reported to the algorithm) or when
    /// this future is dropped (and then nothing is reported). When the
    /// layer's [`Release`](crate::Release) keeps it for the body, it moves
    /// into the response's [`LimitBody`].
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
    C: Classify<Response<B>> + Send + Sync + 'static,
    R: Reject<B, E> + Send + Sync + 'static,
{
    type Output = Result<Response<LimitBody<B>>, R::Error>;

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
                    permit.shared().complete(&result, start, context.as_ref());
                }
                let held = match permit.shared().release {
                    Release::Head => false,
                    Release::BodyEnd => result.is_ok(),
                    Release::StreamEnd => result
                        .as_ref()
                        .is_ok_and(|response| is_event_stream(response.headers())),
                };
                let response = match result {
                    Ok(response) if held => {
                        let permit = permit.hold();
                        response.map(|body| LimitBody::holding(body, permit))
                    }
                    Ok(response) => {
                        drop(permit);
                        response.map(LimitBody::plain)
                    }
                    Err(error) => {
                        drop(permit);
                        return Poll::Ready(Err(error));
                    }
                };
                Poll::Ready(Ok(response))
            }
            KindProj::Rejected { shared } => {
                let shared = shared
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(shared.reject.reject().map(|r| r.map(LimitBody::plain)))
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
