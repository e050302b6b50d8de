//! The roles apart, as real processes on loopback: two `stratus node`s,
//! a `stratus control` placing caches on them, and a `stratus proxy`
//! serving them to a real Redis client.

mod common;

use std::net::SocketAddr;

use common::*;
use redis::AsyncCommands;

/// The token key control and its proxies share in these tests.
const TOKEN_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

struct Cluster {
    nodes: Vec<Role>,
    control: Role,
    proxy: Role,
    api: Http,
}

/// A `stratus proxy` following `control`, checking in every `period` ms.
async fn spawn_proxy(control: &Role, period: &str) -> Role {
    let control_http = control.addr("http_addr").to_string();
    Role::spawn(
        &[
            "proxy",
            "--control",
            &control_http,
            "--port",
            "any",
            "--memcached-port",
            "0",
            "--http-port",
            "0",
            "--follow-period-ms",
            period,
        ],
        &[("STRATUS_TOKEN_KEY", TOKEN_KEY)],
        "stratus serving",
    )
    .await
}

impl Cluster {
    async fn start(nodes: usize) -> Cluster {
        Cluster::start_with(nodes, &[]).await
    }

    /// `nodes` nodes, and control started with `control_args` too.
    async fn start_with(nodes: usize, control_args: &[&str]) -> Cluster {
        // Every role shares the key: nodes serve only proxies holding it.
        let env = [("STRATUS_TOKEN_KEY", TOKEN_KEY)];
        let mut spawned = Vec::new();
        for _ in 0..nodes {
            let node = Role::spawn(&["node", "--port", "any"], &env, "stratus node serving");
            spawned.push(node.await);
        }
        let addrs: Vec<String> = spawned
            .iter()
            .map(|n| n.addr("node_addr").to_string())
            .collect();
        let nodes_arg = addrs.join(",");
        let mut args = vec!["control", "--http-port", "0", "--nodes", &nodes_arg];
        args.extend_from_slice(control_args);
        let control = Role::spawn(&args, &env, "stratus control serving").await;
        let proxy = spawn_proxy(&control, "50").await;
        Cluster {
            nodes: spawned,
            api: Http::new(control.addr("http_addr")),
            control,
            proxy,
        }
    }

    fn resp(&self) -> SocketAddr {
        self.proxy.addr("resp_addr")
    }

