//! Generic key commands with Redis 7 semantics (compared with a real
//! `redis-server`): DEL, UNLINK, EXISTS, TYPE, TOUCH, the EXPIRE family with
//! NX/XX/GT/LT, TTL/PTTL/EXPIRETIME/PEXPIRETIME, PERSIST, RENAME, RENAMENX,
//! COPY, SCAN (MATCH, COUNT, TYPE) and KEYS, with Redis's glob patterns.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn del_unlink_exists_type_touch_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["MSET", "a", "1", "b", "2", "c", "3", "d", "4"],
        &["HSET", "h", "f", "v"],
        &["EXISTS", "a"],
        &["EXISTS", "a", "a", "b", "nope"],
        &["EXISTS", "nope"],
        &["TYPE", "a"],
        &["TYPE", "h"],
        &["TYPE", "nope"],
        &["TOUCH", "a", "b", "nope", "h"],
        &["TOUCH", "nope"],
        &["DEL", "a"],
        &["DEL", "a"],
        &["DEL", "b", "b", "nope"],
        &["UNLINK", "c", "d", "h", "zz"],
        &["EXISTS", "a", "b", "c", "d", "h"],
        &["DEL"],
        &["EXISTS"],
        &["TYPE"],
        &["TYPE", "a", "b"],
        &["UNLINK"],
        &["TOUCH"],
        &["DBSIZE"],
    ])
    .await;
    // Binary and unusual keys.
    let keys: [&[u8]; 4] = [b"with space", b"new\r\nline", b"\x00\xff", b"{tag}x"];
    for k in keys {
        p.same(&[b"SET".as_slice(), k, b"v"]).await;
        p.same(&[b"EXISTS".as_slice(), k]).await;
        p.same(&[b"TYPE".as_slice(), k]).await;
    }
    p.same(&[b"DEL".as_slice(), keys[0], keys[1], keys[2], keys[3]])
        .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_options_nx_xx_gt_lt_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["SET", "k", "v"],
        &["TTL", "k"],
        &["PTTL", "k"],
        &["EXPIRETIME", "k"],
        &["PEXPIRETIME", "k"],
        &["TTL", "nope"],
        &["PTTL", "nope"],
        &["EXPIRETIME", "nope"],
        &["PEXPIRETIME", "nope"],
        // XX and GT need an existing TTL; LT treats "none" as infinite.
        &["EXPIRE", "k", "100", "XX"],
        &["EXPIRE", "k", "100", "GT"],
        &["TTL", "k"],
        &["EXPIRE", "k", "100", "LT"],
        &["TTL", "k"],
        &["PERSIST", "k"],
        &["EXPIRE", "k", "100", "NX"],
        &["EXPIRE", "k", "200", "NX"],
        &["TTL", "k"],
        &["EXPIRE", "k", "200", "XX"],
        &["TTL", "k"],
        // (A relative time equal to the current one is left out: whether the
        // deadline moved by a millisecond depends on timing.)
        &["EXPIRE", "k", "100", "GT"],
        &["EXPIRE", "k", "300", "GT"],
        &["TTL", "k"],
        &["EXPIRE", "k", "400", "LT"],
        &["EXPIRE", "k", "300", "LT"],
        &["EXPIRE", "k", "250", "lt"],
        &["TTL", "k"],
        &["EXPIRE", "k", "260", "XX", "GT"],
        &["EXPIRE", "k", "100", "XX", "LT"],
        &["TTL", "k"],
        // Incompatible and unknown options.
        &["EXPIRE", "k", "100", "NX", "XX"],
        &["EXPIRE", "k", "100", "NX", "GT"],
        &["EXPIRE", "k", "100", "NX", "LT"],
        &["EXPIRE", "k", "100", "GT", "LT"],
        &["EXPIRE", "k", "100", "FOO"],
        &["EXPIRE", "k", "abc"],
        &["EXPIRE", "k", "1.5"],
        &["EXPIRE", "k"],
        &["EXPIRE", "nope", "100"],
        &["EXPIRE", "nope", "100", "NX"],
        // The other units.
        &["PEXPIRE", "k", "500000"],
        &["TTL", "k"],
        &["EXPIREAT", "k", "4102444800"],
        &["EXPIRETIME", "k"],
        &["PEXPIRETIME", "k"],
        &["PEXPIREAT", "k", "4102444800400"],
        &["EXPIRETIME", "k"],
        &["PEXPIRETIME", "k"],
        &["EXPIREAT", "k", "4102444800", "GT"],
        &["EXPIREAT", "k", "4102444801", "GT"],
        &["PEXPIRETIME", "k"],
        &["PEXPIREAT", "k", "4102444800000", "LT"],
        &["PEXPIRETIME", "k"],
        // Overflow.
        &["EXPIRE", "k", "9223372036854775807"],
        &["EXPIRE", "k", "-9223372036854775807"],
        &["PEXPIRE", "k", "9223372036854775807"],
        &["EXPIREAT", "k", "9223372036854775807"],
        &["PEXPIRETIME", "k"],
        // PERSIST.
        &["PERSIST", "k"],
        &["PERSIST", "k"],
        &["TTL", "k"],
        &["PERSIST", "nope"],
        // A deadline in the past deletes the key.
        &["EXPIRE", "k", "0"],
        &["EXISTS", "k"],
        &["SET", "k", "v"],
        &["EXPIRE", "k", "-10"],
        &["EXISTS", "k"],
        &["SET", "k", "v"],
        &["PEXPIREAT", "k", "1"],
        &["GET", "k"],
        &["SET", "k", "v"],
        &["EXPIREAT", "k", "1", "NX"],
        &["EXISTS", "k"],
        // Any type can expire.
        &["HSET", "h", "f", "v"],
        &["EXPIRE", "h", "100"],
        &["TTL", "h"],
        &["HSET", "h", "g", "w"],
        &["TTL", "h"],
    ])
    .await;
    // PTTL counts down in milliseconds.
    p.same(&["PEXPIRE", "h", "100000"]).await;
    let (r, s) = p.both(&["PTTL", "h"]).await;
    for (who, v) in [("redis", r), ("stratus", s)] {
        let v = v.int();
        assert!((95_000..=100_000).contains(&v), "{who} PTTL {v}");
    }
    server.shutdown().await;
}

