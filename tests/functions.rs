//! Redis Functions over real TCP: FUNCTION LOAD / LIST / DELETE / FLUSH /
//! DUMP / RESTORE / STATS / KILL, FCALL and FCALL_RO (with the `redis`
//! crate and raw RESP), `redis.register_function` in both call forms with
//! flags, per-cache libraries, the load time limit, FUNCTION KILL and
//! UNKILLABLE, the library limits, and replies compared byte for byte with
//! a real `redis-server` (including DUMP payloads both ways).

mod common;

use common::*;
use stratus::config::ServeConfig;

const LIB: &str = "#!lua name=mylib
redis.register_function('getk', function(keys, args) return redis.call('get', keys[1]) end)
redis.register_function{function_name='setk', callback=function(keys, args) return redis.call('set', keys[1], args[1]) end, description='sets a key'}
redis.register_function{function_name='ro', callback=function(keys) return redis.call('set', keys[1], 'x') end, flags={'no-writes'}}
redis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes', 'allow-oom'}}
redis.register_function('nope', function() return redis.call('nosuch') end)
redis.register_function('lerr', function() local x = nil; return x.y end)
redis.register_function('keys', function() return KEYS end)
redis.register_function('up', function(keys, args) return string.upper(args[1]) end)
redis.register_function('other', function() return redis.call('get', 'elsewhere') end)";

fn one(name: &str, body: &str) -> String {
    format!("#!lua name={name}\n{body}")
}

