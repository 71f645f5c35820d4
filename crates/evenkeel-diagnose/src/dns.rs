//! The DNS layer: the system resolver (or an override) and every DNS server
//! given, compared.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;
use hickory_resolver::Resolver;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tokio::time::timeout;

use crate::fmt::{list, ms};
use crate::options::Inner;
use crate::report::{
    Cause, DnsAnswer, DnsOutcome, DnsReport, DnsSource, Finding, Resolved, Status,
};

/// At most this many addresses are kept from one answer.
const MAX_ADDRESSES: usize = 16;

/// Asks the operating system's resolver.
pub(crate) async fn ask_system(host: &str, limit: Duration) -> DnsAnswer {
    let started = evenkeel_core::clock::now();
    let outcome = match timeout(limit, tokio::net::lookup_host((host, 0))).await {
        Err(_) => DnsOutcome::Timeout,
        Ok(Err(e)) => system_error(&e),
        Ok(Ok(addrs)) => {
            let mut list: Vec<Resolved> = Vec::new();
            for addr in addrs {
                if list.len() >= MAX_ADDRESSES {
                    break;
                }
                if !list.iter().any(|r| r.ip == addr.ip()) {
                    list.push(Resolved {
                        ip: addr.ip(),
                        ttl: None,
                    });
                }
            }
            if list.is_empty() {
                DnsOutcome::NoRecords
            } else {
                DnsOutcome::Addresses(list)
            }
        }
    };
    DnsAnswer {
        source: DnsSource::System,
        outcome,
        elapsed: started.elapsed(),
    }
}

/// `getaddrinfo` reports its errors as text; the common ones are named.
fn system_error(e: &std::io::Error) -> DnsOutcome {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("not known") || lower.contains("no such host") {
        // glibc "Name or service not known", macOS "nodename nor servname
        // provided, or not known", Windows "No such host is known".
        DnsOutcome::NxDomain
    } else if lower.contains("no address associated") {
        DnsOutcome::NoRecords
    } else {
        DnsOutcome::Error(text)
    }
}

/// Asks one DNS server over UDP, for A and AAAA records.
pub(crate) async fn ask_server(host: &str, server: SocketAddr, limit: Duration) -> DnsAnswer {
    let started = evenkeel_core::clock::now();
    let outcome = match timeout(limit, lookup(host, server, limit)).await {
        Err(_) => DnsOutcome::Timeout,
        Ok(outcome) => outcome,
    };
    DnsAnswer {
        source: DnsSource::Server(server),
        outcome,
        elapsed: started.elapsed(),
    }
}

async fn lookup(host: &str, server: SocketAddr, limit: Duration) -> DnsOutcome {
    let mut name_server = NameServerConfig::udp(server.ip());
    for connection in &mut name_server.connections {
        connection.port = server.port();
    }
    let config = ResolverConfig::from_name_servers(vec![name_server]);
    let mut opts = ResolverOpts::default();
    opts.timeout = limit;
    opts.attempts = 1;
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.num_concurrent_reqs = 1;
    opts.try_tcp_on_error = false;
    let resolver = match Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
    {
        Ok(r) => r,
        Err(e) => return DnsOutcome::Error(e.to_string()),
    };
    // A trailing dot: no search domains, the name as given.
    let fqdn = format!("{}.", host.trim_end_matches('.'));
    match resolver.lookup_ip(fqdn.as_str()).await {
        Ok(lookup) => {
            let mut list: Vec<Resolved> = Vec::new();
            for record in lookup.as_lookup().answers() {
                if list.len() >= MAX_ADDRESSES {
                    break;
                }
                if let Some(ip) = record.data.ip_addr()
                    && !list.iter().any(|r| r.ip == ip)
                {
                    list.push(Resolved {
                        ip,
                        ttl: Some(record.ttl),
                    });
                }
            }
            if list.is_empty() {
                DnsOutcome::NoRecords
            } else {
                DnsOutcome::Addresses(list)
            }
        }
        Err(e) => net_error(&e),
    }
}

fn net_error(e: &NetError) -> DnsOutcome {
    if e.is_nx_domain() {
        DnsOutcome::NxDomain
    } else if e.is_no_records_found() {
        DnsOutcome::NoRecords
    } else if matches!(e, NetError::Timeout) {
        DnsOutcome::Timeout
    } else {
        DnsOutcome::Error(e.to_string())
    }
}

