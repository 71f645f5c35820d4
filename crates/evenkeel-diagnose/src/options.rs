//! [`Diagnose`] and its builder: what to check and how.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use evenkeel_core::ConfigError;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::env::{EnvSource, ProcessEnv};
use crate::proxy_url::ProxyUrl;
use crate::target::Target;

/// The default timeout of each step.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);

/// The longest timeout accepted: ten minutes.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// The default DNS port.
pub(crate) const DNS_PORT: u16 = 53;

/// Header names whose values are credentials: marked sensitive so that no
/// `Debug` output shows them.
const SENSITIVE: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "cookie",
];

/// Which proxy the run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProxyChoice {
    /// `--proxy`, or the environment when `None`.
    FromEnv,
    /// Never (`--no-proxy`).
    Off,
    /// This one; `shown` is the URL with its password masked.
    Given { shown: String, url: ProxyUrl },
}

/// A configured diagnosis: build one with [`Diagnose::builder`], then
/// [`run`](Diagnose::run) it as often as needed. Cheap to clone.
#[derive(Clone)]
pub struct Diagnose {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) target: Target,
    pub(crate) resolvers: Vec<SocketAddr>,
    pub(crate) overrides: HashMap<String, Vec<IpAddr>>,
    pub(crate) system_resolver: bool,
    pub(crate) proxy: ProxyChoice,
    pub(crate) extra_roots: Vec<CertificateDer<'static>>,
    pub(crate) webpki_roots: bool,
    pub(crate) method: Method,
    pub(crate) headers: HeaderMap,
    pub(crate) timeout: Duration,
    pub(crate) env: Arc<dyn EnvSource>,
}

impl fmt::Debug for Diagnose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Diagnose")
            .field("url", &i.target.url)
            .field("resolvers", &i.resolvers)
            .field("overrides", &i.overrides)
            .field("system_resolver", &i.system_resolver)
            .field("proxy", &i.proxy)
            .field("extra_roots", &i.extra_roots.len())
            .field("webpki_roots", &i.webpki_roots)
            .field("method", &i.method)
            .field("headers", &i.headers)
            .field("timeout", &i.timeout)
            .field("env", &i.env)
            .finish()
    }
}

impl Diagnose {
    /// A builder for checking `url` (`http://` or `https://`).
    pub fn builder(url: impl Into<String>) -> DiagnoseBuilder {
        DiagnoseBuilder {
            url: url.into(),
            resolvers: Vec::new(),
            resolver_specs: Vec::new(),
            overrides: Vec::new(),
            override_specs: Vec::new(),
            system_resolver: true,
            proxy: None,
            no_proxy: false,
            ca_files: Vec::new(),
            ca_pems: Vec::new(),
            webpki_roots: true,
            method: Method::GET,
            headers: Vec::new(),
            header_lines: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            env: None,
        }
    }

    /// The URL checked.
    pub fn url(&self) -> &str {
        &self.inner.target.url
    }

    /// The timeout of each step.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }
}

/// Builds a [`Diagnose`]; every setter is checked by
/// [`build`](DiagnoseBuilder::build), which names the field at fault.
#[must_use]
pub struct DiagnoseBuilder {
    url: String,
    resolvers: Vec<SocketAddr>,
    resolver_specs: Vec<String>,
    overrides: Vec<(String, IpAddr)>,
    override_specs: Vec<String>,
    system_resolver: bool,
    proxy: Option<String>,
    no_proxy: bool,
    ca_files: Vec<PathBuf>,
    ca_pems: Vec<Vec<u8>>,
    webpki_roots: bool,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    header_lines: Vec<String>,
    timeout: Duration,
    env: Option<Arc<dyn EnvSource>>,
}