/// EXPIRETIME rounds a millisecond deadline to the nearest second, as TTL
/// does (Redis's `ttlGenericCommand`: `(ms + 500) / 1000`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiretime_rounds_like_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["SET", "k", "v", "PXAT", "4102444800499"],
        &["EXPIRETIME", "k"],
        &["PEXPIREAT", "k", "4102444800500"],
        &["PEXPIRETIME", "k"],
        &["EXPIRETIME", "k"],
        &["SET", "j", "v", "PXAT", "4102444800999"],
        &["EXPIRETIME", "j"],
    ])
    .await;
    server.shutdown().await;
}

/// Redis checks EXPIRE's options before its time argument.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_error_precedence_matches_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["SET", "k", "v"],
        &["EXPIRE", "k", "abc", "FOO"],
        &["EXPIRE", "k", "abc", "NX", "XX"],
        &["EXPIRE", "nope", "abc"],
        &["PEXPIRE", "k", "x", "GT", "LT"],
    ])
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_keys_are_gone_for_every_command() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["SET", "{e}s", "v", "PX", "100"],
        &["HSET", "{e}h", "f", "v"],
        &["PEXPIRE", "{e}h", "100"],
        &["SET", "{e}keep", "v"],
    ])
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.script(&[
        &["GET", "{e}s"],
        &["EXISTS", "{e}s", "{e}h"],
        &["TTL", "{e}s"],
        &["PTTL", "{e}h"],
        &["TYPE", "{e}h"],
        &["HGETALL", "{e}h"],
        &["HLEN", "{e}h"],
        &["STRLEN", "{e}s"],
        &["APPEND", "{e}s", "new"],
        &["GET", "{e}s"],
        &["TTL", "{e}s"],
        &["RENAME", "{e}h", "{e}x"],
        &["DBSIZE"],
    ])
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_renamenx_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    // Both keys in one slot ({t}): atomic multi-key commands need it in
    // Stratus, as in Redis Cluster.
    p.script(&[
        &["RENAME", "{t}a", "{t}b"],
        &["SET", "{t}a", "1"],
        &["RENAME", "{t}a", "{t}b"],
        &["GET", "{t}a"],
        &["GET", "{t}b"],
        &["RENAME", "{t}b", "{t}b"],
        &["GET", "{t}b"],
        &["RENAMENX", "{t}b", "{t}b"],
        &["SET", "{t}c", "3", "EX", "100"],
        // The TTL moves with the value, and the target's value is replaced.
        &["RENAME", "{t}c", "{t}b"],
        &["GET", "{t}b"],
        &["TTL", "{t}b"],
        &["EXISTS", "{t}c"],
        &["SET", "{t}d", "4"],
        &["RENAMENX", "{t}b", "{t}d"],
        &["RENAMENX", "{t}b", "{t}e"],
        &["GET", "{t}e"],
        &["TTL", "{t}e"],
        &["RENAMENX", "{t}nope", "{t}x"],
        &["HSET", "{t}h", "f", "v"],
        &["RENAME", "{t}h", "{t}d"],
        &["TYPE", "{t}d"],
        &["HGET", "{t}d", "f"],
        &["RENAME", "{t}a"],
        &["RENAMENX", "{t}a"],
    ])
    .await;
    server.shutdown().await;
}

