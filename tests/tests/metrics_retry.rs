//! Calls versus attempts: the metrics layer outside and inside
//! evenkeel-retry, with the retry layer's events going to the metrics
//! listener, against the in-process sim under paused time. Read back from
//! a `DebuggingRecorder` installed per test.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::rng::Jitter;
use evenkeel_metrics::{MetricsLayer, MetricsListener, Scope, names};
use evenkeel_retry::RetryLayer;
use evenkeel_retry::body::ResponseBody;
use evenkeel_sim::{Dialect, Faults, Sim};
use http::{Request, StatusCode};
use http_body_util::Full;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::{Service, ServiceBuilder, ServiceExt};

const HOST: &str = "sim.test";

/// One recorded series: name, sorted labels, value.
type Series = (String, Vec<(String, String)>, DebugValue);

fn take(snapshotter: &Snapshotter) -> Vec<Series> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            (key.name().to_owned(), labels, value)
        })
        .collect()
}

fn value<'a>(all: &'a [Series], name: &str, labels: &[(&str, &str)]) -> &'a DebugValue {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    all.iter()
        .find(|(n, l, _)| n == name && *l == want)
        .map(|(_, _, v)| v)
        .unwrap_or_else(|| panic!("no series {name}{labels:?} in {all:#?}"))
}

fn counter(all: &[Series], name: &str, labels: &[(&str, &str)]) -> u64 {
    match value(all, name, labels) {
        DebugValue::Counter(v) => *v,
        other => panic!("{name}: {other:?}"),
    }
}

fn gauge(all: &[Series], name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(all, name, labels) {
        DebugValue::Gauge(v) => v.into_inner(),
        other => panic!("{name}: {other:?}"),
    }
}

fn histogram(all: &[Series], name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    match value(all, name, labels) {
        DebugValue::Histogram(v) => v.iter().map(|x| x.into_inner()).collect(),
        other => panic!("{name}: {other:?}"),
    }
}

fn total(all: &[Series], name: &str) -> u64 {
    all.iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, _, v)| match v {
            DebugValue::Counter(c) => *c,
            other => panic!("{name}: {other:?}"),
        })
        .sum()
}

fn run<F: Future>(recorder: &DebuggingRecorder, future: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    metrics::with_local_recorder(recorder, || rt.block_on(future))
}

