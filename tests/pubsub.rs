//! Pub/Sub and keyspace notifications over real TCP: replies byte for byte
//! against a real redis-server (RESP2 and RESP3), isolation between caches,
//! a slow subscriber disconnected without slowing the publisher, PUBLISH
//! metered by its fan-out, and keyspace events (expired, evicted included).

mod common;

use std::time::Duration;

use common::*;
use stratus::config::ServeConfig;

/// Sends `args` to both servers' first connection, then compares what both
/// connections of each server received (replies and messages, exactly).
async fn same_everywhere(
    pair_a: &mut Pair,
    redis_b: &mut Raw,
    stratus_b: &mut Raw,
    on_b: bool,
    args: &[&str],
) {
    let frames = |r: Resp| r;
    let (r, s) = if on_b {
        (redis_b.cmd(args).await, stratus_b.cmd(args).await)
    } else {
        pair_a.both(args).await
    };
    assert_eq!(frames(s), frames(r), "reply differs for {}", show(args));
}

/// Reads whatever whole replies arrive within a short wait.
async fn drain(raw: &mut Raw) -> Vec<Resp> {
    let mut out = Vec::new();
    while let Read::Reply(r) = raw.read_timeout(Duration::from_millis(150)).await {
        out.push(r);
    }
    out
}

/// Subscribe-family confirmations, subscribed-mode refusals, PING's array
/// form, PUBLISH fan-out to channel, pattern and shard subscribers, and
/// PUBSUB introspection: the same bytes as Redis, in RESP2 then RESP3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_and_messages_match_redis_in_resp2_and_resp3() {
    let server = start_default().await;
    let mut pair = Pair::new(server.resp_addr).await;
    let mut redis_b = Raw::connect(pair.redis_addr()).await;
    let mut stratus_b = Raw::connect(server.resp_addr).await;
    for resp3 in [false, true] {
        if resp3 {
            // HELLO's own reply names each server: not compared.
            pair.both(&["HELLO", "3"]).await;
        }
        let script: &[(bool, &[&str])] = &[
            (false, &["UNSUBSCRIBE"]),
            (false, &["PUNSUBSCRIBE"]),
            (false, &["SUNSUBSCRIBE"]),
            (false, &["PUBSUB", "NUMSUB"]),
            (false, &["PUBSUB", "FOO"]),
            (false, &["PUBSUB", "NUMPAT", "x"]),
            (false, &["PUBSUB", "CHANNELS", "a", "b"]),
            (false, &["PUBSUB", "HELP"]),
            (false, &["SUBSCRIBE", "news"]),
            (false, &["GET", "x"]),
            (false, &["CONFIG", "GET", "nosuch"]),
            (false, &["PING"]),
            (false, &["PING", "hi"]),
            (false, &["PSUBSCRIBE", "n*"]),
            (false, &["SSUBSCRIBE", "{s}a"]),
            (true, &["PUBLISH", "news", "hello"]),
            (true, &["PUBLISH", "nothing", "hello"]),
            (true, &["PUBLISH", "other", "nobody"]),
            (true, &["SPUBLISH", "{s}a", "sharded"]),
            (true, &["PUBSUB", "NUMSUB", "news", "none"]),
            (true, &["PUBSUB", "NUMPAT"]),
            (true, &["PUBSUB", "CHANNELS"]),
            (true, &["PUBSUB", "CHANNELS", "n?ws"]),
            (true, &["PUBSUB", "SHARDCHANNELS"]),
            (true, &["PUBSUB", "SHARDNUMSUB", "{s}a"]),
            (false, &["UNSUBSCRIBE", "news"]),
            (false, &["PUNSUBSCRIBE"]),
            (false, &["SUNSUBSCRIBE"]),
            (false, &["PING"]),
        ];
        for (on_b, args) in script {
            same_everywhere(&mut pair, &mut redis_b, &mut stratus_b, *on_b, args).await;
            // Messages the command sent to the other connection, exactly.
            let (r, s) = if *on_b {
                (drain(&mut pair.redis).await, drain(&mut pair.stratus).await)
            } else {
                (drain(&mut redis_b).await, drain(&mut stratus_b).await)
            };
            assert_eq!(s, r, "messages differ after {} (resp3 {resp3})", show(args));
        }
        // A RESP3 client publishing to itself gets the push before the reply.
        if resp3 {
            pair.same(&["SUBSCRIBE", "self"]).await;
            pair.same(&["PUBLISH", "self", "me"]).await;
            let (r, s) = (drain(&mut pair.redis).await, drain(&mut pair.stratus).await);
            assert_eq!(s, r);
            pair.same(&["UNSUBSCRIBE"]).await;
        }
    }
}

