//! Name servers the user chooses, through hickory-resolver.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use evenkeel_core::ConfigError;
use hickory_resolver::Resolver;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};

use super::resolve::{Resolution, Resolve, ResolveError, ResolveErrorKind, Resolving};

/// A resolver that asks the name servers you choose, over UDP, TCP, DNS
/// over TLS or DNS over HTTPS (the last two with the `hickory-tls`
/// feature), on hickory-resolver. Use it when the system's resolver gives
/// polluted or stale answers: `evenkeel diagnose` says when it does.
///
/// Each lookup asks the servers afresh (hickory's cache is off), so the
/// answer's TTL reaches [`DnsDiscover`](super::DnsDiscover), which decides
/// when to ask again. Names are looked up as given (a trailing dot is
/// added: no search domains), for A and AAAA records.
///
/// ```
/// use evenkeel_failover::dns::HickoryResolver;
///
/// let resolver = HickoryResolver::builder()
///     .udp("1.1.1.1:53".parse().unwrap())
///     .tcp("1.1.1.1:53".parse().unwrap())
///     .build()
///     .unwrap();
/// # drop(resolver);
/// ```
#[derive(Clone)]
pub struct HickoryResolver {
    resolver: Resolver<TokioRuntimeProvider>,
    servers: Arc<[String]>,
}

impl HickoryResolver {
    /// Starts a resolver with no name server; add at least one.
    pub fn builder() -> HickoryResolverBuilder {
        HickoryResolverBuilder {
            servers: Vec::new(),
            timeout: Duration::from_secs(2),
            attempts: 2,
            #[cfg(feature = "hickory-tls")]
            roots: None,
        }
    }

    /// The name servers asked, as `protocol://address`.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }
}

impl fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HickoryResolver")
            .field("servers", &self.servers)
            .finish_non_exhaustive()
    }
}

impl Resolve for HickoryResolver {
    fn resolve(&self, host: &str) -> Resolving {
        let resolver = self.resolver.clone();
        let host: Arc<str> = host.trim_end_matches('.').into();
        Box::pin(async move {
            let fqdn = format!("{host}.");
            match resolver.lookup_ip(fqdn.as_str()).await {
                Ok(lookup) => {
                    let mut ttl: Option<u32> = None;
                    let mut ips = Vec::new();
                    for record in lookup.as_lookup().answers() {
                        if let Some(ip) = record.data.ip_addr() {
                            ips.push(ip);
                            ttl = Some(ttl.map_or(record.ttl, |t| t.min(record.ttl)));
                        }
                    }
                    if ips.is_empty() {
                        return Err(ResolveError::new(&host, ResolveErrorKind::NoRecords, ""));
                    }
                    let mut answer = Resolution::new(ips);
                    if let Some(ttl) = ttl {
                        answer = answer.with_ttl(Duration::from_secs(u64::from(ttl)));
                    }
                    Ok(answer)
                }
                Err(e) => Err(ResolveError::new(&host, kind_of(&e), e.to_string())),
            }
        })
    }
}

fn kind_of(e: &NetError) -> ResolveErrorKind {
    if e.is_nx_domain() {
        ResolveErrorKind::NxDomain
    } else if e.is_no_records_found() {
        ResolveErrorKind::NoRecords
    } else {
        match e {
            NetError::Timeout => ResolveErrorKind::Timeout,
            NetError::Dns(DnsError::ResponseCode(_)) | NetError::Proto(_) => {
                ResolveErrorKind::ServFail
            }
            _ => ResolveErrorKind::Other,
        }
    }
}

/// Builds a [`HickoryResolver`]; see [`HickoryResolver::builder`].
#[must_use]
pub struct HickoryResolverBuilder {
    servers: Vec<(Protocol, SocketAddr)>,
    timeout: Duration,
    attempts: usize,
    #[cfg(feature = "hickory-tls")]
    roots: Option<rustls::RootCertStore>,
}

#[derive(Debug, Clone)]
enum Protocol {
    Udp,
    Tcp,
    #[cfg(feature = "hickory-tls")]
    Tls(Arc<str>),
    #[cfg(feature = "hickory-tls")]
    Https(Arc<str>),
}

