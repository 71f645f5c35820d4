//! The preset stack against the simulated API, in process under tokio's
//! paused clock: a 429 storm, an outage with a backup, and 529s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use evenkeel::core::event::Event;
use evenkeel::{Preset, connector_fn};
use evenkeel_sim::{Dialect, Faults, Sim};
use http::StatusCode;
use http_body_util::Full;
use tower::ServiceExt;

fn post(id: usize) -> http::Request<Full<Bytes>> {
    http::Request::post("/v1/messages")
        .header("x-request-id", format!("req-{id}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"max_tokens":16}"#)))
        .unwrap()
}

/// Runs `requests` POSTs from `callers` concurrent callers; returns how
/// many failed (transport error or non-2xx).
async fn drive<S>(client: Preset<S>, callers: usize, requests: usize) -> usize
where
    Preset<S>: tower::Service<
            http::Request<Full<Bytes>>,
            Response = http::Response<evenkeel::PresetBody<http_body_util::Full<Bytes>>>,
            Error = evenkeel::core::BoxError,
        > + Clone
        + Send
        + 'static,
    <Preset<S> as tower::Service<http::Request<Full<Bytes>>>>::Future: Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let client = client.clone();
        let next = next.clone();
        let failed = failed.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed) as usize;
                if id >= requests {
                    break;
                }
                match client.clone().oneshot(post(id)).await {
                    Ok(res) if res.status().is_success() => {}
                    Ok(res) => {
                        eprintln!("req-{id}: {}", res.status());
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => {
                        eprintln!("req-{id}: {err}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    failed.load(Ordering::Relaxed) as usize
}

#[tokio::test(start_paused = true)]
async fn a_429_storm_is_paced_not_retried_into() {
    let sim = Sim::builder()
        .requests(50.0, 10)
        .dialect(Dialect::Anthropic)
        .latency(Duration::from_millis(40))
        .seed(1)
        .build()
        .unwrap();
    let upstream = sim.clone();
    let client = Preset::builder()
        .endpoint("http://api.sim")
        .seed(7)
        .build(connector_fn(move |_| Ok(upstream.clone())))
        .unwrap();
    let failed = drive(client, 32, 1000).await;
    let stats = sim.stats();
    let limited = stats.status_count(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(failed, 0);
    assert_eq!(stats.successes(), 1000);
    assert!(stats.duplicates().is_empty());
    assert!(
        (limited as f64) <= 0.05 * stats.attempts() as f64,
        "{limited} 429s in {} attempts",
        stats.attempts()
    );
}

#[tokio::test(start_paused = true)]
async fn an_outage_fails_over_to_the_backup_and_back() {
    let primary = Sim::builder()
        .latency(Duration::from_millis(20))
        .seed(2)
        .build()
        .unwrap();
    let backup = Sim::builder()
        .latency(Duration::from_millis(20))
        .seed(3)
        .build()
        .unwrap();
    let (p, b) = (primary.clone(), backup.clone());
    let failovers = Arc::new(AtomicU64::new(0));
    let counter = failovers.clone();
    let client = Preset::builder()
        .named_endpoint("primary", "http://primary.sim")
        .named_endpoint("backup", "http://backup.sim")
        .seed(11)
        .on_event(move |e: &Event<'_>| {
            if matches!(e, Event::Failover { .. }) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build(connector_fn(move |uri: &http::Uri| {
            Ok(if uri.host() == Some("primary.sim") {
                p.clone()
            } else {
                b.clone()
            })
        }))
        .unwrap();

    // Kill the primary after 2 s, bring it back at 20 s, before its first
    // ejection (30 s) ends: when the ejection ends, the primary is healthy.
    let handle = primary.handle();
    let outage = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        handle.kill().await;
        tokio::time::sleep(Duration::from_secs(18)).await;
        handle.revive().await.unwrap();
    });
    // 8 callers, each a request every 100 ms or so, for about 80 s.
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut failed = 0;
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed) as usize;
                if id >= 6000 {
                    break;
                }
                match client.clone().oneshot(post(id)).await {
                    Ok(res) if res.status().is_success() => {}
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
            failed
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await.unwrap();
    }
    outage.await.unwrap();

    let (ps, bs) = (primary.stats(), backup.stats());
    assert_eq!(failed, 0, "no request is lost");
    assert_eq!(ps.successes() + bs.successes(), 6000);
    for id in 0..6000 {
        let id = format!("req-{id}");
        assert_eq!(
            ps.successes_for(&id) + bs.successes_for(&id),
            1,
            "{id} served exactly once"
        );
    }
    assert!(bs.successes() > 0, "the backup served during the outage");
    assert!(failovers.load(Ordering::Relaxed) > 0);
    // After the primary came back, traffic returned to it: the last
    // requests went to the primary.
    assert!(
        ps.successes_for("req-5999") == 1,
        "traffic returned to the primary"
    );
}

#[tokio::test(start_paused = true)]
async fn overloaded_529s_are_retried_without_duplicating_posts() {
    let sim = Sim::builder()
        .faults(Faults::none().overloaded(0.15).reset(0.02))
        .latency(Duration::from_millis(30))
        .seed(5)
        .build()
        .unwrap();
    let upstream = sim.clone();
    let client = Preset::builder()
        .endpoint("http://api.sim")
        .max_attempts(5)
        .seed(9)
        .build(connector_fn(move |_| Ok(upstream.clone())))
        .unwrap();
    let failed = drive(client, 16, 1000).await;
    let stats = sim.stats();
    assert!(stats.duplicates().is_empty(), "{:?}", stats.duplicates());
    assert!(
        stats.status_count(StatusCode::from_u16(529).unwrap()) > 50,
        "529s were injected"
    );
    // A reset on a POST may have been processed: it is not resent, so
    // those requests fail; 529s are always retried.
    assert!(
        failed <= stats.resets() as usize,
        "{failed} failed, {} resets",
        stats.resets()
    );
    assert_eq!(stats.successes() as usize + failed, 1000);
}
