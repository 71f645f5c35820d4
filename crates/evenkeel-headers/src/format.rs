//! Writers for the formats this crate reads, for servers, simulators and
//! tests that must speak them: durations, timestamps, and whole rate-limit
//! header sets.
//!
//! Every writer is a small `Display` value, so it writes into any buffer
//! without allocating:
//!
//! ```
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//! use evenkeel_headers::format::{GoDuration, HttpDate, Rfc3339};
//!
//! assert_eq!(GoDuration(Duration::from_secs(360)).to_string(), "6m0s");
//! assert_eq!(GoDuration(Duration::from_millis(12)).to_string(), "12ms");
//! let t = UNIX_EPOCH + Duration::from_secs(1_714_564_803);
//! assert_eq!(Rfc3339(t).to_string(), "2024-05-01T12:00:03Z");
//! assert_eq!(HttpDate(t).to_string(), "Wed, 01 May 2024 12:00:03 GMT");
//! ```
//!
//! [`insert_quotas`] writes [`Quota`]s as the headers of their dialect, and
//! [`rate_limits`](crate::rate_limits) reads them back.

use std::fmt::{self, Display, Formatter, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::num::{self, NANOS_PER_SEC};
use crate::quota::{Dialect, Quota, Resource};
use crate::ratelimit::{EPOCH_MILLIS_FROM, EPOCH_SECONDS_FROM, KONG_WINDOWS};
use crate::time::civil_from_secs;

/// A duration as Go's `time.Duration.String()` writes it, as OpenAI sends
/// its resets: `0s`, `42ns`, `1.5µs`, `12ms`, `1.5s`, `6m0s`, `1h2m3s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl Display for GoDuration {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let nanos = d.subsec_nanos();
        let secs = d.as_secs();
        if secs == 0 {
            return match nanos {
                0 => f.write_str("0s"),
                1..=999 => write!(f, "{nanos}ns"),
                1_000..=999_999 => {
                    write_fraction(f, u64::from(nanos / 1_000), nanos % 1_000, 3)?;
                    f.write_str("µs")
                }
                _ => {
                    write_fraction(f, u64::from(nanos / 1_000_000), nanos % 1_000_000, 6)?;
                    f.write_str("ms")
                }
            };
        }
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if h > 0 || m > 0 {
            write!(f, "{m}m")?;
        }
        write_fraction(f, s, nanos, 9)?;
        f.write_str("s")
    }
}

/// Writes `int.frac` with `frac` given as `digits` decimal digits, trailing
/// zeros dropped (no point when the fraction is zero).
fn write_fraction(f: &mut Formatter<'_>, int: u64, frac: u32, digits: usize) -> fmt::Result {
    write!(f, "{int}")?;
    write_frac(f, frac, digits)
}

/// Writes `.ddd` for a fraction of `digits` decimal digits, trailing zeros
/// dropped; nothing when it is zero.
fn write_frac(f: &mut Formatter<'_>, frac: u32, digits: usize) -> fmt::Result {
    if frac == 0 {
        return Ok(());
    }
    let mut buf = [0u8; 9];
    let mut v = frac;
    for slot in buf[..digits].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let mut end = digits;
    while end > 0 && buf[end - 1] == b'0' {
        end -= 1;
    }
    f.write_char('.')?;
    for &c in &buf[..end] {
        f.write_char(char::from(c))?;
    }
    Ok(())
}

/// Whole seconds, rounded up (a server that rounds down invites clients
/// back too early): the `delay-seconds` of `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelaySeconds(pub Duration);

impl Display for DelaySeconds {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", ceil_secs(self.0))
    }
}

/// Seconds as an exact decimal, trailing zeros dropped: `2`, `1.5`,
/// `64.57`, `0.000000001` (Discord's `x-ratelimit-reset-after`, fractional
/// `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl Display for Seconds {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_fraction(f, self.0.as_secs(), self.0.subsec_nanos(), 9)
    }
}

