//! The hyper-util legacy client as the preset's connector, with its
//! connection pool tuned for servers that close idle connections.

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::body::ReplayBody;
use evenkeel_core::error::ConnectError;
use evenkeel_core::{BoxError, ConfigError};
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::connect::{
    CaptureConnection, Connect, Connected, Connection, HttpConnector, capture_connection,
};
use hyper_util::client::legacy::{Builder, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use super::Connector;

/// How long an idle pooled connection is kept before it is closed: 4 s,
/// below the keep-alive timeouts servers commonly use (5 s for Node.js,
/// Apache httpd and uvicorn, 60 s for AWS load balancers, 75 s for
/// nginx), so the client retires a connection before the server does
/// rather than writing a request into one the server is closing.
/// A server that announces a shorter timeout (`Keep-Alive: timeout=N`) is
/// honoured per connection; see [`HyperConnector::keep_alive_margin`].
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// How much earlier than a server's announced `Keep-Alive: timeout=N` a
/// connection stops being reused: 1 s, the header's own resolution. A
/// server announcing `timeout=1` or `timeout=0` (an idle timeout under a
/// second or two) gets no request on a connection after its answer.
pub const DEFAULT_KEEP_ALIVE_MARGIN: Duration = Duration::from_secs(1);

/// The hyper-util legacy client as the preset's connector.
///
/// Each endpoint gets its own client (and so its own connection pool)
/// built from one [`Builder`]; set pool and HTTP/2 options there.
///
/// - [`HyperConnector::http`]: plain HTTP (a proxy on a private
///   network, a local simulator);
/// - [`HyperConnector::https`] (feature `rustls`): HTTPS with rustls and
///   the web PKI roots, HTTP/1.1 and HTTP/2 by ALPN;
///   [`HyperConnector::https_with_roots`] trusts other roots;
/// - [`HyperConnector::new`]: any hyper-util connector.
///
/// Every connector is wrapped in [`MarkConnect`], so that a failure
/// while connecting (DNS, TCP, the TLS handshake) reaches the
/// classifier as a typed [`ConnectError`]: never sent, whatever its
/// message says.
///
/// # Connections the server closes
///
/// A request written into a keep-alive connection at the moment the
/// server closes it is lost, and cannot be resent unless it is idempotent:
/// nothing proves the server did not process it. The connector keeps
/// such moments rare:
///
/// - idle connections are closed after [`DEFAULT_POOL_IDLE_TIMEOUT`]
///   (settable with [`pool_idle_timeout`](Self::pool_idle_timeout)), below
///   what servers commonly keep;
/// - an answer with `Connection: close` retires its connection (hyper does
///   this itself);
/// - an answer with `Keep-Alive: timeout=N` makes its connection
///   unusable once it has been idle for `N` minus
///   [`keep_alive_margin`](Self::keep_alive_margin) (at once when that is
///   zero);
/// - a request that hyper drops before writing any of it (its pooled
///   connection closed while it waited) is classified as never sent, so
///   the preset resends it, a `POST` included.
///
/// `B` is the body type of the requests the caller sends (the preset
/// wraps it to replay it); `Full<Bytes>` unless chosen with
/// [`HyperConnector::with_body`].
///
/// ```
/// use std::time::Duration;
/// use evenkeel::{HyperConnector, Preset};
///
/// # fn main() -> Result<(), evenkeel::core::ConfigError> {
/// // A server known to close idle connections after 2 s.
/// let connector = HyperConnector::http()
///     .pool_idle_timeout(Some(Duration::from_millis(1500)))?;
/// let client = Preset::builder()
///     .endpoint("http://127.0.0.1:8080")
///     .build(connector)?;
/// # drop(client);
/// # Ok(())
/// # }
/// ```
pub struct HyperConnector<C = HttpConnector, B = Full<Bytes>> {
    connector: C,
    builder: Builder,
    retire: Retire,
    _body: PhantomData<fn(B)>,
}

impl<C: Clone, B> Clone for HyperConnector<C, B> {
    fn clone(&self) -> Self {
        HyperConnector {
            connector: self.connector.clone(),
            builder: self.builder.clone(),
            retire: self.retire,
            _body: PhantomData,
        }
    }
}

impl HyperConnector<HttpConnector> {
    /// Plain HTTP over hyper-util's `HttpConnector`.
    pub fn http() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        HyperConnector::new(connector)
    }
}

