//! Errors that several evenkeel layers produce or recognise.
//!
//! Each is a small struct with public accessors; test for one with
//! [`Error::is`](std::error::Error) on the boxed error:
//!
//! ```
//! use evenkeel_core::{BoxError, error::Overloaded};
//!
//! let err: BoxError = Overloaded::new().into();
//! assert!(err.is::<Overloaded>());
//! ```

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::outcome::{Outcome, Signal};

/// A type-erased error, as tower uses.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A local concurrency limiter refused the request: it was never sent.
#[derive(Debug, Clone, Default)]
pub struct Overloaded {
    _priv: (),
}

impl Overloaded {
    /// A new `Overloaded` error.
    pub fn new() -> Self {
        Self::default()
    }
}

impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("concurrency limit reached: request rejected before sending")
    }
}

impl std::error::Error for Overloaded {}

/// A local quota could not admit the request in time: it was never sent.
///
/// Says which quota ran out and, when known, until when.
#[derive(Debug, Clone)]
pub struct QuotaExhausted {
    resource: evenkeel_headers::Resource,
    until: Option<Instant>,
    key: Option<String>,
}

impl QuotaExhausted {
    /// A quota error for `resource`, with room expected at `until`.
    pub fn new(resource: evenkeel_headers::Resource, until: Option<Instant>) -> Self {
        QuotaExhausted {
            resource,
            until,
            key: None,
        }
    }

    /// Returns the error naming the quota key (an authority, an API key's
    /// label, a model).
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The resource that ran out.
    pub fn resource(&self) -> &evenkeel_headers::Resource {
        &self.resource
    }

    /// When the quota is expected to have room again, if known.
    pub fn until(&self) -> Option<Instant> {
        self.until
    }

    /// How long from now until the quota is expected to have room.
    pub fn retry_after(&self) -> Option<Duration> {
        self.until
            .map(|until| until.saturating_duration_since(Instant::now()))
    }

    /// The quota key, when the layer keys its quotas.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

impl fmt::Display for QuotaExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} quota exhausted", self.resource)?;
        if let Some(key) = &self.key {
            write!(f, " for {key}")?;
        }
        match self.retry_after() {
            Some(wait) => write!(f, "; room expected in {:.3}s", wait.as_secs_f64()),
            None => Ok(()),
        }
    }
}

impl std::error::Error for QuotaExhausted {}

/// The caller's total deadline passed before a response arrived.
#[derive(Debug, Clone, Default)]
pub struct DeadlineExceeded {
    server_wait: Option<Duration>,
}

impl DeadlineExceeded {
    /// A new `DeadlineExceeded` error.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the error carrying the wait the server asked for, when that
    /// wait is what would have overrun the deadline.
    pub fn with_server_wait(mut self, wait: Option<Duration>) -> Self {
        self.server_wait = wait;
        self
    }

    /// The server's requested wait that could not fit in the deadline.
    pub fn server_wait(&self) -> Option<Duration> {
        self.server_wait
    }
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline exceeded")?;
        if let Some(wait) = self.server_wait {
            write!(f, " (the server asked to wait {:.3}s)", wait.as_secs_f64())?;
        }
        Ok(())
    }
}

impl std::error::Error for DeadlineExceeded {}

/// One attempt took longer than its own timeout.
///
/// It may have reached the server: a timed-out request counts as maybe
/// processed.
#[derive(Debug, Clone, Default)]
pub struct TimedOut {
    after: Option<Duration>,
}

impl TimedOut {
    /// An attempt that timed out after `after`.
    pub fn after(after: Duration) -> Self {
        TimedOut { after: Some(after) }
    }

    /// The timeout that elapsed, when known.
    pub fn timeout(&self) -> Option<Duration> {
        self.after
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.after {
            Some(after) => write!(f, "attempt timed out after {:.3}s", after.as_secs_f64()),
            None => f.write_str("attempt timed out"),
        }
    }
}

