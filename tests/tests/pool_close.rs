//! Pooled connections the server has just closed: a hyper server on
//! loopback that closes each idle keep-alive connection 0–10 ms after
//! answering, and POSTs through the preset that must neither be lost to a
//! dead connection nor be served twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use evenkeel::{HttpClient, HyperConnector, Preset};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;

/// What the server says about keeping a connection alive.
#[derive(Debug, Clone, Copy)]
enum Advertise {
    /// Nothing: the close comes unannounced.
    Nothing,
    /// `Keep-Alive: timeout=N` on every answer.
    KeepAliveTimeout(u64),
    /// `Connection: close` on every answer.
    ConnectionClose,
    /// Nothing, and idle connections are kept open.
    KeepsIdle,
}

/// The server's count of each `x-request-id` it served.
#[derive(Default)]
struct Served {
    by_id: Mutex<HashMap<String, u32>>,
    connections: AtomicU64,
}

/// A tiny seeded generator (SplitMix64), so every run closes at the same
/// offsets.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A delay in 0..=`max`, in microseconds.
    fn delay(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.next() % (max.as_micros() as u64 + 1))
    }
}

/// Starts the server on a free loopback port; returns its base URL.
async fn closing_server(seed: u64, advertise: Advertise, served: Arc<Served>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut seeds = SplitMix(seed);
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            served.connections.fetch_add(1, Ordering::Relaxed);
            let rng = SplitMix(seeds.next());
            tokio::spawn(connection(tcp, rng, advertise, served.clone()));
        }
    });
    format!("http://{addr}")
}

/// One connection: serves requests, and after each answer closes the
/// connection 0–10 ms later if no other request has begun meanwhile.
async fn connection(
    tcp: tokio::net::TcpStream,
    mut rng: SplitMix,
    advertise: Advertise,
    served: Arc<Served>,
) {
    let started = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(Notify::new());
    let service = {
        let (started, answered) = (started.clone(), answered.clone());
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let (started, answered, served) = (started.clone(), answered.clone(), served.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                // The whole body is read before the answer, as an API does.
                let _ = req.into_body().collect().await;
                *served.by_id.lock().unwrap().entry(id).or_default() += 1;
                let mut response = Response::builder().status(StatusCode::OK);
                match advertise {
                    Advertise::Nothing | Advertise::KeepsIdle => {}
                    Advertise::KeepAliveTimeout(n) => {
                        response = response.header("keep-alive", format!("timeout={n}"));
                    }
                    Advertise::ConnectionClose => {
                        response = response.header("connection", "close");
                    }
                }
                let response = response
                    .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
                    .unwrap();
                answered.notify_one();
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(conn);
    if matches!(advertise, Advertise::KeepsIdle) {
        let _ = conn.await;
        return;
    }
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = answered.notified() => {}
        }
        let seen = started.load(Ordering::SeqCst);
        let close_at = tokio::time::Instant::now() + rng.delay(Duration::from_millis(10));
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep_until(close_at) => {}
        }
        if started.load(Ordering::SeqCst) == seen {
            // Idle since the answer: close it, as a short keep-alive
            // timeout does. A request already on its way is lost with it.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.as_mut()).await;
            return;
        }
    }
}

