use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use evenkeel_core::ext::{Attempt, AttemptContext};
use evenkeel_core::{BoxError, Classify, HttpClassifier, clock};
use http::{Request, Response};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::layer::{MetricsLayer, Scope, Shared};
use crate::record::Pending;

/// A service that records the metrics of every request through it.
///
/// Made by [`MetricsLayer`]; see the [crate docs](crate) for what it
/// records.
///
/// Errors are converted to [`BoxError`] so they can be classified (the
/// chain walk of [`classify_error`](evenkeel_core::classify_error) needs a
/// `dyn Error`, and a generic error type cannot be borrowed as one when it
/// is itself a `BoxError`). Nothing is added: the error is the inner
/// service's, boxed if it was not already, and
/// `err.downcast_ref::<E>()` gets it back.
pub struct Metrics<S, C = HttpClassifier> {
    inner: S,
    shared: Arc<Shared<C>>,
}

impl<S> Metrics<S> {
    /// Wraps `inner` with the defaults of [`MetricsLayer::new`].
    pub fn new(inner: S) -> Self {
        tower_layer::Layer::layer(&MetricsLayer::new(), inner)
    }
}

impl<S, C> Metrics<S, C> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<C>>) -> Self {
        Metrics { inner, shared }
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

impl<S: Clone, C> Clone for Metrics<S, C> {
    fn clone(&self) -> Self {
        Metrics {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for Metrics<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("inner", &self.inner)
            .field("instruments", &self.shared.instruments)
            .field("classifier", &self.shared.classifier)
            .finish()
    }
}

impl<S, C, B, RB> Service<Request<B>> for Metrics<S, C>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    C: Classify<Response<RB>>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let start = clock::now();
        let instruments = &self.shared.instruments;
        let attempt = |ext: &http::Extensions| match instruments.scope {
            Scope::Attempt => Attempt::in_extensions(ext),
            Scope::Call => 1,
        };
        let (key, request) = if instruments.has_route() {
            let (parts, body) = request.into_parts();
            let key = instruments.key(
                &parts.method,
                &parts.uri,
                &parts.headers,
                attempt(&parts.extensions),
                Some(&parts),
            );
            (key, Request::from_parts(parts, body))
        } else {
            let key = instruments.key(
                request.method(),
                request.uri(),
                request.headers(),
                attempt(request.extensions()),
                None,
            );
            (key, request)
        };
        // Where the verdict on the answer is left by the layer that judged
        // it below.
        let context = AttemptContext::of(&request).cloned();
        let future = self.inner.call(request);
        // In flight from here: after the inner call, which may panic.
        let pending = Pending::new(instruments.start(key), start);
        ResponseFuture::new(future, Arc::clone(&self.shared), pending, context)
    }
}
