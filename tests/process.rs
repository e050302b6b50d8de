//! The real `stratus` binary: start-up by flags and environment, validation
//! that refuses bad settings, structured logs, `redis-cli` against it, and a
//! graceful shutdown on SIGTERM and SIGINT; freed memory going back to
//! the kernel while it idles.
//!
//! `Binary::spawn` waits for the `stratus serving` line *and* for the process
//! to handle SIGINT/SIGTERM, so that the shutdown tests check shutdown itself;
//! `signals_are_handled_as_soon_as_serving_is_announced` checks that the
//! second wait is not needed.

mod common;

use std::time::Duration;

use common::*;

const SERVE: &[&str] = &["serve", "--port", "any", "--http-port", "0"];

fn args(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = SERVE.to_vec();
    v.extend_from_slice(extra);
    v
}

async fn redis_cli(addr: std::net::SocketAddr, cmd: &[&str]) -> String {
    let out = tokio::process::Command::new("redis-cli")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(cmd)
        .output()
        .await
        .expect("redis-cli must be installed (.ci/test installs it)");
    assert!(out.status.success(), "redis-cli {cmd:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully() {
    let mut bin = Binary::spawn(SERVE, &[]).await;
    // redis-cli just works against the open default cache.
    assert_eq!(redis_cli(bin.resp_addr, &["PING"]).await, "PONG");
    assert_eq!(redis_cli(bin.resp_addr, &["SET", "k", "v"]).await, "OK");
    assert_eq!(redis_cli(bin.resp_addr, &["GET", "k"]).await, "v");
    assert_eq!(redis_cli(bin.resp_addr, &["-3", "GET", "k"]).await, "v");

    // A connected client (idle) and one with a request in flight.
    let mut idle = Raw::connect(bin.resp_addr).await;
    assert_eq!(idle.cmd(&["PING"]).await, simple("PONG"));
    let mut mid = Raw::connect(bin.resp_addr).await;
    mid.send(b"*2\r\n$3\r\nGET\r\n").await;
    let http = Http::new(bin.http_addr);
    assert_eq!(http.get("/healthz").await.status, 200);

    bin.signal("TERM");
    let (status, logs) = bin.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}; logs:\n{logs}");
    let logs = strip_ansi(&logs);
    assert!(logs.contains("shutting down"), "{logs}");
    assert!(logs.contains("SIGTERM"), "{logs}");
    assert!(logs.contains("shutdown complete"), "{logs}");
    // Clients see their connection closed; the ports are released.
    idle.assert_closed().await;
    mid.assert_closed().await;
    assert!(tokio::net::TcpStream::connect(bin.resp_addr).await.is_err());
}

/// Once `stratus serving` is logged (the readiness a supervisor or a test
/// waits for), SIGTERM and SIGINT must already lead to a graceful shutdown.
/// Servers are started concurrently (load widens any gap) and are signalled
/// the moment they announce themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_are_handled_as_soon_as_serving_is_announced() {
    for round in 0..3 {
        let mut tasks = Vec::new();
        for i in 0..8 {
            tasks.push(tokio::spawn(async move {
                let mut bin = Binary::spawn_until_serving(SERVE, &[]).await;
                let caught = caught_signals(bin.pid()) & SIGINT_SIGTERM;
                bin.signal(if i % 2 == 0 { "TERM" } else { "INT" });
                let (status, logs) = bin.wait_exit(Duration::from_secs(20)).await;
                (caught, status, logs)
            }));
        }
        for t in tasks {
            let (caught, status, logs) = t.await.unwrap();
            assert_eq!(
                caught, SIGINT_SIGTERM,
                "round {round}: serving was logged before the SIGINT/SIGTERM handlers were installed"
            );
            assert!(
                status.success(),
                "round {round}: exit status {status:?}; logs:\n{logs}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_shuts_down_gracefully() {
    let mut bin = Binary::spawn(SERVE, &[]).await;
    let mut c = Raw::connect(bin.resp_addr).await;
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, ok());
    bin.signal("INT");
    let (status, logs) = bin.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}; logs:\n{logs}");
    let logs = strip_ansi(&logs);
    assert!(logs.contains("SIGINT"), "{logs}");
    assert!(logs.contains("shutdown complete"), "{logs}");
    c.assert_closed().await;
}

