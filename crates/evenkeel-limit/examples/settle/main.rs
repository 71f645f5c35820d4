//! Runs the adaptive algorithms against a simulated server under tokio's
//! paused clock, prints how fast each settles, and draws the limit over
//! time into `docs/limit/settle.svg`.
//!
//! ```text
//! cargo run -p evenkeel-limit --example settle --release
//! ```

mod plot;
mod scenario;

use std::path::PathBuf;

use evenkeel_limit::{Aimd, Gradient, Vegas};
use scenario::{Run, Scenario};

/// The AIMD used in the simulations: Netflix's defaults, except a floor
/// below the server's capacity of 8.
fn aimd() -> Aimd {
    Aimd::builder().min_limit(1).build().expect("valid AIMD")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

/// One scenario for the three algorithms.
fn all(scenario: &Scenario) -> [(&'static str, Run); 3] {
    let rt = runtime();
    [
        ("AIMD", rt.block_on(scenario::run(scenario, aimd()))),
        (
            "Gradient",
            rt.block_on(scenario::run(scenario, Gradient::default())),
        ),
        (
            "Vegas",
            rt.block_on(scenario::run(scenario, Vegas::default())),
        ),
    ]
}

fn fmt_settle(t: Option<f64>) -> String {
    t.map_or_else(|| "never".to_owned(), |t| format!("{t:.1} s"))
}

fn main() {
    let base = scenario::BASE_LATENCY.as_secs_f64();

    let knee = Scenario::knee();
    let knee_runs = all(&knee);
    println!("capacity 8, 503 above 16 in flight, 64 callers, base latency 100 ms:");
    println!(
        "{:<9} {:>14} {:>11} {:>10} {:>9} {:>12}",
        "", "settle [6,11]", "mean limit", "p99/base", "503s", "goodput/s"
    );
    for (name, run) in &knee_runs {
        println!(
            "{:<9} {:>14} {:>11.1} {:>10.2} {:>8.2}% {:>12.1}",
            name,
            fmt_settle(run.settled(0.0, 120.0, 6, 11)),
            run.mean_limit(30.0, 120.0),
            run.latency_quantile(30.0, 120.0, 0.99) / base,
            run.share(30.0, 120.0, 503) * 100.0,
            run.goodput(30.0, 120.0),
        );
    }

    println!("(AIMD is loss-based: it settles just under the 503 wall at 16, by design.)");

    let limited = Scenario::rate_limited();
    let limited_runs = all(&limited);
    println!("\nthe same server with a rate limit of 20/s answered 429:");
    println!(
        "{:<9} {:>18} {:>18} {:>9}",
        "", "mean limit, no RL", "mean limit, RL", "429s"
    );
    for ((name, run), (_, free)) in limited_runs.iter().zip(&knee_runs) {
        println!(
            "{:<9} {:>18.1} {:>18.1} {:>8.1}%",
            name,
            free.mean_limit(30.0, 120.0),
            run.mean_limit(30.0, 120.0),
            run.share(30.0, 120.0, 429) * 100.0,
        );
    }

    let step = Scenario::capacity_step();
    let step_runs = all(&step);
    println!(
        "\ncapacity 16, 4 from 60 s, 16 again from 120 s (latency-based only: AIMD sees no drop"
    );
    println!("until 48 in flight, where this server starts answering 503):");
    println!(
        "{:<9} {:>18} {:>18} {:>18}",
        "", "settle [12,28]", "after drop [3,7]", "after rise [12,28]"
    );
    for (name, run) in step_runs.iter().skip(1) {
        println!(
            "{:<9} {:>18} {:>18} {:>18}",
            name,
            fmt_settle(run.settled(0.0, 60.0, 12, 28)),
            fmt_settle(run.settled(60.0, 120.0, 3, 7)),
            fmt_settle(run.settled(120.0, 180.0, 12, 28)),
        );
    }

    if std::env::var_os("SETTLE_TRACE").is_some() {
        for (name, run) in &step_runs {
            let trace: Vec<String> = run
                .limits
                .iter()
                .filter(|(t, _)| {
                    (55.0..135.0).contains(t) && ((*t * 10.0).round() as u64).is_multiple_of(10)
                })
                .map(|(t, l)| format!("{t:.0}:{l}"))
                .collect();
            println!("{name}: {}", trace.join(" "));
        }
    }

    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/limit/settle.svg");
    plot::draw(&out, &knee_runs, &step_runs).expect("plot");
    println!("\nplot: docs/limit/settle.svg");
}
