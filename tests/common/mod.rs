//! Shared helpers for the integration tests: everything talks to real servers
//! over real TCP on 127.0.0.1.
//!
//! - [`start`] / [`start_default`]: a Stratus server in this process
//!   (`stratus::server::start`), ports 0;
//! - [`Raw`]: a raw RESP client that writes bytes and parses every reply
//!   (RESP2 and RESP3) into [`Resp`], for exact reply and error strings;
//! - [`RealRedis`] and [`Pair`]: a real `redis-server` beside Stratus, to send
//!   the same command to both and compare the replies;
//! - [`redis_conn`]: connections of the `redis` crate (RESP2 or RESP3);
//! - [`Http`]: a hyper-util client for the control API;
//! - [`Binary`]: the real `stratus` binary as a child process.
//!
//! Each test binary uses a different subset of these.

#![allow(dead_code)]

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use stratus::config::{DefaultCache, ServeConfig};
use stratus::server::Running;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Generous deadline for anything that should happen "soon".
pub const DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// In-process servers
// ---------------------------------------------------------------------------

/// Starts a Stratus server in this process with `config`.
///
/// `STRATUS_TEST_PARTITIONS=N` starts every cache with N partitions (when
/// the test did not choose a number itself): the CI script runs the command
/// suites once on 1 partition and once on many, so fan-out, routing and
/// per-partition code paths answer exactly like the single partition.
pub async fn start(mut config: ServeConfig) -> Running {
    if config.initial_partitions == 1
        && let Some(n) = std::env::var("STRATUS_TEST_PARTITIONS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    {
        config.initial_partitions = n;
    }
    if std::env::var_os("STRATUS_TEST_CLUSTER").is_some() {
        return start_cluster(config).await;
    }
    stratus::server::start(config)
        .await
        .expect("the server starts")
}

/// `STRATUS_TEST_CLUSTER=1`: the same server as three in-process nodes, a
/// control placing the caches on them (at least three partitions each, one
/// per node) and a proxy in front — the command
/// suites then run through the data plane (the open `default` cache on a
/// node; the HTTP port is the proxy's).
async fn start_cluster(config: ServeConfig) -> Running {
    const KEY: &str = "abababababababababababababababababababababababababababababababab";
    let key = stratus::config::unhex(KEY);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        nodes.push(listener.local_addr().unwrap());
        tokio::spawn(stratus::node::Node::new(key).serve(listener, shutdown.clone()));
    }
    let mut control = config.clone();
    control.token_key = Some(KEY.into());
    // Every cache spread over the three nodes.
    control.initial_partitions = control.initial_partitions.max(3);
    let control = stratus::server::start_control(stratus::config::ControlConfig {
        serve: control,
        meta: Default::default(),
        nodes,
        endpoint: "127.0.0.1:6379".parse().unwrap(),
        advertise_http: None,
    })
    .await
    .expect("control starts");
    let mut proxy = config;
    proxy.token_key = Some(KEY.into());
    let running = stratus::server::start_proxy(stratus::config::ProxyConfig {
        serve: proxy,
        meta: Default::default(),
        control: vec![control.http_addr.to_string()],
        follow_period_ms: 10,
    })
    .await
    .expect("the proxy starts");
    // Serving once it has read control's caches (the default one).
    let ready = Http::new(running.http_addr);
    eventually("the proxy is ready", || async {
        ready.get("/readyz").await.status == 200
    })
    .await;
    // Control lives as long as the test: its tasks run on the runtime.
    std::mem::forget(control);
    std::mem::forget(shutdown);
    running
}

/// Starts a server with the defaults: loopback, ports 0, open `default` cache.
pub async fn start_default() -> Running {
    start(ServeConfig::default()).await
}

/// A configuration without the open default cache: every connection must AUTH.
pub fn closed_config() -> ServeConfig {
    ServeConfig {
        default_cache: DefaultCache::Off,
        ..ServeConfig::default()
    }
}

