//! Prometheus metrics of the running stack: served on `--metrics ADDR`, or
//! written to `--metrics-out FILE` when a run ends.

use std::convert::Infallible;
use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
use crate::cause::Cause;
use crate::report::Report;

/// Installs a Prometheus recorder, with the stack's bucket advice, as the
/// global one.
fn install() -> Result<PrometheusHandle, Failure> {
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
    describe_run();
    Ok(handle)
}

/// Installs a Prometheus recorder as the global one and serves
/// `http://ADDR/metrics` until the process ends.
pub(crate) async fn serve(addr: SocketAddr) -> Result<(), Failure> {
    let handle = install()?;
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

/// `--metrics-out FILE`: the file, opened when the run starts, and the
/// recorder whose exposition it receives when the run ends.
#[derive(Debug)]
pub(crate) struct MetricsFile {
    path: PathBuf,
    file: File,
    handle: PrometheusHandle,
}

impl MetricsFile {
    /// Creates (or truncates) `path` and installs the recorder.
    pub(crate) fn create(path: &Path) -> Result<MetricsFile, Failure> {
        let file = File::create(path).map_err(|e| {
            Failure::Usage(format!(
                "--metrics-out {}: cannot create: {e}",
                path.display()
            ))
        })?;
        Ok(MetricsFile {
            path: path.to_owned(),
            file,
            handle: install()?,
        })
    }

    /// Writes the Prometheus text exposition of everything recorded.
    pub(crate) fn write(mut self) -> Result<(), Failure> {
        let text = self.handle.render();
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| {
                Failure::Run(format!(
                    "--metrics-out {}: cannot write: {e}",
                    self.path.display()
                ))
            })
    }
}

const LOAD_REQUESTS: &str = "evenkeel.load.requests";
const LOAD_FAILURES: &str = "evenkeel.load.failures";
const LOAD_ATTEMPTS: &str = "evenkeel.load.attempts";
const LOAD_RETRIES: &str = "evenkeel.load.retries";

fn describe_run() {
    metrics::describe_counter!(
        LOAD_REQUESTS,
        "Logical requests of the load run, by stack and result (succeeded, failed)."
    );
    metrics::describe_counter!(
        LOAD_FAILURES,
        "Failed requests of the load run, by stack and cause (rate_limited, server_error, reset, timeout, local, other)."
    );
    metrics::describe_counter!(
        LOAD_ATTEMPTS,
        "Attempts the load run put on the wire, retries and failovers included."
    );
    metrics::describe_counter!(
        LOAD_RETRIES,
        "Attempts after the first of each request, failovers included."
    );
}

/// Records the run's totals, so the exposition says what the run did even
/// for a stack that records nothing itself (the bare client).
pub(crate) fn record_run(report: &Report) {
    let stack = report.stack;
    for (result, n) in [("succeeded", report.succeeded), ("failed", report.failed)] {
        metrics::counter!(LOAD_REQUESTS, "stack" => stack, "result" => result).increment(n);
    }
    for cause in Cause::ALL {
        metrics::counter!(LOAD_FAILURES, "stack" => stack, "cause" => cause.key())
            .increment(report.failures.get(cause));
    }
    metrics::counter!(LOAD_ATTEMPTS, "stack" => stack).increment(report.attempts);
    metrics::counter!(LOAD_RETRIES, "stack" => stack).increment(report.retries);
}
