//! [`Outcome`]: what one attempt's result means.

use std::fmt;
use std::time::Duration;

/// What one attempt's result means, in the terms every evenkeel middleware
/// acts on.
///
/// A classifier ([`Classify`](crate::Classify)) turns a response or an error
/// into an `Outcome`; retry, limit, quota, failover and metrics all read the
/// same value, so a 429 means the same thing everywhere.
///
/// | outcome | typical source | retried by default |
/// |---|---|---|
/// | [`Success`](Outcome::Success) | 1xx–3xx, gRPC `OK` | no |
/// | [`RateLimited`](Outcome::RateLimited) | 429, `RESOURCE_EXHAUSTED` | yes, any method, after the server's wait; never when hopeless |
/// | [`Overloaded`](Outcome::Overloaded) | 503, 529, `UNAVAILABLE` | yes; any method when the server gave a wait |
/// | [`ServerError`](Outcome::ServerError) | 500, 502, 504, 408, 409 | idempotent requests only |
/// | [`ClientError`](Outcome::ClientError) | other 4xx, permanent gRPC codes | no |
/// | [`Failed`](Outcome::Failed) | transport or local errors | see [`FailureKind`] |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The attempt succeeded (or failed in a way no resilience layer should
    /// act on, such as a redirect).
    Success,
    /// The server refused the attempt for quota reasons (429, gRPC
    /// `RESOURCE_EXHAUSTED`). The server did not process it.
    RateLimited(Signal),
    /// The server is overloaded or unavailable (503, Anthropic's 529, gRPC
    /// `UNAVAILABLE`).
    Overloaded(Signal),
    /// Another transient server-side error (500, 502, 504, 408, 409, gRPC
    /// `INTERNAL`, `ABORTED`, `DEADLINE_EXCEEDED`). The request may have been
    /// processed.
    ServerError(Signal),
    /// A permanent client-side error (other 4xx): retrying cannot help.
    ClientError,
    /// The attempt produced no response. [`Failure::sent`] says whether the
    /// request can have reached the server.
    Failed(Failure),
}

impl Outcome {
    /// `true` for [`Outcome::Success`].
    #[inline]
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }

    /// The server's signal for status-based outcomes.
    pub fn signal(&self) -> Option<&Signal> {
        match self {
            Outcome::RateLimited(s) | Outcome::Overloaded(s) | Outcome::ServerError(s) => Some(s),
            _ => None,
        }
    }

    /// The wait the server asked for, if any (from `Retry-After` and its
    /// relatives, or from a local quota's known refill time).
    pub fn server_wait(&self) -> Option<Duration> {
        match self {
            Outcome::Failed(f) => f.wait,
            other => other.signal().and_then(|s| s.wait),
        }
    }

    /// `true` when the server said not to retry (`x-should-retry: false`,
    /// a negative `grpc-retry-pushback-ms`, or a hopeless quota error such as
    /// OpenAI's `insufficient_quota`).
    pub fn retry_forbidden(&self) -> bool {
        self.signal().is_some_and(|s| s.should_retry == Some(false))
    }

    /// `true` when waiting cannot help: the quota is gone until someone acts
    /// (billing, plan), not until a window resets.
    pub fn is_hopeless(&self) -> bool {
        match self {
            Outcome::RateLimited(s) => s.should_retry == Some(false),
            Outcome::Failed(f) => f.kind == FailureKind::Certificate,
            _ => false,
        }
    }

    /// `true` when the server pushed back on load: a rate limit or overload.
    /// Adaptive limiters treat these as drops.
    pub fn is_pushback(&self) -> bool {
        matches!(self, Outcome::RateLimited(_) | Outcome::Overloaded(_))
    }

    /// `true` when the request certainly did not reach the server's
    /// application: it may be resent on any endpoint for any method.
    pub fn never_sent(&self) -> bool {
        match self {
            Outcome::Failed(f) => f.sent == Sent::Never,
            _ => false,
        }
    }

    /// `true` when the outcome counts against an endpoint's health: transport
    /// failures that reached the network and server errors. Rate limits, local
    /// rejections and client errors do not.
    pub fn is_endpoint_failure(&self) -> bool {
        match self {
            Outcome::Overloaded(_) | Outcome::ServerError(_) => true,
            Outcome::Failed(f) => !f.kind.is_local(),
            _ => false,
        }
    }

    /// A short, stable, low-cardinality name, suitable for a metric label
    /// (`error.type`) or a log field.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::RateLimited(_) => "rate_limited",
            Outcome::Overloaded(_) => "overloaded",
            Outcome::ServerError(_) => "server_error",
            Outcome::ClientError => "client_error",
            Outcome::Failed(f) => f.kind.as_str(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if let Some(wait) = self.server_wait() {
            write!(f, " (server wait {wait:?})")?;
        }
        Ok(())
    }
}

