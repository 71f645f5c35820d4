//! Proxies as routes of a preset endpoint, through real proxies on
//! loopback: `tinyproxy` (HTTP `CONNECT`, Basic auth) and `danted` (SOCKS5),
//! with `evenkeel-sim` as the upstream, over HTTP and over TLS.
//!
//! Each test starts its own proxies on free loopback ports, with their
//! configuration in a temporary directory, and kills them when it ends.
//! A missing binary fails the test with the command that installs it.
//! Real sockets run on the real clock: nothing here asserts a time.

#[path = "support/tls.rs"]
mod certs_support;

use certs_support::{Certs, certs};

use std::net::{TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use evenkeel::core::{BoxError, Outcome, Sent, classify_error};
use evenkeel::{HttpClient, Preset, ProxyEnv, ProxyError, ProxyFailure, RoutedConnector};
use evenkeel_sim::{Faults, Sim, SimServer};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

// ---------------------------------------------------------------------------
// Proxies as child processes
// ---------------------------------------------------------------------------

const INSTALL: &str = "install it: apt-get install -y tinyproxy dante-server";

/// The path of `binary`, or a failure saying how to install it.
fn require(binary: &str) -> PathBuf {
    let dirs = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|dir| dir.join(binary))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("`{binary}` is not installed; {INSTALL}"))
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "evenkeel-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A proxy daemon in the foreground, killed on drop.
struct Daemon {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl Daemon {
    /// Starts `binary` with the configuration `config(port)` written to a
    /// file, on a free port, and waits until it accepts connections (for
    /// at most 20 s; a port taken meanwhile is retried with another).
    fn start(binary: &str, args: &[&str], config: impl Fn(u16) -> String) -> Self {
        let path = require(binary);
        for _ in 0..5 {
            let dir = TempDir::new(binary);
            let port = free_port();
            let conf = dir.path().join("proxy.conf");
            std::fs::write(&conf, config(port)).unwrap();
            let log = dir.path().join("proxy.log");
            let out = std::fs::File::create(&log).unwrap();
            let mut command = Command::new(&path);
            for arg in args {
                command.arg(arg);
            }
            let child = command
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start `{binary}` ({e}); {INSTALL}"));
            let mut daemon = Daemon {
                child,
                port,
                log,
                _dir: dir,
            };
            for _ in 0..200 {
                if let Ok(Some(_)) = daemon.child.try_wait() {
                    break;
                }
                if StdStream::connect(("127.0.0.1", port)).is_ok() {
                    return daemon;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("`{binary}` did not listen on {port}:\n{}", daemon.log());
        }
        panic!("`{binary}` did not start; see its log above");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Daemon {
    /// `SIGTERM` first, so that danted stops the processes it forked; then,
    /// after at most 5 s, `SIGKILL`.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tinyproxy` on loopback, with `extra` configuration lines.
fn tinyproxy(extra: &str) -> Daemon {
    let extra = extra.to_owned();
    Daemon::start("tinyproxy", &["-d", "-c"], move |port| {
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogLevel Connect\nMaxClients 50\n\
             Allow 127.0.0.1\nDisableViaHeader Yes\n{extra}\n"
        )
    })
}

/// `danted` (Dante) on loopback: SOCKS5 without authentication.
fn danted() -> Daemon {
    Daemon::start("danted", &["-N", "1", "-f"], |port| {
        format!(
            "logoutput: stderr\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n\
             clientmethod: none\nsocksmethod: none\nuser.privileged: root\n\
             user.unprivileged: nobody\n\
             client pass {{\n    from: 127.0.0.0/8 to: 0.0.0.0/0\n}}\n\
             socks pass {{\n    from: 127.0.0.0/8 to: 0.0.0.0/0\n    command: connect\n}}\n"
        )
    })
}

/// A port nothing listens on: connecting is refused.
fn dead_port() -> u16 {
    free_port()
}

// ---------------------------------------------------------------------------
// Loopback helpers: a recording relay, a TLS front, the simulator
// ---------------------------------------------------------------------------

/// A TCP relay in front of `upstream` that keeps what clients sent, so a
/// test can see what reached a proxy.
struct Relay {
    port: u16,
    sent: Arc<Mutex<Vec<u8>>>,
    connections: Arc<AtomicUsize>,
}

impl Relay {
    async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (record, count) = (Arc::clone(&sent), Arc::clone(&connections));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (mut client_rx, mut client_tx) = client.into_split();
                    let (mut server_rx, mut server_tx) = server.into_split();
                    let up = async move {
                        let mut buf = [0u8; 8192];
                        loop {
                            match client_rx.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    record.lock().unwrap().extend_from_slice(&buf[..n]);
                                    if server_tx.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = server_tx.shutdown().await;
                    };
                    let down = async move {
                        let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
                        let _ = client_tx.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Relay {
            port,
            sent,
            connections,
        }
    }

    fn sent(&self) -> Vec<u8> {
        self.sent.lock().unwrap().clone()
    }

    fn sent_text(&self) -> String {
        String::from_utf8_lossy(&self.sent()).into_owned()
    }
}

/// A TLS front on a loopback port that terminates TLS (HTTP/1.1 by ALPN)
/// and relays the bytes to `upstream`: the simulator over TLS, or an
/// `https://` proxy in front of tinyproxy.
async fn tls_front(upstream: u16, certs: &Certs) -> u16 {
    let acceptor = certs.acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
            });
        }
    });
    port
}

async fn sim(faults: Faults) -> SimServer {
    Sim::builder()
        .faults(faults)
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn request(method: Method, id: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("/v1/messages")
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .body(Full::new(Bytes::from_static(br#"{"max_tokens":16}"#)))
        .unwrap()
}

/// A preset on `endpoint` through `proxies` over plain HTTP, one attempt
/// per call (so that a move between routes is failover's, not a retry),
/// the ambient proxy environment ignored.
fn http_preset(endpoint: &str, proxies: &[String]) -> Preset<HttpClient> {
    Preset::builder()
        .endpoint(endpoint)
        .via_proxies(proxies.iter().cloned())
        .no_proxy_env()
        .max_attempts(1)
        .build_http()
        .unwrap()
}

async fn send<S, B>(client: &S, method: Method, id: &str) -> Result<(StatusCode, Bytes), BoxError>
where
    S: tower::Service<Request<Full<Bytes>>, Response = http::Response<B>, Error = BoxError> + Clone,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let response = client.clone().oneshot(request(method, id)).await?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(Into::into)?
        .to_bytes();
    Ok((status, body))
}

/// An error and its sources, joined.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(err) = cause {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cause = err.source();
    }
    text
}

fn assert_never_sent(error: &BoxError) {
    match classify_error(&**error) {
        Outcome::Failed(failure) => assert_eq!(failure.sent, Sent::Never, "{error:?}"),
        other => panic!("expected a failure, got {other:?} for {error:?}"),
    }
}

// ---------------------------------------------------------------------------
// HTTP proxies
// ---------------------------------------------------------------------------

#[tokio::test]
async fn get_and_post_reach_an_http_target_through_tinyproxy() {
    let proxy = tinyproxy("");
    let relay = Relay::start(proxy.port).await;
    let server = sim(Faults::none()).await;
    let client = http_preset(&server.url(), &[format!("http://127.0.0.1:{}", relay.port)]);

    let (status, _) = send(&client, Method::GET, "get-1").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&client, Method::POST, "post-1").await.unwrap();
    assert_eq!(status, StatusCode::OK);

    assert_eq!(server.stats().attempts_for("get-1"), 1);
    assert_eq!(server.stats().attempts_for("post-1"), 1);
    let port = server.addr().port();
    let sent = relay.sent_text();
    assert!(
        sent.starts_with(&format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n")),
        "the proxy was asked for a tunnel to the target: {sent:?}"
    );
    assert!(sent.contains("x-request-id: post-1"), "{sent:?}");
    assert_eq!(
        client.endpoints()[0].name,
        format!("127.0.0.1:{port} via 127.0.0.1:{}", relay.port)
    );
}

#[tokio::test]
async fn get_and_post_reach_a_tls_target_through_tinyproxy() {
    let certs = certs(&["127.0.0.1", "localhost"]);
    let proxy = tinyproxy("");
    let relay = Relay::start(proxy.port).await;
    let server = sim(Faults::none()).await;
    let tls_port = tls_front(server.addr().port(), &certs).await;
    let client = Preset::builder()
        .endpoint(format!("https://127.0.0.1:{tls_port}"))
        .via_proxies([format!("http://127.0.0.1:{}", relay.port)])
        .max_attempts(1)
        .build(RoutedConnector::https_with_roots(certs.roots()))
        .unwrap();

    let (status, _) = send(&client, Method::GET, "tls-get").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&client, Method::POST, "tls-post").await.unwrap();
    assert_eq!(status, StatusCode::OK);

    assert_eq!(server.stats().attempts_for("tls-get"), 1);
    assert_eq!(server.stats().attempts_for("tls-post"), 1);
    let sent = relay.sent();
    let head = format!("CONNECT 127.0.0.1:{tls_port} HTTP/1.1\r\n");
    assert!(sent.starts_with(head.as_bytes()), "{:?}", relay.sent_text());
    // TLS inside the tunnel: the proxy never saw the request in the clear.
    let text = relay.sent_text();
    assert!(!text.contains("x-request-id"), "{text:?}");
}

#[tokio::test]
async fn basic_auth_from_the_proxy_url_opens_the_tunnel_and_its_absence_is_a_407() {
    let proxy = tinyproxy("BasicAuth alice s3cret");
    let server = sim(Faults::none()).await;

    let with = http_preset(
        &server.url(),
        &[format!("http://alice:s3cret@127.0.0.1:{}", proxy.port)],
    );
    let (status, _) = send(&with, Method::POST, "auth-ok").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.stats().attempts_for("auth-ok"), 1);

