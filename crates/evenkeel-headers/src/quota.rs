//! The normalised form of every rate-limit dialect: [`Quota`], what it
//! counts ([`Resource`]), where it came from ([`Dialect`]) and how it comes
//! back ([`Replenish`]), gathered in [`RateLimits`].

use std::fmt;
use std::time::Duration;

/// What a quota counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Resource {
    /// Requests (the default unit of every generic dialect).
    Requests,
    /// Tokens, input and output together (OpenAI, Anthropic's combined limit).
    Tokens,
    /// Input (prompt) tokens.
    InputTokens,
    /// Output (completion) tokens.
    OutputTokens,
    /// Requests in flight at once (IETF `qu="concurrent-requests"`).
    ConcurrentRequests,
    /// Bytes of content (IETF `qu="content-bytes"`).
    ContentBytes,
    /// Points of a GraphQL API's query-complexity budget: each request
    /// costs what the server computes for its query (Linear's
    /// `X-RateLimit-Complexity-*`). Spent like tokens, counted per query.
    Complexity,
    /// A unit this crate does not know, as the server named it (an IETF
    /// `qu` value outside the registry).
    Other(String),
}

impl Resource {
    /// The unit's name as the IETF draft spells quota units: `requests`,
    /// `tokens`, `input-tokens`, `output-tokens`, `concurrent-requests`,
    /// `content-bytes`, `complexity`, or the server's own name for
    /// [`Resource::Other`].
    /// Stable, so it suits metric labels.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
            Self::InputTokens => "input-tokens",
            Self::OutputTokens => "output-tokens",
            Self::ConcurrentRequests => "concurrent-requests",
            Self::ContentBytes => "content-bytes",
            Self::Complexity => "complexity",
            Self::Other(name) => name,
        }
    }

    /// The resource an IETF quota-unit name stands for. Accepts the three
    /// registered units (`requests`, also as the registry's `request`;
    /// `content-bytes`; `concurrent-requests`), draft 08's `bytes`, and the
    /// token and complexity units this crate knows; anything else is
    /// [`Resource::Other`].
    pub fn from_unit(unit: &str) -> Self {
        match unit {
            "requests" | "request" => Self::Requests,
            "content-bytes" | "bytes" => Self::ContentBytes,
            "concurrent-requests" => Self::ConcurrentRequests,
            "tokens" => Self::Tokens,
            "input-tokens" => Self::InputTokens,
            "output-tokens" => Self::OutputTokens,
            "complexity" => Self::Complexity,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The header family a quota was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Dialect {
    /// The structured `RateLimit` / `RateLimit-Policy` fields of
    /// draft-ietf-httpapi-ratelimit-headers (drafts 08 and later).
    Ietf,
    /// The earlier drafts: `RateLimit-Limit`, `RateLimit-Remaining`,
    /// `RateLimit-Reset` (drafts 00–06), and draft 07's dictionary
    /// `RateLimit: limit=…, remaining=…, reset=…`.
    IetfDraft,
    /// `X-RateLimit-*` as GitHub, GitLab and most gateways send it, X's
    /// `x-rate-limit-*`, and Kong's per-window `X-RateLimit-Limit-Minute`.
    XRateLimit,
    /// Anthropic's `anthropic-ratelimit-*` (and `anthropic-priority-*`).
    Anthropic,
    /// OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`
    /// (also sent by Azure OpenAI, Groq and other compatible APIs).
    OpenAi,
    /// Discord's `x-ratelimit-*` with `-reset-after` and `-bucket`.
    Discord,
    /// Shopify's `X-Shopify-Shop-Api-Call-Limit: used/limit`.
    Shopify,
    /// Linear's `X-RateLimit-Requests-{Limit,Remaining,Reset}` and
    /// `X-RateLimit-Complexity-{Limit,Remaining,Reset}` (resets in Unix
    /// milliseconds).
    Linear,
    /// Not read from headers: built by the application with [`Quota::new`].
    Custom,
}

impl Dialect {
    /// A short stable name: `ietf`, `ietf-draft`, `x-ratelimit`,
    /// `anthropic`, `openai`, `discord`, `shopify`, `linear`, `custom`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ietf => "ietf",
            Self::IetfDraft => "ietf-draft",
            Self::XRateLimit => "x-ratelimit",
            Self::Anthropic => "anthropic",
            Self::OpenAi => "openai",
            Self::Discord => "discord",
            Self::Shopify => "shopify",
            Self::Linear => "linear",
            Self::Custom => "custom",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a quota comes back after it is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Replenish {
    /// Continuously, like a token bucket: `reset_after` is the time until
    /// the quota is full again, and part of it is back sooner (Anthropic,
    /// OpenAI, Shopify's and Linear's leaky buckets).
    Gradual,
    /// All at once at the end of a fixed window: nothing comes back before
    /// `reset_after` (IETF, X-RateLimit, GitHub, Discord).
    Window,
    /// The server does not say.
    #[default]
    Unknown,
}

/// One quota the server reported: how much of a [`Resource`] a client may
/// use, how much is left, and when it comes back.
///
/// Read from headers by [`rate_limits`](crate::rate_limits); built by hand
/// with [`Quota::new`] and the `with_*` setters:
///
/// ```
/// use std::time::Duration;
/// use evenkeel_headers::{Quota, Replenish, Resource};
///
/// let q = Quota::new(Resource::Requests)
///     .with_limit(100)
///     .with_remaining(0)
///     .with_reset_after(Duration::from_secs(30))
///     .with_replenish(Replenish::Window);
/// assert!(q.is_exhausted());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Quota {
    /// What is counted.
    pub resource: Resource,
    /// The most the quota allows (IETF `q`, `*-limit`).
    pub limit: Option<u64>,
    /// What is left now (IETF `r`, `*-remaining`).
    pub remaining: Option<u64>,
    /// How long from `now` until the quota resets (see [`Replenish`]); a
    /// reset already in the past is [`Duration::ZERO`].
    pub reset_after: Option<Duration>,
    /// The length of the quota's window (IETF `w`, Kong's `-minute`).
    pub window: Option<Duration>,
    /// Where the numbers came from.
    pub dialect: Dialect,
    /// The quota's name: the IETF policy name, Discord's bucket, GitHub's
    /// `x-ratelimit-resource` (`core`, `search`…), Kong's window
    /// (`minute`…), or `priority` for Anthropic's Priority Tier.
    pub policy: Option<String>,
    /// The IETF partition key (`pk`), as the base64 text the server sent.
    pub partition_key: Option<String>,
    /// How much has been used (GitHub's `x-ratelimit-used`, Shopify).
    pub used: Option<u64>,
    /// How the quota comes back.
    pub replenish: Replenish,
    /// Who the limit applies to, where the server says: Discord's
    /// `x-ratelimit-scope` (`user`, `global`, `shared`).
    pub scope: Option<String>,
}

impl Quota {
    /// A quota of `resource` with nothing known yet, of dialect
    /// [`Dialect::Custom`] and replenishment [`Replenish::Unknown`].
    pub fn new(resource: Resource) -> Self {
        Self {
            resource,
            limit: None,
            remaining: None,
            reset_after: None,
            window: None,
            dialect: Dialect::Custom,
            policy: None,
            partition_key: None,
            used: None,
            replenish: Replenish::Unknown,
            scope: None,
        }
    }

    /// Sets [`limit`](Self::limit).
    #[must_use]
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Sets [`remaining`](Self::remaining).
    #[must_use]
    pub fn with_remaining(mut self, remaining: u64) -> Self {
        self.remaining = Some(remaining);
        self
    }

    /// Sets [`reset_after`](Self::reset_after).
    #[must_use]
    pub fn with_reset_after(mut self, reset_after: Duration) -> Self {
        self.reset_after = Some(reset_after);
        self
    }

    /// Sets [`window`](Self::window).
    #[must_use]
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = Some(window);
        self
    }

    /// Sets [`dialect`](Self::dialect).
    #[must_use]
    pub fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// Sets [`policy`](Self::policy).
    #[must_use]
    pub fn with_policy(mut self, policy: impl Into<String>) -> Self {
        self.policy = Some(policy.into());
        self
    }

    /// Sets [`partition_key`](Self::partition_key).
    #[must_use]
    pub fn with_partition_key(mut self, key: impl Into<String>) -> Self {
        self.partition_key = Some(key.into());
        self
    }

    /// Sets [`used`](Self::used).
    #[must_use]
    pub fn with_used(mut self, used: u64) -> Self {
        self.used = Some(used);
        self
    }

    /// Sets [`replenish`](Self::replenish).
    #[must_use]
    pub fn with_replenish(mut self, replenish: Replenish) -> Self {
        self.replenish = replenish;
        self
    }

    /// Sets [`scope`](Self::scope).
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// `true` when the server said nothing is left (`remaining == 0`).
    pub fn is_exhausted(&self) -> bool {
        self.remaining == Some(0)
    }

    /// The share of the limit still available, from 0.0 to 1.0, when both
    /// numbers are known and the limit is not zero. A `remaining` above the
    /// limit counts as 1.0.
    pub fn remaining_fraction(&self) -> Option<f64> {
        match (self.remaining, self.limit) {
            (Some(r), Some(l)) if l > 0 => Some((r as f64 / l as f64).min(1.0)),
            _ => None,
        }
    }
}

/// Every quota one response reported, in a fixed order: IETF structured
/// fields first, then the earlier IETF drafts, X-RateLimit, Discord,
/// OpenAI, Anthropic, Shopify, Linear; within a dialect, in the order the
/// headers list them (requests before tokens or complexity for the vendor
/// dialects).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RateLimits {
    quotas: Vec<Quota>,
}

