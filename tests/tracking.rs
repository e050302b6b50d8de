//! Client-side caching over real TCP (CLIENT TRACKING, CACHING, GETREDIR):
//! invalidation messages byte for byte against a real redis-server, in
//! default mode, OPTIN, BCAST with PREFIX and NOLOOP, and REDIRECT to a
//! RESP2 subscriber of `__redis__:invalidate`; expiry invalidates too.

mod common;

use std::time::Duration;

use common::*;

/// Whole replies that arrive within a short wait.
async fn drain(raw: &mut Raw) -> Vec<Resp> {
    let mut out = Vec::new();
    while let Read::Reply(r) = raw.read_timeout(Duration::from_millis(150)).await {
        out.push(r);
    }
    out
}

/// Three connections to each server: 0 tracks (RESP3), 1 writes, 2 is a
/// RESP2 redirect target.
struct Trio {
    redis: Vec<Raw>,
    stratus: Vec<Raw>,
    redis_ids: [String; 3],
    stratus_ids: [String; 3],
    _real: RealRedis,
}

impl Trio {
    async fn new(stratus: std::net::SocketAddr) -> Trio {
        let real = RealRedis::start().await;
        let mut redis = Vec::new();
        let mut ours = Vec::new();
        for _ in 0..3 {
            redis.push(Raw::connect(real.addr).await);
            ours.push(Raw::connect(stratus).await);
        }
        let mut redis_ids: [String; 3] = Default::default();
        let mut stratus_ids: [String; 3] = Default::default();
        for i in 0..3 {
            redis_ids[i] = redis[i].cmd(&["CLIENT", "ID"]).await.int().to_string();
            stratus_ids[i] = ours[i].cmd(&["CLIENT", "ID"]).await.int().to_string();
        }
        Trio {
            redis,
            stratus: ours,
            redis_ids,
            stratus_ids,
            _real: real,
        }
    }

    /// HELLO on connection `on` of both servers (its reply names each
    /// server: not compared).
    async fn hello(&mut self, on: usize, version: &str) {
        self.redis[on].cmd(&["HELLO", version]).await;
        self.stratus[on].cmd(&["HELLO", version]).await;
    }

