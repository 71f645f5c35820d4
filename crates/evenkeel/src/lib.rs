//! Tower middleware that keeps API clients steady when the API pushes back:
//! retry that obeys the server's wait, pacing before the 429, adaptive
//! concurrency, failover to a backup, and metrics that show all of it.
//!
//! # Overview
//!
//! Clients of busy APIs (LLM APIs above all) fail in three typical ways:
//! the connection never happens (DNS, refused, connect timeout), TLS fails
//! (`CERTIFICATE_VERIFY_FAILED` at a proxy), or the server pushes back
//! (`429` with `Retry-After`, `503`, Anthropic's `529`). evenkeel answers
//! each with a tower layer, and [`Preset`] puts them all together in the
//! right order:
//!
//! | layer | crate | does |
//! |---|---|---|
//! | metrics per call | [`metrics`] | OpenTelemetry HTTP client metrics, what the caller sees |
//! | total deadline + retry | [`retry`] | waits `max(backoff, Retry-After)`, a budget caps retries at 20 % of load, never duplicates a POST that may have been processed |
//! | failover | [`failover`] | primary first, backups in order; ejects failing endpoints, routes around rate-limited ones, resends never-sent requests at once |
//! | quota, per endpoint | [`quota`] | learns every quota from rate-limit headers and paces requests so the 429 never comes |
//! | adaptive limit, per endpoint | [`limit`] | finds how many requests the endpoint takes at once |
//! | metrics per attempt, per endpoint | [`metrics`] | attempts vs calls: the retry amplification; headroom per endpoint |
//! | observe, per endpoint | [`core::observe`] | judges each answer and reads its rate-limit headers once, for every layer above |
//! | attempt timeout, per endpoint | [`AttemptTimeout`] | bounds each attempt; fails with `TimedOut` |
//!
//! # Example: an Anthropic-style API with a backup proxy
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use tower::ServiceExt;
//!
//! # async fn run() -> Result<(), evenkeel::core::BoxError> {
//! let client = evenkeel::Preset::builder()
//!     .endpoint("https://api.anthropic.com")                 // primary
//!     .endpoint("https://llm-proxy.internal.example/anthropic") // backup
//!     .build_https()?;
//!
//! let request = http::Request::post("/v1/messages")
//!     .header("x-api-key", std::env::var("ANTHROPIC_API_KEY")?)
//!     .header("anthropic-version", "2023-06-01")
//!     .header("content-type", "application/json")
//!     .body(Full::new(Bytes::from(r#"{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"Hello"}]}"#)))?;
//! let response = client.clone().oneshot(request).await?;
//! println!("{}: {:?}", response.status(), response.into_body().collect().await?.to_bytes());
//! # Ok(())
//! # }
//! ```
//!
//! Every default (3 attempts, a 30 s total deadline, a 10 s attempt
//! timeout, waits honoured up to 120 s, a 20 % retry budget, AIMD
//! concurrency per endpoint) can be changed on the [`PresetBuilder`], which
//! validates the combination. The connector is the hyper-util legacy client
//! by default ([`HyperConnector`]); anything that makes a
//! `tower::Service<http::Request<B>>` per endpoint fits through
//! [`Connector`] (a tonic `Channel`, for instance).
//!
//! # From reqwest
//!
//! Code written against `reqwest` keeps its client. With the feature
//! `reqwest`, [`ReqwestConnector`] runs the preset on a `reqwest::Client`
//! (its TLS, proxies and cookies), and [`reqwest_client_builder`] starts a
//! client on rustls with the `ring` provider named. With
//! `reqwest-middleware`, [`EvenkeelMiddleware`] adds the preset to a
//! `ClientWithMiddleware` in one line:
//!
//! ```no_run
//! # #[cfg(feature = "reqwest-middleware")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = reqwest_middleware::ClientBuilder::new(evenkeel::reqwest_client_builder().build()?)
//!     .with(evenkeel::EvenkeelMiddleware::new(
//!         evenkeel::Preset::builder()
//!             .endpoint("https://api.anthropic.com")
//!             .endpoint("https://llm-proxy.internal.example/anthropic"),
//!     )?)
//!     .build();
//! let response = client
//!     .post("https://api.anthropic.com/v1/messages")
//!     .body(r#"{"max_tokens":16}"#)
//!     .send()
//!     .await?;
//! # drop(response);
//! # Ok(())
//! # }
//! ```
//!
//! Either way, failures are sorted by the phase reqwest reports: a connect
//! failure was never sent and moves to a backup at once; a timeout, reset
//! or body error may have been processed, and a POST is not sent again.
//!
//! # Proxies
//!
//! An endpoint can be reached only through proxies (`http://`, `https://`,
//! `socks5://`, `socks5h://`), one failover route each, in order:
//!
//! ```
//! let preset = evenkeel::Preset::builder()
//!     .endpoint("https://api.anthropic.com")
//!     .via_proxies(["http://proxy1:3128", "socks5h://proxy2:1080"])
//!     .build_https()?;
//! assert_eq!(preset.endpoints().len(), 2);
//! # Ok::<(), evenkeel::core::ConfigError>(())
//! ```
//!
//! A failure at a proxy is never sent and moves the request to the next
//! route at once; when all are down, the [`ProxyError`] names each proxy.
//! Endpoints without proxies follow `HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY` and `NO_PROXY` like curl ([`ProxyEnv`];
//! [`PresetBuilder::no_proxy_env`] turns that off). See
//! `docs/guides/proxies.md`.
//!
//! # Layer ordering, and why
//!
//! - **Metrics per call outermost**: they measure what the caller waited,
//!   retries included.
//! - **Retry outside failover**: failover moves a failed attempt to another
//!   endpoint *at once* when it is safe; only when no endpoint can serve
//!   now does the retry layer back off and try the whole set again. The
//!   retry layer owns the total deadline and passes it down, so the quota
//!   layer fails fast instead of holding a request past it.
//! - **Metrics per attempt in each endpoint's stack**: each attempt on the
//!   wire is counted with its endpoint, failovers included, so attempts ÷
//!   calls shows how much retrying costs.
//! - **Observe at the bottom**: each answer is classified once, and every
//!   layer above reads that verdict from the request's context.
//! - **Quota and limit per endpoint, inside failover**: each endpoint has its
//!   own quota and capacity. A quota cooldown is visible to the balancer,
//!   which routes around a rate-limited endpoint instead of queueing on it.
//! - **Quota outside the limit**: the quota decides *when* to send, the
//!   limiter *how many* at once; a request waiting for quota holds no
//!   concurrency permit.
//! - **Attempt timeout innermost**: it bounds the network call alone, not
//!   the time spent waiting for quota or a permit.
//!
//! See `docs/layer-ordering.md` in the repository for what changes if you
//! reorder them.
//!
//! # Using the layers one by one
//!
//! Each crate is re-exported as a module behind a feature of the same name,
//! and [`ServiceBuilderExt`] adds each layer to a `tower::ServiceBuilder` by
//! name.
//!
//! # Feature flags
//!
//! - `headers`, `retry`, `limit`, `quota`, `failover`, `metrics`: the
//!   modules of the same name.
//! - `preset` (default): all of the above and [`Preset`].
//! - `hyper` (default): [`HyperConnector`] and [`RoutedConnector`] (with
//!   proxies and the proxy environment) over the hyper-util legacy client,
//!   plain HTTP.
//! - `rustls` (default): HTTPS for [`HyperConnector`], with rustls (the
//!   `ring` provider) and the web PKI roots. The provider is passed to
//!   rustls by name, so another one compiled into the program (`aws-lc-rs`,
//!   which `metrics-exporter-prometheus` brings with its default features)
//!   changes nothing.
//! - `hickory`: `failover::dns::HickoryResolver`, DNS name servers you
//!   choose (UDP, TCP) for endpoint discovery; `hickory-tls` adds DNS over
//!   TLS and over HTTPS.
//! - `reqwest`: [`ReqwestConnector`], the preset over a `reqwest::Client`,
//!   and [`reqwest_client_builder`] (rustls with the `ring` provider named,
//!   the web PKI roots; no native-tls, no OpenSSL).
//! - `reqwest-middleware`: [`EvenkeelMiddleware`], the preset as a
//!   `reqwest-middleware` middleware (implies `reqwest`).
//! - `tracing`: `tracing` events from every layer (and, when the preset is
//!   built, the proxy the environment chose for an endpoint).
//! - `redis`: `quota::store::RedisStore`, one quota shared by a fleet of
//!   processes through Redis; `redis-cluster`: the same on a Redis
//!   Cluster.
//! - `full`: every crate, the preset, the hyper-util connector with rustls,
//!   tracing and the Redis store; the reqwest features stay separate, so
//!   `full` builds no second HTTP client.

