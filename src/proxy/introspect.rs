//! Introspection and server commands, each scoped to the caller's cache:
//! INFO, CONFIG, SLOWLOG, LATENCY, WAIT and the CLIENT subcommands that
//! reach other clients (LIST, KILL, PAUSE, UNPAUSE, UNBLOCK, REPLY).
//!
//! A cache sees only its own clients, statistics, logs and configuration
//! (`control::introspection`); server-wide figures it is shown (uptime,
//! limits) are the ones any tenant may know.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::session::{Connection, ReplyMode};
use super::subcommands::{REDIS_VERSION, Subcommands, help_reply, subcommand};
use crate::cmd::OpError;
use crate::cmd::args::{is, parse_i64};
use crate::cmd::params::{self, Live, Param, Source};
use crate::control::Cache;
use crate::control::introspection::{ClientHandle, Pause};
use crate::resp::{Protocol, Reply, reply};

/// Engine time one ECPU stands for (AWS's estimator: about 3 µs of vCPU),
/// used for INFO's `used_cpu_user` of a cache.
const CPU_SECONDS_PER_MILLI_ECPU: f64 = 3e-9;

fn bound(conn: &Connection<'_>) -> Result<std::sync::Arc<Cache>, OpError> {
    conn.session
        .cache
        .clone()
        .ok_or(OpError::Static(reply::NOAUTH))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---------------------------------------------------------------- CONFIG

/// A parameter's value for this connection's cache.
fn param_value(conn: &Connection<'_>, cache: &Cache, p: &'static Param) -> String {
    match p.source {
        Source::Fixed => p.default.to_string(),
        // The server's setting until the cache sets its own.
        Source::PerCache(_) if p.canonical().name == "busy-reply-threshold" => cache
            .server
            .config
            .busy_threshold(conn.shared.busy_threshold)
            .as_millis()
            .to_string(),
        Source::PerCache(_) if p.canonical().name == "maxmemory" => {
            cache.memory_limit().to_string()
        }
        Source::PerCache(_) => cache.server.config.get(p),
        Source::Live(live) => match live {
            Live::Port => conn.session.local.port().to_string(),
            Live::MaxClients => conn.shared.max_clients_per_cache.to_string(),
            Live::ProtoMaxBulkLen => conn.shared.decoder.limits.max_bulk_len.to_string(),
            Live::QueryBufferLimit => conn.shared.query_buffer_limit.to_string(),
            Live::ClusterEnabled => {
                let disabled = cache.pool.cluster_mode().spans_slots();
                if disabled { "no" } else { "yes" }.into()
            }
            Live::Dir => std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| "/".into()),
        },
    }
}

/// CONFIG GET pattern... | SET (param value)... | RESETSTAT | REWRITE | HELP
pub fn config(conn: &mut Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let cache = bound(conn)?;
    let sub = &args[1];
    let arity_err = |name: &str| OpError::Text(reply::wrong_arity(&format!("config|{name}")));
    if is(sub, "GET") {
        if args.len() < 3 {
            return Err(arity_err("get"));
        }
        let patterns: Vec<&[u8]> = args[2..].iter().map(|a| &a[..]).collect();
        let pairs = params::select(&patterns)
            .into_iter()
            .map(|(name, p)| (Reply::bulk(name), Reply::bulk(param_value(conn, &cache, p))))
            .collect();
        Ok(Reply::Map(pairs))
    } else if is(sub, "SET") {
        if args.len() < 4 {
            return Err(arity_err("set"));
        }
        if args.len() % 2 == 1 {
            return Err(OpError::Syntax);
        }
        config_set(conn, &cache, &args[2..])
    } else if is(sub, "RESETSTAT") {
        if args.len() != 2 {
            return Err(arity_err("resetstat"));
        }
        cache.server.reset_stats();
        cache.server.reset_keyspace(cache.pool.totals().events);
        cache.server.slowlog_reset();
        cache.server.latency_reset(&[]);
        Ok(Reply::ok())
    } else if is(sub, "REWRITE") {
        if args.len() != 2 {
            return Err(arity_err("rewrite"));
        }
        Err(OpError::Static(reply::CONFIG_REWRITE_NO_FILE))
    } else if is(sub, "HELP") && args.len() == 2 {
        Ok(help_reply(reply::CONFIG_HELP))
    } else {
        Err(OpError::Text(reply::unknown_subcommand("config", sub)))
    }
}

