//! How a limit is found: the [`Algorithm`] trait, the [`Sample`] it learns
//! from, and the algorithms that come with the crate.

use std::time::Duration;

use evenkeel_core::{ConfigError, FailureKind, Outcome};
use tokio::time::Instant;

mod aimd;
mod gradient;
mod vegas;
mod window;

pub use aimd::{Aimd, AimdBuilder};
pub use gradient::{Gradient, GradientBuilder};
pub use vegas::{Vegas, VegasBuilder};

/// Decides the concurrency limit from completed attempts.
///
/// The limiter calls [`update`](Algorithm::update) once for every attempt
/// that completed with a meaningful outcome, under a short lock shared by
/// every clone of the layer; the returned value becomes the limit (before
/// any ceiling is applied). Attempts whose future was dropped, and failures
/// that never reached the server ([`Outcome::never_sent`], except the
/// rejections listed under [`Sample::is_drop`]), are not reported.
///
/// # Writing one
///
/// Keep `update` quick and allocation-free: it runs on the response path.
/// Do not grow the limit on samples taken while the limiter was far from
/// full (`sample.in_flight < limit / 2`): the limit would then drift
/// upward without evidence, and a ceiling above it would stop meaning
/// anything.
///
/// ```
/// use evenkeel_limit::{Algorithm, Sample};
///
/// /// Halves on a drop, adds one on a success.
/// #[derive(Debug)]
/// struct Halving(usize);
///
/// impl Algorithm for Halving {
///     fn initial_limit(&self) -> usize {
///         self.0
///     }
///     fn update(&mut self, sample: &Sample) -> usize {
///         if sample.is_drop() {
///             self.0 = (self.0 / 2).max(1);
///         } else if sample.outcome.is_success() && sample.in_flight * 2 >= self.0 {
///             self.0 += 1;
///         }
///         self.0
///     }
/// }
/// # let _ = evenkeel_limit::LimitLayer::adaptive(Halving(8)).build().unwrap();
/// ```
pub trait Algorithm: Send + 'static {
    /// `false` for algorithms that never change the limit: the limiter then
    /// skips timing and classifying attempts altogether.
    const ADAPTIVE: bool = true;

    /// The limit before the first sample (at least 1).
    fn initial_limit(&self) -> usize;

    /// Learns from one completed attempt and returns the new limit
    /// (values below 1 are treated as 1).
    fn update(&mut self, sample: &Sample) -> usize;
}

/// One completed attempt, as an [`Algorithm`] sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Sample {
    /// When the attempt was sent (when it got its permit), on tokio's clock.
    pub started: Instant,
    /// From sending to the response (or error).
    pub rtt: Duration,
    /// Attempts in flight when this one was sent, itself included.
    pub in_flight: usize,
    /// The limit in force when this one was sent. An algorithm that has
    /// lowered its limit since can tell that a drop from this attempt was
    /// already answered.
    pub limit: usize,
    /// What the attempt's result means.
    pub outcome: Outcome,
}

impl Sample {
    /// A sample; for tests and for driving an [`Algorithm`] by hand.
    pub fn new(
        started: Instant,
        rtt: Duration,
        in_flight: usize,
        limit: usize,
        outcome: Outcome,
    ) -> Self {
        Sample {
            started,
            rtt,
            in_flight,
            limit,
            outcome,
        }
    }

    /// When the attempt completed.
    pub fn finished(&self) -> Instant {
        self.started + self.rtt
    }

    /// `true` when the attempt tells the algorithm to back off: the server
    /// rate-limited or shed it ([`Outcome::is_pushback`]: 429, 503, 529,
    /// `RESOURCE_EXHAUSTED`, `UNAVAILABLE`), it timed out, or something
    /// downstream refused it outright (HTTP/2 `REFUSED_STREAM`, another
    /// limiter's [`Overloaded`](evenkeel_core::error::Overloaded)).
    pub fn is_drop(&self) -> bool {
        is_drop(&self.outcome)
    }
}

