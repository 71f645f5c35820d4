//! Reading the layer's state: snapshots, and cooldowns for balancers.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use evenkeel_core::clock;
use evenkeel_core::cooldown::Cooldown;
use tokio::time::Instant;

use crate::gate::{Entry, Shared};
use crate::store::{MemoryStore, QuotaStore, ResourceSnapshot};

/// A handle on a quota layer's shared state, from
/// [`QuotaLayer::handle`](crate::QuotaLayer::handle) or
/// [`Quota::handle`](crate::Quota::handle). Cheap to clone.
///
/// It implements [`Cooldown`] for the layer as a whole: a balancer that
/// puts one quota layer in front of each endpoint can route around an
/// endpoint that has no room. [`for_key`](Self::for_key) gives the same
/// for one key.
pub struct QuotaHandle<St: QuotaStore = MemoryStore> {
    shared: Arc<Shared<St>>,
}

impl<St: QuotaStore> Clone for QuotaHandle<St> {
    fn clone(&self) -> Self {
        QuotaHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<St: QuotaStore> fmt::Debug for QuotaHandle<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaHandle")
            .field("shared", &self.shared)
            .finish()
    }
}

impl<St: QuotaStore> QuotaHandle<St> {
    pub(crate) fn new(shared: Arc<Shared<St>>) -> Self {
        QuotaHandle { shared }
    }

    /// The store behind the layer.
    pub fn store(&self) -> &St {
        &self.shared.store
    }

    /// The keys the layer knows.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .shared
            .all()
            .iter()
            .map(|e| e.name.to_string())
            .collect();
        keys.sort();
        keys
    }

    /// A snapshot of every key, sorted by key.
    pub fn snapshot(&self) -> Vec<KeySnapshot> {
        let now = clock::now();
        let mut all: Vec<KeySnapshot> = self
            .shared
            .all()
            .iter()
            .map(|e| self.snapshot_of(e, now))
            .collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// A snapshot of `key`, if the layer knows it.
    pub fn key(&self, key: &str) -> Option<KeySnapshot> {
        let entry = self.shared.get(key)?;
        Some(self.snapshot_of(&entry, clock::now()))
    }

    fn snapshot_of(&self, entry: &Entry<St>, now: Instant) -> KeySnapshot {
        let (queued, stats) = {
            let gate = entry.gate.lock();
            (gate.queued(), gate.stats)
        };
        let in_flight = entry.in_flight.load(Ordering::Relaxed);
        let admitted = entry.admitted.load(Ordering::Relaxed);
        KeySnapshot {
            key: entry.name.to_string(),
            cooldown_until: self.shared.store.cooldown_until(&entry.key, now),
            queued,
            in_flight,
            admitted,
            waits: stats.waits,
            waited: stats.waited,
            rejected: stats.rejected,
            cooldowns: stats.cooldowns,
            probes: stats.probes,
            resources: self.shared.store.snapshot(&entry.key, now),
        }
    }

    /// A [`Cooldown`] for one key (which need not be known yet).
    pub fn for_key(&self, key: impl Into<String>) -> KeyCooldown<St> {
        KeyCooldown {
            handle: self.clone(),
            key: key.into(),
        }
    }

    fn room_at(&self, entry: &Entry<St>) -> Option<Instant> {
        let now = clock::now();
        self.shared
            .store
            .room_at(&entry.key, now)
            .filter(|at| *at > now)
    }
}

/// The layer as a whole is cooling down when every key it knows has no room
/// now: then this is the earliest instant at which one of them has. A layer
/// that knows no key yet has room.
impl<St: QuotaStore> Cooldown for QuotaHandle<St> {
    fn cooldown_until(&self) -> Option<Instant> {
        // Asked on every `poll_ready` of a balancer: walks the keys in
        // place rather than copying them out.
        self.shared.try_min(|entry| self.room_at(entry))
    }
}

/// The [`Cooldown`] of one key of a quota layer, from
/// [`QuotaHandle::for_key`].
pub struct KeyCooldown<St: QuotaStore = MemoryStore> {
    handle: QuotaHandle<St>,
    key: String,
}

impl<St: QuotaStore> Clone for KeyCooldown<St> {
    fn clone(&self) -> Self {
        KeyCooldown {
            handle: self.handle.clone(),
            key: self.key.clone(),
        }
    }
}

impl<St: QuotaStore> fmt::Debug for KeyCooldown<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCooldown")
            .field("key", &self.key)
            .finish()
    }
}

/// Until when requests sent now under this key would wait: a server
/// cooldown, or no room in one of its quotas until a refill.
impl<St: QuotaStore> Cooldown for KeyCooldown<St> {
    fn cooldown_until(&self) -> Option<Instant> {
        let entry = self.handle.shared.get(&self.key)?;
        self.handle.room_at(&entry)
    }
}

/// What a quota layer knows about one key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KeySnapshot {
    /// The key.
    pub key: String,
    /// The end of the server-imposed cooldown, if one is running.
    pub cooldown_until: Option<Instant>,
    /// Requests waiting now.
    pub queued: usize,
    /// Requests sent and not answered yet.
    pub in_flight: usize,
    /// Requests admitted so far.
    pub admitted: u64,
    /// Requests that had to wait before being admitted.
    pub waits: u64,
    /// The time they spent waiting, in total.
    pub waited: Duration,
    /// Requests failed with `QuotaExhausted`.
    pub rejected: u64,
    /// Cooldowns the server imposed.
    pub cooldowns: u64,
    /// Probes sent (first contact, after each cooldown).
    pub probes: u64,
    /// Each quota of the key.
    pub resources: Vec<ResourceSnapshot>,
}
