//! The one model both forms of the sim answer from: quotas, faults, latency,
//! the kill switch and the counters, behind one short-held mutex.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::clock;
use http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::bucket::Bucket;
use crate::config::{Dialect, Faults, MAX_WAIT, QuotaKind, Rate, TokenCost};
use crate::error::{SimError, SimErrorKind};
use crate::server::Command;
use crate::stats::{Counters, Stats};

/// What the builder validated.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) requests: Option<Rate>,
    pub(crate) tokens: Vec<(QuotaKind, Rate, TokenCost)>,
    pub(crate) dialect: Dialect,
    pub(crate) retry_after_ms: bool,
    pub(crate) faults: Faults,
    pub(crate) latency: Duration,
    pub(crate) capacity: Option<usize>,
    pub(crate) reject_above: Option<usize>,
    pub(crate) seed: u64,
    pub(crate) max_body_bytes: usize,
    pub(crate) first_attempt: Option<crate::config::FirstAttempt>,
    pub(crate) streaming: crate::stream::Streaming,
}

/// The shared model.
#[derive(Debug)]
pub(crate) struct Model {
    state: Mutex<State>,
    /// Bumped on every kill; a request in flight watches it to abort.
    kill_epoch: watch::Sender<u64>,
    /// Command channels of the HTTP servers wrapping this model.
    servers: Mutex<Vec<mpsc::UnboundedSender<Command>>>,
    pub(crate) dialect: Dialect,
    pub(crate) retry_after_ms: bool,
    pub(crate) max_body_bytes: usize,
    /// How the first attempt of each request id is answered, if set.
    pub(crate) first_attempt: Option<crate::config::FirstAttempt>,
    /// How streamed answers go.
    pub(crate) streaming: crate::stream::Streaming,
    /// The cost source of each token bucket, parallel to `State::tokens`.
    costs: Vec<TokenCost>,
}

#[derive(Debug)]
struct State {
    killed: bool,
    requests: Option<Bucket>,
    tokens: Vec<(QuotaKind, Bucket)>,
    rng: fastrand::Rng,
    faults: Faults,
    latency: Duration,
    capacity: Option<usize>,
    reject_above: Option<usize>,
    force: Option<Force>,
    in_flight: usize,
    counters: Arc<Counters>,
    answered: u64,
}

/// Every answer forced to one status until `until`.
#[derive(Debug, Clone, Copy)]
struct Force {
    status: StatusCode,
    retry_after: Option<Duration>,
    until: Instant,
}

/// A quota as the rate-limit headers report it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct QuotaView {
    pub(crate) kind: QuotaKind,
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    /// Time until the bucket is full again.
    pub(crate) full_in: Duration,
    /// Time to refill from empty: `burst / rate`.
    pub(crate) window: Duration,
    pub(crate) rate: f64,
}

/// How the sim answers one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Answer {
    /// `200` with a message body.
    Success,
    /// `429 rate_limit_error`: `kind`'s bucket is short for `retry_after`.
    RateLimited {
        kind: QuotaKind,
        retry_after: Duration,
    },
    /// A status forced through the handle.
    Forced {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    /// `503 overloaded_error`: above `reject_above` in flight.
    Rejected,
    /// `413`: the body is over `max_body_bytes`.
    BodyTooLarge { limit: usize },
    /// `413`: the request costs more than `kind`'s bucket can ever hold.
    CostTooLarge {
        kind: QuotaKind,
        cost: u64,
        burst: u64,
    },
    /// `400`: the token cost header is not a decimal integer.
    BadCostHeader,
    /// Injected `500 api_error`.
    InternalError,
    /// Injected `503 overloaded_error`.
    Unavailable,
    /// Injected `529 overloaded_error` with `x-should-retry: true`.
    Overloaded,
    /// Injected `429 insufficient_quota`, no `Retry-After`.
    InsufficientQuota,
    /// Injected connection reset.
    Reset,
}

/// The model's decision on one request.
#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) answer: Answer,
    /// How long to wait before answering.
    pub(crate) delay: Duration,
    /// The quotas after this request, for the rate-limit headers.
    pub(crate) quotas: Vec<QuotaView>,
    /// When the decision was taken.
    pub(crate) at: Instant,
    /// A sequence number for message ids.
    pub(crate) seq: u64,
    /// The request's input-token estimate (body bytes / 4, rounded up).
    pub(crate) input_tokens: u64,
}

