//! Proxies as routes of an endpoint: HTTP `CONNECT` (over TCP or TLS) and
//! SOCKS5, on hyper-util's `Tunnel` and `SocksV5`, and the proxy
//! environment variables read with hyper-util's matcher, as curl reads
//! them.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::{BoxError, ConfigError};
use http::Uri;
use http::uri::{Authority, Scheme};
use http_body_util::Full;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::Builder;
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use hyper_util::client::legacy::connect::{Connect, Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::ServiceExt;
use tower_service::Service;

use super::connector::{Connector, HyperClient, HyperConnector, MarkConnect};

/// How long a route may take to reach its proxy and open the tunnel
/// through it, by default: the preset's attempt timeout.
pub const DEFAULT_PROXY_TIMEOUT: Duration = super::DEFAULT_ATTEMPT_TIMEOUT;

/// The kind of a [`Proxy`], from its URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// `http://`: an HTTP proxy, reached over TCP, tunnelling every request
    /// with `CONNECT`.
    Http,
    /// `https://`: an HTTP proxy reached over TLS (feature `rustls`),
    /// tunnelling with `CONNECT`.
    Https,
    /// `socks5://`: SOCKS5, the target's name resolved here.
    Socks5,
    /// `socks5h://`: SOCKS5, the target's name resolved by the proxy (for a
    /// network whose DNS cannot be trusted).
    Socks5h,
}

impl ProxyKind {
    fn of(scheme: &str) -> Option<Self> {
        match scheme.to_ascii_lowercase().as_str() {
            "http" => Some(ProxyKind::Http),
            "https" => Some(ProxyKind::Https),
            "socks5" => Some(ProxyKind::Socks5),
            "socks5h" => Some(ProxyKind::Socks5h),
            _ => None,
        }
    }

    fn scheme(self) -> &'static str {
        match self {
            ProxyKind::Http => "http",
            ProxyKind::Https => "https",
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Socks5h => "socks5h",
        }
    }

    /// The port a proxy URL without one means.
    fn default_port(self) -> u16 {
        match self {
            ProxyKind::Http => 80,
            ProxyKind::Https => 443,
            ProxyKind::Socks5 | ProxyKind::Socks5h => 1080,
        }
    }
}

/// A proxy, parsed and checked: `http://[user:password@]host[:port]`,
/// `https://…`, `socks5://…` or `socks5h://…`.
///
/// Credentials in the URL (percent-encoded) are sent as Basic
/// `Proxy-Authorization` to HTTP proxies and as SOCKS5 user/password to
/// SOCKS proxies. A URL without a port means 80 (`http`), 443 (`https`) or
/// 1080 (SOCKS). The password never appears in `Display`, `Debug` or an
/// error.
///
/// ```
/// use evenkeel::{Proxy, ProxyKind};
///
/// let proxy = Proxy::parse("http://alice:s3cret@proxy1.internal:3128")?;
/// assert_eq!(proxy.kind(), ProxyKind::Http);
/// assert_eq!(proxy.to_string(), "http://alice@proxy1.internal:3128");
///
/// let err = Proxy::parse("ftp://proxy1.internal").unwrap_err();
/// assert!(err.to_string().contains("`ftp://proxy1.internal`"));
/// # Ok::<(), evenkeel::core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Proxy {
    kind: ProxyKind,
    /// `scheme://host:port/`, without credentials.
    uri: Uri,
    /// What `Display` shows: the URI with the user name, if any.
    shown: Arc<str>,
    /// The URI and credentials, as hyper-util's matcher reads them.
    intercept: Intercept,
}

impl Proxy {
    /// Parses and checks `url`; the error quotes it (password masked).
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        Self::parse_as("via_proxies", url)
    }

    /// `url` as the value of a proxy environment variable: like curl, a
    /// URL without a scheme means `http://`.
    fn from_env_value(var: &str, url: &str) -> Result<Self, ConfigError> {
        let url = url.trim();
        let proxy = if url.contains("://") {
            Self::parse_as("proxy environment", url)
        } else {
            Self::parse_as("proxy environment", &format!("http://{url}"))
        };
        proxy.map_err(|e| {
            ConfigError::new(
                "proxy environment",
                format!(
                    "{var}: {}; fix the variable, or call `no_proxy_env()`",
                    e.message()
                ),
            )
        })
    }

    fn parse_as(field: &'static str, url: &str) -> Result<Self, ConfigError> {
        let typed = redact(url);
        let refuse = |why: String| ConfigError::new(field, format!("`{typed}` {why}"));
        if url.trim().is_empty() {
            return Err(ConfigError::new(
                field,
                "a proxy URL is empty: write one such as `http://proxy.internal:3128`",
            ));
        }
        let uri: Uri = url
            .parse()
            .map_err(|e| refuse(format!("is not a proxy URL ({e})")))?;
        let Some(scheme) = uri.scheme_str() else {
            return Err(refuse(
                "has no scheme: write `http://`, `https://`, `socks5://` or `socks5h://`"
                    .to_owned(),
            ));
        };
        let Some(kind) = ProxyKind::of(scheme) else {
            return Err(refuse(format!(
                "has the scheme `{scheme}`; proxies are `http://`, `https://`, `socks5://` or \
                 `socks5h://`"
            )));
        };
        let Some(authority) = uri.authority() else {
            return Err(refuse("has no host".to_owned()));
        };
        let host_port = authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, hp)| hp);
        let host_port: Authority = host_port
            .parse()
            .map_err(|_| refuse("has no host".to_owned()))?;
        if host_port.host().is_empty() {
            return Err(refuse("has no host".to_owned()));
        }
        if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
            return Err(refuse(
                "has a path or query; a proxy URL is `scheme://[user:password@]host[:port]`"
                    .to_owned(),
            ));
        }
        let port = host_port.port_u16().unwrap_or(kind.default_port());
        let host = host_port.host();
        let clean = Uri::builder()
            .scheme(kind.scheme())
            .authority(format!("{host}:{port}"))
            .path_and_query("/")
            .build()
            .map_err(|e| refuse(format!("is not a proxy URL ({e})")))?;
        // The matcher reads the credentials (percent-decoded, Basic for
        // HTTP proxies, raw for SOCKS); "all" matches every target.
        let with_port = match authority.as_str().rsplit_once('@') {
            Some((userinfo, _)) => format!("{}://{userinfo}@{host}:{port}", kind.scheme()),
            None => format!("{}://{host}:{port}", kind.scheme()),
        };
        let intercept = Matcher::builder()
            .all(with_port)
            .build()
            .intercept(&Uri::from_static("https://evenkeel.invalid/"))
            .ok_or_else(|| refuse("is not a proxy URL".to_owned()))?;
        let user = authority
            .as_str()
            .rsplit_once('@')
            .map(|(userinfo, _)| userinfo.split(':').next().unwrap_or_default());
        let shown = match user {
            Some(user) if !user.is_empty() => format!("{}://{user}@{host}:{port}", kind.scheme()),
            _ => format!("{}://{host}:{port}", kind.scheme()),
        };
        Ok(Proxy {
            kind,
            uri: clean,
            shown: shown.into(),
            intercept,
        })
    }

    /// The kind of proxy.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's address as a URI (`http://proxy1.internal:3128/`),
    /// without credentials.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// `host:port` of the proxy, for route names.
    fn host_port(&self) -> &str {
        self.uri.authority().map_or("", Authority::as_str)
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for Proxy {
    /// Credentials are left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("url", &&*self.shown)
            .finish()
    }
}

