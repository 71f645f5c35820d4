//! The Grafana dashboard and the Prometheus alerting rules in docs/metrics
//! parse, and every metric and label they query is one evenkeel-metrics
//! exports: each metric is recorded through the example's Prometheus
//! recorder (recommended naming, advised buckets), rendered, and the
//! queries are checked against the rendered names and label keys.

#[path = "../../crates/evenkeel-metrics/examples/prometheus.rs"]
#[allow(dead_code, unreachable_pub)] // the example's `main` and helpers
mod example;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::time::Duration;

use evenkeel_core::event::{EndpointState, Event, GiveUp};
use evenkeel_core::{Outcome, Signal};
use evenkeel_headers::Resource;
use evenkeel_metrics::{MetricsLayer, MetricsListener, Scope};
use http::{Request, Response};
use tower::{Layer, ServiceExt, service_fn};
use yaml_rust2::{Yaml, YamlLoader};

const DASHBOARD: &str = include_str!("../../docs/metrics/grafana-dashboard.json");
const ALERTS: &str = include_str!("../../docs/metrics/alerts.yml");

/// Exported metric name → the label keys seen on it.
type Exported = BTreeMap<String, BTreeSet<String>>;

/// Records every metric the crate has, renders it, and reads back the
/// exported names and label keys.
fn exported() -> Exported {
    let recorder = example::recorder();
    let handle = recorder.handle();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let answer = service_fn(|req: Request<()>| async move {
                let status = if req.uri().path() == "/limited" {
                    429
                } else {
                    200
                };
                let res = Response::builder()
                    .status(status)
                    .header("x-ratelimit-limit-requests", "100")
                    .header("x-ratelimit-remaining-requests", "7")
                    .header("x-ratelimit-reset-requests", "3s")
                    .body(())
                    .unwrap();
                Ok::<_, Infallible>(res)
            });
            for scope in [Scope::Call, Scope::Attempt] {
                let layer = MetricsLayer::builder().scope(scope).build().unwrap();
                for path in ["/ok", "/limited"] {
                    let uri = format!("http://api.example.com{path}");
                    let req = Request::get(uri).body(()).unwrap();
                    layer.layer(answer).oneshot(req).await.unwrap();
                }
            }
            let events = MetricsListener::new().events();
            let limited = Outcome::RateLimited(Signal::NONE);
            let tokens = Resource::Tokens;
            events.emit(|| Event::Retry {
                attempt: 2,
                outcome: &limited,
                wait: Duration::from_secs(1),
                server_directed: true,
            });
            events.emit(|| Event::GaveUp {
                reason: GiveUp::Budget,
                outcome: &limited,
                attempts: 1,
            });
            events.emit(|| Event::LimitChanged {
                name: "api",
                limit: 10,
            });
            events.emit(|| Event::LimitRejected { name: "api" });
            events.emit(|| Event::QuotaWait {
                key: "org",
                resource: &tokens,
                wait: Duration::from_millis(300),
            });
            events.emit(|| Event::QuotaRejected {
                key: "org",
                resource: &tokens,
                wait: None,
            });
            events.emit(|| Event::EndpointState {
                endpoint: "primary",
                state: EndpointState::Ejected,
            });
            events.emit(|| Event::Failover {
                from: "primary",
                to: "backup",
                outcome: &limited,
            });
            events.emit(|| Event::Failback { to: "primary" });
        })
    });
    let mut exported = Exported::new();
    for line in handle.render().lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let series = line.rsplit_once(' ').unwrap().0;
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let keys = exported.entry(name.to_owned()).or_default();
        for kv in labels
            .trim_end_matches('}')
            .split(',')
            .filter(|kv| !kv.is_empty())
        {
            keys.insert(kv.split_once('=').unwrap().0.to_owned());
        }
    }
    exported
}

/// What a PromQL expression refers to.
#[derive(Debug, Default)]
struct Refs {
    /// Metric names, each with the label keys of its matchers.
    selectors: Vec<(String, Vec<String>)>,
    /// Label keys in `by`, `without`, `on`, `ignoring`, `group_*` clauses.
    grouping: Vec<String>,
}

