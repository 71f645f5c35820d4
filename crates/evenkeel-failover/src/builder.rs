//! [`FailoverBuilder`]: the balancer's configuration, validated.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use evenkeel_core::body::DEFAULT_REPLAY_CAP;
use evenkeel_core::event::{Events, Listener};
use evenkeel_core::rng::Jitter;
use evenkeel_core::{ConfigError, HttpClassifier};

use crate::config::{Config, Selection, SuccessRate, nanos};
use crate::endpoint::Endpoint;
use crate::registry::Registry;
use crate::service::Failover;

/// Failures in a row that eject an endpoint by default (Envoy's
/// `consecutive_5xx`).
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
/// Connect failures in a row that eject an endpoint by default: one.
pub const DEFAULT_CONNECT_FAILURES: u32 = 1;
/// The first ejection's length by default (Envoy's `base_ejection_time`).
pub const DEFAULT_BASE_EJECTION: Duration = Duration::from_secs(30);
/// The longest ejection by default (Envoy's `max_ejection_time`).
pub const DEFAULT_MAX_EJECTION: Duration = Duration::from_secs(300);
/// The share of an ejection added at random by default, so endpoints
/// ejected together do not return together.
pub const DEFAULT_EJECTION_JITTER: f64 = 0.1;
/// How far away a cooldown's end must be for the endpoint to be skipped,
/// by default. A shorter wait is left to the endpoint's own quota layer.
pub const DEFAULT_COOLDOWN_THRESHOLD: Duration = Duration::from_millis(500);
/// The default cap on a server-directed cooldown.
pub const DEFAULT_MAX_COOLDOWN: Duration = Duration::from_secs(120);
/// The default longest wait for a cooling endpoint when all are cooling.
pub const DEFAULT_MAX_COOLDOWN_WAIT: Duration = Duration::from_secs(10);

/// Builds a [`Failover`]: its endpoints, outlier ejection, rate-limit
/// awareness, selection and failover rules. Made by
/// [`Failover::builder`]; every setting has a default.
///
/// [`build`](Self::build) validates the settings and returns a
/// [`ConfigError`] naming the field at fault.
pub struct FailoverBuilder<S, C = HttpClassifier> {
    endpoints: Vec<Endpoint<S>>,
    classifier: C,
    consecutive_failures: u32,
    connect_failures: u32,
    success_rate: Option<SuccessRate>,
    base_ejection: Duration,
    max_ejection: Duration,
    ejection_jitter: f64,
    cooldown_threshold: Duration,
    max_cooldown: Duration,
    max_cooldown_wait: Duration,
    selection: Selection,
    ramp: Duration,
    spill_when_busy: bool,
    max_attempts: Option<u32>,
    replay_cap: usize,
    events: Events,
    jitter: Jitter,
}

impl<S> FailoverBuilder<S> {
    pub(crate) fn new() -> Self {
        FailoverBuilder {
            endpoints: Vec::new(),
            classifier: HttpClassifier::new(),
            consecutive_failures: DEFAULT_CONSECUTIVE_FAILURES,
            connect_failures: DEFAULT_CONNECT_FAILURES,
            success_rate: Some(SuccessRate {
                min_rate: 0.5,
                min_requests: 20,
                window: Duration::from_secs(10),
            }),
            base_ejection: DEFAULT_BASE_EJECTION,
            max_ejection: DEFAULT_MAX_EJECTION,
            ejection_jitter: DEFAULT_EJECTION_JITTER,
            cooldown_threshold: DEFAULT_COOLDOWN_THRESHOLD,
            max_cooldown: DEFAULT_MAX_COOLDOWN,
            max_cooldown_wait: DEFAULT_MAX_COOLDOWN_WAIT,
            selection: Selection::default(),
            ramp: Duration::ZERO,
            spill_when_busy: true,
            max_attempts: None,
            replay_cap: DEFAULT_REPLAY_CAP,
            events: Events::none(),
            jitter: Jitter::default(),
        }
    }
}

impl<S, C> FailoverBuilder<S, C> {
    /// Adds an endpoint.
    pub fn endpoint(mut self, endpoint: Endpoint<S>) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Adds endpoints.
    pub fn endpoints(mut self, endpoints: impl IntoIterator<Item = Endpoint<S>>) -> Self {
        self.endpoints.extend(endpoints);
        self
    }

    /// Classifies responses and errors with `classifier` instead of
    /// [`HttpClassifier`].
    pub fn classifier<C2>(self, classifier: C2) -> FailoverBuilder<S, C2> {
        FailoverBuilder {
            endpoints: self.endpoints,
            classifier,
            consecutive_failures: self.consecutive_failures,
            connect_failures: self.connect_failures,
            success_rate: self.success_rate,
            base_ejection: self.base_ejection,
            max_ejection: self.max_ejection,
            ejection_jitter: self.ejection_jitter,
            cooldown_threshold: self.cooldown_threshold,
            max_cooldown: self.max_cooldown,
            max_cooldown_wait: self.max_cooldown_wait,
            selection: self.selection,
            ramp: self.ramp,
            spill_when_busy: self.spill_when_busy,
            max_attempts: self.max_attempts,
            replay_cap: self.replay_cap,
            events: self.events,
            jitter: self.jitter,
        }
    }

