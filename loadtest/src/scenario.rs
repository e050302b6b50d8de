//! Scenario files: which caches exist, which workloads run against them, and
//! each workload's rate schedule (steady, steps, ramps). JSON, unknown fields
//! refused so a typo cannot pass silently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A whole load test.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Environment for a server this tool starts (`--spawn`): thresholds etc.
    #[serde(default)]
    pub server_env: BTreeMap<String, String>,
    /// Caches to create (the `default` cache needs no entry).
    #[serde(default)]
    pub caches: Vec<CacheSpec>,
    pub workloads: Vec<Workload>,
    /// Upper bound on the run, seconds.
    pub duration_secs: u64,
    /// Upper bound on requests sent in all, if any.
    #[serde(default)]
    pub max_requests: Option<u64>,
}

/// A cache to create through the control API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    pub name: String,
    #[serde(default)]
    pub usage_limits: serde_json::Value,
}

/// How keys are picked.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    #[default]
    Uniform,
    /// Zipf with exponent 0.99 (a few keys are hot), as YCSB.
    Zipfian,
}

fn default_cache() -> String {
    "default".into()
}
fn one() -> usize {
    1
}
fn hundred() -> usize {
    100
}
fn reads() -> f64 {
    0.8
}

/// One workload: connections to one cache sending GET/SET on a key space.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    #[serde(default = "default_cache")]
    pub cache: String,
    pub connections: usize,
    /// Requests per batch written at once (pipelining depth).
    #[serde(default = "one")]
    pub pipeline: usize,
    /// Distinct keys.
    pub keys: u64,
    #[serde(default)]
    pub distribution: Distribution,
    #[serde(default = "hundred")]
    pub value_size: usize,
    /// Fraction of GETs (the rest are SETs).
    #[serde(default = "reads")]
    pub read_ratio: f64,
    /// SETs carry `EX ttl` when given.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// Seconds after the run starts before this workload starts.
    #[serde(default)]
    pub start_secs: u64,
    /// Rate phases in order; the workload ends after the last.
    pub schedule: Vec<Phase>,
}

/// A phase of a rate schedule: `rate` ops/s (0 = closed loop, as fast as
/// the server answers) for `secs`, ramping linearly to `ramp_to` if given.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    pub secs: u64,
    #[serde(default)]
    pub rate: u64,
    #[serde(default)]
    pub ramp_to: Option<u64>,
}

impl Workload {
    /// Target ops/s at `t` seconds into the workload (`Some(0)` = closed
    /// loop), `None` once its schedule is over.
    pub fn rate_at(&self, t: f64) -> Option<u64> {
        let mut start = 0.0;
        for p in &self.schedule {
            let end = start + p.secs as f64;
            if t < end {
                let f = (t - start) / (p.secs as f64).max(1e-9);
                return Some(match p.ramp_to {
                    Some(to) => (p.rate as f64 + (to as f64 - p.rate as f64) * f) as u64,
                    None => p.rate,
                });
            }
            start = end;
        }
        None
    }

    pub fn length_secs(&self) -> u64 {
        self.start_secs + self.schedule.iter().map(|p| p.secs).sum::<u64>()
    }
}

/// One closed- or open-loop workload on the default cache, for the tools
/// that take their workload from flags.
#[derive(Debug, Clone, Copy)]
pub struct Simple {
    pub connections: usize,
    pub pipeline: usize,
    pub keys: u64,
    pub distribution: Distribution,
    pub value_size: usize,
    pub read_ratio: f64,
    /// Ops/s (0 = closed loop).
    pub rate: u64,
    pub secs: u64,
}

impl Scenario {
    /// A scenario of one workload named `load` on the default cache.
    pub fn simple(name: &str, w: Simple, max_requests: Option<u64>) -> Scenario {
        Scenario {
            name: name.into(),
            description: String::new(),
            server_env: BTreeMap::new(),
            caches: Vec::new(),
            workloads: vec![Workload {
                name: "load".into(),
                cache: "default".into(),
                connections: w.connections,
                pipeline: w.pipeline,
                keys: w.keys,
                distribution: w.distribution,
                value_size: w.value_size,
                read_ratio: w.read_ratio,
                ttl_secs: None,
                start_secs: 0,
                schedule: vec![Phase {
                    secs: w.secs,
                    rate: w.rate,
                    ramp_to: None,
                }],
            }],
            duration_secs: w.secs,
            max_requests,
        }
    }

    /// Checks what serde cannot: positive sizes, known caches, sane ratios.
    pub fn validate(&self) -> Result<(), String> {
        if self.workloads.is_empty() {
            return Err("a scenario needs at least one workload".into());
        }
        for w in &self.workloads {
            if w.connections == 0 || w.pipeline == 0 || w.keys == 0 || w.schedule.is_empty() {
                return Err(format!(
                    "workload {}: connections, pipeline, keys and schedule must be non-zero",
                    w.name
                ));
            }
            if !(0.0..=1.0).contains(&w.read_ratio) {
                return Err(format!(
                    "workload {}: read_ratio must be within 0..1",
                    w.name
                ));
            }
            if w.cache != "default" && !self.caches.iter().any(|c| c.name == w.cache) {
                return Err(format!(
                    "workload {}: cache {} is not declared",
                    w.name, w.cache
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_step_and_ramp() {
        let w: Workload = serde_json::from_str(
            r#"{"name": "w", "connections": 1, "keys": 10,
                "schedule": [{"secs": 10, "rate": 100}, {"secs": 10, "rate": 100, "ramp_to": 300}, {"secs": 5}]}"#,
        )
        .unwrap();
        assert_eq!(w.rate_at(0.0), Some(100));
        assert_eq!(w.rate_at(15.0), Some(200));
        assert_eq!(w.rate_at(22.0), Some(0));
        assert_eq!(w.rate_at(25.0), None);
        assert_eq!(w.length_secs(), 25);
    }

    #[test]
    fn scenario_files_parse_and_validate() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let s: Scenario = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            s.validate()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
        assert!(n >= 5);
        let typo = r#"{"name": "x", "workloads": [], "duration_secs": 1, "duraton": 2}"#;
        assert!(serde_json::from_str::<Scenario>(typo).is_err());
    }
}
