//! Per-event cost of the event-stream layer: the same stream of content
//! events read raw and through `Sse`, in one run. Report the ratio.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use evenkeel_core::sse::SseLayer;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::StreamBody;
use tower::{Layer, Service};

const EVENTS: usize = 1000;

fn frames() -> Vec<Bytes> {
    let mut frames = vec![Bytes::from_static(
        b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}\n\n",
    )];
    for i in 0..EVENTS - 1 {
        frames.push(Bytes::from(format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"token {i} \"}}}}\n\n"
        )));
    }
    frames
}

type Raw = StreamBody<
    futures_util::stream::Iter<
        std::iter::Map<std::vec::IntoIter<Bytes>, fn(Bytes) -> Result<Frame<Bytes>, Infallible>>,
    >,
>;

fn raw(frames: Vec<Bytes>) -> Raw {
    let to_frame: fn(Bytes) -> Result<Frame<Bytes>, Infallible> = |b| Ok(Frame::data(b));
    StreamBody::new(futures_util::stream::iter(frames.into_iter().map(to_frame)))
}

fn response(frames: Vec<Bytes>) -> Response<Raw> {
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(raw(frames))
        .unwrap()
}

/// Reads `body` to its end with a no-op waker; every frame is ready.
fn drain<B: Body + Unpin>(mut body: B, cx: &mut Context<'_>) -> usize
where
    B::Error: std::fmt::Debug,
{
    let mut n = 0;
    loop {
        match std::pin::Pin::new(&mut body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                n += black_box(frame).data_ref().map_or(0, Buf::remaining);
            }
            Poll::Ready(Some(Err(e))) => panic!("{e:?}"),
            Poll::Ready(None) => return n,
            Poll::Pending => unreachable!("every frame is ready"),
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut cx = Context::from_waker(Waker::noop());
    let frames = frames();
    let mut group = c.benchmark_group("sse_stream_1000_events");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("raw_body", |b| {
        b.iter_batched(
            || response(frames.clone()),
            |response| drain(response.into_body(), &mut cx),
            BatchSize::SmallInput,
        )
    });
    let mut sse = SseLayer::new().layer(tower::service_fn(|req: Request<Vec<Bytes>>| {
        std::future::ready(Ok::<_, Infallible>(response(req.into_body())))
    }));
    group.bench_function("through_sse", |b| {
        b.iter_batched(
            || Request::new(frames.clone()),
            |request| {
                let future = pin!(sse.call(request));
                let Poll::Ready(Ok(response)) = future.poll(&mut cx) else {
                    unreachable!("content comes in the first frame");
                };
                drain(response.into_body(), &mut cx)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
