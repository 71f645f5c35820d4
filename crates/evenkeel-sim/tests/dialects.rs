//! Every dialect's headers: present on every response, spelled as the real
//! APIs spell them, and read back by `evenkeel_headers` as the model holds
//! them. In-process, under paused time, so the wall clock the sim writes
//! and the one the parser reads are the same.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{header, json};
use evenkeel_core::clock::system_now;
use evenkeel_headers::format::Rfc3339;
use evenkeel_headers::{Pushback, Resource, rate_limits, retry_after};
use evenkeel_sim::{Dialect, Faults, QuotaKind, Sim, TokenCost};
use http::{Request, Response};
use http_body_util::Full;
use tower::ServiceExt;

/// 2 requests per second up to 10, 100 tokens per second up to 1000.
fn sim(dialect: Dialect) -> Sim {
    Sim::builder()
        .latency(Duration::ZERO)
        .requests(2.0, 10)
        .tokens(100.0, 1_000, TokenCost::default_header())
        .dialect(dialect)
        .build()
        .unwrap()
}

async fn spend(sim: &Sim, tokens: u64) -> Response<Full<Bytes>> {
    let req = Request::post("/v1/messages")
        .header("x-sim-tokens", tokens)
        .body(Full::new(Bytes::new()))
        .unwrap();
    sim.clone().oneshot(req).await.unwrap()
}

/// Three requests of 100 tokens: 7 requests and 700 tokens left; the
/// requests bucket is full in 1.5 s, the tokens bucket in 3 s.
async fn after_three(sim: &Sim) -> Response<Full<Bytes>> {
    spend(sim, 100).await;
    spend(sim, 100).await;
    let res = spend(sim, 100).await;
    assert_eq!(res.status(), 200);
    res
}

