//! Connection floods: one client address's burst of new connections is
//! accepted apart, at the lowest CPU priority, so it delays neither the
//! other tenants' requests nor their new connections (DESIGN §12).
//!
//! Each data listener is a pair of sockets on one port (`SO_REUSEPORT`,
//! made by [`Listener::bind`]): the *main* socket, accepted by the reactor in
//! its time slices, and the *flood* socket, accepted by a thread of its own
//! at `SCHED_IDLE` ([`run_flood_loop`]). A classic BPF program on the pair
//! (`SO_ATTACH_REUSEPORT_CBPF`, [`program`]) chooses the socket of each new
//! connection by its source address, in the kernel, before the handshake
//! completes: an address that opened more than `--flood-connects`
//! connections within a second goes to the flood socket for [`HOLD`]
//! (renewed while it keeps it up), every other one to the main socket.
//! Either way the connection is then admitted alike (connection limits,
//! pre-auth places) and served by the reactor like any other.
//!
//! Why (measured, `loadtest/HISTORY.md` "Heavy neighbours"): next to a
//! tenant opening 10,050 sockets, the accepts themselves — kernel work on
//! the server's CPU — doubled or tripled another tenant's p99. Accepting at
//! idle priority took that away, but with one listen queue, first in first
//! out, a new connection then waited behind the flood's queued sockets (up
//! to 188 ms). Two queues chosen by address give both.
//!
//! Limits: IPv4 sources only (IPv4-mapped included; an IPv6 source always
//! takes the main socket); at most [`MAX_STEERED`] addresses at once (more
//! flooding addresses take the main socket, as before). Another process of
//! the same user could join the port's group too: [`Listener::bind`] first
//! checks that the port is free, as a plain bind would.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long an address that flooded keeps going to the flood socket after
/// its last second above the threshold.
pub const HOLD: Duration = Duration::from_secs(10);

/// Addresses steered at once (each is two BPF instructions).
pub const MAX_STEERED: usize = 64;

/// The window new connections are counted over.
const WINDOW: Duration = Duration::from_secs(1);

/// How often the flood thread wakes with nothing to accept (to end holds and
/// to see shutdown).
const POLL: Duration = Duration::from_millis(100);

/// `SO_ATTACH_REUSEPORT_CBPF` (not in the `libc` crate for Linux).
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

/// A data listener: the main socket and the flood socket on one port.
pub struct Listener {
    pub main: tokio::net::TcpListener,
    pub flood: std::net::TcpListener,
    pub steering: Arc<Steering>,
}

impl Listener {
    /// Listens on `addr` (port 0: an ephemeral one) with `backlog` pending
    /// connections per socket; addresses over `threshold` new connections a
    /// second are steered (0: never). Errors as a plain bind would if the
    /// port is taken.
    pub fn bind(addr: SocketAddr, backlog: i32, threshold: u32) -> io::Result<Listener> {
        if addr.port() != 0 {
            // A plain socket finds the port taken, where one with
            // SO_REUSEPORT could join another process's group.
            let probe = socket(addr)?;
            probe.set_reuse_address(true)?;
            probe.bind(&addr.into())?;
        }
        let listen = |addr: SocketAddr| -> io::Result<socket2::Socket> {
            let s = socket(addr)?;
            s.set_reuse_address(true)?;
            s.set_reuse_port(true)?;
            s.bind(&addr.into())?;
            s.listen(backlog)?;
            Ok(s)
        };
        let main = listen(addr)?;
        // Before the second socket joins: every connection to the main one.
        attach(main.as_fd(), &program(&[]))?;
        let bound = main
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("listener has no socket address"))?;
        let flood = listen(bound)?;
        main.set_nonblocking(true)?;
        flood.set_read_timeout(Some(POLL))?;
        Ok(Listener {
            main: tokio::net::TcpListener::from_std(main.into())?,
            flood: flood.into(),
            steering: Arc::new(Steering::new(threshold)),
        })
    }
}

