//! The packed form of small hashes and sorted sets (Redis's listpack):
//! entries laid end to end in one exact-size allocation. An entry is a key
//! (a hash's field, a sorted set's member) and its payload (the field's
//! value, the member's encoded score): `[key length][payload length][key]
//! [payload]`. Both lengths come first so a walk finds the next entry with
//! one read of two adjacent bytes.
//!
//! A collection stays packed while it has at most [`PACKED_MAX_LEN`]
//! elements and each of its strings (field, value, member) is at most
//! [`PACKED_MAX_BYTES`] long; the first change past either limit converts it
//! to its table form for good, as Redis never converts back. Every packed
//! operation is a walk of at most `PACKED_MAX_LEN` entries and a copy of at
//! most a few KiB.
//!
//! This module owns the layout: the block, the changes to it
//! ([`Packed::insert`], [`Packed::replace`], [`Packed::remove`], all one
//! resize of the block) and the walks over it ([`Packed::entries`],
//! [`Packed::find`]); the order of the entries and what a payload means
//! are the collection's business ([`super::value::HashValue`],
//! [`super::zset`]).
//!
//! Invariants: `buf` holds exactly `len` entries and nothing else, and its
//! allocation is exactly `buf.len()` bytes (a boxed slice, resized on every
//! change): the charge follows the bytes the layout asks the allocator for.

use super::scan::SCAN_WHOLE_UP_TO;

/// Most elements a packed collection holds (Redis's
/// `zset-max-listpack-entries` default; Redis packs hashes up to 512
/// fields, kept at 128 here so a packed walk stays short).
pub const PACKED_MAX_LEN: usize = 128;
/// Longest field, value or member a packed collection holds (Redis's
/// `hash-max-listpack-value` and `zset-max-listpack-value` defaults): its
/// length fits a one-byte prefix.
pub const PACKED_MAX_BYTES: usize = 64;
/// Bytes charged per packed collection on top of its block's bytes: the
/// value's own block (24 bytes, a 32-byte malloc chunk) and the packed
/// block's allocator header and rounding (8 + 7.5 bytes on average).
pub const PACKED_OVERHEAD: usize = 48;
/// Bytes an entry takes besides its key and payload: their two lengths.
pub const ENTRY_HEADER: usize = 2;

// A packed collection is small enough for one HSCAN/ZSCAN call.
const _: () = assert!(PACKED_MAX_LEN <= SCAN_WHOLE_UP_TO);
const _: () = assert!(PACKED_MAX_BYTES <= u8::MAX as usize);

/// Whether a string may be stored packed.
pub fn fits(s: &[u8]) -> bool {
    s.len() <= PACKED_MAX_BYTES
}

/// Entries end to end in one exact-size block, and how many there are.
#[derive(Debug, Clone, Default)]
pub struct Packed {
    buf: Box<[u8]>,
    len: u8,
}

/// One entry of a packed block, at byte `at`; the next starts at `next`.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub at: usize,
    pub key: &'a [u8],
    pub payload: &'a [u8],
    pub next: usize,
}

/// The entry at byte `at` of `buf`.
fn entry_at(buf: &[u8], at: usize) -> Entry<'_> {
    let (k, p) = (usize::from(buf[at]), usize::from(buf[at + 1]));
    let key = at + ENTRY_HEADER;
    Entry {
        at,
        key: &buf[key..key + k],
        payload: &buf[key + k..key + k + p],
        next: key + k + p,
    }
}

/// Iterator over the entries of a block, in order.
pub struct Entries<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        if self.at >= self.buf.len() {
            return None;
        }
        let e = entry_at(self.buf, self.at);
        self.at = e.next;
        Some(e)
    }
}

impl Packed {
    /// Entries held.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of all entries (where an insert at the end goes).
    pub fn end(&self) -> usize {
        self.buf.len()
    }

    /// Bytes charged: the block and [`PACKED_OVERHEAD`].
    pub fn mem_bytes(&self) -> usize {
        PACKED_OVERHEAD + self.buf.len()
    }

