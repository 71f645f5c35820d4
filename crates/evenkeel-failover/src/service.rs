//! [`Failover`]: the balancer service.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use evenkeel_core::body::{Keep, ReplayBody, Reuse, Wrap};
use evenkeel_core::event::Event;
use evenkeel_core::ext::{AttemptContext, keep_head};
use evenkeel_core::{BoxError, Classify, HttpClassifier};
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::builder::FailoverBuilder;
use crate::endpoint::{Entry, InFlight};
use crate::error::NoEndpointAvailable;
use crate::future::ResponseFuture;
use crate::handle::FailoverHandle;
use crate::outlier::Status;
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
/// Built by [`Failover::builder`]. Cheap to clone, without allocating:
/// clones share the endpoints' health, cooldowns and in-flight counts, and
/// each clone readies its own clones of the endpoint services it uses, so
/// it needs no `Buffer`. Change the endpoint set at run time through
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
pub struct Failover<S, C = HttpClassifier, K = Wrap> {
    registry: Arc<Registry<S>>,
    classifier: C,
    /// The endpoints, in routing order, as of `version`.
    entries: Arc<[Arc<Entry<S>>]>,
    version: u64,
    /// The endpoint service this clone readied or used last.
    slot: Option<Held<S>>,
    /// The other endpoint services this clone holds: ones that were busy
    /// (kept so that they wake this clone when ready) and ones it moved
    /// away from. Empty, and unallocated, in a fresh clone.
    cache: Vec<Held<S>>,
    /// Whether the service in `slot` is ready for a call.
    ready: bool,
    /// How a request's body is kept for another endpoint.
    keep: PhantomData<fn() -> K>,
    /// Set by `poll_ready` when nothing can take the next request now.
    reject: Option<Reject>,
}

/// Why the next request cannot be sent at once.
enum Reject {
    /// Nothing can take it.
    Empty,
    /// Every endpoint is cooling down; this one (by index) is back first.
    Cooling { index: usize, until: u64 },
}

struct Held<S> {
    entry: Arc<Entry<S>>,
    service: S,
}

/// Marks on endpoints (by index) during one `poll_ready`.
#[derive(Default)]
struct Marks {
    busy: u64,
    failed: u64,
    more: Vec<(usize, Skip)>,
}

impl Marks {
    fn set(&mut self, i: usize, skip: Skip) {
        match (i < 64, skip) {
            (true, Skip::Busy) => self.busy |= 1 << i,
            (true, _) => self.failed |= 1 << i,
            (false, _) => self.more.push((i, skip)),
        }
    }

    fn get(&self, i: usize) -> Skip {
        if i < 64 {
            if self.busy & (1 << i) != 0 {
                Skip::Busy
            } else if self.failed & (1 << i) != 0 {
                Skip::Tried
            } else {
                Skip::No
            }
        } else {
            self.more
                .iter()
                .find(|(j, _)| *j == i)
                .map_or(Skip::No, |(_, s)| *s)
        }
    }
}

impl<S> Failover<S> {
    /// A builder with the defaults: outlier ejection after 5 failures in a
    /// row or a success rate under 50 %, for 30 s × times ejected (at most
    /// 300 s); cooldowns further away than 500 ms skipped; power of two
    /// choices within a tier.
    pub fn builder() -> FailoverBuilder<S> {
        FailoverBuilder::new()
    }
}

impl<S: Clone, C, K> Failover<S, C, K> {
    pub(crate) fn from_registry(registry: Arc<Registry<S>>, classifier: C) -> Self {
        let version = registry.version();
        let entries = registry.snapshot();
        Failover {
            registry,
            classifier,
            entries,
            version,
            slot: None,
            cache: Vec::new(),
            ready: false,
            keep: PhantomData,
            reject: None,
        }
    }

    /// Brings this clone's view of the endpoints in line with the registry,
    /// and lets go of the services of endpoints that are gone.
    fn sync(&mut self) {
        self.registry.purge_drained();
        let version = self.registry.version();
        if version == self.version {
            return;
        }
        self.entries = self.registry.snapshot();
        self.version = version;
        let entries = &self.entries;
        let present = |held: &Held<S>| entries.iter().any(|e| Arc::ptr_eq(e, &held.entry));
        if self.slot.as_ref().is_some_and(|held| !present(held)) {
            self.slot = None;
            self.ready = false;
        }
        self.cache.retain(present);
    }

    /// Puts the service of `entry` in the slot: the one already there, one
    /// held in the cache, or a fresh clone.
    fn hold(&mut self, entry: &Arc<Entry<S>>) {
        if self
            .slot
            .as_ref()
            .is_some_and(|held| Arc::ptr_eq(&held.entry, entry))
        {
            return;
        }
        let held = match self
            .cache
            .iter()
            .position(|held| Arc::ptr_eq(&held.entry, entry))
        {
            Some(i) => self.cache.swap_remove(i),
            None => Held {
                entry: Arc::clone(entry),
                service: entry.service(),
            },
        };
        if let Some(previous) = self.slot.replace(held) {
            self.cache.push(previous);
        }
        self.ready = false;
    }
}

impl<S, C> Failover<S, C> {
    /// The balancer below a resending layer (the retry layer): the
    /// [`ReplayBody`] that layer sends is kept as it is, its source shared,
    /// rather than wrapped again, so endpoint services receive
    /// `Request<ReplayBody<B>>` of the caller's `B`.
    pub fn reuse_bodies(self) -> Failover<S, C, Reuse> {
        Failover {
            registry: self.registry,
            classifier: self.classifier,
            entries: self.entries,
            version: self.version,
            slot: self.slot,
            cache: self.cache,
            ready: self.ready,
            keep: PhantomData,
            reject: self.reject,
        }
    }
}