/// Every reply of FUNCTION and FCALL that does not depend on the order of
/// hash tables, against a real redis-server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_replies_match_redis_byte_for_byte() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    assert_eq!(p.same(&["FUNCTION", "LOAD", LIB]).await, bulk("mylib"));
    p.same(&["FUNCTION", "LOAD", LIB]).await;
    p.same(&["SET", "k", "v"]).await;
    for c in [
        &["FCALL", "getk", "1", "k"][..],
        &["FCALL", "setk", "1", "k", "w"],
        &["FCALL_RO", "getk", "1", "k"],
        &["FCALL", "ro", "1", "k"],
        &["FCALL_RO", "ro", "1", "k"],
        &["FCALL_RO", "peek", "1", "k"],
        &["FCALL", "nope", "0"],
        &["FCALL", "lerr", "0"],
        &["FCALL", "keys", "0"],
        &["FCALL", "up", "0", "abc"],
        &["FCALL", "missing", "0"],
        &["FCALL", "getk", "x", "k"],
        &["FCALL", "getk", "2", "k"],
        &["FCALL", "getk", "-1", "k"],
        &["FCALL", "getk"],
        &["FCALL_RO", "getk"],
        &["fcall", "GETK", "1", "k"],
        &["FCALL", "NOPE", "0"],
    ] {
        p.same(c).await;
    }
    // Load errors, in Redis's order of checks.
    for code in [
        one("e1", "local x = string.len('a')"),
        one("e1", "redis.call('set', 'a', 'b')"),
        one("e1", "return 1"),
        one("e1", "foo = 1"),
        one("e1", "redis.register_function('a-b', function() end)"),
        one(
            "e1",
            "redis.register_function{function_name='x', callback=function() end, flags={'bad'}}",
        ),
        one(
            "e1",
            "redis.register_function{function_name='x', callback=function() end, flags='no-writes'}",
        ),
        one(
            "e1",
            "redis.register_function{function_name='x', callback=function() end, foo=1}",
        ),
        one("e1", "redis.register_function{function_name='x'}"),
        one("e1", "redis.register_function{callback=function() end}"),
        one("e1", "redis.register_function('x')"),
        one("e1", "redis.register_function(1, 2)"),
        one("e1", "redis.register_function('x', function() end, 3)"),
        one(
            "e1",
            "redis.register_function('x', function() end)\nredis.register_function('x', function() end)",
        ),
        one("e1", "redis.register_function{[1]=2}"),
        one(
            "e1",
            "redis.register_function{function_name={}, callback=function() end}",
        ),
        one(
            "e1",
            "redis.register_function{function_name='x', description={}, callback=function() end}",
        ),
        one(
            "e1",
            "redis.register_function{function_name='x', callback=1}",
        ),
        one("e1", "error('boom')"),
        one("e1", "syntax error here"),
        one("e1", "redis.setresp(3)"),
        one("e1", "local r = redis\nr.x = 1"),
        one("e1", "redis.register_function('getk', function() end)"),
        one("e1", "redis.register_function('GetK', function() end)"),
        one("e1-2", "redis.register_function('x', function() end)"),
        "#!lua\nredis.register_function('x', function() end)".into(),
        "#!lua name=a name=b\nx".into(),
        "#!lua name=a foo=b\nx".into(),
        "#!js name=a\nx".into(),
        "redis.register_function('x', function() end)".into(),
        "#!lua name=a".into(),
        "#!lua name=\nx".into(),
    ] {
        p.same(&["FUNCTION", "LOAD", &code]).await;
    }
    p.same(&["FUNCTION", "LOAD", "foo", &one("a", "x")]).await;
    p.same(&["FUNCTION", "LOAD"]).await;
    p.same(&["FUNCTION", "LOAD", "REPLACE"]).await;
    p.same(&["FUNCTION", "LOAD", "REPLACE", "REPLACE", LIB])
        .await;
    // A library whose functions compare in one order everywhere.
    let small = one(
        "small",
        "redis.register_function{function_name='s', callback=function() return 1 end, flags={'no-writes','allow-stale'}, description='d'}",
    );
    p.same(&[
        "FUNCTION",
        "LOAD",
        "REPLACE",
        "#!LUA NAME=small\nredis.register_function('s', function() return 1 end)",
    ])
    .await;
    p.same(&["FUNCTION", "LOAD", "REPLACE", &small]).await;
    p.same(&["FUNCTION", "DELETE", "mylib"]).await;
    for c in [
        &["FUNCTION", "LIST"][..],
        &["FUNCTION", "LIST", "WITHCODE"],
        &["FUNCTION", "LIST", "LIBRARYNAME", "SM*"],
        &["FUNCTION", "LIST", "LIBRARYNAME", "x*", "WITHCODE"],
        &["FUNCTION", "LIST", "LIBRARYNAME"],
        &["FUNCTION", "LIST", "foo"],
        &["FUNCTION", "LIST", "WITHCODE", "WITHCODE"],
        &["FUNCTION", "STATS"],
        &["FUNCTION", "DELETE", "nosuch"],
        &["FUNCTION", "DELETE"],
        &["FUNCTION", "FLUSH", "foo"],
        &["FUNCTION", "FLUSH", "ASYNC", "x"],
        &["FUNCTION", "KILL"],
        &["SCRIPT", "KILL"],
        &["FUNCTION", "foo"],
        &["FUNCTION", "HELP"],
        &["FUNCTION", "HELP", "x"],
        &["FUNCTION", "RESTORE", "abc"],
        &["FUNCTION", "RESTORE", "abc", "foo"],
        &["FUNCTION", "RESTORE", "abc", "REPLACE", "x"],
    ] {
        p.same(c).await;
    }
    // RESP3: maps, sets of flags, nulls.
    p.both(&["HELLO", "3"]).await;
    p.same(&["FUNCTION", "LIST", "WITHCODE"]).await;
    p.same(&["FUNCTION", "STATS"]).await;
    p.both(&["HELLO", "2"]).await;
    // DUMP / RESTORE with every policy. Redis compresses code that LZF
    // shortens (Stratus never does): this library's code it keeps as is.
    let plain = "#!lua name=small\nredis.register_function(\"s\", function() return 1 end)";
    p.same(&["FUNCTION", "LOAD", "REPLACE", plain]).await;
    let dump = p.same(&["FUNCTION", "DUMP"]).await;
    let Resp::Bulk(payload) = dump else {
        panic!("a payload, got {dump:?}")
    };
    let mut corrupt = payload.clone();
    corrupt[4] ^= 1;
    for policy in [None, Some("REPLACE"), Some("FLUSH"), Some("APPEND")] {
        let mut c: Vec<&[u8]> = vec![b"FUNCTION", b"RESTORE", &payload];
        if let Some(p) = policy {
            c.push(p.as_bytes());
        }
        p.same(&c).await;
    }
    p.same(&[&b"FUNCTION"[..], b"RESTORE", &corrupt]).await;
    p.same(&["FUNCTION", "FLUSH", "SYNC"]).await;
    p.same(&["FUNCTION", "LIST"]).await;
    p.same(&["FUNCTION", "STATS"]).await;
    server.shutdown().await;
}

