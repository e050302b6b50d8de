//! A cache's function libraries (`FUNCTION LOAD`, `FCALL`): library name →
//! code and registered functions, and function name → its library. One
//! store per cache, never shared between caches, kept next to the cache's
//! script store.
//!
//! The store holds what a library registered (names, descriptions, flags),
//! not Lua objects: the partitions' worker threads load a library's code on
//! their own interpreters (`cmd::script::functions`), by the library's id,
//! which is unique per load in the process (a replaced library gets a new
//! id, so no thread runs its old code again).
//!
//! Bounded: at most [`MAX_LIBRARIES`] libraries and [`MAX_BYTES`] of code
//! per cache; a load or restore past either is refused whole.
//!
//! Invariants: every function name is in exactly one library; a change
//! (load, restore, delete, flush) is applied whole or not at all.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::cmd::dump::{crc64, lzf_decompress, put_len};
pub use crate::cmd::script::functions::FunctionMeta;
use crate::resp::reply;

/// Most libraries one cache keeps (Redis has no limit; here the store is
/// per tenant and every worker thread may load each library).
pub const MAX_LIBRARIES: usize = 1000;
/// Most bytes of library code one cache keeps.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh library id, unique in the process.
pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A loaded library.
#[derive(Debug)]
pub struct Library {
    pub id: u64,
    pub name: String,
    /// The code as loaded, metadata line included (`FUNCTION LIST
    /// WITHCODE`, `FUNCTION DUMP`).
    pub code: Bytes,
    /// The code after the metadata line (what the interpreter runs).
    pub body: Bytes,
    /// In the order the library registered them.
    pub functions: Vec<FunctionMeta>,
}

/// What `FCALL` needs of a function.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub flags: u8,
    pub library_id: u64,
    pub body: Bytes,
}

/// How `FUNCTION RESTORE` treats libraries already present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    /// Refuse if a restored library's name is taken.
    Append,
    /// Restored libraries replace those of the same name.
    Replace,
    /// Delete every library first.
    Flush,
}

#[derive(Default)]
struct Inner {
    libraries: BTreeMap<String, Arc<Library>>,
    /// Function name (lower case: Redis's function names are
    /// case-insensitive, library names are not) → its library's name.
    functions: HashMap<String, String>,
    bytes: usize,
}

impl Inner {
    /// Refuses a change that would leave more than the limits.
    fn check_limits(&self, libraries: usize, bytes: usize) -> Result<(), String> {
        if libraries > MAX_LIBRARIES || bytes > MAX_BYTES {
            return Err(reply::function_store_full(MAX_LIBRARIES, MAX_BYTES));
        }
        Ok(())
    }

    fn link(&mut self, lib: Arc<Library>) {
        for f in &lib.functions {
            self.functions
                .insert(f.name.to_ascii_lowercase(), lib.name.clone());
        }
        self.bytes += lib.code.len();
        self.libraries.insert(lib.name.clone(), lib);
    }

    fn unlink(&mut self, name: &str) -> Option<Arc<Library>> {
        let lib = self.libraries.remove(name)?;
        for f in &lib.functions {
            self.functions.remove(&f.name.to_ascii_lowercase());
        }
        self.bytes -= lib.code.len();
        Some(lib)
    }

    /// The first function of `libs` that a library not named in `libs`
    /// already has.
    fn collision(&self, libs: &[Library]) -> Option<String> {
        libs.iter().flat_map(|l| &l.functions).find_map(|f| {
            self.functions
                .get(&f.name.to_ascii_lowercase())
                .filter(|owner| !libs.iter().any(|l| &l.name == *owner))
                .map(|_| f.name.clone())
        })
    }
}

/// One cache's function libraries.
#[derive(Default)]
pub struct FunctionStore {
    inner: Mutex<Inner>,
}

impl FunctionStore {
    /// Whether a library of that name is loaded.
    pub fn has_library(&self, name: &str) -> bool {
        self.inner.lock().libraries.contains_key(name)
    }

    /// `FUNCTION LOAD [REPLACE]`: adds `lib`, replacing the library of the
    /// same name only if `replace`.
    pub fn load(&self, lib: Library, replace: bool) -> Result<(), String> {
        let mut s = self.inner.lock();
        let old_bytes = match s.libraries.get(&lib.name) {
            Some(_) if !replace => return Err(reply::function_library_exists(&lib.name)),
            Some(old) => Some(old.code.len()),
            None => None,
        };
        let libs = std::slice::from_ref(&lib);
        if let Some(f) = s.collision(libs) {
            return Err(reply::function_exists(&f));
        }
        let count = s.libraries.len() + usize::from(old_bytes.is_none());
        s.check_limits(count, s.bytes - old_bytes.unwrap_or(0) + lib.code.len())?;
        s.unlink(&lib.name);
        s.link(Arc::new(lib));
        Ok(())
    }

