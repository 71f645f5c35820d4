//! The preset over a `reqwest::Client` (feature `reqwest`); see
//! [`ReqwestConnector`].

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use evenkeel_core::BoxError;
use evenkeel_core::body::ReplayBody;
use evenkeel_core::error::{ConnectError, SentError};
use http::Uri;
use http_body::Body;
use http_body_util::Full;
use pin_project_lite::pin_project;
use reqwest::ResponseBuilderExt;
use tower_service::Service;

use super::connector::Connector;

/// A `reqwest::ClientBuilder` on rustls with its `ring` provider and the
/// web PKI roots, HTTP/1.1 and HTTP/2 by ALPN.
///
/// The provider is passed to rustls by name rather than looked up as the
/// process default, so a program that also compiles in `aws-lc-rs` works
/// the same, and no OpenSSL is linked.
///
/// evenkeel enables reqwest's rustls without a provider of its own: unless
/// the program turns on one of reqwest's TLS features itself (or installs a
/// process-wide rustls provider), `reqwest::Client::new()` and
/// `reqwest::Client::builder().build()` panic for want of one. Start from
/// this builder instead. Everything else (proxies, cookies,
/// timeouts, redirects, the pool) is set on the builder as usual; a root
/// store set here replaces what `add_root_certificate` would add, so use
/// [`reqwest_client_builder_with_roots`] for a private CA.
///
/// ```
/// let client = evenkeel::reqwest_client_builder()
///     .connect_timeout(std::time::Duration::from_secs(5))
///     .build()
///     .unwrap();
/// # drop(client);
/// ```
pub fn reqwest_client_builder() -> reqwest::ClientBuilder {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    reqwest_client_builder_with_roots(roots)
}

/// Like [`reqwest_client_builder`], trusting `roots` instead of the web PKI
/// roots: a private CA, or the root of a proxy that inspects TLS.
pub fn reqwest_client_builder_with_roots(roots: rustls::RootCertStore) -> reqwest::ClientBuilder {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("rustls's ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder().tls_backend_preconfigured(tls)
}

/// A `reqwest::Client` as the preset's connector.
///
/// Every endpoint shares the one client (a clone: reqwest clients share
/// their pool), so its TLS settings, proxies, cookie store, default headers
/// and timeouts apply to every attempt. Requests reach it with their URI
/// already on the chosen endpoint.
///
/// `B` is the body type of the requests the caller sends (`Full<Bytes>`
/// unless chosen with [`with_body`](Self::with_body)); it must be `Send +
/// Sync`, as reqwest's bodies are. A body that is complete at once is
/// handed to reqwest as `Bytes`, without a copy; a streaming one is
/// streamed, kept for a resend up to the retry layer's cap.
///
/// Responses come back as `http::Response<reqwest::Body>`
/// whose body streams; the response's URL (after redirects) travels in its
/// extensions, so `reqwest::Response::from(response.map(reqwest::Body::wrap))`
/// gives it back.
///
/// ```no_run
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use tower::ServiceExt;
///
/// # async fn run() -> Result<(), evenkeel::core::BoxError> {
/// let client = evenkeel::reqwest_client_builder()
///     .user_agent("my-app/1.0")
///     .build()?;
/// let preset = evenkeel::Preset::builder()
///     .endpoint("https://api.anthropic.com")
///     .endpoint("https://llm-proxy.internal.example/anthropic")
///     .build(evenkeel::ReqwestConnector::new(client))?;
///
/// let request = http::Request::post("/v1/messages")
///     .header("content-type", "application/json")
///     .body(Full::new(Bytes::from_static(br#"{"max_tokens":16}"#)))?;
/// let response = preset.oneshot(request).await?;
/// // Back to reqwest's own type, URL included.
/// let response = reqwest::Response::from(response.map(reqwest::Body::wrap));
/// println!("{} from {}", response.status(), response.url());
/// # Ok(())
/// # }
/// ```
///
/// Failures are told apart by the phase reqwest reports, never by the words
/// of a message: a connect failure (`is_connect()`: DNS, a refused
/// connection, the TLS handshake, a proxy's tunnel) reaches the classifier
/// as a [`ConnectError`], never sent, so failover moves any request at once;
/// everything after the request was handed over (a timeout, a reset, a body
/// or redirect error) as a [`SentError`], maybe processed, so a POST is
/// never sent again after it. The client's own `timeout` thus bounds each
/// attempt as a maybe-processed timeout; its own retries (by default only
/// HTTP/2 refusals, which were never processed) stay as the client sets
/// them.
pub struct ReqwestConnector<B = Full<Bytes>> {
    client: reqwest::Client,
    _body: PhantomData<fn(B)>,
}

impl ReqwestConnector {
    /// A connector over `client`.
    pub fn new(client: reqwest::Client) -> Self {
        ReqwestConnector {
            client,
            _body: PhantomData,
        }
    }
}

impl<B> ReqwestConnector<B> {
    /// The same connector for callers whose requests carry bodies of type
    /// `B2`.
    pub fn with_body<B2>(self) -> ReqwestConnector<B2> {
        ReqwestConnector {
            client: self.client,
            _body: PhantomData,
        }
    }

    /// The client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl<B> Clone for ReqwestConnector<B> {
    fn clone(&self) -> Self {
        ReqwestConnector {
            client: self.client.clone(),
            _body: PhantomData,
        }
    }
}

impl<B> fmt::Debug for ReqwestConnector<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestConnector")
            .field("client", &self.client)
            .finish()
    }
}

