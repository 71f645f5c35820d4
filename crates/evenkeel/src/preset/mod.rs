//! The preset stack: every evenkeel layer, in the right order, with
//! defaults from the research behind each crate.

mod classify;
mod connector;
mod endpoint;
#[cfg(feature = "reqwest-middleware")]
mod middleware;
#[cfg(feature = "hyper")]
mod proxy;
#[cfg(feature = "reqwest")]
mod reqwest_client;
mod timeout;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use evenkeel_core::body::Reuse;
use evenkeel_core::event::{Events, Listener};
use evenkeel_core::ext::AttemptContext;
use evenkeel_core::observe::{Observe, ObserveLayer};
use evenkeel_core::rng::Jitter;
use evenkeel_core::sse::{Sse, SseBody, SseLayer};
use evenkeel_core::{BoxError, ConfigError};
use evenkeel_failover::{
    BaseUrl, BaseUrlLayer, Endpoint, EndpointStatus, Failover, FailoverHandle,
};
use evenkeel_headers::Resource;
use evenkeel_limit::body::LimitBody;
use evenkeel_limit::{Aimd, Algorithm, Gradient, Limit, LimitHandle, LimitLayer, Sample, Vegas};
use evenkeel_metrics::{Metrics, MetricsLayer, Scope};
use evenkeel_quota::{MemoryStore, Quota, QuotaHandle, QuotaLayer, QuotaStore, StaticQuota};
use evenkeel_retry::{Retry, RetryBudget, RetryLayer};
use http::{Request, Uri};
use tower::{Layer, ServiceBuilder};
use tower_service::Service;

pub use classify::PresetClassifier;
#[cfg(feature = "hyper")]
pub use connector::{
    ConnectionHandle, DEFAULT_KEEP_ALIVE_MARGIN, DEFAULT_POOL_IDLE_TIMEOUT, HyperClient,
    HyperClientFuture, HyperConnector, MarkConnect, MarkConnectFuture, MarkedIo,
};
pub use connector::{Connector, ConnectorFn, connector_fn};
pub use endpoint::{PresetCost, PresetEndpoint, PresetKey};
#[cfg(feature = "reqwest-middleware")]
pub use middleware::{EvenkeelMiddleware, NextFuture, NextService};
#[cfg(feature = "hyper")]
pub use proxy::{
    DEFAULT_PROXY_TIMEOUT, Proxy, ProxyEnv, ProxyError, ProxyFailure, ProxyKind, ProxyRoute,
    ProxyStream, RoutedConnector, Via,
};
#[cfg(feature = "reqwest")]
pub use reqwest_client::{
    ReqwestConnector, ReqwestFuture, ReqwestService, reqwest_client_builder,
    reqwest_client_builder_with_roots,
};
pub use timeout::{AttemptTimeout, TimeoutFuture};

/// Attempts per request, the first included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The total deadline over every attempt and every wait.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// The timeout of each attempt on an endpoint.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest server-requested wait the stack sleeps through.
pub const DEFAULT_MAX_SERVER_WAIT: Duration = Duration::from_secs(120);
/// The longest a request waits for quota on an endpoint before it fails
/// over (or fails with `QuotaExhausted`), and for a cooling endpoint when
/// every endpoint is cooling down.
pub const DEFAULT_MAX_QUOTA_WAIT: Duration = Duration::from_secs(10);
/// The longest wait for one frame of a response body (the retry layer's
/// default).
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = evenkeel_retry::DEFAULT_BODY_IDLE_TIMEOUT;
/// How long an endpoint's quota key cools down after a 429 that gave no
/// usable wait: shorter than the retry layer's shortest throttle backoff
/// (375 ms), so the retry that follows is never held back by it.
pub const BARE_429_COOLDOWN: Duration = Duration::from_millis(250);

/// The stack of one endpoint: base URL → quota (its numbers in the store
/// `St`, [`MemoryStore`] unless [`PresetBuilder::quota_store`] names
/// another) → adaptive limit → metrics per attempt → the observer that
/// judges each answer once → attempt timeout → the event-stream reader →
/// connector.
pub type EndpointStack<S, St = MemoryStore> = BaseUrl<
    Quota<
        Limit<
            Metrics<Observe<AttemptTimeout<Sse<S>>, PresetClassifier>, PresetClassifier>,
            PresetLimit,
            PresetClassifier,
        >,
        PresetKey,
        PresetCost,
        St,
    >,
>;

/// The body of the preset's responses over a connector whose responses
/// carry `B`: bounded by the retry layer, holding an event stream's
/// concurrency permit until it ends, read for error events inside a
/// stream.
pub type PresetBody<B> = evenkeel_retry::body::ResponseBody<LimitBody<SseBody<B>>>;

