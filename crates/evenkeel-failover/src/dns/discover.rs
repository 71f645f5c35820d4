//! A `Discover` stream that keeps a host's endpoints equal to its DNS answer.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future as _;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use evenkeel_core::ConfigError;
use evenkeel_core::event::{Event, Events, Listener};
use futures_core::Stream;
use tokio::time::{Instant, Sleep, Timeout};
use tower::discover::Change;

use super::resolve::{
    Resolution, Resolve, ResolveError, ResolveErrorKind, Resolving, SystemResolver,
};
use crate::Endpoint;

/// Default shortest wait between two resolutions, whatever the TTL says.
pub const DEFAULT_TTL_FLOOR: Duration = Duration::from_secs(5);
/// Default longest wait between two resolutions, whatever the TTL says.
pub const DEFAULT_TTL_CEILING: Duration = Duration::from_secs(300);
/// Default wait between resolutions when the resolver gives no TTL (the
/// system resolver never does).
pub const DEFAULT_UNKNOWN_TTL: Duration = Duration::from_secs(30);
/// Default bound on one resolution.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on the addresses kept from one answer (the first ones, in
/// the resolver's order).
pub const DEFAULT_MAX_ADDRESSES: usize = 64;

type MakeEndpoint<S> = Box<dyn FnMut(SocketAddr) -> Endpoint<S> + Send>;

/// A [`Discover`](tower::discover::Discover) stream over one host name:
/// each address in the host's current DNS answer is an [`Endpoint`], and
/// the set follows the answer. Give it to
/// [`FailoverHandle::discover`](crate::FailoverHandle::discover).
///
/// - It resolves at once, then again when the answer's TTL runs out,
///   clamped to [`ttl_floor`](DnsDiscoverBuilder::ttl_floor) and
///   [`ttl_ceiling`](DnsDiscoverBuilder::ttl_ceiling) (5 s and 300 s by
///   default).
/// - An address that joins the answer is inserted (made by the function
///   given to [`build`](DnsDiscoverBuilder::build)); one that leaves is
///   removed, which drains its endpoint: requests in flight finish, nothing
///   new is sent to it, and it goes (with its connection pool) when the
///   last one ends. Inserts come before removals, so the set is never
///   empty while the host has an address.
/// - A failed resolution (NXDOMAIN, SERVFAIL, an empty answer, a timeout)
///   keeps the last good set, emits [`Event::DnsFailed`], and tries again
///   after the floor, doubling up to the ceiling while it keeps failing. It
///   never empties the set.
/// - Events: [`Event::DnsResolved`] for each answer and
///   [`Event::AddressChanged`] for each address in or out.
///
/// The stream never ends and never fails.
///
/// ```
/// use std::net::IpAddr;
/// use std::time::Duration;
/// use evenkeel_failover::dns::{DnsDiscover, StaticResolver};
/// use evenkeel_failover::{Endpoint, Failover};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let client = tower::service_fn(|_: http::Request<evenkeel_core::body::ReplayBody<String>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// # });
/// let resolver = StaticResolver::new()
///     .pin("api.example.com", [IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2])]);
/// let discover = DnsDiscover::builder("api.example.com", 443)
///     .resolver(resolver)
///     .ttl_floor(Duration::from_secs(10))
///     .build(move |addr| Endpoint::new(format!("api.example.com@{addr}"), client.clone()))
///     .unwrap();
/// let failover = Failover::builder().build().unwrap();
/// tokio::spawn(failover.handle().discover(discover));
/// # }
/// ```
pub struct DnsDiscover<S> {
    host: Arc<str>,
    port: u16,
    resolver: Arc<dyn Resolve>,
    floor: Duration,
    ceiling: Duration,
    unknown_ttl: Duration,
    timeout: Duration,
    max_addresses: usize,
    events: Events,
    make: MakeEndpoint<S>,
    current: Vec<SocketAddr>,
    pending: VecDeque<Change<SocketAddr, Endpoint<S>>>,
    failures: u32,
    state: State,
}

enum State {
    /// Not polled yet: the first resolution starts on the first poll, inside
    /// the runtime.
    Start,
    Resolving(Pin<Box<Timeout<Resolving>>>),
    Waiting(Pin<Box<Sleep>>),
}

