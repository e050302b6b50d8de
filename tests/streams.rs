//! Streams over real TCP, compared byte for byte with a real redis-server:
//! blocked XREAD/XREADGROUP when their key changes type, goes away or loses
//! its group, and approximate trims that follow stream-node-max-entries.

mod common;

use common::{Pair, Raw, Resp, bulk, err, start_default};

/// Sends `blocking` (which waits on `key`) on a new connection to each
/// server, waits until each counts it blocked (Stratus: past its first
/// attempt), runs `then` on both (replies compared), and returns the blocked
/// connections' replies, Redis's first.
async fn block_then(
    p: &mut Pair,
    server: &stratus::server::Running,
    _key: &str,
    blocking: &[&str],
    then: &[&[&str]],
) -> (Resp, Resp) {
    let mut on_redis = Raw::connect(p.redis_addr()).await;
    let mut on_stratus = Raw::connect(server.resp_addr).await;
    on_redis.send(&common::encode(blocking)).await;
    on_stratus.send(&common::encode(blocking)).await;
    let redis = p.redis_addr();
    common::eventually("blocked on Redis", || async move {
        let mut c = Raw::connect(redis).await;
        c.cmd(&["INFO", "clients"])
            .await
            .text()
            .contains("blocked_clients:1\r\n")
    })
    .await;
    common::wait_blocked(server.resp_addr, 1).await;
    p.script(then).await;
    (on_redis.read().await, on_stratus.read().await)
}

/// Redis 7.0 serves a blocked XREAD only from a stream: a key that turns
/// into another type (or goes away) leaves it waiting for the next entry,
/// while a blocked XREADGROUP fails as soon as its key or group is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_stream_reads_follow_their_key_like_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let xread = ["XREAD", "BLOCK", "20000", "STREAMS", "s1", "$"];
    // The key becomes a list inside a transaction, then a stream again.
    let (r, s) = block_then(
        &mut p,
        &server,
        "s1",
        &xread,
        &[
            &["MULTI"],
            &["XADD", "s1", "1-0", "old", "v"],
            &["DEL", "s1"],
            &["LPUSH", "s1", "foo"],
            &["EXEC"],
            &["SET", "s1", "str"],
            &["DEL", "s1"],
            &["XADD", "s1", "2-0", "new", "v"],
        ],
    )
    .await;
    assert_eq!(s, r);
    assert_eq!(s.items()[0].items()[1].items()[0].items()[0], bulk("2-0"));
    // The same stream named three times: served once, from the entries of
    // one transaction.
    let (r, s) = block_then(
        &mut p,
        &server,
        "s1",
        &[
            "XREAD", "BLOCK", "20000", "STREAMS", "s1", "s1", "s1", "$", "$", "$",
        ],
        &[
            &["MULTI"],
            &["XADD", "s1", "3-0", "one", "v"],
            &["XADD", "s1", "4-0", "two", "v"],
            &["EXEC"],
        ],
    )
    .await;
    assert_eq!(s, r);

    let group = [
        "XREADGROUP",
        "GROUP",
        "g",
        "alice",
        "BLOCK",
        "0",
        "STREAMS",
        "s2",
        ">",
    ];
    let setup: &[&[&str]] = &[
        &["DEL", "s2"],
        &["XADD", "s2", "1-0", "f", "v"],
        &["XGROUP", "CREATE", "s2", "g", "$"],
    ];
    let gone = err("UNBLOCKED the stream key no longer exists");
    for change in [
        &[&["DEL", "s2"][..]][..],
        &[&["SET", "s2", "v"][..]][..],
        &[
            &["MULTI"][..],
            &["DEL", "s2"],
            &["SADD", "s2", "m"],
            &["EXEC"],
        ][..],
        &[&["FLUSHALL"][..]][..],
    ] {
        p.script(setup).await;
        let (r, s) = block_then(&mut p, &server, "s2", &group, change).await;
        assert_eq!(s, r, "after {change:?}");
        assert_eq!(s, gone, "after {change:?}");
    }
    // The group destroyed, or the key replaced by a stream without it.
    p.script(setup).await;
    let (r, s) = block_then(
        &mut p,
        &server,
        "s2",
        &group,
        &[&["XGROUP", "DESTROY", "s2", "g"]],
    )
    .await;
    assert_eq!(s, r);
    assert_eq!(
        s,
        err("NOGROUP the consumer group this client was blocked on no longer exists")
    );
    p.script(setup).await;
    let (r, s) = block_then(
        &mut p,
        &server,
        "s2",
        &group,
        &[
            &["MULTI"],
            &["DEL", "s2"],
            &["XADD", "s2", "9-0", "f", "v"],
            &["EXEC"],
        ],
    )
    .await;
    assert_eq!(s, r);
    assert!(s.text().starts_with("NOGROUP"), "{s:?}");
    // Still a stream with its group: the new entry is delivered.
    p.script(setup).await;
    let (r, s) = block_then(
        &mut p,
        &server,
        "s2",
        &group,
        &[&["XADD", "s2", "3-0", "f", "w"]],
    )
    .await;
    assert_eq!(s, r);
    assert_eq!(s.items()[0].items()[1].items()[0].items()[0], bulk("3-0"));
    server.shutdown().await;
}

