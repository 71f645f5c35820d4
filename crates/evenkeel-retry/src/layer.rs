use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use evenkeel_core::body::DEFAULT_REPLAY_CAP;
use evenkeel_core::event::{Events, Listener};
use evenkeel_core::rng::Jitter;
use evenkeel_core::{ConfigError, HttpClassifier};
use tower_layer::Layer;

use crate::backoff::Backoff;
use crate::budget::RetryBudget;
use crate::config::{Config, Settings};
use crate::policy::DefaultPolicy;
use crate::service::Retry;

/// The default number of attempts, the first included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The default cap on a server-requested wait that the layer will sleep
/// through (openai-python settled on the same figure).
pub const DEFAULT_MAX_SERVER_WAIT: Duration = Duration::from_secs(120);
/// How much of a retryable response's body is read to classify it.
pub const DEFAULT_PEEK_LIMIT: usize = 4 * 1024;
/// How much of a discarded response's body is drained (so its connection
/// can be reused) while waiting to retry.
pub const DEFAULT_DRAIN_LIMIT: usize = 64 * 1024;
/// The default longest wait for one frame of a response body: a body
/// silent for longer ends with
/// [`TimedOut`](evenkeel_core::error::TimedOut).
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A [`Layer`] that wraps services in a rate-limit-aware [`Retry`].
///
/// Build one with [`RetryLayer::builder`] (or [`RetryLayer::new`] for the
/// defaults). The layer is cheap to clone; all its clones, and every service
/// they make, share one configuration and one [`RetryBudget`].
pub struct RetryLayer<C = HttpClassifier, P = DefaultPolicy> {
    config: Arc<Config<C, P>>,
}

impl RetryLayer {
    /// A layer with the defaults: 3 attempts, the SDK backoff, waits up to
    /// 120 s honoured, a 20 % budget, 1 MiB of body kept for replay, no
    /// attempt timeout and no total deadline.
    pub fn new() -> Self {
        RetryLayer::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder starting from the defaults.
    pub fn builder() -> RetryBuilder {
        RetryBuilder::default()
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        RetryLayer::new()
    }
}

impl<C, P> RetryLayer<C, P> {
    /// The budget shared by every service of this layer.
    pub fn budget(&self) -> &RetryBudget {
        &self.config.budget
    }

    /// The maximum number of attempts per request.
    pub fn max_attempts(&self) -> u32 {
        self.config.max_attempts
    }
}

impl<C, P> Clone for RetryLayer<C, P> {
    fn clone(&self) -> Self {
        RetryLayer {
            config: Arc::clone(&self.config),
        }
    }
}

impl<S, C, P> Layer<S> for RetryLayer<C, P> {
    type Service = Retry<S, C, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_config(inner, Arc::clone(&self.config))
    }
}

impl<C: fmt::Debug, P: fmt::Debug> fmt::Debug for RetryLayer<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("config", &*self.config)
            .finish()
    }
}

/// Builds a [`RetryLayer`]; [`build`](RetryBuilder::build) validates the
/// whole configuration.
///
/// ```
/// use std::time::Duration;
/// use evenkeel_retry::{Backoff, RetryBudget, RetryLayer};
///
/// let layer = RetryLayer::builder()
///     .max_attempts(4)
///     .backoff(Backoff::sdk())
///     .max_server_wait(Duration::from_secs(60))
///     .attempt_timeout(Duration::from_secs(10))
///     .deadline(Duration::from_secs(30))
///     .budget(RetryBudget::new(Duration::from_secs(10), 10, 0.2)?)
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), evenkeel_core::ConfigError>(())
/// ```
pub struct RetryBuilder<C = HttpClassifier, P = DefaultPolicy> {
    settings: Settings,
    classifier: C,
    policy: P,
}

