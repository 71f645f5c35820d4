//! A tonic client through evenkeel's retry and limit layers, against a
//! gRPC server that pushes back.
//!
//! ```sh
//! cargo run -p evenkeel-examples --bin tonic-client
//! ```
//!
//! The service is the standard gRPC health service (`tonic-health`), so no
//! code generation and no `protoc` are needed. By default the example
//! starts a tonic server on loopback whose health service is wrapped in:
//!
//! - a *flaky* middleware that answers some calls itself with a
//!   trailers-only gRPC error: `RESOURCE_EXHAUSTED` with
//!   `grpc-retry-pushback-ms: 150` (15 %), `UNAVAILABLE` (10 %), and takes
//!   20 ms over the rest;
//! - evenkeel's limiter in respond mode: at most 4 calls at once, beyond
//!   that `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms: 50`, so the
//!   service keeps tonic's `Infallible` error type.
//!
//! The client is a `tonic::transport::Channel` under
//! `evenkeel::retry::RetryLayer` and an adaptive `LimitLayer`, both with
//! `GrpcClassifier`; the generated-free `HealthClient` calls through them.
//! `RESOURCE_EXHAUSTED` is retried after the server's pushback (any
//! method); `UNAVAILABLE` carries no pushback, so a retry policy allows it
//! for `Check`, which is a read (the role of `retryableStatusCodes` in a
//! gRPC service config). Each retry is printed, then each call's result and
//! a summary. It exits after a few seconds.
//!
//! Flags: `--server URL` for a real gRPC server with the health service
//! (no in-process server then), `--calls N`, `--callers N`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use clap::Parser;
use evenkeel::core::body::ReplayBody;
use evenkeel::core::event::Event;
use evenkeel::core::rng::Jitter;
use evenkeel::core::{BoxError, GrpcClassifier, Outcome};
use evenkeel::limit::{Aimd, LimitLayer, Respond};
use evenkeel::retry::{DefaultPolicy, Policy, RetryInfo, RetryLayer, policy_fn};
use http::HeaderValue;
use tokio::time::Instant;
use tonic::service::LayerExt;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::{Layer, Service, ServiceBuilder};

#[derive(Debug, Parser)]
#[command(about = "A tonic client through evenkeel's retry and limit layers")]
struct Args {
    /// A gRPC server with the health service (default: one on loopback).
    #[arg(long)]
    server: Option<String>,
    /// Calls to make.
    #[arg(long, default_value_t = 40)]
    calls: usize,
    /// Concurrent callers.
    #[arg(long, default_value_t = 8)]
    callers: usize,
}

/// The health service's `Check` method.
const CHECK: &str = "/grpc.health.v1.Health/Check";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let url = match &args.server {
        Some(url) => url.clone(),
        None => start_server().await?,
    };

    let start = Instant::now();
    // RESOURCE_EXHAUSTED is retried by the default policy; UNAVAILABLE
    // without a pushback only for `Check`, a read.
    let policy = policy_fn(|outcome: &Outcome, request: &http::request::Parts| {
        DefaultPolicy.may_retry(outcome, request)
            || (request.uri.path() == CHECK && matches!(outcome, Outcome::Overloaded(_)))
    });
    let retry = RetryLayer::builder()
        .classifier(GrpcClassifier::new())
        .policy(policy)
        .max_attempts(4)
        .deadline(Duration::from_secs(10))
        .jitter(Jitter::seeded(3))
        .on_event(move |event: &Event<'_>| print_event(start, event))
        .build()?;
    let aimd = Aimd::builder()
        .initial_limit(8)
        .min_limit(1)
        .max_limit(32)
        .build()?;
    let limit = LimitLayer::adaptive(aimd)
        .name("health")
        .classifier(GrpcClassifier::new())
        .build()?;
    let limits = limit.handle();

    let channel = Channel::from_shared(url.clone())?.connect().await?;
    let stack = ServiceBuilder::new()
        .layer(retry)
        .layer(limit)
        // The retry layer replays bodies; the channel wants tonic's body.
        .map_request(|r: http::Request<ReplayBody<tonic::body::Body>>| {
            r.map(tonic::body::Body::new)
        })
        .service(channel);
    let client = HealthClient::new(stack);
    println!("calling {url}");

    let results = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..args.callers.max(1) {
        let (mut client, results, next) = (client.clone(), results.clone(), next.clone());
        let calls = args.calls;
        callers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= calls {
                    return;
                }
                let request = HealthCheckRequest {
                    service: String::new(),
                };
                let (line, key) = match client.check(request).await {
                    Ok(response) => {
                        let info = response
                            .extensions()
                            .get::<RetryInfo>()
                            .copied()
                            .unwrap_or_default();
                        let status = response.into_inner().status().as_str_name().to_owned();
                        (
                            format!(
                                "{status} ({} attempts, waited {:?})",
                                info.attempts, info.waited
                            ),
                            status,
                        )
                    }
                    Err(status) => {
                        let code = format!("{:?}", status.code());
                        (format!("error {code}: {}", status.message()), code)
                    }
                };
                println!("{:>7.3}s  call {i}: {line}", start.elapsed().as_secs_f64());
                *results.lock().unwrap().entry(key).or_default() += 1;
            }
        });
    }
    while callers.join_next().await.transpose()?.is_some() {}

    println!("\nsummary after {:.2}s", start.elapsed().as_secs_f64());
    for (result, n) in results.lock().unwrap().iter() {
        println!("  {result}: {n}");
    }
    println!(
        "  client limit now {} (AIMD from 8: pushback lowers it, successes raise it)",
        limits.limit()
    );
    Ok(())
}

