//! What the layer records, and the handles it records through.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Once};

use evenkeel_core::clock;
use evenkeel_headers::{Quota, RateLimits};
use http::{HeaderMap, StatusCode};
use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, SharedString};
use tokio::time::Instant;

use crate::cache::{Interner, Map, OTHER_ID, Ref, Table};
use crate::labels::{self, CANCELLED, OTHER, RESOURCES};
use crate::layer::Scope;
use crate::names::Naming;

/// The metadata every handle is registered with.
pub(crate) static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

pub(crate) fn counter(name: &'static str, labels: Vec<Label>) -> Counter {
    let key = Key::from_parts(name, labels);
    metrics::with_recorder(|r| r.register_counter(&key, &METADATA))
}

pub(crate) fn gauge(name: &'static str, labels: Vec<Label>) -> Gauge {
    let key = Key::from_parts(name, labels);
    metrics::with_recorder(|r| r.register_gauge(&key, &METADATA))
}

pub(crate) fn histogram(name: &'static str, labels: Vec<Label>) -> Histogram {
    let key = Key::from_parts(name, labels);
    metrics::with_recorder(|r| r.register_histogram(&key, &METADATA))
}

pub(crate) fn label(key: &'static str, value: impl Into<SharedString>) -> Label {
    Label::new(key, value)
}

/// A user function that names a request's route.
pub(crate) type RouteFn =
    Arc<dyn Fn(&http::request::Parts) -> Option<Cow<'static, str>> + Send + Sync>;

/// Where the `server.address` label comes from.
pub(crate) enum Address {
    /// No such label.
    Off,
    /// The same value for every request.
    Fixed(SharedString),
    /// The request's host, interned.
    Request(Box<Interner>),
}

/// The address id of a request that names no host.
const NO_HOST: u32 = u32::MAX;

/// The label set of a call, known when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CallKey {
    pub(crate) method: u8,
    pub(crate) attempt: u8,
    pub(crate) address: u32,
    pub(crate) route: u32,
}

/// The handles of one outcome of one call label set.
struct OutcomeHandles {
    duration: Histogram,
    count: Counter,
}

/// The handles of one call label set.
pub(crate) struct CallEntry {
    key: CallKey,
    /// The labels every outcome shares: method, address, route.
    base: Vec<Label>,
    active: Gauge,
    /// By status code (0 for none) and error type.
    outcomes: Table<(u16, Option<&'static str>), OutcomeHandles>,
}

/// Where a call's [`CallEntry`] is.
pub(crate) type EntryRef = Ref<CallEntry>;

/// The gauges of one (address, resource).
struct HeadroomGauges {
    remaining: Gauge,
    limit: Gauge,
    reset: Gauge,
}

/// Everything the layer's services and futures share.
pub(crate) struct Instruments {
    pub(crate) scope: Scope,
    pub(crate) naming: Naming,
    duration_name: &'static str,
    count_name: &'static str,
    active_name: &'static str,
    address: Address,
    /// The fixed `server.port`, when the naming has that label.
    port: Option<SharedString>,
    route: Option<(RouteFn, Interner)>,
    rate_limits: bool,
    calls: Table<CallKey, CallEntry>,
    headroom: Map<(u32, u8), HeadroomGauges>,
    described: Once,
}

impl Instruments {
    pub(crate) fn new(
        scope: Scope,
        naming: Naming,
        address: Address,
        port: Option<SharedString>,
        route: Option<(RouteFn, Interner)>,
        rate_limits: bool,
    ) -> Self {
        let (duration_name, count_name, active_name) = match scope {
            Scope::Call => (naming.duration, naming.requests, naming.active_requests),
            Scope::Attempt => (
                naming.attempt_duration,
                naming.attempts,
                naming.active_attempts,
            ),
        };
        let address = match naming.labels.server_address {
            None => Address::Off,
            Some(_) => address,
        };
        Instruments {
            scope,
            naming,
            duration_name,
            count_name,
            active_name,
            address,
            port: port.filter(|_| naming.labels.server_port.is_some()),
            route,
            rate_limits,
            calls: Table::default(),
            headroom: Map::default(),
            described: Once::new(),
        }
    }

    pub(crate) fn has_route(&self) -> bool {
        self.route.is_some()
    }