pub(crate) fn is_drop(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Failed(f) => matches!(
            f.kind,
            FailureKind::Timeout | FailureKind::Refused | FailureKind::LocalOverload
        ),
        other => other.is_pushback(),
    }
}

/// Whether an outcome is reported to the algorithm at all: drops always,
/// other failures only when the request can have reached the server.
pub(crate) fn is_reported(outcome: &Outcome) -> bool {
    is_drop(outcome) || !outcome.never_sent()
}

/// A limit that never changes: the static limiter.
///
/// Made by [`LimitLayer::fixed`](crate::LimitLayer::fixed); no attempt is
/// timed or classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    limit: usize,
}

impl Fixed {
    pub(crate) fn new(limit: usize) -> Self {
        Fixed { limit }
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Algorithm for Fixed {
    const ADAPTIVE: bool = false;

    fn initial_limit(&self) -> usize {
        self.limit
    }

    fn update(&mut self, _sample: &Sample) -> usize {
        self.limit
    }
}

/// Checks the bounds every algorithm shares.
pub(crate) fn check_bounds(min: usize, max: usize, initial: usize) -> Result<(), ConfigError> {
    if min == 0 {
        return Err(ConfigError::new("min_limit", "must be at least 1"));
    }
    if max < min {
        return Err(ConfigError::new(
            "max_limit",
            format!("({max}) must not be below min_limit ({min})"),
        ));
    }
    if initial < min || initial > max {
        return Err(ConfigError::new(
            "initial_limit",
            format!("({initial}) must lie within min_limit..=max_limit ({min}..={max})"),
        ));
    }
    Ok(())
}

/// Checks a ratio in an open or half-open range.
pub(crate) fn check_ratio(
    field: &'static str,
    value: f64,
    low: f64,
    high: f64,
    high_inclusive: bool,
) -> Result<(), ConfigError> {
    let ok = value.is_finite()
        && value > low
        && if high_inclusive {
            value <= high
        } else {
            value < high
        };
    if ok {
        Ok(())
    } else {
        let close = if high_inclusive { ']' } else { ')' };
        Err(ConfigError::new(
            field,
            format!("({value}) must lie in ({low}, {high}{close}"),
        ))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use evenkeel_core::Signal;

    pub(crate) fn at(ms: u64) -> Instant {
        // A fixed origin keeps the tests independent of the clock.
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(Instant::now) + Duration::from_millis(ms)
    }

    pub(crate) fn ok(start_ms: u64, rtt_ms: u64, in_flight: usize, limit: usize) -> Sample {
        Sample::new(
            at(start_ms),
            Duration::from_millis(rtt_ms),
            in_flight,
            limit,
            Outcome::Success,
        )
    }

    pub(crate) fn dropped(start_ms: u64, rtt_ms: u64, in_flight: usize, limit: usize) -> Sample {
        Sample::new(
            at(start_ms),
            Duration::from_millis(rtt_ms),
            in_flight,
            limit,
            Outcome::RateLimited(Signal::NONE),
        )
    }

    #[test]
    fn drops_and_ignored_failures() {
        use evenkeel_core::Failure;
        let fail = |k| Outcome::Failed(Failure::new(k));
        assert!(is_drop(&Outcome::Overloaded(Signal::NONE)));
        assert!(is_drop(&fail(FailureKind::Timeout)));
        assert!(is_drop(&fail(FailureKind::Refused)));
        assert!(!is_drop(&Outcome::ServerError(Signal::NONE)));
        assert!(!is_drop(&Outcome::ClientError));
        // Never sent: ignored, unless it is a refusal.
        assert!(!is_reported(&fail(FailureKind::ConnectionRefused)));
        assert!(!is_reported(&fail(FailureKind::Dns)));
        assert!(is_reported(&fail(FailureKind::Refused)));
        assert!(is_reported(&fail(FailureKind::ConnectionReset)));
        assert!(is_reported(&Outcome::ServerError(Signal::NONE)));
    }
}
