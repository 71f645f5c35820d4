//! The quota model of one key: what the in-memory store keeps and decides
//! with. Pure arithmetic on tokio instants; no locks, no I/O.
//!
//! Each metered dimension is a bucket of `tokens` that admissions take from:
//!
//! - a *declared* dimension ([`StaticQuota`]) is a local token bucket that
//!   starts full and refills at its declared rate;
//! - a *learned* dimension follows the server's readings. On each reading
//!   (`remaining` R, `limit` L, reset after T, from the response to request
//!   number `s`) the bucket is set to `R` minus the cost of every request
//!   admitted after `s` (those are in flight, or decided after the reading,
//!   and the server has not counted them yet). Between readings it refills
//!   at the learned rate, and at the reset it jumps to `L` minus what was
//!   admitted since the reading.
//!
//! The learned refill rate is always a lower bound, so errors make the
//! client slower, never faster than the server:
//!
//! - from the reset field, for token buckets (`Replenish::Gradual`): the
//!   deficit `L - R` refills in `T`, and `R` is rounded down, so the rate is
//!   at least `(L - R - 1) / T'`, where `T'` runs from when the request was
//!   sent (not when the answer came) to the reset instant;
//! - from observation, between two readings `a` and `b` of the same
//!   dimension: the server refilled at least
//!   `R_b - (R_a + 1) + cost admitted in (a, b]` in at most
//!   `arrival_b - sent_a`. This needs exact costs (requests always are;
//!   token costs when the estimator says so) and no request in between that
//!   the server may not have charged (a 429, a transport error).
//!
//! Requests normally reach the server in the order they were sent, so a
//! reading from request `s` counts everything sent before `s`, except
//! requests sent at the same moment (within a millisecond: one burst),
//! which may overtake each other on the way. Those are *concurrent*: a
//! reading also discounts the concurrent requests sent before it that are
//! not answered yet, and a reading concurrent with the one applied can only
//! lower the estimate. Where the server shows a wider reorder (two
//! requests sent a few milliseconds apart, the later one reporting more
//! left than the earlier one's reading allows), the concurrency window
//! widens to cover it.
//!
//! A fixed window (`Replenish::Window`) with no observed refill is spread:
//! a tenth of the limit may go at once, the rest of what remains is
//! released evenly until the reset, so a window's quota is not burnt in the
//! first second and then waited out. A window dimension that is seen to
//! refill before its reset is a bucket in disguise and is treated as one.

use std::collections::VecDeque;
use std::time::Duration;

use evenkeel_headers::{Dialect, Quota, RateLimits, Replenish, Resource};
use tokio::time::Instant;

use crate::cost::{Cost, FIELDS, field_of};
use crate::declared::StaticQuota;
use crate::store::{Charged, Report, ResourceSnapshot, Shortage, Source};

/// The longest wait the model computes: keeps instant arithmetic far from
/// overflow whatever the headers say.
const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Float slack, so that waiting exactly the computed time is enough.
const EPSILON: f64 = 1e-9;

/// The shortest span an observed refill rate is measured over.
const MIN_SPAN: Duration = Duration::from_millis(250);

/// How far apart readings kept as observation anchors are.
const ANCHOR_GAP: Duration = Duration::from_millis(250);

/// How many anchors a dimension keeps (so spans reach about 4 s).
const ANCHORS: usize = 16;

/// Two requests sent at most this far apart whose readings contradict their
/// order prove that the server decides requests out of the order they were
/// sent in.
const REORDER_PROOF: Duration = Duration::from_millis(5);

/// Requests sent within this of each other (one burst) are concurrent until
/// the server shows a wider reorder; also added to a proven reorder's gap.
const REORDER_SLACK: Duration = Duration::from_millis(1);

/// The widest reorder window learned.
const REORDER_CAP: Duration = Duration::from_millis(250);

/// A reorder window not confirmed for this long is dropped.
const REORDER_MEMORY: Duration = Duration::from_secs(300);

/// Tuning shared by every key of a store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    /// Longest reset taken from a header.
    pub(crate) max_reset: Duration,
    /// Longest cooldown taken from a server's wait.
    pub(crate) max_cooldown: Duration,
    /// When a reading says nothing about its reset: assume the quota is back
    /// after this long.
    pub(crate) default_window: Duration,
    /// The share of a window's limit that may go at once when spreading.
    pub(crate) spread_burst: f64,
    /// A learned dimension with no reading for this long is forgotten.
    pub(crate) stale_after: Duration,
}

