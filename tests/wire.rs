//! The wire: RESP2 and RESP3 (HELLO), pipelining, inline commands, framing
//! errors and the configurable request limits, over real TCP.

mod common;

use std::time::Duration;

use common::*;
use redis::Value;
use stratus::config::ServeConfig;

/// HELLO's map without the fields that legitimately differ between servers.
/// HELLO's reply without the fields that legitimately differ: id, version,
/// and mode (Stratus is one virtual cluster node: `cluster`, where a
/// standalone redis-server says `standalone`; checked separately).
fn hello_shape(r: &Resp) -> Vec<(Resp, Resp)> {
    r.pairs()
        .into_iter()
        .filter(
            |(k, _)| !matches!(k, Resp::Bulk(b) if b == b"id" || b == b"version" || b == b"mode"),
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_crate_speaks_resp2_and_resp3() {
    let server = start_default().await;
    let mut c2 = redis_conn(server.resp_addr, false).await;
    let mut c3 = redis_conn(server.resp_addr, true).await;

    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut c2)
        .await
        .unwrap();
    let got: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut c3)
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("v"));
    let n: i64 = redis::cmd("HSET")
        .arg(&["h", "a", "1", "b", "2"])
        .query_async(&mut c3)
        .await
        .unwrap();
    assert_eq!(n, 2);

    // HGETALL is a flat array in RESP2 and a map in RESP3.
    let v2: Value = redis::cmd("HGETALL")
        .arg("h")
        .query_async(&mut c2)
        .await
        .unwrap();
    let v3: Value = redis::cmd("HGETALL")
        .arg("h")
        .query_async(&mut c3)
        .await
        .unwrap();
    assert!(matches!(&v2, Value::Array(a) if a.len() == 4), "{v2:?}");
    assert!(matches!(&v3, Value::Map(m) if m.len() == 2), "{v3:?}");
    let m: std::collections::HashMap<String, String> = redis::from_redis_value(v3).unwrap();
    assert_eq!(m["a"], "1");
    assert_eq!(m["b"], "2");

    // A missing key is nil in both.
    let v: Value = redis::cmd("GET")
        .arg("nope")
        .query_async(&mut c3)
        .await
        .unwrap();
    assert_eq!(v, Value::Nil);
    let v: Value = redis::cmd("GET")
        .arg("nope")
        .query_async(&mut c2)
        .await
        .unwrap();
    assert_eq!(v, Value::Nil);

    // The connections say which protocol they speak, and the crate's SETINFO landed.
    let info2: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query_async(&mut c2)
        .await
        .unwrap();
    let info3: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query_async(&mut c3)
        .await
        .unwrap();
    assert!(info2.contains(" resp=2"), "{info2}");
    assert!(info3.contains(" resp=3"), "{info3}");
    assert!(info3.contains("lib-name=redis-rs"), "{info3}");

    // Errors come back as errors with their code.
    let e = redis::cmd("INCR")
        .arg("h")
        .query_async::<Value>(&mut c3)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("WRONGTYPE"), "{e}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_switches_protocol_like_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;

    // HELLO with no version: the current protocol (2), as a flat array.
    let (r, s) = p.both(&["HELLO"]).await;
    assert!(matches!(s, Resp::Array(_)), "{s:?}");
    assert_eq!(hello_shape(&s), hello_shape(&r));
    assert_eq!(
        s.field("mode"),
        Some(bulk("cluster")),
        "one virtual cluster node"
    );

    let (r, s) = p.both(&["HELLO", "3"]).await;
    assert!(matches!(s, Resp::Map(_)), "{s:?}");
    assert_eq!(hello_shape(&s), hello_shape(&r));
    assert_eq!(s.field("proto"), Some(int(3)));
    assert_eq!(s.field("server"), Some(bulk("redis")));
    let keys: Vec<Resp> = s.pairs().into_iter().map(|(k, _)| k).collect();
    let rkeys: Vec<Resp> = r.pairs().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, rkeys, "HELLO fields and their order");
    // The id is the connection's CLIENT ID.
    let id = s.field("id").unwrap();
    assert_eq!(p.stratus.cmd(&["CLIENT", "ID"]).await, id);

    // RESP3 types on the wire.
    p.same(&["HSET", "h", "f", "v"]).await;
    assert_eq!(
        p.same(&["HGETALL", "h"]).await,
        Resp::Map(vec![(bulk("f"), bulk("v"))])
    );
    assert_eq!(p.same(&["GET", "missing"]).await, Resp::Null);
    assert_eq!(p.same(&["HGETALL", "missing"]).await, Resp::Map(vec![]));

    // Back to RESP2.
    let (r, s) = p.both(&["HELLO", "2"]).await;
    assert!(matches!(s, Resp::Array(_)), "{s:?}");
    assert_eq!(hello_shape(&s), hello_shape(&r));
    assert_eq!(p.same(&["GET", "missing"]).await, Resp::Nil);
    assert_eq!(p.same(&["HGETALL", "h"]).await, bulks(&["f", "v"]));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_options_and_errors_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["HELLO", "4"],
        &["HELLO", "1"],
        &["HELLO", "abc"],
        &["HELLO", "3.0"],
        &["HELLO", "3", "FOO"],
        &["HELLO", "3", "SETNAME"],
        &["HELLO", "3", "AUTH", "default"],
        &["HELLO", "3", "SETNAME", "bad name"],
        &["CLIENT", "GETNAME"],
    ])
    .await;
    assert_eq!(
        p.same(&["HELLO", "4"]).await,
        err("NOPROTO unsupported protocol version")
    );
    assert_eq!(
        p.same(&["HELLO", "3", "FOO"]).await,
        err("ERR Syntax error in HELLO option 'FOO'")
    );
    // A failed HELLO does not switch protocols.
    assert_eq!(p.same(&["GET", "missing"]).await, Resp::Nil);

    // AUTH (the open default cache takes any password, as Redis's nopass
    // default user) and SETNAME in one HELLO.
    let (r, s) = p
        .both(&[
            "HELLO", "3", "AUTH", "default", "whatever", "SETNAME", "app-1",
        ])
        .await;
    assert!(matches!(s, Resp::Map(_)), "{s:?}");
    assert_eq!(hello_shape(&s), hello_shape(&r));
    assert_eq!(p.same(&["CLIENT", "GETNAME"]).await, bulk("app-1"));
    let (r, s) = p.both(&["HELLO", "2", "SETNAME", "app-2"]).await;
    assert_eq!(hello_shape(&s), hello_shape(&r));
    assert_eq!(p.same(&["CLIENT", "GETNAME"]).await, bulk("app-2"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_in_one_write_are_answered_in_order() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    let n = 2000;
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend(encode(&["SET", &format!("k{i}"), &format!("v{i}")]));
        batch.extend(encode(&["GET", &format!("k{i}")]));
        batch.extend(encode(&["INCR", "counter"]));
        if i % 500 == 0 {
            // An error in the middle does not disturb the order.
            batch.extend(encode(&["NOSUCHCMD", "x"]));
        }
    }
    c.send(&batch).await;
    for i in 0..n {
        assert_eq!(c.read().await, ok(), "SET #{i}");
        assert_eq!(c.read().await, bulk(&format!("v{i}")), "GET #{i}");
        assert_eq!(c.read().await, int(i + 1), "INCR #{i}");
        if i % 500 == 0 {
            assert_eq!(
                c.read().await,
                err("ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' ")
            );
        }
    }
    c.assert_silent(Duration::from_millis(100)).await;

    // The same with the redis crate's pipeline.
    let mut con = redis_conn(server.resp_addr, false).await;
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.cmd("GET").arg(format!("k{i}"));
    }
    let values: Vec<String> = pipe.query_async(&mut con).await.unwrap();
    assert_eq!(values.len(), 500);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v, &format!("v{i}"));
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_split_across_writes_are_reassembled() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    // One byte per write, with pauses so each arrives in its own segment.
    let req = encode(&["SET", "split", "hello world"]);
    for b in &req {
        c.send(&[*b]).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(c.read().await, ok());
    // Two requests whose boundary falls inside a write.
    let mut two = encode(&["GET", "split"]);
    two.extend(encode(&["STRLEN", "split"]));
    let (a, b) = two.split_at(two.len() / 2 + 3);
    c.send(a).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send(b).await;
    assert_eq!(c.read().await, bulk("hello world"));
    assert_eq!(c.read().await, int(11));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_commands_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let lines: &[&[u8]] = &[
        b"PING\r\n",
        b"ping hello\r\n",
        b"SET greeting \"hello world\"\r\n",
        b"GET greeting\n",
        b"  set   spaced    value  \r\n",
        b"get spaced\r\n",
        b"SET esc \"a\\x41\\tb\\n\"\r\n",
        b"GET esc\r\n",
        b"SET single 'it\\'s'\r\n",
        b"GET single\r\n",
        b"\r\n\r\nECHO after-blank-lines\r\n",
        b"EXISTS greeting spaced nope\r\n",
        b"nosuch a b\r\n",
    ];
    for line in lines {
        p.redis.send(line).await;
        p.stratus.send(line).await;
        let r = p.redis.read().await;
        let s = p.stratus.read().await;
        assert_eq!(s, r, "inline {:?}", String::from_utf8_lossy(line));
    }
    assert_eq!(p.stratus.cmd(&["GET", "esc"]).await, bulk("aA\tb\n"));
    // Inline and multibulk mixed in one write, answered in order.
    let mut mixed = b"SET m 1\r\n".to_vec();
    mixed.extend(encode(&["INCR", "m"]));
    mixed.extend(b"INCR m\r\n");
    p.stratus.send(&mixed).await;
    assert_eq!(p.stratus.read().await, ok());
    assert_eq!(p.stratus.read().await, int(2));
    assert_eq!(p.stratus.read().await, int(3));
    server.shutdown().await;
}

