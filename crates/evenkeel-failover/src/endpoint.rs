//! Endpoints: what the balancer routes to, and what it knows about each.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use evenkeel_core::cooldown::Cooldown;
use evenkeel_core::event::EndpointState;
use tokio::time::Instant;

use crate::health::HealthHandle;

/// One endpoint of a [`Failover`](crate::Failover): a name, a priority tier
/// and the service that reaches it.
///
/// The service is the whole per-endpoint stack (quota → adaptive limit →
/// attempt timeout → client, typically), answering requests whose URI
/// carries a path; put a [`BaseUrlLayer`](crate::BaseUrlLayer) in it to
/// point the request at this endpoint's scheme, host and base path.
///
/// ```
/// use evenkeel_failover::Endpoint;
/// # let primary = tower::service_fn(|_: http::Request<()>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// # });
/// let endpoint = Endpoint::new("eu-west", primary).tier(0);
/// assert_eq!(endpoint.name(), "eu-west");
/// ```
pub struct Endpoint<S> {
    pub(crate) name: Arc<str>,
    pub(crate) tier: u32,
    pub(crate) service: S,
    pub(crate) cooldown: Option<Arc<dyn Cooldown>>,
    pub(crate) health: Option<HealthHandle>,
}

impl<S> Endpoint<S> {
    /// An endpoint named `name` (used in events, metrics and the handle),
    /// in tier 0 (the primary tier).
    pub fn new(name: impl Into<Arc<str>>, service: S) -> Self {
        Endpoint {
            name: name.into(),
            tier: 0,
            service,
            cooldown: None,
            health: None,
        }
    }

    /// Its priority tier: 0 is the primary, 1 the first backup, and so on.
    /// Requests go to the lowest-numbered tier that has an endpoint
    /// available.
    pub fn tier(mut self, tier: u32) -> Self {
        self.tier = tier;
        self
    }

    /// Where the balancer reads this endpoint's quota cooldown (a quota
    /// layer's handle, usually). While the cooldown ends further away than
    /// the balancer's [threshold](crate::FailoverBuilder::cooldown_threshold),
    /// the endpoint is skipped and traffic spills to the next endpoint.
    pub fn cooldown(mut self, cooldown: impl Cooldown) -> Self {
        self.cooldown = Some(Arc::new(cooldown));
        self
    }

    /// Like [`cooldown`](Self::cooldown), for a cooldown already shared.
    pub fn cooldown_arc(mut self, cooldown: Arc<dyn Cooldown>) -> Self {
        self.cooldown = Some(cooldown);
        self
    }

    /// The active health check that watches this endpoint. While it reports
    /// the endpoint unhealthy, no request is routed there (unless every
    /// endpoint is down: the balancer fails open); passing probes readmit
    /// an endpoint that was ejected for failing requests.
    pub fn health(mut self, health: HealthHandle) -> Self {
        self.health = Some(health);
        self
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint's service.
    pub fn service(&self) -> &S {
        &self.service
    }
}

impl<S: fmt::Debug> fmt::Debug for Endpoint<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("tier", &self.tier)
            .field("service", &self.service)
            .field("cooldown", &self.cooldown)
            .field("health", &self.health)
            .finish()
    }
}

/// What the balancer knows about one endpoint at one moment, from
/// [`FailoverHandle::endpoints`](crate::FailoverHandle::endpoints).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStatus {
    /// The endpoint's name.
    pub name: String,
    /// Its priority tier.
    pub tier: u32,
    /// Its routing state.
    pub state: EndpointState,
    /// Requests in flight on it, across every clone of the balancer.
    pub in_flight: usize,
    /// When its current ejection ends, if it is ejected.
    pub ejected_until: Option<Instant>,
    /// When its cooldown ends, if it is cooling down (a 429's wait, or its
    /// quota's [`Cooldown`]).
    pub cooling_until: Option<Instant>,
    /// How many times it has been ejected, net of the ejections forgiven
    /// by staying healthy since.
    pub times_ejected: u32,
    /// Failures in a row since its last success.
    pub consecutive_failures: u32,
    /// The verdict of its active health check, if it has one.
    pub health_check: Option<bool>,
}

