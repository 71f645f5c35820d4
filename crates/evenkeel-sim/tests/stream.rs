//! Streamed answers: Server-Sent Events in Anthropic's format, with error
//! events first or after some events.

use bytes::Bytes;
use evenkeel_sim::{Sim, StreamFault, Streaming};
use http::Request;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

async fn stream_call(sim: &Sim, body: &'static str) -> (http::Response<Full<Bytes>>, String) {
    let request = Request::post("/v1/messages")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let response = sim.clone().oneshot(request).await.unwrap();
    let (head, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        http::Response::from_parts(head, Full::new(bytes.clone())),
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

#[tokio::test(start_paused = true)]
async fn a_request_that_asks_gets_a_clean_event_stream() {
    let sim = Sim::builder().build().unwrap();
    let (response, text) = stream_call(&sim, r#"{"model":"m","stream":true}"#).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let (response, _) = stream_call(&sim, r#"{"model":"m"}"#).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(sim.stats().stream_errors(), 0);
}

#[tokio::test(start_paused = true)]
async fn error_events_come_first_or_after_n_events() {
    let sim = Sim::builder()
        .streaming(Streaming::new().always().error_first(1.0))
        .build()
        .unwrap();
    let (response, text) = stream_call(&sim, "{}").await;
    assert_eq!(response.status(), 200, "the error is inside a 200 stream");
    assert!(text.starts_with("event: error\ndata: "), "{text}");
    assert!(text.contains("\"overloaded_error\""));
    assert_eq!(text.matches("event: ").count(), 1);
    assert_eq!(sim.stats().stream_errors(), 1);

    let sim = Sim::builder()
        .streaming(
            Streaming::new()
                .error_after(1.0, 3)
                .fault(StreamFault::RateLimit),
        )
        .build()
        .unwrap();
    let (_, text) = stream_call(&sim, r#"{"stream": true}"#).await;
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    assert!(text.contains("\"rate_limit_error\""));
}

#[tokio::test(start_paused = true)]
async fn the_first_attempt_of_each_request_can_fail_its_stream() {
    let sim = Sim::builder()
        .streaming(Streaming::new().always().error_on_first_attempt())
        .build()
        .unwrap();
    let call = |sim: &Sim| {
        let request = Request::post("/v1/messages")
            .header("x-request-id", "r1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        sim.clone().oneshot(request)
    };
    let first = call(&sim)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    assert!(first.to_bytes().starts_with(
        b"event: error
"
    ));
    let again = call(&sim)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    assert!(again.to_bytes().starts_with(
        b"event: message_start
"
    ));
    assert_eq!(sim.stats().attempts_for("r1"), 2);
    assert_eq!(sim.stats().stream_errors(), 1);
}

#[test]
fn the_builder_refuses_bad_fractions() {
    let err = Sim::builder()
        .streaming(Streaming::new().error_first(-0.1))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "stream.error_first");
}
