//! The Stratus load generator: runs a scenario file (or one ad-hoc workload
//! from flags) against a server on 127.0.0.1, shows progress, and writes
//! JSON, CSV and a PNG chart.
//!
//! ```text
//! cargo build --release --workspace
//! taskset -c 1 target/release/load --scenario loadtest/scenarios/autoscale.json --spawn --out results/autoscale
//! target/release/load --target 127.0.0.1:6379 --http 127.0.0.1:8080 --rate 50000 --seconds 30
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use stratus_loadtest::report;
use stratus_loadtest::run::{Target, run};
use stratus_loadtest::scenario::{Distribution, Scenario, Simple};
use stratus_loadtest::server::start_stratus_with_env;

#[derive(Parser)]
struct Args {
    /// Scenario file (JSON); without one, a single workload from the flags below.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Start `target/release/stratus` with the scenario's server environment.
    #[arg(long)]
    spawn: bool,
    /// CPU to pin a spawned server to (taskset).
    #[arg(long)]
    server_cpu: Option<usize>,
    /// RESP address of a running server.
    #[arg(long, default_value = "127.0.0.1:6379")]
    target: SocketAddr,
    /// Control API address of a running server (for caches and /metrics).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Output path stem: writes <out>.json, <out>.csv, <out>.png.
    #[arg(long, default_value = "results/run")]
    out: PathBuf,
    /// Ad hoc: connections.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Ad hoc: pipeline depth.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Ad hoc: ops/s (0 = closed loop).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Ad hoc: seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Ad hoc: distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Ad hoc: zipfian instead of uniform keys.
    #[arg(long)]
    zipfian: bool,
    /// Ad hoc: value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Ad hoc: fraction of GETs.
    #[arg(long, default_value_t = 0.8)]
    read_ratio: f64,
    /// Ad hoc: stop after this many requests.
    #[arg(long)]
    max_requests: Option<u64>,
}

fn ad_hoc(a: &Args) -> Scenario {
    let w = Simple {
        connections: a.connections,
        pipeline: a.pipeline,
        keys: a.keys,
        distribution: if a.zipfian {
            Distribution::Zipfian
        } else {
            Distribution::Uniform
        },
        value_size: a.value_size,
        read_ratio: a.read_ratio,
        rate: a.rate,
        secs: a.seconds,
    };
    Scenario::simple("ad-hoc", w, a.max_requests)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = Args::parse();
    let scenario = match &a.scenario {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            serde_json::from_str::<Scenario>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        }
        None => ad_hoc(&a),
    };
    if let Err(e) = scenario.validate() {
        eprintln!("invalid scenario: {e}");
        std::process::exit(2);
    }
    let env: Vec<(String, String)> = scenario
        .server_env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let server = a
        .spawn
        .then(|| start_stratus_with_env(a.server_cpu, &[], &env));
    let target = match &server {
        Some(s) => Target {
            resp: s.resp,
            http: s.http,
        },
        None => Target {
            resp: a.target,
            http: a.http,
        },
    };
    for addr in [Some(target.resp), target.http].into_iter().flatten() {
        assert!(
            addr.ip().is_loopback(),
            "load is generated against 127.0.0.1 only, not {addr}"
        );
    }
    let bar = ProgressBar::new(scenario.duration_secs);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} s  {msg}").expect("template"));
    let report = run(&scenario, target, |s| {
        let ops: u64 = s.workloads.values().map(|w| w.ops).sum();
        let p99 = s
            .workloads
            .values()
            .map(|w| w.latency.p99_us)
            .max()
            .unwrap_or(0);
        let parts: u64 = s.caches.values().map(|c| c.partitions).sum();
        let throttled: u64 = s.workloads.values().map(|w| w.errors.throttled).sum();
        bar.set_position(s.t);
        bar.set_message(format!(
            "{ops} ops/s  p99 {:.2} ms  partitions {parts}  throttled {throttled}",
            p99 as f64 / 1000.0
        ));
    })
    .await
    .unwrap_or_else(|e| panic!("run failed: {e}"));
    bar.finish();
    report::write_all(&report, &a.out).unwrap_or_else(|e| panic!("writing results: {e}"));
    println!("{} in {:.1} s", report.scenario.name, report.elapsed_secs);
    for (name, t) in &report.totals {
        println!(
            "  {name}: {} ops, {:.0} ops/s, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms, errors: throttled {} oom {} other {}",
            t.ops,
            t.ops_per_sec,
            t.latency.p50_us as f64 / 1000.0,
            t.latency.p99_us as f64 / 1000.0,
            t.latency.p999_us as f64 / 1000.0,
            t.latency.max_us as f64 / 1000.0,
            t.errors.throttled,
            t.errors.oom,
            t.errors.other
        );
    }
    println!("  results: {}.{{json,csv,png}}", a.out.display());
}
