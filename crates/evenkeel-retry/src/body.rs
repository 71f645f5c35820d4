//! The response body the retry layer returns.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use evenkeel_core::error::TimedOut;
use evenkeel_core::ext::earlier;
use evenkeel_core::timer::LazyTimer;
use evenkeel_core::{BoxError, clock};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Instant;

pin_project! {
    /// The body of a response returned by [`Retry`](crate::Retry).
    ///
    /// Usually the inner service's body, untouched. When the classifier read
    /// the start of the body to decide (a 429 whose meaning is in its body,
    /// such as OpenAI's `insufficient_quota`), the bytes it read come first,
    /// then the rest of the inner body.
    ///
    /// The request's deadline covers the body too, and so does an idle
    /// timeout between frames (see
    /// [`RetryBuilder::body_idle_timeout`](crate::RetryBuilder::body_idle_timeout)):
    /// a body that stalls past either ends with a
    /// [`TimedOut`](evenkeel_core::error::TimedOut) error instead of
    /// hanging. Errors are [`BoxError`]s: the inner body's own, or that
    /// `TimedOut`.
    pub struct ResponseBody<B: Body> {
        #[pin]
        kind: Kind<B>,
        watch: Watch,
    }
}

/// The bounds on how long a body may take: the request's deadline, and
/// the longest wait for one frame. The timer is made only when the body
/// first has to be waited for, so a body that is ready at once (in memory)
/// costs no allocation.
#[derive(Default)]
struct Watch {
    deadline: Option<Instant>,
    idle: Option<Duration>,
    /// Since when the body has been waited for (`None` while frames come).
    since: Option<Instant>,
    timer: LazyTimer,
    fired: bool,
}

impl Watch {
    /// Called when the inner body is pending: `Some(error)` once a bound
    /// is past.
    fn pending(&mut self, cx: &mut Context<'_>) -> Option<TimedOut> {
        if self.deadline.is_none() && self.idle.is_none() {
            return None;
        }
        let since = *self.since.get_or_insert_with(clock::now);
        let idle_end = self.idle.and_then(|idle| since.checked_add(idle));
        self.timer.arm(earlier(self.deadline, idle_end)?);
        if !self.timer.poll_fired(cx) {
            return None;
        }
        self.fired = true;
        Some(TimedOut::after(
            clock::now().saturating_duration_since(since),
        ))
    }

    /// Called when the inner body gave a frame or ended.
    #[inline]
    fn progressed(&mut self) {
        self.since = None;
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
            watch: Watch::default(),
        }
    }

    /// Returns the body bounded by `deadline` and by `idle` between frames.
    pub(crate) fn bounded(mut self, deadline: Option<Instant>, idle: Option<Duration>) -> Self {
        self.watch.deadline = deadline;
        self.watch.idle = idle;
        self
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
            watch: Watch::default(),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if this.watch.fired {
            return Poll::Ready(None);
        }
        match poll_kind(this.kind, cx) {
            Poll::Pending => match this.watch.pending(cx) {
                Some(timed_out) => Poll::Ready(Some(Err(timed_out.into()))),
                None => Poll::Pending,
            },
            Poll::Ready(frame) => {
                this.watch.progressed();
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.watch.fired || self.kind_is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.kind_size_hint()
    }
}

fn poll_kind<B: Body>(
    kind: Pin<&mut Kind<B>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
    match kind.project() {
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
                        frame.map(|r| r.map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining()))))
                    }),
                },
                None => Poll::Ready(None),
            }
        }
    }
}

impl<B: Body> ResponseBody<B> {
    fn kind_is_end_stream(&self) -> bool {
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

    fn kind_size_hint(&self) -> SizeHint {
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