/// The addresses to connect to for `host`, as the client would find them:
/// an IP literal, an override, the system resolver, else the first server
/// that answers. Used for the proxy's own host.
pub(crate) async fn addresses_for(inner: &Inner, host: &str) -> (Vec<IpAddr>, Option<DnsAnswer>) {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return (vec![ip], None);
    }
    if let Some(list) = inner.overrides.get(host) {
        return (list.clone(), None);
    }
    if inner.system_resolver {
        let answer = ask_system(host, inner.timeout).await;
        return (answer.outcome.addresses().collect(), Some(answer));
    }
    let mut last = None;
    for server in &inner.resolvers {
        let answer = ask_server(host, *server, inner.timeout).await;
        if answer.outcome.is_ok() {
            return (answer.outcome.addresses().collect(), Some(answer));
        }
        last = Some(answer);
    }
    (Vec::new(), last)
}

/// Runs the DNS layer for `host`. `via_proxy`: the proxy resolves the name,
/// so a local failure is only a warning.
pub(crate) async fn check(inner: &Inner, host: &str, via_proxy: bool) -> DnsReport {
    let mut report = DnsReport {
        host: host.to_owned(),
        ..DnsReport::default()
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        report.status = Status::Skip;
        report.skipped = Some("the host is an IP address".to_owned());
        report.addresses = vec![ip];
        return report;
    }

    let first = async {
        if let Some(list) = inner.overrides.get(host) {
            Some(DnsAnswer {
                source: DnsSource::Override,
                outcome: DnsOutcome::Addresses(
                    list.iter().map(|&ip| Resolved { ip, ttl: None }).collect(),
                ),
                elapsed: Duration::ZERO,
            })
        } else if inner.system_resolver {
            Some(ask_system(host, inner.timeout).await)
        } else {
            None
        }
    };
    let servers = join_all(
        inner
            .resolvers
            .iter()
            .map(|&server| ask_server(host, server, inner.timeout)),
    );
    let (first, servers) = tokio::join!(first, servers);
    report.answers = first.into_iter().chain(servers).collect();

    let primary = primary_index(&report.answers);
    if let Some(i) = primary {
        report.addresses = report.answers[i].outcome.addresses().collect();
    }
    let (status, finding) = analyse(host, &report.answers, primary, via_proxy, inner.timeout);
    report.status = status;
    report.finding = finding;
    report
}

/// The answer the client connects with: the system's (or the override),
/// else the first server that answered, else the first server.
fn primary_index(answers: &[DnsAnswer]) -> Option<usize> {
    match answers.first() {
        None => None,
        Some(a) if !matches!(a.source, DnsSource::Server(_)) => Some(0),
        Some(_) => answers.iter().position(|a| a.outcome.is_ok()).or(Some(0)),
    }
}

