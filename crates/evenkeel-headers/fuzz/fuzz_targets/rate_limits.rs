#![no_main]

use evenkeel_headers::{Resource, rate_limits};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let (headers, now) = common::input(data);
    let limits = rate_limits(&headers, now);
    for q in &limits {
        assert!(
            q.limit.is_some()
                || q.remaining.is_some()
                || q.reset_after.is_some()
                || q.used.is_some()
        );
        let _ = q.remaining_fraction();
    }
    for r in [Resource::Requests, Resource::Tokens, Resource::InputTokens] {
        let _ = limits.tightest(&r);
    }
});
