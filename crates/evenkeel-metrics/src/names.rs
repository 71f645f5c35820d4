//! Metric names, label keys, units, help texts and advised buckets.
//!
//! Every name this crate records is a constant here, and a [`Naming`] bundles
//! one complete set of them: [`Naming::OPEN_TELEMETRY`] (the default) or
//! [`Naming::SHORT`], the short Prometheus names many dashboards already use.
//! [`Naming::describe`] registers the unit and help text of each name with the
//! installed recorder (layers and listeners call it on first use).
//!
//! Names are in the `metrics` facade's form (OpenTelemetry's dotted names).
//! Exporters normalise them: metrics-exporter-prometheus with
//! `with_recommended_naming(true)` turns `http.client.request.duration`
//! (seconds) into `http_client_request_duration_seconds` and the counter
//! `evenkeel.http.client.requests` into
//! `evenkeel_http_client_requests_total`, as OpenTelemetry's own Prometheus
//! exporter does. The short names already carry their suffixes, so they
//! export unchanged with or without that option.

use metrics::Unit;

/// The request duration of the [`Scope::Call`](crate::Scope::Call) view
/// (OpenTelemetry `http.client.request.duration`), in seconds.
pub const HTTP_CLIENT_REQUEST_DURATION: &str = "http.client.request.duration";
/// Calls counted by outcome.
pub const HTTP_CLIENT_REQUESTS: &str = "evenkeel.http.client.requests";
/// Calls in flight (OpenTelemetry `http.client.active_requests`).
pub const HTTP_CLIENT_ACTIVE_REQUESTS: &str = "http.client.active_requests";
/// The duration of each attempt, in seconds
/// ([`Scope::Attempt`](crate::Scope::Attempt)).
pub const HTTP_CLIENT_ATTEMPT_DURATION: &str = "evenkeel.http.client.attempt.duration";
/// Attempts counted by outcome and attempt number.
pub const HTTP_CLIENT_ATTEMPTS: &str = "evenkeel.http.client.attempts";
/// Attempts in flight.
pub const HTTP_CLIENT_ACTIVE_ATTEMPTS: &str = "evenkeel.http.client.active_attempts";

/// What the server's rate-limit headers say is left, per resource.
pub const RATE_LIMIT_REMAINING: &str = "evenkeel.rate_limit.remaining";
/// The server's rate limit, per resource.
pub const RATE_LIMIT_LIMIT: &str = "evenkeel.rate_limit.limit";
/// Seconds until the server's rate limit resets, per resource.
pub const RATE_LIMIT_RESET: &str = "evenkeel.rate_limit.reset";

