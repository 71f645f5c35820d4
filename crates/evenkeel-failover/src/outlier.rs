//! Passive health: what an attempt's outcome does to its endpoint, and
//! whether an endpoint can take traffic now.

use std::sync::atomic::Ordering;

use evenkeel_core::event::EndpointState;
use evenkeel_core::{FailureKind, Outcome, Sent};

use crate::config::nanos;
use crate::endpoint::{Meta, state_code};
use crate::registry::{Now, Registry};

/// Whether an endpoint can take a request now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Status {
    /// It can. `ramp` is its share of traffic while it ramps up after an
    /// ejection.
    Available { ramp: Option<f64> },
    /// Ejected, or failing its health check.
    Down,
    /// In a cooldown until `until` (ticks).
    Cooling { until: u64 },
    /// Draining or removed.
    Draining,
}

/// Failures of the connect phase: the request never reached the server.
/// (A TLS failure after the connection was up is no connect failure.)
fn is_connect_failure(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Failed(f) if f.sent == Sent::Never && matches!(
            f.kind,
            FailureKind::Dns
                | FailureKind::ConnectionRefused
                | FailureKind::ConnectTimeout
                | FailureKind::Connect
                | FailureKind::Tls
        )
    )
}

/// Why an endpoint is being ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    Consecutive,
    Connect,
    SuccessRate,
    Certificate,
}

impl Cause {
    #[cfg(feature = "tracing")]
    fn as_str(self) -> &'static str {
        match self {
            Cause::Consecutive => "consecutive_failures",
            Cause::Connect => "connect_failures",
            Cause::SuccessRate => "success_rate",
            Cause::Certificate => "certificate",
        }
    }
}

