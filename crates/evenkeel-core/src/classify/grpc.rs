//! gRPC classification: [`GrpcClassifier`] and [`classify_grpc_status`].

use http::{HeaderMap, Response};

use super::{Classify, classify_status, read_signal};
use crate::outcome::Outcome;

/// A classifier for gRPC over HTTP/2.
///
/// Reads `grpc-status` from the response headers, where servers put it in
/// trailers-only responses (the usual shape of an immediate rejection):
///
/// - `OK` (0): [`Outcome::Success`];
/// - `RESOURCE_EXHAUSTED` (8): [`Outcome::RateLimited`], with the wait from
///   `grpc-retry-pushback-ms` (a negative value forbids retrying);
/// - `UNAVAILABLE` (14): [`Outcome::Overloaded`];
/// - `DEADLINE_EXCEEDED` (4), `INTERNAL` (13), `ABORTED` (10),
///   `UNKNOWN` (2): [`Outcome::ServerError`];
/// - every other code: [`Outcome::ClientError`].
///
/// A response without `grpc-status` in its headers has its status in the
/// trailers, after the body; its HTTP status is classified as
/// [`HttpClassifier`](crate::HttpClassifier) would (200 is a success).
#[derive(Debug, Clone, Default)]
pub struct GrpcClassifier {
    _priv: (),
}

impl GrpcClassifier {
    /// A gRPC classifier.
    pub fn new() -> Self {
        Self::default()
    }
}

/// gRPC status codes this crate distinguishes.
mod grpc_code {
    pub(super) const OK: u32 = 0;
    pub(super) const UNKNOWN: u32 = 2;
    pub(super) const DEADLINE_EXCEEDED: u32 = 4;
    pub(super) const RESOURCE_EXHAUSTED: u32 = 8;
    pub(super) const ABORTED: u32 = 10;
    pub(super) const INTERNAL: u32 = 13;
    pub(super) const UNAVAILABLE: u32 = 14;
}

/// Classifies a gRPC status code with the headers that came with it.
pub fn classify_grpc_status(code: u32, headers: &HeaderMap) -> Outcome {
    use grpc_code::*;
    match code {
        OK => Outcome::Success,
        RESOURCE_EXHAUSTED => Outcome::RateLimited(read_signal(headers)),
        UNAVAILABLE => Outcome::Overloaded(read_signal(headers)),
        DEADLINE_EXCEEDED | INTERNAL | ABORTED | UNKNOWN => {
            Outcome::ServerError(read_signal(headers))
        }
        _ => Outcome::ClientError,
    }
}

impl<B> Classify<Response<B>> for GrpcClassifier {
    fn classify_response(&self, response: &Response<B>) -> Outcome {
        let headers = response.headers();
        match headers.get("grpc-status") {
            Some(value) => match std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                Some(code) => classify_grpc_status(code, headers),
                // A malformed status is treated as UNKNOWN, as gRPC clients do.
                None => Outcome::ServerError(read_signal(headers)),
            },
            None => classify_status(response.status(), headers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn grpc_statuses() {
        let grpc = |code: &str, extra: &[(&'static str, &'static str)]| {
            let mut b = Response::builder().status(200).header("grpc-status", code);
            for (k, v) in extra {
                b = b.header(*k, *v);
            }
            GrpcClassifier::new().classify_response(&b.body(()).unwrap())
        };
        assert_eq!(grpc("0", &[]), Outcome::Success);
        let o = grpc("8", &[("grpc-retry-pushback-ms", "250")]);
        assert!(matches!(o, Outcome::RateLimited(_)));
        assert_eq!(o.server_wait(), Some(Duration::from_millis(250)));
        assert!(grpc("8", &[("grpc-retry-pushback-ms", "-1")]).retry_forbidden());
        assert!(matches!(grpc("14", &[]), Outcome::Overloaded(_)));
        assert!(matches!(grpc("4", &[]), Outcome::ServerError(_)));
        assert_eq!(grpc("3", &[]), Outcome::ClientError);
        assert!(matches!(grpc("junk", &[]), Outcome::ServerError(_)));
        let no_status = Response::builder().status(200).body(()).unwrap();
        assert_eq!(
            GrpcClassifier::new().classify_response(&no_status),
            Outcome::Success
        );
    }
}
