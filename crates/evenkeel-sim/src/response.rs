//! Turning a [`Verdict`] into the response a real API would send: status,
//! rate-limit headers in the configured dialect, `Retry-After`, JSON body.

use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::clock;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::config::FirstAttempt;
use crate::config::{Dialect, QuotaKind};
use crate::fmt::{go_duration, rfc3339_ceil, unix_secs_ceil};
use crate::model::{Answer, Model, QuotaView, Verdict};

/// Anthropic's status for an overloaded API.
pub(crate) const STATUS_OVERLOADED: u16 = 529;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
const X_SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");

/// Builds the response for `verdict`.
pub(crate) fn build(model: &Model, verdict: &Verdict, id: Option<&str>) -> Response<Full<Bytes>> {
    let dialect = model.dialect;
    let (status, body, retry_after) = match verdict.answer {
        Answer::Success => (StatusCode::OK, success_body(dialect, verdict, id), None),
        Answer::RateLimited { kind, retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            error_body(
                dialect,
                ErrorShape::RateLimit(kind),
                &format!(
                    "rate limit exceeded: not enough {kind} left in the quota; retry after {}",
                    go_duration(retry_after)
                ),
            ),
            Some(retry_after),
        ),
        Answer::Forced {
            status,
            retry_after,
        } => {
            let message = format!("the sim is forced to answer {status}");
            (
                status,
                error_body(dialect, shape_of(status), &message),
                retry_after,
            )
        }
        Answer::Rejected => (
            StatusCode::SERVICE_UNAVAILABLE,
            error_body(
                dialect,
                ErrorShape::Overloaded,
                "overloaded: too many requests in flight",
            ),
            None,
        ),
        Answer::BodyTooLarge { limit } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            error_body(
                dialect,
                ErrorShape::TooLarge,
                &format!("request body is larger than {limit} bytes"),
            ),
            None,
        ),
        Answer::CostTooLarge { kind, cost, burst } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            error_body(
                dialect,
                ErrorShape::TooLarge,
                &format!("request costs {cost} {kind}, more than the quota ever holds ({burst})"),
            ),
            None,
        ),
        Answer::BadCostHeader => (
            StatusCode::BAD_REQUEST,
            error_body(
                dialect,
                ErrorShape::InvalidRequest,
                "the token cost header must be a non-negative integer",
            ),
            None,
        ),
        Answer::InternalError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            error_body(dialect, ErrorShape::Server, "internal server error"),
            None,
        ),
        Answer::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            error_body(dialect, ErrorShape::Overloaded, "service unavailable"),
            None,
        ),
        Answer::Overloaded => (
            StatusCode::from_u16(STATUS_OVERLOADED).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            anthropic_error("overloaded_error", "Overloaded"),
            None,
        ),
        Answer::InsufficientQuota => (
            StatusCode::TOO_MANY_REQUESTS,
            openai_error(
                "insufficient_quota",
                Value::from("insufficient_quota"),
                "You exceeded your current quota, please check your plan and billing details.",
            ),
            None,
        ),
        // Never answered; the caller resets instead.
        Answer::Reset => (
            StatusCode::INTERNAL_SERVER_ERROR,
            error_body(dialect, ErrorShape::Server, "reset"),
            None,
        ),
    };

    let mut headers = HeaderMap::with_capacity(16);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(id) = id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert(X_REQUEST_ID, id);
    }
    if verdict.answer == Answer::Overloaded {
        headers.insert(X_SHOULD_RETRY, HeaderValue::from_static("true"));
    }
    if let Some(wait) = retry_after.filter(|w| !w.is_zero()) {
        headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(wait)));
        if model.retry_after_ms {
            headers.insert(RETRY_AFTER_MS, HeaderValue::from(ceil_millis(wait).max(1)));
        }
    }
    rate_limit_headers(dialect, &verdict.quotas, verdict.at, &mut headers);

    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The answer to a first attempt refused by
/// [`SimBuilder::first_attempt`](crate::SimBuilder::first_attempt): the
/// dialect's error body for `status`, and exactly the configured headers
/// besides `content-type` and `x-request-id`.
pub(crate) fn first_attempt(
    model: &Model,
    first: &FirstAttempt,
    id: Option<&str>,
) -> Response<Full<Bytes>> {
    let body = error_body(
        model.dialect,
        shape_of(first.status),
        "the sim refuses every request's first attempt",
    );
    let mut headers = first.headers.clone();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(id) = id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert(X_REQUEST_ID, id);
    }
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = first.status;
    *response.headers_mut() = headers;
    response
}

