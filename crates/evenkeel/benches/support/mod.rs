//! What the preset bench and the allocation test share: the upstream, the
//! requests, and the stacks compared.

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use evenkeel::{Preset, connector_fn};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, ServiceBuilder};
use tower_resilience::bulkhead::BulkheadLayer;
use tower_resilience::circuitbreaker::CircuitBreakerLayer;
use tower_resilience::retry::{RetryBudgetBuilder, RetryLayer};

pub(crate) type Req = Request<Full<Bytes>>;
pub(crate) type Res = Response<Full<Bytes>>;

/// The upstream: always ready, answers 200 with an empty body at once.
/// With rate-limit headers, it answers with a copy of them and counts
/// `anthropic-ratelimit-requests-remaining` down by one per request, as
/// the API does. Cheap to clone: stacks clone it on every call.
#[derive(Clone)]
pub(crate) struct Upstream {
    headers: Option<Arc<HeaderMap>>,
    left: Arc<AtomicU64>,
}

impl Upstream {
    pub(crate) fn plain() -> Self {
        Upstream {
            headers: None,
            left: Arc::default(),
        }
    }

    pub(crate) fn anthropic() -> Self {
        Upstream {
            headers: Some(Arc::new(anthropic_headers())),
            left: Arc::new(AtomicU64::new(REQUESTS_LIMIT - 1)),
        }
    }
}

impl<B> Service<Request<B>> for Upstream {
    type Response = Res;
    type Error = Infallible;
    type Future = Ready<Result<Res, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        drop(request);
        let mut response = Response::new(Full::new(Bytes::new()));
        if let Some(headers) = &self.headers {
            *response.headers_mut() = HeaderMap::clone(headers);
            let left = self.left.fetch_sub(1, Ordering::Relaxed);
            response.headers_mut().insert(
                "anthropic-ratelimit-requests-remaining",
                HeaderValue::from(left),
            );
        }
        ready(Ok(response))
    }
}

/// So large that no run comes near it: the quota layer learns it and never
/// paces.
const REQUESTS_LIMIT: u64 = 1_000_000_000_000;

/// What the Messages API sends on a 200: request, token, input-token and
/// output-token quotas with RFC 3339 resets, a request id and the content
/// type. `anthropic-ratelimit-requests-remaining` is added per response.
fn anthropic_headers() -> HeaderMap {
    let reset = rfc3339(SystemTime::now() + Duration::from_secs(60));
    let requests_limit = REQUESTS_LIMIT.to_string();
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("content-type", "application/json"),
        ("request-id", "req_011CPzQbQ5mBcT3yCvvVw7Ju"),
        (
            "anthropic-organization-id",
            "1b0e4ba4-2d3c-4d1f-9d4b-6c6f6e1a2b3c",
        ),
        ("anthropic-ratelimit-requests-limit", &requests_limit),
        ("anthropic-ratelimit-requests-reset", &reset),
        ("anthropic-ratelimit-tokens-limit", "2400000"),
        ("anthropic-ratelimit-tokens-remaining", "2399000"),
        ("anthropic-ratelimit-tokens-reset", &reset),
        ("anthropic-ratelimit-input-tokens-limit", "2000000"),
        ("anthropic-ratelimit-input-tokens-remaining", "1999000"),
        ("anthropic-ratelimit-input-tokens-reset", &reset),
        ("anthropic-ratelimit-output-tokens-limit", "400000"),
        ("anthropic-ratelimit-output-tokens-remaining", "400000"),
        ("anthropic-ratelimit-output-tokens-reset", &reset),
    ] {
        headers.insert(name, HeaderValue::from_str(value).unwrap());
    }
    headers
}

/// `t` as RFC 3339 in UTC, whole seconds (`2025-06-01T12:00:00Z`).
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The request of every call: a Messages API POST with two headers and a
/// small JSON body, all static.
pub(crate) fn request() -> Req {
    Request::post(http::Uri::from_static("/v1/messages"))
        .header("content-type", HeaderValue::from_static("application/json"))
        .header("x-api-key", HeaderValue::from_static("sk-ant-bench"))
        .body(Full::new(Bytes::from_static(
            br#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#,
        )))
        .unwrap()
}

/// The preset with one endpoint and every default.
pub(crate) fn preset(upstream: &Upstream) -> Preset<Upstream> {
    let upstream = upstream.clone();
    Preset::builder()
        .endpoint("http://api.example")
        .build(connector_fn(move |_| Ok(upstream.clone())))
        .unwrap()
}

/// The preset with one endpoint and every default, on `store` (given to
/// `quota_store`) instead of a store of its own.
pub(crate) fn preset_on<St>(upstream: &Upstream, store: St) -> Preset<Upstream, St>
where
    St: evenkeel::quota::QuotaStore + Clone,
{
    let upstream = upstream.clone();
    Preset::builder()
        .endpoint("http://api.example")
        .quota_store(store)
        .build(connector_fn(move |_| Ok(upstream.clone())))
        .unwrap()
}

/// tower's `Retry` with the simplest policy that can retry (clone every
/// request, retry errors only) over a `ConcurrencyLimit`.
#[derive(Clone, Copy)]
struct Trivial;

impl<E> tower::retry::Policy<Req, Res, E> for Trivial {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        result.is_err().then(|| ready(()))
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

pub(crate) fn tower_stack(
    upstream: &Upstream,
) -> impl Service<Req, Response = Res, Error: Debug> + use<> {
    ServiceBuilder::new()
        .retry(Trivial)
        .concurrency_limit(64)
        .service(upstream.clone())
}

/// tower-resilience configured as a user would for the same job: retry (3
/// attempts, exponential backoff, a token-bucket budget, 429/503/529
/// retried) → circuit breaker (defaults) → bulkhead (64 at once, waits up
/// to 10 s).
pub(crate) fn resilience_stack(
    upstream: &Upstream,
) -> impl Service<Req, Response = Res, Error: Debug> + use<> {
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent_calls(64)
        .max_wait_duration(Duration::from_secs(10))
        .build()
        .unwrap();
    let breaker = CircuitBreakerLayer::builder().build().unwrap();
    let budget = RetryBudgetBuilder::new()
        .token_bucket()
        .tokens_per_second(10.0)
        .max_tokens(100)
        .build()
        .unwrap();
    let retry = RetryLayer::builder()
        .max_attempts(3)
        .exponential_backoff(Duration::from_millis(500))
        .budget(budget)
        .retry_on_response(|res: &Res| matches!(res.status().as_u16(), 429 | 503 | 529))
        .build();
    retry.layer(breaker.layer(bulkhead.layer(upstream.clone())))
}

/// A GET with no headers and a static URI.
pub(crate) fn bare_get() -> Req {
    Request::get(http::Uri::from_static("/v1/models"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}
