//! Metrics: the one list of metric names ([`METRICS`]) and the Prometheus
//! exposition, on a recorder owned by the server (no global recorder, so
//! several servers can run in one process).
//!
//! Counters and gauges are *published*: the request path only bumps
//! atomics it already keeps (a cache's [`Usage`], the partitions' stats);
//! [`Metrics::publish`] copies them into the recorder before each render and
//! every few seconds. Series not published for [`IDLE_TIMEOUT`] are dropped,
//! which is how a deleted cache's series disappear.
//!
//! Two families are rendered here from a cache's [`Usage`], in the same text
//! format, not through the recorder: `stratus_ecpu_total`, which is
//! fractional (milli-ECPU precision; the recorder's counters are integers),
//! and the `stratus_command_duration_seconds` histogram, whose buckets are
//! counters the connections add to once per batch of requests
//! ([`crate::metering::usage::Tally`]; recorded sample by sample through
//! the recorder, they were 4% of the server's CPU at pipeline 16).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use metrics_util::MetricKindMask;

use crate::cmd::Family;
use crate::metering::limits::UsageLimits;
use crate::metering::usage::{Access, DURATION_BOUNDS_NS};
use crate::metering::{Rejection, Usage};
use crate::pool::{PartitionStats, ScalingCounters};

/// Kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One documented metric.
pub struct MetricDef {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub help: &'static str,
}

pub const ECPU_TOTAL: &str = "stratus_ecpu_total";
pub const COMMANDS_TOTAL: &str = "stratus_commands_total";
pub const UNMETERED_COMMANDS_TOTAL: &str = "stratus_unmetered_commands_total";
pub const REJECTED_COMMANDS_TOTAL: &str = "stratus_rejected_commands_total";
pub const THROTTLED_COMMANDS_TOTAL: &str = "stratus_throttled_commands_total";
pub const DATA_STORED_BYTES: &str = "stratus_data_stored_bytes";
pub const DATA_STORED_BYTE_SECONDS_TOTAL: &str = "stratus_data_stored_byte_seconds_total";
pub const BILLED_DATA_STORED_BYTE_SECONDS_TOTAL: &str =
    "stratus_billed_data_stored_byte_seconds_total";
pub const USAGE_LIMIT_ECPU_PER_SECOND: &str = "stratus_usage_limit_ecpu_per_second";
pub const USAGE_LIMIT_DATA_STORAGE_BYTES: &str = "stratus_usage_limit_data_storage_bytes";
pub const CACHE_HITS_TOTAL: &str = "stratus_cache_hits_total";
pub const CACHE_MISSES_TOTAL: &str = "stratus_cache_misses_total";
pub const EVICTIONS_TOTAL: &str = "stratus_evictions_total";
pub const EXPIRED_KEYS_TOTAL: &str = "stratus_expired_keys_total";
pub const OOM_REJECTIONS_TOTAL: &str = "stratus_oom_rejections_total";
pub const ITEMS: &str = "stratus_items";
pub const CONNECTIONS: &str = "stratus_connections";
pub const CONNECTIONS_ACCEPTED_TOTAL: &str = "stratus_connections_accepted_total";
pub const CONNECTIONS_REJECTED_TOTAL: &str = "stratus_connections_rejected_total";
pub const CONNECTIONS_FLOOD_TOTAL: &str = "stratus_connections_flood_total";
pub const NETWORK_BYTES_TOTAL: &str = "stratus_network_bytes_total";
pub const COMMAND_DURATION_SECONDS: &str = "stratus_command_duration_seconds";
pub const PARTITIONS: &str = "stratus_partitions";
pub const PARTITION_SPLITS_TOTAL: &str = "stratus_partition_splits_total";
pub const PARTITION_MERGES_TOTAL: &str = "stratus_partition_merges_total";
pub const HOT_SLOTS: &str = "stratus_hot_slots";
pub const AUTH_FAILURES_TOTAL: &str = "stratus_auth_failures_total";
pub const NOAUTH_REJECTIONS_TOTAL: &str = "stratus_noauth_rejections_total";
pub const PROTOCOL_ERRORS_TOTAL: &str = "stratus_protocol_errors_total";
pub const CACHES: &str = "stratus_caches";
pub const NODE_PARTITIONS: &str = "stratus_node_partitions";
pub const NODE_STORED_BYTES: &str = "stratus_node_stored_bytes";
pub const NODE_SERVING: &str = "stratus_node_serving";

const fn def(name: &'static str, kind: Kind, unit: Option<Unit>, help: &'static str) -> MetricDef {
    MetricDef {
        name,
        kind,
        unit,
        help,
    }
}

use Kind::{Counter as C, Gauge as G, Histogram as H};