/// A library whose top-level code runs for ever is stopped at the load
/// time limit, with Redis's error, and nothing is loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_time_code_is_bounded() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let looping = one("loop", "while true do end");
    p.same(&["FUNCTION", "LOAD", &looping]).await;
    let heavy = one(
        "heavy",
        "local s = 0 for i = 1, 1e9 do s = s + i end redis.register_function('f', function() return s end)",
    );
    assert_eq!(
        p.stratus.cmd(&["FUNCTION", "LOAD", &heavy]).await,
        err("ERR Error registering functions: ERR FUNCTION LOAD timeout")
    );
    p.same(&["FUNCTION", "LIST"]).await;
    p.same(&["PING"]).await;
    server.shutdown().await;
}

/// The `redis` crate: load, call with keys and arguments, FCALL_RO, the
/// key rules of a cluster (CROSSSLOT, undeclared keys), MULTI/EXEC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcall_with_the_redis_crate() {
    let server = start_default().await;
    let mut con = redis_conn(server.resp_addr, false).await;
    let name: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(LIB)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(name, "mylib");
    let r: String = redis::cmd("FCALL")
        .arg("setk")
        .arg(1)
        .arg("{t}a")
        .arg("hello")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(r, "OK");
    let v: String = redis::cmd("FCALL_RO")
        .arg("peek")
        .arg(1)
        .arg("{t}a")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(v, "hello");
    // FCALL_RO refuses functions that may write.
    let e = redis::cmd("FCALL_RO")
        .arg("setk")
        .arg(1)
        .arg("{t}a")
        .arg("x")
        .query_async::<String>(&mut con)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("Can not execute a script with write flag using *_ro command."),
        "{e}"
    );
    let mut raw = Raw::connect(server.resp_addr).await;
    assert_eq!(
        raw.cmd(&["FCALL", "getk", "2", "{t}a", "b"]).await,
        err("CROSSSLOT Keys in request don't hash to the same slot")
    );
    assert_eq!(
        raw.cmd(&["FCALL", "other", "1", "{t}a"]).await,
        err(
            "ERR Script attempted to access keys that do not hash to the same slot script: other, on @user_function:10."
        )
    );
    // In a transaction.
    assert_eq!(raw.cmd(&["MULTI"]).await, ok());
    assert_eq!(
        raw.cmd(&["FCALL", "setk", "1", "{t}b", "1"]).await,
        simple("QUEUED")
    );
    assert_eq!(
        raw.cmd(&["FCALL", "getk", "1", "{t}b"]).await,
        simple("QUEUED")
    );
    assert_eq!(raw.cmd(&["EXEC"]).await, arr(vec![ok(), bulk("1")]));
    // Replacing a library replaces its functions at once.
    assert_eq!(
        raw.cmd(&[
            "FUNCTION",
            "LOAD",
            "REPLACE",
            &one(
                "mylib",
                "redis.register_function('getk', function(keys) return 'v2' end)"
            ),
        ])
        .await,
        bulk("mylib")
    );
    assert_eq!(raw.cmd(&["FCALL", "getk", "1", "{t}b"]).await, bulk("v2"));
    assert_eq!(
        raw.cmd(&["FCALL", "setk", "1", "{t}b", "1"]).await,
        err("ERR Function not found")
    );
    server.shutdown().await;
}

