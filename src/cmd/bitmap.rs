//! Bitmap commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS
//! (BYTE or BIT ranges) and BITOP AND/OR/XOR/NOT.
//!
//! Bit 0 is the most significant bit of byte 0, as in Redis. Offsets are
//! bounded by the largest string a write may produce (`ctx.max_value_len`,
//! Redis's proto-max-bulk-len), so SETBIT can never grow a string beyond it.
//! A write's growth (SETBIT past the end, BITOP's result) is reserved
//! against the cache's storage maximum ([`Ctx::reserve_store`]) before it
//! is allocated. Handlers meter work per KiB of string scanned, and per KiB
//! created (SETBIT's zero-fill, BITOP's result).

use bytes::Bytes;

use super::args::{int, is, parse_i64};
use super::string::zero_filled_kib;
use super::table::{FILL_KIB, SCAN_KIB};

// BITOP counts the KiB it creates in SCAN_KIB units: whole ones.
const _: () = assert!(FILL_KIB.is_multiple_of(SCAN_KIB));
use super::{Ctx, OpError, notify};
use crate::partition::Value;
use crate::resp::{Reply, reply};

/// The string under `key` for reading; `None` if missing, WRONGTYPE otherwise.
fn op_read<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<Option<&'a [u8]>, OpError> {
    super::string::op_get(ctx, key)
}

/// KiB scanned, rounded up (the unit bitmap work is metered in).
fn kib(bytes: usize) -> u64 {
    bytes.div_ceil(1024) as u64
}

/// A bit offset: 0 ..= 8 * max_value_len - 1.
fn bit_offset(arg: &[u8], max_value_len: usize) -> Result<u64, OpError> {
    parse_i64(arg)
        .filter(|n| *n >= 0 && ((*n as u64) >> 3) < max_value_len as u64)
        .map(|n| n as u64)
        .ok_or(OpError::Static(reply::BIT_OFFSET))
}

fn get_bit(s: &[u8], bit: u64) -> bool {
    let byte = (bit >> 3) as usize;
    s.get(byte).is_some_and(|b| b & (0x80 >> (bit & 7)) != 0)
}

/// SETBIT key offset 0|1: the bit's previous value.
pub fn setbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let bit = bit_offset(&args[2], ctx.max_value_len)?;
    let on = match parse_i64(&args[3]) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(OpError::Static(reply::BIT_VALUE)),
    };
    let byte = (bit >> 3) as usize;
    let mask = 0x80u8 >> (bit & 7);
    let key = &args[1];
    // Reserve the growth before allocating it (nothing touched if refused).
    let cur = match ctx.ks.peek_live(key, ctx.now).map(|e| &e.value) {
        None => None,
        Some(Value::Str(s)) => Some(s.len()),
        Some(_) => return Err(OpError::WrongType),
    };
    ctx.reserve_store(key, (byte + 1).max(cur.unwrap_or(0)))?;
    ctx.work += zero_filled_kib(byte.saturating_sub(cur.unwrap_or(0)));
    let write = |s: &mut Vec<u8>| {
        if s.len() <= byte {
            s.resize(byte + 1, 0);
        }
        let old = s[byte] & mask != 0;
        if on {
            s[byte] |= mask;
        } else {
            s[byte] &= !mask;
        }
        old
    };
    let existing = match ctx.ks.get_mut(key, ctx.now) {
        Some(mut e) => {
            let Value::Str(s) = e.value_mut() else {
                return Err(OpError::WrongType);
            };
            let grew = s.len() <= byte;
            Some((write(s), grew))
        }
        None => None,
    };
    if let Some((old, grew)) = existing {
        // Redis's event only when the string changed.
        if grew || old != on {
            ctx.notify(notify::STRING, "setbit", key);
        }
        return Ok(Reply::Int(i64::from(old)));
    }
    let mut s = Vec::new();
    write(&mut s);
    ctx.ks.insert(key, Value::Str(s), 0, ctx.now);
    ctx.notify(notify::STRING, "setbit", key);
    Ok(Reply::Int(0))
}

/// GETBIT key offset
pub fn getbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let bit = bit_offset(&args[2], ctx.max_value_len)?;
    let set = op_read(ctx, &args[1])?.is_some_and(|s| get_bit(s, bit));
    Ok(Reply::Int(i64::from(set)))
}

