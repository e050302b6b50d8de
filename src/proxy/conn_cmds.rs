//! Commands the proxy answers itself: connection state (AUTH, HELLO, CLIENT,
//! SELECT, RESET, QUIT), introspection (COMMAND, INFO, TIME) and cache-wide
//! operations that visit every partition (DBSIZE, FLUSHDB, SCAN, KEYS).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::conn::Connection;
use super::transaction;
use crate::cmd::args::{glob_match, int, is, scan_opts};
use crate::cmd::keys::scan_work_milli;
use crate::cmd::{COMMANDS, CommandSpec, ConnOp, Exec, KeySpec, OpError, flags, lookup};
use crate::control::Cache;
use crate::metrics::GlobalCounters;
use crate::partition::keyspace::{Keys, ScanCursor, ScanStep};
use crate::partition::{SLOTS, ValueType, key_slot};
use crate::pool::{Executed, NotRun};
use crate::resp::{Protocol, Reply, reply};

/// The Redis version Stratus reports (its command set and replies follow 7.2).
pub const REDIS_VERSION: &str = "7.2.4";

/// Runs a proxy-side command.
pub async fn run(conn: &mut Connection<'_>, op: ConnOp, args: &[Bytes], now: u64) -> Executed {
    if op == ConnOp::Exec {
        return transaction::exec(conn, now)
            .await
            .unwrap_or_else(|e| Executed {
                reply: e.reply(),
                work: 0,
            });
    }
    // SCAN and KEYS walk keys: their work (milli-units) is the keys and
    // slots visited and the keys replied.
    let mut work = 0;
    let reply = dispatch(conn, op, args, now, &mut work)
        .await
        .unwrap_or_else(|e| e.reply());
    Executed { reply, work }
}

async fn dispatch(
    conn: &mut Connection<'_>,
    op: ConnOp,
    args: &[Bytes],
    now: u64,
    work: &mut u64,
) -> Result<Reply, OpError> {
    match op {
        ConnOp::Auth => auth(conn, args),
        ConnOp::Hello => hello(conn, args),
        ConnOp::Ping => ping(args),
        ConnOp::Echo => Ok(Reply::Bulk(args[1].clone())),
        ConnOp::Quit => {
            conn.session.closing = true;
            Ok(Reply::ok())
        }
        ConnOp::Reset => {
            conn.session.protocol = Protocol::Resp2;
            conn.session.name = None;
            conn.session.unbind();
            if let Some(c) = conn.shared.default_cache() {
                conn.session.bind(c, conn.shared.max_clients_per_cache);
            }
            Ok(Reply::status(reply::RESET))
        }
        ConnOp::Select => match int(&args[1])? {
            0 => Ok(Reply::ok()),
            _ => Err(OpError::Static(reply::SELECT_CLUSTER)),
        },
        ConnOp::Client => client(conn, args),
        ConnOp::Command => command(args),
        ConnOp::Info => Ok(info(conn, args)),
        ConnOp::Time => {
            let micros = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            Ok(Reply::Array(vec![
                Reply::bulk((micros / 1_000_000).to_string()),
                Reply::bulk((micros % 1_000_000).to_string()),
            ]))
        }
        ConnOp::Readonly | ConnOp::Readwrite => Ok(Reply::ok()),
        ConnOp::Cluster => cluster(conn, args).await,
        ConnOp::Multi => transaction::multi(conn),
        ConnOp::Discard => transaction::discard(conn),
        ConnOp::Watch => transaction::watch(conn, args),
        ConnOp::Unwatch => transaction::unwatch(conn),
        ConnOp::Exec => Err(OpError::Static(reply::EXEC_WITHOUT_MULTI)),
        ConnOp::Dbsize => Ok(Reply::Int(bound(conn)?.pool.totals().keys as i64)),
        ConnOp::Flushdb => {
            match args.get(1) {
                Some(a) if args.len() == 2 && (is(a, "ASYNC") || is(a, "SYNC")) => {}
                None => {}
                Some(_) => return Err(OpError::Syntax),
            }
            match bound(conn)?.pool.flush(conn.shared.busy_threshold).await {
                Ok(()) => Ok(Reply::ok()),
                Err(_) => Err(OpError::Static(reply::BUSY)),
            }
        }
        ConnOp::Scan => scan(&*bound(conn)?, args, now, conn.shared.busy_threshold, work).await,
        ConnOp::Keys => {
            keys(
                &*bound(conn)?,
                &args[1],
                now,
                conn.shared.busy_threshold,
                work,
            )
            .await
        }
        ConnOp::Script => super::scripting::script(&*bound(conn)?, args),
    }
}

