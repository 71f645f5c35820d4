//! The layer at the poll level, on tokio's paused clock: readiness, waiting,
//! cancellation, probes, cooldowns, deadlines, events and the handle.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use common::*;
use evenkeel_core::clock;
use evenkeel_core::cooldown::Cooldown;
use evenkeel_core::error::QuotaExhausted;
use evenkeel_core::ext::{AttemptContext, Deadline};
use evenkeel_headers::{Dialect, Quota as HeaderQuota, Resource, format};
use evenkeel_quota::cost::{Cost, Header};
use evenkeel_quota::{Quota, QuotaLayer, StaticQuota};
use http::{Request, Response};
use tokio::time::{Instant, advance};
use tokio_test::{assert_pending, assert_ready, assert_ready_err, assert_ready_ok, task};
use tower::{Layer, Service};

fn exhausted_error(err: &evenkeel_core::BoxError) -> &QuotaExhausted {
    err.downcast_ref::<QuotaExhausted>()
        .unwrap_or_else(|| panic!("not a QuotaExhausted: {err}"))
}

#[tokio::test(start_paused = true)]
async fn readiness_comes_after_admission_in_the_future() {
    let (mut svc, mut handle, _) = service(builder());
    handle.allow(0);
    // Always ready: the inner service is readied by the future, once the
    // request has its quota.
    assert_ready_ok!(svc.poll_ready());
    let mut fut = task::spawn(svc.call(request("http://a.test/")));
    assert_pending!(fut.poll());
    assert_pending!(handle.poll_request());
    handle.allow(1);
    assert!(
        fut.is_woken(),
        "the inner service's readiness wakes the future"
    );
    assert_pending!(fut.poll());
    let (req, send) = assert_ready!(handle.poll_request()).unwrap();
    assert_eq!(req.uri(), "http://a.test/");
    send.send_response(response(200, &[]));
    assert_ready_ok!(fut.poll());
}

#[tokio::test(start_paused = true)]
async fn waiting_happens_in_the_response_future_not_in_poll_ready() {
    let (mut svc, mut handle, _) =
        service(builder().declare(StaticQuota::per_second(Resource::Requests, 1)));
    assert_ready_ok!(svc.poll_ready());
    let mut a = task::spawn(svc.call(request("http://a.test/1")));
    assert_pending!(a.poll());
    let (_, send_a) = assert_ready!(handle.poll_request()).unwrap();
    // No quota left, yet ready: readiness is the inner service's.
    assert_ready_ok!(svc.poll_ready());
    let mut b = task::spawn(svc.call(request("http://a.test/2")));
    assert_pending!(b.poll());
    assert_pending!(handle.poll_request());
    advance(ms(999)).await;
    assert_pending!(b.poll());
    assert_pending!(handle.poll_request());
    advance(ms(1)).await;
    assert!(b.is_woken());
    assert_pending!(b.poll());
    let (req, send_b) = assert_ready!(handle.poll_request()).unwrap();
    assert_eq!(req.uri().path(), "/2");
    send_a.send_response(response(200, &[]));
    send_b.send_response(response(200, &[]));
    assert_ready_ok!(a.poll());
    assert_ready_ok!(b.poll());
}

/// Counts `poll_ready` calls of every clone.
#[derive(Clone)]
struct CountReady<S> {
    inner: S,
    count: Arc<AtomicUsize>,
}

impl<S: Service<R>, R> Service<R> for CountReady<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.inner.call(req)
    }
}

