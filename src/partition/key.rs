//! [`Key`]: a key name as the keyspace stores it, with the key's access
//! stamp (the LRU clock). Names up to [`INLINE_MAX`] bytes (most real keys:
//! `user:1234`, `session:ab12...`) live inside the table's entry — no
//! allocation, and no pointer to follow when a lookup compares names.
//! Longer names are boxed.
//!
//! Why the stamp lives here and not beside the deadline: both forms have
//! four bytes to spare in 24 (the tag and an inline name's length are one
//! byte each; a boxed name is 16), and an entry's other words (value handle,
//! deadline) have none, so the stamp here makes a table entry 56 bytes where
//! it was 64 (9 B per key with the vector's growth slack).
//!
//! Hashing and equality are those of the bytes, so a table keyed by `Key`
//! is searched with a plain `&[u8]`.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// Longest name kept inline (the inline form is 24 bytes, like a `Vec`:
/// tag, length, name and stamp).
pub const INLINE_MAX: usize = 18;

/// A key name and its access stamp.
#[derive(Clone)]
pub enum Key {
    Inline {
        len: u8,
        bytes: [u8; INLINE_MAX],
        stamp: u32,
    },
    Heap {
        name: Box<[u8]>,
        stamp: u32,
    },
}

impl Key {
    /// `name` stamped `stamp`.
    pub fn new(name: &[u8], stamp: u32) -> Key {
        if name.len() <= INLINE_MAX {
            let mut bytes = [0u8; INLINE_MAX];
            bytes[..name.len()].copy_from_slice(name);
            Key::Inline {
                len: name.len() as u8,
                bytes,
                stamp,
            }
        } else {
            Key::Heap {
                name: name.into(),
                stamp,
            }
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes, .. } => &bytes[..usize::from(*len)],
            Key::Heap { name, .. } => name,
        }
    }

    /// The access stamp (the keyspace's LRU clock when the key was last
    /// read or written).
    pub fn stamp(&self) -> u32 {
        match self {
            Key::Inline { stamp, .. } | Key::Heap { stamp, .. } => *stamp,
        }
    }

    pub fn set_stamp(&mut self, to: u32) {
        match self {
            Key::Inline { stamp, .. } | Key::Heap { stamp, .. } => *stamp = to,
        }
    }
}

impl From<&[u8]> for Key {
    /// `b`, stamped 0.
    fn from(b: &[u8]) -> Key {
        Key::new(b, 0)
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl Hash for Key {
    /// Exactly `[u8]`'s hash, as `Borrow` requires.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_keys_behave_as_bytes() {
        let short = Key::from(&b"user:1234"[..]);
        let long = Key::from(&b"a-key-name-longer-than-eighteen-bytes"[..]);
        assert!(matches!(short, Key::Inline { .. }));
        assert!(matches!(long, Key::Heap { .. }));
        assert_eq!(short.as_bytes(), b"user:1234");
        assert_eq!(std::mem::size_of::<Key>(), 24);
        let mut map = hashbrown::HashMap::new();
        map.insert(short.clone(), 1);
        map.insert(long.clone(), 2);
        assert_eq!(map.get(&b"user:1234"[..]), Some(&1));
        assert_eq!(map.get(long.as_bytes()), Some(&2));
        assert_eq!(Key::from(&b""[..]).as_bytes(), b"");
        assert_eq!(Key::from(&[7u8; 18][..]).as_bytes(), &[7u8; 18]);
        let mut stamped = Key::new(b"k", 7);
        assert_eq!(stamped.stamp(), 7);
        stamped.set_stamp(9);
        assert_eq!((stamped.stamp(), stamped.as_bytes()), (9, &b"k"[..]));
    }
}
