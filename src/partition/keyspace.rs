//! The keyspace of one partition: entries bucketed by hash slot.
//!
//! Each slot is a [`Slot`]: its entries, the deadlines of its volatile keys
//! (a min-heap of (deadline, key hash) pairs, 16 bytes each and no
//! allocation) and its byte and volatile-key totals. Everything a split or a
//! merge moves lives inside the slots, so both cost O(slots), never O(keys).
//!
//! Invariants:
//! - every key lives in the slot table of its slot, and the partition owns it;
//! - `used_bytes` equals the sum over entries of key + value +
//!   [`ENTRY_OVERHEAD`], and each slot's `bytes` the same over its entries,
//!   kept exact on every insert, remove and in-place change ([`EntryMut`]);
//! - a key whose deadline has passed is never returned: lookups delete it
//!   (lazy expiry), and [`Keyspace::active_expire`] pops due deadlines — a
//!   partition-level heap of (earliest deadline, slot) timers points at the
//!   slots to visit — so keys never read again are reclaimed without walking
//!   the keyspace. Heap entries can be stale (TTL changed, key deleted); a
//!   popped one names the entry of its slot filed under its hash whose
//!   deadline it is, if any, and that entry is expired only if its own
//!   deadline has passed (two keys of one slot sharing a 64-bit hash and a
//!   deadline each still expire at theirs); a slot's heap is compacted
//!   when stale entries outnumber live ones;
//! - eviction ([`Keyspace::evict_one`]) removes the key its [`Eviction`]
//!   policy ranks first among a random sample; under a `volatile-*` policy
//!   (volatile-lru is the default) keys without a TTL are never evicted;
//! - a value the keyspace drops (delete, overwrite, expiry, eviction, an
//!   emptied slot's table, a flushed or retired keyspace) leaves the
//!   accounting at once but is freed through [`lazyfree`]: an expensive
//!   destructor never runs under the partition lock. Only [`Keyspace::take`]
//!   hands a removed value back to the caller (RENAME moves it);
//! - each slot's table keeps its entries' scan positions (`table.rs`), which
//!   only move downwards: [`Keyspace::scan`] resumes inside a slot in
//!   O(COUNT) and returns every key present for the whole scan.

mod table;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::Rng;
use smallvec::SmallVec;

use super::lazyfree;
use super::notify::{self, Notifications};
use super::prefetch_line;
pub use super::scan::ScanCursor;
use super::slot::{SLOTS, key_slot};
use super::value::{ENTRY_OVERHEAD, Value};
use table::KeyTable;

use crate::partition::key::Key;

/// Draws RANDOMKEY makes before it gives up on a keyspace whose keys it
/// keeps finding expired (each one found is reclaimed).
pub const RANDOM_KEY_TRIES: usize = 100;

/// A stored value with its deadline. (The key's last access, the LRU
/// clock, is stamped on its name: see `key.rs`.)
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub value: Value,
    /// Unix milliseconds; 0 = no expiry.
    expire_at: u64,
}

impl Entry {
    pub fn new(value: Value) -> Entry {
        Entry {
            value,
            expire_at: 0,
        }
    }

    /// The deadline in unix milliseconds, if the key is volatile.
    pub fn expire_at(&self) -> Option<u64> {
        (self.expire_at != 0).then_some(self.expire_at)
    }

    fn is_expired(&self, now: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now
    }

    fn mem_bytes(&self, key_len: usize) -> usize {
        key_len + self.value.mem_bytes() + ENTRY_OVERHEAD
    }

    /// Bytes the entry is accounted with under a key of `key_len` bytes
    /// (MEMORY USAGE).
    pub fn memory_usage(&self, key_len: usize) -> usize {
        self.mem_bytes(key_len)
    }
}

/// Counters of keyspace events, read by INFO and the metrics exporter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyspaceStats {
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
    pub evicted: u64,
    /// Values DEL and UNLINK handed to the lazyfree thread.
    pub lazyfreed: u64,
}

impl std::ops::AddAssign for KeyspaceStats {
    fn add_assign(&mut self, o: KeyspaceStats) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.expired += o.expired;
        self.evicted += o.evicted;
        self.lazyfreed += o.lazyfreed;
    }
}

impl KeyspaceStats {
    /// What was counted since `base` was taken (CONFIG RESETSTAT).
    pub fn since(self, base: KeyspaceStats) -> KeyspaceStats {
        KeyspaceStats {
            hits: self.hits.saturating_sub(base.hits),
            misses: self.misses.saturating_sub(base.misses),
            expired: self.expired.saturating_sub(base.expired),
            evicted: self.evicted.saturating_sub(base.evicted),
            lazyfreed: self.lazyfreed.saturating_sub(base.lazyfreed),
        }
    }
}

/// Which keys a cache evicts at its memory limit (`maxmemory-policy`).
/// Stratus keeps no access-frequency counters, so Redis's two LFU policies
/// are not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Eviction {
    /// Nothing: writes that need room are refused (OOM).
    NoEviction,
    /// ElastiCache Serverless's policy, the default.
    #[default]
    VolatileLru,
    VolatileRandom,
    VolatileTtl,
    AllkeysLru,
    AllkeysRandom,
}

impl Eviction {
    /// Every policy with its Redis name.
    pub const ALL: [(Eviction, &'static str); 6] = [
        (Eviction::VolatileLru, "volatile-lru"),
        (Eviction::AllkeysLru, "allkeys-lru"),
        (Eviction::VolatileRandom, "volatile-random"),
        (Eviction::AllkeysRandom, "allkeys-random"),
        (Eviction::VolatileTtl, "volatile-ttl"),
        (Eviction::NoEviction, "noeviction"),
    ];

    pub fn name(self) -> &'static str {
        Eviction::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("volatile-lru", |(_, n)| n)
    }

    pub fn parse(name: &str) -> Option<Eviction> {
        Eviction::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(p, _)| *p)
    }

    /// Whether only keys with a deadline may go.
    pub fn volatile(self) -> bool {
        matches!(
            self,
            Eviction::VolatileLru | Eviction::VolatileRandom | Eviction::VolatileTtl
        )
    }

    /// A sampled candidate's rank: the lowest goes first.
    fn score(self, stamp: u32, e: &Entry) -> u64 {
        match self {
            Eviction::VolatileLru | Eviction::AllkeysLru => u64::from(stamp),
            Eviction::VolatileTtl => e.expire_at,
            _ => 0,
        }
    }
}

/// Keys examined per eviction (Redis's `maxmemory-samples`).
pub const EVICTION_SAMPLES: usize = 5;
/// Stale deadline entries a heap may carry before it is compacted.
const SLOT_HEAP_SLACK: usize = 64;

fn lru_clock(now: u64) -> u32 {
    (now / 1000) as u32
}

/// A volatile key's deadline and the hash its slot's table files the key
/// under: 16 bytes and no allocation (with a boxed copy of the key, 56
/// bytes or more, and an allocation per write that glibc's heap had to
/// sort when a mass expiry freed them). A heap entry names the entry filed under that
/// hash whose deadline it is; stale ones name none.
type Deadline = Reverse<(u64, u64)>;

/// Where a lookup found a live entry: its slot's index in the keyspace and
/// its bucket in that slot's table.
type Found = (usize, usize);

/// One hash slot's data.
#[derive(Debug, Default)]
struct Slot {
    map: KeyTable,
    /// Deadlines of volatile keys (some possibly stale).
    deadlines: BinaryHeap<Deadline>,
    volatile: usize,
    bytes: usize,
}

