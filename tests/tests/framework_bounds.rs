//! The auto traits and `Clone` that users need of each public layer,
//! service, future, body and handle, checked at compile time (a test that
//! compiles has passed), over the inner services people use: hyper-util's
//! client, axum's `Route`, tonic's `Channel`.
//!
//! - Layers and handles: `Clone + Send + Sync + 'static` (they are built
//!   once and shared, often in a `static` or an axum state).
//! - Services: `Clone + Send + Sync + 'static` (axum's `Router::layer` and
//!   tonic's `add_service` require `Sync`; `tokio::spawn` requires `Send`).
//! - Futures: `Send + 'static` (spawned tasks, `Buffer`, axum, tonic).
//! - Bodies: `Send + 'static`, and `Sync` where the inner body is.

use std::time::Duration;

use bytes::Bytes;
use evenkeel::{HttpClient, HttpsClient, Preset};
use evenkeel_core::body::ReplayBody;
use evenkeel_core::event::Events;
use evenkeel_core::rng::Jitter;
use evenkeel_core::{BoxError, GrpcClassifier, HttpClassifier};
use evenkeel_failover::{
    BaseUrl, BaseUrlLayer, Endpoint, Failover, FailoverHandle, HealthCheckLayer, HealthChecked,
    HealthHandle,
};
use evenkeel_limit::{Aimd, Fixed, Gradient, Limit, LimitHandle, LimitLayer, Respond, Vegas};
use evenkeel_metrics::{Metrics, MetricsLayer, MetricsListener};
use evenkeel_quota::cost::{EstimateLayer, EstimateService, Llm};
use evenkeel_quota::key::Header;
use evenkeel_quota::{Quota, QuotaHandle, QuotaLayer};
use evenkeel_retry::body::ResponseBody;
use evenkeel_retry::{DefaultPolicy, Retry, RetryBudget, RetryLayer};
use evenkeel_sim::{Sim, SimHandle};
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::{Layer, Service, ServiceExt};

fn shared<T: Clone + Send + Sync + 'static>() {}

fn send_sync<T: Send + Sync + 'static>() {}

fn send<T: Send + 'static>() {}

/// `S`'s future for requests `R` is `Send + 'static`.
fn future_is_send<S, R>()
where
    S: Service<R>,
    S::Future: Send + 'static,
{
}

/// A service that axum and tonic accept: shared, with a `Send` future.
fn servable<S, R>()
where
    S: Service<R> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
}

type Body = Full<Bytes>;
type Hyper = Client<HttpConnector, Body>;
/// What the client sees under a retry or failover layer.
type HyperReplay = Client<HttpConnector, ReplayBody<Body>>;
type Route = axum::routing::Route;
type AxumRequest = Request<axum::body::Body>;
/// A tonic channel as the retry layer's inner service.
type TonicInner = tower::util::MapRequest<
    tonic::transport::Channel,
    fn(Request<ReplayBody<tonic::body::Body>>) -> Request<tonic::body::Body>,
>;
type TonicRequest = Request<tonic::body::Body>;

#[test]
fn layers_are_shared_values() {
    shared::<RetryLayer>();
    shared::<RetryLayer<GrpcClassifier, DefaultPolicy>>();
    shared::<LimitLayer>();
    shared::<LimitLayer<Aimd>>();
    shared::<LimitLayer<Gradient>>();
    shared::<LimitLayer<Vegas>>();
    shared::<LimitLayer<Fixed, HttpClassifier, Respond>>();
    shared::<LimitLayer<Aimd, GrpcClassifier, Respond>>();
    shared::<QuotaLayer>();
    shared::<QuotaLayer<Header, Llm>>();
    shared::<EstimateLayer<Llm>>();
    shared::<MetricsLayer>();
    shared::<MetricsLayer<GrpcClassifier>>();
    shared::<BaseUrlLayer>();
    shared::<HealthCheckLayer>();
}

#[test]
fn handles_are_shared_values() {
    shared::<RetryBudget>();
    shared::<LimitHandle>();
    shared::<QuotaHandle>();
    shared::<FailoverHandle<Hyper>>();
    shared::<HealthHandle>();
    send_sync::<Endpoint<Hyper>>();
    shared::<MetricsListener>();
    shared::<Events>();
    shared::<Jitter>();
    shared::<SimHandle>();
    shared::<Preset<HttpClient>>();
    shared::<Preset<HttpsClient>>();
}

#[test]
fn services_over_hyper_are_servable() {
    shared::<Retry<HyperReplay>>();
    servable::<Retry<HyperReplay>, Request<Body>>();
    servable::<Retry<HyperReplay, GrpcClassifier>, Request<Body>>();
    servable::<Limit<Hyper>, Request<Body>>();
    servable::<Limit<Hyper, Aimd>, Request<Body>>();
    servable::<Limit<Hyper, Gradient>, Request<Body>>();
    servable::<Limit<Hyper, Vegas>, Request<Body>>();
    servable::<Quota<Hyper>, Request<Body>>();
    servable::<Quota<Hyper, Header, Llm>, Request<Body>>();
    servable::<EstimateService<Hyper, Llm>, Request<Body>>();
    servable::<Metrics<Hyper>, Request<Body>>();
    servable::<BaseUrl<Hyper>, Request<Body>>();
    servable::<HealthChecked<Hyper>, Request<Body>>();
    servable::<Failover<HyperReplay>, Request<Body>>();
    servable::<Failover<BaseUrl<HyperReplay>>, Request<Body>>();
    servable::<Preset<HttpClient>, Request<Body>>();
    servable::<Preset<HttpsClient>, Request<Body>>();
    servable::<Sim, Request<Body>>();
}