#[cfg(feature = "rustls")]
impl HyperConnector<hyper_rustls::HttpsConnector<HttpConnector>> {
    /// HTTPS (and plain HTTP) with rustls and the web PKI roots.
    ///
    /// The crypto provider is rustls's `ring`, passed to rustls by name
    /// rather than looked up as the process default, so a program that
    /// also compiles in `aws-lc-rs` (as `metrics-exporter-prometheus`
    /// does with its default features) works the same.
    pub fn https() -> Self {
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(ring())
            .expect("rustls's ring provider supports TLS 1.2 and 1.3");
        Self::wrap_tls(tls)
    }

    /// HTTPS (and plain HTTP) with rustls, trusting `roots` instead of
    /// the web PKI roots: a private CA, or the root of a proxy that
    /// inspects TLS. The provider is `ring`, as for
    /// [`https`](Self::https).
    pub fn https_with_roots(roots: rustls::RootCertStore) -> Self {
        let tls = rustls::ClientConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()
            .expect("rustls's ring provider supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self::wrap_tls(hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls))
    }

    /// `tls` over hyper-util's `HttpConnector`, HTTP/1.1 and HTTP/2 by
    /// ALPN, `http://` URLs sent in the clear.
    fn wrap_tls(
        tls: hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsSchemes>,
    ) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let https = tls
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        HyperConnector::new(https)
    }
}

/// rustls's `ring` provider, named so that no process default is
/// consulted.
#[cfg(feature = "rustls")]
fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl<C> HyperConnector<C> {
    /// Any hyper-util connector, with a default client builder: idle
    /// connections closed after [`DEFAULT_POOL_IDLE_TIMEOUT`] (tokio's
    /// timer sweeps the pool), `Keep-Alive` timeouts honoured with
    /// [`DEFAULT_KEEP_ALIVE_MARGIN`].
    pub fn new(connector: C) -> Self {
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(DEFAULT_POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new());
        HyperConnector {
            connector,
            builder,
            retire: Retire {
                pool_idle_timeout: Some(DEFAULT_POOL_IDLE_TIMEOUT),
                margin: DEFAULT_KEEP_ALIVE_MARGIN,
            },
            _body: PhantomData,
        }
    }
}

impl<C, B> HyperConnector<C, B> {
    /// The same connector for callers whose requests carry bodies of
    /// type `B2`.
    pub fn with_body<B2>(self) -> HyperConnector<C, B2> {
        HyperConnector {
            connector: self.connector,
            builder: self.builder,
            retire: self.retire,
            _body: PhantomData,
        }
    }

    /// How long an idle pooled connection is kept
    /// ([`DEFAULT_POOL_IDLE_TIMEOUT`] unless set); `None` keeps idle
    /// connections until the server closes them.
    ///
    /// Set it below the server's keep-alive timeout when the server does
    /// not announce one. Zero is refused: to keep no idle connection, set
    /// `pool_max_idle_per_host(0)` on [`builder_mut`](Self::builder_mut).
    ///
    /// ```
    /// use std::time::Duration;
    /// use evenkeel::HyperConnector;
    ///
    /// assert!(HyperConnector::http().pool_idle_timeout(Some(Duration::from_secs(1))).is_ok());
    /// assert!(HyperConnector::http().pool_idle_timeout(None).is_ok());
    /// let err = HyperConnector::http().pool_idle_timeout(Some(Duration::ZERO)).unwrap_err();
    /// assert_eq!(err.field(), "pool_idle_timeout");
    /// ```
    pub fn pool_idle_timeout(mut self, timeout: Option<Duration>) -> Result<Self, ConfigError> {
        if timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                "pool_idle_timeout",
                "must be greater than zero (`None` keeps idle connections; \
                 `pool_max_idle_per_host(0)` keeps none)",
            ));
        }
        self.builder.pool_idle_timeout(timeout);
        self.retire.pool_idle_timeout = timeout;
        Ok(self)
    }

    /// How much earlier than a server's `Keep-Alive: timeout=N` a
    /// connection stops being reused ([`DEFAULT_KEEP_ALIVE_MARGIN`] unless
    /// set): a connection idle for `N - margin` is retired, and one whose
    /// `N` is at most the margin is not reused at all. The margin covers
    /// the header's whole-second resolution and the time a request takes
    /// to reach the server.
    pub fn keep_alive_margin(mut self, margin: Duration) -> Self {
        self.retire.margin = margin;
        self
    }

    /// The client builder, to set pool or HTTP/2 options. A pool idle
    /// timeout set here is not seen by the `Keep-Alive` handling; prefer
    /// [`pool_idle_timeout`](Self::pool_idle_timeout).
    pub fn builder_mut(&mut self) -> &mut Builder {
        &mut self.builder
    }
}

