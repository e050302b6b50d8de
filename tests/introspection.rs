//! Introspection and server commands scoped to the caller's cache: CONFIG,
//! INFO sections, SLOWLOG, LATENCY, WAIT, OBJECT, MEMORY USAGE and the
//! CLIENT subcommands that reach other clients. Replies are compared with a
//! real `redis-server` where the behaviour is the same by design.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_get_and_set_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["CONFIG", "GET"],
        &["CONFIG", "SET", "a"],
        &["CONFIG", "SET", "a", "b", "c"],
        &["CONFIG", "RESETSTAT", "x"],
        &["CONFIG", "FOO"],
        &["CONFIG", "HELP"],
        &["CONFIG", "GET", "nosuch"],
        &["CONFIG", "SET", "nosuch", "1"],
        &["CONFIG", "SET", "daemonize", "yes"],
        &["CONFIG", "SET", "notify-keyspace-events", "Zq"],
        &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
        &["CONFIG", "GET", "notify-keyspace-events"],
        &["CONFIG", "SET", "notify-keyspace-events", "Ex$lg"],
        &["CONFIG", "GET", "notify-keyspace-events"],
        &["CONFIG", "SET", "notify-keyspace-events", ""],
        &["CONFIG", "SET", "slowlog-log-slower-than", "x"],
        &["CONFIG", "SET", "slowlog-log-slower-than", "-2"],
        &["CONFIG", "SET", "slowlog-max-len", "-1"],
        &["CONFIG", "SET", "hash-max-listpack-value", "1x"],
        &["CONFIG", "SET", "hash-max-ziplist-value", "1kb"],
        &["CONFIG", "GET", "hash-max-listpack-value"],
        &["CONFIG", "GET", "HASH-MAX-ZIPLIST-VALUE"],
        &["CONFIG", "SET", "latency-tracking", "maybe"],
        &[
            "CONFIG",
            "SET",
            "slowlog-max-len",
            "5",
            "slowlog-max-len",
            "6",
        ],
        &["CONFIG", "SET", "slowlog-max-len", "5", "nosuch", "6"],
        &[
            "CONFIG",
            "SET",
            "slowlog-max-len",
            "7",
            "slowlog-log-slower-than",
            "x",
        ],
        &["CONFIG", "GET", "slowlog-max-len"],
        &["CONFIG", "SET", "slowlog-max-len", "128"],
        &["CONFIG", "SET", "hash-max-ziplist-value", "64"],
    ])
    .await;
    // Glob patterns, aliases included, in any order.
    for pat in [
        "*ziplist*",
        "*max-*-entries*",
        "slowlog*",
        "notify*",
        "zset*",
    ] {
        p.same_pairs(&["CONFIG", "GET", pat]).await;
    }
    p.same_pairs(&["CONFIG", "GET", "hz", "databases-nope", "timeout"])
        .await;
    let all = p.stratus.cmd(&["CONFIG", "GET", "*"]).await.pairs();
    let real = p.redis.cmd(&["CONFIG", "GET", "*"]).await.pairs();
    let names = |v: &[(Resp, Resp)]| {
        let mut n: Vec<String> = v.iter().map(|(k, _)| k.text()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&all), names(&real), "every Redis 7.0 parameter");
    // The cache's own values where it has them.
    let get = |pairs: &[(Resp, Resp)], k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n.text() == k)
            .map(|(_, v)| v.text())
            .unwrap()
    };
    assert_eq!(get(&all, "maxmemory-policy"), "volatile-lru");
    assert_eq!(get(&all, "maxmemory"), "0");
    assert_eq!(get(&all, "save"), "");
    assert_eq!(get(&all, "appendonly"), "no");
    // A parameter a tenant cannot change takes only the value it has.
    let s = &mut p.stratus;
    assert_eq!(s.cmd(&["CONFIG", "SET", "save", ""]).await, ok());
    assert_eq!(s.cmd(&["CONFIG", "SET", "appendonly", "no"]).await, ok());
    assert_eq!(
        s.cmd(&["CONFIG", "SET", "appendonly", "yes"]).await,
        err(
            "ERR CONFIG SET failed (possibly related to argument 'appendonly') - can't set immutable config"
        )
    );
    // No LFU counters: the LFU policies are refused, the others listed.
    assert_eq!(
        s.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"])
            .await,
        err(
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: volatile-lru, allkeys-lru, volatile-random, allkeys-random, volatile-ttl, noeviction"
        )
    );
}

