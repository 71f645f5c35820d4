//! The futures returned by this crate's services.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use evenkeel_core::body::{Replay, ReplayBody};
use evenkeel_core::event::Event;
use evenkeel_core::ext::{Attempt, AttemptContext, Deadline, keep_head, outcome_or, resend_head};
use evenkeel_core::resend::may_resend;
use evenkeel_core::timer::LazyTimer;
use evenkeel_core::{BoxError, Classify, FailureKind, Outcome, clock};
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;

use crate::endpoint::{Entry, InFlight};
use crate::error::{NoEndpointAvailable, Why};
use crate::registry::{Now, Registry};
use crate::select::{Pick, Skip};

pub use crate::health::HealthCheckedFuture;

pin_project! {
    /// The future returned by [`Failover`](crate::Failover).
    ///
    /// Drives one request: its first attempt, and each immediate failover
    /// to another endpoint (readied first, never one already tried).
    /// Dropping it cancels the attempt in flight and releases its endpoint's
    /// in-flight count.
    pub struct ResponseFuture<S, B, C>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        #[pin]
        state: State<S::Future, S, ReplayBody<B>>,
        registry: Arc<Registry<S>>,
        classifier: C,
        // The endpoint of the attempt in flight.
        guard: Option<InFlight>,
        // The request head, kept when another endpoint could take it.
        parts: Option<http::request::Parts>,
        // The request's context: attempt numbers and verdicts.
        context: Option<AttemptContext>,
        replay: Option<Replay<B>>,
        tried: Tried,
        attempts: u32,
        // A request waiting for a cooling endpoint, and its timer (made
        // only then: the path is rare).
        pending: Option<Box<Cooling<B>>>,
        timer: LazyTimer,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, RB> {
        Rejected { error: Option<NoEndpointAvailable> },
        Cooling,
        Calling { #[pin] future: F },
        // `head` is the caller's head for a first send after a wait for a
        // cooling endpoint; a move to another endpoint copies the kept one.
        Readying { service: S, body: Option<RB>, head: Option<http::request::Parts> },
        Done,
    }
}

/// A request waiting for a cooling endpoint. Boxed: the path is rare, and
/// it keeps the future small.
struct Cooling<B> {
    parts: http::request::Parts,
    body: ReplayBody<B>,
    replay: Replay<B>,
}

/// The endpoints a request has been sent to (by id). The first is held
/// inline: a request that is not failed over allocates nothing here.
#[derive(Debug)]
struct Tried {
    first: u64,
    more: Vec<u64>,
}

impl Tried {
    fn contains(&self, id: u64) -> bool {
        self.first == id || self.more.contains(&id)
    }
}

impl<S, B, C> ResponseFuture<S, B, C>
where
    S: Service<Request<ReplayBody<B>>>,
{
    pub(crate) fn new(
        future: S::Future,
        registry: Arc<Registry<S>>,
        classifier: C,
        guard: InFlight,
        parts: Option<http::request::Parts>,
        context: Option<AttemptContext>,
        replay: Replay<B>,
    ) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            registry,
            classifier,
            tried: Tried {
                first: guard.meta().id,
                more: Vec::new(),
            },
            guard: Some(guard),
            parts,
            context,
            replay: Some(replay),
            attempts: 1,
            pending: None,
            timer: LazyTimer::new(),
        }
    }

    /// A request that finds every endpoint cooling down: it waits for the
    /// first to come back, if that fits its deadline and the cap, and is
    /// refused at once otherwise.
    pub(crate) fn cooling(
        parts: http::request::Parts,
        (body, replay): (ReplayBody<B>, Replay<B>),
        first: &str,
        until: Instant,
        registry: Arc<Registry<S>>,
        classifier: C,
    ) -> Self {
        let deadline = Deadline::of_parts(&parts);
        if let Err(error) = may_wait(&registry, first, until, deadline, clock::now()) {
            return ResponseFuture::rejected(error, registry, classifier);
        }
        let mut future = ResponseFuture::unsent(State::Cooling, registry, classifier);
        future.pending = Some(Box::new(Cooling {
            parts,
            body,
            replay,
        }));
        future.timer.arm(until);
        future
    }

    pub(crate) fn rejected(
        error: NoEndpointAvailable,
        registry: Arc<Registry<S>>,
        classifier: C,
    ) -> Self {
        let state = State::Rejected { error: Some(error) };
        ResponseFuture::unsent(state, registry, classifier)
    }

    /// A future in `state` that has sent nothing yet.
    fn unsent(
        state: State<S::Future, S, ReplayBody<B>>,
        registry: Arc<Registry<S>>,
        classifier: C,
    ) -> Self {
        ResponseFuture {
            state,
            registry,
            classifier,
            tried: Tried {
                first: u64::MAX,
                more: Vec::new(),
            },
            guard: None,
            parts: None,
            context: None,
            replay: None,
            attempts: 0,
            pending: None,
            timer: LazyTimer::new(),
        }
    }
}

