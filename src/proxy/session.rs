//! Per-connection state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::control::Cache;
use crate::resp::Protocol;

/// What one client connection remembers between commands.
pub struct Session {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub created: Instant,
    pub last_command: Instant,
    /// The cache this connection is bound to (`None` = not authenticated).
    pub cache: Option<Arc<Cache>>,
    pub protocol: Protocol,
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    /// Set by QUIT or a fatal error: close after flushing.
    pub closing: bool,
}

impl Session {
    pub fn new(id: u64, peer: SocketAddr, local: SocketAddr) -> Session {
        let now = Instant::now();
        Session {
            id,
            peer,
            local,
            created: now,
            last_command: now,
            cache: None,
            protocol: Protocol::Resp2,
            name: None,
            lib_name: None,
            lib_ver: None,
            closing: false,
        }
    }

    /// Binds the connection to `cache`, moving the connection gauges.
    pub fn bind(&mut self, cache: Arc<Cache>) {
        if self.cache.as_ref().is_some_and(|c| Arc::ptr_eq(c, &cache)) {
            return;
        }
        self.unbind();
        cache.metrics.connections.increment(1.0);
        cache
            .counters
            .connected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        cache
            .counters
            .connections_received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.cache = Some(cache);
    }

    pub fn unbind(&mut self) {
        if let Some(old) = self.cache.take() {
            old.metrics.connections.decrement(1.0);
            old.counters
                .connected
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.unbind();
    }
}
