//! Request bodies that can be sent more than once.
//!
//! Resending a request (a retry, a failover to another endpoint) needs its
//! body again, but an `http_body::Body` is a stream that can be read only
//! once and is rarely `Clone`. [`Replay`] wraps the caller's body and hands
//! out one [`ReplayBody`] per attempt. The first attempt streams the body as
//! usual while the chunks it reads are kept (cheaply: `Bytes` clones); a
//! later attempt replays the kept chunks and continues from the source where
//! the earlier attempts stopped. Trailers are kept and replayed too.
//!
//! Keeping is bounded by a cap. Past it the kept chunks are released, the
//! attempt that is streaming carries on undisturbed, and the request simply
//! cannot be resent: [`Replay::is_replayable`] turns `false`.
//!
//! Bodies that are already complete cost nothing: an empty body, or one whose
//! whole content is ready at once (`Full<Bytes>`, `String`, …), is held as a
//! single `Bytes` without any shared state or allocation.
//!
//! ```
//! use bytes::Bytes;
//! use evenkeel_core::body::Replay;
//! use http_body_util::{BodyExt, Full};
//!
//! # tokio_test::block_on(async {
//! let mut replay = Replay::new(Full::new(Bytes::from_static(b"hello")), 1024);
//! let first = replay.body().unwrap().collect().await.unwrap().to_bytes();
//! let again = replay.body().unwrap().collect().await.unwrap().to_bytes();
//! assert_eq!(first, again);
//! # });
//! ```

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::error::BoxError;

/// The default cap on how much of a body is kept for replay: 1 MiB.
pub const DEFAULT_REPLAY_CAP: usize = 1024 * 1024;

/// The source of every attempt's body. See the [module docs](self).
pub struct Replay<B> {
    source: Source<B>,
}

enum Source<B> {
    /// The body held no data (trailers, if any, are boxed to keep this type
    /// small).
    Empty { trailers: Option<Box<HeaderMap>> },
    /// The body was complete at once: one chunk.
    Whole { data: Bytes },
    /// The body streams; attempts share what has been read.
    Shared(Arc<Mutex<Shared<B>>>),
    /// The body is larger than the cap: it is sent once, as it is.
    Once(Option<B>),
}

/// An attempt's body, handed out by [`Replay::body`].
pub struct ReplayBody<B> {
    kind: Kind<B>,
}

enum Kind<B> {
    Empty {
        trailers: Option<Box<HeaderMap>>,
    },
    Whole {
        data: Option<Bytes>,
    },
    Shared {
        shared: Arc<Mutex<Shared<B>>>,
        /// Index of the next kept chunk to hand out.
        next: usize,
        /// Bytes handed out so far.
        read: u64,
        done: bool,
    },
    Once {
        body: B,
    },
}

struct Shared<B> {
    /// The caller's body, until it ends or fails.
    source: Option<B>,
    /// What the source has produced so far, while under the cap.
    chunks: Vec<Bytes>,
    kept: usize,
    cap: usize,
    trailers: Option<HeaderMap>,
    /// The source finished.
    ended: bool,
    /// The source failed; nothing more can be read.
    failed: bool,
    /// An error read eagerly, waiting for the first attempt to see it.
    pending_error: Option<BoxError>,
    /// More than `cap` bytes were read: kept chunks were dropped.
    over_cap: bool,
    /// Bytes the source produced in all.
    produced: u64,
}

/// Why a [`ReplayBody`] could not produce its body.
#[derive(Debug)]
pub struct ReplayError {
    reason: &'static str,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request body cannot be replayed: {}", self.reason)
    }
}

impl std::error::Error for ReplayError {}