/// `CONFIG SET maxmemory` sets a limit below the cache's storage maximum
/// (never above it) and `maxmemory-policy` what goes at that limit:
/// `noeviction` refuses writes with Redis's OOM, `volatile-lru` (the
/// default) never takes a key without a TTL, `allkeys-lru` takes any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_set_maxmemory_and_policy_limit_the_cache() {
    const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http
        .create_cache_with("a", r#"{"data_storage": {"maximum": 1, "unit": "GB"}}"#)
        .await;
    let mut a = Raw::connect(server.resp_addr).await;
    assert_eq!(a.cmd(&["AUTH", "a", &token]).await, ok());
    let maxmemory = |v: &str| arr(vec![bulk("maxmemory"), bulk(v)]);
    assert_eq!(a.cmd(&["CONFIG", "SET", "maxmemory", "10gb"]).await, ok());
    assert_eq!(
        a.cmd(&["CONFIG", "GET", "maxmemory"]).await,
        maxmemory("1073741824"),
        "never above the storage maximum"
    );
    assert_eq!(a.cmd(&["CONFIG", "SET", "maxmemory", "1mb"]).await, ok());
    assert_eq!(
        a.cmd(&["CONFIG", "GET", "maxmemory"]).await,
        maxmemory("1048576")
    );
    let info = a.cmd(&["INFO", "memory"]).await.text();
    assert!(info.contains("maxmemory:1048576\r\n"), "{info}");
    assert!(info.contains("maxmemory_policy:volatile-lru\r\n"), "{info}");

    // Keys without a TTL fill the limit; volatile-lru cannot evict them.
    let value = "x".repeat(10_000);
    let mut stored = 0;
    for i in 0..200 {
        match a.cmd(&["SET", &format!("k{i}"), &value]).await {
            r if r == ok() => stored += 1,
            r => {
                assert_eq!(r, err(OOM));
                break;
            }
        }
    }
    assert!(
        (90..110).contains(&stored),
        "{stored} keys of 10 kB under 1 MB"
    );
    assert_eq!(a.cmd(&["SET", "more", &value]).await, err(OOM));
    // noeviction refuses the same way; allkeys-lru makes room.
    for (policy, reply) in [("noeviction", err(OOM)), ("allkeys-lru", ok())] {
        assert_eq!(
            a.cmd(&["CONFIG", "SET", "maxmemory-policy", policy]).await,
            ok()
        );
        assert_eq!(a.cmd(&["SET", "more", &value]).await, reply, "{policy}");
    }
    let stats = a.cmd(&["INFO", "stats"]).await.text();
    assert!(!stats.contains("evicted_keys:0\r\n"), "{stats}");
    assert_eq!(a.cmd(&["GET", "more"]).await, bulk(&value));
    // Back to the storage maximum: room again without evicting.
    assert_eq!(a.cmd(&["CONFIG", "SET", "maxmemory", "0"]).await, ok());
    assert_eq!(
        a.cmd(&["CONFIG", "GET", "maxmemory"]).await,
        maxmemory("1073741824")
    );
    let keys = a.cmd(&["DBSIZE"]).await.int();
    assert_eq!(a.cmd(&["SET", "after", &value]).await, ok());
    assert_eq!(a.cmd(&["DBSIZE"]).await.int(), keys + 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_is_per_cache_and_maxmemory_is_the_storage_maximum() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let ta = http
        .create_cache_with("a", r#"{"data_storage": {"maximum": 1, "unit": "GB"}}"#)
        .await;
    let tb = http.create_cache("b").await;
    let mut a = Raw::connect(server.resp_addr).await;
    let mut b = Raw::connect(server.resp_addr).await;
    assert_eq!(a.cmd(&["AUTH", "a", &ta]).await, ok());
    assert_eq!(b.cmd(&["AUTH", "b", &tb]).await, ok());
    assert_eq!(
        a.cmd(&["CONFIG", "GET", "maxmemory"]).await,
        arr(vec![bulk("maxmemory"), bulk("1073741824")])
    );
    assert!(
        a.cmd(&["INFO", "memory"])
            .await
            .text()
            .contains("maxmemory:1073741824\r\n")
    );
    assert_eq!(
        b.cmd(&["CONFIG", "GET", "maxmemory"]).await,
        arr(vec![bulk("maxmemory"), bulk("0")])
    );
    assert_eq!(
        a.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"])
            .await,
        ok()
    );
    assert_eq!(
        b.cmd(&["CONFIG", "GET", "notify-keyspace-events"]).await,
        arr(vec![bulk("notify-keyspace-events"), bulk("")])
    );
    assert_eq!(
        a.cmd(&["CONFIG", "GET", "notify-keyspace-events"]).await,
        arr(vec![bulk("notify-keyspace-events"), bulk("AKE")])
    );
    // Slow logs and clients are the cache's own.
    assert_eq!(
        a.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"])
            .await,
        ok()
    );
    a.cmd(&["SET", "k", "v"]).await;
    assert!(a.cmd(&["SLOWLOG", "LEN"]).await.int() >= 1);
    assert_eq!(b.cmd(&["SLOWLOG", "LEN"]).await, int(0));
    let list_b = b.cmd(&["CLIENT", "LIST"]).await.text();
    assert_eq!(list_b.lines().count(), 1, "{list_b}");
    let a_id = a.cmd(&["CLIENT", "ID"]).await.int();
    assert_eq!(
        b.cmd(&["CLIENT", "KILL", "ID", &a_id.to_string()]).await,
        int(0)
    );
    assert_eq!(a.cmd(&["PING"]).await, simple("PONG"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_sections_and_statistics() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    c.cmd(&["SET", "k", "v"]).await;
    c.cmd(&["SET", "t", "v", "EX", "100"]).await;
    c.cmd(&["GET", "k"]).await;
    c.cmd(&["LPUSH", "k", "x"]).await;
    c.cmd(&["GET"]).await;
    let info = c.cmd(&["INFO"]).await.text();
    for field in [
        "redis_version:7.0.15\r\n",
        "# Clients\r\n",
        "used_memory:",
        "maxmemory_policy:volatile-lru\r\n",
        "# Persistence\r\n",
        "# Stats\r\n",
        "# Replication\r\n",
        "used_cpu_user:",
        "# Errorstats\r\n",
        "errorstat_WRONGTYPE:count=1\r\n",
        "errorstat_ERR:count=1\r\n",
        "db0:keys=2,expires=1,avg_ttl=0\r\n",
    ] {
        assert!(info.contains(field), "{field} in {info}");
    }
    assert!(!info.contains("rejected_calls"), "{info}");
    let stats = c.cmd(&["INFO", "commandSTATS"]).await.text();
    assert!(stats.starts_with("# Commandstats\r\n"), "{stats}");
    assert!(
        stats.contains("cmdstat_set:calls=2,") && stats.contains("cmdstat_get:calls=1,"),
        "{stats}"
    );
    assert!(
        stats.contains("cmdstat_get:calls=1,")
            && stats.contains("rejected_calls=1,failed_calls=0\r\n"),
        "{stats}"
    );
    assert!(
        stats.contains("cmdstat_lpush:calls=1,") && stats.contains("failed_calls=1"),
        "{stats}"
    );
    c.cmd(&["CLIENT", "ID"]).await;
    c.cmd(&["CLIENT", "NOSUCH"]).await;
    let stats = c.cmd(&["INFO", "commandstats"]).await.text();
    assert!(stats.contains("cmdstat_client|id:calls=1,"), "{stats}");
    assert!(stats.contains("cmdstat_client:calls=1,"), "{stats}");
    let every = c.cmd(&["INFO", "cpu", "all"]).await.text();
    assert_eq!(every.matches("used_cpu_user_children").count(), 1);
    assert!(every.contains("rejected_calls") && every.contains("master_repl_offset"));
    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]).await, ok());
    let stats = c.cmd(&["INFO", "commandstats"]).await.text();
    assert!(!stats.contains("cmdstat_set"), "{stats}");
    let errors = c.cmd(&["INFO", "errorstats"]).await.text();
    assert_eq!(errors, "# Errorstats\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowlog_latency_and_wait_match_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["SLOWLOG", "RESET"],
        &["SLOWLOG", "LEN"],
        &["SLOWLOG", "GET", "-2"],
        &["SLOWLOG", "GET", "x"],
        &["SLOWLOG", "FOO"],
        &["SLOWLOG", "HELP"],
        &["LATENCY", "LATEST"],
        &["LATENCY", "RESET"],
        &["LATENCY", "HISTORY", "command"],
        &["LATENCY", "FOO"],
        &["LATENCY", "HELP", "x"],
        &["LATENCY", "LATEST", "x"],
        &["LATENCY", "HISTORY"],
        &["LATENCY", "DOCTOR"],
        &["LATENCY", "HISTOGRAM", "nosuch"],
        &["SLOWLOG", "GET", "1", "2"],
        &["SLOWLOG", "LEN", "x"],
        &["SLOWLOG", "HELP", "x"],
        &["WAIT", "0", "0"],
        &["WAIT", "1", "-1"],
        &["WAIT", "1", "x"],
        &["WAIT", "1"],
        &["CONFIG", "SET", "slowlog-log-slower-than", "0"],
        &["CONFIG", "SET", "slowlog-max-len", "2"],
        &["SET", "a", "1"],
        &["SET", "b", "2"],
        &["SET", "c", "3"],
        &["SLOWLOG", "LEN"],
    ])
    .await;
    let log = p.stratus.cmd(&["SLOWLOG", "GET"]).await;
    let newest = &log.items()[0];
    assert_eq!(newest.items()[3], bulks(&["SLOWLOG", "LEN"]));
    assert_eq!(log.items()[1].items()[3], bulks(&["SET", "c", "3"]));
    let args: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    let mut cmd = vec!["DEL"];
    cmd.extend(args.iter().map(|s| s.as_str()));
    p.stratus.cmd(&cmd).await;
    let log = p.stratus.cmd(&["SLOWLOG", "GET", "1"]).await;
    let kept = log.items()[0].items()[3].items().to_vec();
    assert_eq!(kept.len(), 32);
    assert_eq!(kept[31], bulk("... (10 more arguments)"));
    assert_eq!(p.stratus.cmd(&["SLOWLOG", "RESET"]).await, ok());
    assert_eq!(p.stratus.cmd(&["SLOWLOG", "LEN"]).await, int(1));

    // LATENCY HISTOGRAM: calls and cumulative power-of-two buckets, a
    // container command standing for its subcommands.
    let s = &mut p.stratus;
    s.cmd(&["CONFIG", "RESETSTAT"]).await;
    s.cmd(&["SET", "a", "b"]).await;
    s.cmd(&["SET", "c", "d"]).await;
    s.cmd(&["CLIENT", "ID"]).await;
    let h = s
        .cmd(&["LATENCY", "HISTOGRAM", "set", "client", "nosuch"])
        .await;
    let h = h.items();
    assert_eq!(h.len(), 4, "{h:?}");
    let entry = |name: &str| {
        let i = h.iter().position(|x| *x == bulk(name)).expect(name);
        h[i + 1].items().to_vec()
    };
    let set = entry("set");
    assert_eq!(&set[..3], &[bulk("calls"), int(2), bulk("histogram_usec")]);
    assert_eq!(set[3].items().last(), Some(&int(2)), "{set:?}");
    assert_eq!(entry("client|id")[1], int(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_and_memory_usage() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["SET", "int", "12345"],
        &["SET", "emb", "hello"],
        &["SET", "raw", &"x".repeat(100)],
        &["HSET", "h", "f", "v"],
        &["ZADD", "z", "1", "a"],
        &["SADD", "si", "1", "2"],
        &["SADD", "ss", "a"],
        &["RPUSH", "l", "a"],
        &["XADD", "x", "1-1", "f", "v"],
        &["OBJECT", "ENCODING", "int"],
        &["OBJECT", "ENCODING", "emb"],
        &["OBJECT", "ENCODING", "raw"],
        &["OBJECT", "ENCODING", "h"],
        &["OBJECT", "ENCODING", "z"],
        &["OBJECT", "ENCODING", "si"],
        &["OBJECT", "ENCODING", "ss"],
        &["OBJECT", "ENCODING", "l"],
        &["OBJECT", "ENCODING", "x"],
        &["OBJECT", "ENCODING", "nosuch"],
        &["OBJECT", "ENCODING"],
        &["OBJECT", "FOO", "k"],
        &["OBJECT", "HELP"],
        &["OBJECT", "FREQ", "int"],
        &["OBJECT", "IDLETIME", "nosuch"],
        &["CONFIG", "SET", "hash-max-listpack-value", "2"],
        &["HSET", "h", "long", "value"],
        &["OBJECT", "ENCODING", "h"],
        &["CONFIG", "SET", "zset-max-listpack-entries", "1"],
        &["ZADD", "z", "2", "b"],
        &["OBJECT", "ENCODING", "z"],
        &["MEMORY", "USAGE", "nosuch"],
        &["MEMORY", "USAGE"],
        &["MEMORY", "USAGE", "int", "FOO"],
        &["MEMORY", "USAGE", "int", "SAMPLES"],
        &["MEMORY", "USAGE", "int", "SAMPLES", "x"],
        &["MEMORY", "USAGE", "int", "SAMPLES", "-1"],
        &["MEMORY", "USAGE", "nosuch", "SAMPLES", "0", "SAMPLES", "5"],
        &["MEMORY", "PURGE"],
        &["MEMORY", "FOO"],
        &["MEMORY", "HELP"],
    ])
    .await;
    let idle = p.stratus.cmd(&["OBJECT", "IDLETIME", "int"]).await.int();
    assert!((0..60).contains(&idle), "{idle}");
    assert_eq!(p.stratus.cmd(&["OBJECT", "REFCOUNT", "emb"]).await, int(1));
    let usage = p.stratus.cmd(&["MEMORY", "USAGE", "raw"]).await.int();
    assert!(usage > 100, "{usage}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_reach_the_cache_s_own_clients() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["CLIENT", "KILL", "1.2.3.4:5"],
        &["CLIENT", "KILL", "ID", "999999"],
        &["CLIENT", "KILL", "FOO", "bar"],
        &["CLIENT", "PAUSE", "x"],
        &["CLIENT", "PAUSE", "-1"],
        &["CLIENT", "UNBLOCK", "999999"],
        &["CLIENT", "UNBLOCK", "1", "FOO"],
        &["CLIENT", "UNPAUSE"],
        &["CLIENT", "REPLY", "FOO"],
        &["CLIENT", "NO-EVICT", "maybe"],
        &["CLIENT", "NO-EVICT", "ON"],
    ])
    .await;
    let mut a = Raw::connect(server.resp_addr).await;
    let mut b = Raw::connect(server.resp_addr).await;
    assert_eq!(b.cmd(&["CLIENT", "SETNAME", "bee"]).await, ok());
    let b_id = b.cmd(&["CLIENT", "ID"]).await.int();
    let list = a.cmd(&["CLIENT", "LIST"]).await.text();
    assert!(list.contains(&format!("id={b_id} ")), "{list}");
    assert!(list.contains("name=bee "), "{list}");
    let only = a
        .cmd(&["CLIENT", "LIST", "ID", &b_id.to_string()])
        .await
        .text();
    assert_eq!(only.lines().count(), 1);
    // A blocked client is woken by CLIENT UNBLOCK, as a timeout or an error.
    b.send(&encode(&["BLPOP", "nokey", "0"])).await;
    eventually("b blocks", || {
        let addr = server.resp_addr;
        async move {
            let mut c = Raw::connect(addr).await;
            c.cmd(&["CLIENT", "LIST"]).await.text().contains("flags=b ")
        }
    })
    .await;
    assert_eq!(
        a.cmd(&["CLIENT", "UNBLOCK", &b_id.to_string()]).await,
        int(1)
    );
    assert_eq!(b.read().await, Resp::NilArray);
    b.send(&encode(&["BLPOP", "nokey", "0"])).await;
    let mut woke = false;
    for _ in 0..100 {
        if a.cmd(&["CLIENT", "UNBLOCK", &b_id.to_string(), "ERROR"])
            .await
            == int(1)
        {
            woke = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(woke);
    assert_eq!(
        b.read().await,
        err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
    );
    // CLIENT REPLY OFF / SKIP.
    b.send(&encode(&["CLIENT", "REPLY", "SKIP"])).await;
    b.send(&encode(&["PING", "skipped"])).await;
    assert_eq!(b.cmd(&["PING", "seen"]).await, bulk("seen"));
    b.send(&encode(&["CLIENT", "REPLY", "OFF"])).await;
    b.send(&encode(&["PING", "off"])).await;
    assert_eq!(b.cmd(&["CLIENT", "REPLY", "ON"]).await, ok());
    // CLIENT PAUSE WRITE holds writes, not reads, until UNPAUSE.
    assert_eq!(a.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]).await, ok());
    b.send(&encode(&["SET", "k", "v"])).await;
    assert_eq!(a.cmd(&["GET", "k"]).await, Resp::Nil);
    b.assert_silent(Duration::from_millis(200)).await;
    let clients = a.cmd(&["INFO", "clients"]).await.text();
    assert!(clients.contains("blocked_clients:1\r\n"), "{clients}");
    assert_eq!(a.cmd(&["CLIENT", "UNPAUSE"]).await, ok());
    assert_eq!(b.read().await, ok());
    // CLIENT KILL ends the other connection.
    let b_addr = list
        .lines()
        .find(|l| l.contains(&format!("id={b_id} ")))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("addr=")))
        .unwrap()
        .to_string();
    assert_eq!(a.cmd(&["CLIENT", "KILL", &b_addr]).await, ok());
    b.assert_closed().await;
    assert_eq!(
        a.cmd(&["CLIENT", "KILL", &b_addr]).await,
        err("ERR No such client")
    );
}