impl Model {
    pub(crate) fn new(s: Settings) -> Self {
        let now = clock::now();
        let costs = s.tokens.iter().map(|(_, _, c)| c.clone()).collect();
        let tokens = s
            .tokens
            .iter()
            .map(|(k, r, _)| (*k, Bucket::new(*r, now)))
            .collect();
        Self {
            state: Mutex::new(State {
                killed: false,
                requests: s.requests.map(|r| Bucket::new(r, now)),
                tokens,
                rng: fastrand::Rng::with_seed(s.seed),
                faults: s.faults,
                latency: s.latency,
                capacity: s.capacity,
                reject_above: s.reject_above,
                force: None,
                in_flight: 0,
                counters: Arc::default(),
                answered: 0,
            }),
            kill_epoch: watch::Sender::new(0),
            servers: Mutex::new(Vec::new()),
            dialect: s.dialect,
            retry_after_ms: s.retry_after_ms,
            max_body_bytes: s.max_body_bytes,
            first_attempt: s.first_attempt,
            streaming: s.streaming,
            costs,
        }
    }

    /// Admits a request: counts the attempt and one more in flight, or
    /// refuses it while killed.
    pub(crate) fn enter(self: &Arc<Self>, id: Option<String>) -> Result<InFlight, SimError> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if st.killed {
            Arc::make_mut(&mut st.counters).refused += 1;
            return Err(SimError::new(SimErrorKind::Refused));
        }
        st.in_flight += 1;
        let c = Arc::make_mut(&mut st.counters);
        c.attempts += 1;
        c.max_in_flight = c.max_in_flight.max(st.in_flight);
        let mut first = false;
        if let Some(id) = &id {
            bump(&mut c.attempts_by_id, id);
            first = c.attempts_by_id.get(id) == Some(&1);
        }
        let epoch = *self.kill_epoch.borrow();
        drop(guard);
        Ok(InFlight {
            model: Arc::clone(self),
            id,
            first,
            epoch,
            end: End::Open,
        })
    }

    /// Where a streamed answer's error event goes: one draw from the
    /// seeded generator, counted when it sends an error.
    pub(crate) fn stream_plan(&self, first_attempt: bool) -> crate::stream::Plan {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let plan = if first_attempt && self.streaming.first_attempt {
            crate::stream::Plan::ErrorFirst
        } else {
            self.streaming.plan(st.rng.f64())
        };
        if plan != crate::stream::Plan::Complete {
            Arc::make_mut(&mut st.counters).stream_errors += 1;
        }
        plan
    }

    /// Resolves once the sim is killed after `epoch`.
    pub(crate) async fn killed_since(&self, epoch: u64) {
        let mut rx = self.kill_epoch.subscribe();
        if rx.wait_for(|e| *e != epoch).await.is_err() {
            // The sender lives as long as the model; never reached.
            std::future::pending::<()>().await;
        }
    }

    /// Decides the answer to a request whose body was read (`None`: it was
    /// over `max_body_bytes`). Draws exactly two random numbers, in order:
    /// the fault, then the slow-answer draw.
    pub(crate) fn decide(&self, headers: &HeaderMap, body: Option<&Bytes>) -> Verdict {
        let body_len = body.map_or(0, Bytes::len) as u64;
        let input_tokens = body_len.div_ceil(4);
        let costs = self.token_costs(headers, body_len, input_tokens);
        let now = clock::now();

        let mut guard = self.state.lock();
        let st = &mut *guard;
        let u_fault = st.rng.f64();
        let u_slow = st.rng.f64();
        st.answered += 1;
        let seq = st.answered;
        if let Some(b) = &mut st.requests {
            b.refill(now);
        }
        for (_, b) in &mut st.tokens {
            b.refill(now);
        }

        let (answer, processed) = st.admit(now, body.is_some(), self.max_body_bytes, &costs);
        let answer = match answer {
            Some(a) => a,
            None => st.faults.pick(u_fault),
        };
        let delay = if processed && answer != Answer::InsufficientQuota {
            st.processing_delay(u_slow)
        } else {
            Duration::ZERO
        };
        let quotas = if self.dialect == Dialect::None {
            Vec::new()
        } else {
            st.views()
        };
        drop(guard);

        Verdict {
            answer,
            delay,
            quotas,
            at: now,
            seq,
            input_tokens,
        }
    }

    /// The cost of the request against each token bucket; `Err` when a cost
    /// header is malformed.
    fn token_costs(
        &self,
        headers: &HeaderMap,
        body_len: u64,
        input_tokens: u64,
    ) -> Result<Vec<u64>, ()> {
        self.costs
            .iter()
            .map(|cost| match cost {
                TokenCost::Header(name) => match headers.get(name) {
                    None => Ok(0),
                    Some(v) => v
                        .to_str()
                        .ok()
                        .map(str::trim)
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or(()),
                },
                TokenCost::BodyBytes => Ok(body_len),
                TokenCost::InputTokenEstimate => Ok(input_tokens),
                TokenCost::Fixed(n) => Ok(*n),
            })
            .collect()
    }

    // ----- control -----

    /// Marks the sim killed and aborts requests in flight; returns the
    /// servers to close.
    pub(crate) fn kill(&self) -> Vec<mpsc::UnboundedSender<Command>> {
        {
            let mut st = self.state.lock();
            if !st.killed {
                st.killed = true;
                self.kill_epoch.send_modify(|e| *e += 1);
            }
        }
        self.live_servers()
    }

    /// Marks the sim up again; returns the servers to reopen.
    pub(crate) fn revive(&self) -> Vec<mpsc::UnboundedSender<Command>> {
        self.state.lock().killed = false;
        self.live_servers()
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.state.lock().killed
    }

    fn live_servers(&self) -> Vec<mpsc::UnboundedSender<Command>> {
        let mut servers = self.servers.lock();
        servers.retain(|s| !s.is_closed());
        servers.clone()
    }

    pub(crate) fn attach_server(&self, server: mpsc::UnboundedSender<Command>) {
        let mut servers = self.servers.lock();
        servers.retain(|s| !s.is_closed());
        servers.push(server);
    }

    pub(crate) fn set_capacity(&self, capacity: Option<usize>) {
        self.state.lock().capacity = capacity;
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        self.state.lock().latency = latency;
    }

    pub(crate) fn set_reject_above(&self, limit: Option<usize>) {
        self.state.lock().reject_above = limit;
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        self.state.lock().faults = faults;
    }

    pub(crate) fn force(&self, status: StatusCode, retry_after: Option<Duration>, span: Duration) {
        let now = clock::now();
        let until = now.checked_add(span.min(MAX_WAIT)).unwrap_or(now);
        self.state.lock().force = Some(Force {
            status,
            retry_after,
            until,
        });
    }

    pub(crate) fn clear_force(&self) {
        self.state.lock().force = None;
    }

    pub(crate) fn stats(&self) -> Stats {
        let st = self.state.lock();
        Stats {
            counters: Arc::clone(&st.counters),
            in_flight: st.in_flight,
        }
    }

    pub(crate) fn reset_stats(&self) {
        let mut st = self.state.lock();
        let max_in_flight = st.in_flight;
        st.counters = Arc::new(Counters {
            max_in_flight,
            ..Counters::default()
        });
    }

    /// The quotas as of now.
    pub(crate) fn quotas(&self) -> Vec<QuotaView> {
        let now = clock::now();
        let mut st = self.state.lock();
        if let Some(b) = &mut st.requests {
            b.refill(now);
        }
        for (_, b) in &mut st.tokens {
            b.refill(now);
        }
        st.views()
    }
}

