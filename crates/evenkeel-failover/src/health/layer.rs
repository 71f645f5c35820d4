//! [`HealthCheckLayer`]: a health check without the balancer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use evenkeel_core::BoxError;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::check::HealthHandle;
use crate::error::Unhealthy;

/// Fails requests fast with [`Unhealthy`] while a health check reports
/// the endpoint unhealthy, instead of sending them.
///
/// For a single endpoint (or a balancer of your own). With a
/// [`Failover`](crate::Failover), give the handle to the endpoint
/// ([`Endpoint::health`](crate::Endpoint::health)) instead: the balancer
/// then routes around the endpoint, and can still fail open to it.
/// Cheap to clone; clones share the check.
///
/// ```no_run
/// use evenkeel_failover::{HealthCheck, HealthCheckLayer, Probe};
/// use tower::ServiceBuilder;
/// # async fn run() -> Result<(), evenkeel_core::ConfigError> {
/// # let client = tower::service_fn(|_: http::Request<()>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// # });
/// let health = HealthCheck::builder(Probe::tcp("10.0.0.7:443")).spawn()?;
/// let service = ServiceBuilder::new()
///     .layer(HealthCheckLayer::new(health))
///     .service(client);
/// # let _ = service;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HealthCheckLayer {
    handle: HealthHandle,
}

impl HealthCheckLayer {
    /// A layer reading `handle`'s verdict.
    pub fn new(handle: HealthHandle) -> Self {
        HealthCheckLayer { handle }
    }
}

impl<S> Layer<S> for HealthCheckLayer {
    type Service = HealthChecked<S>;

    fn layer(&self, inner: S) -> HealthChecked<S> {
        HealthChecked {
            inner,
            handle: self.handle.clone(),
        }
    }
}

/// A service that refuses requests while its health check reports the
/// endpoint unhealthy. Made by [`HealthCheckLayer`].
///
/// Errors are [`BoxError`]s: the inner service's, or [`Unhealthy`].
#[derive(Debug, Clone)]
pub struct HealthChecked<S> {
    inner: S,
    handle: HealthHandle,
}

impl<S> HealthChecked<S> {
    /// The health check's handle.
    pub fn handle(&self) -> &HealthHandle {
        &self.handle
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R> Service<R> for HealthChecked<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = HealthCheckedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: R) -> Self::Future {
        if self.handle.is_healthy() {
            HealthCheckedFuture {
                kind: Kind::Inner {
                    future: self.inner.call(request),
                },
            }
        } else {
            HealthCheckedFuture {
                kind: Kind::Unhealthy,
            }
        }
    }
}

pin_project! {
    /// The future returned by [`HealthChecked`].
    pub struct HealthCheckedFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Unhealthy,
    }
}

impl<F, T, E> Future for HealthCheckedFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx).map_err(Into::into),
            KindProj::Unhealthy => Poll::Ready(Err(Unhealthy::new().into())),
        }
    }
}

impl<F> fmt::Debug for HealthCheckedFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Unhealthy => "unhealthy",
        };
        f.debug_struct("HealthCheckedFuture")
            .field("kind", &kind)
            .finish()
    }
}