impl<C, B> Connector for HyperConnector<C, B>
where
    MarkConnect<C>: Connect + Clone + Send + Sync + 'static,
    C: Clone,
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Service = HyperClient<C, B>;

    fn connect(&self, _base_url: &Uri) -> Result<Self::Service, BoxError> {
        Ok(HyperClient {
            client: self.builder.build(MarkConnect::new(self.connector.clone())),
            retire: self.retire,
        })
    }
}

impl<C, B> fmt::Debug for HyperConnector<C, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperConnector")
            .field("builder", &self.builder)
            .field("pool_idle_timeout", &self.retire.pool_idle_timeout)
            .field("keep_alive_margin", &self.retire.margin)
            .finish_non_exhaustive()
    }
}

/// When to stop reusing a connection whose server announced a keep-alive
/// timeout.
#[derive(Debug, Clone, Copy)]
struct Retire {
    pool_idle_timeout: Option<Duration>,
    margin: Duration,
}

impl Retire {
    /// Reads `response`'s `Keep-Alive: timeout=N` and, when the pool would
    /// keep the connection idle longer than the server will, shortens its
    /// life.
    fn on_answer<T>(&self, response: &Response<T>, capture: &mut Option<CaptureConnection>) {
        let Some(handle) = response.extensions().get::<ConnectionHandle>() else {
            return;
        };
        let Some(state) = handle.0.upgrade() else {
            return;
        };
        state.know(capture);
        let Some(announced) = evenkeel_headers::keep_alive_timeout(response.headers()) else {
            return;
        };
        let idle = announced.saturating_sub(self.margin);
        if idle.is_zero() {
            handle.retire();
        } else if self.pool_idle_timeout.is_none_or(|pool| idle < pool) {
            handle.retire_when_idle_for(idle);
        }
    }
}

/// The service a [`HyperConnector`] makes for an endpoint: hyper-util's
/// legacy client, which also retires connections whose server announced
/// (with `Keep-Alive: timeout=N`) that it will close them soon.
///
/// Cheap to clone; clones share the connection pool.
pub struct HyperClient<C = HttpConnector, B = Full<Bytes>> {
    client: Client<MarkConnect<C>, ReplayBody<B>>,
    retire: Retire,
}

impl<C, B> HyperClient<C, B> {
    /// `client`, retiring connections as the defaults say
    /// ([`DEFAULT_POOL_IDLE_TIMEOUT`], [`DEFAULT_KEEP_ALIVE_MARGIN`]): for
    /// connectors that build hyper-util's client themselves.
    pub(crate) fn with_default_retire(client: Client<MarkConnect<C>, ReplayBody<B>>) -> Self {
        HyperClient {
            client,
            retire: Retire {
                pool_idle_timeout: Some(DEFAULT_POOL_IDLE_TIMEOUT),
                margin: DEFAULT_KEEP_ALIVE_MARGIN,
            },
        }
    }

    /// The hyper-util client.
    pub fn get_ref(&self) -> &Client<MarkConnect<C>, ReplayBody<B>> {
        &self.client
    }

    /// The hyper-util client.
    pub fn into_inner(self) -> Client<MarkConnect<C>, ReplayBody<B>> {
        self.client
    }
}

impl<C: Clone, B> Clone for HyperClient<C, B> {
    fn clone(&self) -> Self {
        HyperClient {
            client: self.client.clone(),
            retire: self.retire,
        }
    }
}

impl<C, B> fmt::Debug for HyperClient<C, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperClient")
            .field("pool_idle_timeout", &self.retire.pool_idle_timeout)
            .field("keep_alive_margin", &self.retire.margin)
            .finish_non_exhaustive()
    }
}

impl<C, B> tower_service::Service<Request<ReplayBody<B>>> for HyperClient<C, B>
where
    MarkConnect<C>: Connect + Clone + Send + Sync + 'static,
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<hyper::body::Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = HyperClientFuture;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.client.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut request: Request<ReplayBody<B>>) -> Self::Future {
        // The pool's view of the connection the request goes out on: the
        // one way to take that connection out of the pool later.
        let capture = capture_connection(&mut request);
        HyperClientFuture {
            inner: self.client.request(request),
            capture: Some(capture),
            retire: self.retire,
        }
    }
}

