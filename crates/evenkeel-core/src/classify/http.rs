//! HTTP status classification: [`HttpClassifier`], [`classify_status`] and
//! the 429 bodies that mean waiting will not help.

use http::{HeaderMap, Response, StatusCode};

use super::{Classify, read_signal};
use crate::outcome::{Outcome, Signal};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