impl std::error::Error for TimedOut {}

/// What went wrong inside a streamed (Server-Sent Events) answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamErrorKind {
    /// The API said it is overloaded (Anthropic's `overloaded_error`): the
    /// stream's counterpart of a 529.
    Overloaded,
    /// The API refused for quota (`rate_limit_error`, OpenAI's
    /// `rate_limit_exceeded`): the counterpart of a 429.
    RateLimited,
    /// Any other error the API sent (`api_error`, `server_error`, an
    /// unknown type): the counterpart of a 500.
    Server,
    /// The stream broke the bounds of the layer reading it: a line, an
    /// event or the bytes held before the first event grew past their cap.
    TooLarge,
    /// The stream is not valid Server-Sent Events (a line that is not
    /// UTF-8).
    Malformed,
}

impl StreamErrorKind {
    /// A short, stable name, suitable for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamErrorKind::Overloaded => "overloaded",
            StreamErrorKind::RateLimited => "rate_limited",
            StreamErrorKind::Server => "server_error",
            StreamErrorKind::TooLarge => "too_large",
            StreamErrorKind::Malformed => "malformed",
        }
    }
}

impl fmt::Display for StreamErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A streamed answer failed after its `200` head: the API sent an error
/// event, or the stream broke the reader's bounds.
///
/// Before any content reached the caller, the [`sse`](crate::sse) layer
/// returns it instead of the response, and the attempt is judged like the
/// status it stands for (an `overloaded_error` like a 529, a
/// `rate_limit_error` like a 429), so the layers above retry, pace and cool
/// down as they would for that status. After content reached the caller,
/// it ends the response body, and the request is not resent.
///
/// ```
/// use evenkeel_core::error::{StreamError, StreamErrorKind};
/// use evenkeel_core::{BoxError, Outcome};
///
/// let err: BoxError = StreamError::new(StreamErrorKind::Overloaded, None).into();
/// let stream = err.downcast_ref::<StreamError>().unwrap();
/// match stream.kind() {
///     StreamErrorKind::Overloaded | StreamErrorKind::RateLimited => {}
///     other => panic!("{other}"),
/// }
/// assert!(matches!(stream.outcome(), Outcome::Overloaded(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    kind: StreamErrorKind,
    retry_after: Option<Duration>,
    before_content: bool,
    message: Option<String>,
}

/// The longest server message a [`StreamError`] keeps, in bytes.
const MAX_STREAM_MESSAGE: usize = 256;

impl StreamError {
    /// A stream error of `kind`, with the server's wait if it gave one.
    /// It counts as coming after content (see
    /// [`before_content`](Self::before_content)).
    pub fn new(kind: StreamErrorKind, retry_after: Option<Duration>) -> Self {
        StreamError {
            kind,
            retry_after,
            before_content: false,
            message: None,
        }
    }

    /// Returns the error marked as sent before any content event: the API
    /// refused before working on the request.
    pub fn with_before_content(mut self, before: bool) -> Self {
        self.before_content = before;
        self
    }

    /// Returns the error with the server's message, cut to 256 bytes.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_STREAM_MESSAGE {
            let mut end = MAX_STREAM_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        self.message = Some(message);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> StreamErrorKind {
        self.kind
    }

    /// The wait the server asked for, if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Whether the error came before any content event.
    pub fn before_content(&self) -> bool {
        self.before_content
    }

