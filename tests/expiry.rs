//! Expiry: expired keys are never returned (lazy expiry on access), and an
//! active cycle reclaims the memory of expired keys that are never read again
//! within seconds, also in a large keyspace of keys that never expire.

mod common;

use std::time::Duration;

use common::*;

fn info_value(info: &str, key: &str) -> Option<String> {
    info.split("\r\n")
        .find_map(|l| l.strip_prefix(&format!("{key}:")).map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_keys_are_never_returned() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    assert_eq!(c.cmd(&["SET", "s", "v", "PX", "1000"]).await, ok());
    assert_eq!(c.cmd(&["HSET", "h", "f", "v"]).await, int(1));
    assert_eq!(c.cmd(&["PEXPIRE", "h", "1000"]).await, int(1));
    assert_eq!(c.cmd(&["GET", "s"]).await, bulk("v"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(c.cmd(&["GET", "s"]).await, Resp::Nil);
    assert_eq!(c.cmd(&["HGET", "h", "f"]).await, Resp::Nil);
    assert_eq!(c.cmd(&["EXISTS", "s", "h"]).await, int(0));
    assert_eq!(c.cmd(&["TTL", "s"]).await, int(-2));
    assert_eq!(c.cmd(&["TYPE", "h"]).await, simple("none"));
    assert_eq!(c.cmd(&["SETNX", "s", "new"]).await, int(1));
    assert_eq!(c.cmd(&["TTL", "s"]).await, int(-1));
    assert_eq!(c.cmd(&["DBSIZE"]).await, int(1));
    server.shutdown().await;
}

/// Many keys with short TTLs that nobody reads again: the active cycle
/// deletes them all and their bytes are released, within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_expiry_reclaims_keys_never_read_again() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    let n = 20_000;
    let value = "x".repeat(100);
    let mut batch = Vec::new();
    for i in 0..n {
        // Long enough that a loaded machine still finds them stored below
        // (20k SETs can take most of a second there), short enough for
        // `eventually`'s deadline.
        let ttl = 2_000 + (i % 500);
        batch.extend(encode(&[
            "SET",
            &format!("vol:{i}"),
            &value,
            "PX",
            &ttl.to_string(),
        ]));
    }
    c.send(&batch).await;
    for _ in 0..n {
        assert_eq!(c.read().await, ok());
    }
    let cache = server.registry.get("default").unwrap();
    let before = cache.pool.totals();
    assert!(before.keys > 0 && before.used_bytes > 0);

    // Only DBSIZE / INFO (which read no key) until everything is gone.
    let addr = server.resp_addr;
    eventually("DBSIZE drops to 0 without reads", || async move {
        let mut c = Raw::connect(addr).await;
        c.cmd(&["DBSIZE"]).await == int(0)
    })
    .await;
    let after = cache.pool.totals();
    assert_eq!(after.keys, 0);
    assert_eq!(after.volatile_keys, 0);
    assert_eq!(after.used_bytes, 0, "bytes of expired keys are released");
    let info = c.cmd(&["INFO"]).await.text();
    assert_eq!(
        info_value(&info, "expired_keys").as_deref(),
        Some(&*n.to_string())
    );
    assert_eq!(
        info_value(&info, "used_memory_dataset").as_deref(),
        Some("0")
    );
    assert!(info_value(&info, "db0").is_none(), "{info}");
    assert_eq!(info_value(&info, "keyspace_hits").as_deref(), Some("0"));
    assert_eq!(info_value(&info, "keyspace_misses").as_deref(), Some("0"));
    server.shutdown().await;
}

/// Expired keys are found without walking the keyspace: with many more keys
/// that never expire, the volatile ones still go within seconds and the
/// others stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_expiry_works_in_a_large_persistent_keyspace() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    let persistent = 100_000;
    let volatile = 10_000;
    let mut batch = Vec::new();
    for chunk in 0..(persistent / 1000) {
        let mut args = vec!["MSET".to_string()];
        for i in 0..1000 {
            args.push(format!("keep:{}", chunk * 1000 + i));
            args.push("v".into());
        }
        batch.extend(encode(&args));
    }
    for i in 0..volatile {
        batch.extend(encode(&["SET", &format!("vol:{i}"), "v", "PX", "300"]));
    }
    c.send(&batch).await;
    for _ in 0..(persistent / 1000 + volatile) {
        assert_eq!(c.read().await, ok());
    }
    let cache = server.registry.get("default").unwrap();
    let target = persistent;
    let probe = cache.clone();
    eventually("the volatile keys are reclaimed", || {
        let keys = probe.pool.totals().keys;
        async move { keys == target }
    })
    .await;
    let totals = cache.pool.totals();
    assert_eq!(totals.volatile_keys, 0);
    assert_eq!(c.cmd(&["DBSIZE"]).await, int(persistent as i64));
    assert_eq!(c.cmd(&["GET", "keep:99999"]).await, bulk("v"));
    // The server stays responsive throughout.
    let mut other = Raw::connect(server.resp_addr).await;
    assert_eq!(other.cmd(&["PING"]).await, simple("PONG"));
    server.shutdown().await;
}

/// Deadlines changed after they were set (PERSIST, overwrite, PEXPIRE) are
/// honoured by the active cycle: persisted and overwritten keys stay past
/// their first deadline, re-armed keys go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_expiry_follows_changed_deadlines() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    let first_deadline = std::time::Instant::now() + Duration::from_millis(1500);
    let mut batch = Vec::new();
    for i in 0..100 {
        batch.extend(encode(&["SET", &format!("p:{i}"), "v", "PX", "1500"]));
        batch.extend(encode(&["SET", &format!("o:{i}"), "v", "PX", "1500"]));
        batch.extend(encode(&["SET", &format!("r:{i}"), "v"]));
    }
    for i in 0..100 {
        batch.extend(encode(&["PERSIST", &format!("p:{i}")]));
        batch.extend(encode(&["SET", &format!("o:{i}"), "w"]));
        batch.extend(encode(&["PEXPIRE", &format!("r:{i}"), "200"]));
    }
    c.send(&batch).await;
    for _ in 0..100 {
        for _ in 0..3 {
            assert_eq!(c.read().await, ok());
        }
    }
    for _ in 0..100 {
        assert_eq!(c.read().await, int(1), "PERSIST");
        assert_eq!(c.read().await, ok());
        assert_eq!(c.read().await, int(1), "PEXPIRE");
    }
    let cache = server.registry.get("default").unwrap();
    eventually("the re-armed keys are reclaimed", || {
        let keys = cache.pool.totals().keys;
        async move { keys == 200 }
    })
    .await;
    // Past the first deadline, the stale ones must not have removed anything.
    tokio::time::sleep_until((first_deadline + Duration::from_millis(500)).into()).await;
    assert_eq!(c.cmd(&["DBSIZE"]).await, int(200));
    assert_eq!(c.cmd(&["EXISTS", "p:5", "o:5", "r:5"]).await, int(2));
    assert_eq!(c.cmd(&["GET", "o:7"]).await, bulk("w"));
    assert_eq!(c.cmd(&["TTL", "p:9"]).await, int(-1));
    server.shutdown().await;
}
