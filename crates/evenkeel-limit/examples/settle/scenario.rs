//! A deterministic load scenario: many callers, one limiter, a simulated
//! server whose latency grows past its capacity.
//!
//! Shared by the `settle` example (which prints and plots it) and the
//! simulation tests of the workspace's test crate (which assert on it), so
//! the numbers reported are the numbers tested. Runs under tokio's paused
//! clock on a current-thread runtime: every run is the same.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use evenkeel_limit::{Algorithm, LimitLayer};
use evenkeel_sim::Sim;
use http::Request;
use http_body_util::Full;
use std::sync::Mutex;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

/// The server's latency with nothing queued.
pub const BASE_LATENCY: Duration = Duration::from_millis(100);
/// How often the limit is recorded.
pub const TRACE_STEP: Duration = Duration::from_millis(100);
/// How long a caller waits after a rejection before sending again.
pub const PAUSE_AFTER_REJECTION: Duration = Duration::from_millis(100);

/// What the server does and how hard it is pushed.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Requests the server takes before its latency grows (Little's law:
    /// `base × in_flight / capacity` above it).
    pub capacity: usize,
    /// More than this many in flight are answered `503` at once.
    pub reject_above: usize,
    /// A server rate limit (requests per second, burst), answered `429`.
    pub rate: Option<(f64, u64)>,
    /// Callers, each sending one request after another.
    pub callers: usize,
    /// How long the run lasts.
    pub duration: Duration,
    /// `(at, capacity)`: capacity changes during the run.
    pub capacity_changes: Vec<(Duration, usize)>,
    /// The sim's seed.
    pub seed: u64,
}

impl Scenario {
    /// Capacity 8, 503 beyond 16 in flight, 64 callers, two minutes.
    pub fn knee() -> Self {
        Scenario {
            capacity: 8,
            reject_above: 16,
            rate: None,
            callers: 64,
            duration: Duration::from_secs(120),
            capacity_changes: Vec::new(),
            seed: 7,
        }
    }

    /// [`knee`](Scenario::knee) plus a rate limit of 20 requests per second
    /// (about 2 in flight at the base latency), answered 429.
    pub fn rate_limited() -> Self {
        Scenario {
            rate: Some((20.0, 20)),
            ..Scenario::knee()
        }
    }

    /// Capacity 16, dropping to 4 at 60 s and back to 16 at 120 s; 503
    /// beyond 48 in flight; three minutes.
    pub fn capacity_step() -> Self {
        Scenario {
            capacity: 16,
            reject_above: 48,
            duration: Duration::from_secs(180),
            capacity_changes: vec![(Duration::from_secs(60), 4), (Duration::from_secs(120), 16)],
            ..Scenario::knee()
        }
    }
}

/// One attempt as a caller saw it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// When it got its permit, seconds into the run.
    pub at: f64,
    /// Its round trip, seconds.
    pub rtt: f64,
    /// The status the server answered.
    pub status: u16,
}

/// What a run recorded.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// `(seconds, limit)` every [`TRACE_STEP`].
    pub limits: Vec<(f64, usize)>,
    /// Every attempt the server answered.
    pub attempts: Vec<Attempt>,
}

impl Run {
    /// The first time after `from` from which the limit stays inside
    /// `low..=high` until `until`, if it does.
    pub fn settled(&self, from: f64, until: f64, low: usize, high: usize) -> Option<f64> {
        let window: Vec<_> = self
            .limits
            .iter()
            .filter(|(t, _)| *t >= from && *t < until)
            .collect();
        let mut settled = None;
        for (t, limit) in window {
            if (low..=high).contains(limit) {
                settled.get_or_insert(*t);
            } else {
                settled = None;
            }
        }
        settled.map(|t| t - from)
    }

    /// The `q` quantile of successful round trips of attempts sent in
    /// `from..until`, seconds.
    pub fn latency_quantile(&self, from: f64, until: f64, q: f64) -> f64 {
        let mut rtts: Vec<f64> = self
            .attempts
            .iter()
            .filter(|a| a.status == 200 && a.at >= from && a.at < until)
            .map(|a| a.rtt)
            .collect();
        assert!(!rtts.is_empty(), "no successful attempt in {from}..{until}");
        rtts.sort_by(f64::total_cmp);
        let rank = ((rtts.len() as f64 * q).ceil() as usize).clamp(1, rtts.len());
        rtts[rank - 1]
    }

