//! What the layer records for successes, rate limits, errors, cancellations
//! and attempts, read back from a `DebuggingRecorder` installed per test.

mod common;

use std::borrow::Cow;
use std::convert::Infallible;
use std::io;
use std::time::Duration;

use common::{counter, find, gauge, histogram, named, run, take};
use evenkeel_core::BoxError;
use evenkeel_core::ext::Attempt;
use evenkeel_metrics::names::{self, OTEL_DURATION_BUCKETS};
use evenkeel_metrics::{MetricsLayer, Naming, Scope};
use http::{Method, Request, Response, StatusCode};
use metrics::Unit;
use metrics_util::MetricKind;
use metrics_util::debugging::DebuggingRecorder;
use tokio_test::{assert_pending, assert_ready_ok};
use tower::{Layer, Service, ServiceExt, service_fn};

const DURATION: &str = "http.client.request.duration";
const REQUESTS: &str = "evenkeel.http.client.requests";
const ACTIVE: &str = "http.client.active_requests";

fn get(uri: &str) -> Request<()> {
    Request::get(uri).body(()).unwrap()
}

/// Answers `status` with `headers` after `delay` (paused time).
fn answering(
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    delay: Duration,
) -> impl Service<Request<()>, Response = Response<()>, Error = Infallible, Future: Send> + Clone {
    service_fn(move |_req: Request<()>| async move {
        tokio::time::sleep(delay).await;
        let mut res = Response::builder().status(status);
        for (k, v) in headers {
            res = res.header(*k, *v);
        }
        Ok::<_, Infallible>(res.body(()).unwrap())
    })
}

