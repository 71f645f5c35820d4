//! What evenkeel layers tell each other about a request.
//!
//! One value travels down the stack with every request: the
//! [`AttemptContext`], in the request's extensions. The layer that owns the
//! deadline and the attempts (the retry layer, or the preset before it)
//! puts it there; every layer below that waits or decides reads it: a quota
//! layer fails at once rather than hold a request past its deadline, a
//! failover layer does not start an attempt that cannot finish, per-attempt
//! metrics label the attempt. Because it is part of the request, it crosses
//! anything a request crosses, `tower::buffer::Buffer`'s worker task
//! included.
//!
//! The context also carries the way back up: the [`Verdict`] on each
//! attempt's answer. The layer that sees the answer first (an
//! [`Observe`](crate::observe::Observe) at the bottom of an endpoint's
//! stack) classifies it and reads its rate-limit headers once, and leaves
//! the verdict in the context; every layer above reads it instead of
//! judging the same answer again. A verdict belongs to one attempt: a
//! layer that starts another ([`AttemptContext::begin_attempt`]) makes the
//! previous one stale, so an error a layer in between raises on its own
//! is never mistaken for the last answer from the wire.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use crate::Outcome;
use crate::verdict::Verdict;

/// What a logical request carries down the stack, and what its attempts
/// leave for the layers above.
///
/// Cloning it is cheap (the attempt number and verdicts are shared by
/// every clone), so each attempt's copy of the request head shares one
/// context. Read it with [`AttemptContext::of`], or through
/// [`Deadline::of`] and [`Attempt::of`], which also honour a bare
/// [`Deadline`] or [`Attempt`] that a caller put in the extensions.
#[derive(Clone)]
pub struct AttemptContext {
    deadline: Option<Instant>,
    shared: Arc<Shared>,
}

struct Shared {
    /// The current attempt; changed only under `verdict`'s lock.
    attempt: AtomicU32,
    /// The verdict on an attempt's answer, with that attempt's number.
    verdict: Mutex<Option<(u32, Verdict)>>,
}

impl AttemptContext {
    /// The context of a request whose current attempt is `attempt` (1 for
    /// a new request), under `deadline`.
    pub fn new(attempt: u32, deadline: Option<Instant>) -> Self {
        AttemptContext {
            deadline,
            shared: Arc::new(Shared {
                attempt: AtomicU32::new(attempt.max(1)),
                verdict: Mutex::new(None),
            }),
        }
    }

    /// The context in `request`'s extensions, if a layer above set one.
    pub fn of<B>(request: &http::Request<B>) -> Option<&AttemptContext> {
        request.extensions().get::<AttemptContext>()
    }

    /// The context in `extensions`, if a layer above set one.
    pub fn in_extensions(extensions: &http::Extensions) -> Option<&AttemptContext> {
        extensions.get::<AttemptContext>()
    }

    /// The current attempt, starting at 1. Every attempt that goes to an
    /// endpoint counts, a failover's move to another endpoint included; a
    /// wait the stack imposes on itself is not an attempt.
    pub fn attempt(&self) -> u32 {
        self.shared.attempt.load(Ordering::Acquire)
    }

    /// The instant by which the caller needs an answer, if any: it covers
    /// every queue inside the stack and the response body.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Sets the deadline this copy of the context carries down.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Starts the next attempt and returns its number. The verdict on the
    /// previous attempt turns stale: layers above no longer read it.
    pub fn begin_attempt(&self) -> u32 {
        let mut verdict = self.lock();
        let next = self.attempt().saturating_add(1);
        self.shared.attempt.store(next, Ordering::Release);
        *verdict = None;
        next
    }

    /// Leaves `verdict` as the judgement of attempt `attempt` (the number
    /// [`attempt`](AttemptContext::attempt) returned when it was sent). A
    /// verdict for an attempt that is no longer current is dropped.
    pub fn record(&self, attempt: u32, verdict: Verdict) {
        let mut slot = self.lock();
        if self.attempt() == attempt {
            *slot = Some((attempt, verdict));
        }
    }