/// Polls `check` every 50 ms until it returns true or `DEADLINE` passes.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + DEADLINE;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < end, "not within {DEADLINE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until exactly `n` clients of the cache a fresh connection to
/// `addr` binds to (the open `default` one) are blocked, as `INFO clients`
/// counts them: what any client sees, through a proxy too. A client is
/// counted once it is in line on its keys.
pub async fn wait_blocked(addr: SocketAddr, n: usize) {
    let want = format!("blocked_clients:{n}\r\n");
    eventually(&format!("{n} blocked"), || {
        let want = want.clone();
        async move {
            let info = Raw::connect(addr).await.cmd(&["INFO", "clients"]).await;
            info.text().contains(&want)
        }
    })
    .await;
}

/// Resident memory of this process (the in-process server's too), bytes.
pub fn rss_bytes() -> u64 {
    proc_status_bytes("self", "VmRSS:")
}

/// Resident memory of process `pid` (a spawned `stratus`), bytes.
pub fn rss_bytes_of(pid: u32) -> u64 {
    proc_status_bytes(&pid.to_string(), "VmRSS:")
}

/// Address space of this process, bytes: memory reserved ahead shows here
/// even before it is touched.
pub fn vm_size_bytes() -> u64 {
    proc_status_bytes("self", "VmSize:")
}

/// A field in kB of `/proc/<process>/status`, in bytes.
fn proc_status_bytes(process: &str, field: &str) -> u64 {
    let path = format!("/proc/{process}/status");
    let status = std::fs::read_to_string(&path).expect("process status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .expect("field in the process status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("a value in kB");
    kb * 1024
}

// ---------------------------------------------------------------------------
// RESP replies
// ---------------------------------------------------------------------------

/// One reply as it came off the wire (RESP2 and RESP3 types kept apart).
#[derive(Clone, PartialEq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1`
    Nil,
    /// `*-1`
    NilArray,
    /// RESP3 `_`
    Null,
    Array(Vec<Resp>),
    Map(Vec<(Resp, Resp)>),
    Set(Vec<Resp>),
    Double(String),
    Bool(bool),
    /// Format (`txt`) and text.
    Verbatim(String, Vec<u8>),
    BigNumber(String),
    Push(Vec<Resp>),
}

impl fmt::Debug for Resp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resp::Simple(s) => write!(f, "+{s:?}"),
            Resp::Error(s) => write!(f, "-{s:?}"),
            Resp::Int(n) => write!(f, ":{n}"),
            Resp::Bulk(b) if b.len() > 200 => write!(
                f,
                "${:?}...({} bytes)",
                String::from_utf8_lossy(&b[..200]),
                b.len()
            ),
            Resp::Bulk(b) => write!(f, "${:?}", String::from_utf8_lossy(b)),
            Resp::Nil => write!(f, "$-1"),
            Resp::NilArray => write!(f, "*-1"),
            Resp::Null => write!(f, "_"),
            Resp::Array(items) => f.debug_list().entries(items).finish(),
            Resp::Map(pairs) => f
                .debug_map()
                .entries(pairs.iter().map(|(k, v)| (k, v)))
                .finish(),
            Resp::Set(items) => {
                write!(f, "~")?;
                f.debug_set().entries(items).finish()
            }
            Resp::Double(d) => write!(f, ",{d}"),
            Resp::Bool(b) => write!(f, "#{b}"),
            Resp::Verbatim(fmt_, t) => write!(f, "={fmt_}:{:?}", String::from_utf8_lossy(t)),
            Resp::BigNumber(n) => write!(f, "({n}"),
            Resp::Push(items) => {
                write!(f, ">")?;
                f.debug_list().entries(items).finish()
            }
        }
    }
}

pub fn ok() -> Resp {
    Resp::Simple("OK".into())
}

pub fn simple(s: &str) -> Resp {
    Resp::Simple(s.into())
}

pub fn err(s: &str) -> Resp {
    Resp::Error(s.into())
}

pub fn bulk(s: &str) -> Resp {
    Resp::Bulk(s.as_bytes().to_vec())
}

pub fn int(n: i64) -> Resp {
    Resp::Int(n)
}

pub fn arr(items: Vec<Resp>) -> Resp {
    Resp::Array(items)
}

