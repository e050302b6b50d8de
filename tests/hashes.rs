//! Hash commands with Redis 7 semantics, compared with a real `redis-server`:
//! HSET, HSETNX, HGET, HMSET, HMGET, HGETALL, HDEL, HEXISTS, HLEN, HKEYS,
//! HVALS, HINCRBY, HINCRBYFLOAT, HSTRLEN, HSCAN, HRANDFIELD.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use redis::AsyncTypedCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_basics_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["HSET", "h", "a", "1", "b", "2"],
        &["HSET", "h", "a", "3", "c", "4"],
        &["HSET", "h", "a"],
        &["HSET", "h"],
        &["HSET", "h", "a", "1", "b"],
        &["HMSET", "h", "d", "5", "e", "6"],
        &["HMSET", "h", "d"],
        &["HMSET", "h", "d", "5", "e"],
        &["HSETNX", "h", "a", "x"],
        &["HSETNX", "h", "z", "26"],
        &["HSETNX", "fresh", "f", "v"],
        &["HGET", "h", "a"],
        &["HGET", "h", "nope"],
        &["HGET", "nope", "a"],
        &["HMGET", "h", "a", "nope", "b", "a"],
        &["HMGET", "nope", "a", "b"],
        &["HLEN", "h"],
        &["HLEN", "nope"],
        &["HEXISTS", "h", "a"],
        &["HEXISTS", "h", "nope"],
        &["HEXISTS", "nope", "a"],
        &["HSTRLEN", "h", "a"],
        &["HSTRLEN", "h", "nope"],
        &["HSTRLEN", "nope", "a"],
        &["HDEL", "h", "a", "a", "nope"],
        &["HDEL", "nope", "a"],
        &["HDEL", "h"],
        &["HLEN", "h"],
        // Deleting the last field deletes the key.
        &["HDEL", "fresh", "f"],
        &["EXISTS", "fresh"],
        &["TYPE", "fresh"],
        // Empty and binary fields and values.
        &["HSET", "b", "", "empty-field", "empty-value", ""],
        &["HGET", "b", ""],
        &["HGET", "b", "empty-value"],
        &["HSTRLEN", "b", "empty-value"],
        // Wrong types.
        &["SET", "s", "v"],
        &["HSET", "s", "f", "v"],
        &["HSETNX", "s", "f", "v"],
        &["HMSET", "s", "f", "v"],
        &["HGET", "s", "f"],
        &["HMGET", "s", "f"],
        &["HGETALL", "s"],
        &["HKEYS", "s"],
        &["HVALS", "s"],
        &["HLEN", "s"],
        &["HEXISTS", "s", "f"],
        &["HSTRLEN", "s", "f"],
        &["HDEL", "s", "f"],
        &["HINCRBY", "s", "f", "1"],
        &["HINCRBYFLOAT", "s", "f", "1"],
        &["HSCAN", "s", "0"],
        &["HRANDFIELD", "s"],
        &["GET", "s"],
    ])
    .await;
    // Replies whose order is unspecified.
    p.same_pairs(&["HGETALL", "h"]).await;
    p.same_unordered(&["HKEYS", "h"]).await;
    p.same_unordered(&["HVALS", "h"]).await;
    p.same(&["HGETALL", "nope"]).await;
    p.same(&["HKEYS", "nope"]).await;
    p.same(&["HVALS", "nope"]).await;
    // The same in RESP3: HGETALL is a map.
    p.both(&["HELLO", "3"]).await;
    let all = p.same_pairs(&["HGETALL", "h"]).await;
    assert!(matches!(all, Resp::Map(_)), "{all:?}");
    p.same_unordered(&["HKEYS", "h"]).await;
    p.same(&["HGETALL", "nope"]).await;
    p.same(&["HMGET", "h", "b", "nope"]).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hincrby_and_hincrbyfloat_semantics_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["HINCRBY", "h", "n", "5"],
        &["HINCRBY", "h", "n", "-7"],
        &["HINCRBY", "h", "n", "x"],
        &["HINCRBY", "h", "n", "1.5"],
        &["HINCRBY", "h", "n", "9223372036854775807"],
        &["HINCRBY", "h", "n", "-9223372036854775807"],
        &["HINCRBY", "h", "n", "-9223372036854775807"],
        &["HGET", "h", "n"],
        &["HSET", "h", "s", "abc", "sp", " 1", "z", "01"],
        &["HINCRBY", "h", "s", "1"],
        &["HINCRBY", "h", "sp", "1"],
        &["HINCRBY", "h", "z", "1"],
        &["HINCRBYFLOAT", "h", "f", "1.5"],
        &["HINCRBYFLOAT", "h", "f", "0.25"],
        &["HINCRBYFLOAT", "h", "f", "-1.75"],
        &["HINCRBYFLOAT", "h", "f", "5.0e3"],
        &["HINCRBYFLOAT", "h", "s", "1"],
        &["HINCRBYFLOAT", "h", "f", "x"],
        &["HINCRBYFLOAT", "h", "f", "nan"],
        &["HINCRBYFLOAT", "h", "n", "1"],
        &["HGET", "h", "f"],
        &["HINCRBY", "h", "f", "1"],
        &["HINCRBY", "h"],
        &["HINCRBYFLOAT", "h", "f"],
        &["SETEX", "h2", "100", "x"],
        &["DEL", "h2"],
        &["HSET", "h2", "n", "1"],
        &["EXPIRE", "h2", "100"],
        &["HINCRBY", "h2", "n", "1"],
        &["TTL", "h2"],
    ])
    .await;
    server.shutdown().await;
}

