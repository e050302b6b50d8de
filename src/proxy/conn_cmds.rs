//! Commands the proxy answers itself: connection state (AUTH, HELLO, CLIENT,
//! SELECT, RESET, QUIT), introspection (COMMAND, INFO, TIME) and cache-wide
//! operations that visit every partition (DBSIZE, FLUSHDB, SCAN, KEYS).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::introspect;
use super::session::Connection;
use super::subcommands::{REDIS_VERSION, Subcommands, help_reply, subcommand};
use crate::acl::log::{Entry, Reason};
use crate::cmd::args::{int, is, scan_opts};
use crate::cmd::keys::scan_work_milli;
use crate::cmd::table::{SUBCOMMANDS, resp_commands};
use crate::cmd::{CommandSpec, ConnOp, KeySpec, OpError, flags, lookup};
use crate::control::Cache;
use crate::glob::glob_match;
use crate::metrics::GlobalCounters;
use crate::partition::scan::ScanCursor;
use crate::partition::{SLOTS, ValueType, key_slot};
use crate::pool::{Executed, NotRun, Scanned};
use crate::resp::{Protocol, Reply, reply};

/// Runs a proxy-side command.
pub async fn run(conn: &mut Connection<'_>, op: ConnOp, args: &[Bytes], now: u64) -> Executed {
    // SCAN and KEYS walk keys: their work (milli-units) is the keys and
    // slots visited and the keys replied.
    let mut work = 0;
    let reply = dispatch(conn, op, args, now, &mut work)
        .await
        .unwrap_or_else(|e| e.reply());
    Executed::new(reply, work)
}

async fn dispatch(
    conn: &mut Connection<'_>,
    op: ConnOp,
    args: &[Bytes],
    now: u64,
    work: &mut u64,
) -> Result<Reply, OpError> {
    match op {
        ConnOp::Auth => auth(conn, args).await,
        ConnOp::Hello => hello(conn, args).await,
        ConnOp::Ping => ping(conn, args),
        ConnOp::Echo => Ok(Reply::Bulk(args[1].clone())),
        ConnOp::Quit => {
            conn.session.closing = true;
            // Gone for the cache's other clients at once (a tracking client
            // redirecting here hears of it on the next invalidation, as
            // Redis, which frees the client right after the reply).
            super::session::unsubscribe_all(&mut conn.session);
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
            // One database, as a standalone Redis with `databases 1`.
            _ if cluster_disabled(conn) => Err(OpError::Static(reply::DB_INDEX_OUT_OF_RANGE)),
            _ => Err(OpError::Static(reply::SELECT_CLUSTER)),
        },
        ConnOp::Client => client(conn, args),
        ConnOp::Command => command(args),
        ConnOp::Info => Ok(introspect::info(conn, args)),
        ConnOp::Time => {
            let micros = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            Ok(Reply::Array(vec![
                Reply::bulk((micros / 1_000_000).to_string()),
                Reply::bulk((micros % 1_000_000).to_string()),
            ]))
        }
        ConnOp::Readonly | ConnOp::Readwrite if cluster_disabled(conn) => {
            Err(OpError::Static(reply::CLUSTER_DISABLED))
        }
        ConnOp::Readonly | ConnOp::Readwrite => Ok(Reply::ok()),
        ConnOp::Cluster => cluster(conn, args).await,
        ConnOp::Monitor => super::pubsub::monitor(conn),
        ConnOp::Dbsize => {
            let cache = bound(conn)?;
            // A remote partition's count is its node's, read now.
            cache.pool.refresh_remote_stats().await;
            Ok(Reply::Int(cache.pool.totals().keys as i64))
        }
        ConnOp::Flushdb => {
            match args.get(1) {
                Some(a) if args.len() == 2 && (is(a, "ASYNC") || is(a, "SYNC")) => {}
                None => {}
                Some(_) => return Err(OpError::Syntax),
            }
            let busy = conn.busy_threshold();
            match bound(conn)?.pool.flush(busy, conn.session.id).await {
                Ok(()) => Ok(Reply::ok()),
                Err(NotRun::Unavailable(why)) => Err(OpError::Text(why)),
                Err(_) => Err(OpError::Static(reply::BUSY)),
            }
        }
        ConnOp::Scan => scan(&*bound(conn)?, args, now, conn.busy_threshold(), work).await,
        ConnOp::Keys => keys(&*bound(conn)?, &args[1], now, conn.busy_threshold(), work).await,
        ConnOp::Script => {
            let shared = conn.shared.meta();
            super::scripting::script(&*bound(conn)?, args, shared).await
        }
        ConnOp::Acl => super::acl_cmd::acl(conn, args).await,
        ConnOp::Function => {
            let limits = super::scripting::limits(conn);
            let shared = conn.shared.meta();
            super::scripting::function(&*bound(conn)?, args, limits, work, shared).await
        }
        ConnOp::Randomkey => {
            match bound(conn)?
                .pool
                .random_key(now, conn.busy_threshold())
                .await
            {
                Ok((key, walked)) => {
                    *work += walked;
                    Ok(key.map_or(Reply::Nil, Reply::Bulk))
                }
                Err(NotRun::Unavailable(why)) => Err(OpError::Text(why)),
                Err(_) => Err(OpError::Static(reply::BUSY)),
            }
        }
        ConnOp::Config => introspect::config(conn, args),
        ConnOp::Slowlog => introspect::slowlog(conn, args),
        ConnOp::Latency => introspect::latency(conn, args),
        ConnOp::Wait => introspect::wait(args),
        ConnOp::PubSub => super::pubsub::run(conn, args, work).await,
    }
}