#[test]
fn a_success_is_timed_and_counted_with_otel_names_and_units() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    run(&recorder, async {
        let mut svc = MetricsLayer::new().layer(answering(200, &[], Duration::from_millis(250)));
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(get("https://api.example.com/v1/messages"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    });
    let all = take(&snap);
    let labels = [
        ("http.request.method", "GET"),
        ("http.response.status_code", "200"),
        ("server.address", "api.example.com"),
    ];
    assert_eq!(histogram(&all, DURATION, &labels), [0.25]);
    assert_eq!(counter(&all, REQUESTS, &labels), 1);
    let active = [
        ("http.request.method", "GET"),
        ("server.address", "api.example.com"),
    ];
    assert_eq!(gauge(&all, ACTIVE, &active), 0.0);

    let duration = find(&all, DURATION, &labels);
    assert_eq!(duration.kind, MetricKind::Histogram);
    assert_eq!(duration.unit, Some(Unit::Seconds));
    assert_eq!(find(&all, REQUESTS, &labels).unit, Some(Unit::Count));
    // No rate-limit headers, no rate-limit gauges.
    assert!(named(&all, names::RATE_LIMIT_REMAINING).is_empty());
    // Success carries no error.type.
    assert!(
        all.iter()
            .all(|s| s.labels.iter().all(|(k, _)| k != "error.type"))
    );
}

#[test]
fn a_429_with_rate_limit_headers_sets_headroom_gauges() {
    const HEADERS: &[(&str, &str)] = &[
        ("retry-after", "2"),
        ("x-ratelimit-limit-requests", "60"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "2s"),
        ("x-ratelimit-limit-tokens", "150000"),
        ("x-ratelimit-remaining-tokens", "149000"),
        ("x-ratelimit-reset-tokens", "6m0s"),
    ];
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    run(&recorder, async {
        let svc = MetricsLayer::new().layer(answering(429, HEADERS, Duration::from_millis(40)));
        let res = svc
            .oneshot(get("https://api.openai.com/v1/chat/completions"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    });
    let all = take(&snap);
    let labels = [
        ("http.request.method", "GET"),
        ("http.response.status_code", "429"),
        ("server.address", "api.openai.com"),
        ("error.type", "rate_limited"),
    ];
    assert_eq!(counter(&all, REQUESTS, &labels), 1);
    assert_eq!(histogram(&all, DURATION, &labels), [0.04]);

    let requests = [
        ("evenkeel.resource", "requests"),
        ("server.address", "api.openai.com"),
    ];
    let tokens = [
        ("evenkeel.resource", "tokens"),
        ("server.address", "api.openai.com"),
    ];
    assert_eq!(gauge(&all, names::RATE_LIMIT_REMAINING, &requests), 0.0);
    assert_eq!(gauge(&all, names::RATE_LIMIT_LIMIT, &requests), 60.0);
    assert_eq!(gauge(&all, names::RATE_LIMIT_RESET, &requests), 2.0);
    assert_eq!(gauge(&all, names::RATE_LIMIT_REMAINING, &tokens), 149_000.0);
    assert_eq!(gauge(&all, names::RATE_LIMIT_LIMIT, &tokens), 150_000.0);
    assert_eq!(gauge(&all, names::RATE_LIMIT_RESET, &tokens), 360.0);
    assert_eq!(
        find(&all, names::RATE_LIMIT_RESET, &tokens).unit,
        Some(Unit::Seconds)
    );
}

#[test]
fn the_tightest_quota_per_resource_wins() {
    // Two IETF policies on requests: the daily one binds.
    const HEADERS: &[(&str, &str)] = &[
        (
            "ratelimit-policy",
            "\"minute\";q=100;w=60, \"day\";q=1000;w=86400",
        ),
        ("ratelimit", "\"minute\";r=40;t=30, \"day\";r=3;t=5000"),
    ];
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    run(&recorder, async {
        let svc = MetricsLayer::new().layer(answering(200, HEADERS, Duration::ZERO));
        svc.oneshot(get("http://api.example.com/")).await.unwrap();
    });
    let all = take(&snap);
    let requests = [
        ("evenkeel.resource", "requests"),
        ("server.address", "api.example.com"),
    ];
    assert_eq!(gauge(&all, names::RATE_LIMIT_REMAINING, &requests), 3.0);
    assert_eq!(gauge(&all, names::RATE_LIMIT_LIMIT, &requests), 1000.0);
    assert_eq!(gauge(&all, names::RATE_LIMIT_RESET, &requests), 5000.0);
}

#[test]
fn rate_limit_gauges_can_be_turned_off() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    run(&recorder, async {
        let layer = MetricsLayer::builder().rate_limits(false).build().unwrap();
        let svc = layer.layer(answering(
            200,
            &[("x-ratelimit-remaining-requests", "5")],
            Duration::ZERO,
        ));
        svc.oneshot(get("http://api.example.com/")).await.unwrap();
    });
    let all = take(&snap);
    assert!(named(&all, names::RATE_LIMIT_REMAINING).is_empty());
    assert_eq!(named(&all, REQUESTS).len(), 1);
}

#[test]
fn an_error_is_classified_and_passed_through() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let err = run(&recorder, async {
        let refused = service_fn(|_req: Request<()>| async {
            tokio::time::sleep(Duration::from_millis(3)).await;
            Err::<Response<()>, _>(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "connection refused",
            ))
        });
        MetricsLayer::new()
            .layer(refused)
            .oneshot(Request::post("http://10.0.0.1:8080/v1").body(()).unwrap())
            .await
            .unwrap_err()
    });
    // The inner error, boxed.
    let io = err.downcast_ref::<io::Error>().expect("an io::Error");
    assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);

    let all = take(&snap);
    let labels = [
        ("http.request.method", "POST"),
        ("server.address", "10.0.0.1"),
        ("error.type", "connection_refused"),
    ];
    assert_eq!(counter(&all, REQUESTS, &labels), 1);
    assert_eq!(histogram(&all, DURATION, &labels), [0.003]);
}

#[test]
fn a_dropped_call_is_recorded_as_cancelled_and_leaves_flight() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    run(&recorder, async {
        let (mock, mut handle) = tower_test::mock::pair::<Request<()>, Response<()>>();
        let mut svc = MetricsLayer::new().layer(mock);
        handle.allow(1);
        let mut task = tokio_test::task::spawn(());
        assert_ready_ok!(task.enter(|cx, _| svc.poll_ready(cx)));
        let mut future = tokio_test::task::spawn(svc.call(get("http://api.example.com/slow")));
        assert_pending!(future.poll());
        let in_flight = take(&snap);
        let active = [
            ("http.request.method", "GET"),
            ("server.address", "api.example.com"),
        ];
        assert_eq!(gauge(&in_flight, ACTIVE, &active), 1.0);

        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(future);
        let after = take(&snap);
        // The snapshot reset the gauge to 0; the drop took 1 off.
        assert_eq!(gauge(&after, ACTIVE, &active), -1.0);
        let labels = [
            ("http.request.method", "GET"),
            ("server.address", "api.example.com"),
            ("error.type", "cancelled"),
        ];
        assert_eq!(counter(&after, REQUESTS, &labels), 1);
        assert_eq!(histogram(&after, DURATION, &labels), [2.0]);
        // The inner service saw the request.
        assert!(handle.next_request().await.is_some());
    });
}

