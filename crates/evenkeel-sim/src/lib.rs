//! A simulated rate-limited, sometimes failing LLM API, in-process and over
//! loopback, for testing and demonstrating API clients.
//!
//! # Overview
//!
//! [`Sim`] behaves like an Anthropic-style Messages API (or OpenAI, IETF or
//! GitHub flavoured) that pushes back: it enforces token-bucket quotas and
//! answers `429` with `Retry-After` when they run out, sends rate-limit
//! headers in the configured [`Dialect`] on every response, injects faults
//! (500, 503, 529 `overloaded_error`, hopeless 429 `insufficient_quota`,
//! connection resets, slow answers) from a seeded RNG, slows down when more
//! requests are in flight than its capacity, can be killed and revived, and
//! counts everything it sees in [`Stats`].
//!
//! One model, two forms:
//!
//! - **In-process**: `Sim` is a [`tower::Service`](tower_service::Service)
//!   over `http::Request<B>`. Its clock is tokio's (through
//!   [`evenkeel_core::clock`]), so under `tokio::time::pause` minutes of
//!   traffic run in milliseconds, and the dates it writes into headers agree
//!   with a client in the same process. Transport failures are [`SimError`]s
//!   whose source is an [`std::io::Error`]: `ConnectionReset` for a reset,
//!   `ConnectionRefused` while killed.
//! - **HTTP**: [`Sim::serve`] runs the same model behind an HTTP/1.1 and
//!   HTTP/2 (prior knowledge) server on a loopback port; see [`SimServer`].
//!
//! Given a seed, the in-process form is deterministic: every request whose
//! body was read draws exactly two numbers from the RNG, in order (which
//! fault, then whether it is slow), whatever its fate, so a quota rejection
//! does not shift the faults of the requests after it. Requests are decided
//! in the order they are first polled, which a current-thread runtime (the
//! `#[tokio::test]` default) keeps deterministic.
//!
//! # Example: in-process, under paused time
//!
//! ```
//! use std::time::Duration;
//! use evenkeel_sim::{Dialect, Sim};
//! use http::{Request, StatusCode};
//! use http_body_util::Full;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // 2 requests per second, at most 2 at once.
//! let sim = Sim::builder().requests(2.0, 2).dialect(Dialect::Anthropic).build()?;
//! let call = |id: &str| {
//!     let req = Request::post("/v1/messages")
//!         .header("x-request-id", id)
//!         .body(Full::new(bytes::Bytes::from_static(b"{}")))
//!         .unwrap();
//!     sim.clone().oneshot(req)
//! };
//!
//! assert_eq!(call("a").await?.status(), StatusCode::OK);
//! assert_eq!(call("b").await?.status(), StatusCode::OK);
//! let limited = call("c").await?;
//! assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(limited.headers()["retry-after"], "1");
//! assert!(limited.headers().contains_key("anthropic-ratelimit-requests-reset"));
//!
//! // Paused time: this "second" passes instantly.
//! tokio::time::sleep(Duration::from_secs(1)).await;
//! assert_eq!(call("c").await?.status(), StatusCode::OK);
//!
//! let stats = sim.stats();
//! assert_eq!(stats.attempts(), 4);
//! assert_eq!(stats.attempts_for("c"), 2);
//! assert_eq!(stats.status_count(StatusCode::TOO_MANY_REQUESTS), 1);
//! assert!(stats.duplicates().is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! # Example: over HTTP
//!
//! ```
//! use evenkeel_sim::{Faults, Sim};
//! use http::StatusCode;
//! use http_body_util::{BodyExt, Full};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Sim::builder()
//!     .requests(100.0, 100)
//!     .faults(Faults::none().overloaded(0.1))
//!     .build()?
//!     .serve("127.0.0.1:0".parse()?)
//!     .await?;
//!
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
//! let uri: http::Uri = format!("{}/v1/messages", server.url()).parse()?;
//! let response = client.get(uri).await?;
//! assert!(matches!(response.status().as_u16(), 200 | 529));
//! let body = response.into_body().collect().await?.to_bytes();
//! assert!(body.starts_with(b"{"));
//!
//! // Kill it: connections are refused until it comes back on the same port.
//! let handle = server.handle();
//! handle.kill().await;
//! assert!(tokio::net::TcpStream::connect(server.addr()).await.is_err());
//! handle.revive().await?;
//! assert!(tokio::net::TcpStream::connect(server.addr()).await.is_ok());
//!
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # The knobs
//!
//! Set on [`SimBuilder`] (validated by [`SimBuilder::build`]) and, where
//! marked, changed at run time through [`SimHandle`]:
//!
//! | knob | builder | at run time |
//! |---|---|---|
//! | request quota: rate per second, burst | [`requests`](SimBuilder::requests) | |
//! | token quotas, each charged by a header, the body size, body bytes / 4, or a fixed cost | [`tokens`](SimBuilder::tokens), [`input_tokens`](SimBuilder::input_tokens), [`token_quota`](SimBuilder::token_quota) | |
//! | rate-limit header dialect | [`dialect`](SimBuilder::dialect) | |
//! | `retry-after-ms` next to `retry-after` | [`retry_after_ms`](SimBuilder::retry_after_ms) | |
//! | fault fractions | [`faults`](SimBuilder::faults) | [`set_faults`](SimHandle::set_faults) |
//! | base latency | [`latency`](SimBuilder::latency) | [`set_latency`](SimHandle::set_latency) |
//! | capacity (latency grows above it) | [`capacity`](SimBuilder::capacity) | [`set_capacity`](SimHandle::set_capacity) |
//! | hard in-flight limit answered 503 | [`reject_above`](SimBuilder::reject_above) | [`set_reject_above`](SimHandle::set_reject_above) |
//! | RNG seed | [`seed`](SimBuilder::seed) | |
//! | request body size cap (413 above) | [`max_body_bytes`](SimBuilder::max_body_bytes) | |
//! | kill switch | | [`kill`](SimHandle::kill), [`revive`](SimHandle::revive) |
//! | every answer forced to a status | | [`force`](SimHandle::force), [`clear_force`](SimHandle::clear_force) |
//!
//! # Feature flags
//!
//! - `cli` (default): the `evenkeel-sim` binary and its `--demo` load driver
//!   (pulls in `clap` and hyper-util's client). A library user can turn it
//!   off with `default-features = false`.
//!
//! # How a request is answered
//!
//! In order, the first that applies:
//!
//! 1. killed: in-process, [`SimErrorKind::Refused`]; over HTTP the port is
//!    closed;
//! 2. a [forced](SimHandle::force) status;
//! 3. more than `reject_above` in flight: `503 overloaded_error`;
//! 4. body over `max_body_bytes`, or a cost above a quota's burst: `413`;
//!    malformed cost header: `400`;
//! 5. a quota short: `429 rate_limit_error` with `Retry-After` (whole
//!    seconds, rounded up, at least 1) for the longest wait; nothing is
//!    charged;
//! 6. otherwise every quota is charged, and the fault draw picks: reset,
//!    500, 503, 529 (with `x-should-retry: true`), `429 insufficient_quota`
//!    (no `Retry-After`), or `200` with a Messages-like body echoing the
//!    `x-request-id`.
//!
//! Answers 2–5 and `insufficient_quota` are immediate. The others (including
//! resets) come after the latency: `base × max(1, in_flight / capacity)`,
//! plus the slow-answer delay when the slow draw hits. A kill aborts requests
//! still waiting.
//!
//! Rate-limit headers describe the quotas right after the decision: the
//! limit is the bucket's burst, remaining its whole tokens, and the reset the
//! time until it is full again (Anthropic: that instant as RFC 3339 rounded up
//! to the second; OpenAI: a Go duration rounded up to the millisecond; IETF:
//! whole seconds rounded up; GitHub: Unix seconds rounded up).

mod bucket;
#[cfg(feature = "cli")]
pub mod cli;
mod config;
pub mod error;
mod fmt;
pub mod future;
mod handle;
mod model;
mod response;
mod server;
mod service;
mod stats;
mod stream;

pub use config::{
    ConfigError, DEFAULT_TOKEN_HEADER, Dialect, Faults, FirstAttempt, QuotaKind, SimBuilder,
    TokenCost, TokenQuota, UnknownDialect,
};
pub use error::{SimError, SimErrorKind};
pub use handle::{QuotaState, SimHandle};
pub use server::SimServer;
pub use service::Sim;
pub use stats::Stats;
pub use stream::{StreamFault, Streaming};
