//! A priority failover balancer for tower: a primary, then backup proxies or
//! regions, routing around endpoints that fail *and* endpoints that are
//! rate-limited, replaying a failed request on the next endpoint at once,
//! and coming back cleanly when the primary recovers.
//!
//! # Overview
//!
//! [`Failover`] is a tower `Service` over [`Endpoint`]s grouped in priority
//! tiers (tier 0 is the primary). Each endpoint is a whole per-endpoint
//! stack (quota → adaptive limit → attempt timeout → client, typically)
//! with a name for events and metrics.
//!
//! - **Routing.** Every request goes to the best tier that has an endpoint
//!   available; within a tier, power of two choices on requests in flight
//!   ([`Selection::PowerOfTwoChoices`], the default) or round robin, drawn
//!   from a seedable [`Jitter`](evenkeel_core::rng::Jitter).
//! - **Passive health (outlier ejection).** 5 endpoint failures in a row
//!   (Envoy's `consecutive_5xx` default), or a success rate under 50 % over
//!   at least 20 requests in 10 s, eject the endpoint for 30 s × the times
//!   it was ejected, at most 300 s, plus up to 10 % jitter. Endpoint
//!   failures are what [`Outcome::is_endpoint_failure`] says: connect, DNS
//!   and TLS failures, resets, timeouts, 5xx and 529 — never a 429, a 4xx or
//!   a local rejection. A connect failure (DNS, refused, connect timeout,
//!   TLS handshake) ejects at once by default
//!   ([`connect_failures`](FailoverBuilder::connect_failures)): the route is
//!   down, and every request would pay for the attempt. A certificate
//!   failure always ejects at once: it fails the same way until someone
//!   fixes the certificate. The last endpoint up is never ejected, and when
//!   every endpoint is down the balancer fails open to the best tier's
//!   ejected ones (Envoy's panic mode).
//! - **Rate-limit awareness.** An endpoint is skipped while it is in a
//!   cooldown that ends more than 500 ms away: its quota's
//!   [`Cooldown`](evenkeel_core::cooldown::Cooldown) (the quota layer's
//!   handle, [`Endpoint::cooldown`]), or the server wait of its last 429
//!   (or 503 with `Retry-After`). Traffic spills to the next endpoint
//!   instead of waiting, and returns the moment the cooldown ends. A 429
//!   is not held against the endpoint's health.
//! - **Immediate failover.** When an attempt fails in a way that is safe to
//!   replay ([`evenkeel_core::resend::may_resend`]: never sent, or
//!   idempotent, or a 429), the same request goes to the next available
//!   endpoint at once — no backoff, never to an endpoint it already tried —
//!   with its body replayed by [`evenkeel_core::body::Replay`]. A 429 moves
//!   to another endpoint if one is available; otherwise the 429 goes back
//!   to the caller, for the retry layer above to wait out. A `POST` that
//!   may have been processed is never replayed.
//! - **Active health checks** ([`HealthCheck`]): a TCP connect or HTTP
//!   probe on an interval with jitter, with healthy and unhealthy
//!   thresholds, on a task owned by its [`HealthHandle`]. Attach it to an
//!   endpoint ([`Endpoint::health`]): an unhealthy endpoint is routed
//!   around, and passing probes readmit an ejected one early. Or use it
//!   alone, as a [`HealthCheckLayer`].
//! - **Failback.** When the primary is readmitted, traffic returns to it
//!   (through a linear [`ramp`](FailoverBuilder::ramp) if configured). A
//!   flapping primary does not bounce traffic: health-check verdicts need
//!   several results in a row, each ejection is longer than the last
//!   (forgiven one base period of good behaviour at a time), and early
//!   readmission by probes needs the healthy threshold times the ejection
//!   count.
//! - **Run-time changes** through a [`FailoverHandle`]: insert, remove or
//!   drain endpoints, or follow a `tower::discover::Discover` stream;
//!   read each endpoint's [`EndpointStatus`].
//! - **Readiness.** The balancer is ready when an endpoint it would route
//!   to is ready; each endpoint service is readied before every call on it.
//!   When nothing can take a request, [`call`](tower_service::Service::call)
//!   fails with [`NoEndpointAvailable`](error::NoEndpointAvailable);
//!   `poll_ready` never fails, so a `Buffer` in front survives.
//! - **DNS discovery** ([`dns::DnsDiscover`]): one endpoint per address of
//!   a host's answer, following the record's TTL (within a floor and a
//!   ceiling), draining addresses that leave, keeping the last good set
//!   when resolution fails; from the system resolver, pinned answers, or
//!   chosen name servers.
//! - **Events**: `EndpointState`, `Failover` and `Failback`
//!   ([`evenkeel_core::event::Event`]) to the listener given to
//!   [`FailoverBuilder::on_event`]; `tracing` with the `tracing` feature.
//!
//! [`Outcome::is_endpoint_failure`]: evenkeel_core::Outcome::is_endpoint_failure
//!
//! # Example: a primary API and a backup proxy
//!
//! ```no_run
//! use std::time::Duration;
//! use bytes::Bytes;
//! use evenkeel_core::body::ReplayBody;
//! use evenkeel_failover::{BaseUrlLayer, Endpoint, Failover, HealthCheck, HttpProbe, Probe};
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{Layer, Service, ServiceExt};
//!
//! # async fn run() -> Result<(), evenkeel_core::BoxError> {
//! // One HTTP client, shared by both endpoints.
//! let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
//!
//! // The primary API, watched by an active health check: a GET of its
//! // health endpoint every 2 s, sent through a client of its own.
//! let probe_client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let probe = HttpProbe::new("http://api.internal:8080/healthz")?;
//! let health = HealthCheck::builder(Probe::service(probe_client, probe))
//!     .interval(Duration::from_secs(2))
//!     .spawn()?;
//! let primary = Endpoint::new("api", BaseUrlLayer::new("http://api.internal:8080")?.layer(client.clone()))
//!     .health(health);
//!
//! // A backup proxy in another region, used only when the primary is down
//! // or rate-limited.
//! let backup = Endpoint::new("proxy", BaseUrlLayer::new("http://proxy.backup:3128/api")?.layer(client))
//!     .tier(1);
//!
//! let mut failover = Failover::builder()
//!     .endpoint(primary)
//!     .endpoint(backup)
//!     .on_event(|event: &evenkeel_core::event::Event<'_>| eprintln!("{event:?}"))
//!     .build()?;
//! let handle = failover.handle();
//!
//! let request = http::Request::get("/v1/models").body(Full::new(Bytes::new()))?;
//! let response = failover.ready().await?.call(request).await?;
//! println!("{} (failovers so far: {})", response.status(), handle.failovers());
//! # Ok(())
//! # }
//! ```
//!
//! Endpoint services must share one type; stacks that differ (a proxy
//! connector for the backup, say) can be boxed with
//! `tower::util::BoxCloneService`.
//!
//! # Feature flags
//!
//! - `http-probe` (default): the built-in HTTP/1.1 probe
//!   ([`Probe::http`]), on hyper's client connection API. Without it, TCP,
//!   custom and [`Probe::service`] probes remain.
//! - `tracing`: `tracing` events for ejections, readmissions, state changes,
//!   failovers and failbacks (and failed DNS resolutions).
//! - `hickory`: [`dns::HickoryResolver`], name servers you choose over UDP
//!   and TCP, on hickory-resolver. `hickory-tls` adds DNS over TLS and DNS
//!   over HTTPS (rustls, with its `ring` provider named explicitly).
//!
//! # Layer ordering
//!
//! ```text
//! retry  →  failover  →  per endpoint: base URL → quota → adaptive limit → attempt timeout → client
//! ```
//!
//! Put the failover balancer *inside* the retry layer: a failover is an
//! immediate move to another endpoint within one retry attempt, while the
//! retry layer waits out what no endpoint can serve now (every endpoint
//! cooling down, a 429 with nowhere else to go). Each endpoint's own stack
//! holds what is per endpoint: its quota (whose handle is the endpoint's
//! [`Cooldown`](evenkeel_core::cooldown::Cooldown)), its concurrency limit,
//! its attempt timeout, and the [`BaseUrlLayer`] that points requests at it.
//! Under a retry layer, call [`Failover::reuse_bodies`]: the body the
//! retry layer keeps is then shared rather than kept again, and the
//! endpoints receive `Request<ReplayBody<B>>` of the caller's `B`.

