//! `evenkeel`: see what the preset stack does, drive load at any API, run
//! the simulated API, and diagnose a connection layer by layer.

mod cause;
mod compare;
mod counted;
mod demo;
mod load;
mod prom;
mod quota;
mod report;
mod tls;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Keeps API clients steady when the API pushes back.
///
/// `evenkeel demo` runs the same workload against a simulated rate-limited
/// API with an outage, through a bare client and through the evenkeel
/// preset, and prints them side by side.
#[derive(Debug, Parser)]
#[command(name = "evenkeel", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare a bare client with the preset against a simulated API that
    /// rate-limits, fails and goes down for a while (about a minute).
    Demo(demo::DemoArgs),
    /// Drive load at a URL through the preset (or a bare client) and report
    /// what happened.
    Load(load::LoadArgs),
    /// Run the simulated rate-limited, faulty API on a port.
    #[command(after_help = SIM_AFTER_HELP)]
    Sim(evenkeel_sim::cli::SimArgs),
    /// Walk DNS, TCP, TLS, HTTP and rate limits for a URL and say which
    /// layer fails and why.
    Diagnose(evenkeel_diagnose::cli::DiagnoseArgs),
}

/// `evenkeel sim`'s examples (the flags are `evenkeel-sim`'s).
const SIM_AFTER_HELP: &str = "\
Examples:
  evenkeel sim --demo 5
  evenkeel sim --rate 5 --burst 5 --dialect openai --fail-529 0.05
  evenkeel sim --token-rate 1000 --token-cost header --capacity 8 --latency-ms 200";

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => exit(demo::run(args).await),
            Command::Load(args) => exit(load::run(args).await),
            Command::Sim(args) => {
                let sim = match args.build() {
                    Ok(sim) => sim,
                    Err(err) => {
                        eprintln!("error: {err}");
                        return ExitCode::from(2);
                    }
                };
                match evenkeel_sim::cli::run(&args, sim).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(err) => {
                        eprintln!("error: {err}");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::Diagnose(args) => ExitCode::from(evenkeel_diagnose::cli::run(&args).await),
        }
    })
}

/// How a subcommand failed: bad input (exit 2) or a failure while running
/// (exit 1).
#[derive(Debug)]
pub(crate) enum Failure {
    Usage(String),
    Run(String),
}

fn exit(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Run(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    evenkeel_sim::cli::chain(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn load_interface_parses() {
        let cli = Cli::try_parse_from([
            "evenkeel",
            "load",
            "--url",
            "http://127.0.0.1:1/v1/messages",
            "--url",
            "http://127.0.0.1:2/v1/messages",
            "-n",
            "10",
            "-c",
            "2",
            "-H",
            "x-api-key: k",
            "--header",
            "anthropic-version: 2023-06-01",
            "--metrics-out",
            "run.prom",
            "--method",
            "POST",
            "--body-bytes",
            "64",
            "--stack",
            "bare",
            "--json",
        ])
        .unwrap();
        match cli.command {
            Command::Load(args) => {
                assert_eq!(args.url.len(), 2);
                assert_eq!((args.requests, args.concurrency), (10, 2));
                let names: Vec<&str> = args.header.iter().map(|(k, _)| k.as_str()).collect();
                assert_eq!(names, ["x-api-key", "anthropic-version"]);
                assert_eq!(args.metrics_out.as_deref(), Some("run.prom".as_ref()));
                assert!(args.json);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn long_flags_keep_their_names() {
        let cli = Cli::try_parse_from([
            "evenkeel",
            "load",
            "--url",
            "http://127.0.0.1:1/",
            "--requests",
            "3",
            "--concurrency",
            "4",
        ])
        .unwrap();
        let Command::Load(args) = cli.command else {
            panic!("not load");
        };
        assert_eq!((args.requests, args.concurrency), (3, 4));
    }

    #[test]
    fn throughput_flags_parse_and_bad_durations_are_refused() {
        let cli = Cli::try_parse_from([
            "evenkeel",
            "load",
            "--url",
            "http://127.0.0.1:1/",
            "--duration",
            "1.5",
            "--http2",
            "--compare-bare",
            "--rounds",
            "2",
        ])
        .unwrap();
        let Command::Load(args) = cli.command else {
            panic!("not load");
        };
        assert_eq!(args.duration, Some(std::time::Duration::from_millis(1500)));
        assert!(args.http2 && args.compare_bare);
        assert_eq!(args.rounds, 2);
        for bad in ["0", "-1", "NaN", "inf", "soon", "100000"] {
            let parsed = Cli::try_parse_from([
                "evenkeel",
                "load",
                "--url",
                "http://127.0.0.1:1/",
                "--duration",
                bad,
            ]);
            assert!(parsed.is_err(), "--duration {bad}");
        }
        // --rounds means nothing without --compare-bare.
        assert!(
            Cli::try_parse_from([
                "evenkeel",
                "load",
                "--url",
                "http://127.0.0.1:1/",
                "--rounds",
                "2"
            ])
            .is_err()
        );
    }

    #[test]
    fn sim_help_shows_this_binary() {
        let mut command = Cli::command();
        let help = command
            .find_subcommand_mut("sim")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("evenkeel sim --demo 5"), "{help}");
        assert!(!help.contains("evenkeel-sim --"), "{help}");
    }

    #[test]
    fn method_lists_are_plain_names() {
        let mut command = Cli::command();
        for sub in ["load", "demo"] {
            let help = command
                .find_subcommand_mut(sub)
                .unwrap()
                .render_long_help()
                .to_string();
            assert!(!help.contains("GET: GET"), "{help}");
            assert!(help.contains("GET, POST, PUT, DELETE"), "{sub}: {help}");
        }
    }
}
