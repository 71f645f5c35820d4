//! [`EstimateLayer`]: a cost estimated from the whole body, attached to the
//! request for the quota layer below.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body_util::{Empty, Full};
use tower_layer::Layer;
use tower_service::Service;

use super::{Cost, EstimateBody};

/// A request body whose whole content can be read without consuming it:
/// `Full<Bytes>` (its chunk shared, not copied), `String`, `Empty`.
pub trait WholeBody {
    /// Calls `f` with the whole body, leaving the body as it was. `None`
    /// when the body is not complete at once (it is left untouched then).
    fn with_whole<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R>;
}

impl WholeBody for Full<Bytes> {
    fn with_whole<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        // A `Full` holds its one chunk until it is polled (none when empty or
        // already polled). A clone shares that chunk (a `Bytes` clone counts
        // a reference, it copies nothing) and gives it up, so the body is read
        // without polling it and stays exactly as it was.
        let data = self.clone().into_inner().unwrap_or_default();
        Some(f(&data))
    }
}

impl WholeBody for String {
    fn with_whole<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        Some(f(self.as_bytes()))
    }
}

impl WholeBody for Empty<Bytes> {
    fn with_whole<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        Some(f(&[]))
    }
}

/// Estimates each request's cost from its whole body and attaches it as a
/// [`Cost`] extension, for a quota layer below. Place it *outside* the retry
/// layer, where the body is still the caller's; see the
/// [module docs](super).
///
/// A request that already carries a `Cost` extension, or whose body is not
/// complete at once, passes unchanged.
///
/// ```
/// use evenkeel_quota::cost::{Cost, EstimateLayer, Llm};
/// use http_body_util::Full;
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// # tokio_test::block_on(async {
/// let mut svc = ServiceBuilder::new()
///     .layer(EstimateLayer::new(Llm::new()))
///     .service_fn(|req: http::Request<Full<bytes::Bytes>>| async move {
///         let cost = *req.extensions().get::<Cost>().unwrap();
///         Ok::<_, std::convert::Infallible>(cost.output_tokens())
///     });
/// let req = http::Request::new(Full::new(bytes::Bytes::from_static(br#"{"max_tokens":64}"#)));
/// assert_eq!(svc.ready().await.unwrap().call(req).await.unwrap(), 64);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct EstimateLayer<E> {
    estimator: Arc<E>,
}

impl<E> EstimateLayer<E> {
    /// A layer estimating with `estimator`.
    pub fn new(estimator: E) -> Self {
        EstimateLayer {
            estimator: Arc::new(estimator),
        }
    }
}

impl<S, E> Layer<S> for EstimateLayer<E> {
    type Service = EstimateService<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        EstimateService {
            inner,
            estimator: Arc::clone(&self.estimator),
        }
    }
}

/// The service of [`EstimateLayer`].
#[derive(Debug, Clone)]
pub struct EstimateService<S, E> {
    inner: S,
    estimator: Arc<E>,
}

impl<S, E> EstimateService<S, E> {
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

impl<S, E, B> Service<Request<B>> for EstimateService<S, E>
where
    S: Service<Request<B>>,
    E: EstimateBody,
    B: WholeBody,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if request.extensions().get::<Cost>().is_none() {
            let (parts, mut body) = request.into_parts();
            let cost = body.with_whole(|bytes| self.estimator.estimate_body(&parts.headers, bytes));
            request = Request::from_parts(parts, body);
            if let Some(cost) = cost {
                request.extensions_mut().insert(cost);
            }
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn whole_full_body_is_left_intact() {
        let mut body = Full::new(Bytes::from_static(b"hello"));
        assert_eq!(body.with_whole(<[u8]>::len), Some(5));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        let mut empty = Full::new(Bytes::new());
        assert_eq!(empty.with_whole(<[u8]>::len), Some(0));
        assert_eq!(empty.with_whole(<[u8]>::len), Some(0));
    }
}
