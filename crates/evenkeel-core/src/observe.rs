//! The layer that judges each attempt's answer once, at the bottom of an
//! endpoint's stack.
//!
//! [`Observe`] sits right above the connector (or the attempt timeout over
//! it). When a request carries an [`AttemptContext`], it classifies the
//! answer (response or error) with the stack's classifier, reads the
//! response's rate-limit headers, and leaves the [`Verdict`] in the context.
//! Every evenkeel layer above (limit, quota, failover, metrics, retry) then
//! reads that verdict instead of classifying and parsing the same answer
//! again. A request without a context passes through untouched: the layers
//! above, if any, judge for themselves.
//!
//! ```
//! use evenkeel_core::HttpClassifier;
//! use evenkeel_core::ext::AttemptContext;
//! use evenkeel_core::observe::ObserveLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # tokio_test::block_on(async {
//! let mut svc = ServiceBuilder::new()
//!     .layer(ObserveLayer::new(HttpClassifier::new()))
//!     .service_fn(|_req: http::Request<()>| async {
//!         let response = http::Response::builder()
//!             .status(429)
//!             .header("retry-after", "3")
//!             .body(())
//!             .unwrap();
//!         Ok::<_, std::convert::Infallible>(response)
//!     });
//! let context = AttemptContext::new(1, None);
//! let mut request = http::Request::new(());
//! request.extensions_mut().insert(context.clone());
//! svc.ready().await.unwrap().call(request).await.unwrap();
//! let outcome = context.outcome().unwrap();
//! assert_eq!(outcome.server_wait(), Some(std::time::Duration::from_secs(3)));
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use evenkeel_headers::RateLimits;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::ext::AttemptContext;
use crate::verdict::Verdict;
use crate::{BoxError, Classify, clock};

/// Makes [`Observe`] services. Cheap to clone: the classifier is shared.
pub struct ObserveLayer<C> {
    classifier: Arc<C>,
}

impl<C> ObserveLayer<C> {
    /// Judges answers with `classifier` (the stack's classifier: HTTP or
    /// gRPC).
    pub fn new(classifier: C) -> Self {
        ObserveLayer {
            classifier: Arc::new(classifier),
        }
    }
}

impl<C> Clone for ObserveLayer<C> {
    fn clone(&self) -> Self {
        ObserveLayer {
            classifier: Arc::clone(&self.classifier),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for ObserveLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserveLayer")
            .field("classifier", &self.classifier)
            .finish()
    }
}

impl<S, C> Layer<S> for ObserveLayer<C> {
    type Service = Observe<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            classifier: Arc::clone(&self.classifier),
        }
    }
}

/// Judges each attempt's answer once and leaves the [`Verdict`] in the
/// request's [`AttemptContext`]. See the [module docs](self).
pub struct Observe<S, C> {
    inner: S,
    classifier: Arc<C>,
}

impl<S, C> Observe<S, C> {
    /// Wraps `inner`, judging its answers with `classifier`.
    pub fn new(inner: S, classifier: C) -> Self {
        ObserveLayer::new(classifier).layer(inner)
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

impl<S: Clone, C> Clone for Observe<S, C> {
    fn clone(&self) -> Self {
        Observe {
            inner: self.inner.clone(),
            classifier: Arc::clone(&self.classifier),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for Observe<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observe")
            .field("inner", &self.inner)
            .field("classifier", &self.classifier)
            .finish()
    }
}

impl<S, C, B, RB> Service<Request<B>> for Observe<S, C>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    C: Classify<Response<RB>>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ObserveFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let watch = AttemptContext::of(&request).map(|context| Watch {
            attempt: context.attempt(),
            context: context.clone(),
            classifier: Arc::clone(&self.classifier),
        });
        ObserveFuture {
            inner: self.inner.call(request),
            watch,
        }
    }
}

struct Watch<C> {
    context: AttemptContext,
    attempt: u32,
    classifier: Arc<C>,
}

pin_project! {
    /// The future of [`Observe`]: the inner future, whose answer is judged
    /// when it arrives.
    pub struct ObserveFuture<F, C> {
        #[pin]
        inner: F,
        watch: Option<Watch<C>>,
    }
}

impl<F, C, RB, E> Future for ObserveFuture<F, C>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
    C: Classify<Response<RB>>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        if let Some(watch) = this.watch.take() {
            let verdict = match &result {
                Ok(response) => {
                    let outcome = watch.classifier.classify_response(response);
                    let headers = response.headers();
                    let limits = if headers.is_empty() {
                        RateLimits::new()
                    } else {
                        evenkeel_headers::rate_limits(headers, clock::system_now())
                    };
                    Verdict::response(outcome, limits)
                }
                Err(error) => {
                    let outcome = watch.classifier.classify_error(&**error);
                    Verdict::error(outcome)
                }
            };
            watch.context.record(watch.attempt, verdict);
        }
        Poll::Ready(result)
    }
}

impl<F, C> fmt::Debug for ObserveFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserveFuture")
            .field("watching", &self.watch.is_some())
            .finish_non_exhaustive()
    }
}
