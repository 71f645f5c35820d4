//! Calendar arithmetic and the three time grammars servers use: HTTP-date
//! (RFC 9110 §5.6.7, all three forms), RFC 3339 timestamps and Go-style
//! durations.
//!
//! Timestamps are nanoseconds since the Unix epoch as `i128`, so every
//! year from 0 to 9999 fits and nothing overflows.

use std::time::Duration;

use crate::num::duration_from_nanos;

const NANOS: i128 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d`.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `(year, month, day)` of a day count since
/// 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Broken-down UTC time of a timestamp given in whole seconds since the
/// epoch: `(year, month, day, hour, minute, second, weekday)`, weekday 0 =
/// Sunday.
pub(crate) fn civil_from_secs(secs: i64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(SECS_PER_DAY);
    let sod = secs.rem_euclid(SECS_PER_DAY) as u32;
    let (y, m, d) = civil_from_days(days);
    let wday = (days + 4).rem_euclid(7) as u32;
    (y, m, d, sod / 3600, sod / 60 % 60, sod % 60, wday)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Nanoseconds since the epoch of a validated UTC date and time.
#[allow(clippy::too_many_arguments)]
fn timestamp(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> Option<i128> {
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60
    {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * SECS_PER_DAY
        + i64::from(h) * 3600
        + i64::from(mi) * 60
        + i64::from(s);
    Some(i128::from(secs) * NANOS + i128::from(nanos))
}

/// A byte cursor for the small grammars below.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn done(&self) -> bool {
        self.i == self.b.len()
    }

    /// Skips spaces; `true` when at least one was there.
    fn spaces(&mut self) -> bool {
        let start = self.i;
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
        self.i > start
    }

    fn alpha(&mut self) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        &self.b[start..self.i]
    }

    /// Up to `max` digits: `(value, count)`, `None` when there are none.
    fn digits(&mut self, max: usize) -> Option<(u32, usize)> {
        let mut v = 0u32;
        let mut n = 0;
        while n < max {
            match self.peek() {
                Some(c @ b'0'..=b'9') => {
                    v = v * 10 + u32::from(c - b'0');
                    n += 1;
                    self.i += 1;
                }
                _ => break,
            }
        }
        (n > 0).then_some((v, n))
    }

    /// Exactly `n` digits.
    fn fixed(&mut self, n: usize) -> Option<u32> {
        match self.digits(n) {
            Some((v, k)) if k == n => Some(v),
            _ => None,
        }
    }

    /// `HH:MM:SS`.
    fn clock(&mut self) -> Option<(u32, u32, u32)> {
        let h = self.fixed(2)?;
        self.eat(b':').then_some(())?;
        let m = self.fixed(2)?;
        self.eat(b':').then_some(())?;
        let s = self.fixed(2)?;
        Some((h, m, s))
    }
}

fn month(name: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    if name.len() != 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| name.eq_ignore_ascii_case(&m[..]))
        .map(|i| i as u32 + 1)
}

fn is_day_name(name: &[u8]) -> bool {
    const DAYS: [&[u8]; 7] = [
        b"monday",
        b"tuesday",
        b"wednesday",
        b"thursday",
        b"friday",
        b"saturday",
        b"sunday",
    ];
    DAYS.iter()
        .any(|d| name.eq_ignore_ascii_case(d) || name.eq_ignore_ascii_case(&d[..3]))
}

/// Fifty years of 365.2425 days, in nanoseconds: the horizon of RFC 9110's
/// two-digit-year rule.
const FIFTY_YEARS: i128 = 50 * 31_556_952 * NANOS;

/// Parses an HTTP-date in any of its three forms (RFC 9110 §5.6.7) into
/// nanoseconds since the epoch:
///
/// - IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`
/// - obsolete RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`
/// - ANSI C asctime: `Sun Nov  6 08:49:37 1994`
///
/// A two-digit year is read as the year with those last two digits that is
/// not more than 50 years after `now` (the RFC 9110 rule); this is why the
/// current time is needed. Leniencies, all seen from real servers: names
/// are case-insensitive, the day name is checked to be a day name but not
/// checked against the date, runs of spaces count as one, the zone may be
/// `UTC` as well as `GMT`, and a leap second (`:60`) is accepted.
pub(crate) fn parse_http_date(b: &[u8], now_nanos: i128) -> Option<i128> {
    let mut c = Cursor::new(b.trim_ascii());
    if !is_day_name(c.alpha()) {
        return None;
    }
    let (year, two_digit, mon, day, (h, mi, s));
    if c.eat(b',') {
        c.spaces();
        day = c.digits(2)?.0;
        if c.eat(b'-') {
            // RFC 850: 06-Nov-94
            mon = month(c.alpha())?;
            c.eat(b'-').then_some(())?;
        } else {
            // IMF-fixdate (or RFC 1123 with a two-digit year)
            c.spaces().then_some(())?;
            mon = month(c.alpha())?;
            c.spaces().then_some(())?;
        }
        let (y, n) = c.digits(4)?;
        if n != 2 && n != 4 {
            return None;
        }
        (year, two_digit) = (y, n == 2);
        c.spaces().then_some(())?;
        (h, mi, s) = c.clock()?;
        c.spaces().then_some(())?;
        let zone = c.alpha();
        if !(zone.eq_ignore_ascii_case(b"GMT") || zone.eq_ignore_ascii_case(b"UTC")) {
            return None;
        }
    } else {
        // asctime: Sun Nov  6 08:49:37 1994
        c.spaces().then_some(())?;
        mon = month(c.alpha())?;
        c.spaces().then_some(())?;
        day = c.digits(2)?.0;
        c.spaces().then_some(())?;
        (h, mi, s) = c.clock()?;
        c.spaces().then_some(())?;
        (year, two_digit) = (c.fixed(4)?, false);
    }
    if !c.done() {
        return None;
    }
    if !two_digit {
        return timestamp(i64::from(year), mon, day, h, mi, s, 0);
    }
    // RFC 9110: a two-digit year that appears to be more than 50 years in
    // the future is the most recent past year with those last two digits.
    let now_secs = i64::try_from(now_nanos.div_euclid(NANOS)).unwrap_or(i64::MAX);
    // Clamped so that the arithmetic below stays in range for any clock.
    let now_year = civil_from_secs(now_secs.clamp(-62_000_000_000, 253_000_000_000))
        .0
        .clamp(0, 9_999);
    let mut full = now_year - now_year.rem_euclid(100) + i64::from(year) + 100;
    loop {
        let t = timestamp(full, mon, day, h, mi, s, 0);
        match t {
            Some(t) if t > now_nanos.saturating_add(FIFTY_YEARS) => full -= 100,
            // 29 February of a year that is not leap in this century: try the
            // previous century, which may be.
            None if mon == 2 && day == 29 && full > now_year - 200 => full -= 100,
            _ => return t,
        }
    }
}