fn ceil_to_second(t: SystemTime) -> SystemTime {
    let d = t.duration_since(UNIX_EPOCH).unwrap();
    UNIX_EPOCH + Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

fn is_rfc3339_whole_seconds(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[tokio::test(start_paused = true)]
async fn anthropic_headers() {
    let sim = sim(Dialect::Anthropic);
    let res = after_three(&sim).await;
    let now = system_now();
    assert_eq!(
        header(&res, "anthropic-ratelimit-requests-limit"),
        Some("10")
    );
    assert_eq!(
        header(&res, "anthropic-ratelimit-requests-remaining"),
        Some("7")
    );
    assert_eq!(
        header(&res, "anthropic-ratelimit-tokens-limit"),
        Some("1000")
    );
    assert_eq!(
        header(&res, "anthropic-ratelimit-tokens-remaining"),
        Some("700")
    );
    let reset = header(&res, "anthropic-ratelimit-requests-reset").unwrap();
    assert!(is_rfc3339_whole_seconds(reset), "{reset}");
    let full_at = ceil_to_second(now + Duration::from_millis(1_500));
    assert_eq!(reset, Rfc3339(full_at).to_string());
    let tokens_full_at = ceil_to_second(now + Duration::from_secs(3));
    assert_eq!(
        header(&res, "anthropic-ratelimit-tokens-reset"),
        Some(Rfc3339(tokens_full_at).to_string().as_str())
    );
    for absent in [
        "anthropic-ratelimit-input-tokens-limit",
        "anthropic-ratelimit-output-tokens-limit",
        "x-ratelimit-limit-requests",
        "ratelimit",
    ] {
        assert!(!res.headers().contains_key(absent), "{absent}");
    }

    let limits = rate_limits(res.headers(), now);
    let requests = limits.get(&Resource::Requests).unwrap();
    assert_eq!(requests.limit, Some(10));
    assert_eq!(requests.remaining, Some(7));
    let reset = requests.reset_after.unwrap();
    assert!(
        reset >= Duration::from_millis(1_500) && reset < Duration::from_millis(2_500),
        "{reset:?}"
    );
    let tokens = limits.get(&Resource::Tokens).unwrap();
    assert_eq!((tokens.limit, tokens.remaining), (Some(1_000), Some(700)));
}

#[tokio::test(start_paused = true)]
async fn anthropic_reports_input_and_output_token_quotas_and_their_tightest_as_tokens() {
    let sim = Sim::builder()
        .latency(Duration::ZERO)
        .input_tokens(10.0, 500)
        .token_quota(evenkeel_sim::TokenQuota::output_tokens(
            10.0,
            200,
            TokenCost::Fixed(64),
        ))
        .build()
        .unwrap();
    let req = Request::post("/")
        .body(Full::new(Bytes::from_static(&[b'x'; 400])))
        .unwrap();
    let res = sim.clone().oneshot(req).await.unwrap();
    assert_eq!(
        header(&res, "anthropic-ratelimit-input-tokens-remaining"),
        Some("400")
    );
    assert_eq!(
        header(&res, "anthropic-ratelimit-output-tokens-remaining"),
        Some("136")
    );
    assert_eq!(
        header(&res, "anthropic-ratelimit-tokens-remaining"),
        Some("136")
    );
    assert_eq!(
        header(&res, "anthropic-ratelimit-tokens-limit"),
        Some("200")
    );
    let limits = rate_limits(res.headers(), system_now());
    assert_eq!(
        limits.get(&Resource::InputTokens).unwrap().remaining,
        Some(400)
    );
    assert_eq!(
        limits.get(&Resource::OutputTokens).unwrap().remaining,
        Some(136)
    );
}

#[tokio::test(start_paused = true)]
async fn openai_headers() {
    let sim = sim(Dialect::OpenAi);
    let res = after_three(&sim).await;
    assert_eq!(header(&res, "x-ratelimit-limit-requests"), Some("10"));
    assert_eq!(header(&res, "x-ratelimit-remaining-requests"), Some("7"));
    assert_eq!(header(&res, "x-ratelimit-reset-requests"), Some("1.5s"));
    assert_eq!(header(&res, "x-ratelimit-limit-tokens"), Some("1000"));
    assert_eq!(header(&res, "x-ratelimit-remaining-tokens"), Some("700"));
    assert_eq!(header(&res, "x-ratelimit-reset-tokens"), Some("3s"));
    assert!(
        !res.headers()
            .contains_key("anthropic-ratelimit-requests-limit")
    );

    let limits = rate_limits(res.headers(), system_now());
    let requests = limits.get(&Resource::Requests).unwrap();
    assert_eq!(
        (requests.limit, requests.remaining, requests.reset_after),
        (Some(10), Some(7), Some(Duration::from_millis(1_500)))
    );
    let tokens = limits.get(&Resource::Tokens).unwrap();
    assert_eq!(
        (tokens.limit, tokens.remaining, tokens.reset_after),
        (Some(1_000), Some(700), Some(Duration::from_secs(3)))
    );

    // Long and short resets as OpenAI writes them.
    let slow = Sim::builder()
        .latency(Duration::ZERO)
        .requests(1.0 / 36.0, 10)
        .dialect(Dialect::OpenAi)
        .build()
        .unwrap();
    let res = spend(&slow, 0).await;
    assert_eq!(header(&res, "x-ratelimit-reset-requests"), Some("36s"));
    for _ in 0..9 {
        spend(&slow, 0).await;
    }
    let res = spend(&slow, 0).await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "x-ratelimit-reset-requests"), Some("6m0s"));
    let fast = Sim::builder()
        .latency(Duration::ZERO)
        .requests(1000.0 / 12.0, 10)
        .dialect(Dialect::OpenAi)
        .build()
        .unwrap();
    let res = spend(&fast, 0).await;
    assert_eq!(header(&res, "x-ratelimit-reset-requests"), Some("12ms"));
}

#[tokio::test(start_paused = true)]
async fn openai_error_bodies() {
    let sim = Sim::builder()
        .latency(Duration::ZERO)
        .requests(1.0, 1)
        .dialect(Dialect::OpenAi)
        .build()
        .unwrap();
    spend(&sim, 0).await;
    let res = spend(&sim, 0).await;
    assert_eq!(res.status(), 429);
    let body = json(res).await;
    assert_eq!(body["error"]["type"], "requests");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(body["error"]["message"].is_string());
    assert!(body.get("type").is_none(), "not Anthropic-shaped: {body}");

    tokio::time::sleep(Duration::from_secs(1)).await;
    let body = json(spend(&sim, 0).await).await;
    assert_eq!(body["object"], "chat.completion");
}

