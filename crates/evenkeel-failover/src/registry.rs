//! The endpoint set shared by every clone of a balancer and its handle.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use evenkeel_core::clock;
use evenkeel_core::event::{EndpointState, Event, Events};
use evenkeel_core::rng::Jitter;
use tokio::time::Instant;

use crate::config::Config;
use crate::endpoint::{Endpoint, Entry, Meta, state_code};

/// No tier has been routed to yet.
pub(crate) const NO_TIER: u64 = u64::MAX;

fn ticks(epoch: Instant, instant: Instant) -> u64 {
    let nanos = instant.saturating_duration_since(epoch).as_nanos();
    u64::try_from(nanos)
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// The current instant in ticks, read from the clock at most once, and
/// only when something depends on it: a healthy endpoint with no ejection
/// or cooldown on record needs no clock at all.
#[derive(Debug)]
pub(crate) struct Now {
    /// The registry's epoch; `None` when the instant was given.
    epoch: Option<Instant>,
    /// 0 until read.
    ticks: Cell<u64>,
}

impl Now {
    /// An instant already read.
    pub(crate) fn at(ticks: u64) -> Self {
        Now {
            epoch: None,
            ticks: Cell::new(ticks.max(1)),
        }
    }

    #[inline]
    pub(crate) fn get(&self) -> u64 {
        match (self.ticks.get(), self.epoch) {
            (0, Some(epoch)) => {
                let now = ticks(epoch, clock::now());
                self.ticks.set(now);
                now
            }
            (now, _) => now,
        }
    }
}

pub(crate) struct Registry<S> {
    pub(crate) config: Config,
    pub(crate) events: Events,
    pub(crate) jitter: Jitter,
    /// Times are kept in atomics as nanoseconds after this instant, plus
    /// one, so that 0 can mean "not set".
    epoch: Instant,
    entries: RwLock<Arc<[Arc<Entry<S>>]>>,
    version: AtomicU64,
    next_id: AtomicU64,
    /// Endpoints draining: while positive, balancers look for drained ones
    /// to remove.
    pub(crate) draining: AtomicUsize,
    /// Serialises ejections, so that two endpoints failing at once cannot
    /// both be ejected when only one may be.
    pub(crate) eject_lock: Mutex<()>,
    pub(crate) rr: AtomicUsize,
    /// The best tier with an endpoint available, as last seen by a balancer.
    pub(crate) active_tier: AtomicU64,
    pub(crate) failovers: AtomicU64,
    pub(crate) failbacks: AtomicU64,
    pub(crate) ejections: AtomicU64,
}

impl<S> Registry<S> {
    pub(crate) fn new(
        config: Config,
        events: Events,
        jitter: Jitter,
        endpoints: Vec<Endpoint<S>>,
    ) -> Self {
        let registry = Registry {
            config,
            events,
            jitter,
            epoch: clock::now(),
            entries: RwLock::new(Arc::from(Vec::new())),
            version: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            draining: AtomicUsize::new(0),
            eject_lock: Mutex::new(()),
            rr: AtomicUsize::new(0),
            active_tier: AtomicU64::new(NO_TIER),
            failovers: AtomicU64::new(0),
            failbacks: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
        };
        let entries: Vec<_> = endpoints.into_iter().map(|e| registry.entry(e)).collect();
        registry.publish(entries);
        registry
    }

    /// The current instant in ticks.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.ticks(clock::now())
    }

    /// The current instant, read from the clock only if it is needed.
    #[inline]
    pub(crate) fn lazy_now(&self) -> Now {
        Now {
            epoch: Some(self.epoch),
            ticks: Cell::new(0),
        }
    }

    /// `instant` in ticks (instants before the epoch become the epoch).
    #[inline]
    pub(crate) fn ticks(&self, instant: Instant) -> u64 {
        ticks(self.epoch, instant)
    }

    /// The instant `ticks` stands for.
    pub(crate) fn instant(&self, ticks: u64) -> Instant {
        // A server can ask for an absurd wait; saturate rather than panic.
        const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
        let after = Duration::from_nanos(ticks.saturating_sub(1)).min(FAR);
        self.epoch.checked_add(after).unwrap_or(self.epoch)
    }

    pub(crate) fn snapshot(&self) -> Arc<[Arc<Entry<S>>]> {
        Arc::clone(&self.entries.read().unwrap_or_else(|p| p.into_inner()))
    }

    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn entry(&self, endpoint: Endpoint<S>) -> Arc<Entry<S>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let meta = Meta::new(
            id,
            endpoint.name,
            endpoint.tier,
            endpoint.cooldown,
            endpoint.health,
            self.now(),
        );
        Arc::new(Entry {
            meta: Arc::new(meta),
            service: Mutex::new(endpoint.service),
        })
    }

    /// Replaces the endpoint list: sorted by tier, then by the order the
    /// endpoints were added.
    fn publish(&self, mut entries: Vec<Arc<Entry<S>>>) {
        entries.sort_by_key(|e| (e.meta.tier, e.meta.id));
        let mut guard = self.entries.write().unwrap_or_else(|p| p.into_inner());
        *guard = Arc::from(entries);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    fn edit<R>(&self, f: impl FnOnce(&mut Vec<Arc<Entry<S>>>) -> R) -> R {
        // The write lock is held for the copy and the swap together, so
        // concurrent edits cannot lose one another.
        let mut guard = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let mut entries: Vec<_> = guard.iter().cloned().collect();
        let result = f(&mut entries);
        entries.sort_by_key(|e| (e.meta.tier, e.meta.id));
        *guard = Arc::from(entries);
        self.version.fetch_add(1, Ordering::AcqRel);
        result
    }

    /// Adds `endpoint`, replacing any endpoint of the same name. Returns
    /// whether one was replaced.
    pub(crate) fn insert(&self, endpoint: Endpoint<S>) -> bool {
        let entry = self.entry(endpoint);
        let removed = self.edit(|entries| {
            let old = entries
                .iter()
                .position(|e| e.meta.name == entry.meta.name)
                .map(|i| entries.remove(i));
            entries.push(Arc::clone(&entry));
            old
        });
        if let Some(old) = &removed {
            self.retire(&old.meta);
        }
        self.report_state(&entry.meta, EndpointState::Healthy, true);
        removed.is_some()
    }

    /// Removes the endpoint named `name` at once; requests in flight on it
    /// finish. Returns whether it existed.
    pub(crate) fn remove(&self, name: &str) -> bool {
        let removed = self.edit(|entries| {
            entries
                .iter()
                .position(|e| &*e.meta.name == name)
                .map(|i| entries.remove(i))
        });
        match removed {
            Some(old) => {
                self.retire(&old.meta);
                true
            }
            None => false,
        }
    }

    fn retire(&self, meta: &Meta) {
        if meta.draining.swap(true, Ordering::AcqRel) {
            self.draining.fetch_sub(1, Ordering::AcqRel);
        }
        meta.removed.store(true, Ordering::Release);
        self.report_state(meta, EndpointState::Removed, true);
    }

    /// Stops routing new requests to `name`; it is removed once its
    /// requests in flight finish. Returns whether it existed (and was not
    /// draining already).
    pub(crate) fn drain(&self, name: &str) -> bool {
        let entries = self.snapshot();
        let Some(entry) = entries.iter().find(|e| &*e.meta.name == name) else {
            return false;
        };
        if entry.meta.draining.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.draining.fetch_add(1, Ordering::AcqRel);
        self.report_state(&entry.meta, EndpointState::Draining, true);
        self.purge_drained();
        true
    }

    /// Removes draining endpoints that have nothing in flight.
    pub(crate) fn purge_drained(&self) {
        if self.draining.load(Ordering::Acquire) == 0 {
            return;
        }
        let entries = self.snapshot();
        for entry in entries.iter() {
            let m = &entry.meta;
            if m.draining.load(Ordering::Acquire)
                && !m.removed.load(Ordering::Acquire)
                && m.in_flight() == 0
            {
                self.remove(&m.name);
            }
        }
    }

    /// Records `state` as the endpoint's reported state, emitting an event
    /// if it changed (or always, with `force`). Returns the previous state
    /// code.
    pub(crate) fn report_state(&self, meta: &Meta, state: EndpointState, force: bool) -> u8 {
        let code = state_code(state);
        if !force && meta.reported.load(Ordering::Relaxed) == code {
            return code;
        }
        let old = meta.reported.swap(code, Ordering::AcqRel);
        if old != code || force {
            self.events.emit(|| Event::EndpointState {
                endpoint: &meta.name,
                state,
            });
            #[cfg(feature = "tracing")]
            tracing::debug!(
                endpoint = &*meta.name,
                state = state.as_str(),
                "endpoint state changed"
            );
        }
        old
    }
}

impl<S> fmt::Debug for Registry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("endpoints", &self.snapshot())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