/// The whole stack: metrics per call → retry (with the total deadline) →
/// failover over [`EndpointStack`]s.
pub type Stack<S, St = MemoryStore> = Metrics<
    Retry<Failover<EndpointStack<S, St>, PresetClassifier, Reuse>, PresetClassifier>,
    PresetClassifier,
>;

/// The preset client: a [`Stack`] and handles on its state.
///
/// Made by [`Preset::builder`]. Cheap to clone (clones share every
/// budget, quota, limit and endpoint state). A `tower::Service` over
/// `http::Request<B>` for any body `B: http_body::Body + Unpin`; requests
/// carry a path (`/v1/messages`) or an absolute URI, and the chosen
/// endpoint supplies scheme, authority and base path.
///
/// `St` is where quota state lives: a [`MemoryStore`] of this process by
/// default, or the store given to [`PresetBuilder::quota_store`] (a
/// `RedisStore` shares one quota across every process using it).
pub struct Preset<S, St: QuotaStore = MemoryStore> {
    stack: Stack<S, St>,
    failover: FailoverHandle<EndpointStack<S, St>>,
    state: Arc<State<St>>,
}

struct State<St: QuotaStore> {
    budget: RetryBudget,
    store: St,
    quotas: Vec<(String, QuotaHandle<St>)>,
    limits: Vec<(String, LimitHandle)>,
}

impl Preset<()> {
    /// A builder with the defaults: 3 attempts, a 30 s total deadline, a
    /// 10 s attempt timeout, server waits honoured up to 120 s, a 20 %
    /// retry budget, quota waits up to 10 s, AIMD concurrency per endpoint,
    /// metrics through the `metrics` facade.
    pub fn builder() -> PresetBuilder {
        PresetBuilder::default()
    }
}

impl<S, St: QuotaStore> Preset<S, St> {
    /// The retry budget.
    pub fn budget(&self) -> &RetryBudget {
        &self.state.budget
    }

    /// Each endpoint's routing state, in priority order.
    pub fn endpoints(&self) -> Vec<EndpointStatus> {
        self.failover.endpoints()
    }

    /// The balancer's handle: endpoint states, failover counts, and adding,
    /// removing or draining endpoints at run time.
    pub fn failover(&self) -> &FailoverHandle<EndpointStack<S, St>> {
        &self.failover
    }

    /// Each endpoint's quota handle, by endpoint name.
    pub fn quotas(&self) -> &[(String, QuotaHandle<St>)] {
        &self.state.quotas
    }

    /// The store every endpoint's quota state lives in (one store for all
    /// endpoints: endpoints with the same quota key share its state).
    pub fn quota_store(&self) -> &St {
        &self.state.store
    }

    /// Each endpoint's concurrency limit handle, by endpoint name.
    pub fn limits(&self) -> &[(String, LimitHandle)] {
        &self.state.limits
    }

    /// The stack itself.
    pub fn get_ref(&self) -> &Stack<S, St> {
        &self.stack
    }

    /// Unwraps the stack.
    pub fn into_inner(self) -> Stack<S, St> {
        self.stack
    }
}

impl<S: Clone, St: QuotaStore> Clone for Preset<S, St> {
    fn clone(&self) -> Self {
        Preset {
            stack: self.stack.clone(),
            failover: self.failover.clone(),
            state: Arc::clone(&self.state),
        }
    }
}

impl<S, St: QuotaStore> fmt::Debug for Preset<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Preset")
            .field(
                "endpoints",
                &self.state.limits.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("budget", &self.state.budget)
            .field("quota_store", &self.state.store)
            .finish_non_exhaustive()
    }
}

impl<S, St, B> Service<Request<B>> for Preset<S, St>
where
    St: QuotaStore,
    Stack<S, St>: Service<Request<B>>,
{
    type Response = <Stack<S, St> as Service<Request<B>>>::Response;
    type Error = <Stack<S, St> as Service<Request<B>>>::Error;
    type Future = <Stack<S, St> as Service<Request<B>>>::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.stack.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The request's context, made here at the top so that every layer,
        // the per-call metrics included, reads the one verdict on each
        // attempt's answer.
        if AttemptContext::of(&request).is_none() {
            request
                .extensions_mut()
                .insert(AttemptContext::new(1, None));
        }
        self.stack.call(request)
    }
}

/// The concurrency algorithm each endpoint's limiter runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PresetLimit {
    /// Loss-based: grows while requests succeed, shrinks ×0.9 on 429, 503,
    /// 529 and timeouts. The default: an LLM API's latency depends on the
    /// answer's length, which misleads latency-based algorithms, while its
    /// pushback is explicit.
    Aimd(Aimd),
    /// Latency-based (Gradient2 with drop handling).
    Gradient(Gradient),
    /// Latency-based (Vegas with a baseline probe).
    Vegas(Vegas),
    /// A fixed limit.
    Fixed(usize),
}