/// What the server said about retrying, read from the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Signal {
    /// The server's wait (`retry-after-ms`, `Retry-After`,
    /// `grpc-retry-pushback-ms`, …), measured from when the response arrived.
    pub wait: Option<Duration>,
    /// An explicit verdict: `x-should-retry` / `stripe-should-retry`, a
    /// `Pushback::Stop`, or a hopeless quota error. `None` when the server
    /// said nothing.
    pub should_retry: Option<bool>,
}

impl Signal {
    /// A signal with neither a wait nor a verdict.
    pub const NONE: Signal = Signal {
        wait: None,
        should_retry: None,
    };

    /// A signal carrying only a wait.
    pub fn wait(wait: Duration) -> Signal {
        Signal {
            wait: Some(wait),
            should_retry: None,
        }
    }

    /// Returns the signal with the given verdict.
    pub fn with_should_retry(mut self, should_retry: Option<bool>) -> Signal {
        self.should_retry = should_retry;
        self
    }

    /// Returns the signal with the given wait.
    pub fn with_wait(mut self, wait: Option<Duration>) -> Signal {
        self.wait = wait;
        self
    }
}

/// Whether a failed attempt can have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sent {
    /// The request certainly did not reach the server's application (DNS
    /// failure, refused connection, TLS handshake failure, HTTP/2
    /// `REFUSED_STREAM`, a local rejection). Safe to resend for every method.
    Never,
    /// The request may have been processed (reset or timeout after it was
    /// written, or an unknown error). Resend only if it is idempotent.
    Maybe,
}

/// An attempt that produced no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// What went wrong.
    pub kind: FailureKind,
    /// Whether the request can have reached the server.
    pub sent: Sent,
    /// A known time after which trying again can succeed (a local quota's
    /// refill time, for example).
    pub wait: Option<Duration>,
}

impl Failure {
    /// A failure of `kind`, with the [`Sent`] that kind implies.
    pub fn new(kind: FailureKind) -> Failure {
        Failure {
            kind,
            sent: kind.default_sent(),
            wait: None,
        }
    }

    /// Returns the failure with a known wait.
    pub fn with_wait(mut self, wait: Option<Duration>) -> Failure {
        self.wait = wait;
        self
    }

    /// Returns the failure with `sent` overridden.
    pub fn with_sent(mut self, sent: Sent) -> Failure {
        self.sent = sent;
        self
    }
}

impl From<FailureKind> for Failure {
    fn from(kind: FailureKind) -> Self {
        Failure::new(kind)
    }
}

/// The kinds of failure that produce no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The host name did not resolve. Never sent.
    Dns,
    /// The connection was refused (nothing listening). Never sent.
    ConnectionRefused,
    /// Connecting timed out. Never sent.
    ConnectTimeout,
    /// Another failure while connecting (unreachable network, proxy refused
    /// the tunnel). Never sent.
    Connect,
    /// The TLS handshake failed for a reason other than the peer's
    /// certificate (protocol mismatch, handshake refused). Never sent.
    Tls,
    /// The peer's certificate did not verify (`CERTIFICATE_VERIFY_FAILED`,
    /// unknown issuer, expired, wrong name). Never sent, and it will fail
    /// the same way on the same endpoint: never retried there, though
    /// failover may try another.
    Certificate,
    /// The HTTP/2 server refused the stream (`REFUSED_STREAM`) or the request
    /// was cancelled before it was written (pool checkout failure). Never
    /// sent.
    Refused,
    /// The connection was reset or closed after the request was written.
    /// Maybe processed.
    ConnectionReset,
    /// The attempt timed out after the request was written. Maybe processed.
    Timeout,
    /// A local concurrency limiter rejected the attempt. Never sent.
    LocalOverload,
    /// A local quota rejected the attempt (the wait exceeded its cap or the
    /// deadline). Never sent.
    LocalQuota,
    /// The caller's total deadline passed. Maybe processed.
    Deadline,
    /// Reading the request body failed (the caller's body stream broke).
    /// Never processed as a whole; not worth resending.
    RequestBody,
    /// Anything else. Maybe processed.
    Other,
}

