//! A proxy URL (`http://[user:pass@]host[:port]` or `host:port`), parsed,
//! with its credentials kept out of `Debug`.

use std::fmt;

/// A proxy to reach the target through, parsed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ProxyUrl {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `user:password`, percent-decoded, for `Proxy-Authorization: Basic`.
    pub(crate) credentials: Option<String>,
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.credentials.as_ref().map(|_| "***"))
            .finish()
    }
}

impl ProxyUrl {
    /// Parses `http://[user:pass@]host[:port][/]` or `host:port`. Only the
    /// `http` scheme is spoken (a `CONNECT` tunnel over plain TCP).
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let rest = match value.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "scheme {scheme}:// is not supported (only http:// proxies, which tunnel with CONNECT)"
                ));
            }
            None => value,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport)?;
        let credentials = userinfo.map(percent_decode);
        Ok(Self {
            host,
            port: port.unwrap_or(80),
            credentials,
        })
    }
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed [ in {hostport:?}"))?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(format!("unexpected text after ] in {hostport:?}")),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("no host in {hostport:?}"));
    }
    let valid = if hostport.starts_with('[') {
        host.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        host.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    if !valid {
        return Err(format!("bad host {host:?}"));
    }
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("bad port {p:?}")),
        },
        None => None,
    };
    Ok((host.to_ascii_lowercase(), port))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies() {
        let p = ProxyUrl::parse("http://user:p%40ss@Proxy.local:3128/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.local", 3128));
        assert_eq!(p.credentials.as_deref(), Some("user:p@ss"));
        assert!(!format!("{p:?}").contains("p@ss"));

        let p = ProxyUrl::parse("127.0.0.1:8080").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("127.0.0.1", 8080));
        let p = ProxyUrl::parse("http://[::1]").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 80));

        assert!(
            ProxyUrl::parse("socks5://h:1080")
                .unwrap_err()
                .contains("socks5")
        );
        for bad in [
            "",
            "http://",
            "http://h:x",
            "http://h:0",
            "http://[::1",
            "http://[nope]:1",
            "http://h:99999",
            "%",
            "http://a b:1",
        ] {
            assert!(ProxyUrl::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(input in ".{0,80}") {
            let _ = ProxyUrl::parse(&input);
            let _ = percent_decode(&input);
        }

        #[test]
        fn url_shaped_input_never_panics(
            scheme in "(https?|ftp|)",
            host in "[a-zA-Z0-9.:\\[\\]%_-]{0,30}",
            port in proptest::option::of(0u32..70_000),
            path in "[ -~]{0,20}",
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let url = format!("{scheme}://{host}{port}{path}");
            let _ = ProxyUrl::parse(&url);
        }
    }
}
