//! What a load run saw, and how it is printed.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;

use crate::cause::Causes;

/// The outcome of one load run.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) stack: &'static str,
    pub(crate) requests: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    /// Failed requests by cause.
    pub(crate) failures: Causes,
    /// Attempts on the wire, first ones, retries and failovers alike.
    pub(crate) attempts: u64,
    /// Attempts after the first of each request.
    pub(crate) retries: u64,
    pub(crate) failovers: u64,
    pub(crate) rate_limited: u64,
    pub(crate) elapsed: Duration,
    /// End-to-end latency of each logical request, in microseconds.
    pub(crate) latency: Histogram<u64>,
    /// Time each attempt took on the wire, to its response head, in
    /// microseconds.
    pub(crate) attempt_time: Histogram<u64>,
    /// The waits for quota the stack imposed on itself, summed over every
    /// request.
    pub(crate) quota_wait: Duration,
    /// Calls to a shared quota store that failed or timed out (the process
    /// paced itself locally meanwhile).
    pub(crate) quota_store_errors: u64,
    /// Final statuses of logical requests.
    pub(crate) statuses: BTreeMap<u16, u64>,
    /// Errors of logical requests that got no response, by message.
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Report {
    pub(crate) fn percentile_ms(&self, q: f64) -> f64 {
        quantile_ms(&self.latency, q)
    }

    /// The `q` quantile of attempt times on the wire, in milliseconds.
    pub(crate) fn attempt_percentile_ms(&self, q: f64) -> f64 {
        quantile_ms(&self.attempt_time, q)
    }

    /// The quota wait per request, in milliseconds.
    pub(crate) fn mean_quota_wait_ms(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        self.quota_wait.as_secs_f64() * 1000.0 / self.requests as f64
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        json!({
            "stack": self.stack,
            "requests": self.requests,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "failures_by_cause": self.failures.iter().map(|(c, n)| (c.key().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "attempts": self.attempts,
            "retries": self.retries,
            "failovers": self.failovers,
            "rate_limited": self.rate_limited,
            "elapsed_ms": self.elapsed.as_millis() as u64,
            "p50_ms": round(self.percentile_ms(0.50)),
            "p99_ms": round(self.percentile_ms(0.99)),
            "attempt_p50_ms": round(self.attempt_percentile_ms(0.50)),
            "attempt_p99_ms": round(self.attempt_percentile_ms(0.99)),
            "quota_wait_ms": round(self.quota_wait.as_secs_f64() * 1000.0),
            "quota_wait_mean_ms": round(self.mean_quota_wait_ms()),
            "quota_store_errors": self.quota_store_errors,
            "statuses": self.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "errors": self.errors,
        })
    }

    /// A few lines for a person.
    pub(crate) fn summary(&self) -> String {
        let mut out = format!(
            "{} stack: {} requests in {:.2} s — {} succeeded, {} failed\n\
             attempts {} · retries {} · failovers {} · 429s received {}\n\
             latency p50 {:.1} ms · p99 {:.1} ms (end to end) · on the wire p50 {:.1} ms · p99 {:.1} ms\n\
             quota wait {:.1} ms per request\n",
            self.stack,
            self.requests,
            self.elapsed.as_secs_f64(),
            self.succeeded,
            self.failed,
            self.attempts,
            self.retries,
            self.failovers,
            self.rate_limited,
            self.percentile_ms(0.50),
            self.percentile_ms(0.99),
            self.attempt_percentile_ms(0.50),
            self.attempt_percentile_ms(0.99),
            self.mean_quota_wait_ms(),
        );
        if self.quota_store_errors > 0 {
            out.push_str(&format!(
                "quota store: {} calls failed or timed out; paced locally meanwhile\n",
                self.quota_store_errors
            ));
        }
        if self.failed > 0 {
            let causes: Vec<String> = self
                .failures
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(c, n)| format!("{} {n}", c.key()))
                .collect();
            out.push_str(&format!("failures: {}\n", causes.join(" · ")));
        }
        if !self.statuses.is_empty() {
            let statuses: Vec<String> = self
                .statuses
                .iter()
                .map(|(s, n)| format!("{s}×{n}"))
                .collect();
            out.push_str(&format!("final statuses: {}\n", statuses.join(" ")));
        }
        for (error, n) in self.errors.iter().take(5) {
            out.push_str(&format!("error ×{n}: {error}\n"));
        }
        out
    }
}

fn quantile_ms(histogram: &Histogram<u64>, q: f64) -> f64 {
    if histogram.is_empty() {
        return 0.0;
    }
    histogram.value_at_quantile(q) as f64 / 1000.0
}

fn round(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

/// Reports side by side, one column each.
///
/// Failures are broken down by cause under `failed`. Latency is end to end,
/// waits included; the quota wait (the time the stack held requests back to
/// stay inside the quota) and the time on the wire (per attempt, to the
/// response head) are shown apart, so a paced run is not read as a slow one.
pub(crate) fn table(reports: &[&Report]) -> String {
    let mut rows: Vec<(&str, Box<dyn Fn(&Report) -> String>)> = vec![
        ("requests", Box::new(|r| r.requests.to_string())),
        ("succeeded", Box::new(|r| r.succeeded.to_string())),
        ("failed", Box::new(|r| r.failed.to_string())),
    ];
    for cause in crate::cause::Cause::ALL {
        rows.push((
            cause.label(),
            Box::new(move |r| r.failures.get(cause).to_string()),
        ));
    }
    rows.extend::<Vec<(&str, Box<dyn Fn(&Report) -> String>)>>(vec![
        ("429s received", Box::new(|r| r.rate_limited.to_string())),
        ("attempts", Box::new(|r| r.attempts.to_string())),
        ("retries", Box::new(|r| r.retries.to_string())),
        ("failovers", Box::new(|r| r.failovers.to_string())),
        (
            "p50 latency",
            Box::new(|r| format!("{:.1} ms", r.percentile_ms(0.5))),
        ),
        (
            "p99 latency",
            Box::new(|r| format!("{:.1} ms", r.percentile_ms(0.99))),
        ),
        (
            "  quota wait, mean",
            Box::new(|r| format!("{:.1} ms", r.mean_quota_wait_ms())),
        ),
        (
            "  p50 on the wire",
            Box::new(|r| format!("{:.1} ms", r.attempt_percentile_ms(0.5))),
        ),
        (
            "  p99 on the wire",
            Box::new(|r| format!("{:.1} ms", r.attempt_percentile_ms(0.99))),
        ),
        (
            "wall time",
            Box::new(|r| format!("{:.1} s", r.elapsed.as_secs_f64())),
        ),
    ]);
    let label_width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(_, f)| reports.iter().map(|r| f(r)).collect())
        .collect();
    let widths: Vec<usize> = (0..reports.len())
        .map(|i| {
            cells
                .iter()
                .map(|row| row[i].len())
                .chain(std::iter::once(reports[i].stack.len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{:label_width$}", "");
    for (i, r) in reports.iter().enumerate() {
        out.push_str(&format!("  {:>w$}", r.stack, w = widths[i]));
    }
    out.push('\n');
    for ((label, _), row) in rows.iter().zip(&cells) {
        out.push_str(&format!("{label:label_width$}"));
        for (i, cell) in row.iter().enumerate() {
            out.push_str(&format!("  {cell:>w$}", w = widths[i]));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cause::Cause;

    fn report(stack: &'static str, ok: u64) -> Report {
        let mut latency = Histogram::new(3).unwrap();
        let mut attempt_time = Histogram::new(3).unwrap();
        for ms in 1..=100 {
            latency.record(ms * 1000).unwrap();
            attempt_time.record(ms * 100).unwrap();
        }
        let mut failures = Causes::default();
        for i in 0..100 - ok {
            failures.add(if i % 2 == 0 {
                Cause::RateLimited
            } else {
                Cause::Reset
            });
        }
        Report {
            stack,
            requests: 100,
            succeeded: ok,
            failed: 100 - ok,
            failures,
            attempts: 120,
            retries: 20,
            failovers: 3,
            rate_limited: 7,
            elapsed: Duration::from_millis(1500),
            latency,
            attempt_time,
            quota_wait: Duration::from_secs(25),
            quota_store_errors: 2,
            statuses: BTreeMap::from([(200, ok)]),
            errors: BTreeMap::new(),
        }
    }

    #[test]
    fn json_has_the_fixed_fields() {
        let v = report("preset", 90).to_json();
        for field in [
            "requests",
            "succeeded",
            "failed",
            "attempts",
            "retries",
            "rate_limited",
            "elapsed_ms",
            "p50_ms",
            "p99_ms",
        ] {
            assert!(v.get(field).is_some(), "{field}");
        }
        assert_eq!(v["elapsed_ms"], 1500);
        assert_eq!(v["p50_ms"], 50.0);
        assert_eq!(v["p99_ms"], 99.0);
        assert_eq!(v["attempt_p50_ms"], 5.0);
        assert_eq!(v["quota_wait_ms"], 25_000.0);
        assert_eq!(v["quota_wait_mean_ms"], 250.0);
        assert_eq!(v["quota_store_errors"], 2);
        let causes = v["failures_by_cause"].as_object().unwrap();
        let keys: Vec<&str> = causes.keys().map(String::as_str).collect();
        let mut want = [
            "rate_limited",
            "server_error",
            "reset",
            "timeout",
            "local",
            "other",
        ];
        want.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(causes["rate_limited"], 5);
        assert_eq!(causes["reset"], 5);
        assert_eq!(causes["timeout"], 0);
    }

    #[test]
    fn the_summary_names_failure_causes_and_waits() {
        let s = report("preset", 90).summary();
        assert!(s.contains("failures: rate_limited 5 · reset 5"), "{s}");
        assert!(s.contains("quota wait 250.0 ms per request"), "{s}");
        assert!(!report("preset", 100).summary().contains("failures:"));
        assert!(s.contains("quota store: 2 calls failed"), "{s}");
    }

    #[test]
    fn the_table_lines_up() {
        let (a, b) = (report("bare", 60), report("preset", 100));
        let t = table(&[&a, &b]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 20);
        assert!(lines[0].ends_with("preset"));
        assert!(lines[2].contains("60") && lines[2].ends_with("100"));
        let row = |label: &str| {
            lines
                .iter()
                .find(|l| l.starts_with(label))
                .unwrap_or_else(|| panic!("{label}: {t}"))
                .split_whitespace()
                .rev()
                .take(2)
                .collect::<Vec<_>>()
        };
        assert_eq!(row("  429 rate limited"), ["0", "20"]);
        assert_eq!(row("  connection reset"), ["0", "20"]);
        assert_eq!(row("  quota wait, mean"), ["ms", "250.0"]);
        assert_eq!(row("  p50 on the wire"), ["ms", "5.0"]);
        let width = lines[0].len();
        assert!(lines.iter().all(|l| l.len() == width), "{t}");
    }
}