impl DnsDiscover<()> {
    /// Starts a discovery of `host`'s addresses, each an endpoint on `port`.
    pub fn builder(host: impl Into<String>, port: u16) -> DnsDiscoverBuilder {
        DnsDiscoverBuilder {
            host: host.into(),
            port,
            resolver: None,
            floor: DEFAULT_TTL_FLOOR,
            ceiling: DEFAULT_TTL_CEILING,
            unknown_ttl: DEFAULT_UNKNOWN_TTL,
            timeout: DEFAULT_RESOLVE_TIMEOUT,
            max_addresses: DEFAULT_MAX_ADDRESSES,
            events: Events::none(),
        }
    }
}

impl<S> DnsDiscover<S> {
    /// The host name this stream follows.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The addresses of the last good answer, as endpoints see them.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.current
    }

    fn start(&self) -> State {
        let query = self.resolver.resolve(&self.host);
        State::Resolving(Box::pin(tokio::time::timeout(self.timeout, query)))
    }

    fn wait(&self, after: Duration) -> State {
        State::Waiting(Box::pin(tokio::time::sleep_until(Instant::now() + after)))
    }

    /// What the next wait is after a failure: the floor, doubled for each
    /// failure in a row, at most the ceiling.
    fn backoff(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(16);
        self.floor
            .saturating_mul(1u32 << doublings)
            .min(self.ceiling)
    }

    fn answered(&mut self, answer: Resolution) -> Duration {
        let mut next: Vec<SocketAddr> = answer
            .addresses()
            .iter()
            .take(self.max_addresses)
            .map(|ip| SocketAddr::new(*ip, self.port))
            .collect();
        next.dedup();
        let ttl = answer.ttl();
        self.events.emit(|| Event::DnsResolved {
            host: &self.host,
            addresses: next.len(),
            ttl,
        });
        for addr in &next {
            if !self.current.contains(addr) {
                self.pending
                    .push_back(Change::Insert(*addr, (self.make)(*addr)));
                self.events.emit(|| Event::AddressChanged {
                    host: &self.host,
                    address: *addr,
                    added: true,
                });
            }
        }
        for addr in &self.current {
            if !next.contains(addr) {
                self.pending.push_back(Change::Remove(*addr));
                self.events.emit(|| Event::AddressChanged {
                    host: &self.host,
                    address: *addr,
                    added: false,
                });
            }
        }
        self.current = next;
        self.failures = 0;
        ttl.unwrap_or(self.unknown_ttl)
            .clamp(self.floor, self.ceiling)
    }

    fn failed(&mut self, error: &ResolveError) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.events.emit(|| Event::DnsFailed {
            host: &self.host,
            reason: error.kind().as_str(),
        });
        #[cfg(feature = "tracing")]
        tracing::warn!(host = %self.host, error = %error, "DNS resolution failed; keeping the last good addresses");
        self.backoff()
    }
}

// Nothing in the stream is pinned in place: the endpoints wait in a queue
// by value, and the futures are boxed.
impl<S> Unpin for DnsDiscover<S> {}

impl<S> Stream for DnsDiscover<S> {
    type Item = Result<Change<SocketAddr, Endpoint<S>>, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(change) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(change)));
            }
            match &mut this.state {
                State::Start => this.state = this.start(),
                State::Waiting(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state = this.start();
                }
                State::Resolving(query) => {
                    let result = ready!(query.as_mut().poll(cx));
                    let after = match result {
                        Ok(Ok(answer)) if answer.addresses().is_empty() => {
                            let error =
                                ResolveError::new(&this.host, ResolveErrorKind::NoRecords, "");
                            this.failed(&error)
                        }
                        Ok(Ok(answer)) => this.answered(answer),
                        Ok(Err(error)) => this.failed(&error),
                        Err(_elapsed) => {
                            let error = ResolveError::new(
                                &this.host,
                                ResolveErrorKind::Timeout,
                                format!("after {:?}", this.timeout),
                            );
                            this.failed(&error)
                        }
                    };
                    this.state = this.wait(after);
                }
            }
        }
    }
}

