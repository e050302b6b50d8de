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
//! (`RDB_TYPE_ZSET_2`), and streams as Redis 7.0 does
//! (`RDB_TYPE_STREAM_LISTPACKS_2`: listpack nodes of 100 entries, counters,
//! groups with their PELs and consumers). RESTORE reads those and the
//! compact encodings Redis writes: LZF-compressed strings, listpacks (7.0
//! hashes, sorted sets and quicklist-2 lists), ziplists and intsets
//! (payloads of Redis 6), string scores (`RDB_TYPE_ZSET`), and Redis 6's
//! streams (`RDB_TYPE_STREAM_LISTPACKS`). Modules and zipmaps are not read
//! ("Bad data format").
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
use crate::partition::stream::{
    CONSUMER_OVERHEAD, Fields, GROUP_OVERHEAD, NODE_ENTRIES, PENDING_OVERHEAD,
    STREAM_ENTRY_OVERHEAD,
};
use crate::partition::value::{
    HASH_FIELD_OVERHEAD, HashValue, LIST_ELEM_OVERHEAD, ListValue, SET_MEMBER_OVERHEAD, SetValue,
    ZSET_MEMBER_OVERHEAD, ZSetValue,
};
use crate::partition::{StreamId, StreamValue, Value};
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
const TYPE_STREAM_LISTPACKS: u8 = 15;
const TYPE_STREAM_LISTPACKS_2: u8 = 19;

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

pub(crate) fn put_len(out: &mut Vec<u8>, len: u64) {
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

/// A listpack being written (Redis's `lpAppend`/`lpAppendInteger`
/// encodings), for stream nodes.
struct LpWriter {
    buf: Vec<u8>,
    count: usize,
}

impl LpWriter {
    fn new() -> LpWriter {
        LpWriter {
            buf: vec![0; 6],
            count: 0,
        }
    }

    fn entry(&mut self, enc: &[u8]) {
        self.buf.extend_from_slice(enc);
        let l = enc.len() as u64;
        let back: Vec<u8> = if l <= 127 {
            vec![l as u8]
        } else if l < 16383 {
            vec![(l >> 7) as u8, (l & 127) as u8 | 128]
        } else if l < 2097151 {
            vec![
                (l >> 14) as u8,
                ((l >> 7) & 127) as u8 | 128,
                (l & 127) as u8 | 128,
            ]
        } else if l < 268435455 {
            vec![
                (l >> 21) as u8,
                ((l >> 14) & 127) as u8 | 128,
                ((l >> 7) & 127) as u8 | 128,
                (l & 127) as u8 | 128,
            ]
        } else {
            vec![
                (l >> 28) as u8,
                ((l >> 21) & 127) as u8 | 128,
                ((l >> 14) & 127) as u8 | 128,
                ((l >> 7) & 127) as u8 | 128,
                (l & 127) as u8 | 128,
            ]
        };
        self.buf.extend_from_slice(&back);
        self.count += 1;
    }

    fn int(&mut self, v: i64) {
        let enc: Vec<u8> = if (0..=127).contains(&v) {
            vec![v as u8]
        } else if (-4096..=4095).contains(&v) {
            let u = if v < 0 { (1i64 << 13) + v } else { v } as u64;
            vec![((u >> 8) as u8) | 0xC0, u as u8]
        } else if let Ok(x) = i16::try_from(v) {
            let b = x.to_le_bytes();
            vec![0xF1, b[0], b[1]]
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            let b = (v as i32).to_le_bytes();
            vec![0xF2, b[0], b[1], b[2]]
        } else if let Ok(x) = i32::try_from(v) {
            let mut e = vec![0xF3];
            e.extend_from_slice(&x.to_le_bytes());
            e
        } else {
            let mut e = vec![0xF4];
            e.extend_from_slice(&v.to_le_bytes());
            e
        };
        self.entry(&enc);
    }

    /// A string, stored as an integer when it is one (as `lpAppend`).
    fn string(&mut self, s: &[u8]) {
        if let Some(v) = parse_i64(s) {
            return self.int(v);
        }
        let mut enc = Vec::with_capacity(s.len() + 5);
        let n = s.len();
        if n < 64 {
            enc.push(0x80 | n as u8);
        } else if n < 4096 {
            enc.extend_from_slice(&[0xE0 | (n >> 8) as u8, n as u8]);
        } else {
            enc.push(0xF0);
            enc.extend_from_slice(&(n as u32).to_le_bytes());
        }
        enc.extend_from_slice(s);
        self.entry(&enc);
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xFF);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let n = self.count.min(65535) as u16;
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

fn id_bytes(id: StreamId) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.ms.to_be_bytes());
    b[8..].copy_from_slice(&id.seq.to_be_bytes());
    b
}

