//! Test helpers: a mock upstream and responses carrying rate-limit headers.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use evenkeel_core::event::Event;
use evenkeel_quota::store::MemoryStoreBuilder;
use evenkeel_quota::{IntoStore, Quota, QuotaBuilder, QuotaLayer};
use http::{Request, Response};
use tower_test::mock;

pub(crate) type Mock = mock::Mock<Request<()>, Response<()>>;
pub(crate) type Handle = mock::Handle<Request<()>, Response<()>>;

/// A quota service over a mock upstream (wrapped to poll it by hand), the
/// mock's handle, and the layer (for its handle).
pub(crate) fn service<K, C, S>(
    builder: QuotaBuilder<K, C, S>,
) -> (
    mock::Spawn<Quota<Mock, K, C, <S as IntoStore>::Store>>,
    Handle,
    QuotaLayer<K, C, <S as IntoStore>::Store>,
)
where
    S: IntoStore,
{
    let layer = builder.build().unwrap();
    let (svc, handle) = mock::spawn_layer(layer.clone());
    (svc, handle, layer)
}

/// The default builder, without the first-contact probe unless a test
/// asks for it.
pub(crate) fn builder() -> QuotaBuilder<
    evenkeel_quota::key::Authority,
    evenkeel_quota::cost::PerRequest,
    MemoryStoreBuilder,
> {
    QuotaLayer::builder().probe_first(false)
}

pub(crate) fn request(uri: &str) -> Request<()> {
    Request::post(uri).body(()).unwrap()
}

pub(crate) fn response(status: u16, headers: &[(&str, &str)]) -> Response<()> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

/// OpenAI's request-quota headers.
pub(crate) fn openai(limit: u64, remaining: u64, reset: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-ratelimit-limit-requests", limit.to_string()),
        ("x-ratelimit-remaining-requests", remaining.to_string()),
        ("x-ratelimit-reset-requests", reset.to_string()),
    ]
}

pub(crate) fn with_headers(status: u16, headers: &[(&'static str, String)]) -> Response<()> {
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    response(status, &pairs)
}

/// Collects every event as text.
#[derive(Clone, Default)]
pub(crate) struct Recorder(pub(crate) Arc<Mutex<Vec<String>>>);

impl Recorder {
    pub(crate) fn listener(&self) -> impl Fn(&Event<'_>) + Send + Sync + 'static {
        let seen = Arc::clone(&self.0);
        move |event: &Event<'_>| {
            let text = match event {
                Event::QuotaWait {
                    key,
                    resource,
                    wait,
                } => format!("wait {key} {resource} {}ms", wait.as_millis()),
                Event::QuotaRejected {
                    key,
                    resource,
                    wait,
                } => format!(
                    "rejected {key} {resource} {:?}ms",
                    wait.map(|w| w.as_millis())
                ),
                other => format!("{other:?}"),
            };
            seen.lock().unwrap().push(text);
        }
    }

    pub(crate) fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
