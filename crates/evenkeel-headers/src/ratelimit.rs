//! Reading every rate-limit dialect into [`Quota`]s.
//!
//! One pass over the header map sorts each header into the slot of its
//! dialect (the first valid value of each header wins); the dialects are then
//! assembled in a fixed order. Only the IETF structured fields are read
//! separately, because their items must be joined by policy name across both
//! fields.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::HeaderName;

use crate::num::{self, parse_count, parse_decimal_duration, parse_decimal_scaled};
use crate::quota::{Dialect, Quota, RateLimits, Replenish, Resource};
use crate::sf::{self, Bare, Member, Params};
use crate::time::{parse_go_duration, parse_http_date, parse_rfc3339};

/// Below this many seconds a numeric reset is a delay; from here on it is a
/// Unix timestamp in seconds (1e9 s is 2001-09-09, and a delay of 31.7 years
/// is not plausible).
pub(crate) const EPOCH_SECONDS_FROM: u128 = 1_000_000_000;
/// From this many units on, a numeric reset is a Unix timestamp in
/// milliseconds (1e12 ms is 2001-09-09 too; 1e12 seconds would be the year
/// 33658).
pub(crate) const EPOCH_MILLIS_FROM: u128 = 1_000_000_000_000;

/// The longest name (policy, bucket, scope) kept; longer ones are ignored.
const MAX_NAME: usize = 256;

