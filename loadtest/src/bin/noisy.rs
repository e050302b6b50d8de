//! Noisy neighbour: cache A is driven far over its ECPU/s limit while cache B
//! runs a steady open-loop load; reports B's latency with and without A.
//!
//! `--heavy` picks what A does (a comma-separated list, or `all`): `get`
//! (pipelined GETs, the default), or one of the isolation issue's
//! reproducers — `keys` (KEYS with a backtracking glob), `eval-pattern` and
//! `eval-lazy` (Lua patterns that backtrack), `eval-upper` (string.upper of
//! 8 MB in a loop), `scan` (SCAN MATCH nomatch over 300k keys in one slot),
//! `sscan`, `hrandfield`, `setrange` (512 MB past a 64 MB storage maximum),
//! `multi` (300k queued SETs), `bigbulk` (unfinished 512 MB bulk strings),
//! `conns` (10,050 unauthenticated sockets), and `mix` (all at once); `a+b`
//! runs several of them at once (to find which part of `mix` hurts). Next
//! to each, B's latency, the longest `/healthz` answer and the longest new
//! connection (connect + AUTH + PING) are reported.
//!
//! The server runs pinned to CPU 0, this client to CPU 1 (start it with
//! `taskset -c 1`); phases alternate (B alone, B with A) for `--runs` rounds
//! and medians are reported. B's client runs in the real-time class when
//! allowed and A's at idle priority (`raise_to_realtime`, `on_idle_thread`),
//! so what B measures is the server, not A's client beside it.
//!
//! `--keep-awake` keeps the server's CPU from idling in both phases (see
//! its help): B's p99 alone is then the server's, not a virtual CPU's
//! wake-up.
//!
//! `cargo build --release --workspace && taskset -c 1 target/release/noisy --heavy all`

use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use stratus_loadtest::median;
use stratus_loadtest::resp::{Conn, Errors, encode, reply_len, scan_cursor};
use stratus_loadtest::server::{create_cache, http, start_redis, start_stratus};

#[derive(Parser)]
struct Args {
    /// Rounds of (B alone, B with A).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Cache B's steady rate, requests per second.
    #[arg(long, default_value_t = 2000)]
    b_rate: u64,
    /// Cache A's ECPU/s limit.
    #[arg(long, default_value_t = 5000)]
    a_limit: u64,
    /// Cache A's connections (closed loop, pipelined).
    #[arg(long, default_value_t = 100)]
    a_conns: usize,
    /// Cache A's pipeline depth.
    #[arg(long, default_value_t = 32)]
    a_depth: usize,
    /// CPU for the server (taskset).
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// CPU for cache A's client thread (default: this client's; see
    /// `on_idle_thread`).
    #[arg(long)]
    a_cpu: Option<usize>,
    /// What cache A does (comma-separated, or `all`).
    #[arg(long, default_value = "get")]
    heavy: String,
    /// Seconds between rounds for A's last requests to finish.
    #[arg(long, default_value_t = 6)]
    settle: u64,
    /// Run the phases against a real `redis-server` on the server CPU
    /// instead (modes `get` and `conns` only: one database, no AUTH, no
    /// limits), to tell what the kernel costs any server from what is ours.
    #[arg(long)]
    redis: bool,
    /// Keep the server's CPU out of its idle state in both phases (a
    /// spinning thread at `SCHED_IDLE` beside the server, which any of the
    /// server's threads preempts at once). On a virtual machine a request
    /// that finds the server's CPU idle waits for the hypervisor to run
    /// that CPU again: that wake-up, not the server, is most of B's p99
    /// alone, and it varies with the host from run to run. With this flag
    /// B's p99 alone is the server's own, and the ratio says what A costs B
    /// on a CPU that never idles.
    #[arg(long)]
    keep_awake: bool,
}

/// Every heavy-neighbour mode, in the order `all` runs them.
const HEAVY: &[&str] = &[
    "get",
    "keys",
    "eval-pattern",
    "eval-lazy",
    "eval-upper",
    "scan",
    "sscan",
    "hrandfield",
    "setrange",
    "multi",
    "bigbulk",
    "conns",
    "mix",
];