    /// Creates cache `name` through control; its token.
    async fn create(&self, name: &str) -> String {
        let r = self
            .api
            .post("/v1/caches", &format!(r#"{{"name": "{name}"}}"#))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["token"].as_str().expect("token").to_string()
    }

    /// A client of cache `name` through the proxy, once the proxy serves it.
    async fn client(&self, name: &str, token: &str) -> redis::aio::MultiplexedConnection {
        let url = format!("redis://{name}:{token}@{}/", self.resp());
        let client = redis::Client::open(url).expect("url");
        let end = std::time::Instant::now() + DEADLINE;
        loop {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => return c,
                Err(e) => assert!(
                    std::time::Instant::now() < end,
                    "the proxy never served {name}: {e}"
                ),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_serves_caches_control_placed_on_nodes() {
    let cluster = Cluster::start(2).await;
    let proxy_http = Http::new(cluster.proxy.addr("http_addr"));
    eventually("the proxy is ready once it has read control", || async {
        proxy_http.get("/readyz").await.status == 200
    })
    .await;
    let a = cluster.create("alpha").await;
    let b = cluster.create("beta").await;
    // Each cache on the node hosting the fewest (the open `default` cache
    // took one first): alpha and beta on different nodes.
    let placement = cluster.api.get("/v1/placement").await.json();
    let node_of = |name: &str| -> String {
        placement["caches"]
            .as_array()
            .expect("caches")
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} placed"))["node"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let nodes: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| n.addr("node_addr").to_string())
        .collect();
    assert!(nodes.contains(&node_of("alpha")) && nodes.contains(&node_of("beta")));
    assert_ne!(node_of("alpha"), node_of("beta"));
    // Control's view of its nodes: both up, each with its caches'
    // partitions; a cache's partition view names its node.
    eventually("both nodes are up", || async {
        let view = cluster.api.get("/v1/nodes").await.json();
        view["nodes"]
            .as_array()
            .is_some_and(|n| n.len() == 2 && n.iter().all(|n| n["state"] == "up"))
    })
    .await;
    let view = cluster.api.get("/v1/nodes").await.json();
    let hosting_alpha: Vec<&serde_json::Value> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            n["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["cache"] == "alpha")
        })
        .collect();
    assert_eq!(hosting_alpha.len(), 1);
    assert_eq!(hosting_alpha[0]["addr"], node_of("alpha").as_str());
    let parts = cluster.api.get("/v1/caches/alpha/partitions").await.json();
    assert!(
        parts["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["node"] == node_of("alpha").as_str()),
        "{parts}"
    );

    let mut ca = cluster.client("alpha", &a).await;
    let mut cb = cluster.client("beta", &b).await;
    let _: () = ca.set("k", "in alpha").await.unwrap();
    let _: () = cb.set("k", "in beta").await.unwrap();
    let got: String = ca.get("k").await.unwrap();
    assert_eq!(got, "in alpha");
    let got: String = cb.get("k").await.unwrap();
    assert_eq!(got, "in beta");
    // Multi-key commands, SCAN, DBSIZE.
    let _: () = redis::cmd("MSET")
        .arg(&["x", "1", "y", "2", "z", "3"])
        .query_async(&mut ca)
        .await
        .unwrap();
    let got: Vec<Option<String>> = ca.mget(&["z", "nope", "x"]).await.unwrap();
    assert_eq!(got, [Some("3".into()), None, Some("1".into())]);
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut ca)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(keys, ["k", "x", "y", "z"]);
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut ca).await.unwrap();
    assert_eq!(n, 4);
    // WATCH, MULTI, EXEC: another client's write aborts the transaction.
    let mut watcher = cluster.client("alpha", &a).await;
    let _: () = redis::cmd("WATCH")
        .arg("x")
        .query_async(&mut watcher)
        .await
        .unwrap();
    let _: () = ca.set("x", "changed").await.unwrap();
    let aborted: Option<Vec<String>> = redis::pipe()
        .atomic()
        .set("x", "mine")
        .query_async(&mut watcher)
        .await
        .unwrap();
    assert_eq!(aborted, None);
    let got: String = ca.get("x").await.unwrap();
    assert_eq!(got, "changed");
    // A blocked client is woken by another client's push, through the node.
    let mut blocked = cluster.client("alpha", &a).await;
    let pop = tokio::spawn(async move {
        let got: Option<(String, String)> = redis::cmd("BLPOP")
            .arg("queue")
            .arg(10)
            .query_async(&mut blocked)
            .await
            .unwrap();
        got
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let _: i64 = ca.rpush("queue", "job").await.unwrap();
    let popped = tokio::time::timeout(DEADLINE, pop)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(popped, Some(("queue".into(), "job".into())));

    // A wrong token is refused; a deleted cache goes from the proxy too.
    let wrong = redis::Client::open(format!(
        "redis://alpha:{}@{}/",
        "x".repeat(32),
        cluster.resp()
    ))
    .unwrap();
    assert!(wrong.get_multiplexed_async_connection().await.is_err());
    assert_eq!(cluster.api.delete("/v1/caches/alpha").await.status, 200);
    eventually("the proxy forgets a deleted cache", || async {
        let client = redis::Client::open(format!("redis://alpha:{a}@{}/", cluster.resp())).unwrap();
        client.get_multiplexed_async_connection().await.is_err()
    })
    .await;
    let got: String = cb.get("k").await.unwrap();
    assert_eq!(got, "in beta");
    // Deleted and made again at once: the node hears Unhost, then Host,
    // in that order; the new cache starts empty.
    assert_eq!(cluster.api.delete("/v1/caches/beta").await.status, 200);
    let b2 = cluster.create("beta").await;
    let mut again = cluster.client("beta", &b2).await;
    let gone: Option<String> = again.get("k").await.unwrap();
    assert_eq!(gone, None);
    let _: () = again.set("k", "new beta").await.unwrap();
    let got: String = again.get("k").await.unwrap();
    assert_eq!(got, "new beta");
    drop(cluster.control);
}

/// `deploy/local/cluster up` starts etcd and every role (two controls: one
/// leads, one stands by), writes where they are, and `down` stops exactly
/// those processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_cluster_script_starts_and_stops_every_role() {
    let dir = std::env::temp_dir().join(format!("stratus-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/local/cluster");
    let run = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(script);
        for (k, _) in std::env::vars() {
            if k.starts_with("STRATUS_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(args)
            .env("STRATUS_BIN", env!("CARGO_BIN_EXE_stratus"))
            .env("STRATUS_CLUSTER_DIR", &dir)
            .output()
    };
    let up = run(&["up", "--nodes", "2", "--proxies", "2", "--controls", "2"])
        .await
        .expect("run up");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let env = std::fs::read_to_string(dir.join("env")).expect("env file");
    let value = |name: &str| -> String {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {env}"))
            .trim_matches('"')
            .to_string()
    };
    let resp: Vec<SocketAddr> = value("STRATUS_RESP")
        .split(',')
        .map(|a| a.parse().expect("host:port"))
        .collect();
    assert_eq!(resp.len(), 2);
    let pids: Vec<(String, u32)> = value("STRATUS_PIDS")
        .split_whitespace()
        .map(|e| {
            let (role, pid) = e.split_once(':').expect("role:pid");
            (role.to_string(), pid.parse().expect("pid"))
        })
        .collect();
    let roles: Vec<&str> = pids.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        roles,
        [
            "etcd", "node", "node", "control", "control", "proxy", "proxy"
        ]
    );
    for (role, pid) in &pids {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("running");
        let binary = if role == "etcd" { "etcd" } else { "stratus" };
        assert_eq!(comm.trim(), binary, "the pid is the process itself");
    }
    // The first control leads (ready), the second stands by.
    let apis: Vec<Http> = value("STRATUS_HTTP")
        .split(',')
        .map(|a| Http::new(a.parse().expect("http addr")))
        .collect();
    assert_eq!(apis.len(), 2);
    assert_eq!(apis[0].get("/readyz").await.status, 200);
    assert_eq!(apis[1].get("/readyz").await.status, 503);
    // A cache made through control answers through either proxy.
    let api = &apis[0];
    let created = api.post("/v1/caches", r#"{"name": "shared"}"#).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let token = created.json()["token"].as_str().unwrap().to_string();
    let mut conns = Vec::new();
    for addr in &resp {
        let client = redis::Client::open(format!("redis://shared:{token}@{addr}/")).unwrap();
        let end = std::time::Instant::now() + DEADLINE;
        let conn = loop {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => break c,
                Err(e) => assert!(std::time::Instant::now() < end, "{addr}: {e}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        conns.push(conn);
    }
    let _: () = conns[0].set("k", "v").await.unwrap();
    let got: String = conns[1].get("k").await.unwrap();
    assert_eq!(got, "v");

    let down = run(&["down"]).await.expect("run down");
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    for (role, pid) in &pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        assert!(
            stat.as_ref().map_or(true, |s| s.contains(") Z ")),
            "{role} {pid} still running"
        );
    }
    assert!(!dir.join("env").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The storage maximum holds for a cache on a node: the proxy counts the
/// node's bytes (a second old), and writes past the maximum are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_maximum_holds_for_a_cache_on_a_node() {
    let cluster = Cluster::start(1).await;
    let r = cluster
        .api
        .post(
            "/v1/caches",
            r#"{"name": "small", "usage_limits": {"data_storage": {"maximum": 1, "unit": "MB"}}}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    let mut c = cluster.client("small", &token).await;
    let value = "x".repeat(64 * 1024);
    let mut refused = None;
    for i in 0..200 {
        let done: redis::RedisResult<()> = c.set(format!("k{i}"), &value).await;
        if let Err(e) = done {
            refused = Some((i, e.to_string()));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let (at, error) = refused.expect("writes past 1 MB are refused");
    assert!(error.contains("OOM"), "{error}");
    // 16 values of 64 KiB make 1 MB: every reply carries the partition's
    // bytes, so the proxy refuses the write that would pass the maximum.
    assert!((14..=17).contains(&at), "refused after {at} writes");
    // Volatile keys are evicted on the node to make room (volatile-lru):
    // 3 MB of them into the full cache all succeed, and it stays at 1 MB.
    let _: () = redis::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
    for i in 0..48 {
        let done: redis::RedisResult<()> = c.set_ex(format!("t{i}"), &value, 3600).await;
        assert!(done.is_ok(), "volatile write {i}: {done:?}");
    }
    let proxy_api = Http::new(cluster.proxy.addr("http_addr"));
    let usage = proxy_api.get("/v1/caches/small/usage").await.json();
    let stored = usage["data_stored_bytes"].as_u64().unwrap();
    assert!(stored <= 1 << 20, "{stored} bytes stored in a 1 MB cache");
    assert!(usage["evictions"].as_u64().unwrap() >= 30, "{usage}");
    // Storage is billed once: by control, not again by the proxy.
    let byte_seconds = |text: String| -> f64 {
        text.lines()
            .find(|l| {
                l.starts_with("stratus_data_stored_byte_seconds_total{")
                    && l.contains("cache=\"small\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let proxy = Http::new(cluster.proxy.addr("http_addr"));
    eventually("control bills the stored bytes", || async {
        byte_seconds(cluster.api.get("/metrics").await.text()) > 0.0
    })
    .await;
    assert_eq!(byte_seconds(proxy.get("/metrics").await.text()), 0.0);
}

/// A proxy killed with `kill -9` under load loses nothing acknowledged:
/// every SET a client saw `OK` for is there through the other proxy, and
/// the client carries on through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_killed_under_load_loses_nothing_acknowledged() {
    let cluster = Cluster::start(2).await;
    let second = spawn_proxy(&cluster.control, "50").await;
    let token = cluster.create("ledger").await;
    let first = cluster.client("ledger", &token).await;
    let other = second.addr("resp_addr");
    // Four writers through the first proxy, recording what was acknowledged.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let mut conn = first.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("w{w}:{i}");
                let done: redis::RedisResult<()> = conn.set(&key, i).await;
                match done {
                    Ok(()) => acked.lock().unwrap().push(key),
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut proxy = cluster.proxy;
    proxy.child.start_kill().expect("kill -9");
    proxy.child.wait().await.expect("gone");
    for w in writers {
        tokio::time::timeout(DEADLINE, w)
            .await
            .expect("writers stop on the lost proxy")
            .unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "only {} writes before the kill",
        acked.len()
    );
    // Through the other proxy: every acknowledged write, and more writes.
    let client = redis::Client::open(format!("redis://ledger:{token}@{other}/")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for chunk in acked.chunks(500) {
        let got: Vec<Option<String>> = conn.mget(chunk).await.unwrap();
        for (key, value) in chunk.iter().zip(got) {
            assert!(value.is_some(), "{key} was acknowledged and is lost");
        }
    }
    let _: () = conn.set("after", "the kill").await.unwrap();
    let got: String = conn.get("after").await.unwrap();
    assert_eq!(got, "the kill");
}

/// A node that restarts comes back empty: control notices its caches are
/// gone and hosts them again, so they serve again (their data is lost: no
/// replicas yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_serves_its_caches_again_empty() {
    let mut cluster = Cluster::start(1).await;
    let token = cluster.create("phoenix").await;
    let mut c = cluster.client("phoenix", &token).await;
    let _: () = c.set("k", "before").await.unwrap();
    let addr = cluster.nodes[0].addr("node_addr");
    cluster.nodes[0].child.start_kill().expect("kill -9");
    cluster.nodes[0].child.wait().await.expect("gone");
    let failed: redis::RedisResult<Option<String>> = c.get("k").await;
    assert!(failed.is_err(), "a dead node answers an error: {failed:?}");
    // The same address again (as a StatefulSet's pod would have).
    let port = addr.port().to_string();
    cluster.nodes[0] = Role::spawn(
        &["node", "--port", &port],
        &[("STRATUS_TOKEN_KEY", TOKEN_KEY)],
        "stratus node serving",
    )
    .await;
    eventually("the cache serves again", || {
        let mut c = c.clone();
        async move {
            let done: redis::RedisResult<()> = c.set("k", "after").await;
            done.is_ok()
        }
    })
    .await;
    let got: String = c.get("k").await.unwrap();
    assert_eq!(got, "after");
}

/// A cache's ECPU/s maximum holds for the cache as a whole when two
/// proxies serve it: control grants each a share from what they report.
/// Clients skewed 9 to 1 between the proxies, closed loops of GETs (1 ECPU
/// each) as fast as they are answered: over 10 s, once the shares have
/// settled, the cache is admitted its limit to within 10% (each proxy
/// alone would admit the whole limit: twice it in all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ecpu_limit_holds_across_two_proxies() {
    let cluster = Cluster::start(1).await;
    let second = spawn_proxy(&cluster.control, "500").await;
    const LIMIT: u64 = 1000;
    let r = cluster
        .api
        .post(
            "/v1/caches",
            &format!(r#"{{"name": "metered", "usage_limits": {{"ecpu_per_second": {{"maximum": {LIMIT}}}}}}}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    let first = cluster.client("metered", &token).await;
    let other = redis::Client::open(format!(
        "redis://metered:{token}@{}/",
        second.addr("resp_addr")
    ))
    .unwrap();
    let end = std::time::Instant::now() + DEADLINE;
    let second_conn = loop {
        match other.get_multiplexed_async_connection().await {
            Ok(c) => break c,
            Err(e) => assert!(std::time::Instant::now() < end, "{e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = std::time::Instant::now() + std::time::Duration::from_secs(16);
    let mut clients = Vec::new();
    for (conn, loops) in [(first, 9), (second_conn, 1)] {
        for _ in 0..loops {
            let mut conn = conn.clone();
            let (counted, counting) = (counted.clone(), counting.clone());
            clients.push(tokio::spawn(async move {
                while std::time::Instant::now() < stop {
                    let got: redis::RedisResult<Option<String>> = conn.get("k").await;
                    if got.is_ok() && counting.load(std::sync::atomic::Ordering::Relaxed) {
                        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    // Shares settle within a few check-ins (500 ms each); then 10 s counted.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    counting.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    counting.store(false, std::sync::atomic::Ordering::Relaxed);
    let admitted = counted.load(std::sync::atomic::Ordering::Relaxed) as f64 / 10.0;
    for c in clients {
        c.await.unwrap();
    }
    let ratio = admitted / LIMIT as f64;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "admitted {admitted:.0} ECPU/s against a limit of {LIMIT}"
    );
}

/// A cache's partitions as control shows them: (id, first slot, last
/// slot, node address).
async fn partitions_of(api: &Http, cache: &str) -> Vec<(u64, u64, u64, String)> {
    let view = api.get(&format!("/v1/caches/{cache}/partitions")).await;
    assert_eq!(view.status, 200, "{}", view.text());
    view.json()["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            (
                p["id"].as_u64().expect("id"),
                p["slots"]["first"].as_u64().expect("first"),
                p["slots"]["last"].as_u64().expect("last"),
                p["node"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// How many nodes hold a partition of `cache`, and how many partitions.
async fn spread_of(api: &Http, cache: &str) -> (usize, usize) {
    let parts = partitions_of(api, cache).await;
    let mut homes: Vec<&String> = parts.iter().map(|p| &p.3).collect();
    homes.sort();
    homes.dedup();
    (homes.len(), parts.len())
}

/// Reads `keys` in one pipeline every 20 ms until aborted: a steady load.
fn read_steadily(
    mut c: redis::aio::MultiplexedConnection,
    keys: Vec<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.get(k);
            }
            let _: Vec<Option<String>> = pipe.query_async(&mut c).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
}

/// Control's nodes: (id, addr, state, partitions as (cache, id)).
async fn nodes_of(api: &Http) -> Vec<(String, String, String, Vec<(String, u64)>)> {
    let view = api.get("/v1/nodes").await.json();
    view["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            let parts = n["partitions"]
                .as_array()
                .expect("partitions")
                .iter()
                .map(|p| {
                    (
                        p["cache"].as_str().unwrap().to_string(),
                        p["id"].as_u64().unwrap(),
                    )
                })
                .collect();
            (
                n["id"].as_str().unwrap().to_string(),
                n["addr"].as_str().unwrap().to_string(),
                n["state"].as_str().unwrap().to_string(),
                parts,
            )
        })
        .collect()
}

/// A cache spreads over the nodes; one partition moves to another node
/// on request (its keys with it, readable throughout), and a drained node
/// gives up all it hosts and takes nothing new; bad requests are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_move_between_nodes_on_request_and_by_drain() {
    let cluster = Cluster::start_with(3, &["--initial-partitions", "3"]).await;
    let token = cluster.create("spread").await;
    let parts = partitions_of(&cluster.api, "spread").await;
    assert_eq!(parts.len(), 3, "{parts:?}");
    let mut homes: Vec<&String> = parts.iter().map(|p| &p.3).collect();
    homes.sort();
    homes.dedup();
    assert_eq!(homes.len(), 3, "one partition on each node: {parts:?}");
    let mut c = cluster.client("spread", &token).await;
    for i in 0..3000 {
        let _: () = c.set(format!("k{i}"), i).await.unwrap();
    }
    let nodes = nodes_of(&cluster.api).await;
    let (first_node, third_node) = (&nodes[0], &nodes[2]);
    // Partition 1 to the third node.
    let (id, first, last, from) = parts[0].clone();
    assert_ne!(from, third_node.1);
    let moved = cluster
        .api
        .post(
            &format!("/v1/caches/spread/partitions/{id}/move"),
            &format!(r#"{{"node": "{}"}}"#, third_node.0),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text());
    let new_id = moved.json()["partition"].as_u64().expect("new id");
    let after = partitions_of(&cluster.api, "spread").await;
    let now = after
        .iter()
        .find(|p| p.0 == new_id)
        .expect("moved partition");
    assert_eq!((now.1, now.2, &now.3), (first, last, &third_node.1));
    for i in 0..3000 {
        let v: Option<i64> = c.get(format!("k{i}")).await.unwrap();
        assert_eq!(v, Some(i), "k{i} after the move");
    }
    // Bad requests change nothing.
    for (path, body, status) in [
        (
            format!("/v1/caches/spread/partitions/{new_id}/move"),
            r#"{"node": "node-9"}"#,
            404,
        ),
        (
            "/v1/caches/spread/partitions/999/move".into(),
            r#"{"node": "node-1"}"#,
            404,
        ),
        (
            format!("/v1/caches/spread/partitions/{new_id}/move"),
            r#"{"node": 1"#,
            400,
        ),
        (
            format!("/v1/caches/spread/partitions/{new_id}/move"),
            r#"{"at": 1}"#,
            400,
        ),
        (
            format!("/v1/caches/spread/partitions/{new_id}/split"),
            r#"{"at": 0}"#,
            400,
        ),
        (
            "/v1/caches/nope/partitions/1/move".into(),
            r#"{"node": "node-1"}"#,
            404,
        ),
        ("/v1/nodes/node-9/drain".into(), "", 404),
    ] {
        let r = cluster.api.post(&path, body).await;
        assert_eq!(r.status, status, "{path} {body}: {}", r.text());
        assert!(r.json()["error"]["code"].is_string(), "{}", r.text());
    }
    // Drain the first node: everything leaves it, and stays away.
    let drained = cluster
        .api
        .post(&format!("/v1/nodes/{}/drain", first_node.0), "")
        .await;
    assert_eq!(drained.status, 202, "{}", drained.text());
    eventually("the drained node hosts nothing", || async {
        let nodes = nodes_of(&cluster.api).await;
        let n = nodes.iter().find(|n| n.0 == first_node.0).unwrap();
        n.2 == "draining" && n.3.is_empty()
    })
    .await;
    for i in 0..3000 {
        let v: Option<i64> = c.get(format!("k{i}")).await.unwrap();
        assert_eq!(v, Some(i), "k{i} after the drain");
    }
    cluster.create("later").await;
    let later = partitions_of(&cluster.api, "later").await;
    assert!(
        later.iter().all(|p| p.3 != first_node.1),
        "nothing new on a draining node: {later:?}"
    );
}

/// Jepsen-style: writers SET and SADD through the proxy while control
/// moves, splits and merges the cache's partitions across three nodes
/// (at least 20 changes); every acknowledged write is there at the end,
/// and a sample of keys, each with one writer that reads back what it
/// wrote, never reads anything else (a register is linearizable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_across_moves_splits_and_merges() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let cluster = Cluster::start_with(3, &["--initial-partitions", "2"]).await;
    let token = cluster.create("jepsen").await;
    let c = cluster.client("jepsen", &token).await;
    // Enough bytes that a move carries a partition in several steps.
    let big = "x".repeat(4096);
    for i in 0..400 {
        let _: () = c.clone().set(format!("big{i}"), &big).await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Acknowledged SETs so far, over all writers: the run lasts until
    // enough writes are in (a loaded machine writes fewer per change).
    let acked = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (mut c, stop, acked) = (c.clone(), stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            // Acknowledged SETs (key, value) and SADDs (set, member).
            let (mut sets, mut members, mut refused) = (Vec::new(), Vec::new(), 0);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("w{w}:{n}");
                let done: redis::RedisResult<()> = c.set(&key, n).await;
                match done {
                    Ok(()) => {
                        sets.push((key.clone(), n));
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => refused += 1,
                }
                let set = format!("s{}", n % 16);
                let done: redis::RedisResult<i64> = c.sadd(&set, &key).await;
                match done {
                    Ok(_) => members.push((set, key)),
                    Err(_) => refused += 1,
                }
            }
            (sets, members, refused)
        }));
    }
    let registers = {
        let (mut c, stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut checked, mut i) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let key = format!("reg{}", i % 8);
                let wrote: redis::RedisResult<()> = c.set(&key, i).await;
                if wrote.is_err() {
                    continue;
                }
                let read: redis::RedisResult<Option<u64>> = c.get(&key).await;
                if let Ok(v) = read {
                    assert_eq!(v, Some(i), "{key}: read back another value");
                    checked += 1;
                }
            }
            checked
        })
    };
    // The changes: move, split, merge, in turn, on whatever is there.
    let nodes: Vec<String> = nodes_of(&cluster.api)
        .await
        .into_iter()
        .map(|n| n.0)
        .collect();
    let (mut changes, mut tries) = (0, 0);
    while changes < 24 && tries < 200 {
        tries += 1;
        let parts = partitions_of(&cluster.api, "jepsen").await;
        let (path, body) = match tries % 3 {
            0 => {
                let p = &parts[tries % parts.len()];
                let to = &nodes[tries % nodes.len()];
                (
                    format!("/v1/caches/jepsen/partitions/{}/move", p.0),
                    format!(r#"{{"node": "{to}"}}"#),
                )
            }
            1 => {
                let p = parts.iter().max_by_key(|p| p.2 - p.1).unwrap();
                if p.2 - p.1 < 2 {
                    continue;
                }
                let at = (p.1 + p.2).div_ceil(2);
                (
                    format!("/v1/caches/jepsen/partitions/{}/split", p.0),
                    format!(r#"{{"at": {at}}}"#),
                )
            }
            _ => {
                if parts.len() < 2 {
                    continue;
                }
                let i = tries % (parts.len() - 1);
                (
                    format!("/v1/caches/jepsen/partitions/{}/merge", parts[i].0),
                    format!(r#"{{"with": {}}}"#, parts[i + 1].0),
                )
            }
        };
        let r = cluster.api.post(&path, &body).await;
        if r.status == 200 {
            changes += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(changes >= 20, "only {changes} changes in {tries} tries");
    // Writes after the last change land where it left the keys; and
    // the writers go on until 600 SETs are in (or a minute has passed).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while acked.load(Ordering::Relaxed) < 600 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut sets, mut members, mut refused) = (Vec::new(), Vec::new(), 0);
    for w in writers {
        let (s, m, r) = w.await.expect("writer");
        sets.extend(s);
        members.extend(m);
        refused += r;
    }
    let checked = registers.await.expect("register checker");
    assert!(checked > 100, "only {checked} register reads");
    assert!(sets.len() > 500, "only {} SETs acknowledged", sets.len());
    eprintln!(
        "{changes} changes; {} SETs and {} SADDs acknowledged, {refused} refused; {checked} register reads",
        sets.len(),
        members.len()
    );
    // Writes refused during moves are allowed (TRYAGAIN): not many.
    assert!(
        refused * 10 < sets.len(),
        "{refused} refused, {} acknowledged",
        sets.len()
    );
    let mut c = c.clone();
    for (key, value) in &sets {
        let got: Option<u64> = c.get(key).await.unwrap();
        assert_eq!(got, Some(*value), "acknowledged SET {key} lost");
    }
    for (set, member) in &members {
        let there: bool = c.sismember(set, member).await.unwrap();
        assert!(there, "acknowledged SADD {set} {member} lost");
    }
    for i in 0..400 {
        let got: Option<String> = c.get(format!("big{i}")).await.unwrap();
        assert_eq!(got.as_deref(), Some(&big[..]), "big{i} lost");
    }
}

/// Control's autoscaler splits a cache on nodes as it grows, each new
/// partition on the least loaded node, until the bytes spread over every
/// node; nothing is lost on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_cache_splits_and_spreads_over_the_nodes() {
    let cluster =
        Cluster::start_with(3, &["--split-bytes", "300000", "--merge-bytes", "1000"]).await;
    let token = cluster.create("grows").await;
    let mut c = cluster.client("grows", &token).await;
    let value = "v".repeat(1000);
    for i in 0..2000 {
        let _: () = c.set(format!("key:{i}"), &value).await.unwrap();
    }
    eventually("the cache splits onto every node", || async {
        let (nodes, parts) = spread_of(&cluster.api, "grows").await;
        parts >= 4 && nodes == 3
    })
    .await;
    for i in 0..2000 {
        let v: Option<String> = c.get(format!("key:{i}")).await.unwrap();
        assert_eq!(v.as_deref(), Some(&value[..]), "key:{i}");
    }
}

/// Lua through a proxy, on a cache spread over three nodes: EVAL and
/// EVALSHA run where their slot's partition is, FCALL too; a script's
/// keys must share a slot; SCRIPT KILL reaches a script running on a
/// node, whose other clients meanwhile get BUSY; a script may PUBLISH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_run_on_the_nodes_of_their_keys() {
    let cluster = Cluster::start_with(3, &["--initial-partitions", "3"]).await;
    let token = cluster.create("lua").await;
    let mut c = cluster.client("lua", &token).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("busy-reply-threshold")
        .arg(100)
        .query_async(&mut c)
        .await
        .unwrap();
    let parts = partitions_of(&cluster.api, "lua").await;
    assert_eq!(parts.len(), 3);
    // One key in each partition (so on each node).
    for key in ["a", "b", "c", "d", "e", "f"] {
        let set: String = redis::cmd("EVAL")
            .arg("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])")
            .arg(1)
            .arg(key)
            .arg(format!("v-{key}"))
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(set, format!("v-{key}"));
        let got: String = c.get(key).await.unwrap();
        assert_eq!(got, format!("v-{key}"));
    }
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        .query_async(&mut c)
        .await
        .unwrap();
    for _ in 0..3 {
        let _: i64 = redis::cmd("EVALSHA")
            .arg(&sha)
            .arg(1)
            .arg("{n}count")
            .arg(5)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let count: i64 = c.get("{n}count").await.unwrap();
    assert_eq!(count, 15);
    let cross: redis::RedisResult<()> = redis::cmd("EVAL")
        .arg("return 1")
        .arg(2)
        .arg("a")
        .arg("b")
        .query_async(&mut c)
        .await;
    let cross = cross.unwrap_err().to_string();
    assert!(
        cross.contains("hash to the same slot"),
        "keys of two slots: {cross}"
    );
    // A script's PUBLISH runs on its node and reaches the proxies'
    // subscribers (see `events_made_on_nodes_reach_every_proxy`).
    let published: redis::RedisResult<i64> = redis::cmd("EVAL")
        .arg("return redis.call('PUBLISH', 'ch', 'm')")
        .arg(0)
        .query_async(&mut c)
        .await;
    assert!(published.is_ok(), "{published:?}");
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=lib\nredis.register_function('twice', function(keys) return 2 * redis.call('GET', keys[1]) end)")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = c.set("{f}n", 21).await.unwrap();
    let twice: i64 = redis::cmd("FCALL")
        .arg("twice")
        .arg(1)
        .arg("{f}n")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(twice, 42);
    // A read-only script that spins on the node of slot {s}: its
    // partition's other clients get BUSY until SCRIPT KILL stops it.
    let url = format!("redis://lua:{token}@{}/", cluster.resp());
    let spinner = redis::Client::open(url.clone()).unwrap();
    let mut runner = spinner.get_multiplexed_async_connection().await.unwrap();
    let spin = tokio::spawn(async move {
        let r: redis::RedisResult<()> = redis::cmd("EVAL")
            .arg("local x = redis.call('GET', KEYS[1]) while true do end")
            .arg(1)
            .arg("{s}spin")
            .query_async(&mut runner)
            .await;
        r
    });
    eventually("BUSY for the partition's other clients", || {
        let mut c = c.clone();
        async move {
            let r: redis::RedisResult<Option<String>> = c.get("{s}other").await;
            r.is_err_and(|e| e.to_string().contains("BUSY"))
        }
    })
    .await;
    let killed: String = redis::cmd("SCRIPT")
        .arg("KILL")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(killed, "OK");
    let ended = spin.await.unwrap();
    assert!(
        ended.unwrap_err().to_string().contains("killed"),
        "the script ends killed"
    );
    let after: Option<String> = c.get("{s}other").await.unwrap();
    assert_eq!(after, None);
    // A script runs with its caller's permissions, on the node too.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "reader", "on", ">pw", "~*", "+@read", "+eval"])
        .query_async(&mut c)
        .await
        .unwrap();
    let reader = redis::Client::open(format!("redis://lua.reader:pw@{}/", cluster.resp())).unwrap();
    let mut reader = reader.get_multiplexed_async_connection().await.unwrap();
    let read: String = redis::cmd("EVAL")
        .arg("return redis.call('GET', KEYS[1])")
        .arg(1)
        .arg("a")
        .query_async(&mut reader)
        .await
        .unwrap();
    assert_eq!(read, "v-a");
    let write: redis::RedisResult<()> = redis::cmd("EVAL")
        .arg("return redis.call('SET', KEYS[1], 'x')")
        .arg(1)
        .arg("a")
        .query_async(&mut reader)
        .await;
    let write = write.unwrap_err().to_string();
    assert!(write.contains("can't run this command"), "{write}");
    let still: String = c.get("a").await.unwrap();
    assert_eq!(still, "v-a");
}

/// A client blocked on a key that does not exist yet follows the key's
/// partition when it moves to another node: a push there serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_client_follows_its_key_to_another_node() {
    let cluster = Cluster::start_with(2, &["--initial-partitions", "2"]).await;
    let token = cluster.create("queue").await;
    let c = cluster.client("queue", &token).await;
    let parts = partitions_of(&cluster.api, "queue").await;
    let slot = u64::from(stratus::partition::key_slot(b"jobs"));
    let (id, _, _, home) = parts
        .iter()
        .find(|p| p.1 <= slot && slot <= p.2)
        .cloned()
        .expect("the key's partition");
    let nodes = nodes_of(&cluster.api).await;
    let other = nodes.iter().find(|n| n.1 != home).expect("another node");
    let url = format!("redis://queue:{token}@{}/", cluster.resp());
    // A response timeout longer than the BLPOP's.
    let mut waiter = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection_with_config(&redis_config())
        .await
        .unwrap();
    let waiting = tokio::spawn(async move {
        let got: redis::RedisResult<Option<(String, String)>> = redis::cmd("BLPOP")
            .arg("jobs")
            .arg(20)
            .query_async(&mut waiter)
            .await;
        got
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let moved = cluster
        .api
        .post(
            &format!("/v1/caches/queue/partitions/{id}/move"),
            &format!(r#"{{"node": "{}"}}"#, other.0),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text());
    let after = partitions_of(&cluster.api, "queue").await;
    assert!(
        after
            .iter()
            .any(|p| p.1 <= slot && slot <= p.2 && p.3 == other.1),
        "{after:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut c = c.clone();
    let _: i64 = c.rpush("jobs", "job-1").await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("served within seconds, not at its timeout")
        .unwrap()
        .unwrap();
    assert_eq!(got, Some(("jobs".to_string(), "job-1".to_string())));
}

/// Control owns caches and users; any proxy takes changes for it: the API's
/// writes sent to a proxy and a client's `ACL SETUSER` / `DELUSER` go to
/// control, the proxy serves them before it answers, and every other proxy
/// follows at its next check-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_and_users_changed_through_any_proxy_reach_every_proxy() {
    let cluster = Cluster::start(2).await;
    let other = spawn_proxy(&cluster.control, "50").await;
    let (a, b) = (cluster.resp(), other.addr("resp_addr"));
    let api_a = Http::new(cluster.proxy.addr("http_addr"));
    let api_b = Http::new(other.addr("http_addr"));
    // A cache made through proxy A's API: served there at once, and the
    // endpoint named is proxy A's.
    let r = api_a.post("/v1/caches", r#"{"name": "shop"}"#).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    assert_eq!(created["endpoint"]["port"], a.port());
    let token = created["token"].as_str().unwrap().to_string();
    let mut admin = Raw::connect(a).await;
    assert_eq!(admin.cmd(&["AUTH", "shop", &token]).await, ok());
    // Control lists it; a proxy's own list is never written to directly.
    assert_eq!(cluster.api.get("/v1/caches/shop").await.status, 200);
    assert_eq!(
        api_a.post("/v1/caches", r#"{"name": "shop"}"#).await.status,
        409
    );
    // A user made by a client of proxy A logs in on proxy B.
    assert_eq!(
        admin
            .cmd(&["ACL", "SETUSER", "app", "on", ">app-pw", "~*", "+@all"])
            .await,
        ok()
    );
    let mut on_a = Raw::connect(a).await;
    assert_eq!(on_a.cmd(&["AUTH", "shop.app", "app-pw"]).await, ok());
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut on_b = loop {
        let mut c = Raw::connect(b).await;
        if c.cmd(&["AUTH", "shop.app", "app-pw"]).await == ok() {
            break c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "proxy B never knew the user"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(on_b.cmd(&["SET", "k", "v"]).await, ok());
    assert_eq!(on_a.cmd(&["GET", "k"]).await, bulk("v"));
    // A refused rule is control's refusal, word for word.
    let r = admin
        .cmd(&["ACL", "SETUSER", "app", "+nosuchcommand"])
        .await;
    assert!(r.is_error(), "{r:?}");
    // Disconnecting the user through proxy B's API closes its
    // connections on proxy A too.
    let r = api_b
        .patch("/v1/caches/shop/users/app", r#"{"disconnect": true}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    on_a.assert_closed().await;
    on_b.assert_closed().await;
    // ACL DELUSER through proxy B: proxy A refuses the login.
    let mut via_b = Raw::connect(b).await;
    assert_eq!(via_b.cmd(&["AUTH", "shop", &token]).await, ok());
    assert_eq!(via_b.cmd(&["ACL", "DELUSER", "app"]).await, int(1));
    eventually("proxy A forgets the user", || async {
        Raw::connect(a)
            .await
            .cmd(&["AUTH", "shop.app", "app-pw"])
            .await
            == err(WRONGPASS)
    })
    .await;
    // Deleting the cache through proxy B: its token is refused on A.
    assert_eq!(api_b.delete("/v1/caches/shop").await.status, 200);
    eventually("proxy A forgets the cache", || async {
        Raw::connect(a).await.cmd(&["AUTH", "shop", &token]).await == err(WRONGPASS)
    })
    .await;
    assert_eq!(cluster.api.get("/v1/caches/shop").await.status, 404);
}

/// Control splits on load as `serve` does: the proxies report what each
/// slot served at their check-ins. A cache loaded past the split
/// threshold spreads over the nodes (its load shows per partition and per
/// node); a single slot over the threshold alone is reported, not split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_splits_on_the_load_proxies_report() {
    let cluster = Cluster::start_with(
        2,
        &[
            "--split-ecpu-per-sec",
            "200",
            "--split-load-window",
            "2",
            "--merge-window",
            "3600",
        ],
    )
    .await;
    let token = cluster.create("busy").await;
    let mut c = cluster.client("busy", &token).await;
    for i in 0..200 {
        let _: () = c.set(format!("key:{i}"), i).await.unwrap();
    }
    assert_eq!(partitions_of(&cluster.api, "busy").await.len(), 1);
    // About 1,000 reads a second over 200 keys, until the cache has split
    // onto both nodes.
    let loader = c.clone();
    let load = |keys: Vec<String>| read_steadily(loader.clone(), keys);
    let spread = load((0..20).map(|i| format!("key:{}", i * 10)).collect());
    eventually("the loaded cache splits over both nodes", || async {
        let (nodes, parts) = spread_of(&cluster.api, "busy").await;
        parts >= 2 && nodes == 2
    })
    .await;
    spread.abort();
    let view = cluster.api.get("/v1/caches/busy/partitions").await.json();
    let loads: Vec<f64> = view["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ecpu_per_second"].as_f64().unwrap())
        .collect();
    assert!(loads.iter().any(|l| *l > 0.0), "{view}");
    // The view says why (control's placer split them, for load: noted
    // once the split's moves are done), and control counts the split as
    // serve counts its own.
    eventually("the view says the partitions split for load", || async {
        let view = cluster.api.get("/v1/caches/busy/partitions").await.json();
        view["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["last_change"]["kind"] == "split" && p["last_change"]["reason"] == "load")
    })
    .await;
    let metrics = cluster.api.get("/metrics").await.text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("stratus_partition_splits_total{")
                && l.contains("cache=\"busy\"")
                && l.contains("reason=\"load\"")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
    for i in 0..200 {
        let v: Option<i64> = c.get(format!("key:{i}")).await.unwrap();
        assert_eq!(v, Some(i), "key:{i}");
    }
    // One slot alone past the threshold: reported as hot, not split.
    let hot = load(vec!["{h}k".to_string(); 20]);
    let slot = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("{h}k")
        .query_async::<i64>(&mut c)
        .await
        .unwrap();
    eventually("the hot slot is reported", || async {
        let view = cluster.api.get("/v1/caches/busy/partitions").await.json();
        view["partitions"].as_array().unwrap().iter().any(|p| {
            p["hot_slot"] == slot && p["slots"]["first"] == slot && p["slots"]["last"] == slot
        })
    })
    .await;
    hot.abort();
}

/// What happens on a node reaches the clients of every proxy: a script's
/// and a client's PUBLISH, the keyspace events of a write made through another proxy and
/// of the node's own expiry, and client-side caching's invalidations — in
/// the writer's proxy with the write's reply, in the others through the
/// node's feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_made_on_nodes_reach_every_proxy() {
    let cluster = Cluster::start(2).await;
    let other = spawn_proxy(&cluster.control, "50").await;
    let token = cluster.create("events").await;
    let (a, b) = (cluster.resp(), other.addr("resp_addr"));
    let login = |addr: SocketAddr| {
        let token = token.clone();
        async move {
            let end = std::time::Instant::now() + DEADLINE;
            loop {
                let mut c = Raw::connect(addr).await;
                if c.cmd(&["AUTH", "events", &token]).await == ok() {
                    return c;
                }
                assert!(
                    std::time::Instant::now() < end,
                    "{addr} never served the cache"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    let mut writer = login(a).await;
    let mut sub_a = login(a).await;
    let mut sub_b = login(b).await;
    let mut tracker = login(b).await;
    // Each proxy's settings are its own: both notify.
    for c in [&mut writer, &mut sub_b] {
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"])
                .await,
            ok()
        );
    }
    sub_a.cmd(&["SUBSCRIBE", "news"]).await;
    sub_b
        .cmd(&[
            "SUBSCRIBE",
            "news",
            "__keyevent@0__:set",
            "__keyevent@0__:expired",
        ])
        .await;
    sub_b.read().await;
    sub_b.read().await;
    // Proxy B has just learnt of the cache: its SUBSCRIBE answered once
    // every node's feed had given B a place to read from, so a message
    // published right after (through A, into the channel's node feed)
    // reaches B.
    let first = arr(vec![bulk("message"), bulk("news"), bulk("first")]);
    assert_eq!(writer.cmd(&["PUBLISH", "news", "first"]).await, int(1));
    assert_eq!(sub_a.read().await, first);
    assert_eq!(sub_b.read().await, first);
    // Client-side caching on proxy B, of a key written through proxy A.
    assert!(!tracker.cmd(&["HELLO", "3"]).await.is_error());
    assert_eq!(tracker.cmd(&["CLIENT", "TRACKING", "ON"]).await, ok());
    assert_eq!(writer.cmd(&["SET", "cached", "1"]).await, ok());
    assert_eq!(tracker.cmd(&["GET", "cached"]).await, bulk("1"));
    // A script's message: to the subscribers of both proxies.
    let r = writer
        .cmd(&["EVAL", "return redis.call('PUBLISH', 'news', 'hello')", "0"])
        .await;
    assert!(!r.is_error(), "{r:?}");
    let message = arr(vec![bulk("message"), bulk("news"), bulk("hello")]);
    assert_eq!(sub_a.read().await, message);
    // (Proxy B heard of `cached`'s SET first, from the feed.)
    let mut heard = vec![sub_b.read().await, sub_b.read().await];
    heard.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(
        heard,
        vec![
            arr(vec![
                bulk("message"),
                bulk("__keyevent@0__:set"),
                bulk("cached")
            ]),
            message.clone(),
        ]
    );
    // A write through proxy A: its event on proxy B, and B's tracking
    // client hears its cached key changed.
    assert_eq!(writer.cmd(&["SET", "cached", "2"]).await, ok());
    assert_eq!(
        sub_b.read().await,
        arr(vec![
            bulk("message"),
            bulk("__keyevent@0__:set"),
            bulk("cached")
        ])
    );
    assert_eq!(
        tracker.read().await,
        Resp::Push(vec![bulk("invalidate"), arr(vec![bulk("cached")])])
    );
    // A client's PUBLISH on proxy B: its own subscribers are counted, proxy
    // A's hear it too.
    let mut publisher = login(b).await;
    assert_eq!(publisher.cmd(&["PUBLISH", "news", "again"]).await, int(1));
    let again = arr(vec![bulk("message"), bulk("news"), bulk("again")]);
    assert_eq!(sub_b.read().await, again);
    assert_eq!(sub_a.read().await, again);
    // The node's own expiry.
    assert_eq!(writer.cmd(&["SET", "brief", "x", "PX", "50"]).await, ok());
    assert_eq!(
        sub_b.read().await,
        arr(vec![
            bulk("message"),
            bulk("__keyevent@0__:set"),
            bulk("brief")
        ])
    );
    assert_eq!(
        sub_b.read().await,
        arr(vec![
            bulk("message"),
            bulk("__keyevent@0__:expired"),
            bulk("brief")
        ])
    );
}

/// A SUBSCRIBE on a proxy that has only just learnt of a cache answers
/// once every node's feed has given the proxy a place to read from: a
/// message published right after it, through another proxy, reaches the
/// subscriber (a new cache is the widest such window: the proxy's reader
/// of each node's feed is not running yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_hears_what_is_published_right_after_its_subscribe() {
    let cluster = Cluster::start(2).await;
    let other = spawn_proxy(&cluster.control, "50").await;
    let (a, b) = (cluster.resp(), other.addr("resp_addr"));
    for round in 0..6 {
        let name = format!("fresh{round}");
        let token = cluster.create(&name).await;
        // The first moment each proxy serves the cache.
        let first_served = |addr: SocketAddr| {
            let (name, token) = (name.clone(), token.clone());
            async move {
                let end = std::time::Instant::now() + DEADLINE;
                loop {
                    let mut c = Raw::connect(addr).await;
                    if c.cmd(&["AUTH", &name, &token]).await == ok() {
                        return c;
                    }
                    assert!(
                        std::time::Instant::now() < end,
                        "{addr} never served {name}"
                    );
                }
            }
        };
        let (mut publisher, mut sub) = tokio::join!(first_served(a), first_served(b));
        sub.cmd(&["SUBSCRIBE", "ch"]).await;
        assert_eq!(publisher.cmd(&["PUBLISH", "ch", "now"]).await, int(0));
        let heard = sub.read_timeout(std::time::Duration::from_secs(5)).await;
        let message = arr(vec![bulk("message"), bulk("ch"), bulk("now")]);
        assert!(
            matches!(&heard, Read::Reply(r) if *r == message),
            "round {round}: {heard:?}"
        );
    }
}

/// Control's autoscaler merges cold, small neighbours as `serve`'s does —
/// across nodes (the right one moves to the left one's node first) — and
/// its partition view says so; nothing stored is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_merges_cold_small_partitions_across_nodes() {
    let cluster = Cluster::start_with(
        2,
        &[
            "--initial-partitions",
            "4",
            "--merge-bytes",
            "100000",
            "--merge-window",
            "1",
            "--merge-delay",
            "0",
        ],
    )
    .await;
    let token = cluster.create("cold").await;
    let mut c = cluster.client("cold", &token).await;
    for i in 0..50 {
        let _: () = c.set(format!("key:{i}"), i).await.unwrap();
    }
    eventually("the cold cache merges into one partition", || async {
        partitions_of(&cluster.api, "cold").await.len() == 1
    })
    .await;
    let view = cluster.api.get("/v1/caches/cold/partitions").await.json();
    let only = &view["partitions"][0];
    assert_eq!(only["last_change"]["kind"], "merge", "{view}");
    assert_eq!(only["last_change"]["reason"], "cold", "{view}");
    for i in 0..50 {
        let v: Option<i64> = c.get(format!("key:{i}")).await.unwrap();
        assert_eq!(v, Some(i), "key:{i}");
    }
}

/// Control balances load as it balances bytes: a cache whose partitions
/// are all on one node, serving a load no single partition needs split
/// for, gets one of them moved to the idle node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_balances_load_across_nodes() {
    let cluster = Cluster::start_with(
        2,
        &[
            "--initial-partitions",
            "2",
            "--split-ecpu-per-sec",
            "2000",
            "--split-load-window",
            "2",
            "--merge-window",
            "3600",
        ],
    )
    .await;
    let token = cluster.create("spread").await;
    let mut c = cluster.client("spread", &token).await;
    let nodes = nodes_of(&cluster.api).await;
    let (home_id, home_addr) = (nodes[0].0.clone(), nodes[0].1.clone());
    for p in partitions_of(&cluster.api, "spread").await {
        if p.3 != home_addr {
            let path = format!("/v1/caches/spread/partitions/{}/move", p.0);
            let r = cluster
                .api
                .post(&path, &format!(r#"{{"node": "{home_id}"}}"#))
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }
    let parts = partitions_of(&cluster.api, "spread").await;
    assert!(parts.iter().all(|p| p.3 == home_addr), "{parts:?}");
    // Twenty keys in each partition, read about 2,000 times a second.
    let mut keys = Vec::new();
    for p in &parts {
        let mine = (0..)
            .map(|i| format!("key:{i}"))
            .filter(|k| {
                (p.1..=p.2).contains(&u64::from(stratus::partition::key_slot(k.as_bytes())))
            })
            .take(20);
        keys.extend(mine);
    }
    for k in &keys {
        let _: () = c.set(k, 1).await.unwrap();
    }
    let load = read_steadily(c.clone(), keys);
    eventually("the load spreads over both nodes", || async {
        spread_of(&cluster.api, "spread").await.0 == 2
    })
    .await;
    load.abort();
    assert_eq!(
        partitions_of(&cluster.api, "spread").await.len(),
        2,
        "moved, not split"
    );
}
