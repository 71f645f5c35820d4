//! The quota model of one key that the in-memory store decides with (pure
//! arithmetic on tokio instants), and what its parts share: tuning, tickets.

mod declared;
mod key;
mod learned;
mod reorder;

use std::time::Duration;

use tokio::time::Instant;

use crate::cost::FIELDS;

pub use declared::StaticQuota;
pub(crate) use key::KeyModel;

/// The longest wait the model computes: keeps instant arithmetic far from
/// overflow whatever the headers say.
const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Float slack, so that waiting exactly the computed time is enough.
const EPSILON: f64 = 1e-9;

/// Tuning shared by every key of a store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    /// Longest reset taken from a header.
    pub(crate) max_reset: Duration,
    /// Longest cooldown taken from a server's wait.
    pub(crate) max_cooldown: Duration,
    /// When a reading says nothing about its reset: assume the quota is back
    /// after this long.
    pub(crate) default_window: Duration,
    /// The share of a window's limit that may go at once when spreading.
    pub(crate) spread_burst: f64,
    /// A learned dimension with no reading for this long is forgotten.
    pub(crate) stale_after: Duration,
}

/// What an admitted request holds: its place in the key's sequence and what
/// it cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) seq: u64,
    /// The key's cumulative cost per field right after this admission.
    pub(crate) cum: [u64; FIELDS],
    pub(crate) cost: [u64; FIELDS],
    pub(crate) at: Instant,
    /// The time since the key's previous admission.
    pub(crate) gap: Duration,
}

/// The seconds in `d`.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The time between two instants, either way round.
fn abs_diff(a: Instant, b: Instant) -> Duration {
    a.saturating_duration_since(b)
        .max(b.saturating_duration_since(a))
}

/// `s` seconds, rounded up to the microsecond (float noise below a
/// millionth of a microsecond aside, so that 1 ms computed as 1.000…01 ms
/// stays 1 ms), within `[0, MAX_WAIT]`.
fn duration(s: f64) -> Duration {
    if s.is_nan() || s <= 0.0 {
        return Duration::ZERO;
    }
    let micros = (s * 1e6 - 1e-6).ceil();
    if micros >= MAX_WAIT.as_micros() as f64 {
        return MAX_WAIT;
    }
    Duration::from_micros(micros.max(0.0) as u64)
}

#[cfg(test)]
mod tests;
