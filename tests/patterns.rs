//! Real-world usage patterns, end to end over TCP with the `redis` crate, the
//! way applications use a cache: sessions with sliding expiration, a
//! leaderboard, a sliding-window rate limiter in a pipeline, a distributed
//! lock released by a compare-and-delete script, an activity feed, unique
//! visitors with HyperLogLog, and a stream consumed by a consumer group.
//!
//! Each test runs on a cache of several partitions, so the keys of one
//! pattern live wherever their slots put them.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamPendingReply, StreamReadOptions, StreamReadReply};
use stratus::config::ServeConfig;
use stratus::server::Running;

async fn server() -> (Running, MultiplexedConnection) {
    let server = start(ServeConfig {
        initial_partitions: 4,
        ..ServeConfig::default()
    })
    .await;
    let con = redis_conn(server.resp_addr, false).await;
    (server, con)
}

/// A web session: a hash whose expiry slides forward on every access and
/// which disappears once the user stays idle longer than the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_hash_with_sliding_expiration() {
    let (server, mut con) = server().await;
    let key = "session:9f2c";
    let idle_timeout_ms = 800;
    let () = con
        .hset_multiple(key, &[("user_id", "42"), ("cart", "3"), ("theme", "dark")])
        .await
        .unwrap();
    let _: bool = con.pexpire(key, idle_timeout_ms).await.unwrap();
    // Each request reads the session, updates it and slides the expiry:
    // the session lives well past one timeout while requests keep coming.
    for page in 0..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let session: HashMap<String, String> = con.hgetall(key).await.unwrap();
        assert_eq!(session["user_id"], "42", "alive at request {page}");
        let _: i64 = con.hset(key, "last_page", page).await.unwrap();
        let _: bool = con.pexpire(key, idle_timeout_ms).await.unwrap();
        let ttl: i64 = con.pttl(key).await.unwrap();
        assert!(ttl > 0 && ttl <= idle_timeout_ms, "ttl {ttl}");
    }
    let session: HashMap<String, String> = con.hgetall(key).await.unwrap();
    assert_eq!(session.len(), 4);
    assert_eq!(session["last_page"], "5");
    // Idle past the timeout: gone.
    tokio::time::sleep(Duration::from_millis(idle_timeout_ms as u64 + 300)).await;
    let session: HashMap<String, String> = con.hgetall(key).await.unwrap();
    assert!(session.is_empty(), "{session:?}");
    let exists: bool = con.exists(key).await.unwrap();
    assert!(!exists);
    server.shutdown().await;
}

/// A game leaderboard: scores added and incremented, the top 10 with their
/// scores, and a player's rank.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaderboard_top_10_and_rank() {
    let (server, mut con) = server().await;
    let board = "leaderboard:season-7";
    let mut expected: HashMap<String, i64> = HashMap::new();
    for i in 0..50i64 {
        let player = format!("player:{i:02}");
        let score = (i * 37) % 101;
        let _: i64 = con.zadd(board, &player, score).await.unwrap();
        expected.insert(player, score);
    }
    // Matches played: increments.
    for (i, bonus) in [(3, 100), (17, 64), (3, 5), (42, 90), (8, 1)] {
        let player = format!("player:{i:02}");
        let new: f64 = con.zincr(board, &player, bonus).await.unwrap();
        *expected.get_mut(&player).unwrap() += bonus;
        assert_eq!(new as i64, expected[&player]);
    }
    // Expected order: score descending, then member descending (Redis's
    // ZREVRANGE order for equal scores).
    let mut ranking: Vec<(String, i64)> = expected.clone().into_iter().collect();
    ranking.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));

    let top: Vec<(String, f64)> = con.zrevrange_withscores(board, 0, 9).await.unwrap();
    assert_eq!(top.len(), 10);
    for (got, want) in top.iter().zip(&ranking) {
        assert_eq!(got.0, want.0);
        assert_eq!(got.1 as i64, want.1);
    }
    assert_eq!(top[0].0, "player:42", "39 + 90 beats 10 + 105");
    for probe in ["player:03", "player:42", "player:10", "player:49"] {
        let rank: Option<usize> = con.zrevrank(board, probe).await.unwrap();
        let want = ranking.iter().position(|(p, _)| p == probe);
        assert_eq!(rank, want, "{probe}");
    }
    let none: Option<usize> = con.zrevrank(board, "nobody").await.unwrap();
    assert_eq!(none, None);
    let card: usize = con.zcard(board).await.unwrap();
    assert_eq!(card, 50);
    server.shutdown().await;
}

