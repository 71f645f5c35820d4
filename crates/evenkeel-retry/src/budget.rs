//! The retry budget: retries may add at most a fixed share of load.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use evenkeel_core::{ConfigError, clock};
use tokio::time::Instant;

/// How many slots the sliding window is cut into.
const SLOTS: usize = 10;

/// A retry budget shared by every clone of a retry layer.
///
/// Finagle-style: each request deposits into the budget, each retry
/// withdraws; over a sliding `ttl` window, retries can be at most `percent`
/// of requests, plus a floor of `min_per_sec` retries per second so a quiet
/// client can still retry. When the budget is empty the retry layer hands
/// the last outcome to the caller and reports
/// [`GiveUp::Budget`](evenkeel_core::event::GiveUp::Budget).
///
/// Defaults: 20 % of requests, a floor of 10 retries per second, over 10 s.
///
/// The window is a ring of ten slots of atomic counters; a deposit is one
/// clock read and one atomic add, with no lock, so the budget costs little
/// on the path every request takes. Time is tokio's, so tests under
/// `tokio::time::pause` see the window slide.
#[derive(Clone)]
pub struct RetryBudget {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    slots: [Slot; SLOTS],
    start: Instant,
    slot_nanos: u64,
    /// Credit that never expires: the floor of `min_per_sec` over `ttl`.
    reserve: i64,
    deposit_amount: i64,
    withdraw_amount: i64,
    percent: f32,
    min_per_sec: u32,
    ttl: Duration,
    deposits: AtomicU64,
    withdrawals: AtomicU64,
    refusals: AtomicU64,
}

/// One slice of the window: the balance of the deposits and withdrawals
/// made during tick `tick`.
struct Slot {
    tick: AtomicU64,
    balance: AtomicI64,
}

impl RetryBudget {
    /// A budget allowing `percent` (0.0 to 10.0, i.e. up to 1000 %) of
    /// requests as retries, plus `min_per_sec` retries per second, over a
    /// `ttl` window of 1 to 60 seconds.
    pub fn new(ttl: Duration, min_per_sec: u32, percent: f32) -> Result<Self, ConfigError> {
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&ttl) {
            return Err(ConfigError::new(
                "budget.ttl",
                format!("must be between 1 s and 60 s, got {ttl:?}"),
            ));
        }
        if !percent.is_finite() || !(0.0..=10.0).contains(&percent) {
            return Err(ConfigError::new(
                "budget.percent",
                format!("must be a fraction between 0.0 and 10.0, got {percent}"),
            ));
        }
        if min_per_sec > 1_000_000 {
            return Err(ConfigError::new(
                "budget.min_per_sec",
                format!("({min_per_sec}) is too large; the limit is 1 000 000"),
            ));
        }
        if percent == 0.0 && min_per_sec == 0 {
            return Err(ConfigError::new(
                "budget",
                "allows no retry at all (0 % and no floor); use max_attempts(1) to disable retries",
            ));
        }
        // Amounts are scaled by 1000 so fractional percentages stay exact
        // enough: a deposit is worth 1000, a withdrawal 1000 / percent.
        let (deposit_amount, withdraw_amount) = if percent == 0.0 {
            (0, 1)
        } else {
            (1000, (1000.0 / f64::from(percent)).round().max(1.0) as i64)
        };
        let reserve = i64::from(min_per_sec)
            .saturating_mul(ttl.as_secs() as i64)
            .saturating_mul(withdraw_amount);
        let slot_nanos = (ttl.as_nanos() / SLOTS as u128).max(1) as u64;
        Ok(RetryBudget {
            inner: Some(Arc::new(Inner {
                slots: std::array::from_fn(|_| Slot {
                    tick: AtomicU64::new(0),
                    balance: AtomicI64::new(0),
                }),
                start: clock::now(),
                slot_nanos,
                reserve,
                deposit_amount,
                withdraw_amount,
                percent,
                min_per_sec,
                ttl,
                deposits: AtomicU64::new(0),
                withdrawals: AtomicU64::new(0),
                refusals: AtomicU64::new(0),
            })),
        })
    }

    /// No budget: retries are limited only by the attempt count.
    pub fn unlimited() -> Self {
        RetryBudget { inner: None }
    }

    /// Records a request.
    #[inline]
    pub(crate) fn deposit(&self) {
        self.deposit_at(clock::now());
    }

    /// [`deposit`](Self::deposit) for a request made at `now`, for callers
    /// that read the clock already.
    pub(crate) fn deposit_at(&self, now: Instant) {
        if let Some(inner) = &self.inner {
            let tick = inner.tick_at(now);
            inner
                .slot(tick)
                .fetch_add(inner.deposit_amount, Ordering::Relaxed);
            inner.deposits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes one retry from the budget; `false` when it is empty.
    pub(crate) fn withdraw(&self) -> bool {
        let Some(inner) = &self.inner else {
            return true;
        };
        let tick = inner.tick();
        let live: i64 = inner
            .slots
            .iter()
            .filter(|s| tick.saturating_sub(s.tick.load(Ordering::Acquire)) < SLOTS as u64)
            .map(|s| s.balance.load(Ordering::Relaxed))
            .fold(0i64, i64::saturating_add);
        if live.saturating_add(inner.reserve) >= inner.withdraw_amount {
            inner
                .slot(tick)
                .fetch_sub(inner.withdraw_amount, Ordering::Relaxed);
            inner.withdrawals.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            inner.refusals.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Requests recorded since the budget was made.
    pub fn requests(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.deposits.load(Ordering::Relaxed))
    }

    /// Retries the budget allowed.
    pub fn retries(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.withdrawals.load(Ordering::Relaxed))
    }

    /// Retries the budget refused.
    pub fn refused(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.refusals.load(Ordering::Relaxed))
    }

    /// `false` for [`RetryBudget::unlimited`].
    pub fn is_limited(&self) -> bool {
        self.inner.is_some()
    }
}