/// Fills cache A with what the reproducers work on (before its limit is set).
async fn populate(addr: std::net::SocketAddr, token: &str) {
    let mut c = Conn::connect(addr, Some(("a", token)))
        .await
        .expect("connect A");
    let mut errors = Errors::default();
    let a40 = "a".repeat(40);
    c.send_batch(
        &[encode(&[b"SET", a40.as_bytes(), b"1"])],
        None,
        &mut errors,
    )
    .await
    .expect("set");
    // 300k keys in one slot (SCAN), a 200k-member set and hash.
    for chunk in 0..300 {
        let batch: Vec<Vec<u8>> = (0..1000)
            .map(|i| encode(&[b"SET", format!("{{s}}key:{chunk}:{i}").as_bytes(), b"v"]))
            .collect();
        c.send_batch(&batch, None, &mut errors).await.expect("set");
    }
    for chunk in 0..200 {
        let mut sadd: Vec<Vec<u8>> = vec![b"SADD".to_vec(), b"bigset".to_vec()];
        let mut hset: Vec<Vec<u8>> = vec![b"HSET".to_vec(), b"bighash".to_vec()];
        for i in 0..1000 {
            sadd.push(format!("m:{chunk}:{i}").into_bytes());
            hset.push(format!("f:{chunk}:{i}").into_bytes());
            hset.push(b"v".to_vec());
        }
        let sadd: Vec<&[u8]> = sadd.iter().map(Vec::as_slice).collect();
        let hset: Vec<&[u8]> = hset.iter().map(Vec::as_slice).collect();
        c.send_batch(&[encode(&sadd), encode(&hset)], None, &mut errors)
            .await
            .expect("fill");
    }
    assert_eq!(errors.total(), 0, "populating A: {errors:?}");
}

/// One of A's connections doing `mode` until `until`; returns requests
/// sent and how many were THROTTLED. A request still unanswered a second
/// after `until` is abandoned with its connection (A deep in debt waits
/// minutes for admission: a 512 MB upload at 5,000 ECPU/s takes 100 s).
async fn heavy_conn(
    addr: std::net::SocketAddr,
    token: String,
    mode: &'static str,
    until: Instant,
) -> (u64, u64) {
    let deadline = (until + Duration::from_secs(1)).into();
    tokio::time::timeout_at(deadline, heavy_conn_until(addr, token, mode, until))
        .await
        .unwrap_or((0, 0))
}