fn bound(conn: &Connection<'_>) -> Result<Arc<Cache>, OpError> {
    conn.session
        .cache
        .clone()
        .ok_or(OpError::Static(reply::NOAUTH))
}

fn ping(args: &[Bytes]) -> Result<Reply, OpError> {
    match args.len() {
        1 => Ok(Reply::status(reply::PONG)),
        2 => Ok(Reply::Bulk(args[1].clone())),
        _ => Err(OpError::Arity("ping")),
    }
}

/// Finds the cache `user`/`pass` authenticate for. `user` is a cache name; an
/// open cache takes any password (as Redis's `nopass` default user).
fn authenticate(conn: &Connection<'_>, user: Option<&[u8]>, pass: &[u8]) -> Option<Arc<Cache>> {
    let registry = &conn.shared.registry;
    match user {
        None => registry.find_by_token(pass),
        Some(user) => {
            let cache = registry.get(std::str::from_utf8(user).ok()?)?;
            (cache.open || cache.check_token(pass)).then_some(cache)
        }
    }
}

fn auth(conn: &mut Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let found = match args.len() {
        2 => authenticate(conn, None, &args[1]),
        3 => authenticate(conn, Some(&args[1]), &args[2]),
        _ => return Err(OpError::Syntax),
    };
    match found {
        Some(cache) => {
            if !conn.session.bind(cache, conn.shared.max_clients_per_cache) {
                return Err(OpError::Static(reply::MAX_CLIENTS));
            }
            Ok(Reply::ok())
        }
        None => {
            GlobalCounters::bump(&conn.shared.registry.metrics.global.auth_failures);
            Err(OpError::Static(reply::WRONGPASS))
        }
    }
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
fn hello(conn: &mut Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let mut protocol = conn.session.protocol;
    let mut credentials = None;
    let mut name = None;
    if let Some(v) = args.get(1) {
        protocol = match crate::cmd::args::parse_i64(v) {
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => return Err(OpError::Static(reply::NOPROTO)),
            None => return Err(OpError::Static(reply::PROTOVER_NOT_INTEGER)),
        };
        let mut i = 2;
        while i < args.len() {
            let more = args.len() - i - 1;
            if is(&args[i], "AUTH") && more >= 2 {
                credentials = Some((args[i + 1].clone(), args[i + 2].clone()));
                i += 3;
            } else if is(&args[i], "SETNAME") && more >= 1 {
                name = Some(args[i + 1].clone());
                i += 2;
            } else {
                return Err(OpError::Text(reply::hello_bad_option(&args[i])));
            }
        }
    }
    if let Some((user, pass)) = credentials {
        match authenticate(conn, Some(&user), &pass) {
            Some(cache) => {
                if !conn.session.bind(cache, conn.shared.max_clients_per_cache) {
                    return Err(OpError::Static(reply::MAX_CLIENTS));
                }
            }
            None => {
                GlobalCounters::bump(&conn.shared.registry.metrics.global.auth_failures);
                return Err(OpError::Static(reply::WRONGPASS));
            }
        }
    }
    if conn.session.cache.is_none() {
        return Err(OpError::Static(reply::NOAUTH_HELLO));
    }
    if let Some(n) = name {
        check_client_name(&n)?;
        conn.session.name = (!n.is_empty()).then_some(n);
    }
    conn.session.protocol = protocol;
    let proto = if protocol == Protocol::Resp3 { 3 } else { 2 };
    Ok(Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("redis")),
        (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
        (Reply::bulk("proto"), Reply::Int(proto)),
        (Reply::bulk("id"), Reply::Int(conn.session.id as i64)),
        (Reply::bulk("mode"), Reply::bulk("cluster")),
        (Reply::bulk("role"), Reply::bulk("master")),
        (Reply::bulk("modules"), Reply::Array(Vec::new())),
    ]))
}

