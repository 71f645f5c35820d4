//! The script's answers, read defensively, and the readings sent to it.

use std::time::Duration;

use evenkeel_headers::{RateLimits, Resource};
use redis::Value;
use tokio::time::Instant;

use super::{DIALECTS, MAX_UNITS, RESOURCES};
use crate::cost::{FIELDS, field_of};
use crate::store::{ResourceSnapshot, Source};

/// What the reserve script said.
#[derive(Debug)]
pub(super) enum Answer {
    Admitted(Admitted),
    Short {
        wait: Duration,
        /// The short field; `None` for a cooldown.
        field: Option<usize>,
        cooldown: bool,
        quotas: Vec<CachedQuota>,
    },
}

#[derive(Debug)]
pub(super) struct Admitted {
    pub(super) seq: u64,
    pub(super) cum: [u64; FIELDS],
    pub(super) quotas: Vec<CachedQuota>,
}

/// One quota of a key as the last round trip saw it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CachedQuota {
    pub(super) name: String,
    pub(super) field: usize,
    pub(super) cap: f64,
    /// What was available (level minus what is in flight).
    pub(super) avail: f64,
    /// Units per millisecond.
    pub(super) rate: f64,
    pub(super) limit: Option<u64>,
    pub(super) source: Source,
    pub(super) reset_in: Option<Duration>,
}

impl CachedQuota {
    /// When `want` units fit, judged from what was seen at `at`: `None`
    /// when they fit at `now`.
    pub(super) fn room_for(&self, want: f64, at: Instant, now: Instant) -> Option<Instant> {
        let elapsed = now.saturating_duration_since(at).as_secs_f64() * 1000.0;
        let avail = (self.avail + self.rate * elapsed).min(self.cap);
        let want = want.min(self.cap);
        if want <= avail {
            return None;
        }
        if self.rate <= 0.0 {
            return Some(now + super::FAIL_CLOSED_WAIT);
        }
        let ms = ((want - avail) / self.rate).min(super::FAIL_CLOSED_WAIT.as_millis() as f64);
        Some(now + Duration::from_micros((ms * 1000.0).ceil() as u64))
    }

    pub(super) fn snapshot(&self, at: Instant, now: Instant) -> ResourceSnapshot {
        let elapsed = now.saturating_duration_since(at).as_secs_f64() * 1000.0;
        let avail = (self.avail + self.rate * elapsed).min(self.cap).max(0.0);
        let policy = self
            .name
            .split_once(':')
            .map(|(_, p)| p)
            .filter(|p| self.source != Source::Declared && !p.is_empty())
            .map(str::to_owned);
        ResourceSnapshot {
            resource: RESOURCES[self.field].clone(),
            policy,
            source: self.source,
            limit: self.limit,
            remaining: avail.floor() as u64,
            reset: self.reset_in.map(|r| at + r),
            rate: Some(self.rate * 1000.0),
            updated: Some(at),
        }
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(us.clamp(0, super::FAIL_CLOSED_WAIT.as_micros() as i64) as u64)
}

fn quotas(value: Option<&Value>) -> Option<Vec<CachedQuota>> {
    let Some(value) = value else {
        return Some(Vec::new());
    };
    let packed = match value {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?,
        Value::SimpleString(s) => s.as_str(),
        _ => return None,
    };
    let mut out = Vec::new();
    for line in packed.lines().filter(|l| !l.is_empty()) {
        let mut words = line.split(' ');
        let mut next = || words.next();
        let name = next()?;
        let field = next()?.parse::<usize>().ok().filter(|f| *f < FIELDS)?;
        let cap = finite(next()?)?;
        let avail = finite(next()?)?;
        let rate = finite(next()?)?.max(0.0);
        let limit = next()?.parse::<u64>().ok();
        let source = match next()? {
            "d" => Source::Declared,
            n => Source::Learned(*DIALECTS.get(n.parse::<usize>().ok()?)?),
        };
        let reset = next()?.parse::<i64>().ok()?;
        out.push(CachedQuota {
            name: name.to_owned(),
            field,
            cap,
            avail,
            rate,
            limit,
            source,
            reset_in: (reset > 0).then(|| micros(reset)),
        });
    }
    Some(out)
}

fn finite(word: &str) -> Option<f64> {
    word.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Reads the reserve script's answer; `None` for anything else.
pub(super) fn parse(value: Value) -> Option<Answer> {
    let Value::Array(values) = value else {
        return None;
    };
    match int(values.first()?)? {
        1 => {
            let seq = u64::try_from(int(values.get(1)?)?).ok()?;
            let mut cum = [0; FIELDS];
            for (i, c) in cum.iter_mut().enumerate() {
                *c = u64::try_from(int(values.get(2 + i)?)?).ok()?;
            }
            Some(Answer::Admitted(Admitted {
                seq,
                cum,
                quotas: quotas(values.get(2 + FIELDS))?,
            }))
        }
        0 => {
            let wait = micros(int(values.get(1)?)?);
            let field = usize::try_from(int(values.get(2)?)?)
                .ok()
                .filter(|f| *f < FIELDS);
            let cooldown = int(values.get(3)?)? == 1;
            Some(Answer::Short {
                wait,
                field,
                cooldown,
                quotas: quotas(values.get(4))?,
            })
        }
        _ => None,
    }
}

/// The readings of a response as the settle script takes them (seven
/// arguments each); quotas of a resource the store does not meter, or
/// without `remaining`, are left out.
pub(super) fn readings(limits: &RateLimits, max_reset: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let ms = |d: Duration| d.min(max_reset).as_millis().max(1).to_string();
    for quota in limits.iter() {
        let (Some(field), Some(remaining)) = (field_of(&quota.resource), quota.remaining) else {
            continue;
        };
        if quota.resource == Resource::Tokens && field != 1 {
            continue;
        }
        let dialect = DIALECTS
            .iter()
            .position(|d| *d == quota.dialect)
            .unwrap_or(DIALECTS.len() - 1);
        let policy: String = quota
            .policy
            .as_deref()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_control())
            .take(64)
            .collect();
        out.push(format!("l{field}:{policy}"));
        out.push(field.to_string());
        out.push(
            quota
                .limit
                .map_or("-1".to_owned(), |l| l.min(MAX_UNITS).to_string()),
        );
        out.push(remaining.min(MAX_UNITS).to_string());
        out.push(quota.reset_after.map_or("-1".to_owned(), ms));
        out.push(quota.window.map_or("-1".to_owned(), ms));
        out.push(dialect.to_string());
    }
    out
}
