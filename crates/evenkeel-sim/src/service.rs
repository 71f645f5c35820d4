//! The in-process form: [`Sim`] as a `tower::Service`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tower_service::Service;

use crate::config::SimBuilder;
use crate::error::{BoxError, SimError, SimErrorKind};
use crate::future::ResponseFuture;
use crate::handle::SimHandle;
use crate::model::{Answer, Model};
use crate::server::SimServer;
use crate::stats::Stats;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A simulated rate-limited, sometimes failing LLM API.
///
/// `Sim` is an in-process [`tower::Service`](tower_service::Service) over
/// `http::Request<B>` for any body `B`; [`serve`](Self::serve) puts the same
/// model behind an HTTP/1.1 + HTTP/2 server on a loopback port. Clones share
/// the model: quotas, faults, the kill switch and the counters.
///
/// Build one with [`Sim::builder`]; control it at run time through
/// [`Sim::handle`]; read what it saw with [`Sim::stats`].
#[derive(Clone)]
pub struct Sim {
    pub(crate) model: Arc<Model>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("dialect", &self.model.dialect)
            .field("killed", &self.model.is_killed())
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// A [`SimBuilder`] with the defaults.
    pub fn builder() -> SimBuilder {
        SimBuilder::new()
    }

    /// A cloneable handle to control the sim at run time.
    pub fn handle(&self) -> SimHandle {
        SimHandle {
            model: Arc::clone(&self.model),
        }
    }

    /// A snapshot of the counters (cheap: no copying until the sim changes
    /// them again).
    pub fn stats(&self) -> Stats {
        self.model.stats()
    }

    /// Serves this sim over HTTP/1.1 and HTTP/2 (prior knowledge) on `addr`;
    /// port `0` picks a free one, see [`SimServer::url`].
    ///
    /// Must be called within a tokio runtime; the server runs on spawned
    /// tasks until [`SimServer::shutdown`] or drop.
    pub async fn serve(&self, addr: SocketAddr) -> io::Result<SimServer> {
        SimServer::start(Arc::clone(&self.model), addr).await
    }
}

impl<B> Service<Request<B>> for Sim
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = SimError;
    type Future = ResponseFuture;

    /// Always ready: the sim never applies backpressure through readiness,
    /// only through what it answers.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ResponseFuture::new(respond(Arc::clone(&self.model), req))
    }
}

/// One request through the model. Shared by both forms.
pub(crate) async fn respond<B>(
    model: Arc<Model>,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, SimError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let mut in_flight = model.enter(request_id(&parts.headers))?;
    let killed = model.killed_since(in_flight.epoch());
    tokio::pin!(killed);

    let body = tokio::select! {
        biased;
        () = &mut killed => return Err(SimError::new(SimErrorKind::Aborted)),
        body = read_body(body, model.max_body_bytes) => body,
    };
    let body = match body {
        Ok(bytes) => Some(bytes),
        Err(ReadError::TooLarge) => None,
        Err(ReadError::Body(err)) => return Err(SimError::body(err)),
    };

    if let Some(first) = &model.first_attempt
        && in_flight.is_first()
    {
        let response = crate::response::first_attempt(&model, first, in_flight.id());
        in_flight.served(first.status);
        return Ok(response);
    }
    let verdict = model.decide(&parts.headers, body.as_ref());
    if !verdict.delay.is_zero() {
        tokio::select! {
            biased;
            () = &mut killed => return Err(SimError::new(SimErrorKind::Aborted)),
            () = tokio::time::sleep(verdict.delay) => {}
        }
    }
    if verdict.answer == Answer::Reset {
        in_flight.reset();
        return Err(SimError::new(SimErrorKind::Reset));
    }
    let mut response = crate::response::build(&model, &verdict, in_flight.id());
    if verdict.answer == Answer::Success && model.streaming.wants(body.as_ref()) {
        let plan = model.stream_plan(in_flight.is_first());
        let id = format!("msg_sim_{:08}", verdict.seq);
        let stream = model.streaming.body(plan, &id, verdict.input_tokens);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/event-stream"),
        );
        *response.body_mut() = Full::new(stream);
    }
    in_flight.served(response.status());
    Ok(response)
}

/// The `x-request-id` header, if present and valid UTF-8.
fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

enum ReadError {
    TooLarge,
    Body(BoxError),
}

async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, ReadError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(ReadError::TooLarge),
        Err(err) => Err(ReadError::Body(err)),
    }
}
