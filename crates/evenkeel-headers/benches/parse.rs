//! Parsing cost of every `Retry-After` form and of full rate-limit header
//! sets, against `httpdate::parse_http_date` on the same IMF-fixdate as the
//! baseline.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use evenkeel_headers::{rate_limits, retry_after};
use http::{HeaderMap, HeaderValue};

const IMF: &str = "Thu, 01 Jan 2026 00:00:30 GMT";

fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    // A response carries more than the headers read here.
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert(
        "date",
        HeaderValue::from_static("Thu, 01 Jan 2026 00:00:00 GMT"),
    );
    h.insert("server", HeaderValue::from_static("envoy"));
    h.insert(
        "x-request-id",
        HeaderValue::from_static("req_011CRt5kJz3c7Pq"),
    );
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn retry(c: &mut Criterion) {
    let mut g = c.benchmark_group("retry_after");
    g.bench_function("httpdate_baseline", |b| {
        b.iter(|| httpdate::parse_http_date(black_box(IMF)))
    });
    for (name, header, value) in [
        ("delay_seconds", "retry-after", "120"),
        ("fractional_seconds", "retry-after", "1.5"),
        ("ms_header", "retry-after-ms", "1500"),
        ("imf_fixdate", "retry-after", IMF),
        ("rfc850", "retry-after", "Thursday, 01-Jan-26 00:00:30 GMT"),
        ("asctime", "retry-after", "Thu Jan  1 00:00:30 2026"),
        ("grpc_pushback", "grpc-retry-pushback-ms", "250"),
    ] {
        let h = map(&[(header, value)]);
        assert!(retry_after(&h, now()).is_some(), "{name}");
        g.bench_function(name, |b| b.iter(|| retry_after(black_box(&h), now())));
    }
    let h = map(&[]);
    g.bench_function("absent", |b| b.iter(|| retry_after(black_box(&h), now())));
    g.finish();
}

fn limits(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate_limits");
    let anthropic = map(&[
        ("anthropic-ratelimit-requests-limit", "4000"),
        ("anthropic-ratelimit-requests-remaining", "3999"),
        ("anthropic-ratelimit-requests-reset", "2026-01-01T00:00:01Z"),
        ("anthropic-ratelimit-tokens-limit", "480000"),
        ("anthropic-ratelimit-tokens-remaining", "479000"),
        ("anthropic-ratelimit-tokens-reset", "2026-01-01T00:00:02Z"),
        ("anthropic-ratelimit-input-tokens-limit", "400000"),
        ("anthropic-ratelimit-input-tokens-remaining", "399000"),
        (
            "anthropic-ratelimit-input-tokens-reset",
            "2026-01-01T00:00:03Z",
        ),
        ("anthropic-ratelimit-output-tokens-limit", "80000"),
        ("anthropic-ratelimit-output-tokens-remaining", "80000"),
        (
            "anthropic-ratelimit-output-tokens-reset",
            "2026-01-01T00:00:00Z",
        ),
        ("retry-after", "1"),
    ]);
    let openai = map(&[
        ("x-ratelimit-limit-requests", "60"),
        ("x-ratelimit-limit-tokens", "150000"),
        ("x-ratelimit-remaining-requests", "59"),
        ("x-ratelimit-remaining-tokens", "149984"),
        ("x-ratelimit-reset-requests", "1s"),
        ("x-ratelimit-reset-tokens", "6m0s"),
    ]);
    let ietf = map(&[
        (
            "ratelimit-policy",
            r#""burst";q=100;w=60,"daily";q=1000;w=86400"#,
        ),
        ("ratelimit", r#""burst";r=50;t=30,"daily";r=999;t=3600"#),
    ]);
    for (name, h, n) in [
        ("anthropic", &anthropic, 4),
        ("openai", &openai, 2),
        ("ietf", &ietf, 2),
    ] {
        assert_eq!(rate_limits(h, now()).len(), n, "{name}");
        g.bench_function(name, |b| b.iter(|| rate_limits(black_box(h), now())));
    }
    g.finish();
}

criterion_group!(benches, retry, limits);
criterion_main!(benches);
