//! What the retry layer tells the caller about a response.

use std::time::Duration;

use evenkeel_core::event::GiveUp;

/// How a response was obtained: attempts made, time spent waiting between
/// them, and why retrying stopped if it stopped early.
///
/// The layer stores it in the response's extensions when anything happened
/// worth reporting (more than one attempt, or a stop for budget, wait cap,
/// deadline, idempotency or body size). A response without it came from
/// the first attempt; [`RetryInfo::of`] returns that default, so callers
/// need not care. (Storing it on every response would cost an allocation
/// on the path where nothing goes wrong.)
///
/// ```
/// # fn demo(response: http::Response<()>) {
/// use evenkeel_retry::RetryInfo;
///
/// let info = RetryInfo::of(&response);
/// println!("{} attempts, waited {:?}", info.attempts, info.waited);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryInfo {
    /// Attempts made, including the first.
    pub attempts: u32,
    /// Total time spent waiting between attempts.
    pub waited: Duration,
    /// Why the layer stopped retrying, when it returned a response it would
    /// otherwise have retried.
    pub gave_up: Option<GiveUp>,
}

impl Default for RetryInfo {
    fn default() -> Self {
        RetryInfo {
            attempts: 1,
            waited: Duration::ZERO,
            gave_up: None,
        }
    }
}

impl RetryInfo {
    /// The retry information of `response` (the first-attempt default when
    /// none was stored).
    pub fn of<B>(response: &http::Response<B>) -> RetryInfo {
        response
            .extensions()
            .get::<RetryInfo>()
            .copied()
            .unwrap_or_default()
    }
}