fn socket(addr: SocketAddr) -> io::Result<socket2::Socket> {
    socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
}

/// Which addresses flood, from the new connections both sockets accept.
pub struct Steering {
    threshold: u32,
    state: Mutex<State>,
}

struct State {
    /// When the current counting window started.
    window: Instant,
    /// New connections per address in the current window.
    counts: HashMap<Ipv4Addr, u32>,
    /// Addresses going to the flood socket, and until when.
    steered: Vec<(Ipv4Addr, Instant)>,
}

impl Steering {
    pub fn new(threshold: u32) -> Steering {
        Steering {
            threshold,
            state: Mutex::new(State {
                window: Instant::now(),
                counts: HashMap::new(),
                steered: Vec::new(),
            }),
        }
    }

    /// Counts a connection `listener` (either socket) accepted from `ip`,
    /// and steers that address once it floods.
    pub fn accepted(&self, ip: IpAddr, listener: BorrowedFd<'_>) {
        if self.note(ip, Instant::now()) {
            self.attach_to(listener);
        }
    }

    /// Ends the holds that are due, on `listener` (either socket).
    pub fn expire_on(&self, listener: BorrowedFd<'_>) {
        if self.expire(Instant::now()) {
            self.attach_to(listener);
        }
    }

    /// Counts a new connection from `ip` at `now`; true when the steered
    /// addresses changed.
    fn note(&self, ip: IpAddr, now: Instant) -> bool {
        let IpAddr::V4(ip) = ip.to_canonical() else {
            return false;
        };
        if self.threshold == 0 {
            return false;
        }
        let mut st = self.state.lock();
        if now.duration_since(st.window) >= WINDOW {
            st.window = now;
            st.counts.clear();
        }
        let n = st.counts.entry(ip).or_insert(0);
        *n += 1;
        if *n <= self.threshold {
            return false;
        }
        let until = now + HOLD;
        if let Some(entry) = st.steered.iter_mut().find(|(a, _)| *a == ip) {
            entry.1 = until;
            return false;
        }
        if st.steered.len() >= MAX_STEERED {
            return false;
        }
        st.steered.push((ip, until));
        tracing::info!(address = %ip, "connection flood: new connections accepted apart");
        true
    }

    /// Ends the holds due by `now`; true when the steered addresses changed.
    fn expire(&self, now: Instant) -> bool {
        let mut st = self.state.lock();
        let before = st.steered.len();
        st.steered.retain(|(_, until)| *until > now);
        before != st.steered.len()
    }

    /// The addresses steered now.
    fn steered(&self) -> Vec<Ipv4Addr> {
        self.state.lock().steered.iter().map(|(a, _)| *a).collect()
    }

    /// Puts the current choice on the listener (either of its sockets).
    fn attach_to(&self, socket: BorrowedFd<'_>) {
        if let Err(e) = attach(socket, &program(&self.steered())) {
            tracing::warn!(error = %e, "connection flood: cannot steer the listener");
        }
    }
}

/// The classic BPF program choosing a new connection's socket: 1 (flood)
/// for an IPv4 source among `steered`, else 0 (main). It reads the IP
/// header (the `SKF_NET_OFF` offsets): the version, then the source address.
pub fn program(steered: &[Ipv4Addr]) -> Vec<libc::sock_filter> {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let ret = |k: u32| op(libc::BPF_RET | libc::BPF_K, 0, 0, k);
    if steered.is_empty() {
        return vec![ret(0)];
    }
    let n = steered.len().min(MAX_STEERED);
    let net = |offset: i32| (libc::SKF_NET_OFF + offset) as u32;
    let mut p = vec![
        op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, net(0)),
        op(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, 0, 0, 0xf0),
        // Not IPv4: to "ret 0", past the load and the n comparisons.
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            n as u8 + 1,
            0x40,
        ),
        op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, net(12)),
    ];
    for (j, ip) in steered[..n].iter().enumerate() {
        // A match jumps past the later comparisons and "ret 0" to "ret 1".
        p.push(op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            (n - j) as u8,
            0,
            u32::from(*ip),
        ));
    }
    p.push(ret(0));
    p.push(ret(1));
    p
}