/// Decides the layer's status from the answers.
pub(crate) fn analyse(
    host: &str,
    answers: &[DnsAnswer],
    primary: Option<usize>,
    via_proxy: bool,
    limit: Duration,
) -> (Status, Option<Finding>) {
    let Some(primary) = primary.and_then(|i| answers.get(i).map(|a| (i, a))) else {
        return (
            Status::Fail,
            Some(Finding::new(
                Cause::DnsError,
                format!("no resolver was asked about {host}"),
                "enable the system resolver or give --resolver IP",
            )),
        );
    };
    let (primary_i, primary) = primary;

    if !primary.outcome.is_ok() {
        let others_ok: Vec<&DnsAnswer> = answers
            .iter()
            .enumerate()
            .filter(|(i, a)| *i != primary_i && a.outcome.is_ok())
            .map(|(_, a)| a)
            .collect();
        let mut finding = failure_finding(host, primary, limit);
        if let Some(other) = others_ok.first() {
            finding.summary.push_str(&format!(
                ", while {} answers {}",
                other.source,
                list(other.outcome.addresses())
            ));
            finding.fix = format!(
                "the resolver in use is filtering or tampered with (the manual's \"DNS pollution\"): point the system at a resolver that works ({}) or use encrypted DNS (DoH/DoT)",
                other.source
            );
        }
        if via_proxy {
            finding.summary.push_str(
                "; the proxy resolves names itself, so this matters only without the proxy",
            );
            return (Status::Warn, Some(finding));
        }
        return (Status::Fail, Some(finding));
    }

    // The primary answered. Compare it with the others (an override is the
    // user's own choice and is not compared).
    let compared: Vec<&DnsAnswer> = answers
        .iter()
        .filter(|a| a.source != DnsSource::Override)
        .collect();
    let ok: Vec<&DnsAnswer> = compared
        .iter()
        .copied()
        .filter(|a| a.outcome.is_ok())
        .collect();

    for a in &ok {
        if let Some(ip) = a.outcome.addresses().find(|ip| ip.is_unspecified()) {
            return (
                Status::Warn,
                Some(Finding::new(
                    Cause::DnsPrivate,
                    format!("{} answers {ip} for {host}: a sinkhole address", a.source),
                    "a DNS filter (ad blocker, parental or corporate filter) or tampering blocks this name: compare with --resolver 1.1.1.1 and allow the name in the filter",
                )),
            );
        }
    }

    let public = |a: &DnsAnswer| a.outcome.addresses().any(|ip| !is_special(ip));
    let special_only = |a: &DnsAnswer| a.outcome.addresses().all(is_special);
    if let (Some(bad), Some(good)) = (
        ok.iter().find(|a| special_only(a)),
        ok.iter().find(|a| public(a)),
    ) {
        let fake_ip = bad.outcome.addresses().any(is_benchmark_range);
        let why = if fake_ip {
            "198.18.0.0/15 is what \"fake-IP\" proxy clients (Clash and kin) hand out: traffic must then go through that proxy"
        } else {
            "a DNS filter or tampering (the manual's \"DNS pollution\") points the name into a private range"
        };
        return (
            Status::Warn,
            Some(Finding::new(
                Cause::DnsPrivate,
                format!(
                    "{} answers {} (private or reserved) while {} answers {}",
                    bad.source,
                    list(bad.outcome.addresses()),
                    good.source,
                    list(good.outcome.addresses())
                ),
                format!("{why}; check which resolver the API client really uses"),
            )),
        );
    }

    let negative: Vec<&DnsAnswer> = compared
        .iter()
        .copied()
        .filter(|a| matches!(a.outcome, DnsOutcome::NxDomain | DnsOutcome::NoRecords))
        .collect();
    if let Some(neg) = negative.first() {
        let what = match neg.outcome {
            DnsOutcome::NxDomain => "says the name does not exist (NXDOMAIN)",
            _ => "has no address for it",
        };
        return (
            Status::Warn,
            Some(Finding::new(
                Cause::DnsDisagree,
                format!(
                    "resolvers disagree: {} {what}, while {} answers {}",
                    neg.source,
                    primary.source,
                    list(primary.outcome.addresses())
                ),
                format!(
                    "{} is filtering this name or tampered with (the manual's \"DNS pollution\"): do not use it for this API",
                    neg.source
                ),
            )),
        );
    }

    for (i, a) in ok.iter().enumerate() {
        for b in &ok[i + 1..] {
            let disjoint = !a
                .outcome
                .addresses()
                .any(|ip| b.outcome.addresses().any(|o| o == ip));
            if disjoint {
                return (
                    Status::Warn,
                    Some(Finding::new(
                        Cause::DnsDisagree,
                        format!(
                            "resolvers disagree: {} answers {}, {} answers {}",
                            a.source,
                            list(a.outcome.addresses()),
                            b.source,
                            list(b.outcome.addresses())
                        ),
                        "a CDN may answer differently per resolver, but answers that share no address are also how DNS tampering (\"pollution\") looks: check which addresses belong to the service and prefer a resolver you trust (DoH/DoT)",
                    )),
                );
            }
        }
    }

    if let Some(failed) = compared.iter().find(|a| !a.outcome.is_ok()) {
        return (
            Status::Warn,
            Some(Finding::new(
                Cause::DnsPartial,
                format!(
                    "{} failed: {}",
                    failed.source,
                    outcome_text(&failed.outcome, limit)
                ),
                "that resolver is unreachable or blocked (UDP port 53 filtered?); the one in use works",
            )),
        );
    }

    (Status::Pass, None)
}

