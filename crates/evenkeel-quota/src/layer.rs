//! The quota layer and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use evenkeel_core::ConfigError;
use evenkeel_core::event::{Events, Listener};
use tower_layer::Layer;

use crate::StaticQuota;
use crate::cost::PerRequest;
use crate::gate::{Config, Shared};
use crate::handle::QuotaHandle;
use crate::key::Authority;
use crate::service::Quota;
use crate::store::{MemoryStore, MemoryStoreBuilder, QuotaStore};

/// Paces requests from the server's own rate-limit headers. See the
/// [crate docs](crate).
///
/// A cheap `Clone`: every clone, and every service it builds, shares one
/// quota state (behind an `Arc`), so all of them pace together.
pub struct QuotaLayer<K = Authority, C = PerRequest, St: QuotaStore = MemoryStore> {
    shared: Arc<Shared<St>>,
    key: Arc<K>,
    cost: Arc<C>,
}

impl QuotaLayer {
    /// A layer with the defaults: keyed by authority, one request per
    /// request, an in-memory store.
    pub fn new() -> Self {
        QuotaLayer::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder with the defaults.
    pub fn builder() -> QuotaBuilder {
        QuotaBuilder::default()
    }
}

impl Default for QuotaLayer {
    fn default() -> Self {
        QuotaLayer::new()
    }
}

impl<K, C, St: QuotaStore> QuotaLayer<K, C, St> {
    /// A handle on the shared quota state: snapshots per key and resource,
    /// and [`Cooldown`](evenkeel_core::cooldown::Cooldown) for balancers.
    pub fn handle(&self) -> QuotaHandle<St> {
        QuotaHandle::new(Arc::clone(&self.shared))
    }
}

impl<K, C, St: QuotaStore> Clone for QuotaLayer<K, C, St> {
    fn clone(&self) -> Self {
        QuotaLayer {
            shared: Arc::clone(&self.shared),
            key: Arc::clone(&self.key),
            cost: Arc::clone(&self.cost),
        }
    }
}

impl<K: fmt::Debug, C: fmt::Debug, St: QuotaStore> fmt::Debug for QuotaLayer<K, C, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaLayer")
            .field("key", &self.key)
            .field("estimator", &self.cost)
            .field("shared", &self.shared)
            .finish()
    }
}

impl<S, K, C, St: QuotaStore> Layer<S> for QuotaLayer<K, C, St> {
    type Service = Quota<S, K, C, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Quota::new(
            inner,
            Arc::clone(&self.shared),
            Arc::clone(&self.key),
            Arc::clone(&self.cost),
        )
    }
}

/// What a [`QuotaBuilder`] builds its store from: a [`MemoryStoreBuilder`]
/// (configured through the builder's own methods), or any ready
/// [`QuotaStore`].
pub trait IntoStore {
    /// The store built.
    type Store: QuotaStore;

    /// Builds (and validates) the store.
    fn into_store(self) -> Result<Self::Store, ConfigError>;
}

impl IntoStore for MemoryStoreBuilder {
    type Store = MemoryStore;

    fn into_store(self) -> Result<MemoryStore, ConfigError> {
        self.build()
    }
}

impl<St: QuotaStore> IntoStore for St {
    type Store = St;

    fn into_store(self) -> Result<St, ConfigError> {
        Ok(self)
    }
}

/// Builds a [`QuotaLayer`]; every setting is optional and
/// [`build`](Self::build) validates them, naming the field at fault.
///
/// Defaults: keyed by [`Authority`], costs from [`PerRequest`], an
/// in-memory store, requests held at most 60 s, a probe on first contact
/// that holds the rest for at most 1 s, a 1 s cooldown after a 429 that
/// names no wait, at most 10 000 keys.
pub struct QuotaBuilder<K = Authority, C = PerRequest, S = MemoryStoreBuilder> {
    key: K,
    cost: C,
    store: S,
    config: Config,
    events: Events,
}

impl Default for QuotaBuilder {
    fn default() -> Self {
        QuotaBuilder {
            key: Authority,
            cost: PerRequest,
            store: MemoryStoreBuilder::default(),
            config: Config {
                max_wait: Duration::from_secs(60),
                probe_first: true,
                probe_timeout: Duration::from_secs(1),
                default_cooldown: Duration::from_secs(1),
                max_keys: 10_000,
            },
            events: Events::none(),
        }
    }
}

impl<K: fmt::Debug, C: fmt::Debug, S: fmt::Debug> fmt::Debug for QuotaBuilder<K, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaBuilder")
            .field("key", &self.key)
            .field("estimator", &self.cost)
            .field("store", &self.store)
            .field("config", &self.config)
            .field("events", &self.events)
            .finish()
    }
}

impl<K, C, S> QuotaBuilder<K, C, S> {
    /// How requests are keyed (see [`key`](crate::key)).
    pub fn key<K2>(self, key: K2) -> QuotaBuilder<K2, C, S> {
        QuotaBuilder {
            key,
            cost: self.cost,
            store: self.store,
            config: self.config,
            events: self.events,
        }
    }

    /// How a request's cost is estimated (see [`cost`](crate::cost)).
    pub fn estimator<C2>(self, estimator: C2) -> QuotaBuilder<K, C2, S> {
        QuotaBuilder {
            key: self.key,
            cost: estimator,
            store: self.store,
            config: self.config,
            events: self.events,
        }
    }

