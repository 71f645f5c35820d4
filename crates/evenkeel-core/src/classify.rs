//! Turning responses and errors into [`Outcome`]s.

use std::error::Error;
use std::fmt;

use http::{HeaderMap, Response, StatusCode};

use crate::clock;
use crate::error::{ConnectError, DeadlineExceeded, Overloaded, QuotaExhausted, TimedOut};
use crate::outcome::{Failure, FailureKind, Outcome, Sent, Signal};

/// Classifies the result of one attempt.
///
/// Implementations must be cheap on the success path: every request passes
/// through [`classify_response`](Classify::classify_response).
///
/// Errors are handed over as `&(dyn Error + 'static)` so any error type can
/// be classified by walking its [`source`](Error::source) chain; the default
/// [`classify_error`](Classify::classify_error) does exactly that with
/// [`classify_error`](fn@classify_error).
///
/// # Example: a custom classifier
///
/// ```
/// use evenkeel_core::{Classify, HttpClassifier, Outcome};
///
/// /// Treats 404 from a flaky gateway as transient.
/// #[derive(Debug, Clone, Default)]
/// struct FlakyGateway(HttpClassifier);
///
/// impl<B> Classify<http::Response<B>> for FlakyGateway {
///     fn classify_response(&self, res: &http::Response<B>) -> Outcome {
///         if res.status() == http::StatusCode::NOT_FOUND {
///             return Outcome::ServerError(Default::default());
///         }
///         self.0.classify_response(res)
///     }
/// }
///
/// let res = http::Response::builder().status(404).body(()).unwrap();
/// assert!(matches!(FlakyGateway::default().classify_response(&res), Outcome::ServerError(_)));
/// ```
pub trait Classify<Res> {
    /// Classifies a response.
    fn classify_response(&self, response: &Res) -> Outcome;

    /// Classifies an error returned instead of a response.
    fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome {
        classify_error(error)
    }

    /// Whether the body of a response classified as `outcome` should be read
    /// (up to a small bound) and passed to [`classify_body`](Classify::classify_body)
    /// before acting on it. Layers that resend requests ask this only for
    /// responses they would otherwise retry. The default is `false`.
    fn wants_body(&self, outcome: &Outcome) -> bool {
        let _ = outcome;
        false
    }

    /// Refines `outcome` from the first bytes of the response body (for
    /// example, OpenAI's `insufficient_quota` 429s carry their meaning only
    /// in the body). The default returns `outcome` unchanged.
    fn classify_body(&self, outcome: Outcome, body: &[u8]) -> Outcome {
        let _ = body;
        outcome
    }
}

/// The HTTP classifier every evenkeel layer uses by default.
///
/// - 1xx, 2xx, 3xx: [`Outcome::Success`] (no header is read on this path);
/// - 429: [`Outcome::RateLimited`];
/// - 503 and 529 (Anthropic's "overloaded"): [`Outcome::Overloaded`];
/// - 408, 409 and every other 5xx: [`Outcome::ServerError`];
/// - any other 4xx: [`Outcome::ClientError`], unless the server sent
///   `x-should-retry: true`, in which case it is a [`Outcome::ServerError`]
///   the server has declared safe to retry.
///
/// For every non-success status the server's wait is read with
/// [`evenkeel_headers::retry_after`] and the verdict with
/// [`evenkeel_headers::should_retry`]; a `Pushback::Stop` is a verdict of
/// "do not retry".
///
/// With body inspection on (the default), a 429 that carries no wait and no
/// verdict asks to see the start of its body, and is marked hopeless when the
/// body names a quota that waiting cannot restore (`insufficient_quota`,
/// `billing_hard_limit_reached`, …).
#[derive(Debug, Clone)]
pub struct HttpClassifier {
    inspect_bodies: bool,
}

impl Default for HttpClassifier {
    fn default() -> Self {
        HttpClassifier {
            inspect_bodies: true,
        }
    }
}

impl HttpClassifier {
    /// A classifier with the defaults described above.
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns body inspection of bare 429s on or off.
    pub fn inspect_bodies(mut self, on: bool) -> Self {
        self.inspect_bodies = on;
        self
    }

    /// Classifies a status code and its headers.
    pub fn classify_parts(&self, status: StatusCode, headers: &HeaderMap) -> Outcome {
        classify_status(status, headers)
    }
}

