//! What the routed connector costs a request that goes direct: the preset
//! over `RoutedConnector::http()` (what `build_http()` uses, able to route
//! through proxies) against the same preset over `HyperConnector::http()`
//! and against a bare hyper-util client, all in one run.
//!
//! One `evenkeel-sim` server on a loopback port, answering at once, one pooled HTTP/1.1
//! connection per client (the first request opens it before measuring), so
//! each iteration is one request and answer over loopback: the difference
//! between the two presets is the routed connector's per-request cost (a
//! branch per read and write of the connection). Results:
//! `docs/bench/routes.md`.
//!
//! Run: `cargo bench -p evenkeel --bench routes`.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use evenkeel::{HyperConnector, Preset, RoutedConnector};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceExt};

fn request() -> Request<Full<Bytes>> {
    Request::post("/v1/messages")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"max_tokens":16}"#)))
        .unwrap()
}

async fn send<S, B>(client: &mut S, request: Request<Full<Bytes>>)
where
    S: Service<Request<Full<Bytes>>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.unwrap();
}

fn routes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(async {
        evenkeel_sim::Sim::builder()
            .latency(std::time::Duration::ZERO)
            .build()
            .unwrap()
            .serve("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    });
    let url = server.url();

    let mut bare = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let bare_url = format!("{url}/v1/messages");
    let mut hyper = Preset::builder()
        .endpoint(&url)
        .build(HyperConnector::http())
        .unwrap();
    let mut routed = Preset::builder()
        .endpoint(&url)
        .no_proxy_env()
        .build(RoutedConnector::http())
        .unwrap();
    let absolute = || {
        let mut r = request();
        *r.uri_mut() = bare_url.parse().unwrap();
        r
    };
    // Open each client's connection before measuring.
    rt.block_on(async {
        send(&mut bare, absolute()).await;
        send(&mut hyper, request()).await;
        send(&mut routed, request()).await;
    });

    let mut group = c.benchmark_group("loopback request, direct");
    group.bench_function("bare hyper-util client", |b| {
        b.iter(|| rt.block_on(send(&mut bare, absolute())))
    });
    group.bench_function("preset over HyperConnector", |b| {
        b.iter(|| rt.block_on(send(&mut hyper, request())))
    });
    group.bench_function("preset over RoutedConnector", |b| {
        b.iter(|| rt.block_on(send(&mut routed, request())))
    });
    group.finish();
}

criterion_group!(benches, routes);
criterion_main!(benches);
