//! The `evenkeel-sim` command line, as a library: the flags
//! ([`SimArgs`]) and the runner ([`run`]), so other binaries (the `evenkeel`
//! CLI's `sim` subcommand) offer exactly the same interface.

mod args;
mod demo;

use std::error::Error;
use std::time::Duration;

use crate::{Sim, Stats};

pub use args::{BuildError, CostArg, DialectArg, SimArgs};

/// Runs what the flags ask for with `sim` (built from them by
/// [`SimArgs::build`], whose error is a usage error): serve on `--listen`
/// until Ctrl-C, or run the `--demo` for its duration. Errors are ready to
/// print.
pub async fn run(args: &SimArgs, sim: Sim) -> Result<(), Box<dyn Error + Send + Sync>> {
    match args.demo {
        Some(secs) => demo::run(args, sim, Duration::from_secs(secs))
            .await
            .map_err(|e| chain(&*e).into()),
        None => serve(args, sim).await.map_err(|e| chain(&*e).into()),
    }
}

/// Serves until Ctrl-C, then prints what the sim saw.
async fn serve(args: &SimArgs, sim: Sim) -> Result<(), Box<dyn Error>> {
    let server = sim
        .serve(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    println!("evenkeel-sim listening on {}", server.url());
    println!("  {}", describe(args));
    println!("  press Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    let stats = server.stats();
    server.shutdown().await;
    println!();
    print_served(&stats);
    Ok(())
}

/// One line on the configuration.
pub(crate) fn describe(args: &SimArgs) -> String {
    let mut line = format!(
        "{} headers · {} req/s, burst {}",
        crate::Dialect::from(args.dialect),
        args.rate,
        args.burst
    );
    if let Some(rate) = args.token_rate {
        line.push_str(&format!(" · {rate} tokens/s"));
    }
    line.push_str(&format!(" · latency {} ms", args.latency_ms));
    if let Some(c) = args.capacity {
        line.push_str(&format!(", capacity {c}"));
    }
    if let Some(r) = args.reject_above {
        line.push_str(&format!(", 503 above {r} in flight"));
    }
    line.push_str(&format!(
        " · faults: {} · seed {}",
        args.fault_rates().describe(),
        args.seed
    ));
    line
}

/// The sim's own counters.
pub(crate) fn print_served(stats: &Stats) {
    println!("served by the sim");
    for (status, count) in stats.statuses() {
        let reason = http::StatusCode::from_u16(*status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or(if *status == 529 { "Overloaded" } else { "" });
        println!("  {status} {reason:<22} {count:>6}");
    }
    println!(
        "  attempts {} · resets injected {} · max in flight {}",
        stats.attempts(),
        stats.resets(),
        stats.max_in_flight()
    );
}

/// An error and its causes on one line: `err: cause: cause`.
pub fn chain(err: &dyn Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
