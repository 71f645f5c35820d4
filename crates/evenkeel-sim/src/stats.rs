//! What the sim saw: counters a test reads through [`Stats`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use http::StatusCode;

/// The live counters, copied on write so that a [`Stats`] snapshot costs one
/// `Arc` clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub(crate) attempts: u64,
    pub(crate) attempts_by_id: HashMap<String, u64>,
    pub(crate) statuses: BTreeMap<u16, u64>,
    pub(crate) successes: u64,
    pub(crate) successes_by_id: HashMap<String, u64>,
    pub(crate) max_in_flight: usize,
    pub(crate) resets: u64,
    pub(crate) aborted: u64,
    pub(crate) cancelled: u64,
    pub(crate) refused: u64,
    pub(crate) stream_errors: u64,
}

/// A snapshot of what the sim saw, taken by [`Sim::stats`](crate::Sim::stats)
/// or [`SimHandle::stats`](crate::SimHandle::stats).
///
/// Taking and cloning a snapshot is cheap (the counters are shared until the
/// sim next changes them). Requests are told apart by their `x-request-id`
/// header; requests without one are counted in the totals only.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub(crate) counters: Arc<Counters>,
    pub(crate) in_flight: usize,
}

impl Stats {
    /// Requests the sim received while up, whatever became of them.
    ///
    /// In-process calls made while the sim is killed are counted in
    /// [`refused`](Self::refused) instead (over HTTP the operating system
    /// refuses them and the sim never sees them).
    pub fn attempts(&self) -> u64 {
        self.counters.attempts
    }

    /// Streamed answers that carried an error event (before content or
    /// inside the stream).
    pub fn stream_errors(&self) -> u64 {
        self.counters.stream_errors
    }

    /// Attempts that carried `x-request-id: id`.
    pub fn attempts_for(&self, id: &str) -> u64 {
        self.counters.attempts_by_id.get(id).copied().unwrap_or(0)
    }

    /// Attempts per `x-request-id`.
    pub fn attempts_by_id(&self) -> &HashMap<String, u64> {
        &self.counters.attempts_by_id
    }

    /// Responses delivered, by status code. A request cut off (reset, killed,
    /// cancelled) has no status and is not counted here.
    pub fn statuses(&self) -> &BTreeMap<u16, u64> {
        &self.counters.statuses
    }

    /// Responses delivered with `status`.
    pub fn status_count(&self, status: StatusCode) -> u64 {
        self.counters
            .statuses
            .get(&status.as_u16())
            .copied()
            .unwrap_or(0)
    }

    /// Responses delivered, all statuses together.
    pub fn responses(&self) -> u64 {
        self.counters.statuses.values().sum()
    }

    /// `2xx` responses delivered.
    pub fn successes(&self) -> u64 {
        self.counters.successes
    }

    /// `2xx` responses delivered to requests with `x-request-id: id`.
    pub fn successes_for(&self, id: &str) -> u64 {
        self.counters.successes_by_id.get(id).copied().unwrap_or(0)
    }

    /// `2xx` responses per `x-request-id`.
    pub fn successes_by_id(&self) -> &HashMap<String, u64> {
        &self.counters.successes_by_id
    }

    /// Request ids served a `2xx` more than once, sorted: the requests a
    /// non-idempotent client would have executed twice.
    pub fn duplicates(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .counters
            .successes_by_id
            .iter()
            .filter(|&(_, &n)| n > 1)
            .map(|(id, _)| id.as_str())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The most requests the sim ever held in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.counters.max_in_flight
    }

    /// Requests in flight when the snapshot was taken.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Connections reset by fault injection.
    pub fn resets(&self) -> u64 {
        self.counters.resets
    }

    /// Requests in flight when the sim was killed; never counted as served.
    pub fn aborted(&self) -> u64 {
        self.counters.aborted
    }

    /// Requests the client gave up on (the call's future or the connection
    /// was dropped) before the answer.
    pub fn cancelled(&self) -> u64 {
        self.counters.cancelled
    }

    /// In-process calls refused because the sim was killed.
    pub fn refused(&self) -> u64 {
        self.counters.refused
    }
}
