//! The future of a request through the quota layer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use evenkeel_core::error::QuotaExhausted;
use evenkeel_core::event::Event;
use evenkeel_core::ext::AttemptContext;
use evenkeel_core::ext::earlier;
use evenkeel_core::timer::LazyTimer;
use evenkeel_core::{BoxError, FailureKind, Outcome, classify_status, clock};
use evenkeel_headers::{RateLimits, Resource};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;

use crate::cost::Cost;
use crate::gate::{Entry, Shared, Turn};
use crate::store::{Charged, QuotaStore, Report, Shortage};

/// The shortest wait after a shortage, whatever a store says: a store that
/// answers "short until now" cannot make a request spin.
const MIN_WAIT: Duration = Duration::from_millis(1);

pin_project! {
    /// The response future of [`Quota`](crate::Quota): waits for quota when
    /// it must, then readies and calls the inner service, then learns from
    /// the response.
    ///
    /// While it waits for readiness after admission, it holds its
    /// reservation; a dropped future gives it back.
    ///
    /// Dropping it at any point gives back what it holds: its place in the
    /// queue, or its reservation.
    pub struct ResponseFuture<S, B, St>
    where
        S: Service<Request<B>>,
        St: QuotaStore,
    {
        #[pin]
        state: State<S, Request<B>, S::Future, St::Reserve>,
        // Made only when a request has to wait, so the future stays small
        // on the path every request takes.
        timer: LazyTimer,
        admission: Admission<St>,
        cost: Cost,
        // When the request gives up waiting: its deadline or the wait cap
        // (only the deadline until the first poll).
        give_up: Option<Instant>,
        // The first poll.
        started: Option<Instant>,
        // What was short the last time the request tried.
        short: Option<Shortage>,
        waited: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Q, F, R> {
        // Until the request is sent, the service it goes to and the request
        // itself sit where the inner future sits afterwards, so the future
        // is no larger than its largest phase.
        Admitting { service: S, request: Option<Q>, #[pin] step: Step<R> },
        Calling { #[pin] future: F },
        Done,
    }
}

pin_project! {
    /// Where an unsent request is on its way to admission.
    #[project = StepProj]
    enum Step<R> {
        Start,
        Queued,
        Reserving { #[pin] reserve: R },
        Readying,
    }
}

impl<S, B, St> fmt::Debug for ResponseFuture<S, B, St>
where
    S: Service<Request<B>>,
    St: QuotaStore,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("key", &self.admission.entry.name)
            .field("cost", &self.cost)
            .field("waited", &self.waited)
            .finish_non_exhaustive()
    }
}

impl<S, B, St> ResponseFuture<S, B, St>
where
    S: Service<Request<B>>,
    St: QuotaStore,
{
    pub(crate) fn new(
        service: S,
        request: Request<B>,
        shared: Arc<Shared<St>>,
        entry: Arc<Entry<St>>,
        cost: Cost,
        deadline: Option<Instant>,
    ) -> Self {
        ResponseFuture {
            state: State::Admitting {
                service,
                request: Some(request),
                step: Step::Start,
            },
            timer: LazyTimer::new(),
            admission: Admission {
                shared,
                entry,
                queued: None,
                ticket: None,
                probe: false,
                sent: false,
                context: None,
            },
            cost,
            give_up: deadline,
            started: None,
            short: None,
            waited: false,
        }
    }
}

/// The clock, read at most once per poll.
struct Now(Option<Instant>);

impl Now {
    fn get(&mut self) -> Instant {
        *self.0.get_or_insert_with(clock::now)
    }
}

fn past(give_up: Option<Instant>, at: Instant) -> bool {
    give_up.is_some_and(|g| at > g)
}

impl<S, B, RB, St> Future for ResponseFuture<S, B, St>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    St: QuotaStore,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut now = Now(None);
        loop {
            let (service, request, mut step) = match this.state.as_mut().project() {
                StateProj::Admitting {
                    service,
                    request,
                    step,
                } => (service, request, step),
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx));
                    this.admission.settle(&result, now.get());
                    this.state.set(State::Done);
                    return Poll::Ready(result.map_err(Into::into));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            };
            match step.as_mut().project() {
                StepProj::Start => {
                    let now = now.get();
                    *this.started = Some(now);
                    let cap = now.checked_add(this.admission.shared.config.max_wait);
                    *this.give_up = earlier(*this.give_up, cap);
                    let adm = &mut *this.admission;
                    let timeout = adm.shared.config.probe_timeout;
                    let turn = adm.entry.gate.lock().enter(now, timeout);
                    if let Some(Turn::Go { probe }) = turn {
                        adm.probe = probe;
                        let reserve = adm.shared.store.reserve(&adm.entry.key, this.cost, now);
                        step.set(Step::Reserving { reserve });
                        continue;
                    }
                    // Others are ahead (or the probe is out): fail at once
                    // if everything queued, and this, cannot fit in time.
                    let ahead = adm.entry.gate.lock().ahead();
                    if let Some(short) =
                        adm.shared
                            .store
                            .estimate(&adm.entry.key, this.cost, &ahead, now)
                        && past(*this.give_up, short.until)
                    {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(adm.reject(Some(&short), now)));
                    }
                    let id = adm.entry.gate.lock().enqueue(
                        this.cost,
                        cx.waker(),
                        false,
                        &adm.entry.queued,
                    );
                    adm.queued = Some(id);
                    *this.waited = true;
                    step.set(Step::Queued);
                }
                StepProj::Queued => {
                    let now = now.get();
                    let adm = &mut *this.admission;
                    let id = adm
                        .queued
                        .expect("a queued request has a place in the queue");
                    let timeout = adm.shared.config.probe_timeout;
                    let turn = adm.entry.gate.lock().turn(id, now, timeout, cx.waker());
                    let wake = match turn {
                        Turn::Go { probe } => {
                            adm.probe = probe;
                            let reserve = adm.shared.store.reserve(&adm.entry.key, this.cost, now);
                            step.set(Step::Reserving { reserve });
                            continue;
                        }
                        Turn::Probe(until) => earlier(Some(until), *this.give_up),
                        Turn::Behind => *this.give_up,
                    };
                    match wake {
                        Some(at) => this.timer.arm(at),
                        // Nothing to time: the gate wakes it.
                        None => this.timer.disarm(),
                    }
                    if !this.timer.poll_fired(cx) {
                        return Poll::Pending;
                    }
                    if this.give_up.is_some_and(|g| now >= g) {
                        let short = this.short.take().or_else(|| {
                            let ahead = adm.entry.gate.lock().ahead();
                            adm.shared
                                .store
                                .estimate(&adm.entry.key, this.cost, &ahead, now)
                        });
                        this.state.set(State::Done);
                        return Poll::Ready(Err(adm.reject(short.as_ref(), now)));
                    }
                    // The probe timed out: its turn again.
                }
                StepProj::Reserving { reserve } => {
                    let result = ready!(reserve.poll(cx));
                    let now = now.get();
                    let adm = &mut *this.admission;
                    match result {
                        Ok(ticket) => {
                            adm.ticket = Some(ticket);
                            let waited = now.saturating_duration_since(this.started.unwrap_or(now));
                            let wake = if *this.waited {
                                let mut gate = adm.entry.gate.lock();
                                gate.stats.waits += 1;
                                gate.stats.waited += waited;
                                let queued = adm.queued.take();
                                queued.and_then(|id| gate.leave(id, &adm.entry.queued))
                            } else {
                                None
                            };
                            adm.entry.admitted(adm.probe);
                            if let Some(waker) = wake {
                                waker.wake();
                            }
                            if *this.waited {
                                adm.held(this.short.as_ref(), waited);
                            }
                            step.set(Step::Readying);
                        }
                        Err(mut short) => {
                            short.until = short.until.max(now + MIN_WAIT);
                            if past(*this.give_up, short.until) {
                                this.state.set(State::Done);
                                return Poll::Ready(Err(adm.reject(Some(&short), now)));
                            }
                            {
                                let mut gate = adm.entry.gate.lock();
                                if std::mem::take(&mut adm.probe) {
                                    gate.probe_deferred();
                                }
                                if short.cooldown {
                                    gate.cooldown_seen();
                                }
                                if adm.queued.is_none() {
                                    let id = gate.enqueue(
                                        this.cost,
                                        cx.waker(),
                                        true,
                                        &adm.entry.queued,
                                    );
                                    adm.queued = Some(id);
                                }
                            }
                            *this.waited = true;
                            this.timer.arm(
                                earlier(Some(short.until), *this.give_up).unwrap_or(short.until),
                            );
                            *this.short = Some(short);
                            step.set(Step::Queued);
                            if !this.timer.poll_fired(cx) {
                                return Poll::Pending;
                            }
                        }
                    }
                }
                StepProj::Readying => {
                    // Admitted: only now is the inner service readied (a
                    // concurrency permit below is taken here, not while the
                    // request waited).
                    if let Err(error) = ready!(service.poll_ready(cx)) {
                        // Never sent: what it holds goes back now.
                        this.admission.give_back();
                        this.state.set(State::Done);
                        return Poll::Ready(Err(error.into()));
                    }
                    let request = request.take().expect("the request is sent once");
                    this.admission.sent = true;
                    this.admission.context = AttemptContext::of(&request).cloned();
                    let future = service.call(request);
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

/// What a request holds in its key: a place in the queue, a reservation,
/// the probe's role. Dropping it gives everything back.
struct Admission<St: QuotaStore> {
    shared: Arc<Shared<St>>,
    entry: Arc<Entry<St>>,
    queued: Option<u64>,
    ticket: Option<St::Ticket>,
    probe: bool,
    sent: bool,
    /// The request's context, where the verdict on its answer is left.
    context: Option<AttemptContext>,
}

impl<St: QuotaStore> Admission<St> {
    /// Fails the request for lack of quota.
    fn reject(&mut self, short: Option<&Shortage>, now: Instant) -> BoxError {
        let wake = {
            let mut gate = self.entry.gate.lock();
            gate.stats.rejected += 1;
            if std::mem::take(&mut self.probe) {
                gate.probe_deferred();
            }
            self.queued
                .take()
                .and_then(|id| gate.leave(id, &self.entry.queued))
        };
        if let Some(waker) = wake {
            waker.wake();
        }
        let (resource, until) = match short {
            Some(s) => (s.resource.clone(), Some(s.until)),
            None => (Resource::Requests, None),
        };
        let wait = until.map(|u| u.saturating_duration_since(now));
        self.shared.events.emit(|| Event::QuotaRejected {
            key: &self.entry.name,
            resource: &resource,
            wait,
        });
        #[cfg(feature = "tracing")]
        tracing::debug!(
            key = &*self.entry.name,
            resource = resource.as_str(),
            wait_ms = wait.map(|w| w.as_millis() as u64),
            "quota: request rejected, room not expected in time"
        );
        QuotaExhausted::new(resource, until)
            .with_key(&*self.entry.name)
            .into()
    }

    /// Gives back whatever the request holds: its place in the queue, its
    /// reservation, the probe's role.
    fn give_back(&mut self) {
        if self.queued.is_none() && self.ticket.is_none() && !self.probe {
            return;
        }
        let now = clock::now();
        let mut wakes: [Option<Waker>; 2] = [None, None];
        if let Some(ticket) = self.ticket.take() {
            self.shared
                .store
                .release(&self.entry.key, ticket, self.sent, now);
            wakes[0] = self
                .entry
                .finished(std::mem::take(&mut self.probe), false, false);
        } else if std::mem::take(&mut self.probe) {
            let mut gate = self.entry.gate.lock();
            gate.probe_deferred();
            wakes[0] = gate.head_waker();
        }
        if let Some(id) = self.queued.take() {
            wakes[1] = self.entry.gate.lock().leave(id, &self.entry.queued);
        }
        for waker in wakes.into_iter().flatten() {
            waker.wake();
        }
    }

    /// Reports a request that waited for quota and is now admitted.
    fn held(&self, short: Option<&Shortage>, wait: Duration) {
        if wait.is_zero() {
            return;
        }
        let resource = short.map_or(&Resource::Requests, |s| &s.resource);
        self.shared.events.emit(|| Event::QuotaWait {
            key: &self.entry.name,
            resource,
            wait,
        });
        #[cfg(feature = "tracing")]
        tracing::debug!(
            key = &*self.entry.name,
            resource = resource.as_str(),
            wait_ms = wait.as_millis() as u64,
            "quota: request held"
        );
    }

    /// Learns from the answer to the request: from the verdict left on it
    /// below when there is one, else from its status and headers.
    fn settle<RB, E>(&mut self, result: &Result<Response<RB>, E>, now: Instant) {
        if self.ticket.is_none() {
            return;
        }
        let context = self.context.take();
        let judged = context.as_ref().and_then(|c| {
            c.with_verdict(|v| {
                (v.is_error() == result.is_err())
                    .then(|| self.learn(&v.outcome, &v.limits, result.is_ok(), now))
            })
        });
        if judged.flatten().is_some() {
            return;
        }
        match result {
            Ok(response) => {
                let limits =
                    evenkeel_headers::rate_limits(response.headers(), clock::system_time_at(now));
                let outcome = classify_status(response.status(), response.headers());
                self.learn(&outcome, &limits, true, now);
            }
            Err(_) => {
                let outcome = Outcome::Failed(FailureKind::Other.into());
                self.learn(&outcome, &RateLimits::new(), false, now);
            }
        }
    }

    /// Settles the reservation with what the answer (`answered`: a
    /// response, not an error), judged `outcome`, reported.
    fn learn(&mut self, outcome: &Outcome, limits: &RateLimits, answered: bool, now: Instant) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        let probe = std::mem::take(&mut self.probe);
        let default = self.shared.config.default_cooldown;
        let (charged, cooldown) = match outcome {
            Outcome::Success => (Charged::Yes, None),
            Outcome::RateLimited(signal) => {
                let wait = (!outcome.is_hopeless()).then(|| signal.wait.unwrap_or(default));
                (Charged::No, wait)
            }
            Outcome::Overloaded(signal) => (Charged::Unknown, signal.wait),
            _ => (Charged::Unknown, None),
        };
        let report = Report::new(limits)
            .with_charged(charged)
            .with_cooldown(cooldown);
        let cooling = self
            .shared
            .store
            .settle(&self.entry.key, ticket, &report, now);
        #[cfg(feature = "tracing")]
        {
            if let Some(until) = cooling {
                tracing::debug!(
                    key = &*self.entry.name,
                    for_ms = until.saturating_duration_since(now).as_millis() as u64,
                    "quota: key cooling down at the server's request"
                );
            }
            for q in limits.iter() {
                tracing::trace!(
                    key = &*self.entry.name,
                    resource = q.resource.as_str(),
                    limit = q.limit,
                    remaining = q.remaining,
                    reset_ms = q.reset_after.map(|r| r.as_millis() as u64),
                    "quota: reading"
                );
            }
        }
        let wake = self.entry.finished(probe, answered, cooling.is_some());
        if let Some(waker) = wake {
            waker.wake();
        }
    }
}

impl<St: QuotaStore> Drop for Admission<St> {
    fn drop(&mut self) {
        self.give_back();
    }
}