/// `BYTE` or `BIT` as the unit of a range.
fn unit_is_bit(arg: &[u8]) -> Result<bool, OpError> {
    if is(arg, "BIT") {
        Ok(true)
    } else if is(arg, "BYTE") {
        Ok(false)
    } else {
        Err(OpError::Syntax)
    }
}

/// Resolves a Redis `start end` range over `total` units (negative counts
/// from the end) to an inclusive span, `None` when empty.
fn span(start: i64, end: i64, total: i64) -> Option<(i64, i64)> {
    let start = if start < 0 { total + start } else { start }.max(0);
    let end = if end < 0 { total + end } else { end }
        .max(0)
        .min(total - 1);
    (start <= end).then_some((start, end))
}

/// Set bits in bit positions `lo..=hi` of `s`.
fn count_bits(s: &[u8], lo: u64, hi: u64) -> u64 {
    let (first, last) = ((lo >> 3) as usize, (hi >> 3) as usize);
    // Eight bytes at a time: a byte at a time took 1.5-1.9 ns a byte.
    let mut words = s[first..=last].chunks_exact(8);
    let whole: u64 = (&mut words)
        .map(|w| u64::from(u64::from_ne_bytes(w.try_into().expect("8 bytes")).count_ones()))
        .sum::<u64>()
        + words
            .remainder()
            .iter()
            .map(|b| u64::from(b.count_ones()))
            .sum::<u64>();
    // Take away the bits of the edge bytes outside the range.
    let head = u64::from((s[first] & !(0xffu8 >> (lo & 7))).count_ones());
    let tail = u64::from((s[last] & (0x7fu8 >> (hi & 7))).count_ones());
    whole - head - tail
}

/// BITCOUNT key [start end [BYTE|BIT]]
pub fn bitcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let range = match args.len() {
        2 => None,
        4 | 5 => {
            let (start, end) = (int(&args[2])?, int(&args[3])?);
            let bits = match args.get(4) {
                Some(u) => unit_is_bit(u)?,
                None => false,
            };
            Some((start, end, bits))
        }
        _ => return Err(OpError::Syntax),
    };
    let Some(s) = op_read(ctx, &args[1])? else {
        return Ok(Reply::Int(0));
    };
    let len = s.len() as i64;
    let (lo, hi) = match range {
        None if len == 0 => return Ok(Reply::Int(0)),
        None => (0, len as u64 * 8 - 1),
        Some((start, end, _)) if start < 0 && end < 0 && start > end => {
            return Ok(Reply::Int(0));
        }
        Some((start, end, true)) => match span(start, end, len * 8) {
            Some((a, b)) => (a as u64, b as u64),
            None => return Ok(Reply::Int(0)),
        },
        Some((start, end, false)) => match span(start, end, len) {
            Some((a, b)) => (a as u64 * 8, b as u64 * 8 + 7),
            None => return Ok(Reply::Int(0)),
        },
    };
    let n = count_bits(s, lo, hi);
    ctx.work += kib(((hi - lo) / 8 + 1) as usize);
    Ok(Reply::Int(n as i64))
}

