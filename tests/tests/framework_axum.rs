//! Every evenkeel layer on an axum `Router`, served over loopback.
//!
//! axum wants services whose error is `Infallible`. The limiter has a
//! respond mode and goes on a route or a router as it is; the layers that
//! fail with `BoxError` (retry, quota, metrics, and the preset as a route
//! service, failover included) go behind `HandleErrorLayer`, which turns
//! each error into a response.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use evenkeel::Preset;
use evenkeel_core::BoxError;
use evenkeel_core::error::{DeadlineExceeded, QuotaExhausted};
use evenkeel_failover::{Endpoint, Failover};
use evenkeel_headers::Resource;
use evenkeel_limit::{LimitLayer, Respond};
use evenkeel_metrics::MetricsLayer;
use evenkeel_quota::key::Header;
use evenkeel_quota::{QuotaLayer, StaticQuota};
use evenkeel_retry::{Backoff, RetryLayer};
use evenkeel_sim::Sim;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceBuilder;

/// Serves `app` on a free loopback port; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A plain client, so the server's answers arrive as they are.
fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(
    method: http::Method,
    url: String,
    headers: &[(&str, &str)],
    body: &'static str,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let response = client().request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, body)
}

async fn get_url(url: String) -> (StatusCode, http::HeaderMap, Bytes) {
    send(http::Method::GET, url, &[], "").await
}

/// A handler that holds every request until released, and says when one
/// has arrived.
#[derive(Clone, Default)]
struct Gate {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

impl Gate {
    async fn pass(self) -> &'static str {
        self.entered.notify_one();
        self.release.notified().await;
        "passed"
    }
}

/// Maps a layer's error to a response, as an application would: deadline
/// → 504, quota → 429 with `Retry-After`, anything else → 500.
async fn handle_error(err: BoxError) -> Response {
    if err.is::<DeadlineExceeded>() {
        return (StatusCode::GATEWAY_TIMEOUT, err.to_string()).into_response();
    }
    if let Some(quota) = err.downcast_ref::<QuotaExhausted>() {
        let secs = quota.retry_after().map_or(1, |d| d.as_secs().max(1));
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, HeaderValue::from(secs))],
            err.to_string(),
        )
            .into_response();
    }
    (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response()
}

// ---------------------------------------------------------------------------
// The limiter: respond mode, no HandleErrorLayer.

