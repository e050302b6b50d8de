//! Stratus against a real redis-server on the same machine, same workload.
//!
//! Each server runs pinned to CPU 0 (`taskset`), this client should run on
//! CPU 1 (`taskset -c 1`). Runs alternate between the two servers (a fresh
//! server per run), and medians are compared:
//! 1. the GET/SET mix of this crate's load generator, at each pipelining
//!    depth (keys preloaded);
//! 2. `redis-benchmark` rows (`--threads 1`, 50 connections, 100 k random
//!    keys, 100 B values): GET and SET at pipeline 16 and 1, ZADD, HSET,
//!    LPUSH and INCR at pipeline 1 — ops/s, p50, p99 and the server's CPU
//!    per request (from `/proc/<pid>/stat`);
//! 3. memory: 1 M keys of 100 B, then 1 M small hashes, sets and sorted
//!    sets of 10 fields or members, loaded into each server: resident
//!    memory growth per key.
//!
//! ```text
//! cargo build --release --workspace
//! taskset -c 1 target/release/compare
//! # memory of small collections only (no mix, no redis-benchmark rows):
//! taskset -c 1 target/release/compare --pipelines --bench-rows "" --memory-keys 0
//! ```

use std::time::Duration;

use clap::Parser;
use stratus_loadtest::median;
use stratus_loadtest::resp::{Conn, Errors, encode};
use stratus_loadtest::run::{Target, run};
use stratus_loadtest::scenario::{Distribution, Scenario, Simple};
use stratus_loadtest::server::{ServerProcess, rss_bytes, start_redis, start_stratus};

#[derive(Parser)]
struct Args {
    /// Runs per server and depth (medians reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Pipelining depths of the GET/SET mix to compare (`--pipelines` with
    /// no value: skip the mix).
    #[arg(long, value_delimiter = ',', default_value = "1,16", num_args = 0..)]
    pipelines: Vec<usize>,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Fraction of GETs.
    #[arg(long, default_value_t = 0.8)]
    read_ratio: f64,
    /// Keys for the memory comparison.
    #[arg(long, default_value_t = 1_000_000)]
    memory_keys: u64,
    /// CPU the servers are pinned to.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// redis-benchmark rows, `test:pipeline` (empty: none).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "get:16,set:16,get:1,set:1,zadd:1,hset:1,lpush:1,incr:1"
    )]
    bench_rows: Vec<String>,
    /// Requests per redis-benchmark run at pipeline 16 (a fifth at pipeline 1).
    #[arg(long, default_value_t = 1_500_000)]
    bench_requests: u64,
    /// Keys for the memory comparison of small collections (0 = skip).
    #[arg(long, default_value_t = 1_000_000)]
    collection_keys: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Stratus,
    Redis,
}

fn start(kind: Kind, cpu: usize) -> ServerProcess {
    match kind {
        Kind::Stratus => start_stratus(Some(cpu), &[]),
        Kind::Redis => start_redis(Some(cpu)),
    }
}

/// Sends `command(i)` for `i` in `0..n`, pipelined 100 deep; every reply
/// must be a success.
async fn load(addr: std::net::SocketAddr, n: u64, command: impl Fn(u64) -> Vec<u8>) {
    let mut conn = Conn::connect(addr, None).await.expect("connect");
    let mut errors = Errors::default();
    let mut i = 0;
    while i < n {
        let batch: Vec<Vec<u8>> = (i..(i + 100).min(n)).map(&command).collect();
        conn.send_batch(&batch, None, &mut errors)
            .await
            .expect("load");
        i += 100;
    }
    assert_eq!(errors.total(), 0, "load errors");
}

/// SETs `n` keys `<prefix>:<i>` of `size` bytes.
async fn preload(addr: std::net::SocketAddr, prefix: &str, n: u64, size: usize) {
    let value = vec![b'v'; size];
    load(addr, n, |k| {
        encode(&[b"SET", format!("{prefix}:{k}").as_bytes(), &value])
    })
    .await;
}

struct Figures {
    ops: f64,
    p50_us: u64,
    p99_us: u64,
}

