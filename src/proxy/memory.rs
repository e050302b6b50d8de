//! What a connection may hold and what its writes may add, shared by the
//! RESP and Memcached connections: client memory ([`ClientMemory`], charged
//! to the connection's, its cache's and the server's limits), its buffers
//! (grown and freed off the hot path), and room in the cache's storage
//! maximum ([`write_room`], [`make_room`], [`evict_over_limit`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Buf, Bytes, BytesMut};

use super::shared::ProxyShared;
use super::turns::end_of_slice;
use crate::allocator::{MAPPED, starts_mapping};
use crate::control::Cache;
use crate::partition::lazyfree;
use crate::resp::reply;
use crate::tls::Transport;

/// The most one read takes from the socket, and the piece a growing read
/// buffer is copied in, bytes (RESP and Memcached connections): a step of
/// a big upload stays within about a slice. A 6 MB read, or a 400 MB buffer
/// copied at once, held every other client of the reactor for
/// milliseconds; and a big upload's steps write fresh memory, whose first
/// touch is a page fault per 4 KiB: on a virtual machine a 64 KiB step took
/// 0.1–0.33 ms (`perf trace`, `noisy --heavy bigbulk`), and B's p99 next to
/// three uploads was 1.0–1.3 ms against 0.2–0.4 alone.
pub(crate) const READ_MAX: usize = 16 * 1024;
/// Read-buffer headroom kept free before each read, bytes (RESP and
/// Memcached connections).
pub(crate) const READ_CHUNK: usize = 16 * 1024;
/// A connection buffer above this is released once empty, not kept.
pub(crate) const KEEP_BUFFER: usize = 1024 * 1024;

/// Writes what the socket takes of `wbuf` now, without waiting (a write
/// error is left for the connection loop's next write to find).
pub(crate) fn send_ready(stream: &mut Transport, wbuf: &mut BytesMut) {
    while !wbuf.is_empty() {
        match stream.try_write(wbuf) {
            Ok(n) if n > 0 => wbuf.advance(n),
            _ => break,
        }
    }
}

/// Whether a client above the soft output limit has been there for the
/// soft limit's time without taking anything (`pending`: the output
/// before this round's write, `left`: after it): then it is disconnected.
/// `since` holds when it went over; the clock is read only then.
pub(crate) fn output_stalled(
    shared: &ProxyShared,
    since: &mut Option<tokio::time::Instant>,
    pending: usize,
    left: usize,
) -> bool {
    if left <= shared.output_soft_limit || left < pending {
        *since = None;
        return false;
    }
    let now = tokio::time::Instant::now();
    *since.get_or_insert(now + shared.output_soft_time) <= now
}

/// The capacity a read buffer grows to before the next read (RESP and
/// Memcached connections), if its free room is under a quarter of
/// [`READ_CHUNK`]: what it holds and a quarter more (at least a chunk).
/// Grown with what has arrived, never on a header's promise: an unfinished
/// 512 MB bulk holds what was sent of it.
pub(crate) fn grown_capacity(rbuf: &BytesMut) -> Option<usize> {
    let short = rbuf.capacity() > 0 && rbuf.capacity() - rbuf.len() < READ_CHUNK / 4;
    short.then(|| rbuf.len() + READ_CHUNK.max(rbuf.len() / 4))
}

/// Gives `rbuf` room for `capacity` bytes (RESP and Memcached
/// connections), in the cheapest of three ways:
/// - a remainder of at most [`READ_MAX`] moves to the front of the
///   buffer's own allocation (`BytesMut::reserve` reuses it once no
///   request cut from it is alive, the usual case, and allocates only
///   otherwise), unless that allocation is over [`KEEP_BUFFER`] (a big
///   request's, not kept for small ones);
/// - a buffer that is a mapping of its own (see [`crate::allocator`]), with
///   nothing cut from its front and nothing else holding it (a big upload
///   arriving) is resized by the allocator: its pages move, no byte is
///   copied;
/// - otherwise it is copied into a new buffer [`READ_MAX`] at a time
///   within the connection's time slices, the old buffer freed off the
///   reactor. (A fresh block per refill was where glibc sorted its free
///   lists during a mass expiry: 41% of the server's CPU, `perf`, the split
///   scenario.)
pub(crate) async fn grow(rbuf: &mut BytesMut, capacity: usize) {
    if rbuf.len() <= READ_MAX {
        rbuf.reserve(capacity.saturating_sub(rbuf.len()));
        if rbuf.capacity() <= KEEP_BUFFER {
            return;
        }
        // The block reused was a big request's: a right-sized one instead.
    }
    let mapped = rbuf.capacity() >= MAPPED && capacity >= MAPPED && starts_mapping(rbuf.as_ptr());
    let old: Bytes = std::mem::take(rbuf).freeze();
    if mapped && old.is_unique() {
        // Unique and uncut: the conversions move no byte, `reserve_exact`
        // is one `realloc`.
        let mut whole = Vec::from(old);
        whole.reserve_exact(capacity - whole.len());
        *rbuf = BytesMut::from(Bytes::from(whole));
        return;
    }
    let mut bigger = BytesMut::with_capacity(capacity);
    for piece in old.chunks(READ_MAX) {
        bigger.extend_from_slice(piece);
        end_of_slice().await;
    }
    *rbuf = bigger;
    let bytes = old.len();
    lazyfree::free(old, 1, bytes);
}

/// Frees a connection buffer, a big one off the reactor (a munmap of tens
/// of MB takes milliseconds; see [`lazyfree`]).
pub(crate) fn release(buf: BytesMut) {
    let bytes = buf.capacity();
    lazyfree::free(buf, 1, bytes);
}

