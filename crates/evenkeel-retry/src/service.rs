use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use evenkeel_core::body::ReplayBody;
use evenkeel_core::{BoxError, Classify, HttpClassifier};
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::budget::RetryBudget;
use crate::config::Config;
use crate::future::ResponseFuture;
use crate::layer::RetryLayer;
use crate::policy::{DefaultPolicy, Policy};

/// A service that retries requests the way the server asks.
///
/// Made by [`RetryLayer`]; see the [crate docs](crate) for the rules.
///
/// The inner service receives `http::Request<ReplayBody<B>>`: the caller's
/// body, kept as it is sent so it can be sent again. Responses come back as
/// `http::Response<ResponseBody<RB>>`. Errors are [`BoxError`]s: the inner
/// service's own error, or
/// [`DeadlineExceeded`](evenkeel_core::error::DeadlineExceeded) /
/// [`TimedOut`](evenkeel_core::error::TimedOut) from this layer.
pub struct Retry<S, C = HttpClassifier, P = DefaultPolicy> {
    inner: S,
    config: Arc<Config<C, P>>,
}

impl<S> Retry<S> {
    /// Wraps `inner` with the default configuration
    /// (see [`RetryLayer::new`]).
    pub fn new(inner: S) -> Self {
        tower_layer::Layer::layer(&RetryLayer::new(), inner)
    }
}

impl<S, C, P> Retry<S, C, P> {
    pub(crate) fn from_config(inner: S, config: Arc<Config<C, P>>) -> Self {
        Retry { inner, config }
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

    /// The retry budget this service draws from (shared with its layer and
    /// every clone).
    pub fn budget(&self) -> &RetryBudget {
        &self.config.budget
    }
}

impl<S: Clone, C, P> Clone for Retry<S, C, P> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug, P: fmt::Debug> fmt::Debug for Retry<S, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("config", &*self.config)
            .finish()
    }
}

impl<S, B, RB, C, P> Service<Request<B>> for Retry<S, C, P>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    RB: Body,
    RB::Error: Into<BoxError>,
    C: Classify<Response<RB>>,
    P: Policy,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B, RB, C, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The readied service goes into the future; a fresh clone stays
        // behind and must be readied again before the next call.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::start(service, Arc::clone(&self.config), request)
    }
}
