//! Which outcomes may be retried, for which requests.

use std::fmt;

use evenkeel_core::{Outcome, resend};
use http::request::Parts;

/// Decides whether a request may be sent again after an outcome.
///
/// The retry layer asks only about outcomes that are not successes; the
/// attempt count, budget, deadline and wait caps are checked separately.
///
/// ```
/// use evenkeel_core::Outcome;
/// use evenkeel_retry::{DefaultPolicy, Policy, policy_fn};
///
/// // Never retry anything under /v1/billing, otherwise the default rules.
/// let policy = policy_fn(|outcome: &Outcome, req: &http::request::Parts| {
///     !req.uri.path().starts_with("/v1/billing") && DefaultPolicy.may_retry(outcome, req)
/// });
/// # let _ = policy;
/// ```
pub trait Policy: Send + Sync + 'static {
    /// `true` when the request described by `request` may be sent again
    /// after `outcome`.
    fn may_retry(&self, outcome: &Outcome, request: &Parts) -> bool;
}

/// The default rules (see [`evenkeel_core::resend::may_resend`]):
///
/// - "never sent" failures are retried for every method;
/// - "maybe processed" failures and 5xx only for idempotent methods (GET,
///   HEAD, OPTIONS, PUT, DELETE, TRACE) or requests with an
///   `Idempotency-Key` header;
/// - 429, and 503/529 that carry a server wait or `x-should-retry: true`,
///   for every method: the server did not process the request;
/// - never after `x-should-retry: false`, a hopeless quota error, a
///   certificate failure (it would fail the same way again) or a client
///   error.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPolicy;

impl Policy for DefaultPolicy {
    fn may_retry(&self, outcome: &Outcome, request: &Parts) -> bool {
        !outcome.is_hopeless() && resend::may_resend(outcome, &request.method, &request.headers)
    }
}

/// A [`Policy`] from a closure. See [`policy_fn`].
#[derive(Clone, Copy)]
pub struct PolicyFn<F> {
    f: F,
}

/// Makes a [`Policy`] from a closure `Fn(&Outcome, &Parts) -> bool`.
pub fn policy_fn<F>(f: F) -> PolicyFn<F>
where
    F: Fn(&Outcome, &Parts) -> bool + Send + Sync + 'static,
{
    PolicyFn { f }
}

impl<F> Policy for PolicyFn<F>
where
    F: Fn(&Outcome, &Parts) -> bool + Send + Sync + 'static,
{
    fn may_retry(&self, outcome: &Outcome, request: &Parts) -> bool {
        (self.f)(outcome, request)
    }
}

impl<F> fmt::Debug for PolicyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyFn").finish_non_exhaustive()
    }
}
