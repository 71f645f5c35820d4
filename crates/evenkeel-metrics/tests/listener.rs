//! What the listener records for each event, read back from a
//! `DebuggingRecorder` installed per test.

mod common;

use std::time::Duration;

use common::{counter, find, gauge, histogram, named, take};
use evenkeel_core::error::StreamErrorKind;
use evenkeel_core::event::{EndpointState, Event, Events, GiveUp, StoreFailure, StreamEnd};
use evenkeel_core::{Failure, FailureKind, Outcome, Signal};
use evenkeel_headers::Resource;
use evenkeel_metrics::names;
use evenkeel_metrics::{MetricsLayer, MetricsListener, Naming};
use metrics::Unit;
use metrics_util::debugging::DebuggingRecorder;

fn record(events: impl FnOnce(&Events)) -> Vec<common::Series> {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        events(&MetricsListener::new().events());
    });
    take(&snap)
}

#[test]
fn retries_are_counted_by_outcome_and_wait_source() {
    let limited = Outcome::RateLimited(Signal::wait(Duration::from_secs(2)));
    let reset = Outcome::Failed(Failure::new(FailureKind::ConnectionReset));
    let all = record(|events| {
        for (outcome, wait, server_directed) in [
            (&limited, Duration::from_secs(2), true),
            (&limited, Duration::from_millis(2500), true),
            (&reset, Duration::from_millis(500), false),
        ] {
            events.emit(|| Event::Retry {
                attempt: 2,
                outcome,
                wait,
                server_directed,
            });
        }
    });
    let server = [
        ("error.type", "rate_limited"),
        ("evenkeel.wait.source", "server"),
    ];
    let backoff = [
        ("error.type", "connection_reset"),
        ("evenkeel.wait.source", "backoff"),
    ];
    assert_eq!(counter(&all, names::RETRIES, &server), 2);
    assert_eq!(counter(&all, names::RETRIES, &backoff), 1);
    assert_eq!(
        histogram(
            &all,
            names::RETRY_WAIT,
            &[("evenkeel.wait.source", "server")]
        ),
        [2.0, 2.5]
    );
    assert_eq!(
        histogram(
            &all,
            names::RETRY_WAIT,
            &[("evenkeel.wait.source", "backoff")]
        ),
        [0.5]
    );
    assert_eq!(
        find(
            &all,
            names::RETRY_WAIT,
            &[("evenkeel.wait.source", "server")]
        )
        .unit,
        Some(Unit::Seconds)
    );
}

#[test]
fn give_ups_are_counted_by_reason() {
    let overloaded = Outcome::Overloaded(Signal::NONE);
    let all = record(|events| {
        for reason in [GiveUp::Budget, GiveUp::Budget, GiveUp::Attempts] {
            events.emit(|| Event::GaveUp {
                reason,
                outcome: &overloaded,
                attempts: 3,
            });
        }
    });
    let labels = |r| [("evenkeel.reason", r), ("error.type", "overloaded")];
    assert_eq!(counter(&all, names::RETRY_GIVE_UPS, &labels("budget")), 2);
    assert_eq!(counter(&all, names::RETRY_GIVE_UPS, &labels("attempts")), 1);
}

#[test]
fn limiter_limit_and_rejections() {
    let all = record(|events| {
        events.emit(|| Event::LimitChanged {
            name: "api",
            limit: 20,
        });
        events.emit(|| Event::LimitChanged {
            name: "api",
            limit: 14,
        });
        events.emit(|| Event::LimitChanged {
            name: "batch",
            limit: 4,
        });
        events.emit(|| Event::LimitRejected { name: "api" });
        events.emit(|| Event::LimitRejected { name: "api" });
    });
    assert_eq!(
        gauge(&all, names::LIMITER_LIMIT, &[("evenkeel.limiter", "api")]),
        14.0
    );
    assert_eq!(
        gauge(&all, names::LIMITER_LIMIT, &[("evenkeel.limiter", "batch")]),
        4.0
    );
    assert_eq!(
        counter(
            &all,
            names::LIMITER_REJECTIONS,
            &[("evenkeel.limiter", "api")]
        ),
        2
    );
}

