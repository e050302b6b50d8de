//! [`KeyTable`]: the entries of one hash slot — a dense vector of
//! `(key, entry)` that SCAN resumes in, and a hashbrown table of positions
//! in that vector for lookups (the layout of `indexmap`).
//!
//! Why two parts:
//! - **SCAN.** A hash table's bucket order cannot carry a SCAN cursor across
//!   a resize in open addressing (an entry's bucket depends on its
//!   neighbours, not only on its hash, so Redis's reverse-binary cursor does
//!   not apply), and a cursor made of hash values costs a walk of the whole
//!   table per call. An entry's *position* in the dense vector survives
//!   every resize of the index: SCAN walks positions.
//! - **Memory.** A slot holds about 61 keys when a cache holds a million;
//!   hashbrown doubles at 7/8 full, so a table of 64-byte `(key, entry)`
//!   buckets sat at ~48% occupancy (128 buckets for 61 keys: 134 bytes of
//!   buckets per key). The index's buckets are 4 bytes, and the dense
//!   vector of 56-byte entries grows by a quarter at a time: ~73 bytes per
//!   key.
//!
//! Invariants:
//! - the index holds every position `0..entries.len()` exactly once, under
//!   the hash of the key at that position;
//! - a removal moves the *last* entry into the hole (swap-remove) and
//!   re-points its index bucket; an insert takes a new last position.
//!
//! Why a scan that walks positions downwards, from the last one to 0,
//! returns every entry present for the whole scan (see [`Keyspace::scan`]):
//! after visiting positions `c..len` it resumes below `c`. Between calls an
//! insert lands at the end (already "visited": a new key need not be
//! returned); a removal moves the last entry into the hole, so an entry only
//! ever moves from the end to a lower position: an entry not yet visited
//! (below `c`) stays below `c`, and a visited one may drop below `c` and be
//! returned twice (Redis returns duplicates too). Resizes move no position.
//!
//! [`Keyspace::scan`]: super::Keyspace::scan

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable, hash_table};

use super::Entry;
use crate::partition::key::Key;

/// Entries a table's vector grows by at least (then by a quarter of its length).
const MIN_GROWTH: usize = 4;

/// One slot's entries and their index (see the module doc).
#[derive(Debug, Default)]
pub(super) struct KeyTable {
    /// Positions in `entries`, by the hash of their key.
    index: HashTable<u32>,
    /// The entries; an entry's position is its index here.
    entries: Vec<(Key, Entry)>,
    hasher: DefaultHashBuilder,
}

impl KeyTable {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes the table holds on the heap (index and entries), for deciding
    /// whether to free it in the background.
    pub(super) fn allocation_size(&self) -> usize {
        self.index.allocation_size() + self.entries.capacity() * std::mem::size_of::<(Key, Entry)>()
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The position of `key`: with [`KeyTable::in_bucket`] and
    /// [`KeyTable::in_bucket_mut`], one hash and probe serves a lookup and
    /// the reads or writes that follow it (valid until the table changes).
    pub(super) fn find(&self, key: &[u8]) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(self.hash(key), |&p| entries[p as usize].0.as_bytes() == key)
            .map(|&p| p as usize)
    }

    /// The entry at position `pos` (from [`KeyTable::find`]).
    pub(super) fn in_bucket(&self, pos: usize) -> Option<&Entry> {
        self.entries.get(pos).map(|(_, e)| e)
    }

    pub(super) fn in_bucket_mut(&mut self, pos: usize) -> Option<&mut Entry> {
        self.entries.get_mut(pos).map(|(_, e)| e)
    }

    /// The access stamp of the key at position `pos`.
    pub(super) fn stamp(&self, pos: usize) -> Option<u32> {
        self.entries.get(pos).map(|(k, _)| k.stamp())
    }

    pub(super) fn set_stamp(&mut self, pos: usize, stamp: u32) {
        if let Some((k, _)) = self.entries.get_mut(pos) {
            k.set_stamp(stamp);
        }
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.in_bucket(self.find(key)?)
    }