    /// The share of attempts sent in `from..until` that got `status`.
    pub fn share(&self, from: f64, until: f64, status: u16) -> f64 {
        let window = self
            .attempts
            .iter()
            .filter(|a| a.at >= from && a.at < until);
        let (mut all, mut hits) = (0usize, 0usize);
        for a in window {
            all += 1;
            hits += usize::from(a.status == status);
        }
        hits as f64 / all.max(1) as f64
    }

    /// The mean limit over `from..until`.
    pub fn mean_limit(&self, from: f64, until: f64) -> f64 {
        let window: Vec<f64> = self
            .limits
            .iter()
            .filter(|(t, _)| *t >= from && *t < until)
            .map(|(_, l)| *l as f64)
            .collect();
        window.iter().sum::<f64>() / window.len().max(1) as f64
    }

    /// The highest limit over `from..until`.
    pub fn max_limit(&self, from: f64, until: f64) -> usize {
        self.limits
            .iter()
            .filter(|(t, _)| *t >= from && *t < until)
            .map(|(_, l)| *l)
            .max()
            .unwrap_or(0)
    }

    /// Successful attempts per second over `from..until`.
    pub fn goodput(&self, from: f64, until: f64) -> f64 {
        let ok = self
            .attempts
            .iter()
            .filter(|a| a.status == 200 && a.at >= from && a.at < until)
            .count();
        ok as f64 / (until - from)
    }
}

/// Runs `scenario` with `algorithm` limiting the callers. Must run on a
/// current-thread runtime with paused time.
pub async fn run<A: Algorithm>(scenario: &Scenario, algorithm: A) -> Run {
    let mut builder = Sim::builder()
        .latency(BASE_LATENCY)
        .capacity(scenario.capacity)
        .reject_above(scenario.reject_above)
        .seed(scenario.seed);
    if let Some((rate, burst)) = scenario.rate {
        builder = builder.requests(rate, burst);
    }
    let sim = builder.build().expect("valid sim");
    let layer = LimitLayer::adaptive(algorithm)
        .name("sim")
        .build()
        .expect("valid layer");
    let handle = layer.handle();
    let service = layer.layer(sim.clone());

    let origin = Instant::now();
    let end = origin + scenario.duration;
    let record = Arc::new(Mutex::new(Run::default()));

    let tracer = {
        let record = Arc::clone(&record);
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TRACE_STEP);
            while Instant::now() < end {
                tick.tick().await;
                let t = origin.elapsed().as_secs_f64();
                record
                    .lock()
                    .expect("not poisoned")
                    .limits
                    .push((t, handle.limit()));
            }
        })
    };

    let changes = {
        let sim = sim.handle();
        let changes = scenario.capacity_changes.clone();
        tokio::spawn(async move {
            for (at, capacity) in changes {
                tokio::time::sleep_until(origin + at).await;
                sim.set_capacity(capacity).expect("valid capacity");
            }
        })
    };

    let mut callers = Vec::with_capacity(scenario.callers);
    for caller in 0..scenario.callers {
        let mut service = service.clone();
        let record = Arc::clone(&record);
        callers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < end {
                let ready = ServiceExt::<Request<Full<Bytes>>>::ready(&mut service)
                    .await
                    .expect("the limiter waits, never fails");
                let sent = Instant::now();
                let request = Request::post("/v1/messages")
                    .header("x-request-id", format!("{caller}-{n}"))
                    .body(Full::new(Bytes::from_static(b"{}")))
                    .expect("valid request");
                n += 1;
                let status = match ready.call(request).await {
                    Ok(response) => response.status().as_u16(),
                    Err(_) => 0,
                };
                record.lock().expect("not poisoned").attempts.push(Attempt {
                    at: sent.duration_since(origin).as_secs_f64(),
                    rtt: sent.elapsed().as_secs_f64(),
                    status,
                });
                if status != 200 {
                    tokio::time::sleep(PAUSE_AFTER_REJECTION).await;
                }
            }
        }));
    }
    for caller in callers {
        caller.await.expect("caller task");
    }
    tracer.await.expect("tracer task");
    changes.await.expect("capacity task");
    std::mem::take(&mut *record.lock().expect("not poisoned"))
}