#[test]
fn quota_waits_and_rejections_by_key_and_resource() {
    let tokens = Resource::Tokens;
    let odd = Resource::Other("gpu-seconds".to_owned());
    let all = record(|events| {
        events.emit(|| Event::QuotaWait {
            key: "org-1",
            resource: &tokens,
            wait: Duration::from_millis(1200),
        });
        events.emit(|| Event::QuotaRejected {
            key: "org-1",
            resource: &tokens,
            wait: Some(Duration::from_secs(90)),
        });
        events.emit(|| Event::QuotaRejected {
            key: "org-1",
            resource: &odd,
            wait: None,
        });
    });
    let tok = [
        ("evenkeel.quota.key", "org-1"),
        ("evenkeel.resource", "tokens"),
    ];
    assert_eq!(histogram(&all, names::QUOTA_WAIT, &tok), [1.2]);
    assert_eq!(counter(&all, names::QUOTA_REJECTIONS, &tok), 1);
    // A unit the server named itself does not become a label value.
    let other = [
        ("evenkeel.quota.key", "org-1"),
        ("evenkeel.resource", "other"),
    ];
    assert_eq!(counter(&all, names::QUOTA_REJECTIONS, &other), 1);
}

#[test]
fn quota_store_errors_are_counted_and_the_fallback_is_a_gauge() {
    let during = record(|events| {
        events.emit(|| Event::QuotaStoreFailed {
            store: "redis",
            reason: StoreFailure::Timeout,
        });
        events.emit(|| Event::QuotaStoreFailed {
            store: "redis",
            reason: StoreFailure::Timeout,
        });
        events.emit(|| Event::QuotaStoreFailed {
            store: "redis",
            reason: StoreFailure::Connection,
        });
    });
    let store = [("evenkeel.quota.store", "redis")];
    let timeout = [
        ("evenkeel.quota.store", "redis"),
        ("evenkeel.reason", "timeout"),
    ];
    let connection = [
        ("evenkeel.quota.store", "redis"),
        ("evenkeel.reason", "connection"),
    ];
    assert_eq!(counter(&during, names::QUOTA_STORE_ERRORS, &timeout), 2);
    assert_eq!(counter(&during, names::QUOTA_STORE_ERRORS, &connection), 1);
    assert_eq!(gauge(&during, names::QUOTA_STORE_FALLBACK, &store), 1.0);

    let after = record(|events| {
        events.emit(|| Event::QuotaStoreFailed {
            store: "redis",
            reason: StoreFailure::Response,
        });
        events.emit(|| Event::QuotaStoreRecovered {
            store: "redis",
            down: Duration::from_secs(3),
        });
    });
    assert_eq!(gauge(&after, names::QUOTA_STORE_FALLBACK, &store), 0.0);
}

#[test]
fn endpoint_state_is_a_state_set_and_failovers_are_counted() {
    let overloaded = Outcome::Overloaded(Signal::NONE);
    let all = record(|events| {
        events.emit(|| Event::EndpointState {
            endpoint: "primary",
            state: EndpointState::Healthy,
        });
        events.emit(|| Event::Failover {
            from: "primary",
            to: "backup",
            outcome: &overloaded,
        });
        events.emit(|| Event::EndpointState {
            endpoint: "primary",
            state: EndpointState::Ejected,
        });
        events.emit(|| Event::Failover {
            from: "primary",
            to: "backup",
            outcome: &overloaded,
        });
        events.emit(|| Event::Failback { to: "primary" });
    });
    let state = |s| [("evenkeel.endpoint", "primary"), ("evenkeel.state", s)];
    assert_eq!(gauge(&all, names::ENDPOINT_STATE, &state("ejected")), 1.0);
    for other in ["healthy", "cooling_down", "draining", "removed"] {
        assert_eq!(
            gauge(&all, names::ENDPOINT_STATE, &state(other)),
            0.0,
            "{other}"
        );
    }
    assert_eq!(named(&all, names::ENDPOINT_STATE).len(), 5);
    let moved = [
        ("evenkeel.failover.from", "primary"),
        ("evenkeel.failover.to", "backup"),
        ("error.type", "overloaded"),
    ];
    assert_eq!(counter(&all, names::FAILOVERS, &moved), 2);
    assert_eq!(
        counter(
            &all,
            names::FAILBACKS,
            &[("evenkeel.failover.to", "primary")]
        ),
        1
    );
}

