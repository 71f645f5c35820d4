//! End to end: the retry layer on a real hyper-util client, against the
//! simulated API over loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::event::Event;
use evenkeel_core::{BoxError, FailureKind, Outcome};
use evenkeel_retry::{Backoff, RetryBudget, RetryInfo, RetryLayer};
use evenkeel_sim::{Faults, Sim};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

type HttpClient = Client<
    hyper_util::client::legacy::connect::HttpConnector,
    evenkeel_core::body::ReplayBody<Full<Bytes>>,
>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn request(method: http::Method, url: &str, id: usize) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(format!("{url}/v1/messages"))
        .header("x-request-id", format!("req-{id}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"max_tokens":16}"#)))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_with_retry_after_ends_with_every_request_served_once() {
    // 20 requests per second, burst 5; 30 callers at once.
    let server = Sim::builder()
        .requests(20.0, 5)
        .retry_after_ms(true)
        .latency(Duration::from_millis(2))
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let layer = RetryLayer::builder()
        .max_attempts(20)
        .budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    let svc = layer.layer(client());
    let url = server.url();
    let mut tasks = Vec::new();
    for id in 0..30 {
        let svc = svc.clone();
        let req = request(http::Method::POST, &url, id);
        tasks.push(tokio::spawn(async move { svc.oneshot(req).await }));
    }
    let mut retried = 0;
    for t in tasks {
        let res = t.await.unwrap().expect("no transport error");
        assert_eq!(res.status(), 200);
        if RetryInfo::of(&res).attempts > 1 {
            retried += 1;
        }
        res.into_body().collect().await.unwrap();
    }
    let stats = server.stats();
    assert_eq!(stats.successes(), 30);
    assert!(stats.duplicates().is_empty(), "{:?}", stats.duplicates());
    assert!(stats.status_count(http::StatusCode::TOO_MANY_REQUESTS) > 0);
    assert!(retried > 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overloaded_529_with_should_retry_is_retried_for_post() {
    let server = Sim::builder()
        .faults(Faults::none().overloaded(0.25))
        .latency(Duration::from_millis(1))
        .seed(7)
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let layer = RetryLayer::builder()
        .max_attempts(8)
        .backoff(Backoff::constant(Duration::from_millis(5)))
        .budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    let svc = layer.layer(client());
    let url = server.url();
    let mut ok = 0;
    for id in 0..60 {
        let res = svc
            .clone()
            .oneshot(request(http::Method::POST, &url, id))
            .await
            .expect("no transport error");
        // A request that met 529 eight times in a row (p = 0.25^8) comes
        // back as the last 529, having used every attempt.
        match res.status().as_u16() {
            200 => ok += 1,
            529 => assert_eq!(RetryInfo::of(&res).attempts, 8),
            other => panic!("unexpected status {other}"),
        }
    }
    let stats = server.stats();
    assert!(ok >= 59, "{ok} of 60 succeeded");
    assert!(stats.status_count(http::StatusCode::from_u16(529).unwrap()) > 0);
    assert!(stats.attempts() > 60, "529s were retried");
    assert!(stats.duplicates().is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_are_retried_for_get_but_not_for_post() {
    let server = Sim::builder()
        .faults(Faults::none().reset(0.3))
        .latency(Duration::from_millis(1))
        .seed(11)
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let layer = RetryLayer::builder()
        .max_attempts(10)
        .backoff(Backoff::constant(Duration::from_millis(2)))
        .budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    let svc = layer.layer(client());
    let url = server.url();

    for id in 0..40 {
        let res = svc
            .clone()
            .oneshot(request(http::Method::GET, &url, id))
            .await
            .expect("GETs are retried through resets");
        assert_eq!(res.status(), 200);
    }

    let mut failed = 0;
    for id in 100..140 {
        match svc
            .clone()
            .oneshot(request(http::Method::POST, &url, id))
            .await
        {
            Ok(res) => assert_eq!(res.status(), 200),
            Err(error) => {
                failed += 1;
                let outcome = evenkeel_core::classify_error(&*error);
                assert!(
                    matches!(outcome, Outcome::Failed(f) if !outcome.never_sent() && f.kind == FailureKind::ConnectionReset),
                    "{error}: {outcome:?}"
                );
            }
        }
    }
    let stats = server.stats();
    assert!(failed > 0, "some POSTs met a reset");
    for id in 100..140 {
        assert_eq!(
            stats.attempts_for(&format!("req-{id}")),
            1,
            "a POST that may have been processed is never sent twice"
        );
    }
    assert!(stats.duplicates().is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_listening_is_retried_even_for_post() {
    // A port that was just free: nothing listens there.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let attempts = Arc::new(AtomicU32::new(1));
    let counter = attempts.clone();
    let layer = RetryLayer::builder()
        .max_attempts(4)
        .backoff(Backoff::constant(Duration::from_millis(5)))
        .on_event(move |e: &Event<'_>| {
            if let Event::Retry { outcome, .. } = e {
                assert!(outcome.never_sent(), "{outcome:?}");
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
        .unwrap();
    let svc = layer.layer(client());
    let err: BoxError = svc
        .oneshot(request(http::Method::POST, &format!("http://{addr}"), 1))
        .await
        .unwrap_err();
    match evenkeel_core::classify_error(&*err) {
        Outcome::Failed(f) => assert_eq!(f.kind, FailureKind::ConnectionRefused, "{err}"),
        other => panic!("{other:?}: {err}"),
    }
    assert_eq!(attempts.load(Ordering::Relaxed), 4);
}
