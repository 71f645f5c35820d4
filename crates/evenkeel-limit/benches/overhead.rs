//! Per-call overhead of the limiters on an always-ready in-memory service,
//! against the bare service and tower's `ConcurrencyLimit` in the same run.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use evenkeel_limit::{Aimd, Gradient, LimitLayer, Vegas};
use http::{Request, Response};
use tower::limit::ConcurrencyLimit;
use tower::{Layer, Service};

/// Answers every request at once.
#[derive(Clone, Copy)]
struct Instant200;

impl Service<Request<()>> for Instant200 {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(())))
    }
}

/// One call: ready, call, complete; the service is always ready, so no
/// executor is needed.
#[inline]
fn once<S, B>(svc: &mut S, cx: &mut Context<'_>)
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    match svc.poll_ready(cx) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => unreachable!("always ready"),
    }
    let fut = pin!(svc.call(Request::new(())));
    match fut.poll(cx) {
        Poll::Ready(r) => {
            black_box(r.unwrap());
        }
        Poll::Pending => unreachable!("always ready"),
    }
}

fn bench(c: &mut Criterion) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut group = c.benchmark_group("per_call");

    let mut bare = Instant200;
    group.bench_function("bare", |b| b.iter(|| once(&mut bare, &mut cx)));

    let mut tower_limit = ConcurrencyLimit::new(Instant200, 64);
    group.bench_function("tower_concurrency_limit", |b| {
        b.iter(|| once(&mut tower_limit, &mut cx))
    });

    let mut fixed = LimitLayer::fixed(64).build().unwrap().layer(Instant200);
    group.bench_function("evenkeel_fixed", |b| b.iter(|| once(&mut fixed, &mut cx)));

    let aimd = Aimd::builder().min_limit(1).build().unwrap();
    let mut aimd = LimitLayer::adaptive(aimd)
        .build()
        .unwrap()
        .layer(Instant200);
    group.bench_function("evenkeel_aimd", |b| b.iter(|| once(&mut aimd, &mut cx)));

    let mut gradient = LimitLayer::adaptive(Gradient::default())
        .build()
        .unwrap()
        .layer(Instant200);
    group.bench_function("evenkeel_gradient", |b| {
        b.iter(|| once(&mut gradient, &mut cx))
    });

    let mut vegas = LimitLayer::adaptive(Vegas::default())
        .build()
        .unwrap()
        .layer(Instant200);
    group.bench_function("evenkeel_vegas", |b| b.iter(|| once(&mut vegas, &mut cx)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
