//! `evenkeel load`: drive load at a URL through the preset or a bare client.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use evenkeel::core::BoxError;
use evenkeel::core::event::Event;
use evenkeel::{Connector, HyperConnector, Preset, connector_fn};
use hdrhistogram::Histogram;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex as StdMutex;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::Failure;
use crate::cause::{Cause, Causes};
use crate::compare::compare;
use crate::counted::{Counted, REQUEST_ID, Wire, micros_histogram, record_micros};
use crate::quota::{QuotaArgs, QuotaStoreArg};
use crate::report::Report;
use crate::tls::{https_client, https_connector, web_pki_roots};

/// Response bodies are read (so connections are reused and latency is
/// end to end) up to this many bytes.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Drive load at a URL and report what happened.
///
/// Every logical request carries a unique `x-request-id`, the same on all
/// its retries and failover attempts. The path and query of the first
/// `--url` are sent to every endpoint; further `--url`s are backups, in
/// order, and contribute their scheme, host and port.
///
/// Retries count every attempt after the first of a request, failovers
/// included, so attempts = requests + retries when every request was sent.
#[derive(Debug, Args)]
#[command(after_help = LOAD_AFTER_HELP)]
pub(crate) struct LoadArgs {
    /// The target URL (http or https). Repeat for backups, in order.
    #[arg(long, required = true, value_name = "URL")]
    pub(crate) url: Vec<String>,
    /// How many requests to send.
    #[arg(short = 'n', long, default_value_t = 100, value_name = "N")]
    pub(crate) requests: usize,
    /// How many requests in flight at once.
    #[arg(short = 'c', long, default_value_t = 8, value_name = "C")]
    pub(crate) concurrency: usize,
    /// A request header, `Name: value`; repeat for more. It replaces the
    /// default of the same name (`content-type`); `x-request-id` is set per
    /// request and cannot be given.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub(crate) header: Vec<(HeaderName, HeaderValue)>,
    /// Write the run's metrics, in the Prometheus text format, to FILE when
    /// the run ends (the stack's own metrics, and evenkeel_load_* totals).
    #[arg(long, value_name = "FILE")]
    pub(crate) metrics_out: Option<PathBuf>,
    /// The request method.
    #[arg(long, value_enum, default_value_t = MethodArg::Get)]
    pub(crate) method: MethodArg,
    /// A request body of this many bytes (JSON-shaped filler).
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub(crate) body_bytes: usize,
    /// Through the evenkeel preset, or a plain hyper client (no retry,
    /// first URL only).
    #[arg(long, value_enum, default_value_t = StackArg::Preset)]
    pub(crate) stack: StackArg,
    #[command(flatten)]
    pub(crate) quota: QuotaArgs,
    /// Print one JSON object as the last line of output.
    #[arg(long)]
    pub(crate) json: bool,
    /// Send for SECS seconds (fractions allowed) instead of a fixed
    /// number of requests; --requests is then ignored.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub(crate) duration: Option<Duration>,
    /// Speak HTTP/2 to `http://` URLs too, with prior knowledge (h2c);
    /// `https://` URLs choose by ALPN either way.
    #[arg(long)]
    pub(crate) http2: bool,
    /// Run the bare client and the preset in turn, interleaved (bare,
    /// preset, bare, preset, …) for --rounds rounds, and print their
    /// median requests per second and latencies side by side.
    #[arg(long)]
    pub(crate) compare_bare: bool,
    /// Rounds of --compare-bare, each one run of each stack.
    #[arg(long, value_name = "N", default_value_t = 3, requires = "compare_bare")]
    pub(crate) rounds: usize,
}

const LOAD_AFTER_HELP: &str = "\
With --json the last line is one object: requests, succeeded, failed,
failures_by_cause, attempts, retries, failovers, rate_limited (429s on the
wire), elapsed_ms, p50_ms and p99_ms (end to end), attempt_p50_ms and
attempt_p99_ms (one attempt on the wire), quota_wait_ms and
quota_wait_mean_ms (time held back for quota), quota_store_errors (calls
to a shared --quota-store that failed or timed out, paced locally
meanwhile), statuses, errors.

failures_by_cause counts each failed request once, by how it ended:
  rate_limited   the final answer was a 429
  server_error   the final answer was a 5xx (529 included)
  reset          the connection was reset or closed before a whole answer
  timeout        an attempt's timeout or the total deadline ran out
  local          held back by the stack itself (quota, limit, no endpoint)
  other          anything else: another status, a refused connection, DNS, TLS

