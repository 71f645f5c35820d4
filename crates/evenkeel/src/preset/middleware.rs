//! The preset as a `reqwest-middleware` middleware (feature
//! `reqwest-middleware`); see [`EvenkeelMiddleware`].

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use evenkeel_core::body::ReplayBody;
use evenkeel_core::error::{ConnectError, SentError};
use evenkeel_core::{BoxError, ConfigError};
use futures_util::future::{Either, select};
use futures_util::stream::{FuturesUnordered, StreamExt};
use http::{Extensions, Uri};
use reqwest_middleware::{Middleware, Next};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;
use tower_service::Service;

use super::connector::Connector;
use super::reqwest_client::{by_phase, from_reqwest, to_reqwest};
use super::{Preset, PresetBuilder};

/// The preset stack as a `reqwest-middleware` [`Middleware`].
///
/// Built from a [`PresetBuilder`] (validated as
/// [`build`](PresetBuilder::build) does), it runs retry, quota pacing, the
/// adaptive limit, failover and metrics around the rest of the middleware
/// chain: middlewares added after it run once per attempt, those before it
/// once per call. Add it once per client; clones of a
/// `ClientWithMiddleware` share its state (budget, quotas, limits,
/// endpoint health).
///
/// ```no_run
/// use reqwest_middleware::ClientBuilder;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let preset = evenkeel::Preset::builder()
///     .endpoint("https://api.anthropic.com")
///     .endpoint("https://llm-proxy.internal.example/anthropic");
/// let client = ClientBuilder::new(evenkeel::reqwest_client_builder().build()?)
///     .with(evenkeel::EvenkeelMiddleware::new(preset)?)
///     .build();
///
/// // A path: the endpoint supplies scheme, host and base path. An absolute
/// // URL works too; its path and query are kept.
/// let response = client
///     .post("http://evenkeel.invalid/v1/messages")
///     .header("content-type", "application/json")
///     .body(r#"{"max_tokens":16}"#)
///     .send()
///     .await?;
/// println!("{} from {}", response.status(), response.url());
/// # Ok(())
/// # }
/// ```
///
/// # Bodies
///
/// A body that reqwest holds whole (a `String`, `Vec<u8>`, `Bytes`, JSON)
/// is resent without a copy. A streaming body (`reqwest::Body::wrap`,
/// `wrap_stream`) is kept as it is sent, up to the retry layer's cap
/// (1 MiB), and replayed from what was kept; past the cap it is sent once
/// and never replayed: the answer that would have been retried (a 429, a
/// 503) goes back to the caller.
///
/// # Extensions
///
/// The `Extensions` handed to the middleware are copied into the request
/// the preset sees, so every layer reads what a caller put there (a quota
/// `Cost`, an `AttemptContext` with its own deadline). Each attempt runs
/// the rest of the chain with a copy of them; when the call ends they hold
/// what the chain left in them on the last attempt that got an answer.
///
/// # Errors
///
/// A failure of reqwest comes back as `reqwest_middleware::Error::Reqwest`,
/// as without evenkeel. evenkeel's own refusals (`QuotaExhausted`,
/// `DeadlineExceeded`, `NoEndpointAvailable`, `TimedOut`, …) come back as
/// `Error::Middleware`; find one with
/// [`EvenkeelMiddleware::error`].
///
/// # Building
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let middleware = evenkeel::EvenkeelMiddleware::new(
///     evenkeel::Preset::builder()
///         .endpoint("https://api.openai.com")
///         .max_attempts(4),
/// )?;
/// assert_eq!(middleware.preset().endpoints().len(), 1);
/// let client = reqwest_middleware::ClientBuilder::new(evenkeel::reqwest_client_builder().build()?)
///     .with(middleware)
///     .build();
/// # drop(client);
/// # Ok(())
/// # }
/// ```
pub struct EvenkeelMiddleware {
    preset: Preset<NextService>,
}

impl EvenkeelMiddleware {
    /// Validates `builder` and builds the preset around the rest of the
    /// middleware chain.
    pub fn new(builder: PresetBuilder) -> Result<Self, ConfigError> {
        let preset = builder.build(NextConnector)?;
        Ok(EvenkeelMiddleware { preset })
    }

    /// The preset: its budget, endpoints, quotas and limits.
    pub fn preset(&self) -> &Preset<NextService> {
        &self.preset
    }

    /// evenkeel's own error of type `T` behind `error`, if it is one
    /// (`QuotaExhausted`, `DeadlineExceeded`, `NoEndpointAvailable`, …).
    ///
    /// ```
    /// use evenkeel::core::error::DeadlineExceeded;
    ///
    /// let err = reqwest_middleware::Error::Middleware(anyhow::Error::from_boxed(
    ///     Box::new(DeadlineExceeded::new()),
    /// ));
    /// assert!(evenkeel::EvenkeelMiddleware::error::<DeadlineExceeded>(&err).is_some());
    /// ```
    pub fn error<T: std::error::Error + 'static>(error: &reqwest_middleware::Error) -> Option<&T> {
        match error {
            reqwest_middleware::Error::Middleware(error) => error
                .chain()
                .find_map(|e| e.downcast_ref::<T>())
                .or_else(|| {
                    error
                        .downcast_ref::<BoxError>()
                        .and_then(|e| e.downcast_ref::<T>())
                }),
            reqwest_middleware::Error::Reqwest(_) => None,
        }
    }
}

