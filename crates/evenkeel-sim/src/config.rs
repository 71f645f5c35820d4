//! What a [`Sim`] can be told: the builder and the knobs it validates.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use crate::Sim;
use crate::model::Model;
use crate::stream::Streaming;

/// The header [`TokenCost::default_header`] reads a request's token cost from.
pub const DEFAULT_TOKEN_HEADER: &str = "x-sim-tokens";

/// The longest wait, delay or window the sim computes with. Keeps arithmetic on
/// instants far from overflow whatever the configuration.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3_600);

/// The largest burst a quota may have: every count stays exact in an `f64`.
const MAX_BURST: u64 = 1 << 52;

/// A configuration value was refused; [`field`](Self::field) names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The refused field, as the builder method that sets it is named
    /// (`"rate"`, `"faults.reset"`, `"capacity"`...).
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why it was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid sim configuration: `{}` {}",
            self.field, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

/// Which rate-limit headers the sim sends on every response, spelled exactly
/// as the real API spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Dialect {
    /// Anthropic: `anthropic-ratelimit-requests-{limit,remaining,reset}` and the
    /// same for `tokens`, `input-tokens` and `output-tokens`, resets as RFC 3339
    /// at whole seconds. Error bodies are Anthropic's.
    #[default]
    Anthropic,
    /// OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, resets
    /// as Go durations (`6m0s`, `1s`, `12ms`). Error and success bodies are
    /// OpenAI's.
    OpenAi,
    /// The IETF structured fields: `RateLimit-Policy: "default";q=..;w=..` and
    /// `RateLimit: "default";r=..;t=..`, one list item per quota.
    Ietf,
    /// GitHub: `x-ratelimit-{limit,remaining,reset,used,resource}`, reset as
    /// Unix epoch seconds. Reports the request quota only.
    GitHub,
    /// No rate-limit headers at all (`Retry-After` is still sent on a 429).
    None,
}

impl Dialect {
    /// Every dialect, in declaration order.
    pub const ALL: [Dialect; 5] = [
        Dialect::Anthropic,
        Dialect::OpenAi,
        Dialect::Ietf,
        Dialect::GitHub,
        Dialect::None,
    ];

    /// The lowercase name [`FromStr`] accepts: `anthropic`, `openai`, `ietf`,
    /// `github`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Anthropic => "anthropic",
            Dialect::OpenAi => "openai",
            Dialect::Ietf => "ietf",
            Dialect::GitHub => "github",
            Dialect::None => "none",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given to [`Dialect::from_str`] is not a dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownDialect(String);

impl fmt::Display for UnknownDialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown rate-limit dialect `{}` (expected anthropic, openai, ietf, github or none)",
            self.0
        )
    }
}

impl std::error::Error for UnknownDialect {}

impl FromStr for Dialect {
    type Err = UnknownDialect;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dialect::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownDialect(s.to_owned()))
    }
}

/// What a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum QuotaKind {
    /// Requests: each request costs one.
    Requests,
    /// Tokens, the combined quota (`anthropic-ratelimit-tokens-*`,
    /// `x-ratelimit-*-tokens`).
    Tokens,
    /// Input tokens (`anthropic-ratelimit-input-tokens-*`).
    InputTokens,
    /// Output tokens (`anthropic-ratelimit-output-tokens-*`).
    OutputTokens,
}

impl QuotaKind {
    /// The name the dialects use: `requests`, `tokens`, `input-tokens`,
    /// `output-tokens`.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::Requests => "requests",
            QuotaKind::Tokens => "tokens",
            QuotaKind::InputTokens => "input-tokens",
            QuotaKind::OutputTokens => "output-tokens",
        }
    }
}

impl fmt::Display for QuotaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<QuotaKind> for evenkeel_headers::Resource {
    /// The resource `evenkeel_headers` reads this quota back as.
    fn from(kind: QuotaKind) -> Self {
        match kind {
            QuotaKind::Requests => Self::Requests,
            QuotaKind::Tokens => Self::Tokens,
            QuotaKind::InputTokens => Self::InputTokens,
            QuotaKind::OutputTokens => Self::OutputTokens,
        }
    }
}