/// The exact bytes of a message and of a RESP3 push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_bytes_are_redis_bytes() {
    let server = start_default().await;
    let mut sub = Raw::connect(server.resp_addr).await;
    sub.cmd(&["SUBSCRIBE", "c"]).await;
    let mut sub3 = Raw::connect(server.resp_addr).await;
    sub3.cmd(&["HELLO", "3"]).await;
    sub3.cmd(&["PSUBSCRIBE", "c*"]).await;
    let mut publisher = redis_conn(server.resp_addr, false).await;
    let n: i64 = redis::cmd("PUBLISH")
        .arg("c")
        .arg("hi")
        .query_async(&mut publisher)
        .await
        .expect("PUBLISH");
    assert_eq!(n, 2);
    assert_eq!(sub.read().await, bulks_arr(&["message", "c", "hi"]));
    assert_eq!(
        sub3.read().await,
        Resp::Push(vec![
            Resp::Bulk(b"pmessage".to_vec()),
            Resp::Bulk(b"c*".to_vec()),
            Resp::Bulk(b"c".to_vec()),
            Resp::Bulk(b"hi".to_vec()),
        ])
    );
    let numsub: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("c")
        .query_async(&mut publisher)
        .await
        .expect("PUBSUB NUMSUB");
    assert_eq!(numsub.len(), 2);
    assert_eq!(numsub[1], redis::Value::Int(1));
}

fn bulks_arr(items: &[&str]) -> Resp {
    Resp::Array(
        items
            .iter()
            .map(|s| Resp::Bulk(s.as_bytes().to_vec()))
            .collect(),
    )
}

async fn bound(addr: std::net::SocketAddr, cache: &str, token: &str) -> Raw {
    let mut raw = Raw::connect(addr).await;
    assert_eq!(raw.cmd(&["AUTH", cache, token]).await, ok());
    raw
}

/// One cache never hears another's channels, patterns or keyspace events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_do_not_hear_each_other() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let ta = http.create_cache("alpha").await;
    let tb = http.create_cache("beta").await;
    let mut sub_a = bound(server.resp_addr, "alpha", &ta).await;
    let mut sub_b = bound(server.resp_addr, "beta", &tb).await;
    let mut pub_a = bound(server.resp_addr, "alpha", &ta).await;
    let mut pub_b = bound(server.resp_addr, "beta", &tb).await;
    sub_a.cmd(&["PSUBSCRIBE", "*"]).await;
    sub_b.cmd(&["SUBSCRIBE", "chan"]).await;
    assert_eq!(pub_a.cmd(&["PUBLISH", "chan", "for-alpha"]).await, int(1));
    assert_eq!(pub_b.cmd(&["PUBLISH", "chan", "for-beta"]).await, int(1));
    assert_eq!(
        pub_a.cmd(&["PUBSUB", "NUMSUB", "chan"]).await,
        Resp::Array(vec![Resp::Bulk(b"chan".to_vec()), int(0)])
    );
    assert_eq!(pub_b.cmd(&["PUBSUB", "NUMPAT"]).await, int(0));
    let got_a = drain(&mut sub_a).await;
    let got_b = drain(&mut sub_b).await;
    assert_eq!(
        got_a,
        vec![bulks_arr(&["pmessage", "*", "chan", "for-alpha"])]
    );
    assert_eq!(got_b, vec![bulks_arr(&["message", "chan", "for-beta"])]);
    // Keyspace events stay in their cache too.
    pub_b
        .cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"])
        .await;
    pub_b.cmd(&["SET", "k", "v"]).await;
    assert!(
        drain(&mut sub_a).await.is_empty(),
        "alpha heard beta's events"
    );
}

