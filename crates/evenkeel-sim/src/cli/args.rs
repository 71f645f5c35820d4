//! Command-line flags.

use std::net::SocketAddr;
use std::time::Duration;

use crate::{ConfigError, Dialect, Faults, Sim, SimBuilder, TokenCost, TokenQuota};
use clap::{Parser, ValueEnum};
use http::HeaderName;

/// A simulated rate-limited, sometimes failing LLM API (Anthropic Messages
/// style by default), served over HTTP/1.1 and HTTP/2 on loopback.
///
/// Every request is checked against token-bucket quotas (429 with Retry-After
/// when one runs out), may meet an injected fault, and is answered after a
/// latency that grows when more requests are in flight than the capacity.
/// Every response carries rate-limit headers in the chosen dialect.
#[derive(Debug, Parser)]
#[command(name = "evenkeel-sim", version, after_help = AFTER_HELP)]
pub struct SimArgs {
    /// Address to listen on (ignored with --demo, which picks a free loopback port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Request quota: requests per second the bucket refills.
    #[arg(long, value_name = "PER_SEC", default_value_t = 10.0)]
    pub rate: f64,

    /// Request quota: the most requests allowed at once (the bucket size,
    /// reported as the limit).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub burst: u64,

    /// Token quota: tokens per second the bucket refills (no token quota
    /// unless set).
    #[arg(long, value_name = "PER_SEC")]
    pub token_rate: Option<f64>,

    /// Token quota: the bucket size [default: 60 × --token-rate].
    #[arg(long, value_name = "N", requires = "token_rate")]
    pub token_burst: Option<u64>,

    /// What a request costs against the token quota.
    #[arg(long, value_enum, value_name = "FROM", default_value_t = CostArg::Input)]
    pub token_cost: CostArg,

    /// The header --token-cost header reads (a decimal integer; missing
    /// costs 0).
    #[arg(long, value_name = "NAME", default_value = crate::DEFAULT_TOKEN_HEADER)]
    pub token_header: String,

    /// Rate-limit header dialect sent on every response.
    #[arg(long, value_enum, default_value_t = DialectArg::Anthropic)]
    pub dialect: DialectArg,

    /// Also send retry-after-ms (milliseconds) wherever retry-after is sent.
    #[arg(long)]
    pub retry_after_ms: bool,

    /// Fraction of requests answered 500 api_error (0 to 1).
    #[arg(long = "fail-500", value_name = "FRACTION")]
    pub fail_500: Option<f64>,

    /// Fraction of requests answered 503 overloaded_error.
    #[arg(long = "fail-503", value_name = "FRACTION")]
    pub fail_503: Option<f64>,

    /// Fraction of requests answered 529 overloaded_error with
    /// x-should-retry: true.
    #[arg(long = "fail-529", value_name = "FRACTION")]
    pub fail_529: Option<f64>,

    /// Fraction of requests answered 429 insufficient_quota (OpenAI's
    /// hopeless 429: no Retry-After).
    #[arg(long, value_name = "FRACTION")]
    pub insufficient_quota: Option<f64>,

    /// Fraction of connections reset instead of answered.
    #[arg(long, value_name = "FRACTION")]
    pub reset: Option<f64>,

    /// Fraction of answers delayed by an extra --slow-ms.
    #[arg(long, value_name = "FRACTION")]
    pub slow: Option<f64>,

    /// The extra delay of a slow answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub slow_ms: u64,

    /// Base latency of an answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub latency_ms: u64,

    /// Requests in flight served at base latency; above it latency grows as
    /// base × in_flight / capacity (unlimited unless set).
    #[arg(long, value_name = "N")]
    pub capacity: Option<usize>,

    /// Answer 503 at once to requests beyond this many in flight.
    #[arg(long, value_name = "N")]
    pub reject_above: Option<usize>,

    /// Seed of the fault-injection random number generator.
    #[arg(long, value_name = "N", default_value_t = 0x5EED)]
    pub seed: u64,

    /// Largest request body accepted, in bytes (413 above).
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub max_body_bytes: usize,

    /// Run a demo instead of serving: start the sim on a free loopback port,
    /// drive a mixed load at it (polite callers that honour Retry-After,
    /// greedy ones that exceed the quota) for SECS seconds, print a summary.
    /// Fault fractions not given on the command line get demo defaults.
    #[arg(long, value_name = "SECS")]
    pub demo: Option<u64>,
}

