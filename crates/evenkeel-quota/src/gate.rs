//! The local half of the layer: per key, the FIFO of waiting requests, the
//! probe, and the statistics. Shared by every clone of a layer.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Waker;
use std::time::Duration;

use evenkeel_core::event::Events;
use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;

use crate::cost::{Cost, FIELDS};
use crate::store::QuotaStore;

/// The layer's settings that are not the store's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) max_wait: Duration,
    pub(crate) probe_first: bool,
    pub(crate) probe_timeout: Duration,
    pub(crate) default_cooldown: Duration,
    pub(crate) max_keys: usize,
}

/// Everything clones of a layer share.
pub(crate) struct Shared<St: QuotaStore> {
    pub(crate) store: St,
    pub(crate) config: Config,
    pub(crate) events: Events,
    entries: RwLock<HashMap<Box<str>, Arc<Entry<St>>>>,
}

impl<St: QuotaStore> fmt::Debug for Shared<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store)
            .field("config", &self.config)
            .field("events", &self.events)
            .field("keys", &self.entries.read().len())
            .finish()
    }
}

impl<St: QuotaStore> Shared<St> {
    pub(crate) fn new(store: St, config: Config, events: Events) -> Self {
        Shared {
            store,
            config,
            events,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The entry of `key`, created on first use.
    #[inline]
    pub(crate) fn entry(&self, key: &str) -> Arc<Entry<St>> {
        if let Some(entry) = self.entries.read().get(key) {
            return Arc::clone(entry);
        }
        self.insert(key)
    }

    #[cold]
    fn insert(&self, key: &str) -> Arc<Entry<St>> {
        let mut entries = self.entries.write();
        if let Some(entry) = entries.get(key) {
            return Arc::clone(entry);
        }
        if entries.len() >= self.config.max_keys {
            // Forget keys nobody is using: no request holds them and they
            // have nothing queued or in flight.
            entries.retain(|_, e| Arc::strong_count(e) > 1 || !e.is_idle());
        }
        let entry = Arc::new(Entry {
            name: Box::from(key),
            key: self.store.open(key),
            gate: Mutex::new(Gate::new(self.config.probe_first)),
            queued: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            admitted: AtomicU64::new(0),
        });
        entries.insert(Box::from(key), Arc::clone(&entry));
        entry
    }

    /// The entry of `key`, if it exists.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Entry<St>>> {
        self.entries.read().get(key).cloned()
    }

    /// Every entry.
    pub(crate) fn all(&self) -> Vec<Arc<Entry<St>>> {
        self.entries.read().values().cloned().collect()
    }

    /// The least of `f` over every entry, under the read lock and without
    /// copying the entries: `None` when there is no entry, or as soon as
    /// `f` gives `None` for one.
    pub(crate) fn try_min<T: Ord>(&self, mut f: impl FnMut(&Entry<St>) -> Option<T>) -> Option<T> {
        let entries = self.entries.read();
        let mut least: Option<T> = None;
        for entry in entries.values() {
            let value = f(entry)?;
            least = Some(match least {
                Some(l) if l <= value => l,
                _ => value,
            });
        }
        least
    }
}

/// One key: its name, its store handle, its gate, and the counters the
/// plentiful path updates without taking the gate's lock.
pub(crate) struct Entry<St: QuotaStore> {
    pub(crate) name: Box<str>,
    pub(crate) key: St::Key,
    pub(crate) gate: Mutex<Gate>,
    /// The queue's length, mirrored (written under the gate's lock).
    pub(crate) queued: AtomicUsize,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) admitted: AtomicU64,
}

impl<St: QuotaStore> Entry<St> {
    fn is_idle(&self) -> bool {
        self.queued.load(Ordering::Relaxed) == 0 && self.in_flight.load(Ordering::Relaxed) == 0
    }

    /// A request was admitted; `probe` says it goes as the probe.
    pub(crate) fn admitted(&self, probe: bool) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.admitted.fetch_add(1, Ordering::Relaxed);
        if probe {
            self.gate.lock().stats.probes += 1;
        }
    }

    /// An admitted request finished (answered, failed or dropped). `probe`
    /// says it was the probe; `answered` that the server answered it;
    /// `cooldown` that its answer started a cooldown. Returns the waker of
    /// the head of the queue, which may now go.
    pub(crate) fn finished(&self, probe: bool, answered: bool, cooldown: bool) -> Option<Waker> {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !probe && !cooldown && self.queued.load(Ordering::Relaxed) == 0 {
            // Nothing waits on this key: no lock to take.
            return None;
        }
        self.gate.lock().finished(probe, answered, cooldown)
    }
}

