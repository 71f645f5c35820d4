//! `RedisStore` against a real `redis-server` that each test starts on a
//! free loopback port.
//!
//! These tests run on the wall clock: Redis keeps time with `TIME`, and the
//! store's timeouts must fire while Redis is slow. Nothing asserts how fast
//! anything is: waits are checked against the quota arithmetic, and every
//! wait for a condition is bounded by a generous deadline.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evenkeel_core::error::QuotaExhausted;
use evenkeel_core::event::Event;
use evenkeel_headers::{Dialect, Quota, RateLimits, Resource};
use evenkeel_quota::cost::Cost;
use evenkeel_quota::store::{
    Charged, QuotaStore, RedisStore, RedisStoreBuilder, RedisStoreError, Report, Source,
};
use evenkeel_quota::{QuotaLayer, StaticQuota};
use tokio::time::Instant;

/// How long a test waits for a condition before it gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// A `redis-server` of this test, on a loopback port, killed on drop.
struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// Further arguments (cluster mode).
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free port (picked by binding port 0 and
    /// releasing it; another port is tried if the server cannot bind it).
    fn start() -> RedisServer {
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut server = RedisServer {
                port,
                child: None,
                extra: Vec::new(),
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any free port (is it installed?)");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server on its port; `false` when it exits (the port is
    /// taken) or never answers.
    fn spawn(&mut self) -> bool {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "local"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install -y redis-server)");
        let started = std::time::Instant::now();
        while started.elapsed() < PATIENCE {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if self.answers() {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    fn answers(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut conn).is_ok()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    fn restart(&mut self) {
        self.kill();
        let started = std::time::Instant::now();
        while !self.spawn() {
            assert!(
                started.elapsed() < PATIENCE,
                "redis-server did not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A plain connection for looking at and poking the server.
    async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Events as text, in order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn listen(&self, builder: RedisStoreBuilder) -> RedisStoreBuilder {
        let seen = self.0.clone();
        builder.on_event(move |event: &Event<'_>| {
            let text = match event {
                Event::QuotaStoreFailed { store, reason } => {
                    format!("failed {store} {}", reason.as_str())
                }
                Event::QuotaStoreRecovered { store, .. } => format!("recovered {store}"),
                _ => return,
            };
            seen.lock().unwrap().push(text);
        })
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn count(&self, prefix: &str) -> usize {
        self.all().iter().filter(|e| e.starts_with(prefix)).count()
    }
}

/// Waits (bounded) until `check` holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < PATIENCE, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn one() -> Cost {
    Cost::new()
}

/// A store with a timeout loose enough for a loaded machine, in its own
/// key space.
fn builder(server: &RedisServer) -> RedisStoreBuilder {
    RedisStore::builder(server.url()).timeout(Duration::from_secs(2))
}

#[tokio::test]
async fn a_declared_quota_admits_its_limit_then_reports_the_wait() {
    let server = RedisServer::start();
    let store = builder(&server)
        .declare(StaticQuota::per_hour(Resource::Requests, 3))
        .build()
        .unwrap();
    let key = store.open("api");
    for _ in 0..3 {
        store
            .reserve(&key, &one(), Instant::now())
            .await
            .expect("within the quota");
    }
    let now = Instant::now();
    let short = store
        .reserve(&key, &one(), now)
        .await
        .expect_err("the fourth request is over the quota");
    assert_eq!(short.resource, Resource::Requests);
    assert!(!short.cooldown);
    // 3 per hour come back one every 20 minutes.
    let wait = short.until.saturating_duration_since(now);
    // (Measured from Redis's clock when the script ran: the round trip
    // after it may add to it.)
    assert!(wait <= Duration::from_secs(1201), "{wait:?}");
    assert!(wait > Duration::from_secs(1100), "{wait:?}");
    assert!(!store.is_fallback());
    // A second process on the same Redis sees the same quota.
    let other = builder(&server)
        .declare(StaticQuota::per_hour(Resource::Requests, 3))
        .build()
        .unwrap();
    let short = other
        .reserve(&other.open("api"), &one(), Instant::now())
        .await
        .expect_err("the quota is shared");
    assert_eq!(short.resource, Resource::Requests);
    // Another key has its own.
    other
        .reserve(&other.open("other"), &one(), Instant::now())
        .await
        .expect("another key is not spent");
    // What the round trip said answers the synchronous questions.
    let snapshot = store.snapshot(&key, Instant::now());
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].source, Source::Declared);
    assert_eq!(snapshot[0].remaining, 0);
    assert!(store.room_at(&key, Instant::now()).is_some());
}

#[tokio::test]
async fn tokens_are_metered_next_to_requests() {
    let server = RedisServer::start();
    let store = builder(&server)
        .declare(StaticQuota::per_hour(Resource::Requests, 100))
        .declare(StaticQuota::per_hour(Resource::InputTokens, 1000))
        .build()
        .unwrap();
    let key = store.open("llm");
    let big = Cost::new().with_input_tokens(700);
    store.reserve(&key, &big, Instant::now()).await.unwrap();
    let short = store
        .reserve(&key, &big, Instant::now())
        .await
        .expect_err("1400 input tokens do not fit 1000");
    assert_eq!(short.resource, Resource::InputTokens);
    store
        .reserve(&key, &Cost::new().with_input_tokens(300), Instant::now())
        .await
        .expect("what is left fits");
}

#[tokio::test]
async fn a_declared_burst_of_one_paces_without_limiting_what_is_in_flight() {
    // 20 per second, a burst of one: one request every 50 ms, however many
    // are still waiting for their answers (as one process's memory store
    // paces the same declaration).
    let server = RedisServer::start();
    let store = builder(&server)
        .declare(StaticQuota::new(Resource::Requests, 20, Duration::from_secs(1)).with_burst(1))
        .build()
        .unwrap();
    let key = store.open("api");
    let mut in_flight = Vec::new();
    in_flight.push(store.reserve(&key, &one(), Instant::now()).await.unwrap());
    let short = store
        .reserve(&key, &one(), Instant::now())
        .await
        .expect_err("the next request waits for the bucket");
    let wait = short.until.saturating_duration_since(Instant::now());
    assert!(wait <= Duration::from_millis(50), "{wait:?}");
    for n in 2..=4 {
        // Nothing settled: the first tickets are still in flight.
        eventually("the bucket refills", async || {
            match store.reserve(&key, &one(), Instant::now()).await {
                Ok(ticket) => {
                    in_flight.push(ticket);
                    true
                }
                Err(_) => false,
            }
        })
        .await;
        assert_eq!(in_flight.len(), n);
    }
}

#[tokio::test]
async fn a_crashed_process_frees_its_reservation_after_its_expiry() {
    let server = RedisServer::start();
    let quota = StaticQuota::per_hour(Resource::Requests, 1);
    let crashed = builder(&server)
        .declare(quota.clone())
        .reservation_ttl(Duration::from_secs(2))
        .build()
        .unwrap();
    let key = crashed.open("api");
    let ticket = crashed.reserve(&key, &one(), Instant::now()).await.unwrap();
    // The process dies: its ticket is never settled nor released.
    std::mem::forget(ticket);
    drop(key);
    drop(crashed);

    let survivor = builder(&server).declare(quota).build().unwrap();
    let key = survivor.open("api");
    let short = survivor
        .reserve(&key, &one(), Instant::now())
        .await
        .expect_err("the reservation holds the only request of the hour");
    // The refill is an hour away; only the reservation's expiry frees it.
    assert!(short.until > Instant::now() + Duration::from_secs(60));
    eventually("the reservation expires", async || {
        survivor.reserve(&key, &one(), Instant::now()).await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn a_settled_reservation_is_charged_and_a_released_one_given_back() {
    let server = RedisServer::start();
    let store = builder(&server)
        .declare(StaticQuota::per_hour(Resource::Requests, 1))
        .reservation_ttl(Duration::from_millis(300))
        .build()
        .unwrap();
    let key = store.open("api");
    let mut conn = server.conn().await;
    let mut in_flight = async || -> u64 {
        redis::cmd("HLEN")
            .arg("evenkeel:{api}:f")
            .query_async(&mut conn)
            .await
            .unwrap()
    };
    // Given back unsent: the request may go again at once, though the
    // refill is an hour away.
    let ticket = store.reserve(&key, &one(), Instant::now()).await.unwrap();
    assert_eq!(in_flight().await, 1);
    store.release(&key, ticket, false, Instant::now());
    eventually("the release reaches Redis", async || in_flight().await == 0).await;
    let ticket = store
        .reserve(&key, &one(), Instant::now())
        .await
        .expect("the released request is free again");
    // Answered: the reservation becomes a charge, which no expiry frees.
    let limits = RateLimits::new();
    store.settle(&key, ticket, &Report::new(&limits), Instant::now());
    eventually("the settle reaches Redis", async || in_flight().await == 0).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let short = store
        .reserve(&key, &one(), Instant::now())
        .await
        .expect_err("a charged request does not come back when a reservation would expire");
    assert!(short.until > Instant::now() + Duration::from_secs(60));
}

#[tokio::test]
async fn a_cooldown_is_seen_by_every_process() {
    let server = RedisServer::start();
    let a = builder(&server).build().unwrap();
    let b = builder(&server).build().unwrap();
    let (ka, kb) = (a.open("api"), b.open("api"));
    let ticket = a.reserve(&ka, &one(), Instant::now()).await.unwrap();
    let limits = RateLimits::new();
    let report = Report::new(&limits)
        .with_charged(Charged::No)
        .with_cooldown(Some(Duration::from_secs(30)));
    let now = Instant::now();
    let until = a
        .settle(&ka, ticket, &report, now)
        .expect("a cooldown starts");
    assert_eq!(until, now + Duration::from_secs(30));
    assert_eq!(a.cooldown_until(&ka, Instant::now()), Some(until));

    let mut seen = None;
    eventually("the other process sees the cooldown", async || {
        seen = b.reserve(&kb, &one(), Instant::now()).await.err();
        seen.is_some()
    })
    .await;
    let short = seen.unwrap();
    assert!(short.cooldown);
    let left = short.until.saturating_duration_since(Instant::now());
    assert!(left <= Duration::from_secs(30) && left > Duration::from_secs(20));
    assert!(b.cooldown_until(&kb, Instant::now()).is_some());
    assert!(
        b.estimate(&kb, &one(), &Cost::new(), Instant::now())
            .is_some()
    );
}

#[tokio::test]
async fn readings_from_one_process_pace_the_other_and_stale_ones_are_ignored() {
    let server = RedisServer::start();
    let a = builder(&server).build().unwrap();
    let b = builder(&server).build().unwrap();
    let (ka, kb) = (a.open("api"), b.open("api"));
    let reading = |remaining: u64| {
        [Quota::new(Resource::Requests)
            .with_limit(100)
            .with_remaining(remaining)
            .with_reset_after(Duration::from_secs(600))
            .with_dialect(Dialect::OpenAi)]
        .into_iter()
        .collect::<RateLimits>()
    };
    let mut conn = server.conn().await;
    let mut in_flight = async || -> u64 {
        redis::cmd("HLEN")
            .arg("evenkeel:{api}:f")
            .query_async(&mut conn)
            .await
            .unwrap()
    };
    // Two requests in flight; the later one's answer comes first.
    let first = a.reserve(&ka, &one(), Instant::now()).await.unwrap();
    let second = b.reserve(&kb, &one(), Instant::now()).await.unwrap();
    let empty = reading(0);
    b.settle(&kb, second, &Report::new(&empty), Instant::now());
    eventually("the reading reaches Redis", async || in_flight().await == 1).await;
    a.reserve(&ka, &one(), Instant::now())
        .await
        .expect_err("the other process's reading says nothing is left");
    // The earlier request's answer, with more left, is older: ignored (and
    // its cost is already in the newer reading).
    let older = reading(50);
    a.settle(&ka, first, &Report::new(&older), Instant::now());
    eventually("the older reading reaches Redis", async || {
        in_flight().await == 0
    })
    .await;
    let short = a
        .reserve(&ka, &one(), Instant::now())
        .await
        .expect_err("the newest reading holds");
    assert_eq!(short.resource, Resource::Requests);
    // 100 per 600 s come back: one every 6 s.
    let wait = short.until.saturating_duration_since(Instant::now());
    assert!(
        wait <= Duration::from_secs(7) && wait > Duration::from_secs(1),
        "{wait:?}"
    );
    let snapshot = a.snapshot(&ka, Instant::now());
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].source, Source::Learned(Dialect::OpenAi));
    assert_eq!(snapshot[0].limit, Some(100));
}

#[tokio::test]
async fn the_script_is_loaded_again_after_script_flush() {
    let server = RedisServer::start();
    let seen = Seen::default();
    let store = seen
        .listen(
            builder(&server)
                .declare(StaticQuota::per_hour(Resource::Requests, 10))
                .heartbeat(Duration::from_secs(60)),
        )
        .build()
        .unwrap();
    let key = store.open("api");
    // Held, not released: no call of the store's own is in flight while
    // the scripts are flushed (one caught between its reload and its run
    // would meet a second NOSCRIPT, which only a concurrent flush makes).
    let _held = store.reserve(&key, &one(), Instant::now()).await.unwrap();
    let mut conn = server.conn().await;
    eventually("the first heartbeat has run", async || {
        let exists: i64 = redis::cmd("EXISTS")
            .arg("evenkeel:procs")
            .query_async(&mut conn)
            .await
            .unwrap();
        exists == 1
    })
    .await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    store.reserve(&key, &one(), Instant::now()).await.unwrap();
    assert!(!store.is_fallback());
    assert_eq!(seen.count("failed"), 0, "{:?}", seen.all());
    // Both admissions are in Redis.
    let seq: u64 = redis::cmd("HGET")
        .arg("evenkeel:{api}:s")
        .arg("seq")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(seq, 2);
}

#[tokio::test]
async fn idle_keys_expire() {
    let server = RedisServer::start();
    let store = builder(&server)
        .declare(StaticQuota::per_hour(Resource::Requests, 10))
        .idle_ttl(Duration::from_secs(2))
        .reservation_ttl(Duration::from_secs(2))
        .build()
        .unwrap();
    store
        .reserve(&store.open("api"), &one(), Instant::now())
        .await
        .unwrap();
    let mut conn = server.conn().await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg("evenkeel:{api}:s")
        .query_async(&mut conn)
        .await
        .unwrap();
    // -1 would be a key without expiry; -2, one already expired.
    assert!(ttl != -1 && ttl <= 2000, "{ttl}");
    eventually("the key vanishes", async || {
        let exists: u32 = redis::cmd("EXISTS")
            .arg("evenkeel:{api}:s")
            .arg("evenkeel:{api}:f")
            .query_async(&mut conn)
            .await
            .unwrap();
        exists == 0
    })
    .await;
}

#[tokio::test]
async fn a_dead_redis_falls_back_to_local_pacing_and_recovers() {
    let mut server = RedisServer::start();
    let seen = Seen::default();
    let quota = StaticQuota::per_hour(Resource::Requests, 10);
    let store = seen
        .listen(
            RedisStore::builder(server.url())
                .timeout(Duration::from_millis(500))
                .heartbeat(Duration::from_millis(300))
                .declare(quota.clone()),
        )
        .build()
        .unwrap();
    // A second process, so the share while Redis is down is half.
    let peer = builder(&server)
        .heartbeat(Duration::from_millis(300))
        .declare(quota)
        .build()
        .unwrap();
    let key = store.open("api");
    let peer_key = peer.open("api");
    store.reserve(&key, &one(), Instant::now()).await.unwrap();
    peer.reserve(&peer_key, &one(), Instant::now())
        .await
        .unwrap();
    eventually("both processes are counted", async || {
        store.live_processes() == 2
    })
    .await;

    server.kill();
    // The call fails, the process paces itself with its share: 10 / 2.
    let mut admitted = 0;
    let mut kept = None;
    for _ in 0..20 {
        if let Ok(ticket) = store.reserve(&key, &one(), Instant::now()).await {
            admitted += 1;
            kept.get_or_insert(ticket);
        }
    }
    assert!(store.is_fallback());
    assert_eq!(admitted, 5, "half of the declared quota");
    assert!(seen.count("failed redis") >= 1, "{:?}", seen.all());
    assert_eq!(seen.count("recovered"), 0);

    server.restart();
    eventually("the store is back on Redis", async || !store.is_fallback()).await;
    assert_eq!(seen.count("recovered redis"), 1, "{:?}", seen.all());
    // Admissions go to Redis again (the restarted Redis is empty).
    store.reserve(&key, &one(), Instant::now()).await.unwrap();
    let mut conn = server.conn().await;
    let seq: u64 = redis::cmd("HGET")
        .arg("evenkeel:{api}:s")
        .arg("seq")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(seq, 1);
    // A request admitted locally and answered with a pushback after the
    // recovery still holds this process back.
    let limits = RateLimits::new();
    let report = Report::new(&limits).with_cooldown(Some(Duration::from_secs(30)));
    let now = Instant::now();
    let until = store.settle(&key, kept.unwrap(), &report, now);
    assert_eq!(until, Some(now + Duration::from_secs(30)));
    assert_eq!(store.cooldown_until(&key, Instant::now()), until);
}

#[tokio::test]
async fn a_slow_redis_times_out_into_the_fallback_without_hanging() {
    let server = RedisServer::start();
    let seen = Seen::default();
    let store = seen
        .listen(
            RedisStore::builder(server.url())
                .timeout(Duration::from_millis(50))
                .declare(StaticQuota::per_hour(Resource::Requests, 10)),
        )
        .build()
        .unwrap();
    let key = store.open("api");
    // Connect first, so the next call is the one that meets the pause.
    eventually("the store reaches Redis", async || {
        store.reserve(&key, &one(), Instant::now()).await.is_ok() && !store.is_fallback()
    })
    .await;
    let mut conn = server.conn().await;
    let sleeping = tokio::spawn(async move {
        let _: redis::RedisResult<()> = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(20)
            .query_async(&mut conn)
            .await;
    });
    // Once Redis sleeps, a call meets the timeout and the local share
    // admits.
    eventually("a call times out", async || {
        let answer = store.reserve(&key, &one(), Instant::now()).await;
        assert!(answer.is_ok(), "{answer:?}");
        store.is_fallback()
    })
    .await;
    assert!(
        !sleeping.is_finished(),
        "the call returned while Redis still slept"
    );
    assert!(seen.count("failed redis timeout") >= 1, "{:?}", seen.all());
    sleeping.abort();
}

#[tokio::test]
async fn fail_closed_refuses_with_quota_exhausted_while_redis_is_down() {
    use tower::{Service, ServiceExt};

    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let seen = Seen::default();
    let store = seen
        .listen(
            RedisStore::builder(format!("redis://127.0.0.1:{port}"))
                .timeout(Duration::from_millis(200))
                .fail_closed(),
        )
        .build()
        .unwrap();
    let layer = QuotaLayer::builder()
        .store(store.clone())
        .probe_first(false)
        .build()
        .unwrap();
    let mut svc =
        tower::ServiceBuilder::new()
            .layer(layer)
            .service_fn(|_: http::Request<()>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(()))
            });
    let request = http::Request::get("http://api.example/").body(()).unwrap();
    let result = svc.ready().await.unwrap().call(request).await;
    let error = result.expect_err("refused while Redis is down");
    assert!(error.is::<QuotaExhausted>(), "{error}");
    assert!(store.is_fallback());
    assert!(seen.count("failed redis") >= 1);

    // Failing open (the default), the same request goes.
    let open = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let key = open.open("api");
    assert!(open.reserve(&key, &one(), Instant::now()).await.is_ok());
}

#[tokio::test]
async fn connect_and_build_say_what_is_wrong() {
    match RedisStore::builder("http://127.0.0.1:1/").build() {
        Err(RedisStoreError::InvalidUrl { url, .. }) => assert_eq!(url, "http://127.0.0.1:1/"),
        other => panic!("{other:?}"),
    }
    let error = RedisStore::builder("not a url").build().unwrap_err();
    assert!(error.to_string().contains("`not a url`"), "{error}");
    match RedisStore::builder("redis://127.0.0.1:6379")
        .timeout(Duration::ZERO)
        .build()
    {
        Err(RedisStoreError::Config(e)) => assert_eq!(e.field(), "timeout"),
        other => panic!("{other:?}"),
    }
    match RedisStore::builder("redis://127.0.0.1:6379")
        .declare(StaticQuota::per_hour(Resource::Requests, 0))
        .build()
    {
        Err(RedisStoreError::Config(e)) => assert_eq!(e.field(), "declare.limit"),
        other => panic!("{other:?}"),
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    match RedisStore::connect(&url).await {
        Err(RedisStoreError::Connect { url: quoted, .. }) => assert_eq!(quoted, url),
        other => panic!("{other:?}"),
    }
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    assert!(!store.is_fallback());
    assert_eq!(store.live_processes(), 1);
}

#[tokio::test]
async fn hostile_numbers_are_clamped_not_fatal() {
    let server = RedisServer::start();
    let store = builder(&server).build().unwrap();
    let key = store.open("api");
    let huge = Cost::new()
        .with_requests(u64::MAX)
        .with_tokens(u64::MAX)
        .with_input_tokens(u64::MAX)
        .with_output_tokens(u64::MAX);
    let ticket = store.reserve(&key, &huge, Instant::now()).await.unwrap();
    let limits = [Quota::new(Resource::Tokens)
        .with_limit(u64::MAX)
        .with_remaining(u64::MAX)
        .with_reset_after(Duration::MAX)
        .with_window(Duration::MAX)
        .with_policy("a policy\nwith\u{0}junk")]
    .into_iter()
    .collect::<RateLimits>();
    let report = Report::new(&limits).with_cooldown(Some(Duration::MAX));
    let until = store.settle(&key, ticket, &report, Instant::now()).unwrap();
    assert!(until <= Instant::now() + Duration::from_secs(3600));
    eventually("the cooldown lands", async || {
        store
            .reserve(&key, &one(), Instant::now())
            .await
            .is_err_and(|s| s.cooldown)
    })
    .await;
    assert!(!store.is_fallback());
}

/// Three primaries of a Redis Cluster on free loopback ports (each with its
/// cluster bus at port + 10000), their configuration in a directory of
/// their own, removed on drop.
#[cfg(feature = "redis-cluster")]
struct RedisCluster {
    nodes: Vec<RedisServer>,
    dir: std::path::PathBuf,
}

#[cfg(feature = "redis-cluster")]
impl RedisCluster {
    fn start() -> RedisCluster {
        let dir =
            std::env::temp_dir().join(format!("evenkeel-redis-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut nodes = Vec::new();
        let mut tries = 0;
        while nodes.len() < 3 {
            tries += 1;
            assert!(tries < 50, "no free ports for a cluster");
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if port > 55_000 || TcpListener::bind(("127.0.0.1", port + 10_000)).is_err() {
                continue;
            }
            let conf = dir.join(format!("nodes-{port}.conf"));
            let mut node = RedisServer {
                port,
                child: None,
                extra: vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    conf.to_string_lossy().into_owned(),
                    "--dir".into(),
                    dir.to_string_lossy().into_owned(),
                ],
            };
            if node.spawn() {
                nodes.push(node);
            }
        }
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = RedisCluster { nodes, dir };
        let started = std::time::Instant::now();
        while !cluster.ready() {
            assert!(
                started.elapsed() < PATIENCE,
                "the cluster never became ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    fn ready(&self) -> bool {
        self.nodes.iter().all(|node| {
            let Ok(client) = redis::Client::open(node.url()) else {
                return false;
            };
            let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500))
            else {
                return false;
            };
            redis::cmd("CLUSTER")
                .arg("INFO")
                .query::<String>(&mut conn)
                .is_ok_and(|info| info.contains("cluster_state:ok"))
        })
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

#[cfg(feature = "redis-cluster")]
impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(feature = "redis-cluster")]
#[tokio::test]
async fn a_cluster_shares_quotas_whatever_slot_a_key_is_on() {
    let cluster = RedisCluster::start();
    let store = |urls: Vec<String>| {
        RedisStore::cluster_builder(urls)
            .timeout(Duration::from_secs(2))
            .declare(StaticQuota::per_hour(Resource::Requests, 2))
            .build()
            .unwrap()
    };
    let a = store(cluster.urls());
    // The other process knows one node only: the cluster tells it the rest.
    let b = store(cluster.urls()[..1].to_vec());
    // Keys spread over the slots, hence over the three primaries.
    for name in ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"] {
        let (ka, kb) = (a.open(name), b.open(name));
        a.reserve(&ka, &one(), Instant::now()).await.unwrap();
        b.reserve(&kb, &one(), Instant::now()).await.unwrap();
        let short = a
            .reserve(&ka, &one(), Instant::now())
            .await
            .expect_err("two per hour, spent by the two processes");
        assert_eq!(short.resource, Resource::Requests);
    }
    // The keys are spread over the primaries.
    let mut holding = 0;
    for node in &cluster.nodes {
        let mut conn = node.conn().await;
        let keys: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
        holding += usize::from(keys > 0);
    }
    assert!(holding >= 2, "the keys sit on {holding} node(s)");
    // A settle (two keys in its script, one slot) reaches the other
    // process: a cooldown.
    let (ka, kb) = (a.open("golf"), b.open("golf"));
    let ticket = a.reserve(&ka, &one(), Instant::now()).await.unwrap();
    let limits = RateLimits::new();
    let report = Report::new(&limits).with_cooldown(Some(Duration::from_secs(30)));
    a.settle(&ka, ticket, &report, Instant::now());
    eventually("the cooldown reaches the other process", async || {
        b.reserve(&kb, &one(), Instant::now())
            .await
            .is_err_and(|s| s.cooldown)
    })
    .await;
    assert!(!a.is_fallback() && !b.is_fallback());
}
