//! Every rustls configuration the workspace builds, in a program where
//! rustls has both the `ring` and the `aws-lc-rs` provider compiled in
//! (as `metrics-exporter-prometheus` with its default features brings):
//! rustls then has no process-level default, so a configuration that does
//! not name its provider panics while it is built. Each configuration here
//! is built and then used against a rustls server on 127.0.0.1 with an
//! rcgen certificate: the handshake completes where the test CA can be
//! trusted, and reaches the certificate check (`UnknownIssuer`) where only
//! the web PKI roots are.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use evenkeel::core::{FailureKind, Outcome, classify_error};
use evenkeel::{HyperConnector, Preset, ReqwestConnector};
use evenkeel_diagnose::{Diagnose, EnvMap, Status};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The client of `evenkeel load`: the CLI is a binary, so its module is
/// compiled here too, against this crate's rustls.
#[path = "../../../crates/evenkeel-cli/src/tls.rs"]
mod cli_tls;

/// A CA and a leaf for `127.0.0.1` signed by it.
struct Certs {
    ca: CertificateDer<'static>,
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn certs() -> Certs {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "evenkeel provider-clash CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Certs {
        ca: ca.der().clone(),
        ca_pem: ca.pem(),
        chain: vec![leaf.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

impl Certs {
    /// The test CA alone.
    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        roots
    }
}

/// What a server saw: TCP connections, and TLS handshakes that completed.
#[derive(Debug, Default)]
struct Seen {
    connections: AtomicU64,
    handshakes: AtomicU64,
}

impl Seen {
    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::SeqCst)
    }
}

/// Answers every HTTP/1.1 request on `io` with `200 ok`.
async fn serve_ok<IO>(io: IO)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(|_req: http::Request<Incoming>| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// A rustls server (its provider named: ring) for `certs`, answering
/// `200 ok` over HTTP/1.1.
async fn tls_server(certs: &Certs) -> (SocketAddr, Arc<Seen>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs.chain.clone(), certs.key.clone_key())
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counts.connections.fetch_add(1, Ordering::SeqCst);
            let (acceptor, counts) = (acceptor.clone(), counts.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    counts.handshakes.fetch_add(1, Ordering::SeqCst);
                    serve_ok(tls).await;
                }
            });
        }
    });
    (addr, seen)
}

/// A plain HTTP server answering `200 ok`.
async fn http_server() -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counts.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_ok(tcp));
        }
    });
    (addr, seen)
}

fn get(uri: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(uri).body(Full::default()).unwrap()
}

/// The `rustls::Error` somewhere in `err`'s chain. An `io::Error`'s
/// `source()` skips the error it wraps, so the walk goes through
/// `get_ref()` there (hyper-rustls wraps rustls's error in two).
fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => e.source(),
        };
    }
    None
}

fn assert_unknown_issuer(err: &(dyn std::error::Error + 'static)) {
    assert_eq!(
        rustls_error(err),
        Some(&rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer
        )),
        "{err:?}"
    );
}

#[test]
fn both_providers_are_compiled_in_so_rustls_has_no_default() {
    // What every configuration below must avoid.
    let unnamed = std::panic::catch_unwind(rustls::ClientConfig::builder);
    assert!(unnamed.is_err(), "rustls chose a default provider");
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
}

#[tokio::test]
async fn the_preset_build_https_sends_to_an_http_endpoint() {
    let (addr, seen) = http_server().await;
    let preset = Preset::builder()
        .endpoint(format!("http://{addr}"))
        .build_https()
        .unwrap();
    let response = preset.oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(seen.connections(), 1);
}

#[tokio::test]
async fn the_preset_build_https_handshakes_up_to_the_web_pki_check() {
    let certs = certs();
    let (addr, seen) = tls_server(&certs).await;
    let preset = Preset::builder()
        .endpoint(format!("https://{addr}"))
        .build_https()
        .unwrap();
    let err = preset.oneshot(get("/")).await.unwrap_err();
    // The server's certificate arrived and was judged: the test CA is not
    // among the web PKI roots.
    assert_unknown_issuer(&*err);
    match classify_error(&*err) {
        Outcome::Failed(f) => assert_eq!(f.kind, FailureKind::Certificate, "{err:?}"),
        other => panic!("{other:?} from {err:?}"),
    }
    assert!(seen.connections() >= 1);
    assert_eq!(seen.handshakes(), 0);
}

