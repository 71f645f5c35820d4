//! An axum gateway in front of an LLM API: the preset client stack on the
//! way out, a concurrency limit in respond mode on the way in, Prometheus
//! metrics on `/metrics`.
//!
//! ```sh
//! cargo run -p evenkeel-examples --bin axum-gateway
//! ```
//!
//! `POST /v1/messages` is forwarded to the upstream through
//! `evenkeel::Preset` (retry with the server's waits, quota pacing, an
//! adaptive limit, metrics). The route itself is protected by
//! `evenkeel::limit::LimitLayer` in respond mode: at most `--limit`
//! requests at once, `--queue` more waiting up to 500 ms, and beyond that a
//! `503 Service Unavailable` with `Retry-After: 1`, so the router keeps its
//! `Infallible` error type and needs no `HandleErrorLayer`. Errors of the
//! client stack become answers too: a local quota wait too long is a `429`
//! with `Retry-After`, a spent deadline a `504`, anything else a `502`.
//!
//! By default the upstream is a simulated Anthropic-style API on loopback;
//! the gateway starts on a free loopback port, sends itself three bursts of
//! 20 requests, prints how each burst was answered (some `503`s from its
//! own limiter) and an excerpt of `/metrics`, and exits.
//!
//! Flags:
//!
//! - `--serve`: keep serving (on `--listen`, default `127.0.0.1:3000`)
//!   until Ctrl-C, instead of the self-test;
//! - `--upstream URL`: a real upstream base URL (`https://…` works);
//! - `--limit N`, `--queue N`, `--bursts N`, `--burst-size N`.
//!
//! ```sh
//! cargo run -p evenkeel-examples --bin axum-gateway -- --serve &
//! curl -s localhost:3000/v1/messages -H 'content-type: application/json' \
//!     -d '{"max_tokens":16,"messages":[{"role":"user","content":"Hi"}]}'
//! curl -s localhost:3000/metrics | grep ^evenkeel_
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use clap::Parser;
use evenkeel::core::{BoxError, FailureKind, Outcome, classify_error};
use evenkeel::limit::{LimitLayer, Respond};
use evenkeel::metrics::{MetricsListener, Naming};
use evenkeel::{HttpsClient, Preset};
use evenkeel_sim::{Dialect, Faults, Sim, SimServer};
use http::{HeaderName, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tower::ServiceExt;

#[derive(Debug, Parser)]
#[command(about = "An axum gateway with the evenkeel preset and a server-side limit")]
struct Args {
    /// Keep serving until Ctrl-C instead of running the self-test.
    #[arg(long)]
    serve: bool,
    /// Where to listen with `--serve`.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The upstream's base URL (default: a simulated API on loopback).
    #[arg(long)]
    upstream: Option<String>,
    /// Requests the gateway serves at once.
    #[arg(long, default_value_t = 4)]
    limit: usize,
    /// Requests that may wait for a slot (up to 500 ms) beyond the limit.
    #[arg(long, default_value_t = 4)]
    queue: usize,
    /// Self-test: bursts to send.
    #[arg(long, default_value_t = 3)]
    bursts: usize,
    /// Self-test: requests per burst, all at once.
    #[arg(long, default_value_t = 20)]
    burst_size: usize,
}

/// The largest request body the gateway forwards.
const MAX_BODY: usize = 1 << 20;

/// Request headers passed on to the upstream.
const FORWARDED: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("x-request-id"),
];

/// Response headers that describe one connection, not the message: not
/// passed back.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
    header::TRAILER,
];

#[derive(Clone)]
struct Gateway {
    client: Preset<HttpsClient>,
    metrics: PrometheusHandle,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let metrics = install_prometheus()?;

    let sim = match &args.upstream {
        Some(_) => None,
        None => Some(start_sim().await?),
    };
    let upstream = match (&args.upstream, &sim) {
        (Some(url), _) => url.clone(),
        (None, Some(sim)) => sim.url(),
        (None, None) => unreachable!("the sim runs when no upstream is given"),
    };

    let client = Preset::builder()
        .named_endpoint("upstream", &upstream)
        .deadline(Duration::from_secs(20))
        .build_https()?;
    let app = app(
        Gateway {
            client,
            metrics: metrics.clone(),
        },
        args.limit,
        args.queue,
    )?;

