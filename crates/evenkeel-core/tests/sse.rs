//! The event-stream layer at the poll level: what it holds back, what it
//! lets through, and how it ends hostile streams.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::error::{DeadlineExceeded, StreamError, StreamErrorKind, TimedOut};
use evenkeel_core::event::{Event, Events, StreamEnd};
use evenkeel_core::ext::AttemptContext;
use evenkeel_core::observe::ObserveLayer;
use evenkeel_core::sse::{SseBody, SseLayer};
use evenkeel_core::{BoxError, HttpClassifier, Outcome, resend};
use http::{Method, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tower::{Service, ServiceBuilder, ServiceExt};

/// A response body fed through a channel, chunk by chunk.
struct ChannelBody(mpsc::UnboundedReceiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

const OVERLOADED: &str = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
const START: &str = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n";
const DELTA: &str = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\n";
const STOP: &str = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

fn stream_response(body: ChannelBody) -> Response<ChannelBody> {
    Response::builder()
        .header("content-type", "text/event-stream; charset=utf-8")
        .body(body)
        .unwrap()
}

/// A service answering one event stream fed by the returned sender, with
/// an observer above the layer, as in an endpoint's stack.
fn channel_service(
    layer: SseLayer,
) -> (
    impl Service<Request<()>, Response = Response<SseBody<ChannelBody>>, Error = BoxError>,
    mpsc::UnboundedSender<Bytes>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = Arc::new(Mutex::new(Some(rx)));
    let svc = ServiceBuilder::new()
        .layer(ObserveLayer::new(HttpClassifier::new()))
        .layer(layer)
        .service_fn(move |_req: Request<()>| {
            let rx = rx.lock().unwrap().take().expect("one call");
            async move { Ok::<_, Infallible>(stream_response(ChannelBody(rx))) }
        });
    (svc, tx)
}

fn send(tx: &mpsc::UnboundedSender<Bytes>, chunk: impl Into<Bytes>) {
    tx.send(chunk.into()).unwrap();
}

fn ends() -> (Events, Arc<Mutex<Vec<StreamEnd>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let events = {
        let seen = Arc::clone(&seen);
        Events::new(move |event: &Event<'_>| {
            if let Event::StreamEnded { end, .. } = event {
                seen.lock().unwrap().push(*end);
            }
        })
    };
    (events, seen)
}

fn post(context: &AttemptContext) -> Request<()> {
    let mut request = Request::builder().method(Method::POST).body(()).unwrap();
    request.extensions_mut().insert(context.clone());
    request
}

#[tokio::test(start_paused = true)]
async fn an_error_before_content_fails_the_attempt_like_its_status() {
    let (mut svc, tx) = channel_service(SseLayer::new());
    // The error event arrives split over two chunks, after a ping.
    send(&tx, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
    send(&tx, &OVERLOADED[..20]);
    send(&tx, &OVERLOADED[20..]);
    let context = AttemptContext::new(1, None);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(post(&context))
        .await
        .unwrap_err();
    let stream = err.downcast_ref::<StreamError>().expect("a StreamError");
    assert_eq!(stream.kind(), StreamErrorKind::Overloaded);
    assert!(stream.before_content());
    let outcome = context.outcome_for(true).expect("the observer judged it");
    assert!(matches!(outcome, Outcome::Overloaded(_)), "{outcome:?}");
    assert!(
        resend::may_resend(&outcome, &Method::POST, &http::HeaderMap::new()),
        "refused before any work: a POST may be resent"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_event_reads_as_a_429() {
    let (mut svc, tx) = channel_service(SseLayer::new());
    send(
        &tx,
        "data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"tokens\",\"code\":\"rate_limit_exceeded\"}}\n\n",
    );
    let context = AttemptContext::new(1, None);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(post(&context))
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<StreamError>().map(StreamError::kind),
        Some(StreamErrorKind::RateLimited)
    );
    assert!(matches!(context.outcome(), Some(Outcome::RateLimited(_))));
}

#[tokio::test(start_paused = true)]
async fn the_response_waits_for_the_first_content_event() {
    let (events, seen) = ends();
    let layer = SseLayer::builder().events(events).build().unwrap();
    let (mut svc, tx) = channel_service(layer);
    let mut future = tokio_test::task::spawn(svc.ready().await.unwrap().call(Request::new(())));
    send(
        &tx,
        ": keep-alive\n\nevent: message_start\ndata: {\"type\":",
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(future.poll().is_pending(), "no complete content event yet");
    send(&tx, "\"message_start\"}\n\n");
    let response = future.await.expect("content came first");
    assert!(response.body().is_event_stream());
    send(&tx, DELTA);
    send(&tx, STOP);
    drop(tx);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let expected = format!(": keep-alive\n\n{START}{DELTA}{STOP}");
    assert_eq!(bytes, expected.as_bytes(), "every byte, once, in order");
    assert_eq!(*seen.lock().unwrap(), [StreamEnd::Complete]);
}

#[tokio::test(start_paused = true)]
async fn an_error_after_content_ends_the_body_with_a_stream_error() {
    let (events, seen) = ends();
    let layer = SseLayer::builder().events(events).build().unwrap();
    let (mut svc, tx) = channel_service(layer);
    // Content and the error in one chunk: the content goes out first.
    send(&tx, format!("{START}{DELTA}{OVERLOADED}"));
    let context = AttemptContext::new(1, None);
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(post(&context))
        .await
        .unwrap();
    assert_eq!(
        context.outcome(),
        Some(Outcome::Success),
        "the head was fine"
    );
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, format!("{START}{DELTA}").as_bytes());
    let err = body.frame().await.unwrap().unwrap_err();
    let stream = err.downcast_ref::<StreamError>().expect("a StreamError");
    assert_eq!(stream.kind(), StreamErrorKind::Overloaded);
    assert!(!stream.before_content());
    assert!(body.frame().await.is_none(), "the body ends there");
    assert_eq!(
        *seen.lock().unwrap(),
        [StreamEnd::Error(StreamErrorKind::Overloaded)]
    );
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_is_bounded_by_the_first_event_timeout() {
    let layer = SseLayer::builder()
        .first_event_timeout(Some(Duration::from_secs(3)))
        .build()
        .unwrap();
    let (mut svc, tx) = channel_service(layer);
    send(&tx, ": still here\n\n");
    let started = tokio::time::Instant::now();
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    assert!(err.is::<TimedOut>(), "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_the_wait_when_it_comes_first() {
    let (mut svc, _tx) = channel_service(SseLayer::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let context = AttemptContext::new(1, Some(deadline));
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(post(&context))
        .await
        .unwrap_err();
    assert!(err.is::<DeadlineExceeded>(), "{err}");
    assert_eq!(tokio::time::Instant::now(), deadline);
}

#[tokio::test(start_paused = true)]
async fn bytes_without_content_are_held_only_up_to_the_bound() {
    let layer = SseLayer::builder().max_held_bytes(1024).build().unwrap();
    let (mut svc, tx) = channel_service(layer);
    let comment = Bytes::from(format!(": {}\n", "x".repeat(200)));
    for _ in 0..10 {
        send(&tx, comment.clone());
    }
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    let stream = err.downcast_ref::<StreamError>().expect("a StreamError");
    assert_eq!(stream.kind(), StreamErrorKind::TooLarge);
    assert!(stream.before_content());
}

#[tokio::test(start_paused = true)]
async fn hostile_streams_end_with_a_clear_error() {
    // A line that never ends, after content: bounded by the line cap.
    let layer = SseLayer::builder().max_line_bytes(4096).build().unwrap();
    let (mut svc, tx) = channel_service(layer);
    send(&tx, START);
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    let mut body = response.into_body();
    assert!(body.frame().await.unwrap().is_ok());
    let junk = Bytes::from(vec![b'a'; 1024]);
    let mut sent = 0;
    let err = loop {
        send(&tx, junk.clone());
        sent += junk.len();
        assert!(sent <= 8 * 1024, "the line cap must end the body");
        match body.frame().await {
            Some(Ok(_)) => continue,
            Some(Err(err)) => break err,
            None => panic!("ended without an error"),
        }
    };
    assert_eq!(
        err.downcast_ref::<StreamError>().map(StreamError::kind),
        Some(StreamErrorKind::TooLarge)
    );
    assert!(body.frame().await.is_none(), "and nothing after it");

    // Bytes that are not UTF-8, before content.
    let (mut svc, tx) = channel_service(SseLayer::new());
    send(&tx, Bytes::from_static(b"data: \xc3\x28\xff\n\n"));
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<StreamError>().map(StreamError::kind),
        Some(StreamErrorKind::Malformed)
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_stream_is_reported_and_other_answers_pass_through() {
    let (events, seen) = ends();
    let layer = SseLayer::builder().events(events).build().unwrap();
    let (mut svc, tx) = channel_service(layer);
    send(&tx, START);
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    drop(response);
    assert_eq!(*seen.lock().unwrap(), [StreamEnd::Dropped]);
    drop(tx);

    let mut plain =
        ServiceBuilder::new()
            .layer(SseLayer::new())
            .service_fn(|_req: Request<()>| async {
                let response = Response::builder()
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(Bytes::from(OVERLOADED)))
                    .unwrap();
                Ok::<_, Infallible>(response)
            });
    let response = plain
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert!(!response.body().is_event_stream());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        bytes,
        OVERLOADED.as_bytes(),
        "not an event stream: untouched"
    );
}