/// Libraries belong to their cache: another cache neither sees nor runs
/// them, and deleting a cache forgets its libraries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libraries_are_per_cache() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let a_token = http.create_cache("alpha").await;
    let b_token = http.create_cache("beta").await;
    let mut a = raw_auth(server.resp_addr, "alpha", &a_token).await;
    let mut b = raw_auth(server.resp_addr, "beta", &b_token).await;
    let lib = one(
        "shared",
        "local calls = 0\nredis.register_function('who', function() calls = calls + 1 return 'alpha' end)",
    );
    assert_eq!(a.cmd(&["FUNCTION", "LOAD", &lib]).await, bulk("shared"));
    assert_eq!(a.cmd(&["FCALL", "who", "0"]).await, bulk("alpha"));
    assert_eq!(
        b.cmd(&["FCALL", "who", "0"]).await,
        err("ERR Function not found")
    );
    assert_eq!(b.cmd(&["FUNCTION", "LIST"]).await, arr(vec![]));
    // The same library name in beta is beta's own.
    let other = one(
        "shared",
        "redis.register_function('who', function() return 'beta' end)",
    );
    assert_eq!(b.cmd(&["FUNCTION", "LOAD", &other]).await, bulk("shared"));
    assert_eq!(b.cmd(&["FCALL", "who", "0"]).await, bulk("beta"));
    assert_eq!(a.cmd(&["FCALL", "who", "0"]).await, bulk("alpha"));
    assert_eq!(b.cmd(&["FUNCTION", "FLUSH"]).await, ok());
    assert_eq!(a.cmd(&["FCALL", "who", "0"]).await, bulk("alpha"));
    let stats = a.cmd(&["FUNCTION", "STATS"]).await;
    let lua = stats
        .field("engines")
        .and_then(|e| e.field("LUA"))
        .expect("LUA");
    assert_eq!(lua.field("libraries_count"), Some(int(1)));
    assert_eq!(lua.field("functions_count"), Some(int(1)));
    server.shutdown().await;
}