/// Each input is a framing violation: Redis and Stratus answer the same
/// `-ERR Protocol error: ...` and close the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_violations_answer_protocol_error_and_close_like_redis() {
    let server = start_default().await;
    let real = RealRedis::start().await;
    let long_digits = vec![b'1'; 70 * 1024];
    let mut too_big_mbulk = b"*".to_vec();
    too_big_mbulk.extend(&long_digits);
    let mut too_big_bulk = b"*1\r\n$".to_vec();
    too_big_bulk.extend(&long_digits);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"*x\r\n".to_vec(),
            "ERR Protocol error: invalid multibulk length",
        ),
        (
            b"*1\r\n+PING\r\n".to_vec(),
            "ERR Protocol error: expected '$', got '+'",
        ),
        (
            b"*2\r\n$4\r\nECHO\r\n:12\r\n".to_vec(),
            "ERR Protocol error: expected '$', got ':'",
        ),
        (
            b"*1\r\n$x\r\n".to_vec(),
            "ERR Protocol error: invalid bulk length",
        ),
        (
            b"*1\r\n$-3\r\n".to_vec(),
            "ERR Protocol error: invalid bulk length",
        ),
        (
            b"*2\r\n$3\r\nSET\r\n$536870913\r\n".to_vec(),
            "ERR Protocol error: invalid bulk length",
        ),
        (
            b"SET \"abc\r\n".to_vec(),
            "ERR Protocol error: unbalanced quotes in request",
        ),
        (
            b"SET \"a\"b c\r\n".to_vec(),
            "ERR Protocol error: unbalanced quotes in request",
        ),
        (
            vec![b'a'; 70 * 1024],
            "ERR Protocol error: too big inline request",
        ),
        (
            too_big_mbulk,
            "ERR Protocol error: too big mbulk count string",
        ),
        (
            too_big_bulk,
            "ERR Protocol error: too big bulk count string",
        ),
    ];
    for (input, expected) in &cases {
        let what = String::from_utf8_lossy(&input[..input.len().min(40)]).into_owned();
        let mut r = Raw::connect(real.addr).await;
        let mut s = Raw::connect(server.resp_addr).await;
        // A good command first: the violation closes a working connection.
        assert_eq!(s.cmd(&["PING"]).await, simple("PONG"));
        r.send(input).await;
        s.send(input).await;
        let rr = r.read().await;
        let sr = s.read().await;
        assert_eq!(rr, err(expected), "redis-server on {what:?}");
        assert_eq!(sr, err(expected), "stratus on {what:?}");
        s.assert_closed().await;
        r.assert_closed().await;
    }
    // The server is fine afterwards.
    let mut c = Raw::connect(server.resp_addr).await;
    assert_eq!(c.cmd(&["PING"]).await, simple("PONG"));
    server.shutdown().await;
}