/// A client that sends nothing and reads nothing does not hold the shutdown
/// beyond the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_up_by_silent_clients() {
    let mut bin = Binary::spawn(&args(&["--shutdown-grace", "2"]), &[]).await;
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut c = Raw::connect(bin.resp_addr).await;
        c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc").await;
        stalled.push(c);
    }
    let mut deaf = tokio::net::TcpStream::connect(bin.resp_addr).await.unwrap();
    let mut batch = Vec::new();
    for _ in 0..20_000 {
        batch.extend(encode(&["ECHO", &"x".repeat(200)]));
    }
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(2), deaf.write_all(&batch)).await;
    bin.signal("TERM");
    let (status, logs) = bin.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}; logs:\n{logs}");
    assert!(strip_ansi(&logs).contains("shutdown complete"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_structured() {
    // Text: key=value fields.
    let mut bin = Binary::spawn(SERVE, &[]).await;
    let line = bin
        .logs()
        .lines()
        .map(strip_ansi)
        .find(|l| l.contains("stratus serving"))
        .unwrap();
    assert!(
        line.contains(&format!("resp_addr={}", bin.resp_addr)),
        "{line}"
    );
    assert!(
        line.contains(&format!("http_addr={}", bin.http_addr)),
        "{line}"
    );
    assert!(line.contains("INFO"), "{line}");
    bin.signal("TERM");
    let (status, logs) = bin.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}; logs:\n{logs}");

    // JSON: one object per line, by flag or by environment.
    for (extra, env) in [
        (&["--log-format", "json"][..], &[][..]),
        (&[][..], &[("STRATUS_LOG_FORMAT", "json")][..]),
    ] {
        let mut a = SERVE.to_vec();
        a.extend_from_slice(extra);
        let mut bin = Binary::spawn(&a, env).await;
        assert_eq!(redis_cli(bin.resp_addr, &["PING"]).await, "PONG");
        bin.signal("TERM");
        let (status, logs) = bin.wait_exit(Duration::from_secs(20)).await;
        assert!(status.success(), "exit status {status:?}; logs:\n{logs}");
        let mut saw = (false, false);
        for line in logs.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line:?}"));
            assert!(v["level"].is_string(), "{line}");
            assert!(v["timestamp"].is_string(), "{line}");
            assert!(v["fields"]["message"].is_string(), "{line}");
            if v["fields"]["message"] == "stratus serving" {
                assert_eq!(v["fields"]["resp_addr"], bin.resp_addr.to_string());
                saw.0 = true;
            }
            if v["fields"]["message"] == "shutdown complete" {
                saw.1 = true;
            }
        }
        assert_eq!(saw, (true, true), "{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_flags_and_environment() {
    // By flag.
    let mut bin = Binary::spawn(&args(&["--max-key-len", "8", "--default-cache", "on"]), &[]).await;
    let mut c = Raw::connect(bin.resp_addr).await;
    assert_eq!(c.cmd(&["SET", "12345678", "v"]).await, ok());
    assert!(c.cmd(&["SET", "123456789", "v"]).await.is_error());
    bin.signal("TERM");
    let (status, logs) = bin.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}; logs:\n{logs}");

    // By environment (the flags' values are the same settings).
    let mut bin = Binary::spawn(
        SERVE,
        &[
            ("STRATUS_MAX_KEY_LEN", "8"),
            ("STRATUS_MAX_ARGS", "5"),
            ("STRATUS_DEFAULT_CACHE", "off"),
        ],
    )
    .await;
    let http = Http::new(bin.http_addr);
    let token = http.create_cache("orders").await;
    let mut c = Raw::connect(bin.resp_addr).await;
    assert_eq!(
        c.cmd(&["GET", "k"]).await,
        err("NOAUTH Authentication required.")
    );
    assert_eq!(c.cmd(&["AUTH", "orders", &token]).await, ok());
    assert_eq!(c.cmd(&["SET", "12345678", "v"]).await, ok());
    assert!(c.cmd(&["SET", "123456789", "v"]).await.is_error());
    assert_eq!(c.cmd(&["DEL", "a", "b", "c", "d"]).await, int(0));
    let r = c.cmd(&["DEL", "a", "b", "c", "d", "e"]).await;
    assert!(r.text().starts_with("ERR Protocol error"), "{r:?}");
    bin.signal("TERM");
    let (status, logs) = bin.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}; logs:\n{logs}");

    // Flags win over the environment.
    let mut bin = Binary::spawn(
        &args(&["--max-key-len", "20"]),
        &[("STRATUS_MAX_KEY_LEN", "8")],
    )
    .await;
    let mut c = Raw::connect(bin.resp_addr).await;
    assert_eq!(c.cmd(&["SET", "123456789012", "v"]).await, ok());
    bin.signal("TERM");
    let (status, logs) = bin.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}; logs:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_refused_at_start_up() {
    // (arguments, environment, what the message must name)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (args(&["--max-args", "1"]), vec![], "max-args"),
        (SERVE.to_vec(), vec![("STRATUS_MAX_ARGS", "1")], "max-args"),
        (args(&["--max-bulk-len", "10"]), vec![], "max-bulk-len"),
        (args(&["--max-key-len", "0"]), vec![], "max-key-len"),
        (
            args(&["--output-buffer-limit", "100"]),
            vec![],
            "output-buffer-limit",
        ),
        (
            SERVE.to_vec(),
            vec![("STRATUS_OUTPUT_BUFFER_LIMIT", "100")],
            "output-buffer-limit",
        ),
        (args(&["--max-clients", "0"]), vec![], "max-clients"),
        (args(&["--threads", "0"]), vec![], "threads"),
        (args(&["--admin-token", "short"]), vec![], "admin-token"),
        (args(&["--http-bind", "0.0.0.0"]), vec![], "admin token"),
        // Values that do not parse at all.
        (args(&["--max-args", "many"]), vec![], "max-args"),
        (
            SERVE.to_vec(),
            vec![("STRATUS_MAX_BULK_LEN", "lots")],
            "max-bulk-len",
        ),
        (args(&["--default-cache", "maybe"]), vec![], "default-cache"),
        (args(&["--log-format", "xml"]), vec![], "log-format"),
        (args(&["--no-such-flag"]), vec![], "no-such-flag"),
    ];
    for (a, env, mention) in cases {
        let (status, stderr) = run_stratus_to_exit(&a, &env).await;
        assert!(
            !status.success(),
            "{a:?} {env:?} should be refused; stderr:\n{stderr}"
        );
        assert!(
            stderr.contains(mention),
            "{a:?} {env:?}: the message should name {mention:?}; stderr:\n{stderr}"
        );
        assert!(
            !stderr.contains("stratus serving"),
            "{a:?} {env:?} started serving"
        );
    }
}