/// An infinite increment is refused with Redis's own error for HINCRBYFLOAT
/// (`ERR value is NaN or Infinity`, checked before the addition).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hincrbyfloat_infinite_increment_error_matches_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["HSET", "h", "f", "1"],
        &["HINCRBYFLOAT", "h", "f", "inf"],
        &["HINCRBYFLOAT", "h", "f", "-inf"],
        &["HINCRBYFLOAT", "h", "new", "+inf"],
        &["HGETALL", "h"],
    ])
    .await;
    server.shutdown().await;
}

/// HINCRBYFLOAT's result text follows Redis's long double arithmetic and
/// `%.17Lf` formatting, as INCRBYFLOAT does (`0.1 + 0.2` is `0.3`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hincrbyfloat_formats_results_like_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["HINCRBYFLOAT", "h", "a", "0.1"],
        &["HINCRBYFLOAT", "h", "a", "0.2"],
        &["HSET", "h", "b", "10.50"],
        &["HINCRBYFLOAT", "h", "b", "0.1"],
        &["HINCRBYFLOAT", "h", "c", "1e20"],
    ])
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hscan_returns_the_same_fields_as_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let mut args = vec!["HSET".to_string(), "big".into()];
    for i in 0..500 {
        args.push(format!("field:{i}"));
        args.push(format!("value:{i}"));
    }
    p.same(&args).await;
    p.same(&["HSET", "small", "a", "1", "b", "2"]).await;
    for (key, extra) in [
        ("big", vec![]),
        ("big", vec!["COUNT", "7"]),
        ("big", vec!["MATCH", "field:1*"]),
        ("big", vec!["MATCH", "field:4?", "COUNT", "3"]),
        ("small", vec![]),
        ("nope", vec![]),
    ] {
        let mut all = Vec::new();
        for raw in [&mut p.redis, &mut p.stratus] {
            let mut cursor = "0".to_string();
            let mut pairs = BTreeMap::new();
            let mut calls = 0;
            loop {
                let mut cmd = vec!["HSCAN", key, cursor.as_str()];
                cmd.extend(extra.iter());
                let r = raw.cmd(&cmd).await;
                let items = r.items();
                for (f, v) in items[1].pairs() {
                    pairs.insert(f.text(), v.text());
                }
                cursor = items[0].text();
                calls += 1;
                assert!(calls < 10_000);
                if cursor == "0" {
                    break;
                }
            }
            all.push(pairs);
        }
        assert_eq!(all[1], all[0], "HSCAN {key} {extra:?}");
    }
    p.script(&[
        &["HSCAN", "big", "x"],
        &["HSCAN", "big", "0", "COUNT", "0"],
        &["HSCAN", "big", "0", "COUNT", "x"],
        &["HSCAN", "big", "0", "FOO"],
        &["HSCAN", "big"],
    ])
    .await;
    // NOVALUES (Redis 7.4's option, which Stratus has): fields only.
    let r = p.stratus.cmd(&["HSCAN", "small", "0", "NOVALUES"]).await;
    let fields: BTreeSet<String> = r.items()[1].items().iter().map(Resp::text).collect();
    assert_eq!(fields, BTreeSet::from(["a".to_string(), "b".to_string()]));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hrandfield_matches_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.same(&["HSET", "h", "a", "1", "b", "2", "c", "3"]).await;
    // Deterministic forms.
    p.script(&[
        &["HRANDFIELD", "nope"],
        &["HRANDFIELD", "nope", "5"],
        &["HRANDFIELD", "nope", "5", "WITHVALUES"],
        &["HRANDFIELD", "h", "0"],
        &["HRANDFIELD", "h", "0", "WITHVALUES"],
        &["HRANDFIELD", "h", "x"],
        &["HRANDFIELD", "h", "1", "FOO"],
        &["HRANDFIELD", "h", "1", "WITHVALUES", "x"],
        &["HRANDFIELD"],
    ])
    .await;
    // A count at least the size returns the whole hash.
    p.same_unordered(&["HRANDFIELD", "h", "3"]).await;
    p.same_unordered(&["HRANDFIELD", "h", "100"]).await;
    p.same_pairs(&["HRANDFIELD", "h", "100", "WITHVALUES"])
        .await;

    let fields = ["a", "b", "c"];
    // One field.
    for _ in 0..20 {
        let r = p.stratus.cmd(&["HRANDFIELD", "h"]).await;
        assert!(fields.contains(&r.text().as_str()), "{r:?}");
    }
    // A positive count: distinct fields.
    let r = p.stratus.cmd(&["HRANDFIELD", "h", "2"]).await;
    let got: BTreeSet<String> = r.items().iter().map(Resp::text).collect();
    assert_eq!(got.len(), 2, "{r:?}");
    assert!(got.iter().all(|f| fields.contains(&f.as_str())));
    // A negative count: that many, repeats allowed.
    let r = p.stratus.cmd(&["HRANDFIELD", "h", "-10"]).await;
    assert_eq!(r.items().len(), 10);
    assert!(
        r.items()
            .iter()
            .all(|f| fields.contains(&f.text().as_str()))
    );
    let r = p
        .stratus
        .cmd(&["HRANDFIELD", "h", "-4", "WITHVALUES"])
        .await;
    let pairs = r.pairs();
    assert_eq!(pairs.len(), 4);
    for (f, v) in pairs {
        let i = fields.iter().position(|x| *x == f.text()).unwrap();
        assert_eq!(v.text(), (i + 1).to_string());
    }
    // RESP3: WITHVALUES returns [field, value] pairs.
    p.both(&["HELLO", "3"]).await;
    let (r, s) = p.both(&["HRANDFIELD", "h", "3", "WITHVALUES"]).await;
    assert_eq!(s.sorted(), r.sorted());
    assert!(s.items().iter().all(|e| e.items().len() == 2), "{s:?}");
    let s = p
        .stratus
        .cmd(&["HRANDFIELD", "h", "-5", "WITHVALUES"])
        .await;
    assert_eq!(s.items().len(), 5);
    assert!(s.items().iter().all(|e| e.items().len() == 2), "{s:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashes_through_the_redis_crate() {
    let server = start_default().await;
    for resp3 in [false, true] {
        let mut c = redis_conn(server.resp_addr, resp3).await;
        let key = format!("user:{resp3}");
        assert_eq!(c.hset(&key, "name", "ada").await.unwrap(), 1);
        c.hset_multiple(&key, &[("lang", "rust"), ("year", "1815")])
            .await
            .unwrap();
        assert_eq!(c.hget(&key, "name").await.unwrap().as_deref(), Some("ada"));
        assert_eq!(c.hlen(&key).await.unwrap(), 3);
        assert_eq!(c.hincr(&key, "year", 10).await.unwrap(), 1825.0);
        let all: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all["year"], "1825");
        assert!(c.hexists(&key, "lang").await.unwrap());
        assert_eq!(c.hdel(&key, "lang").await.unwrap(), 1);
        let mut keys: Vec<String> = redis::cmd("HKEYS")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        keys.sort();
        assert_eq!(keys, vec!["name", "year"]);
    }
    server.shutdown().await;
}

