//! The partition pool of one cache: its routing table (slot range →
//! partition handle, with an epoch) and the [`PartitionHandle`] seam.
//!
//! The proxy path talks only to [`PartitionHandle`]: today every handle is
//! local (a keyspace behind a mutex in this process); a remote form will add a
//! transport behind the same methods, not a rewrite. Invariants: the routing
//! table's ranges are contiguous, cover all 16384 slots, and its epoch only
//! grows; a partition's lock is held for one operation, never across `.await`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::cmd::{self, CommandSpec, Ctx};
use crate::partition::keyspace::ScanCursor;
use crate::partition::{Entry, Keyspace, KeyspaceStats, SLOTS};
use crate::resp::Reply;

/// What executing a command in a partition produced.
pub struct Executed {
    pub reply: Reply,
    /// Elements walked (metered as work).
    pub work: u64,
}

/// Figures of one partition, for INFO, metrics and the partition view.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartitionStats {
    pub first_slot: u16,
    pub last_slot: u16,
    pub keys: usize,
    pub volatile_keys: usize,
    pub used_bytes: usize,
    pub events: KeyspaceStats,
}

/// A partition that lives in this process.
pub struct LocalPartition {
    pub id: u64,
    pub created: Instant,
    ks: Mutex<Keyspace>,
    /// The cache's used-bytes total, shared by its partitions.
    cache_used: Arc<AtomicU64>,
}

impl LocalPartition {
    /// Runs `f` on the keyspace under its lock and carries the change in
    /// used bytes to the cache's total.
    fn with_ks<R>(&self, f: impl FnOnce(&mut Keyspace) -> R) -> R {
        let mut ks = self.ks.lock();
        let before = ks.used_bytes() as u64;
        let out = f(&mut ks);
        let after = ks.used_bytes() as u64;
        if after > before {
            self.cache_used.fetch_add(after - before, Ordering::Relaxed);
        } else if before > after {
            self.cache_used.fetch_sub(before - after, Ordering::Relaxed);
        }
        out
    }
}

/// The one way the proxy reaches a partition.
#[derive(Clone)]
pub enum PartitionHandle {
    Local(Arc<LocalPartition>),
}

/// Per-command execution settings the proxy passes down.
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    pub now: u64,
    pub resp3: bool,
    pub max_value_len: usize,
}

impl PartitionHandle {
    fn local(id: u64, ks: Keyspace, cache_used: Arc<AtomicU64>) -> PartitionHandle {
        cache_used.fetch_add(ks.used_bytes() as u64, Ordering::Relaxed);
        PartitionHandle::Local(Arc::new(LocalPartition {
            id,
            created: Instant::now(),
            ks: Mutex::new(ks),
            cache_used,
        }))
    }

    pub fn id(&self) -> u64 {
        match self {
            PartitionHandle::Local(p) => p.id,
        }
    }

    /// Runs a data command on this partition.
    pub fn execute(&self, spec: &CommandSpec, args: &[Bytes], opts: ExecOptions) -> Executed {
        match self {
            PartitionHandle::Local(p) => p.with_ks(|ks| {
                let mut ctx = Ctx::new(ks, opts.now);
                ctx.resp3 = opts.resp3;
                ctx.max_value_len = opts.max_value_len;
                let reply = cmd::execute(spec, &mut ctx, args);
                Executed {
                    reply,
                    work: ctx.work,
                }
            }),
        }
    }

    pub fn stats(&self) -> PartitionStats {
        match self {
            PartitionHandle::Local(p) => {
                let ks = p.ks.lock();
                PartitionStats {
                    first_slot: ks.first_slot(),
                    last_slot: ks.last_slot(),
                    keys: ks.len(),
                    volatile_keys: ks.volatile_keys(),
                    used_bytes: ks.used_bytes(),
                    events: ks.stats,
                }
            }
        }
    }

    pub fn flush(&self) {
        match self {
            PartitionHandle::Local(p) => p.with_ks(Keyspace::flush),
        }
    }