    /// The server's message, if the error event carried one.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// What the error means for the attempt, in the terms every layer acts
    /// on: an overload or a rate limit before content is a refusal the API
    /// did not work on, which any method may resend.
    pub fn outcome(&self) -> Outcome {
        let signal = Signal {
            wait: self.retry_after,
            should_retry: None,
        };
        match self.kind {
            StreamErrorKind::Overloaded if self.before_content => {
                Outcome::Overloaded(signal.with_should_retry(Some(true)))
            }
            StreamErrorKind::Overloaded => Outcome::Overloaded(signal),
            StreamErrorKind::RateLimited => Outcome::RateLimited(signal),
            StreamErrorKind::Server | StreamErrorKind::TooLarge | StreamErrorKind::Malformed => {
                Outcome::ServerError(signal)
            }
        }
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let when = if self.before_content {
            "before any content"
        } else {
            "after content"
        };
        write!(f, "event stream failed {when}: {}", self.kind)?;
        if let Some(message) = &self.message {
            write!(f, " ({message})")?;
        }
        if let Some(wait) = self.retry_after {
            write!(f, "; retry after {:.3}s", wait.as_secs_f64())?;
        }
        Ok(())
    }
}

impl std::error::Error for StreamError {}

/// Connecting failed: the request was never written.
///
/// Connectors wrap their errors in it (the preset's `HyperConnector` does),
/// so that [`classify_error`](crate::classify_error) knows the phase from a
/// type, not from words in a message: a TLS error inside a `ConnectError`
/// happened during the handshake, and the request was never sent; the same
/// words after the request was written (a peer closing without TLS
/// `close_notify`) mean it may have been processed.
#[derive(Debug)]
pub struct ConnectError {
    source: BoxError,
}

impl ConnectError {
    /// Marks `source` as a failure while connecting.
    pub fn new(source: impl Into<BoxError>) -> Self {
        ConnectError {
            source: source.into(),
        }
    }

    /// The connector's own error.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }

    /// Unwraps the connector's own error.
    pub fn into_inner(self) -> BoxError {
        self.source
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connect failed: {}", self.source)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// The attempt failed after the request was handed to the connection: it
/// may have been written, and so processed.
///
/// Connectors whose client reports the phase of a failure (reqwest's
/// `is_connect()`, for one) wrap every failure that is not a
/// [`ConnectError`] in it, so that [`classify_error`](crate::classify_error)
/// counts it as maybe processed whatever words its message holds: a POST is
/// never resent after it. [`SentError::timed_out`] marks a timeout of the
/// client's own.
///
/// ```
/// use std::io;
/// use evenkeel_core::error::SentError;
/// use evenkeel_core::{classify_error, FailureKind, Outcome, Sent};
///
/// // Words that alone would read as "cancelled before it was written".
/// let err = SentError::new(io::Error::other("operation was canceled"));
/// match classify_error(&err) {
///     Outcome::Failed(f) => assert_eq!(f.sent, Sent::Maybe),
///     other => panic!("{other:?}"),
/// }
/// let timeout = SentError::timed_out(io::Error::other("deadline"));
/// match classify_error(&timeout) {
///     Outcome::Failed(f) => assert_eq!((f.kind, f.sent), (FailureKind::Timeout, Sent::Maybe)),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug)]
pub struct SentError {
    source: BoxError,
    timeout: bool,
}

impl SentError {
    /// Marks `source` as a failure after the request was handed over.
    pub fn new(source: impl Into<BoxError>) -> Self {
        SentError {
            source: source.into(),
            timeout: false,
        }
    }

    /// Marks `source` as the client's own timeout, after the request was
    /// handed over.
    pub fn timed_out(source: impl Into<BoxError>) -> Self {
        SentError {
            source: source.into(),
            timeout: true,
        }
    }

    /// `true` when the client reported a timeout.
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }

    /// The client's own error.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }

    /// Unwraps the client's own error.
    pub fn into_inner(self) -> BoxError {
        self.source
    }
}

impl fmt::Display for SentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request failed after it was sent: {}", self.source)
    }
}

impl std::error::Error for SentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// A builder was given a configuration that cannot work.
///
/// The message names the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    message: String,
}

impl ConfigError {
    /// A configuration error about `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            field,
            message: message.into(),
        }
    }

    /// The field at fault.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration: `{}` {}",
            self.field, self.message
        )
    }
}

impl std::error::Error for ConfigError {}