/// SIGHUP reloads the TLS files (new handshakes use them); the server
/// keeps running and still stops on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_tls_files() {
    let dir = std::env::temp_dir().join(format!("stratus-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let (cert_path, key_path) = (dir.join("c.pem"), dir.join("k.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    let (cert_arg, key_arg): (&'static str, &'static str) = (
        Box::leak(cert_path.display().to_string().into_boxed_str()),
        Box::leak(key_path.display().to_string().into_boxed_str()),
    );
    let mut bin = Binary::spawn(
        &args(&[
            "--tls-port",
            "any",
            "--tls-cert-file",
            cert_arg,
            "--tls-key-file",
            key_arg,
        ]),
        &[],
    )
    .await;
    bin.signal("HUP");
    common::eventually("the reload is logged", || {
        let logs = strip_ansi(&bin.logs());
        async move { logs.contains("TLS files reloaded") }
    })
    .await;
    assert_eq!(redis_cli(bin.resp_addr, &["PING"]).await, "PONG");
    bin.signal("TERM");
    let (status, logs) = bin.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}; logs:\n{logs}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Memory a server freed goes back to the kernel even when no request
/// comes after (values of 4 KiB and more live in mimalloc, which hands
/// freed pages back only when some thread frees or allocates again; the
/// allocator's purger thread does it for an idle server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_gives_freed_memory_back() {
    const VALUES: usize = 40_000;
    const SIZE: usize = 4096;
    let mut bin = Binary::spawn(SERVE, &[]).await;
    let pid = bin.child.id().expect("pid");
    let mut conn = redis_conn(bin.resp_addr, false).await;
    let value = vec![b'v'; SIZE];
    for first in (0..VALUES).step_by(1000) {
        let mut pipe = redis::pipe();
        for i in first..first + 1000 {
            pipe.set(format!("big:{i}"), &value).ignore();
        }
        let () = pipe.query_async(&mut conn).await.expect("SETs");
    }
    let full = rss_bytes_of(pid);
    let written = (VALUES * SIZE) as u64;
    assert!(
        full > written,
        "RSS {full} holds the {written} bytes written"
    );
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("FLUSHALL");
    drop(conn);
    // Nothing is sent from here on: half of what was written must leave
    // the resident set by itself.
    let mut now = full;
    common::eventually("freed memory goes back to the kernel", || {
        now = rss_bytes_of(pid);
        std::future::ready(now < full - written / 2)
    })
    .await;
    assert!(now < full - written / 2, "RSS {full} -> {now}");
    bin.signal("TERM");
    let (status, logs) = bin.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status:?}; logs:\n{logs}");
}
