//! String commands: GET, SET and friends, counters, ranges.
//!
//! Writes that can grow a string beyond the bytes their request carries
//! (SETRANGE past the end zero-fills; APPEND) reserve that growth against
//! the cache's storage maximum ([`Ctx::reserve_store`]) before allocating,
//! and SETRANGE meters each whole KiB it zero-fills as work.

use bytes::Bytes;

use super::args::{int, is, parse_i64};
use super::float80;
use super::{Ctx, OpError, notify};
use crate::partition::Value;
use crate::resp::{Reply, reply};

/// The string under `key` (read lookup), `None` if missing, WRONGTYPE otherwise.
pub fn op_get<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<Option<&'a [u8]>, OpError> {
    match ctx.ks.get(key, ctx.now) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Str(v) => Ok(Some(v)),
            _ => Err(OpError::WrongType),
        },
    }
}

/// Stores a string, clearing any TTL unless `expire_at` says otherwise.
/// A deadline already in the past deletes the key instead, as Redis does.
fn op_set(ctx: &mut Ctx<'_>, key: &[u8], value: &[u8], expire_at: u64) {
    if expire_at != 0 && expire_at <= ctx.now {
        ctx.ks.remove(key, ctx.now);
    } else {
        ctx.ks
            .insert(key, Value::Str(value.to_vec()), expire_at, ctx.now);
    }
}

/// Keyspace events of a SET-like write: `set`, and `expire` when the
/// command gave a deadline (as Redis's `setGenericCommand`).
fn notify_set(ctx: &mut Ctx<'_>, key: &[u8], with_expiry: bool) {
    ctx.notify(notify::STRING, "set", key);
    if with_expiry {
        ctx.notify(notify::GENERIC, "expire", key);
    }
}

/// Parses an expiry argument into an absolute unix-ms deadline.
/// `unit` is EX, PX, EXAT or PXAT; the value must be positive and not overflow.
pub fn parse_deadline(
    cmd: &'static str,
    unit: &[u8],
    value: &[u8],
    now: u64,
) -> Result<u64, OpError> {
    let n = int(value)?;
    if n <= 0 {
        return Err(OpError::InvalidExpire(cmd));
    }
    let seconds = is(unit, "EX") || is(unit, "EXAT");
    let relative = is(unit, "EX") || is(unit, "PX");
    let ms = if seconds {
        n.checked_mul(1000)
    } else {
        Some(n)
    };
    let at = ms.and_then(|ms| {
        if relative {
            ms.checked_add(now as i64)
        } else {
            Some(ms)
        }
    });
    at.map(|at| at as u64).ok_or(OpError::InvalidExpire(cmd))
}

fn is_expiry_unit(a: &[u8]) -> bool {
    is(a, "EX") || is(a, "PX") || is(a, "EXAT") || is(a, "PXAT")
}

pub fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    Ok(op_get(ctx, &args[1])?.map_or(Reply::Nil, Reply::bulk_slice))
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ts|KEEPTTL]
pub fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (key, value) = (&args[1], &args[2]);
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut expiry: Option<(&[u8], &[u8])> = None;
    let mut i = 3;
    while i < args.len() {
        let a = &args[i][..];
        if is(a, "NX") && !xx {
            nx = true;
        } else if is(a, "XX") && !nx {
            xx = true;
        } else if is(a, "GET") {
            get = true;
        } else if is(a, "KEEPTTL") && expiry.is_none() {
            keepttl = true;
        } else if is_expiry_unit(a) && expiry.is_none() && !keepttl && i + 1 < args.len() {
            expiry = Some((a, &args[i + 1]));
            i += 1;
        } else {
            return Err(OpError::Syntax);
        }
        i += 1;
    }
    let mut expire_at = match expiry {
        Some((unit, v)) => parse_deadline("set", unit, v, ctx.now)?,
        None => 0,
    };
    let old: Option<Bytes> = if get {
        op_get(ctx, key)?.map(Bytes::copy_from_slice)
    } else {
        None
    };
    if nx || xx || keepttl {
        let exists = ctx.ks.contains(key, ctx.now);
        if (nx && exists) || (xx && !exists) {
            return Ok(if get { old.into() } else { Reply::Nil });
        }
        if keepttl {
            expire_at = ctx
                .ks
                .get_mut(key, ctx.now)
                .and_then(|e| e.expire_at())
                .unwrap_or(0);
        }
    }
    op_set(ctx, key, value, expire_at);
    notify_set(ctx, key, expiry.is_some());
    Ok(if get { old.into() } else { Reply::ok() })
}