/// `url` with the password of its user info replaced by `***`.
fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

/// Where the preset reads the proxy environment (`HTTPS_PROXY`,
/// `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY` and their lower-case forms) when
/// an endpoint names no proxy of its own.
///
/// The rules are hyper-util's matcher, the ones reqwest follows: the
/// upper-case name first; `HTTPS_PROXY` for `https://` endpoints,
/// `HTTP_PROXY` for `http://` ones, `ALL_PROXY` for either when its own is
/// unset; `NO_PROXY` lists hosts, domains (`.example.com` or
/// `example.com` match subdomains), IP addresses and CIDR ranges that go
/// direct; and nothing is read when `REQUEST_METHOD` is set (a CGI
/// script, where `HTTP_PROXY` comes from a request header). A value
/// without a scheme means `http://`, as in curl.
///
/// ```
/// use evenkeel::{Preset, ProxyEnv};
///
/// let env = ProxyEnv::from_vars([
///     ("HTTPS_PROXY", "http://proxy.internal:3128"),
///     ("NO_PROXY", "localhost,10.0.0.0/8"),
/// ]);
/// let preset = Preset::builder()
///     .endpoint("https://api.anthropic.com")
///     .proxy_env(env)
///     .build_https()?;
/// assert_eq!(preset.endpoints()[0].name, "api.anthropic.com via proxy.internal:3128");
/// # Ok::<(), evenkeel::core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ProxyEnv {
    source: EnvSource,
}

#[derive(Clone)]
enum EnvSource {
    Process,
    Vars(Arc<[(String, String)]>),
    None,
}

impl ProxyEnv {
    /// The process environment, read when the preset is built (the
    /// default).
    pub fn process() -> Self {
        ProxyEnv {
            source: EnvSource::Process,
        }
    }

    /// These variables instead of the process environment (names are
    /// matched exactly, as the process environment's are).
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        ProxyEnv {
            source: EnvSource::Vars(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    /// No environment: every endpoint without proxies of its own goes
    /// direct.
    pub fn none() -> Self {
        ProxyEnv {
            source: EnvSource::None,
        }
    }

    fn var(&self, name: &str) -> Option<String> {
        match &self.source {
            EnvSource::Process => std::env::var(name).ok(),
            EnvSource::Vars(vars) => vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            EnvSource::None => None,
        }
    }

    /// The first of `names` that is set and not empty, with its name.
    fn first(&self, names: [&'static str; 2]) -> Option<(&'static str, String)> {
        names.into_iter().find_map(|name| {
            self.var(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (name, v))
        })
    }

    /// The proxy the environment names for `target`, if any; an error for
    /// a variable that names no usable proxy.
    pub(crate) fn proxy_for(&self, target: &Uri) -> Result<Option<Proxy>, ConfigError> {
        if matches!(self.source, EnvSource::None) || self.var("REQUEST_METHOD").is_some() {
            return Ok(None);
        }
        let all = self.first(["ALL_PROXY", "all_proxy"]);
        let http = self.first(["HTTP_PROXY", "http_proxy"]);
        let https = self.first(["HTTPS_PROXY", "https_proxy"]);
        let no = self.first(["NO_PROXY", "no_proxy"]);
        // Every value that is set must be usable, whichever target it is
        // for: a typo fails the build instead of a request later.
        let mut parsed = Vec::new();
        for (var, value) in [&all, &http, &https].into_iter().flatten() {
            parsed.push((*var, Proxy::from_env_value(var, value)?));
        }
        let mut matcher = Matcher::builder();
        if let Some((_, v)) = &all {
            matcher = matcher.all(v.clone());
        }
        if let Some((_, v)) = &http {
            matcher = matcher.http(v.clone());
        }
        if let Some((_, v)) = &https {
            matcher = matcher.https(v.clone());
        }
        if let Some((_, v)) = &no {
            matcher = matcher.no(v.clone());
        }
        let Some(intercept) = matcher.build().intercept(target) else {
            return Ok(None);
        };
        // The variable the matcher chose, by the proxy it returned.
        let chosen = match target.scheme_str() {
            Some("https") => https.as_ref().or(all.as_ref()),
            _ => http.as_ref().or(all.as_ref()),
        }
        .map(|(var, _)| *var);
        Ok(parsed
            .into_iter()
            .find(|(var, proxy)| Some(*var) == chosen && proxy.uri.host() == intercept.uri().host())
            .map(|(_, proxy)| proxy))
    }
}

impl Default for ProxyEnv {
    fn default() -> Self {
        ProxyEnv::process()
    }
}

impl fmt::Debug for ProxyEnv {
    /// Values are left out: proxy URLs carry credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            EnvSource::Process => "process",
            EnvSource::Vars(_) => "vars",
            EnvSource::None => "none",
        };
        f.debug_struct("ProxyEnv").field("source", &source).finish()
    }
}

/// One route of an endpoint through a proxy, as the preset hands it to
/// [`Connector::connect_via`]: the proxy, and the failures its sibling
/// routes (the endpoint's other proxies) last reported, so that an error
/// names every proxy that is down.
#[derive(Clone)]
pub struct ProxyRoute {
    proxy: Proxy,
    index: usize,
    book: Arc<RouteBook>,
}

impl ProxyRoute {
    /// The routes of one endpoint through `proxies`, in order.
    pub(crate) fn group(proxies: &[Proxy]) -> Vec<ProxyRoute> {
        let book = Arc::new(RouteBook {
            failures: Mutex::new(vec![None; proxies.len()]),
            proxies: proxies.iter().map(|p| p.shown.clone()).collect(),
        });
        proxies
            .iter()
            .enumerate()
            .map(|(index, proxy)| ProxyRoute {
                proxy: proxy.clone(),
                index,
                book: Arc::clone(&book),
            })
            .collect()
    }