/// Whether a request may wait until `until` for the cooling endpoint
/// `first`: the wait must end before its deadline and within the cap.
fn may_wait<S>(
    registry: &Registry<S>,
    first: &str,
    until: Instant,
    deadline: Option<Instant>,
    now: Instant,
) -> Result<(), NoEndpointAvailable> {
    if deadline.is_some_and(|d| until >= d) {
        return Err(NoEndpointAvailable::cooling(first, until, Why::Deadline));
    }
    let cap = registry.config.max_cooldown_wait;
    if until.saturating_duration_since(now) > cap {
        return Err(NoEndpointAvailable::cooling(first, until, Why::Cap(cap)));
    }
    Ok(())
}

/// Whether an outcome may move the request to another endpoint at all;
/// [`may_resend`] then decides for the request at hand.
fn fails_over(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::RateLimited(_) | Outcome::Overloaded(_) | Outcome::ServerError(_) => true,
        // The deadline is the caller's, and a broken request body breaks
        // the same way everywhere.
        Outcome::Failed(f) => !matches!(f.kind, FailureKind::Deadline | FailureKind::RequestBody),
        _ => false,
    }
}

impl<S, B, RB, C> Future for ResponseFuture<S, B, C>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    C: Classify<Response<RB>>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let (outcome, result): (Outcome, Self::Output) = match this.state.as_mut().project() {
                StateProj::Rejected { error } => {
                    let error = error
                        .take()
                        .expect("ResponseFuture polled after completion");
                    this.state.set(State::Done);
                    return Poll::Ready(Err(error.into()));
                }
                StateProj::Cooling => {
                    // Waiting is not an attempt: nothing was sent, and no
                    // endpoint is charged for it.
                    if !this.timer.poll_fired(cx) {
                        return Poll::Pending;
                    }
                    let Cooling {
                        mut parts,
                        body: first,
                        replay,
                    } = *this.pending.take().expect("a cooling request is kept");
                    let now = clock::now();
                    let entries = this.registry.snapshot();
                    let selected = this.registry.select(
                        &entries,
                        |e| &e.meta,
                        |_, _| Skip::No,
                        &Now::at(this.registry.ticks(now)),
                    );
                    match selected.pick {
                        Pick::One(i) => {
                            let entry = Arc::clone(&entries[i]);
                            *this.context =
                                AttemptContext::in_extensions(&parts.extensions).cloned();
                            *this.parts = Some(keep_head(&mut parts));
                            *this.replay = Some(replay);
                            this.tried.first = entry.meta.id;
                            *this.guard = Some(InFlight::new(Arc::clone(&entry.meta)));
                            this.timer.disarm();
                            this.state.set(State::Readying {
                                service: entry.service(),
                                body: Some(first),
                                head: Some(parts),
                            });
                        }
                        Pick::None {
                            cooling: Some((i, until)),
                        } => {
                            let until = this.registry.instant(until);
                            let name = &entries[i].meta.name;
                            let deadline = Deadline::of_parts(&parts);
                            if let Err(error) = may_wait(this.registry, name, until, deadline, now)
                            {
                                this.state.set(State::Done);
                                return Poll::Ready(Err(error.into()));
                            }
                            *this.pending = Some(Box::new(Cooling {
                                parts,
                                body: first,
                                replay,
                            }));
                            this.timer.arm(until);
                        }
                        Pick::None { cooling: None } | Pick::Busy => {
                            this.state.set(State::Done);
                            return Poll::Ready(Err(NoEndpointAvailable::empty().into()));
                        }
                    }
                    continue;
                }
                StateProj::Calling { future } => match ready!(future.poll(cx)) {
                    Ok(response) => {
                        let outcome = outcome_or(this.context.as_ref(), false, || {
                            this.classifier.classify_response(&response)
                        });
                        if outcome.is_success() {
                            // The path every healthy request takes.
                            if let Some(guard) = this.guard.take() {
                                this.registry.record_success(guard.meta());
                            }
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(response));
                        }
                        (outcome, Ok(response))
                    }
                    Err(error) => {
                        let error: BoxError = error.into();
                        let outcome = outcome_or(this.context.as_ref(), true, || {
                            this.classifier.classify_error(&*error)
                        });
                        (outcome, Err(error))
                    }
                },
                StateProj::Readying {
                    service,
                    body,
                    head,
                } => match ready!(service.poll_ready(cx)) {
                    Ok(()) => {
                        *this.attempts += 1;
                        let parts = match head.take() {
                            // The first send, after waiting for a cooling
                            // endpoint: the caller's head as it came.
                            Some(parts) => parts,
                            None => {
                                let kept = this
                                    .parts
                                    .as_ref()
                                    .expect("a failover keeps the request head");
                                let context = this.context.get_or_insert_with(|| {
                                    AttemptContext::new(
                                        Attempt::in_extensions(&kept.extensions),
                                        Deadline::of_parts(kept),
                                    )
                                });
                                // A move to another endpoint is an attempt.
                                context.begin_attempt();
                                resend_head(kept, Some(context))
                            }
                        };
                        let body = body.take().expect("a failover carries its body");
                        let future = service.call(Request::from_parts(parts, body));
                        this.state.set(State::Calling { future });
                        continue;
                    }
                    Err(error) => {
                        let error: BoxError = error.into();
                        (this.classifier.classify_error(&*error), Err(error))
                    }
                },
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            };

            // The attempt failed: count it, then move on if that is safe.
            let now = clock::now();
            let ticks = this.registry.ticks(now);
            let from = this.guard.take().expect("an attempt holds its endpoint");
            this.registry.record(from.meta(), &outcome, ticks);
            let next = next_endpoint(
                this.registry,
                this.parts.as_ref(),
                this.replay,
                this.tried,
                *this.attempts,
                &outcome,
                now,
                ticks,
            );
            let Some((entry, service, body)) = next else {
                this.state.set(State::Done);
                return Poll::Ready(result);
            };
            // The failed answer is dropped: the next endpoint's replaces it.
            drop(result);
            this.registry.failovers.fetch_add(1, Ordering::Relaxed);
            this.registry.events.emit(|| Event::Failover {
                from: &from.meta().name,
                to: &entry.meta.name,
                outcome: &outcome,
            });
            #[cfg(feature = "tracing")]
            tracing::debug!(
                from = &*from.meta().name,
                to = &*entry.meta.name,
                outcome = outcome.as_str(),
                "failing request over"
            );
            drop(from);
            this.tried.more.push(entry.meta.id);
            *this.guard = Some(InFlight::new(Arc::clone(&entry.meta)));
            this.state.set(State::Readying {
                service,
                body: Some(body),
                head: None,
            });
        }
    }
}