pub fn setnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    if ctx.ks.contains(&args[1], ctx.now) {
        return Ok(Reply::Int(0));
    }
    op_set(ctx, &args[1], &args[2], 0);
    notify_set(ctx, &args[1], false);
    Ok(Reply::Int(1))
}

pub fn setex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let at = parse_deadline("setex", b"EX", &args[2], ctx.now)?;
    op_set(ctx, &args[1], &args[3], at);
    notify_set(ctx, &args[1], true);
    Ok(Reply::ok())
}

pub fn psetex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let at = parse_deadline("psetex", b"PX", &args[2], ctx.now)?;
    op_set(ctx, &args[1], &args[3], at);
    notify_set(ctx, &args[1], true);
    Ok(Reply::ok())
}

pub fn getset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let old = op_get(ctx, &args[1])?.map(Bytes::copy_from_slice);
    op_set(ctx, &args[1], &args[2], 0);
    notify_set(ctx, &args[1], false);
    Ok(old.into())
}

pub fn getdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let old = op_get(ctx, &args[1])?.map(Bytes::copy_from_slice);
    if old.is_some() {
        ctx.ks.remove(&args[1], ctx.now);
        ctx.notify(notify::GENERIC, "del", &args[1]);
    }
    Ok(old.into())
}

/// GETEX key [EX s|PX ms|EXAT ts|PXAT ts|PERSIST]
pub fn getex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let key = &args[1];
    let mut change: Option<Option<u64>> = None;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i][..];
        if is(a, "PERSIST") && change.is_none() {
            change = Some(None);
        } else if is_expiry_unit(a) && change.is_none() && i + 1 < args.len() {
            change = Some(Some(parse_deadline("getex", a, &args[i + 1], ctx.now)?));
            i += 1;
        } else {
            return Err(OpError::Syntax);
        }
        i += 1;
    }
    let Some(value) = op_get(ctx, key)?.map(Bytes::copy_from_slice) else {
        return Ok(Reply::Nil);
    };
    match change {
        Some(Some(at)) if at <= ctx.now => {
            ctx.ks.remove(key, ctx.now);
            ctx.notify(notify::GENERIC, "del", key);
        }
        Some(Some(at)) => {
            ctx.ks.set_expire(key, Some(at), ctx.now);
            ctx.notify(notify::GENERIC, "expire", key);
        }
        Some(None) => {
            let had = ctx
                .ks
                .peek_live(key, ctx.now)
                .is_some_and(|e| e.expire_at().is_some());
            ctx.ks.set_expire(key, None, ctx.now);
            if had {
                ctx.notify(notify::GENERIC, "persist", key);
            }
        }
        None => {}
    }
    Ok(Reply::Bulk(value))
}

pub fn mget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let replies = args[1..]
        .iter()
        .map(|k| match op_get(ctx, k) {
            Ok(Some(v)) => Reply::bulk_slice(v),
            _ => Reply::Nil,
        })
        .collect();
    Ok(Reply::Array(replies))
}

pub fn mset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    if args.len().is_multiple_of(2) {
        return Err(OpError::Arity("mset"));
    }
    for pair in args[1..].chunks_exact(2) {
        op_set(ctx, &pair[0], &pair[1], 0);
        notify_set(ctx, &pair[0], false);
    }
    Ok(Reply::ok())
}

pub fn msetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    if args.len().is_multiple_of(2) {
        return Err(OpError::Arity("msetnx"));
    }
    let now = ctx.now;
    if args[1..]
        .chunks_exact(2)
        .any(|p| ctx.ks.contains(&p[0], now))
    {
        return Ok(Reply::Int(0));
    }
    for pair in args[1..].chunks_exact(2) {
        op_set(ctx, &pair[0], &pair[1], 0);
        notify_set(ctx, &pair[0], false);
    }
    Ok(Reply::Int(1))
}

