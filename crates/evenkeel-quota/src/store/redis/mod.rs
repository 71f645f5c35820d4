//! The Redis store: one quota shared by every process on one API key.

mod error;
mod reply;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use evenkeel_core::ConfigError;
use evenkeel_core::event::{Event, Events, Listener, StoreFailure};
use evenkeel_headers::{Dialect, Resource};
use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use redis::{Client, RedisError, Script, Value};
use tokio::time::Instant;

use super::{
    Charged, MemoryKey, MemoryStore, MemoryTicket, QuotaStore, Report, ResourceSnapshot, Shortage,
    Source,
};
use crate::cost::{Cost, FIELDS, field_of};
use crate::model::StaticQuota;

pub use error::RedisStoreError;
use reply::{Admitted, Answer, CachedQuota};

/// The store's label in events and metrics.
const LABEL: &str = "redis";

/// The largest cost or count sent to the script: Lua counts in doubles,
/// exact up to 2^53.
const MAX_UNITS: u64 = 1 << 53;

/// How long a fail-closed store says a request must wait: longer than any
/// deadline, so the layer refuses at once with `QuotaExhausted`.
const FAIL_CLOSED_WAIT: Duration = Duration::from_secs(3600);

const RESERVE_LUA: &str = include_str!("reserve.lua");
const SETTLE_LUA: &str = include_str!("settle.lua");
const HEARTBEAT_LUA: &str = "local t = redis.call('TIME') \
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
    redis.call('ZADD', KEYS[1], now, ARGV[1]) \
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2])) \
    redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2])) \
    return redis.call('ZCARD', KEYS[1])";

/// The dialects a learned quota can come from, numbered for the script.
const DIALECTS: [Dialect; 9] = [
    Dialect::Ietf,
    Dialect::IetfDraft,
    Dialect::XRateLimit,
    Dialect::Anthropic,
    Dialect::OpenAi,
    Dialect::Discord,
    Dialect::Shopify,
    Dialect::Linear,
    Dialect::Custom,
];

const RESOURCES: [Resource; FIELDS] = [
    Resource::Requests,
    Resource::Tokens,
    Resource::InputTokens,
    Resource::OutputTokens,
];

/// Keeps quota state in Redis, so that every process using one API key
/// paces against one quota: a fleet of workers behind one provider key
/// sends no more than the key allows, whichever worker sends.
///
/// Each admission is one round trip: a Lua script (run through
/// [`redis::Script`], which loads it again after a `SCRIPT FLUSH` or a
/// restart) checks every quota of the key against Redis's own clock and
/// takes the request's cost as an in-flight reservation, or says what is
/// short until when. Answers are settled in the background: the
/// reservation becomes a charge, rate-limit readings from any process's
/// responses become the key's learned quotas, and a 429 or 529 with a
/// server wait starts a cooldown that every process sees on its next
/// admission. A reservation whose process crashed frees itself when its
/// expiry passes, and idle keys expire. See `docs/quota-store-redis.md` for
/// the script, the key layout and the failure modes.
///
/// When Redis fails or does not answer within the
/// [timeout](RedisStoreBuilder::timeout) (50 ms by default), the process
/// paces itself with an in-process [`MemoryStore`] holding its share of the
/// declared quotas (divided by the processes it last saw alive), reports
/// [`Event::QuotaStoreFailed`], and goes back to Redis, reporting
/// [`Event::QuotaStoreRecovered`], as soon as a background heartbeat gets
/// an answer. A store built with
/// [`fail_closed`](RedisStoreBuilder::fail_closed) refuses instead.
///
/// Cloning is cheap and shares the connection and state.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use evenkeel_headers::Resource;
/// use evenkeel_quota::store::RedisStore;
/// use evenkeel_quota::{QuotaLayer, StaticQuota};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // Connects now, and fails if Redis does not answer.
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// # let _ = store;
///
/// // Or: connects on first use, and paces locally until Redis answers.
/// let store = RedisStore::builder("redis://127.0.0.1:6379")
///     .timeout(Duration::from_millis(20))
///     .declare(StaticQuota::per_minute(Resource::Requests, 50))
///     .build()?;
/// let layer = QuotaLayer::builder().store(store).build()?;
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    client: Backend,
    conn: tokio::sync::OnceCell<Conn>,
    settings: Settings,
    reserve: Script,
    settle: Script,
    heartbeat: Script,
    /// This process's name in the heartbeat set.
    id: String,
    /// Numbers reservations.
    next: AtomicU64,
    health: Mutex<Health>,
    /// Whether the heartbeat task runs.
    watching: AtomicBool,
}

