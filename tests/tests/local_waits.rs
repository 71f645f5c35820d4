//! A wait the stack imposes on itself is a wait, not an attempt: the preset
//! against servers that push back in ways a plain retry loop survives, in
//! process under tokio's paused clock. Every request succeeds, and the
//! attempts the client made are exactly the ones the server saw.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use evenkeel::core::cooldown::Cooldown;
use evenkeel::core::event::Event;
use evenkeel::{Preset, connector_fn};
use evenkeel_sim::{Dialect, Sim};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;
use tower::ServiceExt;

fn get(id: usize) -> http::Request<Full<Bytes>> {
    http::Request::get("/v1/models")
        .header("x-request-id", format!("req-{id}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// What the client did, from its own events.
#[derive(Default)]
struct Counts {
    retries: AtomicU64,
    failovers: AtomicU64,
    local_give_ups: AtomicU64,
}

/// The preset over `sim` with one endpoint, counting retries and
/// failovers.
fn preset(sim: &Sim, counts: &Arc<Counts>) -> Preset<Sim> {
    let upstream = sim.clone();
    let seen = Arc::clone(counts);
    Preset::builder()
        .endpoint("http://api.sim")
        .seed(3)
        .on_event(move |event: &Event<'_>| match event {
            Event::Retry { .. } => {
                seen.retries.fetch_add(1, Ordering::Relaxed);
            }
            Event::Failover { .. } => {
                seen.failovers.fetch_add(1, Ordering::Relaxed);
            }
            Event::GaveUp {
                reason: evenkeel::core::event::GiveUp::Local,
                ..
            } => {
                seen.local_give_ups.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        })
        .build(connector_fn(move |_| Ok(upstream.clone())))
        .unwrap()
}

/// Sends `requests` GETs from `callers` concurrent callers; returns the
/// errors and non-2xx answers, by request.
async fn drive(client: Preset<Sim>, callers: usize, requests: usize) -> Vec<String> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let client = client.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed) as usize;
                if id >= requests {
                    break;
                }
                match client.clone().oneshot(get(id)).await {
                    Ok(res) if res.status().is_success() => {}
                    Ok(res) => failures.push(format!("req-{id}: {}", res.status())),
                    Err(err) => failures.push(format!("req-{id}: {err}")),
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.unwrap());
    }
    failures
}