impl<S> fmt::Debug for DnsDiscover<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsDiscover")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("resolver", &self.resolver)
            .field("addresses", &self.current)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

/// Builds a [`DnsDiscover`]; see [`DnsDiscover::builder`].
#[derive(Debug)]
#[must_use]
pub struct DnsDiscoverBuilder {
    host: String,
    port: u16,
    resolver: Option<Arc<dyn Resolve>>,
    floor: Duration,
    ceiling: Duration,
    unknown_ttl: Duration,
    timeout: Duration,
    max_addresses: usize,
    events: Events,
}

impl DnsDiscoverBuilder {
    /// Where the answers come from. Default: [`SystemResolver`].
    pub fn resolver(mut self, resolver: impl Resolve) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// Where the answers come from, shared with others.
    pub fn resolver_arc(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// The shortest wait between resolutions, however short the TTL (and
    /// the first wait after a failure). Default: [`DEFAULT_TTL_FLOOR`].
    pub fn ttl_floor(mut self, floor: Duration) -> Self {
        self.floor = floor;
        self
    }

    /// The longest wait between resolutions, however long the TTL.
    /// Default: [`DEFAULT_TTL_CEILING`].
    pub fn ttl_ceiling(mut self, ceiling: Duration) -> Self {
        self.ceiling = ceiling;
        self
    }

    /// The wait when the resolver reports no TTL, clamped like a TTL.
    /// Default: [`DEFAULT_UNKNOWN_TTL`].
    pub fn unknown_ttl(mut self, ttl: Duration) -> Self {
        self.unknown_ttl = ttl;
        self
    }

    /// The bound on one resolution; past it, the resolution fails as a
    /// timeout. Default: [`DEFAULT_RESOLVE_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many addresses of one answer become endpoints (the first ones).
    /// Default: [`DEFAULT_MAX_ADDRESSES`].
    pub fn max_addresses(mut self, max: usize) -> Self {
        self.max_addresses = max;
        self
    }

    /// Reports resolutions, failures and address changes to `listener`.
    pub fn on_event(mut self, listener: impl Listener) -> Self {
        self.events = self.events.and(Events::new(listener));
        self
    }

    /// Reports events to `events` (shared with other layers).
    pub fn events(mut self, events: Events) -> Self {
        self.events = self.events.and(events);
        self
    }

    /// Builds the stream; `make` turns each new address into an endpoint
    /// (give each a name that tells the addresses apart, and a client that
    /// connects to that address while TLS verifies the host name).
    ///
    /// Fails when the host is empty or carries a port, a path or spaces,
    /// when the floor is zero or above the ceiling, when the timeout is
    /// zero, or when `max_addresses` is zero.
    pub fn build<S, F>(self, make: F) -> Result<DnsDiscover<S>, ConfigError>
    where
        F: FnMut(SocketAddr) -> Endpoint<S> + Send + 'static,
    {
        let host = self.host.trim();
        if host.is_empty() {
            return Err(ConfigError::new("host", "must not be empty"));
        }
        if host.parse::<IpAddr>().is_err()
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(ConfigError::new(
                "host",
                format!("`{host}` is not a host name (no scheme, port, path or spaces)"),
            ));
        }
        if self.floor.is_zero() {
            return Err(ConfigError::new("ttl_floor", "must be above zero"));
        }
        if self.floor > self.ceiling {
            return Err(ConfigError::new(
                "ttl_floor",
                format!("{:?} is above the ceiling ({:?})", self.floor, self.ceiling),
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be above zero"));
        }
        if self.max_addresses == 0 {
            return Err(ConfigError::new("max_addresses", "must be at least 1"));
        }
        let resolver = self
            .resolver
            .unwrap_or_else(|| Arc::new(SystemResolver::new()));
        let discover = DnsDiscover {
            host: host.into(),
            port: self.port,
            resolver,
            floor: self.floor,
            ceiling: self.ceiling,
            unknown_ttl: self.unknown_ttl,
            timeout: self.timeout,
            max_addresses: self.max_addresses,
            events: self.events,
            make: Box::new(make),
            current: Vec::new(),
            pending: VecDeque::new(),
            failures: 0,
            state: State::Start,
        };
        Ok(discover)
    }
}
