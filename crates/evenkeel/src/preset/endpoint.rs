//! What the preset knows of each endpoint beyond its URL: a name, the
//! headers it sets (its credentials), and its quota key; and how the
//! preset keys and costs requests for quota.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use evenkeel_core::body::ReplayBody;
use evenkeel_quota::cost::{Cost, Estimate, EstimateBody, Llm};
use evenkeel_quota::key::KeyFn;
use http::Request;
use http_body::Body;

/// An endpoint of the preset, with what is its own: a name for events and
/// metrics, request headers (a backup region's own API key), and the key of
/// its quota.
///
/// ```
/// use evenkeel::{Preset, PresetEndpoint};
///
/// let preset = Preset::builder()
///     .endpoint("https://api.anthropic.com")
///     .add_endpoint(
///         PresetEndpoint::new("https://eu.example.net/anthropic")
///             .name("eu-backup")
///             .header("x-api-key", "the-backup-key")
///             .quota_key("eu-backup-key"),
///     )
///     .build_http()?;
/// # Ok::<(), evenkeel::core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct PresetEndpoint {
    pub(crate) url: String,
    pub(crate) name: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) quota_key: Option<String>,
    pub(crate) proxies: Vec<String>,
}

impl PresetEndpoint {
    /// An endpoint at `base_url` (`https://api.anthropic.com`,
    /// `http://10.0.0.7:8080/anthropic`).
    pub fn new(base_url: impl Into<String>) -> Self {
        PresetEndpoint {
            url: base_url.into(),
            name: None,
            headers: Vec::new(),
            quota_key: None,
            proxies: Vec::new(),
        }
    }

    /// The name for events and metrics (default: the URL's authority).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// A header set on every request sent to this endpoint, replacing the
    /// request's own value: its credentials, or anything only it needs.
    /// Checked when the preset is built.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The key of this endpoint's quota (default: the preset's
    /// [`quota_key`](crate::PresetBuilder::quota_key), else the URL's
    /// authority). Endpoints billed to one account share a key when they
    /// share a store.
    pub fn quota_key(mut self, key: impl Into<String>) -> Self {
        self.quota_key = Some(key.into());
        self
    }

    /// Reaches this endpoint only through `proxies` (`http://`,
    /// `https://`, `socks5://`, `socks5h://`, credentials in the user
    /// info), one failover route each, tried in this order: each route is
    /// ejected, cooled down and failed back on its own, and a request a
    /// proxy failed to tunnel moves to the next route at once. The
    /// endpoint is never reached directly, and the proxy environment is
    /// not read for it. When every route is down, the error
    /// ([`ProxyError`](crate::ProxyError)) names each proxy and why it
    /// failed. Each call adds proxies; the URLs are checked when the
    /// preset is built.
    ///
    /// ```
    /// use evenkeel::{Preset, PresetEndpoint};
    ///
    /// let preset = Preset::builder()
    ///     .add_endpoint(
    ///         PresetEndpoint::new("https://api.anthropic.com")
    ///             .via_proxies(["http://proxy1:3128", "http://proxy2:8080"]),
    ///     )
    ///     .build_https()?;
    /// let names: Vec<_> = preset.endpoints().iter().map(|e| e.name.clone()).collect();
    /// assert_eq!(names, ["api.anthropic.com via proxy1:3128", "api.anthropic.com via proxy2:8080"]);
    /// # Ok::<(), evenkeel::core::ConfigError>(())
    /// ```
    #[cfg(feature = "hyper")]
    pub fn via_proxies<I, P>(mut self, proxies: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.proxies.extend(proxies.into_iter().map(Into::into));
        self
    }
}

impl fmt::Debug for PresetEndpoint {
    /// Header values are left out: they are often credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresetEndpoint")
            .field("url", &self.url)
            .field("name", &self.name)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("quota_key", &self.quota_key)
            .field("proxies", &self.proxies.len())
            .finish()
    }
}

/// How the preset keys requests for quota: by the endpoint's authority, or
/// by a name given with [`PresetBuilder::quota_key`](crate::PresetBuilder::quota_key).
#[derive(Debug, Clone)]
pub enum PresetKey {
    /// The request's authority (after the base URL's rewrite).
    Authority,
    /// One fixed key.
    Named(Arc<str>),
}

impl<B> KeyFn<B> for PresetKey {
    #[inline]
    fn key<'r>(&self, request: &'r Request<B>) -> Cow<'r, str> {
        match self {
            PresetKey::Authority => evenkeel_quota::key::Authority.key(request),
            PresetKey::Named(name) => Cow::Owned(name.to_string()),
        }
    }
}

/// How the preset estimates what a request costs in quota.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub enum PresetCost {
    /// One request, no tokens (unless the request carries a
    /// [`Cost`] extension). The default.
    #[default]
    PerRequest,
    /// An LLM call: input tokens from the body's length, output tokens
    /// from its `max_tokens` (Anthropic), `max_completion_tokens` or
    /// `max_output_tokens` (OpenAI), read from a body that is complete at
    /// once. A [`Cost`] extension on the request wins.
    Llm(Llm),
}

impl PresetCost {
    /// The LLM estimator with its defaults (4 bytes per input token, 4 096
    /// output tokens when the body names none).
    pub const fn llm() -> Self {
        PresetCost::Llm(Llm::new())
    }
}

impl<B> Estimate<ReplayBody<B>> for PresetCost
where
    ReplayBody<B>: Body,
    B: 'static,
{
    fn estimate(&self, request: &Request<ReplayBody<B>>) -> Cost {
        if let Some(cost) = request.extensions().get::<Cost>() {
            return *cost;
        }
        match self {
            PresetCost::PerRequest => Cost::default(),
            PresetCost::Llm(llm) => match request.body().whole() {
                Some(bytes) => llm.estimate_body(request.headers(), bytes),
                None => Estimate::estimate(llm, request),
            },
        }
    }
}