    let without = http_preset(&server.url(), &[proxy.url()]);
    let error = send(&without, Method::POST, "auth-missing")
        .await
        .unwrap_err();
    let found = ProxyError::find(&*error).unwrap_or_else(|| panic!("no ProxyError in {error:?}"));
    assert_eq!(found.failure(), ProxyFailure::AuthRequired, "{found}");
    assert!(chain(found).contains("407"), "{}", chain(found));
    assert_eq!(found.proxy(), proxy.url());
    assert_never_sent(&error);
    assert_eq!(server.stats().attempts_for("auth-missing"), 0);

    let wrong = http_preset(
        &server.url(),
        &[format!("http://alice:wrong@127.0.0.1:{}", proxy.port)],
    );
    let error = send(&wrong, Method::GET, "auth-wrong").await.unwrap_err();
    let found = ProxyError::find(&*error).unwrap();
    assert_eq!(found.failure(), ProxyFailure::AuthRequired, "{found}");
    // The password appears nowhere in what the error says.
    assert!(!format!("{error:?} {found}").contains("wrong"), "{found}");
}

#[tokio::test]
async fn an_https_proxy_is_reached_over_tls() {
    let certs = certs(&["127.0.0.1", "localhost"]);
    let proxy = tinyproxy("");
    let relay = Relay::start(proxy.port).await;
    let proxy_tls = tls_front(relay.port, &certs).await;
    let server = sim(Faults::none()).await;
    let target_tls = tls_front(server.addr().port(), &certs).await;
    let client = Preset::builder()
        .endpoint(format!("https://localhost:{target_tls}"))
        .via_proxies([format!("https://127.0.0.1:{proxy_tls}")])
        .max_attempts(1)
        .build(RoutedConnector::https_with_roots(certs.roots()))
        .unwrap();

    let (status, _) = send(&client, Method::POST, "https-proxy").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.stats().attempts_for("https-proxy"), 1);
    // Behind the TLS front, tinyproxy got the CONNECT in the clear.
    let sent = relay.sent_text();
    assert!(
        sent.starts_with(&format!("CONNECT localhost:{target_tls} HTTP/1.1\r\n")),
        "{sent:?}"
    );
}