/// Where a request's cost against a token quota comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenCost {
    /// A decimal integer in this request header. A missing header costs zero;
    /// a malformed one is answered `400 invalid_request_error`.
    Header(HeaderName),
    /// The request body's length in bytes.
    BodyBytes,
    /// The request body's length in bytes divided by four, rounded up: the
    /// usual estimate of an LLM prompt's input tokens.
    InputTokenEstimate,
    /// The same fixed cost for every request (for example the `max_tokens` an
    /// output-token quota reserves up front).
    Fixed(u64),
}

impl TokenCost {
    /// The cost read from the [`DEFAULT_TOKEN_HEADER`] (`x-sim-tokens`) header.
    pub fn default_header() -> Self {
        TokenCost::Header(HeaderName::from_static(DEFAULT_TOKEN_HEADER))
    }
}

/// A token quota: a token bucket refilled at `rate` per second up to `burst`,
/// charged per request by its [`TokenCost`].
#[derive(Debug, Clone, PartialEq)]
pub struct TokenQuota {
    pub(crate) kind: QuotaKind,
    pub(crate) rate: f64,
    pub(crate) burst: u64,
    pub(crate) cost: TokenCost,
}

impl TokenQuota {
    /// A quota of `kind` (not [`QuotaKind::Requests`]; use
    /// [`SimBuilder::requests`] for that).
    pub fn new(kind: QuotaKind, rate: f64, burst: u64, cost: TokenCost) -> Self {
        Self {
            kind,
            rate,
            burst,
            cost,
        }
    }

    /// The combined `tokens` quota, charged by `cost`.
    pub fn tokens(rate: f64, burst: u64, cost: TokenCost) -> Self {
        Self::new(QuotaKind::Tokens, rate, burst, cost)
    }

    /// An `input-tokens` quota charged by [`TokenCost::InputTokenEstimate`]
    /// (body bytes / 4).
    pub fn input_tokens(rate: f64, burst: u64) -> Self {
        Self::new(
            QuotaKind::InputTokens,
            rate,
            burst,
            TokenCost::InputTokenEstimate,
        )
    }

    /// An `output-tokens` quota charged by `cost`.
    pub fn output_tokens(rate: f64, burst: u64, cost: TokenCost) -> Self {
        Self::new(QuotaKind::OutputTokens, rate, burst, cost)
    }
}

/// Fault injection: the fraction of requests answered each way.
///
/// The exclusive faults (`reset`, `internal_error`, `unavailable`,
/// `overloaded`, `insufficient_quota`) are drawn from one uniform number per
/// request, so their fractions add up and must not exceed 1. `slow` is drawn
/// independently and adds its delay to whatever the answer is.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    pub(crate) reset: f64,
    pub(crate) internal_error: f64,
    pub(crate) unavailable: f64,
    pub(crate) overloaded: f64,
    pub(crate) insufficient_quota: f64,
    pub(crate) slow: f64,
    pub(crate) slow_delay: Duration,
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// The fraction of requests whose connection is reset instead of answered
    /// (in-process: an error of kind [`std::io::ErrorKind::ConnectionReset`]).
    pub fn reset(mut self, fraction: f64) -> Self {
        self.reset = fraction;
        self
    }

    /// The fraction answered `500` with an `api_error` body.
    pub fn internal_error(mut self, fraction: f64) -> Self {
        self.internal_error = fraction;
        self
    }

    /// The fraction answered `503` with an `overloaded_error` body.
    pub fn unavailable(mut self, fraction: f64) -> Self {
        self.unavailable = fraction;
        self
    }

    /// The fraction answered Anthropic's `529 overloaded_error` with
    /// `x-should-retry: true`.
    pub fn overloaded(mut self, fraction: f64) -> Self {
        self.overloaded = fraction;
        self
    }

    /// The fraction answered OpenAI's hopeless `429 insufficient_quota`
    /// (no `Retry-After`: waiting does not help).
    pub fn insufficient_quota(mut self, fraction: f64) -> Self {
        self.insufficient_quota = fraction;
        self
    }

    /// The fraction of answers delayed by an extra `delay`.
    pub fn slow(mut self, fraction: f64, delay: Duration) -> Self {
        self.slow = fraction;
        self.slow_delay = delay;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let fractions = [
            ("faults.reset", self.reset),
            ("faults.internal_error", self.internal_error),
            ("faults.unavailable", self.unavailable),
            ("faults.overloaded", self.overloaded),
            ("faults.insufficient_quota", self.insufficient_quota),
            ("faults.slow", self.slow),
        ];
        for (field, p) in fractions {
            if !(0.0..=1.0).contains(&p) {
                return Err(ConfigError::new(
                    field,
                    format!("must be a fraction between 0 and 1, got {p}"),
                ));
            }
        }
        let exclusive = self.reset
            + self.internal_error
            + self.unavailable
            + self.overloaded
            + self.insufficient_quota;
        if exclusive > 1.0 + 1e-9 {
            return Err(ConfigError::new(
                "faults",
                format!(
                    "reset, internal_error, unavailable, overloaded and insufficient_quota \
                     must add up to at most 1, got {exclusive}"
                ),
            ));
        }
        if self.slow_delay > MAX_WAIT {
            return Err(ConfigError::new(
                "faults.slow",
                "delay must be at most a year",
            ));
        }
        Ok(())
    }
}

