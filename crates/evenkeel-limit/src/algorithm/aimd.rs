//! Additive increase, multiplicative decrease.

use std::time::Duration;

use evenkeel_core::ConfigError;

use super::{Algorithm, Sample, check_bounds};

/// Loss-based limit: grows while attempts succeed, shrinks by a factor on
/// every drop.
///
/// - **Decrease**: a [drop](Sample::is_drop) multiplies the limit by
///   `backoff` (0.9), and takes off at least one. A drop from an attempt
///   sent under a higher limit than the current one was already answered
///   and is not counted again, so a burst of rejections costs one decrease,
///   not one per rejection.
/// - **Increase**: a success sent while at least half the limit was in use
///   adds `1 / limit`, so the limit grows by about one per round trip
///   (TCP's congestion avoidance). Successes sent under a higher limit than
///   the current one (before the last decrease) add nothing. Below the limit
///   of the last drop the step is halved: that is where the server pushed
///   back, so it is approached with care (as TCP CUBIC does), which halves
///   how often the limit runs into it.
/// - **Fast start** (off by default): until the first drop each success
///   adds a whole 1, which doubles the limit every round trip, as TCP's
///   slow start does; the first drop ends it. Turn it on when the limit
///   starts far below what the server can take.
///
/// Defaults follow Netflix's `AIMDLimit`: limit 20 to start, between 20 and
/// 200, backoff 0.9. Lower `min_limit` for a server that takes fewer than 20
/// at once. An optional `timeout` counts slower attempts as drops (off by
/// default: LLM calls routinely take longer than any fixed figure).
///
/// ```
/// use evenkeel_limit::{Aimd, LimitLayer};
///
/// let aimd = Aimd::builder().initial_limit(4).min_limit(1).max_limit(64).fast_start(true).build()?;
/// let layer = LimitLayer::adaptive(aimd).build()?;
/// assert_eq!(layer.handle().limit(), 4);
/// # Ok::<(), evenkeel_core::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Aimd {
    min: usize,
    max: usize,
    initial: usize,
    backoff: f64,
    timeout: Option<Duration>,
    limit: f64,
    starting: bool,
    /// The limit at the last counted drop.
    last_drop: Option<f64>,
}

impl Aimd {
    /// A builder with the defaults.
    pub fn builder() -> AimdBuilder {
        AimdBuilder::default()
    }

    /// The current estimate, fractions included.
    pub fn estimate(&self) -> f64 {
        self.limit
    }
}

impl Default for Aimd {
    fn default() -> Self {
        AimdBuilder::default()
            .build()
            .expect("the default configuration is valid")
    }
}

impl Algorithm for Aimd {
    fn initial_limit(&self) -> usize {
        self.initial
    }

    fn update(&mut self, sample: &Sample) -> usize {
        let current = self.limit.floor() as usize;
        let stale = sample.limit > current;
        let timed_out = self.timeout.is_some_and(|t| sample.rtt > t);
        if sample.is_drop() || timed_out {
            if !stale {
                self.last_drop = Some(self.limit);
                let reduced = (self.limit * self.backoff).min(self.limit - 1.0);
                self.limit = reduced.max(self.min as f64);
                self.starting = false;
            }
        } else if sample.outcome.is_success() && !stale && sample.in_flight * 2 >= current {
            let step = if self.starting {
                1.0
            } else if self.last_drop.is_some_and(|drop| self.limit < drop) {
                0.5 / self.limit
            } else {
                1.0 / self.limit
            };
            self.limit = (self.limit + step).min(self.max as f64);
        }
        self.limit.floor() as usize
    }
}

/// Builds an [`Aimd`]; [`build`](AimdBuilder::build) validates.
#[derive(Debug, Clone)]
pub struct AimdBuilder {
    min: usize,
    max: usize,
    initial: usize,
    backoff: f64,
    fast_start: bool,
    timeout: Option<Duration>,
}

impl Default for AimdBuilder {
    fn default() -> Self {
        AimdBuilder {
            min: 20,
            max: 200,
            initial: 20,
            backoff: 0.9,
            fast_start: false,
            timeout: None,
        }
    }
}

impl AimdBuilder {
    /// The limit before the first sample (default 20).
    pub fn initial_limit(mut self, limit: usize) -> Self {
        self.initial = limit;
        self
    }

    /// The lowest limit (default 20).
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

    /// Doubles the limit every round trip until the first drop (default
    /// off).
    pub fn fast_start(mut self, on: bool) -> Self {
        self.fast_start = on;
        self
    }

