//! HTTP client metrics for tower on the [`metrics`] facade: OpenTelemetry
//! names, calls versus attempts, the server's rate-limit headroom, and the
//! retry, limiter, quota and failover state operators watch.
//!
//! # Overview
//!
//! [`MetricsLayer`] wraps any `tower::Service<http::Request<B>>` that
//! answers `http::Response<RB>` and records, through the `metrics` facade
//! only (it never installs a recorder; install the exporter you like):
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `http.client.request.duration` (s) | histogram | `http.request.method`, `http.response.status_code`, `server.address`, `error.type` |
//! | `evenkeel.http.client.requests` | counter | the same |
//! | `http.client.active_requests` | gauge | `http.request.method`, `server.address` |
//! | `evenkeel.rate_limit.remaining`, `.limit`, `.reset` (s) | gauges | `evenkeel.resource`, `server.address` |
//!
//! With [`Scope::Attempt`] the layer sits inside the retry layer and records
//! each attempt instead, under separate names, so that
//! `attempts / calls` is the retry amplification (the split gRPC's metrics
//! make between `grpc.client.call.duration` and
//! `grpc.client.attempt.duration`):
//! `evenkeel.http.client.attempt.duration`, `evenkeel.http.client.attempts`
//! (with `evenkeel.attempt`: `1`…`4`, `5+`, from
//! [`Attempt`](evenkeel_core::ext::Attempt)) and
//! `evenkeel.http.client.active_attempts`.
//!
//! [`MetricsListener`] is the [`Listener`](evenkeel_core::event::Listener)
//! the retry, limit, quota and failover layers report their decisions to:
//! retries by outcome and by who set the wait (server or backoff), give-ups
//! by reason (budget exhausted, attempts, wait too long, deadline), the
//! wait before each retry, each limiter's current limit and rejections,
//! quota waits and rejections, each endpoint's state, failovers and
//! failbacks. Its table lists every name.
//!
//! What the labels mean:
//!
//! - `error.type` is absent on success; otherwise it is the
//!   [`Outcome`](evenkeel_core::Outcome) name (`rate_limited`,
//!   `overloaded`, `server_error`, `client_error`) for a response, the
//!   [`classify_error`](evenkeel_core::classify_error) kind
//!   (`connection_refused`, `timeout`, `dns`, …) for an error, and
//!   `cancelled` for a call dropped before its response head arrived (an
//!   outer timeout, a caller that gave up). The status code is a number.
//! - Durations run from the call to the response head (or the error); a
//!   streamed body is not included, and in-flight counts end there too.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use evenkeel_metrics::MetricsLayer;
//! use metrics_util::debugging::DebuggingRecorder;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // Any recorder: metrics-exporter-prometheus, an OpenTelemetry bridge, …
//! // An application installs it with `metrics::set_global_recorder`; here it
//! // is this thread's only.
//! let recorder = DebuggingRecorder::new();
//! let snapshot = recorder.snapshotter();
//! let _guard = metrics::set_default_local_recorder(&recorder);
//!
//! let api = service_fn(|_req: http::Request<()>| async {
//!     Ok::<_, Infallible>(http::Response::builder().status(429).body(()).unwrap())
//! });
//! let client = ServiceBuilder::new().layer(MetricsLayer::new()).service(api);
//! let request = http::Request::post("https://api.example.com/v1/messages").body(())?;
//! let response = client.oneshot(request).await?;
//! assert_eq!(response.status(), 429);
//!
//! let (key, ..) = snapshot
//!     .snapshot()
//!     .into_vec()
//!     .into_iter()
//!     .find(|(key, ..)| key.key().name() == "evenkeel.http.client.requests")
//!     .unwrap();
//! let labels: Vec<_> = key.key().labels().map(|l| (l.key(), l.value())).collect();
//! assert!(labels.contains(&("error.type", "rate_limited")));
//! assert!(labels.contains(&("server.address", "api.example.com")));
//! # Ok(())
//! # }
//! ```
//!
//! The retry and failover layers take the listener:
//!
//! ```text
//! let metrics = MetricsLayer::new();
//! let events = metrics.listener().events();
//! ServiceBuilder::new()
//!     .layer(metrics)                                                 // calls
//!     .layer(RetryLayer::builder().events(events.clone()).build()?)
//!     .layer(MetricsLayer::builder().scope(Scope::Attempt).build()?)  // attempts
//!     .layer(failover)   // built with `events` too, as are limit and quota layers
//!     .service(client)
//! ```
//!
//! # Prometheus
//!
//! Names here are OpenTelemetry's dotted names. metrics-exporter-prometheus
//! with `with_recommended_naming(true)` exports them the way
//! OpenTelemetry's own Prometheus exporter does:
//! `http_client_request_duration_seconds`,
//! `evenkeel_http_client_requests_total`, `server_address="…"`. The
//! `metrics` facade cannot carry bucket advice, so hand
//! [`Naming::histogram_buckets`] to the exporter (OpenTelemetry's advised
//! 0.005 … 10 s for durations); see its example. The Grafana dashboard and
//! alerting rules in `docs/metrics/` use these exported names.
//!
//! [`Naming::SHORT`] reproduces the short names many dashboards already
//! query: `api_requests_total{method,status_code}`, `api_latency_seconds`
//! (buckets 0.1, 0.5, 1, 2, 5), `rate_limit_remaining{resource}`.
//!
//! # Cardinality
//!
//! Every label set is bounded by construction:
//!
//! - methods outside the nine standard ones are `_OTHER`; status codes are
//!   numbers; error types are a fixed list;
//! - no path or URL is recorded, unless you add a route label with
//!   [`MetricsBuilder::route`], whose function must return a template from a
//!   small set (values past [`MetricsBuilder::max_routes`] are `_OTHER`);
//! - `server.address` is fixed ([`MetricsBuilder::server_address`]) or the
//!   request's host, capped at [`MetricsBuilder::max_addresses`] distinct
//!   authorities (then `_OTHER`);
//! - limiter, quota-key and endpoint names come from your configuration and
//!   must be a small fixed set; the listener labels the first
//!   [`DEFAULT_MAX_NAMES`] and calls the rest `_OTHER`. Resources the server
//!   names itself are `other`.
//!
//! # Cost
//!
//! A label set is resolved into `metrics` handles the first time it is seen
//! and kept in the layer (shared by its clones), so a call costs two clock
//! reads, two small table look-ups and the recorder's own atomic updates,
//! and allocates nothing; label values that come from requests (host,
//! route) are interned without allocating. Responses without rate-limit
//! headers cost one scan of their header names; responses with them are
//! parsed by [`evenkeel_headers::rate_limits`]. The README has the
//! measured overhead.
//!
//! Handles are resolved against the recorder current at first use, and the
//! names are [described](describe) (units, help texts) to that recorder at
//! the same moment: install the recorder before the first request.
//!
//! # Errors
//!
//! The layer adds no failure mode, but it returns [`BoxError`](evenkeel_core::BoxError):
//! to classify an error it walks its `source()` chain as a `dyn Error`,
//! which a generic error type cannot be borrowed as when it is itself a
//! `BoxError`. The inner error is passed on boxed (or as it was, if it
//! already was a `BoxError`); `err.downcast_ref::<E>()` gets it back.
//!
//! # Feature flags
//!
//! None: the crate depends on `metrics` (the facade), `evenkeel-core` and
//! `evenkeel-headers` only.
//!
//! # Layer ordering
//!
//! - A [`Scope::Call`] layer goes *outside* the retry layer: it sees what
//!   the caller sees, waits and retries included. Without a retry layer it
//!   is the only one you need.
//! - A [`Scope::Attempt`] layer goes *inside* the retry layer (and inside
//!   failover, so each endpoint's attempts are its own), right above the
//!   client: it sees every trip on the wire, including the 429s that were
//!   retried.
//! - Rate-limit gauges come from whichever layer sees the response; with
//!   both, the attempt layer sees every response and the gauges are the
//!   freshest. Give each endpoint's attempt layer its
//!   [`server_address`](MetricsBuilder::server_address) and
//!   [`server_port`](MetricsBuilder::server_port), as the preset does, and
//!   the gauges are per endpoint.
//! - Below an [`Observe`](evenkeel_core::observe::Observe) layer, the
//!   layer reads the verdict left on each answer instead of classifying it
//!   and parsing its headers again.
//!
//! The names are OpenTelemetry's *client* conventions; on a server (axum,
//! tonic) record the server conventions with a server-side layer instead.

mod cache;
pub mod future;
mod labels;
mod layer;
mod listener;
pub mod names;
mod record;
mod service;

pub use layer::{DEFAULT_MAX_ADDRESSES, DEFAULT_MAX_ROUTES, MetricsBuilder, MetricsLayer, Scope};
pub use listener::{DEFAULT_MAX_NAMES, MetricsListener};
pub use names::{LabelNames, Naming, describe};
pub use service::Metrics;

/// The errors this layer passes through or its builder returns.
pub mod error {
    pub use evenkeel_core::BoxError;
    pub use evenkeel_core::error::ConfigError;
}
