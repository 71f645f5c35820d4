//! What the preset costs a reqwest user, over loopback, all in one run:
//! one POST to an `evenkeel-sim` server on 127.0.0.1 (no latency, no
//! quota, no faults), sent by
//!
//! - a bare `reqwest::Client` (the baseline),
//! - the preset on that client ([`ReqwestConnector`]),
//! - a `ClientWithMiddleware` with no middleware,
//! - a `ClientWithMiddleware` with [`EvenkeelMiddleware`],
//! - the preset on the hyper-util client ([`HyperConnector`]), for
//!   reference.
//!
//! Each iteration sends one request and reads its body whole, inside a
//! current-thread tokio runtime (the server runs on its own runtime
//! thread). Ratios against the bare client are what to read; absolute
//! figures move with the machine.
//!
//! Run: `cargo bench -p evenkeel --features reqwest-middleware --bench reqwest`.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use evenkeel::{EvenkeelMiddleware, HyperConnector, Preset, ReqwestConnector};
use evenkeel_sim::Sim;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

const BODY: &[u8] =
    br#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#;

fn request() -> http::Request<Full<Bytes>> {
    http::Request::post("/v1/messages")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(BODY)))
        .unwrap()
}

fn loopback(c: &mut Criterion) {
    // The server, on a runtime of its own.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = server_rt.block_on(async {
        Sim::builder()
            .latency(std::time::Duration::ZERO)
            .build()
            .unwrap()
            .serve("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    });
    let base = server.url();
    let url = format!("{base}/v1/messages");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = evenkeel::reqwest_client_builder().build().unwrap();
    let connector_preset = Preset::builder()
        .endpoint(base.clone())
        .build(ReqwestConnector::new(client.clone()))
        .unwrap();
    let plain_middleware = reqwest_middleware::ClientBuilder::new(client.clone()).build();
    let evenkeel_middleware = reqwest_middleware::ClientBuilder::new(client.clone())
        .with(EvenkeelMiddleware::new(Preset::builder().endpoint(base.clone())).unwrap())
        .build();
    let hyper_preset = Preset::builder()
        .endpoint(base.clone())
        .build(HyperConnector::http())
        .unwrap();

    let mut group = c.benchmark_group("reqwest_loopback_post");
    group.bench_function("reqwest_bare", |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(Bytes::from_static(BODY))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
                response.bytes().await.unwrap()
            })
        })
    });
    group.bench_function("preset_on_reqwest_connector", |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = connector_preset.clone().oneshot(request()).await.unwrap();
                assert!(response.status().is_success());
                response.into_body().collect().await.unwrap().to_bytes()
            })
        })
    });
    group.bench_function("reqwest_middleware_bare", |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = plain_middleware
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(Bytes::from_static(BODY))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
                response.bytes().await.unwrap()
            })
        })
    });
    group.bench_function("evenkeel_middleware", |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = evenkeel_middleware
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(Bytes::from_static(BODY))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
                response.bytes().await.unwrap()
            })
        })
    });
    group.bench_function("preset_on_hyper_connector", |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = hyper_preset.clone().oneshot(request()).await.unwrap();
                assert!(response.status().is_success());
                response.into_body().collect().await.unwrap().to_bytes()
            })
        })
    });
    group.finish();
    drop(rt);
    server_rt.block_on(server.shutdown());
}

criterion_group!(benches, loopback);
criterion_main!(benches);