/// Milliseconds as an exact decimal, trailing zeros dropped: `1500`,
/// `12.5` (`retry-after-ms`, `x-ms-retry-after-ms`, `x-amz-retry-after`,
/// `grpc-retry-pushback-ms` when whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub Duration);

impl Display for Millis {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        write!(f, "{}", nanos / 1_000_000)?;
        // Below 10^6, so it fits.
        write_frac(f, (nanos % 1_000_000) as u32, 6)
    }
}

/// The earliest and latest instants the date writers can show: years 0000
/// and 9999. Times outside are clamped.
const MIN_SECS: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
const MAX_SECS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

/// Whole seconds since the epoch (rounded down), clamped to years 0–9999.
fn clamped_secs(t: SystemTime) -> i64 {
    let secs = num::unix_nanos(t).div_euclid(NANOS_PER_SEC as i128);
    i64::try_from(secs.clamp(i128::from(MIN_SECS), i128::from(MAX_SECS))).unwrap_or(MAX_SECS)
}

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An RFC 3339 timestamp at whole seconds (rounded down), UTC:
/// `2024-05-01T12:00:03Z`, as Anthropic sends its resets. Clamped to years
/// 0000–9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339(pub SystemTime);

impl Display for Rfc3339 {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s, _) = civil_from_secs(clamped_secs(self.0));
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

/// An IMF-fixdate, the preferred HTTP-date: `Sun, 06 Nov 1994 08:49:37
/// GMT`, written by `httpdate`. Times before 1970 are written as the epoch
/// and times after 9999 as its last second (httpdate's range), so any
/// `SystemTime` is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpDate(pub SystemTime);

impl Display for HttpDate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let secs = clamped_secs(self.0).max(0) as u64;
        let date = httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(secs));
        Display::fmt(&date, f)
    }
}

/// The obsolete RFC 850 date, `Sunday, 06-Nov-94 08:49:37 GMT`. Its
/// two-digit year reads back correctly only within 50 years of the
/// reader's clock. Clamped to years 0000–9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc850Date(pub SystemTime);

impl Display for Rfc850Date {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s, wd) = civil_from_secs(clamped_secs(self.0));
        write!(
            f,
            "{}, {d:02}-{}-{:02} {h:02}:{mi:02}:{s:02} GMT",
            DAYS[wd as usize],
            MONTHS[mo as usize - 1],
            y % 100
        )
    }
}

/// The ANSI C `asctime()` date, `Sun Nov  6 08:49:37 1994`. Clamped to
/// years 0000–9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsctimeDate(pub SystemTime);

impl Display for AsctimeDate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s, wd) = civil_from_secs(clamped_secs(self.0));
        write!(
            f,
            "{} {} {d:>2} {h:02}:{mi:02}:{s:02} {y:04}",
            &DAYS[wd as usize][..3],
            MONTHS[mo as usize - 1],
        )
    }
}

/// Whole seconds of `d`, rounded up, saturating.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

/// The largest Integer a structured field can carry (RFC 9651 §3.3.1).
const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

