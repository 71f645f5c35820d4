//! Per-call overhead of the preset stack when nothing goes wrong, against
//! the bare service, a comparable tower-resilience stack (retry, circuit
//! breaker, bulkhead) and tower's own `Retry` + `ConcurrencyLimit`, all in
//! one run.
//!
//! One endpoint, an always-ready in-memory upstream answering 200 with an
//! empty body: once without rate-limit headers, once with the set Anthropic
//! sends on every response. Every call is driven by one `poll_ready`, one
//! `call` and one poll of the future with a no-op waker, inside a
//! current-thread tokio runtime with time enabled; every stack here
//! finishes on that first poll (asserted), so no executor is involved and
//! the figures are the stacks' own cost. Methods and results:
//! `docs/bench/preset.md`.
//!
//! Run: `cargo bench -p evenkeel --bench preset`.

#![allow(missing_docs)] // criterion_group! generates undocumented items

#[allow(dead_code)] // the allocation test shares it and uses other parts
mod support;

use std::fmt::Debug;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::measurement::WallTime;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use evenkeel::failover::{BaseUrlLayer, Endpoint, Failover};
use evenkeel::limit::LimitLayer;
use evenkeel::metrics::{MetricsLayer, Scope};
use evenkeel::quota::QuotaLayer;
use evenkeel::retry::RetryLayer;
use evenkeel::{
    AttemptTimeout, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_DEADLINE, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_QUOTA_WAIT, DEFAULT_MAX_SERVER_WAIT, PresetClassifier, PresetLimit,
};
use http::{Response, StatusCode};
use tower::{Layer, Service};

use support::{Req, Upstream, preset, preset_on, request, resilience_stack, tower_stack};

/// One call: ready, call, one poll with a no-op waker, drop the response.
/// Never inlined, so `valgrind --tool=callgrind
/// --toggle-collect='preset::drive*'` counts the instructions of the calls
/// and nothing else (not the making of the requests).
#[inline(never)]
fn drive<S, B>(svc: &mut S, req: Req)
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready(), "always ready");
    let future = pin!(svc.call(req));
    match future.poll(&mut cx) {
        Poll::Ready(Ok(response)) => {
            debug_assert_eq!(response.status(), StatusCode::OK);
            std::hint::black_box(response);
        }
        Poll::Ready(Err(e)) => panic!("the call failed: {e:?}"),
        Poll::Pending => panic!("the stack needs an executor"),
    }
}