/// Operators and aggregations, which may stand before `by (…)` rather than
/// `(`.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// A small PromQL scanner: enough to find metric names, matcher label keys
/// and grouping labels in the queries of a dashboard or rules file.
fn refs(expr: &str) -> Refs {
    let chars: Vec<char> = expr.chars().collect();
    let mut refs = Refs::default();
    let mut i = 0;
    // The selector a `{` right after it belongs to.
    let mut last_metric: Option<usize> = None;
    let skip_ws = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    let skip_string = |j: usize| {
        let quote = chars[j];
        let mut k = j + 1;
        while k < chars.len() && chars[k] != quote {
            if chars[k] == '\\' {
                k += 1;
            }
            k += 1;
        }
        k + 1
    };
    let read_ident = |j: usize| {
        let mut k = j;
        while k < chars.len() && ident_char(chars[k]) {
            k += 1;
        }
        (chars[j..k].iter().collect::<String>(), k)
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' || c == '`' {
            i = skip_string(i);
            last_metric = None;
        } else if c == '$' {
            // A Grafana variable: `$var`, `$__rate_interval`, `${var}`.
            i += 1;
            if i < chars.len() && chars[i] == '{' {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                i = read_ident(i).1;
            }
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
            last_metric = None;
        } else if c == '{' {
            let mut keys = Vec::new();
            i += 1;
            while i < chars.len() && chars[i] != '}' {
                let d = chars[i];
                if d == '"' || d == '\'' || d == '`' {
                    i = skip_string(i);
                } else if ident_start(d) {
                    let (key, next) = read_ident(i);
                    keys.push(key);
                    i = next;
                } else {
                    i += 1;
                }
            }
            i += 1;
            match last_metric.take() {
                Some(index) => refs.selectors[index].1.extend(keys),
                None => refs.selectors.push((String::new(), keys)),
            }
        } else if ident_start(c) {
            let (word, next) = read_ident(i);
            let after = skip_ws(next);
            let paren = after < chars.len() && chars[after] == '(';
            i = next;
            last_metric = None;
            if GROUPING.contains(&word.as_str()) {
                if paren {
                    i = after + 1;
                    while i < chars.len() && chars[i] != ')' {
                        if ident_start(chars[i]) {
                            let (label, n) = read_ident(i);
                            refs.grouping.push(label);
                            i = n;
                        } else {
                            i += 1;
                        }
                    }
                    i += 1;
                }
            } else if paren || KEYWORDS.contains(&word.as_str()) {
                // A function or aggregation, or an operator keyword.
            } else {
                refs.selectors.push((word, Vec::new()));
                last_metric = Some(refs.selectors.len() - 1);
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number or a duration.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            last_metric = None;
        } else {
            i += 1;
            last_metric = None;
        }
    }
    refs
}

/// Checks `expr` against the exported names; returns the problems found.
fn check(what: &str, expr: &str, exported: &Exported) -> Vec<String> {
    let refs = refs(expr);
    let mut problems = Vec::new();
    if refs.selectors.iter().all(|(m, _)| m.is_empty()) {
        problems.push(format!("{what}: no metric in `{expr}`"));
    }
    let mut labels_here = BTreeSet::new();
    for (metric, keys) in &refs.selectors {
        let Some(known) = exported.get(metric) else {
            problems.push(format!("{what}: `{metric}` is not exported"));
            continue;
        };
        labels_here.extend(known.iter().cloned());
        for key in keys {
            if !known.contains(key) {
                problems.push(format!("{what}: `{metric}` has no label `{key}`"));
            }
        }
    }
    for label in &refs.grouping {
        if !labels_here.contains(label) {
            problems.push(format!("{what}: no metric in `{expr}` has label `{label}`"));
        }
    }
    problems
}

