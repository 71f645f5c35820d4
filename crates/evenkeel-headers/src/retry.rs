//! `Retry-After` in every form, the millisecond variants, gRPC pushback and
//! the explicit should-retry hints.

use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderName, RETRY_AFTER};

use crate::num::{self, parse_decimal_duration};
use crate::time::parse_http_date;

/// What the server asked the client to do before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pushback {
    /// Wait this long, measured from the `now` the headers were read at.
    /// Saturates at [`Duration::MAX`]: callers cap it with their own
    /// maximum.
    After(Duration),
    /// Do not retry at all (gRPC pushback with a negative or unreadable
    /// value, gRFC A6).
    Stop,
}

impl Pushback {
    /// The delay, or `None` for [`Pushback::Stop`].
    pub fn delay(self) -> Option<Duration> {
        match self {
            Self::After(d) => Some(d),
            Self::Stop => None,
        }
    }

    /// `true` for [`Pushback::Stop`].
    pub fn is_stop(self) -> bool {
        matches!(self, Self::Stop)
    }
}

/// The header a [`Pushback`] was read from, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PushbackSource {
    /// `retry-after-ms` (Anthropic, OpenAI).
    RetryAfterMs,
    /// `x-ms-retry-after-ms` (Azure).
    MsRetryAfterMs,
    /// `x-amz-retry-after` (AWS), milliseconds.
    AmzRetryAfter,
    /// `retry-after` (RFC 9110 §10.2.3).
    RetryAfter,
    /// `grpc-retry-pushback-ms` (gRFC A6).
    GrpcRetryPushbackMs,
}

impl PushbackSource {
    /// The header's name, lowercase.
    pub fn header_name(self) -> &'static str {
        match self {
            Self::RetryAfterMs => "retry-after-ms",
            Self::MsRetryAfterMs => "x-ms-retry-after-ms",
            Self::AmzRetryAfter => "x-amz-retry-after",
            Self::RetryAfter => "retry-after",
            Self::GrpcRetryPushbackMs => "grpc-retry-pushback-ms",
        }
    }
}

const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
const X_MS_RETRY_AFTER_MS: HeaderName = HeaderName::from_static("x-ms-retry-after-ms");
const X_AMZ_RETRY_AFTER: HeaderName = HeaderName::from_static("x-amz-retry-after");
const GRPC_RETRY_PUSHBACK_MS: HeaderName = HeaderName::from_static("grpc-retry-pushback-ms");
const X_SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");
const STRIPE_SHOULD_RETRY: HeaderName = HeaderName::from_static("stripe-should-retry");

/// Reads how long the server asked the client to wait.
///
/// Tries, in order, and the first value that parses wins:
///
/// 1. `retry-after-ms`: milliseconds, fractions allowed (`1500`, `12.5`),
/// 2. `x-ms-retry-after-ms`: the same,
/// 3. `x-amz-retry-after`: the same,
/// 4. `retry-after`: delay-seconds (fractions such as `1.5` accepted) or an
///    HTTP-date in any of RFC 9110's three forms; a date in the past is
///    [`Duration::ZERO`],
/// 5. `grpc-retry-pushback-ms`: a non-negative integer is the delay; any
///    other value is [`Pushback::Stop`] (gRFC A6).
///
/// Within one header, the first of its values that parses wins; a header
/// whose values are all malformed is skipped. `None` when nothing parses.
/// Values that are too large saturate at [`Duration::MAX`]. Never
/// allocates.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use evenkeel_headers::{retry_after, Pushback};
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("retry-after", "2".parse()?);
/// headers.insert("retry-after-ms", "1500".parse()?);
/// assert_eq!(
///     retry_after(&headers, SystemTime::now()),
///     Some(Pushback::After(Duration::from_millis(1500)))
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Pushback> {
    retry_after_with_source(headers, now).map(|(p, _)| p)
}

/// [`retry_after`], also saying which header the answer came from.
pub fn retry_after_with_source(
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<(Pushback, PushbackSource)> {
    if headers.is_empty() {
        return None;
    }
    for (name, source) in [
        (&RETRY_AFTER_MS, PushbackSource::RetryAfterMs),
        (&X_MS_RETRY_AFTER_MS, PushbackSource::MsRetryAfterMs),
        (&X_AMZ_RETRY_AFTER, PushbackSource::AmzRetryAfter),
    ] {
        for v in headers.get_all(name) {
            if let Some(d) = parse_decimal_duration(v.as_bytes(), 6) {
                return Some((Pushback::After(d), source));
            }
        }
    }
    for v in headers.get_all(RETRY_AFTER) {
        if let Some(d) = parse_retry_after_value(v.as_bytes(), now) {
            return Some((Pushback::After(d), PushbackSource::RetryAfter));
        }
    }
    let grpc = headers.get(GRPC_RETRY_PUSHBACK_MS)?;
    let pushback = match saturating_ms(grpc.as_bytes().trim_ascii()) {
        Some(d) => Pushback::After(d),
        None => Pushback::Stop,
    };
    Some((pushback, PushbackSource::GrpcRetryPushbackMs))
}

/// A `Retry-After` value: delay-seconds (fractions accepted) or an
/// HTTP-date, as a delay from `now`.
pub(crate) fn parse_retry_after_value(b: &[u8], now: SystemTime) -> Option<Duration> {
    let b = b.trim_ascii();
    if let Some(d) = parse_decimal_duration(b, 9) {
        return Some(d);
    }
    let now_nanos = num::unix_nanos(now);
    parse_http_date(b, now_nanos).map(|at| num::until(at, now))
}

/// `1*DIGIT` milliseconds, saturating.
fn saturating_ms(b: &[u8]) -> Option<Duration> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    num::parse_decimal_scaled(b, 6).map(num::duration_from_nanos)
}