/// The first bit equal to `bit` in positions `lo..=hi` of `s`.
fn find_bit(s: &[u8], bit: bool, lo: u64, hi: u64) -> Option<u64> {
    let hit = |pos: u64| (s[(pos >> 3) as usize] & (0x80 >> (pos & 7)) != 0) == bit;
    let mut pos = lo;
    // Bits before the first whole byte, one at a time.
    while pos <= hi && pos & 7 != 0 {
        if hit(pos) {
            return Some(pos);
        }
        pos += 1;
    }
    // Whole bytes in range with nothing to find are skipped at once.
    let (first, end) = ((pos >> 3) as usize, ((hi + 1) >> 3) as usize);
    if first < end {
        pos = ((first + skip_run(&s[first..end], if bit { 0x00 } else { 0xff })) as u64) << 3;
    }
    // The byte holding the answer, or the last partial byte.
    while pos <= hi {
        if hit(pos) {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

/// How many leading bytes of `bytes` are `skip`, compared 64 at a time
/// (a slice comparison: `memcmp`, vectorized).
fn skip_run(bytes: &[u8], skip: u8) -> usize {
    let block = [skip; 64];
    let n = bytes.chunks_exact(64).take_while(|c| *c == block).count() * 64;
    n + bytes[n..].iter().take_while(|&&b| b == skip).count()
}

/// BITPOS key 0|1 [start [end [BYTE|BIT]]]
pub fn bitpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let bit = match int(&args[2])? {
        0 => false,
        1 => true,
        _ => return Err(OpError::Static(reply::BIT_ARG)),
    };
    let Some(s) = op_read(ctx, &args[1])? else {
        return Ok(Reply::Int(if bit { -1 } else { 0 }));
    };
    let len = s.len() as i64;
    let (start, end, end_given, bits) = match args.len() {
        3 => (0, len - 1, false, false),
        4..=6 => {
            let start = int(&args[3])?;
            let bits = match args.get(5) {
                Some(u) => unit_is_bit(u)?,
                None => false,
            };
            match args.get(4) {
                Some(e) => (start, int(e)?, true, bits),
                None => (start, len - 1, false, bits),
            }
        }
        _ => return Err(OpError::Syntax),
    };
    let total = if bits { len * 8 } else { len };
    let Some((a, b)) = span(start, end, total) else {
        return Ok(Reply::Int(-1));
    };
    let (lo, hi) = if bits {
        (a as u64, b as u64)
    } else {
        (a as u64 * 8, b as u64 * 8 + 7)
    };
    let found = match find_bit(s, bit, lo, hi) {
        Some(p) => p as i64,
        // No clear bit: the string continues with zeros unless an end was given.
        None if !bit && !end_given => (hi + 1) as i64,
        None => -1,
    };
    // Compared 64 bytes at a time, a KiB searched costs half a KiB
    // counted (0.09-0.16 GETs against BITCOUNT's 0.23-0.35).
    ctx.work += kib(((hi - lo) / 8 + 1) as usize).div_ceil(2);
    Ok(Reply::Int(found))
}

/// BITOP AND|OR|XOR|NOT destkey srckey [srckey ...]: the result's length.
pub fn bitop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Op {
        And,
        Or,
        Xor,
        Not,
    }
    let op = match &args[1] {
        a if is(a, "AND") => Op::And,
        a if is(a, "OR") => Op::Or,
        a if is(a, "XOR") => Op::Xor,
        a if is(a, "NOT") => Op::Not,
        _ => return Err(OpError::Syntax),
    };
    if op == Op::Not && args.len() != 4 {
        return Err(OpError::Static(reply::BITOP_NOT_ONE_KEY));
    }
    let (dest, keys) = (&args[2], &args[3..]);
    // Phase 1: every source is a string or missing.
    for k in keys {
        op_read(ctx, k)?;
    }
    // Phase 2: combine, missing keys as empty strings.
    let now = ctx.now;
    let source = |ctx: &'_ Ctx<'_>, k: &[u8]| -> usize {
        match ctx.ks.peek_live(k, now).map(|e| &e.value) {
            Some(Value::Str(s)) => s.len(),
            _ => 0,
        }
    };
    let maxlen = keys.iter().map(|k| source(ctx, k)).max().unwrap_or(0);
    // The result is as long as the longest source: reserve it first.
    if maxlen > 0 {
        ctx.reserve_store(dest, maxlen)?;
    }
    let sources: Vec<&[u8]> = keys
        .iter()
        .map(|k| match ctx.ks.peek_live(k, now).map(|e| &e.value) {
            Some(Value::Str(s)) => &s[..],
            _ => &[][..],
        })
        .collect();
    // Source by source over whole slices (the compiler vectorizes these
    // loops; a byte at a time across the sources took 2.4 ns a byte).
    let mut out = vec![0u8; maxlen];
    out[..sources[0].len()].copy_from_slice(sources[0]);
    for s in &sources[1..] {
        let both = out.iter_mut().zip(s.iter());
        match op {
            Op::And => {
                both.for_each(|(o, b)| *o &= b);
                // Past a shorter source's end its bytes are zeros.
                out[s.len()..].fill(0);
            }
            Op::Or => both.for_each(|(o, b)| *o |= b),
            Op::Xor => both.for_each(|(o, b)| *o ^= b),
            Op::Not => {}
        }
    }
    if op == Op::Not {
        out.iter_mut().for_each(|o| *o = !*o);
    }
    // Each source scanned, and the result created (a KiB created costs
    // FILL_KIB, the table charges SCAN_KIB per unit).
    ctx.work +=
        kib(maxlen) * keys.len() as u64 + zero_filled_kib(maxlen) * u64::from(FILL_KIB / SCAN_KIB);
    // Phase 3: store (an empty result deletes the destination).
    if out.is_empty() {
        if ctx.ks.remove(dest, now) {
            ctx.notify(notify::GENERIC, "del", dest);
        }
    } else {
        ctx.ks.insert(dest, Value::Str(out), 0, now);
        ctx.notify(notify::STRING, "set", dest);
    }
    Ok(Reply::Int(maxlen as i64))
}

/// Overflow behaviour of BITFIELD's SET and INCRBY.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// One parsed BITFIELD operation.
struct FieldOp {
    /// 0 = GET, 1 = SET, 2 = INCRBY.
    kind: u8,
    signed: bool,
    bits: u32,
    offset: u64,
    value: i64,
    overflow: Overflow,
}

/// `i<1..64>` or `u<1..63>`.
fn field_type(arg: &[u8]) -> Result<(bool, u32), OpError> {
    let bad = || OpError::Static(reply::BITFIELD_TYPE);
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(bad()),
    };
    let bits = parse_i64(&arg[1..]).ok_or_else(bad)?;
    if bits < 1 || (signed && bits > 64) || (!signed && bits > 63) {
        return Err(bad());
    }
    Ok((signed, bits as u32))
}