/// The kind of error body an API sends with `status`.
fn shape_of(status: StatusCode) -> ErrorShape {
    match status.as_u16() {
        429 => ErrorShape::RateLimit(QuotaKind::Requests),
        503 | STATUS_OVERLOADED => ErrorShape::Overloaded,
        400..=499 => ErrorShape::InvalidRequest,
        _ => ErrorShape::Server,
    }
}

/// `Retry-After` seconds: rounded up, at least one.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

fn ceil_millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.as_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Writes the dialect's rate-limit headers for `quotas`, as of `at`.
pub(crate) fn rate_limit_headers(
    dialect: Dialect,
    quotas: &[QuotaView],
    at: tokio::time::Instant,
    headers: &mut HeaderMap,
) {
    if quotas.is_empty() {
        return;
    }
    let reset_time = |q: &QuotaView| clock::system_time_at(at.checked_add(q.full_in).unwrap_or(at));
    match dialect {
        Dialect::Anthropic => {
            for q in anthropic_quotas(quotas) {
                let [limit, remaining, reset] = anthropic_names(q.kind);
                headers.insert(limit, HeaderValue::from(q.limit));
                headers.insert(remaining, HeaderValue::from(q.remaining));
                insert_str(headers, reset, rfc3339_ceil(reset_time(&q)));
            }
        }
        Dialect::OpenAi => {
            let requests = quotas.iter().find(|q| q.kind == QuotaKind::Requests);
            let tokens = quotas
                .iter()
                .find(|q| q.kind == QuotaKind::Tokens)
                .or_else(|| most_restrictive_tokens(quotas));
            for (q, [limit, remaining, reset]) in
                [(requests, OPENAI_REQUESTS), (tokens, OPENAI_TOKENS)]
            {
                if let Some(q) = q {
                    headers.insert(limit, HeaderValue::from(q.limit));
                    headers.insert(remaining, HeaderValue::from(q.remaining));
                    insert_str(headers, reset, go_duration(q.full_in));
                }
            }
        }
        Dialect::Ietf => {
            let mut policy = String::new();
            let mut state = String::new();
            for q in quotas {
                if !policy.is_empty() {
                    policy.push_str(", ");
                    state.push_str(", ");
                }
                let name = ietf_name(q.kind);
                policy.push_str(&format!(
                    "\"{name}\";q={};w={}",
                    q.limit,
                    ceil_secs(q.window).max(1)
                ));
                if q.kind != QuotaKind::Requests {
                    policy.push_str(&format!(";qu=\"{}\"", q.kind));
                }
                state.push_str(&format!(
                    "\"{name}\";r={};t={}",
                    q.remaining,
                    ceil_secs(q.full_in)
                ));
            }
            insert_str(headers, HeaderName::from_static("ratelimit-policy"), policy);
            insert_str(headers, HeaderName::from_static("ratelimit"), state);
        }
        Dialect::GitHub => {
            if let Some(q) = quotas.iter().find(|q| q.kind == QuotaKind::Requests) {
                headers.insert(
                    HeaderName::from_static("x-ratelimit-limit"),
                    HeaderValue::from(q.limit),
                );
                headers.insert(
                    HeaderName::from_static("x-ratelimit-remaining"),
                    HeaderValue::from(q.remaining),
                );
                headers.insert(
                    HeaderName::from_static("x-ratelimit-reset"),
                    HeaderValue::from(unix_secs_ceil(reset_time(q))),
                );
                headers.insert(
                    HeaderName::from_static("x-ratelimit-used"),
                    HeaderValue::from(q.limit.saturating_sub(q.remaining)),
                );
                headers.insert(
                    HeaderName::from_static("x-ratelimit-resource"),
                    HeaderValue::from_static("core"),
                );
            }
        }
        Dialect::None => {}
    }
}

/// The quotas Anthropic reports: each configured one, plus a combined
/// `tokens` quota (the most restrictive token quota) when only input or
/// output tokens are limited, as the real API does.
fn anthropic_quotas(quotas: &[QuotaView]) -> impl Iterator<Item = QuotaView> + '_ {
    let combined = if quotas.iter().any(|q| q.kind == QuotaKind::Tokens) {
        None
    } else {
        most_restrictive_tokens(quotas).map(|q| QuotaView {
            kind: QuotaKind::Tokens,
            ..*q
        })
    };
    quotas.iter().copied().chain(combined)
}

