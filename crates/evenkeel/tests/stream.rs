//! Streamed answers through the preset, against the sim: an error event
//! before content is retried and never seen, one after content ends the
//! body and is not resent, and the endpoint's permit lasts as long as the
//! stream.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use evenkeel::core::Outcome;
use evenkeel::core::error::{StreamError, StreamErrorKind, TimedOut};
use evenkeel::core::event::{Event, StreamEnd};
use evenkeel::{Preset, connector_fn};
use evenkeel_sim::{Sim, StreamFault, Streaming};
use http::Request;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

fn post(id: &str) -> Request<Full<Bytes>> {
    Request::post("/v1/messages")
        .header("x-request-id", id)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"m","max_tokens":16,"stream":true}"#,
        )))
        .unwrap()
}

fn preset(sim: &Sim) -> Preset<Sim> {
    let upstream = sim.clone();
    Preset::builder()
        .endpoint("http://sim.test")
        .seed(7)
        .build(connector_fn(move |_| Ok(upstream.clone())))
        .unwrap()
}

fn event_names(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn an_error_event_first_is_retried_and_the_caller_sees_one_clean_stream() {
    let sim = Sim::builder()
        .latency(Duration::from_millis(20))
        .streaming(Streaming::new().error_on_first_attempt())
        .build()
        .unwrap();
    let client = preset(&sim);
    let response = client.clone().oneshot(post("s1")).await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(
        !text.contains("event: error"),
        "the failed stream stays below"
    );
    assert_eq!(event_names(text).first(), Some(&"message_start"));
    assert_eq!(event_names(text).last(), Some(&"message_stop"));
    assert_eq!(
        sim.stats().attempts_for("s1"),
        2,
        "a POST refused before content is resent once"
    );
    assert_eq!(sim.stats().stream_errors(), 1);
    let (_, limit) = &client.limits()[0];
    assert_eq!(limit.in_flight(), 0, "the stream ended: its permit is back");
}

#[tokio::test(start_paused = true)]
async fn an_error_after_content_ends_the_body_and_is_not_resent() {
    let ends = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ends);
    let sim = Sim::builder()
        .streaming(
            Streaming::new()
                .error_after(1.0, 3)
                .fault(StreamFault::Overloaded),
        )
        .build()
        .unwrap();
    let upstream = sim.clone();
    let client = Preset::builder()
        .endpoint("http://sim.test")
        .on_event(move |event: &Event<'_>| {
            if let Event::StreamEnded { end, .. } = event {
                seen.lock().unwrap().push(*end);
            }
        })
        .build(connector_fn(move |_| Ok(upstream.clone())))
        .unwrap();
    let response = client.oneshot(post("s2")).await.unwrap();
    let mut body = response.into_body();
    let mut content = Vec::new();
    let err = loop {
        match body.frame().await {
            Some(Ok(frame)) => content.extend_from_slice(frame.data_ref().unwrap()),
            Some(Err(err)) => break err,
            None => panic!("the stream ended without its error"),
        }
    };
    let text = String::from_utf8(content).unwrap();
    assert_eq!(
        event_names(&text),
        [
            "message_start",
            "content_block_start",
            "content_block_delta"
        ],
        "the content before the error reached the caller"
    );
    let stream = err
        .downcast_ref::<StreamError>()
        .expect("the body ends with a StreamError");
    assert_eq!(stream.kind(), StreamErrorKind::Overloaded);
    assert!(!stream.before_content());
    assert_eq!(sim.stats().attempts_for("s2"), 1, "never resent");
    assert_eq!(
        *ends.lock().unwrap(),
        [StreamEnd::Error(StreamErrorKind::Overloaded)]
    );
}

#[tokio::test(start_paused = true)]
async fn the_endpoint_permit_lasts_as_long_as_the_stream() {
    let sim = Sim::builder()
        .streaming(Streaming::new().always())
        .build()
        .unwrap();
    let client = preset(&sim);
    let (_, limit) = &client.limits()[0];
    let response = client.clone().oneshot(post("s3")).await.unwrap();
    assert_eq!(limit.in_flight(), 1, "the stream is still being read");
    drop(response);
    assert_eq!(limit.in_flight(), 0, "dropping the body gives it back");

    let response = client.clone().oneshot(post("s4")).await.unwrap();
    let _ = response.into_body().collect().await.unwrap();
    assert_eq!(limit.in_flight(), 0, "reading it to the end gives it back");
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_event_first_is_retried_as_a_429() {
    let sim = Sim::builder()
        .streaming(
            Streaming::new()
                .error_on_first_attempt()
                .fault(StreamFault::RateLimit),
        )
        .build()
        .unwrap();
    let retries = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&retries);
    let upstream = sim.clone();
    let client = Preset::builder()
        .endpoint("http://sim.test")
        .on_event(move |event: &Event<'_>| {
            if let Event::Retry { outcome, wait, .. } = event {
                seen.lock().unwrap().push((**outcome, *wait));
            }
        })
        .build(connector_fn(move |_| Ok(upstream.clone())))
        .unwrap();
    let response = client.clone().oneshot(post("s5")).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert!(bytes.starts_with(b"event: message_start"));
    assert_eq!(sim.stats().attempts_for("s5"), 2);
    let retries = retries.lock().unwrap();
    assert_eq!(retries.len(), 1);
    let (outcome, wait) = retries[0];
    assert!(
        matches!(outcome, Outcome::RateLimited(_)),
        "judged like a 429: {outcome:?}"
    );
    assert!(
        wait >= evenkeel::BARE_429_COOLDOWN,
        "after the throttle backoff: {wait:?}"
    );
}

/// A body that sends nothing, ever.
struct Stalled;

impl Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_stalled_before_its_first_event_is_bounded() {
    let calls = Arc::new(Mutex::new(0u32));
    let counted = Arc::clone(&calls);
    let upstream = tower::service_fn(move |_req: Request<_>| {
        *counted.lock().unwrap() += 1;
        async {
            let response = http::Response::builder()
                .header("content-type", "text/event-stream")
                .body(Stalled)
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    let client = Preset::builder()
        .endpoint("http://stalled.test")
        .attempt_timeout(Duration::from_secs(5))
        .first_event_timeout(Some(Duration::from_secs(2)))
        .build(connector_fn(move |_| Ok(upstream.clone())))
        .unwrap();
    let started = tokio::time::Instant::now();
    let err = client.clone().oneshot(post("s6")).await.unwrap_err();
    assert!(err.is::<TimedOut>(), "{err}");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "a POST that timed out may have been processed: not resent"
    );
    assert_eq!(*calls.lock().unwrap(), 1);
    assert_eq!(client.limits()[0].1.in_flight(), 0);

    let refused = Preset::builder()
        .endpoint("http://stalled.test")
        .attempt_timeout(Duration::from_secs(5))
        .first_event_timeout(Some(Duration::from_secs(6)))
        .build(connector_fn(|_| {
            Ok(tower::service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(http::Response::new(Stalled))
            }))
        }))
        .unwrap_err();
    assert_eq!(refused.field(), "first_event_timeout");
}