/// FUNCTION KILL stops a running read-only function; SCRIPT KILL answers
/// BUSY naming FUNCTION KILL; a function that wrote is UNKILLABLE and ends
/// at the time limit; FUNCTION STATS shows the running function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_kill_and_busy() {
    let server = start(ServeConfig {
        script_time_limit_ms: 3_000,
        busy_threshold_ms: 100,
        ..ServeConfig::default()
    })
    .await;
    let mut other = Raw::connect(server.resp_addr).await;
    let lib = one(
        "loop",
        "redis.register_function{function_name='spin', callback=function() while true do end end, flags={'no-writes'}}
redis.register_function('wspin', function(keys) redis.call('set', keys[1], '1') while true do end end)",
    );
    assert_eq!(other.cmd(&["FUNCTION", "LOAD", &lib]).await, bulk("loop"));
    assert_eq!(
        other.cmd(&["FUNCTION", "KILL"]).await,
        err("NOTBUSY No scripts in execution right now.")
    );

    let mut runner = Raw::connect(server.resp_addr).await;
    runner.send(&encode(&["FCALL", "spin", "0"])).await;
    let addr = server.resp_addr;
    // A keyless function runs in slot 0's partition and holds that one, as
    // a script holds only its own node in Redis Cluster: `{06S}` is in
    // slot 0.
    eventually("BUSY for other clients", || async move {
        let mut c = Raw::connect(addr).await;
        let r = c.cmd(&["GET", "{06S}"]).await;
        r == err("BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.")
    })
    .await;
    let stats = other.cmd(&["FUNCTION", "STATS"]).await;
    let running = stats.field("running_script").expect("running_script");
    assert_eq!(running.field("name"), Some(bulk("spin")));
    assert_eq!(
        running.field("command"),
        Some(bulks(&["FCALL", "spin", "0"]))
    );
    assert!(running.field("duration_ms").expect("duration").int() >= 0);
    assert_eq!(
        other.cmd(&["SCRIPT", "KILL"]).await,
        err(
            "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
        )
    );
    assert_eq!(other.cmd(&["FUNCTION", "KILL"]).await, ok());
    assert_eq!(
        runner.read().await,
        err("ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2.")
    );
    assert_eq!(
        other
            .cmd(&["FUNCTION", "STATS"])
            .await
            .field("running_script"),
        Some(Resp::Nil)
    );

    // A function that wrote cannot be killed; it ends at the time limit.
    runner.send(&encode(&["FCALL", "wspin", "1", "x"])).await;
    eventually("BUSY for other clients", || async move {
        let mut c = Raw::connect(addr).await;
        let r = c.cmd(&["GET", "x"]).await;
        r.is_error() && r.text().starts_with("BUSY ")
    })
    .await;
    assert_eq!(
        other.cmd(&["FUNCTION", "KILL"]).await,
        err(
            "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command."
        )
    );
    let r = runner.read().await;
    assert_eq!(
        r,
        err(
            "ERR Script killed after running too long (limit 3000 ms) script: wspin, on @user_function:3."
        )
    );
    assert_eq!(other.cmd(&["GET", "x"]).await, bulk("1"));
    // An EVAL script is SCRIPT KILL's: FUNCTION KILL answers BUSY.
    runner
        .send(&encode(&["EVAL", "while true do end", "0"]))
        .await;
    eventually("a script runs", || async move {
        let mut c = Raw::connect(addr).await;
        c.cmd(&["FUNCTION", "KILL"]).await
            == err("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")
    })
    .await;
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]).await, ok());
    assert!(runner.read().await.is_error());
    server.shutdown().await;
}

/// DUMP payloads cross both ways: Redis's (LZF-compressed code) restores
/// into Stratus and runs; Stratus's restores into Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_and_restore_with_real_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.redis.cmd(&["FUNCTION", "LOAD", LIB]).await;
    let Resp::Bulk(from_redis) = p.redis.cmd(&["FUNCTION", "DUMP"]).await else {
        panic!("a payload")
    };
    assert_eq!(
        p.stratus
            .cmd(&[&b"FUNCTION"[..], b"RESTORE", &from_redis])
            .await,
        ok()
    );
    p.same(&["SET", "k", "restored"]).await;
    assert_eq!(
        p.stratus.cmd(&["FCALL", "getk", "1", "k"]).await,
        bulk("restored")
    );
    assert_eq!(p.stratus.cmd(&["FUNCTION", "LIST"]).await.items().len(), 1);
    // Back into an empty Redis.
    let Resp::Bulk(from_stratus) = p.stratus.cmd(&["FUNCTION", "DUMP"]).await else {
        panic!("a payload")
    };
    p.redis.cmd(&["FUNCTION", "FLUSH"]).await;
    assert_eq!(
        p.redis
            .cmd(&[&b"FUNCTION"[..], b"RESTORE", &from_stratus])
            .await,
        ok()
    );
    p.same(&["FCALL", "getk", "1", "k"]).await;
    // Restoring onto existing libraries: APPEND collides, REPLACE replaces.
    p.same(&[&b"FUNCTION"[..], b"RESTORE", &from_stratus]).await;
    p.same(&[&b"FUNCTION"[..], b"RESTORE", &from_stratus, b"REPLACE"])
        .await;
    let clash = one(
        "clash",
        "redis.register_function('getk', function() return 0 end)",
    );
    p.same(&["FUNCTION", "LOAD", &clash]).await;
    server.shutdown().await;
}