    /// The proxy this route goes through.
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// The route's name for events and metrics: `endpoint via host:port`.
    pub(crate) fn name(&self, endpoint: &str) -> String {
        format!("{endpoint} via {}", self.proxy.host_port())
    }

    fn failed(&self, why: &ProxyFailureText) {
        self.book
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[self.index] = Some(why.0.clone());
    }

    fn succeeded(&self) {
        self.book
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[self.index] = None;
    }

    fn others(&self) -> Vec<(Arc<str>, Arc<str>)> {
        let failures = self
            .book
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        failures
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.index)
            .filter_map(|(i, why)| Some((self.book.proxies[i].clone(), why.clone()?)))
            .collect()
    }
}

impl fmt::Debug for ProxyRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyRoute")
            .field("proxy", &self.proxy)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// The last failure of each route of one endpoint (`None` once it
/// connected again).
struct RouteBook {
    proxies: Vec<Arc<str>>,
    failures: Mutex<Vec<Option<Arc<str>>>>,
}

struct ProxyFailureText(Arc<str>);

/// What went wrong at a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyFailure {
    /// The proxy could not be reached (DNS, refused, the TLS handshake with
    /// an `https://` proxy).
    Unreachable,
    /// The proxy asks for credentials (`407 Proxy Authentication
    /// Required`), or refused the ones given (SOCKS).
    AuthRequired,
    /// The proxy refused to open the tunnel: a non-2xx answer to
    /// `CONNECT` (a 403, a 502 from a proxy that cannot reach the
    /// target), or a SOCKS error reply.
    Refused,
    /// The handshake with the proxy broke off or made no sense.
    Handshake,
    /// The proxy took longer than the handshake timeout
    /// ([`RoutedConnector::proxy_timeout`]) to open the tunnel.
    TimedOut,
}

impl ProxyFailure {
    fn as_str(self) -> &'static str {
        match self {
            ProxyFailure::Unreachable => "is unreachable",
            ProxyFailure::AuthRequired => "requires authentication",
            ProxyFailure::Refused => "refused the tunnel",
            ProxyFailure::Handshake => "broke off the handshake",
            ProxyFailure::TimedOut => "did not open the tunnel in time",
        }
    }
}

/// A request could not be tunnelled through a proxy; nothing reached the
/// target.
///
/// It travels inside the connector's error (wrapped in a
/// [`ConnectError`](evenkeel_core::error::ConnectError) by
/// [`MarkConnect`], so it is classified as never sent and the request
/// moves to the next route at once, a POST included). Its message names
/// the proxy and why it failed, and then every other route of the
/// endpoint whose last attempt failed too:
/// [`find`](ProxyError::find) gets it out of an error's `source()` chain.
#[derive(Debug)]
pub struct ProxyError {
    proxy: Arc<str>,
    failure: ProxyFailure,
    source: Option<BoxError>,
    others: Vec<(Arc<str>, Arc<str>)>,
}

impl ProxyError {
    /// The proxy (its URL, without password).
    pub fn proxy(&self) -> &str {
        &self.proxy
    }

    /// What went wrong.
    pub fn failure(&self) -> ProxyFailure {
        self.failure
    }

    /// The endpoint's other routes whose last connection failed, as
    /// (proxy, why), in route order.
    pub fn other_routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.others.iter().map(|(p, why)| (&**p, &**why))
    }

    /// The first `ProxyError` in `error`'s `source()` chain.
    pub fn find<'e>(error: &'e (dyn StdError + 'static)) -> Option<&'e ProxyError> {
        let mut current = Some(error);
        while let Some(err) = current {
            if let Some(found) = err.downcast_ref::<ProxyError>() {
                return Some(found);
            }
            current = err.source();
        }
        None
    }

    /// This failure alone, without the other routes.
    fn own(&self) -> String {
        let mut text = format!("proxy `{}` {}", self.proxy, self.failure.as_str());
        let mut cause = self
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static));
        while let Some(err) = cause {
            text.push_str(": ");
            text.push_str(&err.to_string());
            cause = err.source();
        }
        text
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "proxy `{}` {}", self.proxy, self.failure.as_str())?;
        if !self.others.is_empty() {
            f.write_str(" (the endpoint's other proxies failed too: ")?;
            for (i, (_, why)) in self.others.iter().enumerate() {
                if i > 0 {
                    f.write_str("; ")?;
                }
                f.write_str(why)?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl StdError for ProxyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// A stream to the target: a TCP connection, or a tunnel through a proxy.
pub struct ProxyStream {
    inner: StreamInner,
}

enum StreamInner {
    Direct(TokioIo<TcpStream>),
    Tunnel(Box<dyn Io>),
}

trait Io: Read + Write + Send + Unpin {}
impl<T: Read + Write + Send + Unpin> Io for T {}

impl ProxyStream {
    fn tunnel(io: impl Read + Write + Send + Unpin + 'static) -> Self {
        ProxyStream {
            inner: StreamInner::Tunnel(Box::new(io)),
        }
    }

    /// `true` when the stream goes through a proxy.
    pub fn is_tunnel(&self) -> bool {
        matches!(self.inner, StreamInner::Tunnel(_))
    }
}

impl fmt::Debug for ProxyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            StreamInner::Direct(io) => f.debug_tuple("ProxyStream::Direct").field(io).finish(),
            StreamInner::Tunnel(_) => f.write_str("ProxyStream::Tunnel"),
        }
    }
}

impl Connection for ProxyStream {
    fn connected(&self) -> Connected {
        match &self.inner {
            StreamInner::Direct(io) => io.connected(),
            // The tunnel's far end is the target: a fresh connection to it,
            // its protocol settled by the target's TLS (ALPN), if any.
            StreamInner::Tunnel(_) => Connected::new(),
        }
    }
}

impl Read for ProxyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            StreamInner::Direct(io) => Pin::new(io).poll_read(cx, buf),
            StreamInner::Tunnel(io) => Pin::new(&mut **io).poll_read(cx, buf),
        }
    }
}

impl Write for ProxyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            StreamInner::Direct(io) => Pin::new(io).poll_write(cx, buf),
            StreamInner::Tunnel(io) => Pin::new(&mut **io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            StreamInner::Direct(io) => Pin::new(io).poll_flush(cx),
            StreamInner::Tunnel(io) => Pin::new(&mut **io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            StreamInner::Direct(io) => Pin::new(io).poll_shutdown(cx),
            StreamInner::Tunnel(io) => Pin::new(&mut **io).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            StreamInner::Direct(io) => io.is_write_vectored(),
            StreamInner::Tunnel(io) => io.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            StreamInner::Direct(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            StreamInner::Tunnel(io) => Pin::new(&mut **io).poll_write_vectored(cx, bufs),
        }
    }
}

