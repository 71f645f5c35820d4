//! Per-call overhead of the failover balancer when nothing goes wrong, with
//! 2 tiers × 3 endpoints, against tower's power-of-two-choices balancer
//! (`tower::balance::p2c`) over the same six endpoints and against calling
//! one endpoint directly, in one run.
//!
//! Run: `cargo bench -p evenkeel-failover --bench overhead`.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use evenkeel_failover::{Endpoint, Failover, Selection};
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::Full;
use tower::Service;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequests};

/// An always-ready in-memory endpoint answering 200 with an empty body.
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

fn get() -> Request<Full<Bytes>> {
    Request::get("/v1/models")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn post() -> Request<Full<Bytes>> {
    Request::post("/v1/messages")
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

fn failover(selection: Selection) -> Failover<Ok200> {
    Failover::builder()
        .endpoints((0..6).map(|i| Endpoint::new(format!("e{i}"), Ok200).tier(i / 3)))
        .selection(selection)
        .build()
        .unwrap()
}

fn p2c() -> Balance<ServiceList<Vec<PendingRequests<Ok200>>>, Request<Full<Bytes>>> {
    let endpoints: Vec<PendingRequests<Ok200>> = (0..6)
        .map(|_| PendingRequests::new(Ok200, CompleteOnResponse::default()))
        .collect();
    Balance::new(ServiceList::new::<Request<Full<Bytes>>>(endpoints))
}

fn bench(c: &mut Criterion) {
    for (name, make) in [("get", get as fn() -> Request<Full<Bytes>>), ("post", post)] {
        let mut group = c.benchmark_group(format!("per_call/{name}"));
        group.bench_function("endpoint alone", |b| {
            let mut svc = Ok200;
            b.iter_batched(make, |req| drive(&mut svc, req), BatchSize::SmallInput)
        });
        group.bench_function("tower p2c, 6 endpoints", |b| {
            let mut svc = p2c();
            b.iter_batched(make, |req| drive(&mut svc, req), BatchSize::SmallInput)
        });
        group.bench_function("failover p2c, 2 tiers x 3", |b| {
            let mut svc = failover(Selection::PowerOfTwoChoices);
            b.iter_batched(make, |req| drive(&mut svc, req), BatchSize::SmallInput)
        });
        group.bench_function("failover p2c, 2 tiers x 3, cloned per call", |b| {
            // As under a retry layer, which clones its inner service per call.
            let svc = failover(Selection::PowerOfTwoChoices);
            b.iter_batched(
                make,
                |req| drive(&mut svc.clone(), req),
                BatchSize::SmallInput,
            )
        });
        group.bench_function("failover round robin, 2 tiers x 3", |b| {
            let mut svc = failover(Selection::RoundRobin);
            b.iter_batched(make, |req| drive(&mut svc, req), BatchSize::SmallInput)
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
