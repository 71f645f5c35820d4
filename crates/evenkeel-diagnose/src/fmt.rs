//! Small formatting helpers shared by the findings and the renderers.

use std::fmt::Display;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A latency for people: `0.42 ms`, `12.3 ms`, `340 ms`, `1.25 s`.
pub(crate) fn ms(d: Duration) -> String {
    let millis = d.as_secs_f64() * 1000.0;
    if millis < 10.0 {
        format!("{millis:.2} ms")
    } else if millis < 100.0 {
        format!("{millis:.1} ms")
    } else if millis < 1000.0 {
        format!("{millis:.0} ms")
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// A wait for people, rounded up to the second: `15 s`, `2 min 5 s`,
/// `3 h 0 min`.
pub(crate) fn wait(d: Duration) -> String {
    let mut s = d.as_secs();
    if d.subsec_nanos() > 0 {
        s = s.saturating_add(1);
    }
    if s < 120 {
        format!("{s} s")
    } else if s < 3 * 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else if s < 3 * 86400 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else {
        format!("{} days", s / 86400)
    }
}

/// `a, b, c`, or `(none)`.
pub(crate) fn list<T: Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut out = String::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&item.to_string());
    }
    if out.is_empty() {
        out.push_str("(none)");
    }
    out
}

/// Seconds since the epoch, negative before it, saturating.
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// The time from seconds since the epoch, clamped to what `SystemTime`
/// holds.
pub(crate) fn from_unix_secs(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(secs.unsigned_abs()))
            .unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))
            .unwrap_or(UNIX_EPOCH)
    }
}

/// `2025-01-31T12:00:00Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = unix_secs(t);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `2025-01-31`.
pub(crate) fn date(t: SystemTime) -> String {
    let (y, m, d) = civil_from_days(unix_secs(t).div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Text from a server made safe to print: control characters escaped,
/// at most `max` characters.
pub(crate) fn printable(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i >= max {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(from_unix_secs(1_714_564_821)),
            "2024-05-01T12:00:21Z"
        );
        assert_eq!(date(from_unix_secs(951_782_400)), "2000-02-29");
        assert_eq!(rfc3339(from_unix_secs(-86_400)), "1969-12-31T00:00:00Z");
        assert_eq!(unix_secs(from_unix_secs(-5)), -5);
        // Absurd values clamp instead of panicking.
        let _ = rfc3339(from_unix_secs(i64::MAX));
        let _ = rfc3339(from_unix_secs(i64::MIN));
    }

    #[test]
    fn durations() {
        assert_eq!(ms(Duration::from_micros(420)), "0.42 ms");
        assert_eq!(ms(Duration::from_micros(12_340)), "12.3 ms");
        assert_eq!(ms(Duration::from_millis(340)), "340 ms");
        assert_eq!(ms(Duration::from_millis(1250)), "1.25 s");
        assert_eq!(wait(Duration::from_millis(14_200)), "15 s");
        assert_eq!(wait(Duration::from_secs(125)), "2 min 5 s");
        assert_eq!(wait(Duration::from_secs(4 * 3600 + 60)), "4 h 1 min");
        assert_eq!(wait(Duration::MAX), format!("{} days", u64::MAX / 86400));
    }

    proptest::proptest! {
        #[test]
        fn printable_has_no_control_characters(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            max in 0usize..100,
        ) {
            let text = printable(&bytes, max);
            proptest::prop_assert!(!text.chars().any(char::is_control));
            proptest::prop_assert!(text.chars().count() <= max.saturating_mul(10) + 1);
        }

        #[test]
        fn any_time_formats(secs in proptest::num::i64::ANY) {
            let t = from_unix_secs(secs);
            let text = rfc3339(t);
            proptest::prop_assert!(text.ends_with('Z'));
            let _ = date(t);
        }
    }

    #[test]
    fn printable_escapes() {
        assert_eq!(printable(b"a\nb\x07c", 10), "a\\nb\\u{7}c");
        assert_eq!(printable(b"abcdef", 3), "abc…");
        assert_eq!(printable(&[0xff, b'a'], 5), "\u{fffd}a");
    }
}
