//! Properties over large input spaces: nothing panics on any header map, and
//! every format the crate writes reads back to what was written.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use evenkeel_headers::format::{
    self, AsctimeDate, DelaySeconds, GoDuration, HttpDate, Millis, Rfc850Date, Rfc3339, Seconds,
};
use evenkeel_headers::{
    Dialect, Pushback, Quota, Replenish, Resource, rate_limits, retry_after,
    retry_after_with_source, should_retry,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

/// Every header name the crate reads, and a few near misses.
const NAMES: &[&str] = &[
    "retry-after",
    "retry-after-ms",
    "x-ms-retry-after-ms",
    "x-amz-retry-after",
    "grpc-retry-pushback-ms",
    "x-should-retry",
    "stripe-should-retry",
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimitx",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-used",
    "x-ratelimit-resource",
    "x-ratelimit-reset-after",
    "x-ratelimit-bucket",
    "x-ratelimit-scope",
    "x-ratelimit-global",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-reset-tokens_usage_based",
    "x-ratelimit-limit-minute",
    "x-ratelimit-remaining-minute",
    "x-ratelimit-limit-year",
    "x-ratelimit-",
    "x-ratelimit-limit-",
    "x-rate-limit-limit",
    "x-rate-limit-remaining",
    "x-rate-limit-reset",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-limit",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-remaining",
    "anthropic-priority-input-tokens-limit",
    "anthropic-priority-output-tokens-reset",
    "anthropic-ratelimit-",
    "anthropic-priority-",
    "x-shopify-shop-api-call-limit",
];

/// Values that look like what the parsers expect, and bytes that do not.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..48),
        "[0-9.eE+-]{0,24}".prop_map(String::into_bytes),
        "[0-9hms.µu-]{0,16}".prop_map(String::into_bytes),
        r#"[a-z0-9 ,;=":*?@%().\\/-]{0,48}"#.prop_map(String::into_bytes),
        "[A-Za-z]{3}, [0-9]{1,2}[ -][A-Za-z]{3}[ -][0-9]{2,4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
            .prop_map(String::into_bytes),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})"
            .prop_map(String::into_bytes),
        prop::sample::select(vec![
            "-1", "0", "1e308", "NaN", "inf", "-inf", "18446744073709551616", "1.5", "true",
            "false", "32/40", "6m0s", "1h2m3.5s", "\"a\";r=1;t=2", "\"a\";q=5;w=60;qu=\"tokens\"",
            "limit=5, remaining=1, reset=3", "10, 10;w=1",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

fn header_map() -> impl Strategy<Value = HeaderMap> {
    proptest::collection::vec((prop::sample::select(NAMES), value()), 0..24).prop_map(|pairs| {
        let mut h = HeaderMap::new();
        for (name, v) in pairs {
            if let Ok(v) = HeaderValue::from_bytes(&v) {
                h.append(HeaderName::from_static(name), v);
            }
        }
        h
    })
}

fn any_time() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        (0u64..8_000_000_000, 0u32..1_000_000_000)
            .prop_map(|(s, n)| UNIX_EPOCH + Duration::new(s, n)),
        (0u64..400_000_000_000).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        (0u64..100_000_000_000).prop_map(|s| UNIX_EPOCH - Duration::from_secs(s)),
    ]
}

/// Whole seconds between 2001-09-09 and 2096 (the epoch rule needs a clock
/// after 2001 for Unix timestamps to read as timestamps).
fn modern_now() -> impl Strategy<Value = SystemTime> {
    (1_000_000_000u64..4_000_000_000).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

fn secs_since_epoch(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i128,
        Err(e) => -(e.duration().as_secs() as i128) - i128::from(e.duration().subsec_nanos() > 0),
    }
}

