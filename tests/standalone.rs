//! Cluster mode disabled over real TCP: a cache created with
//! `"cluster_mode": "disabled"` (or the `default` cache with
//! `--default-cache-cluster-mode disabled`) answers multi-key commands,
//! transactions, WATCH, scripts, functions and SORT patterns across slots
//! exactly as a standalone redis-server does (replies compared with a real
//! one), answers CLUSTER as a standalone Redis, and never splits; a cache
//! with cluster mode enabled keeps the one-slot rule (CROSSSLOT) beside it;
//! the control API validates the mode.

mod common;

use common::{Http, Pair, Raw, Resp, bulk, encode, eventually, int, ok, raw_auth, start};
use redis::AsyncCommands;
use stratus::config::ServeConfig;
use stratus::partition::{ClusterMode, key_slot};

/// Split thresholds small enough that an enabled-mode cache splits within
/// seconds under this file's load (as `tests/partitions.rs` sets them).
fn elastic(mode: ClusterMode) -> ServeConfig {
    ServeConfig {
        split_bytes: 32 * 1024,
        merge_bytes: 16 * 1024,
        split_ecpu_per_sec: 1_000_000,
        split_load_window: 1,
        merge_window: 1,
        merge_delay: 1,
        default_cache_cluster_mode: mode,
        ..ServeConfig::default()
    }
}

