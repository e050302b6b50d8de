//! Value types stored under a key, and what each costs in memory.
//!
//! Accounting is exact and O(1) per change: every value knows its payload
//! bytes, collections keep a running total as they change. The per-entry and
//! per-element overheads are documented constants (the README repeats them),
//! close to what the allocator really spends on this layout. Small hashes
//! and sorted sets are packed ([`super::packed`]): one block of
//! length-prefixed entries, charged its length plus
//! [`PACKED_OVERHEAD`](super::packed::PACKED_OVERHEAD), until they outgrow
//! it and move to their tables, charged per element.
//!
//! This file holds the small collections (hash, list, set); the sorted set
//! lives in [`super::zset`], the stream in [`super::stream`]. HyperLogLogs and
//! bitmaps are strings, as in Redis.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable as Index};
use rand::Rng;

use super::packed::{self, Packed};

pub use super::stream::{
    CONSUMER_OVERHEAD, GROUP_OVERHEAD, PENDING_OVERHEAD, STREAM_ENTRY_OVERHEAD,
    STREAM_FIELD_OVERHEAD, StreamValue,
};
pub use super::zset::{ZSET_MEMBER_OVERHEAD, ZSetValue};

/// Bytes charged per key on top of key and value bytes: the table slot
/// (key box, value, expiry), the allocator's rounding of two small blocks.
pub const ENTRY_OVERHEAD: usize = 64;
/// Bytes charged per hash field of a table-form hash on top of field and
/// value bytes (a packed hash is charged its block): the 32-byte slot in
/// the pair vector, the 4-byte index entry and its control
/// byte at the table's load factor, the allocator's rounding of two blocks.
pub const HASH_FIELD_OVERHEAD: usize = 48;
/// Bytes charged per list element on top of its bytes: the 16-byte slot in
/// the ring buffer and the element's own heap block (header and rounding).
pub const LIST_ELEM_OVERHEAD: usize = 32;
/// Bytes charged per set member on top of its bytes: the 16-byte slot in the
/// member vector, the 4-byte index entry and its control byte at the table's
/// load factor, and the member's heap block (header and rounding).
pub const SET_MEMBER_OVERHEAD: usize = 40;

/// The type of a value, as `TYPE` names it (serializable: SCAN's TYPE
/// filter crosses to a node, see [`crate::wire`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ValueType {
    String,
    Hash,
    List,
    Set,
    ZSet,
    Stream,
}

impl ValueType {
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Hash => "hash",
            ValueType::List => "list",
            ValueType::Set => "set",
            ValueType::ZSet => "zset",
            ValueType::Stream => "stream",
        }
    }

    pub const ALL: [ValueType; 6] = [
        ValueType::String,
        ValueType::Hash,
        ValueType::List,
        ValueType::Set,
        ValueType::ZSet,
        ValueType::Stream,
    ];

    pub fn from_name(name: &[u8]) -> Option<ValueType> {
        ValueType::ALL
            .into_iter()
            .find(|t| name.eq_ignore_ascii_case(t.name().as_bytes()))
    }
}

/// A stored value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Strings, HyperLogLogs and bitmaps.
    Str(Vec<u8>),
    Hash(Box<HashValue>),
    List(Box<ListValue>),
    Set(Box<SetValue>),
    ZSet(Box<ZSetValue>),
    Stream(Box<StreamValue>),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Str(_) => ValueType::String,
            Value::Hash(_) => ValueType::Hash,
            Value::List(_) => ValueType::List,
            Value::Set(_) => ValueType::Set,
            Value::ZSet(_) => ValueType::ZSet,
            Value::Stream(_) => ValueType::Stream,
        }
    }

    /// Where the memory a command on this value reads first starts, and
    /// its length: a string's bytes, a collection's header (for
    /// [`super::Keyspace::prefetch`]).
    pub fn head(&self) -> (*const u8, usize) {
        fn header<T>(b: &T) -> (*const u8, usize) {
            (std::ptr::from_ref(b).cast(), size_of::<T>())
        }
        match self {
            Value::Str(s) => (s.as_ptr(), s.len()),
            Value::Hash(h) => header(&**h),
            Value::List(l) => header(&**l),
            Value::Set(s) => header(&**s),
            Value::ZSet(z) => header(&**z),
            Value::Stream(s) => header(&**s),
        }
    }

    /// Payload bytes charged for this value (without the entry overhead).
    pub fn mem_bytes(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::Hash(h) => h.mem_bytes(),
            Value::List(l) => l.mem_bytes(),
            Value::Set(s) => s.mem_bytes(),
            Value::ZSet(z) => z.mem_bytes(),
            Value::Stream(s) => s.mem_bytes(),
        }
    }
}

