//! Gradient: the limit follows the ratio of baseline to current latency.

use std::time::Duration;

use evenkeel_core::ConfigError;

use super::window::{Probe, Window};
use super::{Algorithm, Sample, check_bounds, check_ratio};

/// Latency-based limit: shrinks as latency rises above its unloaded level,
/// grows by a small queue allowance while it does not.
///
/// Every window (at least 1 s and 10 successful attempts), with `short` the
/// window's mean RTT and `long` the baseline:
///
/// ```text
/// gradient = clamp(tolerance × long / short, 0.5, 1.0)
/// target   = limit × gradient + (queue_size if gradient == 1 else 0)
/// limit    = limit × (1 − smoothing) + target × smoothing
/// ```
///
/// This is Netflix's `Gradient2Limit` formula with three changes that fix its
/// known defects:
///
/// - **The baseline cannot drift with load.** Gradient2's long RTT is an
///   average of recent windows, so under steady mild overload it climbs to
///   meet the short RTT, the gradient returns to 1 and the queue allowance
///   grows the limit without bound. Here `long` is measured at reduced
///   concurrency: the first window runs at the initial limit, and every
///   `probe_interval` (30 s) the limit dips to ¾ of its estimate for one
///   window, averaging attempts sent during the dip. A reading above the
///   old baseline is checked at half the limit, and again, until halving no
///   longer lowers it: a server that really became slower is picked up, and
///   a limit far above a shrunken capacity is not mistaken for one.
/// - **The queue allowance only applies when there is no queueing**
///   (`gradient == 1`), so a limit already above the knee cannot creep
///   upward.
/// - **Drops count.** Gradient2 ignores them, and the near-zero RTT of a
///   rejected attempt even makes latency look better. Here a
///   [drop](Sample::is_drop) multiplies the limit by `backoff` (0.9) at once
///   (once per limit: drops from attempts sent under a higher limit are
///   already answered), and only successful attempts enter the RTT windows.
///
/// Slow start (on by default) doubles the limit every window until the first
/// sign of queueing or the first drop, so a low initial limit costs little.
///
/// Defaults: initial 4 (the first window measures the baseline, which must
/// be taken below the server's capacity), between 1 and 200, smoothing 0.2,
/// queue size 4, tolerance 1.1, backoff 0.9.
#[derive(Debug, Clone)]
pub struct Gradient {
    min: usize,
    max: usize,
    initial: usize,
    smoothing: f64,
    queue_size: f64,
    tolerance: f64,
    backoff: f64,
    min_window: Duration,
    min_samples: u32,
    limit: f64,
    baseline: Option<f64>,
    window: Window,
    probe: Probe,
    slow_start: bool,
}

impl Gradient {
    /// A builder with the defaults.
    pub fn builder() -> GradientBuilder {
        GradientBuilder::default()
    }

    /// The current estimate, fractions included (during a baseline probe the
    /// limit in force is lower).
    pub fn estimate(&self) -> f64 {
        self.limit
    }

    /// The baseline (unloaded) RTT, once measured.
    pub fn baseline(&self) -> Option<Duration> {
        self.baseline.map(Duration::from_secs_f64)
    }

    fn current(&self) -> usize {
        self.probe
            .active()
            .unwrap_or_else(|| self.limit.floor() as usize)
    }
}

impl Default for Gradient {
    fn default() -> Self {
        GradientBuilder::default()
            .build()
            .expect("the default configuration is valid")
    }
}

impl Algorithm for Gradient {
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
                self.slow_start = false;
                self.window.reset();
            }
            return self.current();
        }
        if !sample.outcome.is_success() {
            return self.current();
        }
        match self.probe.active() {
            // Sent before the dip: its RTT says nothing about the baseline.
            Some(probe) if sample.limit > probe => return probe,
            None if sample.limit > estimate => return self.current(),
            _ => {}
        }
        self.window.add(sample);
        let Some(w) = self.window.close(now, self.min_window, self.min_samples) else {
            return self.current();
        };
        if self.probe.active().is_some() {
            if let Some(baseline) =
                self.probe
                    .measured(now, w.mean, self.baseline, self.tolerance, self.min)
            {
                self.baseline = Some(baseline);
            }
            return self.current();
        }
        let long = self.baseline.unwrap_or(w.mean);
        if (w.max_in_flight as f64) * 2.0 >= self.limit {
            let gradient = (self.tolerance * long / w.mean).clamp(0.5, 1.0);
            if self.slow_start && gradient >= 1.0 {
                self.limit = (self.limit * 2.0).min(self.max as f64);
            } else {
                self.slow_start = false;
                let allowance = if gradient >= 1.0 {
                    self.queue_size
                } else {
                    0.0
                };
                let target = self.limit * gradient + allowance;
                self.limit = self.limit * (1.0 - self.smoothing) + target * self.smoothing;
                self.limit = self.limit.clamp(self.min as f64, self.max as f64);
            }
        }
        if self.probe.start_if_due(now, self.limit, self.min) {
            self.window.reset();
        }
        self.current()
    }
}