fn lock<B>(shared: &Mutex<Shared<B>>) -> MutexGuard<'_, Shared<B>> {
    // A panic while holding the lock leaves consistent data behind (every
    // update is a single field write), so a poisoned lock is still usable.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl<B> Replay<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    /// Wraps `body`, keeping up to `cap` bytes of it for replay.
    ///
    /// A body that announces more than `cap` bytes (by its size hint) is
    /// never kept: it is sent once. An empty body, or one whose content is
    /// complete at once, is held without allocating.
    #[inline]
    pub fn new(mut body: B, cap: usize) -> Self {
        if body.is_end_stream() {
            return Replay {
                source: Source::Empty { trailers: None },
            };
        }
        let hint = body.size_hint();
        if hint.lower() > cap as u64 {
            return Replay {
                source: Source::Once(Some(body)),
            };
        }
        let mut shared = Shared {
            source: None,
            chunks: Vec::new(),
            kept: 0,
            cap,
            trailers: None,
            ended: false,
            failed: false,
            pending_error: None,
            over_cap: false,
            produced: 0,
        };
        // A body whose size is known and small is often complete already
        // (`Full`, `String`, `Vec<u8>`): read it now so that it can be held
        // as one `Bytes`. A noop waker is fine: a body that is not ready
        // registers the real waker again when it is polled for real.
        if hint.exact().is_some() {
            let mut cx = Context::from_waker(Waker::noop());
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(None) => {
                    return Replay {
                        source: Source::Empty { trailers: None },
                    };
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(mut data) => {
                        let data = data.copy_to_bytes(data.remaining());
                        if body.is_end_stream() {
                            return Replay {
                                source: Source::Whole { data },
                            };
                        }
                        shared.keep(data);
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            shared.trailers = Some(trailers);
                            if body.is_end_stream() {
                                return Replay {
                                    source: Source::Empty {
                                        trailers: shared.trailers.map(Box::new),
                                    },
                                };
                            }
                        }
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    shared.failed = true;
                    shared.pending_error = Some(e.into());
                }
                Poll::Pending => {}
            }
        }
        if !shared.failed {
            shared.source = Some(body);
        }
        Replay {
            source: Source::Shared(Arc::new(Mutex::new(shared))),
        }
    }
}

impl<B> Replay<B> {
    /// The body for the next attempt, starting from the beginning.
    ///
    /// The first call always returns a body. Later calls return `None` once
    /// the body cannot be replayed (it went past the cap, or its source
    /// failed).
    #[inline]
    pub fn body(&mut self) -> Option<ReplayBody<B>> {
        let kind = match &mut self.source {
            Source::Empty { trailers } => Kind::Empty {
                trailers: trailers.clone(),
            },
            Source::Whole { data } => Kind::Whole {
                data: Some(data.clone()),
            },
            Source::Shared(shared) => {
                {
                    let s = lock(shared);
                    if s.over_cap || (s.failed && s.pending_error.is_none()) {
                        return None;
                    }
                }
                Kind::Shared {
                    shared: Arc::clone(shared),
                    next: 0,
                    read: 0,
                    done: false,
                }
            }
            Source::Once(body) => Kind::Once { body: body.take()? },
        };
        Some(ReplayBody { kind })
    }

    /// Whether a further [`body`](Replay::body) can still be handed out.
    pub fn is_replayable(&self) -> bool {
        match &self.source {
            Source::Empty { .. } | Source::Whole { .. } => true,
            Source::Shared(shared) => {
                let s = lock(shared);
                !s.over_cap && !s.failed
            }
            Source::Once(body) => body.is_some(),
        }
    }

    /// `true` when the body went past the cap, so it was sent without being
    /// kept.
    pub fn exceeded_cap(&self) -> bool {
        match &self.source {
            Source::Shared(shared) => lock(shared).over_cap,
            Source::Once(_) => true,
            _ => false,
        }
    }
}

/// How a resending layer keeps the request body it is handed.
///
/// A body is wrapped at most once, however many layers may resend it: the
/// layer on top (the retry layer) wraps the caller's body in a
/// [`ReplayBody`] ([`Wrap`]), and a resending layer below it (failover)
/// shares that body's source ([`Reuse`]) rather than wrapping the wrapper.
/// Both hand out `ReplayBody<B>` of the caller's `B`, so the connector
/// receives one documented type.
pub trait Keep<B> {
    /// The body the kept copies read from.
    type Source;

    /// Keeps `body`, up to `cap` bytes of it, for resending: the body of
    /// the first send, and the source of later ones.
    fn keep(body: B, cap: usize) -> (ReplayBody<Self::Source>, Replay<Self::Source>);
}

/// Wraps the body handed in: the strategy of the topmost resending layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wrap;

