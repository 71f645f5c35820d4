//! Allocations per call on the path every healthy request takes: counted
//! with dhat's global allocator, in a binary of its own with a single test,
//! so nothing else allocates meanwhile.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use evenkeel_failover::{Endpoint, Failover};
use http::{Request, Response};
use http_body_util::Full;
use tower::Service;

use evenkeel_alloc_count::{blocks_while, least};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// An always-ready endpoint that allocates nothing.
#[derive(Clone, Copy, Debug)]
struct Ok200;

impl<B> Service<Request<B>> for Ok200 {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        drop(request);
        ready(Ok(Response::new(())))
    }
}

/// Allocations per call, over 1 000 requests made by `make` (the least of
/// several counts); with `clone_each`, each request goes through a fresh
/// clone of the balancer, as under a retry layer.
fn per_call(make: fn() -> Request<Full<Bytes>>, clone_each: bool) -> f64 {
    const N: usize = 1000;
    least(|| per_call_once((0..N).map(|_| make()).collect(), clone_each)) as f64 / N as f64
}

fn per_call_once(requests: Vec<Request<Full<Bytes>>>, clone_each: bool) -> u64 {
    let mut original = Failover::builder()
        .endpoints((0..6).map(|i| Endpoint::new(format!("e{i}"), Ok200).tier(i / 3)))
        .build()
        .unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    blocks_while(|| {
        for request in requests {
            let mut clone;
            let lb = if clone_each {
                clone = original.clone();
                &mut clone
            } else {
                &mut original
            };
            assert!(Service::<Request<Full<Bytes>>>::poll_ready(lb, &mut cx).is_ready());
            let future = pin!(lb.call(request));
            match future.poll(&mut cx) {
                Poll::Ready(Ok(response)) => drop(response),
                other => panic!("{other:?}"),
            }
        }
    })
}

fn bare() -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = http::Uri::from_static("/v1/models");
    request
}

fn typical() -> Request<Full<Bytes>> {
    Request::post(String::from("/v1/messages"))
        .header("content-type", "application/json")
        .header("x-api-key", "sk-test")
        .body(Full::new(Bytes::from_static(br#"{"max_tokens":64}"#)))
        .unwrap()
}

#[test]
fn the_healthy_path_allocates_only_the_kept_request_head() {
    let _profiler = dhat::Profiler::builder().testing().build();

    // A request with a static URI and no headers: nothing allocated, even
    // through a fresh clone of the balancer each time.
    for clone_each in [false, true] {
        let none = per_call(bare, clone_each);
        assert!(none < 0.01, "{none} per call (clone each: {clone_each})");
    }

    // A typical request: the copy of its head kept for a failover is the
    // only allocation (the header map, and sharing the URI's bytes). Each
    // count copies a fresh head: a first copy pays for sharing the bytes.
    let head = least(|| {
        let (parts, _) = typical().into_parts();
        blocks_while(|| drop(parts.clone()))
    }) as f64;
    assert!(head > 0.0);
    for clone_each in [false, true] {
        let per_call = per_call(typical, clone_each);
        assert!(
            (per_call - head).abs() < 0.01,
            "only the copy of the request head allocates: {per_call} per call, \
             {head} for the copy (clone each: {clone_each})"
        );
        println!("allocations per call: {per_call} (clone each: {clone_each})");
    }
}
