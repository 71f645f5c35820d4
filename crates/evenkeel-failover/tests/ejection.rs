//! Passive health: outlier ejection, its length, and failing open.

mod common;

use std::time::Duration;

use common::*;
use evenkeel_failover::EndpointState;
use tokio::time::{Instant, sleep};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test(start_paused = true)]
async fn five_failures_in_a_row_eject_for_the_base_time() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(status(500));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .no_success_rate()
        .build()
        .unwrap();
    let handle = lb.handle();

    // Every GET fails over to the backup, so every caller succeeds.
    let who = serve_n(&mut lb, 10).await;
    assert!(who.iter().all(|w| w == "backup"), "{who:?}");
    // The fifth failure ejected the primary: nothing more was sent to it.
    assert_eq!(primary.hits(), 5);
    let status = handle.endpoint("primary").unwrap();
    assert_eq!(status.state, EndpointState::Ejected);
    assert_eq!(status.ejected_until, Some(Instant::now() + secs(30)));
    assert_eq!(status.times_ejected, 1);
    assert_eq!(handle.ejections(), 1);

    sleep(secs(29)).await;
    serve_n(&mut lb, 3).await;
    assert_eq!(primary.hits(), 5, "still ejected at 29 s");

    primary.answer(ok());
    sleep(secs(1)).await;
    let who = serve_n(&mut lb, 3).await;
    assert!(who.iter().all(|w| w == "primary"), "{who:?}");
    assert_eq!(
        handle.endpoint("primary").unwrap().state,
        EndpointState::Healthy
    );
    assert_eq!(primary.calls_unready() + backup.calls_unready(), 0);
}

#[tokio::test(start_paused = true)]
async fn each_ejection_is_longer_up_to_the_cap() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(status(502));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .no_success_rate()
        .ejection(secs(30), secs(100))
        .build()
        .unwrap();
    let handle = lb.handle();

    for (round, expected) in [(1, 30), (2, 60), (3, 90), (4, 100), (5, 100)] {
        let before = primary.hits();
        serve_n(&mut lb, 8).await;
        assert_eq!(primary.hits() - before, 5, "round {round}");
        let status = handle.endpoint("primary").unwrap();
        assert_eq!(status.times_ejected, round);
        assert_eq!(
            status.ejected_until,
            Some(Instant::now() + secs(expected)),
            "round {round}"
        );
        sleep(secs(expected)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn time_spent_healthy_forgives_earlier_ejections() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(status(503));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    let handle = lb.handle();
    serve_n(&mut lb, 5).await;
    sleep(secs(30)).await;
    serve_n(&mut lb, 5).await;
    assert_eq!(handle.endpoint("primary").unwrap().times_ejected, 2);
    sleep(secs(60)).await;

    // Healthy for two base periods: both earlier ejections are forgiven.
    primary.answer(ok());
    serve_n(&mut lb, 5).await;
    sleep(secs(60)).await;
    primary.answer(status(503));
    serve_n(&mut lb, 5).await;
    let status = handle.endpoint("primary").unwrap();
    assert_eq!(status.times_ejected, 1);
    assert_eq!(status.ejected_until, Some(Instant::now() + secs(30)));
}

#[tokio::test(start_paused = true)]
async fn jitter_lengthens_ejections_by_at_most_its_share() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(status(500));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .ejection_jitter(0.5)
        .build()
        .unwrap();
    serve_n(&mut lb, 5).await;
    let until = lb
        .handle()
        .endpoint("primary")
        .unwrap()
        .ejected_until
        .unwrap();
    let length = until - Instant::now();
    assert!(length >= secs(30) && length <= secs(45), "{length:?}");
}

