//! The failover balancer over loopback: two `evenkeel-sim` HTTP servers, a
//! primary and a backup, behind a hyper-util client.
//!
//! Real sockets run on the real clock, so nothing here asserts a tight
//! wall-clock bound: waits are for events (a server's counters, the
//! balancer's handle), and the one time bound (failback) is generous
//! against an ejection twenty times longer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::BoxError;
use evenkeel_core::body::ReplayBody;
use evenkeel_core::event::Event;
use evenkeel_failover::{
    BaseUrl, BaseUrlLayer, Endpoint, EndpointState, Failover, HealthCheck, HttpProbe, Probe,
};
use evenkeel_sim::{Faults, Sim, SimServer};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::{Instant, sleep};
use tower::{Layer, ServiceExt};

type HttpClient = Client<HttpConnector, ReplayBody<Full<Bytes>>>;
type Balancer = Failover<BaseUrl<HttpClient>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn sim(latency: Duration, faults: Faults) -> SimServer {
    Sim::builder()
        .latency(latency)
        .faults(faults)
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn endpoint(
    name: &'static str,
    server: &SimServer,
    client: &HttpClient,
) -> Endpoint<BaseUrl<HttpClient>> {
    let base = BaseUrlLayer::new(&server.url()).unwrap();
    Endpoint::new(name, base.layer(client.clone()))
}

fn request(method: http::Method, id: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("/v1/messages")
        .header("x-request-id", id)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

/// Sends one request and reads its body; returns the status.
async fn send(lb: &Balancer, request: Request<Full<Bytes>>) -> Result<StatusCode, BoxError> {
    let response = lb.clone().oneshot(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

/// Which server answered `id` with a success.
fn served_by(id: &str, primary: &SimServer, backup: &SimServer) -> &'static str {
    match (
        primary.stats().successes_for(id),
        backup.stats().successes_for(id),
    ) {
        (1, 0) => "primary",
        (0, 1) => "backup",
        other => panic!("{id} served {other:?} times"),
    }
}

/// Waits, for at most 30 s, until `condition` holds.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_primary_that_is_down_from_the_start_is_tried_once_per_ejection() {
    let primary = sim(Duration::ZERO, Faults::none()).await;
    primary.handle().kill().await; // its port is closed
    let backup = sim(Duration::ZERO, Faults::none()).await;
    let client = client();
    let lb = Failover::builder()
        .endpoint(endpoint("primary", &primary, &client))
        .endpoint(endpoint("backup", &backup, &client).tier(1))
        .ejection(Duration::from_millis(300), Duration::from_secs(10))
        .ejection_jitter(0.0)
        .build()
        .unwrap();
    let handle = lb.handle();

    // The first request meets the refused connection and moves to the
    // backup at once; the primary is ejected.
    assert_eq!(
        send(&lb, request(http::Method::POST, "r0")).await.unwrap(),
        200
    );
    assert_eq!(handle.failovers(), 1);
    let ejected = handle.endpoint("primary").unwrap();
    assert_eq!(ejected.state, EndpointState::Ejected);
    let until = ejected.ejected_until.unwrap();

    // Until the ejection ends, no request goes near the primary; the first
    // one after tries it once more (and is moved again).
    let mut sent = 1;
    loop {
        let started = Instant::now();
        let before = handle.failovers();
        let id = format!("r{sent}");
        assert_eq!(
            send(&lb, request(http::Method::POST, &id)).await.unwrap(),
            200
        );
        sent += 1;
        let tried_primary = handle.failovers() > before;
        if Instant::now() < until {
            assert!(!tried_primary, "{id} went to the ejected primary");
        }
        if started >= until {
            assert!(tried_primary, "{id} skipped the primary after its ejection");
        }
        if tried_primary {
            break;
        }
        sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(handle.failovers(), 2);
    let again = handle.endpoint("primary").unwrap();
    assert_eq!(again.times_ejected, 2, "ejected again, for longer");
    assert_eq!(backup.stats().successes(), sent);
    assert!(backup.stats().duplicates().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_primary_mid_run_loses_no_request() {
    const CALLERS: usize = 32;
    const REQUESTS: usize = 1_000;
    let primary = sim(Duration::from_millis(2), Faults::none()).await;
    let backup = sim(Duration::from_millis(2), Faults::none()).await;
    let client = client();
    let failovers = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&failovers);
    let lb = Failover::builder()
        .endpoint(endpoint("primary", &primary, &client))
        .endpoint(endpoint("backup", &backup, &client).tier(1))
        .on_event(move |event: &Event<'_>| {
            if let Event::Failover { .. } = event {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
        .unwrap();

    let next = Arc::new(AtomicUsize::new(0));
    let mut callers = Vec::new();
    for _ in 0..CALLERS {
        let lb = lb.clone();
        let next = Arc::clone(&next);
        callers.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= REQUESTS {
                    return failed;
                }
                let id = format!("r{i}");
                match send(&lb, request(http::Method::GET, &id)).await {
                    Ok(status) if status == 200 => {}
                    other => failed.push(format!("{id}: {other:?}")),
                }
            }
        }));
    }
    // Kill the primary once it has served a fifth of the run.
    eventually("the primary to serve 200 requests", || {
        primary.stats().successes() >= 200
    })
    .await;
    primary.handle().kill().await;

    let mut failed = Vec::new();
    for caller in callers {
        failed.extend(caller.await.unwrap());
    }
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());

    let (p, b) = (primary.stats(), backup.stats());
    assert!(p.duplicates().is_empty(), "{:?}", p.duplicates());
    assert!(b.duplicates().is_empty(), "{:?}", b.duplicates());
    assert!(p.successes() >= 200);
    assert!(b.successes() > 0, "the backup took over");
    assert_eq!(p.successes() + b.successes(), REQUESTS as u64);
    // Every request was served exactly once, by one server or the other.
    let mut served: HashMap<&str, u64> = HashMap::new();
    for (id, n) in p.successes_by_id().iter().chain(b.successes_by_id()) {
        *served.entry(id.as_str()).or_default() += n;
    }
    assert_eq!(served.len(), REQUESTS);
    assert!(served.values().all(|&n| n == 1));
    // Requests caught on the primary when it died were moved, not failed.
    assert!(failovers.load(Ordering::Relaxed) >= 1);
    assert_eq!(
        lb.handle().endpoint("primary").unwrap().state,
        EndpointState::Ejected
    );
}

#[tokio::test]
async fn traffic_returns_to_the_primary_once_its_health_check_passes() {
    const INTERVAL: Duration = Duration::from_millis(100);
    let primary = sim(Duration::ZERO, Faults::none()).await;
    let backup = sim(Duration::ZERO, Faults::none()).await;
    let client = client();
    let probe = HttpProbe::new(&format!("{}/healthz", primary.url())).unwrap();
    let health = HealthCheck::builder(Probe::http(probe).unwrap())
        .interval(INTERVAL)
        .timeout(Duration::from_secs(2))
        .healthy_threshold(2)
        .unhealthy_threshold(2)
        .spawn()
        .unwrap();
    let lb = Failover::builder()
        .endpoint(endpoint("primary", &primary, &client).health(health.clone()))
        .endpoint(endpoint("backup", &backup, &client).tier(1))
        // Far longer than the test: only the health check can readmit.
        .ejection(Duration::from_secs(600), Duration::from_secs(600))
        .build()
        .unwrap();
    let handle = lb.handle();
    let mut n = 0;
    let mut next_id = || {
        n += 1;
        format!("r{n}")
    };

    for _ in 0..5 {
        let id = next_id();
        send(&lb, request(http::Method::GET, &id)).await.unwrap();
        assert_eq!(served_by(&id, &primary, &backup), "primary");
    }

    primary.handle().kill().await;
    let id = next_id();
    send(&lb, request(http::Method::GET, &id)).await.unwrap();
    assert_eq!(served_by(&id, &primary, &backup), "backup");
    assert_eq!(
        handle.endpoint("primary").unwrap().state,
        EndpointState::Ejected
    );
    eventually("the health check to fail", || !health.is_healthy()).await;
    for _ in 0..5 {
        let id = next_id();
        send(&lb, request(http::Method::GET, &id)).await.unwrap();
        assert_eq!(served_by(&id, &primary, &backup), "backup");
    }

    primary.handle().revive().await.unwrap();
    let revived = Instant::now();
    let back = loop {
        let id = next_id();
        send(&lb, request(http::Method::GET, &id)).await.unwrap();
        if served_by(&id, &primary, &backup) == "primary" {
            break revived.elapsed();
        }
        assert!(revived.elapsed() < Duration::from_secs(30), "no failback");
        sleep(Duration::from_millis(10)).await;
    };
    // Two passing probes (the healthy threshold) a probe interval apart:
    // a few hundred milliseconds, bounded generously here against the
    // 600 s ejection.
    assert!(back < Duration::from_secs(10), "failback took {back:?}");
    assert!(health.is_healthy());
    assert_eq!(handle.failbacks(), 1);
    for _ in 0..10 {
        let id = next_id();
        send(&lb, request(http::Method::GET, &id)).await.unwrap();
        assert_eq!(served_by(&id, &primary, &backup), "primary");
    }
}

#[tokio::test]
async fn a_post_that_may_have_been_processed_is_not_replayed() {
    // The primary reads each request, then resets the connection.
    let primary = sim(Duration::from_millis(5), Faults::none().reset(1.0)).await;
    let backup = sim(Duration::ZERO, Faults::none()).await;
    let client = client();
    let lb = Failover::builder()
        .endpoint(endpoint("primary", &primary, &client))
        .endpoint(endpoint("backup", &backup, &client).tier(1))
        .build()
        .unwrap();

    for i in 0..3 {
        let err = send(&lb, request(http::Method::POST, &format!("p{i}")))
            .await
            .unwrap_err();
        let outcome = evenkeel_core::classify_error(&*err);
        assert!(!outcome.never_sent(), "{outcome:?}");
    }
    assert_eq!(primary.stats().resets(), 3, "each POST reached the primary");
    assert_eq!(backup.stats().attempts(), 0, "and none was sent again");
    assert_eq!(lb.handle().failovers(), 0);

    // The same failure on a GET moves it to the backup.
    assert_eq!(
        send(&lb, request(http::Method::GET, "g0")).await.unwrap(),
        200
    );
    assert_eq!(served_by("g0", &primary, &backup), "backup");
    assert_eq!(primary.stats().resets(), 4);
}
