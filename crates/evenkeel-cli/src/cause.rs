//! Why a logical request failed, in the few causes a person acts on.

use std::error::Error;

use evenkeel::core::{FailureKind, Outcome, classify_error};
use http::StatusCode;

/// The cause of a failed request: its final answer, or the error it ended
/// with. The keys are those of `failures_by_cause` in `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The final answer was a 429.
    RateLimited,
    /// The final answer was a 5xx (529 included).
    ServerError,
    /// The connection was reset or closed before a whole answer came.
    Reset,
    /// An attempt's timeout or the total deadline ran out.
    Timeout,
    /// The stack held the request back itself and could not send it in
    /// time: a local quota, a concurrency limit, no endpoint available.
    Local,
    /// Anything else: another status (4xx, 3xx), refused connections, DNS,
    /// TLS.
    Other,
}

impl Cause {
    pub(crate) const ALL: [Cause; 6] = [
        Cause::RateLimited,
        Cause::ServerError,
        Cause::Reset,
        Cause::Timeout,
        Cause::Local,
        Cause::Other,
    ];

    /// The key in `failures_by_cause`.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Cause::RateLimited => "rate_limited",
            Cause::ServerError => "server_error",
            Cause::Reset => "reset",
            Cause::Timeout => "timeout",
            Cause::Local => "local",
            Cause::Other => "other",
        }
    }

    /// The row of the table.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Cause::RateLimited => "  429 rate limited",
            Cause::ServerError => "  5xx server error",
            Cause::Reset => "  connection reset",
            Cause::Timeout => "  timed out",
            Cause::Local => "  held back locally",
            Cause::Other => "  other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The cause of a final answer that is not a success.
    pub(crate) fn of_status(status: StatusCode) -> Cause {
        if status == StatusCode::TOO_MANY_REQUESTS {
            Cause::RateLimited
        } else if status.is_server_error() {
            Cause::ServerError
        } else {
            Cause::Other
        }
    }

    /// The cause of an error, from the phase and type the stack's
    /// classification finds in its chain.
    pub(crate) fn of_error(error: &(dyn Error + 'static)) -> Cause {
        match classify_error(error) {
            Outcome::Failed(failure) => match failure.kind {
                FailureKind::ConnectionReset => Cause::Reset,
                FailureKind::Timeout | FailureKind::ConnectTimeout | FailureKind::Deadline => {
                    Cause::Timeout
                }
                FailureKind::LocalOverload | FailureKind::LocalQuota => Cause::Local,
                _ => Cause::Other,
            },
            _ => Cause::Other,
        }
    }
}

/// Failed requests, counted by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Causes([u64; 6]);

impl Causes {
    pub(crate) fn add(&mut self, cause: Cause) {
        self.0[cause.index()] += 1;
    }

    pub(crate) fn get(&self, cause: Cause) -> u64 {
        self.0[cause.index()]
    }

    /// Every cause and its count, zeros included, in a fixed order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Cause, u64)> + '_ {
        Cause::ALL.into_iter().map(|c| (c, self.get(c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evenkeel::core::error::{DeadlineExceeded, Overloaded, QuotaExhausted, TimedOut};
    use evenkeel::headers::Resource;

    #[test]
    fn statuses_have_their_causes() {
        assert_eq!(
            Cause::of_status(StatusCode::TOO_MANY_REQUESTS),
            Cause::RateLimited
        );
        for code in [500, 502, 503, 529] {
            assert_eq!(
                Cause::of_status(StatusCode::from_u16(code).unwrap()),
                Cause::ServerError
            );
        }
        assert_eq!(Cause::of_status(StatusCode::NOT_FOUND), Cause::Other);
    }

    #[test]
    fn errors_have_their_causes() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert_eq!(Cause::of_error(&reset), Cause::Reset);
        assert_eq!(
            Cause::of_error(&TimedOut::after(std::time::Duration::from_secs(1))),
            Cause::Timeout
        );
        assert_eq!(Cause::of_error(&DeadlineExceeded::new()), Cause::Timeout);
        assert_eq!(Cause::of_error(&Overloaded::new()), Cause::Local);
        assert_eq!(
            Cause::of_error(&QuotaExhausted::new(Resource::Requests, None)),
            Cause::Local
        );
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(Cause::of_error(&refused), Cause::Other);
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        let keys: Vec<_> = Cause::ALL.iter().map(|c| c.key()).collect();
        assert_eq!(
            keys,
            [
                "rate_limited",
                "server_error",
                "reset",
                "timeout",
                "local",
                "other"
            ]
        );
        let mut causes = Causes::default();
        causes.add(Cause::Reset);
        causes.add(Cause::Reset);
        assert_eq!(causes.get(Cause::Reset), 2);
        assert_eq!(causes.iter().map(|(_, n)| n).sum::<u64>(), 2);
    }
}
