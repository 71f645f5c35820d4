//! The model of one key: admissions against every bucket of the key, what
//! their answers teach, and the key's one shared cooldown.

use std::collections::VecDeque;
use std::time::Duration;

use evenkeel_headers::{Dialect, Quota, RateLimits, Resource};
use tokio::time::Instant;

use super::declared::{Declared, StaticQuota};
use super::learned::{KeyState, Learned};
use super::reorder::Reorder;
use super::{Params, Ticket};
use crate::cost::{Cost, FIELDS, field_of};
use crate::store::{Charged, Report, ResourceSnapshot, Shortage};

/// The model of one key. Each metered dimension is a bucket that admissions
/// take from: declared up front ([`Declared`]) or following the server's
/// readings ([`Learned`]); a request is admitted when every bucket has room.
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
    /// How far apart requests may be sent and still be decided in either
    /// order.
    reorder: Reorder,
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
            reorder: Reorder::new(),
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
        self.learned.retain(|d| !d.is_stale(now, params));
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
        self.reorder.forget_stale(now);
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
            d.take(fields[d.field]);
        }
        for d in &mut self.learned {
            d.take(fields[d.field]);
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
            note(d.eta(fields[d.field], self.cum[d.field], now), &d.resource);
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
            .take_while(|(_, at, _)| {
                ticket.at.saturating_duration_since(*at) < self.reorder.window()
            })
            .map(|(_, _, cost)| cost[field])
            .fold(0, u64::saturating_add)
    }

    /// Applies one reading of the response to `ticket`.
    fn learn(&mut self, quota: &Quota, ticket: &Ticket, now: Instant, params: &Params) {
        let Some(field) = field_of(&quota.resource) else {
            return;
        };
        // Anthropic's Priority Tier reports its own limits next to the
        // standard ones; a request is served by one or the other.
        if quota.dialect == Dialect::Anthropic && quota.policy.as_deref() == Some("priority") {
            return;
        }
        let Some(remaining) = quota.remaining else {
            return;
        };
        let index = match self.learned.iter().position(|d| d.follows(quota)) {
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
        if let Some(gap) = self.learned[index].reorder_proof(ticket, remaining, self.last_uncharged)
        {
            self.reorder.widen(gap, now);
        }
        let overtaken = self.concurrent_before(ticket, field);
        // With requests overtaking each other, a reading observes refill
        // only when nothing was sent just before it.
        let observable = observable && ticket.gap >= self.reorder.window();
        self.learned[index].sync(
            quota,
            ticket,
            KeyState {
                now,
                cum_now,
                overtaken,
                reorder: self.reorder.window(),
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
        let declared = self.declared.iter().map(Declared::snapshot);
        let learned = self.learned.iter().map(Learned::snapshot);
        declared.chain(learned).collect()
    }

    /// The key's reorder window.
    #[cfg(test)]
    pub(crate) fn reorder_window(&self) -> Duration {
        self.reorder.window()
    }
}

/// The first resource a response says is exhausted.
fn exhausted(limits: &RateLimits) -> Option<Resource> {
    limits
        .iter()
        .find(|q| q.is_exhausted() && field_of(&q.resource).is_some())
        .map(|q| q.resource.clone())
}