/// Builds a [`Gradient`]; [`build`](GradientBuilder::build) validates.
#[derive(Debug, Clone)]
pub struct GradientBuilder {
    min: usize,
    max: usize,
    initial: usize,
    smoothing: f64,
    queue_size: f64,
    tolerance: f64,
    backoff: f64,
    min_window: Duration,
    min_samples: u32,
    probe_interval: Duration,
    slow_start: bool,
}

impl Default for GradientBuilder {
    fn default() -> Self {
        GradientBuilder {
            min: 1,
            max: 200,
            initial: 4,
            smoothing: 0.2,
            queue_size: 4.0,
            tolerance: 1.1,
            backoff: 0.9,
            min_window: Duration::from_secs(1),
            min_samples: 10,
            probe_interval: Duration::from_secs(30),
            slow_start: true,
        }
    }
}

impl GradientBuilder {
    /// The limit of the first window, which measures the baseline (default
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

    /// How much of each window's target is taken, in `(0, 1]` (default
    /// 0.2).
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// How much the limit may grow per window while latency stays at the
    /// baseline (default 4).
    pub fn queue_size(mut self, queue_size: f64) -> Self {
        self.queue_size = queue_size;
        self
    }

    /// How far above the baseline latency may go before it counts as
    /// queueing, as a factor in `[1, 2]` (default 1.1).
    pub fn tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
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