/// CLIENT PAUSE WRITE holds scripts that may write (EVAL, EVALSHA, FCALL
/// of a function without `no-writes`, an EXEC queueing one) and lets
/// read-only ones run: EVAL_RO, `#!lua flags=no-writes` bodies, FCALL of a
/// `no-writes` function, SCRIPT LOAD.
/// A cache whose `maxmemory` drops far below what it holds evicts a bounded
/// number of keys per command (its commands go on being answered) and the
/// maintenance cycle evicts the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lowered_maxmemory_is_reached_in_the_background() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    for batch in 0..20 {
        let mut mset = vec!["MSET".to_string()];
        for i in 0..1000 {
            mset.push(format!("{{t}}k{batch}:{i}"));
            mset.push("v".repeat(100));
        }
        let args: Vec<&str> = mset.iter().map(String::as_str).collect();
        assert_eq!(c.cmd(&args).await, ok());
    }
    assert_eq!(c.cmd(&["DBSIZE"]).await, int(20_000));
    for (k, v) in [("maxmemory-policy", "allkeys-random"), ("maxmemory", "1")] {
        assert_eq!(c.cmd(&["CONFIG", "SET", k, v]).await, ok());
    }
    // One command evicts at most its share: most keys are still there.
    assert_eq!(c.cmd(&["GET", "nothing"]).await, Resp::Nil);
    assert!(c.cmd(&["DBSIZE"]).await.int() > 10_000);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while c.cmd(&["DBSIZE"]).await.int() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "eviction did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Commands an EXEC runs and commands a script calls count in INFO