/// The hyper-util connector of one route: straight to the target over
/// TCP, or through a proxy (`CONNECT` over TCP or TLS, or SOCKS5).
///
/// Made by [`RoutedConnector`]; wrap it in `hyper_rustls::HttpsConnector`
/// for TLS to the target, which then runs inside the tunnel.
#[derive(Clone)]
pub struct Via {
    tcp: HttpConnector,
    route: Option<Arc<Hop>>,
    /// Refuse targets other than `http://`: nothing above adds TLS.
    plain_only: bool,
}

/// How a route reaches its proxy.
struct Hop {
    route: ProxyRoute,
    /// The bound on reaching the proxy and opening the tunnel.
    timeout: Duration,
    #[cfg(feature = "rustls")]
    tls: Option<rustls::ClientConfig>,
}

impl fmt::Debug for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Via")
            .field("proxy", &self.route.as_ref().map(|h| &h.route.proxy))
            .finish_non_exhaustive()
    }
}

impl Service<Uri> for Via {
    type Response = ProxyStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ProxyStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        if self.plain_only && dst.scheme() != Some(&Scheme::HTTP) {
            // Never a request in the clear to a TLS port.
            let scheme = dst.scheme_str().unwrap_or("").to_owned();
            return Box::pin(async move {
                Err(format!(
                    "a plain-HTTP connector cannot reach a `{scheme}://` endpoint; use `build_https()` \
                     or `RoutedConnector::https()`"
                )
                .into())
            });
        }
        match &self.route {
            None => {
                let connecting = self.tcp.call(dst);
                Box::pin(async move {
                    let io = connecting.await?;
                    Ok(ProxyStream {
                        inner: StreamInner::Direct(io),
                    })
                })
            }
            Some(hop) => {
                let hop = Arc::clone(hop);
                let tcp = self.tcp.clone();
                Box::pin(async move { hop.connect(tcp, dst).await.map_err(Into::into) })
            }
        }
    }
}

impl Hop {
    async fn connect(&self, tcp: HttpConnector, dst: Uri) -> Result<ProxyStream, ProxyError> {
        // Bounded here as well as by the attempt timeout: the client may
        // finish a connection in the background after its request is gone.
        let result =
            match tokio::time::timeout(self.timeout, self.tunnel(tcp, with_port(dst))).await {
                Ok(result) => result,
                Err(elapsed) => Err((ProxyFailure::TimedOut, Some(elapsed.into()))),
            };
        let route = &self.route;
        match result {
            Ok(stream) => {
                route.succeeded();
                Ok(stream)
            }
            Err((failure, source)) => {
                let mut error = ProxyError {
                    proxy: route.proxy.shown.clone(),
                    failure,
                    source,
                    others: Vec::new(),
                };
                route.failed(&ProxyFailureText(error.own().into()));
                error.others = route.others();
                Err(error)
            }
        }
    }

    async fn tunnel(
        &self,
        tcp: HttpConnector,
        dst: Uri,
    ) -> Result<ProxyStream, (ProxyFailure, Option<BoxError>)> {
        let proxy = &self.route.proxy;
        let intercept = &proxy.intercept;
        match proxy.kind {
            ProxyKind::Http => {
                let (tcp, notes) = Recording::new(tcp);
                let mut tunnel = Tunnel::new(proxy.uri.clone(), tcp);
                if let Some(auth) = intercept.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let io = tunnel
                    .oneshot(dst)
                    .await
                    .map_err(|e| tunnel_failure(&e, &notes))?;
                Ok(ProxyStream::tunnel(io.done()))
            }
            ProxyKind::Https => self.tunnel_tls(tcp, dst).await,
            ProxyKind::Socks5 | ProxyKind::Socks5h => {
                let (tcp, notes) = Recording::new(tcp);
                let mut socks =
                    SocksV5::new(proxy.uri.clone(), tcp).local_dns(proxy.kind == ProxyKind::Socks5);
                if let Some((user, pass)) = intercept.raw_auth() {
                    socks = socks.with_auth(user.to_owned(), pass.to_owned());
                }
                let io = socks
                    .oneshot(dst)
                    .await
                    .map_err(|e| tunnel_failure(&e, &notes))?;
                Ok(ProxyStream::tunnel(io.done()))
            }
        }
    }

    #[cfg(feature = "rustls")]
    async fn tunnel_tls(
        &self,
        tcp: HttpConnector,
        dst: Uri,
    ) -> Result<ProxyStream, (ProxyFailure, Option<BoxError>)> {
        let proxy = &self.route.proxy;
        let Some(tls) = &self.tls else {
            return Err((
                ProxyFailure::Unreachable,
                Some("no TLS configuration".into()),
            ));
        };
        // HTTP/1.1 only to the proxy: `CONNECT` is sent in HTTP/1.1.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_only()
            .enable_http1()
            .wrap_connector(tcp);
        let (https, notes) = Recording::new(https);
        let mut tunnel = Tunnel::new(proxy.uri.clone(), https);
        if let Some(auth) = proxy.intercept.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        let io = tunnel
            .oneshot(dst)
            .await
            .map_err(|e| tunnel_failure(&e, &notes))?;
        Ok(ProxyStream::tunnel(io.done()))
    }

    #[cfg(not(feature = "rustls"))]
    async fn tunnel_tls(
        &self,
        _tcp: HttpConnector,
        _dst: Uri,
    ) -> Result<ProxyStream, (ProxyFailure, Option<BoxError>)> {
        Err((
            ProxyFailure::Unreachable,
            Some("an `https://` proxy needs evenkeel's `rustls` feature".into()),
        ))
    }
}

/// `dst` with its port written out: hyper-util's tunnels assume 443 when
/// the URI names none.
fn with_port(dst: Uri) -> Uri {
    if dst.port().is_some() {
        return dst;
    }
    let port = if dst.scheme() == Some(&Scheme::HTTP) {
        80
    } else {
        443
    };
    let Some(host) = dst.host() else {
        return dst;
    };
    let authority = format!("{host}:{port}");
    let mut parts = dst.clone().into_parts();
    match authority.parse() {
        Ok(authority) => {
            parts.authority = Some(authority);
            Uri::from_parts(parts).unwrap_or(dst)
        }
        Err(_) => dst,
    }
}