/// The future of [`HyperClient`].
pub struct HyperClientFuture {
    inner: hyper_util::client::legacy::ResponseFuture,
    capture: Option<CaptureConnection>,
    retire: Retire,
}

impl Future for HyperClientFuture {
    type Output = Result<Response<hyper::body::Incoming>, hyper_util::client::legacy::Error>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = std::task::ready!(Pin::new(&mut this.inner).poll(cx));
        if let Ok(response) = &result {
            this.retire.on_answer(response, &mut this.capture);
        }
        Poll::Ready(result)
    }
}

impl fmt::Debug for HyperClientFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperClientFuture").finish_non_exhaustive()
    }
}

/// A connector whose errors are [`ConnectError`]s: the phase of a
/// failure travels as a type, so the classifier need not guess it from
/// words (a TLS error while connecting is never-sent; one after the
/// request was written is not).
///
/// Its connections are [`MarkedIo`]s, whose answers carry a
/// [`ConnectionHandle`] in their extensions.
#[derive(Debug, Clone)]
pub struct MarkConnect<C> {
    inner: C,
}

impl<C> MarkConnect<C> {
    /// Wraps `inner`.
    pub fn new(inner: C) -> Self {
        MarkConnect { inner }
    }

    /// The wrapped connector.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }
}

impl<C> tower_service::Service<Uri> for MarkConnect<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Unpin,
    C::Error: Into<BoxError>,
{
    type Response = MarkedIo<C::Response>;
    type Error = ConnectError;
    type Future = MarkConnectFuture<C::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        self.inner.poll_ready(cx).map_err(ConnectError::new)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        MarkConnectFuture {
            inner: self.inner.call(uri),
        }
    }
}

/// The future of [`MarkConnect`].
#[derive(Debug)]
pub struct MarkConnectFuture<F> {
    inner: F,
}

impl<F, T, E> Future for MarkConnectFuture<F>
where
    F: Future<Output = Result<T, E>> + Unpin,
    E: Into<BoxError>,
{
    type Output = Result<MarkedIo<T>, ConnectError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner)
            .poll(cx)
            .map_ok(MarkedIo::new)
            .map_err(ConnectError::new)
    }
}

/// A connection made by [`MarkConnect`]: the connector's own, unchanged,
/// plus a [`ConnectionHandle`] that hyper-util puts in the extensions of
/// every answer it carries.
#[derive(Debug)]
pub struct MarkedIo<T> {
    inner: T,
    state: Arc<ConnectionState>,
}

impl<T> MarkedIo<T> {
    fn new(inner: T) -> Self {
        MarkedIo {
            inner,
            state: Arc::default(),
        }
    }