async fn heavy_conn_until(
    addr: std::net::SocketAddr,
    token: String,
    mode: &'static str,
    until: Instant,
) -> (u64, u64) {
    let Ok(mut c) = Conn::connect(addr, Some(("a", &token))).await else {
        return (0, 0);
    };
    let simple: Option<Vec<u8>> = match mode {
        "keys" => Some(encode(&[b"KEYS", format!("{}b", "a*".repeat(20)).as_bytes()])),
        "eval-pattern" => Some(encode(&[
            b"EVAL",
            b"local n=tonumber(ARGV[1]) return string.find(string.rep('a',n), string.rep('a*',n)..'b')",
            b"0",
            b"40",
        ])),
        "eval-lazy" => Some(encode(&[
            b"EVAL",
            b"return string.find(string.rep('a',ARGV[1]), '.-b')",
            b"0",
            b"60000",
        ])),
        "eval-upper" => Some(encode(&[
            b"EVAL",
            b"local s=string.rep('x',8388608) for i=1,1000 do s=string.upper(s) end return #s",
            b"0",
        ])),
        "hrandfield" => Some(encode(&[b"HRANDFIELD", b"bighash", b"5"])),
        "setrange" => Some(encode(&[b"SETRANGE", b"big", b"536870911", b"x"])),
        _ => None,
    };
    let mut sent = 0u64;
    let mut throttled = 0u64;
    let mut cursor = b"0".to_vec();
    while Instant::now() < until {
        let ok = match (mode, &simple) {
            (_, Some(req)) => match c.roundtrip(req).await {
                Ok(reply) => {
                    throttled += u64::from(reply.starts_with(b"-THROTTLED"));
                    true
                }
                Err(_) => false,
            },
            ("scan" | "sscan", _) => {
                let req = if mode == "scan" {
                    encode(&[b"SCAN", &cursor, b"MATCH", b"nomatch", b"COUNT", b"10"])
                } else {
                    encode(&[
                        b"SSCAN", b"bigset", &cursor, b"MATCH", b"nomatch", b"COUNT", b"10",
                    ])
                };
                match c.roundtrip(&req).await {
                    Ok(reply) => {
                        throttled += u64::from(reply.starts_with(b"-THROTTLED"));
                        cursor = scan_cursor(&reply).unwrap_or_else(|| b"0".to_vec());
                        true
                    }
                    Err(_) => false,
                }
            }
            ("multi", _) => {
                let mut ok = c.roundtrip(&encode(&[b"MULTI"])).await.is_ok();
                let mut errors = Errors::default();
                for round in 0..300 {
                    if !ok || Instant::now() >= until {
                        break;
                    }
                    let batch: Vec<Vec<u8>> = (0..1000)
                        .map(|i| encode(&[b"SET", format!("{{m}}k{round}:{i}").as_bytes(), b"v"]))
                        .collect();
                    ok = c.send_batch(&batch, None, &mut errors).await.is_ok();
                }
                ok && c.roundtrip(&encode(&[b"EXEC"])).await.is_ok()
            }
            ("bigbulk", _) => {
                // MSET k <512 MiB>, never finished: held until closed.
                let len = 512usize << 20;
                let header = format!("*3\r\n$4\r\nMSET\r\n$1\r\nk\r\n${len}\r\n");
                let mut ok = c.write_raw(header.as_bytes()).await.is_ok();
                let chunk = vec![b'x'; 64 << 10];
                let mut written = 0;
                while ok && written + chunk.len() < len && Instant::now() < until {
                    ok = c.write_raw(&chunk).await.is_ok();
                    written += chunk.len();
                }
                while ok && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                false
            }
            _ => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                true
            }
        };
        sent += 1;
        if !ok {
            // Closed by the server (a limit): reconnect and go on.
            match Conn::connect(addr, Some(("a", &token))).await {
                Ok(fresh) => c = fresh,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    (sent, throttled)
}

/// 10,050 unauthenticated sockets from 127.0.0.2, held until `until`.
/// Ports are picked here, not by the kernel: `bind` to port 0 scans the
/// bind table with preemption off, and with 10,000 sockets held that scan
/// stalls B's client on this CPU for milliseconds.
async fn idle_sockets(addr: std::net::SocketAddr, until: Instant) -> u64 {
    static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let mut held = Vec::new();
    let mut attempts = 0;
    while held.len() < 10_050 && attempts < 20_000 && Instant::now() < until {
        attempts += 1;
        let n = NEXT_PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 10_000 + (n % 20_000) as u16;
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
            break;
        };
        let _ = socket.set_reuseaddr(true);
        if socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 2], port)))
            .is_err()
        {
            continue;
        }
        if let Ok(s) = socket.connect(addr).await {
            held.push(s);
        }
    }
    let n = held.len() as u64;
    tokio::time::sleep_until(until.into()).await;
    n
}

/// The reproducers a mode runs at once: `mix` is every one but `get`.
fn parts(mode: &str) -> Vec<&'static str> {
    if mode == "mix" {
        return HEAVY[1..HEAVY.len() - 1].to_vec();
    }
    mode.split('+')
        .map(|m| {
            *HEAVY
                .iter()
                .find(|h| **h == m.trim())
                .unwrap_or_else(|| panic!("unknown --heavy mode {m:?}; one of {HEAVY:?}"))
        })
        .collect()
}

/// A's heavy load, the reproducers `modes` at once, until `until`: requests
/// sent, and THROTTLED.
async fn heavy(
    addr: std::net::SocketAddr,
    token: &str,
    modes: Vec<&'static str>,
    until: Instant,
) -> (u64, Errors) {
    let mut tasks = Vec::new();
    for m in modes {
        if m == "conns" {
            tasks.push(tokio::spawn(async move {
                (idle_sockets(addr, until).await, 0u64)
            }));
            continue;
        }
        let conns = if m == "bigbulk" { 3 } else { 2 };
        for _ in 0..conns {
            tasks.push(tokio::spawn(heavy_conn(addr, token.to_string(), m, until)));
        }
    }
    let (mut sent, mut errors) = (0, Errors::default());
    for t in tasks {
        let (s, throttled) = t.await.unwrap_or((0, 0));
        sent += s;
        errors.throttled += throttled;
    }
    (sent, errors)
}