/// What a tunnel's error means. hyper-util's tunnel errors are not
/// public types: a failure to reach the proxy is known from the
/// [`Recording`] connector below it, an answer to `CONNECT` from the bytes
/// the proxy sent, an I/O error from the error's source, and the rest of
/// the SOCKS errors from the library's stable messages.
fn tunnel_failure(
    error: &(dyn StdError + 'static),
    notes: &Mutex<Notes>,
) -> (ProxyFailure, Option<BoxError>) {
    let mut notes = notes.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(cause) = notes.unreached.take() {
        return (ProxyFailure::Unreachable, Some(cause));
    }
    if let Some((status, line)) = status_line(&notes.answer) {
        let failure = match status {
            // tinyproxy answers wrong credentials with a 401.
            401 | 407 => ProxyFailure::AuthRequired,
            _ => ProxyFailure::Refused,
        };
        return (
            failure,
            Some(format!("the proxy answered `CONNECT` with `{line}`").into()),
        );
    }
    if let Some(io) = error.source().and_then(|e| e.downcast_ref::<io::Error>()) {
        return (
            ProxyFailure::Handshake,
            Some(io::Error::new(io.kind(), io.to_string()).into()),
        );
    }
    let text = error.to_string();
    let failure = if text.contains("SOCKS")
        && (text.contains("authentication") || text.contains("credentials"))
    {
        ProxyFailure::AuthRequired
    } else if text.contains("SOCKS error: io error") || text.contains("parsing") {
        ProxyFailure::Handshake
    } else if text.contains("SOCKS") {
        ProxyFailure::Refused
    } else {
        ProxyFailure::Handshake
    };
    (failure, Some(text.into()))
}

/// The status code and status line of an HTTP answer's first bytes, the
/// line cut to printable ASCII and 100 characters: what a proxy sends is
/// shown to users, and it may be anything.
fn status_line(answer: &[u8]) -> Option<(u16, String)> {
    let end = answer.iter().position(|&b| b == b'\r' || b == b'\n')?;
    let line = &answer[..end];
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = std::str::from_utf8(code).ok()?.parse().ok()?;
    let shown = line
        .iter()
        .take(100)
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect();
    Some((status, shown))
}

/// The longest start of a proxy's answer kept for an error message.
const ANSWER_KEPT: usize = 256;

/// What a [`Recording`] connector saw of its proxy.
#[derive(Default)]
struct Notes {
    /// The connector's error, when the proxy could not be reached.
    unreached: Option<BoxError>,
    /// The first bytes the proxy sent.
    answer: Vec<u8>,
}

/// A connector to a proxy that keeps its own error and the start of the
/// proxy's answer, so that a failure to reach the proxy is told apart
/// from one in the handshake, and a refusal says what the proxy answered.
struct Recording<C> {
    inner: C,
    notes: Arc<Mutex<Notes>>,
}

impl<C> Recording<C> {
    fn new(inner: C) -> (Self, Arc<Mutex<Notes>>) {
        let notes = Arc::new(Mutex::new(Notes::default()));
        (
            Recording {
                inner,
                notes: Arc::clone(&notes),
            },
            notes,
        )
    }
}

fn keep(notes: &Mutex<Notes>, error: BoxError) -> Unreached {
    notes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .unreached = Some(error);
    Unreached
}

/// The error a [`Recording`] connector returns; the cause is in its notes.
#[derive(Debug)]
struct Unreached;

impl fmt::Display for Unreached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot reach the proxy")
    }
}

impl StdError for Unreached {}

impl<C> Service<Uri> for Recording<C>
where
    C: Service<Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
    C::Response: Send + 'static,
{
    type Response = Peek<C::Response>;
    type Error = Unreached;
    type Future = Pin<Box<dyn Future<Output = Result<Peek<C::Response>, Unreached>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Unreached>> {
        let notes = &self.notes;
        self.inner.poll_ready(cx).map_err(|e| keep(notes, e.into()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let notes = Arc::clone(&self.notes);
        Box::pin(async move {
            match connecting.await {
                Ok(io) => Ok(Peek {
                    io,
                    notes: Some(notes),
                }),
                Err(e) => Err(keep(&notes, e.into())),
            }
        })
    }
}

/// A connection to a proxy that keeps the first bytes the proxy sends,
/// until the tunnel is open ([`done`](Peek::done)).
struct Peek<T> {
    io: T,
    notes: Option<Arc<Mutex<Notes>>>,
}

impl<T> Peek<T> {
    /// The tunnel is open: stop keeping bytes.
    fn done(mut self) -> Self {
        self.notes = None;
        self
    }
}

impl<T: Read + Unpin> Read for Peek<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(notes) = &this.notes else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        // Read through a buffer of our own, to see the bytes.
        let mut chunk = [0u8; 1024];
        let room = buf.remaining().min(chunk.len());
        let mut read = hyper::rt::ReadBuf::new(&mut chunk[..room]);
        std::task::ready!(Pin::new(&mut this.io).poll_read(cx, read.unfilled()))?;
        let filled = read.filled();
        let mut notes = notes.lock().unwrap_or_else(PoisonError::into_inner);
        let keep = filled
            .len()
            .min(ANSWER_KEPT.saturating_sub(notes.answer.len()));
        notes.answer.extend_from_slice(&filled[..keep]);
        buf.put_slice(filled);
        Poll::Ready(Ok(()))
    }
}

impl<T: Write + Unpin> Write for Peek<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

/// The hyper-util legacy client as the preset's connector, with proxies:
/// each endpoint's routes (straight to the target, or through one of its
/// proxies) get their own client, so each route has its own pool.
///
/// [`PresetBuilder::build_http`](crate::PresetBuilder::build_http) and
/// [`build_https`](crate::PresetBuilder::build_https) use it; pass one to
/// [`build`](crate::PresetBuilder::build) to trust other roots or set
/// client options. It reads the proxy environment for endpoints that name
/// no proxy of their own (see [`ProxyEnv`]).
///
/// - [`RoutedConnector::http`]: plain HTTP to the targets (a proxy may
///   still be `https://` with the `rustls` feature);
/// - [`RoutedConnector::https`] (feature `rustls`): HTTPS and HTTP to the
///   targets, TLS inside the tunnel, with the web PKI roots;
///   [`RoutedConnector::https_with_roots`] trusts other roots (for the
///   targets and for `https://` proxies).
///
/// Every route's connector is wrapped in [`MarkConnect`]: a failure at the
/// proxy (refused, `407`, an error answer to `CONNECT`, a SOCKS error) is a
/// [`ProxyError`] inside a `ConnectError`, classified as never sent.
///
/// ```
/// use evenkeel::{Preset, RoutedConnector};
///
/// let mut roots = rustls::RootCertStore::empty();
/// # let _ = &mut roots;
/// let preset = Preset::builder()
///     .endpoint("https://api.anthropic.com")
///     .via_proxies(["http://proxy1.internal:3128", "socks5h://proxy2.internal:1080"])
///     .build(RoutedConnector::https_with_roots(roots))?;
/// assert_eq!(preset.endpoints().len(), 2);
/// # Ok::<(), evenkeel::core::ConfigError>(())
/// ```
pub struct RoutedConnector<T = Via, B = Full<Bytes>> {
    tcp: HttpConnector,
    plain_only: bool,
    proxy_timeout: Duration,
    #[cfg(feature = "rustls")]
    proxy_tls: Option<rustls::ClientConfig>,
    wrap: Arc<dyn Fn(Via) -> T + Send + Sync>,
    builder: Builder,
    _body: PhantomData<fn(B)>,
}