pub fn bulks(items: &[&str]) -> Resp {
    Resp::Array(items.iter().map(|s| bulk(s)).collect())
}

impl Resp {
    /// The text of a simple string, bulk string, verbatim string or error.
    pub fn text(&self) -> String {
        match self {
            Resp::Simple(s) | Resp::Error(s) => s.clone(),
            Resp::Bulk(b) | Resp::Verbatim(_, b) => String::from_utf8_lossy(b).into_owned(),
            Resp::Double(d) | Resp::BigNumber(d) => d.clone(),
            other => panic!("expected a string reply, got {other:?}"),
        }
    }

    pub fn int(&self) -> i64 {
        match self {
            Resp::Int(n) => *n,
            other => panic!("expected an integer reply, got {other:?}"),
        }
    }

    /// The elements of an array, set or push reply.
    pub fn items(&self) -> &[Resp] {
        match self {
            Resp::Array(v) | Resp::Set(v) | Resp::Push(v) => v,
            other => panic!("expected an array reply, got {other:?}"),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Resp::Error(_))
    }

    /// Key/value pairs of a RESP3 map or of a RESP2 flat array of pairs.
    pub fn pairs(&self) -> Vec<(Resp, Resp)> {
        match self {
            Resp::Map(p) => p.clone(),
            Resp::Array(v) => {
                assert!(v.len() % 2 == 0, "odd flat map {v:?}");
                v.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect()
            }
            other => panic!("expected a map reply, got {other:?}"),
        }
    }

    /// The value under `key` in a map reply (RESP3 map or RESP2 flat array).
    pub fn field(&self, key: &str) -> Option<Resp> {
        self.pairs()
            .into_iter()
            .find(|(k, _)| {
                matches!(k, Resp::Bulk(b) | Resp::Verbatim(_, b) if b == key.as_bytes())
                    || matches!(k, Resp::Simple(s) if s == key)
            })
            .map(|(_, v)| v)
    }

    /// Sorts the elements of arrays, sets and maps (for unordered replies).
    pub fn sorted(&self) -> Resp {
        let key = |r: &Resp| format!("{r:?}");
        match self {
            Resp::Array(v) => {
                let mut v = v.clone();
                v.sort_by_key(key);
                Resp::Array(v)
            }
            Resp::Set(v) => {
                let mut v = v.clone();
                v.sort_by_key(key);
                Resp::Set(v)
            }
            Resp::Map(p) => {
                let mut p = p.clone();
                p.sort_by_key(|(k, _)| key(k));
                Resp::Map(p)
            }
            other => other.clone(),
        }
    }

