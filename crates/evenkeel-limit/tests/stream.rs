//! A streamed answer holds its permit until its body ends or is dropped.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use evenkeel_limit::{Aimd, LimitLayer, Release};
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio_test::{assert_pending, assert_ready_ok};
use tower::{Layer, Service, ServiceExt};

/// A response body fed through a channel.
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

type Senders = Arc<Mutex<Vec<mpsc::UnboundedSender<Bytes>>>>;

/// Answers every request with a body fed by a sender kept in the returned
/// list, as an event stream when `stream`.
fn upstream(
    stream: bool,
) -> (
    impl Service<Request<()>, Response = Response<ChannelBody>, Error = Infallible> + Clone,
    Senders,
) {
    let senders: Senders = Arc::default();
    let kept = Arc::clone(&senders);
    let svc = tower::service_fn(move |_req: Request<()>| {
        let (tx, rx) = mpsc::unbounded_channel();
        kept.lock().unwrap().push(tx);
        async move {
            let content_type = if stream {
                "text/event-stream"
            } else {
                "application/json"
            };
            let response = Response::builder()
                .header("content-type", content_type)
                .body(ChannelBody(rx))
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    (svc, senders)
}

#[tokio::test(start_paused = true)]
async fn an_event_stream_holds_its_permit_until_the_body_ends() {
    let layer = LimitLayer::fixed(1).build().unwrap();
    let handle = layer.handle();
    let (inner, senders) = upstream(true);
    let limited = layer.layer(inner);

    let response = limited.clone().oneshot(Request::new(())).await.unwrap();
    assert!(response.body().holds_permit());
    assert_eq!(handle.in_flight(), 1, "the head came; the stream goes on");

    // A second request waits for the permit while the stream runs.
    let mut second = limited.clone();
    let mut ready = tokio_test::task::spawn(std::future::poll_fn(|cx| second.poll_ready(cx)));
    assert_pending!(ready.poll());

    let tx = senders.lock().unwrap().remove(0);
    tx.send(Bytes::from_static(b"data: {}\n\n")).unwrap();
    let mut body = response.into_body();
    assert!(body.frame().await.unwrap().is_ok());
    assert_eq!(handle.in_flight(), 1, "a frame is not the end");
    assert_pending!(ready.poll());

    drop(tx);
    assert!(body.frame().await.is_none());
    assert!(!body.holds_permit(), "the body ended: the permit is back");
    assert!(ready.is_woken(), "the waiter is woken");
    assert_ready_ok!(ready.poll());
    assert_eq!(handle.in_flight(), 1, "the permit went to the waiter");
    drop(ready);
    drop(second);
    assert_eq!(handle.in_flight(), 0, "and nothing is left behind");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_stream_gives_the_permit_back() {
    let layer = LimitLayer::adaptive(Aimd::default()).build().unwrap();
    let handle = layer.handle();
    let (inner, _senders) = upstream(true);
    let limited = layer.layer(inner);
    let response = limited.oneshot(Request::new(())).await.unwrap();
    assert_eq!(handle.in_flight(), 1);
    drop(response);
    assert_eq!(
        handle.in_flight(),
        0,
        "a dropped body leaves nothing behind"
    );
}

#[tokio::test(start_paused = true)]
async fn other_answers_give_it_back_with_their_head_unless_told() {
    let layer = LimitLayer::fixed(1).build().unwrap();
    let handle = layer.handle();
    let (inner, _senders) = upstream(false);
    let response = layer.layer(inner).oneshot(Request::new(())).await.unwrap();
    assert!(!response.body().holds_permit());
    assert_eq!(handle.in_flight(), 0, "a JSON answer releases at its head");

    let layer = LimitLayer::fixed(1)
        .release(Release::BodyEnd)
        .build()
        .unwrap();
    let handle = layer.handle();
    let (inner, _senders) = upstream(false);
    let response = layer.layer(inner).oneshot(Request::new(())).await.unwrap();
    assert_eq!(handle.in_flight(), 1, "BodyEnd holds every body");
    drop(response);
    assert_eq!(handle.in_flight(), 0);

    let layer = LimitLayer::fixed(1).release(Release::Head).build().unwrap();
    let handle = layer.handle();
    let (inner, _senders) = upstream(true);
    let response = layer.layer(inner).oneshot(Request::new(())).await.unwrap();
    assert_eq!(handle.in_flight(), 0, "Head releases even a stream");
    drop(response);
}