/// Prints retries and give-ups with the time since `start`.
fn print_event(start: Instant, event: &Event<'_>) {
    let at = start.elapsed().as_secs_f64();
    match event {
        Event::Retry {
            attempt,
            outcome,
            wait,
            ..
        } => println!("{at:>7.3}s  retry: attempt {attempt} after {outcome}, waiting {wait:?}"),
        Event::GaveUp {
            reason, attempts, ..
        } => println!(
            "{at:>7.3}s  gave up after {attempts} attempts: {}",
            reason.as_str()
        ),
        _ => {}
    }
}

/// Starts the flaky, limited health server on a loopback port; returns its
/// URL.
async fn start_server() -> Result<String, BoxError> {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let limit = LimitLayer::fixed(4)
        .reject_immediately()
        .classifier(GrpcClassifier::new())
        .respond(Respond::grpc().retry_after(Some(Duration::from_millis(50))))
        .build()?;
    // `named_layer` keeps the service's gRPC name, which tonic's router
    // needs (`NamedService`), through layers that know nothing of tonic.
    let service = ServiceBuilder::new()
        .layer(limit)
        .layer(FlakyLayer::new(7))
        .named_layer(health);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let incoming = TcpIncoming::from(listener);
    tokio::spawn(async move {
        if let Err(err) = Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await
        {
            eprintln!("server: {err}");
        }
    });
    Ok(url)
}

/// Answers some calls with a trailers-only gRPC error instead of the inner
/// service, and delays the others by 20 ms.
#[derive(Debug, Clone)]
struct FlakyLayer {
    jitter: Jitter,
}

impl FlakyLayer {
    fn new(seed: u64) -> Self {
        FlakyLayer {
            jitter: Jitter::seeded(seed),
        }
    }
}

impl<S> Layer<S> for FlakyLayer {
    type Service = Flaky<S>;

    fn layer(&self, inner: S) -> Flaky<S> {
        Flaky {
            inner,
            jitter: self.jitter.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Flaky<S> {
    inner: S,
    jitter: Jitter,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for Flaky<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let draw = self.jitter.unit();
        if draw < 0.15 {
            let mut response = trailers_only(tonic::Code::ResourceExhausted, "quota exceeded");
            response
                .headers_mut()
                .insert("grpc-retry-pushback-ms", HeaderValue::from_static("150"));
            return Box::pin(async move { Ok(response) });
        }
        if draw < 0.25 {
            let response = trailers_only(tonic::Code::Unavailable, "try again");
            return Box::pin(async move { Ok(response) });
        }
        let call = self.inner.call(request);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            call.await
        })
    }
}

/// A gRPC error as a trailers-only response: status and message in the
/// headers, no body.
fn trailers_only(code: tonic::Code, message: &str) -> http::Response<tonic::body::Body> {
    tonic::Status::new(code, message).into_http()
}
