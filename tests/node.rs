//! A `stratus node` process hosting partitions, reached through the same
//! pool path the proxy uses (`CachePool::execute`, fan-out, batches) with
//! every partition remote: the data plane over real TCP, in the wire
//! format of `stratus::wire`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use stratus::link::NodeClient;
use stratus::partition::key_slot;
use stratus::pool::{CachePool, ExecOptions};
use stratus::resp::{Reply, reply};
use stratus::wire::{self, Request, Response};

/// A `stratus node --port any` child process and its data-plane address.
struct NodeProcess {
    child: tokio::process::Child,
    addr: SocketAddr,
}

async fn spawn_node() -> NodeProcess {
    let role = Role::spawn(&["node", "--port", "any"], &[], "stratus node serving").await;
    let addr = role.addr("node_addr");
    NodeProcess {
        child: role.child,
        addr,
    }
}

async fn host(node: &NodeClient, cache: &str, partitions: u16) {
    let hosted = node
        .call(Request::Host {
            cache: cache.into(),
            partitions,
            cluster_mode: stratus::partition::ClusterMode::Enabled,
        })
        .await
        .expect("node answers");
    assert_eq!(hosted, Response::Hosted);
}

/// A node process hosting cache `c` with `partitions` partitions, a client
/// of it, and a pool of its partitions with the routes loaded.
async fn hosted(partitions: u16) -> (NodeProcess, Arc<NodeClient>, CachePool) {
    let node = spawn_node().await;
    let client = NodeClient::connect(node.addr).await.expect("connect");
    host(&client, "c", partitions).await;
    let pool = CachePool::remote("c", client.clone(), stratus::link::Nodes::new(None));
    pool.load_routes().await.expect("routes");
    (node, client, pool)
}