    /// A RESP2 flat field/value array with its pairs sorted by field.
    pub fn sorted_pairs(&self) -> Resp {
        let mut p = self.pairs();
        p.sort_by_key(|(k, _)| format!("{k:?}"));
        match self {
            Resp::Map(_) => Resp::Map(p),
            _ => Resp::Array(p.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        }
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

/// Parses one reply at `pos`: `Ok(None)` if incomplete, `Err` if malformed.
pub fn parse_reply(buf: &[u8], pos: usize) -> Result<Option<(Resp, usize)>, String> {
    if pos >= buf.len() {
        return Ok(None);
    }
    let Some(eol) = find_crlf(buf, pos) else {
        return Ok(None);
    };
    let kind = buf[pos];
    let line = std::str::from_utf8(&buf[pos + 1..eol]).map_err(|e| format!("bad line: {e}"))?;
    let next = eol + 2;
    let num = |l: &str| -> Result<i64, String> {
        l.parse::<i64>()
            .map_err(|_| format!("bad number {l:?} after {:?}", kind as char))
    };
    let blob = |n: i64| -> Result<Option<(Vec<u8>, usize)>, String> {
        let n = usize::try_from(n).map_err(|_| format!("bad length {n}"))?;
        if buf.len() < next + n + 2 {
            return Ok(None);
        }
        if &buf[next + n..next + n + 2] != b"\r\n" {
            return Err("blob not followed by CRLF".into());
        }
        Ok(Some((buf[next..next + n].to_vec(), next + n + 2)))
    };
    let many = |n: usize, mut at: usize| -> Result<Option<(Vec<Resp>, usize)>, String> {
        let mut out = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            match parse_reply(buf, at)? {
                Some((r, end)) => {
                    out.push(r);
                    at = end;
                }
                None => return Ok(None),
            }
        }
        Ok(Some((out, at)))
    };
    Ok(match kind {
        b'+' => Some((Resp::Simple(line.into()), next)),
        b'-' => Some((Resp::Error(line.into()), next)),
        b':' => Some((Resp::Int(num(line)?), next)),
        b'_' => Some((Resp::Null, next)),
        b',' => Some((Resp::Double(line.into()), next)),
        b'(' => Some((Resp::BigNumber(line.into()), next)),
        b'#' => Some((Resp::Bool(line == "t"), next)),
        b'$' => {
            let n = num(line)?;
            if n < 0 {
                Some((Resp::Nil, next))
            } else {
                blob(n)?.map(|(b, end)| (Resp::Bulk(b), end))
            }
        }
        b'!' => blob(num(line)?)?
            .map(|(b, end)| (Resp::Error(String::from_utf8_lossy(&b).into_owned()), end)),
        b'=' => blob(num(line)?)?.map(|(b, end)| {
            let (f, t) = if b.len() >= 4 && b[3] == b':' {
                (
                    String::from_utf8_lossy(&b[..3]).into_owned(),
                    b[4..].to_vec(),
                )
            } else {
                (String::new(), b)
            };
            (Resp::Verbatim(f, t), end)
        }),
        b'*' | b'~' | b'>' => {
            let n = num(line)?;
            if n < 0 {
                Some((Resp::NilArray, next))
            } else {
                many(n as usize, next)?.map(|(v, end)| {
                    let r = match kind {
                        b'*' => Resp::Array(v),
                        b'~' => Resp::Set(v),
                        _ => Resp::Push(v),
                    };
                    (r, end)
                })
            }
        }
        b'%' | b'|' => {
            let n = usize::try_from(num(line)?).map_err(|_| "bad map length")?;
            match many(2 * n, next)? {
                None => None,
                Some((v, end)) => {
                    let pairs: Vec<(Resp, Resp)> =
                        v.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect();
                    if kind == b'%' {
                        Some((Resp::Map(pairs), end))
                    } else {
                        // An attribute precedes the reply it describes: skip it.
                        parse_reply(buf, end)?
                    }
                }
            }
        }
        other => return Err(format!("unknown reply type byte {:?}", other as char)),
    })
}

/// Encodes a command as a RESP multibulk request.
pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

// ---------------------------------------------------------------------------
// Raw TCP client
// ---------------------------------------------------------------------------

/// What waiting for a reply produced.
#[derive(Debug, PartialEq)]
pub enum Read {
    Reply(Resp),
    /// EOF or connection reset.
    Closed,
    Timeout,
}

/// A raw RESP connection: writes bytes as given, parses replies exactly.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
    chunk: Box<[u8]>,
    /// Bytes received so far.
    pub received: usize,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let stream = tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        Raw::from_stream(stream)
    }

    /// Wraps an already connected stream.
    pub fn from_stream(stream: TcpStream) -> Raw {
        stream.set_nodelay(true).ok();
        Raw {
            stream,
            buf: Vec::new(),
            chunk: vec![0u8; 256 * 1024].into_boxed_slice(),
            received: 0,
        }
    }

    /// Writes `data` as is.
    pub async fn send(&mut self, data: &[u8]) {
        self.stream.write_all(data).await.expect("write to server");
    }

    /// Waits up to `wait` for one whole reply.
    pub async fn read_timeout(&mut self, wait: Duration) -> Read {
        let end = tokio::time::Instant::now() + wait;
        loop {
            match parse_reply(&self.buf, 0) {
                Ok(Some((r, n))) => {
                    self.buf.drain(..n);
                    return Read::Reply(r);
                }
                Ok(None) => {}
                Err(e) => panic!("server sent invalid RESP ({e}): {:?}", self.buf_text()),
            }
            match tokio::time::timeout_at(end, self.stream.read(&mut self.chunk)).await {
                Err(_) => return Read::Timeout,
                Ok(Ok(0)) | Ok(Err(_)) => return Read::Closed,
                Ok(Ok(n)) => {
                    self.received += n;
                    self.buf.extend_from_slice(&self.chunk[..n]);
                }
            }
        }
    }

