//! Where quota state lives: the [`QuotaStore`] trait and the in-memory
//! [`MemoryStore`].
//!
//! The layer splits its work in two:
//!
//! - **Local** to each process, always: the queue of waiting requests (FIFO
//!   per key), their timers and wakers, the single probe after a cooldown,
//!   deadlines and the wait cap, events and statistics.
//! - **In the store**: the numbers. Per key and per metered resource, what
//!   is left, how fast it comes back, when it is full again, and the key's
//!   cooldown. Every decision to send is one atomic
//!   [`reserve`](QuotaStore::reserve): check every dimension and take the
//!   cost from all of them, or take nothing and say what is short until
//!   when.
//!
//! [`MemoryStore`] keeps the numbers in this process (the default).
//! `RedisStore` (feature `redis`) keeps them in Redis, so that a fleet of
//! processes on one API key paces itself against one provider quota, in
//! one round trip per admission; `docs/quota-store-redis.md` describes its
//! scripts, key layout, expiry and failure modes.
//!
//! # Implementing a shared store
//!
//! Only [`reserve`](QuotaStore::reserve) is asynchronous: it is the atomic
//! check-and-reserve, and the layer awaits it holding no lock. A networked
//! store answers it in one round trip (for Redis, one `EVALSHA`) that
//! checks every dimension of the key on the server's clock and takes the
//! cost as a reservation, or says what is short until when.
//!
//! The other methods must not block the request path:
//!
//! - [`settle`](QuotaStore::settle) applies what a response said (the
//!   charge, rate-limit readings ordered by admission, a cooldown). Send it
//!   in the background and do not await it: the caller's response must not
//!   wait for the store. Return the cooldown's end computed locally, so the
//!   process that saw the pushback holds back at once.
//! - [`release`](QuotaStore::release) gives a reservation back, in the
//!   background too.
//! - [`estimate`](QuotaStore::estimate), [`room_at`](QuotaStore::room_at),
//!   [`cooldown_until`](QuotaStore::cooldown_until) and
//!   [`snapshot`](QuotaStore::snapshot) are synchronous: a networked store
//!   answers them from the state its last round trip returned, kept per
//!   key. They inform (fail-fast checks, balancers, dashboards); `reserve`
//!   decides.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use evenkeel_headers::{Dialect, RateLimits, Resource};
use tokio::time::Instant;

use crate::cost::Cost;

#[cfg(feature = "redis")]
pub use self::redis::{
    RedisKey, RedisReserve, RedisStore, RedisStoreBuilder, RedisStoreError, RedisTicket,
};
pub use memory::{MemoryKey, MemoryStore, MemoryStoreBuilder, MemoryTicket};

