//! Turning responses and errors into [`Outcome`]s: the [`Classify`] trait,
//! the header signals every classifier reads, and the ready classifiers.

mod error;
mod grpc;
mod http;

use std::error::Error;

use ::http::HeaderMap;

use crate::clock;
use crate::outcome::{Outcome, Signal};

pub use self::error::classify_error;
pub use self::grpc::{GrpcClassifier, classify_grpc_status};
pub use self::http::{HttpClassifier, classify_status};

/// Classifies the result of one attempt.
///
/// Implementations must be cheap on the success path: every request passes
/// through [`classify_response`](Classify::classify_response).
///
/// Errors are handed over as `&(dyn Error + 'static)` so any error type can
/// be classified by walking its [`source`](Error::source) chain; the default
/// [`classify_error`](Classify::classify_error) does exactly that with
/// [`classify_error`](fn@classify_error).
///
/// # Example: a custom classifier
///
/// ```
/// use evenkeel_core::{Classify, HttpClassifier, Outcome};
///
/// /// Treats 404 from a flaky gateway as transient.
/// #[derive(Debug, Clone, Default)]
/// struct FlakyGateway(HttpClassifier);
///
/// impl<B> Classify<http::Response<B>> for FlakyGateway {
///     fn classify_response(&self, res: &http::Response<B>) -> Outcome {
///         if res.status() == http::StatusCode::NOT_FOUND {
///             return Outcome::ServerError(Default::default());
///         }
///         self.0.classify_response(res)
///     }
/// }
///
/// let res = http::Response::builder().status(404).body(()).unwrap();
/// assert!(matches!(FlakyGateway::default().classify_response(&res), Outcome::ServerError(_)));
/// ```
pub trait Classify<Res> {
    /// Classifies a response.
    fn classify_response(&self, response: &Res) -> Outcome;

    /// Classifies an error returned instead of a response.
    fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome {
        classify_error(error)
    }

    /// Whether the body of a response classified as `outcome` should be read
    /// (up to a small bound) and passed to [`classify_body`](Classify::classify_body)
    /// before acting on it. Layers that resend requests ask this only for
    /// responses they would otherwise retry. The default is `false`.
    fn wants_body(&self, outcome: &Outcome) -> bool {
        let _ = outcome;
        false
    }

    /// Refines `outcome` from the first bytes of the response body (for
    /// example, OpenAI's `insufficient_quota` 429s carry their meaning only
    /// in the body). The default returns `outcome` unchanged.
    fn classify_body(&self, outcome: Outcome, body: &[u8]) -> Outcome {
        let _ = body;
        outcome
    }
}

/// Reads the server's wait and verdict from response headers.
pub fn read_signal(headers: &HeaderMap) -> Signal {
    let mut signal = Signal {
        wait: None,
        should_retry: evenkeel_headers::should_retry(headers),
    };
    match evenkeel_headers::retry_after(headers, clock::system_now()) {
        Some(evenkeel_headers::Pushback::After(wait)) => signal.wait = Some(wait),
        Some(evenkeel_headers::Pushback::Stop) => signal.should_retry = Some(false),
        _ => {}
    }
    signal
}
