//! What every connection of a proxy shares ([`ProxyShared`]: the registry,
//! limits, counters) and an unauthenticated connection's place
//! ([`PreAuth`]). A leaf of the proxy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ServeConfig;
use crate::control::{Cache, Registry};
use crate::resp::Decoder;

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
    /// The metadata store (a proxy with `--etcd`): scripts and function
    /// libraries are shared through it.
    pub fn meta(&self) -> Option<&dyn crate::meta::MetaStore> {
        self.follower
            .as_ref()
            .and_then(|f| f.store())
            .map(|s| s.as_ref())
    }

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
