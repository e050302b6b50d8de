//! MULTI/EXEC/DISCARD/WATCH/UNWATCH over real TCP: Redis's replies and
//! errors (compared with a real redis-server), atomicity within a slot, and
//! optimistic locking under contention.

mod common;

use common::{Pair, Raw, Resp, bulk, encode, err, eventually, int, ok, redis_conn, start_default};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_answer_like_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["MULTI"],
        &["SET", "{t}a", "1"],
        &["INCR", "{t}a"],
        &["GET", "{t}a"],
        &["LPUSH", "{t}a", "x"],
        &["EXEC"],
        &["EXEC"],
        &["DISCARD"],
        &["MULTI"],
        &["MULTI"],
        &["SET", "{t}b", "2"],
        &["DISCARD"],
        &["GET", "{t}b"],
        &["MULTI"],
        &["SET", "{t}c", "1"],
        &["NOSUCHCOMMAND"],
        &["EXEC"],
        &["GET", "{t}c"],
        &["MULTI"],
        &["GET"],
        &["EXEC"],
        &["MULTI"],
        &["PING"],
        &["ECHO", "hi"],
        &["EXEC"],
        &["MULTI"],
        &["WATCH", "{t}a"],
        &["DISCARD"],
        &["MULTI"],
        &["EXEC"],
    ])
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_aborts_exec_when_another_client_writes_the_key() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let mut other = Raw::connect(server.resp_addr).await;
    let mut other_redis = Raw::connect(p.redis_addr()).await;
    assert_eq!(p.same(&["SET", "{w}k", "1"]).await, ok());
    assert_eq!(p.same(&["WATCH", "{w}k"]).await, ok());
    // Another client writes the watched key on Stratus (and on Redis, to compare).
    assert_eq!(other.cmd(&["SET", "{w}k", "2"]).await, ok());
    other_redis.cmd(&["SET", "{w}k", "2"]).await;
    assert_eq!(p.same(&["MULTI"]).await, ok());
    assert_eq!(
        p.same(&["SET", "{w}k", "3"]).await,
        Resp::Simple("QUEUED".into())
    );
    let (r, s) = p.both(&["EXEC"]).await;
    assert_eq!(s, r, "null reply: the transaction did not run");
    assert_eq!(p.same(&["GET", "{w}k"]).await, bulk("2"));
    // Without a write in between, the watched transaction runs.
    assert_eq!(p.same(&["WATCH", "{w}k"]).await, ok());
    assert_eq!(p.same(&["MULTI"]).await, ok());
    p.same(&["INCR", "{w}k"]).await;
    assert_eq!(p.same(&["EXEC"]).await, Resp::Array(vec![int(3)]));
    // UNWATCH forgets: a later write does not abort.
    assert_eq!(p.same(&["WATCH", "{w}k"]).await, ok());
    assert_eq!(p.same(&["UNWATCH"]).await, ok());
    assert_eq!(other.cmd(&["SET", "{w}k", "9"]).await, ok());
    other_redis.cmd(&["SET", "{w}k", "9"]).await;
    assert_eq!(p.same(&["MULTI"]).await, ok());
    p.same(&["INCR", "{w}k"]).await;
    assert_eq!(p.same(&["EXEC"]).await, Resp::Array(vec![int(10)]));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_must_stay_in_one_slot() {
    let server = start_default().await;
    let mut raw = Raw::connect(server.resp_addr).await;
    let crossslot = err("CROSSSLOT Keys in request don't hash to the same slot");
    assert_eq!(raw.cmd(&["MULTI"]).await, ok());
    assert_eq!(
        raw.cmd(&["SET", "a", "1"]).await,
        Resp::Simple("QUEUED".into())
    );
    assert_eq!(raw.cmd(&["SET", "b", "1"]).await, crossslot);
    assert_eq!(
        raw.cmd(&["EXEC"]).await,
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(raw.cmd(&["EXISTS", "a"]).await, int(0), "nothing ran");
    // A watched key must share the transaction's slot.
    assert_eq!(raw.cmd(&["WATCH", "b"]).await, ok());
    assert_eq!(raw.cmd(&["MULTI"]).await, ok());
    raw.cmd(&["SET", "a", "1"]).await;
    assert_eq!(raw.cmd(&["EXEC"]).await, crossslot);
    server.shutdown().await;
}

/// Optimistic locking under contention: clients increment one counter with
/// WATCH/GET/MULTI/SET/EXEC, retrying on a null EXEC. No increment is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_makes_read_modify_write_safe_under_contention() {
    let server = start_default().await;
    let addr = server.resp_addr;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        tasks.push(tokio::spawn(async move {
            let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
            let mut c = client
                .get_multiplexed_async_connection()
                .await
                .expect("connect");
            let mut retries = 0;
            for _ in 0..50 {
                loop {
                    // A dedicated connection per attempt keeps WATCH state per client.
                    let mut c2 = client
                        .get_multiplexed_async_connection()
                        .await
                        .expect("connect");
                    let () = redis::cmd("WATCH")
                        .arg("counter")
                        .query_async(&mut c2)
                        .await
                        .expect("watch");
                    let v: Option<i64> = redis::cmd("GET")
                        .arg("counter")
                        .query_async(&mut c2)
                        .await
                        .expect("get");
                    let r: Option<(String,)> = redis::pipe()
                        .atomic()
                        .cmd("SET")
                        .arg("counter")
                        .arg(v.unwrap_or(0) + 1)
                        .query_async(&mut c2)
                        .await
                        .expect("exec");
                    if r.is_some() {
                        break;
                    }
                    retries += 1;
                }
            }
            let _: Option<i64> = redis::cmd("GET")
                .arg("counter")
                .query_async(&mut c)
                .await
                .expect("get");
            retries
        }));
    }
    let mut retries = 0;
    for t in tasks {
        retries += t.await.expect("task");
    }
    let mut c = redis_conn(addr, false).await;
    let total: i64 = redis::cmd("GET")
        .arg("counter")
        .query_async(&mut c)
        .await
        .expect("get");
    assert_eq!(total, 300, "lost increments ({retries} retries)");
    server.shutdown().await;
}