#[test]
fn in_flight_counts_calls_until_their_response_head() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    run(&recorder, async {
        let (mock, mut handle) = tower_test::mock::pair::<Request<()>, Response<()>>();
        let mut svc = MetricsLayer::builder()
            .server_address("api.anthropic.com")
            .build()
            .unwrap()
            .layer(mock);
        handle.allow(2);
        let mut task = tokio_test::task::spawn(());
        assert_ready_ok!(task.enter(|cx, _| svc.poll_ready(cx)));
        let mut a = tokio_test::task::spawn(svc.call(get("/v1/messages")));
        assert_ready_ok!(task.enter(|cx, _| svc.poll_ready(cx)));
        let mut b = tokio_test::task::spawn(svc.call(get("/v1/messages")));
        assert_pending!(a.poll());
        assert_pending!(b.poll());
        let active = [
            ("http.request.method", "GET"),
            ("server.address", "api.anthropic.com"),
        ];
        assert_eq!(gauge(&take(&snap), ACTIVE, &active), 2.0);

        let (_, respond) = handle.next_request().await.unwrap();
        respond.send_response(Response::new(()));
        assert_ready_ok!(a.poll());
        assert_eq!(gauge(&take(&snap), ACTIVE, &active), -1.0);
        let (_, respond) = handle.next_request().await.unwrap();
        respond.send_response(Response::builder().status(503).body(()).unwrap());
        assert_ready_ok!(b.poll());
        let all = take(&snap);
        assert_eq!(gauge(&all, ACTIVE, &active), -1.0);
        let overloaded = [
            ("http.request.method", "GET"),
            ("http.response.status_code", "503"),
            ("server.address", "api.anthropic.com"),
            ("error.type", "overloaded"),
        ];
        assert_eq!(counter(&all, REQUESTS, &overloaded), 1);
    });
}

#[test]
fn readiness_and_its_errors_come_from_the_inner_service() {
    run(&DebuggingRecorder::new(), async {
        let (mock, mut handle) = tower_test::mock::pair::<Request<()>, Response<()>>();
        let mut svc = MetricsLayer::new().layer(mock);
        let mut task = tokio_test::task::spawn(());
        handle.allow(0);
        assert_pending!(task.enter(|cx, _| svc.poll_ready(cx)));
        handle.send_error(io::Error::other("inner not ready"));
        let err: BoxError = match task.enter(|cx, _| svc.poll_ready(cx)) {
            std::task::Poll::Ready(Err(e)) => e,
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(err.to_string(), "inner not ready");
    });
}

#[test]
fn attempt_scope_uses_attempt_names_and_numbers() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    run(&recorder, async {
        let layer = MetricsLayer::builder()
            .scope(Scope::Attempt)
            .build()
            .unwrap();
        assert_eq!(layer.scope(), Scope::Attempt);
        let mut svc = layer.layer(answering(200, &[], Duration::from_millis(10)));
        for attempt in [None, Some(2), Some(3), Some(9)] {
            let mut req = get("http://api.example.com/");
            if let Some(n) = attempt {
                req.extensions_mut().insert(Attempt(n));
            }
            svc.ready().await.unwrap().call(req).await.unwrap();
        }
    });
    let all = take(&snap);
    let base = [
        ("http.request.method", "GET"),
        ("http.response.status_code", "200"),
        ("server.address", "api.example.com"),
    ];
    for (n, want) in [("1", 1), ("2", 1), ("3", 1), ("5+", 1)] {
        let mut labels = base.to_vec();
        labels.push(("evenkeel.attempt", n));
        assert_eq!(
            counter(&all, names::HTTP_CLIENT_ATTEMPTS, &labels),
            want,
            "attempt {n}"
        );
    }
    // The histogram has no attempt label: all four attempts in one series.
    assert_eq!(
        histogram(&all, names::HTTP_CLIENT_ATTEMPT_DURATION, &base),
        [0.01; 4]
    );
    let active = [
        ("http.request.method", "GET"),
        ("server.address", "api.example.com"),
    ];
    assert_eq!(
        gauge(&all, names::HTTP_CLIENT_ACTIVE_ATTEMPTS, &active),
        0.0
    );
    assert!(named(&all, REQUESTS).is_empty());
    assert!(named(&all, DURATION).is_empty());
    assert_eq!(
        find(&all, names::HTTP_CLIENT_ATTEMPT_DURATION, &base).unit,
        Some(Unit::Seconds)
    );
}

