//! The proxy layer: which proxy applies (argument or environment, minus
//! `NO_PROXY`), whether it can be reached, and the `CONNECT` tunnel through
//! it.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::dns;
use crate::env::{REPORTED_VARS, mask_credentials, no_proxy_match, proxy_vars};
use crate::fmt::{list, ms};
use crate::options::{Inner, ProxyChoice};
use crate::proxy_url::ProxyUrl;
use crate::report::{
    Cause, Finding, ProxyReport, ProxySource, Status, TcpOutcome, TcpReport, Tunnel,
};
use crate::target::Target;
use crate::tcp;

/// The most a proxy's answer head may take.
const MAX_REPLY_HEAD: usize = 16 * 1024;

/// What the proxy settings say for this target.
#[derive(Debug)]
pub(crate) enum Selection {
    /// No proxy set anywhere.
    None,
    /// A proxy applies but cannot be used, or `NO_PROXY` sends the
    /// connection around it: the report says which.
    Report(ProxyReport),
    /// Go through this proxy.
    Use(ProxyUrl, ProxyReport),
}

pub(crate) fn select(inner: &Inner, target: &Target) -> Selection {
    let env_seen: Vec<(String, String)> = REPORTED_VARS
        .iter()
        .filter_map(|name| {
            inner
                .env
                .var(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| ((*name).to_owned(), mask_credentials(&v)))
        })
        .collect();
    let blank = |url: String, source: ProxySource| ProxyReport {
        status: Status::Skip,
        finding: None,
        url,
        source,
        env: env_seen.clone(),
        bypassed_by: None,
        addresses: Vec::new(),
        connect: None,
    };

    let (raw, source, parsed) = match &inner.proxy {
        ProxyChoice::Off => return Selection::None,
        ProxyChoice::Given { shown, url } => {
            (shown.clone(), ProxySource::Argument, Ok(url.clone()))
        }
        ProxyChoice::FromEnv => {
            let found = proxy_vars(target.https).iter().find_map(|name| {
                inner
                    .env
                    .var(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (*name, v))
            });
            let Some((name, value)) = found else {
                return Selection::None;
            };
            let no_proxy = ["no_proxy", "NO_PROXY"]
                .iter()
                .find_map(|n| inner.env.var(n).filter(|v| !v.trim().is_empty()));
            if let Some(entry) = no_proxy.and_then(|np| no_proxy_match(&np, &target.host)) {
                let mut report = blank(mask_credentials(&value), ProxySource::Env(name.to_owned()));
                report.bypassed_by = Some(entry);
                return Selection::Report(report);
            }
            let parsed = ProxyUrl::parse(&value);
            (value, ProxySource::Env(name.to_owned()), parsed)
        }
    };
    let mut report = blank(mask_credentials(&raw), source);
    match parsed {
        Ok(url) => Selection::Use(url, report),
        Err(e) => {
            report.status = Status::Fail;
            report.finding = Some(Finding::new(
                Cause::ProxyUnsupported,
                format!("the proxy setting {} cannot be used: {e}", report.url),
                "set an http:// proxy URL (http://host:port), or pass --no-proxy to connect directly",
            ));
            Selection::Report(report)
        }
    }
}

