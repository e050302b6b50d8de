//! The sorted-set and list commands of Redis 6.2/7.0 over real TCP:
//! ZRANGESTORE, ZUNION, ZINTER, ZDIFF, ZDIFFSTORE, ZINTERCARD, ZMPOP,
//! BZMPOP, BZPOPMIN, BZPOPMAX, LMPOP, BLMPOP, BRPOPLPUSH. Replies (errors
//! included) are compared byte for byte with a real `redis-server` in RESP2
//! and RESP3; the blocking forms wake on another connection's write; every
//! multi-key form needs its keys in one slot.

mod common;

use common::{Pair, Raw, Resp, arr, bulk, err, start_default, wait_blocked};
use stratus::server::Running;

/// Every new command with its options and errors, in Redis's order of
/// checks; the blocking forms here find data (or time out in 0.1 s).
const SCRIPT: &[&[&str]] = &[
    &["ZADD", "{t}a", "1", "x", "2", "y", "3", "z"],
    &["ZADD", "{t}b", "10", "y", "20", "z", "30", "w"],
    &["SADD", "{t}s", "y", "q"],
    &["SET", "{t}str", "v"],
    &["ZUNION", "2", "{t}a", "{t}b"],
    &["ZUNION", "2", "{t}a", "{t}b", "WITHSCORES"],
    &[
        "ZUNION",
        "3",
        "{t}a",
        "{t}b",
        "{t}s",
        "WEIGHTS",
        "1",
        "2",
        "3",
        "AGGREGATE",
        "MAX",
        "WITHSCORES",
    ],
    &["ZINTER", "2", "{t}a", "{t}b", "WITHSCORES"],
    &["ZINTER", "2", "{t}a", "{t}b", "AGGREGATE", "MIN"],
    &["ZINTER", "2", "{t}a", "{t}nope"],
    &["ZDIFF", "2", "{t}a", "{t}b", "WITHSCORES"],
    &["ZDIFF", "1", "{t}nope"],
    &["ZDIFF", "2", "{t}a", "{t}s"],
    &["ZDIFF", "2", "{t}a", "{t}str"],
    &["ZDIFF", "1", "{t}a", "WEIGHTS", "1"],
    &["ZDIFF", "1", "{t}a", "AGGREGATE", "SUM"],
    &["ZUNION", "1", "{t}a", "WITHSCORES", "WITHSCORES"],
    &["ZUNION", "0", "{t}a"],
    &["ZUNION", "-1", "{t}a"],
    &["ZUNION", "3", "{t}a"],
    &["ZUNION", "x", "{t}a"],
    &["ZUNION", "1", "{t}a", "WEIGHTS"],
    &["ZUNION", "1", "{t}a", "WEIGHTS", "x"],
    &["ZUNION", "1", "{t}a", "AGGREGATE"],
    &["ZUNION", "1", "{t}a", "AGGREGATE", "foo"],
    &["ZDIFFSTORE", "{t}d", "2", "{t}a", "{t}b"],
    &["ZRANGE", "{t}d", "0", "-1", "WITHSCORES"],
    &["ZDIFFSTORE", "{t}d", "2", "{t}a", "{t}a"],
    &["EXISTS", "{t}d"],
    &["ZDIFFSTORE", "{t}d", "1", "{t}a", "WITHSCORES"],
    &["ZDIFFSTORE", "{t}d", "0", "{t}a"],
    &["ZINTERCARD", "2", "{t}a", "{t}b"],
    &["ZINTERCARD", "2", "{t}a", "{t}b", "LIMIT", "1"],
    &["ZINTERCARD", "2", "{t}a", "{t}b", "LIMIT", "0"],
    &["ZINTERCARD", "2", "{t}a", "{t}s"],
    &["ZINTERCARD", "2", "{t}a", "{t}b", "LIMIT", "-1"],
    &["ZINTERCARD", "2", "{t}a", "{t}b", "LIMIT", "x"],
    &["ZINTERCARD", "2", "{t}a", "{t}b", "LIMIT"],
    &["ZINTERCARD", "2", "{t}a", "{t}b", "WITHSCORES"],
    &["ZINTERCARD", "0", "{t}a"],
    &["ZINTERCARD", "3", "{t}a", "{t}b"],
    &["ZINTERCARD", "1", "{t}str"],
    &["ZRANGESTORE", "{t}d", "{t}b", "0", "-1"],
    &["ZRANGE", "{t}d", "0", "-1", "WITHSCORES"],
    &[
        "ZRANGESTORE",
        "{t}d",
        "{t}b",
        "(10",
        "+inf",
        "BYSCORE",
        "LIMIT",
        "0",
        "1",
    ],
    &["ZRANGE", "{t}d", "0", "-1", "WITHSCORES"],
    &["ZRANGESTORE", "{t}d", "{t}b", "+", "-", "BYLEX", "REV"],
    &["ZRANGESTORE", "{t}d", "{t}b", "0", "-1", "WITHSCORES"],
    &["ZRANGESTORE", "{t}d", "{t}b", "0", "-1", "LIMIT", "0", "1"],
    &["ZRANGESTORE", "{t}d", "{t}nope", "0", "-1"],
    &["EXISTS", "{t}d"],
    &["ZRANGESTORE", "{t}d", "{t}str", "0", "-1"],
    &["ZRANGESTORE", "{t}str", "{t}a", "0", "0"],
    &["TYPE", "{t}str"],
    &["SET", "{t}str", "v"],
    &["ZRANGESTORE", "{t}d", "{t}a", "5", "10"],
    &["ZRANGESTORE", "{t}d", "{t}a", "x", "10"],
    &["ZMPOP", "1", "{t}a", "MIN"],
    &["ZMPOP", "2", "{t}nope", "{t}a", "MAX", "COUNT", "10"],
    &["EXISTS", "{t}a"],
    &["ZMPOP", "2", "{t}nope", "{t}a", "MAX", "COUNT", "10"],
    &["ZMPOP", "1", "{t}str", "MIN"],
    &["ZMPOP", "2", "{t}nope", "{t}str", "MIN"],
    &["ZMPOP", "0", "{t}a", "MIN"],
    &["ZMPOP", "1", "{t}a", "MID"],
    &["ZMPOP", "1", "{t}a", "MIN", "COUNT", "0"],
    &["ZMPOP", "1", "{t}a", "MIN", "COUNT"],
    &["ZMPOP", "1", "{t}a", "MIN", "COUNT", "1", "COUNT", "1"],
    &["ZADD", "{t}a", "1", "x", "2", "y", "3", "z"],
    &["BZPOPMIN", "{t}nope", "{t}a", "0"],
    &["BZPOPMAX", "{t}a", "0.5"],
    &["BZPOPMIN", "{t}a", "-1"],
    &["BZPOPMIN", "{t}a", "x"],
    &["BZPOPMIN", "{t}str", "1"],
    &["BZMPOP", "0.1", "2", "{t}nope", "{t}a", "MIN", "COUNT", "5"],
    &["BZMPOP", "0.1", "1", "{t}a", "MIN"],
    &["BZMPOP", "-1", "1", "{t}a", "MIN"],
    &["BZMPOP", "x", "1", "{t}a", "MAX"],
    &["BZMPOP", "x", "1", "{t}a", "FOO"],
    &["BZMPOP", "1", "0", "{t}a", "MIN"],
    &["BZPOPMIN", "{t}a", "0.1"],
    &["RPUSH", "{t}l", "1", "2", "3", "4", "5"],
    &["LMPOP", "1", "{t}l", "LEFT"],
    &["LMPOP", "2", "{t}nope", "{t}l", "RIGHT", "COUNT", "2"],
    &["LMPOP", "1", "{t}l", "LEFT", "COUNT", "100"],
    &["LMPOP", "1", "{t}l", "LEFT"],
    &["LMPOP", "1", "{t}str", "LEFT"],
    &["LMPOP", "1", "{t}l", "UP"],
    &["LMPOP", "1", "{t}l", "LEFT", "COUNT", "-1"],
    &["LMPOP", "0", "{t}l", "LEFT"],
    &["LMPOP", "5", "{t}l", "LEFT"],
    &["RPUSH", "{t}l", "1", "2", "3"],
    &["BLMPOP", "0", "1", "{t}l", "RIGHT", "COUNT", "2"],
    &["BLMPOP", "0.1", "1", "{t}l", "RIGHT", "COUNT", "2"],
    &["BLMPOP", "0.1", "1", "{t}nope", "LEFT"],
    &["BLMPOP", "-1", "1", "{t}l", "LEFT"],
    &["BLMPOP", "x", "1", "{t}l", "LEFT"],
    &["BLMPOP", "1", "1", "{t}str", "LEFT"],
    &["RPUSH", "{t}l", "1", "2", "3"],
    &["BRPOPLPUSH", "{t}l", "{t}m", "0"],
    &["LRANGE", "{t}m", "0", "-1"],
    &["BRPOPLPUSH", "{t}l", "{t}str", "0"],
    &["BRPOPLPUSH", "{t}nope", "{t}m", "0.1"],
    &["BRPOPLPUSH", "{t}l", "{t}m", "-1"],
    &["BRPOPLPUSH", "{t}l", "{t}m", "x"],
    &["BRPOPLPUSH", "{t}str", "{t}m", "1"],
    &["BRPOPLPUSH", "{t}l", "{t}l", "0"],
    &["LRANGE", "{t}l", "0", "-1"],
    &["BLPOP", "{t}l", "1e300"],
    &["BLPOP", "{t}nope", "-0.0001x"],
    &["ZADD", "{t}k", "1", "a", "2", "b"],
    &["ZMPOP", "1", "{t}k", "MIN", "COUNT", "9223372036854775807"],
];

