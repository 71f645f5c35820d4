//! `evenkeel load`'s report and flags, run for real against simulated APIs
//! and a recording server on loopback.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use evenkeel_sim::{Faults, Sim, SimServer};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;

fn evenkeel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evenkeel"))
        .args(args)
        .output()
        .expect("the binary runs")
}

async fn evenkeel_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        evenkeel(&args)
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn last_json(output: &Output) -> Value {
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().expect("some output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

const CAUSES: [&str; 6] = [
    "rate_limited",
    "server_error",
    "reset",
    "timeout",
    "local",
    "other",
];

/// `failures_by_cause` has every cause, and its counts add up to `failed`.
fn causes(report: &Value) -> serde_json::Map<String, Value> {
    let causes = report["failures_by_cause"]
        .as_object()
        .unwrap_or_else(|| panic!("no failures_by_cause: {report}"))
        .clone();
    let mut keys: Vec<&str> = causes.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = CAUSES;
    want.sort_unstable();
    assert_eq!(keys, want, "{report}");
    let sum: u64 = causes.values().map(u).sum();
    assert_eq!(sum, u(&report["failed"]), "{report}");
    causes
}

async fn sim(sim: Sim) -> SimServer {
    sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_run_counts_its_429s_as_rate_limited_failures() {
    let server = sim(Sim::builder()
        .requests(5.0, 5)
        .latency(Duration::from_millis(1))
        .build()
        .unwrap())
    .await;
    let url = format!("{}/v1/messages", server.url());
    let report = last_json(
        &evenkeel_async(args(&[
            "load", "--url", &url, "-n", "30", "-c", "3", "--stack", "bare", "--json",
        ]))
        .await,
    );
    let causes = causes(&report);
    let limited = server
        .stats()
        .status_count(http::StatusCode::TOO_MANY_REQUESTS);
    assert!(limited > 0);
    assert_eq!(u(&causes["rate_limited"]), limited, "{report}");
    assert_eq!(u(&report["failed"]), limited);
    assert_eq!(u(&report["retries"]), 0);
    assert_eq!(u(&report["attempts"]), 30);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_count_every_attempt_after_the_first_failovers_included() {
    // The primary refuses every connection; each request that tries it
    // goes on to the backup, which also answers some 503s.
    let backup = sim(Sim::builder()
        .requests(1000.0, 1000)
        .faults(Faults::none().overloaded(0.2))
        .latency(Duration::from_millis(1))
        .seed(7)
        .build()
        .unwrap())
    .await;
    let primary = format!("http://127.0.0.1:{}/v1/items", dead_port());
    let report = last_json(
        &evenkeel_async(args(&[
            "load",
            "--url",
            &primary,
            "--url",
            &backup.url(),
            "--requests",
            "40",
            "--concurrency",
            "4",
            "--json",
        ]))
        .await,
    );
    causes(&report);
    let (requests, attempts, retries) = (
        u(&report["requests"]),
        u(&report["attempts"]),
        u(&report["retries"]),
    );
    assert_eq!(requests, 40);
    assert_eq!(retries, attempts - requests, "{report}");
    assert!(u(&report["failovers"]) > 0, "{report}");
    assert!(retries > 0, "{report}");
    // What reached the backup is part of what the run counts.
    let stats = backup.stats();
    assert!(stats.attempts() <= attempts);
    assert_eq!(stats.successes(), u(&report["succeeded"]));
    backup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preset_run_reports_retries_waits_and_causes() {
    let server = sim(Sim::builder()
        .requests(200.0, 20)
        .faults(Faults::none().overloaded(0.15))
        .latency(Duration::from_millis(2))
        .seed(3)
        .build()
        .unwrap())
    .await;
    let url = format!("{}/v1/messages", server.url());
    let report =
        last_json(&evenkeel_async(args(&["load", "--url", &url, "-n", "60", "--json"])).await);
    causes(&report);
    let stats = server.stats();
    assert_eq!(u(&report["attempts"]), stats.attempts());
    assert_eq!(
        u(&report["retries"]),
        u(&report["attempts"]) - u(&report["requests"]),
        "{report}"
    );
    let resent: u64 = stats
        .attempts_by_id()
        .values()
        .map(|n| n.saturating_sub(1))
        .sum();
    assert_eq!(u(&report["retries"]), resent, "{report}");
    assert!(resent > 0, "the 503s were retried");
    for field in [
        "attempt_p50_ms",
        "attempt_p99_ms",
        "quota_wait_ms",
        "quota_wait_mean_ms",
    ] {
        assert!(
            report[field].as_f64().is_some_and(|v| v >= 0.0),
            "{field}: {report}"
        );
    }
    server.shutdown().await;
}

/// A server that answers 200 and keeps the headers of every request.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<http::HeaderMap>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let kept = kept.clone();
                    async move {
                        let headers = req.headers().clone();
                        let _ = req.into_body().collect().await;
                        kept.lock().unwrap().push(headers);
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                            b"{}",
                        ))))
                    }
                });
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Recorder { addr, seen, task }
    }

    fn seen(&self) -> Vec<http::HeaderMap> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_flags_reach_the_server_on_every_request() {
    for stack in ["preset", "bare"] {
        let server = Recorder::start().await;
        let url = format!("http://{}/v1/messages", server.addr);
        let report = last_json(
            &evenkeel_async(args(&[
                "load",
                "--url",
                &url,
                "-n",
                "5",
                "-c",
                "1",
                "--method",
                "POST",
                "--body-bytes",
                "32",
                "--stack",
                stack,
                "-H",
                "Authorization: Bearer t0ken",
                "--header",
                "x-tag: one",
                "-H",
                "x-tag:two",
                "-H",
                "content-type: application/vnd.test+json",
                "--json",
            ]))
            .await,
        );
        assert_eq!(u(&report["succeeded"]), 5, "{report}");
        let seen = server.seen();
        assert_eq!(seen.len(), 5, "{stack}");
        let mut ids = std::collections::HashSet::new();
        for headers in &seen {
            assert_eq!(headers["authorization"], "Bearer t0ken", "{stack}");
            let tags: Vec<_> = headers.get_all("x-tag").iter().collect();
            assert_eq!(tags, ["one", "two"], "{stack}");
            let types: Vec<_> = headers.get_all("content-type").iter().collect();
            assert_eq!(types, ["application/vnd.test+json"], "{stack}");
            ids.insert(headers["x-request-id"].clone());
        }
        assert_eq!(ids.len(), 5, "each request keeps its own id");
    }
}