#[tokio::test(start_paused = true)]
async fn the_inner_service_is_readied_only_once_admitted() {
    let layer = builder()
        .declare(StaticQuota::per_second(Resource::Requests, 1))
        .build()
        .unwrap();
    let (mock, mut handle) = tower_test::mock::pair::<Request<()>, Response<()>>();
    let count = Arc::new(AtomicUsize::new(0));
    let mut svc = tower_test::mock::Spawn::new(layer.layer(CountReady {
        inner: mock,
        count: Arc::clone(&count),
    }));
    assert_ready_ok!(svc.poll_ready());
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "poll_ready readies nothing"
    );
    let mut a = task::spawn(svc.call(request("http://a.test/")));
    assert_pending!(a.poll());
    let _a = assert_ready!(handle.poll_request()).unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1, "admitted, readied, sent");

    assert_ready_ok!(svc.poll_ready());
    let mut b = task::spawn(svc.call(request("http://a.test/")));
    assert_pending!(b.poll());
    // While it waits, nothing is readied (no permit held for nothing).
    advance(ms(500)).await;
    assert_pending!(b.poll());
    assert_eq!(count.load(Ordering::SeqCst), 1);
    advance(ms(500)).await;
    assert_pending!(b.poll());
    assert_eq!(count.load(Ordering::SeqCst), 2, "readied after the wait");
    let _b = assert_ready!(handle.poll_request()).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_gives_its_turn_to_the_next() {
    let (mut svc, mut handle, layer) =
        service(builder().declare(StaticQuota::per_second(Resource::Requests, 1)));
    let mut calls: Vec<_> = (0..3)
        .map(|i| {
            assert_ready_ok!(svc.poll_ready());
            task::spawn(svc.call(request(&format!("http://a.test/{i}"))))
        })
        .collect();
    for c in &mut calls {
        assert_pending!(c.poll());
    }
    let _a = assert_ready!(handle.poll_request()).unwrap();
    assert_eq!(layer.handle().key("a.test").unwrap().queued, 2);
    // The first in line leaves: the second takes its turn, one second in.
    drop(calls.remove(1));
    assert_eq!(layer.handle().key("a.test").unwrap().queued, 1);
    advance(secs(1)).await;
    assert_pending!(calls[1].poll());
    let (req, _c) = assert_ready!(handle.poll_request()).unwrap();
    assert_eq!(req.uri().path(), "/2");
    assert_eq!(layer.handle().key("a.test").unwrap().queued, 0);
}

/// Ready only while its switch is on.
#[derive(Clone)]
struct Switch<S> {
    inner: S,
    on: Arc<AtomicBool>,
}

impl<S: Service<R>, R> Service<R> for Switch<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if !self.on.load(Ordering::SeqCst) {
            return Poll::Pending;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.inner.call(req)
    }
}

#[tokio::test(start_paused = true)]
async fn a_reservation_dropped_before_sending_is_given_back() {
    let layer = builder()
        .declare(StaticQuota::per_second(Resource::Requests, 1))
        .build()
        .unwrap();
    let (mock, mut handle) = tower_test::mock::pair::<Request<()>, Response<()>>();
    let on = Arc::new(AtomicBool::new(true));
    let mut svc = tower_test::mock::Spawn::new(layer.layer(Switch {
        inner: mock,
        on: Arc::clone(&on),
    }));
    assert_ready_ok!(svc.poll_ready());
    let mut a = task::spawn(svc.call(request("http://a.test/a")));
    assert_pending!(a.poll());
    let _a = assert_ready!(handle.poll_request()).unwrap();

    assert_ready_ok!(svc.poll_ready());
    let mut b = task::spawn(svc.call(request("http://a.test/b")));
    assert_pending!(b.poll());
    // At 1 s, b is admitted, but the inner service is not ready: b holds
    // the quota's one request without having sent it.
    on.store(false, Ordering::SeqCst);
    advance(secs(1)).await;
    assert_pending!(b.poll());
    assert_pending!(handle.poll_request());
    assert_eq!(layer.handle().key("a.test").unwrap().in_flight, 2);
    drop(b);
    let key = layer.handle().key("a.test").unwrap();
    assert_eq!(key.in_flight, 1);
    assert_eq!(key.resources[0].remaining, 1, "given back");

    on.store(true, Ordering::SeqCst);
    assert_ready_ok!(svc.poll_ready());
    let mut c = task::spawn(svc.call(request("http://a.test/c")));
    assert_pending!(c.poll());
    let (req, _c) = assert_ready!(handle.poll_request()).unwrap();
    assert_eq!(req.uri().path(), "/c");
}

