//! The `evenkeel` binary, run for real against the simulated API on
//! loopback.

use std::process::{Command, Output};
use std::time::Duration;

use evenkeel_sim::{Faults, Sim};

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

fn last_json(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().expect("some output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_json_through_the_preset_serves_every_request_once() {
    let server = Sim::builder()
        .requests(200.0, 20)
        .faults(Faults::none().overloaded(0.1))
        .latency(Duration::from_millis(2))
        .seed(3)
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("{}/v1/messages", server.url());
    let output = evenkeel_async(
        [
            "load",
            "--url",
            &url,
            "--requests",
            "120",
            "--concurrency",
            "8",
            "--method",
            "POST",
            "--body-bytes",
            "64",
            "--json",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let report = last_json(&output);
    assert_eq!(report["requests"], 120);
    assert_eq!(report["succeeded"], 120, "{report}");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["stack"], "preset");
    for field in [
        "attempts",
        "retries",
        "rate_limited",
        "elapsed_ms",
        "p50_ms",
        "p99_ms",
    ] {
        assert!(report[field].is_number(), "{field}: {report}");
    }
    let stats = server.stats();
    // Every logical request had its own id, the same on each of its
    // attempts, and was served exactly once.
    assert_eq!(stats.successes_by_id().len(), 120);
    assert!(stats.duplicates().is_empty());
    assert_eq!(report["attempts"].as_u64().unwrap(), stats.attempts());
    let retried = stats.attempts_by_id().values().filter(|n| **n > 1).count();
    assert!(retried > 0, "529s were retried under the same id");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_json_through_a_bare_client_counts_429s() {
    let server = Sim::builder()
        .requests(5.0, 5)
        .latency(Duration::from_millis(1))
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("{}/v1/messages", server.url());
    let output = evenkeel_async(
        [
            "load",
            "--url",
            &url,
            "--requests",
            "40",
            "--concurrency",
            "4",
            "--stack",
            "bare",
            "--json",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let report = last_json(&output);
    assert_eq!(report["stack"], "bare");
    assert_eq!(report["attempts"], 40);
    assert_eq!(report["retries"], 0);
    let limited = report["rate_limited"].as_u64().unwrap();
    assert!(limited > 0);
    assert_eq!(
        report["succeeded"].as_u64().unwrap() + limited,
        40,
        "{report}"
    );
    assert_eq!(
        limited,
        server
            .stats()
            .status_count(http::StatusCode::TOO_MANY_REQUESTS)
    );
    server.shutdown().await;
}

#[test]
fn load_against_a_dead_port_still_reports() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let output = evenkeel(&[
        "load",
        "--url",
        &url,
        "--requests",
        "2",
        "--stack",
        "bare",
        "--json",
    ]);
    assert!(output.status.success(), "it ran, whatever the outcomes");
    let report = last_json(&output);
    assert_eq!(report["failed"], 2);
    let errors = report["errors"].as_object().unwrap();
    assert!(errors.keys().any(|e| e.contains("refused")), "{report}");
}

#[test]
fn bad_arguments_fail_with_one_line() {
    for args in [
        vec!["load", "--url", "ftp://example.com", "--requests", "1"],
        vec!["load", "--url", "not a url"],
        vec!["load", "--url", "http://127.0.0.1:1/", "--concurrency", "0"],
        vec!["load", "--url", "http://127.0.0.1:1/", "--requests", "many"],
        vec!["demo", "--overloaded", "2"],
    ] {
        let output = evenkeel(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_short_demo_prints_the_side_by_side_table() {
    let output = evenkeel(&[
        "demo",
        "--requests",
        "80",
        "--offered",
        "200",
        "--rate",
        "100",
        "--outage-at",
        "0.1",
        "--outage-for",
        "0.2",
    ]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["bare", "preset"]),
        "no table header: {stdout}"
    );
    for row in [
        "requests",
        "succeeded",
        "failed",
        "429s received",
        "retries",
        "failovers",
        "p50 latency",
        "p99 latency",
        "  quota wait, mean",
        "  p50 on the wire",
        "  p99 on the wire",
        "  429 rate limited",
        "  5xx server error",
        "  connection reset",
        "  timed out",
        "  held back locally",
        "  other",
        "wall time",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(row)),
            "{row} missing: {stdout}"
        );
    }
    // The numbers of a row, bare then preset.
    let row = |label: &str| -> Vec<u64> {
        stdout.lines().find(|l| l.starts_with(label)).unwrap()[label.len()..]
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    assert_eq!(row("requests"), [80, 80]);
    // Failures by cause add up to the failures.
    let causes = [
        "  429 rate limited",
        "  5xx server error",
        "  connection reset",
        "  timed out",
        "  held back locally",
        "  other",
    ];
    for column in 0..2 {
        let sum: u64 = causes.iter().map(|c| row(c)[column]).sum();
        assert_eq!(sum, row("failed")[column], "{stdout}");
    }
    // Retries are every attempt after a request's first, failovers
    // included: never fewer than attempts beyond one per request.
    let (attempts, retries, failovers) = (row("attempts"), row("retries"), row("failovers"));
    assert_eq!((attempts[0], retries[0]), (80, 0), "{stdout}");
    assert!(retries[1] >= attempts[1].saturating_sub(80), "{stdout}");
    assert!(retries[1] >= failovers[1], "{stdout}");
}

#[test]
fn help_explains_every_subcommand() {
    let output = evenkeel(&["--help"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for sub in ["demo", "load", "sim", "diagnose"] {
        assert!(stdout.contains(sub), "{stdout}");
    }
    let output = evenkeel(&["load", "--help"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--url",
        "--requests",
        "--concurrency",
        "--method",
        "--body-bytes",
        "--stack",
        "--json",
    ] {
        assert!(stdout.contains(flag), "{flag}: {stdout}");
    }
}

#[test]
fn diagnose_names_the_failing_layer_and_exits_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1/messages");
    let output = evenkeel(&["diagnose", &url, "--no-proxy", "--timeout-ms", "2000"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let verdict = stdout.lines().last().unwrap_or_default();
    assert!(verdict.starts_with("verdict:"), "{stdout}");
    assert!(verdict.contains("TCP"), "{verdict}");

    let output = evenkeel(&["diagnose", "ftp://example.com"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_reads_the_quotas_of_a_429() {
    let server = Sim::builder()
        .requests(1.0, 1)
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    server
        .handle()
        .force(
            http::StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(20)),
            Duration::from_secs(60),
        )
        .unwrap();
    let url = format!("{}/v1/messages", server.url());
    let output = evenkeel_async(
        ["diagnose", &url, "--no-proxy", "--json"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let verdict = report["verdict"].to_string();
    assert!(verdict.contains("wait"), "{verdict}");
    server.shutdown().await;
}