async fn partitions(http: &Http, cache: &str) -> usize {
    let r = http.get(&format!("/v1/caches/{cache}/partitions")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["partitions"].as_array().expect("partitions").len()
}

/// Commands whose keys lie in different slots (checked below), with the
/// replies a standalone Redis gives.
const ACROSS_SLOTS: &[&[&str]] = &[
    &["MSET", "a", "1", "b", "2", "c", "3"],
    &["MGET", "a", "b", "c", "nope"],
    &["MSETNX", "d", "4", "e", "5"],
    &["MSETNX", "e", "6", "f", "7"],
    &["DEL", "a", "d", "nope"],
    &["EXISTS", "b", "c", "e", "f"],
    &["SADD", "s1", "x", "y"],
    &["SADD", "s2", "y", "z"],
    &["SUNIONSTORE", "dst", "s1", "s2"],
    &["SINTERSTORE", "inter", "s1", "s2"],
    &["SMOVE", "s1", "s2", "x"],
    &["SCARD", "s2"],
    &["RENAME", "s2", "renamed"],
    &["RENAMENX", "b", "c"],
    &["COPY", "c", "copied"],
    &["GET", "copied"],
    &["RPUSH", "l1", "a", "b", "c"],
    &["LMOVE", "l1", "l2", "LEFT", "RIGHT"],
    &["RPOPLPUSH", "l1", "l2"],
    &["LRANGE", "l2", "0", "-1"],
    &["BLMOVE", "l1", "l3", "RIGHT", "LEFT", "0"],
    &["LMPOP", "2", "nope", "l2", "LEFT", "COUNT", "5"],
    &["ZADD", "z1", "1", "a", "2", "b"],
    &["ZADD", "z2", "3", "b"],
    &["ZUNIONSTORE", "zout", "2", "z1", "z2"],
    &["ZRANGE", "zout", "0", "-1", "WITHSCORES"],
    // SORT BY and GET patterns without a hash tag.
    &["RPUSH", "ids", "3", "1", "2"],
    &["MSET", "w_1", "30", "w_2", "20", "w_3", "10"],
    &["MSET", "o_1", "one", "o_2", "two", "o_3", "three"],
    &["HSET", "h_1", "f", "uno"],
    &["SORT", "ids", "BY", "w_*", "GET", "o_*", "GET", "#"],
    &["SORT", "ids", "BY", "w_*", "DESC", "GET", "h_*->f"],
    &["SORT_RO", "ids", "BY", "o_*", "ALPHA", "GET", "w_*"],
    &[
        "SORT", "ids", "BY", "nosort", "GET", "o_*", "STORE", "sorted",
    ],
    &["LRANGE", "sorted", "0", "-1"],
    // Scripts touching keys they never declared.
    &[
        "EVAL",
        "redis.call('set', KEYS[1], ARGV[1]); redis.call('set', 'undeclared', 'u'); return redis.call('mget', KEYS[1], KEYS[2], 'undeclared')",
        "2",
        "k1",
        "k2",
        "v",
    ],
    &["EVAL", "return redis.call('get', 'undeclared')", "0"],
    &[
        "EVAL",
        "#!lua flags=no-cluster\nreturn redis.call('incr', 'counter')",
        "0",
    ],
    &["EVAL_RO", "return redis.call('exists', 'a', 'b', 'c')", "0"],
    // Standalone Redis's answers to the cluster commands.
    &["CLUSTER", "INFO"],
    &["CLUSTER", "SLOTS"],
    &["CLUSTER", "KEYSLOT", "foo"],
    &["CLUSTER", "KEYSLOT"],
    &["CLUSTER", "MEET", "127.0.0.1", "1"],
    &["CLUSTER", "NOSUCH"],
    &["READONLY"],
    &["READWRITE"],
    &["CONFIG", "GET", "cluster-enabled"],
];

const LIBRARY: &str = "#!lua name=standalone\n\
redis.register_function('both', function(keys, args)\n\
  redis.call('set', keys[1], args[1])\n\
  redis.call('set', keys[2], args[1])\n\
  return redis.call('mget', keys[1], keys[2], 'fn_undeclared')\n\
end)\n\
redis.register_function{function_name='touch', callback=function(keys, args)\n\
  return redis.call('incr', 'fn_undeclared')\n\
end, flags={'no-cluster'}}";

#[test]
fn the_test_keys_span_slots() {
    for pair in [
        ("a", "b"),
        ("s1", "s2"),
        ("l1", "l2"),
        ("ids", "w_1"),
        ("k1", "undeclared"),
        ("w", "x"),
        ("q1", "q2"),
    ] {
        assert_ne!(key_slot(pair.0.as_bytes()), key_slot(pair.1.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_cache_answers_as_standalone_redis() {
    let server = start(elastic(ClusterMode::Disabled)).await;
    let mut pair = Pair::new(server.resp_addr).await;
    pair.script(ACROSS_SLOTS).await;
    pair.same_unordered(&["SMEMBERS", "dst"]).await;
    pair.same_unordered(&["SMEMBERS", "renamed"]).await;
    // Functions: keys in two slots, and keys never declared.
    pair.same(&["FUNCTION", "LOAD", LIBRARY]).await;
    pair.same(&["FCALL", "both", "2", "q1", "q2", "v"]).await;
    pair.same(&["FCALL", "touch", "0"]).await;
    pair.same(&["FCALL_RO", "both", "2", "q1", "q2", "v"]).await;
    // MULTI/EXEC and WATCH over keys in different slots.
    pair.script(&[
        &["WATCH", "w", "x"],
        &["MULTI"],
        &["SET", "w", "1"],
        &["INCR", "x"],
        &["MGET", "w", "x", "a"],
        &["RENAME", "w", "y"],
        &["EXEC"],
    ])
    .await;
    // A watched key written by another client: EXEC runs nothing.
    let mut other_redis = Raw::connect(pair.redis_addr()).await;
    let mut other_stratus = Raw::connect(server.resp_addr).await;
    pair.same(&["WATCH", "x", "y"]).await;
    assert_eq!(other_redis.cmd(&["SET", "y", "changed"]).await, ok());
    assert_eq!(other_stratus.cmd(&["SET", "y", "changed"]).await, ok());
    pair.script(&[
        &["MULTI"],
        &["SET", "x", "2"],
        &["SET", "w", "3"],
        &["EXEC"],
    ])
    .await;
    pair.same(&["MGET", "x", "y", "w"]).await;
    // A watched key a script writes without declaring it: EXEC runs nothing.
    pair.same(&["WATCH", "x"]).await;
    let touch = ["EVAL", "return redis.call('incr', 'x')", "0"];
    assert_eq!(
        other_redis.cmd(&touch).await,
        other_stratus.cmd(&touch).await
    );
    pair.script(&[&["MULTI"], &["SET", "x", "9"], &["EXEC"]])
        .await;
    pair.same(&["GET", "x"]).await;
    // INFO's cluster section.
    let (r, s) = pair.both(&["INFO", "cluster"]).await;
    assert!(r.text().contains("cluster_enabled:0"), "{r:?}");
    assert!(s.text().contains("cluster_enabled:0"), "{s:?}");
    let s = pair.stratus.cmd(&["INFO", "server"]).await;
    assert!(s.text().contains("redis_mode:standalone"), "{s:?}");
    let hello = pair.stratus.cmd(&["HELLO", "2"]).await;
    let mode = hello.items().windows(2).find(|w| w[0] == bulk("mode"));
    assert_eq!(mode.map(|w| w[1].clone()), Some(bulk("standalone")));
}

/// A client blocked on keys of two slots is served by a push to either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_cache_blocks_on_keys_of_several_slots() {
    let server = start(elastic(ClusterMode::Disabled)).await;
    let mut blocked = Raw::connect(server.resp_addr).await;
    let mut pusher = Raw::connect(server.resp_addr).await;
    blocked
        .send(&encode(&["BLMPOP", "0", "2", "q1", "q2", "LEFT"]))
        .await;
    eventually("the client blocks", || {
        let addr = server.resp_addr;
        async move {
            let mut c = Raw::connect(addr).await;
            c.cmd(&["INFO", "clients"])
                .await
                .text()
                .contains("blocked_clients:1")
        }
    })
    .await;
    assert_eq!(pusher.cmd(&["RPUSH", "q2", "v"]).await, int(1));
    assert_eq!(
        blocked.read().await,
        Resp::Array(vec![bulk("q2"), Resp::Array(vec![bulk("v")])])
    );
    // A script's push to a key it did not declare wakes a blocked client.
    blocked
        .send(&encode(&["BLMPOP", "0", "2", "q1", "q2", "RIGHT"]))
        .await;
    eventually("the client blocks again", || {
        let addr = server.resp_addr;
        async move {
            let mut c = Raw::connect(addr).await;
            c.cmd(&["INFO", "clients"])
                .await
                .text()
                .contains("blocked_clients:1")
        }
    })
    .await;
    let push = ["EVAL", "return redis.call('rpush', 'q1', 'w')", "0"];
    assert_eq!(pusher.cmd(&push).await, int(1));
    assert_eq!(
        blocked.read().await,
        Resp::Array(vec![bulk("q1"), Resp::Array(vec![bulk("w")])])
    );
}

/// Loaded well past the split threshold, a disabled-mode cache stays one
/// partition, while an enabled-mode cache under the same load splits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_cache_never_splits() {
    let server = start(elastic(ClusterMode::Disabled)).await;
    let http = Http::new(server.http_addr);
    let r = http
        .post(
            "/v1/caches",
            r#"{"name": "elastic", "cluster_mode": "enabled"}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["token"].as_str().expect("token").to_string();
    let mut standalone = common::redis_conn(server.resp_addr, false).await;
    let mut enabled = raw_auth(server.resp_addr, "elastic", &token).await;
    let value = "v".repeat(1024);
    for i in 0..256 {
        let key = format!("key:{i}");
        let _: () = standalone.set(&key, &value).await.expect("SET");
        assert_eq!(enabled.cmd(&["SET", &key, &value]).await, ok());
    }
    // The enabled cache splits: the autoscaler has seen the load...
    eventually("the enabled-mode cache splits", || async {
        partitions(&http, "elastic").await > 1
    })
    .await;
    // ...and left the disabled-mode one, loaded first, whole.
    let loaded: usize = redis::cmd("DBSIZE")
        .query_async(&mut standalone)
        .await
        .expect("DBSIZE");
    assert_eq!(loaded, 256);
    assert_eq!(partitions(&http, "default").await, 1);
    let splits = http.get("/v1/caches/default").await.json();
    assert_eq!(splits["partitions"], 1);
    assert_eq!(splits["cluster_mode"], "disabled");
    // Multi-key commands over every slot still work there.
    let keys: Vec<String> = (0..256).map(|i| format!("key:{i}")).collect();
    let got: Vec<Option<String>> = standalone.mget(&keys).await.expect("MGET");
    assert!(got.iter().all(|v| v.as_deref() == Some(value.as_str())));
    let () = standalone
        .rename("key:1", "key:2")
        .await
        .expect("RENAME across slots");
}

/// The same commands on a cache with cluster mode enabled keep the
/// one-slot rule, in Redis Cluster's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enabled_cache_keeps_the_one_slot_rule() {
    let server = start(ServeConfig::default()).await;
    let mut c = Raw::connect(server.resp_addr).await;
    let crossslot = Resp::Error("CROSSSLOT Keys in request don't hash to the same slot".into());
    for cmd in [
        &["SUNIONSTORE", "dst", "s1", "s2"][..],
        &["RENAME", "a", "b"],
        &["LMOVE", "l1", "l2", "LEFT", "RIGHT"],
        &["MSETNX", "a", "1", "b", "2"],
        &["EVAL", "return 1", "2", "a", "b"],
        &["WATCH", "a", "b"],
    ] {
        assert_eq!(c.cmd(cmd).await, crossslot, "{cmd:?}");
    }
    // Per-key commands still fan out.
    assert_eq!(c.cmd(&["MSET", "a", "1", "b", "2"]).await, ok());
    assert_eq!(c.cmd(&["DEL", "a", "b"]).await, int(2));
    // A transaction over two slots is refused.
    assert_eq!(c.cmd(&["MULTI"]).await, ok());
    assert_eq!(
        c.cmd(&["SET", "a", "1"]).await,
        Resp::Simple("QUEUED".into())
    );
    assert_eq!(c.cmd(&["SET", "b", "1"]).await, crossslot);
    assert!(c.cmd(&["EXEC"]).await.text().starts_with("EXECABORT"));
    // Scripts may not touch undeclared keys; SORT patterns need a hash tag.
    let r = c.cmd(&["EVAL", "return redis.call('get', 'a')", "0"]).await;
    assert!(
        r.text()
            .contains("Script attempted to access a non local key in a cluster node"),
        "{r:?}"
    );
    let r = c
        .cmd(&["EVAL", "#!lua flags=no-cluster\nreturn 1", "0"])
        .await;
    assert_eq!(
        r,
        Resp::Error("ERR Can not run script on cluster, 'no-cluster' flag is set.".into())
    );
    assert_eq!(c.cmd(&["RPUSH", "ids", "1"]).await, int(1));
    assert_eq!(
        c.cmd(&["SORT", "ids", "BY", "w_*"]).await,
        Resp::Error(
            "ERR BY option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots."
                .into()
        )
    );
    assert!(c.cmd(&["FUNCTION", "LOAD", LIBRARY]).await.text() == "standalone");
    assert_eq!(
        c.cmd(&["FCALL", "both", "2", "q1", "q2", "v"]).await,
        crossslot
    );
    // Cluster commands answer as one virtual node.
    let info = c.cmd(&["CLUSTER", "INFO"]).await;
    assert!(info.text().contains("cluster_enabled:1"), "{info:?}");
    assert_eq!(c.cmd(&["READONLY"]).await, ok());
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "cluster-enabled"]).await,
        Resp::Array(vec![bulk("cluster-enabled"), bulk("yes")])
    );
}

