//! The accept loops of a data listener (RESP or Memcached, plain or TLS)
//! and the admission every accepted socket goes through.
//!
//! A listener is two sockets on one port ([`super::flood`]): the main one,
//! accepted here on the reactor in time slices, and the flood one, where
//! the kernel sends new connections from an address that floods, accepted
//! on a thread at idle priority. Both hand their sockets to the same
//! admission ([`Admission::admit`]).
//!
//! Connection limits: at most `max_clients` sockets in all (more are told
//! `-ERR max number of clients reached` and closed); of those, at most
//! `max_unauthenticated` not yet bound to a cache (at most
//! `max_unauthenticated_per_ip` from one client address; each must
//! authenticate within `auth_timeout`), and at most `max_clients_per_cache` bound to any
//! one cache (AUTH into a full cache gets the same error; a socket that
//! finds the open default cache full waits unbound, as an unauthenticated
//! one, to AUTH into another cache): one tenant's sockets cannot lock
//! another out.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn;
use super::flood::{Listener, Steering};
use super::shared::{ProxyShared, Wire};
use crate::metrics::GlobalCounters;
use crate::resp::reply;
use crate::tls::{Tls, Transport};

/// Accepts connections until `shutdown`; each runs in its own task on
/// `tracker`. The main socket is accepted here, the flood socket on a
/// thread of its own ([`super::flood`]).
pub async fn serve(
    listener: Listener,
    shared: Arc<ProxyShared>,
    tls: Option<Arc<Tls>>,
    wire: Wire,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let admission = Arc::new(Admission {
        permits: Arc::new(Semaphore::new(shared.max_clients)),
        shared,
        tls,
        wire,
        shutdown,
        tracker,
    });
    let Listener {
        main,
        flood,
        steering,
    } = listener;
    // The flood thread ends with this loop (at shutdown, or when the
    // runtime drops it).
    let stop = admission.shutdown.child_token();
    let admit = admission.clone();
    if let Err(e) = super::flood::run_flood_loop(
        flood,
        steering.clone(),
        tokio::runtime::Handle::current(),
        stop.clone(),
        move |stream, peer| {
            let global = &admit.shared.registry.metrics.global;
            GlobalCounters::bump(&global.connections_flood);
            admit.admit(stream, peer);
        },
    ) {
        tracing::warn!(error = %e, "no flood accept thread: floods share the main socket");
    }
    let _stop_flood = stop.drop_guard();
    let lane = super::turns::Lane::new(super::turns::ACCEPT_LANE);
    super::turns::in_turns(lane, accept(main, &steering, &admission)).await;
}

/// The accept loop of [`serve`], in time slices.
async fn accept(listener: TcpListener, steering: &Steering, admission: &Admission) {
    loop {
        // Sockets are accepted within a time slice: the reactor thread that
        // runs this loop also serves other tenants' requests, and tokio
        // would otherwise accept (and refuse) up to its budget of 128
        // sockets back to back — a connection burst then delays everyone's
        // replies by milliseconds.
        super::turns::end_of_slice().await;
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = admission.shutdown.cancelled() => {
                admission.shared.connections.raise_all(crate::attention::SHUTDOWN);
                return;
            }
        };
        steering.accepted(peer.ip(), listener.as_fd());
        admission.admit(stream, peer);
    }
}

/// What admits an accepted socket, from either socket of a listener.
struct Admission {
    permits: Arc<Semaphore>,
    shared: Arc<ProxyShared>,
    tls: Option<Arc<Tls>>,
    wire: Wire,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Admission {
    /// Applies the connection limits to a socket just accepted, then runs
    /// its connection in a task (inside the runtime's context).
    fn admit(&self, stream: tokio::net::TcpStream, peer: std::net::SocketAddr) {
        let Admission {
            permits,
            shared,
            tls,
            wire,
            shutdown,
            tracker,
        } = self;
        let wire = *wire;
        let metrics = &shared.registry.metrics;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            GlobalCounters::bump(&metrics.global.connections_rejected);
            refuse(stream, wire);
            return;
        };
        // A socket that will not be bound at once needs a pre-auth place.
        let preauth = if shared.default_for(wire).is_some() {
            None
        } else {
            match shared.preauth(peer.ip()) {
                Some(p) => Some(p),
                None => {
                    GlobalCounters::bump(&metrics.global.connections_rejected);
                    refuse(stream, wire);
                    return;
                }
            }
        };
        GlobalCounters::bump(&metrics.global.connections_accepted);
        // Set up here, on the thread that accepted it: a flood's sockets
        // cost the reactor nothing for it.
        let local = prepare(&stream).unwrap_or(peer);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            let stream = match tls {
                None => Transport::Plain(stream),
                // The handshake is the connection's own work, bounded by
                // the auth timeout (a stalled handshake holds a pre-auth
                // place no longer than an idle socket would).
                Some(tls) => {
                    let handshake =
                        tokio::time::timeout(shared.auth_timeout, tls.acceptor().accept(stream));
                    tokio::select! {
                        r = handshake => match r {
                            Ok(Ok(s)) => Transport::tls(s),
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        () = shutdown.cancelled() => return,
                    }
                }
            };
            match wire {
                Wire::Resp => conn::run(stream, peer, local, shared, shutdown, preauth).await,
                Wire::Memcached => {
                    super::memcached::run(stream, peer, local, shared, shutdown, preauth).await;
                }
            }
            drop(permit);
        });
    }
}

/// TCP keepalive idle time: half-open peers are found within minutes.
const KEEPALIVE: Duration = Duration::from_secs(60);

/// Sets up an admitted socket (no Nagle delay, keepalive probes) and
/// returns its local address, for RESP and Memcached connections alike.
fn prepare(stream: &tokio::net::TcpStream) -> Option<std::net::SocketAddr> {
    let _ = stream.set_nodelay(true);
    let sock = socket2::SockRef::from(stream);
    let _ = sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(KEEPALIVE));
    stream.local_addr().ok()
}

/// Tells a socket over a connection limit so, and closes it: one
/// non-blocking write, no task (a burst of refusals stays cheap).
fn refuse(stream: tokio::net::TcpStream, wire: Wire) {
    let line = match wire {
        Wire::Resp => format!("-{}\r\n", reply::MAX_CLIENTS),
        Wire::Memcached => format!("{}\r\n", crate::memcached::MAX_CLIENTS),
    };
    // Sent straight to the socket: tokio's `try_write` declines a socket
    // whose writability the reactor has not reported yet (one accepted on
    // the flood thread, just registered).
    let _ = socket2::SockRef::from(&stream).send(line.as_bytes());
}
