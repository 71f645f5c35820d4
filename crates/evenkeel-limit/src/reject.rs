//! What a rejected request gets: an error, or a response.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use evenkeel_core::BoxError;
use evenkeel_core::error::Overloaded;
use http::{HeaderValue, Response, StatusCode};

/// How the limiter answers a request it will not send, and the error type
/// its service returns.
///
/// Two are provided: [`RejectWithError`] (the default: an
/// [`Overloaded`] error, for clients) and [`Respond`] (a `503` or a gRPC
/// `RESOURCE_EXHAUSTED` response, for servers whose error type must stay
/// `Infallible`).
pub trait Reject<B, E> {
    /// The error type of the limited service.
    type Error;

    /// The answer to a rejected request.
    fn reject(&self) -> Result<Response<B>, Self::Error>;

    /// Turns the inner service's error into the limited service's.
    fn convert(error: E) -> Self::Error;

    /// The error as a `dyn Error`, so it can be classified.
    fn as_dyn(error: &Self::Error) -> Option<&(dyn Error + 'static)>;
}

/// Rejects with an [`Overloaded`] error; the service's error type is
/// [`BoxError`]. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct RejectWithError;

impl<B, E: Into<BoxError>> Reject<B, E> for RejectWithError {
    type Error = BoxError;

    fn reject(&self) -> Result<Response<B>, BoxError> {
        Err(Box::new(Overloaded::new()))
    }

    #[inline]
    fn convert(error: E) -> BoxError {
        error.into()
    }

    fn as_dyn(error: &BoxError) -> Option<&(dyn Error + 'static)> {
        Some(&**error)
    }
}

/// Rejects with a response instead of an error, so the inner service's error
/// type (`Infallible` for axum and tonic) is kept.
///
/// - [`Respond::http`]: `503 Service Unavailable` with `Retry-After`
///   (1 second unless set with [`retry_after`](Respond::retry_after)).
/// - [`Respond::grpc`]: a trailers-only gRPC response: HTTP 200,
///   `content-type: application/grpc`, `grpc-status: 8`
///   (`RESOURCE_EXHAUSTED`), a `grpc-message`, and
///   `grpc-retry-pushback-ms` when a retry delay is set.
///
/// The body is the response body type's `Default` (empty for axum's and
/// tonic's bodies).
#[derive(Clone, PartialEq, Eq)]
pub struct Respond {
    grpc: bool,
    retry_after: Option<Duration>,
}

impl Respond {
    /// `503 Service Unavailable` with `Retry-After: 1`.
    pub fn http() -> Self {
        Respond {
            grpc: false,
            retry_after: Some(Duration::from_secs(1)),
        }
    }

    /// gRPC `RESOURCE_EXHAUSTED`, trailers-only.
    pub fn grpc() -> Self {
        Respond {
            grpc: true,
            retry_after: None,
        }
    }

    /// The delay to advertise: `Retry-After` in whole seconds (rounded up)
    /// for HTTP, `grpc-retry-pushback-ms` for gRPC. `None` sends neither.
    pub fn retry_after(mut self, delay: Option<Duration>) -> Self {
        self.retry_after = delay;
        self
    }

    /// Builds the rejection response.
    pub fn response<B: Default>(&self) -> Response<B> {
        let mut response = Response::new(B::default());
        if !self.grpc {
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        let headers = response.headers_mut();
        if self.grpc {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            headers.insert("grpc-status", HeaderValue::from_static("8"));
            headers.insert(
                "grpc-message",
                HeaderValue::from_static("concurrency%20limit%20reached"),
            );
            if let Some(delay) = self.retry_after {
                let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                headers.insert("grpc-retry-pushback-ms", HeaderValue::from(ms));
            }
        } else {
            if let Some(delay) = self.retry_after {
                let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
                headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
            }
        }
        response
    }
}

impl fmt::Debug for Respond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Respond")
            .field("protocol", &if self.grpc { "grpc" } else { "http" })
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl<B: Default, E: Error + 'static> Reject<B, E> for Respond {
    type Error = E;

    fn reject(&self) -> Result<Response<B>, E> {
        Ok(self.response())
    }

    #[inline]
    fn convert(error: E) -> E {
        error
    }

    fn as_dyn(error: &E) -> Option<&(dyn Error + 'static)> {
        Some(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_503_with_retry_after() {
        let r: Response<String> = Respond::http().response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        let r: Response<()> = Respond::http()
            .retry_after(Some(Duration::from_millis(2500)))
            .response();
        assert_eq!(r.headers()["retry-after"], "3");
        let r: Response<()> = Respond::http().retry_after(None).response();
        assert!(!r.headers().contains_key("retry-after"));
    }

    #[test]
    fn grpc_trailers_only() {
        let r: Response<String> = Respond::grpc().response();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "8");
        assert_eq!(r.headers()["content-type"], "application/grpc");
        assert!(r.body().is_empty());
        let r: Response<()> = Respond::grpc()
            .retry_after(Some(Duration::from_millis(250)))
            .response();
        assert_eq!(r.headers()["grpc-retry-pushback-ms"], "250");
        // The shared classifier reads it back as a rate limit.
        let outcome = evenkeel_core::classify_grpc_status(8, r.headers());
        assert!(outcome.is_pushback());
    }
}