    /// The key of a request; `parts` is given when a route function is set.
    #[inline]
    pub(crate) fn key(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        attempt: u32,
        parts: Option<&http::request::Parts>,
    ) -> CallKey {
        let address = match &self.address {
            Address::Request(interner) => labels::authority(uri, headers)
                .and_then(|authority| {
                    interner.id_by(authority, |authority| {
                        let host = labels::host_of(authority)?;
                        Some(SharedString::from_shared(Arc::<str>::from(host)))
                    })
                })
                .unwrap_or(NO_HOST),
            Address::Off | Address::Fixed(_) => 0,
        };
        let route = match (&self.route, parts) {
            (Some((f, interner)), Some(parts)) => match f(parts) {
                Some(route) => interner.id(&route),
                None => OTHER_ID,
            },
            _ => 0,
        };
        CallKey {
            method: labels::method_index(method),
            attempt: match self.scope {
                Scope::Attempt => labels::attempt_bucket(attempt),
                Scope::Call => 0,
            },
            address,
            route,
        }
    }

    fn address_label(&self, id: u32) -> Option<SharedString> {
        match &self.address {
            Address::Off => None,
            Address::Fixed(value) => Some(value.clone()),
            Address::Request(_) if id == NO_HOST => None,
            Address::Request(interner) => Some(interner.value(id)),
        }
    }

    /// Starts a call: counts it in flight and returns where its handles
    /// are, for [`Pending`].
    #[inline]
    pub(crate) fn start(&self, key: CallKey) -> EntryRef {
        let at = self.calls.find(key, || self.entry(key));
        if let Some(entry) = self.calls.get(&at) {
            entry.active.increment(1.0);
        }
        at
    }

    /// Registers units and help texts with the recorder the first handles
    /// go to, so exporters that name by unit (`_seconds`) see them.
    fn describe(&self) {
        self.described.call_once(|| self.naming.describe());
    }

    #[cold]
    fn entry(&self, key: CallKey) -> CallEntry {
        self.describe();
        let l = &self.naming.labels;
        let mut base = vec![label(l.method, labels::method_label(key.method))];
        if let (Some(k), Some(v)) = (l.server_address, self.address_label(key.address)) {
            base.push(label(k, v));
            if let (Some(k), Some(port)) = (l.server_port, &self.port) {
                base.push(label(k, port.clone()));
            }
        }
        let active = gauge(self.active_name, base.clone());
        if let Some((_, interner)) = &self.route {
            base.push(label(l.route, interner.value(key.route)));
        }
        CallEntry {
            key,
            base,
            active,
            outcomes: Table::default(),
        }
    }

    /// Records a finished call: `status` when a response arrived, `error`
    /// when the outcome is not a success.
    #[inline]
    fn finish(
        &self,
        entry: &CallEntry,
        status: Option<StatusCode>,
        error: Option<&'static str>,
        seconds: f64,
    ) {
        let code = status.map_or(0, |s| s.as_u16());
        entry.outcomes.with(
            (code, error),
            || self.outcome(entry, status, error),
            |h| {
                h.duration.record(seconds);
                h.count.increment(1);
            },
        );
    }

    #[cold]
    fn outcome(
        &self,
        entry: &CallEntry,
        status: Option<StatusCode>,
        error: Option<&'static str>,
    ) -> OutcomeHandles {
        let l = &self.naming.labels;
        let mut labels = entry.base.clone();
        match (status, l.error_type) {
            (Some(status), _) => labels.push(label(l.status_code, status.as_str().to_owned())),
            // No error-type label: the status label says what went wrong.
            (None, None) => labels.push(label(l.status_code, error.unwrap_or(OTHER))),
            (None, Some(_)) => {}
        }
        if let (Some(k), Some(error)) = (l.error_type, error) {
            labels.push(label(k, error));
        }
        let duration = histogram(self.duration_name, labels.clone());
        if self.scope == Scope::Attempt {
            labels.push(label(l.attempt, labels::attempt_label(entry.key.attempt)));
        }
        OutcomeHandles {
            duration,
            count: counter(self.count_name, labels),
        }
    }