    /// Ejects an endpoint after `n` endpoint failures in a row (connect,
    /// DNS and TLS failures, resets, timeouts, 5xx, 529); 0 turns this off.
    /// Default: [`DEFAULT_CONSECUTIVE_FAILURES`] (5).
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = n;
        self
    }

    /// Ejects an endpoint after `n` connect failures in a row (DNS
    /// failure, refused connection, connect timeout, TLS handshake
    /// failure); 0 leaves them to the other rules. Such a request never
    /// reached the server and every request would pay the same connect
    /// attempt, so by default the first one ejects: default
    /// [`DEFAULT_CONNECT_FAILURES`] (1).
    pub fn connect_failures(mut self, n: u32) -> Self {
        self.connect_failures = n;
        self
    }

    /// Ejects an endpoint whose success rate over `window` falls below
    /// `min_rate` (0 to 1) once it has answered at least `min_requests`
    /// requests in that window. Default: below 0.5 over at least 20
    /// requests in 10 s.
    pub fn success_rate(mut self, min_rate: f64, min_requests: u32, window: Duration) -> Self {
        self.success_rate = Some(SuccessRate {
            min_rate,
            min_requests,
            window,
        });
        self
    }

    /// Turns ejection by success rate off.
    pub fn no_success_rate(mut self) -> Self {
        self.success_rate = None;
        self
    }

    /// How long an ejection lasts: `base × times ejected`, at most `max`,
    /// plus up to [`ejection_jitter`](Self::ejection_jitter) of it at
    /// random. Defaults: 30 s and 300 s.
    pub fn ejection(mut self, base: Duration, max: Duration) -> Self {
        self.base_ejection = base;
        self.max_ejection = max;
        self
    }

    /// The share (0 to 1) of an ejection's length added at random.
    /// Default: 0.1.
    pub fn ejection_jitter(mut self, fraction: f64) -> Self {
        self.ejection_jitter = fraction;
        self
    }

    /// An endpoint whose cooldown (a 429's or 503's server wait, or its
    /// [`Cooldown`](evenkeel_core::cooldown::Cooldown)) ends further away
    /// than this is skipped until the cooldown ends; a shorter one is
    /// waited out by the endpoint's own stack. Default: 500 ms.
    pub fn cooldown_threshold(mut self, threshold: Duration) -> Self {
        self.cooldown_threshold = threshold;
        self
    }

    /// The longest cooldown a server's wait can impose on an endpoint
    /// (default 120 s, the retry layer's cap on honoured waits). A 429 with
    /// `Retry-After: 86400` cools the endpoint this long, not a day; a
    /// cooldown that has ended is forgotten the next time the endpoint is
    /// considered.
    pub fn max_cooldown(mut self, cap: Duration) -> Self {
        self.max_cooldown = cap;
        self
    }

    /// When every endpoint is cooling down, how long a request waits for
    /// the first to come back before it fails with
    /// [`NoEndpointAvailable`](crate::error::NoEndpointAvailable) (default
    /// 10 s). The wait is a wait, not an attempt: it is slept inside the
    /// request's deadline (its
    /// [`AttemptContext`](evenkeel_core::ext::AttemptContext)), and refused
    /// at once when the cooldown ends past the deadline or this cap.
    pub fn max_cooldown_wait(mut self, wait: Duration) -> Self {
        self.max_cooldown_wait = wait;
        self
    }

    /// How an endpoint is chosen within a tier. Default: power of two
    /// choices.
    pub fn selection(mut self, selection: Selection) -> Self {
        self.selection = selection;
        self
    }

    /// After an endpoint comes back from an ejection, grow its share of
    /// its tier's traffic linearly from 10 % to all of it over `ramp`; the
    /// rest keeps going where it went meanwhile. Default: zero (traffic
    /// returns at once).
    pub fn ramp(mut self, ramp: Duration) -> Self {
        self.ramp = ramp;
        self
    }

    /// Whether a request may go to a lower tier when every available
    /// endpoint of the preferred tier is busy (its service not ready, such
    /// as a full concurrency limit). Default: `true`. With `false`, the
    /// balancer waits for the preferred tier.
    pub fn spill_when_busy(mut self, spill: bool) -> Self {
        self.spill_when_busy = spill;
        self
    }

    /// The most endpoints one request is sent to, the first included.
    /// Default: no limit beyond each endpoint at most once.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// How much of a request body is kept so that it can be sent to the
    /// next endpoint. A larger body is sent once and never failed over.
    /// Default: [`DEFAULT_REPLAY_CAP`] (1 MiB).
    pub fn replay_cap(mut self, bytes: usize) -> Self {
        self.replay_cap = bytes;
        self
    }

    /// Reports ejections, readmissions, cooldowns, failovers and failbacks
    /// to `listener`.
    pub fn on_event(mut self, listener: impl Listener) -> Self {
        self.events = self.events.and(Events::new(listener));
        self
    }

    /// Reports events to `events` (shared with other layers).
    pub fn events(mut self, events: Events) -> Self {
        self.events = self.events.and(events);
        self
    }

    /// The randomness used for selection and ejection jitter; seed it for
    /// reproducible tests.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Validates the configuration and builds the balancer.
    pub fn build(self) -> Result<Failover<S, C>, ConfigError>
    where
        S: Clone,
    {
        let config = self.validate()?;
        let mut names = HashSet::new();
        for endpoint in &self.endpoints {
            if endpoint.name.is_empty() {
                return Err(ConfigError::new("endpoint", "names must not be empty"));
            }
            if !names.insert(Arc::clone(&endpoint.name)) {
                return Err(ConfigError::new(
                    "endpoint",
                    format!("names must be unique; `{}` is given twice", endpoint.name),
                ));
            }
        }
        let registry = Registry::new(config, self.events, self.jitter, self.endpoints);
        Ok(Failover::from_registry(Arc::new(registry), self.classifier))
    }

    fn validate(&self) -> Result<Config, ConfigError> {
        if let Some(sr) = &self.success_rate {
            if !(0.0..=1.0).contains(&sr.min_rate) {
                return Err(ConfigError::new(
                    "success_rate",
                    format!("min_rate must be between 0 and 1, got {}", sr.min_rate),
                ));
            }
            if sr.min_requests == 0 {
                return Err(ConfigError::new(
                    "success_rate",
                    "min_requests must be at least 1",
                ));
            }
            if sr.window.is_zero() {
                return Err(ConfigError::new(
                    "success_rate",
                    "the window must be longer than zero",
                ));
            }
        }
        if self.base_ejection.is_zero() {
            return Err(ConfigError::new(
                "ejection",
                "the base ejection must be longer than zero",
            ));
        }
        if self.max_ejection < self.base_ejection {
            return Err(ConfigError::new(
                "ejection",
                format!(
                    "the longest ejection ({:?}) must not be shorter than the base ({:?})",
                    self.max_ejection, self.base_ejection
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.ejection_jitter) {
            return Err(ConfigError::new(
                "ejection_jitter",
                format!("must be between 0 and 1, got {}", self.ejection_jitter),
            ));
        }
        if self.max_attempts == Some(0) {
            return Err(ConfigError::new("max_attempts", "must be at least 1"));
        }
        if self.max_cooldown.is_zero() {
            return Err(ConfigError::new(
                "max_cooldown",
                "must be greater than zero",
            ));
        }
        Ok(Config {
            consecutive_failures: self.consecutive_failures,
            connect_failures: self.connect_failures,
            success_rate: self.success_rate,
            ejection_jitter: self.ejection_jitter,
            selection: self.selection,
            spill_when_busy: self.spill_when_busy,
            max_attempts: self.max_attempts,
            replay_cap: self.replay_cap,
            max_cooldown_wait: self.max_cooldown_wait,
            base_ticks: nanos(self.base_ejection),
            max_ticks: nanos(self.max_ejection),
            threshold_ticks: nanos(self.cooldown_threshold),
            ramp_ticks: nanos(self.ramp),
            window_ticks: self.success_rate.map_or(0, |sr| nanos(sr.window)),
            max_cooldown_ticks: nanos(self.max_cooldown),
        })
    }
}

impl<S, C: fmt::Debug> fmt::Debug for FailoverBuilder<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.endpoints.iter().map(|e| &*e.name).collect();
        f.debug_struct("FailoverBuilder")
            .field("endpoints", &names)
            .field("classifier", &self.classifier)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("connect_failures", &self.connect_failures)
            .field("success_rate", &self.success_rate)
            .field("base_ejection", &self.base_ejection)
            .field("max_ejection", &self.max_ejection)
            .field("ejection_jitter", &self.ejection_jitter)
            .field("cooldown_threshold", &self.cooldown_threshold)
            .field("max_cooldown", &self.max_cooldown)
            .field("max_cooldown_wait", &self.max_cooldown_wait)
            .field("selection", &self.selection)
            .field("ramp", &self.ramp)
            .field("spill_when_busy", &self.spill_when_busy)
            .field("max_attempts", &self.max_attempts)
            .field("replay_cap", &self.replay_cap)
            .field("events", &self.events)
            .finish()
    }
}