/// Every metric Stratus exports: the one list. Labels: `cache` (one series
/// per cache) plus the closed sets named in each help text.
#[rustfmt::skip]
pub const METRICS: &[MetricDef] = &[
    def(ECPU_TOTAL, C, None, "ElastiCache Processing Units consumed, by cache and command family (billing)."),
    def(COMMANDS_TOTAL, C, None, "Metered commands executed, by cache and command family."),
    def(UNMETERED_COMMANDS_TOTAL, C, None, "AUTH, HELLO, PING and QUIT executed (not billed)."),
    def(REJECTED_COMMANDS_TOTAL, C, None, "Requests refused before execution (not billed), by reason."),
    def(THROTTLED_COMMANDS_TOTAL, C, None, "Requests refused for exceeding the cache's ECPU/s limit."),
    def(DATA_STORED_BYTES, G, Some(Unit::Bytes), "Bytes stored by the cache: keys, values and per-entry overhead."),
    def(DATA_STORED_BYTE_SECONDS_TOTAL, C, None, "Integral of bytes stored over time, in byte-seconds."),
    def(BILLED_DATA_STORED_BYTE_SECONDS_TOTAL, C, None, "Integral of billed storage (at least the minimum), in byte-seconds."),
    def(USAGE_LIMIT_ECPU_PER_SECOND, G, None, "The cache's ECPU/s usage limit, by bound (minimum, maximum; 0 = none)."),
    def(USAGE_LIMIT_DATA_STORAGE_BYTES, G, Some(Unit::Bytes), "The cache's data storage limit in bytes, by bound (0 = none)."),
    def(CACHE_HITS_TOTAL, C, None, "Read lookups that found their key."),
    def(CACHE_MISSES_TOTAL, C, None, "Read lookups that did not find their key."),
    def(EVICTIONS_TOTAL, C, None, "Keys evicted to stay within the storage maximum."),
    def(EXPIRED_KEYS_TOTAL, C, None, "Keys deleted because their TTL passed."),
    def(OOM_REJECTIONS_TOTAL, C, None, "Writes refused at the storage maximum with nothing left to evict."),
    def(ITEMS, G, None, "Keys stored in the cache."),
    def(CONNECTIONS, G, None, "Client connections bound to the cache."),
    def(CONNECTIONS_ACCEPTED_TOTAL, C, None, "Client connections accepted on the RESP port."),
    def(CONNECTIONS_REJECTED_TOTAL, C, None, "Client connections refused at the connection limit."),
    def(CONNECTIONS_FLOOD_TOTAL, C, None, "Client connections accepted apart, at idle priority, from an address flooding new connections."),
    def(NETWORK_BYTES_TOTAL, C, Some(Unit::Bytes), "Bytes received and sent on client connections, by direction (in, out)."),
    def(COMMAND_DURATION_SECONDS, H, Some(Unit::Seconds), "Time from a request's decoding to its reply, by kind (read, write)."),
    def(PARTITIONS, G, None, "Storage partitions of the cache."),
    def(PARTITION_SPLITS_TOTAL, C, None, "Partition splits, by reason (size, load, min_ecpu)."),
    def(PARTITION_MERGES_TOTAL, C, None, "Merges of two cold, small neighbouring partitions."),
    def(HOT_SLOTS, G, None, "Single slots that alone exceed a split threshold (reported, not split)."),
    def(AUTH_FAILURES_TOTAL, C, None, "AUTH and HELLO AUTH attempts refused, by the cache the login named (\"\" = none known)."),
    def(NOAUTH_REJECTIONS_TOTAL, C, None, "Commands refused on connections that have not authenticated."),
    def(PROTOCOL_ERRORS_TOTAL, C, None, "Connections closed on a RESP framing violation."),
    def(CACHES, G, None, "Caches that exist."),
];

/// Series not published for this long are dropped (deleted caches).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

static METADATA: Metadata<'static> =
    Metadata::new("stratus", Level::INFO, Some("stratus::metrics"));

/// Server-wide counters (not per cache).
#[derive(Debug, Default)]
pub struct GlobalCounters {
    pub connections_accepted: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub connections_flood: AtomicU64,
    pub auth_failures: AtomicU64,
    pub noauth_rejections: AtomicU64,
    pub protocol_errors: AtomicU64,
}

impl GlobalCounters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What [`Metrics::publish`] needs to know of one cache.
pub struct CacheFigures<'a> {
    pub name: &'a str,
    /// `redis` or `memcached`: the `engine` label of every per-cache series.
    pub engine: &'static str,
    pub usage: &'a Usage,
    pub totals: PartitionStats,
    pub partitions: usize,
    pub scaling: &'a ScalingCounters,
    pub hot_slots: usize,
    pub limits: UsageLimits,
}

