//! Quotas known in advance: a provider's tier table.

use std::time::Duration;

use evenkeel_core::ConfigError;
use evenkeel_headers::Resource;

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
        if crate::cost::field_of(&self.resource).is_none() {
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
