//! DNS discovery: the endpoint set follows a host's answer, on its TTL.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use evenkeel_core::event::Event;
use evenkeel_failover::dns::{
    DnsDiscover, Resolution, Resolve, ResolveError, ResolveErrorKind, Resolving,
};
use evenkeel_failover::{Endpoint, Failover};
use tokio::time::{Instant, advance};

/// What the scripted resolver answers next.
#[derive(Debug, Clone)]
enum Script {
    Answer(Vec<IpAddr>, Option<u64>),
    Fail(ResolveErrorKind),
    /// Never answers (the discovery's timeout must end it).
    Hang,
}

/// A resolver that answers what the test says, and records when it was
/// asked.
#[derive(Debug, Clone)]
struct Scripted {
    script: Arc<Mutex<Script>>,
    asked: Arc<Mutex<Vec<Instant>>>,
}

impl Scripted {
    fn new(script: Script) -> Self {
        Scripted {
            script: Arc::new(Mutex::new(script)),
            asked: Arc::default(),
        }
    }

    fn set(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }

    fn queries(&self) -> usize {
        self.asked.lock().unwrap().len()
    }

    fn asked_at(&self) -> Vec<Instant> {
        self.asked.lock().unwrap().clone()
    }
}

impl Resolve for Scripted {
    fn resolve(&self, host: &str) -> Resolving {
        self.asked.lock().unwrap().push(Instant::now());
        let script = self.script.lock().unwrap().clone();
        let host = host.to_owned();
        Box::pin(async move {
            match script {
                Script::Answer(ips, ttl) => {
                    let answer = Resolution::new(ips);
                    Ok(match ttl {
                        Some(s) => answer.with_ttl(Duration::from_secs(s)),
                        None => answer,
                    })
                }
                Script::Fail(kind) => Err(ResolveError::new(&host, kind, "scripted")),
                Script::Hang => std::future::pending().await,
            }
        })
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

/// One upstream per address, named after it.
struct Fleet {
    upstreams: HashMap<SocketAddr, Upstream>,
}

impl Fleet {
    fn new() -> Self {
        let names = ["a", "b", "c", "d"];
        let upstreams = names
            .iter()
            .enumerate()
            .map(|(i, name)| (SocketAddr::new(ip(i as u8 + 1), 443), Upstream::new(name)))
            .collect();
        Fleet { upstreams }
    }

    fn make(&self) -> impl FnMut(SocketAddr) -> Endpoint<Upstream> + Send + 'static {
        let upstreams = self.upstreams.clone();
        move |addr| upstreams[&addr].endpoint()
    }

    fn at(&self, last: u8) -> &Upstream {
        &self.upstreams[&SocketAddr::new(ip(last), 443)]
    }
}

fn names(lb: &Failover<Upstream>) -> Vec<String> {
    let mut names: Vec<String> = lb
        .handle()
        .endpoints()
        .into_iter()
        .filter(|e| e.state != evenkeel_failover::EndpointState::Draining)
        .map(|e| e.name)
        .collect();
    names.sort();
    names
}

/// Lets the discovery task run (no time passes).
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn start(
    resolver: &Scripted,
    fleet: &Fleet,
    tune: impl FnOnce(
        evenkeel_failover::dns::DnsDiscoverBuilder,
    ) -> evenkeel_failover::dns::DnsDiscoverBuilder,
) -> (Failover<Upstream>, Recorder) {
    let lb = balancer([]).build().unwrap();
    let events = Recorder::default();
    let discover = tune(
        DnsDiscover::builder("api.example.com", 443)
            .resolver(resolver.clone())
            .on_event(events.listener()),
    )
    .build(fleet.make())
    .unwrap();
    tokio::spawn(lb.handle().discover(discover));
    (lb, events)
}

#[tokio::test(start_paused = true)]
async fn the_endpoint_set_follows_the_answer_on_its_ttl() {
    let fleet = Fleet::new();
    let resolver = Scripted::new(Script::Answer(vec![ip(1), ip(2)], Some(30)));
    let (mut lb, events) = start(&resolver, &fleet, |b| b);
    settle().await;
    assert_eq!(resolver.queries(), 1);
    assert_eq!(names(&lb), ["a", "b"]);
    let before = serve_n(&mut lb, 20).await;
    assert!(before.iter().all(|w| w == "a" || w == "b"), "{before:?}");

    // The answer changes; nothing is asked before the TTL runs out.
    resolver.set(Script::Answer(vec![ip(2), ip(3)], Some(30)));
    advance(Duration::from_millis(29_900)).await;
    settle().await;
    assert_eq!(resolver.queries(), 1, "asked again before the TTL ended");
    assert_eq!(names(&lb), ["a", "b"]);

    // Once it does, one query, and the set is the new answer.
    advance(Duration::from_millis(200)).await;
    settle().await;
    assert_eq!(resolver.queries(), 2);
    assert_eq!(names(&lb), ["b", "c"]);
    fleet.at(1).reset();
    let after = serve_n(&mut lb, 20).await;
    assert!(after.iter().all(|w| w == "b" || w == "c"), "{after:?}");
    assert_eq!(
        fleet.at(1).hits(),
        0,
        "a left the answer but was sent requests"
    );

    let log = events.events();
    let changes: Vec<&String> = log
        .iter()
        .filter(|e| e.contains("AddressChanged"))
        .collect();
    assert_eq!(changes.len(), 4, "{log:?}");
    assert!(
        log.iter()
            .any(|e| e.contains("DnsResolved") && e.contains("addresses: 2") && e.contains("30s")),
        "{log:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_floor_and_the_ceiling_bound_the_ttl() {
    let fleet = Fleet::new();
    // A 1 s TTL: asked again after the 5 s floor, not after 1 s.
    let resolver = Scripted::new(Script::Answer(vec![ip(1)], Some(1)));
    let (_lb, _) = start(&resolver, &fleet, |b| b);
    settle().await;
    let t0 = resolver.asked_at()[0];
    advance(Duration::from_secs(4)).await;
    settle().await;
    assert_eq!(resolver.queries(), 1);
    advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(resolver.queries(), 2);
    assert_eq!(resolver.asked_at()[1] - t0, Duration::from_secs(5));

    // A day-long TTL: asked again after the 300 s ceiling.
    resolver.set(Script::Answer(vec![ip(1)], Some(86_400)));
    advance(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(resolver.queries(), 3);
    let t2 = resolver.asked_at()[2];
    advance(Duration::from_secs(299)).await;
    settle().await;
    assert_eq!(resolver.queries(), 3);
    advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(resolver.queries(), 4);
    assert_eq!(resolver.asked_at()[3] - t2, Duration::from_secs(300));
}

#[tokio::test(start_paused = true)]
async fn settable_floor_ceiling_and_unknown_ttl() {
    let fleet = Fleet::new();
    let resolver = Scripted::new(Script::Answer(vec![ip(1)], None));
    let (_lb, _) = start(&resolver, &fleet, |b| {
        b.ttl_floor(Duration::from_secs(2))
            .ttl_ceiling(Duration::from_secs(20))
            .unknown_ttl(Duration::from_secs(7))
    });
    settle().await;
    advance(Duration::from_secs(7)).await;
    settle().await;
    let at = resolver.asked_at();
    assert_eq!(at.len(), 2);
    assert_eq!(at[1] - at[0], Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn failures_keep_the_last_good_set() {
    let fleet = Fleet::new();
    let resolver = Scripted::new(Script::Answer(vec![ip(1), ip(2)], Some(5)));
    let (mut lb, events) = start(&resolver, &fleet, |b| b);
    settle().await;
    assert_eq!(names(&lb), ["a", "b"]);

    let failures = [
        Script::Fail(ResolveErrorKind::ServFail),
        Script::Fail(ResolveErrorKind::NxDomain),
        Script::Answer(Vec::new(), Some(5)),
        Script::Hang,
    ];
    let mut elapsed = Duration::from_secs(5);
    let mut wait = Duration::from_secs(5);
    for (i, failure) in failures.into_iter().enumerate() {
        let hang = matches!(failure, Script::Hang);
        resolver.set(failure);
        advance(elapsed).await;
        settle().await;
        assert_eq!(resolver.queries(), i + 2);
        if hang {
            // The 5 s resolution timeout ends the query.
            advance(Duration::from_secs(5)).await;
            settle().await;
        }
        assert_eq!(names(&lb), ["a", "b"], "after failure {i}");
        assert_eq!(serve_n(&mut lb, 4).await.len(), 4);
        // Each failure in a row doubles the wait, from the floor.
        elapsed = wait;
        wait = (wait * 2).min(Duration::from_secs(300));
    }
    let reasons: Vec<String> = events
        .events()
        .into_iter()
        .filter(|e| e.contains("DnsFailed"))
        .collect();
    let expected = ["servfail", "nxdomain", "no_records", "timeout"];
    assert_eq!(reasons.len(), expected.len(), "{reasons:?}");
    for (line, reason) in reasons.iter().zip(expected) {
        assert!(line.contains(reason), "{line} lacks {reason}");
    }
    let gaps: Vec<Duration> = resolver
        .asked_at()
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    // 5 s TTL, then 5 s after the first failure, 10 s, 20 s (+5 s timeout).
    assert_eq!(gaps, [5, 5, 10, 20].map(Duration::from_secs), "{gaps:?}");

    // Back to a good answer: the set follows it again.
    resolver.set(Script::Answer(vec![ip(3)], Some(5)));
    advance(Duration::from_secs(45)).await;
    settle().await;
    assert_eq!(names(&lb), ["c"]);
}

#[tokio::test(start_paused = true)]
async fn the_first_answer_failing_leaves_the_set_empty_until_one_comes() {
    let fleet = Fleet::new();
    let resolver = Scripted::new(Script::Fail(ResolveErrorKind::Timeout));
    let (lb, _) = start(&resolver, &fleet, |b| b);
    settle().await;
    assert!(names(&lb).is_empty());
    resolver.set(Script::Answer(vec![ip(4)], Some(60)));
    advance(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(names(&lb), ["d"]);
}

#[tokio::test(start_paused = true)]
async fn an_address_that_leaves_drains_its_requests_in_flight() {
    let fleet = Fleet::new();
    fleet.at(1).latency(Duration::from_secs(8));
    let resolver = Scripted::new(Script::Answer(vec![ip(1)], Some(5)));
    let (lb, _) = start(&resolver, &fleet, |b| b);
    settle().await;

    // A slow request in flight on a when a leaves the answer.
    let mut first = lb.clone();
    let slow = tokio::spawn(async move { send(&mut first, get("slow")).await });
    settle().await;
    assert_eq!(fleet.at(1).hits(), 1);
    resolver.set(Script::Answer(vec![ip(2)], Some(60)));
    advance(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(names(&lb), ["b"]);

    // New requests go to b; the one in flight on a finishes there.
    let mut lb2 = lb.clone();
    assert_eq!(serve_n(&mut lb2, 5).await, ["b"; 5]);
    advance(Duration::from_secs(3)).await;
    let res = slow.await.unwrap().unwrap();
    assert_eq!(served_by(&res), "a");
    assert_eq!(fleet.at(1).hits(), 1);
    settle().await;
    assert!(
        lb.handle().endpoints().iter().all(|e| e.name != "a"),
        "a drained but was not removed"
    );
}

#[tokio::test(start_paused = true)]
async fn removing_the_serving_address_loses_no_request() {
    let fleet = Fleet::new();
    for last in 1..=3 {
        fleet.at(last).latency(Duration::from_millis(40));
    }
    let resolver = Scripted::new(Script::Answer(vec![ip(1), ip(2)], Some(1)));
    let (lb, _) = start(&resolver, &fleet, |b| b.ttl_floor(Duration::from_secs(1)));
    settle().await;

    let callers: Vec<_> = (0..16)
        .map(|c| {
            let mut lb = lb.clone();
            tokio::spawn(async move {
                let mut ok = 0;
                for i in 0..100 {
                    let res = send(&mut lb, get(&format!("c{c}-{i}"))).await;
                    assert_eq!(res.unwrap().status(), 200);
                    ok += 1;
                }
                ok
            })
        })
        .collect();
    // a leaves after about a third of the run; c joins.
    tokio::time::sleep(Duration::from_millis(700)).await;
    resolver.set(Script::Answer(vec![ip(2), ip(3)], Some(1)));
    let changed = Instant::now();
    let mut served = 0;
    for caller in callers {
        served += caller.await.unwrap();
    }
    assert_eq!(served, 16 * 100);
    let mut ids: Vec<String> = (1..=3).flat_map(|l| fleet.at(l).ids()).collect();
    assert_eq!(ids.len(), 16 * 100, "a request was sent twice or lost");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 16 * 100);
    let (a, c) = (fleet.at(1).hits(), fleet.at(3).hits());
    assert!(a > 0 && c > 0, "a served {a}, c served {c}");
    // Nothing reached a after it left the answer.
    let left_at = resolver
        .asked_at()
        .into_iter()
        .find(|at| *at >= changed)
        .unwrap();
    assert!(
        fleet.at(1).seen().iter().all(|s| s.at <= left_at),
        "a was sent a request after it left the answer"
    );
}

#[test]
fn the_builder_refuses_what_cannot_work() {
    let make = |_addr| -> Endpoint<Upstream> { unreachable!() };
    let build = |b: evenkeel_failover::dns::DnsDiscoverBuilder| b.build(make).unwrap_err();
    let err = build(DnsDiscover::builder("", 443));
    assert_eq!(err.field(), "host");
    let err = build(DnsDiscover::builder("https://api.example.com", 443));
    assert_eq!(err.field(), "host");
    assert!(
        err.to_string().contains("`https://api.example.com`"),
        "{err}"
    );
    let err = build(DnsDiscover::builder("api.example.com", 443).ttl_floor(Duration::ZERO));
    assert_eq!(err.field(), "ttl_floor");
    let err = build(
        DnsDiscover::builder("api.example.com", 443)
            .ttl_floor(Duration::from_secs(10))
            .ttl_ceiling(Duration::from_secs(5)),
    );
    assert_eq!(err.field(), "ttl_floor");
    let err = build(DnsDiscover::builder("api.example.com", 443).timeout(Duration::ZERO));
    assert_eq!(err.field(), "timeout");
    let err = build(DnsDiscover::builder("api.example.com", 443).max_addresses(0));
    assert_eq!(err.field(), "max_addresses");
}

#[tokio::test(start_paused = true)]
async fn a_huge_answer_is_cut_to_max_addresses() {
    let fleet = Fleet::new();
    let many: Vec<IpAddr> = (1..=4).map(ip).collect();
    let resolver = Scripted::new(Script::Answer(many, Some(60)));
    let (lb, _) = start(&resolver, &fleet, |b| b.max_addresses(2));
    settle().await;
    assert_eq!(names(&lb), ["a", "b"]);
}

#[test]
fn events_name_what_changed() {
    let line = format!(
        "{:?}",
        Event::AddressChanged {
            host: "api.example.com",
            address: SocketAddr::new(ip(1), 443),
            added: false,
        }
    );
    assert!(line.contains("10.0.0.1:443"), "{line}");
}
