//! The `evenkeel-sim` binary: help, errors, serving, and the demo.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_evenkeel-sim"))
}

#[test]
fn help_explains_every_flag() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--rate",
        "--burst",
        "--token-rate",
        "--token-burst",
        "--token-cost",
        "--token-header",
        "--dialect",
        "--retry-after-ms",
        "--fail-500",
        "--fail-503",
        "--fail-529",
        "--insufficient-quota",
        "--reset",
        "--slow",
        "--slow-ms",
        "--latency-ms",
        "--capacity",
        "--reject-above",
        "--seed",
        "--max-body-bytes",
        "--demo",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    assert!(help.contains("127.0.0.1:8080"));
    for dialect in ["anthropic", "openai", "ietf", "github", "none"] {
        assert!(help.contains(dialect), "{dialect}");
    }
}

#[test]
fn bad_values_fail_with_a_one_line_error() {
    for args in [
        &["--rate", "0"][..],
        &["--reset", "1.5"],
        &["--fail-500", "0.7", "--fail-529", "0.7"],
        &["--capacity", "0"],
        &["--dialect", "smtp"],
        &["--listen", "not-an-address"],
    ] {
        let out = bin().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
    }
}

#[test]
fn serves_http_until_killed() {
    let mut child = bin()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--rate",
            "1",
            "--burst",
            "1",
            "--dialect",
            "github",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("evenkeel-sim listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"));
    let get = |id: &str| {
        let mut stream = TcpStream::connect(url).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET /v1/messages HTTP/1.1\r\nhost: {url}\r\nx-request-id: {id}\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let ok = get("one");
    let limited = get("two");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("x-ratelimit-limit: 1"), "{ok}");
    assert!(ok.contains("\"request_id\":\"one\""), "{ok}");
    assert!(limited.starts_with("HTTP/1.1 429"), "{limited}");
    assert!(limited.contains("retry-after: 1"), "{limited}");
}

#[test]
fn the_demo_prints_a_summary() {
    let out = bin().args(["--demo", "1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "evenkeel-sim demo: 1 s of mixed load against http://127.0.0.1:",
        "polite",
        "greedy",
        "served by the sim",
        "200 OK",
        "429 Too Many Requests",
        "max in flight",
        "sample headers",
        "anthropic-ratelimit-requests-remaining: ",
        "retry-after: 1",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}
