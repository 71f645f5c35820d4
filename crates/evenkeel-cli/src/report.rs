//! What a load run saw, and how it is printed.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;

/// The outcome of one load run.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) stack: &'static str,
    pub(crate) requests: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) attempts: u64,
    pub(crate) retries: u64,
    pub(crate) failovers: u64,
    pub(crate) rate_limited: u64,
    pub(crate) elapsed: Duration,
    /// End-to-end latency of each logical request, in microseconds.
    pub(crate) latency: Histogram<u64>,
    /// Final statuses of logical requests.
    pub(crate) statuses: BTreeMap<u16, u64>,
    /// Errors of logical requests that got no response, by message.
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Report {
    pub(crate) fn percentile_ms(&self, q: f64) -> f64 {
        if self.latency.is_empty() {
            return 0.0;
        }
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        json!({
            "stack": self.stack,
            "requests": self.requests,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "attempts": self.attempts,
            "retries": self.retries,
            "failovers": self.failovers,
            "rate_limited": self.rate_limited,
            "elapsed_ms": self.elapsed.as_millis() as u64,
            "p50_ms": round(self.percentile_ms(0.50)),
            "p99_ms": round(self.percentile_ms(0.99)),
            "statuses": self.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "errors": self.errors,
        })
    }

    /// A few lines for a person.
    pub(crate) fn summary(&self) -> String {
        let mut out = format!(
            "{} stack: {} requests in {:.2} s — {} succeeded, {} failed\n\
             attempts {} · retries {} · failovers {} · 429s received {}\n\
             latency p50 {:.1} ms · p99 {:.1} ms\n",
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
        );
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

fn round(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

/// Reports side by side, one column each.
pub(crate) fn table(reports: &[&Report]) -> String {
    let rows: Vec<(&str, Box<dyn Fn(&Report) -> String>)> = vec![
        ("requests", Box::new(|r| r.requests.to_string())),
        ("succeeded", Box::new(|r| r.succeeded.to_string())),
        ("failed", Box::new(|r| r.failed.to_string())),
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
            "wall time",
            Box::new(|r| format!("{:.1} s", r.elapsed.as_secs_f64())),
        ),
    ];
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

    fn report(stack: &'static str, ok: u64) -> Report {
        let mut latency = Histogram::new(3).unwrap();
        for ms in 1..=100 {
            latency.record(ms * 1000).unwrap();
        }
        Report {
            stack,
            requests: 100,
            succeeded: ok,
            failed: 100 - ok,
            attempts: 120,
            retries: 20,
            failovers: 3,
            rate_limited: 7,
            elapsed: Duration::from_millis(1500),
            latency,
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
    }

    #[test]
    fn the_table_lines_up() {
        let (a, b) = (report("bare", 60), report("preset", 100));
        let t = table(&[&a, &b]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 11);
        assert!(lines[0].ends_with("preset"));
        assert!(lines[2].contains("60") && lines[2].ends_with("100"));
        let width = lines[0].len();
        assert!(lines.iter().all(|l| l.len() == width), "{t}");
    }
}
