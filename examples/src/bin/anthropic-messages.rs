//! A client for an Anthropic-style Messages API that paces itself by the
//! server's request *and token* quotas, keyed by API key.
//!
//! ```sh
//! cargo run -p evenkeel-examples --bin anthropic-messages
//! ```
//!
//! The stack, built layer by layer with `evenkeel::ServiceBuilderExt`:
//!
//! ```text
//! EstimateLayer(Llm)       input tokens from the JSON body, output tokens from max_tokens
//!  → retry                 the server's waits, a 60 s deadline, 4 attempts
//!   → base URL             points the request at the API
//!    → quota (x-api-key)   learns requests and input-token quotas from the
//!                          anthropic-ratelimit-* headers and paces requests
//!     → adaptive limit     AIMD concurrency (a stream holds its permit to its end)
//!      → sse               a streamed answer is judged at its first event
//!       → hyper-util client (HTTPS with rustls, or HTTP)
//! ```
//!
//! By default it talks to a simulated Anthropic API on loopback with 10
//! requests per second and 4 000 input tokens per second (bursts of 8 000),
//! and sends 40 prompts of about 500 tokens from 8 callers: the quota layer
//! spreads them so the token quota is met instead of answered with 429s.
//! It prints each answer, the quota waits and retries, the quotas it
//! learned, and what the simulated API counted; it exits after about ten
//! seconds.
//!
//! With `--base-url https://api.anthropic.com` it sends the same requests
//! (fewer with `--requests`) to a real API, with the key from
//! `ANTHROPIC_API_KEY`, and `--model` to choose the model. Keys are masked
//! in what it prints.
//!
//! With `--stream` the answers are streamed (`"stream": true`); the
//! simulated API then sends an `overloaded_error` event first in a fifth of
//! its streams, which are retried and never printed, and one after some
//! content in a twentieth, whose bodies end with a `StreamError`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use evenkeel::ServiceBuilderExt;
use evenkeel::core::BoxError;
use evenkeel::core::body::ReplayBody;
use evenkeel::core::event::Event;
use evenkeel::core::sse::SseLayer;
use evenkeel::failover::BaseUrlLayer;
use evenkeel::limit::{Aimd, LimitLayer};
use evenkeel::quota::QuotaLayer;
use evenkeel::quota::cost::{EstimateLayer, Llm};
use evenkeel::quota::key::Header;
use evenkeel::retry::{RetryInfo, RetryLayer};
use evenkeel_sim::{Dialect, Sim, SimServer, Streaming};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

#[derive(Debug, Parser)]
#[command(about = "An Anthropic-style Messages client with quota pacing")]
struct Args {
    /// The API's base URL (default: a simulated Anthropic API on loopback).
    #[arg(long)]
    base_url: Option<String>,
    /// The API key (default: `ANTHROPIC_API_KEY`; a dummy for the simulator).
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The model to ask.
    #[arg(long, default_value = "claude-sonnet-4-5")]
    model: String,
    /// Requests to send.
    #[arg(long, default_value_t = 40)]
    requests: usize,
    /// Concurrent callers.
    #[arg(long, default_value_t = 8)]
    callers: usize,
    /// `max_tokens` of each request.
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    /// Ask for streamed answers (`"stream": true`). The simulator then
    /// sends an `overloaded_error` event first in a fifth of its streams
    /// (retried, never seen) and one after some content in a twentieth
    /// (the body ends with a `StreamError`).
    #[arg(long)]
    stream: bool,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let sim = match &args.base_url {
        Some(_) => None,
        None => Some(start_sim(args.stream).await?),
    };
    let base_url = match (&args.base_url, &sim) {
        (Some(url), _) => url.clone(),
        (None, Some(sim)) => sim.url(),
        (None, None) => unreachable!("the sim runs when no base URL is given"),
    };
    let api_key = match (&args.api_key, &sim) {
        (Some(key), _) => key.clone(),
        (None, Some(_)) => "sk-ant-sim-0000".to_owned(),
        (None, None) => return Err("set ANTHROPIC_API_KEY (or --api-key) for a real API".into()),
    };

