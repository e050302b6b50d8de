//! Blocking commands over real TCP: BLPOP, BRPOP, BLMOVE, XREAD and
//! XREADGROUP with BLOCK wake when another connection writes, honour their
//! timeouts, and a client that disconnects while blocked leaves cleanly;
//! clients blocked on one key are served first-come first-served.

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

/// Waits until `n` connections of the default cache are blocked (each
/// test blocks them on `_key` only).
async fn blocked_on(server: &stratus::server::Running, _key: &str, n: usize) {
    common::wait_blocked(server.resp_addr, n).await;
}

/// Blocks one new connection per command, in order (each is seen blocked
/// before the next is sent), and returns the tasks reading their replies.
async fn block_in_order(
    server: &stratus::server::Running,
    key: &str,
    cmds: &[&[&str]],
) -> Vec<tokio::task::JoinHandle<Resp>> {
    let mut tasks = Vec::new();
    for (i, cmd) in cmds.iter().enumerate() {
        let mut raw = Raw::connect(server.resp_addr).await;
        let args: Vec<String> = cmd.iter().map(|a| a.to_string()).collect();
        tasks.push(tokio::spawn(async move { raw.cmd(&args).await }));
        blocked_on(server, key, i + 1).await;
    }
    tasks
}

/// Redis serves clients blocked on one key in the order they blocked: one
/// push of five elements gives the first blocked client the first element,
/// the second the second..., whatever the mix of blocking commands, and
/// single pushes go to the longest-waiting client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_clients_are_served_first_come_first_served() {
    let server = start_default().await;
    let mut w = Raw::connect(server.resp_addr).await;
    let lists: &[&[&str]] = &[
        &["BLPOP", "{f}q", "0"],
        &["BRPOP", "{f}other", "{f}q", "0"],
        &["BLMPOP", "0", "1", "{f}q", "LEFT"],
        &["BLMOVE", "{f}q", "{f}dst", "LEFT", "RIGHT", "0"],
        &["BLPOP", "{f}q", "0"],
    ];
    let tasks = block_in_order(&server, "{f}q", lists).await;
    assert_eq!(
        w.cmd(&["RPUSH", "{f}q", "e0", "e1", "e2", "e3", "e4"])
            .await,
        Resp::Int(5)
    );
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.expect("client"));
    }
    assert_eq!(
        replies,
        vec![
            Resp::Array(vec![bulk("{f}q"), bulk("e0")]),
            // BRPOP takes from the right of what is left: e4.
            Resp::Array(vec![bulk("{f}q"), bulk("e4")]),
            Resp::Array(vec![bulk("{f}q"), Resp::Array(vec![bulk("e1")])]),
            bulk("e2"),
            Resp::Array(vec![bulk("{f}q"), bulk("e3")]),
        ]
    );

    // Sorted sets: the lowest members in the order the clients blocked.
    let zsets: &[&[&str]] = &[
        &["BZPOPMIN", "{f}z", "0"],
        &["BZMPOP", "0", "1", "{f}z", "MIN"],
        &["BZPOPMIN", "{f}z", "0"],
    ];
    let tasks = block_in_order(&server, "{f}z", zsets).await;
    w.cmd(&["ZADD", "{f}z", "1", "a", "2", "b", "3", "c"]).await;
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.expect("client"));
    }
    assert_eq!(
        replies,
        vec![
            Resp::Array(vec![bulk("{f}z"), bulk("a"), bulk("1")]),
            Resp::Array(vec![
                bulk("{f}z"),
                Resp::Array(vec![Resp::Array(vec![bulk("b"), bulk("2")])]),
            ]),
            Resp::Array(vec![bulk("{f}z"), bulk("c"), bulk("3")]),
        ]
    );

    // One element at a time: always the client that has waited longest.
    let cmds: Vec<Vec<String>> = (0..4)
        .map(|i| vec!["BLPOP".into(), "{f}one".into(), format!("{}", 100 + i)])
        .collect();
    let cmds: Vec<Vec<&str>> = cmds
        .iter()
        .map(|c| c.iter().map(String::as_str).collect())
        .collect();
    let cmds: Vec<&[&str]> = cmds.iter().map(Vec::as_slice).collect();
    let mut tasks = block_in_order(&server, "{f}one", &cmds).await;
    for i in 0..4 {
        w.cmd(&["RPUSH", "{f}one", &format!("x{i}")]).await;
        let first = tasks.remove(0).await.expect("client");
        assert_eq!(
            first,
            Resp::Array(vec![bulk("{f}one"), bulk(&format!("x{i}"))])
        );
    }
    server.shutdown().await;
}

/// A client first in line that goes away (disconnects) passes its turn:
/// the next one gets the element.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_the_line_passes_its_turn() {
    let server = start_default().await;
    let mut first = Raw::connect(server.resp_addr).await;
    first
        .send(&common::encode(&["BZPOPMIN", "{g}z", "0"]))
        .await;
    blocked_on(&server, "{g}z", 1).await;
    let mut next = Raw::connect(server.resp_addr).await;
    let next = tokio::spawn(async move { next.cmd(&["BZPOPMAX", "{g}z", "0"]).await });
    blocked_on(&server, "{g}z", 2).await;
    drop(first);
    blocked_on(&server, "{g}z", 1).await;
    let mut w = Raw::connect(server.resp_addr).await;
    w.cmd(&["ZADD", "{g}z", "1", "a", "2", "b"]).await;
    assert_eq!(
        next.await.expect("client"),
        Resp::Array(vec![bulk("{g}z"), bulk("b"), bulk("2")])
    );
    assert_eq!(w.cmd(&["ZCARD", "{g}z"]).await, Resp::Int(1));
    server.shutdown().await;
}
