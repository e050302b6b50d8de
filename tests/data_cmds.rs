//! The remaining data commands of Redis 7 over real TCP, compared with a
//! real `redis-server` reply for reply: SUBSTR, LCS, BITFIELD(_RO), SORT
//! (_RO), the GEO family, XSETID, COPY of every type, RANDOMKEY across
//! partitions, and DUMP/RESTORE moving values between Redis and Stratus in
//! both directions. Also what bounds them: LCS's transient memory,
//! BITFIELD's and RESTORE's growth against a cache's storage maximum, SORT
//! patterns kept to the sorted key's slot, and the work they are charged.

mod common;

use std::collections::HashSet;

use common::*;

const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn substr_lcs_and_bitfield_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["MSET", "{k}1", "ohmytext", "{k}2", "mynewtext"],
        &["SUBSTR", "{k}1", "0", "3"],
        &["SUBSTR", "{k}1", "-3", "-1"],
        &["SUBSTR", "{k}1", "5", "1"],
        &["SUBSTR", "nokey", "0", "1"],
        &["LCS", "{k}1", "{k}2"],
        &["LCS", "{k}1", "{k}2", "LEN"],
        &["LCS", "{k}1", "{k}2", "IDX"],
        &["LCS", "{k}1", "{k}2", "IDX", "MINMATCHLEN", "4"],
        &[
            "LCS",
            "{k}1",
            "{k}2",
            "IDX",
            "MINMATCHLEN",
            "4",
            "WITHMATCHLEN",
        ],
        &[
            "LCS",
            "{k}1",
            "{k}2",
            "IDX",
            "WITHMATCHLEN",
            "MINMATCHLEN",
            "-5",
        ],
        &["LCS", "{k}1", "{k}2", "IDX", "LEN"],
        &["LCS", "{k}1", "{k}2", "FOO"],
        &["LCS", "{k}1", "{k}2", "MINMATCHLEN"],
        &["LCS", "{k}1", "{k}2", "MINMATCHLEN", "x"],
        &["LCS", "{k}1", "{k}none"],
        &["LCS", "{k}none", "{k}none2", "IDX"],
        &["RPUSH", "{k}list", "a"],
        &["LCS", "{k}1", "{k}list"],
        &["LCS", "{k}1"],
        &[
            "BITFIELD", "bf", "SET", "i8", "0", "100", "GET", "u4", "0", "INCRBY", "i5", "100", "1",
        ],
        &[
            "BITFIELD", "bf", "INCRBY", "u2", "100", "1", "OVERFLOW", "SAT", "INCRBY", "u2", "102",
            "1",
        ],
        &[
            "BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "u2", "102", "1", "INCRBY", "u2",
            "102", "1",
        ],
        &[
            "BITFIELD", "bf", "OVERFLOW", "WRAP", "INCRBY", "i8", "0", "200", "INCRBY", "i8", "0",
            "-300",
        ],
        &[
            "BITFIELD", "bf", "OVERFLOW", "SAT", "INCRBY", "i8", "0", "200", "SET", "u8", "#3",
            "999",
        ],
        &[
            "BITFIELD",
            "bf",
            "SET",
            "i64",
            "0",
            "9223372036854775807",
            "INCRBY",
            "i64",
            "0",
            "1",
        ],
        &[
            "BITFIELD",
            "bf",
            "OVERFLOW",
            "FAIL",
            "INCRBY",
            "i64",
            "0",
            "-1",
            "INCRBY",
            "i64",
            "0",
            "-9223372036854775807",
        ],
        &[
            "BITFIELD", "bf", "GET", "i64", "0", "GET", "u63", "1", "GET", "i3", "#5",
        ],
        &["GET", "bf"],
        &["BITFIELD", "bf", "GET", "u64", "0"],
        &["BITFIELD", "bf", "GET", "i65", "0"],
        &["BITFIELD", "bf", "GET", "i8", "-1"],
        &["BITFIELD", "bf", "GET", "i8", "#-1"],
        &["BITFIELD", "bf", "GET", "i8", "4294967296"],
        &["BITFIELD", "bf", "OVERFLOW", "MAYBE"],
        &["BITFIELD", "bf", "FROB", "i8", "0"],
        &["BITFIELD", "bf", "SET", "i8", "0"],
        &["BITFIELD", "bf", "SET", "i8", "0", "x"],
        &["BITFIELD", "bf"],
        &["BITFIELD_RO", "bf", "GET", "i8", "0", "GET", "u8", "#1"],
        &["BITFIELD_RO", "bf", "SET", "i8", "0", "1"],
        &["BITFIELD", "nokey", "GET", "i8", "0"],
        &["EXISTS", "nokey"],
        &["BITFIELD", "{k}list", "GET", "i8", "0"],
        &["BITFIELD", "{k}list", "SET", "i8", "0", "1"],
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_matches_redis_and_keeps_patterns_in_the_slot() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["RPUSH", "{t}l", "3", "1", "2", "10", "-5", "1.5"],
        &["SORT", "{t}l"],
        &["SORT", "{t}l", "DESC"],
        &["SORT", "{t}l", "LIMIT", "1", "3"],
        &["SORT", "{t}l", "LIMIT", "-1", "2", "DESC"],
        &["SORT", "{t}l", "LIMIT", "10", "2"],
        &["SORT", "{t}l", "ALPHA"],
        &["SORT", "{t}l", "ALPHA", "DESC", "LIMIT", "2", "100"],
        &["SORT", "{t}l", "BY", "nosort"],
        &["SORT", "{t}l", "BY", "nosort", "DESC", "LIMIT", "1", "2"],
        &[
            "MSET", "{t}w_3", "1", "{t}w_1", "3", "{t}w_2", "2", "{t}o_1", "one", "{t}o_3", "three",
        ],
        &["HSET", "{t}h_1", "f", "a"],
        &["HSET", "{t}h_2", "f", "b"],
        &["SORT", "{t}l", "BY", "{t}w_*"],
        &[
            "SORT",
            "{t}l",
            "BY",
            "{t}w_*",
            "GET",
            "#",
            "GET",
            "{t}o_*",
            "GET",
            "{t}h_*->f",
        ],
        &["SORT", "{t}l", "BY", "{t}h_*->f", "ALPHA"],
        &["SORT", "{t}l", "BY", "{t}h_*->f"],
        &["SORT", "{t}l", "GET", "#"],
        &["SORT", "{t}l", "BY", "{t}w_*", "STORE", "{t}dst"],
        &["LRANGE", "{t}dst", "0", "-1"],
        &["SORT", "{t}l", "GET", "{t}o_*", "STORE", "{t}dst"],
        &["LRANGE", "{t}dst", "0", "-1"],
        &["SORT", "{t}l", "LIMIT", "10", "2", "STORE", "{t}dst"],
        &["EXISTS", "{t}dst"],
        &["SORT_RO", "{t}l", "STORE", "{t}x"],
        &["SORT_RO", "{t}l", "DESC", "LIMIT", "0", "2"],
        &["SORT", "{t}l", "LIMIT", "1"],
        &["SORT", "{t}l", "LIMIT", "a", "b"],
        &["SORT", "{t}l", "FOO"],
        &["SET", "{t}s", "x"],
        &["SORT", "{t}s"],
        &["SORT", "nokey"],
        &["RPUSH", "{t}bad", "a", "b"],
        &["SORT", "{t}bad"],
        &["SORT", "{t}bad", "ALPHA"],
        &["ZADD", "{t}z", "3", "a", "1", "b", "2", "c"],
        &["SORT", "{t}z", "BY", "nosort"],
        &["SORT", "{t}z", "BY", "nosort", "DESC", "LIMIT", "1", "1"],
        &["SORT", "{t}z", "ALPHA"],
        &["SADD", "{t}set", "5", "3", "9"],
        &["SORT", "{t}set"],
        &["SORT", "{t}set", "BY", "nosort", "STORE", "{t}d3"],
        &["LRANGE", "{t}d3", "0", "-1"],
    ])
    .await;
    // Patterns whose keys may be in other slots are refused, in Redis
    // Cluster's words; a destination in another slot is CROSSSLOT.
    let s = &mut p.stratus;
    assert_eq!(
        s.cmd(&["SORT", "{t}l", "BY", "w_*"]).await,
        err(
            "ERR BY option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots."
        )
    );
    assert_eq!(
        s.cmd(&["SORT", "{t}l", "GET", "o_*"]).await,
        err(
            "ERR GET option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots."
        )
    );
    assert_eq!(
        s.cmd(&["SORT", "{t}l", "STORE", "elsewhere"]).await,
        err("CROSSSLOT Keys in request don't hash to the same slot")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geo_commands_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let g = "{g}Sicily";
    p.script(&[
        &[
            "GEOADD",
            g,
            "13.361389",
            "38.115556",
            "Palermo",
            "15.087269",
            "37.502669",
            "Catania",
        ],
        &[
            "GEOADD",
            g,
            "CH",
            "13.361389",
            "38.115556",
            "Palermo",
            "15",
            "37",
            "Other",
        ],
        &["GEOADD", g, "NX", "1", "1", "Palermo"],
        &["GEOADD", g, "XX", "CH", "13.4", "38.1", "Palermo"],
        &["GEOADD", g, "NX", "XX", "1", "1", "a"],
        &["GEOADD", g, "1", "1"],
        &["GEOADD", g, "200", "1", "a"],
        &["GEOADD", g, "1", "86", "a"],
        &["GEOADD", g, "x", "1", "a"],
        &["GEOADD", g, "GT", "1", "1", "a"],
        &["ZSCORE", g, "Catania"],
        &["GEODIST", g, "Palermo", "Catania"],
        &["GEODIST", g, "Palermo", "Catania", "km"],
        &["GEODIST", g, "Palermo", "Catania", "MI"],
        &["GEODIST", g, "Palermo", "Catania", "ft"],
        &["GEODIST", g, "Palermo", "Catania", "parsec"],
        &["GEODIST", g, "Palermo", "Catania", "km", "x"],
        &["GEODIST", g, "Palermo", "nope"],
        &["GEODIST", "nokey", "a", "b"],
        &["GEOHASH", g, "Palermo", "Catania", "nope"],
        &["GEOPOS", g, "Palermo", "Catania", "nope"],
        &["GEOPOS", "nokey", "a"],
        &["GEORADIUS", g, "15", "37", "200", "km"],
        &[
            "GEORADIUS",
            g,
            "15",
            "37",
            "200",
            "km",
            "WITHCOORD",
            "WITHDIST",
            "WITHHASH",
        ],
        &["GEORADIUS", g, "15", "37", "200", "km", "WITHDIST", "DESC"],
        &["GEORADIUS", g, "15", "37", "200", "km", "COUNT", "1"],
        &["GEORADIUS", g, "15", "37", "200", "km", "COUNT", "1", "ANY"],
        &["GEORADIUS", g, "15", "37", "200", "km", "ANY"],
        &["GEORADIUS", g, "15", "37", "200", "km", "COUNT", "0"],
        &["GEORADIUS", g, "15", "37", "-1", "km"],
        &["GEORADIUS", g, "15", "37", "x", "km"],
        &["GEORADIUS", g, "15", "37", "200", "km", "STORE", "{g}dst"],
        &["ZRANGE", "{g}dst", "0", "-1"],
        &[
            "GEORADIUS",
            g,
            "15",
            "37",
            "200",
            "km",
            "STORE",
            "{g}dst",
            "WITHDIST",
        ],
        &[
            "GEORADIUS_RO",
            g,
            "15",
            "37",
            "200",
            "km",
            "STORE",
            "{g}dst",
        ],
        &["GEORADIUS", g, "15", "37", "1", "km", "STORE", "{g}dst"],
        &["EXISTS", "{g}dst"],
        &[
            "GEORADIUSBYMEMBER",
            g,
            "Palermo",
            "200",
            "km",
            "WITHDIST",
            "ASC",
        ],
        &["GEORADIUSBYMEMBER", g, "nope", "200", "km"],
        &["GEORADIUSBYMEMBER", "nokey", "nope", "x", "y"],
        &[
            "GEORADIUSBYMEMBER_RO",
            g,
            "Palermo",
            "500",
            "km",
            "WITHCOORD",
        ],
        &[
            "GEOSEARCH",
            g,
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
            "ASC",
        ],
        &[
            "GEOSEARCH",
            g,
            "FROMLONLAT",
            "15",
            "37",
            "BYBOX",
            "400",
            "400",
            "km",
            "ASC",
            "WITHCOORD",
            "WITHDIST",
        ],
        &[
            "GEOSEARCH",
            g,
            "FROMMEMBER",
            "Palermo",
            "BYBOX",
            "400",
            "400",
            "km",
            "DESC",
            "WITHHASH",
        ],
        &[
            "GEOSEARCH",
            g,
            "FROMMEMBER",
            "nope",
            "BYRADIUS",
            "100",
            "km",
        ],
        &["GEOSEARCH", g, "BYRADIUS", "100", "km"],
        &["GEOSEARCH", g, "FROMLONLAT", "15", "37"],
        &[
            "GEOSEARCH",
            g,
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "1",
            "km",
            "BYBOX",
            "1",
            "1",
            "km",
        ],
        &[
            "GEOSEARCH",
            g,
            "FROMLONLAT",
            "15",
            "37",
            "BYBOX",
            "-1",
            "1",
            "km",
        ],
        &[
            "GEOSEARCH",
            g,
            "FROMLONLAT",
            "15",
            "37",
            "BYBOX",
            "x",
            "1",
            "km",
        ],
        &[
            "GEOSEARCH",
            g,
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
            "ANY",
        ],
        &[
            "GEOSEARCH",
            "nokey",
            "FROMMEMBER",
            "a",
            "BYRADIUS",
            "1",
            "km",
        ],
        &[
            "GEOSEARCHSTORE",
            "{g}d3",
            g,
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
        ],
        &["ZRANGE", "{g}d3", "0", "-1", "WITHSCORES"],
        &[
            "GEOSEARCHSTORE",
            "{g}d3",
            g,
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
            "WITHDIST",
        ],
        &[
            "GEOSEARCHSTORE",
            "{g}d3",
            "{g}none",
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
        ],
        &["EXISTS", "{g}d3"],
        &["SET", "{g}str", "x"],
        &["GEOPOS", "{g}str", "a"],
        &[
            "GEOSEARCH",
            "{g}str",
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
        ],
    ])
    .await;
    // Many points: unsorted searches return Redis's box order, sorted ones
    // its distances, across box sizes from metres to thousands of km.
    let mut add = vec!["GEOADD".to_string(), "{g}many".into()];
    for i in 0..300 {
        let lon = -170.0 + (i as f64 * 7.31) % 340.0;
        let lat = -80.0 + (i as f64 * 3.77) % 160.0;
        add.extend([format!("{lon:.5}"), format!("{lat:.5}"), format!("p{i}")]);
    }
    p.same(&add).await;
    for (lon, lat, r) in [
        ("0", "0", "100"),
        ("10", "45", "1500"),
        ("-120", "-60", "4000"),
        ("170", "80", "800"),
        ("3", "3", "20000"),
    ] {
        p.same(&["GEORADIUS", "{g}many", lon, lat, r, "km"]).await;
        p.same(&[
            "GEORADIUS",
            "{g}many",
            lon,
            lat,
            r,
            "km",
            "WITHDIST",
            "ASC",
            "COUNT",
            "5",
        ])
        .await;
        p.same(&[
            "GEOSEARCH",
            "{g}many",
            "FROMLONLAT",
            lon,
            lat,
            "BYBOX",
            r,
            r,
            "km",
            "WITHDIST",
        ])
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xsetid_matches_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["XSETID", "s", "5-0"],
        &["XADD", "s", "1-1", "f", "v"],
        &["XADD", "s", "2-1", "f", "v"],
        &["XSETID", "s", "1-0"],
        &["XSETID", "s", "2-1"],
        &["XSETID", "s", "10-5"],
        &["XADD", "s", "10-5", "f", "v"],
        &["XSETID", "s", "100-0", "ENTRIESADDED", "1"],
        &["XSETID", "s", "100-0", "ENTRIESADDED", "-1"],
        &["XSETID", "s", "100-0", "MAXDELETEDID", "200-0"],
        &[
            "XSETID",
            "s",
            "100-0",
            "MAXDELETEDID",
            "50-0",
            "ENTRIESADDED",
            "10",
        ],
        &["XINFO", "STREAM", "s"],
        &["XSETID", "s", "100-0", "FOO"],
        &["XSETID", "s", "100-0", "ENTRIESADDED"],
        &["XSETID", "s", "abc"],
        &["XSETID", "s", "+"],
        &["SET", "str", "x"],
        &["XSETID", "str", "1-1"],
        &["XSETID", "s"],
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_copies_every_type_like_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["SET", "{c}str", "v"],
        &["RPUSH", "{c}list", "a", "b", "c"],
        &["SADD", "{c}set", "a", "b"],
        &["HSET", "{c}hash", "f", "v", "g", "w"],
        &["ZADD", "{c}zset", "1", "a", "2", "b"],
        &["PFADD", "{c}hll", "a", "b", "c"],
        &["XADD", "{c}stream", "1-1", "f", "v"],
        &["XADD", "{c}stream", "2-1", "f", "w"],
        &["XGROUP", "CREATE", "{c}stream", "g", "0"],
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "1",
            "STREAMS",
            "{c}stream",
            ">",
        ],
        &["EXPIRE", "{c}list", "1000"],
    ])
    .await;
    for t in ["str", "list", "set", "hash", "zset", "hll", "stream"] {
        let (src, dst) = (format!("{{c}}{t}"), format!("{{c}}{t}2"));
        p.same(&["COPY", &src, &dst]).await;
        p.same(&["TYPE", &dst]).await;
        p.same(&["COPY", &src, &dst]).await;
        p.same(&["COPY", &src, &dst, "REPLACE"]).await;
    }
    p.script(&[
        &["GET", "{c}str2"],
        &["LRANGE", "{c}list2", "0", "-1"],
        &["TTL", "{c}list2"],
        &["HGETALL", "{c}hash2"],
        &["ZRANGE", "{c}zset2", "0", "-1", "WITHSCORES"],
        &["PFCOUNT", "{c}hll2"],
        &["XRANGE", "{c}stream2", "-", "+"],
        &["XPENDING", "{c}stream2", "g"],
        &["XINFO", "GROUPS", "{c}stream2"],
        // The copy is independent of its source.
        &["XACK", "{c}stream2", "g", "1-1"],
        &["XPENDING", "{c}stream", "g"],
        &["RPUSH", "{c}list2", "d"],
        &["LLEN", "{c}list"],
    ])
    .await;
    p.same_unordered(&["SMEMBERS", "{c}set2"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomkey_draws_from_every_partition() {
    let server = start(stratus::config::ServeConfig {
        initial_partitions: 8,
        ..Default::default()
    })
    .await;
    let mut c = Raw::connect(server.resp_addr).await;
    assert_eq!(c.cmd(&["RANDOMKEY"]).await, Resp::Nil);
    let keys: Vec<String> = (0..64).map(|i| format!("key:{i}")).collect();
    for k in &keys {
        assert_eq!(c.cmd(&["SET", k, "v"]).await, ok());
    }
    let mut seen = HashSet::new();
    for _ in 0..600 {
        let Resp::Bulk(k) = c.cmd(&["RANDOMKEY"]).await else {
            panic!("RANDOMKEY answered nil with 64 keys")
        };
        let k = String::from_utf8(k).expect("utf-8");
        assert!(keys.contains(&k), "{k} was never written");
        seen.insert(k);
    }
    // 600 uniform draws from 64 keys miss any one with probability ~1e-4.
    assert!(seen.len() >= 60, "only {} distinct keys drawn", seen.len());
    // Keys that expired are never returned.
    assert_eq!(c.cmd(&["FLUSHALL"]).await, ok());
    for i in 0..20 {
        c.cmd(&["SET", &format!("gone:{i}"), "v", "PX", "1"]).await;
    }
    c.cmd(&["SET", "stays", "v"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for _ in 0..20 {
        assert_eq!(c.cmd(&["RANDOMKEY"]).await, bulk("stays"));
    }
}

/// Runs `cmd` on `from` and returns its bulk reply's bytes.
async fn payload(from: &mut Raw, key: &str) -> Vec<u8> {
    match from.cmd(&["DUMP", key]).await {
        Resp::Bulk(b) => b,
        other => panic!("DUMP {key}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_and_restore_move_values_between_redis_and_stratus() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let long = "x".repeat(5000);
    let text = "the quick brown fox jumps over the lazy dog ".repeat(40);
    let mut big_list = vec!["RPUSH", "biglist"];
    let items: Vec<String> = (0..3000).map(|i| format!("item-{i}-{}", i * 7)).collect();
    big_list.extend(items.iter().map(String::as_str));
    let mut big_hash = vec!["HSET", "bighash"];
    let fields: Vec<String> = (0..600).map(|i| format!("f{i}")).collect();
    for f in &fields {
        big_hash.extend([f.as_str(), f.as_str()]);
    }
    let mut big_zset = vec!["ZADD", "bigzset"];
    let scores: Vec<String> = (0..600).map(|i| format!("{}.25", i as i64 - 300)).collect();
    for (s, f) in scores.iter().zip(&fields) {
        big_zset.extend([s.as_str(), f.as_str()]);
    }
    let mut int_set = vec!["SADD", "intset"];
    let ints: Vec<String> = (0..100)
        .map(|i| (i * 1_000_003 - 40_000_000).to_string())
        .collect();
    int_set.extend(ints.iter().map(String::as_str));
    let mut big_set = vec!["SADD", "bigset"];
    big_set.extend(fields.iter().map(String::as_str));
    let setup: Vec<Vec<&str>> = vec![
        vec!["SET", "s_small", "hello"],
        vec!["SET", "s_int", "-12345"],
        vec!["SET", "s_bigint", "1234567890123"],
        vec!["SET", "s_long", &long],
        vec!["SET", "s_text", &text],
        vec!["RPUSH", "list", "a", "1", "-300", "70000", "b"],
        big_list,
        vec!["SADD", "set", "x", "y", "z"],
        int_set,
        big_set,
        vec!["HSET", "hash", "f", "v", "n", "12"],
        big_hash,
        vec![
            "ZADD", "zset", "1.5", "a", "-inf", "b", "3", "c", "inf", "d",
        ],
        big_zset,
    ];
    for cmd in &setup {
        p.same(cmd).await;
    }
    let reads: Vec<(&str, Vec<&str>)> = vec![
        ("s_small", vec!["GET"]),
        ("s_int", vec!["GET"]),
        ("s_bigint", vec!["GET"]),
        ("s_long", vec!["GET"]),
        ("s_text", vec!["GET"]),
        ("list", vec!["LRANGE", "0", "-1"]),
        ("biglist", vec!["LRANGE", "0", "-1"]),
        ("set", vec!["SMEMBERS"]),
        ("intset", vec!["SMEMBERS"]),
        ("bigset", vec!["SMEMBERS"]),
        ("hash", vec!["HGETALL"]),
        ("bighash", vec!["HGETALL"]),
        ("zset", vec!["ZRANGE", "0", "-1", "WITHSCORES"]),
        ("bigzset", vec!["ZRANGE", "0", "-1", "WITHSCORES"]),
    ];
    for (key, read) in &reads {
        let cmd = |k: &str| -> Vec<String> {
            let mut c = vec![read[0].to_string(), k.to_string()];
            c.extend(read[1..].iter().map(|s| s.to_string()));
            c
        };
        // Redis's payload restored in Stratus.
        let from_redis = payload(&mut p.redis, key).await;
        let copy = format!("{key}:from_redis");
        assert_eq!(
            p.stratus
                .cmd(&[b"RESTORE".as_slice(), copy.as_bytes(), b"0", &from_redis])
                .await,
            ok(),
            "RESTORE of Redis's DUMP of {key}"
        );
        let want = p.redis.cmd(&cmd(key)).await.sorted();
        assert_eq!(p.stratus.cmd(&cmd(&copy)).await.sorted(), want, "{key}");
        // Stratus's payload restored in Redis.
        let from_stratus = payload(&mut p.stratus, key).await;
        assert_eq!(
            p.redis
                .cmd(&[b"RESTORE".as_slice(), copy.as_bytes(), b"0", &from_stratus])
                .await,
            ok(),
            "RESTORE in Redis of Stratus's DUMP of {key}"
        );
        assert_eq!(p.redis.cmd(&cmd(&copy)).await.sorted(), want, "{key}");
    }
    // Small strings dump to the same bytes as Redis's.
    p.same(&["DUMP", "s_small"]).await;
    p.same(&["DUMP", "s_int"]).await;
    p.same(&["DUMP", "nokey"]).await;
    // Options and errors, as Redis answers them.
    let hello = payload(&mut p.redis, "s_small").await;
    let mut corrupt = hello.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let restore = |key: &'static str, ttl: &'static str, payload: &[u8], opts: &[&'static str]| {
        let mut c: Vec<Vec<u8>> = vec![
            b"RESTORE".to_vec(),
            key.into(),
            ttl.into(),
            payload.to_vec(),
        ];
        c.extend(opts.iter().map(|o| o.as_bytes().to_vec()));
        c
    };
    for cmd in [
        restore("s_small", "0", &hello, &[]),
        restore("s_small", "0", &hello, &["REPLACE"]),
        restore("r1", "-1", &hello, &[]),
        restore("r1", "x", &hello, &[]),
        restore("r1", "0", &corrupt, &[]),
        restore("r1", "0", b"short", &[]),
        restore("r1", "0", &hello, &["FOO"]),
        restore("r1", "0", &hello, &["IDLETIME", "-1"]),
        restore("r1", "0", &hello, &["FREQ", "256"]),
        restore("r1", "0", &hello, &["IDLETIME", "10", "FREQ", "5"]),
        restore("r1", "0", &hello, &["IDLETIME", "10"]),
        restore("r2", "0", &hello, &["FREQ", "5"]),
        restore("r3", "1000", &hello, &["ABSTTL"]),
        restore("s_small", "1000", &hello, &["ABSTTL", "REPLACE"]),
        restore("r4", "100000", &hello, &[]),
    ] {
        p.same(&cmd).await;
    }
    p.script(&[
        &["EXISTS", "r1", "r2", "r3", "s_small"],
        &["GET", "r1"],
        &["TTL", "r4"],
    ])
    .await;
    // A payload that decodes badly (valid footer, unknown type).
    let mut bad = vec![42u8, 1, 2, 3];
    bad.extend_from_slice(&10u16.to_le_bytes());
    let crc = stratus::cmd::dump::crc64(0, &bad);
    bad.extend_from_slice(&crc.to_le_bytes());
    p.same(&[b"RESTORE".as_slice(), b"r5", b"0", &bad]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_dump_and_restore_with_their_groups() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    // 250 entries (three nodes), fields that change, deletions, a group
    // with pending entries for two consumers and one without.
    for i in 1..=250 {
        let (ms, seq) = (1000 + i / 3, i % 3);
        let id = format!("{ms}-{seq}");
        let v = (i * 37).to_string();
        if i % 7 == 0 {
            p.same(&["XADD", "st", &id, "other", &v, "x", "a long value here"])
                .await;
        } else {
            p.same(&["XADD", "st", &id, "field", &v, "n", "12"]).await;
        }
    }
    p.script(&[
        &["XDEL", "st", "1010-0", "1020-1"],
        &["XGROUP", "CREATE", "st", "g1", "0"],
        &["XGROUP", "CREATE", "st", "g2", "$"],
        &["XGROUP", "CREATECONSUMER", "st", "g1", "idle"],
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "alice",
            "COUNT",
            "5",
            "STREAMS",
            "st",
            ">",
        ],
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "bob",
            "COUNT",
            "3",
            "STREAMS",
            "st",
            ">",
        ],
        &["XACK", "st", "g1", "1000-2"],
        &["XADD", "empty", "1-1", "f", "v"],
        &["XDEL", "empty", "1-1"],
    ])
    .await;
    let reads: &[&[&str]] = &[
        &["XRANGE", "{}", "-", "+"],
        &["XLEN", "{}"],
        &["XINFO", "GROUPS", "{}"],
        &["XPENDING", "{}", "g1"],
        &["XADD", "{}", "*", "after", "restore"],
    ];
    for key in ["st", "empty"] {
        let from_redis = payload(&mut p.redis, key).await;
        let from_stratus = payload(&mut p.stratus, key).await;
        let copy = format!("{key}:copy");
        assert_eq!(
            p.stratus
                .cmd(&[b"RESTORE".as_slice(), copy.as_bytes(), b"0", &from_redis])
                .await,
            ok(),
            "RESTORE of Redis's DUMP of {key}"
        );
        assert_eq!(
            p.redis
                .cmd(&[b"RESTORE".as_slice(), copy.as_bytes(), b"0", &from_stratus])
                .await,
            ok(),
            "RESTORE in Redis of Stratus's DUMP of {key}"
        );
        for read in reads {
            let on = |k: &str| -> Vec<String> {
                read.iter()
                    .map(|a| {
                        if *a == "{}" {
                            k.to_string()
                        } else {
                            a.to_string()
                        }
                    })
                    .collect()
            };
            if key == "empty" && read[0] == "XPENDING" {
                continue; // NOGROUP names the key
            }
            if read[0] == "XADD" {
                // A new entry after the last ID: both restored copies agree.
                let (r, s) = p.both(&on(&copy)).await;
                assert_eq!(r.is_error(), s.is_error(), "{read:?} on {copy}");
                continue;
            }
            let want = p.redis.cmd(&on(key)).await;
            assert_eq!(
                p.stratus.cmd(&on(&copy)).await,
                want,
                "{read:?} on Stratus's {copy}"
            );
            assert_eq!(
                p.redis.cmd(&on(&copy)).await,
                want,
                "{read:?} on Redis's {copy}"
            );
        }
    }
    p.same(&["XINFO", "CONSUMERS", "st:copy", "g2"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_and_stored_growth_is_bounded() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http
        .create_cache_with("small", r#"{"data_storage": {"maximum": 1, "unit": "MB"}}"#)
        .await;
    let mut c = raw_auth(server.resp_addr, "small", &token).await;
    // BITFIELD reserves its farthest bit before the string grows.
    assert_eq!(
        c.cmd(&["BITFIELD", "bf", "SET", "u8", "4000000000", "1"])
            .await,
        err(OOM)
    );
    assert_eq!(c.cmd(&["EXISTS", "bf"]).await, int(0));
    // RESTORE of a value past the room left: OOM, nothing stored.
    let real = RealRedis::start().await;
    let mut r = Raw::connect(real.addr).await;
    // 3 MB: past the limit and the 1 MiB a growing write may overshoot it.
    let big = "y".repeat(1_500_000);
    r.cmd(&["SET", "a", &big]).await;
    r.cmd(&["APPEND", "a", &big]).await;
    let dumped = payload(&mut r, "a").await;
    assert!(
        dumped.len() < 100_000,
        "Redis compressed the repeated bytes"
    );
    assert_eq!(
        c.cmd(&[b"RESTORE".as_slice(), b"a", b"0", &dumped]).await,
        err(OOM)
    );
    assert_eq!(c.cmd(&["EXISTS", "a"]).await, int(0));
    // SORT ... STORE checks the room as the result grows.
    let items: Vec<String> = (0..2000).map(|i| format!("{i:0>250}")).collect();
    let mut push = vec!["RPUSH", "{s}l"];
    push.extend(items.iter().map(String::as_str));
    assert_eq!(c.cmd(&push).await, int(2000));
    // Five GETs per element: a 2.5 MB result from a 0.5 MB list.
    assert_eq!(
        c.cmd(&[
            "SORT", "{s}l", "ALPHA", "GET", "#", "GET", "#", "GET", "#", "GET", "#", "GET", "#",
            "STORE", "{s}d"
        ])
        .await,
        err(OOM)
    );
    assert_eq!(c.cmd(&["EXISTS", "{s}d"]).await, int(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lcs_is_refused_past_proto_max_bulk_len_and_metered_per_cell() {
    let server = start_default().await;
    let http = Http::new(server.http_addr);
    let mut c = Raw::connect(server.resp_addr).await;
    // 20k × 20k cells of 4 bytes = 1.6 GB > 512 MB: refused before allocating.
    let a = "a".repeat(20_000);
    c.cmd(&["MSET", "{l}a", &a, "{l}b", &a]).await;
    assert_eq!(
        c.cmd(&["LCS", "{l}a", "{l}b"]).await,
        err("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
    );
    // 2000 × 2000 = 4M cells: charged as work, far above its transfer.
    let ecpu = |u: serde_json::Value| u["ecpu_total"].as_f64().expect("ecpu_total");
    let x = "ab".repeat(1000);
    let y = "ba".repeat(1000);
    c.cmd(&["MSET", "{l}x", &x, "{l}y", &y]).await;
    let before = ecpu(http.get("/v1/caches/default/usage").await.json());
    assert_eq!(c.cmd(&["LCS", "{l}x", "{l}y", "LEN"]).await, int(1999));
    let after = ecpu(http.get("/v1/caches/default/usage").await.json());
    assert!(
        after - before >= 4000.0,
        "LCS of 4M cells cost {} ECPU",
        after - before
    );
}
