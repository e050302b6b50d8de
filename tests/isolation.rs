//! Tenant isolation over real TCP: what a hostile tenant (cache A) does
//! must not stall, starve or outgrow another (cache B). Each test is one of
//! the isolation issue's reproducers; they assert that B is answered, that
//! the server survives and that memory stays bounded — never timings
//! (a reply is only required within [`DEADLINE`]).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use stratus::config::ServeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const MIB: u64 = 1024 * 1024;
const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
const MAX_CLIENTS: &str = "ERR max number of clients reached";
const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// Tests that measure RSS run one at a time.
static MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A server with every connection authenticated, and caches `a` and `b`.
async fn two_caches(config: ServeConfig) -> (stratus::server::Running, Http, String, String) {
    let server = start(ServeConfig {
        default_cache: stratus::config::DefaultCache::Off,
        ..config
    })
    .await;
    let http = Http::new(server.http_addr);
    let a = http.create_cache("a").await;
    let b = http.create_cache("b").await;
    (server, http, a, b)
}

/// B's client: `rounds` GETs spaced by `gap`, each answered within DEADLINE,
/// plus a new connection and `/healthz` at every tenth.
async fn b_is_served(addr: SocketAddr, http_addr: SocketAddr, token: &str, rounds: usize) {
    let mut b = raw_auth(addr, "b", token).await;
    assert_eq!(b.cmd(&["SET", "k", "v"]).await, ok());
    let http = Http::new(http_addr);
    for i in 0..rounds {
        assert_eq!(b.cmd(&["GET", "k"]).await, bulk("v"), "B's GET {i}");
        if i % 10 == 0 {
            let mut fresh = raw_auth(addr, "b", token).await;
            assert_eq!(fresh.cmd(&["PING"]).await, simple("PONG"));
            assert_eq!(http.get("/healthz").await.status, 200);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A script that never ends holds A's partition on the worker pool; B, new
/// connections and the control API are served meanwhile, the script is
/// stopped at its time limit, and A's scripts queued behind it get BUSY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_never_ends_stalls_only_its_own_cache() {
    let (server, _http, a, b) = two_caches(ServeConfig {
        script_time_limit_ms: 2000,
        ..ServeConfig::default()
    })
    .await;
    let mut looping = Vec::new();
    for _ in 0..3 {
        let mut c = raw_auth(server.resp_addr, "a", &a).await;
        c.send(&encode(&[
            "EVAL",
            "local i = 0 while true do i = i + 1 end",
            "0",
        ]))
        .await;
        looping.push(c);
    }
    b_is_served(server.resp_addr, server.http_addr, &b, 50).await;
    let mut stopped = 0;
    for mut c in looping {
        let r = c.read().await;
        assert!(r.is_error(), "{r:?}");
        if r.text().contains("too long") {
            stopped += 1;
        } else {
            assert!(r.text().starts_with("BUSY "), "{r:?}");
        }
    }
    assert!(stopped >= 1, "no script was stopped at its time limit");
}

/// While a script holds a partition past the busy threshold, the cache's
/// other clients get BUSY; SCRIPT KILL stops a script that has not written,
/// and refuses (UNKILLABLE) one that has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_scripts_answer_busy_and_script_kill_stops_them() {
    let (server, _http, a, _b) = two_caches(ServeConfig {
        script_time_limit_ms: 4_000,
        busy_threshold_ms: 100,
        ..ServeConfig::default()
    })
    .await;
    let mut other = raw_auth(server.resp_addr, "a", &a).await;
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]).await, err(NOTBUSY));

    let mut runner = raw_auth(server.resp_addr, "a", &a).await;
    runner
        .send(&encode(&["EVAL", "while true do end", "0"]))
        .await;
    busy_for_others(server.resp_addr, &a).await;
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]).await, ok());
    let r = runner.read().await;
    assert!(r.is_error(), "{r:?}");
    assert!(r.text().to_lowercase().contains("kill"), "{r:?}");
    assert_eq!(other.cmd(&["GET", "x"]).await, Resp::Nil);

    // A script that wrote cannot be killed; it still ends at its limit.
    runner
        .send(&encode(&[
            "EVAL",
            "redis.call('SET', KEYS[1], 'v') while true do end",
            "1",
            "x",
        ]))
        .await;
    // BUSY means it has run past its first statement, the write.
    busy_for_others(server.resp_addr, &a).await;
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]).await, err(UNKILLABLE));
    let r = runner.read().await;
    assert!(r.is_error() && r.text().contains("too long"), "{r:?}");
    assert_eq!(other.cmd(&["GET", "x"]).await, bulk("v"));
}