    /// `FUNCTION RESTORE`: adds `libs` (distinct names and functions,
    /// checked by the caller) under `policy`, all or none.
    pub fn restore(&self, libs: Vec<Library>, policy: RestorePolicy) -> Result<(), String> {
        let mut s = self.inner.lock();
        if policy == RestorePolicy::Flush {
            let bytes = libs.iter().map(|l| l.code.len()).sum();
            s.check_limits(libs.len(), bytes)?;
            *s = Inner::default();
        } else {
            let replaced: Vec<&Library> = libs
                .iter()
                .filter(|l| s.libraries.contains_key(&l.name))
                .collect();
            if policy == RestorePolicy::Append
                && let Some(l) = replaced.first()
            {
                return Err(reply::function_library_exists_restore(&l.name));
            }
            if let Some(f) = s.collision(&libs) {
                return Err(reply::function_exists(&f));
            }
            let removed: usize = replaced
                .iter()
                .filter_map(|l| s.libraries.get(&l.name))
                .map(|l| l.code.len())
                .sum();
            let added: usize = libs.iter().map(|l| l.code.len()).sum();
            let count = s.libraries.len() + libs.len() - replaced.len();
            s.check_limits(count, s.bytes - removed + added)?;
            for l in &libs {
                s.unlink(&l.name);
            }
        }
        for l in libs {
            s.link(Arc::new(l));
        }
        Ok(())
    }

    /// `FUNCTION DELETE`: whether the library was there.
    pub fn delete(&self, name: &[u8]) -> bool {
        let Ok(name) = std::str::from_utf8(name) else {
            return false;
        };
        self.inner.lock().unlink(name).is_some()
    }

    /// `FUNCTION FLUSH`.
    pub fn flush(&self) {
        *self.inner.lock() = Inner::default();
    }

    /// What `FCALL name` runs.
    pub fn resolve(&self, name: &[u8]) -> Option<Resolved> {
        let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
        let s = self.inner.lock();
        let lib = s.libraries.get(s.functions.get(&name)?)?;
        let f = lib
            .functions
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(&name))?;
        Some(Resolved {
            flags: f.flags,
            library_id: lib.id,
            body: lib.body.clone(),
        })
    }

    /// Every library, by name.
    pub fn libraries(&self) -> Vec<Arc<Library>> {
        self.inner.lock().libraries.values().cloned().collect()
    }

    /// Libraries and functions loaded.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.inner.lock();
        (s.libraries.len(), s.functions.len())
    }
}

// ---------------------------------------------------------------------------
// FUNCTION DUMP / RESTORE payloads
// ---------------------------------------------------------------------------
//
// Redis's format (functions.c `functionDumpCommand`, rdb.c): for each
// library the opcode 245 (`RDB_OPCODE_FUNCTION2`) and its code as an RDB
// string, then the RDB version (2 bytes, little-endian) and the CRC64
// (Jones, reflected, as Redis's `crc64`) of everything before, 8 bytes
// little-endian. Stratus writes plain strings (Redis compresses code
// longer than 20 bytes with LZF: both read both); it reads Redis 7.0's
// pre-release opcode 246 (name, engine, description, code) too.

/// The RDB version payloads carry (Redis 7.0's); newer ones are refused.
pub const RDB_VERSION: u16 = 10;
const OPCODE_FUNCTION2: u8 = 245;
const OPCODE_FUNCTION: u8 = 246;

