//! What a run found: one report per layer, each with its measurements, a
//! [`Status`] and, when something is wrong, a [`Finding`]; and the
//! [`Verdict`] that names the first failing layer.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use evenkeel_headers::RateLimits;

/// Exit status when every layer passed (warnings allowed).
pub const EXIT_OK: u8 = 0;
/// Exit status when a layer failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for bad arguments (a [`ConfigError`](crate::ConfigError)).
pub const EXIT_USAGE: u8 = 2;

/// One layer of the walk, in the order a connection climbs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Layer {
    /// The proxy: reaching it (DNS and TCP) and its answer to `CONNECT`.
    Proxy,
    /// Name resolution of the URL's host.
    Dns,
    /// The TCP connection to the host's port (through the proxy's tunnel
    /// when there is one).
    Tcp,
    /// The TLS handshake and the certificate chain (https only).
    Tls,
    /// One HTTP request: status, version, latency, rate-limit headers.
    Http,
}

impl Layer {
    /// The layer's short name in lowercase: `proxy`, `dns`, `tcp`, `tls`,
    /// `http`. Stable: JSON keys use it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Dns => "dns",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Http => "http",
        }
    }

    /// The layer's name as prose writes it: `proxy`, `DNS`, `TCP`, `TLS`,
    /// `HTTP`.
    pub fn title(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Dns => "DNS",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Http => "HTTP",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// How a layer fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum Status {
    /// Not checked: the layer does not apply (http has no TLS, an IP
    /// literal needs no DNS) or a layer it depends on failed.
    #[default]
    Skip,
    /// Works.
    Pass,
    /// Works, with something worth knowing (resolvers disagree, a
    /// certificate expires soon, a quota is spent).
    Warn,
    /// Broken: the layers above it were not checked.
    Fail,
}

impl Status {
    /// `skip`, `pass`, `warn` or `fail`. Stable: JSON uses it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }

