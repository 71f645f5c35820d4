//! Poll-level behaviour of the limiter: permits, queueing, rejection,
//! readiness, cancellation, respond mode, events.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evenkeel_core::error::Overloaded;
use evenkeel_core::event::Event;
use evenkeel_core::{BoxError, Outcome};
use evenkeel_limit::body::LimitBody;
use evenkeel_limit::{Algorithm, LimitLayer, Respond, Sample};
use http::{Request, Response, StatusCode};
use tokio_test::{assert_pending, assert_ready, assert_ready_err, assert_ready_ok};
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

type Mock = mock::Mock<Request<()>, Response<()>>;
type Handle = mock::Handle<Request<()>, Response<()>>;

fn req() -> Request<()> {
    Request::new(())
}

fn ok() -> Response<()> {
    Response::new(())
}

fn status(code: u16) -> Response<()> {
    Response::builder().status(code).body(()).unwrap()
}

/// Records every sample; the limit moves by a fixed rule so tests can tell
/// what was reported.
#[derive(Debug, Clone, Default)]
struct Recorder {
    samples: Arc<Mutex<Vec<Sample>>>,
    limit: usize,
}

impl Recorder {
    fn new(limit: usize) -> Self {
        Recorder {
            samples: Arc::default(),
            limit,
        }
    }
    fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }
}

impl Algorithm for Recorder {
    fn initial_limit(&self) -> usize {
        self.limit
    }
    fn update(&mut self, sample: &Sample) -> usize {
        self.samples.lock().unwrap().push(*sample);
        if sample.is_drop() {
            self.limit = (self.limit - 1).max(1);
        }
        self.limit
    }
}

#[tokio::test(start_paused = true)]
async fn static_limit_holds_the_third_until_one_completes() {
    let layer = LimitLayer::fixed(2).build().unwrap();
    let handle = layer.handle();
    let (mock, mut inner) = mock::pair::<Request<()>, Response<()>>();
    let mut a = mock::Spawn::new(layer.layer(mock.clone()));
    let mut b = mock::Spawn::new(layer.layer(mock.clone()));
    let mut c = mock::Spawn::new(layer.layer(mock));

    assert_ready_ok!(a.poll_ready());
    let fa = a.call(req());
    assert_ready_ok!(b.poll_ready());
    let fb = b.call(req());
    assert_eq!(handle.in_flight(), 2);
    assert_pending!(c.poll_ready());
    assert_eq!(handle.queued(), 1);

    let (_, respond) = inner.next_request().await.unwrap();
    respond.send_response(ok());
    assert_eq!(fa.await.unwrap().status(), 200);
    assert!(c.is_woken(), "the waiter is woken when a permit returns");
    assert_ready_ok!(c.poll_ready());
    assert_eq!(handle.in_flight(), 2);
    assert_eq!(handle.queued(), 0);
    drop(fb);
    assert_eq!(handle.in_flight(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_clone_starts_unready_and_no_call_reaches_an_unready_inner() {
    let (mock, mut inner): (Mock, Handle) = mock::pair();
    inner.allow(0);
    let mut limited = mock::Spawn::new(LimitLayer::fixed(4).build().unwrap().layer(mock));
    // Permit taken, inner not ready: pending.
    assert_pending!(limited.poll_ready());
    let clone = limited.clone();
    // The clone holds nothing: calling it without readying it is a bug.
    let mut clone = clone.into_inner();
    let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(clone.call(req()));
    }));
    assert!(called.is_err(), "call before poll_ready must panic");
    inner.allow(1);
    assert_ready_ok!(limited.poll_ready());
    let fut = limited.call(req());
    let (_, respond) = inner.next_request().await.unwrap();
    respond.send_response(ok());
    fut.await.unwrap();
    assert!(
        inner.next_request().now_or_never_pending(),
        "exactly one request reached the inner service"
    );
}

trait NowOrNever {
    fn now_or_never_pending(self) -> bool;
}

