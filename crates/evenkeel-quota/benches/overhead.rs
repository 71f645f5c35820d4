//! Per-call overhead of the quota layer when quota is plentiful, against the
//! bare service, in one run: with responses that carry no rate-limit
//! headers, and with responses that carry OpenAI's (the layer then parses
//! and learns from them on every response).
//!
//! Run: `cargo bench -p evenkeel-quota --bench overhead`.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use evenkeel_quota::QuotaLayer;
use futures_util::FutureExt;
use http::{HeaderMap, HeaderValue, Request, Response};
use tower::{Layer, Service};

/// An always-ready in-memory service answering 200 with a copy of its
/// headers; with `count_down`, its `x-ratelimit-remaining-requests` goes
/// down by one per request, as a real server's does.
#[derive(Clone)]
struct Ok200 {
    headers: Arc<HeaderMap>,
    count_down: Option<Arc<AtomicU64>>,
}

impl<B> Service<Request<B>> for Ok200 {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        drop(req);
        let mut response = Response::new(());
        if !self.headers.is_empty() {
            *response.headers_mut() = HeaderMap::clone(&self.headers);
        }
        if let Some(left) = &self.count_down {
            let left = left.fetch_sub(1, Ordering::Relaxed);
            response
                .headers_mut()
                .insert("x-ratelimit-remaining-requests", HeaderValue::from(left));
        }
        ready(Ok(response))
    }
}

fn openai_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-ratelimit-limit-requests", "1000000000000"),
        ("x-ratelimit-reset-requests", "6ms"),
        ("x-ratelimit-limit-tokens", "2000000"),
        ("x-ratelimit-remaining-tokens", "1999000"),
        ("x-ratelimit-reset-tokens", "30ms"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
}

fn request() -> Request<()> {
    Request::post("http://api.example.com/v1/messages")
        .header("content-type", "application/json")
        .body(())
        .unwrap()
}

fn drive<S>(svc: &mut S, req: Request<()>)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let res = svc.call(req).now_or_never().expect("always ready");
    std::hint::black_box(res.expect("no error"));
}

fn overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("quota");
    for (label, headers, count_down) in [
        ("no rate-limit headers", HeaderMap::new(), false),
        ("OpenAI headers", openai_headers(), true),
    ] {
        let bare = Ok200 {
            headers: Arc::new(headers),
            count_down: count_down.then(|| Arc::new(AtomicU64::new(999_999_999_999))),
        };
        group.bench_function(format!("bare service, {label}"), |b| {
            let mut svc = bare.clone();
            b.iter_batched(
                request,
                |req| drive(&mut svc, req),
                criterion::BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("quota layer, {label}"), |b| {
            let mut svc = QuotaLayer::new().layer(bare.clone());
            b.iter_batched(
                request,
                |req| drive(&mut svc, req),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
