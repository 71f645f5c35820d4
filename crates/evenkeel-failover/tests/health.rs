//! Active health checks: thresholds, probes, the task's lifetime, and what
//! the balancer does with the verdict.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use evenkeel_core::{FailureKind, Outcome, classify_error};
use evenkeel_failover::error::Unhealthy;
use evenkeel_failover::{
    EndpointState, HealthCheck, HealthCheckLayer, HealthHandle, HttpProbe, Probe,
};
use http_body_util::Full;
use tokio::time::sleep;
use tower::{Layer, ServiceExt};

/// A probe whose result a test flips, counting its runs.
#[derive(Clone, Default)]
struct Switch {
    failing: Arc<AtomicBool>,
    runs: Arc<AtomicUsize>,
}

impl Switch {
    fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    fn probe(&self) -> Probe {
        let switch = self.clone();
        Probe::custom(move || {
            let switch = switch.clone();
            async move {
                switch.runs.fetch_add(1, Ordering::SeqCst);
                if switch.failing.load(Ordering::SeqCst) {
                    Err("probe failed")
                } else {
                    Ok(())
                }
            }
        })
    }

    /// A check probing every second, without jitter.
    fn spawn(&self, healthy: u32, unhealthy: u32) -> HealthHandle {
        HealthCheck::builder(self.probe())
            .interval(Duration::from_secs(1))
            .interval_jitter(0.0)
            .healthy_threshold(healthy)
            .unhealthy_threshold(unhealthy)
            .spawn()
            .unwrap()
    }
}