    /// The entries from the one at byte `at` (an entry's start, or the end).
    pub fn entries_from(&self, at: usize) -> Entries<'_> {
        Entries { buf: &self.buf, at }
    }

    /// The entries, in order.
    pub fn entries(&self) -> Entries<'_> {
        self.entries_from(0)
    }

    /// The entry keyed `key` and its position (0-based): a walk that
    /// compares only the keys of `key`'s length.
    pub fn find(&self, key: &[u8]) -> Option<(usize, Entry<'_>)> {
        let buf = &self.buf[..];
        let (mut at, mut i) = (0, 0);
        while at < buf.len() {
            let (k, p) = (usize::from(buf[at]), usize::from(buf[at + 1]));
            let start = at + ENTRY_HEADER;
            if same(&buf[start..start + k], key) {
                return Some((i, entry_at(buf, at)));
            }
            at = start + k + p;
            i += 1;
        }
        None
    }

    /// Inserts the entry `(key, payload)` at byte `at` (an entry's start,
    /// or [`Packed::end`]). The caller keeps to the limits.
    pub fn insert(&mut self, at: usize, key: &[u8], payload: &[u8]) {
        debug_assert!(self.len() < PACKED_MAX_LEN && fits(key) && fits(payload));
        self.splice(at, 0, key, payload);
        self.len += 1;
    }

    /// Replaces the entry at `at` (ending at `next`) with `(key, payload)`.
    pub fn replace(&mut self, at: usize, next: usize, key: &[u8], payload: &[u8]) {
        debug_assert!(fits(key) && fits(payload));
        self.splice(at, next - at, key, payload);
    }

    /// Removes the `count` entries in bytes `from..to`.
    pub fn remove(&mut self, from: usize, to: usize, count: usize) {
        debug_assert!(count <= self.len());
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.drain(from..to);
        // The block shrinks to its new length (a reallocation).
        self.buf = v.into_boxed_slice();
        self.len -= count as u8;
    }

    /// Writes `(key, payload)` in place of the `remove` bytes at `at`,
    /// resizing the block to its new length exactly.
    fn splice(&mut self, at: usize, remove: usize, key: &[u8], payload: &[u8]) {
        let added = ENTRY_HEADER + key.len() + payload.len();
        let tail = at + remove;
        let mut v = std::mem::take(&mut self.buf).into_vec();
        let old_len = v.len();
        if added > remove {
            v.reserve_exact(added - remove);
            v.resize(old_len + added - remove, 0);
            v.copy_within(tail..old_len, at + added);
        } else if added < remove {
            v.copy_within(tail..old_len, at + added);
            v.truncate(old_len - (remove - added));
        }
        v[at] = key.len() as u8;
        v[at + 1] = payload.len() as u8;
        let k = at + ENTRY_HEADER;
        v[k..k + key.len()].copy_from_slice(key);
        v[k + key.len()..at + added].copy_from_slice(payload);
        // Exact already when it grew (`reserve_exact`); a shrink reallocates.
        self.buf = v.into_boxed_slice();
    }
}

/// Whether two strings are equal, their last bytes compared first: the
/// keys of one collection often share a length and a prefix (`field:1`,
/// `field:2`), and a walk compares the key it looks for with each.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.last() == b.last() && a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &Packed) -> Vec<(&[u8], &[u8])> {
        p.entries().map(|e| (e.key, e.payload)).collect()
    }

    #[test]
    fn entries_change_in_one_exact_block() {
        let mut p = Packed::default();
        assert_eq!(p.mem_bytes(), PACKED_OVERHEAD);
        p.insert(0, b"field:2", b"");
        p.insert(0, b"field:1", b"one");
        let end = p.end();
        p.insert(end, b"f", b"x");
        assert_eq!(
            p.buf[..],
            b"\x07\x03field:1one\x07\x00field:2\x01\x01fx"[..]
        );
        assert_eq!((p.len(), p.mem_bytes()), (3, PACKED_OVERHEAD + 25));
        assert_eq!(
            all(&p),
            vec![
                (&b"field:1"[..], &b"one"[..]),
                (b"field:2", b""),
                (b"f", b"x")
            ]
        );
        // Found by key, with its position and bytes.
        let (i, e) = p.find(b"field:2").unwrap();
        assert_eq!((i, e.at, e.next), (1, 12, 21));
        assert_eq!(
            p.entries_from(e.next).next().map(|e| e.key),
            Some(&b"f"[..])
        );
        assert!(p.find(b"field:3").is_none() && p.find(b"").is_none());
        // Replaced by a longer entry, then a shorter one.
        p.replace(12, 21, b"field:2", b"two!");
        assert_eq!(all(&p)[1], (&b"field:2"[..], &b"two!"[..]));
        assert_eq!(p.mem_bytes(), PACKED_OVERHEAD + 29);
        let e = p.find(b"field:2").unwrap().1;
        p.replace(e.at, e.next, b"g", b"");
        assert_eq!(all(&p)[1], (&b"g"[..], &b""[..]));
        assert_eq!((p.len(), p.end()), (3, 12 + 3 + 4));
        // Removed: one entry, then the rest.
        p.remove(0, 12, 1);
        assert_eq!(all(&p), vec![(&b"g"[..], &b""[..]), (b"f", b"x")]);
        let end = p.end();
        p.remove(0, end, 2);
        assert!(p.is_empty());
        assert_eq!(p.mem_bytes(), PACKED_OVERHEAD);
    }
}
