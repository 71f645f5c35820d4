//! Resolvers: where a host name's addresses come from.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The future a [`Resolve`] returns.
pub type Resolving = Pin<Box<dyn Future<Output = Result<Resolution, ResolveError>> + Send>>;

/// Answers "what are the addresses of this host?".
///
/// Implemented by [`SystemResolver`] (the operating system's resolver,
/// `getaddrinfo`), [`StaticResolver`] (pinned answers, like curl's
/// `--resolve`), and, with the `hickory` feature, `HickoryResolver`
/// (chosen name servers over UDP, TCP, DNS over TLS or DNS over HTTPS).
/// A closure or a test double implements it in a few lines:
///
/// ```
/// use std::net::IpAddr;
/// use evenkeel_failover::dns::{Resolution, Resolve, ResolveError, Resolving};
///
/// #[derive(Debug)]
/// struct Loopback;
///
/// impl Resolve for Loopback {
///     fn resolve(&self, _host: &str) -> Resolving {
///         Box::pin(async { Ok(Resolution::new(vec![IpAddr::from([127, 0, 0, 1])])) })
///     }
/// }
/// ```
pub trait Resolve: fmt::Debug + Send + Sync + 'static {
    /// Resolves `host` (a name, without a port). The caller bounds the
    /// future with its own timeout.
    fn resolve(&self, host: &str) -> Resolving;
}

impl<R: Resolve + ?Sized> Resolve for Arc<R> {
    fn resolve(&self, host: &str) -> Resolving {
        (**self).resolve(host)
    }
}

/// A resolver's answer: the addresses, and how long they may be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    addresses: Vec<IpAddr>,
    ttl: Option<Duration>,
}

impl Resolution {
    /// An answer with these addresses and no time to live (the resolver
    /// did not say; discovery then uses its
    /// [`unknown_ttl`](super::DnsDiscoverBuilder::unknown_ttl)).
    /// Duplicates are dropped, the first occurrence kept.
    pub fn new(addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        let mut list: Vec<IpAddr> = Vec::new();
        for ip in addresses {
            if !list.contains(&ip) {
                list.push(ip);
            }
        }
        Resolution {
            addresses: list,
            ttl: None,
        }
    }

    /// Sets the time to live (the smallest of the records', for DNS).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The addresses, in the resolver's order, without duplicates.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// The time to live, when the resolver reported one.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }
}

/// What kind of failure a [`ResolveError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResolveErrorKind {
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists but has no address records, or the answer was empty.
    NoRecords,
    /// The resolver did not answer in time.
    Timeout,
    /// The server failed (SERVFAIL, REFUSED) or sent something unreadable.
    ServFail,
    /// Anything else (a socket error, a bad configuration).
    Other,
}

impl ResolveErrorKind {
    /// A short, stable name, suitable for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ResolveErrorKind::NxDomain => "nxdomain",
            ResolveErrorKind::NoRecords => "no_records",
            ResolveErrorKind::Timeout => "timeout",
            ResolveErrorKind::ServFail => "servfail",
            ResolveErrorKind::Other => "other",
        }
    }
}

/// Resolving a host name failed.
#[derive(Debug, Clone)]
pub struct ResolveError {
    host: Arc<str>,
    kind: ResolveErrorKind,
    detail: String,
}

impl ResolveError {
    /// An error of `kind` for `host`, with the resolver's own words.
    pub fn new(host: &str, kind: ResolveErrorKind, detail: impl Into<String>) -> Self {
        ResolveError {
            host: host.into(),
            kind,
            detail: detail.into(),
        }
    }

    /// The host name that was being resolved.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ResolveErrorKind {
        self.kind
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ResolveErrorKind::NxDomain => "no such name",
            ResolveErrorKind::NoRecords => "no address records",
            ResolveErrorKind::Timeout => "no answer in time",
            ResolveErrorKind::ServFail => "the server failed",
            ResolveErrorKind::Other => "failed",
        };
        write!(f, "resolving `{}`: {what}", self.host)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for ResolveError {}

