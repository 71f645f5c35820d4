//! The two renderings of a [`Report`]: a table for people and one JSON
//! object for scripts.

use std::fmt::{self, Write as _};
use std::time::Duration;

use serde_json::{Value, json};

use crate::fmt::{date, list, ms, rfc3339, wait};
use crate::report::{
    CertInfo, DnsOutcome, DnsSource, Finding, Layer, ProxySource, Report, Status, TcpAttempt,
    TcpOutcome, Tunnel,
};

/// The characters the table is drawn with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Charset {
    /// ✓ ✗ ! – and arrows (the default).
    #[default]
    Unicode,
    /// Plain ASCII: `ok`, `FAIL`, `warn`, `skip`, `->`; any other
    /// non-ASCII character (from a server's text) becomes `?`.
    Ascii,
}

/// A [`Report`] as a table: one row per layer with its mark and headline,
/// the measured figures indented below it, and the verdict as the last
/// line. Made by [`Report::table`]; print it with `{}`.
#[derive(Debug, Clone, Copy)]
pub struct Table<'a> {
    report: &'a Report,
    charset: Charset,
}

impl<'a> Table<'a> {
    /// Draws with `charset`.
    #[must_use]
    pub fn charset(mut self, charset: Charset) -> Self {
        self.charset = charset;
        self
    }

    /// The report drawn.
    pub fn report(&self) -> &'a Report {
        self.report
    }
}

impl Report {
    /// The report as a table (Unicode; see [`Table::charset`]).
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), evenkeel_diagnose::ConfigError> {
    /// use evenkeel_diagnose::{Charset, Diagnose};
    ///
    /// let report = Diagnose::builder("https://api.anthropic.com/v1/models").build()?.run().await;
    /// print!("{}", report.table().charset(Charset::Ascii));
    /// # Ok(()) }
    /// ```
    pub fn table(&self) -> Table<'_> {
        Table {
            report: self,
            charset: Charset::Unicode,
        }
    }

    /// The report as one JSON object: `url`, `ok`, `exit_code`, `layers`
    /// (`proxy` when a proxy was configured, `dns`, `tcp`, `tls` (null for
    /// http), `http`: each with `status`, `finding` and its figures) and
    /// `verdict`. Durations are in milliseconds (`*_ms`) or seconds
    /// (`*_s`), dates in RFC 3339.
    pub fn to_json(&self) -> Value {
        let mut layers = serde_json::Map::new();
        if let Some(p) = &self.proxy {
            layers.insert("proxy".into(), proxy_json(p));
        }
        layers.insert("dns".into(), dns_json(self));
        layers.insert("tcp".into(), tcp_json(self));
        layers.insert(
            "tls".into(),
            self.tls.as_ref().map_or(Value::Null, tls_json),
        );
        layers.insert("http".into(), http_json(self));
        json!({
            "url": self.url,
            "host": self.host,
            "port": self.port,
            "ok": self.ok(),
            "exit_code": self.exit_code(),
            "elapsed_ms": millis(self.elapsed),
            "layers": layers,
            "verdict": {
                "status": self.verdict.status.as_str(),
                "ok": self.ok(),
                "layer": self.verdict.layer.map(Layer::as_str),
                "cause": self.verdict.finding.as_ref().map(|f| f.cause.as_str()),
                "summary": self.verdict.finding.as_ref().map(|f| f.summary.as_str()),
                "fix": self.verdict.finding.as_ref().map(|f| f.fix.as_str()),
                "text": self.verdict.text,
            },
        })
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn finding_json(f: Option<&Finding>) -> Value {
    f.map_or(
        Value::Null,
        |f| json!({ "cause": f.cause.as_str(), "summary": f.summary, "fix": f.fix }),
    )
}

fn attempt_json(a: &TcpAttempt) -> Value {
    let mut v = json!({
        "addr": a.addr.to_string(),
        "outcome": a.outcome.as_str(),
        "elapsed_ms": millis(a.elapsed),
    });
    if let TcpOutcome::Error(e) = &a.outcome {
        v["error"] = json!(e);
    }
    v
}

fn proxy_json(p: &crate::report::ProxyReport) -> Value {
    let env: serde_json::Map<String, Value> = p
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "status": p.status.as_str(),
        "finding": finding_json(p.finding.as_ref()),
        "url": p.url,
        "source": p.source.to_string(),
        "env": env,
        "bypassed_by": p.bypassed_by,
        "addresses": p.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "connect": p.connect.as_ref().map(attempt_json),
    })
}

