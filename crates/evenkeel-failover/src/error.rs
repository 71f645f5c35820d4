//! The errors the balancer and the health-check layer return.
//!
//! Both are never-sent errors, and say so to evenkeel's classifier through
//! their [`source`](std::error::Error::source): a retry layer above may
//! resend the request, whatever its method.
//!
//! ```
//! use evenkeel_failover::error::NoEndpointAvailable;
//! # fn check(err: evenkeel_core::BoxError) {
//! if let Some(none) = err.downcast_ref::<NoEndpointAvailable>() {
//!     println!("no endpoint; one may be back in {:?}", none.retry_after());
//! }
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use evenkeel_core::error::{Overloaded, QuotaExhausted};
pub use evenkeel_core::{BoxError, ConfigError};
use evenkeel_headers::Resource;
use tokio::time::Instant;

/// No endpoint could take the request, so it was not sent.
///
/// Returned by [`Failover`](crate::Failover) when every endpoint is
/// draining, removed or failing readiness (ejected and unhealthy endpoints
/// are still tried when nothing else is left: the balancer fails open), or
/// when every endpoint is cooling down and the first to come back does so
/// past the request's deadline or the cap on cooldown waits
/// ([`FailoverBuilder::max_cooldown_wait`](crate::FailoverBuilder::max_cooldown_wait)).
/// A cooldown that fits is waited out, not reported.
///
/// When endpoints are cooling down, [`until`](Self::until) says when the
/// first comes back, [`endpoint`](Self::endpoint) names it, and the error's
/// source is a [`evenkeel_core::error::QuotaExhausted`] keyed by that
/// endpoint's name, so classifiers see a local quota refusal; otherwise the
/// source is an [`evenkeel_core::error::Overloaded`], a local rejection.
/// Either way nothing was sent, and a retry layer does not retry it.
#[derive(Debug, Clone)]
pub struct NoEndpointAvailable {
    until: Option<Instant>,
    why: Why,
    source: Source,
}

/// Why a cooldown was not waited out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    Nothing,
    Deadline,
    Cap(Duration),
}

#[derive(Debug, Clone)]
enum Source {
    Cooling(QuotaExhausted),
    Empty(Overloaded),
}

impl NoEndpointAvailable {
    /// Nothing can take the request, and nothing is cooling down.
    pub(crate) fn empty() -> Self {
        NoEndpointAvailable {
            until: None,
            why: Why::Nothing,
            source: Source::Empty(Overloaded::new()),
        }
    }

    /// Every endpoint is cooling down; `endpoint` is back first, at
    /// `until`, which is past what the request may wait.
    pub(crate) fn cooling(endpoint: &str, until: Instant, why: Why) -> Self {
        NoEndpointAvailable {
            until: Some(until),
            why,
            source: Source::Cooling(
                QuotaExhausted::new(Resource::Requests, Some(until)).with_key(endpoint),
            ),
        }
    }

    /// When the first endpoint in a cooldown comes back, if any endpoint is
    /// cooling down.
    pub fn until(&self) -> Option<Instant> {
        self.until
    }

    /// How long from now until an endpoint comes back from its cooldown.
    pub fn retry_after(&self) -> Option<Duration> {
        self.until
            .map(|until| until.saturating_duration_since(Instant::now()))
    }

    /// The endpoint that comes back first, when every endpoint is cooling
    /// down.
    pub fn endpoint(&self) -> Option<&str> {
        match &self.source {
            Source::Cooling(quota) => quota.key(),
            Source::Empty(_) => None,
        }
    }
}

impl fmt::Display for NoEndpointAvailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no endpoint available")?;
        match (self.retry_after(), self.endpoint()) {
            (Some(wait), Some(name)) => {
                write!(
                    f,
                    ": every endpoint is cooling down; the first, `{name}`, is back in {:.3}s",
                    wait.as_secs_f64()
                )?;
                match self.why {
                    Why::Deadline => f.write_str(", past the request's deadline"),
                    Why::Cap(cap) => write!(f, ", past the {cap:?} cap on cooldown waits"),
                    Why::Nothing => Ok(()),
                }
            }
            _ => f.write_str(": every endpoint is draining, removed or failing readiness"),
        }
    }
}

impl std::error::Error for NoEndpointAvailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.source {
            Source::Cooling(quota) => Some(quota),
            Source::Empty(overloaded) => Some(overloaded),
        }
    }
}

/// The endpoint's active health check reports it unhealthy, so the request
/// was not sent. Returned by [`HealthChecked`](crate::HealthChecked).
///
/// Its source is an [`evenkeel_core::error::Overloaded`], so
/// evenkeel's classifier treats it as a local rejection: never sent, not
/// held against the endpoint.
#[derive(Debug, Clone, Default)]
pub struct Unhealthy {
    source: Overloaded,
}

impl Unhealthy {
    pub(crate) fn new() -> Self {
        Unhealthy::default()
    }
}

impl fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("endpoint failing its health checks: request not sent")
    }
}

impl std::error::Error for Unhealthy {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
