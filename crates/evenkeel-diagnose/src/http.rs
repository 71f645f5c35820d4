//! The HTTP layer: one request over the connection the layers below
//! checked, and what the answer says about rate limits.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http::{HeaderValue, Request, Uri, Version};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use evenkeel_headers::{Pushback, rate_limits, retry_after_with_source, should_retry};

use crate::fmt::{ms, printable, wait};
use crate::options::Inner;
use crate::report::{Cause, Finding, HttpReport, Status};
use crate::target::Target;

/// The most body bytes read from a response; the rest is not downloaded.
pub const BODY_LIMIT: usize = 64 * 1024;
/// The most body bytes kept as the excerpt.
const EXCERPT_BYTES: usize = 400;
/// The largest response head accepted over HTTP/1.1.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The largest header list accepted over HTTP/2.
const MAX_HEADER_LIST: u32 = 64 * 1024;

/// Aborts the connection task when dropped.
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends the request over `io` (HTTP/2 when `h2`) and reads the answer.
pub(crate) async fn check<IO>(inner: &Inner, target: &Target, io: IO, h2: bool) -> HttpReport
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut report = HttpReport {
        request: format!("{} {}", inner.method, target.path_and_query),
        ..HttpReport::default()
    };
    let limit = inner.timeout;
    let request = match build_request(inner, target, h2) {
        Ok(r) => r,
        Err(e) => {
            return failed(
                report,
                Cause::HttpError,
                format!("cannot build the request: {e}"),
                "check the URL and headers",
            );
        }
    };

    let io = TokioIo::new(io);
    let sent = match timeout(limit, Sender::handshake(io, h2)).await {
        Err(_) => Err(Outcome::Timeout),
        Ok(Err(e)) => Err(Outcome::Error(e)),
        Ok(Ok((mut sender, _driver))) => {
            let started = evenkeel_core::clock::now();
            match timeout(limit, sender.send(request)).await {
                Err(_) => Err(Outcome::Timeout),
                Ok(Err(e)) => Err(Outcome::Error(e)),
                Ok(Ok(response)) => {
                    let latency = started.elapsed();
                    read(&mut report, response, latency, limit, inner).await;
                    Ok(())
                }
            }
        }
    };

    match sent {
        Ok(()) => {
            let (status, finding) = judge(&report);
            report.status = status;
            report.finding = finding;
            report
        }
        Err(Outcome::Timeout) => failed(
            report,
            Cause::HttpTimeout,
            format!("no answer within {}", ms(limit)),
            "the server accepted the connection but did not answer: it may be overloaded, or a proxy holds the request; retry later or raise --timeout-ms",
        ),
        Err(Outcome::Error(e)) => {
            let detail = error_chain(&e);
            failed(
                report,
                Cause::HttpError,
                format!("the HTTP exchange failed: {detail}"),
                "the connection was closed or the answer was malformed (oversized headers?): a proxy or load balancer may be cutting it; compare with curl -v",
            )
        }
    }
}

/// One connection's request sender, either protocol.
enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    /// Handshakes and spawns the connection task, aborted when the returned
    /// [`Driver`] drops.
    async fn handshake<IO>(io: TokioIo<IO>, h2: bool) -> Result<(Self, Driver), hyper::Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .max_header_list_size(MAX_HEADER_LIST)
                .handshake(io)
                .await?;
            let driver = Driver(tokio::spawn(async move {
                let _ = conn.await;
            }));
            Ok((Self::H2(sender), driver))
        } else {
            let (sender, conn) = http1::Builder::new()
                .max_buf_size(MAX_HEAD_BYTES)
                .handshake(io)
                .await?;
            let driver = Driver(tokio::spawn(async move {
                let _ = conn.await;
            }));
            Ok((Self::H1(sender), driver))
        }
    }

    async fn send(
        &mut self,
        request: Request<Empty<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper::Error> {
        match self {
            Self::H1(sender) => sender.send_request(request).await,
            Self::H2(sender) => sender.send_request(request).await,
        }
    }
}

enum Outcome {
    Timeout,
    Error(hyper::Error),
}

fn failed(
    mut report: HttpReport,
    cause: Cause,
    summary: impl Into<String>,
    fix: impl Into<String>,
) -> HttpReport {
    report.status = Status::Fail;
    report.finding = Some(Finding::new(cause, summary, fix));
    report
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    let mut depth = 0;
    while let Some(s) = source {
        if depth >= 4 {
            break;
        }
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
        depth += 1;
    }
    text
}