impl State {
    /// The admission checks, in order: a forced status, `reject_above`, the
    /// body size, the cost header, then the quotas (which are charged only
    /// when every one of them has room). Returns the answer if one of them
    /// decides it, and whether the request reaches "processing" (and so pays
    /// the latency and may meet a fault).
    fn admit(
        &mut self,
        now: Instant,
        body_read: bool,
        max_body_bytes: usize,
        costs: &Result<Vec<u64>, ()>,
    ) -> (Option<Answer>, bool) {
        if let Some(force) = self.force {
            if now < force.until {
                return (
                    Some(Answer::Forced {
                        status: force.status,
                        retry_after: force.retry_after,
                    }),
                    false,
                );
            }
            self.force = None;
        }
        if self
            .reject_above
            .is_some_and(|limit| self.in_flight > limit)
        {
            return (Some(Answer::Rejected), false);
        }
        if !body_read {
            return (
                Some(Answer::BodyTooLarge {
                    limit: max_body_bytes,
                }),
                false,
            );
        }
        let Ok(costs) = costs else {
            return (Some(Answer::BadCostHeader), false);
        };
        for ((kind, bucket), &cost) in self.tokens.iter().zip(costs) {
            if cost > bucket.burst() {
                return (
                    Some(Answer::CostTooLarge {
                        kind: *kind,
                        cost,
                        burst: bucket.burst(),
                    }),
                    false,
                );
            }
        }
        let mut short: Option<(QuotaKind, Duration)> = None;
        let waits = self
            .requests
            .iter()
            .map(|b| (QuotaKind::Requests, b.wait_for(1)))
            .chain(
                self.tokens
                    .iter()
                    .zip(costs)
                    .map(|((k, b), &cost)| (*k, b.wait_for(cost))),
            );
        for (kind, wait) in waits {
            if !wait.is_zero() && short.is_none_or(|(_, w)| wait > w) {
                short = Some((kind, wait));
            }
        }
        if let Some((kind, retry_after)) = short {
            return (Some(Answer::RateLimited { kind, retry_after }), false);
        }
        if let Some(b) = &mut self.requests {
            b.take(1);
        }
        for ((_, b), &cost) in self.tokens.iter_mut().zip(costs) {
            b.take(cost);
        }
        (None, true)
    }