    /// Runs `args` on connection `on` of both servers (`ID2` stands for
    /// connection 2's id); asserts the same reply and the same messages
    /// on every other connection.
    async fn same(&mut self, on: usize, args: &[&str]) {
        let swap = |ids: &[String; 3]| -> Vec<String> {
            args.iter()
                .map(|a| {
                    if *a == "ID2" {
                        ids[2].clone()
                    } else {
                        a.to_string()
                    }
                })
                .collect()
        };
        let (ra, sa) = (swap(&self.redis_ids), swap(&self.stratus_ids));
        let r = self.redis[on].cmd(&ra).await;
        let s = self.stratus[on].cmd(&sa).await;
        assert_eq!(s, r, "reply differs for {}", show(args));
        for other in (0..3).filter(|o| *o != on) {
            let r = drain(&mut self.redis[other]).await;
            let s = drain(&mut self.stratus[other]).await;
            assert_eq!(
                s,
                r,
                "connection {other} got other messages after {}",
                show(args)
            );
        }
        // The caller's own pushes (after its reply) too.
        let r = drain(&mut self.redis[on]).await;
        let s = drain(&mut self.stratus[on]).await;
        assert_eq!(s, r, "own messages differ after {}", show(args));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_match_redis() {
    let server = start_default().await;
    let mut t = Trio::new(server.resp_addr).await;
    t.redis[0].cmd(&["HELLO", "3"]).await;
    t.stratus[0].cmd(&["HELLO", "3"]).await;
    let script: &[(usize, &[&str])] = &[
        // Refusals, in Redis's order and words.
        (0, &["CLIENT", "GETREDIR"]),
        (0, &["CLIENT", "CACHING", "YES"]),
        (0, &["CLIENT", "TRACKING", "ON", "PREFIX", "a"]),
        (0, &["CLIENT", "TRACKING", "ON", "BCAST", "OPTIN"]),
        (0, &["CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT"]),
        (0, &["CLIENT", "TRACKING", "ON", "REDIRECT", "999999"]),
        (0, &["CLIENT", "TRACKING", "MAYBE"]),
        (0, &["CLIENT", "TRACKING", "ON", "FOO"]),
        // Default mode: a read key is invalidated once, by anyone's write.
        (0, &["CLIENT", "TRACKING", "ON"]),
        (0, &["CLIENT", "GETREDIR"]),
        (0, &["CLIENT", "CACHING", "YES"]),
        (0, &["SET", "k", "1"]),
        (0, &["GET", "k"]),
        (1, &["SET", "k", "2"]),
        (1, &["SET", "k", "3"]),
        (0, &["GET", "k"]),
        // Its own write: the push follows the reply.
        (0, &["SET", "k", "4"]),
        // A read inside MULTI/EXEC is remembered too.
        (0, &["MULTI"]),
        (0, &["GET", "m"]),
        (0, &["EXEC"]),
        (1, &["SET", "m", "1"]),
        (0, &["PING"]),
        (0, &["CLIENT", "TRACKING", "ON", "BCAST"]),
        (0, &["CLIENT", "TRACKING", "OFF"]),
        // OPTIN: only reads after CLIENT CACHING YES are remembered.
        (0, &["CLIENT", "TRACKING", "ON", "OPTIN"]),
        (0, &["GET", "x"]),
        (1, &["SET", "x", "1"]),
        (0, &["CLIENT", "CACHING", "YES"]),
        (0, &["GET", "x"]),
        (1, &["SET", "x", "2"]),
        (0, &["CLIENT", "CACHING", "NO"]),
        (0, &["CLIENT", "TRACKING", "OFF"]),
        // BCAST with prefixes, NOLOOP.
        (
            0,
            &[
                "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:", "PREFIX", "u",
            ],
        ),
        (
            0,
            &[
                "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:", "NOLOOP",
            ],
        ),
        (1, &["SET", "user:1", "a"]),
        (1, &["SET", "other", "a"]),
        (0, &["SET", "user:2", "b"]),
        (
            0,
            &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:x"],
        ),
        (0, &["CLIENT", "TRACKING", "OFF"]),
        // REDIRECT to a RESP2 subscriber of __redis__:invalidate.
        (2, &["SUBSCRIBE", "__redis__:invalidate"]),
        (0, &["CLIENT", "TRACKING", "ON", "REDIRECT", "ID2"]),
        (0, &["GET", "r"]),
        (1, &["SET", "r", "1"]),
        (0, &["GET", "r"]),
        (1, &["FLUSHALL"]),
    ];
    for (on, args) in script {
        t.same(*on, args).await;
    }
}

/// A tracked key that expires (nobody touching it) is invalidated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_invalidates_tracked_keys() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    c.cmd(&["HELLO", "3"]).await;
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "ON"]).await, ok());
    assert_eq!(c.cmd(&["SET", "soon", "v", "PX", "50"]).await, ok());
    assert_eq!(c.cmd(&["GET", "soon"]).await, bulk("v"));
    assert_eq!(
        c.read().await,
        Resp::Push(vec![
            Resp::Bulk(b"invalidate".to_vec()),
            Resp::Array(vec![Resp::Bulk(b"soon".to_vec())]),
        ])
    );
    // Tracking off: no more messages.
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "OFF"]).await, ok());
    assert_eq!(c.cmd(&["CLIENT", "GETREDIR"]).await, int(-1));
}

