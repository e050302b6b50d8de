//! The keyspace of one partition: entries bucketed by hash slot.
//!
//! Invariants:
//! - every key lives in the table of its slot, and the partition owns that slot;
//! - `used_bytes` equals the sum over entries of key + value + [`ENTRY_OVERHEAD`],
//!   kept exact on every insert, remove and in-place change ([`EntryMut`]);
//! - a key whose deadline has passed is never returned: lookups delete it
//!   (lazy expiry), and [`Keyspace::active_expire`] pops due deadlines from a
//!   heap, so keys that are never read again are reclaimed without walking the
//!   keyspace. Heap entries can be stale (TTL changed, key deleted); they are
//!   checked against the entry when popped, and compacted when they outnumber
//!   live deadlines two to one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{Hash, Hasher};

use hashbrown::HashMap;
use hashbrown::hash_map::EntryRef;

use super::slot::{SLOTS, key_slot};
use super::value::{ENTRY_OVERHEAD, Value};

type Table = HashMap<Box<[u8]>, Entry>;

/// A stored value with its deadline.
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
}

/// Counters of keyspace events, read by INFO and the metrics exporter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyspaceStats {
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
}

/// A write handle on an entry: when dropped, the keyspace's byte total is
/// adjusted by however much the value grew or shrank.
pub struct EntryMut<'a> {
    entry: &'a mut Entry,
    used_bytes: &'a mut usize,
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
    }
}