/// Stratus follows Redis Cluster for atomic multi-key commands: keys in
/// different slots get CROSSSLOT (DESIGN §3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_multi_key_commands_need_one_slot() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    assert_eq!(c.cmd(&["SET", "a", "1"]).await, ok());
    let crossslot = err("CROSSSLOT Keys in request don't hash to the same slot");
    assert_eq!(c.cmd(&["RENAME", "a", "b"]).await, crossslot);
    assert_eq!(c.cmd(&["RENAMENX", "a", "b"]).await, crossslot);
    assert_eq!(c.cmd(&["COPY", "a", "b"]).await, crossslot);
    assert_eq!(c.cmd(&["MSETNX", "a", "1", "b", "2"]).await, crossslot);
    // Naturally per-key commands work across slots.
    assert_eq!(c.cmd(&["MSET", "a", "1", "b", "2", "c", "3"]).await, ok());
    assert_eq!(
        c.cmd(&["MGET", "a", "b", "c"]).await,
        bulks(&["1", "2", "3"])
    );
    assert_eq!(c.cmd(&["EXISTS", "a", "b", "c"]).await, int(3));
    assert_eq!(c.cmd(&["TOUCH", "a", "b", "c"]).await, int(3));
    assert_eq!(c.cmd(&["DEL", "a", "b"]).await, int(2));
    assert_eq!(c.cmd(&["UNLINK", "c", "a"]).await, int(1));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_matches_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["COPY", "{c}src", "{c}dst"],
        &["SET", "{c}src", "v", "EX", "100"],
        &["COPY", "{c}src", "{c}dst"],
        &["GET", "{c}dst"],
        &["TTL", "{c}dst"],
        &["SET", "{c}src", "w"],
        &["COPY", "{c}src", "{c}dst"],
        &["GET", "{c}dst"],
        &["COPY", "{c}src", "{c}dst", "REPLACE"],
        &["GET", "{c}dst"],
        &["TTL", "{c}dst"],
        &["COPY", "{c}src", "{c}src"],
        &["COPY", "{c}src", "{c}src", "REPLACE"],
        &["COPY", "{c}src", "{c}d2", "DB", "0"],
        &["GET", "{c}d2"],
        &["COPY", "{c}src", "{c}d3", "FOO"],
        &["COPY", "{c}src", "{c}d3", "DB"],
        &["COPY", "{c}src", "{c}d3", "DB", "x"],
        &["COPY", "{c}src"],
        // Copies of hashes are independent of their source.
        &["HSET", "{c}h", "a", "1", "b", "2"],
        &["COPY", "{c}h", "{c}h2"],
        &["HSET", "{c}h2", "a", "changed"],
        &["HGET", "{c}h", "a"],
        &["HGET", "{c}h2", "a"],
        &["HLEN", "{c}h2"],
        &["TYPE", "{c}h2"],
        &["COPY", "{c}h", "{c}src", "REPLACE"],
        &["TYPE", "{c}src"],
    ])
    .await;
    // Another database: Stratus is one database per cache, like cluster mode.
    let mut c = Raw::connect(server.resp_addr).await;
    assert_eq!(
        c.cmd(&["COPY", "{c}src", "{c}d9", "DB", "1"]).await,
        err("ERR Copying to another database is not allowed in cluster mode")
    );
    server.shutdown().await;
}

