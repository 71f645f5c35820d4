//! The `diagnose` command line: [`DiagnoseArgs`] (flatten it into a clap
//! command) and [`run`], which does the rest.
//!
//! ```no_run
//! use clap::Parser;
//! use evenkeel_diagnose::cli::{self, DiagnoseArgs};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     diagnose: DiagnoseArgs,
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> std::process::ExitCode {
//!     let cli = Cli::parse();
//!     std::process::ExitCode::from(cli::run(&cli.diagnose).await)
//! }
//! ```

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::ConfigError;
use crate::env::{EnvSource, ProcessEnv, mask_credentials};
use crate::options::{Diagnose, DiagnoseBuilder};
use crate::render::Charset;
use crate::report::{EXIT_FAILED, EXIT_USAGE};

/// The request method (`--method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
#[non_exhaustive]
pub enum MethodArg {
    /// GET: reads the body, up to a bound.
    #[default]
    #[value(name = "GET", alias = "get")]
    Get,
    /// HEAD: no body.
    #[value(name = "HEAD", alias = "head")]
    Head,
}

/// The arguments of `diagnose`: `URL [--resolver IP[:PORT]]... [--resolve
/// HOST:IP]... [--no-system-resolver] [--proxy URL | --no-proxy] [--ca-file
/// PEM]... [--method GET|HEAD] [--header 'K: V']... [--timeout-ms N]
/// [--json] [--ascii]`.
#[derive(Clone, PartialEq, Eq, clap::Args)]
#[non_exhaustive]
pub struct DiagnoseArgs {
    /// The URL to check, `http://` or `https://`.
    #[arg(
        value_name = "URL",
        help = "The URL to check, http:// or https:// (e.g. https://api.anthropic.com/v1/models)"
    )]
    pub url: String,

    /// Also ask this DNS server over UDP and compare answers (repeatable).
    #[arg(long = "resolver", value_name = "IP[:PORT]")]
    pub resolvers: Vec<String>,

    /// Use IP for HOST instead of the system resolver, like curl (repeatable).
    #[arg(long = "resolve", value_name = "HOST:IP")]
    pub resolve: Vec<String>,

    /// Do not ask the system resolver; connect to what the first --resolver answers.
    #[arg(long)]
    pub no_system_resolver: bool,

    /// Go through this HTTP proxy (default: HTTPS_PROXY / HTTP_PROXY, minus NO_PROXY).
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy")]
    pub proxy: Option<String>,

    /// Ignore proxy settings in the environment.
    #[arg(long)]
    pub no_proxy: bool,

    /// Also trust the CA certificates in this PEM file (repeatable).
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<PathBuf>,

    /// The request method.
    #[arg(long, value_enum, default_value_t = MethodArg::Get, ignore_case = true)]
    pub method: MethodArg,

    /// A request header, 'Name: value' (repeatable; e.g. an API key).
    #[arg(long = "header", short = 'H', value_name = "'K: V'")]
    pub headers: Vec<String>,

    /// The timeout of each step, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 5000)]
    pub timeout_ms: u64,

    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Draw the table in plain ASCII.
    #[arg(long)]
    pub ascii: bool,
}

impl fmt::Debug for DiagnoseArgs {
    /// Header values (API keys) and proxy passwords are not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self
            .headers
            .iter()
            .map(|h| h.split(':').next().unwrap_or("").trim())
            .collect();
        f.debug_struct("DiagnoseArgs")
            .field("url", &self.url)
            .field("resolvers", &self.resolvers)
            .field("resolve", &self.resolve)
            .field("no_system_resolver", &self.no_system_resolver)
            .field("proxy", &self.proxy.as_deref().map(mask_credentials))
            .field("no_proxy", &self.no_proxy)
            .field("ca_files", &self.ca_files)
            .field("method", &self.method)
            .field("header_names", &headers)
            .field("timeout_ms", &self.timeout_ms)
            .field("json", &self.json)
            .field("ascii", &self.ascii)
            .finish()
    }
}

impl DiagnoseArgs {
    /// The arguments for `url`, everything else at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            resolvers: Vec::new(),
            resolve: Vec::new(),
            no_system_resolver: false,
            proxy: None,
            no_proxy: false,
            ca_files: Vec::new(),
            method: MethodArg::Get,
            headers: Vec::new(),
            timeout_ms: 5000,
            json: false,
            ascii: false,
        }
    }

    /// A builder set from the arguments, to adjust before
    /// [`build`](DiagnoseBuilder::build) (the environment source, say).
    pub fn to_builder(&self) -> DiagnoseBuilder {
        let mut b = Diagnose::builder(self.url.clone())
            .system_resolver(!self.no_system_resolver)
            .method(match self.method {
                MethodArg::Get => http::Method::GET,
                MethodArg::Head => http::Method::HEAD,
            })
            .timeout(Duration::from_millis(self.timeout_ms));
        for r in &self.resolvers {
            b = b.resolver_str(r.clone());
        }
        for r in &self.resolve {
            b = b.resolve_str(r.clone());
        }
        if let Some(p) = &self.proxy {
            b = b.proxy(p.clone());
        }
        if self.no_proxy {
            b = b.no_proxy();
        }
        for f in &self.ca_files {
            b = b.ca_file(f.clone());
        }
        for h in &self.headers {
            b = b.header_line(h.clone());
        }
        b
    }

    /// The [`Diagnose`] the arguments describe, reading proxy variables
    /// from `env`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the bad argument.
    pub fn build(&self, env: Arc<dyn EnvSource>) -> Result<Diagnose, ConfigError> {
        self.to_builder().env_arc(env).build()
    }

    /// The table's characters.
    pub fn charset(&self) -> Charset {
        if self.ascii {
            Charset::Ascii
        } else {
            Charset::Unicode
        }
    }
}

/// Runs `diagnose` with the process environment, printing to stdout (the
/// table or JSON) and stderr (argument errors). Returns the exit status:
/// 0 when every layer passes, 1 when one fails, 2 for bad arguments.
pub async fn run(args: &DiagnoseArgs) -> u8 {
    let stdout = io::stdout();
    let stderr = io::stderr();
    run_with(
        args,
        Arc::new(ProcessEnv),
        &mut stdout.lock(),
        &mut stderr.lock(),
    )
    .await
}

/// [`run`] with an environment source and output streams of the caller's
/// choosing (tests, embedding).
pub async fn run_with(
    args: &DiagnoseArgs,
    env: Arc<dyn EnvSource>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let diagnose = match args.build(env) {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return EXIT_USAGE;
        }
    };
    let report = diagnose.run().await;
    let written = if args.json {
        serde_json::to_string_pretty(&report.to_json())
            .map_err(io::Error::other)
            .and_then(|text| writeln!(out, "{text}"))
    } else {
        write!(out, "{}", report.table().charset(args.charset()))
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        let _ = writeln!(err, "error: cannot write the report: {e}");
        return EXIT_FAILED;
    }
    report.exit_code()
}