/// What a `stratus node` exports (its HTTP port's `/metrics`): the rest
/// of a cache's figures are the proxies' and control's.
#[rustfmt::skip]
pub const NODE_METRICS: &[MetricDef] = &[
    def(NODE_PARTITIONS, G, None, "Partitions this node hosts, by cache."),
    def(NODE_STORED_BYTES, G, Some(Unit::Bytes), "Bytes this node's partitions store, by cache."),
    def(NODE_SERVING, G, None, "1 while the node serves (holds its membership lease, or runs without etcd), 0 once fenced."),
];

/// A node's figures in the Prometheus text format: `hosted` is (cache,
/// partitions, bytes) for each cache it hosts.
pub fn render_node(hosted: &[(String, usize, u64)], serving: bool) -> String {
    let mut out = String::new();
    for m in NODE_METRICS {
        let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
        let _ = writeln!(out, "# TYPE {} gauge", m.name);
        if m.name == NODE_SERVING {
            let _ = writeln!(out, "{} {}", m.name, u8::from(serving));
            continue;
        }
        for (cache, partitions, bytes) in hosted {
            let value = if m.name == NODE_PARTITIONS {
                *partitions as u64
            } else {
                *bytes
            };
            let _ = writeln!(out, "{}{{cache=\"{cache}\"}} {value}", m.name);
        }
    }
    out
}

