//! The response future of [`Sse`](super::Sse).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use http_body::{Body, Frame};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::body::{SseBody, Watch, to_bytes};
use super::parse::Parser;
use super::{Config, is_event_stream};
use crate::error::{DeadlineExceeded, StreamError, StreamErrorKind, TimedOut};
use crate::ext::earlier;
use crate::timer::LazyTimer;
use crate::{BoxError, clock};

/// An event stream's response while it waits for its first content event.
struct Hold<B> {
    head: http::response::Parts,
    body: B,
    watch: Box<Watch>,
    /// Made only when the body makes the response wait.
    timer: LazyTimer,
    /// When the wait ends, if it is bounded.
    until: Option<Instant>,
    /// The wait ends with the first-event timeout, else with the deadline.
    timeout: bool,
}

pin_project! {
    /// The response future of [`Sse`](super::Sse): the inner future, then,
    /// for an event stream, the wait for its first content event.
    pub struct SseFuture<F, B> {
        #[pin]
        inner: F,
        hold: Option<Hold<B>>,
        config: Arc<Config>,
        deadline: Option<Instant>,
        sent: Instant,
    }
}

impl<F, B> SseFuture<F, B> {
    pub(crate) fn new(
        inner: F,
        config: Arc<Config>,
        deadline: Option<Instant>,
        sent: Instant,
    ) -> Self {
        SseFuture {
            inner,
            hold: None,
            config,
            deadline,
            sent,
        }
    }
}

impl<F, B, E> Future for SseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<SseBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.hold.is_none() {
            let response = ready!(this.inner.poll(cx)).map_err(Into::into)?;
            if !response.status().is_success() || !is_event_stream(response.headers()) {
                return Poll::Ready(Ok(response.map(SseBody::plain)));
            }
            let config = &**this.config;
            let (head, body) = response.into_parts();
            let parser = Parser::new(config.max_line_bytes, config.max_event_bytes);
            let watch = Watch::new(parser, *this.sent, config.events.clone());
            let timeout_at = config.first_event_timeout.map(|t| clock::now() + t);
            let until = earlier(timeout_at, *this.deadline);
            *this.hold = Some(Hold {
                head,
                body,
                watch: Box::new(watch),
                timer: LazyTimer::new(),
                until,
                timeout: timeout_at.is_some() && timeout_at == until,
            });
        }
        let Some(hold) = this.hold.as_mut() else {
            unreachable!("the hold was set above");
        };
        let max_held = this.config.max_held_bytes;
        loop {
            let frame = match Pin::new(&mut hold.body).poll_frame(cx) {
                Poll::Pending => {
                    if let Some(until) = hold.until {
                        hold.timer.arm(until);
                    }
                    if hold.timer.poll_fired(cx) {
                        let error: BoxError = match this.config.first_event_timeout {
                            Some(after) if hold.timeout => TimedOut::after(after).into(),
                            _ => DeadlineExceeded::new().into(),
                        };
                        this.hold.take();
                        return Poll::Ready(Err(error));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(frame) => frame,
            };
            match frame {
                // Ended before any content: the caller gets what there was.
                None => {
                    hold.watch.inner_done = true;
                    break;
                }
                Some(Err(error)) => {
                    this.hold.take();
                    return Poll::Ready(Err(error.into()));
                }
                Some(Ok(frame)) => {
                    let frame = frame.map_data(to_bytes);
                    let Some(data) = frame.data_ref() else {
                        hold.watch.held.push_back(frame);
                        continue;
                    };
                    let scan = hold.watch.parser.scan(data);
                    if let Some((error, before)) = scan.error {
                        if !scan.content {
                            // The API refused before any content: the
                            // attempt fails, and the stream goes nowhere.
                            this.hold.take();
                            let error = error.with_before_content(true);
                            return Poll::Ready(Err(error.into()));
                        }
                        let prefix = data.slice(..before);
                        hold.watch.held.push_back(Frame::data(prefix));
                        hold.watch.pending = Some(error);
                        hold.watch.inner_done = true;
                        break;
                    }
                    hold.watch.held_bytes += data.len();
                    hold.watch.held.push_back(frame);
                    if scan.content {
                        break;
                    }
                    if hold.watch.held_bytes > max_held {
                        this.hold.take();
                        let error = StreamError::new(StreamErrorKind::TooLarge, None)
                            .with_before_content(true)
                            .with_message(format!(
                                "no content event in the first {max_held} bytes"
                            ));
                        return Poll::Ready(Err(error.into()));
                    }
                }
            }
        }
        let Some(Hold {
            head,
            body,
            mut watch,
            ..
        }) = this.hold.take()
        else {
            unreachable!("the hold was set above");
        };
        watch.first_event = Some(clock::now().saturating_duration_since(*this.sent));
        Poll::Ready(Ok(Response::from_parts(
            head,
            SseBody::watched(body, watch),
        )))
    }
}

impl<F, B> fmt::Debug for SseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseFuture")
            .field("holding", &self.hold.is_some())
            .finish_non_exhaustive()
    }
}