impl<B> Keep<B> for Wrap
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Source = B;

    #[inline]
    fn keep(body: B, cap: usize) -> (ReplayBody<B>, Replay<B>) {
        let mut replay = Replay::new(body, cap);
        let first = replay
            .body()
            .expect("a new replay always yields its first body");
        (first, replay)
    }
}

/// Reuses a [`ReplayBody`] handed in by a resending layer above: it is
/// sent first as it is, and later sends share its source, kept chunks and
/// cap. Nothing is wrapped again.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reuse;

impl<B> Keep<ReplayBody<B>> for Reuse {
    type Source = B;

    #[inline]
    fn keep(body: ReplayBody<B>, _cap: usize) -> (ReplayBody<B>, Replay<B>) {
        let replay = body.replay();
        (body, replay)
    }
}

impl<B> ReplayBody<B> {
    /// The whole body, when it was complete at once (`Full`, `String`, …)
    /// and has not been read yet: what an estimator may read without
    /// polling anything.
    pub fn whole(&self) -> Option<&Bytes> {
        match &self.kind {
            Kind::Whole { data } => data.as_ref(),
            _ => None,
        }
    }

    /// A [`Replay`] that hands out this body again, from the beginning, as
    /// often as the one that handed it out could. A body larger than the
    /// cap, sent once, has none to give.
    pub fn replay(&self) -> Replay<B> {
        let source = match &self.kind {
            Kind::Empty { trailers } => Source::Empty {
                trailers: trailers.clone(),
            },
            Kind::Whole { data: Some(data) } => Source::Whole { data: data.clone() },
            Kind::Whole { data: None } => Source::Once(None),
            Kind::Shared { shared, .. } => Source::Shared(Arc::clone(shared)),
            Kind::Once { .. } => Source::Once(None),
        };
        Replay { source }
    }
}

impl<B> Shared<B> {
    fn keep(&mut self, data: Bytes) {
        self.produced += data.len() as u64;
        if self.over_cap {
            return;
        }
        if self.kept + data.len() > self.cap {
            self.over_cap = true;
            self.chunks = Vec::new();
            self.kept = 0;
            return;
        }
        self.kept += data.len();
        self.chunks.push(data);
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Empty { trailers } => {
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(*t))))
            }
            Kind::Whole { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Once { body } => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(
                    frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))
                ))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            Kind::Shared {
                shared,
                next,
                read,
                done,
            } => {
                if *done {
                    return Poll::Ready(None);
                }
                let mut s = lock(shared);
                if let Some(err) = s.pending_error.take() {
                    *done = true;
                    return Poll::Ready(Some(Err(err)));
                }
                // Replay what is kept first.
                if *read < s.produced {
                    if s.over_cap || *next >= s.chunks.len() {
                        *done = true;
                        return Poll::Ready(Some(Err(Box::new(ReplayError {
                            reason: "it was larger than the replay cap",
                        }))));
                    }
                    let chunk = s.chunks[*next].clone();
                    *next += 1;
                    *read += chunk.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                if s.ended {
                    *done = true;
                    return Poll::Ready(s.trailers.clone().map(|t| Ok(Frame::trailers(t))));
                }
                if s.failed {
                    *done = true;
                    return Poll::Ready(Some(Err(Box::new(ReplayError {
                        reason: "reading it failed on an earlier attempt",
                    }))));
                }
                let Some(source) = s.source.as_mut() else {
                    *done = true;
                    return Poll::Ready(None);
                };
                match Pin::new(source).poll_frame(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(None) => {
                        s.ended = true;
                        s.source = None;
                        *done = true;
                        Poll::Ready(None)
                    }
                    Poll::Ready(Some(Err(e))) => {
                        s.failed = true;
                        s.source = None;
                        *done = true;
                        Poll::Ready(Some(Err(e.into())))
                    }
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(mut data) => {
                            let data = data.copy_to_bytes(data.remaining());
                            s.keep(data.clone());
                            if !s.over_cap {
                                *next = s.chunks.len();
                            }
                            *read += data.len() as u64;
                            Poll::Ready(Some(Ok(Frame::data(data))))
                        }
                        Err(frame) => match frame.into_trailers() {
                            Ok(trailers) => {
                                s.trailers = Some(trailers.clone());
                                s.ended = true;
                                s.source = None;
                                *done = true;
                                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                            }
                            // A frame that is neither data nor trailers: an
                            // extension this version does not know. Skip it.
                            Err(_) => {
                                cx.waker().wake_by_ref();
                                Poll::Pending
                            }
                        },
                    },
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty { trailers } => trailers.is_none(),
            Kind::Whole { data } => data.is_none(),
            Kind::Once { body } => body.is_end_stream(),
            Kind::Shared {
                shared, read, done, ..
            } => {
                if *done {
                    return true;
                }
                let s = lock(shared);
                s.ended && s.trailers.is_none() && *read >= s.produced
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty { .. } => SizeHint::with_exact(0),
            Kind::Whole { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Once { body } => body.size_hint(),
            Kind::Shared {
                shared, read, done, ..
            } => {
                if *done {
                    return SizeHint::with_exact(0);
                }
                let s = lock(shared);
                let buffered = s.produced.saturating_sub(*read);
                if s.ended {
                    return SizeHint::with_exact(buffered);
                }
                let rest = s
                    .source
                    .as_ref()
                    .map_or_else(SizeHint::default, |b| b.size_hint());
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(buffered));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(buffered));
                }
                hint
            }
        }
    }
}