/// The seconds in `d`.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The time between two instants, either way round.
fn abs_diff(a: Instant, b: Instant) -> Duration {
    a.saturating_duration_since(b)
        .max(b.saturating_duration_since(a))
}

/// `s` seconds, rounded up to the microsecond (float noise below a
/// millionth of a microsecond aside, so that 1 ms computed as 1.000…01 ms
/// stays 1 ms), within `[0, MAX_WAIT]`.
pub(crate) fn duration(s: f64) -> Duration {
    if s.is_nan() || s <= 0.0 {
        return Duration::ZERO;
    }
    let micros = (s * 1e6 - 1e-6).ceil();
    if micros >= MAX_WAIT.as_micros() as f64 {
        return MAX_WAIT;
    }
    Duration::from_micros(micros.max(0.0) as u64)
}

/// What an admitted request holds: its place in the key's sequence and what
/// it cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) seq: u64,
    /// The key's cumulative cost per field right after this admission.
    pub(crate) cum: [u64; FIELDS],
    pub(crate) cost: [u64; FIELDS],
    pub(crate) at: Instant,
    /// The time since the key's previous admission.
    pub(crate) gap: Duration,
}

/// The model of one key.
#[derive(Debug)]
pub(crate) struct KeyModel {
    seq: u64,
    cum: [u64; FIELDS],
    /// The newest admission that the server may not have charged (a 429, a
    /// transport error, a cancellation): observations must not span it.
    last_uncharged: u64,
    /// The newest admission with estimated (not exact) token costs.
    last_inexact: u64,
    /// Admissions not answered yet, in order, with their costs. A reading
    /// from request `s` does not count those before `s` that the server
    /// decided after it (requests overtake each other on the way).
    outstanding: VecDeque<(u64, Instant, [u64; FIELDS])>,
    last_admission: Option<Instant>,
    /// The learned reorder window (zero: requests are decided in the order
    /// they are sent), and when it was last confirmed.
    reorder: Duration,
    reorder_seen: Option<Instant>,
    cooldown: Option<(Instant, Resource)>,
    /// Admissions up to this number were in flight when the last cooldown
    /// began: their 429s do not start another.
    cooldown_seq: u64,
    declared: Vec<Declared>,
    learned: Vec<Learned>,
}

impl KeyModel {
    pub(crate) fn new(quotas: &[StaticQuota], now: Instant) -> Self {
        KeyModel {
            seq: 0,
            cum: [0; FIELDS],
            last_uncharged: 0,
            last_inexact: 0,
            outstanding: VecDeque::new(),
            last_admission: None,
            reorder: REORDER_SLACK,
            reorder_seen: None,
            cooldown: None,
            cooldown_seq: 0,
            declared: quotas
                .iter()
                .filter_map(|q| Declared::new(q, now))
                .collect(),
            learned: Vec::new(),
        }
    }

    fn advance(&mut self, now: Instant, params: &Params) {
        for d in &mut self.declared {
            d.advance(now);
        }
        let cum = self.cum;
        self.learned
            .retain(|d| now.saturating_duration_since(d.synced_at) < params.stale_after);
        for d in &mut self.learned {
            d.advance(now, cum[d.field], params);
        }
        if self
            .cooldown
            .as_ref()
            .is_some_and(|(until, _)| *until <= now)
        {
            self.cooldown = None;
        }
        if self
            .reorder_seen
            .is_some_and(|seen| now.saturating_duration_since(seen) > REORDER_MEMORY)
        {
            self.reorder = REORDER_SLACK;
            self.reorder_seen = None;
        }
    }

    /// Admits `cost` now, or says what is short and until when.
    pub(crate) fn reserve(
        &mut self,
        cost: &Cost,
        now: Instant,
        params: &Params,
    ) -> Result<Ticket, Shortage> {
        self.advance(now, params);
        if let Some(short) = self.reserve_wait(cost, now) {
            return Err(short);
        }
        let fields = cost.fields();
        for d in &mut self.declared {
            d.tokens -= fields[d.field] as f64;
        }
        for d in &mut self.learned {
            d.tokens -= fields[d.field] as f64;
        }
        self.seq += 1;
        for (c, f) in self.cum.iter_mut().zip(fields) {
            *c = c.saturating_add(f);
        }
        if !cost.is_exact() && fields[1..].iter().any(|&f| f > 0) {
            self.last_inexact = self.seq;
        }
        self.outstanding.push_back((self.seq, now, fields));
        let gap = self
            .last_admission
            .map_or(Duration::MAX, |last| now.saturating_duration_since(last));
        self.last_admission = Some(now);
        Ok(Ticket {
            seq: self.seq,
            cum: self.cum,
            cost: fields,
            at: now,
            gap,
        })
    }