/// Waits until cache `a`'s other clients are answered BUSY (a script has
/// held the partition of key `x` past the busy threshold).
async fn busy_for_others(addr: SocketAddr, token: &str) {
    eventually("BUSY for the cache's other clients", || {
        let token = token.to_string();
        async move {
            let mut c = raw_auth(addr, "a", &token).await;
            let r = c.cmd(&["GET", "x"]).await;
            r.is_error() && r.text().starts_with("BUSY ")
        }
    })
    .await;
}

/// On a cache capped at 1 MB, a write that would grow a value past the cap
/// is refused before anything is allocated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_a_value_past_the_storage_maximum_is_refused() {
    let _mem = MEMORY.lock().await;
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http
        .create_cache_with("small", r#"{"data_storage": {"maximum": 1, "unit": "MB"}}"#)
        .await;
    let mut c = raw_auth(server.resp_addr, "small", &token).await;
    let before = rss_bytes();
    assert_eq!(
        c.cmd(&["SETRANGE", "big", "536870911", "x"]).await,
        err(OOM)
    );
    assert_eq!(
        c.cmd(&["SETBIT", "bits", "4294967295", "1"]).await,
        err(OOM)
    );
    assert_eq!(c.cmd(&["EXISTS", "big", "bits"]).await, int(0));
    // Small growth within the cap still works.
    assert_eq!(c.cmd(&["SETRANGE", "ok", "1000", "x"]).await, int(1001));
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 * MIB, "RSS grew {} MiB", grown / MIB);
}

/// Commands queued in MULTI are admitted and metered as they arrive, and
/// the queue counts as client memory: past its limit the transaction is
/// refused (EXECABORT) instead of growing without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_queue_is_metered_and_bounded() {
    let _mem = MEMORY.lock().await;
    let (server, http, a, b) = two_caches(small_client_memory()).await;
    let mut c = raw_auth(server.resp_addr, "a", &a).await;
    assert_eq!(c.cmd(&["MULTI"]).await, ok());
    let before = http.get("/v1/caches/a/usage").await.json();
    let mut batch = Vec::new();
    for i in 0..1000 {
        batch.extend(encode(&["SET", &format!("{{t}}k{i}"), "v"]));
    }
    c.send(&batch).await;
    for _ in 0..1000 {
        assert_eq!(c.read().await, simple("QUEUED"));
    }
    let queued = http.get("/v1/caches/a/usage").await.json();
    assert!(
        queued["ecpu_total"].as_f64() > before["ecpu_total"].as_f64(),
        "queued commands are metered: {queued}"
    );
    // 300k more: the queue passes the connection's limit.
    let rss = rss_bytes();
    let mut refused = 0;
    let value = "v".repeat(100);
    for round in 0..300 {
        let mut batch = Vec::new();
        for i in 0..1000 {
            batch.extend(encode(&["SET", &format!("{{t}}k{round}:{i}"), &value]));
        }
        c.send(&batch).await;
        for _ in 0..1000 {
            let r = c.read().await;
            if r.is_error() {
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the queue was never refused");
    assert_eq!(c.cmd(&["EXEC"]).await, err(EXECABORT));
    let grown = rss_bytes().saturating_sub(rss);
    assert!(grown < 128 * MIB, "RSS grew {} MiB", grown / MIB);
    // The connection and the other cache go on.
    assert_eq!(c.cmd(&["GET", "{t}k1"]).await, Resp::Nil);
    b_is_served(server.resp_addr, server.http_addr, &b, 5).await;
}

/// Limits small enough for tests: bulk 1 MiB, a connection's buffers 2 MiB,
/// a cache's 4 MiB, the server's 8 MiB.
fn small_client_memory() -> ServeConfig {
    ServeConfig {
        max_bulk_len: 1 << 20,
        query_buffer_limit: 2 << 20,
        cache_client_memory: 4 << 20,
        client_memory: 8 << 20,
        ..ServeConfig::default()
    }
}

/// Requests that announce big bulk strings and never finish fill only their
/// connection's and their cache's allowance: past it connections are closed
/// with an error, and the other cache is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_big_requests_are_bounded_per_connection_and_cache() {
    let _mem = MEMORY.lock().await;
    let (server, _http, a, b) = two_caches(small_client_memory()).await;
    let rss = rss_bytes();
    let mut refused = 0;
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut c = raw_auth(server.resp_addr, "a", &a).await;
        // MSET k <1 MiB - 1 byte>, one byte short of done.
        let len = (1 << 20) - 1;
        let mut req = format!("*3\r\n$4\r\nMSET\r\n$1\r\nk\r\n${len}\r\n").into_bytes();
        req.extend(std::iter::repeat_n(b'x', len - 1));
        c.send(&req).await;
        match c.read_timeout(Duration::from_millis(500)).await {
            Read::Reply(r) => {
                assert!(r.is_error() && r.text().contains("limit"), "{r:?}");
                refused += 1;
            }
            Read::Closed => refused += 1,
            Read::Timeout => held.push(c),
        }
    }
    assert!(refused > 0, "six 1 MiB requests fit a 4 MiB allowance");
    assert!(!held.is_empty(), "no request was held at all");
    let grown = rss_bytes().saturating_sub(rss);
    assert!(grown < 64 * MIB, "RSS grew {} MiB", grown / MIB);
    b_is_served(server.resp_addr, server.http_addr, &b, 5).await;
}