/// The operating system's resolver (`getaddrinfo`, through
/// `tokio::net::lookup_host`), the one hyper-util's `GaiResolver` uses.
/// It honours `/etc/hosts` and the system's configuration, and reports no
/// time to live.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl SystemResolver {
    /// The system resolver.
    pub fn new() -> Self {
        SystemResolver
    }
}

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str) -> Resolving {
        let host: Arc<str> = host.into();
        Box::pin(async move {
            match tokio::net::lookup_host((&*host, 0)).await {
                Ok(addrs) => {
                    let answer = Resolution::new(addrs.map(|a| a.ip()));
                    if answer.addresses.is_empty() {
                        Err(ResolveError::new(&host, ResolveErrorKind::NoRecords, ""))
                    } else {
                        Ok(answer)
                    }
                }
                Err(e) => Err(ResolveError::new(
                    &host,
                    ResolveErrorKind::Other,
                    e.to_string(),
                )),
            }
        })
    }
}

/// Pinned answers, like curl's `--resolve HOST:PORT:ADDR`: a pinned host
/// resolves to its addresses without a query; any other host goes to the
/// fallback resolver, or fails with [`ResolveErrorKind::NoRecords`] when
/// there is none.
///
/// ```
/// use std::net::IpAddr;
/// use evenkeel_failover::dns::{StaticResolver, SystemResolver};
///
/// let resolver = StaticResolver::new()
///     .pin("api.anthropic.com", [IpAddr::from([160, 79, 104, 10])])
///     .fallback(SystemResolver::new());
/// assert_eq!(resolver.pinned("API.anthropic.com.").unwrap().len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    pins: HashMap<String, Vec<IpAddr>>,
    fallback: Option<Arc<dyn Resolve>>,
}

impl StaticResolver {
    /// No pins and no fallback.
    pub fn new() -> Self {
        StaticResolver::default()
    }

    /// Pins `host` (case-insensitive, a trailing dot ignored) to
    /// `addresses`, added to any pinned before.
    pub fn pin(mut self, host: &str, addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        let list = self.pins.entry(normalize(host)).or_default();
        for ip in addresses {
            if !list.contains(&ip) {
                list.push(ip);
            }
        }
        self
    }

    /// Where hosts without a pin go.
    pub fn fallback(mut self, resolver: impl Resolve) -> Self {
        self.fallback = Some(Arc::new(resolver));
        self
    }

    /// The addresses pinned for `host`, if any.
    pub fn pinned(&self, host: &str) -> Option<&[IpAddr]> {
        self.pins.get(&normalize(host)).map(Vec::as_slice)
    }
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl Resolve for StaticResolver {
    fn resolve(&self, host: &str) -> Resolving {
        if let Some(list) = self.pinned(host).filter(|l| !l.is_empty()) {
            let answer = Resolution::new(list.iter().copied());
            return Box::pin(std::future::ready(Ok(answer)));
        }
        match &self.fallback {
            Some(next) => next.resolve(host),
            None => {
                let error = ResolveError::new(host, ResolveErrorKind::NoRecords, "not pinned");
                Box::pin(std::future::ready(Err(error)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_drops_duplicates_in_order() {
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let r = Resolution::new([a, b, a]);
        assert_eq!(r.addresses(), [a, b]);
        assert_eq!(r.ttl(), None);
    }

    #[tokio::test]
    async fn static_pins_answer_and_others_fail_without_fallback() {
        let a = IpAddr::from([10, 0, 0, 1]);
        let pins = StaticResolver::new().pin("Api.Example.com.", [a]);
        let answer = pins.resolve("api.example.com").await.unwrap();
        assert_eq!(answer.addresses(), [a]);
        let error = pins.resolve("other.example.com").await.unwrap_err();
        assert_eq!(error.kind(), ResolveErrorKind::NoRecords);
        assert_eq!(error.host(), "other.example.com");
        assert!(error.to_string().contains("`other.example.com`"), "{error}");
    }

    #[tokio::test]
    async fn static_falls_back() {
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let inner = StaticResolver::new().pin("b.example", [b]);
        let pins = StaticResolver::new().pin("a.example", [a]).fallback(inner);
        assert_eq!(pins.resolve("b.example").await.unwrap().addresses(), [b]);
    }

    #[tokio::test]
    async fn system_resolves_an_address_literal() {
        let answer = SystemResolver::new().resolve("127.0.0.1").await.unwrap();
        assert_eq!(answer.addresses(), [IpAddr::from([127, 0, 0, 1])]);
    }
}
