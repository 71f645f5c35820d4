//! Admitting a request when quota is plentiful allocates nothing beyond
//! what the inner service does. Counted with dhat's global allocator, in a
//! binary of its own with a single test, so nothing else allocates
//! meanwhile.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_util::FutureExt;
use http::{HeaderMap, HeaderValue, Request, Response};
use tower::{Layer, Service};

use evenkeel_alloc_count::{blocks_while, least};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Always ready; answers 200 with a copy of its headers, its
/// `x-ratelimit-remaining-requests` going down by one per request as a real
/// server's does. Cheap to clone (the layer clones its inner service on
/// every call).
#[derive(Clone)]
struct Ok200 {
    headers: Arc<HeaderMap>,
    left: Arc<AtomicU64>,
}

impl<B> Service<Request<B>> for Ok200 {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        let mut response = Response::new(());
        if !self.headers.is_empty() {
            *response.headers_mut() = HeaderMap::clone(&self.headers);
            let left = self.left.fetch_sub(1, Ordering::Relaxed);
            response
                .headers_mut()
                .insert("x-ratelimit-remaining-requests", HeaderValue::from(left));
        }
        ready(Ok(response))
    }
}

fn requests(n: usize) -> Vec<Request<()>> {
    (0..n)
        .map(|_| {
            Request::post("http://api.example.com/v1/messages")
                .body(())
                .unwrap()
        })
        .collect()
}

/// Heap blocks allocated per call through `svc`.
fn blocks_per_call<S>(svc: &mut S) -> f64
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    const N: usize = 200;
    let mut cx = Context::from_waker(std::task::Waker::noop());
    // Warm up: the key's entry and the learned quotas are created once, and
    // with the `tracing` feature each event callsite registers itself the
    // first time it fires.
    for request in requests(200) {
        assert!(svc.poll_ready(&mut cx).is_ready());
        svc.call(request).now_or_never().unwrap().unwrap();
    }
    let blocks = least(|| {
        let batch = requests(N);
        blocks_while(|| {
            for request in batch {
                assert!(svc.poll_ready(&mut cx).is_ready());
                let response = svc.call(request).now_or_never().expect("ready").unwrap();
                std::hint::black_box(response);
            }
        })
    });
    blocks as f64 / N as f64
}

#[test]
fn plentiful_quota_costs_no_allocation() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let layer = evenkeel_quota::QuotaLayer::new();

    // Responses without rate-limit headers: not one allocation per call.
    let bare = Ok200 {
        headers: Arc::new(HeaderMap::new()),
        left: Arc::default(),
    };
    // A per-call allocation would show as 1.0 or more; a rare one-off
    // (first use of something on a loaded machine) is not a per-call cost.
    assert_eq!(blocks_per_call(&mut bare.clone()), 0.0);
    let with_layer = blocks_per_call(&mut layer.layer(bare));
    assert!(with_layer < 0.05, "{with_layer} blocks per call");

    // Responses with OpenAI's headers: the inner service's copies, plus
    // what `evenkeel_headers::rate_limits` allocates to parse them, and
    // nothing else.
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-ratelimit-limit-requests", "1000000"),
        ("x-ratelimit-reset-requests", "6ms"),
        ("x-ratelimit-limit-tokens", "2000000"),
        ("x-ratelimit-remaining-tokens", "1999000"),
        ("x-ratelimit-reset-tokens", "30ms"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    let mut sample = headers.clone();
    sample.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from_static("999999"),
    );
    let now = std::time::SystemTime::now();
    let parser = least(|| {
        blocks_while(|| {
            for _ in 0..100 {
                let parsed = evenkeel_headers::rate_limits(&sample, now);
                assert_eq!(parsed.len(), 2, "{parsed:?}");
            }
        })
    }) as f64
        / 100.0;
    let bare = Ok200 {
        headers: Arc::new(headers),
        left: Arc::new(AtomicU64::new(999_999)),
    };
    let inner = blocks_per_call(&mut bare.clone());
    let with_layer = blocks_per_call(&mut layer.layer(bare));
    println!(
        "blocks per call: inner service {inner}, with the quota layer {with_layer}, \
         of which the header parser {parser}"
    );
    // A one-off (a ring of observations reaching its capacity) is not a
    // per-call cost.
    assert!(with_layer - (inner + parser) < 0.05, "{with_layer}");
}