/// A socket connected from `ip` (any 127.x address is loopback).
async fn connect_from(ip: [u8; 4], to: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::from((ip, 0))).ok()?;
    socket.connect(to).await.ok()
}

/// Unauthenticated sockets from one host take at most their address's
/// share of pre-auth places, and are closed if they do not authenticate in
/// time: a tenant connecting from elsewhere gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_sockets_cannot_lock_tenants_out() {
    let (server, _http, _a, b) = two_caches(ServeConfig {
        max_clients: 400,
        max_unauthenticated: 100,
        max_unauthenticated_per_ip: 20,
        auth_timeout_secs: 1,
        // (Every socket through the main accept loop: the flood path has
        // its own test.)
        flood_connects: 0,
        ..ServeConfig::default()
    })
    .await;
    // 300 sockets from 127.0.0.2: 20 are let in, the rest told to go.
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..300 {
        let Some(mut s) = connect_from([127, 0, 0, 2], server.resp_addr).await else {
            continue;
        };
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                assert!(String::from_utf8_lossy(&buf[..n]).contains("max number of clients"));
                refused += 1;
            }
            _ => idle.push(s),
        }
    }
    assert!(refused >= 250, "only {refused} refused");
    // B connects from another address and authenticates.
    let s = connect_from([127, 0, 0, 3], server.resp_addr)
        .await
        .expect("connect");
    let mut c = Raw::from_stream(s);
    assert_eq!(c.cmd(&["AUTH", "b", &b]).await, ok());
    assert_eq!(c.cmd(&["PING"]).await, simple("PONG"));
    // The idle ones are closed once their time to authenticate is over.
    for mut s in idle {
        let mut buf = [0u8; 16];
        let r = tokio::time::timeout(DEADLINE, s.read(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
    }
}

/// An address opening connections faster than `flood_connects` a second
/// has its next ones accepted apart (the flood socket, at idle priority):
/// they are admitted exactly as before — held, or refused with Redis's
/// line, or served — and another address's connections are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_accepted_apart_and_loses_nothing() {
    let (server, http, _a, b) = two_caches(ServeConfig {
        max_unauthenticated_per_ip: 5,
        flood_connects: 10,
        ..ServeConfig::default()
    })
    .await;
    // From 127.0.0.2: five sockets wait to authenticate, the rest are
    // refused; each refusal is read before the next connects, so the
    // accepts are counted in order and the flood is seen at the eleventh.
    let mut held = Vec::new();
    for i in 0..100 {
        let mut s = connect_from([127, 0, 0, 2], server.resp_addr)
            .await
            .expect("connect");
        if i < 5 {
            held.push(s);
            continue;
        }
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
            .await
            .expect("refused in time")
            .expect("read");
        assert!(
            String::from_utf8_lossy(&buf[..n]).contains("max number of clients"),
            "socket {i}: {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    let flood = |text: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix("stratus_connections_flood_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let apart = flood(&http.get("/metrics").await.text());
    assert!(apart >= 50.0, "only {apart} of 100 accepted apart");
    // A held socket from the flooding address is served once it
    // authenticates; so is another address's new connection.
    let mut c = Raw::from_stream(held.pop().expect("held"));
    assert_eq!(c.cmd(&["AUTH", "b", &b]).await, ok());
    assert_eq!(c.cmd(&["PING"]).await, simple("PONG"));
    let s = connect_from([127, 0, 0, 3], server.resp_addr)
        .await
        .expect("connect");
    let mut c = Raw::from_stream(s);
    assert_eq!(c.cmd(&["AUTH", "b", &b]).await, ok());
    assert_eq!(c.cmd(&["PING"]).await, simple("PONG"));
}

/// One cache's connections are capped, so it cannot take every socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_per_cache() {
    let (server, _http, a, b) = two_caches(ServeConfig {
        max_clients_per_cache: 5,
        ..ServeConfig::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(raw_auth(server.resp_addr, "a", &a).await);
    }
    let mut sixth = Raw::connect(server.resp_addr).await;
    assert_eq!(sixth.cmd(&["AUTH", "a", &a]).await, err(MAX_CLIENTS));
    let mut other = raw_auth(server.resp_addr, "b", &b).await;
    assert_eq!(other.cmd(&["PING"]).await, simple("PONG"));
    drop(held.pop());
    eventually("a place frees when a connection closes", || {
        let addr = server.resp_addr;
        let a = a.clone();
        async move {
            let mut c = Raw::connect(addr).await;
            c.cmd(&["AUTH", "a", &a]).await == ok()
        }
    })
    .await;
}

/// A tenant filling the open default cache locks no other tenant out: a
/// newcomer still gets in to AUTH into its own cache, and one that does
/// not is told the default cache is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_default_cache_locks_no_tenant_out() {
    let server = start(ServeConfig {
        default_cache: stratus::config::DefaultCache::On,
        max_clients_per_cache: 5,
        ..ServeConfig::default()
    })
    .await;
    let b = Http::new(server.http_addr).create_cache("b").await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut c = Raw::connect(server.resp_addr).await;
        assert_eq!(c.cmd(&["PING"]).await, simple("PONG"));
        held.push(c);
    }
    let mut newcomer = Raw::connect(server.resp_addr).await;
    assert_eq!(newcomer.cmd(&["AUTH", "b", &b]).await, ok());
    assert_eq!(newcomer.cmd(&["SET", "k", "v"]).await, ok());
    let mut late = Raw::connect(server.resp_addr).await;
    assert_eq!(late.cmd(&["GET", "k"]).await, err(MAX_CLIENTS));
}