/// A hash field and its value.
type Field = (Box<[u8]>, Box<[u8]>);

/// A hash: packed while small ([`super::packed`]: field and value pairs in
/// insertion order, as Redis's listpack), else field → value pairs in a
/// dense table (a random field is O(1), HSCAN resumes at a position).
/// Either way a pair's position only moves down (a packed removal shifts
/// the pairs after it, a table's moves the last pair into the hole).
#[derive(Debug, Clone, Default)]
pub struct HashValue {
    repr: HashRepr,
}

#[derive(Debug, Clone)]
enum HashRepr {
    /// `[field length][field][value length][value]` per pair.
    Packed(Packed),
    /// Boxed, so a packed hash stays a small block.
    Table(Box<FieldTable>),
}

impl Default for HashRepr {
    fn default() -> HashRepr {
        HashRepr::Packed(Packed::default())
    }
}

/// The table form, with its byte total kept as it changes (field and value
/// bytes plus [`HASH_FIELD_OVERHEAD`] per field).
#[derive(Debug, Clone, Default)]
struct FieldTable {
    map: Dense<Field>,
    bytes: usize,
}

impl PartialEq for HashValue {
    fn eq(&self, other: &HashValue) -> bool {
        self.len() == other.len() && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

impl HashValue {
    pub fn len(&self) -> usize {
        match &self.repr {
            HashRepr::Packed(p) => p.len(),
            HashRepr::Table(t) => t.map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the hash is in its packed form (see [`super::packed`]).
    pub fn is_packed(&self) -> bool {
        matches!(self.repr, HashRepr::Packed(_))
    }

    pub fn mem_bytes(&self) -> usize {
        match &self.repr {
            HashRepr::Packed(p) => p.mem_bytes(),
            HashRepr::Table(t) => t.bytes,
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            HashRepr::Packed(p) => p.find(field).map(|(_, e)| e.payload),
            HashRepr::Table(t) => {
                let i = t.map.find(field)?;
                t.map.get(i).map(|(_, v)| &v[..])
            }
        }
    }

    /// Sets `field`; returns true if the field is new. A packed hash
    /// converts to the table form when the pair would not fit it.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        if let HashRepr::Packed(p) = &mut self.repr {
            let found = p.find(field).map(|(_, e)| (e.at, e.next));
            let fits = packed::fits(field) && packed::fits(value);
            match found {
                Some((at, next)) if fits => {
                    p.replace(at, next, field, value);
                    return false;
                }
                None if fits && p.len() < packed::PACKED_MAX_LEN => {
                    p.insert(p.end(), field, value);
                    return true;
                }
                _ => self.unpack(),
            }
        }
        let HashRepr::Table(t) = &mut self.repr else {
            unreachable!("unpacked above")
        };
        if let Some(i) = t.map.find(field) {
            if let Some((_, old)) = t.map.get_mut(i) {
                t.bytes = t.bytes - old.len() + value.len();
                *old = value.into();
            }
            return false;
        }
        if !t.map.push((field.into(), value.into())) {
            return false;
        }
        t.bytes += field.len() + value.len() + HASH_FIELD_OVERHEAD;
        true
    }

    /// Prepares for up to `additional` new fields (an HSET's): a packed
    /// hash they could take past [`packed::PACKED_MAX_LEN`] moves to the
    /// table now, rather than after inserts into the packed form that the
    /// conversion would undo.
    pub fn reserve(&mut self, additional: usize) {
        if self.is_packed() && self.len().saturating_add(additional) > packed::PACKED_MAX_LEN {
            self.unpack();
        }
    }

    /// Converts a packed hash to the table form, pairs in the same
    /// positions.
    fn unpack(&mut self) {
        let mut t = FieldTable::default();
        t.map.items.reserve_exact(self.len() + 1);
        for (f, v) in self.iter() {
            t.map.push((f.into(), v.into()));
            t.bytes += f.len() + v.len() + HASH_FIELD_OVERHEAD;
        }
        self.repr = HashRepr::Table(Box::new(t));
    }

    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            HashRepr::Packed(p) => {
                let Some((at, next)) = p.find(field).map(|(_, e)| (e.at, e.next)) else {
                    return false;
                };
                p.remove(at, next, 1);
            }
            HashRepr::Table(t) => {
                let Some(i) = t.map.find(field) else {
                    return false;
                };
                let (f, v) = t.map.take_at(i);
                t.bytes -= f.len() + v.len() + HASH_FIELD_OVERHEAD;
            }
        }
        true
    }

