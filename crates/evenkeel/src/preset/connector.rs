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
pub use self::hyper::{
    ConnectionHandle, DEFAULT_KEEP_ALIVE_MARGIN, DEFAULT_POOL_IDLE_TIMEOUT, HyperClient,
    HyperClientFuture, HyperConnector, MarkConnect, MarkConnectFuture, MarkedIo,
};

#[cfg(feature = "hyper")]
mod hyper;
