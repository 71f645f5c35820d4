//! Immediate failover of the failed request: when, where, and never twice.

mod common;

use std::io::ErrorKind;
use std::time::Duration;

use common::*;
use evenkeel_core::ext::{Attempt, Deadline};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_refused_connection_moves_the_request_at_once() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(Answer::Io(ErrorKind::ConnectionRefused));
    let recorder = Recorder::default();
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .on_event(recorder.listener())
        .build()
        .unwrap();

    let start = Instant::now();
    let res = send(&mut lb, post("p1", r#"{"max_tokens":64}"#))
        .await
        .unwrap();
    assert_eq!(served_by(&res), "backup");
    assert_eq!(Instant::now(), start, "no backoff before a failover");

    // Never sent, so even a POST moves, with its body intact.
    let seen = backup.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, r#"{"max_tokens":64}"#);
    assert_eq!(seen[0].method, http::Method::POST);
    assert_eq!(seen[0].attempt, 2);
    assert_eq!(primary.seen()[0].attempt, 1);
    assert_eq!(lb.handle().failovers(), 1);
    assert!(
        recorder
            .events()
            .contains(&"failover primary -> backup connection_refused".to_owned()),
        "{:?}",
        recorder.events()
    );
}

#[tokio::test(start_paused = true)]
async fn a_post_that_may_have_been_processed_is_not_replayed() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(Answer::Io(ErrorKind::ConnectionReset));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();

    let err = send(&mut lb, post("p1", "{}")).await.unwrap_err();
    assert!(err.to_string().contains("scripted"), "{err}");
    assert_eq!(backup.hits(), 0);

    // The same failure on a GET, or on a POST with an idempotency key, moves.
    let res = send(&mut lb, get("g1")).await.unwrap();
    assert_eq!(served_by(&res), "backup");
    let mut keyed = post("p2", "{}");
    keyed
        .headers_mut()
        .insert("idempotency-key", "k-2".parse().unwrap());
    let res = send(&mut lb, keyed).await.unwrap();
    assert_eq!(served_by(&res), "backup");
    assert_eq!(backup.ids(), ["g1", "p2"]);
}

#[tokio::test(start_paused = true)]
async fn a_server_error_moves_only_idempotent_requests() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(status(500));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    let res = send(&mut lb, post("p1", "{}")).await.unwrap();
    assert_eq!(res.status(), 500, "the POST may have been processed");
    assert_eq!(served_by(&res), "primary");
    let res = send(&mut lb, get("g1")).await.unwrap();
    assert_eq!(served_by(&res), "backup");
}

#[tokio::test(start_paused = true)]
async fn no_endpoint_is_tried_twice() {
    let a = Upstream::new("a");
    let b = Upstream::new("b");
    let c = Upstream::new("c");
    for u in [&a, &b, &c] {
        u.answer(Answer::Io(ErrorKind::ConnectionRefused));
    }
    let mut lb = balancer([a.endpoint(), b.endpoint(), c.endpoint().tier(1)])
        .build()
        .unwrap();
    let err = send(&mut lb, get("g1")).await.unwrap_err();
    assert!(err.to_string().contains("scripted"));
    assert_eq!((a.hits(), b.hits(), c.hits()), (1, 1, 1));
    // Tier order is kept: both tier-0 endpoints before the backup.
    let c_at = c.seen()[0].attempt;
    assert_eq!(c_at, 3);
}