/// A stream as Redis 7.0 saves it (`RDB_TYPE_STREAM_LISTPACKS_2`): nodes
/// of up to [`NODE_ENTRIES`] entries, each a listpack keyed by its first
/// ID (its master entry lists the first entry's fields), then the stream's
/// counters, then every group with its PEL and consumers.
fn put_stream(out: &mut Vec<u8>, st: &StreamValue, elements: &mut u64) {
    let log = st.log();
    let entries: Vec<(StreamId, &Fields)> = log.range(StreamId::ZERO, StreamId::MAX).collect();
    let nodes: Vec<&[(StreamId, &Fields)]> = entries.chunks(NODE_ENTRIES as usize).collect();
    put_len(out, nodes.len() as u64);
    for node in nodes {
        let master = node[0].0;
        let master_fields: Vec<&[u8]> = node[0].1.iter().step_by(2).collect();
        let mut lp = LpWriter::new();
        lp.int(node.len() as i64);
        lp.int(0);
        lp.int(master_fields.len() as i64);
        for f in &master_fields {
            lp.string(f);
        }
        lp.int(0);
        for (id, fields) in node {
            let items: Vec<&[u8]> = fields.iter().collect();
            let n = items.len() / 2;
            let same = n == master_fields.len()
                && items
                    .iter()
                    .step_by(2)
                    .zip(&master_fields)
                    .all(|(a, b)| a == b);
            lp.int(if same { 2 } else { 0 });
            lp.int(id.ms.wrapping_sub(master.ms) as i64);
            lp.int(id.seq.wrapping_sub(master.seq) as i64);
            if !same {
                lp.int(n as i64);
            }
            for pair in items.chunks(2) {
                if !same {
                    lp.string(pair[0]);
                }
                lp.string(pair.get(1).copied().unwrap_or_default());
            }
            let lp_count = n + 3 + if same { 0 } else { n + 1 };
            lp.int(lp_count as i64);
            *elements += 1 + items.len() as u64;
        }
        put_string(out, &id_bytes(master));
        put_string(out, &lp.finish());
    }
    put_len(out, log.len() as u64);
    for id in [log.last_id(), log.first_id(), log.max_deleted()] {
        put_len(out, id.ms);
        put_len(out, id.seq);
    }
    put_len(out, log.entries_added());
    put_len(out, st.groups().len() as u64);
    for (name, g) in st.groups() {
        put_string(out, name);
        put_len(out, g.last_delivered().ms);
        put_len(out, g.last_delivered().seq);
        put_len(out, g.entries_read().unwrap_or(u64::MAX));
        put_len(out, g.pending_len() as u64);
        for (id, p) in g.pending_range(StreamId::ZERO, StreamId::MAX) {
            out.extend_from_slice(&id_bytes(id));
            out.extend_from_slice(&p.delivered_at.to_le_bytes());
            put_len(out, p.deliveries);
            *elements += 1;
        }
        put_len(out, g.consumers().len() as u64);
        for (cname, c) in g.consumers() {
            put_string(out, cname);
            out.extend_from_slice(&c.seen_at.to_le_bytes());
            put_len(out, c.pending_len() as u64);
            for id in g.consumer_ids(cname) {
                out.extend_from_slice(&id_bytes(id));
            }
            *elements += 1 + c.pending_len() as u64;
        }
    }
}