impl<T, B> Clone for RoutedConnector<T, B> {
    fn clone(&self) -> Self {
        RoutedConnector {
            tcp: self.tcp.clone(),
            plain_only: self.plain_only,
            proxy_timeout: self.proxy_timeout,
            #[cfg(feature = "rustls")]
            proxy_tls: self.proxy_tls.clone(),
            wrap: Arc::clone(&self.wrap),
            builder: self.builder.clone(),
            _body: PhantomData,
        }
    }
}

impl<T, B> fmt::Debug for RoutedConnector<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutedConnector")
            .field("builder", &self.builder)
            .finish_non_exhaustive()
    }
}

/// hyper-util's `HttpConnector` as every connector of the preset sets it.
fn tcp() -> HttpConnector {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    tcp
}

/// The client builder [`HyperConnector`] starts from, so that both
/// connectors' clients are configured alike.
fn client_builder() -> Builder {
    let mut base = HyperConnector::new(());
    base.builder_mut().clone()
}

impl RoutedConnector<Via> {
    /// Plain HTTP to the targets. `https://` proxies are reached over TLS
    /// with the web PKI roots when the `rustls` feature is on.
    pub fn http() -> Self {
        RoutedConnector {
            tcp: tcp(),
            plain_only: true,
            proxy_timeout: DEFAULT_PROXY_TIMEOUT,
            #[cfg(feature = "rustls")]
            proxy_tls: Some(tls_config(None)),
            wrap: Arc::new(|via| via),
            builder: client_builder(),
            _body: PhantomData,
        }
    }
}

#[cfg(feature = "rustls")]
impl RoutedConnector<hyper_rustls::HttpsConnector<Via>> {
    /// HTTPS (and plain HTTP) to the targets with rustls and the web PKI
    /// roots, HTTP/1.1 and HTTP/2 by ALPN; the provider is rustls's `ring`,
    /// passed by name.
    pub fn https() -> Self {
        Self::with_tls(tls_config(None))
    }

    /// HTTPS (and plain HTTP), trusting `roots` instead of the web PKI
    /// roots, for the targets and for `https://` proxies: a private CA, or
    /// the root of a proxy that inspects TLS.
    pub fn https_with_roots(roots: rustls::RootCertStore) -> Self {
        Self::with_tls(tls_config(Some(roots)))
    }

    fn with_tls(tls: rustls::ClientConfig) -> Self {
        let target = tls.clone();
        RoutedConnector {
            tcp: tcp(),
            plain_only: false,
            proxy_timeout: DEFAULT_PROXY_TIMEOUT,
            proxy_tls: Some(tls),
            wrap: Arc::new(move |via| {
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(target.clone())
                    .https_or_http()
                    .enable_all_versions()
                    .wrap_connector(via)
            }),
            builder: client_builder(),
            _body: PhantomData,
        }
    }
}

/// A rustls configuration on the `ring` provider, trusting `roots` or the
/// web PKI roots.
#[cfg(feature = "rustls")]
fn tls_config(roots: Option<rustls::RootCertStore>) -> rustls::ClientConfig {
    use hyper_rustls::ConfigBuilderExt;

    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("rustls's ring provider supports TLS 1.2 and 1.3");
    match roots {
        Some(roots) => builder.with_root_certificates(roots),
        None => builder.with_webpki_roots(),
    }
    .with_no_client_auth()
}

impl<T, B> RoutedConnector<T, B> {
    /// The same connector for callers whose requests carry bodies of type
    /// `B2`.
    pub fn with_body<B2>(self) -> RoutedConnector<T, B2> {
        RoutedConnector {
            tcp: self.tcp,
            plain_only: self.plain_only,
            proxy_timeout: self.proxy_timeout,
            #[cfg(feature = "rustls")]
            proxy_tls: self.proxy_tls,
            wrap: self.wrap,
            builder: self.builder,
            _body: PhantomData,
        }
    }

    /// Trusts `roots` for `https://` proxies (default: the web PKI roots,
    /// or those given to [`https_with_roots`](RoutedConnector::https_with_roots)).
    #[cfg(feature = "rustls")]
    pub fn proxy_roots(mut self, roots: rustls::RootCertStore) -> Self {
        self.proxy_tls = Some(tls_config(Some(roots)));
        self
    }

    /// The longest a route takes to reach its proxy and open the tunnel
    /// (default [`DEFAULT_PROXY_TIMEOUT`]); then it fails with
    /// [`ProxyFailure::TimedOut`], never sent. Must be greater than zero.
    pub fn proxy_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::new(
                "proxy_timeout",
                "must be greater than zero",
            ));
        }
        self.proxy_timeout = timeout;
        Ok(self)
    }

    /// The client builder, to set pool or HTTP/2 options.
    pub fn builder_mut(&mut self) -> &mut Builder {
        &mut self.builder
    }

    /// hyper-util's TCP connector under every route (connect timeout,
    /// keepalive, local address). It is called with proxy URLs of every
    /// scheme: leave `enforce_http` off (the connector checks the
    /// endpoints' schemes itself).
    pub fn tcp_mut(&mut self) -> &mut HttpConnector {
        &mut self.tcp
    }

    fn client(&self, route: Option<Arc<Hop>>) -> HyperClient<T, B>
    where
        MarkConnect<T>: Connect + Clone + Send + Sync + 'static,
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let via = Via {
            tcp: self.tcp.clone(),
            route,
            plain_only: self.plain_only,
        };
        HyperClient::with_default_retire(self.builder.build(MarkConnect::new((self.wrap)(via))))
    }
}

