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
//!   buckets per key). The index's buckets are 2-byte positions (4-byte
//!   once a slot holds more than 65,536 keys: [`Index`]), ~6.6 bytes per key
//!   with their control bytes, and the dense vector of 56-byte entries
//!   grows by a quarter at a time: ~63 bytes per key.
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

/// Positions in a table's entries, by the hash of their key: 2 bytes each
/// while they fit (a slot rarely holds 65,536 keys: a cache of a million
/// holds ~61 per slot), 4 bytes past that. The table widens once, at its
/// 65,537th key (one pass, as the index's own growth is).
#[derive(Debug)]
enum Index {
    Narrow(HashTable<u16>),
    Wide(HashTable<u32>),
}

impl Default for Index {
    fn default() -> Index {
        Index::Narrow(HashTable::new())
    }
}

/// Runs `$body` with `$t` bound to the index's table, whichever width it is
/// (positions read with `as usize`, written with `as _`).
macro_rules! with_index {
    ($index:expr, $t:ident => $body:expr) => {
        match $index {
            Index::Narrow($t) => $body,
            Index::Wide($t) => $body,
        }
    };
}

/// One slot's entries and their index (see the module doc).
#[derive(Debug, Default)]
pub(super) struct KeyTable {
    /// Positions in `entries`, by the hash of their key.
    index: Index,
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
        with_index!(&self.index, t => t.allocation_size())
            + self.entries.capacity() * std::mem::size_of::<(Key, Entry)>()
    }

    /// The hash `key` is filed under here (what a slot's deadline keeps of
    /// its key: the table moves with its hasher, so it stays valid).
    pub(super) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The position of `key`: with [`KeyTable::in_bucket`] and
    /// [`KeyTable::in_bucket_mut`], one hash and probe serves a lookup and
    /// the reads or writes that follow it (valid until the table changes).
    pub(super) fn find(&self, key: &[u8]) -> Option<usize> {
        let (entries, hash) = (&self.entries, self.hash(key));
        with_index!(&self.index, t => t
            .find(hash, |&p| entries[p as usize].0.as_bytes() == key)
            .map(|&p| p as usize))
    }

    /// The position of an entry filed under `hash` (its key's full hash,
    /// not only the index's tag) for which `want` holds.
    pub(super) fn find_hashed(&self, hash: u64, want: impl Fn(&Entry) -> bool) -> Option<usize> {
        let entries = &self.entries;
        with_index!(&self.index, t => t
            .find(hash, |&p| {
                let (k, e) = &entries[p as usize];
                want(e) && self.hash(k.as_bytes()) == hash
            })
            .map(|&p| p as usize))
    }

    /// Calls `f` with the address of every entry whose hash tag matches
    /// `key`'s, without reading any entry: a prefetch pass loads the index
    /// alone here, and the entries' misses overlap (see
    /// [`super::Keyspace::prefetch`]).
    pub(super) fn candidates(&self, key: &[u8], mut f: impl FnMut(*const u8)) {
        let (entries, hash) = (&self.entries, self.hash(key));
        with_index!(&self.index, t => t.find(hash, |&p| {
            if let Some(e) = entries.get(p as usize) {
                f(std::ptr::from_ref(e).cast());
            }
            false
        }).map(|_| ()));
    }

    /// The entry at position `pos` (from [`KeyTable::find`]).
    pub(super) fn in_bucket(&self, pos: usize) -> Option<&Entry> {
        self.entries.get(pos).map(|(_, e)| e)
    }

    pub(super) fn in_bucket_mut(&mut self, pos: usize) -> Option<&mut Entry> {
        self.entries.get_mut(pos).map(|(_, e)| e)
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
        if self.entries.len() > usize::from(u16::MAX) {
            self.widen();
        }
        let hash = self.hash(key);
        let KeyTable {
            index,
            entries,
            hasher,
        } = self;
        with_index!(index, t => {
            let found = t.entry(
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
                    v.insert(entries.len() as _);
                    if entries.len() == entries.capacity() {
                        entries.reserve_exact(MIN_GROWTH.max(entries.len() / 4));
                    }
                    entries.push((Key::new(key, stamp), entry));
                    None
                }
            }
        })
    }

    /// Moves a narrow index whose positions no longer fit in 2 bytes to a
    /// wide one.
    fn widen(&mut self) {
        let Index::Narrow(narrow) = &self.index else {
            return;
        };
        let mut wide = HashTable::with_capacity(narrow.capacity() * 2);
        let (hasher, entries) = (&self.hasher, &self.entries);
        for (p, (k, _)) in entries.iter().enumerate() {
            wide.insert_unique(hasher.hash_one(k.as_bytes()), p as u32, |&q| {
                hasher.hash_one(entries[q as usize].0.as_bytes())
            });
        }
        self.index = Index::Wide(wide);
    }

    /// Deletes `key`; returns its name and entry.
    pub(super) fn remove(&mut self, key: &[u8]) -> Option<(Key, Entry)> {
        let hash = self.hash(key);
        let entries = &self.entries;
        let pos = with_index!(&mut self.index, t => {
            let found = t.find_entry(hash, |&p| entries[p as usize].0.as_bytes() == key).ok()?;
            found.remove().0 as usize
        });
        let last = self.entries.len() - 1;
        let removed = self.entries.swap_remove(pos);
        if pos < last {
            // The last entry moved into the hole: its bucket says so now.
            let moved = self.hash(self.entries[pos].0.as_bytes());
            with_index!(&mut self.index, t => {
                if let Some(p) = t.find_mut(moved, |&p| p as usize == last) {
                    *p = pos as _;
                }
            });
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
        let positions: Vec<usize> =
            with_index!(&self.index, t => t.iter().map(|&p| p as usize).collect());
        assert_eq!(positions.len(), self.entries.len());
        let mut seen = vec![false; self.entries.len()];
        for p in positions {
            assert!(!std::mem::replace(&mut seen[p], true), "position {p} twice");
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
        let Index::Narrow(index) = &mut t.index else {
            panic!("50,000 keys fit a narrow index");
        };
        let buckets = index.num_buckets();
        let room = index.capacity() * 2;
        index.reserve(room, |&p| hasher.hash_one(entries[p as usize].0.as_bytes()));
        assert!(index.num_buckets() > buckets);
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

    /// The 65,537th key widens the index; every key is still found, and
    /// removals after it keep the positions right.
    #[test]
    fn a_slot_past_65536_keys_widens_its_index() {
        let mut t = KeyTable::default();
        let n = usize::from(u16::MAX) + 1;
        for i in 0..n {
            t.insert(format!("k{i}").as_bytes(), entry(), 0);
        }
        assert!(matches!(t.index, Index::Narrow(_)));
        t.check();
        t.insert(b"one more", entry(), 0);
        assert!(matches!(t.index, Index::Wide(_)));
        t.check();
        for i in (0..n).step_by(7) {
            assert!(t.remove(format!("k{i}").as_bytes()).is_some());
        }
        t.check();
        assert!(t.get(b"one more").is_some());
        assert!(t.get(b"k7").is_none());
    }
}