/// The control API: the mode is chosen at creation, shown, fixed, checked;
/// caches of both modes serve side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_chooses_and_checks_the_cluster_mode() {
    let server = start(ServeConfig::default()).await;
    let http = Http::new(server.http_addr);
    let r = http
        .post(
            "/v1/caches",
            r#"{"name": "solo", "cluster_mode": "disabled"}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["cluster_mode"], "disabled");
    let solo = r.json()["token"].as_str().expect("token").to_string();
    let r = http.post("/v1/caches", r#"{"name": "sharded"}"#).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["cluster_mode"], "enabled");
    let sharded = r.json()["token"].as_str().expect("token").to_string();
    assert_eq!(
        http.get("/v1/caches/solo").await.json()["cluster_mode"],
        "disabled"
    );
    assert_eq!(
        http.get("/v1/caches/default").await.json()["cluster_mode"],
        "enabled"
    );
    // Anything else is a 400 that says what is allowed.
    for body in [
        r#"{"name": "bad", "cluster_mode": "Disabled"}"#,
        r#"{"name": "bad", "cluster_mode": "off"}"#,
        r#"{"name": "bad", "cluster_mode": 0}"#,
        r#"{"name": "bad", "cluster_mode": null, "cluster": "disabled"}"#,
    ] {
        let r = http.post("/v1/caches", body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "invalid_request", "{body}");
    }
    let r = http
        .post("/v1/caches", r#"{"name": "bad", "cluster_mode": "off"}"#)
        .await;
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        message.contains("\"enabled\"") && message.contains("\"disabled\""),
        "{message}"
    );
    assert_eq!(http.get("/v1/caches/bad").await.status, 404);
    // PATCH cannot change it.
    for body in [
        r#"{"cluster_mode": "enabled"}"#,
        r#"{"cluster_mode": "disabled", "description": "x"}"#,
    ] {
        let r = http.patch("/v1/caches/solo", body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("cluster_mode cannot be changed")),
            "{}",
            r.text()
        );
    }
    assert_eq!(
        http.get("/v1/caches/solo").await.json()["cluster_mode"],
        "disabled"
    );
    // Side by side: one combines any keys, the other keeps the rule.
    let mut s = raw_auth(server.resp_addr, "solo", &solo).await;
    let mut e = raw_auth(server.resp_addr, "sharded", &sharded).await;
    assert_eq!(s.cmd(&["MSET", "a", "1", "b", "2"]).await, ok());
    assert_eq!(s.cmd(&["RENAME", "a", "b"]).await, ok());
    assert_eq!(e.cmd(&["MSET", "a", "1", "b", "2"]).await, ok());
    assert!(
        e.cmd(&["RENAME", "a", "b"])
            .await
            .text()
            .starts_with("CROSSSLOT")
    );
    assert_eq!(
        s.cmd(&["CLUSTER", "INFO"]).await,
        Resp::Error("ERR This instance has cluster support disabled".into())
    );
}