impl Default for PresetLimit {
    fn default() -> Self {
        PresetLimit::Aimd(
            Aimd::builder()
                .min_limit(1)
                .build()
                .expect("the preset's AIMD settings are valid"),
        )
    }
}

impl Algorithm for PresetLimit {
    fn initial_limit(&self) -> usize {
        match self {
            PresetLimit::Aimd(a) => a.initial_limit(),
            PresetLimit::Gradient(a) => a.initial_limit(),
            PresetLimit::Vegas(a) => a.initial_limit(),
            PresetLimit::Fixed(n) => *n,
        }
    }

    fn update(&mut self, sample: &Sample) -> usize {
        match self {
            PresetLimit::Aimd(a) => a.update(sample),
            PresetLimit::Gradient(a) => a.update(sample),
            PresetLimit::Vegas(a) => a.update(sample),
            PresetLimit::Fixed(n) => *n,
        }
    }
}

/// Builds a [`Preset`]; [`build`](PresetBuilder::build) validates the whole
/// configuration and names the field at fault.
///
/// `St` is the quota store the preset will run on: [`MemoryStore`] until
/// [`quota_store`](Self::quota_store) names another.
pub struct PresetBuilder<St = MemoryStore> {
    store: StoreSource<St>,
    endpoints: Vec<PresetEndpoint>,
    quota_key: Option<String>,
    cost: PresetCost,
    max_attempts: u32,
    deadline: Duration,
    attempt_timeout: Duration,
    first_event_timeout: Option<Duration>,
    max_server_wait: Duration,
    max_quota_wait: Duration,
    body_idle_timeout: Option<Duration>,
    budget: Option<RetryBudget>,
    quotas: Vec<StaticQuota>,
    limit: PresetLimit,
    classifier: PresetClassifier,
    events: Events,
    jitter: Jitter,
    #[cfg(feature = "hyper")]
    proxy_env: proxy::ProxyEnv,
    /// `via_proxies` was called before any endpoint was added.
    #[cfg(feature = "hyper")]
    stray_proxies: bool,
}

/// Where the preset's quota store comes from.
enum StoreSource<St> {
    /// A [`MemoryStore`] made by `build` with the declared quotas (the
    /// function is the identity: `St` is `MemoryStore`).
    Memory(fn(MemoryStore) -> St),
    /// The store given to [`PresetBuilder::quota_store`].
    Given(St),
}

impl Default for PresetBuilder {
    fn default() -> Self {
        PresetBuilder {
            store: StoreSource::Memory(std::convert::identity),
            endpoints: Vec::new(),
            quota_key: None,
            cost: PresetCost::default(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            deadline: DEFAULT_DEADLINE,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            first_event_timeout: None,
            max_server_wait: DEFAULT_MAX_SERVER_WAIT,
            max_quota_wait: DEFAULT_MAX_QUOTA_WAIT,
            body_idle_timeout: Some(DEFAULT_BODY_IDLE_TIMEOUT),
            budget: None,
            quotas: Vec::new(),
            limit: PresetLimit::default(),
            classifier: PresetClassifier::default(),
            events: Events::none(),
            jitter: Jitter::thread_local(),
            #[cfg(feature = "hyper")]
            proxy_env: proxy::ProxyEnv::process(),
            #[cfg(feature = "hyper")]
            stray_proxies: false,
        }
    }
}

impl<St> PresetBuilder<St> {
    /// Keeps every endpoint's quota state in `store` instead of a
    /// [`MemoryStore`] of this process. One store serves every endpoint;
    /// the quota key (see [`quota_key`](Self::quota_key)) decides which
    /// state a request reads, so endpoints, presets and processes that
    /// share a store and a key pace against one quota.
    ///
    /// Quotas the store should enforce before any header is read are the
    /// store's own settings: [`declare`](Self::declare) and
    /// [`rate_limit`](Self::rate_limit) apply to the built-in
    /// [`MemoryStore`], and [`build`](Self::build) refuses them next to a
    /// store given here rather than leave them unenforced.
    ///
    /// ```
    /// use std::time::Duration;
    /// use evenkeel::Preset;
    /// use evenkeel::quota::{MemoryStore, StaticQuota};
    /// use evenkeel::headers::Resource;
    ///
    /// // Two presets (two services of one process, or, with a shared
    /// // store, two processes) on one API key.
    /// let store = MemoryStore::builder()
    ///     .declare(StaticQuota::new(Resource::Requests, 3000, Duration::from_secs(60)))
    ///     .build()?;
    /// let a = Preset::builder()
    ///     .endpoint("https://api.anthropic.com")
    ///     .quota_key("team-key")
    ///     .quota_store(store.clone())
    ///     .build_https()?;
    /// let b = Preset::builder()
    ///     .endpoint("https://api.anthropic.com")
    ///     .quota_key("team-key")
    ///     .quota_store(store)
    ///     .build_https()?;
    /// # drop((a, b));
    /// # Ok::<(), evenkeel::core::ConfigError>(())
    /// ```
    pub fn quota_store<St2>(self, store: St2) -> PresetBuilder<St2>
    where
        St2: QuotaStore + Clone,
    {
        PresetBuilder {
            store: StoreSource::Given(store),
            endpoints: self.endpoints,
            quota_key: self.quota_key,
            cost: self.cost,
            max_attempts: self.max_attempts,
            deadline: self.deadline,
            attempt_timeout: self.attempt_timeout,
            max_server_wait: self.max_server_wait,
            max_quota_wait: self.max_quota_wait,
            body_idle_timeout: self.body_idle_timeout,
            first_event_timeout: self.first_event_timeout,
            budget: self.budget,
            quotas: self.quotas,
            limit: self.limit,
            classifier: self.classifier,
            events: self.events,
            jitter: self.jitter,
            #[cfg(feature = "hyper")]
            proxy_env: self.proxy_env,
            #[cfg(feature = "hyper")]
            stray_proxies: self.stray_proxies,
        }
    }