#[tokio::test]
async fn limit_on_one_route_answers_503_while_other_routes_serve() {
    let gate = Gate::default();
    let limit = LimitLayer::fixed(1)
        .reject_immediately()
        .respond(Respond::http().retry_after(Some(Duration::from_secs(3))))
        .build()
        .unwrap();
    let handle = limit.handle();
    let app = {
        let gate = gate.clone();
        Router::new()
            .route("/limited", get(move || gate.clone().pass()))
            // Only the routes added above are limited.
            .route_layer(limit)
            .route("/free", get(|| async { "free" }))
    };
    let base = serve(app).await;

    let first = tokio::spawn(get_url(format!("{base}/limited")));
    gate.entered.notified().await;
    let (status, headers, _) = get_url(format!("{base}/limited")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "3");
    let (status, _, body) = get_url(format!("{base}/free")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"free"[..]));
    assert_eq!((handle.in_flight(), handle.rejected()), (1, 1));

    gate.release.notify_one();
    let (status, _, body) = first.await.unwrap();
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"passed"[..]));
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test]
async fn limit_on_a_method_router_and_on_the_whole_router() {
    // One limit on a handler (`MethodRouter::layer`), one around the whole
    // router (`Router::layer`, which covers the fallback too); each has its
    // own permits.
    let (one, two) = (Gate::default(), Gate::default());
    let route_limit = LimitLayer::fixed(1)
        .reject_immediately()
        .respond(Respond::http())
        .build()
        .unwrap();
    let router_limit = LimitLayer::fixed(2)
        .reject_immediately()
        .respond(Respond::http().retry_after(Some(Duration::from_millis(1500))))
        .build()
        .unwrap();
    let router_handle = router_limit.handle();
    let app = {
        let (one, two) = (one.clone(), two.clone());
        Router::new()
            .route("/one", get(move || one.clone().pass()).layer(route_limit))
            .route("/two", get(move || two.clone().pass()))
            .fallback(|| async { (StatusCode::NOT_FOUND, "none") })
            .layer(router_limit)
    };
    let base = serve(app).await;

    let first = tokio::spawn(get_url(format!("{base}/one")));
    one.entered.notified().await;
    // The handler's limit is full; the router's has room.
    let (status, headers, _) = get_url(format!("{base}/one")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let (status, _, body) = get_url(format!("{base}/missing")).await;
    assert_eq!((status, &body[..]), (StatusCode::NOT_FOUND, &b"none"[..]));
    assert_eq!(router_handle.rejected(), 0);

    // Now the router's limit is full too: even the fallback is shed.
    let second = tokio::spawn(get_url(format!("{base}/two")));
    two.entered.notified().await;
    let (status, headers, _) = get_url(format!("{base}/missing")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "2");
    assert_eq!(router_handle.rejected(), 1);

    one.release.notify_one();
    two.release.notify_one();
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    assert_eq!(second.await.unwrap().0, StatusCode::OK);
    assert_eq!(router_handle.in_flight(), 0);
}

// ---------------------------------------------------------------------------
// Retry: BoxError, behind HandleErrorLayer.

#[tokio::test]
async fn retry_on_a_router_replays_a_streamed_request_body() {
    // The handler fails its first attempt with a 503 that says a retry is
    // safe, then echoes the body: the retry layer kept axum's streaming
    // body and replayed it.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let retry = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(5)))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/v1/messages",
            post(move |body: Bytes| {
                let calls = seen.clone();
                async move {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        return (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [("x-should-retry", "true")],
                            Bytes::new(),
                        )
                            .into_response();
                    }
                    body.into_response()
                }
            }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handle_error))
                .layer(retry),
        );
    let base = serve(app).await;

    let (status, _, body) = send(
        http::Method::POST,
        format!("{base}/v1/messages"),
        &[("content-type", "application/json")],
        r#"{"max_tokens":16}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], br#"{"max_tokens":16}"#);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn retry_deadline_becomes_a_504_through_handle_error_layer() {
    let retry = RetryLayer::builder()
        .deadline(Duration::from_millis(50))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route_layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handle_error))
                .layer(retry),
        );
    let base = serve(app).await;
    let (status, _, body) = get_url(format!("{base}/slow")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body:?}");
}

// ---------------------------------------------------------------------------
// Quota as a server-side rate limit per API key.

#[tokio::test]
async fn quota_per_api_key_on_a_router_answers_429_with_retry_after() {
    // Three requests a minute per key; a request that would wait longer
    // than 200 ms is refused at once, and HandleErrorLayer turns the
    // `QuotaExhausted` into a 429.
    let quota = QuotaLayer::builder()
        .key(Header::new("x-api-key"))
        .declare(StaticQuota::per_minute(Resource::Requests, 3))
        .max_wait(Duration::from_millis(200))
        .build()
        .unwrap();
    let app = Router::new()
        .route("/v1/messages", post(|| async { "ok" }))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handle_error))
                .layer(quota),
        );
    let base = serve(app).await;
    let url = format!("{base}/v1/messages");
    for _ in 0..3 {
        let (status, ..) = send(http::Method::POST, url.clone(), &[("x-api-key", "a")], "").await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, headers, body) =
        send(http::Method::POST, url.clone(), &[("x-api-key", "a")], "").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body:?}");
    let retry_after: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    // Another key has its own quota.
    let (status, ..) = send(http::Method::POST, url, &[("x-api-key", "b")], "").await;
    assert_eq!(status, StatusCode::OK);
}

// ---------------------------------------------------------------------------
// Metrics on a router.

#[tokio::test]
async fn metrics_on_a_router_count_each_answer() {
    // Current-thread runtime: the server's tasks run on this thread and see
    // the thread's recorder.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/busy",
            get(|| async { (StatusCode::TOO_MANY_REQUESTS, "busy") }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handle_error))
                .layer(
                    MetricsLayer::builder()
                        .server_address("api")
                        .build()
                        .unwrap(),
                ),
        );
    let base = serve(app).await;
    for path in ["/ok", "/ok", "/busy"] {
        get_url(format!("{base}{path}")).await;
    }

    let mut counts = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() != "evenkeel.http.client.requests" {
            continue;
        }
        let status = key
            .key()
            .labels()
            .find(|l| l.key() == "http.response.status_code")
            .map(|l| l.value().to_owned())
            .unwrap();
        let DebugValue::Counter(n) = value else {
            panic!("a counter")
        };
        counts.insert(status, n);
    }
    assert_eq!(counts.get("200"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("429"), Some(&1), "{counts:?}");
}

