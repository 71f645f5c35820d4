//! One admission (reserve, then settle the answer) through `RedisStore` on
//! a loopback `redis-server`, against `MemoryStore` and against a bare
//! `PING` round trip on the same connection kind, in one run.
//!
//! Run: `cargo bench -p evenkeel-quota --features redis --bench redis`
//! (needs `redis-server` on the `PATH`; the bench starts its own on a free
//! loopback port).
//!
//! With `EVENKEEL_ADMISSIONS=N` set it runs N admissions through
//! `RedisStore` and exits instead, for counting the client's instructions
//! per admission under callgrind (Redis runs in its own process, so only
//! the client side is counted):
//!
//! ```text
//! EVENKEEL_ADMISSIONS=2000 valgrind --tool=callgrind target/release/deps/redis-HASH
//! ```

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use evenkeel_headers::{Quota, RateLimits, Resource};
use evenkeel_quota::StaticQuota;
use evenkeel_quota::cost::Cost;
use evenkeel_quota::store::{MemoryStore, QuotaStore, RedisStore, Report};
use tokio::runtime::Runtime;
use tokio::time::Instant;

/// A `redis-server` on a free loopback port, killed on drop.
struct Server(Child, u16);

impl Server {
    fn start() -> Server {
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server on the PATH");
            for _ in 0..500 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
                if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(100))
                    && redis::cmd("PING").query::<String>(&mut conn).is_ok()
                {
                    return Server(child, port);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.1)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn quota() -> StaticQuota {
    StaticQuota::per_second(Resource::Requests, 1_000_000_000)
}

fn reading() -> RateLimits {
    [Quota::new(Resource::Requests)
        .with_limit(1_000_000_000)
        .with_remaining(999_999_999)
        .with_reset_after(Duration::from_secs(1))]
    .into_iter()
    .collect()
}

/// One admission through `store`: reserve, then settle with a reading.
async fn admit<S: QuotaStore>(store: &S, key: &S::Key, limits: &RateLimits) {
    let ticket = store
        .reserve(key, &Cost::new(), Instant::now())
        .await
        .expect("the quota is plentiful");
    store.settle(key, ticket, &Report::new(limits), Instant::now());
}

fn admission(c: &mut Criterion) {
    let server = Server::start();
    let rt = runtime();
    let limits = reading();
    let mut group = c.benchmark_group("admission");

    let memory = MemoryStore::builder().declare(quota()).build().unwrap();
    let memory_key = memory.open("api");
    group.bench_function("memory", |b| {
        b.iter(|| rt.block_on(admit(&memory, &memory_key, &limits)))
    });

    let redis = RedisStore::builder(server.url())
        .timeout(Duration::from_secs(1))
        .declare(quota())
        .build()
        .unwrap();
    let redis_key = redis.open("api");
    group.bench_function("redis", |b| {
        b.iter(|| rt.block_on(admit(&redis, &redis_key, &limits)))
    });
    assert!(!redis.is_fallback(), "Redis answered every call");

    let mut conn = rt.block_on(async {
        redis::Client::open(server.url())
            .unwrap()
            .get_connection_manager()
            .await
            .unwrap()
    });
    group.bench_function("redis_ping_round_trip", |b| {
        b.iter(|| {
            rt.block_on(async {
                let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
            })
        })
    });
    group.finish();
}

criterion_group!(benches, admission);

fn main() {
    if let Some(n) = std::env::var("EVENKEEL_ADMISSIONS")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    {
        let server = Server::start();
        let rt = runtime();
        let store = RedisStore::builder(server.url())
            .timeout(Duration::from_secs(5))
            .declare(quota())
            .build()
            .unwrap();
        let key = store.open("api");
        let limits = reading();
        rt.block_on(async {
            for _ in 0..n {
                admit(&store, &key, &limits).await;
            }
            // Let the last settle finish.
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        assert!(!store.is_fallback());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
