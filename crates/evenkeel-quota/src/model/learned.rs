//! Quotas learned from the server's readings: a bucket that follows them,
//! and its refill rate, learned as a lower bound of the server's.

use std::collections::VecDeque;
use std::time::Duration;

use evenkeel_headers::{Dialect, Quota, Replenish, Resource};
use tokio::time::Instant;

use super::{EPSILON, MAX_WAIT, Params, Ticket, abs_diff, duration, reorder, secs};
use crate::store::{ResourceSnapshot, Source};

/// The shortest span an observed refill rate is measured over.
const MIN_SPAN: Duration = Duration::from_millis(250);

/// How far apart readings kept as observation anchors are.
const ANCHOR_GAP: Duration = Duration::from_millis(250);

/// How many anchors a dimension keeps (so spans reach about 4 s).
const ANCHORS: usize = 16;

/// A dimension learned from the server's headers.
///
/// On each reading (`remaining` R, `limit` L, reset after T, from the
/// response to request number `s`) the bucket is set to `R` minus the cost
/// of every request admitted after `s` (those are in flight, or decided
/// after the reading, and the server has not counted them yet). Between
/// readings it refills at the learned rate, and at the reset it jumps to `L`
/// minus what was admitted since the reading.
///
/// The learned refill rate is always a lower bound, so errors make the
/// client slower, never faster than the server: the best recent bound from
/// the reset field ([`bound_from_reset`](Self::bound_from_reset)) or from
/// observation ([`bound_from_observation`](Self::bound_from_observation)).
/// A fixed window with no known rate is [spread](Self::spread) until its
/// reset.
#[derive(Debug)]
pub(crate) struct Learned {
    pub(crate) resource: Resource,
    policy: Option<Box<str>>,
    dialect: Dialect,
    /// The cost field it counts.
    pub(crate) field: usize,
    replenish: Replenish,
    /// The limit the server reported, if any.
    limit: Option<u64>,
    /// The bucket's size: the limit, or the most seen remaining.
    capacity: f64,
    tokens: f64,
    /// The refill applied between readings (the rate, or a spreading rate).
    refill: f64,
    /// Refill stops at this level (the capacity, or the spreading burst).
    ceiling: f64,
    last: Instant,
    /// When the quota is back in full.
    full_at: Option<Instant>,
    /// How often the quota comes back in full after `full_at`.
    window: Duration,
    /// Admissions counted against the next full refill start after this
    /// cumulative cost.
    base_cum: u64,
    /// The learned refill rate (a lower bound; 0 when unknown).
    rate: f64,
    /// The best recent lower bounds of the rate: from the reset field, from
    /// observation. Each reading gives a valid bound, but a loose one when
    /// the bucket was full meanwhile (refill is lost then); the best of the
    /// last minute is the tightest.
    bounds: [Recent; 2],
    /// The newest reading applied.
    seq: u64,
    /// The reading applied.
    applied: Option<Reading>,
    anchors: VecDeque<Anchor>,
    synced_at: Instant,
    spreading: bool,
}

impl Learned {
    pub(crate) fn new(q: &Quota, field: usize, now: Instant) -> Self {
        Learned {
            resource: q.resource.clone(),
            policy: q.policy.as_deref().map(Box::from),
            dialect: q.dialect,
            field,
            replenish: q.replenish,
            limit: None,
            capacity: 0.0,
            tokens: 0.0,
            refill: 0.0,
            ceiling: 0.0,
            last: now,
            full_at: None,
            window: Duration::ZERO,
            base_cum: 0,
            rate: 0.0,
            bounds: [Recent::default(); 2],
            seq: 0,
            applied: None,
            anchors: VecDeque::new(),
            synced_at: now,
            spreading: false,
        }
    }

    /// Whether `q` is a reading of this dimension: the same resource and
    /// policy.
    pub(crate) fn follows(&self, q: &Quota) -> bool {
        self.resource == q.resource && self.policy.as_deref() == q.policy.as_deref()
    }

    /// Whether the last reading is too old to go by.
    pub(crate) fn is_stale(&self, now: Instant, params: &Params) -> bool {
        now.saturating_duration_since(self.synced_at) >= params.stale_after
    }

    fn is_window(&self) -> bool {
        self.replenish != Replenish::Gradual
    }

