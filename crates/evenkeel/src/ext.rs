//! Adding evenkeel layers to a `tower::ServiceBuilder` by name.

#[cfg(any(
    feature = "retry",
    feature = "limit",
    feature = "quota",
    feature = "metrics",
    feature = "failover"
))]
use tower_layer::Stack;

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// Adds each evenkeel layer to a [`tower::ServiceBuilder`] by name.
///
/// Sealed: implemented for `ServiceBuilder` only.
///
/// ```
/// use std::time::Duration;
/// use evenkeel::ServiceBuilderExt;
/// use evenkeel::retry::RetryLayer;
/// use evenkeel::limit::LimitLayer;
/// use tower::ServiceBuilder;
///
/// let builder = ServiceBuilder::new()
///     .server_aware_retry(RetryLayer::builder().deadline(Duration::from_secs(30)).build()?)
///     .concurrency(LimitLayer::fixed(32).build()?);
/// # let _ = builder;
/// # Ok::<(), evenkeel::core::ConfigError>(())
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed + Sized {
    /// Adds a rate-limit-aware retry layer.
    #[cfg(feature = "retry")]
    fn server_aware_retry<C, P>(
        self,
        layer: crate::retry::RetryLayer<C, P>,
    ) -> tower::ServiceBuilder<Stack<crate::retry::RetryLayer<C, P>, L>>;

    /// Adds a static or adaptive concurrency limit.
    #[cfg(feature = "limit")]
    fn concurrency<A, C, R>(
        self,
        layer: crate::limit::LimitLayer<A, C, R>,
    ) -> tower::ServiceBuilder<Stack<crate::limit::LimitLayer<A, C, R>, L>>;

    /// Adds quota pacing learned from rate-limit headers.
    #[cfg(feature = "quota")]
    fn quota<K, C, St>(
        self,
        layer: crate::quota::QuotaLayer<K, C, St>,
    ) -> tower::ServiceBuilder<Stack<crate::quota::QuotaLayer<K, C, St>, L>>
    where
        St: crate::quota::QuotaStore;

    /// Adds HTTP client metrics (per call or per attempt).
    #[cfg(feature = "metrics")]
    fn http_metrics<C>(
        self,
        layer: crate::metrics::MetricsLayer<C>,
    ) -> tower::ServiceBuilder<Stack<crate::metrics::MetricsLayer<C>, L>>;

    /// Rewrites requests onto a base URL (scheme, authority, base path).
    #[cfg(feature = "failover")]
    fn base_url(
        self,
        layer: crate::failover::BaseUrlLayer,
    ) -> tower::ServiceBuilder<Stack<crate::failover::BaseUrlLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for tower::ServiceBuilder<L> {
    #[cfg(feature = "retry")]
    fn server_aware_retry<C, P>(
        self,
        layer: crate::retry::RetryLayer<C, P>,
    ) -> tower::ServiceBuilder<Stack<crate::retry::RetryLayer<C, P>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "limit")]
    fn concurrency<A, C, R>(
        self,
        layer: crate::limit::LimitLayer<A, C, R>,
    ) -> tower::ServiceBuilder<Stack<crate::limit::LimitLayer<A, C, R>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "quota")]
    fn quota<K, C, St>(
        self,
        layer: crate::quota::QuotaLayer<K, C, St>,
    ) -> tower::ServiceBuilder<Stack<crate::quota::QuotaLayer<K, C, St>, L>>
    where
        St: crate::quota::QuotaStore,
    {
        self.layer(layer)
    }

    #[cfg(feature = "metrics")]
    fn http_metrics<C>(
        self,
        layer: crate::metrics::MetricsLayer<C>,
    ) -> tower::ServiceBuilder<Stack<crate::metrics::MetricsLayer<C>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "failover")]
    fn base_url(
        self,
        layer: crate::failover::BaseUrlLayer,
    ) -> tower::ServiceBuilder<Stack<crate::failover::BaseUrlLayer, L>> {
        self.layer(layer)
    }
}
