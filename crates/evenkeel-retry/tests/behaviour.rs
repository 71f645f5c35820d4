//! One test per rule of the retry layer, under tokio's paused clock.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use evenkeel_core::error::{DeadlineExceeded, TimedOut};
use evenkeel_core::event::{Event, GiveUp};
use evenkeel_core::rng::Jitter;
use evenkeel_retry::{Backoff, RetryBudget, RetryInfo, RetryLayer};
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt};

fn layer() -> evenkeel_retry::RetryBuilder {
    RetryLayer::builder().jitter(Jitter::seeded(42))
}

#[tokio::test(start_paused = true)]
async fn never_retries_before_the_servers_wait() {
    let date_in = |secs| {
        httpdate::fmt_http_date(evenkeel_core::clock::system_now() + Duration::from_secs(secs))
    };
    for (name, value, wait) in [
        ("retry-after", Some("2"), Duration::from_secs(2)),
        ("retry-after", Some("1.5"), Duration::from_millis(1500)),
        ("retry-after-ms", Some("750"), Duration::from_millis(750)),
        // An HTTP-date 4 s ahead; whole-second dates may round down by up
        // to a second.
        ("retry-after", None, Duration::from_secs(3)),
    ] {
        let value = value.map_or_else(|| date_in(4), str::to_string);
        let upstream = Scripted::new(vec![with_header(429, name, &value), status(200)])
            .with_latency(Duration::from_millis(30));
        let svc = layer()
            .max_attempts(3)
            .build()
            .unwrap()
            .layer(upstream.clone());
        let res = svc.oneshot(post("/v1/messages", "hi")).await.unwrap();
        assert_eq!(res.status(), 200);
        let seen = upstream.seen();
        assert_eq!(seen.len(), 2, "{name}: {value}");
        // The 429 arrived `latency` after the first send; the retry may not
        // leave before arrival + wait.
        let arrived = seen[0].at + Duration::from_millis(30);
        assert!(
            seen[1].at >= arrived + wait,
            "{name}: {value}: retried {:?} after arrival, wait was {wait:?}",
            seen[1].at - arrived
        );
        // Jitter on a server wait adds at most 10 % (max 1 s).
        assert!(seen[1].at <= arrived + wait + Duration::from_secs(2));
        let info = RetryInfo::of(&res);
        assert_eq!(info.attempts, 2);
        assert!(info.waited >= wait);
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_applies_when_the_server_gives_no_wait() {
    let upstream = Scripted::new(vec![status(503), status(503), status(200)]);
    let svc = layer()
        .backoff(Backoff::constant(Duration::from_millis(300)))
        .build()
        .unwrap()
        .layer(upstream.clone());
    let res = svc.oneshot(get("/")).await.unwrap();
    assert_eq!(res.status(), 200);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].at - seen[0].at, Duration::from_millis(300));
    assert_eq!(seen[2].at - seen[1].at, Duration::from_millis(300));
    assert_eq!(
        seen.iter().map(|s| s.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[tokio::test(start_paused = true)]
async fn waits_longer_than_the_cap_are_not_slept_through() {
    let upstream = Scripted::new(vec![with_header(429, "retry-after", "600"), status(200)]);
    let svc = layer()
        .max_server_wait(Duration::from_secs(120))
        .build()
        .unwrap()
        .layer(upstream.clone());
    let start = tokio::time::Instant::now();
    let res = svc.oneshot(get("/")).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "600");
    assert_eq!(upstream.attempts(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(RetryInfo::of(&res).gave_up, Some(GiveUp::WaitTooLong));
}

#[tokio::test(start_paused = true)]
async fn waits_past_the_deadline_are_not_started() {
    let upstream = Scripted::new(vec![with_header(503, "retry-after", "20"), status(200)]);
    let svc = layer()
        .deadline(Duration::from_secs(10))
        .build()
        .unwrap()
        .layer(upstream.clone());
    let start = tokio::time::Instant::now();
    let res = svc.oneshot(get("/")).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(upstream.attempts(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(RetryInfo::of(&res).gave_up, Some(GiveUp::Deadline));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_covers_attempts_and_waits() {
    let upstream = Scripted::new(vec![Answer::Hang]);
    let svc = layer()
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap()
        .layer(upstream.clone());
    let start = tokio::time::Instant::now();
    let err = svc.oneshot(get("/")).await.unwrap_err();
    assert!(err.is::<DeadlineExceeded>(), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_is_passed_down() {
    #[derive(Clone)]
    struct Check(Arc<Mutex<Option<tokio::time::Instant>>>);
    impl<B> Service<http::Request<B>> for Check {
        type Response = http::Response<http_body_util::Empty<Bytes>>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: http::Request<B>) -> Self::Future {
            *self.0.lock().unwrap() = evenkeel_core::ext::Deadline::of(&req);
            std::future::ready(Ok(http::Response::new(http_body_util::Empty::new())))
        }
    }
    let check = Check(Default::default());
    let svc = layer()
        .deadline(Duration::from_secs(7))
        .build()
        .unwrap()
        .layer(check.clone());
    let start = tokio::time::Instant::now();
    svc.oneshot(get("/")).await.unwrap();
    assert_eq!(
        *check.0.lock().unwrap(),
        Some(start + Duration::from_secs(7))
    );
}

#[tokio::test(start_paused = true)]
async fn attempt_timeouts_are_maybe_processed() {
    // A GET that times out is retried; a POST is not.
    let upstream = Scripted::new(vec![Answer::Hang, status(200)]);
    let svc = layer()
        .attempt_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
        .layer(upstream.clone());
    let res = svc.oneshot(get("/")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(upstream.attempts(), 2);

    let upstream = Scripted::new(vec![Answer::Hang, status(200)]);
    let svc = layer()
        .attempt_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
        .layer(upstream.clone());
    let err = svc.oneshot(post("/", "x")).await.unwrap_err();
    assert!(err.is::<TimedOut>(), "{err}");
    assert_eq!(upstream.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn post_is_not_retried_after_a_maybe_processed_failure() {
    for kind in [
        std::io::ErrorKind::ConnectionReset,
        std::io::ErrorKind::UnexpectedEof,
        std::io::ErrorKind::TimedOut,
    ] {
        let upstream = Scripted::new(vec![Answer::Error(kind), status(200)]);
        let svc = layer().build().unwrap().layer(upstream.clone());
        let err = svc.oneshot(post("/v1/messages", "{}")).await.unwrap_err();
        assert!(err.to_string().contains("scripted failure"));
        assert_eq!(upstream.attempts(), 1, "{kind:?}");
    }
    // With an Idempotency-Key the same failure is retried.
    let upstream = Scripted::new(vec![
        Answer::Error(std::io::ErrorKind::ConnectionReset),
        status(200),
    ]);
    let svc = layer().build().unwrap().layer(upstream.clone());
    let mut req = post("/v1/messages", "{}");
    req.headers_mut()
        .insert("idempotency-key", "k-1".parse().unwrap());
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
    assert_eq!(upstream.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn post_is_retried_after_connection_refused() {
    let upstream = Scripted::new(vec![
        Answer::Error(std::io::ErrorKind::ConnectionRefused),
        status(200),
    ]);
    let svc = layer().build().unwrap().layer(upstream.clone());
    let res = svc.oneshot(post("/v1/messages", "payload")).await.unwrap();
    assert_eq!(res.status(), 200);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].body, "payload");
}

#[tokio::test(start_paused = true)]
async fn post_is_retried_after_429_and_not_after_500() {
    let upstream = Scripted::new(vec![status(429), status(200)]);
    let svc = layer().build().unwrap().layer(upstream.clone());
    assert_eq!(svc.oneshot(post("/", "a")).await.unwrap().status(), 200);
    assert_eq!(upstream.attempts(), 2);

    let upstream = Scripted::new(vec![status(500), status(200)]);
    let svc = layer().build().unwrap().layer(upstream.clone());
    let res = svc.oneshot(post("/", "a")).await.unwrap();
    assert_eq!(res.status(), 500);
    assert_eq!(RetryInfo::of(&res).gave_up, Some(GiveUp::NotIdempotent));
    assert_eq!(upstream.attempts(), 1);

    // 529 with x-should-retry: true is declared safe by the server.
    let upstream = Scripted::new(vec![
        with_header(529, "x-should-retry", "true"),
        status(200),
    ]);
    let svc = layer().build().unwrap().layer(upstream.clone());
    assert_eq!(svc.oneshot(post("/", "a")).await.unwrap().status(), 200);
    assert_eq!(upstream.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_server_can_forbid_retries() {
    for answer in [
        with_header(503, "x-should-retry", "false"),
        with_header(429, "grpc-retry-pushback-ms", "-1"),
        with_header(429, "stripe-should-retry", "false"),
    ] {
        let upstream = Scripted::new(vec![answer, status(200)]);
        let svc = layer().build().unwrap().layer(upstream.clone());
        let res = svc.oneshot(get("/")).await.unwrap();
        assert_ne!(res.status(), 200);
        assert_eq!(upstream.attempts(), 1);
        assert_eq!(RetryInfo::of(&res).gave_up, Some(GiveUp::Forbidden));
    }
}

#[tokio::test(start_paused = true)]
async fn hopeless_quota_errors_are_returned_whole() {
    const BODY: &str = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    let upstream = Scripted::new(vec![Answer::Status(429, vec![], BODY), status(200)]);
    let svc = layer().build().unwrap().layer(upstream.clone());
    let res = svc
        .oneshot(post("/v1/chat/completions", "{}"))
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(upstream.attempts(), 1);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, BODY, "the peeked body reaches the caller intact");

    // An ordinary 429 body is retried.
    const RATE: &str = r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
    let upstream = Scripted::new(vec![Answer::Status(429, vec![], RATE), status(200)]);
    let svc = layer().build().unwrap().layer(upstream.clone());
    assert_eq!(svc.oneshot(get("/")).await.unwrap().status(), 200);
    assert_eq!(upstream.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn attempts_are_capped() {
    let upstream = Scripted::new(vec![status(503)]);
    let svc = layer()
        .max_attempts(4)
        .build()
        .unwrap()
        .layer(upstream.clone());
    let res = svc.oneshot(get("/")).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(upstream.attempts(), 4);
    let info = RetryInfo::of(&res);
    assert_eq!(info.attempts, 4);
    assert_eq!(info.gave_up, Some(GiveUp::Attempts));
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_not_retried() {
    let upstream = Scripted::new(vec![status(400), status(200)]);
    let svc = layer().build().unwrap().layer(upstream.clone());
    let res = svc.oneshot(get("/")).await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(upstream.attempts(), 1);
    // Nothing notable: no retry information is stored.
    assert!(res.extensions().get::<RetryInfo>().is_none());
}

#[tokio::test(start_paused = true)]
async fn the_budget_stops_a_retry_storm() {
    // Every attempt fails; 1 000 requests with up to 10 attempts each. The
    // budget allows 20 % of requests plus 10/s over 10 s.
    let upstream = Scripted::new(vec![status(503)]);
    let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2).unwrap();
    let layer = layer()
        .max_attempts(10)
        .backoff(Backoff::constant(Duration::from_millis(1)))
        .budget(budget.clone())
        .build()
        .unwrap();
    let gave_up_budget = Arc::new(Mutex::new(0u32));
    let svc = layer.layer(upstream.clone());
    let requests = 1000u64;
    let mut tasks = Vec::new();
    for _ in 0..requests {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let res = svc.oneshot(get("/")).await.unwrap();
            RetryInfo::of(&res).gave_up
        }));
    }
    for t in tasks {
        if t.await.unwrap() == Some(GiveUp::Budget) {
            *gave_up_budget.lock().unwrap() += 1;
        }
    }
    let attempts = upstream.attempts() as u64;
    let floor = 10 * 10;
    assert!(
        attempts as f64 <= 1.2 * requests as f64 + floor as f64,
        "{attempts} attempts for {requests} requests"
    );
    assert!(*gave_up_budget.lock().unwrap() > 0);
    assert!(budget.refused() > 0);
    assert_eq!(budget.requests(), requests);
}

#[tokio::test(start_paused = true)]
async fn bodies_over_the_cap_are_sent_once() {
    let upstream = Scripted::new(vec![status(503), status(200)]);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let svc = layer()
        .replay_cap(8)
        .on_event(move |e: &Event<'_>| {
            if let Event::GaveUp { reason, .. } = e {
                sink.lock().unwrap().push(*reason);
            }
        })
        .build()
        .unwrap()
        .layer(upstream.clone());
    let res = svc
        .oneshot(get_with_body("/", "more than eight bytes"))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(upstream.attempts(), 1);
    assert_eq!(upstream.seen()[0].body, "more than eight bytes");
    assert_eq!(RetryInfo::of(&res).gave_up, Some(GiveUp::BodyNotReplayable));
    assert_eq!(*events.lock().unwrap(), [GiveUp::BodyNotReplayable]);
}

fn get_with_body(uri: &str, body: &'static str) -> http::Request<http_body_util::Full<Bytes>> {
    http::Request::get(uri)
        .body(http_body_util::Full::new(Bytes::from_static(
            body.as_bytes(),
        )))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn streaming_bodies_replay_with_trailers() {
    use http_body::Frame;
    use http_body_util::StreamBody;

    let upstream = Scripted::new(vec![status(503), status(503), status(200)]);
    let svc = layer()
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .build()
        .unwrap()
        .layer(upstream.clone());
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let body = StreamBody::new(Box::pin(stream));
    let req = http::Request::put("/upload").body(body).unwrap();
    let call = tokio::spawn(svc.oneshot(req));
    for chunk in ["alpha-", "beta-", "gamma"] {
        tx.send(Ok(Frame::data(Bytes::from_static(chunk.as_bytes()))))
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    tx.send(Ok(Frame::trailers(trailers.clone())))
        .await
        .unwrap();
    drop(tx);
    let res = call.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.body, "alpha-beta-gamma");
        assert_eq!(s.trailers.as_ref(), Some(&trailers));
    }
}

#[tokio::test(start_paused = true)]
async fn events_report_each_decision() {
    let upstream = Scripted::new(vec![
        with_header(429, "retry-after", "1"),
        status(503),
        status(200),
    ]);
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let svc = layer()
        .backoff(Backoff::constant(Duration::from_millis(100)))
        .on_event(move |e: &Event<'_>| {
            if let Event::Retry {
                attempt,
                outcome,
                server_directed,
                ..
            } = e
            {
                sink.lock()
                    .unwrap()
                    .push((*attempt, outcome.as_str(), *server_directed));
            }
        })
        .build()
        .unwrap()
        .layer(upstream);
    svc.oneshot(get("/")).await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [(2, "rate_limited", true), (3, "overloaded", false)]
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_releases_everything() {
    use http_body::Frame;
    type Chunk = Result<Frame<Bytes>, std::io::Error>;
    type Streaming = http_body_util::StreamBody<
        std::pin::Pin<Box<dyn futures_util::Stream<Item = Chunk> + Send>>,
    >;
    let (mock, mut handle) = tower_test::mock::pair::<
        http::Request<evenkeel_core::body::ReplayBody<Streaming>>,
        http::Response<http_body_util::Empty<Bytes>>,
    >();
    let mut svc = layer()
        .backoff(Backoff::constant(Duration::from_secs(1)))
        .build()
        .unwrap()
        .layer(mock);
    handle.allow(1);
    let mut task = tokio_test::task::spawn(());
    tokio_test::assert_ready_ok!(task.enter(|cx, _| svc.poll_ready(cx)));

    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(1);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let body: Streaming = http_body_util::StreamBody::new(Box::pin(stream));
    let mut fut = tokio_test::task::spawn(svc.call(http::Request::put("/").body(body).unwrap()));
    tokio_test::assert_pending!(fut.poll());

    // The upstream answers 503 and lets go of its request.
    let (request, responder) = handle.next_request().await.unwrap();
    drop(request);
    responder.send_response(
        http::Response::builder()
            .status(503)
            .body(http_body_util::Empty::new())
            .unwrap(),
    );
    // The future is now waiting to retry, holding the body for replay.
    tokio_test::assert_pending!(fut.poll());
    assert!(!tx.is_closed(), "the body is kept for the retry");

    drop(fut);
    assert!(
        tx.is_closed(),
        "dropping the future released the request body"
    );
    handle.allow(10);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(
        handle.next_request().now_or_never_is_none(),
        "no attempt is made after the future is dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn readiness_is_polled_before_every_attempt() {
    let (mock, mut handle) = tower_test::mock::pair::<
        http::Request<evenkeel_core::body::ReplayBody<http_body_util::Full<Bytes>>>,
        http::Response<http_body_util::Empty<Bytes>>,
    >();
    let mut svc = layer()
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .build()
        .unwrap()
        .layer(mock);
    // Not ready until the mock allows it.
    handle.allow(0);
    let mut task = tokio_test::task::spawn(());
    tokio_test::assert_pending!(task.enter(|cx, _| svc.poll_ready(cx)));
    // A clone starts un-ready as well.
    let mut clone = svc.clone();
    tokio_test::assert_pending!(task.enter(|cx, _| clone.poll_ready(cx)));

    handle.allow(1);
    tokio_test::assert_ready_ok!(task.enter(|cx, _| svc.poll_ready(cx)));
    let mut fut = tokio_test::task::spawn(svc.call(get("/")));
    tokio_test::assert_pending!(fut.poll());
    let (_, responder) = handle.next_request().await.unwrap();
    responder.send_response(
        http::Response::builder()
            .status(503)
            .body(http_body_util::Empty::new())
            .unwrap(),
    );
    // The retry waits out its backoff, then waits for readiness: the mock
    // has no capacity left, so no second call is made.
    tokio_test::assert_pending!(fut.poll());
    tokio::time::advance(Duration::from_millis(20)).await;
    tokio_test::assert_pending!(fut.poll());
    assert!(handle.next_request().now_or_never_is_none());
    handle.allow(1);
    tokio_test::assert_pending!(fut.poll());
    let (_, responder) = handle.next_request().await.unwrap();
    responder.send_response(http::Response::new(http_body_util::Empty::new()));
    let res = fut.await.unwrap();
    assert_eq!(res.status(), 200);
}

trait NowOrNever {
    fn now_or_never_is_none(self) -> bool;
}

impl<F: std::future::Future> NowOrNever for F {
    fn now_or_never_is_none(self) -> bool {
        futures_util::FutureExt::now_or_never(self).is_none()
    }
}

#[test]
fn builder_validation_names_fields() {
    let field = |b: evenkeel_retry::RetryBuilder| b.build().unwrap_err().field();
    assert_eq!(field(RetryLayer::builder().max_attempts(0)), "max_attempts");
    assert_eq!(
        field(RetryLayer::builder().max_server_wait(Duration::ZERO)),
        "max_server_wait"
    );
    assert_eq!(
        field(RetryLayer::builder().attempt_timeout(Duration::ZERO)),
        "attempt_timeout"
    );
    assert_eq!(
        field(RetryLayer::builder().deadline(Duration::ZERO)),
        "deadline"
    );
    assert_eq!(
        field(
            RetryLayer::builder()
                .attempt_timeout(Duration::from_secs(20))
                .deadline(Duration::from_secs(10))
        ),
        "attempt_timeout"
    );
}

mod generic_form {
    use super::*;
    use evenkeel_core::{Classify, Outcome, Signal};
    use evenkeel_retry::generic::ResendPolicy;

    #[derive(Clone)]
    struct Replies;
    impl Classify<&'static str> for Replies {
        fn classify_response(&self, reply: &&'static str) -> Outcome {
            match *reply {
                "slow down" => Outcome::RateLimited(Signal::wait(Duration::from_secs(3))),
                "oops" => Outcome::ServerError(Signal::NONE),
                _ => Outcome::Success,
            }
        }
    }

    /// Copies requests unless they are "unique".
    struct Copies;
    impl ResendPolicy<String> for Copies {
        fn may_retry(&self, outcome: &Outcome, _: &String) -> bool {
            !outcome.is_hopeless()
        }
        fn clone_request(&self, request: &String) -> Option<String> {
            (request != "unique").then(|| request.clone())
        }
    }

    fn upstream(
        script: Vec<&'static str>,
    ) -> (
        impl Service<String, Response = &'static str, Error = std::convert::Infallible, Future: Send>
        + Clone,
        Arc<Mutex<Vec<tokio::time::Instant>>>,
    ) {
        let script = Arc::new(Mutex::new(script));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = sent.clone();
        let svc = tower::service_fn(move |_: String| {
            log.lock().unwrap().push(tokio::time::Instant::now());
            let mut s = script.lock().unwrap();
            let reply = if s.len() > 1 { s.remove(0) } else { s[0] };
            std::future::ready(Ok(reply))
        });
        (svc, sent)
    }

    #[tokio::test(start_paused = true)]
    async fn honours_server_waits_for_any_request_type() {
        let (svc, sent) = upstream(vec!["slow down", "oops", "done"]);
        let layer = layer()
            .backoff(Backoff::constant(Duration::from_millis(100)))
            .classifier(Replies)
            .policy(Copies)
            .build_generic()
            .unwrap();
        let reply = layer.layer(svc).oneshot("hello".to_string()).await.unwrap();
        assert_eq!(reply, "done");
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 3);
        assert!(sent[1] - sent[0] >= Duration::from_secs(3));
        assert_eq!(sent[2] - sent[1], Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_that_cannot_be_copied_are_sent_once() {
        let (svc, sent) = upstream(vec!["oops", "done"]);
        let layer = layer()
            .classifier(Replies)
            .policy(Copies)
            .build_generic()
            .unwrap();
        let reply = layer
            .layer(svc)
            .oneshot("unique".to_string())
            .await
            .unwrap();
        assert_eq!(reply, "oops");
        assert_eq!(sent.lock().unwrap().len(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn each_on_event_adds_a_listener() {
    let upstream = Scripted::new(vec![status(503), status(200)]);
    let (first, second) = (Arc::new(Mutex::new(0)), Arc::new(Mutex::new(0)));
    let (a, b) = (first.clone(), second.clone());
    let svc = layer()
        .on_event(move |e: &Event<'_>| {
            if let Event::Retry { .. } = e {
                *a.lock().unwrap() += 1;
            }
        })
        .on_event(move |e: &Event<'_>| {
            if let Event::Retry { .. } = e {
                *b.lock().unwrap() += 1;
            }
        })
        .build()
        .unwrap()
        .layer(upstream.clone());
    let res = svc.oneshot(get_with_body("/", "")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(*first.lock().unwrap(), 1, "the first listener is kept");
    assert_eq!(*second.lock().unwrap(), 1);
}