#[derive(Debug, Clone)]
struct Settings {
    timeout: Duration,
    fail_closed: bool,
    prefix: String,
    reservation_ttl: Duration,
    idle_ttl: Duration,
    heartbeat: Duration,
    declared: Vec<StaticQuota>,
    per_key: HashMap<String, Vec<StaticQuota>>,
    max_reset: Duration,
    max_cooldown: Duration,
    default_window: Duration,
    stale_after: Duration,
    events: Events,
}

/// Whether Redis answers, and the local pacing used while it does not.
struct Health {
    /// Since when Redis has not answered; `None` while it does.
    down: Option<Instant>,
    /// Counts the fallbacks, so a key's local state is opened once per
    /// fallback.
    generation: u64,
    /// The local pacing while Redis is down.
    local: Option<MemoryStore>,
    /// The processes alive at the last heartbeat (this one included).
    live: u64,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let health = self.inner.health.lock();
        f.debug_struct("RedisStore")
            .field("url", &self.inner.url)
            .field("settings", &self.inner.settings)
            .field("fallback", &health.down.is_some())
            .field("live", &health.live)
            .finish()
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://host:port/db`,
    /// `rediss://…` for TLS when the `redis` crate's TLS feature is on,
    /// `unix:///path`) with the default settings, and waits for its first
    /// answer.
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::InvalidUrl`] for a URL that is not Redis's,
    /// [`RedisStoreError::Connect`] when Redis does not answer within the
    /// default timeout (50 ms) or refuses.
    pub fn connect(url: &str) -> impl Future<Output = Result<RedisStore, RedisStoreError>> {
        let store = RedisStore::builder(url).build();
        async move {
            let store = store?;
            store.ping().await?;
            Ok(store)
        }
    }

    /// A builder for a store on the Redis at `url`. The store it builds
    /// connects on first use.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(url.into(), Vec::new())
    }

    /// A builder for a store on the Redis Cluster reached through `nodes`
    /// (URLs of some of its primaries). Every Redis key of one quota key
    /// carries the hash tag `{key}`, so each script runs on one slot.
    ///
    /// ```
    /// use evenkeel_quota::store::RedisStore;
    ///
    /// let store = RedisStore::cluster_builder(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .build()
    ///     .unwrap();
    /// # let _ = store;
    /// ```
    #[cfg(feature = "redis-cluster")]
    pub fn cluster_builder<I, S>(nodes: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        RedisStoreBuilder::new(nodes.join(","), nodes)
    }

    /// Whether the store paces locally because Redis did not answer.
    pub fn is_fallback(&self) -> bool {
        self.inner.health.lock().down.is_some()
    }

    /// The processes sharing the store at the last heartbeat (this one
    /// included; 1 before the first).
    pub fn live_processes(&self) -> u64 {
        self.inner.health.lock().live
    }

    /// Waits for one answer from Redis (and starts the heartbeat).
    async fn ping(&self) -> Result<(), RedisStoreError> {
        let inner = &self.inner;
        inner.watch();
        match inner.heartbeat_once().await {
            Ok(()) => Ok(()),
            Err(failure) => Err(RedisStoreError::Connect {
                url: inner.url.clone(),
                source: failure.error,
            }),
        }
    }
}

/// Where the store connects.
#[allow(clippy::large_enum_variant)] // one per store, built once
enum Backend {
    Single(Client),
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster::ClusterClient),
}

/// A connection: one server through a reconnecting manager, or a cluster
/// (whose connection follows the slots and reconnects itself).
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Why a call failed, for the event and the caller.
struct Failure {
    reason: StoreFailure,
    error: Option<RedisError>,
}

impl Failure {
    fn of(error: RedisError) -> Self {
        let reason = if error.is_timeout() {
            StoreFailure::Timeout
        } else if error.is_io_error()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
        {
            StoreFailure::Connection
        } else {
            StoreFailure::Response
        };
        Failure {
            reason,
            error: Some(error),
        }
    }

    fn timeout() -> Self {
        Failure {
            reason: StoreFailure::Timeout,
            error: None,
        }
    }