/// The state of a quota, shared by every clone of a layer and, for a
/// networked implementation, by every process using it. See the
/// [module docs](self).
pub trait QuotaStore: fmt::Debug + Send + Sync + 'static {
    /// A handle on one key's state, opened once per key.
    type Key: fmt::Debug + Send + Sync + 'static;
    /// What an admitted request holds until its response is settled.
    type Ticket: fmt::Debug + Send + Sync + 'static;
    /// The future of [`reserve`](Self::reserve). [`MemoryStore`] answers at
    /// once (`std::future::Ready`).
    type Reserve: Future<Output = Result<Self::Ticket, Shortage>> + Send + 'static;

    /// Opens the state of `key`, creating it with the declared quotas if it
    /// is new.
    fn open(&self, key: &str) -> Self::Key;

    /// Atomically checks that `cost` fits every dimension of `key` now and
    /// takes it from all of them, or takes nothing and says what is short.
    fn reserve(&self, key: &Self::Key, cost: &Cost, now: Instant) -> Self::Reserve;

    /// When `cost`, queued behind requests costing `ahead` in all, is
    /// expected to fit: `None` when nothing says it must wait. Used to fail
    /// a request early, so it should count only what is certain (a
    /// cooldown, exact rates): a request whose wait is uncertain waits, and
    /// fails when its wait runs past its deadline or the cap.
    fn estimate(
        &self,
        key: &Self::Key,
        cost: &Cost,
        ahead: &Cost,
        now: Instant,
    ) -> Option<Shortage>;

    /// Gives back a reservation whose response will never be settled.
    /// `sent` says whether the request may have reached the server (its cost
    /// is then kept, as the server may have charged it).
    fn release(&self, key: &Self::Key, ticket: Self::Ticket, sent: bool, now: Instant);

    /// Learns from the response to a reserved request. Returns the end of a
    /// cooldown this response started, if it started one.
    fn settle(
        &self,
        key: &Self::Key,
        ticket: Self::Ticket,
        report: &Report<'_>,
        now: Instant,
    ) -> Option<Instant>;

    /// When `key` has room for one more request: `None` when it has room
    /// now.
    fn room_at(&self, key: &Self::Key, now: Instant) -> Option<Instant>;

    /// The end of `key`'s cooldown, if one is running.
    fn cooldown_until(&self, key: &Self::Key, now: Instant) -> Option<Instant>;

    /// What the store knows about each quota of `key`.
    fn snapshot(&self, key: &Self::Key, now: Instant) -> Vec<ResourceSnapshot>;
}

/// A request does not fit: what is short, and when it is expected to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// When the request is expected to fit.
    pub until: Instant,
    /// The quota that is short.
    pub resource: Resource,
    /// `true` when the key is in a server-imposed cooldown.
    pub cooldown: bool,
}

impl Shortage {
    /// A shortage of `resource` until `until`.
    pub fn new(until: Instant, resource: Resource, cooldown: bool) -> Self {
        Shortage {
            until,
            resource,
            cooldown,
        }
    }
}

/// Whether the server counted a request against its quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Charged {
    /// It did (any response other than those below).
    Yes,
    /// It did not: the request was rate limited (429).
    No,
    /// Unknown: a transport error, a client error.
    Unknown,
}

/// What a response told the layer, for [`QuotaStore::settle`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Report<'a> {
    /// Every quota the response's headers reported.
    pub limits: &'a RateLimits,
    /// Whether the server charged the request.
    pub charged: Charged,
    /// A pause the server asked of the whole key (a 429 or 503 with a
    /// server wait).
    pub cooldown: Option<Duration>,
}

impl<'a> Report<'a> {
    /// A report of `limits`, charged, with no cooldown.
    pub fn new(limits: &'a RateLimits) -> Self {
        Report {
            limits,
            charged: Charged::Yes,
            cooldown: None,
        }
    }

    /// Sets [`charged`](Self::charged).
    #[must_use]
    pub fn with_charged(mut self, charged: Charged) -> Self {
        self.charged = charged;
        self
    }

    /// Sets [`cooldown`](Self::cooldown).
    #[must_use]
    pub fn with_cooldown(mut self, cooldown: Option<Duration>) -> Self {
        self.cooldown = cooldown;
        self
    }
}

/// Where a quota's numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// Declared up front ([`StaticQuota`](crate::StaticQuota)).
    Declared,
    /// Learned from the server's rate-limit headers, in this dialect.
    Learned(Dialect),
}

/// What is known about one quota of one key.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ResourceSnapshot {
    /// What is counted.
    pub resource: Resource,
    /// The quota's name, when the server names several of one resource.
    pub policy: Option<String>,
    /// Where the numbers come from.
    pub source: Source,
    /// The limit (declared, or the server's last report).
    pub limit: Option<u64>,
    /// The estimate of what is left now: the server's last `remaining`,
    /// minus what was sent since, plus what has refilled.
    pub remaining: u64,
    /// When the quota is expected to be full again.
    pub reset: Option<Instant>,
    /// The refill rate per second (declared, or learned as a lower bound).
    pub rate: Option<f64>,
    /// When the server last reported it.
    pub updated: Option<Instant>,
}
