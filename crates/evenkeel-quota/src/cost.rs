//! What a request costs against each quota, and how the cost is estimated.
//!
//! Every request costs one unit of the requests quota. Token quotas (the
//! tokens, input-tokens and output-tokens limits of LLM APIs) need an
//! estimate *before* the request is sent: the layer reserves it, and the
//! server's rate-limit headers on the response replace the estimate with
//! the truth.
//!
//! # Where the estimate comes from
//!
//! The layer asks its [`Estimate`] for a [`Cost`] when a request arrives.
//! An estimator sees `&http::Request<B>`: the method, URI, headers and
//! extensions, but not the body bytes, because a body is a stream that the
//! layer must not consume. Three ways to get a token estimate to the layer:
//!
//! 1. **A `Cost` extension** (the default estimator, [`PerRequest`], reads
//!    it). The code that builds the request has the prompt and
//!    `max_tokens` in hand; it inserts
//!    `request.extensions_mut().insert(Cost::new().with_input_tokens(n).with_output_tokens(m))`.
//!    Extensions survive the retry layer's resends. Every built-in
//!    estimator gives an explicit `Cost` extension precedence.
//! 2. **Headers** ([`Header`]): the cost is read from request headers that
//!    a gateway or the caller sets.
//! 3. **The body, when it is complete at once** ([`EstimateLayer`]): a
//!    small layer placed *outside* the retry layer (where the body is still
//!    the caller's `Full<Bytes>` or `String`) reads the whole body without
//!    consuming it, runs an [`EstimateBody`] such as [`Llm`] (input tokens
//!    from the JSON's size, output tokens from its `max_tokens`), and
//!    inserts the result as a `Cost` extension for the quota layer below.
//!
//! [`Llm`] also implements [`Estimate`] directly, from the body's exact size
//! hint (or `Content-Length`) alone, for stacks where the body cannot be
//! read: input tokens from the size, output tokens from its configured
//! default.
//!
//! # Exact and estimated costs
//!
//! A cost is *estimated* by default: an upper estimate such as `max_tokens`
//! is fine for reserving, but it says nothing exact about what the server
//! charged. Mark a cost [`exact`](Cost::exact) when it is what the server
//! will charge (a token count from the provider's tokenizer, a cost header
//! the server itself reads): the layer then also learns token quotas'
//! refill rates from what it observes between responses, as it always does
//! for the requests quota.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use evenkeel_headers::Resource;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderName, Request};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

/// The number of cost dimensions the layer meters: requests, tokens, input
/// tokens, output tokens.
pub(crate) const FIELDS: usize = 4;

/// What one request costs against each quota it may count in.
///
/// `Copy`, no allocation. Requests cost 1 by default; the combined tokens
/// cost defaults to input + output tokens unless set with
/// [`with_tokens`](Self::with_tokens).
///
/// ```
/// use evenkeel_quota::cost::Cost;
/// use evenkeel_headers::Resource;
///
/// let cost = Cost::new().with_input_tokens(1_200).with_output_tokens(1_024);
/// assert_eq!(cost.of(&Resource::Requests), Some(1));
/// assert_eq!(cost.of(&Resource::Tokens), Some(2_224));
/// assert_eq!(cost.of(&Resource::ContentBytes), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cost {
    requests: u64,
    tokens: Option<u64>,
    input_tokens: u64,
    output_tokens: u64,
    exact: bool,
}

impl Default for Cost {
    fn default() -> Self {
        Cost::new()
    }
}

impl Cost {
    /// One request, no tokens.
    pub const fn new() -> Self {
        Cost {
            requests: 1,
            tokens: None,
            input_tokens: 0,
            output_tokens: 0,
            exact: false,
        }
    }

    /// Sets the requests count (1 by default; a batch endpoint may count
    /// more).
    #[must_use]
    pub const fn with_requests(mut self, requests: u64) -> Self {
        self.requests = requests;
        self
    }

    /// Sets the combined tokens cost, overriding input + output tokens.
    #[must_use]
    pub const fn with_tokens(mut self, tokens: u64) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Sets the input (prompt) tokens.
    #[must_use]
    pub const fn with_input_tokens(mut self, tokens: u64) -> Self {
        self.input_tokens = tokens;
        self
    }