/// A validated token-bucket setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    pub(crate) per_sec: f64,
    pub(crate) burst: u64,
}

impl Rate {
    pub(crate) fn validate(
        rate_field: &'static str,
        burst_field: &'static str,
        per_sec: f64,
        burst: u64,
    ) -> Result<Self, ConfigError> {
        if !per_sec.is_finite() || per_sec <= 0.0 {
            return Err(ConfigError::new(
                rate_field,
                format!("must be a finite number above zero, got {per_sec}"),
            ));
        }
        if !(1e-6..=1e12).contains(&per_sec) {
            return Err(ConfigError::new(
                rate_field,
                format!("must be between 1e-6 and 1e12 per second, got {per_sec}"),
            ));
        }
        if burst == 0 {
            return Err(ConfigError::new(burst_field, "must be at least 1"));
        }
        if burst > MAX_BURST {
            return Err(ConfigError::new(
                burst_field,
                format!("must be at most {MAX_BURST}, got {burst}"),
            ));
        }
        Ok(Self { per_sec, burst })
    }
}

/// Builds a [`Sim`]; every setter is optional and [`build`](Self::build)
/// validates the lot.
///
/// Defaults: no quota, [`Dialect::Anthropic`], no faults, 50 ms latency with
/// no capacity limit, no `reject_above`, seed `0x5EED`, request bodies up to
/// 4 MiB, no `retry-after-ms`.
#[derive(Debug, Clone)]
pub struct SimBuilder {
    requests: Option<(f64, u64)>,
    token_quotas: Vec<TokenQuota>,
    dialect: Dialect,
    retry_after_ms: bool,
    faults: Faults,
    latency: Duration,
    capacity: Option<usize>,
    reject_above: Option<usize>,
    seed: u64,
    max_body_bytes: usize,
    first_attempt: Option<FirstAttempt>,
    streaming: Streaming,
}

/// How the sim answers the first attempt of each request (told apart by
/// `x-request-id`), whatever its quotas say: see
/// [`SimBuilder::first_attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstAttempt {
    pub(crate) status: http::StatusCode,
    pub(crate) headers: http::HeaderMap,
}

impl Default for SimBuilder {
    fn default() -> Self {
        Self {
            requests: None,
            token_quotas: Vec::new(),
            dialect: Dialect::default(),
            retry_after_ms: false,
            faults: Faults::none(),
            latency: Duration::from_millis(50),
            capacity: None,
            reject_above: None,
            seed: 0x5EED,
            max_body_bytes: 4 << 20,
            first_attempt: None,
            streaming: Streaming::default(),
        }
    }
}

impl SimBuilder {
    /// A builder with the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// A request quota: a token bucket refilled at `rate` requests per second,
    /// holding at most `burst`. Fields: `rate`, `burst`.
    pub fn requests(mut self, rate: f64, burst: u64) -> Self {
        self.requests = Some((rate, burst));
        self
    }

    /// Adds a token quota; at most one per [`QuotaKind`]. Fields:
    /// `token_rate`, `token_burst`, `token_kind`.
    pub fn token_quota(mut self, quota: TokenQuota) -> Self {
        self.token_quotas.push(quota);
        self
    }

