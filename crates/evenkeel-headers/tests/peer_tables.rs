//! The test tables other HTTP clients check their `Retry-After` parsing
//! against, run through this crate, with the answer each case gets here.
//!
//! The tables are restated (inputs, clock and the peer's expectation), not
//! copied: where a peer's number is its retry policy's (a fallback backoff,
//! a cap) rather than its parser's, the comment says so, and where this
//! crate reads a value differently on purpose, the comment says why.
//!
//! - The Stainless-generated SDKs: the Anthropic and OpenAI Python SDKs'
//!   `test_parse_retry_after_header`, their TypeScript and Go SDKs'
//!   `retry-after` / `retry-after-ms` tests, and their `x-should-retry`
//!   rule (exactly `true` or `false`).
//! - urllib3's `test_retry.py`: `test_parse_retry_after`,
//!   `test_parse_retry_after_invalid`, `test_respect_retry_after_header_sleep`.
//! - Go's `net/http` `TestParseTime` (`parseTimeTests`), as a `Retry-After`
//!   date.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use evenkeel_headers::{Pushback, PushbackSource, retry_after_with_source, should_retry};
use http::{HeaderMap, HeaderValue};

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

fn map(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            *k,
            HeaderValue::from_bytes(v).expect("a valid header value"),
        );
    }
    h
}