/// Runs a SCAN to its end; returns every key returned and the calls made.
async fn scan_all(c: &mut Raw, extra: &[&str]) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    let mut calls = 0;
    loop {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(extra);
        let r = c.cmd(&args).await;
        let items = r.items();
        assert_eq!(items.len(), 2, "{r:?}");
        keys.extend(items[1].items().iter().map(Resp::text));
        cursor = items[0].text();
        calls += 1;
        assert!(calls < 100_000, "SCAN does not end");
        if cursor == "0" {
            return (keys, calls);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_match_count_type_return_the_same_keys_as_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let mut setup = Vec::new();
    for i in 0..600 {
        setup.extend(encode(&["SET", &format!("user:{i}"), "v"]));
        setup.extend(encode(&["HSET", &format!("session:{i}"), "f", "v"]));
        if i % 3 == 0 {
            setup.extend(encode(&["HSET", &format!("user:h{i}"), "f", "v"]));
        }
    }
    for raw in [&mut p.redis, &mut p.stratus] {
        raw.send(&setup).await;
        for _ in 0..1400 {
            assert!(!raw.read().await.is_error());
        }
    }
    p.same(&["DBSIZE"]).await;
    let cases: &[&[&str]] = &[
        &[],
        &["COUNT", "7"],
        &["COUNT", "1000"],
        &["MATCH", "user:*"],
        &["MATCH", "user:1?", "COUNT", "3"],
        &["MATCH", "*:[1-2]5"],
        &["TYPE", "hash"],
        &["TYPE", "string", "COUNT", "50"],
        &["MATCH", "user:*", "TYPE", "hash"],
        &["MATCH", "nothing*"],
        &["TYPE", "HASH"],
    ];
    for extra in cases {
        let (rkeys, _) = scan_all(&mut p.redis, extra).await;
        let (skeys, calls) = scan_all(&mut p.stratus, extra).await;
        let rset: BTreeSet<_> = rkeys.into_iter().collect();
        let sset: BTreeSet<_> = skeys.iter().cloned().collect();
        assert_eq!(sset, rset, "SCAN {extra:?}: key sets differ");
        if extra.is_empty() {
            assert!(calls > 1, "the default COUNT walks in steps");
        }
    }
    // Errors.
    p.script(&[
        &["SCAN", "x"],
        &["SCAN", "0", "COUNT", "0"],
        &["SCAN", "0", "COUNT", "-1"],
        &["SCAN", "0", "COUNT", "x"],
        &["SCAN", "0", "COUNT"],
        &["SCAN", "0", "MATCH"],
        &["SCAN", "0", "FOO", "bar"],
        &["SCAN"],
    ])
    .await;
    server.shutdown().await;
}

/// A key that exists for the whole SCAN is returned at least once, even while
/// other keys come and go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_returns_stable_keys_during_changes() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    let mut w = Raw::connect(server.resp_addr).await;
    let mut setup = Vec::new();
    for i in 0..2000 {
        setup.extend(encode(&["SET", &format!("stable:{i}"), "v"]));
    }
    c.send(&setup).await;
    for _ in 0..2000 {
        assert_eq!(c.read().await, ok());
    }
    let mut cursor = "0".to_string();
    let mut seen = BTreeSet::new();
    let mut step = 0;
    loop {
        // Churn between calls.
        w.cmd(&["SET", &format!("churn:{step}"), "v"]).await;
        if step >= 5 {
            w.cmd(&["DEL", &format!("churn:{}", step - 5)]).await;
        }
        step += 1;
        let r = c.cmd(&["SCAN", &cursor, "COUNT", "25"]).await;
        let items = r.items();
        seen.extend(items[1].items().iter().map(Resp::text));
        cursor = items[0].text();
        if cursor == "0" {
            break;
        }
        assert!(step < 100_000);
    }
    for i in 0..2000 {
        assert!(seen.contains(&format!("stable:{i}")), "stable:{i} missed");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_skips_expired_keys() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    for i in 0..50 {
        assert_eq!(
            c.cmd(&["SET", &format!("short:{i}"), "v", "PX", "50"])
                .await,
            ok()
        );
        assert_eq!(c.cmd(&["SET", &format!("long:{i}"), "v"]).await, ok());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (keys, _) = scan_all(&mut c, &["COUNT", "1000"]).await;
    let keys: BTreeSet<_> = keys.into_iter().collect();
    assert_eq!(keys.len(), 50, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("long:")));
    server.shutdown().await;
}

/// KEYS and SCAN MATCH select the same keys as Redis for the corners of its
/// glob syntax: classes, ranges (reversed, signed bounds), escapes,
/// unterminated classes, the empty key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_scan_match_globs_like_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let keys: &[&[u8]] = &[
        b"",
        b"a",
        b"b",
        b"ab",
        b"]",
        b"^",
        b"-",
        b"\\",
        b"*",
        b"[",
        b"h*llo",
        b"hello",
        b"\xff",
        b"A",
        b"user:1:name",
        b"user:12:name",
        b"a[b",
    ];
    for k in keys {
        p.same(&[&b"SET"[..], k, b"v"]).await;
    }
    let patterns: &[&[u8]] = &[
        b"*",
        b"**",
        b"?",
        b"??",
        b"[a-]",
        b"[a-]b]",
        b"[z-a]",
        b"[a-\xff]",
        b"[^",
        b"[",
        b"[]",
        b"[^]",
        b"a[",
        b"a\\",
        b"\\",
        b"[\\]]",
        b"[\\\\]",
        b"h\\*llo",
        b"h*llo",
        b"*\\**",
        b"user:*:name",
        b"user:?:name",
        b"[^a]",
        b"[-a]",
        b"a[b",
        b"*[b",
    ];
    for pat in patterns {
        p.same_unordered(&[&b"KEYS"[..], pat]).await;
        let (r, s) = p
            .both(&[&b"SCAN"[..], b"0", b"MATCH", pat, b"COUNT", b"1000"])
            .await;
        assert_eq!(
            s.items()[1].sorted(),
            r.items()[1].sorted(),
            "SCAN MATCH {}",
            String::from_utf8_lossy(pat)
        );
    }
    server.shutdown().await;
}