/// A subscriber that reads nothing is disconnected at the Pub/Sub output
/// limit; the publisher keeps getting answers meanwhile and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_is_dropped_without_slowing_the_publisher() {
    let server = start(ServeConfig {
        pubsub_output_limit: 1024 * 1024,
        pubsub_output_soft_limit: 512 * 1024,
        ..ServeConfig::default()
    })
    .await;
    let mut slow = Raw::connect(server.resp_addr).await;
    assert_eq!(
        slow.cmd(&["SUBSCRIBE", "firehose"]).await,
        bulks_arr_with_int("subscribe", "firehose", 1)
    );
    let mut publisher = Raw::connect(server.resp_addr).await;
    let payload = "x".repeat(64 * 1024);
    // Far more than the limit plus every socket buffer on the way.
    let mut dropped_at = None;
    for i in 0..2000 {
        let n = publisher.cmd(&["PUBLISH", "firehose", &payload]).await;
        if n == int(0) {
            dropped_at = Some(i);
            break;
        }
        assert_eq!(n, int(1));
    }
    assert!(
        dropped_at.is_some(),
        "the slow subscriber was never dropped"
    );
    assert_eq!(
        publisher.cmd(&["PUBSUB", "NUMSUB", "firehose"]).await,
        Resp::Array(vec![Resp::Bulk(b"firehose".to_vec()), int(0)])
    );
    // The subscriber's connection ends after what was already sent.
    let mut replies = 0;
    loop {
        match slow.read_timeout(DEADLINE).await {
            Read::Reply(_) => replies += 1,
            Read::Closed => break,
            Read::Timeout => panic!("the dropped subscriber's connection stays open"),
        }
        assert!(replies < 100_000);
    }
    assert_eq!(publisher.cmd(&["PING"]).await, simple("PONG"));
}

fn bulks_arr_with_int(a: &str, b: &str, n: i64) -> Resp {
    Resp::Array(vec![
        Resp::Bulk(a.as_bytes().to_vec()),
        Resp::Bulk(b.as_bytes().to_vec()),
        int(n),
    ])
}

async fn ecpu_milli(http: &Http, cache: &str) -> u64 {
    let r = http.get(&format!("/v1/caches/{cache}/usage")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    (r.json()["ecpu_total"].as_f64().expect("ecpu_total") * 1000.0).round() as u64
}

/// PUBLISH pays the bytes its fan-out delivers: a 100 KiB message to three
/// subscribers costs about four times the same message to nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_is_metered_by_bytes_delivered() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("meter").await;
    let mut subs = Vec::new();
    for _ in 0..3 {
        let mut s = bound(server.resp_addr, "meter", &token).await;
        s.cmd(&["SUBSCRIBE", "big"]).await;
        subs.push(s);
    }
    let mut publisher = bound(server.resp_addr, "meter", &token).await;
    let payload = "y".repeat(100 * 1024);
    let before = ecpu_milli(&http, "meter").await;
    assert_eq!(
        publisher.cmd(&["PUBLISH", "nobody", &payload]).await,
        int(0)
    );
    let alone = ecpu_milli(&http, "meter").await - before;
    assert_eq!(publisher.cmd(&["PUBLISH", "big", &payload]).await, int(3));
    let fanned = ecpu_milli(&http, "meter").await - before - alone;
    // 100 KiB in: ~100 ECPU; plus 3 x 100 KiB delivered: ~400.
    assert!((99_000..=102_000).contains(&alone), "alone {alone}");
    assert!((399_000..=405_000).contains(&fanned), "fanned out {fanned}");
    for s in &mut subs {
        let got = s.read().await;
        assert_eq!(got.items()[2], Resp::Bulk(payload.as_bytes().to_vec()));
    }
}

