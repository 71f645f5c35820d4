//! Error types at the seams: every evenkeel error converts into `BoxError`,
//! works with `?` into `Box<dyn Error + Send + Sync>` and `anyhow`, and
//! comes out of a stack of layers as the concrete type it went in as, even
//! when every service below already returns `BoxError` (no `Error<E>`
//! wrapper that stops converting when `E = BoxError`).

use std::convert::Infallible;
use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use evenkeel::{Preset, connector_fn};
use evenkeel_core::cooldown::Cooldown;
use evenkeel_core::error::{ConfigError, DeadlineExceeded, Overloaded, QuotaExhausted, TimedOut};
use evenkeel_core::{BoxError, FailureKind, Outcome, classify_error};
use evenkeel_failover::error::{NoEndpointAvailable, Unhealthy};
use evenkeel_failover::{BaseUrlLayer, Endpoint, Failover};
use evenkeel_headers::Resource;
use evenkeel_limit::LimitLayer;
use evenkeel_metrics::MetricsLayer;
use evenkeel_quota::{QuotaLayer, StaticQuota};
use evenkeel_retry::{Backoff, RetryLayer};
use evenkeel_sim::Sim;
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

/// The bounds an error needs to travel as a `BoxError` and be matched by
/// users: a `'static` `Error + Send + Sync` with `Debug` and `Display`.
fn is_box_error_material<E>()
where
    E: Error + fmt::Debug + fmt::Display + Send + Sync + 'static,
    E: Into<BoxError>,
{
}

#[test]
fn every_error_is_a_send_sync_static_error() {
    is_box_error_material::<Overloaded>();
    is_box_error_material::<QuotaExhausted>();
    is_box_error_material::<DeadlineExceeded>();
    is_box_error_material::<TimedOut>();
    is_box_error_material::<ConfigError>();
    is_box_error_material::<NoEndpointAvailable>();
    is_box_error_material::<Unhealthy>();
    is_box_error_material::<evenkeel_sim::SimError>();
    is_box_error_material::<evenkeel_sim::ConfigError>();
    is_box_error_material::<evenkeel_sim::UnknownDialect>();
}

#[test]
fn boxed_errors_downcast_to_their_concrete_type() {
    let errors: Vec<(BoxError, &str)> = vec![
        (Overloaded::new().into(), "overloaded"),
        (QuotaExhausted::new(Resource::Tokens, None).into(), "quota"),
        (DeadlineExceeded::new().into(), "deadline"),
        (TimedOut::after(Duration::from_secs(1)).into(), "timeout"),
        (
            ConfigError::new("max_attempts", "must be at least 1").into(),
            "config",
        ),
    ];
    for (err, name) in errors {
        let matched = match name {
            "overloaded" => err.is::<Overloaded>(),
            "quota" => err.is::<QuotaExhausted>(),
            "deadline" => err.is::<DeadlineExceeded>(),
            "timeout" => err.is::<TimedOut>(),
            "config" => {
                err.downcast_ref::<ConfigError>().map(|e| e.field()) == Some("max_attempts")
            }
            _ => unreachable!(),
        };
        assert!(matched, "{name}: {err}");
    }
}

