//! The walk: proxy, DNS, TCP, TLS, HTTP, each only when the layers it
//! depends on work; then the verdict.

use crate::options::Diagnose;
use crate::report::{HttpReport, Report, Status, TcpReport, TlsReport, Verdict};
use crate::target::Target;
use crate::{dns, fmt, http, proxy, tcp, tls};

impl Diagnose {
    /// Walks every layer and reports what it found. Never fails: every
    /// failure is a finding in the [`Report`]. Each step is bounded by the
    /// [timeout](crate::DiagnoseBuilder::timeout), so the walk ends.
    ///
    /// Runs on a tokio runtime with its IO and time drivers enabled (a
    /// current-thread runtime is enough); it spawns one task per HTTP
    /// connection, aborted when the walk ends.
    pub async fn run(&self) -> Report {
        let inner = &*self.inner;
        let target = &inner.target;
        let started = evenkeel_core::clock::now();

        let selection = proxy::select(inner, target);
        let (mut proxy_report, plan) = match selection {
            proxy::Selection::None => (None, None),
            proxy::Selection::Report(r) => (Some(r), None),
            proxy::Selection::Use(url, r) => (None, Some((url, r))),
        };
        let proxy_failed = proxy_report.as_ref().is_some_and(|r| r.status.is_fail());
        let via_proxy = plan.is_some() || proxy_failed;

        // With a proxy, the proxy is reached (and the tunnel opened) while
        // the target's name is looked up for information: the proxy
        // resolves it itself.
        let mut tcp_report = TcpReport {
            port: target.port,
            ..TcpReport::default()
        };
        let through_proxy = async {
            match plan {
                Some((url, report)) => Some(proxy::connect(inner, target, &url, report).await),
                None => None,
            }
        };
        let (through_proxy, dns_report) =
            tokio::join!(through_proxy, dns::check(inner, &target.host, via_proxy));
        let mut tunnel = None;
        if let Some((report, tcp, stream)) = through_proxy {
            proxy_report = Some(report);
            tcp_report = tcp;
            tunnel = stream;
        }

        let proxy_ok = proxy_report.as_ref().is_none_or(|r| !r.status.is_fail());
        let stream = if !proxy_ok {
            None
        } else if via_proxy {
            tunnel
        } else if dns_report.status.is_fail() {
            None
        } else {
            let (report, stream) =
                tcp::check(&dns_report.addresses, target.port, inner.timeout).await;
            tcp_report = report;
            stream
        };

        let mut tls_report = target.https.then(|| TlsReport {
            server_name: target.host.clone(),
            ..TlsReport::default()
        });
        let mut http_report = HttpReport {
            request: format!("{} {}", inner.method, target.path_and_query),
            ..HttpReport::default()
        };
        if let Some(stream) = stream {
            if target.https {
                let (report, tls_stream) = tls::check(inner, target, stream).await;
                tls_report = Some(report);
                if let Some(tls_stream) = tls_stream {
                    let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    http_report = http::check(inner, target, tls_stream, h2).await;
                }
            } else {
                http_report = http::check(inner, target, stream, false).await;
            }
        }

        let mut report = Report {
            url: target.url.clone(),
            host: target.host.clone(),
            port: target.port,
            proxy: proxy_report,
            dns: dns_report,
            tcp: tcp_report,
            tls: tls_report,
            http: http_report,
            verdict: Verdict {
                status: Status::Pass,
                layer: None,
                finding: None,
                text: String::new(),
            },
            elapsed: started.elapsed(),
        };
        report.verdict = verdict(&report, target);
        report
    }
}

/// The first failing layer's finding, else the first warning, else a pass.
fn verdict(report: &Report, target: &Target) -> Verdict {
    let layers = report.layers();
    let failing = layers
        .iter()
        .find(|(_, status, finding)| status.is_fail() && finding.is_some());
    let warning = layers
        .iter()
        .find(|(_, status, finding)| *status == Status::Warn && finding.is_some());

    if let Some((layer, _, Some(finding))) = failing {
        let mut text = format!(
            "verdict: {} fails: {}. Try: {}.",
            layer.title(),
            finding.summary,
            finding.fix
        );
        if let Some((wl, _, Some(wf))) = warning
            && wl < layer
        {
            text.push_str(&format!(" Note, {}: {}.", wl.title(), wf.summary));
        }
        return Verdict {
            status: Status::Fail,
            layer: Some(*layer),
            finding: Some((*finding).clone()),
            text,
        };
    }
    let reached = match (report.http.status_code, report.http.latency) {
        (Some(code), Some(latency)) => format!(
            "{} answered {code} in {}",
            target.authority,
            fmt::ms(latency)
        ),
        _ => format!("{} answered", target.authority),
    };
    if let Some((layer, _, Some(finding))) = warning {
        return Verdict {
            status: Status::Warn,
            layer: Some(*layer),
            finding: Some((*finding).clone()),
            text: format!(
                "verdict: every layer works ({reached}), but {}: {}. Try: {}.",
                layer.title(),
                finding.summary,
                finding.fix
            ),
        };
    }
    Verdict {
        status: Status::Pass,
        layer: None,
        finding: None,
        text: format!("verdict: every layer passes: {reached}."),
    }
}