    /// The connector's connection.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: Connection> Connection for MarkedIo<T> {
    fn connected(&self) -> Connected {
        self.inner
            .connected()
            .extra(ConnectionHandle(Arc::downgrade(&self.state)))
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for MarkedIo<T> {
    #[inline]
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for MarkedIo<T> {
    #[inline]
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    #[inline]
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    #[inline]
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

/// What a connection's handles share; owned by the connection, so it goes
/// when the connection does.
#[derive(Default)]
struct ConnectionState {
    /// The pool's view of the connection (captured by the first request
    /// answered on it), whose poison flag the pool reads before handing
    /// the connection out.
    capture: OnceLock<CaptureConnection>,
    /// When the connection, idle since its last answer, must not be used
    /// again.
    idle_until: Mutex<Option<Instant>>,
    /// Whether a timer already watches `idle_until`.
    watched: AtomicBool,
    /// Whether the connection was taken out of the pool.
    retired: AtomicBool,
}

impl ConnectionState {
    /// Keeps the first capture of the connection.
    fn know(&self, capture: &mut Option<CaptureConnection>) {
        if self.capture.get().is_none()
            && let Some(capture) = capture.take()
        {
            let _ = self.capture.set(capture);
        }
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        if let Some(capture) = self.capture.get()
            && let Some(connected) = capture.connection_metadata().as_ref()
        {
            connected.poison();
        }
    }
}

impl fmt::Debug for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionState")
            .field("idle_until", &self.idle_until)
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

/// A handle on one pooled connection, found in the extensions of each
/// answer a [`HyperClient`] returns.
///
/// It holds the connection weakly: once the connection is gone, its
/// methods do nothing.
///
/// ```no_run
/// # async fn run(client: evenkeel::Preset<evenkeel::HttpClient>) -> Result<(), evenkeel::core::BoxError> {
/// use tower::ServiceExt;
/// let request = http::Request::post("/v1/messages").body(http_body_util::Full::default())?;
/// let response = client.oneshot(request).await?;
/// if let Some(connection) = response.extensions().get::<evenkeel::ConnectionHandle>() {
///     // This server misbehaves after a long answer: use a new connection next time.
///     connection.retire();
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionHandle(Weak<ConnectionState>);

impl ConnectionHandle {
    /// Takes the connection out of the pool: the request on it finishes,
    /// and no other is sent on it.
    pub fn retire(&self) {
        if let Some(state) = self.0.upgrade() {
            state.retire();
        }
    }

    /// Whether the connection was retired (by [`retire`](Self::retire) or
    /// by a server's `Keep-Alive` timeout); `true` once it is gone.
    pub fn is_retired(&self) -> bool {
        self.0
            .upgrade()
            .is_none_or(|state| state.retired.load(Ordering::Acquire))
    }

    /// Retires the connection once it has been idle for `idle` after this
    /// answer; a later answer on it restarts the count. A request still in
    /// flight when the time comes finishes, and is the connection's last.
    fn retire_when_idle_for(&self, idle: Duration) {
        let Some(state) = self.0.upgrade() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No timer to keep the count: be safe.
            state.retire();
            return;
        };
        let until = Instant::now() + idle;
        *state.idle_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
        if !state.watched.swap(true, Ordering::AcqRel) {
            runtime.spawn(watch_idle(self.0.clone()));
        }
    }
}

/// Sleeps until the connection's `idle_until`, following it as later
/// answers move it, and retires the connection when it is reached. Ends
/// when the connection is gone.
async fn watch_idle(state: Weak<ConnectionState>) {
    loop {
        let until = {
            let Some(state) = state.upgrade() else {
                return;
            };
            let until = *state.idle_until.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(until) => until,
                None => return,
            }
        };
        tokio::time::sleep_until(until).await;
        let Some(state) = state.upgrade() else {
            return;
        };
        let now_until = *state.idle_until.lock().unwrap_or_else(|e| e.into_inner());
        if now_until.is_some_and(|u| u <= Instant::now()) {
            state.retire();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> (Arc<ConnectionState>, ConnectionHandle) {
        let state = Arc::new(ConnectionState::default());
        let handle = ConnectionHandle(Arc::downgrade(&state));
        (state, handle)
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_retired_when_its_time_comes() {
        let (_state, handle) = connection();
        handle.retire_when_idle_for(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(!handle.is_retired());
        // A later answer restarts the count.
        handle.retire_when_idle_for(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(!handle.is_retired());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(handle.is_retired());
    }

    #[tokio::test(start_paused = true)]
    async fn the_watch_ends_with_the_connection() {
        let (state, handle) = connection();
        handle.retire_when_idle_for(Duration::from_secs(1));
        drop(state);
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Gone, so nothing to retire, and the watch did not keep it alive.
        assert!(handle.0.upgrade().is_none());
        assert!(handle.is_retired());
    }

    #[test]
    fn retire_with_no_runtime_is_immediate() {
        let (_state, handle) = connection();
        handle.retire_when_idle_for(Duration::from_secs(1));
        assert!(handle.is_retired());
    }

    #[test]
    fn announced_timeouts_against_the_pool() {
        let retire = Retire {
            pool_idle_timeout: Some(DEFAULT_POOL_IDLE_TIMEOUT),
            margin: DEFAULT_KEEP_ALIVE_MARGIN,
        };
        let answer = |keep_alive: &str, state: &Arc<ConnectionState>| {
            let mut response = Response::new(());
            response
                .headers_mut()
                .insert("keep-alive", keep_alive.parse().unwrap());
            response
                .extensions_mut()
                .insert(ConnectionHandle(Arc::downgrade(state)));
            retire.on_answer(&response, &mut None);
        };
        // Within the margin: retired at once.
        let (state, handle) = connection();
        answer("timeout=1", &state);
        assert!(handle.is_retired());
        // Past the pool's own idle timeout: the pool retires it first.
        let (state, handle) = connection();
        answer("timeout=5, max=100", &state);
        assert!(!handle.is_retired());
        assert!(!state.watched.load(Ordering::Acquire));
        // Garbage is ignored.
        let (state, handle) = connection();
        answer("timeout=-3", &state);
        assert!(!handle.is_retired());
    }
}
