//! The failover balancer over two in-process `evenkeel-sim` upstreams,
//! under paused time: a primary that answers 429 with `Retry-After: 30`
//! sends traffic to the backup for exactly those 30 seconds.

use std::time::Duration;

use bytes::Bytes;
use evenkeel_failover::{Endpoint, EndpointState, Failover};
use evenkeel_sim::Sim;
use http::{Request, StatusCode};
use http_body_util::Full;
use tokio::time::{Instant, sleep_until};
use tower::ServiceExt;

fn get(id: &str) -> Request<Full<Bytes>> {
    Request::get("/v1/messages")
        .header("x-request-id", id)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_moves_traffic_to_the_backup_until_it_ends() {
    let primary = Sim::builder()
        .latency(Duration::from_millis(20))
        .build()
        .unwrap();
    let backup = Sim::builder()
        .latency(Duration::from_millis(20))
        .build()
        .unwrap();
    let lb = Failover::builder()
        .endpoint(Endpoint::new("primary", primary.clone()))
        .endpoint(Endpoint::new("backup", backup.clone()).tier(1))
        .build()
        .unwrap();
    let handle = lb.handle();
    let served_by = |id: &str| match (
        primary.stats().successes_for(id),
        backup.stats().successes_for(id),
    ) {
        (1, 0) => "primary",
        (0, 1) => "backup",
        other => panic!("{id} served {other:?} times"),
    };

    for i in 0..5 {
        let id = format!("warm{i}");
        let res = lb.clone().oneshot(get(&id)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(served_by(&id), "primary");
    }

    // From now on, for 30 s, the primary answers 429 with Retry-After: 30.
    primary
        .handle()
        .force(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(30)),
            Duration::from_secs(30),
        )
        .unwrap();
    let start = Instant::now();
    for second in 0..40u64 {
        sleep_until(start + Duration::from_millis(second * 1000 + 250)).await;
        let id = format!("r{second}");
        let res = lb.clone().oneshot(get(&id)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{id}: every caller is served");
        let expected = if second < 30 { "backup" } else { "primary" };
        assert_eq!(served_by(&id), expected, "at {second}.25 s");
        if second == 10 {
            let status = handle.endpoint("primary").unwrap();
            assert_eq!(status.state, EndpointState::CoolingDown);
        }
    }
    // One 429, on the first request; the primary was not asked again
    // until its wait was over.
    assert_eq!(
        primary.stats().status_count(StatusCode::TOO_MANY_REQUESTS),
        1
    );
    assert_eq!(handle.failovers(), 1);
    assert_eq!(handle.failbacks(), 1);
    assert_eq!(handle.ejections(), 0, "a 429 is not a failure");
}

/// The preset's order: retry outside, failover inside. A failover is an
/// immediate move within one retry attempt; what no endpoint can serve now
/// is left to the retry layer to wait out.
#[tokio::test(start_paused = true)]
async fn under_a_retry_layer_failover_happens_within_one_attempt() {
    use evenkeel_retry::{RetryInfo, RetryLayer};
    use tower::Layer;

    let primary = Sim::builder()
        .latency(Duration::from_millis(20))
        .build()
        .unwrap();
    let backup = Sim::builder()
        .latency(Duration::from_millis(20))
        .build()
        .unwrap();
    primary
        .handle()
        .force(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            Duration::from_secs(3600),
        )
        .unwrap();
    let failover = Failover::builder()
        .endpoint(Endpoint::new("primary", primary.clone()))
        .endpoint(Endpoint::new("backup", backup.clone()).tier(1))
        .build()
        .unwrap();
    let handle = failover.handle();
    let client = RetryLayer::builder()
        .max_attempts(3)
        .build()
        .unwrap()
        .layer(failover);

    let start = Instant::now();
    let res = client.clone().oneshot(get("r1")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(RetryInfo::of(&res).attempts, 1, "no retry was needed");
    assert!(start.elapsed() < Duration::from_millis(100), "no backoff");
    assert_eq!(backup.stats().successes_for("r1"), 1);
    assert_eq!(handle.failovers(), 1);
}

#[tokio::test(start_paused = true)]
async fn under_a_retry_layer_a_cooldown_everywhere_is_waited_out() {
    use evenkeel_retry::{RetryInfo, RetryLayer};
    use tower::Layer;

    let only = Sim::builder()
        .latency(Duration::from_millis(20))
        .build()
        .unwrap();
    only.handle()
        .force(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(2)),
            Duration::from_secs(2),
        )
        .unwrap();
    let failover = Failover::builder()
        .endpoint(Endpoint::new("only", only.clone()))
        .build()
        .unwrap();
    let client = RetryLayer::builder()
        .max_attempts(3)
        .build()
        .unwrap()
        .layer(failover);

    // The 429 has nowhere else to go: it reaches the retry layer, which
    // waits the server's 2 s and sends again.
    let start = Instant::now();
    let res = client.clone().oneshot(get("r1")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(RetryInfo::of(&res).attempts, 2);
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert_eq!(only.stats().attempts_for("r1"), 2);

    // While the only endpoint cools down, the balancer waits the cooldown
    // out itself: a wait, not an attempt. The request reaches the server
    // once, when the cooldown is over, and the retry layer saw one attempt.
    only.handle()
        .force(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(5)),
            Duration::from_secs(5),
        )
        .unwrap();
    let failover = client.get_ref().clone();
    let res = failover.oneshot(get("r2")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let cooling = Instant::now();
    let res = client.clone().oneshot(get("r3")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(RetryInfo::of(&res).attempts, 1);
    assert!(cooling.elapsed() >= Duration::from_secs(5));
    assert_eq!(
        only.stats().attempts_for("r3"),
        1,
        "not sent during the cooldown"
    );
}