fn one(name: &'static str, value: String) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        HeaderName::from_static(name),
        HeaderValue::try_from(value).unwrap(),
    );
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn nothing_panics_on_any_header_map(headers in header_map(), now in any_time()) {
        let pushback = retry_after(&headers, now);
        prop_assert_eq!(pushback, retry_after_with_source(&headers, now).map(|(p, _)| p));
        let _ = should_retry(&headers);
        let limits = rate_limits(&headers, now);
        for q in &limits {
            prop_assert!(q.limit.is_some() || q.remaining.is_some() || q.reset_after.is_some() || q.used.is_some());
        }
        // Whatever was read can be written again.
        let mut out = HeaderMap::new();
        format::insert_quotas(&mut out, &limits, now);
        let _ = rate_limits(&out, now);
    }

    #[test]
    fn delay_seconds_round_trip(s in 0u64..u64::MAX) {
        let h = one("retry-after", DelaySeconds(Duration::from_secs(s)).to_string());
        prop_assert_eq!(retry_after(&h, UNIX_EPOCH), Some(Pushback::After(Duration::from_secs(s))));
    }

    #[test]
    fn fractional_seconds_round_trip(s in 0u64..1_000_000_000_000, n in 0u32..1_000_000_000) {
        let d = Duration::new(s, n);
        let h = one("retry-after", Seconds(d).to_string());
        prop_assert_eq!(retry_after(&h, UNIX_EPOCH), Some(Pushback::After(d)));
    }

    #[test]
    fn milliseconds_round_trip(
        s in 0u64..1_000_000_000_000,
        n in 0u32..1_000_000_000,
        name in prop::sample::select(vec!["retry-after-ms", "x-ms-retry-after-ms", "x-amz-retry-after"]),
    ) {
        let d = Duration::new(s, n);
        let h = one(name, Millis(d).to_string());
        prop_assert_eq!(retry_after(&h, UNIX_EPOCH), Some(Pushback::After(d)));
    }

    #[test]
    fn grpc_pushback_round_trips(ms in any::<u64>()) {
        let h = one("grpc-retry-pushback-ms", ms.to_string());
        prop_assert_eq!(retry_after(&h, UNIX_EPOCH), Some(Pushback::After(Duration::from_millis(ms))));
    }

    #[test]
    fn http_dates_round_trip_in_every_form(
        at in 0u64..253_402_300_800,
        now in 0u64..253_402_300_800,
        form in 0..3,
    ) {
        // A two-digit year reads back only within 50 years of the clock:
        // for that form the instant is drawn from the window it can name
        // (rejecting the others would reject almost every case).
        let fifty_years = 50 * 31_556_952;
        let at = if form == 2 {
            let low = (now + 86_400 * 366 + 1).saturating_sub(fifty_years);
            low + at % (now + fifty_years + 1 - low)
        } else {
            at
        };
        prop_assume!(at < 253_402_300_800);
        let (at_t, now_t) = (UNIX_EPOCH + Duration::from_secs(at), UNIX_EPOCH + Duration::from_secs(now));
        let text = match form {
            0 => HttpDate(at_t).to_string(),
            1 => AsctimeDate(at_t).to_string(),
            _ => Rfc850Date(at_t).to_string(),
        };
        let want = Duration::from_secs(at.saturating_sub(now));
        prop_assert_eq!(retry_after(&one("retry-after", text), now_t), Some(Pushback::After(want)));
    }

    #[test]
    fn imf_fixdate_agrees_with_httpdate(at in 0u64..253_402_300_800) {
        let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(at));
        let theirs = httpdate::parse_http_date(&text).unwrap();
        let ours = retry_after(&one("retry-after", text), UNIX_EPOCH);
        prop_assert_eq!(ours, Some(Pushback::After(theirs.duration_since(UNIX_EPOCH).unwrap())));
    }

    #[test]
    fn go_durations_round_trip(s in 0u64..u64::MAX / 2, n in 0u32..1_000_000_000) {
        let d = Duration::new(s, n);
        let h = one("x-ratelimit-reset-tokens", GoDuration(d).to_string());
        let limits = rate_limits(&h, UNIX_EPOCH);
        prop_assert_eq!(limits.get(&Resource::Tokens).and_then(|q| q.reset_after), Some(d));
    }

    #[test]
    fn rfc3339_round_trips(at in -62_167_219_200i64..253_402_300_800, now in modern_now()) {
        let at_t = if at >= 0 {
            UNIX_EPOCH + Duration::from_secs(at as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(at.unsigned_abs())
        };
        let h = one("anthropic-ratelimit-tokens-reset", Rfc3339(at_t).to_string());
        let got = rate_limits(&h, now).get(&Resource::Tokens).and_then(|q| q.reset_after);
        let want = (i128::from(at) - secs_since_epoch(now)).max(0) as u64;
        prop_assert_eq!(got, Some(Duration::from_secs(want)));
    }
}

// --- Whole header sets --------------------------------------------------------

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    proptest::option::weighted(0.8, s).boxed()
}

fn whole_secs(max: u64) -> impl Strategy<Value = Duration> {
    (0..max).prop_map(Duration::from_secs)
}