    /// Adds an endpoint by base URL (`https://api.anthropic.com`,
    /// `http://10.0.0.7:8080/anthropic`). The first is the primary; each
    /// further one is a backup tried when those before it are down,
    /// ejected or out of quota.
    pub fn endpoint(mut self, base_url: impl Into<String>) -> Self {
        self.endpoints.push(PresetEndpoint::new(base_url));
        self
    }

    /// Adds an endpoint with a name for events and metrics (the default
    /// name is the URL's authority).
    pub fn named_endpoint(mut self, name: impl Into<String>, base_url: impl Into<String>) -> Self {
        self.endpoints
            .push(PresetEndpoint::new(base_url).name(name));
        self
    }

    /// Adds an endpoint with settings of its own: a name, request headers
    /// (its credentials), a quota key. See [`PresetEndpoint`].
    pub fn add_endpoint(mut self, endpoint: PresetEndpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Reaches the endpoint added last only through `proxies`, one failover
    /// route each, in this order; see [`PresetEndpoint::via_proxies`].
    ///
    /// ```
    /// use evenkeel::Preset;
    ///
    /// let preset = Preset::builder()
    ///     .endpoint("https://api.anthropic.com")
    ///     .via_proxies(["http://proxy1:3128", "http://proxy2:8080"])
    ///     .build_https()?;
    /// assert_eq!(preset.endpoints()[1].name, "api.anthropic.com via proxy2:8080");
    /// assert_eq!(preset.endpoints()[1].tier, 1);
    /// # Ok::<(), evenkeel::core::ConfigError>(())
    /// ```
    #[cfg(feature = "hyper")]
    pub fn via_proxies<I, P>(mut self, proxies: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        match self.endpoints.pop() {
            Some(endpoint) => self.endpoints.push(endpoint.via_proxies(proxies)),
            None => self.stray_proxies = true,
        }
        self
    }

    /// Where the proxy environment is read for endpoints without proxies
    /// of their own, when the connector reads it
    /// ([`build_http`](Self::build_http), [`build_https`](Self::build_https),
    /// [`RoutedConnector`]); default [`ProxyEnv::process`].
    #[cfg(feature = "hyper")]
    pub fn proxy_env(mut self, env: ProxyEnv) -> Self {
        self.proxy_env = env;
        self
    }

    /// Ignores `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`:
    /// endpoints without proxies of their own go direct.
    #[cfg(feature = "hyper")]
    pub fn no_proxy_env(self) -> Self {
        self.proxy_env(ProxyEnv::none())
    }

    /// The quota key of every endpoint that names none of its own (default:
    /// each endpoint's authority). With a shared quota store, every
    /// process using one API key should use one quota key.
    pub fn quota_key(mut self, key: impl Into<String>) -> Self {
        self.quota_key = Some(key.into());
        self
    }

    /// How a request's quota cost is estimated (default one request, no
    /// tokens; [`PresetCost::llm`] reads Anthropic and OpenAI bodies, so
    /// token quotas pace without the caller attaching a `Cost`).
    pub fn cost(mut self, cost: PresetCost) -> Self {
        self.cost = cost;
        self
    }

    /// Attempts per request, the first included (default 3; 1 disables
    /// retries).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The total deadline over every attempt and wait (default 30 s).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The timeout of each attempt (default 10 s); at most the deadline.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// How long an event stream (`text/event-stream`) may take after its
    /// head to send its first content event (default `None`: the attempt
    /// timeout bounds it); at most the attempt timeout. Until that event
    /// the answer is held back, so an error event before it is retried
    /// like the status it stands for and the caller never sees it (see
    /// [`evenkeel_core::sse`]).
    pub fn first_event_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.first_event_timeout = timeout;
        self
    }

