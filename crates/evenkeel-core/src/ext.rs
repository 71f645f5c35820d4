//! What evenkeel layers tell the layers below them about a request.

use std::cell::Cell;

use tokio::time::Instant;

thread_local! {
    static SCOPED_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The instant by which the caller needs an answer.
///
/// Set by the layer that owns the total deadline (the retry layer, or the
/// preset's deadline), read by layers below it that would otherwise wait:
/// a quota layer fails at once rather than hold a request past its deadline,
/// a failover layer does not start an attempt that cannot finish.
///
/// A deadline reaches the layers below in one of two ways:
///
/// - in the request's extensions, where anyone can put one
///   (`request.extensions_mut().insert(Deadline(instant))`);
/// - in the *scope* of a call: [`Deadline::scope`] makes a deadline visible
///   to everything that runs inside it on the same thread, which is how the
///   retry layer passes its deadline down while it calls and polls the
///   inner service. This costs no allocation, but it does not cross a
///   spawned task (such as tower's `Buffer` worker).
///
/// [`Deadline::of`] reads both and returns the earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// The deadline of `request`: the earlier of its extension and the
    /// current scope's, if either is set.
    pub fn of<B>(request: &http::Request<B>) -> Option<Instant> {
        let ext = request.extensions().get::<Deadline>().map(|d| d.0);
        earlier(ext, Deadline::current())
    }

    /// The deadline in request `parts`, or the current scope's: the earlier.
    pub fn of_parts(parts: &http::request::Parts) -> Option<Instant> {
        let ext = parts.extensions.get::<Deadline>().map(|d| d.0);
        earlier(ext, Deadline::current())
    }

    /// The deadline of the current scope, if any (see [`Deadline::scope`]).
    pub fn current() -> Option<Instant> {
        SCOPED_DEADLINE.with(Cell::get)
    }

    /// Runs `f` with `deadline` as the current scope's deadline (the earlier
    /// of it and any enclosing one), restoring the previous one afterwards,
    /// even if `f` panics.
    #[inline]
    pub fn scope<R>(deadline: Option<Instant>, f: impl FnOnce() -> R) -> R {
        match deadline {
            None => f(),
            Some(deadline) => Deadline::scope_slow(deadline, f),
        }
    }

    fn scope_slow<R>(deadline: Instant, f: impl FnOnce() -> R) -> R {
        let deadline = Some(deadline);
        struct Restore(Option<Instant>);
        impl Drop for Restore {
            fn drop(&mut self) {
                SCOPED_DEADLINE.with(|d| d.set(self.0));
            }
        }
        let previous = SCOPED_DEADLINE.with(|d| d.replace(earlier(deadline, d.get())));
        let _restore = Restore(previous);
        f()
    }
}

fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Which attempt of a logical request this is, starting at 1.
///
/// Set by layers that resend (retry, failover) on every attempt after the
/// first, so layers below can tell first attempts from retries (per-attempt
/// metrics, logs). Absent on first attempts, which costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attempt(pub u32);

impl Attempt {
    /// The attempt number of `request`; 1 when no layer set it.
    pub fn of<B>(request: &http::Request<B>) -> u32 {
        request.extensions().get::<Attempt>().map_or(1, |a| a.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn scopes_nest_and_restore() {
        let now = Instant::now();
        let (near, far) = (now + Duration::from_secs(1), now + Duration::from_secs(9));
        let req = http::Request::new(());
        assert_eq!(Deadline::of(&req), None);
        Deadline::scope(Some(far), || {
            assert_eq!(Deadline::of(&req), Some(far));
            Deadline::scope(Some(near), || assert_eq!(Deadline::current(), Some(near)));
            // An inner scope cannot extend an outer deadline.
            Deadline::scope(Some(far + Duration::from_secs(1)), || {
                assert_eq!(Deadline::current(), Some(far))
            });
            assert_eq!(Deadline::current(), Some(far));
        });
        assert_eq!(Deadline::current(), None);

        let mut req = http::Request::new(());
        req.extensions_mut().insert(Deadline(near));
        Deadline::scope(Some(far), || assert_eq!(Deadline::of(&req), Some(near)));

        let caught = std::panic::catch_unwind(|| Deadline::scope(Some(near), || panic!("boom")));
        assert!(caught.is_err());
        assert_eq!(Deadline::current(), None, "restored after a panic");
    }
}