/// Keyspace events are paid for like PUBLISH: a write whose events reach
/// subscribers pays the bytes delivered to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_events_are_metered_by_bytes_delivered() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("events").await;
    let mut writer = bound(server.resp_addr, "events", &token).await;
    let key = "k".repeat(4096);
    let before = ecpu_milli(&http, "events").await;
    assert_eq!(writer.cmd(&["SET", &key, "v"]).await, ok());
    let unheard = ecpu_milli(&http, "events").await - before;
    writer
        .cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"])
        .await;
    let mut subs = Vec::new();
    for _ in 0..4 {
        let mut s = bound(server.resp_addr, "events", &token).await;
        s.cmd(&["PSUBSCRIBE", "__key*__:*"]).await;
        subs.push(s);
    }
    let before = ecpu_milli(&http, "events").await;
    assert_eq!(writer.cmd(&["SET", &key, "w"]).await, ok());
    let heard = ecpu_milli(&http, "events").await - before;
    // 4 KiB in: ~4 ECPU. Four subscribers get the keyspace event (4 KiB
    // channel) and the keyevent event (4 KiB message): ~32 ECPU more.
    assert!((4_000..=5_000).contains(&unheard), "unheard {unheard}");
    assert!((36_000..=38_000).contains(&heard), "heard {heard}");
    for s in &mut subs {
        assert_eq!(s.read().await.items()[0], Resp::Bulk(b"pmessage".to_vec()));
    }
}

/// CONFIG GET/SET notify-keyspace-events as Redis answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_keyspace_events_config_matches_redis() {
    let server = start_default().await;
    let mut pair = Pair::new(server.resp_addr).await;
    pair.script(&[
        &["CONFIG", "GET", "notify-keyspace-events"],
        &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
        &["CONFIG", "GET", "notify-keyspace-events"],
        &["CONFIG", "GET", "notify*"],
        &["CONFIG", "SET", "notify-keyspace-events", "g$lshzxetdnKEm"],
        &["CONFIG", "GET", "NOTIFY-KEYSPACE-EVENTS"],
        &["CONFIG", "SET", "notify-keyspace-events", "Ex"],
        &["CONFIG", "GET", "notify-keyspace-events"],
        &["CONFIG", "SET", "notify-keyspace-events", "q"],
        &["CONFIG", "SET", "notify-keyspace-events"],
        &["CONFIG", "SET", "no-such-parameter", "1"],
        &["CONFIG", "GET", "no-such-parameter"],
        &[
            "CONFIG",
            "SET",
            "notify-keyspace-events",
            "E",
            "notify-keyspace-events",
            "K",
        ],
        &["CONFIG", "FOO"],
        &["CONFIG", "SET", "notify-keyspace-events", ""],
    ])
    .await;
}