const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Reads every rate-limit dialect in `headers` into quotas, one per
/// resource and policy; `now` is when the response arrived, to turn reset
/// timestamps into delays.
///
/// Malformed values, negative sentinels (Azure's `-1`) and numbers past
/// `u64::MAX` are ignored one header at a time: the rest still counts. When
/// a header repeats, its first valid value wins (the IETF `RateLimit` and
/// `RateLimit-Policy` fields are lists, and all their lines are read). See
/// the [crate documentation](crate) for the dialects, the epoch rule and how
/// overlapping dialects are told apart.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use evenkeel_headers::{rate_limits, Resource};
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-ratelimit-limit-requests", "60".parse()?);
/// headers.insert("x-ratelimit-remaining-requests", "59".parse()?);
/// headers.insert("x-ratelimit-reset-requests", "1s".parse()?);
/// let limits = rate_limits(&headers, SystemTime::now());
/// let requests = limits.get(&Resource::Requests).unwrap();
/// assert_eq!(requests.remaining, Some(59));
/// assert_eq!(requests.reset_after, Some(Duration::from_secs(1)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn rate_limits(headers: &HeaderMap, now: SystemTime) -> RateLimits {
    if headers.is_empty() {
        return RateLimits::new();
    }
    let mut seen = Seen::default();
    for (name, value) in headers {
        seen.observe(name.as_str(), value.as_bytes(), now);
    }
    let mut out = Vec::new();
    if !seen.any {
        return RateLimits::from_iter(out);
    }

    // The generic families describe the server's quota without naming the
    // vendor; servers that send several (a gateway adding X-RateLimit next
    // to the IETF fields) repeat the same quota. A lower family is dropped
    // for a resource a higher one already reported.
    let mut ietf = Vec::new();
    let mut old_policies = Vec::new();
    let mut draft7 = Fields::default();
    if seen.ietf {
        read_ietf(headers, &mut ietf, &mut old_policies, &mut draft7, now);
    }
    let draft_fields = if seen.draft.any() { seen.draft } else { draft7 };
    let mut draft = Vec::new();
    if draft_fields.any() {
        let window = seen.draft_window.or_else(|| {
            let limit = draft_fields.limit?;
            old_policies
                .iter()
                .find(|(q, _)| *q == limit)
                .and_then(|(_, w)| *w)
        });
        let mut q = draft_fields.quota(Resource::Requests, Dialect::IetfDraft, Replenish::Window);
        q.window = window;
        draft.push(q);
    }
    let discord = seen.discord_marker;
    let mut x = Vec::new();
    if !discord && seen.x.any() {
        let mut q = seen
            .x
            .quota(Resource::Requests, Dialect::XRateLimit, Replenish::Window);
        q.policy = name(seen.x_resource);
        x.push(q);
    }
    let mut x_hyphen = Vec::new();
    if seen.x_hyphen.any() {
        x_hyphen.push(seen.x_hyphen.quota(
            Resource::Requests,
            Dialect::XRateLimit,
            Replenish::Window,
        ));
    }
    let mut covered: Vec<Resource> = Vec::new();
    for tier in [ietf, draft, x, x_hyphen] {
        let reported: Vec<Resource> = tier.iter().map(|q| q.resource.clone()).collect();
        out.extend(tier.into_iter().filter(|q| !covered.contains(&q.resource)));
        covered.extend(reported);
    }

    for (fields, (policy, window)) in seen.kong.iter().zip(KONG_WINDOWS) {
        if fields.any() {
            let mut q = fields.quota(Resource::Requests, Dialect::XRateLimit, Replenish::Window);
            q.policy = Some(policy.to_owned());
            q.window = window.map(Duration::from_secs);
            out.push(q);
        }
    }

    if discord {
        let mut fields = seen.x;
        if seen.discord_reset_after.is_some() {
            fields.reset = seen.discord_reset_after;
        }
        if fields.any() {
            let mut q = fields.quota(Resource::Requests, Dialect::Discord, Replenish::Window);
            q.policy = name(seen.discord_bucket);
            q.scope = name(seen.discord_scope)
                .or_else(|| (seen.discord_global == Some(true)).then(|| "global".to_owned()));
            out.push(q);
        }
    }

    for (fields, (resource, policy)) in seen.openai.iter().zip(OPENAI_RESOURCES) {
        if fields.any() {
            let mut q = fields.quota(resource, Dialect::OpenAi, Replenish::Gradual);
            q.policy = policy.map(str::to_owned);
            out.push(q);
        }
    }

    for (fields, resource) in seen.anthropic.iter().zip(ANTHROPIC_RESOURCES) {
        if fields.any() {
            out.push(fields.quota(resource, Dialect::Anthropic, Replenish::Gradual));
        }
    }
    for (fields, resource) in seen.anthropic_priority.iter().zip(ANTHROPIC_PRIORITY) {
        if fields.any() {
            let mut q = fields.quota(resource, Dialect::Anthropic, Replenish::Gradual);
            q.policy = Some("priority".to_owned());
            out.push(q);
        }
    }

    if let Some((used, limit)) = seen.shopify {
        let mut q = Quota::new(Resource::Requests)
            .with_dialect(Dialect::Shopify)
            .with_replenish(Replenish::Gradual)
            .with_limit(limit)
            .with_used(used)
            .with_remaining(limit.saturating_sub(used));
        q.reset_after = None;
        out.push(q);
    }

    for (fields, resource) in seen.linear.iter().zip(LINEAR_RESOURCES) {
        if fields.any() {
            out.push(fields.quota(resource, Dialect::Linear, Replenish::Gradual));
        }
    }

    RateLimits::from_iter(out)
}

/// Kong's per-window headers: the suffix and the window's length (months
/// and years have none).
pub(crate) const KONG_WINDOWS: [(&str, Option<u64>); 6] = [
    ("second", Some(1)),
    ("minute", Some(60)),
    ("hour", Some(3600)),
    ("day", Some(86_400)),
    ("month", None),
    ("year", None),
];

const OPENAI_RESOURCES: [(Resource, Option<&str>); 3] = [
    (Resource::Requests, None),
    (Resource::Tokens, None),
    (Resource::Tokens, Some("usage_based")),
];

const ANTHROPIC_RESOURCES: [Resource; 4] = [
    Resource::Requests,
    Resource::Tokens,
    Resource::InputTokens,
    Resource::OutputTokens,
];

const ANTHROPIC_PRIORITY: [Resource; 2] = [Resource::InputTokens, Resource::OutputTokens];

