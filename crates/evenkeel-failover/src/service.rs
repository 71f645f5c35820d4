//! [`Failover`]: the balancer service.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use evenkeel_core::body::{Replay, ReplayBody};
use evenkeel_core::event::Event;
use evenkeel_core::{BoxError, Classify, HttpClassifier};
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::builder::FailoverBuilder;
use crate::endpoint::{Entry, InFlight};
use crate::error::NoEndpointAvailable;
use crate::future::ResponseFuture;
use crate::handle::FailoverHandle;
use crate::registry::{NO_TIER, Registry};
use crate::select::{Pick, Skip};

/// A priority failover balancer over endpoints grouped in tiers.
///
/// Every request goes to the best tier (lowest number) that has an endpoint
/// available: not ejected, not failing its health check, not cooling down
/// after a 429 or on its quota. Within a tier, power of two choices on
/// requests in flight (or round robin). An attempt that fails in a way that
/// is safe to replay goes to the next available endpoint at once. See the
/// [crate docs](crate) for every rule.
///
/// Built by [`Failover::builder`]. Cheap to clone: clones share the
/// endpoints' health, cooldowns and in-flight counts (each clone holds its
/// own clone of each endpoint's service and readies it itself), so it needs
/// no `Buffer`. Change the endpoint set at run time through
/// [`handle`](Self::handle).
///
/// Endpoint services receive `http::Request<ReplayBody<B>>`: the caller's
/// body, kept as it is sent so it can be sent to another endpoint. Errors
/// are [`BoxError`]s: an endpoint's own error, or
/// [`NoEndpointAvailable`] from [`call`](Service::call) when nothing can
/// take the request. [`poll_ready`](Service::poll_ready) never fails.
///
/// # Panics
///
/// [`call`](Service::call) panics unless the last
/// [`poll_ready`](Service::poll_ready) returned `Ready`, as tower requires.
pub struct Failover<S, C = HttpClassifier> {
    registry: Arc<Registry<S>>,
    classifier: C,
    /// This clone's services, in the registry's order.
    local: Vec<Local<S>>,
    version: u64,
    /// The local index of the endpoint readied by `poll_ready`.
    ready: Option<usize>,
    /// Set by `poll_ready` when nothing can take the next request.
    reject: Option<NoEndpointAvailable>,
    /// Per local index: 1 busy, 2 failed readiness, during one `poll_ready`.
    scratch: Vec<u8>,
}

struct Local<S> {
    entry: Arc<Entry<S>>,
    service: S,
}

const BUSY: u8 = 1;
const FAILED: u8 = 2;

impl<S> Failover<S> {
    /// A builder with the defaults: outlier ejection after 5 failures in a
    /// row or a success rate under 50 %, for 30 s × times ejected (at most
    /// 300 s); cooldowns further away than 500 ms skipped; power of two
    /// choices within a tier.
    pub fn builder() -> FailoverBuilder<S> {
        FailoverBuilder::new()
    }
}

impl<S: Clone, C> Failover<S, C> {
    pub(crate) fn from_registry(registry: Arc<Registry<S>>, classifier: C) -> Self {
        let mut failover = Failover {
            registry,
            classifier,
            local: Vec::new(),
            version: u64::MAX,
            ready: None,
            reject: None,
            scratch: Vec::new(),
        };
        failover.sync();
        failover
    }

    /// The handle through which endpoints are added, removed, drained and
    /// watched. Shared by every clone.
    pub fn handle(&self) -> FailoverHandle<S> {
        FailoverHandle::new(Arc::clone(&self.registry))
    }

    /// Brings this clone's services in line with the registry.
    fn sync(&mut self) {
        self.registry.purge_drained();
        let version = self.registry.version();
        if version == self.version {
            return;
        }
        let entries = self.registry.snapshot();
        let ready_id = self.ready.take().map(|i| self.local[i].entry.meta.id);
        let mut old = std::mem::take(&mut self.local);
        let mut local = Vec::with_capacity(entries.len());
        for entry in entries.iter() {
            let service = match old.iter().position(|l| Arc::ptr_eq(&l.entry, entry)) {
                Some(i) => old.swap_remove(i).service,
                None => entry.service(),
            };
            if ready_id == Some(entry.meta.id) {
                self.ready = Some(local.len());
            }
            local.push(Local {
                entry: Arc::clone(entry),
                service,
            });
        }
        self.local = local;
        self.scratch = vec![0; self.local.len()];
        self.version = version;
    }
}