/// Probes the server every 100 ms until `until`: the longest `/healthz`
/// answer and the longest new connection (connect, AUTH, PING), in ms, and
/// the new connections that failed (refused, or AUTH or PING answered with
/// an error): a failure is not a fast answer.
async fn probe(
    resp: std::net::SocketAddr,
    http_addr: Option<std::net::SocketAddr>,
    token: Option<String>,
    until: Instant,
) -> (f64, f64, Vec<String>) {
    let (mut health, mut connect, mut failed) = (0f64, 0f64, Vec::new());
    while Instant::now() < until {
        if let Some(http_addr) = http_addr {
            let t = Instant::now();
            let _ =
                tokio::task::spawn_blocking(move || http(http_addr, "GET", "/healthz", "")).await;
            health = health.max(t.elapsed().as_secs_f64() * 1000.0);
        }
        let t = Instant::now();
        match Conn::connect(resp, token.as_deref().map(|t| ("b", t))).await {
            Ok(mut c) => match c.roundtrip(&encode(&[b"PING"])).await {
                Ok(reply) if !reply.starts_with(b"-") => {}
                Ok(reply) => failed.push(String::from_utf8_lossy(&reply).trim().to_string()),
                Err(e) => failed.push(e.to_string()),
            },
            Err(e) => failed.push(e.to_string()),
        }
        connect = connect.max(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (health, connect, failed)
}

/// B's latency: each request's round trip as B's client saw it, and until
/// its reply arrived in B's socket (see [`Stamped`]).
struct Latency {
    seen: Histogram<u64>,
    arrival: Histogram<u64>,
}

impl Latency {
    fn new() -> Latency {
        Latency {
            seen: Histogram::new(3).expect("histogram"),
            arrival: Histogram::new(3).expect("histogram"),
        }
    }

    fn add(&mut self, o: &Latency) {
        self.seen.add(&o.seen).expect("merge");
        self.arrival.add(&o.arrival).expect("merge");
    }

    fn record(&mut self, (seen, arrival): (Duration, Duration)) {
        let us = |d: Duration| (d.as_micros() as u64).max(1);
        let _ = self.seen.record(us(seen));
        let _ = self.arrival.record(us(arrival));
    }
}

/// B: `conns` connections, each sending one GET every `conns / rate`
/// seconds (open loop), each on a thread of its own (in B's real-time
/// class) that sleeps to the microsecond between requests: tokio's timer
/// fires on whole milliseconds, and B's requests then all reached the
/// server at one phase of each millisecond; real clients' requests come at
/// any time. Latency is each request's round trip, as seen and until its
/// reply arrived (see [`Stamped`]).
async fn steady(
    addr: std::net::SocketAddr,
    token: Option<&str>,
    rate: u64,
    until: Instant,
) -> (Latency, Errors) {
    let conns = 4u64;
    let interval = Duration::from_nanos(1_000_000_000 * conns / rate);
    let start = Instant::now();
    let mut threads = Vec::new();
    for c in 0..conns {
        let mut conn = Stamped::connect(addr, token).await.expect("connect B");
        let first = start + interval * c as u32 / conns as u32;
        threads.push(std::thread::spawn(move || {
            let mut latency = Latency::new();
            let mut errors = Errors::default();
            let get = encode(&[b"GET", format!("key:{c}").as_bytes()]);
            let mut next = first;
            while next < until {
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let times = conn.roundtrip(&get, &mut errors).expect("B request");
                latency.record(times);
                next += interval;
            }
            (latency, errors)
        }));
    }
    let mut latency = Latency::new();
    let mut errors = Errors::default();
    for t in threads {
        let (l, e) = tokio::task::spawn_blocking(move || t.join())
            .await
            .expect("join")
            .expect("B's thread");
        latency.add(&l);
        errors.add(&e);
    }
    (latency, errors)
}

/// A connection of B's (a blocking socket) that times each request twice:
/// as the client saw it, and from the send to the arrival of the reply's
/// last packet in the socket (its kernel receive timestamp,
/// `SO_TIMESTAMPNS`). The second leaves out how long B's client thread took
/// to run again once the reply was there: on this 2-CPU machine A's client
/// shares B's CPU, and a loopback connect does the whole TCP handshake in
/// the connecting thread, in the kernel, where no one preempts it; on a
/// network that work would be on A's machines. On loopback the stamp is
/// taken as the server's write enters the stack, so the second figure is
/// the server's latency plus B's own send.
struct Stamped {
    stream: std::net::TcpStream,
    rbuf: bytes::BytesMut,
}

impl Stamped {
    async fn connect(addr: std::net::SocketAddr, token: Option<&str>) -> std::io::Result<Stamped> {
        use std::os::fd::AsRawFd;
        let (stream, rbuf) = Conn::connect(addr, token.map(|t| ("b", t)))
            .await?
            .into_parts();
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads one c_int from a live pointer.
        let set = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Stamped { stream, rbuf })
    }

    /// Sends `req`, reads its reply: (round trip seen, round trip until the
    /// reply arrived).
    fn roundtrip(
        &mut self,
        req: &[u8],
        errors: &mut Errors,
    ) -> std::io::Result<(Duration, Duration)> {
        use bytes::Buf;
        use std::io::Write;
        let sent = std::time::SystemTime::now();
        let start = Instant::now();
        self.stream.write_all(req)?;
        let mut arrived = None;
        loop {
            if let Some((len, err)) = reply_len(&self.rbuf) {
                errors.record(err);
                self.rbuf.advance(len);
                let seen = start.elapsed();
                let arrival = arrived
                    .and_then(|t: std::time::SystemTime| t.duration_since(sent).ok())
                    .unwrap_or(seen);
                return Ok((seen, arrival.min(seen)));
            }
            match recv_stamped(&self.stream, &mut self.rbuf)? {
                (0, _) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "server closed",
                    ));
                }
                (_, stamp) => arrived = stamp.or(arrived),
            }
        }
    }
}