    /// `true` for [`Status::Fail`].
    pub fn is_fail(self) -> bool {
        self == Self::Fail
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a layer failed or warned. [`as_str`](Cause::as_str) gives a stable
/// snake_case name for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// The proxy URL uses a scheme other than `http` (say `socks5` or
    /// `https`), which this check cannot speak.
    ProxyUnsupported,
    /// The proxy's own host name does not resolve.
    ProxyDns,
    /// The proxy refused the TCP connection.
    ProxyRefused,
    /// Connecting to the proxy, or its answer to `CONNECT`, timed out.
    ProxyTimeout,
    /// The proxy's address is unreachable (no route).
    ProxyUnreachable,
    /// The proxy wants credentials (`407 Proxy Authentication Required`).
    ProxyAuth,
    /// The proxy refused to open the tunnel (403 or another status).
    ProxyDenied,
    /// The proxy answered something that is not an HTTP response, or
    /// closed the connection.
    ProxyBadReply,
    /// The name does not exist (`NXDOMAIN`).
    DnsNxDomain,
    /// The name exists but has no A or AAAA record.
    DnsNoRecords,
    /// The resolver did not answer in time.
    DnsTimeout,
    /// The resolver failed otherwise (`SERVFAIL`, `REFUSED`, a network
    /// error, an unreadable answer).
    DnsError,
    /// Resolvers gave different answers: disjoint address sets, or one
    /// says the name does not exist while another resolves it.
    DnsDisagree,
    /// A resolver answered with a private, loopback or unspecified address
    /// where another gave public ones: a DNS filter or tampering.
    DnsPrivate,
    /// Some resolvers failed while the one used to connect worked.
    DnsPartial,
    /// The port refused the connection (nothing listening, or a firewall
    /// rejecting).
    TcpRefused,
    /// The connection attempt timed out (packets dropped).
    TcpTimeout,
    /// No route to the address.
    TcpUnreachable,
    /// Another connection error.
    TcpError,
    /// Some addresses connected, others did not.
    TcpPartial,
    /// The proxy could not reach the target (`502`, `503` or `504` to
    /// `CONNECT`).
    TunnelFailed,
    /// The chain does not lead to a trusted root: "unable to get local
    /// issuer certificate", usually a TLS-intercepting proxy.
    TlsUnknownIssuer,
    /// A certificate in the chain has expired.
    TlsExpired,
    /// A certificate in the chain is not valid yet.
    TlsNotYetValid,
    /// The certificate is for another host name.
    TlsWrongHost,
    /// The server or something between ended the handshake (an alert, a
    /// reset, or the connection closed).
    TlsHandshakeRefused,
    /// The port does not speak TLS (it answered in plain text).
    TlsNotTls,
    /// The handshake did not finish in time.
    TlsTimeout,
    /// Another TLS failure (bad signature, revoked, unsupported algorithm).
    TlsError,
    /// The certificate expires within two weeks.
    TlsExpiresSoon,
    /// `429 Too Many Requests`: a rate limit.
    HttpRateLimited,
    /// `503` or `529`: the API is overloaded, not the client's quota.
    HttpOverloaded,
    /// Another 5xx.
    HttpServerError,
    /// `401` or `403`: the credentials were refused.
    HttpAuth,
    /// Another 4xx: the path works, the request is wrong.
    HttpClientError,
    /// The answer did not come in time.
    HttpTimeout,
    /// The HTTP exchange failed (connection closed, protocol error,
    /// oversized headers).
    HttpError,
    /// The request succeeded but a quota is spent: the next one will be
    /// limited.
    HttpQuotaExhausted,
}

impl Cause {
    /// A stable snake_case name, such as `tls_unknown_issuer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProxyUnsupported => "proxy_unsupported",
            Self::ProxyDns => "proxy_dns",
            Self::ProxyRefused => "proxy_refused",
            Self::ProxyTimeout => "proxy_timeout",
            Self::ProxyUnreachable => "proxy_unreachable",
            Self::ProxyAuth => "proxy_auth",
            Self::ProxyDenied => "proxy_denied",
            Self::ProxyBadReply => "proxy_bad_reply",
            Self::DnsNxDomain => "dns_nxdomain",
            Self::DnsNoRecords => "dns_no_records",
            Self::DnsTimeout => "dns_timeout",
            Self::DnsError => "dns_error",
            Self::DnsDisagree => "dns_disagree",
            Self::DnsPrivate => "dns_private",
            Self::DnsPartial => "dns_partial",
            Self::TcpRefused => "tcp_refused",
            Self::TcpTimeout => "tcp_timeout",
            Self::TcpUnreachable => "tcp_unreachable",
            Self::TcpError => "tcp_error",
            Self::TcpPartial => "tcp_partial",
            Self::TunnelFailed => "tunnel_failed",
            Self::TlsUnknownIssuer => "tls_unknown_issuer",
            Self::TlsExpired => "tls_expired",
            Self::TlsNotYetValid => "tls_not_yet_valid",
            Self::TlsWrongHost => "tls_wrong_host",
            Self::TlsHandshakeRefused => "tls_handshake_refused",
            Self::TlsNotTls => "tls_not_tls",
            Self::TlsTimeout => "tls_timeout",
            Self::TlsError => "tls_error",
            Self::TlsExpiresSoon => "tls_expires_soon",
            Self::HttpRateLimited => "http_rate_limited",
            Self::HttpOverloaded => "http_overloaded",
            Self::HttpServerError => "http_server_error",
            Self::HttpAuth => "http_auth",
            Self::HttpClientError => "http_client_error",
            Self::HttpTimeout => "http_timeout",
            Self::HttpError => "http_error",
            Self::HttpQuotaExhausted => "http_quota_exhausted",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with a layer, in the user's words, and what to try.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// The machine-readable reason.
    pub cause: Cause,
    /// What happened, as one sentence without a final period: "connection
    /// refused by 127.0.0.1:443".
    pub summary: String,
    /// What to try next: "check the port and that the service runs".
    pub fix: String,
}

impl Finding {
    pub(crate) fn new(cause: Cause, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            cause,
            summary: summary.into(),
            fix: fix.into(),
        }
    }
}

