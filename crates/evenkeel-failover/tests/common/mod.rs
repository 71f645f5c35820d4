//! Test helpers: a scripted upstream that records what it is sent.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::BoxError;
use evenkeel_core::body::ReplayBody;
use evenkeel_core::cooldown::Cooldown;
use evenkeel_core::event::Event;
use evenkeel_failover::{Endpoint, Failover};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

pub type Body = Full<Bytes>;
pub type Balancer = Failover<Upstream>;

/// How an upstream answers.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16, Vec<(&'static str, String)>),
    /// An `io::Error` of this kind.
    Io(std::io::ErrorKind),
    /// An error with this message (to look like a TLS library's).
    Message(&'static str),
    /// An error with this message, marked as a failure while connecting.
    ConnectMessage(&'static str),
    /// A local concurrency limiter's rejection.
    LocalOverload,
    /// Never answers.
    Hang,
}

pub fn ok() -> Answer {
    Answer::Status(200, Vec::new())
}

pub fn status(code: u16) -> Answer {
    Answer::Status(code, Vec::new())
}

pub fn with_header(code: u16, name: &'static str, value: &str) -> Answer {
    Answer::Status(code, vec![(name, value.to_owned())])
}

/// What an upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub id: String,
    pub method: http::Method,
    pub body: Bytes,
    pub attempt: u32,
    pub at: Instant,
}

struct Inner {
    name: &'static str,
    answer: Mutex<Answer>,
    seen: Mutex<Vec<Seen>>,
    ready: Mutex<(bool, Vec<Waker>)>,
    ready_error: Mutex<bool>,
    latency: Mutex<Duration>,
    calls_unready: Mutex<u32>,
}

/// A scripted upstream: answers what it is told to, records every request,
/// and can be made un-ready. Clones share everything but readiness
/// bookkeeping: each clone must be polled ready before it is called.
pub struct Upstream {
    inner: Arc<Inner>,
    readied: bool,
}

impl Clone for Upstream {
    fn clone(&self) -> Self {
        Upstream {
            inner: Arc::clone(&self.inner),
            readied: false,
        }
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Upstream").field(&self.inner.name).finish()
    }
}

impl Upstream {
    pub fn new(name: &'static str) -> Self {
        Upstream {
            inner: Arc::new(Inner {
                name,
                answer: Mutex::new(ok()),
                seen: Mutex::new(Vec::new()),
                ready: Mutex::new((true, Vec::new())),
                ready_error: Mutex::new(false),
                latency: Mutex::new(Duration::ZERO),
                calls_unready: Mutex::new(0),
            }),
            readied: false,
        }
    }

    pub fn answer(&self, answer: Answer) {
        *self.inner.answer.lock().unwrap() = answer;
    }

    pub fn latency(&self, latency: Duration) {
        *self.inner.latency.lock().unwrap() = latency;
    }

    pub fn set_ready(&self, ready: bool) {
        let wakers = {
            let mut r = self.inner.ready.lock().unwrap();
            r.0 = ready;
            std::mem::take(&mut r.1)
        };
        if ready {
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    pub fn fail_readiness(&self, fail: bool) {
        *self.inner.ready_error.lock().unwrap() = fail;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    pub fn hits(&self) -> usize {
        self.inner.seen.lock().unwrap().len()
    }

    pub fn ids(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.id).collect()
    }

    pub fn reset(&self) {
        self.inner.seen.lock().unwrap().clear();
    }

    /// Calls made on a clone that was not polled ready: must stay 0.
    pub fn calls_unready(&self) -> u32 {
        *self.inner.calls_unready.lock().unwrap()
    }

    pub fn endpoint(&self) -> Endpoint<Upstream> {
        Endpoint::new(self.inner.name, self.clone())
    }
}

impl<B> Service<Request<ReplayBody<B>>> for Upstream
where
    B: http_body::Body + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
    B::Data: Send,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if *self.inner.ready_error.lock().unwrap() {
            return Poll::Ready(Err("readiness failed".into()));
        }
        let mut r = self.inner.ready.lock().unwrap();
        if r.0 {
            self.readied = true;
            Poll::Ready(Ok(()))
        } else {
            r.1.push(cx.waker().clone());
            Poll::Pending
        }
    }