impl<St: QuotaStore> fmt::Debug for Entry<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The single request sent to learn where a key stands (on first contact,
/// after a cooldown) before the queue drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Nothing to learn first.
    Idle,
    /// The next request to go is the probe.
    Needed,
    /// The probe is out; the queue waits for it until `until`.
    Flying { until: Instant },
}

/// A waiting request.
#[derive(Debug)]
struct Waiter {
    id: u64,
    cost: [u64; FIELDS],
    waker: Option<Waker>,
}

/// Per-key counters of the slow paths.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    pub(crate) waits: u64,
    pub(crate) waited: Duration,
    pub(crate) rejected: u64,
    pub(crate) cooldowns: u64,
    pub(crate) probes: u64,
}

/// What a request may do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Try to reserve; `probe` says it goes as the probe.
    Go { probe: bool },
    /// Wait for the probe's answer, at most until this instant.
    Probe(Instant),
    /// Others are ahead.
    Behind,
}

/// The local state of one key.
#[derive(Debug)]
pub(crate) struct Gate {
    queue: VecDeque<Waiter>,
    queued_cost: [u64; FIELDS],
    next_id: u64,
    probe: Probe,
    pub(crate) stats: Stats,
}

impl Gate {
    fn new(probe_first: bool) -> Self {
        Gate {
            queue: VecDeque::new(),
            queued_cost: [0; FIELDS],
            next_id: 0,
            probe: if probe_first {
                Probe::Needed
            } else {
                Probe::Idle
            },
            stats: Stats::default(),
        }
    }

    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether the probe is out (and not timed out).
    fn probe_flying(&mut self, now: Instant) -> Option<Instant> {
        match self.probe {
            Probe::Flying { until } if until > now => Some(until),
            Probe::Flying { .. } => {
                // The probe took too long: let the queue go.
                self.probe = Probe::Idle;
                None
            }
            _ => None,
        }
    }

    fn start_probe(&mut self, now: Instant, timeout: Duration) -> bool {
        if self.probe == Probe::Needed {
            self.probe = Probe::Flying {
                until: now + timeout,
            };
            true
        } else {
            false
        }
    }

    /// A new request arrives: it may go now, or must queue.
    pub(crate) fn enter(&mut self, now: Instant, timeout: Duration) -> Option<Turn> {
        if !self.queue.is_empty() || self.probe_flying(now).is_some() {
            return None;
        }
        Some(Turn::Go {
            probe: self.start_probe(now, timeout),
        })
    }

    /// The cost of everything queued.
    pub(crate) fn ahead(&self) -> Cost {
        let q = &self.queued_cost;
        Cost::new()
            .with_requests(q[0])
            .with_tokens(q[1])
            .with_input_tokens(q[2])
            .with_output_tokens(q[3])
    }

    /// Queues a request at the back (or at the front: a request that was
    /// about to go and found the quota short keeps its place).
    pub(crate) fn enqueue(
        &mut self,
        cost: &Cost,
        waker: &Waker,
        front: bool,
        mirror: &AtomicUsize,
    ) -> u64 {
        self.next_id += 1;
        let waiter = Waiter {
            id: self.next_id,
            cost: cost.fields(),
            waker: Some(waker.clone()),
        };
        for (q, c) in self.queued_cost.iter_mut().zip(waiter.cost) {
            *q = q.saturating_add(c);
        }
        if front {
            self.queue.push_front(waiter);
        } else {
            self.queue.push_back(waiter);
        }
        mirror.store(self.queue.len(), Ordering::Relaxed);
        self.next_id
    }