/// Retries scheduled, by the outcome retried and the source of the wait.
pub const RETRIES: &str = "evenkeel.retry.retries";
/// The wait before each retry, in seconds, by its source.
pub const RETRY_WAIT: &str = "evenkeel.retry.wait";
/// Requests the retry layer stopped resending, by reason.
pub const RETRY_GIVE_UPS: &str = "evenkeel.retry.give_ups";
/// The current limit of each concurrency limiter.
pub const LIMITER_LIMIT: &str = "evenkeel.limiter.limit";
/// Requests a concurrency limiter rejected without sending.
pub const LIMITER_REJECTIONS: &str = "evenkeel.limiter.rejections";
/// How long the quota layer held requests, in seconds.
pub const QUOTA_WAIT: &str = "evenkeel.quota.wait";
/// Requests the quota layer failed because the wait was too long.
pub const QUOTA_REJECTIONS: &str = "evenkeel.quota.rejections";
/// Calls to a shared quota store (Redis) that failed or timed out, by store
/// and reason.
pub const QUOTA_STORE_ERRORS: &str = "evenkeel.quota.store.errors";
/// 1 while a process paces itself locally because its shared quota store
/// does not answer, 0 once it is back on the store.
pub const QUOTA_STORE_FALLBACK: &str = "evenkeel.quota.store.fallback";
/// Each endpoint's state, as a state set: 1 for its current state, 0 for
/// the others.
pub const ENDPOINT_STATE: &str = "evenkeel.endpoint.state";
/// Requests moved from one endpoint to another.
pub const FAILOVERS: &str = "evenkeel.failover.failovers";
/// Returns of traffic to a preferred endpoint.
pub const FAILBACKS: &str = "evenkeel.failover.failbacks";
/// Host-name resolutions for endpoint discovery, by outcome.
pub const DNS_RESOLUTIONS: &str = "evenkeel.dns.resolutions";
/// Addresses in a host's last good answer.
pub const DNS_ADDRESSES: &str = "evenkeel.dns.addresses";
/// The time to live of each answer, in seconds.
pub const DNS_TTL: &str = "evenkeel.dns.ttl";
/// Addresses that joined or left a host's answer.
pub const DNS_ADDRESS_CHANGES: &str = "evenkeel.dns.address_changes";
/// From a streamed answer's send to its first content event, in seconds.
pub const STREAM_FIRST_EVENT: &str = "evenkeel.stream.first_event";
/// From a streamed answer's send to its end, in seconds, by how it ended.
pub const STREAM_DURATION: &str = "evenkeel.stream.duration";
/// Streamed answers that reached the caller, by how they ended.
pub const STREAMS: &str = "evenkeel.stream.streams";

/// Label: the request method (OpenTelemetry `http.request.method`); methods
/// outside the standard set are `_OTHER`.
pub const METHOD: &str = "http.request.method";
/// Label: the response status code as a number.
pub const STATUS_CODE: &str = "http.response.status_code";
/// Label: the [`Outcome`](evenkeel_core::Outcome) name when it is not a
/// success (`rate_limited`, `connection_refused`, …), or `cancelled`.
pub const ERROR_TYPE: &str = "error.type";
/// Label: the server's host name.
pub const SERVER_ADDRESS: &str = "server.address";
/// Label: the server's port, where the layer knows it.
pub const SERVER_PORT: &str = "server.port";
/// Label: the route the user's route function returned (OpenTelemetry's
/// client-side `url.template`).
pub const ROUTE: &str = "url.template";
/// Label: the attempt number, `1` to `4`, then `5+`.
pub const ATTEMPT: &str = "evenkeel.attempt";
/// Label: the rate-limited or quota resource (`requests`, `tokens`, …).
pub const RESOURCE: &str = "evenkeel.resource";
/// Label: why the retry layer gave up.
pub const REASON: &str = "evenkeel.reason";
/// Label: where a retry's wait came from: `server` or `backoff`.
pub const WAIT_SOURCE: &str = "evenkeel.wait.source";
/// Label: a limiter's name.
pub const LIMITER: &str = "evenkeel.limiter";
/// Label: a quota key.
pub const QUOTA_KEY: &str = "evenkeel.quota.key";
/// Label: a shared quota store (`redis`).
pub const QUOTA_STORE: &str = "evenkeel.quota.store";
/// Label: an endpoint's name.
pub const ENDPOINT: &str = "evenkeel.endpoint";
/// Label: an endpoint state (`healthy`, `ejected`, `cooling_down`, …).
pub const STATE: &str = "evenkeel.state";
/// Label: the endpoint a failover left.
pub const FAILOVER_FROM: &str = "evenkeel.failover.from";
/// Label: the endpoint a failover or failback went to.
pub const FAILOVER_TO: &str = "evenkeel.failover.to";
/// Label: the host name resolved for discovery.
pub const DNS_HOST: &str = "evenkeel.dns.host";
/// Label: a resolution's outcome: `ok`, `nxdomain`, `no_records`,
/// `timeout`, `servfail` or `other`.
pub const DNS_OUTCOME: &str = "evenkeel.dns.outcome";
/// Label: how an address changed: `added` or `removed`.
pub const DNS_CHANGE: &str = "evenkeel.dns.change";
/// Label: how a streamed answer ended (`complete`, `error`, `failed`,
/// `dropped`).
pub const STREAM_END: &str = "evenkeel.stream.end";

