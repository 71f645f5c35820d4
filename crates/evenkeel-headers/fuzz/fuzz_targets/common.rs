//! Turns fuzzer bytes into a response's headers and a clock.
//!
//! Layout: 8 bytes of clock (seconds since the epoch, signed, clamped to
//! ±10^11), then records of `name selector (1 byte), value length (1 byte),
//! value`. A selector below the number of known names picks one; above it,
//! the name is the value's first bytes up to `:` when they form a valid
//! header name. Values go in with `append`, so names repeat.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

pub const NAMES: &[&str] = &[
    "retry-after",
    "retry-after-ms",
    "x-ms-retry-after-ms",
    "x-amz-retry-after",
    "grpc-retry-pushback-ms",
    "x-should-retry",
    "stripe-should-retry",
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-used",
    "x-ratelimit-resource",
    "x-ratelimit-reset-after",
    "x-ratelimit-bucket",
    "x-ratelimit-scope",
    "x-ratelimit-global",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-limit-minute",
    "x-ratelimit-remaining-day",
    "x-rate-limit-limit",
    "x-rate-limit-remaining",
    "x-rate-limit-reset",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-limit",
    "anthropic-ratelimit-output-tokens-reset",
    "anthropic-priority-input-tokens-remaining",
    "x-shopify-shop-api-call-limit",
];

pub fn input(data: &[u8]) -> (HeaderMap, SystemTime) {
    let (clock, mut rest) = data.split_at(data.len().min(8));
    let mut buf = [0u8; 8];
    buf[..clock.len()].copy_from_slice(clock);
    let secs = i64::from_le_bytes(buf).clamp(-100_000_000_000, 100_000_000_000);
    let now = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    let mut headers = HeaderMap::new();
    while let [selector, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (value, next) = tail.split_at(len);
        rest = next;
        let (name, value) = match NAMES.get(usize::from(*selector)) {
            Some(name) => (HeaderName::from_static(name), value),
            None => {
                let Some(colon) = value.iter().position(|&c| c == b':') else {
                    continue;
                };
                let Ok(name) = HeaderName::from_bytes(&value[..colon]) else {
                    continue;
                };
                (name, &value[colon + 1..])
            }
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    (headers, now)
}