impl fmt::Debug for DiagnoseBuilder {
    /// Header values and proxy passwords are not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self
            .headers
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(
                self.header_lines
                    .iter()
                    .map(|l| l.split(':').next().unwrap_or("").trim()),
            )
            .collect();
        f.debug_struct("DiagnoseBuilder")
            .field("url", &self.url)
            .field("resolvers", &self.resolvers)
            .field("resolver_specs", &self.resolver_specs)
            .field("overrides", &self.overrides)
            .field("override_specs", &self.override_specs)
            .field("system_resolver", &self.system_resolver)
            .field(
                "proxy",
                &self.proxy.as_deref().map(crate::env::mask_credentials),
            )
            .field("no_proxy", &self.no_proxy)
            .field("ca_files", &self.ca_files)
            .field("ca_pems", &self.ca_pems.len())
            .field("webpki_roots", &self.webpki_roots)
            .field("method", &self.method)
            .field("header_names", &header_names)
            .field("timeout", &self.timeout)
            .field("env", &self.env)
            .finish()
    }
}

impl DiagnoseBuilder {
    /// Also asks this DNS server, over UDP, and compares its answer with
    /// the others. Repeatable.
    pub fn resolver(mut self, addr: SocketAddr) -> Self {
        self.resolvers.push(addr);
        self
    }

    /// Like [`resolver`](Self::resolver) from text: `IP` (port 53) or
    /// `IP:PORT` (`[v6]:PORT` for IPv6). Checked by `build`; field
    /// `resolver`.
    pub fn resolver_str(mut self, spec: impl Into<String>) -> Self {
        self.resolver_specs.push(spec.into());
        self
    }

    /// Answers `host` with `ip` in place of the system resolver, like
    /// curl's `--resolve`: to test one edge address, or a name a test
    /// serves on loopback. Repeatable; the addresses of one host are tried
    /// in the order given.
    pub fn resolve(mut self, host: impl Into<String>, ip: IpAddr) -> Self {
        self.overrides.push((host.into(), ip));
        self
    }

    /// Like [`resolve`](Self::resolve) from text: `HOST:IP`. Checked by
    /// `build`; field `resolve`.
    pub fn resolve_str(mut self, spec: impl Into<String>) -> Self {
        self.override_specs.push(spec.into());
        self
    }

    /// Whether to ask the operating system's resolver (default `true`).
    /// Without it, the addresses to connect to come from the first
    /// [`resolver`](Self::resolver) that answers (or an override).
    pub fn system_resolver(mut self, enabled: bool) -> Self {
        self.system_resolver = enabled;
        self
    }

    /// Goes through this HTTP proxy (`http://[user:pass@]host[:port]`)
    /// instead of reading `HTTPS_PROXY`/`HTTP_PROXY`. Checked by `build`;
    /// field `proxy`.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }

    /// Ignores proxy settings in the environment and connects directly.
    pub fn no_proxy(mut self) -> Self {
        self.no_proxy = true;
        self
    }

    /// Trusts the certificates in this PEM file as well as the web PKI
    /// roots. Read by `build`; field `ca_file`.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// Trusts the certificates in this PEM text as well as the web PKI
    /// roots. Checked by `build`; field `ca_pem`.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pems.push(pem.into());
        self
    }

    /// Whether to trust the web PKI roots (Mozilla's, from `webpki-roots`);
    /// default `true`. Turn off to trust only [`ca_file`](Self::ca_file).
    pub fn webpki_roots(mut self, enabled: bool) -> Self {
        self.webpki_roots = enabled;
        self
    }

    /// The request method: `GET` (default) or `HEAD`. Field `method`.
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Adds a request header (an API key, a version header). Values of
    /// credential headers are marked sensitive. Repeatable.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Like [`header`](Self::header) from a `Name: value` line. Checked by
    /// `build`; field `header`.
    pub fn header_line(mut self, line: impl Into<String>) -> Self {
        self.header_lines.push(line.into());
        self
    }

    /// The timeout of each step (a DNS query, a connection, the handshake,
    /// the response head, the body); default 5 s. Field `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Where proxy variables are read from; default the process
    /// environment ([`ProcessEnv`]).
    pub fn env(mut self, env: impl EnvSource + 'static) -> Self {
        self.env = Some(Arc::new(env));
        self
    }

    /// Like [`env`](Self::env) with a shared source.
    pub fn env_arc(mut self, env: Arc<dyn EnvSource>) -> Self {
        self.env = Some(env);
        self
    }

    /// Checks everything and builds the [`Diagnose`].
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field: `url` (not http(s), no host),
    /// `resolver`, `resolve`, `proxy` (unparsable or not `http://`),
    /// `ca_file` (unreadable, or no certificate in it), `ca_pem`, `method`
    /// (not GET or HEAD), `header`, `timeout` (zero or over ten minutes).
    pub fn build(self) -> Result<Diagnose, ConfigError> {
        let target = Target::parse(&self.url)?;
        let resolvers = self.collect_resolvers()?;
        let overrides = self.collect_overrides()?;
        self.check_resolvable(&target, &resolvers, &overrides)?;
        let proxy = self.choose_proxy()?;
        let extra_roots = self.load_roots()?;
        self.check_method()?;
        let headers = self.collect_headers()?;
        self.check_timeout()?;
        Ok(Diagnose {
            inner: Arc::new(Inner {
                target,
                resolvers,
                overrides,
                system_resolver: self.system_resolver,
                proxy,
                extra_roots,
                webpki_roots: self.webpki_roots,
                method: self.method,
                headers,
                timeout: self.timeout,
                env: self.env.unwrap_or_else(|| Arc::new(ProcessEnv)),
            }),
        })
    }
}

