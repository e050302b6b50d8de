//! DUMP and RESTORE in Redis's serialization format, so a payload moves
//! between Stratus and a real `redis-server` either way.
//!
//! A payload is `type byte · object · RDB version (2 bytes LE) · CRC-64
//! (8 bytes LE)`, the object in Redis's RDB encoding and the checksum
//! Redis's CRC-64 (Jones polynomial, reflected) of everything before it.
//! DUMP writes RDB version 10 (Redis 7.0) with the plain encodings every
//! Redis since 2.x reads: strings (small integers integer-encoded, as Redis
//! does, so a small string's payload equals Redis's byte for byte), lists
//! (`RDB_TYPE_LIST`), sets, hashes and sorted sets with binary scores
//! (`RDB_TYPE_ZSET_2`). RESTORE reads those and the compact encodings Redis
//! writes: LZF-compressed strings, listpacks (7.0 hashes, sorted sets and
//! quicklist-2 lists), ziplists and intsets (payloads of Redis 6), string
//! scores (`RDB_TYPE_ZSET`). Streams, modules and zipmaps are not read
//! ("Bad data format"), and DUMP of a stream is refused with an error.
//!
//! RESTORE bounds its memory: nothing is preallocated from a length the
//! payload declares; every decoded element is charged against the room the
//! cache has left for the key (OOM when it passes) and against the largest
//! value a write may produce, before the value is built; then the built
//! value is reserved as any write. Elements decoded and written are
//! metered as work, as are KiB inflated from LZF.
//!
//! Phases of RESTORE: 1 options; 2 the key's presence (BUSYKEY unless
//! REPLACE); 3 the TTL; 4 the footer (version, checksum); 5 decode; 6 store
//! with its deadline (a deadline already past stores nothing).

use bytes::Bytes;

use super::args::{int, is, parse_i64};
use super::{Ctx, OpError};
use crate::partition::Value;
use crate::partition::value::{
    HASH_FIELD_OVERHEAD, HashValue, LIST_ELEM_OVERHEAD, ListValue, SET_MEMBER_OVERHEAD, SetValue,
    ZSET_MEMBER_OVERHEAD, ZSetValue,
};
use crate::resp::{Reply, reply};

/// The RDB version DUMP writes (Redis 7.0's) and the highest RESTORE reads.
pub const RDB_VERSION: u16 = 10;

const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_SET: u8 = 2;
const TYPE_ZSET: u8 = 3;
const TYPE_HASH: u8 = 4;
const TYPE_ZSET_2: u8 = 5;
const TYPE_LIST_ZIPLIST: u8 = 10;
const TYPE_SET_INTSET: u8 = 11;
const TYPE_ZSET_ZIPLIST: u8 = 12;
const TYPE_HASH_ZIPLIST: u8 = 13;
const TYPE_LIST_QUICKLIST: u8 = 14;
const TYPE_HASH_LISTPACK: u8 = 16;
const TYPE_ZSET_LISTPACK: u8 = 17;
const TYPE_LIST_QUICKLIST_2: u8 = 18;