    /// Keeps quota state in `store` instead of this process's memory (see
    /// [`store`](crate::store)). The in-memory settings of this builder no
    /// longer apply.
    pub fn store<St2: QuotaStore>(self, store: St2) -> QuotaBuilder<K, C, St2> {
        QuotaBuilder {
            key: self.key,
            cost: self.cost,
            store,
            config: self.config,
            events: self.events,
        }
    }

    /// The longest a request is held waiting for quota (60 s by default;
    /// zero never holds). A request whose expected wait is longer, or
    /// would end after its [`Deadline`](evenkeel_core::ext::Deadline), fails
    /// at once with [`QuotaExhausted`](evenkeel_core::error::QuotaExhausted).
    /// Field: `max_wait`.
    #[must_use]
    pub fn max_wait(mut self, max: Duration) -> Self {
        self.config.max_wait = max;
        self
    }

    /// Whether the first request to a key goes alone, so the rest are paced
    /// by what its response says (on by default). Field: `probe_first`.
    #[must_use]
    pub fn probe_first(mut self, enabled: bool) -> Self {
        self.config.probe_first = enabled;
        self
    }

    /// How long the requests queued behind a probe (on first contact, after
    /// a cooldown) wait for its response before going anyway (1 s by
    /// default). Field: `probe_timeout`.
    #[must_use]
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.config.probe_timeout = timeout;
        self
    }

    /// The cooldown after a 429 that names no wait (1 s by default). Field:
    /// `default_cooldown`.
    #[must_use]
    pub fn default_cooldown(mut self, cooldown: Duration) -> Self {
        self.config.default_cooldown = cooldown;
        self
    }

    /// How many keys are kept (10 000 by default); past it, idle keys are
    /// forgotten. Field: `max_keys`.
    #[must_use]
    pub fn max_keys(mut self, max: usize) -> Self {
        self.config.max_keys = max;
        self
    }

    /// Reports waits and rejections
    /// ([`Event::QuotaWait`](evenkeel_core::event::Event::QuotaWait),
    /// [`QuotaRejected`](evenkeel_core::event::Event::QuotaRejected)) to
    /// `listener`.
    #[must_use]
    pub fn on_event(mut self, listener: impl Listener) -> Self {
        self.events = self.events.and(Events::new(listener));
        self
    }

    /// Reports events to `events` as well.
    #[must_use]
    pub fn events(mut self, events: Events) -> Self {
        self.events = self.events.and(events);
        self
    }

    /// Validates the settings and builds the layer.
    pub fn build(self) -> Result<QuotaLayer<K, C, S::Store>, ConfigError>
    where
        S: IntoStore,
    {
        const YEAR: Duration = Duration::from_secs(366 * 86_400);
        let c = &self.config;
        if c.max_wait > YEAR {
            return Err(ConfigError::new("max_wait", "must be at most a year"));
        }
        if c.probe_timeout.is_zero() || c.probe_timeout > YEAR {
            return Err(ConfigError::new(
                "probe_timeout",
                "must be more than zero and at most a year",
            ));
        }
        if c.default_cooldown > YEAR {
            return Err(ConfigError::new(
                "default_cooldown",
                "must be at most a year",
            ));
        }
        if c.max_keys == 0 {
            return Err(ConfigError::new("max_keys", "must be at least 1"));
        }
        let store = self.store.into_store()?;
        Ok(QuotaLayer {
            shared: Arc::new(Shared::new(store, self.config, self.events)),
            key: Arc::new(self.key),
            cost: Arc::new(self.cost),
        })
    }
}

impl<K, C> QuotaBuilder<K, C, MemoryStoreBuilder> {
    /// Declares a quota known in advance, for every key (see
    /// [`StaticQuota`]). Fields: `declare.*`.
    #[must_use]
    pub fn declare(mut self, quota: StaticQuota) -> Self {
        self.store = self.store.declare(quota);
        self
    }

    /// Declares a quota for `key` only.
    #[must_use]
    pub fn declare_for(mut self, key: impl Into<String>, quota: StaticQuota) -> Self {
        self.store = self.store.declare_for(key, quota);
        self
    }

    /// See [`MemoryStoreBuilder::max_reset`].
    #[must_use]
    pub fn max_reset(mut self, max: Duration) -> Self {
        self.store = self.store.max_reset(max);
        self
    }

    /// See [`MemoryStoreBuilder::max_cooldown`].
    #[must_use]
    pub fn max_cooldown(mut self, max: Duration) -> Self {
        self.store = self.store.max_cooldown(max);
        self
    }

    /// See [`MemoryStoreBuilder::default_window`].
    #[must_use]
    pub fn default_window(mut self, window: Duration) -> Self {
        self.store = self.store.default_window(window);
        self
    }

    /// See [`MemoryStoreBuilder::spread_burst`].
    #[must_use]
    pub fn spread_burst(mut self, share: f64) -> Self {
        self.store = self.store.spread_burst(share);
        self
    }

    /// See [`MemoryStoreBuilder::stale_after`].
    #[must_use]
    pub fn stale_after(mut self, after: Duration) -> Self {
        self.store = self.store.stale_after(after);
        self
    }
}
