//! The RESP accept loop and what connections share.
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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::collections::HashMap;
use std::net::IpAddr;
use tokio::net::TcpListener;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn;
use crate::config::ServeConfig;
use crate::control::{Cache, Registry};
use crate::metrics::GlobalCounters;
use crate::resp::{Decoder, reply};
use crate::tls::{Tls, Transport};

/// What every connection shares.
pub struct ProxyShared {
    pub registry: Arc<Registry>,
    /// Name of the cache unauthenticated connections bind to, if open.
    pub default_cache: Option<String>,
    /// The same for Memcached connections (`default-memcached`).
    pub default_memcached: Option<String>,
    /// The Memcached listener's port (0 = off), as `stats settings` shows it.
    pub memcached_port: u16,
    pub decoder: Decoder,
    pub max_key_len: usize,
    /// Pending reply bytes above which a connection's requests wait.
    pub output_buffer_limit: usize,
    /// Above this many pending bytes a client must read within `output_soft_time`.
    pub output_soft_limit: usize,
    pub output_soft_time: Duration,
    /// A subscriber's Pub/Sub backlog limits (hard, soft, soft time).
    pub pubsub_hard_limit: usize,
    pub pubsub_soft_limit: usize,
    pub pubsub_soft_time: Duration,
    pub max_clients: usize,
    pub max_clients_per_cache: usize,
    /// Connections not yet bound to a cache, in all and by client address.
    pub unauthenticated: Arc<Semaphore>,
    unauthenticated_by_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_unauthenticated_per_ip: usize,
    pub auth_timeout: Duration,
    /// Buffered request bytes: per connection, per cache, all connections.
    pub query_buffer_limit: u64,
    pub cache_client_memory: u64,
    pub client_memory_limit: u64,
    /// Buffered request bytes of all connections now.
    pub client_memory: AtomicU64,
    /// Longest a request waits for ECPU/s admission before THROTTLED.
    pub throttle_max_wait: Duration,
    /// Longest a Lua script may run.
    pub script_time_limit: Duration,
    /// How long a script may hold a partition before others get BUSY.
    pub busy_threshold: Duration,
    pub started: std::time::Instant,
    /// `stratus proxy`: its link to control, which owns the caches' users
    /// (`ACL SETUSER` and `DELUSER` go there).
    pub follower: Option<Arc<crate::control::follow::Follower>>,
    next_id: AtomicU64,
    /// Every open connection (RESP and Memcached), told of shutdown.
    pub connections: crate::attention::Roster,
    /// Failed logins by cache and source address (slows guessing down).
    pub auth_guard: crate::acl::guard::AuthGuard,
}

impl ProxyShared {
    pub fn new(
        registry: Arc<Registry>,
        default_cache: Option<String>,
        config: &ServeConfig,
    ) -> ProxyShared {
        ProxyShared {
            registry,
            default_cache,
            default_memcached: None,
            memcached_port: 0,
            decoder: Decoder::new(config.limits()),
            max_key_len: config.max_key_len,
            output_buffer_limit: config.output_buffer_limit,
            output_soft_limit: config.output_buffer_soft_limit,
            output_soft_time: Duration::from_secs(config.output_buffer_soft_secs),
            pubsub_hard_limit: config.pubsub_output_limit,
            pubsub_soft_limit: config.pubsub_output_soft_limit,
            pubsub_soft_time: Duration::from_secs(config.pubsub_output_soft_secs),
            max_clients: config.max_clients,
            max_clients_per_cache: config.max_clients_per_cache,
            unauthenticated: Arc::new(Semaphore::new(config.max_unauthenticated)),
            unauthenticated_by_ip: Arc::default(),
            max_unauthenticated_per_ip: config.max_unauthenticated_per_ip,
            auth_timeout: Duration::from_secs(config.auth_timeout_secs),
            query_buffer_limit: config.query_buffer_limit,
            cache_client_memory: config.cache_client_memory,
            client_memory_limit: config.client_memory,
            client_memory: AtomicU64::new(0),
            throttle_max_wait: Duration::from_millis(config.throttle_max_wait_ms),
            script_time_limit: Duration::from_millis(config.script_time_limit_ms),
            busy_threshold: Duration::from_millis(config.busy_threshold_ms),
            started: std::time::Instant::now(),
            follower: None,
            next_id: AtomicU64::new(1),
            connections: Default::default(),
            auth_guard: Default::default(),
        }
    }

