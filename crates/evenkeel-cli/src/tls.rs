//! The client `evenkeel load` sends with: hyper-util over rustls, for
//! HTTPS and plain HTTP.
//!
//! rustls is given its crypto provider (`ring`) by name: with a second
//! provider compiled in (`aws-lc-rs`, as `metrics-exporter-prometheus`
//! brings with its default features), rustls has no process default and
//! `ClientConfig::builder()` panics.
//!
//! Self-contained (no `crate::` paths), so that the workspace's
//! `provider-clash` test compiles this same file next to a second rustls
//! crypto provider.

use std::sync::Arc;
use std::time::Duration;

use evenkeel::core::BoxError;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;

/// The hyper-util client over HTTPS (and plain HTTP).
pub(crate) type HttpsClient<B> = Client<HttpsConnector<HttpConnector>, B>;

/// The web PKI roots (Mozilla's, from `webpki-roots`).
pub(crate) fn web_pki_roots() -> RootCertStore {
    webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect()
}

/// A client for HTTPS (trusting `roots`) and plain HTTP, HTTP/1.1 and
/// HTTP/2 by ALPN, with a 5 s connect timeout.
pub(crate) fn https_client<B>(roots: RootCertStore) -> HttpsClient<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Client::builder(TokioExecutor::new()).build(https_connector(roots))
}

/// The connector of [`https_client`]: HTTPS (trusting `roots`) and plain
/// HTTP, HTTP/1.1 and HTTP/2 by ALPN, with a 5 s connect timeout.
pub(crate) fn https_connector(roots: RootCertStore) -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("rustls's ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http)
}