    /// The next reply (panics on close or after [`DEADLINE`]).
    pub async fn read(&mut self) -> Resp {
        match self.read_timeout(DEADLINE).await {
            Read::Reply(r) => r,
            other => panic!(
                "expected a reply, got {other:?}; unparsed: {:?}",
                self.buf_text()
            ),
        }
    }

    /// Sends one command and returns its reply.
    pub async fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Resp {
        self.send(&encode(args)).await;
        self.read().await
    }

    /// Asserts the server closes the connection (within [`DEADLINE`]) without
    /// sending any other reply.
    pub async fn assert_closed(&mut self) {
        match self.read_timeout(DEADLINE).await {
            Read::Closed => {}
            other => panic!("expected the server to close the connection, got {other:?}"),
        }
    }

    /// Asserts nothing arrives and the connection stays open for `wait`.
    pub async fn assert_silent(&mut self, wait: Duration) {
        match self.read_timeout(wait).await {
            Read::Timeout => {}
            other => panic!("expected silence on an open connection, got {other:?}"),
        }
    }

    fn buf_text(&self) -> String {
        String::from_utf8_lossy(&self.buf[..self.buf.len().min(300)]).into_owned()
    }
}

// ---------------------------------------------------------------------------
// Real redis-server, for side-by-side comparison
// ---------------------------------------------------------------------------

/// A `redis-server` child process on a free loopback port (killed on drop).
pub struct RealRedis {
    child: std::process::Child,
    pub addr: SocketAddr,
}

/// A port free now on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

impl RealRedis {
    pub async fn start() -> RealRedis {
        RealRedis::start_with(&[]).await
    }

    /// Starts `redis-server` with extra arguments (e.g. `--requirepass x`).
    pub async fn start_with(extra: &[&str]) -> RealRedis {
        for _attempt in 0..5 {
            let port = free_port();
            let mut child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--dir", &std::env::temp_dir().to_string_lossy()])
                // Its own file name: a dump.rdb someone left in the temp
                // directory must not be loaded into the comparison server.
                .args(["--dbfilename", &format!("stratus-test-{port}.rdb")])
                .args(extra)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("redis-server must be installed (.ci/test installs it)");
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken in the meantime: try another one
                }
                if let Ok(mut s) = TcpStream::connect(addr).await {
                    let _ = s.write_all(b"PING\r\n").await;
                    let mut b = [0u8; 16];
                    // PONG, or NOAUTH from a server with a password: it is up.
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(1), s.read(&mut b)).await
                        && (b[..n].starts_with(b"+PONG") || b[..n].starts_with(b"-NOAUTH"))
                    {
                        // Another process's redis-server may have taken the
                        // port first (helpers share the machine): it must be
                        // this child that answers.
                        if b[..n].starts_with(b"+PONG")
                            && server_pid(&mut s).await != Some(child.id())
                        {
                            break;
                        }
                        return RealRedis { child, addr };
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start redis-server");
    }
}

/// The `process_id` that `INFO server` reports on `s`.
async fn server_pid(s: &mut TcpStream) -> Option<u32> {
    s.write_all(b"INFO server\r\n").await.ok()?;
    let mut text = Vec::new();
    let mut b = [0u8; 4096];
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        let n = tokio::time::timeout(Duration::from_secs(1), s.read(&mut b))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            break;
        }
        text.extend_from_slice(&b[..n]);
        let t = String::from_utf8_lossy(&text);
        if let Some(at) = t.find("process_id:")
            && let Some(line) = t[at + 11..].split("\r\n").next()
            && t[at..].contains("\r\n")
        {
            return line.trim().parse().ok();
        }
    }
    None
}

impl Drop for RealRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw connection to a real Redis and one to Stratus: the same command
/// goes to both, and the replies are compared.
pub struct Pair {
    pub redis: Raw,
    pub stratus: Raw,
    _real: RealRedis,
}

