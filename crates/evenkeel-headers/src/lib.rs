//! What an HTTP server told the client about waiting: `Retry-After` in every
//! form, and the rate-limit headers of every dialect in use, read into one
//! shape.
//!
//! # Overview
//!
//! Three functions read a response's [`HeaderMap`](http::HeaderMap):
//!
//! - [`retry_after`] → [`Pushback`]: how long the server asked the client to
//!   wait, from `retry-after-ms`, `x-ms-retry-after-ms`, `x-amz-retry-after`,
//!   `Retry-After` or `grpc-retry-pushback-ms`. It never allocates.
//! - [`should_retry`] → `Option<bool>`: the server's explicit verdict
//!   (`x-should-retry`, `stripe-should-retry`).
//! - [`rate_limits`] → [`RateLimits`]: every [`Quota`] the response reported,
//!   whatever the dialect, with resets turned into delays from `now`.
//!
//! The [`format`](mod@format) module writes the same formats, for servers and
//! simulators.
//!
//! Nothing here panics on what a server sends: arbitrary bytes, non-UTF-8,
//! repeated headers, numbers past `u64::MAX`, `1e308`, `NaN`, negative
//! values. The worst that happens to a bad value is that it is ignored.
//! Delays too large for a [`Duration`](std::time::Duration) saturate at
//! `Duration::MAX`.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use evenkeel_headers::{rate_limits, retry_after, Pushback, Replenish, Resource};
//!
//! // A 429 from Anthropic.
//! let mut headers = http::HeaderMap::new();
//! headers.insert("retry-after", "21".parse()?);
//! headers.insert("anthropic-ratelimit-requests-limit", "4000".parse()?);
//! headers.insert("anthropic-ratelimit-requests-remaining", "0".parse()?);
//! headers.insert("anthropic-ratelimit-requests-reset", "2024-05-01T12:00:21Z".parse()?);
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800); // 12:00:00Z
//!
//! assert_eq!(retry_after(&headers, now), Some(Pushback::After(Duration::from_secs(21))));
//!
//! let limits = rate_limits(&headers, now);
//! let requests = limits.get(&Resource::Requests).unwrap();
//! assert_eq!((requests.limit, requests.remaining), (Some(4000), Some(0)));
//! assert_eq!(requests.reset_after, Some(Duration::from_secs(21)));
//! assert_eq!(requests.replenish, Replenish::Gradual);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! None: the crate depends only on `http` and `httpdate`, and all of it is
//! always built.
//!
//! # `retry_after` precedence
//!
//! The first header, in this order, with a value that parses wins; within
//! one header the first value that parses wins, and a malformed value falls
//! through to the next:
//!
//! | header | value |
//! | --- | --- |
//! | `retry-after-ms` | milliseconds, fractions allowed (`1500`, `12.5`), as the Anthropic and OpenAI SDKs read it |
//! | `x-ms-retry-after-ms` | the same (Azure) |
//! | `x-amz-retry-after` | the same (AWS) |
//! | `retry-after` | delay-seconds (`120`, and `1.5` as real servers send), or an HTTP-date: IMF-fixdate, RFC 850 (two-digit years read by RFC 9110's 50-year rule), or asctime. A date in the past is a zero delay |
//! | `grpc-retry-pushback-ms` | a non-negative integer is the delay; a negative or unreadable value is [`Pushback::Stop`] (gRFC A6) |
//!
//! # Rate-limit dialects
//!
//! | dialect | headers | reset | replenish |
//! | --- | --- | --- | --- |
//! | [`Ietf`](Dialect::Ietf) | `RateLimit-Policy: "burst";q=100;w=60`, `RateLimit: "burst";r=50;t=30` (draft-ietf-httpapi-ratelimit-headers 08+; `qu`, `pk`; a `RateLimit` item may carry `r`, `t` or both) | `t`, seconds | window |
//! | [`IetfDraft`](Dialect::IetfDraft) | `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (drafts 00–06); draft 07's `RateLimit: limit=…, remaining=…, reset=…` | seconds, epoch rule | window |
//! | [`XRateLimit`](Dialect::XRateLimit) | `X-RateLimit-Limit/-Remaining/-Reset`, GitHub's `-Used` and `-Resource`, X's `x-rate-limit-*`, Kong's `X-RateLimit-Limit-Minute` | seconds or a date, epoch rule | window |
//! | [`Discord`](Dialect::Discord) | `X-RateLimit-*` with `-Reset-After`, `-Bucket`, `-Scope`, `-Global` | `-Reset-After` (float seconds), else `-Reset` (float Unix seconds) | window |
//! | [`OpenAi`](Dialect::OpenAi) | `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` | Go duration (`6m0s`, `12ms`, `1m30.5s`) | gradual |
//! | [`Anthropic`](Dialect::Anthropic) | `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`, `anthropic-priority-*` | RFC 3339 | gradual |
//! | [`Shopify`](Dialect::Shopify) | `X-Shopify-Shop-Api-Call-Limit: 32/40` (used/limit) | none | gradual |
//! | [`Linear`](Dialect::Linear) | `X-RateLimit-Requests-{Limit,Remaining,Reset}`, `X-RateLimit-Complexity-{Limit,Remaining,Reset}` ([`Resource::Complexity`]) | Unix milliseconds | gradual |
//!
//! Each dialect is shown with the values its API sends in the examples
//! below.
//!
//! ## The epoch rule
//!
//! `X-RateLimit-Reset` (and the earlier drafts' `RateLimit-Reset`) is a
//! delay for some servers and a Unix timestamp for others (GitHub, X). A
//! number `n` (fractions allowed) is read as:
//!
//! - `n < 1_000_000_000`: a delay of `n` seconds (up to 31.7 years);
//! - `1_000_000_000 ≤ n < 1_000_000_000_000`: Unix time in seconds (from
//!   2001-09-09 on);
//! - `n ≥ 1_000_000_000_000`: Unix time in milliseconds (from 2001-09-09 on;
//!   as seconds it would be the year 33658).
//!
//! A value that is not a number may be an HTTP-date or an RFC 3339
//! timestamp. A reset in the past is `Duration::ZERO`.
//!
//! ## Telling overlapping dialects apart
//!
//! - **Discord or generic?** Discord's `x-ratelimit-limit/-remaining/-reset`
//!   are the generic names. When any of `x-ratelimit-reset-after`,
//!   `x-ratelimit-bucket`, `x-ratelimit-scope` or `x-ratelimit-global` is
//!   present the response is Discord's, and the generic quota is not
//!   reported.
//! - **OpenAI or generic?** OpenAI's names carry a unit suffix
//!   (`x-ratelimit-limit-requests`, `-tokens`) and never collide with the
//!   generic `x-ratelimit-limit`; the window suffixes (`-second`, `-minute`,
//!   `-hour`, `-day`, `-month`, `-year`) are Kong's.
//! - **Linear or OpenAI?** Linear puts the resource before the field
//!   (`x-ratelimit-requests-limit`), OpenAI after it
//!   (`x-ratelimit-limit-requests`); neither is the generic family.
//! - **The same quota in several generic dialects.** Gateways often send the
//!   IETF fields and `X-RateLimit-*` for one quota. The generic families rank
//!   IETF structured > earlier IETF drafts > `x-ratelimit-*` > `x-rate-limit-*`;
//!   a lower one is dropped for a resource a higher one already reported.
//!   Vendor dialects are always reported.
//! - **Repeated headers.** The first valid value of each header wins
//!   (later ones are usually a proxy's stale copy). `RateLimit` and
//!   `RateLimit-Policy` are lists: every line is read, a malformed line is
//!   ignored as a whole, and the first item of each policy name wins.
//!
//! ## IETF structured fields
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use evenkeel_headers::{rate_limits, Dialect, Resource};
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("ratelimit-policy", r#""burst";q=100;w=60,"daily";q=1000;w=86400"#.parse()?);
//! headers.insert("ratelimit", r#""burst";r=50;t=30"#.parse()?);
//! let limits = rate_limits(&headers, SystemTime::now());
//!
//! let burst = limits.iter().find(|q| q.policy.as_deref() == Some("burst")).unwrap();
//! assert_eq!(burst.dialect, Dialect::Ietf);
//! assert_eq!((burst.limit, burst.remaining), (Some(100), Some(50)));
//! assert_eq!(burst.window, Some(Duration::from_secs(60)));
//! assert_eq!(burst.reset_after, Some(Duration::from_secs(30)));
//! // "daily" has a policy but no current state.
//! assert_eq!(limits.len(), 2);
//!
//! // An item may say when the quota resets without saying what is left.
//! let mut headers = http::HeaderMap::new();
//! headers.insert("ratelimit-policy", "quota;q=100;w=1".parse()?);
//! headers.insert("ratelimit", "quota;t=1".parse()?);
//! let limits = rate_limits(&headers, SystemTime::now());
//! let quota = limits.get(&Resource::Requests).unwrap();
//! assert_eq!((quota.limit, quota.remaining), (Some(100), None));
//! assert_eq!(quota.window, Some(Duration::from_secs(1)));
//! assert_eq!(quota.reset_after, Some(Duration::from_secs(1)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Earlier IETF drafts
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use evenkeel_headers::{rate_limits, Dialect, Resource};
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("ratelimit-limit", "100".parse()?);
//! headers.insert("ratelimit-remaining", "42".parse()?);
//! headers.insert("ratelimit-reset", "17".parse()?);
//! let q = rate_limits(&headers, SystemTime::now()).get(&Resource::Requests).cloned().unwrap();
//! assert_eq!(q.dialect, Dialect::IetfDraft);
//! assert_eq!((q.limit, q.remaining, q.reset_after), (Some(100), Some(42), Some(Duration::from_secs(17))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## X-RateLimit (GitHub)
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use evenkeel_headers::{rate_limits, Dialect, Resource};
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-ratelimit-limit", "5000".parse()?);
//! headers.insert("x-ratelimit-remaining", "4999".parse()?);
//! headers.insert("x-ratelimit-used", "1".parse()?);
//! headers.insert("x-ratelimit-reset", "1691591363".parse()?);
//! headers.insert("x-ratelimit-resource", "core".parse()?);
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_691_591_000);
//! let q = rate_limits(&headers, now).get(&Resource::Requests).cloned().unwrap();
//! assert_eq!(q.dialect, Dialect::XRateLimit);
//! assert_eq!(q.policy.as_deref(), Some("core"));
//! assert_eq!(q.used, Some(1));
//! assert_eq!(q.reset_after, Some(Duration::from_secs(363))); // the epoch rule
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Discord
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use evenkeel_headers::{rate_limits, Dialect, Resource};
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-ratelimit-limit", "5".parse()?);
//! headers.insert("x-ratelimit-remaining", "0".parse()?);
//! headers.insert("x-ratelimit-reset", "1470173023.123".parse()?);
//! headers.insert("x-ratelimit-reset-after", "64.57".parse()?);
//! headers.insert("x-ratelimit-bucket", "abcd1234".parse()?);
//! let limits = rate_limits(&headers, SystemTime::now());
//! assert_eq!(limits.len(), 1); // not also reported as generic X-RateLimit
//! let q = limits.get(&Resource::Requests).unwrap();
//! assert_eq!(q.dialect, Dialect::Discord);
//! assert_eq!(q.policy.as_deref(), Some("abcd1234"));
//! assert_eq!(q.reset_after, Some(Duration::from_millis(64_570)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## OpenAI
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use evenkeel_headers::{rate_limits, Dialect, Resource};
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-ratelimit-limit-requests", "60".parse()?);
//! headers.insert("x-ratelimit-limit-tokens", "150000".parse()?);
//! headers.insert("x-ratelimit-remaining-requests", "59".parse()?);
//! headers.insert("x-ratelimit-remaining-tokens", "149984".parse()?);
//! headers.insert("x-ratelimit-reset-requests", "1s".parse()?);
//! headers.insert("x-ratelimit-reset-tokens", "6m0s".parse()?);
//! let limits = rate_limits(&headers, SystemTime::now());
//! let tokens = limits.get(&Resource::Tokens).unwrap();
//! assert_eq!(tokens.dialect, Dialect::OpenAi);
//! assert_eq!((tokens.limit, tokens.remaining), (Some(150_000), Some(149_984)));
//! assert_eq!(tokens.reset_after, Some(Duration::from_secs(360)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Anthropic
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use evenkeel_headers::{rate_limits, Resource};
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("anthropic-ratelimit-input-tokens-limit", "400000".parse()?);
//! headers.insert("anthropic-ratelimit-input-tokens-remaining", "399000".parse()?);
//! headers.insert("anthropic-ratelimit-input-tokens-reset", "2024-05-01T12:00:00.5+00:00".parse()?);
//! headers.insert("anthropic-ratelimit-output-tokens-limit", "80000".parse()?);
//! headers.insert("anthropic-ratelimit-output-tokens-remaining", "80000".parse()?);
//! headers.insert("anthropic-ratelimit-output-tokens-reset", "2024-05-01T12:00:00Z".parse()?);
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800);
//! let limits = rate_limits(&headers, now);
//! let input = limits.get(&Resource::InputTokens).unwrap();
//! assert_eq!(input.reset_after, Some(Duration::from_millis(500)));
//! assert_eq!(limits.get(&Resource::OutputTokens).unwrap().remaining, Some(80_000));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Shopify
//!
//! ```
//! use std::time::SystemTime;
//! use evenkeel_headers::{rate_limits, Dialect, Resource};
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-shopify-shop-api-call-limit", "32/40".parse()?);
//! let q = rate_limits(&headers, SystemTime::now()).get(&Resource::Requests).cloned().unwrap();
//! assert_eq!(q.dialect, Dialect::Shopify);
//! assert_eq!((q.used, q.limit, q.remaining), (Some(32), Some(40), Some(8)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Linear
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use evenkeel_headers::{rate_limits, Dialect, Replenish, Resource};
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-ratelimit-requests-limit", "5000".parse()?);
//! headers.insert("x-ratelimit-requests-remaining", "4999".parse()?);
//! headers.insert("x-ratelimit-requests-reset", "1714568400000".parse()?);
//! headers.insert("x-ratelimit-complexity-limit", "250000".parse()?);
//! headers.insert("x-ratelimit-complexity-remaining", "249990".parse()?);
//! headers.insert("x-ratelimit-complexity-reset", "1714564830500".parse()?);
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800);
//! let limits = rate_limits(&headers, now);
//! let requests = limits.get(&Resource::Requests).unwrap();
//! assert_eq!(requests.dialect, Dialect::Linear);
//! assert_eq!(requests.reset_after, Some(Duration::from_secs(3600)));
//! let points = limits.get(&Resource::Complexity).unwrap();
//! assert_eq!((points.limit, points.remaining), (Some(250_000), Some(249_990)));
//! assert_eq!(points.reset_after, Some(Duration::from_millis(30_500)));
//! assert_eq!(points.replenish, Replenish::Gradual);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod format;
mod keep_alive;
mod num;
mod quota;
mod ratelimit;
mod retry;
mod sf;
mod time;

pub use keep_alive::keep_alive_timeout;
pub use quota::{Dialect, Quota, RateLimits, Replenish, Resource};
pub use ratelimit::rate_limits;
pub use retry::{Pushback, PushbackSource, retry_after, retry_after_with_source, should_retry};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