/// A cache with cluster mode disabled is one Redis: while a script runs,
/// keyless commands (PING) get BUSY too, and those Redis allows (MULTI,
/// SCRIPT KILL) do not; an enabled-mode cache answers PING meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_script_holds_every_command_of_a_disabled_cache() {
    const BUSY: &str =
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
    for mode in [ClusterMode::Disabled, ClusterMode::Enabled] {
        let server = start(elastic(mode)).await;
        let mut r = Raw::connect(server.resp_addr).await;
        assert_eq!(
            r.cmd(&["CONFIG", "SET", "busy-reply-threshold", "10"])
                .await,
            ok()
        );
        let mut runner = Raw::connect(server.resp_addr).await;
        runner
            .send(&encode(&["EVAL", "while true do end", "0"]))
            .await;
        let addr = server.resp_addr;
        eventually("the script is busy", || async move {
            Raw::connect(addr).await.cmd(&["GET", "k"]).await == Resp::Error(BUSY.into())
        })
        .await;
        let ping = r.cmd(&["PING"]).await;
        match mode {
            ClusterMode::Disabled => assert_eq!(ping, Resp::Error(BUSY.into())),
            ClusterMode::Enabled => assert_eq!(ping, Resp::Simple("PONG".into())),
        }
        assert_eq!(r.cmd(&["MULTI"]).await, ok());
        assert_eq!(r.cmd(&["DISCARD"]).await, ok());
        assert_eq!(r.cmd(&["SCRIPT", "KILL"]).await, ok());
        assert!(runner.read().await.is_error());
    }
}
