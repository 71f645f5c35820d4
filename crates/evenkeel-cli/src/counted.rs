//! A service wrapper that counts what goes on the wire: attempts, the
//! logical requests they belong to, 429s, and how long each attempt took.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use evenkeel::core::BoxError;
use hdrhistogram::Histogram;
use tokio::time::Instant;
use tower::Service;

/// The header that names a logical request on each of its attempts.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// What went over the wire, across every clone.
#[derive(Debug)]
pub(crate) struct Wire {
    attempts: AtomicU64,
    rate_limited: AtomicU64,
    /// Attempts per logical request, by `x-request-id`.
    per_request: Mutex<HashMap<Box<[u8]>, u32>>,
    /// Time from sending an attempt to its response head (or its error),
    /// in microseconds.
    attempt_time: Mutex<Histogram<u64>>,
}

impl Default for Wire {
    fn default() -> Self {
        Wire {
            attempts: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            per_request: Mutex::new(HashMap::new()),
            attempt_time: Mutex::new(micros_histogram()),
        }
    }
}

/// Microseconds, up to an hour, three significant digits.
pub(crate) fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub(crate) fn record_micros(histogram: &mut Histogram<u64>, took: Duration) {
    let micros = (took.as_micros() as u64).clamp(1, 3_600_000_000);
    let _ = histogram.record(micros);
}

impl Wire {
    pub(crate) fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    pub(crate) fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Every attempt after the first of its logical request, whatever sent
    /// it again (a retry on the same endpoint or a failover to another).
    /// Attempts without an `x-request-id` count as requests of their own.
    pub(crate) fn retries(&self) -> u64 {
        lock(&self.per_request)
            .values()
            .map(|n| u64::from(n.saturating_sub(1)))
            .sum()
    }

    /// How long attempts took on the wire.
    pub(crate) fn attempt_time(&self) -> Histogram<u64> {
        lock(&self.attempt_time).clone()
    }

    fn sent(&self, request_id: Option<&[u8]>) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        if let Some(id) = request_id {
            let mut per_request = lock(&self.per_request);
            match per_request.get_mut(id) {
                Some(n) => *n = n.saturating_add(1),
                None => {
                    per_request.insert(id.into(), 1);
                }
            }
        }
    }

    fn answered(&self, took: Duration, rate_limited: bool) {
        if rate_limited {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        record_micros(&mut lock(&self.attempt_time), took);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts every attempt sent by `inner`, the request it belongs to, every
/// 429 received, and the time each took.
#[derive(Debug, Clone)]
pub(crate) struct Counted<S> {
    inner: S,
    wire: Arc<Wire>,
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S, wire: Arc<Wire>) -> Self {
        Counted { inner, wire }
    }
}

impl<S, B, RB> Service<http::Request<B>> for Counted<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<RB>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.wire.sent(
            request
                .headers()
                .get(REQUEST_ID)
                .map(http::HeaderValue::as_bytes),
        );
        let wire = Arc::clone(&self.wire);
        let sent = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await.map_err(Into::into);
            let rate_limited = matches!(
                &result,
                Ok(response) if response.status() == http::StatusCode::TOO_MANY_REQUESTS
            );
            wire.answered(sent.elapsed(), rate_limited);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_attempts_after_the_first_of_each_request() {
        let wire = Wire::default();
        for id in ["a", "a", "a", "b", "c", "c"] {
            wire.sent(Some(id.as_bytes()));
        }
        wire.sent(None);
        assert_eq!(wire.attempts(), 7);
        assert_eq!(wire.retries(), 3);
    }
}
