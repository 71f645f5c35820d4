//! The permit path allocates nothing: static or adaptive, a call through
//! the limiter costs no allocation beyond what the inner service does.

//! Counted with dhat's global allocator (no `unsafe` here).

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use evenkeel_limit::{Aimd, Gradient, LimitLayer, Vegas};
use http::{Request, Response};
use tower::{Layer, Service};

use evenkeel_alloc_count::{blocks_while, least};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

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

/// Heap blocks of `n` calls through `svc`, the least of several counts.
fn calls<S, B>(svc: &mut S, n: usize) -> u64
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    least(|| {
        blocks_while(|| {
            for _ in 0..n {
                assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
                let fut = pin!(svc.call(Request::new(())));
                assert!(matches!(fut.poll(&mut cx), Poll::Ready(Ok(_))));
            }
        })
    })
}

#[test]
fn no_allocation_per_call() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut bare = Instant200;
    let baseline = calls(&mut bare, 1000);
    let mut fixed = LimitLayer::fixed(8).build().unwrap().layer(Instant200);
    let aimd = Aimd::builder().min_limit(1).build().unwrap();
    let mut aimd = LimitLayer::adaptive(aimd)
        .build()
        .unwrap()
        .layer(Instant200);
    let mut gradient = LimitLayer::adaptive(Gradient::default())
        .build()
        .unwrap()
        .layer(Instant200);
    let mut vegas = LimitLayer::adaptive(Vegas::default())
        .build()
        .unwrap()
        .layer(Instant200);
    // Warm up to a steady state: first-use initialisation (the clock, and
    // with the `tracing` feature each event callsite registering itself
    // once, the first time its limit changes) is not a per-call cost.
    calls(&mut fixed, 1000);
    calls(&mut aimd, 1000);
    calls(&mut gradient, 1000);
    calls(&mut vegas, 1000);
    assert_eq!(calls(&mut fixed, 1000), baseline, "static");
    assert_eq!(calls(&mut aimd, 1000), baseline, "AIMD");
    assert_eq!(calls(&mut gradient, 1000), baseline, "Gradient");
    assert_eq!(calls(&mut vegas, 1000), baseline, "Vegas");
}
