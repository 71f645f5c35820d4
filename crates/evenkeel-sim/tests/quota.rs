//! Quotas under paused time: exhaustion, `Retry-After`, refill, token costs.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{call, header, json, request, status};
use evenkeel_sim::{QuotaKind, Sim, TokenCost, TokenQuota};
use http::{HeaderName, Request, StatusCode};
use http_body_util::Full;
use tokio::time::{Instant, sleep};
use tower::ServiceExt;

fn no_latency() -> evenkeel_sim::SimBuilder {
    Sim::builder().latency(Duration::ZERO)
}

#[tokio::test(start_paused = true)]
async fn request_quota_exhaustion_answers_429_with_retry_after_rounded_up() {
    // 0.4 requests per second: one token every 2.5 s.
    let sim = no_latency().requests(0.4, 3).build().unwrap();
    for i in 0..3 {
        assert_eq!(status(&sim, &format!("ok-{i}")).await, 200);
    }
    let res = call(&sim, "limited").await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // 2.5 s rounds up to 3.
    assert_eq!(header(&res, "retry-after"), Some("3"));
    assert_eq!(header(&res, "retry-after-ms"), None, "off by default");
    let body = json(res).await;
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requests")
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_never_zero_and_retry_after_ms_rounds_up() {
    // 1000 per second: the wait after exhaustion is 1 ms.
    let sim = no_latency()
        .requests(1000.0, 1)
        .retry_after_ms(true)
        .build()
        .unwrap();
    assert_eq!(status(&sim, "a").await, 200);
    let res = call(&sim, "b").await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after"), Some("1"));
    assert_eq!(header(&res, "retry-after-ms"), Some("1"));

    // 3 per second: 333.33... ms, rounded up.
    let sim = no_latency()
        .requests(3.0, 1)
        .retry_after_ms(true)
        .build()
        .unwrap();
    assert_eq!(status(&sim, "a").await, 200);
    let res = call(&sim, "b").await.unwrap();
    assert_eq!(header(&res, "retry-after"), Some("1"));
    assert_eq!(header(&res, "retry-after-ms"), Some("334"));
}

#[tokio::test(start_paused = true)]
async fn waiting_out_retry_after_is_enough_and_a_429_charges_nothing() {
    let sim = no_latency().requests(0.5, 2).build().unwrap();
    assert_eq!(status(&sim, "a").await, 200);
    assert_eq!(status(&sim, "b").await, 200);
    // Hammering while limited does not push the refill further out.
    let mut waits = Vec::new();
    for _ in 0..5 {
        let res = call(&sim, "c").await.unwrap();
        assert_eq!(res.status(), 429);
        waits.push(header(&res, "retry-after").unwrap().parse::<u64>().unwrap());
    }
    assert_eq!(waits, vec![2; 5]);
    sleep(Duration::from_secs(2)).await;
    assert_eq!(status(&sim, "c").await, 200);
    assert_eq!(status(&sim, "d").await, 429);
}

#[tokio::test(start_paused = true)]
async fn refills_over_paused_time_at_the_configured_rate() {
    let sim = no_latency().requests(10.0, 10).build().unwrap();
    let start = Instant::now();
    let mut ok = 0;
    // Two simulated minutes of a client asking every 10 ms.
    while start.elapsed() < Duration::from_secs(120) {
        if status(&sim, "x").await == 200 {
            ok += 1;
        }
        sleep(Duration::from_millis(10)).await;
    }
    // The burst, then 10 per second.
    let expected = 10 + 10 * 120;
    assert!(
        (expected - 2..=expected + 1).contains(&ok),
        "{ok} successes, expected about {expected}"
    );
    let handle = sim.handle();
    let q = handle.quota(QuotaKind::Requests).unwrap();
    assert_eq!(q.limit, 10);
    assert!(q.remaining <= 1);
}

#[tokio::test(start_paused = true)]
async fn token_quota_charged_from_a_header() {
    let sim = no_latency()
        .tokens(100.0, 1_000, TokenCost::default_header())
        .build()
        .unwrap();
    let with_cost = |cost: &str| {
        Request::post("/v1/messages")
            .header("x-sim-tokens", cost)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let res = sim.clone().oneshot(with_cost("600")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "anthropic-ratelimit-tokens-remaining"),
        Some("400")
    );
    let res = sim.clone().oneshot(with_cost("600")).await.unwrap();
    assert_eq!(res.status(), 429);
    // 200 tokens missing at 100 per second.
    assert_eq!(header(&res, "retry-after"), Some("2"));
    let body = json(res).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens")
    );

    // Missing header: free. Malformed: 400. More than the burst: 413.
    let free = sim.clone().oneshot(request("free", "")).await.unwrap();
    assert_eq!(free.status(), 200);
    assert_eq!(
        header(&free, "anthropic-ratelimit-tokens-remaining"),
        Some("400")
    );
    for bad in ["-1", "lots", "1.5", "99999999999999999999999"] {
        let res = sim.clone().oneshot(with_cost(bad)).await.unwrap();
        assert_eq!(res.status(), 400, "{bad}");
        assert_eq!(json(res).await["error"]["type"], "invalid_request_error");
    }
    let res = sim.clone().oneshot(with_cost("1001")).await.unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(json(res).await["error"]["type"], "request_too_large");

    sleep(Duration::from_secs(2)).await;
    let res = sim.clone().oneshot(with_cost("600")).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn token_header_name_is_configurable() {
    let name = HeaderName::from_static("x-cost");
    let sim = no_latency()
        .tokens(1.0, 10, TokenCost::Header(name))
        .build()
        .unwrap();
    let req = Request::post("/")
        .header("x-cost", "7")
        .header("x-sim-tokens", "1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = sim.clone().oneshot(req).await.unwrap();
    assert_eq!(
        header(&res, "anthropic-ratelimit-tokens-remaining"),
        Some("3")
    );
}

#[tokio::test(start_paused = true)]
async fn token_quota_charged_by_body_size() {
    let sim = no_latency()
        .tokens(10.0, 100, TokenCost::BodyBytes)
        .build()
        .unwrap();
    let body = "x".repeat(60).leak();
    let res = sim.clone().oneshot(request("a", body)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "anthropic-ratelimit-tokens-remaining"),
        Some("40")
    );
    let res = sim.clone().oneshot(request("b", body)).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after"), Some("2"));
}

#[tokio::test(start_paused = true)]
async fn input_token_quota_estimates_a_quarter_of_the_body() {
    let sim = no_latency()
        .requests(100.0, 100)
        .input_tokens(10.0, 100)
        .build()
        .unwrap();
    // 41 bytes: 11 input tokens (rounded up).
    let res = sim
        .clone()
        .oneshot(request("a", "0123456789012345678901234567890123456789x"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "anthropic-ratelimit-input-tokens-remaining"),
        Some("89")
    );
    assert_eq!(
        header(&res, "anthropic-ratelimit-requests-remaining"),
        Some("99")
    );
    let body = json(res).await;
    assert_eq!(body["usage"]["input_tokens"], 11);
    // The combined tokens family mirrors the tightest token quota.
    let q = sim.handle().quota(QuotaKind::InputTokens).unwrap();
    assert_eq!(q.remaining, 89);
}

#[tokio::test(start_paused = true)]
async fn the_longest_wait_wins_and_nothing_is_charged_on_429() {
    let sim = no_latency()
        .requests(1.0, 5)
        .token_quota(TokenQuota::tokens(10.0, 100, TokenCost::default_header()))
        .build()
        .unwrap();
    let with_cost = |cost: u64| {
        Request::post("/")
            .header("x-sim-tokens", cost)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert_eq!(
        sim.clone().oneshot(with_cost(100)).await.unwrap().status(),
        200
    );
    let res = sim.clone().oneshot(with_cost(100)).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(
        header(&res, "retry-after"),
        Some("10"),
        "tokens: 100 / 10 per s"
    );
    // The request bucket was not charged for the rejected request.
    assert_eq!(
        header(&res, "anthropic-ratelimit-requests-remaining"),
        Some("4")
    );
    assert_eq!(
        sim.handle().quota(QuotaKind::Requests).unwrap().remaining,
        4
    );
}

#[tokio::test(start_paused = true)]
async fn oversized_bodies_are_refused_with_413() {
    let sim = no_latency().max_body_bytes(16).build().unwrap();
    let res = sim
        .clone()
        .oneshot(request("big", "this body is longer than sixteen bytes"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json(res).await["error"]["type"], "request_too_large");
    let res = sim
        .clone()
        .oneshot(request("small", "sixteen bytes ok"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
