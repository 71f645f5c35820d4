//! Routing within and across tiers, run-time changes, and events.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Waker};
use std::time::Duration;

use common::*;
use evenkeel_failover::{EndpointState, Failover, Selection};
use futures_util::StreamExt;
use http::Request;
use tokio::sync::mpsc;
use tower::Service;
use tower::discover::Change;

#[tokio::test(start_paused = true)]
async fn the_primary_tier_takes_all_traffic_while_it_is_healthy() {
    let a = Upstream::new("a");
    let b = Upstream::new("b");
    let backup = Upstream::new("backup");
    let mut lb = balancer([a.endpoint(), b.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    serve_n(&mut lb, 100).await;
    assert_eq!(backup.hits(), 0);
    assert_eq!(a.hits() + b.hits(), 100);
    assert!(
        a.hits() > 20 && b.hits() > 20,
        "{} / {}",
        a.hits(),
        b.hits()
    );
}

#[tokio::test(start_paused = true)]
async fn round_robin_takes_turns_within_a_tier() {
    let ups = [Upstream::new("a"), Upstream::new("b"), Upstream::new("c")];
    let mut lb = balancer(ups.iter().map(Upstream::endpoint))
        .selection(Selection::RoundRobin)
        .build()
        .unwrap();
    let who = serve_n(&mut lb, 30).await;
    for u in &ups {
        assert_eq!(u.hits(), 10);
    }
    assert_ne!(who[0], who[1]);
    assert_ne!(who[1], who[2]);
}

#[tokio::test(start_paused = true)]
async fn power_of_two_choices_evens_out_requests_in_flight() {
    let ups = [Upstream::new("a"), Upstream::new("b"), Upstream::new("c")];
    for u in &ups {
        u.answer(Answer::Hang);
    }
    let mut lb = balancer(ups.iter().map(Upstream::endpoint))
        .build()
        .unwrap();
    let handle = lb.handle();
    let mut cx = Context::from_waker(Waker::noop());
    let mut calls = Vec::new();
    for i in 0..60 {
        assert!(Service::<Request<Body>>::poll_ready(&mut lb, &mut cx).is_ready());
        let mut call = Box::pin(lb.call(get(&format!("r{i}"))));
        assert!(call.as_mut().poll(&mut cx).is_pending());
        calls.push(call);
    }
    let in_flight: Vec<usize> = handle.endpoints().iter().map(|e| e.in_flight).collect();
    let (min, max) = (
        *in_flight.iter().min().unwrap(),
        *in_flight.iter().max().unwrap(),
    );
    // Random choice alone would spread 60 requests far less evenly.
    assert!(max - min <= 3, "{in_flight:?}");
    drop(calls);
    assert!(handle.endpoints().iter().all(|e| e.in_flight == 0));
}

#[tokio::test(start_paused = true)]
async fn endpoints_can_be_added_removed_and_drained() {
    let a = Upstream::new("a");
    let b = Upstream::new("b");
    let recorder = Recorder::default();
    let mut lb = balancer([a.endpoint()])
        .on_event(recorder.listener())
        .build()
        .unwrap();
    let handle = lb.handle();
    assert_eq!(serve_n(&mut lb, 1).await, ["a"]);

    // A better tier added at run time takes over.
    assert!(!handle.insert(b.endpoint().tier(0)));
    handle.insert(a.endpoint().tier(1)); // `a` becomes the backup
    assert_eq!(serve_n(&mut lb, 3).await, ["b"; 3]);
    let tiers: Vec<(String, u32)> = handle
        .endpoints()
        .into_iter()
        .map(|e| (e.name, e.tier))
        .collect();
    assert_eq!(tiers, [("b".to_owned(), 0), ("a".to_owned(), 1)]);

    // Draining with a request in flight: no new requests, removed when the
    // last one finishes.
    b.answer(Answer::Hang);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Service::<Request<Body>>::poll_ready(&mut lb, &mut cx).is_ready());
    let mut call = Box::pin(lb.call(get("slow")));
    assert!(call.as_mut().poll(&mut cx).is_pending());
    assert!(handle.drain("b"));
    assert!(!handle.drain("b"), "already draining");
    assert_eq!(handle.endpoint("b").unwrap().state, EndpointState::Draining);
    assert_eq!(serve_n(&mut lb, 2).await, ["a"; 2]);
    assert_eq!(handle.endpoint("b").unwrap().in_flight, 1);
    drop(call);
    assert!(handle.endpoint("b").is_none(), "removed once idle");

    assert!(handle.remove("a"));
    assert!(!handle.remove("a"));
    assert!(handle.endpoints().is_empty());
    let events = recorder.events();
    for expected in [
        "state b healthy",
        "state b draining",
        "state b removed",
        "state a removed",
    ] {
        assert!(
            events.contains(&expected.to_owned()),
            "{expected}: {events:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_discover_stream_drives_the_endpoint_set() {
    let a = Upstream::new("a");
    let b = Upstream::new("b");
    let mut lb = Failover::<Upstream>::builder().build().unwrap();
    let handle = lb.handle();
    let (tx, rx) = mpsc::unbounded_channel();
    let stream = tokio_stream_from(rx).map(Ok::<_, Infallible>);
    let task = tokio::spawn(handle.clone().discover(stream));

    tx.send(Change::Insert(1, a.endpoint())).unwrap();
    tx.send(Change::Insert(2, b.endpoint().tier(1))).unwrap();
    settle(|| handle.endpoints().len() == 2).await;
    assert_eq!(serve_n(&mut lb, 2).await, ["a"; 2]);

    tx.send(Change::Remove(1)).unwrap();
    settle(|| handle.endpoints().len() == 1).await;
    assert_eq!(serve_n(&mut lb, 2).await, ["b"; 2]);

    drop(tx);
    task.await.unwrap().unwrap();
}

/// Lets spawned tasks run until `condition` holds.
async fn settle(condition: impl Fn() -> bool) {
    for _ in 0..100 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition not met");
}

/// An `UnboundedReceiver` as a `Stream`.
fn tokio_stream_from<T>(rx: mpsc::UnboundedReceiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
}

#[tokio::test(start_paused = true)]
async fn builders_refuse_what_cannot_work() {
    let a = || Upstream::new("a").endpoint();
    let err = balancer([a(), a()]).build().unwrap_err();
    assert_eq!(err.field(), "endpoint");
    assert!(err.to_string().contains("`a` is given twice"), "{err}");
    let err = balancer([a()])
        .ejection(Duration::from_secs(30), Duration::from_secs(10))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "ejection");
    let err = balancer([a()])
        .success_rate(f64::NAN, 10, Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "success_rate");
    let err = balancer([a()]).max_attempts(0).build().unwrap_err();
    assert_eq!(err.field(), "max_attempts");
    let err = balancer([a()]).ejection_jitter(-0.1).build().unwrap_err();
    assert_eq!(err.field(), "ejection_jitter");
}

#[test]
fn public_types_are_send_sync_and_clone() {
    fn send_sync<T: Send + Sync>() {}
    fn clone<T: Clone>() {}
    send_sync::<Balancer>();
    clone::<Balancer>();
    send_sync::<evenkeel_failover::FailoverHandle<Upstream>>();
    send_sync::<evenkeel_failover::HealthHandle>();
    send_sync::<evenkeel_failover::error::NoEndpointAvailable>();
    send_sync::<evenkeel_failover::BaseUrlLayer>();
    fn future_is_send<F: Send>(_: &F) {}
    let mut lb = balancer([Upstream::new("a").endpoint()]).build().unwrap();
    let future = send(&mut lb, get("r"));
    future_is_send(&future);
}
