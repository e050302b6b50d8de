//! Elastic partitions over real TCP: hash slots as Redis Cluster computes
//! them, splits and merges while clients read and write, fan-out of per-key
//! multi-key commands, SCAN across partitions, cluster-mode clients, the
//! partition view and its metrics.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Http, Raw, Resp, eventually, redis_conn, start};
use redis::AsyncCommands;
use stratus::config::ServeConfig;

/// Thresholds small enough to watch splits and merges within seconds.
fn elastic() -> ServeConfig {
    ServeConfig {
        split_bytes: 32 * 1024,
        merge_bytes: 16 * 1024,
        split_ecpu_per_sec: 1_000_000,
        split_load_window: 1,
        merge_window: 1,
        merge_delay: 1,
        ..ServeConfig::default()
    }
}

async fn partitions(http: &Http, cache: &str) -> Vec<serde_json::Value> {
    let r = http.get(&format!("/v1/caches/{cache}/partitions")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["partitions"]
        .as_array()
        .expect("partitions")
        .clone()
}

/// Sum of a counter over its series for `cache` (and an optional label).
async fn counter(http: &Http, name: &str, cache: &str, label: Option<&str>) -> u64 {
    http.get("/metrics")
        .await
        .text()
        .lines()
        .filter(|l| {
            l.starts_with(&format!("{name}{{")) && l.contains(&format!("cache=\"{cache}\""))
        })
        .filter(|l| label.is_none_or(|lab| l.contains(lab)))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0) as u64
        })
        .sum()
}

