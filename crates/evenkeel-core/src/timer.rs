//! A timer for waits that most requests never make.
//!
//! Several layers wait now and then (for quota, for a cooling endpoint, for
//! a stalled body) and not at all on the path most requests take. A
//! [`LazyTimer`] holds no timer until it is first armed, so that path
//! allocates nothing; once made, it is re-armed in place.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use std::time::Duration;

use tokio::time::{Instant, Sleep, sleep_until};

/// Where a wait too long to represent ends: about thirty years ahead.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// A tokio timer made on first use and re-armed in place.
///
/// Unarmed it never fires. It is `Unpin` (the timer is boxed), so it can sit
/// in any future or body without pinning.
///
/// ```
/// use std::time::Duration;
/// use evenkeel_core::timer::LazyTimer;
/// use tokio::time::Instant;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut timer = LazyTimer::new();
/// assert!(!timer.is_armed());
/// timer.arm(Instant::now() + Duration::from_secs(1));
/// std::future::poll_fn(|cx| {
///     if timer.poll_fired(cx) { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
/// })
/// .await;
/// # }
/// ```
#[derive(Debug, Default)]
pub struct LazyTimer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl LazyTimer {
    /// An unarmed timer; nothing is allocated until [`arm`](Self::arm).
    pub const fn new() -> Self {
        LazyTimer { sleep: None }
    }

    /// Arms the timer for `at`, making it on first use and resetting it in
    /// place afterwards.
    pub fn arm(&mut self, at: Instant) {
        match &mut self.sleep {
            Some(sleep) => {
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
            }
            None => self.sleep = Some(Box::pin(sleep_until(at))),
        }
    }

    /// Arms the timer for `after` from now on tokio's clock; a delay too
    /// long to represent arms it about thirty years ahead, as
    /// `tokio::time::sleep` does.
    ///
    /// ```
    /// use std::time::Duration;
    /// use evenkeel_core::timer::LazyTimer;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut timer = LazyTimer::new();
    /// timer.arm_in(Duration::MAX);
    /// assert!(timer.is_armed());
    /// # }
    /// ```
    pub fn arm_in(&mut self, after: Duration) {
        let now = crate::clock::now();
        let at = now.checked_add(after).unwrap_or_else(|| now + FAR_FUTURE);
        self.arm(at);
    }

    /// Disarms the timer (it keeps nothing).
    pub fn disarm(&mut self) {
        self.sleep = None;
    }

    /// Whether the timer is armed.
    pub fn is_armed(&self) -> bool {
        self.sleep.is_some()
    }

    /// Polls the timer: `true` once it fired, `false` while it has not
    /// (the task is woken when it does) or when it is unarmed.
    pub fn poll_fired(&mut self, cx: &mut Context<'_>) -> bool {
        self.sleep
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }
}
