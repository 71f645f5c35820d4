//! Vegas: the limit keeps a small estimated queue at the server.

use std::time::Duration;

use evenkeel_core::ConfigError;

use super::gradient::{check_backoff, check_window};
use super::window::{Probe, Window};
use super::{Algorithm, Sample, check_bounds};

/// How much slower than the base RTT a probe reading may be and still be
/// taken as confirming it.
const TOLERANCE: f64 = 1.1;

/// Latency-based limit after TCP Vegas: estimates how many of its own
/// attempts wait in the server's queue and keeps that number between
/// `alpha` and `beta`.
///
/// Every window (at least 1 s and 10 successful attempts), with `rtt` the
/// window's mean RTT, `base` the smallest RTT seen since the last probe and
/// `in_flight` the most attempts in flight during the window:
///
/// ```text
/// queue = in_flight × (1 − base / rtt)
/// alpha = max(1, 0.1 × limit)      beta = max(2, 0.2 × limit)
/// queue < alpha / 2   →  limit += beta            (no queue: grow fast)
/// queue < alpha       →  limit += 1
/// queue > beta        →  limit −= max(1, (queue − beta) / 2)
/// otherwise           →  unchanged
/// ```
///
/// Netflix's `VegasLimit` uses fixed thresholds (3 and 6 below a limit of
/// 100), which let a server of capacity 8 queue six deep, and it misbehaves
/// against a server's *rate* limit: a 429 comes back at once, its tiny RTT
/// becomes the new "unloaded" RTT, and every later attempt then looks queued.
/// Here:
///
/// - **Drops never enter the RTT estimates**, and a [drop](Sample::is_drop)
///   multiplies the limit by `backoff` (0.9), once per limit (drops from
///   attempts sent under a higher limit were already answered). A rate limit
///   therefore lowers the limit instead of confusing it.
/// - **The baseline probe drains the queue.** Vegas's base RTT only ever
///   falls, so it is re-measured every `probe_interval` (30 s): the limit
///   dips to ¾ of its estimate for one window, and the smallest RTT of the
///   attempts sent during the dip becomes the new base. A reading well above
///   the old base is checked at half the limit, and again, until halving no
///   longer lowers it. (Netflix resets the base to a single loaded sample,
///   which lets it creep up with the queue.)
///
/// Defaults: initial 4 (the first window measures the base), between 1 and
/// 200, backoff 0.9.
#[derive(Debug, Clone)]
pub struct Vegas {
    min: usize,
    max: usize,
    initial: usize,
    backoff: f64,
    min_window: Duration,
    min_samples: u32,
    limit: f64,
    base: Option<f64>,
    window: Window,
    probe: Probe,
}

impl Vegas {
    /// A builder with the defaults.
    pub fn builder() -> VegasBuilder {
        VegasBuilder::default()
    }

    /// The current estimate, fractions included (during a baseline probe the
    /// limit in force is lower).
    pub fn estimate(&self) -> f64 {
        self.limit
    }

    /// The base (unloaded) RTT, once measured.
    pub fn base_rtt(&self) -> Option<Duration> {
        self.base.map(Duration::from_secs_f64)
    }

    fn current(&self) -> usize {
        self.probe
            .active()
            .unwrap_or_else(|| self.limit.floor() as usize)
    }
}

impl Default for Vegas {
    fn default() -> Self {
        VegasBuilder::default()
            .build()
            .expect("the default configuration is valid")
    }
}

impl Algorithm for Vegas {
    fn initial_limit(&self) -> usize {
        self.initial
    }

    fn update(&mut self, sample: &Sample) -> usize {
        let now = sample.finished();
        let estimate = self.limit.floor() as usize;
        if sample.is_drop() {
            if sample.limit <= estimate {
                let reduced = (self.limit * self.backoff).min(self.limit - 1.0);
                self.limit = reduced.max(self.min as f64);
                self.probe.cap(self.limit.floor() as usize);
                self.window.reset();
            }
            return self.current();
        }
        if !sample.outcome.is_success() {
            return self.current();
        }
        let rtt = sample.rtt.as_secs_f64();
        match self.probe.active() {
            Some(probe) if sample.limit > probe => return probe,
            Some(_) => {}
            None => {
                if sample.limit > estimate {
                    return self.current();
                }
                self.base = Some(self.base.map_or(rtt, |b| b.min(rtt)));
            }
        }
        self.window.add(sample);
        let Some(w) = self.window.close(now, self.min_window, self.min_samples) else {
            return self.current();
        };
        if self.probe.active().is_some() {
            if let Some(base) = self
                .probe
                .measured(now, w.min, self.base, TOLERANCE, self.min)
            {
                self.base = Some(base);
            }
            return self.current();
        }
        let base = self.base.unwrap_or(w.min);
        let in_flight = w.max_in_flight as f64;
        let queue = in_flight * (1.0 - base / w.mean).max(0.0);
        let alpha = (0.1 * self.limit).max(1.0);
        let beta = (0.2 * self.limit).max(2.0);
        if queue > beta {
            self.limit -= ((queue - beta) / 2.0).max(1.0);
        } else if in_flight * 2.0 < self.limit {
            // Not using the limit: no evidence it could be higher.
        } else if queue < alpha / 2.0 {
            self.limit += beta;
        } else if queue < alpha {
            self.limit += 1.0;
        }
        self.limit = self.limit.clamp(self.min as f64, self.max as f64);
        if self.probe.start_if_due(now, self.limit, self.min) {
            self.window.reset();
        }
        self.current()
    }
}

