//! [`Config`]: the balancer's validated, non-generic settings, and the
//! [`Selection`] and [`SuccessRate`] rules they are made of.

use std::time::Duration;

/// How an endpoint is chosen among the available endpoints of one tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Selection {
    /// Power of two choices: two endpoints drawn at random, the one with
    /// fewer requests in flight wins. The default.
    #[default]
    PowerOfTwoChoices,
    /// Each endpoint in turn.
    RoundRobin,
}

/// Outlier ejection by success rate: an endpoint whose success rate over a
/// window drops below `min_rate`, once it has seen `min_requests` requests
/// in that window, is ejected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SuccessRate {
    pub(crate) min_rate: f64,
    pub(crate) min_requests: u32,
    pub(crate) window: Duration,
}

/// The non-generic configuration shared by every clone of a balancer.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) consecutive_failures: u32,
    pub(crate) connect_failures: u32,
    pub(crate) success_rate: Option<SuccessRate>,
    pub(crate) ejection_jitter: f64,
    pub(crate) selection: Selection,
    pub(crate) spill_when_busy: bool,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) replay_cap: usize,
    /// The longest a request waits for a cooling endpoint to come back.
    pub(crate) max_cooldown_wait: Duration,
    // The same durations in ticks (nanoseconds), for the atomics.
    pub(crate) base_ticks: u64,
    pub(crate) max_ticks: u64,
    pub(crate) threshold_ticks: u64,
    pub(crate) ramp_ticks: u64,
    pub(crate) window_ticks: u64,
    /// The cap on a server-directed cooldown.
    pub(crate) max_cooldown_ticks: u64,
}

/// `d` in ticks (nanoseconds), saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