mod base_url;
mod builder;
mod config;
pub mod dns;
mod endpoint;
pub mod error;
pub mod future;
mod handle;
mod health;
mod outlier;
mod registry;
mod select;
mod service;

pub use base_url::{BaseUrl, BaseUrlLayer};
pub use builder::{
    DEFAULT_BASE_EJECTION, DEFAULT_CONNECT_FAILURES, DEFAULT_CONSECUTIVE_FAILURES,
    DEFAULT_COOLDOWN_THRESHOLD, DEFAULT_EJECTION_JITTER, DEFAULT_MAX_COOLDOWN,
    DEFAULT_MAX_COOLDOWN_WAIT, DEFAULT_MAX_EJECTION, FailoverBuilder,
};
pub use config::Selection;
pub use endpoint::{Endpoint, EndpointStatus};
pub use evenkeel_core::event::{EndpointState, Event};
pub use handle::FailoverHandle;
pub use health::{
    DEFAULT_HEALTHY_THRESHOLD, DEFAULT_INTERVAL, DEFAULT_TIMEOUT, DEFAULT_UNHEALTHY_THRESHOLD,
    HealthCheck, HealthCheckBuilder, HealthCheckLayer, HealthChecked, HealthHandle, HealthStatus,
    HttpProbe, Probe,
};
pub use service::Failover;

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
