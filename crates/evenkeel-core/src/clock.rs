//! The one clock every evenkeel crate reads: tokio's.
//!
//! Monotonic time comes from [`tokio::time::Instant`], so `tokio::time::pause`
//! drives every wait, timeout and window in tests. Servers, however, speak in
//! wall-clock time (`Retry-After` dates, Anthropic's RFC 3339 resets, epoch
//! resets). [`system_now`] maps tokio's clock onto wall-clock time through one
//! anchor shared by the whole process, so a simulated server and a client in
//! the same process agree on what "now" is even while tokio's clock is paused
//! and auto-advancing far ahead of the real one.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// The process-wide anchor: a wall-clock reading and the monotonic instant at
/// which it was taken.
fn anchor() -> &'static (SystemTime, std::time::Instant) {
    static ANCHOR: OnceLock<(SystemTime, std::time::Instant)> = OnceLock::new();
    ANCHOR.get_or_init(|| (SystemTime::now(), std::time::Instant::now()))
}

/// The current instant on tokio's clock.
///
/// Equivalent to [`tokio::time::Instant::now`]; named here so every crate
/// reads time through one place.
#[inline]
pub fn now() -> Instant {
    Instant::now()
}

/// The wall-clock time that corresponds to `instant` on tokio's clock.
///
/// Outside paused time this tracks [`SystemTime::now`] closely; under
/// `tokio::time::pause` it moves with tokio's clock, so dates in headers
/// produced and parsed in the same process line up.
pub fn system_time_at(instant: Instant) -> SystemTime {
    let (wall, mono) = *anchor();
    let instant = instant.into_std();
    match instant.checked_duration_since(mono) {
        Some(ahead) => wall.checked_add(ahead).unwrap_or(wall),
        None => {
            let behind = mono.saturating_duration_since(instant);
            wall.checked_sub(behind).unwrap_or(SystemTime::UNIX_EPOCH)
        }
    }
}

/// The wall-clock time now, on tokio's timeline. See [`system_time_at`].
pub fn system_now() -> SystemTime {
    system_time_at(now())
}

/// Seconds since the Unix epoch of [`system_now`], saturating at zero.
pub fn unix_now() -> Duration {
    system_now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_clock_follows_paused_time() {
        let before = system_now();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let after = system_now();
        let moved = after.duration_since(before).unwrap();
        assert!(moved >= Duration::from_secs(3600), "moved {moved:?}");
        assert!(moved < Duration::from_secs(3601), "moved {moved:?}");
    }

    #[tokio::test]
    async fn wall_clock_tracks_system_time_when_not_paused() {
        let ours = system_now();
        let real = SystemTime::now();
        let skew = match real.duration_since(ours) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        assert!(skew < Duration::from_secs(1), "skew {skew:?}");
    }
}
