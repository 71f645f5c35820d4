//! `diagnose URL [...]`: the layered connection check, as the `evenkeel
//! diagnose` subcommand runs it.
//!
//! ```text
//! cargo run -p evenkeel-diagnose --features cli --example diagnose -- \
//!     https://api.anthropic.com/v1/models --resolver 1.1.1.1 --resolver 8.8.8.8
//! ```

use std::process::ExitCode;

use clap::Parser;
use evenkeel_diagnose::cli::{self, DiagnoseArgs};

/// Walks proxy, DNS, TCP, TLS and HTTP for one URL and says which layer
/// fails, why, and what to try.
#[derive(Debug, Parser)]
#[command(name = "diagnose", version)]
struct Cli {
    #[command(flatten)]
    diagnose: DiagnoseArgs,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    ExitCode::from(cli::run(&cli.diagnose).await)
}
