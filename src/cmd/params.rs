//! Redis's configuration parameters as `CONFIG GET` / `CONFIG SET` see them:
//! one table of every Redis 7.0 parameter (aliases included) with where its
//! value comes from, and each cache's own values for the parameters it can
//! set.
//!
//! A parameter is one of:
//! - [`Source::PerCache`]: the cache's own value, settable with `CONFIG SET`
//!   (checked as Redis checks it) and read by the code it drives through
//!   [`CacheConfig`]'s accessors (slow log, latency monitor, keyspace
//!   notifications, the encoding thresholds `OBJECT ENCODING` names, the
//!   entries per stream node that `~` trims go by, `maxmemory` — a limit
//!   below the cache's storage maximum, which it reads as otherwise — and
//!   `maxmemory-policy`);
//! - [`Source::Live`]: a value the server or the cache has, resolved by the
//!   caller;
//! - [`Source::Fixed`]: Redis's default, or what Stratus does instead
//!   (`save ""`).
//!
//! Live and fixed parameters cannot be changed by a tenant: `CONFIG SET`
//! accepts only the value they already have (so a client that restores
//! what it read still works) and answers anything else with Redis's error
//! for an immutable parameter.
//!
//! Adding a per-cache parameter: a row with `Source::PerCache(kind)`; if code
//! reads it on a hot path, an atomic in [`CacheConfig`] set in
//! [`CacheConfig::apply`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::glob::glob_match;
use crate::partition::Eviction;

/// How a per-cache value is checked and normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `yes` / `no`.
    Bool,
    /// An integer in the range, inclusive.
    Int(i64, i64),
    /// Bytes, with Redis's units (`k`, `kb`, `m`, `mb`, `g`, `gb`).
    Memory(i64, i64),
    /// Keyspace-notification classes (`notify-keyspace-events`).
    KeyspaceEvents,
    /// Percentiles between 0 and 100, space-separated.
    Percentiles,
    /// An eviction policy's name ([`Eviction`]).
    Eviction,
}

/// Values the server or the cache has, resolved by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// The port the connection came in on.
    Port,
    MaxClients,
    ProtoMaxBulkLen,
    QueryBufferLimit,
    /// The server's working directory.
    Dir,
    /// `yes` unless the cache's cluster mode is disabled.
    ClusterEnabled,
}

/// Where a parameter's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Fixed,
    Live(Live),
    PerCache(Kind),
}

/// One parameter.
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    /// Redis's default (or Stratus's fixed value).
    pub default: &'static str,
    pub source: Source,
    /// For an alias (`hash-max-ziplist-entries`), the parameter it names.
    pub alias_of: Option<&'static str>,
}