/// The wait `headers` ask for at `now`, and where it came from.
fn wait(pairs: &[(&'static str, &[u8])], now: SystemTime) -> Option<(Duration, PushbackSource)> {
    let (pushback, source) = retry_after_with_source(&map(pairs), now)?;
    let Pushback::After(d) = pushback else {
        panic!("no gRPC pushback in these tables");
    };
    Some((d, source))
}

fn retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    wait(&[("retry-after", value)], now).map(|(d, source)| {
        assert_eq!(source, PushbackSource::RetryAfter);
        d
    })
}

const S: fn(u64) -> Option<Duration> = |s| Some(Duration::from_secs(s));
const MS: fn(u64) -> Option<Duration> = |ms| Some(Duration::from_millis(ms));

/// The Python SDKs' table: `time.time()` is 1696004797, Fri, 29 Sep 2023
/// 16:26:37 GMT. The SDK honours a parsed wait only when `0 < wait <= 60`
/// and otherwise sleeps its own backoff (0.5 s on the first retry), so its
/// "0.5" rows say "not honoured", not "parsed as half a second".
#[test]
fn stainless_python_sdks_parse_retry_after_header() {
    let now = at(1_696_004_797);
    // (value, the SDK's expected sleep, ours)
    let table: &[(&[u8], f64, Option<Duration>)] = &[
        (b"20", 20.0, S(20)),
        // The SDK refuses a zero wait and backs off instead. Here it is what
        // the server said, "now"; whether to sleep a floor anyway is the
        // retry layer's choice (its backoff applies to a zero wait).
        (b"0", 0.5, S(0)),
        // Negative: not a delay-seconds. Nothing to honour, as in the SDK.
        (b"-10", 0.5, None),
        (b"60", 60.0, S(60)),
        // The SDK's 60 s ceiling is a policy, not grammar: here the value is
        // read as sent, and the retry layer caps what it honours
        // (`max_server_wait`, 120 s by default) and gives up beyond it
        // instead of retrying early into the same 429.
        (b"61", 0.5, S(61)),
        (b"Fri, 29 Sep 2023 16:26:57 GMT", 20.0, S(20)),
        // A date now or in the past is a zero wait here (RFC 9110: retry
        // at that time); the SDK backs off, as for "0".
        (b"Fri, 29 Sep 2023 16:26:37 GMT", 0.5, S(0)),
        (b"Fri, 29 Sep 2023 16:26:27 GMT", 0.5, S(0)),
        (b"Fri, 29 Sep 2023 16:27:37 GMT", 60.0, S(60)),
        // Past the SDK's ceiling, as "61".
        (b"Fri, 29 Sep 2023 16:27:38 GMT", 0.5, S(61)),
        // Too large for any clock: saturates, and the retry layer's cap
        // refuses it, where the SDK falls back to its backoff.
        (
            b"99999999999999999999999999999999999",
            0.5,
            Some(Duration::MAX),
        ),
        // No such day name: not an HTTP-date, as in the SDK.
        (b"Zun, 29 Sep 2023 16:26:27 GMT", 0.5, None),
        (b"", 0.5, None),
    ];
    for (value, sdk, ours) in table {
        assert_eq!(
            retry_after(value, now),
            *ours,
            "retry-after: {:?} (the SDK sleeps {sdk} s)",
            String::from_utf8_lossy(value)
        );
    }
}

/// The TypeScript and Go SDKs' retry tests send `Retry-After: 0.1` and
/// `Retry-After-Ms: 10` (TypeScript) or `100` (Go); the Python SDKs read
/// `retry-after-ms` first, as a float, then `retry-after`.
#[test]
fn stainless_sdks_retry_after_ms() {
    let now = at(1_696_004_797);
    assert_eq!(retry_after(b"0.1", now), MS(100));
    for (value, ours) in [(&b"10"[..], MS(10)), (b"100", MS(100))] {
        assert_eq!(
            wait(&[("retry-after-ms", value)], now),
            ours.map(|d| (d, PushbackSource::RetryAfterMs))
        );
    }
    // The millisecond header wins over `retry-after`, whatever the order.
    assert_eq!(
        wait(&[("retry-after", b"30"), ("retry-after-ms", b"5")], now),
        Some((Duration::from_millis(5), PushbackSource::RetryAfterMs))
    );
    // Python's `float()` rules, where the SDK reads `retry-after-ms`:
    // "1500.5" and " 12 " read the same here. "-5" is -0.005 s there, which
    // its policy refuses; here it is no number, so `retry-after` answers:
    // the same outcome, one step earlier. "inf", "nan" and "1_000" are
    // floats to Python; here they are not numbers and fall through too
    // (a server sending them meant no wait this crate could honour).
    assert_eq!(
        wait(&[("retry-after-ms", b"1500.5")], now),
        Some((
            Duration::from_micros(1_500_500),
            PushbackSource::RetryAfterMs
        ))
    );
    assert_eq!(
        wait(&[("retry-after-ms", b" 12 ")], now),
        Some((Duration::from_millis(12), PushbackSource::RetryAfterMs))
    );
    for odd in [&b"-5"[..], b"inf", b"nan", b"1_000"] {
        assert_eq!(
            wait(&[("retry-after-ms", odd), ("retry-after", b"8")], now),
            Some((Duration::from_secs(8), PushbackSource::RetryAfter)),
            "{:?}",
            String::from_utf8_lossy(odd)
        );
    }
}

/// The SDKs obey `x-should-retry` only when it is exactly `true` or
/// `false`.
#[test]
fn stainless_sdks_x_should_retry() {
    let table: &[(&[u8], Option<bool>, Option<bool>)] = &[
        // (value, the SDK's verdict, ours)
        (b"true", Some(true), Some(true)),
        (b"false", Some(false), Some(false)),
        // Case and surrounding blanks: the SDK's comparison is exact and
        // leaves the verdict to the status. Here ASCII case and blanks are
        // ignored: the server's meaning is not in doubt, and booleans in
        // header values are case-insensitive in practice (proxies and
        // frameworks rewrite them).
        (b"TRUE", None, Some(true)),
        (b" false ", None, Some(false)),
        (b"1", None, None),
        (b"yes", None, None),
        (b"", None, None),
    ];
    for (value, sdk, ours) in table {
        assert_eq!(
            should_retry(&map(&[("x-should-retry", value)])),
            *ours,
            "x-should-retry: {:?} (the SDK: {sdk:?})",
            String::from_utf8_lossy(value)
        );
    }
    assert_eq!(should_retry(&HeaderMap::new()), None);
}

/// urllib3's `Retry.parse_retry_after`: delay-seconds must be
/// `^\s*[0-9]+\s*$`; anything else that is not an HTTP-date raises
/// `InvalidHeader`.
#[test]
fn urllib3_parse_retry_after() {
    let now = at(1_559_559_600); // 2019-06-03T11:00:00Z
    for (value, secs) in [(&b"0"[..], 0), (b"1000", 1000), (b"\t42 ", 42)] {
        assert_eq!(retry_after(value, now), S(secs));
    }
    // Invalid in urllib3 and here: a sign, and a superscript two (sent as
    // the Latin-1 byte 0xB2, or as UTF-8).
    for value in [&b"-1"[..], b"+1", b"\xb2", "²".as_bytes()] {
        assert_eq!(retry_after(value, now), None, "{value:?}");
    }
    // urllib3 refuses a fraction. Here "1.0" is one second: servers send
    // fractional delay-seconds (Shopify's "2.0"), and the Anthropic and
    // OpenAI SDKs honour them too.
    assert_eq!(retry_after(b"1.0", now), S(1));
}

/// urllib3's `test_respect_retry_after_header_sleep`, at 2019-06-03
/// 11:00:00 UTC (the table is run in three time zones there; here the
/// clock is a `SystemTime` and has none).
#[test]
fn urllib3_respect_retry_after_header_sleep() {
    let now = at(1_559_559_600);
    let table: &[(&[u8], Option<Duration>)] = &[
        (b"3600", S(3600)),
        // A one-digit day and "UTC" are outside RFC 9110's IMF-fixdate;
        // urllib3 (through `email.utils`) reads them, and so does this
        // crate, since the server plainly meant that instant.
        (b"Mon, 3 Jun 2019 12:00:00 UTC", S(3600)),
        // Now: urllib3 does not sleep; here the wait is zero.
        (b"Mon, 3 Jun 2019 11:00:00 UTC", S(0)),
        // RFC 7231's three forms.
        (b"Mon, 03 Jun 2019 11:30:12 GMT", S(1812)),
        (b"Monday, 03-Jun-19 11:30:12 GMT", S(1812)),
        // asctime carries no zone: UTC, as RFC 9110 says.
        (b"Mon Jun  3 11:30:12 2019", S(1812)),
    ];
    for (value, ours) in table {
        assert_eq!(
            retry_after(value, now),
            *ours,
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
    // urllib3's `max_retry_wait_length` (a wait above it raises) is a
    // retry policy; the parser reports 3700 s and the retry layer's cap
    // decides.
    assert_eq!(retry_after(b"3700", now), S(3700));
}

/// Go's `net/http.ParseTime` table, read as `Retry-After` ten seconds
/// before the instant every valid row names (Sun, 06 Nov 1994 08:49:37
/// GMT).
#[test]
fn go_net_http_parse_time() {
    let now = at(784_111_777 - 10);
    let table: &[(&[u8], bool)] = &[
        (b"", true),
        (b"invalid", true),
        // RFC 3339 (and a broken one) is no HTTP-date.
        (b"1994-11-06T08:49:37Z00:00", true),
        (b"Sun, 06 Nov 1994 08:49:37 GMT", false),
        (b"Sunday, 06-Nov-94 08:49:37 GMT", false),
        (b"Sun Nov  6 08:49:37 1994", false),
    ];
    for (value, err) in table {
        let want = if *err { None } else { S(10) };
        assert_eq!(
            retry_after(value, now),
            want,
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
}
