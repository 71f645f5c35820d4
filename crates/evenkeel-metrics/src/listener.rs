use std::fmt;
use std::sync::{Arc, Once};
use std::time::Duration;

use evenkeel_core::Outcome;
use evenkeel_core::event::{EndpointState, Event, Events, Listener, StreamEnd};
use evenkeel_headers::Resource;
use metrics::{Counter, Gauge, Histogram};

use crate::cache::{Interner, Map};
use crate::labels;
use crate::names::Naming;
use crate::record::{counter, gauge, histogram, label};

/// The most distinct names (limiters, quota keys, endpoints) a
/// [`MetricsListener`] labels; later ones are `_OTHER`.
pub const DEFAULT_MAX_NAMES: usize = 256;

/// The endpoint states every endpoint's state set starts with.
const STATES: [EndpointState; 5] = [
    EndpointState::Healthy,
    EndpointState::Ejected,
    EndpointState::CoolingDown,
    EndpointState::Draining,
    EndpointState::Removed,
];

/// Records the [`Event`]s of the retry, limit, quota and failover layers.
///
/// Hand it (or [`events`](MetricsListener::events)) to each layer's
/// `on_event`/`events` option. It is cheap to clone; clones share their
/// handles.
///
/// | event | metric (OpenTelemetry naming) | labels |
/// |---|---|---|
/// | `Retry` | `evenkeel.retry.retries` (counter), `evenkeel.retry.wait` (histogram, s) | `error.type` (the outcome retried), `evenkeel.wait.source` (`server` when the wait is the server's `Retry-After`, else `backoff`); the histogram has only the source |
/// | `GaveUp` | `evenkeel.retry.give_ups` (counter) | `evenkeel.reason` (`budget`, `attempts`, `wait_too_long`, `deadline`, …), `error.type` |
/// | `LimitChanged` | `evenkeel.limiter.limit` (gauge) | `evenkeel.limiter` |
/// | `LimitRejected` | `evenkeel.limiter.rejections` (counter) | `evenkeel.limiter` |
/// | `QuotaWait` | `evenkeel.quota.wait` (histogram, s) | `evenkeel.quota.key`, `evenkeel.resource` |
/// | `QuotaRejected` | `evenkeel.quota.rejections` (counter) | `evenkeel.quota.key`, `evenkeel.resource` |
/// | `QuotaStoreFailed` | `evenkeel.quota.store.errors` (counter), `evenkeel.quota.store.fallback` (gauge, set to 1) | `evenkeel.quota.store`, `evenkeel.reason` (`timeout`, `connection`, `response`); the gauge has only the store |
/// | `QuotaStoreRecovered` | `evenkeel.quota.store.fallback` (gauge, set to 0) | `evenkeel.quota.store` |
/// | `EndpointState` | `evenkeel.endpoint.state` (gauge, state set) | `evenkeel.endpoint`, `evenkeel.state` |
/// | `Failover` | `evenkeel.failover.failovers` (counter) | `evenkeel.failover.from`, `evenkeel.failover.to`, `error.type` |
/// | `Failback` | `evenkeel.failover.failbacks` (counter) | `evenkeel.failover.to` |
/// | `DnsResolved` | `evenkeel.dns.resolutions` (counter), `evenkeel.dns.addresses` (gauge), `evenkeel.dns.ttl` (histogram, s, when the answer has one) | `evenkeel.dns.host`; the counter also `evenkeel.dns.outcome` = `ok` |
/// | `DnsFailed` | `evenkeel.dns.resolutions` (counter) | `evenkeel.dns.host`, `evenkeel.dns.outcome` (`nxdomain`, `no_records`, `timeout`, `servfail`, `other`) |
/// | `AddressChanged` | `evenkeel.dns.address_changes` (counter) | `evenkeel.dns.host`, `evenkeel.dns.change` (`added`, `removed`) |
///
/// Limiter, quota-key and endpoint names come from your configuration and
/// must form a small fixed set: the first [`DEFAULT_MAX_NAMES`] distinct
/// names are labelled as they are, later ones as `_OTHER`. Quota resources
/// the server names itself are `other`.
///
/// ```
/// use evenkeel_core::event::Event;
/// use evenkeel_metrics::MetricsListener;
///
/// let listener = MetricsListener::new();
/// let events = listener.events();
/// events.emit(|| Event::LimitChanged { name: "anthropic", limit: 16 });
/// ```
#[derive(Clone)]
pub struct MetricsListener {
    state: Arc<State>,
}

