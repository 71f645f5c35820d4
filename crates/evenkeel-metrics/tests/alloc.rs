//! The common path resolves its handles once and then allocates nothing:
//! counted with dhat's global allocator, in a binary of its own with a
//! single test, so nothing else allocates meanwhile.

use std::future::{Ready, ready};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use evenkeel_metrics::{MetricsLayer, Scope};
use http::{Request, Response};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use tower::{Layer, Service};

use evenkeel_alloc_count::{blocks_while, least};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// A recorder whose handles are plain atomics, counting registrations.
#[derive(Default)]
struct Atomics {
    registered: AtomicUsize,
}

struct Cell(AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        self.0.fetch_add(value as u64, Ordering::Relaxed);
    }
    fn decrement(&self, value: f64) {
        self.0.fetch_sub(value as u64, Ordering::Relaxed);
    }
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

impl HistogramFn for Cell {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn cell() -> Arc<Cell> {
    Arc::new(Cell(AtomicU64::new(0)))
}

impl Recorder for Atomics {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        self.registered.fetch_add(1, Ordering::Relaxed);
        Counter::from_arc(cell())
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        self.registered.fetch_add(1, Ordering::Relaxed);
        Gauge::from_arc(cell())
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        self.registered.fetch_add(1, Ordering::Relaxed);
        Histogram::from_arc(cell())
    }
}

/// Answers 200 to even request numbers and 503 to odd ones, at once.
#[derive(Clone, Copy)]
struct Alternating;

impl Service<Request<u32>> for Alternating {
    type Response = Response<()>;
    type Error = std::convert::Infallible;
    type Future = Ready<Result<Response<()>, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<u32>) -> Self::Future {
        let mut res = Response::new(());
        if req.body() % 2 == 1 {
            *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        }
        ready(Ok(res))
    }
}

fn requests(n: u32) -> Vec<Request<u32>> {
    (0..n)
        .map(|i| {
            Request::post("https://api.example.com/v1/messages")
                .header("content-type", "application/json")
                .body(i)
                .unwrap()
        })
        .collect()
}

fn drive<S>(svc: &mut S, requests: Vec<Request<u32>>)
where
    S: Service<Request<u32>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    for req in requests {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let future = pin!(svc.call(req));
        match future.poll(&mut cx) {
            Poll::Ready(Ok(res)) => drop(res),
            other => panic!("{other:?}"),
        }
    }
}

/// Heap blocks of driving 1 000 requests through `svc` (made outside the
/// count), the least of several counts.
fn allocations<S>(svc: &mut S) -> u64
where
    S: Service<Request<u32>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    least(|| {
        let batch = requests(1000);
        blocks_while(|| drive(svc, batch))
    })
}

#[test]
fn the_recording_path_allocates_nothing_once_warm() {
    let _profiler = dhat::Profiler::builder().testing().build();

    for scope in [Scope::Call, Scope::Attempt] {
        // With no recorder installed (the no-op recorder).
        let mut svc = MetricsLayer::builder()
            .scope(scope)
            .build()
            .unwrap()
            .layer(Alternating);
        drive(&mut svc, requests(2));
        let n = allocations(&mut svc);
        assert_eq!(n, 0, "{scope:?}, no-op recorder: {n} allocations");

        // With a recorder whose handles are atomics.
        let recorder = Atomics::default();
        metrics::with_local_recorder(&recorder, || {
            let mut svc = MetricsLayer::builder()
                .scope(scope)
                .build()
                .unwrap()
                .layer(Alternating);
            drive(&mut svc, requests(2));
            // One gauge, then a histogram and a counter per status.
            assert_eq!(recorder.registered.load(Ordering::Relaxed), 5);
            let n = allocations(&mut svc);
            assert_eq!(n, 0, "{scope:?}, atomics recorder: {n} allocations");
            // Resolved once: no registration after the warm-up.
            assert_eq!(recorder.registered.load(Ordering::Relaxed), 5);
        });
    }
}