async fn one_run(kind: Kind, a: &Args, pipeline: usize) -> Figures {
    let server = start(kind, a.server_cpu);
    preload(server.resp, "load", a.keys, a.value_size).await;
    let w = Simple {
        connections: a.connections,
        pipeline,
        keys: a.keys,
        distribution: Distribution::Uniform,
        value_size: a.value_size,
        read_ratio: a.read_ratio,
        rate: 0,
        secs: a.seconds,
    };
    let scenario = Scenario::simple("compare", w, None);
    let report = run(
        &scenario,
        Target {
            resp: server.resp,
            http: None,
        },
        |_| {},
    )
    .await
    .expect("run");
    let t = &report.totals["load"];
    assert_eq!(t.errors.other, 0, "errors during the run");
    Figures {
        ops: t.ops_per_sec,
        p50_us: t.latency.p50_us,
        p99_us: t.latency.p99_us,
    }
}

/// `run` on each server `runs` times, alternating which goes first:
/// (Stratus's results, Redis's).
async fn alternated<T, F: Future<Output = T>>(
    runs: usize,
    mut run: impl FnMut(Kind) -> F,
) -> (Vec<T>, Vec<T>) {
    let (mut s, mut r) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let order = if i % 2 == 0 {
            [Kind::Redis, Kind::Stratus]
        } else {
            [Kind::Stratus, Kind::Redis]
        };
        for kind in order {
            let f = run(kind).await;
            match kind {
                Kind::Stratus => s.push(f),
                Kind::Redis => r.push(f),
            }
        }
    }
    (s, r)
}

/// User plus system CPU seconds a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime, stime
    // are the 12th and 13th of them, in clock ticks (100 per second).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

