//! The preset on a quota store of the caller's: one store for every
//! endpoint and every preset given it, the quota key choosing the state.

#![cfg(feature = "preset")]

use std::time::Duration;

use bytes::Bytes;
use evenkeel::headers::Resource;
use evenkeel::quota::cost::Cost;
use evenkeel::quota::{MemoryStore, QuotaStore, StaticQuota};
use evenkeel::{Preset, connector_fn};
use evenkeel_sim::{Dialect, Sim};
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::ServiceExt;

/// Two requests a second, a bucket of one, no rate-limit headers.
fn sim() -> Sim {
    Sim::builder()
        .requests(2.0, 1)
        .dialect(Dialect::None)
        .latency(Duration::from_millis(10))
        .build()
        .unwrap()
}

fn store() -> MemoryStore {
    MemoryStore::builder()
        .declare(StaticQuota::new(Resource::Requests, 2, Duration::from_secs(1)).with_burst(1))
        .build()
        .unwrap()
}

fn get(i: usize) -> Request<Full<Bytes>> {
    Request::get("/v1/models")
        .header("x-request-id", format!("r{i}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn two_presets_on_one_store_and_key_pace_against_one_quota() {
    let upstream = sim();
    let store = store();
    let preset = |key: &str| {
        let upstream = upstream.clone();
        Preset::builder()
            .endpoint("http://api.sim")
            .quota_key(key)
            .quota_store(store.clone())
            .build(connector_fn(move |_| Ok(upstream.clone())))
            .unwrap()
    };
    let (a, b) = (preset("team"), preset("team"));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let preset = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(preset.oneshot(get(i))));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    let stats = upstream.stats();
    assert_eq!(stats.attempts(), 6, "no attempt wasted on a 429");
    assert_eq!(stats.status_count(StatusCode::TOO_MANY_REQUESTS), 0);
    assert!(
        start.elapsed() >= Duration::from_millis(2_500),
        "six requests at two a second over both presets: {:?}",
        start.elapsed()
    );
    // Both presets read the one key of the one store.
    let key = a.quota_store().open("team");
    let snapshot = b.quota_store().snapshot(&key, tokio::time::Instant::now());
    assert_eq!(snapshot.len(), 1, "{snapshot:?}");
    assert_eq!(snapshot[0].resource, Resource::Requests, "{snapshot:?}");
    assert_eq!(snapshot[0].rate, Some(2.0), "{snapshot:?}");
}

#[tokio::test(start_paused = true)]
async fn endpoints_of_one_preset_with_one_key_share_its_state() {
    let preset = Preset::builder()
        .endpoint("http://primary.sim")
        .endpoint("http://backup.sim")
        .quota_key("team")
        .quota_store(store())
        .build(connector_fn(|_| Ok(sim())))
        .unwrap();
    let [(_, primary), (_, backup)] = preset.quotas() else {
        panic!("two endpoints");
    };
    // What the primary's layer takes is gone for the backup's too.
    let now = tokio::time::Instant::now();
    let (on_primary, on_backup) = (primary.store().open("team"), backup.store().open("team"));
    assert_eq!(
        backup.store().room_at(&on_backup, now),
        None,
        "room at first"
    );
    let ticket = primary
        .store()
        .reserve(&on_primary, &Cost::new(), now)
        .await
        .expect("the bucket of one has room");
    assert!(
        backup.store().room_at(&on_backup, now).is_some(),
        "the backup sees the primary's reservation"
    );
    primary.store().release(&on_primary, ticket, false, now);
}

#[test]
fn quotas_declared_on_the_preset_next_to_a_given_store_are_refused() {
    for builder in [
        Preset::builder().rate_limit(10, Duration::from_secs(1)),
        Preset::builder().declare(StaticQuota::new(
            Resource::Tokens,
            1000,
            Duration::from_secs(60),
        )),
    ] {
        let err = builder
            .endpoint("http://api.example")
            .quota_store(MemoryStore::new())
            .build(connector_fn(|_| Ok(sim())))
            .unwrap_err();
        assert_eq!(err.field(), "quota_store", "{err}");
        assert!(err.to_string().contains("declare"), "{err}");
    }
    // On the built-in store they are taken.
    assert!(
        Preset::builder()
            .rate_limit(10, Duration::from_secs(1))
            .endpoint("http://api.example")
            .build(connector_fn(|_| Ok(sim())))
            .is_ok()
    );
}