    /// What is short for admitting `cost` now (the model advanced to now).
    fn reserve_wait(&self, cost: &Cost, now: Instant) -> Option<Shortage> {
        if let Some((until, resource)) = &self.cooldown {
            return Some(Shortage::new(*until, resource.clone(), true));
        }
        let fields = cost.fields();
        let mut worst: Option<(Duration, &Resource)> = None;
        let mut note = |wait: Duration, resource| {
            if !wait.is_zero() && worst.is_none_or(|(w, _)| wait > w) {
                worst = Some((wait, resource));
            }
        };
        for d in &self.declared {
            note(d.time_until(fields[d.field]), &d.resource);
        }
        for d in &self.learned {
            note(
                d.time_until(fields[d.field], self.cum[d.field], now),
                &d.resource,
            );
        }
        worst.map(|(wait, resource)| Shortage::new(now + wait, resource.clone(), false))
    }

    /// When `cost`, queued behind `ahead`, is expected to fit: `None` if
    /// nothing certain says it must wait. Certain are a cooldown and the
    /// declared quotas (with the queue ahead: their rates are exact); a
    /// learned quota counts only for `cost` itself, and only up to its reset
    /// (the server's word), as its learned rate is a lower bound, not an
    /// expectation.
    pub(crate) fn estimate(
        &mut self,
        cost: &Cost,
        ahead: &Cost,
        now: Instant,
        params: &Params,
    ) -> Option<Shortage> {
        self.advance(now, params);
        let fields = cost.fields();
        let queued = ahead.fields();
        let mut worst: Option<(Duration, &Resource, bool)> = None;
        if let Some((until, resource)) = &self.cooldown {
            worst = Some((until.saturating_duration_since(now), resource, true));
        }
        let mut note = |wait: Duration, resource| {
            if !wait.is_zero() && worst.is_none_or(|(w, _, _)| wait > w) {
                worst = Some((wait, resource, false));
            }
        };
        for d in &self.declared {
            let need = fields[d.field].saturating_add(queued[d.field]);
            note(d.eta(need), &d.resource);
        }
        for d in &self.learned {
            let wait = d.time_until(fields[d.field], self.cum[d.field], now);
            let by_reset = d.full_at.map_or(wait, |f| f.saturating_duration_since(now));
            note(wait.min(by_reset), &d.resource);
        }
        worst
            .map(|(wait, resource, cooldown)| Shortage::new(now + wait, resource.clone(), cooldown))
    }

    /// A reservation that was not used: gives its cost back if it was never
    /// sent.
    pub(crate) fn release(&mut self, ticket: &Ticket, sent: bool, now: Instant, params: &Params) {
        self.advance(now, params);
        self.answered(ticket.seq);
        self.last_uncharged = self.last_uncharged.max(ticket.seq);
        if !sent {
            for d in &mut self.declared {
                d.refund(ticket.cost[d.field]);
            }
            for d in &mut self.learned {
                d.refund(ticket.cost[d.field]);
            }
        }
    }

    /// Learns from the response to `ticket`. Returns the end of a cooldown
    /// this response started.
    pub(crate) fn settle(
        &mut self,
        ticket: &Ticket,
        report: &Report<'_>,
        now: Instant,
        params: &Params,
    ) -> Option<Instant> {
        self.advance(now, params);
        self.answered(ticket.seq);
        if report.charged != Charged::Yes {
            self.last_uncharged = self.last_uncharged.max(ticket.seq);
        }
        if report.charged == Charged::No {
            for d in &mut self.declared {
                d.refund(ticket.cost[d.field]);
            }
        }
        for quota in report.limits.iter() {
            self.learn(quota, ticket, now, params);
        }
        let wait = report.cooldown?;
        if ticket.seq <= self.cooldown_seq {
            // In flight when the current cooldown began: already accounted.
            return None;
        }
        let until = now + wait.min(params.max_cooldown);
        let resource = exhausted(report.limits).unwrap_or(Resource::Requests);
        self.cooldown_seq = self.seq;
        match &mut self.cooldown {
            Some((current, _)) if *current >= until => None,
            slot => {
                *slot = Some((until, resource));
                Some(until)
            }
        }
    }