/// OpenTelemetry's advised bucket boundaries for `http.client.request.duration`,
/// in seconds.
pub const OTEL_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// The buckets of the short `api_latency_seconds` histogram.
pub const SHORT_LATENCY_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 2.0, 5.0];
/// Buckets for waits (retry and quota), in seconds: server waits run from
/// milliseconds to minutes.
pub const WAIT_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Buckets for DNS times to live, in seconds: from failover-short records
/// to a day.
pub const TTL_BUCKETS: &[f64] = &[1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0];

/// The label keys of a [`Naming`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LabelNames {
    /// The request method.
    pub method: &'static str,
    /// The status code.
    pub status_code: &'static str,
    /// The error type. `None` folds it into the status-code label: a call
    /// without a response then carries its error type there.
    pub error_type: Option<&'static str>,
    /// The server's host name. `None` leaves it out.
    pub server_address: Option<&'static str>,
    /// The server's port, set next to a fixed server address. `None`
    /// leaves it out.
    pub server_port: Option<&'static str>,
    /// The route label, when a route function is set.
    pub route: &'static str,
    /// The attempt number (attempt scope only).
    pub attempt: &'static str,
    /// The outcome of the retry, give-up and failover metrics.
    pub outcome: &'static str,
    /// The resource of a rate limit or quota.
    pub resource: &'static str,
    /// The give-up reason.
    pub reason: &'static str,
    /// The wait source of a retry.
    pub wait_source: &'static str,
    /// The limiter name.
    pub limiter: &'static str,
    /// The quota key.
    pub quota_key: &'static str,
    /// The shared quota store.
    pub quota_store: &'static str,
    /// The endpoint name.
    pub endpoint: &'static str,
    /// The endpoint state.
    pub state: &'static str,
    /// The endpoint a failover left.
    pub from: &'static str,
    /// The endpoint a failover or failback went to.
    pub to: &'static str,
    /// The host name of the DNS metrics.
    pub dns_host: &'static str,
    /// The outcome of a resolution.
    pub dns_outcome: &'static str,
    /// How an address changed.
    pub dns_change: &'static str,
    /// How a streamed answer ended.
    pub stream_end: &'static str,
}

/// One complete set of metric names and label keys.
///
/// Start from a preset and change what you need; the fields are public:
///
/// ```
/// use evenkeel_metrics::Naming;
///
/// let mut naming = Naming::SHORT;
/// naming.requests = "llm_requests_total";
/// assert_eq!(naming.duration, "api_latency_seconds");
/// ```
///
/// Names must be non-empty and the metric names distinct;
/// [`MetricsBuilder::build`](crate::MetricsBuilder::build) checks.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Naming {
    /// Call duration histogram (seconds).
    pub duration: &'static str,
    /// Call counter.
    pub requests: &'static str,
    /// Calls in flight.
    pub active_requests: &'static str,
    /// Attempt duration histogram (seconds).
    pub attempt_duration: &'static str,
    /// Attempt counter.
    pub attempts: &'static str,
    /// Attempts in flight.
    pub active_attempts: &'static str,
    /// Rate-limit remaining gauge.
    pub rate_limit_remaining: &'static str,
    /// Rate-limit limit gauge.
    pub rate_limit_limit: &'static str,
    /// Rate-limit reset gauge (seconds).
    pub rate_limit_reset: &'static str,
    /// Retry counter.
    pub retries: &'static str,
    /// Retry wait histogram (seconds).
    pub retry_wait: &'static str,
    /// Give-up counter.
    pub give_ups: &'static str,
    /// Limiter limit gauge.
    pub limiter_limit: &'static str,
    /// Limiter rejection counter.
    pub limiter_rejections: &'static str,
    /// Quota wait histogram (seconds).
    pub quota_wait: &'static str,
    /// Quota rejection counter.
    pub quota_rejections: &'static str,
    /// Shared quota store error counter.
    pub quota_store_errors: &'static str,
    /// Shared quota store fallback gauge.
    pub quota_store_fallback: &'static str,
    /// Endpoint state gauge.
    pub endpoint_state: &'static str,
    /// Failover counter.
    pub failovers: &'static str,
    /// Failback counter.
    pub failbacks: &'static str,
    /// Resolution counter (endpoint discovery).
    pub dns_resolutions: &'static str,
    /// Addresses-per-host gauge.
    pub dns_addresses: &'static str,
    /// Answer TTL histogram (seconds).
    pub dns_ttl: &'static str,
    /// Address change counter.
    pub dns_address_changes: &'static str,
    /// Time to a stream's first content event histogram (seconds).
    pub stream_first_event: &'static str,
    /// Stream duration histogram (seconds).
    pub stream_duration: &'static str,
    /// Stream counter.
    pub streams: &'static str,
    /// The label keys.
    pub labels: LabelNames,
    /// The advised buckets of the two duration histograms.
    pub duration_buckets: &'static [f64],
}

