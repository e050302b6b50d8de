//! Noisy neighbour: cache A is driven far over its ECPU/s limit while cache B
//! runs a steady open-loop load; reports B's latency with and without A.
//!
//! The server runs pinned to CPU 0, this client to CPU 1 (start it with
//! `taskset -c 1`); phases alternate (B alone, B with A) for `--runs` rounds
//! and medians are reported.
//!
//! `cargo build --release --workspace && taskset -c 1 target/release/noisy`

use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use stratus_loadtest::median;
use stratus_loadtest::resp::{Conn, Errors, encode};
use stratus_loadtest::server::{create_cache, http, start_stratus};

#[derive(Parser)]
struct Args {
    /// Rounds of (B alone, B with A).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Cache B's steady rate, requests per second.
    #[arg(long, default_value_t = 2000)]
    b_rate: u64,
    /// Cache A's ECPU/s limit.
    #[arg(long, default_value_t = 5000)]
    a_limit: u64,
    /// Cache A's connections (closed loop, pipelined).
    #[arg(long, default_value_t = 100)]
    a_conns: usize,
    /// Cache A's pipeline depth.
    #[arg(long, default_value_t = 32)]
    a_depth: usize,
    /// CPU for the server (taskset).
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
}

/// B: `conns` connections, each sending one GET every `conns / rate` seconds
/// (open loop); latency is each request's round trip (tokio's timer has a
/// 1 ms grain, so counting from the schedule would measure the timer).
async fn steady(
    addr: std::net::SocketAddr,
    token: &str,
    rate: u64,
    until: Instant,
) -> (Histogram<u64>, Errors) {
    let conns = 4u64;
    let interval = Duration::from_nanos(1_000_000_000 * conns / rate);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let token = token.to_string();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let mut errors = Errors::default();
            let mut conn = Conn::connect(addr, Some(("b", &token)))
                .await
                .expect("connect B");
            let get = vec![encode(&[b"GET", format!("key:{c}").as_bytes()])];
            let mut next = Instant::now() + interval * c as u32 / conns as u32;
            while next < until {
                tokio::time::sleep_until(next.into()).await;
                conn.send_batch(&get, Some(&mut hist), &mut errors)
                    .await
                    .expect("B request");
                next += interval;
            }
            (hist, errors)
        }));
    }
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let mut errors = Errors::default();
    for t in tasks {
        let (h, e) = t.await.expect("task");
        hist.add(h).expect("merge");
        errors.add(&e);
    }
    (hist, errors)
}

/// A: closed loop, pipelined GETs as fast as the server answers.
async fn hammer(
    addr: std::net::SocketAddr,
    token: &str,
    conns: usize,
    depth: usize,
    until: Instant,
) -> (u64, Errors) {
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let token = token.to_string();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr, Some(("a", &token)))
                .await
                .expect("connect A");
            let batch: Vec<Vec<u8>> = (0..depth)
                .map(|i| encode(&[b"GET", format!("k{i}").as_bytes()]))
                .collect();
            let mut errors = Errors::default();
            let mut sent = 0u64;
            while Instant::now() < until {
                if conn.send_batch(&batch, None, &mut errors).await.is_err() {
                    break;
                }
                sent += depth as u64;
            }
            (sent, errors)
        }));
    }
    let mut sent = 0;
    let mut errors = Errors::default();
    for t in tasks {
        let (s, e) = t.await.expect("task");
        sent += s;
        errors.add(&e);
    }
    (sent, errors)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = Args::parse();
    let server = start_stratus(Some(a.server_cpu), &[]);
    let http_addr = server.http.expect("http address");
    let limits_a = format!(r#"{{"ecpu_per_second": {{"maximum": {}}}}}"#, a.a_limit);
    let token_a = create_cache(http_addr, "a", &limits_a);
    let token_b = create_cache(http_addr, "b", "{}");
    let phase = Duration::from_secs(a.seconds);
    let (mut alone50, mut alone99, mut noisy50, mut noisy99, mut a_rate) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut a_throttled = 0;
    for run in 0..a.runs {
        let until = Instant::now() + phase;
        let (h, e) = steady(server.resp, &token_b, a.b_rate, until).await;
        assert_eq!(e.total(), 0, "B saw errors alone: {e:?}");
        alone50.push(ms(h.value_at_quantile(0.5)));
        alone99.push(ms(h.value_at_quantile(0.99)));

        let (_, before) = http(http_addr, "GET", "/v1/caches/a/usage", "");
        let ecpu_before =
            serde_json::from_str::<serde_json::Value>(&before).expect("json")["ecpu_total"]
                .as_f64()
                .unwrap_or(0.0);
        let until = Instant::now() + phase;
        let started = Instant::now();
        let noisy = tokio::spawn({
            let token_a = token_a.clone();
            let (conns, depth, addr) = (a.a_conns, a.a_depth, server.resp);
            async move { hammer(addr, &token_a, conns, depth, until).await }
        });
        let (h, e) = steady(server.resp, &token_b, a.b_rate, until).await;
        let (a_sent, a_errors) = noisy.await.expect("A");
        let elapsed = started.elapsed().as_secs_f64();
        let (_, after) = http(http_addr, "GET", "/v1/caches/a/usage", "");
        let ecpu_after =
            serde_json::from_str::<serde_json::Value>(&after).expect("json")["ecpu_total"]
                .as_f64()
                .unwrap_or(0.0);
        assert_eq!(e.total(), 0, "B saw errors next to A: {e:?}");
        noisy50.push(ms(h.value_at_quantile(0.5)));
        noisy99.push(ms(h.value_at_quantile(0.99)));
        a_rate.push((ecpu_after - ecpu_before) / elapsed);
        a_throttled += a_errors.throttled;
        println!(
            "run {}: B alone p50 {:.3} ms p99 {:.3} ms | with A p50 {:.3} ms p99 {:.3} ms | A sent {a_sent}, throttled {}, metered {:.0} ECPU/s",
            run + 1,
            alone50[run],
            alone99[run],
            noisy50[run],
            noisy99[run],
            a_errors.throttled,
            a_rate[run]
        );
    }
    println!();
    println!(
        "cache B at {} req/s, cache A limited to {} ECPU/s driven by {} conns × pipeline {} ({} runs of {} s, medians):",
        a.b_rate, a.a_limit, a.a_conns, a.a_depth, a.runs, a.seconds
    );
    println!(
        "  B alone:  p50 {:.3} ms  p99 {:.3} ms",
        median(alone50),
        median(alone99)
    );
    println!(
        "  B with A: p50 {:.3} ms  p99 {:.3} ms",
        median(noisy50),
        median(noisy99)
    );
    println!(
        "  A metered {:.0} ECPU/s (limit {}), {} requests throttled",
        median(a_rate),
        a.a_limit,
        a_throttled
    );
}