    fn call(&mut self, req: Request<ReplayBody<B>>) -> Self::Future {
        if !std::mem::replace(&mut self.readied, false) {
            *self.inner.calls_unready.lock().unwrap() += 1;
        }
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let at = Instant::now();
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let attempt = evenkeel_core::ext::Attempt::of(&req);
            let method = req.method().clone();
            let body = req.into_body().collect().await?.to_bytes();
            inner.seen.lock().unwrap().push(Seen {
                id,
                method,
                body,
                attempt,
                at,
            });
            let latency = *inner.latency.lock().unwrap();
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let answer = inner.answer.lock().unwrap().clone();
            match answer {
                Answer::Status(code, headers) => {
                    let mut res = Response::builder()
                        .status(code)
                        .header("x-served-by", inner.name);
                    for (k, v) in headers {
                        res = res.header(k, v);
                    }
                    Ok(res.body(Full::new(Bytes::new())).unwrap())
                }
                Answer::Io(kind) => Err(std::io::Error::new(kind, "scripted").into()),
                Answer::Message(msg) => Err(msg.into()),
                Answer::ConnectMessage(msg) => {
                    Err(evenkeel_core::error::ConnectError::new(msg).into())
                }
                Answer::LocalOverload => Err(evenkeel_core::error::Overloaded::new().into()),
                Answer::Hang => std::future::pending().await,
            }
        })
    }
}

pub fn get(id: &str) -> Request<Body> {
    Request::get("/v1/models")
        .header("x-request-id", id)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

pub fn post(id: &str, body: &'static str) -> Request<Body> {
    Request::post("/v1/messages")
        .header("x-request-id", id)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// Sends one request through the balancer.
pub async fn send(
    balancer: &mut Balancer,
    request: Request<Body>,
) -> Result<Response<Body>, BoxError> {
    ServiceExt::<Request<Body>>::ready(balancer)
        .await?
        .call(request)
        .await
}

/// Which upstream served a response.
pub fn served_by(response: &Response<Body>) -> &str {
    response.headers()["x-served-by"].to_str().unwrap()
}

/// Sends `n` GETs one after another and returns who served each.
pub async fn serve_n(balancer: &mut Balancer, n: usize) -> Vec<String> {
    let mut who = Vec::with_capacity(n);
    for i in 0..n {
        let res = send(balancer, get(&format!("r{i}"))).await.unwrap();
        who.push(served_by(&res).to_owned());
    }
    who
}

/// A cooldown a test sets by hand.
#[derive(Debug, Clone, Default)]
pub struct ManualCooldown(Arc<Mutex<Option<Instant>>>);

impl ManualCooldown {
    pub fn set(&self, until: Option<Instant>) {
        *self.0.lock().unwrap() = until;
    }
}

impl Cooldown for ManualCooldown {
    fn cooldown_until(&self) -> Option<Instant> {
        *self.0.lock().unwrap()
    }
}

/// Records events as strings.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    pub fn listener(&self) -> impl Fn(&Event<'_>) + Send + Sync + 'static {
        let log = Arc::clone(&self.0);
        move |event: &Event<'_>| {
            let line = match event {
                Event::EndpointState { endpoint, state } => {
                    format!("state {endpoint} {}", state.as_str())
                }
                Event::Failover { from, to, outcome } => {
                    format!("failover {from} -> {to} {}", outcome.as_str())
                }
                Event::Failback { to } => format!("failback {to}"),
                other => format!("{other:?}"),
            };
            log.lock().unwrap().push(line);
        }
    }

    pub fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// A balancer over `endpoints` with deterministic selection and no
/// ejection jitter.
pub fn balancer(
    endpoints: impl IntoIterator<Item = Endpoint<Upstream>>,
) -> evenkeel_failover::FailoverBuilder<Upstream> {
    Failover::builder()
        .endpoints(endpoints)
        .ejection_jitter(0.0)
        .jitter(evenkeel_core::rng::Jitter::seeded(7))
}
