use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};

use super::*;

/// 2024-05-01T12:00:00Z.
const NOW: u64 = 1_714_564_800;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn map(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_bytes(v).unwrap());
    }
    h
}

fn read(pairs: &[(&'static str, &[u8])]) -> Vec<Quota> {
    rate_limits(&map(pairs), now()).into_iter().collect()
}

fn secs(s: u64) -> Option<Duration> {
    Some(Duration::from_secs(s))
}

fn only(pairs: &[(&'static str, &[u8])]) -> Quota {
    let qs = read(pairs);
    assert_eq!(qs.len(), 1, "{qs:#?}");
    qs.into_iter().next().unwrap()
}

#[test]
fn no_rate_limit_headers_means_no_quotas() {
    assert!(read(&[]).is_empty());
    assert!(read(&[("content-type", b"application/json"), ("retry-after", b"3")]).is_empty());
}

// --- IETF structured fields -------------------------------------------------

#[test]
fn ietf_policy_and_limit_join_by_name() {
    let qs = read(&[
        (
            "ratelimit-policy",
            br#""burst";q=100;w=60,"daily";q=1000;w=86400"#,
        ),
        ("ratelimit", br#""burst";r=50;t=30"#),
    ]);
    assert_eq!(qs.len(), 2);
    let burst = &qs[0];
    assert_eq!(burst.dialect, Dialect::Ietf);
    assert_eq!(burst.resource, Resource::Requests);
    assert_eq!(burst.policy.as_deref(), Some("burst"));
    assert_eq!((burst.limit, burst.remaining), (Some(100), Some(50)));
    assert_eq!((burst.window, burst.reset_after), (secs(60), secs(30)));
    assert_eq!(burst.replenish, Replenish::Window);
    let daily = &qs[1];
    assert_eq!(daily.policy.as_deref(), Some("daily"));
    assert_eq!(
        (daily.limit, daily.remaining, daily.reset_after),
        (Some(1000), None, None)
    );
    assert_eq!(daily.window, secs(86400));
}

#[test]
fn ietf_draft_examples() {
    // Appendix B.3.1: two policies, state for one.
    let qs = read(&[
        (
            "ratelimit-policy",
            br#""hour";q=1000;w=3600, "day";q=5000;w=86400"#,
        ),
        ("ratelimit", br#""day";r=100;t=36000"#),
    ]);
    let day = qs
        .iter()
        .find(|q| q.policy.as_deref() == Some("day"))
        .unwrap();
    assert_eq!(
        (day.limit, day.remaining, day.reset_after),
        (Some(5000), Some(100), secs(36000))
    );
    assert_eq!(qs.len(), 2);

    // §4.2: no window, a partition key.
    let q = only(&[("ratelimit", br#""default";r=999;pk=:dHJpYWwxMjEzMjM=:"#)]);
    assert_eq!(q.remaining, Some(999));
    assert_eq!(q.reset_after, None);
    assert_eq!(q.partition_key.as_deref(), Some("dHJpYWwxMjEzMjM="));

    // §3.2: a quota unit.
    let q = only(&[(
        "ratelimit-policy",
        br#""peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:"#,
    )]);
    assert_eq!(q.resource, Resource::ContentBytes);
    assert_eq!((q.limit, q.window), (Some(65535), secs(10)));
    assert_eq!(q.partition_key.as_deref(), Some("sdfjLJUOUH=="));

    // FAQ: vendor parameters are comments.
    let q = only(&[
        ("ratelimit-policy", br#""sliding";q=100;w=60;burst=1000"#),
        ("ratelimit", br#""sliding";r=50;t=44"#),
    ]);
    assert_eq!(
        (q.limit, q.remaining, q.reset_after),
        (Some(100), Some(50), secs(44))
    );
}

#[test]
fn ietf_units_name_the_resource() {
    let qs = read(&[(
        "ratelimit-policy",
        br#""a";q=1;qu="requests", "b";q=2;qu="concurrent-requests", "c";q=3;qu="tokens", "d";q=4;qu="widgets", "e";q=5"#,
    )]);
    let units: Vec<_> = qs.iter().map(|q| q.resource.clone()).collect();
    assert_eq!(
        units,
        [
            Resource::Requests,
            Resource::ConcurrentRequests,
            Resource::Tokens,
            Resource::Other("widgets".into()),
            Resource::Requests
        ]
    );
}

#[test]
fn ietf_lists_may_span_lines_and_a_bad_line_is_ignored_alone() {
    let qs = read(&[
        ("ratelimit-policy", br#""a";q=10"#),
        ("ratelimit-policy", br#""b";q=20,"#), // trailing comma: malformed
        ("ratelimit-policy", br#""c";q=30"#),
        ("ratelimit", br#""c";r=3"#),
        ("ratelimit", br#""a";r=1"#),
    ]);
    let names: Vec<_> = qs.iter().map(|q| q.policy.as_deref().unwrap()).collect();
    assert_eq!(names, ["c", "a"]);
    assert_eq!(qs[0].limit, Some(30));
    assert_eq!(qs[1].remaining, Some(1));
}

#[test]
fn ietf_items_missing_required_parameters_are_skipped() {
    let qs = read(&[
        ("ratelimit-policy", br#""noq";w=60, "neg";q=-1, "ok";q=5"#),
        (
            "ratelimit",
            br#""empty";pk=:YQ==:, "bad";r=-1;t=-1, "ok";r=2;t=-3"#,
        ),
    ]);
    assert_eq!(qs.len(), 1, "{qs:#?}");
    let q = &qs[0];
    assert_eq!(q.policy.as_deref(), Some("ok"));
    // A negative `t` is malformed and ignored; `r` still counts.
    assert_eq!(
        (q.limit, q.remaining, q.reset_after),
        (Some(5), Some(2), None)
    );
}

#[test]
fn ietf_an_item_without_r_keeps_its_t() {
    // The draft's own example of a policy whose state gives only the reset.
    let q = only(&[
        ("ratelimit-policy", b"quota;q=100;w=1"),
        ("ratelimit", b"quota;t=1"),
    ]);
    assert_eq!(q.dialect, Dialect::Ietf);
    assert_eq!(q.resource, Resource::Requests);
    assert_eq!(q.policy.as_deref(), Some("quota"));
    assert_eq!((q.limit, q.remaining), (Some(100), None));
    assert_eq!((q.window, q.reset_after), (secs(1), secs(1)));
    assert!(!q.is_exhausted());

    // Without a policy item it is still a quota, with nothing but the reset.
    let q = only(&[("ratelimit", br#""nor";t=5"#)]);
    assert_eq!((q.limit, q.remaining, q.reset_after), (None, None, secs(5)));
    // A malformed `r` beside a good `t` is ignored alone.
    let q = only(&[("ratelimit", br#""p";r=1.5;t=7"#)]);
    assert_eq!((q.remaining, q.reset_after), (None, secs(7)));
}

#[test]
fn ietf_token_names_and_escaped_strings_are_names_too() {
    let q = only(&[
        ("ratelimit-policy", br#"default;q=100;w=60"#),
        ("ratelimit", br#""default";r=7"#),
    ]);
    assert_eq!((q.limit, q.remaining), (Some(100), Some(7)));
    let q = only(&[("ratelimit", br#""a\"b";r=1"#)]);
    assert_eq!(q.policy.as_deref(), Some("a\"b"));
}

#[test]
fn ietf_repeated_policy_names_keep_the_first() {
    let q = only(&[("ratelimit", br#""x";r=1, "x";r=2"#)]);
    assert_eq!(q.remaining, Some(1));
}

#[test]
fn ietf_same_policy_in_two_partitions_is_two_quotas() {
    let qs = read(&[("ratelimit", br#""u";r=1;pk=:YQ==:, "u";r=2;pk=:Yg==:"#)]);
    assert_eq!(qs.len(), 2);
}

// --- Earlier IETF drafts ------------------------------------------------------

#[test]
fn draft_split_headers() {
    let q = only(&[
        ("ratelimit-limit", b"100"),
        ("ratelimit-remaining", b"42"),
        ("ratelimit-reset", b"17"),
    ]);
    assert_eq!(q.dialect, Dialect::IetfDraft);
    assert_eq!(
        (q.limit, q.remaining, q.reset_after),
        (Some(100), Some(42), secs(17))
    );
    assert_eq!(q.window, None);
}

#[test]
fn draft_limit_with_quota_policies_gives_the_window() {
    let q = only(&[("ratelimit-limit", b"10, 10;w=1, 50;w=60")]);
    assert_eq!((q.limit, q.window), (Some(10), secs(1)));
    let q = only(&[("ratelimit-limit", b"50, 10;w=1, 50;w=60")]);
    assert_eq!((q.limit, q.window), (Some(50), secs(60)));
    let q = only(&[
        ("ratelimit-limit", b"100"),
        ("ratelimit-policy", b"100;w=3600"),
    ]);
    assert_eq!((q.limit, q.window), (Some(100), secs(3600)));
}

#[test]
fn draft_7_dictionary() {
    // express-rate-limit's `standardHeaders: 'draft-7'`.
    let q = only(&[
        ("ratelimit", b"limit=100, remaining=25, reset=5"),
        ("ratelimit-policy", b"100;w=900"),
    ]);
    assert_eq!(q.dialect, Dialect::IetfDraft);
    assert_eq!(
        (q.limit, q.remaining, q.reset_after),
        (Some(100), Some(25), secs(5))
    );
    assert_eq!(q.window, secs(900));
}

// --- X-RateLimit ----------------------------------------------------------------

#[test]
fn github() {
    let q = only(&[
        ("x-ratelimit-limit", b"5000"),
        ("x-ratelimit-remaining", b"4999"),
        ("x-ratelimit-used", b"1"),
        ("x-ratelimit-reset", b"1714566600"),
        ("x-ratelimit-resource", b"core"),
    ]);
    assert_eq!(q.dialect, Dialect::XRateLimit);
    assert_eq!(
        (q.limit, q.remaining, q.used),
        (Some(5000), Some(4999), Some(1))
    );
    assert_eq!(q.reset_after, secs(1800));
    assert_eq!(q.policy.as_deref(), Some("core"));
    assert_eq!(q.replenish, Replenish::Window);
}

#[test]
fn x_twitter_hyphenated() {
    let q = only(&[
        ("x-rate-limit-limit", b"900"),
        ("x-rate-limit-remaining", b"847"),
        ("x-rate-limit-reset", b"1714565700"),
    ]);
    assert_eq!(q.dialect, Dialect::XRateLimit);
    assert_eq!(
        (q.limit, q.remaining, q.reset_after),
        (Some(900), Some(847), secs(900))
    );
}

#[test]
fn the_epoch_rule() {
    let reset = |v: &[u8]| only(&[("x-ratelimit-reset", v)]).reset_after;
    assert_eq!(reset(b"60"), secs(60));
    assert_eq!(reset(b"0"), secs(0));
    assert_eq!(reset(b"1.5"), Some(Duration::from_millis(1500)));
    assert_eq!(reset(b"999999999"), secs(999_999_999)); // still a delay
    assert_eq!(reset(b"1000000000"), secs(0)); // 2001: in the past
    assert_eq!(reset(b"1714564830"), secs(30)); // Unix seconds
    assert_eq!(reset(b"1714564830.25"), Some(Duration::from_millis(30_250)));
    assert_eq!(reset(b"1714564830000"), secs(30)); // Unix milliseconds
    assert_eq!(reset(b"1714564799999"), secs(0));
    assert_eq!(reset(b"1714564700"), secs(0)); // in the past
    assert_eq!(reset(b"Wed, 01 May 2024 12:00:45 GMT"), secs(45));
    assert_eq!(reset(b"2024-05-01T12:01:00Z"), secs(60));
    assert_eq!(reset(b"1e308"), Some(Duration::MAX));
    assert_eq!(EPOCH_SECONDS_FROM, 1_000_000_000);
    assert_eq!(EPOCH_MILLIS_FROM, 1_000_000_000_000);
}

#[test]
fn kong_windows_are_policies() {
    let qs = read(&[
        ("x-ratelimit-limit-minute", b"5"),
        ("x-ratelimit-remaining-minute", b"4"),
        ("x-ratelimit-limit-hour", b"100"),
        ("x-ratelimit-remaining-hour", b"90"),
        ("ratelimit-limit", b"5"),
        ("ratelimit-remaining", b"4"),
        ("ratelimit-reset", b"47"),
    ]);
    assert_eq!(qs.len(), 3);
    assert_eq!(qs[0].dialect, Dialect::IetfDraft);
    let minute = &qs[1];
    assert_eq!(minute.policy.as_deref(), Some("minute"));
    assert_eq!(
        (minute.limit, minute.remaining, minute.window),
        (Some(5), Some(4), secs(60))
    );
    assert_eq!(qs[2].policy.as_deref(), Some("hour"));
    assert_eq!(qs[2].window, secs(3600));
}

#[test]
fn one_quota_in_several_generic_dialects_is_reported_once() {
    // express-rate-limit with `standardHeaders: 'draft-6'` and `legacyHeaders`.
    let qs = read(&[
        ("x-ratelimit-limit", b"100"),
        ("x-ratelimit-remaining", b"99"),
        ("x-ratelimit-reset", b"1714565700"),
        ("ratelimit-policy", b"100;w=900"),
        ("ratelimit-limit", b"100"),
        ("ratelimit-remaining", b"99"),
        ("ratelimit-reset", b"900"),
    ]);
    assert_eq!(qs.len(), 1, "{qs:#?}");
    assert_eq!(qs[0].dialect, Dialect::IetfDraft);
    assert_eq!(qs[0].window, secs(900));

    let qs = read(&[
        ("ratelimit", br#""100-in-15min";r=99;t=900"#),
        ("ratelimit-policy", br#""100-in-15min";q=100;w=900"#),
        ("x-ratelimit-limit", b"100"),
        ("x-rate-limit-limit", b"100"),
    ]);
    assert_eq!(qs.len(), 1);
    assert_eq!(qs[0].dialect, Dialect::Ietf);

    let qs = read(&[
        ("x-rate-limit-remaining", b"1"),
        ("x-ratelimit-remaining", b"2"),
    ]);
    assert_eq!(qs.len(), 1);
    assert_eq!(qs[0].remaining, Some(2));

    // A generic dialect reporting another resource is kept.
    let qs = read(&[
        (
            "ratelimit-policy",
            br#""conc";q=10;qu="concurrent-requests""#,
        ),
        ("x-ratelimit-remaining", b"2"),
    ]);
    assert_eq!(qs.len(), 2);
}

// --- Discord --------------------------------------------------------------------

#[test]
fn discord() {
    let q = only(&[
        ("x-ratelimit-limit", b"5"),
        ("x-ratelimit-remaining", b"0"),
        ("x-ratelimit-reset", b"1714564864.570"),
        ("x-ratelimit-reset-after", b"64.57"),
        ("x-ratelimit-bucket", b"abcd1234"),
    ]);
    assert_eq!(q.dialect, Dialect::Discord);
    assert_eq!((q.limit, q.remaining), (Some(5), Some(0)));
    assert_eq!(q.reset_after, Some(Duration::from_millis(64_570)));
    assert_eq!(q.policy.as_deref(), Some("abcd1234"));
    assert_eq!(q.replenish, Replenish::Window);
}

#[test]
fn discord_prefers_reset_after_and_falls_back_to_the_float_epoch() {
    let q = only(&[
        ("x-ratelimit-reset", b"1714564810.5"),
        ("x-ratelimit-reset-after", b"3"),
        ("x-ratelimit-bucket", b"b"),
    ]);
    assert_eq!(q.reset_after, secs(3));
    let q = only(&[
        ("x-ratelimit-reset", b"1714564810.5"),
        ("x-ratelimit-reset-after", b"soon"),
        ("x-ratelimit-bucket", b"b"),
    ]);
    assert_eq!(q.reset_after, Some(Duration::from_millis(10_500)));
}

#[test]
fn discord_scope() {
    let q = only(&[
        ("x-ratelimit-limit", b"10"),
        ("x-ratelimit-remaining", b"0"),
        ("x-ratelimit-reset-after", b"1.5"),
        ("x-ratelimit-scope", b"shared"),
    ]);
    assert_eq!(q.scope.as_deref(), Some("shared"));
    let q = only(&[
        ("x-ratelimit-global", b"true"),
        ("x-ratelimit-reset-after", b"2"),
    ]);
    assert_eq!(q.scope.as_deref(), Some("global"));
    // Only the global flag: nothing to report.
    assert!(read(&[("x-ratelimit-global", b"true")]).is_empty());
}

// --- OpenAI ---------------------------------------------------------------------

#[test]
fn openai() {
    let qs = read(&[
        ("x-ratelimit-limit-requests", b"60"),
        ("x-ratelimit-limit-tokens", b"150000"),
        ("x-ratelimit-remaining-requests", b"59"),
        ("x-ratelimit-remaining-tokens", b"149984"),
        ("x-ratelimit-reset-requests", b"1s"),
        ("x-ratelimit-reset-tokens", b"6m0s"),
    ]);
    assert_eq!(qs.len(), 2);
    let (r, t) = (&qs[0], &qs[1]);
    assert_eq!(
        (r.resource.clone(), r.dialect),
        (Resource::Requests, Dialect::OpenAi)
    );
    assert_eq!(
        (r.limit, r.remaining, r.reset_after),
        (Some(60), Some(59), secs(1))
    );
    assert_eq!(t.resource, Resource::Tokens);
    assert_eq!(
        (t.limit, t.remaining, t.reset_after),
        (Some(150_000), Some(149_984), secs(360))
    );
    assert_eq!(t.replenish, Replenish::Gradual);
}

#[test]
fn openai_compatible_servers() {
    // Groq.
    let q = only(&[("x-ratelimit-reset-requests", b"2m59.56s")]);
    assert_eq!(q.reset_after, Some(Duration::from_millis(179_560)));
    let q = only(&[("x-ratelimit-reset-tokens", b"12ms")]);
    assert_eq!(q.reset_after, Some(Duration::from_millis(12)));
    // A bare number is seconds; a negative duration has passed.
    assert_eq!(
        only(&[("x-ratelimit-reset-tokens", b"20")]).reset_after,
        secs(20)
    );
    assert_eq!(
        only(&[("x-ratelimit-reset-tokens", b"-1s")]).reset_after,
        secs(0)
    );
    let q = only(&[("x-ratelimit-remaining-tokens_usage_based", b"10")]);
    assert_eq!(
        (q.resource.clone(), q.policy.as_deref()),
        (Resource::Tokens, Some("usage_based"))
    );
}

#[test]
fn azure_sentinels_are_ignored_without_losing_the_rest() {
    let q = only(&[
        ("x-ratelimit-limit-tokens", b"-1"),
        ("x-ratelimit-remaining-tokens", b"120000"),
    ]);
    assert_eq!((q.limit, q.remaining), (None, Some(120_000)));
    assert!(read(&[("x-ratelimit-remaining-requests", b"-1")]).is_empty());
}

// --- Anthropic --------------------------------------------------------------------

#[test]
fn anthropic() {
    let qs = read(&[
        ("anthropic-ratelimit-requests-limit", b"4000"),
        ("anthropic-ratelimit-requests-remaining", b"3999"),
        (
            "anthropic-ratelimit-requests-reset",
            b"2024-05-01T12:00:01Z",
        ),
        ("anthropic-ratelimit-tokens-limit", b"480000"),
        ("anthropic-ratelimit-tokens-remaining", b"479000"),
        ("anthropic-ratelimit-tokens-reset", b"2024-05-01T12:00:02Z"),
        ("anthropic-ratelimit-input-tokens-limit", b"400000"),
        ("anthropic-ratelimit-input-tokens-remaining", b"399000"),
        (
            "anthropic-ratelimit-input-tokens-reset",
            b"2024-05-01T12:00:03Z",
        ),
        ("anthropic-ratelimit-output-tokens-limit", b"80000"),
        ("anthropic-ratelimit-output-tokens-remaining", b"80000"),
        (
            "anthropic-ratelimit-output-tokens-reset",
            b"2024-05-01T12:00:00Z",
        ),
    ]);
    let got: Vec<_> = qs
        .iter()
        .map(|q| (q.resource.clone(), q.limit, q.remaining, q.reset_after))
        .collect();
    assert_eq!(
        got,
        [
            (Resource::Requests, Some(4000), Some(3999), secs(1)),
            (Resource::Tokens, Some(480_000), Some(479_000), secs(2)),
            (Resource::InputTokens, Some(400_000), Some(399_000), secs(3)),
            (Resource::OutputTokens, Some(80_000), Some(80_000), secs(0)),
        ]
    );
    assert!(
        qs.iter()
            .all(|q| q.dialect == Dialect::Anthropic && q.replenish == Replenish::Gradual)
    );
}

#[test]
fn anthropic_resources_sharing_one_reset_each_read_it() {
    let at = b"2024-05-01T12:00:07Z";
    let qs = read(&[
        ("anthropic-ratelimit-requests-reset", at),
        ("anthropic-ratelimit-tokens-reset", b"not a date"),
        ("anthropic-ratelimit-input-tokens-reset", at),
        ("anthropic-ratelimit-output-tokens-reset", at),
        ("anthropic-ratelimit-output-tokens-limit", b"80000"),
        ("anthropic-ratelimit-tokens-limit", b"480000"),
    ]);
    let got: Vec<_> = qs
        .iter()
        .map(|q| (q.resource.clone(), q.reset_after))
        .collect();
    assert_eq!(
        got,
        [
            (Resource::Requests, secs(7)),
            (Resource::Tokens, None),
            (Resource::InputTokens, secs(7)),
            (Resource::OutputTokens, secs(7)),
        ]
    );
}

#[test]
fn anthropic_reset_offsets_fractions_and_the_past() {
    let reset = |v: &[u8]| only(&[("anthropic-ratelimit-requests-reset", v)]).reset_after;
    assert_eq!(reset(b"2024-05-01T14:00:10+02:00"), secs(10));
    assert_eq!(
        reset(b"2024-05-01T12:00:00.250Z"),
        Some(Duration::from_millis(250))
    );
    assert_eq!(reset(b"2024-04-30T12:00:00Z"), secs(0));
    assert!(read(&[("anthropic-ratelimit-requests-reset", b"1714564810")]).is_empty());
}

#[test]
fn anthropic_priority_tier() {
    let qs = read(&[
        ("anthropic-priority-input-tokens-limit", b"100000"),
        ("anthropic-priority-input-tokens-remaining", b"90000"),
        (
            "anthropic-priority-output-tokens-reset",
            b"2024-05-01T12:00:05Z",
        ),
    ]);
    assert_eq!(qs.len(), 2);
    assert!(qs.iter().all(|q| q.policy.as_deref() == Some("priority")));
    assert_eq!(qs[0].resource, Resource::InputTokens);
    assert_eq!(qs[1].reset_after, secs(5));
}

#[test]
fn unknown_anthropic_headers_are_ignored() {
    assert!(
        read(&[
            ("anthropic-ratelimit-unified-status", b"allowed"),
            ("anthropic-ratelimit-widgets-limit", b"5"),
            ("anthropic-organization-id", b"abc"),
            ("anthropic-ratelimit-requests-blah", b"5"),
        ])
        .is_empty()
    );
}

// --- Shopify ----------------------------------------------------------------------

#[test]
fn shopify() {
    let q = only(&[("x-shopify-shop-api-call-limit", b"32/40")]);
    assert_eq!(q.dialect, Dialect::Shopify);
    assert_eq!(
        (q.used, q.limit, q.remaining),
        (Some(32), Some(40), Some(8))
    );
    assert_eq!(q.replenish, Replenish::Gradual);
    let q = only(&[("x-shopify-shop-api-call-limit", b" 45 / 40 ")]);
    assert_eq!(q.remaining, Some(0));
    for bad in [&b"32"[..], b"32/", b"/40", b"a/b", b"-1/40", b"32/40/50"] {
        assert!(
            read(&[("x-shopify-shop-api-call-limit", bad)]).is_empty(),
            "{bad:?}"
        );
    }
}

// --- Linear -----------------------------------------------------------------------

#[test]
fn linear_requests_and_complexity() {
    let qs = read(&[
        ("x-ratelimit-requests-limit", b"1500"),
        ("x-ratelimit-requests-remaining", b"1499"),
        ("x-ratelimit-requests-reset", b"1714568400000"),
        ("x-complexity", b"12"),
        ("x-ratelimit-complexity-limit", b"250000"),
        ("x-ratelimit-complexity-remaining", b"249988"),
        ("x-ratelimit-complexity-reset", b"1714564800250"),
    ]);
    assert_eq!(qs.len(), 2, "{qs:#?}");
    let requests = &qs[0];
    assert_eq!(requests.dialect, Dialect::Linear);
    assert_eq!(requests.resource, Resource::Requests);
    assert_eq!(
        (requests.limit, requests.remaining, requests.reset_after),
        (Some(1500), Some(1499), secs(3600))
    );
    assert_eq!(requests.replenish, Replenish::Gradual);
    assert_eq!((requests.window, requests.policy.as_deref()), (None, None));
    let points = &qs[1];
    assert_eq!(points.resource, Resource::Complexity);
    assert_eq!(
        (points.limit, points.remaining, points.reset_after),
        (
            Some(250_000),
            Some(249_988),
            Some(Duration::from_millis(250))
        )
    );
}

#[test]
fn linear_resets_are_milliseconds_whatever_their_size() {
    let reset = |v: &[u8]| only(&[("x-ratelimit-requests-reset", v)]).reset_after;
    assert_eq!(reset(b"1714564830000"), secs(30));
    assert_eq!(reset(b"1714564830000.5"), Some(Duration::new(30, 500_000)));
    assert_eq!(reset(b"1714564700000"), secs(0)); // in the past
    // Not the epoch rule: a small number is an instant in 1970, long past.
    assert_eq!(reset(b"60"), secs(0));
    assert_eq!(reset(b"1e308"), Some(Duration::MAX));
    for bad in [&b"-1"[..], b"soon", b"", b"Wed, 01 May 2024 12:00:45 GMT"] {
        assert!(
            read(&[("x-ratelimit-requests-reset", bad)]).is_empty(),
            "{bad:?}"
        );
    }
}

#[test]
fn linear_is_told_apart_from_openai_and_the_generic_family() {
    let qs = read(&[
        ("x-ratelimit-requests-remaining", b"7"),
        ("x-ratelimit-remaining-requests", b"8"),
        ("x-ratelimit-remaining", b"9"),
    ]);
    let got: Vec<_> = qs.iter().map(|q| (q.dialect, q.remaining)).collect();
    assert_eq!(
        got,
        [
            (Dialect::XRateLimit, Some(9)),
            (Dialect::OpenAi, Some(8)),
            (Dialect::Linear, Some(7)),
        ]
    );
    // Fields Linear does not send, and families it does not have, are ignored.
    assert!(
        read(&[
            ("x-ratelimit-requests-used", b"1"),
            ("x-ratelimit-requests-limits", b"1"),
            ("x-ratelimit-complexity", b"1"),
            ("x-ratelimit-widgets-limit", b"1"),
        ])
        .is_empty()
    );
}

// --- Several dialects, bad input ---------------------------------------------------

#[test]
fn dialects_come_in_a_fixed_order() {
    let qs = read(&[
        ("x-ratelimit-complexity-remaining", b"1"),
        ("x-shopify-shop-api-call-limit", b"1/40"),
        ("anthropic-ratelimit-requests-remaining", b"1"),
        ("x-ratelimit-remaining-requests", b"1"),
        ("x-ratelimit-remaining", b"1"),
        ("ratelimit-remaining", b"1"),
        ("ratelimit-policy", br#""p";q=5;qu="tokens""#),
        ("ratelimit", br#""p";r=1"#),
    ]);
    let dialects: Vec<_> = qs.iter().map(|q| q.dialect).collect();
    assert_eq!(
        dialects,
        [
            Dialect::Ietf,
            Dialect::IetfDraft,
            Dialect::OpenAi,
            Dialect::Anthropic,
            Dialect::Shopify,
            Dialect::Linear
        ]
    );
}

#[test]
fn the_first_valid_value_of_a_repeated_header_wins() {
    let q = only(&[
        ("x-ratelimit-remaining", b"lots"),
        ("x-ratelimit-remaining", b"5"),
        ("x-ratelimit-remaining", b"3"),
    ]);
    assert_eq!(q.remaining, Some(5));
}

#[test]
fn absurd_and_foreign_values_are_ignored() {
    for bad in [
        &b"18446744073709551616"[..],
        b"-5",
        b"1e3",
        b"NaN",
        b"inf",
        b"\xff\xfe",
        b"",
        b"5 5",
        b"0x10",
    ] {
        assert!(
            read(&[("x-ratelimit-remaining", bad)]).is_empty(),
            "{bad:?}"
        );
        assert!(
            read(&[("anthropic-ratelimit-tokens-limit", bad)]).is_empty(),
            "{bad:?}"
        );
    }
    assert!(read(&[("x-ratelimit-reset", b"-5")]).is_empty());
    assert!(read(&[("x-ratelimit-reset", b"NaN")]).is_empty());
    assert!(read(&[("x-ratelimit-reset-tokens", b"\xce")]).is_empty());
    assert!(read(&[("ratelimit", b"\"\xff\";r=1")]).is_empty());
    // A resource name that is not visible ASCII is dropped, not the quota.
    let q = only(&[
        ("x-ratelimit-remaining", b"1"),
        ("x-ratelimit-resource", b"c\xffre"),
    ]);
    assert_eq!(q.policy, None);
}

#[test]
fn a_bad_header_leaves_the_others_alone() {
    let qs = read(&[
        ("x-ratelimit-limit-requests", b"-1"),
        ("x-ratelimit-remaining-requests", b"\xff"),
        ("x-ratelimit-limit-tokens", b"1000"),
        ("ratelimit", b"garbage;;"),
        ("anthropic-ratelimit-requests-reset", b"yesterday"),
        ("anthropic-ratelimit-requests-limit", b"50"),
    ]);
    let got: Vec<_> = qs
        .iter()
        .map(|q| (q.dialect, q.resource.clone(), q.limit))
        .collect();
    assert_eq!(
        got,
        [
            (Dialect::OpenAi, Resource::Tokens, Some(1000)),
            (Dialect::Anthropic, Resource::Requests, Some(50)),
        ]
    );
}
