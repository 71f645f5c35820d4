//! Each layer's findings, built for real over loopback: closed ports, a test
//! CA's certificates (trusted, untrusted, expired, for another name), a
//! rate-limited API, DNS responders that disagree or say NXDOMAIN, and a
//! CONNECT proxy alive, dead, or demanding credentials.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use evenkeel_diagnose::{
    Cause, DnsOutcome, DnsSource, EXIT_FAILED, EXIT_OK, EnvMap, Layer, ProxySource, Report, Status,
    TcpOutcome,
};
use evenkeel_headers::Resource;
use evenkeel_sim::{Dialect, Sim, TokenCost};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;

use support::*;

fn cause(report: &Report, layer: Layer) -> Option<Cause> {
    report
        .layers()
        .into_iter()
        .find(|(l, _, _)| *l == layer)
        .and_then(|(_, _, f)| f.map(|f| f.cause))
}

/// Prints the table when an assertion fails, so the failure explains
/// itself.
fn show(report: &Report) -> String {
    report.table().to_string()
}

// ---------------------------------------------------------------- TCP ---

#[tokio::test]
async fn a_closed_port_is_refused_and_the_verdict_names_tcp() {
    let port = closed_port().await;
    let report = diagnose(&format!("http://127.0.0.1:{port}/"))
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(report.dns.status, Status::Skip, "{}", show(&report));
    assert_eq!(report.tcp.status, Status::Fail);
    assert_eq!(report.tcp.attempts.len(), 1);
    assert_eq!(report.tcp.attempts[0].outcome, TcpOutcome::Refused);
    assert_eq!(cause(&report, Layer::Tcp), Some(Cause::TcpRefused));
    assert_eq!(report.http.status, Status::Skip);
    assert_eq!(report.failed_layer(), Some(Layer::Tcp));
    assert_eq!(report.exit_code(), EXIT_FAILED);
    assert!(
        report.verdict.text.starts_with("verdict: TCP fails"),
        "{}",
        report.verdict.text
    );
    assert!(report.verdict.text.contains(&format!("127.0.0.1:{port}")));
}

#[tokio::test]
async fn plain_http_to_an_ip_passes_every_layer() {
    let addr = ok_http_server().await;
    let report = diagnose(&format!("http://{addr}/health"))
        .build()
        .unwrap()
        .run()
        .await;
    assert!(report.ok(), "{}", show(&report));
    assert_eq!(
        report.dns.skipped.as_deref(),
        Some("the host is an IP address")
    );
    assert_eq!(report.tcp.used, Some(addr));
    assert!(report.tls.is_none());
    assert_eq!(report.http.status, Status::Pass);
    assert_eq!(report.http.status_code, Some(200));
    assert_eq!(report.http.version.as_deref(), Some("HTTP/1.1"));
    assert_eq!(report.http.request, "GET /health");
    assert_eq!(report.verdict.status, Status::Pass);
    assert_eq!(report.exit_code(), EXIT_OK);
}

// ---------------------------------------------------------------- TLS ---

#[tokio::test]
async fn a_test_ca_certificate_passes_with_the_ca_file() {
    let ca = TestCa::new("evenkeel test CA");
    let addr = tls_server(ca.valid_leaf(&["localhost"])).await;
    let report = diagnose(&format!("https://localhost:{}/v1/models", addr.port()))
        .ca_file(temp_pem(&ca.pem))
        .build()
        .unwrap()
        .run()
        .await;
    assert!(report.ok(), "{}", show(&report));
    let tls = report.tls.as_ref().unwrap();
    assert_eq!(tls.status, Status::Pass);
    assert_eq!(tls.version.as_deref(), Some("TLSv1.3"));
    assert_eq!(tls.alpn.as_deref(), Some("h2"));
    assert_eq!(tls.extra_roots, 1);
    assert_eq!(tls.name_matches, Some(true));
    assert_eq!(tls.chain.len(), 1);
    assert_eq!(tls.chain[0].subject, "CN=localhost");
    assert_eq!(tls.chain[0].issuer, "CN=evenkeel test CA");
    assert_eq!(tls.chain[0].names, ["localhost"]);
    assert!(tls.chain[0].days_left > 365);
    // HTTP went over the checked connection, as HTTP/2.
    assert_eq!(report.http.version.as_deref(), Some("HTTP/2"));
    assert_eq!(report.http.status_code, Some(200));
    assert_eq!(report.exit_code(), EXIT_OK);
}

