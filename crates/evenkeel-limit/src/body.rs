//! The response body of [`Limit`](crate::Limit), which can hold the
//! request's permit until the body ends.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// When a request gives its permit (and its place in the in-flight count)
/// back.
///
/// A streamed answer (Server-Sent Events) keeps the server working until
/// its last event, so releasing the permit at its head would let many more
/// streams run at once than the limit says. By default such answers hold
/// the permit until their body ends or is dropped; other answers return it
/// when the head arrives.
///
/// ```
/// use evenkeel_limit::{LimitLayer, Release};
///
/// let layer = LimitLayer::fixed(8).release(Release::BodyEnd).build()?;
/// # let _ = layer;
/// # Ok::<(), evenkeel_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Release {
    /// When the head arrives, for every answer.
    Head,
    /// When the body ends or is dropped for event streams
    /// (`content-type: text/event-stream`), when the head arrives for
    /// others. The default.
    #[default]
    StreamEnd,
    /// When the body ends or is dropped, for every answer.
    BodyEnd,
}

/// Gives one permit back to its limiter.
pub(crate) trait GiveBack: Send + Sync {
    fn give_back(&self);
}

/// A permit moved into a response body: given back when dropped.
pub(crate) struct HeldPermit(pub(crate) Arc<dyn GiveBack>);

impl Drop for HeldPermit {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

pin_project! {
    /// The response body of [`Limit`](crate::Limit): the inner body, with
    /// the request's permit when the layer's [`Release`] keeps it for the
    /// body. The permit is given back when the body ends, fails or is
    /// dropped.
    pub struct LimitBody<B> {
        #[pin]
        inner: B,
        permit: Option<HeldPermit>,
    }
}

impl<B> LimitBody<B> {
    pub(crate) fn plain(inner: B) -> Self {
        LimitBody {
            inner,
            permit: None,
        }
    }

    pub(crate) fn holding(inner: B, permit: HeldPermit) -> Self {
        LimitBody {
            inner,
            permit: Some(permit),
        }
    }

    /// Whether the body still holds its request's permit.
    pub fn holds_permit(&self) -> bool {
        self.permit.is_some()
    }

    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// Unwraps the inner body, giving a held permit back.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body> Body for LimitBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if this.permit.is_some() {
            let ended = match &frame {
                None | Some(Err(_)) => true,
                Some(Ok(_)) => this.inner.is_end_stream(),
            };
            if ended {
                *this.permit = None;
            }
        }
        Poll::Ready(frame)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> fmt::Debug for LimitBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitBody")
            .field("holds_permit", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}