impl Param {
    /// The parameter whose value this one shows (itself unless an alias).
    pub fn canonical(&'static self) -> &'static Param {
        self.alias_of.and_then(find).unwrap_or(self)
    }
}

macro_rules! p {
    ($name:literal, $default:literal, $source:expr) => {
        Param {
            name: $name,
            default: $default,
            source: $source,
            alias_of: None,
        }
    };
    ($name:literal, $default:literal, $source:expr, $alias:literal) => {
        Param {
            name: $name,
            default: $default,
            source: $source,
            alias_of: Some($alias),
        }
    };
}

/// Every parameter `CONFIG GET *` shows in Redis 7.0, aliases included.
#[rustfmt::skip]
pub static PARAMS: &[Param] = &[
    p!("acl-pubsub-default",                    "resetchannels",       Source::Fixed),
    p!("aclfile",                               "",                    Source::Fixed),
    p!("acllog-max-len",                        "128",                 Source::Fixed),
    p!("active-defrag-cycle-max",               "25",                  Source::Fixed),
    p!("active-defrag-cycle-min",               "1",                   Source::Fixed),
    p!("active-defrag-ignore-bytes",            "104857600",           Source::Fixed),
    p!("active-defrag-max-scan-fields",         "1000",                Source::Fixed),
    p!("active-defrag-threshold-lower",         "10",                  Source::Fixed),
    p!("active-defrag-threshold-upper",         "100",                 Source::Fixed),
    p!("active-expire-effort",                  "1",                   Source::Fixed),
    p!("activedefrag",                          "no",                  Source::Fixed),
    p!("activerehashing",                       "yes",                 Source::Fixed),
    p!("always-show-logo",                      "no",                  Source::Fixed),
    p!("aof-disable-auto-gc",                   "no",                  Source::Fixed),
    p!("aof-load-truncated",                    "yes",                 Source::Fixed),
    p!("aof-rewrite-incremental-fsync",         "yes",                 Source::Fixed),
    p!("aof-timestamp-enabled",                 "no",                  Source::Fixed),
    p!("aof-use-rdb-preamble",                  "yes",                 Source::Fixed),
    p!("aof_rewrite_cpulist",                   "",                    Source::Fixed),
    p!("appenddirname",                         "appendonlydir",       Source::Fixed),
    p!("appendfilename",                        "appendonly.aof",      Source::Fixed),
    p!("appendfsync",                           "everysec",            Source::Fixed),
    p!("appendonly",                            "no",                  Source::Fixed),
    p!("auto-aof-rewrite-min-size",             "67108864",            Source::Fixed),
    p!("auto-aof-rewrite-percentage",           "100",                 Source::Fixed),
    p!("bgsave_cpulist",                        "",                    Source::Fixed),
    p!("bind",                                  "",                    Source::Fixed),
    p!("bind-source-addr",                      "",                    Source::Fixed),
    p!("bio_cpulist",                           "",                    Source::Fixed),
    p!("busy-reply-threshold",                  "5000",                Source::PerCache(Kind::Int(0, i64::MAX))),
    p!("client-output-buffer-limit",            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60", Source::Fixed),
    p!("client-query-buffer-limit",             "1073741824",          Source::Live(Live::QueryBufferLimit)),
    p!("cluster-allow-pubsubshard-when-down",   "yes",                 Source::Fixed),
    p!("cluster-allow-reads-when-down",         "no",                  Source::Fixed),
    p!("cluster-allow-replica-migration",       "yes",                 Source::Fixed),
    p!("cluster-announce-bus-port",             "0",                   Source::Fixed),
    p!("cluster-announce-hostname",             "",                    Source::Fixed),
    p!("cluster-announce-ip",                   "",                    Source::Fixed),
    p!("cluster-announce-port",                 "0",                   Source::Fixed),
    p!("cluster-announce-tls-port",             "0",                   Source::Fixed),
    p!("cluster-config-file",                   "nodes.conf",          Source::Fixed),
    p!("cluster-enabled",                       "yes",                 Source::Live(Live::ClusterEnabled)),
    p!("cluster-link-sendbuf-limit",            "0",                   Source::Fixed),
    p!("cluster-migration-barrier",             "1",                   Source::Fixed),
    p!("cluster-node-timeout",                  "15000",               Source::Fixed),
    p!("cluster-port",                          "0",                   Source::Fixed),
    p!("cluster-preferred-endpoint-type",       "ip",                  Source::Fixed),
    p!("cluster-replica-no-failover",           "no",                  Source::Fixed),
    p!("cluster-replica-validity-factor",       "10",                  Source::Fixed),
    p!("cluster-require-full-coverage",         "yes",                 Source::Fixed),
    p!("cluster-slave-no-failover",             "no",                  Source::Fixed, "cluster-replica-no-failover"),
    p!("cluster-slave-validity-factor",         "10",                  Source::Fixed, "cluster-replica-validity-factor"),
    p!("crash-log-enabled",                     "yes",                 Source::Fixed),
    p!("crash-memcheck-enabled",                "yes",                 Source::Fixed),
    p!("daemonize",                             "no",                  Source::Fixed),
    p!("databases",                             "1",                   Source::Fixed),
    p!("dbfilename",                            "dump.rdb",            Source::Fixed),
    p!("dir",                                   "/",                   Source::Live(Live::Dir)),
    p!("disable-thp",                           "yes",                 Source::Fixed),
    p!("dynamic-hz",                            "yes",                 Source::Fixed),
    p!("enable-debug-command",                  "no",                  Source::Fixed),
    p!("enable-module-command",                 "no",                  Source::Fixed),
    p!("enable-protected-configs",              "no",                  Source::Fixed),
    p!("hash-max-listpack-entries",             "512",                 Source::PerCache(Kind::Int(0, i64::MAX))),
    p!("hash-max-listpack-value",               "64",                  Source::PerCache(Kind::Memory(0, i64::MAX))),
    p!("hash-max-ziplist-entries",              "512",                 Source::PerCache(Kind::Int(0, i64::MAX)), "hash-max-listpack-entries"),
    p!("hash-max-ziplist-value",                "64",                  Source::PerCache(Kind::Memory(0, i64::MAX)), "hash-max-listpack-value"),
    p!("hll-sparse-max-bytes",                  "3000",                Source::PerCache(Kind::Memory(0, i64::MAX))),
    p!("hz",                                    "10",                  Source::Fixed),
    p!("ignore-warnings",                       "",                    Source::Fixed),
    p!("io-threads",                            "1",                   Source::Fixed),
    p!("io-threads-do-reads",                   "no",                  Source::Fixed),
    p!("jemalloc-bg-thread",                    "yes",                 Source::Fixed),
    p!("latency-monitor-threshold",             "0",                   Source::PerCache(Kind::Int(0, i64::MAX))),
    p!("latency-tracking",                      "yes",                 Source::PerCache(Kind::Bool)),
    p!("latency-tracking-info-percentiles",     "50 99 99.9",          Source::PerCache(Kind::Percentiles)),
    p!("lazyfree-lazy-eviction",                "no",                  Source::Fixed),
    p!("lazyfree-lazy-expire",                  "no",                  Source::Fixed),
    p!("lazyfree-lazy-server-del",              "no",                  Source::Fixed),
    p!("lazyfree-lazy-user-del",                "no",                  Source::Fixed),
    p!("lazyfree-lazy-user-flush",              "no",                  Source::Fixed),
    p!("lfu-decay-time",                        "1",                   Source::Fixed),
    p!("lfu-log-factor",                        "10",                  Source::Fixed),
    p!("list-compress-depth",                   "0",                   Source::PerCache(Kind::Int(0, i32::MAX as i64))),
    p!("list-max-listpack-size",                "-2",                  Source::PerCache(Kind::Int(i32::MIN as i64, i32::MAX as i64))),
    p!("list-max-ziplist-size",                 "-2",                  Source::PerCache(Kind::Int(i32::MIN as i64, i32::MAX as i64)), "list-max-listpack-size"),
    p!("logfile",                               "",                    Source::Fixed),
    p!("loglevel",                              "notice",              Source::Fixed),
    p!("lua-time-limit",                        "5000",                Source::PerCache(Kind::Int(0, i64::MAX)), "busy-reply-threshold"),
    p!("masterauth",                            "",                    Source::Fixed),
    p!("masteruser",                            "",                    Source::Fixed),
    p!("maxclients",                            "10000",               Source::Live(Live::MaxClients)),
    p!("maxmemory",                             "0",                   Source::PerCache(Kind::Memory(0, i64::MAX))),
    p!("maxmemory-clients",                     "0",                   Source::Fixed),
    p!("maxmemory-eviction-tenacity",           "10",                  Source::Fixed),
    p!("maxmemory-policy",                      "volatile-lru",        Source::PerCache(Kind::Eviction)),
    p!("maxmemory-samples",                     "5",                   Source::Fixed),
    p!("min-replicas-max-lag",                  "10",                  Source::Fixed),
    p!("min-replicas-to-write",                 "0",                   Source::Fixed),
    p!("min-slaves-max-lag",                    "10",                  Source::Fixed, "min-replicas-max-lag"),
    p!("min-slaves-to-write",                   "0",                   Source::Fixed, "min-replicas-to-write"),
    p!("no-appendfsync-on-rewrite",             "no",                  Source::Fixed),
    p!("notify-keyspace-events",                "",                    Source::PerCache(Kind::KeyspaceEvents)),
    p!("oom-score-adj",                         "no",                  Source::Fixed),
    p!("oom-score-adj-values",                  "0 200 800",           Source::Fixed),
    p!("pidfile",                               "",                    Source::Fixed),
    p!("port",                                  "6379",                Source::Live(Live::Port)),
    p!("proc-title-template",                   "{title} {listen-addr} {server-mode}", Source::Fixed),
    p!("propagation-error-behavior",            "ignore",              Source::Fixed),
    p!("protected-mode",                        "yes",                 Source::Fixed),
    p!("proto-max-bulk-len",                    "536870912",           Source::Live(Live::ProtoMaxBulkLen)),
    p!("rdb-del-sync-files",                    "no",                  Source::Fixed),
    p!("rdb-save-incremental-fsync",            "yes",                 Source::Fixed),
    p!("rdbchecksum",                           "yes",                 Source::Fixed),
    p!("rdbcompression",                        "yes",                 Source::Fixed),
    p!("repl-backlog-size",                     "1048576",             Source::Fixed),
    p!("repl-backlog-ttl",                      "3600",                Source::Fixed),
    p!("repl-disable-tcp-nodelay",              "no",                  Source::Fixed),
    p!("repl-diskless-load",                    "disabled",            Source::Fixed),
    p!("repl-diskless-sync",                    "yes",                 Source::Fixed),
    p!("repl-diskless-sync-delay",              "5",                   Source::Fixed),
    p!("repl-diskless-sync-max-replicas",       "0",                   Source::Fixed),
    p!("repl-ping-replica-period",              "10",                  Source::Fixed),
    p!("repl-ping-slave-period",                "10",                  Source::Fixed, "repl-ping-replica-period"),
    p!("repl-timeout",                          "60",                  Source::Fixed),
    p!("replica-announce-ip",                   "",                    Source::Fixed),
    p!("replica-announce-port",                 "0",                   Source::Fixed),
    p!("replica-announced",                     "yes",                 Source::Fixed),
    p!("replica-ignore-disk-write-errors",      "no",                  Source::Fixed),
    p!("replica-ignore-maxmemory",              "yes",                 Source::Fixed),
    p!("replica-lazy-flush",                    "no",                  Source::Fixed),
    p!("replica-priority",                      "100",                 Source::Fixed),
    p!("replica-read-only",                     "yes",                 Source::Fixed),
    p!("replica-serve-stale-data",              "yes",                 Source::Fixed),
    p!("replicaof",                             "",                    Source::Fixed),
    p!("requirepass",                           "",                    Source::Fixed),
    p!("sanitize-dump-payload",                 "no",                  Source::Fixed),
    p!("save",                                  "",                    Source::Fixed),
    p!("server_cpulist",                        "",                    Source::Fixed),
    p!("set-max-intset-entries",                "512",                 Source::PerCache(Kind::Int(0, i64::MAX))),
    p!("set-proc-title",                        "yes",                 Source::Fixed),
    p!("shutdown-on-sigint",                    "default",             Source::Fixed),
    p!("shutdown-on-sigterm",                   "default",             Source::Fixed),
    p!("shutdown-timeout",                      "10",                  Source::Fixed),
    p!("slave-announce-ip",                     "",                    Source::Fixed, "replica-announce-ip"),
    p!("slave-announce-port",                   "0",                   Source::Fixed, "replica-announce-port"),
    p!("slave-ignore-maxmemory",                "yes",                 Source::Fixed, "replica-ignore-maxmemory"),
    p!("slave-lazy-flush",                      "no",                  Source::Fixed, "replica-lazy-flush"),
    p!("slave-priority",                        "100",                 Source::Fixed, "replica-priority"),
    p!("slave-read-only",                       "yes",                 Source::Fixed, "replica-read-only"),
    p!("slave-serve-stale-data",                "yes",                 Source::Fixed, "replica-serve-stale-data"),
    p!("slaveof",                               "",                    Source::Fixed, "replicaof"),
    p!("slowlog-log-slower-than",               "10000",               Source::PerCache(Kind::Int(-1, i64::MAX))),
    p!("slowlog-max-len",                       "128",                 Source::PerCache(Kind::Int(0, i64::MAX))),
    p!("socket-mark-id",                        "0",                   Source::Fixed),
    p!("stop-writes-on-bgsave-error",           "yes",                 Source::Fixed),
    p!("stream-node-max-bytes",                 "4096",                Source::PerCache(Kind::Memory(0, i64::MAX))),
    p!("stream-node-max-entries",               "100",                 Source::PerCache(Kind::Int(0, i64::MAX))),
    p!("supervised",                            "no",                  Source::Fixed),
    p!("syslog-enabled",                        "no",                  Source::Fixed),
    p!("syslog-facility",                       "local0",              Source::Fixed),
    p!("syslog-ident",                          "redis",               Source::Fixed),
    p!("tcp-backlog",                           "511",                 Source::Fixed),
    p!("tcp-keepalive",                         "300",                 Source::Fixed),
    p!("timeout",                               "0",                   Source::Fixed),
    p!("tls-auth-clients",                      "yes",                 Source::Fixed),
    p!("tls-ca-cert-dir",                       "",                    Source::Fixed),
    p!("tls-ca-cert-file",                      "",                    Source::Fixed),
    p!("tls-cert-file",                         "",                    Source::Fixed),
    p!("tls-ciphers",                           "",                    Source::Fixed),
    p!("tls-ciphersuites",                      "",                    Source::Fixed),
    p!("tls-client-cert-file",                  "",                    Source::Fixed),
    p!("tls-client-key-file",                   "",                    Source::Fixed),
    p!("tls-client-key-file-pass",              "",                    Source::Fixed),
    p!("tls-cluster",                           "no",                  Source::Fixed),
    p!("tls-dh-params-file",                    "",                    Source::Fixed),
    p!("tls-key-file",                          "",                    Source::Fixed),
    p!("tls-key-file-pass",                     "",                    Source::Fixed),
    p!("tls-port",                              "0",                   Source::Fixed),
    p!("tls-prefer-server-ciphers",             "no",                  Source::Fixed),
    p!("tls-protocols",                         "",                    Source::Fixed),
    p!("tls-replication",                       "no",                  Source::Fixed),
    p!("tls-session-cache-size",                "20480",               Source::Fixed),
    p!("tls-session-cache-timeout",             "300",                 Source::Fixed),
    p!("tls-session-caching",                   "yes",                 Source::Fixed),
    p!("tracking-table-max-keys",               "1000000",             Source::PerCache(Kind::Int(0, i64::MAX))),
    p!("unixsocket",                            "",                    Source::Fixed),
    p!("unixsocketperm",                        "0",                   Source::Fixed),
    p!("zset-max-listpack-entries",             "128",                 Source::PerCache(Kind::Int(0, i64::MAX))),
    p!("zset-max-listpack-value",               "64",                  Source::PerCache(Kind::Memory(0, i64::MAX))),
    p!("zset-max-ziplist-entries",              "128",                 Source::PerCache(Kind::Int(0, i64::MAX)), "zset-max-listpack-entries"),
    p!("zset-max-ziplist-value",                "64",                  Source::PerCache(Kind::Memory(0, i64::MAX)), "zset-max-listpack-value"),
    // Hidden: shown only when named exactly (Redis's HIDDEN_CONFIG).
    p!("key-load-delay",                        "0",                   Source::Fixed),
    p!("loading-process-events-interval-bytes", "2097152",             Source::Fixed),
    p!("rdb-key-save-delay",                    "0",                   Source::Fixed),
    p!("use-exit-on-panic",                     "no",                  Source::Fixed),
    p!("watchdog-period",                       "0",                   Source::Fixed),
];

/// Parameters a glob pattern does not match (Redis's hidden ones).
pub const HIDDEN: &[&str] = &[
    "key-load-delay",
    "loading-process-events-interval-bytes",
    "rdb-key-save-delay",
    "use-exit-on-panic",
    "watchdog-period",
];

/// Finds a parameter by name (case-insensitive), aliases included.
pub fn find(name: &str) -> Option<&'static Param> {
    static INDEX: std::sync::OnceLock<HashMap<&'static str, &'static Param>> =
        std::sync::OnceLock::new();
    let index = INDEX.get_or_init(|| PARAMS.iter().map(|p| (p.name, p)).collect());
    index.get(name.to_ascii_lowercase().as_str()).copied()
}

/// The parameters `CONFIG GET` shows for `patterns`, in Redis's way: a
/// pattern without glob characters names one parameter (shown under the
/// name as given), one with them matches every name, aliases included
/// (case-insensitive); each parameter at most once.
pub fn select(patterns: &[&[u8]]) -> Vec<(String, &'static Param)> {
    let mut out: Vec<(String, &'static Param)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for pat in patterns {
        let is_glob = pat.iter().any(|b| matches!(b, b'*' | b'?' | b'['));
        if !is_glob {
            let name = String::from_utf8_lossy(pat).into_owned();
            if let Some(p) = find(&name)
                && seen.insert(name.to_ascii_lowercase())
            {
                out.push((name, p));
            }
            continue;
        }
        let lower = pat.to_ascii_lowercase();
        for p in PARAMS {
            if !HIDDEN.contains(&p.name)
                && glob_match(&lower, p.name.as_bytes())
                && seen.insert(p.name.to_string())
            {
                out.push((p.name.to_string(), p));
            }
        }
    }
    out
}

/// Keyspace-notification classes: the partitions' own (one parser and
/// formatter for CONFIG and the events).
pub mod notify {
    pub use crate::partition::notify::{format_flags as format, parse_flags as parse};
}

/// Parses a memory value with Redis's units (`memtoull`).
pub fn parse_memory(v: &str) -> Option<i64> {
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    let mul: i64 = match v[digits..].to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    if digits == 0 {
        return None;
    }
    v[..digits].parse::<i64>().ok()?.checked_mul(mul)
}

/// Checks `value` for a parameter of `kind` and returns it normalized as
/// `CONFIG GET` shows it, or the reason Redis gives.
pub fn check(kind: Kind, value: &str) -> Result<String, String> {
    match kind {
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Int(min, max) | Kind::Memory(min, max) => {
            let n = if matches!(kind, Kind::Memory(..)) {
                parse_memory(value).ok_or("argument must be a memory value")?
            } else {
                super::args::parse_i64(value.as_bytes())
                    .ok_or("argument couldn't be parsed into an integer")?
            };
            if n < min || n > max {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            Ok(n.to_string())
        }
        Kind::KeyspaceEvents => notify::parse(value.as_bytes())
            .map(notify::format)
            .ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into()),
        Kind::Eviction => Eviction::parse(value)
            .map(|p| p.name().to_string())
            .ok_or_else(|| {
                let names: Vec<&str> = Eviction::ALL.iter().map(|(_, n)| *n).collect();
                format!(
                    "argument(s) must be one of the following: {}",
                    names.join(", ")
                )
            }),
        Kind::Percentiles => {
            let mut out = Vec::new();
            for p in value.split(' ').filter(|p| !p.is_empty()) {
                match p.parse::<f64>() {
                    Ok(f) if (0.0..=100.0).contains(&f) => out.push(p.to_string()),
                    _ => return Err("Invalid latency-tracking-info-percentiles parameters".into()),
                }
            }
            Ok(out.join(" "))
        }
    }
}

/// Whether `value` is what a parameter that cannot change already holds
/// (`CONFIG SET save ""` on a server without persistence).
pub fn same_value(current: &str, value: &str) -> bool {
    if current.eq_ignore_ascii_case(value) {
        return true;
    }
    matches!((parse_memory(current), parse_memory(value)), (Some(a), Some(b)) if a == b)
}

/// The encoding thresholds `OBJECT ENCODING` names its encodings by
/// (Redis 7.0's `*-max-listpack-*` and `set-max-intset-entries`), and the
/// entries per stream node (`stream-node-max-entries`, 0 = no limit), which
/// decide what an approximate (`~`) trim removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Encoding {
    pub hash_entries: u64,
    pub hash_value: u64,
    pub zset_entries: u64,
    pub zset_value: u64,
    pub set_intset_entries: u64,
    pub stream_node_entries: u64,
}

