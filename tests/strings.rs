//! String commands with Redis 7 semantics: every command runs on a real
//! `redis-server` and on Stratus, and the replies must be identical (exact
//! values and error strings). A few checks also use the `redis` crate.

mod common;

use std::time::Duration;

use common::*;
use redis::AsyncTypedCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_set_and_set_options_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["GET", "k"],
        &["SET", "k", "v"],
        &["GET", "k"],
        &["SET", "k", "w", "NX"],
        &["SET", "k", "w", "XX"],
        &["GET", "k"],
        &["SET", "new", "x", "XX"],
        &["GET", "new"],
        &["SET", "new", "x", "NX"],
        &["SET", "k", "a", "GET"],
        &["SET", "missing", "a", "GET"],
        &["SET", "k", "b", "NX", "GET"],
        &["SET", "k", "c", "XX", "GET"],
        &["SET", "nx2", "c", "XX", "GET"],
        &["GET", "nx2"],
        &["SET", "k", "w", "NX", "XX"],
        &["SET", "k", "w", "XX", "NX"],
        &["SET", "k", "w", "EX", "10", "PX", "5"],
        &["SET", "k", "w", "EX", "10", "KEEPTTL"],
        &["SET", "k", "w", "KEEPTTL", "PX", "10"],
        &["SET", "k", "w", "EX"],
        &["SET", "k", "w", "FOO"],
        &["SET", "k", "w", "EX", "0"],
        &["SET", "k", "w", "EX", "-5"],
        &["SET", "k", "w", "PX", "0"],
        &["SET", "k", "w", "EX", "abc"],
        &["SET", "k", "w", "EX", "1.5"],
        &["SET", "k", "w", "EX", "9223372036854775807"],
        &["SET", "k", "w", "PX", "9223372036854775807"],
        &["SET", "k", "w", "EXAT", "0"],
        &["GET", "k"],
        &["SET"],
        &["SET", "k"],
        &["GET"],
        &["GET", "a", "b"],
        &["set", "lower", "case"],
        &["GeT", "lower"],
        // TTL options.
        &["SET", "t", "v", "EX", "100"],
        &["TTL", "t"],
        &["SET", "t", "v2", "KEEPTTL"],
        &["TTL", "t"],
        &["GET", "t"],
        &["SET", "t", "v3"],
        &["TTL", "t"],
        &["SET", "t", "v", "PX", "100000"],
        &["TTL", "t"],
        &["SET", "t", "v", "EXAT", "4102444800"],
        &["EXPIRETIME", "t"],
        &["SET", "t", "v", "PXAT", "4102444800123"],
        &["PEXPIRETIME", "t"],
        &["SET", "t", "v", "XX", "KEEPTTL", "GET"],
        &["PEXPIRETIME", "t"],
        // A deadline in the past: OK, and the key is gone.
        &["SET", "past", "v", "PXAT", "1"],
        &["EXISTS", "past"],
        &["GET", "past"],
        &["SET", "past", "v", "EXAT", "1", "GET"],
        // Wrong types.
        &["HSET", "h", "f", "v"],
        &["GET", "h"],
        &["SET", "h", "v", "GET"],
        &["TYPE", "h"],
        &["SET", "h", "plain"],
        &["TYPE", "h"],
        &["GET", "h"],
    ])
    .await;
    assert_eq!(
        p.same(&["SET", "k", "w", "EX", "0"]).await,
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        p.same(&["SET", "k", "w", "NX", "XX"]).await,
        err("ERR syntax error")
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setnx_setex_psetex_getset_getdel_getex_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["SETNX", "a", "1"],
        &["SETNX", "a", "2"],
        &["GET", "a"],
        &["SETEX", "b", "100", "v"],
        &["TTL", "b"],
        &["GET", "b"],
        &["SETEX", "b", "0", "v"],
        &["SETEX", "b", "-1", "v"],
        &["SETEX", "b", "x", "v"],
        &["PSETEX", "c", "100000", "v"],
        &["TTL", "c"],
        &["PSETEX", "c", "0", "v"],
        &["PSETEX", "c", "-10", "v"],
        &["SETEX", "b"],
        &["GETSET", "a", "3"],
        &["GETSET", "fresh", "1"],
        &["GET", "fresh"],
        &["SETEX", "vol", "100", "v"],
        &["GETSET", "vol", "w"],
        &["TTL", "vol"],
        &["GETDEL", "a"],
        &["GETDEL", "a"],
        &["EXISTS", "a"],
        // GETEX
        &["SET", "e", "v"],
        &["GETEX", "e"],
        &["TTL", "e"],
        &["GETEX", "e", "EX", "100"],
        &["TTL", "e"],
        &["GETEX", "e", "PX", "200000"],
        &["TTL", "e"],
        &["GETEX", "e", "EXAT", "4102444800"],
        &["EXPIRETIME", "e"],
        &["GETEX", "e", "PXAT", "4102444800999"],
        &["PEXPIRETIME", "e"],
        &["GETEX", "e", "PERSIST"],
        &["TTL", "e"],
        &["GETEX", "e", "EX", "0"],
        &["GETEX", "e", "EX", "-1"],
        &["GETEX", "e", "EX", "x"],
        &["GETEX", "e", "EX"],
        &["GETEX", "e", "EX", "10", "PX", "10"],
        &["GETEX", "e", "PERSIST", "EX", "10"],
        &["GETEX", "e", "FOO"],
        &["GETEX", "nokey", "EX", "10"],
        &["GETEX", "nokey"],
        &["GETEX", "e", "PXAT", "1"],
        &["EXISTS", "e"],
        // Wrong types.
        &["HSET", "h", "f", "v"],
        &["GETSET", "h", "v"],
        &["GETDEL", "h"],
        &["GETEX", "h"],
        &["SETNX", "h", "v"],
        &["SETEX", "h", "10", "v"],
        &["TYPE", "h"],
    ])
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mget_mset_msetnx_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["MSET", "a", "1", "b", "2", "c", "3"],
        &["MGET", "a", "b", "c", "nope", "a"],
        &["MSET", "a"],
        &["MSET", "a", "1", "b"],
        &["MGET"],
        &["HSET", "h", "f", "v"],
        // A key of another type reads as nil in MGET.
        &["MGET", "a", "h"],
        &["SET", "t", "v", "EX", "100"],
        // MSET clears TTLs.
        &["MSET", "t", "w"],
        &["TTL", "t"],
        // MSETNX: all or nothing (keys of one slot, as atomic multi-key
        // commands need in Stratus, like Redis Cluster).
        &["MSETNX", "{u}1", "a", "{u}2", "b"],
        &["MGET", "{u}1", "{u}2"],
        &["MSETNX", "{u}2", "x", "{u}3", "y"],
        &["MGET", "{u}1", "{u}2", "{u}3"],
        &["MSETNX", "{u}1"],
        &["MSETNX", "{u}1", "a", "{u}2"],
    ])
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["INCR", "n"],
        &["INCR", "n"],
        &["DECR", "n"],
        &["INCRBY", "n", "41"],
        &["DECRBY", "n", "2"],
        &["DECRBY", "n", "-2"],
        &["INCRBY", "n", "-100"],
        &["GET", "n"],
        &["DECR", "fresh"],
        &["INCRBY", "fresh2", "7"],
        &["DECRBY", "fresh3", "7"],
        &["INCRBY", "n", "x"],
        &["INCRBY", "n", "1.5"],
        &["INCRBY", "n", ""],
        &["INCRBY", "n", "+1"],
        &["INCRBY", "n", "01"],
        &["INCRBY", "n", " 1"],
        &["SET", "max", "9223372036854775807"],
        &["INCR", "max"],
        &["INCRBY", "max", "0"],
        &["SET", "min", "-9223372036854775808"],
        &["DECR", "min"],
        &["DECRBY", "min", "1"],
        &["INCRBY", "min", "-1"],
        &["DECRBY", "n", "-9223372036854775808"],
        &["INCRBY", "n", "9223372036854775808"],
        &["SET", "s", "abc"],
        &["INCR", "s"],
        &["SET", "s", "12 "],
        &["INCR", "s"],
        &["SET", "s", "012"],
        &["INCR", "s"],
        &["SET", "s", "1.0"],
        &["INCR", "s"],
        &["SET", "s", ""],
        &["INCR", "s"],
        &["SET", "s", "-0"],
        &["INCR", "s"],
        &["SET", "s", "99999999999999999999"],
        &["INCR", "s"],
        &["SETEX", "vol", "100", "5"],
        &["INCR", "vol"],
        &["TTL", "vol"],
        &["HSET", "h", "f", "1"],
        &["INCR", "h"],
        &["INCRBY", "h", "1"],
        &["DECR", "h"],
        &["INCR"],
        &["INCRBY", "n"],
    ])
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incrbyfloat_semantics_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    // Sums that binary and long double arithmetic agree on.
    p.script(&[
        &["SET", "f", "10.50"],
        &["INCRBYFLOAT", "f", "0.25"],
        &["INCRBYFLOAT", "f", "-5"],
        &["INCRBYFLOAT", "f", "2.0e2"],
        &["GET", "f"],
        &["SET", "g", "5.0e3"],
        &["INCRBYFLOAT", "g", "2.0e2"],
        &["INCRBYFLOAT", "fresh", "3"],
        &["INCRBYFLOAT", "fresh", "-3"],
        &["INCRBYFLOAT", "fresh", "1.5"],
        &["INCRBYFLOAT", "fresh", "-0.75"],
        &["INCRBYFLOAT", "f", "x"],
        &["INCRBYFLOAT", "f", "inf"],
        &["INCRBYFLOAT", "f", "-inf"],
        &["INCRBYFLOAT", "f", "nan"],
        &["INCRBYFLOAT", "f", ""],
        &["INCRBYFLOAT", "f", " 1"],
        &["INCRBYFLOAT", "f"],
        &["SET", "s", "abc"],
        &["INCRBYFLOAT", "s", "1"],
        &["HSET", "h", "f", "1"],
        &["INCRBYFLOAT", "h", "1"],
        &["SETEX", "vol", "100", "1.5"],
        &["INCRBYFLOAT", "vol", "1"],
        &["TTL", "vol"],
    ])
    .await;
    server.shutdown().await;
}