/// Every request succeeded, and the attempts the client counted (one per
/// request plus its retries and failovers) are the attempts the server saw.
fn assert_all_through(sim: &Sim, counts: &Counts, failures: &[String], requests: u64) {
    assert!(failures.is_empty(), "failed: {failures:#?}");
    let stats = sim.stats();
    assert_eq!(stats.successes(), requests);
    let client_attempts = requests
        + counts.retries.load(Ordering::Relaxed)
        + counts.failovers.load(Ordering::Relaxed);
    assert_eq!(
        client_attempts,
        stats.attempts(),
        "attempts counted by the client and seen by the server"
    );
    assert_eq!(counts.local_give_ups.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn two_per_second_paces_every_request_through() {
    // An honest "two per second": the quota is announced in OpenAI's
    // headers, and the server refuses what goes over it.
    let sim = Sim::builder()
        .requests(2.0, 2)
        .dialect(Dialect::OpenAi)
        .latency(Duration::from_millis(20))
        .build()
        .unwrap();
    let counts = Arc::default();
    let start = Instant::now();
    let failures = drive(preset(&sim, &counts), 4, 10).await;
    assert_all_through(&sim, &counts, &failures, 10);
    // Ten requests at two a second, two in the first burst: about four
    // seconds, well inside the 30 s deadline.
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// A server that refuses the first attempt of each request with a 429
/// carrying `headers` (no usable wait), and answers the second.
async fn first_attempt_refused(headers: &[(&str, &str)]) {
    let sim = Sim::builder()
        .latency(Duration::from_millis(20))
        .first_attempt(429, headers.iter().copied())
        .unwrap()
        .build()
        .unwrap();
    let counts = Arc::default();
    let failures = drive(preset(&sim, &counts), 4, 10).await;
    assert_all_through(&sim, &counts, &failures, 10);
    assert_eq!(
        sim.stats().status_count(StatusCode::TOO_MANY_REQUESTS),
        10,
        "{headers:?}: each request's first attempt, and only that, was refused"
    );
    assert_eq!(sim.stats().attempts(), 20, "{headers:?}");
}

#[tokio::test(start_paused = true)]
async fn a_429_without_a_wait_is_retried_with_backoff() {
    first_attempt_refused(&[]).await;
}

#[tokio::test(start_paused = true)]
async fn a_429_with_a_wait_that_makes_no_sense_is_retried_with_backoff() {
    for headers in [
        &[("retry-after", "-5")][..],
        &[("retry-after", "inf")],
        &[("retry-after", "")],
        &[
            ("retry-after", "3"),
            ("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ],
        &[("retry-after-ms", "-1")],
        &[("retry-after", "NaN")],
        &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")],
    ] {
        first_attempt_refused(headers).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_429_with_a_server_wait_waits_that_long_once() {
    let sim = Sim::builder()
        .latency(Duration::from_millis(20))
        .first_attempt(429, [("retry-after", "2")])
        .unwrap()
        .build()
        .unwrap();
    let counts = Arc::default();
    let start = Instant::now();
    let failures = drive(preset(&sim, &counts), 4, 8).await;
    assert_all_through(&sim, &counts, &failures, 8);
    assert_eq!(sim.stats().attempts(), 16);
    // Each 429 cools the endpoint's key for the 2 s it names, and the key
    // comes back with one probe at a time: every request still makes it
    // inside its 30 s deadline, with exactly one wasted attempt each.
    let took = start.elapsed();
    assert!(took < evenkeel::DEFAULT_DEADLINE, "took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn an_absurd_server_wait_is_a_long_wait_capped_by_max_server_wait() {
    // `retry-after-ms: 1e400` saturates: the server asked for longer than
    // the stack sleeps through (120 s). The 429 goes back to its caller at
    // once, and the endpoint cools down for the cap, not for ever.
    let sim = Sim::builder()
        .latency(Duration::from_millis(20))
        .first_attempt(429, [("retry-after-ms", "1e400")])
        .unwrap()
        .build()
        .unwrap();
    let counts = Arc::default();
    let client = preset(&sim, &counts);
    let start = Instant::now();
    let res = client.clone().oneshot(get(0)).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "returned at once, not slept"
    );
    let cooling = client.quotas()[0].1.cooldown_until().expect("cooling");
    assert!(
        cooling - Instant::now() <= evenkeel::DEFAULT_MAX_SERVER_WAIT,
        "capped: {:?}",
        cooling - Instant::now()
    );
    // The next request cannot fit its deadline: refused at once, unsent,
    // with the endpoint's name and when it is back.
    let err = client.clone().oneshot(get(1)).await.unwrap_err();
    assert!(err.to_string().contains("api.sim"), "{err}");
    assert_eq!(sim.stats().attempts(), 1);
    assert_eq!(counts.local_give_ups.load(Ordering::Relaxed), 1);
    // Once the capped cooldown is over, requests go again.
    tokio::time::sleep(evenkeel::DEFAULT_MAX_SERVER_WAIT).await;
    // (`req-1` never reached the server, so its first attempt there is
    // still to come; `req-0`'s second is answered.)
    let res = client.clone().oneshot(get(0)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(sim.stats().attempts(), 2);
}

/// A response body that never sends a byte and never ends.
struct Silent;

impl http_body::Body for Silent {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_ends_with_timed_out_at_the_idle_bound() {
    // The head arrives, the body never does.
    let upstream = tower::service_fn(|_req: http::Request<_>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Silent))
    });
    let client = Preset::builder()
        .endpoint("http://api.stalled")
        .body_idle_timeout(Some(Duration::from_secs(5)))
        .build(connector_fn(move |_| Ok(upstream)))
        .unwrap();
    let start = Instant::now();
    let response = client.clone().oneshot(get(0)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let err = response.into_body().collect().await.unwrap_err();
    assert!(
        err.is::<evenkeel::core::error::TimedOut>(),
        "the body ends with TimedOut, got {err}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(5));

    // Without an idle bound, the deadline (30 s) still ends it.
    let upstream = tower::service_fn(|_req: http::Request<_>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Silent))
    });
    let client = Preset::builder()
        .endpoint("http://api.stalled")
        .body_idle_timeout(None)
        .build(connector_fn(move |_| Ok(upstream)))
        .unwrap();
    let start = Instant::now();
    let response = client.clone().oneshot(get(0)).await.unwrap();
    let err = response.into_body().collect().await.unwrap_err();
    assert!(err.is::<evenkeel::core::error::TimedOut>(), "{err}");
    assert_eq!(start.elapsed(), evenkeel::DEFAULT_DEADLINE);
}

#[tokio::test(start_paused = true)]
async fn a_server_that_never_answers_fails_every_request_by_its_deadline() {
    // Accepts and never answers: the limiter admits some, the rest queue.
    // Every request, queued or not, fails by its own deadline.
    let upstream = tower::service_fn(|_req: http::Request<_>| async {
        std::future::pending::<Result<http::Response<Full<Bytes>>, std::convert::Infallible>>()
            .await
    });
    let client = Preset::builder()
        .endpoint("http://api.silent")
        .build(connector_fn(move |_| Ok(upstream)))
        .unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for id in 0..30 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let result = client.oneshot(get(id)).await;
            (
                result.map(|_| ()).map_err(|e| e.to_string()),
                Instant::now(),
            )
        }));
    }
    for task in tasks {
        let (result, ended) = task.await.unwrap();
        assert!(result.is_err());
        assert!(
            ended - start <= evenkeel::DEFAULT_DEADLINE,
            "a request ended {:?} after it started, past its deadline",
            ended - start
        );
    }
}