fn build_request(
    inner: &Inner,
    target: &Target,
    h2: bool,
) -> Result<Request<Empty<Bytes>>, http::Error> {
    let uri: Uri = if h2 {
        let scheme = if target.https { "https" } else { "http" };
        format!("{scheme}://{}{}", target.authority, target.path_and_query).parse()?
    } else {
        target.path_and_query.parse()?
    };
    let mut request = Request::builder()
        .method(inner.method.clone())
        .uri(uri)
        .version(if h2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        })
        .body(Empty::new())?;
    let headers = request.headers_mut();
    for (name, value) in &inner.headers {
        headers.append(name.clone(), value.clone());
    }
    if !h2 && !headers.contains_key(HOST) {
        headers.insert(
            HOST,
            HeaderValue::from_str(&target.authority).map_err(http::Error::from)?,
        );
    }
    if !headers.contains_key(USER_AGENT) {
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("evenkeel-diagnose/", env!("CARGO_PKG_VERSION"))),
        );
    }
    Ok(request)
}

async fn read(
    report: &mut HttpReport,
    response: http::Response<hyper::body::Incoming>,
    latency: Duration,
    limit: Duration,
    inner: &Inner,
) {
    report.latency = Some(latency);
    report.status_code = Some(response.status().as_u16());
    report.version = Some(
        match response.version() {
            Version::HTTP_2 => "HTTP/2",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_3 => "HTTP/3",
            _ => "HTTP/1.1",
        }
        .to_owned(),
    );
    let now = evenkeel_core::clock::system_now();
    let headers = response.headers();
    report.rate_limits = rate_limits(headers, now);
    if let Some((pushback, source)) = retry_after_with_source(headers, now) {
        report.retry_after_header = Some(source.header_name());
        report.retry_after = match pushback {
            Pushback::After(d) => Some(d),
            _ => None,
        };
    }
    report.should_retry = should_retry(headers);
    report.location = headers
        .get(http::header::LOCATION)
        .map(|v| printable(v.as_bytes(), 300));

    if inner.method == http::Method::HEAD {
        return;
    }
    let mut body = response.into_body();
    let mut excerpt: Vec<u8> = Vec::new();
    let deadline = evenkeel_core::clock::now() + limit;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            let room = EXCERPT_BYTES.saturating_sub(excerpt.len());
            excerpt.extend_from_slice(&data[..data.len().min(room)]);
            report.body_bytes = report.body_bytes.saturating_add(data.len() as u64);
            if report.body_bytes > BODY_LIMIT as u64 {
                report.body_truncated = true;
                break;
            }
        }
    }
    if !excerpt.is_empty() {
        report.body_excerpt = Some(printable(&excerpt, 200));
    }
}

/// The finding an answer deserves.
fn judge(report: &HttpReport) -> (Status, Option<Finding>) {
    let Some(code) = report.status_code else {
        return (Status::Fail, None);
    };
    let wait_for = server_wait(report);
    let wait_text = wait_for.map(wait);
    let quota_text = exhausted_quotas(report);
    match code {
        429 => {
            let mut summary = "rate limited: 429 Too Many Requests".to_owned();
            if let (Some(w), Some(h)) = (&wait_text, report.retry_after_header) {
                summary.push_str(&format!(", {h} {w}"));
            }
            if let Some(q) = &quota_text {
                summary.push_str(&format!("; {q}"));
            }
            let fix = match (&wait_text, report.should_retry) {
                (_, Some(false)) => "the server says not to retry (x-should-retry: false): the quota or credit is spent for good; check the plan and billing".to_owned(),
                (Some(w), _) => format!("wait {w} before the next request; lower the request rate, or pace requests with the quota headers (evenkeel-quota)"),
                (None, _) => "back off and retry later; lower the request rate, or pace requests with the quota headers (evenkeel-quota)".to_owned(),
            };
            (
                Status::Fail,
                Some(Finding::new(Cause::HttpRateLimited, summary, fix)),
            )
        }
        503 | 529 => {
            let mut summary = format!("the API is overloaded: {code}");
            if let Some(w) = &wait_text {
                summary.push_str(&format!(", retry in {w}"));
            }
            let fix = match &wait_text {
                Some(w) => format!("not your quota: wait {w} and retry with backoff"),
                None => "not your quota: retry with exponential backoff and jitter".to_owned(),
            };
            (
                Status::Fail,
                Some(Finding::new(Cause::HttpOverloaded, summary, fix)),
            )
        }
        500..=599 => (
            Status::Fail,
            Some(Finding::new(
                Cause::HttpServerError,
                format!("the server failed: {code}"),
                "a server-side error: retry with backoff; if it persists, check the API's status page",
            )),
        ),
        401 | 403 => (
            Status::Fail,
            Some(Finding::new(
                Cause::HttpAuth,
                format!("the credentials were refused: {code}"),
                "check the API key header (--header 'x-api-key: …' or 'Authorization: Bearer …'), its value and its permissions",
            )),
        ),
        400..=499 => (
            Status::Warn,
            Some(Finding::new(
                Cause::HttpClientError,
                format!("the server answered {code}: the network path works, the request does not"),
                "check the URL's path, the method and the headers the API expects",
            )),
        ),
        _ => match &quota_text {
            Some(q) => (
                Status::Warn,
                Some(Finding::new(
                    Cause::HttpQuotaExhausted,
                    q.clone(),
                    match &wait_text {
                        Some(w) => format!("the next request will be limited: wait {w}"),
                        None => "the next request will be limited: slow down".to_owned(),
                    },
                )),
            ),
            None => (Status::Pass, None),
        },
    }
}