    /// Shorthand for a [`TokenQuota::tokens`] quota.
    pub fn tokens(self, rate: f64, burst: u64, cost: TokenCost) -> Self {
        self.token_quota(TokenQuota::tokens(rate, burst, cost))
    }

    /// Shorthand for a [`TokenQuota::input_tokens`] quota (body bytes / 4).
    pub fn input_tokens(self, rate: f64, burst: u64) -> Self {
        self.token_quota(TokenQuota::input_tokens(rate, burst))
    }

    /// Which rate-limit headers every response carries.
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// Also send `retry-after-ms` (milliseconds, rounded up) wherever
    /// `retry-after` is sent.
    pub fn retry_after_ms(mut self, enabled: bool) -> Self {
        self.retry_after_ms = enabled;
        self
    }

    /// Fault injection fractions. Field: `faults.*`.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// The base latency of an answered request. Field: `latency`.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// How many requests the sim serves in flight at base latency; above it
    /// latency grows as `base × in_flight / capacity` (Little's law). Field:
    /// `capacity`.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Answer `503 overloaded_error` at once to a request that would make more
    /// than `limit` requests in flight. Field: `reject_above`.
    pub fn reject_above(mut self, limit: usize) -> Self {
        self.reject_above = Some(limit);
        self
    }

    /// The seed of the fault-injection random number generator.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The largest request body read; a larger one is answered
    /// `413 request_too_large`. Field: `max_body_bytes`.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Answers the first attempt of every request that carries an
    /// `x-request-id` with `status`, the dialect's error body and `headers`
    /// (raw values, sent as given: `Retry-After: -5`, two conflicting
    /// values, nothing at all; no wait of the sim's own), before any quota
    /// or fault is consulted; later attempts of the
    /// same id are answered as usual. A server that refuses every request
    /// once, with or without a usable wait.
    pub fn first_attempt<'a>(
        mut self,
        status: u16,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let status = http::StatusCode::from_u16(status).map_err(|_| {
            ConfigError::new("first_attempt", format!("`{status}` is no HTTP status"))
        })?;
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            let name = http::HeaderName::try_from(name).map_err(|_| {
                ConfigError::new("first_attempt", format!("`{name}` is no header name"))
            })?;
            let value = http::HeaderValue::try_from(value).map_err(|_| {
                ConfigError::new("first_attempt", format!("`{value}` is no header value"))
            })?;
            map.append(name, value);
        }
        self.first_attempt = Some(FirstAttempt {
            status,
            headers: map,
        });
        Ok(self)
    }

    /// How streamed answers (Server-Sent Events) go: see [`Streaming`].
    /// Without it, requests with `"stream": true` still get a clean stream
    /// of three deltas.
    pub fn streaming(mut self, streaming: Streaming) -> Self {
        self.streaming = streaming;
        self
    }

    /// Validates the configuration and builds the sim.
    pub fn build(self) -> Result<Sim, ConfigError> {
        let requests = self
            .requests
            .map(|(rate, burst)| Rate::validate("rate", "burst", rate, burst))
            .transpose()?;
        let mut tokens: Vec<(QuotaKind, Rate, TokenCost)> = Vec::new();
        for q in self.token_quotas {
            if q.kind == QuotaKind::Requests {
                return Err(ConfigError::new(
                    "token_kind",
                    "a token quota cannot count requests; use `requests` for that",
                ));
            }
            if tokens.iter().any(|(k, _, _)| *k == q.kind) {
                return Err(ConfigError::new(
                    "token_kind",
                    format!("only one `{}` quota may be configured", q.kind),
                ));
            }
            let rate = Rate::validate("token_rate", "token_burst", q.rate, q.burst)?;
            tokens.push((q.kind, rate, q.cost));
        }
        self.faults.validate()?;
        self.streaming.validate()?;
        validate_latency(self.latency)?;
        if let Some(c) = self.capacity {
            validate_capacity(c)?;
        }
        if let Some(r) = self.reject_above {
            validate_reject_above(r)?;
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::new("max_body_bytes", "must be at least 1"));
        }
        let model = Model::new(crate::model::Settings {
            requests,
            tokens,
            dialect: self.dialect,
            retry_after_ms: self.retry_after_ms,
            faults: self.faults,
            latency: self.latency,
            capacity: self.capacity,
            first_attempt: self.first_attempt,
            reject_above: self.reject_above,
            seed: self.seed,
            max_body_bytes: self.max_body_bytes,
            streaming: self.streaming,
        });
        Ok(Sim {
            model: Arc::new(model),
        })
    }
}