impl<T, B> Connector for RoutedConnector<T, B>
where
    MarkConnect<T>: Connect + Clone + Send + Sync + 'static,
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Service = HyperClient<T, B>;

    fn connect(&self, _base_url: &Uri) -> Result<Self::Service, BoxError> {
        Ok(self.client(None))
    }

    fn connect_via(&self, _base_url: &Uri, route: &ProxyRoute) -> Result<Self::Service, BoxError> {
        #[cfg(feature = "rustls")]
        let tls = match route.proxy.kind {
            ProxyKind::Https => Some(self.proxy_tls.clone().ok_or("no TLS configuration")?),
            _ => None,
        };
        #[cfg(not(feature = "rustls"))]
        if route.proxy.kind == ProxyKind::Https {
            return Err(format!(
                "the proxy `{}` is `https://`, which needs evenkeel's `rustls` feature",
                route.proxy
            )
            .into());
        }
        Ok(self.client(Some(Arc::new(Hop {
            route: route.clone(),
            timeout: self.proxy_timeout,
            #[cfg(feature = "rustls")]
            tls,
        }))))
    }

    fn reads_proxy_env(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use evenkeel_core::error::ConnectError;
    use evenkeel_core::{Outcome, Sent, classify_error};

    use super::*;

    fn refused(message: &str) -> ConfigError {
        Proxy::parse(message).unwrap_err()
    }

    #[test]
    fn proxy_urls_of_each_kind_parse_with_default_ports() {
        let cases = [
            ("http://proxy1:3128", ProxyKind::Http, "http://proxy1:3128/"),
            ("http://proxy1", ProxyKind::Http, "http://proxy1:80/"),
            ("HTTPS://proxy1", ProxyKind::Https, "https://proxy1:443/"),
            (
                "socks5://10.0.0.1",
                ProxyKind::Socks5,
                "socks5://10.0.0.1:1080/",
            ),
            (
                "socks5h://[::1]:9050/",
                ProxyKind::Socks5h,
                "socks5h://[::1]:9050/",
            ),
        ];
        for (url, kind, uri) in cases {
            let proxy = Proxy::parse(url).unwrap();
            assert_eq!(proxy.kind(), kind, "{url}");
            assert_eq!(proxy.uri().to_string(), uri, "{url}");
        }
    }

    #[test]
    fn bad_proxy_urls_are_refused_quoting_them() {
        let err = refused("ftp://proxy1:21");
        assert_eq!(err.field(), "via_proxies");
        assert!(err.to_string().contains("`ftp://proxy1:21`"), "{err}");
        assert!(err.to_string().contains("`ftp`"), "{err}");
        let err = refused("socks4://proxy1:1080");
        assert!(err.to_string().contains("`socks4`"), "{err}");
        let err = refused("http://:3128");
        assert!(
            err.to_string().contains("`http://:3128` has no host"),
            "{err}"
        );
        let err = refused("http://user:pw@");
        assert!(err.to_string().contains("is not a proxy URL"), "{err}");
        let err = refused("proxy1:3128");
        assert!(err.to_string().contains("no scheme"), "{err}");
        let err = refused("http://proxy1:3128/some/path");
        assert!(err.to_string().contains("path"), "{err}");
        let err = refused("   ");
        assert!(err.to_string().contains("empty"), "{err}");
        let err = refused("http://proxy 1:3128");
        assert!(err.to_string().contains("not a proxy URL"), "{err}");
    }

    #[test]
    fn passwords_never_show() {
        let proxy = Proxy::parse("http://alice:s3cret@proxy1:3128").unwrap();
        assert_eq!(proxy.to_string(), "http://alice@proxy1:3128");
        assert!(!format!("{proxy:?}").contains("s3cret"));
        let err = refused("ftp://alice:s3cret@proxy1");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(err.to_string().contains("alice:***@proxy1"), "{err}");
    }

    #[test]
    fn credentials_become_basic_auth_and_socks_user_password() {
        let http = Proxy::parse("http://Aladdin:open%20sesame@proxy1:3128").unwrap();
        assert_eq!(
            http.intercept.basic_auth().unwrap(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        let socks = Proxy::parse("socks5h://bob:pw@proxy1").unwrap();
        assert_eq!(socks.intercept.raw_auth(), Some(("bob", "pw")));
        let none = Proxy::parse("http://proxy1").unwrap();
        assert!(none.intercept.basic_auth().is_none());
    }

    fn env(vars: &[(&str, &str)]) -> ProxyEnv {
        ProxyEnv::from_vars(vars.iter().copied())
    }

    fn chosen(env: &ProxyEnv, target: &str) -> Option<String> {
        env.proxy_for(&target.parse().unwrap())
            .unwrap()
            .map(|p| p.to_string())
    }

    #[test]
    fn the_environment_picks_the_proxy_by_scheme_like_curl() {
        let env = env(&[
            ("HTTPS_PROXY", "http://secure:3128"),
            ("http_proxy", "plain:8080"),
            ("ALL_PROXY", "socks5h://all:1080"),
        ]);
        assert_eq!(
            chosen(&env, "https://api.example.com").as_deref(),
            Some("http://secure:3128")
        );
        // A value without a scheme is `http://`.
        assert_eq!(
            chosen(&env, "http://api.example.com").as_deref(),
            Some("http://plain:8080")
        );
        let only_all = self::env(&[("all_proxy", "socks5h://all:1080")]);
        assert_eq!(
            chosen(&only_all, "https://a.example").as_deref(),
            Some("socks5h://all:1080")
        );
        assert_eq!(
            chosen(&only_all, "http://a.example").as_deref(),
            Some("socks5h://all:1080")
        );
        // The upper-case name wins over the lower-case one.
        let both = self::env(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:2"),
        ]);
        assert_eq!(
            chosen(&both, "https://a.example").as_deref(),
            Some("http://upper:1")
        );
    }

    #[test]
    fn no_proxy_sends_hosts_domains_and_ranges_direct() {
        let env = env(&[
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("NO_PROXY", "localhost, .internal.example,10.0.0.0/8"),
        ]);
        assert_eq!(chosen(&env, "https://localhost:8443"), None);
        assert_eq!(chosen(&env, "https://llm.internal.example"), None);
        assert_eq!(chosen(&env, "https://10.1.2.3"), None);
        assert_eq!(
            chosen(&env, "https://api.example.com").as_deref(),
            Some("http://proxy:3128")
        );
    }

    #[test]
    fn no_environment_and_cgi_read_no_proxy() {
        assert_eq!(chosen(&ProxyEnv::none(), "https://a.example"), None);
        assert_eq!(chosen(&env(&[]), "https://a.example"), None);
        let cgi = env(&[
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("REQUEST_METHOD", "GET"),
        ]);
        assert_eq!(chosen(&cgi, "https://a.example"), None);
        let only_https = env(&[("HTTPS_PROXY", "http://proxy:3128")]);
        assert_eq!(chosen(&only_https, "http://a.example"), None);
    }

    #[test]
    fn an_unusable_environment_value_fails_naming_the_variable() {
        let bad = env(&[("HTTPS_PROXY", "ftp://proxy:21")]);
        let err = bad
            .proxy_for(&"https://a.example".parse().unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("HTTPS_PROXY"), "{err}");
        assert!(err.to_string().contains("no_proxy_env()"), "{err}");
    }

    fn proxy_error(others: &[(&str, &str)]) -> ProxyError {
        ProxyError {
            proxy: "http://127.0.0.1:9".into(),
            failure: ProxyFailure::Unreachable,
            source: Some(io::Error::from(io::ErrorKind::ConnectionRefused).into()),
            others: others
                .iter()
                .map(|(p, why)| (Arc::from(*p), Arc::from(*why)))
                .collect(),
        }
    }

    #[test]
    fn a_proxy_failure_is_never_sent_whatever_its_kind() {
        for failure in [
            ProxyFailure::Unreachable,
            ProxyFailure::AuthRequired,
            ProxyFailure::Refused,
            ProxyFailure::Handshake,
        ] {
            let mut error = proxy_error(&[]);
            error.failure = failure;
            error.source = Some("proxy answered 502".into());
            let marked = ConnectError::new(error);
            match classify_error(&marked) {
                Outcome::Failed(f) => assert_eq!(f.sent, Sent::Never, "{failure:?}"),
                other => panic!("{failure:?}: {other:?}"),
            }
        }
        let refused = ConnectError::new(proxy_error(&[]));
        match classify_error(&refused) {
            Outcome::Failed(f) => assert_eq!(f.kind, evenkeel_core::FailureKind::ConnectionRefused),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_error_names_every_failed_route_and_is_found_in_a_chain() {
        let error = proxy_error(&[(
            "http://127.0.0.1:8",
            "proxy `http://127.0.0.1:8` is unreachable: refused",
        )]);
        let text = error.to_string();
        assert!(
            text.contains("proxy `http://127.0.0.1:9` is unreachable"),
            "{text}"
        );
        assert!(
            text.contains("proxy `http://127.0.0.1:8` is unreachable: refused"),
            "{text}"
        );
        let marked = ConnectError::new(error);
        let found = ProxyError::find(&marked).unwrap();
        assert_eq!(found.proxy(), "http://127.0.0.1:9");
        assert_eq!(found.other_routes().count(), 1);
        assert!(ProxyError::find(&io::Error::other("no proxy here")).is_none());
    }

    #[test]
    fn the_route_book_keeps_the_last_failure_of_each_route_until_it_connects() {
        let proxies = [
            Proxy::parse("http://a:1").unwrap(),
            Proxy::parse("http://b:2").unwrap(),
        ];
        let routes = ProxyRoute::group(&proxies);
        assert_eq!(routes[0].name("api"), "api via a:1");
        routes[0].failed(&ProxyFailureText("a failed".into()));
        let others = routes[1].others();
        assert_eq!(others.len(), 1);
        assert_eq!((&*others[0].0, &*others[0].1), ("http://a:1", "a failed"));
        assert!(
            routes[0].others().is_empty(),
            "a route is not its own sibling"
        );
        routes[0].succeeded();
        assert!(routes[1].others().is_empty());
    }

    #[test]
    fn targets_get_their_port_written_out_for_the_tunnel() {
        assert_eq!(
            with_port("http://a.example/x".parse().unwrap()),
            "http://a.example:80/x"
        );
        assert_eq!(
            with_port("https://a.example".parse().unwrap()),
            "https://a.example:443/"
        );
        assert_eq!(
            with_port("https://a.example:8443".parse().unwrap()),
            "https://a.example:8443/"
        );
    }

    #[test]
    fn tunnel_failures_are_told_apart() {
        let notes = |unreached: Option<BoxError>, answer: &[u8]| {
            Mutex::new(Notes {
                unreached,
                answer: answer.to_vec(),
            })
        };
        let io = io::Error::other("whatever");
        let (kind, _) = tunnel_failure(&Unreached, &notes(Some("refused".into()), b""));
        assert_eq!(kind, ProxyFailure::Unreachable);
        let answer = b"HTTP/1.0 407 Proxy Authentication Required\r\n\r\n";
        assert_eq!(
            tunnel_failure(&io, &notes(None, answer)).0,
            ProxyFailure::AuthRequired
        );
        let answer = b"HTTP/1.0 401 Unauthorized\r\n";
        assert_eq!(
            tunnel_failure(&io, &notes(None, answer)).0,
            ProxyFailure::AuthRequired
        );
        let (kind, why) = tunnel_failure(&io, &notes(None, b"HTTP/1.1 502 Bad \xffGateway\r\n"));
        assert_eq!(kind, ProxyFailure::Refused);
        assert_eq!(
            why.unwrap().to_string(),
            "the proxy answered `CONNECT` with `HTTP/1.1 502 Bad ?Gateway`"
        );
        let socks = io::Error::other("SOCKS error: credentials not accepted");
        assert_eq!(
            tunnel_failure(&socks, &notes(None, b"")).0,
            ProxyFailure::AuthRequired
        );
        let socks = io::Error::other("SOCKS error: connection refused");
        assert_eq!(
            tunnel_failure(&socks, &notes(None, b"\x05\x05")).0,
            ProxyFailure::Refused
        );
    }

    #[test]
    fn status_lines_from_a_hostile_proxy_are_read_or_ignored() {
        assert_eq!(status_line(b"HTTP/1.1 200 OK\r\n").unwrap().0, 200);
        assert_eq!(status_line(b"HTTP/1.1 200 OK"), None, "no end of line yet");
        assert_eq!(status_line(b"HTTP/1.1 2x0 OK\r\n"), None);
        assert_eq!(status_line(b"HTTP/2 200\r\n"), None);
        assert_eq!(status_line(b"\r\n"), None);
        assert_eq!(status_line(b""), None);
        let long = [b"HTTP/1.1 500 ".as_slice(), &[b'x'; 500], b"\r\n"].concat();
        assert_eq!(status_line(&long).unwrap().1.len(), 100);
    }
}
