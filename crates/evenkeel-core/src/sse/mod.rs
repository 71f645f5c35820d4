//! Streamed answers (Server-Sent Events): errors inside a `200` stream.
//!
//! Most LLM traffic is streamed: the API answers `200` with
//! `content-type: text/event-stream`, then sends events. Whatever goes
//! wrong after that head (Anthropic's `event: error` with an
//! `overloaded_error`, OpenAI's `data: {"error": …}`) would slip past every
//! layer that judges answers by their status. [`Sse`] reads such a stream
//! before anyone above sees it:
//!
//! - It holds the response back until the first content event (any event
//!   but an error or a `ping`), within [`max_held_bytes`] (64 KiB) and
//!   [`first_event_timeout`] (10 s, and never past the request's
//!   deadline).
//! - If an error event comes first, the attempt fails with a
//!   [`StreamError`] instead of the response: the [`Observe`] above judges
//!   it like the status it stands for (`overloaded_error` like a 529,
//!   `rate_limit_error` like a 429, `api_error` like a 500), so the layers
//!   above retry, pace and cool down as for that status, and the caller
//!   never sees the failed stream. An overload or a rate limit before any
//!   content means the API refused before working on the request: it may
//!   be resent even for a `POST`, as the providers' SDKs do.
//! - Once content reached the caller, a later error event ends the body
//!   ([`SseBody`]) with a [`StreamError`]; nothing is resent. Every stream
//!   that reached the caller reports how it ended as an
//!   [`Event::StreamEnded`](crate::event::Event::StreamEnded).
//!
//! Other answers pass through untouched, with no allocation.
//!
//! The parser is a small bounded line parser of this module, not a crate:
//! the SSE parser crates buffer a line for as long as no newline comes.
//! Lines are capped at [`max_line_bytes`] (256 KiB), an event's data at
//! [`max_event_bytes`] (1 MiB); a line that is not UTF-8 is
//! [`StreamErrorKind::Malformed`](crate::error::StreamErrorKind::Malformed).
//! Only error events' data is kept (to read its JSON); content is counted,
//! not copied.
//!
//! [`max_held_bytes`]: SseBuilder::max_held_bytes
//! [`first_event_timeout`]: SseBuilder::first_event_timeout
//! [`max_line_bytes`]: SseBuilder::max_line_bytes
//! [`max_event_bytes`]: SseBuilder::max_event_bytes
//! [`Observe`]: crate::observe::Observe
//! [`StreamError`]: crate::error::StreamError
//!
//! # Where it goes
//!
//! Below the [`Observe`] of each endpoint's stack (and below its attempt
//! timeout, which then also bounds the wait for the first event), right
//! above the connector. A concurrency limiter above it holds its permit
//! until an event stream's body ends.
//!
//! # Example
//!
//! ```
//! use evenkeel_core::error::{StreamError, StreamErrorKind};
//! use evenkeel_core::sse::SseLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # tokio_test::block_on(async {
//! let mut svc = ServiceBuilder::new()
//!     .layer(SseLayer::new())
//!     .service_fn(|_req: http::Request<()>| async {
//!         let body = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n";
//!         let response = http::Response::builder()
//!             .header("content-type", "text/event-stream")
//!             .body(http_body_util::Full::new(bytes::Bytes::from(body)))
//!             .unwrap();
//!         Ok::<_, std::convert::Infallible>(response)
//!     });
//! let err = svc.ready().await.unwrap().call(http::Request::new(())).await.unwrap_err();
//! let err = err.downcast_ref::<StreamError>().unwrap();
//! assert_eq!(err.kind(), StreamErrorKind::Overloaded);
//! assert!(err.before_content());
//! # });
//! ```

mod body;
mod future;
mod parse;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::event::Events;
use crate::ext::Deadline;
use crate::{BoxError, ConfigError, clock};

pub use body::SseBody;
pub use future::SseFuture;

/// How long a stream may take to send its first content event, by default.
pub const DEFAULT_FIRST_EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes held back before the first content event, by default.
pub const DEFAULT_MAX_HELD_BYTES: usize = 64 * 1024;
/// The longest line of an event stream, by default.
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024;
/// The most data bytes of one event, by default.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Whether `headers` announce a Server-Sent Events stream
/// (`content-type: text/event-stream`, any parameters, any case).
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("content-type", "Text/Event-Stream; charset=utf-8".parse().unwrap());
/// assert!(evenkeel_core::sse::is_event_stream(&headers));
/// ```
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|value| {
        let value = value.as_bytes();
        let essence = value
            .split(|&b| b == b';')
            .next()
            .unwrap_or(value)
            .trim_ascii();
        essence.eq_ignore_ascii_case(b"text/event-stream")
    })
}