/// INCRBYFLOAT's result text: Redis adds in long double and prints with
/// `%.17Lf`, trailing zeros removed, so `0.1 + 0.2` is `0.3` and
/// `5.6 + 200` is `205.60000000000000001`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incrbyfloat_formats_results_like_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["SET", "f", "10.50"],
        &["INCRBYFLOAT", "f", "0.1"],
        &["SET", "x", "0.1"],
        &["INCRBYFLOAT", "x", "0.2"],
        &["SET", "y", "1.1"],
        &["INCRBYFLOAT", "y", "2.2"],
        &["INCRBYFLOAT", "z", "0.1"],
        &["INCRBYFLOAT", "z", "0.1"],
        &["INCRBYFLOAT", "z", "0.1"],
        &["INCRBYFLOAT", "f", "-5"],
        &["INCRBYFLOAT", "f", "2.0e2"],
        &["INCRBYFLOAT", "big", "1e20"],
        &["INCRBYFLOAT", "tiny", "1e-20"],
    ])
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_strlen_getrange_setrange_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["APPEND", "s", "Hello"],
        &["APPEND", "s", " World"],
        &["GET", "s"],
        &["STRLEN", "s"],
        &["STRLEN", "nope"],
        &["GETRANGE", "s", "0", "3"],
        &["GETRANGE", "s", "-3", "-1"],
        &["GETRANGE", "s", "0", "-1"],
        &["GETRANGE", "s", "10", "100"],
        &["GETRANGE", "s", "5", "3"],
        &["GETRANGE", "s", "-100", "-50"],
        &["GETRANGE", "s", "-1", "-5"],
        &["GETRANGE", "s", "-100", "2"],
        &["GETRANGE", "s", "0", "-100"],
        &["GETRANGE", "s", "20", "30"],
        &["GETRANGE", "nope", "0", "-1"],
        &["GETRANGE", "s", "a", "1"],
        &["GETRANGE", "s", "0"],
        &["SETRANGE", "s", "6", "Redis"],
        &["GET", "s"],
        &["SETRANGE", "s", "20", "!"],
        &["GET", "s"],
        &["STRLEN", "s"],
        &["SETRANGE", "pad", "5", "x"],
        &["GET", "pad"],
        &["SETRANGE", "empty", "0", ""],
        &["EXISTS", "empty"],
        &["SETRANGE", "empty", "10", ""],
        &["EXISTS", "empty"],
        &["SETRANGE", "s", "0", ""],
        &["SETRANGE", "s", "-1", "x"],
        &["SETRANGE", "s", "x", "x"],
        &["SETRANGE", "s", "536870912", "x"],
        &["SETRANGE", "s", "536870911", ""],
        &["SETEX", "vol", "100", "abc"],
        &["APPEND", "vol", "def"],
        &["SETRANGE", "vol", "0", "X"],
        &["TTL", "vol"],
        &["GET", "vol"],
        &["HSET", "h", "f", "v"],
        &["APPEND", "h", "x"],
        &["STRLEN", "h"],
        &["GETRANGE", "h", "0", "1"],
        &["SETRANGE", "h", "0", "x"],
        &["SETRANGE", "h", "0", ""],
    ])
    .await;
    // Binary-safe values.
    let bin: Vec<u8> = (0u8..=255).collect();
    let (r, s) = p.both(&[b"SET".as_slice(), b"bin", &bin]).await;
    assert_eq!(s, r);
    assert_eq!(
        p.same(&[b"GET".as_slice(), b"bin"]).await,
        Resp::Bulk(bin.clone())
    );
    p.same(&[b"APPEND".as_slice(), b"bin", b"\r\n\0"]).await;
    p.same(&["GETRANGE", "bin", "250", "-1"]).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_commands_through_the_redis_crate() {
    let server = start_default().await;
    for resp3 in [false, true] {
        let mut c = redis_conn(server.resp_addr, resp3).await;
        c.set("greeting", "hello").await.unwrap();
        assert_eq!(c.get("greeting").await.unwrap().as_deref(), Some("hello"));
        assert_eq!(c.append("greeting", " world").await.unwrap(), 11);
        assert_eq!(c.strlen("greeting").await.unwrap(), 11);
        assert_eq!(c.incr("visits", 5).await.unwrap(), 5);
        assert_eq!(c.decr("visits", 2).await.unwrap(), 3);
        c.mset(&[("m1", "a"), ("m2", "b")]).await.unwrap();
        let got: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&["m1", "m2", "m3"])
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(got, vec![Some("a".into()), Some("b".into()), None]);
        let f: f64 = redis::cmd("INCRBYFLOAT")
            .arg("fl")
            .arg(2.5)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(f, 2.5);
        c.set_ex("short", "v", 100).await.unwrap();
        assert_eq!(
            c.ttl("short").await.unwrap(),
            redis::IntegerReplyOrNoOp::IntegerReply(100)
        );
        assert_eq!(c.get_del("short").await.unwrap().as_deref(), Some("v"));
        let del: usize = c
            .del(&["greeting", "visits", "m1", "m2", "fl"])
            .await
            .unwrap();
        assert_eq!(del, 5);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_round_trip() {
    let server = start_default().await;
    let mut c = redis_conn(server.resp_addr, false).await;
    let big: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let () = redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query_async(&mut c)
        .await
        .unwrap();
    let back: Vec<u8> = redis::cmd("GET")
        .arg("big")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(back.len(), big.len());
    assert!(back == big);
    let part: Vec<u8> = redis::cmd("GETRANGE")
        .arg("big")
        .arg(1000)
        .arg(1009)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(part, big[1000..1010].to_vec());
    // A short-lived large value also goes away by itself.
    let () = redis::cmd("PEXPIRE")
        .arg("big")
        .arg(50)
        .query_async::<i64>(&mut c)
        .await
        .map(|_| ())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let gone: Option<Vec<u8>> = redis::cmd("GET")
        .arg("big")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(gone.is_none());
    server.shutdown().await;
}