/// Values of 64 MiB and 500 MiB are stored and read back by a client that
/// reads: the output limit holds back only clients whose replies pile up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_round_trip() {
    let _mem = MEMORY.lock().await;
    let server = start_default().await;
    for mib in [64usize, 500] {
        let mut c = Raw::connect(server.resp_addr).await;
        let value = vec![b'z'; mib << 20];
        let mut req = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", value.len()).into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        c.stream.write_all(&req).await.expect("send");
        drop(req);
        assert_eq!(c.read().await, ok(), "SET of {mib} MiB");
        assert_eq!(c.cmd(&["STRLEN", "big"]).await, int(value.len() as i64));
        let got = c.cmd(&["GET", "big"]).await;
        assert!(
            got == Resp::Bulk(value),
            "GET of {mib} MiB came back different"
        );
        assert_eq!(c.cmd(&["DEL", "big"]).await, int(1));
    }
}

/// WATCH of many keys (repeated ones too) costs O(1) per key and still
/// aborts EXEC when any of them changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_many_keys_works_and_aborts_on_any_change() {
    let server = start_default().await;
    let mut c = Raw::connect(server.resp_addr).await;
    let mut other = Raw::connect(server.resp_addr).await;
    let mut args: Vec<String> = vec!["WATCH".into()];
    for i in 0..3998 {
        args.push(format!("{{t}}k{}", i % 2000));
    }
    assert_eq!(c.cmd(&args).await, ok());
    assert_eq!(other.cmd(&["SET", "{t}k1999", "x"]).await, ok());
    assert_eq!(c.cmd(&["MULTI"]).await, ok());
    assert_eq!(c.cmd(&["SET", "{t}k0", "y"]).await, simple("QUEUED"));
    assert_eq!(c.cmd(&["EXEC"]).await, Resp::NilArray);
    assert_eq!(c.cmd(&["GET", "{t}k0"]).await, Resp::Nil);
}

