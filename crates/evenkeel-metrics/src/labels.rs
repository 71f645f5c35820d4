//! Bounded label values: methods, attempt numbers, resources, hosts.

use evenkeel_headers::Resource;
use http::{HeaderMap, Method, Uri};

/// The value of any label whose real value is outside its bounded set.
pub(crate) const OTHER: &str = "_OTHER";

/// The label value of a call that was dropped before it completed.
pub(crate) const CANCELLED: &str = "cancelled";

/// The standard methods of RFC 9110 and RFC 5789, in the order of
/// [`method_index`]; everything else is [`OTHER`].
const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT", "TRACE", OTHER,
];

/// The index of a method's label in [`METHODS`]; extension methods get the
/// last slot.
#[inline]
pub(crate) fn method_index(method: &Method) -> u8 {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::HEAD => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

/// The label of a method index.
pub(crate) fn method_label(index: u8) -> &'static str {
    METHODS[usize::from(index).min(METHODS.len() - 1)]
}

/// Attempt labels: `1` to `4`, then `5+`.
const ATTEMPTS: [&str; 5] = ["1", "2", "3", "4", "5+"];

/// The bucket of an attempt number (1-based), `1..=5`. Attempt 0 (which no
/// layer sets) counts as the first.
#[inline]
pub(crate) fn attempt_bucket(attempt: u32) -> u8 {
    attempt.clamp(1, ATTEMPTS.len() as u32) as u8
}

/// The label of an attempt bucket.
pub(crate) fn attempt_label(bucket: u8) -> &'static str {
    ATTEMPTS[usize::from(bucket.clamp(1, ATTEMPTS.len() as u8)) - 1]
}

/// The slots of rate-limit resources; the server's own units share `other`.
pub(crate) const RESOURCES: usize = 7;

/// A resource's slot and label. Units the server names itself
/// ([`Resource::Other`]) are `other`, so a server cannot grow the label set.
pub(crate) fn resource_slot(resource: &Resource) -> (usize, &'static str) {
    match resource {
        Resource::Requests => (0, "requests"),
        Resource::Tokens => (1, "tokens"),
        Resource::InputTokens => (2, "input-tokens"),
        Resource::OutputTokens => (3, "output-tokens"),
        Resource::ConcurrentRequests => (4, "concurrent-requests"),
        Resource::ContentBytes => (5, "content-bytes"),
        _ => (6, "other"),
    }
}

/// Where a request goes, as cheap to read as possible: the URI's raw
/// authority (`user@host:port`), else the `Host` header's raw value. The
/// host is parsed out of it with [`host_of`] only the first time a value is
/// seen.
pub(crate) fn authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    if let Some(authority) = uri.authority() {
        return Some(authority.as_str());
    }
    let value = headers.get(http::header::HOST)?;
    std::str::from_utf8(value.as_bytes()).ok()
}

/// The host in an authority: without user information, port or the
/// brackets of an IPv6 literal. `None` when there is none.
pub(crate) fn host_of(authority: &str) -> Option<&str> {
    let hostport = authority.rsplit('@').next()?;
    let host = if let Some(rest) = hostport.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8080`.
        rest.split(']').next()?
    } else {
        hostport.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_set_are_other() {
        let standard = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::HEAD,
            Method::PATCH,
            Method::OPTIONS,
            Method::CONNECT,
            Method::TRACE,
        ];
        for m in standard {
            assert_eq!(method_label(method_index(&m)), m.as_str());
        }
        let custom = Method::from_bytes(b"PROPFIND").unwrap();
        assert_eq!(method_label(method_index(&custom)), "_OTHER");
        let lower = Method::from_bytes(b"get").unwrap();
        assert_eq!(method_label(method_index(&lower)), "_OTHER");
    }

    #[test]
    fn attempts_are_bucketed() {
        let labels: Vec<_> = [0, 1, 2, 3, 4, 5, 6, u32::MAX]
            .into_iter()
            .map(|a| attempt_label(attempt_bucket(a)))
            .collect();
        assert_eq!(labels, ["1", "1", "2", "3", "4", "5+", "5+", "5+"]);
    }

    #[test]
    fn server_named_units_share_one_label() {
        assert_eq!(resource_slot(&Resource::Tokens), (1, "tokens"));
        assert_eq!(
            resource_slot(&Resource::Other("gpu-seconds".into())),
            (6, "other")
        );
    }

    #[test]
    fn host_comes_from_the_uri_or_the_host_header() {
        fn host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
            authority(uri, headers).and_then(host_of)
        }
        let mut headers = HeaderMap::new();
        let uri: Uri = "https://api.example.com:8443/v1".parse().unwrap();
        assert_eq!(authority(&uri, &headers), Some("api.example.com:8443"));
        assert_eq!(host(&uri, &headers), Some("api.example.com"));
        let uri: Uri = "http://[::1]:8080/".parse().unwrap();
        assert_eq!(host(&uri, &headers), Some("::1"));
        let uri: Uri = "http://user:secret@example.net/".parse().unwrap();
        assert_eq!(host(&uri, &headers), Some("example.net"));

        let path: Uri = "/v1/messages".parse().unwrap();
        assert_eq!(host(&path, &headers), None);
        headers.insert("host", "example.org:80".parse().unwrap());
        assert_eq!(host(&path, &headers), Some("example.org"));
        headers.insert("host", "[2001:db8::1]:443".parse().unwrap());
        assert_eq!(host(&path, &headers), Some("2001:db8::1"));
        headers.insert("host", ":80".parse().unwrap());
        assert_eq!(host(&path, &headers), None);
        headers.insert("host", http::HeaderValue::from_bytes(b"\xffx").unwrap());
        assert_eq!(host(&path, &headers), None);
    }
}