/// Client memory a connection holds (its read buffer, queued commands),
/// charged to its cache's and the server's totals: RESP and Memcached
/// connections alike.
#[derive(Default)]
pub struct ClientMemory {
    pub charged: u64,
    charged_to: Option<Arc<Cache>>,
}

impl ClientMemory {
    /// Sets the charge to `bytes` for a connection bound to `cache`; `Err`
    /// (nothing changes) if that would pass the connection's, the cache's
    /// or the server's limit.
    pub fn set(
        &mut self,
        shared: &ProxyShared,
        cache: Option<&Arc<Cache>>,
        bytes: u64,
    ) -> Result<(), &'static str> {
        let moved = match (cache, &self.charged_to) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (None, None) => false,
            _ => true,
        };
        // (Every pass of a connection's loop sets its charge: most find it
        // as it was, and touch no shared counter.)
        if !moved && bytes == self.charged {
            return Ok(());
        }
        let grows = bytes > self.charged || moved;
        if grows && bytes > 0 {
            let own = if cache.is_some() {
                shared.query_buffer_limit
            } else {
                crate::config::UNAUTHENTICATED_QUERY_BUFFER_LIMIT
            };
            let extra = bytes.saturating_sub(self.charged);
            let server = shared.client_memory.load(Ordering::Relaxed);
            let of_cache = cache.map_or(0, |c| c.usage.client_memory.load(Ordering::Relaxed));
            let cache_extra = if moved { bytes } else { extra };
            if bytes > own {
                return Err(reply::QUERY_BUFFER_LIMIT);
            }
            if server + extra > shared.client_memory_limit
                || (cache.is_some() && of_cache + cache_extra > shared.cache_client_memory)
            {
                return Err(reply::CLIENT_MEMORY_LIMIT);
            }
        }
        // Refund the old charge, take the new one.
        shared
            .client_memory
            .fetch_sub(self.charged, Ordering::Relaxed);
        if let Some(c) = &self.charged_to {
            c.usage
                .client_memory
                .fetch_sub(self.charged, Ordering::Relaxed);
        }
        shared.client_memory.fetch_add(bytes, Ordering::Relaxed);
        if let Some(c) = cache {
            c.usage.client_memory.fetch_add(bytes, Ordering::Relaxed);
        }
        self.charged = bytes;
        if moved {
            self.charged_to = cache.cloned();
        }
        Ok(())
    }
}

/// How far past its memory limit a write may grow what it writes beyond its
/// request (SETBIT, SETRANGE, APPEND...), as a SET may overshoot by its own
/// bytes: Redis checks `maxmemory` before a command, not during it. Only a
/// cache within its limit runs writes at all, so one write's overshoot is
/// the most a cache carries.
const GROWTH_OVERSHOOT: u64 = 1024 * 1024;

/// Bytes a write may add to `cache` before its memory limit, with the
/// overshoot one write may make past it (`u64::MAX`: no limit).
pub(crate) fn write_room(cache: &Cache) -> u64 {
    match cache.memory_limit() {
        0 => u64::MAX,
        max => (max + GROWTH_OVERSHOOT).saturating_sub(cache.pool.used_bytes()),
    }
}

/// Keys one command evicts inline at most (about 0.15 ms on the reactor):
/// past that the command runs and the maintenance cycle goes on evicting
/// ([`evict_over_limit`]), as Redis's eviction time limit hands over to its
/// background eviction. (4096 inline let a 1-ECPU GET of a cache whose
/// `maxmemory` was lowered stall the reactor for 10 ms.)
pub(crate) const EVICTIONS_PER_COMMAND: usize = 64;

/// How far over its memory limit a cache may be while eviction catches up;
/// past it, writes are refused until it has.
const EVICTION_LAG: u64 = 8 * 1024 * 1024;

/// Evicts keys (as the cache's `maxmemory-policy` chooses), at most
/// [`EVICTIONS_PER_COMMAND`], until a command bringing about `incoming`
/// bytes (0 for one that does not write) fits under the cache's memory
/// limit. If nothing more can be evicted, the write is still allowed while
/// usage is within the limit (it may be an overwrite; Redis checks the same
/// way), and refused once usage is over it; if keys are left to evict, it is
/// allowed while usage is within [`EVICTION_LAG`] of the limit.
pub(crate) async fn make_room(cache: &Cache, incoming: u64, now: u64) -> bool {
    let max = cache.memory_limit();
    let policy = cache.server.config.eviction();
    if max == 0 {
        return true;
    }
    let mut evicted = 0;
    while evicted < EVICTIONS_PER_COMMAND {
        let used = cache.pool.used_bytes();
        if used + incoming <= max {
            return true;
        }
        match cache.pool.evict(now, policy, used + incoming - max).await {
            0 => return cache.pool.used_bytes() <= max,
            n => evicted += n,
        }
    }
    cache.pool.used_bytes() <= max + EVICTION_LAG
}

/// Maintenance: evicts up to `budget` keys from a cache over its memory
/// limit; true if it is still over with keys left to evict.
pub(crate) async fn evict_over_limit(cache: &Cache, now: u64, budget: usize) -> bool {
    let max = cache.memory_limit();
    if max == 0 {
        return false;
    }
    let policy = cache.server.config.eviction();
    let mut evicted = 0;
    while evicted < budget {
        let used = cache.pool.used_bytes();
        if used <= max {
            return false;
        }
        match cache.pool.evict(now, policy, used - max).await {
            0 => return false,
            n => evicted += n,
        }
    }
    true
}