/// commandstats as Redis counts them (compared with a real redis-server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commandstats_count_what_exec_and_scripts_run() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let script: &[&[&str]] = &[
        &["CONFIG", "RESETSTAT"],
        &["MULTI"],
        &["SET", "foo{t}", "bar"],
        &["EXPIRE", "foo{t}", "100"],
        &["OBJECT", "ENCODING", "foo{t}"],
        &["EXEC"],
        &[
            "EVAL",
            "redis.call('set', KEYS[1], 0); local r = redis.pcall('hset', KEYS[1], 'f', 'v'); redis.call('expire', KEYS[1], 0); return r",
            "1",
            "foo{t}",
        ],
    ];
    for args in script {
        let (ours, theirs) = (p.stratus.cmd(args).await, p.redis.cmd(args).await);
        assert_eq!(ours.is_error(), theirs.is_error(), "{args:?}");
    }
    let calls = |info: String| -> Vec<String> {
        let mut v: Vec<String> = info
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest.split(',').find(|f| f.starts_with("calls="))?;
                let failed = rest.split(',').find(|f| f.starts_with("failed_calls="))?;
                Some(format!("{name} {calls} {failed}"))
            })
            .collect();
        v.sort();
        v
    };
    let ours = calls(p.stratus.cmd(&["INFO", "commandstats"]).await.text());
    let theirs = calls(p.redis.cmd(&["INFO", "commandstats"]).await.text());
    assert_eq!(ours, theirs);
    assert!(
        ours.contains(&"set calls=2 failed_calls=0".to_string()),
        "{ours:?}"
    );
    assert!(
        ours.contains(&"hset calls=1 failed_calls=1".to_string()),
        "{ours:?}"
    );
}