/// Sets `prog` as the socket-choosing program of `socket`'s port group.
#[allow(unsafe_code)]
fn attach(socket: BorrowedFd<'_>, prog: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::other("BPF program too long"))?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` and the instructions it points to outlive the call
    // (the kernel copies them); the option's length is `fprog`'s size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            (&raw const fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Starts the flood socket's accept loop on a thread of its own at the
/// lowest CPU priority: each socket accepted is handed to `admit` inside
/// `runtime` (where its connection runs) until `stop` (within [`POLL`]);
/// the flood socket closes with it.
pub fn run_flood_loop(
    listener: std::net::TcpListener,
    steering: Arc<Steering>,
    runtime: tokio::runtime::Handle,
    stop: tokio_util::sync::CancellationToken,
    admit: impl Fn(tokio::net::TcpStream, SocketAddr) + Send + 'static,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("stratus-flood".into())
        .spawn(move || {
            crate::pool::workers::lower_thread_priority();
            let _in_runtime = runtime.enter();
            while !stop.is_cancelled() {
                match listener.accept() {
                    Ok((socket, peer)) => {
                        steering.accepted(peer.ip(), listener.as_fd());
                        let stream = socket
                            .set_nonblocking(true)
                            .and_then(|()| tokio::net::TcpStream::from_std(socket));
                        match stream {
                            Ok(stream) => admit(stream, peer),
                            Err(e) => tracing::debug!(%peer, error = %e, "flood socket dropped"),
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        steering.expire_on(listener.as_fd());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "flood socket: accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_steered_past_the_threshold_and_released_after_its_hold() {
        let s = Steering::new(3);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(!s.note(a, t0));
        }
        assert!(!s.note(b, t0));
        assert!(s.note(a, t0), "the fourth in a second steers");
        assert!(!s.note(a, t0), "already steered");
        assert_eq!(s.steered(), vec![Ipv4Addr::new(127, 0, 0, 2)]);
        // A new window counts afresh; the hold runs from the last flood.
        assert!(!s.note(a, t0 + WINDOW));
        assert!(!s.expire(t0 + HOLD - Duration::from_millis(1)));
        assert!(s.expire(t0 + HOLD));
        assert!(s.steered().is_empty());
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_one_and_ipv6_is_never_steered() {
        let s = Steering::new(1);
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let t0 = Instant::now();
        assert!(!s.note(mapped, t0));
        assert!(s.note(mapped, t0));
        assert_eq!(s.steered(), vec![Ipv4Addr::new(10, 0, 0, 7)]);
        for _ in 0..5 {
            assert!(!s.note(v6, t0));
        }
    }

    #[test]
    fn a_zero_threshold_never_steers() {
        let s = Steering::new(0);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..100 {
            assert!(!s.note(a, Instant::now()));
        }
    }

    #[test]
    fn the_program_jumps_land_on_its_returns() {
        let ips = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(10, 1, 2, 3)];
        let p = program(&ips);
        assert_eq!(p.len(), 4 + ips.len() + 2);
        let (ret0, ret1) = (p.len() - 2, p.len() - 1);
        // The version check's "false" lands on ret 0.
        assert_eq!(2 + 1 + usize::from(p[2].jf), ret0);
        for (j, ip) in ips.iter().enumerate() {
            let at = 4 + j;
            assert_eq!(at + 1 + usize::from(p[at].jt), ret1);
            assert_eq!(p[at].k, u32::from(*ip));
        }
        assert_eq!((p[ret0].k, p[ret1].k), (0, 1));
        assert_eq!(program(&[]).len(), 1);
    }
}
