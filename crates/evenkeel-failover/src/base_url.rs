//! [`BaseUrlLayer`]: points each request at one endpoint's base URL.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use evenkeel_core::ConfigError;
use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Request, Uri};
use tower_layer::Layer;
use tower_service::Service;

/// Rewrites each request's scheme and authority to an endpoint's base URL,
/// and puts the base URL's path in front of the request's path.
///
/// Requests then only need a path (`/v1/messages?beta=true`): the same
/// request goes to `https://api.example.com/v1/messages?beta=true` through
/// one endpoint and to `https://proxy.example.net/anthropic/v1/messages?beta=true`
/// through another. An absolute request URI has its scheme and authority
/// replaced the same way; a `Host` header, if set, is replaced with the
/// base URL's authority.
///
/// ```
/// use evenkeel_failover::BaseUrlLayer;
/// use tower::{Layer, ServiceExt};
///
/// # tokio_test::block_on(async {
/// let echo = tower::service_fn(|req: http::Request<()>| async move {
///     Ok::<_, std::convert::Infallible>(req.uri().to_string())
/// });
/// let proxy = BaseUrlLayer::new("https://proxy.example.net/anthropic")?.layer(echo);
/// let uri = proxy.oneshot(http::Request::get("/v1/messages?beta=true").body(())?).await?;
/// assert_eq!(uri, "https://proxy.example.net/anthropic/v1/messages?beta=true");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct BaseUrlLayer {
    base: Arc<Base>,
}

#[derive(Clone)]
struct Base {
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
    /// The base path without its trailing slash; empty for `/`.
    prefix: String,
    /// Headers this endpoint sets on every request (its credentials).
    headers: HeaderMap,
}

impl BaseUrlLayer {
    /// A layer rewriting requests to `base` (`scheme://host[:port][/path]`,
    /// no query). Field: `base_url`.
    pub fn new(base: &str) -> Result<Self, ConfigError> {
        let uri: Uri = base
            .parse()
            .map_err(|e| ConfigError::new("base_url", format!("is not a URL: {e}")))?;
        let parts = uri.into_parts();
        let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
            return Err(ConfigError::new(
                "base_url",
                "must be absolute, with a scheme and a host",
            ));
        };
        let path = parts
            .path_and_query
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        if path.query().is_some() {
            return Err(ConfigError::new("base_url", "must not have a query"));
        }
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|e| ConfigError::new("base_url", format!("has an invalid host: {e}")))?;
        Ok(BaseUrlLayer {
            base: Arc::new(Base {
                scheme,
                authority,
                host,
                prefix: path.path().trim_end_matches('/').to_owned(),
                headers: HeaderMap::new(),
            }),
        })
    }

    /// Sets `headers` on every request sent through this endpoint,
    /// replacing the request's own values of those names: the endpoint's
    /// credentials (a backup region with its own API key) or anything else
    /// only this endpoint needs.
    ///
    /// ```
    /// use evenkeel_failover::BaseUrlLayer;
    /// use tower::{Layer, ServiceExt};
    ///
    /// # tokio_test::block_on(async {
    /// let echo = tower::service_fn(|req: http::Request<()>| async move {
    ///     Ok::<_, std::convert::Infallible>(req.headers()["x-api-key"].clone())
    /// });
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-api-key", "backup-key".parse()?);
    /// let backup = BaseUrlLayer::new("https://backup.example")?.with_headers(headers).layer(echo);
    /// let request = http::Request::get("/v1/messages").header("x-api-key", "primary-key").body(())?;
    /// assert_eq!(backup.oneshot(request).await?, "backup-key");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        Arc::make_mut(&mut self.base).headers = headers;
        self
    }
}

impl<S> Layer<S> for BaseUrlLayer {
    type Service = BaseUrl<S>;

    fn layer(&self, inner: S) -> BaseUrl<S> {
        BaseUrl {
            inner,
            base: Arc::clone(&self.base),
        }
    }
}

impl fmt::Debug for BaseUrlLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BaseUrlLayer").field(&self.base).finish()
    }
}

impl fmt::Debug for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.prefix)
    }
}