// ---------------------------------------------------------------------------
// Failover: the preset as a route service (a gateway), and a balancer over
// handlers.

#[tokio::test]
async fn preset_as_a_route_service_fails_over_to_the_backup() {
    let primary = Sim::builder()
        .seed(1)
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let backup = Sim::builder()
        .seed(2)
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let upstream = Preset::builder()
        .named_endpoint("primary", primary.url())
        .named_endpoint("backup", backup.url())
        .deadline(Duration::from_secs(5))
        .attempt_timeout(Duration::from_secs(2))
        .max_quota_wait(Duration::from_secs(1))
        .build_http()
        .unwrap();
    let failover = upstream.failover().clone();

    // axum hands the route an `axum::body::Body`; the preset takes
    // `Full<Bytes>`: collect it first (bounded), then forward.
    let forward = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(handle_error))
        .service(tower::service_fn(move |request: Request| {
            let upstream = upstream.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await?;
                let mut out = http::Request::post(parts.uri.path()).body(Full::new(body))?;
                *out.headers_mut() = parts.headers;
                let response = tower::ServiceExt::oneshot(upstream, out).await?;
                Ok::<_, BoxError>(response.map(axum::body::Body::new))
            }
        }));
    let app = Router::new().route_service("/v1/messages", forward);
    let base = serve(app).await;
    let url = format!("{base}/v1/messages");
    let post = |id: &'static str| {
        let url = url.clone();
        async move {
            let headers = [("content-type", "application/json"), ("x-request-id", id)];
            send(http::Method::POST, url, &headers, r#"{"max_tokens":8}"#).await
        }
    };

    assert_eq!(post("a").await.0, StatusCode::OK);
    assert_eq!(primary.stats().successes_for("a"), 1);

    primary.handle().kill().await;
    let (status, _, body) = post("b").await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(backup.stats().successes_for("b"), 1);
    assert!(failover.failovers() >= 1);

    // Nothing left to fail over to: the error becomes a response.
    backup.handle().kill().await;
    let (status, _, body) = post("c").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body:?}");
}

#[tokio::test]
async fn failover_between_in_process_routers() {
    // A balancer whose endpoints are axum routers: the primary sheds load
    // with 503 + Retry-After (the limiter in respond mode), and the request
    // moves to the backup at once.
    let gate = Gate::default();
    let primary = {
        let gate = gate.clone();
        Router::new()
            .route("/work", get(move || gate.clone().pass()))
            .layer(
                LimitLayer::fixed(1)
                    .reject_immediately()
                    .respond(Respond::http())
                    .build()
                    .unwrap(),
            )
    };
    let backup = Router::new().route("/work", get(|| async { "backup" }));
    let balancer = Failover::builder()
        .endpoint(Endpoint::new("primary", primary))
        .endpoint(Endpoint::new("backup", backup).tier(1))
        .build()
        .unwrap();
    let handle = balancer.handle();
    let app = Router::new().route_service(
        "/work",
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(handle_error))
            .map_response(|r: http::Response<_>| r.map(axum::body::Body::new))
            .service(balancer),
    );
    let base = serve(app).await;

    let first = tokio::spawn(get_url(format!("{base}/work")));
    gate.entered.notified().await;
    let (status, _, body) = get_url(format!("{base}/work")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"backup"[..]));
    assert_eq!(handle.failovers(), 1);
    gate.release.notify_one();
    let (status, _, body) = first.await.unwrap();
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"passed"[..]));
}

/// The bounds `Router::layer` and `Router::route_service` put on a layered
/// service, checked for each layer over axum's `Route`.
#[test]
fn layered_routes_meet_axums_bounds() {
    fn layer_fits<L>(_: L)
    where
        L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower::Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as tower::Service<Request>>::Future: Send + 'static,
    {
    }
    let errors = || HandleErrorLayer::<_, ()>::new(handle_error);
    layer_fits(
        LimitLayer::fixed(1)
            .respond(Respond::http())
            .build()
            .unwrap(),
    );
    layer_fits(
        ServiceBuilder::new()
            .layer(errors())
            .layer(RetryLayer::new()),
    );
    layer_fits(
        ServiceBuilder::new()
            .layer(errors())
            .layer(QuotaLayer::new()),
    );
    layer_fits(
        ServiceBuilder::new()
            .layer(errors())
            .layer(MetricsLayer::new()),
    );
}
