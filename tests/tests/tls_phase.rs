//! Transport errors by phase, with real rustls and hyper-util over
//! loopback: a TLS failure while connecting is never-sent; the same words
//! after the request was written are not, and a POST is not replayed.

#[path = "support/tls.rs"]
mod certs_support;

use certs_support::{Certs, certs, read_head};
use rustls_pki_types::CertificateDer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use evenkeel::core::{FailureKind, Outcome, Sent, classify_error};
use evenkeel::{HyperConnector, Preset};
use http_body_util::Full;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// A TLS server that reads each request's head and then drops the
/// connection without TLS `close_notify`. Counts the requests it read.
async fn drop_after_reading(certs: &Certs) -> (u16, Arc<AtomicU64>) {
    let acceptor = certs.acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if !read_head(&mut tls).await {
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                // Dropped, not shut down: no close_notify.
                drop(tls);
            });
        }
    });
    (port, seen)
}

/// The preset over HTTPS, trusting `ca` only.
/// The client `HyperConnector` makes over hyper-rustls's connector.
type HyperHttpsClient = evenkeel::HyperClient<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
>;

fn client(port: u16, ca: &CertificateDer<'static>) -> Preset<HyperHttpsClient> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Preset::builder()
        .endpoint(format!("https://127.0.0.1:{port}"))
        .build(HyperConnector::new(https))
        .unwrap()
}

fn request(method: &str) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri("/v1/messages")
        .body(Full::new(Bytes::from_static(b"{\"max_tokens\":1}")))
        .unwrap()
}

#[tokio::test]
async fn a_tls_close_after_the_request_was_written_is_maybe_processed() {
    let certs = certs(&["127.0.0.1"]);
    let (port, seen) = drop_after_reading(&certs).await;
    let client = client(port, &certs.ca);

    let err = client.clone().oneshot(request("POST")).await.unwrap_err();
    match classify_error(&*err) {
        Outcome::Failed(f) => {
            assert_eq!(f.sent, Sent::Maybe, "{err:?}");
            assert_ne!(f.kind, FailureKind::Certificate);
            assert_ne!(f.kind, FailureKind::Tls, "{err:?}");
        }
        other => panic!("{other:?} from {err:?}"),
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "the POST reached the server once"
    );

    // A GET may be resent: every attempt reaches the server.
    let before = seen.load(Ordering::SeqCst);
    client.clone().oneshot(request("GET")).await.unwrap_err();
    assert_eq!(
        seen.load(Ordering::SeqCst) - before,
        u64::from(evenkeel::DEFAULT_MAX_ATTEMPTS)
    );
}

#[tokio::test]
async fn a_certificate_rejected_while_connecting_is_never_sent() {
    let certs = certs(&["127.0.0.1"]);
    let (port, seen) = drop_after_reading(&certs).await;
    // Trusting another CA: the handshake fails on the server's certificate.
    let other = self::certs(&["127.0.0.1"]);
    let client = client(port, &other.ca);
    let err = client.oneshot(request("POST")).await.unwrap_err();
    match classify_error(&*err) {
        Outcome::Failed(f) => {
            assert_eq!(f.kind, FailureKind::Certificate, "{err:?}");
            assert_eq!(f.sent, Sent::Never);
        }
        other => panic!("{other:?} from {err:?}"),
    }
    assert_eq!(seen.load(Ordering::SeqCst), 0);
}