/// How long the server asked to wait: `Retry-After`, else the latest reset
/// of a spent quota.
pub(crate) fn server_wait(report: &HttpReport) -> Option<Duration> {
    report.retry_after.or_else(|| {
        report
            .rate_limits
            .iter()
            .filter(|q| q.is_exhausted())
            .filter_map(|q| q.reset_after)
            .max()
    })
}

fn exhausted_quotas(report: &HttpReport) -> Option<String> {
    let spent: Vec<String> = report
        .rate_limits
        .iter()
        .filter(|q| q.is_exhausted())
        .map(|q| {
            let mut s = format!("{} quota spent", q.resource);
            if let Some(limit) = q.limit {
                s.push_str(&format!(" (0 of {limit} left"));
                if let Some(reset) = q.reset_after {
                    s.push_str(&format!(", back in {}", wait(reset)));
                }
                s.push(')');
            } else if let Some(reset) = q.reset_after {
                s.push_str(&format!(" (back in {})", wait(reset)));
            }
            s
        })
        .collect();
    (!spent.is_empty()).then(|| spent.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use evenkeel_headers::{Quota, Resource};

    fn report(code: u16) -> HttpReport {
        HttpReport {
            status_code: Some(code),
            ..HttpReport::default()
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(judge(&report(200)), (Status::Pass, None));
        assert_eq!(judge(&report(301)), (Status::Pass, None));
        assert_eq!(judge(&report(404)).0, Status::Warn);
        assert_eq!(judge(&report(401)).1.unwrap().cause, Cause::HttpAuth);
        assert_eq!(judge(&report(403)).1.unwrap().cause, Cause::HttpAuth);
        assert_eq!(judge(&report(500)).1.unwrap().cause, Cause::HttpServerError);
        assert_eq!(judge(&report(529)).1.unwrap().cause, Cause::HttpOverloaded);
        assert_eq!(judge(&report(503)).1.unwrap().cause, Cause::HttpOverloaded);
        assert_eq!(judge(&report(429)).1.unwrap().cause, Cause::HttpRateLimited);
    }

    #[test]
    fn rate_limited_says_how_long_to_wait() {
        let mut r = report(429);
        r.retry_after = Some(Duration::from_secs(15));
        r.retry_after_header = Some("retry-after");
        r.rate_limits = [Quota::new(Resource::Requests)
            .with_limit(50)
            .with_remaining(0)
            .with_reset_after(Duration::from_secs(20))]
        .into_iter()
        .collect();
        let (status, finding) = judge(&r);
        let finding = finding.unwrap();
        assert_eq!(status, Status::Fail);
        assert!(
            finding.summary.contains("retry-after 15 s"),
            "{}",
            finding.summary
        );
        assert!(
            finding
                .summary
                .contains("requests quota spent (0 of 50 left, back in 20 s)"),
            "{}",
            finding.summary
        );
        assert!(finding.fix.starts_with("wait 15 s"), "{}", finding.fix);

        r.should_retry = Some(false);
        assert!(judge(&r).1.unwrap().fix.contains("not to retry"));
    }

    #[test]
    fn a_spent_quota_on_success_warns_with_the_reset() {
        let mut r = report(200);
        r.rate_limits = [Quota::new(Resource::Tokens)
            .with_remaining(0)
            .with_reset_after(Duration::from_millis(2500))]
        .into_iter()
        .collect();
        let (status, finding) = judge(&r);
        let finding = finding.unwrap();
        assert_eq!(
            (status, finding.cause),
            (Status::Warn, Cause::HttpQuotaExhausted)
        );
        assert!(finding.fix.contains("wait 3 s"), "{}", finding.fix);
    }
}