/// A BITFIELD offset: bits, or `#n` = n times the field's width.
fn field_offset(arg: &[u8], bits: u32, max_value_len: usize) -> Result<u64, OpError> {
    let bad = || OpError::Static(reply::BIT_OFFSET);
    let (hash, digits) = match arg.first() {
        Some(b'#') => (true, &arg[1..]),
        _ => (false, arg),
    };
    let mut n = parse_i64(digits).ok_or_else(bad)?;
    if hash {
        n = n.wrapping_mul(i64::from(bits));
    }
    if n < 0 || ((n as u64) >> 3) >= max_value_len as u64 {
        return Err(bad());
    }
    Ok(n as u64)
}

fn get_field_unsigned(s: &[u8], offset: u64, bits: u32) -> u64 {
    (0..u64::from(bits)).fold(0u64, |v, i| (v << 1) | u64::from(get_bit(s, offset + i)))
}

fn get_field_signed(s: &[u8], offset: u64, bits: u32) -> i64 {
    let mut v = get_field_unsigned(s, offset, bits);
    if bits < 64 && v & (1 << (bits - 1)) != 0 {
        v |= u64::MAX << bits;
    }
    v as i64
}

fn set_field(s: &mut [u8], offset: u64, bits: u32, v: u64) {
    for i in 0..u64::from(bits) {
        let on = (v >> (u64::from(bits) - 1 - i)) & 1 != 0;
        let bit = offset + i;
        let (byte, mask) = ((bit >> 3) as usize, 0x80u8 >> (bit & 7));
        if on {
            s[byte] |= mask;
        } else {
            s[byte] &= !mask;
        }
    }
}

/// Redis's `checkUnsignedBitfieldOverflow`: whether `value + incr`
/// overflows `bits`, and the value to store instead (wrapped or saturated).
fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> (bool, u64) {
    let max = (1u64 << bits) - 1;
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = value.wrapping_neg() as i64;
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX << bits);
    if value > max || (incr > 0 && incr > maxincr) {
        (true, if ow == Overflow::Sat { max } else { wrap() })
    } else if incr < 0 && incr < minincr {
        (true, if ow == Overflow::Sat { 0 } else { wrap() })
    } else {
        (false, 0)
    }
}

/// Redis's `checkSignedBitfieldOverflow` (see [`unsigned_overflow`]).
fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> (bool, i64) {
    let max: i64 = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        (true, if ow == Overflow::Sat { max } else { wrap() })
    } else if value < min
        || (bits != 64 && incr < minincr)
        || (value < 0 && incr < 0 && incr < minincr)
    {
        (true, if ow == Overflow::Sat { min } else { wrap() })
    } else {
        (false, 0)
    }
}