impl Default for RetryBuilder {
    fn default() -> Self {
        RetryBuilder {
            settings: Settings {
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                backoff: Backoff::sdk(),
                throttle_backoff: None,
                max_server_wait: DEFAULT_MAX_SERVER_WAIT,
                attempt_timeout: None,
                deadline: None,
                budget: RetryBudget::default(),
                replay_cap: DEFAULT_REPLAY_CAP,
                peek_limit: DEFAULT_PEEK_LIMIT,
                peek_timeout: Duration::from_secs(2),
                drain_limit: DEFAULT_DRAIN_LIMIT,
                body_idle_timeout: Some(DEFAULT_BODY_IDLE_TIMEOUT),
                events: Events::none(),
                jitter: Jitter::thread_local(),
            },
            classifier: HttpClassifier::new(),
            policy: DefaultPolicy,
        }
    }
}

impl<C, P> RetryBuilder<C, P> {
    /// Attempts per request, the first included (default 3). `1` disables
    /// retries.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.settings.max_attempts = attempts;
        self
    }

    /// The backoff after transient errors when the server gave no wait
    /// (default [`Backoff::sdk`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.settings.backoff = backoff;
        self
    }

    /// The backoff after rate limits and overloads when the server gave no
    /// wait (default: the same as [`backoff`](Self::backoff)).
    pub fn throttle_backoff(mut self, backoff: Backoff) -> Self {
        self.settings.throttle_backoff = Some(backoff);
        self
    }

    /// The longest server-requested wait the layer sleeps through (default
    /// 120 s). A longer one is not slept: the caller gets the response at
    /// once, with its `Retry-After`.
    pub fn max_server_wait(mut self, wait: Duration) -> Self {
        self.settings.max_server_wait = wait;
        self
    }

    /// A timeout for each attempt (default none). An attempt that exceeds it
    /// fails with [`TimedOut`](evenkeel_core::error::TimedOut), which counts
    /// as maybe processed.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.settings.attempt_timeout = Some(timeout);
        self
    }

    /// A total deadline covering every attempt and every wait (default
    /// none). When it passes the caller gets
    /// [`DeadlineExceeded`](evenkeel_core::error::DeadlineExceeded); a wait
    /// that would overrun it is not started. The deadline covers every
    /// queue inside the stack below and the response body: a body still
    /// arriving when it passes ends with
    /// [`TimedOut`](evenkeel_core::error::TimedOut). It is passed down in
    /// each attempt's [`AttemptContext`](evenkeel_core::ext::AttemptContext),
    /// in the request's extensions; a caller's own
    /// [`Deadline`](evenkeel_core::ext::Deadline) extension, if earlier,
    /// wins.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.settings.deadline = Some(deadline);
        self
    }

    /// The longest wait for one frame of a response body (default 30 s). A
    /// body silent for longer ends with
    /// [`TimedOut`](evenkeel_core::error::TimedOut) rather than hang. `None`
    /// leaves bodies bounded only by the deadline.
    pub fn body_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.body_idle_timeout = timeout;
        self
    }

    /// The retry budget (default 20 % of requests plus 10 retries per
    /// second, over 10 s). Share one budget between layers by cloning it.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.settings.budget = budget;
        self
    }

    /// How many bytes of a request body are kept so it can be sent again
    /// (default 1 MiB). A larger body is sent once and not retried.
    pub fn replay_cap(mut self, bytes: usize) -> Self {
        self.settings.replay_cap = bytes;
        self
    }

    /// How many bytes of a retryable response's body the classifier may
    /// read (default 4 KiB; see
    /// [`Classify::wants_body`](evenkeel_core::Classify::wants_body)).
    pub fn peek_limit(mut self, bytes: usize) -> Self {
        self.settings.peek_limit = bytes;
        self
    }

    /// How many bytes of a discarded response's body are drained while
    /// waiting to retry, so its connection can be reused (default 64 KiB).
    pub fn drain_limit(mut self, bytes: usize) -> Self {
        self.settings.drain_limit = bytes;
        self
    }

    /// Reports every retry decision to `listener` as well. Each call adds
    /// a listener; none replaces another.
    pub fn on_event(mut self, listener: impl Listener) -> Self {
        self.settings.events = std::mem::take(&mut self.settings.events).and(Events::new(listener));
        self
    }

    /// Reports every retry decision to `events` as well (for sharing one
    /// listener).
    pub fn events(mut self, events: Events) -> Self {
        self.settings.events = std::mem::take(&mut self.settings.events).and(events);
        self
    }

    /// The source of jitter (default thread-local; use
    /// [`Jitter::seeded`] for reproducible tests).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.settings.jitter = jitter;
        self
    }

    /// Classifies outcomes with `classifier` instead of [`HttpClassifier`].
    pub fn classifier<C2>(self, classifier: C2) -> RetryBuilder<C2, P> {
        RetryBuilder {
            settings: self.settings,
            classifier,
            policy: self.policy,
        }
    }

    /// Decides which outcomes are retried with `policy` instead of
    /// [`DefaultPolicy`].
    pub fn policy<P2>(self, policy: P2) -> RetryBuilder<C, P2> {
        RetryBuilder {
            settings: self.settings,
            classifier: self.classifier,
            policy,
        }
    }

    /// Validates the configuration and builds the layer.
    pub fn build(self) -> Result<RetryLayer<C, P>, ConfigError> {
        Ok(RetryLayer {
            config: Arc::new(self.into_config()?),
        })
    }

    /// Validates the configuration and builds a layer for any request type
    /// (see [`GenericRetryLayer`](crate::generic::GenericRetryLayer)); the
    /// policy must then implement
    /// [`ResendPolicy`](crate::generic::ResendPolicy).
    pub fn build_generic(self) -> Result<crate::generic::GenericRetryLayer<C, P>, ConfigError> {
        Ok(crate::generic::GenericRetryLayer::from_config(Arc::new(
            self.into_config()?,
        )))
    }

    fn into_config(self) -> Result<Config<C, P>, ConfigError> {
        let settings = &self.settings;
        if settings.max_attempts == 0 {
            return Err(ConfigError::new(
                "max_attempts",
                "must be at least 1 (1 disables retries)",
            ));
        }
        if settings.max_attempts > 100 {
            return Err(ConfigError::new(
                "max_attempts",
                format!(
                    "({}) is unreasonably high; the limit is 100",
                    settings.max_attempts
                ),
            ));
        }
        if settings.max_server_wait.is_zero() {
            return Err(ConfigError::new(
                "max_server_wait",
                "must be greater than zero (use max_attempts(1) to disable retries)",
            ));
        }
        if settings.attempt_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                "attempt_timeout",
                "must be greater than zero",
            ));
        }
        if settings.deadline.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new("deadline", "must be greater than zero"));
        }
        if settings.body_idle_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                "body_idle_timeout",
                "must be greater than zero (None disables it)",
            ));
        }
        if let (Some(attempt), Some(deadline)) = (settings.attempt_timeout, settings.deadline)
            && attempt > deadline
        {
            return Err(ConfigError::new(
                "attempt_timeout",
                format!("({attempt:?}) must not exceed the total deadline ({deadline:?})"),
            ));
        }
        for (field, backoff) in [
            ("backoff", Some(&settings.backoff)),
            ("throttle_backoff", settings.throttle_backoff.as_ref()),
        ] {
            if let Some(b) = backoff
                && b.max() < b.base()
            {
                return Err(ConfigError::new(field, "has a cap below its base delay"));
            }
        }
        Ok(Config {
            settings: self.settings,
            classifier: self.classifier,
            policy: self.policy,
        })
    }
}

impl<C: fmt::Debug, P: fmt::Debug> fmt::Debug for RetryBuilder<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBuilder")
            .field("settings", &self.settings)
            .field("classifier", &self.classifier)
            .field("policy", &self.policy)
            .finish()
    }
}