/// `lazyfreed_objects` counts the values UNLINK and DEL handed to the
/// background, and CONFIG RESETSTAT zeroes it with the other keyspace
/// counters (hits, misses), as in Redis (compared with a real redis-server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazyfree_and_keyspace_counters_reset_with_resetstat() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let mut sadd = vec!["SADD".to_string(), "big".to_string()];
    sadd.extend((0..1000).map(|i| format!("member-{i}")));
    let sadd: Vec<&str> = sadd.iter().map(String::as_str).collect();
    let field = |info: &str, name: &str| -> String {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name}"))
            .to_string()
    };
    for c in [&mut p.stratus, &mut p.redis] {
        assert_eq!(c.cmd(&sadd).await, int(1000));
        assert_eq!(c.cmd(&["GET", "nothing"]).await, Resp::Nil);
        assert_eq!(c.cmd(&["UNLINK", "big"]).await, int(1));
        // Redis counts the object once the background thread freed it.
        let mut info = String::new();
        for _ in 0..100 {
            info = c.cmd(&["INFO"]).await.text();
            if field(&info, "lazyfreed_objects") == "1" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(field(&info, "lazyfreed_objects"), "1");
        assert_eq!(field(&info, "keyspace_misses"), "1");
        assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]).await, ok());
        let info = c.cmd(&["INFO"]).await.text();
        for name in ["lazyfreed_objects", "keyspace_misses", "keyspace_hits"] {
            assert_eq!(field(&info, name), "0", "{name}");
        }
    }
}

