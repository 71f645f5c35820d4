//! The retry budget: retries may add at most a fixed share of load.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use evenkeel_core::ConfigError;
use tower::retry::budget::{Budget as _, TpsBudget};

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
/// The accounting is tower's [`TpsBudget`], validated up front (it panics on
/// bad input; this type returns a [`ConfigError`] instead) and counted.
#[derive(Clone)]
pub struct RetryBudget {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    budget: TpsBudget,
    percent: f32,
    min_per_sec: u32,
    ttl: Duration,
    deposits: AtomicU64,
    withdrawals: AtomicU64,
    refusals: AtomicU64,
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
        if min_per_sec >= i32::MAX as u32 {
            return Err(ConfigError::new("budget.min_per_sec", "is too large"));
        }
        if percent == 0.0 && min_per_sec == 0 {
            return Err(ConfigError::new(
                "budget",
                "allows no retry at all (0 % and no floor); use max_attempts(1) to disable retries",
            ));
        }
        Ok(RetryBudget {
            inner: Some(Arc::new(Inner {
                budget: TpsBudget::new(ttl, min_per_sec, percent),
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
    pub(crate) fn deposit(&self) {
        if let Some(inner) = &self.inner {
            inner.budget.deposit();
            inner.deposits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes one retry from the budget; `false` when it is empty.
    pub(crate) fn withdraw(&self) -> bool {
        match &self.inner {
            None => true,
            Some(inner) => {
                if inner.budget.withdraw() {
                    inner.withdrawals.fetch_add(1, Ordering::Relaxed);
                    true
                } else {
                    inner.refusals.fetch_add(1, Ordering::Relaxed);
                    false
                }
            }
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
        assert_eq!(err(RetryBudget::new(Duration::from_secs(61), 10, 0.2)), "budget.ttl");
        assert_eq!(err(RetryBudget::new(Duration::from_secs(10), 10, f32::NAN)), "budget.percent");
        assert_eq!(err(RetryBudget::new(Duration::from_secs(10), 10, -0.1)), "budget.percent");
        assert_eq!(err(RetryBudget::new(Duration::from_secs(10), 0, 0.0)), "budget");
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