#[test]
fn methods_outside_the_standard_set_are_other() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    run(&recorder, async {
        let mut svc = MetricsLayer::new().layer(answering(200, &[], Duration::ZERO));
        for method in ["PROPFIND", "BREW", "PATCH"] {
            let req = Request::builder()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri("http://h.example/")
                .body(())
                .unwrap();
            svc.ready().await.unwrap().call(req).await.unwrap();
        }
    });
    let all = take(&snap);
    let labels = |m| {
        [
            ("http.request.method", m),
            ("http.response.status_code", "200"),
            ("server.address", "h.example"),
        ]
    };
    assert_eq!(counter(&all, REQUESTS, &labels("_OTHER")), 2);
    assert_eq!(counter(&all, REQUESTS, &labels("PATCH")), 1);
    assert_eq!(named(&all, REQUESTS).len(), 2);
}

#[test]
fn short_naming_reproduces_the_usual_prometheus_names() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    run(&recorder, async {
        let layer = MetricsLayer::builder()
            .naming(Naming::SHORT)
            .build()
            .unwrap();
        let ok = layer.layer(answering(
            200,
            &[
                ("anthropic-ratelimit-requests-remaining", "49"),
                ("anthropic-ratelimit-requests-limit", "50"),
            ],
            Duration::from_millis(100),
        ));
        ok.oneshot(get("https://api.anthropic.com/v1/messages"))
            .await
            .unwrap();
        let refused = service_fn(|_req: Request<()>| async {
            Err::<Response<()>, _>(io::Error::from(io::ErrorKind::ConnectionRefused))
        });
        layer
            .layer(refused)
            .oneshot(get("https://api.anthropic.com/v1/messages"))
            .await
            .unwrap_err();
    });
    let all = take(&snap);
    let ok = [("method", "GET"), ("status_code", "200")];
    assert_eq!(counter(&all, "api_requests_total", &ok), 1);
    assert_eq!(histogram(&all, "api_latency_seconds", &ok), [0.1]);
    let failed = [("method", "GET"), ("status_code", "connection_refused")];
    assert_eq!(counter(&all, "api_requests_total", &failed), 1);
    assert_eq!(
        gauge(&all, "api_requests_in_flight", &[("method", "GET")]),
        0.0
    );
    assert_eq!(
        gauge(&all, "rate_limit_remaining", &[("resource", "requests")]),
        49.0
    );
    assert_eq!(
        gauge(&all, "rate_limit_limit", &[("resource", "requests")]),
        50.0
    );
    assert_eq!(
        find(&all, "api_latency_seconds", &ok).unit,
        Some(Unit::Seconds)
    );
    assert_eq!(
        Naming::SHORT.histogram_buckets()[0],
        ("api_latency_seconds", &[0.1, 0.5, 1.0, 2.0, 5.0][..])
    );
    assert_eq!(
        Naming::OPEN_TELEMETRY.histogram_buckets()[0],
        (DURATION, OTEL_DURATION_BUCKETS)
    );
}

#[test]
fn routes_come_from_the_users_function_and_are_capped() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    run(&recorder, async {
        let layer = MetricsLayer::builder()
            .server_address("api.example.com")
            .route(|parts: &http::request::Parts| {
                let path = parts.uri.path();
                path.strip_prefix("/v1/models/")
                    .map(|_| Cow::Borrowed("/v1/models/{id}"))
                    .or_else(|| path.starts_with("/x/").then(|| Cow::Owned(path.to_owned())))
            })
            .max_routes(2)
            .build()
            .unwrap();
        let mut svc = layer.layer(answering(200, &[], Duration::ZERO));
        for path in [
            "/v1/models/a",
            "/v1/models/b",
            "/x/1",
            "/x/2",
            "/x/3",
            "/elsewhere",
        ] {
            svc.ready().await.unwrap().call(get(path)).await.unwrap();
        }
    });
    let all = take(&snap);
    let labels = |route| {
        [
            ("http.request.method", "GET"),
            ("http.response.status_code", "200"),
            ("server.address", "api.example.com"),
            ("url.template", route),
        ]
    };
    assert_eq!(counter(&all, REQUESTS, &labels("/v1/models/{id}")), 2);
    assert_eq!(counter(&all, REQUESTS, &labels("/x/1")), 1);
    // Past the cap, and where the function says nothing: `_OTHER`.
    assert_eq!(counter(&all, REQUESTS, &labels("_OTHER")), 3);
    assert_eq!(named(&all, REQUESTS).len(), 3);
}

