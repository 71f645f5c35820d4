//! The TLS layer: a rustls handshake against the web PKI roots (plus any
//! extra CA), with a verifier that records the chain the server presented
//! before the real WebPKI verifier judges it, so a failure can name what
//! was presented.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::cert::{read_chain, top_issuer};
use crate::fmt::{date, ms, rfc3339};
use crate::options::Inner;
use crate::report::{Cause, CertInfo, Finding, Status, TlsReport};
use crate::target::Target;

/// Certificates expiring within this many days are a warning.
const EXPIRY_WARNING_DAYS: i64 = 14;

/// Wraps the WebPKI verifier and keeps a copy of what the server presented.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.clear();
            seen.push(end_entity.clone().into_owned());
            seen.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        }
        // The crate's one clock, so wall time follows tokio's.
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            unix_time(evenkeel_core::clock::system_now()),
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn unix_time(t: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO))
}

/// Handshakes over `stream`. Returns the layer and, on success, the TLS
/// stream for the HTTP layer.
pub(crate) async fn check(
    inner: &Inner,
    target: &Target,
    stream: TcpStream,
) -> (TlsReport, Option<TlsStream<TcpStream>>) {
    let mut report = TlsReport {
        server_name: target.host.clone(),
        ..TlsReport::default()
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    if inner.webpki_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    let (added, _) = roots.add_parsable_certificates(inner.extra_roots.iter().cloned());
    report.extra_roots = added;

    let setup = build_config(roots, provider);
    let (config, recording) = match setup {
        Ok(pair) => pair,
        Err(e) => {
            report.status = Status::Fail;
            report.finding = Some(Finding::new(
                Cause::TlsError,
                format!("cannot set up TLS: {e}"),
                "check the CA file given with --ca-file",
            ));
            return (report, None);
        }
    };
    let server_name = match ServerName::try_from(target.host.clone()) {
        Ok(name) => name,
        Err(e) => {
            report.status = Status::Fail;
            report.finding = Some(Finding::new(
                Cause::TlsError,
                format!(
                    "{} cannot be checked against a certificate: {e}",
                    target.host
                ),
                "check the URL's host name",
            ));
            return (report, None);
        }
    };

    let connector = TlsConnector::from(Arc::new(config));
    let started = evenkeel_core::clock::now();
    let result = timeout(
        inner.timeout,
        connector.connect(server_name.clone(), stream),
    )
    .await;
    report.elapsed = Some(started.elapsed());

    let now = evenkeel_core::clock::system_now();
    let seen: Vec<CertificateDer<'static>> =
        recording.seen.lock().map(|s| s.clone()).unwrap_or_default();
    report.chain = read_chain(&seen, now);
    report.name_matches = seen.first().and_then(|ee| {
        ParsedCertificate::try_from(ee)
            .ok()
            .map(|parsed| verify_server_name(&parsed, &server_name).is_ok())
    });

    match result {
        Err(_) => {
            report.status = Status::Fail;
            report.finding = Some(Finding::new(
                Cause::TlsTimeout,
                format!(
                    "the TLS handshake did not finish within {}",
                    ms(inner.timeout)
                ),
                "the server or something in between accepts the connection but stalls the handshake (SNI filtering?): try another network or the proxy",
            ));
            (report, None)
        }
        Ok(Err(e)) => {
            report.status = Status::Fail;
            report.finding = Some(handshake_finding(&e, &report, now));
            (report, None)
        }
        Ok(Ok(tls)) => {
            let (_, conn) = tls.get_ref();
            report.version = conn.protocol_version().map(version_name);
            report.alpn = conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            report.cipher = conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()));
            if report.chain.is_empty()
                && let Some(certs) = conn.peer_certificates()
            {
                report.chain = read_chain(certs, now);
            }
            report.status = Status::Pass;
            if let Some(soon) = report
                .chain
                .iter()
                .filter(|c| c.days_left < EXPIRY_WARNING_DAYS)
                .min_by_key(|c| c.days_left)
            {
                report.status = Status::Warn;
                report.finding = Some(Finding::new(
                    Cause::TlsExpiresSoon,
                    format!(
                        "\"{}\" expires on {} ({} days left)",
                        soon.subject,
                        date(soon.not_after),
                        soon.days_left
                    ),
                    "the server must renew its certificate soon; nothing to do on the client",
                ));
            }
            (report, Some(tls))
        }
    }
}

