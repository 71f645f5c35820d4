//! reqwest as evenkeel's front door, over loopback against `evenkeel-sim`:
//! the preset on a `reqwest::Client` ([`ReqwestConnector`]) and the preset
//! as a `reqwest-middleware` middleware ([`EvenkeelMiddleware`]), each
//! through a 429 storm, a server's `Retry-After`, an outage with a backup,
//! and failures that may have been processed.
//!
//! Real sockets run on the real clock: nothing here asserts an upper bound
//! on time. Waits are asserted from below (a request that was told to wait
//! cannot finish sooner) and everything else by counts, on the client's
//! side and at the sims.

#[path = "support/tls.rs"]
mod certs_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use evenkeel::core::error::{ConnectError, QuotaExhausted, SentError};
use evenkeel::core::event::Event;
use evenkeel::core::{BoxError, FailureKind, Outcome, Sent, classify_error};
use evenkeel::{
    Connector, EvenkeelMiddleware, NextService, Preset, PresetBuilder, ReqwestConnector,
    ReqwestService, connector_fn,
};
use evenkeel_sim::{Dialect, Faults, Sim, SimBuilder, SimServer};
use http::{Extensions, Method, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

type Counter = Arc<AtomicU64>;

async fn serve(builder: SimBuilder) -> SimServer {
    builder
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn reqwest_client() -> reqwest::Client {
    evenkeel::reqwest_client_builder().build().unwrap()
}

/// A service that counts the attempts it passes on: what the client put
/// on the wire, to compare with what the sims saw.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    attempts: Counter,
}

impl<S: Service<R>, R> Service<R> for Counted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        self.inner.call(request)
    }
}

/// What a caller put in a request's extensions.
#[derive(Debug, Clone)]
struct Marker;

/// What the chain below the preset left in the extensions.
#[derive(Debug, Clone, PartialEq)]
struct Answered(u64);

/// A middleware below evenkeel's: counts attempts, notes whether the
/// caller's extensions reached it, and leaves its own.
struct CountAttempts {
    attempts: Counter,
    saw_marker: Counter,
}

#[async_trait::async_trait]
impl Middleware for CountAttempts {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if extensions.get::<Marker>().is_some() {
            self.saw_marker.fetch_add(1, Ordering::SeqCst);
        }
        extensions.insert(Answered(n));
        next.run(request, extensions).await
    }
}

#[derive(Debug, Clone, Copy)]
enum Door {
    Connector,
    Middleware,
}

enum Client {
    Connector(Preset<Counted<ReqwestService>>),
    Middleware {
        client: ClientWithMiddleware,
        preset: Preset<NextService>,
    },
}

/// The preset through one door, with its attempts counted below it.
struct Front {
    client: Client,
    attempts: Counter,
}

impl Front {
    fn new(door: Door, builder: PresetBuilder, reqwest: reqwest::Client) -> Arc<Front> {
        let attempts = Counter::default();
        let saw_marker = Counter::default();
        let client = match door {
            Door::Connector => {
                let connector = ReqwestConnector::new(reqwest);
                let counter = Arc::clone(&attempts);
                Client::Connector(
                    builder
                        .build(connector_fn(move |uri: &http::Uri| {
                            Ok(Counted {
                                inner: connector.connect(uri)?,
                                attempts: Arc::clone(&counter),
                            })
                        }))
                        .unwrap(),
                )
            }
            Door::Middleware => {
                let middleware = EvenkeelMiddleware::new(builder).unwrap();
                let preset = middleware.preset().clone();
                let client = ClientBuilder::new(reqwest)
                    .with(middleware)
                    .with(CountAttempts {
                        attempts: Arc::clone(&attempts),
                        saw_marker: Arc::clone(&saw_marker),
                    })
                    .build();
                Client::Middleware { client, preset }
            }
        };
        Arc::new(Front { client, attempts })
    }