/// What kind of metric a name is, with its unit and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Naming {
    /// OpenTelemetry HTTP client names, with `evenkeel.*` names for what the
    /// conventions do not define. The default.
    pub const OPEN_TELEMETRY: Naming = Naming {
        duration: HTTP_CLIENT_REQUEST_DURATION,
        requests: HTTP_CLIENT_REQUESTS,
        active_requests: HTTP_CLIENT_ACTIVE_REQUESTS,
        attempt_duration: HTTP_CLIENT_ATTEMPT_DURATION,
        attempts: HTTP_CLIENT_ATTEMPTS,
        active_attempts: HTTP_CLIENT_ACTIVE_ATTEMPTS,
        rate_limit_remaining: RATE_LIMIT_REMAINING,
        rate_limit_limit: RATE_LIMIT_LIMIT,
        rate_limit_reset: RATE_LIMIT_RESET,
        retries: RETRIES,
        retry_wait: RETRY_WAIT,
        give_ups: RETRY_GIVE_UPS,
        limiter_limit: LIMITER_LIMIT,
        limiter_rejections: LIMITER_REJECTIONS,
        quota_wait: QUOTA_WAIT,
        quota_rejections: QUOTA_REJECTIONS,
        quota_store_errors: QUOTA_STORE_ERRORS,
        quota_store_fallback: QUOTA_STORE_FALLBACK,
        endpoint_state: ENDPOINT_STATE,
        failovers: FAILOVERS,
        failbacks: FAILBACKS,
        dns_resolutions: DNS_RESOLUTIONS,
        dns_addresses: DNS_ADDRESSES,
        dns_ttl: DNS_TTL,
        dns_address_changes: DNS_ADDRESS_CHANGES,
        stream_first_event: STREAM_FIRST_EVENT,
        stream_duration: STREAM_DURATION,
        streams: STREAMS,
        labels: LabelNames {
            method: METHOD,
            status_code: STATUS_CODE,
            error_type: Some(ERROR_TYPE),
            server_address: Some(SERVER_ADDRESS),
            server_port: Some(SERVER_PORT),
            route: ROUTE,
            attempt: ATTEMPT,
            outcome: ERROR_TYPE,
            resource: RESOURCE,
            reason: REASON,
            wait_source: WAIT_SOURCE,
            limiter: LIMITER,
            quota_key: QUOTA_KEY,
            quota_store: QUOTA_STORE,
            endpoint: ENDPOINT,
            state: STATE,
            from: FAILOVER_FROM,
            to: FAILOVER_TO,
            dns_host: DNS_HOST,
            dns_outcome: DNS_OUTCOME,
            dns_change: DNS_CHANGE,
            stream_end: STREAM_END,
        },
        duration_buckets: OTEL_DURATION_BUCKETS,
    };

    /// Short Prometheus names: `api_requests_total{method,status_code}`,
    /// `api_latency_seconds` (buckets 0.1, 0.5, 1, 2, 5),
    /// `rate_limit_remaining{resource}` and their relatives. There is no
    /// `error_type` label: a call without a response carries its error type
    /// in `status_code` (`connection_refused`, `timeout`, `cancelled`, …);
    /// retries, give-ups and failovers carry it as `outcome`. There is no
    /// `server_address` label.
    pub const SHORT: Naming = Naming {
        duration: "api_latency_seconds",
        requests: "api_requests_total",
        active_requests: "api_requests_in_flight",
        attempt_duration: "api_attempt_latency_seconds",
        attempts: "api_attempts_total",
        active_attempts: "api_attempts_in_flight",
        rate_limit_remaining: "rate_limit_remaining",
        rate_limit_limit: "rate_limit_limit",
        rate_limit_reset: "rate_limit_reset_seconds",
        retries: "api_retries_total",
        retry_wait: "api_retry_wait_seconds",
        give_ups: "api_retry_give_ups_total",
        limiter_limit: "concurrency_limit",
        limiter_rejections: "concurrency_limit_rejections_total",
        quota_wait: "quota_wait_seconds",
        quota_rejections: "quota_rejections_total",
        quota_store_errors: "quota_store_errors_total",
        quota_store_fallback: "quota_store_fallback",
        endpoint_state: "endpoint_state",
        failovers: "failovers_total",
        failbacks: "failbacks_total",
        dns_resolutions: "dns_resolutions_total",
        dns_addresses: "dns_addresses",
        dns_ttl: "dns_ttl_seconds",
        dns_address_changes: "dns_address_changes_total",
        stream_first_event: "api_stream_first_event_seconds",
        stream_duration: "api_stream_duration_seconds",
        streams: "api_streams_total",
        labels: LabelNames {
            method: "method",
            status_code: "status_code",
            error_type: None,
            server_address: None,
            server_port: None,
            route: "route",
            attempt: "attempt",
            outcome: "outcome",
            resource: "resource",
            reason: "reason",
            wait_source: "wait_source",
            limiter: "limiter",
            quota_key: "key",
            quota_store: "store",
            endpoint: "endpoint",
            state: "state",
            from: "from",
            to: "to",
            dns_host: "host",
            dns_outcome: "outcome",
            dns_change: "change",
            stream_end: "end",
        },
        duration_buckets: SHORT_LATENCY_BUCKETS,
    };

    /// Every metric name with its kind, unit and help text.
    pub(crate) fn metrics(&self) -> [(&'static str, Kind, Unit, &'static str); 28] {
        use Kind::{Counter, Gauge, Histogram};
        [
            (
                self.duration,
                Histogram,
                Unit::Seconds,
                "Duration of HTTP client calls, to the response head.",
            ),
            (
                self.requests,
                Counter,
                Unit::Count,
                "HTTP client calls, by method, status and error type.",
            ),
            (
                self.active_requests,
                Gauge,
                Unit::Count,
                "HTTP client calls waiting for a response head.",
            ),
            (
                self.attempt_duration,
                Histogram,
                Unit::Seconds,
                "Duration of each HTTP attempt (retries included), to the response head.",
            ),
            (
                self.attempts,
                Counter,
                Unit::Count,
                "HTTP attempts (retries included), by method, status, error type and attempt number.",
            ),
            (
                self.active_attempts,
                Gauge,
                Unit::Count,
                "HTTP attempts waiting for a response head.",
            ),
            (
                self.rate_limit_remaining,
                Gauge,
                Unit::Count,
                "What the server's rate-limit headers last said is left, per resource.",
            ),
            (
                self.rate_limit_limit,
                Gauge,
                Unit::Count,
                "The server's rate limit from its last response headers, per resource.",
            ),
            (
                self.rate_limit_reset,
                Gauge,
                Unit::Seconds,
                "Seconds until the server's rate limit resets, from its last response headers.",
            ),
            (
                self.retries,
                Counter,
                Unit::Count,
                "Retries scheduled, by the outcome retried and whether the server set the wait.",
            ),
            (
                self.retry_wait,
                Histogram,
                Unit::Seconds,
                "Wait before each retry, by source (server or backoff).",
            ),
            (
                self.give_ups,
                Counter,
                Unit::Count,
                "Requests the retry layer stopped resending, by reason and last outcome.",
            ),
            (
                self.limiter_limit,
                Gauge,
                Unit::Count,
                "Current limit of each concurrency limiter.",
            ),
            (
                self.limiter_rejections,
                Counter,
                Unit::Count,
                "Requests a concurrency limiter rejected without sending them.",
            ),
            (
                self.quota_wait,
                Histogram,
                Unit::Seconds,
                "Time the quota layer held requests to stay inside a quota.",
            ),
            (
                self.quota_rejections,
                Counter,
                Unit::Count,
                "Requests the quota layer failed because the wait was too long.",
            ),
            (
                self.quota_store_errors,
                Counter,
                Unit::Count,
                "Calls to a shared quota store that failed or timed out, by store and reason.",
            ),
            (
                self.quota_store_fallback,
                Gauge,
                Unit::Count,
                "1 while the process paces itself locally because its shared quota store does not answer.",
            ),
            (
                self.endpoint_state,
                Gauge,
                Unit::Count,
                "Endpoint state set: 1 for the endpoint's current state, 0 for the others.",
            ),
            (
                self.failovers,
                Counter,
                Unit::Count,
                "Requests moved from one endpoint to another.",
            ),
            (
                self.failbacks,
                Counter,
                Unit::Count,
                "Returns of traffic to a preferred endpoint.",
            ),
            (
                self.dns_resolutions,
                Counter,
                Unit::Count,
                "Host-name resolutions for endpoint discovery, by host and outcome.",
            ),
            (
                self.dns_addresses,
                Gauge,
                Unit::Count,
                "Addresses in each host's last good DNS answer.",
            ),
            (
                self.dns_ttl,
                Histogram,
                Unit::Seconds,
                "Time to live of each DNS answer, per host.",
            ),
            (
                self.dns_address_changes,
                Counter,
                Unit::Count,
                "Addresses that joined or left a host's DNS answer.",
            ),
            (
                self.stream_first_event,
                Histogram,
                Unit::Seconds,
                "Time from a streamed answer's send to its first content event.",
            ),
            (
                self.stream_duration,
                Histogram,
                Unit::Seconds,
                "Time from a streamed answer's send to its end, by how it ended.",
            ),
            (
                self.streams,
                Counter,
                Unit::Count,
                "Streamed answers that reached the caller, by how they ended and the error kind.",
            ),
        ]
    }

    /// Registers the unit and help text of every name with the current
    /// recorder (the thread's local recorder if one is set, else the global
    /// one).
    ///
    /// Layers and listeners do this themselves, with the recorder their
    /// first handle goes to, so exporters that name by unit (the
    /// `_seconds` of Prometheus) always see the units. Call it yourself to
    /// have the help texts registered before anything is recorded.
    pub fn describe(&self) {
        for (name, kind, unit, help) in self.metrics() {
            match kind {
                Kind::Counter => metrics::describe_counter!(name, unit, help),
                Kind::Gauge => metrics::describe_gauge!(name, unit, help),
                Kind::Histogram => metrics::describe_histogram!(name, unit, help),
            }
        }
    }

    /// The advised bucket boundaries of each histogram, as
    /// `(metric name, upper bounds in seconds)`.
    ///
    /// The `metrics` facade has no way to pass bucket advice to an exporter;
    /// hand these to yours. With metrics-exporter-prometheus (the matcher is
    /// applied to the sanitised name, so the dotted name works as is):
    ///
    /// ```
    /// use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    ///
    /// let mut builder = PrometheusBuilder::new().with_recommended_naming(true);
    /// for (name, buckets) in evenkeel_metrics::Naming::OPEN_TELEMETRY.histogram_buckets() {
    ///     builder = builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)?;
    /// }
    /// let recorder = builder.build_recorder();
    /// # let _ = recorder;
    /// # Ok::<(), metrics_exporter_prometheus::BuildError>(())
    /// ```
    pub fn histogram_buckets(&self) -> [(&'static str, &'static [f64]); 7] {
        [
            (self.duration, self.duration_buckets),
            (self.attempt_duration, self.duration_buckets),
            (self.retry_wait, WAIT_BUCKETS),
            (self.quota_wait, WAIT_BUCKETS),
            (self.dns_ttl, TTL_BUCKETS),
            (self.stream_first_event, self.duration_buckets),
            (self.stream_duration, WAIT_BUCKETS),
        ]
    }

    /// Checks that every name is non-empty and the metric names distinct.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        let metrics = self.metrics();
        for (i, (name, ..)) in metrics.iter().enumerate() {
            if name.is_empty() {
                return Err("a metric name is empty");
            }
            if metrics[..i].iter().any(|(other, ..)| other == name) {
                return Err("two metrics share a name");
            }
        }
        let l = &self.labels;
        let keys = [
            Some(l.method),
            Some(l.status_code),
            l.error_type,
            l.server_address,
            l.server_port,
            Some(l.route),
            Some(l.attempt),
            Some(l.outcome),
            Some(l.resource),
            Some(l.reason),
            Some(l.wait_source),
            Some(l.limiter),
            Some(l.quota_key),
            Some(l.quota_store),
            Some(l.endpoint),
            Some(l.state),
            Some(l.from),
            Some(l.to),
            Some(l.dns_host),
            Some(l.dns_outcome),
            Some(l.dns_change),
            Some(l.stream_end),
        ];
        if keys.iter().flatten().any(|k| k.is_empty()) {
            return Err("a label key is empty");
        }
        if self.duration_buckets.is_empty()
            || self
                .duration_buckets
                .windows(2)
                .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
            || self.duration_buckets.iter().any(|b| !b.is_finite())
        {
            return Err("duration buckets must be finite and strictly increasing");
        }
        Ok(())
    }
}

