//! How the sim rounds the values it writes into rate-limit headers; the
//! spellings themselves come from [`evenkeel_headers::format`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use evenkeel_headers::format::{GoDuration, Rfc3339};

/// `d` rounded *up* to whole milliseconds, spelled as Go's
/// `time.Duration.String` spells it (OpenAI's resets): `0s`, `12ms`, `1s`,
/// `1.5s`, `6m0s`, `1h0m0s`. Rounding up keeps a client that trusts the value
/// from coming back early.
pub(crate) fn go_duration(d: Duration) -> String {
    let millis = u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    GoDuration(Duration::from_millis(millis)).to_string()
}

/// Whole seconds since the Unix epoch of `t`, rounded *up*; times before the
/// epoch give zero.
pub(crate) fn unix_secs_ceil(t: SystemTime) -> u64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() + u64::from(d.subsec_nanos() > 0),
        Err(_) => 0,
    }
}

/// `t` rounded *up* to the whole second, as RFC 3339 in UTC
/// (`2025-03-01T12:34:56Z`), the way Anthropic writes its resets.
pub(crate) fn rfc3339_ceil(t: SystemTime) -> String {
    Rfc3339(UNIX_EPOCH + Duration::from_secs(unix_secs_ceil(t))).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_round_up_to_the_millisecond() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ms"),
            (Duration::from_micros(1), "1ms"),
            (Duration::from_millis(12), "12ms"),
            (Duration::from_millis(999), "999ms"),
            (Duration::from_micros(999_001), "1s"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_millis(8_640), "8.64s"),
            (Duration::from_nanos(1_000_000_001), "1.001s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(360), "6m0s"),
            (Duration::from_millis(123_050), "2m3.05s"),
            (Duration::from_secs(3_600), "1h0m0s"),
            (Duration::from_secs(72 * 3_600 + 180), "72h3m0s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn rfc3339_rounds_up_to_the_second() {
        let t = UNIX_EPOCH + Duration::from_millis(1_001);
        assert_eq!(unix_secs_ceil(t), 2);
        assert_eq!(rfc3339_ceil(t), "1970-01-01T00:00:02Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_164_800);
        assert_eq!(unix_secs_ceil(t), 1_709_164_800);
        assert_eq!(rfc3339_ceil(t), "2024-02-29T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_nanos(1_735_689_598_000_000_001);
        assert_eq!(rfc3339_ceil(t), "2024-12-31T23:59:59Z");
        assert_eq!(unix_secs_ceil(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