/// Runs one command through the pool, as the proxy's request path does.
async fn run(pool: &CachePool, args: &[&str]) -> Reply {
    let spec = stratus::cmd::lookup(args[0].as_bytes()).expect("a command");
    let args: Vec<Bytes> = args.iter().map(|a| Bytes::from(a.to_string())).collect();
    let slot = spec
        .key_positions(&args)
        .next()
        .map_or(0, |i| key_slot(&args[i]));
    let opts = ExecOptions::new(now_ms());
    tokio::time::timeout(DEADLINE, pool.execute(spec, &args, slot, &opts))
        .await
        .expect("answered in time")
        .reply
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn b(s: &str) -> Reply {
    Reply::Bulk(Bytes::from(s.to_string()))
}

/// Keys of `n` different partitions' ranges (of 3 equal ones).
fn keys_in_thirds() -> [String; 3] {
    let mut found: [Option<String>; 3] = [None, None, None];
    for i in 0.. {
        let k = format!("key{i}");
        let third = usize::from(key_slot(k.as_bytes())) * 3 / 16384;
        found[third].get_or_insert(k);
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found.map(Option::unwrap)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_remote_partitions_runs_commands_on_a_node() {
    let (_node, _client, pool) = hosted(3).await;
    let ranges: Vec<(u16, u16)> = pool.ranges().iter().map(|(f, l, _)| (*f, *l)).collect();
    assert_eq!(ranges, [(0, 5460), (5461, 10921), (10922, 16383)]);

    assert_eq!(run(&pool, &["SET", "k", "v"]).await, Reply::ok());
    assert_eq!(run(&pool, &["GET", "k"]).await, b("v"));
    assert_eq!(run(&pool, &["INCRBY", "n", "5"]).await, Reply::Int(5));
    assert_eq!(run(&pool, &["GET", "missing"]).await, Reply::Nil);
    assert_eq!(
        run(&pool, &["LPUSH", "k", "x"]).await,
        Reply::err(reply::WRONGTYPE)
    );

    // Keys in all three partitions: MSET and MGET fan out, replies merge
    // in key order.
    let [a, b_, c] = keys_in_thirds();
    assert_eq!(
        run(&pool, &["MSET", &a, "1", &b_, "2", &c, "3"]).await,
        Reply::ok()
    );
    assert_eq!(
        run(&pool, &["MGET", &c, "missing", &a, &b_]).await,
        Reply::Array(vec![b("3"), Reply::Nil, b("1"), b("2")])
    );
    assert_eq!(
        run(&pool, &["EXISTS", &a, &b_, &c, "nope"]).await,
        Reply::Int(3)
    );
    assert_eq!(run(&pool, &["DEL", &a, &c]).await, Reply::Int(2));

    // A transaction's batch runs in one partition, in order.
    let set = stratus::cmd::lookup(b"SET").unwrap();
    let get = stratus::cmd::lookup(b"GET").unwrap();
    let set_args = [Bytes::from("{t}a"), Bytes::from("1")];
    let set_args = [&[Bytes::from("SET")][..], &set_args].concat();
    let get_args = [Bytes::from("GET"), Bytes::from("{t}a")];
    let done = pool
        .execute_batch(
            &[(set, &set_args), (get, &get_args)],
            key_slot(b"{t}a"),
            &[],
            &ExecOptions::new(now_ms()),
        )
        .await
        .expect("ran")
        .expect("not aborted");
    let replies: Vec<Reply> = done.into_iter().map(|e| e.reply).collect();
    assert_eq!(replies, [Reply::ok(), b("1")]);

    // A script runs on the node.
    assert_eq!(
        run(&pool, &["EVAL", "return 1 + 1", "0"]).await,
        Reply::Int(2)
    );

    // The node keeps the figures: its partitions count the keys.
    pool.refresh_remote_stats().await;
    assert_eq!(pool.totals().keys, 4, "k, n, {b_}, {{t}}a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_and_a_merge_on_the_node_reroute_the_proxy() {
    let (_node, client, pool) = hosted(1).await;
    for i in 0..200 {
        let k = format!("key{i}");
        assert_eq!(run(&pool, &["SET", &k, &k]).await, Reply::ok());
    }
    let first = pool.partitions()[0].id();
    // Split behind the proxy's back: its table still says one partition.
    let split = client
        .call(Request::Split {
            cache: "c".into(),
            partition: first,
            at: 8192,
        })
        .await
        .expect("node answers");
    let Response::Changed { partition: upper } = split else {
        panic!("split refused: {split:?}");
    };
    assert_eq!(pool.ranges().len(), 1);
    // Every key reads back: a key above the split is refused as moved by
    // the old partition, the proxy reloads the routes and retries.
    for i in 0..200 {
        let k = format!("key{i}");
        assert_eq!(run(&pool, &["GET", &k]).await, b(&k), "{k}");
    }
    let ranges: Vec<(u16, u16, u64)> = pool
        .ranges()
        .iter()
        .map(|(f, l, h)| (*f, *l, h.id()))
        .collect();
    assert_eq!(ranges, [(0, 8191, first), (8192, 16383, upper)]);

    let merged = client
        .call(Request::Merge {
            cache: "c".into(),
            left: first,
            right: upper,
        })
        .await
        .expect("node answers");
    assert_eq!(merged, Response::Changed { partition: first });
    // A key in the retired upper partition: moved, re-routed, found.
    let [_, _, high] = keys_in_thirds();
    assert_eq!(run(&pool, &["SET", &high, "after"]).await, Reply::ok());
    assert_eq!(run(&pool, &["GET", &high]).await, b("after"));
    assert_eq!(pool.ranges().len(), 1);
    let keys = client
        .call(Request::Stats {
            cache: "c".into(),
            partition: first,
        })
        .await
        .expect("node answers");
    let Response::Stats(stats) = keys else {
        panic!("{keys:?}");
    };
    assert_eq!((stats.first_slot, stats.last_slot), (0, 16383));
    assert!(stats.keys >= 200, "{stats:?}");
}

/// The node decides: a watched key whose version moved aborts the batch;
/// an unknown cache and a partition of another range are refused with
/// what the proxy needs (an error text, the epoch to refresh past).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_what_it_cannot_run() {
    let node = spawn_node().await;
    let client = NodeClient::connect(node.addr).await.expect("connect");
    host(&client, "c", 2).await;
    let Response::Routes { epoch, ranges } = client
        .call(Request::Routes { cache: "c".into() })
        .await
        .expect("routes")
    else {
        panic!("no routes");
    };
    // A batch as a proxy would send it.
    let batch =
        |partition: u64, slots: Vec<u16>, commands: &[&[&str]], watched: Vec<(Bytes, u64)>| {
            Request::Execute(wire::Execute {
                cache: "c".into(),
                partition,
                epoch,
                slots,
                commands: commands
                    .iter()
                    .map(|c| c.iter().map(|a| Bytes::from(a.to_string())).collect())
                    .collect(),
                watched,
                options: wire::Options {
                    resp3: false,
                    max_value_len: 1 << 29,
                    room: u64::MAX,
                    no_touch: false,
                    client: 0,
                    ticket: None,
                    retry: false,
                    busy_threshold_ms: 5000,
                    encoding: Default::default(),
                    script_time_limit_ms: 5000,
                    rules: None,
                    // The batch's string events come back in its reply.
                    notify: stratus::partition::notify::KEYSPACE
                        | stratus::partition::notify::STRING,
                    origin: 7,
                    listeners: 0,
                    listener_table: None,
                },
            })
        };
    let execute = |partition: u64, slot: u16, watched: Vec<(Bytes, u64)>| {
        batch(partition, vec![slot], &[&["SET", "k", "v"]], watched)
    };
    let slot = key_slot(b"k");
    let owner = ranges
        .iter()
        .find(|r| (r.first..=r.last).contains(&slot))
        .unwrap();
    let other = ranges
        .iter()
        .find(|r| r.partition != owner.partition)
        .unwrap();
    assert_eq!(
        client
            .call(execute(owner.partition, slot, vec![("k".into(), 7)]))
            .await
            .unwrap(),
        Response::Aborted
    );
    assert_eq!(
        client
            .call(execute(other.partition, slot, Vec::new()))
            .await
            .unwrap(),
        Response::Moved { epoch }
    );
    let Response::Executed {
        replies: done,
        stats,
        events,
        feed,
    } = client
        .call(execute(owner.partition, slot, Vec::new()))
        .await
        .unwrap()
    else {
        panic!("not run");
    };
    assert_eq!(done[0].reply, Reply::ok());
    // The reply carries the partition's figures after the batch.
    assert!((stats.first_slot..=stats.last_slot).contains(&slot));
    assert!(stats.keys >= 1 && stats.used_bytes > 0, "{stats:?}");
    // ... and what it delivers: SET's keyspace event (in the node's feed
    // for the other proxies too).
    assert!(feed >= 1, "feed at {feed}");
    assert_eq!(
        events,
        vec![stratus::pool::feed::FeedItem::Key(
            stratus::partition::notify::KeyEvent {
                class: stratus::partition::notify::STRING,
                event: "set".into(),
                key: Bytes::from_static(b"k"),
            }
        )]
    );

    // The node checks what it runs, whatever the proxy claims: a command
    // cut short, a command that is not a data command, and slots that are
    // not the keys' are refused.
    let malformed = Response::Failed(reply::node_unavailable("malformed batch"));
    for commands in [&[&["GET"][..]][..], &[&["DBSIZE"]], &[&["SET", "k"]]] {
        let answer = client
            .call(batch(owner.partition, vec![slot], commands, Vec::new()))
            .await
            .unwrap();
        assert_eq!(answer, malformed, "{commands:?}");
    }
    let lying = client
        .call(batch(
            other.partition,
            vec![other.first],
            &[&["GET", "k"]],
            Vec::new(),
        ))
        .await
        .unwrap();
    assert_eq!(lying, Response::Moved { epoch });

    let unknown = client
        .call(Request::Routes {
            cache: "nope".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        unknown,
        Response::Failed(reply::node_unavailable("no cache nope on this node"))
    );
    let unknown = CachePool::remote("nope", client.clone(), stratus::link::Nodes::new(None));
    assert!(unknown.load_routes().await.is_err());
    let Reply::Error(text) = run(&unknown, &["GET", "k"]).await else {
        panic!("an unknown cache answers an error");
    };
    assert_eq!(text, reply::node_unavailable("no cache nope on this node"));
    // A script's PUBLISH counts the sending proxy's subscribers: a batch
    // naming a version of them the node lacks does not run; with the table
    // it runs and counts it; then the version alone is enough.
    let publish = |table: Option<Box<stratus::pubsub::Listeners>>| {
        let Request::Execute(mut e) = batch(
            owner.partition,
            vec![slot],
            &[&[
                "EVAL",
                "return redis.call('publish', 'news', 'm')",
                "1",
                "k",
            ]],
            Vec::new(),
        ) else {
            unreachable!("an Execute");
        };
        e.options.listeners = 5;
        e.options.listener_table = table;
        Request::Execute(e)
    };
    assert_eq!(
        client.call(publish(None)).await.unwrap(),
        Response::NeedListeners
    );
    let table = stratus::pubsub::Listeners {
        channels: vec![(Bytes::from("news"), 2)],
        patterns: vec![(Bytes::from("n*"), 1), (Bytes::from("x*"), 4)],
        shard: Vec::new(),
    };
    for table in [Some(Box::new(table)), None] {
        let Response::Executed { replies, .. } = client.call(publish(table)).await.unwrap() else {
            panic!("the script runs");
        };
        assert_eq!(replies[0].reply, Reply::Int(3));
    }
    // A script's calls come back summed for the proxy's command
    // statistics: a few entries, whatever the number of calls.
    let Request::Execute(mut e) = batch(
        owner.partition,
        vec![slot],
        &[&[
            "EVAL",
            "for i = 1, 5000 do redis.call('incr', KEYS[1]) end",
            "1",
            "{k}n",
        ]],
        Vec::new(),
    ) else {
        unreachable!("an Execute");
    };
    e.options.notify |= stratus::partition::notify::CALLS;
    let Response::Executed { events, .. } = client.call(Request::Execute(e)).await.unwrap() else {
        panic!("the script runs");
    };
    let called: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|item| match item {
            wire::FeedItem::Called {
                name,
                calls,
                failed,
                ..
            } if name == "incr" => Some((*calls, *failed)),
            _ => None,
        })
        .collect();
    assert_eq!(called.iter().map(|c| c.0).sum::<u64>(), 5000, "{called:?}");
    assert_eq!(called.iter().map(|c| c.1).sum::<u64>(), 0);
    assert!(called.len() <= 24, "summed by latency range: {called:?}");
}

/// A node that dies: the pool's requests end with a CLUSTERDOWN error at
/// once, none hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_is_an_error_reply_not_a_hang() {
    let mut node = spawn_node().await;
    let client: Arc<NodeClient> = NodeClient::connect(node.addr).await.expect("connect");
    host(&client, "c", 1).await;
    // Routes not loaded: the first request loads them (its placeholder
    // partition is refused as moved).
    let pool = CachePool::remote("c", client.clone(), stratus::link::Nodes::new(None));
    assert_eq!(run(&pool, &["SET", "k", "v"]).await, Reply::ok());
    assert_eq!(pool.ranges()[0].2.id(), 1);
    node.child.kill().await.expect("kill");
    let Reply::Error(text) = run(&pool, &["GET", "k"]).await else {
        panic!("a lost node must answer an error");
    };
    assert!(
        text.starts_with("CLUSTERDOWN partition unavailable: node "),
        "{text}"
    );
}

/// SCAN (with MATCH and TYPE), RANDOMKEY, the keys of a slot and FLUSHDB
/// walk the partitions where they are: the pool sends a filter, never a
/// closure, and every key is found once across the three partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walks_over_keys_run_on_the_node() {
    let (_node, _client, pool) = hosted(3).await;
    for i in 0..300 {
        let k = format!("key{i}");
        assert_eq!(run(&pool, &["SET", &k, "v"]).await, Reply::ok());
    }
    assert_eq!(run(&pool, &["HSET", "h1", "f", "v"]).await, Reply::Int(1));
    let busy = Duration::from_secs(5);
    let scan_all = |filter: wire::ScanFilter| {
        let pool = &pool;
        async move {
            let mut found = Vec::new();
            let mut cursor = Some(stratus::partition::keyspace::ScanCursor::default());
            let mut partitions = std::collections::BTreeSet::new();
            while let Some(c) = cursor {
                let (part, step) = pool
                    .scan(c, 50, now_ms(), filter.clone(), busy)
                    .await
                    .expect("scanned");
                partitions.insert(part);
                found.extend(step.keys);
                cursor = step.next;
            }
            (found, partitions.len())
        }
    };
    let (all, partitions) = scan_all(wire::ScanFilter::default()).await;
    assert_eq!(all.len(), 301);
    assert_eq!(partitions, 3);
    let (ones, _) = scan_all(wire::ScanFilter {
        pattern: Some(Bytes::from_static(b"key1*")),
        value_type: None,
    })
    .await;
    let mut ones: Vec<String> = ones
        .iter()
        .map(|k| String::from_utf8(k.to_vec()).unwrap())
        .collect();
    ones.sort();
    let mut want: Vec<String> = (0..300)
        .map(|i| format!("key{i}"))
        .filter(|k| k.starts_with("key1"))
        .collect();
    want.sort();
    assert_eq!(ones, want);
    let (hashes, _) = scan_all(wire::ScanFilter {
        pattern: None,
        value_type: Some(stratus::partition::ValueType::Hash),
    })
    .await;
    assert_eq!(hashes, [Bytes::from_static(b"h1")]);

    let (key, _) = pool.random_key(now_ms(), busy).await.expect("drawn");
    assert!(key.is_some());
    let slot = key_slot(b"key1");
    let (count, keys) = pool.slot_keys(slot, 10, busy).await.expect("slot keys");
    assert!(
        count >= 1 && keys.contains(&Bytes::from_static(b"key1")),
        "{count} {keys:?}"
    );

    pool.flush(busy, 0).await.expect("flushed");
    pool.refresh_remote_stats().await;
    assert_eq!(pool.totals().keys, 0);
    assert_eq!(run(&pool, &["GET", "key1"]).await, Reply::Nil);
    let (none, _) = pool.random_key(now_ms(), busy).await.expect("drawn");
    assert_eq!(none, None);
}

/// WATCH versions and blocked clients' wake-ups are the node's: a watched
/// key written through any path aborts the batch, and a write wakes a
/// client blocked on the key, also one made before it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_wake_ups_are_kept_where_the_partition_is() {
    let (_node, _client, pool) = hosted(2).await;
    let slot = key_slot(b"w");
    let key = [Bytes::from_static(b"w")];
    let set = stratus::cmd::lookup(b"SET").unwrap();
    let set_args = [Bytes::from("SET"), Bytes::from("w"), Bytes::from("mine")];
    let exec = |version: u64| {
        let pool = &pool;
        let set_args = &set_args;
        async move {
            pool.execute_batch(
                &[(set, &set_args[..])],
                slot,
                &[(Box::from(&b"w"[..]), version)],
                &ExecOptions::new(now_ms()),
            )
            .await
            .expect("ran or aborted")
        }
    };
    let [v] = pool.watch(slot, &key).await.expect("watched")[..] else {
        panic!("one version");
    };
    assert_eq!(run(&pool, &["SET", "w", "theirs"]).await, Reply::ok());
    assert!(exec(v).await.is_none(), "a watched key written: aborted");
    assert_eq!(run(&pool, &["GET", "w"]).await, b("theirs"));
    pool.unwatch(key.to_vec());
    let [v] = pool.watch(slot, &key).await.expect("watched")[..] else {
        panic!("one version");
    };
    assert!(exec(v).await.is_some(), "nothing written: it runs");
    assert_eq!(run(&pool, &["GET", "w"]).await, b("mine"));
    pool.unwatch(key.to_vec());

    // A client blocked on a list is woken by a push from another client.
    let list = [Bytes::from_static(b"list")];
    let lslot = key_slot(b"list");
    let mut blocked = pool
        .block(lslot, &list, Some(stratus::cmd::Takes::List))
        .await
        .expect("in line");
    let waiter = tokio::spawn(async move {
        blocked.woken(true).await;
        blocked
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "nothing written yet");
    assert_eq!(run(&pool, &["RPUSH", "list", "a"]).await, Reply::Int(1));
    let mut blocked = tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("woken by the push")
        .unwrap();
    // A write before the wait is not missed.
    assert_eq!(run(&pool, &["RPUSH", "list", "b"]).await, Reply::Int(2));
    tokio::time::timeout(DEADLINE, blocked.woken(false))
        .await
        .expect("the earlier push wakes it");
    drop(blocked);
}

/// A node runs the active expiry cycle of the caches it hosts (nobody
/// reads the keys: they still go), and `Unhost` lets a cache go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_expires_keys_and_lets_a_cache_go() {
    let node = spawn_node().await;
    let client = NodeClient::connect(node.addr).await.expect("connect");
    host(&client, "c", 2).await;
    let pool = CachePool::remote("c", client.clone(), stratus::link::Nodes::new(None));
    for i in 0..50 {
        let k = format!("key{i}");
        assert_eq!(
            run(&pool, &["SET", &k, "v", "PX", "100"]).await,
            Reply::ok()
        );
    }
    assert_eq!(run(&pool, &["SET", "stays", "v"]).await, Reply::ok());
    eventually("the node expires the keys no one reads", || async {
        pool.refresh_remote_stats().await;
        pool.totals().keys == 1
    })
    .await;
    assert_eq!(
        client
            .call(Request::Unhost { cache: "c".into() })
            .await
            .unwrap(),
        Response::Done
    );
    let Reply::Error(text) = run(&pool, &["GET", "stays"]).await else {
        panic!("a cache let go answers an error");
    };
    assert_eq!(text, reply::node_unavailable("no cache c on this node"));
}

