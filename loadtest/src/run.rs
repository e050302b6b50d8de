//! Running a scenario: connection tasks per workload (open loop at the
//! scheduled rate, or closed loop), a sampler that records every second —
//! ops/s and latency per workload, and from the server's `/metrics` the
//! ECPU/s metered, partitions and bytes stored per cache — and the totals.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng, rngs::SmallRng};
use rand_distr::{Distribution as _, Zipf};
use serde::Serialize;

use crate::resp::{Conn, Errors, encode};
use crate::scenario::{Distribution, Scenario, Workload};
use crate::server::http;

/// Where the servers are.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub resp: SocketAddr,
    /// The control API (caches, `/metrics`); absent for plain Redis.
    pub http: Option<SocketAddr>,
}

/// Latency figures in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Errors by kind, serializable.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ErrorCounts {
    pub throttled: u64,
    pub oom: u64,
    pub other: u64,
}

impl From<Errors> for ErrorCounts {
    fn from(e: Errors) -> Self {
        ErrorCounts {
            throttled: e.throttled,
            oom: e.oom,
            other: e.other,
        }
    }
}

/// One workload during one second.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadSecond {
    pub ops: u64,
    pub target_rate: u64,
    pub latency: Latency,
    pub errors: ErrorCounts,
}

/// One cache during one second, from `/metrics`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CacheSecond {
    pub ecpu_per_sec: f64,
    pub partitions: u64,
    pub bytes: u64,
}

/// Everything recorded in one second.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    pub t: u64,
    pub workloads: BTreeMap<String, WorkloadSecond>,
    pub caches: BTreeMap<String, CacheSecond>,
}

/// A workload's totals.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadTotal {
    pub ops: u64,
    pub ops_per_sec: f64,
    pub latency: Latency,
    pub errors: ErrorCounts,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub seconds: Vec<Second>,
    pub totals: BTreeMap<String, WorkloadTotal>,
    pub elapsed_secs: f64,
}

/// Shared counters of one workload.
struct Live {
    ops: AtomicU64,
    second: Mutex<Histogram<u64>>,
    all: Mutex<Histogram<u64>>,
    errors: Mutex<Errors>,
    target: AtomicU64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// Creates the scenario's caches; returns each cache's credentials.
pub fn prepare(
    scenario: &Scenario,
    target: &Target,
) -> Result<BTreeMap<String, Option<(String, String)>>, String> {
    let mut creds = BTreeMap::new();
    creds.insert("default".to_string(), None);
    for c in &scenario.caches {
        let http_addr = target.http.ok_or("caches need the control API (--http)")?;
        let body = serde_json::json!({"name": c.name, "usage_limits": c.usage_limits}).to_string();
        let (status, reply) = http(http_addr, "POST", "/v1/caches", &body);
        if status != 201 {
            return Err(format!("create cache {}: {status} {reply}", c.name));
        }
        let v: serde_json::Value = serde_json::from_str(&reply).map_err(|e| e.to_string())?;
        let token = v["token"].as_str().ok_or("no token")?.to_string();
        creds.insert(c.name.clone(), Some((c.name.clone(), token)));
    }
    Ok(creds)
}

/// Parses `name{labels} value` lines of `metric` into (cache, value) sums.
pub fn scrape(text: &str, metric: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))
    {
        let Some(cache) = line
            .split("cache=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        *out.entry(cache.to_string()).or_insert(0.0) += v;
    }
    out
}

/// Picks keys as the workload says.
struct KeyPicker {
    keys: u64,
    zipf: Option<Zipf<f64>>,
    rng: SmallRng,
}

