//! Readiness, rejection in `call`, cancellation, and clones.

mod common;

use std::io::ErrorKind;

use bytes::Bytes;
use common::*;
use evenkeel_core::body::ReplayBody;
use evenkeel_core::{FailureKind, Outcome, classify_error};
use evenkeel_failover::error::NoEndpointAvailable;
use evenkeel_failover::{Endpoint, Failover};
use http::{Request, Response};
use http_body_util::Full;
use tokio_test::{assert_pending, assert_ready_ok};
use tower::Service;
use tower_test::mock;

type Req = Request<ReplayBody<Full<Bytes>>>;
type Res = Response<Full<Bytes>>;

#[tokio::test]
async fn ready_when_an_endpoint_is_ready_and_never_calls_an_unready_one() {
    let (a, mut a_handle) = mock::pair::<Req, Res>();
    let (b, mut b_handle) = mock::pair::<Req, Res>();
    let lb = Failover::builder()
        .endpoint(Endpoint::new("a", a))
        .endpoint(Endpoint::new("b", b).tier(1))
        .build()
        .unwrap();
    let mut lb = mock::Spawn::new(lb);

    a_handle.allow(0);
    b_handle.allow(0);
    assert_pending!(lb.poll_ready::<Request<Body>>());

    // The backup becomes ready first: the request spills there (a mock
    // panics if it is called before it is ready).
    b_handle.allow(1);
    assert!(lb.is_woken());
    assert_ready_ok!(lb.poll_ready::<Request<Body>>());
    let mut response = tokio_test::task::spawn(lb.call(get("r1")));
    let (request, send) = b_handle.next_request().await.unwrap();
    assert_eq!(request.headers()["x-request-id"], "r1");
    send.send_response(Response::new(Full::new(Bytes::new())));
    assert_ready_ok!(response.poll());

    // The primary is ready again: it is preferred.
    a_handle.allow(1);
    assert_ready_ok!(lb.poll_ready::<Request<Body>>());
    let _response = lb.call(get("r2"));
    let (request, _send) = a_handle.next_request().await.unwrap();
    assert_eq!(request.headers()["x-request-id"], "r2");
}

#[tokio::test]
async fn waits_for_a_busy_primary_when_spilling_is_off() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .spill_when_busy(false)
        .build()
        .unwrap();
    let mut lb = mock::Spawn::new(lb);
    primary.set_ready(false);
    assert_pending!(lb.poll_ready::<Request<Body>>());
    primary.set_ready(true);
    assert!(lb.is_woken());
    assert_ready_ok!(lb.poll_ready::<Request<Body>>());
    let res = lb.call(get("r1")).await.unwrap();
    assert_eq!(served_by(&res), "primary");
    assert_eq!(backup.hits(), 0);
}

#[tokio::test]
async fn a_busy_primary_spills_by_default() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    primary.set_ready(false);
    assert_eq!(serve_n(&mut lb, 3).await, ["backup"; 3]);
    // Busy is not unhealthy: the primary's record is untouched.
    let status = lb.handle().endpoint("primary").unwrap();
    assert_eq!(status.consecutive_failures, 0);
    assert_eq!(lb.handle().active_tier(), Some(0));
}

#[tokio::test]
#[should_panic(expected = "before poll_ready")]
async fn a_clone_starts_unready() {
    let primary = Upstream::new("primary");
    let mut lb = balancer([primary.endpoint()]).build().unwrap();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(Service::<Request<Body>>::poll_ready(&mut lb, &mut cx).is_ready());
    let mut clone = lb.clone();
    drop(clone.call(get("r1")));
}

#[tokio::test]
async fn clones_share_health() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(status(500));
    let mut a = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    let mut b = a.clone();
    serve_n(&mut a, 3).await;
    serve_n(&mut b, 2).await;
    assert_eq!(primary.hits(), 5);
    // Ejected by the failures seen through both clones.
    serve_n(&mut a, 3).await;
    serve_n(&mut b, 3).await;
    assert_eq!(primary.hits(), 5);
    assert_eq!(primary.calls_unready() + backup.calls_unready(), 0);
}

#[tokio::test]
async fn with_no_endpoint_poll_ready_succeeds_and_call_fails() {
    let mut lb = Failover::<Upstream>::builder().build().unwrap();
    let err = send(&mut lb, get("r1")).await.unwrap_err();
    let none = err.downcast_ref::<NoEndpointAvailable>().unwrap();
    assert_eq!(none.until(), None);
    assert_eq!(
        classify_error(&*err),
        Outcome::Failed(FailureKind::LocalOverload.into()),
        "never sent"
    );

    // An endpoint added later takes the next request.
    let late = Upstream::new("late");
    lb.handle().insert(late.endpoint());
    assert_eq!(serve_n(&mut lb, 1).await, ["late"]);
}

#[tokio::test]
async fn a_readiness_error_is_routed_around_and_counted() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    primary.fail_readiness(true);
    assert_eq!(serve_n(&mut lb, 1).await, ["backup"]);
    assert_eq!(
        lb.handle()
            .endpoint("primary")
            .unwrap()
            .consecutive_failures,
        1
    );
    // The failed service was replaced by a fresh clone.
    primary.fail_readiness(false);
    assert_eq!(serve_n(&mut lb, 1).await, ["primary"]);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_releases_the_in_flight_count() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .connect_failures(0)
        .build()
        .unwrap();
    let handle = lb.handle();
    let in_flight = |name| handle.endpoint(name).unwrap().in_flight;

    // Dropped while the first attempt is in flight.
    primary.answer(Answer::Hang);
    let mut call = tokio_test::task::spawn(send(&mut lb, get("r1")));
    assert_pending!(call.poll());
    assert_eq!(in_flight("primary"), 1);
    drop(call);
    assert_eq!(in_flight("primary"), 0);

    // Dropped while waiting for the failover endpoint to be ready.
    primary.answer(Answer::Io(ErrorKind::ConnectionRefused));
    backup.set_ready(false);
    let mut call = tokio_test::task::spawn(send(&mut lb, get("r2")));
    assert_pending!(call.poll());
    assert_eq!((in_flight("primary"), in_flight("backup")), (0, 1));
    drop(call);
    assert_eq!(in_flight("backup"), 0);

    // Dropped while the failover attempt is in flight.
    backup.set_ready(true);
    backup.answer(Answer::Hang);
    let mut call = tokio_test::task::spawn(send(&mut lb, get("r3")));
    assert_pending!(call.poll());
    assert_eq!((in_flight("primary"), in_flight("backup")), (0, 1));
    drop(call);
    assert_eq!(in_flight("backup"), 0);
}
