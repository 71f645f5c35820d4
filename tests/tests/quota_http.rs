//! The quota layer in front of a real hyper client, against the sim served
//! over loopback (HTTP/1.1, real time, requests overtaking each other on
//! their connections): every request succeeds, 429s are rare (none in a
//! quiet run; a loaded machine may stall a request long enough to meet
//! one, which the retry layer outside absorbs), and the layer learned the
//! sim's quota from its Anthropic headers.
//! Also: compile-time checks that the layer's types are `Send`, `Sync` and
//! `Clone` where a client stack needs them, and that its error converts
//! into the outcome every layer reads.

use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::body::ReplayBody;
use evenkeel_core::cooldown::Cooldown;
use evenkeel_core::error::QuotaExhausted;
use evenkeel_core::{BoxError, FailureKind, Outcome, classify_error};
use evenkeel_headers::Resource;
use evenkeel_quota::{Quota, QuotaHandle, QuotaLayer, ResponseFuture};
use evenkeel_retry::RetryLayer;
use evenkeel_sim::{Dialect, Sim};
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceBuilder, ServiceExt};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paces_a_hyper_client_over_loopback() {
    // 20 requests a second, at most 5 at once.
    let server = Sim::builder()
        .requests(20.0, 5)
        .dialect(Dialect::Anthropic)
        .latency(Duration::from_millis(5))
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let layer = QuotaLayer::new();
    let handle = layer.handle();
    let client: Client<HttpConnector, ReplayBody<Full<Bytes>>> =
        Client::builder(TokioExecutor::new()).build_http();
    let retry = RetryLayer::builder().max_attempts(10).build().unwrap();
    let svc = ServiceBuilder::new()
        .layer(retry)
        .layer(layer)
        .service(client);

    let uri = format!("{}/v1/messages", server.url());
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..6 {
        let mut svc = svc.clone();
        let uri = uri.clone();
        callers.spawn(async move {
            for i in 0..5 {
                let request = Request::post(uri.as_str())
                    .header("x-request-id", format!("c{caller}-{i}"))
                    .body(Full::new(Bytes::from_static(b"{}")))
                    .unwrap();
                let response = svc.ready().await.unwrap().call(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done.unwrap();
    }

    let stats = server.stats();
    assert_eq!(stats.successes(), 30);
    let limited = stats.status_count(StatusCode::TOO_MANY_REQUESTS);
    assert!(
        limited <= 3,
        "{limited} of {} attempts met a 429",
        stats.attempts()
    );
    let key = handle.key(&server.addr().to_string()).unwrap();
    let requests = key
        .resources
        .iter()
        .find(|r| r.resource == Resource::Requests)
        .unwrap();
    assert_eq!(requests.limit, Some(5));
    server.shutdown().await;
}

fn send_sync_clone<T: Send + Sync + Clone>() {}
fn send<T: Send>() {}
fn cooldown<T: Cooldown>() {}

#[test]
fn types_fit_a_client_stack() {
    send_sync_clone::<QuotaLayer>();
    send_sync_clone::<Quota<HttpClient>>();
    send_sync_clone::<QuotaHandle>();
    send::<ResponseFuture<HttpClient, Full<Bytes>, evenkeel_quota::MemoryStore>>();
    cooldown::<QuotaHandle>();
    cooldown::<evenkeel_quota::KeyCooldown>();
}

#[tokio::test(start_paused = true)]
async fn quota_errors_read_as_local_quota_failures() {
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let err: BoxError = QuotaExhausted::new(Resource::InputTokens, Some(until))
        .with_key("api.example.com")
        .into();
    assert!(err.is::<QuotaExhausted>());
    match classify_error(&*err) {
        Outcome::Failed(f) => {
            assert_eq!(f.kind, FailureKind::LocalQuota);
            assert_eq!(f.wait, Some(Duration::from_secs(3)));
        }
        other => panic!("{other:?}"),
    }
}
