//! Metrics: the one list of metric names ([`METRICS`]), a Prometheus recorder
//! owned by the server (no global recorder, so several servers can run in one
//! process), and per-cache handles resolved once, when the cache is created.
//!
//! Hot-path counters are pre-registered handles; figures the partitions
//! already keep (items, bytes, hits, misses, expirations) are copied into
//! gauges and counters when `/metrics` is rendered, so the request path pays
//! nothing for them.

use metrics::{Counter, Gauge, Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::cmd::Family;
use crate::pool::PartitionStats;

/// Kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One documented metric.
pub struct MetricDef {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub help: &'static str,
}

pub const COMMANDS_TOTAL: &str = "stratus_commands_total";
pub const CONNECTIONS: &str = "stratus_connections";
pub const CONNECTIONS_ACCEPTED_TOTAL: &str = "stratus_connections_accepted_total";
pub const CONNECTIONS_REJECTED_TOTAL: &str = "stratus_connections_rejected_total";
pub const ITEMS: &str = "stratus_items";
pub const DATA_STORED_BYTES: &str = "stratus_data_stored_bytes";
pub const CACHE_HITS_TOTAL: &str = "stratus_cache_hits_total";
pub const CACHE_MISSES_TOTAL: &str = "stratus_cache_misses_total";
pub const EXPIRED_KEYS_TOTAL: &str = "stratus_expired_keys_total";
pub const NETWORK_BYTES_TOTAL: &str = "stratus_network_bytes_total";
pub const AUTH_FAILURES_TOTAL: &str = "stratus_auth_failures_total";
pub const PROTOCOL_ERRORS_TOTAL: &str = "stratus_protocol_errors_total";
pub const CACHES: &str = "stratus_caches";

/// Every metric Stratus exports, with its help text: the one list.
pub const METRICS: &[MetricDef] = &[
    MetricDef {
        name: COMMANDS_TOTAL,
        kind: Kind::Counter,
        unit: None,
        help: "Commands executed, by cache and command family.",
    },
    MetricDef {
        name: CONNECTIONS,
        kind: Kind::Gauge,
        unit: None,
        help: "Client connections currently bound to the cache.",
    },
    MetricDef {
        name: CONNECTIONS_ACCEPTED_TOTAL,
        kind: Kind::Counter,
        unit: None,
        help: "Client connections accepted on the RESP port.",
    },
    MetricDef {
        name: CONNECTIONS_REJECTED_TOTAL,
        kind: Kind::Counter,
        unit: None,
        help: "Client connections refused at the connection limit.",
    },
    MetricDef {
        name: ITEMS,
        kind: Kind::Gauge,
        unit: None,
        help: "Keys stored in the cache.",
    },
    MetricDef {
        name: DATA_STORED_BYTES,
        kind: Kind::Gauge,
        unit: Some(Unit::Bytes),
        help: "Bytes stored by the cache (keys, values and per-entry overhead).",
    },
    MetricDef {
        name: CACHE_HITS_TOTAL,
        kind: Kind::Counter,
        unit: None,
        help: "Read lookups that found their key.",
    },
    MetricDef {
        name: CACHE_MISSES_TOTAL,
        kind: Kind::Counter,
        unit: None,
        help: "Read lookups that did not find their key.",
    },
    MetricDef {
        name: EXPIRED_KEYS_TOTAL,
        kind: Kind::Counter,
        unit: None,
        help: "Keys deleted because their TTL passed.",
    },
    MetricDef {
        name: NETWORK_BYTES_TOTAL,
        kind: Kind::Counter,
        unit: Some(Unit::Bytes),
        help: "Bytes received (in) and sent (out) on client connections.",
    },
    MetricDef {
        name: AUTH_FAILURES_TOTAL,
        kind: Kind::Counter,
        unit: None,
        help: "AUTH and HELLO AUTH attempts refused.",
    },
    MetricDef {
        name: PROTOCOL_ERRORS_TOTAL,
        kind: Kind::Counter,
        unit: None,
        help: "Connections closed on a RESP framing violation.",
    },
    MetricDef {
        name: CACHES,
        kind: Kind::Gauge,
        unit: None,
        help: "Caches that exist.",
    },
];

static METADATA: Metadata<'static> =
    Metadata::new("stratus", Level::INFO, Some("stratus::metrics"));

/// The server's metrics recorder and exposition.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    pub connections_accepted: Counter,
    pub connections_rejected: Counter,
    pub auth_failures: Counter,
    pub protocol_errors: Counter,
    pub caches: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        for m in METRICS {
            let key = KeyName::from_const_str(m.name);
            let help = SharedString::const_str(m.help);
            match m.kind {
                Kind::Counter => recorder.describe_counter(key, m.unit, help),
                Kind::Gauge => recorder.describe_gauge(key, m.unit, help),
            }
        }
        let counter = |name| recorder.register_counter(&Key::from_static_name(name), &METADATA);
        let connections_accepted = counter(CONNECTIONS_ACCEPTED_TOTAL);
        let connections_rejected = counter(CONNECTIONS_REJECTED_TOTAL);
        let auth_failures = counter(AUTH_FAILURES_TOTAL);
        let protocol_errors = counter(PROTOCOL_ERRORS_TOTAL);
        let caches = recorder.register_gauge(&Key::from_static_name(CACHES), &METADATA);
        Metrics {
            recorder,
            handle,
            connections_accepted,
            connections_rejected,
            auth_failures,
            protocol_errors,
            caches,
        }
    }

    fn labelled(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.to_string()))
            .collect();
        Key::from_parts(name, labels)
    }

    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&Self::labelled(name, labels), &METADATA)
    }

    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder
            .register_gauge(&Self::labelled(name, labels), &METADATA)
    }

    /// Handles for one cache's series.
    pub fn for_cache(&self, cache: &str) -> CacheMetrics {
        let c = [("cache", cache)];
        CacheMetrics {
            commands: Family::ALL
                .map(|f| self.counter(COMMANDS_TOTAL, &[("cache", cache), ("family", f.label())])),
            connections: self.gauge(CONNECTIONS, &c),
            items: self.gauge(ITEMS, &c),
            data_stored_bytes: self.gauge(DATA_STORED_BYTES, &c),
            hits: self.counter(CACHE_HITS_TOTAL, &c),
            misses: self.counter(CACHE_MISSES_TOTAL, &c),
            expired: self.counter(EXPIRED_KEYS_TOTAL, &c),
            bytes_in: self.counter(
                NETWORK_BYTES_TOTAL,
                &[("cache", cache), ("direction", "in")],
            ),
            bytes_out: self.counter(
                NETWORK_BYTES_TOTAL,
                &[("cache", cache), ("direction", "out")],
            ),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// One cache's metric handles.
pub struct CacheMetrics {
    /// Indexed by [`Family::index`].
    pub commands: [Counter; Family::ALL.len()],
    pub connections: Gauge,
    pub items: Gauge,
    pub data_stored_bytes: Gauge,
    pub hits: Counter,
    pub misses: Counter,
    pub expired: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
}

impl CacheMetrics {
    /// Copies the partitions' figures into the exported series.
    pub fn publish(&self, totals: &PartitionStats) {
        self.items.set(totals.keys as f64);
        self.data_stored_bytes.set(totals.used_bytes as f64);
        self.hits.absolute(totals.events.hits);
        self.misses.absolute(totals.events.misses);
        self.expired.absolute(totals.events.expired);
    }
}
