//! Test helpers: a scripted upstream that records every attempt.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::BoxError;
use evenkeel_core::body::ReplayBody;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;

/// What a scripted upstream saw of one attempt.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) at: Instant,
    pub(crate) method: http::Method,
    pub(crate) body: Bytes,
    pub(crate) trailers: Option<http::HeaderMap>,
    pub(crate) attempt: u32,
}

/// One scripted answer.
pub(crate) enum Answer {
    Status(u16, Vec<(&'static str, String)>, &'static str),
    Error(std::io::ErrorKind),
    /// Never answers.
    Hang,
}

pub(crate) fn status(code: u16) -> Answer {
    Answer::Status(code, Vec::new(), "")
}

pub(crate) fn with_header(code: u16, name: &'static str, value: &str) -> Answer {
    Answer::Status(code, vec![(name, value.to_string())], "")
}

/// A service that answers from a script (the last answer repeats) and
/// records every attempt, reading each request body to the end.
#[derive(Clone)]
pub(crate) struct Scripted {
    script: Arc<Mutex<Vec<Answer>>>,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
    latency: Duration,
}

impl Scripted {
    pub(crate) fn new(script: Vec<Answer>) -> Self {
        Scripted {
            script: Arc::new(Mutex::new(script)),
            seen: Arc::new(Mutex::new(Vec::new())),
            latency: Duration::ZERO,
        }
    }

    pub(crate) fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub(crate) fn attempts(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl<B> tower::Service<Request<ReplayBody<B>>> for Scripted
where
    B: http_body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<Full<Bytes>>, BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReplayBody<B>>) -> Self::Future {
        let script = self.script.clone();
        let seen = self.seen.clone();
        let latency = self.latency;
        Box::pin(async move {
            let at = Instant::now();
            let attempt = evenkeel_core::ext::Attempt::of(&req);
            let method = req.method().clone();
            let collected = req.into_body().collect().await;
            let (body, trailers) = match collected {
                Ok(c) => {
                    let trailers = c.trailers().cloned();
                    (c.to_bytes(), trailers)
                }
                Err(e) => return Err(e),
            };
            seen.lock().unwrap().push(Seen {
                at,
                method,
                body,
                trailers,
                attempt,
            });
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let answer = {
                let mut script = script.lock().unwrap();
                if script.len() > 1 {
                    script.remove(0)
                } else {
                    match &script[0] {
                        Answer::Status(c, h, b) => Answer::Status(*c, h.clone(), b),
                        Answer::Error(k) => Answer::Error(*k),
                        Answer::Hang => Answer::Hang,
                    }
                }
            };
            match answer {
                Answer::Status(code, headers, body) => {
                    let mut res = Response::builder().status(code);
                    for (k, v) in headers {
                        res = res.header(k, v);
                    }
                    Ok(res
                        .body(Full::new(Bytes::from_static(body.as_bytes())))
                        .unwrap())
                }
                Answer::Error(kind) => Err(std::io::Error::new(kind, "scripted failure").into()),
                Answer::Hang => std::future::pending().await,
            }
        })
    }
}

pub(crate) fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

pub(crate) fn post(uri: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(uri)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

pub(crate) type Never = Infallible;
