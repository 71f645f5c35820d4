//! The response body the retry layer returns.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a response returned by [`Retry`](crate::Retry).
    ///
    /// Usually the inner service's body, untouched. When the classifier read
    /// the start of the body to decide (a 429 whose meaning is in its body,
    /// such as OpenAI's `insufficient_quota`), the bytes it read come first,
    /// then the rest of the inner body.
    pub struct ResponseBody<B: Body> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B: Body> {
        Inner { #[pin] body: B },
        Peeked { peeked: Box<Peeked<B>> },
    }
}

/// What was read of a body to classify it, and the rest of it. Boxed: rare,
/// and it keeps `ResponseBody` as small as the body it wraps.
struct Peeked<B: Body> {
    prefix: Option<Bytes>,
    trailers: Option<HeaderMap>,
    error: Option<B::Error>,
    rest: Option<Pin<Box<B>>>,
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        ResponseBody {
            kind: Kind::Inner { body },
        }
    }

    /// The inner body, unless part of it was already read.
    pub(crate) fn into_inner(self) -> Option<B> {
        match self.kind {
            Kind::Inner { body } => Some(body),
            Kind::Peeked { .. } => None,
        }
    }

    pub(crate) fn peeked(
        prefix: Bytes,
        trailers: Option<HeaderMap>,
        error: Option<B::Error>,
        rest: Option<Pin<Box<B>>>,
    ) -> Self {
        ResponseBody {
            kind: Kind::Peeked {
                peeked: Box::new(Peeked {
                    prefix: (!prefix.is_empty()).then_some(prefix),
                    trailers,
                    error,
                    rest,
                }),
            },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx).map(|frame| {
                frame.map(|r| r.map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining()))))
            }),
            KindProj::Peeked { peeked } => {
                let Peeked {
                    prefix,
                    trailers,
                    error,
                    rest,
                } = &mut **peeked;
                if let Some(prefix) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(prefix))));
                }
                if let Some(error) = error.take() {
                    return Poll::Ready(Some(Err(error)));
                }
                if let Some(trailers) = trailers.take() {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                match rest {
                    Some(body) => match body.as_mut().poll_frame(cx) {
                        Poll::Ready(None) => {
                            *rest = None;
                            Poll::Ready(None)
                        }
                        other => other.map(|frame| {
                            frame.map(|r| {
                                r.map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining())))
                            })
                        }),
                    },
                    None => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Peeked { peeked } => {
                let Peeked {
                    prefix,
                    trailers,
                    error,
                    rest,
                } = &**peeked;
                prefix.is_none()
                    && trailers.is_none()
                    && error.is_none()
                    && rest.as_ref().is_none_or(|b| b.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Peeked { peeked } => {
                let Peeked { prefix, rest, .. } = &**peeked;
                let extra = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let rest = rest
                    .as_ref()
                    .map_or(SizeHint::with_exact(0), |b| b.size_hint());
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(extra));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(extra));
                }
                hint
            }
        }
    }
}

impl<B: Body> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("ResponseBody::Inner"),
            Kind::Peeked { peeked } => f
                .debug_struct("ResponseBody::Peeked")
                .field("prefix_len", &peeked.prefix.as_ref().map_or(0, |p| p.len()))
                .finish_non_exhaustive(),
        }
    }
}
