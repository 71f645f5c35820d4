//! When a request may be sent again.
//!
//! Retry and failover both resend requests; both use the same rules, so a
//! `POST` that may have been processed is duplicated by neither.

use http::{HeaderMap, Method};

use crate::outcome::{Outcome, Sent};

/// The header that marks a request as safe to repeat.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `true` when repeating the request cannot change the result: its method is
/// idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) or it carries an
/// `Idempotency-Key` header.
pub fn is_idempotent(method: &Method, headers: &HeaderMap) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    ) || headers.contains_key(IDEMPOTENCY_KEY)
}

/// The default rule for resending a request after `outcome`.
///
/// - never when the server said not to (`x-should-retry: false`, a hopeless
///   quota) or the outcome is a success or a client error;
/// - always when the request was never sent, or the server refused it for
///   quota (429: the server did not process it), or the server said it is
///   safe (`x-should-retry: true`), or an overload came with a server wait;
/// - otherwise (server errors, overloads without a wait, failures after the
///   request may have been written) only for idempotent requests.
pub fn may_resend(outcome: &Outcome, method: &Method, headers: &HeaderMap) -> bool {
    if outcome.retry_forbidden() {
        return false;
    }
    match outcome {
        Outcome::Success | Outcome::ClientError => false,
        Outcome::RateLimited(_) => true,
        Outcome::Overloaded(s) if s.wait.is_some() || s.should_retry == Some(true) => true,
        Outcome::ServerError(s) if s.should_retry == Some(true) => true,
        Outcome::Overloaded(_) | Outcome::ServerError(_) => is_idempotent(method, headers),
        Outcome::Failed(f) => match f.sent {
            Sent::Never => true,
            Sent::Maybe => is_idempotent(method, headers),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{FailureKind, Signal};
    use std::time::Duration;

    #[test]
    fn post_rules() {
        let h = HeaderMap::new();
        let post = Method::POST;
        let reset = Outcome::Failed(FailureKind::ConnectionReset.into());
        let refused = Outcome::Failed(FailureKind::ConnectionRefused.into());
        assert!(!may_resend(&reset, &post, &h));
        assert!(may_resend(&reset, &Method::GET, &h));
        assert!(may_resend(&refused, &post, &h));
        assert!(may_resend(&Outcome::RateLimited(Signal::NONE), &post, &h));
        assert!(!may_resend(&Outcome::ServerError(Signal::NONE), &post, &h));
        assert!(may_resend(
            &Outcome::Overloaded(Signal::wait(Duration::from_secs(1))),
            &post,
            &h
        ));
        assert!(!may_resend(&Outcome::Overloaded(Signal::NONE), &post, &h));
        assert!(may_resend(
            &Outcome::Overloaded(Signal::NONE.with_should_retry(Some(true))),
            &post,
            &h
        ));
        let mut keyed = HeaderMap::new();
        keyed.insert(IDEMPOTENCY_KEY, "abc".parse().unwrap());
        assert!(may_resend(&reset, &post, &keyed));
        assert!(!may_resend(
            &Outcome::RateLimited(Signal::NONE.with_should_retry(Some(false))),
            &Method::GET,
            &h
        ));
        assert!(!may_resend(&Outcome::ClientError, &Method::GET, &h));
    }
}