    fn response() -> Self {
        Failure {
            reason: StoreFailure::Response,
            error: None,
        }
    }
}

impl Inner {
    /// The connection, made on first use.
    async fn conn(&self) -> Result<Conn, Failure> {
        let settings = &self.settings;
        self.conn
            .get_or_try_init(|| async {
                match &self.client {
                    Backend::Single(client) => {
                        let config = redis::aio::ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(settings.timeout))
                            .set_response_timeout(Some(settings.timeout))
                            .set_number_of_retries(1)
                            .set_max_delay(settings.heartbeat);
                        ConnectionManager::new_lazy_with_config(client.clone(), config)
                            .map(Conn::Single)
                    }
                    #[cfg(feature = "redis-cluster")]
                    Backend::Cluster(client) => {
                        client.get_async_connection().await.map(Conn::Cluster)
                    }
                }
            })
            .await
            .cloned()
            .map_err(Failure::of)
    }

    /// Runs `script` with a timeout.
    async fn run(&self, invocation: redis::ScriptInvocation<'_>) -> Result<Value, Failure> {
        let call = async {
            let mut conn = self.conn().await?;
            invocation
                .invoke_async::<Value>(&mut conn)
                .await
                .map_err(Failure::of)
        };
        match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(Failure::timeout()),
        }
    }

    /// Records a failed call: reports it and, the first time, switches to
    /// local pacing.
    fn failed(&self, failure: &Failure) {
        let settings = &self.settings;
        {
            let mut health = self.health.lock();
            if health.down.is_none() {
                health.down = Some(Instant::now());
                health.generation += 1;
                health.local = Some(settings.share(health.live));
            }
        }
        settings.events.emit(|| Event::QuotaStoreFailed {
            store: LABEL,
            reason: failure.reason,
        });
    }

    /// Records an answer: back on Redis if the store was paced locally.
    fn answered(&self, live: Option<u64>) {
        let down = {
            let mut health = self.health.lock();
            if let Some(live) = live {
                health.live = live.max(1);
            }
            let down = health.down.take();
            if down.is_some() {
                health.local = None;
            }
            down
        };
        if let Some(since) = down {
            self.settings.events.emit(|| Event::QuotaStoreRecovered {
                store: LABEL,
                down: since.elapsed(),
            });
        }
    }

    /// The local store while Redis is down.
    fn fallback(&self) -> Option<(u64, MemoryStore)> {
        let health = self.health.lock();
        health
            .local
            .as_ref()
            .map(|local| (health.generation, local.clone()))
    }

    async fn heartbeat_once(&self) -> Result<(), Failure> {
        let ttl = 3 * self.settings.heartbeat.as_millis().max(1) as u64;
        let mut invocation = self.heartbeat.prepare_invoke();
        invocation
            .key(format!("{}procs", self.settings.prefix))
            .arg(&self.id)
            .arg(ttl);
        match self.run(invocation).await {
            Ok(Value::Int(live)) => {
                self.answered(Some(live.max(1) as u64));
                Ok(())
            }
            Ok(_) => {
                let failure = Failure::response();
                self.failed(&failure);
                Err(failure)
            }
            Err(failure) => {
                self.failed(&failure);
                Err(failure)
            }
        }
    }

    /// Starts the heartbeat task once, on the current runtime: it counts
    /// the live processes, and brings a store that paces locally back to
    /// Redis once Redis answers. It ends when the store is dropped.
    fn watch(self: &Arc<Self>) {
        if self.watching.load(Ordering::Acquire) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(self);
        let every = self.settings.heartbeat;
        handle.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let _ = inner.heartbeat_once().await;
            }
        });
    }

    fn reservation_id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}:{n}", self.id)
    }
}

impl Settings {
    /// The local store for a fallback: this process's share of each
    /// declared quota.
    fn share(&self, live: u64) -> MemoryStore {
        let live = live.max(1);
        let divide = |q: &StaticQuota| {
            StaticQuota::new(q.resource().clone(), (q.limit() / live).max(1), q.period())
                .with_burst((q.burst() / live).max(1))
        };
        let mut builder = MemoryStore::builder()
            .max_reset(self.max_reset)
            .max_cooldown(self.max_cooldown)
            .default_window(self.default_window)
            .stale_after(self.stale_after);
        for quota in &self.declared {
            builder = builder.declare(divide(quota));
        }
        for (key, quotas) in &self.per_key {
            for quota in quotas {
                builder = builder.declare_for(key.clone(), divide(quota));
            }
        }
        builder
            .build()
            .expect("the settings were validated when the store was built")
    }

