//! Memcached items: the data handlers behind the Memcached engine's
//! operations (`src/memcached/` parses the protocol and formats replies).
//!
//! An item is a [`Value::Str`] holding the data followed by a trailer of
//! 2 to [`TRAILER`] bytes: the CAS value (1-8 bytes, little-endian, as
//! few as it needs), the client flags (0, 1, 2 or 4 bytes: none when 0, as
//! memcached stores them), and a header byte (bits 0-2: CAS bytes - 1;
//! 3-4: flags size code; 5-7: memcached's item bits [`FETCHED`],
//! [`TOKEN_SENT`], [`STALE`]). Handlers see a "CAS word": the CAS value in
//! the low 61 bits, the item bits on top. So a 100-byte item with a CAS
//! under 2^24 and no flags takes 104 bytes, one allocation (the malloc
//! size class of a 100-byte Redis string); split, merge, expiry, eviction
//! and byte accounting treat items as any string.
//!
//! CAS values come from the cache's counter ([`Ctx::cas`]): unique per
//! cache and increasing, whatever partition the key lives in. A new CAS is
//! drawn exactly where memcached draws one (an item linked by a store, an
//! incr/decr, a vivify, an invalidation), so a fresh cache numbers items
//! as a fresh memcached does.
//!
//! The handlers take their operands as decimal or raw arguments built by
//! [`GetOp`], [`StoreOp`], [`DeleteOp`] and [`ArithOp`] (`encode` on the
//! connection's side, `decode` here), and answer structured replies (see
//! each `op_*`); never text of either protocol.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::parse_i64;
use super::{Ctx, OpError};
use crate::partition::Value;
use crate::resp::{Reply, reply};

/// The most bytes an item's trailer takes (CAS 8, flags 4, header 1).
pub const TRAILER: usize = 13;
/// The item was read since it was stored (meta `h`).
pub const FETCHED: u64 = 1 << 63;
/// A client won the right to recache this item (meta `W`; then `Z`).
pub const TOKEN_SENT: u64 = 1 << 62;
/// Invalidated by `md ... I` or `ms ... I` (meta `X`).
pub const STALE: u64 = 1 << 61;
/// The CAS value's bits in the CAS word.
pub const CAS_MASK: u64 = (1 << 61) - 1;
/// Memcached's `REALTIME_MAXDELTA`: relative expiry times up to 30 days;
/// larger ones are absolute Unix times.
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// Storage outcomes (memcached's `store_item_type`).
pub const STORED: &str = "STORED";
pub const NOT_STORED: &str = "NOT_STORED";
pub const EXISTS: &str = "EXISTS";
pub const NOT_FOUND: &str = "NOT_FOUND";
pub const DELETED: &str = "DELETED";
/// An arithmetic operation that applied.
pub const DONE: &str = "OK";
/// The client error of incr/decr on a value that is not a number.
pub const NON_NUMERIC: &str = "CLIENT_ERROR cannot increment or decrement non-numeric value";

/// When an item given `exptime` (memcached's reading) expires, unix ms:
/// 0 = never; `Some(past)` = at once.
pub fn deadline(exptime: i64, now_ms: u64) -> u64 {
    let now_s = (now_ms / 1000) as i64;
    if exptime == 0 {
        0
    } else if exptime < 0 {
        // Already expired (memcached: a time before the server started).
        1
    } else if exptime <= REALTIME_MAXDELTA {
        now_ms + exptime as u64 * 1000
    } else if exptime <= now_s {
        1
    } else {
        exptime as u64 * 1000
    }
}

/// An item's parts.
struct Item<'a> {
    data: &'a [u8],
    flags: u32,
    /// The CAS value and the item bits (see the module doc).
    word: u64,
}

/// Sizes of the flags field by its code in the header byte.
const FLAGS_SIZES: [usize; 4] = [0, 1, 2, 4];

fn parse_item(v: &Value) -> Option<Item<'_>> {
    let Value::Str(s) = v else { return None };
    let (&header, rest) = s.split_last()?;
    let cas_len = usize::from(header & 7) + 1;
    let flags_len = FLAGS_SIZES[usize::from((header >> 3) & 3)];
    let data_len = rest.len().checked_sub(cas_len + flags_len)?;
    let (data, fields) = rest.split_at(data_len);
    let mut cas = [0u8; 8];
    cas[..cas_len].copy_from_slice(&fields[..cas_len]);
    let mut flags = [0u8; 4];
    flags[..flags_len].copy_from_slice(&fields[cas_len..]);
    Some(Item {
        data,
        flags: u32::from_le_bytes(flags),
        word: (u64::from_le_bytes(cas) & CAS_MASK) | (u64::from(header >> 5) << 61),
    })
}