/// Redis's CRC-64 (Jones polynomial, reflected, initial 0, no final xor).
pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        const POLY: u64 = 0x95AC_9329_AC4B_C9B5;
        let mut t = [0u64; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
            *slot = c;
        }
        t
    });
    for &b in data {
        crc = table[((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

fn put_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(((len >> 8) as u8) | 0x40);
        out.push(len as u8);
    } else if len <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// A string as Redis's `rdbSaveRawString` writes it without compression:
/// integer-encoded when it is a canonical integer of 32 bits or less.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11
        && let Some(v) = parse_i64(s)
    {
        if let Ok(v) = i8::try_from(v) {
            out.extend_from_slice(&[0xC0, v as u8]);
            return;
        }
        if let Ok(v) = i16::try_from(v) {
            out.push(0xC1);
            out.extend_from_slice(&v.to_le_bytes());
            return;
        }
        if let Ok(v) = i32::try_from(v) {
            out.push(0xC2);
            out.extend_from_slice(&v.to_le_bytes());
            return;
        }
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// The payload of `value` (with its footer); `None` for a type DUMP does
/// not write (streams). `elements` counts what was written.
pub fn dump_value(value: &Value, elements: &mut u64) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(value.mem_bytes().min(1 << 20) + 16);
    match value {
        Value::Str(s) => {
            out.push(TYPE_STRING);
            put_string(&mut out, s);
        }
        Value::List(l) => {
            out.push(TYPE_LIST);
            put_len(&mut out, l.len() as u64);
            for e in l.iter() {
                put_string(&mut out, e);
            }
            *elements += l.len() as u64;
        }
        Value::Set(s) => {
            out.push(TYPE_SET);
            put_len(&mut out, s.len() as u64);
            for m in s.iter() {
                put_string(&mut out, m);
            }
            *elements += s.len() as u64;
        }
        Value::Hash(h) => {
            out.push(TYPE_HASH);
            put_len(&mut out, h.len() as u64);
            for (f, v) in h.iter() {
                put_string(&mut out, f);
                put_string(&mut out, v);
            }
            *elements += 2 * h.len() as u64;
        }
        Value::ZSet(z) => {
            // Greatest first, as Redis saves them.
            out.push(TYPE_ZSET_2);
            put_len(&mut out, z.len() as u64);
            if !z.is_empty() {
                for (m, score) in z.iter_rev_from(z.len() - 1) {
                    put_string(&mut out, m);
                    out.extend_from_slice(&score.to_le_bytes());
                }
            }
            *elements += 2 * z.len() as u64;
        }
        Value::Stream(_) => return None,
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    Some(out)
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/// Why a payload could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum LoadError {
    /// Malformed or an encoding not read here: "Bad data format".
    Bad,
    /// Decoding would pass the room the cache has left: OOM.
    TooBig,
}

type Load<T> = Result<T, LoadError>;

/// A cursor over a payload, with the byte budget decoded values draw on.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Bytes decoded values may still take (see the module doc).
    budget: usize,
    /// Elements decoded, and KiB inflated (metered).
    elements: u64,
    inflated: u64,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Load<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(LoadError::Bad)?;
        let s = self.buf.get(self.pos..end).ok_or(LoadError::Bad)?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Load<u8> {
        Ok(self.take(1)?[0])
    }

    fn charge(&mut self, bytes: usize) -> Load<()> {
        self.budget = self.budget.checked_sub(bytes).ok_or(LoadError::TooBig)?;
        Ok(())
    }

    /// A length, or `Err(enc)` for a special string encoding.
    fn len_or_enc(&mut self) -> Load<Result<u64, u8>> {
        let b = self.byte()?;
        Ok(match b >> 6 {
            0 => Ok(u64::from(b & 0x3f)),
            1 => Ok((u64::from(b & 0x3f) << 8) | u64::from(self.byte()?)),
            2 => match b {
                0x80 => Ok(u64::from(u32::from_be_bytes(
                    self.take(4)?.try_into().map_err(|_| LoadError::Bad)?,
                ))),
                0x81 => Ok(u64::from_be_bytes(
                    self.take(8)?.try_into().map_err(|_| LoadError::Bad)?,
                )),
                _ => return Err(LoadError::Bad),
            },
            _ => Err(b & 0x3f),
        })
    }

    fn len(&mut self) -> Load<u64> {
        self.len_or_enc()?.map_err(|_| LoadError::Bad)
    }

    /// A string in any of its encodings (integers as their decimal text,
    /// LZF inflated), charged to the budget.
    fn string(&mut self) -> Load<Vec<u8>> {
        let s = match self.len_or_enc()? {
            Ok(n) => {
                let n = usize::try_from(n).map_err(|_| LoadError::Bad)?;
                if n > self.buf.len() - self.pos {
                    return Err(LoadError::Bad);
                }
                self.charge(n)?;
                self.take(n)?.to_vec()
            }
            Err(0) => (self.byte()? as i8).to_string().into_bytes(),
            Err(1) => i16::from_le_bytes(self.take(2)?.try_into().map_err(|_| LoadError::Bad)?)
                .to_string()
                .into_bytes(),
            Err(2) => i32::from_le_bytes(self.take(4)?.try_into().map_err(|_| LoadError::Bad)?)
                .to_string()
                .into_bytes(),
            Err(3) => {
                let clen = usize::try_from(self.len()?).map_err(|_| LoadError::Bad)?;
                let len = usize::try_from(self.len()?).map_err(|_| LoadError::Bad)?;
                self.charge(len)?;
                let src = self.take(clen)?;
                self.inflated += (len / 1024) as u64;
                lzf_decompress(src, len)?
            }
            Err(_) => return Err(LoadError::Bad),
        };
        Ok(s)
    }

    /// A count of elements that follow (never used to preallocate).
    fn count(&mut self) -> Load<u64> {
        self.len()
    }

    fn element(&mut self, overhead: usize) -> Load<()> {
        self.elements += 1;
        self.charge(overhead)
    }
}

/// LZF decompression (liblzf's format, as Redis writes it) into exactly
/// `len` bytes.
fn lzf_decompress(src: &[u8], len: usize) -> Load<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(len);
    let mut i = 0;
    while i < src.len() {
        let ctrl = usize::from(src[i]);
        i += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            let lit = src.get(i..i + run).ok_or(LoadError::Bad)?;
            if out.len() + run > len {
                return Err(LoadError::Bad);
            }
            out.extend_from_slice(lit);
            i += run;
        } else {
            let mut run = ctrl >> 5;
            if run == 7 {
                run += usize::from(*src.get(i).ok_or(LoadError::Bad)?);
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + usize::from(*src.get(i).ok_or(LoadError::Bad)?) + 1;
            i += 1;
            run += 2;
            if back > out.len() || out.len() + run > len {
                return Err(LoadError::Bad);
            }
            let from = out.len() - back;
            for k in 0..run {
                let b = out[from + k];
                out.push(b);
            }
        }
    }
    if out.len() != len {
        return Err(LoadError::Bad);
    }
    Ok(out)
}

/// The entries of a listpack, as strings (integers in decimal).
fn listpack_entries(lp: &[u8]) -> Load<Vec<Vec<u8>>> {
    let total = u32::from_le_bytes(
        lp.get(..4)
            .ok_or(LoadError::Bad)?
            .try_into()
            .map_err(|_| LoadError::Bad)?,
    ) as usize;
    if total != lp.len() || total < 7 || lp[total - 1] != 0xFF {
        return Err(LoadError::Bad);
    }
    let mut out = Vec::new();
    let mut p = 6;
    let get = |p: usize, n: usize| lp.get(p..p + n).ok_or(LoadError::Bad);
    loop {
        let b = *lp.get(p).ok_or(LoadError::Bad)?;
        if b == 0xFF {
            break;
        }
        let (value, size): (Vec<u8>, usize) = if b & 0x80 == 0 {
            (i64::from(b & 0x7f).to_string().into_bytes(), 1)
        } else if b & 0xC0 == 0x80 {
            let n = usize::from(b & 0x3f);
            (get(p + 1, n)?.to_vec(), 1 + n)
        } else if b & 0xE0 == 0xC0 {
            let u = (u64::from(b & 0x1f) << 8) | u64::from(get(p + 1, 1)?[0]);
            let v = if u >= 1 << 12 {
                u as i64 - (1 << 13)
            } else {
                u as i64
            };
            (v.to_string().into_bytes(), 2)
        } else if b & 0xF0 == 0xE0 {
            let n = (usize::from(b & 0x0f) << 8) | usize::from(get(p + 1, 1)?[0]);
            (get(p + 2, n)?.to_vec(), 2 + n)
        } else {
            match b {
                0xF0 => {
                    let n =
                        u32::from_le_bytes(get(p + 1, 4)?.try_into().map_err(|_| LoadError::Bad)?)
                            as usize;
                    (get(p + 5, n)?.to_vec(), 5 + n)
                }
                0xF1..=0xF4 => {
                    let n = [2usize, 3, 4, 8][usize::from(b - 0xF1)];
                    let raw = get(p + 1, n)?;
                    let mut u: u64 = 0;
                    for (k, &x) in raw.iter().enumerate() {
                        u |= u64::from(x) << (8 * k);
                    }
                    let shift = 64 - 8 * n as u32;
                    let v = ((u << shift) as i64) >> shift;
                    (v.to_string().into_bytes(), 1 + n)
                }
                _ => return Err(LoadError::Bad),
            }
        };
        let backlen = match size {
            0..=127 => 1,
            128..=16382 => 2,
            16383..=2097150 => 3,
            2097151..=268435454 => 4,
            _ => 5,
        };
        p += size + backlen;
        out.push(value);
    }
    if p != total - 1 {
        return Err(LoadError::Bad);
    }
    Ok(out)
}

/// The entries of a ziplist (Redis 6 payloads), as strings.
fn ziplist_entries(zl: &[u8]) -> Load<Vec<Vec<u8>>> {
    let total = u32::from_le_bytes(
        zl.get(..4)
            .ok_or(LoadError::Bad)?
            .try_into()
            .map_err(|_| LoadError::Bad)?,
    ) as usize;
    if total != zl.len() || total < 11 || zl[total - 1] != 0xFF {
        return Err(LoadError::Bad);
    }
    let get = |p: usize, n: usize| zl.get(p..p + n).ok_or(LoadError::Bad);
    let mut out = Vec::new();
    let mut p = 10;
    loop {
        let first = *zl.get(p).ok_or(LoadError::Bad)?;
        if first == 0xFF {
            break;
        }
        p += if first < 254 { 1 } else { 5 };
        let b = *zl.get(p).ok_or(LoadError::Bad)?;
        let (value, size): (Vec<u8>, usize) = match b >> 6 {
            0 => {
                let n = usize::from(b & 0x3f);
                (get(p + 1, n)?.to_vec(), 1 + n)
            }
            1 => {
                let n = (usize::from(b & 0x3f) << 8) | usize::from(get(p + 1, 1)?[0]);
                (get(p + 2, n)?.to_vec(), 2 + n)
            }
            2 => {
                let n = u32::from_be_bytes(get(p + 1, 4)?.try_into().map_err(|_| LoadError::Bad)?)
                    as usize;
                (get(p + 5, n)?.to_vec(), 5 + n)
            }
            _ => {
                let int = |n: usize| -> Load<i64> {
                    let raw = get(p + 1, n)?;
                    let mut u: u64 = 0;
                    for (k, &x) in raw.iter().enumerate() {
                        u |= u64::from(x) << (8 * k);
                    }
                    let shift = 64 - 8 * n as u32;
                    Ok(((u << shift) as i64) >> shift)
                };
                match b {
                    0xC0 => (int(2)?.to_string().into_bytes(), 3),
                    0xD0 => (int(4)?.to_string().into_bytes(), 5),
                    0xE0 => (int(8)?.to_string().into_bytes(), 9),
                    0xF0 => (int(3)?.to_string().into_bytes(), 4),
                    0xFE => (int(1)?.to_string().into_bytes(), 2),
                    0xF1..=0xFD => ((i64::from(b & 0x0f) - 1).to_string().into_bytes(), 1),
                    _ => return Err(LoadError::Bad),
                }
            }
        };
        p += size;
        out.push(value);
    }
    Ok(out)
}

/// The members of an intset, as strings.
fn intset_entries(is: &[u8]) -> Load<Vec<Vec<u8>>> {
    let head = is.get(..8).ok_or(LoadError::Bad)?;
    let enc = u32::from_le_bytes(head[..4].try_into().map_err(|_| LoadError::Bad)?) as usize;
    let n = u32::from_le_bytes(head[4..].try_into().map_err(|_| LoadError::Bad)?) as usize;
    if !matches!(enc, 2 | 4 | 8) || is.len() != 8 + enc * n {
        return Err(LoadError::Bad);
    }
    Ok(is[8..]
        .chunks(enc)
        .map(|c| {
            let v = match enc {
                2 => i64::from(i16::from_le_bytes([c[0], c[1]])),
                4 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                _ => i64::from_le_bytes(c.try_into().unwrap_or([0; 8])),
            };
            v.to_string().into_bytes()
        })
        .collect())
}

/// A score written as text (`RDB_TYPE_ZSET`, ziplists, listpacks).
fn text_score(s: &[u8]) -> Load<f64> {
    let t = std::str::from_utf8(s).map_err(|_| LoadError::Bad)?;
    let v: f64 = t.trim().parse().map_err(|_| LoadError::Bad)?;
    Ok(v)
}

fn pairs_into_hash(r: &mut Reader<'_>, items: Vec<Vec<u8>>) -> Load<Value> {
    if !items.len().is_multiple_of(2) {
        return Err(LoadError::Bad);
    }
    let mut h = HashValue::default();
    for pair in items.chunks(2) {
        r.element(HASH_FIELD_OVERHEAD)?;
        if !h.insert(&pair[0], &pair[1]) {
            return Err(LoadError::Bad);
        }
    }
    if h.is_empty() {
        return Err(LoadError::Bad);
    }
    Ok(Value::Hash(Box::new(h)))
}

fn pairs_into_zset(r: &mut Reader<'_>, items: Vec<Vec<u8>>) -> Load<Value> {
    if !items.len().is_multiple_of(2) {
        return Err(LoadError::Bad);
    }
    let mut z = ZSetValue::default();
    for pair in items.chunks(2) {
        r.element(ZSET_MEMBER_OVERHEAD)?;
        let score = text_score(&pair[1])?;
        if score.is_nan() || z.insert(&pair[0], score).is_some() {
            return Err(LoadError::Bad);
        }
    }
    if z.is_empty() {
        return Err(LoadError::Bad);
    }
    Ok(Value::ZSet(Box::new(z)))
}

/// Decodes a payload's object (the footer already checked and cut off).
fn load_object(r: &mut Reader<'_>) -> Load<Value> {
    let kind = r.byte()?;
    let value = match kind {
        TYPE_STRING => {
            let s = r.string()?;
            Value::Str(s)
        }
        TYPE_LIST => {
            let n = r.count()?;
            let mut l = ListValue::default();
            for _ in 0..n {
                let e = r.string()?;
                r.element(LIST_ELEM_OVERHEAD)?;
                l.push_back(&e);
            }
            if l.is_empty() {
                return Err(LoadError::Bad);
            }
            Value::List(Box::new(l))
        }
        TYPE_SET => {
            let n = r.count()?;
            let mut s = SetValue::default();
            for _ in 0..n {
                let m = r.string()?;
                r.element(SET_MEMBER_OVERHEAD)?;
                if !s.insert(&m) {
                    return Err(LoadError::Bad);
                }
            }
            if s.is_empty() {
                return Err(LoadError::Bad);
            }
            Value::Set(Box::new(s))
        }
        TYPE_HASH => {
            let n = r.count()?;
            let mut h = HashValue::default();
            for _ in 0..n {
                let f = r.string()?;
                let v = r.string()?;
                r.element(HASH_FIELD_OVERHEAD)?;
                if !h.insert(&f, &v) {
                    return Err(LoadError::Bad);
                }
            }
            if h.is_empty() {
                return Err(LoadError::Bad);
            }
            Value::Hash(Box::new(h))
        }
        TYPE_ZSET | TYPE_ZSET_2 => {
            let n = r.count()?;
            let mut z = ZSetValue::default();
            for _ in 0..n {
                let m = r.string()?;
                let score = if kind == TYPE_ZSET_2 {
                    f64::from_le_bytes(r.take(8)?.try_into().map_err(|_| LoadError::Bad)?)
                } else {
                    match r.byte()? {
                        255 => f64::NEG_INFINITY,
                        254 => f64::INFINITY,
                        253 => f64::NAN,
                        len => text_score(r.take(usize::from(len))?)?,
                    }
                };
                r.element(ZSET_MEMBER_OVERHEAD)?;
                if score.is_nan() || z.insert(&m, score).is_some() {
                    return Err(LoadError::Bad);
                }
            }
            if z.is_empty() {
                return Err(LoadError::Bad);
            }
            Value::ZSet(Box::new(z))
        }
        TYPE_SET_INTSET => {
            let blob = r.string()?;
            let mut s = SetValue::default();
            for m in intset_entries(&blob)? {
                r.element(SET_MEMBER_OVERHEAD)?;
                if !s.insert(&m) {
                    return Err(LoadError::Bad);
                }
            }
            if s.is_empty() {
                return Err(LoadError::Bad);
            }
            Value::Set(Box::new(s))
        }
        TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => {
            let blob = r.string()?;
            let items = if kind == TYPE_HASH_LISTPACK {
                listpack_entries(&blob)?
            } else {
                ziplist_entries(&blob)?
            };
            pairs_into_hash(r, items)?
        }
        TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => {
            let blob = r.string()?;
            let items = if kind == TYPE_ZSET_LISTPACK {
                listpack_entries(&blob)?
            } else {
                ziplist_entries(&blob)?
            };
            pairs_into_zset(r, items)?
        }
        TYPE_LIST_ZIPLIST | TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
            let nodes = if kind == TYPE_LIST_ZIPLIST {
                1
            } else {
                r.count()?
            };
            let mut l = ListValue::default();
            for _ in 0..nodes {
                let container = if kind == TYPE_LIST_QUICKLIST_2 {
                    r.len()?
                } else {
                    2
                };
                let blob = r.string()?;
                let items = match (kind, container) {
                    (TYPE_LIST_QUICKLIST_2, 1) => vec![blob],
                    (TYPE_LIST_QUICKLIST_2, 2) => listpack_entries(&blob)?,
                    (TYPE_LIST_QUICKLIST_2, _) => return Err(LoadError::Bad),
                    _ => ziplist_entries(&blob)?,
                };
                for e in items {
                    r.element(LIST_ELEM_OVERHEAD)?;
                    l.push_back(&e);
                }
            }
            if l.is_empty() {
                return Err(LoadError::Bad);
            }
            Value::List(Box::new(l))
        }
        _ => return Err(LoadError::Bad),
    };
    if r.pos != r.buf.len() {
        return Err(LoadError::Bad);
    }
    Ok(value)
}

/// Checks a payload's footer (version ≤ [`RDB_VERSION`], CRC-64) and
/// returns the object bytes before it.
pub fn verify_payload(p: &[u8]) -> Option<&[u8]> {
    if p.len() < 10 {
        return None;
    }
    let footer = &p[p.len() - 10..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION {
        return None;
    }
    let crc = crc64(0, &p[..p.len() - 8]);
    (crc.to_le_bytes() == footer[2..]).then(|| &p[..p.len() - 10])
}

/// Decodes a verified payload's object within `budget` bytes; returns the
/// value, the elements decoded and the KiB inflated.
pub fn load_payload(object: &[u8], budget: usize) -> Load<(Value, u64, u64)> {
    let mut r = Reader {
        buf: object,
        pos: 0,
        budget,
        elements: 0,
        inflated: 0,
    };
    let v = load_object(&mut r)?;
    Ok((v, r.elements, r.inflated))
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// DUMP key: the key's value in Redis's format, nil if missing.
pub fn dump(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let Some(e) = ctx.ks.get(&args[1], ctx.now) else {
        return Ok(Reply::Nil);
    };
    let mut elements = 0;
    let payload = dump_value(&e.value, &mut elements);
    ctx.work += elements;
    match payload {
        Some(p) => Ok(Reply::bulk(p)),
        None => Err(OpError::Static(reply::DUMP_STREAM)),
    }
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds]
/// [FREQ frequency]. IDLETIME and FREQ are checked as Redis checks them;
/// the key's access clock starts at the restore.
pub fn restore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    // Phase 1: options.
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq) = (false, false);
    let mut j = 4;
    while j < args.len() {
        let more = args.len() - j - 1;
        let a = &args[j];
        if is(a, "REPLACE") {
            replace = true;
        } else if is(a, "ABSTTL") {
            absttl = true;
        } else if is(a, "IDLETIME") && more >= 1 && !freq {
            if int(&args[j + 1])? < 0 {
                return Err(OpError::Static(reply::RESTORE_IDLETIME));
            }
            idle = true;
            j += 1;
        } else if is(a, "FREQ") && more >= 1 && !idle {
            let f = int(&args[j + 1])?;
            if !(0..=255).contains(&f) {
                return Err(OpError::Static(reply::RESTORE_FREQ));
            }
            freq = true;
            j += 1;
        } else {
            return Err(OpError::Syntax);
        }
        j += 1;
    }
    // Phase 2: the key.
    let key = &args[1];
    if !replace && ctx.ks.contains(key, ctx.now) {
        return Err(OpError::Static(reply::BUSYKEY));
    }
    // Phase 3: the TTL.
    let mut ttl = int(&args[2])?;
    if ttl < 0 {
        return Err(OpError::Static(reply::RESTORE_TTL));
    }
    // Phases 4 and 5: footer, then the object within the room left.
    let object = verify_payload(&args[3]).ok_or(OpError::Static(reply::DUMP_PAYLOAD))?;
    let budget = ctx
        .room_for_store(key)
        .min(ctx.max_value_len.saturating_mul(4));
    let (value, elements, inflated) = match load_payload(object, budget) {
        Ok(v) => v,
        Err(LoadError::Bad) => return Err(OpError::Static(reply::BAD_DATA_FORMAT)),
        Err(LoadError::TooBig) => return Err(OpError::Static(reply::OOM)),
    };
    ctx.work += elements + inflated;
    if let Value::Str(s) = &value
        && s.len() > ctx.max_value_len
    {
        return Err(OpError::StringTooLong);
    }
    // Phase 6: store.
    if ttl != 0 && !absttl {
        ttl = ttl.saturating_add(ctx.now as i64);
    }
    if ttl != 0 && ttl <= ctx.now as i64 {
        if replace {
            ctx.ks.remove(key, ctx.now);
        }
        return Ok(Reply::ok());
    }
    ctx.reserve_store(key, value.mem_bytes())?;
    ctx.ks.insert(key, value, ttl as u64, ctx.now);
    Ok(Reply::ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::test_util::{Harness, bulk, err};

    #[test]
    fn crc64_matches_redis_test_vector() {
        assert_eq!(crc64(0, b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    #[test]
    fn small_strings_dump_as_redis() {
        // DUMP of SET k hello / SET k 12345 on redis-server 7.0.
        let mut n = 0;
        let p = dump_value(&Value::Str(b"hello".to_vec()), &mut n).unwrap();
        assert_eq!(p, b"\x00\x05hello\n\x00cr\xdfve4 \n");
        let p = dump_value(&Value::Str(b"12345".to_vec()), &mut n).unwrap();
        assert_eq!(p, b"\x00\xc190\n\x00\x9d\x94\xea'\x93\xfc\x08\xb9");
    }

    #[test]
    fn every_type_round_trips() {
        let mut h = Harness::new();
        h.run(&["set", "s", "a string that is long enough"]);
        h.run(&["set", "i", "-300"]);
        h.run(&["rpush", "l", "a", "1", "-300", "b"]);
        h.run(&["sadd", "set", "x", "y", "7"]);
        h.run(&["hset", "h", "f", "v", "n", "12"]);
        h.run(&["zadd", "z", "1.5", "a", "-inf", "b", "3", "c"]);
        for k in ["s", "i", "l", "set", "h", "z"] {
            let e = h.ks.get(k.as_bytes(), h.now).unwrap().value.clone();
            let mut n = 0;
            let payload = dump_value(&e, &mut n).unwrap();
            let object = verify_payload(&payload).unwrap();
            let (back, _, _) = load_payload(object, usize::MAX).unwrap();
            assert_eq!(back, e, "{k}");
        }
        assert_eq!(h.run(&["dump", "nope"]), crate::resp::Reply::Nil);
        assert_eq!(
            h.run(&["restore", "s", "0", "xx"]),
            err("BUSYKEY Target key name already exists.")
        );
        assert_eq!(
            h.run(&["restore", "new", "0", "xxxxxxxxxxxx"]),
            err("ERR DUMP payload version or checksum are wrong")
        );
        assert_eq!(h.run(&["get", "s"]), bulk("a string that is long enough"));
    }

    #[test]
    fn corrupt_payloads_are_refused() {
        let mut n = 0;
        let mut p = dump_value(&Value::Str(b"hello".to_vec()), &mut n).unwrap();
        let last = p.len() - 1;
        p[last] ^= 1;
        assert_eq!(verify_payload(&p), None);
        let mut p = dump_value(&Value::Str(b"hello".to_vec()), &mut n).unwrap();
        p[8] = 11; // version 11
        assert_eq!(verify_payload(&p), None);
        // A list that declares a billion elements but holds none.
        let mut obj = vec![TYPE_LIST, 0x80];
        obj.extend_from_slice(&1_000_000_000u32.to_be_bytes());
        assert_eq!(load_payload(&obj, usize::MAX), Err(LoadError::Bad));
        // An LZF string inflating past the budget.
        let obj = [TYPE_STRING, 0xC3, 0x02, 0x41, 0x00, 0x00, 0x61];
        assert_eq!(load_payload(&obj, 100), Err(LoadError::TooBig));
    }

    #[test]
    fn lzf_back_references_inflate() {
        // literal "ab", then a back reference of 4 bytes at distance 2.
        let src = [0x01, b'a', b'b', 0x40, 0x01];
        assert_eq!(lzf_decompress(&src, 6).unwrap(), b"ababab");
    }
}