impl<B> fmt::Debug for Replay<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.source {
            Source::Empty { .. } => "empty",
            Source::Whole { .. } => "whole",
            Source::Shared(_) => "streaming",
            Source::Once(_) => "once",
        };
        f.debug_struct("Replay").field("kind", &kind).finish()
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Empty { .. } => "empty",
            Kind::Whole { .. } => "whole",
            Kind::Shared { .. } => "streaming",
            Kind::Once { .. } => "once",
        };
        f.debug_struct("ReplayBody").field("kind", &kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use http_body_util::{BodyExt, Empty, Full, StreamBody};
    use tokio::sync::mpsc;

    type Chunk = Result<Frame<Bytes>, std::io::Error>;
    type Channel = StreamBody<futures_util::stream::BoxStream<'static, Chunk>>;

    fn channel() -> (mpsc::UnboundedSender<Chunk>, Channel) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
            )
            .boxed();
        (tx, StreamBody::new(stream))
    }

    fn data(s: &'static str) -> Chunk {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    async fn read_all<B>(body: ReplayBody<B>) -> Result<(Bytes, Option<HeaderMap>), BoxError>
    where
        B: Body + Unpin,
        B::Error: Into<BoxError>,
    {
        let collected = body.collect().await?;
        let trailers = collected.trailers().cloned();
        Ok((collected.to_bytes(), trailers))
    }

    #[tokio::test]
    async fn complete_bodies_replay_without_shared_state() {
        let mut replay = Replay::new(Full::new(Bytes::from_static(b"hello")), 1024);
        assert_eq!(format!("{replay:?}"), r#"Replay { kind: "whole" }"#);
        for _ in 0..3 {
            let body = replay.body().unwrap();
            assert_eq!(body.size_hint().exact(), Some(5));
            assert_eq!(read_all(body).await.unwrap().0, "hello");
        }
        let mut empty = Replay::new(Empty::<Bytes>::new(), 1024);
        assert_eq!(format!("{empty:?}"), r#"Replay { kind: "empty" }"#);
        let body = empty.body().unwrap();
        assert!(body.is_end_stream());
        assert_eq!(read_all(body).await.unwrap().0, "");
    }

    #[tokio::test]
    async fn streams_replay_what_was_read_then_continue() {
        let (tx, body) = channel();
        let mut replay = Replay::new(body, 1024);
        let mut first = replay.body().unwrap();
        tx.send(data("ab")).unwrap();
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ab");
        // The first attempt stops early (the server answered before reading
        // everything); the second replays "ab" and reads on from the source.
        drop(first);
        let second = replay.body().unwrap();
        tx.send(data("cd")).unwrap();
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", "1".parse().unwrap());
        tx.send(Ok(Frame::trailers(trailers.clone()))).unwrap();
        drop(tx);
        let (bytes, got) = read_all(second).await.unwrap();
        assert_eq!(bytes, "abcd");
        assert_eq!(got, Some(trailers.clone()));
        // And a third attempt replays it all, trailers included.
        let (bytes, got) = read_all(replay.body().unwrap()).await.unwrap();
        assert_eq!(bytes, "abcd");
        assert_eq!(got, Some(trailers));
        assert!(replay.is_replayable());
    }

    #[tokio::test]
    async fn past_the_cap_the_stream_goes_on_but_cannot_replay() {
        let (tx, body) = channel();
        let mut replay = Replay::new(body, 4);
        let first = replay.body().unwrap();
        for chunk in ["abc", "def", "ghi"] {
            tx.send(data(chunk)).unwrap();
        }
        drop(tx);
        assert_eq!(read_all(first).await.unwrap().0, "abcdefghi");
        assert!(replay.exceeded_cap());
        assert!(!replay.is_replayable());
        assert!(replay.body().is_none());
    }

    #[tokio::test]
    async fn a_handle_behind_the_cap_errors_instead_of_sending_half_a_body() {
        let (tx, body) = channel();
        let mut replay = Replay::new(body, 4);
        let mut first = replay.body().unwrap();
        let second = replay.body().unwrap();
        tx.send(data("abc")).unwrap();
        tx.send(data("def")).unwrap();
        drop(tx);
        first.frame().await.unwrap().unwrap();
        first.frame().await.unwrap().unwrap();
        let err = read_all(second).await.unwrap_err();
        assert!(err.to_string().contains("replay cap"), "{err}");
    }

    #[tokio::test]
    async fn bodies_announcing_more_than_the_cap_are_sent_once() {
        let mut replay = Replay::new(Full::new(Bytes::from(vec![7u8; 100])), 10);
        assert!(replay.exceeded_cap());
        let body = replay.body().unwrap();
        assert_eq!(read_all(body).await.unwrap().0.len(), 100);
        assert!(replay.body().is_none());
    }

    #[tokio::test]
    async fn source_errors_reach_the_first_reader_and_stop_replays() {
        let (tx, body) = channel();
        let mut replay = Replay::new(body, 1024);
        let first = replay.body().unwrap();
        tx.send(data("ab")).unwrap();
        tx.send(Err(std::io::Error::other("client went away")))
            .unwrap();
        let err = read_all(first).await.unwrap_err();
        assert!(err.to_string().contains("client went away"));
        assert!(!replay.is_replayable());
        assert!(replay.body().is_none());
    }

    #[tokio::test]
    async fn size_hints_account_for_replayed_bytes() {
        let (tx, body) = channel();
        let mut replay = Replay::new(body, 1024);
        let mut first = replay.body().unwrap();
        tx.send(data("abcd")).unwrap();
        first.frame().await.unwrap().unwrap();
        let second = replay.body().unwrap();
        assert_eq!(second.size_hint().lower(), 4);
        drop(tx);
        assert_eq!(read_all(second).await.unwrap().0, "abcd");
    }

    proptest::proptest! {
        #[test]
        fn any_chunking_replays_byte_for_byte(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..12),
            cap in 0usize..512,
            stop_after in 0usize..12,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let total: usize = chunks.iter().map(Vec::len).sum();
                let expected: Vec<u8> = chunks.concat();
                let (tx, body) = channel();
                for c in &chunks {
                    tx.send(Ok(Frame::data(Bytes::from(c.clone())))).unwrap();
                }
                drop(tx);
                let mut replay = Replay::new(body, cap);
                // The first attempt reads only part of the body.
                let mut first = replay.body().unwrap();
                for _ in 0..stop_after {
                    if first.frame().await.is_none() {
                        break;
                    }
                }
                drop(first);
                match replay.body() {
                    Some(second) => {
                        let got = read_all(second).await;
                        if total <= cap {
                            let bytes = got.unwrap().0;
                            proptest::prop_assert_eq!(bytes.as_ref(), &expected[..]);
                        } else if let Ok((bytes, _)) = got {
                            // Past the cap a replay may only ever yield the whole body.
                            proptest::prop_assert_eq!(bytes.as_ref(), &expected[..]);
                        }
                    }
                    None => proptest::prop_assert!(total > cap),
                }
                Ok(())
            })?;
        }
    }
}