With --compare-bare the output is a table of both stacks' medians
(requests per second, p50, p99) and the preset's ratios to the bare
client; with --json, one object: rounds, concurrency, http2, and for
bare and preset their runs (rps, p50_ms, p99_ms, failed) and medians
(rps_median, p50_ms_median, p99_ms_median), then rps_ratio and p99_ratio.

Examples:
  evenkeel load --url http://127.0.0.1:8080/v1/messages -n 200 -c 16
  evenkeel load --url http://127.0.0.1:8080/v1/messages --method POST -c 16 --duration 5 --compare-bare
  evenkeel load --url https://api.example.com/v1/items -H 'authorization: Bearer $TOKEN' --json
  evenkeel load --url http://127.0.0.1:8080/ --metrics-out run.prom";

/// Parses `--duration SECS`: a positive number of seconds, at most a day.
fn parse_secs(raw: &str) -> Result<Duration, String> {
    let secs: f64 = raw
        .trim()
        .parse()
        .map_err(|_| "not a number of seconds".to_owned())?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err("must be a positive number of seconds".to_owned());
    }
    if secs > 86_400.0 {
        return Err("is capped at 86400 (a day)".to_owned());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `-H 'Name: value'`. Clap's message quotes what was typed; the
/// error says what is wrong with it.
fn parse_header(raw: &str) -> Result<(HeaderName, HeaderValue), String> {
    let Some((name, value)) = raw.split_once(':') else {
        return Err("no colon; write a header as 'Name: value'".to_owned());
    };
    let name = name.trim();
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("'{name}' is not a valid header name"))?;
    if name == REQUEST_ID {
        return Err(format!("{REQUEST_ID} is set per request by evenkeel load"));
    }
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| "the value is not a valid header value".to_owned())?;
    Ok((name, value))
}

/// HTTP methods for `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub(crate) enum MethodArg {
    Get,
    Post,
    Put,
    Delete,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Method {
        match m {
            MethodArg::Get => Method::GET,
            MethodArg::Post => Method::POST,
            MethodArg::Put => Method::PUT,
            MethodArg::Delete => Method::DELETE,
        }
    }
}

/// Which client stack carries the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StackArg {
    /// The evenkeel preset (retry, failover, quota, limit, metrics).
    Preset,
    /// A plain hyper-util client.
    Bare,
}

/// A load run, checked.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) targets: Vec<Uri>,
    pub(crate) requests: usize,
    pub(crate) concurrency: usize,
    pub(crate) method: Method,
    pub(crate) body: Bytes,
    /// Headers from `-H`, sent on every request.
    pub(crate) headers: HeaderMap,
    pub(crate) stack: StackArg,
    /// Where quota state lives, its key, a declared rate (preset only).
    pub(crate) quota: QuotaArgs,
    pub(crate) run_id: String,
    /// Backups named in events and tables.
    pub(crate) names: Vec<String>,
    /// When set, request `n` starts no earlier than `n × interval` after
    /// the run starts (an offered load, whatever the answers), instead of
    /// as soon as a worker is free.
    pub(crate) interval: Option<Duration>,
    /// When set, requests are sent until this long after the start, and
    /// `requests` is ignored.
    pub(crate) duration: Option<Duration>,
    /// HTTP/2 with prior knowledge for `http://` targets.
    pub(crate) http2: bool,
}

impl Plan {
    pub(crate) fn from_args(args: &LoadArgs) -> Result<Plan, Failure> {
        if args.requests == 0 {
            return Err(Failure::Usage("--requests must be at least 1".into()));
        }
        if args.concurrency == 0 {
            return Err(Failure::Usage("--concurrency must be at least 1".into()));
        }
        if args.concurrency > 10_000 {
            return Err(Failure::Usage("--concurrency is capped at 10000".into()));
        }
        if args.compare_bare && !(1..=100).contains(&args.rounds) {
            return Err(Failure::Usage("--rounds must be between 1 and 100".into()));
        }
        if args.body_bytes > 64 * 1024 * 1024 {
            return Err(Failure::Usage("--body-bytes is capped at 64 MiB".into()));
        }
        if args.stack == StackArg::Bare && !args.quota.is_default() {
            return Err(Failure::Usage(
                "--quota-store, --quota-key and --rate-limit pace the preset; \
                 --stack bare has no quota layer"
                    .into(),
            ));
        }
        let targets = args
            .url
            .iter()
            .map(|u| parse_target(u))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Plan {
            names: targets
                .iter()
                .map(|t| t.authority().map(|a| a.to_string()).unwrap_or_default())
                .collect(),
            targets,
            requests: args.requests,
            concurrency: args.concurrency,
            method: args.method.into(),
            body: filler(args.body_bytes),
            headers: args
                .header
                .iter()
                .cloned()
                .fold(HeaderMap::new(), |mut h, (k, v)| {
                    h.append(k, v);
                    h
                }),
            stack: args.stack,
            quota: args.quota.clone(),
            run_id: run_id(),
            interval: None,
            duration: args.duration,
            http2: args.http2,
        })
    }
}