fn failure_finding(host: &str, answer: &DnsAnswer, limit: Duration) -> Finding {
    let source = &answer.source;
    match &answer.outcome {
        DnsOutcome::NxDomain => Finding::new(
            Cause::DnsNxDomain,
            format!("{host} does not exist (NXDOMAIN) according to {source}"),
            "check the host name for typos; if it should exist, compare resolvers (--resolver 1.1.1.1 --resolver 8.8.8.8): one that says NXDOMAIN for a name others resolve is filtering or tampered with",
        ),
        DnsOutcome::NoRecords => Finding::new(
            Cause::DnsNoRecords,
            format!("{host} has no A or AAAA record according to {source}"),
            "check the host name (a wrong subdomain?) and compare resolvers (--resolver 1.1.1.1)",
        ),
        DnsOutcome::Timeout => Finding::new(
            Cause::DnsTimeout,
            format!("{source} did not answer within {}", ms(limit)),
            "check the network and the DNS settings; try another resolver (--resolver 1.1.1.1); where DNS only works through a proxy, set HTTPS_PROXY or pass --proxy",
        ),
        DnsOutcome::Error(e) => Finding::new(
            Cause::DnsError,
            format!("{source} failed for {host}: {e}"),
            "try another resolver (--resolver 1.1.1.1) and check the DNS settings",
        ),
        DnsOutcome::Addresses(_) => Finding::new(Cause::DnsError, "", ""),
    }
}

/// A short description of a failed outcome.
pub(crate) fn outcome_text(outcome: &DnsOutcome, limit: Duration) -> String {
    match outcome {
        DnsOutcome::Addresses(l) => list(l.iter().map(|r| r.ip)),
        DnsOutcome::NxDomain => "NXDOMAIN".to_owned(),
        DnsOutcome::NoRecords => "no A/AAAA record".to_owned(),
        DnsOutcome::Timeout => format!("no answer within {}", ms(limit)),
        DnsOutcome::Error(e) => e.clone(),
    }
}

/// Private, loopback, link-local, unspecified, shared (CGNAT), benchmark,
/// documentation and other non-global addresses.
pub(crate) fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_special_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_special_v4(v4);
            }
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0)
        }
    }
}

fn is_special_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared 100.64.0.0/10
        || is_benchmark_v4(o)
        || o[0] >= 240
}

fn is_benchmark_v4(o: [u8; 4]) -> bool {
    o[0] == 198 && (o[1] & 0xfe) == 18
}