    let start = Instant::now();
    let quota_waits = Arc::new(AtomicU64::new(0));
    let waits = quota_waits.clone();
    let on_event = move |event: &Event<'_>| {
        let at = start.elapsed().as_secs_f64();
        match event {
            Event::Retry {
                attempt,
                outcome,
                wait,
                ..
            } => println!("{at:>7.3}s  retry: attempt {attempt} after {outcome}, waiting {wait:?}"),
            Event::QuotaWait {
                key,
                resource,
                wait,
            } => {
                waits.fetch_add(1, Ordering::Relaxed);
                if *wait >= Duration::from_millis(250) {
                    println!(
                        "{at:>7.3}s  quota: {} waits {wait:?} for {resource}",
                        mask(key)
                    );
                }
            }
            Event::QuotaRejected { key, resource, .. } => {
                println!("{at:>7.3}s  quota: {} out of {resource}", mask(key));
            }
            _ => {}
        }
    };

    let retry = RetryLayer::builder()
        .max_attempts(4)
        .deadline(Duration::from_secs(60))
        .attempt_timeout(Duration::from_secs(30))
        .on_event(on_event.clone())
        .build()?;
    let quota = QuotaLayer::builder()
        .key(Header::new("x-api-key"))
        .max_wait(Duration::from_secs(30))
        .on_event(on_event)
        .build()?;
    let quotas = quota.handle();
    let limit = LimitLayer::adaptive(
        Aimd::builder()
            .initial_limit(8)
            .min_limit(1)
            .max_limit(64)
            .build()?,
    )
    .name("anthropic")
    .build()?;

    let client = ServiceBuilder::new()
        // Estimate outside the retry layer, where the body is still whole.
        .layer(EstimateLayer::new(Llm::new()))
        .server_aware_retry(retry)
        .base_url(BaseUrlLayer::new(&base_url)?)
        .quota(quota)
        .concurrency(limit)
        // Streamed answers are judged at their first event: an error event
        // before content is retried like the status it stands for.
        .layer(SseLayer::new())
        .service(https_client());

    let next = Arc::new(AtomicU64::new(0));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..args.callers.max(1) {
        let (client, next, key) = (client.clone(), next.clone(), api_key.clone());
        let (model, max_tokens, requests) = (args.model.clone(), args.max_tokens, args.requests);
        let stream = args.stream;
        callers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= requests {
                    return Ok::<_, BoxError>(());
                }
                let body = serde_json::json!({
                    "model": model,
                    "max_tokens": max_tokens,
                    "messages": [{"role": "user", "content": prompt(i)}],
                    "stream": stream,
                });
                let request = http::Request::post("/v1/messages")
                    .header("x-api-key", &key)
                    .header("anthropic-version", "2023-06-01")
                    .header("content-type", "application/json")
                    .header("x-request-id", format!("msg-{i}"))
                    .body(Full::new(Bytes::from(serde_json::to_vec(&body)?)))?;
                let at = || start.elapsed().as_secs_f64();
                match client.clone().oneshot(request).await {
                    Ok(response) => {
                        let info = RetryInfo::of(&response);
                        let status = response.status();
                        let body = match response.into_body().collect().await {
                            Ok(body) => body.to_bytes(),
                            Err(err) => {
                                println!("{:>7.3}s  msg-{i}: {status}, then: {err}", at());
                                continue;
                            }
                        };
                        let text = String::from_utf8_lossy(&body);
                        let text: String = if stream {
                            let events = text.matches("event: ").count();
                            format!("a stream of {events} events")
                        } else {
                            text.chars().take(60).collect()
                        };
                        println!(
                            "{:>7.3}s  msg-{i}: {status} after {} attempt(s): {text}",
                            at(),
                            info.attempts
                        );
                    }
                    Err(err) => println!("{:>7.3}s  msg-{i}: failed: {err}", at()),
                }
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done??;
    }

    println!(
        "\ndone in {:.2}s; {} requests waited for quota",
        start.elapsed().as_secs_f64(),
        quota_waits.load(Ordering::Relaxed)
    );
    for key in quotas.snapshot() {
        println!(
            "key {}: {} admitted, {} waited ({:.2?} in total), {} cooldowns",
            mask(&key.key),
            key.admitted,
            key.waits,
            key.waited,
            key.cooldowns
        );
        for r in &key.resources {
            println!(
                "  {:<13} limit {:>6}, ~{} left, refill {}",
                r.resource.to_string(),
                r.limit.map_or("?".into(), |l| l.to_string()),
                r.remaining,
                r.rate.map_or("unknown".into(), |r| format!("{r:.0}/s"))
            );
        }
    }
    if let Some(sim) = sim {
        let stats = sim.stats();
        println!(
            "simulated API: {} attempts, {} answered 200, {} answered 429",
            stats.attempts(),
            stats.successes(),
            stats.status_count(http::StatusCode::TOO_MANY_REQUESTS)
        );
        sim.shutdown().await;
    }
    Ok(())
}

/// A hyper-util client for HTTPS (rustls with its `ring` provider, named
/// so that no process default is needed; web PKI roots) and plain HTTP, for
/// the request bodies the retry layer hands down.
fn https_client() -> Client<hyper_rustls::HttpsConnector<HttpConnector>, ReplayBody<Full<Bytes>>> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)
        .expect("rustls's ring provider supports TLS 1.2 and 1.3")
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(https)
}

/// A simulated Anthropic API: 10 requests per second (bursts of 10), 4 000
/// input tokens per second (bursts of 8 000, charged at a quarter of the
/// body's bytes), answers in 200 ms. With `stream`, a fifth of its streams
/// send an `overloaded_error` event first and a twentieth one after four
/// events.
async fn start_sim(stream: bool) -> Result<SimServer, BoxError> {
    let streaming = if stream {
        Streaming::new().error_first(0.2).error_after(0.05, 4)
    } else {
        Streaming::new()
    };
    Ok(Sim::builder()
        .streaming(streaming)
        .requests(10.0, 10)
        .input_tokens(4_000.0, 8_000)
        .dialect(Dialect::Anthropic)
        .latency(Duration::from_millis(200))
        .seed(9)
        .build()?
        .serve("127.0.0.1:0".parse()?)
        .await?)
}

/// A prompt of about 2 000 bytes (some 500 input tokens).
fn prompt(i: usize) -> String {
    let mut text = format!("Request {i}. Summarise the following notes in one line.\n");
    while text.len() < 2_000 {
        text.push_str("The quota layer reads rate-limit headers and paces requests. ");
    }
    text
}

/// An API key as it may be printed: its last four characters.
fn mask(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}