impl Pair {
    pub async fn new(stratus: SocketAddr) -> Pair {
        let real = RealRedis::start().await;
        Pair {
            redis: Raw::connect(real.addr).await,
            stratus: Raw::connect(stratus).await,
            _real: real,
        }
    }

    /// The real Redis's address (for a second connection to it).
    pub fn redis_addr(&self) -> SocketAddr {
        self._real.addr
    }

    /// Runs `args` on both; returns (Redis's reply, Stratus's reply).
    pub async fn both<A: AsRef<[u8]>>(&mut self, args: &[A]) -> (Resp, Resp) {
        let r = self.redis.cmd(args).await;
        let s = self.stratus.cmd(args).await;
        (r, s)
    }

    /// Runs `args` on both, asserts identical replies, returns the reply.
    pub async fn same<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Resp {
        let (r, s) = self.both(args).await;
        assert_eq!(s, r, "reply differs from Redis for {}", show(args));
        s
    }

    /// As [`Pair::same`], for replies whose element order is unspecified.
    pub async fn same_unordered<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Resp {
        let (r, s) = self.both(args).await;
        assert_eq!(
            s.sorted(),
            r.sorted(),
            "reply differs from Redis for {}",
            show(args)
        );
        s
    }

    /// As [`Pair::same`], for field/value replies in unspecified order.
    pub async fn same_pairs<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Resp {
        let (r, s) = self.both(args).await;
        assert_eq!(
            s.sorted_pairs(),
            r.sorted_pairs(),
            "reply differs from Redis for {}",
            show(args)
        );
        s
    }

    /// Runs a script of commands, asserting each reply equals Redis's.
    pub async fn script(&mut self, cmds: &[&[&str]]) {
        for c in cmds {
            self.same(c).await;
        }
    }
}

