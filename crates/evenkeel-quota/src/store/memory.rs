//! The in-process store.

use std::collections::HashMap;
use std::fmt;
use std::future::{Ready, ready};
use std::sync::{Arc, Weak};
use std::time::Duration;

use evenkeel_core::ConfigError;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::{QuotaStore, Report, ResourceSnapshot, Shortage};
use crate::cost::Cost;
use crate::model::{KeyModel, Params, StaticQuota, Ticket};

/// Keeps quota state in this process: per key, a short-held mutex over the
/// key's model (see the [crate docs](crate) for what it learns and how).
///
/// Cloning is cheap and shares the state, so two layers given clones of one
/// store pace against the same quotas.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    declared: Vec<StaticQuota>,
    per_key: HashMap<String, Vec<StaticQuota>>,
    keys: Mutex<HashMap<Box<str>, Weak<Mutex<KeyModel>>>>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("params", &self.inner.params)
            .field("declared", &self.inner.declared)
            .field("per_key", &self.inner.per_key)
            .field("keys", &self.inner.keys.lock().len())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::builder()
            .build()
            .expect("the default configuration is valid")
    }
}

impl MemoryStore {
    /// A store with the defaults and no declared quota.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder with the defaults.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }
}

/// A reservation in a [`MemoryStore`].
#[derive(Debug)]
pub struct MemoryTicket(Ticket);

/// A handle on one key of a [`MemoryStore`].
#[derive(Debug, Clone)]
pub struct MemoryKey(Arc<Mutex<KeyModel>>);

impl QuotaStore for MemoryStore {
    type Key = MemoryKey;
    type Ticket = MemoryTicket;
    type Reserve = Ready<Result<MemoryTicket, Shortage>>;

    fn open(&self, key: &str) -> MemoryKey {
        let mut keys = self.inner.keys.lock();
        if let Some(model) = keys.get(key).and_then(Weak::upgrade) {
            return MemoryKey(model);
        }
        let quotas = self.inner.per_key.get(key).unwrap_or(&self.inner.declared);
        let model = Arc::new(Mutex::new(KeyModel::new(
            quotas,
            evenkeel_core::clock::now(),
        )));
        keys.retain(|_, weak| weak.strong_count() > 0);
        keys.insert(Box::from(key), Arc::downgrade(&model));
        MemoryKey(model)
    }

    #[inline]
    fn reserve(&self, key: &MemoryKey, cost: &Cost, now: Instant) -> Self::Reserve {
        ready(
            key.0
                .lock()
                .reserve(cost, now, &self.inner.params)
                .map(MemoryTicket),
        )
    }

    fn estimate(
        &self,
        key: &MemoryKey,
        cost: &Cost,
        ahead: &Cost,
        now: Instant,
    ) -> Option<Shortage> {
        key.0.lock().estimate(cost, ahead, now, &self.inner.params)
    }

    fn release(&self, key: &MemoryKey, ticket: MemoryTicket, sent: bool, now: Instant) {
        key.0
            .lock()
            .release(&ticket.0, sent, now, &self.inner.params);
    }

    fn settle(
        &self,
        key: &MemoryKey,
        ticket: MemoryTicket,
        report: &Report<'_>,
        now: Instant,
    ) -> Option<Instant> {
        key.0
            .lock()
            .settle(&ticket.0, report, now, &self.inner.params)
    }

    fn room_at(&self, key: &MemoryKey, now: Instant) -> Option<Instant> {
        key.0.lock().room_at(now, &self.inner.params)
    }

    fn cooldown_until(&self, key: &MemoryKey, now: Instant) -> Option<Instant> {
        key.0.lock().cooldown_until().filter(|until| *until > now)
    }

    fn snapshot(&self, key: &MemoryKey, now: Instant) -> Vec<ResourceSnapshot> {
        key.0.lock().snapshot(now, &self.inner.params)
    }
}

/// Builds a [`MemoryStore`]; [`build`](Self::build) validates.
///
/// The same settings are on [`QuotaBuilder`](crate::QuotaBuilder) for the
/// common case of a layer with its own store.
#[derive(Debug, Clone)]
pub struct MemoryStoreBuilder {
    declared: Vec<StaticQuota>,
    per_key: HashMap<String, Vec<StaticQuota>>,
    max_reset: Duration,
    max_cooldown: Option<Duration>,
    default_window: Duration,
    spread_burst: f64,
    stale_after: Duration,
}

