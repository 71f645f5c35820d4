//! Error-chain classification: [`classify_error`] walks the `source()` chain
//! of hyper, hyper-util, io and TLS errors and names the failure it finds.

use std::error::Error;
use std::fmt;

use crate::clock;
use crate::error::{
    ConnectError, DeadlineExceeded, Overloaded, QuotaExhausted, SentError, StreamError, TimedOut,
};
use crate::outcome::{Failure, FailureKind, Outcome, Sent};

/// Classifies an error by walking its [`source`](Error::source) chain.
///
/// Recognises evenkeel's own errors ([`Overloaded`], [`QuotaExhausted`],
/// [`DeadlineExceeded`], [`TimedOut`], [`StreamError`]), timeouts from tower and tokio, [`std::io::Error`]
/// kinds, and, with the `hyper` feature, `hyper::Error` and hyper-util's
/// legacy client error by their types:
///
/// - hyper-util's `is_connect()`: the failure happened while connecting,
///   so the request was never sent;
/// - hyper's `is_canceled()`: the request was dropped before any of it
///   was written (its connection closed while it waited in the
///   connection's queue), so it was never sent and may be resent, even a
///   `POST`;
/// - hyper's `is_incomplete_message()`: the connection closed after the
///   request was written and before a whole answer came, so it may have
///   been processed.
///
/// Errors of libraries this crate does not depend on (h2, rustls,
/// native-tls, clients built without the feature) are recognised by their
/// stable messages. Connect-phase failures ("tcp connect error", "dns
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
    if let Some(stream) = err.downcast_ref::<StreamError>() {
        return Some(stream.outcome());
    }
    None
}

/// What the chain walk has learnt so far.
#[derive(Default)]
struct Facts {
    connect_phase: bool,
    /// A [`SentError`] marks the chain: the request was handed over.
    sent_phase: bool,
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
        if let Some(sent) = err.downcast_ref::<SentError>() {
            self.sent_phase = true;
            if sent.is_timeout() {
                self.note(FailureKind::Timeout);
            }
        }
        #[cfg(feature = "hyper")]
        self.observe_hyper(err);
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
        if contains(msg, "tcp connect error")
            || contains(msg, "tcp open error")
            || contains(msg, "error trying to connect")
        {
            self.connect_phase = true;
        }
        // Without the `hyper` feature, hyper's and hyper-util's errors can
        // only be told by their messages; with it, `observe_hyper` reads
        // their types and the words are not trusted.
        #[cfg(not(feature = "hyper"))]
        {
            if contains(msg, "client error (connect)") {
                self.connect_phase = true;
            }
            if contains(msg, "client error (canceled)") || contains(msg, "operation was canceled") {
                // hyper-util's pool: the request was cancelled before it was written.
                self.never_sent = true;
                self.note(FailureKind::Refused);
            }
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

    /// hyper's and hyper-util's errors, by their types.
    #[cfg(feature = "hyper")]
    fn observe_hyper(&mut self, err: &(dyn Error + 'static)) {
        if err
            .downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(|client| client.is_connect())
        {
            self.connect_phase = true;
        }
        if let Some(hyper) = err.downcast_ref::<hyper::Error>() {
            if hyper.is_canceled() {
                // Dropped from the connection's queue before a byte of it
                // was written.
                self.never_sent = true;
                self.note(FailureKind::Refused);
            } else if hyper.is_incomplete_message() {
                self.note(FailureKind::ConnectionReset);
            } else if hyper.is_timeout() {
                self.note(FailureKind::Timeout);
            }
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
        if self.connect_phase {
            failure.sent = Sent::Never;
        } else if self.sent_phase || maybe_sent {
            // The phase is known from a type: whatever the words below
            // say, the request may have been processed.
            failure.sent = Sent::Maybe;
        } else if self.never_sent {
            failure.sent = Sent::Never;
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

        // hyper-util's connect marker by its words, without the feature.
        #[cfg(not(feature = "hyper"))]
        {
            let cert = Wrap(
                "client error (Connect)",
                Box::new(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "invalid peer certificate: UnknownIssuer",
                )),
            );
            assert_eq!(kind(&cert), (FailureKind::Certificate, Sent::Never));
        }

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

        // Messages alone decide only without the `hyper` feature; with it,
        // the types do (`tests/hyper_errors.rs`).
        #[cfg(not(feature = "hyper"))]
        {
            let canceled = Wrap(
                "client error (Canceled)",
                Box::new(io::Error::other("operation was canceled")),
            );
            assert_eq!(kind(&canceled), (FailureKind::Refused, Sent::Never));
        }
        #[cfg(feature = "hyper")]
        {
            // Words that look like hyper's are not hyper's error.
            let lookalike = Wrap(
                "client error (Canceled)",
                Box::new(io::Error::other("operation was canceled")),
            );
            assert_eq!(kind(&lookalike), (FailureKind::Other, Sent::Maybe));
        }
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
    fn a_sent_marker_keeps_words_from_claiming_never_sent() {
        // Words that alone read as never sent, inside the typed marker.
        let canceled = SentError::new(Wrap(
            "client error (Canceled)",
            Box::new(io::Error::other("operation was canceled")),
        ));
        assert_eq!(kind(&canceled).1, Sent::Maybe);
        // The words name the kind only where hyper's errors are not read by
        // type (without the `hyper` feature).
        #[cfg(not(feature = "hyper"))]
        assert_eq!(kind(&canceled).0, FailureKind::Refused);
        let refused_io =
            SentError::new(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
        assert_eq!(kind(&refused_io).1, Sent::Maybe);
        let reset = SentError::new(io::Error::new(io::ErrorKind::ConnectionReset, "x"));
        assert_eq!(kind(&reset), (FailureKind::ConnectionReset, Sent::Maybe));
        // A timeout by type, with no word about time in its message.
        let timeout = SentError::timed_out(io::Error::other("gave up"));
        assert_eq!(kind(&timeout), (FailureKind::Timeout, Sent::Maybe));
        // A connect marker still wins: never sent.
        let connect = ConnectError::new(io::Error::other("gave up"));
        assert_eq!(kind(&connect), (FailureKind::Connect, Sent::Never));
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
