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