    fn millis(d: Duration) -> u64 {
        d.as_millis().clamp(1, u128::from(MAX_UNITS)) as u64
    }
}

/// A handle on one key of a [`RedisStore`]: its Redis key names, its
/// declared quotas, and what the last round trip said about it.
#[derive(Clone)]
pub struct RedisKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    name: Box<str>,
    state: String,
    flight: String,
    /// The declared quotas as script arguments (four each).
    declared: Vec<String>,
    /// The key in the local store of the current fallback.
    local: Mutex<Option<(u64, MemoryKey)>>,
    /// What the last round trip said.
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    at: Option<Instant>,
    cooldown: Option<Instant>,
    quotas: Vec<CachedQuota>,
}

impl fmt::Debug for RedisKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKey")
            .field("name", &self.inner.name)
            .field("state", &self.inner.state)
            .field("cache", &*self.inner.cache.lock())
            .finish()
    }
}

impl RedisKey {
    /// The quota key.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// This key in the local store `local` of fallback `generation`.
    fn local(&self, generation: u64, local: &MemoryStore) -> MemoryKey {
        let mut slot = self.inner.local.lock();
        match &*slot {
            Some((g, key)) if *g == generation => key.clone(),
            _ => {
                let key = local.open(&self.inner.name);
                *slot = Some((generation, key.clone()));
                key
            }
        }
    }
}

/// A reservation in a [`RedisStore`]: in Redis, or in the local store of a
/// fallback.
#[derive(Debug)]
pub struct RedisTicket(TicketKind);

#[derive(Debug)]
enum TicketKind {
    Remote {
        id: String,
        seq: u64,
        cum: [u64; FIELDS],
        cost: [u64; FIELDS],
    },
    Local {
        generation: u64,
        ticket: MemoryTicket,
    },
}

/// The future of [`RedisStore::reserve`]: one round trip to Redis, bounded
/// by the store's timeout, or an answer at once while the store paces
/// locally.
pub struct RedisReserve(ReserveKind);

enum ReserveKind {
    Ready(Option<Result<RedisTicket, Shortage>>),
    Remote(Pin<Box<dyn Future<Output = Result<RedisTicket, Shortage>> + Send>>),
}

impl fmt::Debug for RedisReserve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.0 {
            ReserveKind::Ready(_) => "ready",
            ReserveKind::Remote(_) => "remote",
        };
        f.debug_tuple("RedisReserve").field(&state).finish()
    }
}

impl Future for RedisReserve {
    type Output = Result<RedisTicket, Shortage>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            ReserveKind::Ready(answer) => {
                Poll::Ready(answer.take().expect("RedisReserve polled after completion"))
            }
            ReserveKind::Remote(future) => future.as_mut().poll(cx),
        }
    }
}

impl RedisStore {
    /// Reserves in the local store of a fallback (or refuses, fail-closed).
    fn reserve_locally(
        &self,
        key: &RedisKey,
        cost: &Cost,
        now: Instant,
        generation: u64,
        local: &MemoryStore,
    ) -> Result<RedisTicket, Shortage> {
        if self.inner.settings.fail_closed {
            return Err(Shortage::new(
                now + FAIL_CLOSED_WAIT,
                Resource::Requests,
                false,
            ));
        }
        let local_key = key.local(generation, local);
        let ready = local.reserve(&local_key, cost, now);
        // `MemoryStore` answers at once.
        let answer = ready.into_inner();
        answer.map(|ticket| RedisTicket(TicketKind::Local { generation, ticket }))
    }

