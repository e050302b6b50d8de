//! Stratus against a real redis-server on the same machine, same workload.
//!
//! Each server runs pinned to CPU 0 (`taskset`), this client should run on
//! CPU 1 (`taskset -c 1`). For each pipelining depth, runs alternate between
//! the two servers (fresh server per run, keys preloaded), and medians are
//! compared. Then memory: 1 M keys of 100 B values loaded into each server,
//! resident memory growth per key.
//!
//! ```text
//! cargo build --release --workspace
//! taskset -c 1 target/release/compare
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
    /// Pipelining depths to compare.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
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

/// SETs `n` keys `<prefix>:<i>` of `size` bytes, pipelined 100 deep.
async fn preload(addr: std::net::SocketAddr, prefix: &str, n: u64, size: usize) {
    let mut conn = Conn::connect(addr, None).await.expect("connect");
    let value = vec![b'v'; size];
    let mut errors = Errors::default();
    let mut i = 0;
    while i < n {
        let batch: Vec<Vec<u8>> = (i..(i + 100).min(n))
            .map(|k| encode(&[b"SET", format!("{prefix}:{k}").as_bytes(), &value]))
            .collect();
        conn.send_batch(&batch, None, &mut errors)
            .await
            .expect("preload");
        i += 100;
    }
    assert_eq!(errors.total(), 0, "preload errors");
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

async fn memory_per_key(kind: Kind, a: &Args) -> f64 {
    let server = start(kind, a.server_cpu);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.child.id();
    let before = rss_bytes(pid);
    preload(server.resp, "key", a.memory_keys, 100).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes(pid);
    (after.saturating_sub(before)) as f64 / a.memory_keys as f64
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = Args::parse();
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
        let (mut s, mut r) = (Vec::new(), Vec::new());
        for i in 0..a.runs {
            let order = if i % 2 == 0 {
                [Kind::Redis, Kind::Stratus]
            } else {
                [Kind::Stratus, Kind::Redis]
            };
            for kind in order {
                let f = one_run(kind, &a, pipeline).await;
                if kind == Kind::Stratus {
                    s.push(f)
                } else {
                    r.push(f)
                }
            }
        }
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
    if a.memory_keys > 0 {
        let s = memory_per_key(Kind::Stratus, &a).await;
        let r = memory_per_key(Kind::Redis, &a).await;
        println!(
            "memory for {} keys of 100 B: stratus {s:.0} B/key, redis {r:.0} B/key, ratio {:.2}",
            a.memory_keys,
            s / r
        );
    }
}
