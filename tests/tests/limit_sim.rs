//! The adaptive limiters against the simulated server, under tokio's paused
//! clock on a current-thread runtime: deterministic, and minutes of traffic
//! in a fraction of a second.
//!
//! The scenarios live with the `settle` example of evenkeel-limit, which
//! prints and plots the same runs.

#[path = "../../crates/evenkeel-limit/examples/settle/scenario.rs"]
mod scenario;

use evenkeel_limit::{Aimd, Algorithm, Gradient, Vegas};
use scenario::{BASE_LATENCY, Run, Scenario};

fn aimd() -> Aimd {
    Aimd::builder().min_limit(1).build().unwrap()
}

async fn knee<A: Algorithm>(algorithm: A) -> Run {
    scenario::run(&Scenario::knee(), algorithm).await
}

/// Latency-based: settles inside [6, 11] within 30 s and stays; p99 of
/// successful attempts after settling under 1.5 × the unloaded latency.
fn assert_latency_based_settles(name: &str, run: &Run) {
    let settled = run
        .settled(0.0, 120.0, 6, 11)
        .unwrap_or_else(|| panic!("{name} never settled inside [6, 11]"));
    assert!(settled <= 30.0, "{name} settled after {settled:.1} s");
    let p99 = run.latency_quantile(settled, 120.0, 0.99);
    let base = BASE_LATENCY.as_secs_f64();
    assert!(p99 < 1.5 * base, "{name}: p99 {p99:.3} s");
    assert_eq!(
        run.share(settled, 120.0, 503),
        0.0,
        "{name}: 503s after settling"
    );
    // And it is not settling by starving the server: capacity 8 at 100 ms
    // is 80 requests a second.
    assert!(
        run.goodput(30.0, 120.0) > 75.0,
        "{name}: {}",
        run.goodput(30.0, 120.0)
    );
}

#[tokio::test(start_paused = true)]
async fn gradient_settles_near_the_knee() {
    assert_latency_based_settles("Gradient", &knee(Gradient::default()).await);
}

#[tokio::test(start_paused = true)]
async fn vegas_settles_near_the_knee() {
    assert_latency_based_settles("Vegas", &knee(Vegas::default()).await);
}

#[tokio::test(start_paused = true)]
async fn aimd_keeps_server_rejections_under_two_percent() {
    let run = knee(aimd()).await;
    let rejected = run.share(30.0, 120.0, 503);
    assert!(rejected < 0.02, "503s: {:.2} %", rejected * 100.0);
    // Loss-based: it sits just under the server's hard limit of 16.
    assert!(
        run.max_limit(30.0, 120.0) <= 17,
        "{}",
        run.max_limit(30.0, 120.0)
    );
    assert!(run.goodput(30.0, 120.0) > 75.0);
}

/// Under a 429 rate limit of 20/s (about 2 in flight at 100 ms), the limit
/// comes down, far below where the same algorithm settles without it.
async fn assert_falls_under_a_rate_limit<A: Algorithm>(name: &str, make: impl Fn() -> A) {
    let free = scenario::run(&Scenario::knee(), make()).await;
    let limited = scenario::run(&Scenario::rate_limited(), make()).await;
    let (before, after) = (
        free.mean_limit(30.0, 120.0),
        limited.mean_limit(30.0, 120.0),
    );
    assert!(
        after <= 4.0,
        "{name}: mean limit {after:.1} under the rate limit"
    );
    assert!(after < before / 2.0, "{name}: {after:.1} vs {before:.1}");
    assert!(
        limited.max_limit(30.0, 120.0) < free.max_limit(30.0, 120.0),
        "{name}: no growth"
    );
    // The server's rate limit is used, not starved: about 20 a second.
    let goodput = limited.goodput(30.0, 120.0);
    assert!(goodput > 15.0, "{name}: {goodput:.1}/s");
}

#[tokio::test(start_paused = true)]
async fn every_limit_falls_under_a_rate_limit() {
    assert_falls_under_a_rate_limit("AIMD", aimd).await;
    assert_falls_under_a_rate_limit("Gradient", Gradient::default).await;
    assert_falls_under_a_rate_limit("Vegas", Vegas::default).await;
}

/// Capacity 16 → 4 at 60 s → 16 at 120 s: the latency-based limits follow
/// both ways within 30 s.
async fn assert_follows_capacity<A: Algorithm>(name: &str, algorithm: A) {
    let run = scenario::run(&Scenario::capacity_step(), algorithm).await;
    for (from, until, low, high) in [
        (0.0, 60.0, 12, 28),
        (60.0, 120.0, 3, 7),
        (120.0, 180.0, 12, 28),
    ] {
        let settled = run
            .settled(from, until, low, high)
            .unwrap_or_else(|| panic!("{name} never settled in [{low}, {high}] after {from} s"));
        assert!(settled <= 30.0, "{name}: {settled:.1} s after {from} s");
    }
}

#[tokio::test(start_paused = true)]
async fn gradient_follows_capacity_down_and_up() {
    assert_follows_capacity("Gradient", Gradient::default()).await;
}

#[tokio::test(start_paused = true)]
async fn vegas_follows_capacity_down_and_up() {
    assert_follows_capacity("Vegas", Vegas::default()).await;
}

#[tokio::test(start_paused = true)]
async fn runs_are_deterministic() {
    let a = knee(Gradient::default()).await;
    let b = knee(Gradient::default()).await;
    assert_eq!(a.limits, b.limits);
    assert_eq!(a.attempts.len(), b.attempts.len());
}