impl Slot {
    /// Drops deadline entries that no longer match their key's deadline.
    fn compact(&mut self) {
        let heap = std::mem::take(&mut self.deadlines);
        let mut live: Vec<Deadline> = heap
            .into_vec()
            .into_iter()
            .filter(|&Reverse((at, hash))| self.holder(at, hash).is_some())
            .collect();
        live.sort_unstable();
        live.dedup();
        self.deadlines = BinaryHeap::from(live);
    }

    fn earliest(&self) -> Option<u64> {
        self.deadlines.peek().map(|Reverse((at, _))| *at)
    }

    /// The key whose deadline a heap entry (`at`, `hash`) is, if it still is.
    fn holder(&self, at: u64, hash: u64) -> Option<(&Key, &Entry)> {
        let pos = self.map.find_hashed(hash, |e| e.expire_at == at)?;
        self.map.at(pos)
    }
}

/// A write handle on an entry: when dropped, the keyspace's and the slot's
/// byte totals are adjusted by however much the value grew or shrank.
pub struct EntryMut<'a> {
    entry: &'a mut Entry,
    used_bytes: &'a mut usize,
    slot_bytes: &'a mut usize,
    before: usize,
}

impl EntryMut<'_> {
    pub fn value(&self) -> &Value {
        &self.entry.value
    }

    pub fn value_mut(&mut self) -> &mut Value {
        &mut self.entry.value
    }

    pub fn expire_at(&self) -> Option<u64> {
        self.entry.expire_at()
    }
}

impl Drop for EntryMut<'_> {
    fn drop(&mut self) {
        let after = self.entry.value.mem_bytes();
        *self.used_bytes = *self.used_bytes + after - self.before;
        *self.slot_bytes = *self.slot_bytes + after - self.before;
    }
}

/// The entries of one partition's slot range.
#[derive(Debug)]
pub struct Keyspace {
    first_slot: u16,
    tables: Vec<Option<Box<Slot>>>,
    keys: usize,
    used_bytes: usize,
    volatile: usize,
    /// (earliest deadline, slot): which slots the expiry cycle visits next.
    timers: BinaryHeap<Reverse<(u64, u16)>>,
    /// Counts changes (a write handed out, an insert, a removal, a deadline
    /// set or cleared): a command that moved it changed its keys.
    mutations: u64,
    pub stats: KeyspaceStats,
    /// Set for the command being run by a CLIENT NO-TOUCH client: lookups
    /// leave last-access times alone (TOUCH still updates them).
    pub no_touch: bool,
    /// Keyspace events recorded for the cache's hub (see [`super::notify`]).
    pub notify: Notifications,
}

impl Keyspace {
    /// A keyspace owning slots `first..=last`.
    pub fn new(first: u16, last: u16) -> Keyspace {
        assert!(first <= last && last < SLOTS, "bad slot range");
        Keyspace {
            first_slot: first,
            tables: (first..=last).map(|_| None).collect(),
            keys: 0,
            used_bytes: 0,
            volatile: 0,
            timers: BinaryHeap::new(),
            mutations: 0,
            stats: KeyspaceStats::default(),
            no_touch: false,
            notify: Notifications::default(),
        }
    }

    /// Changes so far (see the field): compare before and after a command.
    pub fn mutations(&self) -> u64 {
        self.mutations
    }

    /// A keyspace owning every slot.
    pub fn whole() -> Keyspace {
        Keyspace::new(0, SLOTS - 1)
    }

    pub fn len(&self) -> usize {
        self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }

    /// Bytes charged for the data held (see the module doc).
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// Keys that carry a deadline.
    pub fn volatile_keys(&self) -> usize {
        self.volatile
    }

    pub fn first_slot(&self) -> u16 {
        self.first_slot
    }

    pub fn last_slot(&self) -> u16 {
        self.first_slot + (self.tables.len() as u16 - 1)
    }

    pub fn owns(&self, slot: u16) -> bool {
        slot >= self.first_slot && slot <= self.last_slot()
    }

    /// Brings what lookups of `keys` will read into the CPU's cache, in
    /// four passes so that the misses of one pass are in flight together:
    /// each key's slot table; then (the tables at hand) the entries its
    /// index points to under the key's hash tag, without reading them;
    /// then each key's entry, found as a lookup finds it (the entries at
    /// hand); then each found value's first and last line. A batch of pipelined requests calls this before it runs (Redis
    /// 8 prefetches its batches the same way). Reads only: no stamp,
    /// statistic or expiry changes.
    pub fn prefetch(&self, keys: &[(u16, &[u8])]) {
        let slot_of = |slot: u16| {
            self.owns(slot)
                .then(|| self.tables[(slot - self.first_slot) as usize].as_deref())
                .flatten()
        };
        for &(slot, _) in keys {
            if let Some(s) = slot_of(slot) {
                prefetch_line(std::ptr::from_ref(s).cast());
            }
        }
        for &(slot, key) in keys {
            if let Some(s) = slot_of(slot) {
                s.map.candidates(key, prefetch_line);
            }
        }
        let mut values: smallvec::SmallVec<[&Value; 16]> = smallvec::SmallVec::new();
        for &(slot, key) in keys {
            if let Some(e) = slot_of(slot).and_then(|s| s.map.get(key)) {
                values.push(&e.value);
            }
        }
        for v in values {
            let (start, len) = v.head();
            prefetch_line(start);
            if len > 64 {
                prefetch_line(start.wrapping_add(len - 1));
            }
        }
    }

    fn index(&self, key: &[u8]) -> usize {
        let slot = key_slot(key);
        debug_assert!(self.owns(slot), "slot {slot} not owned");
        (slot - self.first_slot) as usize
    }