/// The entries of one partition's slot range.
#[derive(Debug)]
pub struct Keyspace {
    first_slot: u16,
    tables: Vec<Option<Box<Table>>>,
    keys: usize,
    used_bytes: usize,
    volatile: usize,
    deadlines: BinaryHeap<Reverse<(u64, Box<[u8]>)>>,
    pub stats: KeyspaceStats,
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
            deadlines: BinaryHeap::new(),
            stats: KeyspaceStats::default(),
        }
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

    fn table_mut(&mut self, key: &[u8]) -> Option<&mut Table> {
        let idx = self.index(key);
        self.tables[idx].as_deref_mut()
    }

    fn index(&self, key: &[u8]) -> usize {
        let slot = key_slot(key);
        debug_assert!(self.owns(slot), "slot {slot} not owned");
        (slot - self.first_slot) as usize
    }

    /// Read lookup: counts a hit or a miss; an expired key is deleted.
    pub fn get(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        let found = self.lookup(key, now).is_some();
        if found {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
        self.peek(key)
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
    fn peek(&self, key: &[u8]) -> Option<&Entry> {
        self.tables[self.index(key)].as_deref()?.get(key)
    }

    /// Finds `key`, deleting it if it has expired; returns its deadline (0 = none).
    fn lookup(&mut self, key: &[u8], now: u64) -> Option<u64> {
        let idx = self.index(key);
        let table = self.tables[idx].as_deref_mut()?;
        match table.entry_ref(key) {
            EntryRef::Vacant(_) => None,
            EntryRef::Occupied(o) if o.get().is_expired(now) => {
                let (k, e) = o.remove_entry();
                if table.is_empty() {
                    self.tables[idx] = None;
                }
                self.forget(&k, &e);
                self.stats.expired += 1;
                None
            }
            EntryRef::Occupied(o) => Some(o.get().expire_at),
        }
    }

    /// Write lookup: a handle that keeps the byte total exact (see [`EntryMut`]).
    pub fn get_mut(&mut self, key: &[u8], now: u64) -> Option<EntryMut<'_>> {
        self.lookup(key, now)?;
        let idx = self.index(key);
        let Keyspace {
            tables, used_bytes, ..
        } = self;
        let entry = tables[idx].as_deref_mut()?.get_mut(key)?;
        let before = entry.value.mem_bytes();
        Some(EntryMut {
            entry,
            used_bytes,
            before,
        })
    }

    /// Stores `value` under `key` with deadline `expire_at` (0 = none),
    /// replacing any entry; returns the live entry replaced.
    pub fn insert(&mut self, key: &[u8], value: Value, expire_at: u64, now: u64) -> Option<Entry> {
        self.lookup(key, now);
        let idx = self.index(key);
        let entry = Entry { value, expire_at };
        let added = entry.mem_bytes(key.len());
        let table = self.tables[idx].get_or_insert_with(Default::default);
        let old = match table.entry_ref(key) {
            EntryRef::Occupied(mut o) => Some(std::mem::replace(o.get_mut(), entry)),
            EntryRef::Vacant(v) => {
                v.insert_with_key(key.into(), entry);
                None
            }
        };
        if let Some(old) = &old {
            self.forget(key, old);
        }
        self.keys += 1;
        self.used_bytes += added;
        if expire_at != 0 {
            self.volatile += 1;
            self.push_deadline(expire_at, key);
        }
        old
    }

    /// Deletes `key`; returns the live entry removed.
    pub fn remove(&mut self, key: &[u8], now: u64) -> Option<Entry> {
        self.lookup(key, now)?;
        let idx = self.index(key);
        let table = self.tables[idx].as_deref_mut()?;
        let (k, e) = table.remove_entry(key)?;
        if table.is_empty() {
            self.tables[idx] = None;
        }
        self.forget(&k, &e);
        Some(e)
    }

    /// Sets (`Some`) or clears (`None`) the deadline of a live key; returns
    /// false if the key does not exist.
    pub fn set_expire(&mut self, key: &[u8], expire_at: Option<u64>, now: u64) -> bool {
        if self.lookup(key, now).is_none() {
            return false;
        }
        let new = expire_at.unwrap_or(0);
        let Some(entry) = self.table_mut(key).and_then(|t| t.get_mut(key)) else {
            return false;
        };
        let old = std::mem::replace(&mut entry.expire_at, new);
        match (old != 0, new != 0) {
            (false, true) => self.volatile += 1,
            (true, false) => self.volatile -= 1,
            _ => {}
        }
        if new != 0 && new != old {
            self.push_deadline(new, key);
        }
        true
    }

    /// Bookkeeping for an entry that left the table.
    fn forget(&mut self, key: &[u8], entry: &Entry) {
        self.keys -= 1;
        self.used_bytes -= entry.mem_bytes(key.len());
        if entry.expire_at != 0 {
            self.volatile -= 1;
        }
    }

    fn push_deadline(&mut self, at: u64, key: &[u8]) {
        self.deadlines.push(Reverse((at, key.into())));
        if self.deadlines.len() > 2 * self.volatile + 1024 {
            self.compact_deadlines();
        }
    }

    /// Drops heap entries that no longer match their key's deadline.
    fn compact_deadlines(&mut self) {
        let heap = std::mem::take(&mut self.deadlines);
        let mut live: Vec<_> = heap
            .into_vec()
            .into_iter()
            .filter(|Reverse((at, key))| self.peek(key).is_some_and(|e| e.expire_at == *at))
            .collect();
        live.sort_unstable();
        live.dedup();
        self.deadlines = BinaryHeap::from(live);
    }

    /// The active expiry cycle: deletes keys whose deadline is due, examining at
    /// most `budget` heap entries. Returns the number of keys deleted.
    pub fn active_expire(&mut self, now: u64, budget: usize) -> usize {
        let mut deleted = 0;
        for _ in 0..budget {
            match self.deadlines.peek() {
                Some(Reverse((at, _))) if *at <= now => {}
                _ => break,
            }
            let Some(Reverse((at, key))) = self.deadlines.pop() else {
                break;
            };
            let due = self.peek(&key).is_some_and(|e| e.expire_at == at);
            if due && self.lookup(&key, now).is_none() {
                deleted += 1;
            }
        }
        deleted
    }

    /// Deletes every entry.
    pub fn flush(&mut self) {
        let (first, last) = (self.first_slot, self.last_slot());
        let stats = self.stats;
        *self = Keyspace::new(first, last);
        self.stats = stats;
    }

    /// One step of SCAN over this partition's slots, from `cursor` (see
    /// [`ScanCursor`]). Collects at least `count` live keys that pass `keep`
    /// unless the range ends, visiting at most `count * 10` slots.
    /// Returns the keys and the cursor to continue from (which may point past
    /// this partition's range; `None` after the last slot of the keyspace).
    pub fn scan(
        &self,
        cursor: ScanCursor,
        count: usize,
        now: u64,
        mut keep: impl FnMut(&[u8], &Entry) -> bool,
    ) -> (Vec<Box<[u8]>>, Option<ScanCursor>) {
        let mut out = Vec::new();
        let mut cur = cursor;
        let mut visited = 0usize;
        while self.owns(cur.slot) && out.len() < count && visited < count.saturating_mul(10) {
            let table = self.tables[(cur.slot - self.first_slot) as usize].as_deref();
            // Empty slots cost next to nothing: only slots holding keys use the budget.
            visited += usize::from(table.is_some());
            let items = table
                .into_iter()
                .flatten()
                .filter(|(_, e)| !e.is_expired(now))
                .map(|(k, e)| (scan_position(k), (k, e)));
            let (batch, next_pos) = take_ordered(items, cur.pos, count - out.len());
            out.extend(
                batch
                    .into_iter()
                    .filter(|(k, e)| keep(k, e))
                    .map(|(k, _)| k.clone()),
            );
            match next_pos {
                Some(pos) => cur.pos = pos,
                None if cur.slot == SLOTS - 1 => return (out, None),
                None => {
                    cur = ScanCursor {
                        slot: cur.slot + 1,
                        pos: 0,
                    }
                }
            }
        }
        (out, Some(cur))
    }

    /// Keys stored in `slot` (at most `limit`).
    pub fn keys_in_slot(&self, slot: u16, limit: usize) -> Vec<Box<[u8]>> {
        if !self.owns(slot) {
            return Vec::new();
        }
        self.tables[(slot - self.first_slot) as usize]
            .as_deref()
            .into_iter()
            .flat_map(|t| t.keys())
            .take(limit)
            .cloned()
            .collect()
    }
}