/// Classifies an HTTP status and headers with the default rules of
/// [`HttpClassifier`].
pub fn classify_status(status: StatusCode, headers: &HeaderMap) -> Outcome {
    let code = status.as_u16();
    if code < 400 {
        return Outcome::Success;
    }
    let signal = read_signal(headers);
    match code {
        429 => Outcome::RateLimited(signal),
        503 | 529 => Outcome::Overloaded(signal),
        408 | 409 | 500..=599 => Outcome::ServerError(signal),
        _ if signal.should_retry == Some(true) => Outcome::ServerError(signal),
        _ => Outcome::ClientError,
    }
}

/// Reads the server's wait and verdict from response headers.
pub fn read_signal(headers: &HeaderMap) -> Signal {
    let mut signal = Signal {
        wait: None,
        should_retry: evenkeel_headers::should_retry(headers),
    };
    match evenkeel_headers::retry_after(headers, clock::system_now()) {
        Some(evenkeel_headers::Pushback::After(wait)) => signal.wait = Some(wait),
        Some(evenkeel_headers::Pushback::Stop) => signal.should_retry = Some(false),
        _ => {}
    }
    signal
}

impl<B> Classify<Response<B>> for HttpClassifier {
    #[inline]
    fn classify_response(&self, response: &Response<B>) -> Outcome {
        if response.status().as_u16() < 400 {
            return Outcome::Success;
        }
        classify_status(response.status(), response.headers())
    }

    fn wants_body(&self, outcome: &Outcome) -> bool {
        self.inspect_bodies && matches!(outcome, Outcome::RateLimited(s) if *s == Signal::NONE)
    }

    fn classify_body(&self, outcome: Outcome, body: &[u8]) -> Outcome {
        match outcome {
            Outcome::RateLimited(signal) if body_says_hopeless(body) => {
                Outcome::RateLimited(signal.with_should_retry(Some(false)))
            }
            other => other,
        }
    }
}

/// Error codes in 429 bodies that mean the quota will not come back by
/// waiting.
const HOPELESS_CODES: &[&[u8]] = &[
    b"insufficient_quota",
    b"billing_hard_limit_reached",
    b"billing_not_active",
    b"access_terminated",
];

fn body_says_hopeless(body: &[u8]) -> bool {
    HOPELESS_CODES
        .iter()
        .any(|code| body.windows(code.len()).any(|w| w == *code))
}

/// A classifier for gRPC over HTTP/2.
///
/// Reads `grpc-status` from the response headers, where servers put it in
/// trailers-only responses (the usual shape of an immediate rejection):
///
/// - `OK` (0): [`Outcome::Success`];
/// - `RESOURCE_EXHAUSTED` (8): [`Outcome::RateLimited`], with the wait from
///   `grpc-retry-pushback-ms` (a negative value forbids retrying);
/// - `UNAVAILABLE` (14): [`Outcome::Overloaded`];
/// - `DEADLINE_EXCEEDED` (4), `INTERNAL` (13), `ABORTED` (10),
///   `UNKNOWN` (2): [`Outcome::ServerError`];
/// - every other code: [`Outcome::ClientError`].
///
/// A response without `grpc-status` in its headers has its status in the
/// trailers, after the body; its HTTP status is classified as
/// [`HttpClassifier`] would (200 is a success).
#[derive(Debug, Clone, Default)]
pub struct GrpcClassifier {
    _priv: (),
}

impl GrpcClassifier {
    /// A gRPC classifier.
    pub fn new() -> Self {
        Self::default()
    }
}

/// gRPC status codes this crate distinguishes.
mod grpc_code {
    pub(super) const OK: u32 = 0;
    pub(super) const UNKNOWN: u32 = 2;
    pub(super) const DEADLINE_EXCEEDED: u32 = 4;
    pub(super) const RESOURCE_EXHAUSTED: u32 = 8;
    pub(super) const ABORTED: u32 = 10;
    pub(super) const INTERNAL: u32 = 13;
    pub(super) const UNAVAILABLE: u32 = 14;
}

/// Classifies a gRPC status code with the headers that came with it.
pub fn classify_grpc_status(code: u32, headers: &HeaderMap) -> Outcome {
    use grpc_code::*;
    match code {
        OK => Outcome::Success,
        RESOURCE_EXHAUSTED => Outcome::RateLimited(read_signal(headers)),
        UNAVAILABLE => Outcome::Overloaded(read_signal(headers)),
        DEADLINE_EXCEEDED | INTERNAL | ABORTED | UNKNOWN => {
            Outcome::ServerError(read_signal(headers))
        }
        _ => Outcome::ClientError,
    }
}