/// Adds entries `1-0` to `n-0` to `key` on both servers.
async fn fill_stream(p: &mut Pair, key: &str, n: u64) {
    for i in 1..=n {
        p.same(&["XADD", key, &format!("{i}-0"), "xitem", "v"])
            .await;
    }
}

/// `~` trims remove whole nodes of stream-node-max-entries entries, at most
/// LIMIT entries (by default 100 nodes' worth), as Redis's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approximate_trims_follow_stream_node_max_entries() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.same(&["CONFIG", "SET", "stream-node-max-entries", "10"])
        .await;
    fill_stream(&mut p, "a", 100).await;
    p.script(&[
        &[
            "XADD", "a", "MAXLEN", "~", "55", "LIMIT", "30", "101-0", "xitem", "v",
        ],
        &["XLEN", "a"],
        &[
            "XADD", "a", "MAXLEN", "~", "55", "LIMIT", "30", "102-0", "xitem", "v",
        ],
        &["XLEN", "a"],
        &["XTRIM", "a", "MINID", "~", "95-0"],
        &["XRANGE", "a", "-", "+", "COUNT", "1"],
    ])
    .await;
    p.same(&["CONFIG", "SET", "stream-node-max-entries", "1"])
        .await;
    fill_stream(&mut p, "b", 102).await;
    p.script(&[
        &["XTRIM", "b", "MAXLEN", "~", "1"],
        &["XLEN", "b"],
        &["XTRIM", "b", "MAXLEN", "1", "LIMIT", "30"],
    ])
    .await;
    p.same(&["CONFIG", "SET", "stream-node-max-entries", "2"])
        .await;
    fill_stream(&mut p, "c", 3).await;
    p.script(&[
        &["XTRIM", "c", "MAXLEN", "~", "0", "LIMIT", "1"],
        &["XTRIM", "c", "MAXLEN", "~", "0", "LIMIT", "2"],
        &["XLEN", "c"],
        &["CONFIG", "SET", "stream-node-max-entries", "100"],
    ])
    .await;
}

/// XAUTOCLAIM checks its arguments before the key's type, as Redis does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_errors_come_in_redis_order() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    p.script(&[
        &["SET", "str", "x"],
        &["XAUTOCLAIM", "str", "g", "c", "x", "0"],
        &["XAUTOCLAIM", "str", "g", "c", "0", "bad"],
        &["XAUTOCLAIM", "str", "g", "c", "0", "0", "COUNT", "0"],
        &["XAUTOCLAIM", "str", "g", "c", "0", "0", "FOO"],
        &["XAUTOCLAIM", "str", "g", "c", "0", "0"],
        &["XAUTOCLAIM", "nokey", "g", "c", "0", "0"],
        &["XCLAIM", "str", "g", "c", "0", "0"],
        &["XCLAIM", "nokey", "g", "c", "x", "0"],
    ])
    .await;
}

/// A stream DUMPed by Redis 5 (before groups kept a read counter) loads with
/// the counter estimated, as Redis 7.0 loads it (the suite's payload).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_stream_payload_loads_like_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let payload: &[u8] = b"\x0F\x01\x10\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\xC3\x40\x4A\x40\x57\x16\x57\x00\x00\x00\x23\x00\x02\x01\x04\x01\x01\x01\x84\x64\x61\x74\x61\x05\x00\x01\x03\x01\x00\x20\x01\x03\x81\x61\x02\x04\x20\x0A\x00\x01\x40\x0A\x00\x62\x60\x0A\x00\x02\x40\x0A\x00\x63\x60\x0A\x40\x22\x01\x81\x64\x20\x0A\x40\x39\x20\x0A\x00\x65\x60\x0A\x00\x05\x40\x0A\x00\x66\x20\x0A\x00\xFF\x02\x06\x00\x02\x02\x67\x31\x05\x00\x04\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x3E\xF7\x83\x43\x7A\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x3E\xF7\x83\x43\x7A\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x3E\xF7\x83\x43\x7A\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x3E\xF7\x83\x43\x7A\x01\x00\x00\x01\x01\x03\x63\x31\x31\x3E\xF7\x83\x43\x7A\x01\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x02\x67\x32\x00\x00\x00\x00\x09\x00\x3D\x52\xEF\x68\x67\x52\x1D\xFA";
    p.same(&[&b"RESTORE"[..], &b"x"[..], &b"0"[..], payload])
        .await;
    p.same(&["XINFO", "STREAM", "x", "FULL"]).await;
    p.same(&["XINFO", "GROUPS", "x"]).await;
}