/// A command for messages.
pub fn show<A: AsRef<[u8]>>(args: &[A]) -> String {
    args.iter()
        .map(|a| {
            let a = a.as_ref();
            if a.len() > 40 {
                format!("<{} bytes>", a.len())
            } else {
                String::from_utf8_lossy(a).into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
// The redis crate
// ---------------------------------------------------------------------------

/// Connection settings for the `redis` crate: generous timeouts (debug builds
/// on two cores are slow).
pub fn redis_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(DEADLINE))
        .set_response_timeout(Some(Duration::from_secs(30)))
}

/// The URL of a Stratus (or Redis) server, optionally with credentials.
pub fn redis_url(addr: SocketAddr, auth: Option<(&str, &str)>, resp3: bool) -> String {
    let creds = auth.map_or(String::new(), |(u, p)| format!("{u}:{p}@"));
    let proto = if resp3 { "?protocol=resp3" } else { "" };
    format!("redis://{creds}{addr}/{proto}")
}

/// A multiplexed `redis` crate connection to the default cache.
pub async fn redis_conn(addr: SocketAddr, resp3: bool) -> redis::aio::MultiplexedConnection {
    redis_conn_url(&redis_url(addr, None, resp3))
        .await
        .expect("redis crate connects")
}

pub async fn redis_conn_url(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&redis_config())
        .await
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// A reply of the control API.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?} (status {})",
                self.text(),
                self.status
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A hyper-util HTTP/1 client bound to one server.
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    pub bearer: Option<String>,
}

impl Http {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn new(addr: SocketAddr) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            addr,
            bearer: None,
        }
    }

    /// Sends a request; `headers` are added as given.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> HttpReply {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(t) = &self.bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.into())).expect("request");
        let resp = tokio::time::timeout(DEADLINE, self.client.request(req))
            .await
            .expect("HTTP request timed out")
            .expect("HTTP request");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("HTTP body")
            .to_bytes()
            .to_vec();
        HttpReply {
            status,
            content_type,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> HttpReply {
        self.send("GET", path, Bytes::new(), &[]).await
    }

    pub async fn delete(&self, path: &str) -> HttpReply {
        self.send("DELETE", path, Bytes::new(), &[]).await
    }

    pub async fn post(&self, path: &str, json: &str) -> HttpReply {
        self.send(
            "POST",
            path,
            json.to_string(),
            &[("content-type", "application/json")],
        )
        .await
    }

    pub async fn patch(&self, path: &str, json: &str) -> HttpReply {
        self.send(
            "PATCH",
            path,
            json.to_string(),
            &[("content-type", "application/json")],
        )
        .await
    }

    /// Creates a cache named `name`; returns its token.
    pub async fn create_cache(&self, name: &str) -> String {
        self.create_cache_with(name, "{}").await
    }

    /// Creates cache `name` with `usage_limits` (JSON) and returns its token.
    pub async fn create_cache_with(&self, name: &str, usage_limits: &str) -> String {
        let r = self
            .post(
                "/v1/caches",
                &format!(r#"{{"name": "{name}", "usage_limits": {usage_limits}}}"#),
            )
            .await;
        assert_eq!(r.status, 201, "create {name}: {}", r.text());
        r.json()["token"]
            .as_str()
            .expect("a token in the creation reply")
            .to_string()
    }
}

/// A raw connection authenticated to `cache` with `token`.
pub async fn raw_auth(addr: SocketAddr, cache: &str, token: &str) -> Raw {
    let mut c = Raw::connect(addr).await;
    assert_eq!(c.cmd(&["AUTH", cache, token]).await, ok());
    c
}

// ---------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------

/// A `stratus serve` child process and what it logged.
pub struct Binary {
    pub child: tokio::process::Child,
    pub resp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    log: Arc<Mutex<String>>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

/// Removes ANSI colour sequences from a log line.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of `key=value` in a text log line, or of `fields.key` in a JSON one.
pub fn log_field(line: &str, key: &str) -> Option<String> {
    let line = strip_ansi(line);
    if line.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(&line).ok()?;
        let f = &v["fields"][key];
        return match f {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        };
    }
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    Some(
        line[at..]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string(),
    )
}

pub fn stratus_command(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"));
    for (k, _) in std::env::vars() {
        if k.starts_with("STRATUS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1");
    // Tests run side by side: a free Memcached port, not the fixed 11211
    // (a test may still choose one with --memcached-port or the variable).
    cmd.env("STRATUS_MEMCACHED_PORT", "any");
    cmd.args(args).envs(env.iter().copied());
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// A `stratus <role>` child process and the line it announced itself with.
pub struct Role {
    pub child: tokio::process::Child,
    line: String,
}

impl Role {
    /// Spawns `stratus <args>` and waits for a log line containing `needle`
    /// (its stderr is drained afterwards, so the child never blocks).
    pub async fn spawn(args: &[&str], env: &[(&str, &str)], needle: &str) -> Role {
        let mut child = stratus_command(args, env).spawn().expect("spawn stratus");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        let line = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains(needle) {
                    return Some(line);
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("stratus {args:?} never logged {needle:?}; it logged: {seen}"));
        // STRATUS_TEST_ECHO=1 shows every role's log after its
        // announcement on the test's stderr (`--nocapture`), to debug.
        let echo = std::env::var_os("STRATUS_TEST_ECHO")
            .is_some()
            .then(|| format!("[{} {}]", args[0], child.id().unwrap_or(0)));
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                if let Some(who) = &echo {
                    eprintln!("{who} {l}");
                }
            }
        });
        Role { child, line }
    }

    /// The address the announcement gave as `field`.
    pub fn addr(&self, field: &str) -> SocketAddr {
        log_field(&self.line, field)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {:?}", self.line))
    }
}

