//! Concurrency limiting for tower that finds the right limit by itself and
//! listens when the server pushes back.
//!
//! # Overview
//!
//! [`LimitLayer`] caps how many requests its services have in flight at
//! once. All clones of a layer, and every service it makes, share one
//! limiter (one set of permits, one FIFO queue, one algorithm), so a client
//! cloned into many tasks is limited as a whole.
//!
//! - **Static** ([`LimitLayer::fixed`]): like tower's `ConcurrencyLimit`,
//!   with a shared [`LimitHandle`] and a choice of what happens when every
//!   permit is taken: wait (optionally bounded by
//!   [`max_queue`](LimitBuilder::max_queue) and
//!   [`max_wait`](LimitBuilder::max_wait)) or
//!   [`reject_immediately`](LimitBuilder::reject_immediately). A limit of 0
//!   is refused by the builder.
//! - **Adaptive** ([`LimitLayer::adaptive`]): the limit is set by an
//!   [`Algorithm`] fed by every completed attempt: its round trip, how many
//!   were in flight when it was sent, and its [`Outcome`](evenkeel_core::Outcome)
//!   from a [`Classify`](evenkeel_core::Classify) (the
//!   [`HttpClassifier`](evenkeel_core::HttpClassifier) by default). 429,
//!   503, 529, gRPC `RESOURCE_EXHAUSTED`/`UNAVAILABLE`, timeouts and
//!   downstream refusals are *drops*; failures that never reached the server
//!   are ignored. Three algorithms come with the crate:
//!   - [`Aimd`]: loss-based, Netflix's defaults, with an optional fast start
//!     and a cautious approach to the last drop point;
//!   - [`Gradient`]: Netflix's Gradient2 formula, but drops count and the
//!     baseline cannot drift up with load, so it cannot grow without bound;
//!   - [`Vegas`]: queue estimate from the base RTT with `alpha`/`beta`
//!     thresholds, that a server's rate limit lowers instead of confusing.
//! - **Server ceilings**: a `RateLimit-Policy` with
//!   `qu="concurrent-requests"` caps an adaptive limit, and so does a
//!   configured [`ceiling`](LimitBuilder::ceiling) (changeable at run time
//!   through the handle).
//! - **Respond mode** for servers ([`Respond`]): a rejected request gets a
//!   `503` with `Retry-After`, or a trailers-only gRPC `RESOURCE_EXHAUSTED`,
//!   instead of an error, so axum and tonic keep their `Infallible` error
//!   type. Otherwise rejections are
//!   [`Overloaded`](evenkeel_core::error::Overloaded) errors.
//! - **Cancellation safe**: a dropped response future returns its permit
//!   and reports nothing; a dropped waiting service leaves the queue.
//! - **Observable**: [`LimitHandle`] reads the limit, in flight, queued and
//!   rejected; [`Event::LimitChanged`](evenkeel_core::event::Event::LimitChanged)
//!   and [`Event::LimitRejected`](evenkeel_core::event::Event::LimitRejected)
//!   go to the [`Events`](evenkeel_core::event::Events) given to the
//!   builder, and to `tracing` with the `tracing` feature.
//!
//! The permit path is one compare-and-swap when nobody waits, allocates
//! nothing, and the static limiter neither times nor classifies requests.
//! A permit is held until the response *head* arrives, as with tower's
//! limiter, except for an event stream (`content-type: text/event-stream`,
//! a streamed LLM answer): its permit, and its place in the in-flight
//! count, last until its body ends or is dropped, because the server works
//! until the last event. [`Release`] changes that (`Head` for every answer,
//! `BodyEnd` for every answer); the body is a [`body::LimitBody`].
//!
//! # Example: an API client
//!
//! An adaptive limit in front of a hyper-util client; the handle reports
//! what the limiter learnt.
//!
//! ```no_run
//! use std::time::Duration;
//! use bytes::Bytes;
//! use evenkeel_limit::{Gradient, LimitLayer};
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # async fn run() -> Result<(), evenkeel_core::BoxError> {
//! let limit = LimitLayer::adaptive(Gradient::default())
//!     .name("api.example.com")
//!     .max_wait(Duration::from_secs(30))
//!     .build()?;
//! let handle = limit.handle();
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let mut client = ServiceBuilder::new().layer(limit).service(client);
//!
//! let request = http::Request::post("http://127.0.0.1:8080/v1/messages")
//!     .header("content-type", "application/json")
//!     .body(Full::new(Bytes::from_static(br#"{"max_tokens":64}"#)))?;
//! let response = client.ready().await?.call(request).await?;
//! println!(
//!     "{}: limit {}, {} in flight",
//!     response.status(),
//!     handle.limit(),
//!     handle.in_flight()
//! );
//! # Ok(())
//! # }
//! ```
//!
//! # Example: an axum server that sheds load
//!
//! At most 64 requests at once; up to 128 more wait at most 2 s; beyond
//! that, `503` with `Retry-After: 1`. The router keeps its `Infallible`
//! error type.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{Router, routing::post};
//! use evenkeel_limit::{LimitLayer, Respond};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let limit = LimitLayer::fixed(64)
//!     .max_queue(128)
//!     .max_wait(Duration::from_secs(2))
//!     .respond(Respond::http())
//!     .build()?;
//! let app = Router::new()
//!     .route("/v1/messages", post(|| async { "done" }))
//!     .layer(limit);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! For tonic, use [`Respond::grpc`] and
//! [`classifier(GrpcClassifier::new())`](LimitBuilder::classifier).
//!
//! # Feature flags
//!
//! - `tracing`: emit `tracing` events (target `evenkeel_limit`, level
//!   `DEBUG`) when the limit changes and when a request is rejected.
//!
//! # Layer ordering
//!
//! On a client, put the limiter *inside* retry and quota pacing (a request
//! waiting out a backoff or a quota should not hold a permit) and *outside*
//! a per-attempt timeout (so a timeout is seen, and counted as a drop). With
//! failover, quota and limit each endpoint separately, inside the failover
//! layer, as the preset does (`docs/layer-ordering.md`):
//!
//! ```text
//! metrics → retry → [failover →] quota → limit → attempt timeout → client
//! ```
//!
//! On a server, put it early, before the expensive work, after tracing and
//! metrics so rejections are seen.

mod algorithm;
pub mod body;
pub mod future;
mod gate;
mod handle;
mod layer;
mod reject;
mod service;
mod shared;

pub use algorithm::{
    Aimd, AimdBuilder, Algorithm, Fixed, Gradient, GradientBuilder, Sample, Vegas, VegasBuilder,
};
pub use body::Release;
pub use handle::{LimitHandle, Snapshot};
pub use layer::{LimitBuilder, LimitLayer};
pub use reject::{Reject, RejectWithError, Respond};
pub use service::Limit;

/// The errors this layer returns or refuses to build with.
pub mod error {
    pub use evenkeel_core::BoxError;
    pub use evenkeel_core::error::{ConfigError, Overloaded};
}