    /// Read lookup: counts a hit or a miss; an expired key is deleted.
    pub fn get(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        let found = self.lookup(key, now);
        if found.is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
            self.notify.record(notify::KEY_MISS, "keymiss", key);
        }
        self.entry_at(found?)
    }

    /// As [`Keyspace::get`], leaving the key's last-access time alone
    /// (Redis's `LOOKUP_NOTOUCH`: TYPE, TTL, EXISTS do not make a key
    /// look recently used to OBJECT IDLETIME or eviction).
    pub fn get_no_touch(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        let found = self.lookup_with(key, now, false);
        if found.is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
        self.entry_at(found?)
    }

    /// Whether `key` exists (no hit/miss counted); an expired key is deleted.
    pub fn contains(&mut self, key: &[u8], now: u64) -> bool {
        self.lookup(key, now).is_some()
    }

    /// Read-only lookup with no side effect (no hit or miss counted, an
    /// expired entry is skipped, not deleted). For commands that hold several
    /// values at once, after checking each key with [`Keyspace::get`].
    pub fn peek_live(&self, key: &[u8], now: u64) -> Option<&Entry> {
        self.peek(key).filter(|e| !e.is_expired(now))
    }

    /// The entry under `key` without any side effect: only after a lookup.
    /// Whether `key` is stored in this partition, expired or not (what a
    /// FLUSHDB empties: Redis's `dictFind` on the emptied database).
    pub fn holds(&self, key: &[u8]) -> bool {
        self.owns(key_slot(key)) && self.peek(key).is_some()
    }

    fn peek(&self, key: &[u8]) -> Option<&Entry> {
        self.tables[self.index(key)].as_deref()?.map.get(key)
    }

    /// The entry a lookup found.
    fn entry_at(&self, (idx, bucket): Found) -> Option<&Entry> {
        self.tables[idx].as_deref()?.map.in_bucket(bucket)
    }

    /// Finds `key`, deleting it if it has expired.
    fn lookup(&mut self, key: &[u8], now: u64) -> Option<Found> {
        self.lookup_with(key, now, !self.no_touch)
    }

    /// As [`Keyspace::get`], updating the last-access time even for a
    /// CLIENT NO-TOUCH client (the TOUCH command).
    pub fn get_touch(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        let no_touch = std::mem::replace(&mut self.no_touch, false);
        let found = self.get(key, now).is_some();
        self.no_touch = no_touch;
        if found { self.peek(key) } else { None }
    }

    /// [`Keyspace::lookup`], updating the last-access time if `touch`:
    /// where the live entry is (the key is hashed once per lookup).
    fn lookup_with(&mut self, key: &[u8], now: u64, touch: bool) -> Option<Found> {
        let idx = self.index(key);
        let slot = self.tables[idx].as_deref_mut()?;
        let bucket = slot.map.find(key)?;
        if !slot.map.in_bucket(bucket)?.is_expired(now) {
            if touch {
                slot.map.set_stamp(bucket, lru_clock(now));
            }
            return Some((idx, bucket));
        }
        let (k, e) = slot.map.remove(key)?;
        self.forget(idx, &k, &e);
        self.stats.expired += 1;
        self.notify.record(notify::EXPIRED, "expired", &k);
        lazyfree::free_value(e.value);
        None
    }

    /// Write lookup: a handle that keeps the byte totals exact (see [`EntryMut`]).
    pub fn get_mut(&mut self, key: &[u8], now: u64) -> Option<EntryMut<'_>> {
        let (idx, bucket) = self.lookup(key, now)?;
        let Keyspace {
            tables,
            used_bytes,
            mutations,
            ..
        } = self;
        let slot = tables[idx].as_deref_mut()?;
        let entry = slot.map.in_bucket_mut(bucket)?;
        *mutations += 1;
        let before = entry.value.mem_bytes();
        Some(EntryMut {
            entry,
            used_bytes,
            slot_bytes: &mut slot.bytes,
            before,
        })
    }

    /// Stores `value` under `key` with deadline `expire_at` (0 = none),
    /// replacing any entry (freed lazily); returns whether one was replaced.
    /// An expired entry it replaces counts as expired, as if a lookup had
    /// deleted it first (one hash per insert).
    pub fn insert(&mut self, key: &[u8], value: Value, expire_at: u64, now: u64) -> bool {
        let idx = self.index(key);
        let entry = Entry { value, expire_at };
        let added = entry.mem_bytes(key.len());
        let slot = self.tables[idx].get_or_insert_with(Default::default);
        let old = slot.map.insert(key, entry, lru_clock(now));
        slot.bytes += added;
        self.mutations += 1;
        self.keys += 1;
        self.used_bytes += added;
        if let Some(old) = &old {
            self.forget(idx, key, old);
        }
        let expired = old.as_ref().is_some_and(|o| o.is_expired(now));
        if expired {
            self.stats.expired += 1;
            self.notify.record(notify::EXPIRED, "expired", key);
        }
        if expire_at != 0 {
            self.add_volatile(idx, 1);
            self.push_deadline(idx, expire_at, key);
        }
        let replaced = old.is_some() && !expired;
        if !replaced {
            self.notify.record(notify::NEW, "new", key);
        }
        if let Some(old) = old {
            lazyfree::free_value(old.value);
        }
        replaced
    }

    /// Deletes `key` (its value freed lazily); returns whether it was live.
    pub fn remove(&mut self, key: &[u8], now: u64) -> bool {
        match self.take(key, now) {
            Some(e) => {
                lazyfree::free_value(e.value);
                true
            }
            None => false,
        }
    }

    /// Removes `key` and hands its live entry to the caller, who then owns
    /// the value and its free (RENAME moves it under another name).
    pub fn take(&mut self, key: &[u8], now: u64) -> Option<Entry> {
        let idx = self.index(key);
        let (k, e) = self.tables[idx].as_deref_mut()?.map.remove(key)?;
        self.forget(idx, &k, &e);
        if e.is_expired(now) {
            self.stats.expired += 1;
            self.notify.record(notify::EXPIRED, "expired", &k);
            lazyfree::free_value(e.value);
            return None;
        }
        Some(e)
    }

    /// Backdates a live key's last access by `idle_secs` (RESTORE
    /// IDLETIME), as if it had not been read since; false if missing.
    pub fn set_idle(&mut self, key: &[u8], idle_secs: u64, now: u64) -> bool {
        let Some((idx, pos)) = self.find_live(key, now) else {
            return false;
        };
        let stamp = lru_clock(now).saturating_sub(u32::try_from(idle_secs).unwrap_or(u32::MAX));
        if let Some(slot) = self.tables[idx].as_deref_mut() {
            slot.map.set_stamp(pos, stamp);
        }
        true
    }

    /// Seconds since a live key was last read or written (OBJECT IDLETIME).
    pub fn idle_secs(&self, key: &[u8], now: u64) -> Option<u64> {
        let (idx, pos) = self.find_live(key, now)?;
        let (name, _) = self.tables[idx].as_deref()?.map.at(pos)?;
        Some(u64::from(lru_clock(now).saturating_sub(name.stamp())))
    }

    /// Where a live `key` is, without any side effect (an expired one is
    /// left for a lookup to delete).
    fn find_live(&self, key: &[u8], now: u64) -> Option<Found> {
        let idx = self.index(key);
        let map = &self.tables[idx].as_deref()?.map;
        let pos = map.find(key)?;
        (!map.in_bucket(pos)?.is_expired(now)).then_some((idx, pos))
    }

    /// Sets (`Some`) or clears (`None`) the deadline of a live key; returns
    /// false if the key does not exist.
    pub fn set_expire(&mut self, key: &[u8], expire_at: Option<u64>, now: u64) -> bool {
        let Some((idx, bucket)) = self.lookup(key, now) else {
            return false;
        };
        let new = expire_at.unwrap_or(0);
        let Some(entry) = self.tables[idx]
            .as_deref_mut()
            .and_then(|s| s.map.in_bucket_mut(bucket))
        else {
            return false;
        };
        let old = std::mem::replace(&mut entry.expire_at, new);
        self.mutations += 1;
        match (old != 0, new != 0) {
            (false, true) => self.add_volatile(idx, 1),
            (true, false) => self.add_volatile(idx, -1),
            _ => {}
        }
        if new != 0 && new != old {
            self.push_deadline(idx, new, key);
        }
        true
    }

    fn add_volatile(&mut self, idx: usize, delta: isize) {
        if let Some(slot) = self.tables[idx].as_deref_mut() {
            slot.volatile = slot.volatile.saturating_add_signed(delta);
            self.volatile = self.volatile.saturating_add_signed(delta);
        }
    }

    /// Bookkeeping for an entry that left the table of slot index `idx`; an
    /// emptied slot is released (its stale deadlines with it).
    fn forget(&mut self, idx: usize, key: &[u8], entry: &Entry) {
        self.mutations += 1;
        let bytes = entry.mem_bytes(key.len());
        self.keys -= 1;
        self.used_bytes -= bytes;
        if entry.expire_at != 0 {
            self.add_volatile(idx, -1);
        }
        if let Some(slot) = self.tables[idx].as_deref_mut() {
            slot.bytes -= bytes;
            if slot.map.is_empty()
                && let Some(table) = self.tables[idx].take()
            {
                // An emptied table keeps its peak allocation (and maybe
                // stale deadlines) until dropped: one element to free.
                let bytes = table.map.allocation_size()
                    + table.deadlines.capacity() * std::mem::size_of::<Deadline>();
                lazyfree::free(table, 1, bytes);
            }
        }
    }

    fn push_deadline(&mut self, idx: usize, at: u64, key: &[u8]) {
        let abs_slot = self.first_slot + idx as u16;
        let Some(slot) = self.tables[idx].as_deref_mut() else {
            return;
        };
        let earlier = slot.earliest().is_none_or(|e| at < e);
        let hash = slot.map.hash(key);
        slot.deadlines.push(Reverse((at, hash)));
        if slot.deadlines.len() > 2 * slot.volatile + SLOT_HEAP_SLACK {
            slot.compact();
        }
        if earlier {
            self.timers.push(Reverse((at, abs_slot)));
            if self.timers.len() > 2 * self.tables.len() + SLOT_HEAP_SLACK {
                self.rebuild_timers();
            }
        }
    }

    /// One timer per slot holding deadlines, at its earliest one.
    fn rebuild_timers(&mut self) {
        let first = self.first_slot;
        self.timers = self
            .tables
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some(Reverse((s.as_deref()?.earliest()?, first + i as u16))))
            .collect();
    }

    /// The active expiry cycle: deletes keys whose deadline is due, examining
    /// at most `budget` deadline entries. Returns the number of keys deleted.
    pub fn active_expire(&mut self, now: u64, budget: usize) -> usize {
        let mut deleted = 0;
        let mut examined = 0;
        while examined < budget {
            match self.timers.peek() {
                Some(Reverse((at, _))) if *at <= now => {}
                _ => break,
            }
            let Some(Reverse((_, abs_slot))) = self.timers.pop() else {
                break;
            };
            if !self.owns(abs_slot) {
                continue;
            }
            let idx = usize::from(abs_slot - self.first_slot);
            // Pop this slot's due deadlines.
            while examined < budget {
                let Some(slot) = self.tables[idx].as_deref_mut() else {
                    break;
                };
                let Some(&Reverse((at, hash))) = slot.deadlines.peek().filter(|d| d.0.0 <= now)
                else {
                    break;
                };
                slot.deadlines.pop();
                examined += 1;
                let Some((key, _)) = slot.holder(at, hash) else {
                    continue;
                };
                let key: SmallVec<[u8; 64]> = SmallVec::from_slice(key.as_bytes());
                if self.lookup(&key, now).is_none() {
                    deleted += 1;
                }
            }
            // Come back for the rest of this slot's deadlines.
            if let Some(next) = self.tables[idx].as_deref().and_then(Slot::earliest) {
                self.timers.push(Reverse((next, abs_slot)));
            }
        }
        deleted
    }

    /// Evicts one key as `policy` chooses: among a random sample of
    /// [`EVICTION_SAMPLES`] live candidates (keys with a deadline for the
    /// `volatile-*` policies, any key for `allkeys-*`), the least recently
    /// used, the nearest deadline or the first drawn. Returns the bytes
    /// freed, or `None` if no key can be evicted.
    pub fn evict_one(&mut self, now: u64, policy: Eviction) -> Option<usize> {
        let key = match policy {
            Eviction::NoEviction => return None,
            p if p.volatile() => self.volatile_candidate(p)?,
            p => self.any_candidate(p)?,
        };
        let before = self.used_bytes;
        // An already expired key is reclaimed as expired, not counted evicted.
        if self.remove(&key, now) {
            self.stats.evicted += 1;
            self.notify.record(notify::EVICTED, "evicted", &key);
        }
        Some(before - self.used_bytes)
    }

    /// Slot indexes to draw samples from: random ones first, then a walk
    /// from a random start (which finds the slots holding keys when they
    /// are few).
    fn sample_slots(&self) -> impl Iterator<Item = usize> + use<> {
        let mut rng = rand::rng();
        let n = self.tables.len();
        let start = rng.random_range(0..n);
        let random: Vec<usize> = (0..EVICTION_SAMPLES * 8)
            .map(|_| rng.random_range(0..n))
            .collect();
        random
            .into_iter()
            .chain((0..n).map(move |i| (start + i) % n))
    }

    /// The `volatile-*` candidate: sampled from the slots' deadline heaps.
    fn volatile_candidate(&mut self, policy: Eviction) -> Option<Box<[u8]>> {
        if self.volatile == 0 {
            return None;
        }
        let mut rng = rand::rng();
        let mut best: Option<(u64, Box<[u8]>)> = None;
        let mut found = 0;
        for idx in self.sample_slots() {
            let Some(slot) = self.tables[idx].as_deref().filter(|s| s.volatile > 0) else {
                continue;
            };
            let heap = slot.deadlines.as_slice();
            let Reverse((at, hash)) = heap[rng.random_range(0..heap.len())];
            let Some((name, e)) = slot.holder(at, hash) else {
                continue;
            };
            let score = policy.score(name.stamp(), e);
            if best.as_ref().is_none_or(|(b, _)| score < *b) {
                best = Some((score, name.as_bytes().into()));
            }
            found += 1;
            if found == EVICTION_SAMPLES {
                break;
            }
        }
        if let Some((_, key)) = best {
            return Some(key);
        }
        // Only stale entries drawn: compact the volatile slots, take any live one.
        for slot in self.tables.iter_mut().flatten() {
            slot.compact();
        }
        self.tables.iter().flatten().find_map(|s| {
            let &Reverse((at, hash)) = s.deadlines.peek()?;
            s.holder(at, hash).map(|(k, _)| k.as_bytes().into())
        })
    }

    /// The `allkeys-*` candidate: sampled from the slots' tables by position.
    fn any_candidate(&self, policy: Eviction) -> Option<Box<[u8]>> {
        if self.keys == 0 {
            return None;
        }
        let mut rng = rand::rng();
        let mut best: Option<(u64, Box<[u8]>)> = None;
        let mut found = 0;
        for idx in self.sample_slots() {
            let Some(slot) = self.tables[idx].as_deref().filter(|s| !s.map.is_empty()) else {
                continue;
            };
            let Some((key, e)) = slot.map.at(rng.random_range(0..slot.map.len())) else {
                continue;
            };
            let score = policy.score(key.stamp(), e);
            if best.as_ref().is_none_or(|(b, _)| score < *b) {
                best = Some((score, Box::from(key.as_bytes())));
            }
            found += 1;
            if found == EVICTION_SAMPLES {
                break;
            }
        }
        best.map(|(_, key)| key)
    }

    /// Deletes every entry: the old slot tables go to [`lazyfree`] whole
    /// (when the old keyspace drops, see its `Drop`).
    pub fn flush(&mut self) {
        let (first, last) = (self.first_slot, self.last_slot());
        let (stats, mutations) = (self.stats, self.mutations);
        *self = Keyspace::new(first, last);
        self.stats = stats;
        self.mutations = mutations + 1;
    }

    /// One step of SCAN over this partition's slots, from `cursor` (see
    /// [`ScanCursor`]). Visits at most `count * 10` entries, each live one
    /// offered to `keep`, and stops once `count` keys are kept; slots
    /// without keys are passed over without counting against that budget
    /// (they are at most the partition's slots), but counted in
    /// [`ScanStep::slots`] for metering. Inside a slot it walks
    /// the table's scan positions downwards from where the cursor left off,
    /// which returns every key present for the whole scan at least once
    /// whatever the table does between calls (see `keyspace/table.rs`), and moves to
    /// the next slot when it reaches position 0. Returns the keys kept, where
    /// to continue (possibly past this partition's range; `None` after the
    /// last slot of the keyspace), the entries visited and the slots walked.
    pub fn scan(
        &self,
        cursor: ScanCursor,
        count: usize,
        now: u64,
        mut keep: impl FnMut(&[u8], &Entry) -> bool,
    ) -> ScanStep {
        let budget = count.max(1).saturating_mul(10);
        let mut keys = Vec::new();
        let (mut visited, mut slots) = (0usize, 0u64);
        let mut cur = cursor;
        while self.owns(cur.slot) && keys.len() < count && visited < budget {
            slots += 1;
            let table = self.tables[usize::from(cur.slot - self.first_slot)]
                .as_deref()
                .map(|s| &s.map);
            // Positions still to visit in this slot: 0..below.
            let len = table.map_or(0, KeyTable::len);
            let mut below = match cur.pos {
                0 => len,
                pos => usize::try_from(pos).map_or(len, |p| p.min(len)),
            };
            if let Some(t) = table {
                while below > 0 && keys.len() < count && visited < budget {
                    below -= 1;
                    visited += 1;
                    if let Some((k, e)) = t.at(below)
                        && !e.is_expired(now)
                        && keep(k, e)
                    {
                        keys.push(Box::from(k.as_bytes()));
                    }
                }
            }
            if below > 0 {
                cur.pos = below as u64;
            } else if cur.slot == SLOTS - 1 {
                return ScanStep {
                    keys,
                    next: None,
                    visited: visited as u64,
                    slots,
                };
            } else {
                cur = ScanCursor {
                    slot: cur.slot + 1,
                    pos: 0,
                };
            }
        }
        ScanStep {
            keys,
            next: Some(cur),
            visited: visited as u64,
            slots,
        }
    }

    /// A key drawn uniformly from the live keys (RANDOMKEY), or `None` if
    /// there are none. Each draw picks a rank among all keys and walks the
    /// slot tables' lengths to find it: at most one pass over the slots
    /// (16,384), never over the keys. A drawn key whose deadline has passed
    /// is reclaimed and another drawn, at most [`RANDOM_KEY_TRIES`] times (an
    /// expired key found last is returned as missing). Returns the key and
    /// the slots walked (the caller meters them).
    pub fn random_key(&mut self, now: u64) -> (Option<Box<[u8]>>, u64) {
        let mut rng = rand::rng();
        let mut walked = 0u64;
        for _ in 0..RANDOM_KEY_TRIES {
            if self.keys == 0 {
                return (None, walked);
            }
            let mut rank = rng.random_range(0..self.keys);
            let mut found = None;
            for slot in self.tables.iter().flatten() {
                walked += 1;
                let len = slot.map.len();
                if rank < len {
                    found = slot
                        .map
                        .at(rank)
                        .map(|(k, e)| (Box::from(k.as_bytes()), e.is_expired(now)));
                    break;
                }
                rank -= len;
            }
            match found {
                Some((key, false)) => return (Some(key), walked),
                Some((key, true)) => {
                    self.lookup(&key, now);
                }
                None => return (None, walked),
            }
        }
        (None, walked)
    }

    /// Bytes stored in each slot of the range, in slot order.
    pub fn slot_bytes(&self) -> Vec<usize> {
        self.tables
            .iter()
            .map(|s| s.as_deref().map_or(0, |s| s.bytes))
            .collect()
    }

    /// Keys stored in `slot`.
    pub fn keys_in_slot_count(&self, slot: u16) -> usize {
        if !self.owns(slot) {
            return 0;
        }
        self.tables[(slot - self.first_slot) as usize]
            .as_deref()
            .map_or(0, |s| s.map.len())
    }

    /// Keys stored in `slot` (at most `limit`).
    pub fn keys_in_slot(&self, slot: u16, limit: usize) -> Vec<Box<[u8]>> {
        if !self.owns(slot) {
            return Vec::new();
        }
        self.tables[(slot - self.first_slot) as usize]
            .as_deref()
            .into_iter()
            .flat_map(|s| s.map.iter())
            .take(limit)
            .map(|(k, _)| Box::from(k.as_bytes()))
            .collect()
    }

    /// Split: moves the slots `at..=last` into a new keyspace and returns it.
    /// Slots move whole, with their deadlines: O(slots), never O(keys).
    pub fn split_off(&mut self, at: u16) -> Keyspace {
        assert!(
            at > self.first_slot && at <= self.last_slot(),
            "split point outside the range"
        );
        let cut = usize::from(at - self.first_slot);
        let tables = self.tables.split_off(cut);
        let mut right = Keyspace {
            first_slot: at,
            tables,
            keys: 0,
            used_bytes: 0,
            volatile: 0,
            timers: BinaryHeap::new(),
            mutations: 0,
            stats: KeyspaceStats::default(),
            no_touch: false,
            notify: Notifications::default(),
        };
        self.mutations += 1;
        self.recount();
        right.recount();
        right
    }

    /// Merge: takes over every slot of `right`, which must start where this
    /// range ends. O(slots), like [`Keyspace::split_off`].
    pub fn absorb(&mut self, right: Keyspace) {
        assert_eq!(
            right.first_slot,
            self.last_slot() + 1,
            "merge of non-adjacent ranges"
        );
        let mut right = right;
        self.tables.extend(std::mem::take(&mut right.tables));
        (right.keys, right.used_bytes) = (0, 0);
        self.stats += right.stats;
        self.recount();
    }

    /// Recomputes the totals and timers from the slots (after a split or merge).
    fn recount(&mut self) {
        let slots = self.tables.iter().flatten();
        self.keys = slots.clone().map(|s| s.map.len()).sum();
        self.used_bytes = slots.clone().map(|s| s.bytes).sum();
        self.volatile = slots.map(|s| s.volatile).sum();
        self.rebuild_timers();
    }
}

