//! The estimators: what a request costs, from its extensions, headers or
//! body, before it is sent.

use std::fmt;

use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderName, Request};
use http_body::Body;

use super::Cost;
use super::json::json_u64;

/// Estimates what a request costs, before it is sent.
///
/// Implemented by [`PerRequest`] (the default), [`Header`], [`Llm`],
/// [`FromFn`] (see [`from_fn`]), and any `Fn(&Request<B>) -> Cost`.
pub trait Estimate<B>: Send + Sync + 'static {
    /// The cost of `request`.
    fn estimate(&self, request: &Request<B>) -> Cost;
}

impl<B, F> Estimate<B> for F
where
    F: Fn(&Request<B>) -> Cost + Send + Sync + 'static,
{
    fn estimate(&self, request: &Request<B>) -> Cost {
        self(request)
    }
}

/// The `Cost` extension of `request`, if one was inserted.
fn extension<B>(request: &Request<B>) -> Option<Cost> {
    request.extensions().get::<Cost>().copied()
}

/// The default estimator: the request's [`Cost`] extension, or one request
/// and no tokens.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerRequest;

impl<B> Estimate<B> for PerRequest {
    #[inline]
    fn estimate(&self, request: &Request<B>) -> Cost {
        extension(request).unwrap_or_default()
    }
}

/// An estimator from a closure; see [`from_fn`].
#[derive(Clone, Copy)]
pub struct FromFn<F>(F);

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FromFn(..)")
    }
}

/// An estimator that calls `f`, unless the request carries a [`Cost`]
/// extension.
pub fn from_fn<F>(f: F) -> FromFn<F> {
    FromFn(f)
}

impl<B, F> Estimate<B> for FromFn<F>
where
    F: Fn(&Request<B>) -> Cost + Send + Sync + 'static,
{
    fn estimate(&self, request: &Request<B>) -> Cost {
        extension(request).unwrap_or_else(|| (self.0)(request))
    }
}

/// Reads token costs from request headers (decimal integers; a missing or
/// malformed header counts 0), unless the request carries a [`Cost`]
/// extension.
///
/// ```
/// use evenkeel_quota::cost::{Estimate, Header};
///
/// let estimator = Header::new().tokens("x-token-estimate").exact(true);
/// let request = http::Request::post("/v1/chat/completions")
///     .header("x-token-estimate", "1500")
///     .body(())
///     .unwrap();
/// let cost = estimator.estimate(&request);
/// assert_eq!((cost.requests(), cost.tokens()), (1, 1500));
/// assert!(cost.is_exact());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Header {
    tokens: Option<HeaderName>,
    input: Option<HeaderName>,
    output: Option<HeaderName>,
    exact: bool,
}

impl Header {
    /// An estimator that reads no header yet: one request, no tokens.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the combined tokens cost from `name`.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid header name (a programming error, like
    /// `HeaderName::from_static`).
    #[must_use]
    pub fn tokens(mut self, name: &str) -> Self {
        self.tokens = Some(header_name(name));
        self
    }

    /// Reads the input tokens from `name`. Panics like [`tokens`](Self::tokens).
    #[must_use]
    pub fn input_tokens(mut self, name: &str) -> Self {
        self.input = Some(header_name(name));
        self
    }

    /// Reads the output tokens from `name`. Panics like [`tokens`](Self::tokens).
    #[must_use]
    pub fn output_tokens(mut self, name: &str) -> Self {
        self.output = Some(header_name(name));
        self
    }

    /// Marks the costs read as exact (see [`Cost::exact`]).
    #[must_use]
    pub fn exact(mut self, exact: bool) -> Self {
        self.exact = exact;
        self
    }
}

fn header_name(name: &str) -> HeaderName {
    HeaderName::from_bytes(name.as_bytes()).expect("a valid header name")
}

fn header_u64(headers: &HeaderMap, name: Option<&HeaderName>) -> Option<u64> {
    let value = headers.get(name?)?;
    std::str::from_utf8(value.as_bytes())
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl<B> Estimate<B> for Header {
    fn estimate(&self, request: &Request<B>) -> Cost {
        if let Some(cost) = extension(request) {
            return cost;
        }
        let headers = request.headers();
        let mut cost = Cost::new()
            .with_input_tokens(header_u64(headers, self.input.as_ref()).unwrap_or(0))
            .with_output_tokens(header_u64(headers, self.output.as_ref()).unwrap_or(0))
            .exact(self.exact);
        if let Some(tokens) = header_u64(headers, self.tokens.as_ref()) {
            cost = cost.with_tokens(tokens);
        }
        cost
    }
}

/// Estimates what a whole request body costs. Implemented by [`Llm`] and
/// any `Fn(&HeaderMap, &[u8]) -> Cost`; used by
/// [`EstimateLayer`](super::EstimateLayer).
pub trait EstimateBody: Send + Sync + 'static {
    /// The cost of a request with these headers and this complete body.
    fn estimate_body(&self, headers: &HeaderMap, body: &[u8]) -> Cost;
}