    /// Fields and values, in position order.
    pub fn iter(&self) -> HashIter<'_> {
        match &self.repr {
            HashRepr::Packed(p) => HashIter(Pairs::Packed {
                entries: p.entries(),
                left: p.len(),
            }),
            HashRepr::Table(t) => HashIter(Pairs::Table(t.map.iter())),
        }
    }

    /// The field and value at position `i` (`i < len`; see [`scan_step`]):
    /// O(1) in a table, a walk in a packed hash.
    pub fn get_at(&self, i: usize) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            HashRepr::Packed(_) => self.iter().nth(i),
            HashRepr::Table(t) => t.map.get(i).map(|(k, v)| (&k[..], &v[..])),
        }
    }

    /// The fields and values at `positions` (each `< len`), in that order:
    /// O(1) each (a packed hash is walked once first), for random picks.
    pub fn at_positions(&self, positions: impl IntoIterator<Item = usize>) -> Vec<(&[u8], &[u8])> {
        match &self.repr {
            HashRepr::Packed(_) => {
                let pairs: Vec<(&[u8], &[u8])> = self.iter().collect();
                positions
                    .into_iter()
                    .filter_map(|i| pairs.get(i).copied())
                    .collect()
            }
            HashRepr::Table(_) => positions
                .into_iter()
                .filter_map(|i| self.get_at(i))
                .collect(),
        }
    }
}

/// Iterator over a hash's fields and values, in position order.
pub struct HashIter<'a>(Pairs<'a>);

enum Pairs<'a> {
    Packed {
        entries: packed::Entries<'a>,
        left: usize,
    },
    Table(std::slice::Iter<'a, Field>),
}

impl<'a> Iterator for HashIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        match &mut self.0 {
            Pairs::Packed { entries, left } => {
                let e = entries.next()?;
                *left -= 1;
                Some((e.key, e.payload))
            }
            Pairs::Table(it) => it.next().map(|(k, v)| (&k[..], &v[..])),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            Pairs::Packed { left, .. } => *left,
            Pairs::Table(it) => it.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for HashIter<'_> {}

/// Shrinks a buffer that has become mostly empty, so a collection that grew
/// and then emptied out does not keep its peak allocation.
macro_rules! shrink_if_sparse {
    ($buf:expr) => {
        if $buf.capacity() > 64 && $buf.len() < $buf.capacity() / 4 {
            $buf.shrink_to($buf.len() * 2);
        }
    };
}

