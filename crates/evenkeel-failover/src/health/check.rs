//! Active health checks: [`HealthCheck`] and the [`HealthHandle`] that owns
//! its probing task.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evenkeel_core::error::TimedOut;
use evenkeel_core::event::{EndpointState, Event, Events, Listener};
use evenkeel_core::rng::Jitter;
use evenkeel_core::{BoxError, ConfigError};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::probe::Probe;

/// The time between probes by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// How long a probe may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Passes in a row that make an unhealthy endpoint healthy, by default.
pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 2;
/// Failures in a row that make a healthy endpoint unhealthy, by default.
pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 3;

/// An active health check: a [`Probe`] run on an interval, with jitter, and
/// a verdict that changes only after several results in a row.
///
/// [`spawn`](Self::spawn) starts probing on a task owned by the returned
/// [`HealthHandle`]: stopping or dropping every clone of the handle stops
/// it. Give the handle to a balancer endpoint
/// ([`Endpoint::health`](crate::Endpoint::health)), or to a
/// [`HealthCheckLayer`](crate::HealthCheckLayer) to use it without the
/// balancer.
///
/// The endpoint starts healthy; the first probe runs within the first
/// `interval × interval_jitter`.
///
/// ```no_run
/// use std::time::Duration;
/// use evenkeel_failover::{HealthCheck, Probe};
///
/// # async fn run() -> Result<(), evenkeel_core::ConfigError> {
/// let health = HealthCheck::builder(Probe::tcp("10.0.0.7:8080"))
///     .interval(Duration::from_secs(2))
///     .unhealthy_threshold(2)
///     .spawn()?;
/// println!("healthy: {}", health.is_healthy());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct HealthCheck {
    probe: Probe,
    interval: Duration,
    interval_jitter: f64,
    timeout: Duration,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
    name: Arc<str>,
    events: Events,
    jitter: Jitter,
}

impl HealthCheck {
    /// A builder for a check that runs `probe`.
    pub fn builder(probe: Probe) -> HealthCheckBuilder {
        HealthCheckBuilder {
            probe,
            interval: DEFAULT_INTERVAL,
            interval_jitter: 0.1,
            timeout: DEFAULT_TIMEOUT,
            healthy_threshold: DEFAULT_HEALTHY_THRESHOLD,
            unhealthy_threshold: DEFAULT_UNHEALTHY_THRESHOLD,
            name: Arc::from(""),
            events: Events::none(),
            jitter: Jitter::default(),
        }
    }

    /// Starts probing on a new task.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn spawn(self) -> HealthHandle {
        let (tx, _) = watch::channel(true);
        let state = Arc::new(State {
            healthy: AtomicBool::new(true),
            counters: Mutex::new(Counters::default()),
            healthy_threshold: self.healthy_threshold,
            unhealthy_threshold: self.unhealthy_threshold,
            name: Arc::clone(&self.name),
            events: self.events.clone(),
            tx,
        });
        let task = tokio::spawn(run(Arc::clone(&state), self));
        HealthHandle {
            inner: Arc::new(Inner {
                state,
                task: task.abort_handle(),
            }),
        }
    }
}

/// Configures a [`HealthCheck`]; made by [`HealthCheck::builder`].
#[derive(Debug)]
pub struct HealthCheckBuilder {
    probe: Probe,
    interval: Duration,
    interval_jitter: f64,
    timeout: Duration,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
    name: Arc<str>,
    events: Events,
    jitter: Jitter,
}

impl HealthCheckBuilder {
    /// The time from one probe's end to the next one's start, before
    /// jitter. Default: 5 s.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The share (0 to 1) of the interval added at random to each wait, so
    /// that checks started together spread out. Default: 0.1.
    pub fn interval_jitter(mut self, fraction: f64) -> Self {
        self.interval_jitter = fraction;
        self
    }

    /// How long a probe may take before it counts as failed. Default: 2 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Passes in a row that make an unhealthy endpoint healthy. Default: 2.
    pub fn healthy_threshold(mut self, n: u32) -> Self {
        self.healthy_threshold = n;
        self
    }

    /// Failures in a row that make a healthy endpoint unhealthy.
    /// Default: 3.
    pub fn unhealthy_threshold(mut self, n: u32) -> Self {
        self.unhealthy_threshold = n;
        self
    }

    /// The endpoint name used in this check's events.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Reports verdict changes to `listener`, as
    /// [`Event::EndpointState`](evenkeel_core::event::Event::EndpointState)
    /// (`Healthy`, or `Ejected` for unhealthy) under this check's
    /// [`name`](Self::name).
    pub fn on_event(mut self, listener: impl Listener) -> Self {
        self.events = self.events.and(Events::new(listener));
        self
    }

    /// Reports verdict changes to `events`.
    pub fn events(mut self, events: Events) -> Self {
        self.events = self.events.and(events);
        self
    }