/// Writes `quotas` into `headers` as their dialects send them, and returns
/// how many were written; `now` turns `reset_after` into the timestamps
/// some dialects use.
///
/// | dialect | written as |
/// | --- | --- |
/// | [`Ietf`](Dialect::Ietf) | one `RateLimit-Policy` item (when `limit` is known) and one `RateLimit` item (when `remaining` or `reset_after` is) per quota, named by `policy` or `"default"`; `qu` for resources other than requests; `w` and `t` in whole seconds, `t` rounded up; numbers above 999 999 999 999 999 clamped |
/// | [`IetfDraft`](Dialect::IetfDraft) | `RateLimit-Limit` (with `, L;w=W` when the window is known), `-Remaining`, `-Reset` in seconds rounded up |
/// | [`XRateLimit`](Dialect::XRateLimit) | `x-ratelimit-limit`, `-remaining`, `-used`, `-reset` as Unix seconds rounded up (GitHub; Unix milliseconds past the year 33658, a delay on a clock before 2001, so the epoch rule reads it back), `x-ratelimit-resource` from `policy`; a quota whose policy and window are one of Kong's (`minute` and 60 s…) as `x-ratelimit-{limit,remaining}-minute` |
/// | [`Discord`](Dialect::Discord) | `x-ratelimit-limit`, `-remaining`, `-reset` (Unix seconds, three decimals), `-reset-after` (seconds, three decimals, rounded up), `-bucket` from `policy`, `-scope` |
/// | [`OpenAi`](Dialect::OpenAi) | `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, reset as a [`GoDuration`]; policy `usage_based` writes `-tokens_usage_based` |
/// | [`Anthropic`](Dialect::Anthropic) | `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`, reset as [`Rfc3339`] rounded up to the second; policy `priority` writes `anthropic-priority-*` |
/// | [`Shopify`](Dialect::Shopify) | `X-Shopify-Shop-Api-Call-Limit: used/limit` |
/// | [`Linear`](Dialect::Linear) | `x-ratelimit-{requests,complexity}-{limit,remaining,reset}`, reset as Unix milliseconds rounded up |
///
/// A quota the dialect has no header for (a [`Dialect::Custom`] one, an
/// OpenAI quota of input tokens, a Linear quota with a policy, a policy
/// name that is not printable
/// ASCII) is skipped. Values go in with `append`, so when two quotas of one
/// dialect share a header the first one is what
/// [`rate_limits`](crate::rate_limits) reads back.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use evenkeel_headers::{format, rate_limits, Dialect, Quota, Resource};
///
/// let now = SystemTime::now();
/// let quota = Quota::new(Resource::Tokens)
///     .with_dialect(Dialect::OpenAi)
///     .with_limit(150_000)
///     .with_remaining(149_984)
///     .with_reset_after(Duration::from_secs(360));
/// let mut headers = http::HeaderMap::new();
/// assert_eq!(format::insert_quotas(&mut headers, [&quota], now), 1);
/// assert_eq!(headers["x-ratelimit-reset-tokens"], "6m0s");
/// let read = rate_limits(&headers, now);
/// assert_eq!(read.get(&Resource::Tokens).unwrap().remaining, Some(149_984));
/// ```
pub fn insert_quotas<'a>(
    headers: &mut HeaderMap,
    quotas: impl IntoIterator<Item = &'a Quota>,
    now: SystemTime,
) -> usize {
    let mut written = 0;
    let mut policy_line = String::new();
    let mut limit_line = String::new();
    for q in quotas {
        let ok = match q.dialect {
            Dialect::Ietf => ietf_items(q, &mut policy_line, &mut limit_line),
            Dialect::IetfDraft => draft(headers, q),
            Dialect::XRateLimit => x_ratelimit(headers, q, now),
            Dialect::Discord => discord(headers, q, now),
            Dialect::OpenAi => openai(headers, q),
            Dialect::Anthropic => anthropic(headers, q, now),
            Dialect::Shopify => shopify(headers, q),
            Dialect::Linear => linear(headers, q, now),
            Dialect::Custom => false,
        };
        written += usize::from(ok);
    }
    if !policy_line.is_empty() {
        put(headers, "ratelimit-policy", policy_line);
    }
    if !limit_line.is_empty() {
        put(headers, "ratelimit", limit_line);
    }
    written
}

fn put(headers: &mut HeaderMap, name: &'static str, value: impl Display) {
    if let Ok(v) = HeaderValue::try_from(value.to_string()) {
        headers.append(HeaderName::from_static(name), v);
    }
}

fn put_opt(headers: &mut HeaderMap, name: &'static str, value: Option<impl Display>) {
    if let Some(v) = value {
        put(headers, name, v);
    }
}