/// A cache keeps a bounded amount of library code: a load past the limit
/// is refused whole and the libraries already there keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_code_is_bounded_per_cache() {
    use stratus::control::functions::{MAX_BYTES, MAX_LIBRARIES};
    let server = start_default().await;
    let mut raw = Raw::connect(server.resp_addr).await;
    let big = |name: &str| {
        format!(
            "#!lua name={name}\n--{}\nredis.register_function('{name}', function() return '{name}' end)",
            "x".repeat(MAX_BYTES / 2)
        )
    };
    assert_eq!(raw.cmd(&["FUNCTION", "LOAD", &big("a")]).await, bulk("a"));
    assert_eq!(
        raw.cmd(&["FUNCTION", "LOAD", &big("b")]).await,
        err(&format!(
            "ERR this cache's function libraries are at their limit ({MAX_LIBRARIES} libraries, {} MiB of code)",
            MAX_BYTES >> 20
        ))
    );
    assert_eq!(raw.cmd(&["FCALL", "a", "0"]).await, bulk("a"));
    assert_eq!(
        raw.cmd(&["FCALL", "b", "0"]).await,
        err("ERR Function not found")
    );
    // Replacing counts the old code out.
    assert_eq!(
        raw.cmd(&["FUNCTION", "LOAD", "REPLACE", &big("a")]).await,
        bulk("a")
    );
    server.shutdown().await;
}

/// FCALL and FUNCTION LOAD are metered in the scripting family, a load by
/// the code it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_are_metered() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("meter").await;
    let mut raw = raw_auth(server.resp_addr, "meter", &token).await;
    let scripting = || async {
        let usage = http.get("/v1/caches/meter/usage").await.json();
        usage["ecpu_by_family"]["scripting"].as_f64().unwrap_or(0.0)
    };
    let light = one(
        "light",
        "redis.register_function('f', function() return 1 end)",
    );
    assert_eq!(raw.cmd(&["FUNCTION", "LOAD", &light]).await, bulk("light"));
    let after_light = scripting().await;
    let heavy = one(
        "heavy",
        "local s = 0 for i = 1, 200000 do s = s + i end redis.register_function('g', function() return s end)",
    );
    assert_eq!(raw.cmd(&["FUNCTION", "LOAD", &heavy]).await, bulk("heavy"));
    let after_heavy = scripting().await;
    assert!(after_light >= 15.0, "{after_light}");
    // 200 000 iterations are some 1 000 000 instructions: ≥ 1000 ticks.
    assert!(
        after_heavy - after_light > 1_000.0,
        "{after_light} {after_heavy}"
    );
    assert_eq!(raw.cmd(&["FCALL", "f", "0"]).await, int(1));
    assert!(scripting().await > after_heavy);
    server.shutdown().await;
}

/// A load stopped at the time limit (the scripts' limit when it is shorter
/// than Redis's 500 ms) is charged for the code it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_load_is_charged_for_what_it_ran() {
    let server = start(ServeConfig {
        script_time_limit_ms: 200,
        ..closed_config()
    })
    .await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("meter").await;
    let mut raw = raw_auth(server.resp_addr, "meter", &token).await;
    assert_eq!(
        raw.cmd(&["FUNCTION", "LOAD", &one("spin", "while true do end")])
            .await,
        err("ERR Error registering functions: ERR FUNCTION LOAD timeout")
    );
    let usage = http.get("/v1/caches/meter/usage").await.json();
    let scripting = usage["ecpu_by_family"]["scripting"].as_f64().unwrap_or(0.0);
    // Far more than a run's 15: the loop's instructions until it stopped.
    assert!(scripting > 100.0, "{scripting}");
    assert_eq!(raw.cmd(&["FUNCTION", "LIST"]).await, arr(vec![]));
    // A RESTORE of many such libraries shares one time limit: it stops at
    // the first and loads nothing.
    use stratus::control::functions::{Library, dump, next_id};
    let libs: Vec<_> = (0..50)
        .map(|i| {
            std::sync::Arc::new(Library {
                id: next_id(),
                name: format!("spin{i}"),
                code: one(&format!("spin{i}"), "while true do end").into(),
                body: bytes::Bytes::new(),
                functions: Vec::new(),
            })
        })
        .collect();
    let payload = dump(&libs);
    assert_eq!(
        raw.cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload]).await,
        err("ERR Error registering functions: ERR FUNCTION LOAD timeout")
    );
    assert_eq!(raw.cmd(&["FUNCTION", "LIST"]).await, arr(vec![]));
    assert_eq!(raw.cmd(&["PING"]).await, simple("PONG"));
    server.shutdown().await;
}