/// Every builder's error and every service's error with `?` into the
/// boxed error type most applications use.
async fn build_and_call() -> Result<u16, Box<dyn Error + Send + Sync>> {
    let sim = Sim::builder().requests(100.0, 10).seed(1).build()?;
    let retry = RetryLayer::builder().max_attempts(2).build()?;
    let limit = LimitLayer::fixed(4).build()?;
    let quota = QuotaLayer::builder()
        .max_wait(Duration::from_secs(1))
        .build()?;
    let metrics = MetricsLayer::builder().build()?;
    let base = BaseUrlLayer::new("http://api.sim")?;
    let client = ServiceBuilder::new()
        .layer(metrics)
        .layer(retry)
        .layer(base)
        .layer(quota)
        .layer(limit)
        .service(sim);
    let request = http::Request::get("/v1/models").body(Full::new(Bytes::new()))?;
    let response = client.oneshot(request).await?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn question_mark_into_a_boxed_error() {
    assert_eq!(build_and_call().await.unwrap(), 200);
}

#[tokio::test]
async fn question_mark_into_anyhow() {
    async fn run() -> anyhow::Result<()> {
        // Builder errors are plain `Error + Send + Sync + 'static` types:
        // `?` converts them.
        let limit = LimitLayer::fixed(1).reject_immediately().build()?;
        let err = RetryLayer::builder().max_attempts(0).build().unwrap_err();
        assert_eq!(err.field(), "max_attempts");

        // A service's `BoxError` is not itself an `Error` (std has no such
        // impl for `Box<dyn Error>`), so it goes in through
        // `anyhow::Error::from_boxed`. anyhow then downcasts to the
        // `BoxError`, and the `BoxError` to the concrete type.
        let held = Arc::new(tokio::sync::Notify::new());
        let gate = held.clone();
        let svc = limit.layer(service_fn(move |_: http::Request<()>| {
            let gate = gate.clone();
            async move {
                gate.notified().await;
                Ok::<_, Infallible>(http::Response::new(()))
            }
        }));
        let mut first = svc.clone();
        let pending =
            tokio::spawn(async move { first.ready().await?.call(http::Request::new(())).await });
        tokio::task::yield_now().await;
        let err = svc
            .clone()
            .oneshot(http::Request::new(()))
            .await
            .map_err(anyhow::Error::from_boxed)
            .unwrap_err();
        let boxed = err.downcast_ref::<BoxError>().expect("the BoxError itself");
        assert!(boxed.is::<Overloaded>(), "{err:?}");
        held.notify_one();
        pending.await?.map_err(anyhow::Error::from_boxed)?;
        Ok(())
    }
    run().await.unwrap();
}

/// An error of the application's own.
#[derive(Debug)]
struct Upstream;

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("upstream failed")
    }
}

impl Error for Upstream {}

fn failing() -> impl tower::Service<
    http::Request<evenkeel_core::body::ReplayBody<Full<Bytes>>>,
    Response = http::Response<Full<Bytes>>,
    Error = BoxError,
    Future = impl Send,
> + Clone
+ Send
+ Sync
+ 'static {
    service_fn(|_: http::Request<_>| async {
        Err::<http::Response<Full<Bytes>>, BoxError>(Box::new(Upstream))
    })
}

