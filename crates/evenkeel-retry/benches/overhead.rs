//! Per-call overhead of the retry layer when nothing goes wrong, against the
//! bare service and tower's own `Retry` with a trivial policy, in one run.
//!
//! Run: `cargo bench -p evenkeel-retry --bench overhead`.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use evenkeel_retry::{RetryBudget, RetryLayer};
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::Full;
use tower::{Layer, Service};

/// An always-ready in-memory service answering 200 with an empty body.
#[derive(Clone, Copy)]
struct Ok200;

impl<B> Service<Request<B>> for Ok200 {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        drop(req);
        ready(Ok(Response::new(Full::new(Bytes::new()))))
    }
}

/// tower's `Retry` with the simplest policy that can retry: clone every
/// request, retry nothing that succeeded.
#[derive(Clone, Copy)]
struct Trivial;

impl<Res, E> tower::retry::Policy<Request<Full<Bytes>>, Res, E> for Trivial {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        _: &mut Request<Full<Bytes>>,
        result: &mut Result<Res, E>,
    ) -> Option<Self::Future> {
        result.is_err().then(|| ready(()))
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        Some(req.clone())
    }
}

fn request() -> Request<Full<Bytes>> {
    Request::post("http://api.example.com/v1/messages")
        .header("content-type", "application/json")
        .header("x-api-key", "sk-test")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#,
        )))
        .unwrap()
}

fn drive<S>(svc: &mut S, req: Request<Full<Bytes>>)
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let res = svc.call(req).now_or_never().expect("always ready");
    std::hint::black_box(res.expect("no error"));
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();

    let mut group = c.benchmark_group("retry_overhead");
    group.bench_function("bare", |b| {
        let mut svc = Ok200;
        b.iter_batched(
            request,
            |req| drive(&mut svc, req),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("tower_retry", |b| {
        let mut svc = tower::retry::Retry::new(Trivial, Ok200);
        b.iter_batched(
            request,
            |req| drive(&mut svc, req),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("evenkeel_retry", |b| {
        let mut svc = RetryLayer::new().layer(Ok200);
        b.iter_batched(
            request,
            |req| drive(&mut svc, req),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("evenkeel_retry_no_budget", |b| {
        let layer = RetryLayer::builder()
            .budget(RetryBudget::unlimited())
            .build()
            .unwrap();
        let mut svc = layer.layer(Ok200);
        b.iter_batched(
            request,
            |req| drive(&mut svc, req),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("evenkeel_retry_deadline_and_timeout", |b| {
        let layer = RetryLayer::builder()
            .deadline(Duration::from_secs(30))
            .attempt_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut svc = layer.layer(Ok200);
        b.iter_batched(
            request,
            |req| drive(&mut svc, req),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