fn most_restrictive_tokens(quotas: &[QuotaView]) -> Option<&QuotaView> {
    quotas
        .iter()
        .filter(|q| q.kind != QuotaKind::Requests)
        .min_by_key(|q| q.remaining)
}

fn ietf_name(kind: QuotaKind) -> &'static str {
    match kind {
        QuotaKind::Requests => "default",
        other => other.as_str(),
    }
}

fn anthropic_names(kind: QuotaKind) -> [HeaderName; 3] {
    let [l, r, t] = match kind {
        QuotaKind::Requests => [
            "anthropic-ratelimit-requests-limit",
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset",
        ],
        QuotaKind::Tokens => [
            "anthropic-ratelimit-tokens-limit",
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset",
        ],
        QuotaKind::InputTokens => [
            "anthropic-ratelimit-input-tokens-limit",
            "anthropic-ratelimit-input-tokens-remaining",
            "anthropic-ratelimit-input-tokens-reset",
        ],
        QuotaKind::OutputTokens => [
            "anthropic-ratelimit-output-tokens-limit",
            "anthropic-ratelimit-output-tokens-remaining",
            "anthropic-ratelimit-output-tokens-reset",
        ],
    };
    [
        HeaderName::from_static(l),
        HeaderName::from_static(r),
        HeaderName::from_static(t),
    ]
}

const OPENAI_REQUESTS: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit-requests"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-reset-requests"),
];

const OPENAI_TOKENS: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit-tokens"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
    HeaderName::from_static("x-ratelimit-reset-tokens"),
];

fn insert_str(headers: &mut HeaderMap, name: HeaderName, value: String) {
    if let Ok(v) = HeaderValue::try_from(value) {
        headers.insert(name, v);
    }
}

/// What kind of error a body describes, independent of dialect.
#[derive(Debug, Clone, Copy)]
enum ErrorShape {
    RateLimit(QuotaKind),
    Overloaded,
    Server,
    TooLarge,
    InvalidRequest,
}

fn error_body(dialect: Dialect, shape: ErrorShape, message: &str) -> Value {
    if dialect == Dialect::OpenAi {
        let (kind, code) = match shape {
            ErrorShape::RateLimit(QuotaKind::Requests) => {
                ("requests", Value::from("rate_limit_exceeded"))
            }
            ErrorShape::RateLimit(_) => ("tokens", Value::from("rate_limit_exceeded")),
            ErrorShape::Overloaded | ErrorShape::Server => ("server_error", Value::Null),
            ErrorShape::TooLarge => ("invalid_request_error", Value::from("request_too_large")),
            ErrorShape::InvalidRequest => ("invalid_request_error", Value::Null),
        };
        openai_error(kind, code, message)
    } else {
        let kind = match shape {
            ErrorShape::RateLimit(_) => "rate_limit_error",
            ErrorShape::Overloaded => "overloaded_error",
            ErrorShape::Server => "api_error",
            ErrorShape::TooLarge => "request_too_large",
            ErrorShape::InvalidRequest => "invalid_request_error",
        };
        anthropic_error(kind, message)
    }
}

fn anthropic_error(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

fn openai_error(kind: &str, code: Value, message: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

fn success_body(dialect: Dialect, verdict: &Verdict, id: Option<&str>) -> Value {
    let output_tokens = 1;
    if dialect == Dialect::OpenAi {
        json!({
            "id": format!("chatcmpl-sim-{}", verdict.seq),
            "object": "chat.completion",
            "created": unix_secs_ceil(clock::system_time_at(verdict.at)),
            "model": "evenkeel-sim",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": verdict.input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": verdict.input_tokens + output_tokens,
            },
            "request_id": id,
        })
    } else {
        json!({
            "id": format!("msg_sim_{:08}", verdict.seq),
            "type": "message",
            "role": "assistant",
            "model": "evenkeel-sim",
            "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": verdict.input_tokens, "output_tokens": output_tokens},
            "request_id": id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::from_nanos(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(999)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
        assert_eq!(ceil_millis(Duration::from_micros(1_001)), 2);
        assert_eq!(ceil_millis(Duration::from_millis(7)), 7);
    }
}