/// The steps of [`DiagnoseBuilder::build`], in the order it takes them.
impl DiagnoseBuilder {
    /// The resolvers given as addresses, then those given as text.
    fn collect_resolvers(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        let mut resolvers = self.resolvers.clone();
        for spec in &self.resolver_specs {
            resolvers.push(parse_resolver(spec)?);
        }
        Ok(resolvers)
    }

    /// The overrides by normalised host name, each address once, in the
    /// order given.
    fn collect_overrides(&self) -> Result<HashMap<String, Vec<IpAddr>>, ConfigError> {
        let mut overrides: HashMap<String, Vec<IpAddr>> = HashMap::new();
        let parsed_specs = self
            .override_specs
            .iter()
            .map(|s| parse_override(s))
            .collect::<Result<Vec<_>, _>>()?;
        for (host, ip) in self.overrides.iter().chain(&parsed_specs) {
            let host = host
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            if host.is_empty() {
                return Err(ConfigError::new("resolve", "needs a host name"));
            }
            let list = overrides.entry(host).or_default();
            if !list.contains(ip) {
                list.push(*ip);
            }
        }
        Ok(overrides)
    }

    /// With the system resolver off, something else must answer the host.
    fn check_resolvable(
        &self,
        target: &Target,
        resolvers: &[SocketAddr],
        overrides: &HashMap<String, Vec<IpAddr>>,
    ) -> Result<(), ConfigError> {
        if !self.system_resolver
            && resolvers.is_empty()
            && target.ip().is_none()
            && !overrides.contains_key(&target.host)
        {
            return Err(ConfigError::new(
                "resolver",
                "with the system resolver off, give at least one resolver (or an override) for the host",
            ));
        }
        Ok(())
    }

    /// Off, the one given, or whatever the environment says at run time.
    fn choose_proxy(&self) -> Result<ProxyChoice, ConfigError> {
        Ok(if self.no_proxy {
            ProxyChoice::Off
        } else if let Some(raw) = &self.proxy {
            let url = ProxyUrl::parse(raw).map_err(|e| ConfigError::new("proxy", e))?;
            ProxyChoice::Given {
                shown: crate::env::mask_credentials(raw),
                url,
            }
        } else {
            ProxyChoice::FromEnv
        })
    }