/// Reaches the proxy and asks it for a tunnel to the target. Returns the
/// proxy layer, the TCP layer (the tunnel), and the tunnel's stream.
pub(crate) async fn connect(
    inner: &Inner,
    target: &Target,
    proxy: &ProxyUrl,
    mut report: ProxyReport,
) -> (ProxyReport, TcpReport, Option<TcpStream>) {
    let limit = inner.timeout;
    let mut tcp_report = TcpReport {
        port: target.port,
        ..TcpReport::default()
    };

    let (addresses, answer) = dns::addresses_for(inner, &proxy.host).await;
    report.addresses = addresses.clone();
    if addresses.is_empty() {
        let what = answer
            .map(|a| dns::outcome_text(&a.outcome, limit))
            .unwrap_or_else(|| "no resolver to ask".to_owned());
        return fail(
            report,
            tcp_report,
            Finding::new(
                Cause::ProxyDns,
                format!("the proxy's host {} does not resolve: {what}", proxy.host),
                "check the proxy's host name in the setting; the proxy may only exist inside another network (VPN)",
            ),
        );
    }

    let mut stream = None;
    for ip in addresses.iter().take(4) {
        let (attempt, s) = tcp::connect(std::net::SocketAddr::new(*ip, proxy.port), limit).await;
        report.connect = Some(attempt);
        if s.is_some() {
            stream = s;
            break;
        }
    }
    let Some(mut stream) = stream else {
        let attempt = report.connect.clone();
        let (cause, what) = match attempt.as_ref().map(|a| &a.outcome) {
            Some(TcpOutcome::Refused) => (Cause::ProxyRefused, "refused the connection".to_owned()),
            Some(TcpOutcome::TimedOut) => (
                Cause::ProxyTimeout,
                format!("did not answer within {}", ms(limit)),
            ),
            Some(TcpOutcome::Unreachable) => (Cause::ProxyUnreachable, "is unreachable".to_owned()),
            Some(TcpOutcome::Error(e)) => (Cause::ProxyUnreachable, format!("failed: {e}")),
            _ => (Cause::ProxyUnreachable, "failed".to_owned()),
        };
        let summary = if addresses.len() == 1 && addresses[0].to_string() == proxy.host {
            format!("the proxy {} {what}", report.url)
        } else {
            format!(
                "the proxy {} ({}, port {}) {what}",
                report.url,
                list(&addresses),
                proxy.port
            )
        };
        return fail(
            report,
            tcp_report,
            Finding::new(
                cause,
                summary,
                "the proxy is down or the setting is stale: check the proxy's address and port, or unset HTTPS_PROXY / pass --no-proxy to try directly",
            ),
        );
    };

    let authority = target.connect_authority();
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(credentials) = &proxy.credentials {
        request.push_str("Proxy-Authorization: Basic ");
        request.push_str(&base64(credentials.as_bytes()));
        request.push_str("\r\n");
    }
    request.push_str("\r\n");

    let started = evenkeel_core::clock::now();
    let reply = timeout(limit, async {
        stream.write_all(request.as_bytes()).await?;
        read_head(&mut stream).await
    })
    .await;
    let elapsed = started.elapsed();
    let head = match reply {
        Err(_) => {
            return fail(
                report,
                tcp_report,
                Finding::new(
                    Cause::ProxyTimeout,
                    format!("the proxy did not answer CONNECT within {}", ms(limit)),
                    "the proxy accepts connections but does not answer: is it an HTTP proxy (not SOCKS)? check its port and health",
                ),
            );
        }
        Ok(Err(e)) => {
            return fail(
                report,
                tcp_report,
                Finding::new(
                    Cause::ProxyBadReply,
                    format!("the proxy's answer to CONNECT is unusable: {e}"),
                    "the port may not be an HTTP proxy (SOCKS? a web server?): check the proxy's scheme and port",
                ),
            );
        }
        Ok(Ok(head)) => head,
    };
    let (code, reason) = match parse_status(&head) {
        Some(parsed) => parsed,
        None => {
            return fail(
                report,
                tcp_report,
                Finding::new(
                    Cause::ProxyBadReply,
                    "the proxy's answer to CONNECT is not an HTTP response",
                    "the port may not be an HTTP proxy (SOCKS? TLS?): check the proxy's scheme and port",
                ),
            );
        }
    };
    tcp_report.tunnel = Some(Tunnel {
        authority: authority.clone(),
        status: Some(code),
        reason: Some(reason.clone()),
        elapsed,
    });

    match code {
        200..=299 => {
            report.status = Status::Pass;
            tcp_report.status = Status::Pass;
            (report, tcp_report, Some(stream))
        }
        407 => fail(
            report,
            tcp_report,
            Finding::new(
                Cause::ProxyAuth,
                format!("the proxy wants credentials: {code} {reason}"),
                if proxy.credentials.is_some() {
                    "the proxy refused the credentials in the URL: check the user name and password"
                } else {
                    "put credentials in the proxy URL: http://user:password@host:port"
                },
            ),
        ),
        502..=504 => {
            report.status = Status::Pass;
            tcp_report.status = Status::Fail;
            tcp_report.finding = Some(Finding::new(
                Cause::TunnelFailed,
                format!("the proxy could not reach {authority}: {code} {reason}"),
                "the proxy is up but cannot reach the API: the name may not resolve from the proxy, or the proxy's own network blocks it; ask the proxy's admin",
            ));
            (report, tcp_report, None)
        }
        _ => fail(
            report,
            tcp_report,
            Finding::new(
                Cause::ProxyDenied,
                format!("the proxy refused a tunnel to {authority}: {code} {reason}"),
                "the proxy's policy blocks this host or port: ask its admin to allow it",
            ),
        ),
    }
}

fn fail(
    mut report: ProxyReport,
    mut tcp_report: TcpReport,
    finding: Finding,
) -> (ProxyReport, TcpReport, Option<TcpStream>) {
    report.status = Status::Fail;
    report.finding = Some(finding);
    tcp_report.status = Status::Skip;
    (report, tcp_report, None)
}

/// Reads an HTTP response head, byte by byte so that nothing after it is
/// consumed (the tunnel's first bytes belong to TLS).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    loop {
        let n = stream.read(&mut byte).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                if head.is_empty() {
                    "the proxy closed the connection without answering".to_owned()
                } else {
                    "the proxy closed the connection in the middle of its answer".to_owned()
                },
            ));
        }
        head.push(byte[0]);
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            return Ok(head);
        }
        if head.len() > MAX_REPLY_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the answer head exceeds {MAX_REPLY_HEAD} bytes"),
            ));
        }
    }
}

fn parse_status(head: &[u8]) -> Option<(u16, String)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => {
            // Too many headers or odd ones: read the status line alone.
            let line = head.split(|&b| b == b'\n').next()?;
            let text = std::str::from_utf8(line).ok()?.trim();
            let mut parts = text.splitn(3, ' ');
            let version = parts.next()?;
            if !version.starts_with("HTTP/") {
                return None;
            }
            let code = parts.next()?.parse::<u16>().ok()?;
            let reason = parts.next().unwrap_or("").to_owned();
            return (100..=999).contains(&code).then_some((code, reason));
        }
    }
    let code = response.code?;
    let reason = crate::fmt::printable(response.reason.unwrap_or("").as_bytes(), 80);
    Some((code, reason))
}

/// Standard base64 with padding.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("user:p@ss", "dXNlcjpwQHNz"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected, "{input}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_reply_head_parses_or_is_refused(head in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Some((code, reason)) = parse_status(&head) {
                proptest::prop_assert!((100..=999).contains(&code));
                proptest::prop_assert!(!reason.chars().any(char::is_control));
            }
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status(b"HTTP/1.1 200 Connection established\r\n\r\n"),
            Some((200, "Connection established".to_owned()))
        );
        assert_eq!(
            parse_status(
                b"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n"
            ),
            Some((407, "Proxy Authentication Required".to_owned()))
        );
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
        assert_eq!(parse_status(b"\x05\x00"), None);
        assert_eq!(parse_status(b"HTTP/1.1 99999 x\r\n\r\n"), None);
    }
}