#[test]
fn server_address_comes_from_the_request_and_is_capped() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    run(&recorder, async {
        let layer = MetricsLayer::builder().max_addresses(2).build().unwrap();
        let mut svc = layer.layer(answering(200, &[], Duration::ZERO));
        let mut with_host = get("/v1/messages");
        with_host
            .headers_mut()
            .insert("host", "b.example:8080".parse().unwrap());
        let requests = [
            get("http://a.example/"),
            with_host,
            get("http://c.example/"),
            get("http://d.example/"),
            get("/no/host"),
        ];
        for req in requests {
            svc.ready().await.unwrap().call(req).await.unwrap();
        }
    });
    let all = take(&snap);
    let labels = |addr| {
        [
            ("http.request.method", "GET"),
            ("http.response.status_code", "200"),
            ("server.address", addr),
        ]
    };
    assert_eq!(counter(&all, REQUESTS, &labels("a.example")), 1);
    assert_eq!(counter(&all, REQUESTS, &labels("b.example")), 1);
    assert_eq!(counter(&all, REQUESTS, &labels("_OTHER")), 2);
    let no_host = [
        ("http.request.method", "GET"),
        ("http.response.status_code", "200"),
    ];
    assert_eq!(counter(&all, REQUESTS, &no_host), 1);
}

#[test]
fn builder_errors_name_the_field() {
    let err = MetricsLayer::builder()
        .server_address("")
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "server_address");
    let err = MetricsLayer::builder()
        .max_addresses(0)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "max_addresses");
    let err = MetricsLayer::builder().max_routes(0).build().unwrap_err();
    assert_eq!(err.field(), "max_routes");
    let mut naming = Naming::OPEN_TELEMETRY;
    naming.attempts = naming.requests;
    let err = MetricsLayer::builder().naming(naming).build().unwrap_err();
    assert_eq!(err.field(), "naming");
    assert!(err.to_string().contains("share a name"), "{err}");
}