/// The shared, lock-free record of one endpoint: everything but its service.
pub(crate) struct Meta {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    pub(crate) tier: u32,
    pub(crate) cooldown: Option<Arc<dyn Cooldown>>,
    pub(crate) health: Option<HealthHandle>,
    pub(crate) in_flight: AtomicUsize,
    /// Endpoint failures in a row.
    pub(crate) consecutive: AtomicU32,
    /// Connect failures in a row.
    pub(crate) connect_consecutive: AtomicU32,
    /// The success-rate window: successes in the high 32 bits, failures in
    /// the low 32.
    pub(crate) window: AtomicU64,
    /// When the window started (ticks).
    pub(crate) window_start: AtomicU64,
    /// When the current ejection ends (ticks); 0 when not ejected.
    pub(crate) ejected_until: AtomicU64,
    pub(crate) times_ejected: AtomicU32,
    /// When the endpoint last came back from an ejection (ticks); 0 never.
    pub(crate) readmitted_at: AtomicU64,
    /// Whether the endpoint is (or, once its ejection ends, will be)
    /// ramping up.
    pub(crate) ramping: AtomicBool,
    /// The health check's probe count when the endpoint was ejected.
    pub(crate) probe_mark: AtomicU64,
    /// A server-directed cooldown from a 429 or 503 with a wait (ticks).
    pub(crate) cooling_until: AtomicU64,
    pub(crate) draining: AtomicBool,
    pub(crate) removed: AtomicBool,
    /// The last state reported in an event ([`state_code`]).
    pub(crate) reported: AtomicU8,
}

impl Meta {
    pub(crate) fn new(
        id: u64,
        name: Arc<str>,
        tier: u32,
        cooldown: Option<Arc<dyn Cooldown>>,
        health: Option<HealthHandle>,
        now: u64,
    ) -> Self {
        Meta {
            id,
            name,
            tier,
            cooldown,
            health,
            in_flight: AtomicUsize::new(0),
            consecutive: AtomicU32::new(0),
            connect_consecutive: AtomicU32::new(0),
            window: AtomicU64::new(0),
            window_start: AtomicU64::new(now),
            ejected_until: AtomicU64::new(0),
            times_ejected: AtomicU32::new(0),
            readmitted_at: AtomicU64::new(0),
            ramping: AtomicBool::new(false),
            probe_mark: AtomicU64::new(0),
            cooling_until: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            reported: AtomicU8::new(state_code(EndpointState::Healthy)),
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("tier", &self.tier)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

pub(crate) fn state_code(state: EndpointState) -> u8 {
    match state {
        EndpointState::Healthy => 0,
        EndpointState::Ejected => 1,
        EndpointState::CoolingDown => 2,
        EndpointState::Draining => 3,
        EndpointState::Removed => 4,
        _ => 5,
    }
}

/// An endpoint as the registry holds it: its record and the service every
/// balancer clone and every failover attempt clones.
pub(crate) struct Entry<S> {
    pub(crate) meta: Arc<Meta>,
    pub(crate) service: Mutex<S>,
}

impl<S: Clone> Entry<S> {
    /// A fresh clone of the endpoint's service (not yet ready).
    pub(crate) fn service(&self) -> S {
        self.service
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl<S> fmt::Debug for Entry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.meta.fmt(f)
    }
}

/// One request in flight on an endpoint; dropping it releases the count.
pub(crate) struct InFlight {
    meta: Arc<Meta>,
}

impl InFlight {
    pub(crate) fn new(meta: Arc<Meta>) -> Self {
        meta.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { meta }
    }

    pub(crate) fn meta(&self) -> &Arc<Meta> {
        &self.meta
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.meta.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InFlight").field(&self.meta.name).finish()
    }
}