fn build_config(
    roots: RootCertStore,
    provider: Arc<CryptoProvider>,
) -> Result<(ClientConfig, Arc<Recording>), String> {
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let recording = Arc::new(Recording {
        inner: webpki,
        seen: Mutex::new(Vec::new()),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(recording.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((config, recording))
}

fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Names a handshake failure in the words people search for.
fn handshake_finding(e: &io::Error, report: &TlsReport, now: SystemTime) -> Finding {
    let host = &report.server_name;
    let chain = &report.chain;
    let leaf = chain.first();
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(cert_error)) => {
            certificate_finding(cert_error, host, chain, leaf, now)
        }
        Some(rustls::Error::AlertReceived(alert)) => Finding::new(
            Cause::TlsHandshakeRefused,
            format!("the server refused the handshake (alert: {alert:?})"),
            "no TLS version or cipher in common, a client certificate required, or a middlebox filtering by SNI: check the port, and try without the proxy or VPN",
        ),
        Some(rustls::Error::InvalidMessage(_)) | Some(rustls::Error::PeerSentOversizedRecord) => {
            Finding::new(
                Cause::TlsNotTls,
                "the port answered with something that is not TLS (plain HTTP?)",
                "the port speaks plain text: use http:// for it, or the TLS port (usually 443)",
            )
        }
        Some(other) => Finding::new(
            Cause::TlsError,
            format!("the TLS handshake failed: {other}"),
            "compare with `openssl s_client -connect HOST:PORT -servername HOST`; a proxy or old server may be at fault",
        ),
        None => match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Finding::new(
                Cause::TlsHandshakeRefused,
                format!("the connection was closed during the TLS handshake ({e})"),
                "a firewall filtering by SNI, a server that needs another TLS version, or a port that is not TLS: check the port, and try without the proxy or VPN",
            ),
            _ => Finding::new(
                Cause::TlsError,
                format!("the TLS handshake failed: {e}"),
                "check the port, and try without the proxy or VPN",
            ),
        },
    }
}

fn certificate_finding(
    error: &CertificateError,
    host: &str,
    chain: &[CertInfo],
    leaf: Option<&CertInfo>,
    now: SystemTime,
) -> Finding {
    let subject = leaf.map_or("the certificate", |c| c.subject.as_str());
    match error {
        CertificateError::UnknownIssuer => {
            let issuer = top_issuer(chain).unwrap_or("an unknown issuer");
            let self_signed = chain.len() == 1 && leaf.is_some_and(|c| c.subject == c.issuer);
            let mut summary = if self_signed {
                format!(
                    "unable to get local issuer certificate: the server presented a self-signed certificate \"{issuer}\""
                )
            } else {
                format!(
                    "unable to get local issuer certificate: the chain was issued by \"{issuer}\", which no trusted root vouches for"
                )
            };
            if let Some(expired) = chain.iter().find(|c| c.days_left < 0) {
                summary.push_str(&format!(
                    "; \"{}\" also expired on {}",
                    expired.subject,
                    date(expired.not_after)
                ));
            }
            Finding::new(
                Cause::TlsUnknownIssuer,
                summary,
                format!(
                    "a TLS-intercepting proxy, antivirus or corporate gateway presents its own certificate (\"{issuer}\"): get that CA certificate from whoever runs it and pass --ca-file ca.pem (the API client needs it too, e.g. SSL_CERT_FILE or its CA option); if you expect no interception, someone is in the middle"
                ),
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            let expired = chain
                .iter()
                .filter(|c| c.days_left < 0)
                .min_by_key(|c| c.days_left);
            let summary = match expired {
                Some(c) => format!(
                    "certificate expired: \"{}\" was valid until {} ({} days ago)",
                    c.subject,
                    date(c.not_after),
                    -c.days_left
                ),
                None => format!("certificate expired: {subject}"),
            };
            Finding::new(
                Cause::TlsExpired,
                summary,
                format!(
                    "the server must renew its certificate; if others see a valid one, check this machine's clock (now {}) or whether a proxy presents an old certificate",
                    rfc3339(now)
                ),
            )
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            let early = chain.iter().find(|c| c.not_before > now);
            let summary = match early {
                Some(c) => format!(
                    "certificate not valid yet: \"{}\" starts on {}",
                    c.subject,
                    date(c.not_before)
                ),
                None => format!("certificate not valid yet: {subject}"),
            };
            Finding::new(
                Cause::TlsNotYetValid,
                summary,
                format!(
                    "this machine's clock is probably behind (now {}): fix the time (NTP)",
                    rfc3339(now)
                ),
            )
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let names = leaf.map(|c| c.names.join(", ")).filter(|n| !n.is_empty());
            let summary = match names {
                Some(names) => {
                    format!("wrong host name: the certificate is for {names}, not {host}")
                }
                None => format!("wrong host name: the certificate is not for {host}"),
            };
            Finding::new(
                Cause::TlsWrongHost,
                summary,
                "check the host name in the URL; if it is right, DNS points to another server (compare resolvers) or a proxy answers with its own certificate",
            )
        }
        other => Finding::new(
            Cause::TlsError,
            format!("the certificate was rejected: {other:?}"),
            "compare with `openssl s_client -connect HOST:PORT -servername HOST | openssl x509 -noout -dates -issuer`",
        ),
    }
}