/// One `recvmsg` into `buf`, with the receive timestamp of the data read
/// (`SCM_TIMESTAMPNS`): bytes read, and the stamp.
fn recv_stamped(
    stream: &std::net::TcpStream,
    buf: &mut bytes::BytesMut,
) -> std::io::Result<(usize, Option<std::time::SystemTime>)> {
    use std::os::fd::AsRawFd;
    let mut data = [0u8; 16 * 1024];
    // Room for a few control messages, aligned for cmsghdr.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: a zeroed msghdr is valid; the pointers set here outlive the
    // call and come with their lengths.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: recvmsg writes within the buffers and lengths given.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = n as usize;
    buf.extend_from_slice(&data[..n]);
    let mut stamp = None;
    // SAFETY: the CMSG macros walk the control messages recvmsg wrote,
    // within msg_controllen; SCM_TIMESTAMPNS carries one timespec.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                stamp = Some(
                    std::time::UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
                );
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n, stamp))
}

/// A: closed loop, pipelined GETs as fast as the server answers.
async fn hammer(
    addr: std::net::SocketAddr,
    token: Option<&str>,
    conns: usize,
    depth: usize,
    until: Instant,
) -> (u64, Errors) {
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let token = token.map(str::to_string);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr, token.as_deref().map(|t| ("a", t)))
                .await
                .expect("connect A");
            let batch: Vec<Vec<u8>> = (0..depth)
                .map(|i| encode(&[b"GET", format!("k{i}").as_bytes()]))
                .collect();
            let mut errors = Errors::default();
            let mut sent = 0u64;
            while Instant::now() < until {
                if conn.send_batch(&batch, None, &mut errors).await.is_err() {
                    break;
                }
                sent += depth as u64;
            }
            (sent, errors)
        }));
    }
    let mut sent = 0;
    let mut errors = Errors::default();
    for t in tasks {
        let (s, e) = t.await.expect("task");
        sent += s;
        errors.add(&e);
    }
    (sent, errors)
}

/// Runs A's load on its own thread at the lowest CPU priority, beside B's
/// client (or pinned to `cpu`): A stands for clients on other machines, and
/// at idle priority its client-side work yields to B's client at once,
/// except inside the kernel (a loopback connect is a handshake that cannot
/// be preempted). `--a-cpu 0` puts it on the server's CPU instead, where
/// that kernel work lands on a real network; `loadtest/HISTORY.md` gives both.
fn on_idle_thread<T: Send + 'static>(
    cpu: Option<usize>,
    load: impl std::future::Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<std::thread::Result<T>> {
    let thread = std::thread::spawn(move || {
        if let Some(cpu) = cpu {
            pin_to(cpu);
        }
        stratus::pool::workers::lower_thread_priority();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("A's runtime")
            .block_on(load)
    });
    tokio::task::spawn_blocking(move || thread.join())
}

