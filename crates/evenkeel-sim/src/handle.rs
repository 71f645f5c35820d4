//! Run-time control of a sim: [`SimHandle`].

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::sync::oneshot;

use crate::config::{
    ConfigError, Faults, QuotaKind, validate_capacity, validate_latency, validate_reject_above,
};
use crate::model::Model;
use crate::server::Command;
use crate::stats::Stats;

/// Controls a running sim: the kill switch, capacity, latency, forced
/// answers and fault rates, and reads its counters and quotas.
///
/// Cheap to clone; every clone (and every [`Sim`](crate::Sim) clone and
/// [`SimServer`](crate::SimServer)) drives the same model. Changes apply to
/// requests that reach the model after the call.
#[derive(Clone)]
pub struct SimHandle {
    pub(crate) model: Arc<Model>,
}

impl fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHandle")
            .field("killed", &self.model.is_killed())
            .finish_non_exhaustive()
    }
}

/// One quota as the model holds it right now; what the rate-limit headers
/// report.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct QuotaState {
    /// What the quota counts.
    pub kind: QuotaKind,
    /// The bucket's size (the burst): what the headers report as the limit.
    pub limit: u64,
    /// Whole units left.
    pub remaining: u64,
    /// Time until the bucket is full again: what the headers report as the
    /// reset.
    pub full_in: Duration,
    /// Time an empty bucket takes to fill (`limit / rate`): the IETF window.
    pub window: Duration,
    /// The refill rate, per second.
    pub rate: f64,
}

impl SimHandle {
    /// Kills the sim: every HTTP server wrapping it closes its listening
    /// socket (connections are then refused) and drops its connections;
    /// requests in flight are aborted (counted in
    /// [`Stats::aborted`], never as served); in-process calls fail with
    /// [`SimErrorKind::Refused`](crate::SimErrorKind::Refused) until
    /// [`revive`](Self::revive).
    ///
    /// Returns once every server has closed. Killing a killed sim does
    /// nothing.
    pub async fn kill(&self) {
        for server in self.model.kill() {
            let (ack, done) = oneshot::channel();
            if server.send(Command::Kill(ack)).is_ok() {
                let _ = done.await;
            }
        }
    }

    /// Brings a killed sim back: servers listen again on the same address
    /// and port. Quotas keep their state across the kill.
    ///
    /// Fails if a server cannot bind its port again (another process took
    /// it); the sim then answers in-process calls but that server stays
    /// closed.
    pub async fn revive(&self) -> io::Result<()> {
        let mut result = Ok(());
        for server in self.model.revive() {
            let (ack, done) = oneshot::channel();
            if server.send(Command::Revive(ack)).is_ok()
                && let Ok(Err(err)) = done.await
                && result.is_ok()
            {
                result = Err(err);
            }
        }
        result
    }

    /// Whether the sim is killed.
    pub fn is_killed(&self) -> bool {
        self.model.is_killed()
    }

    /// Sets the capacity above which latency grows. Field: `capacity`.
    pub fn set_capacity(&self, capacity: usize) -> Result<(), ConfigError> {
        validate_capacity(capacity)?;
        self.model.set_capacity(Some(capacity));
        Ok(())
    }

    /// Removes the capacity: latency stays at its base however many requests
    /// are in flight.
    pub fn clear_capacity(&self) {
        self.model.set_capacity(None);
    }

    /// Sets the base latency. Field: `latency`.
    pub fn set_latency(&self, latency: Duration) -> Result<(), ConfigError> {
        validate_latency(latency)?;
        self.model.set_latency(latency);
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) the in-flight count above which
    /// requests are answered `503` at once. Field: `reject_above`.
    pub fn set_reject_above(&self, limit: Option<usize>) -> Result<(), ConfigError> {
        if let Some(limit) = limit {
            validate_reject_above(limit)?;
        }
        self.model.set_reject_above(limit);
        Ok(())
    }

    /// Replaces the fault rates. Field: `faults.*`.
    pub fn set_faults(&self, faults: Faults) -> Result<(), ConfigError> {
        faults.validate()?;
        self.model.set_faults(faults);
        Ok(())
    }

    /// Answers every request with `status` for the next `duration`, with
    /// `Retry-After: retry_after` (rounded up to whole seconds) when given,
    /// and the dialect's error body (`rate_limit_error` for 429,
    /// `overloaded_error` for 503 and 529). Quotas are not charged meanwhile.
    ///
    /// `status` must be a 4xx or 5xx. Field: `status`.
    pub fn force(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        duration: Duration,
    ) -> Result<(), ConfigError> {
        if !(status.is_client_error() || status.is_server_error()) {
            return Err(ConfigError::new(
                "status",
                format!("a forced answer must be a 4xx or 5xx, got {status}"),
            ));
        }
        self.model.force(status, retry_after, duration);
        Ok(())
    }

    /// Ends a [`force`](Self::force) early.
    pub fn clear_force(&self) {
        self.model.clear_force();
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.model.stats()
    }

    /// Zeroes the counters (the maximum in flight restarts from the current
    /// in-flight count).
    pub fn reset_stats(&self) {
        self.model.reset_stats();
    }

    /// Every configured quota as of now: requests first, then token quotas in
    /// the order they were configured.
    pub fn quotas(&self) -> Vec<QuotaState> {
        self.model
            .quotas()
            .into_iter()
            .map(|q| QuotaState {
                kind: q.kind,
                limit: q.limit,
                remaining: q.remaining,
                full_in: q.full_in,
                window: q.window,
                rate: q.rate,
            })
            .collect()
    }

    /// The quota of `kind` as of now, if configured.
    pub fn quota(&self, kind: QuotaKind) -> Option<QuotaState> {
        self.quotas().into_iter().find(|q| q.kind == kind)
    }
}