fn is_benchmark_range(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_benchmark_v4(v4.octets()),
        IpAddr::V6(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    fn ok(source: DnsSource, ips: &[&str]) -> DnsAnswer {
        DnsAnswer {
            source,
            outcome: DnsOutcome::Addresses(
                ips.iter()
                    .map(|s| Resolved {
                        ip: s.parse().unwrap(),
                        ttl: Some(60),
                    })
                    .collect(),
            ),
            elapsed: Duration::from_millis(1),
        }
    }

    fn fail(source: DnsSource, outcome: DnsOutcome) -> DnsAnswer {
        DnsAnswer {
            source,
            outcome,
            elapsed: Duration::from_millis(1),
        }
    }

    fn server(n: u8) -> DnsSource {
        DnsSource::Server(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(9, 9, 9, n)), 53))
    }

    fn run(answers: &[DnsAnswer], via_proxy: bool) -> (Status, Option<Cause>) {
        let primary = primary_index(answers);
        let (s, f) = analyse("api.example.com", answers, primary, via_proxy, T);
        (s, f.map(|f| f.cause))
    }

    #[test]
    fn agreeing_resolvers_pass() {
        let answers = [
            ok(DnsSource::System, &["203.0.113.9", "8.8.4.4"]),
            ok(server(1), &["8.8.4.4"]),
        ];
        assert_eq!(run(&answers, false), (Status::Pass, None));
    }

    #[test]
    fn system_nxdomain_fails_and_names_the_working_resolver() {
        let answers = [
            fail(DnsSource::System, DnsOutcome::NxDomain),
            ok(server(1), &["8.8.4.4"]),
        ];
        let (s, f) = analyse("h", &answers, primary_index(&answers), false, T);
        assert_eq!(s, Status::Fail);
        let f = f.unwrap();
        assert_eq!(f.cause, Cause::DnsNxDomain);
        assert!(f.summary.contains("8.8.4.4"), "{}", f.summary);
        assert!(f.fix.contains("@9.9.9.1:53"), "{}", f.fix);
    }

    #[test]
    fn via_proxy_a_local_failure_is_a_warning() {
        let answers = [fail(DnsSource::System, DnsOutcome::Timeout)];
        assert_eq!(run(&answers, true), (Status::Warn, Some(Cause::DnsTimeout)));
        assert_eq!(
            run(&answers, false),
            (Status::Fail, Some(Cause::DnsTimeout))
        );
    }

    #[test]
    fn without_system_the_first_answering_server_is_primary() {
        let answers = [
            fail(server(1), DnsOutcome::Timeout),
            ok(server(2), &["8.8.4.4"]),
        ];
        assert_eq!(primary_index(&answers), Some(1));
        assert_eq!(
            run(&answers, false),
            (Status::Warn, Some(Cause::DnsPartial))
        );
        let answers = [fail(server(1), DnsOutcome::Timeout)];
        assert_eq!(
            run(&answers, false),
            (Status::Fail, Some(Cause::DnsTimeout))
        );
    }

    #[test]
    fn disjoint_answers_disagree() {
        let answers = [ok(server(1), &["127.0.0.1"]), ok(server(2), &["127.0.0.2"])];
        assert_eq!(
            run(&answers, false),
            (Status::Warn, Some(Cause::DnsDisagree))
        );
        let answers = [
            ok(DnsSource::System, &["8.8.8.8"]),
            fail(server(2), DnsOutcome::NxDomain),
        ];
        assert_eq!(
            run(&answers, false),
            (Status::Warn, Some(Cause::DnsDisagree))
        );
    }

    #[test]
    fn private_where_others_are_public_is_flagged() {
        let answers = [
            ok(DnsSource::System, &["10.1.2.3"]),
            ok(server(1), &["8.8.8.8"]),
        ];
        assert_eq!(
            run(&answers, false),
            (Status::Warn, Some(Cause::DnsPrivate))
        );
        let answers = [
            ok(DnsSource::System, &["198.18.0.7"]),
            ok(server(1), &["8.8.8.8"]),
        ];
        let (_, f) = analyse("h", &answers, Some(0), false, T);
        assert!(f.unwrap().fix.contains("fake-IP"));
        let answers = [ok(DnsSource::System, &["0.0.0.0"])];
        assert_eq!(
            run(&answers, false),
            (Status::Warn, Some(Cause::DnsPrivate))
        );
        // All private: an internal API, nothing to say.
        let answers = [
            ok(DnsSource::System, &["10.1.2.3"]),
            ok(server(1), &["10.1.2.3"]),
        ];
        assert_eq!(run(&answers, false), (Status::Pass, None));
    }

    #[test]
    fn overrides_are_not_compared() {
        let answers = [
            ok(DnsSource::Override, &["127.0.0.1"]),
            ok(server(1), &["8.8.8.8"]),
        ];
        assert_eq!(run(&answers, false), (Status::Pass, None));
    }

    #[test]
    fn special_ranges() {
        for s in [
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.2.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_special(s.parse().unwrap()), "{s}");
        }
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "198.20.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_special(s.parse().unwrap()), "{s}");
        }
    }

    #[test]
    fn getaddrinfo_messages() {
        let e = |m: &str| std::io::Error::other(m.to_owned());
        assert_eq!(
            system_error(&e(
                "failed to lookup address information: Name or service not known"
            )),
            DnsOutcome::NxDomain
        );
        assert_eq!(
            system_error(&e("nodename nor servname provided, or not known")),
            DnsOutcome::NxDomain
        );
        assert_eq!(
            system_error(&e("No address associated with hostname")),
            DnsOutcome::NoRecords
        );
        assert!(matches!(
            system_error(&e("Temporary failure in name resolution")),
            DnsOutcome::Error(_)
        ));
    }
}
