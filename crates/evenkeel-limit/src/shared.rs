//! The state every clone of a layer and its services shares.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use evenkeel_core::event::{Event, Events};
use evenkeel_core::ext::AttemptContext;
use evenkeel_core::{Classify, Outcome, clock};
use evenkeel_headers::{RateLimits, Resource};
use http::Response;
use http::header::HeaderName;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::algorithm::{Algorithm, Sample, is_reported};
use crate::body::{GiveBack, HeldPermit, Release};
use crate::gate::{Gate, WaitKey};
use crate::reject::Reject;

/// No ceiling.
const NONE: usize = usize::MAX;

/// Looked up by a `HeaderName`, not a `&str`, which would be parsed into
/// one on every response.
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

pub(crate) struct Shared<A, C, R> {
    pub(crate) gate: Gate,
    algorithm: Mutex<A>,
    /// The algorithm's last answer, before ceilings.
    estimate: AtomicUsize,
    ceiling: AtomicUsize,
    server_ceiling: AtomicUsize,
    pub(crate) read_server_ceiling: bool,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) release: Release,
    pub(crate) classifier: C,
    pub(crate) reject: R,
    name: Box<str>,
    events: Events,
}

/// What the limiter remembers about an attempt while it runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Start {
    pub(crate) at: Instant,
    pub(crate) in_flight: usize,
    pub(crate) limit: usize,
}

pub(crate) struct Settings<C, R> {
    pub(crate) release: Release,
    pub(crate) max_queue: usize,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) ceiling: Option<usize>,
    pub(crate) read_server_ceiling: bool,
    pub(crate) classifier: C,
    pub(crate) reject: R,
    pub(crate) name: String,
    pub(crate) events: Events,
}

impl<A: Algorithm, C, R> Shared<A, C, R> {
    pub(crate) fn new(algorithm: A, settings: Settings<C, R>) -> Self {
        let estimate = algorithm.initial_limit().max(1);
        let ceiling = settings.ceiling.unwrap_or(NONE);
        Shared {
            gate: Gate::new(estimate.min(ceiling), settings.max_queue),
            algorithm: Mutex::new(algorithm),
            estimate: AtomicUsize::new(estimate),
            ceiling: AtomicUsize::new(ceiling),
            server_ceiling: AtomicUsize::new(NONE),
            read_server_ceiling: settings.read_server_ceiling,
            max_wait: settings.max_wait,
            release: settings.release,
            classifier: settings.classifier,
            reject: settings.reject,
            name: settings.name.into_boxed_str(),
            events: settings.events,
        }
    }

    /// Learns from a completed attempt. Called before its permit is
    /// released, so a lowered limit holds back the next waiter. The verdict
    /// left in `context` below is read when there is one; otherwise the
    /// answer is judged here.
    pub(crate) fn complete<B, E>(
        &self,
        result: &Result<Response<B>, R::Error>,
        start: Start,
        context: Option<&AttemptContext>,
    ) where
        C: Classify<Response<B>>,
        R: Reject<B, E>,
    {
        let judged = context.and_then(|c| {
            c.with_verdict(|v| {
                if v.is_error() != result.is_err() {
                    return None;
                }
                if self.read_server_ceiling {
                    self.read_ceiling(&v.limits);
                }
                Some(v.outcome)
            })
            .flatten()
        });
        let outcome = match (judged, result) {
            (Some(outcome), _) => outcome,
            (None, Ok(response)) => {
                if self.read_server_ceiling && response.headers().contains_key(&RATELIMIT_POLICY) {
                    let limits =
                        evenkeel_headers::rate_limits(response.headers(), clock::system_now());
                    self.read_ceiling(&limits);
                }
                self.classifier.classify_response(response)
            }
            (None, Err(error)) => match R::as_dyn(error) {
                Some(error) => self.classifier.classify_error(error),
                None => return,
            },
        };
        self.learn(start, outcome);
    }

    fn learn(&self, start: Start, outcome: Outcome) {
        if !is_reported(&outcome) {
            return;
        }
        let rtt = clock::now().saturating_duration_since(start.at);
        let sample = Sample::new(start.at, rtt, start.in_flight, start.limit, outcome);
        let changed = {
            let mut algorithm = self.algorithm.lock();
            let estimate = algorithm.update(&sample).max(1);
            self.estimate.store(estimate, Ordering::Relaxed);
            self.apply()
        };
        if let Some(limit) = changed {
            self.limit_changed(limit);
        }
    }