    /// How often the baseline is measured again (default 30 s).
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// Doubles the limit every window until queueing or a drop shows
    /// (default on).
    pub fn slow_start(mut self, on: bool) -> Self {
        self.slow_start = on;
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<Gradient, ConfigError> {
        check_bounds(self.min, self.max, self.initial)?;
        check_ratio("smoothing", self.smoothing, 0.0, 1.0, true)?;
        if !(self.queue_size.is_finite() && self.queue_size >= 0.0) {
            return Err(ConfigError::new(
                "queue_size",
                format!(
                    "({}) must be a finite number, zero or more",
                    self.queue_size
                ),
            ));
        }
        if !(self.tolerance.is_finite() && (1.0..=2.0).contains(&self.tolerance)) {
            return Err(ConfigError::new(
                "tolerance",
                format!("({}) must lie in [1, 2]", self.tolerance),
            ));
        }
        check_backoff(self.backoff)?;
        check_window(self.min_samples, self.probe_interval)?;
        Ok(Gradient {
            min: self.min,
            max: self.max,
            initial: self.initial,
            smoothing: self.smoothing,
            queue_size: self.queue_size,
            tolerance: self.tolerance,
            backoff: self.backoff,
            min_window: self.min_window,
            min_samples: self.min_samples,
            limit: self.initial as f64,
            baseline: None,
            window: Window::default(),
            probe: Probe::new(self.probe_interval, self.initial),
            slow_start: self.slow_start,
        })
    }
}

pub(super) fn check_backoff(backoff: f64) -> Result<(), ConfigError> {
    if backoff.is_finite() && (0.5..1.0).contains(&backoff) {
        Ok(())
    } else {
        Err(ConfigError::new(
            "backoff",
            format!("({backoff}) must lie in [0.5, 1)"),
        ))
    }
}

pub(super) fn check_window(min_samples: u32, probe_interval: Duration) -> Result<(), ConfigError> {
    if min_samples == 0 {
        return Err(ConfigError::new("window", "needs at least one sample"));
    }
    if probe_interval.is_zero() {
        return Err(ConfigError::new(
            "probe_interval",
            "must be greater than zero",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{dropped, ok};
    use super::*;

    /// Feeds one window of `n` samples of `rtt_ms` sent under the current
    /// limit, starting at `t_ms`; returns the limit after it.
    fn window(g: &mut Gradient, t_ms: u64, rtt_ms: u64, in_flight: usize) -> usize {
        let limit = g.current();
        let mut out = limit;
        for i in 0..11 {
            out = g.update(&ok(t_ms + i * 100, rtt_ms, in_flight.min(limit), limit));
        }
        out
    }

    fn gradient() -> Gradient {
        Gradient::builder().build().unwrap()
    }

    #[test]
    fn first_window_measures_the_baseline_then_slow_start_doubles() {
        let mut g = gradient();
        assert_eq!(g.initial_limit(), 4);
        assert_eq!(window(&mut g, 0, 100, 64), 4);
        assert_eq!(g.baseline(), Some(Duration::from_millis(100)));
        assert_eq!(window(&mut g, 2_000, 100, 64), 8);
        assert_eq!(window(&mut g, 4_000, 100, 64), 16);
        // Latency doubles: slow start ends and the limit comes down.
        let after = window(&mut g, 6_000, 200, 64);
        assert!(after < 16, "{after}");
        assert!(!g.slow_start);
    }

    /// One window against a server of `capacity` whose latency grows
    /// linearly past it.
    fn loaded_window(g: &mut Gradient, t_ms: u64, capacity: usize) -> usize {
        let limit = g.current();
        let rtt = 100 * limit.max(capacity) as u64 / capacity as u64;
        let mut out = limit;
        for i in 0..11 {
            out = g.update(&ok(t_ms + i * 100, rtt, limit, limit));
        }
        out
    }

    #[test]
    fn steady_mild_overload_does_not_grow_the_limit() {
        // Capacity 8, limit 12: 50 % over, for ten minutes and twenty probes.
        let mut g = Gradient::builder()
            .slow_start(false)
            .initial_limit(8)
            .build()
            .unwrap();
        loaded_window(&mut g, 0, 8);
        g.limit = 12.0;
        let mut highest: f64 = 0.0;
        for k in 1..460u64 {
            loaded_window(&mut g, k * 1_300, 8);
            if k > 30 {
                highest = highest.max(g.estimate());
            }
        }
        assert!(
            highest < 10.0,
            "settled at most 8 × 1.1 + allowance: {highest}"
        );
        assert_eq!(g.baseline(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn queue_allowance_only_without_queueing() {
        let mut g = Gradient::builder()
            .slow_start(false)
            .initial_limit(10)
            .build()
            .unwrap();
        window(&mut g, 0, 100, 64);
        window(&mut g, 2_000, 100, 64);
        // 10 × 1 + 4, smoothed by 0.2.
        assert!((g.estimate() - 10.8).abs() < 1e-9, "{}", g.estimate());
        window(&mut g, 4_000, 200, 64);
        // gradient = 1.1 × 100 / 200 = 0.55; no allowance.
        let expect = 10.8 * 0.8 + 10.8 * 0.55 * 0.2;
        assert!((g.estimate() - expect).abs() < 1e-9, "{}", g.estimate());
    }

    #[test]
    fn drops_shrink_it_once_per_limit() {
        let mut g = Gradient::builder().initial_limit(20).build().unwrap();
        assert_eq!(g.update(&dropped(0, 1, 20, 20)), 18);
        assert_eq!(g.update(&dropped(0, 1, 20, 20)), 18);
        assert_eq!(g.update(&dropped(1, 1, 18, 18)), 16);
        // Rejected attempts' RTTs never enter a window.
        assert_eq!(
            g.window
                .close(super::super::testing::at(10_000), Duration::ZERO, 1),
            None
        );
    }

    #[test]
    fn app_limited_windows_do_not_grow_it() {
        let mut g = Gradient::builder()
            .slow_start(false)
            .initial_limit(20)
            .build()
            .unwrap();
        window(&mut g, 0, 100, 64);
        for k in 1..10 {
            window(&mut g, k * 2_000, 100, 5);
        }
        assert_eq!(g.estimate(), 20.0);
    }

    #[test]
    fn probe_dips_and_remeasures() {
        let mut g = Gradient::builder()
            .slow_start(false)
            .initial_limit(12)
            .build()
            .unwrap();
        window(&mut g, 0, 100, 64);
        // The server became slower for everyone: 150 ms even at low load.
        let mut t = 2_000;
        while g.probe.active().is_none() {
            window(&mut g, t, 150, 64);
            t += 1_300;
        }
        let dip = g.current();
        assert_eq!(dip, ((g.estimate() * 0.75).floor()) as usize);
        assert!(t >= 30_000, "probes every 30 s ({t})");
        // 150 ms at ¾ of the limit: above the old baseline, so checked at
        // half that; still 150 ms, so the server really is slower.
        window(&mut g, t, 150, 64);
        assert_eq!(g.current(), dip / 2);
        window(&mut g, t + 1_300, 150, 64);
        assert_eq!(g.probe.active(), None);
        assert_eq!(g.baseline(), Some(Duration::from_millis(150)));
    }

    #[test]
    fn a_probe_far_above_capacity_goes_deeper_before_believing_it() {
        // Capacity fell from 16 to 4 while the limit was 16.
        let mut g = Gradient::builder()
            .slow_start(false)
            .initial_limit(16)
            .build()
            .unwrap();
        loaded_window(&mut g, 0, 16);
        g.probe
            .start_if_due(super::super::testing::at(40_000), g.estimate(), 1);
        let mut t = 40_000;
        while g.probe.active().is_some() {
            loaded_window(&mut g, t, 4);
            t += 1_300;
        }
        assert_eq!(g.baseline(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn validation_names_the_field() {
        let field = |b: GradientBuilder| b.build().unwrap_err().field();
        assert_eq!(field(Gradient::builder().smoothing(0.0)), "smoothing");
        assert_eq!(field(Gradient::builder().smoothing(f64::NAN)), "smoothing");
        assert_eq!(field(Gradient::builder().queue_size(-1.0)), "queue_size");
        assert_eq!(field(Gradient::builder().tolerance(0.9)), "tolerance");
        assert_eq!(field(Gradient::builder().backoff(1.0)), "backoff");
        assert_eq!(
            field(Gradient::builder().window(Duration::ZERO, 0)),
            "window"
        );
        assert_eq!(
            field(Gradient::builder().probe_interval(Duration::ZERO)),
            "probe_interval"
        );
        assert_eq!(field(Gradient::builder().min_limit(0)), "min_limit");
    }
}