/// The server's metrics recorder and exposition.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    pub global: GlobalCounters,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .idle_timeout(
                MetricKindMask::COUNTER | MetricKindMask::GAUGE,
                Some(IDLE_TIMEOUT),
            )
            .build_recorder();
        let handle = recorder.handle();
        let by_hand = [ECPU_TOTAL, COMMAND_DURATION_SECONDS];
        for m in METRICS.iter().filter(|m| !by_hand.contains(&m.name)) {
            let key = KeyName::from_const_str(m.name);
            let help = SharedString::const_str(m.help);
            match m.kind {
                Kind::Counter => recorder.describe_counter(key, m.unit, help),
                Kind::Gauge => recorder.describe_gauge(key, m.unit, help),
                Kind::Histogram => recorder.describe_histogram(key, m.unit, help),
            }
        }
        Metrics {
            recorder,
            handle,
            global: GlobalCounters::default(),
        }
    }

    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.to_string()))
            .collect();
        Key::from_parts(name, labels)
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &str)], value: u64) {
        self.recorder
            .register_counter(&Self::key(name, labels), &METADATA)
            .absolute(value);
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        self.recorder
            .register_gauge(&Self::key(name, labels), &METADATA)
            .set(value);
    }

    /// Copies server-wide and per-cache figures into the recorder.
    pub fn publish(&self, caches: &[CacheFigures<'_>]) {
        let g = &self.global;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.counter(
            CONNECTIONS_ACCEPTED_TOTAL,
            &[],
            load(&g.connections_accepted),
        );
        self.counter(
            CONNECTIONS_REJECTED_TOTAL,
            &[],
            load(&g.connections_rejected),
        );
        self.counter(CONNECTIONS_FLOOD_TOTAL, &[], load(&g.connections_flood));
        // Logins that named no known cache; each cache's own below.
        self.counter(
            AUTH_FAILURES_TOTAL,
            &[("cache", "")],
            load(&g.auth_failures),
        );
        self.counter(NOAUTH_REJECTIONS_TOTAL, &[], load(&g.noauth_rejections));
        self.counter(PROTOCOL_ERRORS_TOTAL, &[], load(&g.protocol_errors));
        self.gauge(CACHES, &[], caches.len() as f64);
        for c in caches {
            let u = c.usage;
            let cache = [("cache", c.name), ("engine", c.engine)];
            for f in Family::ALL {
                let labels = [
                    ("cache", c.name),
                    ("engine", c.engine),
                    ("family", f.label()),
                ];
                self.counter(COMMANDS_TOTAL, &labels, load(&u.commands[f.index()]));
            }
            for r in Rejection::ALL {
                self.counter(
                    REJECTED_COMMANDS_TOTAL,
                    &[
                        ("cache", c.name),
                        ("engine", c.engine),
                        ("reason", r.label()),
                    ],
                    u.rejected(r),
                );
            }
            self.counter(UNMETERED_COMMANDS_TOTAL, &cache, load(&u.unmetered));
            // (Without `engine`: the failures of logins naming no known
            // cache share this metric under `cache=""`.)
            self.counter(
                AUTH_FAILURES_TOTAL,
                &[("cache", c.name)],
                load(&u.auth_failures),
            );
            self.counter(
                THROTTLED_COMMANDS_TOTAL,
                &cache,
                u.rejected(Rejection::Throttled),
            );
            self.counter(OOM_REJECTIONS_TOTAL, &cache, u.rejected(Rejection::Oom));
            self.counter(
                DATA_STORED_BYTE_SECONDS_TOTAL,
                &cache,
                load(&u.byte_seconds),
            );
            self.counter(
                BILLED_DATA_STORED_BYTE_SECONDS_TOTAL,
                &cache,
                load(&u.billed_byte_seconds),
            );
            self.counter(
                NETWORK_BYTES_TOTAL,
                &[("cache", c.name), ("engine", c.engine), ("direction", "in")],
                load(&u.net_in),
            );
            self.counter(
                NETWORK_BYTES_TOTAL,
                &[
                    ("cache", c.name),
                    ("engine", c.engine),
                    ("direction", "out"),
                ],
                load(&u.net_out),
            );
            self.counter(CACHE_HITS_TOTAL, &cache, c.totals.events.hits);
            self.counter(CACHE_MISSES_TOTAL, &cache, c.totals.events.misses);
            self.counter(EVICTIONS_TOTAL, &cache, c.totals.events.evicted);
            self.counter(EXPIRED_KEYS_TOTAL, &cache, c.totals.events.expired);
            self.gauge(DATA_STORED_BYTES, &cache, c.totals.used_bytes as f64);
            self.gauge(ITEMS, &cache, c.totals.keys as f64);
            self.gauge(CONNECTIONS, &cache, load(&u.connected) as f64);
            self.gauge(PARTITIONS, &cache, c.partitions as f64);
            self.gauge(HOT_SLOTS, &cache, c.hot_slots as f64);
            let s = c.scaling;
            for (reason, n) in [
                ("size", &s.splits_size),
                ("load", &s.splits_load),
                ("min_ecpu", &s.splits_min_ecpu),
            ] {
                self.counter(
                    PARTITION_SPLITS_TOTAL,
                    &[("cache", c.name), ("engine", c.engine), ("reason", reason)],
                    load(n),
                );
            }
            self.counter(PARTITION_MERGES_TOTAL, &cache, load(&s.merges));
            let l = &c.limits;
            let bound = |b| [("cache", c.name), ("engine", c.engine), ("bound", b)];
            self.gauge(
                USAGE_LIMIT_ECPU_PER_SECOND,
                &bound("minimum"),
                l.ecpu_per_second.minimum as f64,
            );
            self.gauge(
                USAGE_LIMIT_ECPU_PER_SECOND,
                &bound("maximum"),
                l.ecpu_per_second.maximum as f64,
            );
            self.gauge(
                USAGE_LIMIT_DATA_STORAGE_BYTES,
                &bound("minimum"),
                l.min_storage_bytes() as f64,
            );
            self.gauge(
                USAGE_LIMIT_DATA_STORAGE_BYTES,
                &bound("maximum"),
                l.max_storage_bytes() as f64,
            );
        }
        self.handle.run_upkeep();
    }

    /// The Prometheus text exposition (publish first).
    pub fn render(&self, caches: &[CacheFigures<'_>]) -> String {
        self.publish(caches);
        let mut out = self.handle.render();
        render_ecpu(&mut out, caches);
        render_durations(&mut out, caches);
        out
    }
}

/// Appends the `# HELP` (from [`METRICS`]) and `# TYPE` lines of a family
/// rendered here.
fn family_header(out: &mut String, name: &str, kind: &str) {
    let help = METRICS
        .iter()
        .find(|m| m.name == name)
        .map_or("", |m| m.help);
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Appends the `stratus_command_duration_seconds` histogram: per cache and
/// kind, the cumulative bucket counts, their sum and their count.
fn render_durations(out: &mut String, caches: &[CacheFigures<'_>]) {
    let name = COMMAND_DURATION_SECONDS;
    family_header(out, name, "histogram");
    for c in caches {
        for access in Access::ALL {
            let d = &c.usage.durations[access as usize];
            let labels = format!(
                "cache=\"{}\",engine=\"{}\",kind=\"{}\"",
                c.name,
                c.engine,
                access.label()
            );
            let mut count = 0;
            for (i, bucket) in d.buckets.iter().enumerate() {
                count += bucket.load(Ordering::Relaxed);
                let le = DURATION_BOUNDS_NS
                    .get(i)
                    .map_or("+Inf".to_string(), |&ns| (ns as f64 / 1e9).to_string());
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {count}");
            }
            let sum = d.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
        }
    }
    out.push('\n');
}

/// Appends the `stratus_ecpu_total` family, with milli-ECPU precision.
fn render_ecpu(out: &mut String, caches: &[CacheFigures<'_>]) {
    family_header(out, ECPU_TOTAL, "counter");
    for c in caches {
        for f in Family::ALL {
            let milli = c.usage.ecpu_milli[f.index()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{ECPU_TOTAL}{{cache=\"{}\",engine=\"{}\",family=\"{}\"}} {}.{:03}",
                c.name,
                c.engine,
                f.label(),
                milli / 1000,
                milli % 1000
            );
        }
    }
    out.push('\n');
}
