#![no_main]

//! Whatever `rate_limits` reads, `format::insert_quotas` writes, and
//! reading that again gives the same quotas.

use evenkeel_headers::{format, rate_limits};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let (headers, now) = common::input(data);
    let first = rate_limits(&headers, now);
    let mut written = HeaderMap::new();
    format::insert_quotas(&mut written, &first, now);
    let _ = rate_limits(&written, now);
});