/// Adds `delta` to the integer under `key` (0 if missing), keeping its TTL.
pub fn op_incr_by(ctx: &mut Ctx<'_>, key: &[u8], delta: i64) -> Result<i64, OpError> {
    let new = op_incr_by_quiet(ctx, key, delta)?;
    ctx.notify(notify::STRING, "incrby", key);
    Ok(new)
}

fn op_incr_by_quiet(ctx: &mut Ctx<'_>, key: &[u8], delta: i64) -> Result<i64, OpError> {
    if let Some(mut e) = ctx.ks.get_mut(key, ctx.now) {
        let Value::Str(v) = e.value_mut() else {
            return Err(OpError::WrongType);
        };
        let cur = parse_i64(v).ok_or(OpError::NotInteger)?;
        let new = cur.checked_add(delta).ok_or(OpError::Overflow)?;
        v.clear();
        v.extend_from_slice(itoa::Buffer::new().format(new).as_bytes());
        return Ok(new);
    }
    let text = itoa::Buffer::new().format(delta).as_bytes().to_vec();
    ctx.ks.insert(key, Value::Str(text), 0, ctx.now);
    Ok(delta)
}

pub fn incr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    op_incr_by(ctx, &args[1], 1).map(Reply::Int)
}

pub fn decr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    op_incr_by(ctx, &args[1], -1).map(Reply::Int)
}

pub fn incrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let delta = int(&args[2])?;
    op_incr_by(ctx, &args[1], delta).map(Reply::Int)
}

pub fn decrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let delta = int(&args[2])?;
    if delta == i64::MIN {
        return Err(OpError::Static(reply::DECREMENT_OVERFLOW));
    }
    op_incr_by(ctx, &args[1], -delta).map(Reply::Int)
}

/// INCRBYFLOAT: computed in extended precision and printed as Redis does
/// (see [`super::float80`]).
pub fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let key = &args[1];
    float80::parse(&args[2]).ok_or(OpError::NotFloat)?;
    let current = op_get(ctx, key)?.map_or_else(|| b"0".to_vec(), <[u8]>::to_vec);
    let text = float80::incr(&current, &args[2]).map_err(|bad| {
        if bad {
            OpError::NotFloat
        } else {
            OpError::NanOrInf
        }
    })?;
    if let Some(mut e) = ctx.ks.get_mut(key, ctx.now) {
        *e.value_mut() = Value::Str(text.clone().into_bytes());
    } else {
        ctx.ks
            .insert(key, Value::Str(text.clone().into_bytes()), 0, ctx.now);
    }
    ctx.notify(notify::STRING, "incrbyfloat", key);
    Ok(Reply::bulk(text))
}

/// The length of the string under `key` for a write: `None` if missing,
/// WRONGTYPE for other types. No side effect (no hit or miss counted, an
/// expired key is only skipped), so a write refused afterwards leaves none.
fn op_len_for_write(ctx: &Ctx<'_>, key: &[u8]) -> Result<Option<usize>, OpError> {
    match ctx.ks.peek_live(key, ctx.now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Str(v)) => Ok(Some(v.len())),
        Some(_) => Err(OpError::WrongType),
    }
}

/// APPEND key value: the growth (the whole entry for a new key) is
/// reserved before the string grows.
pub fn append(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (key, tail) = (&args[1], &args[2]);
    let cur = op_len_for_write(ctx, key)?.unwrap_or(0);
    let new_len = cur.saturating_add(tail.len());
    if new_len > ctx.max_value_len {
        return Err(OpError::StringTooLong);
    }
    ctx.reserve_store(key, new_len)?;
    let appended = match ctx.ks.get_mut(key, ctx.now) {
        Some(mut e) => {
            let Value::Str(v) = e.value_mut() else {
                return Err(OpError::WrongType);
            };
            v.extend_from_slice(tail);
            Some(v.len() as i64)
        }
        None => None,
    };
    if let Some(len) = appended {
        ctx.notify(notify::STRING, "append", key);
        return Ok(Reply::Int(len));
    }
    op_set(ctx, key, tail, 0);
    ctx.notify(notify::STRING, "append", key);
    Ok(Reply::Int(tail.len() as i64))
}