impl RateLimits {
    /// No quotas.
    pub fn new() -> Self {
        Self::default()
    }

    /// The quotas, in report order.
    pub fn iter(&self) -> impl Iterator<Item = &Quota> {
        self.quotas.iter()
    }

    /// `true` when no quota was reported.
    pub fn is_empty(&self) -> bool {
        self.quotas.is_empty()
    }

    /// How many quotas were reported.
    pub fn len(&self) -> usize {
        self.quotas.len()
    }

    /// The first quota of `resource` in report order.
    pub fn get(&self, resource: &Resource) -> Option<&Quota> {
        self.quotas.iter().find(|q| &q.resource == resource)
    }

    /// The quota of `resource` that binds first when several policies cover
    /// it: the one with the fewest units left (quotas that do not say what
    /// is left come last), and among those the one that resets latest.
    ///
    /// ```
    /// use std::time::Duration;
    /// use evenkeel_headers::{Quota, RateLimits, Resource};
    ///
    /// let limits: RateLimits = [
    ///     Quota::new(Resource::Requests).with_policy("minute").with_remaining(40),
    ///     Quota::new(Resource::Requests).with_policy("day").with_remaining(3),
    /// ]
    /// .into_iter()
    /// .collect();
    /// let tightest = limits.tightest(&Resource::Requests).unwrap();
    /// assert_eq!(tightest.policy.as_deref(), Some("day"));
    /// ```
    pub fn tightest(&self, resource: &Resource) -> Option<&Quota> {
        self.quotas
            .iter()
            .filter(|q| &q.resource == resource)
            .min_by(|a, b| {
                let left = |q: &Quota| q.remaining.unwrap_or(u64::MAX);
                left(a)
                    .cmp(&left(b))
                    .then_with(|| b.reset_after.cmp(&a.reset_after))
            })
    }