/// Parses an RFC 3339 `date-time` into nanoseconds since the epoch:
/// `2024-05-01T12:00:03Z`, `2024-05-01T12:00:03.25+02:00`. Accepts `t`, `z`
/// and a space for `T` (as RFC 3339 §5.6 allows), fractional seconds of any
/// length (kept to the nanosecond), and numeric offsets up to ±23:59.
pub(crate) fn parse_rfc3339(b: &[u8]) -> Option<i128> {
    let mut c = Cursor::new(b.trim_ascii());
    let y = c.fixed(4)?;
    c.eat(b'-').then_some(())?;
    let mo = c.fixed(2)?;
    c.eat(b'-').then_some(())?;
    let d = c.fixed(2)?;
    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return None;
    }
    let (h, mi, s) = c.clock()?;
    let mut nanos = 0u32;
    if c.eat(b'.') {
        let mut n = 0;
        while let Some(ch @ b'0'..=b'9') = c.peek() {
            if n < 9 {
                nanos = nanos * 10 + u32::from(ch - b'0');
            }
            n += 1;
            c.i += 1;
        }
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match c.peek()? {
        b'Z' | b'z' => {
            c.i += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            c.i += 1;
            let oh = c.fixed(2)?;
            c.eat(b':').then_some(())?;
            let om = c.fixed(2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 3600 + om * 60);
            if sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    if !c.done() {
        return None;
    }
    let t = timestamp(i64::from(y), mo, d, h, mi, s, nanos)?;
    Some(t - i128::from(offset_secs) * NANOS)
}

/// A parsed Go-style duration: its magnitude and whether it was negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoDuration {
    pub(crate) negative: bool,
    pub(crate) duration: Duration,
}

/// Parses a Go `time.Duration` string, as OpenAI sends in its reset
/// headers: `1s`, `6m0s`, `12ms`, `1h2m3s`, `1m30.5s`, `2.5µs`, `-1.5h`,
/// `0`. Units: `ns`, `us`, `µs` (U+00B5), `μs` (U+03BC), `ms`, `s`, `m`, `h`.
/// Saturates at [`Duration::MAX`] where Go would report an overflow.
pub(crate) fn parse_go_duration(b: &[u8]) -> Option<GoDuration> {
    let b = b.trim_ascii();
    let (negative, mut rest) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if rest == b"0" {
        return Some(GoDuration {
            negative,
            duration: Duration::ZERO,
        });
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        // number
        let mut int: u128 = 0;
        let mut i = 0;
        let mut saw_digit = false;
        while let Some(c @ b'0'..=b'9') = rest.get(i) {
            int = int.saturating_mul(10).saturating_add(u128::from(c - b'0'));
            saw_digit = true;
            i += 1;
        }
        let (mut frac, mut frac_scale) = (0u128, 1u128);
        if rest.get(i) == Some(&b'.') {
            i += 1;
            while let Some(c @ b'0'..=b'9') = rest.get(i) {
                // Nineteen fractional digits are far below a nanosecond of
                // any unit; the rest only need to be digits.
                if frac_scale < 10u128.pow(19) {
                    frac = frac * 10 + u128::from(c - b'0');
                    frac_scale *= 10;
                }
                saw_digit = true;
                i += 1;
            }
        }
        if !saw_digit {
            return None;
        }
        // unit: everything up to the next digit or dot
        let start = i;
        while rest
            .get(i)
            .is_some_and(|&c| c != b'.' && !c.is_ascii_digit())
        {
            i += 1;
        }
        let unit: u128 = match &rest[start..i] {
            b"ns" => 1,
            // us, µs (U+00B5), μs (U+03BC)
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => return None,
        };
        let part = int
            .saturating_mul(unit)
            .saturating_add(frac * unit / frac_scale);
        total = total.saturating_add(part);
        rest = &rest[i..];
    }
    Some(GoDuration {
        negative,
        duration: duration_from_nanos(total),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_2026: i128 = 1_767_225_600 * NANOS; // 2026-01-01T00:00:00Z

    fn secs(t: Option<i128>) -> Option<i64> {
        t.map(|t| (t / NANOS) as i64)
    }

    #[test]
    fn civil_round_trips_and_knows_its_weekdays() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in [-800_000, -1, 0, 1, 11_016, 11_017, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        // 1994-11-06 was a Sunday.
        let t = days_from_civil(1994, 11, 6) * SECS_PER_DAY + 8 * 3600 + 49 * 60 + 37;
        assert_eq!(civil_from_secs(t), (1994, 11, 6, 8, 49, 37, 0));
    }

    #[test]
    fn http_date_reads_the_three_rfc_9110_examples_alike() {
        let want = Some(784_111_777);
        assert_eq!(
            secs(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT", NOW_2026)),
            want
        );
        assert_eq!(
            secs(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT", NOW_2026)),
            want
        );
        assert_eq!(
            secs(parse_http_date(b"Sun Nov  6 08:49:37 1994", NOW_2026)),
            want
        );
    }

    #[test]
    fn http_date_is_lenient_where_servers_are_sloppy() {
        let want = Some(784_111_777);
        for s in [
            "sun, 06 nov 1994 08:49:37 gmt",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun,  06  Nov  1994  08:49:37  GMT",
            "Sun,06 Nov 1994 08:49:37 GMT",
            "Mon, 06 Nov 1994 08:49:37 GMT", // wrong day name: the date decides
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun Nov 6 08:49:37 1994",
            "  Sun, 06 Nov 1994 08:49:37 GMT  ",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
        ] {
            assert_eq!(secs(parse_http_date(s.as_bytes(), NOW_2026)), want, "{s}");
        }
    }

    #[test]
    fn http_date_refuses_malformed_dates() {
        for s in [
            "",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1995 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 23:60:00 GMT",
            "Sun, 06 Nov 1994 23:59:61 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 199 08:49:37 GMT",
            "Sun, 06 Nov 19945 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT junk",
            "Sun Nov  6 08:49:37 94",
            "Sun, 06-Nov-94 08:49:37",
            "1994-11-06T08:49:37Z",
        ] {
            assert_eq!(parse_http_date(s.as_bytes(), NOW_2026), None, "{s}");
        }
    }

    #[test]
    fn http_date_accepts_a_leap_second_and_leap_days() {
        assert!(parse_http_date(b"Wed, 31 Dec 2008 23:59:60 GMT", NOW_2026).is_some());
        assert!(parse_http_date(b"Thu, 29 Feb 2024 00:00:00 GMT", NOW_2026).is_some());
        assert!(parse_http_date(b"Tue, 29 Feb 2000 00:00:00 GMT", NOW_2026).is_some());
        assert!(parse_http_date(b"Mon, 29 Feb 1900 00:00:00 GMT", NOW_2026).is_none());
    }

    #[test]
    fn two_digit_years_follow_the_fifty_year_rule() {
        let year = |s: &str, now: i128| {
            parse_http_date(s.as_bytes(), now).map(|t| civil_from_secs((t / NANOS) as i64).0)
        };
        // In 2026: up to 2075 is "not more than 50 years" ahead.
        assert_eq!(year("Sunday, 06-Nov-94 08:49:37 GMT", NOW_2026), Some(1994));
        assert_eq!(year("Monday, 01-Jan-26 00:00:00 GMT", NOW_2026), Some(2026));
        assert_eq!(year("Monday, 01-Jan-30 00:00:00 GMT", NOW_2026), Some(2030));
        assert_eq!(year("Monday, 01-Jan-75 00:00:00 GMT", NOW_2026), Some(2075));
        assert_eq!(year("Monday, 01-Jan-76 00:00:00 GMT", NOW_2026), Some(2076));
        assert_eq!(year("Monday, 01-Jan-77 00:00:00 GMT", NOW_2026), Some(1977));
        assert_eq!(year("Monday, 01-Jan-00 00:00:00 GMT", NOW_2026), Some(2000));
        // In 2090, "10" is 2110 (20 years ahead), not 2010.
        let now_2090 = i128::from(days_from_civil(2090, 6, 1) * SECS_PER_DAY) * NANOS;
        assert_eq!(year("Monday, 01-Jan-10 00:00:00 GMT", now_2090), Some(2110));
        assert_eq!(year("Monday, 01-Jan-95 00:00:00 GMT", now_2090), Some(2095));
        // 29 February of a two-digit year that is only leap in another century.
        let now_2099 = i128::from(days_from_civil(2099, 6, 1) * SECS_PER_DAY) * NANOS;
        assert_eq!(
            year("Thursday, 29-Feb-00 00:00:00 GMT", now_2099),
            Some(2000)
        );
    }

    #[test]
    fn rfc3339_reads_zulu_offsets_and_fractions() {
        let base = 1_714_564_803i64; // 2024-05-01T12:00:03Z
        assert_eq!(secs(parse_rfc3339(b"2024-05-01T12:00:03Z")), Some(base));
        assert_eq!(secs(parse_rfc3339(b"2024-05-01t12:00:03z")), Some(base));
        assert_eq!(secs(parse_rfc3339(b"2024-05-01 12:00:03Z")), Some(base));
        assert_eq!(
            secs(parse_rfc3339(b"2024-05-01T14:00:03+02:00")),
            Some(base)
        );
        assert_eq!(
            secs(parse_rfc3339(b"2024-05-01T07:30:03-04:30")),
            Some(base)
        );
        assert_eq!(
            parse_rfc3339(b"2024-05-01T12:00:03.25Z"),
            Some(i128::from(base) * NANOS + 250_000_000)
        );
        assert_eq!(
            parse_rfc3339(b"2024-05-01T12:00:03.123456789123Z"),
            Some(i128::from(base) * NANOS + 123_456_789)
        );
        for bad in [
            "2024-05-01T12:00:03",
            "2024-05-01T12:00:03.Z",
            "2024-5-01T12:00:03Z",
            "2024-05-01T12:00Z",
            "2024-13-01T12:00:03Z",
            "2024-05-01T12:00:03+24:00",
            "2024-05-01T12:00:03+0200",
            "2024-05-01T12:00:03Zjunk",
            "1714564803",
        ] {
            assert_eq!(parse_rfc3339(bad.as_bytes()), None, "{bad}");
        }
    }

    fn go(s: &str) -> Option<Duration> {
        parse_go_duration(s.as_bytes()).map(|d| d.duration)
    }

    #[test]
    fn go_durations_as_openai_sends_them() {
        assert_eq!(go("1s"), Some(Duration::from_secs(1)));
        assert_eq!(go("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(go("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(go("1m30.5s"), Some(Duration::from_millis(90_500)));
        assert_eq!(go("2m59.56s"), Some(Duration::from_millis(179_560)));
        assert_eq!(go("7.66s"), Some(Duration::from_millis(7_660)));
        assert_eq!(go("0"), Some(Duration::ZERO));
        assert_eq!(go("0s"), Some(Duration::ZERO));
        assert_eq!(go("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(go("3us"), Some(Duration::from_micros(3)));
        assert_eq!(go("3µs"), Some(Duration::from_micros(3)));
        assert_eq!(go("3μs"), Some(Duration::from_micros(3)));
        assert_eq!(go("2.5µs"), Some(Duration::from_nanos(2_500)));
        assert_eq!(go("42ns"), Some(Duration::from_nanos(42)));
        assert_eq!(go(".5s"), Some(Duration::from_millis(500)));
        assert_eq!(go("1.s"), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_go_duration(b"-1.5s"),
            Some(GoDuration {
                negative: true,
                duration: Duration::from_millis(1500)
            })
        );
    }

    #[test]
    fn go_durations_refuse_nonsense_and_saturate_excess() {
        for bad in [
            "", "s", "1", "1x", "1 s", ".s", "-", "1s2", "1sm", "1S", "++1s",
        ] {
            assert_eq!(go(bad), None, "{bad}");
        }
        assert_eq!(
            go("99999999999999999999999999999999999999999999h"),
            Some(Duration::MAX)
        );
        assert_eq!(go("9223372036854775807h"), Some(Duration::MAX));
    }
}