/// Who answered a DNS question.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DnsSource {
    /// The operating system's resolver (`getaddrinfo`: hosts file,
    /// `resolv.conf`, whatever the machine is set up with).
    System,
    /// An address given with [`resolve`](crate::DiagnoseBuilder::resolve)
    /// (`--resolve HOST:IP`), standing in for the system resolver.
    Override,
    /// A DNS server asked over UDP (`--resolver IP[:PORT]`).
    Server(SocketAddr),
}

impl fmt::Display for DnsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System => f.write_str("system"),
            Self::Override => f.write_str("override"),
            Self::Server(addr) => write!(f, "@{addr}"),
        }
    }
}

/// One resolved address and, when the source reports it, its TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Resolved {
    /// The address.
    pub ip: IpAddr,
    /// Seconds the answer may be cached (DNS servers only; the system
    /// resolver does not say).
    pub ttl: Option<u32>,
}

/// What one resolver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnsOutcome {
    /// Addresses, in the order given.
    Addresses(Vec<Resolved>),
    /// `NXDOMAIN`: the name does not exist.
    NxDomain,
    /// The name exists but has no address record.
    NoRecords,
    /// No answer in time.
    Timeout,
    /// Another failure, as the resolver described it.
    Error(String),
}

impl DnsOutcome {
    /// The addresses, empty for a failure.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let list: &[Resolved] = match self {
            Self::Addresses(list) => list,
            _ => &[],
        };
        list.iter().map(|r| r.ip)
    }

    /// `true` for [`DnsOutcome::Addresses`].
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Addresses(_))
    }
}

/// One resolver's answer and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DnsAnswer {
    /// Who was asked.
    pub source: DnsSource,
    /// What it said.
    pub outcome: DnsOutcome,
    /// How long it took.
    pub elapsed: Duration,
}

/// The DNS layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DnsReport {
    /// How it fared.
    pub status: Status,
    /// What is wrong, for [`Status::Fail`] and [`Status::Warn`].
    pub finding: Option<Finding>,
    /// Why the layer was skipped (an IP literal), if it was.
    pub skipped: Option<String>,
    /// The host asked about.
    pub host: String,
    /// Every resolver's answer, system (or override) first.
    pub answers: Vec<DnsAnswer>,
    /// The addresses the TCP layer tries: the system resolver's (or the
    /// override's) or, without it, the first DNS server's that answered.
    pub addresses: Vec<IpAddr>,
}

/// How one connection attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TcpOutcome {
    /// Connected.
    Connected,
    /// `ECONNREFUSED`.
    Refused,
    /// No answer within the timeout.
    TimedOut,
    /// No route to the host or network.
    Unreachable,
    /// Another error, as the system described it.
    Error(String),
}

impl TcpOutcome {
    /// `connected`, `refused`, `timed_out`, `unreachable`, `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Refused => "refused",
            Self::TimedOut => "timed_out",
            Self::Unreachable => "unreachable",
            Self::Error(_) => "error",
        }
    }
}

/// One TCP connection attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpAttempt {
    /// Where to.
    pub addr: SocketAddr,
    /// How it ended.
    pub outcome: TcpOutcome,
    /// How long it took.
    pub elapsed: Duration,
}

/// The tunnel a proxy opened (or did not) to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tunnel {
    /// The `CONNECT` target, `host:port`.
    pub authority: String,
    /// The proxy's status line code, when it answered.
    pub status: Option<u16>,
    /// The proxy's reason phrase, when it answered.
    pub reason: Option<String>,
    /// From sending `CONNECT` to the end of the answer's head.
    pub elapsed: Duration,
}

