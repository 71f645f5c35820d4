//! `evenkeel load`'s quota flags: where quota state lives, under which key,
//! and a declared request rate.

use std::fmt;
use std::time::Duration;

use clap::Args;

/// The quota flags of `evenkeel load` (preset only).
#[derive(Debug, Clone, Args)]
pub(crate) struct QuotaArgs {
    /// Where quota state lives: `memory` (this process), or a Redis server,
    /// `redis://HOST:PORT[/DB]`, shared by every process using it: processes
    /// with the same --quota-key pace against one quota.
    #[arg(
        long,
        value_name = "memory|redis://HOST:PORT[/DB]",
        default_value = "memory",
        value_parser = parse_quota_store
    )]
    pub(crate) quota_store: QuotaStoreArg,
    /// The quota key: every endpoint, and every process on the same
    /// --quota-store, using this name shares one quota (one API key, one
    /// key) [default: each URL's host:port].
    #[arg(long, value_name = "NAME", value_parser = parse_quota_key)]
    pub(crate) quota_key: Option<String>,
    /// A declared request quota, for APIs that send no rate-limit headers:
    /// N requests per second or per minute, spread evenly (a burst of one)
    /// unless a burst is given. Examples: 3000/min, 10/s:5.
    #[arg(long, value_name = "N/s|N/min[:BURST]", value_parser = parse_rate_limit)]
    pub(crate) rate_limit: Option<RateLimitArg>,
}

impl Default for QuotaArgs {
    fn default() -> Self {
        QuotaArgs {
            quota_store: QuotaStoreArg::Memory,
            quota_key: None,
            rate_limit: None,
        }
    }
}

impl QuotaArgs {
    /// Whether any flag asks for more than the defaults.
    pub(crate) fn is_default(&self) -> bool {
        self.quota_store == QuotaStoreArg::Memory
            && self.quota_key.is_none()
            && self.rate_limit.is_none()
    }
}

/// `--quota-store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QuotaStoreArg {
    /// This process's memory.
    Memory,
    /// A Redis server, by URL (`redis://HOST:PORT[/DB]`, checked).
    Redis(String),
}

impl fmt::Display for QuotaStoreArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuotaStoreArg::Memory => f.write_str("memory"),
            QuotaStoreArg::Redis(url) => f.write_str(url),
        }
    }
}

/// Parses `--quota-store`. Clap's message quotes what was typed; the error
/// says what is wrong with it.
fn parse_quota_store(raw: &str) -> Result<QuotaStoreArg, String> {
    if raw == "memory" {
        return Ok(QuotaStoreArg::Memory);
    }
    let Some(rest) = raw.strip_prefix("redis://") else {
        return Err(format!(
            "'{raw}' is neither `memory` nor a Redis URL `redis://HOST:PORT[/DB]`"
        ));
    };
    let (authority, db) = match rest.split_once('/') {
        Some((authority, db)) => (authority, Some(db)),
        None => (rest, None),
    };
    if authority.contains('@') {
        return Err(format!(
            "'{raw}': credentials are not taken in the URL; write `redis://HOST:PORT[/DB]`"
        ));
    }
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Err(format!(
            "'{raw}' has no port; write `redis://HOST:PORT[/DB]`"
        ));
    };
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    if bare_host.is_empty()
        || !bare_host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
    {
        return Err(format!("'{raw}' has no valid host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(format!("'{raw}': the port '{port}' is not in 1..=65535")),
    }
    if let Some(db) = db
        && !db.is_empty()
        && db.parse::<u16>().is_err()
    {
        return Err(format!("'{raw}': the database '{db}' is not a number"));
    }
    Ok(QuotaStoreArg::Redis(raw.to_owned()))
}

/// Parses `--quota-key`.
fn parse_quota_key(raw: &str) -> Result<String, String> {
    if raw.trim().is_empty() {
        return Err("the quota key must not be empty".to_owned());
    }
    if raw.len() > 256 {
        return Err("the quota key is longer than 256 bytes".to_owned());
    }
    Ok(raw.to_owned())
}

/// `--rate-limit`: `requests` per `per`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimitArg {
    pub(crate) requests: u64,
    pub(crate) per: Duration,
    pub(crate) burst: u64,
}

/// The largest `N` and `BURST` taken: more than any API's quota, small
/// enough that the arithmetic on them stays exact.
const MAX_RATE: u64 = 1_000_000_000;