#[tokio::test]
async fn the_preset_https_connector_with_the_test_ca_completes_a_handshake() {
    let certs = certs();
    let (addr, seen) = tls_server(&certs).await;
    let preset = Preset::builder()
        .endpoint(format!("https://{addr}"))
        .build(HyperConnector::https_with_roots(certs.roots()))
        .unwrap();
    let response = preset.oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "ok");
    assert_eq!(seen.handshakes(), 1);
}

#[tokio::test]
async fn the_reqwest_client_builder_handshakes_up_to_the_web_pki_check() {
    let certs = certs();
    let (addr, seen) = tls_server(&certs).await;
    let client = evenkeel::reqwest_client_builder().build().unwrap();
    let preset = Preset::builder()
        .endpoint(format!("https://{addr}"))
        .max_attempts(1)
        .build(ReqwestConnector::new(client))
        .unwrap();
    let err = preset.oneshot(get("/")).await.unwrap_err();
    assert_unknown_issuer(&*err);
    match classify_error(&*err) {
        Outcome::Failed(f) => assert_eq!(f.kind, FailureKind::Certificate, "{err:?}"),
        other => panic!("{other:?} from {err:?}"),
    }
    assert!(seen.connections() >= 1);
    assert_eq!(seen.handshakes(), 0);
}

#[tokio::test]
async fn the_reqwest_client_builder_with_the_test_ca_completes_a_handshake() {
    let certs = certs();
    let (addr, seen) = tls_server(&certs).await;
    let client = evenkeel::reqwest_client_builder_with_roots(certs.roots())
        .build()
        .unwrap();
    let preset = Preset::builder()
        .endpoint(format!("https://{addr}"))
        .build(ReqwestConnector::new(client))
        .unwrap();
    let response = preset.oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "ok");
    assert_eq!(seen.handshakes(), 1);
}

#[tokio::test]
async fn the_diagnose_tls_probe_completes_a_handshake() {
    let certs = certs();
    let (addr, seen) = tls_server(&certs).await;
    let report = Diagnose::builder(format!("https://{addr}/"))
        .env(EnvMap::new())
        .system_resolver(false)
        .ca_pem(certs.ca_pem.clone())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .run()
        .await;
    let tls = report.tls.as_ref().unwrap();
    assert_eq!(tls.status, Status::Pass, "{}", report.table());
    assert_eq!(tls.version.as_deref(), Some("TLSv1.3"));
    assert_eq!(report.http.status_code, Some(200), "{}", report.table());
    assert_eq!(seen.handshakes(), 1);
}

#[tokio::test]
async fn the_cli_load_client_completes_a_handshake() {
    let certs = certs();
    let (addr, seen) = tls_server(&certs).await;
    let client = cli_tls::https_client::<Full<Bytes>>(certs.roots());
    let response = client
        .request(get(&format!("https://{addr}/")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(seen.handshakes(), 1);
}

#[tokio::test]
async fn the_cli_load_client_with_the_web_pki_roots_sends_plain_http() {
    let (addr, seen) = http_server().await;
    let client = cli_tls::https_client::<Full<Bytes>>(cli_tls::web_pki_roots());
    let response = client
        .request(get(&format!("http://{addr}/")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(seen.connections(), 1);
}

/// Runs the Anthropic example, as built here; returns its stdout.
fn anthropic_example(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_clash-anthropic-messages"))
        .args(args)
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    stdout
}

#[test]
fn the_anthropic_example_runs_against_its_simulated_api() {
    let stdout = anthropic_example(&["--requests", "2", "--callers", "1"]);
    assert!(stdout.contains("msg-0: 200"), "{stdout}");
    assert!(stdout.contains("msg-1: 200"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_anthropic_example_handshakes_up_to_the_web_pki_check() {
    let certs = certs();
    let (addr, seen) = tls_server(&certs).await;
    let url = format!("https://{addr}");
    let stdout = tokio::task::spawn_blocking(move || {
        anthropic_example(&[
            "--base-url",
            &url,
            "--api-key",
            "sk-ant-test",
            "--requests",
            "1",
        ])
    })
    .await
    .unwrap();
    assert!(stdout.contains("msg-0: failed"), "{stdout}");
    assert!(seen.connections() >= 1);
    assert_eq!(seen.handshakes(), 0);
}