/// Benchmarks the preset's stack built up from the inside out, each stage
/// one more layer with the preset's settings, so the difference between
/// two stages is what a layer costs.
fn stages(c: &mut Criterion, upstream: &Upstream) {
    fn stage<S, B>(group: &mut criterion::BenchmarkGroup<'_, WallTime>, name: &str, mut svc: S)
    where
        S: Service<Req, Response = Response<B>>,
        S::Error: Debug,
    {
        group.bench_function(name, |b| {
            b.iter_batched(request, |req| drive(&mut svc, req), BatchSize::SmallInput)
        });
    }

    let classifier = PresetClassifier::default;
    let call_metrics = MetricsLayer::builder()
        .classifier(classifier())
        .server_address("api.example")
        .build()
        .unwrap();
    let attempt_metrics = MetricsLayer::builder()
        .scope(Scope::Attempt)
        .classifier(classifier())
        .build()
        .unwrap();
    let events = call_metrics.listener().events();
    let timeout = || AttemptTimeout::new(upstream.clone(), DEFAULT_ATTEMPT_TIMEOUT);
    let limit = || {
        LimitLayer::adaptive(PresetLimit::default())
            .classifier(classifier())
            .name("api.example")
            .events(events.clone())
            .build()
            .unwrap()
            .layer(timeout())
    };
    let quota = || {
        QuotaLayer::builder()
            .max_wait(DEFAULT_MAX_QUOTA_WAIT)
            .events(events.clone())
            .build()
            .unwrap()
    };
    let base_url = |quota: &QuotaLayer| {
        BaseUrlLayer::new("http://api.example")
            .unwrap()
            .layer(quota.layer(limit()))
    };
    let failover = || {
        let quota = quota();
        let endpoint = Endpoint::new("api.example", base_url(&quota))
            .tier(0)
            .cooldown(quota.handle());
        Failover::builder()
            .classifier(classifier())
            .events(events.clone())
            .endpoint(endpoint)
            .build()
            .unwrap()
    };
    let retry = || {
        RetryLayer::builder()
            .classifier(classifier())
            .max_attempts(DEFAULT_MAX_ATTEMPTS)
            .deadline(DEFAULT_DEADLINE)
            .max_server_wait(DEFAULT_MAX_SERVER_WAIT)
            .events(events.clone())
            .build()
            .unwrap()
            .layer(attempt_metrics.layer(failover()))
    };

    let mut group = c.benchmark_group("preset, built up, no rate-limit headers");
    stage(&mut group, "bare", upstream.clone());
    stage(&mut group, "+ attempt timeout", timeout());
    stage(&mut group, "+ limit", limit());
    stage(&mut group, "+ quota", quota().layer(limit()));
    stage(&mut group, "+ base URL", base_url(&quota()));
    stage(&mut group, "+ failover", failover());
    stage(
        &mut group,
        "+ attempt metrics",
        attempt_metrics.layer(failover()),
    );
    stage(&mut group, "+ retry", retry());
    stage(&mut group, "+ call metrics", call_metrics.layer(retry()));
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();

    for (label, upstream) in [
        ("no rate-limit headers", Upstream::plain()),
        ("Anthropic headers", Upstream::anthropic()),
    ] {
        let mut group = c.benchmark_group(format!("preset, {label}"));
        group.bench_function("bare", |b| {
            let mut svc = upstream.clone();
            b.iter_batched(request, |req| drive(&mut svc, req), BatchSize::SmallInput)
        });
        group.bench_function("tower", |b| {
            let mut svc = tower_stack(&upstream);
            b.iter_batched(request, |req| drive(&mut svc, req), BatchSize::SmallInput)
        });
        group.bench_function("tower-resilience", |b| {
            let mut svc = resilience_stack(&upstream);
            b.iter_batched(request, |req| drive(&mut svc, req), BatchSize::SmallInput)
        });
        group.bench_function("preset", |b| {
            let mut svc = preset(&upstream);
            b.iter_batched(request, |req| drive(&mut svc, req), BatchSize::SmallInput)
        });
        group.bench_function("preset, quota_store(MemoryStore)", |b| {
            let mut svc = preset_on(&upstream, evenkeel::quota::MemoryStore::new());
            b.iter_batched(request, |req| drive(&mut svc, req), BatchSize::SmallInput)
        });
        group.bench_function("preset, quota_store(type-erased MemoryStore)", |b| {
            let mut svc = preset_on(
                &upstream,
                erased::Erased::new(evenkeel::quota::MemoryStore::new()),
            );
            b.iter_batched(request, |req| drive(&mut svc, req), BatchSize::SmallInput)
        });
        group.bench_function("preset, cloned per call", |b| {
            let svc = preset(&upstream);
            b.iter_batched(
                request,
                |req| drive(&mut svc.clone(), req),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
    stages(c, &Upstream::plain());
}

/// The alternative to a store type parameter: one `Arc<dyn>` store type,
/// with boxed keys, tickets and reserve futures, as a preset with a
/// type-erased store would run on. Here only to be measured against the
/// type parameter the preset has.
mod erased {
    use std::any::Any;
    use std::fmt;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;

    use evenkeel::quota::cost::Cost;
    use evenkeel::quota::store::{MemoryKey, MemoryTicket, Report, ResourceSnapshot, Shortage};
    use evenkeel::quota::{MemoryStore, QuotaStore};
    use tokio::time::Instant;

    pub(crate) struct Boxed(Box<dyn Any + Send + Sync>);

    impl fmt::Debug for Boxed {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Boxed")
        }
    }

    type Reserve = Pin<Box<dyn Future<Output = Result<Boxed, Shortage>> + Send>>;

    #[derive(Debug, Clone)]
    pub(crate) struct Erased(Arc<MemoryStore>);

    impl Erased {
        pub(crate) fn new(store: MemoryStore) -> Self {
            Erased(Arc::new(store))
        }
    }

    fn key(k: &Boxed) -> &MemoryKey {
        k.0.downcast_ref().expect("a memory key")
    }

    fn ticket(t: Boxed) -> MemoryTicket {
        *t.0.downcast().expect("a memory ticket")
    }

    impl QuotaStore for Erased {
        type Key = Boxed;
        type Ticket = Boxed;
        type Reserve = Reserve;

        fn open(&self, k: &str) -> Boxed {
            Boxed(Box::new(self.0.open(k)))
        }

        fn reserve(&self, k: &Boxed, cost: &Cost, now: Instant) -> Reserve {
            let reserve = self.0.reserve(key(k), cost, now);
            Box::pin(async move { reserve.await.map(|t| Boxed(Box::new(t))) })
        }

        fn estimate(&self, k: &Boxed, cost: &Cost, ahead: &Cost, now: Instant) -> Option<Shortage> {
            self.0.estimate(key(k), cost, ahead, now)
        }

        fn release(&self, k: &Boxed, t: Boxed, sent: bool, now: Instant) {
            self.0.release(key(k), ticket(t), sent, now)
        }

        fn settle(
            &self,
            k: &Boxed,
            t: Boxed,
            report: &Report<'_>,
            now: Instant,
        ) -> Option<Instant> {
            self.0.settle(key(k), ticket(t), report, now)
        }

        fn room_at(&self, k: &Boxed, now: Instant) -> Option<Instant> {
            self.0.room_at(key(k), now)
        }

        fn cooldown_until(&self, k: &Boxed, now: Instant) -> Option<Instant> {
            self.0.cooldown_until(key(k), now)
        }

        fn snapshot(&self, k: &Boxed, now: Instant) -> Vec<ResourceSnapshot> {
            self.0.snapshot(key(k), now)
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