/// A service that sends requests to its base URL. Made by
/// [`BaseUrlLayer`]; keeps the inner service's response, error and future.
#[derive(Clone)]
pub struct BaseUrl<S> {
    inner: S,
    base: Arc<Base>,
}

impl<S> BaseUrl<S> {
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

impl<S: fmt::Debug> fmt::Debug for BaseUrl<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BaseUrl")
            .field("base", &self.base)
            .field("inner", &self.inner)
            .finish()
    }
}

impl Base {
    fn rewrite<B>(&self, request: &mut Request<B>) {
        let path = request.uri().path_and_query();
        let path = if self.prefix.is_empty() {
            path.cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"))
        } else {
            let (path, query) = path.map_or(("/", None), |p| (p.path(), p.query()));
            let slash = if path.starts_with('/') { "" } else { "/" };
            let joined = match query {
                Some(q) => format!("{}{slash}{path}?{q}", self.prefix),
                None => format!("{}{slash}{path}", self.prefix),
            };
            match PathAndQuery::try_from(joined) {
                Ok(p) => p,
                // Both halves were valid, so this cannot happen; leave the
                // request as it was rather than panic.
                Err(_) => return,
            }
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
            if let Some(host) = request.headers_mut().get_mut(HOST) {
                *host = self.host.clone();
            }
        }
        if !self.headers.is_empty() {
            let headers = request.headers_mut();
            for name in self.headers.keys() {
                headers.remove(name);
            }
            for (name, value) in &self.headers {
                headers.append(name.clone(), value.clone());
            }
        }
    }
}

impl<S, B> Service<Request<B>> for BaseUrl<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        self.base.rewrite(&mut request);
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(base: &str, uri: &str, host: Option<&str>) -> (String, Option<String>) {
        let layer = BaseUrlLayer::new(base).unwrap();
        let mut request = Request::get(uri).body(()).unwrap();
        if let Some(host) = host {
            request
                .headers_mut()
                .insert(HOST, HeaderValue::from_str(host).unwrap());
        }
        layer.base.rewrite(&mut request);
        let host = request
            .headers()
            .get(HOST)
            .map(|h| h.to_str().unwrap().to_owned());
        (request.uri().to_string(), host)
    }

    #[test]
    fn joins_the_base_path_and_keeps_the_query() {
        let cases = [
            (
                "https://api.example.com",
                "/v1/messages",
                "https://api.example.com/v1/messages",
            ),
            (
                "https://api.example.com/",
                "/v1/messages?a=1",
                "https://api.example.com/v1/messages?a=1",
            ),
            (
                "http://proxy:3128/anthropic",
                "/v1/messages?a=1&b",
                "http://proxy:3128/anthropic/v1/messages?a=1&b",
            ),
            (
                "http://proxy:3128/anthropic/",
                "/v1",
                "http://proxy:3128/anthropic/v1",
            ),
            (
                "http://proxy:3128/anthropic",
                "/",
                "http://proxy:3128/anthropic/",
            ),
            // An absolute request URI keeps only its path and query.
            (
                "https://eu.example.com/api",
                "http://us.example.com/v1/x?q",
                "https://eu.example.com/api/v1/x?q",
            ),
            ("http://[::1]:8080", "/health", "http://[::1]:8080/health"),
        ];
        for (base, uri, expected) in cases {
            assert_eq!(rewrite(base, uri, None).0, expected, "{base} + {uri}");
        }
    }

    #[test]
    fn replaces_a_host_header_and_adds_none() {
        let (_, host) = rewrite("https://eu.example.com", "/v1", Some("us.example.com"));
        assert_eq!(host.as_deref(), Some("eu.example.com"));
        let (_, host) = rewrite("https://eu.example.com:8443", "/v1", None);
        assert_eq!(host, None);
    }

    #[test]
    fn refuses_bases_that_cannot_work() {
        for bad in [
            "/relative",
            "example.com",
            "https://example.com/a?q=1",
            "not a url",
        ] {
            let err = BaseUrlLayer::new(bad).unwrap_err();
            assert_eq!(err.field(), "base_url", "{bad}");
        }
    }
}