impl<S, C> Failover<S, C> {
    /// Notes the tier where traffic belongs; a return to a better tier is a
    /// failback.
    fn note_preferred(&self, index: usize) {
        let meta = &self.local[index].entry.meta;
        let tier = u64::from(meta.tier);
        let active = &self.registry.active_tier;
        if active.load(Ordering::Relaxed) == tier {
            return;
        }
        let previous = active.swap(tier, Ordering::Relaxed);
        if previous != NO_TIER && tier < previous {
            self.registry.failbacks.fetch_add(1, Ordering::Relaxed);
            self.registry
                .events
                .emit(|| Event::Failback { to: &meta.name });
            #[cfg(feature = "tracing")]
            tracing::info!(endpoint = &*meta.name, tier, "traffic failing back");
        }
    }
}

impl<S: Clone, C: Clone> Clone for Failover<S, C> {
    fn clone(&self) -> Self {
        Failover {
            registry: Arc::clone(&self.registry),
            classifier: self.classifier.clone(),
            local: self
                .local
                .iter()
                .map(|l| Local {
                    entry: Arc::clone(&l.entry),
                    service: l.service.clone(),
                })
                .collect(),
            version: self.version,
            ready: None,
            reject: None,
            scratch: vec![0; self.local.len()],
        }
    }
}

impl<S, C: fmt::Debug> fmt::Debug for Failover<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.local.iter().map(|l| &*l.entry.meta.name).collect();
        f.debug_struct("Failover")
            .field("endpoints", &names)
            .field("classifier", &self.classifier)
            .field(
                "ready",
                &self.ready.map(|i| &*self.local[i].entry.meta.name),
            )
            .finish_non_exhaustive()
    }
}

impl<S, B, RB, C> Service<Request<B>> for Failover<S, C>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    C: Classify<Response<RB>> + Clone,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.sync();
        self.reject = None;
        let now = self.registry.lazy_now();
        if let Some(i) = self.ready {
            let meta = &self.local[i].entry.meta;
            if matches!(
                self.registry.status(meta, &now),
                crate::outlier::Status::Available { .. }
            ) {
                return Poll::Ready(Ok(()));
            }
            // Readied, but no longer a place to send to. Keeping it
            // readied is harmless; it is simply not used.
            self.ready = None;
        }
        self.scratch.iter_mut().for_each(|s| *s = 0);
        loop {
            let scratch = &self.scratch;
            let selected = self.registry.select(
                &self.local,
                |l| &l.entry.meta,
                |i, _| match scratch[i] {
                    BUSY => Skip::Busy,
                    FAILED => Skip::Tried,
                    _ => Skip::No,
                },
                &now,
            );
            if let Some(preferred) = selected.preferred {
                self.note_preferred(preferred);
            }
            match selected.pick {
                Pick::One(i) => match self.local[i].service.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        self.ready = Some(i);
                        return Poll::Ready(Ok(()));
                    }
                    Poll::Pending => self.scratch[i] = BUSY,
                    Poll::Ready(Err(error)) => {
                        // A service that failed readiness may not be used
                        // again: take a fresh clone, and count the failure.
                        let error: BoxError = error.into();
                        let outcome = self.classifier.classify_error(&*error);
                        let local = &mut self.local[i];
                        self.registry.record(&local.entry.meta, &outcome, now.get());
                        local.service = local.entry.service();
                        self.scratch[i] = FAILED;
                    }
                },
                Pick::Busy => return Poll::Pending,
                Pick::None { cooling_until } => {
                    let until = (cooling_until != 0).then(|| self.registry.instant(cooling_until));
                    self.reject = Some(NoEndpointAvailable::new(until));
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if let Some(error) = self.reject.take() {
            return ResponseFuture::rejected(
                error,
                Arc::clone(&self.registry),
                self.classifier.clone(),
            );
        }
        let i = self
            .ready
            .take()
            .expect("Failover::call before poll_ready returned Ready");
        let guard = InFlight::new(Arc::clone(&self.local[i].entry.meta));
        let (parts, body) = request.into_parts();
        let mut replay = Replay::new(body, self.registry.config.replay_cap);
        let first = replay
            .body()
            .expect("a new replay always yields its first body");
        // The request head is kept only when another endpoint could take
        // it: it is what a failover resends.
        let kept = (self.local.len() > 1 && self.registry.config.max_attempts != Some(1))
            .then(|| parts.clone());
        let future = self.local[i]
            .service
            .call(Request::from_parts(parts, first));
        ResponseFuture::new(
            future,
            Arc::clone(&self.registry),
            self.classifier.clone(),
            guard,
            kept,
            replay,
        )
    }
}