impl<B> Classify<Response<B>> for GrpcClassifier {
    fn classify_response(&self, response: &Response<B>) -> Outcome {
        let headers = response.headers();
        match headers.get("grpc-status") {
            Some(value) => match std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                Some(code) => classify_grpc_status(code, headers),
                // A malformed status is treated as UNKNOWN, as gRPC clients do.
                None => Outcome::ServerError(read_signal(headers)),
            },
            None => classify_status(response.status(), headers),
        }
    }
}

/// Classifies an error by walking its [`source`](Error::source) chain.
///
/// Recognises evenkeel's own errors ([`Overloaded`], [`QuotaExhausted`],
/// [`DeadlineExceeded`], [`TimedOut`]), timeouts from tower and tokio, [`std::io::Error`]
/// kinds, and the errors of hyper, hyper-util, h2 and rustls by their
/// messages (no dependency on those crates is needed). Connect-phase
/// failures (hyper-util's `Connect` errors, "tcp connect error", "dns
/// error") are never-sent; an unrecognised error is
/// [`FailureKind::Other`], which is maybe-processed.
///
/// ```
/// use std::io;
/// use evenkeel_core::{classify_error, FailureKind, Outcome};
///
/// let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused");
/// match classify_error(&refused) {
///     Outcome::Failed(f) => {
///         assert_eq!(f.kind, FailureKind::ConnectionRefused);
///         assert!(Outcome::Failed(f).never_sent());
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
pub fn classify_error(error: &(dyn Error + 'static)) -> Outcome {
    let mut facts = Facts::default();
    let mut current: Option<&(dyn Error + 'static)> = Some(error);
    let mut depth = 0;
    while let Some(err) = current {
        if let Some(outcome) = local_error(err) {
            return outcome;
        }
        facts.observe(err);
        depth += 1;
        if depth >= 32 {
            break;
        }
        current = err.source();
    }
    Outcome::Failed(facts.into_failure())
}

fn local_error(err: &(dyn Error + 'static)) -> Option<Outcome> {
    if err.is::<Overloaded>() {
        return Some(Outcome::Failed(Failure::new(FailureKind::LocalOverload)));
    }
    if let Some(q) = err.downcast_ref::<QuotaExhausted>() {
        let wait = q
            .until()
            .map(|until| until.saturating_duration_since(clock::now()));
        return Some(Outcome::Failed(
            Failure::new(FailureKind::LocalQuota).with_wait(wait),
        ));
    }
    if err.is::<DeadlineExceeded>() {
        return Some(Outcome::Failed(Failure::new(FailureKind::Deadline)));
    }
    if err.is::<TimedOut>() {
        return Some(Outcome::Failed(Failure::new(FailureKind::Timeout)));
    }
    None
}

/// What the chain walk has learnt so far.
#[derive(Default)]
struct Facts {
    connect_phase: bool,
    never_sent: bool,
    kind: Option<FailureKind>,
    /// TLS named in a message: a handshake or certificate failure if it
    /// happened while connecting, otherwise only a broken connection.
    tls: Option<FailureKind>,
}

impl Facts {
    fn note(&mut self, kind: FailureKind) {
        let better = match self.kind {
            None => true,
            Some(current) => rank(kind) > rank(current),
        };
        if better {
            self.kind = Some(kind);
        }
    }

    fn observe(&mut self, err: &(dyn Error + 'static)) {
        if err.is::<ConnectError>() {
            self.connect_phase = true;
        }
        if err.is::<tokio::time::error::Elapsed>() {
            self.note(FailureKind::Timeout);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused => self.note(FailureKind::ConnectionRefused),
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                    self.note(FailureKind::ConnectionReset)
                }
                K::TimedOut => self.note(FailureKind::Timeout),
                K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => {
                    self.connect_phase = true;
                    self.note(FailureKind::Connect)
                }
                _ => {}
            }
        }
        // Message-based recognition: hyper, hyper-util, h2, rustls, native-tls
        // and tower errors are identified by their stable texts, so this crate
        // needs none of them as dependencies.
        let text = MessageText::of(err);
        let msg = text.as_str();
        if contains(msg, "client error (connect)")
            || contains(msg, "tcp connect error")
            || contains(msg, "tcp open error")
            || contains(msg, "error trying to connect")
        {
            self.connect_phase = true;
        }
        if contains(msg, "client error (canceled)") || contains(msg, "operation was canceled") {
            // hyper-util's pool: the request was cancelled before it was written.
            self.never_sent = true;
            self.note(FailureKind::Refused);
        }
        if contains(msg, "dns error")
            || contains(msg, "failed to lookup address")
            || contains(msg, "name or service not known")
            || contains(msg, "nodename nor servname")
            || contains(msg, "no such host")
            || contains(msg, "temporary failure in name resolution")
        {
            self.connect_phase = true;
            self.note(FailureKind::Dns);
        }
        // TLS words say what failed, not when: the phase comes from a
        // connect marker in the chain (`ConnectError`, hyper-util's
        // connect error), and is settled in `into_failure`.
        if contains(msg, "certificate")
            || contains(msg, "unknownissuer")
            || contains(msg, "unknown issuer")
            || contains(msg, "notvalidforname")
            || contains(msg, "self signed")
            || contains(msg, "self-signed")
        {
            self.tls = Some(FailureKind::Certificate);
        } else if contains(msg, "handshake") || contains(msg, "tls") || contains(msg, "ssl") {
            self.tls.get_or_insert(FailureKind::Tls);
        }
        if contains(msg, "refused stream") || contains(msg, "refused_stream") {
            self.never_sent = true;
            self.note(FailureKind::Refused);
        }
        if contains(msg, "connection closed before message completed")
            || contains(msg, "connection reset")
        {
            self.note(FailureKind::ConnectionReset);
        }
        if contains(msg, "request timed out")
            || contains(msg, "deadline has elapsed")
            || contains(msg, "timed out")
        {
            self.note(FailureKind::Timeout);
        }
    }

    fn into_failure(mut self) -> Failure {
        let mut maybe_sent = false;
        if let Some(tls) = self.tls {
            if self.connect_phase {
                self.note(tls);
            } else if self.kind.is_none() {
                // TLS broke after the connection was up (a peer closing
                // without `close_notify`, a record error mid-response):
                // the request may have been written and processed.
                self.note(FailureKind::Tls);
                maybe_sent = true;
            }
        }
        let kind = match (self.kind, self.connect_phase) {
            (Some(FailureKind::Timeout), true) => FailureKind::ConnectTimeout,
            (Some(FailureKind::ConnectionReset), true) => FailureKind::Connect,
            (Some(kind), _) => kind,
            (None, true) => FailureKind::Connect,
            (None, false) => FailureKind::Other,
        };
        let mut failure = Failure::new(kind);
        if self.connect_phase || self.never_sent {
            failure.sent = Sent::Never;
        } else if maybe_sent {
            failure.sent = Sent::Maybe;
        }
        failure
    }
}

/// How specific a kind is; the most specific one found in a chain wins.
fn rank(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::Certificate => 10,
        FailureKind::Dns => 9,
        FailureKind::Tls => 8,
        FailureKind::ConnectionRefused => 7,
        FailureKind::Refused => 6,
        FailureKind::ConnectTimeout => 5,
        FailureKind::Timeout => 4,
        FailureKind::ConnectionReset => 3,
        FailureKind::Connect => 2,
        _ => 1,
    }
}

/// An error's message, rendered into a small stack buffer when it fits.
struct MessageText {
    buf: [u8; 256],
    len: usize,
}

impl MessageText {
    fn of(err: &dyn Error) -> MessageText {
        use fmt::Write;
        let mut text = MessageText {
            buf: [0; 256],
            len: 0,
        };
        // Truncation is fine: the recognised phrases come first in every
        // message we look for.
        let _ = write!(text, "{err}");
        text
    }

    fn as_str(&self) -> &str {
        // Only whole UTF-8 sequences are ever written (see `write_str`).
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for MessageText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if take < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// ASCII case-insensitive substring search; `needle` is lowercase.
fn contains(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty()
        || h.windows(n.len())
            .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::time::Duration;

    #[derive(Debug)]
    struct Wrap(&'static str, Box<dyn Error + Send + Sync>);
    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for Wrap {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.1)
        }
    }

    fn kind(err: &(dyn Error + 'static)) -> (FailureKind, Sent) {
        match classify_error(err) {
            Outcome::Failed(f) => (f.kind, f.sent),
            other => panic!("{other:?}"),
        }
    }

    fn status(code: u16, headers: &[(&str, &str)]) -> Outcome {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        classify_status(StatusCode::from_u16(code).unwrap(), &map)
    }

    #[test]
    fn statuses() {
        assert_eq!(status(200, &[]), Outcome::Success);
        assert_eq!(status(304, &[]), Outcome::Success);
        assert_eq!(status(404, &[]), Outcome::ClientError);
        assert_eq!(status(400, &[]), Outcome::ClientError);
        assert!(matches!(status(429, &[]), Outcome::RateLimited(_)));
        assert!(matches!(status(503, &[]), Outcome::Overloaded(_)));
        assert!(matches!(status(529, &[]), Outcome::Overloaded(_)));
        for code in [408, 409, 500, 502, 504] {
            assert!(
                matches!(status(code, &[]), Outcome::ServerError(_)),
                "{code}"
            );
        }
    }

    #[test]
    fn signals_from_headers() {
        let o = status(429, &[("retry-after", "15")]);
        assert_eq!(o.server_wait(), Some(Duration::from_secs(15)));
        let o = status(529, &[("x-should-retry", "true")]);
        assert_eq!(o.signal().unwrap().should_retry, Some(true));
        let o = status(429, &[("x-should-retry", "false")]);
        assert!(o.is_hopeless());
        let o = status(422, &[("x-should-retry", "true")]);
        assert!(matches!(o, Outcome::ServerError(_)));
    }

    #[test]
    fn grpc_statuses() {
        let grpc = |code: &str, extra: &[(&'static str, &'static str)]| {
            let mut b = Response::builder().status(200).header("grpc-status", code);
            for (k, v) in extra {
                b = b.header(*k, *v);
            }
            GrpcClassifier::new().classify_response(&b.body(()).unwrap())
        };
        assert_eq!(grpc("0", &[]), Outcome::Success);
        let o = grpc("8", &[("grpc-retry-pushback-ms", "250")]);
        assert!(matches!(o, Outcome::RateLimited(_)));
        assert_eq!(o.server_wait(), Some(Duration::from_millis(250)));
        assert!(grpc("8", &[("grpc-retry-pushback-ms", "-1")]).retry_forbidden());
        assert!(matches!(grpc("14", &[]), Outcome::Overloaded(_)));
        assert!(matches!(grpc("4", &[]), Outcome::ServerError(_)));
        assert_eq!(grpc("3", &[]), Outcome::ClientError);
        assert!(matches!(grpc("junk", &[]), Outcome::ServerError(_)));
        let no_status = Response::builder().status(200).body(()).unwrap();
        assert_eq!(
            GrpcClassifier::new().classify_response(&no_status),
            Outcome::Success
        );
    }

    #[test]
    fn hopeless_bodies() {
        let c = HttpClassifier::new();
        let c: &dyn Classify<Response<()>> = &c;
        let res = Response::builder().status(429).body(()).unwrap();
        let outcome = c.classify_response(&res);
        assert!(c.wants_body(&outcome));
        let body = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert!(c.classify_body(outcome, body).is_hopeless());
        assert!(
            !c.classify_body(outcome, br#"{"error":{"type":"requests"}}"#)
                .is_hopeless()
        );
        let waited = Response::builder()
            .status(429)
            .header("retry-after", "3")
            .body(())
            .unwrap();
        assert!(!c.wants_body(&c.classify_response(&waited)));
        let off = HttpClassifier::new().inspect_bodies(false);
        assert!(!Classify::<Response<()>>::wants_body(&off, &outcome));
    }

    #[test]
    fn io_kinds() {
        let e = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(kind(&e), (FailureKind::ConnectionRefused, Sent::Never));
        let e = io::Error::new(io::ErrorKind::ConnectionReset, "reset by peer");
        assert_eq!(kind(&e), (FailureKind::ConnectionReset, Sent::Maybe));
        let e = io::Error::other("something odd");
        assert_eq!(kind(&e), (FailureKind::Other, Sent::Maybe));
    }

    #[test]
    fn hyper_util_shaped_chains() {
        // client error (Connect) -> dns error -> io error
        let dns = Wrap(
            "client error (Connect)",
            Box::new(Wrap(
                "dns error",
                Box::new(io::Error::other(
                    "failed to lookup address information: Name or service not known",
                )),
            )),
        );
        assert_eq!(kind(&dns), (FailureKind::Dns, Sent::Never));

        let refused = Wrap(
            "client error (Connect)",
            Box::new(Wrap(
                "tcp connect error",
                Box::new(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "Connection refused (os error 111)",
                )),
            )),
        );
        assert_eq!(
            kind(&refused),
            (FailureKind::ConnectionRefused, Sent::Never)
        );

        let connect_timeout = Wrap(
            "client error (Connect)",
            Box::new(Wrap(
                "tcp connect error",
                Box::new(io::Error::new(io::ErrorKind::TimedOut, "connect timeout")),
            )),
        );
        assert_eq!(
            kind(&connect_timeout),
            (FailureKind::ConnectTimeout, Sent::Never)
        );

        let cert = Wrap(
            "client error (Connect)",
            Box::new(io::Error::new(
                io::ErrorKind::InvalidData,
                "invalid peer certificate: UnknownIssuer",
            )),
        );
        assert_eq!(kind(&cert), (FailureKind::Certificate, Sent::Never));

        let openssl = Wrap(
            "error trying to connect",
            Box::new(io::Error::other(
                "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed",
            )),
        );
        assert_eq!(kind(&openssl), (FailureKind::Certificate, Sent::Never));

        let incomplete = Wrap(
            "client error (SendRequest)",
            Box::new(Wrap(
                "connection closed before message completed",
                Box::new(io::Error::other("x")),
            )),
        );
        assert_eq!(
            kind(&incomplete),
            (FailureKind::ConnectionReset, Sent::Maybe)
        );

        let refused_stream = Wrap(
            "client error (SendRequest)",
            Box::new(io::Error::other(
                "stream error received: refused stream before processing any application logic",
            )),
        );
        assert_eq!(kind(&refused_stream), (FailureKind::Refused, Sent::Never));

        let canceled = Wrap(
            "client error (Canceled)",
            Box::new(io::Error::other("operation was canceled")),
        );
        assert_eq!(kind(&canceled), (FailureKind::Refused, Sent::Never));
    }

    #[test]
    fn tls_words_count_by_phase() {
        // A peer closing without close_notify after the request was
        // written: maybe processed, never a connect failure.
        let no_close_notify = Wrap(
            "client error (SendRequest)",
            Box::new(Wrap(
                "connection error",
                Box::new(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed connection without sending TLS close_notify",
                )),
            )),
        );
        assert_eq!(
            kind(&no_close_notify),
            (FailureKind::ConnectionReset, Sent::Maybe)
        );
        // A read timeout whose message says "ssl".
        let ssl_timeout = io::Error::new(io::ErrorKind::TimedOut, "ssl read timed out");
        assert_eq!(kind(&ssl_timeout), (FailureKind::Timeout, Sent::Maybe));
        // TLS named with nothing else known, outside a connect: maybe sent.
        let bare = io::Error::other("received fatal alert: DecodeError (tls)");
        assert_eq!(kind(&bare), (FailureKind::Tls, Sent::Maybe));
        // "certificate" outside a connect is no certificate failure.
        let later = io::Error::other("certificate data in a response");
        assert_ne!(kind(&later).0, FailureKind::Certificate);
        // The same TLS error inside a typed connect marker: never sent.
        let handshake =
            ConnectError::new(io::Error::other("invalid peer certificate: UnknownIssuer"));
        assert_eq!(kind(&handshake), (FailureKind::Certificate, Sent::Never));
        let eof = ConnectError::new(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "tls handshake eof",
        ));
        assert_eq!(kind(&eof), (FailureKind::Tls, Sent::Never));
    }

    #[test]
    fn local_errors() {
        assert_eq!(
            kind(&Overloaded::new()),
            (FailureKind::LocalOverload, Sent::Never)
        );
        assert_eq!(
            kind(&DeadlineExceeded::new()),
            (FailureKind::Deadline, Sent::Maybe)
        );
        let boxed: Box<dyn Error + Send + Sync> = Box::new(Overloaded::new());
        assert_eq!(kind(&*boxed), (FailureKind::LocalOverload, Sent::Never));
    }

    #[tokio::test]
    async fn timeouts() {
        let elapsed = tokio::time::timeout(Duration::ZERO, std::future::pending::<()>())
            .await
            .unwrap_err();
        assert_eq!(kind(&elapsed), (FailureKind::Timeout, Sent::Maybe));
    }

    #[test]
    fn long_and_odd_messages_do_not_panic() {
        let long = io::Error::other("é".repeat(1000));
        assert_eq!(kind(&long), (FailureKind::Other, Sent::Maybe));
    }
}