    pub(crate) fn advance(&mut self, now: Instant, cum_now: u64, params: &Params) {
        if now <= self.last {
            return;
        }
        if self.refill > 0.0 {
            let top = self.ceiling.max(self.tokens);
            let dt = secs(now - self.last);
            self.tokens = (self.tokens + dt * self.refill).min(top);
        }
        if let Some(full_at) = self.full_at.filter(|f| *f <= now) {
            let target = self.capacity - cum_now.saturating_sub(self.base_cum) as f64;
            self.base_cum = cum_now;
            let window = if self.window.is_zero() {
                params.default_window
            } else {
                self.window
            };
            let mut next = full_at + window;
            if next <= now {
                next = now + window;
            }
            self.full_at = Some(next);
            if self.spreading {
                self.spread(target, window, true, params);
            } else {
                self.tokens = self.tokens.max(target);
                self.refill = self.rate;
                self.ceiling = self.capacity;
            }
        }
        self.last = now;
    }

    /// Takes an admission's cost.
    pub(crate) fn take(&mut self, cost: u64) {
        self.tokens -= cost as f64;
    }

    /// Releases `amount` evenly over `over`: a burst at once (when
    /// `fresh`, else what is left of the current allowance), the rest at a
    /// steady rate.
    ///
    /// A fixed window (`Replenish::Window`) with no observed refill is
    /// spread this way: a tenth of the limit may go at once, the rest of
    /// what remains is released evenly until the reset, so a window's quota
    /// is not burnt in the first second and then waited out. A window
    /// dimension that is seen to refill before its reset is a bucket in
    /// disguise and is treated as one.
    fn spread(&mut self, amount: f64, over: Duration, fresh: bool, params: &Params) {
        let burst = (self.capacity * params.spread_burst).max(1.0);
        if over.is_zero() {
            self.tokens = amount;
            self.refill = 0.0;
            self.ceiling = self.capacity;
            return;
        }
        self.tokens = if fresh {
            burst.min(amount)
        } else {
            self.tokens.min(amount)
        };
        let rest = amount - self.tokens;
        self.refill = if rest > 0.0 { rest / secs(over) } else { 0.0 };
        self.ceiling = burst;
    }

    /// `remaining` as a reading of the response to `ticket`.
    fn reading(&self, ticket: &Ticket, remaining: f64) -> Reading {
        Reading {
            sent: ticket.at,
            remaining,
            cum: ticket.cum[self.field],
        }
    }

    /// Applies a reading of the response to `ticket`. One concurrent with
    /// the reading applied can only [lower](Self::lower) the estimate, an
    /// older one says nothing new; a newer one takes the limit, notes the
    /// rate bounds it gives, and [refills](Self::refill_from) the bucket from
    /// what it says is left.
    pub(crate) fn sync(&mut self, q: &Quota, ticket: &Ticket, s: KeyState, params: &Params) {
        let Some(remaining) = q.remaining else {
            return;
        };
        self.advance(s.now, s.cum_now, params);
        let limit = q.limit.filter(|&l| l > 0);
        let remaining = limit.map_or(remaining, |l| remaining.min(l));
        let reading = self.reading(ticket, remaining as f64);
        if self
            .applied
            .is_some_and(|applied| abs_diff(applied.sent, ticket.at) < s.reorder)
        {
            self.lower(ticket.seq, reading, s);
            return;
        }
        if ticket.seq <= self.seq {
            // Older than the reading applied.
            return;
        }
        self.take_limit(limit, remaining);
        self.replenish = q.replenish;
        let reset_at = q.reset_after.map(|d| s.now + d.min(params.max_reset));
        self.bound_from_reset(ticket, limit, remaining, reset_at, s.now);
        if s.observable {
            self.bound_from_observation(ticket, reading, reset_at, s);
        }
        self.rate = self.bounds[0].get().max(self.bounds[1].get());
        self.refill_from(reading, q.window, reset_at, s, params);
        self.seq = ticket.seq;
        self.applied = Some(reading);
        self.last = s.now;
        self.synced_at = s.now;
        self.dialect = q.dialect;
    }

    /// A reading concurrent with the one applied, so possibly older than it
    /// whatever the send order says: it can only lower the estimate.
    fn lower(&mut self, seq: u64, reading: Reading, s: KeyState) {
        self.tokens = self
            .tokens
            .min(reading.remaining - s.in_flight(reading.cum));
        if seq > self.seq {
            self.seq = seq;
            self.applied = Some(reading);
        }
    }

    /// Takes the reading's limit as the bucket's size. A changed limit (a
    /// new tier, a different model) starts learning over.
    fn take_limit(&mut self, limit: Option<u64>, remaining: u64) {
        // At least one: a quota that never allows anything would stop the key
        // for good; at its reset, one request goes and reads it again.
        let capacity = limit
            .map_or_else(|| self.capacity.max(remaining as f64), |l| l as f64)
            .max(1.0);
        if self.seq > 0 && limit.is_some() && limit != self.limit {
            self.rate = 0.0;
            self.bounds = [Recent::default(); 2];
            self.anchors.clear();
        }
        self.limit = limit.or(self.limit);
        self.capacity = capacity;
    }