/// One request through a sliding-window limiter, as one pipeline: drop the
/// entries older than the window, log this request, count, refresh the TTL.
/// Returns whether the request is admitted (at most `limit` per window).
async fn rate_limited(
    con: &mut MultiplexedConnection,
    key: &str,
    now_ms: i64,
    seq: u64,
    window_ms: i64,
    limit: usize,
) -> bool {
    let (count,): (usize,) = redis::pipe()
        .zrembyscore(key, 0, now_ms - window_ms)
        .ignore()
        .zadd(key, format!("{now_ms}-{seq}"), now_ms)
        .ignore()
        .zcard(key)
        .pexpire(key, window_ms)
        .ignore()
        .query_async(con)
        .await
        .unwrap();
    count <= limit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_rate_limiter_in_a_pipeline() {
    let (server, mut con) = server().await;
    let key = "ratelimit:api:client-7";
    let (window_ms, limit) = (1_000, 5);
    let start = 1_700_000_000_000i64;
    // Five requests within the window pass, the sixth is refused.
    for i in 0..limit as i64 {
        let now = start + i * 100;
        assert!(
            rate_limited(&mut con, key, now, i as u64, window_ms, limit).await,
            "request {i} admitted"
        );
    }
    assert!(
        !rate_limited(&mut con, key, start + 600, 99, window_ms, limit).await,
        "the sixth request within one window is refused"
    );
    // Once the window has slid past the first requests, requests pass again.
    let later = start + 1_350;
    assert!(rate_limited(&mut con, key, later, 100, window_ms, limit).await);
    let kept: usize = con.zcard(key).await.unwrap();
    assert_eq!(
        kept, 3,
        "the requests at 400, 600 (refused, still logged) and 1350 ms"
    );
    let ttl: i64 = con.pttl(key).await.unwrap();
    assert!(ttl > 0 && ttl <= window_ms, "ttl {ttl}");
    // Another client has its own window.
    assert!(
        rate_limited(
            &mut con,
            "ratelimit:api:client-8",
            start + 600,
            1,
            window_ms,
            limit
        )
        .await
    );
    server.shutdown().await;
}

/// A lock: SET NX PX to acquire, a compare-and-delete script to release, so
/// only the owner's token releases it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_lock_with_compare_and_delete_release() {
    let (server, mut con) = server().await;
    let release = redis::Script::new(
        r#"
        if redis.call("get", KEYS[1]) == ARGV[1] then
            return redis.call("del", KEYS[1])
        else
            return 0
        end
        "#,
    );
    let lock = "lock:invoice:1234";
    let acquire = |token: &'static str, ttl_ms: u64| {
        redis::cmd("SET")
            .arg(lock)
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .clone()
    };
    let got: Option<String> = acquire("owner-a", 10_000)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("OK"));
    let got: Option<String> = acquire("owner-b", 10_000)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got, None, "held by owner-a");
    // The wrong owner cannot release it; the right one can.
    let released: i64 = release
        .key(lock)
        .arg("owner-b")
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(released, 0);
    let holder: Option<String> = con.get(lock).await.unwrap();
    assert_eq!(holder.as_deref(), Some("owner-a"));
    let released: i64 = release
        .key(lock)
        .arg("owner-a")
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(released, 1);
    let released: i64 = release
        .key(lock)
        .arg("owner-a")
        .invoke_async(&mut con)
        .await
        .unwrap();
    assert_eq!(released, 0, "already released");
    // A crashed owner's lock expires and can be taken over.
    let got: Option<String> = acquire("owner-b", 200).query_async(&mut con).await.unwrap();
    assert_eq!(got.as_deref(), Some("OK"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got: Option<String> = acquire("owner-c", 10_000)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("OK"));
    let holder: Option<String> = con.get(lock).await.unwrap();
    assert_eq!(holder.as_deref(), Some("owner-c"));
    server.shutdown().await;
}

/// An activity feed: newest first, capped at 100 entries, paged with LRANGE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_feed_capped_with_ltrim() {
    let (server, mut con) = server().await;
    let feed = "feed:user:77";
    for i in 0..150 {
        let () = redis::pipe()
            .lpush(feed, format!("event-{i}"))
            .ignore()
            .ltrim(feed, 0, 99)
            .ignore()
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let len: usize = con.llen(feed).await.unwrap();
    assert_eq!(len, 100);
    let first_page: Vec<String> = con.lrange(feed, 0, 9).await.unwrap();
    let want: Vec<String> = (140..150).rev().map(|i| format!("event-{i}")).collect();
    assert_eq!(first_page, want);
    let last_page: Vec<String> = con.lrange(feed, 90, 99).await.unwrap();
    let want: Vec<String> = (50..60).rev().map(|i| format!("event-{i}")).collect();
    assert_eq!(last_page, want);
    let beyond: Vec<String> = con.lrange(feed, 100, 109).await.unwrap();
    assert!(beyond.is_empty());
    server.shutdown().await;
}