/// A list: a ring buffer of elements, with its byte total kept as it changes.
/// Indexes here are plain positions; commands convert Redis's negative
/// indexes before calling.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListValue {
    items: VecDeque<Box<[u8]>>,
    bytes: usize,
}

impl ListValue {
    fn cost(v: &[u8]) -> usize {
        v.len() + LIST_ELEM_OVERHEAD
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn mem_bytes(&self) -> usize {
        self.bytes
    }

    pub fn push_front(&mut self, v: &[u8]) {
        self.bytes += Self::cost(v);
        self.items.push_front(v.into());
    }

    pub fn push_back(&mut self, v: &[u8]) {
        self.bytes += Self::cost(v);
        self.items.push_back(v.into());
    }

    pub fn pop_front(&mut self) -> Option<Box<[u8]>> {
        let v = self.items.pop_front()?;
        self.bytes -= Self::cost(&v);
        shrink_if_sparse!(self.items);
        Some(v)
    }

    pub fn pop_back(&mut self) -> Option<Box<[u8]>> {
        let v = self.items.pop_back()?;
        self.bytes -= Self::cost(&v);
        shrink_if_sparse!(self.items);
        Some(v)
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.items.get(i).map(|v| &v[..])
    }

    /// Replaces the element at `i`; false if `i` is out of range.
    pub fn set(&mut self, i: usize, v: &[u8]) -> bool {
        let Some(slot) = self.items.get_mut(i) else {
            return false;
        };
        self.bytes = self.bytes - slot.len() + v.len();
        *slot = v.into();
        true
    }

    /// Inserts `v` before position `i` (`i == len` appends).
    pub fn insert(&mut self, i: usize, v: &[u8]) {
        self.bytes += Self::cost(v);
        self.items.insert(i.min(self.items.len()), v.into());
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.items.iter().map(|v| &v[..])
    }

    /// Elements `start..=end` (both in range, `start <= end`).
    pub fn range(&self, start: usize, end: usize) -> impl DoubleEndedIterator<Item = &[u8]> {
        self.items.range(start..=end).map(|v| &v[..])
    }

    /// Keeps only positions `start..end`; returns how many elements left.
    pub fn retain_range(&mut self, start: usize, end: usize) -> usize {
        let before = self.items.len();
        let end = end.min(before);
        let start = start.min(end);
        let mut freed = 0;
        for v in self.items.drain(end..) {
            freed += Self::cost(&v);
        }
        for v in self.items.drain(..start) {
            freed += Self::cost(&v);
        }
        self.bytes -= freed;
        shrink_if_sparse!(self.items);
        before - self.items.len()
    }

    /// Removes up to `limit` elements equal to `v` (0 = all), scanning from
    /// the tail when `from_tail`. Returns the number removed and the work
    /// done: elements examined plus elements moved to close the gaps.
    pub fn remove_matching(&mut self, v: &[u8], limit: usize, from_tail: bool) -> (usize, usize) {
        let limit = if limit == 0 { usize::MAX } else { limit };
        let len = self.items.len();
        // Phase 1: find the positions to remove (ascending).
        let mut hits = Vec::new();
        let mut walked = 0;
        for k in 0..len {
            if hits.len() == limit {
                break;
            }
            let i = if from_tail { len - 1 - k } else { k };
            walked += 1;
            if &self.items[i][..] == v {
                hits.push(i);
            }
        }
        if from_tail {
            hits.reverse();
        }
        let (Some(&first), Some(&last)) = (hits.first(), hits.last()) else {
            return (0, walked);
        };
        // Phase 2: close the gaps from the shorter side: the elements after
        // the first hit move down, or those before the last hit move up, so
        // removing near either end costs about as much as the walk to it.
        let k = hits.len();
        let mut moved = 0;
        if len - first <= last + 1 {
            let (mut w, mut h) = (first, 0);
            for r in first..len {
                if hits.get(h) == Some(&r) {
                    h += 1;
                } else {
                    self.items.swap(w, r);
                    w += 1;
                    moved += 1;
                }
            }
            self.items.truncate(w);
        } else {
            let (mut w, mut h) = (last, k);
            for r in (0..=last).rev() {
                if h > 0 && hits[h - 1] == r {
                    h -= 1;
                } else {
                    self.items.swap(w, r);
                    w = w.saturating_sub(1);
                    moved += 1;
                }
            }
            self.items.drain(..k);
        }
        self.bytes -= k * Self::cost(v);
        shrink_if_sparse!(self.items);
        (k, walked + moved)
    }
}

/// A set: its members in a dense table (a random member is O(1), SSCAN
/// resumes at a position; each member is stored once).
#[derive(Debug, Clone, Default)]
pub struct SetValue {
    members: Dense<Box<[u8]>>,
    bytes: usize,
}

impl PartialEq for SetValue {
    fn eq(&self, other: &SetValue) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains(m))
    }
}