/// A pipeline longer than the server's decode-ahead window (16 requests
/// decoded and prefetched together), its last request a framing violation,
/// in one write: every request before it runs and is answered in order,
/// then the error, then the close — as redis-server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_pipeline_ending_in_a_violation_is_answered_in_order_like_redis() {
    let server = start_default().await;
    let real = RealRedis::start().await;
    let mut input = Vec::new();
    for i in 0..40 {
        input.extend(encode(&["SET", &format!("p{i}"), &i.to_string()]));
        input.extend(encode(&["INCR", "counter"]));
        input.extend(encode(&["GET", &format!("p{}", i / 2)]));
    }
    input.extend(b"*1\r\n$x\r\n");
    let mut r = Raw::connect(real.addr).await;
    let mut s = Raw::connect(server.resp_addr).await;
    r.send(&input).await;
    s.send(&input).await;
    let (from_redis, redis_closed) = replies_until_close_or_quiet(&mut r).await;
    let (from_stratus, stratus_closed) = replies_until_close_or_quiet(&mut s).await;
    assert_eq!(from_redis.len(), 121);
    assert_eq!(from_stratus, from_redis);
    assert!(redis_closed && stratus_closed);
    assert_eq!(
        from_stratus.last(),
        Some(&err("ERR Protocol error: invalid bulk length"))
    );
    let mut c = Raw::connect(server.resp_addr).await;
    assert_eq!(c.cmd(&["GET", "counter"]).await, bulk("40"));
    server.shutdown().await;
}