impl FailureKind {
    /// The [`Sent`] this kind implies.
    pub fn default_sent(self) -> Sent {
        match self {
            FailureKind::Dns
            | FailureKind::ConnectionRefused
            | FailureKind::ConnectTimeout
            | FailureKind::Connect
            | FailureKind::Tls
            | FailureKind::Certificate
            | FailureKind::Refused
            | FailureKind::LocalOverload
            | FailureKind::LocalQuota => Sent::Never,
            FailureKind::ConnectionReset
            | FailureKind::Timeout
            | FailureKind::Deadline
            | FailureKind::RequestBody
            | FailureKind::Other => Sent::Maybe,
        }
    }

    /// `true` for failures that come from this process (limiter, quota,
    /// deadline, request body) rather than the endpoint.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            FailureKind::LocalOverload
                | FailureKind::LocalQuota
                | FailureKind::Deadline
                | FailureKind::RequestBody
        )
    }

    /// A short, stable name, suitable for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Dns => "dns",
            FailureKind::ConnectionRefused => "connection_refused",
            FailureKind::ConnectTimeout => "connect_timeout",
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::Certificate => "certificate",
            FailureKind::Refused => "refused_stream",
            FailureKind::ConnectionReset => "connection_reset",
            FailureKind::Timeout => "timeout",
            FailureKind::LocalOverload => "local_overload",
            FailureKind::LocalQuota => "local_quota",
            FailureKind::Deadline => "deadline",
            FailureKind::RequestBody => "request_body",
            FailureKind::Other => "other",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_sent_kinds() {
        for kind in [
            FailureKind::Dns,
            FailureKind::ConnectionRefused,
            FailureKind::ConnectTimeout,
            FailureKind::Tls,
            FailureKind::Certificate,
            FailureKind::Refused,
            FailureKind::LocalOverload,
        ] {
            assert!(Outcome::Failed(kind.into()).never_sent(), "{kind}");
        }
        for kind in [
            FailureKind::ConnectionReset,
            FailureKind::Timeout,
            FailureKind::Other,
        ] {
            assert!(!Outcome::Failed(kind.into()).never_sent(), "{kind}");
        }
    }

    #[test]
    fn rate_limits_are_not_endpoint_failures() {
        assert!(!Outcome::RateLimited(Signal::NONE).is_endpoint_failure());
        assert!(Outcome::Overloaded(Signal::NONE).is_endpoint_failure());
        assert!(Outcome::Failed(FailureKind::Dns.into()).is_endpoint_failure());
        assert!(!Outcome::Failed(FailureKind::LocalQuota.into()).is_endpoint_failure());
        assert!(!Outcome::ClientError.is_endpoint_failure());
    }

    #[test]
    fn hopeless_and_forbidden() {
        let hopeless = Outcome::RateLimited(Signal::NONE.with_should_retry(Some(false)));
        assert!(hopeless.is_hopeless());
        assert!(hopeless.retry_forbidden());
        let wait = Outcome::RateLimited(Signal::wait(Duration::from_secs(3)));
        assert!(!wait.is_hopeless());
        assert_eq!(wait.server_wait(), Some(Duration::from_secs(3)));
        assert_eq!(wait.to_string(), "rate_limited (server wait 3s)");
        assert!(Outcome::Failed(FailureKind::Certificate.into()).is_hopeless());
    }
}
