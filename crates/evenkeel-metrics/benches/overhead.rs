//! Per-call overhead of the metrics layer against the bare service, in one
//! run: with no recorder installed (the facade's no-op recorder), with
//! metrics-exporter-prometheus's recorder, and with the Prometheus recorder
//! on responses with ordinary headers and with rate-limit headers (each
//! against the bare service answering the same headers).
//!
//! Run: `cargo bench -p evenkeel-metrics --bench overhead`.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use evenkeel_metrics::{MetricsLayer, Naming, Scope};
use http::{HeaderMap, HeaderValue, Request, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tower::{Layer, Service};

/// An always-ready in-memory service answering 200 with a copy of its
/// headers.
#[derive(Clone)]
struct Ok200 {
    headers: HeaderMap,
}

impl<B> Service<Request<B>> for Ok200 {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        drop(req);
        let mut res = Response::new(());
        if !self.headers.is_empty() {
            *res.headers_mut() = self.headers.clone();
        }
        ready(Ok(res))
    }
}

fn plain() -> Ok200 {
    Ok200 {
        headers: HeaderMap::new(),
    }
}

/// Five ordinary response headers, none about rate limits.
fn ordinary() -> Ok200 {
    let mut headers = HeaderMap::new();
    for (k, v) in ORDINARY {
        headers.insert(*k, HeaderValue::from_static(v));
    }
    Ok200 { headers }
}

const ORDINARY: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("content-length", "412"),
    ("date", "Thu, 01 Jan 2026 00:00:00 GMT"),
    ("server", "cloudflare"),
    ("request-id", "req_011CUmx4BhWk9ZfK1vYrhz2T"),
];

/// The ordinary headers and OpenAI's six rate-limit headers.
fn openai() -> Ok200 {
    let mut headers = ordinary().headers;
    for (k, v) in [
        ("x-ratelimit-limit-requests", "5000"),
        ("x-ratelimit-remaining-requests", "4999"),
        ("x-ratelimit-reset-requests", "12ms"),
        ("x-ratelimit-limit-tokens", "800000"),
        ("x-ratelimit-remaining-tokens", "799900"),
        ("x-ratelimit-reset-tokens", "7ms"),
    ] {
        headers.insert(k, HeaderValue::from_static(v));
    }
    Ok200 { headers }
}

fn request() -> Request<()> {
    Request::post("https://api.example.com/v1/messages")
        .header("content-type", "application/json")
        .header("x-api-key", "sk-test")
        .body(())
        .unwrap()
}

fn drive<S>(svc: &mut S, req: Request<()>)
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let future = pin!(svc.call(req));
    match future.poll(&mut cx) {
        Poll::Ready(res) => drop(std::hint::black_box(res.expect("no error"))),
        Poll::Pending => unreachable!("always ready"),
    }
}

fn bench(
    c: &mut Criterion,
    name: &str,
    mut svc: impl Service<Request<()>, Response = Response<()>, Error: std::fmt::Debug>,
) {
    c.bench_function(name, |b| {
        b.iter_batched(request, |req| drive(&mut svc, req), BatchSize::SmallInput)
    });
}

fn overhead(c: &mut Criterion) {
    bench(c, "bare service", plain());
    bench(
        c,
        "metrics, no-op recorder",
        MetricsLayer::new().layer(plain()),
    );

    let mut builder = PrometheusBuilder::new().with_recommended_naming(true);
    for (name, buckets) in Naming::OPEN_TELEMETRY.histogram_buckets() {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            .unwrap();
    }
    let recorder = builder.build_recorder();
    metrics::with_local_recorder(&recorder, || {
        // Layers made here resolve their handles against this recorder.
        let layer = MetricsLayer::new();
        let fixed = MetricsLayer::builder()
            .server_address("api.example.com")
            .build()
            .unwrap();
        let attempts = MetricsLayer::builder()
            .scope(Scope::Attempt)
            .build()
            .unwrap();
        bench(c, "metrics, prometheus", layer.layer(plain()));
        bench(
            c,
            "metrics, prometheus, fixed server.address",
            fixed.layer(plain()),
        );
        bench(
            c,
            "metrics, prometheus, attempt scope",
            attempts.layer(plain()),
        );
        bench(c, "bare service, ordinary headers", ordinary());
        bench(
            c,
            "metrics, prometheus, ordinary headers",
            layer.layer(ordinary()),
        );
        bench(c, "bare service, openai rate-limit headers", openai());
        bench(
            c,
            "metrics, prometheus, openai rate-limit headers",
            layer.layer(openai()),
        );
    });
}

criterion_group!(benches, overhead);
criterion_main!(benches);
