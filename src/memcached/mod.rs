//! The Memcached engine: memcached-engine caches spoken to in Memcached
//! 1.6's text and meta protocols, on their own port (`--memcached-port`,
//! 11211 by default).
//!
//! - [`proto`]: request lines and data blocks into [`proto::Request`]
//!   values (memcached's tokenizer, number parsing, limits and error lines);
//! - [`crate::proxy::memcached`]: the connection loop and the request path
//!   (in the proxy, beside the RESP one): authenticate →
//!   admit → make room → execute → meter → reply, with the RESP
//!   connection's discipline (reads capped, client memory charged, time
//!   slices, backpressure on unread replies).
//!
//! Mapping onto the service underneath: every operation is a row of the
//! one command table (`Family::Memcached`, hidden from RESP clients) whose
//! handler (`cmd::memcached`) runs in the partition owning the key's slot,
//! as a Redis command would; an item is a string with a small trailer
//! (flags, CAS: `cmd::memcached`). So routing, split and merge, expiry, allkeys-LRU
//! eviction at the storage maximum, byte accounting, ECPU metering
//! (max(transfer KiB, work): a 100 B get or set is 1 ECPU), the ECPU/s
//! limit and usage metrics are the Redis engine's. A multi-key `get` is
//! one execution per key, answered in order.
//!
//! Limits: keys up to 250 bytes (memcached's; as memcached's text
//! protocol, any byte but space, `\r` and `\n` may appear in them); items
//! up to the cache's `item_size_max` (1 MiB by default, at most 128 MiB),
//! checked on the announced length before any data is buffered; a line
//! without a newline after 2048 bytes closes the connection (a multi-get's
//! after 64 KiB).
//!
//! Authentication is memcached's text-protocol one: before it, the first
//! command must be `set <any key> <flags> <exptime> <len>` whose data is
//! `<user> <password>`: user = a cache's name (password: its token) or
//! `<cache>.<user>` (a named user of the cache). Answered `STORED` or
//! `CLIENT_ERROR authentication failure` (the connection stays open,
//! failures slow down as RESP logins do); anything else before it gets
//! `CLIENT_ERROR unauthenticated`. The open `default-memcached` cache
//! binds loopback connections without it, as `default` does for RESP.
//!
//! `version` answers [`VERSION`]: the protocol level implemented (meta
//! commands with memcached 1.6.27's `E` flag).

pub mod proto;

use std::sync::atomic::{AtomicU64, Ordering};

/// What `version` answers.
pub const VERSION: &str = "VERSION 1.6.27";
/// Memcached's reply to a connection over the connection limits.
pub const MAX_CLIENTS: &str = "ERROR Too many open connections";
pub const UNAUTHENTICATED: &str = "CLIENT_ERROR unauthenticated";
pub const AUTH_FAILED: &str = "CLIENT_ERROR authentication failure";
pub const AUTH_BAD_TERMINATION: &str = "CLIENT_ERROR bad command line termination";
pub const AUTH_BAD_FORMAT: &str = "CLIENT_ERROR bad authentication token format";
pub const OUT_OF_MEMORY: &str = "SERVER_ERROR out of memory storing object";
pub const ARITH_OUT_OF_MEMORY: &str = "SERVER_ERROR out of memory";
/// Over the cache's ECPU/s limit for longer than the admission wait.
pub const THROTTLED: &str = "SERVER_ERROR throttled, retry later";
/// A named user's access string does not allow the operation or a key.
pub const NOPERM: &str = "CLIENT_ERROR permission denied";
pub const CACHE_DELETED: &str = "SERVER_ERROR this connection's cache was deleted";

/// `stats` counters of one memcached-engine cache (memcached's names).
#[derive(Debug, Default)]
pub struct MemcachedStats {
    pub cmd_get: AtomicU64,
    pub get_hits: AtomicU64,
    pub get_misses: AtomicU64,
    pub cmd_set: AtomicU64,
    pub cmd_touch: AtomicU64,
    pub touch_hits: AtomicU64,
    pub touch_misses: AtomicU64,
    pub cmd_flush: AtomicU64,
    pub cmd_meta: AtomicU64,
    pub delete_hits: AtomicU64,
    pub delete_misses: AtomicU64,
    pub incr_hits: AtomicU64,
    pub incr_misses: AtomicU64,
    pub decr_hits: AtomicU64,
    pub decr_misses: AtomicU64,
    pub cas_hits: AtomicU64,
    pub cas_misses: AtomicU64,
    pub cas_badval: AtomicU64,
    pub total_items: AtomicU64,
    pub store_too_large: AtomicU64,
    pub store_no_memory: AtomicU64,
    pub auth_cmds: AtomicU64,
    pub auth_errors: AtomicU64,
}

impl MemcachedStats {
    /// `stats reset`: every counter back to 0.
    pub fn reset(&self) {
        for c in [
            &self.cmd_get,
            &self.get_hits,
            &self.get_misses,
            &self.cmd_set,
            &self.cmd_touch,
            &self.touch_hits,
            &self.touch_misses,
            &self.cmd_flush,
            &self.cmd_meta,
            &self.delete_hits,
            &self.delete_misses,
            &self.incr_hits,
            &self.incr_misses,
            &self.decr_hits,
            &self.decr_misses,
            &self.cas_hits,
            &self.cas_misses,
            &self.cas_badval,
            &self.total_items,
            &self.store_too_large,
            &self.store_no_memory,
            &self.auth_cmds,
            &self.auth_errors,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