#[tokio::test]
async fn without_the_ca_file_the_issuer_is_unknown_and_named() {
    let ca = TestCa::new("Corp Intercept CA");
    let addr = tls_server(ca.valid_leaf(&["localhost"])).await;
    let report = diagnose(&format!("https://localhost:{}/", addr.port()))
        .build()
        .unwrap()
        .run()
        .await;
    let tls = report.tls.as_ref().unwrap();
    assert_eq!(tls.status, Status::Fail, "{}", show(&report));
    assert_eq!(cause(&report, Layer::Tls), Some(Cause::TlsUnknownIssuer));
    // The chain was recorded although it was rejected.
    assert_eq!(tls.chain.len(), 1);
    assert_eq!(tls.chain[0].issuer, "CN=Corp Intercept CA");
    let finding = tls.finding.as_ref().unwrap();
    assert!(
        finding
            .summary
            .starts_with("unable to get local issuer certificate")
    );
    assert!(
        finding.summary.contains("\"CN=Corp Intercept CA\""),
        "{}",
        finding.summary
    );
    assert!(finding.fix.contains("--ca-file"));
    assert_eq!(report.http.status, Status::Skip);
    assert_eq!(report.failed_layer(), Some(Layer::Tls));
    assert!(
        report
            .verdict
            .text
            .starts_with("verdict: TLS fails: unable to get local issuer certificate")
    );
    assert!(report.verdict.text.contains("CN=Corp Intercept CA"));
    assert_eq!(report.exit_code(), EXIT_FAILED);
}

#[tokio::test]
async fn an_expired_certificate_says_when_it_expired() {
    let ca = TestCa::new("evenkeel test CA");
    let addr = tls_server(ca.leaf(&["localhost"], (2020, 1, 1), (2021, 6, 30))).await;
    let report = diagnose(&format!("https://localhost:{}/", addr.port()))
        .ca_pem(ca.pem.clone())
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(
        cause(&report, Layer::Tls),
        Some(Cause::TlsExpired),
        "{}",
        show(&report)
    );
    let tls = report.tls.as_ref().unwrap();
    assert!(tls.chain[0].days_left < -365);
    let summary = &tls.finding.as_ref().unwrap().summary;
    assert!(summary.contains("was valid until 2021-06-30"), "{summary}");
    assert_eq!(report.failed_layer(), Some(Layer::Tls));
}

#[tokio::test]
async fn a_certificate_not_valid_yet_points_at_the_clock() {
    let ca = TestCa::new("evenkeel test CA");
    let addr = tls_server(ca.leaf(&["localhost"], (2098, 1, 1), (2099, 1, 1))).await;
    let report = diagnose(&format!("https://localhost:{}/", addr.port()))
        .ca_pem(ca.pem.clone())
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(
        cause(&report, Layer::Tls),
        Some(Cause::TlsNotYetValid),
        "{}",
        show(&report)
    );
    let finding = report.tls.as_ref().unwrap().finding.as_ref().unwrap();
    assert!(
        finding.summary.contains("starts on 2098-01-01"),
        "{}",
        finding.summary
    );
    assert!(finding.fix.contains("clock"));
}

#[tokio::test]
async fn a_certificate_for_another_name_is_a_wrong_host() {
    let ca = TestCa::new("evenkeel test CA");
    let addr = tls_server(ca.valid_leaf(&["api.other.test"])).await;
    let report = diagnose(&format!("https://localhost:{}/", addr.port()))
        .ca_pem(ca.pem.clone())
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(
        cause(&report, Layer::Tls),
        Some(Cause::TlsWrongHost),
        "{}",
        show(&report)
    );
    let tls = report.tls.as_ref().unwrap();
    assert_eq!(tls.name_matches, Some(false));
    let summary = &tls.finding.as_ref().unwrap().summary;
    assert!(
        summary.contains("for api.other.test, not localhost"),
        "{summary}"
    );
}

