//! How a balancer learns that an endpoint is waiting out a quota.
//!
//! A quota layer knows when an endpoint's quota is exhausted and when it
//! comes back; a failover layer wants to route around such an endpoint
//! instead of queueing behind it. Neither depends on the other: the quota
//! layer's handle implements [`Cooldown`], and the failover layer accepts any
//! `Cooldown` per endpoint.

use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;

/// Reports whether an endpoint is in a quota cooldown.
pub trait Cooldown: fmt::Debug + Send + Sync + 'static {
    /// The instant until which requests sent now would have to wait for
    /// quota (a server-imposed cooldown after a 429, or no quota left until
    /// the next refill), or `None` when the endpoint has room now.
    fn cooldown_until(&self) -> Option<Instant>;
}

impl<T: Cooldown + ?Sized> Cooldown for Arc<T> {
    fn cooldown_until(&self) -> Option<Instant> {
        (**self).cooldown_until()
    }
}

impl<T: Cooldown + ?Sized> Cooldown for Box<T> {
    fn cooldown_until(&self) -> Option<Instant> {
        (**self).cooldown_until()
    }
}
