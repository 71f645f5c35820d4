//! The permit gate: a counting semaphore whose size can change at any time,
//! with a FIFO queue of waiters that may be bounded.
//!
//! The fast path (nobody waiting, room under the limit) is one
//! compare-and-swap on `in_flight`. Waiters live in a slab inside a short
//! mutex; a released permit is handed straight to the oldest waiter, so a
//! newcomer cannot overtake the queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// A place in the queue: a slab index and the generation it was issued in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitKey {
    index: usize,
    generation: u64,
}

/// Why a permit could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueFull;

#[derive(Debug)]
pub(crate) struct Gate {
    limit: AtomicUsize,
    in_flight: AtomicUsize,
    /// Waiters in the queue, plus callers checking for room under the lock.
    queued: AtomicUsize,
    rejected: AtomicU64,
    max_queue: usize,
    waiters: Mutex<Waiters>,
}

#[derive(Debug, Default)]
struct Waiters {
    slots: Vec<Slot>,
    free: Vec<usize>,
    order: VecDeque<WaitKey>,
    /// Live (not cancelled, not granted) entries in `order`.
    live: usize,
    next_generation: u64,
}

#[derive(Debug)]
struct Slot {
    generation: u64,
    state: SlotState,
}

#[derive(Debug)]
enum SlotState {
    Free,
    Waiting(Option<Waker>),
    Granted,
}