/// Starts a real redis-server in cluster mode (it answers CLUSTER KEYSLOT).
fn redis_cluster_node() -> (std::process::Child, u16, tempdir::Dir) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let dir = tempdir::Dir::new(&format!("redis-cluster-{port}"));
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        .current_dir(&dir.0)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server");
    (child, port, dir)
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(name: &str) -> Dir {
            let p =
                std::env::temp_dir().join(format!("stratus-test-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&p).expect("temp dir");
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_keyslot_agrees_with_redis_cluster() {
    let (mut redis, port, _dir) = redis_cluster_node();
    let redis_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    eventually("redis-server accepts connections", || async {
        tokio::net::TcpStream::connect(redis_addr).await.is_ok()
    })
    .await;
    let server = start(ServeConfig::default()).await;
    let mut ours = Raw::connect(server.resp_addr).await;
    let mut theirs = Raw::connect(redis_addr).await;
    let mut keys: Vec<String> = vec![
        "foo",
        "bar",
        "hello",
        "123456789",
        "",
        "{user1000}.following",
        "{user1000}.followers",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "{}",
        "{",
        "}",
        "{a",
        "a}",
        "{{}}",
        "x{y}z{w}",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    keys.extend((0..200).map(|i| format!("key:{i}:{}", i * 7919)));
    for k in &keys {
        let want = theirs.cmd(&["CLUSTER", "KEYSLOT", k]).await;
        assert!(matches!(want, Resp::Int(_)), "redis: {want:?}");
        assert_eq!(
            ours.cmd(&["CLUSTER", "KEYSLOT", k]).await,
            want,
            "key {k:?}"
        );
    }
    let _ = redis.kill();
    let _ = redis.wait();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_and_merges_lose_no_acknowledged_write_and_no_read_misses() {
    let server = start(elastic()).await;
    let http = Http::new(server.http_addr);
    let addr = server.resp_addr;
    // key -> last acknowledged version
    let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let value = |key: &str, v: u64| format!("{key}:{v}:{}", "x".repeat(100));

    // Sentinels: written once, read and scanned all along, never deleted.
    let mut c = redis_conn(addr, false).await;
    // ~10 kB in all: little enough for neighbours to merge under 16 kB.
    let sentinels: Vec<String> = (0..50).map(|i| format!("sentinel:{i}")).collect();
    for k in &sentinels {
        let _: () = c.set(k, value(k, 0)).await.expect("set sentinel");
        acked.lock().expect("lock").insert(k.clone(), 0);
    }

    // Writers: grow the data (splits), then delete most of it (merges).
    let mut writers = Vec::new();
    for w in 0..3 {
        let (acked, errors) = (acked.clone(), errors.clone());
        writers.push(tokio::spawn(async move {
            let mut c = redis_conn(addr, false).await;
            for round in 1..=3u64 {
                for i in 0..400 {
                    let key = format!("w{w}:{i}");
                    let r: redis::RedisResult<()> = c
                        .set(&key, format!("{key}:{round}:{}", "x".repeat(100)))
                        .await;
                    match r {
                        Ok(()) => {
                            acked.lock().expect("lock").insert(key, round);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
    }
    // Readers: every acknowledged key must be found, at least as new as acknowledged.
    let mut readers = Vec::new();
    for r in 0..2u64 {
        let (acked, errors, stop, reads) =
            (acked.clone(), errors.clone(), stop.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            let mut c = redis_conn(addr, false).await;
            let mut n = r;
            while !stop.load(Ordering::Relaxed) {
                let picked = {
                    let map = acked.lock().expect("lock");
                    let len = map.len().max(1) as u64;
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    map.iter()
                        .nth((n >> 33) as usize % len as usize)
                        .map(|(k, v)| (k.clone(), *v))
                };
                let Some((key, version)) = picked else {
                    continue;
                };
                match c.get::<_, Option<String>>(&key).await {
                    Ok(Some(v)) => {
                        let got: u64 = v
                            .split(':')
                            .nth(2)
                            .and_then(|x| x.parse().ok())
                            .expect("version");
                        assert!(
                            got >= version,
                            "{key}: read version {got} older than acknowledged {version}"
                        );
                    }
                    Ok(None) => {
                        if acked.lock().expect("lock").contains_key(&key) {
                            panic!("read missed existing key {key}");
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // A scanner: every full SCAN returns every sentinel.
    let scanner = {
        let (stop, sentinels) = (stop.clone(), sentinels.clone());
        tokio::spawn(async move {
            let mut c = redis_conn(addr, false).await;
            let mut scans = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut seen = HashSet::new();
                let mut cursor = 0u64;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(20)
                        .query_async(&mut c)
                        .await
                        .expect("scan");
                    seen.extend(keys);
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
                for s in &sentinels {
                    assert!(seen.contains(s), "a full SCAN missed {s}");
                }
                scans += 1;
            }
            scans
        })
    };
    for w in writers {
        w.await.expect("writer");
    }
    eventually("the cache splits on size", || async {
        partitions(&http, "default").await.len() >= 4
    })
    .await;
    // Shrink: delete the writers' keys (acknowledged deletes leave the map first).
    let mut c2 = redis_conn(addr, false).await;
    for w in 0..3 {
        for i in 0..400 {
            let key = format!("w{w}:{i}");
            acked.lock().expect("lock").remove(&key);
            let _: i64 = c2.del(&key).await.expect("del");
        }
    }
    eventually("cold, small partitions merge", || async {
        counter(&http, "stratus_partition_merges_total", "default", None).await > 0
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.expect("reader");
    }
    let scans = scanner.await.expect("scanner");
    assert!(scans > 0, "no full scan completed");
    assert!(reads.load(Ordering::Relaxed) > 100);
    assert_eq!(errors.load(Ordering::Relaxed), 0, "clients saw errors");
    // Every acknowledged write is readable with its last value.
    let last = acked.lock().expect("lock").clone();
    for (key, version) in last {
        let v: Option<String> = c2.get(&key).await.expect("get");
        assert_eq!(v, Some(value(&key, version)), "{key}");
    }
    assert!(
        counter(
            &http,
            "stratus_partition_splits_total",
            "default",
            Some("reason=\"size\"")
        )
        .await
            > 0
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_multi_key_commands_fan_out_and_atomic_ones_need_one_slot() {
    let server = start(ServeConfig {
        initial_partitions: 8,
        ..ServeConfig::default()
    })
    .await;
    let mut raw = Raw::connect(server.resp_addr).await;
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let mut mset = vec!["MSET".to_string()];
    for k in &keys {
        mset.push(k.clone());
        mset.push(format!("v-{k}"));
    }
    assert_eq!(raw.cmd(&mset).await, Resp::Simple("OK".into()));
    let mut mget = vec!["MGET".to_string()];
    mget.extend(keys.iter().cloned());
    mget.push("missing".into());
    let reply = raw.cmd(&mget).await;
    let mut want: Vec<Resp> = keys
        .iter()
        .map(|k| Resp::Bulk(format!("v-{k}").into_bytes()))
        .collect();
    want.push(Resp::Nil);
    assert_eq!(reply.items(), &want[..]);
    let mut exists = vec!["EXISTS".to_string()];
    exists.extend(keys.iter().cloned());
    exists.push("k0".into());
    assert_eq!(raw.cmd(&exists).await, Resp::Int(41));
    let mut touch = vec!["TOUCH".to_string()];
    touch.extend(keys.iter().take(10).cloned());
    assert_eq!(raw.cmd(&touch).await, Resp::Int(10));
    let mut unlink = vec!["UNLINK".to_string()];
    unlink.extend(keys.iter().take(20).cloned());
    assert_eq!(raw.cmd(&unlink).await, Resp::Int(20));
    let mut del = vec!["DEL".to_string()];
    del.extend(keys.iter().cloned());
    assert_eq!(raw.cmd(&del).await, Resp::Int(20));
    assert_eq!(raw.cmd(&["DBSIZE"]).await, Resp::Int(0));
    let crossslot = Resp::Error("CROSSSLOT Keys in request don't hash to the same slot".into());
    raw.cmd(&["SET", "a", "1"]).await;
    assert_eq!(raw.cmd(&["RENAME", "a", "b"]).await, crossslot);
    assert_eq!(raw.cmd(&["COPY", "a", "b"]).await, crossslot);
    assert_eq!(raw.cmd(&["RENAMENX", "a", "b"]).await, crossslot);
    assert_eq!(raw.cmd(&["MSETNX", "a", "1", "b", "2"]).await, crossslot);
    raw.cmd(&["SET", "{t}a", "1"]).await;
    assert_eq!(
        raw.cmd(&["RENAME", "{t}a", "{t}b"]).await,
        Resp::Simple("OK".into())
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_walks_every_partition_once() {
    let server = start(ServeConfig {
        initial_partitions: 16,
        ..ServeConfig::default()
    })
    .await;
    let mut c = redis_conn(server.resp_addr, false).await;
    for i in 0..1000 {
        let _: () = c.set(format!("s:{i}"), i).await.expect("set");
    }
    let _: () = c.hset("h", "f", "v").await.expect("hset");
    let mut seen = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("s:*")
            .arg("COUNT")
            .arg(50)
            .query_async(&mut c)
            .await
            .expect("scan");
        seen.extend(keys);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 1000);
    assert_eq!(seen.len(), 1000, "no duplicates without splits");
    let (_, hashes): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("TYPE")
        .arg("hash")
        .arg("COUNT")
        .arg(100_000)
        .query_async(&mut c)
        .await
        .expect("scan type");
    assert_eq!(hashes, vec!["h".to_string()]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_crate_cluster_client_works_against_the_virtual_node() {
    let server = start(ServeConfig {
        initial_partitions: 4,
        ..ServeConfig::default()
    })
    .await;
    let url = format!("redis://{}/", server.resp_addr);
    let client = redis::cluster::ClusterClient::new(vec![url]).expect("cluster client");
    let mut c = client
        .get_async_connection()
        .await
        .expect("cluster connection");
    for i in 0..100 {
        let _: () = c.set(format!("c:{i}"), i).await.expect("set");
    }
    for i in 0..100 {
        let v: i64 = c.get(format!("c:{i}")).await.expect("get");
        assert_eq!(v, i);
    }
    let vals: Vec<i64> = c
        .mget(&["{t}1", "{t}2"])
        .await
        .map(|v: Vec<Option<i64>>| v.into_iter().map(|x| x.unwrap_or(-1)).collect())
        .expect("mget");
    assert_eq!(vals, vec![-1, -1]);
    let mut raw = Raw::connect(server.resp_addr).await;
    let slots = raw.cmd(&["CLUSTER", "SLOTS"]).await;
    let range = &slots.items()[0];
    assert_eq!(range.items()[0], Resp::Int(0));
    assert_eq!(range.items()[1], Resp::Int(16383));
    assert_eq!(
        range.items()[2].items()[1],
        Resp::Int(i64::from(server.resp_addr.port()))
    );
    let info = raw.cmd(&["CLUSTER", "INFO"]).await.text();
    assert!(info.contains("cluster_state:ok"), "{info}");
    let nodes = raw.cmd(&["CLUSTER", "NODES"]).await.text();
    assert!(
        nodes.contains("myself,master") && nodes.contains("0-16383"),
        "{nodes}"
    );
    let id = raw.cmd(&["CLUSTER", "MYID"]).await.text();
    assert_eq!(id.len(), 40);
    assert!(nodes.starts_with(&id));
    assert_eq!(
        raw.cmd(&["CLUSTER", "COUNTKEYSINSLOT", "12182"]).await,
        Resp::Int(0)
    );
    raw.cmd(&["SET", "foo", "1"]).await;
    assert_eq!(
        raw.cmd(&["CLUSTER", "COUNTKEYSINSLOT", "12182"]).await,
        Resp::Int(1)
    );
    assert_eq!(
        raw.cmd(&["CLUSTER", "GETKEYSINSLOT", "12182", "10"])
            .await
            .items(),
        &[Resp::Bulk(b"foo".to_vec())]
    );
    assert_eq!(
        raw.cmd(&["CLUSTER", "COUNTKEYSINSLOT", "16384"]).await,
        Resp::Error("ERR Invalid slot".into())
    );
    assert_eq!(raw.cmd(&["READONLY"]).await, Resp::Simple("OK".into()));
    assert_eq!(raw.cmd(&["READWRITE"]).await, Resp::Simple("OK".into()));
    let shards = raw.cmd(&["CLUSTER", "SHARDS"]).await;
    assert_eq!(shards.items().len(), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_load_splits_and_a_single_hot_slot_is_reported_not_split() {
    let server = start(ServeConfig {
        split_ecpu_per_sec: 50,
        split_load_window: 2,
        split_bytes: 64 * 1024,
        merge_bytes: 1024,
        merge_delay: 3600,
        initial_partitions: 4096,
        ..ServeConfig::default()
    })
    .await;
    let http = Http::new(server.http_addr);
    let mut c = redis_conn(server.resp_addr, false).await;
    // One big value in one slot: its 4-slot partition splits until the slot is alone.
    let _: () = c
        .set("{hot}big", "x".repeat(100 * 1024))
        .await
        .expect("set");
    let slot = {
        let mut raw = Raw::connect(server.resp_addr).await;
        raw.cmd(&["CLUSTER", "KEYSLOT", "{hot}big"]).await.int()
    };
    eventually("the hot slot is reported", || async {
        partitions(&http, "default")
            .await
            .iter()
            .any(|p| p["hot_slot"] == slot)
    })
    .await;
    let hot = partitions(&http, "default")
        .await
        .into_iter()
        .find(|p| p["hot_slot"] == slot)
        .expect("hot");
    assert_eq!(
        hot["slots"]["first"], hot["slots"]["last"],
        "reported once alone: {hot}"
    );
    assert_eq!(
        counter(&http, "stratus_hot_slots", "default", None).await,
        1
    );
    // Load over 50 ECPU/s for 2 s on keys of one 4-slot partition splits it on load.
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline
        && counter(
            &http,
            "stratus_partition_splits_total",
            "default",
            Some("reason=\"load\""),
        )
        .await
            == 0
    {
        for i in 0..100 {
            let _: Option<String> = c.get(format!("{{a}}{i}")).await.expect("get");
            let _: Option<String> = c.get(format!("{{b}}{i}")).await.expect("get");
        }
    }
    assert!(
        counter(
            &http,
            "stratus_partition_splits_total",
            "default",
            Some("reason=\"load\"")
        )
        .await
            > 0,
        "no load split"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimum_ecpu_pre_splits_and_the_partition_view_covers_every_slot() {
    let server = start(ServeConfig {
        split_ecpu_per_sec: 100,
        ..ServeConfig::default()
    })
    .await;
    let http = Http::new(server.http_addr);
    let r = http.post("/v1/caches", r#"{"name": "pre", "usage_limits": {"ecpu_per_second": {"minimum": 350, "maximum": 1000}}}"#).await;
    assert_eq!(r.status, 201);
    eventually("pre-split to 4 partitions", || async {
        partitions(&http, "pre").await.len() == 4
    })
    .await;
    let parts = partitions(&http, "pre").await;
    let mut next = 0;
    for p in &parts {
        assert_eq!(p["slots"]["first"], next, "{p}");
        next = p["slots"]["last"].as_u64().expect("last") + 1;
        for field in ["id", "keys", "bytes", "ecpu_per_second", "age_seconds"] {
            assert!(p.get(field).is_some(), "{field} missing: {p}");
        }
    }
    assert_eq!(next, 16384);
    assert!(
        parts
            .iter()
            .filter(|p| p["last_change"]["reason"] == "min_ecpu")
            .count()
            >= 3
    );
    assert_eq!(
        counter(
            &http,
            "stratus_partition_splits_total",
            "pre",
            Some("reason=\"min_ecpu\"")
        )
        .await,
        3
    );
    let metrics = http.get("/metrics").await.text();
    assert!(metrics.lines().any(|l| l.starts_with("stratus_partitions{")
        && l.contains("cache=\"pre\"")
        && l.ends_with(" 4")));
    server.shutdown().await;
}
