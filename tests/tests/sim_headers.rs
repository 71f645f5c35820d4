//! The sim's rate-limit headers, read back over loopback by
//! `evenkeel_headers`: for every dialect, over HTTP/1.1 and HTTP/2, what the
//! parser reads (limit, remaining, reset, Retry-After) is what the sim's
//! model holds, up to the rounding each dialect does.

use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::clock::system_now;
use evenkeel_headers::{Pushback, Quota, Resource, rate_limits, retry_after};
use evenkeel_sim::{Dialect, QuotaKind, QuotaState, Sim, SimServer, TokenCost};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Requests: 5 at most, one back every 100 s. Tokens: 1000 at most, one back
/// every 10 s. Both refill so slowly that a test on a busy machine sees the
/// same whole numbers the sim wrote.
const REQUEST_RATE: f64 = 0.01;
const REQUEST_BURST: u64 = 5;
const TOKEN_RATE: f64 = 0.1;
const TOKEN_BURST: u64 = 1_000;

/// How far a reset read back may be from the model's: the dialects round up
/// to the second, and the test takes some time between the two readings
/// (generous: a loaded machine may stall; the values compared are minutes).
const SLACK: Duration = Duration::from_secs(3);

async fn start(dialect: Dialect) -> SimServer {
    Sim::builder()
        .latency(Duration::ZERO)
        .requests(REQUEST_RATE, REQUEST_BURST)
        .tokens(TOKEN_RATE, TOKEN_BURST, TokenCost::default_header())
        .dialect(dialect)
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn clients() -> [(&'static str, HttpClient); 2] {
    [
        (
            "HTTP/1.1",
            Client::builder(TokioExecutor::new()).build_http(),
        ),
        (
            "HTTP/2",
            Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
        ),
    ]
}

async fn spend(client: &HttpClient, server: &SimServer, tokens: u64) -> (StatusCode, HeaderMap) {
    let req = Request::post(format!("{}/v1/messages", server.url()))
        .header("x-sim-tokens", tokens)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status();
    let (parts, body) = res.into_parts();
    body.collect().await.unwrap();
    (status, parts.headers)
}

fn close(a: Duration, b: Duration) -> bool {
    a.abs_diff(b) <= SLACK
}

/// `read` says what `model` holds.
fn assert_agrees(read: &Quota, model: &QuotaState, what: &str) {
    assert_eq!(read.limit, Some(model.limit), "{what}: limit");
    assert_eq!(read.remaining, Some(model.remaining), "{what}: remaining");
    let reset = read.reset_after.expect("a reset");
    assert!(
        close(reset, model.full_in),
        "{what}: reset read {reset:?}, model full in {:?}",
        model.full_in
    );
}

/// Which of the model's quotas each dialect reports.
fn reported(dialect: Dialect) -> &'static [QuotaKind] {
    match dialect {
        Dialect::GitHub => &[QuotaKind::Requests],
        Dialect::None => &[],
        _ => &[QuotaKind::Requests, QuotaKind::Tokens],
    }
}

#[tokio::test]
async fn every_dialect_reads_back_what_the_model_holds() {
    for dialect in Dialect::ALL {
        for (version, client) in clients() {
            let what = format!("{dialect} over {version}");
            let server = start(dialect).await;
            let handle = server.handle();

            // Three requests of 100 tokens.
            let mut headers = HeaderMap::new();
            for _ in 0..3 {
                let (status, h) = spend(&client, &server, 100).await;
                assert_eq!(status, StatusCode::OK, "{what}");
                headers = h;
            }
            let limits = rate_limits(&headers, system_now());
            let requests = handle.quota(QuotaKind::Requests).unwrap();
            let tokens = handle.quota(QuotaKind::Tokens).unwrap();
            assert_eq!(requests.remaining, REQUEST_BURST - 3);
            assert_eq!(tokens.remaining, TOKEN_BURST - 300);
            assert_eq!(limits.len(), reported(dialect).len(), "{what}: {limits:?}");
            for &kind in reported(dialect) {
                let resource = Resource::from(kind);
                let model = handle.quota(kind).unwrap();
                let read = limits
                    .get(&resource)
                    .unwrap_or_else(|| panic!("{what}: no {resource} quota in {headers:?}"));
                assert_agrees(read, &model, &format!("{what}, {resource}"));
            }
            if dialect == Dialect::Ietf {
                let read = limits.get(&Resource::Requests).unwrap();
                assert_eq!(
                    read.window,
                    Some(Duration::from_secs(500)),
                    "{what}: window = burst / rate"
                );
            }

            // Use up the request quota: the next answer is a 429 whose
            // Retry-After is the model's wait for one request.
            for _ in 3..REQUEST_BURST {
                assert_eq!(spend(&client, &server, 0).await.0, StatusCode::OK, "{what}");
            }
            let (status, headers) = spend(&client, &server, 0).await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{what}");
            let now = system_now();
            let model = handle.quota(QuotaKind::Requests).unwrap();
            assert_eq!(model.remaining, 0);
            // full_in = (burst - tokens) / rate, so the wait for one token is
            // full_in - (burst - 1) / rate.
            let one_back =
                model.full_in - Duration::from_secs_f64((REQUEST_BURST - 1) as f64 / REQUEST_RATE);
            match retry_after(&headers, now) {
                Some(Pushback::After(wait)) => {
                    assert!(wait >= Duration::from_secs(1), "{what}: never 0");
                    assert_eq!(wait.subsec_nanos(), 0, "{what}: whole seconds");
                    assert!(
                        close(wait, one_back),
                        "{what}: Retry-After {wait:?}, model {one_back:?}"
                    );
                }
                other => panic!("{what}: Retry-After read as {other:?}"),
            }
            let limits = rate_limits(&headers, now);
            if let Some(read) = limits.get(&Resource::Requests) {
                assert_agrees(read, &model, &format!("{what}, 429"));
            }
            server.shutdown().await;
        }
    }
}

#[tokio::test]
async fn anthropic_input_and_output_token_quotas_read_back() {
    let server = Sim::builder()
        .latency(Duration::ZERO)
        .input_tokens(TOKEN_RATE, TOKEN_BURST)
        .token_quota(evenkeel_sim::TokenQuota::output_tokens(
            TOKEN_RATE,
            TOKEN_BURST / 2,
            TokenCost::Fixed(64),
        ))
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let handle = server.handle();
    let [(_, client), _] = clients();
    let req = Request::post(server.url())
        .body(Full::new(Bytes::from(vec![b'x'; 4_000])))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let limits = rate_limits(res.headers(), system_now());
    for kind in [QuotaKind::InputTokens, QuotaKind::OutputTokens] {
        let model = handle.quota(kind).unwrap();
        let read = limits.get(&Resource::from(kind)).unwrap();
        assert_agrees(read, &model, kind.as_str());
    }
    assert_eq!(handle.quota(QuotaKind::InputTokens).unwrap().remaining, 0);
    // The combined `tokens` family reports the tightest of the two.
    let combined = limits.get(&Resource::Tokens).unwrap();
    assert_eq!(combined.remaining, Some(0));
    server.shutdown().await;
}
