//! Memory stays bounded under abuse, and abusive clients do not stall others:
//! bulk headers that promise more than arrives, clients that pipeline without
//! reading (output-buffer limit), slow and half-open connections.
//!
//! The server runs in this process, so its memory is this process's VmRSS.
//! Tests that measure it hold [`MEMORY`] so they do not measure each other.

mod common;

use std::time::{Duration, Instant};

use common::*;
use stratus::config::ServeConfig;
use tokio::io::AsyncWriteExt;

static MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: u64 = 1024 * 1024;
/// Slack allowed on RSS: allocator noise and this test's own buffers.
const SLACK: u64 = 50 * MIB;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_headers_promising_500_mib_allocate_nothing_ahead() {
    let _mem = MEMORY.lock().await;
    let server = start_default().await;
    let mut probe = Raw::connect(server.resp_addr).await;
    assert_eq!(probe.cmd(&["PING"]).await, simple("PONG"));
    let baseline = rss_bytes();
    let baseline_vm = vm_size_bytes();

    // Eight connections each promise a 500 MiB value and send a few bytes.
    let mut liars = Vec::new();
    for _ in 0..8 {
        let mut c = Raw::connect(server.resp_addr).await;
        c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$524288000\r\nabcdef")
            .await;
        liars.push(c);
    }
    // And fifty promise 3,999 arguments that never come.
    let mut counters = Vec::new();
    for _ in 0..50 {
        let mut c = Raw::connect(server.resp_addr).await;
        c.send(b"*3999\r\n$3\r\nDEL\r\n").await;
        counters.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // They are incomplete requests, not errors: the connections stay open.
    for c in liars.iter_mut().chain(counters.iter_mut()) {
        c.assert_silent(Duration::from_millis(20)).await;
    }
    assert_eq!(probe.cmd(&["PING"]).await, simple("PONG"));
    let grown = rss_bytes().saturating_sub(baseline);
    assert!(
        grown < SLACK,
        "RSS grew by {} MiB for 8 x 500 MiB promised",
        grown / MIB
    );
    // Not even reserved (untouched reservations would not show in RSS).
    let reserved = vm_size_bytes().saturating_sub(baseline_vm);
    assert!(
        reserved < 1024 * MIB,
        "address space grew by {} MiB for 8 x 500 MiB promised",
        reserved / MIB
    );

    // Bytes that do arrive are buffered, and only those.
    let chunk = vec![b'x'; 1024 * 1024];
    for _ in 0..8 {
        liars[0].send(&chunk).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(probe.cmd(&["PING"]).await, simple("PONG"));
    let grown = rss_bytes().saturating_sub(baseline);
    assert!(
        grown < SLACK,
        "RSS grew by {} MiB after 8 MiB of a 500 MiB value arrived",
        grown / MIB
    );
    liars[0].assert_silent(Duration::from_millis(20)).await;

    // Closing the connections releases their buffers; the server is fine.
    drop(liars);
    drop(counters);
    assert_eq!(probe.cmd(&["DBSIZE"]).await, int(0));
    server.shutdown().await;
}

/// A client that pipelines `GET bigkey` without reading stops being served
/// once its pending replies pass `output_buffer_limit`, and is disconnected
/// when it has read nothing for `output_buffer_soft_secs` above the soft
/// limit; meanwhile another client is served, and the server's memory stays
/// bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected_at_the_output_buffer_limit() {
    let _mem = MEMORY.lock().await;
    let server = start(ServeConfig {
        output_buffer_limit: 1024 * 1024,
        output_buffer_soft_limit: 512 * 1024,
        output_buffer_soft_secs: 1,
        ..ServeConfig::default()
    })
    .await;
    let value = vec![b'v'; 256 * 1024];
    let mut good = Raw::connect(server.resp_addr).await;
    assert_eq!(
        good.cmd(&[b"SET".as_slice(), b"bigkey", &value]).await,
        ok()
    );
    // A client that reads may pipeline replies up to the limit.
    let mut three = Vec::new();
    for _ in 0..3 {
        three.extend(encode(&["GET", "bigkey"]));
    }
    good.send(&three).await;
    for _ in 0..3 {
        assert_eq!(good.read().await, Resp::Bulk(value.clone()));
    }
    let baseline = rss_bytes();

    let requests = 4000;
    let mut abuser = tokio::net::TcpStream::connect(server.resp_addr)
        .await
        .unwrap();
    let one = encode(&["GET", "bigkey"]);
    let mut all = Vec::with_capacity(one.len() * requests);
    for _ in 0..requests {
        all.extend_from_slice(&one);
    }
    // Write everything (the server keeps reading), never read.
    let writer = tokio::spawn(async move {
        for part in all.chunks(16 * 1024) {
            if abuser.write_all(part).await.is_err() {
                break; // disconnected while still writing
            }
        }
        abuser
    });
    // Meanwhile the other client is served.
    let start = Instant::now();
    for _ in 0..20 {
        assert_eq!(
            good.cmd(&["GET", "bigkey"]).await,
            Resp::Bulk(value.clone())
        );
        assert_eq!(good.cmd(&["PING"]).await, simple("PONG"));
    }
    assert!(start.elapsed() < DEADLINE);
    let abuser = tokio::time::timeout(DEADLINE, writer)
        .await
        .expect("the abuser's writes do not hang")
        .unwrap();
    let grown = rss_bytes().saturating_sub(baseline);
    assert!(
        grown < SLACK,
        "RSS grew by {} MiB with {} MiB of replies requested",
        grown / MIB,
        requests / 4
    );

    // Having read nothing for longer than the soft limit's time, the abuser
    // finds its connection closed long before all replies came.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut abuser = Raw::from_stream(abuser);
    let mut replies = 0usize;
    let outcome = loop {
        match abuser.read_timeout(DEADLINE).await {
            Read::Reply(r) => {
                assert_eq!(r, Resp::Bulk(value.clone()));
                replies += 1;
            }
            other => break other,
        }
    };
    assert_eq!(outcome, Read::Closed, "after {replies} replies");
    // At most the limit (1 MiB) plus what the kernel's socket buffers held
    // (generously 32 MiB) ever left the server: 4 + 128 replies of 256 KiB.
    assert!(
        replies <= 132,
        "{replies} of {requests} replies delivered past a 1 MiB limit"
    );
    // The server goes on.
    assert_eq!(good.cmd(&["PING"]).await, simple("PONG"));
    let mut fresh = Raw::connect(server.resp_addr).await;
    assert_eq!(fresh.cmd(&["STRLEN", "bigkey"]).await, int(256 * 1024));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_half_open_clients_do_not_stall_others() {
    let server = start_default().await;
    let addr = server.resp_addr;
    // Half-open requests: a frame begun and never finished.
    let mut stalled = Vec::new();
    for i in 0..100 {
        let mut c = Raw::connect(addr).await;
        let partial: &[u8] = match i % 4 {
            0 => b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc",
            1 => b"*3\r\n$3\r\nSET",
            2 => b"SET k v",
            _ => b"*",
        };
        c.send(partial).await;
        stalled.push(c);
    }
    // Silent connections that never send a byte.
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Clients that send commands and never read the (small) replies.
    let mut deaf = Vec::new();
    for _ in 0..10 {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut pings = Vec::new();
        for _ in 0..1000 {
            pings.extend(encode(&["PING"]));
        }
        c.write_all(&pings).await.unwrap();
        deaf.push(c);
    }
    // A slow client: one byte every 5 ms.
    let slow = tokio::spawn(async move {
        let mut c = Raw::connect(addr).await;
        for b in encode(&["SET", "slow", "finally"]) {
            c.send(&[b]).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        c.read().await
    });

    // Meanwhile a normal client works at full speed.
    let start = Instant::now();
    let mut good = Raw::connect(addr).await;
    for i in 0..300 {
        assert_eq!(good.cmd(&["SET", &format!("k{i}"), "v"]).await, ok());
        assert_eq!(good.cmd(&["GET", &format!("k{i}")]).await, bulk("v"));
    }
    let mut c3 = redis_conn(addr, true).await;
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut c3).await.unwrap();
    assert!(n >= 300);
    assert!(
        start.elapsed() < DEADLINE,
        "normal traffic took {:?}",
        start.elapsed()
    );
    assert_eq!(slow.await.unwrap(), ok());
    assert_eq!(good.cmd(&["GET", "slow"]).await, bulk("finally"));
    // The stalled ones are still waiting, not errored.
    for c in stalled.iter_mut().take(10) {
        c.assert_silent(Duration::from_millis(10)).await;
    }
    // Shutdown is not held up by any of them.
    tokio::time::timeout(DEADLINE, server.shutdown())
        .await
        .expect("shutdown completes with stalled clients connected");
    drop((silent, deaf));
}
