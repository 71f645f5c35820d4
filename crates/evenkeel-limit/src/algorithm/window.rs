//! Sample windows and the periodic baseline probe, shared by the
//! latency-based algorithms.

use std::time::Duration;

use tokio::time::Instant;

use super::Sample;

/// Aggregates successful samples until the window is long and full enough.
#[derive(Debug, Clone, Default)]
pub(crate) struct Window {
    start: Option<Instant>,
    count: u32,
    sum_secs: f64,
    min_secs: f64,
    max_in_flight: usize,
}

/// A closed window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    /// Mean RTT, in seconds.
    pub(crate) mean: f64,
    /// Smallest RTT, in seconds.
    pub(crate) min: f64,
    /// Most attempts in flight when one of the window's attempts was sent.
    pub(crate) max_in_flight: usize,
}

impl Window {
    pub(crate) fn add(&mut self, sample: &Sample) {
        let rtt = sample.rtt.as_secs_f64();
        if self.count == 0 {
            self.start = Some(sample.finished());
            self.min_secs = rtt;
        } else {
            self.min_secs = self.min_secs.min(rtt);
        }
        self.count += 1;
        self.sum_secs += rtt;
        self.max_in_flight = self.max_in_flight.max(sample.in_flight);
    }

    /// Closes the window and returns it, when it spans `min_time` and holds
    /// `min_samples` samples.
    pub(crate) fn close(
        &mut self,
        now: Instant,
        min_time: Duration,
        min_samples: u32,
    ) -> Option<Summary> {
        let start = self.start?;
        if self.count < min_samples || now.saturating_duration_since(start) < min_time {
            return None;
        }
        let summary = Summary {
            mean: self.sum_secs / f64::from(self.count),
            min: self.min_secs,
            max_in_flight: self.max_in_flight,
        };
        self.reset();
        Some(summary)
    }

    pub(crate) fn reset(&mut self) {
        *self = Window::default();
    }
}

/// When and how the baseline (unloaded) RTT is measured.
///
/// The first window is always a measurement, at the initial limit. Then,
/// every `interval`, the limit dips to three quarters of the estimate for
/// one window, which drains the queue when the limit sits near the server's
/// knee, as the algorithms keep it; attempts sent before the dip are left
/// out. A measurement above the old baseline (beyond the tolerance) is not
/// taken on trust: either the server became slower, or the limit was still
/// far above its capacity. The probe halves its limit and measures again
/// until halving stops lowering the latency (or the floor is reached), and
/// takes the lower of the last two readings.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    interval: Duration,
    /// The limit while measuring.
    active: Option<usize>,
    next: Option<Instant>,
    /// The reading at the previous, higher probe limit.
    previous: Option<f64>,
}

impl Probe {
    pub(crate) fn new(interval: Duration, initial: usize) -> Self {
        Probe {
            interval,
            active: Some(initial),
            next: None,
            previous: None,
        }
    }

    /// The limit while a measurement runs.
    pub(crate) fn active(&self) -> Option<usize> {
        self.active
    }

    /// Keeps a running measurement at or below `limit` (after a drop).
    pub(crate) fn cap(&mut self, limit: usize) {
        if let Some(active) = &mut self.active {
            *active = (*active).min(limit);
        }
    }

    /// Takes a probe window's reading; returns the new baseline when the
    /// measurement is over, `None` when it goes on at a lower limit.
    pub(crate) fn measured(
        &mut self,
        now: Instant,
        rtt: f64,
        baseline: Option<f64>,
        tolerance: f64,
        min: usize,
    ) -> Option<f64> {
        let limit = self.active?;
        let settled = match (baseline, self.previous) {
            (None, _) => true,
            (_, Some(previous)) => rtt * tolerance >= previous,
            (Some(baseline), None) => rtt <= baseline * tolerance,
        };
        if settled || limit <= min {
            let reading = self.previous.map_or(rtt, |p| p.min(rtt));
            self.active = None;
            self.previous = None;
            self.next = Some(now + self.interval);
            Some(reading)
        } else {
            self.previous = Some(rtt);
            self.active = Some((limit / 2).max(min));
            None
        }
    }

    /// Starts a measurement when one is due; `estimate` is the current
    /// limit. Returns whether it started.
    pub(crate) fn start_if_due(&mut self, now: Instant, estimate: f64, min: usize) -> bool {
        if self.active.is_some() || self.next.is_some_and(|next| now < next) {
            return false;
        }
        self.active = Some(((estimate * 0.75).floor() as usize).max(min));
        true
    }
}
