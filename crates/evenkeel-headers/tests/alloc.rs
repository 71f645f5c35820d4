//! `retry_after` and `should_retry` run on every response: they must not
//! allocate. Counted with dhat's global allocator, in a binary of its own
//! with a single test, so nothing else allocates meanwhile.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use evenkeel_headers::{Pushback, retry_after, retry_after_with_source, should_retry};
use http::{HeaderMap, HeaderValue};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn the_retry_after_path_does_not_allocate() {
    let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let cases: Vec<(HeaderMap, Option<Pushback>)> = vec![
        (map(&[]), None),
        (map(&[("content-type", "application/json")]), None),
        (
            map(&[("retry-after", "120")]),
            Some(Pushback::After(Duration::from_secs(120))),
        ),
        (
            map(&[("retry-after", "1.5")]),
            Some(Pushback::After(Duration::from_millis(1500))),
        ),
        (
            map(&[("retry-after", "Thu, 01 Jan 2026 00:00:30 GMT")]),
            Some(Pushback::After(Duration::from_secs(30))),
        ),
        (
            map(&[("retry-after", "Thursday, 01-Jan-26 00:00:30 GMT")]),
            Some(Pushback::After(Duration::from_secs(30))),
        ),
        (
            map(&[("retry-after", "Thu Jan  1 00:00:30 2026")]),
            Some(Pushback::After(Duration::from_secs(30))),
        ),
        (
            map(&[("retry-after-ms", "1500")]),
            Some(Pushback::After(Duration::from_millis(1500))),
        ),
        (
            map(&[("x-ms-retry-after-ms", "12.5")]),
            Some(Pushback::After(Duration::from_micros(12_500))),
        ),
        (
            map(&[("x-amz-retry-after", "1e308")]),
            Some(Pushback::After(Duration::MAX)),
        ),
        (
            map(&[("grpc-retry-pushback-ms", "250")]),
            Some(Pushback::After(Duration::from_millis(250))),
        ),
        (
            map(&[("grpc-retry-pushback-ms", "-1")]),
            Some(Pushback::Stop),
        ),
        (
            map(&[
                ("retry-after-ms", "junk"),
                ("retry-after", "junk"),
                ("retry-after", "3"),
            ]),
            Some(Pushback::After(Duration::from_secs(3))),
        ),
        (
            map(&[("x-should-retry", "true"), ("stripe-should-retry", "false")]),
            None,
        ),
    ];
    let clock: Vec<SystemTime> = vec![now, now + Duration::from_nanos(1)];

    let _profiler = dhat::Profiler::builder().testing().build();
    let mut answers = [None; 32];
    let mut hints = [None; 32];
    // The least of three counts: dhat counts every thread's allocations,
    // and the test harness's main thread allocates once while it waits for
    // the result, at a moment of its own (on a loaded machine, inside a
    // count).
    let (blocks, bytes) = (0..3)
        .map(|_| {
            let before = dhat::HeapStats::get();
            for round in 0..100 {
                for (i, (headers, _)) in cases.iter().enumerate() {
                    answers[i] = retry_after(headers, now);
                    let _ = retry_after_with_source(headers, clock[round % 2]);
                    hints[i] = should_retry(headers);
                }
            }
            let after = dhat::HeapStats::get();
            (
                after.total_blocks - before.total_blocks,
                after.total_bytes - before.total_bytes,
            )
        })
        .min()
        .expect("three counts");
    dhat::assert_eq!(blocks, 0);
    dhat::assert_eq!(bytes, 0);

    for (i, (_, want)) in cases.iter().enumerate() {
        assert_eq!(answers[i], *want, "case {i}");
    }
    assert_eq!(hints[13], Some(true));
}
