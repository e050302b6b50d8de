//! [`Key`]: a key name as the keyspace stores it. Names up to
//! [`INLINE_MAX`] bytes (most real keys: `user:1234`, `session:ab12...`) live
//! inside the hash table's slot — no allocation, and no pointer to follow
//! when a lookup compares names. Longer names are boxed.
//!
//! Hashing and equality are those of the bytes, so a table keyed by `Key`
//! is searched with a plain `&[u8]`.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// Longest name kept inline (the inline form is 24 bytes, like a `Vec`).
pub const INLINE_MAX: usize = 22;

/// A key name.
#[derive(Clone)]
pub enum Key {
    Inline { len: u8, bytes: [u8; INLINE_MAX] },
    Heap(Box<[u8]>),
}

impl Key {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }
}

impl From<&[u8]> for Key {
    fn from(b: &[u8]) -> Key {
        if b.len() <= INLINE_MAX {
            let mut bytes = [0u8; INLINE_MAX];
            bytes[..b.len()].copy_from_slice(b);
            Key::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(b.into())
        }
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
        let long = Key::from(&b"a-key-name-longer-than-twenty-two-bytes"[..]);
        assert!(matches!(short, Key::Inline { .. }));
        assert!(matches!(long, Key::Heap(_)));
        assert_eq!(short.as_bytes(), b"user:1234");
        assert_eq!(std::mem::size_of::<Key>(), 24);
        let mut map = hashbrown::HashMap::new();
        map.insert(short.clone(), 1);
        map.insert(long.clone(), 2);
        assert_eq!(map.get(&b"user:1234"[..]), Some(&1));
        assert_eq!(map.get(long.as_bytes()), Some(&2));
        assert_eq!(Key::from(&b""[..]).as_bytes(), b"");
        assert_eq!(Key::from(&[7u8; 22][..]).as_bytes(), &[7u8; 22]);
    }
}