    /// The open default cache, if configured and still present.
    pub fn default_cache(&self) -> Option<Arc<Cache>> {
        let name = self.default_cache.as_ref()?;
        self.registry.get(name).filter(|c| c.open)
    }

    /// The open default cache of connections speaking `wire`.
    pub fn default_for(&self, wire: Wire) -> Option<Arc<Cache>> {
        match wire {
            Wire::Resp => self.default_cache(),
            Wire::Memcached => {
                let name = self.default_memcached.as_ref()?;
                self.registry.get(name).filter(|c| c.open)
            }
        }
    }

    pub fn next_client_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A place among unauthenticated connections for a socket from `ip`;
    /// `None` if all places, or all of that address's, are taken.
    pub fn preauth(&self, ip: IpAddr) -> Option<PreAuth> {
        let permit = self.unauthenticated.clone().try_acquire_owned().ok()?;
        let mut by_ip = self.unauthenticated_by_ip.lock();
        let n = by_ip.entry(ip).or_insert(0);
        if *n >= self.max_unauthenticated_per_ip {
            return None;
        }
        *n += 1;
        Some(PreAuth {
            _permit: permit,
            ip,
            by_ip: self.unauthenticated_by_ip.clone(),
        })
    }
}

/// An unauthenticated connection's place; released when it binds to a
/// cache or closes.
pub struct PreAuth {
    _permit: OwnedSemaphorePermit,
    ip: IpAddr,
    by_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for PreAuth {
    fn drop(&mut self) {
        let mut by_ip = self.by_ip.lock();
        if let Some(n) = by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by_ip.remove(&self.ip);
            }
        }
    }
}

/// The protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// RESP2/RESP3: Redis-engine caches.
    Resp,
    /// Memcached's text and meta protocols: memcached-engine caches.
    Memcached,
}

/// Accepts connections until `shutdown`; each runs in its own task on `tracker`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<ProxyShared>,
    tls: Option<Arc<Tls>>,
    wire: Wire,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    super::turns::in_turns(accept(listener, shared, tls, wire, shutdown, tracker)).await;
}

/// The accept loop of [`serve`], in time slices.
async fn accept(
    listener: TcpListener,
    shared: Arc<ProxyShared>,
    tls: Option<Arc<Tls>>,
    wire: Wire,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(shared.max_clients));
    let metrics = shared.registry.metrics.clone();
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
            () = shutdown.cancelled() => {
                shared.connections.raise_all(crate::attention::SHUTDOWN);
                return;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            GlobalCounters::bump(&metrics.global.connections_rejected);
            refuse(stream, wire);
            continue;
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
                    continue;
                }
            }
        };
        GlobalCounters::bump(&metrics.global.connections_accepted);
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
                Wire::Resp => conn::run(stream, peer, shared, shutdown, preauth).await,
                Wire::Memcached => {
                    super::memcached::run(stream, peer, shared, shutdown, preauth).await;
                }
            }
            drop(permit);
        });
    }
}

/// Tells a socket over a connection limit so, and closes it: one
/// non-blocking write, no task (a burst of refusals stays cheap).
fn refuse(stream: tokio::net::TcpStream, wire: Wire) {
    let line = match wire {
        Wire::Resp => format!("-{}\r\n", reply::MAX_CLIENTS),
        Wire::Memcached => format!("{}\r\n", crate::memcached::MAX_CLIENTS),
    };
    let _ = stream.try_write(line.as_bytes());
}
