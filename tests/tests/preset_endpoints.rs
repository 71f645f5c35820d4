//! What each preset endpoint has of its own: headers (its credentials),
//! its quota key, and the cost the preset estimates for a request.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use evenkeel::core::body::Replay;
use evenkeel::quota::cost::{Cost, Estimate};
use evenkeel::{Preset, PresetCost, PresetEndpoint, connector_fn};
use http::{Request, Response};
use http_body_util::Full;
use tower::ServiceExt;

/// An upstream that records the `x-api-key` it sees and answers `status`.
fn upstream(
    status: u16,
    seen: Arc<Mutex<Vec<String>>>,
) -> impl tower::Service<
    Request<evenkeel::core::body::ReplayBody<Full<Bytes>>>,
    Response = Response<Full<Bytes>>,
    Error = std::convert::Infallible,
    Future = std::future::Ready<Result<Response<Full<Bytes>>, std::convert::Infallible>>,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(
        move |req: Request<evenkeel::core::body::ReplayBody<Full<Bytes>>>| {
            let key = req
                .headers()
                .get("x-api-key")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            seen.lock()
                .unwrap()
                .push(format!("{} {key}", req.uri().host().unwrap()));
            std::future::ready(Ok(Response::builder()
                .status(status)
                .body(Full::new(Bytes::new()))
                .unwrap()))
        },
    )
}

#[tokio::test(start_paused = true)]
async fn each_endpoint_sends_its_own_credentials() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let preset = Preset::builder()
        .add_endpoint(PresetEndpoint::new("http://primary.test").header("x-api-key", "primary-key"))
        .add_endpoint(
            PresetEndpoint::new("http://backup.test")
                .name("backup")
                .header("x-api-key", "backup-key")
                .quota_key("backup-account"),
        )
        .quota_key("main-account")
        .build(connector_fn(move |uri| {
            // The primary is down (503), the backup serves.
            let status = if uri.host() == Some("primary.test") {
                503
            } else {
                200
            };
            Ok(upstream(status, log.clone()))
        }))
        .unwrap();
    let request = Request::get("/v1/models")
        .header("x-api-key", "the-callers-key")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = preset.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        ["primary.test primary-key", "backup.test backup-key"],
        "each endpoint's key replaces the caller's"
    );
    let keys: Vec<_> = preset
        .quotas()
        .iter()
        .map(|(name, handle)| (name.clone(), handle.keys()))
        .collect();
    assert_eq!(
        keys,
        [
            ("primary.test".to_owned(), vec!["main-account".to_owned()]),
            ("backup".to_owned(), vec!["backup-account".to_owned()]),
        ]
    );
}

#[test]
fn endpoint_headers_are_checked_and_kept_out_of_debug() {
    let err = Preset::builder()
        .add_endpoint(PresetEndpoint::new("http://api.test").header("bad header", "v"))
        .build_http()
        .unwrap_err();
    assert_eq!(err.field(), "header");
    assert!(err.to_string().contains("`bad header: v`"), "{err}");
    assert!(err.to_string().contains("http://api.test"), "{err}");
    let endpoint = PresetEndpoint::new("http://api.test").header("x-api-key", "secret");
    assert!(!format!("{endpoint:?}").contains("secret"));
}

#[test]
fn the_llm_cost_reads_max_tokens_from_a_complete_body() {
    let body = br#"{"model":"m","max_tokens":300,"messages":[{"role":"user","content":"Hi"}]}"#;
    let mut replay = Replay::new(Full::new(Bytes::from_static(body)), 1 << 20);
    let request = Request::post("/v1/messages")
        .body(replay.body().unwrap())
        .unwrap();
    let cost = PresetCost::llm().estimate(&request);
    assert_eq!(cost.output_tokens(), 300);
    assert_eq!(cost.input_tokens(), (body.len() as u64).div_ceil(4));
    // The default counts the request only; a `Cost` extension always wins.
    assert_eq!(PresetCost::default().estimate(&request), Cost::default());
    let mut request = request;
    let chosen = Cost::new().with_tokens(7);
    request.extensions_mut().insert(chosen);
    assert_eq!(PresetCost::llm().estimate(&request), chosen);
}

#[tokio::test(start_paused = true)]
async fn a_declared_rate_paces_an_api_without_headers() {
    use evenkeel_sim::{Dialect, Sim};
    use std::time::Duration;

    // Two requests a second, no rate-limit headers: the sim refuses what
    // goes over. The declared rate keeps every request under it.
    let sim = Sim::builder()
        .requests(2.0, 1)
        .dialect(Dialect::None)
        .latency(Duration::from_millis(10))
        .build()
        .unwrap();
    let upstream = sim.clone();
    let preset = Preset::builder()
        .endpoint("http://api.sim")
        .rate_limit(2, Duration::from_secs(1))
        .build(connector_fn(move |_| Ok(upstream.clone())))
        .unwrap();
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let preset = preset.clone();
        tasks.push(tokio::spawn(async move {
            let request = Request::get("/v1/models")
                .header("x-request-id", format!("r{i}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            preset.oneshot(request).await.unwrap().status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let stats = sim.stats();
    assert_eq!(stats.attempts(), 6, "no attempt wasted on a 429");
    assert_eq!(stats.status_count(http::StatusCode::TOO_MANY_REQUESTS), 0);
    assert!(
        start.elapsed() >= Duration::from_millis(2_500),
        "spread at two a second: {:?}",
        start.elapsed()
    );
    let err = Preset::builder()
        .endpoint("http://api.sim")
        .rate_limit(0, Duration::from_secs(1))
        .build_http()
        .unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
}