/// Appends the trailer of `flags` and `word` to `out`.
fn put_trailer(out: &mut Vec<u8>, flags: u32, word: u64) {
    let cas = word & CAS_MASK;
    let cas_len = (8 - cas.leading_zeros() as usize / 8).max(1);
    let code: u8 = match flags {
        0 => 0,
        1..=0xff => 1,
        0x100..=0xffff => 2,
        _ => 3,
    };
    out.extend_from_slice(&cas.to_le_bytes()[..cas_len]);
    out.extend_from_slice(&flags.to_le_bytes()[..FLAGS_SIZES[usize::from(code)]]);
    out.push((cas_len - 1) as u8 | (code << 3) | ((word >> 61) as u8) << 5);
}

/// The bytes of an item (one allocation, sized exactly).
fn build_item(parts: &[&[u8]], flags: u32, word: u64) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut v = Vec::with_capacity(len + trailer_len(flags, word));
    for p in parts {
        v.extend_from_slice(p);
    }
    put_trailer(&mut v, flags, word);
    v
}

fn trailer_len(flags: u32, word: u64) -> usize {
    let cas = word & CAS_MASK;
    let flags_len = match flags {
        0 => 0,
        1..=0xff => 1,
        0x100..=0xffff => 2,
        _ => 4,
    };
    (8 - cas.leading_zeros() as usize / 8).max(1) + flags_len + 1
}

/// Gives a stored item a new CAS word: in place when only its bits
/// change, else its trailer is rewritten (the data stays).
fn set_word(v: &mut Value, word: u64) {
    let Some(Item {
        data,
        flags,
        word: old,
    }) = parse_item(v)
    else {
        return;
    };
    let data_len = data.len();
    let Value::Str(s) = v else { return };
    if old & CAS_MASK == word & CAS_MASK {
        if let Some(h) = s.last_mut() {
            *h = (*h & 0x1f) | (((word >> 61) as u8) << 5);
        }
        return;
    }
    s.truncate(data_len);
    put_trailer(s, flags, word);
}

/// The next CAS value of the cache.
fn next_cas(ctx: &Ctx<'_>) -> u64 {
    match ctx.cas {
        Some(c) => (c.fetch_add(1, Ordering::Relaxed) + 1) & CAS_MASK,
        None => 1,
    }
}

fn num(b: &[u8]) -> i64 {
    parse_i64(b).unwrap_or(0)
}

fn unum(b: &[u8]) -> u64 {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn opt(b: &[u8]) -> Option<i64> {
    (!b.is_empty()).then(|| num(b))
}

fn enc_opt(v: Option<i64>) -> Bytes {
    v.map_or_else(Bytes::new, |n| Bytes::from(n.to_string()))
}

fn flag(b: bool) -> Bytes {
    Bytes::from_static(if b { b"1" } else { b"0" })
}

/// A read: `get`, `gets`, `gat`, `gats`, `touch`, `mg`, `me`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetOp {
    /// Copy the data into the reply.
    pub value: bool,
    /// New exptime (gat, touch, mg `T`).
    pub touch: Option<i64>,
    /// Create an empty item on a miss with this exptime (mg `N`).
    pub vivify: Option<i64>,
    /// Win the recache token if the TTL left is below this (mg `R`).
    pub recache: Option<i64>,
    /// Leave the item's LRU position and fetched bit alone (mg `u`).
    pub no_bump: bool,
    /// `N` comes after `T` among the flags: an item this command creates
    /// keeps `N`'s TTL (memcached applies the flags in order).
    pub vivify_last: bool,
}

impl GetOp {
    pub fn encode(&self, name: &'static str, key: Bytes) -> Vec<Bytes> {
        vec![
            Bytes::from_static(name.as_bytes()),
            key,
            flag(self.value),
            enc_opt(self.touch),
            enc_opt(self.vivify),
            enc_opt(self.recache),
            flag(self.no_bump),
            flag(self.vivify_last),
        ]
    }

    fn decode(args: &[Bytes]) -> GetOp {
        GetOp {
            value: &args[2][..] == b"1",
            touch: opt(&args[3]),
            vivify: opt(&args[4]),
            recache: opt(&args[5]),
            no_bump: &args[6][..] == b"1",
            vivify_last: &args[7][..] == b"1",
        }
    }
}

/// What a read found (the parts of [`get`]'s reply array, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub data: Option<Bytes>,
    pub flags: u32,
    pub cas: u64,
    /// Seconds left, -1 = no expiry.
    pub ttl: i64,
    /// Seconds since the last access, before this one.
    pub last_access: u64,
    /// Whether it had been fetched before this read.
    pub fetched: bool,
    /// Another client has the recache token (`Z`).
    pub token_sent: bool,
    pub stale: bool,
    /// This client wins the recache token (`W`).
    pub won: bool,
    /// Data bytes.
    pub size: usize,
    /// Seconds left before this command changed the TTL (a vivified item:
    /// -1): memcached prints `t` as of where the flag stands among `T`
    /// and `N`.
    pub ttl_before: i64,
    /// Created by this command (mg `N`).
    pub created: bool,
    /// The TTL `T` gives, and the one `N` gives a created item.
    pub ttl_touch: i64,
    pub ttl_vivify: i64,
}