mod ext;
#[cfg(feature = "preset")]
mod preset;

/// The proxy guide's examples, compiled as doctests.
#[cfg(all(doctest, feature = "rustls"))]
#[doc = include_str!("../../../docs/guides/proxies.md")]
struct ProxyGuideDoctests;

pub use evenkeel_core as core;
#[cfg(feature = "failover")]
pub use evenkeel_failover as failover;
#[cfg(feature = "headers")]
pub use evenkeel_headers as headers;
#[cfg(feature = "limit")]
pub use evenkeel_limit as limit;
#[cfg(feature = "metrics")]
pub use evenkeel_metrics as metrics;
#[cfg(feature = "quota")]
pub use evenkeel_quota as quota;
#[cfg(feature = "retry")]
pub use evenkeel_retry as retry;

pub use ext::ServiceBuilderExt;
#[cfg(any(feature = "hyper", feature = "reqwest"))]
pub use preset::ConnectorBody;
#[cfg(feature = "rustls")]
pub use preset::HttpsClient;
#[cfg(feature = "preset")]
pub use preset::{
    AttemptTimeout, BARE_429_COOLDOWN, Connector, ConnectorFn, DEFAULT_ATTEMPT_TIMEOUT,
    DEFAULT_BODY_IDLE_TIMEOUT, DEFAULT_DEADLINE, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_QUOTA_WAIT,
    DEFAULT_MAX_SERVER_WAIT, EndpointStack, Preset, PresetBody, PresetBuilder, PresetClassifier,
    PresetCost, PresetEndpoint, PresetKey, PresetLimit, Stack, TimeoutFuture, connector_fn,
};
#[cfg(feature = "hyper")]
pub use preset::{
    ConnectionHandle, DEFAULT_KEEP_ALIVE_MARGIN, DEFAULT_POOL_IDLE_TIMEOUT, HttpClient,
    HyperClient, HyperClientFuture, HyperConnector, MarkConnect, MarkConnectFuture, MarkedIo,
};
#[cfg(feature = "hyper")]
pub use preset::{
    DEFAULT_PROXY_TIMEOUT, Proxy, ProxyEnv, ProxyError, ProxyFailure, ProxyKind, ProxyRoute,
    ProxyStream, RoutedConnector, Via,
};
#[cfg(feature = "reqwest-middleware")]
pub use preset::{EvenkeelMiddleware, NextFuture, NextService};
#[cfg(feature = "reqwest")]
pub use preset::{
    ReqwestConnector, ReqwestFuture, ReqwestService, reqwest_client_builder,
    reqwest_client_builder_with_roots,
};