impl<S> Registry<S> {
    /// Whether `m` can take a request at `now` (ticks). Notices ejections
    /// and cooldowns that ended, and reports state changes.
    pub(crate) fn status(&self, m: &Meta, now: &Now) -> Status {
        if m.draining.load(Ordering::Acquire) {
            return Status::Draining;
        }
        let ejected = m.ejected_until.load(Ordering::Acquire);
        if ejected != 0 {
            if ejected > now.get() && !self.probes_readmit(m) {
                return Status::Down;
            }
            // The ejection is over: it expired, or passing probes ended it.
            let _ =
                m.ejected_until
                    .compare_exchange(ejected, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
        if m.health.as_ref().is_some_and(|h| !h.is_healthy()) {
            self.report(m, EndpointState::Ejected, now);
            return Status::Down;
        }
        let passive = m.cooling_until.load(Ordering::Relaxed);
        if passive != 0 && passive <= now.get() {
            // Over: forget it, so that the clock need not be read for this
            // endpoint again.
            let _ =
                m.cooling_until
                    .compare_exchange(passive, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
        let cooling = self.cooling_until(m);
        if cooling != 0 && cooling > now.get().saturating_add(self.config.threshold_ticks) {
            self.report(m, EndpointState::CoolingDown, now);
            return Status::Cooling { until: cooling };
        }
        self.report(m, EndpointState::Healthy, now);
        if m.ramping.load(Ordering::Relaxed) {
            let ramp = self.config.ramp_ticks;
            let since = m.readmitted_at.load(Ordering::Relaxed);
            let now = now.get();
            if now >= since && now - since < ramp {
                let share = (now - since) as f64 / ramp as f64;
                return Status::Available {
                    ramp: Some(share.max(0.1)),
                };
            }
            if now >= since {
                m.ramping.store(false, Ordering::Relaxed);
            }
        }
        Status::Available { ramp: None }
    }

    /// Whether the endpoint's health check has passed often enough since
    /// the endpoint was ejected to readmit it: its healthy threshold, times
    /// the ejections it has accumulated, so a flapping endpoint needs
    /// longer each time.
    fn probes_readmit(&self, m: &Meta) -> bool {
        let Some(health) = &m.health else {
            return false;
        };
        let times = m.times_ejected.load(Ordering::Relaxed).max(1);
        let needed = u64::from(health.healthy_threshold()).saturating_mul(u64::from(times));
        health.passes_since(m.probe_mark.load(Ordering::Relaxed), needed)
    }

    /// The end of the endpoint's cooldown (ticks; 0 when none).
    pub(crate) fn cooling_until(&self, m: &Meta) -> u64 {
        let passive = m.cooling_until.load(Ordering::Relaxed);
        let quota = m
            .cooldown
            .as_ref()
            .and_then(|c| c.cooldown_until())
            .map_or(0, |until| self.ticks(until));
        passive.max(quota)
    }

    /// Reports `state` if it differs from the last reported one; an
    /// endpoint leaving `Ejected` starts its ramp now unless its ejection
    /// simply ran out (the ramp then started when it did).
    fn report(&self, m: &Meta, state: EndpointState, now: &Now) {
        let old = self.report_state(m, state, false);
        if old == state_code(EndpointState::Ejected) && state != EndpointState::Ejected {
            let now = now.get();
            let since = m.readmitted_at.load(Ordering::Relaxed);
            if since == 0 || since > now {
                m.readmitted_at.store(now, Ordering::Relaxed);
            }
            if self.config.ramp_ticks > 0 {
                m.ramping.store(true, Ordering::Relaxed);
            }
            #[cfg(feature = "tracing")]
            tracing::info!(endpoint = &*m.name, "endpoint readmitted");
        }
    }

    /// Records a success: the path every healthy request takes, so the
    /// clock is read only when the success-rate window needs it.
    pub(crate) fn record_success(&self, m: &Meta) {
        if m.consecutive.load(Ordering::Relaxed) != 0 {
            m.consecutive.store(0, Ordering::Relaxed);
            m.connect_consecutive.store(0, Ordering::Relaxed);
        }
        self.count(m, true, 0);
    }

    /// Records an attempt's outcome against its endpoint.
    pub(crate) fn record(&self, m: &Meta, outcome: &Outcome, now: u64) {
        if let Outcome::RateLimited(_) | Outcome::Overloaded(_) = outcome
            && let Some(wait) = outcome.server_wait().filter(|w| !w.is_zero())
        {
            // One cooldown per endpoint: an endpoint with a cooldown source
            // (its quota layer, which saw this answer first) is cooling for
            // as long as that source says, and nothing is kept here.
            // Without one, the balancer keeps it, capped: one absurd
            // `Retry-After` must not disable an endpoint for the life of
            // the process.
            let until = if m.cooldown.is_some() {
                self.cooling_until(m)
            } else {
                let wait = nanos(wait).min(self.config.max_cooldown_ticks);
                let until = now.saturating_add(wait);
                m.cooling_until.fetch_max(until, Ordering::Relaxed);
                until
            };
            if until > now.saturating_add(self.config.threshold_ticks)
                && m.reported.load(Ordering::Relaxed) == state_code(EndpointState::Healthy)
            {
                self.report(m, EndpointState::CoolingDown, &Now::at(now));
            }
        }
        if outcome.is_endpoint_failure() {
            let failures = m
                .consecutive
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            let connects = if is_connect_failure(outcome) {
                m.connect_consecutive
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1)
            } else {
                if m.connect_consecutive.load(Ordering::Relaxed) != 0 {
                    m.connect_consecutive.store(0, Ordering::Relaxed);
                }
                0
            };
            let (ok, failed) = self.count(m, false, now);
            let cause = if matches!(outcome, Outcome::Failed(f) if f.kind == FailureKind::Certificate)
            {
                Some(Cause::Certificate)
            } else if self.config.connect_failures > 0 && connects >= self.config.connect_failures {
                Some(Cause::Connect)
            } else if self.config.consecutive_failures > 0
                && failures >= self.config.consecutive_failures
            {
                Some(Cause::Consecutive)
            } else {
                self.config.success_rate.and_then(|sr| {
                    let total = ok + failed;
                    (total >= u64::from(sr.min_requests)
                        && (ok as f64) < sr.min_rate * total as f64)
                        .then_some(Cause::SuccessRate)
                })
            };
            if let Some(cause) = cause {
                self.eject(m, now, cause);
            }
        } else if !matches!(outcome, Outcome::Failed(_)) {
            // The endpoint answered: a success, a client error, a 429.
            if m.consecutive.load(Ordering::Relaxed) != 0 {
                m.consecutive.store(0, Ordering::Relaxed);
                m.connect_consecutive.store(0, Ordering::Relaxed);
            }
            self.count(m, true, now);
        }
        // Local failures (limiter, quota, deadline, request body) say
        // nothing about the endpoint.
    }

    /// Counts an answer in the success-rate window. A failure first starts
    /// a new window if the current one is over (a success needs no clock:
    /// counts only matter when a failure is judged). Returns the window's
    /// (successes, failures).
    fn count(&self, m: &Meta, success: bool, now: u64) -> (u64, u64) {
        if self.config.success_rate.is_none() {
            return (0, 0);
        }
        let start = m.window_start.load(Ordering::Relaxed);
        if !success
            && now.saturating_sub(start) >= self.config.window_ticks
            && m.window_start
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            m.window.store(0, Ordering::Relaxed);
        }
        let add = if success { 1 << 32 } else { 1 };
        let counts = m.window.fetch_add(add, Ordering::Relaxed).wrapping_add(add);
        (counts >> 32, counts & 0xFFFF_FFFF)
    }

    /// Whether `m` is ejected or failing its health check at `now`.
    fn is_down(m: &Meta, now: u64) -> bool {
        m.ejected_until.load(Ordering::Acquire) > now
            || m.health.as_ref().is_some_and(|h| !h.is_healthy())
    }

    /// Ejects `m`, unless it is ejected already or it is the last endpoint
    /// up (the balancer fails open rather than eject everything). Returns
    /// whether it was ejected.
    pub(crate) fn eject(&self, m: &Meta, now: u64, cause: Cause) -> bool {
        let guard = self.eject_lock.lock().unwrap_or_else(|p| p.into_inner());
        if m.ejected_until.load(Ordering::Acquire) > now || m.draining.load(Ordering::Acquire) {
            return false;
        }
        let others_up = self.snapshot().iter().any(|e| {
            e.meta.id != m.id
                && !e.meta.draining.load(Ordering::Acquire)
                && !Self::is_down(&e.meta, now)
        });
        if !others_up {
            #[cfg(feature = "tracing")]
            tracing::warn!(
                endpoint = &*m.name,
                cause = cause.as_str(),
                "not ejecting the last endpoint up"
            );
            return false;
        }
        let config = &self.config;
        // Each base period spent healthy since the last readmission
        // forgives one earlier ejection.
        let since = m.readmitted_at.load(Ordering::Relaxed);
        let forgiven = if since != 0 && now > since {
            (now - since) / config.base_ticks.max(1)
        } else {
            0
        };
        let times = u64::from(m.times_ejected.load(Ordering::Relaxed))
            .saturating_sub(forgiven)
            .saturating_add(1);
        let length = config
            .base_ticks
            .saturating_mul(times)
            .min(config.max_ticks);
        let extra = (length as f64 * config.ejection_jitter * self.jitter.unit()) as u64;
        let until = now.saturating_add(length).saturating_add(extra);
        m.times_ejected
            .store(u32::try_from(times).unwrap_or(u32::MAX), Ordering::Relaxed);
        m.readmitted_at.store(until, Ordering::Relaxed);
        m.ramping.store(config.ramp_ticks > 0, Ordering::Relaxed);
        m.probe_mark.store(
            m.health.as_ref().map_or(0, |h| h.probes()),
            Ordering::Relaxed,
        );
        m.consecutive.store(0, Ordering::Relaxed);
        m.connect_consecutive.store(0, Ordering::Relaxed);
        m.window_start.store(now, Ordering::Relaxed);
        m.window.store(0, Ordering::Relaxed);
        m.ejected_until.store(until, Ordering::Release);
        drop(guard);
        self.ejections.fetch_add(1, Ordering::Relaxed);
        // Reported outside the lock: a listener may call back into the
        // handle.
        self.report(m, EndpointState::Ejected, &Now::at(now));
        #[cfg(feature = "tracing")]
        tracing::warn!(
            endpoint = &*m.name,
            cause = cause.as_str(),
            times,
            ejected_for_ms = (until - now) / 1_000_000,
            "endpoint ejected"
        );
        #[cfg(not(feature = "tracing"))]
        let _ = cause;
        true
    }
}