pub(crate) fn validate_latency(latency: Duration) -> Result<(), ConfigError> {
    if latency > MAX_WAIT {
        return Err(ConfigError::new("latency", "must be at most a year"));
    }
    Ok(())
}

pub(crate) fn validate_capacity(capacity: usize) -> Result<(), ConfigError> {
    if capacity == 0 {
        return Err(ConfigError::new("capacity", "must be at least 1"));
    }
    Ok(())
}

pub(crate) fn validate_reject_above(limit: usize) -> Result<(), ConfigError> {
    if limit == 0 {
        return Err(ConfigError::new("reject_above", "must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_names_round_trip() {
        for d in Dialect::ALL {
            assert_eq!(d.as_str().parse::<Dialect>(), Ok(d));
            assert_eq!(d.to_string(), d.as_str());
        }
        assert_eq!("OpenAI".parse::<Dialect>(), Ok(Dialect::OpenAi));
        assert!("stripe".parse::<Dialect>().is_err());
    }

    #[test]
    fn refused_values_name_their_field() {
        let cases: Vec<(SimBuilder, &str)> = vec![
            (SimBuilder::new().requests(0.0, 1), "rate"),
            (SimBuilder::new().requests(f64::NAN, 1), "rate"),
            (SimBuilder::new().requests(f64::INFINITY, 1), "rate"),
            (SimBuilder::new().requests(-1.0, 1), "rate"),
            (SimBuilder::new().requests(1.0, 0), "burst"),
            (SimBuilder::new().requests(1.0, u64::MAX), "burst"),
            (
                SimBuilder::new().tokens(0.0, 10, TokenCost::BodyBytes),
                "token_rate",
            ),
            (
                SimBuilder::new().tokens(1.0, 0, TokenCost::BodyBytes),
                "token_burst",
            ),
            (
                SimBuilder::new()
                    .tokens(1.0, 10, TokenCost::BodyBytes)
                    .tokens(1.0, 10, TokenCost::BodyBytes),
                "token_kind",
            ),
            (
                SimBuilder::new().token_quota(TokenQuota::new(
                    QuotaKind::Requests,
                    1.0,
                    1,
                    TokenCost::BodyBytes,
                )),
                "token_kind",
            ),
            (
                SimBuilder::new().faults(Faults::none().reset(1.5)),
                "faults.reset",
            ),
            (
                SimBuilder::new().faults(Faults::none().slow(-0.1, Duration::ZERO)),
                "faults.slow",
            ),
            (
                SimBuilder::new().faults(Faults::none().overloaded(f64::NAN)),
                "faults.overloaded",
            ),
            (
                SimBuilder::new().faults(Faults::none().internal_error(0.6).unavailable(0.6)),
                "faults",
            ),
            (SimBuilder::new().capacity(0), "capacity"),
            (SimBuilder::new().reject_above(0), "reject_above"),
            (SimBuilder::new().max_body_bytes(0), "max_body_bytes"),
            (
                SimBuilder::new().latency(Duration::from_secs(u64::MAX)),
                "latency",
            ),
        ];
        for (builder, field) in cases {
            let err = builder.build().expect_err(field);
            assert_eq!(err.field(), field, "{err}");
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn quota_kinds_map_to_header_resources() {
        use evenkeel_headers::Resource;
        assert_eq!(Resource::from(QuotaKind::Requests), Resource::Requests);
        for kind in [
            QuotaKind::Tokens,
            QuotaKind::InputTokens,
            QuotaKind::OutputTokens,
        ] {
            assert_eq!(Resource::from(kind).as_str(), kind.as_str());
        }
    }

    #[test]
    fn exclusive_faults_may_add_up_to_one() {
        let faults = Faults::none()
            .reset(0.2)
            .internal_error(0.2)
            .unavailable(0.2)
            .overloaded(0.2)
            .insufficient_quota(0.2)
            .slow(1.0, Duration::from_secs(1));
        assert!(SimBuilder::new().faults(faults).build().is_ok());
    }
}