fn post(id: usize) -> Request<Full<Bytes>> {
    Request::post("/v1/messages")
        .header("content-type", "application/json")
        .header("x-request-id", format!("req-{id}"))
        .body(Full::new(Bytes::from_static(br#"{"max_tokens":16}"#)))
        .unwrap()
}

/// Sends `n` POSTs, `callers` at a time; returns how many failed.
async fn drive(client: Preset<HttpClient>, n: usize, callers: usize) -> usize {
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let (client, next, failed) = (client.clone(), next.clone(), failed.clone());
        tasks.spawn(async move {
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed) as usize;
                if id >= n {
                    return;
                }
                let ok = match client.clone().oneshot(post(id)).await {
                    Ok(res) if res.status().is_success() => res.into_body().collect().await.is_ok(),
                    Ok(res) => {
                        eprintln!("req-{id}: {}", res.status());
                        false
                    }
                    Err(err) => {
                        eprintln!(
                            "req-{id}: {err:?} ({:?})",
                            evenkeel_core::classify_error(&*err)
                        );
                        false
                    }
                };
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    failed.load(Ordering::Relaxed) as usize
}

/// Runs 150 POSTs at concurrency 8 against a server that closes idle
/// connections 0–10 ms after answering; returns how many failed and what
/// the server served.
async fn run(advertise: Advertise) -> (usize, Arc<Served>) {
    let served = Arc::new(Served::default());
    let url = closing_server(42, advertise, served.clone()).await;
    let client = Preset::builder()
        .endpoint(url)
        .seed(7)
        .build_http()
        .unwrap();
    let failed = drive(client, 150, 8).await;
    let by_id = served.by_id.lock().unwrap();
    eprintln!(
        "{advertise:?}: {failed} of 150 lost; {} served, {} connections",
        by_id.len(),
        served.connections.load(Ordering::Relaxed)
    );
    drop(by_id);
    (failed, served)
}

/// No request reached the server twice.
fn assert_none_twice(served: &Served) {
    let by_id = served.by_id.lock().unwrap();
    let twice: Vec<_> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "served twice: {twice:?}");
}

/// A server that says it keeps idle connections for under a second
/// (`Keep-Alive: timeout=0`, as Node.js writes a sub-second
/// `keepAliveTimeout`) gets no request on a connection after an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_second_keep_alive_timeout_is_honoured() {
    let (failed, served) = run(Advertise::KeepAliveTimeout(0)).await;
    assert_none_twice(&served);
    // At most 1 % of 150 lost.
    assert!(failed <= 1, "{failed} of 150 POSTs lost");
    assert_eq!(served.by_id.lock().unwrap().len(), 150);
}

/// `timeout=1` is within the margin (1 s): the connection is not reused
/// either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_timeout_within_the_margin_is_honoured() {
    let (failed, served) = run(Advertise::KeepAliveTimeout(1)).await;
    assert_none_twice(&served);
    assert!(failed <= 1, "{failed} of 150 POSTs lost");
}

/// `Connection: close` on an answer retires its connection (hyper does
/// this itself; the preset must not get in its way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_is_honoured() {
    let (failed, served) = run(Advertise::ConnectionClose).await;
    assert_none_twice(&served);
    assert!(failed <= 1, "{failed} of 150 POSTs lost");
}

/// Unannounced, a POST written into a connection as the server closes it
/// is lost: nothing proves it unprocessed, so it is not resent, and no
/// POST is served twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unannounced_close_loses_posts_but_never_doubles_one() {
    let (_failed, served) = run(Advertise::Nothing).await;
    assert_none_twice(&served);
}

/// A pooled connection idle for longer than the pool idle timeout is not
/// reused; one idle for less is.
#[tokio::test]
async fn the_pool_idle_timeout_retires_idle_connections() {
    async fn three_posts(connector: HyperConnector, pause: Duration) -> u64 {
        let served = Arc::new(Served::default());
        let url = closing_server(1, Advertise::KeepsIdle, served.clone()).await;
        let client = Preset::builder().endpoint(url).build(connector).unwrap();
        for id in 0..3 {
            let response = client.clone().oneshot(post(id)).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.into_body().collect().await.unwrap();
            if id == 0 {
                // Longer than the short timeout below, far shorter than the
                // default: the assertions hold however slow the machine is.
                tokio::time::sleep(pause).await;
            }
        }
        served.connections.load(Ordering::Relaxed)
    }
    let short = HyperConnector::http()
        .pool_idle_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    assert_eq!(three_posts(short, Duration::from_millis(300)).await, 2);
    assert_eq!(
        three_posts(HyperConnector::http(), Duration::from_millis(300)).await,
        1
    );
}
