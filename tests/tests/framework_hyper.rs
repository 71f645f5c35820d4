//! The preset on hyper-util's legacy client, over HTTP/1.1 and HTTP/2
//! (prior knowledge), against the simulated API on loopback.

use std::time::Duration;

use bytes::Bytes;
use evenkeel::{HttpClient, HyperConnector, Preset};
use evenkeel_core::BoxError;
use evenkeel_retry::RetryInfo;
use evenkeel_sim::{Dialect, Faults, Sim, SimServer};
use http::{StatusCode, Version};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};

fn post(id: String) -> http::Request<Full<Bytes>> {
    http::Request::post("/v1/messages")
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .body(Full::new(Bytes::from_static(br#"{"max_tokens":16}"#)))
        .unwrap()
}

async fn sim(builder: evenkeel_sim::SimBuilder) -> SimServer {
    builder
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A connector that speaks HTTP/2 with prior knowledge (h2c).
fn http2() -> HyperConnector {
    let mut connector = HyperConnector::http();
    connector.builder_mut().http2_only(true);
    connector
}

/// Sends `n` requests, `callers` at a time, through `client`; returns each
/// response's status, HTTP version and body, in request order.
async fn drive<S>(client: S, n: usize, callers: usize) -> Vec<(StatusCode, Version, Bytes)>
where
    S: Service<
            http::Request<Full<Bytes>>,
            Response = http::Response<evenkeel::PresetBody<hyper::body::Incoming>>,
            Error = BoxError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let mut results = Vec::with_capacity(n);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        if tasks.len() == callers {
            results.push(tasks.join_next().await.unwrap().unwrap());
        }
        let client = client.clone();
        tasks.spawn(async move {
            let response = client.oneshot(post(format!("req-{i}"))).await.unwrap();
            let (status, version) = (response.status(), response.version());
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (i, status, version, body)
        });
    }
    while let Some(done) = tasks.join_next().await {
        results.push(done.unwrap());
    }
    results.sort_by_key(|r| r.0);
    results.into_iter().map(|(_, s, v, b)| (s, v, b)).collect()
}

#[tokio::test]
async fn preset_over_http1() {
    let server = sim(Sim::builder().seed(1)).await;
    let client: Preset<HttpClient> = Preset::builder()
        .endpoint(server.url())
        .build_http()
        .unwrap();
    let results = drive(client, 20, 4).await;
    for (i, (status, version, body)) in results.iter().enumerate() {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(*version, Version::HTTP_11);
        // The sim echoes the request id: each answer is its own request's.
        let id = format!("req-{i}");
        assert!(std::str::from_utf8(body).unwrap().contains(&id), "{body:?}");
    }
    assert_eq!(server.stats().successes(), 20);
    server.shutdown().await;
}

#[tokio::test]
async fn preset_over_http2_prior_knowledge() {
    let server = sim(Sim::builder().seed(2).latency(Duration::from_millis(20))).await;
    let client = Preset::builder()
        .endpoint(server.url())
        .build(http2())
        .unwrap();
    let results = drive(client, 32, 16).await;
    for (i, (status, version, body)) in results.iter().enumerate() {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(*version, Version::HTTP_2);
        let id = format!("req-{i}");
        assert!(std::str::from_utf8(body).unwrap().contains(&id), "{body:?}");
    }
    let stats = server.stats();
    assert_eq!(stats.successes(), 32);
    // Multiplexed: requests overlapped on the connection.
    assert!(stats.max_in_flight() > 1, "{}", stats.max_in_flight());
    server.shutdown().await;
}

#[tokio::test]
async fn preset_over_http2_waits_out_429s_and_529s_without_duplicates() {
    // A tight request quota (the preset paces it, and retries the 429s it
    // cannot avoid after the server's wait) and 20 % `529 overloaded`
    // answers (retried: the server says `x-should-retry: true`).
    let server = sim(Sim::builder()
        .requests(100.0, 5)
        .dialect(Dialect::Anthropic)
        .faults(Faults::none().overloaded(0.2))
        .seed(3))
    .await;
    let client = Preset::builder()
        .endpoint(server.url())
        .max_attempts(5)
        .seed(4)
        .build(http2())
        .unwrap();
    let handle = client.clone();
    let results = drive(client, 40, 8).await;
    assert!(
        results
            .iter()
            .all(|(s, v, _)| *s == StatusCode::OK && *v == Version::HTTP_2),
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    let stats = server.stats();
    assert_eq!(stats.successes(), 40);
    assert!(stats.duplicates().is_empty(), "{:?}", stats.duplicates());
    // Some attempts were pushed back and retried.
    assert!(stats.attempts() > 40, "{}", stats.attempts());
    assert!(stats.status_count(StatusCode::from_u16(529).unwrap()) > 0);
    assert!(!handle.quotas().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn preset_over_http2_fails_over_to_a_backup_and_reports_attempts() {
    let primary = sim(Sim::builder().seed(5)).await;
    let backup = sim(Sim::builder().seed(6)).await;
    let client = Preset::builder()
        .named_endpoint("primary", primary.url())
        .named_endpoint("backup", backup.url())
        .build(http2())
        .unwrap();

    let response = client.clone().oneshot(post("warm".into())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(primary.stats().successes_for("warm"), 1);

    // The primary goes away: connections are refused, the request was
    // never sent, so even a POST moves to the backup at once, within one
    // retry-layer attempt.
    primary.handle().kill().await;
    let response = client.clone().oneshot(post("moved".into())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(RetryInfo::of(&response).attempts, 1);
    assert_eq!(backup.stats().successes_for("moved"), 1);
    assert!(client.failover().failovers() >= 1);
    primary.shutdown().await;
    backup.shutdown().await;
}