pub fn strlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    Ok(Reply::Int(
        op_get(ctx, &args[1])?.map_or(0, |v| v.len() as i64),
    ))
}

pub fn getrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (mut start, mut end) = (int(&args[2])?, int(&args[3])?);
    let v = op_get(ctx, &args[1])?.unwrap_or_default();
    let len = v.len() as i64;
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return Ok(Reply::bulk(Bytes::new()));
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0).min(len - 1);
    if start > end {
        return Ok(Reply::bulk(Bytes::new()));
    }
    Ok(Reply::bulk_slice(&v[start as usize..=end as usize]))
}

/// SETRANGE key offset value: writing past the end zero-fills the gap, so
/// the growth is checked (proto-max-bulk-len, then the storage room) and
/// reserved before the string is resized, and metered per whole KiB.
pub fn setrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (key, piece) = (&args[1], &args[3]);
    let offset = int(&args[2])?;
    if offset < 0 {
        return Err(OpError::OffsetOutOfRange);
    }
    let offset = offset as usize;
    // Phase 1: what is there, and what the write needs.
    let cur = op_len_for_write(ctx, key)?;
    if piece.is_empty() {
        return Ok(Reply::Int(cur.unwrap_or(0) as i64));
    }
    let end = offset.saturating_add(piece.len());
    if end > ctx.max_value_len {
        return Err(OpError::StringTooLong);
    }
    let new_len = end.max(cur.unwrap_or(0));
    // Phase 2: reserve the growth before allocating it.
    ctx.reserve_store(key, new_len)?;
    ctx.work += zero_filled_kib(offset.saturating_sub(cur.unwrap_or(0)));
    // Phase 3: write.
    let write = |v: &mut Vec<u8>| {
        if v.len() < end {
            v.resize(end, 0);
        }
        v[offset..end].copy_from_slice(piece);
        v.len() as i64
    };
    let written = match ctx.ks.get_mut(key, ctx.now) {
        Some(mut e) => {
            let Value::Str(v) = e.value_mut() else {
                return Err(OpError::WrongType);
            };
            Some(write(v))
        }
        None => None,
    };
    if let Some(len) = written {
        ctx.notify(notify::STRING, "setrange", key);
        return Ok(Reply::Int(len));
    }
    let mut v = Vec::new();
    let len = write(&mut v);
    ctx.ks.insert(key, Value::Str(v), 0, ctx.now);
    ctx.notify(notify::STRING, "setrange", key);
    Ok(Reply::Int(len))
}