#[tokio::test(start_paused = true)]
async fn rate_limits_and_client_errors_are_not_failures() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    let handle = lb.handle();

    primary.answer(status(429));
    for i in 0..30 {
        // A bare 429 (no wait) moves the request to the backup...
        let res = send(&mut lb, get(&format!("a{i}"))).await.unwrap();
        assert_eq!(served_by(&res), "backup");
    }
    primary.answer(status(404));
    for i in 0..30 {
        let res = send(&mut lb, get(&format!("b{i}"))).await.unwrap();
        assert_eq!(res.status(), 404, "client errors go back to the caller");
    }
    // ...but neither counts against the primary.
    assert_eq!(primary.hits(), 60);
    assert_eq!(handle.ejections(), 0);
    let status = handle.endpoint("primary").unwrap();
    assert_eq!(status.state, EndpointState::Healthy);
    assert_eq!(status.consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn an_answer_breaks_a_run_of_failures() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .no_success_rate()
        .build()
        .unwrap();
    for _ in 0..5 {
        primary.answer(status(502));
        serve_n(&mut lb, 4).await;
        primary.answer(status(429));
        serve_n(&mut lb, 1).await;
    }
    assert_eq!(lb.handle().ejections(), 0);
    assert_eq!(primary.hits(), 25);
}

#[tokio::test(start_paused = true)]
async fn local_rejections_say_nothing_about_the_endpoint() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(Answer::LocalOverload);
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    // A local limiter's rejection was never sent: the request spills to
    // the backup, even a POST, and the primary is not held responsible.
    for i in 0..20 {
        let res = send(&mut lb, post(&format!("p{i}"), "{}")).await.unwrap();
        assert_eq!(served_by(&res), "backup");
    }
    assert_eq!(primary.hits(), 20);
    let status = lb.handle().endpoint("primary").unwrap();
    assert_eq!(status.consecutive_failures, 0);
    assert_eq!(status.state, EndpointState::Healthy);
}

#[tokio::test(start_paused = true)]
async fn a_low_success_rate_ejects() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .consecutive_failures(0)
        .success_rate(0.5, 10, secs(10))
        .build()
        .unwrap();
    let handle = lb.handle();
    // One success in three: never five failures in a row, but a success
    // rate of a third.
    let mut sent = 0;
    while handle.ejections() == 0 && sent < 100 {
        primary.answer(if sent % 3 == 0 { ok() } else { status(500) });
        serve_n(&mut lb, 1).await;
        sent += 1;
    }
    assert_eq!(handle.ejections(), 1);
    // Ejected on the first failure once 10 answers were in.
    assert_eq!(sent, 11);
    assert_eq!(
        handle.endpoint("primary").unwrap().state,
        EndpointState::Ejected
    );
}

