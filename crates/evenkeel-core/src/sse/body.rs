//! The response body of [`Sse`](super::Sse).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::parse::Parser;
use crate::error::StreamError;
use crate::event::{Event, Events, StreamEnd};
use crate::{BoxError, clock};

/// What an event stream's body keeps while it reaches the caller.
pub(crate) struct Watch {
    pub(crate) parser: Parser,
    /// Frames read before the response was let through, replayed first.
    pub(crate) held: VecDeque<Frame<Bytes>>,
    pub(crate) held_bytes: usize,
    /// An error found behind bytes that go out first.
    pub(crate) pending: Option<StreamError>,
    /// The inner body has ended (or failed); it is not polled again.
    pub(crate) inner_done: bool,
    pub(crate) ended: bool,
    pub(crate) sent: Instant,
    pub(crate) first_event: Option<Duration>,
    pub(crate) events: Events,
}

impl Watch {
    pub(crate) fn new(parser: Parser, sent: Instant, events: Events) -> Self {
        Watch {
            parser,
            held: VecDeque::new(),
            held_bytes: 0,
            pending: None,
            inner_done: false,
            ended: false,
            sent,
            first_event: None,
            events,
        }
    }

    fn end(&mut self, end: StreamEnd) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let duration = clock::now().saturating_duration_since(self.sent);
        let first_event = self.first_event.unwrap_or(duration);
        self.events.emit(|| Event::StreamEnded {
            first_event,
            duration,
            end,
        });
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.end(StreamEnd::Dropped);
    }
}

pin_project! {
    /// The response body of [`Sse`](super::Sse): the inner body, and for an
    /// event stream, the bytes held back before its first content event
    /// followed by the rest, read for a later error event. Such an event
    /// ends the body with a [`StreamError`].
    pub struct SseBody<B> {
        #[pin]
        inner: B,
        watch: Option<Box<Watch>>,
    }
}

impl<B> SseBody<B> {
    /// A body passed through as it is.
    pub(crate) fn plain(inner: B) -> Self {
        SseBody { inner, watch: None }
    }

    pub(crate) fn watched(inner: B, watch: Box<Watch>) -> Self {
        SseBody {
            inner,
            watch: Some(watch),
        }
    }

    /// Whether the body is read as an event stream.
    pub fn is_event_stream(&self) -> bool {
        self.watch.is_some()
    }
}

pub(crate) fn to_bytes<D: Buf>(mut data: D) -> Bytes {
    data.copy_to_bytes(data.remaining())
}

impl<B> Body for SseBody<B>
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
        let Some(watch) = this.watch.as_deref_mut() else {
            let frame = ready!(this.inner.poll_frame(cx));
            return Poll::Ready(frame.map(|f| f.map(|f| f.map_data(to_bytes)).map_err(Into::into)));
        };
        if let Some(frame) = watch.held.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(error) = watch.pending.take() {
            watch.end(StreamEnd::Error(error.kind()));
            watch.inner_done = true;
            return Poll::Ready(Some(Err(error.into())));
        }
        if watch.inner_done {
            watch.end(StreamEnd::Complete);
            return Poll::Ready(None);
        }
        match ready!(this.inner.poll_frame(cx)) {
            None => {
                watch.inner_done = true;
                watch.end(StreamEnd::Complete);
                Poll::Ready(None)
            }
            Some(Err(error)) => {
                watch.inner_done = true;
                watch.end(StreamEnd::Failed);
                Poll::Ready(Some(Err(error.into())))
            }
            Some(Ok(frame)) => {
                let frame = frame.map_data(to_bytes);
                let Some(data) = frame.data_ref() else {
                    return Poll::Ready(Some(Ok(frame)));
                };
                let Some((error, before)) = watch.parser.scan(data).error else {
                    return Poll::Ready(Some(Ok(frame)));
                };
                watch.inner_done = true;
                if before > 0 {
                    let prefix = data.slice(..before);
                    watch.pending = Some(error);
                    return Poll::Ready(Some(Ok(Frame::data(prefix))));
                }
                watch.end(StreamEnd::Error(error.kind()));
                Poll::Ready(Some(Err(error.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.watch {
            None => self.inner.is_end_stream(),
            Some(watch) => {
                watch.held.is_empty()
                    && watch.pending.is_none()
                    && (watch.inner_done || self.inner.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.watch {
            None => self.inner.size_hint(),
            Some(_) => SizeHint::default(),
        }
    }
}

impl<B> fmt::Debug for SseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseBody")
            .field("event_stream", &self.watch.is_some())
            .finish_non_exhaustive()
    }
}