    /// A queued request is polled: is it its turn?
    pub(crate) fn turn(&mut self, id: u64, now: Instant, timeout: Duration, waker: &Waker) -> Turn {
        let Some(position) = self.queue.iter().position(|w| w.id == id) else {
            // Not queued (cannot happen); let it try.
            return Turn::Go { probe: false };
        };
        let waiter = &mut self.queue[position];
        if !waiter.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            waiter.waker = Some(waker.clone());
        }
        if position > 0 {
            return Turn::Behind;
        }
        if let Some(until) = self.probe_flying(now) {
            return Turn::Probe(until);
        }
        Turn::Go {
            probe: self.start_probe(now, timeout),
        }
    }

    /// Removes a request from the queue; returns the waker of the new head
    /// if the head changed.
    pub(crate) fn leave(&mut self, id: u64, mirror: &AtomicUsize) -> Option<Waker> {
        let position = self.queue.iter().position(|w| w.id == id)?;
        let waiter = self.queue.remove(position)?;
        mirror.store(self.queue.len(), Ordering::Relaxed);
        for (q, c) in self.queued_cost.iter_mut().zip(waiter.cost) {
            *q = q.saturating_sub(c);
        }
        if position == 0 {
            self.head_waker()
        } else {
            None
        }
    }

    /// The waker of the request at the head of the queue.
    pub(crate) fn head_waker(&self) -> Option<Waker> {
        self.queue.front().and_then(|w| w.waker.clone())
    }

    /// A request that was going as the probe cannot go yet: the next one
    /// to go is the probe.
    pub(crate) fn probe_deferred(&mut self) {
        if matches!(self.probe, Probe::Flying { .. }) {
            self.probe = Probe::Needed;
        }
    }

    /// The store reported a cooldown: the first request after it is a probe.
    pub(crate) fn cooldown_seen(&mut self) {
        if self.probe == Probe::Idle {
            self.probe = Probe::Needed;
            self.stats.cooldowns += 1;
        }
    }

    /// See [`Entry::finished`].
    fn finished(&mut self, probe: bool, answered: bool, cooldown: bool) -> Option<Waker> {
        if probe && matches!(self.probe, Probe::Flying { .. }) {
            self.probe = if answered { Probe::Idle } else { Probe::Needed };
        }
        if cooldown {
            self.probe = Probe::Needed;
            self.stats.cooldowns += 1;
        }
        self.head_waker()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn first_contact_sends_one_probe_then_the_queue() {
        let m = &AtomicUsize::new(0);
        let waker = Waker::noop();
        let t = Duration::from_secs(1);
        let now = Instant::now();
        let mut gate = Gate::new(true);
        assert_eq!(gate.enter(now, t), Some(Turn::Go { probe: true }));
        // Others queue behind the probe.
        assert_eq!(gate.enter(now, t), None);
        let a = gate.enqueue(&Cost::new(), waker, false, m);
        let b = gate.enqueue(&Cost::new(), waker, false, m);
        assert_eq!(m.load(Ordering::Relaxed), 2);
        assert_eq!(gate.turn(a, now, t, waker), Turn::Probe(now + t));
        assert_eq!(gate.turn(b, now, t, waker), Turn::Behind);
        assert!(gate.finished(true, true, false).is_some());
        assert_eq!(gate.turn(a, now, t, waker), Turn::Go { probe: false });
        assert!(gate.leave(a, m).is_some(), "b is the new head");
        assert_eq!(m.load(Ordering::Relaxed), 1);
        assert_eq!(gate.turn(b, now, t, waker), Turn::Go { probe: false });
        assert_eq!(gate.ahead().requests(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_probe_releases_the_queue_after_its_timeout() {
        let waker = Waker::noop();
        let t = Duration::from_secs(1);
        let now = Instant::now();
        let mut gate = Gate::new(true);
        assert_eq!(gate.enter(now, t), Some(Turn::Go { probe: true }));
        let a = gate.enqueue(&Cost::new(), waker, false, &AtomicUsize::new(0));
        assert_eq!(gate.turn(a, now + t, t, waker), Turn::Go { probe: false });
    }

    #[tokio::test(start_paused = true)]
    async fn a_cooldown_makes_the_next_request_a_probe() {
        let t = Duration::from_secs(1);
        let now = Instant::now();
        let mut gate = Gate::new(false);
        assert_eq!(gate.enter(now, t), Some(Turn::Go { probe: false }));
        gate.finished(false, true, true);
        assert_eq!(gate.enter(now, t), Some(Turn::Go { probe: true }));
        assert_eq!(gate.stats.cooldowns, 1);
        // A probe that fails without an answer hands the role on.
        gate.finished(true, false, false);
        assert_eq!(gate.enter(now, t), Some(Turn::Go { probe: true }));
    }
}