impl<F: std::future::Future> NowOrNever for F {
    fn now_or_never_pending(self) -> bool {
        let mut task = tokio_test::task::spawn(self);
        task.poll().is_pending()
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_releases_the_permit_and_reports_nothing() {
    let recorder = Recorder::new(1);
    let layer = LimitLayer::adaptive(recorder.clone()).build().unwrap();
    let handle = layer.handle();
    let (mock, mut inner): (Mock, Handle) = mock::pair();
    let mut a = mock::Spawn::new(layer.layer(mock.clone()));
    let mut b = mock::Spawn::new(layer.layer(mock));

    assert_ready_ok!(a.poll_ready());
    let fut = a.call(req());
    assert_pending!(b.poll_ready());
    let _pending = inner.next_request().await.unwrap();
    drop(fut);
    assert!(b.is_woken());
    assert_ready_ok!(b.poll_ready());
    assert_eq!(handle.in_flight(), 1);
    assert!(
        recorder.samples().is_empty(),
        "a cancelled attempt is no sample"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_service_leaves_the_queue() {
    let layer = LimitLayer::fixed(1).build().unwrap();
    let handle = layer.handle();
    let (mock, _inner): (Mock, Handle) = mock::pair();
    let mut a = mock::Spawn::new(layer.layer(mock.clone()));
    let mut b = mock::Spawn::new(layer.layer(mock.clone()));
    let mut c = mock::Spawn::new(layer.layer(mock));
    assert_ready_ok!(a.poll_ready());
    assert_pending!(b.poll_ready());
    assert_pending!(c.poll_ready());
    assert_eq!(handle.queued(), 2);
    drop(b);
    assert_eq!(handle.queued(), 1);
    // `a` never called: dropping it returns its permit, to `c`.
    drop(a);
    assert!(c.is_woken());
    assert_ready_ok!(c.poll_ready());
    assert_eq!((handle.in_flight(), handle.queued()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn reject_mode_fails_at_once_with_overloaded() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let layer = LimitLayer::fixed(1)
        .reject_immediately()
        .name("upstream")
        .on_event(move |e: &Event<'_>| {
            if let Event::LimitRejected { name } = e {
                seen.lock().unwrap().push(name.to_string());
            }
        })
        .build()
        .unwrap();
    let handle = layer.handle();
    let (mock, mut inner): (Mock, Handle) = mock::pair();
    let mut a = mock::Spawn::new(layer.layer(mock.clone()));
    let mut b = mock::Spawn::new(layer.layer(mock));
    assert_ready_ok!(a.poll_ready());
    let _held = a.call(req());
    // Rejected requests are ready, and fail without reaching the inner service.
    assert_ready_ok!(b.poll_ready());
    let err = b.call(req()).await.unwrap_err();
    assert!(err.is::<Overloaded>(), "{err}");
    assert_eq!(handle.rejected(), 1);
    assert_eq!(*events.lock().unwrap(), ["upstream"]);
    let _first = inner.next_request().await.unwrap();
    assert!(inner.next_request().now_or_never_pending());
    // The rejection is classified as a local overload: never sent.
    let outcome = evenkeel_core::classify_error(&*err);
    assert!(outcome.never_sent());
}

#[tokio::test(start_paused = true)]
async fn bounded_queue_rejects_the_overflow() {
    let layer = LimitLayer::fixed(1).max_queue(1).build().unwrap();
    let (mock, _inner): (Mock, Handle) = mock::pair();
    let mut a = mock::Spawn::new(layer.layer(mock.clone()));
    let mut b = mock::Spawn::new(layer.layer(mock.clone()));
    let mut c = mock::Spawn::new(layer.layer(mock));
    assert_ready_ok!(a.poll_ready());
    assert_pending!(b.poll_ready());
    assert_ready_ok!(c.poll_ready());
    let err = c.call(req()).await.unwrap_err();
    assert!(err.is::<Overloaded>());
    assert_eq!(layer.handle().rejected(), 1);
    assert_eq!(layer.handle().queued(), 1);
}

#[tokio::test(start_paused = true)]
async fn max_wait_rejects_a_request_that_waited_too_long() {
    let layer = LimitLayer::fixed(1)
        .max_wait(Duration::from_millis(500))
        .build()
        .unwrap();
    let handle = layer.handle();
    let (mock, _inner): (Mock, Handle) = mock::pair();
    let mut a = mock::Spawn::new(layer.layer(mock.clone()));
    let mut b = mock::Spawn::new(layer.layer(mock));
    assert_ready_ok!(a.poll_ready());
    assert_pending!(b.poll_ready());
    tokio::time::sleep(Duration::from_millis(499)).await;
    assert_pending!(b.poll_ready());
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(b.is_woken());
    assert_ready_ok!(b.poll_ready());
    assert!(b.call(req()).await.unwrap_err().is::<Overloaded>());
    assert_eq!((handle.queued(), handle.rejected()), (0, 1));
    assert_eq!(handle.in_flight(), 1);
}

#[tokio::test(start_paused = true)]
async fn respond_mode_answers_503_with_retry_after_and_keeps_infallible() {
    let layer = LimitLayer::fixed(1)
        .reject_immediately()
        .respond(Respond::http().retry_after(Some(Duration::from_secs(3))))
        .build()
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
    let svc = tower::service_fn(move |_: Request<()>| {
        let rx = rx.clone();
        async move {
            if let Some(rx) = rx.lock().await.take() {
                let _ = rx.await;
            }
            Ok::<_, Infallible>(Response::new(String::from("done")))
        }
    });
    let limited = layer.layer(svc);
    let mut held = tokio_test::task::spawn(limited.clone().oneshot(req()));
    assert_pending!(held.poll());
    let rejected = limited.clone().oneshot(req()).await.unwrap();
    let rejected: Response<String> = rejected.map(LimitBody::into_inner);
    assert_eq!(rejected.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(rejected.headers()["retry-after"], "3");
    assert!(rejected.body().is_empty());
    tx.send(()).unwrap();
    assert_eq!(assert_ready!(held.poll()).unwrap().body().get_ref(), "done");
    // Room again.
    let ok: Result<Response<LimitBody<String>>, Infallible> = limited.oneshot(req()).await;
    assert_eq!(ok.unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn respond_mode_grpc_is_trailers_only_resource_exhausted() {
    let layer = LimitLayer::fixed(1)
        .reject_immediately()
        .respond(Respond::grpc())
        .build()
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
    let svc = tower::service_fn(move |_: Request<()>| {
        let rx = rx.clone();
        async move {
            if let Some(rx) = rx.lock().await.take() {
                let _ = rx.await;
            }
            Ok::<_, Infallible>(Response::new(String::new()))
        }
    });
    let limited = layer.layer(svc);
    let mut held = tokio_test::task::spawn(limited.clone().oneshot(req()));
    assert_pending!(held.poll());
    let rejected = limited.oneshot(req()).await.unwrap();
    assert_eq!(rejected.status(), StatusCode::OK);
    assert_eq!(rejected.headers()["grpc-status"], "8");
    assert_eq!(rejected.headers()["content-type"], "application/grpc");
    drop(tx);
}

#[test]
fn the_builder_refuses_what_cannot_work() {
    let err = LimitLayer::fixed(0).build().unwrap_err();
    assert_eq!(err.field(), "limit");
    assert!(err.to_string().contains("never admit"), "{err}");
    assert_eq!(
        LimitLayer::fixed(1).ceiling(0).build().unwrap_err().field(),
        "ceiling"
    );
    assert_eq!(
        LimitLayer::fixed(1)
            .max_wait(Duration::ZERO)
            .build()
            .unwrap_err()
            .field(),
        "max_wait"
    );
    assert_eq!(
        LimitLayer::adaptive(Recorder::new(0))
            .build()
            .unwrap_err()
            .field(),
        "initial_limit"
    );
}

/// Sends one request through a fresh service of `layer` and answers it.
async fn one<A, C>(
    layer: &LimitLayer<A, C>,
    inner: &mut Handle,
    mock: &Mock,
    answer: Result<Response<()>, BoxError>,
) -> Result<Response<()>, BoxError>
where
    A: Algorithm,
    C: evenkeel_core::Classify<Response<()>> + Send + Sync + 'static,
{
    let mut svc = layer.layer(mock.clone());
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
    let fut = svc.call(req());
    let (_, respond) = inner.next_request().await.unwrap();
    match answer {
        Ok(r) => respond.send_response(r),
        Err(e) => respond.send_error(e),
    }
    fut.await.map(|r| r.map(LimitBody::into_inner))
}

#[tokio::test(start_paused = true)]
async fn samples_carry_rtt_in_flight_limit_and_outcome() {
    let recorder = Recorder::new(4);
    let layer = LimitLayer::adaptive(recorder.clone()).build().unwrap();
    let (mock, mut inner): (Mock, Handle) = mock::pair();
    let mut a = mock::Spawn::new(layer.layer(mock.clone()));
    let mut b = mock::Spawn::new(layer.layer(mock.clone()));
    assert_ready_ok!(a.poll_ready());
    let fa = a.call(req());
    assert_ready_ok!(b.poll_ready());
    let fb = b.call(req());
    let (_, ra) = inner.next_request().await.unwrap();
    let (_, rb) = inner.next_request().await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    ra.send_response(status(429));
    assert_eq!(fa.await.unwrap().status(), 429);
    rb.send_response(ok());
    fb.await.unwrap();

    let samples = recorder.samples();
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].rtt, Duration::from_millis(250));
    assert_eq!((samples[0].in_flight, samples[1].in_flight), (1, 2));
    assert_eq!(samples[0].limit, 4);
    assert!(matches!(samples[0].outcome, Outcome::RateLimited(_)));
    assert!(samples[0].is_drop());
    assert_eq!(samples[1].outcome, Outcome::Success);
    // The drop lowered the limit through the algorithm.
    assert_eq!(layer.handle().limit(), 3);
}

#[tokio::test(start_paused = true)]
async fn never_sent_errors_are_ignored_timeouts_and_refusals_are_drops() {
    let recorder = Recorder::new(10);
    let layer = LimitLayer::adaptive(recorder.clone()).build().unwrap();
    let (mock, mut inner): (Mock, Handle) = mock::pair();

    let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    assert!(
        one(&layer, &mut inner, &mock, Err(refused.into()))
            .await
            .is_err()
    );
    assert!(recorder.samples().is_empty(), "never sent: ignored");

    let timeout: BoxError = evenkeel_core::error::TimedOut::after(Duration::from_secs(1)).into();
    assert!(one(&layer, &mut inner, &mock, Err(timeout)).await.is_err());
    let downstream: BoxError = Overloaded::new().into();
    assert!(
        one(&layer, &mut inner, &mock, Err(downstream))
            .await
            .is_err()
    );
    let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
    assert!(
        one(&layer, &mut inner, &mock, Err(reset.into()))
            .await
            .is_err()
    );
    one(&layer, &mut inner, &mock, Ok(status(503)))
        .await
        .unwrap();
    one(&layer, &mut inner, &mock, Ok(status(500)))
        .await
        .unwrap();

    let drops: Vec<bool> = recorder.samples().iter().map(|s| s.is_drop()).collect();
    assert_eq!(drops, [true, true, false, true, false]);
    assert_eq!(layer.handle().limit(), 7);
}

#[tokio::test(start_paused = true)]
async fn server_and_configured_ceilings_cap_the_limit() {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen = changes.clone();
    let layer = LimitLayer::adaptive(Recorder::new(20))
        .on_event(move |e: &Event<'_>| {
            if let Event::LimitChanged { limit, .. } = e {
                seen.lock().unwrap().push(*limit);
            }
        })
        .build()
        .unwrap();
    let handle = layer.handle();
    let (mock, mut inner): (Mock, Handle) = mock::pair();
    let advertised = Response::builder()
        .header(
            "ratelimit-policy",
            r#""conc";q=6;qu="concurrent-requests", "rpm";q=600;w=60"#,
        )
        .body(())
        .unwrap();
    one(&layer, &mut inner, &mock, Ok(advertised))
        .await
        .unwrap();
    assert_eq!(handle.server_ceiling(), Some(6));
    assert_eq!((handle.limit(), handle.estimate()), (6, 20));

    // Malformed and zero ceilings are ignored.
    let malformed: [&[u8]; 3] = [
        br#""c";q=0;qu="concurrent-requests""#,
        b"\xff\xfe;q=2;qu=\x80",
        br#""c";q=-3;qu="concurrent-requests""#,
    ];
    for policy in malformed {
        let r = Response::builder()
            .header(
                "ratelimit-policy",
                http::HeaderValue::from_bytes(policy).unwrap(),
            )
            .body(())
            .unwrap();
        one(&layer, &mut inner, &mock, Ok(r)).await.unwrap();
        assert_eq!(handle.limit(), 6, "{policy:?}");
    }

    handle.set_ceiling(Some(3));
    assert_eq!(handle.limit(), 3);
    handle.set_ceiling(None);
    assert_eq!(handle.limit(), 6);
    assert_eq!(*changes.lock().unwrap(), [6, 3, 6]);
}

#[tokio::test(start_paused = true)]
async fn the_server_ceiling_can_be_ignored() {
    let layer = LimitLayer::adaptive(Recorder::new(20))
        .server_ceiling(false)
        .build()
        .unwrap();
    let (mock, mut inner): (Mock, Handle) = mock::pair();
    let advertised = Response::builder()
        .header("ratelimit-policy", r#""conc";q=6;qu="concurrent-requests""#)
        .body(())
        .unwrap();
    one(&layer, &mut inner, &mock, Ok(advertised))
        .await
        .unwrap();
    assert_eq!(layer.handle().limit(), 20);
}

#[tokio::test(start_paused = true)]
async fn a_drop_lowers_the_limit_before_its_permit_goes_to_a_waiter() {
    let layer = LimitLayer::adaptive(Recorder::new(2)).build().unwrap();
    let handle = layer.handle();
    let (mock, mut inner): (Mock, Handle) = mock::pair();
    let mut a = mock::Spawn::new(layer.layer(mock.clone()));
    let mut b = mock::Spawn::new(layer.layer(mock.clone()));
    let mut c = mock::Spawn::new(layer.layer(mock));
    assert_ready_ok!(a.poll_ready());
    let fa = a.call(req());
    assert_ready_ok!(b.poll_ready());
    let _fb = b.call(req());
    assert_pending!(c.poll_ready());
    let (_, ra) = inner.next_request().await.unwrap();
    ra.send_response(status(503));
    fa.await.unwrap();
    // Limit 2 → 1 with one still in flight: the waiter keeps waiting.
    assert_eq!((handle.limit(), handle.in_flight()), (1, 1));
    assert_pending!(c.poll_ready());
}

#[tokio::test(start_paused = true)]
async fn the_static_limiter_classifies_nothing() {
    #[derive(Debug, Clone, Default)]
    struct Panicky;
    impl evenkeel_core::Classify<Response<()>> for Panicky {
        fn classify_response(&self, _: &Response<()>) -> Outcome {
            panic!("the static limiter must not classify")
        }
    }
    let layer = LimitLayer::fixed(1).classifier(Panicky).build().unwrap();
    let (mock, mut inner): (Mock, Handle) = mock::pair();
    let mut svc = layer.layer(mock);
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let fut = svc.call(req());
    let (_, r) = inner.next_request().await.unwrap();
    r.send_response(status(503));
    assert_eq!(fut.await.unwrap().status(), 503);
    assert_eq!(layer.handle().limit(), 1);
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_boxed() {
    let layer = LimitLayer::fixed(1).build().unwrap();
    let (mock, mut inner): (Mock, Handle) = mock::pair();
    let err = one(
        &layer,
        &mut inner,
        &mock,
        Err(std::io::Error::other("boom").into()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "boom");
    assert_eq!(layer.handle().in_flight(), 0);
    let _ = assert_ready_err!(tokio_test::task::spawn(async { Err::<(), _>(err) }).poll());
}