    /// Sets the output tokens (for LLM APIs: `max_tokens`, the most the
    /// response may use).
    #[must_use]
    pub const fn with_output_tokens(mut self, tokens: u64) -> Self {
        self.output_tokens = tokens;
        self
    }

    /// Marks the token counts as exact: what the server will charge, not an
    /// upper estimate. See the [module docs](self).
    #[must_use]
    pub const fn exact(mut self, exact: bool) -> Self {
        self.exact = exact;
        self
    }

    /// Requests counted.
    pub const fn requests(&self) -> u64 {
        self.requests
    }

    /// The combined tokens cost: the explicit value, or input + output.
    pub const fn tokens(&self) -> u64 {
        match self.tokens {
            Some(t) => t,
            None => self.input_tokens.saturating_add(self.output_tokens),
        }
    }

    /// Input tokens.
    pub const fn input_tokens(&self) -> u64 {
        self.input_tokens
    }

    /// Output tokens.
    pub const fn output_tokens(&self) -> u64 {
        self.output_tokens
    }

    /// Whether the token counts are exact.
    pub const fn is_exact(&self) -> bool {
        self.exact
    }

    /// The cost against a quota of `resource`, or `None` for resources the
    /// layer does not meter (concurrency, content bytes, unknown units).
    pub fn of(&self, resource: &Resource) -> Option<u64> {
        field_of(resource).map(|i| self.fields()[i])
    }

    /// The costs in field order: requests, tokens, input, output.
    pub(crate) fn fields(&self) -> [u64; FIELDS] {
        [
            self.requests,
            self.tokens(),
            self.input_tokens,
            self.output_tokens,
        ]
    }
}

/// The field index of a metered resource.
pub(crate) fn field_of(resource: &Resource) -> Option<usize> {
    match resource {
        Resource::Requests => Some(0),
        Resource::Tokens => Some(1),
        Resource::InputTokens => Some(2),
        Resource::OutputTokens => Some(3),
        _ => None,
    }
}

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
/// any `Fn(&HeaderMap, &[u8]) -> Cost`; used by [`EstimateLayer`].
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
/// As an [`EstimateBody`] (through [`EstimateLayer`]) it reads the body; as
/// an [`Estimate`] it sees only the body's exact size (its size hint, else
/// `Content-Length`) and uses [`default_max_tokens`](Self::default_max_tokens)
/// for the output. A [`Cost`] extension on the request wins over both.
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

/// The first non-negative integer value of the top-level or nested member
/// `"name"` in a JSON text, found by a tolerant scan (no allocation, never
/// panics). Good enough for cost estimates; not a JSON parser.
fn json_u64(body: &[u8], name: &str) -> Option<u64> {
    let name = name.as_bytes();
    let mut from = 0;
    while let Some(pos) = find(&body[from..], name) {
        let start = from + pos;
        let end = start + name.len();
        from = end;
        // The name must be quoted: "name"
        if start == 0 || body[start - 1] != b'"' || body.get(end) != Some(&b'"') {
            continue;
        }
        let mut i = end + 1;
        while body.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if body.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while body.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let digits = body[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            continue;
        }
        let text = std::str::from_utf8(&body[i..i + digits]).ok()?;
        return Some(text.parse().unwrap_or(u64::MAX));
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A request body whose whole content can be read without consuming it:
/// `Full<Bytes>` (read once and rebuilt, no copy), `String`, `Empty`.
pub trait WholeBody {
    /// Calls `f` with the whole body, leaving the body as it was. `None`
    /// when the body is not complete at once (it is left untouched then).
    fn with_whole<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R>;
}

impl WholeBody for http_body_util::Full<Bytes> {
    fn with_whole<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        // `Full` yields its one chunk on the first poll, without a waker.
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut *self).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let data = frame.into_data().unwrap_or_default();
                let out = f(&data);
                *self = http_body_util::Full::new(data);
                Some(out)
            }
            Poll::Ready(None) => {
                *self = http_body_util::Full::new(Bytes::new());
                Some(f(&[]))
            }
            Poll::Ready(Some(Err(never))) => match never {},
            Poll::Pending => None,
        }
    }
}

impl WholeBody for String {
    fn with_whole<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        Some(f(self.as_bytes()))
    }
}

impl WholeBody for http_body_util::Empty<Bytes> {
    fn with_whole<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        Some(f(&[]))
    }
}