/// Records what `describe` registers.
#[derive(Default)]
struct Descriptions(std::sync::Mutex<Vec<(String, &'static str, Option<Unit>)>>);

impl metrics::Recorder for Descriptions {
    fn describe_counter(&self, k: metrics::KeyName, u: Option<Unit>, _: metrics::SharedString) {
        self.0
            .lock()
            .unwrap()
            .push((k.as_str().to_owned(), "counter", u));
    }
    fn describe_gauge(&self, k: metrics::KeyName, u: Option<Unit>, _: metrics::SharedString) {
        self.0
            .lock()
            .unwrap()
            .push((k.as_str().to_owned(), "gauge", u));
    }
    fn describe_histogram(&self, k: metrics::KeyName, u: Option<Unit>, _: metrics::SharedString) {
        self.0
            .lock()
            .unwrap()
            .push((k.as_str().to_owned(), "histogram", u));
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::noop()
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

#[test]
fn describe_gives_every_name_a_kind_and_a_unit() {
    let recorder = Descriptions::default();
    metrics::with_local_recorder(&recorder, evenkeel_metrics::describe);
    let described = recorder.0.into_inner().unwrap();
    assert_eq!(described.len(), 28);
    let seconds: Vec<&str> = described
        .iter()
        .filter(|(_, _, u)| *u == Some(Unit::Seconds))
        .map(|(n, _, _)| n.as_str())
        .collect();
    assert_eq!(
        seconds,
        [
            DURATION,
            names::HTTP_CLIENT_ATTEMPT_DURATION,
            names::RATE_LIMIT_RESET,
            names::RETRY_WAIT,
            names::QUOTA_WAIT,
            names::DNS_TTL,
            names::STREAM_FIRST_EVENT,
            names::STREAM_DURATION,
        ]
    );
    assert_eq!(kind_of(&described, names::STREAMS), "counter");
    assert!(described.iter().all(|(_, _, u)| u.is_some()));
    let kind = |name: &str| kind_of(&described, name);
    assert_eq!(kind(DURATION), "histogram");
    assert_eq!(kind(REQUESTS), "counter");
    assert_eq!(kind(ACTIVE), "gauge");
    assert_eq!(kind(names::RATE_LIMIT_REMAINING), "gauge");
    assert_eq!(kind(names::FAILOVERS), "counter");
    assert_eq!(kind(names::DNS_ADDRESSES), "gauge");
    assert_eq!(kind(names::DNS_TTL), "histogram");
    assert_eq!(kind(names::QUOTA_STORE_ERRORS), "counter");
    assert_eq!(kind(names::QUOTA_STORE_FALLBACK), "gauge");
}

fn kind_of(described: &[(String, &'static str, Option<Unit>)], name: &str) -> &'static str {
    described.iter().find(|(n, _, _)| n == name).unwrap().1
}

#[test]
fn the_first_handle_describes_the_names_to_its_recorder() {
    let recorder = Descriptions::default();
    run_with(&recorder, async {
        let svc = MetricsLayer::new().layer(answering(200, &[], Duration::ZERO));
        svc.oneshot(get("http://a.example/")).await.unwrap();
    });
    assert_eq!(recorder.0.into_inner().unwrap().len(), 28);
}

fn run_with<F: std::future::Future>(recorder: &dyn metrics::Recorder, future: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    metrics::with_local_recorder(recorder, || rt.block_on(future))
}

#[test]
fn a_clone_starts_unready_and_the_readied_service_takes_the_call() {
    run(&DebuggingRecorder::new(), async {
        let (mock, mut handle) = tower_test::mock::pair::<Request<()>, Response<()>>();
        let mut svc = MetricsLayer::new().layer(mock);
        let mut task = tokio_test::task::spawn(());
        handle.allow(1);
        assert_ready_ok!(task.enter(|cx, _| svc.poll_ready(cx)));
        let mut clone = svc.clone();
        // The mock panics on a call to a service that was not readied.
        let mut call = tokio_test::task::spawn(svc.call(get("http://a.example/")));
        assert_pending!(call.poll());
        assert_pending!(task.enter(|cx, _| clone.poll_ready(cx)));
        let (_, respond) = handle.next_request().await.unwrap();
        respond.send_response(Response::new(()));
        assert_ready_ok!(call.poll());
    });
}

#[test]
fn layer_service_future_and_listener_are_send_sync_clone() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send<T: Send>(_: &T) {}
    send_sync_clone::<MetricsLayer>();
    send_sync_clone::<evenkeel_metrics::MetricsListener>();
    send_sync_clone::<
        evenkeel_metrics::Metrics<
            tower::util::BoxCloneSyncService<Request<()>, Response<()>, BoxError>,
        >,
    >();
    let svc = MetricsLayer::new().layer(answering(200, &[], Duration::ZERO));
    let future = svc.oneshot(get("http://a.example/"));
    send(&future);
}

/// Treats 404 from a flaky gateway as a server error.
#[derive(Debug, Clone, Default)]
struct FlakyGateway;

impl<B> evenkeel_core::Classify<Response<B>> for FlakyGateway {
    fn classify_response(&self, res: &Response<B>) -> evenkeel_core::Outcome {
        if res.status() == StatusCode::NOT_FOUND {
            return evenkeel_core::Outcome::ServerError(evenkeel_core::Signal::NONE);
        }
        evenkeel_core::HttpClassifier::new().classify_response(res)
    }
}

#[test]
fn a_custom_classifier_names_the_outcome() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    run(&recorder, async {
        let layer = MetricsLayer::builder()
            .classifier(FlakyGateway)
            .build()
            .unwrap();
        let svc = layer.layer(answering(404, &[], Duration::ZERO));
        svc.oneshot(get("http://gw.example/")).await.unwrap();
    });
    let all = take(&snap);
    let labels = [
        ("http.request.method", "GET"),
        ("http.response.status_code", "404"),
        ("server.address", "gw.example"),
        ("error.type", "server_error"),
    ];
    assert_eq!(counter(&all, REQUESTS, &labels), 1);
}