/// `FUNCTION DUMP`'s payload for `libs`.
pub fn dump(libs: &[Arc<Library>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(libs.iter().map(|l| l.code.len() + 10).sum::<usize>() + 10);
    for lib in libs {
        out.push(OPCODE_FUNCTION2);
        put_len(&mut out, lib.code.len() as u64);
        out.extend_from_slice(&lib.code);
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The libraries' codes in a `FUNCTION RESTORE` payload, in order (at most
/// [`MAX_BYTES`] of code in all), or Redis's error.
pub fn parse_payload(p: &[u8]) -> Result<Vec<Bytes>, String> {
    let bad = || reply::FUNCTION_BAD_PAYLOAD.to_string();
    if p.len() < 10 {
        return Err(bad());
    }
    let footer = &p[p.len() - 10..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    if version > RDB_VERSION || crc64(0, &p[..p.len() - 8]) != u64::from_le_bytes(crc) {
        return Err(bad());
    }
    let mut r = Reader {
        data: &p[..p.len() - 10],
        pos: 0,
        budget: MAX_BYTES,
    };
    let mut codes = Vec::new();
    while r.pos < r.data.len() {
        let t = r.data[r.pos];
        r.pos += 1;
        let code = match t {
            OPCODE_FUNCTION2 => r
                .string()
                .ok_or_else(|| reply::FUNCTION_PAYLOAD_LIBRARY.to_string())?,
            OPCODE_FUNCTION => r
                .old_library()
                .ok_or_else(|| reply::FUNCTION_PAYLOAD_OLD.to_string())?,
            _ => return Err(reply::FUNCTION_PAYLOAD_TYPE.to_string()),
        };
        codes.push(Bytes::from(code));
    }
    Ok(codes)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Bytes the strings read may still take (decompression included).
    budget: usize,
}

enum Len {
    Plain(u64),
    /// A special encoding (integers, LZF).
    Encoded(u8),
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len())?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Some(s)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn len(&mut self) -> Option<Len> {
        let b = self.byte()?;
        Some(match b >> 6 {
            0 => Len::Plain(u64::from(b & 0x3f)),
            1 => Len::Plain((u64::from(b & 0x3f) << 8) | u64::from(self.byte()?)),
            2 if b == 0x80 => {
                let mut n = [0u8; 4];
                n.copy_from_slice(self.take(4)?);
                Len::Plain(u64::from(u32::from_be_bytes(n)))
            }
            2 if b == 0x81 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(self.take(8)?);
                Len::Plain(u64::from_be_bytes(n))
            }
            2 => return None,
            _ => Len::Encoded(b & 0x3f),
        })
    }

    fn plain_len(&mut self) -> Option<usize> {
        match self.len()? {
            Len::Plain(n) => usize::try_from(n).ok(),
            Len::Encoded(_) => None,
        }
    }

    /// An RDB string: plain, an integer, or LZF-compressed.
    fn string(&mut self) -> Option<Vec<u8>> {
        let s = match self.len()? {
            Len::Plain(n) => self.take(usize::try_from(n).ok()?)?.to_vec(),
            Len::Encoded(0) => (self.byte()? as i8).to_string().into_bytes(),
            Len::Encoded(1) => {
                let b = self.take(2)?;
                i16::from_le_bytes([b[0], b[1]]).to_string().into_bytes()
            }
            Len::Encoded(2) => {
                let b = self.take(4)?;
                i32::from_le_bytes([b[0], b[1], b[2], b[3]])
                    .to_string()
                    .into_bytes()
            }
            Len::Encoded(3) => {
                let clen = self.plain_len()?;
                let len = self.plain_len()?;
                if len > self.budget {
                    return None;
                }
                let compressed = self.take(clen)?;
                lzf_decompress(compressed, len).ok()?
            }
            Len::Encoded(_) => return None,
        };
        self.budget = self.budget.checked_sub(s.len())?;
        Some(s)
    }

    /// Opcode 246: name, engine, a description flag and description, code.
    fn old_library(&mut self) -> Option<Vec<u8>> {
        let name = self.string()?;
        let engine = self.string()?;
        if self.plain_len()? != 0 {
            self.string()?;
        }
        let blob = self.string()?;
        let mut code = Vec::with_capacity(blob.len() + name.len() + engine.len() + 9);
        code.extend_from_slice(b"#!");
        code.extend_from_slice(&engine);
        code.extend_from_slice(b" name=");
        code.extend_from_slice(&name);
        code.push(b'\n');
        code.extend_from_slice(&blob);
        Some(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(name: &str, functions: &[&str], code_len: usize) -> Library {
        Library {
            id: next_id(),
            name: name.into(),
            code: Bytes::from(vec![b'-'; code_len]),
            body: Bytes::new(),
            functions: functions
                .iter()
                .map(|f| FunctionMeta {
                    name: (*f).into(),
                    description: None,
                    flags: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn load_replace_collide_delete() {
        let store = FunctionStore::default();
        store.load(lib("a", &["f", "g"], 10), false).unwrap();
        assert_eq!(
            store.load(lib("a", &["h"], 10), false),
            Err("ERR Library 'a' already exists".into())
        );
        assert_eq!(
            store.load(lib("b", &["g"], 10), false),
            Err("ERR Function g already exists".into())
        );
        // Replacing frees the old library's names.
        store.load(lib("a", &["h"], 10), true).unwrap();
        assert!(store.resolve(b"f").is_none());
        assert!(store.resolve(b"h").is_some());
        store.load(lib("b", &["g"], 10), false).unwrap();
        assert_eq!(store.counts(), (2, 2));
        assert!(store.delete(b"a"));
        assert!(!store.delete(b"a"));
        assert_eq!(store.counts(), (1, 1));
    }

    #[test]
    fn restore_policies() {
        let store = FunctionStore::default();
        store.load(lib("a", &["f"], 10), false).unwrap();
        assert_eq!(
            store.restore(vec![lib("a", &["f"], 10)], RestorePolicy::Append),
            Err("ERR Library a already exists".into())
        );
        assert_eq!(
            store.restore(vec![lib("b", &["f"], 10)], RestorePolicy::Replace),
            Err("ERR Function f already exists".into())
        );
        store
            .restore(vec![lib("a", &["f2"], 10)], RestorePolicy::Replace)
            .unwrap();
        assert!(store.resolve(b"f2").is_some());
        store
            .restore(vec![lib("c", &["x"], 10)], RestorePolicy::Flush)
            .unwrap();
        assert_eq!(store.counts(), (1, 1));
    }

    #[test]
    fn limits_refuse_whole_changes() {
        let store = FunctionStore::default();
        store.load(lib("a", &["f"], MAX_BYTES - 10), false).unwrap();
        assert!(store.load(lib("b", &["g"], 11), false).is_err());
        // Replacing counts the old library's bytes out.
        store.load(lib("a", &["f"], MAX_BYTES), true).unwrap();
        for i in 0..MAX_LIBRARIES - 1 {
            store
                .load(lib(&format!("l{i}"), &[&format!("f{i}")], 0), false)
                .unwrap();
        }
        assert!(store.load(lib("last", &["z"], 0), false).is_err());
        assert_eq!(store.counts().0, MAX_LIBRARIES);
    }

    #[test]
    fn crc64_is_redis_crc64() {
        // Redis's crc64.c test vector.
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn dump_golden_bytes_and_round_trip() {
        let code = "#!lua name=small\nredis.register_function(\"s\", function() return 1 end)";
        let l = Arc::new(Library {
            id: next_id(),
            name: "small".into(),
            code: Bytes::from(code),
            body: Bytes::new(),
            functions: Vec::new(),
        });
        let payload = dump(&[l]);
        // What redis-server 7.0 answers for the same library.
        let mut expected = vec![0xf5, 0x40, 0x46];
        expected.extend_from_slice(code.as_bytes());
        expected.extend_from_slice(&[0x0a, 0x00, 0xc8, 0xba, 0x9e, 0x9a, 0x86, 0xd2, 0xc1, 0x76]);
        assert_eq!(payload, expected);
        assert_eq!(parse_payload(&payload), Ok(vec![Bytes::from(code)]));
        let mut corrupt = payload.clone();
        corrupt[5] ^= 1;
        assert_eq!(
            parse_payload(&corrupt),
            Err(reply::FUNCTION_BAD_PAYLOAD.into())
        );
        assert_eq!(
            parse_payload(b"short"),
            Err(reply::FUNCTION_BAD_PAYLOAD.into())
        );
    }

    fn wrap(body: &[u8]) -> Vec<u8> {
        let mut p = body.to_vec();
        p.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    }

    #[test]
    fn payload_errors_and_encodings() {
        assert_eq!(parse_payload(&wrap(b"")), Ok(vec![]));
        assert_eq!(
            parse_payload(&wrap(b"\x00abc")),
            Err(reply::FUNCTION_PAYLOAD_TYPE.into())
        );
        assert_eq!(
            parse_payload(&wrap(b"\xf5\x05ab")),
            Err(reply::FUNCTION_PAYLOAD_LIBRARY.into())
        );
        // An LZF string: "abcabcabc" as a literal run then a back reference.
        let lzf = [0x02, b'a', b'b', b'c', 0x80, 0x02];
        let mut body = vec![0xf5, 0xc3, lzf.len() as u8, 9];
        body.extend_from_slice(&lzf);
        assert_eq!(
            parse_payload(&wrap(&body)),
            Ok(vec![Bytes::from("abcabcabc")])
        );
        // Integer-encoded strings.
        assert_eq!(
            parse_payload(&wrap(&[0xf5, 0xc0, 0xff])),
            Ok(vec![Bytes::from("-1")])
        );
        // A newer RDB version is refused.
        let mut newer = b"".to_vec();
        newer.extend_from_slice(&11u16.to_le_bytes());
        let crc = crc64(0, &newer);
        newer.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            parse_payload(&newer),
            Err(reply::FUNCTION_BAD_PAYLOAD.into())
        );
    }
}