#[test]
fn services_over_axum_routes_are_servable() {
    servable::<Limit<Route, Fixed, HttpClassifier, Respond>, AxumRequest>();
    servable::<Limit<Route, Aimd, HttpClassifier, Respond>, AxumRequest>();
    servable::<Retry<Route>, AxumRequest>();
    servable::<Quota<Route>, AxumRequest>();
    servable::<Quota<Route, Header>, AxumRequest>();
    servable::<Metrics<Route>, AxumRequest>();
    servable::<BaseUrl<Route>, AxumRequest>();
    servable::<Failover<Route>, AxumRequest>();
}

#[test]
fn services_over_tonic_channels_are_servable() {
    servable::<Retry<TonicInner, GrpcClassifier>, TonicRequest>();
    servable::<Limit<tonic::transport::Channel, Aimd, GrpcClassifier>, TonicRequest>();
    servable::<Metrics<tonic::transport::Channel, GrpcClassifier>, TonicRequest>();
    servable::<
        Retry<Limit<Metrics<TonicInner, GrpcClassifier>, Aimd, GrpcClassifier>, GrpcClassifier>,
        TonicRequest,
    >();
}

#[test]
fn futures_are_send() {
    // Each service's future type, named through the service: these are
    // the public `future::ResponseFuture` types of each crate.
    future_is_send::<Retry<HyperReplay>, Request<Body>>();
    future_is_send::<Limit<Hyper, Aimd>, Request<Body>>();
    future_is_send::<Quota<Hyper>, Request<Body>>();
    future_is_send::<Metrics<Hyper>, Request<Body>>();
    future_is_send::<Failover<HyperReplay>, Request<Body>>();
    future_is_send::<HealthChecked<Hyper>, Request<Body>>();
    future_is_send::<Sim, Request<Body>>();
    future_is_send::<Preset<HttpClient>, Request<Body>>();
    future_is_send::<Preset<HttpsClient>, Request<Body>>();
    future_is_send::<Retry<TonicInner, GrpcClassifier>, TonicRequest>();
    future_is_send::<Limit<Route, Fixed, HttpClassifier, Respond>, AxumRequest>();
    send::<
        evenkeel_retry::future::ResponseFuture<
            HyperReplay,
            Body,
            hyper::body::Incoming,
            HttpClassifier,
            DefaultPolicy,
        >,
    >();
}

#[test]
fn bodies_are_send() {
    send_sync::<ReplayBody<Body>>();
    send::<ReplayBody<axum::body::Body>>();
    send::<ReplayBody<tonic::body::Body>>();
    send_sync::<ResponseBody<hyper::body::Incoming>>();
    send::<ResponseBody<axum::body::Body>>();
    send::<ResponseBody<tonic::body::Body>>();
    // The preset's response body turns into axum's and tonic's bodies.
    fn into_axum(body: ResponseBody<hyper::body::Incoming>) -> axum::body::Body {
        axum::body::Body::new(body)
    }
    fn into_tonic(body: ResponseBody<hyper::body::Incoming>) -> tonic::body::Body {
        tonic::body::Body::new(body)
    }
    let _ = (into_axum, into_tonic);
}

#[tokio::test(start_paused = true)]
async fn a_buffer_in_front_of_the_preset() {
    // `tower::buffer::Buffer` shares a service across tasks through a
    // channel; it needs `Send + 'static` requests, futures and errors that
    // convert into `BoxError`.
    let sim = Sim::builder()
        .latency(Duration::from_millis(5))
        .build()
        .unwrap();
    let upstream = sim.clone();
    let preset = Preset::builder()
        .endpoint("http://api.sim")
        .build(evenkeel::connector_fn(move |_| Ok(upstream.clone())))
        .unwrap();
    let buffer = tower::buffer::Buffer::new(preset, 16);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let buffer = buffer.clone();
        tasks.spawn(async move {
            let request = Request::post("/v1/messages")
                .header("x-request-id", format!("req-{i}"))
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap();
            buffer.oneshot(request).await.map(|r| r.status())
        });
    }
    while let Some(done) = tasks.join_next().await {
        let status: Result<_, BoxError> = done.unwrap();
        assert_eq!(status.unwrap(), http::StatusCode::OK);
    }
    assert_eq!(sim.stats().successes(), 8);
}

#[test]
fn layers_make_the_services_checked_above() {
    // The layers produce exactly the service types named above.
    fn makes<L: Layer<Hyper, Service = S>, S>(_: &L) {}
    makes::<_, Limit<Hyper>>(&LimitLayer::fixed(1).build().unwrap());
    makes::<_, Quota<Hyper>>(&QuotaLayer::new());
    makes::<_, Metrics<Hyper>>(&MetricsLayer::new());
    makes::<_, BaseUrl<Hyper>>(&BaseUrlLayer::new("http://x").unwrap());
    makes::<_, EstimateService<Hyper, Llm>>(&EstimateLayer::new(Llm::new()));
    fn makes_replay<L: Layer<HyperReplay, Service = S>, S>(_: &L) {}
    makes_replay::<_, Retry<HyperReplay>>(&RetryLayer::new());
}