/// The TCP layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpReport {
    /// How it fared.
    pub status: Status,
    /// What is wrong, for [`Status::Fail`] and [`Status::Warn`].
    pub finding: Option<Finding>,
    /// The port connected to.
    pub port: u16,
    /// One attempt per resolved address (direct connections).
    pub attempts: Vec<TcpAttempt>,
    /// The tunnel, when the connection went through a proxy.
    pub tunnel: Option<Tunnel>,
    /// The address the upper layers used (the first that connected, in
    /// resolver order).
    pub used: Option<SocketAddr>,
}

/// Where the proxy setting came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxySource {
    /// [`proxy`](crate::DiagnoseBuilder::proxy) (`--proxy`).
    Argument,
    /// An environment variable, by name (`HTTPS_PROXY`, `https_proxy`…).
    Env(String),
}

impl fmt::Display for ProxySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Argument => f.write_str("--proxy"),
            Self::Env(name) => f.write_str(name),
        }
    }
}

/// The proxy layer: present when a proxy was set, by argument or by the
/// environment, even when `NO_PROXY` sent the connection around it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyReport {
    /// How it fared; [`Status::Skip`] when `NO_PROXY` bypasses it.
    pub status: Status,
    /// What is wrong, for [`Status::Fail`] and [`Status::Warn`].
    pub finding: Option<Finding>,
    /// The proxy URL, password masked.
    pub url: String,
    /// Where the setting came from.
    pub source: ProxySource,
    /// The proxy variables found in the environment, values masked.
    pub env: Vec<(String, String)>,
    /// The `NO_PROXY` entry that matched the host, when one did.
    pub bypassed_by: Option<String>,
    /// The proxy host's addresses.
    pub addresses: Vec<IpAddr>,
    /// The TCP connection to the proxy.
    pub connect: Option<TcpAttempt>,
}

/// One certificate of the chain the server presented, as read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertInfo {
    /// The subject's distinguished name (`CN=api.example.com, O=…`).
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Whole days from now until `not_after`; negative once expired.
    pub days_left: i64,
    /// The DNS names and IP addresses in the subject alternative names.
    pub names: Vec<String>,
    /// `true` for a CA certificate.
    pub is_ca: bool,
}

/// The TLS layer (https only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsReport {
    /// How it fared.
    pub status: Status,
    /// What is wrong, for [`Status::Fail`] and [`Status::Warn`].
    pub finding: Option<Finding>,
    /// The name checked against the certificate (and sent as SNI).
    pub server_name: String,
    /// `TLSv1.3` or `TLSv1.2`, after a handshake.
    pub version: Option<String>,
    /// The protocol agreed by ALPN: `h2` or `http/1.1`.
    pub alpn: Option<String>,
    /// The cipher suite.
    pub cipher: Option<String>,
    /// The chain as presented, end-entity first, whether or not it was
    /// trusted.
    pub chain: Vec<CertInfo>,
    /// Whether the end-entity certificate is valid for
    /// [`server_name`](Self::server_name), when a certificate was seen.
    pub name_matches: Option<bool>,
    /// Trust anchors added to the web PKI roots (`--ca-file`).
    pub extra_roots: usize,
    /// How long the handshake took.
    pub elapsed: Option<Duration>,
}

