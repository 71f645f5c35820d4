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