// ---------------------------------------------------------------------------
// SOCKS5
// ---------------------------------------------------------------------------

/// The address type of the SOCKS5 CONNECT request in what a client sent:
/// 1 for an IPv4 address, 3 for a name, 4 for IPv6.
fn socks_address_type(sent: &[u8]) -> u8 {
    assert_eq!(sent.first(), Some(&5), "a SOCKS5 greeting: {sent:?}");
    let methods = usize::from(sent[1]);
    let request = &sent[2 + methods..];
    assert_eq!(&request[..3], &[5, 1, 0], "a SOCKS5 CONNECT: {sent:?}");
    request[3]
}

#[tokio::test]
async fn socks5_resolves_the_target_here_and_socks5h_at_the_proxy() {
    let socks = danted();
    let server = sim(Faults::none()).await;
    let port = server.addr().port();

    let local = Relay::start(socks.port).await;
    let client = http_preset(
        &format!("http://127.0.0.1:{port}"),
        &[format!("socks5://127.0.0.1:{}", local.port)],
    );
    let (status, _) = send(&client, Method::POST, "socks5").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.stats().attempts_for("socks5"), 1);
    assert_eq!(
        socks_address_type(&local.sent()),
        1,
        "an address, resolved here"
    );

    let remote = Relay::start(socks.port).await;
    let client = http_preset(
        &format!("http://localhost:{port}"),
        &[format!("socks5h://127.0.0.1:{}", remote.port)],
    );
    let (status, _) = send(&client, Method::POST, "socks5h").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.stats().attempts_for("socks5h"), 1);
    let sent = remote.sent();
    assert_eq!(
        socks_address_type(&sent),
        3,
        "the name, for the proxy to resolve"
    );
    assert!(
        sent.windows(b"localhost".len()).any(|w| w == b"localhost"),
        "{sent:?}"
    );
}