/// The CVE-2022-36021 pattern: a backtracking matcher takes exponential time
/// on it and stalls the partition. The server answers, and goes on answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pathological_glob_patterns_do_not_hang() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    let key = "a".repeat(40);
    assert_eq!(c.cmd(&["SET", &key, "1"]).await, ok());
    assert_eq!(c.cmd(&["HSET", "h", &key, "1"]).await, int(1));
    assert_eq!(c.cmd(&["SADD", "s", &key]).await, int(1));
    assert_eq!(c.cmd(&["ZADD", "z", "1", &key]).await, int(1));
    let pattern = format!("{}b", "a*".repeat(20));
    assert_eq!(c.cmd(&["KEYS", &pattern]).await, arr(vec![]));
    let r = c
        .cmd(&["SCAN", "0", "MATCH", &pattern, "COUNT", "1000"])
        .await;
    assert_eq!(r.items()[1], arr(vec![]));
    for cmd in ["HSCAN", "SSCAN", "ZSCAN"] {
        let key = &cmd[..1].to_lowercase();
        let r = c.cmd(&[cmd, key, "0", "MATCH", &pattern]).await;
        assert_eq!(r.items()[1], arr(vec![]), "{cmd}");
    }
    assert_eq!(c.cmd(&["PING"]).await, simple("PONG"));
    server.shutdown().await;
}

