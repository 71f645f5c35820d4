//! `--metrics ADDR`: Prometheus metrics of the running stack.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use evenkeel::metrics::Naming;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::Failure;

/// Installs a Prometheus recorder as the global one and serves
/// `http://ADDR/metrics` until the process ends.
pub(crate) async fn serve(addr: SocketAddr) -> Result<(), Failure> {
    let mut builder = PrometheusBuilder::new().with_recommended_naming(true);
    for (name, buckets) in Naming::OPEN_TELEMETRY.histogram_buckets() {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            .map_err(|e| Failure::Run(format!("metrics buckets: {e}")))?;
    }
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| Failure::Run(format!("cannot install the metrics recorder: {e}")))?;
    evenkeel::metrics::describe();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Usage(format!("--metrics {addr}: cannot listen: {e}")))?;
    eprintln!("serving Prometheus metrics on http://{addr}/metrics");
    tokio::spawn(accept(listener, handle));
    Ok(())
}

async fn accept(listener: TcpListener, handle: PrometheusHandle) {
    while let Ok((stream, _)) = listener.accept().await {
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
            // A scraper hanging up mid-response is not worth reporting.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
