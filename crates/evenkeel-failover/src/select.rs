//! Choosing an endpoint: the best tier with an endpoint available, then
//! power of two choices or round robin within it.

use std::ops::Range;
use std::sync::atomic::Ordering;

use crate::config::Selection;
use crate::endpoint::Meta;
use crate::outlier::Status;
use crate::registry::{Now, Registry};

/// Why an endpoint is passed over before its status is even considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// Consider it.
    No,
    /// This request already tried it, or its readiness failed.
    Tried,
    /// Its service is not ready: it counts as available but cannot be
    /// picked now.
    Busy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// Send to this index.
    One(usize),
    /// Every endpoint that could be picked is busy: wait.
    Busy,
    /// Nothing can take the request. `cooling` is the first endpoint in a
    /// cooldown and when (ticks) it comes back, if any endpoint is cooling.
    None { cooling: Option<(usize, u64)> },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Selected {
    pub(crate) pick: Pick,
    /// The first available endpoint of the best tier that has one,
    /// whatever was picked: where traffic belongs.
    pub(crate) preferred: Option<usize>,
}

/// Up to eight candidate indices without allocating; more spill to a `Vec`.
struct Candidates {
    inline: [usize; 8],
    len: usize,
    more: Vec<usize>,
}

impl Candidates {
    fn new() -> Self {
        Candidates {
            inline: [0; 8],
            len: 0,
            more: Vec::new(),
        }
    }

    fn push(&mut self, i: usize) {
        if self.len < self.inline.len() {
            self.inline[self.len] = i;
        } else {
            self.more.push(i);
        }
        self.len += 1;
    }

    fn get(&self, k: usize) -> usize {
        if k < self.inline.len() {
            self.inline[k]
        } else {
            self.more[k - self.inline.len()]
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.more.clear();
    }
}

impl<S> Registry<S> {
    /// Chooses an endpoint among `items` (sorted by tier) at `now`.
    ///
    /// In tier order: the first tier with an available endpoint that is not
    /// skipped wins; within it, [`Selection`] decides. An endpoint ramping
    /// up after an ejection is considered only with its ramp share. When no
    /// tier has one: a tier whose endpoints were passed over only by their
    /// ramp, else wait if some endpoint is busy, else fail open to the best
    /// tier with an ejected or unhealthy endpoint, else nothing.
    pub(crate) fn select<T>(
        &self,
        items: &[T],
        meta: impl Fn(&T) -> &Meta,
        skip: impl Fn(usize, &Meta) -> Skip,
        now: &Now,
    ) -> Selected {
        let mut preferred = None;
        let mut busy = false;
        let mut ramped: Option<Range<usize>> = None;
        let mut down: Option<Range<usize>> = None;
        let mut cooling: Option<(usize, u64)> = None;
        let mut candidates = Candidates::new();
        let mut start = 0;
        while start < items.len() {
            let tier = meta(&items[start]).tier;
            let mut end = start + 1;
            while end < items.len() && meta(&items[end]).tier == tier {
                end += 1;
            }
            let mut tier_busy = false;
            for (i, item) in items.iter().enumerate().take(end).skip(start) {
                let m = meta(item);
                let skipped = skip(i, m);
                if skipped == Skip::Tried {
                    continue;
                }
                match self.status(m, now) {
                    Status::Available { ramp } => {
                        preferred.get_or_insert(i);
                        if skipped == Skip::Busy {
                            tier_busy = true;
                        } else if ramp.is_some_and(|share| self.jitter.unit() >= share) {
                            ramped.get_or_insert(start..end);
                        } else {
                            candidates.push(i);
                        }
                    }
                    Status::Down => {
                        if skipped == Skip::No {
                            down.get_or_insert(start..end);
                        }
                    }
                    Status::Cooling { until } => {
                        if cooling.is_none_or(|(_, first)| until < first) {
                            cooling = Some((i, until));
                        }
                    }
                    Status::Draining => {}
                }
            }
            if candidates.len > 0 {
                let i = self.pick(items, &meta, &candidates);
                return Selected {
                    pick: Pick::One(i),
                    preferred,
                };
            }
            if tier_busy {
                busy = true;
                if !self.config.spill_when_busy {
                    return Selected {
                        pick: Pick::Busy,
                        preferred,
                    };
                }
            }
            start = end;
        }
        // Nothing available outright. Endpoints passed over by their ramp
        // are better than nothing.
        if let Some(range) = ramped {
            for i in range {
                let m = meta(&items[i]);
                if skip(i, m) == Skip::No && matches!(self.status(m, now), Status::Available { .. })
                {
                    candidates.push(i);
                }
            }
            if candidates.len > 0 {
                return Selected {
                    pick: Pick::One(self.pick(items, &meta, &candidates)),
                    preferred,
                };
            }
        }
        if busy {
            return Selected {
                pick: Pick::Busy,
                preferred,
            };
        }
        // Fail open: every endpoint is ejected, unhealthy or cooling down.
        // An ejected endpoint may have recovered; a cooling one surely
        // answers 429.
        if let Some(range) = down {
            candidates.clear();
            for i in range {
                let m = meta(&items[i]);
                if skip(i, m) == Skip::No && self.status(m, now) == Status::Down {
                    candidates.push(i);
                }
            }
            if candidates.len > 0 {
                return Selected {
                    pick: Pick::One(self.pick(items, &meta, &candidates)),
                    preferred,
                };
            }
        }
        Selected {
            pick: Pick::None { cooling },
            preferred,
        }
    }

    fn pick<T>(&self, items: &[T], meta: &impl Fn(&T) -> &Meta, candidates: &Candidates) -> usize {
        let n = candidates.len;
        if n == 1 {
            return candidates.get(0);
        }
        match self.config.selection {
            Selection::RoundRobin => candidates.get(self.rr.fetch_add(1, Ordering::Relaxed) % n),
            Selection::PowerOfTwoChoices => {
                let a = self.jitter.index(n);
                let mut b = self.jitter.index(n - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (candidates.get(a), candidates.get(b));
                if meta(&items[b]).in_flight() < meta(&items[a]).in_flight() {
                    b
                } else {
                    a
                }
            }
        }
    }
}
