//! Quotas known in advance (a provider's tier table), and the local token
//! bucket that holds each to its declared rate.

use std::time::Duration;

use evenkeel_core::ConfigError;
use evenkeel_headers::Resource;
use tokio::time::Instant;

use super::{EPSILON, duration, secs};
use crate::cost::field_of;
use crate::store::{ResourceSnapshot, Source};

/// A quota declared up front (for example "50 requests per minute, 30 000
/// input tokens per minute" from a provider's tier table). It applies from
/// the very first request, before any header is seen; quotas learned from
/// headers apply next to it, so what the server reports can only tighten
/// it.
///
/// A declared quota is a token bucket holding `burst` units (the limit, by
/// default) and refilled at `limit / per`, the way Anthropic and OpenAI
/// enforce theirs. It counts every request sent under the key, so it fits
/// a quota that this process alone uses.
///
/// ```
/// use evenkeel_quota::StaticQuota;
/// use evenkeel_headers::Resource;
///
/// let rpm = StaticQuota::per_minute(Resource::Requests, 50);
/// assert_eq!(rpm.rate(), 50.0 / 60.0);
/// let itpm = StaticQuota::per_minute(Resource::InputTokens, 30_000).with_burst(5_000);
/// assert_eq!(itpm.burst(), 5_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StaticQuota {
    resource: Resource,
    limit: u64,
    per: Duration,
    burst: Option<u64>,
}

impl StaticQuota {
    /// `limit` units of `resource` per `per`.
    pub fn new(resource: Resource, limit: u64, per: Duration) -> Self {
        StaticQuota {
            resource,
            limit,
            per,
            burst: None,
        }
    }

    /// `limit` per second.
    pub fn per_second(resource: Resource, limit: u64) -> Self {
        Self::new(resource, limit, Duration::from_secs(1))
    }

    /// `limit` per minute.
    pub fn per_minute(resource: Resource, limit: u64) -> Self {
        Self::new(resource, limit, Duration::from_secs(60))
    }

    /// `limit` per hour.
    pub fn per_hour(resource: Resource, limit: u64) -> Self {
        Self::new(resource, limit, Duration::from_secs(3600))
    }

    /// `limit` per day.
    pub fn per_day(resource: Resource, limit: u64) -> Self {
        Self::new(resource, limit, Duration::from_secs(86_400))
    }

    /// The most that may go at once (the limit by default).
    #[must_use]
    pub fn with_burst(mut self, burst: u64) -> Self {
        self.burst = Some(burst);
        self
    }

    /// What is counted.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// Units per period.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.per
    }

    /// The most that may go at once.
    pub fn burst(&self) -> u64 {
        self.burst.unwrap_or(self.limit)
    }

    /// The refill rate, in units per second.
    pub fn rate(&self) -> f64 {
        self.limit as f64 / self.per.as_secs_f64()
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if field_of(&self.resource).is_none() {
            return Err(ConfigError::new(
                "declare.resource",
                format!(
                    "must be requests, tokens, input-tokens or output-tokens, got {}",
                    self.resource
                ),
            ));
        }
        if self.limit == 0 {
            return Err(ConfigError::new("declare.limit", "must be at least 1"));
        }
        if self.per.is_zero() || self.per > Duration::from_secs(366 * 86_400) {
            return Err(ConfigError::new(
                "declare.per",
                "must be more than zero and at most a year",
            ));
        }
        if self.burst == Some(0) {
            return Err(ConfigError::new("declare.burst", "must be at least 1"));
        }
        Ok(())
    }
}

/// A declared quota in a key's model: a local token bucket that starts full
/// and refills at its declared rate.
#[derive(Debug)]
pub(crate) struct Declared {
    pub(crate) resource: Resource,
    /// The cost field it counts.
    pub(crate) field: usize,
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Declared {
    /// The bucket of `q`, full; `None` for a resource that is not metered.
    pub(crate) fn new(q: &StaticQuota, now: Instant) -> Option<Self> {
        let field = field_of(q.resource())?;
        let capacity = q.burst() as f64;
        Some(Declared {
            resource: q.resource().clone(),
            field,
            capacity,
            rate: q.rate(),
            tokens: capacity,
            last: now,
        })
    }

    pub(crate) fn advance(&mut self, now: Instant) {
        let dt = secs(now.saturating_duration_since(self.last));
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        self.last = self.last.max(now);
    }

    /// Takes an admission's cost.
    pub(crate) fn take(&mut self, cost: u64) {
        self.tokens -= cost as f64;
    }

    /// How long until `need` fits, for an admission now.
    pub(crate) fn time_until(&self, need: u64) -> Duration {
        if need == 0 {
            return Duration::ZERO;
        }
        // A request larger than the bucket goes when the bucket is full.
        let need = (need as f64).min(self.capacity);
        if self.tokens + EPSILON >= need {
            return Duration::ZERO;
        }
        duration((need - self.tokens) / self.rate)
    }

    /// How long until `need`, a request and the queue ahead of it, has come
    /// in: unlike [`time_until`](Self::time_until), not capped at the
    /// bucket's size.
    pub(crate) fn eta(&self, need: u64) -> Duration {
        if need == 0 || self.tokens + EPSILON >= need as f64 {
            return Duration::ZERO;
        }
        duration((need as f64 - self.tokens) / self.rate)
    }

    pub(crate) fn refund(&mut self, cost: u64) {
        self.tokens = (self.tokens + cost as f64).min(self.capacity);
    }

    pub(crate) fn snapshot(&self) -> ResourceSnapshot {
        ResourceSnapshot {
            resource: self.resource.clone(),
            policy: None,
            source: Source::Declared,
            limit: Some(self.capacity as u64),
            remaining: self.tokens.max(0.0).floor() as u64,
            reset: None,
            rate: Some(self.rate),
            updated: None,
        }
    }
}