/// An idle connection gives its read buffer back (as Redis frees an idle
/// client's query buffer after 2 s): CLIENT LIST's `qbuf-free`/`rbs` show
/// 16 KiB, then 0, and the next request still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_gives_its_read_buffer_back() {
    let server = start_default().await;
    let mut idle = Raw::connect(server.resp_addr).await;
    assert_eq!(idle.cmd(&["CLIENT", "SETNAME", "sleeper"]).await, ok());
    let mut watcher = Raw::connect(server.resp_addr).await;
    let buffer = |list: String| -> (u64, u64) {
        let line = list
            .lines()
            .find(|l| l.contains("name=sleeper "))
            .unwrap_or_else(|| panic!("no sleeper in {list}"))
            .to_string();
        let field = |name: &str| -> u64 {
            line.split(' ')
                .find_map(|f| f.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} in {line}"))
        };
        (field("qbuf=") + field("qbuf-free="), field("rbs="))
    };
    let (held, rbs) = buffer(watcher.cmd(&["CLIENT", "LIST"]).await.text());
    assert!((16_384..32_768).contains(&held), "{held}");
    assert_eq!(rbs, held);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (held, _) = buffer(watcher.cmd(&["CLIENT", "LIST"]).await.text());
        if held == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still holds {held}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(idle.cmd(&["SET", "k", "v"]).await, ok());
    assert_eq!(idle.cmd(&["GET", "k"]).await, bulk("v"));
    let (held, _) = buffer(watcher.cmd(&["CLIENT", "LIST"]).await.text());
    assert!(held >= 16_384, "a buffer again once bytes came: {held}");
}

