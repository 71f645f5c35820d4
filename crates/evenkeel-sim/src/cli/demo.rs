//! `--demo SECS`: a short mixed load against a sim on a free loopback port.

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use crate::Sim;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::args::SimArgs;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Polite callers: one request at a time, `POLITE_PACE` apart, waiting out
/// any `Retry-After`.
const POLITE: usize = 4;
const POLITE_PACE: Duration = Duration::from_millis(500);
/// Greedy callers: a request every `GREEDY_PACE` without waiting for
/// answers, `Retry-After` ignored.
const GREEDY: usize = 2;
const GREEDY_PACE: Duration = Duration::from_millis(66);

/// What one group of callers saw.
#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    statuses: BTreeMap<u16, u64>,
    resets: u64,
    other_errors: u64,
}

#[derive(Debug, Default)]
struct Shared {
    polite: Tally,
    greedy: Tally,
    /// The first response headers seen for each status.
    samples: BTreeMap<u16, HeaderMap>,
    /// Every `Retry-After` value seen, with how often.
    retry_afters: BTreeMap<String, u64>,
}

pub(crate) async fn run(args: &SimArgs, sim: Sim, span: Duration) -> Result<(), Box<dyn Error>> {
    let server = sim
        .serve("127.0.0.1:0".parse()?)
        .await
        .map_err(|e| format!("cannot listen on a loopback port: {e}"))?;
    let url = server.url();
    println!(
        "evenkeel-sim demo: {} s of mixed load against {url}",
        span.as_secs()
    );
    println!();
    println!("  sim     {}", super::describe(args));
    if args.demo_faults() {
        println!("          (demo fault mix; set any fault flag, e.g. --fail-529 0.1, to choose)");
    }
    println!(
        "  load    {POLITE} polite callers, one request at a time every {} ms, waiting out Retry-After",
        POLITE_PACE.as_millis()
    );
    println!(
        "          {GREEDY} greedy callers, a request every {} ms without waiting, ignoring Retry-After",
        GREEDY_PACE.as_millis()
    );
    println!();

    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let shared = Arc::new(Mutex::new(Shared::default()));
    let deadline = Instant::now() + span;
    let mut callers = JoinSet::new();
    for i in 0..POLITE {
        callers.spawn(polite(
            client.clone(),
            url.clone(),
            i,
            deadline,
            shared.clone(),
        ));
    }
    for i in 0..GREEDY {
        callers.spawn(greedy(
            client.clone(),
            url.clone(),
            i,
            deadline,
            shared.clone(),
        ));
    }
    while callers.join_next().await.is_some() {}

    let stats = server.stats();
    server.shutdown().await;

    let shared = Arc::try_unwrap(shared)
        .map(Mutex::into_inner)
        .unwrap_or_default();
    print_callers(&shared);
    super::print_served(&stats);
    print_samples(&shared);
    Ok(())
}

/// One request at a time; waits out `Retry-After`.
async fn polite(
    client: HttpClient,
    url: String,
    caller: usize,
    deadline: Instant,
    shared: Arc<Mutex<Shared>>,
) {
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let id = format!("polite-{caller}-{n}");
        let wait = match send(&client, &url, &id, n).await {
            Ok((status, headers)) => {
                let wait = retry_after(&headers);
                record(&shared, true, Ok((status, headers)));
                wait.unwrap_or(POLITE_PACE).max(POLITE_PACE)
            }
            Err(err) => {
                record(&shared, true, Err(err));
                POLITE_PACE
            }
        };
        let until = (Instant::now() + wait).min(deadline);
        tokio::time::sleep_until(until).await;
    }
}

/// A request every `GREEDY_PACE`, answers or not.
async fn greedy(
    client: HttpClient,
    url: String,
    caller: usize,
    deadline: Instant,
    shared: Arc<Mutex<Shared>>,
) {
    let mut in_flight = JoinSet::new();
    let mut tick = tokio::time::interval(GREEDY_PACE);
    let mut n = 0;
    loop {
        tick.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        n += 1;
        let (client, url, shared) = (client.clone(), url.clone(), shared.clone());
        in_flight.spawn(async move {
            let id = format!("greedy-{caller}-{n}");
            let result = send(&client, &url, &id, n).await;
            record(&shared, false, result);
        });
    }
    while in_flight.join_next().await.is_some() {}
}