/// Keyspace events of writes, byte for byte as Redis sends them, for
/// strings, keys, lists, hashes, sets, sorted sets and streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_events_match_redis() {
    let server = start_default().await;
    let mut pair = Pair::new(server.resp_addr).await;
    let mut redis_sub = Raw::connect(pair.redis_addr()).await;
    let mut stratus_sub = Raw::connect(server.resp_addr).await;
    pair.same(&["CONFIG", "SET", "notify-keyspace-events", "KEA"])
        .await;
    redis_sub.cmd(&["PSUBSCRIBE", "__key*"]).await;
    stratus_sub.cmd(&["PSUBSCRIBE", "__key*"]).await;
    let script: &[&[&str]] = &[
        &["SET", "{a}k", "v"],
        &["SET", "{a}k", "v", "EX", "100"],
        &["SET", "{a}k", "v", "KEEPTTL"],
        &["GETSET", "{a}k", "w"],
        &["MSET", "{a}a", "1", "{a}b", "2"],
        &["INCR", "{a}a"],
        &["INCRBYFLOAT", "{a}a", "1.5"],
        &["APPEND", "{a}a", "x"],
        &["SETRANGE", "{a}a", "0", "z"],
        &["GETDEL", "{a}b"],
        &["GETEX", "{a}k", "EX", "50"],
        &["GETEX", "{a}k", "PERSIST"],
        &["EXPIRE", "{a}k", "100"],
        &["PERSIST", "{a}k"],
        &["RENAME", "{a}k", "{a}k2"],
        &["COPY", "{a}k2", "{a}k3"],
        &["DEL", "{a}k2", "{a}k3", "{a}nope"],
        &["EXPIRE", "{a}a", "-1"],
        &["LPUSH", "{a}l", "1", "2"],
        &["RPUSH", "{a}l", "3"],
        &["LPOP", "{a}l"],
        &["LSET", "{a}l", "0", "x"],
        &["LINSERT", "{a}l", "BEFORE", "x", "y"],
        &["LREM", "{a}l", "1", "y"],
        &["LMOVE", "{a}l", "{a}l2", "LEFT", "RIGHT"],
        &["RPOP", "{a}l"],
        &["LTRIM", "{a}l2", "5", "6"],
        &["HSET", "{a}h", "f", "v", "g", "w"],
        &["HSETNX", "{a}h", "f", "z"],
        &["HINCRBY", "{a}h", "n", "1"],
        &["HINCRBYFLOAT", "{a}h", "n", "1.5"],
        &["HDEL", "{a}h", "f", "g", "n"],
        &["SADD", "{a}s", "a", "b"],
        &["SREM", "{a}s", "a"],
        &["SMOVE", "{a}s", "{a}s2", "b"],
        &["SADD", "{a}s", "x", "y"],
        &["SINTERSTORE", "{a}d", "{a}s", "{a}s2"],
        &["SUNIONSTORE", "{a}d", "{a}s", "{a}s2"],
        &["ZADD", "{a}z", "1", "a", "2", "b"],
        &["ZADD", "{a}z", "1", "a"],
        &["ZINCRBY", "{a}z", "1", "a"],
        &["ZREM", "{a}z", "a"],
        &["ZADD", "{a}z", "INCR", "1", "c"],
        &["ZPOPMIN", "{a}z"],
        &["ZREMRANGEBYSCORE", "{a}z", "-inf", "+inf"],
        &["ZADD", "{a}z", "1", "a"],
        &["ZUNIONSTORE", "{a}zd", "1", "{a}z"],
        &["ZINTERSTORE", "{a}zd", "2", "{a}z", "{a}nope"],
        &["SETBIT", "{a}bits", "7", "1"],
        &["SETBIT", "{a}bits", "7", "1"],
        &["BITOP", "NOT", "{a}bits2", "{a}bits"],
        &["BITOP", "AND", "{a}bits2", "{a}nope"],
        &["PFADD", "{a}hll", "a", "b"],
        &["PFADD", "{a}hll", "a"],
        &["PFMERGE", "{a}hll2", "{a}hll"],
        &["XADD", "{a}x", "1-1", "f", "v"],
        &["XADD", "{a}x", "MAXLEN", "1", "2-1", "f", "v"],
        &["XDEL", "{a}x", "2-1"],
        &["XADD", "{a}x", "3-1", "f", "v"],
        &["XTRIM", "{a}x", "MAXLEN", "0"],
        &["XGROUP", "CREATE", "{a}x", "g", "$"],
        &["XGROUP", "SETID", "{a}x", "g", "0"],
        &["XGROUP", "CREATECONSUMER", "{a}x", "g", "c"],
        &["XGROUP", "DELCONSUMER", "{a}x", "g", "c"],
        &["XGROUP", "DESTROY", "{a}x", "g"],
        &["XGROUP", "CREATE", "{a}x2", "g", "$", "MKSTREAM"],
        &["XSETID", "{a}x2", "5-0"],
        &["XADD", "{a}x2", "6-0", "f", "v"],
        &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "{a}x2", ">"],
        &["XREADGROUP", "GROUP", "g", "ann", "STREAMS", "{a}x2", ">"],
        &["XCLAIM", "{a}x2", "g", "mike", "0", "6-0", "FORCE"],
        &["XGROUP", "DELCONSUMER", "{a}x2", "g", "lee"],
        &["XAUTOCLAIM", "{a}x2", "g", "bob", "0", "0"],
        &["XAUTOCLAIM", "{a}x2", "g", "mike", "0", "0"],
        &["GET", "{a}missing"],
        &["HGET", "{a}missing", "f"],
    ];
    for args in script {
        pair.same(args).await;
        let (r, s) = (drain(&mut redis_sub).await, drain(&mut stratus_sub).await);
        assert_eq!(s, r, "events differ for {}", show(args));
    }
}

