//! Lua scripting over real TCP: EVAL, EVALSHA (and the `redis` crate's
//! `Script`, which tries EVALSHA then EVAL), SCRIPT LOAD / EXISTS / FLUSH,
//! NOSCRIPT, CROSSSLOT, per-cache script stores, the time limit, metering,
//! and replies compared byte for byte with a real `redis-server`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use stratus::config::ServeConfig;

const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";
const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

fn sha1(body: &str) -> String {
    stratus::cmd::script::sha1_hex(body.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_evalsha_and_the_script_store() {
    let server = start_default().await;
    let mut con = redis_conn(server.resp_addr, false).await;
    let body = "return redis.call('incrby', KEYS[1], ARGV[1])";

    // EVAL runs the body and stores it: EVALSHA finds it afterwards.
    let n: i64 = redis::cmd("EVAL")
        .arg(body)
        .arg(1)
        .arg("counter")
        .arg(5)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 5);
    let n: i64 = redis::cmd("EVALSHA")
        .arg(sha1(body))
        .arg(1)
        .arg("counter")
        .arg(2)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 7);
    // SHAs are case-insensitive, as in Redis.
    let n: i64 = redis::cmd("EVALSHA")
        .arg(sha1(body).to_uppercase())
        .arg(1)
        .arg("counter")
        .arg(1)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 8);

    // SCRIPT LOAD / EXISTS / FLUSH.
    let loaded = "return {KEYS[1], ARGV[1]}";
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(loaded)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(sha, sha1(loaded));
    let exists: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .arg("0000000000000000000000000000000000000000")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(exists, vec![1, 0]);
    let out: Vec<String> = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(1)
        .arg("k")
        .arg("v")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(out, vec!["k", "v"]);
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .unwrap();

    // After FLUSH: NOSCRIPT, with Redis's exact text.
    let mut raw = Raw::connect(server.resp_addr).await;
    assert_eq!(raw.cmd(&["EVALSHA", &sha, "0"]).await, err(NOSCRIPT));
    assert_eq!(raw.cmd(&["EVALSHA", "abc", "0"]).await, err(NOSCRIPT));
    assert_eq!(raw.cmd(&["EVALSHA_RO", &sha, "0"]).await, err(NOSCRIPT));
    assert_eq!(
        raw.cmd(&["SCRIPT", "EXISTS", &sha]).await,
        arr(vec![int(0)])
    );
    assert_eq!(
        raw.cmd(&["SCRIPT", "FLUSH", "LAZY"]).await,
        err("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    );
    assert_eq!(
        raw.cmd(&["SCRIPT", "KILL"]).await,
        err("NOTBUSY No scripts in execution right now.")
    );
    assert_eq!(
        raw.cmd(&["SCRIPT", "NOPE"]).await,
        err("ERR unknown subcommand 'NOPE'. Try SCRIPT HELP.")
    );

    // The redis crate's Script: EVALSHA, then EVAL on NOSCRIPT, then EVALSHA.
    let script = redis::Script::new("return redis.call('get', KEYS[1])");
    let () = redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query_async(&mut con)
        .await
        .unwrap();
    for _ in 0..3 {
        let v: String = script.key("greeting").invoke_async(&mut con).await.unwrap();
        assert_eq!(v, "hello");
    }
    // Read-only variants run reads and refuse writes.
    let v: String = redis::cmd("EVAL_RO")
        .arg("return redis.call('get', KEYS[1])")
        .arg(1)
        .arg("greeting")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(v, "hello");
    let refused = raw
        .cmd(&[
            "EVAL_RO",
            "return redis.call('del', KEYS[1])",
            "1",
            "greeting",
        ])
        .await;
    assert!(
        refused
            .text()
            .starts_with("ERR Write commands are not allowed from read-only scripts."),
        "{refused:?}"
    );
    assert_eq!(raw.cmd(&["GET", "greeting"]).await, bulk("hello"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_a_script_must_share_a_slot() {
    let config = ServeConfig {
        initial_partitions: 4,
        ..ServeConfig::default()
    };
    let server = start(config).await;
    let mut raw = Raw::connect(server.resp_addr).await;
    // Declared keys in two slots: CROSSSLOT before anything runs.
    assert_eq!(
        raw.cmd(&[
            "EVAL",
            "return redis.call('set', KEYS[1], 'x')",
            "2",
            "a",
            "b"
        ])
        .await,
        err(CROSSSLOT)
    );
    assert_eq!(raw.cmd(&["EXISTS", "a"]).await, int(0));
    // Keys sharing a hash tag run together, wherever their partition is.
    let body = "redis.call('set', KEYS[1], ARGV[1]) redis.call('set', KEYS[2], ARGV[1]) \
                return redis.call('mget', KEYS[1], KEYS[2])";
    for tag in ["{user:1}", "{user:2}", "{user:3}", "{zz}"] {
        let (k1, k2) = (format!("{tag}.a"), format!("{tag}.b"));
        assert_eq!(
            raw.cmd(&["EVAL", body, "2", &k1, &k2, tag]).await,
            bulks(&[tag, tag])
        );
    }
    // A key the script did not declare, in another slot, is refused.
    let body = "return redis.call('get', 'elsewhere')";
    let got = raw.cmd(&["EVAL", body, "1", "{user:1}.a"]).await;
    assert_eq!(
        got,
        err(&format!(
            "ERR Script attempted to access keys that do not hash to the same slot script: {}, on @user_script:1.",
            sha1(body)
        ))
    );
    // Keyless scripts compute, but may not touch keys.
    assert_eq!(
        raw.cmd(&["EVAL", "return ARGV[1] .. ARGV[2]", "0", "a", "b"])
            .await,
        bulk("ab")
    );
    let body = "return redis.call('get', 'k')";
    assert_eq!(
        raw.cmd(&["EVAL", body, "0"]).await,
        err(&format!(
            "ERR Script attempted to access a non local key in a cluster node script: {}, on @user_script:1.",
            sha1(body)
        ))
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_isolated_per_cache() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let a_token = http.create_cache("alpha").await;
    let b_token = http.create_cache("beta").await;
    let mut a = raw_auth(server.resp_addr, "alpha", &a_token).await;
    let mut b = raw_auth(server.resp_addr, "beta", &b_token).await;

    let body = "return 'alpha only'";
    let sha = a.cmd(&["SCRIPT", "LOAD", body]).await.text();
    assert_eq!(sha, sha1(body));
    assert_eq!(a.cmd(&["EVALSHA", &sha, "0"]).await, bulk("alpha only"));
    assert_eq!(b.cmd(&["EVALSHA", &sha, "0"]).await, err(NOSCRIPT));
    assert_eq!(b.cmd(&["SCRIPT", "EXISTS", &sha]).await, arr(vec![int(0)]));
    // A body run by EVAL in beta is beta's; flushing beta leaves alpha's.
    let other = "return 'beta'";
    assert_eq!(b.cmd(&["EVAL", other, "0"]).await, bulk("beta"));
    assert_eq!(a.cmd(&["EVALSHA", &sha1(other), "0"]).await, err(NOSCRIPT));
    assert_eq!(b.cmd(&["SCRIPT", "FLUSH"]).await, ok());
    assert_eq!(a.cmd(&["EVALSHA", &sha, "0"]).await, bulk("alpha only"));
    // Data stays per cache too: a script in beta does not see alpha's keys.
    assert_eq!(a.cmd(&["SET", "k", "a"]).await, ok());
    assert_eq!(
        b.cmd(&["EVAL", "return redis.call('get', KEYS[1])", "1", "k"])
            .await,
        Resp::Nil
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_runs_too_long_is_stopped() {
    let config = ServeConfig {
        script_time_limit_ms: 300,
        ..ServeConfig::default()
    };
    let server = start(config).await;
    let mut busy = Raw::connect(server.resp_addr).await;
    let mut other = Raw::connect(server.resp_addr).await;
    let body = "redis.call('set', KEYS[1], 'before') while true do end";
    let started = Instant::now();
    let eval = ["EVAL", body, "1", "k"];
    let (stopped, meanwhile) = tokio::join!(busy.cmd(&eval), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        other.cmd(&["PING"]).await
    });
    let took = started.elapsed();
    assert_eq!(
        stopped,
        err(&format!(
            "ERR Script killed after running too long (limit 300 ms) script: {}, on @user_script:1.",
            sha1(body)
        ))
    );
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(meanwhile, simple("PONG"));
    // Writes done before the stop stay (Redis has no rollback either), and
    // the connection and the interpreter keep working.
    assert_eq!(busy.cmd(&["GET", "k"]).await, bulk("before"));
    assert_eq!(busy.cmd(&["EVAL", "return 7", "0"]).await, int(7));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_metered_by_their_work() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("meter").await;
    let mut raw = raw_auth(server.resp_addr, "meter", &token).await;
    let body =
        "for i = 1, 100 do redis.call('incr', KEYS[1]) end return redis.call('get', KEYS[1])";
    assert_eq!(raw.cmd(&["EVAL", body, "1", "n"]).await, bulk("100"));
    let usage = http.get("/v1/caches/meter/usage").await.json();
    let scripting = usage["ecpu_by_family"]["scripting"]
        .as_f64()
        .expect("a scripting family");
    // The run (15) + one key declared (1) + 101 calls at 1 + 2 each, plus
    // a little interpreter time.
    assert!(scripting >= 319.0, "{usage}");
    assert!(scripting < 450.0, "{usage}");
    server.shutdown().await;
}

/// The same scripts on Stratus and on a real `redis-server`: replies and
/// error texts (SHA and line included) are identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_and_errors_match_real_redis() {
    let server = start_default().await;
    let mut pair = Pair::new(server.resp_addr).await;
    pair.script(&[
        &["SET", "s", "str"],
        &["RPUSH", "l", "a", "b", "c"],
        &["HSET", "h", "f", "v"],
    ])
    .await;
    let cases: &[&[&str]] = &[
        &["EVAL", "return 1", "0"],
        &["EVAL", "return 3.99", "0"],
        &["EVAL", "return -1.9", "0"],
        &["EVAL", "return {1, 2, 3, 'x', nil, 4}", "0"],
        &["EVAL", "return {1, {2, {3}}, 'a'}", "0"],
        &["EVAL", "return {true, false, 1}", "0"],
        &["EVAL", "return true", "0"],
        &["EVAL", "return false", "0"],
        &["EVAL", "return nil", "0"],
        &["EVAL", "return {}", "0"],
        &["EVAL", "return {ok='fine'}", "0"],
        &["EVAL", "return {err='bad thing'}", "0"],
        &["EVAL", "return {err='MYERR bad thing'}", "0"],
        &["EVAL", "return redis.error_reply('oops')", "0"],
        &["EVAL", "return redis.error_reply('-MY oops')", "0"],
        &["EVAL", "return redis.status_reply('x')", "0"],
        &["EVAL", "return redis.status_reply(5)", "0"],
        &["EVAL", "return {double=3.5}", "0"],
        &["EVAL", "return redis.sha1hex('abc')", "0"],
        &[
            "EVAL",
            "return {KEYS[1], ARGV[1], ARGV[2]}",
            "1",
            "k",
            "a",
            "b",
        ],
        &["EVAL", "return redis.call('get', KEYS[1])", "1", "s"],
        &["EVAL", "return redis.call('get', KEYS[1])", "1", "nope"],
        &[
            "EVAL",
            "return redis.call('lrange', KEYS[1], 0, -1)",
            "1",
            "l",
        ],
        &["EVAL", "return redis.call('hgetall', KEYS[1])", "1", "h"],
        &["EVAL", "return redis.call('set', KEYS[1], 'x')", "1", "t"],
        &["EVAL", "return redis.pcall('incr', KEYS[1])", "1", "s"],
        &["EVAL", "return redis.call('incr', KEYS[1])", "1", "s"],
        &["EVAL", "return redis.call('nosuch')", "0"],
        &["EVAL", "return redis.call('get')", "0"],
        &["EVAL", "return redis.call()", "0"],
        &["EVAL", "return redis.call('get', {})", "0"],
        &["EVAL", "return redis.pcall('get', {})", "0"],
        &["EVAL", "x = 5", "0"],
        &["EVAL", "return y", "0"],
        &["EVAL", "return os", "0"],
        &["EVAL", "error('boom')", "0"],
        &["EVAL", "\n\nerror('on line 3')", "0"],
        &["EVAL", "error({err='X boom'})", "0"],
        &["EVAL", "return 1 +", "0"],
        &["EVAL", "return redis.setresp(4)", "0"],
        &["EVAL", "redis.log(redis.LOG_WARNING, 'hi') return 1", "0"],
        &["EVAL", "redis.log(1)", "0"],
        &["EVAL", "redis.log(9, 'x')", "0"],
        &["EVAL", "redis.log('a', 'x')", "0"],
        &["EVAL", "return redis.sha1hex()", "0"],
        &["EVAL", "return redis.call('ping')", "0"],
        &["EVAL", "return redis.call('echo', 'x')", "0"],
        &[
            "EVAL",
            "redis.call('set', KEYS[1], 1e20) return redis.call('get', KEYS[1])",
            "1",
            "n",
        ],
        &[
            "EVAL",
            "redis.call('set', KEYS[1], 2.5) return redis.call('get', KEYS[1])",
            "1",
            "n",
        ],
        &[
            "EVAL",
            "local ok, e = pcall(redis.call, 'incr', KEYS[1]) return e",
            "1",
            "s",
        ],
        &["EVAL", "return 1", "-1"],
        &["EVAL", "return 1", "3", "a"],
        &["EVAL", "return 1", "x"],
        &[
            "EVAL_RO",
            "return redis.call('set', KEYS[1], 'b')",
            "1",
            "a",
        ],
        &[
            "EVAL_RO",
            "return redis.pcall('set', KEYS[1], 'b')",
            "1",
            "a",
        ],
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('set', KEYS[1], 'y')",
            "1",
            "a",
        ],
        &["EVAL", "#!lua\nreturn 1", "0"],
        &["EVAL", "#!luax\nreturn 1", "0"],
        &["EVAL", "#!lua flags=bogus\nreturn 1", "0"],
        &["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"],
        &["SCRIPT", "LOAD", "return 'loaded'"],
        &["EVALSHA", "b534286061d4b9e4026607613b95c06c06015ae8", "0"],
        &[
            "SCRIPT",
            "EXISTS",
            "b534286061d4b9e4026607613b95c06c06015ae8",
            "00",
        ],
        &["SCRIPT", "FLUSH", "SYNC"],
        &[
            "SCRIPT",
            "EXISTS",
            "b534286061d4b9e4026607613b95c06c06015ae8",
        ],
    ];
    for case in cases {
        pair.same(case).await;
    }
    server.shutdown().await;
}
