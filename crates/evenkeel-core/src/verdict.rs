//! The judgement of one attempt's answer, made once where the attempt ends.

use evenkeel_headers::RateLimits;

use crate::Outcome;

/// What one attempt's answer meant: its [`Outcome`] and the rate-limit
/// readings of its headers, judged once by an
/// [`Observe`](crate::observe::Observe) and read by every layer above
/// through the request's [`AttemptContext`](crate::ext::AttemptContext).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Verdict {
    /// The answer's outcome, from the stack's classifier.
    pub outcome: Outcome,
    /// Every quota the response's headers reported (empty for an error, or
    /// a response without rate-limit headers).
    pub limits: RateLimits,
    /// The answer was an error, not a response.
    error: bool,
}

impl Verdict {
    /// The verdict on a response: `outcome`, with the `limits` its headers
    /// reported.
    pub fn response(outcome: Outcome, limits: RateLimits) -> Self {
        Verdict {
            outcome,
            limits,
            error: false,
        }
    }

    /// The verdict on an error returned instead of a response.
    pub fn error(outcome: Outcome) -> Self {
        Verdict {
            outcome,
            limits: RateLimits::new(),
            error: true,
        }
    }

    /// Whether the answer was an error rather than a response.
    pub fn is_error(&self) -> bool {
        self.error
    }
}