/// Linear's families, by the word after `x-ratelimit-`.
const LINEAR_RESOURCES: [Resource; 2] = [Resource::Requests, Resource::Complexity];

fn linear_family(word: &str) -> Option<usize> {
    match word {
        "requests" => Some(0),
        "complexity" => Some(1),
        _ => None,
    }
}

/// The numbers of one quota as read so far.
#[derive(Debug, Default, Clone, Copy)]
struct Fields {
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<Duration>,
    used: Option<u64>,
}

impl Fields {
    fn any(&self) -> bool {
        self.limit.is_some()
            || self.remaining.is_some()
            || self.reset.is_some()
            || self.used.is_some()
    }

    fn quota(&self, resource: Resource, dialect: Dialect, replenish: Replenish) -> Quota {
        let mut q = Quota::new(resource)
            .with_dialect(dialect)
            .with_replenish(replenish);
        q.limit = self.limit;
        q.remaining = self.remaining;
        q.reset_after = self.reset;
        q.used = self.used;
        q
    }

    fn set(&mut self, field: Field, value: &[u8], reset: impl FnOnce(&[u8]) -> Option<Duration>) {
        match field {
            Field::Limit => keep_first(&mut self.limit, || parse_count(value)),
            Field::Remaining => keep_first(&mut self.remaining, || parse_count(value)),
            Field::Used => keep_first(&mut self.used, || parse_count(value)),
            Field::Reset => keep_first(&mut self.reset, || reset(value)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Field {
    Limit,
    Remaining,
    Reset,
    Used,
}

fn keep_first<T>(slot: &mut Option<T>, parse: impl FnOnce() -> Option<T>) {
    if slot.is_none() {
        *slot = parse();
    }
}

/// What one pass over the headers found.
#[derive(Debug, Default)]
struct Seen<'a> {
    any: bool,
    ietf: bool,
    draft: Fields,
    draft_window: Option<Duration>,
    x: Fields,
    x_resource: Option<&'a [u8]>,
    x_hyphen: Fields,
    kong: [Fields; 6],
    discord_marker: bool,
    discord_reset_after: Option<Duration>,
    discord_bucket: Option<&'a [u8]>,
    discord_scope: Option<&'a [u8]>,
    discord_global: Option<bool>,
    openai: [Fields; 3],
    anthropic: [Fields; 4],
    anthropic_priority: [Fields; 2],
    shopify: Option<(u64, u64)>,
    linear: [Fields; 2],
    /// The last RFC 3339 reset read and its value.
    rfc3339_memo: Option<(&'a [u8], Option<Duration>)>,
}

impl<'a> Seen<'a> {
    fn observe(&mut self, name: &str, v: &'a [u8], now: SystemTime) {
        // Every dialect's names start with `x`, `r` or `a` (header names are
        // lower case), and each family is looked for only under its letter:
        // most other headers are passed over at once.
        let family = match name.as_bytes().first() {
            Some(b'x') => b'x',
            Some(b'r') => b'r',
            Some(b'a') => b'a',
            _ => return,
        };
        if family == b'x'
            && let Some(rest) = name.strip_prefix("x-ratelimit-")
        {
            self.any = true;
            self.x_ratelimit(rest, v, now);
        } else if family == b'r'
            && let Some(rest) = name.strip_prefix("ratelimit")
        {
            self.any = true;
            match rest {
                "" | "-policy" => self.ietf = true,
                "-limit" => {
                    if self.draft.limit.is_none()
                        && let Some((limit, window)) = draft_limit(v)
                    {
                        self.draft.limit = Some(limit);
                        self.draft_window = window;
                    }
                }
                "-remaining" => self.draft.set(Field::Remaining, v, |_| None),
                "-reset" => self.draft.set(Field::Reset, v, |v| generic_reset(v, now)),
                _ => {}
            }
        } else if family == b'a'
            && let Some(rest) = name.strip_prefix("anthropic-")
        {
            let (family, rest) = if let Some(rest) = rest.strip_prefix("ratelimit-") {
                (&mut self.anthropic[..], rest)
            } else if let Some(rest) = rest.strip_prefix("priority-") {
                (&mut self.anthropic_priority[..], rest)
            } else {
                return;
            };
            // `{resource}-{field}`; no field name holds a `-`.
            let Some((resource, field)) = split_field(rest) else {
                return;
            };
            let index = match (resource, family.len()) {
                ("requests", 4) => 0,
                ("tokens", 4) => 1,
                ("input-tokens", 4) => 2,
                ("output-tokens", 4) => 3,
                ("input-tokens", 2) => 0,
                ("output-tokens", 2) => 1,
                _ => return,
            };
            self.any = true;
            let memo = &mut self.rfc3339_memo;
            family[index].set(field, v, |_| match memo {
                // One response usually gives every resource the same reset.
                Some((seen, reset)) if *seen == v => *reset,
                _ => {
                    let reset = rfc3339_reset(v, now);
                    *memo = Some((v, reset));
                    reset
                }
            });
        } else if family == b'x'
            && let Some(rest) = name.strip_prefix("x-rate-limit-")
        {
            if let Some(field) = field_named(rest) {
                self.any = true;
                self.x_hyphen.set(field, v, |v| generic_reset(v, now));
            }
        } else if name == "x-shopify-shop-api-call-limit" {
            self.any = true;
            keep_first(&mut self.shopify, || shopify(v));
        }
    }

    fn x_ratelimit(&mut self, rest: &str, v: &'a [u8], now: SystemTime) {
        match rest {
            "limit" | "remaining" | "reset" | "used" => {
                if let Some(field) = field_named(rest) {
                    self.x.set(field, v, |v| generic_reset(v, now));
                }
            }
            "resource" => keep_first(&mut self.x_resource, || valid_name(v)),
            "reset-after" => {
                self.discord_marker = true;
                keep_first(&mut self.discord_reset_after, || {
                    parse_decimal_duration(v, 9)
                });
            }
            "bucket" => {
                self.discord_marker = true;
                keep_first(&mut self.discord_bucket, || valid_name(v));
            }
            "scope" => {
                self.discord_marker = true;
                keep_first(&mut self.discord_scope, || valid_name(v));
            }
            "global" => {
                self.discord_marker = true;
                keep_first(&mut self.discord_global, || {
                    let v = v.trim_ascii();
                    if v.eq_ignore_ascii_case(b"true") {
                        Some(true)
                    } else if v.eq_ignore_ascii_case(b"false") {
                        Some(false)
                    } else {
                        None
                    }
                });
            }
            _ => {
                let Some((head, suffix)) = rest.split_once('-') else {
                    return;
                };
                // Linear puts the resource first: `x-ratelimit-requests-limit`.
                if let Some(i) = linear_family(head) {
                    if let Some(field @ (Field::Limit | Field::Remaining | Field::Reset)) =
                        field_named(suffix)
                    {
                        self.linear[i].set(field, v, |v| unix_millis_reset(v, now));
                    }
                    return;
                }
                let Some(field) = field_named(head) else {
                    return;
                };
                let openai = match suffix {
                    "requests" => Some(0),
                    "tokens" => Some(1),
                    "tokens_usage_based" => Some(2),
                    _ => None,
                };
                if let Some(i) = openai {
                    self.openai[i].set(field, v, go_reset);
                } else if let Some(i) = KONG_WINDOWS.iter().position(|(s, _)| *s == suffix) {
                    self.kong[i].set(field, v, |v| generic_reset(v, now));
                }
            }
        }
    }
}

/// `rest` as `{resource}-{field}`, for the four field names.
fn split_field(rest: &str) -> Option<(&str, Field)> {
    for (suffix, field) in [
        ("-limit", Field::Limit),
        ("-remaining", Field::Remaining),
        ("-reset", Field::Reset),
        ("-used", Field::Used),
    ] {
        if let Some(resource) = rest.strip_suffix(suffix) {
            return Some((resource, field));
        }
    }
    None
}

fn field_named(s: &str) -> Option<Field> {
    match s {
        "limit" => Some(Field::Limit),
        "remaining" => Some(Field::Remaining),
        "reset" => Some(Field::Reset),
        "used" => Some(Field::Used),
        _ => None,
    }
}

/// A name worth keeping: visible ASCII, not empty, not absurdly long.
fn valid_name(v: &[u8]) -> Option<&[u8]> {
    let v = v.trim_ascii();
    (!v.is_empty() && v.len() <= MAX_NAME && v.iter().all(|c| c.is_ascii_graphic())).then_some(v)
}

fn name(v: Option<&[u8]>) -> Option<String> {
    v.map(|v| v.iter().copied().map(char::from).collect())
}

/// A reset in the generic dialects (X-RateLimit, the IETF drafts, Kong):
/// a number of seconds (fractions allowed) read with the epoch rule, or a
/// date (HTTP-date, then RFC 3339).
pub(crate) fn generic_reset(v: &[u8], now: SystemTime) -> Option<Duration> {
    let v = v.trim_ascii();
    if let Some(nanos) = parse_decimal_scaled(v, 9) {
        return Some(epoch_rule(nanos, now));
    }
    let at = parse_http_date(v, num::unix_nanos(now)).or_else(|| parse_rfc3339(v))?;
    Some(num::until(at, now))
}

/// The epoch rule: `nanos` is a number of seconds (times 10^9) that is a
/// delay below [`EPOCH_SECONDS_FROM`], a Unix timestamp in seconds below
/// [`EPOCH_MILLIS_FROM`], and a Unix timestamp in milliseconds from there on.
fn epoch_rule(nanos: u128, now: SystemTime) -> Duration {
    let secs = nanos / num::NANOS_PER_SEC;
    if secs < EPOCH_SECONDS_FROM {
        num::duration_from_nanos(nanos)
    } else if secs < EPOCH_MILLIS_FROM {
        // Below 10^21, so it fits.
        num::until(nanos as i128, now)
    } else {
        // Milliseconds since the epoch: the "seconds" divided by 1000.
        num::until(i128::try_from(nanos / 1000).unwrap_or(i128::MAX), now)
    }
}

/// Linear's reset: a Unix timestamp in milliseconds (fractions allowed).
fn unix_millis_reset(v: &[u8], now: SystemTime) -> Option<Duration> {
    let at = parse_decimal_scaled(v.trim_ascii(), 6)?;
    Some(num::until(i128::try_from(at).unwrap_or(i128::MAX), now))
}

fn rfc3339_reset(v: &[u8], now: SystemTime) -> Option<Duration> {
    parse_rfc3339(v).map(|at| num::until(at, now))
}

/// OpenAI's reset: a Go duration (a negative one has passed already), or
/// a bare number of seconds as some compatible servers send.
fn go_reset(v: &[u8]) -> Option<Duration> {
    match parse_go_duration(v) {
        Some(d) if d.negative => Some(Duration::ZERO),
        Some(d) => Some(d.duration),
        None => parse_decimal_duration(v, 9),
    }
}

/// `X-Shopify-Shop-Api-Call-Limit: 32/40` as `(used, limit)`.
fn shopify(v: &[u8]) -> Option<(u64, u64)> {
    let slash = v.iter().position(|&c| c == b'/')?;
    Some((parse_count(&v[..slash])?, parse_count(&v[slash + 1..])?))
}

/// The earlier drafts' `RateLimit-Limit`: `100`, or (drafts 01–03) the
/// limit followed by quota policies, `10, 10;w=1, 50;w=60`.
fn draft_limit(v: &[u8]) -> Option<(u64, Option<Duration>)> {
    if let Some(mut members) = sf::list(v) {
        let Some(Member::Item(Bare::Integer(limit), params)) = members.next() else {
            return None;
        };
        let limit = u64::try_from(limit).ok()?;
        let window = window_param(params).or_else(|| {
            members.find_map(|m| match m {
                Member::Item(Bare::Integer(q), p) if u64::try_from(q) == Ok(limit) => {
                    window_param(p)
                }
                _ => None,
            })
        });
        return Some((limit, window));
    }
    parse_count(v).map(|limit| (limit, None))
}

fn window_param(p: Params<'_>) -> Option<Duration> {
    window_value(p.get(b"w")?)
}

fn window_value(w: Bare<'_>) -> Option<Duration> {
    match w {
        Bare::Integer(w) if w > 0 => Some(Duration::from_secs(w as u64)),
        _ => None,
    }
}

fn non_negative(b: Option<Bare<'_>>) -> Option<u64> {
    match b? {
        Bare::Integer(v) => u64::try_from(v).ok(),
        _ => None,
    }
}

/// A policy name: the item's value, a String (the drafts) or a Token
/// (accepted too).
#[derive(Debug, Clone, Copy)]
enum PolicyName<'a> {
    String(sf::SfString<'a>),
    Token(&'a [u8]),
}

impl PolicyName<'_> {
    fn of(bare: Bare<'_>) -> Option<PolicyName<'_>> {
        match bare {
            Bare::String(s) => Some(PolicyName::String(s)),
            Bare::Token(t) => Some(PolicyName::Token(t)),
            _ => None,
        }
    }

    fn same(&self, other: &PolicyName<'_>) -> bool {
        match (self, other) {
            (PolicyName::Token(a), PolicyName::Token(b)) => a == b,
            (PolicyName::String(a), PolicyName::Token(b))
            | (PolicyName::Token(b), PolicyName::String(a)) => a.eq_bytes(b),
            (PolicyName::String(a), PolicyName::String(b)) => a.bytes().eq(b.bytes()),
        }
    }

    fn to_owned_string(self) -> String {
        match self {
            Self::String(s) => s.to_owned_string(),
            Self::Token(t) => t.iter().copied().map(char::from).collect(),
        }
    }
}

#[derive(Debug)]
struct PolicyItem<'a> {
    name: PolicyName<'a>,
    quota: u64,
    resource: Resource,
    window: Option<Duration>,
    pk: Option<&'a [u8]>,
    used: bool,
}

#[derive(Debug)]
struct LimitItem<'a> {
    name: PolicyName<'a>,
    remaining: Option<u64>,
    reset: Option<Duration>,
    pk: Option<&'a [u8]>,
}

fn unit(b: Option<Bare<'_>>) -> Option<Resource> {
    let raw: String = match b? {
        Bare::String(s) => s.to_owned_string(),
        Bare::Token(t) => t.iter().copied().map(char::from).collect(),
        _ => return None,
    };
    Some(Resource::from_unit(&raw))
}

fn pk(b: Option<Bare<'_>>) -> Option<&[u8]> {
    match b? {
        Bare::Binary(b) => Some(b),
        _ => None,
    }
}

/// Reads the `RateLimit` and `RateLimit-Policy` fields: the structured
/// form of drafts 08+ into `out`; draft 07's dictionary into `draft7`;
/// the integer policies of drafts 03–07 into `old_policies`.
fn read_ietf<'a>(
    headers: &'a HeaderMap,
    out: &mut Vec<Quota>,
    old_policies: &mut Vec<(u64, Option<Duration>)>,
    draft7: &mut Fields,
    now: SystemTime,
) {
    let mut policies: Vec<PolicyItem<'a>> = Vec::new();
    for line in headers.get_all(RATELIMIT_POLICY) {
        let Some(members) = sf::list(line.as_bytes()) else {
            continue;
        };
        for m in members {
            let Member::Item(bare, p) = m else { continue };
            if let Bare::Integer(q) = bare {
                if let Ok(q) = u64::try_from(q) {
                    old_policies.push((q, window_param(p)));
                }
                continue;
            }
            let Some(name) = PolicyName::of(bare) else {
                continue;
            };
            // One pass over the parameters; the last of a repeated key wins.
            let (mut q, mut qu, mut w, mut key) = (None, None, None, None);
            for (k, v) in p.iter() {
                match k {
                    b"q" => q = Some(v),
                    b"qu" => qu = Some(v),
                    b"w" => w = Some(v),
                    b"pk" => key = Some(v),
                    _ => {}
                }
            }
            // `q` is required; malformed optional parameters are ignored.
            let Some(quota) = non_negative(q) else {
                continue;
            };
            policies.push(PolicyItem {
                name,
                quota,
                resource: unit(qu).unwrap_or(Resource::Requests),
                window: w.and_then(window_value),
                pk: pk(key),
                used: false,
            });
        }
    }

    let mut limits: Vec<LimitItem<'a>> = Vec::new();
    for line in headers.get_all(RATELIMIT) {
        let bytes = line.as_bytes();
        if let Some(members) = sf::list(bytes) {
            for m in members {
                let Member::Item(bare, p) = m else { continue };
                let Some(name) = PolicyName::of(bare) else {
                    continue;
                };
                let (mut r, mut t, mut key) = (None, None, None);
                for (k, v) in p.iter() {
                    match k {
                        b"r" => r = Some(v),
                        b"t" => t = Some(v),
                        b"pk" => key = Some(v),
                        _ => {}
                    }
                }
                // An item says what is left (`r`), when the quota resets
                // (`t`), or both; one with neither says nothing.
                let remaining = non_negative(r);
                let reset = non_negative(t).map(Duration::from_secs);
                if remaining.is_none() && reset.is_none() {
                    continue;
                }
                limits.push(LimitItem {
                    name,
                    remaining,
                    reset,
                    pk: pk(key),
                });
            }
        } else if let Some(members) = sf::dictionary(bytes) {
            // Draft 07: `RateLimit: limit=100, remaining=50, reset=50`.
            let mut d = Fields::default();
            for (key, m) in members {
                let Member::Item(bare, _) = m else { continue };
                let value = non_negative(Some(bare));
                match key {
                    b"limit" => d.limit = value.or(d.limit),
                    b"remaining" => d.remaining = value.or(d.remaining),
                    b"reset" => {
                        if let Some(v) = value {
                            d.reset = Some(epoch_rule(u128::from(v) * num::NANOS_PER_SEC, now));
                        }
                    }
                    _ => {}
                }
            }
            if !draft7.any() {
                *draft7 = d;
            }
        }
    }

    // The first item of each (name, partition key) wins; `out` holds only
    // this dialect's quotas so far.
    let emit = |q: Quota, out: &mut Vec<Quota>| {
        if !out
            .iter()
            .any(|o| o.policy == q.policy && o.partition_key == q.partition_key)
        {
            out.push(q);
        }
    };
    for l in &limits {
        let policy = policies.iter_mut().find(|p| p.name.same(&l.name));
        let mut q = Quota::new(Resource::Requests)
            .with_dialect(Dialect::Ietf)
            .with_replenish(Replenish::Window)
            .with_policy(l.name.to_owned_string());
        q.remaining = l.remaining;
        q.reset_after = l.reset;
        let mut key_pk = l.pk;
        if let Some(p) = policy {
            p.used = true;
            q.resource = p.resource.clone();
            q.limit = Some(p.quota);
            q.window = p.window;
            key_pk = key_pk.or(p.pk);
        }
        q.partition_key = name(key_pk);
        emit(q, out);
    }
    for p in policies.iter().filter(|p| !p.used) {
        let mut q = Quota::new(p.resource.clone())
            .with_dialect(Dialect::Ietf)
            .with_replenish(Replenish::Window)
            .with_policy(p.name.to_owned_string())
            .with_limit(p.quota);
        q.window = p.window;
        q.partition_key = name(p.pk);
        emit(q, out);
    }
}

#[cfg(test)]
mod tests;