    fn settle_remote(
        &self,
        key: &RedisKey,
        ticket: RedisTicket,
        charge: bool,
        report: Option<&Report<'_>>,
    ) {
        let RedisTicket(TicketKind::Remote { id, seq, cum, cost }) = ticket else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let settings = &self.inner.settings;
        let mut args: Vec<String> = Vec::with_capacity(16);
        args.push(id);
        args.push(seq.to_string());
        args.extend(cum.iter().map(u64::to_string));
        args.push(if charge { "1" } else { "0" }.to_owned());
        args.extend(cost.iter().map(u64::to_string));
        let cooldown = report
            .and_then(|r| r.cooldown)
            .map(|c| c.min(settings.max_cooldown));
        args.push(cooldown.map_or(0, Settings::millis).to_string());
        args.push(Settings::millis(settings.idle_ttl).to_string());
        args.push(Settings::millis(settings.default_window).to_string());
        let readings = report.map(|r| reply::readings(r.limits, settings.max_reset));
        let readings = readings.unwrap_or_default();
        args.push((readings.len() / 7).to_string());
        args.extend(readings);
        let inner = self.inner.clone();
        let key = key.clone();
        handle.spawn(async move {
            let mut invocation = inner.settle.key(&key.inner.state);
            invocation.key(&key.inner.flight).arg(&args);
            match inner.run(invocation).await {
                Ok(Value::Int(cool_us)) => {
                    if cool_us > 0 {
                        let until = Instant::now() + Duration::from_micros(cool_us as u64);
                        let mut cache = key.inner.cache.lock();
                        cache.cooldown = Some(cache.cooldown.map_or(until, |c| c.max(until)));
                    }
                }
                Ok(_) => inner.failed(&Failure::response()),
                Err(failure) => inner.failed(&failure),
            }
        });
    }
}

impl QuotaStore for RedisStore {
    type Key = RedisKey;
    type Ticket = RedisTicket;
    type Reserve = RedisReserve;

    fn open(&self, key: &str) -> RedisKey {
        let settings = &self.inner.settings;
        let quotas = settings.per_key.get(key).unwrap_or(&settings.declared);
        let mut declared = Vec::with_capacity(quotas.len() * 4);
        for (i, quota) in quotas.iter().enumerate() {
            let Some(field) = field_of(quota.resource()) else {
                continue;
            };
            declared.push(format!("d{field}:{i}"));
            declared.push(field.to_string());
            declared.push(quota.burst().min(MAX_UNITS).to_string());
            declared.push(format!("{:e}", quota.rate() / 1000.0));
        }
        let tag = format!("{}{{{key}}}", settings.prefix);
        RedisKey {
            inner: Arc::new(KeyInner {
                name: Box::from(key),
                state: format!("{tag}:s"),
                flight: format!("{tag}:f"),
                declared,
                local: Mutex::new(None),
                cache: Mutex::new(Cache::default()),
            }),
        }
    }

    fn reserve(&self, key: &RedisKey, cost: &Cost, now: Instant) -> RedisReserve {
        self.inner.watch();
        if let Some((generation, local)) = self.inner.fallback() {
            let answer = self.reserve_locally(key, cost, now, generation, &local);
            return RedisReserve(ReserveKind::Ready(Some(answer)));
        }
        let fields = cost.fields().map(|c| c.min(MAX_UNITS));
        let cost = *cost;
        let store = self.clone();
        let key = key.clone();
        RedisReserve(ReserveKind::Remote(Box::pin(async move {
            let inner = &store.inner;
            let settings = &inner.settings;
            let id = inner.reservation_id();
            let mut invocation = inner.reserve.key(&key.inner.state);
            invocation
                .key(&key.inner.flight)
                .arg(&fields[..])
                .arg(&id)
                .arg(Settings::millis(settings.reservation_ttl))
                .arg(Settings::millis(settings.idle_ttl))
                .arg(Settings::millis(settings.stale_after))
                .arg(key.inner.declared.len() / 4)
                .arg(&key.inner.declared);
            let answer = inner.run(invocation).await;
            let at = Instant::now();
            let parsed = answer.and_then(|v| reply::parse(v).ok_or_else(Failure::response));
            match parsed {
                Ok(Answer::Admitted(Admitted { seq, cum, quotas })) => {
                    inner.answered(None);
                    let mut cache = key.inner.cache.lock();
                    cache.at = Some(at);
                    cache.quotas = quotas;
                    cache.cooldown = cache.cooldown.filter(|c| *c > at);
                    drop(cache);
                    Ok(RedisTicket(TicketKind::Remote {
                        id,
                        seq,
                        cum,
                        cost: fields,
                    }))
                }
                Ok(Answer::Short {
                    wait,
                    field,
                    cooldown,
                    quotas,
                }) => {
                    inner.answered(None);
                    let until = at + wait;
                    let mut cache = key.inner.cache.lock();
                    cache.at = Some(at);
                    if cooldown {
                        cache.cooldown = Some(until);
                    } else {
                        cache.quotas = quotas;
                    }
                    drop(cache);
                    let resource = field.map_or(Resource::Requests, |f| RESOURCES[f].clone());
                    Err(Shortage::new(until.max(now), resource, cooldown))
                }
                Err(failure) => {
                    inner.failed(&failure);
                    let (generation, local) =
                        inner.fallback().unwrap_or_else(|| (0, settings.share(1)));
                    store.reserve_locally(&key, &cost, now, generation, &local)
                }
            }
        })))
    }