impl SetValue {
    fn cost(m: &[u8]) -> usize {
        m.len() + SET_MEMBER_OVERHEAD
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn mem_bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        self.members.find(m).is_some()
    }

    /// Adds `m`; true if it was not a member.
    pub fn insert(&mut self, m: &[u8]) -> bool {
        if self.contains(m) || !self.members.push(m.into()) {
            return false;
        }
        self.bytes += Self::cost(m);
        true
    }

    /// Removes `m`; true if it was a member.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        let Some(i) = self.members.find(m) else {
            return false;
        };
        self.take_at(i);
        true
    }

    fn take_at(&mut self, i: usize) -> Box<[u8]> {
        let taken = self.members.take_at(i);
        self.bytes -= Self::cost(&taken);
        taken
    }

    /// Members, in position order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.members.iter().map(|m| &m[..])
    }

    /// The member at position `i` (`i < len`; see [`scan_step`]).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.members.get(i).map(|m| &m[..])
    }

    /// A uniformly random member.
    pub fn random(&self, rng: &mut impl Rng) -> Option<&[u8]> {
        if self.is_empty() {
            return None;
        }
        self.get(rng.random_range(0..self.len()))
    }

    /// Removes and returns a uniformly random member.
    pub fn pop_random(&mut self, rng: &mut impl Rng) -> Option<Box<[u8]>> {
        if self.is_empty() {
            return None;
        }
        let i = rng.random_range(0..self.len());
        Some(self.take_at(i))
    }
}

/// What a [`Dense`] table is keyed by.
trait Keyed {
    fn key(&self) -> &[u8];
}

impl Keyed for Box<[u8]> {
    fn key(&self) -> &[u8] {
        self
    }
}

impl Keyed for Field {
    fn key(&self) -> &[u8] {
        &self.0
    }
}

/// Entries in a vector, indexed by a hash table of their positions (`u32`):
/// lookups by key are O(1), and so is the entry at a given position — a
/// random one, or where a SCAN left off. A removal moves the last entry into
/// the hole, an insert appends: positions only ever move downwards, which is
/// what [`scan_step`] relies on.
#[derive(Debug, Clone, Default)]
struct Dense<E> {
    items: Vec<E>,
    index: Index<u32>,
    hasher: DefaultHashBuilder,
}