fn parse_target(url: &str) -> Result<Uri, Failure> {
    let uri: Uri = url
        .parse()
        .map_err(|e| Failure::Usage(format!("--url `{url}` is not a valid URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(other) => {
            return Err(Failure::Usage(format!(
                "--url `{url}`: unsupported scheme `{other}` (use http or https)"
            )));
        }
        None => {
            return Err(Failure::Usage(format!(
                "--url `{url}` needs a scheme and host, like http://127.0.0.1:8080/v1/messages"
            )));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(Failure::Usage(format!("--url `{url}` has no host")));
    }
    Ok(uri)
}

/// A JSON-shaped body of exactly `n` bytes (when `n` ≥ 13).
fn filler(n: usize) -> Bytes {
    if n == 0 {
        return Bytes::new();
    }
    const HEAD: &str = r#"{"filler":""#;
    const TAIL: &str = r#""}"#;
    if n < HEAD.len() + TAIL.len() {
        return Bytes::from(vec![b' '; n]);
    }
    let mut body = String::with_capacity(n);
    body.push_str(HEAD);
    body.extend(std::iter::repeat_n('x', n - HEAD.len() - TAIL.len()));
    body.push_str(TAIL);
    Bytes::from(body)
}

fn run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "ek-{:x}-{:x}",
        std::process::id(),
        now.as_millis() as u64 & 0xffff_ffff
    )
}

pub(crate) async fn run(args: LoadArgs) -> Result<(), Failure> {
    let plan = Plan::from_args(&args)?;
    if args.compare_bare {
        let comparison = compare(&plan, args.rounds).await?;
        if args.json {
            println!("{}", comparison.to_json());
        } else {
            print!("{}", comparison.table());
        }
        return Ok(());
    }
    // Opened and installed before the stack is built, so the stack's
    // metrics reach it; an unwritable path fails before any request.
    let metrics_out = args
        .metrics_out
        .as_deref()
        .map(crate::prom::MetricsFile::create)
        .transpose()?;
    let progress = progress_bar(plan.requests as u64, args.json || plan.duration.is_some());
    let report = execute(&plan, &progress).await?;
    progress.finish_and_clear();
    if let Some(out) = metrics_out {
        crate::prom::record_run(&report);
        out.write()?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.summary());
    }
    Ok(())
}

pub(crate) fn progress_bar(len: u64, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>8} [{bar:32}] {pos}/{len} {elapsed:>4} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    // Redrawn while nothing finishes too (a paced or stalled run).
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// The progress bar's message: what has ended so far.
fn progress_message(tally: &Tally) -> String {
    format!("{} ok · {} failed", tally.succeeded, tally.failed)
}

/// Counters the preset's events feed.
#[derive(Debug, Default)]
struct Decisions {
    failovers: AtomicU64,
    /// Quota waits, summed, in nanoseconds.
    quota_wait: AtomicU64,
    /// Calls to the shared quota store that failed or timed out.
    store_errors: AtomicU64,
}