fn check_client_name(name: &[u8]) -> Result<(), OpError> {
    if name.iter().all(|&b| (b'!'..=b'~').contains(&b)) {
        Ok(())
    } else {
        Err(OpError::Static(reply::CLIENT_NAME_SPACES))
    }
}

/// Subcommands of a container command with their arities (Redis
/// convention, the command name counted: `n` exact, `-n` at least n).
pub(crate) type Subcommands = &'static [(&'static str, i32)];

const CLIENT_SUBS: Subcommands = &[
    ("id", 2),
    ("getname", 2),
    ("setname", 3),
    ("setinfo", 4),
    ("info", 2),
    ("no-evict", 3),
    ("no-touch", 3),
    ("help", 2),
];
const COMMAND_SUBS: Subcommands = &[
    ("count", 2),
    ("list", -2),
    ("info", -2),
    ("docs", -2),
    ("getkeys", -3),
    ("help", 2),
];
const CLUSTER_SUBS: Subcommands = &[
    ("slots", 2),
    ("shards", 2),
    ("nodes", 2),
    ("info", 2),
    ("myid", 2),
    ("keyslot", 3),
    ("countkeysinslot", 3),
    ("getkeysinslot", 4),
    ("help", 2),
];

/// Finds `args[1]` among `subs` and checks its arity: the lower-case
/// subcommand name, or Redis's error for an unknown one or a wrong count
/// (`wrong number of arguments for 'client|setname' command`).
pub(crate) fn subcommand(
    cmd: &str,
    subs: Subcommands,
    args: &[Bytes],
) -> Result<&'static str, OpError> {
    let sub = &args[1];
    let Some((name, arity)) = subs
        .iter()
        .find(|(n, _)| sub.eq_ignore_ascii_case(n.as_bytes()))
    else {
        return Err(OpError::Text(reply::unknown_subcommand(cmd, sub)));
    };
    let argc = args.len() as i32;
    let ok = if *arity >= 0 {
        argc == *arity
    } else {
        argc >= -arity
    };
    if !ok {
        return Err(OpError::Text(reply::wrong_arity(&format!("{cmd}|{name}"))));
    }
    Ok(name)
}

/// CLIENT ID | GETNAME | SETNAME | INFO | SETINFO | NO-EVICT | NO-TOUCH | HELP
fn client(conn: &mut Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let sub = subcommand("client", CLIENT_SUBS, args)?;
    let s = &mut conn.session;
    match sub {
        "id" => Ok(Reply::Int(s.id as i64)),
        "getname" => Ok(s.name.clone().map_or(Reply::Nil, Reply::Bulk)),
        "setname" => {
            check_client_name(&args[2])?;
            s.name = (!args[2].is_empty()).then(|| args[2].clone());
            Ok(Reply::ok())
        }
        "setinfo" => {
            check_client_name(&args[3])?;
            let value = (!args[3].is_empty()).then(|| args[3].clone());
            if is(&args[2], "LIB-NAME") {
                s.lib_name = value;
            } else if is(&args[2], "LIB-VER") {
                s.lib_ver = value;
            } else {
                return Err(OpError::Text(reply::unrecognized_option(&args[2])));
            }
            Ok(Reply::ok())
        }
        "info" => Ok(Reply::Verbatim(client_line(conn))),
        "no-evict" | "no-touch" => {
            if is(&args[2], "ON") || is(&args[2], "OFF") {
                Ok(Reply::ok())
            } else {
                Err(OpError::Syntax)
            }
        }
        _ => Ok(help_reply(&[
            "CLIENT <subcommand> [<arg> ...]. Subcommands are:",
            "ID",
            "    Return the ID of the current connection.",
            "GETNAME",
            "    Return the name of the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <LIB-NAME|LIB-VER> <value>",
            "    Set client library name or version.",
            "INFO",
            "    Return information about the current client connection.",
        ])),
    }
}