/// FLUSHDB and FLUSHALL touch the watched keys that exist, and only those;
/// a watched key that expires (the active cycle) or is evicted counts as
/// touched — as Redis's `touchAllWatchedKeysInDb` and `signalModifiedKey`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_and_expiries_touch_watched_keys_as_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    for flush in ["FLUSHALL", "FLUSHDB"] {
        p.script(&[
            &["DEL", "x"],
            &["WATCH", "x"],
            &[flush],
            &["MULTI"],
            &["PING"],
            &["EXEC"],
            &["SET", "x", "30"],
            &["WATCH", "x"],
            &[flush],
            &["MULTI"],
            &["PING"],
            &["EXEC"],
        ])
        .await;
    }
    p.script(&[
        &["SET", "x", "foo"],
        &["PEXPIRE", "x", "50"],
        &["WATCH", "x"],
    ])
    .await;
    // Wait until both have deleted it (nothing reads it meanwhile).
    common::eventually("the key expires on both", || {
        let (r, s) = (p.redis_addr(), server.resp_addr);
        async move {
            let mut r = Raw::connect(r).await;
            let mut s = Raw::connect(s).await;
            r.cmd(&["DBSIZE"]).await == int(0) && s.cmd(&["DBSIZE"]).await == int(0)
        }
    })
    .await;
    p.script(&[&["MULTI"], &["PING"], &["EXEC"]]).await;
}

/// SMOVE of a member the destination already has leaves a WATCH on the
/// destination intact (only the source changed), as Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smove_touches_the_destination_only_when_it_adds() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let mut other_redis = Raw::connect(p.redis_addr()).await;
    let mut other_stratus = Raw::connect(server.resp_addr).await;
    p.script(&[
        &["SADD", "{t}src", "a", "b"],
        &["SADD", "{t}dst", "a"],
        &["WATCH", "{t}dst"],
        &["MULTI"],
        &["SADD", "{t}dst", "c"],
    ])
    .await;
    let smove = ["SMOVE", "{t}src", "{t}dst", "a"];
    assert_eq!(other_redis.cmd(&smove).await, int(1));
    assert_eq!(other_stratus.cmd(&smove).await, int(1));
    p.script(&[
        &["EXEC"],
        &["SCARD", "{t}dst"],
        &["WATCH", "{t}src"],
        &["MULTI"],
    ])
    .await;
    let smove = ["SMOVE", "{t}src", "{t}dst", "b"];
    assert_eq!(other_redis.cmd(&smove).await, int(1));
    assert_eq!(other_stratus.cmd(&smove).await, int(1));
    p.script(&[&["PING"], &["EXEC"]]).await;
}

const BUSY: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

/// While a script holds the partition, a command queued in MULTI is refused
/// with BUSY and dooms the transaction; EXEC itself then says why it
/// discarded it (BUSY while the script runs, "previous errors" after), and
/// nothing of the transaction runs — as Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_meeting_a_busy_script_is_discarded() {
    let server = start_default().await;
    let mut r = Raw::connect(server.resp_addr).await;
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "lua-time-limit", "10"]).await,
        ok()
    );
    for kill_first in [false, true] {
        assert_eq!(r.cmd(&["SET", "xx", "1"]).await, ok());
        let mut tx = Raw::connect(server.resp_addr).await;
        assert_eq!(tx.cmd(&["MULTI"]).await, ok());
        assert_eq!(tx.cmd(&["INCR", "xx"]).await, Resp::Simple("QUEUED".into()));
        // On xx's partition (a keyless script runs on slot 0's).
        let mut runner = Raw::connect(server.resp_addr).await;
        runner
            .send(&encode(&["EVAL", "while true do end", "1", "xx"]))
            .await;
        let addr = server.resp_addr;
        eventually("the script is busy", || async move {
            Raw::connect(addr).await.cmd(&["GET", "xx"]).await == err(BUSY)
        })
        .await;
        assert_eq!(tx.cmd(&["INCR", "xx"]).await, err(BUSY));
        if kill_first {
            assert_eq!(r.cmd(&["SCRIPT", "KILL"]).await, ok());
            assert!(runner.read().await.is_error());
            assert_eq!(
                tx.cmd(&["EXEC"]).await,
                err("EXECABORT Transaction discarded because of previous errors.")
            );
        } else {
            assert_eq!(
                tx.cmd(&["EXEC"]).await,
                err(&format!(
                    "EXECABORT Transaction discarded because of: {BUSY}"
                ))
            );
            assert_eq!(r.cmd(&["SCRIPT", "KILL"]).await, ok());
            assert!(runner.read().await.is_error());
        }
        assert_eq!(r.cmd(&["GET", "xx"]).await, bulk("1"));
        assert_eq!(tx.cmd(&["PING", "asdf"]).await, bulk("asdf"));
    }
}