/// CONFIG SET: every pair checked first, then all applied (Redis 7's
/// all-or-nothing). Per-cache parameters take checked values; others only
/// the value they already hold.
fn config_set(conn: &Connection<'_>, cache: &Cache, pairs: &[Bytes]) -> Result<Reply, OpError> {
    let mut found: Vec<(&'static Param, &Bytes, &Bytes)> = Vec::new();
    // 1. Find every parameter (an unknown one is reported first).
    for pair in pairs.chunks(2) {
        match params::find(&text(&pair[0])) {
            Some(p) => found.push((p, &pair[0], &pair[1])),
            None => return Err(OpError::Text(reply::config_unknown(&pair[0]))),
        }
    }
    // 2. Settable, and named once.
    for (i, (p, name, value)) in found.iter().enumerate() {
        let settable = matches!(p.canonical().source, Source::PerCache(_))
            || params::same_value(&param_value(conn, cache, p), &text(value));
        if !settable {
            return Err(OpError::Text(reply::config_set_failed(
                &text(name),
                "can't set immutable config",
            )));
        }
        if found[..i]
            .iter()
            .any(|(q, _, _)| q.canonical().name == p.canonical().name)
        {
            return Err(OpError::Text(reply::config_set_failed(
                &text(name),
                "duplicate parameter",
            )));
        }
    }
    // 3. Check and normalize the values, then apply them all.
    let mut values = Vec::new();
    for (p, _, value) in found {
        let c = p.canonical();
        if let Source::PerCache(kind) = c.source {
            let v = params::check(kind, &text(value))
                .map_err(|why| OpError::Text(reply::config_set_failed(c.name, &why)))?;
            values.push((c, v));
        }
    }
    // Values read on the request path take effect through CacheConfig's
    // atomics (slow log, latency monitor, encoding thresholds, keyspace
    // notification classes: `CacheConfig::notify_flags`).
    cache.server.config.set_all(&values);
    // The partitions record keyspace events by the pool's copy.
    cache
        .pool
        .set_notify_flags(cache.server.config.notify_flags());
    // Client-side caching's table limit applies at once.
    if values
        .iter()
        .any(|(p, _)| p.name == "tracking-table-max-keys")
    {
        cache.pool.tracking().set_max_keys(
            cache.server.config.tracking_table_max_keys(),
            conn.session.id,
        );
    }
    Ok(Reply::ok())
}

// ---------------------------------------------------------------- INFO

/// Sections in Redis's order, and whether `INFO` / `INFO default` shows them.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("errorstats", true),
    ("cluster", true),
    ("keyspace", true),
    ("commandstats", false),
    ("latencystats", false),
];

/// INFO [section ...]: Redis's sections and field names, for this cache.
pub fn info(conn: &Connection<'_>, args: &[Bytes]) -> Reply {
    let mut wanted = vec![false; SECTIONS.len()];
    let names = &args[1..];
    if names.is_empty() {
        for (i, (_, d)) in SECTIONS.iter().enumerate() {
            wanted[i] = *d;
        }
    }
    for a in names {
        for (i, (name, default)) in SECTIONS.iter().enumerate() {
            if is(a, "all") || is(a, "everything") || (is(a, "default") && *default) || is(a, name)
            {
                wanted[i] = true;
            }
        }
    }
    let mut out = String::new();
    for (i, (name, _)) in SECTIONS.iter().enumerate() {
        if !wanted[i] {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let title = format!("{}{}", name[..1].to_uppercase(), &name[1..]);
        out.push_str(&format!("# {title}\r\n"));
        for (k, v) in section(conn, name) {
            out.push_str(&format!("{k}:{v}\r\n"));
        }
    }
    Reply::Verbatim(out)
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", UNITS[unit])
    }
}