impl Gate {
    pub(crate) fn new(limit: usize, max_queue: usize) -> Self {
        Gate {
            limit: AtomicUsize::new(limit),
            in_flight: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            max_queue,
            waiters: Mutex::new(Waiters::default()),
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Acquire)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub(crate) fn queued(&self) -> usize {
        self.waiters.lock().live
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    pub(crate) fn count_rejection(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a permit if one is free under the limit.
    #[inline]
    fn try_take(&self) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        let mut current = self.in_flight.load(Ordering::SeqCst);
        loop {
            if current >= limit {
                return false;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Acquires a permit, queueing when none is free.
    ///
    /// `key` is the caller's place in the queue: `None` before the first
    /// call, kept between calls while pending, and `None` again once the
    /// permit is granted. A caller that gives up must pass its key to
    /// [`cancel`](Gate::cancel).
    pub(crate) fn poll_acquire(
        &self,
        key: &mut Option<WaitKey>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), QueueFull>> {
        if let Some(k) = *key {
            let mut w = self.waiters.lock();
            let slot = &mut w.slots[k.index];
            debug_assert_eq!(slot.generation, k.generation);
            return match &mut slot.state {
                SlotState::Granted => {
                    w.release_slot(k.index);
                    *key = None;
                    Poll::Ready(Ok(()))
                }
                SlotState::Waiting(waker) => {
                    match waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => *waker = Some(cx.waker().clone()),
                    }
                    Poll::Pending
                }
                SlotState::Free => unreachable!("a waiting key points at a free slot"),
            };
        }

        // Fast path: nobody is queued and there is room.
        if self.queued.load(Ordering::SeqCst) == 0 && self.try_take() {
            return Poll::Ready(Ok(()));
        }

        let mut w = self.waiters.lock();
        // Announce interest before the final check, so a release that
        // happens after the check sees a waiter and comes for the lock.
        self.queued.fetch_add(1, Ordering::SeqCst);
        if w.live == 0 && self.try_take() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Poll::Ready(Ok(()));
        }
        if w.live >= self.max_queue {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Poll::Ready(Err(QueueFull));
        }
        let k = w.push(cx.waker().clone());
        *key = Some(k);
        Poll::Pending
    }

    /// Gives up a place in the queue. A permit granted in the meantime is
    /// released.
    pub(crate) fn cancel(&self, key: WaitKey) {
        let granted = {
            let mut w = self.waiters.lock();
            let slot = &mut w.slots[key.index];
            debug_assert_eq!(slot.generation, key.generation);
            let granted = matches!(slot.state, SlotState::Granted);
            if !granted {
                w.live -= 1;
                self.queued.fetch_sub(1, Ordering::SeqCst);
            }
            w.release_slot(key.index);
            w.compact();
            granted
        };
        if granted {
            self.release();
        }
    }

    /// Returns a permit and hands free room to the oldest waiters.
    pub(crate) fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.queued.load(Ordering::SeqCst) > 0 {
            self.grant();
        }
    }

    /// Changes the limit; room it opens goes to waiters.
    pub(crate) fn set_limit(&self, limit: usize) {
        let old = self.limit.swap(limit, Ordering::AcqRel);
        if limit > old && self.queued.load(Ordering::SeqCst) > 0 {
            self.grant();
        }
    }

    fn grant(&self) {
        loop {
            let waker = {
                let mut w = self.waiters.lock();
                let Some(k) = w.front_live() else { return };
                if !self.try_take() {
                    return;
                }
                w.order.pop_front();
                w.live -= 1;
                self.queued.fetch_sub(1, Ordering::SeqCst);
                let slot = &mut w.slots[k.index];
                match std::mem::replace(&mut slot.state, SlotState::Granted) {
                    SlotState::Waiting(waker) => waker,
                    _ => unreachable!("front_live returns waiting slots"),
                }
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

impl Waiters {
    fn push(&mut self, waker: Waker) -> WaitKey {
        let generation = self.next_generation;
        self.next_generation += 1;
        let state = SlotState::Waiting(Some(waker));
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = Slot { generation, state };
                index
            }
            None => {
                self.slots.push(Slot { generation, state });
                self.slots.len() - 1
            }
        };
        let key = WaitKey { index, generation };
        self.order.push_back(key);
        self.live += 1;
        key
    }

    fn release_slot(&mut self, index: usize) {
        self.slots[index].state = SlotState::Free;
        self.free.push(index);
    }

    /// The oldest entry still waiting; cancelled entries ahead of it are
    /// dropped on the way.
    fn front_live(&mut self) -> Option<WaitKey> {
        while let Some(&k) = self.order.front() {
            let slot = &self.slots[k.index];
            if slot.generation == k.generation && matches!(slot.state, SlotState::Waiting(_)) {
                return Some(k);
            }
            self.order.pop_front();
        }
        None
    }

    /// Keeps cancelled entries from piling up behind a queue that does not
    /// move.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.live + 16 {
            let slots = &self.slots;
            self.order.retain(|k| {
                let slot = &slots[k.index];
                slot.generation == k.generation && matches!(slot.state, SlotState::Waiting(_))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    fn flag() -> (Arc<Flag>, Waker) {
        let f = Arc::new(Flag(false.into()));
        (f.clone(), Waker::from(f))
    }

    #[test]
    fn fifo_handoff_and_limit_changes() {
        let gate = Gate::new(1, usize::MAX);
        let (_, w0) = flag();
        let mut cx0 = Context::from_waker(&w0);
        let mut k0 = None;
        assert_eq!(gate.poll_acquire(&mut k0, &mut cx0), Poll::Ready(Ok(())));

        let (f1, w1) = flag();
        let (f2, w2) = flag();
        let mut k1 = None;
        let mut k2 = None;
        assert!(
            gate.poll_acquire(&mut k1, &mut Context::from_waker(&w1))
                .is_pending()
        );
        assert!(
            gate.poll_acquire(&mut k2, &mut Context::from_waker(&w2))
                .is_pending()
        );
        assert_eq!(gate.queued(), 2);

        // A newcomer cannot overtake the queue even when room appears.
        gate.release();
        assert!(f1.0.load(Ordering::SeqCst));
        assert!(!f2.0.load(Ordering::SeqCst));
        let mut k3 = None;
        let (_, w3) = flag();
        assert!(
            gate.poll_acquire(&mut k3, &mut Context::from_waker(&w3))
                .is_pending()
        );
        assert_eq!(
            gate.poll_acquire(&mut k1, &mut Context::from_waker(&w1)),
            Poll::Ready(Ok(()))
        );
        assert_eq!(gate.in_flight(), 1);

        // Raising the limit wakes the next in line.
        gate.set_limit(2);
        assert!(f2.0.load(Ordering::SeqCst));
        assert_eq!(gate.in_flight(), 2);
        // Cancelling a granted place returns its permit to the next waiter.
        gate.cancel(k2.unwrap());
        assert_eq!(gate.in_flight(), 2, "k3 got the returned permit");
        gate.cancel(k3.unwrap());
        assert_eq!(gate.in_flight(), 1);
        assert_eq!(gate.queued(), 0);
    }

    #[test]
    fn bounded_queue_refuses() {
        let gate = Gate::new(1, 1);
        let (_, w) = flag();
        let mut cx = Context::from_waker(&w);
        assert_eq!(gate.poll_acquire(&mut None, &mut cx), Poll::Ready(Ok(())));
        let mut k = None;
        assert!(gate.poll_acquire(&mut k, &mut cx).is_pending());
        assert_eq!(
            gate.poll_acquire(&mut None, &mut cx),
            Poll::Ready(Err(QueueFull))
        );
        gate.cancel(k.unwrap());
        let reject_at_once = Gate::new(1, 0);
        assert_eq!(
            reject_at_once.poll_acquire(&mut None, &mut cx),
            Poll::Ready(Ok(()))
        );
        assert_eq!(
            reject_at_once.poll_acquire(&mut None, &mut cx),
            Poll::Ready(Err(QueueFull))
        );
    }

    #[test]
    fn lowering_the_limit_holds_new_permits_until_in_flight_drops() {
        let gate = Gate::new(3, usize::MAX);
        let (_, w) = flag();
        let mut cx = Context::from_waker(&w);
        for _ in 0..3 {
            assert_eq!(gate.poll_acquire(&mut None, &mut cx), Poll::Ready(Ok(())));
        }
        gate.set_limit(1);
        let mut k = None;
        assert!(gate.poll_acquire(&mut k, &mut cx).is_pending());
        gate.release();
        gate.release();
        assert_eq!(gate.in_flight(), 1);
        assert!(gate.poll_acquire(&mut k, &mut cx).is_pending());
        gate.release();
        assert_eq!(gate.poll_acquire(&mut k, &mut cx), Poll::Ready(Ok(())));
    }
}
