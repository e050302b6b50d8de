//! The packed form of small hashes and sorted sets (Redis's listpack):
//! entries laid end to end in one exact-size allocation, each string
//! behind a one-byte length.
//!
//! A collection stays packed while it has at most [`PACKED_MAX_LEN`]
//! elements and each of its strings (field, value, member) is at most
//! [`PACKED_MAX_BYTES`] long; the first change past either limit converts it
//! to its table form for good, as Redis never converts back. Every packed
//! operation is a walk of at most `PACKED_MAX_LEN` entries and a copy of at
//! most a few KiB, bounded as a table operation is.
//!
//! This module owns the block and its one way of changing it,
//! [`Packed::splice`]; what an entry holds (a field and its value, a
//! member and its score) is the collection's business
//! ([`super::value::HashValue`], [`super::zset`]).
//!
//! Invariants: `buf` holds exactly `len` entries and nothing else, and its
//! allocation is exactly `buf.len()` bytes (a boxed slice, resized on every
//! change): the charge follows the bytes the layout asks the allocator for.

use super::value::SCAN_WHOLE_UP_TO;

/// Most elements a packed collection holds (Redis's
/// `zset-max-listpack-entries` default; Redis packs hashes up to 512
/// fields, kept at 128 here so a packed walk stays short).
pub const PACKED_MAX_LEN: usize = 128;
/// Longest field, value or member a packed collection holds (Redis's
/// `hash-max-listpack-value` and `zset-max-listpack-value` defaults): its
/// length fits the one-byte prefix.
pub const PACKED_MAX_BYTES: usize = 64;
/// Bytes charged per packed collection on top of its buffer's bytes: the
/// value's own block (24 bytes, a 32-byte malloc chunk) and the buffer's
/// allocator header and rounding (8 + 7.5 bytes on average).
pub const PACKED_OVERHEAD: usize = 48;

// A packed collection is small enough for one HSCAN/ZSCAN call.
const _: () = assert!(PACKED_MAX_LEN <= SCAN_WHOLE_UP_TO);
const _: () = assert!(PACKED_MAX_BYTES < u8::MAX as usize);

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

impl Packed {
    /// Entries held.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether one more entry is allowed.
    pub fn has_room(&self) -> bool {
        self.len() < PACKED_MAX_LEN
    }

    /// The bytes of all entries.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes charged: the buffer and [`PACKED_OVERHEAD`].
    pub fn mem_bytes(&self) -> usize {
        PACKED_OVERHEAD + self.buf.len()
    }

    /// Replaces the `remove` bytes at `at` with `parts` written end to end,
    /// the entry count moving by `entries` (+1 an insert, -1 a removal, 0 a
    /// change in place); the block is resized to the new length exactly.
    /// Callers keep to the limits (an insert checks [`Packed::has_room`]).
    pub fn splice(&mut self, at: usize, remove: usize, parts: &[&[u8]], entries: isize) {
        let added: usize = parts.iter().map(|p| p.len()).sum();
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
        let mut w = at;
        for p in parts {
            v[w..w + p.len()].copy_from_slice(p);
            w += p.len();
        }
        // Exact already when it grew (`reserve_exact`); a shrink reallocates.
        self.buf = v.into_boxed_slice();
        let len = self.len() as isize + entries;
        debug_assert!((0..=PACKED_MAX_LEN as isize).contains(&len));
        self.len = len as u8;
    }
}

/// The string at `at` (its length byte) in `buf`, and where the next
/// thing starts.
pub fn string_at(buf: &[u8], at: usize) -> (&[u8], usize) {
    let n = usize::from(buf[at]);
    (&buf[at + 1..at + 1 + n], at + 1 + n)
}

/// A string's one-byte length (the caller checked [`fits`]).
pub fn len_byte(s: &[u8]) -> [u8; 1] {
    [s.len() as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_inserts_replaces_and_removes_in_an_exact_block() {
        let mut p = Packed::default();
        assert_eq!(p.mem_bytes(), PACKED_OVERHEAD);
        p.splice(0, 0, &[&len_byte(b"bb"), b"bb"], 1);
        p.splice(0, 0, &[&len_byte(b"a"), b"a"], 1);
        p.splice(5, 0, &[&len_byte(b"ccc"), b"ccc"], 1);
        assert_eq!(p.bytes(), b"\x01a\x02bb\x03ccc");
        assert_eq!((p.len(), p.mem_bytes()), (3, PACKED_OVERHEAD + 9));
        // The middle string, replaced by a longer one, then a shorter one.
        p.splice(2, 3, &[&len_byte(b"dddd"), b"dddd"], 0);
        assert_eq!(p.bytes(), b"\x01a\x04dddd\x03ccc");
        p.splice(2, 5, &[&len_byte(b""), b""], 0);
        assert_eq!(p.bytes(), b"\x01a\x00\x03ccc");
        let (s, next) = string_at(p.bytes(), 2);
        assert_eq!((s, next), (&b""[..], 3));
        assert_eq!(string_at(p.bytes(), next), (&b"ccc"[..], 7));
        p.splice(0, 2, &[], -1);
        assert_eq!((p.bytes(), p.len()), (&b"\x00\x03ccc"[..], 2));
        p.splice(0, 5, &[], -2);
        assert!(p.is_empty());
        assert_eq!(p.mem_bytes(), PACKED_OVERHEAD);
    }
}