/// What Redis's own suite (`unit/tracking`) checks, byte for byte against
/// a real redis-server: BCAST batches a command's keys (one message per
/// prefix, keys in order), a switch to BCAST forgets keys read before,
/// CLIENT TRACKINGINFO, a transaction's invalidations and a FLUSHDB's
/// come after the EXEC reply, a script's declared keys are remembered
/// only if it read something, invalidations reach a RESP3 client that
/// never subscribed, and CLIENT REPLY OFF does not stop them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_orders_as_redis() {
    let server = start_default().await;
    let mut t = Trio::new(server.resp_addr).await;
    t.hello(0, "3").await;
    let script: &[(usize, &[&str])] = &[
        (0, &["CLIENT", "TRACKINGINFO"]),
        // BCAST, every key: one message for a command's keys, in order.
        (0, &["CLIENT", "TRACKING", "ON", "BCAST"]),
        (0, &["CLIENT", "TRACKINGINFO"]),
        (1, &["MSET", "c{t}", "1", "a{t}", "2", "b{t}", "3"]),
        (1, &["DEL", "a{t}", "b{t}"]),
        (0, &["CLIENT", "TRACKING", "OFF"]),
        // Prefixes: a transaction's keys, one message per prefix.
        (
            0,
            &[
                "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "b:", "PREFIX", "a:",
            ],
        ),
        (0, &["CLIENT", "TRACKINGINFO"]),
        (1, &["MULTI"]),
        (1, &["INCR", "a:1{t}"]),
        (1, &["INCR", "b:2{t}"]),
        (1, &["INCR", "a:2{t}"]),
        (1, &["INCR", "b:1{t}"]),
        (1, &["INCR", "c:1{t}"]),
        (1, &["EXEC"]),
        // Its own write: the batch follows its reply.
        (0, &["SET", "a:9", "x"]),
        (0, &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a"]),
        (0, &["CLIENT", "TRACKING", "OFF"]),
        // NOLOOP in BCAST: the client's own keys are left out.
        (0, &["CLIENT", "TRACKING", "ON", "BCAST", "NOLOOP"]),
        (0, &["CLIENT", "TRACKINGINFO"]),
        (0, &["MSET", "n1{t}", "1", "n2{t}", "2"]),
        (1, &["SET", "n3", "3"]),
        (0, &["CLIENT", "TRACKING", "OFF"]),
        // Keys read before a switch to BCAST are not invalidated twice.
        (0, &["CLIENT", "TRACKING", "ON"]),
        (0, &["GET", "key1"]),
        (0, &["CLIENT", "TRACKING", "OFF"]),
        (0, &["CLIENT", "TRACKING", "ON", "BCAST"]),
        (1, &["INCR", "key1"]),
        (0, &["CLIENT", "TRACKING", "OFF"]),
        // A transaction's invalidations of the client's own keys follow
        // the EXEC reply; so does a FLUSHDB's.
        (0, &["CLIENT", "TRACKING", "ON"]),
        (0, &["MSET", "a{t}", "1", "b{t}", "2"]),
        (0, &["GET", "a{t}"]),
        (0, &["MULTI"]),
        (0, &["INCR", "a{t}"]),
        (0, &["GET", "b{t}"]),
        (0, &["EXEC"]),
        (0, &["HSET", "h", "f", "1"]),
        (0, &["HGET", "h", "f"]),
        (0, &["HDEL", "h", "f"]),
        (0, &["MULTI"]),
        (0, &["FLUSHDB"]),
        (0, &["EXEC"]),
        // Scripts: declared keys are remembered only if the script read.
        (1, &["MSET", "k1{t}", "1", "k2{t}", "1"]),
        (
            0,
            &[
                "EVAL",
                "redis.call('set', 'k3{t}', 'x')",
                "2",
                "k1{t}",
                "k2{t}",
            ],
        ),
        (1, &["MSET", "k2{t}", "2", "k1{t}", "2"]),
        (
            0,
            &["EVAL", "redis.call('get', 'k3{t}')", "2", "k1{t}", "k2{t}"],
        ),
        (1, &["MSET", "k2{t}", "3", "k1{t}", "3"]),
        (0, &["EVAL_RO", "redis.call('ping')", "2", "k1{t}", "k2{t}"]),
        (1, &["MSET", "k2{t}", "4", "k1{t}", "4"]),
        // OPTIN / OPTOUT flags as TRACKINGINFO shows them.
        (0, &["CLIENT", "TRACKING", "OFF"]),
        (0, &["CLIENT", "TRACKING", "ON", "OPTIN", "NOLOOP"]),
        (0, &["CLIENT", "CACHING", "YES"]),
        (0, &["CLIENT", "TRACKINGINFO"]),
        (0, &["CLIENT", "TRACKING", "OFF"]),
        (0, &["CLIENT", "TRACKING", "ON", "OPTOUT"]),
        (0, &["CLIENT", "TRACKINGINFO"]),
        (0, &["CLIENT", "CACHING", "NO"]),
        (0, &["CLIENT", "TRACKINGINFO"]),
        (0, &["CLIENT", "TRACKING", "OFF"]),
    ];
    for (on, args) in script {
        t.same(*on, args).await;
    }
    // A RESP3 redirect target that never subscribed, with replies off.
    t.hello(2, "3").await;
    let script: &[(usize, &[&str])] = &[
        (0, &["CLIENT", "TRACKING", "ON", "REDIRECT", "ID2"]),
        (0, &["GET", "foo"]),
    ];
    for (on, args) in script {
        t.same(*on, args).await;
    }
    // CLIENT REPLY OFF answers nothing: sent, not waited for.
    for c in [&mut t.redis[2], &mut t.stratus[2]] {
        c.send(&encode(&["CLIENT", "REPLY", "OFF"])).await;
    }
    let script: &[(usize, &[&str])] = &[
        (1, &["SET", "foo", "bar"]),
        (2, &["CLIENT", "REPLY", "ON"]),
        (0, &["CLIENT", "TRACKING", "OFF"]),
    ];
    for (on, args) in script {
        t.same(*on, args).await;
    }
    // RESP2: TRACKINGINFO's flags are an array.
    t.hello(0, "2").await;
    let script: &[(usize, &[&str])] = &[
        (
            0,
            &[
                "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "x", "PREFIX", "b",
            ],
        ),
        (0, &["CLIENT", "TRACKINGINFO"]),
        (0, &["CLIENT", "TRACKING", "OFF"]),
    ];
    for (on, args) in script {
        t.same(*on, args).await;
    }
}

