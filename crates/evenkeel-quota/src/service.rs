//! The quota service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use evenkeel_core::BoxError;
use evenkeel_core::ext::Deadline;
use http::{Request, Response};
use tower_service::Service;

use crate::cost::{Estimate, PerRequest};
use crate::future::ResponseFuture;
use crate::gate::Shared;
use crate::handle::QuotaHandle;
use crate::key::{Authority, KeyFn};
use crate::store::{MemoryStore, QuotaStore};

/// Paces requests to an inner service so they stay inside the server's
/// quotas. Built by [`QuotaLayer`](crate::QuotaLayer); see the
/// [crate docs](crate).
///
/// Clones share the quota state (and with it the queue and the cooldown of
/// every key).
pub struct Quota<S, K = Authority, C = PerRequest, St: QuotaStore = MemoryStore> {
    inner: S,
    pub(crate) shared: Arc<Shared<St>>,
    pub(crate) key: Arc<K>,
    pub(crate) cost: Arc<C>,
}

impl<S, K, C, St: QuotaStore> Quota<S, K, C, St> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<St>>, key: Arc<K>, cost: Arc<C>) -> Self {
        Quota {
            inner,
            shared,
            key,
            cost,
        }
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

    /// A handle on the shared quota state: snapshots and cooldowns.
    pub fn handle(&self) -> QuotaHandle<St> {
        QuotaHandle::new(Arc::clone(&self.shared))
    }
}

impl<S: Clone, K, C, St: QuotaStore> Clone for Quota<S, K, C, St> {
    fn clone(&self) -> Self {
        Quota {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            key: Arc::clone(&self.key),
            cost: Arc::clone(&self.cost),
        }
    }
}

impl<S: fmt::Debug, K: fmt::Debug, C: fmt::Debug, St: QuotaStore> fmt::Debug
    for Quota<S, K, C, St>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("inner", &self.inner)
            .field("key", &self.key)
            .field("estimator", &self.cost)
            .field("shared", &self.shared)
            .finish()
    }
}

impl<S, B, RB, K, C, St> Service<Request<B>> for Quota<S, K, C, St>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    K: KeyFn<B>,
    C: Estimate<B>,
    St: QuotaStore,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B, St>;

    /// Always ready: waiting for quota, and then readying the inner
    /// service, happen in the response future. The inner service is readied
    /// only once the request has its quota, so a concurrency permit below
    /// is never held while a request waits for quota (and another key's
    /// request may take it meanwhile).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let entry = self.shared.entry(&self.key.key(&request));
        let cost = self.cost.estimate(&request);
        let deadline = Deadline::of(&request);
        // The future readies its own clone once the request is admitted.
        let service = self.inner.clone();
        ResponseFuture::new(
            service,
            request,
            Arc::clone(&self.shared),
            entry,
            cost,
            deadline,
        )
    }
}
