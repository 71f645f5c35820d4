//! One verdict per attempt: the answer of each attempt is classified once,
//! by the observer at the bottom of its endpoint's stack, however many
//! layers above act on it. Every layer of the preset's stack is given the
//! same counting classifier; the count equals the attempts the servers saw.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use evenkeel::core::ext::AttemptContext;
use evenkeel::core::observe::{Observe, ObserveLayer};
use evenkeel::core::{Classify, HttpClassifier, Outcome};
use evenkeel::failover::{BaseUrl, BaseUrlLayer, Endpoint, Failover};
use evenkeel::limit::{Aimd, Limit, LimitLayer};
use evenkeel::metrics::{Metrics, MetricsLayer, Scope};
use evenkeel::quota::{Quota, QuotaLayer};
use evenkeel::retry::RetryLayer;
use evenkeel_sim::{Dialect, Faults, Sim};
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};

/// The HTTP classifier, counting every answer it judges.
#[derive(Debug, Clone, Default)]
struct Counting {
    calls: Arc<AtomicU64>,
}

impl Counting {
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl<B> Classify<http::Response<B>> for Counting {
    fn classify_response(&self, response: &http::Response<B>) -> Outcome {
        self.calls.fetch_add(1, Ordering::Relaxed);
        HttpClassifier::new().classify_response(response)
    }

    fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Classify::<http::Response<B>>::classify_error(&HttpClassifier::new(), error)
    }
}

/// An endpoint's stack as the preset builds it.
type Stack = BaseUrl<Quota<Limit<Metrics<Observe<Sim, Counting>, Counting>, Aimd, Counting>>>;

/// An endpoint's stack as the preset builds it, every layer judging with
/// `classifier`.
fn endpoint(name: &str, sim: &Sim, classifier: &Counting) -> Endpoint<Stack> {
    let stack = ServiceBuilder::new()
        .layer(BaseUrlLayer::new("http://api.sim").unwrap())
        .layer(QuotaLayer::builder().build().unwrap())
        .layer(
            LimitLayer::adaptive(Aimd::builder().min_limit(1).build().unwrap())
                .classifier(classifier.clone())
                .build()
                .unwrap(),
        )
        .layer(
            MetricsLayer::builder()
                .scope(Scope::Attempt)
                .classifier(classifier.clone())
                .build()
                .unwrap(),
        )
        .layer(ObserveLayer::new(classifier.clone()))
        .service(sim.clone());
    Endpoint::new(name, stack)
}

#[tokio::test(start_paused = true)]
async fn each_answer_is_classified_once_by_the_whole_stack() {
    // The primary answers some requests 503 and resets some connections;
    // both announce Anthropic's rate-limit headers. The backup is healthy.
    let primary = Sim::builder()
        .dialect(Dialect::Anthropic)
        .faults(Faults::none().unavailable(0.3).reset(0.1))
        .latency(Duration::from_millis(5))
        .seed(7)
        .build()
        .unwrap();
    let backup = Sim::builder()
        .dialect(Dialect::Anthropic)
        .latency(Duration::from_millis(5))
        .build()
        .unwrap();
    let classifier = Counting::default();
    let failover = Failover::builder()
        .classifier(classifier.clone())
        .endpoint(endpoint("primary", &primary, &classifier))
        .endpoint(endpoint("backup", &backup, &classifier).tier(1))
        .build()
        .unwrap();
    let retry = RetryLayer::builder()
        .classifier(classifier.clone())
        .max_attempts(3)
        .deadline(Duration::from_secs(30))
        .build()
        .unwrap();
    let call_metrics = MetricsLayer::builder()
        .classifier(classifier.clone())
        .build()
        .unwrap();
    let client = ServiceBuilder::new()
        .layer(call_metrics)
        .layer(retry)
        .service(failover);

    let requests = 60;
    let mut failures = 0;
    for id in 0..requests {
        let mut request = http::Request::get("/v1/models")
            .header("x-request-id", format!("req-{id}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        // What the preset does at its top: one context per request.
        request
            .extensions_mut()
            .insert(AttemptContext::new(1, None));
        match client.clone().oneshot(request).await {
            Ok(response) if response.status().is_success() => {}
            _ => failures += 1,
        }
    }
    let attempts = primary.stats().attempts() + backup.stats().attempts();
    assert!(
        attempts > requests,
        "the faults caused retries or failovers ({attempts} attempts)"
    );
    assert!(backup.stats().attempts() > 0, "some requests failed over");
    assert_eq!(failures, 0, "every request succeeded in the end");
    assert_eq!(
        classifier.calls(),
        attempts,
        "one classification per attempt the servers saw, by six layers"
    );
}

#[tokio::test(start_paused = true)]
async fn without_an_observer_each_layer_judges_for_itself() {
    // The same layers with no observer below: each classifies on its own.
    // This is what the observer saves, and it proves the count above
    // counts what it says.
    let sim = Sim::builder().build().unwrap();
    let classifier = Counting::default();
    let client = ServiceBuilder::new()
        .layer(
            MetricsLayer::builder()
                .classifier(classifier.clone())
                .build()
                .unwrap(),
        )
        .layer(
            RetryLayer::builder()
                .classifier(classifier.clone())
                .deadline(Duration::from_secs(30))
                .build()
                .unwrap(),
        )
        .layer(
            LimitLayer::adaptive(Aimd::builder().min_limit(1).build().unwrap())
                .classifier(classifier.clone())
                .build()
                .unwrap(),
        )
        .service(sim.clone());
    let request = http::Request::get("/v1/models")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert!(response.status().is_success());
    assert_eq!(sim.stats().attempts(), 1);
    assert_eq!(
        classifier.calls(),
        3,
        "limit, retry and metrics each judged it"
    );
}

#[tokio::test(start_paused = true)]
async fn a_grpc_resource_exhausted_cools_the_quota_key_through_the_verdict() {
    // The quota layer reads the stack's verdict, so the gRPC classifier's
    // reading of a trailers-only RESOURCE_EXHAUSTED with a pushback cools
    // the key, where HTTP statuses alone see a 200.
    use evenkeel::core::GrpcClassifier;
    use evenkeel::core::cooldown::Cooldown;

    let upstream = tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
        let response = http::Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .header("grpc-status", "8")
            .header("grpc-retry-pushback-ms", "2000")
            .body(Full::new(Bytes::new()))
            .unwrap();
        Ok::<_, std::convert::Infallible>(response)
    });
    let quota = QuotaLayer::builder().build().unwrap();
    let handle = quota.handle();
    let client = ServiceBuilder::new()
        .layer(quota)
        .layer(ObserveLayer::new(GrpcClassifier::new()))
        .service(upstream);
    let mut request = http::Request::post("http://api.grpc/pkg.Service/Call")
        .body(Full::new(Bytes::new()))
        .unwrap();
    request
        .extensions_mut()
        .insert(AttemptContext::new(1, None));
    let start = tokio::time::Instant::now();
    client.oneshot(request).await.unwrap();
    assert_eq!(
        handle.cooldown_until(),
        Some(start + Duration::from_secs(2)),
        "the pushback cools the key"
    );
}