/// A keyspace dropped with its data (a flush, a retired partition, a deleted
/// cache) frees its slot tables whole in the background when that is
/// expensive (see [`lazyfree`]).
impl Drop for Keyspace {
    fn drop(&mut self) {
        let tables = std::mem::take(&mut self.tables);
        lazyfree::free(tables, self.keys, self.used_bytes);
    }
}

/// Key names returned by SCAN-like walks.
pub type Keys = Vec<Box<[u8]>>;

/// One SCAN step of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanStep {
    /// The keys kept.
    pub keys: Keys,
    /// Where to continue; `None` when the keyspace's last slot is done.
    pub next: Option<ScanCursor>,
    /// Entries visited (the work done, expired and filtered-out ones too).
    pub visited: u64,
    /// Slots walked through, empty ones included (a slot the step resumes
    /// in or stops in counts once).
    pub slots: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.as_bytes().to_vec())
    }

    #[test]
    fn bytes_are_exact_through_changes() {
        let mut ks = Keyspace::whole();
        ks.insert(b"k", s("hello"), 0, 0);
        assert_eq!(ks.used_bytes(), 1 + 5 + ENTRY_OVERHEAD);
        {
            let mut e = ks.get_mut(b"k", 0).unwrap();
            if let Value::Str(v) = e.value_mut() {
                v.extend_from_slice(b" world");
            }
        }
        assert_eq!(ks.used_bytes(), 1 + 11 + ENTRY_OVERHEAD);
        ks.insert(b"k", s("x"), 0, 0);
        assert_eq!(ks.used_bytes(), 1 + 1 + ENTRY_OVERHEAD);
        assert_eq!(ks.len(), 1);
        ks.remove(b"k", 0);
        assert_eq!((ks.used_bytes(), ks.len()), (0, 0));
    }

    #[test]
    fn lazy_and_active_expiry() {
        let mut ks = Keyspace::whole();
        ks.insert(b"a", s("1"), 100, 0);
        ks.insert(b"b", s("1"), 200, 0);
        ks.insert(b"c", s("1"), 0, 0);
        assert!(ks.get(b"a", 99).is_some());
        assert!(ks.get(b"a", 100).is_none());
        assert_eq!(ks.len(), 2);
        // b's deadline moves later: the old heap entry is stale.
        ks.set_expire(b"b", Some(300), 0);
        assert_eq!(ks.active_expire(250, 100), 0);
        assert_eq!(ks.len(), 2);
        assert_eq!(ks.active_expire(300, 100), 1);
        assert_eq!(ks.len(), 1);
        assert_eq!(ks.volatile_keys(), 0);
        assert_eq!(ks.used_bytes(), 1 + 1 + ENTRY_OVERHEAD);
        assert_eq!(ks.stats.expired, 2);
    }

    #[test]
    fn eviction_takes_volatile_keys_least_recently_used_first() {
        // Sampling is approximate: one round of 50 evictions takes 42 old
        // keys on average (3,000 rounds: 32 to 48; sampling without regard
        // to use would take 25). The sum over five rounds is judged,
        // seven standard deviations from what LRU sampling gives.
        let mut evicted_old = 0;
        for _ in 0..5 {
            let mut ks = Keyspace::whole();
            let t0 = 1_000_000;
            for i in 0..50 {
                ks.insert(format!("persistent:{i}").as_bytes(), s("v"), 0, t0);
            }
            for i in 0..50 {
                ks.insert(format!("old:{i}").as_bytes(), s("v"), t0 + 3_600_000, t0);
            }
            // Recently used volatile keys.
            for i in 0..50 {
                ks.insert(
                    format!("new:{i}").as_bytes(),
                    s("v"),
                    t0 + 3_600_000,
                    t0 + 100_000,
                );
            }
            for _ in 0..50 {
                let before = ks.len();
                assert!(ks.evict_one(t0 + 100_000, Eviction::VolatileLru).unwrap() > 0);
                assert_eq!(ks.len(), before - 1);
            }
            evicted_old += (0..50)
                .filter(|i| ks.peek(format!("old:{i}").as_bytes()).is_none())
                .count();
            while ks.evict_one(t0 + 100_000, Eviction::VolatileLru).is_some() {}
            assert_eq!(ks.len(), 50, "keys without TTL are never evicted");
            assert_eq!(ks.stats.evicted, 100);
            assert!((0..50).all(|i| ks.peek(format!("persistent:{i}").as_bytes()).is_some()));
        }
        assert!(
            evicted_old >= 175,
            "only {evicted_old} of 250 evictions took old keys"
        );
    }

    #[test]
    fn eviction_policies_choose_their_candidates() {
        let t0 = 1_000_000;
        let gone = |ks: &Keyspace, prefix: &str| {
            (0..50)
                .filter(|i| ks.peek(format!("{prefix}:{i}").as_bytes()).is_none())
                .count()
        };
        // allkeys-lru: keys without a TTL too, the least recently used first.
        let mut ks = Keyspace::whole();
        for i in 0..50 {
            ks.insert(format!("old:{i}").as_bytes(), s("v"), 0, t0);
            ks.insert(format!("new:{i}").as_bytes(), s("v"), 0, t0 + 100_000);
        }
        for _ in 0..50 {
            assert!(ks.evict_one(t0 + 100_000, Eviction::AllkeysLru).is_some());
        }
        assert!(
            gone(&ks, "old") >= 35,
            "{} old keys evicted",
            gone(&ks, "old")
        );
        while ks.evict_one(t0, Eviction::AllkeysRandom).is_some() {}
        assert_eq!(ks.len(), 0, "allkeys-random empties the keyspace");
        assert_eq!(ks.used_bytes(), 0);
        // volatile-ttl: the nearest deadline first; volatile-random and
        // noeviction never take a key without one.
        for i in 0..50 {
            ks.insert(format!("soon:{i}").as_bytes(), s("v"), t0 + 1_000, t0);
            ks.insert(format!("late:{i}").as_bytes(), s("v"), t0 + 1_000_000, t0);
            ks.insert(format!("kept:{i}").as_bytes(), s("v"), 0, t0);
        }
        assert!(ks.evict_one(t0, Eviction::NoEviction).is_none());
        for _ in 0..50 {
            assert!(ks.evict_one(t0, Eviction::VolatileTtl).is_some());
        }
        assert!(
            gone(&ks, "soon") >= 35,
            "{} soon keys evicted",
            gone(&ks, "soon")
        );
        while ks.evict_one(t0, Eviction::VolatileRandom).is_some() {}
        assert_eq!(ks.len(), 50);
        assert_eq!(gone(&ks, "kept"), 0);
        assert_eq!(ks.stats.evicted, 200);
    }

    /// Prefetching reads only: an expired key stays until a lookup finds
    /// it, no hit, miss or access time changes, and keys of slots the
    /// keyspace does not own are passed over.
    #[test]
    fn prefetch_changes_nothing() {
        let t0 = 1_000_000;
        let mut ks = Keyspace::whole();
        let long = "a value longer than one cache line of sixty-four bytes, to reach its end";
        ks.insert(b"live", s(long), 0, t0);
        ks.insert(b"gone", s("v"), t0 + 10, t0);
        ks.insert(b"h", Value::Hash(Default::default()), 0, t0);
        let later = t0 + 60_000;
        let keys: Vec<(u16, &[u8])> = [&b"live"[..], b"gone", b"absent", b"h"]
            .into_iter()
            .map(|k| (key_slot(k), k))
            .collect();
        let (stats, len, bytes) = (ks.stats, ks.len(), ks.used_bytes());
        ks.prefetch(&keys);
        Keyspace::new(0, 0).prefetch(&keys);
        assert_eq!((ks.stats, ks.len(), ks.used_bytes()), (stats, len, bytes));
        assert_eq!(ks.idle_secs(b"live", later), Some(60));
        assert!(ks.get(b"gone", later).is_none());
        assert_eq!(
            ks.stats.expired, 1,
            "the lookup, not the prefetch, expired it"
        );
    }

    #[test]
    fn split_and_merge_move_slots_and_keep_accounting_exact() {
        let mut ks = Keyspace::whole();
        for i in 0..3000 {
            let ttl = if i % 3 == 0 { 1_000_000 } else { 0 };
            ks.insert(format!("k{i}").as_bytes(), s("value"), ttl, 0);
        }
        let (keys, bytes, volatile) = (ks.len(), ks.used_bytes(), ks.volatile_keys());
        let mut right = ks.split_off(8192);
        assert_eq!((ks.first_slot(), ks.last_slot()), (0, 8191));
        assert_eq!((right.first_slot(), right.last_slot()), (8192, 16383));
        assert_eq!(ks.len() + right.len(), keys);
        assert_eq!(ks.used_bytes() + right.used_bytes(), bytes);
        assert_eq!(ks.volatile_keys() + right.volatile_keys(), volatile);
        assert_eq!(ks.slot_bytes().iter().sum::<usize>(), ks.used_bytes());
        // Each side answers for its own keys and expires its own deadlines.
        for i in 0..3000 {
            let key = format!("k{i}");
            let side = if key_slot(key.as_bytes()) < 8192 {
                &mut ks
            } else {
                &mut right
            };
            assert!(side.get(key.as_bytes(), 0).is_some());
        }
        assert_eq!(
            ks.active_expire(2_000_000, 10_000) + right.active_expire(2_000_000, 10_000),
            1000
        );
        ks.absorb(right);
        assert_eq!((ks.first_slot(), ks.last_slot()), (0, 16383));
        assert_eq!(ks.len(), 2000);
        assert_eq!(ks.used_bytes(), ks.slot_bytes().iter().sum::<usize>());
        assert_eq!(ks.volatile_keys(), 0);
    }

    #[test]
    fn stale_deadlines_are_compacted() {
        let mut ks = Keyspace::whole();
        ks.insert(b"s", s("1"), 10, 0);
        for t in 0..10_000 {
            ks.set_expire(b"s", Some(1_000 + t), 0);
        }
        let slot = &ks.tables[usize::from(key_slot(b"s"))].as_ref().unwrap();
        assert!(slot.deadlines.len() <= 2 * slot.volatile + SLOT_HEAP_SLACK + 1);
        assert!(ks.timers.len() <= 2 * ks.tables.len() + SLOT_HEAP_SLACK + 1);
    }

    /// A deadline names its key by the hash the slot's table files it
    /// under: the active cycle expires exactly the due keys of a crowded
    /// slot, skips entries left stale by a TTL change, a PERSIST or a
    /// delete, and a key recreated with its old deadline still expires.
    #[test]
    fn the_active_cycle_expires_exactly_the_due_keys_of_a_slot() {
        let mut ks = Keyspace::whole();
        let key = |i: usize| format!("{{t}}k{i}").into_bytes();
        for i in 0..2_000 {
            ks.insert(&key(i), s("v"), 1_000 + (i as u64 % 50), 0);
        }
        for i in (0..2_000).step_by(7) {
            ks.set_expire(&key(i), Some(5_000), 0);
        }
        for i in (1..2_000).step_by(11) {
            ks.set_expire(&key(i), None, 0);
        }
        for i in (2..2_000).step_by(13) {
            assert!(ks.remove(&key(i), 0));
        }
        ks.insert(&key(2), s("again"), 1_000 + 2, 0);
        let expected = |i: usize, now: u64| -> bool {
            // Whether key i is still there at `now`.
            if i == 2 {
                return now < 1_002;
            }
            if i % 13 == 2 {
                return false;
            }
            if i % 11 == 1 {
                return true;
            }
            let at = if i.is_multiple_of(7) {
                5_000
            } else {
                1_000 + i as u64 % 50
            };
            now < at
        };
        for now in [999, 1_010, 1_049, 1_050, 4_999, 5_000] {
            ks.active_expire(now, usize::MAX);
            for i in 0..2_000 {
                let there = ks.tables[usize::from(key_slot(&key(i)))]
                    .as_ref()
                    .is_some_and(|slot| slot.map.get(&key(i)).is_some());
                assert_eq!(there, expected(i, now), "key {i} at {now}");
            }
        }
    }

    /// Runs a SCAN to its end with `count` per call, calling `between`
    /// before each call; returns the keys returned (with repeats) and the
    /// number of calls.
    fn scan_all(
        ks: &mut Keyspace,
        count: usize,
        mut between: impl FnMut(&mut Keyspace, usize),
    ) -> (Vec<Vec<u8>>, usize) {
        let mut out = Vec::new();
        let mut cursor = Some(ScanCursor::default());
        let mut calls = 0;
        while let Some(c) = cursor {
            between(ks, calls);
            // Through the integer form, as a client would.
            let c = ScanCursor::decode(c.encode());
            let step = ks.scan(c, count, 0, |_, _| true);
            assert!(step.visited <= 10 * count as u64);
            out.extend(step.keys.into_iter().map(|k| k.to_vec()));
            cursor = step.next;
            calls += 1;
            assert!(calls < 1_000_000, "SCAN does not end");
        }
        (out, calls)
    }

    #[test]
    fn scan_returns_every_key_once_in_small_steps() {
        let mut ks = Keyspace::whole();
        for i in 0..2000 {
            ks.insert(format!("key:{i}").as_bytes(), s("v"), 0, 0);
        }
        // All keys in one slot, to exercise positions inside a slot.
        for i in 0..500 {
            ks.insert(format!("{{tag}}:{i}").as_bytes(), s("v"), 0, 0);
        }
        let (keys, calls) = scan_all(&mut ks, 7, |_, _| {});
        let seen: std::collections::HashSet<_> = keys.iter().cloned().collect();
        assert_eq!((keys.len(), seen.len()), (2500, 2500), "each key once");
        assert!(calls > 100);
        let c = ScanCursor {
            slot: 77,
            pos: 123456,
        };
        assert_eq!(ScanCursor::decode(c.encode()), c);
    }

    /// A set just big enough to be freed in the background.
    fn big_set() -> Value {
        let mut set = crate::partition::SetValue::default();
        for i in 0..=lazyfree::LAZYFREE_ELEMENTS {
            set.insert(format!("member:{i}").as_bytes());
        }
        Value::Set(Box::new(set))
    }

    #[test]
    fn dropped_values_are_freed_in_the_background_with_exact_accounting() {
        use crate::partition::lazyfree::tests::deferred_here;
        let mut ks = Keyspace::whole();
        let n = deferred_here();
        // Delete.
        ks.insert(b"a", big_set(), 0, 0);
        assert!(ks.remove(b"a", 0));
        assert_eq!((ks.len(), ks.used_bytes()), (0, 0));
        assert_eq!(deferred_here(), n + 1);
        // Overwrite (SET over a big value, RENAME over an existing key).
        ks.insert(b"a", big_set(), 0, 0);
        assert!(ks.insert(b"a", s("small"), 0, 0));
        assert_eq!(ks.used_bytes(), 1 + 5 + ENTRY_OVERHEAD);
        assert_eq!(deferred_here(), n + 2);
        ks.insert(
            b"big",
            Value::Str(vec![0; lazyfree::LAZYFREE_BYTES + 1]),
            0,
            0,
        );
        ks.insert(b"big", s("x"), 0, 0);
        assert_eq!(deferred_here(), n + 3);
        // Lazy and active expiry, eviction.
        ks.insert(b"e1", big_set(), 10, 0);
        ks.insert(b"e2", big_set(), 10, 0);
        ks.insert(b"e3", big_set(), 1_000_000, 0);
        assert!(ks.get(b"e1", 10).is_none());
        assert_eq!(ks.active_expire(10, 100), 1);
        assert!(ks.evict_one(10, Eviction::VolatileLru).is_some());
        assert_eq!(deferred_here(), n + 6);
        assert_eq!(ks.len(), 2);
        assert_eq!(
            ks.used_bytes(),
            (1 + 5 + ENTRY_OVERHEAD) + (3 + 1 + ENTRY_OVERHEAD)
        );
        // Small values are freed inline.
        assert!(ks.remove(b"a", 0));
        assert_eq!(deferred_here(), n + 6);
        // Taking a value hands it over: nothing is freed.
        ks.insert(b"t", big_set(), 0, 0);
        let taken = ks.take(b"t", 0).map(|e| e.value);
        assert_eq!(taken, Some(big_set()));
        assert_eq!(deferred_here(), n + 6);
        // A flush (like a retired keyspace) hands its tables over whole.
        for i in 0..=lazyfree::LAZYFREE_ELEMENTS {
            ks.insert(format!("k{i}").as_bytes(), s("v"), 0, 0);
        }
        ks.flush();
        assert_eq!((ks.len(), ks.used_bytes()), (0, 0));
        assert_eq!(deferred_here(), n + 7);
    }

    #[test]
    fn deleting_a_large_set_counts_a_background_free() {
        let mut ks = Keyspace::whole();
        let before = lazyfree::freed_in_background();
        ks.insert(b"s", big_set(), 0, 0);
        ks.remove(b"s", 0);
        lazyfree::sync();
        assert!(lazyfree::freed_in_background() > before);
    }

    /// Keys present for the whole scan are returned even while their slot's
    /// table grows several times over, churns (rehashing away deleted
    /// buckets) and shrinks between calls.
    #[test]
    fn scan_keeps_stable_keys_while_the_slot_table_changes() {
        let mut ks = Keyspace::whole();
        let stable = |i: usize| format!("{{t}}stable:{i}").into_bytes();
        for i in 0..3000 {
            ks.insert(&stable(i), s("v"), 0, 0);
        }
        let mut next_churn = 0usize;
        let (keys, _) = scan_all(&mut ks, 10, |ks, call| {
            // Grow: 100 new keys per call for a while (the table doubles
            // several times), then churn and shrink.
            if call < 200 {
                for _ in 0..100 {
                    ks.insert(format!("{{t}}churn:{next_churn}").as_bytes(), s("v"), 0, 0);
                    next_churn += 1;
                }
            } else if next_churn > 0 {
                for _ in 0..150 {
                    if next_churn == 0 {
                        break;
                    }
                    next_churn -= 1;
                    ks.remove(format!("{{t}}churn:{next_churn}").as_bytes(), 0);
                }
            }
            ks.tables[usize::from(key_slot(b"{t}"))]
                .as_ref()
                .unwrap()
                .map
                .check();
        });
        let seen: std::collections::HashSet<_> = keys.into_iter().collect();
        for i in 0..3000 {
            assert!(seen.contains(&stable(i)), "stable:{i} missed");
        }
    }

    /// Keys deleted between calls (so the last positions move into their
    /// holes) may come back twice; stable keys come back at least once.
    #[test]
    fn scan_keeps_stable_keys_while_others_are_deleted() {
        let mut ks = Keyspace::whole();
        for i in 0..4000 {
            let kind = if i % 2 == 0 { "stable" } else { "doomed" };
            ks.insert(format!("{{t}}{kind}:{i}").as_bytes(), s("v"), 0, 0);
        }
        let mut doomed = (1..4000).step_by(2);
        let (keys, _) = scan_all(&mut ks, 5, |ks, _| {
            for i in doomed.by_ref().take(7) {
                ks.remove(format!("{{t}}doomed:{i}").as_bytes(), 0);
            }
        });
        let seen: std::collections::HashSet<_> = keys.into_iter().collect();
        for i in (0..4000).step_by(2) {
            assert!(seen.contains(format!("{{t}}stable:{i}").as_bytes()), "{i}");
        }
    }

    /// A cursor names a slot and a position in it, not a partition: a scan
    /// goes on across a split and a merge between calls.
    #[test]
    fn scan_goes_on_across_split_and_merge() {
        let mut left = Keyspace::whole();
        for i in 0..3000 {
            left.insert(format!("k{i}").as_bytes(), s("v"), 0, 0);
            left.insert(format!("{{x}}{i}").as_bytes(), s("v"), 0, 0);
        }
        let mut right: Option<Keyspace> = None;
        let mut seen = std::collections::HashSet::new();
        let mut cursor = Some(ScanCursor::default());
        let mut calls = 0;
        while let Some(c) = cursor {
            // Split in the middle at call 100, merge back at call 300.
            if calls == 100 {
                right = Some(left.split_off(8192));
            }
            if calls == 300
                && let Some(r) = right.take()
            {
                left.absorb(r);
            }
            let part = match &right {
                Some(r) if r.owns(c.slot) => r,
                _ => &left,
            };
            let step = part.scan(c, 10, 0, |_, _| true);
            seen.extend(step.keys);
            cursor = step.next;
            calls += 1;
        }
        assert!(calls > 300);
        assert_eq!(seen.len(), 6000);
    }

    /// With a filter that keeps nothing, each call visits at most COUNT * 10
    /// entries and says so: a slot of many keys costs many cheap calls, not
    /// one expensive one per call.
    #[test]
    fn scan_work_per_call_is_bounded() {
        let mut ks = Keyspace::whole();
        for i in 0..20_000 {
            ks.insert(format!("{{big}}{i}").as_bytes(), s("v"), 0, 0);
        }
        let mut cursor = Some(ScanCursor::default());
        let (mut calls, mut visited) = (0, 0);
        while let Some(c) = cursor {
            let step = ks.scan(c, 10, 0, |_, _| false);
            assert!(step.keys.is_empty());
            assert!(step.visited <= 100);
            visited += step.visited;
            cursor = step.next;
            calls += 1;
        }
        assert_eq!(visited, 20_000);
        // 200 calls for the big slot, one for the empty slots after it.
        assert_eq!(calls, 201);
    }

    /// A step counts the slots it walks, empty ones too: from cursor 0 to
    /// a key in a late slot, every slot before it.
    #[test]
    fn scan_counts_the_slots_it_walks() {
        let mut ks = Keyspace::whole();
        let key = b"{late}";
        let slot = crate::partition::key_slot(key);
        ks.insert(key, s("v"), 0, 0);
        let step = ks.scan(ScanCursor::default(), 10, 0, |_, _| true);
        assert_eq!(step.keys.len(), 1);
        assert_eq!(step.visited, 1);
        // It found its key in `slot` and went on to the end of the range.
        assert_eq!(step.slots, u64::from(SLOTS));
        assert_eq!(step.next, None);
        let step = ks.scan(ScanCursor::default(), 1, 0, |_, _| true);
        assert_eq!(step.slots, u64::from(slot) + 1, "stops in the key's slot");
    }

    #[test]
    fn no_touch_reads_leave_the_idle_time() {
        let mut ks = Keyspace::whole();
        ks.insert(b"k", s("v"), 0, 1_000);
        ks.get_no_touch(b"k", 6_000).unwrap();
        assert_eq!(ks.idle_secs(b"k", 6_000).unwrap(), 5);
        assert_eq!(ks.stats.hits, 1);
        ks.get(b"k", 7_000).unwrap();
        assert_eq!(ks.idle_secs(b"k", 8_000).unwrap(), 1);
        // CLIENT NO-TOUCH: reads leave it, TOUCH still updates it.
        ks.no_touch = true;
        ks.get(b"k", 9_000).unwrap();
        assert_eq!(ks.idle_secs(b"k", 9_000).unwrap(), 2);
        ks.get_touch(b"k", 9_000).unwrap();
        assert_eq!(ks.idle_secs(b"k", 9_000).unwrap(), 0);
        assert!(ks.no_touch);
    }

    #[test]
    fn a_table_entry_is_56_bytes() {
        // The access stamp lives in the name's spare bytes (`key.rs`).
        assert_eq!(std::mem::size_of::<Entry>(), 32);
        assert_eq!(
            std::mem::size_of::<(crate::partition::key::Key, Entry)>(),
            56
        );
    }

    #[test]
    fn set_idle_backdates_the_last_access() {
        let mut ks = Keyspace::whole();
        let now = 1_700_000_000_000;
        ks.insert(b"k", Value::Str(b"v".to_vec()), 0, now);
        assert!(ks.set_idle(b"k", 100, now));
        assert_eq!(ks.idle_secs(b"k", now), Some(100));
        assert!(!ks.set_idle(b"missing", 1, now));
        // A read makes it recent again.
        ks.get(b"k", now);
        assert_eq!(ks.idle_secs(b"k", now), Some(0));
    }
}
