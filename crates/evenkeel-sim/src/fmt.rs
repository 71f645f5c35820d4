//! The two wall-clock and duration spellings the real APIs use in rate-limit
//! headers: Go's `time.Duration` text (OpenAI) and RFC 3339 at whole seconds
//! (Anthropic).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

/// Writes `d` the way Go's `time.Duration.String` does, after rounding it
/// *up* to whole milliseconds: `0s`, `12ms`, `1s`, `1.5s`, `6m0s`, `1h0m0s`.
///
/// Rounding up keeps a client that trusts the value from coming back early.
pub(crate) fn go_duration(d: Duration) -> String {
    let mut millis = d.as_millis();
    if !d.as_nanos().is_multiple_of(1_000_000) {
        millis += 1;
    }
    let mut out = String::with_capacity(12);
    if millis == 0 {
        out.push_str("0s");
        return out;
    }
    if millis < 1_000 {
        let _ = write!(out, "{millis}ms");
        return out;
    }
    let hours = millis / 3_600_000;
    let minutes = millis / 60_000 % 60;
    let seconds = millis / 1_000 % 60;
    let frac = millis % 1_000;
    if hours > 0 {
        let _ = write!(out, "{hours}h{minutes}m");
    } else if minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{seconds}");
    if frac > 0 {
        let digits = format!("{frac:03}");
        let _ = write!(out, ".{}", digits.trim_end_matches('0'));
    }
    out.push('s');
    out
}

/// Whole seconds since the Unix epoch of `t`, rounded *up*; times before the
/// epoch give zero.
pub(crate) fn unix_secs_ceil(t: SystemTime) -> u64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() + u64::from(d.subsec_nanos() > 0),
        Err(_) => 0,
    }
}

/// Writes `t`, rounded *up* to the whole second, as RFC 3339 in UTC:
/// `2025-03-01T12:34:56Z`.
pub(crate) fn rfc3339_ceil(t: SystemTime) -> String {
    rfc3339_from_unix(unix_secs_ceil(t))
}

/// RFC 3339 (UTC, `Z`) for whole seconds since the Unix epoch.
pub(crate) fn rfc3339_from_unix(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of the day `days` after 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_match_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_micros(1), "1ms"),
            (Duration::from_millis(12), "12ms"),
            (Duration::from_millis(999), "999ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_millis(8_640), "8.64s"),
            (Duration::from_millis(1_001), "1.001s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(360), "6m0s"),
            (Duration::from_millis(123_050), "2m3.05s"),
            (Duration::from_secs(3_600), "1h0m0s"),
            (Duration::from_secs(72 * 3_600 + 180), "72h3m0s"),
            (Duration::from_nanos(1_000_000_001), "1.001s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_from_unix(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(rfc3339_from_unix(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(rfc3339_from_unix(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn rfc3339_agrees_with_http_dates() {
        // httpdate is the reference for the same instant in IMF-fixdate.
        for secs in [0u64, 86_399, 1_000_000_000, 1_700_000_000, 2_000_000_123] {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            let ours = rfc3339_from_unix(secs);
            let (date, time) = ours.trim_end_matches('Z').split_once('T').unwrap();
            let http = httpdate::fmt_http_date(t);
            assert!(http.contains(time), "{http} vs {ours}");
            let day: u64 = date[8..10].parse().unwrap();
            assert!(http.contains(&format!(" {day:02} ")), "{http} vs {ours}");
        }
    }

    #[test]
    fn rounding_is_up() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_001);
        assert_eq!(unix_secs_ceil(t), 2);
        assert_eq!(rfc3339_ceil(t), "1970-01-01T00:00:02Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        assert_eq!(unix_secs_ceil(t), 5);
    }
}
