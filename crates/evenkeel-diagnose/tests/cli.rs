//! The command line as `evenkeel diagnose` will run it: arguments parsed by
//! clap through `#[command(flatten)]`, `cli::run_with`, the output and the
//! exit status.

mod support;

use std::sync::Arc;

use clap::Parser;
use evenkeel_diagnose::EnvMap;
use evenkeel_diagnose::cli::{DiagnoseArgs, MethodArg, run_with};

use support::*;

#[derive(Debug, Parser)]
#[command(name = "diagnose")]
struct Cli {
    #[command(flatten)]
    diagnose: DiagnoseArgs,
}

fn parse(args: &[&str]) -> DiagnoseArgs {
    Cli::try_parse_from(std::iter::once("diagnose").chain(args.iter().copied()))
        .unwrap()
        .diagnose
}

/// Runs with an empty environment; returns (exit, stdout, stderr).
async fn run(args: &[&str]) -> (u8, String, String) {
    let args = parse(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(&args, Arc::new(EnvMap::new()), &mut out, &mut err).await;
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn every_flag_parses() {
    let args = parse(&[
        "https://api.example.test/v1/models",
        "--resolver",
        "127.0.0.1:5353",
        "--resolver",
        "1.1.1.1",
        "--resolve",
        "api.example.test:127.0.0.1",
        "--no-system-resolver",
        "--proxy",
        "http://127.0.0.1:3128",
        "--ca-file",
        "/tmp/ca.pem",
        "--method",
        "head",
        "-H",
        "x-api-key: sk-test",
        "--header",
        "anthropic-version: 2023-06-01",
        "--timeout-ms",
        "250",
        "--json",
        "--ascii",
    ]);
    assert_eq!(args.url, "https://api.example.test/v1/models");
    assert_eq!(args.resolvers, ["127.0.0.1:5353", "1.1.1.1"]);
    assert_eq!(args.resolve, ["api.example.test:127.0.0.1"]);
    assert!(args.no_system_resolver);
    assert_eq!(args.proxy.as_deref(), Some("http://127.0.0.1:3128"));
    assert_eq!(args.ca_files, [std::path::PathBuf::from("/tmp/ca.pem")]);
    assert_eq!(args.method, MethodArg::Head);
    assert_eq!(args.headers.len(), 2);
    assert_eq!(args.timeout_ms, 250);
    assert!(args.json && args.ascii);

    let shown = format!("{args:?}");
    assert!(
        shown.contains("x-api-key") && !shown.contains("sk-test"),
        "{shown}"
    );

    let defaults = parse(&["http://x"]);
    assert_eq!(defaults, DiagnoseArgs::new("http://x"));

    assert!(
        Cli::try_parse_from([
            "diagnose",
            "http://x",
            "--proxy",
            "http://p:1",
            "--no-proxy"
        ])
        .is_err()
    );
    assert!(Cli::try_parse_from(["diagnose", "http://x", "--method", "POST"]).is_err());
    assert!(Cli::try_parse_from(["diagnose"]).is_err());
}

#[tokio::test]
async fn a_closed_port_exits_1_with_the_verdict_last() {
    let port = closed_port().await;
    let url = format!("http://127.0.0.1:{port}/");
    let (code, out, err) = run(&[&url, "--timeout-ms", "2000"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.is_empty());
    assert!(out.lines().any(|l| l.starts_with("✗ tcp")), "{out}");
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("verdict: TCP fails"),
        "{out}"
    );

    let (code, out, _) = run(&[&url, "--ascii"]).await;
    assert_eq!(code, 1);
    assert!(out.is_ascii(), "{out}");
    assert!(out.lines().any(|l| l.starts_with("FAIL tcp")), "{out}");
}

#[tokio::test]
async fn a_healthy_endpoint_exits_0_and_json_is_one_object() {
    let ca = TestCa::new("evenkeel test CA");
    let server = tls_server(ca.valid_leaf(&["localhost"])).await;
    let ca_path = temp_pem(&ca.pem);
    let url = format!("https://localhost:{}/v1/models", server.port());
    let (code, out, err) = run(&[
        &url,
        "--no-system-resolver",
        "--resolve",
        "localhost:127.0.0.1",
        "--ca-file",
        ca_path.to_str().unwrap(),
        "--header",
        "x-api-key: sk-secret-value",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["exit_code"], 0);
    assert_eq!(json["layers"]["tls"]["status"], "pass");
    assert_eq!(json["layers"]["tls"]["alpn"], "h2");
    assert_eq!(json["layers"]["http"]["status_code"], 200);
    assert_eq!(json["verdict"]["status"], "pass");
    assert!(
        !out.contains("sk-secret-value"),
        "the API key must not be printed"
    );
}

#[tokio::test]
async fn bad_arguments_exit_2_naming_the_field() {
    for (args, field) in [
        (vec!["not a url"], "url"),
        (vec!["http://x", "--header", "no colon"], "header"),
        (vec!["http://x", "--resolver", "dns.google"], "resolver"),
        (vec!["http://x", "--resolve", "nohost"], "resolve"),
        (
            vec!["http://x", "--proxy", "socks5://127.0.0.1:1080"],
            "proxy",
        ),
        (
            vec!["http://x", "--ca-file", "/nonexistent/ca.pem"],
            "ca_file",
        ),
        (vec!["http://x", "--timeout-ms", "0"], "timeout"),
        (vec!["http://x", "--no-system-resolver"], "resolver"),
    ] {
        let (code, out, err) = run(&args).await;
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(out.is_empty());
        assert!(err.contains(&format!("`{field}`")), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn a_pem_file_without_certificates_is_a_bad_argument() {
    let path =
        temp_pem("-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n");
    let (code, _, err) = run(&["https://localhost/", "--ca-file", path.to_str().unwrap()]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`ca_file`"), "{err}");
    let path = temp_pem("just some text\n");
    let (code, _, err) = run(&["https://localhost/", "--ca-file", path.to_str().unwrap()]).await;
    assert_eq!(code, 2);
    assert!(err.contains("no CERTIFICATE block"), "{err}");
}