struct State {
    naming: Naming,
    described: Once,
    names: Interner,
    retries: Map<(&'static str, bool), Counter>,
    retry_wait: Map<bool, Histogram>,
    give_ups: Map<(&'static str, &'static str), Counter>,
    limits: Map<u32, Gauge>,
    limit_rejections: Map<u32, Counter>,
    quota_wait: Map<(u32, u8), Histogram>,
    quota_rejections: Map<(u32, u8), Counter>,
    store_errors: Map<(u32, &'static str), Counter>,
    store_fallback: Map<u32, Gauge>,
    endpoint_states: Map<u32, Vec<(&'static str, Gauge)>>,
    failovers: Map<(u32, u32, &'static str), Counter>,
    failbacks: Map<u32, Counter>,
    dns_resolutions: Map<(u32, &'static str), Counter>,
    dns_addresses: Map<u32, Gauge>,
    dns_ttl: Map<u32, Histogram>,
    dns_changes: Map<(u32, bool), Counter>,
    stream_first_event: Map<(), Histogram>,
    stream_durations: Map<&'static str, Histogram>,
    streams: Map<(&'static str, &'static str), Counter>,
}

impl MetricsListener {
    /// A listener with OpenTelemetry naming ([`Naming::OPEN_TELEMETRY`]).
    pub fn new() -> Self {
        MetricsListener::with_naming(Naming::OPEN_TELEMETRY)
    }

    /// A listener with the given names.
    pub fn with_naming(naming: Naming) -> Self {
        MetricsListener {
            state: Arc::new(State {
                naming,
                described: Once::new(),
                names: Interner::new(DEFAULT_MAX_NAMES),
                retries: Map::default(),
                retry_wait: Map::default(),
                give_ups: Map::default(),
                limits: Map::default(),
                limit_rejections: Map::default(),
                quota_wait: Map::default(),
                quota_rejections: Map::default(),
                store_errors: Map::default(),
                store_fallback: Map::default(),
                endpoint_states: Map::default(),
                failovers: Map::default(),
                failbacks: Map::default(),
                dns_resolutions: Map::default(),
                dns_addresses: Map::default(),
                dns_ttl: Map::default(),
                dns_changes: Map::default(),
                stream_first_event: Map::default(),
                stream_durations: Map::default(),
                streams: Map::default(),
            }),
        }
    }

    /// This listener as an [`Events`], for layers that take one (several
    /// layers can share it, and [`Events::and`] adds another listener).
    pub fn events(&self) -> Events {
        Events::new(self.clone())
    }

    /// The names this listener records under.
    pub fn naming(&self) -> &Naming {
        &self.state.naming
    }
}

impl Default for MetricsListener {
    fn default() -> Self {
        MetricsListener::new()
    }
}

impl fmt::Debug for MetricsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsListener")
            .field("naming", &self.state.naming.retries)
            .finish_non_exhaustive()
    }
}

impl Listener for MetricsListener {
    fn on_event(&self, event: &Event<'_>) {
        let s = &*self.state;
        // Units and help texts go to the recorder the first event goes to.
        s.described.call_once(|| s.naming.describe());
        match *event {
            Event::Retry {
                outcome,
                wait,
                server_directed,
                ..
            } => s.retry(outcome, wait, server_directed),
            Event::GaveUp {
                reason, outcome, ..
            } => s.give_up(reason.as_str(), outcome),
            Event::LimitChanged { name, limit } => s.limit(name, limit),
            Event::LimitRejected { name } => s.limit_rejected(name),
            Event::QuotaWait {
                key,
                resource,
                wait,
            } => s.quota_wait(key, resource, wait),
            Event::QuotaRejected { key, resource, .. } => s.quota_rejected(key, resource),
            Event::EndpointState { endpoint, state } => s.endpoint_state(endpoint, state),
            Event::Failover { from, to, outcome } => s.failover(from, to, outcome),
            Event::Failback { to } => s.failback(to),
            Event::DnsResolved {
                host,
                addresses,
                ttl,
            } => s.dns_resolved(host, addresses, ttl),
            Event::DnsFailed { host, reason } => s.dns_resolution(host, reason),
            Event::AddressChanged { host, added, .. } => s.dns_change(host, added),
            Event::QuotaStoreFailed { store, reason } => s.store_failed(store, reason.as_str()),
            Event::QuotaStoreRecovered { store, .. } => s.store_fallback(store, false),
            Event::StreamEnded {
                first_event,
                duration,
                end,
            } => s.stream_ended(first_event, duration, end),
            _ => {}
        }
    }
}

fn wait_source(server_directed: bool) -> &'static str {
    if server_directed { "server" } else { "backoff" }
}

impl State {
    fn retry(&self, outcome: &Outcome, wait: Duration, server_directed: bool) {
        let l = &self.naming.labels;
        let error = outcome.as_str();
        self.retries.with(
            (error, server_directed),
            || {
                let labels = vec![
                    label(l.outcome, error),
                    label(l.wait_source, wait_source(server_directed)),
                ];
                counter(self.naming.retries, labels)
            },
            |c| c.increment(1),
        );
        self.retry_wait.with(
            server_directed,
            || {
                let labels = vec![label(l.wait_source, wait_source(server_directed))];
                histogram(self.naming.retry_wait, labels)
            },
            |h| h.record(wait.as_secs_f64()),
        );
    }

    fn give_up(&self, reason: &'static str, outcome: &Outcome) {
        let l = &self.naming.labels;
        let error = outcome.as_str();
        self.give_ups.with(
            (reason, error),
            || {
                let labels = vec![label(l.reason, reason), label(l.outcome, error)];
                counter(self.naming.give_ups, labels)
            },
            |c| c.increment(1),
        );
    }

    fn limit(&self, name: &str, limit: usize) {
        let id = self.names.id(name);
        self.limits.with(
            id,
            || {
                let labels = vec![label(self.naming.labels.limiter, self.names.value(id))];
                gauge(self.naming.limiter_limit, labels)
            },
            |g| g.set(limit as f64),
        );
    }

    fn limit_rejected(&self, name: &str) {
        let id = self.names.id(name);
        self.limit_rejections.with(
            id,
            || {
                let labels = vec![label(self.naming.labels.limiter, self.names.value(id))];
                counter(self.naming.limiter_rejections, labels)
            },
            |c| c.increment(1),
        );
    }

    fn quota_labels(&self, id: u32, resource: &'static str) -> Vec<metrics::Label> {
        let l = &self.naming.labels;
        vec![
            label(l.quota_key, self.names.value(id)),
            label(l.resource, resource),
        ]
    }

    fn quota_wait(&self, key: &str, resource: &Resource, wait: Duration) {
        let id = self.names.id(key);
        let (slot, resource) = labels::resource_slot(resource);
        self.quota_wait.with(
            (id, slot as u8),
            || histogram(self.naming.quota_wait, self.quota_labels(id, resource)),
            |h| h.record(wait.as_secs_f64()),
        );
    }

    fn quota_rejected(&self, key: &str, resource: &Resource) {
        let id = self.names.id(key);
        let (slot, resource) = labels::resource_slot(resource);
        self.quota_rejections.with(
            (id, slot as u8),
            || {
                counter(
                    self.naming.quota_rejections,
                    self.quota_labels(id, resource),
                )
            },
            |c| c.increment(1),
        );
    }

    fn store_failed(&self, store: &str, reason: &'static str) {
        let id = self.names.id(store);
        let l = &self.naming.labels;
        self.store_errors.with(
            (id, reason),
            || {
                let labels = vec![
                    label(l.quota_store, self.names.value(id)),
                    label(l.reason, reason),
                ];
                counter(self.naming.quota_store_errors, labels)
            },
            |c| c.increment(1),
        );
        self.store_fallback(store, true);
    }

    fn store_fallback(&self, store: &str, active: bool) {
        let id = self.names.id(store);
        self.store_fallback.with(
            id,
            || {
                let labels = vec![label(self.naming.labels.quota_store, self.names.value(id))];
                gauge(self.naming.quota_store_fallback, labels)
            },
            |g| g.set(if active { 1.0 } else { 0.0 }),
        );
    }

    fn endpoint_state(&self, endpoint: &str, state: EndpointState) {
        let id = self.names.id(endpoint);
        let l = &self.naming.labels;
        let make = |state: &'static str| {
            let labels = vec![
                label(l.endpoint, self.names.value(id)),
                label(l.state, state),
            ];
            gauge(self.naming.endpoint_state, labels)
        };
        self.endpoint_states.with_mut(
            id,
            || {
                STATES
                    .iter()
                    .map(|s| (s.as_str(), make(s.as_str())))
                    .collect()
            },
            |set| {
                let current = state.as_str();
                if !set.iter().any(|(s, _)| *s == current) {
                    set.push((current, make(current)));
                }
                for (s, g) in set.iter() {
                    g.set(if *s == current { 1.0 } else { 0.0 });
                }
            },
        );
    }

    fn failover(&self, from: &str, to: &str, outcome: &Outcome) {
        let from_id = self.names.id(from);
        let to_id = self.names.id(to);
        let error = outcome.as_str();
        self.failovers.with(
            (from_id, to_id, error),
            || {
                let l = &self.naming.labels;
                let labels = vec![
                    label(l.from, self.names.value(from_id)),
                    label(l.to, self.names.value(to_id)),
                    label(l.outcome, error),
                ];
                counter(self.naming.failovers, labels)
            },
            |c| c.increment(1),
        );
    }

    fn dns_resolution(&self, host: &str, outcome: &str) {
        let id = self.names.id(host);
        // The outcomes are a closed set; anything else is `other`.
        let outcome = match outcome {
            "ok" => "ok",
            "nxdomain" => "nxdomain",
            "no_records" => "no_records",
            "timeout" => "timeout",
            "servfail" => "servfail",
            _ => "other",
        };
        self.dns_resolutions.with(
            (id, outcome),
            || {
                let l = &self.naming.labels;
                let labels = vec![
                    label(l.dns_host, self.names.value(id)),
                    label(l.dns_outcome, outcome),
                ];
                counter(self.naming.dns_resolutions, labels)
            },
            |c| c.increment(1),
        );
    }

    fn dns_resolved(&self, host: &str, addresses: usize, ttl: Option<Duration>) {
        self.dns_resolution(host, "ok");
        let id = self.names.id(host);
        let host_label = || vec![label(self.naming.labels.dns_host, self.names.value(id))];
        self.dns_addresses.with(
            id,
            || gauge(self.naming.dns_addresses, host_label()),
            |g| g.set(addresses as f64),
        );
        if let Some(ttl) = ttl {
            self.dns_ttl.with(
                id,
                || histogram(self.naming.dns_ttl, host_label()),
                |h| h.record(ttl.as_secs_f64()),
            );
        }
    }

    fn dns_change(&self, host: &str, added: bool) {
        let id = self.names.id(host);
        self.dns_changes.with(
            (id, added),
            || {
                let l = &self.naming.labels;
                let change = if added { "added" } else { "removed" };
                let labels = vec![
                    label(l.dns_host, self.names.value(id)),
                    label(l.dns_change, change),
                ];
                counter(self.naming.dns_address_changes, labels)
            },
            |c| c.increment(1),
        );
    }

    fn stream_ended(&self, first_event: Duration, duration: Duration, end: StreamEnd) {
        let l = &self.naming.labels;
        let how = end.as_str();
        let kind = match end {
            StreamEnd::Error(kind) => kind.as_str(),
            _ => "",
        };
        self.stream_first_event.with(
            (),
            || histogram(self.naming.stream_first_event, Vec::new()),
            |h| h.record(first_event.as_secs_f64()),
        );
        self.stream_durations.with(
            how,
            || histogram(self.naming.stream_duration, vec![label(l.stream_end, how)]),
            |h| h.record(duration.as_secs_f64()),
        );
        self.streams.with(
            (how, kind),
            || {
                let mut labels = vec![label(l.stream_end, how)];
                if !kind.is_empty() {
                    labels.push(label(l.outcome, kind));
                }
                counter(self.naming.streams, labels)
            },
            |c| c.increment(1),
        );
    }

    fn failback(&self, to: &str) {
        let id = self.names.id(to);
        self.failbacks.with(
            id,
            || {
                let labels = vec![label(self.naming.labels.to, self.names.value(id))];
                counter(self.naming.failbacks, labels)
            },
            |c| c.increment(1),
        );
    }
}