#[test]
fn a_header_without_a_colon_fails_quoting_it() {
    for flag in ["-H", "--header"] {
        let output = evenkeel(&["load", "--url", "http://127.0.0.1:1/", flag, "nocolon"]);
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error"), "{stderr}");
        assert!(stderr.contains("'nocolon'"), "{stderr}");
        assert!(stderr.contains("colon"), "{stderr}");
        assert!(output.stdout.is_empty());
    }
    let output = evenkeel(&["load", "--url", "http://127.0.0.1:1/", "-H", "bad name: x"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("'bad name'"));
}

#[test]
fn quota_flags_refuse_bad_values_quoting_them() {
    let url = "http://127.0.0.1:1/";
    for (flag, bad, why) in [
        ("--rate-limit", "10/h", "not s or min"),
        ("--rate-limit", "3000", "no unit"),
        ("--rate-limit", "10/s:0", "at least 1"),
        ("--quota-store", "redis://127.0.0.1", "no port"),
        (
            "--quota-store",
            "file:///tmp/q",
            "neither `memory` nor a Redis URL",
        ),
        ("--quota-key", "", "must not be empty"),
    ] {
        let output = evenkeel(&["load", "--url", url, flag, bad]);
        assert_eq!(output.status.code(), Some(2), "{flag} {bad}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("'{bad}'")), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert!(output.stdout.is_empty());
    }
    let output = evenkeel(&[
        "load",
        "--url",
        url,
        "--stack",
        "bare",
        "--rate-limit",
        "5/s",
    ]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--stack bare has no quota layer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_rate_limit_keeps_a_run_under_a_quota_without_headers() {
    // 20 requests a second, a bucket of 5, no rate-limit headers.
    let quota = || {
        Sim::builder()
            .requests(20.0, 5)
            .dialect(evenkeel_sim::Dialect::None)
            .latency(Duration::from_millis(5))
            .build()
            .unwrap()
    };
    let run = |url: String, flags: &'static [&'static str]| {
        let mut list = args(&["load", "--url", &url, "-n", "30", "-c", "4", "--json"]);
        list.extend(flags.iter().map(|s| s.to_string()));
        evenkeel_async(list)
    };
    // Without it the run learns the quota from 429s only.
    let unpaced = sim(quota()).await;
    let report = last_json(&run(format!("{}/v1/items", unpaced.url()), &[]).await);
    let stats = unpaced.stats();
    assert!(
        stats.status_count(http::StatusCode::TOO_MANY_REQUESTS) > 0,
        "{report}"
    );
    unpaced.shutdown().await;

    let paced = sim(quota()).await;
    let report = last_json(
        &run(
            format!("{}/v1/items", paced.url()),
            &["--rate-limit", "20/s", "--quota-key", "items"],
        )
        .await,
    );
    let stats = paced.stats();
    assert_eq!(
        stats.status_count(http::StatusCode::TOO_MANY_REQUESTS),
        0,
        "{report}"
    );
    assert_eq!(
        (stats.attempts(), u(&report["succeeded"])),
        (30, 30),
        "{report}"
    );
    assert!(report["quota_wait_ms"].as_f64().unwrap() > 0.0, "{report}");
    paced.shutdown().await;
}

#[test]
fn a_redis_store_that_does_not_answer_leaves_the_run_paced_locally() {
    // Nothing listens on the port: the store paces each process with its
    // share of the declared quota, and the run still ends.
    let server = format!("redis://127.0.0.1:{}", dead_port());
    let target = format!("http://127.0.0.1:{}/", dead_port());
    let output = evenkeel(&[
        "load",
        "--url",
        &target,
        "-n",
        "2",
        "-c",
        "1",
        "--quota-store",
        &server,
        "--rate-limit",
        "100/s",
        "--json",
    ]);
    let report = last_json(&output);
    assert_eq!(u(&report["requests"]), 2, "{report}");
    assert_eq!(u(&report["failed"]), 2, "nothing answers: {report}");
    let causes = causes(&report);
    assert_eq!(
        u(&causes["other"]),
        2,
        "refused connections, not quota: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_out_writes_the_prometheus_exposition() {
    let server = sim(Sim::builder()
        .requests(500.0, 50)
        .latency(Duration::from_millis(1))
        .build()
        .unwrap())
    .await;
    let url = format!("{}/v1/messages", server.url());
    let dir = std::env::temp_dir().join(format!("evenkeel-cli-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for stack in ["preset", "bare"] {
        let path = dir.join(format!("{stack}.prom"));
        let report = last_json(
            &evenkeel_async(args(&[
                "load",
                "--url",
                &url,
                "-n",
                "12",
                "--stack",
                stack,
                "--metrics-out",
                path.to_str().unwrap(),
                "--json",
            ]))
            .await,
        );
        assert_eq!(u(&report["succeeded"]), 12);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# TYPE evenkeel_load_requests_total counter"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "evenkeel_load_requests_total{{stack=\"{stack}\",result=\"succeeded\"}} 12"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "evenkeel_load_attempts_total{{stack=\"{stack}\"}} 12"
            )),
            "{text}"
        );
        for cause in CAUSES {
            assert!(
                text.contains(&format!("cause=\"{cause}\"")),
                "{cause}: {text}"
            );
        }
        if stack == "preset" {
            // The stack's own metrics, per attempt and per call.
            assert!(text.contains("evenkeel_http_client_attempts"), "{text}");
            assert!(text.contains("http_client_request_duration"), "{text}");
        }
    }
    // A file that cannot be created fails before any request is sent.
    let before = server.stats().attempts();
    let missing = dir.join("no/such/dir/run.prom");
    let output = evenkeel_async(args(&[
        "load",
        "--url",
        &url,
        "--metrics-out",
        missing.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--metrics-out") && stderr.contains("run.prom"),
        "{stderr}"
    );
    assert_eq!(server.stats().attempts(), before);
    std::fs::remove_dir_all(&dir).unwrap();
    server.shutdown().await;
}

/// `evenkeel sim`, as a child process on a free loopback port, stopped when
/// dropped.
struct SimProcess {
    child: Child,
    /// Kept open: the sim goes on printing.
    _stdout: BufReader<ChildStdout>,
    url: String,
}

impl SimProcess {
    fn start(extra: &[&str]) -> SimProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_evenkeel"))
            .args(["sim", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the sim starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let url = first
            .split_whitespace()
            .last()
            .filter(|u| u.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .to_owned();
        SimProcess {
            child,
            _stdout: stdout,
            url,
        }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn short_flags_drive_an_evenkeel_sim() {
    let sim = SimProcess::start(&["--rate", "1000", "--burst", "1000", "--latency-ms", "5"]);
    let url = format!("{}/v1/messages", sim.url);
    let report = last_json(&evenkeel(&[
        "load", "--url", &url, "-n", "7", "-c", "2", "--stack", "bare", "--json",
    ]));
    assert_eq!(u(&report["requests"]), 7);
    assert_eq!(u(&report["succeeded"]), 7, "{report}");
    assert_eq!(u(&report["attempts"]), 7);
    causes(&report);
    let long = last_json(&evenkeel(&[
        "load",
        "--url",
        &url,
        "--requests",
        "3",
        "--concurrency",
        "1",
        "--json",
    ]));
    assert_eq!(u(&long["requests"]), 3);
    assert_eq!(u(&long["succeeded"]), 3, "{long}");
}

#[test]
fn short_flags_bound_concurrency() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(sim(Sim::builder()
        .requests(1000.0, 1000)
        .latency(Duration::from_millis(20))
        .build()
        .unwrap()));
    let url = format!("{}/v1/messages", server.url());
    let report = last_json(&evenkeel(&[
        "load", "--url", &url, "-n", "9", "-c", "2", "--stack", "bare", "--json",
    ]));
    assert_eq!(u(&report["requests"]), 9);
    let stats = server.stats();
    assert_eq!(stats.attempts(), 9);
    assert!(stats.max_in_flight() <= 2, "{}", stats.max_in_flight());
    rt.block_on(server.shutdown());
}

#[test]
fn help_documents_the_flags_and_the_cause_keys() {
    let output = evenkeel(&["load", "--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    for text in [
        "-n, --requests",
        "-c, --concurrency",
        "-H, --header",
        "--metrics-out <FILE>",
        "failures_by_cause",
    ] {
        assert!(help.contains(text), "{text}: {help}");
    }
    for cause in CAUSES {
        assert!(help.contains(&format!("  {cause} ")), "{cause}: {help}");
    }
    assert!(!help.contains("GET: GET"), "{help}");

    let output = evenkeel(&["sim", "--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("evenkeel sim --demo"), "{help}");
    assert!(!help.contains("evenkeel-sim --"), "{help}");
}