fn bound(conn: &Connection<'_>) -> Result<Arc<Cache>, OpError> {
    conn.session
        .cache
        .clone()
        .ok_or(OpError::Static(reply::NOAUTH))
}

fn ping(conn: &Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    // A RESP2 subscriber gets Redis's array form.
    if conn.session.protocol == Protocol::Resp2 && super::pubsub::subscribed(&conn.session) {
        let text = args.get(1).cloned().unwrap_or_default();
        return match args.len() {
            1 | 2 => Ok(Reply::Array(vec![Reply::bulk("pong"), Reply::Bulk(text)])),
            _ => Err(OpError::Arity("ping")),
        };
    }
    match args.len() {
        1 => Ok(Reply::status(reply::PONG)),
        2 => Ok(Reply::Bulk(args[1].clone())),
        _ => Err(OpError::Arity("ping")),
    }
}

/// Logs the connection in. `user` is a user of the cache the connection is
/// already in, a cache name (its default user, with the cache's token; an
/// open cache takes any password, as Redis's `nopass` default user),
/// `<cache>.<user>` (a named user), or `None` (a token alone finds its
/// cache). A source that keeps failing waits first
/// ([`crate::acl::guard`]); failures are counted, logged (never the secret)
/// and kept in the cache's `ACL LOG`.
async fn login(conn: &mut Connection<'_>, user: Option<&[u8]>, pass: &[u8]) -> Result<(), OpError> {
    let login = user.map(|u| String::from_utf8_lossy(u).into_owned());
    // A bare name is first a user of the cache the connection is in (as
    // `AUTH <user> <password>` on a Redis server), then a cache's name.
    let bound_user = login.as_deref().and_then(|name| {
        let cache = conn.session.cache.as_ref()?;
        cache.user(name).is_some().then(|| cache.name.clone())
    });
    let (cache_name, user_name) = match (bound_user, login.as_deref().map(|l| l.split_once('.'))) {
        (Some(cache), _) => (cache, login.clone()),
        (None, Some(Some((c, u)))) => (c.to_string(), Some(u.to_string())),
        (None, Some(None)) => (login.clone().unwrap_or_default(), None),
        (None, None) => (String::new(), None),
    };
    let ip = conn.session.peer.ip();
    // Failures are kept per existing cache (a name a client makes up is
    // not stored: its length is the client's to choose).
    let guard_key = if conn.shared.registry.get(&cache_name).is_some() {
        cache_name.clone()
    } else {
        String::new()
    };
    let wait = conn
        .shared
        .auth_guard
        .delay(&guard_key, ip, std::time::Instant::now());
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let registry = &conn.shared.registry;
    // Redis's `default` user, when no cache is named so, is whoever holds
    // a token (`redis://default:<token>@host`).
    let by_token =
        login.is_none() || (cache_name == "default" && registry.get("default").is_none());
    let cache = if by_token {
        registry.find_by_token(pass)
    } else {
        registry.get(&cache_name)
    };
    // A memcached-engine cache is reached on the Memcached port only: a
    // RESP login into it fails as a wrong password would.
    let cache = cache.filter(|c| c.engine == crate::control::registry::Engine::Redis);
    let found = cache.clone().and_then(|cache| match &user_name {
        Some(u) => {
            let user = cache.user(u)?;
            user.access()
                .check_password(pass)
                .then_some((cache, Some(user)))
        }
        None if by_token || cache.open || cache.check_token(pass) => Some((cache, None)),
        None => None,
    });
    let Some((cache, user)) = found else {
        conn.shared
            .auth_guard
            .failed(&guard_key, ip, std::time::Instant::now());
        // Names as the client sent them, cut to a name's length at most
        // (for the log and the ACL LOG).
        let cut = |s: &str| s.chars().take(64).collect::<String>();
        let shown = cut(user_name.as_deref().unwrap_or("default"));
        let shown = shown.as_str();
        tracing::warn!(cache = %cut(&cache_name), user = shown, peer = %conn.session.peer, "login refused");
        match &cache {
            Some(c) => {
                c.usage.auth_failures.fetch_add(1, Ordering::Relaxed);
                c.acl_log.record(
                    acl_entry(conn, Reason::Auth, "AUTH".into(), shown),
                    crate::partition::now_ms(),
                );
            }
            None => GlobalCounters::bump(&registry.metrics.global.auth_failures),
        }
        return Err(OpError::Static(reply::WRONGPASS));
    };
    if !conn.session.bind(cache, conn.shared.max_clients_per_cache) {
        return Err(OpError::Static(reply::MAX_CLIENTS));
    }
    conn.session.login(user);
    conn.shared.auth_guard.succeeded(&guard_key, ip);
    Ok(())
}