/// The data plane is closed to whoever lacks the deployment's key: a node
/// started with one answers only proxies proving they hold it, and a node
/// listening off loopback refuses to start without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_only_proxies_holding_its_key() {
    let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let role = Role::spawn(
        &["node", "--port", "any"],
        &[("STRATUS_TOKEN_KEY", key)],
        "stratus node serving",
    )
    .await;
    let addr = role.addr("node_addr");
    let bytes = stratus::config::unhex(key).unwrap();
    let trusted = NodeClient::new(addr, Some(bytes));
    let hosted = trusted
        .call(Request::Host {
            cache: "c".into(),
            partitions: 1,
            cluster_mode: stratus::partition::ClusterMode::Enabled,
        })
        .await
        .expect("a proxy with the key is served");
    assert_eq!(hosted, Response::Hosted);
    for stranger in [
        NodeClient::new(addr, None),
        NodeClient::new(addr, Some([9; 32])),
    ] {
        let refused = stranger.call(Request::Routes { cache: "c".into() }).await;
        assert!(refused.is_err(), "{refused:?}");
    }
    let open = stratus_command(&["node", "--bind", "0.0.0.0", "--port", "any"], &[])
        .output()
        .await
        .expect("run");
    assert_eq!(open.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&open.stderr).contains("needs token-key"));
}

