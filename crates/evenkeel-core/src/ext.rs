//! Request extensions that evenkeel layers use to talk to each other.

use tokio::time::Instant;

/// The instant by which the caller needs an answer.
///
/// Set by the layer that owns the total deadline (the retry layer, or the
/// preset's deadline), read by layers below it that would otherwise wait:
/// a quota layer fails at once rather than hold a request past its deadline,
/// a failover layer does not start an attempt that cannot finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// The deadline of `request`, if one was set.
    pub fn of<B>(request: &http::Request<B>) -> Option<Instant> {
        request.extensions().get::<Deadline>().map(|d| d.0)
    }
}

/// Which attempt of a logical request this is, starting at 1.
///
/// Set by layers that resend (retry, failover) on every attempt, so layers
/// below can tell first attempts from retries (per-attempt metrics, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attempt(pub u32);

impl Attempt {
    /// The attempt number of `request`; 1 when no layer set it.
    pub fn of<B>(request: &http::Request<B>) -> u32 {
        request.extensions().get::<Attempt>().map_or(1, |a| a.0)
    }
}