const AFTER_HELP: &str = "\
Examples:
  evenkeel-sim --demo 5
  evenkeel-sim --rate 5 --burst 5 --dialect openai --fail-529 0.05
  evenkeel-sim --token-rate 1000 --token-cost header --capacity 8 --latency-ms 200";

/// Where a request's token cost comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CostArg {
    /// The request header named by --token-header.
    Header,
    /// The request body's length in bytes.
    Body,
    /// The body's length / 4, rounded up (an input-token estimate).
    Input,
}

/// Rate-limit header dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DialectArg {
    /// anthropic-ratelimit-{requests,tokens,...}-{limit,remaining,reset}, RFC 3339 resets.
    Anthropic,
    /// x-ratelimit-{limit,remaining,reset}-{requests,tokens}, Go-duration resets.
    Openai,
    /// IETF structured RateLimit and RateLimit-Policy.
    Ietf,
    /// x-ratelimit-{limit,remaining,reset,used,resource}, epoch-seconds reset.
    Github,
    /// No rate-limit headers.
    None,
}

impl From<DialectArg> for Dialect {
    fn from(d: DialectArg) -> Self {
        match d {
            DialectArg::Anthropic => Dialect::Anthropic,
            DialectArg::Openai => Dialect::OpenAi,
            DialectArg::Ietf => Dialect::Ietf,
            DialectArg::Github => Dialect::GitHub,
            DialectArg::None => Dialect::None,
        }
    }
}

/// The fault fractions in force, flags and defaults resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FaultRates {
    pub(crate) fail_500: f64,
    pub(crate) fail_503: f64,
    pub(crate) fail_529: f64,
    pub(crate) insufficient_quota: f64,
    pub(crate) reset: f64,
    pub(crate) slow: f64,
    pub(crate) slow_ms: u64,
}

impl FaultRates {
    /// What the demo uses when no fault flag is given.
    /// Faults only meet requests the quota let through (about 50 in five
    /// seconds at the default rate), so the fractions are high enough for
    /// each kind to show.
    const DEMO: FaultRates = FaultRates {
        fail_500: 0.03,
        fail_503: 0.0,
        fail_529: 0.05,
        insufficient_quota: 0.0,
        reset: 0.04,
        slow: 0.1,
        slow_ms: 300,
    };

    pub(crate) fn to_faults(self) -> Faults {
        Faults::none()
            .internal_error(self.fail_500)
            .unavailable(self.fail_503)
            .overloaded(self.fail_529)
            .insufficient_quota(self.insufficient_quota)
            .reset(self.reset)
            .slow(self.slow, Duration::from_millis(self.slow_ms))
    }

    /// `500: 2%  529: 3%  reset: 1%  slow: 5% (+300 ms)`, or `none`.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (label, p) in [
            ("500", self.fail_500),
            ("503", self.fail_503),
            ("529", self.fail_529),
            ("insufficient_quota", self.insufficient_quota),
            ("reset", self.reset),
        ] {
            if p > 0.0 {
                parts.push(format!("{label}: {}%", percent(p)));
            }
        }
        if self.slow > 0.0 {
            parts.push(format!(
                "slow: {}% (+{} ms)",
                self.slow * 100.0,
                self.slow_ms
            ));
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join("  ")
        }
    }
}

/// A fraction as a percentage with at most two decimals: `0.07` → `7`.
fn percent(p: f64) -> f64 {
    (p * 10_000.0).round() / 100.0
}

impl SimArgs {
    /// Whether the demo's default faults apply: running the demo with no
    /// fault flag.
    pub(crate) fn demo_faults(&self) -> bool {
        self.demo.is_some()
            && [
                self.fail_500,
                self.fail_503,
                self.fail_529,
                self.insufficient_quota,
                self.reset,
                self.slow,
            ]
            .iter()
            .all(Option::is_none)
    }

    /// The fault fractions in force.
    pub(crate) fn fault_rates(&self) -> FaultRates {
        if self.demo_faults() {
            return FaultRates::DEMO;
        }
        FaultRates {
            fail_500: self.fail_500.unwrap_or(0.0),
            fail_503: self.fail_503.unwrap_or(0.0),
            fail_529: self.fail_529.unwrap_or(0.0),
            insufficient_quota: self.insufficient_quota.unwrap_or(0.0),
            reset: self.reset.unwrap_or(0.0),
            slow: self.slow.unwrap_or(0.0),
            slow_ms: self.slow_ms,
        }
    }