    /// Sends one request to `/v1/messages` and reads its answer whole.
    async fn send(&self, method: Method, id: &str) -> Result<StatusCode, Failed> {
        let body = Bytes::from_static(br#"{"max_tokens":16}"#);
        match &self.client {
            Client::Connector(preset) => {
                let request = http::Request::builder()
                    .method(method)
                    .uri("/v1/messages")
                    .header("x-request-id", id)
                    .header("content-type", "application/json")
                    .body(Full::new(body))
                    .unwrap();
                let response = preset
                    .clone()
                    .oneshot(request)
                    .await
                    .map_err(Failed::Preset)?;
                let status = response.status();
                response
                    .into_body()
                    .collect()
                    .await
                    .map_err(Failed::Preset)?;
                Ok(status)
            }
            Client::Middleware { client, .. } => {
                let response = client
                    .request(method, "http://evenkeel.invalid/v1/messages")
                    .header("x-request-id", id)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(Failed::Middleware)?;
                let status = response.status();
                response
                    .bytes()
                    .await
                    .map_err(|e| Failed::Middleware(e.into()))?;
                Ok(status)
            }
        }
    }

    fn failovers(&self) -> u64 {
        match &self.client {
            Client::Connector(preset) => preset.failover().failovers(),
            Client::Middleware { preset, .. } => preset.failover().failovers(),
        }
    }

    fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
enum Failed {
    Preset(BoxError),
    Middleware(reqwest_middleware::Error),
}

impl Failed {
    /// Whether the failure was a timeout, by type: the preset's error as
    /// the classifier reads it, the middleware's as reqwest's own.
    fn is_timeout(&self) -> bool {
        match self {
            Failed::Preset(err) => match classify_error(&**err) {
                Outcome::Failed(f) => f.kind == FailureKind::Timeout && f.sent == Sent::Maybe,
                _ => false,
            },
            Failed::Middleware(reqwest_middleware::Error::Reqwest(err)) => err.is_timeout(),
            Failed::Middleware(_) => false,
        }
    }

    /// Whether the failure came back as reqwest's (the middleware) or as a
    /// maybe-processed failure (the connector).
    fn is_maybe_processed(&self) -> bool {
        match self {
            Failed::Preset(err) => {
                err.is::<SentError>()
                    && matches!(classify_error(&**err), Outcome::Failed(f) if f.sent == Sent::Maybe)
            }
            Failed::Middleware(reqwest_middleware::Error::Reqwest(err)) => !err.is_connect(),
            Failed::Middleware(_) => false,
        }
    }
}

/// Every retry's wait, recorded from the preset's events.
fn retry_waits(builder: PresetBuilder) -> (PresetBuilder, Arc<Mutex<Vec<Duration>>>) {
    let waits = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&waits);
    let builder = builder.on_event(move |event: &Event<'_>| {
        if let Event::Retry { wait, .. } = event {
            record.lock().unwrap().push(*wait);
        }
    });
    (builder, waits)
}

// --- a 429 storm --------------------------------------------------------

