//! The kill switch, forced answers, counters and the service contract,
//! in-process under paused time.

mod common;

use std::error::Error as _;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use common::{call, header, json, request, status};
use evenkeel_sim::{Sim, SimError, SimErrorKind, SimHandle, SimServer, Stats};
use http::{Request, StatusCode};
use http_body_util::{Full, StreamBody};
use tokio::time::{Instant, sleep};
use tower::{Service, ServiceExt};

fn io_kind(err: &SimError) -> io::ErrorKind {
    err.source()
        .and_then(|s| s.downcast_ref::<io::Error>())
        .expect("io::Error source")
        .kind()
}

#[tokio::test(start_paused = true)]
async fn killed_sim_refuses_calls_until_revived() {
    let sim = Sim::builder().latency(Duration::ZERO).build().unwrap();
    let handle = sim.handle();
    assert_eq!(status(&sim, "before").await, 200);
    handle.kill().await;
    assert!(handle.is_killed());
    for _ in 0..3 {
        let err = call(&sim, "while-killed").await.unwrap_err();
        assert_eq!(err.kind(), SimErrorKind::Refused);
        assert_eq!(io_kind(&err), io::ErrorKind::ConnectionRefused);
    }
    handle.kill().await; // killing twice is harmless
    handle.revive().await.unwrap();
    assert!(!handle.is_killed());
    assert_eq!(status(&sim, "after").await, 200);
    let stats = sim.stats();
    assert_eq!(stats.refused(), 3);
    assert_eq!(stats.attempts(), 2, "refused calls never reached the sim");
    assert_eq!(stats.attempts_for("while-killed"), 0);
}

#[tokio::test(start_paused = true)]
async fn kill_aborts_requests_in_flight() {
    let sim = Sim::builder()
        .latency(Duration::from_secs(10))
        .build()
        .unwrap();
    let handle = sim.handle();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..3 {
        let sim = sim.clone();
        calls.spawn(async move { call(&sim, &format!("in-flight-{i}")).await });
    }
    sleep(Duration::from_secs(1)).await;
    assert_eq!(sim.stats().in_flight(), 3);
    let killed_at = Instant::now();
    handle.kill().await;
    while let Some(res) = calls.join_next().await {
        let err = res.unwrap().unwrap_err();
        assert_eq!(err.kind(), SimErrorKind::Aborted);
        assert_eq!(io_kind(&err), io::ErrorKind::ConnectionReset);
    }
    assert_eq!(killed_at.elapsed(), Duration::ZERO, "aborted at once");
    let stats = sim.stats();
    assert_eq!(stats.aborted(), 3);
    assert_eq!(stats.successes(), 0);
    assert_eq!(stats.responses(), 0);
    assert_eq!(stats.in_flight(), 0);
    assert_eq!(stats.cancelled(), 0);
}

#[tokio::test(start_paused = true)]
async fn forced_429_with_retry_after_for_a_while() {
    let sim = Sim::builder()
        .latency(Duration::ZERO)
        .requests(10.0, 10)
        .build()
        .unwrap();
    let handle = sim.handle();
    handle
        .force(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(30)),
            Duration::from_secs(60),
        )
        .unwrap();
    for _ in 0..20 {
        let res = call(&sim, "x").await.unwrap();
        assert_eq!(res.status(), 429);
        assert_eq!(header(&res, "retry-after"), Some("30"));
        assert_eq!(
            header(&res, "anthropic-ratelimit-requests-remaining"),
            Some("10")
        );
        assert_eq!(json(res).await["error"]["type"], "rate_limit_error");
        sleep(Duration::from_secs(2)).await;
    }
    // 40 s in; at 60 s it ends by itself.
    sleep(Duration::from_secs(20)).await;
    assert_eq!(status(&sim, "x").await, 200);

    handle
        .force(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            Duration::from_secs(5),
        )
        .unwrap();
    let res = call(&sim, "y").await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(header(&res, "retry-after"), None);
    assert_eq!(json(res).await["error"]["type"], "overloaded_error");
    handle.clear_force();
    assert_eq!(status(&sim, "y").await, 200);

    let err = handle
        .force(StatusCode::OK, None, Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(err.field(), "status");
}

