//! What evenkeel layers tell the layers below them about a request.
//!
//! One value travels down the stack with every attempt: the
//! [`AttemptContext`], in the request's extensions. The layer that resends
//! (the retry layer) puts it there before each attempt; every layer below
//! that waits or decides reads it: a quota layer fails at once rather than
//! hold a request past its deadline, a failover layer does not start an
//! attempt that cannot finish, per-attempt metrics label the attempt.
//! Because it is part of the request, it crosses anything a request
//! crosses, `tower::buffer::Buffer`'s worker task included.

use tokio::time::Instant;

/// What one attempt of a logical request carries down the stack.
///
/// Set by the layer that owns the total deadline and the attempt count (the
/// retry layer), once per attempt, in the request's extensions. Read it
/// with [`AttemptContext::of`], or through [`Deadline::of`] and
/// [`Attempt::of`], which also honour a bare [`Deadline`] or [`Attempt`]
/// that a caller put in the extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AttemptContext {
    /// Which attempt this is, starting at 1. Only attempts that go on the
    /// wire count: a wait the stack imposes on itself is not an attempt.
    pub attempt: u32,
    /// The instant by which the caller needs an answer, if any: it covers
    /// every queue inside the stack and the response body.
    pub deadline: Option<Instant>,
}

impl AttemptContext {
    /// The context of attempt `attempt` under `deadline`.
    pub fn new(attempt: u32, deadline: Option<Instant>) -> Self {
        AttemptContext { attempt, deadline }
    }

    /// The context in `request`'s extensions, if a layer above set one.
    pub fn of<B>(request: &http::Request<B>) -> Option<&AttemptContext> {
        request.extensions().get::<AttemptContext>()
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
            .map(|c| c.attempt)
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
        assert_eq!(AttemptContext::of(&req).map(|c| c.attempt), Some(3));
    }
}