/// SIGTERM stops the real binary within its shutdown grace even while
/// scripts and a long KEYS run: running scripts are stopped, and the worker
/// pool's threads do not hold the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_completes_within_the_grace_while_scripts_run() {
    let mut bin = Binary::spawn_until_serving(
        &[
            "serve",
            "--port",
            "any",
            "--http-port",
            "0",
            "--script-time-limit",
            "600000",
            "--shutdown-grace",
            "2",
        ],
        &[],
    )
    .await;
    let mut fill = Raw::connect(bin.resp_addr).await;
    let mut batch = Vec::new();
    for i in 0..20_000 {
        batch.extend(encode(&["SET", &format!("key:{i}"), "v"]));
    }
    fill.send(&batch).await;
    for _ in 0..20_000 {
        assert_eq!(fill.read().await, ok());
    }
    let mut running = Vec::new();
    for _ in 0..3 {
        let mut c = Raw::connect(bin.resp_addr).await;
        c.send(&encode(&["EVAL", "while true do end", "0"])).await;
        running.push(c);
    }
    let mut keys = Raw::connect(bin.resp_addr).await;
    keys.send(&encode(&["KEYS", "*"])).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    bin.signal("TERM");
    let (status, logs) = bin.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}\n{logs}");
}

/// A request bigger than its cache's ECPU/s limit allows at once is admitted
/// as its bytes arrive (and metered by them), not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_request_to_a_limited_cache_is_admitted_as_it_arrives() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http
        .create_cache_with("slow", r#"{"ecpu_per_second": {"maximum": 2000}}"#)
        .await;
    let mut c = raw_auth(server.resp_addr, "slow", &token).await;
    // 1 MiB: about 1024 ECPU of transfer, half a second of this limit.
    let value = "v".repeat(1 << 20);
    assert_eq!(c.cmd(&["SET", "big", &value]).await, ok());
    assert_eq!(c.cmd(&["STRLEN", "big"]).await, int(1 << 20));
    let usage = http.get("/v1/caches/slow/usage").await.json();
    let ecpu = usage["ecpu_total"].as_f64().unwrap_or(0.0);
    assert!(ecpu >= 1024.0, "the SET's bytes are metered: {usage}");
}

/// A cache's metered ECPU so far.
async fn ecpu_of(http: &Http, cache: &str) -> f64 {
    let usage = http.get(&format!("/v1/caches/{cache}/usage")).await.json();
    usage["ecpu_total"].as_f64().unwrap_or(0.0)
}

/// The bytes of a big request are billed as they arrive, whether or not the
/// cache has an ECPU/s limit: a client that sends most of a request and goes
/// away still pays for what it sent, and a request that completes pays its
/// bytes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_request_is_billed_as_it_arrives_and_only_once() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    for (cache, limits) in [
        ("limited", r#"{"ecpu_per_second": {"maximum": 100000}}"#),
        ("unlimited", "{}"),
    ] {
        let token = http.create_cache_with(cache, limits).await;
        // 1 MiB of an 8 MiB value (about 1024 ECPU), never finished.
        let mut c = raw_auth(server.resp_addr, cache, &token).await;
        let mut req = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", 8 << 20).into_bytes();
        req.extend(std::iter::repeat_n(b'x', 1 << 20));
        c.send(&req).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while ecpu_of(&http, cache).await < 960.0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(c);
        let unfinished = ecpu_of(&http, cache).await;
        assert!(
            (960.0..1100.0).contains(&unfinished),
            "{cache}: an unfinished 1 MiB upload is billed about 1024 ECPU, got {unfinished}"
        );
        // A finished 1 MiB SET adds its bytes once.
        let mut c = raw_auth(server.resp_addr, cache, &token).await;
        assert_eq!(c.cmd(&["SET", "big", &"v".repeat(1 << 20)]).await, ok());
        let added = ecpu_of(&http, cache).await - unfinished;
        assert!(
            (1000.0..1100.0).contains(&added),
            "{cache}: a 1 MiB SET is billed about 1024 ECPU once, got {added}"
        );
    }
}