#[tokio::test(start_paused = true)]
async fn layers_over_box_error_services_pass_the_error_through_unwrapped() {
    // tower's own `Timeout` already returns `BoxError`; every evenkeel
    // layer stacks on it and on each other, and the caller still gets the
    // service's own error, not a wrapper around a wrapper.
    let stack = ServiceBuilder::new()
        .layer(MetricsLayer::new())
        .layer(
            RetryLayer::builder()
                .backoff(Backoff::constant(Duration::from_millis(1)))
                .build()
                .unwrap(),
        )
        .layer(BaseUrlLayer::new("http://api.test").unwrap())
        .layer(QuotaLayer::new())
        .layer(LimitLayer::fixed(2).build().unwrap())
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(5)))
        .service(failing());
    let request = http::Request::post("/v1/messages")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let err = stack.oneshot(request).await.unwrap_err();
    assert!(err.is::<Upstream>(), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn the_preset_returns_each_layers_own_error_type() {
    // An unclassified failure from the connector: may have been processed,
    // so a POST is neither retried nor failed over; it comes back as is.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let preset = Preset::builder()
        .endpoint("http://api.test")
        .build(connector_fn(move |_| {
            let seen = seen.clone();
            Ok(service_fn(move |_: http::Request<_>| {
                seen.fetch_add(1, Ordering::SeqCst);
                async { Err::<http::Response<Full<Bytes>>, BoxError>(Box::new(Upstream)) }
            }))
        }))
        .unwrap();
    let post = || {
        http::Request::post("/v1/messages")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    };
    let err = preset.clone().oneshot(post()).await.unwrap_err();
    assert!(err.is::<Upstream>(), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A connector that never answers: the attempt timeout in each
    // endpoint's stack ends the attempt; a POST that may have been sent is
    // not resent, so the caller gets `TimedOut`, which the classifier reads
    // as a timeout.
    let preset = Preset::builder()
        .endpoint("http://api.test")
        .deadline(Duration::from_secs(3))
        .attempt_timeout(Duration::from_secs(1))
        .max_quota_wait(Duration::from_secs(1))
        .build(connector_fn(|_| {
            Ok(service_fn(|_: http::Request<_>| async {
                std::future::pending::<Result<http::Response<Full<Bytes>>, BoxError>>().await
            }))
        }))
        .unwrap();
    let started = Instant::now();
    let err = preset.oneshot(post()).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    let timed_out = err
        .downcast_ref::<evenkeel::core::error::TimedOut>()
        .unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(timed_out.timeout(), Some(Duration::from_secs(1)));
    assert!(matches!(
        classify_error(&*err),
        Outcome::Failed(f) if f.kind == FailureKind::Timeout
    ));
}

#[derive(Debug)]
struct CoolingFor(Duration);

impl Cooldown for CoolingFor {
    fn cooldown_until(&self) -> Option<Instant> {
        Some(Instant::now() + self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn each_layer_fails_with_its_documented_error() {
    fn ok<B>() -> impl Service<
        http::Request<B>,
        Response = http::Response<Full<Bytes>>,
        Error = BoxError,
        Future = impl Send,
    > + Clone {
        service_fn(|_: http::Request<B>| async {
            Ok::<_, BoxError>(http::Response::new(Full::new(Bytes::new())))
        })
    }
    let request = || {
        http::Request::get("http://api.test/")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    // The limiter, full and refusing to queue: `Overloaded`.
    let limit = LimitLayer::fixed(1).reject_immediately().build().unwrap();
    let held = limit.layer(service_fn(|_: http::Request<Full<Bytes>>| {
        std::future::pending::<Result<http::Response<()>, BoxError>>()
    }));
    let mut first = held.clone();
    let first = first.ready().await.unwrap().call(request());
    let _first = tokio::spawn(first);
    tokio::task::yield_now().await;
    let err = held.oneshot(request()).await.unwrap_err();
    assert!(err.is::<Overloaded>(), "{err:?}");

    // A declared quota spent: `QuotaExhausted`, naming the resource.
    let quota = QuotaLayer::builder()
        .declare(StaticQuota::per_minute(Resource::Requests, 1))
        .max_wait(Duration::from_secs(1))
        .build()
        .unwrap();
    let svc = quota.layer(ok());
    svc.clone().oneshot(request()).await.unwrap();
    let err = svc.oneshot(request()).await.unwrap_err();
    let quota = err
        .downcast_ref::<QuotaExhausted>()
        .expect("QuotaExhausted");
    assert_eq!(quota.resource(), &Resource::Requests);
    assert!(quota.retry_after().is_some());

    // The retry layer's deadline: `DeadlineExceeded`.
    let retry = RetryLayer::builder()
        .deadline(Duration::from_millis(100))
        .build()
        .unwrap();
    let svc = retry.layer(service_fn(|_: http::Request<_>| {
        std::future::pending::<Result<http::Response<Full<Bytes>>, BoxError>>()
    }));
    let err = svc.oneshot(request()).await.unwrap_err();
    assert!(err.is::<DeadlineExceeded>(), "{err:?}");

    // The balancer with nothing available: `NoEndpointAvailable`, whose
    // source says when an endpoint comes back.
    let failover = Failover::builder()
        .endpoint(Endpoint::new("only", ok()).cooldown(CoolingFor(Duration::from_secs(30))))
        .build()
        .unwrap();
    let err = failover.oneshot(request()).await.unwrap_err();
    let none = err
        .downcast_ref::<NoEndpointAvailable>()
        .expect("NoEndpointAvailable");
    assert!(none.retry_after().is_some());
    assert!(classify_error(&*err).never_sent());
}
