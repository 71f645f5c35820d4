//! `classify_error` on real hyper and hyper-util errors, told apart by
//! their types (the `hyper` feature).
#![cfg(feature = "hyper")]

use std::io;

use bytes::Bytes;
use evenkeel_core::resend::may_resend;
use evenkeel_core::{FailureKind, Outcome, Sent, classify_error};
use http::{HeaderMap, Method, Request};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

fn failure(err: &(dyn std::error::Error + 'static)) -> (FailureKind, Sent) {
    match classify_error(err) {
        Outcome::Failed(f) => (f.kind, f.sent),
        other => panic!("{other:?}"),
    }
}

fn post_may_resend(err: &(dyn std::error::Error + 'static)) -> bool {
    may_resend(&classify_error(err), &Method::POST, &HeaderMap::new())
}

fn post(uri: &str) -> Request<Full<Bytes>> {
    Request::post(uri)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

/// A request hyper drops before writing it (its connection went away while
/// it waited) was never sent: a POST may be resent.
#[tokio::test]
async fn a_canceled_request_was_never_sent() {
    let (client_io, _server_io) = tokio::io::duplex(1024);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(client_io))
        .await
        .unwrap();
    drop(connection);
    let err = sender
        .send_request(post("http://127.0.0.1/"))
        .await
        .unwrap_err();
    assert!(err.is_canceled(), "{err:?}");
    assert_eq!(failure(&err), (FailureKind::Refused, Sent::Never));
    assert!(post_may_resend(&err));
}

/// A connection closed after the request was written and before any answer
/// may have processed it: a POST is not resent.
#[tokio::test]
async fn a_connection_closed_after_the_request_may_have_processed_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        // Read the request, then close without a word.
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
    });
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let err = client
        .request(post(&format!("http://{addr}/")))
        .await
        .unwrap_err();
    assert_eq!(failure(&err), (FailureKind::ConnectionReset, Sent::Maybe));
    assert!(!post_may_resend(&err));
}

/// hyper-util's connect error is a connect failure, whatever its source
/// says: never sent.
#[tokio::test]
async fn a_connect_error_was_never_sent() {
    let connector = tower::service_fn(|_: http::Uri| {
        std::future::ready(Err::<TokioIo<TcpStream>, _>(io::Error::other(
            "the proxy said no",
        )))
    });
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let err = client
        .request(post("http://127.0.0.1:9/"))
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(failure(&err), (FailureKind::Connect, Sent::Never));
    assert!(post_may_resend(&err));
}
