//! Randomness for jitter and balancing, seedable for tests.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A source of uniform random numbers for jitter and load balancing.
///
/// The default draws from a fast thread-local generator; [`Jitter::seeded`]
/// gives a deterministic sequence shared by all clones, so tests under
/// `tokio::time::pause` replay exactly.
#[derive(Clone, Default)]
pub struct Jitter {
    seeded: Option<Arc<Mutex<fastrand::Rng>>>,
}

impl Jitter {
    /// Draws from a thread-local generator (the default).
    pub fn thread_local() -> Self {
        Jitter { seeded: None }
    }

    /// Draws from one generator seeded with `seed`, shared by all clones.
    pub fn seeded(seed: u64) -> Self {
        Jitter {
            seeded: Some(Arc::new(Mutex::new(fastrand::Rng::with_seed(seed)))),
        }
    }

    /// A number uniformly drawn from `[0, 1)`.
    pub fn unit(&self) -> f64 {
        match &self.seeded {
            None => fastrand::f64(),
            Some(rng) => rng.lock().unwrap_or_else(|p| p.into_inner()).f64(),
        }
    }

    /// An index uniformly drawn from `0..n`; `n` must be positive.
    pub fn index(&self, n: usize) -> usize {
        debug_assert!(n > 0);
        match &self.seeded {
            None => fastrand::usize(..n.max(1)),
            Some(rng) => rng
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .usize(..n.max(1)),
        }
    }

    /// A duration uniformly drawn from `[low, high]` (in either order).
    pub fn between(&self, low: Duration, high: Duration) -> Duration {
        let (low, high) = if low <= high {
            (low, high)
        } else {
            (high, low)
        };
        let span = (high - low).as_secs_f64();
        low + Duration::from_secs_f64(span * self.unit())
    }
}

impl fmt::Debug for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jitter")
            .field("seeded", &self.seeded.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_deterministic_and_shared_by_clones() {
        let a = Jitter::seeded(7);
        let b = Jitter::seeded(7);
        let a2 = a.clone();
        let xs: Vec<f64> = (0..4)
            .map(|i| if i % 2 == 0 { a.unit() } else { a2.unit() })
            .collect();
        let ys: Vec<f64> = (0..4).map(|_| b.unit()).collect();
        assert_eq!(xs, ys);
        for x in xs {
            assert!((0.0..1.0).contains(&x));
        }
    }

    #[test]
    fn between_stays_inside() {
        let j = Jitter::seeded(1);
        for _ in 0..1000 {
            let d = j.between(Duration::from_millis(10), Duration::from_millis(20));
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(20));
        }
        assert_eq!(j.between(Duration::ZERO, Duration::ZERO), Duration::ZERO);
    }
}
