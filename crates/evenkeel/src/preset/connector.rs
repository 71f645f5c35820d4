//! What the preset sends requests with: one service per endpoint.

use std::fmt;

use evenkeel_core::BoxError;
use http::Uri;

/// Makes the service that carries requests to one endpoint.
///
/// The preset calls [`connect`](Connector::connect) once per endpoint, with
/// the endpoint's base URL. Requests reach the service with their URI
/// already rewritten to the endpoint (scheme, authority and base path), so
/// a shared HTTP client fits as well as a per-endpoint channel.
///
/// - [`HyperConnector`] (feature `hyper`): the hyper-util legacy client,
///   the documented default.
/// - [`connector_fn`]: anything else, such as a tonic `Channel` per
///   endpoint:
///
/// ```no_run
/// # #[cfg(any())] {
/// let connector = evenkeel::connector_fn(|base: &http::Uri| {
///     let channel = tonic::transport::Channel::builder(base.clone()).connect_lazy();
///     Ok(tower::ServiceBuilder::new()
///         .map_request(|r: http::Request<_>| r.map(tonic::body::Body::new))
///         .service(channel))
/// });
/// # }
/// ```
pub trait Connector {
    /// The per-endpoint service.
    type Service;

    /// The service for the endpoint at `base_url`.
    fn connect(&self, base_url: &Uri) -> Result<Self::Service, BoxError>;

    /// The service for the endpoint at `base_url`, reached through the
    /// proxy of `route` (one of the endpoint's
    /// [`via_proxies`](crate::PresetEndpoint::via_proxies)). Connectors that
    /// cannot route through proxies refuse (the default), and the preset's
    /// build fails naming the endpoint; [`RoutedConnector`](crate::RoutedConnector)
    /// routes.
    #[cfg(feature = "hyper")]
    fn connect_via(
        &self,
        base_url: &Uri,
        route: &super::proxy::ProxyRoute,
    ) -> Result<Self::Service, BoxError> {
        let _ = base_url;
        Err(format!(
            "this connector cannot send through the proxy `{}`; use `RoutedConnector`",
            route.proxy()
        )
        .into())
    }

    /// Whether endpoints without proxies of their own follow the proxy
    /// environment (`HTTPS_PROXY`, `NO_PROXY`, …) through
    /// [`connect_via`](Connector::connect_via). `false` by default: a
    /// gRPC channel or a closure knows its own way.
    #[cfg(feature = "hyper")]
    fn reads_proxy_env(&self) -> bool {
        false
    }
}

/// A [`Connector`] from a closure; see [`connector_fn`].
#[derive(Clone)]
pub struct ConnectorFn<F> {
    f: F,
}

/// A [`Connector`] from a closure `Fn(&Uri) -> Result<S, BoxError>`.
pub fn connector_fn<F, S>(f: F) -> ConnectorFn<F>
where
    F: Fn(&Uri) -> Result<S, BoxError>,
{
    ConnectorFn { f }
}

impl<F, S> Connector for ConnectorFn<F>
where
    F: Fn(&Uri) -> Result<S, BoxError>,
{
    type Service = S;

    fn connect(&self, base_url: &Uri) -> Result<S, BoxError> {
        (self.f)(base_url)
    }
}

impl<F> fmt::Debug for ConnectorFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorFn").finish_non_exhaustive()
    }
}

#[cfg(feature = "hyper")]
pub use self::hyper::{HyperConnector, MarkConnect, MarkConnectFuture};

#[cfg(feature = "hyper")]
mod hyper {
    use std::fmt;
    use std::marker::PhantomData;

    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use evenkeel_core::BoxError;
    use evenkeel_core::body::ReplayBody;
    use evenkeel_core::error::ConnectError;
    use http::Uri;
    use http_body_util::Full;
    use hyper_util::client::legacy::connect::{Connect, HttpConnector};
    use hyper_util::client::legacy::{Builder, Client};
    use hyper_util::rt::TokioExecutor;

    use super::Connector;

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
    /// `B` is the body type of the requests the caller sends (the preset
    /// wraps it to replay it); `Full<Bytes>` unless chosen with
    /// [`HyperConnector::with_body`].
    pub struct HyperConnector<C = HttpConnector, B = Full<Bytes>> {
        connector: C,
        builder: Builder,
        _body: PhantomData<fn(B)>,
    }

    impl<C: Clone, B> Clone for HyperConnector<C, B> {
        fn clone(&self) -> Self {
            HyperConnector {
                connector: self.connector.clone(),
                builder: self.builder.clone(),
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
    fn ring() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
        std::sync::Arc::new(rustls::crypto::ring::default_provider())
    }

    impl<C> HyperConnector<C> {
        /// Any hyper-util connector, with a default client builder.
        pub fn new(connector: C) -> Self {
            HyperConnector {
                connector,
                builder: Client::builder(TokioExecutor::new()),
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
                _body: PhantomData,
            }
        }

        /// The client builder, to set pool or HTTP/2 options.
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
        type Service = Client<MarkConnect<C>, ReplayBody<B>>;

        fn connect(&self, _base_url: &Uri) -> Result<Self::Service, BoxError> {
            Ok(self.builder.build(MarkConnect::new(self.connector.clone())))
        }
    }

    /// A connector whose errors are [`ConnectError`]s: the phase of a
    /// failure travels as a type, so the classifier need not guess it from
    /// words (a TLS error while connecting is never-sent; one after the
    /// request was written is not).
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
        type Response = C::Response;
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
        type Output = Result<T, ConnectError>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            Pin::new(&mut self.inner)
                .poll(cx)
                .map_err(ConnectError::new)
        }
    }

    impl<C, B> fmt::Debug for HyperConnector<C, B> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("HyperConnector")
                .field("builder", &self.builder)
                .finish_non_exhaustive()
        }
    }
}