    /// Stores `entry` under `key`, stamped `stamp`; returns the entry it
    /// replaced (whose position the new entry takes over).
    pub(super) fn insert(&mut self, key: &[u8], entry: Entry, stamp: u32) -> Option<Entry> {
        let hash = self.hash(key);
        let KeyTable {
            index,
            entries,
            hasher,
        } = self;
        let found = index.entry(
            hash,
            |&p| entries[p as usize].0.as_bytes() == key,
            |&p| hasher.hash_one(entries[p as usize].0.as_bytes()),
        );
        match found {
            hash_table::Entry::Occupied(o) => {
                let (name, old) = &mut entries[*o.get() as usize];
                name.set_stamp(stamp);
                Some(std::mem::replace(old, entry))
            }
            hash_table::Entry::Vacant(v) => {
                v.insert(entries.len() as u32);
                if entries.len() == entries.capacity() {
                    entries.reserve_exact(MIN_GROWTH.max(entries.len() / 4));
                }
                entries.push((Key::new(key, stamp), entry));
                None
            }
        }
    }

    /// Deletes `key`; returns its name and entry.
    pub(super) fn remove(&mut self, key: &[u8]) -> Option<(Key, Entry)> {
        let hash = self.hash(key);
        let entries = &self.entries;
        let found = self
            .index
            .find_entry(hash, |&p| entries[p as usize].0.as_bytes() == key)
            .ok()?;
        let (pos, _) = found.remove();
        let pos = pos as usize;
        let last = self.entries.len() - 1;
        let removed = self.entries.swap_remove(pos);
        if pos < last {
            // The last entry moved into the hole: its bucket says so now.
            let moved = self.hash(self.entries[pos].0.as_bytes());
            if let Some(p) = self.index.find_mut(moved, |&p| p as usize == last) {
                *p = pos as u32;
            }
        }
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
        }
        Some(removed)
    }

    /// The entry at scan position `pos` (`pos < len`).
    pub(super) fn at(&self, pos: usize) -> Option<(&Key, &Entry)> {
        self.entries.get(pos).map(|(k, e)| (k, e))
    }

    /// Every entry, in position order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.entries.iter().map(|(k, e)| (k, e))
    }

    /// Checks the invariants (tests).
    #[cfg(test)]
    pub(super) fn check(&self) {
        assert_eq!(self.index.len(), self.entries.len());
        let mut seen = vec![false; self.entries.len()];
        for &p in self.index.iter() {
            assert!(
                !std::mem::replace(&mut seen[p as usize], true),
                "position {p} twice"
            );
        }
        for (p, (k, _)) in self.entries.iter().enumerate() {
            assert_eq!(self.find(k.as_bytes()), Some(p), "position of {k:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::Value;

    fn entry() -> Entry {
        Entry::new(Value::Str(b"v".to_vec()))
    }

    #[test]
    fn positions_survive_growth_churn_and_removal() {
        let mut t = KeyTable::default();
        for i in 0..5000 {
            assert!(t.insert(format!("k{i}").as_bytes(), entry(), 0).is_none());
            if i % 3 == 0 {
                assert!(t.remove(format!("k{}", i / 2).as_bytes()).is_some());
            }
        }
        t.check();
        // Steady churn at a fixed size rehashes away deleted buckets.
        for i in 5000..50_000 {
            t.insert(format!("k{i}").as_bytes(), entry(), 0);
            t.remove(format!("k{}", i - 3000).as_bytes());
        }
        t.check();
        // Growing the index moves buckets, never positions.
        let before: Vec<Vec<u8>> = (0..t.len()).map(|p| t.at(p).unwrap().0.to_vec()).collect();
        let (hasher, entries) = (t.hasher.clone(), &t.entries);
        let buckets = t.index.num_buckets();
        let room = t.index.capacity() * 2;
        t.index
            .reserve(room, |&p| hasher.hash_one(entries[p as usize].0.as_bytes()));
        assert!(t.index.num_buckets() > buckets);
        t.check();
        let after: Vec<Vec<u8>> = (0..t.len()).map(|p| t.at(p).unwrap().0.to_vec()).collect();
        assert_eq!(before, after);
        assert!(
            t.insert(b"k49999", entry(), 0).is_some(),
            "replaced in place"
        );
        t.check();
        let live: Vec<Vec<u8>> = t.iter().map(|(k, _)| k.to_vec()).collect();
        for k in live {
            assert!(t.get(&k).is_some());
            t.remove(&k);
        }
        assert!(t.is_empty());
        t.check();
    }
}
