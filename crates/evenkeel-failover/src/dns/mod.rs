//! DNS as endpoint discovery: a host's addresses as endpoints that follow
//! the record's TTL, from a resolver you choose.
//!
//! - [`DnsDiscover`]: a `Discover` stream for
//!   [`FailoverHandle::discover`](crate::FailoverHandle::discover) that keeps
//!   one endpoint per address of a host's current answer, re-resolving when
//!   the TTL runs out (within a floor and a ceiling), draining addresses
//!   that leave, and keeping the last good set when resolution fails.
//! - [`Resolve`]: where answers come from. [`SystemResolver`] (the
//!   operating system's, the default), [`StaticResolver`] (pins, like
//!   curl's `--resolve`), and with the `hickory` feature `HickoryResolver`
//!   (chosen name servers over UDP or TCP; DNS over TLS and over HTTPS with
//!   `hickory-tls`).
//!
//! When requests go through a proxy that resolves names itself (SOCKS5h,
//! an HTTP proxy's CONNECT), resolve nothing locally: the proxy's answer is
//! the one that counts.

mod discover;
#[cfg(feature = "hickory")]
mod hickory;
mod resolve;

pub use discover::{
    DEFAULT_MAX_ADDRESSES, DEFAULT_RESOLVE_TIMEOUT, DEFAULT_TTL_CEILING, DEFAULT_TTL_FLOOR,
    DEFAULT_UNKNOWN_TTL, DnsDiscover, DnsDiscoverBuilder,
};
#[cfg(feature = "hickory")]
pub use hickory::{HickoryResolver, HickoryResolverBuilder};
pub use resolve::{
    Resolution, Resolve, ResolveError, ResolveErrorKind, Resolving, StaticResolver, SystemResolver,
};