#[test]
fn streams_are_timed_and_counted_by_how_they_ended() {
    let all = record(|events| {
        for (first, total, end) in [
            (0.5, 4.0, StreamEnd::Complete),
            (0.25, 2.0, StreamEnd::Complete),
            (0.75, 1.0, StreamEnd::Error(StreamErrorKind::Overloaded)),
            (1.0, 1.5, StreamEnd::Dropped),
        ] {
            events.emit(|| Event::StreamEnded {
                first_event: Duration::from_secs_f64(first),
                duration: Duration::from_secs_f64(total),
                end,
            });
        }
    });
    assert_eq!(
        histogram(&all, names::STREAM_FIRST_EVENT, &[]),
        [0.5, 0.25, 0.75, 1.0]
    );
    let complete = [("evenkeel.stream.end", "complete")];
    assert_eq!(
        histogram(&all, names::STREAM_DURATION, &complete),
        [4.0, 2.0]
    );
    assert_eq!(counter(&all, names::STREAMS, &complete), 2);
    let failed = [
        ("evenkeel.stream.end", "error"),
        ("error.type", "overloaded"),
    ];
    assert_eq!(counter(&all, names::STREAMS, &failed), 1);
    assert_eq!(
        counter(&all, names::STREAMS, &[("evenkeel.stream.end", "dropped")]),
        1
    );
}

#[test]
fn names_past_the_cap_are_other() {
    let names: Vec<String> = (0..evenkeel_metrics::DEFAULT_MAX_NAMES + 3)
        .map(|i| format!("limiter-{i}"))
        .collect();
    let all = record(|events| {
        for name in &names {
            events.emit(|| Event::LimitRejected { name });
        }
    });
    assert_eq!(
        named(&all, names::LIMITER_REJECTIONS).len(),
        evenkeel_metrics::DEFAULT_MAX_NAMES + 1
    );
    assert_eq!(
        counter(
            &all,
            names::LIMITER_REJECTIONS,
            &[("evenkeel.limiter", "_OTHER")]
        ),
        3
    );
}

#[test]
fn short_naming_applies_to_events_too() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let layer = MetricsLayer::builder()
        .naming(Naming::SHORT)
        .build()
        .unwrap();
    let listener = layer.listener();
    assert_eq!(listener.naming(), &Naming::SHORT);
    let limited = Outcome::RateLimited(Signal::NONE);
    metrics::with_local_recorder(&recorder, || {
        let events = listener.events();
        events.emit(|| Event::Retry {
            attempt: 2,
            outcome: &limited,
            wait: Duration::from_secs(1),
            server_directed: true,
        });
        events.emit(|| Event::LimitChanged {
            name: "api",
            limit: 8,
        });
    });
    let all = take(&snap);
    let labels = [("outcome", "rate_limited"), ("wait_source", "server")];
    assert_eq!(counter(&all, "api_retries_total", &labels), 1);
    assert_eq!(gauge(&all, "concurrency_limit", &[("limiter", "api")]), 8.0);
}

