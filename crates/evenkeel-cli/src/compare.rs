//! `evenkeel load --compare-bare`: the bare hyper-util client and the
//! preset over the same target, run in turn, with their medians side by
//! side.

use std::fmt::Write;

use indicatif::ProgressBar;

use crate::Failure;
use crate::load::{Plan, StackArg, execute};
use crate::report::Report;

/// One run of one stack.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) failed: u64,
}

impl Run {
    fn of(report: &Report) -> Run {
        let secs = report.elapsed.as_secs_f64();
        Run {
            rps: if secs > 0.0 {
                report.requests as f64 / secs
            } else {
                0.0
            },
            p50_ms: report.percentile_ms(0.50),
            p99_ms: report.percentile_ms(0.99),
            failed: report.failed,
        }
    }
}

/// Every run of both stacks, in the order they ran.
#[derive(Debug)]
pub(crate) struct Comparison {
    pub(crate) concurrency: usize,
    pub(crate) http2: bool,
    pub(crate) bare: Vec<Run>,
    pub(crate) preset: Vec<Run>,
}

/// The median of `values` (the mean of the middle two for an even count).
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// Medians of one stack's runs: rps, p50, p99.
fn medians(runs: &[Run]) -> (f64, f64, f64) {
    (
        median(runs.iter().map(|r| r.rps).collect()),
        median(runs.iter().map(|r| r.p50_ms).collect()),
        median(runs.iter().map(|r| r.p99_ms).collect()),
    )
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

impl Comparison {
    pub(crate) fn table(&self) -> String {
        let (b_rps, b_p50, b_p99) = medians(&self.bare);
        let (p_rps, p_p50, p_p99) = medians(&self.preset);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} rounds, {} callers, {}",
            self.bare.len(),
            self.concurrency,
            if self.http2 { "HTTP/2" } else { "HTTP/1.1" }
        );
        let _ = writeln!(
            out,
            "{:<12} {:>12} {:>10} {:>10} {:>8}",
            "", "rps", "p50 ms", "p99 ms", "failed"
        );
        for (name, runs, rps, p50, p99) in [
            ("bare", &self.bare, b_rps, b_p50, b_p99),
            ("preset", &self.preset, p_rps, p_p50, p_p99),
        ] {
            let failed: u64 = runs.iter().map(|r| r.failed).sum();
            let _ = writeln!(
                out,
                "{name:<12} {rps:>12.0} {p50:>10.3} {p99:>10.3} {failed:>8}"
            );
        }
        let _ = writeln!(
            out,
            "{:<12} {:>11.3}x {:>9.3}x {:>9.3}x",
            "preset/bare",
            ratio(p_rps, b_rps),
            ratio(p_p50, b_p50),
            ratio(p_p99, b_p99)
        );
        out
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        let stack = |runs: &[Run]| {
            let (rps, p50, p99) = medians(runs);
            serde_json::json!({
                "runs": runs.iter().map(|r| serde_json::json!({
                    "rps": r.rps,
                    "p50_ms": r.p50_ms,
                    "p99_ms": r.p99_ms,
                    "failed": r.failed,
                })).collect::<Vec<_>>(),
                "rps_median": rps,
                "p50_ms_median": p50,
                "p99_ms_median": p99,
            })
        };
        let (b_rps, _, b_p99) = medians(&self.bare);
        let (p_rps, _, p_p99) = medians(&self.preset);
        serde_json::json!({
            "rounds": self.bare.len(),
            "concurrency": self.concurrency,
            "http2": self.http2,
            "bare": stack(&self.bare),
            "preset": stack(&self.preset),
            "rps_ratio": ratio(p_rps, b_rps),
            "p99_ratio": ratio(p_p99, b_p99),
        })
    }
}

/// Runs `plan` with the bare client and with the preset, alternating,
/// `rounds` times each, so both see the same machine load.
pub(crate) async fn compare(plan: &Plan, rounds: usize) -> Result<Comparison, Failure> {
    let mut comparison = Comparison {
        concurrency: plan.concurrency,
        http2: plan.http2,
        bare: Vec::with_capacity(rounds),
        preset: Vec::with_capacity(rounds),
    };
    for _ in 0..rounds {
        for stack in [StackArg::Bare, StackArg::Preset] {
            let mut plan = plan.clone();
            plan.stack = stack;
            let report = execute(&plan, &ProgressBar::hidden()).await?;
            let run = Run::of(&report);
            match stack {
                StackArg::Bare => comparison.bare.push(run),
                StackArg::Preset => comparison.preset.push(run),
            }
        }
    }
    Ok(comparison)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }

    #[test]
    fn the_table_gives_the_preset_as_a_ratio_of_bare() {
        let run = |rps, p99| Run {
            rps,
            p50_ms: 1.0,
            p99_ms: p99,
            failed: 0,
        };
        let comparison = Comparison {
            concurrency: 16,
            http2: false,
            bare: vec![run(1000.0, 2.0), run(1200.0, 2.0)],
            preset: vec![run(900.0, 2.2), run(1080.0, 2.2)],
        };
        let json = comparison.to_json();
        assert!((json["rps_ratio"].as_f64().unwrap() - 0.9).abs() < 1e-9);
        assert!((json["p99_ratio"].as_f64().unwrap() - 1.1).abs() < 1e-9);
        assert_eq!(json["bare"]["rps_median"], 1100.0);
        let table = comparison.table();
        assert!(table.contains("preset/bare"), "{table}");
        assert!(table.contains("0.900x"), "{table}");
    }
}