/// HRANDFIELD on a big hash: the reply shapes and the distinct/repeated
/// semantics of positive/negative counts, values next to their fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hrandfield_on_a_big_hash() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    for chunk in (0..20_000).collect::<Vec<_>>().chunks(1000) {
        let mut args = vec!["HSET".to_string(), "big".into()];
        for i in chunk {
            args.extend([format!("f{i}"), format!("v{i}")]);
        }
        assert_eq!(c.cmd(&args).await, int(1000));
    }
    let value_of = |f: &str| format!("v{}", &f[1..]);
    let r = c.cmd(&["HRANDFIELD", "big", "50", "WITHVALUES"]).await;
    let pairs = r.pairs();
    assert_eq!(pairs.len(), 50);
    let distinct: BTreeSet<String> = pairs.iter().map(|(f, _)| f.text()).collect();
    assert_eq!(distinct.len(), 50, "a positive count picks distinct fields");
    for (f, v) in &pairs {
        assert_eq!(v.text(), value_of(&f.text()));
    }
    let r = c.cmd(&["HRANDFIELD", "big", "-30000"]).await;
    assert_eq!(r.items().len(), 30_000, "a negative count picks that many");
    let r = c.cmd(&["HRANDFIELD", "big"]).await;
    assert!(r.text().starts_with('f'));
    let r = c.cmd(&["HRANDFIELD", "big", "30000"]).await;
    assert_eq!(r.items().len(), 20_000, "at most the whole hash");
    server.shutdown().await;
}
