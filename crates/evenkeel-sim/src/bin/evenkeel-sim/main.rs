//! `evenkeel-sim`: a simulated rate-limited, sometimes failing LLM API on a
//! loopback port, or (`--demo SECS`) a short demonstration of one under load.

use std::process::ExitCode;

use clap::Parser;
use evenkeel_sim::cli::{self, SimArgs};

fn main() -> ExitCode {
    let args = SimArgs::parse();
    let sim = match args.build() {
        Ok(sim) => sim,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(&args, sim)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