impl Found {
    /// Reads [`get`]'s reply back; `None` on a miss.
    pub fn from_reply(r: &Reply) -> Option<Found> {
        let Reply::Array(p) = r else { return None };
        let int = |i: usize| match p.get(i) {
            Some(Reply::Int(n)) => *n,
            _ => 0,
        };
        let bits = int(5);
        Some(Found {
            data: match p.first() {
                Some(Reply::Bulk(b)) => Some(b.clone()),
                _ => None,
            },
            flags: int(1) as u32,
            cas: int(2) as u64,
            ttl: int(3),
            last_access: int(4) as u64,
            fetched: bits & 1 != 0,
            token_sent: bits & 2 != 0,
            stale: bits & 4 != 0,
            won: bits & 8 != 0,
            size: int(6) as usize,
            ttl_before: int(7),
            created: bits & 16 != 0,
            ttl_touch: int(8),
            ttl_vivify: int(9),
        })
    }
}

fn ttl_secs(expire_at: Option<u64>, now: u64) -> i64 {
    match expire_at {
        None => -1,
        Some(at) => (at.saturating_sub(now)).div_ceil(1000) as i64,
    }
}

/// `mc_get` / `mc_gat`: a read (with `touch`, a touch too). Replies `Nil`
/// on a miss, else `[data|nil, flags, cas, ttl, last access, bits, size]`
/// ([`Found::from_reply`]).
pub fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let op = GetOp::decode(args);
    let key = &args[1];
    let now = ctx.now;
    // Last access before this one (the lookup below moves it).
    let idle = ctx.ks.idle_secs(key, now);
    let hit = if op.no_bump {
        ctx.ks.get_no_touch(key, now).is_some()
    } else {
        ctx.ks.get(key, now).is_some()
    };
    let mut created = false;
    let mut ttl_vivify = -1;
    if !hit {
        let Some(exptime) = op.vivify else {
            return Ok(Reply::Nil);
        };
        // An empty item, won by this client (mg N).
        ctx.reserve_store(key, TRAILER)?;
        let word = next_cas(ctx);
        let at = deadline(exptime, now);
        if at != 0 && at <= now {
            return Ok(Reply::Nil);
        }
        ctx.ks
            .insert(key, Value::Str(build_item(&[], 0, word)), at, now);
        created = true;
        ttl_vivify = ttl_secs((at != 0).then_some(at), now);
    }
    let asked_at = op.touch.map(|t| deadline(t, now));
    let ttl_touch = asked_at.map_or(-1, |at| ttl_secs((at != 0).then_some(at), now));
    // A created item keeps `N`'s TTL when `N` comes after `T`.
    let touch_at = asked_at.filter(|_| !(created && op.vivify_last));
    if let Some(at) = touch_at
        && at != 0
        && at <= now
    {
        // Touched into the past: gone (memcached answers the hit).
        let found = {
            let Some(e) = ctx.ks.peek_live(key, now) else {
                return Ok(Reply::Nil);
            };
            let Some(item) = parse_item(&e.value) else {
                return Err(OpError::WrongType);
            };
            found_of(&item, op.value, -1, 0, false)
        };
        ctx.ks.remove(key, now);
        return Ok(found_reply(found));
    }
    // Read through a plain lookup: the write lookup below (which WATCH,
    // tracking and keyspace events see as a change) only when the item's
    // bits change (its first fetch, a token won).
    let Some(e) = ctx.ks.peek_live(key, now) else {
        return Ok(Reply::Nil);
    };
    let expire_at = e.expire_at();
    let (word, mut found) = {
        let Some(item) = parse_item(&e.value) else {
            return Err(OpError::WrongType);
        };
        let ttl = ttl_secs(touch_at.filter(|a| *a != 0).or(expire_at), now);
        let ttl = if touch_at == Some(0) { -1 } else { ttl };
        let mut found = found_of(&item, op.value, ttl, idle.unwrap_or(0), created);
        found.ttl_before = if created {
            -1
        } else {
            ttl_secs(expire_at, now)
        };
        found.ttl_touch = ttl_touch;
        found.ttl_vivify = ttl_vivify;
        (item.word, found)
    };
    let mut new_word = word;
    if created {
        found.won = true;
    } else if let Some(r) = op.recache {
        let limit = deadline(r, now);
        if word & TOKEN_SENT == 0 && expire_at.is_some_and(|at| limit != 0 && at < limit) {
            found.won = true;
        }
    }
    if word & STALE != 0 && word & TOKEN_SENT == 0 {
        found.won = true;
    }
    if found.won {
        new_word |= TOKEN_SENT;
    }
    if !op.no_bump {
        new_word |= FETCHED;
    }
    if new_word != word
        && let Some(mut e) = ctx.ks.get_mut(key, now)
    {
        set_word(e.value_mut(), new_word);
    }
    if let Some(at) = touch_at {
        ctx.ks.set_expire(key, (at != 0).then_some(at), now);
    }
    Ok(found_reply(found))
}