#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) first_event_timeout: Option<Duration>,
    pub(crate) max_held_bytes: usize,
    pub(crate) max_line_bytes: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) events: Events,
}

/// Makes [`Sse`] services. Cheap to clone: the settings are shared.
#[derive(Clone)]
pub struct SseLayer {
    config: Arc<Config>,
}

impl SseLayer {
    /// The layer with the defaults (see the [module docs](self)).
    pub fn new() -> Self {
        SseLayer {
            config: Arc::new(SseBuilder::default().config()),
        }
    }

    /// A builder to change the bounds or attach a listener.
    pub fn builder() -> SseBuilder {
        SseBuilder::default()
    }
}

impl Default for SseLayer {
    fn default() -> Self {
        SseLayer::new()
    }
}

impl fmt::Debug for SseLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseLayer")
            .field("config", &self.config)
            .finish()
    }
}

impl<S> Layer<S> for SseLayer {
    type Service = Sse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Sse {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Builds an [`SseLayer`]; [`build`](SseBuilder::build) refuses zero
/// bounds.
///
/// ```
/// use std::time::Duration;
/// use evenkeel_core::sse::SseLayer;
///
/// let layer = SseLayer::builder()
///     .first_event_timeout(Some(Duration::from_secs(5)))
///     .max_held_bytes(16 * 1024)
///     .build()?;
/// assert!(SseLayer::builder().max_line_bytes(0).build().is_err());
/// # let _ = layer;
/// # Ok::<(), evenkeel_core::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SseBuilder {
    first_event_timeout: Option<Duration>,
    max_held_bytes: usize,
    max_line_bytes: usize,
    max_event_bytes: usize,
    events: Events,
}

impl Default for SseBuilder {
    fn default() -> Self {
        SseBuilder {
            first_event_timeout: Some(DEFAULT_FIRST_EVENT_TIMEOUT),
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            events: Events::none(),
        }
    }
}

impl SseBuilder {
    /// How long after the head the first content event may take (default
    /// 10 s). `None` leaves the wait to the request's deadline and to an
    /// attempt timeout above; it is never longer than the deadline. A
    /// stream that sends nothing in time fails the attempt with
    /// [`TimedOut`](crate::error::TimedOut).
    pub fn first_event_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.first_event_timeout = timeout;
        self
    }

    /// The most bytes held back while waiting for the first content event
    /// (default 64 KiB); past it the attempt fails with a
    /// [`StreamError`](crate::error::StreamError) of kind `TooLarge`.
    pub fn max_held_bytes(mut self, bytes: usize) -> Self {
        self.max_held_bytes = bytes;
        self
    }

    /// The longest line (default 256 KiB).
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }

    /// The most data bytes of one event (default 1 MiB).
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// Reports each stream's end ([`Event::StreamEnded`]) to `events`.
    ///
    /// [`Event::StreamEnded`]: crate::event::Event::StreamEnded
    pub fn events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<SseLayer, ConfigError> {
        if self.first_event_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                "first_event_timeout",
                "must be greater than zero (or `None`)",
            ));
        }
        for (field, value) in [
            ("max_held_bytes", self.max_held_bytes),
            ("max_line_bytes", self.max_line_bytes),
            ("max_event_bytes", self.max_event_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::new(field, "must be greater than zero"));
            }
        }
        Ok(SseLayer {
            config: Arc::new(self.config()),
        })
    }

    fn config(self) -> Config {
        Config {
            first_event_timeout: self.first_event_timeout,
            max_held_bytes: self.max_held_bytes,
            max_line_bytes: self.max_line_bytes,
            max_event_bytes: self.max_event_bytes,
            events: self.events,
        }
    }
}

/// Reads event-stream answers before passing them up. See the
/// [module docs](self).
pub struct Sse<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Sse<S> {
    /// Wraps `inner` with the default settings.
    pub fn new(inner: S) -> Self {
        SseLayer::new().layer(inner)
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

impl<S: Clone> Clone for Sse<S> {
    fn clone(&self) -> Self {
        Sse {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Sse<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sse")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, B, RB> Service<Request<B>> for Sse<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: http_body::Body + Unpin,
    RB::Error: Into<BoxError>,
{
    type Response = Response<SseBody<RB>>;
    type Error = BoxError;
    type Future = SseFuture<S::Future, RB>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let deadline = Deadline::of(&request);
        let sent = clock::now();
        SseFuture::new(
            self.inner.call(request),
            Arc::clone(&self.config),
            deadline,
            sent,
        )
    }
}
