//! Connection and server commands: PING, ECHO, HELLO, AUTH, QUIT, RESET,
//! SELECT, CLIENT, COMMAND, INFO, DBSIZE, FLUSHDB/FLUSHALL, TIME, and unknown
//! commands. Replies are compared with a real `redis-server` where the
//! behaviour is the same by design.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_commands_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["PING"],
        &["PING", "hello"],
        &["PING", "a", "b"],
        &["ping"],
        &["ECHO", "hi there"],
        &["ECHO", ""],
        &["ECHO"],
        &["ECHO", "a", "b"],
        &["SELECT", "0"],
        &["SELECT", "x"],
        &["SELECT", "0", "1"],
        &["SELECT"],
        &["CLIENT"],
        &["CLIENT", "FOO"],
        &["CLIENT", "GETNAME"],
        &["CLIENT", "SETNAME", "app"],
        &["CLIENT", "GETNAME"],
        &["CLIENT", "SETNAME", "bad name"],
        &["CLIENT", "SETNAME", "bad\nname"],
        &["CLIENT", "GETNAME"],
        &["CLIENT", "SETNAME", ""],
        &["CLIENT", "GETNAME"],
        &["AUTH", "a", "b", "c"],
        &["AUTH"],
        // The open default cache takes any password, as Redis's nopass default user.
        &["AUTH", "default", "anything"],
        &["DBSIZE", "x"],
        &["TIME", "x"],
        &["RESET", "x"],
        &["COMMAND", "FOO"],
        &["FLUSHDB", "FOO"],
        &["FLUSHDB", "SYNC", "ASYNC"],
        &["FLUSHALL", "FOO"],
    ])
    .await;
    // SELECT of another database: one database per cache, as in cluster mode.
    assert_eq!(
        p.stratus.cmd(&["SELECT", "1"]).await,
        err("ERR SELECT is not allowed in cluster mode")
    );
    assert_eq!(
        p.stratus.cmd(&["SELECT", "15"]).await,
        err("ERR SELECT is not allowed in cluster mode")
    );
    server.shutdown().await;
}

/// Wrong arity on a subcommand: Redis 7 names the subcommand
/// (`ERR wrong number of arguments for 'client|setname' command`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subcommand_arity_errors_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["CLIENT", "SETNAME"],
        &["CLIENT", "SETNAME", "a", "b"],
        &["CLIENT", "GETNAME", "x"],
        &["CLIENT", "ID", "x"],
        &["CLIENT", "INFO", "x"],
        &["COMMAND", "COUNT", "x"],
    ])
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_commands_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["FOO"],
        &["FOO", "a", "b"],
        &["foo", "with space", ""],
        &["SUBSCRIBE2", "x"],
        &["FOO", "line\r\nbreak"],
    ])
    .await;
    assert_eq!(
        p.same(&["NOPE", "a", "b"]).await,
        err("ERR unknown command 'NOPE', with args beginning with: 'a' 'b' ")
    );
    // The connection goes on.
    assert_eq!(p.same(&["PING"]).await, simple("PONG"));
    server.shutdown().await;
}