/// A quota as `dialect` can carry it, exactly as `rate_limits` reads it
/// back.
fn quota(dialect: Dialect) -> BoxedStrategy<Quota> {
    let count = 0u64..u64::MAX;
    match dialect {
        Dialect::IetfDraft => (
            opt(count.clone()),
            opt(count),
            opt(whole_secs(999_999_999)),
            opt(1u64..1_000_000),
        )
            .prop_filter("something to say", |(l, r, t, _)| {
                l.is_some() || r.is_some() || t.is_some()
            })
            .prop_map(|(l, r, t, w)| {
                let mut q = Quota::new(Resource::Requests)
                    .with_dialect(Dialect::IetfDraft)
                    .with_replenish(Replenish::Window);
                (q.limit, q.remaining, q.reset_after) = (l, r, t);
                // The window travels with the limit, as an sf-integer.
                q.window = w
                    .filter(|_| l.is_some_and(|l| l < 1_000_000_000_000_000))
                    .map(Duration::from_secs);
                q
            })
            .boxed(),
        Dialect::XRateLimit => (
            opt(count.clone()),
            opt(count.clone()),
            opt(count),
            opt(whole_secs(100_000_000)),
            opt("[a-z_]{1,12}"),
        )
            .prop_filter("something to say", |(l, r, u, t, _)| {
                l.is_some() || r.is_some() || u.is_some() || t.is_some()
            })
            .prop_map(|(l, r, u, t, p)| {
                let mut q = Quota::new(Resource::Requests)
                    .with_dialect(Dialect::XRateLimit)
                    .with_replenish(Replenish::Window);
                (q.limit, q.remaining, q.used, q.reset_after, q.policy) = (l, r, u, t, p);
                q
            })
            .boxed(),
        Dialect::Discord => (
            opt(count.clone()),
            opt(count),
            0u64..100_000_000_000,
            opt("[a-f0-9]{8,32}"),
            opt(prop::sample::select(vec!["user", "global", "shared"])),
        )
            .prop_map(|(l, r, ms, b, s)| {
                let mut q = Quota::new(Resource::Requests)
                    .with_dialect(Dialect::Discord)
                    .with_replenish(Replenish::Window)
                    .with_reset_after(Duration::from_millis(ms));
                (q.limit, q.remaining, q.policy, q.scope) = (l, r, b, s.map(str::to_owned));
                q
            })
            .boxed(),
        Dialect::OpenAi => (
            prop::sample::select(vec![
                (Resource::Requests, None),
                (Resource::Tokens, None),
                (Resource::Tokens, Some("usage_based")),
            ]),
            opt(count.clone()),
            opt(count),
            opt((0u64..1_000_000_000_000, 0u32..1_000_000_000)
                .prop_map(|(s, n)| Duration::new(s, n))),
        )
            .prop_filter("something to say", |(_, l, r, t)| {
                l.is_some() || r.is_some() || t.is_some()
            })
            .prop_map(|((res, p), l, r, t)| {
                let mut q = Quota::new(res)
                    .with_dialect(Dialect::OpenAi)
                    .with_replenish(Replenish::Gradual);
                (q.limit, q.remaining, q.reset_after, q.policy) = (l, r, t, p.map(str::to_owned));
                q
            })
            .boxed(),
        Dialect::Anthropic => (
            prop::sample::select(vec![
                (Resource::Requests, None),
                (Resource::Tokens, None),
                (Resource::InputTokens, None),
                (Resource::OutputTokens, None),
                (Resource::InputTokens, Some("priority")),
                (Resource::OutputTokens, Some("priority")),
            ]),
            opt(count.clone()),
            opt(count),
            opt(whole_secs(1_000_000_000)),
        )
            .prop_filter("something to say", |(_, l, r, t)| {
                l.is_some() || r.is_some() || t.is_some()
            })
            .prop_map(|((res, p), l, r, t)| {
                let mut q = Quota::new(res)
                    .with_dialect(Dialect::Anthropic)
                    .with_replenish(Replenish::Gradual);
                (q.limit, q.remaining, q.reset_after, q.policy) = (l, r, t, p.map(str::to_owned));
                q
            })
            .boxed(),
        Dialect::Shopify => (1u64..u64::MAX)
            .prop_flat_map(|limit| (Just(limit), 0..=limit))
            .prop_map(|(limit, used)| {
                Quota::new(Resource::Requests)
                    .with_dialect(Dialect::Shopify)
                    .with_replenish(Replenish::Gradual)
                    .with_limit(limit)
                    .with_used(used)
                    .with_remaining(limit - used)
            })
            .boxed(),
        Dialect::Linear => (
            prop::sample::select(vec![Resource::Requests, Resource::Complexity]),
            opt(count.clone()),
            opt(count),
            opt((0u64..1_000_000_000_000).prop_map(Duration::from_millis)),
        )
            .prop_filter("something to say", |(_, l, r, t)| {
                l.is_some() || r.is_some() || t.is_some()
            })
            .prop_map(|(res, l, r, t)| {
                let mut q = Quota::new(res)
                    .with_dialect(Dialect::Linear)
                    .with_replenish(Replenish::Gradual);
                (q.limit, q.remaining, q.reset_after) = (l, r, t);
                q
            })
            .boxed(),
        _ => unreachable!("IETF quotas are generated as a set"),
    }
}

