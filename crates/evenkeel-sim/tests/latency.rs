//! The latency model (Little's law above capacity) and `reject_above`, under
//! paused time.

mod common;

use std::time::Duration;

use common::{call, json, status};
use evenkeel_sim::Sim;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Starts `n` calls at the same instant; returns each one's latency and
/// status, in start order.
async fn burst(sim: &Sim, n: usize) -> Vec<(Duration, u16)> {
    let mut set = JoinSet::new();
    for i in 0..n {
        let sim = sim.clone();
        set.spawn(async move {
            let start = Instant::now();
            let status = status(&sim, &format!("c{i}")).await;
            (i, start.elapsed(), status)
        });
    }
    let mut out = vec![(Duration::ZERO, 0); n];
    while let Some(res) = set.join_next().await {
        let (i, elapsed, status) = res.unwrap();
        out[i] = (elapsed, status);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn base_latency_up_to_capacity() {
    let sim = Sim::builder()
        .latency(Duration::from_millis(50))
        .capacity(4)
        .build()
        .unwrap();
    for (elapsed, status) in burst(&sim, 4).await {
        assert_eq!(status, 200);
        assert_eq!(elapsed, Duration::from_millis(50));
    }
    assert_eq!(sim.stats().max_in_flight(), 4);
}

#[tokio::test(start_paused = true)]
async fn latency_grows_with_in_flight_above_capacity() {
    let sim = Sim::builder()
        .latency(Duration::from_millis(100))
        .capacity(4)
        .build()
        .unwrap();
    let got = burst(&sim, 16).await;
    // The k-th request in finds k in flight: 100 ms × max(1, k / 4).
    for (i, (elapsed, status)) in got.iter().enumerate() {
        let k = i as u64 + 1;
        let want = Duration::from_millis(100 * k.max(4) / 4);
        assert_eq!(*status, 200);
        let diff = elapsed.abs_diff(want);
        assert!(
            diff <= Duration::from_millis(1),
            "request {k}: {elapsed:?} vs {want:?}"
        );
    }
    assert_eq!(sim.stats().max_in_flight(), 16);
}

#[tokio::test(start_paused = true)]
async fn no_capacity_means_no_growth() {
    let sim = Sim::builder()
        .latency(Duration::from_millis(20))
        .build()
        .unwrap();
    for (elapsed, _) in burst(&sim, 50).await {
        assert_eq!(elapsed, Duration::from_millis(20));
    }
}

#[tokio::test(start_paused = true)]
async fn capacity_changes_at_run_time() {
    let sim = Sim::builder()
        .latency(Duration::from_millis(40))
        .capacity(16)
        .build()
        .unwrap();
    let handle = sim.handle();
    let slowest = |v: Vec<(Duration, u16)>| v.into_iter().map(|(d, _)| d).max().unwrap();
    assert_eq!(slowest(burst(&sim, 16).await), Duration::from_millis(40));
    handle.set_capacity(4).unwrap();
    assert_eq!(slowest(burst(&sim, 16).await), Duration::from_millis(160));
    handle.set_capacity(16).unwrap();
    assert_eq!(slowest(burst(&sim, 16).await), Duration::from_millis(40));
    handle.clear_capacity();
    assert_eq!(slowest(burst(&sim, 64).await), Duration::from_millis(40));
    assert_eq!(handle.set_capacity(0).unwrap_err().field(), "capacity");

    handle.set_latency(Duration::from_millis(5)).unwrap();
    assert_eq!(slowest(burst(&sim, 2).await), Duration::from_millis(5));
}

#[tokio::test(start_paused = true)]
async fn reject_above_answers_503_at_once() {
    let sim = Sim::builder()
        .latency(Duration::from_millis(100))
        .reject_above(3)
        .build()
        .unwrap();
    let got = burst(&sim, 5).await;
    let statuses: Vec<u16> = got.iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses, [200, 200, 200, 503, 503]);
    assert_eq!(got[3].0, Duration::ZERO, "rejected without latency");
    assert_eq!(got[0].0, Duration::from_millis(100));

    let sim2 = sim.clone();
    let first = tokio::spawn(async move { call(&sim2, "long").await });
    tokio::task::yield_now().await;
    let handle = sim.handle();
    handle.set_reject_above(Some(1)).unwrap();
    let res = call(&sim, "second").await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(json(res).await["error"]["type"], "overloaded_error");
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    handle.set_reject_above(None).unwrap();
    assert_eq!(
        burst(&sim, 5)
            .await
            .iter()
            .filter(|(_, s)| *s == 200)
            .count(),
        5
    );
    assert_eq!(
        handle.set_reject_above(Some(0)).unwrap_err().field(),
        "reject_above"
    );
}