#[tokio::test(start_paused = true)]
async fn ietf_headers() {
    let sim = sim(Dialect::Ietf);
    let res = after_three(&sim).await;
    assert_eq!(
        header(&res, "ratelimit-policy"),
        Some(r#""default";q=10;w=5, "tokens";q=1000;w=10;qu="tokens""#)
    );
    assert_eq!(
        header(&res, "ratelimit"),
        Some(r#""default";r=7;t=2, "tokens";r=700;t=3"#)
    );

    let limits = rate_limits(res.headers(), system_now());
    let requests = limits.get(&Resource::Requests).unwrap();
    assert_eq!(requests.limit, Some(10));
    assert_eq!(requests.remaining, Some(7));
    assert_eq!(requests.reset_after, Some(Duration::from_secs(2)));
    assert_eq!(requests.window, Some(Duration::from_secs(5)));
    let tokens = limits.get(&Resource::Tokens).unwrap();
    assert_eq!(
        (
            tokens.limit,
            tokens.remaining,
            tokens.reset_after,
            tokens.window
        ),
        (
            Some(1_000),
            Some(700),
            Some(Duration::from_secs(3)),
            Some(Duration::from_secs(10))
        )
    );
}

#[tokio::test(start_paused = true)]
async fn github_headers() {
    let sim = sim(Dialect::GitHub);
    let res = after_three(&sim).await;
    let now = system_now();
    assert_eq!(header(&res, "x-ratelimit-limit"), Some("10"));
    assert_eq!(header(&res, "x-ratelimit-remaining"), Some("7"));
    assert_eq!(header(&res, "x-ratelimit-used"), Some("3"));
    assert_eq!(header(&res, "x-ratelimit-resource"), Some("core"));
    let reset: u64 = header(&res, "x-ratelimit-reset").unwrap().parse().unwrap();
    let full_at = ceil_to_second(now + Duration::from_millis(1_500));
    assert_eq!(
        reset,
        full_at.duration_since(UNIX_EPOCH).unwrap().as_secs(),
        "epoch seconds, rounded up"
    );
    assert!(
        !res.headers().contains_key("x-ratelimit-limit-tokens"),
        "GitHub reports the request quota only"
    );

    let limits = rate_limits(res.headers(), now);
    let requests = limits.get(&Resource::Requests).unwrap();
    assert_eq!((requests.limit, requests.remaining), (Some(10), Some(7)));
    assert_eq!(requests.used, Some(3));
    assert_eq!(requests.policy.as_deref(), Some("core"));
    let reset = requests.reset_after.unwrap();
    assert!(
        reset >= Duration::from_millis(1_500) && reset < Duration::from_millis(2_500),
        "{reset:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn none_sends_no_rate_limit_headers_but_still_retry_after() {
    let sim = Sim::builder()
        .latency(Duration::ZERO)
        .requests(1.0, 1)
        .dialect(Dialect::None)
        .build()
        .unwrap();
    let ok = spend(&sim, 0).await;
    let limited = spend(&sim, 0).await;
    for res in [&ok, &limited] {
        assert!(rate_limits(res.headers(), system_now()).is_empty());
        for name in res.headers().keys() {
            assert!(!name.as_str().contains("ratelimit"), "{name}");
        }
    }
    assert_eq!(header(&limited, "retry-after"), Some("1"));
}

#[tokio::test(start_paused = true)]
async fn every_response_carries_the_headers_and_429s_carry_a_readable_retry_after() {
    for dialect in [
        Dialect::Anthropic,
        Dialect::OpenAi,
        Dialect::Ietf,
        Dialect::GitHub,
    ] {
        let sim = Sim::builder()
            .latency(Duration::ZERO)
            .requests(0.25, 2)
            .dialect(dialect)
            .retry_after_ms(true)
            .build()
            .unwrap();
        let handle = sim.handle();
        let ok = spend(&sim, 0).await;
        handle
            .set_faults(Faults::none().internal_error(1.0))
            .unwrap();
        let failed = spend(&sim, 0).await;
        handle.set_faults(Faults::none()).unwrap();
        let limited = spend(&sim, 0).await;
        assert_eq!(
            [ok.status(), failed.status(), limited.status()].map(|s| s.as_u16()),
            [200, 500, 429],
            "{dialect}"
        );
        let now = system_now();
        for (res, remaining) in [(&ok, 1), (&failed, 0), (&limited, 0)] {
            let limits = rate_limits(res.headers(), now);
            let q = limits.get(&Resource::Requests).expect("request quota");
            assert_eq!(q.limit, Some(2), "{dialect}");
            assert_eq!(q.remaining, Some(remaining), "{dialect}");
        }
        // 1 token at 0.25 per second: 4 s.
        assert_eq!(header(&limited, "retry-after"), Some("4"), "{dialect}");
        assert_eq!(
            retry_after(limited.headers(), now),
            Some(Pushback::After(Duration::from_secs(4))),
            "{dialect}"
        );
        assert_eq!(
            handle.quota(QuotaKind::Requests).unwrap().full_in,
            Duration::from_secs(8)
        );
    }
}