/// Whole KiB a write zero-fills: the unit its work is metered in (the
/// table's `FILL_KIB`); a gap under 1 KiB is free, as small growth is.
pub fn zero_filled_kib(bytes: usize) -> u64 {
    (bytes / 1024) as u64
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: the longest
/// common subsequence of two strings, by Redis's dynamic programme (so the
/// matches it lists are Redis's). Its table is (len1+1)·(len2+1) `u32`s of
/// transient memory: refused, as Redis does, when that passes
/// proto-max-bulk-len, before anything is allocated; every cell is metered
/// as work.
pub fn lcs(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (a, b) = {
        let a = lcs_operand(ctx, &args[1])?;
        let b = lcs_operand(ctx, &args[2])?;
        match (a, b) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(OpError::Static(reply::LCS_NOT_STRINGS)),
        }
    };
    let (mut getlen, mut getidx, mut withmatchlen) = (false, false, false);
    let mut minmatchlen: i64 = 0;
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j];
        let more = args.len() - 1 - j;
        if is(opt, "IDX") {
            getidx = true;
        } else if is(opt, "LEN") {
            getlen = true;
        } else if is(opt, "WITHMATCHLEN") {
            withmatchlen = true;
        } else if is(opt, "MINMATCHLEN") && more > 0 {
            minmatchlen = int(&args[j + 1])?.max(0);
            j += 1;
        } else {
            return Err(OpError::Syntax);
        }
        j += 1;
    }
    if getlen && getidx {
        return Err(OpError::Static(reply::LCS_LEN_AND_IDX));
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1).saturating_mul(blen as u64 + 1);
    if cells.saturating_mul(4) > ctx.max_value_len as u64 {
        return Err(OpError::Static(reply::LCS_TOO_BIG));
    }
    ctx.work += cells;
    let w = blen + 1;
    if getlen {
        // The length alone needs two rows of the table, not all of it.
        let (mut prev, mut row) = (vec![0u32; w], vec![0u32; w]);
        for i in 1..=alen {
            for j in 1..=blen {
                row[j] = if a[i - 1] == b[j - 1] {
                    prev[j - 1] + 1
                } else {
                    prev[j].max(row[j - 1])
                };
            }
            std::mem::swap(&mut prev, &mut row);
        }
        return Ok(Reply::Int(i64::from(prev[blen])));
    }
    let mut t = vec![0u32; cells as usize];
    for i in 1..=alen {
        for j in 1..=blen {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let total = t[alen * w + blen];
    // Walk back from the end, as Redis does, collecting the string and
    // the ranges of contiguous matches.
    let mut result = vec![0u8; total as usize];
    let mut idx = total as usize;
    let mut matches = Vec::new();
    let (mut arange_start, mut arange_end, mut brange_start, mut brange_end) = (alen, 0, 0, 0);
    let (mut i, mut j) = (alen, blen);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if arange_start == alen {
                (arange_start, arange_end, brange_start, brange_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if arange_start == i && brange_start == j {
                arange_start -= 1;
                brange_start -= 1;
            } else {
                emit = true;
            }
            if arange_start == 0 || brange_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if arange_start != alen {
                emit = true;
            }
        }
        let match_len = arange_end.wrapping_sub(arange_start).wrapping_add(1);
        if emit {
            if getidx && (minmatchlen == 0 || match_len as i64 >= minmatchlen) {
                let mut m = vec![
                    Reply::Array(vec![
                        Reply::Int(arange_start as i64),
                        Reply::Int(arange_end as i64),
                    ]),
                    Reply::Array(vec![
                        Reply::Int(brange_start as i64),
                        Reply::Int(brange_end as i64),
                    ]),
                ];
                if withmatchlen {
                    m.push(Reply::Int(match_len as i64));
                }
                matches.push(Reply::Array(m));
            }
            arange_start = alen;
        }
    }
    if getidx {
        return Ok(Reply::Map(vec![
            (Reply::bulk("matches"), Reply::Array(matches)),
            (Reply::bulk("len"), Reply::Int(i64::from(total))),
        ]));
    }
    Ok(Reply::bulk(result))
}

/// An LCS operand: the string (empty if missing), `None` if the key holds
/// another type.
fn lcs_operand(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<Vec<u8>>, OpError> {
    match op_get(ctx, key) {
        Ok(v) => Ok(Some(v.map(<[u8]>::to_vec).unwrap_or_default())),
        Err(OpError::WrongType) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::test_util::{Harness, bulk, err};
    use crate::resp::Reply;

    #[test]
    fn set_options() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["set", "k", "v"]), Reply::ok());
        assert_eq!(h.run(&["set", "k", "w", "NX"]), Reply::Nil);
        assert_eq!(h.run(&["set", "k", "w", "XX", "GET"]), bulk("v"));
        assert_eq!(h.run(&["set", "n", "w", "XX"]), Reply::Nil);
        assert_eq!(
            h.run(&["set", "k", "w", "NX", "XX"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["set", "k", "w", "EX", "10", "PX", "5"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["set", "k", "w", "EX", "0"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            h.run(&["set", "k", "w", "EX", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["set", "k", "w", "EX", "9223372036854775807"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(h.run(&["set", "k", "v", "EX", "100"]), Reply::ok());
        assert_eq!(h.run(&["ttl", "k"]), Reply::Int(100));
        assert_eq!(h.run(&["set", "k", "v2", "KEEPTTL"]), Reply::ok());
        assert_eq!(h.run(&["ttl", "k"]), Reply::Int(100));
        assert_eq!(h.run(&["set", "k", "v3"]), Reply::ok());
        assert_eq!(h.run(&["ttl", "k"]), Reply::Int(-1));
        assert_eq!(h.run(&["hset", "h", "f", "v"]), Reply::Int(1));
        assert_eq!(
            h.run(&["set", "h", "v", "GET"]),
            err(crate::resp::reply::WRONGTYPE)
        );
        assert_eq!(h.run(&["set", "past", "v", "PXAT", "1"]), Reply::ok());
        assert_eq!(h.run(&["exists", "past"]), Reply::Int(0));
    }

    #[test]
    fn counters() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["incr", "c"]), Reply::Int(1));
        assert_eq!(h.run(&["incrby", "c", "41"]), Reply::Int(42));
        assert_eq!(h.run(&["decrby", "c", "2"]), Reply::Int(40));
        assert_eq!(h.run(&["set", "c", "9223372036854775807"]), Reply::ok());
        assert_eq!(
            h.run(&["incr", "c"]),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(h.run(&["set", "c", "01"]), Reply::ok());
        assert_eq!(
            h.run(&["incr", "c"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["decrby", "c", "-9223372036854775808"]),
            err("ERR decrement would overflow")
        );
        assert_eq!(h.run(&["set", "f", "10.5"]), Reply::ok());
        assert_eq!(h.run(&["incrbyfloat", "f", "0.1"]), bulk("10.6"));
        assert_eq!(h.run(&["incrbyfloat", "f", "-5.6"]), bulk("5"));
        assert_eq!(
            h.run(&["incrbyfloat", "f", "inf"]),
            err("ERR increment would produce NaN or Infinity")
        );
        assert_eq!(
            h.run(&["incrbyfloat", "f", "x"]),
            err("ERR value is not a valid float")
        );
    }

    #[test]
    fn ranges_and_append() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["append", "s", "Hello"]), Reply::Int(5));
        assert_eq!(h.run(&["append", "s", " World"]), Reply::Int(11));
        assert_eq!(h.run(&["getrange", "s", "0", "3"]), bulk("Hell"));
        assert_eq!(h.run(&["getrange", "s", "-3", "-1"]), bulk("rld"));
        assert_eq!(h.run(&["getrange", "s", "0", "-1"]), bulk("Hello World"));
        assert_eq!(h.run(&["getrange", "s", "10", "100"]), bulk("d"));
        assert_eq!(h.run(&["getrange", "s", "-1", "-5"]), bulk(""));
        assert_eq!(h.run(&["setrange", "s", "6", "Redis"]), Reply::Int(11));
        assert_eq!(h.run(&["get", "s"]), bulk("Hello Redis"));
        assert_eq!(h.run(&["setrange", "z", "3", "ab"]), Reply::Int(5));
        assert_eq!(h.run(&["get", "z"]), bulk("\0\0\0ab"));
        assert_eq!(
            h.run(&["setrange", "z", "-1", "ab"]),
            err("ERR offset is out of range")
        );
        assert_eq!(
            h.run(&["setrange", "z", "536870911", "ab"]),
            err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        );
        assert_eq!(h.run(&["setrange", "empty", "3", ""]), Reply::Int(0));
        assert_eq!(h.run(&["exists", "empty"]), Reply::Int(0));
        assert_eq!(h.run(&["strlen", "s"]), Reply::Int(11));
    }

    #[test]
    fn growth_past_the_room_is_refused_before_allocating() {
        let oom = err(crate::resp::reply::OOM);
        let mut h = Harness::new();
        h.room = 1024 * 1024;
        // 512 MiB zero-filled for a 1-byte request: refused, nothing stored.
        assert_eq!(h.run(&["setrange", "big", "536870911", "x"]), oom);
        assert_eq!(h.run(&["exists", "big"]), Reply::Int(0));
        assert_eq!(h.ks.used_bytes(), 0);
        // Within the room it works, and the zero-fill is metered per KiB.
        assert_eq!(
            h.run(&["setrange", "big", "102400", "x"]),
            Reply::Int(102401)
        );
        assert_eq!(h.last_work, 100);
        let used = h.ks.used_bytes();
        // On an existing string only the growth counts: 10 bytes of room
        // allow 10 more, not 11; overwriting inside the string needs none.
        h.room = 10;
        assert_eq!(
            h.run(&["setrange", "big", "102410", "x"]),
            Reply::Int(102411)
        );
        assert_eq!(h.run(&["setrange", "big", "102421", "x"]), oom);
        h.room = 0;
        assert_eq!(
            h.run(&["setrange", "big", "0", "hello"]),
            Reply::Int(102411)
        );
        assert_eq!(h.ks.used_bytes(), used + 10);
        // Errors that come first in Redis still come first.
        h.run(&["hset", "h", "f", "v"]);
        assert_eq!(
            h.run(&["setrange", "h", "100", "x"]),
            err(crate::resp::reply::WRONGTYPE)
        );
        assert_eq!(h.run(&["setrange", "nope", "100", ""]), Reply::Int(0));
        // A new key needs room for the whole entry (name and overhead too).
        h.room = 66;
        assert_eq!(h.run(&["setrange", "n", "0", "x"]), Reply::Int(1));
        h.room = 65;
        assert_eq!(h.run(&["setrange", "m", "0", "x"]), oom);
    }

    #[test]
    fn append_reserves_its_growth() {
        let oom = err(crate::resp::reply::OOM);
        let mut h = Harness::new();
        h.room = 100;
        assert_eq!(h.run(&["append", "s", "hello"]), Reply::Int(5));
        let tail = "x".repeat(101);
        assert_eq!(h.run(&["append", "s", &tail]), oom);
        assert_eq!(h.run(&["strlen", "s"]), Reply::Int(5));
        assert_eq!(h.run(&["append", "s", &tail[..100]]), Reply::Int(105));
        assert_eq!(h.run(&["append", "new", &tail]), oom);
        assert_eq!(h.run(&["exists", "new"]), Reply::Int(0));
    }

    #[test]
    fn multi_and_getex() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["mset", "a", "1", "b", "2"]), Reply::ok());
        assert_eq!(
            h.run(&["mset", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'mset' command")
        );
        assert_eq!(h.run(&["hset", "h", "f", "v"]), Reply::Int(1));
        assert_eq!(
            h.run(&["mget", "a", "nope", "b", "h"]),
            Reply::Array(vec![bulk("1"), Reply::Nil, bulk("2"), Reply::Nil])
        );
        assert_eq!(h.run(&["msetnx", "a", "1", "c", "3"]), Reply::Int(0));
        assert_eq!(h.run(&["msetnx", "c", "3", "d", "4"]), Reply::Int(1));
        assert_eq!(h.run(&["getex", "a", "EX", "50"]), bulk("1"));
        assert_eq!(h.run(&["ttl", "a"]), Reply::Int(50));
        assert_eq!(h.run(&["getex", "a", "PERSIST"]), bulk("1"));
        assert_eq!(h.run(&["ttl", "a"]), Reply::Int(-1));
        assert_eq!(
            h.run(&["getex", "a", "EX", "1", "PX", "1"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["getdel", "a"]), bulk("1"));
        assert_eq!(h.run(&["getdel", "a"]), Reply::Nil);
        assert_eq!(h.run(&["getset", "b", "x"]), bulk("2"));
        assert_eq!(h.run(&["setnx", "b", "y"]), Reply::Int(0));
        assert_eq!(
            h.run(&["setex", "b", "0", "y"]),
            err("ERR invalid expire time in 'setex' command")
        );
        assert_eq!(h.run(&["psetex", "b", "1500", "y"]), Reply::ok());
        assert_eq!(h.run(&["pttl", "b"]), Reply::Int(1500));
    }

    /// LCS LEN (two rows of the table) agrees with the full table's length.
    #[test]
    fn lcs_len_agrees_with_the_full_table() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut h = Harness::new();
        for _ in 0..200 {
            let mut word = |n: usize| -> String {
                (0..rng.random_range(0..n))
                    .map(|_| (b'a' + rng.random_range(0..4u8)) as char)
                    .collect()
            };
            let (a, b) = (word(40), word(40));
            h.run(&["mset", "{l}a", &a, "{l}b", &b]);
            let Reply::Int(len) = h.run(&["lcs", "{l}a", "{l}b", "LEN"]) else {
                panic!("LEN is an integer")
            };
            let Reply::Map(idx) = h.run(&["lcs", "{l}a", "{l}b", "IDX"]) else {
                panic!("IDX is a map")
            };
            assert_eq!(idx[1].1, Reply::Int(len), "{a} {b}");
            let Reply::Bulk(s) = h.run(&["lcs", "{l}a", "{l}b"]) else {
                panic!("the LCS is a string")
            };
            assert_eq!(s.len() as i64, len);
        }
    }
}
