//! The model's rules, one by one, on tokio's paused clock.

use std::time::Duration;

use evenkeel_headers::{Dialect, Quota, RateLimits, Replenish, Resource};
use tokio::time::{Instant, advance};

use super::reorder::{REORDER_MEMORY, REORDER_SLACK};
use super::*;
use crate::cost::Cost;
use crate::store::{Charged, Report, ResourceSnapshot, Shortage};

fn params() -> Params {
    Params {
        max_reset: Duration::from_secs(3600),
        max_cooldown: Duration::from_secs(3600),
        default_window: Duration::from_secs(1),
        spread_burst: 0.1,
        stale_after: Duration::from_secs(3600),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A token-bucket reading (OpenAI, Anthropic).
fn gradual(resource: Resource, limit: u64, remaining: u64, reset: Duration) -> Quota {
    Quota::new(resource)
        .with_limit(limit)
        .with_remaining(remaining)
        .with_reset_after(reset)
        .with_replenish(Replenish::Gradual)
        .with_dialect(Dialect::OpenAi)
}

/// A fixed-window reading (IETF, GitHub).
fn window(limit: u64, remaining: u64, reset: Duration) -> Quota {
    Quota::new(Resource::Requests)
        .with_limit(limit)
        .with_remaining(remaining)
        .with_reset_after(reset)
        .with_replenish(Replenish::Window)
        .with_dialect(Dialect::XRateLimit)
}

fn limits(quotas: impl IntoIterator<Item = Quota>) -> RateLimits {
    quotas.into_iter().collect()
}

fn settle(model: &mut KeyModel, ticket: &Ticket, quotas: impl IntoIterator<Item = Quota>) {
    let l = limits(quotas);
    model.settle(ticket, &Report::new(&l), Instant::now(), &params());
}

fn reserve(model: &mut KeyModel) -> Result<Ticket, Shortage> {
    model.reserve(&Cost::new(), Instant::now(), &params())
}

/// Admits as many one-request costs as fit now.
fn drain(model: &mut KeyModel) -> Vec<Ticket> {
    std::iter::from_fn(|| reserve(model).ok())
        .take(10_000)
        .collect()
}

fn snapshot(model: &mut KeyModel, resource: Resource) -> ResourceSnapshot {
    model
        .snapshot(Instant::now(), &params())
        .into_iter()
        .find(|r| r.resource == resource)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn nothing_known_admits_everything() {
    let mut model = KeyModel::new(&[], Instant::now());
    assert_eq!(drain(&mut model).len(), 10_000);
    assert!(model.room_at(Instant::now(), &params()).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_reading_counts_what_was_sent_after_it() {
    let mut model = KeyModel::new(&[], Instant::now());
    let first = reserve(&mut model).unwrap();
    let _in_flight: Vec<_> = (0..3).map(|_| reserve(&mut model).unwrap()).collect();
    // The server saw only the first: 5 left after it. Three are in flight.
    settle(
        &mut model,
        &first,
        [gradual(Resource::Requests, 10, 5, Duration::from_secs(60))],
    );
    assert_eq!(drain(&mut model).len(), 2);
    let short = reserve(&mut model).unwrap_err();
    assert_eq!(short.resource, Resource::Requests);
    assert!(!short.cooldown);
}

#[tokio::test(start_paused = true)]
async fn an_older_reading_never_overrides_a_newer_one() {
    let mut model = KeyModel::new(&[], Instant::now());
    let a = reserve(&mut model).unwrap();
    let b = reserve(&mut model).unwrap();
    settle(
        &mut model,
        &b,
        [gradual(Resource::Requests, 10, 0, Duration::from_secs(60))],
    );
    // `a`'s answer arrives late and says 8 were left when it was decided.
    settle(
        &mut model,
        &a,
        [gradual(Resource::Requests, 10, 8, Duration::from_secs(60))],
    );
    assert!(reserve(&mut model).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_bucket_is_full_at_its_reset_minus_what_was_sent_since() {
    let mut model = KeyModel::new(&[], Instant::now());
    let t = reserve(&mut model).unwrap();
    settle(
        &mut model,
        &t,
        [gradual(Resource::Requests, 10, 0, Duration::from_secs(2))],
    );
    let short = reserve(&mut model).unwrap_err();
    // The reset field alone gives (10 - 0 - 1) / 2 s = 4.5 per second.
    let rate = snapshot(&mut model, Resource::Requests).rate.unwrap();
    assert!((rate - 4.5).abs() < 1e-6, "{rate}");
    assert!(
        short.until <= Instant::now() + ms(223),
        "{:?}",
        short.until - Instant::now()
    );
    advance(Duration::from_secs(2)).await;
    // Full: 10, less the few admitted meanwhile (none).
    assert_eq!(drain(&mut model).len(), 10);
}

#[tokio::test(start_paused = true)]
async fn the_reset_bound_uses_the_send_time() {
    let mut model = KeyModel::new(&[], Instant::now());
    let t = reserve(&mut model).unwrap();
    // The answer took 1 s; the reset is 1 s after it: 2 s after sending.
    advance(Duration::from_secs(1)).await;
    settle(
        &mut model,
        &t,
        [gradual(Resource::Requests, 11, 0, Duration::from_secs(1))],
    );
    let rate = snapshot(&mut model, Resource::Requests).rate.unwrap();
    assert!((rate - 5.0).abs() < 1e-6, "{rate}");
}

/// A server token bucket, for observation tests.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: f64, burst: u64) -> Self {
        Bucket {
            rate,
            burst: burst as f64,
            tokens: burst as f64,
            last: Instant::now(),
        }
    }

    /// Decides one request now: charged or not, and the reading after it.
    fn decide(&mut self, cost: u64) -> (bool, u64, Duration) {
        let now = Instant::now();
        self.tokens = (self.tokens + (now - self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        let ok = self.tokens + 1e-9 >= cost as f64;
        if ok {
            self.tokens -= cost as f64;
        }
        let full_in = duration((self.burst - self.tokens) / self.rate);
        (ok, (self.tokens + 1e-9).floor() as u64, full_in)
    }
}

/// Runs a closed loop against `bucket`: each step admits what the model
/// allows, has the server decide, and settles the answers `latency` later
/// with a reading whose reset is rounded up to `precision`.
async fn closed_loop(
    model: &mut KeyModel,
    bucket: &mut Bucket,
    steps: u32,
    latency: Duration,
    precision: Duration,
) -> (u32, u32) {
    let mut in_flight: Vec<(Instant, Ticket, bool, u64, Duration)> = Vec::new();
    let (mut sent, mut refused) = (0, 0);
    let mut learned = false;
    for _ in 0..steps {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = in_flight.into_iter().partition(|f| f.0 <= now);
        in_flight = later;
        for (_, ticket, ok, remaining, full_in) in due {
            let p = precision.as_nanos();
            let rounded = Duration::from_nanos((full_in.as_nanos().div_ceil(p) * p) as u64);
            let reset = rounded.saturating_sub(latency);
            let l = limits([gradual(
                Resource::Requests,
                bucket.burst as u64,
                remaining,
                reset,
            )]);
            let charged = if ok { Charged::Yes } else { Charged::No };
            model.settle(
                &ticket,
                &Report::new(&l).with_charged(charged),
                now,
                &params(),
            );
            learned = true;
        }
        // One request first, to learn; then at most 32 in flight.
        let cap = if learned { 32 } else { 1 };
        while in_flight.len() < cap
            && let Ok(ticket) = reserve(model)
        {
            let (ok, remaining, full_in) = bucket.decide(1);
            sent += 1;
            refused += u32::from(!ok);
            in_flight.push((now + latency, ticket, ok, remaining, full_in));
        }
        advance(ms(5)).await;
    }
    (sent, refused)
}

#[tokio::test(start_paused = true)]
async fn the_refill_rate_is_learned_from_observation_and_from_below() {
    // Resets rounded up to whole seconds say little; observation says more.
    let mut model = KeyModel::new(&[], Instant::now());
    let mut bucket = Bucket::new(50.0, 10);
    let (sent, refused) = closed_loop(
        &mut model,
        &mut bucket,
        2_000,
        ms(50),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(refused, 0);
    let rate = snapshot(&mut model, Resource::Requests).rate.unwrap();
    assert!((45.0..=50.0).contains(&rate), "learned {rate}");
    // 10 s at 50 per second, plus the burst.
    assert!(sent >= 480, "sent {sent}");
}

#[tokio::test(start_paused = true)]
async fn estimated_token_costs_are_not_observed() {
    let mut model = KeyModel::new(&[], Instant::now());
    let cost = Cost::new().with_tokens(10);
    let q = |remaining| gradual(Resource::Tokens, 1000, remaining, Duration::from_secs(1));
    let a = model.reserve(&cost, Instant::now(), &params()).unwrap();
    settle(&mut model, &a, [q(990)]);
    advance(Duration::from_secs(1)).await;
    let b = model.reserve(&cost, Instant::now(), &params()).unwrap();
    settle(&mut model, &b, [q(990)]);
    // An estimate may overshoot the real cost: only the reset field counts.
    let rate = snapshot(&mut model, Resource::Tokens).rate.unwrap();
    assert!((rate - 9.0).abs() < 1e-6, "{rate}");

    let mut model = KeyModel::new(&[], Instant::now());
    let exact = cost.exact(true);
    let a = model.reserve(&exact, Instant::now(), &params()).unwrap();
    settle(&mut model, &a, [q(990)]);
    advance(Duration::from_secs(1)).await;
    let b = model.reserve(&exact, Instant::now(), &params()).unwrap();
    settle(&mut model, &b, [q(990)]);
    // Exact: 990 - 990 - 1 + 10 tokens refilled in 1 s.
    let rate = snapshot(&mut model, Resource::Tokens).rate.unwrap();
    assert!((rate - 9.0).abs() < 1e-6, "{rate}");
}

#[tokio::test(start_paused = true)]
async fn observation_does_not_span_an_uncharged_request() {
    let mut model = KeyModel::new(&[], Instant::now());
    let q = |remaining| gradual(Resource::Requests, 100, remaining, Duration::ZERO);
    let a = reserve(&mut model).unwrap();
    settle(&mut model, &a, [q(50)]);
    advance(Duration::from_secs(1)).await;
    let limited = reserve(&mut model).unwrap();
    let l = limits([q(50)]);
    model.settle(
        &limited,
        &Report::new(&l).with_charged(Charged::No),
        Instant::now(),
        &params(),
    );
    let b = reserve(&mut model).unwrap();
    settle(&mut model, &b, [q(49)]);
    // Counting the 429 as spent would claim a refill of 1 per second.
    assert_eq!(snapshot(&mut model, Resource::Requests).rate, None);
}

#[tokio::test(start_paused = true)]
async fn a_fixed_window_is_spread_until_its_reset() {
    let mut model = KeyModel::new(&[], Instant::now());
    let t = reserve(&mut model).unwrap();
    settle(&mut model, &t, [window(100, 91, Duration::from_secs(9))]);
    // A tenth of the limit at once, the rest (81) over the 9 s left.
    assert_eq!(drain(&mut model).len(), 10);
    advance(Duration::from_secs(1)).await;
    assert_eq!(drain(&mut model).len(), 9);
    // What accumulates is capped at the burst.
    advance(Duration::from_secs(7)).await;
    assert_eq!(drain(&mut model).len(), 10);
    advance(ms(999)).await;
    assert_eq!(drain(&mut model).len(), 8);
    // The window resets: a burst again, the rest spread over the next
    // window (here the default of 1 s, as the headers name none).
    advance(ms(1)).await;
    assert_eq!(drain(&mut model).len(), 10);
    advance(ms(100)).await;
    assert_eq!(
        drain(&mut model).len(),
        5,
        "(100 - 39 - 10) / 1 s for 0.1 s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_window_seen_refilling_is_a_bucket() {
    let mut model = KeyModel::new(&[], Instant::now());
    let q = |remaining| {
        Quota::new(Resource::Requests)
            .with_limit(10)
            .with_remaining(remaining)
            .with_reset_after(Duration::from_secs(2))
            .with_window(Duration::from_secs(2))
            .with_replenish(Replenish::Window)
            .with_dialect(Dialect::Ietf)
    };
    let a = reserve(&mut model).unwrap();
    settle(&mut model, &a, [q(9)]);
    // Spread: one at a time, 4 a second.
    let mut spent = Vec::new();
    for _ in 0..3 {
        advance(ms(300)).await;
        spent.push(reserve(&mut model).unwrap());
    }
    // Still 9 left before the claimed reset, after three were spent.
    let b = spent.pop().unwrap();
    settle(&mut model, &b, [q(9)]);
    let rate = snapshot(&mut model, Resource::Requests).rate.unwrap();
    assert!(rate > 0.0);
    // As a bucket, the 9 left go at once.
    assert_eq!(drain(&mut model).len(), 9);
}

#[tokio::test(start_paused = true)]
async fn a_window_is_not_observed_across_its_reset() {
    let mut model = KeyModel::new(&[], Instant::now());
    let a = reserve(&mut model).unwrap();
    settle(&mut model, &a, [window(5000, 0, Duration::from_secs(1))]);
    advance(Duration::from_secs(2)).await;
    let b = reserve(&mut model).unwrap();
    settle(
        &mut model,
        &b,
        [window(5000, 4999, Duration::from_secs(3600))],
    );
    // The jump from 0 to 4999 is a reset, not a refill rate.
    assert_eq!(snapshot(&mut model, Resource::Requests).rate, None);
}

#[tokio::test(start_paused = true)]
async fn declared_quotas_apply_before_any_reading_and_readings_tighten_them() {
    let quotas = [StaticQuota::per_second(Resource::Requests, 5).with_burst(3)];
    let mut model = KeyModel::new(&quotas, Instant::now());
    assert_eq!(drain(&mut model).len(), 3);
    let short = reserve(&mut model).unwrap_err();
    assert_eq!(short.until - Instant::now(), ms(200));
    advance(Duration::from_secs(1)).await;
    let t = reserve(&mut model).unwrap();
    // The server says only 1 is left, for a minute: tighter.
    settle(
        &mut model,
        &t,
        [gradual(Resource::Requests, 100, 1, Duration::from_secs(60))],
    );
    assert_eq!(drain(&mut model).len(), 1);
    // A server saying far more never loosens the declared quota.
    advance(Duration::from_secs(60)).await;
    let t = reserve(&mut model).unwrap();
    settle(
        &mut model,
        &t,
        [gradual(Resource::Requests, 1000, 999, Duration::ZERO)],
    );
    assert_eq!(drain(&mut model).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn estimates_count_the_queue_ahead_for_declared_quotas() {
    let quotas = [StaticQuota::per_second(Resource::Requests, 2).with_burst(1)];
    let mut model = KeyModel::new(&quotas, Instant::now());
    let ahead = Cost::new().with_requests(3);
    let eta = model
        .estimate(&Cost::new(), &ahead, Instant::now(), &params())
        .unwrap();
    // 4 requests, 1 now and 2 a second: the last in 1.5 s.
    assert_eq!(eta.until - Instant::now(), ms(1500));
    assert!(!eta.cooldown);
    assert!(
        model
            .estimate(
                &Cost::new(),
                &Cost::new().with_requests(0),
                Instant::now(),
                &params()
            )
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn a_declared_quota_gets_back_what_the_server_refused() {
    let quotas = [StaticQuota::per_minute(Resource::Requests, 2)];
    let mut model = KeyModel::new(&quotas, Instant::now());
    let t = reserve(&mut model).unwrap();
    let none = RateLimits::new();
    model.settle(
        &t,
        &Report::new(&none).with_charged(Charged::No),
        Instant::now(),
        &params(),
    );
    assert_eq!(drain(&mut model).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn every_dimension_must_have_room() {
    let mut model = KeyModel::new(&[], Instant::now());
    let t = reserve(&mut model).unwrap();
    settle(
        &mut model,
        &t,
        [
            gradual(Resource::Requests, 100, 99, Duration::from_secs(1)),
            gradual(Resource::InputTokens, 1000, 150, Duration::from_secs(60)),
            gradual(Resource::OutputTokens, 1000, 1000, Duration::ZERO),
        ],
    );
    let cost = Cost::new().with_input_tokens(100).with_output_tokens(100);
    assert!(model.reserve(&cost, Instant::now(), &params()).is_ok());
    let short = model.reserve(&cost, Instant::now(), &params()).unwrap_err();
    assert_eq!(short.resource, Resource::InputTokens);
    // No tokens asked: only requests count.
    assert!(reserve(&mut model).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_request_larger_than_the_bucket_goes_when_it_is_full() {
    let mut model = KeyModel::new(&[], Instant::now());
    let t = reserve(&mut model).unwrap();
    settle(
        &mut model,
        &t,
        [gradual(Resource::Tokens, 100, 50, Duration::from_secs(5))],
    );
    let huge = Cost::new().with_tokens(1_000);
    let short = model.reserve(&huge, Instant::now(), &params()).unwrap_err();
    assert_eq!(short.until - Instant::now(), Duration::from_secs(5));
    // Expected by the reset, whatever is queued ahead: the learned rate is a
    // lower bound, not an expectation, so nothing more is certain.
    let ahead = Cost::new().with_tokens(5_000);
    let eta = model
        .estimate(&huge, &ahead, Instant::now(), &params())
        .unwrap();
    assert_eq!(eta.until - Instant::now(), Duration::from_secs(5));
    advance(Duration::from_secs(5)).await;
    assert!(model.reserve(&huge, Instant::now(), &params()).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_cooldown_starts_once_and_is_capped() {
    let mut model = KeyModel::new(&[], Instant::now());
    let tickets: Vec<_> = (0..3).map(|_| reserve(&mut model).unwrap()).collect();
    let exhausted = limits([gradual(Resource::Tokens, 10, 0, Duration::from_secs(1))]);
    let report = Report::new(&exhausted)
        .with_charged(Charged::No)
        .with_cooldown(Some(Duration::from_secs(5)));
    let until = model
        .settle(&tickets[0], &report, Instant::now(), &params())
        .unwrap();
    assert_eq!(until - Instant::now(), Duration::from_secs(5));
    let short = reserve(&mut model).unwrap_err();
    assert!(short.cooldown);
    assert_eq!(short.resource, Resource::Tokens);
    // The others were in flight when it began: their 429s start nothing.
    advance(Duration::from_secs(1)).await;
    let long = report.with_cooldown(Some(Duration::from_secs(50)));
    assert_eq!(
        model.settle(&tickets[1], &long, Instant::now(), &params()),
        None
    );
    advance(Duration::from_secs(4)).await;
    let t = reserve(&mut model).unwrap();
    // A new 429, claiming a year: capped at `max_reset`.
    let year = report.with_cooldown(Some(Duration::from_secs(365 * 86_400)));
    let until = model.settle(&t, &year, Instant::now(), &params()).unwrap();
    assert_eq!(until - Instant::now(), params().max_reset);
    assert_eq!(model.cooldown_until(), Some(until));
}

#[tokio::test(start_paused = true)]
async fn absurd_headers_are_bounded() {
    let mut model = KeyModel::new(&[], Instant::now());
    let t = reserve(&mut model).unwrap();
    // Zero left, reset in a thousand years.
    settle(
        &mut model,
        &t,
        [gradual(
            Resource::Requests,
            10,
            0,
            Duration::from_secs(1 << 40),
        )],
    );
    let short = reserve(&mut model).unwrap_err();
    assert!(short.until - Instant::now() <= params().max_reset);
    advance(params().max_reset).await;
    assert!(drain(&mut model).len() >= 10);

    // More remaining than the limit, and a zero limit.
    let mut model = KeyModel::new(&[], Instant::now());
    let t = reserve(&mut model).unwrap();
    settle(
        &mut model,
        &t,
        [gradual(
            Resource::Requests,
            3,
            u64::MAX,
            Duration::from_secs(60),
        )],
    );
    assert_eq!(drain(&mut model).len(), 3);
    let mut model = KeyModel::new(&[], Instant::now());
    let t = reserve(&mut model).unwrap();
    settle(
        &mut model,
        &t,
        [gradual(Resource::Requests, 0, 0, Duration::from_secs(60))],
    );
    let short = reserve(&mut model).unwrap_err();
    assert!(short.until - Instant::now() <= Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn a_reading_without_reset_comes_back_after_the_default_window() {
    let mut model = KeyModel::new(&[], Instant::now());
    let t = reserve(&mut model).unwrap();
    let q = Quota::new(Resource::Requests).with_remaining(0);
    settle(&mut model, &t, [q]);
    let short = reserve(&mut model).unwrap_err();
    assert_eq!(short.until - Instant::now(), params().default_window);
}

#[tokio::test(start_paused = true)]
async fn stale_readings_are_forgotten() {
    let mut model = KeyModel::new(&[], Instant::now());
    let t = reserve(&mut model).unwrap();
    settle(
        &mut model,
        &t,
        [gradual(Resource::Requests, 10, 3, Duration::from_secs(1))],
    );
    assert_eq!(model.snapshot(Instant::now(), &params()).len(), 1);
    advance(params().stale_after).await;
    assert!(model.snapshot(Instant::now(), &params()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_limit_change_starts_learning_over() {
    let mut model = KeyModel::new(&[], Instant::now());
    let t = reserve(&mut model).unwrap();
    settle(
        &mut model,
        &t,
        [gradual(Resource::Requests, 100, 0, Duration::from_secs(1))],
    );
    assert!(snapshot(&mut model, Resource::Requests).rate.is_some());
    advance(Duration::from_secs(1)).await;
    let t = reserve(&mut model).unwrap();
    settle(
        &mut model,
        &t,
        [gradual(Resource::Requests, 10, 10, Duration::ZERO)],
    );
    assert_eq!(snapshot(&mut model, Resource::Requests).rate, None);
    assert_eq!(snapshot(&mut model, Resource::Requests).limit, Some(10));
}

#[tokio::test(start_paused = true)]
async fn releases_give_back_what_was_never_sent() {
    let mut model = KeyModel::new(&[], Instant::now());
    let t = reserve(&mut model).unwrap();
    settle(
        &mut model,
        &t,
        [gradual(Resource::Requests, 10, 2, Duration::from_secs(60))],
    );
    let a = reserve(&mut model).unwrap();
    let b = reserve(&mut model).unwrap();
    assert!(reserve(&mut model).is_err());
    model.release(&a, false, Instant::now(), &params());
    assert!(reserve(&mut model).is_ok());
    // Sent: the server may have counted it.
    model.release(&b, true, Instant::now(), &params());
    assert!(reserve(&mut model).is_err());
}

#[tokio::test(start_paused = true)]
async fn unmetered_resources_and_the_priority_tier_are_ignored() {
    let mut model = KeyModel::new(&[], Instant::now());
    let t = reserve(&mut model).unwrap();
    settle(
        &mut model,
        &t,
        [
            Quota::new(Resource::ConcurrentRequests)
                .with_limit(1)
                .with_remaining(0),
            Quota::new(Resource::Other("widgets".into())).with_remaining(0),
            gradual(Resource::Tokens, 10, 0, Duration::from_secs(60))
                .with_dialect(Dialect::Anthropic)
                .with_policy("priority"),
            // Limit only: nothing to pace by.
            Quota::new(Resource::Requests).with_limit(1),
        ],
    );
    assert!(model.snapshot(Instant::now(), &params()).is_empty());
    assert_eq!(drain(&mut model).len(), 10_000);
}

#[tokio::test(start_paused = true)]
async fn policies_of_one_resource_are_separate_quotas() {
    let mut model = KeyModel::new(&[], Instant::now());
    let t = reserve(&mut model).unwrap();
    settle(
        &mut model,
        &t,
        [
            window(100, 50, Duration::from_secs(60)).with_policy("minute"),
            window(1000, 2, Duration::from_secs(3600)).with_policy("hour"),
        ],
    );
    assert_eq!(model.snapshot(Instant::now(), &params()).len(), 2);
    // Two left in the hour: the tighter quota decides.
    assert_eq!(drain(&mut model).len(), 2);
    let short = reserve(&mut model).unwrap_err();
    assert!(short.until - Instant::now() > Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn requests_sent_together_may_overtake_each_other() {
    let mut model = KeyModel::new(&[], Instant::now());
    let q = |remaining| gradual(Resource::Requests, 5, remaining, Duration::from_secs(60));
    let probe = reserve(&mut model).unwrap();
    settle(&mut model, &probe, [q(4)]);
    let burst = drain(&mut model);
    assert_eq!(burst.len(), 4);
    // The server decides the burst in reverse, and the first answer to
    // arrive is from the request it decided first: it reports 3 left.
    settle(&mut model, &burst[3], [q(3)]);
    // The three others may be decided after it: nothing is left.
    assert!(reserve(&mut model).is_err());
    settle(&mut model, &burst[1], [q(1)]);
    settle(&mut model, &burst[2], [q(2)]);
    assert!(reserve(&mut model).is_err());
    settle(&mut model, &burst[0], [q(0)]);
    assert!(reserve(&mut model).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_proven_reorder_widens_the_concurrency_window() {
    let mut model = KeyModel::new(&[], Instant::now());
    let q = |remaining| gradual(Resource::Requests, 10, remaining, Duration::from_secs(60));
    let probe = reserve(&mut model).unwrap();
    settle(&mut model, &probe, [q(9)]);
    let a = reserve(&mut model).unwrap();
    advance(ms(3)).await;
    let b = reserve(&mut model).unwrap();
    // Sent 3 ms apart, decided in reverse: b (8 left), then a (7 left).
    settle(&mut model, &a, [q(7)]);
    // b's reading, applied by send order, would say 8 are left; it proves
    // the reorder instead, and only lowers the estimate: 6 (b counted twice,
    // one below the truth, never above).
    settle(&mut model, &b, [q(8)]);
    assert_eq!(drain(&mut model).len(), 6);
    assert!(model.reorder_window() >= ms(4));
    // Forgotten after a while without another proof.
    advance(REORDER_MEMORY + ms(1)).await;
    let _ = reserve(&mut model);
    assert_eq!(model.reorder_window(), REORDER_SLACK);
}

#[test]
fn durations_saturate() {
    assert_eq!(duration(f64::NAN), Duration::ZERO);
    assert_eq!(duration(-1.0), Duration::ZERO);
    assert_eq!(duration(f64::INFINITY), MAX_WAIT);
    assert_eq!(duration(1e300), MAX_WAIT);
    assert_eq!(duration(0.5), ms(500));
}