    /// Runs `read` on the current attempt's verdict, if the attempt's
    /// answer was judged below.
    pub fn with_verdict<R>(&self, read: impl FnOnce(&Verdict) -> R) -> Option<R> {
        let slot = self.lock();
        match &*slot {
            Some((attempt, verdict)) if *attempt == self.attempt() => Some(read(verdict)),
            _ => None,
        }
    }

    /// The outcome of the current attempt, if its answer was judged below.
    pub fn outcome(&self) -> Option<Outcome> {
        self.with_verdict(|v| v.outcome)
    }

    /// The outcome of the current attempt if its answer was judged below
    /// and was of the kind at hand: an error when `error`, else a response.
    /// A layer that holds a response where the verdict saw an error (or the
    /// reverse) holds an answer of its own making, and judges it itself.
    pub fn outcome_for(&self, error: bool) -> Option<Outcome> {
        self.with_verdict(|v| (v.is_error() == error).then_some(v.outcome))
            .flatten()
    }

    /// Drops the current attempt's verdict: the layer that calls it answers
    /// with something of its own (a deadline, a refusal), not with the last
    /// answer from below.
    pub fn forget_verdict(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> MutexGuard<'_, Option<(u32, Verdict)>> {
        // Every update is a single assignment: a poisoned lock still holds
        // consistent data.
        self.shared
            .verdict
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The outcome of the answer that just came up (an error when `error`):
/// the verdict left in `context` when the answer was judged below, else
/// `judge()`, for answers no observer saw (no context, or an error raised
/// by a layer in between).
#[inline]
pub fn outcome_or(
    context: Option<&AttemptContext>,
    error: bool,
    judge: impl FnOnce() -> Outcome,
) -> Outcome {
    context
        .and_then(|c| c.outcome_for(error))
        .unwrap_or_else(judge)
}

/// Keeps a copy of a request head to send it again (a retry, a failover),
/// leaving `parts` whole for the first send.
///
/// When the request's only extension is its [`AttemptContext`], the copy
/// leaves the extensions out ([`resend_head`] puts the context back), so
/// keeping a head costs no copy of them.
pub fn keep_head(parts: &mut http::request::Parts) -> http::request::Parts {
    let only_context =
        parts.extensions.len() == 1 && parts.extensions.get::<AttemptContext>().is_some();
    if !only_context {
        return parts.clone();
    }
    let extensions = std::mem::take(&mut parts.extensions);
    let kept = parts.clone();
    parts.extensions = extensions;
    kept
}

/// The head of a later send: a copy of `kept` (from [`keep_head`]) that
/// carries `context`.
pub fn resend_head(
    kept: &http::request::Parts,
    context: Option<&AttemptContext>,
) -> http::request::Parts {
    let mut head = kept.clone();
    if let Some(context) = context
        && head.extensions.get::<AttemptContext>().is_none()
    {
        head.extensions.insert(context.clone());
    }
    head
}

impl fmt::Debug for AttemptContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.lock();
        f.debug_struct("AttemptContext")
            .field("attempt", &self.attempt())
            .field("deadline", &self.deadline)
            .field("verdict", &slot.as_ref().map(|(_, v)| v))
            .finish()
    }
}

/// The instant by which the caller needs an answer.
///
/// Callers may put one in a request's extensions
/// (`request.extensions_mut().insert(Deadline(instant))`); the retry layer
/// then keeps the earlier of it and its own total deadline, and passes the
/// result down in the [`AttemptContext`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// The deadline of `request`: the earlier of a bare [`Deadline`]
    /// extension and the [`AttemptContext`]'s, if either is set.
    pub fn of<B>(request: &http::Request<B>) -> Option<Instant> {
        Deadline::in_extensions(request.extensions())
    }

    /// The deadline in request `parts` (see [`Deadline::of`]).
    pub fn of_parts(parts: &http::request::Parts) -> Option<Instant> {
        Deadline::in_extensions(&parts.extensions)
    }

    /// The deadline in `extensions` (see [`Deadline::of`]).
    pub fn in_extensions(extensions: &http::Extensions) -> Option<Instant> {
        let bare = extensions.get::<Deadline>().map(|d| d.0);
        let context = extensions.get::<AttemptContext>().and_then(|c| c.deadline);
        earlier(bare, context)
    }
}