    fn estimate(
        &self,
        key: &RedisKey,
        cost: &Cost,
        ahead: &Cost,
        now: Instant,
    ) -> Option<Shortage> {
        if let Some((generation, local)) = self.inner.fallback() {
            return local.estimate(&key.local(generation, &local), cost, ahead, now);
        }
        let cache = key.inner.cache.lock();
        if let Some(until) = cache.cooldown.filter(|c| *c > now) {
            return Some(Shortage::new(until, Resource::Requests, true));
        }
        // Only declared quotas refill at a known rate: the rest informs
        // nothing certain.
        let at = cache.at?;
        let need = cost.fields();
        let ahead = ahead.fields();
        let mut worst: Option<Shortage> = None;
        for quota in cache.quotas.iter().filter(|q| q.source == Source::Declared) {
            let want = need[quota.field].saturating_add(ahead[quota.field]) as f64;
            if let Some(until) = quota.room_for(want, at, now)
                && worst.as_ref().is_none_or(|w| until > w.until)
            {
                worst = Some(Shortage::new(until, RESOURCES[quota.field].clone(), false));
            }
        }
        worst
    }

    fn release(&self, key: &RedisKey, ticket: RedisTicket, sent: bool, now: Instant) {
        match ticket.0 {
            TicketKind::Local { generation, ticket } => {
                if let Some((g, local)) = self.inner.fallback()
                    && g == generation
                {
                    local.release(&key.local(g, &local), ticket, sent, now);
                }
            }
            remote => self.settle_remote(key, RedisTicket(remote), sent, None),
        }
    }

    fn settle(
        &self,
        key: &RedisKey,
        ticket: RedisTicket,
        report: &Report<'_>,
        now: Instant,
    ) -> Option<Instant> {
        match ticket.0 {
            TicketKind::Local { generation, ticket } => {
                match self.inner.fallback().filter(|(g, _)| *g == generation) {
                    Some((g, local)) => local.settle(&key.local(g, &local), ticket, report, now),
                    // Admitted locally, answered once back on Redis: the
                    // local state is gone, but a pushback still holds this
                    // process back.
                    None => {
                        let cooldown = report.cooldown?;
                        let until = now + cooldown.min(self.inner.settings.max_cooldown);
                        let mut cache = key.inner.cache.lock();
                        cache.cooldown = Some(cache.cooldown.map_or(until, |c| c.max(until)));
                        Some(until)
                    }
                }
            }
            remote => {
                let charge = report.charged != Charged::No;
                self.settle_remote(key, RedisTicket(remote), charge, Some(report));
                let cooldown = report.cooldown?;
                let until = now + cooldown.min(self.inner.settings.max_cooldown);
                let mut cache = key.inner.cache.lock();
                cache.cooldown = Some(cache.cooldown.map_or(until, |c| c.max(until)));
                Some(until)
            }
        }
    }

    fn room_at(&self, key: &RedisKey, now: Instant) -> Option<Instant> {
        if let Some((generation, local)) = self.inner.fallback() {
            return local.room_at(&key.local(generation, &local), now);
        }
        let cache = key.inner.cache.lock();
        if let Some(until) = cache.cooldown.filter(|c| *c > now) {
            return Some(until);
        }
        let at = cache.at?;
        cache
            .quotas
            .iter()
            .filter(|q| q.field == 0)
            .filter_map(|q| q.room_for(1.0, at, now))
            .max()
    }

    fn cooldown_until(&self, key: &RedisKey, now: Instant) -> Option<Instant> {
        if let Some((generation, local)) = self.inner.fallback() {
            return local.cooldown_until(&key.local(generation, &local), now);
        }
        key.inner.cache.lock().cooldown.filter(|c| *c > now)
    }

