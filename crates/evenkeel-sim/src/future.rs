//! The future the in-process [`Sim`](crate::Sim) service returns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;

use crate::error::SimError;

type Inner = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, SimError>> + Send>>;

/// The response future of [`Sim`](crate::Sim)'s `Service` implementation.
///
/// Dropping it before it completes counts the request as cancelled and frees
/// its in-flight slot.
pub struct ResponseFuture {
    inner: Inner,
}

impl ResponseFuture {
    pub(crate) fn new<F>(fut: F) -> Self
    where
        F: Future<Output = Result<Response<Full<Bytes>>, SimError>> + Send + 'static,
    {
        Self {
            inner: Box::pin(fut),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Full<Bytes>>, SimError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