impl fmt::Debug for EvenkeelMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvenkeelMiddleware")
            .field("preset", &self.preset)
            .finish()
    }
}

#[async_trait::async_trait]
impl Middleware for EvenkeelMiddleware {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let mut request = http::Request::<reqwest::Body>::try_from(request)?;
        if !extensions.is_empty() {
            request.extensions_mut().extend(extensions.clone());
        }
        let (jobs, queue) = mpsc::unbounded_channel();
        request.extensions_mut().insert(Dispatch(jobs));
        let call = self.preset.clone().oneshot(request);
        let (result, last) = drive(call, queue, next, extensions).await;
        if let Some(last) = last {
            *extensions = last;
        }
        match result {
            Ok(response) => Ok(reqwest::Response::from(response.map(reqwest::Body::wrap))),
            Err(error) => Err(into_middleware_error(error)),
        }
    }
}

/// The bottom of the preset inside [`EvenkeelMiddleware`]: hands each
/// attempt to the rest of the middleware chain, which runs in the
/// middleware's own call.
///
/// It only works inside that call; called any other way it fails with an
/// error, unsent.
#[derive(Debug, Clone)]
pub struct NextService {
    _priv: (),
}

/// Makes the [`NextService`] of every endpoint.
#[derive(Debug, Clone, Copy)]
struct NextConnector;

impl Connector for NextConnector {
    type Service = NextService;

    fn connect(&self, _base_url: &Uri) -> Result<NextService, BoxError> {
        Ok(NextService { _priv: () })
    }
}

/// One attempt, on its way to the rest of the chain, and where its answer
/// goes.
struct Job {
    request: reqwest::Request,
    reply: oneshot::Sender<reqwest_middleware::Result<reqwest::Response>>,
}

/// How an attempt reaches the middleware call it belongs to; travels in
/// the request's extensions, so every attempt's copy has it.
#[derive(Clone)]
struct Dispatch(mpsc::UnboundedSender<Job>);

/// The [`NextService`] was called outside an [`EvenkeelMiddleware`] call.
#[derive(Debug)]
struct OutsideMiddleware;

impl fmt::Display for OutsideMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the preset of an EvenkeelMiddleware runs only inside the middleware")
    }
}

impl std::error::Error for OutsideMiddleware {}

impl Service<http::Request<ReplayBody<reqwest::Body>>> for NextService {
    type Response = http::Response<reqwest::Body>;
    type Error = BoxError;
    type Future = NextFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<ReplayBody<reqwest::Body>>) -> NextFuture {
        let Some(Dispatch(jobs)) = request.extensions_mut().remove::<Dispatch>() else {
            return NextFuture::failed(ConnectError::new(OutsideMiddleware).into());
        };
        let request = match to_reqwest(request) {
            Ok(request) => request,
            Err(error) => return NextFuture::failed(error),
        };
        let (reply, answer) = oneshot::channel();
        if jobs.send(Job { request, reply }).is_err() {
            return NextFuture::failed(ConnectError::new(OutsideMiddleware).into());
        }
        NextFuture {
            state: NextState::Waiting(answer),
        }
    }
}

