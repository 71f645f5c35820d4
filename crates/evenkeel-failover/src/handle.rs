//! [`FailoverHandle`]: the endpoint set at run time.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use evenkeel_core::BoxError;
use evenkeel_core::event::EndpointState;
use tower::discover::{Change, Discover};

use crate::endpoint::{Endpoint, EndpointStatus};
use crate::outlier::Status;
use crate::registry::{NO_TIER, Now, Registry};

/// Changes and watches the endpoints of a [`Failover`](crate::Failover)
/// while it runs. Made by [`Failover::handle`](crate::Failover::handle);
/// cheap to clone, and every clone acts on the same balancer (all its
/// clones included).
///
/// Changes take effect for the next request each balancer clone readies.
///
/// ```
/// # use evenkeel_failover::{Endpoint, Failover};
/// # let svc = tower::service_fn(|_: http::Request<evenkeel_core::body::ReplayBody<String>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// # });
/// let failover = Failover::builder()
///     .endpoint(Endpoint::new("primary", svc.clone()))
///     .build()?;
/// let handle = failover.handle();
/// handle.insert(Endpoint::new("backup", svc).tier(1));
/// assert_eq!(handle.endpoints().len(), 2);
/// handle.drain("primary"); // nothing in flight: removed at once
/// assert_eq!(handle.endpoints()[0].name, "backup");
/// # Ok::<(), evenkeel_core::ConfigError>(())
/// ```
pub struct FailoverHandle<S> {
    registry: Arc<Registry<S>>,
}

impl<S> FailoverHandle<S> {
    pub(crate) fn new(registry: Arc<Registry<S>>) -> Self {
        FailoverHandle { registry }
    }

    /// Adds `endpoint`, replacing an endpoint of the same name (requests in
    /// flight on the old one finish there). Returns whether one was
    /// replaced.
    pub fn insert(&self, endpoint: Endpoint<S>) -> bool {
        self.registry.insert(endpoint)
    }

    /// Removes the endpoint named `name` at once; requests in flight on it
    /// finish. Returns whether it existed.
    pub fn remove(&self, name: &str) -> bool {
        self.registry.remove(name)
    }

    /// Sends no new request to the endpoint named `name`, and removes it
    /// once its requests in flight have finished (noticed by the next
    /// balancer readiness check or handle call). Returns whether it existed
    /// and was not draining already.
    pub fn drain(&self, name: &str) -> bool {
        self.registry.drain(name)
    }

    /// The state of every endpoint, by tier.
    pub fn endpoints(&self) -> Vec<EndpointStatus> {
        self.registry.purge_drained();
        let now = self.registry.lazy_now();
        self.registry
            .snapshot()
            .iter()
            .map(|e| self.status_of(&e.meta, &now))
            .collect()
    }

    /// The state of the endpoint named `name`.
    pub fn endpoint(&self, name: &str) -> Option<EndpointStatus> {
        self.registry.purge_drained();
        let now = self.registry.lazy_now();
        self.registry
            .snapshot()
            .iter()
            .find(|e| &*e.meta.name == name)
            .map(|e| self.status_of(&e.meta, &now))
    }

    fn status_of(&self, m: &crate::endpoint::Meta, now: &Now) -> EndpointStatus {
        let registry = &self.registry;
        let state = match registry.status(m, now) {
            Status::Available { .. } => EndpointState::Healthy,
            Status::Down => EndpointState::Ejected,
            Status::Cooling { .. } => EndpointState::CoolingDown,
            Status::Draining => EndpointState::Draining,
        };
        let ejected = m.ejected_until.load(Ordering::Acquire);
        let cooling = registry.cooling_until(m);
        let now = now.get();
        EndpointStatus {
            name: m.name.to_string(),
            tier: m.tier,
            state,
            in_flight: m.in_flight(),
            ejected_until: (ejected > now).then(|| registry.instant(ejected)),
            cooling_until: (cooling > now).then(|| registry.instant(cooling)),
            times_ejected: m.times_ejected.load(Ordering::Relaxed),
            consecutive_failures: m.consecutive.load(Ordering::Relaxed),
            health_check: m.health.as_ref().map(|h| h.is_healthy()),
        }
    }

    /// The best tier with an endpoint available, as the balancer last
    /// routed; `None` before the first request.
    pub fn active_tier(&self) -> Option<u32> {
        match self.registry.active_tier.load(Ordering::Relaxed) {
            NO_TIER => None,
            tier => u32::try_from(tier).ok(),
        }
    }

    /// Requests moved to another endpoint after a failed attempt, so far.
    pub fn failovers(&self) -> u64 {
        self.registry.failovers.load(Ordering::Relaxed)
    }

    /// Returns of traffic to a better tier, so far.
    pub fn failbacks(&self) -> u64 {
        self.registry.failbacks.load(Ordering::Relaxed)
    }

    /// Ejections, so far.
    pub fn ejections(&self) -> u64 {
        self.registry.ejections.load(Ordering::Relaxed)
    }

    /// Applies a [`Discover`] stream's changes until it ends: an insert
    /// adds the endpoint (replacing the one its key named before), a
    /// removal drains the endpoint. Spawn it:
    /// `tokio::spawn(handle.discover(stream))`.
    ///
    /// Returns the stream's first error, or `Ok` when it ends.
    ///
    /// ```
    /// use evenkeel_failover::{Endpoint, Failover};
    /// use tower::discover::Change;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let region = tower::service_fn(|_: http::Request<evenkeel_core::body::ReplayBody<String>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(()))
    /// # });
    /// let failover = Failover::builder().build().unwrap();
    /// let changes = futures_util::stream::iter([
    ///     Ok::<_, std::convert::Infallible>(Change::Insert("eu", Endpoint::new("eu-west", region.clone()))),
    ///     Ok(Change::Insert("us", Endpoint::new("us-east", region).tier(1))),
    ///     Ok(Change::Remove("eu")),
    /// ]);
    /// failover.handle().discover(changes).await.unwrap();
    /// let names: Vec<String> = failover.handle().endpoints().into_iter().map(|e| e.name).collect();
    /// assert_eq!(names, ["us-east"]);
    /// # }
    /// ```
    pub async fn discover<D>(self, discover: D) -> Result<(), BoxError>
    where
        D: Discover<Service = Endpoint<S>>,
        D::Key: Hash,
        D::Error: Into<BoxError>,
    {
        let mut discover = pin!(discover);
        let mut names: HashMap<D::Key, Arc<str>> = HashMap::new();
        loop {
            let change = std::future::poll_fn(|cx| discover.as_mut().poll_discover(cx)).await;
            match change {
                None => return Ok(()),
                Some(Err(error)) => return Err(error.into()),
                Some(Ok(Change::Insert(key, endpoint))) => {
                    let name = Arc::clone(&endpoint.name);
                    if let Some(old) = names.insert(key, Arc::clone(&name))
                        && old != name
                    {
                        self.registry.remove(&old);
                    }
                    self.registry.insert(endpoint);
                }
                Some(Ok(Change::Remove(key))) => {
                    if let Some(name) = names.remove(&key) {
                        self.registry.drain(&name);
                    }
                }
            }
        }
    }
}

impl<S> Clone for FailoverHandle<S> {
    fn clone(&self) -> Self {
        FailoverHandle {
            registry: Arc::clone(&self.registry),
        }
    }
}

impl<S> fmt::Debug for FailoverHandle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<Arc<str>> = self
            .registry
            .snapshot()
            .iter()
            .map(|e| Arc::clone(&e.meta.name))
            .collect();
        f.debug_struct("FailoverHandle")
            .field("endpoints", &names)
            .finish()
    }
}