    /// The certificates of every CA file, then of every CA PEM.
    fn load_roots(&self) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        let mut extra_roots = Vec::new();
        for path in &self.ca_files {
            let bytes = std::fs::read(path).map_err(|e| {
                ConfigError::new("ca_file", format!("cannot read {}: {e}", path.display()))
            })?;
            extra_roots
                .extend(parse_pem_certs(&bytes).map_err(|e| {
                    ConfigError::new("ca_file", format!("{}: {e}", path.display()))
                })?);
        }
        for pem in &self.ca_pems {
            extra_roots.extend(parse_pem_certs(pem).map_err(|e| ConfigError::new("ca_pem", e))?);
        }
        Ok(extra_roots)
    }

    fn check_method(&self) -> Result<(), ConfigError> {
        if self.method != Method::GET && self.method != Method::HEAD {
            return Err(ConfigError::new(
                "method",
                format!("must be GET or HEAD, got {}", self.method),
            ));
        }
        Ok(())
    }

    /// The headers given as pairs, then those given as lines, with
    /// credentials marked sensitive.
    fn collect_headers(&self) -> Result<HeaderMap, ConfigError> {
        let mut headers = HeaderMap::new();
        let parsed_lines = self
            .header_lines
            .iter()
            .map(|l| parse_header_line(l))
            .collect::<Result<Vec<_>, _>>()?;
        for (name, mut value) in self.headers.iter().cloned().chain(parsed_lines) {
            if SENSITIVE.contains(&name.as_str()) {
                value.set_sensitive(true);
            }
            headers.append(name, value);
        }
        Ok(headers)
    }

    fn check_timeout(&self) -> Result<(), ConfigError> {
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(ConfigError::new(
                "timeout",
                format!(
                    "must be more than zero and at most {} s, got {:?}",
                    MAX_TIMEOUT.as_secs(),
                    self.timeout
                ),
            ));
        }
        Ok(())
    }
}

/// Parses `IP` or `IP:PORT` (`[v6]:PORT`).
fn parse_resolver(spec: &str) -> Result<SocketAddr, ConfigError> {
    let spec = spec.trim();
    if let Ok(addr) = spec.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(ConfigError::new("resolver", format!("port 0 in {spec:?}")));
        }
        return Ok(addr);
    }
    let bare = spec.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .map_err(|_| {
            ConfigError::new(
                "resolver",
                format!("expected IP or IP:PORT (e.g. 1.1.1.1 or 127.0.0.1:5353), got {spec:?}"),
            )
        })
}

/// Parses `HOST:IP`.
fn parse_override(spec: &str) -> Result<(String, IpAddr), ConfigError> {
    let bad = || {
        ConfigError::new(
            "resolve",
            format!("expected HOST:IP (e.g. api.example.com:127.0.0.1), got {spec:?}"),
        )
    };
    let (host, ip) = spec.trim().split_once(':').ok_or_else(bad)?;
    let ip = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), ip))
}