    /// Base latency, stretched above capacity (`base × in_flight /
    /// capacity`), plus the slow-answer delay when `u_slow` falls in it.
    fn processing_delay(&self, u_slow: f64) -> Duration {
        let mut delay = self.latency;
        if let Some(cap) = self.capacity
            && self.in_flight > cap
        {
            let factor = self.in_flight as f64 / cap as f64;
            delay = Duration::try_from_secs_f64(delay.as_secs_f64() * factor)
                .unwrap_or(MAX_WAIT)
                .min(MAX_WAIT);
        }
        if u_slow < self.faults.slow {
            delay = delay.saturating_add(self.faults.slow_delay).min(MAX_WAIT);
        }
        delay
    }

    fn views(&self) -> Vec<QuotaView> {
        let view = |kind: QuotaKind, b: &Bucket| QuotaView {
            kind,
            limit: b.burst(),
            remaining: b.remaining(),
            full_in: b.full_in(),
            window: b.window(),
            rate: b.rate(),
        };
        self.requests
            .iter()
            .map(|b| view(QuotaKind::Requests, b))
            .chain(self.tokens.iter().map(|(k, b)| view(*k, b)))
            .collect()
    }
}

impl Faults {
    /// The exclusive fault `u` (uniform in `[0, 1)`) falls in, in the order
    /// reset, 500, 503, 529, insufficient quota; success past them all.
    fn pick(&self, u: f64) -> Answer {
        let bands = [
            (self.reset, Answer::Reset),
            (self.internal_error, Answer::InternalError),
            (self.unavailable, Answer::Unavailable),
            (self.overloaded, Answer::Overloaded),
            (self.insufficient_quota, Answer::InsufficientQuota),
        ];
        let mut edge = 0.0;
        for (fraction, answer) in bands {
            edge += fraction;
            if u < edge {
                return answer;
            }
        }
        Answer::Success
    }
}

fn bump(map: &mut std::collections::HashMap<String, u64>, id: &str) {
    match map.get_mut(id) {
        Some(n) => *n += 1,
        None => {
            map.insert(id.to_owned(), 1);
        }
    }
}

/// How a request in flight ended.
#[derive(Debug, Clone, Copy)]
enum End {
    /// Not (yet) answered: if dropped like this, it was aborted by a kill or
    /// cancelled by the client.
    Open,
    Served(StatusCode),
    Reset,
}

/// One request in flight; dropping it records how it ended.
#[derive(Debug)]
pub(crate) struct InFlight {
    model: Arc<Model>,
    id: Option<String>,
    first: bool,
    epoch: u64,
    end: End,
}

impl InFlight {
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Whether this is the first attempt seen with its `x-request-id`.
    pub(crate) fn is_first(&self) -> bool {
        self.first
    }

    pub(crate) fn served(&mut self, status: StatusCode) {
        self.end = End::Served(status);
    }

    pub(crate) fn reset(&mut self) {
        self.end = End::Reset;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut guard = self.model.state.lock();
        let st = &mut *guard;
        st.in_flight = st.in_flight.saturating_sub(1);
        let c = Arc::make_mut(&mut st.counters);
        match self.end {
            End::Served(status) => {
                *c.statuses.entry(status.as_u16()).or_insert(0) += 1;
                if status.is_success() {
                    c.successes += 1;
                    if let Some(id) = &self.id {
                        bump(&mut c.successes_by_id, id);
                    }
                }
            }
            End::Reset => c.resets += 1,
            End::Open => {
                if *self.model.kill_epoch.borrow() != self.epoch {
                    c.aborted += 1;
                } else {
                    c.cancelled += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_bands_are_cumulative() {
        let f = Faults::none()
            .reset(0.1)
            .internal_error(0.1)
            .unavailable(0.1)
            .overloaded(0.1)
            .insufficient_quota(0.1);
        assert_eq!(f.pick(0.0), Answer::Reset);
        assert_eq!(f.pick(0.15), Answer::InternalError);
        assert_eq!(f.pick(0.25), Answer::Unavailable);
        assert_eq!(f.pick(0.35), Answer::Overloaded);
        assert_eq!(f.pick(0.45), Answer::InsufficientQuota);
        assert_eq!(f.pick(0.5), Answer::Success);
        assert_eq!(Faults::none().pick(0.0), Answer::Success);
    }
}
