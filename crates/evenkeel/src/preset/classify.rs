//! The classifier every layer of the preset shares.

use evenkeel_core::{Classify, GrpcClassifier, HttpClassifier, Outcome};

/// How the preset reads outcomes: HTTP statuses (the default) or gRPC
/// statuses, for a stack over a tonic `Channel`.
///
/// Every layer of the preset (retry, failover, limit, metrics) classifies
/// with the same one.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PresetClassifier {
    /// HTTP: statuses, `Retry-After`, `x-should-retry` ([`HttpClassifier`]).
    Http(HttpClassifier),
    /// gRPC: `grpc-status` and `grpc-retry-pushback-ms`
    /// ([`GrpcClassifier`]).
    Grpc(GrpcClassifier),
}

impl PresetClassifier {
    /// HTTP statuses.
    pub fn http() -> Self {
        PresetClassifier::Http(HttpClassifier::new())
    }

    /// gRPC statuses.
    pub fn grpc() -> Self {
        PresetClassifier::Grpc(GrpcClassifier::new())
    }
}

impl Default for PresetClassifier {
    fn default() -> Self {
        PresetClassifier::http()
    }
}

impl<B> Classify<http::Response<B>> for PresetClassifier {
    #[inline]
    fn classify_response(&self, response: &http::Response<B>) -> Outcome {
        match self {
            PresetClassifier::Http(c) => c.classify_response(response),
            PresetClassifier::Grpc(c) => c.classify_response(response),
        }
    }

    fn wants_body(&self, outcome: &Outcome) -> bool {
        match self {
            PresetClassifier::Http(c) => Classify::<http::Response<B>>::wants_body(c, outcome),
            PresetClassifier::Grpc(c) => Classify::<http::Response<B>>::wants_body(c, outcome),
        }
    }

    fn classify_body(&self, outcome: Outcome, body: &[u8]) -> Outcome {
        match self {
            PresetClassifier::Http(c) => {
                Classify::<http::Response<B>>::classify_body(c, outcome, body)
            }
            PresetClassifier::Grpc(c) => {
                Classify::<http::Response<B>>::classify_body(c, outcome, body)
            }
        }
    }
}