impl Inner {
    #[inline]
    fn tick(&self) -> u64 {
        self.tick_at(clock::now())
    }

    fn tick_at(&self, now: Instant) -> u64 {
        // Nanoseconds fit a u64 for 584 years; a u64 division is much
        // cheaper than a u128 one.
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        (u64::try_from(elapsed).unwrap_or(u64::MAX) / self.slot_nanos).saturating_add(1)
    }

    /// The balance of the slot for `tick`, cleared first if it still holds
    /// an older tick. (A deposit racing with the clearing may be lost; the
    /// budget is an estimate and errs on the side of fewer retries.)
    #[inline]
    fn slot(&self, tick: u64) -> &AtomicI64 {
        let slot = &self.slots[(tick % SLOTS as u64) as usize];
        let seen = slot.tick.load(Ordering::Acquire);
        if seen != tick
            && slot
                .tick
                .compare_exchange(seen, tick, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            slot.balance.store(0, Ordering::Release);
        }
        &slot.balance
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(Duration::from_secs(10), 10, 0.2).expect("default budget is valid")
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("RetryBudget(unlimited)"),
            Some(i) => f
                .debug_struct("RetryBudget")
                .field("percent", &i.percent)
                .field("min_per_sec", &i.min_per_sec)
                .field("ttl", &i.ttl)
                .field("requests", &self.requests())
                .field("retries", &self.retries())
                .field("refused", &self.refused())
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_fields() {
        let err = |r: Result<RetryBudget, ConfigError>| r.unwrap_err().field();
        assert_eq!(err(RetryBudget::new(Duration::ZERO, 10, 0.2)), "budget.ttl");
        assert_eq!(
            err(RetryBudget::new(Duration::from_secs(61), 10, 0.2)),
            "budget.ttl"
        );
        assert_eq!(
            err(RetryBudget::new(Duration::from_secs(10), 10, f32::NAN)),
            "budget.percent"
        );
        assert_eq!(
            err(RetryBudget::new(Duration::from_secs(10), 10, -0.1)),
            "budget.percent"
        );
        assert_eq!(
            err(RetryBudget::new(Duration::from_secs(10), 0, 0.0)),
            "budget"
        );
        assert_eq!(
            err(RetryBudget::new(Duration::from_secs(10), u32::MAX, 0.2)),
            "budget.min_per_sec"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_expire_after_the_ttl() {
        let budget = RetryBudget::new(Duration::from_secs(1), 0, 1.0).unwrap();
        budget.deposit();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(
            !budget.withdraw(),
            "a deposit older than the window is gone"
        );
        budget.deposit();
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(budget.withdraw(), "a recent deposit counts");
        assert!(
            !budget.withdraw(),
            "each deposit pays for one retry at 100 %"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn withdrawals_expire_too() {
        let budget = RetryBudget::new(Duration::from_secs(2), 1, 0.0).unwrap();
        // The floor: 1 retry per second over 2 s.
        assert!(budget.withdraw());
        assert!(budget.withdraw());
        assert!(!budget.withdraw());
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(budget.withdraw(), "old withdrawals slid out of the window");
    }

    #[test]
    fn unlimited_always_allows() {
        let budget = RetryBudget::unlimited();
        assert!((0..10_000).all(|_| budget.withdraw()));
        assert!(!budget.is_limited());
    }

    #[tokio::test(start_paused = true)]
    async fn percent_of_requests_plus_floor() {
        let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.2).unwrap();
        for _ in 0..100 {
            budget.deposit();
        }
        let mut allowed = 0;
        while budget.withdraw() {
            allowed += 1;
            assert!(allowed < 1000, "budget never ran out");
        }
        // 20 % of 100 requests plus a reserve of 1/s over 10 s.
        assert_eq!(allowed, 20 + 10);
        assert_eq!(budget.refused(), 1);
        assert_eq!(budget.retries(), 30);
    }
}