/// A client whose REDIRECT target has gone is told so (RESP3), and CLIENT
/// TRACKINGINFO says `broken_redirect`, as Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_redirect_target_is_reported_as_redis_does() {
    let server = start_default().await;
    let mut t = Trio::new(server.resp_addr).await;
    t.hello(0, "3").await;
    let script: &[(usize, &[&str])] = &[
        (2, &["SUBSCRIBE", "__redis__:invalidate"]),
        (0, &["CLIENT", "TRACKING", "ON", "REDIRECT", "ID2"]),
        (0, &["GET", "key1"]),
    ];
    for (on, args) in script {
        t.same(*on, args).await;
    }
    let (r, s) = (t.redis.remove(2), t.stratus.remove(2));
    drop((r, s));
    // Both servers notice the close before the write.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for c in [&mut t.redis[1], &mut t.stratus[1]] {
        assert_eq!(c.cmd(&["SET", "key1", "2"]).await, ok());
    }
    let gone: i64 = t.stratus_ids[2].parse().expect("an id");
    let pushed = t.stratus[0].read().await;
    assert_eq!(
        pushed,
        Resp::Push(vec![
            Resp::Bulk(b"tracking-redir-broken".to_vec()),
            Resp::Int(gone)
        ])
    );
    let gone: i64 = t.redis_ids[2].parse().expect("an id");
    assert_eq!(
        t.redis[0].read().await,
        Resp::Push(vec![
            Resp::Bulk(b"tracking-redir-broken".to_vec()),
            Resp::Int(gone)
        ])
    );
    let info = |c: Resp| c.field("flags");
    let r = t.redis[0].cmd(&["CLIENT", "TRACKINGINFO"]).await;
    let s = t.stratus[0].cmd(&["CLIENT", "TRACKINGINFO"]).await;
    assert_eq!(info(s), info(r));
}

/// `tracking-table-max-keys` is per cache: lowering it invalidates the
/// keys past it (their clients told), and INFO counts what is tracked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracking_table_limit_invalidates_keys() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    c.cmd(&["HELLO", "3"]).await;
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "ON"]).await, ok());
    for i in 0..5 {
        c.cmd(&["GET", &format!("key{i}")]).await;
    }
    let info = c.cmd(&["INFO", "stats"]).await.text();
    assert!(info.contains("tracking_total_keys:5\r\n"), "{info}");
    assert!(info.contains("tracking_total_items:5\r\n"), "{info}");
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "tracking-table-max-keys", "2"])
            .await,
        ok()
    );
    let mut told = Vec::new();
    for _ in 0..3 {
        match c.read().await {
            Resp::Push(items) => told.push(items[1].clone()),
            other => panic!("expected an invalidation, got {other:?}"),
        }
    }
    assert_eq!(told.len(), 3);
    let info = c.cmd(&["INFO", "stats"]).await.text();
    assert!(info.contains("tracking_total_keys:2\r\n"), "{info}");
    let clients = c.cmd(&["INFO", "clients"]).await.text();
    assert!(clients.contains("tracking_clients:1\r\n"), "{clients}");
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "tracking-table-max-keys"]).await,
        Resp::Map(vec![(bulk("tracking-table-max-keys"), bulk("2"))])
    );
    // A flush empties the table even when nobody tracks any more.
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "OFF"]).await, ok());
    assert_eq!(c.cmd(&["FLUSHALL"]).await, ok());
    let info = c.cmd(&["INFO", "stats"]).await.text();
    assert!(info.contains("tracking_total_keys:0\r\n"), "{info}");
    assert!(info.contains("tracking_total_items:0\r\n"), "{info}");
}
