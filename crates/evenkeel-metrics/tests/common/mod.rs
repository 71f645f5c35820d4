//! Reading a `DebuggingRecorder` snapshot, and running async code with a
//! local recorder on a paused current-thread runtime.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;

use metrics::Unit;
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// One recorded series.
#[derive(Debug)]
pub struct Series {
    pub kind: MetricKind,
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub unit: Option<Unit>,
    pub value: DebugValue,
}

/// Every series recorded since the last snapshot (counters and gauges are
/// read and reset, histograms drained).
pub fn take(snapshotter: &Snapshotter) -> Vec<Series> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, unit, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            Series {
                kind,
                name: key.name().to_owned(),
                labels,
                unit,
                value,
            }
        })
        .collect()
}

fn same_labels(series: &Series, labels: &[(&str, &str)]) -> bool {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    series.labels == want
}

/// The series named `name` with exactly `labels`.
pub fn find<'a>(all: &'a [Series], name: &str, labels: &[(&str, &str)]) -> &'a Series {
    all.iter()
        .find(|s| s.name == name && same_labels(s, labels))
        .unwrap_or_else(|| panic!("no series {name}{labels:?} in {all:#?}"))
}

/// Every series named `name`.
pub fn named<'a>(all: &'a [Series], name: &str) -> Vec<&'a Series> {
    all.iter().filter(|s| s.name == name).collect()
}

pub fn counter(all: &[Series], name: &str, labels: &[(&str, &str)]) -> u64 {
    match find(all, name, labels).value {
        DebugValue::Counter(v) => v,
        ref other => panic!("{name} is not a counter: {other:?}"),
    }
}

pub fn gauge(all: &[Series], name: &str, labels: &[(&str, &str)]) -> f64 {
    match &find(all, name, labels).value {
        DebugValue::Gauge(v) => v.into_inner(),
        other => panic!("{name} is not a gauge: {other:?}"),
    }
}

pub fn histogram(all: &[Series], name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    match &find(all, name, labels).value {
        DebugValue::Histogram(v) => v.iter().map(|x| x.into_inner()).collect(),
        other => panic!("{name} is not a histogram: {other:?}"),
    }
}

/// Runs `future` to completion on a paused current-thread runtime with
/// `recorder` as this thread's recorder.
pub fn run<F: Future>(recorder: &DebuggingRecorder, future: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    metrics::with_local_recorder(recorder, || rt.block_on(future))
}