#[tokio::test(start_paused = true)]
async fn counters_and_duplicates() {
    let sim = Sim::builder()
        .latency(Duration::ZERO)
        .requests(1.0, 2)
        .build()
        .unwrap();
    assert_eq!(status(&sim, "once").await, 200);
    assert_eq!(status(&sim, "twice").await, 200);
    assert_eq!(status(&sim, "retried").await, 429);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(status(&sim, "retried").await, 200);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(status(&sim, "twice").await, 200);
    let before = sim.stats();

    sleep(Duration::from_secs(1)).await;
    let anonymous = Request::post("/").body(Full::new(Bytes::new())).unwrap();
    assert_eq!(sim.clone().oneshot(anonymous).await.unwrap().status(), 200);

    let stats = sim.stats();
    assert_eq!(stats.attempts(), 6);
    assert_eq!(stats.attempts_for("retried"), 2);
    assert_eq!(stats.attempts_for("twice"), 2);
    assert_eq!(stats.attempts_for("never"), 0);
    assert_eq!(stats.attempts_by_id().len(), 3);
    assert_eq!(stats.successes(), 5);
    assert_eq!(stats.successes_for("retried"), 1);
    assert_eq!(stats.successes_for("twice"), 2);
    assert_eq!(stats.duplicates(), ["twice"]);
    assert_eq!(stats.status_count(StatusCode::OK), 5);
    assert_eq!(stats.status_count(StatusCode::TOO_MANY_REQUESTS), 1);
    assert_eq!(stats.statuses().len(), 2);
    assert_eq!(stats.responses(), 6);
    assert_eq!(stats.max_in_flight(), 1);

    // A snapshot does not move.
    assert_eq!(before.attempts(), 5);
    assert_eq!(before.successes(), 4);

    sim.handle().reset_stats();
    let zero = sim.stats();
    assert_eq!(zero.attempts(), 0);
    assert!(zero.duplicates().is_empty());
    assert_eq!(stats.attempts(), 6);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_cancels_and_frees_the_slot() {
    let sim = Sim::builder()
        .latency(Duration::from_secs(5))
        .build()
        .unwrap();
    let pending = tokio::time::timeout(Duration::from_secs(1), call(&sim, "gave-up")).await;
    assert!(pending.is_err(), "timed out");
    let stats = sim.stats();
    assert_eq!(stats.cancelled(), 1);
    assert_eq!(stats.in_flight(), 0);
    assert_eq!(stats.aborted(), 0);
    assert_eq!(stats.successes_for("gave-up"), 0);
    assert_eq!(stats.attempts_for("gave-up"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_request_body_is_an_error_with_the_cause_in_the_chain() {
    let sim = Sim::builder().latency(Duration::ZERO).build().unwrap();
    let frames = futures_util::stream::iter([
        Ok(http_body::Frame::data(Bytes::from_static(b"{\"partial\":"))),
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "client went away",
        )),
    ]);
    let req = Request::post("/").body(StreamBody::new(frames)).unwrap();
    let err = sim.clone().oneshot(req).await.unwrap_err();
    assert_eq!(err.kind(), SimErrorKind::Body);
    assert!(format!("{:?}", err.source().unwrap()).contains("client went away"));
    assert_eq!(sim.stats().cancelled(), 1);
}

#[tokio::test(start_paused = true)]
async fn always_ready_and_usable_through_tower() {
    let mut sim = Sim::builder().latency(Duration::ZERO).build().unwrap();
    let ready = ServiceExt::<Request<Full<Bytes>>>::ready(&mut sim)
        .await
        .unwrap();
    let res = ready.call(request("id-1", "{}")).await.unwrap();
    let body = json(res).await;
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["request_id"], "id-1");
    assert!(body["id"].as_str().unwrap().starts_with("msg_"));
    // Boxed into a BoxError, it is still a SimError.
    let sim = Sim::builder().latency(Duration::ZERO).build().unwrap();
    sim.handle().kill().await;
    let boxed: tower::BoxError = call(&sim, "x").await.unwrap_err().into();
    assert!(boxed.is::<SimError>());
}

#[test]
fn public_types_are_send_sync_and_clone_where_it_matters() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn clone<T: Clone>() {}
    send_sync::<Sim>();
    send_sync::<SimHandle>();
    send_sync::<SimServer>();
    send_sync::<Stats>();
    send_sync::<SimError>();
    send_sync::<evenkeel_sim::ConfigError>();
    clone::<Sim>();
    clone::<SimHandle>();
    clone::<Stats>();
    fn send_future<T: Send + 'static>(_: &T) {}
    let sim = Sim::builder().build().unwrap();
    let fut = sim.clone().call(request("x", ""));
    send_future(&fut);
}