/// Parses `Name: value`.
fn parse_header_line(line: &str) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let (name, value) = line.split_once(':').ok_or_else(|| {
        ConfigError::new(
            "header",
            format!("expected 'Name: value', got {:?}", short(line)),
        )
    })?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
        ConfigError::new(
            "header",
            format!("{:?} is not a header name", short(name.trim())),
        )
    })?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| {
        ConfigError::new(
            "header",
            format!("the value of {name} has characters a header cannot carry"),
        )
    })?;
    Ok((name, value))
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Every certificate in a PEM bundle; an error when there is none or the
/// PEM is broken.
pub(crate) fn parse_pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        out.push(item.map_err(|e| format!("bad PEM: {e}"))?);
    }
    if out.is_empty() {
        return Err("no CERTIFICATE block found".to_owned());
    }
    for (i, der) in out.iter().enumerate() {
        if x509_parser::parse_x509_certificate(der).is_err() {
            return Err(format!("certificate {} is not valid X.509", i + 1));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolvers_and_overrides() {
        assert_eq!(
            parse_resolver("1.1.1.1").unwrap(),
            "1.1.1.1:53".parse().unwrap()
        );
        assert_eq!(
            parse_resolver("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_resolver("[::1]:5353").unwrap(),
            "[::1]:5353".parse().unwrap()
        );
        assert_eq!(parse_resolver("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert!(parse_resolver("dns.google").is_err());
        assert!(parse_resolver("1.1.1.1:0").is_err());

        assert_eq!(
            parse_override("api.test:127.0.0.1").unwrap(),
            ("api.test".to_owned(), "127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            parse_override("h:::1").unwrap().1,
            "::1".parse::<IpAddr>().unwrap()
        );
        assert!(parse_override("api.test").is_err());
        assert!(parse_override(":127.0.0.1").is_err());
    }

    #[test]
    fn header_lines() {
        let (n, v) = parse_header_line("X-Api-Key:  sk-123 ").unwrap();
        assert_eq!((n.as_str(), v.to_str().unwrap()), ("x-api-key", "sk-123"));
        assert_eq!(parse_header_line("novalue").unwrap_err().field(), "header");
        assert_eq!(
            parse_header_line("bad name: v").unwrap_err().field(),
            "header"
        );
        assert_eq!(parse_header_line("x: a\nb").unwrap_err().field(), "header");
    }

    #[test]
    fn builder_checks_fields() {
        let field = |b: DiagnoseBuilder| b.build().unwrap_err().field();
        let b = || Diagnose::builder("https://example.com");
        assert_eq!(field(Diagnose::builder("nope")), "url");
        assert_eq!(field(b().resolver_str("x")), "resolver");
        assert_eq!(field(b().resolve_str("x")), "resolve");
        assert_eq!(field(b().proxy("socks5://x:1")), "proxy");
        assert_eq!(field(b().ca_pem(b"not pem".to_vec())), "ca_pem");
        assert_eq!(
            field(b().ca_pem(
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec()
            )),
            "ca_pem"
        );
        assert_eq!(field(b().ca_file("/nonexistent/ca.pem")), "ca_file");
        assert_eq!(field(b().method(Method::POST)), "method");
        assert_eq!(field(b().header_line("x")), "header");
        assert_eq!(field(b().timeout(Duration::ZERO)), "timeout");
        assert_eq!(field(b().timeout(Duration::from_secs(601))), "timeout");
        assert_eq!(field(b().system_resolver(false)), "resolver");
        assert!(
            b().system_resolver(false)
                .resolve_str("example.com:127.0.0.1")
                .build()
                .is_ok()
        );
        assert!(
            Diagnose::builder("http://127.0.0.1")
                .system_resolver(false)
                .build()
                .is_ok()
        );
    }

    #[test]
    fn build_errors_quote_the_input() {
        let message = |b: DiagnoseBuilder| b.build().unwrap_err().to_string();
        let b = || Diagnose::builder("https://example.com");
        for (builder, typed) in [
            (Diagnose::builder("ftp://x"), "ftp://"),
            (Diagnose::builder("api.example.com"), "api.example.com"),
            (b().resolver_str("dns.google"), "dns.google"),
            (b().resolve_str("api.test"), "api.test"),
            (b().proxy("socks5://x:1"), "socks5://"),
            (b().proxy("http://h:99999"), "99999"),
            (b().ca_file("/nonexistent/ca.pem"), "/nonexistent/ca.pem"),
            (b().method(Method::POST), "POST"),
            (b().header_line("novalue"), "novalue"),
            (b().timeout(Duration::from_secs(601)), "601s"),
        ] {
            let shown = message(builder);
            assert!(shown.contains(typed), "{typed:?} not in {shown:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(input in ".{0,80}") {
            let _ = parse_resolver(&input);
            let _ = parse_override(&input);
            let _ = parse_header_line(&input);
        }
    }

    #[test]
    fn api_keys_and_proxy_passwords_are_hidden() {
        let builder = Diagnose::builder("https://example.com")
            .header_line("x-api-key: sk-secret")
            .header(
                HeaderName::from_static("authorization"),
                HeaderValue::from_static("Bearer tok-secret"),
            )
            .proxy("http://user:pw-secret@proxy:3128");
        let shown = format!("{builder:?}");
        assert!(shown.contains("x-api-key") && shown.contains("authorization"));
        for secret in ["sk-secret", "tok-secret", "pw-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let d = builder.build().unwrap();
        assert!(d.inner.headers["x-api-key"].is_sensitive());
        assert!(d.inner.headers["authorization"].is_sensitive());
        let shown = format!("{d:?}");
        for secret in ["sk-secret", "tok-secret", "pw-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