/// One write holding plain data commands (which run in batches, several
/// under one hold of their partition's lock) mixed with everything that
/// must not join a batch or ends one: errors (wrong type, unknown command,
/// wrong arity), a transaction, CLIENT REPLY SKIP and OFF/ON, connection
/// commands. Every reply is redis-server's, in order, and so is the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_mixing_batched_and_other_commands_is_answered_like_redis() {
    let server = start_default().await;
    let real = RealRedis::start().await;
    let mut input = Vec::new();
    for i in 0..30 {
        let (k, list) = (format!("k{i}"), format!("l{}", i % 3));
        // (A transaction's keys share a slot: cluster-mode caches too.)
        let tagged = format!("{{t}}k{i}");
        let cmds: Vec<Vec<&str>> = vec![
            vec!["SET", &k, "v"],
            vec!["APPEND", &k, "+"],
            vec!["GET", &k],
            vec!["INCR", "n"],
            vec!["RPUSH", &list, &k],
            vec!["GET", &list],
            vec!["LLEN", &list],
            vec!["NOSUCH", &k],
            vec!["GET", &k, "extra"],
            vec!["EXPIRE", &k, "100"],
            vec!["TTL", &k],
            vec!["MULTI"],
            vec!["SET", &tagged, "1"],
            vec!["INCR", "{t}n"],
            vec!["EXEC"],
            vec!["CLIENT", "REPLY", "SKIP"],
            vec!["SET", "skipped", &k],
            vec!["GET", "skipped"],
            vec!["CLIENT", "REPLY", "OFF"],
            vec!["INCR", "n"],
            vec!["GET", "n"],
            vec!["CLIENT", "REPLY", "ON"],
            vec!["PING"],
            vec!["HSET", "h", &k, "1"],
            vec!["HGET", "h", &k],
            vec!["ZADD", "z", "1", &k],
            vec!["ZSCORE", "z", &k],
            vec!["DEL", &list],
            vec!["ECHO", &k],
            vec!["GETRANGE", &k, "0", "0"],
        ];
        for c in &cmds {
            input.extend(encode(c));
        }
    }
    let mut r = Raw::connect(real.addr).await;
    let mut s = Raw::connect(server.resp_addr).await;
    r.send(&input).await;
    s.send(&input).await;
    let (from_redis, _) = replies_until_close_or_quiet(&mut r).await;
    let (from_stratus, _) = replies_until_close_or_quiet(&mut s).await;
    assert_eq!(from_redis.len(), 30 * 25);
    assert_eq!(from_stratus, from_redis);
    let check = |i: usize| {
        let k = format!("k{i}");
        [
            vec!["GET", "n"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>(),
            vec!["GET".into(), "skipped".into()],
            vec!["HGET".into(), "h".into(), k.clone()],
            vec!["ZSCORE".into(), "z".into(), k.clone()],
            vec!["LLEN".into(), format!("l{}", i % 3)],
        ]
    };
    for i in [0, 17, 29] {
        for c in check(i) {
            let c: Vec<&str> = c.iter().map(String::as_str).collect();
            assert_eq!(s.cmd(&c).await, r.cmd(&c).await, "{c:?}");
        }
    }
    server.shutdown().await;
}