    /// Sets the rate-limit gauges from a response's headers, if it has any.
    #[inline]
    pub(crate) fn rate_limits(&self, address: u32, headers: &HeaderMap, at: Instant) {
        if !self.rate_limits || headers.is_empty() {
            return;
        }
        let limits = evenkeel_headers::rate_limits(headers, clock::system_time_at(at));
        self.headroom(address, &limits);
    }

    /// Sets the rate-limit gauges from readings already made.
    #[inline]
    pub(crate) fn headroom(&self, address: u32, limits: &RateLimits) {
        if !self.rate_limits || limits.is_empty() {
            return;
        }
        self.record_headroom(address, limits.iter());
    }

    #[cold]
    fn record_headroom<'a>(&self, address: u32, quotas: impl Iterator<Item = &'a Quota>) {
        // The binding quota per resource: fewest left, then latest reset.
        let mut tightest: [Option<&Quota>; RESOURCES] = [None; RESOURCES];
        for q in quotas {
            let (slot, _) = labels::resource_slot(&q.resource);
            let left = |q: &Quota| q.remaining.unwrap_or(u64::MAX);
            let tighter = match tightest[slot] {
                None => true,
                Some(t) => {
                    (left(q), std::cmp::Reverse(q.reset_after))
                        < (left(t), std::cmp::Reverse(t.reset_after))
                }
            };
            if tighter {
                tightest[slot] = Some(q);
            }
        }
        for q in tightest.into_iter().flatten() {
            let (slot, resource) = labels::resource_slot(&q.resource);
            self.headroom.with(
                (address, slot as u8),
                || {
                    self.describe();
                    let l = &self.naming.labels;
                    let mut labels = vec![label(l.resource, resource)];
                    if let (Some(k), Some(v)) = (l.server_address, self.address_label(address)) {
                        labels.push(label(k, v));
                        if let (Some(k), Some(port)) = (l.server_port, &self.port) {
                            labels.push(label(k, port.clone()));
                        }
                    }
                    HeadroomGauges {
                        remaining: gauge(self.naming.rate_limit_remaining, labels.clone()),
                        limit: gauge(self.naming.rate_limit_limit, labels.clone()),
                        reset: gauge(self.naming.rate_limit_reset, labels),
                    }
                },
                |g| {
                    if let Some(remaining) = q.remaining {
                        g.remaining.set(remaining as f64);
                    }
                    if let Some(limit) = q.limit {
                        g.limit.set(limit as f64);
                    }
                    if let Some(reset) = q.reset_after {
                        g.reset.set(reset.as_secs_f64());
                    }
                },
            );
        }
    }
}

/// A call being measured: where its handles are and when it started.
/// [`complete`](Pending::complete) or [`cancel`](Pending::cancel) record it
/// and take it out of flight.
pub(crate) struct Pending {
    entry: EntryRef,
    start: Instant,
}

impl Pending {
    pub(crate) fn new(entry: EntryRef, start: Instant) -> Self {
        Pending { entry, start }
    }

    /// The address id of the call.
    pub(crate) fn address(&self, instruments: &Instruments) -> u32 {
        instruments
            .calls
            .get(&self.entry)
            .map_or(NO_HOST, |e| e.key.address)
    }

    /// Records the call's outcome, `at` being when it completed.
    pub(crate) fn complete(
        self,
        instruments: &Instruments,
        status: Option<StatusCode>,
        error: Option<&'static str>,
        at: Instant,
    ) {
        if let Some(entry) = instruments.calls.get(&self.entry) {
            entry.active.decrement(1.0);
            let seconds = at.saturating_duration_since(self.start).as_secs_f64();
            instruments.finish(entry, status, error, seconds);
        }
    }

    /// Records the call as `cancelled`: dropped before it completed.
    pub(crate) fn cancel(self, instruments: &Instruments) {
        let at = clock::now();
        self.complete(instruments, None, Some(CANCELLED), at);
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Instruments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let address = match &self.address {
            Address::Off => "off",
            Address::Fixed(_) => "fixed",
            Address::Request(_) => "request",
        };
        f.debug_struct("Instruments")
            .field("scope", &self.scope)
            .field("naming", &self.naming.duration)
            .field("address", &address)
            .field("route", &self.route.is_some())
            .field("rate_limits", &self.rate_limits)
            .finish()
    }
}
