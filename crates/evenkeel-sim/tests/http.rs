//! The HTTP form over loopback, with a real hyper-util client: HTTP/1.1 and
//! HTTP/2 (prior knowledge), resets, the kill switch, graceful shutdown.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use evenkeel_sim::{Dialect, Faults, Sim, SimServer};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpStream;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn http1() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn http2() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

fn post(server: &SimServer, id: &str) -> Request<Full<Bytes>> {
    Request::post(format!("{}/v1/messages", server.url()))
        .header("x-request-id", id)
        .body(Full::new(Bytes::from_static(b"{\"messages\":[]}")))
        .unwrap()
}

async fn body_json(res: Response<Incoming>) -> serde_json::Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

async fn serve(sim: Sim) -> SimServer {
    sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn io_kinds(err: &(dyn StdError + 'static)) -> Vec<io::ErrorKind> {
    let mut kinds = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            kinds.push(io.kind());
        }
        cur = e.source();
    }
    kinds
}

/// Polls `cond` every few milliseconds for up to five seconds.
async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not met within 5 s");
}

#[tokio::test]
async fn http1_and_http2_on_one_port() {
    let server = serve(
        Sim::builder()
            .latency(Duration::ZERO)
            .requests(0.001, 10)
            .build()
            .unwrap(),
    )
    .await;
    assert!(server.url().starts_with("http://127.0.0.1:"));
    assert_ne!(server.addr().port(), 0);

    for (client, version) in [(http1(), Version::HTTP_11), (http2(), Version::HTTP_2)] {
        let id = format!("{version:?}");
        let res = client.request(post(&server, &id)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.version(), version);
        assert_eq!(res.headers()["x-request-id"], id.as_str());
        assert!(
            res.headers()
                .contains_key("anthropic-ratelimit-requests-remaining")
        );
        assert_eq!(res.headers()["content-type"], "application/json");
        let body = body_json(res).await;
        assert_eq!(body["request_id"], id.as_str());
    }
    let stats = server.stats();
    assert_eq!(stats.successes(), 2);
    assert_eq!(stats.successes_for("HTTP/2.0"), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn quota_exhaustion_over_http() {
    let server = serve(
        Sim::builder()
            .latency(Duration::ZERO)
            .requests(0.01, 2)
            .dialect(Dialect::OpenAi)
            .retry_after_ms(true)
            .build()
            .unwrap(),
    )
    .await;
    let client = http1();
    for _ in 0..2 {
        assert_eq!(
            client.request(post(&server, "a")).await.unwrap().status(),
            200
        );
    }
    let res = client.request(post(&server, "b")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // One request at 0.01 per second: about 100 s, rounded up.
    assert!((99..=100).contains(&retry), "{retry}");
    let retry_ms: u64 = res.headers()["retry-after-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (retry - 1) * 1000 < retry_ms && retry_ms <= retry * 1000,
        "{retry_ms}"
    );
    assert_eq!(res.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(body_json(res).await["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn many_concurrent_streams_over_one_http2_connection() {
    let server = serve(
        Sim::builder()
            .latency(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .await;
    let client = http2();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (client, req) = (client.clone(), post(&server, &format!("s{i}")));
        calls.spawn(async move { client.request(req).await.map(|r| r.status()) });
    }
    while let Some(res) = calls.join_next().await {
        assert_eq!(res.unwrap().unwrap(), StatusCode::OK);
    }
    let stats = server.stats();
    assert_eq!(stats.successes(), 20);
    // All twenty were sent at once and each took 200 ms: they overlapped.
    assert!(stats.max_in_flight() >= 10, "{}", stats.max_in_flight());
    assert!(stats.duplicates().is_empty());
}

#[tokio::test]
async fn an_injected_reset_drops_the_http1_connection_with_a_rst() {
    let server = serve(
        Sim::builder()
            .latency(Duration::ZERO)
            .faults(Faults::none().reset(1.0))
            .build()
            .unwrap(),
    )
    .await;
    let err = http1().request(post(&server, "r")).await.unwrap_err();
    let kinds = io_kinds(&err);
    assert!(
        kinds.contains(&io::ErrorKind::ConnectionReset),
        "{err:?}: {kinds:?}"
    );
    let stats = server.stats();
    assert_eq!(stats.resets(), 1);
    assert_eq!(stats.responses(), 0);
}

#[tokio::test]
async fn an_injected_reset_on_http2_resets_only_its_stream() {
    let server = serve(
        Sim::builder()
            .latency(Duration::ZERO)
            .faults(Faults::none().reset(1.0))
            .build()
            .unwrap(),
    )
    .await;
    let client = http2();
    let err = client.request(post(&server, "r")).await.unwrap_err();
    assert!(err.source().is_some(), "{err:?}");
    server.handle().set_faults(Faults::none()).unwrap();
    // The same connection carries on.
    let res = client.request(post(&server, "ok")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), Version::HTTP_2);
    assert_eq!(server.stats().resets(), 1);
}

#[tokio::test]
async fn kill_refuses_connections_and_revive_comes_back_on_the_same_port() {
    let server = serve(Sim::builder().latency(Duration::ZERO).build().unwrap()).await;
    let addr = server.addr();
    let handle = server.handle();
    let client = http1();
    assert_eq!(
        client.request(post(&server, "1")).await.unwrap().status(),
        200
    );

    handle.kill().await;
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    // The pooled keep-alive connection was dropped too (the client may try
    // it once before it notices); new connections are refused.
    assert!(client.request(post(&server, "2")).await.is_err());
    let err = client.request(post(&server, "2")).await.unwrap_err();
    assert!(
        io_kinds(&err).contains(&io::ErrorKind::ConnectionRefused),
        "{err:?}"
    );

    handle.revive().await.unwrap();
    assert_eq!(server.addr(), addr);
    TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        client.request(post(&server, "3")).await.unwrap().status(),
        200
    );
    assert_eq!(
        http2().request(post(&server, "4")).await.unwrap().status(),
        200
    );

    // Killed and revived again: still the same port.
    handle.kill().await;
    assert!(TcpStream::connect(addr).await.is_err());
    handle.revive().await.unwrap();
    assert_eq!(
        client.request(post(&server, "5")).await.unwrap().status(),
        200
    );
    assert_eq!(server.stats().successes(), 4);
}

#[tokio::test]
async fn kill_aborts_http_requests_in_flight() {
    let server = serve(
        Sim::builder()
            .latency(Duration::from_secs(30))
            .build()
            .unwrap(),
    )
    .await;
    let handle = server.handle();
    let mut calls = tokio::task::JoinSet::new();
    for (i, client) in [http1(), http2()].into_iter().enumerate() {
        let req = post(&server, &format!("doomed-{i}"));
        calls.spawn(async move { client.request(req).await });
    }
    let stats = server.handle();
    eventually(|| stats.stats().in_flight() == 2).await;
    handle.kill().await;
    while let Some(res) = calls.join_next().await {
        assert!(res.unwrap().is_err(), "a killed request gets no answer");
    }
    let stats = server.stats();
    assert_eq!(stats.aborted(), 2);
    assert_eq!(stats.successes(), 0);
    assert_eq!(stats.in_flight(), 0);
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight_then_closes_the_port() {
    let server = serve(
        Sim::builder()
            .latency(Duration::from_millis(300))
            .build()
            .unwrap(),
    )
    .await;
    let addr = server.addr();
    let handle = server.handle();
    let client = http1();
    let req = post(&server, "last");
    let call = tokio::spawn(async move { client.request(req).await.map(|r| r.status()) });
    eventually(|| handle.stats().in_flight() == 1).await;
    server.shutdown().await;
    assert_eq!(call.await.unwrap().unwrap(), StatusCode::OK);
    assert!(TcpStream::connect(addr).await.is_err());
    assert_eq!(handle.stats().successes_for("last"), 1);
}

#[tokio::test]
async fn dropping_the_server_closes_the_port() {
    let server = serve(Sim::builder().build().unwrap()).await;
    let addr = server.addr();
    TcpStream::connect(addr).await.unwrap();
    drop(server);
    for _ in 0..1_000 {
        if TcpStream::connect(addr).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("still accepting 5 s after the drop");
}

#[tokio::test]
async fn oversized_bodies_get_413_over_http() {
    let server = serve(
        Sim::builder()
            .latency(Duration::ZERO)
            .max_body_bytes(1_024)
            .build()
            .unwrap(),
    )
    .await;
    let req = Request::post(server.url())
        .body(Full::new(Bytes::from(vec![b'x'; 100_000])))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