/// BITFIELD key [GET type offset] [SET type offset value] [INCRBY type
/// offset increment] [OVERFLOW WRAP|SAT|FAIL] ... and BITFIELD_RO (GET
/// only). Every operation is parsed before any runs, as in Redis; a write
/// reserves the growth to its farthest bit before the string grows. Each
/// operation beyond the first counts as one unit of work, as a key of MSET
/// does, and each whole KiB zero-filled as FILL_KIB.
pub fn bitfield(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let ro = is(&args[0], "bitfield_ro");
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut highest: Option<u64> = None;
    let mut j = 2;
    while j < args.len() {
        let rem = args.len() - j - 1;
        let sub = &args[j];
        let kind = if is(sub, "GET") && rem >= 2 {
            0
        } else if is(sub, "SET") && rem >= 3 {
            1
        } else if is(sub, "INCRBY") && rem >= 3 {
            2
        } else if is(sub, "OVERFLOW") && rem >= 1 {
            let t = &args[j + 1];
            overflow = if is(t, "WRAP") {
                Overflow::Wrap
            } else if is(t, "SAT") {
                Overflow::Sat
            } else if is(t, "FAIL") {
                Overflow::Fail
            } else {
                return Err(OpError::Static(reply::BITFIELD_OVERFLOW_TYPE));
            };
            j += 2;
            continue;
        } else {
            return Err(OpError::Syntax);
        };
        let (signed, bits) = field_type(&args[j + 1])?;
        let offset = field_offset(&args[j + 2], bits, ctx.max_value_len)?;
        let mut value = 0;
        if kind != 0 {
            let last = offset + u64::from(bits) - 1;
            highest = Some(highest.map_or(last, |h| h.max(last)));
            value = int(&args[j + 3])?;
        }
        ops.push(FieldOp {
            kind,
            signed,
            bits,
            offset,
            value,
            overflow,
        });
        j += if kind == 0 { 3 } else { 4 };
    }
    ctx.count_extra(ops.len());
    let key = &args[1];
    let Some(highest) = highest else {
        // Reads only.
        let s = op_read(ctx, key)?.unwrap_or_default();
        let out = ops
            .iter()
            .map(|op| {
                Reply::Int(if op.signed {
                    get_field_signed(s, op.offset, op.bits)
                } else {
                    get_field_unsigned(s, op.offset, op.bits) as i64
                })
            })
            .collect();
        return Ok(Reply::Array(out));
    };
    if ro {
        return Err(OpError::Static(reply::BITFIELD_RO_GET_ONLY));
    }
    let need = (highest >> 3) as usize + 1;
    let cur = match ctx.ks.peek_live(key, ctx.now).map(|e| &e.value) {
        None => None,
        Some(Value::Str(s)) => Some(s.len()),
        Some(_) => return Err(OpError::WrongType),
    };
    ctx.reserve_store(key, need.max(cur.unwrap_or(0)))?;
    ctx.work += zero_filled_kib(need.saturating_sub(cur.unwrap_or(0)));
    let run = |s: &mut Vec<u8>| {
        if s.len() < need {
            s.resize(need, 0);
        }
        ops.iter()
            .map(|op| match op.kind {
                0 if op.signed => Reply::Int(get_field_signed(s, op.offset, op.bits)),
                0 => Reply::Int(get_field_unsigned(s, op.offset, op.bits) as i64),
                kind if op.signed => {
                    let old = get_field_signed(s, op.offset, op.bits);
                    let (over, new, ret) = if kind == 2 {
                        let (over, w) = signed_overflow(old, op.value, op.bits, op.overflow);
                        let new = if over { w } else { old.wrapping_add(op.value) };
                        (over, new, new)
                    } else {
                        let (over, w) = signed_overflow(op.value, 0, op.bits, op.overflow);
                        (over, if over { w } else { op.value }, old)
                    };
                    if over && op.overflow == Overflow::Fail {
                        Reply::Nil
                    } else {
                        set_field(s, op.offset, op.bits, new as u64);
                        Reply::Int(ret)
                    }
                }
                kind => {
                    let old = get_field_unsigned(s, op.offset, op.bits);
                    let (over, new, ret) = if kind == 2 {
                        let (over, w) = unsigned_overflow(old, op.value, op.bits, op.overflow);
                        let new = if over {
                            w
                        } else {
                            old.wrapping_add(op.value as u64)
                        };
                        (over, new, new)
                    } else {
                        let v = op.value as u64;
                        let (over, w) = unsigned_overflow(v, 0, op.bits, op.overflow);
                        (over, if over { w } else { v }, old)
                    };
                    if over && op.overflow == Overflow::Fail {
                        Reply::Nil
                    } else {
                        set_field(s, op.offset, op.bits, new);
                        Reply::Int(ret as i64)
                    }
                }
            })
            .collect::<Vec<_>>()
    };
    if let Some(mut e) = ctx.ks.get_mut(key, ctx.now) {
        let Value::Str(s) = e.value_mut() else {
            return Err(OpError::WrongType);
        };
        return Ok(Reply::Array(run(s)));
    }
    let mut s = Vec::new();
    let out = run(&mut s);
    ctx.ks.insert(key, Value::Str(s), 0, ctx.now);
    Ok(Reply::Array(out))
}

