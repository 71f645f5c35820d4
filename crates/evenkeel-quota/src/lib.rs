//! Client-side quota pacing for tower: stop 429s before they happen, from
//! the server's own rate-limit headers, across requests *and* tokens, with
//! one shared cooldown per key.
//!
//! # Overview
//!
//! Providers tell the client where it stands on every response (Anthropic:
//! requests, tokens, input and output tokens, each with limit, remaining
//! and reset; OpenAI: requests and tokens; GitHub, the IETF `RateLimit`
//! fields…). [`QuotaLayer`] reads all of them and paces the requests that
//! follow, instead of sending blindly and reacting to each 429 one request
//! at a time:
//!
//! - **Learns every quota from every response** through
//!   [`evenkeel_headers::rate_limits`], whatever the dialect, per resource
//!   (requests, tokens, input tokens, output tokens) and per policy, and
//!   estimates each quota's refill rate: from the reset field (a token
//!   bucket refills `limit - remaining` by its reset) and from what it
//!   observes between responses.
//! - **Paces instead of bursting then stalling.** A request is sent when
//!   its key has room in every known dimension, counting what is already in
//!   flight since the last reading; otherwise it waits, in order, until room
//!   is expected. A fixed window's remaining quota is spread until its
//!   reset. A request that would have to wait longer than a cap or past its
//!   [`Deadline`](evenkeel_core::ext::Deadline) fails at once with
//!   [`QuotaExhausted`](evenkeel_core::error::QuotaExhausted), naming the
//!   quota and when it has room.
//! - **Costs per request**: one request, plus tokens from an estimator
//!   (see [`cost`]), reserved before sending and replaced by the server's
//!   numbers when the response arrives.
//! - **One shared cooldown**: a 429 (or a 503) with a server wait pauses
//!   every request of its key until then, once; the first request after it
//!   goes alone as a probe, and the queue drains when its answer is in. The
//!   very first request to a key is such a probe too.
//! - **Declared quotas** ([`StaticQuota`]) from a provider's tier table
//!   apply from the first request; learned values tighten them.
//! - **Bounded trust**: a missing, malformed or absurd header never stops
//!   traffic for long (resets and cooldowns are capped, readings expire,
//!   a reading never counts the requests still in flight), and `remaining`
//!   is an upper bound, not a promise: a 429 still cools the key down.
//! - **Keys** ([`key`]): by authority by default, or an API-key header, a
//!   model from the path, anything from the request. Keys share nothing.
//! - **A store seam** ([`store`]): the numbers sit behind [`QuotaStore`],
//!   in memory by default, or in Redis (feature `redis`), where one atomic
//!   round trip checks and reserves and a fleet shares one provider quota.
//! - **Balancers** ask [`QuotaHandle`] (it implements
//!   [`Cooldown`](evenkeel_core::cooldown::Cooldown), per key through
//!   [`QuotaHandle::for_key`]) whether an endpoint has room, to route
//!   around one that has none.
//! - **Observability**: per key and resource, the limit, the remaining
//!   estimate, the reset, the learned rate, requests queued and time spent
//!   waiting ([`QuotaHandle::snapshot`]);
//!   [`Event::QuotaWait`](evenkeel_core::event::Event::QuotaWait) and
//!   [`Event::QuotaRejected`](evenkeel_core::event::Event::QuotaRejected)
//!   to a listener; `tracing` events behind a feature.
//!
//! # Example: an Anthropic client
//!
//! Input tokens estimated from the JSON body, output tokens from its
//! `max_tokens`, the tier's limits declared so they hold from the first
//! request. A retry layer, when there is one, goes between the estimator and
//! the quota layer (see [Layer ordering](#layer-ordering)).
//!
//! ```no_run
//! use std::time::Duration;
//! use bytes::Bytes;
//! use evenkeel_headers::Resource;
//! use evenkeel_quota::cost::{EstimateLayer, Llm};
//! use evenkeel_quota::{QuotaLayer, StaticQuota};
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # async fn run() -> Result<(), evenkeel_core::BoxError> {
//! let quota = QuotaLayer::builder()
//!     // A tier's limits: they apply before any header is seen.
//!     .declare(StaticQuota::per_minute(Resource::Requests, 50))
//!     .declare(StaticQuota::per_minute(Resource::InputTokens, 30_000))
//!     .declare(StaticQuota::per_minute(Resource::OutputTokens, 8_000))
//!     .max_wait(Duration::from_secs(30))
//!     .build()?;
//! let handle = quota.handle();
//!
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let mut client = ServiceBuilder::new()
//!     // Estimate where the body is still whole (outside any retry layer).
//!     .layer(EstimateLayer::new(Llm::new().default_max_tokens(1024)))
//!     .layer(quota)
//!     .service(client);
//!
//! let request = http::Request::post("http://api.anthropic.com/v1/messages")
//!     .header("content-type", "application/json")
//!     .header("x-api-key", "sk-ant-...")
//!     .header("anthropic-version", "2023-06-01")
//!     .body(Full::new(Bytes::from_static(
//!         br#"{"model":"claude-sonnet-4-5","max_tokens":512,"messages":[{"role":"user","content":"Hello"}]}"#,
//!     )))?;
//! let response = client.ready().await?.call(request).await?;
//! println!("{}", response.status());
//!
//! for key in handle.snapshot() {
//!     for r in &key.resources {
//!         println!("{} {}: {} left of {:?}", key.key, r.resource, r.remaining, r.limit);
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! - `tracing`: `tracing` events for waits and rejections (`debug`),
//!   cooldowns (`debug`), and each rate-limit reading (`trace`).
//! - `redis`: [`store::RedisStore`], one quota shared by every process on
//!   a key through Redis (redis-rs, tokio, a reconnecting
//!   `ConnectionManager`), falling back to local pacing when Redis does
//!   not answer.
//! - `redis-cluster`: the same on a Redis Cluster (every Redis key of one
//!   quota key shares the hash tag `{key}`).
//!
//! # Layer ordering
//!
//! Inside the retry layer (`ServiceBuilder::new().layer(retry).layer(quota)`):
//! every attempt, first or retry, is paced, and a retry that the server
//! asked to wait for finds the key's cooldown already in place. The retry
//! layer's deadline reaches the quota layer in each attempt's
//! [`AttemptContext`](evenkeel_core::ext::AttemptContext), and the quota
//! layer fails at once rather than hold a request past it. Inside a
//! failover layer, one quota layer per endpoint, its [`QuotaHandle`] given
//! to the balancer as the endpoint's
//! [`Cooldown`](evenkeel_core::cooldown::Cooldown). Outside a concurrency
//! limiter: the quota layer decides *when* to send, the limiter *how many*
//! at once; the quota layer readies the inner service only once a request
//! is admitted, so it never holds a concurrency permit while it waits.
//!
//! The layer's `poll_ready` is always ready. Waiting for quota, and then
//! for the inner service's readiness, happens in the response future;
//! dropping the future gives back its place in the queue or its
//! reservation.
//!
//! # How it decides
//!
//! Each metered dimension of a key is a bucket. A response to request
//! number `s` with `remaining` R sets the bucket to R minus the cost of
//! every request admitted after `s` (the server had not seen those). The
//! bucket refills between readings at the learned rate and is full again at
//! the reported reset, minus what was sent since the reading.
//!
//! The refill rate is always a lower bound of the server's, so a wrong
//! guess makes the client slower, never faster than the server. It is the
//! better of two recent bounds: from the reset field where the dialect
//! defines it as "time until full" (`Replenish::Gradual`: the deficit
//! `limit - remaining` is back by the reset, so the rate is at least
//! `(limit - remaining - 1) / (reset - send time)`, the `- 1` for
//! `remaining` being rounded down), and from observation between readings
//! (the server refilled at least what `remaining` gained plus what was sent
//! in between, less one), which is what makes coarse resets such as
//! Anthropic's whole seconds good enough. A fixed window
//! (`Replenish::Window`, or a dialect that does not say) releases its
//! `remaining` evenly until its reset (`remaining / reset_after`), unless it
//! is seen to refill sooner.
//!
//! Requests sent at the same moment may overtake each other on the way to
//! the server: a reading discounts those sent together with it that are not
//! answered yet, and can only lower what another reading from the same
//! burst said. When the server shows a wider reorder, the window of
//! requests treated as sent together widens to cover it.
//!
//! A request fails early only on certain grounds: a cooldown, a declared
//! quota (with the queue ahead of it), or a learned quota's reset for the
//! request itself. A learned rate is a lower bound, not an expectation, so
//! a request whose wait is merely uncertain waits, and fails when the wait
//! actually runs past its deadline or the cap.
//!
//! The [`store`] module documents how a shared store maps onto this.

pub mod cost;
mod future;
mod gate;
mod handle;
pub mod key;
mod layer;
mod model;
mod service;
pub mod store;

pub use future::ResponseFuture;
pub use handle::{KeyCooldown, KeySnapshot, QuotaHandle};
pub use layer::{IntoStore, QuotaBuilder, QuotaLayer};
pub use model::StaticQuota;
pub use service::Quota;
pub use store::{MemoryStore, QuotaStore};

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