impl<E: Keyed> Dense<E> {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The position of the entry keyed `key`.
    fn find(&self, key: &[u8]) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&i| self.items[i as usize].key() == key)
            .map(|&i| i as usize)
    }

    fn get(&self, i: usize) -> Option<&E> {
        self.items.get(i)
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut E> {
        self.items.get_mut(i)
    }

    /// Appends `e`, whose key must not be present; false if the table is at
    /// its limit (positions are u32: 2^32 entries would need >100 GiB first).
    fn push(&mut self, e: E) -> bool {
        if self.items.len() >= u32::MAX as usize {
            return false;
        }
        let Dense {
            items,
            index,
            hasher,
        } = self;
        let hash = hasher.hash_one(e.key());
        index.insert_unique(hash, items.len() as u32, |&i| {
            hasher.hash_one(items[i as usize].key())
        });
        items.push(e);
        true
    }

    /// Removes and returns the entry at position `i` (`i < len`): the last
    /// entry moves into its place, and its index entry follows.
    fn take_at(&mut self, i: usize) -> E {
        let hash = self.hasher.hash_one(self.items[i].key());
        if let Ok(entry) = self.index.find_entry(hash, |&j| j as usize == i) {
            entry.remove();
        }
        let last = self.items.len() - 1;
        let taken = self.items.swap_remove(i);
        if i != last {
            let moved = self.hasher.hash_one(self.items[i].key());
            if let Some(slot) = self.index.find_mut(moved, |&j| j as usize == last) {
                *slot = i as u32;
            }
        }
        shrink_if_sparse!(self.items);
        taken
    }

    fn iter(&self) -> std::slice::Iter<'_, E> {
        self.items.iter()
    }
}

/// A collection stored (boxed) in a [`Value`] variant: how the command layer
/// finds one and stores a new one (`cmd::read_as` / `cmd::write_as`).
pub trait Collection: Default {
    /// Redis deletes emptied hashes, lists, sets and sorted sets; a stream
    /// stays, empty.
    const DROP_WHEN_EMPTY: bool = true;
    fn of(v: &Value) -> Option<&Self>;
    fn of_mut(v: &mut Value) -> Option<&mut Self>;
    fn into_value(self) -> Value;
    fn is_empty_collection(&self) -> bool;
}

macro_rules! collection {
    ($ty:ty, $variant:ident) => {
        impl Collection for $ty {
            fn of(v: &Value) -> Option<&Self> {
                match v {
                    Value::$variant(c) => Some(c),
                    _ => None,
                }
            }
            fn of_mut(v: &mut Value) -> Option<&mut Self> {
                match v {
                    Value::$variant(c) => Some(c),
                    _ => None,
                }
            }
            fn into_value(self) -> Value {
                Value::$variant(Box::new(self))
            }
            fn is_empty_collection(&self) -> bool {
                self.is_empty()
            }
        }
    };
}

collection!(HashValue, Hash);
collection!(ListValue, List);
collection!(SetValue, Set);
collection!(super::zset::ZSetValue, ZSet);