/// The future of [`NextService`]: the answer of the rest of the chain.
/// Dropping it (an attempt timeout) drops the attempt in the chain.
pub struct NextFuture {
    state: NextState,
}

enum NextState {
    Waiting(oneshot::Receiver<reqwest_middleware::Result<reqwest::Response>>),
    Failed(Option<BoxError>),
}

impl NextFuture {
    fn failed(error: BoxError) -> Self {
        NextFuture {
            state: NextState::Failed(Some(error)),
        }
    }
}

impl Future for NextFuture {
    type Output = Result<http::Response<reqwest::Body>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            NextState::Waiting(answer) => Pin::new(answer).poll(cx).map(|answer| match answer {
                Ok(Ok(response)) => Ok(from_reqwest(response)),
                Ok(Err(reqwest_middleware::Error::Reqwest(error))) => Err(by_phase(error)),
                // Another middleware's failure: its phase is unknown, so
                // it may have been processed.
                Ok(Err(reqwest_middleware::Error::Middleware(error))) => {
                    Err(SentError::new(BoxError::from(error)).into())
                }
                // The middleware call ended first: nothing more will come.
                Err(_) => Err(SentError::new(OutsideMiddleware).into()),
            }),
            NextState::Failed(error) => Poll::Ready(Err(error
                .take()
                .expect("NextFuture polled after it completed"))),
        }
    }
}

impl fmt::Debug for NextFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NextFuture").finish_non_exhaustive()
    }
}

type Running<'a> = Pin<Box<dyn Future<Output = Option<Extensions>> + Send + 'a>>;

/// Polls the preset's `call` and, alongside it, every attempt it hands to
/// the rest of the chain. Returns the call's result and the extensions of
/// the last attempt that was answered.
async fn drive<'a, F: Future>(
    call: F,
    mut queue: mpsc::UnboundedReceiver<Job>,
    next: Next<'a>,
    extensions: &Extensions,
) -> (F::Output, Option<Extensions>) {
    let mut call = pin!(call);
    let mut running: FuturesUnordered<Running<'a>> = FuturesUnordered::new();
    let mut last = None;
    let output = poll_fn(|cx| {
        if let Poll::Ready(output) = call.as_mut().poll(cx) {
            return Poll::Ready(output);
        }
        while let Poll::Ready(Some(job)) = queue.poll_recv(cx) {
            running.push(attempt(next.clone(), job, extensions.clone()));
        }
        while let Poll::Ready(Some(answered)) = running.poll_next_unpin(cx) {
            if answered.is_some() {
                last = answered;
            }
        }
        Poll::Pending
    })
    .await;
    (output, last)
}

/// One attempt through the rest of the chain; its answer goes to the
/// waiting [`NextFuture`]. When that future is dropped first, the attempt
/// is dropped too.
fn attempt<'a>(next: Next<'a>, job: Job, mut extensions: Extensions) -> Running<'a> {
    Box::pin(async move {
        let Job { request, mut reply } = job;
        let answer = {
            let send = next.run(request, &mut extensions);
            let abandoned = pin!(reply.closed());
            match select(send, abandoned).await {
                Either::Left((answer, _)) => Some(answer),
                Either::Right(((), _)) => None,
            }
        };
        let answer = answer?;
        reply.send(answer).ok()?;
        Some(extensions)
    })
}

/// The preset's error as the middleware's: reqwest's own error where the
/// failure was reqwest's, evenkeel's error otherwise.
fn into_middleware_error(error: BoxError) -> reqwest_middleware::Error {
    // The phase marks are notes between layers; the caller gets what
    // they mark.
    let error = match error.downcast::<ConnectError>() {
        Ok(connect) => connect.into_inner(),
        Err(error) => error,
    };
    let error = match error.downcast::<SentError>() {
        Ok(sent) => sent.into_inner(),
        Err(error) => error,
    };
    match error.downcast::<reqwest::Error>() {
        Ok(error) => reqwest_middleware::Error::Reqwest(*error),
        Err(error) => reqwest_middleware::Error::Middleware(anyhow::Error::from_boxed(error)),
    }
}
