//! Rate-limit awareness: endpoints in a cooldown are skipped until it ends.

mod common;

use std::time::Duration;

use common::*;
use evenkeel_core::{FailureKind, Outcome, classify_error};
use evenkeel_failover::EndpointState;
use evenkeel_failover::error::NoEndpointAvailable;
use tokio::time::{Instant, sleep};

#[tokio::test(start_paused = true)]
async fn a_429_with_a_wait_sends_traffic_to_the_backup_until_it_ends() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let recorder = Recorder::default();
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .on_event(recorder.listener())
        .build()
        .unwrap();
    let handle = lb.handle();
    serve_n(&mut lb, 3).await;
    assert_eq!(handle.active_tier(), Some(0));

    primary.answer(with_header(429, "retry-after", "30"));
    let who = serve_n(&mut lb, 10).await;
    assert!(who.iter().all(|w| w == "backup"), "{who:?}");
    // One 429, then the primary is skipped without being asked.
    assert_eq!(primary.hits(), 4);
    let status = handle.endpoint("primary").unwrap();
    assert_eq!(status.state, EndpointState::CoolingDown);
    assert_eq!(
        status.cooling_until,
        Some(Instant::now() + Duration::from_secs(30))
    );
    assert_eq!(handle.active_tier(), Some(1));
    assert_eq!(handle.ejections(), 0, "a 429 is not a failure");

    primary.answer(ok());
    sleep(Duration::from_millis(29_600)).await;
    // Within the threshold (500 ms) of the end: the primary is back.
    let who = serve_n(&mut lb, 3).await;
    assert!(who.iter().all(|w| w == "primary"), "{who:?}");
    assert_eq!(handle.active_tier(), Some(0));
    assert_eq!(handle.failbacks(), 1);
    let events = recorder.events();
    for expected in [
        "failover primary -> backup rate_limited",
        "state primary cooling_down",
        "state primary healthy",
        "failback primary",
    ] {
        assert!(
            events.contains(&expected.to_owned()),
            "{expected}: {events:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_503_with_a_wait_cools_down_too() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    primary.answer(with_header(503, "retry-after", "10"));
    // A 503 with a wait may be resent whatever the method.
    let res = send(&mut lb, post("p1", "{}")).await.unwrap();
    assert_eq!(served_by(&res), "backup");
    serve_n(&mut lb, 5).await;
    assert_eq!(primary.hits(), 1);
    sleep(Duration::from_secs(10)).await;
    primary.answer(ok());
    assert_eq!(serve_n(&mut lb, 1).await, ["primary"]);
}

#[tokio::test(start_paused = true)]
async fn a_quota_cooldown_is_skipped_only_beyond_the_threshold() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let quota = ManualCooldown::default();
    let mut lb = balancer([
        primary.endpoint().cooldown(quota.clone()),
        backup.endpoint().tier(1),
    ])
    .cooldown_threshold(Duration::from_secs(1))
    .build()
    .unwrap();

    // Out of quota for 10 s: skipped, without a request.
    quota.set(Some(Instant::now() + Duration::from_secs(10)));
    let who = serve_n(&mut lb, 5).await;
    assert!(who.iter().all(|w| w == "backup"), "{who:?}");
    assert_eq!(primary.hits(), 0);

    // Room again in 800 ms: below the threshold, the primary's own quota
    // layer waits that out.
    quota.set(Some(Instant::now() + Duration::from_millis(800)));
    assert_eq!(serve_n(&mut lb, 3).await, ["primary"; 3]);

    // The cooldown as reported ends: back at once.
    quota.set(Some(Instant::now() + Duration::from_secs(10)));
    assert_eq!(serve_n(&mut lb, 1).await, ["backup"]);
    quota.set(None);
    assert_eq!(serve_n(&mut lb, 1).await, ["primary"]);
}

