//! Events: what the layers decide, for metrics, logs and callers.
//!
//! Every evenkeel layer that makes a decision worth watching (a retry, a
//! give-up, a limit change, a quota wait, an ejection, a failover) reports
//! it as an [`Event`] to the [`Listener`] it was given. The metrics crate
//! provides a listener that records them; a closure is a listener too:
//!
//! ```
//! use evenkeel_core::event::{Event, Events};
//!
//! let events = Events::new(|event: &Event<'_>| println!("{event:?}"));
//! events.emit(|| Event::LimitChanged { name: "api", limit: 32 });
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use evenkeel_headers::Resource;

use crate::outcome::Outcome;

/// A decision made by an evenkeel layer.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A retry is scheduled: attempt number `attempt` (2 or more) will be
    /// sent after `wait`.
    Retry {
        /// The attempt about to be sent.
        attempt: u32,
        /// The outcome of the previous attempt.
        outcome: &'a Outcome,
        /// How long the retry waits before sending.
        wait: Duration,
        /// `true` when the wait is the server's (`Retry-After`), `false`
        /// when it is the client's backoff.
        server_directed: bool,
    },
    /// No further attempt will be made; the last outcome goes to the caller.
    GaveUp {
        /// Why.
        reason: GiveUp,
        /// The last attempt's outcome.
        outcome: &'a Outcome,
        /// Attempts made.
        attempts: u32,
    },
    /// An adaptive or static limiter's limit changed.
    LimitChanged {
        /// The limiter's name (an endpoint, or the layer's label).
        name: &'a str,
        /// The new limit.
        limit: usize,
    },
    /// A limiter rejected a request without sending it.
    LimitRejected {
        /// The limiter's name.
        name: &'a str,
    },
    /// A quota layer held a request to stay inside a quota.
    QuotaWait {
        /// The quota key.
        key: &'a str,
        /// The resource that was short.
        resource: &'a Resource,
        /// How long the request waited.
        wait: Duration,
    },
    /// A quota layer failed a request because the wait was too long.
    QuotaRejected {
        /// The quota key.
        key: &'a str,
        /// The resource that was short.
        resource: &'a Resource,
        /// How long it would have had to wait, if known.
        wait: Option<Duration>,
    },
    /// An endpoint changed state.
    EndpointState {
        /// The endpoint's name.
        endpoint: &'a str,
        /// Its new state.
        state: EndpointState,
    },
    /// A request moved from one endpoint to another after `outcome`.
    Failover {
        /// The endpoint that failed or was skipped.
        from: &'a str,
        /// The endpoint tried next.
        to: &'a str,
        /// What happened on `from`.
        outcome: &'a Outcome,
    },
    /// Traffic returned to a higher-priority endpoint.
    Failback {
        /// The endpoint now preferred again.
        to: &'a str,
    },
    /// A host name was resolved for endpoint discovery.
    DnsResolved {
        /// The host name.
        host: &'a str,
        /// Addresses in the answer.
        addresses: usize,
        /// The answer's time to live, when the resolver reports one.
        ttl: Option<Duration>,
    },
    /// Resolving a host name failed; the last good set of addresses stays.
    DnsFailed {
        /// The host name.
        host: &'a str,
        /// What went wrong, in a word: `nxdomain`, `no_records`,
        /// `timeout`, `servfail` or `other`.
        reason: &'a str,
    },
    /// An address joined or left a host's answer, and with it the
    /// endpoint set.
    AddressChanged {
        /// The host name.
        host: &'a str,
        /// The address.
        address: std::net::SocketAddr,
        /// `true` when it joined, `false` when it left (and drains).
        added: bool,
    },
    /// A call to a shared quota store (Redis) failed or timed out; the
    /// process paces itself locally until the store answers again.
    QuotaStoreFailed {
        /// The store's label (for example `redis`).
        store: &'a str,
        /// Why the call failed.
        reason: StoreFailure,
    },
    /// A shared quota store answered again after failing: the process is
    /// back on the shared quota.
    QuotaStoreRecovered {
        /// The store's label.
        store: &'a str,
        /// How long the process paced itself locally.
        down: Duration,
    },
    /// A streamed (Server-Sent Events) answer that reached the caller
    /// ended: completely, with an error after content, or dropped by the
    /// caller.
    StreamEnded {
        /// From the request's send to the first content event.
        first_event: Duration,
        /// From the request's send to the stream's end.
        duration: Duration,
        /// How it ended.
        end: StreamEnd,
    },
}

/// Why a call to a shared quota store failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreFailure {
    /// No answer within the store's timeout.
    Timeout,
    /// The connection failed or was refused.
    Connection,
    /// The store answered with an error (or an answer it could not read).
    Response,
}