    /// The randomness for [`interval_jitter`](Self::interval_jitter); seed
    /// it ([`Jitter::seeded`]) for reproducible tests.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<HealthCheck, ConfigError> {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        if self.interval.is_zero() || self.interval > DAY {
            return Err(ConfigError::new(
                "interval",
                format!(
                    "must be longer than zero and at most a day, got {:?}",
                    self.interval
                ),
            ));
        }
        if self.timeout.is_zero() || self.timeout > DAY {
            return Err(ConfigError::new(
                "timeout",
                format!(
                    "must be longer than zero and at most a day, got {:?}",
                    self.timeout
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.interval_jitter) {
            return Err(ConfigError::new(
                "interval_jitter",
                format!("must be between 0 and 1, got {}", self.interval_jitter),
            ));
        }
        if self.healthy_threshold == 0 {
            return Err(ConfigError::new("healthy_threshold", "must be at least 1"));
        }
        if self.unhealthy_threshold == 0 {
            return Err(ConfigError::new(
                "unhealthy_threshold",
                "must be at least 1",
            ));
        }
        Ok(HealthCheck {
            probe: self.probe,
            interval: self.interval,
            interval_jitter: self.interval_jitter,
            timeout: self.timeout,
            healthy_threshold: self.healthy_threshold,
            unhealthy_threshold: self.unhealthy_threshold,
            name: self.name,
            events: self.events,
            jitter: self.jitter,
        })
    }

    /// Validates the settings and starts probing
    /// ([`HealthCheck::spawn`]).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(self) -> Result<HealthHandle, ConfigError> {
        Ok(self.build()?.spawn())
    }
}

/// A health check's results so far, from [`HealthHandle::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthStatus {
    /// The verdict.
    pub healthy: bool,
    /// Probes run.
    pub probes: u64,
    /// Passes in a row, up to the last probe.
    pub consecutive_passes: u64,
    /// Failures in a row, up to the last probe.
    pub consecutive_failures: u64,
    /// When the last probe ended.
    pub last_probe: Option<Instant>,
    /// Why the last failed probe failed.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    probes: u64,
    passes: u64,
    failures: u64,
    last_probe: Option<Instant>,
    last_error: Option<String>,
}

struct State {
    healthy: AtomicBool,
    counters: Mutex<Counters>,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
    name: Arc<str>,
    events: Events,
    tx: watch::Sender<bool>,
}

impl State {
    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, result: Result<(), BoxError>) {
        let change = {
            let mut c = self.counters();
            c.probes += 1;
            c.last_probe = Some(Instant::now());
            let healthy = self.healthy.load(Ordering::Acquire);
            match result {
                Ok(()) => {
                    c.passes += 1;
                    c.failures = 0;
                    (!healthy && c.passes >= u64::from(self.healthy_threshold)).then_some(true)
                }
                Err(error) => {
                    c.failures += 1;
                    c.passes = 0;
                    c.last_error = Some(error.to_string());
                    (healthy && c.failures >= u64::from(self.unhealthy_threshold)).then_some(false)
                }
            }
        };
        if let Some(healthy) = change {
            self.set(healthy);
        }
    }

    fn set(&self, healthy: bool) {
        if self.healthy.swap(healthy, Ordering::AcqRel) == healthy {
            return;
        }
        self.tx.send_replace(healthy);
        let state = if healthy {
            EndpointState::Healthy
        } else {
            EndpointState::Ejected
        };
        self.events.emit(|| Event::EndpointState {
            endpoint: &self.name,
            state,
        });
        #[cfg(feature = "tracing")]
        tracing::info!(
            endpoint = &*self.name,
            healthy,
            "health check verdict changed"
        );
    }
}

async fn run(state: Arc<State>, mut check: HealthCheck) {
    // The builder bounds the interval to a day and the interval jitter to 1.
    let spread = check.interval.mul_f64(check.interval_jitter);
    tokio::time::sleep(check.jitter.between(Duration::ZERO, spread)).await;
    loop {
        let result = match tokio::time::timeout(check.timeout, check.probe.run()).await {
            Ok(result) => result,
            Err(_) => Err(TimedOut::after(check.timeout).into()),
        };
        state.record(result);
        let wait = check
            .interval
            .saturating_add(check.jitter.between(Duration::ZERO, spread));
        tokio::time::sleep(wait).await;
    }
}

/// Owns a running [`HealthCheck`] and reads its verdict. Cheap to clone;
/// when the last clone is dropped, or on [`stop`](Self::stop), probing
/// stops.
#[derive(Clone)]
pub struct HealthHandle {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<State>,
    task: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HealthHandle {
    /// The verdict: `false` once `unhealthy_threshold` probes in a row
    /// failed, `true` again after `healthy_threshold` passes in a row.
    pub fn is_healthy(&self) -> bool {
        self.inner.state.healthy.load(Ordering::Acquire)
    }

    /// The results so far.
    pub fn status(&self) -> HealthStatus {
        let healthy = self.is_healthy();
        let c = self.inner.state.counters();
        HealthStatus {
            healthy,
            probes: c.probes,
            consecutive_passes: c.passes,
            consecutive_failures: c.failures,
            last_probe: c.last_probe,
            last_error: c.last_error.clone(),
        }
    }

    /// A receiver that sees every verdict change.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.inner.state.tx.subscribe()
    }

    /// Stops probing now, for every clone. The verdict turns healthy: with
    /// no probes, nothing vouches against the endpoint.
    pub fn stop(&self) {
        self.inner.task.abort();
        self.inner.state.set(true);
    }

    /// Whether the probing task has stopped.
    pub fn is_stopped(&self) -> bool {
        self.inner.task.is_finished()
    }

    pub(crate) fn probes(&self) -> u64 {
        self.inner.state.counters().probes
    }

    pub(crate) fn healthy_threshold(&self) -> u32 {
        self.inner.state.healthy_threshold
    }

    /// Whether at least `needed` probes ran after the first `mark`, and the
    /// last `needed` of them all passed.
    pub(crate) fn passes_since(&self, mark: u64, needed: u64) -> bool {
        let c = self.inner.state.counters();
        c.probes >= mark.saturating_add(needed) && c.passes >= needed
    }
}

impl fmt::Debug for HealthHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthHandle")
            .field("name", &self.inner.state.name)
            .field("healthy", &self.is_healthy())
            .field("stopped", &self.is_stopped())
            .finish()
    }
}