/// Puts the calling thread (B's client: the measuring instrument) in the
/// real-time class, `SCHED_FIFO` priority 1, when allowed (root or
/// `CAP_SYS_NICE`); threads it starts later inherit it until they set their
/// own (A's thread goes to `SCHED_IDLE`). B stands for clients on their own
/// machines: nothing of A's may delay its client. An idle-priority thread is
/// not enough for that on this kernel: its EEVDF scheduler lets a normal
/// thread that has run more than its share wait, up to a slice of several
/// milliseconds, behind an idle one (`perf sched timehist` showed it).
/// Returns whether it worked.
fn raise_to_realtime() -> bool {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: sched_setscheduler reads one sched_param for this thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 }
}

/// A thread spinning at `SCHED_IDLE` on `cpu` until the flag is cleared
/// (see `--keep-awake`).
fn keep_awake(cpu: usize) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let on = std::sync::Arc::new(AtomicBool::new(true));
    let spinning = on.clone();
    std::thread::spawn(move || {
        pin_to(cpu);
        stratus::pool::workers::lower_thread_priority();
        while spinning.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
    });
    on
}

/// Pins the calling thread to one CPU (best effort).
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes in
    // bounds for cpu < CPU_SETSIZE, and sched_setaffinity reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = Args::parse();
    let modes: Vec<String> = if a.heavy == "all" {
        HEAVY.iter().map(|m| m.to_string()).collect()
    } else {
        a.heavy.split(',').map(|m| m.trim().to_string()).collect()
    };
    for m in &modes {
        parts(m);
    }
    if a.redis {
        assert!(
            modes.iter().all(|m| m == "get" || m == "conns"),
            "--redis runs the modes get and conns only"
        );
    }
    let server = if a.redis {
        start_redis(Some(a.server_cpu))
    } else {
        start_stratus(Some(a.server_cpu), &[])
    };
    let awake = a.keep_awake.then(|| keep_awake(a.server_cpu));
    // After the server has started: it must not inherit the class.
    if !raise_to_realtime() {
        eprintln!(
            "B's client runs at normal priority (SCHED_FIFO refused): A's client can delay it"
        );
    }
    let http_addr = server.http;
    let (token_a, token_b) = match http_addr {
        Some(h) => (
            Some(create_cache(h, "a", "{}")),
            Some(create_cache(h, "b", "{}")),
        ),
        None => (None, None),
    };
    if let Some(token_a) = &token_a
        && modes.iter().any(|m| m != "get")
    {
        populate(server.resp, token_a).await;
    }
    // A's limits, once filled: its ECPU/s, and 64 MB of storage.
    let limits_a = format!(
        r#"{{"usage_limits": {{"ecpu_per_second": {{"maximum": {}}}, "data_storage": {{"maximum": 64, "unit": "MB"}}}}}}"#,
        a.a_limit
    );
    // Each run starts A without the previous run's debt: its limits are
    // lifted and set again, which gives it a fresh limiter.
    let fresh_limits = || {
        let Some(http_addr) = http_addr else { return };
        let (status, body) = http(
            http_addr,
            "PATCH",
            "/v1/caches/a",
            r#"{"usage_limits": {}}"#,
        );
        assert_eq!(status, 200, "unlimit A: {body}");
        let (status, body) = http(http_addr, "PATCH", "/v1/caches/a", &limits_a);
        assert_eq!(status, 200, "limit A: {body}");
    };
    fresh_limits();
    let phase = Duration::from_secs(a.seconds);
    let mut table = Vec::new();
    for mode in &modes {
        let (mut alone50, mut alone99, mut noisy50, mut noisy99, mut a_rate) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (mut alone99_arrival, mut noisy99_arrival) = (vec![], vec![]);
        let (mut health, mut connect) = (0f64, 0f64);
        let mut a_throttled = 0;
        for run in 0..a.runs {
            let until = Instant::now() + phase;
            let (h, e) = steady(server.resp, token_b.as_deref(), a.b_rate, until).await;
            assert_eq!(e.total(), 0, "B saw errors alone: {e:?}");
            alone50.push(ms(h.seen.value_at_quantile(0.5)));
            alone99.push(ms(h.seen.value_at_quantile(0.99)));
            alone99_arrival.push(ms(h.arrival.value_at_quantile(0.99)));

            fresh_limits();
            let ecpu_before = ecpu_total(http_addr);
            let until = Instant::now() + phase;
            let started = Instant::now();
            eprintln!("{mode} run {}: A starts", run + 1);
            let noisy = {
                let (token_a, addr) = (token_a.clone(), server.resp);
                let (conns, depth) = (a.a_conns, a.a_depth);
                let parts = parts(mode);
                on_idle_thread(a.a_cpu, async move {
                    if parts == ["get"] {
                        hammer(addr, token_a.as_deref(), conns, depth, until).await
                    } else {
                        heavy(addr, token_a.as_deref().unwrap_or(""), parts, until).await
                    }
                })
            };
            let probe = tokio::spawn(probe(server.resp, http_addr, token_b.clone(), until));
            let (h, e) = steady(server.resp, token_b.as_deref(), a.b_rate, until).await;
            assert_eq!(e.total(), 0, "B saw errors next to A: {e:?}");
            noisy50.push(ms(h.seen.value_at_quantile(0.5)));
            noisy99.push(ms(h.seen.value_at_quantile(0.99)));
            noisy99_arrival.push(ms(h.arrival.value_at_quantile(0.99)));
            let (hz, cn, failed) = probe.await.expect("probe");
            assert!(
                failed.is_empty(),
                "B's new connections failed next to A: {failed:?}"
            );
            (health, connect) = (health.max(hz), connect.max(cn));
            let (a_sent, a_errors) = noisy.await.expect("A's thread").expect("A");
            let elapsed = started.elapsed().as_secs_f64();
            // Let A's last heavy requests (a script runs up to its 5 s limit)
            // finish before B is measured alone again; what they are billed
            // when they end counts for the phase (scripts pay afterwards).
            tokio::time::sleep(Duration::from_secs(a.settle)).await;
            a_rate.push((ecpu_total(http_addr) - ecpu_before) / elapsed);
            a_throttled += a_errors.throttled;
            println!(
                "{mode} run {}: B alone p50 {:.3} ms p99 {:.3} ms (at arrival {:.3}) | with A p50 {:.3} ms p99 {:.3} ms (at arrival {:.3}) | A sent {a_sent}, throttled {}, metered {:.0} ECPU/s",
                run + 1,
                alone50[run],
                alone99[run],
                alone99_arrival[run],
                noisy50[run],
                noisy99[run],
                noisy99_arrival[run],
                a_errors.throttled,
                a_rate[run]
            );
        }
        table.push((
            mode,
            median(alone99.clone()),
            median(noisy99.clone()),
            median(alone99_arrival),
            median(noisy99_arrival),
            health,
            connect,
            median(a_rate.clone()),
        ));
        println!(
            "{mode}: B alone p50 {:.3} ms p99 {:.3} ms | B with A p50 {:.3} ms p99 {:.3} ms | /healthz max {health:.1} ms, new connection max {connect:.1} ms | A metered {:.0} ECPU/s (limit {}), {a_throttled} throttled",
            median(alone50),
            median(alone99),
            median(noisy50),
            median(noisy99),
            median(a_rate),
            a.a_limit,
        );
    }
    if let Some(on) = awake {
        on.store(false, std::sync::atomic::Ordering::Relaxed);
    }
    println!();
    println!(
        "cache B at {} req/s; cache A limited to {} ECPU/s and 64 MB ({} runs of {} s, medians; maxima for /healthz and new connections){}:",
        a.b_rate,
        a.a_limit,
        a.runs,
        a.seconds,
        if a.keep_awake {
            "; server CPU kept awake"
        } else {
            ""
        }
    );
    println!(
        "| A does | B p99 alone | B p99 next to A | ratio | at arrival: alone | next to A | ratio | /healthz max | new connection max | A metered ECPU/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (mode, alone, noisy, alone_arrival, noisy_arrival, health, connect, rate) in table {
        println!(
            "| {mode} | {alone:.3} ms | {noisy:.3} ms | {:.2}× | {alone_arrival:.3} ms | {noisy_arrival:.3} ms | {:.2}× | {health:.1} ms | {connect:.1} ms | {rate:.0} |",
            noisy / alone,
            noisy_arrival / alone_arrival
        );
    }
}

/// Cache A's metered ECPU so far.
fn ecpu_total(http_addr: Option<std::net::SocketAddr>) -> f64 {
    let Some(http_addr) = http_addr else {
        return 0.0;
    };
    let (_, body) = http(http_addr, "GET", "/v1/caches/a/usage", "");
    serde_json::from_str::<serde_json::Value>(&body).expect("json")["ecpu_total"]
        .as_f64()
        .unwrap_or(0.0)
}