/// Parses `--rate-limit N/s|N/min[:BURST]`.
fn parse_rate_limit(raw: &str) -> Result<RateLimitArg, String> {
    let usage = "write it as N/s or N/min, with an optional :BURST (3000/min, 10/s:5)";
    let (rate, burst) = match raw.split_once(':') {
        Some((rate, burst)) => (rate, Some(burst)),
        None => (raw, None),
    };
    let Some((n, unit)) = rate.split_once('/') else {
        return Err(format!("'{raw}' has no unit; {usage}"));
    };
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "min" => Duration::from_secs(60),
        other => {
            return Err(format!(
                "'{raw}': the unit '{other}' is not s or min; {usage}"
            ));
        }
    };
    let count = |what: &str, text: &str| -> Result<u64, String> {
        match text.trim().parse::<u64>() {
            Ok(0) => Err(format!("'{raw}': {what} must be at least 1")),
            Ok(v) if v > MAX_RATE => Err(format!("'{raw}': {what} is capped at {MAX_RATE}")),
            Ok(v) => Ok(v),
            Err(_) => Err(format!(
                "'{raw}': {what} '{}' is not a whole number; {usage}",
                text.trim()
            )),
        }
    };
    let requests = count("the request count", n)?;
    let burst = match burst {
        Some(b) => count("the burst", b)?,
        None => 1,
    };
    if burst > requests {
        return Err(format!(
            "'{raw}': the burst ({burst}) is larger than the quota ({requests})"
        ));
    }
    Ok(RateLimitArg {
        requests,
        per,
        burst,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse() {
        let minute = Duration::from_secs(60);
        let second = Duration::from_secs(1);
        for (raw, want) in [
            ("3000/min", (3000, minute, 1)),
            ("10/s:5", (10, second, 5)),
            ("10/s", (10, second, 1)),
            ("1/min:1", (1, minute, 1)),
        ] {
            let got = parse_rate_limit(raw).unwrap();
            assert_eq!((got.requests, got.per, got.burst), want, "{raw}");
        }
    }

    #[test]
    fn bad_rate_limits_quote_the_input_and_say_why() {
        for (bad, why) in [
            ("3000", "no unit"),
            ("3000/h", "the unit 'h' is not s or min"),
            ("3000/m", "the unit 'm' is not s or min"),
            ("0/s", "at least 1"),
            ("x/s", "'x' is not a whole number"),
            ("-1/s", "not a whole number"),
            ("10/s:0", "the burst must be at least 1"),
            ("10/s:x", "the burst 'x' is not a whole number"),
            ("10/s:11", "larger than the quota"),
            ("99999999999999999999999/s", "not a whole number"),
            ("2000000000/s", "capped"),
            ("", "no unit"),
        ] {
            let err = parse_rate_limit(bad).unwrap_err();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn quota_stores_parse() {
        assert_eq!(parse_quota_store("memory").unwrap(), QuotaStoreArg::Memory);
        for url in [
            "redis://127.0.0.1:6379",
            "redis://127.0.0.1:6379/2",
            "redis://localhost:7000/",
            "redis://[::1]:6379",
        ] {
            assert_eq!(
                parse_quota_store(url).unwrap(),
                QuotaStoreArg::Redis(url.to_owned())
            );
        }
    }

    #[test]
    fn bad_quota_stores_quote_the_input_and_say_why() {
        for (bad, why) in [
            ("Memory", "neither `memory` nor a Redis URL"),
            ("http://127.0.0.1:6379", "neither `memory` nor a Redis URL"),
            ("redis://127.0.0.1", "no port"),
            ("redis://:6379", "no valid host"),
            ("redis://127.0.0.1:0", "not in 1..=65535"),
            ("redis://127.0.0.1:99999", "not in 1..=65535"),
            ("redis://127.0.0.1:6379/db", "'db' is not a number"),
            ("redis://user:pw@127.0.0.1:6379", "credentials"),
            ("redis://ho st:6379", "no valid host"),
        ] {
            let err = parse_quota_store(bad).unwrap_err();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn quota_keys_are_not_empty() {
        assert_eq!(parse_quota_key("team").unwrap(), "team");
        assert!(parse_quota_key("").unwrap_err().contains("empty"));
        assert!(parse_quota_key("  ").unwrap_err().contains("empty"));
        assert!(
            parse_quota_key(&"k".repeat(300))
                .unwrap_err()
                .contains("256")
        );
    }
}