/// A connection has no read buffer before its client sends anything (a
/// burst of silent sockets costs no memory and no buffer timers): CLIENT
/// LIST shows `qbuf=0 qbuf-free=0 rbs=0` for it, and it is served as soon
/// as it sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_holds_no_read_buffer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start_default().await;
    let mut silent = tokio::net::TcpStream::connect(server.resp_addr)
        .await
        .expect("connect");
    let addr = format!("addr={} ", silent.local_addr().expect("local addr"));
    let mut watcher = Raw::connect(server.resp_addr).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let list = watcher.cmd(&["CLIENT", "LIST"]).await.text();
        if let Some(l) = list.lines().find(|l| l.contains(&addr)) {
            break l.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "{addr} not in {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for field in ["qbuf=0 ", "qbuf-free=0 ", "rbs=0 "] {
        assert!(line.contains(field), "{field} in {line}");
    }
    silent.write_all(b"PING\r\n").await.expect("send");
    let mut reply = [0u8; 7];
    silent.read_exact(&mut reply).await.expect("reply");
    assert_eq!(&reply, b"+PONG\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_write_holds_writing_scripts_only() {
    let server = start_default().await;
    let mut a = Raw::connect(server.resp_addr).await;
    let mut b = Raw::connect(server.resp_addr).await;
    assert_eq!(a.cmd(&["SET", "x", "y"]).await, ok());
    let library = "#!lua name=lib\nredis.register_function{function_name='ro', callback=function() return 'hello' end, flags={'no-writes'}}\nredis.register_function('rw', function() return 'written' end)";
    assert_eq!(a.cmd(&["FUNCTION", "LOAD", library]).await, bulk("lib"));
    let ro_body = "#!lua flags=no-writes\nreturn 'read only'";
    assert_eq!(a.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]).await, ok());
    assert_eq!(b.cmd(&["EVAL", ro_body, "0"]).await, bulk("read only"));
    assert_eq!(
        b.cmd(&["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "x"])
            .await,
        bulk("y")
    );
    let sha = b.cmd(&["SCRIPT", "LOAD", ro_body]).await.text();
    assert_eq!(b.cmd(&["EVALSHA", &sha, "0"]).await, bulk("read only"));
    assert_eq!(b.cmd(&["FCALL", "ro", "0"]).await, bulk("hello"));
    assert_eq!(b.cmd(&["MULTI"]).await, ok());
    assert_eq!(b.cmd(&["EVAL", ro_body, "0"]).await, simple("QUEUED"));
    assert_eq!(b.cmd(&["EXEC"]).await, arr(vec![bulk("read only")]));
    // Scripts that may write wait for the end of the pause.
    for held in [vec!["EVAL", "return 1", "0"], vec!["FCALL", "rw", "0"]] {
        b.send(&encode(&held)).await;
        b.assert_silent(Duration::from_millis(200)).await;
        assert_eq!(a.cmd(&["CLIENT", "UNPAUSE"]).await, ok());
        assert!(!b.read().await.is_error());
        assert_eq!(a.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]).await, ok());
    }
    assert_eq!(a.cmd(&["CLIENT", "UNPAUSE"]).await, ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_key_specs_and_list_filters() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    // Key specs as Redis gives them, for commands whose flags match.
    for name in ["get", "mget", "zunionstore", "xread", "eval"] {
        let (r, s) = p.both(&["COMMAND", "INFO", name]).await;
        let (r, s) = (&r.items()[0], &s.items()[0]);
        let search = |v: &Resp| -> Vec<(Resp, Resp)> {
            v.items()[8]
                .items()
                .iter()
                .map(|spec| {
                    let f = |k: &str| {
                        let items = spec.items();
                        let i = items
                            .iter()
                            .position(|x| matches!(x, Resp::Bulk(b) if b == k.as_bytes()))
                            .unwrap();
                        items[i + 1].clone()
                    };
                    (f("begin_search"), f("find_keys"))
                })
                .collect()
        };
        assert_eq!(search(s), search(r), "{name} key specs");
    }
    p.script(&[
        &["COMMAND", "LIST", "FILTERBY"],
        &["COMMAND", "LIST", "FILTERBY", "foo", "bar"],
        &["COMMAND", "LIST", "FILTERBY", "MODULE", "x"],
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "xr*range"],
    ])
    .await;
    let hashes = p
        .stratus
        .cmd(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "hash"])
        .await;
    assert!(hashes.items().contains(&bulk("hset")), "{hashes:?}");
    assert!(!hashes.items().contains(&bulk("get")), "{hashes:?}");
    p.script(&[
        &["COMMAND", "GETKEYS", "EVAL", "return 1", "0"],
        &["COMMAND", "GETKEYS", "EVAL", "return 1", "1", "k"],
        &["COMMAND", "GETKEYS", "PING", "x"],
        &["COMMAND", "GETKEYS", "GET"],
        &["COMMAND", "GETKEYSANDFLAGS", "GET"],
        &["COMMAND", "GETKEYSANDFLAGS", "PING", "x"],
        &["COMMAND", "GETKEYSANDFLAGS", "GET", "k"],
        &["COMMAND", "GETKEYS", "MEMORY", "USAGE", "k"],
        &["COMMAND", "GETKEYS", "XGROUP", "CREATE", "k", "g", "$"],
        &["COMMAND", "INFO", "get|key"],
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "non_exists*"],
    ])
    .await;
    p.same_unordered(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "config|*re*"])
        .await;
    // COMMAND LIST names subcommands too; COMMAND COUNT only commands.
    let count = p.stratus.cmd(&["COMMAND", "COUNT"]).await.int();
    let list = p.stratus.cmd(&["COMMAND", "LIST"]).await;
    let names = list.items();
    assert!(names.len() as i64 > count);
    assert!(names.contains(&bulk("client|list")) && names.contains(&bulk("set")));
    let scripting = p
        .stratus
        .cmd(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "scripting"])
        .await;
    assert!(scripting.items().contains(&bulk("eval")), "{scripting:?}");
    assert_eq!(
        p.stratus
            .cmd(&["COMMAND", "GETKEYS", "ZUNIONSTORE", "d", "2", "a", "b"])
            .await,
        bulks(&["d", "a", "b"])
    );
}

