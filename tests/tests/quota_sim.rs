//! The quota layer against `evenkeel-sim`, in process, under paused time:
//! 2 000 POST requests from 32 concurrent callers to an API allowing 50
//! requests per second with a burst of 10, the retry layer outside the
//! quota layer. With the quota layer almost no attempt meets a 429 and the
//! run takes close to the ideal (2 000 - 10) / 50 s; the same run with the
//! retry layer alone is measured for comparison.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::rng::Jitter;
use evenkeel_headers::Resource;
use evenkeel_quota::QuotaLayer;
use evenkeel_quota::cost::Header;
use evenkeel_retry::{RetryBudget, RetryLayer};
use evenkeel_sim::{Dialect, Sim, TokenCost};
use http::{Request, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

const REQUESTS: usize = 2_000;
const CALLERS: usize = 32;
const RATE: f64 = 50.0;
const BURST: u64 = 10;
const SEED: u64 = 7;

/// What one run measured.
#[derive(Debug, Clone, Copy)]
struct Run {
    attempts: u64,
    limited: u64,
    successes: u64,
    elapsed: Duration,
    /// The refill rates the quota layer learned: requests, tokens.
    learned: [Option<f64>; 2],
}

impl Run {
    fn limited_share(&self) -> f64 {
        self.limited as f64 / self.attempts as f64
    }
}

/// How the requests cost tokens, when the sim has a token quota.
#[derive(Clone, Copy)]
enum Tokens {
    None,
    /// Each request costs 10 + (i % 7) * 15 tokens, from a header.
    Varying,
}

fn sim(dialect: Dialect, tokens: Tokens) -> Sim {
    let builder = Sim::builder()
        .requests(RATE, BURST)
        .dialect(dialect)
        .latency(Duration::from_millis(50))
        .seed(SEED);
    let builder = match tokens {
        Tokens::None => builder,
        // 2 000 tokens a second: the token quota binds before the request
        // quota (the requests average 55 tokens: about 36 a second).
        Tokens::Varying => builder.tokens(2_000.0, 400, TokenCost::default_header()),
    };
    builder.build().unwrap()
}

fn request(i: usize, tokens: Tokens) -> Request<Full<Bytes>> {
    let mut builder = Request::post("http://api.sim.test/v1/messages")
        .header("content-type", "application/json")
        .header("x-request-id", format!("r{i}"));
    if let Tokens::Varying = tokens {
        builder = builder.header("x-sim-tokens", (10 + (i % 7) * 15).to_string());
    }
    builder
        .body(Full::new(Bytes::from_static(br#"{"max_tokens":16}"#)))
        .unwrap()
}

fn retry() -> RetryLayer {
    RetryLayer::builder()
        .max_attempts(100)
        .budget(RetryBudget::unlimited())
        .jitter(Jitter::seeded(SEED))
        .build()
        .unwrap()
}

/// Sends `REQUESTS` requests from `CALLERS` callers through `svc`.
async fn drive<S>(svc: S, tokens: Tokens) -> Duration
where
    S: Service<
            Request<Full<Bytes>>,
            Response = http::Response<evenkeel_retry::body::ResponseBody<Full<Bytes>>>,
        > + Clone
        + 'static,
    S::Error: std::fmt::Debug,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let mut svc = svc.clone();
        let next = Arc::clone(&next);
        callers.spawn_local(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= REQUESTS {
                    return;
                }
                let response = svc
                    .ready()
                    .await
                    .unwrap()
                    .call(request(i, tokens))
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK, "request {i}");
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done.unwrap();
    }
    start.elapsed()
}

async fn run(dialect: Dialect, tokens: Tokens, quota: bool) -> Run {
    let sim = sim(dialect, tokens);
    let mut learned = [None, None];
    let elapsed = if quota {
        let layer = QuotaLayer::builder()
            .estimator(Header::new().tokens("x-sim-tokens").exact(true))
            .build()
            .unwrap();
        let handle = layer.handle();
        let svc = ServiceBuilder::new()
            .layer(retry())
            .layer(layer)
            .service(sim.clone());
        let elapsed = drive(svc, tokens).await;
        let key = handle.key("api.sim.test").unwrap();
        for r in &key.resources {
            match r.resource {
                Resource::Requests => learned[0] = r.rate,
                Resource::Tokens => learned[1] = r.rate,
                _ => {}
            }
        }
        elapsed
    } else {
        let svc = ServiceBuilder::new().layer(retry()).service(sim.clone());
        drive(svc, tokens).await
    };
    let stats = sim.stats();
    Run {
        attempts: stats.attempts(),
        limited: stats.status_count(StatusCode::TOO_MANY_REQUESTS),
        successes: stats.successes(),
        elapsed,
        learned,
    }
}

fn ideal(tokens: Tokens) -> Duration {
    match tokens {
        Tokens::None => Duration::from_secs_f64((REQUESTS as f64 - BURST as f64) / RATE),
        Tokens::Varying => {
            let total: usize = (0..REQUESTS).map(|i| 10 + (i % 7) * 15).sum();
            Duration::from_secs_f64((total as f64 - 400.0) / 2_000.0)
        }
    }
}

async fn compare(dialect: Dialect, tokens: Tokens, max_limited: f64) {
    let with = run(dialect, tokens, true).await;
    let without = run(dialect, tokens, false).await;
    let ideal = ideal(tokens);
    println!(
        "{dialect}: with quota: {} attempts, {} 429s ({:.2} %), {:.2} s; \
         retry alone: {} attempts, {} 429s ({:.2} %), {:.2} s; ideal {:.2} s; \
         learned rates {:?}",
        with.attempts,
        with.limited,
        with.limited_share() * 100.0,
        with.elapsed.as_secs_f64(),
        without.attempts,
        without.limited,
        without.limited_share() * 100.0,
        without.elapsed.as_secs_f64(),
        ideal.as_secs_f64(),
        with.learned,
    );
    assert_eq!(with.successes, REQUESTS as u64);
    assert!(
        with.limited_share() <= max_limited,
        "{dialect}: {} of {} attempts got 429",
        with.limited,
        with.attempts
    );
    assert!(
        with.elapsed <= ideal.mul_f64(1.10),
        "{dialect}: took {:?}, ideal {:?}",
        with.elapsed,
        ideal
    );
    assert!(without.limited > with.limited);
    // The refill rate is learned, and from below: never above the server's.
    let (rate, real) = match tokens {
        Tokens::None => (with.learned[0], RATE),
        Tokens::Varying => (with.learned[1], 2_000.0),
    };
    let rate = rate.expect("a learned refill rate");
    assert!(
        rate <= real && rate >= 0.8 * real,
        "{dialect}: learned {rate}/s"
    );
}

fn local() -> tokio::task::LocalSet {
    tokio::task::LocalSet::new()
}

#[tokio::test(start_paused = true)]
async fn openai_dialect() {
    local()
        .run_until(compare(Dialect::OpenAi, Tokens::None, 0.01))
        .await;
}

#[tokio::test(start_paused = true)]
async fn anthropic_dialect_with_whole_second_resets() {
    local()
        .run_until(compare(Dialect::Anthropic, Tokens::None, 0.05))
        .await;
}

#[tokio::test(start_paused = true)]
async fn ietf_dialect() {
    local()
        .run_until(compare(Dialect::Ietf, Tokens::None, 0.01))
        .await;
}

#[tokio::test(start_paused = true)]
async fn token_quota_with_varying_costs() {
    local()
        .run_until(compare(Dialect::OpenAi, Tokens::Varying, 0.01))
        .await;
}

#[tokio::test(start_paused = true)]
async fn anthropic_token_quota_with_varying_costs() {
    local()
        .run_until(compare(Dialect::Anthropic, Tokens::Varying, 0.05))
        .await;
}