impl Protocol {
    fn scheme(&self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            #[cfg(feature = "hickory-tls")]
            Protocol::Tls(_) => "tls",
            #[cfg(feature = "hickory-tls")]
            Protocol::Https(_) => "https",
        }
    }
}

impl fmt::Debug for HickoryResolverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HickoryResolverBuilder")
            .field("servers", &self.servers)
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl HickoryResolverBuilder {
    /// Asks the name server at `server` over UDP (port 53, usually).
    pub fn udp(mut self, server: SocketAddr) -> Self {
        self.servers.push((Protocol::Udp, server));
        self
    }

    /// Asks the name server at `server` over TCP.
    pub fn tcp(mut self, server: SocketAddr) -> Self {
        self.servers.push((Protocol::Tcp, server));
        self
    }

    /// Asks the name server at `server` over DNS over TLS (port 853,
    /// usually); its certificate must name `server_name`.
    #[cfg(feature = "hickory-tls")]
    pub fn tls(mut self, server: SocketAddr, server_name: &str) -> Self {
        self.servers
            .push((Protocol::Tls(server_name.into()), server));
        self
    }

    /// Asks the name server at `server` over DNS over HTTPS (RFC 8484, the
    /// `/dns-query` path; port 443, usually); its certificate must name
    /// `server_name`.
    #[cfg(feature = "hickory-tls")]
    pub fn https(mut self, server: SocketAddr, server_name: &str) -> Self {
        self.servers
            .push((Protocol::Https(server_name.into()), server));
        self
    }

    /// The roots that DNS over TLS and DNS over HTTPS servers are verified
    /// against. Default: the web PKI roots.
    #[cfg(feature = "hickory-tls")]
    pub fn tls_roots(mut self, roots: rustls::RootCertStore) -> Self {
        self.roots = Some(roots);
        self
    }

    /// How long one query to one server may take. Default: 2 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Tries per lookup, across the servers. Default: 2.
    pub fn attempts(mut self, attempts: usize) -> Self {
        self.attempts = attempts;
        self
    }

    /// Builds the resolver. Fails without a name server, with a zero
    /// timeout or zero attempts.
    pub fn build(self) -> Result<HickoryResolver, ConfigError> {
        if self.servers.is_empty() {
            return Err(ConfigError::new(
                "servers",
                "add at least one name server (udp, tcp, tls or https)",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be above zero"));
        }
        if self.attempts == 0 {
            return Err(ConfigError::new("attempts", "must be at least 1"));
        }
        let names: Vec<String> = self
            .servers
            .iter()
            .map(|(p, a)| format!("{}://{a}", p.scheme()))
            .collect();
        let mut configs = Vec::new();
        for (protocol, server) in &self.servers {
            let mut config = match protocol {
                Protocol::Udp => NameServerConfig::udp(server.ip()),
                Protocol::Tcp => NameServerConfig::tcp(server.ip()),
                #[cfg(feature = "hickory-tls")]
                Protocol::Tls(name) => NameServerConfig::tls(server.ip(), Arc::clone(name)),
                #[cfg(feature = "hickory-tls")]
                Protocol::Https(name) => {
                    NameServerConfig::https(server.ip(), Arc::clone(name), None)
                }
            };
            for connection in &mut config.connections {
                connection.port = server.port();
            }
            configs.push(config);
        }
        let config = ResolverConfig::from_name_servers(configs);
        let mut opts = ResolverOpts::default();
        opts.timeout = self.timeout;
        opts.attempts = self.attempts;
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        #[allow(unused_mut)]
        let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts);
        #[cfg(feature = "hickory-tls")]
        {
            builder = builder.with_tls_config(tls_config(self.roots));
        }
        let resolver = builder
            .build()
            .map_err(|e| ConfigError::new("servers", e.to_string()))?;
        Ok(HickoryResolver {
            resolver,
            servers: names.into(),
        })
    }
}

/// rustls with its `ring` provider named, as everywhere in evenkeel, and
/// the given roots (the web PKI roots by default).
#[cfg(feature = "hickory-tls")]
fn tls_config(roots: Option<rustls::RootCertStore>) -> rustls::ClientConfig {
    let roots = roots.unwrap_or_else(|| rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    });
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("rustls's ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