    if args.serve {
        let listener = TcpListener::bind(args.listen).await?;
        println!(
            "gateway on http://{} -> {upstream}; Ctrl-C to stop",
            listener.local_addr()?
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        return Ok(());
    }

    // Self-test: serve on a free loopback port, send bursts at it, print.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );
    println!(
        "gateway on {base} -> {upstream} (limit {}, queue {})",
        args.limit, args.queue
    );
    self_test(&base, args.bursts, args.burst_size).await?;

    let text = get_text(&format!("{base}/metrics")).await?;
    println!("\n/metrics (excerpt):");
    for line in text.lines().filter(|l| {
        l.starts_with("evenkeel_limiter_")
            || l.starts_with("evenkeel_http_client_requests_total")
            || l.starts_with("evenkeel_retry")
    }) {
        println!("  {line}");
    }

    let _ = stop.send(());
    server.await??;
    if let Some(sim) = sim {
        println!(
            "\nupstream saw {} attempts, {} answered 200",
            sim.stats().attempts(),
            sim.stats().successes()
        );
        sim.shutdown().await;
    }
    Ok(())
}

/// The gateway's router: `/v1/messages` limited in respond mode, and
/// `/metrics` outside the limit.
fn app(gateway: Gateway, limit: usize, queue: usize) -> Result<Router, BoxError> {
    let limit = LimitLayer::fixed(limit)
        .max_queue(queue)
        .max_wait(Duration::from_millis(500))
        .name("gateway")
        .events(MetricsListener::new().events())
        .respond(Respond::http().retry_after(Some(Duration::from_secs(1))))
        .build()?;
    Ok(Router::new()
        .route("/v1/messages", post(forward))
        // Only the routes above are limited; the router's error type stays
        // `Infallible`.
        .route_layer(limit)
        .route("/metrics", get(render_metrics))
        .with_state(gateway))
}

/// Forwards the request through the preset and the upstream's answer back.
async fn forward(State(gateway): State<Gateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let mut upstream = http::Request::post("/v1/messages")
        .body(Full::new(body))
        .expect("a valid request");
    for name in FORWARDED {
        if let Some(value) = parts.headers.get(&name) {
            upstream.headers_mut().insert(name, value.clone());
        }
    }
    match gateway.client.oneshot(upstream).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            for name in HOP_BY_HOP {
                parts.headers.remove(name);
            }
            Response::from_parts(parts, Body::new(body))
        }
        Err(err) => error_response(&err),
    }
}

/// What the caller gets when the client stack gives up without an answer.
fn error_response(err: &BoxError) -> Response {
    match classify_error(&**err) {
        Outcome::Failed(failure) if failure.kind == FailureKind::LocalQuota => {
            let secs = failure.wait.map_or(1, |w| w.as_secs().max(1));
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, HeaderValue::from(secs))],
                err.to_string(),
            )
                .into_response()
        }
        Outcome::Failed(failure) if failure.kind == FailureKind::Deadline => {
            (StatusCode::GATEWAY_TIMEOUT, err.to_string()).into_response()
        }
        _ => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

async fn render_metrics(State(gateway): State<Gateway>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        gateway.metrics.render(),
    )
}

/// A Prometheus recorder with OpenTelemetry-style names and the advised
/// histogram buckets, installed as the global recorder.
fn install_prometheus() -> Result<PrometheusHandle, BoxError> {
    let mut builder = PrometheusBuilder::new().with_recommended_naming(true);
    for (name, buckets) in Naming::OPEN_TELEMETRY.histogram_buckets() {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)?;
    }
    Ok(builder.install_recorder()?)
}

/// A simulated Anthropic-style API: 100 requests per second (bursts of
/// 40), answers in 150 ms, 5 % `529 overloaded`.
async fn start_sim() -> Result<SimServer, BoxError> {
    Ok(Sim::builder()
        .requests(100.0, 40)
        .dialect(Dialect::Anthropic)
        .latency(Duration::from_millis(150))
        .faults(Faults::none().overloaded(0.05))
        .seed(5)
        .build()?
        .serve("127.0.0.1:0".parse()?)
        .await?)
}

/// Sends `bursts` bursts of `size` requests at once to the gateway, one
/// second apart, and prints how each was answered.
async fn self_test(base: &str, bursts: usize, size: usize) -> Result<(), BoxError> {
    // A plain client: the gateway's 503s reach this loop as they are.
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let uri: http::Uri = format!("{base}/v1/messages").parse()?;
    for burst in 1..=bursts {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..size {
            let request = http::Request::post(uri.clone())
                .header("content-type", "application/json")
                .header("x-request-id", format!("burst{burst}-{i}"))
                .body(Full::new(Bytes::from_static(
                    br#"{"model":"sim","max_tokens":16,"messages":[{"role":"user","content":"Hi"}]}"#,
                )))?;
            let client = client.clone();
            tasks.spawn(async move {
                let response = client.request(request).await?;
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                response.into_body().collect().await?;
                Ok::<_, BoxError>((status, retry_after))
            });
        }
        let mut answers = BTreeMap::<String, usize>::new();
        while let Some(done) = tasks.join_next().await {
            let (status, retry_after) = done??;
            let key = match retry_after {
                Some(secs) => format!("{status} (Retry-After: {secs})"),
                None => status.to_string(),
            };
            *answers.entry(key).or_default() += 1;
        }
        let summary: Vec<String> = answers.iter().map(|(k, n)| format!("{n} x {k}")).collect();
        println!("burst {burst}: {}", summary.join(", "));
        if burst < bursts {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(())
}

/// GETs `url` and returns its body as text.
async fn get_text(url: &str) -> Result<String, BoxError> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client.get(url.parse()?).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}