impl<B> Connector for ReqwestConnector<B>
where
    B: Body + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Service = ReqwestService<B>;

    fn connect(&self, _base_url: &Uri) -> Result<Self::Service, BoxError> {
        Ok(ReqwestService {
            client: self.client.clone(),
            _body: PhantomData,
        })
    }
}

/// The per-endpoint service of [`ReqwestConnector`]: one attempt through
/// the `reqwest::Client`.
pub struct ReqwestService<B = Full<Bytes>> {
    client: reqwest::Client,
    _body: PhantomData<fn(B)>,
}

impl<B> ReqwestService<B> {
    /// The client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl<B> Clone for ReqwestService<B> {
    fn clone(&self) -> Self {
        ReqwestService {
            client: self.client.clone(),
            _body: PhantomData,
        }
    }
}

impl<B> fmt::Debug for ReqwestService<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestService")
            .field("client", &self.client)
            .finish()
    }
}

impl<B> Service<http::Request<ReplayBody<B>>> for ReqwestService<B>
where
    B: Body + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<reqwest::Body>;
    type Error = BoxError;
    type Future = ReqwestFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // reqwest's client is always ready: its pool queues inside.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<ReplayBody<B>>) -> Self::Future {
        match to_reqwest(request) {
            Ok(request) => ReqwestFuture {
                state: State::Sending {
                    inner: self.client.call(request),
                },
            },
            Err(error) => ReqwestFuture::failed(error),
        }
    }
}

type Pending = <reqwest::Client as Service<reqwest::Request>>::Future;

pin_project! {
    /// The future of [`ReqwestService`].
    pub struct ReqwestFuture {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Sending { #[pin] inner: Pending },
        Failed { error: Option<BoxError> },
    }
}

impl ReqwestFuture {
    fn failed(error: BoxError) -> Self {
        ReqwestFuture {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl Future for ReqwestFuture {
    type Output = Result<http::Response<reqwest::Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Sending { inner } => inner
                .poll(cx)
                .map(|result| result.map(from_reqwest).map_err(by_phase)),
            StateProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .expect("ReqwestFuture polled after it completed"))),
        }
    }
}

impl fmt::Debug for ReqwestFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestFuture").finish_non_exhaustive()
    }
}

/// An attempt's request as reqwest's: the head moves over as it is, a body
/// complete at once goes as `Bytes` (no copy), a streaming one streams.
pub(crate) fn to_reqwest<B>(
    request: http::Request<ReplayBody<B>>,
) -> Result<reqwest::Request, BoxError>
where
    B: Body + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let request = request.map(|body| {
        if let Some(whole) = body.whole() {
            reqwest::Body::from(whole.clone())
        } else if body.is_end_stream() {
            reqwest::Body::default()
        } else {
            reqwest::Body::wrap(body)
        }
    });
    // A URI that is no URL fails here, unsent and unmarked: it would fail
    // the same way on every endpoint, so it must not read as an endpoint's
    // connect failure.
    reqwest::Request::try_from(request).map_err(Into::into)
}

/// reqwest's response as an `http::Response` whose body streams, with the
/// response's URL in its extensions (where `reqwest::Response::from` finds
/// it again).
pub(crate) fn from_reqwest(response: reqwest::Response) -> http::Response<reqwest::Body> {
    let url = response.url().clone();
    let mut response = http::Response::from(response);
    if let Ok(marker) = http::Response::builder().url(url).body(()) {
        response
            .extensions_mut()
            .extend(marker.into_parts().0.extensions);
    }
    response
}

/// A reqwest error, marked with its phase: connecting (never sent) or
/// after the request was handed over (maybe processed).
pub(crate) fn by_phase(error: reqwest::Error) -> BoxError {
    if error.is_connect() {
        ConnectError::new(error).into()
    } else if error.is_timeout() {
        SentError::timed_out(error).into()
    } else {
        SentError::new(error).into()
    }
}