    fn snapshot(&self, key: &RedisKey, now: Instant) -> Vec<ResourceSnapshot> {
        if let Some((generation, local)) = self.inner.fallback() {
            return local.snapshot(&key.local(generation, &local), now);
        }
        let cache = key.inner.cache.lock();
        let Some(at) = cache.at else {
            return Vec::new();
        };
        cache.quotas.iter().map(|q| q.snapshot(at, now)).collect()
    }
}

/// Builds a [`RedisStore`]; [`build`](Self::build) validates and does not
/// connect.
///
/// ```
/// use std::time::Duration;
/// use evenkeel_headers::Resource;
/// use evenkeel_quota::StaticQuota;
/// use evenkeel_quota::store::RedisStore;
///
/// let store = RedisStore::builder("redis://127.0.0.1:6379/0")
///     .timeout(Duration::from_millis(20))
///     .declare(StaticQuota::per_minute(Resource::Requests, 4_000))
///     .fail_closed()
///     .build()
///     .unwrap();
/// assert!(!store.is_fallback());
/// ```
#[derive(Debug, Clone)]
pub struct RedisStoreBuilder {
    url: String,
    /// The cluster's nodes, when it is one.
    nodes: Vec<String>,
    settings: Settings,
}

impl RedisStoreBuilder {
    fn new(url: String, nodes: Vec<String>) -> Self {
        RedisStoreBuilder {
            url,
            nodes,
            settings: Settings {
                timeout: Duration::from_millis(50),
                fail_closed: false,
                prefix: "evenkeel:".to_owned(),
                reservation_ttl: Duration::from_secs(60),
                idle_ttl: Duration::from_secs(600),
                heartbeat: Duration::from_secs(1),
                declared: Vec::new(),
                per_key: HashMap::new(),
                max_reset: Duration::from_secs(3600),
                max_cooldown: Duration::from_secs(3600),
                default_window: Duration::from_secs(1),
                stale_after: Duration::from_secs(3600),
                events: Events::none(),
            },
        }
    }

    /// How long one call to Redis may take (50 ms by default) before the
    /// process paces itself locally. Field: `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// Refuse requests (with `QuotaExhausted`, through the layer) while
    /// Redis does not answer, instead of pacing locally.
    #[must_use]
    pub fn fail_closed(mut self) -> Self {
        self.settings.fail_closed = true;
        self
    }