/// `expired` (lazy and active) and `evicted` reach subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_evicted_events_are_published() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http
        .create_cache_with("small", r#"{"data_storage": {"maximum": 1, "unit": "MB"}}"#)
        .await;
    let mut sub = bound(server.resp_addr, "small", &token).await;
    let mut c = bound(server.resp_addr, "small", &token).await;
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Exe"])
            .await,
        ok()
    );
    sub.cmd(&[
        "SUBSCRIBE",
        "__keyevent@0__:expired",
        "__keyevent@0__:evicted",
    ])
    .await;
    sub.read().await;
    // Lazy expiry: a read finds the key past its deadline.
    c.cmd(&["SET", "lazy", "v", "PX", "30"]).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    c.cmd(&["GET", "lazy"]).await;
    assert_eq!(
        sub.read().await,
        bulks_arr(&["message", "__keyevent@0__:expired", "lazy"])
    );
    // Active expiry: nobody reads the key.
    c.cmd(&["SET", "active", "v", "PX", "30"]).await;
    assert_eq!(
        sub.read().await,
        bulks_arr(&["message", "__keyevent@0__:expired", "active"])
    );
    // Eviction: volatile keys make room for writes past 1 MB.
    let value = "z".repeat(100 * 1024);
    for i in 0..20 {
        let r = c
            .cmd(&["SET", &format!("vol{i}"), &value, "EX", "1000"])
            .await;
        assert_eq!(r, ok());
    }
    let evicted = sub.read().await;
    assert_eq!(
        evicted.items()[1],
        Resp::Bulk(b"__keyevent@0__:evicted".to_vec())
    );
}

/// PUBLISH from a script delivers at once and answers the receivers, as
/// Redis does; read-only scripts may not publish (Redis's error, byte for
/// byte).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_publish_and_read_only_scripts_may_not() {
    let server = start_default().await;
    let mut sub = Raw::connect(server.resp_addr).await;
    assert_eq!(
        sub.cmd(&["SUBSCRIBE", "news"]).await,
        bulks_arr_with_int("subscribe", "news", 1)
    );
    let mut p = Pair::new(server.resp_addr).await;
    let publish = "return redis.call('publish', ARGV[1], ARGV[2])";
    assert_eq!(
        p.stratus
            .cmd(&["EVAL", publish, "0", "news", "hello"])
            .await,
        int(1)
    );
    assert_eq!(sub.read().await, bulks_arr(&["message", "news", "hello"]));
    p.script(&[
        &["EVAL", publish, "0", "nobody", "hello"],
        &["EVAL_RO", publish, "0", "nobody", "hello"],
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('publish', 'ch', 'msg')",
            "0",
        ],
    ])
    .await;
}

/// Subscribe-family confirmations and messages are pushed whatever CLIENT
/// REPLY says (Redis's suite: "PubSub messages with CLIENT REPLY OFF"),
/// in RESP2 and RESP3, byte for byte as a real redis-server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmations_ignore_client_reply_off() {
    let server = start_default().await;
    let real = RealRedis::start().await;
    for resp3 in [false, true] {
        let mut r = Raw::connect(real.addr).await;
        let mut s = Raw::connect(server.resp_addr).await;
        let mut r_pub = Raw::connect(real.addr).await;
        let mut s_pub = Raw::connect(server.resp_addr).await;
        if resp3 {
            r.cmd(&["HELLO", "3"]).await;
            s.cmd(&["HELLO", "3"]).await;
        }
        for mode in ["OFF", "SKIP"] {
            for c in [&mut r, &mut s] {
                c.send(&encode(&["CLIENT", "REPLY", mode])).await;
                c.send(&encode(&["SUBSCRIBE", "chan"])).await;
                c.send(&encode(&["PSUBSCRIBE", "ch*"])).await;
            }
            assert_eq!(drain(&mut s).await, drain(&mut r).await, "{mode}");
            assert_eq!(
                s_pub.cmd(&["PUBLISH", "chan", "hi"]).await,
                r_pub.cmd(&["PUBLISH", "chan", "hi"]).await
            );
            assert_eq!(drain(&mut s).await, drain(&mut r).await, "{mode}");
            for c in [&mut r, &mut s] {
                c.send(&encode(&["UNSUBSCRIBE", "chan"])).await;
                c.send(&encode(&["PUNSUBSCRIBE", "ch*"])).await;
                c.send(&encode(&["PING"])).await;
            }
            assert_eq!(drain(&mut s).await, drain(&mut r).await, "{mode}");
            for c in [&mut r, &mut s] {
                c.send(&encode(&["CLIENT", "REPLY", "ON"])).await;
            }
            assert_eq!(drain(&mut s).await, drain(&mut r).await, "{mode}");
        }
    }
}
