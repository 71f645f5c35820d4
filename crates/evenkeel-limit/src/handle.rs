//! A read-and-steer view of a limiter, for metrics and operators.

use std::fmt;
use std::sync::Arc;

use crate::algorithm::Algorithm;
use crate::shared::Shared;

/// The view a [`LimitHandle`] has of its limiter, whatever its type
/// parameters.
pub(crate) trait View: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn limit(&self) -> usize;
    fn estimate(&self) -> usize;
    fn in_flight(&self) -> usize;
    fn queued(&self) -> usize;
    fn rejected(&self) -> u64;
    fn ceiling(&self) -> Option<usize>;
    fn server_ceiling(&self) -> Option<usize>;
    fn set_ceiling(&self, ceiling: Option<usize>);
}

impl<A, C, R> View for Shared<A, C, R>
where
    A: Algorithm,
    C: Send + Sync + 'static,
    R: Send + Sync + 'static,
{
    fn name(&self) -> &str {
        Shared::name(self)
    }
    fn limit(&self) -> usize {
        self.gate.limit()
    }
    fn estimate(&self) -> usize {
        Shared::estimate(self)
    }
    fn in_flight(&self) -> usize {
        self.gate.in_flight()
    }
    fn queued(&self) -> usize {
        self.gate.queued()
    }
    fn rejected(&self) -> u64 {
        self.gate.rejected()
    }
    fn ceiling(&self) -> Option<usize> {
        Shared::ceiling(self)
    }
    fn server_ceiling(&self) -> Option<usize> {
        Shared::server_ceiling(self)
    }
    fn set_ceiling(&self, ceiling: Option<usize>) {
        Shared::set_ceiling(self, ceiling)
    }
}

/// A cheap, cloneable view of one limiter: its limit, what is in flight,
/// queued and rejected, and its ceiling. Every clone of the layer and of its
/// services shares the limiter a handle looks at.
///
/// ```
/// use evenkeel_limit::LimitLayer;
///
/// let layer = LimitLayer::fixed(8).name("upstream").build()?;
/// let handle = layer.handle();
/// assert_eq!(handle.limit(), 8);
/// assert_eq!(handle.in_flight(), 0);
/// handle.set_ceiling(Some(4));
/// assert_eq!(handle.limit(), 4);
/// # Ok::<(), evenkeel_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct LimitHandle {
    view: Arc<dyn View>,
}

impl LimitHandle {
    pub(crate) fn new(view: Arc<dyn View>) -> Self {
        LimitHandle { view }
    }

    /// The limiter's name (for events and metrics labels).
    pub fn name(&self) -> &str {
        self.view.name()
    }

    /// The limit in force: the algorithm's estimate under any ceiling.
    pub fn limit(&self) -> usize {
        self.view.limit()
    }

    /// The algorithm's own estimate, before ceilings.
    pub fn estimate(&self) -> usize {
        self.view.estimate()
    }

    /// Requests holding a permit now.
    pub fn in_flight(&self) -> usize {
        self.view.in_flight()
    }

    /// Requests waiting for a permit now.
    pub fn queued(&self) -> usize {
        self.view.queued()
    }

    /// Requests rejected so far (queue full, waited too long, or reject
    /// mode with no permit free).
    pub fn rejected(&self) -> u64 {
        self.view.rejected()
    }

    /// The configured ceiling, if any.
    pub fn ceiling(&self) -> Option<usize> {
        self.view.ceiling()
    }

    /// The last ceiling the server advertised (`RateLimit-Policy` with
    /// `qu="concurrent-requests"`), if any.
    pub fn server_ceiling(&self) -> Option<usize> {
        self.view.server_ceiling()
    }

    /// Sets or clears the configured ceiling; takes effect at once. A
    /// ceiling of 0 is treated as 1.
    pub fn set_ceiling(&self, ceiling: Option<usize>) {
        self.view.set_ceiling(ceiling.map(|c| c.max(1)))
    }

    /// All the numbers at once.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            limit: self.limit(),
            in_flight: self.in_flight(),
            queued: self.queued(),
            rejected: self.rejected(),
        }
    }
}

impl fmt::Debug for LimitHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitHandle")
            .field("name", &self.name())
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .field("rejected", &self.rejected())
            .finish()
    }
}

/// A limiter's numbers at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The limit in force.
    pub limit: usize,
    /// Requests holding a permit.
    pub in_flight: usize,
    /// Requests waiting for one.
    pub queued: usize,
    /// Requests rejected so far.
    pub rejected: u64,
}
