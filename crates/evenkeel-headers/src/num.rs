//! Number grammar shared by every header: whole counts, exact decimals and
//! the conversion of nanosecond counts into [`Duration`]s and timestamps.
//!
//! Everything here works on bytes (header values need not be UTF-8), never
//! allocates, and saturates instead of overflowing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds in one second.
pub(crate) const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses `1*DIGIT` into a `u64`, refusing empty input, any other byte and
/// values that do not fit.
pub(crate) fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    // Up to 19 digits cannot overflow: no checks needed per digit.
    if b.len() < 20 {
        let mut v: u64 = 0;
        for &c in b {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + u64::from(d);
        }
        return Some(v);
    }
    let mut v: u64 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// Parses a count (`limit`, `remaining`, `used`): surrounding blanks are
/// trimmed; negative values (Azure's `-1` sentinel), fractions and values
/// past `u64::MAX` are refused.
pub(crate) fn parse_count(b: &[u8]) -> Option<u64> {
    parse_u64(b.trim_ascii())
}

/// Parses an exact non-negative decimal number and returns it multiplied by
/// `10^scale`, truncated to an integer and saturated at `u128::MAX`.
///
/// Grammar: `1*DIGIT [ "." *DIGIT ] [ ("e" / "E") [ "+" / "-" ] 1*DIGIT ]`,
/// or `"." 1*DIGIT` with the same optional exponent. No sign, no `inf`, no
/// `nan`. With `scale = 9` a number of seconds becomes nanoseconds, with
/// `scale = 6` a number of milliseconds does.
pub(crate) fn parse_decimal_scaled(b: &[u8], scale: i32) -> Option<u128> {
    let mut i = 0;
    let mut mantissa: u128 = 0;
    // Digits that did not fit in `mantissa` shift the value up instead.
    let mut shift: i64 = i64::from(scale);
    let mut saw_digit = false;
    let mut full = false;
    while let Some(&c) = b.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        saw_digit = true;
        push_digit(&mut mantissa, &mut full, &mut shift, d, false);
        i += 1;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while let Some(&c) = b.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            saw_digit = true;
            push_digit(&mut mantissa, &mut full, &mut shift, d, true);
            i += 1;
        }
    }
    if !saw_digit {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let negative = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut exp: i64 = 0;
        while let Some(&c) = b.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            // Anything past a million is as good as infinite here.
            exp = (exp * 10 + i64::from(d)).min(1_000_000);
            i += 1;
        }
        if i == start {
            return None;
        }
        shift += if negative { -exp } else { exp };
    }
    if i != b.len() {
        return None;
    }
    Some(scale_pow10(mantissa, shift))
}

/// Appends one decimal digit to `mantissa`. Integer digits that no longer
/// fit raise the power of ten; fractional digits that no longer fit are
/// dropped (they are far below a nanosecond).
fn push_digit(mantissa: &mut u128, full: &mut bool, shift: &mut i64, d: u8, fraction: bool) {
    if !*full {
        match mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(d)))
        {
            Some(m) => {
                *mantissa = m;
                if fraction {
                    *shift -= 1;
                }
                return;
            }
            None => *full = true,
        }
    }
    if !fraction {
        *shift += 1;
    }
}

/// `m * 10^shift`, truncating when `shift < 0` and saturating when it grows
/// past `u128::MAX`.
fn scale_pow10(m: u128, shift: i64) -> u128 {
    if m == 0 {
        return 0;
    }
    if shift >= 0 {
        let mut v = m;
        for _ in 0..shift.min(40) {
            v = match v.checked_mul(10) {
                Some(v) => v,
                None => return u128::MAX,
            };
        }
        v
    } else if shift < -39 {
        0
    } else {
        m / 10u128.pow(u32::try_from(-shift).unwrap_or(39))
    }
}