#[cfg(test)]
mod tests {
    use super::{count_bits, find_bit};
    use crate::cmd::test_util::{Harness, bulk, err};
    use crate::resp::{Reply, reply};

    #[test]
    fn setbit_and_getbit() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["setbit", "b", "7", "1"]), Reply::Int(0));
        assert_eq!(h.run(&["setbit", "b", "7", "1"]), Reply::Int(1));
        assert_eq!(h.run(&["get", "b"]), bulk("\u{1}"));
        assert_eq!(h.run(&["setbit", "b", "1", "1"]), Reply::Int(0));
        assert_eq!(h.run(&["get", "b"]), bulk("A"));
        assert_eq!(h.run(&["getbit", "b", "1"]), Reply::Int(1));
        assert_eq!(h.run(&["getbit", "b", "100"]), Reply::Int(0));
        assert_eq!(h.run(&["getbit", "nope", "0"]), Reply::Int(0));
        assert_eq!(h.run(&["setbit", "z", "20", "0"]), Reply::Int(0));
        assert_eq!(h.run(&["strlen", "z"]), Reply::Int(3));
        assert_eq!(h.run(&["setbit", "b", "-1", "1"]), err(reply::BIT_OFFSET));
        assert_eq!(h.run(&["setbit", "b", "x", "1"]), err(reply::BIT_OFFSET));
        assert_eq!(
            h.run(&["setbit", "b", "4294967296", "1"]),
            err(reply::BIT_OFFSET)
        );
        assert_eq!(
            h.run(&["getbit", "b", "4294967296"]),
            err(reply::BIT_OFFSET)
        );
        assert_eq!(
            h.run(&["setbit", "b", "9223372036854775807", "1"]),
            err("ERR bit offset is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["setbit", "b", "1", "2"]),
            err("ERR bit is not an integer or out of range")
        );
        h.run(&["hset", "h", "f", "v"]);
        assert_eq!(h.run(&["setbit", "h", "1", "1"]), err(reply::WRONGTYPE));
        assert_eq!(h.run(&["getbit", "h", "1"]), err(reply::WRONGTYPE));
    }

    #[test]
    fn bitcount_ranges() {
        let mut h = Harness::new();
        h.run(&["set", "s", "foobar"]);
        assert_eq!(h.run(&["bitcount", "s"]), Reply::Int(26));
        assert_eq!(h.run(&["bitcount", "s", "0", "0"]), Reply::Int(4));
        assert_eq!(h.run(&["bitcount", "s", "1", "1"]), Reply::Int(6));
        assert_eq!(h.run(&["bitcount", "s", "1", "1", "BYTE"]), Reply::Int(6));
        assert_eq!(h.run(&["bitcount", "s", "5", "30", "BIT"]), Reply::Int(17));
        assert_eq!(h.run(&["bitcount", "s", "-2", "-1"]), Reply::Int(7));
        assert_eq!(h.run(&["bitcount", "s", "-1", "-2"]), Reply::Int(0));
        assert_eq!(h.run(&["bitcount", "s", "0", "-100"]), Reply::Int(4));
        assert_eq!(
            h.run(&[
                "bitcount",
                "s",
                "-9223372036854775808",
                "9223372036854775807"
            ]),
            Reply::Int(26)
        );
        assert_eq!(h.run(&["bitcount", "s", "0"]), err("ERR syntax error"));
        assert_eq!(
            h.run(&["bitcount", "s", "0", "1", "bits"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["bitcount", "s", "0", "1", "BIT", "x"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["bitcount", "s", "x", "1"]), err(reply::NOT_INTEGER));
        assert_eq!(h.run(&["bitcount", "nope"]), Reply::Int(0));
        h.run(&["set", "e", ""]);
        assert_eq!(h.run(&["bitcount", "e"]), Reply::Int(0));
        assert_eq!(h.run(&["bitcount", "e", "0", "-1", "BIT"]), Reply::Int(0));
    }

    /// The word-at-a-time count and search agree with a bit-by-bit walk
    /// over every range of strings of mixed runs.
    #[test]
    fn word_walks_match_a_bit_walk() {
        let bit_at = |s: &[u8], p: u64| s[(p >> 3) as usize] & (0x80 >> (p & 7)) != 0;
        for len in [1usize, 7, 8, 9, 17, 24, 40] {
            for seed in 0..4u8 {
                // Runs of 0x00 and 0xff with a stray byte here and there.
                let s: Vec<u8> = (0..len)
                    .map(|i| match (i / 5 + usize::from(seed)) % 4 {
                        0 => 0x00,
                        1 => 0xff,
                        2 => (i as u8).wrapping_mul(37) ^ seed,
                        _ => 0x10,
                    })
                    .collect();
                let bits = len as u64 * 8;
                for lo in 0..bits {
                    for hi in lo..bits {
                        let naive = (lo..=hi).filter(|&p| bit_at(&s, p)).count() as u64;
                        assert_eq!(count_bits(&s, lo, hi), naive, "{s:?} {lo}..={hi}");
                        for bit in [false, true] {
                            let naive = (lo..=hi).find(|&p| bit_at(&s, p) == bit);
                            assert_eq!(find_bit(&s, bit, lo, hi), naive, "{s:?} {bit} {lo}..={hi}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bitpos_like_redis() {
        let mut h = Harness::new();
        h.run(&["setbit", "b", "7", "1"]);
        h.run(&["setbit", "b", "15", "1"]);
        assert_eq!(h.run(&["bitpos", "b", "0"]), Reply::Int(0));
        assert_eq!(h.run(&["bitpos", "b", "1"]), Reply::Int(7));
        assert_eq!(h.run(&["bitpos", "b", "1", "1"]), Reply::Int(15));
        assert_eq!(h.run(&["bitpos", "b", "0", "1", "1"]), Reply::Int(8));
        assert_eq!(
            h.run(&["bitpos", "b", "0", "14", "14", "BIT"]),
            Reply::Int(14)
        );
        assert_eq!(
            h.run(&["bitpos", "b", "1", "9", "15", "BIT"]),
            Reply::Int(15)
        );
        assert_eq!(
            h.run(&["bitpos", "b", "0", "15", "15", "BIT"]),
            Reply::Int(-1)
        );
        assert_eq!(h.run(&["bitpos", "b", "0", "-100", "-50"]), Reply::Int(0));
        assert_eq!(h.run(&["bitpos", "b", "1", "5"]), Reply::Int(-1));
        assert_eq!(
            h.run(&["bitpos", "b", "2"]),
            err("ERR The bit argument must be 1 or 0.")
        );
        assert_eq!(
            h.run(&["bitpos", "b", "1", "0", "-1", "foo"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["bitpos", "b", "1", "0", "-1", "BIT", "x"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["bitpos", "nope", "0", "x"]), Reply::Int(0));
        assert_eq!(h.run(&["bitpos", "nope", "1"]), Reply::Int(-1));
        h.run(&["set", "ones", "\u{7f}"]);
        h.run(&["setbit", "ones", "0", "1"]);
        assert_eq!(h.run(&["bitpos", "ones", "0"]), Reply::Int(8));
        assert_eq!(h.run(&["bitpos", "ones", "0", "0"]), Reply::Int(8));
        assert_eq!(h.run(&["bitpos", "ones", "0", "0", "-1"]), Reply::Int(-1));
        h.run(&["set", "e", ""]);
        assert_eq!(h.run(&["bitpos", "e", "0"]), Reply::Int(-1));
    }

    #[test]
    fn bitop_combines() {
        let mut h = Harness::new();
        h.run(&["set", "{b}1", "foobar"]);
        h.run(&["set", "{b}2", "abcdef"]);
        assert_eq!(
            h.run(&["bitop", "AND", "{b}d", "{b}1", "{b}2"]),
            Reply::Int(6)
        );
        assert_eq!(h.run(&["get", "{b}d"]), bulk("`bc`ab"));
        assert_eq!(
            h.run(&["bitop", "or", "{b}d", "{b}1", "{b}nope"]),
            Reply::Int(6)
        );
        assert_eq!(h.run(&["get", "{b}d"]), bulk("foobar"));
        assert_eq!(
            h.run(&["bitop", "xor", "{b}d", "{b}1", "{b}1"]),
            Reply::Int(6)
        );
        assert_eq!(h.run(&["get", "{b}d"]), bulk("\0\0\0\0\0\0"));
        h.run(&["set", "{b}a", "\u{0}"]);
        assert_eq!(h.run(&["bitop", "not", "{b}d", "{b}a"]), Reply::Int(1));
        assert_eq!(h.run(&["bitcount", "{b}d"]), Reply::Int(8));
        assert_eq!(h.run(&["bitop", "and", "{b}d", "{b}nope"]), Reply::Int(0));
        assert_eq!(h.run(&["exists", "{b}d"]), Reply::Int(0));
        assert_eq!(
            h.run(&["bitop", "not", "{b}d", "{b}1", "{b}2"]),
            err("ERR BITOP NOT must be called with a single source key.")
        );
        assert_eq!(
            h.run(&["bitop", "nand", "{b}d", "{b}1"]),
            err("ERR syntax error")
        );
        h.run(&["hset", "{b}h", "f", "v"]);
        assert_eq!(
            h.run(&["bitop", "or", "{b}d", "{b}1", "{b}h"]),
            err(reply::WRONGTYPE)
        );
    }

    #[test]
    fn growth_past_the_room_is_refused() {
        let mut h = Harness::new();
        h.room = 1024 * 1024;
        // Bit 2^32 - 1 would zero-fill 512 MiB.
        assert_eq!(h.run(&["setbit", "b", "4294967295", "1"]), err(reply::OOM));
        assert_eq!(h.run(&["exists", "b"]), Reply::Int(0));
        assert_eq!(h.ks.used_bytes(), 0);
        // 100 KiB zero-filled fits, and is metered per KiB.
        assert_eq!(h.run(&["setbit", "b", "819200", "1"]), Reply::Int(0));
        assert_eq!(h.last_work, 100);
        assert_eq!(h.run(&["strlen", "b"]), Reply::Int(102401));
        // Inside the string nothing grows: no room needed, no fill metered.
        h.room = 0;
        assert_eq!(h.run(&["setbit", "b", "8", "1"]), Reply::Int(0));
        assert_eq!(h.last_work, 0);
        assert_eq!(h.run(&["setbit", "b", "819208", "1"]), err(reply::OOM));
        h.run(&["hset", "h", "f", "v"]);
        assert_eq!(h.run(&["setbit", "h", "8", "1"]), err(reply::WRONGTYPE));
        // BITOP's result is as long as its longest source.
        h.room = 1024 * 1024;
        let long = "x".repeat(4096);
        h.run(&["set", "{b}1", &long]);
        h.room = 4096;
        assert_eq!(h.run(&["bitop", "not", "{b}d", "{b}1"]), err(reply::OOM));
        assert_eq!(h.run(&["exists", "{b}d"]), Reply::Int(0));
        h.room = 4096 + 4 + 64;
        assert_eq!(h.run(&["bitop", "not", "{b}d", "{b}1"]), Reply::Int(4096));
        // 4 KiB scanned (SCAN_KIB each) and 4 KiB created (FILL_KIB each),
        // counted in SCAN_KIB units.
        let milli = u64::from(super::SCAN_KIB) * h.last_work;
        assert_eq!(
            milli,
            4 * u64::from(super::SCAN_KIB) + 4 * u64::from(super::FILL_KIB)
        );
        h.room = 0;
        assert_eq!(
            h.run(&["bitop", "and", "{b}d", "{b}1", "{b}1"]),
            Reply::Int(4096)
        );
    }
}
