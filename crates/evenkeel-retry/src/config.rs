//! [`Config`]: everything a retry layer and its services share, and the
//! [`Settings`] the builder fills in.

use std::fmt;
use std::time::Duration;

use evenkeel_core::event::Events;
use evenkeel_core::rng::Jitter;

use crate::backoff::Backoff;
use crate::budget::RetryBudget;

/// The settings that do not depend on the classifier or the policy: what
/// the builder sets field by field.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    /// `None`: the same as `backoff`.
    pub(crate) throttle_backoff: Option<Backoff>,
    pub(crate) max_server_wait: Duration,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) budget: RetryBudget,
    pub(crate) replay_cap: usize,
    pub(crate) peek_limit: usize,
    pub(crate) peek_timeout: Duration,
    pub(crate) drain_limit: usize,
    /// `None`: no idle bound on response bodies.
    pub(crate) body_idle_timeout: Option<Duration>,
    pub(crate) events: Events,
    pub(crate) jitter: Jitter,
}

impl Settings {
    /// The backoff after rate limits and overloads.
    pub(crate) fn throttle_backoff(&self) -> &Backoff {
        self.throttle_backoff.as_ref().unwrap_or(&self.backoff)
    }
}

/// Everything a retry layer and its services share: the settings (reached
/// through `Deref`, so `config.max_attempts` reads them), the classifier and
/// the policy.
pub(crate) struct Config<C, P> {
    pub(crate) settings: Settings,
    pub(crate) classifier: C,
    pub(crate) policy: P,
}

impl<C, P> std::ops::Deref for Config<C, P> {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.settings
    }
}

impl<C: fmt::Debug, P: fmt::Debug> fmt::Debug for Config<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("settings", &self.settings)
            .field("classifier", &self.classifier)
            .field("policy", &self.policy)
            .finish()
    }
}
