//! Heap allocations per call of the preset stack when nothing goes wrong,
//! against the bare service. Counted with dhat's global allocator, in a
//! binary of its own with a single test, so nothing else allocates
//! meanwhile. The upstream, requests and stacks are the preset bench's
//! (`benches/support`); the figures are in `docs/bench/preset.md`.

#![cfg(feature = "preset")]

#[allow(dead_code)] // shared with the bench, which uses other parts
#[path = "../benches/support/mod.rs"]
mod support;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use evenkeel::{Preset, connector_fn};
use http::Response;
use tower::Service;

use support::{Req, Upstream, bare_get, preset, preset_on, request, resilience_stack, tower_stack};

use evenkeel_alloc_count::{blocks_while, least};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const CALLS: u64 = 400;

/// Heap blocks allocated by `CALLS` calls through `svc`: requests built
/// before the count starts, responses dropped inside it.
fn blocks<S, B>(svc: &mut S, make: fn() -> Req) -> u64
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    least(|| blocks_once(svc, make))
}

fn blocks_once<S, B>(svc: &mut S, make: fn() -> Req) -> u64
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut call = |svc: &mut S, request| {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let Poll::Ready(response) = pin!(svc.call(request)).poll(&mut cx) else {
            panic!("the call did not finish on its first poll");
        };
        drop(response.expect("the call succeeds"));
    };
    // Warm up: state made once (metrics handles, quota keys, what the
    // quota layer learns) is not a per-call cost.
    for _ in 0..50 {
        call(svc, make());
    }
    let requests: Vec<_> = (0..CALLS).map(|_| make()).collect();
    blocks_while(|| {
        for request in requests {
            call(svc, request);
        }
    })
}

/// Heap blocks of `copies` copies of the head of each of `CALLS` requests:
/// what a layer that keeps the head to send it again pays.
fn head_copies(make: fn() -> Req, copies: usize) -> u64 {
    least(|| head_copies_once(make, copies))
}

fn head_copies_once(make: fn() -> Req, copies: usize) -> u64 {
    let heads: Vec<_> = (0..CALLS).map(|_| make().into_parts().0).collect();
    blocks_while(|| {
        for head in &heads {
            for _ in 0..copies {
                drop(std::hint::black_box(head.clone()));
            }
        }
    })
}

/// Heap blocks of passing `CALLS` attempt contexts down in request
/// extensions (the context's shared state; `http::Extensions` boxes its
/// map, its table and the value), and of copying such extensions with a
/// head (`clones` times each).
fn context_blocks(clones: usize) -> u64 {
    least(|| {
        let mut heads: Vec<_> = (0..CALLS).map(|_| bare_get().into_parts().0).collect();
        blocks_while(|| {
            for head in &mut heads {
                head.extensions
                    .insert(evenkeel::core::ext::AttemptContext::new(1, None));
                for _ in 0..clones {
                    drop(std::hint::black_box(head.extensions.clone()));
                }
            }
        })
    })
}

/// Blocks per call, for the report.
fn per_call(blocks: u64) -> f64 {
    blocks as f64 / CALLS as f64
}

#[test]
fn the_preset_allocates_only_its_copies_of_the_request_head() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();

    let plain = Upstream::plain();
    // The same preset with a backup endpoint: the failover layer then keeps
    // a copy of the head too, to resend it there.
    let backed_up = || {
        let upstream = plain.clone();
        Preset::builder()
            .endpoint("http://api.example")
            .endpoint("http://backup.example")
            .build(connector_fn(move |_| Ok(upstream.clone())))
            .unwrap()
    };

    for (label, make) in [
        ("GET, no headers, static URI", bare_get as fn() -> Req),
        ("POST, 2 headers", request),
    ] {
        let bare = blocks(&mut plain.clone(), make);
        let one = blocks(&mut preset(&plain), make);
        // On a store given to `quota_store`: the same stack, the same
        // blocks.
        let given = blocks(
            &mut preset_on(&plain, evenkeel::quota::MemoryStore::new()),
            make,
        );
        assert_eq!(given, one, "{label}: on a given store");
        let two = blocks(&mut backed_up(), make);
        let (copy, two_copies) = (head_copies(make, 1), head_copies(make, 2));
        let tower = blocks(&mut tower_stack(&plain), make);
        let resilience = blocks(&mut resilience_stack(&plain), make);
        println!(
            "{label}: blocks per call: bare {}, preset {} (with a backup {}), \
             head copies {} (two {}); tower {}, tower-resilience {}",
            per_call(bare),
            per_call(one),
            per_call(two),
            per_call(copy),
            per_call(two_copies),
            per_call(tower),
            per_call(resilience),
        );
        // One endpoint: the retry layer's copy of the head, and the
        // attempt context the preset passes down in the extensions.
        let context = context_blocks(0);
        assert_eq!(one - bare, copy + context, "{label}: one endpoint");
        // Two endpoints: the failover layer's copy as well. Neither copy
        // includes the extensions: the context is their only entry, and a
        // later send puts it back.
        assert_eq!(two - bare, two_copies + context, "{label}: with a backup");
    }

    // With no headers the head copies cost nothing: beyond the upstream the
    // preset allocates only the attempt context in the extensions.
    assert_eq!(head_copies(bare_get, 2), 0);
    println!(
        "the attempt context: {} blocks per call, {} with one copy",
        per_call(context_blocks(0)),
        per_call(context_blocks(1))
    );

    // With the rate-limit headers Anthropic sends: the inner service's
    // copies, the head copy, and what reading them costs
    // (`evenkeel_headers::rate_limits`), once.
    let anthropic = Upstream::anthropic();
    let bare = blocks(&mut anthropic.clone(), request);
    let one = blocks(&mut preset(&anthropic), request);
    let headers = anthropic_response_headers(&anthropic);
    let now = std::time::SystemTime::now();
    let limits = least(|| {
        blocks_while(|| {
            for _ in 0..CALLS {
                drop(std::hint::black_box(evenkeel::headers::rate_limits(
                    &headers, now,
                )));
            }
        })
    });
    println!(
        "POST, 2 headers, Anthropic response headers: blocks per call: bare {}, preset {}, \
         one head copy {}, one reading of the rate-limit headers {}; tower {}, \
         tower-resilience {}",
        per_call(bare),
        per_call(one),
        per_call(head_copies(request, 1)),
        per_call(limits),
        per_call(blocks(&mut tower_stack(&anthropic), request)),
        per_call(blocks(&mut resilience_stack(&anthropic), request)),
    );
    // One reading: the observer's, at the bottom of the endpoint's stack;
    // quota, the limiter and the per-attempt metrics read its verdict.
    assert_eq!(
        one,
        bare + head_copies(request, 1) + context_blocks(0) + limits
    );
}

/// The headers of one response from `upstream`.
fn anthropic_response_headers(upstream: &Upstream) -> http::HeaderMap {
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(Ok(response)) = pin!(upstream.clone().call(request())).poll(&mut cx) else {
        unreachable!("the upstream answers at once");
    };
    response.into_parts().0.headers
}
