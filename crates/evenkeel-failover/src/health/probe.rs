//! What a health check sends: [`Probe`] and [`HttpProbe`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use evenkeel_core::{BoxError, ConfigError};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use tower_service::Service;

type ProbeFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// One health probe: how a [`HealthCheck`](crate::HealthCheck) asks an
/// endpoint whether it is up.
///
/// - [`Probe::tcp`]: a TCP connection can be opened (the name is resolved
///   on every probe, so DNS failures count);
/// - [`Probe::http`]: an HTTP/1.1 request on a fresh connection answers an
///   expected status (plain `http` only; feature `http-probe`);
/// - [`Probe::service`]: the same HTTP request sent through a service of
///   yours (your HTTPS client, your proxy stack, an in-process service);
/// - [`Probe::custom`]: any async check.
pub struct Probe {
    kind: Kind,
}

enum Kind {
    Tcp(Arc<str>),
    #[cfg(feature = "http-probe")]
    Http(Arc<HttpProbe>),
    Custom(Box<dyn FnMut() -> ProbeFuture + Send>),
}

impl Probe {
    /// Passes when a TCP connection to `target` (`host:port`) opens.
    pub fn tcp(target: impl Into<String>) -> Probe {
        Probe {
            kind: Kind::Tcp(Arc::from(target.into())),
        }
    }

    /// Passes when `probe`'s request, sent on a fresh HTTP/1.1 connection,
    /// is answered with an expected status. The URI must be `http://`; for
    /// HTTPS, send the probe through your client with
    /// [`Probe::service`]. Field: `uri`.
    #[cfg(feature = "http-probe")]
    pub fn http(probe: HttpProbe) -> Result<Probe, ConfigError> {
        if probe.uri.scheme() != Some(&http::uri::Scheme::HTTP) {
            return Err(ConfigError::new(
                "uri",
                "the built-in probe speaks plain http; send https probes through your client with `Probe::service`",
            ));
        }
        Ok(Probe {
            kind: Kind::Http(Arc::new(probe)),
        })
    }

    /// Passes when `probe`'s request, sent through `service`, is answered
    /// with an expected status. Each probe readies and calls a clone of
    /// `service`; the request body is `B::default()`.
    pub fn service<S, B, RB>(service: S, probe: HttpProbe) -> Probe
    where
        S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: Default + Send + 'static,
    {
        let probe = Arc::new(probe);
        Probe::custom(move || {
            let mut service = service.clone();
            let probe = Arc::clone(&probe);
            async move {
                std::future::poll_fn(|cx| service.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                let response = service
                    .call(probe.request(B::default()))
                    .await
                    .map_err(Into::into)?;
                probe.check(response.status())
            }
        })
    }

    /// Passes when the future `check` returns resolves to `Ok`.
    ///
    /// ```
    /// use evenkeel_failover::Probe;
    /// let probe = Probe::custom(|| async { Ok::<(), std::io::Error>(()) });
    /// # let _ = probe;
    /// ```
    pub fn custom<F, Fut, E>(mut check: F) -> Probe
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Probe {
            kind: Kind::Custom(Box::new(move || {
                let fut = check();
                Box::pin(async move { fut.await.map_err(Into::into) })
            })),
        }
    }

    /// Runs the probe once.
    pub(crate) fn run(&mut self) -> ProbeFuture {
        match &mut self.kind {
            Kind::Tcp(target) => {
                let target = Arc::clone(target);
                Box::pin(async move {
                    tokio::net::TcpStream::connect(&*target).await?;
                    Ok(())
                })
            }
            #[cfg(feature = "http-probe")]
            Kind::Http(probe) => Box::pin(http1::probe(Arc::clone(probe))),
            Kind::Custom(check) => check(),
        }
    }
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Tcp(target) => f.debug_tuple("Probe::Tcp").field(target).finish(),
            #[cfg(feature = "http-probe")]
            Kind::Http(probe) => f.debug_tuple("Probe::Http").field(probe).finish(),
            Kind::Custom(_) => f.write_str("Probe::Custom"),
        }
    }
}

/// An HTTP health request and the statuses that mean "up": used by
/// [`Probe::http`] and [`Probe::service`].
///
/// ```
/// use evenkeel_failover::HttpProbe;
/// let probe = HttpProbe::new("http://10.0.0.7:8080/healthz")?
///     .method(http::Method::HEAD)
///     .expect([200, 204]);
/// # let _ = probe;
/// # Ok::<(), evenkeel_core::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct HttpProbe {
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    /// Empty: any 2xx.
    expect: Vec<u16>,
}

impl HttpProbe {
    /// A `GET` of `uri` (absolute: scheme, host, path) that passes on any
    /// 2xx. Field: `uri`.
    pub fn new(uri: &str) -> Result<Self, ConfigError> {
        let uri: Uri = uri
            .parse()
            .map_err(|e| ConfigError::new("uri", format!("is not a URI: {e}")))?;
        if uri.scheme().is_none() || uri.authority().is_none() {
            return Err(ConfigError::new(
                "uri",
                "must be absolute, with a scheme and a host",
            ));
        }
        Ok(HttpProbe {
            uri,
            method: Method::GET,
            headers: HeaderMap::new(),
            expect: Vec::new(),
        })
    }

    /// The request method (`GET` by default).
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Adds a request header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The statuses that pass, instead of any 2xx: a list (`[200, 204]`) or
    /// a range (`200..=399`).
    pub fn expect(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.expect = statuses.into_iter().collect();
        self
    }

    /// The probed URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Whether `status` passes.
    pub fn accepts(&self, status: StatusCode) -> bool {
        if self.expect.is_empty() {
            status.is_success()
        } else {
            self.expect.contains(&status.as_u16())
        }
    }

    fn check(&self, status: StatusCode) -> Result<(), BoxError> {
        if self.accepts(status) {
            Ok(())
        } else {
            Err(format!("health probe answered {status}").into())
        }
    }

    fn request<B>(&self, body: B) -> Request<B> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

#[cfg(feature = "http-probe")]
mod http1 {
    use std::sync::Arc;

    use bytes::Bytes;
    use evenkeel_core::BoxError;
    use http::header::HOST;
    use http::{HeaderValue, Request};
    use http_body_util::Empty;
    use hyper_util::rt::TokioIo;
    use tokio::task::AbortHandle;

    use super::HttpProbe;

    /// Stops the connection's task when the probe ends or is cancelled.
    struct Abort(AbortHandle);

    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    pub(super) async fn probe(probe: Arc<HttpProbe>) -> Result<(), BoxError> {
        let authority = probe.uri.authority().ok_or("the probe URI has no host")?;
        let port = authority.port_u16().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect(format!("{}:{port}", authority.host())).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let _abort = Abort(
            tokio::spawn(async move {
                let _ = connection.await;
            })
            .abort_handle(),
        );
        let mut request: Request<Empty<Bytes>> = probe.request(Empty::new());
        *request.uri_mut() = probe
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()?;
        if !request.headers().contains_key(HOST) {
            request
                .headers_mut()
                .insert(HOST, HeaderValue::from_str(authority.as_str())?);
        }
        let response = sender.send_request(request).await?;
        probe.check(response.status())
    }
}
