//! Failures survived, as real processes on loopback around a real etcd
//! (Debian's `etcd-server`): the metadata store's contract on etcd, a
//! control leader stopped (SIGSTOP) and taken over by its standby, a node
//! killed (`kill -9`) or stopped past its lease, etcd restarted, and a
//! network cut between a proxy and a node (a TCP relay in the test that
//! blackholes traffic). Every wait is bounded; leases are 2 s here.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use redis::AsyncCommands;
use stratus::meta::MetaStore;

const TOKEN_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const ENV: [(&str, &str); 1] = [("STRATUS_TOKEN_KEY", TOKEN_KEY)];
const TTL: &str = "2";
const TTL_SECS: u64 = 2;

async fn node(etcd: &Etcd, id: &str) -> Role {
    Role::spawn(
        &[
            "node",
            "--etcd",
            &etcd.url,
            "--lease-ttl",
            TTL,
            "--id",
            id,
            "--port",
            "any",
            "--http-port",
            "0",
        ],
        &ENV,
        "stratus node serving",
    )
    .await
}

/// A control; `leading`: waits until it leads (else until it serves, as
/// a standby).
async fn control(etcd: &Etcd, extra: &[&str], leading: bool) -> Role {
    let mut args = vec![
        "control",
        "--etcd",
        &etcd.url,
        "--lease-ttl",
        TTL,
        "--http-port",
        "0",
    ];
    args.extend_from_slice(extra);
    let needle = if leading {
        "control ready: leading"
    } else {
        "stratus control serving"
    };
    Role::spawn(&args, &ENV, needle).await
}

/// A proxy finding control through etcd, once it is ready.
async fn proxy(etcd: &Etcd) -> Role {
    let proxy = Role::spawn(
        &[
            "proxy",
            "--etcd",
            &etcd.url,
            "--lease-ttl",
            TTL,
            "--port",
            "any",
            "--memcached-port",
            "0",
            "--http-port",
            "0",
            "--follow-period-ms",
            "100",
        ],
        &ENV,
        "stratus serving",
    )
    .await;
    let http = Http::new(proxy.addr("http_addr"));
    eventually("the proxy is ready", || async {
        http.get("/readyz").await.status == 200
    })
    .await;
    proxy
}

/// The HTTP address a control logged when it started serving.
fn api_of(control: &Role) -> Http {
    Http::new(control.addr("http_addr"))
}

