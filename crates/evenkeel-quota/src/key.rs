//! Which quota a request counts against.
//!
//! Providers keep one quota per account, API key, or model; a gateway may
//! keep one per route. The layer keys its state with a [`KeyFn`]: requests
//! with the same key share one quota, one queue and one cooldown; requests
//! with different keys share nothing.
//!
//! - [`Authority`] (the default): the request URI's authority
//!   (`api.anthropic.com`), or its `Host` header.
//! - [`Header`]: the value of a request header, such as the API key header
//!   (`x-api-key`) or a model header.
//! - [`PathSegment`]: one segment of the path (`/v1/models/{model}/...`).
//! - [`Global`]: one quota for everything.
//! - [`from_fn`]: anything computed from the request.
//!
//! Keys are borrowed from the request where possible, so looking one up
//! does not allocate; a key is copied once, when it is first seen.
//!
//! Keys that come from request data (API keys, model names) are kept as
//! long as they are in use; idle keys are forgotten when more than the
//! builder's `max_keys` are known.

use std::borrow::Cow;
use std::fmt;

use http::{HeaderName, Request};

/// Picks the quota key of a request.
pub trait KeyFn<B>: Send + Sync + 'static {
    /// The key of `request`.
    fn key<'r>(&self, request: &'r Request<B>) -> Cow<'r, str>;
}

/// The URI authority (`host:port` as written), else the `Host` header, else
/// the empty key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Authority;

impl<B> KeyFn<B> for Authority {
    #[inline]
    fn key<'r>(&self, request: &'r Request<B>) -> Cow<'r, str> {
        if let Some(authority) = request.uri().authority() {
            return Cow::Borrowed(authority.as_str());
        }
        let host = request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        Cow::Borrowed(host)
    }
}

/// One key for every request: the empty key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Global;

impl<B> KeyFn<B> for Global {
    #[inline]
    fn key<'r>(&self, _request: &'r Request<B>) -> Cow<'r, str> {
        Cow::Borrowed("")
    }
}

/// The value of a request header (a missing or non-text value is the empty
/// key).
///
/// The value is the key as it is: to keep secrets out of snapshots, events
/// and logs when keying by an API key, use [`from_fn`] to map the key to a
/// label instead.
///
/// ```
/// use evenkeel_quota::key::{Header, KeyFn};
///
/// let key = Header::new("anthropic-model");
/// let req = http::Request::builder().header("anthropic-model", "claude-x").body(()).unwrap();
/// assert_eq!(key.key(&req), "claude-x");
/// ```
#[derive(Debug, Clone)]
pub struct Header(HeaderName);

impl Header {
    /// Keys by header `name`.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid header name (a programming error, like
    /// `HeaderName::from_static`).
    pub fn new(name: &str) -> Self {
        Header(HeaderName::from_bytes(name.as_bytes()).expect("a valid header name"))
    }
}

impl<B> KeyFn<B> for Header {
    fn key<'r>(&self, request: &'r Request<B>) -> Cow<'r, str> {
        Cow::Borrowed(
            request
                .headers()
                .get(&self.0)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        )
    }
}

/// The `index`th segment of the path (0-based, empty segments skipped): for
/// `/v1/models/gemini-pro:generate`, index 2 is `gemini-pro:generate`. A
/// missing segment is the empty key.
///
/// ```
/// use evenkeel_quota::key::{KeyFn, PathSegment};
///
/// let req = http::Request::get("https://api.example.com/v1/models/m-large/infer").body(()).unwrap();
/// assert_eq!(PathSegment::new(2).key(&req), "m-large");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PathSegment(usize);

impl PathSegment {
    /// Keys by the `index`th path segment.
    pub fn new(index: usize) -> Self {
        PathSegment(index)
    }
}

impl<B> KeyFn<B> for PathSegment {
    fn key<'r>(&self, request: &'r Request<B>) -> Cow<'r, str> {
        Cow::Borrowed(
            request
                .uri()
                .path()
                .split('/')
                .filter(|s| !s.is_empty())
                .nth(self.0)
                .unwrap_or(""),
        )
    }
}

/// A key function from a closure; see [`from_fn`].
#[derive(Clone, Copy)]
pub struct FromFn<F>(F);

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FromFn(..)")
    }
}

/// Keys by what `f` returns. The key is an owned `String`, so this
/// allocates once per request; prefer the borrowing key functions on hot
/// paths.
///
/// ```
/// use evenkeel_quota::key::{from_fn, KeyFn};
///
/// // One quota per API key, named by a label rather than the secret.
/// let key = from_fn(|req: &http::Request<()>| {
///     match req.headers().get("x-api-key").map(|v| v.as_bytes()) {
///         Some(b"sk-team-a") => "team-a".to_string(),
///         _ => "other".to_string(),
///     }
/// });
/// let req = http::Request::builder().header("x-api-key", "sk-team-a").body(()).unwrap();
/// assert_eq!(key.key(&req), "team-a");
/// ```
pub fn from_fn<F>(f: F) -> FromFn<F> {
    FromFn(f)
}

impl<B, F> KeyFn<B> for FromFn<F>
where
    F: Fn(&Request<B>) -> String + Send + Sync + 'static,
{
    fn key<'r>(&self, request: &'r Request<B>) -> Cow<'r, str> {
        Cow::Owned((self.0)(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_falls_back_to_host_then_empty() {
        let req = Request::get("https://api.example.com:8443/x")
            .body(())
            .unwrap();
        assert_eq!(Authority.key(&req), "api.example.com:8443");
        let req = Request::get("/x")
            .header("host", "h.example")
            .body(())
            .unwrap();
        assert_eq!(Authority.key(&req), "h.example");
        let req = Request::get("/x").body(()).unwrap();
        assert_eq!(Authority.key(&req), "");
        let req = Request::get("/x")
            .header("host", &b"\xff"[..])
            .body(())
            .unwrap();
        assert_eq!(Authority.key(&req), "");
    }

    #[test]
    fn path_segments_skip_empty_ones() {
        let req = Request::get("//v1//a/").body(()).unwrap();
        assert_eq!(PathSegment::new(0).key(&req), "v1");
        assert_eq!(PathSegment::new(1).key(&req), "a");
        assert_eq!(PathSegment::new(2).key(&req), "");
    }

    #[test]
    fn missing_header_is_the_empty_key() {
        let req = Request::get("/").body(()).unwrap();
        assert_eq!(Header::new("x-api-key").key(&req), "");
        assert_eq!(Global.key(&req), "");
    }
}
