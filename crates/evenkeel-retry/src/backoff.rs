//! How long to wait between attempts when the server did not say.

use std::time::Duration;

use evenkeel_core::ConfigError;
use evenkeel_core::rng::Jitter;

/// How the exponential delay is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JitterMode {
    /// No randomness: `min(base·2ⁿ, max)`.
    None,
    /// "Full jitter": uniform in `[0, min(base·2ⁿ, max)]`.
    Full,
    /// "Equal jitter": half the delay fixed, half uniform.
    Equal,
    /// Decorrelated jitter in the "V2" form: a smooth exponential curve
    /// whose median first delay is `base`, with jitter that never bunches
    /// retries together. Each request keeps its own position on the curve.
    Decorrelated,
    /// The formula the Anthropic and OpenAI SDKs use:
    /// `min(base·2ⁿ, max)·(1 − 0.25·U)`.
    Sdk,
}

/// An exponential backoff with a choice of [`JitterMode`].
///
/// `n` counts the retries already made (0 for the first retry).
///
/// ```
/// use std::time::Duration;
/// use evenkeel_retry::{Backoff, JitterMode};
///
/// // The default: the SDK formula, 0.5 s doubling to at most 8 s, minus up to 25 %.
/// let sdk = Backoff::sdk();
/// assert_eq!(sdk.base(), Duration::from_millis(500));
///
/// let full = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5))?
///     .with_jitter(JitterMode::Full);
/// # Ok::<(), evenkeel_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    mode: JitterMode,
}

/// Per-request state some jitter modes need (decorrelated jitter remembers
/// where it is on its curve).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BackoffState {
    prev: f64,
}

impl Backoff {
    /// The Anthropic/OpenAI SDK backoff: 0.5 s doubling up to 8 s, each delay
    /// reduced by up to 25 % at random.
    pub fn sdk() -> Backoff {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(8),
            mode: JitterMode::Sdk,
        }
    }

    /// An exponential backoff from `base` up to `max`, with full jitter.
    ///
    /// Fails when `base` is zero or `max` is below `base`.
    pub fn exponential(base: Duration, max: Duration) -> Result<Backoff, ConfigError> {
        if base.is_zero() {
            return Err(ConfigError::new(
                "backoff.base",
                "must be greater than zero",
            ));
        }
        if max < base {
            return Err(ConfigError::new(
                "backoff.max",
                format!("({max:?}) must not be below the base delay ({base:?})"),
            ));
        }
        Ok(Backoff {
            base,
            max,
            mode: JitterMode::Full,
        })
    }

    /// A fixed delay, without jitter.
    pub fn constant(delay: Duration) -> Backoff {
        Backoff {
            base: delay,
            max: delay,
            mode: JitterMode::None,
        }
    }

    /// Returns the backoff with another jitter mode.
    pub fn with_jitter(mut self, mode: JitterMode) -> Backoff {
        self.mode = mode;
        self
    }

    /// The first delay before jitter.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The cap on any single delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The jitter mode.
    pub fn jitter(&self) -> JitterMode {
        self.mode
    }

    /// The delay before retry number `n + 1` (`n` retries already made).
    pub(crate) fn delay(&self, n: u32, state: &mut BackoffState, rng: &Jitter) -> Duration {
        let base = self.base.as_secs_f64();
        let max = self.max.as_secs_f64();
        let exp = (base * 2f64.powi(n.min(62) as i32)).min(max);
        let secs = match self.mode {
            JitterMode::None => exp,
            JitterMode::Full => exp * rng.unit(),
            JitterMode::Equal => exp / 2.0 + exp / 2.0 * rng.unit(),
            JitterMode::Sdk => exp * (1.0 - 0.25 * rng.unit()),
            JitterMode::Decorrelated => {
                // A curve t ↦ 2ᵗ·tanh(√(4t)) sampled at t = n + U; the step
                // between successive samples, scaled so the median first
                // delay is `base`.
                let t = f64::from(n.min(62)) + rng.unit();
                let next = 2f64.powf(t) * (4.0 * t).sqrt().tanh();
                let step = (next - state.prev).max(0.0);
                state.prev = next;
                (step / 1.4 * base).min(max)
            }
        };
        secs_to_duration(secs)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::sdk()
    }
}

/// Converts seconds to a `Duration`, treating NaN and negatives as zero and
/// saturating large values.
pub(crate) fn secs_to_duration(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(b: Backoff, n: u32, seed: u64) -> Vec<Duration> {
        let rng = Jitter::seeded(seed);
        let mut state = BackoffState::default();
        (0..n).map(|i| b.delay(i, &mut state, &rng)).collect()
    }

    #[test]
    fn sdk_formula_bounds() {
        for seed in 0..50 {
            for (n, d) in delays(Backoff::sdk(), 8, seed).into_iter().enumerate() {
                let top = (0.5 * 2f64.powi(n as i32)).min(8.0);
                let s = d.as_secs_f64();
                assert!(s <= top + 1e-9 && s >= top * 0.75 - 1e-9, "n={n} s={s}");
            }
        }
    }

    #[test]
    fn none_is_exact_and_capped() {
        let b = Backoff::exponential(Duration::from_millis(100), Duration::from_millis(700))
            .unwrap()
            .with_jitter(JitterMode::None);
        let got = delays(b, 5, 0);
        let want: Vec<_> = [100, 200, 400, 700, 700]
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn full_and_equal_bounds() {
        let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10)).unwrap();
        for seed in 0..50 {
            for (n, d) in delays(b, 6, seed).into_iter().enumerate() {
                assert!(d <= Duration::from_millis(100 << n));
            }
            for (n, d) in delays(b.with_jitter(JitterMode::Equal), 6, seed)
                .into_iter()
                .enumerate()
            {
                let top = Duration::from_millis(100 << n);
                assert!(d <= top && d >= top / 2, "n={n} {d:?}");
            }
        }
    }

    #[test]
    fn decorrelated_grows_and_is_capped() {
        let b = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(30))
            .unwrap()
            .with_jitter(JitterMode::Decorrelated);
        let mut firsts = Vec::new();
        for seed in 0..400 {
            let d = delays(b, 10, seed);
            assert!(d.iter().all(|d| *d <= Duration::from_secs(30)));
            firsts.push(d[0].as_secs_f64());
            // Later delays are larger on average than the first.
            assert!(d[6] > d[0], "seed {seed}: {d:?}");
        }
        firsts.sort_by(f64::total_cmp);
        let median = firsts[firsts.len() / 2];
        assert!((0.5..2.0).contains(&median), "median first delay {median}");
    }

    #[test]
    fn validation() {
        assert_eq!(
            Backoff::exponential(Duration::ZERO, Duration::from_secs(1))
                .unwrap_err()
                .field(),
            "backoff.base"
        );
        assert_eq!(
            Backoff::exponential(Duration::from_secs(2), Duration::from_secs(1))
                .unwrap_err()
                .field(),
            "backoff.max"
        );
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let mut state = BackoffState::default();
        let rng = Jitter::seeded(3);
        for mode in [
            JitterMode::None,
            JitterMode::Full,
            JitterMode::Equal,
            JitterMode::Sdk,
            JitterMode::Decorrelated,
        ] {
            let b = Backoff::sdk().with_jitter(mode);
            assert!(b.delay(u32::MAX, &mut state, &rng) <= Duration::from_secs(8));
        }
        assert_eq!(secs_to_duration(f64::NAN), Duration::ZERO);
        assert_eq!(secs_to_duration(f64::INFINITY), Duration::MAX);
        assert_eq!(secs_to_duration(-1.0), Duration::ZERO);
    }
}
