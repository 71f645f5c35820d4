//! A rate-limit-aware retry layer for tower: it never retries before the
//! server's wait, never duplicates what may have been processed, and cannot
//! start a retry storm.
//!
//! # Overview
//!
//! [`RetryLayer`] wraps any `tower::Service<http::Request<B>>` (a hyper-util
//! client, a tonic `Channel`, an axum router) and resends requests whose
//! outcome ([`evenkeel_core::Outcome`]) says a new attempt can succeed:
//!
//! - **Server-directed waits first.** The wait before a retry is
//!   `max(backoff, server wait)`, the server wait read from `retry-after-ms`,
//!   `Retry-After` (seconds or HTTP-date), `grpc-retry-pushback-ms` and
//!   their relatives, measured on tokio's clock from the moment the response
//!   arrived. Jitter on a server wait only ever adds to it.
//! - **A cap on honoured waits** (120 s by default): a longer wait, or one
//!   that would overrun the total deadline, is not slept through; the
//!   caller gets the response at once, `Retry-After` and all.
//!   `x-should-retry: false` and a negative `grpc-retry-pushback-ms` stop
//!   retrying.
//! - **Backoff** when the server gives no wait: the Anthropic/OpenAI SDK
//!   formula by default, or full, equal or decorrelated jitter
//!   ([`Backoff`]), with a separate policy for throttling.
//! - **Attempts and deadline**: 3 attempts by default, an optional timeout
//!   per attempt, an optional total deadline over all attempts and waits.
//! - **A retry budget** ([`RetryBudget`]) shared by all clones of the layer:
//!   retries are at most 20 % of requests plus 10 per second, so a failing
//!   upstream never sees more than 1.2× the load.
//! - **Idempotency safety** ([`DefaultPolicy`]): "never sent" failures are
//!   retried for every method; "maybe processed" failures and 5xx only for
//!   idempotent methods or requests with an `Idempotency-Key`; 429s, and
//!   503/529 with a server wait, for every method. Replace it with your own
//!   [`Policy`].
//! - **Body replay** without `Clone`: the body is kept as it is sent, up to
//!   a cap (1 MiB); a larger body is sent once and not retried. Trailers
//!   replay too. Complete bodies (`Full<Bytes>`, empty) cost nothing.
//!   Responses that are retried are drained (bounded) while waiting, so their
//!   connections are reused.
//! - **Any request type**: [`generic::GenericRetryLayer`] applies the same
//!   scheduling (server waits, backoff, cap, deadline, budget, events) to
//!   requests of any type, with a [`generic::ResendPolicy`] that says how to
//!   copy them.
//! - **Events**: every decision goes to a listener
//!   ([`RetryBuilder::on_event`]) and, with the `tracing` feature, to
//!   `tracing`; responses carry a [`RetryInfo`] with attempts and time
//!   waited.
//!
//! # Example: a hyper-util client
//!
//! ```no_run
//! use std::time::Duration;
//! use bytes::Bytes;
//! use evenkeel_retry::{RetryInfo, RetryLayer};
//! use http_body_util::{BodyExt, Full};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # async fn run() -> Result<(), evenkeel_core::BoxError> {
//! let client = Client::builder(TokioExecutor::new()).build_http();
//! let mut client = ServiceBuilder::new()
//!     .layer(
//!         RetryLayer::builder()
//!             .max_attempts(3)
//!             .attempt_timeout(Duration::from_secs(10))
//!             .deadline(Duration::from_secs(30))
//!             .build()?,
//!     )
//!     .service(client);
//!
//! let request = http::Request::post("http://127.0.0.1:8080/v1/messages")
//!     .header("content-type", "application/json")
//!     .body(Full::new(Bytes::from_static(br#"{"max_tokens":64}"#)))?;
//! let response = client.ready().await?.call(request).await?;
//! let info = RetryInfo::of(&response);
//! println!("{} after {} attempts", response.status(), info.attempts);
//! let body = response.into_body().collect().await?.to_bytes();
//! # let _ = body;
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! - `tracing`: emit a `tracing` event (at `DEBUG`) for every retry and
//!   every give-up.
//!
//! # Layer ordering
//!
//! Put the retry layer *outside* everything that is per attempt (an attempt
//! timeout, per-attempt metrics, failover, a per-endpoint quota or limiter)
//! and *inside* what is per call (call metrics). The total deadline lives
//! here; it is passed down as [`evenkeel_core::ext::Deadline`] so a quota
//! layer below can fail fast instead of holding a request past it.

mod backoff;
pub mod body;
mod budget;
mod config;
pub mod future;
pub mod generic;
mod info;
mod layer;
mod policy;
mod service;

pub use backoff::{Backoff, JitterMode};
pub use budget::RetryBudget;
pub use evenkeel_core::event::{Event, GiveUp};
pub use info::RetryInfo;
pub use layer::{
    DEFAULT_BODY_IDLE_TIMEOUT, DEFAULT_DRAIN_LIMIT, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_SERVER_WAIT,
    DEFAULT_PEEK_LIMIT, RetryBuilder, RetryLayer,
};
pub use policy::{DefaultPolicy, Policy, PolicyFn, policy_fn};
pub use service::Retry;

/// The errors this layer returns or passes through.
pub mod error {
    pub use evenkeel_core::BoxError;
    pub use evenkeel_core::error::{ConfigError, DeadlineExceeded, TimedOut};
}