impl<S, C, K> Failover<S, C, K> {
    /// The handle through which endpoints are added, removed, drained and
    /// watched. Shared by every clone.
    pub fn handle(&self) -> FailoverHandle<S> {
        FailoverHandle::new(Arc::clone(&self.registry))
    }

    /// Notes the tier where traffic belongs; a return to a better tier is a
    /// failback.
    fn note_preferred(&self, index: usize) {
        let meta = &self.entries[index].meta;
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

impl<S, C: Clone, K> Clone for Failover<S, C, K> {
    /// A clone sharing everything but readiness: it holds no endpoint
    /// service until its first `poll_ready`.
    fn clone(&self) -> Self {
        Failover {
            registry: Arc::clone(&self.registry),
            classifier: self.classifier.clone(),
            entries: Arc::clone(&self.entries),
            version: self.version,
            slot: None,
            cache: Vec::new(),
            ready: false,
            keep: PhantomData,
            reject: None,
        }
    }
}

impl<S, C: fmt::Debug, K> fmt::Debug for Failover<S, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|e| &*e.meta.name).collect();
        f.debug_struct("Failover")
            .field("endpoints", &names)
            .field("classifier", &self.classifier)
            .field(
                "ready",
                &self
                    .slot
                    .as_ref()
                    .filter(|_| self.ready)
                    .map(|held| &*held.entry.meta.name),
            )
            .finish_non_exhaustive()
    }
}

impl<S, B, RB, C, K> Service<Request<B>> for Failover<S, C, K>
where
    K: Keep<B>,
    S: Service<Request<ReplayBody<K::Source>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    K::Source: Body + Unpin,
    <K::Source as Body>::Error: Into<BoxError>,
    C: Classify<Response<RB>> + Clone,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, K::Source, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.sync();
        self.reject = None;
        let now = self.registry.lazy_now();
        if self.ready {
            let held = self.slot.as_ref().expect("a readied service is held");
            if matches!(
                self.registry.status(&held.entry.meta, &now),
                Status::Available { .. }
            ) {
                return Poll::Ready(Ok(()));
            }
            // Readied, but no longer a place to send to. It stays held,
            // readied, and is simply not used.
            self.ready = false;
        }
        let mut marks = Marks::default();
        loop {
            let selected =
                self.registry
                    .select(&self.entries, |e| &e.meta, |i, _| marks.get(i), &now);
            if let Some(preferred) = selected.preferred {
                self.note_preferred(preferred);
            }
            match selected.pick {
                Pick::One(i) => {
                    let held_already = self
                        .slot
                        .as_ref()
                        .is_some_and(|held| Arc::ptr_eq(&held.entry, &self.entries[i]));
                    if !held_already {
                        let entry = Arc::clone(&self.entries[i]);
                        self.hold(&entry);
                    }
                    let held = self.slot.as_mut().expect("held just now");
                    match held.service.poll_ready(cx) {
                        Poll::Ready(Ok(())) => {
                            self.ready = true;
                            return Poll::Ready(Ok(()));
                        }
                        Poll::Pending => marks.set(i, Skip::Busy),
                        Poll::Ready(Err(error)) => {
                            // A service that failed readiness may not be
                            // used again: drop it (the next use clones a
                            // fresh one), and count the failure.
                            let error: BoxError = error.into();
                            let outcome = self.classifier.classify_error(&*error);
                            self.registry.record(&held.entry.meta, &outcome, now.get());
                            self.slot = None;
                            marks.set(i, Skip::Tried);
                        }
                    }
                }
                Pick::Busy => return Poll::Pending,
                Pick::None { cooling } => {
                    self.reject = Some(match cooling {
                        Some((index, until)) => Reject::Cooling { index, until },
                        None => Reject::Empty,
                    });
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self.reject.take() {
            None => {}
            Some(Reject::Empty) => {
                return ResponseFuture::rejected(
                    NoEndpointAvailable::empty(),
                    Arc::clone(&self.registry),
                    self.classifier.clone(),
                );
            }
            Some(Reject::Cooling { index, until }) => {
                let (parts, body) = request.into_parts();
                return ResponseFuture::cooling(
                    parts,
                    K::keep(body, self.registry.config.replay_cap),
                    &self.entries[index].meta.name,
                    self.registry.instant(until),
                    Arc::clone(&self.registry),
                    self.classifier.clone(),
                );
            }
        }
        assert!(
            std::mem::take(&mut self.ready),
            "Failover::call before poll_ready returned Ready"
        );
        let held = self.slot.as_mut().expect("a readied service is held");
        let guard = InFlight::new(Arc::clone(&held.entry.meta));
        let (mut parts, body) = request.into_parts();
        let context = AttemptContext::in_extensions(&parts.extensions).cloned();
        let (first, replay) = K::keep(body, self.registry.config.replay_cap);
        // The request head is kept only when another endpoint could take
        // it: it is what a failover resends.
        let kept = (self.entries.len() > 1 && self.registry.config.max_attempts != Some(1))
            .then(|| keep_head(&mut parts));
        let future = held.service.call(Request::from_parts(parts, first));
        ResponseFuture::new(
            future,
            Arc::clone(&self.registry),
            self.classifier.clone(),
            guard,
            kept,
            context,
            replay,
        )
    }
}
