//! The preset on the hyper-util client: a primary and a backup, every retry
//! and failover printed as it happens.
//!
//! ```sh
//! cargo run -p evenkeel-examples --bin hyper-client
//! ```
//!
//! By default it starts two simulated APIs on loopback: a primary with a
//! tight request quota and a few `529 overloaded` answers, and a roomy
//! backup. It sends 60 `POST /v1/messages` from 6 callers through
//! `evenkeel::Preset` (built on hyper-util's legacy client), kills the
//! primary halfway through, and prints each event the stack reports
//! (`retry`, `failover`, `endpoint`, `quota`, `gave up`) followed by a
//! summary: answers by status, attempts each upstream saw, failovers. It
//! exits after a few seconds.
//!
//! Flags:
//!
//! - `--primary URL --backup URL`: real upstreams instead of the sims
//!   (`http://` or `https://`); the primary is not killed then.
//! - `--requests N`, `--callers N`, `--path /v1/...`: the workload.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use evenkeel::Preset;
use evenkeel::core::BoxError;
use evenkeel::core::event::Event;
use evenkeel::retry::RetryInfo;
use evenkeel_sim::{Dialect, Faults, Sim, SimServer};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;
use tower::ServiceExt;

#[derive(Debug, Parser)]
#[command(about = "The evenkeel preset on hyper-util, with a backup upstream")]
struct Args {
    /// The primary upstream's base URL (default: a simulated API on loopback).
    #[arg(long, requires = "backup")]
    primary: Option<String>,
    /// The backup upstream's base URL (default: a simulated API on loopback).
    #[arg(long, requires = "primary")]
    backup: Option<String>,
    /// Requests to send.
    #[arg(long, default_value_t = 60)]
    requests: usize,
    /// Concurrent callers.
    #[arg(long, default_value_t = 6)]
    callers: usize,
    /// The request path, appended to each endpoint's base URL.
    #[arg(long, default_value = "/v1/messages")]
    path: String,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();

    // The upstreams: real ones from the flags, or two simulated APIs.
    let sims = match (&args.primary, &args.backup) {
        (Some(_), Some(_)) => None,
        _ => Some(start_sims().await?),
    };
    let (primary, backup) = match (&args.primary, &args.backup, &sims) {
        (Some(p), Some(b), _) => (p.clone(), b.clone()),
        (_, _, Some((p, b))) => (p.url(), b.url()),
        _ => unreachable!("the sims run when no URLs are given"),
    };

    // Every decision the stack makes, printed with the time since start.
    let start = Instant::now();
    let client = Preset::builder()
        .named_endpoint("primary", &primary)
        .named_endpoint("backup", &backup)
        .deadline(Duration::from_secs(20))
        .attempt_timeout(Duration::from_secs(5))
        .max_quota_wait(Duration::from_secs(5))
        .seed(7)
        .on_event(move |event: &Event<'_>| {
            if let Some(line) = describe(event) {
                println!("{:>7.3}s  {line}", start.elapsed().as_secs_f64());
            }
        })
        .build_https()?;
    println!("primary {primary}, backup {backup}");

    let statuses = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let retried = Arc::new(Mutex::new(0usize));
    let mut callers = tokio::task::JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let kill_at = args.requests / 2;
    let primary_handle = sims.as_ref().map(|(p, _)| p.handle());
    for _ in 0..args.callers.max(1) {
        let (client, statuses, retried, next) = (
            client.clone(),
            statuses.clone(),
            retried.clone(),
            next.clone(),
        );
        let primary_handle = primary_handle.clone();
        let (path, requests) = (args.path.clone(), args.requests);
        callers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    return;
                }
                if i == kill_at
                    && let Some(handle) = &primary_handle
                {
                    println!("{:>7.3}s  -- primary killed --", start.elapsed().as_secs_f64());
                    handle.kill().await;
                }
                let request = http::Request::post(path.as_str())
                    .header("content-type", "application/json")
                    .header("x-request-id", format!("req-{i}"))
                    .body(Full::new(Bytes::from_static(
                        br#"{"model":"sim","max_tokens":16,"messages":[{"role":"user","content":"Hi"}]}"#,
                    )))
                    .expect("a valid request");
                let key = match client.clone().oneshot(request).await {
                    Ok(response) => {
                        if RetryInfo::of(&response).attempts > 1 {
                            *retried.lock().unwrap() += 1;
                        }
                        let status = response.status();
                        // Read the body so the connection goes back to the pool.
                        let _ = response.into_body().collect().await;
                        status.as_u16().to_string()
                    }
                    Err(err) => format!("error: {err}"),
                };
                *statuses.lock().unwrap().entry(key).or_default() += 1;
            }
        });
    }
    while callers.join_next().await.transpose()?.is_some() {}

    println!("\nsummary after {:.2}s", start.elapsed().as_secs_f64());
    for (status, n) in statuses.lock().unwrap().iter() {
        println!("  {status}: {n}");
    }
    println!(
        "  answers that needed more than one attempt: {}",
        retried.lock().unwrap()
    );
    println!("  failovers: {}", client.failover().failovers());
    for endpoint in client.endpoints() {
        println!(
            "  endpoint {}: {}, ejected {} times",
            endpoint.name,
            endpoint.state.as_str(),
            endpoint.times_ejected
        );
    }
    if let Some((primary, backup)) = sims {
        println!(
            "  primary saw {} attempts, backup {}",
            primary.stats().attempts(),
            backup.stats().attempts()
        );
        primary.shutdown().await;
        backup.shutdown().await;
    }
    Ok(())
}

/// The primary: 20 requests per second in bursts of 5, 5 % `529`s. The
/// backup: roomy, 10 % `529`s. Both answer in 20-30 ms.
async fn start_sims() -> Result<(SimServer, SimServer), BoxError> {
    let primary = Sim::builder()
        .requests(20.0, 5)
        .dialect(Dialect::Anthropic)
        .faults(Faults::none().overloaded(0.05))
        .latency(Duration::from_millis(20))
        .seed(1)
        .build()?
        .serve("127.0.0.1:0".parse()?)
        .await?;
    let backup = Sim::builder()
        .requests(500.0, 100)
        .dialect(Dialect::Anthropic)
        .faults(Faults::none().overloaded(0.1))
        .latency(Duration::from_millis(30))
        .seed(2)
        .build()?
        .serve("127.0.0.1:0".parse()?)
        .await?;
    Ok((primary, backup))
}

/// One line per event worth showing.
fn describe(event: &Event<'_>) -> Option<String> {
    Some(match event {
        Event::Retry {
            attempt,
            outcome,
            wait,
            server_directed,
        } => format!(
            "retry     attempt {attempt} after {outcome}, waiting {wait:?}{}",
            if *server_directed {
                " (server's wait)"
            } else {
                ""
            }
        ),
        Event::GaveUp {
            reason,
            outcome,
            attempts,
        } => format!(
            "gave up   after {attempts} attempts: {} ({outcome})",
            reason.as_str()
        ),
        Event::Failover { from, to, outcome } => {
            format!("failover  {from} -> {to} after {outcome}")
        }
        Event::Failback { to } => format!("failback  to {to}"),
        Event::EndpointState { endpoint, state } => {
            format!("endpoint  {endpoint} is {}", state.as_str())
        }
        Event::QuotaWait {
            key,
            resource,
            wait,
        } if *wait >= Duration::from_millis(100) => {
            format!("quota     {key}: waiting {wait:?} for {resource}")
        }
        Event::QuotaRejected { key, resource, .. } => {
            format!("quota     {key}: out of {resource}")
        }
        _ => return None,
    })
}