impl Collection for super::stream::StreamValue {
    const DROP_WHEN_EMPTY: bool = false;
    fn of(v: &Value) -> Option<&Self> {
        match v {
            Value::Stream(c) => Some(c),
            _ => None,
        }
    }
    fn of_mut(v: &mut Value) -> Option<&mut Self> {
        match v {
            Value::Stream(c) => Some(c),
            _ => None,
        }
    }
    fn into_value(self) -> Value {
        Value::Stream(Box::new(self))
    }
    fn is_empty_collection(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::scan::scan_step;

    /// Deleting members moves the last one into the hole: a walk down the
    /// positions still meets every member present throughout.
    #[test]
    fn set_and_hash_positions_only_move_down() {
        let mut set = SetValue::default();
        let mut hash = HashValue::default();
        for i in 0..500 {
            set.insert(format!("m{i}").as_bytes());
            hash.insert(format!("m{i}").as_bytes(), b"v");
        }
        let (mut seen_set, mut seen_hash) = (Vec::new(), Vec::new());
        let (mut cs, mut ch) = (0u64, 0u64);
        for round in 0.. {
            let (next_s, _) = scan_step(set.len(), cs, 3, |p| {
                seen_set.push(set.get(p).map(<[u8]>::to_vec));
                true
            });
            let (next_h, _) = scan_step(hash.len(), ch, 3, |p| {
                seen_hash.push(hash.get_at(p).map(|(f, _)| f.to_vec()));
                true
            });
            (cs, ch) = (next_s, next_h);
            if cs == 0 && ch == 0 {
                break;
            }
            // Odd members leave, new ones arrive.
            let gone = format!("m{}", 2 * round + 1);
            set.remove(gone.as_bytes());
            hash.remove(gone.as_bytes());
            set.insert(format!("new{round}").as_bytes());
            hash.insert(format!("new{round}").as_bytes(), b"v");
        }
        for i in (0..500).step_by(2) {
            let m = Some(format!("m{i}").into_bytes());
            assert!(seen_set.contains(&m), "set m{i}");
            assert!(seen_hash.contains(&m), "hash m{i}");
        }
    }

    /// What a hash is charged: its packed block, or its table's fields.
    fn hash_charge(h: &HashValue) -> usize {
        if h.is_packed() {
            packed::PACKED_OVERHEAD + h.iter().map(|(f, v)| 2 + f.len() + v.len()).sum::<usize>()
        } else {
            h.iter()
                .map(|(f, v)| f.len() + v.len() + HASH_FIELD_OVERHEAD)
                .sum()
        }
    }

    #[test]
    fn hash_values_follow_their_fields() {
        // 100 fields stay packed, 300 go to the table.
        for n in [100, 300] {
            let mut h = HashValue::default();
            for i in 0..n {
                assert!(h.insert(format!("f{i}").as_bytes(), format!("v{i}").as_bytes()));
            }
            assert_eq!(h.is_packed(), n <= packed::PACKED_MAX_LEN);
            assert!(!h.insert(b"f7", b"seven"));
            for i in (0..n).step_by(3) {
                assert!(h.remove(format!("f{i}").as_bytes()));
            }
            assert!(!h.remove(b"f0"));
            for i in 0..n {
                let want = match i {
                    7 => Some(b"seven".to_vec()),
                    i if i % 3 == 0 => None,
                    i => Some(format!("v{i}").into_bytes()),
                };
                assert_eq!(h.get(format!("f{i}").as_bytes()).map(<[u8]>::to_vec), want);
            }
            assert_eq!(h.mem_bytes(), hash_charge(&h));
            let copy = h.clone();
            assert_eq!(copy, h);
            h.insert(b"f1", b"other");
            assert_ne!(copy, h);
        }
    }

    /// The packed hash against a model (pairs in insertion order, a removal
    /// shifting the rest down, as Redis's listpack), through the conversion
    /// at the 129th field and at a 65-byte field or value; then the table
    /// form against the same model's contents.
    #[test]
    fn packed_hash_matches_a_model() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for round in 0..40 {
            let mut h = HashValue::default();
            let mut model: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let fields = if round % 2 == 0 { 120 } else { 140 };
            for step in 0..800 {
                let f = format!("f{}", rng.random_range(0..fields)).into_bytes();
                let long = round % 4 == 1 && step == 400;
                let v = vec![b'v'; if long { 65 } else { rng.random_range(0..=64) }];
                let was_packed = h.is_packed();
                let at = model.iter().position(|(mf, _)| *mf == f);
                if rng.random_bool(0.7) {
                    assert_eq!(h.insert(&f, &v), at.is_none());
                    match at {
                        Some(i) => model[i].1 = v.clone(),
                        None => model.push((f.clone(), v.clone())),
                    }
                    let must_convert = v.len() > packed::PACKED_MAX_BYTES
                        || (at.is_none() && model.len() > packed::PACKED_MAX_LEN);
                    assert_eq!(was_packed && !h.is_packed(), was_packed && must_convert);
                } else {
                    assert_eq!(h.remove(&f), at.is_some());
                    if let Some(i) = at {
                        model.remove(i);
                    }
                    assert_eq!(h.is_packed(), was_packed, "never converts back");
                }
                assert_eq!(h.len(), model.len());
                assert_eq!(h.get(&f), model.iter().find(|p| p.0 == f).map(|p| &p.1[..]));
                if step % 40 == 0 || h.is_packed() != was_packed {
                    let mut got: Vec<(&[u8], &[u8])> = h.iter().collect();
                    let mut want: Vec<(&[u8], &[u8])> =
                        model.iter().map(|(f, v)| (&f[..], &v[..])).collect();
                    if h.is_packed() {
                        assert_eq!(got, want, "insertion order");
                    } else {
                        got.sort();
                        want.sort();
                        assert_eq!(got, want);
                    }
                    for (i, p) in h.iter().enumerate() {
                        assert_eq!(h.get_at(i), Some(p));
                    }
                    let picks: Vec<usize> = (0..20)
                        .map(|_| rng.random_range(0..h.len().max(1)))
                        .collect();
                    let by_one: Vec<_> = picks.iter().filter_map(|&i| h.get_at(i)).collect();
                    assert_eq!(h.at_positions(picks), by_one);
                    assert_eq!(h.mem_bytes(), hash_charge(&h));
                }
            }
        }
    }

