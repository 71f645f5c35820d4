//! What an HTTP server told the client about waiting: `Retry-After` in every
//! form, and every rate-limit header dialect in use.
//!
//! (Work in progress: the parsers land with the foundation.)

use std::time::{Duration, SystemTime};

/// What the server asked the client to do before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pushback {
    /// Wait this long, measured from when the response arrived.
    After(Duration),
    /// Do not retry at all.
    Stop,
}

/// Reads the server's requested wait from the retry headers.
pub fn retry_after(_headers: &http::HeaderMap, _now: SystemTime) -> Option<Pushback> {
    None
}

/// Reads `x-should-retry` / `stripe-should-retry`.
pub fn should_retry(_headers: &http::HeaderMap) -> Option<bool> {
    None
}

/// Every quota the response reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimits {
    quotas: Vec<Quota>,
}

impl RateLimits {
    /// The quotas, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Quota> {
        self.quotas.iter()
    }
    /// `true` when no quota was reported.
    pub fn is_empty(&self) -> bool {
        self.quotas.is_empty()
    }
}

/// One quota.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quota {
    /// What is counted.
    pub resource: Resource,
    /// The limit.
    pub limit: Option<u64>,
    /// What is left.
    pub remaining: Option<u64>,
    /// Time until reset, from `now`.
    pub reset_after: Option<Duration>,
    /// The window.
    pub window: Option<Duration>,
}

/// What a quota counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Resource {
    /// Requests.
    Requests,
    /// Tokens.
    Tokens,
    /// Input tokens.
    InputTokens,
    /// Output tokens.
    OutputTokens,
    /// Concurrent requests.
    ConcurrentRequests,
    /// Content bytes.
    ContentBytes,
}

/// Reads every rate-limit dialect into quotas.
pub fn rate_limits(_headers: &http::HeaderMap, _now: SystemTime) -> RateLimits {
    RateLimits::default()
}