/// Builds a [`Vegas`]; [`build`](VegasBuilder::build) validates.
#[derive(Debug, Clone)]
pub struct VegasBuilder {
    min: usize,
    max: usize,
    initial: usize,
    backoff: f64,
    min_window: Duration,
    min_samples: u32,
    probe_interval: Duration,
}

impl Default for VegasBuilder {
    fn default() -> Self {
        VegasBuilder {
            min: 1,
            max: 200,
            initial: 4,
            backoff: 0.9,
            min_window: Duration::from_secs(1),
            min_samples: 10,
            probe_interval: Duration::from_secs(30),
        }
    }
}

impl VegasBuilder {
    /// The limit of the first window, which measures the base RTT (default
    /// 4).
    pub fn initial_limit(mut self, limit: usize) -> Self {
        self.initial = limit;
        self
    }

    /// The lowest limit (default 1).
    pub fn min_limit(mut self, limit: usize) -> Self {
        self.min = limit;
        self
    }

    /// The highest limit (default 200).
    pub fn max_limit(mut self, limit: usize) -> Self {
        self.max = limit;
        self
    }

    /// The factor applied on a drop, in `[0.5, 1)` (default 0.9).
    pub fn backoff(mut self, ratio: f64) -> Self {
        self.backoff = ratio;
        self
    }

    /// The shortest window and the fewest successful attempts in it
    /// (default 1 s and 10).
    pub fn window(mut self, min_time: Duration, min_samples: u32) -> Self {
        self.min_window = min_time;
        self.min_samples = min_samples;
        self
    }

    /// How often the base RTT is measured again (default 30 s).
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<Vegas, ConfigError> {
        check_bounds(self.min, self.max, self.initial)?;
        check_backoff(self.backoff)?;
        check_window(self.min_samples, self.probe_interval)?;
        Ok(Vegas {
            min: self.min,
            max: self.max,
            initial: self.initial,
            backoff: self.backoff,
            min_window: self.min_window,
            min_samples: self.min_samples,
            limit: self.initial as f64,
            base: None,
            window: Window::default(),
            probe: Probe::new(self.probe_interval, self.initial),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{dropped, ok};
    use super::*;

    fn window(v: &mut Vegas, t_ms: u64, rtt_ms: u64, in_flight: usize) -> usize {
        let limit = v.current();
        let mut out = limit;
        for i in 0..11 {
            out = v.update(&ok(t_ms + i * 100, rtt_ms, in_flight.min(limit), limit));
        }
        out
    }

    #[test]
    fn grows_fast_without_a_queue_and_holds_inside_alpha_beta() {
        let mut v = Vegas::default();
        assert_eq!(window(&mut v, 0, 100, 64), 4);
        assert_eq!(v.base_rtt(), Some(Duration::from_millis(100)));
        assert_eq!(window(&mut v, 2_000, 100, 64), 6);
        assert_eq!(window(&mut v, 4_000, 100, 64), 8);
        // 10 in flight, RTT 125 ms: queue = 10 × 0.2 = 2 ∈ [alpha, beta].
        assert_eq!(window(&mut v, 6_000, 100, 64), 10);
        assert_eq!(window(&mut v, 8_000, 125, 64), 10);
    }

    #[test]
    fn a_deep_queue_shrinks_it() {
        let mut v = Vegas::builder().initial_limit(20).build().unwrap();
        window(&mut v, 0, 100, 64);
        // 20 in flight at 4 × the base: queue 15, beta 4 → −5.5.
        window(&mut v, 2_000, 400, 64);
        assert!((v.estimate() - 14.5).abs() < 1e-9, "{}", v.estimate());
    }

    #[test]
    fn rate_limit_drops_lower_it_and_leave_the_base_alone() {
        let mut v = Vegas::builder().initial_limit(20).build().unwrap();
        window(&mut v, 0, 100, 64);
        // 429s come back in a millisecond.
        assert_eq!(v.update(&dropped(2_000, 1, 20, 20)), 18);
        assert_eq!(v.update(&dropped(2_000, 1, 20, 20)), 18);
        assert_eq!(v.base_rtt(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn validation_names_the_field() {
        let field = |b: VegasBuilder| b.build().unwrap_err().field();
        assert_eq!(field(Vegas::builder().backoff(0.2)), "backoff");
        assert_eq!(field(Vegas::builder().max_limit(2)), "initial_limit");
        assert_eq!(field(Vegas::builder().window(Duration::ZERO, 0)), "window");
    }
}