/// Blocked clients hold no place among a connection's requests being
/// worked on: 1,100 of them waiting (more than a proxy connection used to
/// be allowed in all), the write that wakes them still gets through, and
/// they all wake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_blocked_clients_do_not_stall_a_node() {
    let node = spawn_node().await;
    let client = NodeClient::connect(node.addr).await.expect("connect");
    host(&client, "c", 1).await;
    let pool = std::sync::Arc::new(CachePool::remote(
        "c",
        client.clone(),
        stratus::link::Nodes::new(None),
    ));
    pool.load_routes().await.expect("routes");
    let list = [Bytes::from_static(b"q")];
    let slot = key_slot(b"q");
    let mut waiters = Vec::new();
    for _ in 0..1100 {
        let mut blocked = pool
            .block(slot, &list, Some(stratus::cmd::Takes::List))
            .await
            .expect("in line");
        waiters.push(tokio::spawn(async move {
            blocked.woken(true).await;
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(run(&pool, &["RPUSH", "q", "x"]).await, Reply::Int(1));
    for w in waiters {
        tokio::time::timeout(DEADLINE, w)
            .await
            .expect("every blocked client wakes")
            .unwrap();
    }
}

/// FLUSHALL on a proxy whose routes were never loaded flushes the cache
/// (the placeholder partition's refusal loads them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_before_the_routes_are_loaded_flushes() {
    let node = spawn_node().await;
    let client = NodeClient::connect(node.addr).await.expect("connect");
    host(&client, "c", 2).await;
    let writer = CachePool::remote("c", client.clone(), stratus::link::Nodes::new(None));
    assert_eq!(run(&writer, &["SET", "k", "v"]).await, Reply::ok());
    let fresh = CachePool::remote("c", client.clone(), stratus::link::Nodes::new(None));
    fresh
        .flush(Duration::from_secs(5), 0)
        .await
        .expect("flushed");
    assert_eq!(run(&writer, &["GET", "k"]).await, Reply::Nil);
}

/// The node's side of a move: slots a partition exports are refused from
/// then on and held; a table that keeps them here gives them back (a move
/// that failed loses nothing); a table that puts them on another node lets
/// them go and names that node; a table that would leave a partition's
/// slots nowhere is refused, its data kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_slots_are_held_until_a_table_says_where_they_are() {
    let node = spawn_node().await;
    let client = NodeClient::connect(node.addr).await.expect("connect");
    let me = node.addr.to_string();
    let table = |epoch: u64, ranges: Vec<(u16, u16, u64, &str)>| Request::Layout {
        cache: "c".into(),
        cluster_mode: stratus::partition::ClusterMode::Enabled,
        epoch,
        me: me.clone(),
        ranges: ranges
            .into_iter()
            .map(|(first, last, partition, node)| wire::Range {
                first,
                last,
                partition,
                node: node.to_string(),
            })
            .collect(),
    };
    let whole = vec![(0, 16383, 1, me.as_str())];
    assert_eq!(
        client.call(table(1, whole.clone())).await.unwrap(),
        Response::Done
    );
    let pool = CachePool::remote("c", client.clone(), stratus::link::Nodes::new(None));
    for i in 0..500 {
        assert_eq!(
            run(&pool, &["SET", &format!("k{i}"), &format!("{i}")]).await,
            Reply::ok()
        );
    }
    let export = Request::Export {
        cache: "c".into(),
        partition: 1,
        max_bytes: 4096,
    };
    let Response::Exported {
        first, last, keys, ..
    } = client.call(export.clone()).await.unwrap()
    else {
        panic!("exported");
    };
    assert_eq!(last, 16383);
    assert!(
        first > 0 && !keys.is_empty(),
        "{first}..={last}: {} keys",
        keys.len()
    );
    let moved = (0..500)
        .map(|i| format!("k{i}"))
        .find(|k| key_slot(k.as_bytes()) >= first)
        .expect("a key in the exported slots");
    // Refused while held: the proxy retries, then answers TRYAGAIN.
    assert_eq!(
        run(&pool, &["GET", &moved]).await,
        Reply::err(reply::TRYAGAIN)
    );
    // The table as it was, newer: the slots come back.
    assert_eq!(
        client.call(table(10, whole.clone())).await.unwrap(),
        Response::Done
    );
    for i in 0..500 {
        assert_eq!(
            run(&pool, &["GET", &format!("k{i}")]).await,
            Reply::bulk(format!("{i}")),
            "k{i}"
        );
    }
    // Exported again, then placed on another node: they go from here.
    let Response::Exported { first, .. } = client.call(export).await.unwrap() else {
        panic!("exported");
    };
    let elsewhere = vec![
        (0, first - 1, 1, me.as_str()),
        (first, 16383, 2, "10.0.0.9:7379"),
    ];
    assert_eq!(
        client.call(table(20, elsewhere)).await.unwrap(),
        Response::Done
    );
    let Response::Routes { ranges, epoch } = client
        .call(Request::Routes { cache: "c".into() })
        .await
        .unwrap()
    else {
        panic!("routes");
    };
    assert_eq!(ranges[1].node, "10.0.0.9:7379", "{epoch} {ranges:?}");
    assert_eq!(ranges[1].partition, 2);
    let keys_of_1 = || async {
        match client
            .call(Request::Stats {
                cache: "c".into(),
                partition: 1,
            })
            .await
            .unwrap()
        {
            Response::Stats(stats) => stats.keys,
            other => panic!("stats: {other:?}"),
        }
    };
    let kept = (0..500)
        .filter(|i| key_slot(format!("k{i}").as_bytes()) < first)
        .count();
    assert_eq!(keys_of_1().await, kept as u64);
    // A table that would leave partition 1's slots nowhere is refused.
    let wrong = vec![(0, 16383, 3, "10.0.0.9:7379")];
    assert!(matches!(
        client.call(table(21, wrong)).await.unwrap(),
        Response::Failed(_)
    ));
    assert_eq!(
        keys_of_1().await,
        kept as u64,
        "nothing lost to a refused table"
    );
}