impl Default for Encoding {
    fn default() -> Self {
        Encoding {
            hash_entries: 512,
            hash_value: 64,
            zset_entries: 128,
            zset_value: 64,
            set_intset_entries: 512,
            stream_node_entries: 100,
        }
    }
}

/// The parameters behind [`Encoding`]'s fields, in its order.
const ENCODING_PARAMS: [&str; 6] = [
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    "set-max-intset-entries",
    "stream-node-max-entries",
];

/// A cache's own values of the per-cache parameters, with atomics for those
/// read on the request path.
pub struct CacheConfig {
    /// Values set with `CONFIG SET`, by canonical name (absent = default).
    values: RwLock<HashMap<&'static str, String>>,
    slowlog_slower_than: AtomicI64,
    slowlog_max_len: AtomicI64,
    latency_threshold: AtomicI64,
    notify_flags: AtomicU32,
    /// `busy-reply-threshold` in ms once set (-1: the server's).
    busy_threshold_ms: AtomicI64,
    /// `maxmemory`: bytes below the storage maximum (0: the maximum).
    maxmemory: AtomicU64,
    /// `maxmemory-policy`, as [`Eviction::ALL`]'s index.
    eviction: AtomicU8,
    /// [`Encoding`]'s fields, in its order.
    encoding: [AtomicU64; 6],
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            values: RwLock::new(HashMap::new()),
            slowlog_slower_than: AtomicI64::new(10_000),
            slowlog_max_len: AtomicI64::new(128),
            latency_threshold: AtomicI64::new(0),
            notify_flags: AtomicU32::new(0),
            busy_threshold_ms: AtomicI64::new(-1),
            maxmemory: AtomicU64::new(0),
            eviction: AtomicU8::new(0),
            encoding: {
                let d = Encoding::default();
                [
                    d.hash_entries,
                    d.hash_value,
                    d.zset_entries,
                    d.zset_value,
                    d.set_intset_entries,
                    d.stream_node_entries,
                ]
                .map(AtomicU64::new)
            },
        }
    }
}