/// The earlier of two optional instants (`None` is "never").
pub fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Which attempt of a logical request this is, starting at 1.
///
/// The retry layer passes it in the [`AttemptContext`]; a caller or a layer
/// of its own may set a bare `Attempt` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attempt(pub u32);

impl Attempt {
    /// The attempt number of `request`: the [`AttemptContext`]'s, else a
    /// bare `Attempt` extension's, else 1.
    pub fn of<B>(request: &http::Request<B>) -> u32 {
        Attempt::in_extensions(request.extensions())
    }

    /// The attempt number in `extensions` (see [`Attempt::of`]).
    pub fn in_extensions(extensions: &http::Extensions) -> u32 {
        extensions
            .get::<AttemptContext>()
            .map(AttemptContext::attempt)
            .or_else(|| extensions.get::<Attempt>().map(|a| a.0))
            .unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_context_and_a_bare_deadline_combine() {
        let now = Instant::now();
        let (near, far) = (now + Duration::from_secs(1), now + Duration::from_secs(9));
        let mut req = http::Request::new(());
        assert_eq!(Deadline::of(&req), None);
        assert_eq!(Attempt::of(&req), 1);
        req.extensions_mut()
            .insert(AttemptContext::new(2, Some(far)));
        assert_eq!(Deadline::of(&req), Some(far));
        assert_eq!(Attempt::of(&req), 2);
        req.extensions_mut().insert(Deadline(near));
        assert_eq!(Deadline::of(&req), Some(near), "the earlier wins");
        req.extensions_mut()
            .insert(AttemptContext::new(3, Some(now)));
        assert_eq!(Deadline::of(&req), Some(now));
        assert_eq!(
            AttemptContext::of(&req).map(AttemptContext::attempt),
            Some(3)
        );
    }

    #[test]
    fn a_verdict_belongs_to_its_attempt() {
        use crate::verdict::Verdict;
        use evenkeel_headers::RateLimits;

        let context = AttemptContext::new(1, None);
        let clone = context.clone();
        assert_eq!(context.outcome(), None, "nothing judged yet");
        clone.record(1, Verdict::response(Outcome::Success, RateLimits::new()));
        assert_eq!(context.outcome(), Some(Outcome::Success), "clones share it");
        assert_eq!(context.outcome_for(false), Some(Outcome::Success));
        assert_eq!(
            context.outcome_for(true),
            None,
            "a layer holding an error reads no response's verdict"
        );
        assert_eq!(context.begin_attempt(), 2);
        assert_eq!(context.outcome(), None, "a new attempt makes it stale");
        clone.record(
            1,
            Verdict::response(Outcome::ClientError, RateLimits::new()),
        );
        assert_eq!(
            context.outcome(),
            None,
            "a late verdict on attempt 1 is dropped"
        );
        let failed = Outcome::Failed(crate::FailureKind::Timeout.into());
        clone.record(2, Verdict::error(failed));
        assert_eq!(
            outcome_or(Some(&context), true, || Outcome::Success),
            failed
        );
        context.forget_verdict();
        assert_eq!(
            outcome_or(Some(&context), true, || Outcome::ClientError),
            Outcome::ClientError,
            "forgotten: the layer judges its own answer"
        );
        assert_eq!(
            outcome_or(None, false, || Outcome::Success),
            Outcome::Success
        );
    }

    #[test]
    fn a_kept_head_leaves_a_lone_context_out() {
        let mut parts = http::Request::new(()).into_parts().0;
        parts.extensions.insert(AttemptContext::new(1, None));
        let kept = keep_head(&mut parts);
        assert!(kept.extensions.is_empty(), "the copy leaves it out");
        assert!(AttemptContext::in_extensions(&parts.extensions).is_some());
        let context = AttemptContext::in_extensions(&parts.extensions).cloned();
        let again = resend_head(&kept, context.as_ref());
        assert!(AttemptContext::in_extensions(&again.extensions).is_some());
        // With other extensions, the copy keeps them all.
        parts.extensions.insert(Attempt(7));
        let kept = keep_head(&mut parts);
        assert_eq!(kept.extensions.get::<Attempt>(), Some(&Attempt(7)));
        assert!(AttemptContext::in_extensions(&kept.extensions).is_some());
    }
}