impl Default for Naming {
    fn default() -> Self {
        Naming::OPEN_TELEMETRY
    }
}

/// Registers units and help texts for the default names
/// ([`Naming::OPEN_TELEMETRY`]) with the current recorder; see
/// [`Naming::describe`].
pub fn describe() {
    Naming::OPEN_TELEMETRY.describe();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        assert_eq!(Naming::OPEN_TELEMETRY.validate(), Ok(()));
        assert_eq!(Naming::SHORT.validate(), Ok(()));
    }

    #[test]
    fn validation_names_the_problem() {
        let mut n = Naming::OPEN_TELEMETRY;
        n.retries = n.requests;
        assert_eq!(n.validate(), Err("two metrics share a name"));
        let mut n = Naming::SHORT;
        n.labels.method = "";
        assert_eq!(n.validate(), Err("a label key is empty"));
        let mut n = Naming::SHORT;
        n.duration_buckets = &[1.0, 0.5];
        assert!(n.validate().is_err());
        n.duration_buckets = &[f64::NAN];
        assert!(n.validate().is_err());
        n.duration_buckets = &[];
        assert!(n.validate().is_err());
    }

    #[test]
    fn buckets_are_increasing() {
        for b in [OTEL_DURATION_BUCKETS, SHORT_LATENCY_BUCKETS, WAIT_BUCKETS] {
            assert!(b.windows(2).all(|w| w[0] < w[1]));
        }
        assert_eq!(OTEL_DURATION_BUCKETS.first(), Some(&0.005));
        assert_eq!(OTEL_DURATION_BUCKETS.last(), Some(&10.0));
    }
}