#[tokio::test(start_paused = true)]
async fn the_success_rate_window_restarts() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .consecutive_failures(0)
        .success_rate(0.5, 10, secs(10))
        .build()
        .unwrap();
    // Six successes, then a window boundary, then four failures: no window
    // holds ten answers with a rate under one half.
    primary.answer(ok());
    serve_n(&mut lb, 6).await;
    sleep(secs(11)).await;
    primary.answer(status(500));
    serve_n(&mut lb, 4).await;
    sleep(secs(11)).await;
    primary.answer(ok());
    serve_n(&mut lb, 6).await;
    assert_eq!(lb.handle().ejections(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_last_endpoint_up_is_never_ejected() {
    let only = Upstream::new("only");
    only.answer(status(500));
    let mut lb = balancer([only.endpoint()]).build().unwrap();
    for i in 0..20 {
        let res = send(&mut lb, get(&format!("r{i}"))).await.unwrap();
        assert_eq!(res.status(), 500, "nowhere else to go: the 500 is returned");
    }
    assert_eq!(only.hits(), 20);
    assert_eq!(lb.handle().ejections(), 0);

    // With two failing endpoints, one is ejected and the other keeps
    // taking traffic.
    let a = Upstream::new("a");
    let b = Upstream::new("b");
    a.answer(status(500));
    b.answer(status(500));
    let mut lb = balancer([a.endpoint(), b.endpoint().tier(1)])
        .build()
        .unwrap();
    for i in 0..20 {
        let res = send(&mut lb, get(&format!("r{i}"))).await.unwrap();
        assert_eq!(res.status(), 500);
    }
    let handle = lb.handle();
    assert_eq!(handle.ejections(), 1);
    assert_eq!(handle.endpoint("a").unwrap().state, EndpointState::Ejected);
    assert_eq!(handle.endpoint("b").unwrap().state, EndpointState::Healthy);
    assert_eq!(b.hits(), 20);
}

#[tokio::test(start_paused = true)]
async fn a_certificate_failure_ejects_at_once() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(Answer::ConnectMessage(
        "invalid peer certificate: UnknownIssuer",
    ));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    let res = send(&mut lb, post("p1", "{}")).await.unwrap();
    assert_eq!(served_by(&res), "backup", "never sent: even a POST moves");
    assert_eq!(primary.hits(), 1);
    assert_eq!(
        lb.handle().endpoint("primary").unwrap().state,
        EndpointState::Ejected
    );
    serve_n(&mut lb, 10).await;
    assert_eq!(primary.hits(), 1, "not tried again while ejected");
}

#[tokio::test(start_paused = true)]
async fn when_everything_is_down_the_balancer_fails_open() {
    let a = Upstream::new("a");
    let b = Upstream::new("b");
    a.answer(status(500));
    let mut lb = balancer([a.endpoint(), b.endpoint().tier(1)])
        .build()
        .unwrap();
    serve_n(&mut lb, 5).await;
    assert_eq!(
        lb.handle().endpoint("a").unwrap().state,
        EndpointState::Ejected
    );
    // The backup goes away: only the ejected primary is left, and it is
    // tried rather than nothing.
    lb.handle().remove("b");
    a.answer(ok());
    let res = send(&mut lb, get("x")).await.unwrap();
    assert_eq!(served_by(&res), "a");
}

#[tokio::test(start_paused = true)]
async fn a_connect_failure_ejects_at_once_by_default() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(Answer::Io(std::io::ErrorKind::ConnectionRefused));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    assert_eq!(serve_n(&mut lb, 5).await, ["backup"; 5]);
    assert_eq!(primary.hits(), 1, "not tried again after the first refusal");
    let ejected = lb.handle().endpoint("primary").unwrap();
    assert_eq!(ejected.state, EndpointState::Ejected);
    assert_eq!(ejected.ejected_until, Some(Instant::now() + secs(30)));

    // With a higher threshold, connect failures in a row are counted, and
    // a connection that worked (even to answer 500) starts the count again.
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .connect_failures(3)
        .consecutive_failures(0)
        .no_success_rate()
        .build()
        .unwrap();
    for _ in 0..3 {
        primary.answer(Answer::Io(std::io::ErrorKind::ConnectionRefused));
        serve_n(&mut lb, 2).await;
        primary.answer(status(500));
        serve_n(&mut lb, 1).await;
    }
    assert_eq!(lb.handle().ejections(), 0);
    primary.answer(Answer::Io(std::io::ErrorKind::ConnectionRefused));
    serve_n(&mut lb, 3).await;
    assert_eq!(lb.handle().ejections(), 1);
    assert_eq!(primary.hits(), 12);
}

#[tokio::test(start_paused = true)]
async fn tls_words_after_the_request_was_written_are_no_connect_failure() {
    let primary = Upstream::new("primary");
    let backup = Upstream::new("backup");
    primary.answer(Answer::Message(
        "peer closed connection without sending TLS close_notify",
    ));
    let mut lb = balancer([primary.endpoint(), backup.endpoint().tier(1)])
        .build()
        .unwrap();
    // Maybe processed: a POST is not moved to the backup...
    let err = send(&mut lb, post("p1", "{}")).await.unwrap_err();
    assert!(err.to_string().contains("close_notify"), "{err}");
    assert_eq!((primary.hits(), backup.hits()), (1, 0));
    // ...and the endpoint is not ejected as if a certificate had failed.
    assert_eq!(
        lb.handle().endpoint("primary").unwrap().state,
        EndpointState::Healthy
    );
}