#[test]
fn describe_registers_a_unit_for_every_name() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let overloaded = Outcome::Overloaded(Signal::NONE);
    let tokens = Resource::Tokens;
    metrics::with_local_recorder(&recorder, || {
        let events = MetricsListener::new().events();
        events.emit(|| Event::Retry {
            attempt: 2,
            outcome: &overloaded,
            wait: Duration::from_secs(1),
            server_directed: false,
        });
        events.emit(|| Event::GaveUp {
            reason: GiveUp::Budget,
            outcome: &overloaded,
            attempts: 2,
        });
        events.emit(|| Event::LimitChanged {
            name: "a",
            limit: 1,
        });
        events.emit(|| Event::LimitRejected { name: "a" });
        events.emit(|| Event::QuotaWait {
            key: "k",
            resource: &tokens,
            wait: Duration::ZERO,
        });
        events.emit(|| Event::QuotaRejected {
            key: "k",
            resource: &tokens,
            wait: None,
        });
        events.emit(|| Event::EndpointState {
            endpoint: "a",
            state: EndpointState::Draining,
        });
        events.emit(|| Event::Failover {
            from: "a",
            to: "b",
            outcome: &overloaded,
        });
        events.emit(|| Event::Failback { to: "a" });
        events.emit(|| Event::QuotaStoreFailed {
            store: "redis",
            reason: StoreFailure::Timeout,
        });
    });
    let all = take(&snap);
    for (name, unit) in [
        (names::RETRIES, Unit::Count),
        (names::RETRY_WAIT, Unit::Seconds),
        (names::RETRY_GIVE_UPS, Unit::Count),
        (names::LIMITER_LIMIT, Unit::Count),
        (names::LIMITER_REJECTIONS, Unit::Count),
        (names::QUOTA_WAIT, Unit::Seconds),
        (names::QUOTA_REJECTIONS, Unit::Count),
        (names::QUOTA_STORE_ERRORS, Unit::Count),
        (names::QUOTA_STORE_FALLBACK, Unit::Count),
        (names::ENDPOINT_STATE, Unit::Count),
        (names::FAILOVERS, Unit::Count),
        (names::FAILBACKS, Unit::Count),
    ] {
        let series = named(&all, name);
        assert!(!series.is_empty(), "{name} not recorded");
        assert!(
            series.iter().all(|s| s.unit == Some(unit)),
            "{name}: {series:?}"
        );
    }
}

#[test]
fn dns_resolutions_addresses_ttl_and_changes() {
    let address = "10.0.0.1:443".parse().unwrap();
    let all = record(|events| {
        events.emit(|| Event::DnsResolved {
            host: "api.example.com",
            addresses: 3,
            ttl: Some(Duration::from_secs(30)),
        });
        events.emit(|| Event::AddressChanged {
            host: "api.example.com",
            address,
            added: true,
        });
        events.emit(|| Event::DnsFailed {
            host: "api.example.com",
            reason: "servfail",
        });
        events.emit(|| Event::DnsResolved {
            host: "api.example.com",
            addresses: 2,
            ttl: None,
        });
        events.emit(|| Event::AddressChanged {
            host: "api.example.com",
            address,
            added: false,
        });
    });
    let host = ("evenkeel.dns.host", "api.example.com");
    let by = |outcome| [host, ("evenkeel.dns.outcome", outcome)];
    assert_eq!(counter(&all, names::DNS_RESOLUTIONS, &by("ok")), 2);
    assert_eq!(counter(&all, names::DNS_RESOLUTIONS, &by("servfail")), 1);
    assert_eq!(gauge(&all, names::DNS_ADDRESSES, &[host]), 2.0);
    assert_eq!(histogram(&all, names::DNS_TTL, &[host]), [30.0]);
    for change in ["added", "removed"] {
        let labels = [host, ("evenkeel.dns.change", change)];
        assert_eq!(
            counter(&all, names::DNS_ADDRESS_CHANGES, &labels),
            1,
            "{change}"
        );
    }
}
