//! `HickoryResolver` against DNS servers on loopback, over UDP and TCP.
#![cfg(feature = "hickory")]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evenkeel_failover::dns::{DnsDiscover, HickoryResolver, Resolve, ResolveErrorKind};
use evenkeel_failover::{Endpoint, Failover};
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// What the test server answers.
#[derive(Debug, Clone)]
enum Answer {
    Addresses(Vec<IpAddr>, u32),
    Code(ResponseCode),
    /// Reads the query and says nothing.
    Silent,
}

#[derive(Debug, Clone)]
struct Server {
    answer: Arc<Mutex<Answer>>,
    queries: Arc<AtomicUsize>,
}

impl Server {
    fn new(answer: Answer) -> Self {
        Server {
            answer: Arc::new(Mutex::new(answer)),
            queries: Arc::default(),
        }
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    fn reply(&self, query: &[u8]) -> Option<Vec<u8>> {
        let query = Message::from_vec(query).ok()?;
        self.queries.fetch_add(1, Ordering::SeqCst);
        let answer = self.answer.lock().unwrap().clone();
        let mut reply = Message::response(query.metadata.id, OpCode::Query);
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        for q in &query.queries {
            reply.add_query(q.clone());
        }
        match answer {
            Answer::Silent => return None,
            Answer::Code(code) => reply.metadata.response_code = code,
            Answer::Addresses(ips, ttl) => {
                for q in &query.queries {
                    for ip in &ips {
                        let rdata = match (ip, q.query_type()) {
                            (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
                            (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
                            _ => continue,
                        };
                        reply.add_answer(Record::from_rdata(q.name().clone(), ttl, rdata));
                    }
                }
            }
        }
        reply.to_vec().ok()
    }

    async fn udp(&self) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let server = self.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                if let Some(reply) = server.reply(&buf[..n]) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        addr
    }

    async fn tcp(&self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = self.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 2];
                        if tcp.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if tcp.read_exact(&mut query).await.is_err() {
                            return;
                        }
                        let Some(reply) = server.reply(&query) else {
                            continue;
                        };
                        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&reply);
                        if tcp.write_all(&framed).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::from([a, b, c, d])
}

fn resolver(
    build: impl FnOnce(
        evenkeel_failover::dns::HickoryResolverBuilder,
    ) -> evenkeel_failover::dns::HickoryResolverBuilder,
) -> HickoryResolver {
    build(
        HickoryResolver::builder()
            .timeout(Duration::from_secs(2))
            .attempts(1),
    )
    .build()
    .unwrap()
}

#[tokio::test]
async fn udp_answers_carry_their_addresses_and_ttl() {
    let server = Server::new(Answer::Addresses(
        vec![v4(10, 1, 1, 1), v4(10, 1, 1, 2)],
        42,
    ));
    let at = server.udp().await;
    let resolver = resolver(|b| b.udp(at));
    assert_eq!(resolver.servers(), [format!("udp://{at}")]);
    let answer = resolver.resolve("api.example.com").await.unwrap();
    assert_eq!(answer.addresses(), [v4(10, 1, 1, 1), v4(10, 1, 1, 2)]);
    assert_eq!(answer.ttl(), Some(Duration::from_secs(42)));

    // No cache: the next lookup asks the server again, and sees the change.
    let before = server.queries();
    server.set(Answer::Addresses(vec![v4(10, 1, 1, 3)], 7));
    let answer = resolver.resolve("api.example.com.").await.unwrap();
    assert!(server.queries() > before);
    assert_eq!(answer.addresses(), [v4(10, 1, 1, 3)]);
    assert_eq!(answer.ttl(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn tcp_answers_too() {
    let server = Server::new(Answer::Addresses(vec![v4(10, 2, 2, 2)], 300));
    let at = server.tcp().await;
    let answer = resolver(|b| b.tcp(at))
        .resolve("api.example.com")
        .await
        .unwrap();
    assert_eq!(answer.addresses(), [v4(10, 2, 2, 2)]);
}

#[tokio::test]
async fn failures_are_told_apart() {
    let server = Server::new(Answer::Code(ResponseCode::NXDomain));
    let at = server.udp().await;
    let resolver = resolver(|b| b.udp(at));
    let error = resolver.resolve("gone.example.com").await.unwrap_err();
    assert_eq!(error.kind(), ResolveErrorKind::NxDomain, "{error}");
    assert_eq!(error.host(), "gone.example.com");

    server.set(Answer::Code(ResponseCode::ServFail));
    let error = resolver.resolve("api.example.com").await.unwrap_err();
    assert_eq!(error.kind(), ResolveErrorKind::ServFail, "{error}");

    server.set(Answer::Addresses(Vec::new(), 60));
    let error = resolver.resolve("api.example.com").await.unwrap_err();
    assert_eq!(error.kind(), ResolveErrorKind::NoRecords, "{error}");

    server.set(Answer::Silent);
    let error = resolver.resolve("api.example.com").await.unwrap_err();
    assert_eq!(error.kind(), ResolveErrorKind::Timeout, "{error}");
}

#[tokio::test]
async fn discovery_over_hickory_makes_one_endpoint_per_address() {
    let server = Server::new(Answer::Addresses(
        vec![v4(10, 3, 3, 1), v4(10, 3, 3, 2)],
        60,
    ));
    let at = server.udp().await;
    let lb: Failover<
        tower::util::BoxCloneSyncService<
            http::Request<evenkeel_core::body::ReplayBody<String>>,
            http::Response<()>,
            evenkeel_core::BoxError,
        >,
    > = Failover::builder().build().unwrap();
    let discover = DnsDiscover::builder("api.example.com", 8443)
        .resolver(resolver(|b| b.udp(at)))
        .build(|addr| {
            let service = tower::util::BoxCloneSyncService::new(tower::service_fn(
                |_: http::Request<evenkeel_core::body::ReplayBody<String>>| async {
                    Ok::<_, evenkeel_core::BoxError>(http::Response::new(()))
                },
            ));
            Endpoint::new(format!("api@{addr}"), service)
        })
        .unwrap();
    tokio::spawn(lb.handle().discover(discover));
    let mut names = Vec::new();
    for _ in 0..1000 {
        names = lb
            .handle()
            .endpoints()
            .into_iter()
            .map(|e| e.name)
            .collect();
        if names.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    names.sort();
    assert_eq!(names, ["api@10.3.3.1:8443", "api@10.3.3.2:8443"]);
}

#[test]
fn the_builder_needs_a_server() {
    let err = HickoryResolver::builder().build().unwrap_err();
    assert_eq!(err.field(), "servers");
    let err = HickoryResolver::builder()
        .udp("127.0.0.1:53".parse().unwrap())
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "timeout");
}