/// `policy` when it is printable ASCII (so it survives as a header value
/// and an sf-string).
fn printable(s: Option<&str>) -> Result<Option<&str>, ()> {
    match s {
        Some(s) if s.is_empty() || !s.bytes().all(|c| (0x20..0x7f).contains(&c)) => Err(()),
        other => Ok(other),
    }
}

fn graphic(s: Option<&str>) -> Result<Option<&str>, ()> {
    match s {
        Some(s) if s.is_empty() || !s.bytes().all(|c| c.is_ascii_graphic()) => Err(()),
        other => Ok(other),
    }
}

fn ietf_items(q: &Quota, policy_line: &mut String, limit_line: &mut String) -> bool {
    let Ok(name) = printable(q.policy.as_deref()) else {
        return false;
    };
    let name = name.unwrap_or("default");
    let pk = q.partition_key.as_deref().filter(|k| {
        k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
    });
    let mut sf_name = String::with_capacity(name.len() + 2);
    sf_name.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            sf_name.push('\\');
        }
        sf_name.push(c);
    }
    sf_name.push('"');
    let mut wrote = false;
    if let Some(limit) = q.limit {
        if !policy_line.is_empty() {
            policy_line.push_str(", ");
        }
        let _ = write!(policy_line, "{sf_name};q={}", limit.min(SF_INTEGER_MAX));
        if q.resource != Resource::Requests {
            let unit = q.resource.as_str();
            if unit
                .bytes()
                .all(|c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
            {
                let _ = write!(policy_line, ";qu=\"{unit}\"");
            }
        }
        if let Some(w) = q.window.map(|w| w.as_secs()).filter(|w| *w > 0) {
            let _ = write!(policy_line, ";w={}", w.min(SF_INTEGER_MAX));
        }
        if let Some(pk) = pk {
            let _ = write!(policy_line, ";pk=:{pk}:");
        }
        wrote = true;
    }
    if q.remaining.is_some() || q.reset_after.is_some() {
        if !limit_line.is_empty() {
            limit_line.push_str(", ");
        }
        limit_line.push_str(&sf_name);
        if let Some(remaining) = q.remaining {
            let _ = write!(limit_line, ";r={}", remaining.min(SF_INTEGER_MAX));
        }
        if let Some(t) = q.reset_after {
            let _ = write!(limit_line, ";t={}", ceil_secs(t).min(SF_INTEGER_MAX));
        }
        if let Some(pk) = pk {
            let _ = write!(limit_line, ";pk=:{pk}:");
        }
        wrote = true;
    }
    wrote
}

/// A delay the epoch rule still reads as a delay.
fn delay_secs(d: Duration) -> u64 {
    ceil_secs(d).min(EPOCH_SECONDS_FROM as u64 - 1)
}

fn draft(headers: &mut HeaderMap, q: &Quota) -> bool {
    if q.resource != Resource::Requests {
        return false;
    }
    if let Some(limit) = q.limit {
        // The `, L;w=W` form is a structured list: only for limits an sf-integer holds.
        let window = q.window.map(|w| w.as_secs()).filter(|w| *w > 0);
        match window.filter(|w| limit <= SF_INTEGER_MAX && *w <= SF_INTEGER_MAX) {
            Some(w) => put(
                headers,
                "ratelimit-limit",
                format_args!("{limit}, {limit};w={w}"),
            ),
            None => put(headers, "ratelimit-limit", limit),
        }
    }
    put_opt(headers, "ratelimit-remaining", q.remaining);
    put_opt(headers, "ratelimit-reset", q.reset_after.map(delay_secs));
    true
}

/// `now + d` as nanoseconds since the epoch.
fn reset_at(now: SystemTime, d: Duration) -> i128 {
    num::unix_nanos(now).saturating_add(d.as_nanos() as i128)
}

