//! The Memcached mode of the load generator: get/set over the Memcached
//! text protocol, closed loop, N connections.
//!
//! Without `--target`, compares Stratus's Memcached port (its open
//! `default-memcached` cache) with a real `memcached -t 1`, each server
//! pinned to `--server-cpu` (run this client on another CPU), runs
//! alternating, medians reported; then memory: `--memory-items` items of
//! 100 B loaded into each, resident memory growth per item.
//! With `--target host:port`, drives that server once (`--auth user:token`
//! for a Stratus cache that needs it).
//!
//! ```text
//! cargo build --release --workspace
//! taskset -c 1 target/release/mcbench
//! target/release/mcbench --target 127.0.0.1:11211 --seconds 10
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use rand::Rng;
use stratus_loadtest::median;
use stratus_loadtest::server::{ServerProcess, rss_bytes, start_memcached, start_stratus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Clone)]
struct Args {
    /// Drive this Memcached server once instead of comparing.
    #[arg(long)]
    target: Option<SocketAddr>,
    /// `<user> <password>` for memcached's text authentication (Stratus:
    /// `<cache>` and its token).
    #[arg(long)]
    auth: Option<String>,
    /// Runs per server (medians reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Fraction of gets (the rest are sets).
    #[arg(long, default_value_t = 0.8)]
    read_ratio: f64,
    /// Items for the memory comparison (0 = skip it).
    #[arg(long, default_value_t = 1_000_000)]
    memory_items: u64,
    /// CPU the servers are pinned to.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
}

/// One connection, authenticated if asked.
async fn connect(addr: SocketAddr, auth: Option<&str>) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    if let Some(creds) = auth {
        let line = format!("set auth 0 0 {}\r\n{creds}\r\n", creds.len());
        s.write_all(line.as_bytes()).await?;
        let mut reply = [0u8; 64];
        let n = s.read(&mut reply).await?;
        if !reply[..n].starts_with(b"STORED") {
            return Err(std::io::Error::other(format!(
                "authentication refused: {}",
                String::from_utf8_lossy(&reply[..n])
            )));
        }
    }
    Ok(s)
}

/// Reads replies until `expected` of them are complete: `END` for a get
/// (after any `VALUE` block), a line for anything else. Returns the count
/// of error lines.
async fn read_replies(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    kinds: &[bool],
) -> std::io::Result<u64> {
    let mut errors = 0;
    let mut pos = 0;
    let mut done = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    while done < kinds.len() {
        // Parse what is buffered.
        while done < kinds.len() {
            let Some(nl) = memchr(&buf[pos..]) else { break };
            let line = &buf[pos..pos + nl];
            if kinds[done] && line.starts_with(b"VALUE ") {
                let len: usize = std::str::from_utf8(line)
                    .ok()
                    .and_then(|l| l.split(' ').nth(3))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                let end = pos + nl + 1 + len + 2;
                if buf.len() < end {
                    break;
                }
                pos = end;
                continue;
            }
            if !(line.starts_with(b"END") || line.starts_with(b"STORED")) {
                errors += 1;
            }
            pos += nl + 1;
            done += 1;
        }
        if done == kinds.len() {
            break;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..pos);
    Ok(errors)
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|c| *c == b'\n')
}

/// Sets `n` items `<prefix>:<i>` of `size` bytes, 100 per write.
async fn preload(addr: SocketAddr, auth: Option<&str>, prefix: &str, n: u64, size: usize) {
    let mut s = connect(addr, auth).await.expect("connect");
    let value = vec![b'v'; size];
    let mut buf = Vec::new();
    let mut i = 0;
    while i < n {
        let end = (i + 100).min(n);
        let mut out = Vec::new();
        for k in i..end {
            out.extend_from_slice(format!("set {prefix}:{k} 0 0 {size}\r\n").as_bytes());
            out.extend_from_slice(&value);
            out.extend_from_slice(b"\r\n");
        }
        s.write_all(&out).await.expect("preload write");
        let kinds = vec![false; (end - i) as usize];
        let errors = read_replies(&mut s, &mut buf, &kinds)
            .await
            .expect("preload");
        assert_eq!(errors, 0, "preload errors");
        i = end;
    }
}

struct Figures {
    ops: f64,
    p50_us: u64,
    p99_us: u64,
    errors: u64,
}