#[tokio::test(start_paused = true)]
async fn max_attempts_bounds_the_endpoints_tried() {
    let a = Upstream::new("a");
    let b = Upstream::new("b");
    let c = Upstream::new("c");
    for u in [&a, &b, &c] {
        u.answer(status(503));
    }
    let mut lb = balancer([a.endpoint(), b.endpoint().tier(1), c.endpoint().tier(2)])
        .max_attempts(2)
        .build()
        .unwrap();
    let res = send(&mut lb, get("g1")).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!((a.hits(), b.hits(), c.hits()), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_passed_deadline_stops_failover() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(Answer::Io(ErrorKind::ConnectionRefused));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    let mut request = get("g1");
    request.extensions_mut().insert(Deadline(Instant::now()));
    assert!(send(&mut lb, request).await.is_err());
    assert_eq!(backup.hits(), 0);

    let mut request = get("g2");
    request
        .extensions_mut()
        .insert(Deadline(Instant::now() + Duration::from_secs(5)));
    assert!(send(&mut lb, request).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn attempts_continue_the_callers_count() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(Answer::Io(ErrorKind::ConnectionRefused));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    let mut request = get("g1");
    request.extensions_mut().insert(Attempt(3));
    send(&mut lb, request).await.unwrap();
    assert_eq!(primary.seen()[0].attempt, 3);
    assert_eq!(backup.seen()[0].attempt, 4);
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_replay_cap_is_sent_once() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(Answer::Io(ErrorKind::ConnectionRefused));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .connect_failures(0)
        .replay_cap(4)
        .build()
        .unwrap();
    assert!(
        send(&mut lb, post("big", "more than four bytes"))
            .await
            .is_err()
    );
    assert_eq!(backup.hits(), 0);
    let res = send(&mut lb, post("small", "tiny")).await.unwrap();
    assert_eq!(served_by(&res), "backup");
    assert_eq!(backup.seen()[0].body, "tiny");
}

#[tokio::test(start_paused = true)]
async fn a_429_moves_when_another_endpoint_is_available() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(with_header(429, "retry-after", "30"));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    // A 429 was not processed: a POST moves too.
    let res = send(&mut lb, post("p1", "{}")).await.unwrap();
    assert_eq!(served_by(&res), "backup");

    // With nowhere to go, the 429 goes back to the caller, Retry-After and
    // all, for the retry layer above to honour.
    let only = Upstream::new("only");
    only.answer(with_header(429, "retry-after", "30"));
    let mut lb = balancer([only.endpoint()]).build().unwrap();
    let res = send(&mut lb, post("p2", "{}")).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "30");
}

#[tokio::test(start_paused = true)]
async fn a_hopeless_429_is_not_moved() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(with_header(429, "x-should-retry", "false"));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    let res = send(&mut lb, get("g1")).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(backup.hits(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failover_waits_for_the_next_endpoint_to_be_ready() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(Answer::Io(ErrorKind::ConnectionRefused));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    backup.set_ready(false);
    let mut call = tokio_test::task::spawn(send(&mut lb, get("g1")));
    tokio_test::assert_pending!(call.poll());
    assert_eq!(primary.hits(), 1);
    assert_eq!(backup.hits(), 0);
    backup.set_ready(true);
    assert!(call.is_woken());
    let res = tokio_test::assert_ready_ok!(call.poll());
    assert_eq!(served_by(&res), "backup");
    drop(call);
    assert_eq!(backup.calls_unready(), 0);
}

#[tokio::test(start_paused = true)]
async fn below_a_resending_layer_the_kept_body_is_shared_not_kept_again() {
    use bytes::Bytes;
    use evenkeel_core::body::Replay;
    use futures_util::stream;
    use http::Request;
    use http_body::Frame;
    use http_body_util::StreamBody;
    use tower::ServiceExt;

    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(Answer::Io(ErrorKind::ConnectionRefused));
    let lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap()
        .reuse_bodies();
    // A streamed body, kept the way the retry layer keeps it: the
    // balancer receives that layer's `ReplayBody` and sends it on as it is.
    let chunks = stream::iter(
        ["{\"max_", "tokens\":64}"].map(|c| Ok::<_, std::io::Error>(Frame::data(Bytes::from(c)))),
    );
    let mut replay = Replay::new(StreamBody::new(chunks), 1024);
    let body = replay.body().unwrap();
    let request = Request::post("/v1/messages")
        .header("x-request-id", "p1")
        .body(body)
        .unwrap();
    let res = lb.clone().oneshot(request).await.unwrap();
    assert_eq!(served_by(&res), "backup");
    assert_eq!(backup.seen()[0].body, r#"{"max_tokens":64}"#);
    // The layer above can still send it again: the source is shared.
    let again = replay.body().expect("still replayable");
    let bytes = http_body_util::BodyExt::collect(again)
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&bytes[..], br#"{"max_tokens":64}"#);
}
