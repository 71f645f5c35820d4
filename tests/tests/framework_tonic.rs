//! evenkeel on both sides of tonic, over loopback: retry, limit and metrics
//! on a client `Channel`, and the limiter in respond mode on a server.
//!
//! The service is the standard health service (`tonic-health`), so no code
//! is generated. A scripted middleware on the server answers chosen calls
//! itself with trailers-only gRPC errors, or holds them.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use evenkeel_core::body::ReplayBody;
use evenkeel_core::error::Overloaded;
use evenkeel_core::{GrpcClassifier, Outcome};
use evenkeel_limit::{Aimd, LimitLayer, Respond};
use evenkeel_metrics::{MetricsLayer, Scope};
use evenkeel_retry::{Backoff, DefaultPolicy, Policy, RetryInfo, RetryLayer, policy_fn};
use http::HeaderValue;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::sync::Notify;
use tonic::Code;
use tonic::service::LayerExt;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::{Layer, Service, ServiceBuilder};

const CHECK: &str = "/grpc.health.v1.Health/Check";

/// What the scripted middleware does with a call.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Answers with this code, trailers-only, with this pushback (ms).
    Fail(Code, Option<u64>),
    /// Holds the call until released, then passes it on.
    Hold,
}

/// A middleware that follows a script, one step per call, then passes
/// calls on; it counts every call it sees.
#[derive(Debug, Clone, Default)]
struct Script {
    steps: Arc<Mutex<VecDeque<Step>>>,
    calls: Arc<AtomicUsize>,
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

impl Script {
    fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        let script = Script::default();
        script.steps.lock().unwrap().extend(steps);
        script
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl<S> Layer<S> for Script {
    type Service = Scripted<S>;

    fn layer(&self, inner: S) -> Scripted<S> {
        Scripted {
            inner,
            script: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Scripted<S> {
    inner: S,
    script: Script,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for Scripted<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.script.calls.fetch_add(1, Ordering::SeqCst);
        let step = self.script.steps.lock().unwrap().pop_front();
        match step {
            Some(Step::Fail(code, pushback)) => {
                let mut response = tonic::Status::new(code, "scripted").into_http();
                if let Some(ms) = pushback {
                    response
                        .headers_mut()
                        .insert("grpc-retry-pushback-ms", HeaderValue::from(ms));
                }
                Box::pin(async move { Ok(response) })
            }
            Some(Step::Hold) => {
                let call = self.inner.call(request);
                let (entered, release) = (self.script.entered.clone(), self.script.release.clone());
                Box::pin(async move {
                    entered.notify_one();
                    release.notified().await;
                    call.await
                })
            }
            None => Box::pin(self.inner.call(request)),
        }
    }
}

/// A free loopback port for a tonic server, and the URL to reach it.
async fn listener() -> (TcpIncoming, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (TcpIncoming::from(listener), url)
}

async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn check() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

fn serving(response: &HealthCheckResponse) -> bool {
    response.status() == ServingStatus::Serving
}

/// `name`'s counter values by their `error.type` label (`ok` without one).
fn counters_by_error(
    snapshot: &[(
        metrics_util::CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        DebugValue,
    )],
    name: &str,
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (key, _, _, value) in snapshot {
        if key.key().name() != name {
            continue;
        }
        let error = key
            .key()
            .labels()
            .find(|l| l.key() == "error.type")
            .map_or("ok".to_owned(), |l| l.value().to_owned());
        if let DebugValue::Counter(n) = value {
            *counts.entry(error).or_default() += *n;
        }
    }
    counts
}

#[tokio::test]
async fn retry_limit_and_metrics_on_a_channel() {
    // Current-thread runtime: the channel's worker and the server run on
    // this thread and see its recorder.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let script = Script::new([
        Step::Fail(Code::ResourceExhausted, Some(20)),
        Step::Fail(Code::Unavailable, None),
    ]);
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (incoming, url) = listener().await;
    let server = script.clone().named_layer(health);
    tokio::spawn(
        Server::builder()
            .add_service(server)
            .serve_with_incoming(incoming),
    );

    // UNAVAILABLE carries no pushback: retried for `Check`, a read.
    let policy = policy_fn(|outcome: &Outcome, request: &http::request::Parts| {
        DefaultPolicy.may_retry(outcome, request)
            || (request.uri.path() == CHECK && matches!(outcome, Outcome::Overloaded(_)))
    });
    let retry = RetryLayer::builder()
        .classifier(GrpcClassifier::new())
        .policy(policy)
        .backoff(Backoff::constant(Duration::from_millis(5)))
        .max_attempts(3)
        .build()
        .unwrap();
    let aimd = Aimd::builder()
        .initial_limit(4)
        .min_limit(1)
        .build()
        .unwrap();
    let limit = LimitLayer::adaptive(aimd)
        .classifier(GrpcClassifier::new())
        .build()
        .unwrap();
    let limits = limit.handle();
    let call_metrics = MetricsLayer::builder()
        .classifier(GrpcClassifier::new())
        .build()
        .unwrap();
    let attempt_metrics = MetricsLayer::builder()
        .scope(Scope::Attempt)
        .classifier(GrpcClassifier::new())
        .build()
        .unwrap();
    let stack = ServiceBuilder::new()
        .layer(call_metrics)
        .layer(retry)
        .layer(attempt_metrics)
        .layer(limit)
        .map_request(|r: http::Request<ReplayBody<tonic::body::Body>>| {
            r.map(tonic::body::Body::new)
        })
        .service(channel(&url).await);
    let mut client = HealthClient::new(stack);

    let response = client.check(check()).await.unwrap();
    let info = *response.extensions().get::<RetryInfo>().unwrap();
    assert!(serving(response.get_ref()));
    assert_eq!(info.attempts, 3);
    // The first wait honoured the server's pushback.
    assert!(info.waited >= Duration::from_millis(25), "{info:?}");
    assert_eq!(script.calls(), 3);
    // Both pushbacks were drops for the limiter.
    assert_eq!(limits.limit(), 2);
    assert_eq!(limits.in_flight(), 0);

    let snapshot = snapshotter.snapshot().into_vec();
    let calls = counters_by_error(&snapshot, "evenkeel.http.client.requests");
    let attempts = counters_by_error(&snapshot, "evenkeel.http.client.attempts");
    assert_eq!(calls, BTreeMap::from([("ok".to_owned(), 1)]));
    assert_eq!(
        attempts,
        BTreeMap::from([
            ("ok".to_owned(), 1),
            ("overloaded".to_owned(), 1),
            ("rate_limited".to_owned(), 1),
        ])
    );
}

#[tokio::test]
async fn a_hopeless_status_is_not_retried_and_reaches_the_caller_as_a_status() {
    let script = Script::new([Step::Fail(Code::PermissionDenied, None)]);
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (incoming, url) = listener().await;
    tokio::spawn(
        Server::builder()
            .add_service(script.clone().named_layer(health))
            .serve_with_incoming(incoming),
    );
    let stack = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .classifier(GrpcClassifier::new())
                .build()
                .unwrap(),
        )
        .map_request(|r: http::Request<ReplayBody<tonic::body::Body>>| {
            r.map(tonic::body::Body::new)
        })
        .service(channel(&url).await);
    let status = HealthClient::new(stack).check(check()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(script.calls(), 1);
}

/// A service that holds its first call, behind a limit of one in respond
/// mode; the second call must come back as `RESOURCE_EXHAUSTED` with the
/// advertised pushback, not as a transport error.
async fn second_call_is_resource_exhausted(url: String, script: Script) {
    let mut first = HealthClient::new(channel(&url).await);
    let held = tokio::spawn(async move { first.check(check()).await });
    script.entered.notified().await;

    let mut second = HealthClient::new(channel(&url).await);
    let status = second.check(check()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "250"
    );
    // The client's classifier reads it as a rate limit with a wait.
    let response = status.into_http::<tonic::body::Body>();
    let outcome = evenkeel_core::Classify::classify_response(&GrpcClassifier::new(), &response);
    assert!(matches!(outcome, Outcome::RateLimited(_)));
    assert_eq!(outcome.server_wait(), Some(Duration::from_millis(250)));

    script.release.notify_one();
    assert!(serving(held.await.unwrap().unwrap().get_ref()));
}

fn respond_limit() -> LimitLayer<evenkeel_limit::Fixed, GrpcClassifier, Respond> {
    LimitLayer::fixed(1)
        .reject_immediately()
        .classifier(GrpcClassifier::new())
        .respond(Respond::grpc().retry_after(Some(Duration::from_millis(250))))
        .build()
        .unwrap()
}

#[tokio::test]
async fn limit_in_respond_mode_on_one_tonic_service() {
    // `named_layer` carries the service's gRPC name through the layers, so
    // tonic's router accepts the limited service; its error stays
    // `Infallible`.
    let script = Script::new([Step::Hold]);
    let limit = respond_limit();
    let handle = limit.handle();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let service = ServiceBuilder::new()
        .layer(limit)
        .layer(script.clone())
        .named_layer(health);
    fn infallible<S: Service<http::Request<tonic::body::Body>, Error = Infallible>>(_: &S) {}
    infallible(&service);
    let (incoming, url) = listener().await;
    tokio::spawn(
        Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    second_call_is_resource_exhausted(url, script.clone()).await;
    assert_eq!(handle.rejected(), 1);
    // The rejected call never reached the service.
    assert_eq!(script.calls(), 1);
}

#[tokio::test]
async fn limit_in_respond_mode_around_a_whole_tonic_server() {
    let script = Script::new([Step::Hold]);
    let limit = respond_limit();
    let handle = limit.handle();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (incoming, url) = listener().await;
    tokio::spawn(
        Server::builder()
            .layer(limit)
            .add_service(script.clone().named_layer(health))
            .serve_with_incoming(incoming),
    );
    second_call_is_resource_exhausted(url, script.clone()).await;
    assert_eq!(handle.rejected(), 1);
    assert_eq!(script.calls(), 1);
}

#[tokio::test]
async fn a_client_side_rejection_keeps_its_type_inside_the_status() {
    // The client's own limiter refuses a call: tonic turns the `BoxError`
    // into a `Status`, and the `Overloaded` error is still there to find.
    let script = Script::new([Step::Hold]);
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (incoming, url) = listener().await;
    tokio::spawn(
        Server::builder()
            .add_service(script.clone().named_layer(health))
            .serve_with_incoming(incoming),
    );
    let limit = LimitLayer::fixed(1)
        .reject_immediately()
        .classifier(GrpcClassifier::new())
        .build()
        .unwrap();
    let client = HealthClient::new(limit.layer(channel(&url).await));
    let mut first = client.clone();
    let held = tokio::spawn(async move { first.check(check()).await });
    script.entered.notified().await;

    let status = client.clone().check(check()).await.unwrap_err();
    let mut source = std::error::Error::source(&status);
    let mut found = false;
    while let Some(err) = source {
        found |= err.is::<Overloaded>();
        source = err.source();
    }
    assert!(found, "{status:?}");
    // The classifier finds it too: a local overload, never sent.
    assert!(
        evenkeel_core::classify_error(&status).never_sent(),
        "{status:?}"
    );
    assert_eq!(script.calls(), 1);

    script.release.notify_one();
    assert!(serving(held.await.unwrap().unwrap().get_ref()));
}

#[tokio::test]
async fn a_handler_error_arrives_trailers_only_so_the_layers_see_it() {
    // tonic's server answers a handler's error before any message as a
    // trailers-only response: `grpc-status` in the headers, where
    // `GrpcClassifier` (and so retry, limit and metrics) reads it. The
    // health service answers NOT_FOUND for an unknown service name.
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (incoming, url) = listener().await;
    tokio::spawn(
        Server::builder()
            .add_service(health)
            .serve_with_incoming(incoming),
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let stack = ServiceBuilder::new()
        .map_response(move |response: http::Response<tonic::body::Body>| {
            let outcome =
                evenkeel_core::Classify::classify_response(&GrpcClassifier::new(), &response);
            record.lock().unwrap().push(outcome);
            response
        })
        .service(channel(&url).await);
    let mut client = HealthClient::new(stack);

    assert!(serving(client.check(check()).await.unwrap().get_ref()));
    let status = client
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let seen = seen.lock().unwrap();
    assert!(seen[0].is_success(), "{seen:?}");
    assert!(matches!(seen[1], Outcome::ClientError), "{seen:?}");
}

#[tokio::test]
async fn the_preset_over_a_channel_reads_grpc_statuses() {
    let script = Script::new([Step::Fail(Code::ResourceExhausted, Some(30))]);
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (incoming, url) = listener().await;
    tokio::spawn(
        Server::builder()
            .add_service(script.clone().named_layer(health))
            .serve_with_incoming(incoming),
    );
    let channel = channel(&url).await;
    let preset = evenkeel::Preset::builder()
        .endpoint(url.clone())
        .classifier(evenkeel::PresetClassifier::grpc())
        .build(evenkeel::connector_fn(move |_| {
            Ok(ServiceBuilder::new()
                .map_request(
                    |r: http::Request<evenkeel::ConnectorBody<tonic::body::Body>>| {
                        r.map(tonic::body::Body::new)
                    },
                )
                .service(channel.clone()))
        }))
        .unwrap();
    let mut client = HealthClient::new(preset);
    let response = client.check(check()).await.unwrap();
    assert!(serving(response.get_ref()));
    let info = *response.extensions().get::<RetryInfo>().unwrap();
    // RESOURCE_EXHAUSTED in a 200 response was read as a rate limit and
    // retried after its pushback.
    assert_eq!(info.attempts, 2, "{info:?}");
    assert!(info.waited >= Duration::from_millis(30), "{info:?}");
    assert_eq!(script.calls(), 2);
}