/// Unique visitors with HyperLogLog: 100,000 distinct visitors counted within
/// three standard errors (3 × 0.81%), duplicates not counted twice, and two
/// days merged into one estimate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_visitors_with_hyperloglog() {
    let (server, mut con) = server().await;
    let day1 = "{visitors}:2026-11-25";
    let day2 = "{visitors}:2026-11-26";
    let n = 100_000usize;
    let within = |estimate: usize, truth: usize| {
        let error = (estimate as f64 - truth as f64).abs() / truth as f64;
        assert!(
            error <= 3.0 * 0.0081,
            "estimate {estimate} for {truth}: error {:.3}%",
            error * 100.0
        );
    };
    for batch in (0..n).collect::<Vec<_>>().chunks(1000) {
        let ids: Vec<String> = batch.iter().map(|i| format!("visitor-{i}")).collect();
        let _: bool = con.pfadd(day1, &ids).await.unwrap();
    }
    let count: usize = con.pfcount(day1).await.unwrap();
    within(count, n);
    // The same visitors again change nothing.
    let ids: Vec<String> = (0..1000).map(|i| format!("visitor-{i}")).collect();
    let changed: bool = con.pfadd(day1, &ids).await.unwrap();
    assert!(!changed);
    let again: usize = con.pfcount(day1).await.unwrap();
    assert_eq!(again, count);
    // Day two: half returning visitors, half new; the union is 150,000.
    for batch in (n / 2..n + n / 2).collect::<Vec<_>>().chunks(1000) {
        let ids: Vec<String> = batch.iter().map(|i| format!("visitor-{i}")).collect();
        let _: bool = con.pfadd(day2, &ids).await.unwrap();
    }
    let both: usize = redis::cmd("PFCOUNT")
        .arg(day1)
        .arg(day2)
        .query_async(&mut con)
        .await
        .unwrap();
    within(both, n + n / 2);
    let () = redis::cmd("PFMERGE")
        .arg("{visitors}:week")
        .arg(day1)
        .arg(day2)
        .query_async(&mut con)
        .await
        .unwrap();
    let week: usize = con.pfcount("{visitors}:week").await.unwrap();
    assert_eq!(week, both);
    server.shutdown().await;
}

/// A work queue on a stream: producers XADD, a consumer group reads new
/// entries with `>`, acknowledges them, and nothing stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_consumer_group_reads_and_acks() {
    let (server, mut con) = server().await;
    let stream = "orders:events";
    let () = con
        .xgroup_create_mkstream(stream, "billing", "$")
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        let id: String = con
            .xadd(
                stream,
                "*",
                &[("order", format!("{i}")), ("amount", format!("{}", i * 10))],
            )
            .await
            .unwrap();
        ids.push(id);
    }
    // Two consumers share the work: 6 entries, then the remaining 4.
    let read = |consumer: &'static str, count: usize| {
        StreamReadOptions::default()
            .group("billing", consumer)
            .count(count)
    };
    let first: Option<StreamReadReply> = con
        .xread_options(&[stream], &[">"], &read("worker-1", 6))
        .await
        .unwrap();
    let second: Option<StreamReadReply> = con
        .xread_options(&[stream], &[">"], &read("worker-2", 100))
        .await
        .unwrap();
    let entries = |r: Option<StreamReadReply>| -> Vec<(String, String)> {
        r.expect("entries")
            .keys
            .into_iter()
            .flat_map(|k| k.ids)
            .map(|e| {
                let order: String =
                    redis::from_redis_value(e.map["order"].clone()).expect("order field");
                (e.id, order)
            })
            .collect()
    };
    let (first, second) = (entries(first), entries(second));
    assert_eq!(first.len(), 6);
    assert_eq!(second.len(), 4);
    let seen: Vec<String> = first
        .iter()
        .chain(&second)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(seen, ids, "each entry delivered once, in order");
    assert_eq!(first[0].1, "0");
    assert_eq!(second[3].1, "9");
    // Nothing new for either consumer.
    let none: Option<StreamReadReply> = con
        .xread_options(&[stream], &[">"], &read("worker-1", 10))
        .await
        .unwrap();
    assert!(none.is_none_or(|r| r.keys.iter().all(|k| k.ids.is_empty())));
    // Before acks: all ten pending; after: none.
    let pending: StreamPendingReply = con.xpending(stream, "billing").await.unwrap();
    assert_eq!(pending.count(), 10);
    let acked: usize = con.xack(stream, "billing", &ids[..6]).await.unwrap();
    assert_eq!(acked, 6);
    let acked: usize = con.xack(stream, "billing", &ids[6..]).await.unwrap();
    assert_eq!(acked, 4);
    let acked: usize = con.xack(stream, "billing", &ids).await.unwrap();
    assert_eq!(acked, 0, "acks are idempotent");
    let pending: StreamPendingReply = con.xpending(stream, "billing").await.unwrap();
    assert!(matches!(pending, StreamPendingReply::Empty), "{pending:?}");
    assert_eq!(pending.count(), 0);
    let len: usize = con.xlen(stream).await.unwrap();
    assert_eq!(len, 10, "acknowledged entries stay in the stream");
    server.shutdown().await;
}