#[tokio::test(start_paused = true)]
async fn when_every_endpoint_cools_down_a_request_waits_for_the_first() {
    let only = Upstream::new("only");
    let mut lb = balancer([only.endpoint()]).build().unwrap();
    only.answer(with_header(429, "retry-after", "5"));
    let res = send(&mut lb, get("g1")).await.unwrap();
    assert_eq!(res.status(), 429);

    // The only endpoint cools down for 5 s: the next request waits that
    // out (a wait, not an attempt: the endpoint is not asked meanwhile),
    // then goes.
    only.answer(ok());
    let start = Instant::now();
    let res = send(&mut lb, get("g2")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(only.hits(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_cooldown_past_the_cap_or_the_deadline_fails_at_once() {
    let only = Upstream::new("only");
    let mut lb = balancer([only.endpoint()]).build().unwrap();
    only.answer(with_header(429, "retry-after", "30"));
    let res = send(&mut lb, get("g1")).await.unwrap();
    assert_eq!(res.status(), 429);

    // 30 s is past the 10 s cap on cooldown waits: refused now.
    let start = Instant::now();
    let err = send(&mut lb, get("g2")).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    let none = err
        .downcast_ref::<NoEndpointAvailable>()
        .expect("a NoEndpointAvailable");
    assert_eq!(none.until(), Some(Instant::now() + Duration::from_secs(30)));
    assert_eq!(none.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(none.endpoint(), Some("only"));
    assert!(none.to_string().contains("`only`"), "{none}");
    assert!(none.to_string().contains("cap"), "{none}");
    // A retry layer above sees a local quota refusal: never sent, 30 s.
    match classify_error(&*err) {
        Outcome::Failed(f) => {
            assert_eq!(f.kind, FailureKind::LocalQuota);
            assert_eq!(f.wait, Some(Duration::from_secs(30)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(only.hits(), 1);

    // A cooldown that fits the cap but not the request's deadline.
    let only = Upstream::new("only");
    let mut lb = balancer([only.endpoint()]).build().unwrap();
    only.answer(with_header(429, "retry-after", "5"));
    send(&mut lb, get("g1")).await.unwrap();
    let mut request = get("g2");
    request
        .extensions_mut()
        .insert(evenkeel_core::ext::AttemptContext::new(
            1,
            Some(Instant::now() + Duration::from_secs(3)),
        ));
    let err = send(&mut lb, request).await.unwrap_err();
    let none = err.downcast_ref::<NoEndpointAvailable>().unwrap();
    assert!(none.to_string().contains("deadline"), "{none}");
    assert_eq!(only.hits(), 1);

    only.answer(ok());
    sleep(Duration::from_secs(5)).await;
    assert_eq!(serve_n(&mut lb, 1).await, ["only"]);
}

#[tokio::test(start_paused = true)]
async fn an_absurd_wait_is_capped_without_overflowing() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    primary.answer(with_header(429, "retry-after", "18446744073709551615"));
    assert_eq!(serve_n(&mut lb, 3).await, ["backup"; 3]);
    let status = lb.handle().endpoint("primary").unwrap();
    assert_eq!(status.state, EndpointState::CoolingDown);
    // Capped at the default 120 s, not 584 billion years.
    assert_eq!(
        status.cooling_until,
        Some(Instant::now() + evenkeel_failover::DEFAULT_MAX_COOLDOWN)
    );
    primary.answer(ok());
    sleep(evenkeel_failover::DEFAULT_MAX_COOLDOWN).await;
    assert_eq!(serve_n(&mut lb, 1).await, ["primary"]);
    let status = lb.handle().endpoint("primary").unwrap();
    assert_eq!(status.cooling_until, None, "over, and cleared");

    // The only endpoint, told to wait for ever: capped too, and the error
    // says so without panicking.
    let only = Upstream::new("only");
    let mut lb = balancer([only.endpoint()])
        .max_cooldown(Duration::from_secs(3600))
        .build()
        .unwrap();
    only.answer(with_header(429, "retry-after-ms", "99999999999999999999"));
    let _ = send(&mut lb, get("g1")).await.unwrap();
    let err = send(&mut lb, get("g2"))
        .await
        .expect_err("an hour is past the cap on cooldown waits");
    let none = err.downcast_ref::<NoEndpointAvailable>().unwrap();
    assert_eq!(none.retry_after(), Some(Duration::from_secs(3600)));
    assert!(err.to_string().contains("no endpoint available"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_with_a_cooldown_source_keeps_no_cooldown_of_its_own() {
    // One cooldown per endpoint: the primary's quota layer (here a manual
    // source) owns it. The 429's 30 s is that layer's to keep; the
    // balancer reads the source, and when the source says 2 s, it is 2 s.
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let source = ManualCooldown::default();
    let mut lb = balancer([
        primary.endpoint().cooldown(source.clone()),
        backup.endpoint().tier(1),
    ])
    .build()
    .unwrap();
    let handle = lb.handle();
    primary.answer(with_header(429, "retry-after", "30"));
    source.set(Some(Instant::now() + Duration::from_secs(2)));
    let who = serve_n(&mut lb, 3).await;
    assert_eq!(who, ["backup", "backup", "backup"]);
    let status = handle.endpoint("primary").unwrap();
    assert_eq!(status.state, EndpointState::CoolingDown);
    assert_eq!(
        status.cooling_until,
        Some(Instant::now() + Duration::from_secs(2)),
        "the source's cooldown, not the 429's 30 s"
    );
    primary.answer(ok());
    source.set(None);
    sleep(Duration::from_secs(2)).await;
    let who = serve_n(&mut lb, 2).await;
    assert_eq!(who, ["primary", "primary"], "back when the source says so");
}