    /// Notes the rate bound from the reset field, for token buckets
    /// (`Replenish::Gradual`): the deficit `L - R` refills by the reset,
    /// and `R` is rounded down, so the rate is at least `(L - R - 1) / T'`,
    /// where `T'` runs from when the request was sent (not when the answer
    /// came) to the reset instant.
    fn bound_from_reset(
        &mut self,
        ticket: &Ticket,
        limit: Option<u64>,
        remaining: u64,
        reset_at: Option<Instant>,
        now: Instant,
    ) {
        if self.replenish == Replenish::Gradual
            && let (Some(l), Some(at)) = (limit, reset_at)
        {
            let span = secs(at.saturating_duration_since(ticket.at));
            if span > 0.0 && l > remaining.saturating_add(1) {
                self.bounds[0].note((l - remaining - 1) as f64 / span, now);
            }
        }
    }

    /// Notes the rate bound observed since an earlier reading `a`, and keeps
    /// this reading as an anchor for later ones. Between `a` and this
    /// reading `b`, the server refilled at least
    /// `R_b - (R_a + 1) + cost admitted in (a, b]` in at most
    /// `arrival_b - sent_a`. This needs exact costs (requests always are;
    /// token costs when the estimator says so) and no request in between that
    /// the server may not have charged (a 429, a transport error): the key
    /// says when in `s`.
    fn bound_from_observation(
        &mut self,
        ticket: &Ticket,
        reading: Reading,
        reset_at: Option<Instant>,
        s: KeyState,
    ) {
        if let Some(observed) = self.observe(ticket, reading.remaining, s) {
            self.bounds[1].note(observed, s.now);
        }
        self.push_anchor(Anchor {
            seq: ticket.seq,
            sent: ticket.at,
            remaining: reading.remaining,
            cum: reading.cum,
            reset_at,
        });
    }

    /// The refill rate observed since the oldest usable anchor.
    fn observe(&self, ticket: &Ticket, remaining: f64, s: KeyState) -> Option<f64> {
        for a in &self.anchors {
            if a.seq <= s.clean_since || a.seq >= ticket.seq {
                continue;
            }
            // A window may reset between the readings: only readings sent
            // before the anchor's reset show refill.
            if self.is_window() && a.reset_at.is_none_or(|r| ticket.at >= r) {
                continue;
            }
            let span = s.now.saturating_duration_since(a.sent);
            if span < MIN_SPAN {
                return None;
            }
            // Requests between the two readings that may not be decided yet
            // do not count as spent.
            let spent = ticket.cum[self.field]
                .saturating_sub(a.cum)
                .saturating_sub(s.overtaken) as f64;
            return Some((remaining - a.remaining - 1.0 + spent) / secs(span));
        }
        None
    }

    fn push_anchor(&mut self, anchor: Anchor) {
        if self
            .anchors
            .back()
            .is_some_and(|last| anchor.sent < last.sent + ANCHOR_GAP)
        {
            return;
        }
        if self.anchors.len() == ANCHORS {
            self.anchors.pop_front();
        }
        if self.anchors.capacity() == 0 {
            self.anchors.reserve_exact(ANCHORS);
        }
        self.anchors.push_back(anchor);
    }

    /// Sets the bucket from a reading: what is available now, refilled at
    /// the learned rate (or, for a window with none, spread until the
    /// reset), and full again at the reset.
    fn refill_from(
        &mut self,
        reading: Reading,
        window: Option<Duration>,
        reset_at: Option<Instant>,
        s: KeyState,
        params: &Params,
    ) {
        let available = reading.remaining - s.in_flight(reading.cum);
        self.window = window
            .filter(|w| !w.is_zero())
            .or_else(|| (self.rate > 0.0).then(|| duration(self.capacity / self.rate)))
            .unwrap_or(params.default_window)
            .min(params.max_reset);
        let full_at = reset_at.unwrap_or(s.now + params.default_window);
        self.full_at = Some(full_at);
        self.base_cum = reading.cum.saturating_sub(s.overtaken);
        self.spreading = self.is_window() && self.rate == 0.0;
        if self.spreading {
            let over = full_at.saturating_duration_since(s.now);
            self.spread(available, over, self.seq == 0, params);
        } else {
            self.tokens = available;
            self.refill = self.rate;
            self.ceiling = self.capacity;
        }
    }