async fn run_script(resp3: bool) {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    if resp3 {
        // The HELLO replies name different servers: not compared.
        p.redis.cmd(&["HELLO", "3"]).await;
        p.stratus.cmd(&["HELLO", "3"]).await;
    }
    p.script(SCRIPT).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_commands_match_redis_in_resp2() {
    run_script(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_commands_match_redis_in_resp3() {
    run_script(true).await;
}

/// Waits until `n` connections of the default cache are blocked (each
/// test blocks them on `_key` only).
async fn blocked_on(server: &Running, _key: &str, n: usize) {
    wait_blocked(server.resp_addr, n).await;
}

/// Sends `args` on a new connection (in RESP3 if asked) and returns the
/// task that reads the reply.
async fn blocked(server: &Running, resp3: bool, args: &[&str]) -> tokio::task::JoinHandle<Resp> {
    let mut raw = Raw::connect(server.resp_addr).await;
    if resp3 {
        raw.cmd(&["HELLO", "3"]).await;
    }
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::spawn(async move { raw.cmd(&args).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_forms_wake_when_another_connection_writes() {
    let server = start_default().await;
    let mut w = Raw::connect(server.resp_addr).await;

    let min = blocked(&server, false, &["BZPOPMIN", "{z}none", "{z}a", "0"]).await;
    blocked_on(&server, "{z}a", 1).await;
    w.cmd(&["ZADD", "{z}a", "2", "two", "1", "one"]).await;
    assert_eq!(
        min.await.unwrap(),
        arr(vec![bulk("{z}a"), bulk("one"), bulk("1")])
    );

    let max = blocked(&server, true, &["BZPOPMAX", "{z}b", "0"]).await;
    blocked_on(&server, "{z}b", 1).await;
    w.cmd(&["ZADD", "{z}b", "2.5", "m"]).await;
    assert_eq!(
        max.await.unwrap(),
        arr(vec![bulk("{z}b"), bulk("m"), Resp::Double("2.5".into())])
    );

    let zm = blocked(
        &server,
        true,
        &["BZMPOP", "0", "2", "{z}c", "{z}d", "MAX", "COUNT", "5"],
    )
    .await;
    blocked_on(&server, "{z}d", 1).await;
    w.cmd(&["ZADD", "{z}d", "1", "x", "2", "y"]).await;
    assert_eq!(
        zm.await.unwrap(),
        arr(vec![
            bulk("{z}d"),
            arr(vec![
                arr(vec![bulk("y"), Resp::Double("2".into())]),
                arr(vec![bulk("x"), Resp::Double("1".into())]),
            ]),
        ])
    );

    let lm = blocked(
        &server,
        false,
        &["BLMPOP", "0", "1", "{l}a", "RIGHT", "COUNT", "2"],
    )
    .await;
    blocked_on(&server, "{l}a", 1).await;
    w.cmd(&["RPUSH", "{l}a", "1", "2", "3"]).await;
    assert_eq!(
        lm.await.unwrap(),
        arr(vec![bulk("{l}a"), arr(vec![bulk("3"), bulk("2")])])
    );

    let mv = blocked(&server, false, &["BRPOPLPUSH", "{l}src", "{l}dst", "0"]).await;
    blocked_on(&server, "{l}src", 1).await;
    w.cmd(&["RPUSH", "{l}src", "a", "b"]).await;
    assert_eq!(mv.await.unwrap(), bulk("b"));
    assert_eq!(
        w.cmd(&["LRANGE", "{l}dst", "0", "-1"]).await,
        arr(vec![bulk("b")])
    );

    // Timed out: a null array, BRPOPLPUSH's too (as Redis 7.0 replies to
    // any list or sorted-set client that timed out).
    assert_eq!(
        w.cmd(&["BZMPOP", "0.05", "1", "{z}e", "MIN"]).await,
        Resp::NilArray
    );
    assert_eq!(
        w.cmd(&["BRPOPLPUSH", "{l}e", "{l}f", "0.05"]).await,
        Resp::NilArray
    );
    assert_eq!(
        w.cmd(&["BLMPOP", "-0.0001", "1", "{l}a", "LEFT"]).await,
        arr(vec![bulk("{l}a"), arr(vec![bulk("1")])]),
        "a timeout above -1 ms rounds up to 0 (forever), as Redis"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_key_forms_need_one_slot() {
    let server = start_default().await;
    let mut w = Raw::connect(server.resp_addr).await;
    let crossslot = err("CROSSSLOT Keys in request don't hash to the same slot");
    for cmd in [
        &["ZUNION", "2", "a", "b"][..],
        &["ZINTER", "2", "a", "b", "WITHSCORES"],
        &["ZDIFF", "2", "a", "b"],
        &["ZINTERCARD", "2", "a", "b"],
        &["ZDIFFSTORE", "d", "2", "{x}a", "{x}b"],
        &["ZRANGESTORE", "a", "b", "0", "-1"],
        &["ZMPOP", "2", "a", "b", "MIN"],
        &["BZMPOP", "0", "2", "a", "b", "MIN"],
        &["BZPOPMIN", "a", "b", "0"],
        &["BZPOPMAX", "a", "b", "0"],
        &["LMPOP", "2", "a", "b", "LEFT"],
        &["BLMPOP", "0", "2", "a", "b", "LEFT"],
        &["BRPOPLPUSH", "a", "b", "0"],
    ] {
        assert_eq!(w.cmd(cmd).await, crossslot, "{cmd:?}");
    }
    // One slot through a hash tag: served.
    w.cmd(&["ZADD", "{x}a", "1", "m"]).await;
    assert_eq!(
        w.cmd(&["ZUNION", "2", "{x}a", "{x}b"]).await,
        arr(vec![bulk("m")])
    );
    // A key count past the arguments names no keys: Redis's syntax error.
    assert_eq!(
        w.cmd(&["LMPOP", "3", "a", "LEFT"]).await,
        err("ERR syntax error")
    );
    server.shutdown().await;
}

/// Redis 7.0 serves a blocked client only from keys of the type it waits
/// for: a key that turns into another type leaves it blocked (no
/// WRONGTYPE), and it is served when a key of its type gets data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_client_waits_through_a_type_change() {
    let server = start_default().await;
    let mut w = Raw::connect(server.resp_addr).await;
    let list = blocked(&server, false, &["BLPOP", "{y}k", "{y}k2", "0"]).await;
    blocked_on(&server, "{y}k", 1).await;
    w.cmd(&["SET", "{y}k", "x"]).await;
    w.cmd(&["RPUSH", "{y}k2", "v"]).await;
    assert_eq!(list.await.unwrap(), arr(vec![bulk("{y}k2"), bulk("v")]));

    let zset = blocked(&server, false, &["BZPOPMIN", "{y}z", "0"]).await;
    blocked_on(&server, "{y}z", 1).await;
    w.cmd(&["RPUSH", "{y}z", "a"]).await;
    w.cmd(&["DEL", "{y}z"]).await;
    w.cmd(&["ZADD", "{y}z", "1", "m"]).await;
    assert_eq!(
        zset.await.unwrap(),
        arr(vec![bulk("{y}z"), bulk("m"), bulk("1")])
    );

    // A first attempt still answers WRONGTYPE, and a blocked move whose
    // destination is of another type gets it when its source is pushed.
    assert_eq!(
        w.cmd(&["BLPOP", "{y}k", "0"]).await,
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    let mv = blocked(&server, false, &["BRPOPLPUSH", "{y}src", "{y}k", "0"]).await;
    blocked_on(&server, "{y}src", 1).await;
    w.cmd(&["RPUSH", "{y}src", "a", "b"]).await;
    assert_eq!(
        mv.await.unwrap(),
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    assert_eq!(
        w.cmd(&["LRANGE", "{y}src", "0", "-1"]).await,
        arr(vec![bulk("a"), bulk("b")])
    );
    server.shutdown().await;
}

/// Redis flags the blocking commands older than BLMPOP/BZMPOP `noscript`:
/// a script may not call them; BLMPOP and BZMPOP run without blocking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_refuse_the_noscript_blocking_commands() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    for call in [
        "blpop', KEYS[1], 0",
        "brpop', KEYS[1], 0",
        "blmove', KEYS[1], KEYS[1], 'LEFT', 'LEFT', 0",
        "brpoplpush', KEYS[1], KEYS[1], 0",
        "bzpopmin', KEYS[1], 0",
        "bzpopmax', KEYS[1], 0",
        "bzmpop', 0, 1, KEYS[1], 'MIN'",
        "blmpop', 0, 1, KEYS[1], 'LEFT'",
    ] {
        for f in ["call", "pcall"] {
            let script = format!("return redis.{f}('{call})");
            p.same(&["EVAL", &script, "1", "{s}k"]).await;
        }
    }
    server.shutdown().await;
}
