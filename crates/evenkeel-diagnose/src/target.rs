//! The URL under diagnosis, parsed into the parts the checks use.

use std::net::IpAddr;

use evenkeel_core::ConfigError;
use http::Uri;

/// The parts of the URL the checks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) https: bool,
    /// Without brackets for IPv6.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `host[:port]` as the `Host` header and `CONNECT` write it.
    pub(crate) authority: String,
    pub(crate) path_and_query: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Self, ConfigError> {
        let bad = |msg: &str| ConfigError::new("url", format!("{msg}: {url:?}"));
        let uri: Uri = url
            .trim()
            .parse()
            .map_err(|e| ConfigError::new("url", format!("is not a URL ({e}): {url:?}")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(other) => {
                return Err(ConfigError::new(
                    "url",
                    format!("must be http:// or https://, got {other}://"),
                ));
            }
            None => return Err(bad("needs a scheme, http:// or https://")),
        };
        let raw_host = uri.host().ok_or_else(|| bad("has no host"))?;
        let host = raw_host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        let default_port = if https { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        if port == 0 {
            return Err(bad("has port 0"));
        }
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let authority = if port == default_port {
            bracketed
        } else {
            format!("{bracketed}:{port}")
        };
        let path_and_query = uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .filter(|pq| !pq.is_empty())
            .unwrap_or("/")
            .to_owned();
        Ok(Self {
            url: url.trim().to_owned(),
            https,
            host,
            port,
            authority,
            path_and_query,
        })
    }

    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// `host:port` for `CONNECT`, brackets around IPv6.
    pub(crate) fn connect_authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("https://API.example.com/v1/models?x=1").unwrap();
        assert!(t.https);
        assert_eq!((t.host.as_str(), t.port), ("api.example.com", 443));
        assert_eq!(t.authority, "api.example.com");
        assert_eq!(t.path_and_query, "/v1/models?x=1");
        assert_eq!(t.connect_authority(), "api.example.com:443");

        let t = Target::parse("http://[::1]:8080").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8080));
        assert_eq!(t.authority, "[::1]:8080");
        assert_eq!(t.path_and_query, "/");
        assert_eq!(t.ip(), Some("::1".parse().unwrap()));

        for bad in [
            "",
            "api.example.com",
            "ftp://x",
            "https://",
            "http://x:0",
            "http://a b",
            "\u{0}",
        ] {
            let err = Target::parse(bad).unwrap_err();
            assert_eq!(err.field(), "url", "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(input in ".{0,80}") {
            let _ = Target::parse(&input);
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
            if let Ok(t) = Target::parse(&url) {
                proptest::prop_assert!(t.port > 0);
                proptest::prop_assert!(!t.host.is_empty());
                proptest::prop_assert!(t.path_and_query.starts_with('/') || t.path_and_query.starts_with('?') || t.path_and_query.starts_with('*'));
            }
        }
    }
}