/// Sends `cmds` pipelined and checks no reply is an error.
async fn pipeline(c: &mut Raw, cmds: Vec<Vec<String>>) {
    let mut out = Vec::new();
    for cmd in &cmds {
        out.extend(encode(cmd));
    }
    c.send(&out).await;
    for cmd in &cmds {
        let r = c.read().await;
        assert!(!r.is_error(), "{cmd:?}: {r:?}");
    }
}

/// Every key of one slot (a hash tag): SCAN with a MATCH that selects
/// nothing visits at most COUNT * 10 keys per call, so it answers with an
/// empty page and a cursor to go on with, and a whole scan still finds every
/// matching key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_of_one_big_slot_goes_in_bounded_steps() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    let n = 20_000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let cmds = chunk
            .iter()
            .map(|i| vec!["SET".into(), format!("{{big}}:{i}"), "v".into()])
            .collect();
        pipeline(&mut c, cmds).await;
    }
    let r = c
        .cmd(&["SCAN", "0", "MATCH", "nomatch", "COUNT", "10"])
        .await;
    assert_eq!(r.items()[1], arr(vec![]));
    assert_ne!(r.items()[0].text(), "0", "more to come");
    let (none, calls) = scan_all(&mut c, &["MATCH", "nomatch", "COUNT", "10"]).await;
    assert!(none.is_empty());
    assert!(calls >= n / 100, "{calls} calls for {n} keys");
    let (found, _) = scan_all(&mut c, &["MATCH", "{big}:1?7*", "COUNT", "50"]).await;
    let found: BTreeSet<String> = found.into_iter().collect();
    let want: BTreeSet<String> = (0..n)
        .map(|i| format!("{{big}}:{i}"))
        .filter(|k| {
            let d = &k.as_bytes()[6..];
            d.len() >= 3 && d[0] == b'1' && d[2] == b'7'
        })
        .collect();
    assert_eq!(found, want);
    server.shutdown().await;
}

/// A key that exists for the whole SCAN is returned even while its slot's
/// table grows several times over and then shrinks between calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_returns_stable_keys_while_their_slot_grows_and_shrinks() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    let mut w = Raw::connect(server.resp_addr).await;
    let stable = 2000;
    pipeline(
        &mut c,
        (0..stable)
            .map(|i| vec!["SET".into(), format!("{{t}}stable:{i}"), "v".into()])
            .collect(),
    )
    .await;
    let mut cursor = "0".to_string();
    let mut seen = BTreeSet::new();
    let (mut calls, mut churn) = (0, 0usize);
    loop {
        // 50 new keys per call for 150 calls (the table doubles a few
        // times), then deletions of 100 per call.
        let cmds: Vec<Vec<String>> = if calls < 150 {
            (churn..churn + 50)
                .map(|i| vec!["SET".into(), format!("{{t}}churn:{i}"), "v".into()])
                .collect()
        } else {
            (churn.saturating_sub(100)..churn)
                .map(|i| vec!["DEL".into(), format!("{{t}}churn:{i}")])
                .collect()
        };
        churn = if calls < 150 {
            churn + 50
        } else {
            churn.saturating_sub(100)
        };
        pipeline(&mut w, cmds).await;
        let r = c.cmd(&["SCAN", &cursor, "COUNT", "20"]).await;
        seen.extend(r.items()[1].items().iter().map(Resp::text));
        cursor = r.items()[0].text();
        calls += 1;
        if cursor == "0" {
            break;
        }
        assert!(calls < 100_000);
    }
    for i in 0..stable {
        assert!(
            seen.contains(&format!("{{t}}stable:{i}")),
            "stable:{i} missed"
        );
    }
    server.shutdown().await;
}