/// One `CLIENT INFO` line, in Redis's field order (fields Stratus has).
fn client_line(conn: &Connection<'_>) -> String {
    let s = &conn.session;
    let text = |b: &Option<Bytes>| {
        b.as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    format!(
        "id={} addr={} laddr={} name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 obl=0 oll=0 omem={} cmd=client|info user={} resp={} lib-name={} lib-ver={}\n",
        s.id,
        s.peer,
        s.local,
        text(&s.name),
        s.created.elapsed().as_secs(),
        s.last_command.elapsed().as_secs(),
        conn.wbuf.len(),
        s.cache.as_ref().map_or("(none)", |c| c.name.as_str()),
        if s.protocol == Protocol::Resp3 { 3 } else { 2 },
        text(&s.lib_name),
        text(&s.lib_ver),
    )
}

pub(crate) fn help_reply(lines: &[&'static str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::status(l)).collect())
}

/// COMMAND [COUNT | LIST | INFO name... | DOCS name... | GETKEYS cmd args... | HELP]
fn command(args: &[Bytes]) -> Result<Reply, OpError> {
    if args.len() == 1 {
        return Ok(Reply::Array(COMMANDS.iter().map(command_info).collect()));
    }
    let sub = subcommand("command", COMMAND_SUBS, args)?;
    let names = &args[2..];
    let selected = || -> Vec<Option<&'static CommandSpec>> {
        if names.is_empty() {
            COMMANDS.iter().map(Some).collect()
        } else {
            names.iter().map(|n| lookup(n)).collect()
        }
    };
    match sub {
        "count" => Ok(Reply::Int(COMMANDS.len() as i64)),
        "list" => Ok(Reply::Array(
            COMMANDS.iter().map(|c| Reply::bulk(c.name)).collect(),
        )),
        "info" => Ok(Reply::Array(
            selected()
                .into_iter()
                .map(|c| c.map_or(Reply::Nil, command_info))
                .collect(),
        )),
        "docs" => {
            let docs = selected()
                .into_iter()
                .flatten()
                .map(|c| {
                    let doc = Reply::Map(vec![
                        (Reply::bulk("summary"), Reply::bulk("")),
                        (Reply::bulk("group"), Reply::bulk(c.family.label())),
                    ]);
                    (Reply::bulk(c.name), doc)
                })
                .collect();
            Ok(Reply::Map(docs))
        }
        "getkeys" => {
            let spec =
                lookup(&names[0]).ok_or(OpError::Static(reply::INVALID_COMMAND_SPECIFIED))?;
            if !spec.arity_ok(names.len()) {
                return Err(OpError::Static(reply::INVALID_ARGUMENTS));
            }
            let keys: Vec<Reply> = spec
                .key_positions(names)
                .map(|i| Reply::Bulk(names[i].clone()))
                .collect();
            if keys.is_empty() {
                return Err(OpError::Static(reply::NO_KEY_ARGUMENTS));
            }
            Ok(Reply::Array(keys))
        }
        _ => Ok(help_reply(&[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands.",
            "LIST",
            "    Return a list of all commands.",
            "INFO [<command-name> ...]",
            "    Return details about the given commands.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about the given commands.",
            "GETKEYS <full-command>",
            "    Return the keys from a full command.",
        ])),
    }
}

/// A `COMMAND INFO` entry in Redis 7's ten-field shape.
fn command_info(c: &'static CommandSpec) -> Reply {
    let mut flag_names: Vec<Reply> = flags::NAMES
        .iter()
        .filter(|(f, _)| c.has(*f))
        .map(|(_, n)| Reply::status(n))
        .collect();
    if c.keys != KeySpec::Range {
        flag_names.push(Reply::status("movablekeys"));
    }
    let category = match c.exec {
        Exec::Data(_) => format!("@{}", c.family.label()),
        Exec::Conn(_) => "@connection".to_string(),
    };
    Reply::Array(vec![
        Reply::bulk(c.name),
        Reply::Int(i64::from(c.arity)),
        Reply::Set(flag_names),
        Reply::Int(i64::from(c.first_key)),
        Reply::Int(i64::from(c.last_key)),
        Reply::Int(i64::from(c.step)),
        Reply::Set(vec![Reply::status_owned(category)]),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

/// INFO [section ...]: server, clients, memory, stats, keyspace (this cache).
fn info(conn: &Connection<'_>, args: &[Bytes]) -> Reply {
    let all = args.len() == 1
        || args[1..]
            .iter()
            .any(|a| is(a, "all") || is(a, "default") || is(a, "everything"));
    let wants = |s: &str| all || args[1..].iter().any(|a| is(a, s));
    let cache = conn.session.cache.as_ref();
    let totals = cache.map(|c| c.pool.totals()).unwrap_or_default();
    let load = |f: fn(&Cache) -> u64| cache.map_or(0, |c| f(c));
    let mut out = String::new();
    let mut section = |name: &str, lines: Vec<(&str, String)>| {
        if wants(name) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            let title = format!("{}{}", name[..1].to_uppercase(), &name[1..]);
            out.push_str(&format!("# {title}\r\n"));
            for (k, v) in lines {
                out.push_str(&format!("{k}:{v}\r\n"));
            }
        }
    };
    let uptime = conn.shared.started.elapsed().as_secs();
    section(
        "server",
        vec![
            ("redis_version", REDIS_VERSION.to_string()),
            ("stratus_version", env!("CARGO_PKG_VERSION").to_string()),
            ("redis_mode", "cluster".into()),
            ("os", std::env::consts::OS.into()),
            ("arch_bits", "64".into()),
            ("process_id", std::process::id().to_string()),
            ("tcp_port", conn.session.local.port().to_string()),
            ("uptime_in_seconds", uptime.to_string()),
            ("uptime_in_days", (uptime / 86_400).to_string()),
            (
                "cache_name",
                cache.map_or(String::new(), |c| c.name.clone()),
            ),
        ],
    );
    let max_bytes = cache.map_or(0, |c| c.settings.read().limits.max_storage_bytes());
    section(
        "clients",
        vec![
            (
                "connected_clients",
                load(|c| c.usage.connected.load(Ordering::Relaxed)).to_string(),
            ),
            ("maxclients", conn.shared.max_clients.to_string()),
        ],
    );
    section(
        "memory",
        vec![
            ("used_memory", totals.used_bytes.to_string()),
            ("used_memory_human", human_bytes(totals.used_bytes as u64)),
            ("maxmemory", max_bytes.to_string()),
            ("maxmemory_human", human_bytes(max_bytes)),
            ("maxmemory_policy", "volatile-lru".into()),
        ],
    );
    section(
        "stats",
        vec![
            (
                "total_connections_received",
                load(|c| c.usage.connections_received.load(Ordering::Relaxed)).to_string(),
            ),
            (
                "total_commands_processed",
                load(|c| c.usage.commands_processed()).to_string(),
            ),
            (
                "total_net_input_bytes",
                load(|c| c.usage.net_in.load(Ordering::Relaxed)).to_string(),
            ),
            (
                "total_net_output_bytes",
                load(|c| c.usage.net_out.load(Ordering::Relaxed)).to_string(),
            ),
            ("expired_keys", totals.events.expired.to_string()),
            ("evicted_keys", totals.events.evicted.to_string()),
            ("keyspace_hits", totals.events.hits.to_string()),
            ("keyspace_misses", totals.events.misses.to_string()),
        ],
    );
    section("cluster", vec![("cluster_enabled", "1".into())]);
    let keyspace = if totals.keys > 0 {
        vec![(
            "db0",
            format!(
                "keys={},expires={},avg_ttl=0",
                totals.keys, totals.volatile_keys
            ),
        )]
    } else {
        Vec::new()
    };
    section("keyspace", keyspace);
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

/// The virtual node's id: 40 hex digits, stable for the endpoint.
fn node_id(conn: &Connection<'_>) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("stratus:{}", conn.session.local).as_bytes());
    digest.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

/// CLUSTER SLOTS | SHARDS | NODES | INFO | MYID | KEYSLOT | COUNTKEYSINSLOT |
/// GETKEYSINSLOT | HELP: one virtual node — the endpoint the client used —
/// owns every slot, so cluster clients work and resharding stays invisible.
async fn cluster(conn: &Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let local = conn.session.local;
    let (ip, port) = (local.ip().to_string(), i64::from(local.port()));
    let id = node_id(conn);
    let slot_arg = |a: &[u8]| -> Result<u16, OpError> {
        match crate::cmd::args::parse_i64(a) {
            Some(n) if (0..i64::from(SLOTS)).contains(&n) => Ok(n as u16),
            _ => Err(OpError::Static(reply::INVALID_SLOT)),
        }
    };
    match subcommand("cluster", CLUSTER_SUBS, args)? {
        "slots" => {
            let node = Reply::Array(vec![
                Reply::bulk(ip),
                Reply::Int(port),
                Reply::bulk(id),
                Reply::Map(Vec::new()),
            ]);
            Ok(Reply::Array(vec![Reply::Array(vec![
                Reply::Int(0),
                Reply::Int(i64::from(SLOTS) - 1),
                node,
            ])]))
        }
        "shards" => {
            let node = Reply::Map(vec![
                (Reply::bulk("id"), Reply::bulk(id)),
                (Reply::bulk("port"), Reply::Int(port)),
                (Reply::bulk("ip"), Reply::bulk(ip.clone())),
                (Reply::bulk("endpoint"), Reply::bulk(ip)),
                (Reply::bulk("role"), Reply::bulk("master")),
                (Reply::bulk("replication-offset"), Reply::Int(0)),
                (Reply::bulk("health"), Reply::bulk("online")),
            ]);
            let shard = Reply::Map(vec![
                (
                    Reply::bulk("slots"),
                    Reply::Array(vec![Reply::Int(0), Reply::Int(i64::from(SLOTS) - 1)]),
                ),
                (Reply::bulk("nodes"), Reply::Array(vec![node])),
            ]);
            Ok(Reply::Array(vec![shard]))
        }
        "nodes" => Ok(Reply::Verbatim(format!(
            "{id} {ip}:{port}@{} myself,master - 0 0 1 connected 0-{}\n",
            port + 10000,
            SLOTS - 1
        ))),
        "info" => {
            let lines = [
                ("cluster_enabled", "1"),
                ("cluster_state", "ok"),
                ("cluster_slots_assigned", "16384"),
                ("cluster_slots_ok", "16384"),
                ("cluster_slots_pfail", "0"),
                ("cluster_slots_fail", "0"),
                ("cluster_known_nodes", "1"),
                ("cluster_size", "1"),
                ("cluster_current_epoch", "1"),
                ("cluster_my_epoch", "1"),
            ];
            Ok(Reply::Verbatim(
                lines.iter().map(|(k, v)| format!("{k}:{v}\r\n")).collect(),
            ))
        }
        "myid" => Ok(Reply::bulk(id)),
        "keyslot" => Ok(Reply::Int(i64::from(key_slot(&args[2])))),
        "countkeysinslot" => {
            let slot = slot_arg(&args[2])?;
            let cache = bound(conn)?;
            let (n, _) = slot_keys(&cache, slot, 0, conn.shared.busy_threshold).await?;
            Ok(Reply::Int(n as i64))
        }
        "getkeysinslot" => {
            let slot = slot_arg(&args[2])?;
            let count = match crate::cmd::args::parse_i64(&args[3]) {
                Some(n) if n >= 0 => n as usize,
                _ => return Err(OpError::Static(reply::INVALID_KEY_COUNT)),
            };
            let cache = bound(conn)?;
            let (_, keys) = slot_keys(&cache, slot, count, conn.shared.busy_threshold).await?;
            Ok(Reply::Array(
                keys.into_iter()
                    .map(|k| Reply::Bulk(Bytes::from(k)))
                    .collect(),
            ))
        }
        _ => Ok(help_reply(&[
            "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "SLOTS",
            "    Return information about slots range mappings.",
            "SHARDS",
            "    Return information about slot range mappings and the nodes associated with them.",
            "NODES",
            "    Return cluster configuration seen by node.",
            "INFO",
            "    Return information about the cluster.",
            "MYID",
            "    Return the node id.",
            "KEYSLOT <key>",
            "    Return the hash slot for <key>.",
            "COUNTKEYSINSLOT <slot>",
            "    Return the number of keys in <slot>.",
            "GETKEYSINSLOT <slot> <count>",
            "    Return key names stored by current node in a slot.",
        ])),
    }
}

/// Keys of `slot` in the partition that owns it (re-routed if it moves).
async fn slot_keys(
    cache: &Cache,
    slot: u16,
    limit: usize,
    busy: Duration,
) -> Result<(usize, Keys), OpError> {
    for _ in 0..8 {
        match cache.pool.slot_keys(slot, limit, busy).await {
            Ok(found) => return Ok(found),
            Err(NotRun::Busy) => return Err(OpError::Static(reply::BUSY)),
            Err(NotRun::Moved(_)) => {}
        }
    }
    Err(OpError::Static(reply::TRYAGAIN))
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]: walks partitions in
/// slot order; the cursor names a slot and a position in it. Each step runs
/// on the worker pool.
async fn scan(
    cache: &Cache,
    args: &[Bytes],
    now: u64,
    busy: Duration,
    work: &mut u64,
) -> Result<Reply, OpError> {
    let opts = Arc::new(scan_opts(&args[1..], true, false)?);
    let type_filter = match &opts.type_name {
        Some(t) => Some(
            ValueType::from_name(t).ok_or_else(|| OpError::Text(reply::unknown_type_name(t)))?,
        ),
        None => None,
    };
    let mut cursor = Some(ScanCursor::decode(opts.cursor));
    let mut keys = Vec::new();
    let (mut reroutes, mut visited_here) = (0, 0);
    while let Some(c) = cursor {
        let want = opts.count.saturating_sub(keys.len()).max(1);
        let filter = opts.clone();
        let keep = move |k: &[u8], e: &crate::partition::Entry| {
            filter.matches(k) && type_filter.is_none_or(|t| e.value.value_type() == t)
        };
        let (
            part,
            ScanStep {
                keys: batch,
                next,
                visited,
                slots,
            },
        ) = match cache.pool.scan(c, want, now, keep, busy).await {
            Ok(step) => step,
            Err(NotRun::Busy) => return Err(OpError::Static(reply::BUSY)),
            Err(NotRun::Moved(_)) => {
                // The slot moved between routing and scanning: route again.
                reroutes += 1;
                if reroutes > 8 {
                    return Err(OpError::Static(reply::TRYAGAIN));
                }
                continue;
            }
        };
        *work += scan_work_milli(visited, batch.len(), slots);
        visited_here += visited;
        keys.extend(batch);
        cursor = next;
        // Go on to the next partition only if this one was exhausted, and
        // not once the call has visited COUNT * 10 keys.
        let crossed = next.is_some_and(|n| cache.pool.route(n.slot).id() != part);
        if keys.len() >= opts.count
            || !crossed
            || visited_here >= opts.count.saturating_mul(10) as u64
        {
            break;
        }
    }
    let next = cursor.map_or(0, ScanCursor::encode);
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(
            keys.into_iter()
                .map(|k| Reply::Bulk(Bytes::from(k)))
                .collect(),
        ),
    ]))
}

/// Keys one KEYS step visits under a partition's lock: KEYS walks the whole
/// cache, but in pieces that release the lock between them.
const KEYS_STEP: usize = 4096;

/// KEYS pattern: every matching key of the cache (a full SCAN, in steps on
/// the worker pool).
async fn keys(
    cache: &Cache,
    pattern: &[u8],
    now: u64,
    busy: Duration,
    work: &mut u64,
) -> Result<Reply, OpError> {
    let pattern: Arc<[u8]> = pattern.into();
    let mut out = Vec::new();
    let mut cursor = Some(ScanCursor::default());
    let mut reroutes = 0;
    while let Some(c) = cursor {
        let p = pattern.clone();
        let keep = move |k: &[u8], _: &crate::partition::Entry| glob_match(&p, k);
        match cache.pool.scan(c, KEYS_STEP, now, keep, busy).await {
            Ok((
                _,
                ScanStep {
                    keys: batch,
                    next,
                    visited,
                    slots,
                },
            )) => {
                *work += scan_work_milli(visited, batch.len(), slots);
                out.extend(batch.into_iter().map(|k| Reply::Bulk(Bytes::from(k))));
                cursor = next;
            }
            Err(NotRun::Busy) => return Err(OpError::Static(reply::BUSY)),
            Err(NotRun::Moved(_)) => {
                reroutes += 1;
                if reroutes > 64 {
                    return Err(OpError::Static(reply::TRYAGAIN));
                }
            }
        }
    }
    Ok(Reply::Array(out))
}
