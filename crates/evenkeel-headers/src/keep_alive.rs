//! `Keep-Alive: timeout=N, max=M`: how long the server keeps an idle
//! connection open (RFC 2068 §19.7.1.1, sent by Apache, Node.js and many
//! proxies with HTTP/1.1 answers).

use std::time::Duration;

use http::HeaderMap;
use http::header::HeaderValue;

use crate::num::parse_u64;

/// The idle timeout a server announced in `Keep-Alive: timeout=N`, in whole
/// seconds as the header gives it.
///
/// Parameters are matched case-insensitively, in any order, across every
/// `Keep-Alive` field line; the first `timeout` that parses wins.
/// Anything malformed (no digits, a sign, a fraction, a value past
/// `u64::MAX`, bytes that are not ASCII) is ignored rather than guessed
/// at. A quoted value (`timeout="5"`) is accepted.
///
/// ```
/// use std::time::Duration;
/// use evenkeel_headers::keep_alive_timeout;
///
/// let mut headers = http::HeaderMap::new();
/// assert_eq!(keep_alive_timeout(&headers), None);
/// headers.insert("keep-alive", "timeout=5, max=1000".parse()?);
/// assert_eq!(keep_alive_timeout(&headers), Some(Duration::from_secs(5)));
/// headers.insert("keep-alive", "max=3, Timeout = 2".parse()?);
/// assert_eq!(keep_alive_timeout(&headers), Some(Duration::from_secs(2)));
/// headers.insert("keep-alive", "timeout=soon".parse()?);
/// assert_eq!(keep_alive_timeout(&headers), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn keep_alive_timeout(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all(http::header::HeaderName::from_static("keep-alive"))
        .iter()
        .find_map(timeout_in)
}

/// The `timeout` parameter of one field line.
fn timeout_in(value: &HeaderValue) -> Option<Duration> {
    value.as_bytes().split(|&b| b == b',').find_map(|param| {
        let (name, value) = split_once(param, b'=')?;
        if !name.trim_ascii().eq_ignore_ascii_case(b"timeout") {
            return None;
        }
        let value = value.trim_ascii();
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        parse_u64(value).map(Duration::from_secs)
    })
}

fn split_once(b: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = b.iter().position(|&c| c == sep)?;
    Some((&b[..at], &b[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("keep-alive", HeaderValue::from_bytes(v).unwrap());
        }
        headers
    }

    #[test]
    fn forms() {
        let secs = |n| Some(Duration::from_secs(n));
        assert_eq!(keep_alive_timeout(&with(&[b"timeout=5"])), secs(5));
        assert_eq!(keep_alive_timeout(&with(&[b"timeout=5, max=100"])), secs(5));
        assert_eq!(keep_alive_timeout(&with(&[b"max=100,timeout=0"])), secs(0));
        assert_eq!(keep_alive_timeout(&with(&[b" TIMEOUT = \"7\" "])), secs(7));
        assert_eq!(
            keep_alive_timeout(&with(&[b"max=1", b"timeout=3"])),
            secs(3)
        );
        assert_eq!(
            keep_alive_timeout(&with(&[b"timeout=18446744073709551615"])),
            secs(u64::MAX)
        );
    }

    #[test]
    fn garbage_is_ignored() {
        for v in [
            &b"timeout"[..],
            b"timeout=",
            b"timeout=-1",
            b"timeout=1.5",
            b"timeout=5s",
            b"timeout=18446744073709551616",
            b"timeout=\xff",
            b"timeouts=5",
            b"=5",
            b"",
        ] {
            assert_eq!(keep_alive_timeout(&with(&[v])), None, "{v:?}");
        }
        // A bad parameter does not hide a good one after it.
        assert_eq!(
            keep_alive_timeout(&with(&[b"timeout=x, timeout=4"])),
            Some(Duration::from_secs(4))
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                let mut headers = HeaderMap::new();
                headers.insert("keep-alive", value);
                let _ = keep_alive_timeout(&headers);
            }
        }
    }
}