/// calls → retry (events to the listener) → attempts → sim.
fn stack(
    sim: Sim,
    max_attempts: u32,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = http::Response<ResponseBody<Full<Bytes>>>,
    Error = evenkeel_core::BoxError,
> + Clone {
    let listener = MetricsListener::new();
    let retry = RetryLayer::builder()
        .max_attempts(max_attempts)
        .jitter(Jitter::seeded(7))
        .events(listener.events())
        .build()
        .unwrap();
    ServiceBuilder::new()
        .layer(MetricsLayer::new())
        .layer(retry)
        .layer(
            MetricsLayer::builder()
                .scope(Scope::Attempt)
                .build()
                .unwrap(),
        )
        .service(sim)
}

fn request(method: http::Method, id: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(format!("http://{HOST}/v1/messages"))
        .header("x-request-id", id)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

#[test]
fn a_retried_429_is_one_call_and_two_attempts() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let sim = Sim::builder()
        .requests(1.0, 1)
        .dialect(Dialect::Anthropic)
        .seed(1)
        .build()
        .unwrap();
    let handle = sim.handle();
    run(&recorder, async {
        let mut client = stack(sim, 3);
        for id in ["a", "b"] {
            let res = client
                .ready()
                .await
                .unwrap()
                .call(request(http::Method::POST, id))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        }
    });
    assert_eq!(handle.stats().attempts_for("b"), 2);

    let all = take(&snap);
    let post = ("http.request.method", "POST");
    let host = ("server.address", HOST);
    let ok = ("http.response.status_code", "200");

    // Calls: two, both successes; the second waited out the 429.
    assert_eq!(
        counter(&all, names::HTTP_CLIENT_REQUESTS, &[post, host, ok]),
        2
    );
    assert_eq!(total(&all, names::HTTP_CLIENT_REQUESTS), 2);
    let calls = histogram(&all, names::HTTP_CLIENT_REQUEST_DURATION, &[post, host, ok]);
    assert_eq!(calls.len(), 2);
    assert!((calls[0] - 0.05).abs() < 1e-9, "{calls:?}");
    assert!(
        calls[1] >= 1.05,
        "the second call includes the 1 s wait: {calls:?}"
    );

    // Attempts: three, one of them the 429, one of them a second attempt.
    let limited = [
        post,
        host,
        ("http.response.status_code", "429"),
        ("error.type", "rate_limited"),
        ("evenkeel.attempt", "1"),
    ];
    assert_eq!(counter(&all, names::HTTP_CLIENT_ATTEMPTS, &limited), 1);
    let first_ok = [post, host, ok, ("evenkeel.attempt", "1")];
    assert_eq!(counter(&all, names::HTTP_CLIENT_ATTEMPTS, &first_ok), 1);
    let second_ok = [post, host, ok, ("evenkeel.attempt", "2")];
    assert_eq!(counter(&all, names::HTTP_CLIENT_ATTEMPTS, &second_ok), 1);
    assert_eq!(total(&all, names::HTTP_CLIENT_ATTEMPTS), 3);

    // The retry, as the retry layer reported it.
    let server = [
        ("error.type", "rate_limited"),
        ("evenkeel.wait.source", "server"),
    ];
    assert_eq!(counter(&all, names::RETRIES, &server), 1);
    let waits = histogram(
        &all,
        names::RETRY_WAIT,
        &[("evenkeel.wait.source", "server")],
    );
    assert_eq!(waits.len(), 1);
    assert!(waits[0] >= 1.0, "never before the server's wait: {waits:?}");

    // Headroom from the sim's Anthropic headers: one request per second.
    let requests = [("evenkeel.resource", "requests"), host];
    assert_eq!(gauge(&all, names::RATE_LIMIT_LIMIT, &requests), 1.0);
    assert_eq!(gauge(&all, names::RATE_LIMIT_REMAINING, &requests), 0.0);

    // Nothing left in flight.
    let active = [post, host];
    assert_eq!(
        gauge(&all, names::HTTP_CLIENT_ACTIVE_REQUESTS, &active),
        0.0
    );
    assert_eq!(
        gauge(&all, names::HTTP_CLIENT_ACTIVE_ATTEMPTS, &active),
        0.0
    );
}

#[test]
fn giving_up_after_overloads_is_counted_by_reason() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let sim = Sim::builder()
        .faults(Faults::none().overloaded(1.0))
        .latency(Duration::from_millis(20))
        .seed(2)
        .build()
        .unwrap();
    run(&recorder, async {
        let res = stack(sim, 2)
            .oneshot(request(http::Method::POST, "x"))
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 529);
    });
    let all = take(&snap);
    let post = ("http.request.method", "POST");
    let host = ("server.address", HOST);
    let overloaded = [
        post,
        host,
        ("http.response.status_code", "529"),
        ("error.type", "overloaded"),
    ];
    assert_eq!(counter(&all, names::HTTP_CLIENT_REQUESTS, &overloaded), 1);
    for attempt in ["1", "2"] {
        let mut labels = overloaded.to_vec();
        labels.push(("evenkeel.attempt", attempt));
        assert_eq!(counter(&all, names::HTTP_CLIENT_ATTEMPTS, &labels), 1);
    }
    assert_eq!(
        histogram(&all, names::HTTP_CLIENT_ATTEMPT_DURATION, &overloaded),
        [0.02, 0.02]
    );
    let gave_up = [
        ("evenkeel.reason", "attempts"),
        ("error.type", "overloaded"),
    ];
    assert_eq!(counter(&all, names::RETRY_GIVE_UPS, &gave_up), 1);
    let backoff = [
        ("error.type", "overloaded"),
        ("evenkeel.wait.source", "backoff"),
    ];
    assert_eq!(counter(&all, names::RETRIES, &backoff), 1);
}

#[test]
fn transport_errors_are_classified_on_every_attempt() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let sim = Sim::builder()
        .faults(Faults::none().reset(1.0))
        .latency(Duration::from_millis(5))
        .seed(3)
        .build()
        .unwrap();
    run(&recorder, async {
        let err = stack(sim, 3)
            .oneshot(request(http::Method::GET, "y"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("reset"), "{err}");
    });
    let all = take(&snap);
    let get = ("http.request.method", "GET");
    let host = ("server.address", HOST);
    let reset = [get, host, ("error.type", "connection_reset")];
    assert_eq!(counter(&all, names::HTTP_CLIENT_REQUESTS, &reset), 1);
    for attempt in ["1", "2", "3"] {
        let mut labels = reset.to_vec();
        labels.push(("evenkeel.attempt", attempt));
        assert_eq!(counter(&all, names::HTTP_CLIENT_ATTEMPTS, &labels), 1);
    }
    let backoff = [
        ("error.type", "connection_reset"),
        ("evenkeel.wait.source", "backoff"),
    ];
    assert_eq!(counter(&all, names::RETRIES, &backoff), 2);
    let gave_up = [
        ("evenkeel.reason", "attempts"),
        ("error.type", "connection_reset"),
    ];
    assert_eq!(counter(&all, names::RETRY_GIVE_UPS, &gave_up), 1);
}
