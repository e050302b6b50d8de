//! [`KeyTable`]: the entries of one hash slot — a hashbrown table of
//! `(key, entry)` for lookups, plus a *scan order* that SCAN can resume in at
//! a position that survives the table's resizes.
//!
//! A hash table's bucket order cannot carry a SCAN cursor across a resize in
//! open addressing (an entry's bucket depends on its neighbours, not only on
//! its hash, so Redis's reverse-binary cursor does not apply), and a cursor
//! made of hash values costs a walk of the whole table per call to find the
//! next ones. So the table keeps, beside its buckets, `order`: a dense vector
//! of the entries' bucket indexes. An entry's *position* is its index in
//! `order`, and the entry stores it ([`Entry`]'s `pos`, in what was padding),
//! so it costs 4 bytes per key.
//!
//! Invariants:
//! - `order` names every entry's bucket exactly once, and the entry in
//!   bucket `order[p]` has `pos == p`;
//! - entries move between buckets only when hashbrown grows or rehashes the
//!   table, which it does only in an insert that finds no room left
//!   (`len == capacity`, live entries or deleted buckets): after such an
//!   insert [`KeyTable::reindex`] reads every entry's bucket again (its
//!   position, stored in the entry, does not change);
//! - a removal moves the *last* position into the hole (swap-remove); an
//!   insert takes a new last position.
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

/// One slot's entries and their scan order (see the module doc).
#[derive(Debug, Default)]
pub(super) struct KeyTable {
    table: HashTable<(Key, Entry)>,
    /// Bucket index of the entry at each position.
    order: Vec<u32>,
    hasher: DefaultHashBuilder,
}

impl KeyTable {
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Bytes the table holds on the heap (buckets and scan order), for
    /// deciding whether to free it in the background.
    pub(super) fn allocation_size(&self) -> usize {
        self.table.allocation_size() + self.order.capacity() * std::mem::size_of::<u32>()
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.table
            .find(self.hash(key), |(k, _)| k.as_bytes() == key)
            .map(|(_, e)| e)
    }

    /// The bucket holding `key`: with [`KeyTable::in_bucket`] and
    /// [`KeyTable::in_bucket_mut`], one hash and probe serves a lookup and the
    /// reads or writes that follow it (valid until the table changes).
    pub(super) fn find(&self, key: &[u8]) -> Option<usize> {
        self.table
            .find_bucket_index(self.hash(key), |(k, _)| k.as_bytes() == key)
    }

    /// The entry in `bucket` (from [`KeyTable::find`]).
    pub(super) fn in_bucket(&self, bucket: usize) -> Option<&Entry> {
        self.table.get_bucket(bucket).map(|(_, e)| e)
    }

    pub(super) fn in_bucket_mut(&mut self, bucket: usize) -> Option<&mut Entry> {
        self.table.get_bucket_mut(bucket).map(|(_, e)| e)
    }

    pub(super) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let hash = self.hash(key);
        self.table
            .find_mut(hash, |(k, _)| k.as_bytes() == key)
            .map(|(_, e)| e)
    }

    /// Stores `entry` under `key`; returns the entry it replaced (which kept
    /// its position: the new entry takes it over).
    pub(super) fn insert(&mut self, key: &[u8], mut entry: Entry) -> Option<Entry> {
        // A full table (live entries, or deleted buckets eating the room) is
        // grown or rehashed by this insert, which moves entries: their
        // buckets are read again after it.
        let relayout = self.table.len() == self.table.capacity();
        let buckets = self.table.num_buckets();
        let hash = self.hash(key);
        let KeyTable {
            table,
            order,
            hasher,
        } = self;
        let found = table.entry(
            hash,
            |(k, _)| k.as_bytes() == key,
            |(k, _)| hasher.hash_one(k.as_bytes()),
        );
        let replaced = match found {
            hash_table::Entry::Occupied(mut o) => {
                let old = &mut o.get_mut().1;
                entry.pos = old.pos;
                Some(std::mem::replace(old, entry))
            }
            hash_table::Entry::Vacant(v) => {
                entry.pos = order.len() as u32;
                let bucket = v.insert((Key::from(key), entry)).bucket_index();
                order.push(bucket as u32);
                None
            }
        };
        if relayout || self.table.num_buckets() != buckets {
            self.reindex();
        }
        replaced
    }

    /// Deletes `key`; returns its name and entry.
    pub(super) fn remove(&mut self, key: &[u8]) -> Option<(Key, Entry)> {
        let hash = self.hash(key);
        let found = self
            .table
            .find_entry(hash, |(k, _)| k.as_bytes() == key)
            .ok()?;
        let ((k, e), _) = found.remove();
        let pos = e.pos as usize;
        self.order.swap_remove(pos);
        if let Some(&moved) = self.order.get(pos)
            && let Some((_, m)) = self.table.get_bucket_mut(moved as usize)
        {
            m.pos = pos as u32;
        }
        if self.order.capacity() > 64 && self.order.len() < self.order.capacity() / 4 {
            self.order.shrink_to(self.order.len() * 2);
        }
        Some((k, e))
    }

    /// The entry at scan position `pos` (`pos < len`).
    pub(super) fn at(&self, pos: usize) -> Option<(&Key, &Entry)> {
        let bucket = *self.order.get(pos)?;
        self.table.get_bucket(bucket as usize).map(|(k, e)| (k, e))
    }

    /// Every entry, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.table.iter().map(|(k, e)| (k, e))
    }

    /// Reads every entry's bucket into `order`.
    fn reindex(&mut self) {
        for bucket in self.table.iter_buckets() {
            if let Some((_, e)) = self.table.get_bucket(bucket)
                && let Some(slot) = self.order.get_mut(e.pos as usize)
            {
                *slot = bucket as u32;
            }
        }
    }

    /// Checks the invariants (tests).
    #[cfg(test)]
    pub(super) fn check(&self) {
        assert_eq!(self.order.len(), self.table.len());
        for (p, &b) in self.order.iter().enumerate() {
            let (_, e) = self
                .table
                .get_bucket(b as usize)
                .expect("order names a bucket");
            assert_eq!(e.pos as usize, p, "position of the entry in bucket {b}");
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
            assert!(t.insert(format!("k{i}").as_bytes(), entry()).is_none());
            if i % 3 == 0 {
                assert!(t.remove(format!("k{}", i / 2).as_bytes()).is_some());
            }
        }
        t.check();
        // Steady churn at a fixed size rehashes away deleted buckets.
        for i in 5000..50_000 {
            t.insert(format!("k{i}").as_bytes(), entry());
            t.remove(format!("k{}", i - 3000).as_bytes());
        }
        t.check();
        // Every entry moved (as in a rehash): reading the buckets again
        // restores the order, positions unchanged.
        let before: Vec<Vec<u8>> = (0..t.len()).map(|p| t.at(p).unwrap().0.to_vec()).collect();
        let hasher = t.hasher.clone();
        let buckets = t.table.num_buckets();
        let room = t.table.capacity() * 2;
        t.table
            .reserve(room, |(k, _)| hasher.hash_one(k.as_bytes()));
        assert!(t.table.num_buckets() > buckets);
        t.reindex();
        t.check();
        let after: Vec<Vec<u8>> = (0..t.len()).map(|p| t.at(p).unwrap().0.to_vec()).collect();
        assert_eq!(before, after);
        assert!(t.insert(b"k49999", entry()).is_some(), "replaced in place");
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
