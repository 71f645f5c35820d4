//! No concurrency permit is held while a request waits for quota: quota
//! over a limit of one, at the poll level.

use std::time::Duration;

use evenkeel_headers::Resource;
use evenkeel_limit::LimitLayer;
use evenkeel_quota::{QuotaLayer, StaticQuota};
use http::{Request, Response};
use tokio_test::{assert_pending, assert_ready, assert_ready_ok, task};
use tower::Layer;

fn request(uri: &str) -> Request<()> {
    Request::get(uri).body(()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_request_waiting_for_quota_leaves_the_permit_to_another_key() {
    // Key `a.test` may send one request a second; `b.test` is free. Below
    // the quota, a limit of one request in flight.
    let quota = QuotaLayer::builder()
        .declare_for("a.test", StaticQuota::per_second(Resource::Requests, 1))
        .build()
        .unwrap();
    let limit = LimitLayer::fixed(1).build().unwrap();
    let (mock, mut upstream) = tower_test::mock::pair::<Request<()>, Response<()>>();
    let mut svc = tower_test::mock::Spawn::new(quota.layer(limit.layer(mock)));

    // a1 takes a's quota for this second, goes, and is answered.
    assert_ready_ok!(svc.poll_ready());
    let mut a1 = task::spawn(svc.call(request("http://a.test/1")));
    assert_pending!(a1.poll());
    let (_, send) = assert_ready!(upstream.poll_request()).unwrap();
    send.send_response(Response::new(()));
    assert_ready_ok!(a1.poll());

    // a2 must wait a second for quota. While it waits it holds no permit...
    assert_ready_ok!(svc.poll_ready());
    let mut a2 = task::spawn(svc.call(request("http://a.test/2")));
    assert_pending!(a2.poll());
    assert_pending!(upstream.poll_request());

    // ...so b1, on another key, takes the one permit and goes at once.
    assert_ready_ok!(svc.poll_ready());
    let mut b1 = task::spawn(svc.call(request("http://b.test/1")));
    assert_pending!(b1.poll());
    let (req, send_b) = assert_ready!(upstream.poll_request()).unwrap();
    assert_eq!(req.uri(), "http://b.test/1");

    // a2's quota comes back while b1 holds the permit: a2 now queues for
    // the permit, and goes when b1 gives it back.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_pending!(a2.poll());
    assert_pending!(upstream.poll_request());
    send_b.send_response(Response::new(()));
    assert_ready_ok!(b1.poll());
    assert!(a2.is_woken());
    assert_pending!(a2.poll());
    let (req, send) = assert_ready!(upstream.poll_request()).unwrap();
    assert_eq!(req.uri(), "http://a.test/2");
    send.send_response(Response::new(()));
    assert_ready_ok!(a2.poll());
}
