//! Loopback servers for the integration tests: a test CA, a TLS server, a
//! plain HTTP server, raw TCP servers, a DNS responder and a CONNECT proxy.
//! Everything binds 127.0.0.1 and lives as long as the test's runtime.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use evenkeel_diagnose::{Diagnose, DiagnoseBuilder, EnvMap};
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A builder with nothing from this machine: no environment, no system
/// resolver, `localhost` answered as 127.0.0.1.
pub fn diagnose(url: &str) -> DiagnoseBuilder {
    Diagnose::builder(url)
        .env(EnvMap::new())
        .system_resolver(false)
        .resolve("localhost", LOCALHOST)
        .timeout(Duration::from_secs(5))
}

/// A port nothing listens on (bound, then released).
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A certificate authority for tests.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

/// A certificate and its key, ready for a server.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2099, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names`, valid from `from` to `to` (year, month, day).
    pub fn leaf(&self, names: &[&str], from: (i32, u8, u8), to: (i32, u8, u8)) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0].clone());
        params.distinguished_name = dn;
        params.not_before = date_time_ymd(from.0, from.1, from.2);
        params.not_after = date_time_ymd(to.0, to.1, to.2);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    /// A leaf for `names`, valid 2024 to 2099.
    pub fn valid_leaf(&self, names: &[&str]) -> Leaf {
        self.leaf(names, (2024, 1, 1), (2099, 1, 1))
    }
}

type Handler = Arc<dyn Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync>;

fn ok_handler() -> Handler {
    Arc::new(|_req: &Request<Incoming>| {
        Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")))
    })
}

async fn serve_http<IO>(io: IO, handler: Handler)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(&req)) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// A TLS server (h2 and http/1.1 by ALPN) answering `200 {"ok":true}`.
pub async fn tls_server(leaf: Leaf) -> SocketAddr {
    tls_server_with(leaf, ok_handler()).await
}

pub async fn tls_server_with(leaf: Leaf, handler: Handler) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain, leaf.key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve_http(tls, handler).await;
                }
            });
        }
    });
    addr
}

/// A plain HTTP server (HTTP/1.1) answering with `handler`.
pub async fn http_server(handler: Handler) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(serve_http(tcp, handler.clone()));
        }
    });
    addr
}

pub async fn ok_http_server() -> SocketAddr {
    http_server(ok_handler()).await
}

/// A TCP server that reads the request head and then runs `respond` on the
/// socket: for answers no well-behaved server library would send.
pub async fn raw_server<F, Fut>(respond: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let respond = respond.clone();
            tokio::spawn(async move {
                let _ = read_head(&mut tcp).await;
                respond(tcp).await;
            });
        }
    });
    addr
}

async fn read_head(tcp: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 || tcp.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

/// What a test DNS responder answers.
#[derive(Clone, Debug)]
pub enum DnsAnswer {
    /// These addresses, with this TTL.
    Addresses(Vec<IpAddr>, u32),
    /// NXDOMAIN.
    NxDomain,
    /// Bytes that are not a DNS message.
    Garbage,
}

/// A UDP DNS responder on 127.0.0.1 answering every question with `answer`.
pub async fn dns_responder(answer: DnsAnswer) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let reply = match &answer {
                DnsAnswer::Garbage => b"\x13\x37garbage, not DNS at all \xff\xfe".to_vec(),
                _ => match Message::from_vec(&buf[..n]) {
                    Ok(query) => build_reply(&query, &answer),
                    Err(_) => continue,
                },
            };
            let _ = socket.send_to(&reply, peer).await;
        }
    });
    addr
}

fn build_reply(query: &Message, answer: &DnsAnswer) -> Vec<u8> {
    let mut reply = Message::response(query.metadata.id, OpCode::Query);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    for q in &query.queries {
        reply.add_query(q.clone());
    }
    match answer {
        DnsAnswer::NxDomain => reply.metadata.response_code = ResponseCode::NXDomain,
        DnsAnswer::Addresses(ips, ttl) => {
            for q in &query.queries {
                for ip in ips {
                    let rdata = match (ip, q.query_type()) {
                        (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
                        (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
                        _ => continue,
                    };
                    reply.add_answer(Record::from_rdata(q.name().clone(), *ttl, rdata));
                }
            }
        }
        DnsAnswer::Garbage => {}
    }
    reply.to_vec().unwrap()
}

/// How the test proxy behaves.
#[derive(Clone, Debug)]
pub enum ProxyMode {
    /// Opens every tunnel.
    Tunnel,
    /// Opens tunnels only with this `Proxy-Authorization` value; 407 else.
    RequireAuth(String),
    /// Answers every CONNECT with this status line and closes.
    Answer(&'static str),
}

/// A CONNECT proxy on 127.0.0.1. Returns its address and the CONNECT
/// targets it was asked for.
pub async fn connect_proxy(mode: ProxyMode) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let mode = mode.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let Some(head) = read_head(&mut client).await else {
                    return;
                };
                let mut lines = head.lines();
                let request_line = lines.next().unwrap_or("");
                let mut parts = request_line.split(' ');
                let (Some("CONNECT"), Some(authority)) = (parts.next(), parts.next()) else {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                        .await;
                    return;
                };
                log.lock().unwrap().push(authority.to_owned());
                let auth = lines
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("proxy-authorization"))
                    .map(|(_, v)| v.trim().to_owned());
                match &mode {
                    ProxyMode::Answer(status) => {
                        let _ = client
                            .write_all(format!("{status}\r\n\r\n").as_bytes())
                            .await;
                        return;
                    }
                    ProxyMode::RequireAuth(expected) if auth.as_deref() != Some(expected) => {
                        let _ = client
                            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\n\r\n")
                            .await;
                        return;
                    }
                    _ => {}
                }
                // Only loopback targets: `localhost` is 127.0.0.1 here.
                let Some((host, port)) = authority.rsplit_once(':') else {
                    return;
                };
                let ip: IpAddr = if host == "localhost" {
                    LOCALHOST
                } else {
                    match host.trim_matches(['[', ']']).parse() {
                        Ok(ip) if IpAddr::is_loopback(&ip) => ip,
                        _ => {
                            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                            return;
                        }
                    }
                };
                let Ok(port) = port.parse::<u16>() else {
                    return;
                };
                match TcpStream::connect((ip, port)).await {
                    Ok(mut upstream) => {
                        let _ = client
                            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                            .await;
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                    Err(_) => {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// Writes `pem` to a fresh file under the temp dir and returns its path.
pub fn temp_pem(pem: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "evenkeel-diagnose-{}-{}.pem",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, pem).unwrap();
    path
}
