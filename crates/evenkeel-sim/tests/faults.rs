//! Fault injection: each kind at its configured fraction, deterministic
//! given the seed.

mod common;

use std::error::Error as _;
use std::io;
use std::time::Duration;

use common::{call, header, json};
use evenkeel_sim::{Dialect, Faults, Sim, SimErrorKind};
use tokio::time::Instant;

const SAMPLE: usize = 10_000;

/// What each of `SAMPLE` calls got: a status, or 0 for a reset.
async fn outcomes(sim: &Sim) -> Vec<u16> {
    let mut out = Vec::with_capacity(SAMPLE);
    for i in 0..SAMPLE {
        match call(sim, &format!("r{i}")).await {
            Ok(res) => out.push(res.status().as_u16()),
            Err(err) => {
                assert_eq!(err.kind(), SimErrorKind::Reset);
                out.push(0);
            }
        }
    }
    out
}

fn fraction(outcomes: &[u16], code: u16) -> f64 {
    outcomes.iter().filter(|&&c| c == code).count() as f64 / outcomes.len() as f64
}

/// Five standard deviations of a binomial fraction over `SAMPLE` draws.
fn tolerance(p: f64) -> f64 {
    5.0 * (p * (1.0 - p) / SAMPLE as f64).sqrt()
}

fn faulty(seed: u64) -> Sim {
    Sim::builder()
        .latency(Duration::ZERO)
        .seed(seed)
        .faults(
            Faults::none()
                .reset(0.05)
                .internal_error(0.10)
                .unavailable(0.07)
                .overloaded(0.12)
                .insufficient_quota(0.03),
        )
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn each_fault_kind_at_its_fraction() {
    let sim = faulty(42);
    let got = outcomes(&sim).await;
    // 429 here is only insufficient_quota: there is no quota.
    for (code, p) in [
        (0, 0.05),
        (500, 0.10),
        (503, 0.07),
        (529, 0.12),
        (429, 0.03),
        (200, 0.63),
    ] {
        let f = fraction(&got, code);
        assert!(
            (f - p).abs() <= tolerance(p),
            "status {code}: {f} vs {p} ± {}",
            tolerance(p)
        );
    }
    let stats = sim.stats();
    assert_eq!(stats.attempts(), SAMPLE as u64);
    let count = |code: u16| got.iter().filter(|&&c| c == code).count() as u64;
    assert_eq!(stats.resets(), count(0));
    for code in [200, 429, 500, 503, 529] {
        let status = http::StatusCode::from_u16(code).unwrap();
        assert_eq!(stats.status_count(status), count(code), "{code}");
    }
    assert_eq!(stats.responses() + stats.resets(), SAMPLE as u64);
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_faults_and_another_seed_does_not() {
    let a = outcomes(&faulty(7)).await;
    let b = outcomes(&faulty(7)).await;
    let c = outcomes(&faulty(8)).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[tokio::test(start_paused = true)]
async fn rng_draws_do_not_depend_on_quota_rejections() {
    // Two draws per request whatever its fate: a quota that rejects some
    // requests must not shift the faults of the others.
    let base = || {
        Sim::builder()
            .latency(Duration::ZERO)
            .seed(3)
            .faults(Faults::none().internal_error(0.3))
    };
    let free = base().build().unwrap();
    let limited = base().requests(1.0, 1).build().unwrap();
    for i in 0..200 {
        let a = common::status(&free, "x").await;
        let b = common::status(&limited, "x").await;
        if b != 429 {
            assert_eq!(a, b, "request {i}");
        }
        tokio::time::sleep(Duration::from_millis(if i % 3 == 0 { 1_000 } else { 1 })).await;
    }
}

#[tokio::test(start_paused = true)]
async fn overloaded_is_anthropic_529_with_should_retry() {
    let sim = Sim::builder()
        .latency(Duration::ZERO)
        .dialect(Dialect::OpenAi)
        .faults(Faults::none().overloaded(1.0))
        .build()
        .unwrap();
    let res = call(&sim, "x").await.unwrap();
    assert_eq!(res.status().as_u16(), 529);
    assert_eq!(header(&res, "x-should-retry"), Some("true"));
    assert_eq!(header(&res, "retry-after"), None);
    let body = json(res).await;
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "overloaded_error");
}

#[tokio::test(start_paused = true)]
async fn insufficient_quota_is_a_hopeless_openai_429() {
    let sim = Sim::builder()
        .latency(Duration::from_secs(1))
        .requests(100.0, 100)
        .retry_after_ms(true)
        .faults(Faults::none().insufficient_quota(1.0))
        .build()
        .unwrap();
    let start = Instant::now();
    let res = call(&sim, "x").await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO, "answered at once");
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after"), None);
    assert_eq!(header(&res, "retry-after-ms"), None);
    let body = json(res).await;
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(body["error"]["code"], "insufficient_quota");
}

#[tokio::test(start_paused = true)]
async fn server_errors_have_their_bodies() {
    for (faults, code, kind) in [
        (Faults::none().internal_error(1.0), 500, "api_error"),
        (Faults::none().unavailable(1.0), 503, "overloaded_error"),
    ] {
        let sim = Sim::builder()
            .latency(Duration::ZERO)
            .faults(faults)
            .build()
            .unwrap();
        let res = call(&sim, "x").await.unwrap();
        assert_eq!(res.status().as_u16(), code);
        assert_eq!(json(res).await["error"]["type"], kind);
    }
}

#[tokio::test(start_paused = true)]
async fn a_reset_is_a_connection_reset_io_error_after_the_latency() {
    let sim = Sim::builder()
        .latency(Duration::from_millis(80))
        .faults(Faults::none().reset(1.0))
        .build()
        .unwrap();
    let start = Instant::now();
    let err = call(&sim, "x").await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(80));
    assert_eq!(err.kind(), SimErrorKind::Reset);
    let io = err
        .source()
        .and_then(|s| s.downcast_ref::<io::Error>())
        .expect("io::Error source");
    assert_eq!(io.kind(), io::ErrorKind::ConnectionReset);
    let stats = sim.stats();
    assert_eq!(stats.resets(), 1);
    assert_eq!(stats.attempts_for("x"), 1);
    assert_eq!(stats.successes(), 0);
    assert!(stats.statuses().is_empty());
}

#[tokio::test(start_paused = true)]
async fn slow_answers_add_their_delay_at_their_fraction() {
    let sim = Sim::builder()
        .latency(Duration::from_millis(10))
        .seed(99)
        .faults(Faults::none().slow(0.2, Duration::from_secs(2)))
        .build()
        .unwrap();
    let mut slow = 0;
    for i in 0..2_000 {
        let start = Instant::now();
        assert_eq!(common::status(&sim, &format!("{i}")).await, 200);
        match start.elapsed() {
            d if d == Duration::from_millis(10) => {}
            d if d == Duration::from_millis(2_010) => slow += 1,
            d => panic!("unexpected latency {d:?}"),
        }
    }
    let f = slow as f64 / 2_000.0;
    assert!((f - 0.2).abs() < 0.045, "{f}");
}
