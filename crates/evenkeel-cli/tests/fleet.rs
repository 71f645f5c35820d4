//! A fleet on one API key: several `evenkeel load` processes, one
//! `--quota-key`, against one `evenkeel sim` process with a request quota.
//! Each process on its own memory store paces as if it were alone; on one
//! `redis-server` (started here on a free loopback port) the processes pace
//! against one quota, and the sim, which counts every attempt, sees next to
//! no 429s.
//!
//! Wall-clock figures (the run against the ideal time, requests / rate) are
//! printed, not asserted: the machine may be loaded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The sim's request quota: a bucket of `SIM_BURST` refilled at
/// `SIM_RATE` a second.
const SIM_RATE: u64 = 50;
const SIM_BURST: u64 = 20;
/// The burst `--rate-limit` declares, at the sim's rate: below the sim's,
/// so that requests admitted in order but delayed unevenly on their way
/// (process scheduling on a loaded machine) still fit the sim's bucket.
const DECLARED_BURST: u64 = 10;
/// Requests over the whole fleet in each run: four seconds at the rate.
const FLEET_REQUESTS: usize = 200;

/// The runs use several processes each and compare timings: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

/// A `redis-server` of its own on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        // A port found free may be taken before the server binds it: try
        // another then.
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run redis-server ({e}): install it (`apt-get install -y redis-server`, as .ci/run does)")
                });
            let mut redis = Redis { child, port };
            if redis.wait_ready() {
                return redis;
            }
        }
        panic!("redis-server did not start on any of five free ports");
    }

    /// Waits (at most 20 s) for `PING` to be answered; `false` when the
    /// server exited (its port was taken).
    fn wait_ready(&mut self) -> bool {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut pong = [0u8; 7];
                if conn.write_all(b"PING\r\n").is_ok()
                    && conn.read_exact(&mut pong).is_ok()
                    && &pong == b"+PONG\r\n"
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {} did not answer PING", self.port);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `evenkeel sim` process on a free loopback port.
struct SimProcess {
    child: Child,
    stdout: BufReader<ChildStdout>,
    url: String,
}

/// What the sim counted, from the summary it prints when interrupted.
#[derive(Debug, Default)]
struct SimCounts {
    attempts: u64,
    ok: u64,
    too_many: u64,
}

impl SimProcess {
    fn start(dialect: &str) -> SimProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_evenkeel"))
            .args(["sim", "--listen", "127.0.0.1:0"])
            .args(["--rate", &SIM_RATE.to_string()])
            .args(["--burst", &SIM_BURST.to_string()])
            .args(["--dialect", dialect, "--latency-ms", "20"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary runs");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("the sim's first line");
        let url = first
            .trim()
            .strip_prefix("evenkeel-sim listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .to_owned();
        SimProcess { child, stdout, url }
    }

    /// Interrupts the sim (as Ctrl-C does) and reads what it counted.
    fn stop(mut self) -> SimCounts {
        let pid = self.child.id().to_string();
        let status = Command::new("sh")
            .args(["-c", &format!("kill -INT {pid}")])
            .status()
            .expect("sh runs");
        assert!(status.success(), "kill -INT {pid}");
        let mut rest = String::new();
        self.stdout
            .read_to_string(&mut rest)
            .expect("the sim's summary");
        let _ = self.child.wait();
        let mut counts = SimCounts::default();
        let summary = rest
            .split_once("served by the sim")
            .unwrap_or_else(|| panic!("no summary in {rest:?}"))
            .1;
        for line in summary.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["attempts", n, ..] => counts.attempts = n.parse().expect("a count"),
                [status, .., n] => match (status.parse::<u16>(), n.parse::<u64>()) {
                    (Ok(200), Ok(n)) => counts.ok = n,
                    (Ok(429), Ok(n)) => counts.too_many = n,
                    _ => {}
                },
                _ => {}
            }
        }
        assert!(counts.attempts > 0, "the sim saw nothing: {rest}");
        counts
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One fleet run: what the sim counted and each process reported.
#[derive(Debug)]
struct FleetRun {
    sim: SimCounts,
    reports: Vec<Value>,
    wall: Duration,
}

impl FleetRun {
    fn succeeded(&self) -> u64 {
        self.reports.iter().map(|r| count(&r["succeeded"])).sum()
    }

    /// 429s per attempt, as the sim counted them.
    fn share_429(&self) -> f64 {
        self.sim.too_many as f64 / self.sim.attempts as f64
    }

    /// The wall time against requests / rate.
    fn ideal_ratio(&self) -> f64 {
        self.wall.as_secs_f64() / (FLEET_REQUESTS as f64 / SIM_RATE as f64)
    }

    fn print(&self, label: &str) {
        let longest = self
            .reports
            .iter()
            .map(|r| r["elapsed_ms"].as_f64().unwrap_or(0.0))
            .fold(0.0, f64::max);
        let store_errors: u64 = self
            .reports
            .iter()
            .map(|r| count(&r["quota_store_errors"]))
            .sum();
        println!(
            "{label}: {} attempts seen by the sim, {} 429 ({:.2} %), {} of {FLEET_REQUESTS} \
             succeeded, {store_errors} quota store errors; wall {:.2} s = {:.2} × the ideal \
             {:.1} s (longest process {:.2} s)",
            self.sim.attempts,
            self.sim.too_many,
            100.0 * self.share_429(),
            self.succeeded(),
            self.wall.as_secs_f64(),
            self.ideal_ratio(),
            FLEET_REQUESTS as f64 / SIM_RATE as f64,
            longest / 1000.0,
        );
    }
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Runs `processes` `evenkeel load`s at once against a fresh sim speaking
/// `dialect`, sharing the fleet's requests, with `flags` added.
fn fleet(dialect: &str, processes: usize, flags: &[&str]) -> FleetRun {
    let sim = SimProcess::start(dialect);
    let url = format!("{}/v1/messages", sim.url);
    let per = (FLEET_REQUESTS / processes).to_string();
    let started = Instant::now();
    let children: Vec<Child> = (0..processes)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_evenkeel"))
                .args(["load", "--url", &url, "-n", &per, "-c", "4", "--json"])
                .args(flags)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("the binary runs")
        })
        .collect();
    let reports = children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().expect("the load ends");
            assert!(output.status.success(), "{output:?}");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let last = stdout.lines().last().expect("a report");
            serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
        })
        .collect();
    let wall = started.elapsed();
    FleetRun {
        sim: sim.stop(),
        reports,
        wall,
    }
}