fn found_of(item: &Item<'_>, value: bool, ttl: i64, idle: u64, created: bool) -> Found {
    Found {
        data: value.then(|| Bytes::copy_from_slice(item.data)),
        flags: item.flags,
        cas: item.word & CAS_MASK,
        ttl,
        last_access: idle,
        fetched: item.word & FETCHED != 0 && !created,
        token_sent: item.word & TOKEN_SENT != 0,
        stale: item.word & STALE != 0,
        won: false,
        size: item.data.len(),
        ttl_before: ttl,
        created,
        ttl_touch: ttl,
        ttl_vivify: ttl,
    }
}

fn found_reply(f: Found) -> Reply {
    let bits = i64::from(f.fetched)
        | (i64::from(f.token_sent) << 1)
        | (i64::from(f.stale) << 2)
        | (i64::from(f.won) << 3)
        | (i64::from(f.created) << 4);
    Reply::Array(vec![
        f.data.map_or(Reply::Nil, Reply::Bulk),
        Reply::Int(i64::from(f.flags)),
        Reply::Int(f.cas as i64),
        Reply::Int(f.ttl),
        Reply::Int(f.last_access as i64),
        Reply::Int(bits),
        Reply::Int(f.size as i64),
        Reply::Int(f.ttl_before),
        Reply::Int(f.ttl_touch),
        Reply::Int(f.ttl_vivify),
    ])
}

/// How a store treats an existing item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    /// Set only if the item's CAS is the one given.
    Cas,
}

impl Mode {
    fn name(self) -> &'static [u8] {
        match self {
            Mode::Set => b"set",
            Mode::Add => b"add",
            Mode::Replace => b"replace",
            Mode::Append => b"append",
            Mode::Prepend => b"prepend",
            Mode::Cas => b"cas",
        }
    }

    fn parse(b: &[u8]) -> Mode {
        match b {
            b"add" => Mode::Add,
            b"replace" => Mode::Replace,
            b"append" => Mode::Append,
            b"prepend" => Mode::Prepend,
            b"cas" => Mode::Cas,
            _ => Mode::Set,
        }
    }
}

/// A store: `set add replace append prepend cas`, `ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOp {
    pub mode: Mode,
    pub flags: u32,
    pub exptime: i64,
    /// The CAS the item must have (0 = none).
    pub compare: u64,
    /// The new item's CAS (0 = the cache's next; ms `E`).
    pub explicit: u64,
    /// ms `I`: a CAS older than the item's marks it stale instead of failing.
    pub invalidate: bool,
    /// ms `N` in append mode: create the item when missing.
    pub vivify: Option<i64>,
}

impl StoreOp {
    pub fn encode(&self, key: Bytes, data: Bytes) -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"mc_store"),
            key,
            Bytes::from_static(self.mode.name()),
            data,
            Bytes::from(self.flags.to_string()),
            Bytes::from(self.exptime.to_string()),
            Bytes::from(self.compare.to_string()),
            Bytes::from(self.explicit.to_string()),
            flag(self.invalidate),
            enc_opt(self.vivify),
        ]
    }
}

