//! Four keys that share nothing: four simulated APIs (50 requests per
//! second, burst 10 each) behind one quota layer keyed by authority, 32
//! callers, 500 requests per key, the retry layer outside. One API is
//! forced to answer 429 with `Retry-After: 5` for a second: its key cools
//! down once, and the other three keys finish as if nothing happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::rng::Jitter;
use evenkeel_quota::QuotaLayer;
use evenkeel_retry::{RetryBudget, RetryLayer};
use evenkeel_sim::{Dialect, Sim, SimError};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use std::sync::Mutex;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

const KEYS: usize = 4;
const PER_KEY: usize = 500;
const CALLERS_PER_KEY: usize = 8;
const RATE: f64 = 50.0;
const BURST: u64 = 10;

/// Routes each request to the sim of its authority.
#[derive(Clone)]
struct Router {
    sims: Arc<Vec<Sim>>,
}

impl<B> Service<Request<B>> for Router
where
    Sim: Service<Request<B>, Response = Response<Full<Bytes>>, Error = SimError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = SimError;
    type Future = <Sim as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), SimError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let host = request.uri().host().unwrap_or_default();
        let index: usize = host
            .strip_prefix("key")
            .and_then(|rest| rest.split('.').next())
            .and_then(|n| n.parse().ok())
            .expect("a key host");
        self.sims[index].clone().call(request)
    }
}

fn request(key: usize, i: usize) -> Request<Full<Bytes>> {
    Request::post(format!("http://key{key}.sim.test/v1/messages"))
        .header("x-request-id", format!("k{key}-r{i}"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn one_keys_cooldown_never_delays_another() {
    let sims: Vec<Sim> = (0..KEYS)
        .map(|k| {
            Sim::builder()
                .requests(RATE, BURST)
                .dialect(Dialect::OpenAi)
                .latency(Duration::from_millis(50))
                .seed(k as u64)
                .build()
                .unwrap()
        })
        .collect();
    let sims = Arc::new(sims);
    let quota = QuotaLayer::builder().build().unwrap();
    let handle = quota.handle();
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .max_attempts(100)
                .budget(RetryBudget::unlimited())
                .jitter(Jitter::seeded(3))
                .build()
                .unwrap(),
        )
        .layer(quota)
        .service(Router {
            sims: Arc::clone(&sims),
        });

    let start = Instant::now();
    let finished: Arc<Mutex<[Duration; KEYS]>> = Arc::new(Mutex::new([Duration::ZERO; KEYS]));
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            // Three seconds in, key 0's API answers 429 with a 5 s wait, for a
            // second.
            let forced = sims[0].handle();
            tokio::task::spawn_local(async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                forced
                    .force(
                        StatusCode::TOO_MANY_REQUESTS,
                        Some(Duration::from_secs(5)),
                        Duration::from_secs(1),
                    )
                    .unwrap();
            });
            let mut callers = tokio::task::JoinSet::new();
            for key in 0..KEYS {
                let next = Arc::new(AtomicUsize::new(0));
                for _ in 0..CALLERS_PER_KEY {
                    let mut svc = svc.clone();
                    let next = Arc::clone(&next);
                    let finished = Arc::clone(&finished);
                    callers.spawn_local(async move {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= PER_KEY {
                                let mut f = finished.lock().unwrap();
                                f[key] = f[key].max(start.elapsed());
                                return;
                            }
                            let ready = ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc);
                            let response =
                                ready.await.unwrap().call(request(key, i)).await.unwrap();
                            assert_eq!(response.status(), StatusCode::OK);
                        }
                    });
                }
            }
            while let Some(done) = callers.join_next().await {
                done.unwrap();
            }
        })
        .await;

    let finished = *finished.lock().unwrap();
    let ideal = Duration::from_secs_f64((PER_KEY as f64 - BURST as f64) / RATE);
    for (key, sim) in sims.iter().enumerate() {
        let stats = sim.stats();
        let snapshot = handle.key(&format!("key{key}.sim.test")).unwrap();
        println!(
            "key{key}: {} attempts, {} 429s, finished in {:.2} s (ideal {:.2} s), cooldowns {}, waited {:.1} s in all",
            stats.attempts(),
            stats.status_count(StatusCode::TOO_MANY_REQUESTS),
            finished[key].as_secs_f64(),
            ideal.as_secs_f64(),
            snapshot.cooldowns,
            snapshot.waited.as_secs_f64(),
        );
        assert_eq!(stats.successes(), PER_KEY as u64);
        if key == 0 {
            // One cooldown, however many requests met the 429s.
            assert_eq!(snapshot.cooldowns, 1);
            // Only what was in flight when the first 429 came back met one.
            assert!(stats.status_count(StatusCode::TOO_MANY_REQUESTS) <= BURST);
            assert!(finished[key] >= ideal + Duration::from_secs(4));
        } else {
            assert_eq!(stats.status_count(StatusCode::TOO_MANY_REQUESTS), 0);
            assert_eq!(snapshot.cooldowns, 0);
            assert!(
                finished[key] <= ideal.mul_f64(1.10),
                "key{key} took {:?}",
                finished[key]
            );
        }
    }
}
