//! Value types stored under a key, and what each costs in memory.
//!
//! Accounting is exact and O(1) per change: every value knows its payload
//! bytes, collections keep a running total as they change. The per-entry and
//! per-element overheads are documented constants (the README repeats them),
//! close to what the allocator really spends on this layout.
//!
//! This file holds the small collections (hash, list, set); the sorted set
//! lives in [`super::zset`], the stream in [`super::stream`]. HyperLogLogs and
//! bitmaps are strings, as in Redis.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use rand::Rng;

pub use super::stream::{
    CONSUMER_OVERHEAD, GROUP_OVERHEAD, PENDING_OVERHEAD, STREAM_ENTRY_OVERHEAD,
    STREAM_FIELD_OVERHEAD, StreamValue,
};
pub use super::zset::{ZSET_MEMBER_OVERHEAD, ZSetValue};

/// Bytes charged per key on top of key and value bytes: the table slot
/// (key box, value, expiry), the allocator's rounding of two small blocks.
pub const ENTRY_OVERHEAD: usize = 64;
/// Bytes charged per hash field on top of field and value bytes.
pub const HASH_FIELD_OVERHEAD: usize = 48;
/// Bytes charged per list element on top of its bytes: the 16-byte slot in
/// the ring buffer and the element's own heap block (header and rounding).
pub const LIST_ELEM_OVERHEAD: usize = 32;
/// Bytes charged per set member on top of its bytes: the 16-byte slot in the
/// member vector, the 4-byte index entry and its control byte at the table's
/// load factor, and the member's heap block (header and rounding).
pub const SET_MEMBER_OVERHEAD: usize = 40;

/// The type of a value, as `TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// A hash: field → value, with its byte total kept as it changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HashValue {
    map: HashMap<Box<[u8]>, Box<[u8]>>,
    bytes: usize,
}

impl HashValue {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn mem_bytes(&self) -> usize {
        self.bytes
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.map.get(field).map(|v| &v[..])
    }

    /// Sets `field`; returns true if the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        match self.map.get_mut(field) {
            Some(old) => {
                self.bytes = self.bytes - old.len() + value.len();
                *old = value.into();
                false
            }
            None => {
                self.bytes += field.len() + value.len() + HASH_FIELD_OVERHEAD;
                self.map.insert(field.into(), value.into());
                true
            }
        }
    }

    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self.map.remove(field) {
            Some(v) => {
                self.bytes -= field.len() + v.len() + HASH_FIELD_OVERHEAD;
                true
            }
            None => false,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.map.iter().map(|(k, v)| (&k[..], &v[..]))
    }
}

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
    /// the tail when `from_tail`. Returns the number removed and the number
    /// of elements examined.
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
        if hits.is_empty() {
            return (0, walked);
        }
        // Phase 2: one pass that drops exactly those positions.
        let (mut pos, mut next) = (0usize, 0usize);
        self.items.retain(|_| {
            let drop = hits.get(next) == Some(&pos);
            next += usize::from(drop);
            pos += 1;
            !drop
        });
        self.bytes -= hits.len() * Self::cost(v);
        shrink_if_sparse!(self.items);
        (hits.len(), walked)
    }
}

/// A set: members in a vector (so a random member is O(1)) indexed by a hash
/// table of positions (so membership is O(1)); each member is stored once.
#[derive(Debug, Clone, Default)]
pub struct SetValue {
    members: Vec<Box<[u8]>>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
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

    fn find(&self, m: &[u8]) -> Option<usize> {
        let hash = self.hasher.hash_one(m);
        self.index
            .find(hash, |&i| &*self.members[i as usize] == m)
            .map(|&i| i as usize)
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        self.find(m).is_some()
    }

    /// Adds `m`; true if it was not a member.
    pub fn insert(&mut self, m: &[u8]) -> bool {
        // Positions are u32: a set of 2^32 members would need >100 GiB first.
        if self.contains(m) || self.members.len() >= u32::MAX as usize {
            return false;
        }
        let SetValue {
            members,
            index,
            hasher,
            ..
        } = self;
        let hash = hasher.hash_one(m);
        index.insert_unique(hash, members.len() as u32, |&i| {
            hasher.hash_one(&*members[i as usize])
        });
        members.push(m.into());
        self.bytes += Self::cost(m);
        true
    }

    /// Removes `m`; true if it was a member.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        let Some(i) = self.find(m) else {
            return false;
        };
        self.take_at(i);
        true
    }

    /// Removes and returns the member at position `i` (`i < len`): the last
    /// member moves into its place, and its index entry follows.
    fn take_at(&mut self, i: usize) -> Box<[u8]> {
        let hash = self.hasher.hash_one(&*self.members[i]);
        if let Ok(entry) = self.index.find_entry(hash, |&j| j as usize == i) {
            entry.remove();
        }
        let last = self.members.len() - 1;
        let taken = self.members.swap_remove(i);
        if i != last {
            let moved = self.hasher.hash_one(&*self.members[i]);
            if let Some(slot) = self.index.find_mut(moved, |&j| j as usize == last) {
                *slot = i as u32;
            }
        }
        self.bytes -= Self::cost(&taken);
        shrink_if_sparse!(self.members);
        taken
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.members.iter().map(|m| &m[..])
    }

    /// The member at position `i` of the (unordered) member vector.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.members.get(i).map(|m| &m[..])
    }

    /// A uniformly random member.
    pub fn random(&self, rng: &mut impl Rng) -> Option<&[u8]> {
        if self.members.is_empty() {
            return None;
        }
        self.get(rng.random_range(0..self.members.len()))
    }

    /// Removes and returns a uniformly random member.
    pub fn pop_random(&mut self, rng: &mut impl Rng) -> Option<Box<[u8]>> {
        if self.members.is_empty() {
            return None;
        }
        let i = rng.random_range(0..self.members.len());
        Some(self.take_at(i))
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
