//! `evenkeel demo`: the same workload through a bare client and through the
//! preset, against a simulated API that rate-limits, fails and goes down.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use evenkeel_sim::{Dialect, Faults, Sim, SimServer};
use http::Method;

use crate::Failure;
use crate::load::{self, Plan, StackArg};
use crate::report;

/// Compare a bare client with the preset against a simulated API.
///
/// Starts two simulated APIs on loopback: a primary with a request quota
/// (Anthropic rate-limit headers), some 529 "overloaded" answers and
/// connection resets, which goes down for a while in the middle of the
/// run; and a backup. The same workload then runs twice, each time against
/// fresh simulators: through a plain hyper client pointed at the primary,
/// and through the evenkeel preset with the backup behind it.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Requests in each run.
    #[arg(long, default_value_t = 600, value_name = "N")]
    requests: usize,
    /// The offered load: requests started per second, whatever the answers
    /// (above the quota, as a busy batch job would).
    #[arg(long, default_value_t = 60.0, value_name = "PER_SEC")]
    offered: f64,
    /// At most this many requests in flight at once.
    #[arg(long, default_value_t = 64, value_name = "C")]
    concurrency: usize,
    /// The primary's request quota, per second.
    #[arg(long, default_value_t = 40.0, value_name = "PER_SEC")]
    rate: f64,
    /// The primary's burst (bucket size).
    #[arg(long, default_value_t = 20, value_name = "N")]
    burst: u64,
    /// Fraction of answers that are 529 overloaded.
    #[arg(long, default_value_t = 0.05, value_name = "FRACTION")]
    overloaded: f64,
    /// Fraction of connections reset before an answer.
    #[arg(long, default_value_t = 0.01, value_name = "FRACTION")]
    resets: f64,
    /// When the primary goes down, in seconds after the start of a run.
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    outage_at: f64,
    /// How long the primary stays down, in seconds (0: no outage).
    #[arg(long, default_value_t = 4.0, value_name = "SECS")]
    outage_for: f64,
    /// Request method (POSTs that may have been processed are never resent).
    #[arg(long, value_enum, default_value_t = load::MethodArg::Post)]
    method: load::MethodArg,
    /// Serve Prometheus metrics on this address while the demo runs.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Seed of the simulators' faults.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl DemoArgs {
    fn check(&self) -> Result<(), Failure> {
        let fraction = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Failure::Usage(format!(
                    "--{name} must be between 0 and 1, got {v}"
                )))
            }
        };
        fraction("overloaded", self.overloaded)?;
        fraction("resets", self.resets)?;
        if self.overloaded + self.resets > 1.0 {
            return Err(Failure::Usage(
                "--overloaded and --resets add up to more than 1".into(),
            ));
        }
        for (name, v) in [
            ("outage-at", self.outage_at),
            ("outage-for", self.outage_for),
        ] {
            if !v.is_finite() || !(0.0..=3600.0).contains(&v) {
                return Err(Failure::Usage(format!(
                    "--{name} must be between 0 and 3600 seconds, got {v}"
                )));
            }
        }
        if !self.offered.is_finite() || self.offered <= 0.0 || self.offered > 100_000.0 {
            return Err(Failure::Usage(format!(
                "--offered must be between 0 and 100000 requests per second, got {}",
                self.offered
            )));
        }
        if self.requests == 0 || self.concurrency == 0 {
            return Err(Failure::Usage(
                "--requests and --concurrency must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn primary(&self) -> Result<Sim, Failure> {
        Sim::builder()
            .requests(self.rate, self.burst)
            .dialect(Dialect::Anthropic)
            .faults(
                Faults::none()
                    .overloaded(self.overloaded)
                    .reset(self.resets),
            )
            .latency(Duration::from_millis(40))
            .seed(self.seed)
            .build()
            .map_err(|e| Failure::Usage(e.to_string()))
    }

    fn backup(&self) -> Result<Sim, Failure> {
        Sim::builder()
            .requests(self.rate, self.burst)
            .dialect(Dialect::Anthropic)
            .latency(Duration::from_millis(60))
            .seed(self.seed.wrapping_add(1))
            .build()
            .map_err(|e| Failure::Usage(e.to_string()))
    }
}

pub(crate) async fn run(args: DemoArgs) -> Result<(), Failure> {
    args.check()?;
    if let Some(addr) = args.metrics {
        crate::prom::serve(addr).await?;
    }
    println!(
        "simulated API: {} req/s (burst {}), {:.0} % 529s, {:.0} % resets, down from {} s for {} s; a backup behind it",
        args.rate,
        args.burst,
        args.overloaded * 100.0,
        args.resets * 100.0,
        args.outage_at,
        args.outage_for
    );
    println!(
        "workload: {} {} requests offered at {}/s, at most {} in flight\n",
        args.requests,
        Method::from(args.method),
        args.offered,
        args.concurrency
    );
    let bare = run_once(&args, StackArg::Bare).await?;
    let preset = run_once(&args, StackArg::Preset).await?;
    println!("\n{}", report::table(&[&bare, &preset]));
    println!(
        "Latency is end to end: the preset's includes the time it held requests back to\n\
         stay inside the quota (quota wait), not a slower wire (on the wire, per attempt).\n\
         Retries count every attempt after a request's first, failovers included.\n\
         \n\
         The bare client sees every 429, 529, reset and the outage; the preset paces\n\
         requests to the quota, retries what is safe to retry after the server's wait,\n\
         and fails over to the backup while the primary is down."
    );
    Ok(())
}

async fn start(sim: Sim) -> Result<SimServer, Failure> {
    sim.serve(([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| Failure::Run(format!("cannot start the simulated API: {e}")))
}

async fn run_once(args: &DemoArgs, stack: StackArg) -> Result<report::Report, Failure> {
    let primary = start(args.primary()?).await?;
    let backup = start(args.backup()?).await?;
    let mut urls = vec![format!("{}/v1/messages", primary.url())];
    if stack == StackArg::Preset {
        urls.push(format!("{}/v1/messages", backup.url()));
    }
    let mut plan = Plan::from_args(&load::LoadArgs {
        url: urls,
        requests: args.requests,
        concurrency: args.concurrency,
        header: Vec::new(),
        metrics_out: None,
        method: args.method,
        body_bytes: 256,
        stack,
        quota: crate::quota::QuotaArgs::default(),
        json: false,
        duration: None,
        http2: false,
        compare_bare: false,
        rounds: 3,
    })?;
    plan.interval = Some(Duration::from_secs_f64(1.0 / args.offered));
    let outage = (args.outage_for > 0.0).then(|| {
        let handle = primary.handle();
        let (at, span) = (
            Duration::from_secs_f64(args.outage_at),
            Duration::from_secs_f64(args.outage_for),
        );
        tokio::spawn(async move {
            tokio::time::sleep(at).await;
            handle.kill().await;
            tokio::time::sleep(span).await;
            let _ = handle.revive().await;
        })
    });
    let progress = load::progress_bar(args.requests as u64, false);
    let report = load::execute(&plan, &progress).await;
    progress.finish_and_clear();
    if let Some(outage) = outage {
        outage.abort();
    }
    primary.shutdown().await;
    backup.shutdown().await;
    let report = report?;
    println!(
        "{:>7}: {} of {} succeeded in {:.1} s",
        report.stack,
        report.succeeded,
        report.requests,
        report.elapsed.as_secs_f64()
    );
    Ok(report)
}