// ---------------------------------------------------------------------------
// Routes and failover
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_post_moves_from_a_dead_proxy_to_a_live_one_at_once_and_is_served_once() {
    let live = tinyproxy("");
    let server = sim(Faults::none()).await;
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let client = http_preset(&server.url(), &[dead.clone(), live.url()]);
    let routes = client.endpoints();
    assert_eq!(routes.len(), 2);
    assert_eq!((routes[0].tier, routes[1].tier), (0, 1));

    let (status, _) = send(&client, Method::POST, "moved").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    // One attempt per call: the move was failover's, to the next route.
    assert_eq!(client.failover().failovers(), 1);
    assert_eq!(server.stats().attempts_for("moved"), 1);
}

#[tokio::test]
async fn an_error_answer_to_connect_moves_the_request_to_the_next_route() {
    // A proxy whose upstream is dead answers CONNECT with a 502.
    let failing = tinyproxy(&format!("Upstream http 127.0.0.1:{}", dead_port()));
    let live = tinyproxy("");
    let server = sim(Faults::none()).await;
    let client = http_preset(&server.url(), &[failing.url(), live.url()]);

    let (status, _) = send(&client, Method::POST, "after-502").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(client.failover().failovers(), 1);
    assert_eq!(server.stats().attempts_for("after-502"), 1);

    let alone = http_preset(&server.url(), &[failing.url()]);
    let error = send(&alone, Method::POST, "502-alone").await.unwrap_err();
    let found = ProxyError::find(&*error).unwrap();
    assert_eq!(found.failure(), ProxyFailure::Refused, "{found}");
    let why = chain(found);
    assert!(
        why.contains("`HTTP/1.1 502 "),
        "what the proxy answered: {why}"
    );
    assert_never_sent(&error);
}

