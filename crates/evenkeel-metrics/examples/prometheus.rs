//! Serves `/metrics` in the Prometheus text format while a client calls a
//! simulated rate-limited API through the metrics layer.
//!
//! ```sh
//! cargo run -p evenkeel-metrics --example prometheus -- 200
//! curl -s http://127.0.0.1:9464/metrics | grep -E '^(http|evenkeel)_'
//! ```
//!
//! The argument is how many requests the client makes (default 200); the
//! `/metrics` endpoint keeps serving afterwards until the process is
//! stopped. The recorder comes from metrics-exporter-prometheus's
//! `PrometheusBuilder::build_recorder` with recommended naming (so names
//! export as OpenTelemetry's Prometheus exporter would) and the advised
//! buckets; it is served by a small hyper server, so the exporter needs no
//! network feature of its own.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use evenkeel_core::BoxError;
use evenkeel_metrics::{MetricsLayer, Naming};
use evenkeel_sim::{Dialect, Faults, Sim, SimServer};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};

/// OpenTelemetry's default port for a Prometheus endpoint.
const METRICS_ADDR: &str = "127.0.0.1:9464";

/// A Prometheus recorder with recommended naming (`_total`, unit suffixes)
/// and the advised buckets of every evenkeel histogram.
pub fn recorder() -> PrometheusRecorder {
    let mut builder = PrometheusBuilder::new().with_recommended_naming(true);
    for naming in [Naming::OPEN_TELEMETRY, Naming::SHORT] {
        for (name, buckets) in naming.histogram_buckets() {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                .expect("the advised buckets are not empty");
        }
    }
    builder.build_recorder()
}

/// Serves `GET /metrics` from `handle` on `listener`, one task per
/// connection, until the listener fails.
pub async fn serve_metrics(listener: TcpListener, handle: PrometheusHandle) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let handle = handle.clone();
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let response = if req.uri().path() == "/metrics" {
                Response::builder()
                    .header("content-type", "text/plain; version=0.0.4")
                    .body(Full::new(Bytes::from(handle.render())))
            } else {
                Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Full::new(Bytes::new()))
            };
            async move { Ok::<_, Infallible>(response.expect("a valid response")) }
        });
        tokio::spawn(async move {
            // A client hanging up mid-response is not worth reporting.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A simulated Anthropic-style API on a loopback port: 150 requests per
/// second (bursts of 30), 20 ms answers, a few 529s and 500s.
pub async fn start_sim() -> Result<SimServer, BoxError> {
    let server = Sim::builder()
        .requests(150.0, 30)
        .dialect(Dialect::Anthropic)
        .latency(Duration::from_millis(20))
        .faults(Faults::none().overloaded(0.05).internal_error(0.02))
        .seed(42)
        .build()?
        .serve("127.0.0.1:0".parse()?)
        .await?;
    Ok(server)
}

/// Makes `requests` POSTs to `base`'s `/v1/messages`, 4 at a time (close to
/// the sim's rate, so some get a 429), through a
/// call-scope metrics layer over a hyper-util client. Returns how many got
/// a 200.
pub async fn drive(base: &str, requests: usize) -> Result<usize, BoxError> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let client = ServiceBuilder::new()
        .layer(MetricsLayer::new())
        .service(client);
    let uri: http::Uri = format!("{base}/v1/messages").parse()?;
    let mut tasks = tokio::task::JoinSet::new();
    let mut ok = 0;
    for i in 0..requests {
        if tasks.len() == 4
            && let Some(done) = tasks.join_next().await
        {
            ok += usize::from(done??);
        }
        let mut client = client.clone();
        let request = Request::post(uri.clone())
            .header("content-type", "application/json")
            .header("x-request-id", i.to_string())
            .body(Full::new(Bytes::from_static(br#"{"max_tokens":16}"#)))?;
        tasks.spawn(async move {
            let response = client.ready().await?.call(request).await?;
            Ok::<_, BoxError>(response.status() == StatusCode::OK)
        });
    }
    while let Some(done) = tasks.join_next().await {
        ok += usize::from(done??);
    }
    Ok(ok)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let requests = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200,
    };
    let recorder = recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    evenkeel_metrics::describe();

    let addr: SocketAddr = METRICS_ADDR.parse()?;
    let listener = TcpListener::bind(addr).await?;
    println!("serving http://{addr}/metrics");
    let server = tokio::spawn(serve_metrics(listener, handle));

    let sim = start_sim().await?;
    let ok = drive(&sim.url(), requests).await?;
    println!("{ok} of {requests} requests answered 200; still serving /metrics (Ctrl-C to stop)");
    server.await??;
    Ok(())
}