/// The endpoint, service and body for the next attempt, if the request may
/// and can go elsewhere.
#[allow(clippy::too_many_arguments)]
fn next_endpoint<S: Clone, B>(
    registry: &Registry<S>,
    parts: Option<&http::request::Parts>,
    replay: &mut Option<Replay<B>>,
    tried: &Tried,
    attempts: u32,
    outcome: &Outcome,
    now: Instant,
    ticks: u64,
) -> Option<(Arc<Entry<S>>, S, ReplayBody<B>)> {
    let parts = parts?;
    if !fails_over(outcome) || !may_resend(outcome, &parts.method, &parts.headers) {
        return None;
    }
    if registry
        .config
        .max_attempts
        .is_some_and(|max| attempts >= max)
    {
        return None;
    }
    if Deadline::of_parts(parts).is_some_and(|deadline| deadline <= now) {
        return None;
    }
    let entries = registry.snapshot();
    let selected = registry.select(
        &entries,
        |e| &e.meta,
        |_, m| {
            if tried.contains(m.id) {
                Skip::Tried
            } else {
                Skip::No
            }
        },
        &Now::at(ticks),
    );
    let Pick::One(i) = selected.pick else {
        return None;
    };
    let body = replay.as_mut()?.body()?;
    let entry = Arc::clone(&entries[i]);
    let service = entry.service();
    Some((entry, service, body))
}

impl<S, B, C> fmt::Debug for ResponseFuture<S, B, C>
where
    S: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("endpoint", &self.guard.as_ref().map(|g| &*g.meta().name))
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}
