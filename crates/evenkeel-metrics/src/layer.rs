use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use evenkeel_core::{ConfigError, HttpClassifier};
use metrics::SharedString;
use tower_layer::Layer;

use crate::cache::Interner;
use crate::listener::MetricsListener;
use crate::names::Naming;
use crate::record::{Address, Instruments, RouteFn};
use crate::service::Metrics;

/// The default cap on distinct request authorities (`host:port`) labelled
/// with their host.
pub const DEFAULT_MAX_ADDRESSES: usize = 64;
/// The default cap on distinct route values.
pub const DEFAULT_MAX_ROUTES: usize = 256;

/// What one pass through the layer stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Scope {
    /// A logical call as the caller sees it, retries and waits included:
    /// put the layer *outside* the retry layer. Records
    /// `http.client.request.duration`, `evenkeel.http.client.requests` and
    /// `http.client.active_requests`. The default.
    #[default]
    Call,
    /// One attempt on the wire: put the layer *inside* the retry layer.
    /// Records `evenkeel.http.client.attempt.duration`,
    /// `evenkeel.http.client.attempts` (with an `evenkeel.attempt` label,
    /// `1` to `4` then `5+`, read from
    /// [`Attempt`](evenkeel_core::ext::Attempt)) and
    /// `evenkeel.http.client.active_attempts`. Attempts divided by calls is
    /// the retry amplification.
    Attempt,
}

/// What every service and future of one layer shares.
pub(crate) struct Shared<C> {
    pub(crate) instruments: Instruments,
    pub(crate) classifier: C,
}

/// A [`Layer`] that records the metrics of every request through it.
///
/// Build one with [`MetricsLayer::builder`], or [`MetricsLayer::new`] for
/// a call-scope layer with OpenTelemetry names. The layer is cheap to clone;
/// its clones and every service they make share one set of resolved handles.
///
/// ```
/// use evenkeel_metrics::{MetricsLayer, Scope};
///
/// let calls = MetricsLayer::new();
/// let attempts = MetricsLayer::builder()
///     .scope(Scope::Attempt)
///     .server_address("api.anthropic.com")
///     .build()?;
/// # let _ = (calls, attempts);
/// # Ok::<(), evenkeel_core::ConfigError>(())
/// ```
pub struct MetricsLayer<C = HttpClassifier> {
    shared: Arc<Shared<C>>,
}

impl MetricsLayer {
    /// A call-scope layer with OpenTelemetry names, `server.address` from
    /// each request's host, and rate-limit gauges on.
    pub fn new() -> Self {
        MetricsLayer::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder starting from the defaults of [`MetricsLayer::new`].
    pub fn builder() -> MetricsBuilder {
        MetricsBuilder::default()
    }
}

impl Default for MetricsLayer {
    fn default() -> Self {
        MetricsLayer::new()
    }
}

impl<C> MetricsLayer<C> {
    /// This layer's scope.
    pub fn scope(&self) -> Scope {
        self.shared.instruments.scope
    }

    /// This layer's names.
    pub fn naming(&self) -> &Naming {
        &self.shared.instruments.naming
    }

    /// A [`MetricsListener`] with the same names, to hand to the retry,
    /// limit, quota and failover layers.
    pub fn listener(&self) -> MetricsListener {
        MetricsListener::with_naming(self.shared.instruments.naming)
    }
}

impl<C> Clone for MetricsLayer<C> {
    fn clone(&self) -> Self {
        MetricsLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S, C> Layer<S> for MetricsLayer<C> {
    type Service = Metrics<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics::from_shared(inner, Arc::clone(&self.shared))
    }
}

impl<C: fmt::Debug> fmt::Debug for MetricsLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayer")
            .field("instruments", &self.shared.instruments)
            .field("classifier", &self.shared.classifier)
            .finish()
    }
}

/// Builds a [`MetricsLayer`]; [`build`](MetricsBuilder::build) validates.
///
/// ```
/// use std::borrow::Cow;
/// use evenkeel_metrics::{MetricsLayer, Naming, Scope};
///
/// let layer = MetricsLayer::builder()
///     .scope(Scope::Call)
///     .naming(Naming::SHORT)
///     // A bounded route label: the API's operation, never the raw path.
///     .route(|parts: &http::request::Parts| match parts.uri.path() {
///         "/v1/messages" => Some(Cow::Borrowed("messages")),
///         "/v1/messages/count_tokens" => Some(Cow::Borrowed("count_tokens")),
///         _ => None, // recorded as `_OTHER`
///     })
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), evenkeel_core::ConfigError>(())
/// ```
pub struct MetricsBuilder<C = HttpClassifier> {
    scope: Scope,
    naming: Naming,
    server_address: Option<String>,
    server_port: Option<u16>,
    route: Option<RouteFn>,
    rate_limits: bool,
    max_addresses: usize,
    max_routes: usize,
    classifier: C,
}

impl Default for MetricsBuilder {
    fn default() -> Self {
        MetricsBuilder {
            scope: Scope::Call,
            naming: Naming::OPEN_TELEMETRY,
            server_address: None,
            server_port: None,
            route: None,
            rate_limits: true,
            max_addresses: DEFAULT_MAX_ADDRESSES,
            max_routes: DEFAULT_MAX_ROUTES,
            classifier: HttpClassifier::new(),
        }
    }
}