/// An `ACL LOG` entry about this connection.
pub(crate) fn acl_entry(
    conn: &Connection<'_>,
    reason: Reason,
    object: String,
    user: &str,
) -> Entry {
    Entry {
        count: 0,
        reason,
        context: if conn.session.multi.is_some() {
            "multi"
        } else {
            "toplevel"
        },
        object,
        username: user.to_string(),
        client_info: super::introspect::client_line(conn).trim_end().to_string(),
        entry_id: 0,
        created_ms: 0,
        updated_ms: 0,
    }
}

async fn auth(conn: &mut Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    match args.len() {
        2 => login(conn, None, &args[1]).await?,
        3 => login(conn, Some(&args[1]), &args[2]).await?,
        _ => return Err(OpError::Syntax),
    }
    Ok(Reply::ok())
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
async fn hello(conn: &mut Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
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
        login(conn, Some(&user), &pass).await?;
    }
    if conn.session.cache.is_none() {
        return Err(OpError::Static(reply::NOAUTH_HELLO));
    }
    if let Some(n) = name {
        check_client_name(&n)?;
        conn.session.name = (!n.is_empty()).then_some(n);
    }
    conn.session.protocol = protocol;
    if let Some(subs) = &conn.session.pubsub {
        subs.mailbox.set_resp3(protocol == Protocol::Resp3);
    }
    let proto = if protocol == Protocol::Resp3 { 3 } else { 2 };
    let mode = if cluster_disabled(conn) {
        "standalone"
    } else {
        "cluster"
    };
    Ok(Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("redis")),
        (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
        (Reply::bulk("proto"), Reply::Int(proto)),
        (Reply::bulk("id"), Reply::Int(conn.session.id as i64)),
        (Reply::bulk("mode"), Reply::bulk(mode)),
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

const CLIENT_SUBS: Subcommands = &[
    ("id", 2),
    ("getname", 2),
    ("setname", 3),
    ("setinfo", 4),
    ("info", 2),
    ("list", -2),
    ("kill", -3),
    ("pause", -3),
    ("unpause", 2),
    ("unblock", -3),
    ("reply", 3),
    ("no-evict", 3),
    ("no-touch", 3),
    ("help", 2),
    ("tracking", -3),
    ("caching", 3),
    ("getredir", 2),
    ("trackinginfo", 2),
];
const COMMAND_SUBS: Subcommands = &[
    ("count", 2),
    ("list", -2),
    ("info", -2),
    ("docs", -2),
    ("getkeys", -4),
    ("getkeysandflags", -4),
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

/// Every CLUSTER subcommand of Redis 7.0, with its arity: on a cache with
/// cluster mode disabled each answers [`reply::CLUSTER_DISABLED`] (after
/// its arity check), as a standalone Redis does.
const REDIS_CLUSTER_SUBS: Subcommands = &[
    ("addslots", -3),
    ("addslotsrange", -4),
    ("bumpepoch", 2),
    ("count-failure-reports", 3),
    ("countkeysinslot", 3),
    ("delslots", -3),
    ("delslotsrange", -4),
    ("failover", -2),
    ("flushslots", 2),
    ("forget", 3),
    ("getkeysinslot", 4),
    ("help", 2),
    ("info", 2),
    ("keyslot", 3),
    ("links", 2),
    ("meet", -4),
    ("myid", 2),
    ("nodes", 2),
    ("replicas", 3),
    ("replicate", 3),
    ("reset", -2),
    ("saveconfig", 2),
    ("set-config-epoch", 3),
    ("setslot", -4),
    ("shards", 2),
    ("slaves", 3),
    ("slots", 2),
];

/// Whether the connection's cache has cluster mode disabled (CLUSTER,
/// READONLY and READWRITE then answer as a standalone Redis).
fn cluster_disabled(conn: &Connection<'_>) -> bool {
    conn.session
        .cache
        .as_ref()
        .is_some_and(|c| c.pool.cluster_mode().spans_slots())
}

/// CLIENT ID | GETNAME | SETNAME | INFO | SETINFO | NO-EVICT | NO-TOUCH | HELP
fn client(conn: &mut Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let sub = subcommand("client", CLIENT_SUBS, args)?;
    if matches!(sub, "tracking" | "trackinginfo" | "caching" | "getredir") {
        return super::pubsub::client_tracking(conn, sub, args);
    }
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
        "info" => Ok(Reply::Verbatim(introspect::client_info(conn))),
        "list" => introspect::client_list(conn, args),
        "kill" => introspect::client_kill(conn, args),
        "pause" => introspect::client_pause(conn, args),
        "unpause" => {
            if let Some(c) = &conn.session.cache {
                c.server.unpause();
            }
            Ok(Reply::ok())
        }
        "unblock" => introspect::client_unblock(conn, args),
        "reply" => introspect::client_reply(conn, args),
        "no-evict" | "no-touch" => {
            let on = if is(&args[2], "ON") {
                true
            } else if is(&args[2], "OFF") {
                false
            } else {
                return Err(OpError::Syntax);
            };
            let mut v = conn.session.handle.view.lock();
            if sub == "no-evict" {
                v.no_evict = on;
            } else {
                v.no_touch = on;
                drop(v);
                conn.session.no_touch = on;
            }
            Ok(Reply::ok())
        }
        _ => Ok(help_reply(reply::CLIENT_HELP)),
    }
}

/// COMMAND [COUNT | LIST | INFO name... | DOCS name... | GETKEYS cmd args... | HELP]
fn command(args: &[Bytes]) -> Result<Reply, OpError> {
    if args.len() == 1 {
        return Ok(Reply::Array(resp_commands().map(command_info).collect()));
    }
    let sub = subcommand("command", COMMAND_SUBS, args)?;
    let names = &args[2..];
    let selected = || -> Vec<Option<&'static CommandSpec>> {
        if names.is_empty() {
            resp_commands().map(Some).collect()
        } else {
            names.iter().map(|n| lookup(n)).collect()
        }
    };
    match sub {
        "count" => Ok(Reply::Int(resp_commands().count() as i64)),
        "list" => command_list(names),
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
        "getkeys" | "getkeysandflags" => {
            let spec =
                lookup(&names[0]).ok_or(OpError::Static(reply::INVALID_COMMAND_SPECIFIED))?;
            if !spec.arity_ok(names.len()) {
                return Err(OpError::Static(reply::INVALID_ARGUMENTS));
            }
            // A command with key arguments may name none this time (EVAL
            // with 0 keys): an empty list, not an error.
            if spec.first_key <= 0 && spec.keys == KeySpec::Range {
                return Err(OpError::Static(reply::NO_KEY_ARGUMENTS));
            }
            let with_flags = sub == "getkeysandflags";
            let keys = spec
                .key_positions(names)
                .map(|i| {
                    let key = Reply::Bulk(names[i].clone());
                    if with_flags {
                        Reply::Array(vec![key, key_flags(spec)])
                    } else {
                        key
                    }
                })
                .collect();
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

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]
fn command_list(args: &[Bytes]) -> Result<Reply, OpError> {
    let mut pattern: Option<Bytes> = None;
    let keep: Box<dyn Fn(&'static CommandSpec) -> bool> = match args {
        [] => Box::new(|_| true),
        [by, kind, value] if is(by, "FILTERBY") => {
            let value = value.clone();
            if is(kind, "MODULE") {
                Box::new(|_| false)
            } else if is(kind, "PATTERN") {
                pattern = Some(value.clone());
                Box::new(|_| true)
            } else if is(kind, "ACLCAT") {
                Box::new(move |c| {
                    let info = command_info(c);
                    let Reply::Array(fields) = info else {
                        return false;
                    };
                    let Some(Reply::Set(cats)) = fields.get(6) else {
                        return false;
                    };
                    cats.iter().any(|cat| match cat {
                        Reply::Status(s) => {
                            s[1..].eq_ignore_ascii_case(&String::from_utf8_lossy(&value))
                        }
                        _ => false,
                    })
                })
            } else {
                return Err(OpError::Syntax);
            }
        }
        _ => return Err(OpError::Syntax),
    };
    // Each command, then its subcommands (`client|list`), as Redis 7.
    let mut out = Vec::new();
    for c in resp_commands().filter(|c| keep(c)) {
        out.push(Reply::bulk(c.name));
        for (_, subs) in SUBCOMMANDS.iter().filter(|(p, _)| *p == c.name) {
            out.extend(subs.iter().map(|s| Reply::bulk(format!("{}|{s}", c.name))));
        }
    }
    if let Some(pattern) = pattern {
        // A pattern matches full names, subcommands too (`config|*re*`).
        let p = pattern.to_ascii_lowercase();
        out = resp_commands()
            .flat_map(|c| {
                let subs = SUBCOMMANDS
                    .iter()
                    .filter(move |(p, _)| *p == c.name)
                    .flat_map(|(_, subs)| subs.iter())
                    .map(move |s| format!("{}|{s}", c.name));
                std::iter::once(c.name.to_string()).chain(subs)
            })
            .filter(|n| glob_match(&p, n.as_bytes()))
            .map(Reply::bulk)
            .collect();
    }
    Ok(Reply::Array(out))
}

/// A `COMMAND INFO` entry in Redis 7's ten-field shape.
fn command_info(c: &'static CommandSpec) -> Reply {
    let mut flag_names: Vec<Reply> = flags::NAMES
        .iter()
        .filter(|(f, _)| c.has(*f))
        .map(|(_, n)| Reply::status(n))
        .collect();
    // SORT and SORT_RO also read the keys their BY and GET patterns form.
    if c.keys != KeySpec::Range || matches!(c.name, "sort" | "sort_ro") {
        flag_names.push(Reply::status("movablekeys"));
    }
    // The ACL categories, from the one derivation ACL rules use.
    let cats = crate::acl::categories(c, None);
    let categories: Vec<String> = crate::acl::CATEGORIES
        .iter()
        .enumerate()
        .filter(|(i, _)| cats & (1 << i) != 0)
        .map(|(_, name)| format!("@{name}"))
        .collect();
    Reply::Array(vec![
        Reply::bulk(c.name),
        Reply::Int(i64::from(c.arity)),
        Reply::Set(flag_names),
        Reply::Int(i64::from(c.first_key)),
        Reply::Int(i64::from(c.last_key)),
        Reply::Int(i64::from(c.step)),
        Reply::Set(categories.into_iter().map(Reply::status_owned).collect()),
        Reply::Array(Vec::new()),
        Reply::Array(key_specs(c)),
        Reply::Array(Vec::new()),
    ])
}

/// A command's key flags: `RW update` for writes, `RO access` for reads
/// (Redis refines them per command and key).
fn key_flags(c: &CommandSpec) -> Reply {
    let (a, b) = if c.has(flags::WRITE) {
        ("RW", "update")
    } else {
        ("RO", "access")
    };
    Reply::Set(vec![Reply::status(a), Reply::status(b)])
}

/// A map reply from static keys.
fn map(pairs: Vec<(&'static str, Reply)>) -> Reply {
    Reply::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Reply::bulk(k), v))
            .collect(),
    )
}

/// Redis 7 key specifications, from the row's key positions: an index
/// and a range for fixed keys, an index and a key count for `numkeys`
/// commands, the `STREAMS` keyword for XREAD. Flags are `RW`/`RO` with
/// `update`/`access` (Redis refines them per command).
fn key_specs(c: &CommandSpec) -> Vec<Reply> {
    let key_flags = || key_flags(c);
    let index = |i: i64| {
        map(vec![
            ("type", Reply::bulk("index")),
            ("spec", map(vec![("index", Reply::Int(i))])),
        ])
    };
    let spec = |begin: Reply, find: Reply| {
        map(vec![
            ("flags", key_flags()),
            ("begin_search", begin),
            ("find_keys", find),
        ])
    };
    let range = |last: i64, step: i64, limit: i64| {
        map(vec![
            ("type", Reply::bulk("range")),
            (
                "spec",
                map(vec![
                    ("lastkey", Reply::Int(last)),
                    ("keystep", Reply::Int(step)),
                    ("limit", Reply::Int(limit)),
                ]),
            ),
        ])
    };
    let mut specs = Vec::new();
    if c.first_key > 0 {
        let last = if c.last_key < 0 {
            i64::from(c.last_key)
        } else {
            i64::from(c.last_key - c.first_key)
        };
        specs.push(spec(
            index(i64::from(c.first_key)),
            range(last, i64::from(c.step.max(1)), 0),
        ));
    }
    match c.keys {
        KeySpec::Range => {}
        KeySpec::NumKeys { at } => specs.push(spec(
            index(at as i64),
            map(vec![
                ("type", Reply::bulk("keynum")),
                (
                    "spec",
                    map(vec![
                        ("keynumidx", Reply::Int(0)),
                        ("firstkey", Reply::Int(1)),
                        ("keystep", Reply::Int(1)),
                    ]),
                ),
            ]),
        )),
        KeySpec::Streams => specs.push(spec(
            map(vec![
                ("type", Reply::bulk("keyword")),
                (
                    "spec",
                    map(vec![
                        ("keyword", Reply::bulk("STREAMS")),
                        ("startfrom", Reply::Int(1)),
                    ]),
                ),
            ]),
            range(-1, 1, 2),
        )),
        // SORT ... STORE dest, GEORADIUS ... STORE|STOREDIST dest.
        KeySpec::SortStore | KeySpec::GeoStore => specs.push(spec(
            map(vec![
                ("type", Reply::bulk("keyword")),
                (
                    "spec",
                    map(vec![
                        ("keyword", Reply::bulk("STORE")),
                        ("startfrom", Reply::Int(1)),
                    ]),
                ),
            ]),
            range(0, 1, 0),
        )),
    }
    specs
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
/// A cache with cluster mode disabled answers as a standalone Redis.
async fn cluster(conn: &Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    if cluster_disabled(conn) {
        subcommand("cluster", REDIS_CLUSTER_SUBS, args)?;
        return Err(OpError::Static(reply::CLUSTER_DISABLED));
    }
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
            let (n, _) = slot_keys(&cache, slot, 0, conn.busy_threshold()).await?;
            Ok(Reply::Int(n as i64))
        }
        "getkeysinslot" => {
            let slot = slot_arg(&args[2])?;
            let count = match crate::cmd::args::parse_i64(&args[3]) {
                Some(n) if n >= 0 => n as usize,
                _ => return Err(OpError::Static(reply::INVALID_KEY_COUNT)),
            };
            let cache = bound(conn)?;
            let (_, keys) = slot_keys(&cache, slot, count, conn.busy_threshold()).await?;
            Ok(Reply::Array(keys.into_iter().map(Reply::Bulk).collect()))
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
) -> Result<(usize, Vec<Bytes>), OpError> {
    for _ in 0..8 {
        match cache.pool.slot_keys(slot, limit, busy).await {
            Ok(found) => return Ok(found),
            Err(NotRun::Busy) => return Err(OpError::Static(reply::BUSY)),
            Err(NotRun::Unavailable(why)) => return Err(OpError::Text(why)),
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
    let filter = crate::wire::ScanFilter {
        pattern: opts.pattern.clone(),
        value_type: match &opts.type_name {
            Some(t) => Some(
                ValueType::from_name(t)
                    .ok_or_else(|| OpError::Text(reply::unknown_type_name(t)))?,
            ),
            None => None,
        },
    };
    let mut cursor = Some(ScanCursor::decode(opts.cursor));
    let mut keys = Vec::new();
    let (mut reroutes, mut visited_here) = (0, 0);
    while let Some(c) = cursor {
        let want = opts.count.saturating_sub(keys.len()).max(1);
        let (
            part,
            Scanned {
                keys: batch,
                next,
                visited,
                slots,
            },
        ) = match cache.pool.scan(c, want, now, filter.clone(), busy).await {
            Ok(step) => step,
            Err(NotRun::Busy) => return Err(OpError::Static(reply::BUSY)),
            Err(NotRun::Unavailable(why)) => return Err(OpError::Text(why)),
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
        Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
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
    let filter = crate::wire::ScanFilter {
        pattern: Some(Bytes::copy_from_slice(pattern)),
        value_type: None,
    };
    let mut out = Vec::new();
    let mut cursor = Some(ScanCursor::default());
    let mut reroutes = 0;
    while let Some(c) = cursor {
        match cache
            .pool
            .scan(c, KEYS_STEP, now, filter.clone(), busy)
            .await
        {
            Ok((
                _,
                Scanned {
                    keys: batch,
                    next,
                    visited,
                    slots,
                },
            )) => {
                *work += scan_work_milli(visited, batch.len(), slots);
                out.extend(batch.into_iter().map(Reply::Bulk));
                cursor = next;
            }
            Err(NotRun::Busy) => return Err(OpError::Static(reply::BUSY)),
            Err(NotRun::Unavailable(why)) => return Err(OpError::Text(why)),
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
