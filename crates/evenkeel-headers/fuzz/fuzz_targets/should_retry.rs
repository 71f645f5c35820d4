#![no_main]

use evenkeel_headers::should_retry;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let (headers, _) = common::input(data);
    let verdict = should_retry(&headers);
    if verdict.is_some() {
        assert!(
            headers.contains_key("x-should-retry") || headers.contains_key("stripe-should-retry")
        );
    }
});