    /// One bounded step of the active expiry cycle; returns keys deleted.
    pub fn active_expire(&self, now: u64, budget: usize) -> usize {
        match self {
            PartitionHandle::Local(p) => p.with_ks(|ks| ks.active_expire(now, budget)),
        }
    }

    /// Evicts one volatile key (see [`Keyspace::evict_one`]).
    pub fn evict_one(&self, now: u64) -> Option<usize> {
        match self {
            PartitionHandle::Local(p) => p.with_ks(|ks| ks.evict_one(now)),
        }
    }

    /// One SCAN step inside this partition (see [`Keyspace::scan`]).
    pub fn scan(
        &self,
        cursor: ScanCursor,
        count: usize,
        now: u64,
        keep: impl FnMut(&[u8], &Entry) -> bool,
    ) -> (Vec<Box<[u8]>>, Option<ScanCursor>) {
        match self {
            PartitionHandle::Local(p) => p.ks.lock().scan(cursor, count, now, keep),
        }
    }
}

/// Slot range → partition, with the epoch of the last change.
struct RoutingTable {
    epoch: u64,
    /// Sorted by first slot; contiguous; covering 0..=16383.
    ranges: Vec<(u16, u16, PartitionHandle)>,
}

/// The partitions of one cache.
pub struct CachePool {
    routing: RwLock<RoutingTable>,
    used_bytes: Arc<AtomicU64>,
    /// Where the next eviction starts looking (spreads evictions).
    evict_cursor: AtomicUsize,
}

impl Default for CachePool {
    fn default() -> Self {
        CachePool::new()
    }
}

impl CachePool {
    /// A pool with one partition owning every slot.
    pub fn new() -> CachePool {
        let used_bytes = Arc::new(AtomicU64::new(0));
        let handle = PartitionHandle::local(1, Keyspace::new(0, SLOTS - 1), used_bytes.clone());
        CachePool {
            routing: RwLock::new(RoutingTable {
                epoch: 1,
                ranges: vec![(0, SLOTS - 1, handle)],
            }),
            used_bytes,
            evict_cursor: AtomicUsize::new(0),
        }
    }

    /// Bytes stored by all partitions (kept exact by every operation).
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::Relaxed)
    }

    /// Evicts one volatile key from some partition; `None` if none can be.
    pub fn evict_one(&self, now: u64) -> Option<usize> {
        let parts = self.partitions();
        let start = self.evict_cursor.fetch_add(1, Ordering::Relaxed);
        (0..parts.len()).find_map(|i| parts[(start + i) % parts.len()].evict_one(now))
    }

    pub fn epoch(&self) -> u64 {
        self.routing.read().epoch
    }

    /// The partition that owns `slot`.
    pub fn route(&self, slot: u16) -> PartitionHandle {
        let table = self.routing.read();
        let at = table.ranges.partition_point(|(_, last, _)| *last < slot);
        table.ranges[at.min(table.ranges.len() - 1)].2.clone()
    }

    /// Every partition, in slot order.
    pub fn partitions(&self) -> Vec<PartitionHandle> {
        self.routing
            .read()
            .ranges
            .iter()
            .map(|(_, _, h)| h.clone())
            .collect()
    }

    /// Sum of the partitions' figures.
    pub fn totals(&self) -> PartitionStats {
        self.partitions().iter().map(PartitionHandle::stats).fold(
            PartitionStats {
                last_slot: SLOTS - 1,
                ..PartitionStats::default()
            },
            |mut acc, s| {
                acc.keys += s.keys;
                acc.volatile_keys += s.volatile_keys;
                acc.used_bytes += s.used_bytes;
                acc.events.hits += s.events.hits;
                acc.events.misses += s.events.misses;
                acc.events.expired += s.events.expired;
                acc.events.evicted += s.events.evicted;
                acc
            },
        )
    }

    pub fn flush(&self) {
        for p in self.partitions() {
            p.flush();
        }
    }
}
