//! A continuous token bucket on tokio's clock.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::{MAX_WAIT, Rate};

/// Slack for float rounding: a client that waited exactly the advertised time
/// must find enough tokens.
const EPSILON: f64 = 1e-9;

/// A token bucket holding up to `burst` tokens, refilled at `rate` per second.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn new(rate: Rate, now: Instant) -> Self {
        let burst = rate.burst as f64;
        Self {
            rate: rate.per_sec,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Adds what accrued since the last refill.
    pub(crate) fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }

    /// The most a single request may cost.
    pub(crate) fn burst(&self) -> u64 {
        self.burst as u64
    }

    /// Whole tokens left.
    pub(crate) fn remaining(&self) -> u64 {
        (self.tokens + EPSILON).floor().max(0.0) as u64
    }

    /// How long until `cost` tokens are there; zero when they already are.
    pub(crate) fn wait_for(&self, cost: u64) -> Duration {
        let missing = cost as f64 - self.tokens;
        if missing <= EPSILON {
            return Duration::ZERO;
        }
        secs(missing / self.rate)
    }

    /// How long until the bucket is full again.
    pub(crate) fn full_in(&self) -> Duration {
        let missing = self.burst - self.tokens;
        if missing <= EPSILON {
            return Duration::ZERO;
        }
        secs(missing / self.rate)
    }

    /// The refill rate, per second.
    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    /// How long an empty bucket takes to fill: `burst / rate`.
    pub(crate) fn window(&self) -> Duration {
        secs(self.burst / self.rate)
    }

    /// Takes `cost` tokens; call only after `wait_for(cost)` is zero.
    pub(crate) fn take(&mut self, cost: u64) {
        self.tokens = (self.tokens - cost as f64).max(0.0);
    }
}

/// `s` seconds rounded *up* to the nanosecond (so waiting it is enough),
/// capped at [`MAX_WAIT`].
fn secs(s: f64) -> Duration {
    let nanos = (s * 1e9).ceil();
    if nanos.is_nan() || nanos >= MAX_WAIT.as_nanos() as f64 {
        return MAX_WAIT;
    }
    Duration::from_nanos(nanos.max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(per_sec: f64, burst: u64) -> (Bucket, Instant) {
        let now = Instant::now();
        (Bucket::new(Rate { per_sec, burst }, now), now)
    }

    #[test]
    fn drains_and_refills() {
        let (mut b, t0) = bucket(2.0, 4);
        assert_eq!(b.remaining(), 4);
        for _ in 0..4 {
            assert_eq!(b.wait_for(1), Duration::ZERO);
            b.take(1);
        }
        assert_eq!(b.remaining(), 0);
        assert_eq!(b.wait_for(1), Duration::from_millis(500));
        assert_eq!(b.full_in(), Duration::from_secs(2));
        b.refill(t0 + Duration::from_millis(500));
        assert_eq!(b.remaining(), 1);
        assert_eq!(b.wait_for(1), Duration::ZERO);
        b.refill(t0 + Duration::from_secs(60));
        assert_eq!(b.remaining(), 4, "never above burst");
        assert_eq!(b.full_in(), Duration::ZERO);
    }

    #[test]
    fn waiting_the_advertised_time_is_enough() {
        // Rates whose reciprocals are not exact in binary.
        for per_sec in [3.0, 7.0, 0.3, 1.0 / 3.0, 11.1] {
            let (mut b, t0) = bucket(per_sec, 5);
            b.take(5);
            let wait = b.wait_for(1);
            b.refill(t0 + wait);
            assert_eq!(b.wait_for(1), Duration::ZERO, "rate {per_sec}");
            assert!(b.remaining() >= 1, "rate {per_sec}");
        }
    }

    #[test]
    fn tiny_rates_saturate_instead_of_overflowing() {
        let (mut b, _) = bucket(1e-6, 1 << 52);
        b.take(1 << 52);
        assert_eq!(b.full_in(), MAX_WAIT);
        assert_eq!(b.wait_for(1 << 52), MAX_WAIT);
    }
}
