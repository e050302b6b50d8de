//! A cache's Lua script store: SHA1 (hex, lower case) → script body, for
//! `EVALSHA` and `SCRIPT LOAD | EXISTS | FLUSH`. One store per cache, never
//! shared between caches: a SHA loaded in one cache is unknown in another.
//!
//! Bounded, as Redis 7.4 bounds scripts added by `EVAL`: bodies stored by
//! `EVAL` are evicted oldest-used first once the store holds more than
//! [`MAX_EVAL_SCRIPTS`] of them or more than [`MAX_BYTES`]; bodies stored by
//! `SCRIPT LOAD` are kept until `SCRIPT FLUSH`, and a `SCRIPT LOAD` that would
//! pass [`MAX_BYTES`] with nothing left to evict is refused.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use parking_lot::Mutex;

/// Most bodies added by `EVAL` kept at once (Redis 7.4 keeps 500).
pub const MAX_EVAL_SCRIPTS: usize = 500;
/// Most script bytes one cache keeps (bodies of `EVAL` and `SCRIPT LOAD`).
pub const MAX_BYTES: usize = 64 * 1024 * 1024;

pub use crate::cmd::script::sha1_hex;

/// How a body entered the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `EVAL`: evictable.
    Eval,
    /// `SCRIPT LOAD`: kept until `SCRIPT FLUSH`.
    Load,
}

struct Entry {
    body: Bytes,
    origin: Origin,
    /// Position in `eval_lru` (bodies added by `EVAL` only).
    used: u64,
}

#[derive(Default)]
struct Inner {
    scripts: HashMap<String, Entry>,
    /// Use counter → SHA of `EVAL` bodies, oldest use first.
    eval_lru: BTreeMap<u64, String>,
    bytes: usize,
    clock: u64,
}

/// Why a body was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreFull;

/// One cache's scripts.
#[derive(Default)]
pub struct ScriptStore {
    inner: Mutex<Inner>,
}

impl ScriptStore {
    /// Stores `body` under its SHA1 and returns the SHA1. A body already
    /// present is kept (a `SCRIPT LOAD` makes an `EVAL` body permanent).
    pub fn add(&self, body: &Bytes, origin: Origin) -> Result<String, StoreFull> {
        let sha = sha1_hex(body);
        let mut guard = self.inner.lock();
        let s = &mut *guard;
        s.clock += 1;
        let now = s.clock;
        if let Some(e) = s.scripts.get_mut(&sha) {
            let old = e.used;
            if origin == Origin::Load {
                e.origin = Origin::Load;
            }
            let evictable = e.origin == Origin::Eval;
            e.used = now;
            s.eval_lru.remove(&old);
            if evictable {
                s.eval_lru.insert(now, sha.clone());
            }
            return Ok(sha);
        }
        // Make room: evict the oldest-used EVAL bodies.
        let adds = usize::from(origin == Origin::Eval);
        while (s.bytes + body.len() > MAX_BYTES || s.eval_lru.len() + adds > MAX_EVAL_SCRIPTS)
            && let Some((_, old)) = s.eval_lru.pop_first()
        {
            if let Some(e) = s.scripts.remove(&old) {
                s.bytes -= e.body.len();
            }
        }
        if s.bytes + body.len() > MAX_BYTES {
            return Err(StoreFull);
        }
        s.bytes += body.len();
        if origin == Origin::Eval {
            s.eval_lru.insert(now, sha.clone());
        }
        s.scripts.insert(
            sha.clone(),
            Entry {
                body: body.clone(),
                origin,
                used: now,
            },
        );
        Ok(sha)
    }

    /// The body stored under `sha` (any case), marking it used.
    pub fn get(&self, sha: &[u8]) -> Option<Bytes> {
        if sha.len() != 40 {
            return None;
        }
        let key = std::str::from_utf8(sha).ok()?.to_ascii_lowercase();
        let mut guard = self.inner.lock();
        let s = &mut *guard;
        s.clock += 1;
        let now = s.clock;
        let e = s.scripts.get_mut(&key)?;
        let body = e.body.clone();
        if e.origin == Origin::Eval {
            let old = e.used;
            e.used = now;
            s.eval_lru.remove(&old);
            s.eval_lru.insert(now, key);
        }
        Some(body)
    }

    /// Whether `sha` (any case) is stored.
    pub fn contains(&self, sha: &[u8]) -> bool {
        let Ok(key) = std::str::from_utf8(sha) else {
            return false;
        };
        sha.len() == 40
            && self
                .inner
                .lock()
                .scripts
                .contains_key(&key.to_ascii_lowercase())
    }

    /// Forgets every script.
    pub fn flush(&self) {
        *self.inner.lock() = Inner::default();
    }

    /// Scripts stored and their bytes.
    pub fn len_and_bytes(&self) -> (usize, usize) {
        let s = self.inner.lock();
        (s.scripts.len(), s.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_is_redis_naming() {
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            sha1_hex(b"return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }

    #[test]
    fn eval_bodies_are_evicted_oldest_used_first_loaded_ones_kept() {
        let store = ScriptStore::default();
        let loaded = store
            .add(&Bytes::from_static(b"return 'kept'"), Origin::Load)
            .unwrap();
        let first = store
            .add(&Bytes::from_static(b"return 0"), Origin::Eval)
            .unwrap();
        let second = store
            .add(&Bytes::from_static(b"return 1"), Origin::Eval)
            .unwrap();
        // Using the first makes the second the oldest.
        assert!(store.get(first.to_uppercase().as_bytes()).is_some());
        for i in 2..=MAX_EVAL_SCRIPTS {
            store
                .add(&Bytes::from(format!("return {i}")), Origin::Eval)
                .unwrap();
        }
        assert!(store.contains(first.as_bytes()));
        assert!(!store.contains(second.as_bytes()));
        assert!(store.contains(loaded.as_bytes()));
        assert_eq!(store.len_and_bytes().0, MAX_EVAL_SCRIPTS + 1);
        store.flush();
        assert!(!store.contains(loaded.as_bytes()));
        assert_eq!(store.len_and_bytes(), (0, 0));
        assert!(store.get(b"short").is_none());
    }

    #[test]
    fn loads_past_the_byte_limit_are_refused() {
        let store = ScriptStore::default();
        let big = Bytes::from(vec![b'-'; MAX_BYTES / 2 + 1]);
        store.add(&big, Origin::Load).unwrap();
        let mut other = big.to_vec();
        other[0] = b' ';
        assert_eq!(store.add(&Bytes::from(other), Origin::Load), Err(StoreFull));
    }
}