fn dns_json(r: &Report) -> Value {
    let d = &r.dns;
    let answers: Vec<Value> = d
        .answers
        .iter()
        .map(|a| {
            let (result, error) = match &a.outcome {
                DnsOutcome::Addresses(_) => ("ok", None),
                DnsOutcome::NxDomain => ("nxdomain", None),
                DnsOutcome::NoRecords => ("no_records", None),
                DnsOutcome::Timeout => ("timeout", None),
                DnsOutcome::Error(e) => ("error", Some(e.as_str())),
            };
            let addresses: Vec<Value> = match &a.outcome {
                DnsOutcome::Addresses(list) => list
                    .iter()
                    .map(|r| json!({ "ip": r.ip.to_string(), "ttl": r.ttl }))
                    .collect(),
                _ => Vec::new(),
            };
            json!({
                "resolver": match &a.source {
                    DnsSource::System => "system".to_owned(),
                    DnsSource::Override => "override".to_owned(),
                    DnsSource::Server(addr) => addr.to_string(),
                },
                "result": result,
                "error": error,
                "addresses": addresses,
                "elapsed_ms": millis(a.elapsed),
            })
        })
        .collect();
    json!({
        "status": d.status.as_str(),
        "finding": finding_json(d.finding.as_ref()),
        "skipped": d.skipped,
        "host": d.host,
        "answers": answers,
        "addresses": d.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

fn tcp_json(r: &Report) -> Value {
    let t = &r.tcp;
    json!({
        "status": t.status.as_str(),
        "finding": finding_json(t.finding.as_ref()),
        "port": t.port,
        "attempts": t.attempts.iter().map(attempt_json).collect::<Vec<_>>(),
        "tunnel": t.tunnel.as_ref().map(|tun| json!({
            "authority": tun.authority,
            "status": tun.status,
            "reason": tun.reason,
            "elapsed_ms": millis(tun.elapsed),
        })),
        "used": t.used.map(|a| a.to_string()),
    })
}

fn cert_json(c: &CertInfo) -> Value {
    json!({
        "subject": c.subject,
        "issuer": c.issuer,
        "not_before": rfc3339(c.not_before),
        "not_after": rfc3339(c.not_after),
        "days_left": c.days_left,
        "names": c.names,
        "is_ca": c.is_ca,
    })
}

fn tls_json(t: &crate::report::TlsReport) -> Value {
    json!({
        "status": t.status.as_str(),
        "finding": finding_json(t.finding.as_ref()),
        "server_name": t.server_name,
        "version": t.version,
        "alpn": t.alpn,
        "cipher": t.cipher,
        "name_matches": t.name_matches,
        "extra_roots": t.extra_roots,
        "elapsed_ms": t.elapsed.map(millis),
        "chain": t.chain.iter().map(cert_json).collect::<Vec<_>>(),
    })
}

fn http_json(r: &Report) -> Value {
    let h = &r.http;
    let quotas: Vec<Value> = h
        .rate_limits
        .iter()
        .map(|q| {
            json!({
                "resource": q.resource.as_str(),
                "limit": q.limit,
                "remaining": q.remaining,
                "used": q.used,
                "reset_after_s": q.reset_after.map(secs),
                "window_s": q.window.map(secs),
                "policy": q.policy,
                "dialect": q.dialect.as_str(),
            })
        })
        .collect();
    json!({
        "status": h.status.as_str(),
        "finding": finding_json(h.finding.as_ref()),
        "request": h.request,
        "status_code": h.status_code,
        "version": h.version,
        "latency_ms": h.latency.map(millis),
        "body_bytes": h.body_bytes,
        "body_truncated": h.body_truncated,
        "body_excerpt": h.body_excerpt,
        "retry_after_s": h.retry_after.map(secs),
        "retry_after_header": h.retry_after_header,
        "should_retry": h.should_retry,
        "location": h.location,
        "quotas": quotas,
    })
}

/// Width of the layer-name column.
const NAME_WIDTH: usize = 6;
/// Indentation of detail lines.
const INDENT: &str = "         ";

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = draw(self.report);
        match self.charset {
            Charset::Unicode => f.write_str(&text),
            Charset::Ascii => f.write_str(&to_ascii(&text)),
        }
    }
}

fn mark(status: Status) -> &'static str {
    match status {
        Status::Pass => "✓",
        Status::Fail => "✗",
        Status::Warn => "!",
        Status::Skip => "–",
    }
}