/// Estimates each request's cost from its whole body and attaches it as a
/// [`Cost`] extension, for a quota layer below. Place it *outside* the retry
/// layer, where the body is still the caller's; see the
/// [module docs](self).
///
/// A request that already carries a `Cost` extension, or whose body is not
/// complete at once, passes unchanged.
///
/// ```
/// use evenkeel_quota::cost::{Cost, EstimateLayer, Llm};
/// use http_body_util::Full;
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// # tokio_test::block_on(async {
/// let mut svc = ServiceBuilder::new()
///     .layer(EstimateLayer::new(Llm::new()))
///     .service_fn(|req: http::Request<Full<bytes::Bytes>>| async move {
///         let cost = *req.extensions().get::<Cost>().unwrap();
///         Ok::<_, std::convert::Infallible>(cost.output_tokens())
///     });
/// let req = http::Request::new(Full::new(bytes::Bytes::from_static(br#"{"max_tokens":64}"#)));
/// assert_eq!(svc.ready().await.unwrap().call(req).await.unwrap(), 64);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct EstimateLayer<E> {
    estimator: Arc<E>,
}

impl<E> EstimateLayer<E> {
    /// A layer estimating with `estimator`.
    pub fn new(estimator: E) -> Self {
        EstimateLayer {
            estimator: Arc::new(estimator),
        }
    }
}

impl<S, E> Layer<S> for EstimateLayer<E> {
    type Service = EstimateService<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        EstimateService {
            inner,
            estimator: Arc::clone(&self.estimator),
        }
    }
}

/// The service of [`EstimateLayer`].
#[derive(Debug, Clone)]
pub struct EstimateService<S, E> {
    inner: S,
    estimator: Arc<E>,
}

impl<S, E> EstimateService<S, E> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, E, B> Service<Request<B>> for EstimateService<S, E>
where
    S: Service<Request<B>>,
    E: EstimateBody,
    B: WholeBody,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if request.extensions().get::<Cost>().is_none() {
            let (parts, body) = request.into_parts();
            let mut body = body;
            let cost = body.with_whole(|bytes| self.estimator.estimate_body(&parts.headers, bytes));
            request = Request::from_parts(parts, body);
            if let Some(cost) = cost {
                request.extensions_mut().insert(cost);
            }
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[test]
    fn json_scan_finds_numbers_and_ignores_lookalikes() {
        assert_eq!(json_u64(br#"{"max_tokens": 12}"#, "max_tokens"), Some(12));
        assert_eq!(
            json_u64(br#"{"a":{"max_tokens":7}}"#, "max_tokens"),
            Some(7)
        );
        assert_eq!(
            json_u64(br#"{"not_max_tokens":3,"max_tokens":5}"#, "max_tokens"),
            Some(5)
        );
        assert_eq!(json_u64(br#"{"max_tokens":"9"}"#, "max_tokens"), None);
        assert_eq!(json_u64(br#"{"max_tokens":-1}"#, "max_tokens"), None);
        assert_eq!(json_u64(b"max_tokens", "max_tokens"), None);
        assert_eq!(json_u64(br#""max_tokens""#, "max_tokens"), None);
        assert_eq!(
            json_u64(br#"{"max_tokens":99999999999999999999999}"#, "max_tokens"),
            Some(u64::MAX)
        );
        assert_eq!(json_u64(b"\xff\xfe\"max_tokens\":\xff", "max_tokens"), None);
    }

    #[test]
    fn combined_tokens_default_to_input_plus_output() {
        let c = Cost::new()
            .with_input_tokens(u64::MAX)
            .with_output_tokens(5);
        assert_eq!(c.tokens(), u64::MAX);
        assert_eq!(c.with_tokens(3).tokens(), 3);
        assert_eq!(c.of(&Resource::OutputTokens), Some(5));
        assert_eq!(c.of(&Resource::Other("x".into())), None);
    }

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

    #[tokio::test]
    async fn whole_full_body_is_left_intact() {
        let mut body = Full::new(Bytes::from_static(b"hello"));
        assert_eq!(body.with_whole(<[u8]>::len), Some(5));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        let mut empty = Full::new(Bytes::new());
        assert_eq!(empty.with_whole(<[u8]>::len), Some(0));
        assert_eq!(empty.with_whole(<[u8]>::len), Some(0));
    }
}