/// A set of IETF policies with distinct names, as `rate_limits` reads them
/// back: those with state (`remaining`, a reset or both) first, then the
/// policy-only ones.
fn ietf_set() -> impl Strategy<Value = Vec<Quota>> {
    let resource = prop::sample::select(vec![
        Resource::Requests,
        Resource::ContentBytes,
        Resource::Complexity,
        Resource::ConcurrentRequests,
        Resource::Tokens,
        Resource::InputTokens,
        Resource::OutputTokens,
        Resource::Other("widgets".into()),
    ]);
    let sf_int = 0u64..1_000_000_000_000_000;
    let item = (
        resource,
        opt(sf_int.clone()),
        opt(sf_int),
        opt(1u64..1_000_000_000),
        opt(whole_secs(1_000_000_000)),
        opt("[A-Za-z0-9+/]{4,16}={0,2}"),
    );
    proptest::collection::btree_map("[a-z][a-z0-9 _\"\\\\-]{0,10}", item, 1..5).prop_map(|m| {
        let mut with_state = Vec::new();
        let mut policy_only = Vec::new();
        for (name, (resource, limit, remaining, window, reset, pk)) in m {
            let mut q = Quota::new(resource)
                .with_dialect(Dialect::Ietf)
                .with_replenish(Replenish::Window)
                .with_policy(name);
            q.partition_key = pk;
            match (limit, remaining, reset) {
                (None, None, None) => continue,
                (limit, remaining, reset) if remaining.is_some() || reset.is_some() => {
                    q.limit = limit;
                    q.remaining = remaining;
                    q.reset_after = reset;
                    // Without a policy item there is no unit and no window.
                    if limit.is_some() {
                        q.window = window.map(Duration::from_secs);
                    } else {
                        q.resource = Resource::Requests;
                    }
                    with_state.push(q);
                }
                (limit, _, _) => {
                    q.limit = limit;
                    q.window = window.map(Duration::from_secs);
                    policy_only.push(q);
                }
            }
        }
        with_state.extend(policy_only);
        with_state
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn every_dialect_round_trips(
        dialect in prop::sample::select(vec![
            Dialect::IetfDraft, Dialect::XRateLimit, Dialect::Discord,
            Dialect::OpenAi, Dialect::Anthropic, Dialect::Shopify,
            Dialect::Linear,
        ]).prop_flat_map(quota),
        now in modern_now(),
    ) {
        let q = dialect;
        let mut h = HeaderMap::new();
        prop_assert_eq!(format::insert_quotas(&mut h, [&q], now), 1);
        let read: Vec<Quota> = rate_limits(&h, now).into_iter().collect();
        prop_assert_eq!(read, vec![q], "headers: {:?}", h);
    }

    #[test]
    fn ietf_structured_sets_round_trip(set in ietf_set(), now in modern_now()) {
        let mut h = HeaderMap::new();
        prop_assert_eq!(format::insert_quotas(&mut h, &set, now), set.len());
        let read: Vec<Quota> = rate_limits(&h, now).into_iter().collect();
        prop_assert_eq!(read, set, "headers: {:?}", h);
    }

    #[test]
    fn vendor_dialects_together_round_trip(
        openai in quota(Dialect::OpenAi),
        anthropic in quota(Dialect::Anthropic),
        shopify in quota(Dialect::Shopify),
        linear in quota(Dialect::Linear),
        now in modern_now(),
    ) {
        let mut h = HeaderMap::new();
        let all = [openai, anthropic, shopify, linear];
        prop_assert_eq!(format::insert_quotas(&mut h, &all, now), 4);
        let read: Vec<Quota> = rate_limits(&h, now).into_iter().collect();
        prop_assert_eq!(read, all.to_vec());
    }
}