/// A SCAN position: a slot and, inside it, a position in the order of
/// [`scan_position`]. Encoded in one integer as `pos << 14 | slot`, so it
/// survives splits and merges (it names slots, not partitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanCursor {
    pub slot: u16,
    pub pos: u64,
}

impl ScanCursor {
    pub fn encode(self) -> u64 {
        (self.pos << 14) | u64::from(self.slot)
    }

    pub fn decode(n: u64) -> ScanCursor {
        ScanCursor {
            slot: (n & 0x3FFF) as u16,
            pos: n >> 14,
        }
    }
}

/// A key's position in scan order: 50 bits of a hash fixed across processes
/// and table resizes, so a cursor stays meaningful between calls.
pub fn scan_position(key: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish() >> 14
}

/// Takes the items with position >= `from` in position order, at least `count`
/// of them (all items sharing the last position are taken together). Returns
/// them and the position to continue from, or `None` when nothing is left.
pub fn take_ordered<T>(
    items: impl Iterator<Item = (u64, T)>,
    from: u64,
    count: usize,
) -> (Vec<T>, Option<u64>) {
    let mut rest: Vec<(u64, T)> = items.filter(|(p, _)| *p >= from).collect();
    if rest.len() <= count.max(1) {
        return (rest.into_iter().map(|(_, t)| t).collect(), None);
    }
    let n = count.max(1);
    rest.select_nth_unstable_by_key(n - 1, |(p, _)| *p);
    let cut = rest[n - 1].0;
    let taken: Vec<T> = rest
        .into_iter()
        .filter(|(p, _)| *p <= cut)
        .map(|(_, t)| t)
        .collect();
    (taken, Some(cut + 1))
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
    fn stale_deadlines_are_compacted() {
        let mut ks = Keyspace::whole();
        ks.insert(b"s", s("1"), 10, 0);
        for t in 0..10_000 {
            ks.set_expire(b"s", Some(1_000 + t), 0);
        }
        assert!(ks.deadlines.len() <= 2 * ks.volatile_keys() + 1025);
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
        let mut seen = std::collections::HashSet::new();
        let mut cursor = Some(ScanCursor::default());
        let mut calls = 0;
        while let Some(c) = cursor {
            let (keys, next) = ks.scan(c, 7, 0, |_, _| true);
            for k in keys {
                assert!(seen.insert(k), "duplicate");
            }
            cursor = next;
            calls += 1;
        }
        assert_eq!(seen.len(), 2500);
        assert!(calls > 100);
        let c = ScanCursor {
            slot: 77,
            pos: 123456,
        };
        assert_eq!(ScanCursor::decode(c.encode()), c);
    }
}