/// The virtual server's run id: 40 hex digits, stable for the process.
fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        use sha2::Digest;
        let seed = format!("{}:{:?}", std::process::id(), std::time::SystemTime::now());
        let d = sha2::Sha256::digest(seed.as_bytes());
        d.iter().take(20).map(|b| format!("{b:02x}")).collect()
    })
}

fn section(conn: &Connection<'_>, name: &str) -> Vec<(String, String)> {
    let cache = conn.session.cache.as_ref();
    let totals = cache.map(|c| c.pool.totals()).unwrap_or_default();
    let events = cache.map_or(totals.events, |c| {
        c.server.keyspace_since_reset(totals.events)
    });
    let load = |f: fn(&Cache) -> u64| cache.map_or(0, |c| f(c));
    let standalone = cache.is_some_and(|c| c.pool.cluster_mode().spans_slots());
    let tracked = || cache.map(|c| c.pool.tracking().stats()).unwrap_or_default();
    let kv = |pairs: Vec<(&str, String)>| -> Vec<(String, String)> {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    };
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    match name {
        "server" => {
            let uptime = conn.shared.started.elapsed().as_secs();
            kv(vec![
                ("redis_version", REDIS_VERSION.into()),
                ("redis_git_sha1", "00000000".into()),
                ("redis_git_dirty", "0".into()),
                ("redis_build_id", "0".into()),
                ("redis_mode", if standalone { "standalone" } else { "cluster" }.into()),
                ("os", std::env::consts::OS.into()),
                ("arch_bits", "64".into()),
                ("monotonic_clock", "POSIX clock_gettime".into()),
                ("multiplexing_api", "epoll".into()),
                ("process_id", std::process::id().to_string()),
                ("process_supervised", "no".into()),
                ("run_id", run_id().into()),
                ("tcp_port", conn.session.local.port().to_string()),
                ("server_time_usec", now_us.to_string()),
                ("uptime_in_seconds", uptime.to_string()),
                ("uptime_in_days", (uptime / 86_400).to_string()),
                ("hz", "10".into()),
                ("configured_hz", "10".into()),
                ("lru_clock", ((now_us / 1_000_000) & 0xFF_FFFF).to_string()),
                ("executable", String::new()),
                ("config_file", String::new()),
                ("io_threads_active", "0".into()),
                ("stratus_version", env!("CARGO_PKG_VERSION").into()),
                ("cache_name", cache.map_or(String::new(), |c| c.name.clone())),
            ])
        }
        "clients" => {
            let blocked = cache.map_or(0, |c| {
                c.server
                    .clients()
                    .iter()
                    .filter(|h| h.blocked.load(Ordering::Relaxed))
                    .count()
            });
            kv(vec![
                (
                    "connected_clients",
                    load(|c| c.usage.connected.load(Ordering::Relaxed)).to_string(),
                ),
                ("cluster_connections", "0".into()),
                ("maxclients", conn.shared.max_clients_per_cache.to_string()),
                ("client_recent_max_input_buffer", "0".into()),
                ("client_recent_max_output_buffer", "0".into()),
                ("blocked_clients", blocked.to_string()),
                ("tracking_clients", tracked().clients.to_string()),
                ("clients_in_timeout_table", blocked.to_string()),
            ])
        }
        "memory" => {
            let used = totals.used_bytes as u64;
            let max = cache.map_or(0, |c| c.memory_limit());
            let clients = load(|c| c.usage.client_memory.load(Ordering::Relaxed));
            // As Redis's: everything the cache holds, its clients' buffers
            // included; the dataset alone is what the storage maximum caps.
            let total = used + clients;
            // The cache's script store (EVAL bodies and SCRIPT LOAD).
            let (scripts, script_bytes) = cache.map_or((0, 0), |c| c.scripts.len_and_bytes());
            kv(vec![
                ("used_memory", total.to_string()),
                ("used_memory_human", human_bytes(total)),
                ("used_memory_rss", total.to_string()),
                ("used_memory_rss_human", human_bytes(total)),
                ("used_memory_peak", total.to_string()),
                ("used_memory_peak_human", human_bytes(total)),
                ("used_memory_dataset", used.to_string()),
                ("used_memory_clients", clients.to_string()),
                ("used_memory_scripts_eval", script_bytes.to_string()),
                ("number_of_cached_scripts", scripts.to_string()),
                ("maxmemory", max.to_string()),
                ("maxmemory_human", human_bytes(max)),
                (
                    "maxmemory_policy",
                    cache.map_or("volatile-lru", |c| c.server.config.eviction().name()).into(),
                ),
                ("mem_fragmentation_ratio", "1.00".into()),
                // No AOF or replication buffers beside the dataset.
                ("mem_not_counted_for_evict", "0".into()),
                ("mem_allocator", "libc+mimalloc".into()),
                ("lazyfree_pending_objects", "0".into()),
                ("lazyfreed_objects", events.lazyfreed.to_string()),
            ])
        }
        "persistence" => kv(vec![
            ("loading", "0".into()),
            ("async_loading", "0".into()),
            ("current_cow_peak", "0".into()),
            ("rdb_changes_since_last_save", "0".into()),
            ("rdb_bgsave_in_progress", "0".into()),
            ("rdb_last_save_time", (now_us / 1_000_000).to_string()),
            ("rdb_last_bgsave_status", "ok".into()),
            ("aof_enabled", "0".into()),
            ("aof_rewrite_in_progress", "0".into()),
            ("aof_rewrite_scheduled", "0".into()),
            ("aof_last_bgrewrite_status", "ok".into()),
            ("aof_last_write_status", "ok".into()),
            ("module_fork_in_progress", "0".into()),
        ]),
        "stats" => kv(vec![
            (
                "total_connections_received",
                load(|c| c.usage.connections_received.load(Ordering::Relaxed)).to_string(),
            ),
            (
                "total_commands_processed",
                load(|c| c.usage.commands_processed()).to_string(),
            ),
            ("instantaneous_ops_per_sec", "0".into()),
            (
                "total_net_input_bytes",
                load(|c| c.usage.net_in.load(Ordering::Relaxed)).to_string(),
            ),
            (
                "total_net_output_bytes",
                load(|c| c.usage.net_out.load(Ordering::Relaxed)).to_string(),
            ),
            ("rejected_connections", "0".into()),
            ("expired_keys", events.expired.to_string()),
            ("evicted_keys", events.evicted.to_string()),
            ("evicted_clients", "0".into()),
            ("keyspace_hits", events.hits.to_string()),
            ("keyspace_misses", events.misses.to_string()),
            ("pubsub_channels", "0".into()),
            ("pubsub_patterns", "0".into()),
            ("pubsubshard_channels", "0".into()),
            ("latest_fork_usec", "0".into()),
            ("total_forks", "0".into()),
            ("migrate_cached_sockets", "0".into()),
            ("tracking_total_keys", tracked().keys.to_string()),
            ("tracking_total_items", tracked().items.to_string()),
            ("tracking_total_prefixes", tracked().prefixes.to_string()),
            ("unexpected_error_replies", "0".into()),
            (
                "total_error_replies",
                load(|c| c.server.error_replies.load(Ordering::Relaxed)).to_string(),
            ),
            ("dump_payload_sanitizations", "0".into()),
            ("total_reads_processed", "0".into()),
            ("total_writes_processed", "0".into()),
            ("io_threaded_reads_processed", "0".into()),
            ("io_threaded_writes_processed", "0".into()),
        ]),
        "replication" => kv(vec![
            ("role", "master".into()),
            ("connected_slaves", "0".into()),
            ("master_failover_state", "no-failover".into()),
            ("master_replid", run_id().into()),
            (
                "master_replid2",
                "0000000000000000000000000000000000000000".into(),
            ),
            ("master_repl_offset", "0".into()),
            ("second_repl_offset", "-1".into()),
            ("repl_backlog_active", "0".into()),
            ("repl_backlog_size", "1048576".into()),
            ("repl_backlog_first_byte_offset", "0".into()),
            ("repl_backlog_histlen", "0".into()),
        ]),
        "cpu" => {
            let cpu = load(|c| c.usage.ecpu_total_milli()) as f64 * CPU_SECONDS_PER_MILLI_ECPU;
            kv(vec![
                ("used_cpu_sys", "0.000000".into()),
                ("used_cpu_user", format!("{cpu:.6}")),
                ("used_cpu_sys_children", "0.000000".into()),
                ("used_cpu_user_children", "0.000000".into()),
            ])
        }
        "errorstats" => cache.map_or(Vec::new(), |c| {
            c.server
                .error_stats()
                .into_iter()
                .map(|(code, n)| (format!("errorstat_{code}"), format!("count={n}")))
                .collect()
        }),
        "cluster" => kv(vec![(
            "cluster_enabled",
            if standalone { "0" } else { "1" }.into(),
        )]),
        "keyspace" if totals.keys > 0 => vec![(
            "db0".into(),
            format!(
                "keys={},expires={},avg_ttl=0",
                totals.keys, totals.volatile_keys
            ),
        )],
        "commandstats" => cache.map_or(Vec::new(), |c| {
            c.server
                .command_stats()
                .into_iter()
                .map(|(name, [calls, usec, rejected, failed])| {
                    let per = if calls > 0 {
                        usec as f64 / calls as f64
                    } else {
                        0.0
                    };
                    (
                        format!("cmdstat_{name}"),
                        format!(
                            "calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={rejected},failed_calls={failed}"
                        ),
                    )
                })
                .collect()
        }),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------- SLOWLOG, LATENCY, WAIT

const SLOWLOG_SUBS: Subcommands = &[("get", -2), ("len", 2), ("reset", 2), ("help", 2)];
const LATENCY_SUBS: Subcommands = &[
    ("doctor", 2),
    ("graph", 3),
    ("history", 3),
    ("latest", 2),
    ("reset", -2),
    ("histogram", -2),
    ("help", 2),
];

/// SLOWLOG GET [count] | LEN | RESET | HELP (this cache's log).
pub fn slowlog(conn: &Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let cache = bound(conn)?;
    let log = &cache.server;
    match subcommand("slowlog", SLOWLOG_SUBS, args)? {
        "get" => {
            if args.len() > 3 {
                return Err(OpError::Text(reply::slowlog_get_args(&args[1])));
            }
            let count = match args.get(2) {
                None => 10,
                Some(a) => match parse_i64(a) {
                    Some(-1) => usize::MAX,
                    Some(n) if n >= 0 => n as usize,
                    _ => return Err(OpError::Static(reply::SLOWLOG_COUNT)),
                },
            };
            let entries = log
                .slowlog(count)
                .into_iter()
                .map(|e| {
                    Reply::Array(vec![
                        Reply::Int(e.id as i64),
                        Reply::Int(e.time as i64),
                        Reply::Int(e.micros as i64),
                        Reply::Array(e.args.into_iter().map(Reply::Bulk).collect()),
                        Reply::bulk(e.peer),
                        Reply::bulk(e.name),
                    ])
                })
                .collect();
            Ok(Reply::Array(entries))
        }
        "len" => Ok(Reply::Int(log.slowlog_len() as i64)),
        "reset" => {
            log.slowlog_reset();
            Ok(Reply::ok())
        }
        _ => Ok(help_reply(reply::SLOWLOG_HELP)),
    }
}

/// LATENCY LATEST | HISTORY event | RESET [event...] | HISTOGRAM [cmd...] |
/// DOCTOR | GRAPH event | HELP (this cache's events: `command` for commands
/// above `latency-monitor-threshold`; histograms from its command calls).
pub fn latency(conn: &Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let cache = bound(conn)?;
    let state = &cache.server;
    match subcommand("latency", LATENCY_SUBS, args)? {
        "latest" => {
            let events = state
                .latency_events()
                .into_iter()
                .filter_map(|(name, e)| {
                    let (time, ms) = *e.samples.back()?;
                    Some(Reply::Array(vec![
                        Reply::bulk(name),
                        Reply::Int(time as i64),
                        Reply::Int(ms as i64),
                        Reply::Int(e.max as i64),
                    ]))
                })
                .collect();
            Ok(Reply::Array(events))
        }
        "history" => {
            let want = text(&args[2]).to_ascii_lowercase();
            let samples = state
                .latency_events()
                .into_iter()
                .find(|(n, _)| *n == want)
                .map(|(_, e)| {
                    e.samples
                        .iter()
                        .map(|(t, ms)| {
                            Reply::Array(vec![Reply::Int(*t as i64), Reply::Int(*ms as i64)])
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(Reply::Array(samples))
        }
        "reset" => {
            let events: Vec<String> = args[2..].iter().map(|a| text(a)).collect();
            Ok(Reply::Int(state.latency_reset(&events) as i64))
        }
        "histogram" => {
            let names: Vec<String> = args[2..].iter().map(|a| text(a)).collect();
            let entries = state
                .latency_histograms(&names)
                .into_iter()
                .map(|(name, calls, buckets)| {
                    let histogram = Reply::Map(
                        buckets
                            .into_iter()
                            .map(|(us, n)| (Reply::Int(us as i64), Reply::Int(n as i64)))
                            .collect(),
                    );
                    (
                        Reply::bulk(name),
                        Reply::Map(vec![
                            (Reply::bulk("calls"), Reply::Int(calls as i64)),
                            (Reply::bulk("histogram_usec"), histogram),
                        ]),
                    )
                })
                .collect();
            Ok(Reply::Map(entries))
        }
        "doctor" => {
            let text = if cache.server.config.latency_threshold() == 0 {
                reply::LATENCY_DOCTOR_DISABLED.to_string()
            } else if state.latency_events().is_empty() {
                reply::LATENCY_DOCTOR_NONE.to_string()
            } else {
                let mut t = reply::LATENCY_DOCTOR_SPIKES.to_string();
                for (name, e) in state.latency_events() {
                    t.push_str(&format!(
                        "{name}: {} latency spikes (max {} milliseconds).\n",
                        e.samples.len(),
                        e.max
                    ));
                }
                t
            };
            Ok(Reply::Verbatim(text))
        }
        "graph" => {
            let want = text(&args[2]).to_ascii_lowercase();
            match state.latency_events().into_iter().find(|(n, _)| *n == want) {
                Some((name, e)) => Ok(Reply::Verbatim(format!(
                    "{name} - high {} ms, samples {}\n",
                    e.max,
                    e.samples.len()
                ))),
                None => Err(OpError::Text(format!(
                    "ERR No samples available for event '{want}'"
                ))),
            }
        }
        _ => Ok(help_reply(reply::LATENCY_HELP)),
    }
}

/// WAIT numreplicas timeout: no replicas yet, so 0 at once (a negative or
/// malformed timeout is refused as Redis does).
pub fn wait(args: &[Bytes]) -> Result<Reply, OpError> {
    match parse_i64(&args[2]) {
        Some(t) if t < 0 => Err(OpError::Static(reply::CLIENT_TIMEOUT_NEGATIVE)),
        Some(_) => {
            parse_i64(&args[1]).ok_or(OpError::NotInteger)?;
            Ok(Reply::Int(0))
        }
        None => Err(OpError::Static(reply::CLIENT_TIMEOUT_NOT_INTEGER)),
    }
}

// ---------------------------------------------------------------- CLIENT

/// The `user=` a client line shows: the cache it is bound to.
/// The `user=` field: the logged-in user's name (`default` for the
/// cache's token), as Redis shows the ACL user.
fn user(conn: &Connection<'_>) -> String {
    conn.session.user_name().to_string()
}

/// A `CLIENT INFO` line without touching the client's state (`ACL LOG`).
pub fn client_line(conn: &Connection<'_>) -> String {
    conn.session.handle.line(&user(conn))
}

/// Copies the session's client state into its handle (what other clients
/// of the cache see), after each command; `at` is when it started.
pub fn sync_view(conn: &Connection<'_>, cmd: &str, at: std::time::Instant) {
    let s = &conn.session;
    let mut v = s.handle.view.lock();
    v.name.clone_from(&s.name);
    v.lib_name.clone_from(&s.lib_name);
    v.lib_ver.clone_from(&s.lib_ver);
    v.last_active = at;
    if v.last_cmd != cmd {
        v.last_cmd = cmd.to_string();
    }
    v.resp = if s.protocol == Protocol::Resp3 { 3 } else { 2 };
    v.multi = s.multi.as_ref().map_or(-1, |t| t.queued.len() as i64);
    v.out_bytes = conn.wbuf.len() as u64;
    v.qbuf = 0;
}

/// This connection's `CLIENT INFO` line.
pub fn client_info(conn: &Connection<'_>) -> String {
    sync_view(conn, "client|info", std::time::Instant::now());
    conn.session.handle.view.lock().qbuf = conn.session.request_len;
    conn.session.handle.line(&user(conn))
}

/// CLIENT LIST [TYPE type] [ID id...]
pub fn client_list(conn: &Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let cache = bound(conn)?;
    sync_view(conn, "client|list", std::time::Instant::now());
    conn.session.handle.view.lock().qbuf = conn.session.request_len;
    let mut ids: Option<Vec<u64>> = None;
    let mut normal_only = true;
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "TYPE") && i + 1 < args.len() {
            let t = &args[i + 1];
            if is(t, "normal") {
                normal_only = true;
            } else if is(t, "master") || is(t, "replica") || is(t, "slave") || is(t, "pubsub") {
                normal_only = false;
            } else {
                return Err(OpError::Text(format!(
                    "ERR Unknown client type '{}'",
                    text(t)
                )));
            }
            i += 2;
        } else if is(&args[i], "ID") && i + 1 < args.len() {
            let mut v = Vec::new();
            for a in &args[i + 1..] {
                match parse_i64(a) {
                    Some(n) if n > 0 => v.push(n as u64),
                    _ => return Err(OpError::Static(reply::INVALID_CLIENT_ID)),
                }
            }
            ids = Some(v);
            i = args.len();
        } else {
            return Err(OpError::Syntax);
        }
    }
    let user = user(conn);
    let mut out = String::new();
    if normal_only {
        for c in cache.server.clients() {
            if ids.as_ref().is_none_or(|ids| ids.contains(&c.id)) {
                out.push_str(&c.line(&user));
            }
        }
    }
    Ok(Reply::Verbatim(out))
}

/// CLIENT KILL addr | CLIENT KILL [ID id] [ADDR a] [LADDR a] [TYPE t]
/// [USER u] [SKIPME yes|no]: among this cache's clients only.
pub fn client_kill(conn: &mut Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let cache = bound(conn)?;
    let me = conn.session.id;
    let clients = cache.server.clients();
    if args.len() == 3 {
        let addr = text(&args[2]);
        let Some(c) = clients.iter().find(|c| c.peer.to_string() == addr) else {
            return Err(OpError::Static(reply::NO_SUCH_CLIENT));
        };
        kill(conn, c, me);
        return Ok(Reply::ok());
    }
    if !args.len().is_multiple_of(2) {
        return Err(OpError::Syntax);
    }
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut user_name = None;
    let mut normal = true;
    let mut skipme = true;
    for pair in args[2..].chunks(2) {
        let (opt, v) = (&pair[0], &pair[1]);
        if is(opt, "ID") {
            match parse_i64(v) {
                Some(n) if n > 0 => id = Some(n as u64),
                _ => return Err(OpError::Static(reply::INVALID_CLIENT_ID)),
            }
        } else if is(opt, "ADDR") {
            addr = Some(text(v));
        } else if is(opt, "LADDR") {
            laddr = Some(text(v));
        } else if is(opt, "USER") {
            user_name = Some(text(v));
        } else if is(opt, "TYPE") {
            if is(v, "normal") {
                normal = true;
            } else if is(v, "master") || is(v, "replica") || is(v, "slave") || is(v, "pubsub") {
                normal = false;
            } else {
                return Err(OpError::Text(format!(
                    "ERR Unknown client type '{}'",
                    text(v)
                )));
            }
        } else if is(opt, "SKIPME") {
            if is(v, "yes") {
                skipme = true;
            } else if is(v, "no") {
                skipme = false;
            } else {
                return Err(OpError::Syntax);
            }
        } else {
            return Err(OpError::Syntax);
        }
    }
    if let Some(u) = &user_name
        && *u != cache.name
    {
        return Err(OpError::Text(format!("ERR No such user '{u}'")));
    }
    let mut killed = 0;
    for c in clients.iter().filter(|_| normal) {
        if id.is_some_and(|id| id != c.id)
            || addr.as_ref().is_some_and(|a| *a != c.peer.to_string())
            || laddr.as_ref().is_some_and(|a| *a != c.local.to_string())
            || (skipme && c.id == me)
        {
            continue;
        }
        kill(conn, c, me);
        killed += 1;
    }
    Ok(Reply::Int(killed))
}

/// Ends a client: another one at once, this one after its reply.
fn kill(conn: &mut Connection<'_>, c: &ClientHandle, me: u64) {
    if c.id == me {
        conn.session.closing = true;
    } else {
        c.attention.raise(crate::attention::KILLED);
    }
}

/// CLIENT PAUSE timeout [WRITE|ALL]
pub fn client_pause(conn: &Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let cache = bound(conn)?;
    let ms = match parse_i64(&args[2]) {
        Some(n) if n < 0 => return Err(OpError::Static(reply::CLIENT_TIMEOUT_NEGATIVE)),
        Some(n) => n as u64,
        None => return Err(OpError::Static(reply::CLIENT_TIMEOUT_NOT_INTEGER)),
    };
    let all = match args.get(3) {
        None => true,
        Some(m) if is(m, "ALL") => true,
        Some(m) if is(m, "WRITE") => false,
        Some(_) => return Err(OpError::Syntax),
    };
    if args.len() > 4 {
        return Err(OpError::Syntax);
    }
    cache.server.pause(Pause {
        until: tokio::time::Instant::now() + Duration::from_millis(ms),
        all,
    });
    Ok(Reply::ok())
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: 1 if that client of this cache was
/// blocked and is woken.
pub fn client_unblock(conn: &Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let cache = bound(conn)?;
    let id = parse_i64(&args[2]).ok_or(OpError::NotInteger)?;
    let error = match args.get(3) {
        None => false,
        Some(m) if is(m, "TIMEOUT") => false,
        Some(m) if is(m, "ERROR") => true,
        Some(_) => return Err(OpError::Static(reply::CLIENT_UNBLOCK_REASON)),
    };
    let Some(c) = u64::try_from(id)
        .ok()
        .and_then(|id| cache.server.client(id))
    else {
        return Ok(Reply::Int(0));
    };
    if !c.blocked.load(Ordering::Acquire) {
        return Ok(Reply::Int(0));
    }
    c.unblock_error.store(error, Ordering::Release);
    c.unblock.notify_one();
    Ok(Reply::Int(1))
}

/// CLIENT REPLY ON|OFF|SKIP (OFF and SKIP are not answered).
pub fn client_reply(conn: &mut Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let m = &args[2];
    let s = &mut conn.session;
    if is(m, "ON") {
        s.reply_mode = ReplyMode::On;
        Ok(Reply::ok())
    } else if is(m, "OFF") {
        s.reply_mode = ReplyMode::Off;
        Ok(Reply::ok())
    } else if is(m, "SKIP") {
        if s.reply_mode != ReplyMode::Off {
            s.reply_mode = ReplyMode::Skip;
        }
        Ok(Reply::ok())
    } else {
        Err(OpError::Syntax)
    }
}