    /// Appends a quota.
    pub fn push(&mut self, quota: Quota) {
        self.quotas.push(quota);
    }

    /// The quotas as a slice.
    pub fn as_slice(&self) -> &[Quota] {
        &self.quotas
    }
}

impl<'a> IntoIterator for &'a RateLimits {
    type Item = &'a Quota;
    type IntoIter = std::slice::Iter<'a, Quota>;

    fn into_iter(self) -> Self::IntoIter {
        self.quotas.iter()
    }
}

impl IntoIterator for RateLimits {
    type Item = Quota;
    type IntoIter = std::vec::IntoIter<Quota>;

    fn into_iter(self) -> Self::IntoIter {
        self.quotas.into_iter()
    }
}

impl FromIterator<Quota> for RateLimits {
    fn from_iter<I: IntoIterator<Item = Quota>>(iter: I) -> Self {
        Self {
            quotas: iter.into_iter().collect(),
        }
    }
}

impl Extend<Quota> for RateLimits {
    fn extend<I: IntoIterator<Item = Quota>>(&mut self, iter: I) {
        self.quotas.extend(iter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tightest_prefers_fewest_left_then_latest_reset() {
        let limits: RateLimits = [
            Quota::new(Resource::Requests).with_policy("unknown"),
            Quota::new(Resource::Requests)
                .with_policy("a")
                .with_remaining(0)
                .with_reset_after(Duration::from_secs(5)),
            Quota::new(Resource::Requests)
                .with_policy("b")
                .with_remaining(0)
                .with_reset_after(Duration::from_secs(50)),
            Quota::new(Resource::Tokens).with_remaining(0),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            limits
                .tightest(&Resource::Requests)
                .unwrap()
                .policy
                .as_deref(),
            Some("b")
        );
        assert_eq!(
            limits.get(&Resource::Requests).unwrap().policy.as_deref(),
            Some("unknown")
        );
        assert!(limits.tightest(&Resource::InputTokens).is_none());
        assert_eq!(limits.len(), 4);
        assert_eq!((&limits).into_iter().count(), 4);
    }

    #[test]
    fn remaining_fraction_is_bounded() {
        let q = Quota::new(Resource::Tokens)
            .with_limit(200)
            .with_remaining(50);
        assert_eq!(q.remaining_fraction(), Some(0.25));
        let q = Quota::new(Resource::Tokens)
            .with_limit(10)
            .with_remaining(50);
        assert_eq!(q.remaining_fraction(), Some(1.0));
        let q = Quota::new(Resource::Tokens).with_limit(0).with_remaining(0);
        assert_eq!(q.remaining_fraction(), None);
    }

    #[test]
    fn units_round_trip_through_names() {
        for r in [
            Resource::Requests,
            Resource::Tokens,
            Resource::InputTokens,
            Resource::OutputTokens,
            Resource::ConcurrentRequests,
            Resource::ContentBytes,
            Resource::Complexity,
            Resource::Other("widgets".into()),
        ] {
            assert_eq!(Resource::from_unit(r.as_str()), r);
            assert_eq!(r.to_string(), r.as_str());
        }
        assert_eq!(Resource::from_unit("request"), Resource::Requests);
        assert_eq!(Resource::from_unit("bytes"), Resource::ContentBytes);
    }
}
