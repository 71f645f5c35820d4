//! The TCP layer: a connection to every resolved address, at once.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::fmt::{list, ms};
use crate::report::{Cause, Finding, Status, TcpAttempt, TcpOutcome, TcpReport};

/// At most this many addresses are tried.
const MAX_ATTEMPTS: usize = 16;

/// One connection attempt, bounded by `limit`.
pub(crate) async fn connect(addr: SocketAddr, limit: Duration) -> (TcpAttempt, Option<TcpStream>) {
    let started = evenkeel_core::clock::now();
    let (outcome, stream) = match timeout(limit, TcpStream::connect(addr)).await {
        Err(_) => (TcpOutcome::TimedOut, None),
        Ok(Err(e)) => (io_outcome(&e), None),
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            (TcpOutcome::Connected, Some(stream))
        }
    };
    let attempt = TcpAttempt {
        addr,
        outcome,
        elapsed: started.elapsed(),
    };
    (attempt, stream)
}

pub(crate) fn io_outcome(e: &io::Error) -> TcpOutcome {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => TcpOutcome::Refused,
        io::ErrorKind::TimedOut => TcpOutcome::TimedOut,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            TcpOutcome::Unreachable
        }
        _ => TcpOutcome::Error(e.to_string()),
    }
}

/// Connects to every address on `port` at once and keeps the first, in
/// resolver order, that connected.
pub(crate) async fn check(
    addresses: &[IpAddr],
    port: u16,
    limit: Duration,
) -> (TcpReport, Option<TcpStream>) {
    let attempts = join_all(
        addresses
            .iter()
            .take(MAX_ATTEMPTS)
            .map(|&ip| connect(SocketAddr::new(ip, port), limit)),
    )
    .await;
    let mut report = TcpReport {
        port,
        ..TcpReport::default()
    };
    let mut used = None;
    for (attempt, stream) in attempts {
        if used.is_none()
            && let Some(stream) = stream
        {
            report.used = Some(attempt.addr);
            used = Some(stream);
        }
        report.attempts.push(attempt);
    }
    let (status, finding) = judge(&report.attempts, port, limit);
    report.status = status;
    report.finding = finding;
    (report, used)
}

fn judge(attempts: &[TcpAttempt], port: u16, limit: Duration) -> (Status, Option<Finding>) {
    let failed: Vec<&TcpAttempt> = attempts
        .iter()
        .filter(|a| a.outcome != TcpOutcome::Connected)
        .collect();
    if attempts.is_empty() {
        return (
            Status::Fail,
            Some(Finding::new(
                Cause::TcpError,
                "no address to connect to",
                "fix DNS first",
            )),
        );
    }
    if failed.is_empty() {
        return (Status::Pass, None);
    }
    let first = failed[0];
    let connected = attempts.len() - failed.len();
    if connected > 0 {
        return (
            Status::Warn,
            Some(Finding::new(
                Cause::TcpPartial,
                format!(
                    "{connected} of {} addresses connected; {} {}",
                    attempts.len(),
                    first.addr,
                    outcome_text(&first.outcome, limit)
                ),
                "clients that try a failing address first lose time or fail: check that address's route (IPv6 without IPv6 connectivity does this) or the DNS records",
            )),
        );
    }
    let addrs = list(failed.iter().map(|a| a.addr));
    let finding = match &first.outcome {
        TcpOutcome::Refused => Finding::new(
            Cause::TcpRefused,
            format!(
                "connection refused by {addrs}: nothing listens on port {port}, or a firewall rejects it"
            ),
            "check the port in the URL and that the service runs there; if it should be open, a firewall rejects the connection: try another network, or the proxy your network requires (--proxy)",
        ),
        TcpOutcome::TimedOut => Finding::new(
            Cause::TcpTimeout,
            format!(
                "no answer from {addrs} on port {port} within {} (packets dropped)",
                ms(limit)
            ),
            "a firewall drops the connection or the address is wrong (compare DNS answers with --resolver); where the network requires a proxy, set HTTPS_PROXY or pass --proxy",
        ),
        TcpOutcome::Unreachable => Finding::new(
            Cause::TcpUnreachable,
            format!("no route to {addrs}"),
            "check the network connection, VPN and routes; an IPv6 address without IPv6 connectivity does this",
        ),
        TcpOutcome::Error(e) => Finding::new(
            Cause::TcpError,
            format!("connecting to {addrs} failed: {e}"),
            "check the network connection and local firewall",
        ),
        TcpOutcome::Connected => Finding::new(Cause::TcpError, "", ""),
    };
    (Status::Fail, Some(finding))
}

pub(crate) fn outcome_text(outcome: &TcpOutcome, limit: Duration) -> String {
    match outcome {
        TcpOutcome::Connected => "connected".to_owned(),
        TcpOutcome::Refused => "refused".to_owned(),
        TcpOutcome::TimedOut => format!("timed out after {}", ms(limit)),
        TcpOutcome::Unreachable => "unreachable".to_owned(),
        TcpOutcome::Error(e) => e.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(addr: &str, outcome: TcpOutcome) -> TcpAttempt {
        TcpAttempt {
            addr: addr.parse().unwrap(),
            outcome,
            elapsed: Duration::from_millis(1),
        }
    }

    #[test]
    fn judging() {
        let t = Duration::from_secs(1);
        let all_ok = [attempt("1.2.3.4:443", TcpOutcome::Connected)];
        assert_eq!(judge(&all_ok, 443, t), (Status::Pass, None));

        let partial = [
            attempt("[2001:db8::1]:443", TcpOutcome::Unreachable),
            attempt("1.2.3.4:443", TcpOutcome::Connected),
        ];
        let (s, f) = judge(&partial, 443, t);
        assert_eq!((s, f.unwrap().cause), (Status::Warn, Cause::TcpPartial));

        let refused = [attempt("1.2.3.4:443", TcpOutcome::Refused)];
        let (s, f) = judge(&refused, 443, t);
        let f = f.unwrap();
        assert_eq!((s, f.cause), (Status::Fail, Cause::TcpRefused));
        assert!(f.summary.contains("1.2.3.4:443"));

        let timeout = [attempt("1.2.3.4:443", TcpOutcome::TimedOut)];
        assert_eq!(judge(&timeout, 443, t).1.unwrap().cause, Cause::TcpTimeout);
        assert_eq!(judge(&[], 443, t).1.unwrap().cause, Cause::TcpError);
    }

    #[test]
    fn io_errors() {
        let e = |k| io::Error::from(k);
        assert_eq!(
            io_outcome(&e(io::ErrorKind::ConnectionRefused)),
            TcpOutcome::Refused
        );
        assert_eq!(
            io_outcome(&e(io::ErrorKind::HostUnreachable)),
            TcpOutcome::Unreachable
        );
        assert_eq!(
            io_outcome(&e(io::ErrorKind::NetworkUnreachable)),
            TcpOutcome::Unreachable
        );
        assert_eq!(
            io_outcome(&e(io::ErrorKind::TimedOut)),
            TcpOutcome::TimedOut
        );
        assert!(matches!(
            io_outcome(&e(io::ErrorKind::Other)),
            TcpOutcome::Error(_)
        ));
    }
}