#[tokio::test]
async fn a_failure_after_the_tunnel_carried_the_request_is_not_replayed_elsewhere() {
    let first = tinyproxy("");
    let second = tinyproxy("");
    let second_relay = Relay::start(second.port).await;
    // The sim reads the request, then resets the connection.
    let server = sim(Faults::none().reset(1.0)).await;
    let client = http_preset(
        &server.url(),
        &[
            first.url(),
            format!("http://127.0.0.1:{}", second_relay.port),
        ],
    );

    let error = send(&client, Method::POST, "reset").await.unwrap_err();
    assert!(
        ProxyError::find(&*error).is_none(),
        "the tunnel was open: {error:?}"
    );
    match classify_error(&*error) {
        Outcome::Failed(failure) => assert_eq!(failure.sent, Sent::Maybe, "{error:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.stats().attempts_for("reset"), 1);
    assert_eq!(client.failover().failovers(), 0);
    assert_eq!(second_relay.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn when_every_proxy_is_down_the_error_names_each_and_nothing_goes_direct() {
    let server = sim(Faults::none()).await;
    let http_dead = format!("http://127.0.0.1:{}", dead_port());
    let socks_dead = format!("socks5h://127.0.0.1:{}", dead_port());
    let client = http_preset(&server.url(), &[http_dead.clone(), socks_dead.clone()]);

    let error = send(&client, Method::POST, "all-down").await.unwrap_err();
    assert_never_sent(&error);
    let found = ProxyError::find(&*error).unwrap_or_else(|| panic!("no ProxyError in {error:?}"));
    let text = found.to_string();
    assert!(text.contains(&format!("`{http_dead}`")), "{text}");
    assert!(text.contains(&format!("`{socks_dead}`")), "{text}");
    assert!(text.contains("unreachable"), "{text}");
    assert!(text.contains("refused"), "why each failed: {text}");
    assert_eq!(found.other_routes().count(), 1, "{text}");
    assert_eq!(server.stats().attempts(), 0, "nothing went direct");
}

// Paused time: the proxy's timeout fires when the runtime has nothing else
// to do, which with a proxy that never answers is at once.
#[tokio::test(start_paused = true)]
async fn a_proxy_that_never_answers_times_out_as_never_sent() {
    // Nobody accepts: the kernel completes the TCP handshake and no answer
    // to CONNECT ever comes.
    let stalled = StdListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://127.0.0.1:{}", stalled.local_addr().unwrap().port());
    let connector = RoutedConnector::http()
        .proxy_timeout(Duration::from_secs(5))
        .unwrap();
    let client = Preset::builder()
        .endpoint("http://127.0.0.1:9")
        .via_proxies([proxy.clone()])
        .no_proxy_env()
        .max_attempts(1)
        .attempt_timeout(Duration::from_secs(20))
        .build(connector)
        .unwrap();

    let error = send(&client, Method::POST, "stalled").await.unwrap_err();
    let found = ProxyError::find(&*error).unwrap_or_else(|| panic!("no ProxyError in {error:?}"));
    assert_eq!(found.failure(), ProxyFailure::TimedOut, "{}", chain(found));
    assert_eq!(found.proxy(), proxy);
    assert_never_sent(&error);
    drop(stalled);

    let err = RoutedConnector::http()
        .proxy_timeout(Duration::ZERO)
        .unwrap_err();
    assert_eq!(err.field(), "proxy_timeout");
}

// ---------------------------------------------------------------------------
// The proxy environment
// ---------------------------------------------------------------------------

fn env_preset(endpoint: &str, env: ProxyEnv) -> Preset<HttpClient> {
    Preset::builder()
        .endpoint(endpoint)
        .proxy_env(env)
        .max_attempts(1)
        .build_http()
        .unwrap()
}

#[tokio::test]
async fn build_http_follows_http_proxy_and_no_proxy_from_the_environment() {
    let proxy = tinyproxy("");
    let relay = Relay::start(proxy.port).await;
    let server = sim(Faults::none()).await;
    let via = format!("127.0.0.1:{}", relay.port);

    let routed = env_preset(
        &server.url(),
        ProxyEnv::from_vars([
            ("http_proxy", via.as_str()),
            ("HTTPS_PROXY", "http://unused:1"),
        ]),
    );
    assert_eq!(
        routed.endpoints()[0].name,
        format!("127.0.0.1:{} via {via}", server.addr().port())
    );
    let (status, _) = send(&routed, Method::GET, "env-proxy").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(relay.connections.load(Ordering::SeqCst), 1);

    let excluded = env_preset(
        &server.url(),
        ProxyEnv::from_vars([("HTTP_PROXY", via.as_str()), ("NO_PROXY", "127.0.0.0/8")]),
    );
    let (status, _) = send(&excluded, Method::GET, "env-no-proxy").await.unwrap();
    assert_eq!(status, StatusCode::OK);

    let off = Preset::builder()
        .endpoint(server.url())
        .proxy_env(ProxyEnv::from_vars([("ALL_PROXY", via.as_str())]))
        .no_proxy_env()
        .build_http()
        .unwrap();
    let (status, _) = send(&off, Method::GET, "env-off").await.unwrap();
    assert_eq!(status, StatusCode::OK);

    assert_eq!(
        relay.connections.load(Ordering::SeqCst),
        1,
        "only the first went via the proxy"
    );
    assert_eq!(server.stats().attempts(), 3);
}

#[tokio::test]
async fn explicit_proxies_win_over_the_environment() {
    let proxy = tinyproxy("");
    let server = sim(Faults::none()).await;
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let client = Preset::builder()
        .endpoint(server.url())
        .via_proxies([proxy.url()])
        .proxy_env(ProxyEnv::from_vars([("HTTP_PROXY", dead.as_str())]))
        .max_attempts(1)
        .build_http()
        .unwrap();
    assert_eq!(client.endpoints().len(), 1);
    let (status, _) = send(&client, Method::GET, "explicit").await.unwrap();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_plain_http_preset_never_sends_in_the_clear_to_an_https_endpoint() {
    let target = StdListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let port = target.local_addr().unwrap().port();
    let client = Preset::builder()
        .endpoint(format!("https://127.0.0.1:{port}"))
        .no_proxy_env()
        .max_attempts(1)
        .build_http()
        .unwrap();
    let error = send(&client, Method::POST, "clear").await.unwrap_err();
    assert!(
        chain(&*error).contains("build_https()"),
        "{}",
        chain(&*error)
    );
    assert_never_sent(&error);
    let accepted = target.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "nothing connected: {accepted:?}"
    );
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[test]
fn proxy_urls_are_checked_when_the_preset_is_built() {
    let build = |proxy: &str| {
        Preset::builder()
            .endpoint("https://api.anthropic.com")
            .via_proxies([proxy])
            .build_https()
            .map(|_| ())
    };
    let err = build("ftp://proxy1:21").unwrap_err();
    assert_eq!(err.field(), "via_proxies");
    assert!(err.to_string().contains("`ftp://proxy1:21`"), "{err}");
    let err = build("http://:3128").unwrap_err();
    assert!(
        err.to_string().contains("`http://:3128` has no host"),
        "{err}"
    );
    let err = Preset::builder()
        .via_proxies(["http://proxy1:3128"])
        .endpoint("https://api.anthropic.com")
        .build_https()
        .unwrap_err();
    assert_eq!(err.field(), "via_proxies");
    let err = Preset::builder()
        .endpoint("https://api.anthropic.com")
        .via_proxies(["http://proxy1:3128", "http://proxy1:3128/"])
        .build_https()
        .unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    let err = Preset::builder()
        .endpoint("https://api.anthropic.com")
        .proxy_env(ProxyEnv::from_vars([("HTTPS_PROXY", "gopher://x")]))
        .build_https()
        .unwrap_err();
    assert!(err.to_string().contains("HTTPS_PROXY"), "{err}");
}

#[test]
fn a_connector_that_cannot_route_refuses_proxies_at_build() {
    let err = Preset::builder()
        .endpoint("http://127.0.0.1:1")
        .via_proxies(["http://127.0.0.1:2"])
        .build(evenkeel::HyperConnector::http())
        .unwrap_err();
    assert_eq!(err.field(), "connector");
    assert!(err.to_string().contains("`http://127.0.0.1:2`"), "{err}");
    // The environment is only read by connectors that route.
    Preset::builder()
        .endpoint("http://127.0.0.1:1")
        .proxy_env(ProxyEnv::from_vars([("HTTP_PROXY", "http://127.0.0.1:2")]))
        .build(evenkeel::HyperConnector::http())
        .unwrap();
}