/// Waits (on the real clock, for at most 30 s) until `condition` holds.
async fn eventually(condition: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while !condition() {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition not met in 30 s");
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[tokio::test(start_paused = true)]
async fn verdicts_change_only_after_results_in_a_row() {
    let switch = Switch::default();
    let health = switch.spawn(2, 3);
    sleep(secs(0.5)).await;
    assert_eq!(switch.runs(), 1, "the first probe runs at once");
    assert!(health.is_healthy());

    switch.fail(true);
    sleep(secs(2.0)).await; // two failures
    assert!(health.is_healthy());
    sleep(secs(1.0)).await; // three
    assert!(!health.is_healthy());
    let status = health.status();
    assert_eq!(status.consecutive_failures, 3);
    assert_eq!(status.last_error.as_deref(), Some("probe failed"));

    // Alternating results never make it healthy again.
    for _ in 0..4 {
        switch.fail(false);
        sleep(secs(1.0)).await;
        switch.fail(true);
        sleep(secs(1.0)).await;
    }
    assert!(!health.is_healthy());
    switch.fail(false);
    sleep(secs(1.0)).await;
    assert!(!health.is_healthy());
    sleep(secs(1.0)).await;
    assert!(health.is_healthy());
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_takes_too_long_fails() {
    let health = HealthCheck::builder(Probe::custom(|| async {
        sleep(Duration::from_secs(10)).await;
        Ok::<(), std::io::Error>(())
    }))
    .interval(Duration::from_secs(1))
    .timeout(Duration::from_secs(2))
    .unhealthy_threshold(1)
    .spawn()
    .unwrap();
    sleep(secs(2.5)).await;
    assert!(!health.is_healthy());
    assert!(
        health
            .status()
            .last_error
            .unwrap()
            .contains("timed out after 2")
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_or_stopping_the_handle_stops_probing() {
    let switch = Switch::default();
    let health = switch.spawn(1, 1);
    sleep(secs(4.5)).await;
    let runs = switch.runs();
    assert_eq!(runs, 5);
    let clone = health.clone();
    drop(health);
    sleep(secs(3.0)).await;
    assert_eq!(switch.runs(), runs + 3, "a clone keeps it running");
    drop(clone);
    sleep(secs(10.0)).await;
    assert_eq!(switch.runs(), runs + 3, "no clone left: stopped");

    let switch = Switch::default();
    switch.fail(true);
    let health = switch.spawn(1, 1);
    sleep(secs(1.5)).await;
    assert!(!health.is_healthy());
    health.stop();
    let runs = switch.runs();
    sleep(secs(10.0)).await;
    assert_eq!(switch.runs(), runs);
    assert!(health.is_stopped());
    assert!(health.is_healthy(), "nothing vouches against it any more");
}

#[tokio::test(start_paused = true)]
async fn the_verdict_can_be_watched() {
    let switch = Switch::default();
    let health = switch.spawn(1, 2);
    let mut watch = health.subscribe();
    switch.fail(true);
    watch.changed().await.unwrap();
    assert!(!*watch.borrow());
    switch.fail(false);
    watch.changed().await.unwrap();
    assert!(*watch.borrow());
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_endpoint_is_routed_around() {
    let switch = Switch::default();
    let health = switch.spawn(2, 2);
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let recorder = Recorder::default();
    let mut lb = balancer([primary.endpoint().health(health), backup.endpoint().tier(1)])
        .on_event(recorder.listener())
        .build()
        .unwrap();
    assert_eq!(serve_n(&mut lb, 2).await, ["primary"; 2]);

    switch.fail(true);
    sleep(secs(2.5)).await;
    assert_eq!(serve_n(&mut lb, 4).await, ["backup"; 4]);
    assert_eq!(primary.hits(), 2, "not one request sent to it");
    let status = lb.handle().endpoint("primary").unwrap();
    assert_eq!(status.state, EndpointState::Ejected);
    assert_eq!(status.health_check, Some(false));

    switch.fail(false);
    sleep(secs(2.0)).await;
    assert_eq!(serve_n(&mut lb, 2).await, ["primary"; 2]);
    let events = recorder.events();
    assert!(
        events.contains(&"state primary ejected".to_owned()),
        "{events:?}"
    );
    assert!(
        events.contains(&"failback primary".to_owned()),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn passing_probes_readmit_an_ejected_endpoint_early() {
    let switch = Switch::default();
    let health = switch.spawn(2, 3);
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let mut lb = balancer([primary.endpoint().health(health), backup.endpoint().tier(1)])
        .ejection(Duration::from_secs(60), Duration::from_secs(600))
        .build()
        .unwrap();
    let handle = lb.handle();
    sleep(secs(0.5)).await;

    // Failing real requests while its health endpoint still passes.
    primary.answer(status(500));
    serve_n(&mut lb, 5).await;
    assert_eq!(
        handle.endpoint("primary").unwrap().state,
        EndpointState::Ejected
    );
    primary.answer(ok());

    // Two passes after the ejection readmit it, long before 60 s.
    sleep(secs(1.0)).await;
    assert_eq!(serve_n(&mut lb, 1).await, ["backup"]);
    sleep(secs(1.0)).await;
    assert_eq!(serve_n(&mut lb, 1).await, ["primary"]);

    // Ejected a second time, it needs twice the passes: a flapping
    // endpoint does not bounce traffic on every probe.
    primary.answer(status(500));
    serve_n(&mut lb, 5).await;
    assert_eq!(handle.endpoint("primary").unwrap().times_ejected, 2);
    primary.answer(ok());
    sleep(secs(3.0)).await;
    assert_eq!(serve_n(&mut lb, 1).await, ["backup"]);
    sleep(secs(1.0)).await;
    assert_eq!(serve_n(&mut lb, 1).await, ["primary"]);
}

#[tokio::test(start_paused = true)]
async fn failback_can_ramp_up() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .ramp(Duration::from_secs(10))
        .build()
        .unwrap();
    primary.answer(Answer::Io(std::io::ErrorKind::ConnectionRefused));
    serve_n(&mut lb, 5).await;
    primary.answer(ok());
    sleep(Duration::from_secs(30)).await;

    // Just readmitted: a small share.
    let share = |who: Vec<String>| who.iter().filter(|w| *w == "primary").count();
    primary.reset();
    let early = share(serve_n(&mut lb, 200).await);
    assert!((10..=50).contains(&early), "{early}");
    sleep(Duration::from_secs(5)).await;
    let middle = share(serve_n(&mut lb, 200).await);
    assert!((80..=140).contains(&middle), "{middle}");
    sleep(Duration::from_secs(5)).await;
    assert_eq!(share(serve_n(&mut lb, 200).await), 200);
}

#[tokio::test]
async fn a_tcp_probe_follows_the_listener() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health = HealthCheck::builder(Probe::tcp(addr.to_string()))
        .interval(Duration::from_millis(20))
        .timeout(Duration::from_secs(5))
        .healthy_threshold(1)
        .unhealthy_threshold(2)
        .spawn()
        .unwrap();
    let mut watch = health.subscribe();
    // Probes pass while something listens.
    eventually(|| health.status().consecutive_passes >= 2).await;
    assert!(health.is_healthy());
    drop(listener);
    tokio::time::timeout(Duration::from_secs(30), watch.changed())
        .await
        .unwrap()
        .unwrap();
    assert!(!health.is_healthy());
    assert!(health.status().last_error.is_some());
}

#[cfg(feature = "http-probe")]
#[tokio::test]
async fn an_http_probe_expects_its_statuses() {
    let server = evenkeel_sim::Sim::builder()
        .latency(Duration::ZERO)
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let uri = format!("{}/healthz", server.url());
    let spawn = |probe: HttpProbe| {
        HealthCheck::builder(Probe::http(probe).unwrap())
            .interval(Duration::from_millis(20))
            .timeout(Duration::from_secs(5))
            .healthy_threshold(1)
            .unhealthy_threshold(1)
            .spawn()
            .unwrap()
    };
    let any_2xx = spawn(HttpProbe::new(&uri).unwrap());
    let only_204 = spawn(HttpProbe::new(&uri).unwrap().expect([204]));
    let mut watch = only_204.subscribe();
    tokio::time::timeout(Duration::from_secs(30), watch.changed())
        .await
        .unwrap()
        .unwrap();
    assert!(!only_204.is_healthy());
    assert!(
        only_204
            .status()
            .last_error
            .unwrap()
            .contains("answered 200 OK")
    );
    eventually(|| any_2xx.status().probes >= 1).await;
    assert!(any_2xx.is_healthy());

    // The server starts answering 503: the 2xx probe fails.
    let mut watch = any_2xx.subscribe();
    server
        .handle()
        .force(
            http::StatusCode::SERVICE_UNAVAILABLE,
            None,
            Duration::from_secs(600),
        )
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), watch.changed())
        .await
        .unwrap()
        .unwrap();
    assert!(!any_2xx.is_healthy());
    server.handle().clear_force();
    tokio::time::timeout(Duration::from_secs(30), watch.changed())
        .await
        .unwrap()
        .unwrap();
    assert!(any_2xx.is_healthy());
}

#[tokio::test(start_paused = true)]
async fn a_probe_can_go_through_any_service() {
    let sim = evenkeel_sim::Sim::builder().build().unwrap();
    let probe = Probe::service::<_, Full<Bytes>, _>(
        sim.clone(),
        HttpProbe::new("http://api.internal/healthz").unwrap(),
    );
    let health = HealthCheck::builder(probe)
        .interval(Duration::from_secs(1))
        .unhealthy_threshold(1)
        .spawn()
        .unwrap();
    sleep(secs(1.5)).await;
    assert!(health.is_healthy());
    assert!(sim.stats().attempts() >= 1);
    sim.handle().kill().await;
    sleep(secs(1.5)).await;
    assert!(!health.is_healthy());
}

#[tokio::test(start_paused = true)]
async fn the_layer_refuses_requests_while_unhealthy() {
    let switch = Switch::default();
    let health = switch.spawn(1, 1);
    let upstream = Upstream::new("solo");
    let service = HealthCheckLayer::new(health.clone()).layer(upstream.clone());
    let req = || {
        let (parts, body) = get("r").into_parts();
        let body = evenkeel_core::body::Replay::new(body, 1024).body().unwrap();
        http::Request::from_parts(parts, body)
    };
    assert!(service.clone().oneshot(req()).await.is_ok());

    switch.fail(true);
    sleep(secs(1.5)).await;
    let err = service.clone().oneshot(req()).await.unwrap_err();
    assert!(err.is::<Unhealthy>());
    assert_eq!(
        classify_error(&*err),
        Outcome::Failed(FailureKind::LocalOverload.into()),
        "never sent, not the endpoint's fault"
    );
    assert_eq!(upstream.hits(), 1);
}

#[test]
fn builders_name_the_field_at_fault() {
    let probe = || Probe::tcp("127.0.0.1:1");
    let err = HealthCheck::builder(probe())
        .interval(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "interval");
    let err = HealthCheck::builder(probe())
        .interval(Duration::MAX)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "interval");
    let err = HealthCheck::builder(probe())
        .healthy_threshold(0)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "healthy_threshold");
    let err = HealthCheck::builder(probe())
        .interval_jitter(2.0)
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "interval_jitter");
    assert_eq!(HttpProbe::new("/healthz").unwrap_err().field(), "uri");
    #[cfg(feature = "http-probe")]
    assert_eq!(
        Probe::http(HttpProbe::new("https://example.com/").unwrap())
            .unwrap_err()
            .field(),
        "uri"
    );
}