impl KeyPicker {
    fn new(w: &Workload, seed: u64) -> KeyPicker {
        let zipf = (w.distribution == Distribution::Zipfian)
            .then(|| Zipf::new(w.keys as f64, 0.99).expect("zipf"));
        KeyPicker {
            keys: w.keys,
            zipf,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    fn next(&mut self) -> u64 {
        match &self.zipf {
            Some(z) => (z.sample(&mut self.rng) as u64).saturating_sub(1),
            None => self.rng.random_range(0..self.keys),
        }
    }
}

/// What every connection task of a run shares.
#[derive(Clone)]
struct Control {
    started: Instant,
    stop: Arc<AtomicBool>,
    /// Requests left before the run's bound.
    budget: Arc<AtomicU64>,
}

async fn connection(
    w: Workload,
    creds: Option<(String, String)>,
    target: SocketAddr,
    index: usize,
    live: Arc<Live>,
    ctl: Control,
) {
    let Control {
        started,
        stop,
        budget,
    } = ctl;
    let auth = creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    let Ok(mut conn) = Conn::connect(target, auth).await else {
        live.errors.lock().expect("lock").other += 1;
        return;
    };
    let mut keys = KeyPicker::new(&w, index as u64 * 7919 + 1);
    let mut rng = SmallRng::seed_from_u64(index as u64);
    let value = vec![b'v'; w.value_size];
    let ttl = w.ttl_secs.map(|t| t.to_string());
    let begin = started + Duration::from_secs(w.start_secs);
    tokio::time::sleep_until(begin.into()).await;
    let mut next = Instant::now();
    let mut batch = Vec::with_capacity(w.pipeline);
    while !stop.load(Ordering::Relaxed) {
        let Some(rate) = w.rate_at(begin.elapsed().as_secs_f64()) else {
            break;
        };
        live.target.store(rate, Ordering::Relaxed);
        if budget.fetch_sub(w.pipeline as u64, Ordering::Relaxed) < w.pipeline as u64 {
            break;
        }
        if rate > 0 {
            // Open loop: this connection's share of the rate, one batch at a time.
            let per_conn = rate as f64 / w.connections as f64;
            next += Duration::from_secs_f64(w.pipeline as f64 / per_conn.max(0.001));
            let now = Instant::now();
            if next > now {
                tokio::time::sleep_until(next.into()).await;
            } else if now - next > Duration::from_secs(1) {
                next = now; // far behind: do not burst to catch up
            }
        }
        batch.clear();
        for _ in 0..w.pipeline {
            let key = format!("{}:{}", w.name, keys.next());
            let cmd = if rng.random_bool(w.read_ratio) {
                encode(&[b"GET", key.as_bytes()])
            } else if let Some(t) = &ttl {
                encode(&[b"SET", key.as_bytes(), &value, b"EX", t.as_bytes()])
            } else {
                encode(&[b"SET", key.as_bytes(), &value])
            };
            batch.push(cmd);
        }
        let mut errors = Errors::default();
        let mut h = histogram();
        if conn
            .send_batch(&batch, Some(&mut h), &mut errors)
            .await
            .is_err()
        {
            live.errors.lock().expect("lock").other += 1;
            break;
        }
        live.ops.fetch_add(w.pipeline as u64, Ordering::Relaxed);
        live.second.lock().expect("lock").add(&h).expect("merge");
        if errors.total() > 0 {
            live.errors.lock().expect("lock").add(&errors);
        }
    }
}

/// Runs `scenario` against `target`; `progress` sees each second as it ends.
pub async fn run(
    scenario: &Scenario,
    target: Target,
    mut progress: impl FnMut(&Second),
) -> Result<Report, String> {
    scenario.validate()?;
    let creds = prepare(scenario, &target)?;
    let started = Instant::now() + Duration::from_millis(200);
    let stop = Arc::new(AtomicBool::new(false));
    let budget = Arc::new(AtomicU64::new(
        scenario.max_requests.unwrap_or(u64::MAX / 2),
    ));
    let mut lives = BTreeMap::new();
    let mut tasks = Vec::new();
    for w in &scenario.workloads {
        let live = Arc::new(Live {
            ops: AtomicU64::new(0),
            second: Mutex::new(histogram()),
            all: Mutex::new(histogram()),
            errors: Mutex::new(Errors::default()),
            target: AtomicU64::new(0),
        });
        for i in 0..w.connections {
            let ctl = Control {
                started,
                stop: stop.clone(),
                budget: budget.clone(),
            };
            tasks.push(tokio::spawn(connection(
                w.clone(),
                creds.get(&w.cache).cloned().flatten(),
                target.resp,
                i,
                live.clone(),
                ctl,
            )));
        }
        lives.insert(w.name.clone(), live);
    }
    let length = scenario
        .workloads
        .iter()
        .map(Workload::length_secs)
        .max()
        .unwrap_or(0)
        .min(scenario.duration_secs);
    let mut seconds = Vec::new();
    let mut last_ops: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_errors: BTreeMap<String, Errors> = BTreeMap::new();
    let mut last_ecpu: BTreeMap<String, f64> = BTreeMap::new();
    tokio::time::sleep_until(started.into()).await;
    for t in 1..=length {
        tokio::time::sleep_until((started + Duration::from_secs(t)).into()).await;
        let mut second = Second {
            t,
            workloads: BTreeMap::new(),
            caches: BTreeMap::new(),
        };
        for (name, live) in &lives {
            let ops = live.ops.load(Ordering::Relaxed);
            let h = std::mem::replace(&mut *live.second.lock().expect("lock"), histogram());
            live.all.lock().expect("lock").add(&h).expect("merge");
            let errors = *live.errors.lock().expect("lock");
            let prev = last_errors.insert(name.clone(), errors).unwrap_or_default();
            second.workloads.insert(
                name.clone(),
                WorkloadSecond {
                    ops: ops - last_ops.insert(name.clone(), ops).unwrap_or(0),
                    target_rate: live.target.load(Ordering::Relaxed),
                    latency: Latency::of(&h),
                    errors: ErrorCounts {
                        throttled: errors.throttled - prev.throttled,
                        oom: errors.oom - prev.oom,
                        other: errors.other - prev.other,
                    },
                },
            );
        }
        if let Some(http_addr) = target.http {
            let (_, text) =
                tokio::task::spawn_blocking(move || http(http_addr, "GET", "/metrics", ""))
                    .await
                    .map_err(|e| e.to_string())?;
            let ecpu = scrape(&text, "stratus_ecpu_total");
            let parts = scrape(&text, "stratus_partitions");
            let bytes = scrape(&text, "stratus_data_stored_bytes");
            for (cache, total) in &ecpu {
                let prev = last_ecpu.insert(cache.clone(), *total).unwrap_or(*total);
                second.caches.insert(
                    cache.clone(),
                    CacheSecond {
                        ecpu_per_sec: total - prev,
                        partitions: parts.get(cache).copied().unwrap_or(0.0) as u64,
                        bytes: bytes.get(cache).copied().unwrap_or(0.0) as u64,
                    },
                );
            }
        }
        progress(&second);
        seconds.push(second);
        if budget.load(Ordering::Relaxed) == 0 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut totals = BTreeMap::new();
    for (name, live) in &lives {
        let mut all = live.all.lock().expect("lock").clone();
        all.add(&*live.second.lock().expect("lock")).expect("merge");
        let ops = live.ops.load(Ordering::Relaxed);
        totals.insert(
            name.clone(),
            WorkloadTotal {
                ops,
                ops_per_sec: ops as f64 / elapsed.max(1e-9),
                latency: Latency::of(&all),
                errors: (*live.errors.lock().expect("lock")).into(),
            },
        );
    }
    Ok(Report {
        scenario: scenario.clone(),
        seconds,
        totals,
        elapsed_secs: elapsed,
    })
}