/// `mc_store`: replies `[outcome, cas, size]`, the outcome one of
/// [`STORED`], [`NOT_STORED`], [`EXISTS`], [`NOT_FOUND`] (as a status), the
/// CAS and data size of the item stored (0 if none).
pub fn store(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let key = &args[1];
    let mode = Mode::parse(&args[2]);
    let data = &args[3];
    let flags = unum(&args[4]) as u32;
    let exptime = num(&args[5]);
    let compare = unum(&args[6]);
    let explicit = unum(&args[7]);
    let invalidate = &args[8][..] == b"1";
    let vivify = opt(&args[9]);
    let now = ctx.now;
    let outcome_sized = |word: &str, cas: u64, size: usize| {
        Ok(Reply::Array(vec![
            Reply::status(match word {
                STORED => STORED,
                NOT_STORED => NOT_STORED,
                EXISTS => EXISTS,
                _ => NOT_FOUND,
            }),
            Reply::Int(cas as i64),
            Reply::Int(size as i64),
        ]))
    };
    let outcome = |word: &str, cas: u64| outcome_sized(word, cas, 0);
    // What is there now: (flags, word, expiry, data length).
    let old = match ctx.ks.peek_live(key, now) {
        None => None,
        Some(e) => {
            let item = parse_item(&e.value).ok_or(OpError::WrongType)?;
            Some((item.flags, item.word, e.expire_at()))
        }
    };
    let mut stale = false;
    match (mode, old) {
        (Mode::Add, Some(_)) => {
            // memcached bumps the existing item's LRU position.
            ctx.ks.get(key, now);
            return outcome(NOT_STORED, 0);
        }
        (Mode::Replace | Mode::Append | Mode::Prepend, None) if vivify.is_none() => {
            return outcome(NOT_STORED, 0);
        }
        (Mode::Cas, None) => return outcome(NOT_FOUND, 0),
        (Mode::Cas, Some((_, word, _))) if word & CAS_MASK != compare => {
            if invalidate && compare < word & CAS_MASK {
                stale = true;
            } else {
                return outcome(EXISTS, 0);
            }
        }
        (Mode::Append | Mode::Prepend, Some((_, word, _)))
            if compare != 0 && word & CAS_MASK != compare =>
        {
            return outcome(EXISTS, 0);
        }
        _ => {}
    }
    let word_of = |ctx: &Ctx<'_>| {
        if explicit != 0 {
            explicit & CAS_MASK
        } else {
            next_cas(ctx)
        }
    };
    match (mode, old) {
        (Mode::Append | Mode::Prepend, Some((old_flags, _, expire_at))) => {
            // Keeps the item's flags and expiry; a new CAS.
            let grown = ctx
                .ks
                .peek_live(key, now)
                .map_or(0, |e| e.value.mem_bytes())
                + data.len();
            ctx.reserve_store(key, grown)?;
            let word = word_of(ctx);
            let Some(e) = ctx.ks.peek_live(key, now) else {
                return outcome(NOT_STORED, 0);
            };
            let old_data = parse_item(&e.value).map_or(&[][..], |i| i.data);
            let size = old_data.len() + data.len();
            let bytes = if mode == Mode::Append {
                build_item(&[old_data, data], old_flags, word)
            } else {
                build_item(&[data, old_data], old_flags, word)
            };
            ctx.ks
                .insert(key, Value::Str(bytes), expire_at.unwrap_or(0), now);
            outcome_sized(STORED, word, size)
        }
        _ => {
            let (flags, exptime) = match (mode, vivify) {
                // Vivified by an append: the data alone, the N exptime.
                (Mode::Append | Mode::Prepend, Some(t)) => (flags, t),
                _ => (flags, exptime),
            };
            ctx.reserve_store(key, data.len() + TRAILER)?;
            let mut word = word_of(ctx);
            let mut at = deadline(exptime, now);
            if stale && let Some((_, old_word, old_expiry)) = old {
                // An invalidating store with an older CAS: the item is
                // replaced but stays stale, keeping its TTL and any token.
                word |= STALE | (old_word & TOKEN_SENT);
                at = old_expiry.unwrap_or(0);
            }
            if at != 0 && at <= now {
                ctx.ks.remove(key, now);
            } else {
                let bytes = build_item(&[data], flags, word);
                ctx.ks.insert(key, Value::Str(bytes), at, now);
            }
            outcome_sized(STORED, word & CAS_MASK, data.len())
        }
    }
}

/// A delete: `delete`, `md`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOp {
    pub compare: u64,
    /// md `I`: mark stale (new CAS) instead of deleting.
    pub invalidate: bool,
    /// md `T` with `I`: the stale item's new exptime.
    pub ttl: Option<i64>,
    /// md `E`: the CAS the stale item gets.
    pub explicit: u64,
    /// md `x` (memcached 1.6.27+): empty the item's value (flags `F`, TTL
    /// `T`, the same CAS or `E`) instead of deleting it.
    pub remove_value: bool,
    /// md `F` with `x`: the emptied item's client flags.
    pub flags: u32,
}

impl DeleteOp {
    pub fn encode(&self, key: Bytes) -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"mc_delete"),
            key,
            Bytes::from(self.compare.to_string()),
            flag(self.invalidate),
            enc_opt(self.ttl),
            Bytes::from(self.explicit.to_string()),
            flag(self.remove_value),
            Bytes::from(self.flags.to_string()),
        ]
    }
}