/// At the storage maximum, FCALL of a function that may write is refused
/// with OOM before it runs (as Redis's `denyoom`); `allow-oom` and
/// `no-writes` functions still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_refuses_writing_functions_unless_allow_oom() {
    let server = start(ServeConfig::default()).await;
    let http = Http::new(server.http_addr);
    let token = http
        .create_cache_with("full", r#"{"data_storage": {"maximum": 1, "unit": "MB"}}"#)
        .await;
    let mut raw = raw_auth(server.resp_addr, "full", &token).await;
    let lib = one(
        "oom",
        "redis.register_function('w', function(keys) return redis.call('set', keys[1], 'x') end)
redis.register_function{function_name='a', callback=function(keys) return redis.call('set', keys[1], 'x') end, flags={'allow-oom'}}
redis.register_function{function_name='r', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}",
    );
    assert_eq!(raw.cmd(&["FUNCTION", "LOAD", &lib]).await, bulk("oom"));
    let value = "v".repeat(10_000);
    let mut stored = 0;
    while !raw
        .cmd(&["SET", &format!("p:{stored}"), &value])
        .await
        .is_error()
    {
        stored += 1;
        assert!(stored < 1000, "no OOM after 10 MB");
    }
    assert_eq!(
        raw.cmd(&["FCALL", "w", "1", "k"]).await,
        err("OOM command not allowed when used memory > 'maxmemory'.")
    );
    assert_eq!(raw.cmd(&["FCALL", "a", "1", "k"]).await, ok());
    assert_eq!(raw.cmd(&["FCALL_RO", "r", "1", "k"]).await, bulk("x"));
    server.shutdown().await;
}

/// A cache sets its own `busy-reply-threshold` (or `lua-time-limit`, its
/// alias): until then CONFIG GET shows the server's; once set, the cache's
/// other clients get BUSY after it while a script runs, and SCRIPT KILL
/// still stops the script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_sets_its_own_busy_reply_threshold() {
    let server = start(ServeConfig {
        script_time_limit_ms: 3_000,
        busy_threshold_ms: 60_000,
        ..ServeConfig::default()
    })
    .await;
    let mut other = Raw::connect(server.resp_addr).await;
    assert_eq!(
        other.cmd(&["CONFIG", "GET", "busy-reply-threshold"]).await,
        bulks(&["busy-reply-threshold", "60000"])
    );
    assert_eq!(
        other.cmd(&["CONFIG", "SET", "lua-time-limit", "50"]).await,
        ok()
    );
    assert_eq!(
        other.cmd(&["CONFIG", "GET", "busy-reply-threshold"]).await,
        bulks(&["busy-reply-threshold", "50"])
    );
    let mut runner = Raw::connect(server.resp_addr).await;
    runner
        .send(&encode(&["EVAL", "while true do end", "0"]))
        .await;
    let addr = server.resp_addr;
    // The keyless script holds slot 0's partition (`{06S}` is in slot 0).
    eventually("BUSY for other clients", || async move {
        let mut c = Raw::connect(addr).await;
        c.cmd(&["GET", "{06S}"]).await
            == err("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")
    })
    .await;
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]).await, ok());
    assert!(runner.read().await.is_error());
}