    /// Request `seq` is no longer outstanding.
    fn answered(&mut self, seq: u64) {
        if let Ok(i) = self.outstanding.binary_search_by_key(&seq, |(s, _, _)| *s) {
            self.outstanding.remove(i);
        }
    }

    /// The cost, in `field`, of the requests sent before `ticket` and
    /// concurrent with it that are not answered yet: the server may decide
    /// them after it.
    fn concurrent_before(&self, ticket: &Ticket, field: usize) -> u64 {
        let end = self
            .outstanding
            .partition_point(|(seq, _, _)| *seq < ticket.seq);
        self.outstanding
            .range(..end)
            .rev()
            .take_while(|(_, at, _)| ticket.at.saturating_duration_since(*at) < self.reorder)
            .map(|(_, _, cost)| cost[field])
            .fold(0, u64::saturating_add)
    }

    fn learn(&mut self, quota: &Quota, ticket: &Ticket, now: Instant, params: &Params) {
        let Some(field) = field_of(&quota.resource) else {
            return;
        };
        // Anthropic's Priority Tier reports its own limits next to the
        // standard ones; a request is served by one or the other.
        if quota.dialect == Dialect::Anthropic && quota.policy.as_deref() == Some("priority") {
            return;
        }
        if quota.remaining.is_none() {
            return;
        }
        let index = match self.learned.iter().position(|d| {
            d.resource == quota.resource && d.policy.as_deref() == quota.policy.as_deref()
        }) {
            Some(i) => i,
            None => {
                self.learned.push(Learned::new(quota, field, now));
                self.learned.len() - 1
            }
        };
        let observable = field == 0 || ticket.seq > self.last_inexact;
        let clean_since = self
            .last_uncharged
            .max(if field == 0 { 0 } else { self.last_inexact });
        let cum_now = self.cum[field];
        // Only exact, charged requests prove a reorder: requests, none of
        // them refused in between.
        let dim = &self.learned[index];
        if field == 0
            && ticket.seq.min(dim.seq) > self.last_uncharged
            && let Some(remaining) = quota.remaining
            && let Some(gap) = dim.reorder_proof(ticket, remaining as f64)
        {
            self.reorder = self.reorder.max(gap + REORDER_SLACK).min(REORDER_CAP);
            self.reorder_seen = Some(now);
        }
        let overtaken = self.concurrent_before(ticket, field);
        // With requests overtaking each other, a reading observes refill
        // only when nothing was sent just before it.
        let observable = observable && ticket.gap >= self.reorder;
        self.learned[index].sync(
            quota,
            ticket,
            Sync {
                now,
                cum_now,
                overtaken,
                reorder: self.reorder,
                observable,
                clean_since,
            },
            params,
        );
    }

    /// When the key has room for one request (and a token, where tokens are
    /// metered): `None` when it has room now.
    pub(crate) fn room_at(&mut self, now: Instant, params: &Params) -> Option<Instant> {
        self.advance(now, params);
        let probe = Cost::new()
            .with_tokens(1)
            .with_input_tokens(1)
            .with_output_tokens(1);
        self.reserve_wait(&probe, now).map(|s| s.until)
    }

    pub(crate) fn cooldown_until(&self) -> Option<Instant> {
        self.cooldown.as_ref().map(|(until, _)| *until)
    }

    pub(crate) fn snapshot(&mut self, now: Instant, params: &Params) -> Vec<ResourceSnapshot> {
        self.advance(now, params);
        let declared = self.declared.iter().map(|d| ResourceSnapshot {
            resource: d.resource.clone(),
            policy: None,
            source: Source::Declared,
            limit: Some(d.capacity as u64),
            remaining: d.tokens.max(0.0).floor() as u64,
            reset: None,
            rate: Some(d.rate),
            updated: None,
        });
        let learned = self.learned.iter().map(|d| ResourceSnapshot {
            resource: d.resource.clone(),
            policy: d.policy.as_deref().map(str::to_owned),
            source: Source::Learned(d.dialect),
            limit: d.limit,
            remaining: d.tokens.max(0.0).floor() as u64,
            reset: d.full_at,
            rate: (d.rate > 0.0).then_some(d.rate),
            updated: Some(d.synced_at),
        });
        declared.chain(learned).collect()
    }
}