fn x_ratelimit(headers: &mut HeaderMap, q: &Quota, now: SystemTime) -> bool {
    let Ok(resource) = graphic(q.policy.as_deref()) else {
        return false;
    };
    if q.resource != Resource::Requests {
        return false;
    }
    // Kong's per-window quotas: the policy names the window.
    if let Some(suffix) = resource.filter(|p| {
        KONG_WINDOWS
            .iter()
            .any(|(s, w)| s == p && q.window == w.map(Duration::from_secs))
    }) {
        for (field, value) in [("limit", q.limit), ("remaining", q.remaining)] {
            if let (Some(v), Ok(name)) = (
                value,
                HeaderName::try_from(format!("x-ratelimit-{field}-{suffix}")),
            ) {
                headers.append(name, HeaderValue::from(v));
            }
        }
        return q.limit.is_some() || q.remaining.is_some();
    }
    put_opt(headers, "x-ratelimit-limit", q.limit);
    put_opt(headers, "x-ratelimit-remaining", q.remaining);
    put_opt(headers, "x-ratelimit-used", q.used);
    if let Some(d) = q.reset_after {
        let at = reset_at(now, d);
        let epoch = at.div_euclid(NANOS_PER_SEC as i128)
            + i128::from(at.rem_euclid(NANOS_PER_SEC as i128) > 0);
        if epoch < EPOCH_SECONDS_FROM as i128 {
            // A clock before 2001: Unix seconds would read as a delay.
            put(headers, "x-ratelimit-reset", delay_secs(d));
        } else if epoch < EPOCH_MILLIS_FROM as i128 {
            put(headers, "x-ratelimit-reset", epoch);
        } else {
            // Past the year 33658 Unix seconds would read as milliseconds.
            let ms = at.div_euclid(1_000_000) + i128::from(at.rem_euclid(1_000_000) > 0);
            put(headers, "x-ratelimit-reset", ms);
        }
    }
    put_opt(headers, "x-ratelimit-resource", resource);
    true
}

/// `d` rounded up to the millisecond, as seconds with three decimals.
fn secs_3(d: Duration) -> impl Display {
    let ms = d.as_nanos().div_ceil(1_000_000);
    ThreeDecimals(ms)
}

struct ThreeDecimals(u128);

impl Display for ThreeDecimals {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

fn discord(headers: &mut HeaderMap, q: &Quota, now: SystemTime) -> bool {
    let (Ok(bucket), Ok(scope)) = (graphic(q.policy.as_deref()), graphic(q.scope.as_deref()))
    else {
        return false;
    };
    if q.resource != Resource::Requests {
        return false;
    }
    put_opt(headers, "x-ratelimit-limit", q.limit);
    put_opt(headers, "x-ratelimit-remaining", q.remaining);
    if let Some(d) = q.reset_after {
        let at = reset_at(now, d).max(0) as u128;
        put(
            headers,
            "x-ratelimit-reset",
            ThreeDecimals(at.div_ceil(1_000_000)),
        );
        put(headers, "x-ratelimit-reset-after", secs_3(d));
    }
    put_opt(headers, "x-ratelimit-bucket", bucket);
    put_opt(headers, "x-ratelimit-scope", scope);
    true
}

fn openai(headers: &mut HeaderMap, q: &Quota) -> bool {
    let names: [&'static str; 3] = match (&q.resource, q.policy.as_deref()) {
        (Resource::Requests, None) => [
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ],
        (Resource::Tokens, None) => [
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ],
        (Resource::Tokens, Some("usage_based")) => [
            "x-ratelimit-limit-tokens_usage_based",
            "x-ratelimit-remaining-tokens_usage_based",
            "x-ratelimit-reset-tokens_usage_based",
        ],
        _ => return false,
    };
    put_opt(headers, names[0], q.limit);
    put_opt(headers, names[1], q.remaining);
    put_opt(headers, names[2], q.reset_after.map(GoDuration));
    true
}

fn anthropic(headers: &mut HeaderMap, q: &Quota, now: SystemTime) -> bool {
    let names: [&'static str; 3] = match (&q.resource, q.policy.as_deref()) {
        (Resource::Requests, None) => [
            "anthropic-ratelimit-requests-limit",
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset",
        ],
        (Resource::Tokens, None) => [
            "anthropic-ratelimit-tokens-limit",
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset",
        ],
        (Resource::InputTokens, None) => [
            "anthropic-ratelimit-input-tokens-limit",
            "anthropic-ratelimit-input-tokens-remaining",
            "anthropic-ratelimit-input-tokens-reset",
        ],
        (Resource::OutputTokens, None) => [
            "anthropic-ratelimit-output-tokens-limit",
            "anthropic-ratelimit-output-tokens-remaining",
            "anthropic-ratelimit-output-tokens-reset",
        ],
        (Resource::InputTokens, Some("priority")) => [
            "anthropic-priority-input-tokens-limit",
            "anthropic-priority-input-tokens-remaining",
            "anthropic-priority-input-tokens-reset",
        ],
        (Resource::OutputTokens, Some("priority")) => [
            "anthropic-priority-output-tokens-limit",
            "anthropic-priority-output-tokens-remaining",
            "anthropic-priority-output-tokens-reset",
        ],
        _ => return false,
    };
    put_opt(headers, names[0], q.limit);
    put_opt(headers, names[1], q.remaining);
    if let Some(d) = q.reset_after {
        let at = reset_at(now, d);
        let secs = at.div_euclid(NANOS_PER_SEC as i128)
            + i128::from(at.rem_euclid(NANOS_PER_SEC as i128) > 0);
        let secs = secs.clamp(i128::from(MIN_SECS), i128::from(MAX_SECS));
        let t = if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs() as u64)
        };
        put(headers, names[2], Rfc3339(t));
    }
    true
}