/// A sim with a request quota (20 a second, 5 at once), 30 requests from
/// 6 callers: every request succeeds, each is served once, and the
/// attempts the client made are the attempts the sim saw.
async fn quota_storm(door: Door) {
    let sim = serve(
        Sim::builder()
            .requests(20.0, 5)
            .dialect(Dialect::Anthropic)
            .latency(Duration::from_millis(5))
            .seed(1),
    )
    .await;
    let front = Front::new(
        door,
        Preset::builder()
            .endpoint(sim.url())
            .max_attempts(10)
            .seed(7),
        reqwest_client(),
    );
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..6 {
        let front = Arc::clone(&front);
        callers.spawn(async move {
            for i in 0..5 {
                let id = format!("c{caller}-{i}");
                let status = front.send(Method::POST, &id).await;
                assert_eq!(status.unwrap(), StatusCode::OK, "{id}");
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done.unwrap();
    }
    let stats = sim.stats();
    assert_eq!(stats.successes(), 30);
    for caller in 0..6 {
        for i in 0..5 {
            assert_eq!(stats.successes_for(&format!("c{caller}-{i}")), 1);
        }
    }
    assert!(stats.duplicates().is_empty(), "{:?}", stats.duplicates());
    assert_eq!(
        front.attempts(),
        stats.attempts(),
        "the client's attempts are the sim's"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_a_quota_storm_ends_with_every_request_served_once() {
    quota_storm(Door::Connector).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_a_quota_storm_ends_with_every_request_served_once() {
    quota_storm(Door::Middleware).await;
}

/// Every first attempt meets a 429 with `retry-after-ms: 600`: every
/// request is sent exactly twice, each retry waits at least what the
/// server asked (`max(backoff, server wait)`), and no request finishes
/// sooner.
async fn retry_after_is_obeyed(door: Door) {
    const WAIT: Duration = Duration::from_millis(600);
    let sim = serve(
        Sim::builder()
            .first_attempt(429, [("retry-after-ms", "600")])
            .unwrap(),
    )
    .await;
    let (builder, waits) = retry_waits(Preset::builder().endpoint(sim.url()).seed(3));
    let front = Front::new(door, builder, reqwest_client());
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..4 {
        let front = Arc::clone(&front);
        callers.spawn(async move {
            let id = format!("r{caller}");
            let started = Instant::now();
            let status = front.send(Method::POST, &id).await;
            assert_eq!(status.unwrap(), StatusCode::OK, "{id}");
            assert!(
                started.elapsed() >= WAIT,
                "{id} finished before the server's wait"
            );
        });
    }
    while let Some(done) = callers.join_next().await {
        done.unwrap();
    }
    let stats = sim.stats();
    for caller in 0..4 {
        assert_eq!(stats.attempts_for(&format!("r{caller}")), 2);
    }
    assert_eq!(stats.status_count(StatusCode::TOO_MANY_REQUESTS), 4);
    assert_eq!(front.attempts(), stats.attempts());
    assert_eq!(stats.attempts(), 8);
    let waits = waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 4, "one retry per request: {waits:?}");
    for &wait in waits.iter() {
        assert!(wait >= WAIT, "a retry waited {wait:?}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_retries_wait_out_the_servers_retry_after() {
    retry_after_is_obeyed(Door::Connector).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_retries_wait_out_the_servers_retry_after() {
    retry_after_is_obeyed(Door::Middleware).await;
}

// --- an outage with a backup --------------------------------------------

fn primary_and_backup(primary: &SimServer, backup: &SimServer) -> PresetBuilder {
    Preset::builder()
        .named_endpoint("primary", primary.url())
        .named_endpoint("backup", backup.url())
        .seed(5)
}

/// The primary's port is closed: every POST moves to the backup (a
/// refused connection was never sent), each is served once, and every
/// attempt the client made is either a move or one the backup saw.
async fn outage_moves_to_the_backup(door: Door) {
    let primary = serve(Sim::builder()).await;
    primary.handle().kill().await;
    let backup = serve(Sim::builder()).await;
    let front = Front::new(
        door,
        primary_and_backup(&primary, &backup),
        reqwest_client(),
    );
    for i in 0..10 {
        let id = format!("p{i}");
        assert_eq!(front.send(Method::POST, &id).await.unwrap(), StatusCode::OK);
    }
    let (ps, bs) = (primary.stats(), backup.stats());
    assert_eq!(ps.attempts(), 0);
    assert_eq!(bs.successes(), 10);
    for i in 0..10 {
        assert_eq!(bs.successes_for(&format!("p{i}")), 1);
    }
    assert!(front.failovers() >= 1, "the first POST moved");
    assert_eq!(
        front.attempts(),
        bs.attempts() + front.failovers(),
        "each attempt on the primary failed to connect and moved"
    );
    backup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_an_outage_moves_posts_to_the_backup() {
    outage_moves_to_the_backup(Door::Connector).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_an_outage_moves_posts_to_the_backup() {
    outage_moves_to_the_backup(Door::Middleware).await;
}

/// The primary resets every connection after reading the request: a POST
/// may have been processed there, so it is not sent again (not to the
/// backup, not to the primary); a GET moves to the backup.
async fn a_reset_post_is_not_sent_twice(door: Door) {
    let primary = serve(Sim::builder().faults(Faults::none().reset(1.0))).await;
    let backup = serve(Sim::builder()).await;
    let front = Front::new(
        door,
        primary_and_backup(&primary, &backup),
        reqwest_client(),
    );

    let failed = front.send(Method::POST, "post-1").await.unwrap_err();
    assert!(failed.is_maybe_processed(), "{failed:?}");
    assert_eq!(primary.stats().attempts_for("post-1"), 1);
    assert_eq!(backup.stats().attempts_for("post-1"), 0);

    assert_eq!(
        front.send(Method::GET, "get-1").await.unwrap(),
        StatusCode::OK
    );
    assert_eq!(backup.stats().successes_for("get-1"), 1);
    assert_eq!(
        front.attempts(),
        primary.stats().attempts() + backup.stats().attempts()
    );
    primary.shutdown().await;
    backup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_a_reset_post_is_not_sent_twice() {
    a_reset_post_is_not_sent_twice(Door::Connector).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_a_reset_post_is_not_sent_twice() {
    a_reset_post_is_not_sent_twice(Door::Middleware).await;
}

/// reqwest's own timeout fires while the primary is still answering: the
/// POST may have been processed, so it does not move to the backup.
async fn a_timed_out_post_is_not_sent_twice(door: Door) {
    let primary = serve(Sim::builder().latency(Duration::from_secs(5))).await;
    let backup = serve(Sim::builder()).await;
    let reqwest = evenkeel::reqwest_client_builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let front = Front::new(door, primary_and_backup(&primary, &backup), reqwest);

    let failed = front.send(Method::POST, "slow-1").await.unwrap_err();
    assert!(failed.is_timeout(), "{failed:?}");
    assert_eq!(primary.stats().attempts_for("slow-1"), 1);
    assert_eq!(backup.stats().attempts_for("slow-1"), 0);
    assert_eq!(front.attempts(), 1);
    backup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_a_timed_out_post_is_not_sent_twice() {
    a_timed_out_post_is_not_sent_twice(Door::Connector).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_a_timed_out_post_is_not_sent_twice() {
    a_timed_out_post_is_not_sent_twice(Door::Middleware).await;
}

// --- phases, by type -----------------------------------------------------

/// A port nobody listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error_never_sent() {
    let port = closed_port().await;
    let mut service = ReqwestConnector::new(reqwest_client())
        .connect(&"http://127.0.0.1".parse().unwrap())
        .unwrap();
    let request = http::Request::post(format!("http://127.0.0.1:{port}/v1/messages"))
        .body(
            evenkeel::core::body::Replay::new(Full::new(Bytes::from_static(b"{}")), 1024)
                .body()
                .unwrap(),
        )
        .unwrap();
    let err = service
        .ready()
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap_err();
    assert!(err.is::<ConnectError>(), "{err:?}");
    match classify_error(&*err) {
        Outcome::Failed(f) => {
            assert_eq!(f.sent, Sent::Never, "{err:?}");
            assert_eq!(f.kind, FailureKind::ConnectionRefused, "{err:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_stream_back_with_their_url() {
    let sim = serve(Sim::builder()).await;
    let connector = ReqwestConnector::new(reqwest_client());
    let preset = Preset::builder()
        .endpoint(sim.url())
        .build(connector)
        .unwrap();
    let request = http::Request::post("/v1/messages")
        .header("x-request-id", "url-1")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let response = preset.oneshot(request).await.unwrap();
    let response = reqwest::Response::from(response.map(reqwest::Body::wrap));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.url().as_str(),
        format!("{}/v1/messages", sim.url())
    );
    assert!(!response.bytes().await.unwrap().is_empty());
    sim.shutdown().await;
}

// --- the middleware's own concerns --------------------------------------

fn middleware_over(sim: &SimServer, attempts: &Counter, saw: &Counter) -> ClientWithMiddleware {
    let middleware =
        EvenkeelMiddleware::new(Preset::builder().endpoint(sim.url()).seed(9)).unwrap();
    ClientBuilder::new(reqwest_client())
        .with(middleware)
        .with(CountAttempts {
            attempts: Arc::clone(attempts),
            saw_marker: Arc::clone(saw),
        })
        .build()
}

/// A streaming body of `len` bytes in 16 KiB chunks.
fn streaming(len: usize) -> reqwest::Body {
    let chunks = (0..len.div_ceil(16 * 1024)).map(move |i| {
        let size = (len - i * 16 * 1024).min(16 * 1024);
        Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from(vec![b'x'; size])))
    });
    reqwest::Body::wrap(StreamBody::new(futures_util::stream::iter(chunks)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_body_is_replayed_within_the_cap_and_sent_once_past_it() {
    let sim = serve(
        Sim::builder()
            .first_attempt(429, [("retry-after-ms", "50")])
            .unwrap(),
    )
    .await;
    let (attempts, saw) = (Counter::default(), Counter::default());
    let client = middleware_over(&sim, &attempts, &saw);

    // Small: kept as it is sent, replayed after the 429.
    let response = client
        .post("http://evenkeel.invalid/v1/messages")
        .header("x-request-id", "small")
        .body(streaming(40 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sim.stats().attempts_for("small"), 2);

    // Past the 1 MiB cap: sent once, and the 429 comes back.
    let response = client
        .post("http://evenkeel.invalid/v1/messages")
        .header("x-request-id", "large")
        .body(streaming(1536 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sim.stats().attempts_for("large"), 1);
    assert_eq!(attempts.load(Ordering::SeqCst), sim.stats().attempts());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extensions_reach_every_attempt_and_come_back_from_the_last() {
    let sim = serve(
        Sim::builder()
            .first_attempt(429, [("retry-after-ms", "20")])
            .unwrap(),
    )
    .await;
    let (attempts, saw) = (Counter::default(), Counter::default());
    let client = middleware_over(&sim, &attempts, &saw);
    let request = client
        .post("http://evenkeel.invalid/v1/messages")
        .header("x-request-id", "ext")
        .body("{}")
        .build()
        .unwrap();
    let mut extensions = Extensions::new();
    extensions.insert(Marker);
    let response = client
        .execute_with_extensions(request, &mut extensions)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(
        saw.load(Ordering::SeqCst),
        2,
        "both attempts saw the caller's extension"
    );
    assert_eq!(extensions.get::<Answered>(), Some(&Answered(2)));
    assert!(extensions.get::<Marker>().is_some());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_refusal_comes_back_as_evenkeels_error_unsent() {
    let sim = serve(Sim::builder()).await;
    // One request a minute, and no wait for the next.
    let middleware = EvenkeelMiddleware::new(
        Preset::builder()
            .endpoint(sim.url())
            .rate_limit(1, Duration::from_secs(60))
            .max_quota_wait(Duration::from_millis(10)),
    )
    .unwrap();
    let client = ClientBuilder::new(reqwest_client())
        .with(middleware)
        .build();
    let send = |id: &'static str| {
        client
            .post("http://evenkeel.invalid/v1/messages")
            .header("x-request-id", id)
            .body("{}")
            .send()
    };
    assert_eq!(send("q1").await.unwrap().status(), StatusCode::OK);
    let err = send("q2").await.unwrap_err();
    assert!(err.is_middleware(), "{err:?}");
    assert!(
        EvenkeelMiddleware::error::<QuotaExhausted>(&err).is_some(),
        "{err:?}"
    );
    assert_eq!(sim.stats().attempts_for("q2"), 0, "never sent");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_comes_back_as_reqwests_error() {
    let port = closed_port().await;
    let middleware = EvenkeelMiddleware::new(
        Preset::builder()
            .endpoint(format!("http://127.0.0.1:{port}"))
            .seed(1),
    )
    .unwrap();
    let (attempts, saw) = (Counter::default(), Counter::default());
    let client = ClientBuilder::new(reqwest_client())
        .with(middleware)
        .with(CountAttempts {
            attempts: Arc::clone(&attempts),
            saw_marker: saw,
        })
        .build();
    let err = client
        .post("http://evenkeel.invalid/v1/messages")
        .body("{}")
        .send()
        .await
        .unwrap_err();
    match err {
        reqwest_middleware::Error::Reqwest(err) => assert!(err.is_connect(), "{err:?}"),
        other => panic!("{other:?}"),
    }
    // Never sent: the POST was tried again, up to the preset's attempts.
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        u64::from(evenkeel::DEFAULT_MAX_ATTEMPTS)
    );
}

// --- TLS, with the ring provider ----------------------------------------

mod tls {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use evenkeel::core::{FailureKind, Outcome, Sent, classify_error};
    use evenkeel::{Connector, ReqwestConnector};
    use http_body_util::Full;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;
    use tower::{Service, ServiceExt};

    use super::certs_support::{Certs, certs, read_head};

    /// A TLS server answering `200 ok` to each request it reads; counts
    /// them.
    async fn answering(certs: &Certs) -> (u16, Arc<AtomicU64>) {
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
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (port, seen)
    }

    fn get(port: u16) -> http::Request<evenkeel::ConnectorBody> {
        let body = evenkeel::core::body::Replay::new(Full::default(), 0)
            .body()
            .unwrap();
        http::Request::get(format!("https://127.0.0.1:{port}/"))
            .body(body)
            .unwrap()
    }

    #[tokio::test]
    async fn the_builder_speaks_tls_with_the_roots_it_is_given() {
        let certs = certs(&["127.0.0.1"]);
        let (port, seen) = answering(&certs).await;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certs.ca.clone()).unwrap();
        let client = evenkeel::reqwest_client_builder_with_roots(roots)
            .build()
            .unwrap();
        let mut service = ReqwestConnector::new(client)
            .connect(&"https://127.0.0.1".parse().unwrap())
            .unwrap();
        let response = service
            .ready()
            .await
            .unwrap()
            .call(get(port))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_a_certificate_failure_never_sent() {
        let certs = certs(&["127.0.0.1"]);
        let (port, seen) = answering(&certs).await;
        // The web PKI roots do not trust a test CA.
        let client = evenkeel::reqwest_client_builder().build().unwrap();
        let mut service = ReqwestConnector::new(client)
            .connect(&"https://127.0.0.1".parse().unwrap())
            .unwrap();
        let err = service
            .ready()
            .await
            .unwrap()
            .call(get(port))
            .await
            .unwrap_err();
        match classify_error(&*err) {
            Outcome::Failed(f) => {
                assert_eq!(f.kind, FailureKind::Certificate, "{err:?}");
                assert_eq!(f.sent, Sent::Never);
            }
            other => panic!("{other:?} from {err:?}"),
        }
        assert_eq!(seen.load(Ordering::SeqCst), 0);
    }
}