/// The first resource a response says is exhausted.
fn exhausted(limits: &RateLimits) -> Option<Resource> {
    limits
        .iter()
        .find(|q| q.is_exhausted() && field_of(&q.resource).is_some())
        .map(|q| q.resource.clone())
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

/// A declared quota: a local token bucket.
#[derive(Debug)]
struct Declared {
    resource: Resource,
    field: usize,
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Declared {
    fn new(q: &StaticQuota, now: Instant) -> Option<Self> {
        let field = field_of(q.resource())?;
        let capacity = q.burst() as f64;
        Some(Declared {
            resource: q.resource().clone(),
            field,
            capacity,
            rate: q.rate(),
            tokens: capacity,
            last: now,
        })
    }

    fn advance(&mut self, now: Instant) {
        let dt = secs(now.saturating_duration_since(self.last));
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        self.last = self.last.max(now);
    }

    fn time_until(&self, need: u64) -> Duration {
        if need == 0 {
            return Duration::ZERO;
        }
        // A request larger than the bucket goes when the bucket is full.
        let need = (need as f64).min(self.capacity);
        if self.tokens + EPSILON >= need {
            return Duration::ZERO;
        }
        duration((need - self.tokens) / self.rate)
    }

    fn eta(&self, need: u64) -> Duration {
        if need == 0 || self.tokens + EPSILON >= need as f64 {
            return Duration::ZERO;
        }
        duration((need as f64 - self.tokens) / self.rate)
    }

    fn refund(&mut self, cost: u64) {
        self.tokens = (self.tokens + cost as f64).min(self.capacity);
    }
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

/// What [`Learned::sync`] needs from the key.
#[derive(Debug, Clone, Copy)]
struct Sync {
    now: Instant,
    /// The key's cumulative cost in this dimension's field.
    cum_now: u64,
    /// The cost of the requests sent just before this reading's that are not
    /// answered yet: the server may decide them after it.
    overtaken: u64,
    /// The key's reorder window.
    reorder: Duration,
    /// Whether this reading's interval holds only exact costs.
    observable: bool,
    /// Anchors at or before this admission cannot be observed from.
    clean_since: u64,
}

/// A dimension learned from the server's headers.
#[derive(Debug)]
struct Learned {
    resource: Resource,
    policy: Option<Box<str>>,
    dialect: Dialect,
    field: usize,
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
    /// The reading applied: when its request was sent, what it reported
    /// left, and the key's cumulative cost after its request.
    applied: Option<(Instant, f64, u64)>,
    anchors: VecDeque<Anchor>,
    synced_at: Instant,
    spreading: bool,
}

impl Learned {
    fn new(q: &Quota, field: usize, now: Instant) -> Self {
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

    fn is_window(&self) -> bool {
        self.replenish != Replenish::Gradual
    }

    fn advance(&mut self, now: Instant, cum_now: u64, params: &Params) {
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

    /// Releases `amount` evenly over `over`: a burst at once (when
    /// `fresh`, else what is left of the current allowance), the rest at a
    /// steady rate.
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

    /// Applies a reading.
    fn sync(&mut self, q: &Quota, ticket: &Ticket, s: Sync, params: &Params) {
        let Some(remaining) = q.remaining else {
            return;
        };
        self.advance(s.now, s.cum_now, params);
        let limit = q.limit.filter(|&l| l > 0);
        let remaining = limit.map_or(remaining, |l| remaining.min(l));
        let cost_field = ticket.cum[self.field];
        let concurrent = self
            .applied
            .is_some_and(|(at, _, _)| abs_diff(at, ticket.at) < s.reorder);
        if ticket.seq <= self.seq || concurrent {
            // An older reading than the one applied, or one that may be: it
            // can only lower the estimate.
            if concurrent {
                let in_flight = s
                    .cum_now
                    .saturating_sub(cost_field)
                    .saturating_add(s.overtaken);
                self.tokens = self.tokens.min(remaining as f64 - in_flight as f64);
                if ticket.seq > self.seq {
                    self.seq = ticket.seq;
                    self.applied = Some((ticket.at, remaining as f64, cost_field));
                }
            }
            return;
        }
        // At least one: a quota that never allows anything would stop the key
        // for good; at its reset, one request goes and reads it again.
        let capacity = limit
            .map_or_else(|| self.capacity.max(remaining as f64), |l| l as f64)
            .max(1.0);
        if self.seq > 0 && limit.is_some() && limit != self.limit {
            // The limit changed (a new tier, a different model): start over.
            self.rate = 0.0;
            self.bounds = [Recent::default(); 2];
            self.anchors.clear();
        }
        self.limit = limit.or(self.limit);
        self.capacity = capacity;
        self.replenish = q.replenish;
        let reset_at = q.reset_after.map(|d| s.now + d.min(params.max_reset));
        let in_flight = s
            .cum_now
            .saturating_sub(cost_field)
            .saturating_add(s.overtaken) as f64;
        let available = remaining as f64 - in_flight;

        // The refill rate: the better of the latest lower bound from the
        // reset field and the latest from observation.
        if self.replenish == Replenish::Gradual
            && let (Some(l), Some(at)) = (limit, reset_at)
        {
            let span = secs(at.saturating_duration_since(ticket.at));
            if span > 0.0 && l > remaining + 1 {
                self.bounds[0].note((l - remaining - 1) as f64 / span, s.now);
            }
        }
        if s.observable {
            if let Some(observed) = self.observe(ticket, remaining as f64, s) {
                self.bounds[1].note(observed, s.now);
            }
            self.push_anchor(Anchor {
                seq: ticket.seq,
                sent: ticket.at,
                remaining: remaining as f64,
                cum: cost_field,
                reset_at,
            });
        }
        self.rate = self.bounds[0].get().max(self.bounds[1].get());

        self.window = q
            .window
            .filter(|w| !w.is_zero())
            .or_else(|| (self.rate > 0.0).then(|| duration(capacity / self.rate)))
            .unwrap_or(params.default_window)
            .min(params.max_reset);
        self.full_at = Some(reset_at.unwrap_or(s.now + params.default_window));
        self.base_cum = cost_field.saturating_sub(s.overtaken);
        self.spreading = self.is_window() && self.rate == 0.0;
        if self.spreading {
            let over = self
                .full_at
                .map_or(Duration::ZERO, |f| f.saturating_duration_since(s.now));
            self.spread(available, over, self.seq == 0, params);
        } else {
            self.tokens = available;
            self.refill = self.rate;
            self.ceiling = capacity;
        }
        self.seq = ticket.seq;
        self.applied = Some((ticket.at, remaining as f64, cost_field));
        self.last = s.now;
        self.synced_at = s.now;
        self.dialect = q.dialect;
    }

    /// Whether this reading and the one applied, from requests sent within
    /// [`REORDER_PROOF`] of each other, contradict the order they were sent
    /// in: the one sent later reports more left than the earlier one's
    /// reading allows (rounding and the refill in between aside). Returns
    /// the gap between the two requests.
    fn reorder_proof(&self, ticket: &Ticket, remaining: f64) -> Option<Duration> {
        let (at, applied_remaining, applied_cum) = self.applied?;
        let gap = abs_diff(at, ticket.at);
        if gap > REORDER_PROOF {
            return None;
        }
        let cum = ticket.cum[self.field];
        let ((_, early), (late_cum, late), early_cum) = if cum > applied_cum {
            ((at, applied_remaining), (cum, remaining), applied_cum)
        } else if cum < applied_cum {
            (
                (ticket.at, remaining),
                (applied_cum, applied_remaining),
                cum,
            )
        } else {
            return None;
        };
        let spent = late_cum.saturating_sub(early_cum) as f64;
        let refill = self.rate * secs(gap);
        (late > early - spent + 1.0 + refill).then_some(gap)
    }

    /// The refill rate observed since the oldest usable anchor.
    fn observe(&self, ticket: &Ticket, remaining: f64, s: Sync) -> Option<f64> {
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

    /// How long until `need` fits, for an admission now.
    fn time_until(&self, need: u64, cum_now: u64, now: Instant) -> Duration {
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

    fn refund(&mut self, cost: u64) {
        let top = self.capacity.max(self.ceiling);
        self.tokens = (self.tokens + cost as f64).min(top);
    }
}

#[cfg(test)]
mod tests;