/// The HTTP layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpReport {
    /// How it fared.
    pub status: Status,
    /// What is wrong, for [`Status::Fail`] and [`Status::Warn`].
    pub finding: Option<Finding>,
    /// The request line sent, `GET /v1/models`.
    pub request: String,
    /// The response status.
    pub status_code: Option<u16>,
    /// `HTTP/1.1` or `HTTP/2`.
    pub version: Option<String>,
    /// From sending the request to the response head.
    pub latency: Option<Duration>,
    /// Body bytes read (reading stops at a bound).
    pub body_bytes: u64,
    /// `true` when the body was longer than the bound and not read to the
    /// end.
    pub body_truncated: bool,
    /// The start of the body as text, control characters escaped (error
    /// bodies say why).
    pub body_excerpt: Option<String>,
    /// Every quota the response reported (all `evenkeel_headers` dialects).
    pub rate_limits: RateLimits,
    /// The server's `Retry-After` (or `retry-after-ms` and kin), as a delay.
    pub retry_after: Option<Duration>,
    /// The header the delay came from.
    pub retry_after_header: Option<&'static str>,
    /// The server's `x-should-retry` verdict.
    pub should_retry: Option<bool>,
    /// Where a redirect points (`Location`), control characters escaped.
    pub location: Option<String>,
}

/// The conclusion: the first failing layer and what to do, or that all is
/// well.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// [`Status::Fail`] when a layer failed, [`Status::Warn`] when none
    /// failed but one warned, [`Status::Pass`] otherwise.
    pub status: Status,
    /// The layer at fault: the first failing one, else the first warning.
    pub layer: Option<Layer>,
    /// The finding of that layer.
    pub finding: Option<Finding>,
    /// The whole verdict as one line, starting `verdict: `.
    pub text: String,
}

/// Everything one run found. Build one with
/// [`Diagnose::run`](crate::Diagnose::run); render it with
/// [`table`](Report::table) or [`to_json`](Report::to_json).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The URL checked.
    pub url: String,
    /// The URL's host (without brackets for IPv6).
    pub host: String,
    /// The URL's port, explicit or the scheme's default.
    pub port: u16,
    /// The proxy layer, when a proxy was configured.
    pub proxy: Option<ProxyReport>,
    /// The DNS layer.
    pub dns: DnsReport,
    /// The TCP layer.
    pub tcp: TcpReport,
    /// The TLS layer, for https URLs.
    pub tls: Option<TlsReport>,
    /// The HTTP layer.
    pub http: HttpReport,
    /// The conclusion.
    pub verdict: Verdict,
    /// How long the whole walk took.
    pub elapsed: Duration,
}

impl Report {
    /// Each layer that applies, in walk order, with its status and finding.
    pub fn layers(&self) -> Vec<(Layer, Status, Option<&Finding>)> {
        let mut out = Vec::with_capacity(5);
        if let Some(p) = &self.proxy {
            out.push((Layer::Proxy, p.status, p.finding.as_ref()));
        }
        out.push((Layer::Dns, self.dns.status, self.dns.finding.as_ref()));
        out.push((Layer::Tcp, self.tcp.status, self.tcp.finding.as_ref()));
        if let Some(t) = &self.tls {
            out.push((Layer::Tls, t.status, t.finding.as_ref()));
        }
        out.push((Layer::Http, self.http.status, self.http.finding.as_ref()));
        out
    }

    /// The status of `layer`; [`Status::Skip`] for a layer that does not
    /// apply.
    pub fn status(&self, layer: Layer) -> Status {
        self.layers()
            .into_iter()
            .find(|(l, _, _)| *l == layer)
            .map_or(Status::Skip, |(_, s, _)| s)
    }

    /// `true` when no layer failed (warnings allowed).
    pub fn ok(&self) -> bool {
        self.verdict.status != Status::Fail
    }

    /// The first failing layer, if any.
    pub fn failed_layer(&self) -> Option<Layer> {
        if self.verdict.status == Status::Fail {
            self.verdict.layer
        } else {
            None
        }
    }

    /// The process exit status for this report: [`EXIT_OK`] (0) when no
    /// layer failed, [`EXIT_FAILED`] (1) otherwise. Bad arguments never
    /// produce a report; they exit with [`EXIT_USAGE`] (2).
    pub fn exit_code(&self) -> u8 {
        if self.ok() { EXIT_OK } else { EXIT_FAILED }
    }
}