type Outcome = Result<(StatusCode, HeaderMap), Box<dyn Error + Send + Sync>>;

async fn send(client: &HttpClient, url: &str, id: &str, n: u64) -> Outcome {
    // Prompts of varied length, so a token quota has something to count.
    let prompt = "Summarise the rate-limit headers, please. ".repeat(1 + (n % 7) as usize);
    let body = format!(
        r#"{{"model":"evenkeel-sim","max_tokens":64,"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
    );
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("{url}/v1/messages"))
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .body(Full::new(Bytes::from(body)))?;
    let response = client.request(req).await?;
    let status = response.status();
    let (parts, body) = response.into_parts();
    body.collect().await?;
    Ok((status, parts.headers))
}

fn record(shared: &Mutex<Shared>, polite: bool, outcome: Outcome) {
    let mut shared = shared.lock();
    let shared = &mut *shared;
    let tally = if polite {
        &mut shared.polite
    } else {
        &mut shared.greedy
    };
    tally.sent += 1;
    match outcome {
        Ok((status, headers)) => {
            *tally.statuses.entry(status.as_u16()).or_default() += 1;
            if let Some(v) = headers.get("retry-after").and_then(|v| v.to_str().ok()) {
                *shared.retry_afters.entry(v.to_owned()).or_default() += 1;
            }
            shared.samples.entry(status.as_u16()).or_insert(headers);
        }
        Err(err) if is_reset(&*err) => tally.resets += 1,
        Err(_) => tally.other_errors += 1,
    }
}

/// Whether a client error came from the connection being reset or closed
/// before the answer.
fn is_reset(err: &(dyn Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            )
        {
            return true;
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_closed())
        {
            return true;
        }
        cur = e.source();
    }
    false
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

fn print_callers(shared: &Shared) {
    let mut statuses: Vec<u16> = shared
        .polite
        .statuses
        .keys()
        .chain(shared.greedy.statuses.keys())
        .copied()
        .collect();
    statuses.sort_unstable();
    statuses.dedup();
    let mut header = format!("{:<9}{:>6}", "callers", "sent");
    for s in &statuses {
        header.push_str(&format!("{s:>6}"));
    }
    header.push_str(&format!("{:>7}{:>7}", "reset", "error"));
    println!("{header}");
    for (name, tally) in [("polite", &shared.polite), ("greedy", &shared.greedy)] {
        let mut line = format!("{name:<9}{:>6}", tally.sent);
        for s in &statuses {
            line.push_str(&format!(
                "{:>6}",
                tally.statuses.get(s).copied().unwrap_or(0)
            ));
        }
        line.push_str(&format!("{:>7}{:>7}", tally.resets, tally.other_errors));
        println!("{line}");
    }
    println!();
}

fn print_samples(shared: &Shared) {
    println!();
    println!("sample headers (the first response of each status)");
    for (status, headers) in &shared.samples {
        let reason = StatusCode::from_u16(*status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or(if *status == 529 { "Overloaded" } else { "" });
        println!("  {status} {reason}");
        let mut names: Vec<&str> = headers
            .keys()
            .map(|n| n.as_str())
            .filter(|n| {
                n.contains("ratelimit") || n.starts_with("retry-after") || *n == "x-should-retry"
            })
            .collect();
        names.sort_unstable();
        if names.is_empty() {
            println!("    (no rate-limit headers)");
        }
        for name in names {
            for value in headers.get_all(name) {
                println!("    {name}: {}", value.to_str().unwrap_or("<binary>"));
            }
        }
    }
    if !shared.retry_afters.is_empty() {
        let seen: Vec<String> = shared
            .retry_afters
            .iter()
            .map(|(v, n)| format!("{v} s ×{n}"))
            .collect();
        println!("  retry-after values sent: {}", seen.join(", "));
    }
}