/// `mc_delete`: replies [`DELETED`], [`NOT_FOUND`] or [`EXISTS`] (CAS
/// mismatch) as a status.
pub fn delete(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let key = &args[1];
    let compare = unum(&args[2]);
    let invalidate = &args[3][..] == b"1";
    let ttl = opt(&args[4]);
    let explicit = unum(&args[5]);
    let remove_value = &args[6][..] == b"1";
    let flags = unum(&args[7]) as u32;
    let now = ctx.now;
    let mut word = match ctx.ks.peek_live(key, now) {
        None => {
            ctx.ks.contains(key, now);
            return Ok(Reply::status(NOT_FOUND));
        }
        Some(e) => parse_item(&e.value).ok_or(OpError::WrongType)?.word,
    };
    if compare != 0 && word & CAS_MASK != compare {
        return Ok(Reply::status(EXISTS));
    }
    if remove_value {
        // A tombstone: an empty item, its CAS kept (or E's).
        word = if explicit != 0 {
            explicit & CAS_MASK
        } else {
            word & CAS_MASK
        };
        let at = deadline(ttl.unwrap_or(0), now);
        if at != 0 && at <= now {
            ctx.ks.remove(key, now);
            return Ok(Reply::status(DELETED));
        }
        ctx.ks
            .insert(key, Value::Str(build_item(&[], flags, word)), at, now);
        if !invalidate {
            return Ok(Reply::status(DELETED));
        }
    } else if !invalidate {
        ctx.ks.remove(key, now);
        return Ok(Reply::status(DELETED));
    }
    let cas = if explicit != 0 {
        explicit & CAS_MASK
    } else {
        next_cas(ctx)
    };
    let new_word = (word & FETCHED) | STALE | cas;
    if let Some(mut e) = ctx.ks.get_mut(key, now) {
        set_word(e.value_mut(), new_word);
    }
    if let Some(t) = ttl {
        let at = deadline(t, now);
        if at != 0 && at <= now {
            ctx.ks.remove(key, now);
        } else {
            ctx.ks.set_expire(key, (at != 0).then_some(at), now);
        }
    }
    Ok(Reply::status(DELETED))
}

/// An arithmetic: `incr`, `decr`, `ma`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArithOp {
    pub incr: bool,
    pub delta: u64,
    pub compare: u64,
    /// ma `N`: create the item with `initial` when missing, this exptime.
    pub vivify: Option<i64>,
    pub initial: u64,
    /// ma `T`: the item's new exptime.
    pub touch: Option<i64>,
    /// ma `E`: the item's new CAS.
    pub explicit: u64,
    /// `N` comes after `T`: a created item keeps `N`'s TTL.
    pub vivify_last: bool,
}

impl ArithOp {
    pub fn encode(&self, key: Bytes) -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"mc_arith"),
            key,
            flag(self.incr),
            Bytes::from(self.delta.to_string()),
            Bytes::from(self.compare.to_string()),
            enc_opt(self.vivify),
            Bytes::from(self.initial.to_string()),
            enc_opt(self.touch),
            Bytes::from(self.explicit.to_string()),
            flag(self.vivify_last),
        ]
    }
}

