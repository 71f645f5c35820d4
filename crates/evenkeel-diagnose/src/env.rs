//! Where proxy settings come from: the process environment, or a map a test
//! or a service hands in, read through [`EnvSource`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// A source of environment variables.
///
/// The checks read `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`
/// (each in lower and upper case) through this trait, so a test can hand in
/// an [`EnvMap`] and not depend on the machine it runs on.
pub trait EnvSource: fmt::Debug + Send + Sync {
    /// The value of `name`, or `None` when unset or not UTF-8.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment ([`std::env::var`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A fixed set of variables; empty by default.
///
/// ```
/// use evenkeel_diagnose::{EnvMap, EnvSource};
///
/// let env = EnvMap::new().with("HTTPS_PROXY", "http://127.0.0.1:3128");
/// assert_eq!(env.var("HTTPS_PROXY").as_deref(), Some("http://127.0.0.1:3128"));
/// assert_eq!(env.var("NO_PROXY"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvMap {
    vars: BTreeMap<String, String>,
}

impl EnvMap {
    /// No variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for EnvMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self {
            vars: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl EnvSource for EnvMap {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}

/// The proxy variables that apply to a scheme, in the order they are read
/// (lower case first, as curl does).
pub(crate) fn proxy_vars(https: bool) -> &'static [&'static str] {
    if https {
        &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
    } else {
        &["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
    }
}

/// Every proxy-related variable set, for the report.
pub(crate) const REPORTED_VARS: &[&str] = &[
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// The `NO_PROXY` entry that matches `host`, if any.
///
/// Entries are comma-separated: `*` matches every host; a domain
/// (`example.com` or `.example.com`) matches itself and its subdomains; an
/// IP address matches itself; `a.b.c.d/n` (or an IPv6 prefix) matches the
/// addresses in the block. A `:port` suffix is ignored.
pub(crate) fn no_proxy_match(no_proxy: &str, host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let host_ip: Option<IpAddr> = host.parse().ok();
    for raw in no_proxy.split(',') {
        let entry = raw.trim();
        if entry.is_empty() {
            continue;
        }
        if entry == "*" {
            return Some(entry.to_owned());
        }
        let bare = strip_port(entry).trim_end_matches('.').to_ascii_lowercase();
        let hit = if let Some((net, bits)) = bare.split_once('/') {
            match (net.parse::<IpAddr>(), bits.parse::<u8>(), host_ip) {
                (Ok(net), Ok(bits), Some(ip)) => in_block(ip, net, bits),
                _ => false,
            }
        } else if let Ok(ip) = bare.trim_matches(['[', ']']).parse::<IpAddr>() {
            host_ip == Some(ip)
        } else {
            let domain = bare.trim_start_matches("*.").trim_start_matches('.');
            !domain.is_empty()
                && (host == domain
                    || (host.len() > domain.len()
                        && host.ends_with(domain)
                        && host.as_bytes()[host.len() - domain.len() - 1] == b'.'))
        };
        if hit {
            return Some(entry.to_owned());
        }
    }
    None
}

fn strip_port(entry: &str) -> &str {
    // `[v6]:port`, `host:port`; a bare IPv6 address has several colons.
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match entry.rsplit_once(':') {
        Some((head, port)) if !head.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            head
        }
        _ => entry,
    }
}

fn in_block(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// `value` with the password of any `user:password@` masked.
pub(crate) fn mask_credentials(value: &str) -> String {
    let (scheme, rest) = match value.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, value),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let masked = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{user}:***@{hostport}")
            } else {
                format!("{user}@{hostport}")
            }
        }
        None => authority.to_owned(),
    };
    match scheme {
        Some(s) => format!("{s}://{masked}{path}"),
        None => format!("{masked}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_domains_suffixes_ips_and_blocks() {
        let list = "localhost, .internal.example,example.org:8080,10.0.0.0/8,::1,[fe80::1]:80";
        assert_eq!(
            no_proxy_match(list, "localhost").as_deref(),
            Some("localhost")
        );
        assert_eq!(
            no_proxy_match(list, "api.internal.example").as_deref(),
            Some(".internal.example")
        );
        assert_eq!(
            no_proxy_match(list, "internal.example").as_deref(),
            Some(".internal.example")
        );
        assert_eq!(
            no_proxy_match(list, "EXAMPLE.org.").as_deref(),
            Some("example.org:8080")
        );
        assert_eq!(no_proxy_match(list, "notexample.org"), None);
        assert_eq!(
            no_proxy_match(list, "10.1.2.3").as_deref(),
            Some("10.0.0.0/8")
        );
        assert_eq!(no_proxy_match(list, "11.1.2.3"), None);
        assert_eq!(no_proxy_match(list, "::1").as_deref(), Some("::1"));
        assert_eq!(
            no_proxy_match(list, "fe80::1").as_deref(),
            Some("[fe80::1]:80")
        );
        assert_eq!(no_proxy_match("*", "anything").as_deref(), Some("*"));
        assert_eq!(no_proxy_match("", "anything"), None);
        assert_eq!(no_proxy_match(" , ,", "anything"), None);
    }

    #[test]
    fn no_proxy_survives_garbage() {
        for list in [
            "/",
            "1.2.3.4/99",
            "::/200",
            "[",
            "]:",
            ".",
            "*.",
            "a/b/c",
            ":::",
        ] {
            let _ = no_proxy_match(list, "example.com");
            let _ = no_proxy_match(list, "1.2.3.4");
        }
        assert_eq!(
            no_proxy_match("0.0.0.0/0", "8.8.8.8").as_deref(),
            Some("0.0.0.0/0")
        );
    }

    #[test]
    fn credentials_are_masked() {
        assert_eq!(
            mask_credentials("http://user:secret@proxy:3128/"),
            "http://user:***@proxy:3128/"
        );
        assert_eq!(mask_credentials("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(
            mask_credentials("user:pw@proxy:3128"),
            "user:***@proxy:3128"
        );
        assert_eq!(mask_credentials("http://token@proxy"), "http://token@proxy");
    }

    proptest::proptest! {
        #[test]
        fn no_proxy_never_panics(list in ".{0,60}", host in ".{0,30}") {
            let _ = no_proxy_match(&list, &host);
            let _ = mask_credentials(&list);
        }

        #[test]
        fn passwords_are_never_shown(
            user in "[a-z]{1,8}",
            password in "[A-Za-z0-9]{6,16}",
            host in "[a-z]{1,8}(\\.[a-z]{2,3})?",
        ) {
            let masked = mask_credentials(&format!("http://{user}:{password}@{host}:3128/"));
            proptest::prop_assert!(!masked.contains(&password), "{}", masked);
        }
    }

    #[test]
    fn env_map_reads_back() {
        let env: EnvMap = [("A", "1")].into_iter().collect();
        assert_eq!(env.var("A").as_deref(), Some("1"));
        assert_eq!(env.var("a"), None);
    }
}