/// Every reply until the server closes (`true`) or stays quiet for a while
/// (`false`).
async fn replies_until_close_or_quiet(c: &mut Raw) -> (Vec<Resp>, bool) {
    let mut replies = Vec::new();
    loop {
        match c.read_timeout(Duration::from_millis(250)).await {
            Read::Reply(r) => replies.push(r),
            Read::Closed => return (replies, true),
            Read::Timeout => return (replies, false),
        }
    }
}

/// Lengths in `*N` and `$N` headers are read as Redis 7's `string2ll` reads
/// them (`processMultibulkBuffer`): no leading zeros, no '+', no spaces, no
/// `-0`, within i64. Each input goes to redis-server and to Stratus; the
/// replies and whether the connection closes must be the same, and the
/// expected reply is spelled out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_lengths_are_parsed_like_redis_string2ll() {
    let server = start_default().await;
    let real = RealRedis::start().await;
    const MBULK: &str = "ERR Protocol error: invalid multibulk length";
    const BULK: &str = "ERR Protocol error: invalid bulk length";
    let echo = |count: &str, len: &str| -> Vec<u8> {
        format!("*{count}\r\n$4\r\nECHO\r\n${len}\r\nhi\r\n").into_bytes()
    };
    let then_ping =
        |head: &str| -> Vec<u8> { format!("{head}\r\n*1\r\n$4\r\nPING\r\n").into_bytes() };
    let mut cases: Vec<(Vec<u8>, Vec<Resp>, bool)> = vec![
        (echo("2", "2"), vec![bulk("hi")], false),
        (echo("02", "2"), vec![err(MBULK)], true),
        (echo("2", "02"), vec![err(BULK)], true),
        (echo("+2", "2"), vec![err(MBULK)], true),
        (echo("2", "+2"), vec![err(BULK)], true),
        (echo(" 2", "2"), vec![err(MBULK)], true),
        (echo("2 ", "2"), vec![err(MBULK)], true),
        (echo("2", " 2"), vec![err(BULK)], true),
        (echo("2", "2 "), vec![err(BULK)], true),
        (echo("2", "-0"), vec![err(BULK)], true),
        (echo("2", "-1"), vec![err(BULK)], true),
        (echo("2", ""), vec![err(BULK)], true),
        (echo("2", "0x2"), vec![err(BULK)], true),
        (then_ping("*00"), vec![err(MBULK)], true),
        (then_ping("*-0"), vec![err(MBULK)], true),
        (then_ping("*-01"), vec![err(MBULK)], true),
        (then_ping("*-"), vec![err(MBULK)], true),
        (then_ping("*"), vec![err(MBULK)], true),
        (then_ping("*-9223372036854775809"), vec![err(MBULK)], true),
        (then_ping("*99999999999999999999"), vec![err(MBULK)], true),
        // Zero and negative counts are empty requests, skipped.
        (then_ping("*0"), vec![simple("PONG")], false),
        (then_ping("*-1"), vec![simple("PONG")], false),
        (
            then_ping("*-1000000000000000000"),
            vec![simple("PONG")],
            false,
        ),
        (
            then_ping("*-9223372036854775808"),
            vec![simple("PONG")],
            false,
        ),
        (
            b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n".to_vec(),
            vec![bulk("")],
            false,
        ),
        // An empty element line: the CR shows as a space.
        (
            b"*1\r\n\r\n".to_vec(),
            vec![err("ERR Protocol error: expected '$', got ' '")],
            true,
        ),
        // The element line is awaited whole before its first byte is judged.
        (b"*1\r\n+PI".to_vec(), vec![], false),
    ];
    let mut long = b"*1\r\n".to_vec();
    long.extend(vec![b'x'; 70 * 1024]);
    cases.push((
        long,
        vec![err("ERR Protocol error: too big bulk count string")],
        true,
    ));
    for (input, expected, closes) in &cases {
        let what = String::from_utf8_lossy(&input[..input.len().min(40)]).into_owned();
        let mut r = Raw::connect(real.addr).await;
        let mut s = Raw::connect(server.resp_addr).await;
        r.send(input).await;
        s.send(input).await;
        let (redis, stratus) = tokio::join!(
            replies_until_close_or_quiet(&mut r),
            replies_until_close_or_quiet(&mut s)
        );
        assert_eq!(
            redis,
            (expected.clone(), *closes),
            "redis-server on {what:?}"
        );
        assert_eq!(stratus, redis, "stratus vs redis-server on {what:?}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limits_are_elasticache_limits() {
    let server = start_default().await;
    let addr = server.resp_addr;

    // 3,999 arguments are accepted...
    let mut args: Vec<String> = vec!["DEL".into()];
    args.extend((1..3999).map(|i| format!("k{i}")));
    assert_eq!(args.len(), 3999);
    let mut c = Raw::connect(addr).await;
    assert_eq!(c.cmd(&args).await, int(0));
    // ...4,000 are a framing violation.
    args.push("one-too-many".into());
    assert_eq!(
        c.cmd(&args).await,
        err("ERR Protocol error: invalid multibulk length")
    );
    c.assert_closed().await;

    // Keys up to 4 KiB.
    let mut c = Raw::connect(addr).await;
    let key = "k".repeat(4096);
    assert_eq!(c.cmd(&["SET", &key, "v"]).await, ok());
    assert_eq!(c.cmd(&["GET", &key]).await, bulk("v"));
    let long = "k".repeat(4097);
    let r = c.cmd(&["SET", &long, "v"]).await;
    assert!(r.is_error(), "a 4097-byte key must be refused: {r:?}");
    let r = c.cmd(&["MGET", "a", &long]).await;
    assert!(r.is_error(), "a 4097-byte key must be refused: {r:?}");
    // A refused key is a command error, not a framing one: the connection goes on.
    assert_eq!(c.cmd(&["DBSIZE"]).await, int(1));

    // A bulk string of exactly 512 MiB is announced and awaited (incomplete)...
    let mut big = Raw::connect(addr).await;
    big.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\nabc")
        .await;
    big.assert_silent(Duration::from_millis(300)).await;
    // ...one byte more is refused at once.
    let mut bigger = Raw::connect(addr).await;
    bigger
        .send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870913\r\n")
        .await;
    assert_eq!(
        bigger.read().await,
        err("ERR Protocol error: invalid bulk length")
    );
    bigger.assert_closed().await;
    assert_eq!(c.cmd(&["PING"]).await, simple("PONG"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_configurable() {
    let server = start(ServeConfig {
        max_bulk_len: 4096,
        max_args: 8,
        max_key_len: 16,
        ..ServeConfig::default()
    })
    .await;
    let addr = server.resp_addr;

    let mut c = Raw::connect(addr).await;
    assert_eq!(
        c.cmd(&["DEL", "a", "b", "c", "d", "e", "f", "g"]).await,
        int(0)
    );
    let r = c
        .cmd(&["DEL", "a", "b", "c", "d", "e", "f", "g", "h"])
        .await;
    assert_eq!(r, err("ERR Protocol error: invalid multibulk length"));
    c.assert_closed().await;

    // Inline requests obey the same argument limit.
    let mut c = Raw::connect(addr).await;
    c.send(b"DEL a b c d e f g h\r\n").await;
    let r = c.read().await;
    assert!(r.text().starts_with("ERR Protocol error: "), "{r:?}");
    c.assert_closed().await;

    let mut c = Raw::connect(addr).await;
    let v4096 = "x".repeat(4096);
    assert_eq!(c.cmd(&["SET", "v", &v4096]).await, ok());
    assert_eq!(c.cmd(&["STRLEN", "v"]).await, int(4096));
    // Values built by commands cannot outgrow the bulk limit either.
    assert_eq!(
        c.cmd(&["APPEND", "v", "y"]).await,
        err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    );
    assert_eq!(
        c.cmd(&["SETRANGE", "w", "4096", "y"]).await,
        err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    );
    assert_eq!(c.cmd(&["SETRANGE", "w", "4095", "y"]).await, int(4096));
    let key16 = "k".repeat(16);
    let key17 = "k".repeat(17);
    assert_eq!(c.cmd(&["SET", &key16, "v"]).await, ok());
    assert!(c.cmd(&["SET", &key17, "v"]).await.is_error());
    assert!(c.cmd(&["HSET", &key17, "f", "v"]).await.is_error());
    assert_eq!(c.cmd(&["EXISTS", &key16]).await, int(1));
    let r = c.cmd(&["SET", "v", &"x".repeat(4097)]).await;
    assert_eq!(r, err("ERR Protocol error: invalid bulk length"));
    c.assert_closed().await;
    server.shutdown().await;
}
