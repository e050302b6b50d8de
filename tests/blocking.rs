//! Blocking commands over real TCP: BLPOP, BRPOP, BLMOVE, XREAD and
//! XREADGROUP with BLOCK wake when another connection writes, honour their
//! timeouts, and a client that disconnects while blocked leaves cleanly.

mod common;

use std::time::{Duration, Instant};

use common::{Pair, Raw, Resp, bulk, err, start_default};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blpop_wakes_when_another_connection_pushes() {
    let server = start_default().await;
    let addr = server.resp_addr;
    let waiter = tokio::spawn(async move {
        let mut raw = Raw::connect(addr).await;
        let started = Instant::now();
        let reply = raw.cmd(&["BLPOP", "{q}empty", "{q}jobs", "10"]).await;
        (reply, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut pusher = Raw::connect(addr).await;
    assert_eq!(
        pusher.cmd(&["RPUSH", "{q}jobs", "job-1", "job-2"]).await,
        Resp::Int(2)
    );
    let (reply, waited) = waiter.await.expect("waiter");
    assert_eq!(reply, Resp::Array(vec![bulk("{q}jobs"), bulk("job-1")]));
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // Only the popped element is gone.
    assert_eq!(
        pusher.cmd(&["LRANGE", "{q}jobs", "0", "-1"]).await,
        Resp::Array(vec![bulk("job-2")])
    );
    // Non-empty: no waiting at all; BRPOP takes from the right.
    assert_eq!(
        pusher.cmd(&["BRPOP", "{q}jobs", "1"]).await,
        Resp::Array(vec![bulk("{q}jobs"), bulk("job-2")])
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_honoured_and_parsed_like_redis() {
    let server = start_default().await;
    let mut p = Pair::new(server.resp_addr).await;
    let started = Instant::now();
    let (r, s) = p.both(&["BLPOP", "nothing", "0.3"]).await;
    let waited = started.elapsed();
    assert_eq!(s, r, "a timed-out BLPOP is a null array");
    assert!(
        waited >= Duration::from_millis(550),
        "both servers waited 0.3 s: {waited:?}"
    );
    p.script(&[
        &["BLPOP", "k", "-1"],
        &["BLPOP", "k", "abc"],
        &["BLMOVE", "{x}a", "{x}b", "LEFT", "UP", "1"],
        &["XREAD", "BLOCK", "-5", "STREAMS", "s", "0"],
        &["XREAD", "BLOCK", "x", "STREAMS", "s", "0"],
    ])
    .await;
    // Inside MULTI a blocking command does not block.
    let mut raw = Raw::connect(server.resp_addr).await;
    raw.cmd(&["MULTI"]).await;
    raw.cmd(&["BLPOP", "nothing", "0"]).await;
    let started = Instant::now();
    assert_eq!(raw.cmd(&["EXEC"]).await, Resp::Array(vec![Resp::NilArray]));
    assert!(started.elapsed() < Duration::from_secs(2));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blmove_and_xread_block_wake_on_writes() {
    let server = start_default().await;
    let addr = server.resp_addr;
    let mover = tokio::spawn(async move {
        let mut raw = Raw::connect(addr).await;
        raw.cmd(&["BLMOVE", "{m}src", "{m}dst", "RIGHT", "LEFT", "10"])
            .await
    });
    let reader = tokio::spawn(async move {
        let mut raw = Raw::connect(addr).await;
        raw.cmd(&["XREAD", "BLOCK", "10000", "STREAMS", "events", "$"])
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut w = Raw::connect(addr).await;
    w.cmd(&["LPUSH", "{m}src", "item"]).await;
    assert_eq!(mover.await.expect("mover"), bulk("item"));
    assert_eq!(
        w.cmd(&["LRANGE", "{m}dst", "0", "-1"]).await,
        Resp::Array(vec![bulk("item")])
    );
    let id = w
        .cmd(&["XADD", "events", "*", "kind", "signup"])
        .await
        .text();
    let read = reader.await.expect("reader");
    let stream = &read.items()[0];
    assert_eq!(stream.items()[0], bulk("events"));
    assert_eq!(
        stream.items()[1].items()[0].items()[0],
        bulk(&id),
        "only the entry added after blocking"
    );
    // A consumer group blocked on `>` gets the next entry.
    w.cmd(&["XGROUP", "CREATE", "events", "g", "$"]).await;
    let consumer = tokio::spawn(async move {
        let mut raw = Raw::connect(addr).await;
        raw.cmd(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "BLOCK",
            "10000",
            "STREAMS",
            "events",
            ">",
        ])
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id2 = w
        .cmd(&["XADD", "events", "*", "kind", "login"])
        .await
        .text();
    let got = consumer.await.expect("consumer");
    assert_eq!(got.items()[0].items()[1].items()[0].items()[0], bulk(&id2));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_disconnecting_while_blocked_is_clean() {
    let server = start_default().await;
    let addr = server.resp_addr;
    {
        let mut raw = Raw::connect(addr).await;
        raw.send(&common::encode(&["BLPOP", "{d}q", "0"])).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Dropped here: the connection closes while blocked forever.
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut w = Raw::connect(addr).await;
    assert_eq!(w.cmd(&["RPUSH", "{d}q", "kept"]).await, Resp::Int(1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Nobody took it: the blocked client is gone, not waiting for it.
    assert_eq!(w.cmd(&["LLEN", "{d}q"]).await, Resp::Int(1));
    let info = w.cmd(&["INFO", "clients"]).await.text();
    assert!(info.contains("connected_clients:1"), "{info}");
    assert_eq!(
        w.cmd(&["BLPOP", "{d}q", "x"]).await,
        err("ERR timeout is not a float or out of range")
    );
    server.shutdown().await;
}
