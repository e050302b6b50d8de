//! Per-connection state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;

use crate::cmd::CommandSpec;
use crate::control::Cache;
use crate::resp::{Protocol, Request};

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
    /// An open MULTI.
    pub multi: Option<Transaction>,
    /// WATCHed keys with their slot and version at WATCH time.
    pub watched: Vec<Watched>,
    /// Keys in `watched` (WATCH is O(1) per key).
    pub watched_keys: hashbrown::HashSet<Box<[u8]>>,
    /// The connection's place among unauthenticated sockets, until it binds.
    pub preauth: Option<super::server::PreAuth>,
    /// Pub/Sub subscriptions and mailbox (from the first SUBSCRIBE or
    /// CLIENT TRACKING).
    pub pubsub: Option<super::pubsub::Subscriptions>,
    /// CLIENT TRACKING is on (the cache's table has the options).
    pub tracking: bool,
    /// CLIENT CACHING YES|NO was given for the next command.
    pub caching_given: bool,
}

/// A key under WATCH.
pub struct Watched {
    pub key: Box<[u8]>,
    pub slot: u16,
    pub version: u64,
}

/// Commands queued between MULTI and EXEC.
#[derive(Default)]
pub struct Transaction {
    pub queued: Vec<(&'static CommandSpec, Request)>,
    /// A queued command was refused: EXEC answers EXECABORT.
    pub failed: bool,
    /// The one slot every key of the transaction is in.
    pub slot: Option<u16>,
    /// Keys named by the queued commands (metered at EXEC).
    pub keys: u64,
    /// Wire bytes of the queued commands (metered as they were queued).
    pub wire: u64,
    /// Memory the queue holds, bytes (counted with the query buffer).
    pub memory: u64,
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
            multi: None,
            watched: Vec::new(),
            watched_keys: hashbrown::HashSet::new(),
            preauth: None,
            pubsub: None,
            tracking: false,
            caching_given: false,
        }
    }

    /// Binds the connection to `cache`, moving the connection counts;
    /// false (nothing changes) if the cache already has `max_per_cache`
    /// connections.
    pub fn bind(&mut self, cache: Arc<Cache>, max_per_cache: usize) -> bool {
        if self.cache.as_ref().is_some_and(|c| Arc::ptr_eq(c, &cache)) {
            return true;
        }
        let before = cache.usage.connected.fetch_add(1, Ordering::AcqRel);
        if before >= max_per_cache as u64 {
            cache.usage.connected.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        self.unbind();
        cache
            .usage
            .connections_received
            .fetch_add(1, Ordering::Relaxed);
        self.cache = Some(cache);
        self.preauth = None;
        true
    }

    /// Forgets every WATCHed key.
    pub fn unwatch(&mut self) {
        if let Some(cache) = &self.cache {
            for w in self.watched.drain(..) {
                cache.pool.events().unwatch(&w.key);
            }
        }
        self.watched.clear();
        self.watched_keys.clear();
    }

    pub fn unbind(&mut self) {
        self.unwatch();
        super::pubsub::unsubscribe_all(self);
        self.multi = None;
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