/// A MONITOR line without its timestamp and client address (`[0 lua]`
/// kept), so that lines from two servers compare.
fn monitor_line(r: Resp) -> String {
    let text = match r {
        Resp::Simple(s) => s,
        other => panic!("expected a MONITOR line, got {other:?}"),
    };
    let (stamp, rest) = text.split_once(' ').expect("a timestamp");
    assert!(stamp.contains('.'), "{text}");
    let (who, args) = rest.split_once("] ").expect("a client");
    if who == "[0 lua" {
        format!("[0 lua] {args}")
    } else {
        assert!(who.starts_with("[0 127.0.0.1:"), "{text}");
        args.to_string()
    }
}

/// MONITOR shows the commands of its own cache as Redis's suite expects:
/// executed commands, a script before the commands it calls (`[0 lua]`),
/// a transaction's commands between MULTI and EXEC, AUTH and HELLO's
/// secrets redacted, admin commands left out; the same lines as a real
/// redis-server once timestamps and addresses are set aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_shows_commands_as_redis() {
    let server = start_default().await;
    let real = RealRedis::start().await;
    let mut r_mon = Raw::connect(real.addr).await;
    let mut s_mon = Raw::connect(server.resp_addr).await;
    assert_eq!(r_mon.cmd(&["MONITOR"]).await, ok());
    assert_eq!(s_mon.cmd(&["MONITOR"]).await, ok());
    let mut r = Raw::connect(real.addr).await;
    let mut s = Raw::connect(server.resp_addr).await;
    let script: &[&[&str]] = &[
        &["SET", "foo", "bar \"q\"\n"],
        &["GET", "foo"],
        &[
            "EVAL",
            "redis.call('set',KEYS[1],ARGV[1])",
            "1",
            "foo",
            "bar",
        ],
        &["MULTI"],
        &["SET", "foo", "x"],
        &["EXEC"],
        &["MULTI"],
        &["NOSUCH"],
        &["EXEC"],
        &["CONFIG", "GET", "maxmemory"],
        &["AUTH", "not-real"],
        &["HELLO", "2", "AUTH", "not-real", "not-a-password"],
        &["PING"],
    ];
    for args in script {
        let (rr, sr) = (r.cmd(args).await, s.cmd(args).await);
        assert_eq!(sr.is_error(), rr.is_error(), "{}", show(args));
    }
    let mut r_lines = Vec::new();
    let mut s_lines = Vec::new();
    while let Read::Reply(l) = r_mon.read_timeout(Duration::from_millis(200)).await {
        r_lines.push(monitor_line(l));
    }
    while let Read::Reply(l) = s_mon.read_timeout(Duration::from_millis(200)).await {
        s_lines.push(monitor_line(l));
    }
    assert_eq!(s_lines, r_lines);
    assert!(s_lines.iter().any(|l| l.contains("(redacted)")));
    // A second MONITOR answers nothing; RESET ends it.
    s_mon.send(&encode(&["MONITOR"])).await;
    assert_eq!(s_mon.cmd(&["RESET"]).await, simple("RESET"));
    s.cmd(&["GET", "foo"]).await;
    assert!(matches!(
        s_mon.read_timeout(Duration::from_millis(200)).await,
        Read::Timeout
    ));
}

/// A monitor sees only its own cache's commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_sees_only_its_cache() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let ta = http.create_cache("alpha").await;
    let tb = http.create_cache("beta").await;
    let mut mon = Raw::connect(server.resp_addr).await;
    assert_eq!(mon.cmd(&["AUTH", "alpha", &ta]).await, ok());
    assert_eq!(mon.cmd(&["MONITOR"]).await, ok());
    let mut a = Raw::connect(server.resp_addr).await;
    let mut b = Raw::connect(server.resp_addr).await;
    assert_eq!(b.cmd(&["AUTH", "beta", &tb]).await, ok());
    b.cmd(&["SET", "secret", "beta"]).await;
    assert_eq!(a.cmd(&["AUTH", "alpha", &ta]).await, ok());
    a.cmd(&["GET", "mine"]).await;
    let mut lines = Vec::new();
    while let Read::Reply(l) = mon.read_timeout(Duration::from_millis(200)).await {
        lines.push(monitor_line(l));
    }
    assert_eq!(
        lines,
        vec![
            "\"AUTH\" \"(redacted)\" \"(redacted)\"".to_string(),
            "\"GET\" \"mine\"".to_string()
        ]
    );
}