/// The payload of `value` (with its footer). `elements` counts what was
/// written.
pub fn dump_value(value: &Value, elements: &mut u64) -> Vec<u8> {
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
        Value::Stream(st) => {
            out.push(TYPE_STREAM_LISTPACKS_2);
            put_stream(&mut out, st, elements);
        }
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
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
pub(crate) fn lzf_decompress(src: &[u8], len: usize) -> Load<Vec<u8>> {
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
    h.reserve(items.len() / 2);
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
    z.reserve(items.len() / 2);
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

/// A stream ID as 16 big-endian bytes (node keys, PEL entries).
fn read_id(b: &[u8]) -> Load<StreamId> {
    if b.len() != 16 {
        return Err(LoadError::Bad);
    }
    let ms = u64::from_be_bytes(b[..8].try_into().map_err(|_| LoadError::Bad)?);
    let seq = u64::from_be_bytes(b[8..].try_into().map_err(|_| LoadError::Bad)?);
    Ok(StreamId::new(ms, seq))
}

fn lp_int(items: &[Vec<u8>], at: &mut usize) -> Load<i64> {
    let v = items
        .get(*at)
        .and_then(|s| parse_i64(s))
        .ok_or(LoadError::Bad)?;
    *at += 1;
    Ok(v)
}

fn lp_count(items: &[Vec<u8>], at: &mut usize) -> Load<usize> {
    usize::try_from(lp_int(items, at)?).map_err(|_| LoadError::Bad)
}

/// The live entries of one stream node's listpack (Redis's layout: a
/// master entry, then entries with ID deltas, same-fields flags and
/// tombstones), appended to `out` in order.
fn stream_node(
    r: &mut Reader<'_>,
    master: StreamId,
    items: &[Vec<u8>],
    out: &mut Vec<(StreamId, Fields)>,
) -> Load<()> {
    let mut at = 0;
    let _count = lp_count(items, &mut at)?;
    let _deleted = lp_count(items, &mut at)?;
    let nmf = lp_count(items, &mut at)?;
    let master_fields = items.get(at..at + nmf).ok_or(LoadError::Bad)?;
    at += nmf;
    if lp_int(items, &mut at)? != 0 {
        return Err(LoadError::Bad);
    }
    while at < items.len() {
        let flags = lp_int(items, &mut at)?;
        let ms = master.ms.wrapping_add(lp_int(items, &mut at)? as u64);
        let seq = master.seq.wrapping_add(lp_int(items, &mut at)? as u64);
        let id = StreamId::new(ms, seq);
        let mut strings: Vec<&[u8]> = Vec::new();
        if flags & 2 != 0 {
            let values = items.get(at..at + nmf).ok_or(LoadError::Bad)?;
            at += nmf;
            for (f, v) in master_fields.iter().zip(values) {
                strings.push(f);
                strings.push(v);
            }
        } else {
            let n = lp_count(items, &mut at)?;
            let pairs = items
                .get(
                    at..at
                        .checked_add(n.checked_mul(2).ok_or(LoadError::Bad)?)
                        .ok_or(LoadError::Bad)?,
                )
                .ok_or(LoadError::Bad)?;
            at += 2 * n;
            strings.extend(pairs.iter().map(Vec::as_slice));
        }
        let _lp_count = lp_int(items, &mut at)?;
        if flags & 1 == 0 {
            if out.last().is_some_and(|(last, _)| id <= *last) || id.is_zero() {
                return Err(LoadError::Bad);
            }
            r.element(STREAM_ENTRY_OVERHEAD)?;
            out.push((id, Fields::encode(&strings)));
        }
    }
    Ok(())
}

/// A stream (`RDB_TYPE_STREAM_LISTPACKS` and `_2`).
fn load_stream(r: &mut Reader<'_>, kind: u8) -> Load<Value> {
    let mut entries = Vec::new();
    for _ in 0..r.count()? {
        let master = read_id(&r.string()?)?;
        let lp = r.string()?;
        let items = listpack_entries(&lp)?;
        if items.is_empty() {
            return Err(LoadError::Bad);
        }
        stream_node(r, master, &items, &mut entries)?;
    }
    let length = r.count()?;
    let ids = |r: &mut Reader<'_>| -> Load<StreamId> { Ok(StreamId::new(r.len()?, r.len()?)) };
    let last = ids(r)?;
    let (mut max_deleted, mut entries_added) = (StreamId::ZERO, entries.len() as u64);
    if kind == TYPE_STREAM_LISTPACKS_2 {
        let _first = ids(r)?;
        max_deleted = ids(r)?;
        entries_added = r.len()?;
    }
    if length != entries.len() as u64 || entries.last().is_some_and(|(id, _)| *id > last) {
        return Err(LoadError::Bad);
    }
    let mut st = StreamValue::default();
    let log = st.log_mut();
    for (id, fields) in entries {
        log.append(id, fields);
    }
    log.set_last_id(last);
    log.set_counters(Some(entries_added), Some(max_deleted));
    for _ in 0..r.count()? {
        let name = r.string()?;
        r.charge(GROUP_OVERHEAD)?;
        let last_delivered = ids(r)?;
        let entries_read = if kind == TYPE_STREAM_LISTPACKS_2 {
            Some(r.len()?).filter(|&n| n != u64::MAX)
        } else {
            // A payload from before Redis 7.0: estimated, as Redis loads it.
            st.log().read_counter_of(last_delivered)
        };
        if !st.create_group(&name, last_delivered, entries_read) {
            return Err(LoadError::Bad);
        }
        let mut pel = std::collections::BTreeMap::new();
        for _ in 0..r.count()? {
            let id = read_id(r.take(16)?)?;
            let at = u64::from_le_bytes(r.take(8)?.try_into().map_err(|_| LoadError::Bad)?);
            let count = r.len()?;
            r.element(PENDING_OVERHEAD)?;
            pel.insert(id, (at, count));
        }
        for _ in 0..r.count()? {
            let cname = r.string()?;
            r.charge(CONSUMER_OVERHEAD)?;
            let seen = u64::from_le_bytes(r.take(8)?.try_into().map_err(|_| LoadError::Bad)?);
            let mut owned = Vec::new();
            for _ in 0..r.count()? {
                let id = read_id(r.take(16)?)?;
                let (at, count) = pel.remove(&id).ok_or(LoadError::Bad)?;
                owned.push((id, at, count));
            }
            st.group_mut(&name, |g, _| {
                g.create_consumer(&cname, seen);
                for (id, at, count) in owned {
                    g.restore_pending(id, &cname, seen, at, count);
                }
            });
        }
    }
    Ok(Value::Stream(Box::new(st)))
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
            // A count past the packed form's limit only picks the table.
            h.reserve(usize::try_from(n).unwrap_or(usize::MAX));
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
            // A count past the packed form's limit only picks the skip list.
            z.reserve(usize::try_from(n).unwrap_or(usize::MAX));
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
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 => load_stream(r, kind)?,
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
    Ok(Reply::bulk(payload))
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds]
/// [FREQ frequency]. IDLETIME backdates the key's last access (what
/// eviction's LRU and OBJECT IDLETIME read); FREQ is checked as Redis
/// checks it, but Stratus keeps no access frequency (its eviction is LRU).
pub fn restore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    // Phase 1: options.
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq) = (None::<u64>, false);
    let mut j = 4;
    while j < args.len() {
        let more = args.len() - j - 1;
        let a = &args[j];
        if is(a, "REPLACE") {
            replace = true;
        } else if is(a, "ABSTTL") {
            absttl = true;
        } else if is(a, "IDLETIME") && more >= 1 && !freq {
            let secs = int(&args[j + 1])?;
            if secs < 0 {
                return Err(OpError::Static(reply::RESTORE_IDLETIME));
            }
            idle = Some(secs as u64);
            j += 1;
        } else if is(a, "FREQ") && more >= 1 && idle.is_none() {
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
    if let Some(secs) = idle {
        ctx.ks.set_idle(key, secs, ctx.now);
    }
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
        let p = dump_value(&Value::Str(b"hello".to_vec()), &mut n);
        assert_eq!(p, b"\x00\x05hello\n\x00cr\xdfve4 \n");
        let p = dump_value(&Value::Str(b"12345".to_vec()), &mut n);
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
        for i in 1..=230 {
            let id = format!("{}-{}", 5 + i / 4, i % 4);
            if i % 5 == 0 {
                h.run(&["xadd", "st", &id, "g", "-70000", "h", ""]);
            } else {
                h.run(&["xadd", "st", &id, "f", &i.to_string()]);
            }
        }
        h.run(&["xgroup", "create", "st", "g", "0"]);
        h.run(&["xgroup", "create", "st", "other", "$", "ENTRIESREAD", "7"]);
        h.run(&[
            "xreadgroup",
            "group",
            "g",
            "c1",
            "count",
            "3",
            "streams",
            "st",
            ">",
        ]);
        h.run(&[
            "xreadgroup",
            "group",
            "g",
            "c2",
            "count",
            "2",
            "streams",
            "st",
            ">",
        ]);
        for k in ["s", "i", "l", "set", "h", "z", "st"] {
            let e = h.ks.get(k.as_bytes(), h.now).unwrap().value.clone();
            let mut n = 0;
            let payload = dump_value(&e, &mut n);
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
        let mut p = dump_value(&Value::Str(b"hello".to_vec()), &mut n);
        let last = p.len() - 1;
        p[last] ^= 1;
        assert_eq!(verify_payload(&p), None);
        let mut p = dump_value(&Value::Str(b"hello".to_vec()), &mut n);
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

    /// Mutated payloads (bytes flipped, cut, inserted) never panic the
    /// decoder: each is read or refused.
    #[test]
    fn mutated_payloads_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut h = Harness::new();
        h.run(&["set", "s", "a string that is long enough"]);
        h.run(&["rpush", "l", "a", "1", "-300", "b"]);
        h.run(&["sadd", "set", "x", "7"]);
        h.run(&["hset", "h", "f", "v", "n", "12"]);
        h.run(&["zadd", "z", "1.5", "a", "3", "c"]);
        for i in 1..=120 {
            h.run(&["xadd", "st", &format!("{i}-1"), "f", &i.to_string()]);
        }
        h.run(&["xgroup", "create", "st", "g", "0"]);
        h.run(&[
            "xreadgroup",
            "group",
            "g",
            "c1",
            "count",
            "3",
            "streams",
            "st",
            ">",
        ]);
        let mut seeds: Vec<Vec<u8>> = ["s", "l", "set", "h", "z", "st"]
            .iter()
            .map(|k| {
                let e = h.ks.get(k.as_bytes(), h.now).unwrap().value.clone();
                let mut n = 0;
                let p = dump_value(&e, &mut n);
                p[..p.len() - 10].to_vec()
            })
            .collect();
        // Redis's own compact encodings too: a listpack hash and an intset.
        let mut lp = LpWriter::new();
        for s in ["f", "1", "g", "-5000"] {
            lp.string(s.as_bytes());
        }
        let mut obj = vec![TYPE_HASH_LISTPACK];
        put_string(&mut obj, &lp.finish());
        seeds.push(obj);
        let mut obj = vec![TYPE_SET_INTSET];
        let mut is = vec![2, 0, 0, 0, 2, 0, 0, 0];
        is.extend_from_slice(&[1, 0, 2, 0]);
        put_string(&mut obj, &is);
        seeds.push(obj);
        for seed in &seeds {
            assert!(load_payload(seed, usize::MAX).is_ok(), "seed {seed:?}");
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for round in 0..20_000 {
            let mut p = seeds[round % seeds.len()].clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..p.len());
                match rng.random_range(0..3) {
                    0 => p[at] = rng.random(),
                    1 => p.truncate(at.max(1)),
                    _ => p.insert(at, rng.random()),
                }
            }
            let outcome = std::panic::catch_unwind(|| load_payload(&p, 1 << 20));
            assert!(outcome.is_ok(), "panicked on {p:?}");
        }
    }

    #[test]
    fn lzf_back_references_inflate() {
        // literal "ab", then a back reference of 4 bytes at distance 2.
        let src = [0x01, b'a', b'b', 0x40, 0x01];
        assert_eq!(lzf_decompress(&src, 6).unwrap(), b"ababab");
    }
}