    /// The sim these flags describe.
    pub fn build(&self) -> Result<Sim, BuildError> {
        let mut builder: SimBuilder = Sim::builder()
            .requests(self.rate, self.burst)
            .dialect(self.dialect.into())
            .retry_after_ms(self.retry_after_ms)
            .faults(self.fault_rates().to_faults())
            .latency(Duration::from_millis(self.latency_ms))
            .seed(self.seed)
            .max_body_bytes(self.max_body_bytes);
        if let Some(rate) = self.token_rate {
            let burst = self
                .token_burst
                .unwrap_or_else(|| (rate * 60.0).ceil().clamp(1.0, 1e15) as u64);
            let cost = match self.token_cost {
                CostArg::Header => TokenCost::Header(
                    HeaderName::try_from(self.token_header.as_str())
                        .map_err(|_| BuildError::HeaderName(self.token_header.clone()))?,
                ),
                CostArg::Body => TokenCost::BodyBytes,
                CostArg::Input => TokenCost::InputTokenEstimate,
            };
            builder = builder.token_quota(TokenQuota::tokens(rate, burst, cost));
        }
        if let Some(c) = self.capacity {
            builder = builder.capacity(c);
        }
        if let Some(r) = self.reject_above {
            builder = builder.reject_above(r);
        }
        builder.build().map_err(BuildError::Config)
    }
}

/// The flags do not describe a valid sim.
#[derive(Debug)]
pub enum BuildError {
    /// A value the sim's builder refused (the message names the flag).
    Config(ConfigError),
    /// `--token-header` is not a valid header name.
    HeaderName(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Config(e) => {
                let flag = match e.field() {
                    "rate" => "--rate",
                    "burst" => "--burst",
                    "token_rate" => "--token-rate",
                    "token_burst" => "--token-burst",
                    "faults.reset" => "--reset",
                    "faults.internal_error" => "--fail-500",
                    "faults.unavailable" => "--fail-503",
                    "faults.overloaded" => "--fail-529",
                    "faults.insufficient_quota" => "--insufficient-quota",
                    "faults.slow" => "--slow",
                    "faults" => "the fault flags",
                    "latency" => "--latency-ms",
                    "capacity" => "--capacity",
                    "reject_above" => "--reject-above",
                    "max_body_bytes" => "--max-body-bytes",
                    other => other,
                };
                write!(f, "{flag}: {}", e.reason())
            }
            BuildError::HeaderName(name) => {
                write!(f, "--token-header: `{name}` is not a valid header name")
            }
        }
    }
}

impl std::error::Error for BuildError {}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        SimArgs::command().debug_assert();
    }

    #[test]
    fn defaults_build() {
        let args = SimArgs::parse_from(["evenkeel-sim"]);
        assert_eq!(args.listen, "127.0.0.1:8080".parse().unwrap());
        assert!(args.build().is_ok());
        assert_eq!(args.fault_rates().describe(), "none");
    }

    #[test]
    fn demo_gets_default_faults_only_without_fault_flags() {
        let args = SimArgs::parse_from(["evenkeel-sim", "--demo", "1"]);
        assert_eq!(args.fault_rates(), FaultRates::DEMO);
        let args = SimArgs::parse_from(["evenkeel-sim", "--demo", "1", "--fail-500", "0.5"]);
        assert_eq!(args.fault_rates().describe(), "500: 50%");
        let args = SimArgs::parse_from(["evenkeel-sim", "--fail-529", "0.07", "--reset", "0.001"]);
        assert_eq!(args.fault_rates().describe(), "529: 7%  reset: 0.1%");
    }

    #[test]
    fn bad_values_name_the_flag() {
        let args = SimArgs::parse_from(["evenkeel-sim", "--rate", "0"]);
        assert!(args.build().unwrap_err().to_string().starts_with("--rate:"));
        let args = SimArgs::parse_from(["evenkeel-sim", "--reset", "2"]);
        assert!(
            args.build()
                .unwrap_err()
                .to_string()
                .starts_with("--reset:")
        );
        let args = SimArgs::parse_from([
            "evenkeel-sim",
            "--token-rate",
            "10",
            "--token-cost",
            "header",
            "--token-header",
            "bad header",
        ]);
        assert!(
            args.build()
                .unwrap_err()
                .to_string()
                .starts_with("--token-header:")
        );
    }
}