#[tokio::test]
async fn https_to_a_plain_http_port_is_not_tls() {
    let addr = ok_http_server().await;
    let report = diagnose(&format!("https://localhost:{}/", addr.port()))
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(
        cause(&report, Layer::Tls),
        Some(Cause::TlsNotTls),
        "{}",
        show(&report)
    );
    assert!(report.tls.as_ref().unwrap().chain.is_empty());
}

#[tokio::test]
async fn a_server_that_hangs_up_refuses_the_handshake() {
    // Reads the start of the ClientHello, then closes: what a firewall
    // filtering by SNI does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut start = [0u8; 5];
            let _ = tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut start).await;
            drop(tcp);
        }
    });
    let report = diagnose(&format!("https://localhost:{port}/"))
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(
        cause(&report, Layer::Tls),
        Some(Cause::TlsHandshakeRefused),
        "{}",
        show(&report)
    );
    assert!(
        report
            .verdict
            .text
            .contains("closed during the TLS handshake"),
        "{}",
        report.verdict.text
    );
    assert_eq!(report.failed_layer(), Some(Layer::Tls));
}

// --------------------------------------------------------------- HTTP ---

#[tokio::test]
async fn a_429_shows_each_quota_and_the_verdict_says_to_wait() {
    // One request per 20 s, and a token quota charged 1000 per request.
    let sim = Sim::builder()
        .requests(0.05, 1)
        .tokens(0.001, 50_000, TokenCost::Fixed(1000))
        .dialect(Dialect::Anthropic)
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let check = diagnose(&format!("{}/v1/messages", sim.url()))
        .header_line("x-api-key: sk-test")
        .build()
        .unwrap();

    // The first request spends the request quota: it passes, with a warning.
    let first = check.run().await;
    assert!(first.ok(), "{}", show(&first));
    assert_eq!(first.http.status_code, Some(200));
    assert_eq!(cause(&first, Layer::Http), Some(Cause::HttpQuotaExhausted));
    assert_eq!(first.verdict.status, Status::Warn);

    // The second is limited.
    let report = check.run().await;
    let http = &report.http;
    assert_eq!(http.status_code, Some(429), "{}", show(&report));
    assert_eq!(http.status, Status::Fail);
    assert_eq!(cause(&report, Layer::Http), Some(Cause::HttpRateLimited));
    let requests = http.rate_limits.get(&Resource::Requests).unwrap();
    assert_eq!((requests.limit, requests.remaining), (Some(1), Some(0)));
    assert!(requests.reset_after.unwrap() > Duration::from_secs(10));
    let tokens = http.rate_limits.get(&Resource::Tokens).unwrap();
    assert_eq!(
        (tokens.limit, tokens.remaining),
        (Some(50_000), Some(49_000))
    );
    let wait = http.retry_after.unwrap();
    assert!(
        wait >= Duration::from_secs(10) && wait <= Duration::from_secs(20),
        "{wait:?}"
    );
    assert_eq!(http.retry_after_header, Some("retry-after"));
    assert!(
        http.body_excerpt
            .as_deref()
            .unwrap()
            .contains("rate_limit_error")
    );

    assert_eq!(report.failed_layer(), Some(Layer::Http));
    let text = &report.verdict.text;
    assert!(
        text.starts_with("verdict: HTTP fails: rate limited"),
        "{text}"
    );
    assert!(
        text.contains(&format!("wait {} s", wait.as_secs())),
        "{text}"
    );
    let table = show(&report);
    assert!(table.contains("quota requests: 0 of 1 left"), "{table}");
    assert!(
        table.contains("quota tokens: 49000 of 50000 left"),
        "{table}"
    );
    assert_eq!(report.exit_code(), EXIT_FAILED);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_529_is_overload_not_quota() {
    let sim = Sim::builder()
        .dialect(Dialect::Anthropic)
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.handle()
        .force(
            StatusCode::from_u16(529).unwrap(),
            Some(Duration::from_secs(3)),
            Duration::from_secs(60),
        )
        .unwrap();
    let report = diagnose(&sim.url()).build().unwrap().run().await;
    assert_eq!(report.http.status_code, Some(529), "{}", show(&report));
    assert_eq!(cause(&report, Layer::Http), Some(Cause::HttpOverloaded));
    assert!(
        report.verdict.text.contains("not your quota"),
        "{}",
        report.verdict.text
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_huge_response_head_is_an_http_error_not_a_crash() {
    let addr = raw_server(|mut tcp| async move {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..4000 {
            head.extend_from_slice(format!("x-filler-{i}: {}\r\n", "a".repeat(60)).as_bytes());
        }
        head.extend_from_slice(b"content-length: 0\r\n\r\n");
        let _ = tcp.write_all(&head).await;
    })
    .await;
    let report = diagnose(&format!("http://{addr}/"))
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(
        cause(&report, Layer::Http),
        Some(Cause::HttpError),
        "{}",
        show(&report)
    );
    assert_eq!(report.failed_layer(), Some(Layer::Http));
}

#[tokio::test]
async fn an_endless_body_is_read_up_to_the_bound() {
    let addr = raw_server(|mut tcp| async move {
        let _ = tcp
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n")
            .await;
        let chunk = vec![b'z'; 64 * 1024];
        // 8 MiB at most; the client stops long before.
        for _ in 0..128 {
            if tcp.write_all(&chunk).await.is_err() {
                return;
            }
        }
    })
    .await;
    let report = diagnose(&format!("http://{addr}/"))
        .build()
        .unwrap()
        .run()
        .await;
    assert!(report.ok(), "{}", show(&report));
    assert!(report.http.body_truncated);
    assert!(report.http.body_bytes > evenkeel_diagnose::BODY_LIMIT as u64);
    assert!(report.http.body_bytes <= 2 * evenkeel_diagnose::BODY_LIMIT as u64);
}

#[tokio::test]
async fn a_401_names_the_credentials() {
    let addr = http_server(Arc::new(|req: &Request<Incoming>| {
        let status = if req.headers().contains_key("x-api-key") {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(
                b"{\"error\":\"missing key\"}",
            )))
            .unwrap()
    }))
    .await;
    let url = format!("http://{addr}/v1/models");
    let report = diagnose(&url).build().unwrap().run().await;
    assert_eq!(
        cause(&report, Layer::Http),
        Some(Cause::HttpAuth),
        "{}",
        show(&report)
    );
    assert!(report.verdict.text.contains("API key"));
    let report = diagnose(&url)
        .header_line("x-api-key: sk-test")
        .method(http::Method::HEAD)
        .build()
        .unwrap()
        .run()
        .await;
    assert!(report.ok(), "{}", show(&report));
    assert_eq!(report.http.request, "HEAD /v1/models");
    assert_eq!(report.http.body_bytes, 0);
}

#[tokio::test]
async fn a_redirect_passes_and_says_where_it_points() {
    let addr = http_server(Arc::new(|_req: &Request<Incoming>| {
        Response::builder()
            .status(StatusCode::MOVED_PERMANENTLY)
            .header(
                "location",
                http::HeaderValue::from_bytes(b"https://docs.example.test/\xff").unwrap(),
            )
            .body(Full::new(Bytes::new()))
            .unwrap()
    }))
    .await;
    let report = diagnose(&format!("http://{addr}/"))
        .build()
        .unwrap()
        .run()
        .await;
    assert!(report.ok(), "{}", show(&report));
    assert_eq!(report.http.status_code, Some(301));
    // Bytes that are not UTF-8 are replaced, not printed raw.
    assert_eq!(
        report.http.location.as_deref(),
        Some("https://docs.example.test/\u{fffd}")
    );
    assert!(show(&report).contains("location: https://docs.example.test/"));
}

// ---------------------------------------------------------------- DNS ---

#[tokio::test]
async fn resolvers_that_disagree_are_flagged() {
    let server = ok_http_server().await;
    let first = dns_responder(DnsAnswer::Addresses(
        vec!["127.0.0.1".parse().unwrap()],
        300,
    ))
    .await;
    let second = dns_responder(DnsAnswer::Addresses(vec!["127.0.0.2".parse().unwrap()], 60)).await;
    let report = diagnose(&format!("http://api.example.test:{}/", server.port()))
        .resolver(first)
        .resolver(second)
        .build()
        .unwrap()
        .run()
        .await;
    let dns = &report.dns;
    assert_eq!(dns.answers.len(), 2, "{}", show(&report));
    assert_eq!(dns.answers[0].source, DnsSource::Server(first));
    let DnsOutcome::Addresses(list) = &dns.answers[0].outcome else {
        panic!("{}", show(&report))
    };
    assert_eq!(list[0].ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(list[0].ttl, Some(300));
    assert_eq!(dns.status, Status::Warn);
    assert_eq!(cause(&report, Layer::Dns), Some(Cause::DnsDisagree));
    let summary = &dns.finding.as_ref().unwrap().summary;
    assert!(
        summary.contains("127.0.0.1") && summary.contains("127.0.0.2"),
        "{summary}"
    );
    // The first answer is used to connect, and the API answers: the
    // warning is the verdict, not a failure.
    assert_eq!(dns.addresses, ["127.0.0.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(report.http.status_code, Some(200));
    assert!(report.ok());
    assert_eq!(report.verdict.status, Status::Warn);
    assert_eq!(report.verdict.layer, Some(Layer::Dns));
    assert!(
        report.verdict.text.contains("resolvers disagree"),
        "{}",
        report.verdict.text
    );
}

#[tokio::test]
async fn nxdomain_fails_dns_and_the_verdict_names_it() {
    let nx = dns_responder(DnsAnswer::NxDomain).await;
    let report = diagnose("https://api.missing.test/v1/models")
        .resolver(nx)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(
        report.dns.answers[0].outcome,
        DnsOutcome::NxDomain,
        "{}",
        show(&report)
    );
    assert_eq!(cause(&report, Layer::Dns), Some(Cause::DnsNxDomain));
    assert_eq!(report.tcp.status, Status::Skip);
    assert_eq!(report.tls.as_ref().unwrap().status, Status::Skip);
    assert_eq!(report.failed_layer(), Some(Layer::Dns));
    assert!(
        report
            .verdict
            .text
            .starts_with("verdict: DNS fails: api.missing.test does not exist (NXDOMAIN)"),
        "{}",
        report.verdict.text
    );
    assert_eq!(report.exit_code(), EXIT_FAILED);
}

#[tokio::test]
async fn garbage_dns_answers_fail_cleanly() {
    let junk = dns_responder(DnsAnswer::Garbage).await;
    let report = diagnose("http://api.example.test/")
        .resolver(junk)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
        .run()
        .await;
    assert!(
        matches!(
            report.dns.answers[0].outcome,
            DnsOutcome::Timeout | DnsOutcome::Error(_)
        ),
        "{}",
        show(&report)
    );
    assert_eq!(report.failed_layer(), Some(Layer::Dns));
}

#[tokio::test]
async fn the_system_resolver_answers_for_localhost() {
    // The one test that asks this machine: `localhost` is in every hosts
    // file. An IPv6-first answer (::1) with the server on 127.0.0.1 leaves
    // a partial TCP warning, never a failure.
    let server = ok_http_server().await;
    let report =
        evenkeel_diagnose::Diagnose::builder(format!("http://localhost:{}/", server.port()))
            .env(EnvMap::new())
            .build()
            .unwrap()
            .run()
            .await;
    assert_eq!(
        report.dns.answers[0].source,
        DnsSource::System,
        "{}",
        show(&report)
    );
    assert!(
        report.dns.answers[0]
            .outcome
            .addresses()
            .any(|ip| ip.is_loopback())
    );
    assert!(report.ok(), "{}", show(&report));
}

// -------------------------------------------------------------- proxy ---

#[tokio::test]
async fn checks_pass_through_a_connect_proxy() {
    let ca = TestCa::new("evenkeel test CA");
    let server = tls_server(ca.valid_leaf(&["localhost"])).await;
    let (proxy, seen) = connect_proxy(ProxyMode::Tunnel).await;
    let report = diagnose(&format!("https://localhost:{}/v1/models", server.port()))
        .ca_pem(ca.pem.clone())
        .proxy(format!("http://{proxy}"))
        .build()
        .unwrap()
        .run()
        .await;
    assert!(report.ok(), "{}", show(&report));
    let p = report.proxy.as_ref().unwrap();
    assert_eq!(p.status, Status::Pass);
    assert_eq!(p.source, ProxySource::Argument);
    assert_eq!(p.connect.as_ref().unwrap().addr, proxy);
    let tunnel = report.tcp.tunnel.as_ref().unwrap();
    assert_eq!(tunnel.status, Some(200));
    assert_eq!(tunnel.authority, format!("localhost:{}", server.port()));
    assert_eq!(
        *seen.lock().unwrap(),
        [format!("localhost:{}", server.port())]
    );
    assert_eq!(report.tls.as_ref().unwrap().status, Status::Pass);
    assert_eq!(report.http.status_code, Some(200));
}

#[tokio::test]
async fn a_dead_proxy_is_named_by_the_verdict() {
    let dead = closed_port().await;
    let report = diagnose("https://localhost:443/")
        .proxy(format!("http://127.0.0.1:{dead}"))
        .build()
        .unwrap()
        .run()
        .await;
    let p = report.proxy.as_ref().unwrap();
    assert_eq!(p.status, Status::Fail, "{}", show(&report));
    assert_eq!(cause(&report, Layer::Proxy), Some(Cause::ProxyRefused));
    assert_eq!(report.tcp.status, Status::Skip);
    assert_eq!(report.tls.as_ref().unwrap().status, Status::Skip);
    assert_eq!(report.http.status, Status::Skip);
    assert_eq!(report.failed_layer(), Some(Layer::Proxy));
    assert!(
        report.verdict.text.starts_with("verdict: proxy fails"),
        "{}",
        report.verdict.text
    );
    assert!(report.verdict.text.contains(&format!("127.0.0.1:{dead}")));
}

#[tokio::test]
async fn the_proxy_comes_from_the_environment_unless_no_proxy_matches() {
    let server = ok_http_server().await;
    let (proxy, seen) = connect_proxy(ProxyMode::Tunnel).await;
    let url = format!("http://localhost:{}/", server.port());
    let env = EnvMap::new().with("HTTP_PROXY", format!("http://user:secret@{proxy}"));

    let report = diagnose(&url).env(env.clone()).build().unwrap().run().await;
    assert!(report.ok(), "{}", show(&report));
    let p = report.proxy.as_ref().unwrap();
    assert_eq!(p.source, ProxySource::Env("HTTP_PROXY".into()));
    assert_eq!(p.url, format!("http://user:***@{proxy}"));
    assert!(!show(&report).contains("secret"));
    assert!(!report.to_json().to_string().contains("secret"));
    assert_eq!(seen.lock().unwrap().len(), 1);

    let report = diagnose(&url)
        .env(env.with("NO_PROXY", "example.com,localhost"))
        .build()
        .unwrap()
        .run()
        .await;
    assert!(report.ok(), "{}", show(&report));
    let p = report.proxy.as_ref().unwrap();
    assert_eq!(p.status, Status::Skip);
    assert_eq!(p.bypassed_by.as_deref(), Some("localhost"));
    assert!(report.tcp.tunnel.is_none());
    assert_eq!(report.tcp.used, Some(server));
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "NO_PROXY went around the proxy"
    );
}

#[tokio::test]
async fn a_proxy_that_wants_credentials_gets_them_from_the_url() {
    let server = ok_http_server().await;
    // base64("user:p@ss")
    let (proxy, _) = connect_proxy(ProxyMode::RequireAuth("Basic dXNlcjpwQHNz".into())).await;
    let url = format!("http://localhost:{}/", server.port());

    let report = diagnose(&url)
        .proxy(format!("http://{proxy}"))
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(
        cause(&report, Layer::Proxy),
        Some(Cause::ProxyAuth),
        "{}",
        show(&report)
    );
    assert!(
        report
            .verdict
            .text
            .contains("http://user:password@host:port")
    );

    let report = diagnose(&url)
        .proxy(format!("http://user:p%40ss@{proxy}"))
        .build()
        .unwrap()
        .run()
        .await;
    assert!(report.ok(), "{}", show(&report));
}

#[tokio::test]
async fn a_proxy_that_cannot_reach_the_target_fails_tcp() {
    let (proxy, _) = connect_proxy(ProxyMode::Answer("HTTP/1.1 502 Bad Gateway")).await;
    let report = diagnose("https://localhost:443/")
        .proxy(format!("http://{proxy}"))
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(
        report.proxy.as_ref().unwrap().status,
        Status::Pass,
        "{}",
        show(&report)
    );
    assert_eq!(cause(&report, Layer::Tcp), Some(Cause::TunnelFailed));
    assert_eq!(report.failed_layer(), Some(Layer::Tcp));
    let (proxy, _) = connect_proxy(ProxyMode::Answer("HTTP/1.1 403 Forbidden")).await;
    let report = diagnose("https://localhost:443/")
        .proxy(format!("http://{proxy}"))
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(
        cause(&report, Layer::Proxy),
        Some(Cause::ProxyDenied),
        "{}",
        show(&report)
    );
}

#[tokio::test]
async fn an_unsupported_proxy_in_the_environment_fails_the_proxy_layer() {
    let report = diagnose("https://localhost:443/")
        .env(EnvMap::new().with("https_proxy", "socks5://127.0.0.1:1080"))
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(
        cause(&report, Layer::Proxy),
        Some(Cause::ProxyUnsupported),
        "{}",
        show(&report)
    );
    assert_eq!(report.failed_layer(), Some(Layer::Proxy));
    assert_eq!(report.tcp.status, Status::Skip);
}

// ------------------------------------------------------------ renders ---

#[tokio::test]
async fn the_json_has_every_layer_ok_and_the_verdict() {
    let port = closed_port().await;
    let report = diagnose(&format!("https://localhost:{port}/"))
        .build()
        .unwrap()
        .run()
        .await;
    let json = report.to_json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["layers"]["dns"]["status"], "pass");
    assert_eq!(json["layers"]["dns"]["answers"][0]["resolver"], "override");
    assert_eq!(json["layers"]["tcp"]["status"], "fail");
    assert_eq!(json["layers"]["tcp"]["finding"]["cause"], "tcp_refused");
    assert_eq!(json["layers"]["tcp"]["attempts"][0]["outcome"], "refused");
    assert_eq!(json["layers"]["tls"]["status"], "skip");
    assert_eq!(json["layers"]["http"]["status"], "skip");
    assert!(json["layers"].get("proxy").is_none());
    assert_eq!(json["verdict"]["layer"], "tcp");
    assert_eq!(json["verdict"]["cause"], "tcp_refused");
    assert_eq!(json["verdict"]["text"], report.verdict.text.as_str());
}

#[tokio::test]
async fn the_table_ends_with_the_verdict_in_unicode_or_ascii() {
    let port = closed_port().await;
    let report = diagnose(&format!("https://localhost:{port}/"))
        .build()
        .unwrap()
        .run()
        .await;
    let table = report.table().to_string();
    assert!(table.lines().any(|l| l.starts_with("✓ dns")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("✗ tcp")), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("– tls   skipped: TCP failed")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .last()
            .unwrap()
            .starts_with("verdict: TCP fails")
    );

    let ascii = report
        .table()
        .charset(evenkeel_diagnose::Charset::Ascii)
        .to_string();
    assert!(ascii.is_ascii(), "{ascii}");
    assert!(ascii.lines().any(|l| l.starts_with("ok   dns")), "{ascii}");
    assert!(ascii.lines().any(|l| l.starts_with("FAIL tcp")), "{ascii}");
    assert!(ascii.lines().any(|l| l.starts_with("skip tls")), "{ascii}");
    assert!(
        ascii
            .lines()
            .last()
            .unwrap()
            .starts_with("verdict: TCP fails")
    );
}
