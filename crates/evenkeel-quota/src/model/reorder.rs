//! Requests overtaking each other on the way to the server: the window of
//! requests treated as sent together, and the readings that prove it wider.

use std::cmp::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::learned::Reading;
use super::{abs_diff, secs};

/// Two requests sent at most this far apart whose readings contradict their
/// order prove that the server decides requests out of the order they were
/// sent in.
const REORDER_PROOF: Duration = Duration::from_millis(5);

/// Requests sent within this of each other (one burst) are concurrent until
/// the server shows a wider reorder; also added to a proven reorder's gap.
pub(crate) const REORDER_SLACK: Duration = Duration::from_millis(1);

/// The widest reorder window learned.
const REORDER_CAP: Duration = Duration::from_millis(250);

/// A reorder window not confirmed for this long is dropped.
pub(crate) const REORDER_MEMORY: Duration = Duration::from_secs(300);

/// A key's reorder window: requests sent within it of each other are
/// *concurrent*, and may reach the server in either order.
///
/// Requests normally reach the server in the order they were sent, so a
/// reading from request `s` counts everything sent before `s`, except
/// requests sent at the same moment (within a millisecond: one burst),
/// which may overtake each other on the way. A reading also discounts the
/// concurrent requests sent before it that are not answered yet, and a
/// reading concurrent with the one applied can only lower the estimate.
/// Where the server shows a wider reorder (two requests sent a few
/// milliseconds apart, the later one reporting more left than the earlier
/// one's reading allows: see [`proof`]), the window widens to cover it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reorder {
    window: Duration,
    /// When a proof last confirmed the window.
    seen: Option<Instant>,
}

impl Reorder {
    /// One burst: [`REORDER_SLACK`].
    pub(crate) const fn new() -> Self {
        Reorder {
            window: REORDER_SLACK,
            seen: None,
        }
    }

    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// Covers a reorder of `gap`, proven `now`.
    pub(crate) fn widen(&mut self, gap: Duration, now: Instant) {
        self.window = self.window.max(gap + REORDER_SLACK).min(REORDER_CAP);
        self.seen = Some(now);
    }

    /// Drops a window not confirmed for [`REORDER_MEMORY`].
    pub(crate) fn forget_stale(&mut self, now: Instant) {
        if self
            .seen
            .is_some_and(|seen| now.saturating_duration_since(seen) > REORDER_MEMORY)
        {
            *self = Reorder::new();
        }
    }
}

/// Whether two readings of one dimension, from requests sent within
/// [`REORDER_PROOF`] of each other, contradict the order they were sent in:
/// the one sent later reports more left than the earlier one's reading
/// allows (rounding, and the refill at `rate` in between, aside). Returns
/// the gap between the two requests.
pub(crate) fn proof(applied: Reading, reading: Reading, rate: f64) -> Option<Duration> {
    let gap = abs_diff(applied.sent, reading.sent);
    if gap > REORDER_PROOF {
        return None;
    }
    let (early, late) = match reading.cum.cmp(&applied.cum) {
        Ordering::Greater => (applied, reading),
        Ordering::Less => (reading, applied),
        Ordering::Equal => return None,
    };
    let spent = late.cum.saturating_sub(early.cum) as f64;
    let refill = rate * secs(gap);
    (late.remaining > early.remaining - spent + 1.0 + refill).then_some(gap)
}