#[tokio::test(start_paused = true)]
async fn a_request_dropped_in_flight_is_no_longer_counted() {
    let (mut svc, mut handle, layer) = service(builder());
    assert_ready_ok!(svc.poll_ready());
    let mut a = task::spawn(svc.call(request("http://a.test/")));
    assert_pending!(a.poll());
    let _sent = assert_ready!(handle.poll_request()).unwrap();
    assert_eq!(layer.handle().key("a.test").unwrap().in_flight, 1);
    drop(a);
    assert_eq!(layer.handle().key("a.test").unwrap().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn the_first_request_to_a_key_goes_alone() {
    let (mut svc, mut handle, layer) = service(QuotaLayer::builder());
    let mut calls: Vec<_> = (0..3)
        .map(|_| {
            assert_ready_ok!(svc.poll_ready());
            task::spawn(svc.call(request("http://a.test/")))
        })
        .collect();
    for c in &mut calls {
        assert_pending!(c.poll());
    }
    let (_, probe) = assert_ready!(handle.poll_request()).unwrap();
    assert_pending!(handle.poll_request());
    advance(ms(200)).await;
    assert_pending!(handle.poll_request());
    // Its answer: 1 left. One more goes; the last waits for the refill.
    probe.send_response(with_headers(200, &openai(10, 1, "900ms")));
    assert_ready_ok!(calls[0].poll());
    assert!(calls[1].is_woken());
    assert_pending!(calls[1].poll());
    assert_pending!(calls[2].poll());
    let _second = assert_ready!(handle.poll_request()).unwrap();
    assert_pending!(handle.poll_request());
    assert_eq!(layer.handle().key("a.test").unwrap().probes, 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_probe_holds_the_others_for_its_timeout_only() {
    let (mut svc, mut handle, _) = service(QuotaLayer::builder().probe_timeout(ms(300)));
    let mut calls: Vec<_> = (0..2)
        .map(|_| {
            assert_ready_ok!(svc.poll_ready());
            task::spawn(svc.call(request("http://a.test/")))
        })
        .collect();
    for c in &mut calls {
        assert_pending!(c.poll());
    }
    let _probe = assert_ready!(handle.poll_request()).unwrap();
    advance(ms(299)).await;
    assert_pending!(calls[1].poll());
    assert_pending!(handle.poll_request());
    advance(ms(1)).await;
    assert_pending!(calls[1].poll());
    let _next = assert_ready!(handle.poll_request()).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_hands_its_role_on() {
    let (mut svc, mut handle, layer) = service(QuotaLayer::builder());
    assert_ready_ok!(svc.poll_ready());
    let mut a = task::spawn(svc.call(request("http://a.test/")));
    assert_ready_ok!(svc.poll_ready());
    let mut b = task::spawn(svc.call(request("http://a.test/")));
    assert_pending!(a.poll());
    assert_pending!(b.poll());
    let (_, probe) = assert_ready!(handle.poll_request()).unwrap();
    probe.send_error(std::io::Error::other("connection reset"));
    assert_ready_err!(a.poll());
    // b goes, alone, as the new probe.
    assert_pending!(b.poll());
    let _b = assert_ready!(handle.poll_request()).unwrap();
    assert_eq!(layer.handle().key("a.test").unwrap().probes, 2);
}

#[tokio::test(start_paused = true)]
async fn a_429_cools_the_key_down_once_then_one_probe_goes_first() {
    let recorder = Recorder::default();
    let (mut svc, mut handle, layer) = service(builder().on_event(recorder.listener()));
    let mut sent: Vec<_> = (0..3)
        .map(|_| {
            assert_ready_ok!(svc.poll_ready());
            let mut f = task::spawn(svc.call(request("http://a.test/")));
            assert_pending!(f.poll());
            let (_, send) = assert_ready!(handle.poll_request()).unwrap();
            (f, send)
        })
        .collect();
    let start = Instant::now();
    let (mut a, send_a) = sent.remove(0);
    send_a.send_response(response(429, &[("retry-after", "2")]));
    assert_ready_ok!(a.poll());

    let mut waiting: Vec<_> = (0..2)
        .map(|_| {
            assert_ready_ok!(svc.poll_ready());
            let mut f = task::spawn(svc.call(request("http://a.test/")));
            assert_pending!(f.poll());
            f
        })
        .collect();
    assert_pending!(handle.poll_request());
    // The others were in flight when the cooldown began: their 429s, even
    // with a longer wait, start nothing new.
    advance(ms(500)).await;
    let (mut b, send_b) = sent.remove(0);
    send_b.send_response(response(429, &[("retry-after", "5")]));
    assert_ready_ok!(b.poll());
    let (mut c, send_c) = sent.remove(0);
    send_c.send_response(response(200, &[]));
    assert_ready_ok!(c.poll());
    let key = layer.handle().key("a.test").unwrap();
    assert_eq!(key.cooldowns, 1);
    assert_eq!(key.cooldown_until, Some(start + secs(2)));

    advance(ms(1499)).await;
    for w in &mut waiting {
        assert_pending!(w.poll());
    }
    assert_pending!(handle.poll_request());
    advance(ms(1)).await;
    for w in &mut waiting {
        assert_pending!(w.poll());
    }
    // One probe, and only one.
    let (_, probe) = assert_ready!(handle.poll_request()).unwrap();
    assert_pending!(handle.poll_request());
    advance(ms(100)).await;
    assert_pending!(waiting[1].poll());
    assert_pending!(handle.poll_request());
    probe.send_response(response(200, &[]));
    assert_ready_ok!(waiting[0].poll());
    assert_pending!(waiting[1].poll());
    let _last = assert_ready!(handle.poll_request()).unwrap();
    assert_eq!(layer.handle().key("a.test").unwrap().probes, 1);
    assert!(
        recorder
            .events()
            .contains(&"wait a.test requests 2000ms".to_string()),
        "{:?}",
        recorder.events()
    );
}

#[tokio::test(start_paused = true)]
async fn which_answers_cool_a_key_down() {
    let cases: [(u16, &[(&str, &str)], Option<u64>); 5] = [
        (503, &[("retry-after", "3")], Some(3000)),
        (529, &[("retry-after", "3")], Some(3000)),
        (503, &[], None),
        // A 429 that names no wait: the default cooldown.
        (429, &[], Some(1000)),
        // Hopeless: waiting does not help, so the key is not paused.
        (429, &[("x-should-retry", "false")], None),
    ];
    for (status, headers, cooldown) in cases {
        let (mut svc, mut handle, layer) = service(builder());
        assert_ready_ok!(svc.poll_ready());
        let mut a = task::spawn(svc.call(request("http://a.test/")));
        assert_pending!(a.poll());
        let (_, send) = assert_ready!(handle.poll_request()).unwrap();
        send.send_response(response(status, headers));
        assert_ready_ok!(a.poll());
        let until = layer.handle().key("a.test").unwrap().cooldown_until;
        assert_eq!(
            until.map(|u| (u - Instant::now()).as_millis() as u64),
            cooldown,
            "{status} {headers:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_fit_before_its_deadline_fails_at_once() {
    let recorder = Recorder::default();
    let (mut svc, mut handle, _) = service(
        builder()
            .declare(StaticQuota::per_second(Resource::Requests, 1))
            .on_event(recorder.listener()),
    );
    assert_ready_ok!(svc.poll_ready());
    let mut a = task::spawn(svc.call(request("http://a.test/")));
    assert_pending!(a.poll());
    let _a = assert_ready!(handle.poll_request()).unwrap();

    let mut req = request("http://a.test/");
    req.extensions_mut()
        .insert(Deadline(Instant::now() + ms(500)));
    assert_ready_ok!(svc.poll_ready());
    let mut b = task::spawn(svc.call(req));
    let err = assert_ready_err!(b.poll());
    let err = exhausted_error(&err);
    assert_eq!(err.resource(), &Resource::Requests);
    assert_eq!(err.until(), Some(Instant::now() + secs(1)));
    assert_eq!(err.key(), Some("a.test"));
    assert_eq!(recorder.events(), ["rejected a.test requests Some(1000)ms"]);

    // The deadline of the attempt's context (as the retry layer sets it) too.
    assert_ready_ok!(svc.poll_ready());
    let mut req = request("http://a.test/");
    req.extensions_mut()
        .insert(AttemptContext::new(1, Some(Instant::now() + ms(999))));
    let mut c = task::spawn(svc.call(req));
    let err = assert_ready_err!(c.poll());
    assert_eq!(exhausted_error(&err).key(), Some("a.test"));
}

#[tokio::test(start_paused = true)]
async fn the_wait_is_capped() {
    let (mut svc, mut handle, layer) = service(
        builder()
            .declare(StaticQuota::per_second(Resource::Requests, 1))
            .max_wait(ms(2500)),
    );
    let mut calls: Vec<_> = (0..3)
        .map(|_| {
            assert_ready_ok!(svc.poll_ready());
            let mut f = task::spawn(svc.call(request("http://a.test/")));
            assert_pending!(f.poll());
            f
        })
        .collect();
    let _a = assert_ready!(handle.poll_request()).unwrap();
    // Third in line: room expected in 3 s, past the cap: it fails now.
    assert_ready_ok!(svc.poll_ready());
    let mut d = task::spawn(svc.call(request("http://a.test/")));
    let err = assert_ready_err!(d.poll());
    assert_eq!(
        exhausted_error(&err).until(),
        Some(Instant::now() + secs(3))
    );
    let key = layer.handle().key("a.test").unwrap();
    assert_eq!((key.queued, key.rejected), (2, 1));
    // The two within the cap get through.
    for c in &mut calls[1..] {
        advance(secs(1)).await;
        assert_pending!(c.poll());
        assert_ready!(handle.poll_request()).unwrap();
    }

    // No wait at all.
    let (mut svc, mut handle, _) = service(
        builder()
            .declare(StaticQuota::per_second(Resource::Requests, 1))
            .max_wait(ms(0)),
    );
    assert_ready_ok!(svc.poll_ready());
    let mut a = task::spawn(svc.call(request("http://a.test/")));
    assert_pending!(a.poll());
    let _a = assert_ready!(handle.poll_request()).unwrap();
    assert_ready_ok!(svc.poll_ready());
    let mut b = task::spawn(svc.call(request("http://a.test/")));
    assert_ready_err!(b.poll());
}

#[tokio::test(start_paused = true)]
async fn a_cooldown_past_a_waiters_deadline_fails_it_then() {
    let (mut svc, mut handle, _) =
        service(builder().declare(StaticQuota::per_second(Resource::Requests, 1)));
    assert_ready_ok!(svc.poll_ready());
    let mut a = task::spawn(svc.call(request("http://a.test/")));
    assert_pending!(a.poll());
    let (_, send_a) = assert_ready!(handle.poll_request()).unwrap();
    let mut req = request("http://a.test/");
    req.extensions_mut()
        .insert(Deadline(Instant::now() + ms(1500)));
    assert_ready_ok!(svc.poll_ready());
    let mut b = task::spawn(svc.call(req));
    assert_pending!(b.poll());
    advance(ms(100)).await;
    send_a.send_response(response(429, &[("retry-after", "10")]));
    assert_ready_ok!(a.poll());
    assert!(b.is_woken());
    let err = assert_ready_err!(b.poll());
    assert_eq!(
        exhausted_error(&err).until(),
        Some(Instant::now() + secs(10))
    );
}

#[tokio::test(start_paused = true)]
async fn learned_limits_pace_requests_and_tokens() {
    let (mut svc, mut handle, layer) = service(
        builder()
            .key(evenkeel_quota::key::Header::new("x-api-key"))
            .estimator(Header::new().input_tokens("x-input-tokens")),
    );
    type Svc = tower_test::mock::Spawn<Quota<Mock, evenkeel_quota::key::Header, Header>>;
    let call = |svc: &mut Svc, tokens: u64| {
        let req = Request::post("http://api.test/v1/messages")
            .header("x-api-key", "team-a")
            .header("x-input-tokens", tokens.to_string())
            .body(())
            .unwrap();
        assert_ready_ok!(svc.poll_ready());
        let mut f = task::spawn(svc.call(req));
        let first = f.poll();
        (f, first)
    };
    let (mut a, first) = call(&mut svc, 100);
    assert!(first.is_pending());
    let (_, send) = assert_ready!(handle.poll_request()).unwrap();
    let anthropic = |resource, limit, remaining| {
        HeaderQuota::new(resource)
            .with_dialect(Dialect::Anthropic)
            .with_limit(limit)
            .with_remaining(remaining)
            .with_reset_after(secs(30))
    };
    let mut answer = response(200, &[]);
    let quotas = [
        anthropic(Resource::Requests, 50, 49),
        anthropic(Resource::InputTokens, 1000, 250),
    ];
    format::insert_quotas(answer.headers_mut(), &quotas, clock::system_now());
    send.send_response(answer);
    assert_ready_ok!(a.poll());
    let key = layer.handle().key("team-a").unwrap();
    let input = key
        .resources
        .iter()
        .find(|r| r.resource == Resource::InputTokens)
        .unwrap();
    assert_eq!((input.limit, input.remaining), (Some(1000), 250));
    assert!(input.reset.is_some());

    let (_b, first) = call(&mut svc, 200);
    assert!(first.is_pending());
    let _b_sent = assert_ready!(handle.poll_request()).unwrap();
    // 50 input tokens left: a request needing 100 waits...
    let (mut c, first) = call(&mut svc, 100);
    assert!(first.is_pending());
    assert_pending!(handle.poll_request());
    // ...and one needing none does not wait behind it for tokens, but it is
    // queued behind it (first come, first served).
    let (_d, first) = call(&mut svc, 0);
    assert!(first.is_pending());
    assert_pending!(handle.poll_request());
    assert_eq!(layer.handle().key("team-a").unwrap().queued, 2);
    assert_pending!(c.poll());
}

#[tokio::test(start_paused = true)]
async fn a_cost_extension_is_what_the_request_costs() {
    let (mut svc, mut handle, layer) =
        service(builder().declare(StaticQuota::per_minute(Resource::OutputTokens, 1000)));
    let mut req = request("http://a.test/");
    req.extensions_mut()
        .insert(Cost::new().with_output_tokens(600));
    assert_ready_ok!(svc.poll_ready());
    let mut a = task::spawn(svc.call(req));
    assert_pending!(a.poll());
    let _a = assert_ready!(handle.poll_request()).unwrap();
    let key = layer.handle().key("a.test").unwrap();
    assert_eq!(key.resources[0].remaining, 400);
}

#[tokio::test(start_paused = true)]
async fn lying_headers_stop_a_key_for_max_reset_at_most() {
    let (mut svc, mut handle, _) = service(builder().max_reset(secs(10)).max_wait(secs(1)));
    assert_ready_ok!(svc.poll_ready());
    let mut a = task::spawn(svc.call(request("http://a.test/")));
    assert_pending!(a.poll());
    let (_, send) = assert_ready!(handle.poll_request()).unwrap();
    // Nothing left, and a reset a thousand hours away.
    send.send_response(with_headers(200, &openai(10, 0, "1000h0m0s")));
    assert_ready_ok!(a.poll());
    assert_ready_ok!(svc.poll_ready());
    let mut b = task::spawn(svc.call(request("http://a.test/")));
    let err = assert_ready_err!(b.poll());
    assert!(exhausted_error(&err).retry_after().unwrap() <= secs(10));
    advance(secs(10)).await;
    assert_ready_ok!(svc.poll_ready());
    let mut c = task::spawn(svc.call(request("http://a.test/")));
    assert_pending!(c.poll());
    let _c = assert_ready!(handle.poll_request()).unwrap();
}

#[tokio::test(start_paused = true)]
async fn keys_share_nothing() {
    let (mut svc, mut handle, layer) = service(builder());
    assert_ready_ok!(svc.poll_ready());
    let mut a = task::spawn(svc.call(request("http://a.test/")));
    assert_pending!(a.poll());
    let (_, send) = assert_ready!(handle.poll_request()).unwrap();
    send.send_response(response(429, &[("retry-after", "60")]));
    assert_ready_ok!(a.poll());

    assert_ready_ok!(svc.poll_ready());
    let mut blocked = task::spawn(svc.call(request("http://a.test/")));
    assert_pending!(blocked.poll());
    assert_ready_ok!(svc.poll_ready());
    let mut other = task::spawn(svc.call(request("http://b.test/")));
    assert_pending!(other.poll());
    let (req, _) = assert_ready!(handle.poll_request()).unwrap();
    assert_eq!(req.uri().host(), Some("b.test"));

    let handle = layer.handle();
    assert_eq!(handle.keys(), ["a.test", "b.test"]);
    assert!(handle.for_key("a.test").cooldown_until().is_some());
    assert_eq!(handle.for_key("b.test").cooldown_until(), None);
    assert_eq!(handle.for_key("c.test").cooldown_until(), None);
    // One key has room: the layer as a whole has.
    assert_eq!(handle.cooldown_until(), None);
}

#[tokio::test(start_paused = true)]
async fn the_handle_reports_cooldowns_and_exhausted_quotas() {
    let (mut svc, mut handle, layer) = service(builder());
    let quota = layer.handle();
    assert_eq!(quota.cooldown_until(), None, "no key yet");
    assert_ready_ok!(svc.poll_ready());
    let mut a = task::spawn(svc.call(request("http://a.test/")));
    assert_pending!(a.poll());
    let (_, send) = assert_ready!(handle.poll_request()).unwrap();
    send.send_response(with_headers(200, &openai(60, 0, "5s")));
    assert_ready_ok!(a.poll());
    // No cooldown, but no room either: the reset field says 5 s at most.
    let until = quota.cooldown_until().unwrap();
    assert!(until <= Instant::now() + secs(5));
    assert_eq!(quota.for_key("a.test").cooldown_until(), Some(until));
    let key = quota.key("a.test").unwrap();
    assert_eq!(key.cooldown_until, None);
    assert_eq!(key.resources[0].limit, Some(60));
    assert_eq!(key.resources[0].remaining, 0);
    assert_eq!(key.resources[0].reset, Some(Instant::now() + secs(5)));
    advance(secs(5)).await;
    assert_eq!(quota.cooldown_until(), None);
    assert!(format!("{quota:?}").contains("QuotaHandle"));
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through() {
    let (mut svc, mut handle, layer) = service(builder());
    assert_ready_ok!(svc.poll_ready());
    let mut a = task::spawn(svc.call(request("http://a.test/")));
    assert_pending!(a.poll());
    let (_, send) = assert_ready!(handle.poll_request()).unwrap();
    send.send_error(std::io::Error::other("boom"));
    let err = assert_ready_err!(a.poll());
    assert_eq!(err.to_string(), "boom");
    assert_eq!(layer.handle().key("a.test").unwrap().in_flight, 0);

    // A readiness error comes through the future of the request that
    // readied it.
    handle.send_error(std::io::Error::other("not ready"));
    assert_ready_ok!(svc.poll_ready());
    let mut b = task::spawn(svc.call(request("http://a.test/")));
    let err = assert_ready_err!(b.poll());
    assert_eq!(err.to_string(), "not ready");
    assert_eq!(layer.handle().key("a.test").unwrap().in_flight, 0);
}