    #[test]
    fn reserve_converts_only_what_would_outgrow_the_packed_form() {
        let mut h = HashValue::default();
        h.insert(b"f", b"v");
        h.reserve(packed::PACKED_MAX_LEN - 1);
        assert!(h.is_packed());
        h.reserve(packed::PACKED_MAX_LEN);
        assert!(!h.is_packed());
        assert_eq!(h.get(b"f"), Some(&b"v"[..]));
        assert_eq!(h.mem_bytes(), 2 + HASH_FIELD_OVERHEAD);
    }

    #[test]
    fn a_packed_hash_is_a_small_block() {
        assert_eq!(std::mem::size_of::<HashValue>(), 24);
        let mut h = HashValue::default();
        h.insert(&[b'f'; 64], &[b'v'; 64]);
        assert!(h.is_packed());
        assert_eq!(h.mem_bytes(), packed::PACKED_OVERHEAD + 2 + 128);
        h.insert(b"g", &[b'v'; 65]);
        assert!(!h.is_packed());
        assert_eq!(h.mem_bytes(), 128 + 66 + 2 * HASH_FIELD_OVERHEAD);
        assert_eq!(h.iter().next(), Some((&[b'f'; 64][..], &[b'v'; 64][..])));
    }

    /// LREM's removal against a model, from either end, with limits.
    #[test]
    fn remove_matching_like_a_model() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..2000 {
            let n = rng.random_range(0..40);
            let items: Vec<Vec<u8>> = (0..n)
                .map(|i| {
                    if rng.random_bool(0.3) {
                        b"x".to_vec()
                    } else {
                        format!("e{i}").into_bytes()
                    }
                })
                .collect();
            let mut list = ListValue::default();
            for it in &items {
                list.push_back(it);
            }
            let limit = rng.random_range(0..5);
            let from_tail = rng.random_bool(0.5);
            let (removed, _) = list.remove_matching(b"x", limit, from_tail);
            // The model: drop the first `limit` (all if 0) from that end.
            let mut keep: Vec<Option<&Vec<u8>>> = items.iter().map(Some).collect();
            let mut left = if limit == 0 { usize::MAX } else { limit };
            let order: Vec<usize> = if from_tail {
                (0..n).rev().collect()
            } else {
                (0..n).collect()
            };
            for i in order {
                if left > 0 && items[i] == b"x" {
                    keep[i] = None;
                    left -= 1;
                }
            }
            let want: Vec<&[u8]> = keep.into_iter().flatten().map(|v| &v[..]).collect();
            assert_eq!(list.iter().collect::<Vec<_>>(), want);
            assert_eq!(removed, n - want.len());
            let bytes: usize = want.iter().map(|v| ListValue::cost(v)).sum();
            assert_eq!(list.mem_bytes(), bytes);
        }
        // Removing the head of a long list moves nothing.
        let mut list = ListValue::default();
        list.push_back(b"x");
        for i in 0..10_000 {
            list.push_back(format!("e{i}").as_bytes());
        }
        assert_eq!(list.remove_matching(b"x", 1, false), (1, 1));
        assert_eq!(list.len(), 10_000);
    }
}
