//! Per-connection state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
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

    /// Binds the connection to `cache`, moving the connection counts.
    pub fn bind(&mut self, cache: Arc<Cache>) {
        if self.cache.as_ref().is_some_and(|c| Arc::ptr_eq(c, &cache)) {
            return;
        }
        self.unbind();
        cache.usage.connected.fetch_add(1, Ordering::Relaxed);
        cache
            .usage
            .connections_received
            .fetch_add(1, Ordering::Relaxed);
        self.cache = Some(cache);
    }

    pub fn unbind(&mut self) {
        if let Some(old) = self.cache.take() {
            old.usage.connected.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.unbind();
    }
}