    /// Counts attempts slower than `timeout` as drops (default none).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<Aimd, ConfigError> {
        check_bounds(self.min, self.max, self.initial)?;
        if !(self.backoff.is_finite() && (0.5..1.0).contains(&self.backoff)) {
            return Err(ConfigError::new(
                "backoff",
                format!("({}) must lie in [0.5, 1)", self.backoff),
            ));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new("timeout", "must be greater than zero"));
        }
        Ok(Aimd {
            min: self.min,
            max: self.max,
            initial: self.initial,
            backoff: self.backoff,
            timeout: self.timeout,
            limit: self.initial as f64,
            starting: self.fast_start,
            last_drop: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{dropped, ok};
    use super::*;

    fn aimd(initial: usize) -> Aimd {
        Aimd::builder()
            .initial_limit(initial)
            .min_limit(1)
            .build()
            .unwrap()
    }

    #[test]
    fn defaults_are_netflix() {
        let a = Aimd::default();
        assert_eq!((a.min, a.max, a.initial, a.backoff), (20, 200, 20, 0.9));
        assert!(!a.starting);
    }

    #[test]
    fn grows_about_one_per_round_trip() {
        let mut a = aimd(10);
        for i in 0..10 {
            a.update(&ok(i, 100, 10, 10));
        }
        assert_eq!(a.update(&ok(10, 100, 10, 10)), 11);
        assert!((a.estimate() - 11.0).abs() < 0.1, "{}", a.estimate());
    }

    #[test]
    fn does_not_grow_when_app_limited() {
        let mut a = aimd(10);
        for i in 0..100 {
            a.update(&ok(i, 100, 4, 10));
        }
        assert_eq!(a.estimate(), 10.0);
    }

    #[test]
    fn drop_multiplies_by_backoff_once_per_limit() {
        let mut a = aimd(20);
        assert_eq!(a.update(&dropped(0, 1, 20, 20)), 18);
        // Sent under 20: already answered.
        assert_eq!(a.update(&dropped(0, 1, 20, 20)), 18);
        // Sent under the new limit: counts.
        assert_eq!(a.update(&dropped(1, 1, 18, 18)), 16);
        // Small limits lose at least one.
        let mut small = aimd(3);
        assert_eq!(small.update(&dropped(0, 1, 3, 3)), 2);
        assert_eq!(small.update(&dropped(0, 1, 2, 2)), 1);
        assert_eq!(small.update(&dropped(0, 1, 1, 1)), 1, "never below min");
    }

    #[test]
    fn successes_sent_before_a_decrease_do_not_grow_it() {
        let mut a = aimd(20);
        a.update(&dropped(0, 1, 20, 20));
        for _ in 0..100 {
            a.update(&ok(0, 100, 20, 20));
        }
        assert_eq!(a.estimate(), 18.0);
    }

    #[test]
    fn timeout_counts_as_drop() {
        let mut a = Aimd::builder()
            .min_limit(1)
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        assert_eq!(a.update(&ok(0, 1500, 20, 20)), 18);
    }

    #[test]
    fn fast_start_doubles_until_the_first_drop() {
        let mut a = Aimd::builder()
            .initial_limit(2)
            .min_limit(1)
            .fast_start(true)
            .build()
            .unwrap();
        // Each round trip, `limit` successes each add one.
        let mut limit = 2;
        for round in 0..5 {
            for i in 0..limit {
                a.update(&ok(round * 100 + i as u64, 100, limit, limit));
            }
            limit = a.estimate() as usize;
        }
        assert_eq!(limit, 64);
        assert_eq!(a.update(&dropped(600, 1, 64, 64)), 57);
        // After the drop: about one per round trip.
        for i in 0..57 {
            a.update(&ok(700 + i, 100, 57, 57));
        }
        assert_eq!(a.estimate().floor(), 58.0);
    }

    #[test]
    fn validation_names_the_field() {
        let e = Aimd::builder().min_limit(0).build().unwrap_err();
        assert_eq!(e.field(), "min_limit");
        let e = Aimd::builder()
            .min_limit(5)
            .max_limit(4)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "max_limit");
        let e = Aimd::builder().initial_limit(300).build().unwrap_err();
        assert_eq!(e.field(), "initial_limit");
        for bad in [1.0, 0.4, f64::NAN] {
            let e = Aimd::builder().backoff(bad).build().unwrap_err();
            assert_eq!(e.field(), "backoff");
        }
        let e = Aimd::builder().timeout(Duration::ZERO).build().unwrap_err();
        assert_eq!(e.field(), "timeout");
    }
}
