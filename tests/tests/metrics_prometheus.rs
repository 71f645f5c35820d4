//! The `prometheus` example of evenkeel-metrics, run for real: its
//! `/metrics` endpoint is scraped over loopback while its client calls the
//! sim over loopback, and the series the layer records are found in the
//! Prometheus text format under their exported names.

#[path = "../../crates/evenkeel-metrics/examples/prometheus.rs"]
#[allow(dead_code, unreachable_pub)] // the example's `main`
mod example;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use evenkeel_metrics::names::OTEL_DURATION_BUCKETS;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

/// One sample line: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the sample lines of the text format (label values here contain no
/// escaped quotes or commas).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("k=v");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

fn has(sample: &Sample, labels: &[(&str, &str)]) -> bool {
    labels
        .iter()
        .all(|(k, v)| sample.labels.get(*k).map(String::as_str) == Some(*v))
}

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let uri = format!("http://{addr}{path}").parse().unwrap();
    let response = client.get(uri).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[test]
fn the_example_serves_the_layer_series_over_loopback() {
    const REQUESTS: usize = 40;
    let recorder = example::recorder();
    let handle = recorder.handle();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ok, text) = metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(example::serve_metrics(listener, handle));
            let sim = example::start_sim().await.unwrap();
            let ok = example::drive(&sim.url(), REQUESTS).await.unwrap();
            let (status, text) = get(addr, "/metrics").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(get(addr, "/elsewhere").await.0, StatusCode::NOT_FOUND);
            server.abort();
            sim.shutdown().await;
            (ok, text)
        })
    });
    assert!(ok > 0, "some requests succeed");
    let all = samples(&text);
    let post = ("http_request_method", "POST");
    let host = ("server_address", "127.0.0.1");

    // Every call is counted once, and the successes match what the client saw.
    let calls: Vec<&Sample> = all
        .iter()
        .filter(|s| s.name == "evenkeel_http_client_requests_total")
        .collect();
    assert!(calls.iter().all(|s| has(s, &[post, host])), "{calls:#?}");
    assert_eq!(calls.iter().map(|s| s.value).sum::<f64>(), REQUESTS as f64);
    let ok_calls = calls
        .iter()
        .find(|s| has(s, &[("http_response_status_code", "200")]))
        .expect("a 200 series");
    assert_eq!(ok_calls.value, ok as f64);
    assert!(!ok_calls.labels.contains_key("error_type"));
    for s in &calls {
        if s.labels["http_response_status_code"] != "200" {
            assert!(s.labels.contains_key("error_type"), "{s:?}");
        }
    }

    // The duration histogram: OpenTelemetry's buckets, one count per call.
    assert!(text.contains("# TYPE http_client_request_duration_seconds histogram"));
    assert!(text.contains(
        "# HELP http_client_request_duration_seconds Duration of HTTP client calls, to the response head."
    ));
    let ok_labels = [post, host, ("http_response_status_code", "200")];
    let bounds: Vec<String> = all
        .iter()
        .filter(|s| s.name == "http_client_request_duration_seconds_bucket" && has(s, &ok_labels))
        .filter(|s| s.labels.len() == 4)
        .map(|s| s.labels["le"].clone())
        .collect();
    let mut want: Vec<String> = OTEL_DURATION_BUCKETS
        .iter()
        .map(|b| b.to_string())
        .collect();
    want.push("+Inf".to_owned());
    assert_eq!(bounds, want);
    let count = all
        .iter()
        .find(|s| s.name == "http_client_request_duration_seconds_count" && has(s, &ok_labels))
        .expect("a count");
    assert_eq!(count.value, ok as f64);

    // Nothing left in flight.
    let active = all
        .iter()
        .find(|s| s.name == "http_client_active_requests" && has(s, &[post, host]))
        .expect("the in-flight gauge");
    assert_eq!(active.value, 0.0);

    // Headroom from the sim's Anthropic headers: a burst of 30 requests.
    let requests = [("evenkeel_resource", "requests"), host];
    let limit = all
        .iter()
        .find(|s| s.name == "evenkeel_rate_limit_limit" && has(s, &requests))
        .expect("the limit gauge");
    assert_eq!(limit.value, 30.0);
    let remaining = all
        .iter()
        .find(|s| s.name == "evenkeel_rate_limit_remaining" && has(s, &requests))
        .expect("the remaining gauge");
    assert!((0.0..=30.0).contains(&remaining.value), "{remaining:?}");
    assert!(text.contains("# TYPE evenkeel_rate_limit_reset_seconds gauge"));
}