impl StoreFailure {
    /// A short, stable name, suitable for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreFailure::Timeout => "timeout",
            StoreFailure::Connection => "connection",
            StoreFailure::Response => "response",
        }
    }
}

/// How a streamed answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamEnd {
    /// The body ended cleanly.
    Complete,
    /// An error event (or a broken bound) ended it with a
    /// [`StreamError`](crate::error::StreamError) of this kind.
    Error(crate::error::StreamErrorKind),
    /// The body failed to read (a transport error).
    Failed,
    /// The caller dropped the body before its end.
    Dropped,
}

impl StreamEnd {
    /// A short, stable name, suitable for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamEnd::Complete => "complete",
            StreamEnd::Error(_) => "error",
            StreamEnd::Failed => "failed",
            StreamEnd::Dropped => "dropped",
        }
    }
}

/// Why a layer stopped resending a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUp {
    /// The outcome is not retryable (success, client error, hopeless).
    NotRetryable,
    /// The server said not to retry.
    Forbidden,
    /// Resending could duplicate a request that may have been processed.
    NotIdempotent,
    /// The maximum number of attempts was reached.
    Attempts,
    /// The retry budget is empty.
    Budget,
    /// The server's wait exceeds the cap on honoured waits.
    WaitTooLong,
    /// The wait would overrun the total deadline.
    Deadline,
    /// The request body could not be replayed (over the cap, or it failed).
    BodyNotReplayable,
    /// The stack held the request back itself (quota, a cooldown, a local
    /// limit) and the wait could not fit the deadline or its cap. Nothing
    /// was sent, so nothing is retried: the refusal is the answer.
    Local,
}

impl GiveUp {
    /// A short, stable name, suitable for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            GiveUp::NotRetryable => "not_retryable",
            GiveUp::Forbidden => "forbidden",
            GiveUp::NotIdempotent => "not_idempotent",
            GiveUp::Attempts => "attempts",
            GiveUp::Budget => "budget",
            GiveUp::WaitTooLong => "wait_too_long",
            GiveUp::Deadline => "deadline",
            GiveUp::BodyNotReplayable => "body_not_replayable",
            GiveUp::Local => "local",
        }
    }
}

/// An endpoint's routing state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndpointState {
    /// Taking traffic.
    Healthy,
    /// Ejected after failures, until its ejection ends or a health check
    /// readmits it.
    Ejected,
    /// Skipped while its quota cools down.
    CoolingDown,
    /// Finishing its in-flight requests before removal.
    Draining,
    /// Removed.
    Removed,
}

impl EndpointState {
    /// A short, stable name, suitable for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Healthy => "healthy",
            EndpointState::Ejected => "ejected",
            EndpointState::CoolingDown => "cooling_down",
            EndpointState::Draining => "draining",
            EndpointState::Removed => "removed",
        }
    }
}

/// Receives [`Event`]s. Implemented for every `Fn(&Event<'_>)`.
pub trait Listener: Send + Sync + 'static {
    /// Called for each event, on the task that made the decision. Keep it
    /// quick: it runs on the request path.
    fn on_event(&self, event: &Event<'_>);
}

impl<F> Listener for F
where
    F: Fn(&Event<'_>) + Send + Sync + 'static,
{
    fn on_event(&self, event: &Event<'_>) {
        self(event)
    }
}

/// An optional, shared [`Listener`]: what layers hold. Cheap to clone;
/// emitting with no listener costs a branch.
#[derive(Clone, Default)]
pub struct Events {
    listener: Option<Arc<dyn Listener>>,
}

impl Events {
    /// Events delivered to `listener`.
    pub fn new(listener: impl Listener) -> Self {
        Events {
            listener: Some(Arc::new(listener)),
        }
    }

    /// Events delivered to a shared listener.
    pub fn from_arc(listener: Arc<dyn Listener>) -> Self {
        Events {
            listener: Some(listener),
        }
    }

    /// No listener: events are dropped.
    pub fn none() -> Self {
        Events { listener: None }
    }

    /// Whether a listener is attached.
    pub fn is_enabled(&self) -> bool {
        self.listener.is_some()
    }

    /// Delivers the event built by `event`, which runs only when a listener
    /// is attached.
    #[inline]
    pub fn emit<'a>(&self, event: impl FnOnce() -> Event<'a>) {
        if let Some(listener) = &self.listener {
            listener.on_event(&event());
        }
    }

    /// Delivers to both `self` and `other`.
    pub fn and(self, other: Events) -> Events {
        match (self.listener, other.listener) {
            (None, l) | (l, None) => Events { listener: l },
            (Some(a), Some(b)) => Events::new(move |e: &Event<'_>| {
                a.on_event(e);
                b.on_event(e);
            }),
        }
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("listener", &self.listener.is_some())
            .finish()
    }
}
