//! Value types stored under a key, and what each costs in memory.
//!
//! Accounting is exact and O(1) per change: every value knows its payload
//! bytes, collections keep a running total as they change. The per-entry and
//! per-element overheads are documented constants (the README repeats them),
//! close to what the allocator really spends on this layout.

use hashbrown::HashMap;

/// Bytes charged per key on top of key and value bytes: the table slot
/// (key box, value, expiry), the allocator's rounding of two small blocks.
pub const ENTRY_OVERHEAD: usize = 64;
/// Bytes charged per hash field on top of field and value bytes.
pub const HASH_FIELD_OVERHEAD: usize = 48;

/// The type of a value, as `TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    String,
    Hash,
}

impl ValueType {
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Hash => "hash",
        }
    }

    pub fn from_name(name: &[u8]) -> Option<ValueType> {
        if name.eq_ignore_ascii_case(b"string") {
            Some(ValueType::String)
        } else if name.eq_ignore_ascii_case(b"hash") {
            Some(ValueType::Hash)
        } else {
            None
        }
    }
}

/// A stored value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Vec<u8>),
    Hash(Box<HashValue>),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Str(_) => ValueType::String,
            Value::Hash(_) => ValueType::Hash,
        }
    }

    /// Payload bytes charged for this value (without the entry overhead).
    pub fn mem_bytes(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::Hash(h) => h.mem_bytes(),
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