/// Memcached's `safe_strtoull` on an item's data (followed by `\r\n` in
/// memcached: trailing spaces and the end are accepted, leading
/// whitespace skipped, a `-` refused on values past `i64::MAX`).
fn parse_counter(data: &[u8]) -> Option<u64> {
    let s = data
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .map_or(&[][..], |i| &data[i..]);
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let end = digits
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    if end < digits.len() && !digits[end].is_ascii_whitespace() {
        return None;
    }
    let mut v: u64 = 0;
    for &d in &digits[..end] {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if neg {
        let v = v.wrapping_neg();
        if (v as i64) < 0 && data.contains(&b'-') {
            return None;
        }
        return Some(v);
    }
    Some(v)
}

/// `mc_arith`: replies `[outcome, value, cas, ttl, ttl before, created]`:
/// [`DONE`] with the new
/// value, or [`NOT_FOUND`] / [`EXISTS`] (CAS mismatch) with nothing; a
/// value that is not a number is the client error [`NON_NUMERIC`].
/// As memcached, a result shorter than the stored text is padded with
/// spaces in place (`decr` of 100 by 91 stores `"9  "`), a longer one
/// replaces the item; either way the item gets a new CAS.
pub fn arith(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let key = &args[1];
    let incr = &args[2][..] == b"1";
    let delta = unum(&args[3]);
    let compare = unum(&args[4]);
    let vivify = opt(&args[5]);
    let initial = unum(&args[6]);
    let touch = opt(&args[7]);
    let explicit = unum(&args[8]);
    let vivify_last = &args[9][..] == b"1";
    let now = ctx.now;
    let touch_at = touch.map(|t| deadline(t, now));
    let ttl_touch = touch_at.map_or(-1, |at| ttl_secs((at != 0).then_some(at), now));
    let new_cas = |ctx: &Ctx<'_>| {
        if explicit != 0 {
            explicit & CAS_MASK
        } else {
            next_cas(ctx)
        }
    };
    // [outcome, value, cas, ttl, ttl before this command, created, the
    // TTL `T` gives, the TTL `N` gives a created item].
    let result_full = |word: &'static str,
                       value: Option<u64>,
                       cas: u64,
                       ttl: i64,
                       before: i64,
                       created: bool,
                       vivified: i64| {
        Reply::Array(vec![
            Reply::status(word),
            value.map_or(Reply::Nil, |v| Reply::bulk(Bytes::from(v.to_string()))),
            Reply::Int(cas as i64),
            Reply::Int(ttl),
            Reply::Int(before),
            Reply::Int(i64::from(created)),
            Reply::Int(ttl_touch),
            Reply::Int(vivified),
        ])
    };
    let result = |word, value, cas, ttl| result_full(word, value, cas, ttl, ttl, false, ttl);
    let current = match ctx.ks.get_no_touch(key, now) {
        None => None,
        Some(e) => {
            let item = parse_item(&e.value).ok_or(OpError::WrongType)?;
            Some((
                item.data.len(),
                item.flags,
                item.word,
                parse_counter(item.data),
            ))
        }
    };
    let Some((len, flags, word, value)) = current else {
        let Some(t) = vivify else {
            return Ok(result(NOT_FOUND, None, 0, 0));
        };
        let text = initial.to_string();
        ctx.reserve_store(key, text.len() + TRAILER)?;
        let cas = new_cas(ctx);
        let vivify_at = deadline(t, now);
        let vivified = ttl_secs((vivify_at != 0).then_some(vivify_at), now);
        // The flags act in order: the later of `T` and `N` sets the TTL.
        let at = match touch_at {
            Some(at) if !vivify_last => at,
            _ => vivify_at,
        };
        if at == 0 || at > now {
            let bytes = build_item(&[text.as_bytes()], 0, cas);
            ctx.ks.insert(key, Value::Str(bytes), at, now);
        }
        let ttl = ttl_secs((at != 0).then_some(at), now);
        return Ok(result_full(
            DONE,
            Some(initial),
            cas,
            ttl,
            -1,
            true,
            vivified,
        ));
    };
    if len == 0 {
        return Err(OpError::Static(NON_NUMERIC));
    }
    if compare != 0 && word & CAS_MASK != compare {
        return Ok(result(EXISTS, None, 0, 0));
    }
    let Some(value) = value else {
        return Err(OpError::Static(NON_NUMERIC));
    };
    let value = if incr {
        value.wrapping_add(delta)
    } else {
        value.saturating_sub(delta)
    };
    let text = value.to_string();
    let cas = new_cas(ctx);
    let new_word = (word & !CAS_MASK) | cas;
    if text.len() <= len {
        let mut e = ctx.ks.get_mut(key, now).ok_or(OpError::NoSuchKey)?;
        if let Value::Str(s) = e.value_mut() {
            s[..text.len()].copy_from_slice(text.as_bytes());
            for b in &mut s[text.len()..len] {
                *b = b' ';
            }
        }
        set_word(e.value_mut(), new_word);
    } else {
        ctx.reserve_store(key, text.len() + TRAILER)?;
        let expire_at = ctx.ks.peek_live(key, now).and_then(|e| e.expire_at());
        let bytes = build_item(&[text.as_bytes()], flags, new_word);
        ctx.ks
            .insert(key, Value::Str(bytes), expire_at.unwrap_or(0), now);
    }
    let mut expire_at = ctx.ks.peek_live(key, now).and_then(|e| e.expire_at());
    let before = ttl_secs(expire_at, now);
    if let Some(at) = touch_at {
        if at != 0 && at <= now {
            ctx.ks.remove(key, now);
        } else {
            ctx.ks.set_expire(key, (at != 0).then_some(at), now);
        }
        expire_at = (at != 0).then_some(at);
    }
    Ok(result_full(
        DONE,
        Some(value),
        cas,
        ttl_secs(expire_at, now),
        before,
        false,
        before,
    ))
}