/// Turns a nanosecond count into a [`Duration`], saturating at
/// [`Duration::MAX`].
pub(crate) fn duration_from_nanos(n: u128) -> Duration {
    let secs = n / NANOS_PER_SEC;
    match u64::try_from(secs) {
        // The remainder is below 10^9, so it fits in a u32.
        Ok(secs) => Duration::new(secs, (n % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

/// Parses a non-negative decimal number of units into a [`Duration`];
/// `scale` is the power of ten of nanoseconds per unit (9 for seconds, 6 for
/// milliseconds). Surrounding blanks are trimmed.
pub(crate) fn parse_decimal_duration(b: &[u8], scale: i32) -> Option<Duration> {
    parse_decimal_scaled(b.trim_ascii(), scale).map(duration_from_nanos)
}

/// Nanoseconds since the Unix epoch (negative before it).
pub(crate) fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// Time from `now` until the instant `at` (nanoseconds since the epoch);
/// zero when `at` has already passed.
pub(crate) fn until(at: i128, now: SystemTime) -> Duration {
    let delta = at.saturating_sub(unix_nanos(now));
    if delta <= 0 {
        Duration::ZERO
    } else {
        duration_from_nanos(delta as u128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_plain_non_negative_integers() {
        assert_eq!(parse_count(b"42"), Some(42));
        assert_eq!(parse_count(b" 42 "), Some(42));
        assert_eq!(parse_count(b"0"), Some(0));
        assert_eq!(parse_count(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_count(b"18446744073709551616"), None);
        assert_eq!(
            parse_count(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(
            parse_count(b"09999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(parse_count(b"99999999999999999999"), None);
        assert_eq!(parse_count(b"12a4"), None);
        assert_eq!(parse_count(b"-1"), None);
        assert_eq!(parse_count(b"+1"), None);
        assert_eq!(parse_count(b"1.0"), None);
        assert_eq!(parse_count(b""), None);
        assert_eq!(parse_count(b"1 2"), None);
        assert_eq!(parse_count(b"\xff"), None);
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal_scaled(b"1.5", 9), Some(1_500_000_000));
        assert_eq!(parse_decimal_scaled(b"0.3", 9), Some(300_000_000));
        assert_eq!(parse_decimal_scaled(b"1.", 9), Some(1_000_000_000));
        assert_eq!(parse_decimal_scaled(b".5", 9), Some(500_000_000));
        assert_eq!(parse_decimal_scaled(b"1500", 6), Some(1_500_000_000));
        assert_eq!(parse_decimal_scaled(b"1.000000001", 9), Some(1_000_000_001));
        assert_eq!(
            parse_decimal_scaled(b"1.0000000019", 9),
            Some(1_000_000_001)
        );
        assert_eq!(parse_decimal_scaled(b"1e3", 6), Some(1_000_000_000));
        assert_eq!(parse_decimal_scaled(b"2.5E-1", 9), Some(250_000_000));
        assert_eq!(parse_decimal_scaled(b"1e+2", 0), Some(100));
        assert_eq!(parse_decimal_scaled(b"0e999999999999", 9), Some(0));
    }

    #[test]
    fn decimals_refuse_what_is_not_a_number() {
        for bad in [
            &b""[..],
            b".",
            b"-1",
            b"+1",
            b"1e",
            b"1e+",
            b"e5",
            b"nan",
            b"NaN",
            b"inf",
            b"Infinity",
            b"1,5",
            b"1.5.1",
            b"0x10",
            b" 1",
            b"1 ",
        ] {
            assert_eq!(
                parse_decimal_scaled(bad, 9),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn absurd_decimals_saturate() {
        assert_eq!(parse_decimal_scaled(b"1e308", 9), Some(u128::MAX));
        assert_eq!(
            parse_decimal_scaled(b"1e999999999999999999999", 9),
            Some(u128::MAX)
        );
        assert_eq!(parse_decimal_scaled(b"1e-308", 9), Some(0));
        let long = "9".repeat(100);
        assert_eq!(parse_decimal_scaled(long.as_bytes(), 0), Some(u128::MAX));
        let tiny = format!("0.{}1", "0".repeat(100));
        assert_eq!(parse_decimal_scaled(tiny.as_bytes(), 9), Some(0));
        assert_eq!(parse_decimal_duration(b"1e308", 9), Some(Duration::MAX));
        assert_eq!(
            parse_decimal_duration(b"18446744073709551615", 9),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse_decimal_duration(b"18446744073709551616", 9),
            Some(Duration::MAX)
        );
    }

    #[test]
    fn until_is_zero_for_the_past() {
        let now = UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(until(50 * 1_000_000_000, now), Duration::ZERO);
        assert_eq!(until(-5, now), Duration::ZERO);
        assert_eq!(until(101 * 1_000_000_000, now), Duration::from_secs(1));
        assert_eq!(until(i128::MAX, now), Duration::MAX);
        let before_epoch = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(unix_nanos(before_epoch), -10_000_000_000);
        assert_eq!(until(0, before_epoch), Duration::from_secs(10));
    }
}
