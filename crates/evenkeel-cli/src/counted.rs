//! A service wrapper that counts attempts and statuses on the wire.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use evenkeel::core::BoxError;
use tower::Service;

/// What went over the wire, across every clone.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    pub(crate) attempts: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
}

impl Wire {
    pub(crate) fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    pub(crate) fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }
}

/// Counts every attempt sent and every 429 received by `inner`.
#[derive(Debug, Clone)]
pub(crate) struct Counted<S> {
    inner: S,
    wire: Arc<Wire>,
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S, wire: Arc<Wire>) -> Self {
        Counted { inner, wire }
    }
}

impl<S, B, RB> Service<http::Request<B>> for Counted<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<RB>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.wire.attempts.fetch_add(1, Ordering::Relaxed);
        let wire = Arc::clone(&self.wire);
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await.map_err(Into::into)?;
            if response.status() == http::StatusCode::TOO_MANY_REQUESTS {
                wire.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            Ok(response)
        })
    }
}