    /// The longest server-requested wait slept through (default 120 s).
    pub fn max_server_wait(mut self, wait: Duration) -> Self {
        self.max_server_wait = wait;
        self
    }

    /// The longest a request waits for quota on an endpoint, or for a
    /// cooling endpoint when every endpoint is cooling down (default 10 s).
    /// Such a wait is a wait, not an attempt: it is slept inside the
    /// deadline. A wait that cannot fit the deadline or this cap fails the
    /// request at once with `QuotaExhausted` (or `NoEndpointAvailable`
    /// naming the endpoint), and nothing is sent.
    pub fn max_quota_wait(mut self, wait: Duration) -> Self {
        self.max_quota_wait = wait;
        self
    }

    /// The longest wait for one frame of a response body (default 30 s;
    /// `None` leaves bodies bounded by the deadline alone). A body that
    /// stalls past it, or past the deadline, ends with `TimedOut`.
    pub fn body_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.body_idle_timeout = timeout;
        self
    }

    /// The retry budget (default 20 % of requests plus 10 per second over
    /// 10 s).
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Declares a known quota (from the provider's tier table), applied to
    /// every endpoint from the first request; learned headers tighten it.
    pub fn declare(mut self, quota: StaticQuota) -> Self {
        self.quotas.push(quota);
        self
    }

    /// Declares a request rate for an API that sends no rate-limit
    /// headers: `requests` per `per`, spread evenly (a burst of one), on
    /// every endpoint. `rate_limit(3000, Duration::from_secs(60))` is
    /// "3000/min". Learned headers still tighten it.
    pub fn rate_limit(self, requests: u64, per: Duration) -> Self {
        self.declare(StaticQuota::new(Resource::Requests, requests, per).with_burst(1))
    }

    /// Like [`rate_limit`](Self::rate_limit), letting up to `burst`
    /// requests go at once.
    pub fn rate_limit_with_burst(self, requests: u64, per: Duration, burst: u64) -> Self {
        self.declare(StaticQuota::new(Resource::Requests, requests, per).with_burst(burst))
    }

    /// The concurrency algorithm of each endpoint (default AIMD).
    pub fn limit(mut self, limit: PresetLimit) -> Self {
        self.limit = limit;
        self
    }

    /// How every layer reads outcomes (default HTTP statuses; use
    /// [`PresetClassifier::grpc`] over a tonic `Channel`).
    pub fn classifier(mut self, classifier: PresetClassifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// Reports every decision (retries, give-ups, limits, quota waits,
    /// endpoint states, failovers) to `listener` as well. Each call adds a
    /// listener; none replaces another.
    pub fn on_event(mut self, listener: impl Listener) -> Self {
        self.events = self.events.and(Events::new(listener));
        self
    }

    /// Seeds the jitter of backoff and balancing, for reproducible runs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.jitter = Jitter::seeded(seed);
        self
    }

    /// Validates the configuration and builds the stack, with one service
    /// per endpoint from `connector`.
    pub fn build<C>(self, connector: C) -> Result<Preset<C::Service, St>, ConfigError>
    where
        C: Connector,
        C::Service: Clone,
        St: QuotaStore + Clone,
    {
        if self.endpoints.is_empty() {
            return Err(ConfigError::new(
                "endpoints",
                "is empty: add at least one with `endpoint(url)`",
            ));
        }
        // Every URL first, before any layer reads one, so the error names
        // what the user typed and the method that took it.
        let uris = self
            .endpoints
            .iter()
            .map(|e| endpoint_uri(&e.url))
            .collect::<Result<Vec<Uri>, ConfigError>>()?;
        let routes = self.routes(&connector, &uris)?;
        if self.attempt_timeout.is_zero() {
            return Err(ConfigError::new(
                "attempt_timeout",
                "must be greater than zero",
            ));
        }
        if self.deadline.is_zero() {
            return Err(ConfigError::new("deadline", "must be greater than zero"));
        }
        if self.attempt_timeout > self.deadline {
            return Err(ConfigError::new(
                "attempt_timeout",
                format!(
                    "({:?}) must not exceed the total deadline ({:?})",
                    self.attempt_timeout, self.deadline
                ),
            ));
        }
        if let Some(first) = self.first_event_timeout
            && (first.is_zero() || first > self.attempt_timeout)
        {
            return Err(ConfigError::new(
                "first_event_timeout",
                format!(
                    "({first:?}) must be greater than zero and at most the attempt timeout ({:?})",
                    self.attempt_timeout
                ),
            ));
        }
        if self.max_quota_wait > self.deadline {
            return Err(ConfigError::new(
                "max_quota_wait",
                format!(
                    "({:?}) must not exceed the total deadline ({:?})",
                    self.max_quota_wait, self.deadline
                ),
            ));
        }

        // One store for every endpoint: the quota key picks the state.
        let store = match self.store {
            StoreSource::Memory(into) => {
                let mut memory = MemoryStore::builder().max_cooldown(self.max_server_wait);
                for declared in &self.quotas {
                    memory = memory.declare(declared.clone());
                }
                into(memory.build()?)
            }
            StoreSource::Given(store) => {
                if !self.quotas.is_empty() {
                    return Err(ConfigError::new(
                        "quota_store",
                        "keeps its own declared quotas: declare those given to the preset's \
                         `rate_limit` or `declare` on the store instead",
                    ));
                }
                store
            }
        };

        // Metrics go through the `metrics` facade: without a recorder
        // installed they cost next to nothing and record nowhere.
        // Calls have no endpoint yet: they are labelled with the primary's
        // host and port. Attempts carry their endpoint's.
        let primary = uris.first();
        // Rate-limit headroom is recorded once, per attempt, where each
        // response's endpoint is known.
        let mut call_metrics = MetricsLayer::builder()
            .classifier(self.classifier.clone())
            .rate_limits(false);
        if let Some((host, port)) = primary.and_then(host_and_port) {
            call_metrics = call_metrics.server_address(host).server_port(port);
        }
        let call_metrics = call_metrics.build()?;
        let events = self.events.clone().and(call_metrics.listener().events());

        let mut failover = Failover::builder()
            .max_cooldown(self.max_server_wait)
            .max_cooldown_wait(self.max_quota_wait)
            .classifier(self.classifier.clone())
            .events(events.clone())
            .jitter(self.jitter.clone());
        let mut quotas = Vec::new();
        let mut limits = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut tier = 0u32;
        for ((endpoint, uri), routes) in self.endpoints.iter().zip(uris).zip(routes) {
            let url = &endpoint.url;
            let endpoint_name = match &endpoint.name {
                Some(name) => name.clone(),
                None => uri
                    .authority()
                    .map(|a| a.to_string())
                    .ok_or_else(|| ConfigError::new("endpoint", format!("`{url}` has no host")))?,
            };
            for route in routes {
                let name = route.name(&endpoint_name);
                if names.contains(&name) {
                    return Err(ConfigError::new(
                        "endpoint",
                        format!("`{name}` is listed twice; give endpoints distinct names"),
                    ));
                }
                names.push(name.clone());
                let base = BaseUrlLayer::new(url)?.with_headers(endpoint_headers(endpoint)?);
                let key = match endpoint.quota_key.as_ref().or(self.quota_key.as_ref()) {
                    Some(key) if key.is_empty() => {
                        return Err(ConfigError::new("quota_key", "must not be empty"));
                    }
                    Some(key) => PresetKey::Named(key.as_str().into()),
                    None => PresetKey::Authority,
                };
                let quota = QuotaLayer::builder()
                    .key(key)
                    .estimator(self.cost)
                    .store(store.clone())
                    .max_wait(self.max_quota_wait)
                    .default_cooldown(BARE_429_COOLDOWN)
                    .events(events.clone())
                    .build()?;
                let limit = LimitLayer::adaptive(self.limit.clone())
                    .classifier(self.classifier.clone())
                    .name(name.clone())
                    .events(events.clone())
                    .build()?;
                // Attempts are counted where they happen: below failover, one
                // series per endpoint, failovers included.
                let mut attempt_metrics = MetricsLayer::builder()
                    .scope(Scope::Attempt)
                    .classifier(self.classifier.clone());
                if let Some((host, port)) = host_and_port(&uri) {
                    attempt_metrics = attempt_metrics.server_address(host).server_port(port);
                }
                let attempt_metrics = attempt_metrics.build()?;
                let service = route.connect(&connector, &uri).map_err(|e| {
                    ConfigError::new("connector", format!("cannot connect `{name}`: {e}"))
                })?;
                quotas.push((name.clone(), quota.handle()));
                limits.push((name.clone(), limit.handle()));
                let cooldown = quota.handle();
                // Below the attempt timeout, which also bounds the wait for
                // an event stream's first event.
                let sse = SseLayer::builder()
                    .first_event_timeout(self.first_event_timeout)
                    .events(events.clone())
                    .build()?;
                let stack = ServiceBuilder::new()
                    .layer(base)
                    .layer(quota)
                    .layer(limit)
                    .layer(attempt_metrics)
                    .layer(ObserveLayer::new(self.classifier.clone()))
                    .service(AttemptTimeout::new(
                        sse.layer(service),
                        self.attempt_timeout,
                    ));
                failover =
                    failover.endpoint(Endpoint::new(name, stack).tier(tier).cooldown(cooldown));
                tier += 1;
            }
        }
        // Below the retry layer, failover resends the body that layer keeps
        // rather than keeping it again.
        let failover = failover.build()?.reuse_bodies();
        let handle = failover.handle();

        let mut retry = RetryLayer::builder()
            .classifier(self.classifier.clone())
            .max_attempts(self.max_attempts)
            .deadline(self.deadline)
            .max_server_wait(self.max_server_wait)
            .body_idle_timeout(self.body_idle_timeout)
            .events(events)
            .jitter(self.jitter);
        if let Some(budget) = self.budget {
            retry = retry.budget(budget);
        }
        let retry = retry.build()?;
        let budget = retry.budget().clone();

        let stack = ServiceBuilder::new()
            .layer(call_metrics)
            .layer(retry)
            .service(failover);
        Ok(Preset {
            stack,
            failover: handle,
            state: Arc::new(State {
                budget,
                store,
                quotas,
                limits,
            }),
        })
    }

    /// Builds the stack on the hyper-util client over plain HTTP, for
    /// requests with `Full<Bytes>` bodies (see [`HyperConnector`] for
    /// others).
    ///
    /// Endpoints without proxies of their own follow the proxy environment
    /// (see [`ProxyEnv`]; [`no_proxy_env`](Self::no_proxy_env) turns it
    /// off); an `https://` proxy is reached over TLS with the web PKI
    /// roots when the `rustls` feature is on.
    #[cfg(feature = "hyper")]
    pub fn build_http(self) -> Result<Preset<HttpClient, St>, ConfigError>
    where
        St: QuotaStore + Clone,
    {
        self.build(RoutedConnector::http())
    }

    /// Builds the stack on the hyper-util client over HTTPS (rustls, web
    /// PKI roots) and plain HTTP, for requests with `Full<Bytes>` bodies.
    ///
    /// Endpoints without proxies of their own follow the proxy environment
    /// like curl (see [`ProxyEnv`]; [`no_proxy_env`](Self::no_proxy_env)
    /// turns it off).
    #[cfg(feature = "rustls")]
    pub fn build_https(self) -> Result<Preset<HttpsClient, St>, ConfigError>
    where
        St: QuotaStore + Clone,
    {
        self.build(RoutedConnector::https())
    }

    /// Each endpoint's routes, in order: its proxies, else the proxy the
    /// environment names for it (when the connector reads it), else
    /// direct. Every proxy URL is checked here.
    #[cfg(feature = "hyper")]
    fn routes<C: Connector>(
        &self,
        connector: &C,
        uris: &[Uri],
    ) -> Result<Vec<Vec<Route>>, ConfigError> {
        if self.stray_proxies {
            return Err(ConfigError::new(
                "via_proxies",
                "was called before any endpoint: call `endpoint(url)` first",
            ));
        }
        let mut all = Vec::with_capacity(uris.len());
        for (endpoint, uri) in self.endpoints.iter().zip(uris) {
            let mut proxies = endpoint
                .proxies
                .iter()
                .map(|p| Proxy::parse(p))
                .collect::<Result<Vec<_>, _>>()?;
            if proxies.is_empty()
                && connector.reads_proxy_env()
                && let Some(proxy) = self.proxy_env.proxy_for(uri)?
            {
                #[cfg(feature = "tracing")]
                tracing::info!(
                    endpoint = %endpoint.url,
                    proxy = %proxy,
                    "the proxy environment routes this endpoint through a proxy"
                );
                proxies.push(proxy);
            }
            for (i, proxy) in proxies.iter().enumerate() {
                if proxies[..i].iter().any(|p| p.uri() == proxy.uri()) {
                    return Err(ConfigError::new(
                        "via_proxies",
                        format!("`{proxy}` is listed twice for `{}`", endpoint.url),
                    ));
                }
            }
            if proxies.is_empty() {
                all.push(vec![Route::Direct]);
            } else {
                all.push(
                    ProxyRoute::group(&proxies)
                        .into_iter()
                        .map(|route| Route::Proxy(Box::new(route)))
                        .collect(),
                );
            }
        }
        Ok(all)
    }

    #[cfg(not(feature = "hyper"))]
    fn routes<C: Connector>(
        &self,
        _connector: &C,
        uris: &[Uri],
    ) -> Result<Vec<Vec<Route>>, ConfigError> {
        Ok(uris.iter().map(|_| vec![Route::Direct]).collect())
    }
}

/// How one failover entry of an endpoint reaches it.
enum Route {
    /// Straight to the endpoint.
    Direct,
    /// Through a proxy.
    #[cfg(feature = "hyper")]
    Proxy(Box<ProxyRoute>),
}

impl Route {
    /// The entry's name: the endpoint's, or `endpoint via host:port`.
    fn name(&self, endpoint: &str) -> String {
        match self {
            Route::Direct => endpoint.to_owned(),
            #[cfg(feature = "hyper")]
            Route::Proxy(route) => route.name(endpoint),
        }
    }

