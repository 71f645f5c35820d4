//! Reading the certificates a server presented.

use std::time::SystemTime;

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

use crate::fmt::{from_unix_secs, unix_secs};
use crate::report::CertInfo;

/// At most this many certificates of a chain are read.
const MAX_CHAIN: usize = 10;
/// At most this many names of one certificate are kept.
const MAX_NAMES: usize = 50;

/// Reads every certificate of `chain` that parses, relative to `now`.
pub(crate) fn read_chain(chain: &[CertificateDer<'_>], now: SystemTime) -> Vec<CertInfo> {
    chain
        .iter()
        .take(MAX_CHAIN)
        .filter_map(|der| read(der, now))
        .collect()
}

fn read(der: &CertificateDer<'_>, now: SystemTime) -> Option<CertInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let validity = cert.validity();
    let not_before = validity.not_before.timestamp();
    let not_after = validity.not_after.timestamp();
    let days_left = not_after.saturating_sub(unix_secs(now)).div_euclid(86_400);
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if names.len() >= MAX_NAMES {
                break;
            }
            match name {
                GeneralName::DNSName(dns) => names.push(crate::fmt::printable(dns.as_bytes(), 255)),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Some(CertInfo {
        subject: crate::fmt::printable(cert.subject().to_string().as_bytes(), 300),
        issuer: crate::fmt::printable(cert.issuer().to_string().as_bytes(), 300),
        not_before: from_unix_secs(not_before),
        not_after: from_unix_secs(not_after),
        days_left,
        names,
        is_ca: cert.is_ca(),
    })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

/// The issuer the verifier could not find: that of the last certificate
/// presented (the top of the chain the server sent).
pub(crate) fn top_issuer(chain: &[CertInfo]) -> Option<&str> {
    chain.last().map(|c| c.issuer.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_skipped() {
        let junk = CertificateDer::from(vec![0x30, 0x82, 0xff, 0xff, 1, 2, 3]);
        assert!(read_chain(&[junk], SystemTime::now()).is_empty());
        assert!(read_chain(&[], SystemTime::now()).is_empty());
        assert_eq!(
            ip_from_bytes(&[127, 0, 0, 1]),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(ip_from_bytes(&[1, 2, 3]), None);
    }
}
