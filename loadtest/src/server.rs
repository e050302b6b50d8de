//! Starting servers for benchmarks: the release `stratus` binary (or
//! `redis-server`) as a child process, optionally pinned with `taskset`, and
//! the control API over a minimal HTTP/1.1 client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process, killed on drop.
pub struct ServerProcess {
    pub child: Child,
    pub resp: SocketAddr,
    pub http: Option<SocketAddr>,
    /// Stratus's Memcached port (or a real memcached's), if any.
    pub memcached: Option<SocketAddr>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pinned(cpu: Option<usize>, program: &str) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// The stratus binary next to this one (`target/release/stratus`).
pub fn stratus_binary() -> String {
    let me = std::env::current_exe().expect("current exe");
    let dir = me.parent().expect("exe dir");
    dir.join("stratus").to_string_lossy().into_owned()
}

/// Starts `stratus serve` on ephemeral ports, pinned to `cpu` if given.
pub fn start_stratus(cpu: Option<usize>, extra: &[&str]) -> ServerProcess {
    start_stratus_with_env(cpu, extra, &[])
}

/// [`start_stratus`] with extra environment (e.g. autoscaling thresholds).
/// `LOADTEST_STRATUS_LOG` in this process's environment adds log directives
/// (e.g. `stratus::proxy=debug`) and passes the server's log lines to this
/// process's stderr (else they are drained unread).
pub fn start_stratus_with_env(
    cpu: Option<usize>,
    extra: &[&str],
    env: &[(String, String)],
) -> ServerProcess {
    let extra_log = std::env::var("LOADTEST_STRATUS_LOG").unwrap_or_default();
    let show_log = !extra_log.is_empty();
    let mut child = pinned(cpu, &stratus_binary())
        .args([
            "serve",
            "--port",
            "any",
            "--http-port",
            "0",
            "--memcached-port",
            "any",
        ])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env(
            "STRATUS_LOG",
            format!("warn,stratus::server=info,{extra_log}"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stratus (build it with cargo build --release first)");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let (mut resp, mut http, mut memcached) = (None, None, None);
    for line in lines.by_ref() {
        let line = line.expect("read stratus log");
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| {
                    v.trim_matches(|c| c == '"' || c == ',')
                        .trim_start_matches("Some(")
                        .trim_end_matches(')')
                        .parse::<SocketAddr>()
                        .ok()
                })
        };
        if line.contains("stratus serving") {
            resp = field("resp_addr=");
            http = field("http_addr=");
            memcached = field("memcached_addr=");
            break;
        }
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if show_log {
                eprintln!("{line}");
            }
        }
    });
    ServerProcess {
        child,
        resp: resp.expect("stratus did not report its RESP address"),
        http,
        memcached,
    }
}

/// Resident set size of a process, bytes (from /proc).
pub fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

/// A free TCP port on 127.0.0.1 (for servers that need one given).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Installs Debian's `redis-server` if it is not on this machine.
pub fn ensure_redis_server() {
    let present = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return;
    }
    eprintln!("redis-server is missing: installing Debian's package");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let apt = |args: &[&str]| {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            Command::new("sudo")
        };
        if !root {
            c.arg("apt-get");
        }
        c.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    let _ = apt(&["update", "-q"]);
    let ok = apt(&[
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "redis-server",
    ])
    .is_ok_and(|s| s.success());
    assert!(ok, "could not install redis-server");
}

/// Starts `redis-server` without persistence on a free port, pinned to `cpu`.
pub fn start_redis(cpu: Option<usize>) -> ServerProcess {
    ensure_redis_server();
    let port = free_port();
    let child = pinned(cpu, "redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--bind",
            "127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server (apt-get install redis-server)");
    let resp: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(resp).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    ServerProcess {
        child,
        resp,
        http: None,
        memcached: None,
    }
}

/// Starts a real `memcached -t 1` (Debian's package) with `memory_mb` of
/// item memory on a free port, pinned to `cpu`.
pub fn start_memcached(cpu: Option<usize>, memory_mb: u64) -> ServerProcess {
    let port = free_port();
    let mut cmd = pinned(cpu, "memcached");
    cmd.args([
        "-l",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "0",
        "-t",
        "1",
    ])
    .args(["-m", &memory_mb.to_string()]);
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if root {
        cmd.args(["-u", "root"]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start memcached (apt-get install memcached)");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "memcached did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    ServerProcess {
        child,
        resp: addr,
        http: None,
        memcached: Some(addr),
    }
}

/// One HTTP/1.1 request to the control API; returns status and body.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect control API");
    // The control API refuses bodies not sent as JSON (415).
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Creates a cache and returns its token.
pub fn create_cache(http_addr: SocketAddr, name: &str, usage_limits: &str) -> String {
    let body = format!(r#"{{"name": "{name}", "usage_limits": {usage_limits}}}"#);
    let (status, body) = http(http_addr, "POST", "/v1/caches", &body);
    assert_eq!(status, 201, "create cache {name}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["token"].as_str().expect("token").to_string()
}