async fn create(api: &Http, name: &str) -> String {
    let r = api
        .post("/v1/caches", &format!(r#"{{"name": "{name}"}}"#))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().expect("token").to_string()
}

/// A client of cache `name` through `proxy`, once the proxy serves it.
async fn client(proxy: &Role, name: &str, token: &str) -> redis::aio::MultiplexedConnection {
    let url = format!("redis://{name}:{token}@{}/", proxy.addr("resp_addr"));
    let client = redis::Client::open(url).expect("url");
    // Answers may take the link's silence limit (3 s) to fail.
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(15)));
    let end = Instant::now() + DEADLINE;
    loop {
        match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(c) => return c,
            Err(e) => assert!(Instant::now() < end, "the proxy never served {name}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for `child` to exit (at most `within`); its exit status.
async fn exits(child: &mut tokio::process::Child, within: Duration) -> std::process::ExitStatus {
    tokio::time::timeout(within, child.wait())
        .await
        .expect("the process exits in time")
        .expect("wait")
}

/// The node each of `keys` lives on now, from control's partition view.
async fn homes(api: &Http, cache: &str, keys: &[String]) -> Vec<String> {
    let parts = api.get(&format!("/v1/caches/{cache}/partitions")).await;
    assert_eq!(parts.status, 200, "{}", parts.text());
    let parts = parts.json();
    let ranges: Vec<(u64, u64, String)> = parts["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            (
                p["slots"]["first"].as_u64().expect("first slot"),
                p["slots"]["last"].as_u64().expect("last slot"),
                p["node"].as_str().expect("node").to_string(),
            )
        })
        .collect();
    keys.iter()
        .map(|k| {
            let slot = u64::from(stratus::partition::key_slot(k.as_bytes()));
            ranges
                .iter()
                .find(|(a, b, _)| (*a..=*b).contains(&slot))
                .map(|(_, _, n)| n.clone())
                .expect("every slot has a home")
        })
        .collect()
}

/// A leading control of `partitions` initial partitions, a proxy, and cache
/// `web` made through them, with `n` keys `key:<i>` set to `value`. Its
/// roles stop when they are dropped: bind every field (not `..`).
struct Web {
    _control: Role,
    api: Http,
    _proxy: Role,
    c: redis::aio::MultiplexedConnection,
    keys: Vec<String>,
}

async fn web(etcd: &Etcd, partitions: &str, n: usize, value: &str) -> Web {
    let control = control(etcd, &["--initial-partitions", partitions], true).await;
    let api = api_of(&control);
    let proxy = proxy(etcd).await;
    let token = create(&api, "web").await;
    let mut c = client(&proxy, "web", &token).await;
    let keys: Vec<String> = (0..n).map(|i| format!("key:{i}")).collect();
    for k in &keys {
        let _: () = c.set(k, value).await.unwrap();
    }
    Web {
        _control: control,
        api,
        _proxy: proxy,
        c,
        keys,
    }
}

/// The keys of `keys` whose home (see [`homes`]) is `node`, and the others.
fn by_node(keys: &[String], homes: &[String], node: &str) -> (Vec<String>, Vec<String>) {
    let (on, off): (Vec<_>, Vec<_>) = keys.iter().zip(homes).partition(|(_, h)| *h == node);
    let names = |v: Vec<(&String, &String)>| v.into_iter().map(|(k, _)| k.clone()).collect();
    (names(on), names(off))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_store_keeps_its_contract_on_etcd() {
    let etcd = Etcd::start().await;
    let store = stratus::meta::EtcdStore::connect(std::slice::from_ref(&etcd.url))
        .await
        .expect("connect");
    stratus::meta::conformance::check(&store)
        .await
        .expect("the contract holds on etcd");
    // A lease not renewed expires, and its key goes with it.
    let lease = store.grant(Duration::from_secs(2)).await.unwrap();
    let put = stratus::meta::Op::Put {
        key: "/lapsed".into(),
        value: b"x".to_vec(),
        lease,
    };
    assert!(store.txn(vec![], vec![put]).await.unwrap());
    eventually("the lapsed lease's key goes", || async {
        store.get("/lapsed").await.unwrap().is_none()
    })
    .await;
    assert!(!store.keep_alive(lease).await.unwrap());
}

/// Two controls: the standby answers `not_leader` and is not ready; the
/// leader stopped with SIGSTOP, the standby leads within the lease TTL
/// (plus the time to notice), with every cache, token and table; data
/// served throughout; the old leader, resumed, changes nothing and exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_control_takes_over_and_the_deposed_leader_changes_nothing() {
    let etcd = Etcd::start().await;
    let _n1 = node(&etcd, "node-1").await;
    let _n2 = node(&etcd, "node-2").await;
    let mut a = control(&etcd, &["--initial-partitions", "2"], true).await;
    let b = control(&etcd, &["--initial-partitions", "2"], false).await;
    let (api_a, api_b) = (api_of(&a), api_of(&b));
    assert_eq!(api_a.get("/readyz").await.status, 200);
    assert_eq!(api_b.get("/readyz").await.status, 503);
    let refused = api_b.post("/v1/caches", r#"{"name": "nope"}"#).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["error"]["code"], "not_leader");
    assert!(
        refused.text().contains(&api_a.addr().to_string()),
        "the standby names the leader: {}",
        refused.text()
    );
    let proxy = proxy(&etcd).await;
    let token = create(&api_a, "orders").await;
    let mut c = client(&proxy, "orders", &token).await;
    for i in 0..200 {
        let _: () = c.set(format!("k{i}"), i).await.unwrap();
    }
    // Reads go on while control changes hands.
    let reading = Arc::new(AtomicBool::new(true));
    let failures = Arc::new(AtomicU64::new(0));
    let reader = tokio::spawn({
        let (reading, failures) = (reading.clone(), failures.clone());
        let mut c = c.clone();
        async move {
            let mut i = 0u64;
            while reading.load(Ordering::Relaxed) {
                let got: redis::RedisResult<i64> = c.get(format!("k{}", i % 200)).await;
                if got.ok() != Some((i % 200) as i64) {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let a_pid = a.child.id().expect("pid");
    signal(a_pid, "STOP");
    let stopped = Instant::now();
    let deadline = Duration::from_secs(TTL_SECS + 5);
    loop {
        if api_b.get("/readyz").await.status == 200 {
            break;
        }
        assert!(
            stopped.elapsed() < deadline,
            "the standby did not lead within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Everything the old leader acknowledged is there.
    let listed = api_b.get("/v1/caches").await;
    assert_eq!(listed.status, 200);
    assert!(listed.text().contains("\"orders\""), "{}", listed.text());
    let second = create(&api_b, "second").await;
    let mut c2 = client(&proxy, "second", &second).await;
    let _: () = c2.set("x", "y").await.unwrap();
    // The old token still opens the old cache, through a new connection.
    let mut again = client(&proxy, "orders", &token).await;
    let v: i64 = again.get("k7").await.unwrap();
    assert_eq!(v, 7);
    // Resumed, the old leader finds it no longer leads and stops; the
    // store's leader is the new one.
    signal(a_pid, "CONT");
    let status = exits(&mut a.child, Duration::from_secs(TTL_SECS + 10)).await;
    assert!(!status.success(), "a deposed leader exits with an error");
    let store = stratus::meta::EtcdStore::connect(std::slice::from_ref(&etcd.url))
        .await
        .unwrap();
    let leader = stratus::meta::lease::leader(&store).await.unwrap().unwrap();
    assert_eq!(leader.http, api_b.addr().to_string());
    assert_eq!(api_b.get("/readyz").await.status, 200);
    let still = api_b.get("/v1/caches/second").await;
    assert_eq!(still.status, 200, "{}", still.text());
    reading.store(false, Ordering::Relaxed);
    reader.await.unwrap();
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "reads failed while control changed hands"
    );
}

/// A node killed with `kill -9`: once its lease expires control gives its
/// partitions to the other nodes, and its slots answer again within the
/// lease TTL plus 5 s (their data is lost: no replicas yet); every other
/// slot serves throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_slots_serve_again_within_the_lease_ttl() {
    let etcd = Etcd::start().await;
    let _n1 = node(&etcd, "node-1").await;
    let mut n2 = node(&etcd, "node-2").await;
    let _n3 = node(&etcd, "node-3").await;
    let Web {
        _control: _ctl,
        api,
        _proxy: _px,
        mut c,
        keys,
    } = web(&etcd, "3", 300, "before").await;
    let homes = homes(&api, "web", &keys).await;
    let dead = n2.addr("node_addr").to_string();
    assert!(homes.contains(&dead), "node-2 holds some keys");
    assert!(homes.iter().any(|h| *h != dead), "others hold some keys");
    n2.child.start_kill().expect("kill -9");
    let _ = n2.child.wait().await;
    let killed = Instant::now();
    let deadline = Duration::from_secs(TTL_SECS + 5);
    // Keys elsewhere: every read answers, with its value, throughout.
    let (mut lost, _) = by_node(&keys, &homes, &dead);
    loop {
        for (k, h) in keys.iter().zip(&homes).filter(|(_, h)| **h != dead) {
            let v: String = c
                .get(k)
                .await
                .unwrap_or_else(|e| panic!("{k} on live node {h} failed: {e}"));
            assert_eq!(v, "before");
        }
        let mut still = Vec::new();
        for k in lost {
            let set: redis::RedisResult<()> = c.set(&k, "after").await;
            if set.is_err() {
                still.push(k);
            }
        }
        lost = still;
        if lost.is_empty() {
            break;
        }
        assert!(
            killed.elapsed() < deadline,
            "{} keys of the dead node still fail after {deadline:?}",
            lost.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The dead node's keys serve again, empty before the rewrite.
    for (k, h) in keys.iter().zip(&homes) {
        let v: Option<String> = c.get(k).await.unwrap();
        let want = if *h == dead { "after" } else { "before" };
        assert_eq!(v.as_deref(), Some(want), "{k}");
    }
    let nodes = api.get("/v1/nodes").await.text();
    assert!(!nodes.contains(&dead), "the dead node left: {nodes}");
}

/// A node stopped (SIGSTOP) past its lease and then resumed acknowledges
/// no write for the slots given to another node: every write a client saw
/// acknowledged is there afterwards, and the resumed node stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_past_its_lease_acknowledges_no_write_when_resumed() {
    let etcd = Etcd::start().await;
    let _n1 = node(&etcd, "node-1").await;
    let mut n2 = node(&etcd, "node-2").await;
    let Web {
        _control: _ctl,
        api,
        _proxy: _px,
        mut c,
        keys,
    } = web(&etcd, "2", 100, "v").await;
    let homes = homes(&api, "web", &keys).await;
    let frozen = n2.addr("node_addr").to_string();
    let (theirs, _) = by_node(&keys, &homes, &frozen);
    assert!(!theirs.is_empty(), "node-2 holds some keys");
    let pid = n2.child.id().expect("pid");
    signal(pid, "STOP");
    // Control gives its partitions away once the lease expires.
    eventually(
        "control reassigns the stopped node's partitions",
        || async { !api.get("/v1/nodes").await.text().contains(&frozen) },
    )
    .await;
    signal(pid, "CONT");
    // Writes right after the resume: any acknowledged one must be kept.
    let mut acknowledged = Vec::new();
    let end = Instant::now() + Duration::from_secs(TTL_SECS + 3);
    let mut round = 0;
    while Instant::now() < end {
        for k in &theirs {
            let value = format!("v{round}");
            let set: redis::RedisResult<()> = c.set(k, &value).await;
            if set.is_ok() {
                acknowledged.push((k.clone(), value));
            }
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = exits(&mut n2.child, Duration::from_secs(10)).await;
    assert!(!status.success(), "a fenced node exits with an error");
    let mut last: std::collections::HashMap<String, String> = Default::default();
    for (k, v) in acknowledged {
        last.insert(k, v);
    }
    assert!(
        !last.is_empty(),
        "writes were acknowledged by the new owner"
    );
    for (k, v) in &last {
        let got: Option<String> = c.get(k).await.unwrap();
        assert_eq!(got.as_ref(), Some(v), "{k}: an acknowledged write was lost");
    }
}

/// etcd restarted (down for less than the lease TTL): reads and writes to
/// stable slots see no error; control and membership go on when it is
/// back (nothing was reassigned).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_restart_shorter_than_the_lease_is_not_felt() {
    let mut etcd = Etcd::start().await;
    // Leases longer here: etcd's own restart takes a second or two.
    let ttl = "6";
    let env = ENV;
    let mut nodes = Vec::new();
    for id in ["node-1", "node-2"] {
        let args = [
            "node",
            "--etcd",
            &etcd.url,
            "--lease-ttl",
            ttl,
            "--id",
            id,
            "--port",
            "any",
        ];
        nodes.push(Role::spawn(&args, &env, "stratus node serving").await);
    }
    let ctl = Role::spawn(
        &[
            "control",
            "--etcd",
            &etcd.url,
            "--lease-ttl",
            ttl,
            "--http-port",
            "0",
            "--initial-partitions",
            "2",
        ],
        &env,
        "control ready: leading",
    )
    .await;
    let api = api_of(&ctl);
    let proxy = proxy(&etcd).await;
    let token = create(&api, "web").await;
    let mut c = client(&proxy, "web", &token).await;
    let before = api.get("/v1/caches/web/partitions").await.text();
    etcd.stop();
    let down = Instant::now();
    let mut i = 0u64;
    while down.elapsed() < Duration::from_secs(2) {
        let k = format!("k{}", i % 100);
        let _: () = c
            .set(&k, i)
            .await
            .unwrap_or_else(|e| panic!("write with etcd down: {e}"));
        let v: u64 = c.get(&k).await.expect("read with etcd down");
        assert_eq!(v, i);
        i += 1;
    }
    etcd.run().await;
    for _ in 0..200 {
        let k = format!("k{}", i % 100);
        let _: () = c.set(&k, i).await.expect("write after etcd is back");
        i += 1;
    }
    // Control goes on: a change after the restart is made and recorded.
    eventually("control answers changes again", || async {
        api.post("/v1/caches", r#"{"name": "later"}"#).await.status == 201
    })
    .await;
    let after = api.get("/v1/caches/web/partitions").await.text();
    let nodes_of = |t: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(t).unwrap();
        v["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["node"].to_string())
            .collect()
    };
    assert_eq!(
        nodes_of(&before),
        nodes_of(&after),
        "nothing was reassigned"
    );
    for n in &mut nodes {
        assert!(n.child.try_wait().unwrap().is_none(), "nodes kept running");
    }
}

/// A TCP relay in front of a node: passes bytes both ways until cut, then
/// blackholes them (accepts, reads, never forwards or answers).
struct Relay {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = outbound.into_split();
                    let up = pipe(&mut ri, &mut wo, flag.clone());
                    let down = pipe(&mut ro, &mut wi, flag);
                    let _ = tokio::join!(up, down);
                });
            }
        });
        Relay { addr, cut }
    }
}

/// Copies `from` to `to`; once `cut`, reads and drops.
async fn pipe(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if cut.load(Ordering::Relaxed) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A network cut between the proxy and one node (the node announced
/// behind a relay that then blackholes): requests for that node's slots
/// fail fast with a clear error, the other slots keep serving, nothing
/// hangs; when the cut heals, they serve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_cut_to_one_node_fails_its_slots_fast_and_hangs_nothing() {
    let etcd = Etcd::start().await;
    let _n1 = node(&etcd, "node-1").await;
    // node-2 announces the relay's address: proxies (and control) reach
    // it through the relay; its lease in etcd is direct, so it stays a
    // member during the cut (a partition, not a death).
    let port = free_port();
    let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let port_s = port.to_string();
    let advertise = relay.addr.to_string();
    let _n2 = Role::spawn(
        &[
            "node",
            "--etcd",
            &etcd.url,
            "--lease-ttl",
            TTL,
            "--id",
            "node-2",
            "--port",
            &port_s,
            "--advertise",
            &advertise,
        ],
        &ENV,
        "stratus node serving",
    )
    .await;
    let Web {
        _control: _ctl,
        api,
        _proxy: _px,
        mut c,
        keys,
    } = web(&etcd, "2", 100, "v").await;
    let homes = homes(&api, "web", &keys).await;
    let (behind, elsewhere) = by_node(&keys, &homes, &relay.addr.to_string());
    let cut_key = behind.first().expect("a key behind the relay").clone();
    let live_key = elsewhere.first().expect("a key on node-1").clone();
    relay.cut.store(true, Ordering::Relaxed);
    // Several rounds: each request behind the cut fails, in bounded time,
    // with an error naming the partition; the other node answers.
    for _ in 0..3 {
        let started = Instant::now();
        let r: redis::RedisResult<String> =
            tokio::time::timeout(Duration::from_secs(10), c.get(&cut_key))
                .await
                .expect("a request behind the cut does not hang");
        let e = r.expect_err("no answer through a cut");
        assert_eq!(e.code(), Some("CLUSTERDOWN"), "a clear error: {e}");
        assert!(started.elapsed() < Duration::from_secs(8));
        let v: String = tokio::time::timeout(Duration::from_secs(5), c.get(&live_key))
            .await
            .expect("the live node answers during the cut")
            .unwrap();
        assert_eq!(v, "v");
    }
    relay.cut.store(false, Ordering::Relaxed);
    eventually("the cut-off slots serve again once it heals", || async {
        let mut c = c.clone();
        let r: redis::RedisResult<String> = c.get(&cut_key).await;
        r.ok().as_deref() == Some("v")
    })
    .await;
}

/// The control leader stopped (SIGSTOP) in the middle of a move: the
/// standby finds the move's record, finishes or gives back its step in
/// flight and resumes the rest; no acknowledged write is lost and every
/// slot serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_mid_move_loses_no_acknowledged_write() {
    let etcd = Etcd::start().await;
    let _n1 = node(&etcd, "node-1").await;
    let _n2 = node(&etcd, "node-2").await;
    let mut a = control(&etcd, &[], true).await;
    let b = control(&etcd, &[], false).await;
    let (api_a, api_b) = (api_of(&a), api_of(&b));
    let proxy = proxy(&etcd).await;
    let token = create(&api_a, "big").await;
    let mut c = client(&proxy, "big", &token).await;
    // 32 MB: a move of 128 steps of 256 KiB.
    let value = "x".repeat(1024);
    let mut written: Vec<(String, String)> = Vec::new();
    for batch in 0..64 {
        let mut pipe = redis::pipe();
        for i in 0..500 {
            let k = format!("k:{batch}:{i}");
            pipe.set(&k, &value).ignore();
            written.push((k, value.clone()));
        }
        let _: () = pipe.query_async(&mut c).await.unwrap();
    }
    let parts = api_a.get("/v1/caches/big/partitions").await.json();
    let part = &parts["partitions"][0];
    let id = part["id"].as_u64().unwrap();
    let from = part["node"].as_str().unwrap().to_string();
    let nodes = api_a.get("/v1/nodes").await.json();
    let to = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["addr"] != from.as_str())
        .map(|n| n["id"].as_str().unwrap().to_string())
        .unwrap();
    // Writes go on throughout; those acknowledged must stay.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = tokio::spawn({
        let writing = writing.clone();
        let mut c = c.clone();
        async move {
            let mut acknowledged = Vec::new();
            let mut i = 0;
            while writing.load(Ordering::Relaxed) {
                let k = format!("during:{i}");
                let set: redis::RedisResult<()> = c.set(&k, i).await;
                if set.is_ok() {
                    acknowledged.push((k, i.to_string()));
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            acknowledged
        }
    });
    let mover = tokio::spawn({
        let body = format!(r#"{{"node": "{to}"}}"#);
        async move {
            api_a
                .post(&format!("/v1/caches/big/partitions/{id}/move"), &body)
                .await
        }
    });
    // Stopped once the move is under way (recorded in etcd).
    let store = stratus::meta::EtcdStore::connect(std::slice::from_ref(&etcd.url))
        .await
        .unwrap();
    let key = stratus::meta::keys::moves("big");
    eventually("the move is recorded", || async {
        store.get(&key).await.unwrap().is_some()
    })
    .await;
    let a_pid = a.child.id().expect("pid");
    signal(a_pid, "STOP");
    eventually("the standby leads", || async {
        api_b.get("/readyz").await.status == 200
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    writing.store(false, Ordering::Relaxed);
    let during = writer.await.unwrap();
    assert!(!during.is_empty());
    // The new leader settled the step in flight and resumes the move; its
    // record goes when the resumed move ends, done or stopped (32 MB to
    // carry: up to a minute here).
    let end = Instant::now() + Duration::from_secs(60);
    while store.get(&key).await.unwrap().is_some() {
        assert!(Instant::now() < end, "the resumed move did not end");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every acknowledged write is there, every slot serves (read once the
    // resumed move is done: slots in transit answer TRYAGAIN, as Redis's).
    let all: Vec<&(String, String)> = written.iter().chain(&during).collect();
    for chunk in all.chunks(500) {
        let mut pipe = redis::pipe();
        for (k, _) in chunk {
            pipe.get(k);
        }
        let got: Vec<Option<String>> = pipe.query_async(&mut c).await.unwrap();
        for ((k, v), got) in chunk.iter().map(|p| (&p.0, &p.1)).zip(got) {
            assert_eq!(got.as_ref(), Some(v), "{k} lost");
        }
    }
    let v: Option<String> = c.get("k:0:0").await.unwrap();
    assert_eq!(v.as_deref(), Some(value.as_str()));
    signal(a_pid, "CONT");
    let _ = exits(&mut a.child, Duration::from_secs(TTL_SECS + 10)).await;
    mover.abort();
}

/// `stratus drain` (a node's pre-stop step) empties a node through the
/// control leader it finds in etcd and returns once it is empty; nothing
/// is lost. The node's HTTP port answers its probes and its metrics pass
/// `promtool check metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stratus_drain_empties_a_node_through_the_leader_and_loses_nothing() {
    let etcd = Etcd::start().await;
    let _n1 = node(&etcd, "node-1").await;
    let n2 = node(&etcd, "node-2").await;
    let ctl = control(&etcd, &["--initial-partitions", "4"], true).await;
    let api = api_of(&ctl);
    let proxy = proxy(&etcd).await;
    let token = create(&api, "web").await;
    let mut c = client(&proxy, "web", &token).await;
    for i in 0..500 {
        let _: () = c.set(format!("k{i}"), i).await.unwrap();
    }
    // The node's own port: ready, and its figures in the Prometheus format.
    let http = Http::new(n2.addr("http_addr"));
    assert_eq!(http.get("/healthz").await.status, 200);
    assert_eq!(http.get("/readyz").await.status, 200);
    let metrics = http.get("/metrics").await.text();
    assert!(
        metrics.contains("stratus_node_partitions{cache=\"web\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("stratus_node_serving 1"), "{metrics}");
    promtool_check_metrics(&metrics);
    let drained = stratus_command(
        &[
            "drain",
            "--etcd",
            &etcd.url,
            "--node",
            "node-2",
            "--timeout",
            "60",
        ],
        &ENV,
    )
    .output()
    .await
    .expect("run stratus drain");
    assert!(
        drained.status.success(),
        "{}",
        String::from_utf8_lossy(&drained.stderr)
    );
    let nodes = api.get("/v1/nodes").await.json();
    let n2_parts = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "node-2")
        .map(|n| n["partitions"].as_array().unwrap().len());
    assert_eq!(n2_parts, Some(0), "node-2 is empty: {nodes}");
    for i in 0..500 {
        let v: i64 = c.get(format!("k{i}")).await.unwrap();
        assert_eq!(v, i);
    }
}

/// With etcd, a cache's scripts (`SCRIPT LOAD`) and function libraries
/// reach every proxy: loaded through one, run through another; a library
/// replaced or deleted through one is replaced or gone on the other; a
/// deleted cache's shared code goes from etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_and_libraries_loaded_through_one_proxy_run_through_another() {
    let etcd = Etcd::start().await;
    let _n1 = node(&etcd, "node-1").await;
    let ctl = control(&etcd, &[], true).await;
    let api = api_of(&ctl);
    let (pa, pb) = (proxy(&etcd).await, proxy(&etcd).await);
    let token = create(&api, "code").await;
    let mut a = client(&pa, "code", &token).await;
    let mut b = client(&pb, "code", &token).await;
    // A script loaded through A runs through B by its SHA.
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return 'from ' .. ARGV[1]")
        .query_async(&mut a)
        .await
        .unwrap();
    let exists: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .arg("0000000000000000000000000000000000000000")
        .query_async(&mut b)
        .await
        .unwrap();
    assert_eq!(exists, [1, 0]);
    let ran: String = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(0)
        .arg("b")
        .query_async(&mut b)
        .await
        .unwrap();
    assert_eq!(ran, "from b");
    // A library loaded through A: its function is called through B.
    let lib = |v: &str| {
        format!("#!lua name=mylib\nredis.register_function('f', function() return '{v}' end)")
    };
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(lib("one"))
        .query_async(&mut a)
        .await
        .unwrap();
    let called: String = redis::cmd("FCALL")
        .arg("f")
        .arg(0)
        .query_async(&mut b)
        .await
        .unwrap();
    assert_eq!(called, "one");
    // Replaced through A: B follows.
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(lib("two"))
        .query_async(&mut a)
        .await
        .unwrap();
    eventually("B runs the replaced library", || async {
        let mut b = b.clone();
        let r: redis::RedisResult<String> = redis::cmd("FCALL")
            .arg("f")
            .arg(0)
            .query_async(&mut b)
            .await;
        r.ok().as_deref() == Some("two")
    })
    .await;
    // Deleted through A: gone on B.
    let _: () = redis::cmd("FUNCTION")
        .arg("DELETE")
        .arg("mylib")
        .query_async(&mut a)
        .await
        .unwrap();
    eventually("B's copy of the library goes", || async {
        let mut b = b.clone();
        let r: redis::RedisResult<String> = redis::cmd("FCALL")
            .arg("f")
            .arg(0)
            .query_async(&mut b)
            .await;
        r.is_err_and(|e| e.to_string().contains("Function not found"))
    })
    .await;
    // SCRIPT FLUSH through A takes the shared copy away; deleting the
    // cache takes everything of it from etcd.
    let store = stratus::meta::EtcdStore::connect(std::slice::from_ref(&etcd.url))
        .await
        .unwrap();
    let key = stratus::meta::keys::script("code", &sha);
    assert!(store.get(&key).await.unwrap().is_some());
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut a)
        .await
        .unwrap();
    assert!(store.get(&key).await.unwrap().is_none());
    let _: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return 2")
        .query_async(&mut a)
        .await
        .unwrap();
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(lib("three"))
        .query_async(&mut a)
        .await
        .unwrap();
    assert_eq!(api.delete("/v1/caches/code").await.status, 200);
    for prefix in [
        stratus::meta::keys::scripts("code"),
        stratus::meta::keys::functions("code"),
    ] {
        eventually("a deleted cache's shared code goes", || async {
            store.list(&prefix).await.unwrap().is_empty()
        })
        .await;
    }
}