impl CacheConfig {
    /// The cache's value of a per-cache parameter (its default if unset).
    pub fn get(&self, p: &'static Param) -> String {
        let p = p.canonical();
        self.values
            .read()
            .get(p.name)
            .cloned()
            .unwrap_or_else(|| p.default.to_string())
    }

    /// `tracking-table-max-keys` (0: no limit of the cache's own).
    pub fn tracking_table_max_keys(&self) -> u64 {
        find("tracking-table-max-keys")
            .and_then(|p| self.get(p).parse().ok())
            .unwrap_or(0)
    }

    /// Sets checked, normalized values (all or nothing, under one lock).
    pub fn set_all(&self, values: &[(&'static Param, String)]) {
        let mut map = self.values.write();
        for (p, v) in values {
            let p = p.canonical();
            self.apply(p.name, v);
            map.insert(p.name, v.clone());
        }
    }

    /// Updates the atomic copy of a parameter read on the request path.
    fn apply(&self, name: &str, v: &str) {
        let int = || v.parse::<i64>().unwrap_or(0);
        match name {
            "slowlog-log-slower-than" => self.slowlog_slower_than.store(int(), Ordering::Relaxed),
            "slowlog-max-len" => self.slowlog_max_len.store(int(), Ordering::Relaxed),
            "latency-monitor-threshold" => self.latency_threshold.store(int(), Ordering::Relaxed),
            "busy-reply-threshold" => self.busy_threshold_ms.store(int(), Ordering::Relaxed),
            "maxmemory" => self.maxmemory.store(int().max(0) as u64, Ordering::Relaxed),
            "maxmemory-policy" => {
                let at = Eviction::ALL.iter().position(|(_, n)| *n == v);
                self.eviction
                    .store(at.unwrap_or(0) as u8, Ordering::Relaxed);
            }
            "notify-keyspace-events" => self
                .notify_flags
                .store(notify::parse(v.as_bytes()).unwrap_or(0), Ordering::Relaxed),
            _ => {}
        }
        let at = ENCODING_PARAMS.iter().position(|p| *p == name);
        if let Some(i) = at {
            self.encoding[i].store(int().max(0) as u64, Ordering::Relaxed);
        }
    }

    /// Microseconds above which a command enters the slow log (-1 = never).
    pub fn slowlog_slower_than(&self) -> i64 {
        self.slowlog_slower_than.load(Ordering::Relaxed)
    }

    pub fn slowlog_max_len(&self) -> usize {
        self.slowlog_max_len.load(Ordering::Relaxed).max(0) as usize
    }

    /// How long a script may hold a partition before the cache's other
    /// commands there get BUSY: the cache's `busy-reply-threshold` once
    /// set (it only changes what its own clients wait for; the server's
    /// script time limit still stops every script), else `server`'s.
    pub fn busy_threshold(&self, server: std::time::Duration) -> std::time::Duration {
        match self.busy_threshold_ms.load(Ordering::Relaxed) {
            ms if ms < 0 => server,
            ms => std::time::Duration::from_millis(ms as u64),
        }
    }

    /// `maxmemory` as set (0: none below the storage maximum).
    pub fn maxmemory(&self) -> u64 {
        self.maxmemory.load(Ordering::Relaxed)
    }

    /// `maxmemory-policy`.
    pub fn eviction(&self) -> Eviction {
        Eviction::ALL[usize::from(self.eviction.load(Ordering::Relaxed)) % Eviction::ALL.len()].0
    }

    /// Milliseconds above which an event is recorded (0 = off).
    pub fn latency_threshold(&self) -> i64 {
        self.latency_threshold.load(Ordering::Relaxed)
    }

    /// The keyspace-notification classes ([`notify`] bits).
    pub fn notify_flags(&self) -> u32 {
        self.notify_flags.load(Ordering::Relaxed)
    }

    /// The cache's encoding thresholds.
    pub fn encoding(&self) -> Encoding {
        let n = |i: usize| self.encoding[i].load(Ordering::Relaxed);
        Encoding {
            hash_entries: n(0),
            hash_value: n(1),
            zset_entries: n(2),
            zset_value: n(3),
            set_intset_entries: n(4),
            stream_node_entries: n(5),
        }
    }

    /// An integer per-cache parameter (an encoding threshold).
    pub fn int(&self, name: &str) -> i64 {
        find(name)
            .map(|p| self.get(p))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lowercase_and_aliases_resolve() {
        let mut seen = std::collections::HashSet::new();
        for p in PARAMS {
            assert!(seen.insert(p.name), "duplicate {}", p.name);
            assert_eq!(p.name, p.name.to_ascii_lowercase());
            if let Some(a) = p.alias_of {
                let c = find(a).expect(a);
                assert!(c.alias_of.is_none());
                assert_eq!(c.source, p.source, "{}", p.name);
            }
        }
        assert_eq!(PARAMS.len(), 192 + HIDDEN.len());
    }

    #[test]
    fn select_follows_globs_and_exact_names() {
        let names = |pats: &[&str]| -> Vec<String> {
            let pats: Vec<&[u8]> = pats.iter().map(|p| p.as_bytes()).collect();
            select(&pats).into_iter().map(|(n, _)| n).collect()
        };
        assert_eq!(names(&["MAXMEMORY"]), vec!["MAXMEMORY"]);
        assert_eq!(names(&["maxmemory", "maxmemory"]), vec!["maxmemory"]);
        assert_eq!(names(&["*max-*-entries*"]).len(), 5);
        assert_eq!(names(&["*"]).len(), 192);
        assert_eq!(names(&["key-load-delay"]).len(), 1);
        assert!(names(&["nosuch"]).is_empty());
    }

    #[test]
    fn checks_match_redis() {
        assert_eq!(check(Kind::Memory(0, i64::MAX), "1kb").unwrap(), "1024");
        assert_eq!(
            check(Kind::Memory(0, i64::MAX), "x").unwrap_err(),
            "argument must be a memory value"
        );
        assert_eq!(
            check(Kind::Int(-1, i64::MAX), "-2").unwrap_err(),
            "argument must be between -1 and 9223372036854775807 inclusive"
        );
        assert_eq!(check(Kind::KeyspaceEvents, "KEA").unwrap(), "AKE");
        assert_eq!(check(Kind::KeyspaceEvents, "Ex$").unwrap(), "$xE");
        assert!(check(Kind::KeyspaceEvents, "Zq").is_err());
        assert_eq!(check(Kind::Bool, "YES").unwrap(), "yes");
        assert!(same_value("0", "0gb"));
        assert!(same_value("", ""));
        assert!(!same_value("no", "yes"));
    }
}