    fn connect<C: Connector>(&self, connector: &C, uri: &Uri) -> Result<C::Service, BoxError> {
        match self {
            Route::Direct => connector.connect(uri),
            #[cfg(feature = "hyper")]
            Route::Proxy(route) => connector.connect_via(uri, route),
        }
    }
}

/// An endpoint's headers, checked: the error names the header and the
/// endpoint.
fn endpoint_headers(endpoint: &PresetEndpoint) -> Result<http::HeaderMap, ConfigError> {
    let mut headers = http::HeaderMap::new();
    for (name, value) in &endpoint.headers {
        let bad = |why: String| {
            ConfigError::new(
                "header",
                format!("`{name}: {value}` on `{}` {why}", endpoint.url),
            )
        };
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad("has an invalid header name".to_owned()))?;
        let mut value = http::HeaderValue::from_str(value)
            .map_err(|_| bad("has an invalid header value".to_owned()))?;
        if name == http::header::AUTHORIZATION
            || name.as_str() == "x-api-key"
            || name.as_str() == "api-key"
        {
            value.set_sensitive(true);
        }
        headers.append(name, value);
    }
    Ok(headers)
}

/// An endpoint's base URL, checked: absolute, `http` or `https`, with a
/// host. The error quotes the URL and names the `endpoint` method.
fn endpoint_uri(url: &str) -> Result<Uri, ConfigError> {
    let refuse = |why: String| ConfigError::new("endpoint", why);
    if url.trim().is_empty() {
        return Err(refuse(format!(
            "(`{url:?}`) is empty: an unset environment variable? Pass a base URL such as \
             `https://api.anthropic.com`"
        )));
    }
    let uri: Uri = url.parse().map_err(|e| {
        refuse(format!(
            "`{url}` is not a URL ({e}); write it as `https://host[:port][/base/path]`"
        ))
    })?;
    let Some(scheme) = uri.scheme_str() else {
        let hint = if url.contains("//") || url.contains(":/") {
            "a malformed scheme: write `https://`".to_owned()
        } else {
            format!("no scheme: write `https://{url}`")
        };
        return Err(refuse(format!("`{url}` has {hint}")));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(refuse(format!(
            "`{url}` has the scheme `{scheme}`; only `http://` and `https://` are served"
        )));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(refuse(format!("`{url}` has no host")));
    }
    if uri.query().is_some() {
        return Err(refuse(format!(
            "`{url}` has a query; a base URL takes none"
        )));
    }
    Ok(uri)
}