fn shopify(headers: &mut HeaderMap, q: &Quota) -> bool {
    let Some(limit) = q.limit else { return false };
    let Some(used) = q
        .used
        .or_else(|| q.remaining.map(|r| limit.saturating_sub(r)))
    else {
        return false;
    };
    if q.resource != Resource::Requests {
        return false;
    }
    put(
        headers,
        "x-shopify-shop-api-call-limit",
        format_args!("{used}/{limit}"),
    );
    true
}

fn linear(headers: &mut HeaderMap, q: &Quota, now: SystemTime) -> bool {
    let names: [&'static str; 3] = match (&q.resource, q.policy.as_deref()) {
        (Resource::Requests, None) => [
            "x-ratelimit-requests-limit",
            "x-ratelimit-requests-remaining",
            "x-ratelimit-requests-reset",
        ],
        (Resource::Complexity, None) => [
            "x-ratelimit-complexity-limit",
            "x-ratelimit-complexity-remaining",
            "x-ratelimit-complexity-reset",
        ],
        _ => return false,
    };
    put_opt(headers, names[0], q.limit);
    put_opt(headers, names[1], q.remaining);
    if let Some(d) = q.reset_after {
        let at = reset_at(now, d).max(0);
        put(
            headers,
            names[2],
            at.div_euclid(1_000_000) + i128::from(at % 1_000_000 > 0),
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_match_go() {
        for (d, s) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1_100), "1.1µs"),
            (Duration::from_micros(2_200), "2.2ms"),
            (Duration::from_millis(12), "12ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(360), "6m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3723), "1h2m3s"),
            (Duration::from_millis(90_500), "1m30.5s"),
            (Duration::new(4_000, 1), "1h6m40.000000001s"),
        ] {
            assert_eq!(GoDuration(d).to_string(), s);
        }
    }

    #[test]
    fn decimal_writers_trim_and_round_as_documented() {
        assert_eq!(Seconds(Duration::from_millis(64_570)).to_string(), "64.57");
        assert_eq!(Seconds(Duration::from_secs(2)).to_string(), "2");
        assert_eq!(Millis(Duration::from_millis(1500)).to_string(), "1500");
        assert_eq!(Millis(Duration::from_micros(12_500)).to_string(), "12.5");
        assert_eq!(Millis(Duration::from_nanos(1)).to_string(), "0.000001");
        assert_eq!(DelaySeconds(Duration::from_millis(1001)).to_string(), "2");
        assert_eq!(DelaySeconds(Duration::from_secs(3)).to_string(), "3");
        assert_eq!(
            DelaySeconds(Duration::MAX).to_string(),
            u64::MAX.to_string()
        );
    }

    #[test]
    fn dates_in_every_form() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(HttpDate(t).to_string(), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(Rfc850Date(t).to_string(), "Sunday, 06-Nov-94 08:49:37 GMT");
        assert_eq!(AsctimeDate(t).to_string(), "Sun Nov  6 08:49:37 1994");
        assert_eq!(Rfc3339(t).to_string(), "1994-11-06T08:49:37Z");
    }

    #[test]
    fn kong_windows_and_far_resets_read_back() {
        let now = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        let quotas = [
            Quota::new(Resource::Requests)
                .with_dialect(Dialect::XRateLimit)
                .with_replenish(crate::Replenish::Window)
                .with_policy("minute")
                .with_window(Duration::from_secs(60))
                .with_limit(5)
                .with_remaining(4),
            Quota::new(Resource::Requests)
                .with_dialect(Dialect::XRateLimit)
                .with_replenish(crate::Replenish::Window)
                .with_policy("month")
                .with_remaining(9),
        ];
        let mut h = HeaderMap::new();
        assert_eq!(insert_quotas(&mut h, &quotas, now), 2);
        assert_eq!(h["x-ratelimit-limit-minute"], "5");
        let read: Vec<_> = crate::rate_limits(&h, now).into_iter().collect();
        assert_eq!(read, quotas);

        let far = Quota::new(Resource::Requests)
            .with_dialect(Dialect::XRateLimit)
            .with_replenish(crate::Replenish::Window)
            .with_reset_after(Duration::from_secs(10_000_000_000_000));
        let mut h = HeaderMap::new();
        insert_quotas(&mut h, [&far], now);
        assert_eq!(
            crate::rate_limits(&h, now).get(&Resource::Requests),
            Some(&far)
        );
    }

    #[test]
    fn linear_resets_are_unix_milliseconds() {
        let now = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        let quotas = [
            Quota::new(Resource::Requests)
                .with_dialect(Dialect::Linear)
                .with_replenish(crate::Replenish::Gradual)
                .with_limit(5000)
                .with_remaining(4999)
                .with_reset_after(Duration::from_millis(1_500)),
            Quota::new(Resource::Complexity)
                .with_dialect(Dialect::Linear)
                .with_replenish(crate::Replenish::Gradual)
                .with_remaining(10),
        ];
        let mut h = HeaderMap::new();
        assert_eq!(insert_quotas(&mut h, &quotas, now), 2);
        assert_eq!(h["x-ratelimit-requests-reset"], "1714564801500");
        assert_eq!(h["x-ratelimit-complexity-remaining"], "10");
        let read: Vec<_> = crate::rate_limits(&h, now).into_iter().collect();
        assert_eq!(read, quotas);
        // A policy has no Linear header.
        let named = quotas[0].clone().with_policy("endpoint");
        assert_eq!(insert_quotas(&mut HeaderMap::new(), [&named], now), 0);
    }

    #[test]
    fn dates_clamp_instead_of_panicking() {
        let early = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(HttpDate(early).to_string(), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(Rfc3339(early).to_string(), "1969-12-31T23:59:50Z");
        let ancient = UNIX_EPOCH - Duration::from_secs(100_000_000_000);
        assert_eq!(Rfc3339(ancient).to_string(), "0000-01-01T00:00:00Z");
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(HttpDate(far).to_string(), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(Rfc3339(far).to_string(), "9999-12-31T23:59:59Z");
        assert_eq!(AsctimeDate(far).to_string(), "Fri Dec 31 23:59:59 9999");
        assert_eq!(
            Rfc850Date(far).to_string(),
            "Friday, 31-Dec-99 23:59:59 GMT"
        );
    }
}