/// The reply text of an OOM refusal, as memcached words it.
pub fn is_oom(r: &Reply) -> bool {
    matches!(r, Reply::Error(e) if e == reply::OOM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_round_trip_and_take_what_they_need() {
        for flags in [0u32, 1, 255, 256, 65535, 65536, u32::MAX] {
            for cas in [0u64, 1, 255, 256, 1 << 24, CAS_MASK] {
                for bits in [0, FETCHED, TOKEN_SENT | STALE, FETCHED | TOKEN_SENT | STALE] {
                    let word = cas | bits;
                    let v = Value::Str(build_item(&[b"da", b"ta"], flags, word));
                    let item = parse_item(&v).expect("an item");
                    assert_eq!(
                        (item.data, item.flags, item.word),
                        (&b"data"[..], flags, word)
                    );
                    assert_eq!(v.mem_bytes(), 4 + trailer_len(flags, word));
                    let mut v = v;
                    set_word(&mut v, (word ^ FETCHED) & !CAS_MASK | 7);
                    let item = parse_item(&v).expect("an item");
                    assert_eq!(item.data, b"data");
                    assert_eq!(item.word, (word ^ FETCHED) & !CAS_MASK | 7);
                }
            }
        }
        // 100 bytes, no flags, a CAS under 2^24: 104 bytes.
        let v = Value::Str(build_item(&[&[b'x'; 100]], 0, 1_000_000));
        assert_eq!(v.mem_bytes(), 104);
    }

    #[test]
    fn counters_parse_as_memcached_reads_them() {
        assert_eq!(parse_counter(b"10"), Some(10));
        assert_eq!(parse_counter(b"5  "), Some(5));
        assert_eq!(parse_counter(b" 7"), Some(7));
        assert_eq!(parse_counter(b"12abc"), None);
        assert_eq!(parse_counter(b"abc"), None);
        assert_eq!(parse_counter(b"-1"), None);
        assert_eq!(parse_counter(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_counter(b"18446744073709551616"), None);
    }

    use crate::partition::Keyspace;
    use std::sync::atomic::AtomicU64;

    fn run(ks: &mut Keyspace, cas: &AtomicU64, f: Handler, args: Vec<Bytes>) -> Reply {
        let mut ctx = Ctx::new(ks, 1_700_000_000_000);
        ctx.cas = Some(cas);
        f(&mut ctx, &args).unwrap_or_else(|e| e.reply())
    }

    type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> Result<Reply, OpError>;

    fn store_op(mode: Mode) -> StoreOp {
        StoreOp {
            mode,
            flags: 7,
            exptime: 0,
            compare: 0,
            explicit: 0,
            invalidate: false,
            vivify: None,
        }
    }

    #[test]
    fn items_carry_flags_and_cas_and_decr_pads_in_place() {
        let mut ks = Keyspace::whole();
        let cas = AtomicU64::new(0);
        let k = Bytes::from_static(b"k");
        let r = run(
            &mut ks,
            &cas,
            store,
            store_op(Mode::Set).encode(k.clone(), "100".into()),
        );
        assert_eq!(
            r,
            Reply::Array(vec![Reply::status(STORED), Reply::Int(1), Reply::Int(3)])
        );
        let get_op = GetOp {
            value: true,
            ..GetOp::default()
        };
        let found = Found::from_reply(&run(&mut ks, &cas, get, get_op.encode("mc_get", k.clone())))
            .expect("a hit");
        assert_eq!((found.flags, found.cas, found.fetched), (7, 1, false));
        assert_eq!(found.data.as_deref(), Some(&b"100"[..]));
        let dec = ArithOp {
            incr: false,
            delta: 91,
            ..ArithOp::default()
        };
        run(&mut ks, &cas, arith, dec.encode(k.clone()));
        let found = Found::from_reply(&run(&mut ks, &cas, get, get_op.encode("mc_get", k.clone())))
            .expect("a hit");
        assert_eq!(found.data.as_deref(), Some(&b"9  "[..]));
        assert_eq!((found.flags, found.cas, found.fetched), (7, 2, true));
        // A stale CAS fails; the item's own succeeds and draws a new one.
        let mut op = store_op(Mode::Cas);
        op.compare = 1;
        let r = run(&mut ks, &cas, store, op.encode(k.clone(), "x".into()));
        assert_eq!(
            r,
            Reply::Array(vec![Reply::status(EXISTS), Reply::Int(0), Reply::Int(0)])
        );
        op.compare = 2;
        let r = run(&mut ks, &cas, store, op.encode(k.clone(), "x".into()));
        assert_eq!(
            r,
            Reply::Array(vec![Reply::status(STORED), Reply::Int(3), Reply::Int(1)])
        );
        // The item is its data and a trailer of 1 CAS byte, 1 flags byte and
        // the header.
        assert_eq!(
            ks.peek_live(b"k", 0).expect("stored").value.mem_bytes(),
            1 + 3
        );
    }

    #[test]
    fn exptimes_read_as_memcached() {
        let now = 1_700_000_000_000;
        assert_eq!(deadline(0, now), 0);
        assert_eq!(deadline(-1, now), 1);
        assert_eq!(deadline(10, now), now + 10_000);
        assert_eq!(deadline(REALTIME_MAXDELTA, now), now + 2_592_000_000);
        assert_eq!(deadline(REALTIME_MAXDELTA + 1, now), 1);
        assert_eq!(deadline(1_800_000_000, now), 1_800_000_000_000);
    }
}