/// The host and port an endpoint's URL names (the scheme's default port
/// when it names none), for the `server.address` and `server.port` labels.
fn host_and_port(uri: &Uri) -> Option<(String, u16)> {
    let host = uri.host().filter(|h| !h.is_empty())?;
    let port = uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    })?;
    Some((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    ))
}

/// The request body the connector sees for a caller's `B`: kept once for
/// resending, by the retry layer, and shared by the failover layer below.
#[cfg(any(feature = "hyper", feature = "reqwest"))]
pub type ConnectorBody<B = http_body_util::Full<bytes::Bytes>> = evenkeel_core::body::ReplayBody<B>;

/// The hyper-util client [`PresetBuilder::build_http`] uses: each route
/// straight to its endpoint or through its proxy ([`Via`]).
#[cfg(feature = "hyper")]
pub type HttpClient = HyperClient<Via>;

/// The hyper-util client [`PresetBuilder::build_https`] uses: TLS to the
/// endpoint over each route ([`Via`]), inside the tunnel for a proxy.
#[cfg(feature = "rustls")]
pub type HttpsClient = HyperClient<hyper_rustls::HttpsConnector<Via>>;

impl<St: fmt::Debug> fmt::Debug for PresetBuilder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store: &dyn fmt::Debug = match &self.store {
            StoreSource::Memory(_) => &"MemoryStore (built with the declared quotas)",
            StoreSource::Given(store) => store,
        };
        f.debug_struct("PresetBuilder")
            .field("quota_store", store)
            .field("endpoints", &self.endpoints)
            .field("quota_key", &self.quota_key)
            .field("cost", &self.cost)
            .field("max_attempts", &self.max_attempts)
            .field("deadline", &self.deadline)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("first_event_timeout", &self.first_event_timeout)
            .field("max_server_wait", &self.max_server_wait)
            .field("max_quota_wait", &self.max_quota_wait)
            .field("body_idle_timeout", &self.body_idle_timeout)
            .field("quotas", &self.quotas)
            .field("limit", &self.limit)
            .field("classifier", &self.classifier)
            .finish_non_exhaustive()
    }
}
