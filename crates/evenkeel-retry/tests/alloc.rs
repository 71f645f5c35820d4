//! The retry layer allocates nothing on the path where no retry happens,
//! beyond what the request itself costs to copy. Counted with dhat's global
//! allocator, in a binary of its own with a single test.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use evenkeel_retry::RetryLayer;
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::{Empty, Full};
use tower::{Layer, Service};

use evenkeel_alloc_count::{blocks_while, least};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[derive(Clone, Copy)]
struct Ok200;

impl<B> Service<Request<B>> for Ok200 {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        drop(req);
        ready(Ok(Response::new(Empty::new())))
    }
}

/// Allocations made by `n` calls through `svc`, requests built outside the
/// count; the least of several counts.
fn allocations<S, B>(svc: &mut S, make: impl Fn() -> Request<B>, n: u64) -> u64
where
    S: Service<Request<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    least(|| {
        let requests: Vec<_> = (0..n).map(|_| make()).collect();
        blocks_while(|| {
            for req in requests {
                assert!(svc.poll_ready(&mut cx).is_ready());
                let res = svc.call(req).now_or_never().expect("ready").expect("ok");
                drop(res);
            }
        })
    })
}

#[test]
fn no_allocation_when_no_retry_happens() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();

    let full = || {
        Request::post(http::Uri::from_static("http://api.example.com/v1/messages"))
            .body(Full::new(Bytes::from_static(b"{\"max_tokens\":64}")))
            .unwrap()
    };
    let empty = || {
        Request::get(http::Uri::from_static("http://api.example.com/v1/models"))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };

    let n = 1000;
    let bare_full = allocations(&mut Ok200, full, n);
    let bare_empty = allocations(&mut Ok200, empty, n);

    // Defaults: budget on, no timers.
    let mut retry = RetryLayer::new().layer(Ok200);
    assert_eq!(allocations(&mut retry, full, n), bare_full, "Full<Bytes>");
    assert_eq!(allocations(&mut retry, empty, n), bare_empty, "Empty");

    // With an attempt timeout and a total deadline: the timers live in the
    // future; the deadline travels down in the request's extensions, as an
    // `AttemptContext`, and that insertion is the one cost.
    let mut timed = RetryLayer::builder()
        .attempt_timeout(Duration::from_secs(10))
        .deadline(Duration::from_secs(30))
        .build()
        .unwrap()
        .layer(Ok200);
    let context = least(|| {
        let mut heads: Vec<_> = (0..n).map(|_| full().into_parts().0).collect();
        blocks_while(|| {
            for head in &mut heads {
                head.extensions
                    .insert(evenkeel_core::ext::AttemptContext::new(1, None));
            }
        })
    });
    assert_eq!(
        allocations(&mut timed, full, n),
        bare_full + context,
        "with timers and a deadline"
    );

    // Headers must be copied to be resent: that copy is the one cost, the
    // same one tower's own `Retry` pays when it clones the request.
    let with_headers = || {
        let mut req = full();
        req.headers_mut()
            .insert("x-api-key", http::HeaderValue::from_static("sk-test"));
        req
    };
    let bare_headers = allocations(&mut Ok200, with_headers, n);
    let ours = allocations(&mut retry, with_headers, n);
    let mut tower_retry = tower::retry::Retry::new(CloneEverything, Ok200);
    let towers = allocations(&mut tower_retry, with_headers, n);
    assert!(ours > bare_headers, "the header copy is counted");
    assert!(
        ours <= towers,
        "no more than tower's Retry: {ours} vs {towers} (bare {bare_headers})"
    );
}

/// tower's `Retry` with the simplest policy that can retry.
#[derive(Clone, Copy)]
struct CloneEverything;

impl<Res, E> tower::retry::Policy<Request<Full<Bytes>>, Res, E> for CloneEverything {
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