/// Runs `plan` and reports; `progress` advances once per logical request.
pub(crate) async fn execute(plan: &Plan, progress: &ProgressBar) -> Result<Report, Failure> {
    progress.set_prefix(match plan.stack {
        StackArg::Preset => "preset",
        StackArg::Bare => "bare",
    });
    let wire = Arc::new(Wire::default());
    let decisions = Arc::new(Decisions::default());
    match plan.stack {
        StackArg::Bare => {
            let client = if plan.http2 {
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .http2_only(true)
                    .build(https_connector(web_pki_roots()))
            } else {
                https_client::<Full<Bytes>>(web_pki_roots())
            };
            let client = Counted::new(client, wire.clone());
            let target = plan.targets[0].clone();
            drive(plan, progress, wire, decisions, move |req| {
                let (mut parts, body) = req.into_parts();
                parts.uri = target.clone();
                client
                    .clone()
                    .oneshot(http::Request::from_parts(parts, body))
            })
            .await
        }
        StackArg::Preset => {
            // The preset's own connector, counted on the wire.
            let mut connector = HyperConnector::new(https_connector(web_pki_roots()));
            if plan.http2 {
                connector.builder_mut().http2_only(true);
            }
            let counted = wire.clone();
            let connector = connector_fn(move |base: &Uri| {
                Ok(Counted::new(connector.connect(base)?, counted.clone()))
            });
            let mut builder = Preset::builder();
            for (name, target) in plan.names.iter().zip(&plan.targets) {
                let base = format!(
                    "{}://{}",
                    target.scheme_str().unwrap_or("http"),
                    target.authority().map(|a| a.as_str()).unwrap_or_default()
                );
                builder = builder.named_endpoint(name.clone(), base);
            }
            if let Some(key) = &plan.quota.quota_key {
                builder = builder.quota_key(key.clone());
            }
            let counters = decisions.clone();
            let builder = builder.on_event(move |e: &Event<'_>| match e {
                Event::QuotaWait { wait, .. } => {
                    let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
                    counters.quota_wait.fetch_add(nanos, Ordering::Relaxed);
                }
                Event::Failover { .. } => {
                    counters.failovers.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            });
            let preset = match &plan.quota.quota_store {
                QuotaStoreArg::Memory => {
                    let builder = match plan.quota.rate_limit {
                        Some(r) => builder.rate_limit_with_burst(r.requests, r.per, r.burst),
                        None => builder,
                    };
                    builder
                        .build(connector)
                        .map_err(|e| Failure::Usage(e.to_string()))?
                }
                #[cfg(feature = "redis")]
                QuotaStoreArg::Redis(url) => {
                    let store = redis_store(url, plan.quota.rate_limit, decisions.clone())?;
                    let key = plan.quota.quota_key.clone().unwrap_or_else(|| {
                        plan.targets[0]
                            .authority()
                            .map(|a| a.to_string())
                            .unwrap_or_default()
                    });
                    warm_up(&store, &key).await;
                    let preset = builder
                        .quota_store(store)
                        .build(connector)
                        .map_err(|e| Failure::Usage(e.to_string()))?;
                    return drive_preset(plan, progress, wire, decisions, preset).await;
                }
                #[cfg(not(feature = "redis"))]
                QuotaStoreArg::Redis(url) => {
                    return Err(Failure::Usage(format!(
                        "--quota-store {url}: this evenkeel was built without the `redis` feature"
                    )));
                }
            };
            drive_preset(plan, progress, wire, decisions, preset).await
        }
    }
}

/// How long the CLI waits for Redis on each call before pacing locally:
/// longer than the library's 50 ms, as a load run measures the API under
/// the shared quota and a fallback would change what it measures.
#[cfg(feature = "redis")]
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// Connects the store before the run's clock starts: one reservation on
/// `key`, given back unsent (so nothing is charged), opens the connection
/// and loads the scripts. Bounded: a Redis that does not answer leaves the
/// run to pace locally.
#[cfg(feature = "redis")]
async fn warm_up(store: &evenkeel::quota::store::RedisStore, key: &str) {
    use evenkeel::quota::QuotaStore;
    use evenkeel::quota::cost::Cost;

    let handle = store.open(key);
    let reserve = store.reserve(&handle, &Cost::new(), Instant::now());
    if let Ok(Ok(ticket)) = tokio::time::timeout(Duration::from_secs(5), reserve).await {
        store.release(&handle, ticket, false, Instant::now());
    }
}

/// The store of `--quota-store redis://…`, with `--rate-limit` declared on
/// it (one quota for every process sharing it) and the preset's cap on
/// server waits. It connects on first use; while Redis does not answer,
/// each process paces itself with its share of the declared quota.
#[cfg(feature = "redis")]
fn redis_store(
    url: &str,
    rate: Option<crate::quota::RateLimitArg>,
    decisions: Arc<Decisions>,
) -> Result<evenkeel::quota::store::RedisStore, Failure> {
    use evenkeel::headers::Resource;
    use evenkeel::quota::StaticQuota;
    use evenkeel::quota::store::RedisStore;

    let mut store = RedisStore::builder(url)
        .timeout(REDIS_TIMEOUT)
        .max_cooldown(evenkeel::DEFAULT_MAX_SERVER_WAIT)
        .on_event(move |e: &Event<'_>| {
            if let Event::QuotaStoreFailed { .. } = e {
                decisions.store_errors.fetch_add(1, Ordering::Relaxed);
            }
        });
    if let Some(r) = rate {
        store = store
            .declare(StaticQuota::new(Resource::Requests, r.requests, r.per).with_burst(r.burst));
    }
    store
        .build()
        .map_err(|e| Failure::Usage(format!("--quota-store {url}: {e}")))
}