impl Default for MemoryStoreBuilder {
    fn default() -> Self {
        MemoryStoreBuilder {
            declared: Vec::new(),
            per_key: HashMap::new(),
            max_reset: Duration::from_secs(3600),
            max_cooldown: None,
            default_window: Duration::from_secs(1),
            spread_burst: 0.1,
            stale_after: Duration::from_secs(3600),
        }
    }
}

impl MemoryStoreBuilder {
    /// Declares `quota` for every key (see [`StaticQuota`]).
    #[must_use]
    pub fn declare(mut self, quota: StaticQuota) -> Self {
        self.declared.push(quota);
        self
    }

    /// Declares `quota` for `key` only. A key with quotas of its own does
    /// not get those declared for every key.
    #[must_use]
    pub fn declare_for(mut self, key: impl Into<String>, quota: StaticQuota) -> Self {
        self.per_key.entry(key.into()).or_default().push(quota);
        self
    }

    /// The longest reset taken from a header (1 hour by default), and the
    /// longest cooldown unless [`max_cooldown`](Self::max_cooldown) says
    /// otherwise: a header that claims more is read as this, so a lying or
    /// broken server cannot stop a key for longer. Field: `max_reset`.
    #[must_use]
    pub fn max_reset(mut self, max: Duration) -> Self {
        self.max_reset = max;
        self
    }

    /// The longest cooldown a 429's or 503's server wait can put on a key
    /// (default: `max_reset`). A stack that gives up on waits longer than
    /// its cap (the retry layer's `max_server_wait`) sets the same cap
    /// here, so one absurd `Retry-After` stops a key no longer than the
    /// stack would ever sleep. Field: `max_cooldown`.
    #[must_use]
    pub fn max_cooldown(mut self, max: Duration) -> Self {
        self.max_cooldown = Some(max);
        self
    }

    /// How long a quota reported without a reset time is assumed to take to
    /// come back (1 s by default). Field: `default_window`.
    #[must_use]
    pub fn default_window(mut self, window: Duration) -> Self {
        self.default_window = window;
        self
    }

    /// The share of a fixed window's limit that may be sent at once; the
    /// rest of what remains is spread evenly until the window resets (0.1
    /// by default; 1.0 turns spreading off). Field: `spread_burst`.
    #[must_use]
    pub fn spread_burst(mut self, share: f64) -> Self {
        self.spread_burst = share;
        self
    }

    /// A learned quota with no fresh reading for this long is forgotten
    /// (1 hour by default). Field: `stale_after`.
    #[must_use]
    pub fn stale_after(mut self, after: Duration) -> Self {
        self.stale_after = after;
        self
    }

    /// Validates and builds the store.
    pub fn build(self) -> Result<MemoryStore, ConfigError> {
        for quota in self.declared.iter().chain(self.per_key.values().flatten()) {
            quota.validate()?;
        }
        const YEAR: Duration = Duration::from_secs(366 * 86_400);
        if self.max_reset.is_zero() || self.max_reset > YEAR {
            return Err(ConfigError::new(
                "max_reset",
                "must be more than zero and at most a year",
            ));
        }
        if self.max_cooldown.is_some_and(|c| c.is_zero() || c > YEAR) {
            return Err(ConfigError::new(
                "max_cooldown",
                "must be more than zero and at most a year",
            ));
        }
        if self.default_window.is_zero() || self.default_window > self.max_reset {
            return Err(ConfigError::new(
                "default_window",
                "must be more than zero and at most `max_reset`",
            ));
        }
        if !(self.spread_burst > 0.0 && self.spread_burst <= 1.0) {
            return Err(ConfigError::new(
                "spread_burst",
                format!("must be a share in (0, 1], got {}", self.spread_burst),
            ));
        }
        if self.stale_after.is_zero() || self.stale_after > YEAR {
            return Err(ConfigError::new(
                "stale_after",
                "must be more than zero and at most a year",
            ));
        }
        Ok(MemoryStore {
            inner: Arc::new(Inner {
                params: Params {
                    max_reset: self.max_reset,
                    max_cooldown: self.max_cooldown.unwrap_or(self.max_reset),
                    default_window: self.default_window,
                    spread_burst: self.spread_burst,
                    stale_after: self.stale_after,
                },
                declared: self.declared,
                per_key: self.per_key,
                keys: Mutex::new(HashMap::new()),
            }),
        })
    }
}