/// Runs `cmd key cursor extra...` (HSCAN, SSCAN, ZSCAN) to its end, calling
/// `between` with the call number before each call; returns every
/// `stride`-th element of the pages (the names) and the calls made.
async fn collection_scan_all(
    c: &mut Raw,
    w: &mut Raw,
    cmd: &str,
    key: &str,
    extra: &[&str],
    stride: usize,
    between: impl Fn(usize) -> Vec<Vec<String>>,
) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let (mut names, mut calls) = (Vec::new(), 0);
    loop {
        let cmds = between(calls);
        if !cmds.is_empty() {
            pipeline(w, cmds).await;
        }
        let mut args = vec![cmd, key, cursor.as_str()];
        args.extend_from_slice(extra);
        let r = c.cmd(&args).await;
        let items = r.items();
        assert_eq!(items.len(), 2, "{r:?}");
        names.extend(items[1].items().iter().step_by(stride).map(Resp::text));
        cursor = items[0].text();
        calls += 1;
        assert!(calls < 100_000, "{cmd} does not end");
        if cursor == "0" {
            return (names, calls);
        }
    }
}

/// HSCAN, SSCAN and ZSCAN over big collections: a MATCH that keeps nothing
/// answers with an empty page and a cursor to go on with, whole scans find
/// the same members as Redis, and members present for the whole scan are
/// returned while others come and go between calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_scans_go_in_steps_and_keep_stable_members() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let n = 3000;
    let adds = |cmd: &str, key: &str, range: std::ops::Range<usize>, prefix: &str| {
        range
            .collect::<Vec<_>>()
            .chunks(500)
            .map(|chunk| {
                let mut args = vec![cmd.to_string(), key.to_string()];
                for i in chunk {
                    match cmd {
                        "HSET" => args.extend([format!("{prefix}:{i}"), "v".into()]),
                        "ZADD" => {
                            args.extend([format!("{}", (i * 7919) % n), format!("{prefix}:{i}")])
                        }
                        _ => args.push(format!("{prefix}:{i}")),
                    }
                }
                args
            })
            .collect::<Vec<Vec<String>>>()
    };
    let cases = [
        ("HSCAN", "HSET", "HDEL", "h", 2),
        ("SSCAN", "SADD", "SREM", "s", 1),
        ("ZSCAN", "ZADD", "ZREM", "z", 2),
    ];
    for (scan, add, del, key, stride) in cases {
        pipeline(&mut p.redis, adds(add, key, 0..n, "m")).await;
        pipeline(&mut p.stratus, adds(add, key, 0..n, "m")).await;
        let r = p
            .stratus
            .cmd(&[scan, key, "0", "MATCH", "nomatch", "COUNT", "10"])
            .await;
        assert_eq!(r.items()[1], arr(vec![]), "{scan}");
        assert_ne!(r.items()[0].text(), "0", "{scan}: more to come");
        for extra in [&["MATCH", "m:1?3*"][..], &["COUNT", "50"]] {
            let mut found = Vec::new();
            for raw in [&mut p.redis, &mut p.stratus] {
                let mut unused = Raw::connect(server.resp_addr).await;
                let (names, _) =
                    collection_scan_all(raw, &mut unused, scan, key, extra, stride, |_| vec![])
                        .await;
                found.push(names.into_iter().collect::<BTreeSet<_>>());
            }
            assert_eq!(found[1], found[0], "{scan} {extra:?}");
        }
        // Churn from another connection between calls: 40 members in per
        // call for 40 calls, then 80 out per call.
        let mut w = Raw::connect(server.resp_addr).await;
        let (names, calls) = collection_scan_all(
            &mut p.stratus,
            &mut w,
            scan,
            key,
            &["COUNT", "10"],
            stride,
            |call| {
                if call < 40 {
                    adds(add, key, call * 40..call * 40 + 40, "churn")
                } else if call < 60 {
                    let first = (call - 40) * 80;
                    let mut args = vec![del.to_string(), key.to_string()];
                    args.extend((first..first + 80).map(|i| format!("churn:{i}")));
                    vec![args]
                } else {
                    vec![]
                }
            },
        )
        .await;
        let seen: BTreeSet<String> = names.into_iter().collect();
        for i in 0..n {
            assert!(seen.contains(&format!("m:{i}")), "{scan}: m:{i} missed");
        }
        assert!(calls > 100, "{scan}: {calls} calls");
    }
    server.shutdown().await;
}