/// Reads an explicit retry hint: `x-should-retry` (OpenAI, Anthropic) and
/// then `stripe-should-retry`, each `true` or `false` (ASCII case ignored).
/// The first valid value wins; `None` when neither header says.
///
/// ```
/// use evenkeel_headers::should_retry;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-should-retry", "false".parse()?);
/// assert_eq!(should_retry(&headers), Some(false));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn should_retry(headers: &HeaderMap) -> Option<bool> {
    [&X_SHOULD_RETRY, &STRIPE_SHOULD_RETRY]
        .into_iter()
        .flat_map(|name| headers.get_all(name))
        .find_map(|v| {
            let v = v.as_bytes().trim_ascii();
            if v.eq_ignore_ascii_case(b"true") {
                Some(true)
            } else if v.eq_ignore_ascii_case(b"false") {
                Some(false)
            } else {
                None
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    /// 2026-01-01T00:00:00Z.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_225_600)
    }

    fn map(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn after(pairs: &[(&'static str, &[u8])]) -> Option<Pushback> {
        retry_after(&map(pairs), now())
    }

    fn secs(s: u64) -> Option<Pushback> {
        Some(Pushback::After(Duration::from_secs(s)))
    }

    fn millis(ms: u64) -> Option<Pushback> {
        Some(Pushback::After(Duration::from_millis(ms)))
    }

    #[test]
    fn nothing_to_read_is_none() {
        assert_eq!(after(&[]), None);
        assert_eq!(after(&[("content-type", b"text/plain")]), None);
    }

    #[test]
    fn delay_seconds() {
        assert_eq!(after(&[("retry-after", b"120")]), secs(120));
        assert_eq!(after(&[("retry-after", b"0")]), secs(0));
        assert_eq!(after(&[("retry-after", b" 7 ")]), secs(7));
        assert_eq!(after(&[("retry-after", b"1.5")]), millis(1500));
        assert_eq!(after(&[("retry-after", b"2.0")]), secs(2)); // Shopify
    }

    #[test]
    fn http_dates_in_all_three_forms() {
        // 2026-01-01T00:00:30Z was a Thursday.
        let want = secs(30);
        assert_eq!(
            after(&[("retry-after", b"Thu, 01 Jan 2026 00:00:30 GMT")]),
            want
        );
        assert_eq!(
            after(&[("retry-after", b"Thursday, 01-Jan-26 00:00:30 GMT")]),
            want
        );
        assert_eq!(after(&[("retry-after", b"Thu Jan  1 00:00:30 2026")]), want);
    }

    #[test]
    fn a_date_in_the_past_means_now() {
        assert_eq!(
            after(&[("retry-after", b"Sun, 06 Nov 1994 08:49:37 GMT")]),
            secs(0)
        );
        assert_eq!(
            after(&[("retry-after", b"Thu, 01 Jan 1970 00:00:00 GMT")]),
            secs(0)
        );
        assert_eq!(
            after(&[("retry-after", b"Mon, 01 Jan 0001 00:00:00 GMT")]),
            secs(0)
        );
    }

    #[test]
    fn sub_second_now_is_honoured_for_dates() {
        let now = now() + Duration::from_millis(250);
        let h = map(&[("retry-after", b"Thu, 01 Jan 2026 00:00:01 GMT")]);
        assert_eq!(
            retry_after(&h, now),
            Some(Pushback::After(Duration::from_millis(750)))
        );
    }

    #[test]
    fn millisecond_headers_win_in_order() {
        let all: &[(&'static str, &[u8])] = &[
            ("retry-after", b"9"),
            ("grpc-retry-pushback-ms", b"7000"),
            ("x-amz-retry-after", b"3000"),
            ("x-ms-retry-after-ms", b"2000"),
            ("retry-after-ms", b"1000"),
        ];
        assert_eq!(after(all), millis(1000));
        assert_eq!(after(&all[..4]), millis(2000));
        assert_eq!(after(&all[..3]), millis(3000));
        assert_eq!(after(&all[..2]), secs(9));
        assert_eq!(after(&all[1..2]), millis(7000));
        let (p, source) = retry_after_with_source(&map(&all[..3]), now()).unwrap();
        assert_eq!(
            (p, source),
            (
                Pushback::After(Duration::from_secs(3)),
                PushbackSource::AmzRetryAfter
            )
        );
        assert_eq!(source.header_name(), "x-amz-retry-after");
    }

    #[test]
    fn fractional_milliseconds() {
        assert_eq!(
            after(&[("retry-after-ms", b"12.5")]),
            Some(Pushback::After(Duration::from_micros(12_500)))
        );
        assert_eq!(after(&[("retry-after-ms", b"1e3")]), millis(1000));
    }

    #[test]
    fn malformed_values_fall_through() {
        assert_eq!(
            after(&[("retry-after-ms", b"soon"), ("retry-after", b"4")]),
            secs(4)
        );
        assert_eq!(
            after(&[("retry-after-ms", b"-5"), ("retry-after", b"4")]),
            secs(4)
        );
        assert_eq!(
            after(&[("retry-after-ms", b"NaN"), ("retry-after", b"4")]),
            secs(4)
        );
        assert_eq!(
            after(&[("retry-after-ms", b"inf"), ("retry-after", b"4")]),
            secs(4)
        );
        assert_eq!(after(&[("retry-after", b"-1")]), None);
        assert_eq!(after(&[("retry-after", b"tomorrow")]), None);
        assert_eq!(after(&[("retry-after", b"\xff\xfe")]), None);
        assert_eq!(after(&[("retry-after", b"")]), None);
    }

    #[test]
    fn the_first_valid_value_of_a_repeated_header_wins() {
        assert_eq!(
            after(&[
                ("retry-after", b"junk"),
                ("retry-after", b"5"),
                ("retry-after", b"6")
            ]),
            secs(5)
        );
    }

    #[test]
    fn huge_values_saturate() {
        assert_eq!(
            after(&[("retry-after", b"99999999999999999999999999999")]),
            Some(Pushback::After(Duration::MAX))
        );
        assert_eq!(
            after(&[("retry-after", b"1e308")]),
            Some(Pushback::After(Duration::MAX))
        );
        assert_eq!(
            after(&[("retry-after-ms", b"18446744073709551615")]),
            Some(Pushback::After(Duration::from_millis(u64::MAX)))
        );
        assert_eq!(
            after(&[(
                "grpc-retry-pushback-ms",
                b"999999999999999999999999999999999"
            )]),
            Some(Pushback::After(Duration::MAX))
        );
        assert_eq!(
            after(&[("retry-after", b"Fri, 31 Dec 9999 23:59:59 GMT")]),
            secs(253_402_300_799 - 1_767_225_600)
        );
    }

    #[test]
    fn grpc_pushback_follows_grfc_a6() {
        assert_eq!(after(&[("grpc-retry-pushback-ms", b"250")]), millis(250));
        assert_eq!(after(&[("grpc-retry-pushback-ms", b"0")]), millis(0));
        assert_eq!(
            after(&[("grpc-retry-pushback-ms", b"-1")]),
            Some(Pushback::Stop)
        );
        assert_eq!(
            after(&[("grpc-retry-pushback-ms", b"abc")]),
            Some(Pushback::Stop)
        );
        assert_eq!(
            after(&[("grpc-retry-pushback-ms", b"1.5")]),
            Some(Pushback::Stop)
        );
        assert_eq!(
            after(&[("grpc-retry-pushback-ms", b"")]),
            Some(Pushback::Stop)
        );
        assert!(Pushback::Stop.is_stop());
        assert_eq!(Pushback::Stop.delay(), None);
        assert_eq!(
            Pushback::After(Duration::ZERO).delay(),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn now_far_from_today_does_not_panic() {
        let h = map(&[("retry-after", b"Sunday, 06-Nov-94 08:49:37 GMT")]);
        for now in [
            UNIX_EPOCH,
            UNIX_EPOCH - Duration::from_secs(100_000_000_000),
            UNIX_EPOCH + Duration::from_secs(200_000_000_000),
        ] {
            assert!(retry_after(&h, now).is_some());
        }
    }

    #[test]
    fn should_retry_reads_both_headers() {
        assert_eq!(should_retry(&map(&[])), None);
        assert_eq!(
            should_retry(&map(&[("x-should-retry", b"true")])),
            Some(true)
        );
        assert_eq!(
            should_retry(&map(&[("x-should-retry", b"false")])),
            Some(false)
        );
        assert_eq!(
            should_retry(&map(&[("stripe-should-retry", b"true")])),
            Some(true)
        );
        assert_eq!(
            should_retry(&map(&[("x-should-retry", b" TRUE ")])),
            Some(true)
        );
        assert_eq!(
            should_retry(&map(&[
                ("x-should-retry", b"false"),
                ("stripe-should-retry", b"true")
            ])),
            Some(false)
        );
        assert_eq!(
            should_retry(&map(&[
                ("x-should-retry", b"maybe"),
                ("stripe-should-retry", b"true")
            ])),
            Some(true)
        );
        assert_eq!(should_retry(&map(&[("x-should-retry", b"1")])), None);
        assert_eq!(should_retry(&map(&[("x-should-retry", b"\xff")])), None);
    }
}