#[test]
fn the_scanner_finds_metrics_matchers_and_grouping_labels() {
    let r = refs(
        r#"histogram_quantile(0.99, sum by (le, a) (rate(x_bucket{b="1", c=~"$v"}[$__rate_interval]))) / on(d) y > 0.1 and z{e!=""} offset 5m"#,
    );
    assert_eq!(
        r.selectors,
        [
            ("x_bucket".to_owned(), vec!["b".to_owned(), "c".to_owned()]),
            ("y".to_owned(), vec![]),
            ("z".to_owned(), vec!["e".to_owned()]),
        ]
    );
    assert_eq!(r.grouping, ["le", "a", "d"]);
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let exported = exported();
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("valid JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut problems = Vec::new();
    let mut titles = Vec::new();
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("a title");
        titles.push(title.to_owned());
        assert!(
            ids.insert(panel["id"].as_u64().expect("an id")),
            "duplicate id"
        );
        assert!(
            panel["gridPos"]["w"]
                .as_u64()
                .is_some_and(|w| w > 0 && w <= 24)
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("an expr");
            problems.extend(check(title, expr, &exported));
        }
    }
    // Template variables query label values of exported metrics.
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if let Some(q) = var["query"]["query"].as_str() {
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .expect("label_values(metric, label)");
            let (metric, label) = inner.split_once(',').expect("metric, label");
            let (metric, label) = (metric.trim(), label.trim());
            match exported.get(metric) {
                Some(keys) if keys.contains(label) => {}
                _ => problems.push(format!("variable: `{metric}` has no label `{label}`")),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{problems:#?}\nexported: {exported:#?}"
    );
    for needed in [
        "Requests by status",
        "Error ratio",
        "Latency p50 / p99",
        "Retries vs calls",
        "Rate-limit headroom",
        "Concurrency limit",
        "Endpoint health",
    ] {
        assert!(titles.iter().any(|t| t == needed), "no panel {needed:?}");
    }
}

#[test]
fn the_alerting_rules_query_only_exported_metrics() {
    let exported = exported();
    let docs = YamlLoader::load_from_str(ALERTS).expect("valid YAML");
    let groups = docs[0]["groups"].as_vec().expect("groups");
    let mut problems = Vec::new();
    let mut alerts = Vec::new();
    for group in groups {
        assert!(group["name"].as_str().is_some(), "a group without a name");
        for rule in group["rules"].as_vec().expect("rules") {
            let alert = rule["alert"].as_str().expect("an alert name");
            alerts.push(alert.to_owned());
            let expr = rule["expr"].as_str().expect("an expr");
            problems.extend(check(alert, expr, &exported));
            assert!(rule["for"].as_str().is_some(), "{alert}: no `for`");
            assert!(
                rule["labels"]["severity"].as_str().is_some(),
                "{alert}: no severity"
            );
            assert!(
                matches!(rule["annotations"]["summary"], Yaml::String(_)),
                "{alert}: no summary"
            );
        }
    }
    assert!(
        problems.is_empty(),
        "{problems:#?}\nexported: {exported:#?}"
    );
    for needed in [
        "EvenkeelRateLimitHeadroomLow",
        "EvenkeelRetryRatioHigh",
        "EvenkeelFailoverActive",
    ] {
        assert!(alerts.iter().any(|a| a == needed), "no alert {needed}");
    }
    let headroom = groups[0]["rules"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|r| r["alert"].as_str() == Some("EvenkeelRateLimitHeadroomLow"))
        .unwrap();
    assert!(headroom["expr"].as_str().unwrap().contains("< 0.10"));
}

#[test]
fn a_query_on_a_metric_the_crate_does_not_export_is_caught() {
    let exported = exported();
    assert!(
        check(
            "t",
            "rate(http_client_request_duration_seconds_count[5m])",
            &exported
        )
        .is_empty()
    );
    assert_eq!(
        check("t", "rate(http_requests_total[5m])", &exported).len(),
        1
    );
    assert_eq!(
        check(
            "t",
            r#"evenkeel_limiter_limit{server_address="x"}"#,
            &exported
        )
        .len(),
        1
    );
    assert_eq!(
        check("t", "sum by (nope) (evenkeel_limiter_limit)", &exported).len(),
        1
    );
}