fn to_ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut chars = line.chars();
        // The mark column: one symbol, then a space.
        let first = line.chars().next();
        let replaced_mark = match first {
            Some('✓') => Some("ok  "),
            Some('✗') => Some("FAIL"),
            Some('!') if line.chars().nth(1) == Some(' ') => Some("warn"),
            Some('–') => Some("skip"),
            _ => None,
        };
        if let Some(m) = replaced_mark {
            out.push_str(m);
            chars.next();
        } else if line.starts_with(INDENT) {
            out.push_str("   ");
        }
        for c in chars {
            match c {
                c if c.is_ascii() => out.push(c),
                '→' => out.push_str("->"),
                '…' => out.push_str("..."),
                '–' | '—' => out.push('-'),
                '“' | '”' => out.push('"'),
                '’' => out.push('\''),
                _ => out.push('?'),
            }
        }
        out.push('\n');
    }
    out
}

fn draw(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "diagnose {} {}",
        r.http.request.split(' ').next().unwrap_or("GET"),
        r.url
    );
    let skip_reason = |layer: Layer| -> String {
        let below = r
            .layers()
            .into_iter()
            .filter(|(l, s, _)| *l < layer && s.is_fail())
            .map(|(l, _, _)| l)
            .next();
        match below {
            Some(l) => format!("skipped: {} failed", l.title()),
            None => "skipped".to_owned(),
        }
    };

    if let Some(p) = &r.proxy {
        let head = match (&p.finding, p.status) {
            (Some(f), _) => f.summary.clone(),
            (None, Status::Skip) => match &p.bypassed_by {
                Some(entry) => format!("not used: NO_PROXY entry {entry:?} matches {}", r.host),
                None => "not used".to_owned(),
            },
            (None, _) => format!("{} ({}): tunnel open", p.url, p.source),
        };
        row(&mut out, Layer::Proxy, p.status, &head);
        if p.status == Status::Fail || p.bypassed_by.is_some() {
            let source = match &p.source {
                ProxySource::Argument => "from --proxy".to_owned(),
                ProxySource::Env(name) => format!("from {name}"),
            };
            detail(&mut out, &format!("{} ({source})", p.url));
        }
        if !p.env.is_empty() {
            let vars: Vec<String> = p.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            detail(&mut out, &format!("environment: {}", vars.join(" ")));
        }
        if let Some(a) = &p.connect {
            detail(&mut out, &attempt_line(a, "proxy"));
        }
        if p.status == Status::Fail
            && let Some(tun) = &r.tcp.tunnel
        {
            detail(&mut out, &tunnel_line(tun));
        }
    }

    // DNS
    {
        let d = &r.dns;
        let head = match (&d.finding, d.status) {
            (_, Status::Skip) => d.skipped.clone().unwrap_or_else(|| "skipped".to_owned()),
            (Some(f), _) => f.summary.clone(),
            (None, _) => {
                let source = d
                    .answers
                    .iter()
                    .find(|a| a.outcome.is_ok())
                    .map(|a| a.source.to_string())
                    .unwrap_or_default();
                format!("{} → {} ({source})", d.host, list(&d.addresses))
            }
        };
        row(&mut out, Layer::Dns, d.status, &head);
        let width = d
            .answers
            .iter()
            .map(|a| a.source.to_string().len())
            .max()
            .unwrap_or(0);
        for a in &d.answers {
            let what = match &a.outcome {
                DnsOutcome::Addresses(list) => list
                    .iter()
                    .map(|r| match r.ttl {
                        Some(ttl) => format!("{} ttl {ttl}", r.ip),
                        None => r.ip.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                DnsOutcome::NxDomain => "NXDOMAIN".to_owned(),
                DnsOutcome::NoRecords => "no A/AAAA record".to_owned(),
                DnsOutcome::Timeout => "timed out".to_owned(),
                DnsOutcome::Error(e) => format!("error: {e}"),
            };
            let took = if a.source == DnsSource::Override {
                String::new()
            } else {
                format!("  ({})", ms(a.elapsed))
            };
            detail(
                &mut out,
                &format!("{:<width$}  {what}{took}", a.source.to_string()),
            );
        }
    }

    // TCP
    {
        let t = &r.tcp;
        let head = match (&t.finding, t.status) {
            (Some(f), _) => f.summary.clone(),
            (None, Status::Skip) => skip_reason(Layer::Tcp),
            (None, _) => match (&t.tunnel, t.used) {
                (Some(tun), _) => format!(
                    "tunnel to {} through the proxy in {}",
                    tun.authority,
                    ms(tun.elapsed)
                ),
                (None, Some(addr)) => {
                    let took = t
                        .attempts
                        .iter()
                        .find(|a| a.addr == addr)
                        .map(|a| ms(a.elapsed))
                        .unwrap_or_default();
                    format!("{addr} connected in {took}")
                }
                (None, None) => "connected".to_owned(),
            },
        };
        row(&mut out, Layer::Tcp, t.status, &head);
        if let Some(tun) = &t.tunnel
            && t.status != Status::Skip
        {
            detail(&mut out, &tunnel_line(tun));
        }
        if t.attempts.len() > 1 || t.finding.is_some() {
            for a in &t.attempts {
                detail(&mut out, &attempt_line(a, ""));
            }
        }
    }

    // TLS
    if let Some(t) = &r.tls {
        let head = match (&t.finding, t.status) {
            (Some(f), Status::Fail) => f.summary.clone(),
            (None, Status::Skip) => skip_reason(Layer::Tls),
            (finding, _) => {
                let mut s = format!(
                    "{}, ALPN {}",
                    t.version.as_deref().unwrap_or("?"),
                    t.alpn.as_deref().unwrap_or("none")
                );
                if let Some(leaf) = t.chain.first() {
                    s.push_str(&format!(
                        ", certificate for {} valid until {} ({} days left)",
                        t.server_name,
                        date(leaf.not_after),
                        leaf.days_left
                    ));
                }
                if let Some(f) = finding {
                    s.push_str(&format!("; {}", f.summary));
                }
                s
            }
        };
        row(&mut out, Layer::Tls, t.status, &head);
        if t.status != Status::Skip {
            let mut line = String::new();
            if let Some(elapsed) = t.elapsed {
                line.push_str(&format!("handshake {}", ms(elapsed)));
            }
            if let Some(cipher) = &t.cipher {
                line.push_str(&format!(", {cipher}"));
            }
            line.push_str(&format!(
                "; trusting the web PKI roots{}",
                if t.extra_roots > 0 {
                    format!(" + {} from --ca-file", t.extra_roots)
                } else {
                    String::new()
                }
            ));
            detail(&mut out, &line);
            for (i, c) in t.chain.iter().enumerate() {
                detail(&mut out, &format!("[{i}] {}", c.subject));
                let sub = format!("{INDENT}    ");
                let _ = writeln!(out, "{sub}issuer {}", c.issuer);
                let left = if c.days_left < 0 {
                    format!("expired {} days ago", c.days_left.unsigned_abs())
                } else {
                    format!("{} days left", c.days_left)
                };
                let _ = writeln!(
                    out,
                    "{sub}valid {} → {} ({left}){}",
                    date(c.not_before),
                    date(c.not_after),
                    if c.is_ca { ", CA" } else { "" }
                );
                if !c.names.is_empty() {
                    let _ = writeln!(out, "{sub}names {}", c.names.join(", "));
                }
            }
            if let Some(matches) = t.name_matches {
                detail(
                    &mut out,
                    &format!(
                        "host name {}: {}",
                        t.server_name,
                        if matches { "matches" } else { "does not match" }
                    ),
                );
            }
        }
    }

    // HTTP
    {
        let h = &r.http;
        let head = match (&h.finding, h.status) {
            (Some(f), _) => f.summary.clone(),
            (None, Status::Skip) => skip_reason(Layer::Http),
            (None, _) => match (h.status_code, h.latency) {
                (Some(code), Some(latency)) => format!(
                    "{} {code} {} in {}",
                    h.version.as_deref().unwrap_or("HTTP"),
                    http::StatusCode::from_u16(code)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or(""),
                    ms(latency)
                ),
                _ => "answered".to_owned(),
            },
        };
        row(&mut out, Layer::Http, h.status, &head);
        if let (Some(code), Some(latency)) = (h.status_code, h.latency) {
            let mut line = format!(
                "{} → {} {code} in {}",
                h.request,
                h.version.as_deref().unwrap_or("HTTP"),
                ms(latency)
            );
            if h.body_bytes > 0 {
                line.push_str(&format!(
                    ", body {}{} bytes",
                    if h.body_truncated { "over " } else { "" },
                    h.body_bytes
                ));
            }
            detail(&mut out, &line);
        }
        if let Some(delay) = h.retry_after {
            detail(
                &mut out,
                &format!(
                    "{}: {}",
                    h.retry_after_header.unwrap_or("retry-after"),
                    wait(delay)
                ),
            );
        }
        if let Some(location) = &h.location {
            detail(&mut out, &format!("location: {location}"));
        }
        if let Some(should) = h.should_retry {
            detail(&mut out, &format!("x-should-retry: {should}"));
        }
        for q in &h.rate_limits {
            let mut line = format!("quota {}", q.resource);
            if let Some(policy) = &q.policy {
                line.push_str(&format!(" ({policy})"));
            }
            line.push(':');
            match (q.remaining, q.limit) {
                (Some(rem), Some(limit)) => line.push_str(&format!(" {rem} of {limit} left")),
                (Some(rem), None) => line.push_str(&format!(" {rem} left")),
                (None, Some(limit)) => line.push_str(&format!(" limit {limit}")),
                (None, None) => {}
            }
            if let Some(reset) = q.reset_after {
                line.push_str(&format!(", resets in {}", wait(reset)));
            }
            line.push_str(&format!(" [{}]", q.dialect));
            detail(&mut out, &line);
        }
        if let Some(excerpt) = &h.body_excerpt
            && h.status_code.is_some_and(|c| c >= 400)
        {
            detail(&mut out, &format!("body: {excerpt}"));
        }
    }

    out.push_str(&r.verdict.text);
    out.push('\n');
    out
}

fn row(out: &mut String, layer: Layer, status: Status, head: &str) {
    let _ = writeln!(
        out,
        "{} {:<NAME_WIDTH$}{head}",
        mark(status),
        layer.as_str()
    );
}

fn detail(out: &mut String, text: &str) {
    let _ = writeln!(out, "{INDENT}{text}");
}

fn tunnel_line(tun: &Tunnel) -> String {
    let answer = match (tun.status, &tun.reason) {
        (Some(code), Some(reason)) => format!("{code} {reason}"),
        (Some(code), None) => code.to_string(),
        _ => "no answer".to_owned(),
    };
    format!("CONNECT {} → {answer} ({})", tun.authority, ms(tun.elapsed))
}

fn attempt_line(a: &TcpAttempt, what: &str) -> String {
    let prefix = if what.is_empty() {
        String::new()
    } else {
        format!("{what} ")
    };
    let outcome = match &a.outcome {
        TcpOutcome::Connected => "connected".to_owned(),
        TcpOutcome::Refused => "refused".to_owned(),
        TcpOutcome::TimedOut => "timed out".to_owned(),
        TcpOutcome::Unreachable => "unreachable".to_owned(),
        TcpOutcome::Error(e) => format!("error: {e}"),
    };
    format!("{prefix}{} {outcome} in {}", a.addr, ms(a.elapsed))
}