fn rate_limit() -> String {
    format!("{SIM_RATE}/s:{DECLARED_BURST}")
}

#[test]
fn four_processes_on_one_redis_share_a_declared_quota_and_on_memory_do_not() {
    let _serial = serial();
    let redis = Redis::start();
    let rate = rate_limit();
    let store = redis.url();

    let memory = fleet(
        "none",
        4,
        &[
            "--quota-key",
            "team",
            "--rate-limit",
            &rate,
            "--quota-store",
            "memory",
        ],
    );
    memory.print("4 processes, memory store, declared rate");
    let shared = fleet(
        "none",
        4,
        &[
            "--quota-key",
            "team",
            "--rate-limit",
            &rate,
            "--quota-store",
            &store,
        ],
    );
    shared.print("4 processes, Redis store, declared rate");

    assert_eq!(shared.succeeded(), FLEET_REQUESTS as u64, "{shared:?}");
    assert!(shared.share_429() <= 0.01, "{shared:?}");
    // Each process alone thinks it has the whole quota: four times the
    // rate goes out and the sim refuses what is over.
    assert!(
        memory.share_429() >= 0.05 && memory.share_429() >= 5.0 * shared.share_429(),
        "memory {memory:?}\nredis {shared:?}"
    );
}

#[test]
fn four_processes_on_one_redis_share_a_quota_learned_from_anthropic_headers() {
    let _serial = serial();
    let redis = Redis::start();
    let store = redis.url();
    let memory = fleet(
        "anthropic",
        4,
        &["--quota-key", "team", "--quota-store", "memory"],
    );
    memory.print("4 processes, memory store, Anthropic headers");
    let shared = fleet(
        "anthropic",
        4,
        &["--quota-key", "team", "--quota-store", &store],
    );
    shared.print("4 processes, Redis store, Anthropic headers");
    assert_eq!(shared.succeeded(), FLEET_REQUESTS as u64, "{shared:?}");
    assert!(shared.share_429() <= 0.01, "{shared:?}");
    // Alone, each process reads the same `remaining` and spends it as its
    // own.
    assert!(
        memory.sim.too_many > shared.sim.too_many,
        "memory {memory:?}\nredis {shared:?}"
    );
}

/// Sends one RESP command (space-separated words) and reads one line.
fn redis_command(redis: &Redis, command: &str) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", redis.port)).expect("redis answers");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let words: Vec<&str> = command.split(' ').collect();
    let mut out = format!("*{}\r\n", words.len());
    for w in words {
        out.push_str(&format!("${}\r\n{w}\r\n", w.len()));
    }
    conn.write_all(out.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line).unwrap();
    line.trim().to_owned()
}

#[test]
fn the_quota_key_names_the_state_in_redis() {
    let _serial = serial();
    let redis = Redis::start();
    let sim = SimProcess::start("none");
    let url = format!("{}/v1/messages", sim.url);
    let output = Command::new(env!("CARGO_BIN_EXE_evenkeel"))
        .args(["load", "--url", &url, "-n", "3", "-c", "1", "--json"])
        .args(["--quota-store", &redis.url(), "--quota-key", "acme-prod"])
        .args(["--rate-limit", "600/min"])
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(redis_command(&redis, "EXISTS evenkeel:{acme-prod}:s"), ":1");
    assert_eq!(redis_command(&redis, "EXISTS evenkeel:{127.0.0.1}:s"), ":0");
    let counts = sim.stop();
    assert_eq!((counts.attempts, counts.ok), (3, 3), "{counts:?}");
}

#[test]
fn eight_processes_on_one_redis_share_a_declared_quota() {
    let _serial = serial();
    let redis = Redis::start();
    let rate = rate_limit();
    let store = redis.url();
    let shared = fleet(
        "none",
        8,
        &[
            "--quota-key",
            "team",
            "--rate-limit",
            &rate,
            "--quota-store",
            &store,
        ],
    );
    shared.print("8 processes, Redis store, declared rate");
    assert_eq!(shared.succeeded(), FLEET_REQUESTS as u64, "{shared:?}");
    assert!(shared.share_429() <= 0.01, "{shared:?}");
}