/// The closed-loop run: every connection sends `pipeline` requests, waits
/// for their replies, and again, for `seconds`.
async fn drive(addr: SocketAddr, a: &Args) -> Figures {
    let until = Instant::now() + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for _ in 0..a.connections {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = connect(addr, a.auth.as_deref()).await.expect("connect");
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            let (mut ops, mut errors) = (0u64, 0u64);
            let value = vec![b'x'; a.value_size];
            let mut buf = Vec::new();
            let mut out = Vec::new();
            let mut kinds = Vec::with_capacity(a.pipeline);
            while Instant::now() < until {
                out.clear();
                kinds.clear();
                {
                    let mut rng = rand::rng();
                    for _ in 0..a.pipeline {
                        let key = rng.random_range(0..a.keys);
                        if rng.random_bool(a.read_ratio) {
                            out.extend_from_slice(format!("get key:{key}\r\n").as_bytes());
                            kinds.push(true);
                        } else {
                            out.extend_from_slice(
                                format!("set key:{key} 0 0 {}\r\n", a.value_size).as_bytes(),
                            );
                            out.extend_from_slice(&value);
                            out.extend_from_slice(b"\r\n");
                            kinds.push(false);
                        }
                    }
                }
                let t = Instant::now();
                if s.write_all(&out).await.is_err() {
                    errors += a.pipeline as u64;
                    break;
                }
                match read_replies(&mut s, &mut buf, &kinds).await {
                    Ok(e) => errors += e,
                    Err(_) => {
                        errors += a.pipeline as u64;
                        break;
                    }
                }
                let us = t.elapsed().as_micros() as u64;
                for _ in 0..a.pipeline {
                    let _ = h.record(us.max(1));
                }
                ops += a.pipeline as u64;
            }
            (h, ops, errors)
        }));
    }
    let mut all = Histogram::<u64>::new(3).expect("histogram");
    let (mut ops, mut errors) = (0, 0);
    for t in tasks {
        let (h, o, e) = t.await.expect("connection task");
        all.add(&h).expect("merge");
        ops += o;
        errors += e;
    }
    Figures {
        ops: ops as f64 / a.seconds as f64,
        p50_us: all.value_at_quantile(0.5),
        p99_us: all.value_at_quantile(0.99),
        errors,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Stratus,
    Memcached,
}

fn start(kind: Kind, a: &Args) -> (ServerProcess, SocketAddr) {
    match kind {
        Kind::Stratus => {
            let s = start_stratus(Some(a.server_cpu), &[]);
            let addr = s.memcached.expect("stratus reported its Memcached port");
            (s, addr)
        }
        Kind::Memcached => {
            let s = start_memcached(Some(a.server_cpu), 4096);
            let addr = s.resp;
            (s, addr)
        }
    }
}

async fn one_run(kind: Kind, a: &Args) -> Figures {
    let (_server, addr) = start(kind, a);
    preload(addr, None, "key", a.keys, a.value_size).await;
    drive(addr, a).await
}

async fn memory_per_item(kind: Kind, a: &Args) -> f64 {
    let (server, addr) = start(kind, a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.child.id();
    let before = rss_bytes(pid);
    preload(addr, None, "key", a.memory_items, 100).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes(pid);
    after.saturating_sub(before) as f64 / a.memory_items as f64
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    if let Some(addr) = a.target {
        preload(addr, a.auth.as_deref(), "key", a.keys, a.value_size).await;
        let f = drive(addr, &a).await;
        println!(
            "{addr}: {:.0} op/s, p50 {} µs, p99 {} µs, {} errors ({} connections, pipeline {}, {} B values, {:.0}% gets)",
            f.ops,
            f.p50_us,
            f.p99_us,
            f.errors,
            a.connections,
            a.pipeline,
            a.value_size,
            a.read_ratio * 100.0
        );
        return;
    }
    println!(
        "get/set {:.0}/{:.0} on {} keys of {} B, {} connections, pipeline {}, {} runs x {} s, servers on CPU {} (medians)",
        a.read_ratio * 100.0,
        (1.0 - a.read_ratio) * 100.0,
        a.keys,
        a.value_size,
        a.connections,
        a.pipeline,
        a.runs,
        a.seconds,
        a.server_cpu
    );
    let (mut s, mut m) = (Vec::new(), Vec::new());
    for i in 0..a.runs {
        let order = if i % 2 == 0 {
            [Kind::Memcached, Kind::Stratus]
        } else {
            [Kind::Stratus, Kind::Memcached]
        };
        for kind in order {
            let f = one_run(kind, &a).await;
            assert_eq!(f.errors, 0, "errors during the run");
            if kind == Kind::Stratus {
                s.push(f);
            } else {
                m.push(f);
            }
        }
    }
    let med = |v: &[Figures], f: fn(&Figures) -> f64| median(v.iter().map(f).collect());
    let (so, mo) = (med(&s, |f| f.ops), med(&m, |f| f.ops));
    let (s50, m50) = (med(&s, |f| f.p50_us as f64), med(&m, |f| f.p50_us as f64));
    let (s99, m99) = (med(&s, |f| f.p99_us as f64), med(&m, |f| f.p99_us as f64));
    println!(
        "{:>14} {:>14} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "stratus op/s", "memcached op/s", "ratio", "s p50 µs", "m p50 µs", "s p99 µs", "m p99 µs"
    );
    println!(
        "{so:>14.0} {mo:>14.0} {:>7.2} {s50:>9.0} {m50:>9.0} {s99:>9.0} {m99:>9.0}",
        so / mo
    );
    if a.memory_items > 0 {
        let s = memory_per_item(Kind::Stratus, &a).await;
        let m = memory_per_item(Kind::Memcached, &a).await;
        println!(
            "memory for {} items of 100 B: stratus {s:.0} B/item, memcached {m:.0} B/item, ratio {:.2}",
            a.memory_items,
            s / m
        );
    }
}