/// Drives `plan` through `preset`, whatever its quota store.
async fn drive_preset<P, RB>(
    plan: &Plan,
    progress: &ProgressBar,
    wire: Arc<Wire>,
    decisions: Arc<Decisions>,
    preset: P,
) -> Result<Report, Failure>
where
    P: tower::Service<http::Request<Full<Bytes>>, Response = http::Response<RB>, Error = BoxError>
        + Clone
        + Send
        + Sync
        + 'static,
    P::Future: Send,
    RB: http_body::Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
    let path = plan.targets[0]
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    drive(plan, progress, wire, decisions, move |req| {
        let (mut parts, body) = req.into_parts();
        parts.uri = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
        preset
            .clone()
            .oneshot(http::Request::from_parts(parts, body))
    })
    .await
}

/// One worker per unit of concurrency, each taking the next request
/// number until all are sent.
async fn drive<F, Fut, RB>(
    plan: &Plan,
    progress: &ProgressBar,
    wire: Arc<Wire>,
    decisions: Arc<Decisions>,
    send: F,
) -> Result<Report, Failure>
where
    F: Fn(http::Request<Full<Bytes>>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<http::Response<RB>, BoxError>> + Send,
    RB: http_body::Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
    let next = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(StdMutex::new(Tally::default()));
    progress.set_message(progress_message(&Tally::default()));
    let start = Instant::now();
    let until = plan.duration.map(|d| start + d);
    let requests = match until {
        Some(_) => u64::MAX,
        None => plan.requests as u64,
    };
    let mut workers = tokio::task::JoinSet::new();
    let workers_wanted = match until {
        Some(_) => plan.concurrency,
        None => plan.concurrency.min(plan.requests),
    };
    for _ in 0..workers_wanted {
        let (next, tally, send, progress) =
            (next.clone(), tally.clone(), send.clone(), progress.clone());
        let plan = plan.clone();
        workers.spawn(async move {
            loop {
                if until.is_some_and(|until| Instant::now() >= until) {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    break;
                }
                if let Some(interval) = plan.interval {
                    let at = start + interval.saturating_mul(n.min(u32::MAX as u64) as u32);
                    tokio::time::sleep_until(at).await;
                }
                let request = request(&plan, n);
                let sent = Instant::now();
                let ended = match send(request).await {
                    Ok(response) => {
                        let status = response.status();
                        match Limited::new(response.into_body(), BODY_LIMIT)
                            .collect()
                            .await
                        {
                            Ok(_) => Ended::Answer(status),
                            Err(e) => Ended::Failed {
                                message: format!("reading the body: {}", crate::chain(&*e)),
                                cause: Cause::of_error(&*e),
                            },
                        }
                    }
                    Err(e) => Ended::Failed {
                        message: crate::chain(&*e),
                        cause: Cause::of_error(&*e),
                    },
                };
                let message = {
                    let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
                    tally.record(sent.elapsed(), ended);
                    progress_message(&tally)
                };
                progress.set_message(message);
                progress.inc(1);
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.map_err(|e| Failure::Run(format!("a worker failed: {e}")))?;
    }
    let elapsed = start.elapsed();
    let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Report {
        stack: match plan.stack {
            StackArg::Preset => "preset",
            StackArg::Bare => "bare",
        },
        requests: tally.succeeded + tally.failed,
        succeeded: tally.succeeded,
        failed: tally.failed,
        failures: tally.failures,
        attempts: wire.attempts(),
        retries: wire.retries(),
        failovers: decisions.failovers.load(Ordering::Relaxed),
        rate_limited: wire.rate_limited(),
        elapsed,
        latency: tally.latency,
        attempt_time: wire.attempt_time(),
        quota_wait: Duration::from_nanos(decisions.quota_wait.load(Ordering::Relaxed)),
        quota_store_errors: decisions.store_errors.load(Ordering::Relaxed),
        statuses: tally.statuses,
        errors: tally.errors,
    })
}

/// Request `n` of `plan`: its method, body, `-H` headers and own id.
fn request(plan: &Plan, n: u64) -> http::Request<Full<Bytes>> {
    let mut request = http::Request::new(Full::new(plan.body.clone()));
    *request.method_mut() = plan.method.clone();
    *request.uri_mut() = Uri::from_static("/");
    let headers = request.headers_mut();
    if !plan.body.is_empty() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    for name in plan.headers.keys() {
        headers.remove(name);
    }
    for (name, value) in &plan.headers {
        headers.append(name.clone(), value.clone());
    }
    if let Ok(id) = HeaderValue::try_from(format!("{}-{n}", plan.run_id)) {
        headers.insert(REQUEST_ID, id);
    }
    request
}

/// How one logical request ended.
#[derive(Debug)]
enum Ended {
    /// A whole answer, of this status.
    Answer(StatusCode),
    /// No answer, or not a whole one.
    Failed { message: String, cause: Cause },
}

#[derive(Debug)]
struct Tally {
    succeeded: u64,
    failed: u64,
    failures: Causes,
    latency: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            succeeded: 0,
            failed: 0,
            failures: Causes::default(),
            latency: micros_histogram(),
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }
}

impl Tally {
    fn record(&mut self, took: Duration, ended: Ended) {
        record_micros(&mut self.latency, took);
        match ended {
            Ended::Answer(status) => {
                *self.statuses.entry(status.as_u16()).or_default() += 1;
                if status.is_success() {
                    self.succeeded += 1;
                } else {
                    self.failed += 1;
                    self.failures.add(Cause::of_status(status));
                }
            }
            Ended::Failed { message, cause } => {
                self.failed += 1;
                self.failures.add(cause);
                *self.errors.entry(message).or_default() += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_has_the_asked_size() {
        for n in [0, 1, 12, 13, 14, 100, 4096] {
            assert_eq!(filler(n).len(), n);
        }
        let body = filler(40);
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    }

    #[test]
    fn headers_parse_and_bad_ones_quote_the_input() {
        let (name, value) = parse_header("Authorization:  Bearer abc ").unwrap();
        assert_eq!(
            (name.as_str(), value.to_str().unwrap()),
            ("authorization", "Bearer abc")
        );
        let (name, value) = parse_header("x-empty:").unwrap();
        assert_eq!((name.as_str(), value.len()), ("x-empty", 0));
        let (_, value) = parse_header("x-url: http://a:1/b").unwrap();
        assert_eq!(value, "http://a:1/b");
        for (bad, why) in [
            ("nocolon", "no colon"),
            (": value", "'' is not a valid header name"),
            ("bad name: v", "'bad name' is not a valid header name"),
            ("x-a: \u{7f}", "not a valid header value"),
            ("X-Request-Id: 1", "set per request"),
        ] {
            let err = parse_header(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn header_flags_replace_defaults_and_keep_the_request_id() {
        let mut plan = Plan::from_args(&LoadArgs {
            url: vec!["http://127.0.0.1:1/x".into()],
            requests: 1,
            concurrency: 1,
            header: vec![
                parse_header("content-type: text/plain").unwrap(),
                parse_header("x-tag: a").unwrap(),
                parse_header("x-tag: b").unwrap(),
            ],
            metrics_out: None,
            method: MethodArg::Post,
            body_bytes: 20,
            stack: StackArg::Bare,
            quota: QuotaArgs::default(),
            json: true,
            duration: None,
            http2: false,
            compare_bare: false,
            rounds: 3,
        })
        .unwrap();
        plan.run_id = "run".into();
        let request = request(&plan, 7);
        let headers = request.headers();
        assert_eq!(headers[CONTENT_TYPE], "text/plain");
        assert_eq!(headers.get_all(CONTENT_TYPE).iter().count(), 1);
        let tags: Vec<_> = headers.get_all("x-tag").iter().collect();
        assert_eq!(tags, ["a", "b"]);
        assert_eq!(headers[REQUEST_ID], "run-7");
        assert_eq!(request.method(), Method::POST);
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        for url in ["not a url", "ftp://x/y", "/just/a/path", "http:///nohost"] {
            assert!(matches!(parse_target(url), Err(Failure::Usage(_))), "{url}");
        }
        assert!(parse_target("http://127.0.0.1:8080/v1/messages").is_ok());
    }
}