/// One redis-benchmark row against a fresh server: ops/s, p50 and p99 in
/// µs, server CPU µs per request.
fn bench_row(kind: Kind, a: &Args, test: &str, pipeline: usize) -> [f64; 4] {
    let server = start(kind, a.server_cpu);
    let port = server.resp.port().to_string();
    let requests = if pipeline > 1 {
        a.bench_requests
    } else {
        a.bench_requests / 5
    };
    let bench = |test: &str, n: u64, pipeline: usize| {
        std::process::Command::new("redis-benchmark")
            .args(["-p", &port, "-t", test, "-P", &pipeline.to_string()])
            .args(["-n", &n.to_string(), "-c", &a.connections.to_string()])
            .args(["-r", "100000", "-d", "100", "--threads", "1", "--csv"])
            .output()
            .expect("redis-benchmark (Debian's redis-tools) runs")
    };
    // The keys GET reads.
    bench("set", 300_000, 16);
    let pid = server.child.id();
    let cpu = cpu_seconds(pid);
    let out = bench(test, requests, pipeline);
    let cpu = cpu_seconds(pid) - cpu;
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
    // "p95_latency_ms","p99_latency_ms","max_latency_ms"
    let row: Vec<f64> = text
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split(',')
        .skip(1)
        .map(|f| f.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    let field = |i: usize| row.get(i).copied().unwrap_or(f64::NAN);
    [
        field(0),
        field(3) * 1000.0,
        field(5) * 1000.0,
        cpu * 1e6 / requests as f64,
    ]
}

/// Resident memory growth per key of a fresh server sent `command(i)`
/// for `i` in `0..n`, each creating one key.
async fn memory_per_key(kind: Kind, a: &Args, n: u64, command: impl Fn(u64) -> Vec<u8>) -> f64 {
    let server = start(kind, a.server_cpu);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.child.id();
    let before = rss_bytes(pid);
    load(server.resp, n, command).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    (rss_bytes(pid).saturating_sub(before)) as f64 / n as f64
}

/// The command creating key `k` of a small collection type (`hash`,
/// `set` or `zset`) with 10 fields or members.
fn collection_command(which: &str, k: u64) -> Vec<u8> {
    let mut args: Vec<Vec<u8>> = vec![
        match which {
            "hash" => b"HSET".to_vec(),
            "set" => b"SADD".to_vec(),
            _ => b"ZADD".to_vec(),
        },
        format!("{which}:{k}").into_bytes(),
    ];
    for f in 0..10 {
        match which {
            "hash" => {
                args.push(format!("field:{f}").into_bytes());
                args.push(format!("value:{k:08}").into_bytes());
            }
            "set" => args.push(format!("member:{f}:{k}").into_bytes()),
            _ => {
                args.push(f.to_string().into_bytes());
                args.push(format!("member:{f}:{k}").into_bytes());
            }
        }
    }
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    encode(&refs)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = Args::parse();
    if !a.pipelines.is_empty() {
        mix_table(&a).await;
    }
    bench_table(&a).await;
    memory_table(&a).await;
}

/// Part 1: the GET/SET mix at each pipelining depth.
async fn mix_table(a: &Args) {
    println!(
        "GET/SET {:.0}/{:.0} on {} keys of {} B, {} connections, closed loop, {} runs x {} s, servers on CPU {} (medians)",
        a.read_ratio * 100.0,
        (1.0 - a.read_ratio) * 100.0,
        a.keys,
        a.value_size,
        a.connections,
        a.runs,
        a.seconds,
        a.server_cpu
    );
    println!(
        "{:>8} {:>12} {:>12} {:>8} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8}",
        "pipeline",
        "stratus op/s",
        "redis op/s",
        "ratio",
        "s p50 µs",
        "r p50 µs",
        "ratio",
        "s p99 µs",
        "r p99 µs",
        "ratio"
    );
    for &pipeline in &a.pipelines {
        let (s, r) = alternated(a.runs, |kind| one_run(kind, a, pipeline)).await;
        let m = |v: &[Figures], f: fn(&Figures) -> f64| median(v.iter().map(f).collect());
        let (so, ro) = (m(&s, |f| f.ops), m(&r, |f| f.ops));
        let (s50, r50) = (m(&s, |f| f.p50_us as f64), m(&r, |f| f.p50_us as f64));
        let (s99, r99) = (m(&s, |f| f.p99_us as f64), m(&r, |f| f.p99_us as f64));
        println!(
            "{pipeline:>8} {so:>12.0} {ro:>12.0} {:>8.2} {s50:>10.0} {r50:>10.0} {:>8.2} {s99:>10.0} {r99:>10.0} {:>8.2}",
            so / ro,
            s50 / r50,
            s99 / r99
        );
    }
}

/// Part 2: the redis-benchmark rows.
async fn bench_table(a: &Args) {
    if !a.bench_rows.iter().all(String::is_empty) {
        println!(
            "redis-benchmark --threads 1, {} connections, -r 100000 -d 100 (medians of {} runs)",
            a.connections, a.runs
        );
        println!(
            "{:>10} {:>12} {:>12} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>6}",
            "row",
            "stratus op/s",
            "redis op/s",
            "ratio",
            "s p50",
            "r p50",
            "s p99",
            "r p99",
            "s cpu/op",
            "r cpu/op",
            "ratio"
        );
    }
    for row in a.bench_rows.iter().filter(|r| !r.is_empty()) {
        let (test, pipeline) = row.split_once(':').unwrap_or((row, "1"));
        let pipeline: usize = pipeline.parse().unwrap_or(1);
        let (s, r) = alternated(a.runs, |kind| {
            std::future::ready(bench_row(kind, a, test, pipeline))
        })
        .await;
        let m = |v: &[[f64; 4]], i: usize| median(v.iter().map(|f| f[i]).collect());
        println!(
            "{:>10} {:>12.0} {:>12.0} {:>6.2} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>9.2} {:>9.2} {:>6.2}",
            format!("{test} P{pipeline}"),
            m(&s, 0),
            m(&r, 0),
            m(&s, 0) / m(&r, 0),
            m(&s, 1),
            m(&r, 1),
            m(&s, 2),
            m(&r, 2),
            m(&s, 3),
            m(&r, 3),
            m(&s, 3) / m(&r, 3)
        );
    }
}

/// Part 3: memory per key, strings then small collections.
async fn memory_table(a: &Args) {
    if a.memory_keys > 0 {
        let value = vec![b'v'; 100];
        let set = |k: u64| encode(&[b"SET", format!("key:{k}").as_bytes(), &value]);
        memory_row(a, a.memory_keys, "keys of 100 B", set).await;
    }
    if a.collection_keys > 0 {
        for which in ["hash", "set", "zset"] {
            let label = format!("{which} keys of 10 fields or members");
            memory_row(a, a.collection_keys, &label, |k| {
                collection_command(which, k)
            })
            .await;
        }
    }
}

/// One memory line: `keys` written by `command` into each server, fresh.
async fn memory_row(a: &Args, keys: u64, label: &str, command: impl Fn(u64) -> Vec<u8> + Copy) {
    let s = memory_per_key(Kind::Stratus, a, keys, command).await;
    let r = memory_per_key(Kind::Redis, a, keys, command).await;
    println!(
        "memory for {keys} {label}: stratus {s:.0} B/key, redis {r:.0} B/key, ratio {:.2}",
        s / r
    );
}
