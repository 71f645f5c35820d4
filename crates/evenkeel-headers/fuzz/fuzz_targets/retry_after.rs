#![no_main]

use evenkeel_headers::{Pushback, retry_after, retry_after_with_source};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let (headers, now) = common::input(data);
    let pushback = retry_after(&headers, now);
    assert_eq!(
        pushback,
        retry_after_with_source(&headers, now).map(|(p, _)| p)
    );
    // Stop comes only from gRPC pushback.
    if pushback == Some(Pushback::Stop) {
        assert!(headers.contains_key("grpc-retry-pushback-ms"));
    }
});
