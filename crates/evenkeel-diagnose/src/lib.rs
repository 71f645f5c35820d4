//! The layered troubleshooting walk for an API connection, as a library:
//! proxy, DNS, TCP, TLS, HTTP and rate limits, with a verdict that names
//! the first failing layer, the likely cause and what to try.
//!
//! # Overview
//!
//! When an API client breaks, the manual says: compare `dig` answers from
//! two resolvers, `telnet host 443`, `openssl s_client … | openssl x509
//! -noout -dates`, then read the rate-limit headers with curl. Each step
//! needs its own tool and some knowledge to read. [`Diagnose`] does the
//! whole walk in one call, in order, and skips a layer's dependents when it
//! fails:
//!
//! | layer | what is checked | typical findings |
//! | --- | --- | --- |
//! | proxy | the proxy from `--proxy` or `HTTPS_PROXY`/`HTTP_PROXY` (minus `NO_PROXY`): its DNS, TCP, and its answer to `CONNECT` | down, needs credentials (407), refuses the host |
//! | DNS | the system resolver and every extra server (UDP), with addresses and TTLs | NXDOMAIN, timeout, resolvers that disagree or answer private addresses ("DNS pollution") |
//! | TCP | a connection to every address (or the proxy's tunnel) | refused, timed out, unreachable |
//! | TLS | a rustls handshake against the web PKI roots (plus `--ca-file`): version, ALPN, the chain with dates and names | "unable to get local issuer certificate" naming the issuer (an intercepting proxy), expired, not yet valid, wrong host, handshake refused, not TLS |
//! | HTTP | one request: status, version, latency, every quota the headers report, `Retry-After`, `x-should-retry` | 429 (wait N s), 503/529, 401/403 |
//!
//! The result is a [`Report`]: one report per layer with a [`Status`] and,
//! when something is wrong, a [`Finding`] (a [`Cause`], a summary, a fix),
//! and a [`Verdict`]. Render it with [`Report::table`] or
//! [`Report::to_json`]; [`Report::exit_code`] gives the command's exit
//! status (0 pass, 1 a layer failed; bad arguments are
//! [`EXIT_USAGE`], 2).
//!
//! Every step has a timeout, nothing panics on what the network sends
//! (garbage DNS answers, huge headers, endless bodies, non-UTF-8), and the
//! body read is bounded.
//!
//! # Example
//!
//! At start-up or from a health endpoint:
//!
//! ```no_run
//! use std::time::Duration;
//! use evenkeel_diagnose::{Diagnose, Layer};
//!
//! # async fn check() -> Result<(), Box<dyn std::error::Error>> {
//! let key = std::env::var("ANTHROPIC_API_KEY")?;
//! let report = Diagnose::builder("https://api.anthropic.com/v1/models")
//!     .header_line(format!("x-api-key: {key}"))
//!     .header_line("anthropic-version: 2023-06-01")
//!     .resolver_str("1.1.1.1")
//!     .resolver_str("8.8.8.8")
//!     .timeout(Duration::from_secs(3))
//!     .build()?
//!     .run()
//!     .await;
//!
//! print!("{}", report.table());
//! if report.failed_layer() == Some(Layer::Tls) {
//!     eprintln!("{}", report.verdict.text);
//! }
//! let json = report.to_json(); // the same, for a health endpoint
//! assert_eq!(json["ok"], report.ok());
//! # Ok(()) }
//! ```
//!
//! A table looks like this (real output; nothing listens on the port):
//!
//! ```text
//! diagnose GET https://localhost:41835/v1/models
//! ✓ dns   localhost → 127.0.0.1 (override)
//!          override  127.0.0.1
//! ✗ tcp   connection refused by 127.0.0.1:41835: nothing listens on port 41835, or a firewall rejects it
//!          127.0.0.1:41835 refused in 0.07 ms
//! – tls   skipped: TCP failed
//! – http  skipped: TCP failed
//! verdict: TCP fails: connection refused by 127.0.0.1:41835: nothing listens on port 41835, or a firewall rejects it. Try: check the port in the URL and that the service runs there; if it should be open, a firewall rejects the connection: try another network, or the proxy your network requires (--proxy).
//! ```
//!
//! `docs/diagnose.md` in the repository shows full output of every case.
//!
//! # The command line
//!
//! With the `cli` feature, [`cli::DiagnoseArgs`] is the clap argument
//! struct of `evenkeel diagnose` (flatten it with `#[command(flatten)]`)
//! and [`cli::run`] parses nothing more, runs, prints and returns the exit
//! status. `examples/diagnose.rs` is that command:
//!
//! ```text
//! cargo run -p evenkeel-diagnose --features cli --example diagnose -- \
//!     https://api.anthropic.com/v1/models --resolver 1.1.1.1 --resolver 8.8.8.8
//! ```
//!
//! # Testing against loopback
//!
//! [`DiagnoseBuilder::resolve`] answers a host with a given address in
//! place of the system resolver (curl's `--resolve`), so `https://localhost:PORT`
//! or any test name reaches a loopback server with the right SNI;
//! [`DiagnoseBuilder::system_resolver`] turns the system resolver off, and
//! [`DiagnoseBuilder::env`] takes proxy variables from an [`EnvMap`]
//! instead of the process. Nothing then depends on the machine's
//! `resolv.conf` or environment.
//!
//! # Feature flags
//!
//! - `cli`: [`cli::DiagnoseArgs`] (clap derive) and [`cli::run`].
//!
//! TLS is rustls with the `ring` provider (no cmake, no system OpenSSL);
//! the build needs only a C compiler for `ring`.

mod cert;
#[cfg(feature = "cli")]
pub mod cli;
mod dns;
mod env;
mod fmt;
mod http;
mod options;
mod proxy;
mod proxy_url;
mod render;
mod report;
mod run;
mod target;
mod tcp;
mod tls;

pub use env::{EnvMap, EnvSource, ProcessEnv};
pub use evenkeel_core::ConfigError;

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The guide's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/diagnose.md")]
struct GuideDoctests;
pub use http::BODY_LIMIT;
pub use options::{DEFAULT_TIMEOUT, Diagnose, DiagnoseBuilder, MAX_TIMEOUT};
pub use render::{Charset, Table};
pub use report::{
    Cause, CertInfo, DnsAnswer, DnsOutcome, DnsReport, DnsSource, EXIT_FAILED, EXIT_OK, EXIT_USAGE,
    Finding, HttpReport, Layer, ProxyReport, ProxySource, Report, Resolved, Status, TcpAttempt,
    TcpOutcome, TcpReport, TlsReport, Tunnel, Verdict,
};