impl<C> MetricsBuilder<C> {
    /// Whether a pass through the layer is a call or an attempt (default
    /// [`Scope::Call`]).
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// The names and label keys (default [`Naming::OPEN_TELEMETRY`]).
    pub fn naming(mut self, naming: Naming) -> Self {
        self.naming = naming;
        self
    }

    /// A fixed `server.address` for every request, instead of each
    /// request's host. Use it when the layer sees relative URIs or the
    /// client always talks to one API.
    pub fn server_address(mut self, address: impl Into<String>) -> Self {
        self.server_address = Some(address.into());
        self
    }

    /// A fixed `server.port` for every request, next to a fixed
    /// [`server_address`](Self::server_address) (OpenTelemetry asks for
    /// both; [`Naming::SHORT`] has no such label).
    pub fn server_port(mut self, port: u16) -> Self {
        self.server_port = Some(port);
        self
    }

    /// Adds a route label (`url.template`, or `route` with
    /// [`Naming::SHORT`]) from a function of the request head.
    ///
    /// The function must return values from a small fixed set: a template
    /// such as `/v1/models/{id}`, never the raw path. `None` is recorded as
    /// `_OTHER`, and so is every value past the first
    /// [`max_routes`](Self::max_routes) distinct ones. Returning
    /// `Cow::Borrowed` of a `&'static str` costs nothing per call.
    pub fn route<F>(mut self, route: F) -> Self
    where
        F: Fn(&http::request::Parts) -> Option<Cow<'static, str>> + Send + Sync + 'static,
    {
        self.route = Some(Arc::new(route));
        self
    }

    /// Whether to read rate-limit headers into the
    /// `evenkeel.rate_limit.*` gauges (default `true`). Responses without
    /// such headers cost one scan of their header names.
    pub fn rate_limits(mut self, on: bool) -> Self {
        self.rate_limits = on;
        self
    }

    /// The most distinct request authorities (`host:port`, or `Host`
    /// header values) whose host becomes `server.address` (default
    /// [`DEFAULT_MAX_ADDRESSES`]); later ones are `_OTHER`.
    pub fn max_addresses(mut self, max: usize) -> Self {
        self.max_addresses = max;
        self
    }

    /// The most distinct route values (default [`DEFAULT_MAX_ROUTES`]);
    /// later ones are `_OTHER`.
    pub fn max_routes(mut self, max: usize) -> Self {
        self.max_routes = max;
        self
    }

    /// The classifier that names outcomes (default [`HttpClassifier`]).
    /// Only [`Classify::classify_response`](evenkeel_core::Classify::classify_response)
    /// and [`Classify::classify_error`](evenkeel_core::Classify::classify_error)
    /// are used; bodies are never read.
    pub fn classifier<C2>(self, classifier: C2) -> MetricsBuilder<C2> {
        MetricsBuilder {
            scope: self.scope,
            naming: self.naming,
            server_address: self.server_address,
            server_port: self.server_port,
            route: self.route,
            rate_limits: self.rate_limits,
            max_addresses: self.max_addresses,
            max_routes: self.max_routes,
            classifier,
        }
    }

    /// Validates the configuration and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field: an empty `server_address`, a
    /// zero `max_addresses` or `max_routes`, or a `naming` with an empty or
    /// duplicate name or unordered buckets.
    pub fn build(self) -> Result<MetricsLayer<C>, ConfigError> {
        if let Err(message) = self.naming.validate() {
            return Err(ConfigError::new("naming", message));
        }
        if self.max_addresses == 0 {
            return Err(ConfigError::new("max_addresses", "must be at least 1"));
        }
        if self.max_routes == 0 {
            return Err(ConfigError::new("max_routes", "must be at least 1"));
        }
        let address = match self.server_address {
            Some(a) if a.is_empty() => {
                return Err(ConfigError::new("server_address", "must not be empty"));
            }
            Some(a) => Address::Fixed(SharedString::from_owned(a)),
            None => Address::Request(Box::new(Interner::new(self.max_addresses))),
        };
        let port = match (&address, self.server_port) {
            (Address::Fixed(_), Some(port)) => Some(SharedString::from_owned(port.to_string())),
            (_, Some(_)) => {
                return Err(ConfigError::new(
                    "server_port",
                    "needs a fixed `server_address` as well",
                ));
            }
            (_, None) => None,
        };
        let route = self.route.map(|f| (f, Interner::new(self.max_routes)));
        let instruments = Instruments::new(
            self.scope,
            self.naming,
            address,
            port,
            route,
            self.rate_limits,
        );
        Ok(MetricsLayer {
            shared: Arc::new(Shared {
                instruments,
                classifier: self.classifier,
            }),
        })
    }
}

impl<C: fmt::Debug> fmt::Debug for MetricsBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsBuilder")
            .field("scope", &self.scope)
            .field("naming", &self.naming.duration)
            .field("server_address", &self.server_address)
            .field("server_port", &self.server_port)
            .field("route", &self.route.is_some())
            .field("rate_limits", &self.rate_limits)
            .field("max_addresses", &self.max_addresses)
            .field("max_routes", &self.max_routes)
            .field("classifier", &self.classifier)
            .finish()
    }
}