/// Redis shows at most about 128 characters of arguments in the unknown
/// command error (`... with args beginning with: ...`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_command_error_truncates_long_args_like_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let mut many = vec!["foo".to_string()];
    many.extend((1..=60).map(|i| format!("arg{i:03}")));
    p.same(&many).await;
    let long = "x".repeat(300);
    p.same(&["foo", long.as_str(), "b"]).await;
    let long_name = "y".repeat(300);
    p.same(&[long_name.as_str(), "a"]).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_replies_ok_and_closes() {
    let server = start_default().await;
    let real = RealRedis::start().await;
    for addr in [real.addr, server.resp_addr] {
        let mut c = Raw::connect(addr).await;
        // Commands pipelined before QUIT are answered; nothing after it is.
        let mut batch = encode(&["SET", "q", "1"]);
        batch.extend(encode(&["QUIT"]));
        batch.extend(encode(&["SET", "q", "2"]));
        c.send(&batch).await;
        assert_eq!(c.read().await, ok());
        assert_eq!(c.read().await, ok());
        c.assert_closed().await;
        let mut d = Raw::connect(addr).await;
        assert_eq!(d.cmd(&["GET", "q"]).await, bulk("1"), "server {addr}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_restores_connection_defaults_like_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.same(&["CLIENT", "SETNAME", "before-reset"]).await;
    p.both(&["HELLO", "3"]).await;
    assert_eq!(p.same(&["GET", "missing"]).await, Resp::Null);
    assert_eq!(p.same(&["RESET"]).await, simple("RESET"));
    // Back to RESP2, no name, still usable.
    assert_eq!(p.same(&["GET", "missing"]).await, Resp::Nil);
    assert_eq!(p.same(&["CLIENT", "GETNAME"]).await, Resp::Nil);
    p.same(&["SET", "after", "reset"]).await;
    p.same(&["GET", "after"]).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_info_and_setinfo() {
    let server = start_default().await;
    let mut a = Raw::connect(server.resp_addr).await;
    let ida = a.cmd(&["CLIENT", "ID"]).await.int();
    let mut b = Raw::connect(server.resp_addr).await;
    let idb = b.cmd(&["CLIENT", "ID"]).await.int();
    assert_ne!(ida, idb);
    assert!(ida > 0 && idb > ida, "ids grow: {ida} {idb}");
    assert_eq!(
        a.cmd(&["CLIENT", "ID"]).await,
        int(ida),
        "stable per connection"
    );

    assert_eq!(a.cmd(&["CLIENT", "SETNAME", "worker-1"]).await, ok());
    assert_eq!(
        a.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "mylib"]).await,
        ok()
    );
    assert_eq!(
        a.cmd(&["CLIENT", "SETINFO", "lib-ver", "1.2.3"]).await,
        ok()
    );
    let r = a.cmd(&["CLIENT", "SETINFO", "LIB-FOO", "x"]).await;
    assert!(r.text().starts_with("ERR Unrecognized option"), "{r:?}");
    let r = a.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "has space"]).await;
    assert!(r.is_error(), "{r:?}");

    let info = a.cmd(&["CLIENT", "INFO"]).await;
    assert!(
        matches!(info, Resp::Bulk(_)),
        "a bulk string in RESP2: {info:?}"
    );
    let line = info.text();
    assert!(line.ends_with('\n'), "{line:?}");
    let fields: Vec<(String, String)> = line
        .trim_end()
        .split(' ')
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("{kv:?} in {line:?}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    let get = |k: &str| {
        fields
            .iter()
            .find(|(f, _)| f == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k}= in {line:?}"))
    };
    assert_eq!(fields[0].0, "id", "id comes first: {line}");
    assert_eq!(get("id"), ida.to_string());
    assert_eq!(get("name"), "worker-1");
    assert_eq!(get("db"), "0");
    assert_eq!(get("resp"), "2");
    assert_eq!(get("lib-name"), "mylib");
    assert_eq!(get("lib-ver"), "1.2.3");
    let local = a.stream.local_addr().unwrap();
    assert_eq!(get("addr"), local.to_string());
    assert_eq!(get("laddr"), server.resp_addr.to_string());

    // RESP3: a verbatim string.
    b.cmd(&["HELLO", "3"]).await;
    let info = b.cmd(&["CLIENT", "INFO"]).await;
    match &info {
        Resp::Verbatim(f, t) => {
            assert_eq!(f, "txt");
            assert!(String::from_utf8_lossy(t).contains(" resp=3"));
        }
        other => panic!("expected a verbatim string in RESP3, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_count_info_docs() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let c = &mut p.stratus;
    let count = c.cmd(&["COMMAND", "COUNT"]).await.int();
    let all = c.cmd(&["COMMAND"]).await;
    assert_eq!(all.items().len() as i64, count);
    let list = c.cmd(&["COMMAND", "LIST"]).await;
    let names: BTreeSet<String> = list.items().iter().map(Resp::text).collect();
    // COMMAND LIST names subcommands too (`client|list`), as Redis 7.
    let top = names.iter().filter(|n| !n.contains('|')).count();
    assert_eq!(top as i64, count);
    assert!(names.contains("client|list"));
    // Every command of the list is there.
    for name in [
        "ping",
        "echo",
        "hello",
        "auth",
        "quit",
        "reset",
        "select",
        "client",
        "command",
        "info",
        "dbsize",
        "flushdb",
        "flushall",
        "time",
        "get",
        "set",
        "setnx",
        "setex",
        "psetex",
        "getset",
        "getdel",
        "getex",
        "mget",
        "mset",
        "msetnx",
        "incr",
        "decr",
        "incrby",
        "decrby",
        "incrbyfloat",
        "append",
        "strlen",
        "getrange",
        "setrange",
        "del",
        "unlink",
        "exists",
        "type",
        "expire",
        "pexpire",
        "expireat",
        "pexpireat",
        "ttl",
        "pttl",
        "expiretime",
        "pexpiretime",
        "persist",
        "touch",
        "rename",
        "renamenx",
        "copy",
        "scan",
        "hset",
        "hsetnx",
        "hget",
        "hmset",
        "hmget",
        "hgetall",
        "hdel",
        "hexists",
        "hlen",
        "hkeys",
        "hvals",
        "hincrby",
        "hincrbyfloat",
        "hstrlen",
        "hscan",
        "hrandfield",
    ] {
        assert!(names.contains(name), "COMMAND LIST lacks {name}");
    }

    // COMMAND INFO: name, arity, flags, first key, last key, step as Redis has them.
    let data_commands = [
        "get", "set", "mget", "mset", "del", "exists", "incr", "expire", "ttl", "rename", "hset",
        "hget", "hgetall", "getex",
    ];
    for name in data_commands {
        let (r, s) = p.both(&["COMMAND", "INFO", name]).await;
        let (r, s) = (&r.items()[0], &s.items()[0]);
        let (ri, si) = (r.items(), s.items());
        assert!(si.len() >= 7, "COMMAND INFO {name}: {s:?}");
        assert_eq!(si[0], ri[0], "{name} name");
        assert_eq!(si[1], ri[1], "{name} arity");
        let flags = |v: &Resp| v.items().iter().map(Resp::text).collect::<BTreeSet<_>>();
        assert_eq!(flags(&si[2]), flags(&ri[2]), "{name} flags");
        assert_eq!(&si[3..6], &ri[3..6], "{name} key positions");
    }
    p.same(&["COMMAND", "INFO", "nosuchcommand"]).await;
    let r = p
        .stratus
        .cmd(&["COMMAND", "INFO", "GET", "nosuch", "hset"])
        .await;
    assert_eq!(r.items().len(), 3);
    assert_eq!(r.items()[1], Resp::Nil);

    // COMMAND DOCS: a map (RESP3), a flat array of pairs (RESP2).
    let docs2 = p.stratus.cmd(&["COMMAND", "DOCS", "get"]).await;
    assert_eq!(docs2.items().len() % 2, 0, "{docs2:?}");
    p.stratus.cmd(&["HELLO", "3"]).await;
    let docs3 = p.stratus.cmd(&["COMMAND", "DOCS", "get"]).await;
    assert!(matches!(docs3, Resp::Map(_)), "{docs3:?}");
    let docs3 = p.stratus.cmd(&["COMMAND", "DOCS"]).await;
    assert!(matches!(docs3, Resp::Map(_)), "{docs3:?}");
    let docs3 = p.stratus.cmd(&["COMMAND", "DOCS", "nosuch"]).await;
    assert!(matches!(docs3, Resp::Map(_)), "{docs3:?}");
    server.shutdown().await;
}

/// Parses INFO text into (section, field, value) lines.
fn info_fields(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.split("\r\n") {
        if let Some(s) = line.strip_prefix("# ") {
            section = s.to_string();
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((section.clone(), k.to_string(), v.to_string()));
        }
    }
    out
}

fn info_value(text: &str, key: &str) -> Option<String> {
    info_fields(text)
        .into_iter()
        .find(|(_, k, _)| k == key)
        .map(|(_, _, v)| v)
}

fn sections(text: &str) -> Vec<String> {
    text.split("\r\n")
        .filter_map(|l| l.strip_prefix("# ").map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_sections_and_figures() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    let mut other = Raw::connect(server.resp_addr).await;
    assert_eq!(other.cmd(&["PING"]).await, simple("PONG"));
    for i in 0..10 {
        c.cmd(&["SET", &format!("k{i}"), "value"]).await;
    }
    c.cmd(&["SET", "vol", "v", "EX", "100"]).await;
    c.cmd(&["GET", "k1"]).await;
    c.cmd(&["GET", "missing"]).await;

    let all = c.cmd(&["INFO"]).await.text();
    let secs = sections(&all);
    for s in ["Server", "Clients", "Memory", "Stats", "Keyspace"] {
        assert!(secs.contains(&s.to_string()), "INFO lacks # {s}: {secs:?}");
    }
    assert!(info_value(&all, "redis_version").is_some());
    assert_eq!(info_value(&all, "connected_clients").as_deref(), Some("2"));
    assert_eq!(
        info_value(&all, "db0").as_deref().map(|v| v
            .split(',')
            .take(2)
            .collect::<Vec<_>>()
            .join(",")),
        Some("keys=11,expires=1".to_string())
    );
    let used: u64 = info_value(&all, "used_memory").unwrap().parse().unwrap();
    assert!(used >= 11 * 5, "used_memory {used}");
    assert_eq!(info_value(&all, "keyspace_hits").as_deref(), Some("1"));
    assert_eq!(info_value(&all, "keyspace_misses").as_deref(), Some("1"));
    let processed: u64 = info_value(&all, "total_commands_processed")
        .unwrap()
        .parse()
        .unwrap();
    assert!(processed >= 13, "total_commands_processed {processed}");

    // One section, several sections, any case.
    let ks = c.cmd(&["INFO", "keyspace"]).await.text();
    assert_eq!(sections(&ks), vec!["Keyspace".to_string()]);
    let two = c.cmd(&["INFO", "SERVER", "memory"]).await.text();
    assert_eq!(
        sections(&two),
        vec!["Server".to_string(), "Memory".to_string()]
    );
    for s in ["server", "clients", "memory", "stats"] {
        let t = c.cmd(&["INFO", s]).await.text();
        assert_eq!(sections(&t).len(), 1, "INFO {s}: {t}");
    }
    // RESP3: a verbatim string.
    c.cmd(&["HELLO", "3"]).await;
    assert!(matches!(
        c.cmd(&["INFO", "server"]).await,
        Resp::Verbatim(..)
    ));

    // An empty keyspace still has its header and no db0 line.
    c.cmd(&["FLUSHDB"]).await;
    let ks = c.cmd(&["INFO", "keyspace"]).await.text();
    assert_eq!(sections(&ks), vec!["Keyspace".to_string()]);
    assert!(info_value(&ks, "db0").is_none(), "{ks}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbsize_flushdb_flushall_time() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["DBSIZE"],
        &["MSET", "a", "1", "b", "2", "c", "3"],
        &["HSET", "h", "f", "v"],
        &["DBSIZE"],
        &["FLUSHDB"],
        &["DBSIZE"],
        &["MSET", "a", "1", "b", "2"],
        &["FLUSHALL"],
        &["DBSIZE"],
        &["SET", "a", "1"],
        &["FLUSHDB", "ASYNC"],
        &["DBSIZE"],
        &["SET", "a", "1"],
        &["FLUSHALL", "SYNC"],
        &["DBSIZE"],
        &["GET", "a"],
    ])
    .await;
    let r = p.stratus.cmd(&["TIME"]).await;
    let items = r.items();
    assert_eq!(items.len(), 2, "{r:?}");
    assert!(matches!(items[0], Resp::Bulk(_)) && matches!(items[1], Resp::Bulk(_)));
    let secs: u64 = items[0].text().parse().unwrap();
    let micros: u64 = items[1].text().parse().unwrap();
    assert!(micros < 1_000_000);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(secs.abs_diff(now) <= 5, "TIME {secs} vs {now}");
    // Time moves forward.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r2 = p.stratus.cmd(&["TIME"]).await;
    let t1 = secs * 1_000_000 + micros;
    let t2: u64 = r2.items()[0].text().parse::<u64>().unwrap() * 1_000_000
        + r2.items()[1].text().parse::<u64>().unwrap();
    assert!(t2 > t1);
    server.shutdown().await;
}