    /// The prefix of every Redis key the store writes (`evenkeel:` by
    /// default): a key `k` lives in `PREFIX{k}:s` and `PREFIX{k}:f`, and the
    /// heartbeat in `PREFIXprocs`. Field: `prefix`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.prefix = prefix.into();
        self
    }

    /// How long an admitted request holds its cost in flight when no
    /// answer settles it (60 s by default): a process that crashes gives
    /// its reservations back after this long. Set it above the longest
    /// request. Field: `reservation_ttl`.
    #[must_use]
    pub fn reservation_ttl(mut self, ttl: Duration) -> Self {
        self.settings.reservation_ttl = ttl;
        self
    }

    /// How long a key nobody uses stays in Redis (10 minutes by default,
    /// and never less than its cooldown or a reservation). Field:
    /// `idle_ttl`.
    #[must_use]
    pub fn idle_ttl(mut self, ttl: Duration) -> Self {
        self.settings.idle_ttl = ttl;
        self
    }

    /// How often the process tells Redis it is alive and checks that Redis
    /// answers (1 s by default). A process not heard from for three
    /// periods no longer counts in the share each process takes while
    /// Redis is down. Field: `heartbeat`.
    #[must_use]
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.settings.heartbeat = every;
        self
    }

    /// Declares `quota` for every key (see [`StaticQuota`]): one quota for
    /// the whole fleet.
    #[must_use]
    pub fn declare(mut self, quota: StaticQuota) -> Self {
        self.settings.declared.push(quota);
        self
    }

    /// Declares `quota` for `key` only.
    #[must_use]
    pub fn declare_for(mut self, key: impl Into<String>, quota: StaticQuota) -> Self {
        self.settings
            .per_key
            .entry(key.into())
            .or_default()
            .push(quota);
        self
    }

    /// The longest reset taken from a header (1 hour by default). Field:
    /// `max_reset`.
    #[must_use]
    pub fn max_reset(mut self, max: Duration) -> Self {
        self.settings.max_reset = max;
        self
    }

    /// The longest cooldown a server's wait can put on a key (1 hour by
    /// default). Field: `max_cooldown`.
    #[must_use]
    pub fn max_cooldown(mut self, max: Duration) -> Self {
        self.settings.max_cooldown = max;
        self
    }

    /// How long a quota reported without a reset is assumed to take to
    /// come back (1 s by default). Field: `default_window`.
    #[must_use]
    pub fn default_window(mut self, window: Duration) -> Self {
        self.settings.default_window = window;
        self
    }

    /// A learned quota with no fresh reading for this long is forgotten
    /// (1 hour by default). Field: `stale_after`.
    #[must_use]
    pub fn stale_after(mut self, after: Duration) -> Self {
        self.settings.stale_after = after;
        self
    }

    /// Reports [`Event::QuotaStoreFailed`] and
    /// [`Event::QuotaStoreRecovered`] to `listener` (for example
    /// `evenkeel-metrics`'s `MetricsListener`).
    #[must_use]
    pub fn on_event(mut self, listener: impl Listener) -> Self {
        self.settings.events = self.settings.events.and(Events::new(listener));
        self
    }

    #[cfg(feature = "redis-cluster")]
    fn cluster(&self) -> Result<Backend, RedisError> {
        redis::cluster::ClusterClient::builder(self.nodes.iter().map(String::as_str))
            .connection_timeout(self.settings.timeout)
            .response_timeout(self.settings.timeout)
            .build()
            .map(Backend::Cluster)
    }

    #[cfg(not(feature = "redis-cluster"))]
    fn cluster(&self) -> Result<Backend, RedisError> {
        unreachable!("cluster nodes are only set with the `redis-cluster` feature")
    }

    /// Validates the URL and the settings, and builds the store. Nothing
    /// is sent until the store is first used.
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::InvalidUrl`] (quoting the URL) or
    /// [`RedisStoreError::Config`] (naming the field).
    pub fn build(self) -> Result<RedisStore, RedisStoreError> {
        let invalid = |source| RedisStoreError::InvalidUrl {
            url: self.url.clone(),
            source,
        };
        let client = if self.nodes.is_empty() {
            Backend::Single(Client::open(self.url.as_str()).map_err(invalid)?)
        } else {
            self.cluster().map_err(invalid)?
        };
        let s = &self.settings;
        const YEAR: Duration = Duration::from_secs(366 * 86_400);
        let in_range = |field: &'static str, d: Duration, max: Duration| {
            if d.is_zero() || d > max {
                Err(ConfigError::new(
                    field,
                    format!("must be more than zero and at most {max:?}, got {d:?}"),
                ))
            } else {
                Ok(())
            }
        };
        in_range("timeout", s.timeout, Duration::from_secs(60))?;
        in_range("reservation_ttl", s.reservation_ttl, YEAR)?;
        in_range("idle_ttl", s.idle_ttl, YEAR)?;
        in_range("heartbeat", s.heartbeat, Duration::from_secs(3600))?;
        in_range("max_reset", s.max_reset, YEAR)?;
        in_range("max_cooldown", s.max_cooldown, YEAR)?;
        in_range("stale_after", s.stale_after, YEAR)?;
        in_range("default_window", s.default_window, s.max_reset)?;
        if s.prefix.contains(['{', '}']) {
            return Err(ConfigError::new("prefix", "must not contain `{` or `}`").into());
        }
        for quota in s.declared.iter().chain(s.per_key.values().flatten()) {
            quota.validate()?;
        }
        let id = {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u32(std::process::id());
            format!("{:016x}", hasher.finish())
        };
        Ok(RedisStore {
            inner: Arc::new(Inner {
                url: self.url,
                client,
                conn: tokio::sync::OnceCell::new(),
                settings: self.settings,
                reserve: Script::new(RESERVE_LUA),
                settle: Script::new(SETTLE_LUA),
                heartbeat: Script::new(HEARTBEAT_LUA),
                id,
                next: AtomicU64::new(0),
                health: Mutex::new(Health {
                    down: None,
                    generation: 0,
                    local: None,
                    live: 1,
                }),
                watching: AtomicBool::new(false),
            }),
        })
    }
}
