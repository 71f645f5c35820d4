//! The limiter over real HTTP on loopback: an axum server shedding load in
//! respond mode, a hyper-util client capped by the server's advertised
//! concurrency, and the trait bounds frameworks need.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::BoxError;
use evenkeel_limit::{Aimd, Gradient, Limit, LimitLayer, Respond};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::{Layer, Service, ServiceExt};

async fn serve(app: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

#[tokio::test]
async fn axum_server_answers_503_with_retry_after_beyond_its_limit() {
    let gate = Arc::new(Notify::new());
    let entered = Arc::new(Notify::new());
    let limit = LimitLayer::fixed(1)
        .reject_immediately()
        .respond(Respond::http().retry_after(Some(Duration::from_secs(2))))
        .build()
        .unwrap();
    let handle = limit.handle();
    let app = {
        let (gate, entered) = (gate.clone(), entered.clone());
        axum::Router::new()
            .route(
                "/slow",
                axum::routing::get(move || {
                    let (gate, entered) = (gate.clone(), entered.clone());
                    async move {
                        entered.notify_one();
                        gate.notified().await;
                        "done"
                    }
                }),
            )
            .layer(limit)
    };
    let base = serve(app).await;
    let client = client();
    let uri: http::Uri = format!("{base}/slow").parse().unwrap();

    let first = tokio::spawn(client.get(uri.clone()));
    entered.notified().await;
    assert_eq!(handle.in_flight(), 1);
    let rejected = client.get(uri.clone()).await.unwrap();
    assert_eq!(rejected.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(rejected.headers()["retry-after"], "2");
    assert_eq!(handle.rejected(), 1);
    // The client's own classifier reads it as the server overloaded, with a wait.
    let outcome = evenkeel_core::classify_status(rejected.status(), rejected.headers());
    assert!(outcome.is_pushback());
    assert_eq!(outcome.server_wait(), Some(Duration::from_secs(2)));

    gate.notify_one();
    let ok = first.await.unwrap().unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.into_body().collect().await.unwrap().to_bytes(), "done");
}

#[tokio::test]
async fn hyper_client_limit_is_capped_by_the_advertised_concurrency() {
    let app = axum::Router::new().route(
        "/v1/messages",
        axum::routing::get(|| async {
            (
                [("ratelimit-policy", r#""conc";q=3;qu="concurrent-requests""#)],
                "ok",
            )
        }),
    );
    let base = serve(app).await;
    let limit = LimitLayer::adaptive(Gradient::default())
        .name("loopback")
        .build()
        .unwrap();
    let handle = limit.handle();
    assert_eq!(handle.limit(), 4);
    let mut svc = limit.layer(client());
    let request = Request::get(format!("{base}/v1/messages"))
        .body(Empty::new())
        .unwrap();
    let response = svc.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(handle.server_ceiling(), Some(3));
    assert_eq!(handle.limit(), 3);
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test]
async fn connection_refused_is_not_a_drop() {
    // Nothing listens here: the error never reached a server, so AIMD's
    // limit stays where it was.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let aimd = Aimd::builder()
        .initial_limit(10)
        .min_limit(1)
        .build()
        .unwrap();
    let limit = LimitLayer::adaptive(aimd).build().unwrap();
    let handle = limit.handle();
    let mut svc = limit.layer(client());
    for _ in 0..5 {
        let request = Request::get(format!("http://{addr}/"))
            .body(Empty::new())
            .unwrap();
        let err: BoxError = svc.ready().await.unwrap().call(request).await.unwrap_err();
        assert!(evenkeel_core::classify_error(&*err).never_sent(), "{err}");
    }
    assert_eq!((handle.limit(), handle.in_flight()), (10, 0));
}

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

#[test]
fn frameworks_get_the_bounds_they_need() {
    type HyperClient = Client<HttpConnector, Empty<Bytes>>;
    assert_send_sync_clone::<LimitLayer>();
    assert_send_sync_clone::<LimitLayer<Gradient>>();
    assert_send_sync_clone::<Limit<HyperClient, Gradient>>();
    assert_send_sync_clone::<
        Limit<axum::routing::Route, evenkeel_limit::Fixed, evenkeel_core::HttpClassifier, Respond>,
    >();
    assert_send_sync_clone::<evenkeel_limit::LimitHandle>();

    fn future_is_send<S, R>(_: &S)
    where
        S: Service<R>,
        S::Future: Send,
    {
    }
    let svc = LimitLayer::adaptive(Gradient::default())
        .build()
        .unwrap()
        .layer(client());
    future_is_send::<_, Request<Empty<Bytes>>>(&svc);

    // Respond mode keeps the inner error type.
    let inner = tower::service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(String::new()))
    });
    let limited = LimitLayer::fixed(1)
        .respond(Respond::grpc())
        .build()
        .unwrap()
        .layer(inner);
    fn error_is_infallible<S: Service<Request<()>, Error = Infallible>>(_: &S) {}
    error_is_infallible(&limited);
}