    /// Reads a `RateLimit-Policy` with `qu="concurrent-requests"`.
    fn read_ceiling(&self, limits: &RateLimits) {
        let advertised = limits
            .iter()
            .filter(|q| q.resource == Resource::ConcurrentRequests)
            .filter_map(|q| q.limit)
            .filter(|&q| q > 0)
            .min();
        if let Some(q) = advertised {
            let q = usize::try_from(q).unwrap_or(NONE - 1);
            if self.server_ceiling.swap(q, Ordering::Relaxed) != q {
                self.refresh();
            }
        }
    }

    pub(crate) fn set_ceiling(&self, ceiling: Option<usize>) {
        self.ceiling
            .store(ceiling.unwrap_or(NONE), Ordering::Relaxed);
        self.refresh();
    }

    fn refresh(&self) {
        let changed = {
            let _serialise = self.algorithm.lock();
            self.apply()
        };
        if let Some(limit) = changed {
            self.limit_changed(limit);
        }
    }

    /// Applies the ceilings to the estimate; called under the algorithm
    /// lock. Returns the new limit when it changed.
    fn apply(&self) -> Option<usize> {
        let limit = self
            .estimate
            .load(Ordering::Relaxed)
            .min(self.ceiling.load(Ordering::Relaxed))
            .min(self.server_ceiling.load(Ordering::Relaxed))
            .max(1);
        if limit == self.gate.limit() {
            return None;
        }
        self.gate.set_limit(limit);
        Some(limit)
    }

    fn limit_changed(&self, limit: usize) {
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: "evenkeel_limit",
            name = &*self.name,
            limit,
            "concurrency limit changed"
        );
        self.events.emit(|| Event::LimitChanged {
            name: &self.name,
            limit,
        });
    }

    pub(crate) fn rejected(&self) {
        self.gate.count_rejection();
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: "evenkeel_limit",
            name = &*self.name,
            limit = self.gate.limit(),
            in_flight = self.gate.in_flight(),
            "request rejected by the concurrency limit"
        );
        self.events
            .emit(|| Event::LimitRejected { name: &self.name });
    }
}

impl<A, C, R> Shared<A, C, R> {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn ceiling(&self) -> Option<usize> {
        some(self.ceiling.load(Ordering::Relaxed))
    }

    pub(crate) fn server_ceiling(&self) -> Option<usize> {
        some(self.server_ceiling.load(Ordering::Relaxed))
    }

    pub(crate) fn estimate(&self) -> usize {
        self.estimate.load(Ordering::Relaxed)
    }
}

fn some(value: usize) -> Option<usize> {
    (value != NONE).then_some(value)
}

impl<A: fmt::Debug, C: fmt::Debug, R: fmt::Debug> fmt::Debug for Shared<A, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("limit", &self.gate.limit())
            .field("in_flight", &self.gate.in_flight())
            .field("algorithm", &*self.algorithm.lock())
            .field("ceiling", &self.ceiling())
            .field("server_ceiling", &self.server_ceiling())
            .field("max_wait", &self.max_wait)
            .field("release", &self.release)
            .field("classifier", &self.classifier)
            .field("reject", &self.reject)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// One permit; returned to the gate when dropped.
pub(crate) struct Permit<A, C, R> {
    shared: Option<Arc<Shared<A, C, R>>>,
}

impl<A, C, R> Permit<A, C, R> {
    pub(crate) fn new(shared: Arc<Shared<A, C, R>>) -> Self {
        Permit {
            shared: Some(shared),
        }
    }

    pub(crate) fn shared(&self) -> &Shared<A, C, R> {
        self.shared
            .as_deref()
            .expect("a permit holds its limiter until dropped")
    }
}

impl<A, C, R> Permit<A, C, R>
where
    Shared<A, C, R>: GiveBack + 'static,
{
    /// Moves the permit into a response body, which gives it back.
    pub(crate) fn hold(mut self) -> HeldPermit {
        let shared = self
            .shared
            .take()
            .expect("a permit holds its limiter until dropped");
        HeldPermit(shared)
    }
}

impl<A, C, R> Drop for Permit<A, C, R> {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.gate.release();
        }
    }
}

impl<A, C, R> GiveBack for Shared<A, C, R>
where
    A: Send,
    C: Send + Sync,
    R: Send + Sync,
{
    fn give_back(&self) {
        self.gate.release();
    }
}

impl<A, C, R> fmt::Debug for Permit<A, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}

/// A place in the queue; given up when dropped.
pub(crate) struct Waiting<A, C, R> {
    pub(crate) key: Option<WaitKey>,
    pub(crate) shared: Arc<Shared<A, C, R>>,
}

impl<A, C, R> Drop for Waiting<A, C, R> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.shared.gate.cancel(key);
        }
    }
}

impl<A, C, R> fmt::Debug for Waiting<A, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiting").field("key", &self.key).finish()
    }
}