/// Signals a process has a handler for (`SigCgt` in /proc/<pid>/status).
pub fn caught_signals(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// The `SigCgt` bits of SIGINT (2) and SIGTERM (15).
pub const SIGINT_SIGTERM: u64 = (1 << 1) | (1 << 14);

impl Binary {
    /// Spawns `stratus <args>`, waits for its `stratus serving` line and then
    /// until it handles SIGINT and SIGTERM (see `process.rs` for why the
    /// second wait is needed).
    pub async fn spawn(args: &[&str], env: &[(&str, &str)]) -> Binary {
        let bin = Binary::spawn_until_serving(args, env).await;
        let pid = bin.child.id().expect("running");
        let end = Instant::now() + DEADLINE;
        while caught_signals(pid) & SIGINT_SIGTERM != SIGINT_SIGTERM {
            assert!(
                Instant::now() < end,
                "stratus never installed its SIGINT/SIGTERM handlers"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bin
    }

    /// Spawns `stratus <args>` and returns as soon as it logs `stratus serving`.
    pub async fn spawn_until_serving(args: &[&str], env: &[(&str, &str)]) -> Binary {
        let mut child = stratus_command(args, env).spawn().expect("spawn stratus");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let sink = log.clone();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let serving = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = rx.recv().await {
                if strip_ansi(&line).contains("stratus serving") {
                    return Some(line);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no 'stratus serving' line; stderr: {}", log.lock().unwrap()));
        let addr = |k: &str| -> SocketAddr {
            log_field(&serving, k)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k} in {serving:?}"))
        };
        Binary {
            resp_addr: addr("resp_addr"),
            http_addr: addr("http_addr"),
            child,
            log,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("child still running")
    }

    /// Sends a signal (`TERM`, `INT`, ...) with `kill`, to our child only:
    /// a child not yet waited for keeps its pid, so the pid cannot have been
    /// reused by another process.
    pub fn signal(&mut self, sig: &str) {
        assert!(
            matches!(self.child.try_wait(), Ok(None)),
            "stratus exited before it was sent SIG{sig}; logs:\n{}",
            self.logs()
        );
        let status = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits for the process to exit (panics after `wait`); returns its status
    /// and everything it logged.
    pub async fn wait_exit(&mut self, wait: Duration) -> (std::process::ExitStatus, String) {
        let status = tokio::time::timeout(wait, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("stratus did not exit within {wait:?}"))
            .expect("wait for stratus");
        if let Some(r) = self.reader.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
        }
        (status, self.logs())
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// Runs `stratus <args>` expecting it to exit by itself; returns its status
/// and stderr.
pub async fn run_stratus_to_exit(
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
    let out = tokio::time::timeout(Duration::from_secs(30), stratus_command(args, env).output())
        .await
        .expect("stratus should exit by itself")
        .expect("run stratus");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A real single-member etcd on loopback (Debian's `etcd-server`), its
/// data in a temporary directory; killed and removed on drop.
pub struct Etcd {
    child: Option<std::process::Child>,
    /// Its client URL (`http://127.0.0.1:port`).
    pub url: String,
    peer: String,
    dir: std::path::PathBuf,
}

impl Etcd {
    pub async fn start() -> Etcd {
        let dir = std::env::temp_dir().join(format!(
            "stratus-etcd-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let mut etcd = Etcd {
            child: None,
            url: format!("http://127.0.0.1:{}", free_port()),
            peer: format!("http://127.0.0.1:{}", free_port()),
            dir,
        };
        etcd.run().await;
        etcd
    }

    /// Starts the process (again, on the same data and ports) and waits
    /// until it serves clients.
    pub async fn run(&mut self) {
        let log = self.dir.join("etcd.log");
        std::fs::create_dir_all(&self.dir).expect("etcd dir");
        let out = std::fs::File::create(&log).expect("etcd log");
        let child = std::process::Command::new("etcd")
            .args(["--name", "test", "--unsafe-no-fsync"])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &self.url])
            .args(["--advertise-client-urls", &self.url])
            .args(["--listen-peer-urls", &self.peer])
            .args(["--initial-advertise-peer-urls", &self.peer])
            .args(["--initial-cluster", &format!("test={}", self.peer)])
            .stdout(std::process::Stdio::null())
            .stderr(out)
            .spawn()
            .expect("etcd must be installed (.ci/test installs etcd-server)");
        self.child = Some(child);
        let end = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("ready to serve client requests") {
                return;
            }
            assert!(
                std::time::Instant::now() < end,
                "etcd did not start: {text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process (its data stays for [`Etcd::run`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `signal` (`STOP`, `CONT`, `KILL`) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Asserts that `promtool check metrics` accepts `text` (the Prometheus
/// text format).
pub fn promtool_check_metrics(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