    /// Whether the response to `ticket`, reporting `remaining`, and the
    /// reading applied prove that the server decides requests out of the
    /// order they were sent in (see [`reorder::proof`]). Only exact, charged
    /// requests prove a reorder: requests, none of them refused in between
    /// (`last_uncharged` is the key's newest uncharged admission). Returns
    /// the gap between the two requests.
    pub(crate) fn reorder_proof(
        &self,
        ticket: &Ticket,
        remaining: u64,
        last_uncharged: u64,
    ) -> Option<Duration> {
        if self.field != 0 || ticket.seq.min(self.seq) <= last_uncharged {
            return None;
        }
        let reading = self.reading(ticket, remaining as f64);
        reorder::proof(self.applied?, reading, self.rate)
    }

    /// How long until `need` fits, for an admission now.
    pub(crate) fn time_until(&self, need: u64, cum_now: u64, now: Instant) -> Duration {
        if need == 0 {
            return Duration::ZERO;
        }
        // A request larger than the bucket goes when the bucket is full.
        let need = (need as f64).min(self.capacity.max(1.0));
        if self.tokens + EPSILON >= need {
            return Duration::ZERO;
        }
        let mut best = Duration::MAX;
        if self.refill > 0.0 && need <= self.ceiling.max(self.tokens) + EPSILON {
            best = duration((need - self.tokens) / self.refill);
        }
        if let Some(full_at) = self.full_at {
            let target = self.capacity - cum_now.saturating_sub(self.base_cum) as f64;
            let at = if target + EPSILON >= need {
                full_at
            } else {
                full_at + self.window
            };
            best = best.min(at.saturating_duration_since(now));
        }
        if best == Duration::MAX {
            MAX_WAIT
        } else {
            best
        }
    }

    /// How long `need` is certain to wait: [`time_until`](Self::time_until),
    /// but no later than the reset (the server's word), as the learned rate
    /// is a lower bound, not an expectation.
    pub(crate) fn eta(&self, need: u64, cum_now: u64, now: Instant) -> Duration {
        let wait = self.time_until(need, cum_now, now);
        let by_reset = self
            .full_at
            .map_or(wait, |f| f.saturating_duration_since(now));
        wait.min(by_reset)
    }

    pub(crate) fn refund(&mut self, cost: u64) {
        let top = self.capacity.max(self.ceiling);
        self.tokens = (self.tokens + cost as f64).min(top);
    }

    pub(crate) fn snapshot(&self) -> ResourceSnapshot {
        ResourceSnapshot {
            resource: self.resource.clone(),
            policy: self.policy.as_deref().map(str::to_owned),
            source: Source::Learned(self.dialect),
            limit: self.limit,
            remaining: self.tokens.max(0.0).floor() as u64,
            reset: self.full_at,
            rate: (self.rate > 0.0).then_some(self.rate),
            updated: Some(self.synced_at),
        }
    }
}

/// What [`Learned::sync`] needs from the key, as the reading arrives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyState {
    pub(crate) now: Instant,
    /// The key's cumulative cost in this dimension's field.
    pub(crate) cum_now: u64,
    /// The cost of the requests sent just before this reading's that are not
    /// answered yet: the server may decide them after it.
    pub(crate) overtaken: u64,
    /// The key's reorder window.
    pub(crate) reorder: Duration,
    /// Whether this reading's interval holds only exact costs.
    pub(crate) observable: bool,
    /// Anchors at or before this admission cannot be observed from.
    pub(crate) clean_since: u64,
}

impl KeyState {
    /// What the server had not counted when it read `cum`: the cost admitted
    /// since, and the requests it may have decided after.
    fn in_flight(&self, cum: u64) -> f64 {
        self.cum_now
            .saturating_sub(cum)
            .saturating_add(self.overtaken) as f64
    }
}

/// One reading of a dimension, placed in the key's sequence: when its
/// request was sent, what it reported left, and the key's cumulative cost
/// (in the dimension's field) right after its request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    pub(crate) sent: Instant,
    pub(crate) remaining: f64,
    pub(crate) cum: u64,
}

/// A reading kept to measure refill against later ones.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    seq: u64,
    sent: Instant,
    remaining: f64,
    cum: u64,
    reset_at: Option<Instant>,
}

/// The highest value noted in the current period or the previous one.
#[derive(Debug, Clone, Copy, Default)]
struct Recent {
    current: f64,
    previous: f64,
    since: Option<Instant>,
}

impl Recent {
    /// How long a period lasts.
    const PERIOD: Duration = Duration::from_secs(30);

    fn note(&mut self, value: f64, now: Instant) {
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= Self::PERIOD {
            self.previous = self.current;
            self.current = 0.0;
            self.since = Some(now);
        }
        if value > self.current {
            self.current = value;
        }
    }

    fn get(&self) -> f64 {
        self.current.max(self.previous)
    }
}