impl<F> EstimateBody for F
where
    F: Fn(&HeaderMap, &[u8]) -> Cost + Send + Sync + 'static,
{
    fn estimate_body(&self, headers: &HeaderMap, body: &[u8]) -> Cost {
        self(headers, body)
    }
}

/// The usual estimate for LLM APIs (Anthropic Messages, OpenAI Chat
/// Completions and Responses): input tokens from the size of the JSON body
/// (4 bytes per token by default, the providers' own rule of thumb for
/// English), output tokens from its `max_tokens` (or
/// `max_completion_tokens`, `max_output_tokens`).
///
/// As an [`EstimateBody`] (through [`EstimateLayer`](super::EstimateLayer))
/// it reads the body; as an [`Estimate`] it sees only the body's exact size
/// (its size hint, else `Content-Length`) and uses
/// [`default_max_tokens`](Self::default_max_tokens) for the output. A
/// [`Cost`] extension on the request wins over both.
///
/// ```
/// use evenkeel_quota::cost::{EstimateBody, Llm};
///
/// let body = br#"{"model":"claude-x","max_tokens":1024,"messages":[{"role":"user","content":"Hello"}]}"#;
/// let cost = Llm::new().estimate_body(&http::HeaderMap::new(), body);
/// assert_eq!(cost.input_tokens(), (body.len() as u64).div_ceil(4));
/// assert_eq!(cost.output_tokens(), 1024);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Llm {
    bytes_per_token: u64,
    default_max_tokens: u64,
}

impl Default for Llm {
    fn default() -> Self {
        Llm::new()
    }
}

impl Llm {
    /// 4 bytes per input token; 4 096 output tokens when the body does not
    /// say.
    pub const fn new() -> Self {
        Llm {
            bytes_per_token: 4,
            default_max_tokens: 4096,
        }
    }

    /// Bytes of request body per input token (at least 1). Lower is more
    /// conservative: JSON punctuation, code and non-English text take more
    /// tokens per byte.
    #[must_use]
    pub const fn bytes_per_token(mut self, bytes: u64) -> Self {
        self.bytes_per_token = if bytes == 0 { 1 } else { bytes };
        self
    }

    /// Output tokens assumed when the body names no `max_tokens` (or the
    /// body cannot be read).
    #[must_use]
    pub const fn default_max_tokens(mut self, tokens: u64) -> Self {
        self.default_max_tokens = tokens;
        self
    }

    fn cost(&self, body_len: u64, max_tokens: Option<u64>) -> Cost {
        Cost::new()
            .with_input_tokens(body_len.div_ceil(self.bytes_per_token))
            .with_output_tokens(max_tokens.unwrap_or(self.default_max_tokens))
    }
}

impl EstimateBody for Llm {
    fn estimate_body(&self, _headers: &HeaderMap, body: &[u8]) -> Cost {
        let max = ["max_tokens", "max_completion_tokens", "max_output_tokens"]
            .into_iter()
            .find_map(|name| json_u64(body, name));
        self.cost(body.len() as u64, max)
    }
}

impl<B: Body> Estimate<B> for Llm {
    fn estimate(&self, request: &Request<B>) -> Cost {
        if let Some(cost) = extension(request) {
            return cost;
        }
        let len = request
            .body()
            .size_hint()
            .exact()
            .or_else(|| header_u64(request.headers(), Some(&CONTENT_LENGTH)));
        self.cost(len.unwrap_or(0), None)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::Full;

    use super::*;

    #[test]
    fn extension_wins_over_every_builtin() {
        let mut req = Request::new(Full::new(Bytes::from_static(b"12345678")));
        let chosen = Cost::new().with_tokens(42);
        req.extensions_mut().insert(chosen);
        assert_eq!(PerRequest.estimate(&req), chosen);
        assert_eq!(Header::new().tokens("x-t").estimate(&req), chosen);
        assert_eq!(Estimate::estimate(&Llm::new(), &req), chosen);
        assert_eq!(from_fn(|_: &Request<_>| Cost::new()).estimate(&req), chosen);
    }

    #[test]
    fn llm_without_body_uses_size_and_default() {
        let req = Request::new(Full::new(Bytes::from_static(b"12345678")));
        let cost = Estimate::estimate(&Llm::new().default_max_tokens(10), &req);
        assert_eq!((cost.input_tokens(), cost.output_tokens()), (2, 10));
        let req = Request::builder()
            .header("content-length", "400")
            .body(http_body_util::StreamBody::new(
                futures_util::stream::empty::<Result<http_body::Frame<Bytes>, std::io::Error>>(),
            ))
            .unwrap();
        let cost = Estimate::estimate(&Llm::new().bytes_per_token(0), &req);
        assert_eq!(cost.input_tokens(), 400);
    }

    #[test]
    fn malformed_headers_count_zero() {
        let req = Request::builder()
            .header("x-in", "lots")
            .header("x-out", "12")
            .body(())
            .unwrap();
        let cost = Header::new()
            .input_tokens("x-in")
            .output_tokens("x-out")
            .estimate(&req);
        assert_eq!(
            (cost.input_tokens(), cost.output_tokens(), cost.tokens()),
            (0, 12, 12)
        );
    }
}
