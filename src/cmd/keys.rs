//! Generic key commands: existence, deletion, TTLs, renames, copies.
//! (SCAN, KEYS, DBSIZE and FLUSHDB span partitions and run in the proxy.)

use bytes::Bytes;

use super::args::{int, is};
use super::table::{
    FREE_ELEMENT_MILLI, FREE_HANDOFF_MILLI, FREE_KIB_MILLI, SCAN_KEY_VISIT_MILLI, SCAN_REPLY_MILLI,
    SCAN_SLOT_MILLI,
};
use super::{Ctx, OpError, notify};
use crate::partition::{Value, lazyfree};
use crate::resp::{Reply, reply};

/// Bytes of a copied value per unit of work COPY counts: a collection is
/// cloned one allocation per element, which [`Value::mem_bytes`] charges
/// at about 64 bytes; a string in one copy, about ten times cheaper per
/// byte (measured: COPY of a 1000-field hash ≈ 200 GETs for 160 KB, of a
/// 1 MiB string ≈ 150).
fn copy_bytes_per_unit(value: &Value) -> usize {
    match value {
        Value::Str(_) => 640,
        _ => 64,
    }
}

/// DEL and UNLINK (Redis 7 frees big values lazily for both): 1 per key
/// named, plus the free of each value big enough for the lazyfree thread
/// (counted here, at the hand-off, in milli-units: [`free_work_milli`]).
pub fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let now = ctx.now;
    let mut n = 0;
    for key in &args[1..] {
        if let Some(entry) = ctx.ks.take(key, now) {
            ctx.notify(notify::GENERIC, "del", key);
            n += 1;
            let free = free_work_milli(&entry.value);
            ctx.ks.stats.lazyfreed += u64::from(free > 0);
            ctx.work += free;
            lazyfree::free_value(entry.value);
        }
    }
    Ok(Reply::Int(n))
}

/// The work of freeing `value`, in milli-units: nothing for a value freed
/// inline (its key's unit covers it), else the hand-off, its allocations
/// and its KiB (the table's `FREE_*` constants). A hash field frees two
/// allocations (field and value), a sorted-set member two (member and
/// links), other elements one.
pub fn free_work_milli(value: &Value) -> u64 {
    let (elements, bytes) = lazyfree::free_effort(value);
    if !lazyfree::is_expensive(elements, bytes) {
        return 0;
    }
    let per_element = match value {
        Value::Hash(_) | Value::ZSet(_) => 2,
        _ => 1,
    };
    FREE_HANDOFF_MILLI
        + (elements * per_element) as u64 * FREE_ELEMENT_MILLI
        + (bytes / 1024) as u64 * FREE_KIB_MILLI
}

/// The work of one SCAN or KEYS step (run by the proxy, their rows count
/// milli-units), in milli-units: keys visited, keys replied and slots
/// walked apart, so a MATCH that keeps nothing pays its walk and no more.
pub fn scan_work_milli(visited: u64, replied: usize, slots: u64) -> u64 {
    visited * SCAN_KEY_VISIT_MILLI + replied as u64 * SCAN_REPLY_MILLI + slots * SCAN_SLOT_MILLI
}

/// EXISTS and TOUCH: how many of the keys exist (repeats count again);
/// TOUCH updates their last-access time, EXISTS does not (as Redis).
pub fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let now = ctx.now;
    let touch = is(&args[0], "TOUCH");
    let n = args[1..]
        .iter()
        .filter(|k| {
            if touch {
                ctx.ks.get_touch(k, now).is_some()
            } else {
                ctx.ks.get_no_touch(k, now).is_some()
            }
        })
        .count();
    Ok(Reply::Int(n as i64))
}

pub fn type_(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let name = match ctx.ks.get_no_touch(&args[1], ctx.now) {
        Some(e) => e.value.value_type().name(),
        None => "none",
    };
    Ok(Reply::status(name))
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT key time [NX|XX|GT|LT]
pub fn expire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let cmd = &args[0];
    let (name, seconds, relative): (&'static str, bool, bool) = if is(cmd, "expire") {
        ("expire", true, true)
    } else if is(cmd, "pexpire") {
        ("pexpire", false, true)
    } else if is(cmd, "expireat") {
        ("expireat", true, false)
    } else {
        ("pexpireat", false, false)
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        if is(opt, "NX") {
            nx = true;
        } else if is(opt, "XX") {
            xx = true;
        } else if is(opt, "GT") {
            gt = true;
        } else if is(opt, "LT") {
            lt = true;
        } else {
            return Err(OpError::Text(reply::unsupported_option(opt)));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(OpError::Static(reply::NX_XX_GT_LT));
    }
    if gt && lt {
        return Err(OpError::Static(reply::GT_LT));
    }
    // Options are checked before the time, as Redis does.
    let when = int(&args[2])?;
    let ms = if seconds {
        when.checked_mul(1000)
    } else {
        Some(when)
    };
    let at = ms
        .and_then(|ms| {
            if relative {
                ms.checked_add(ctx.now as i64)
            } else {
                Some(ms)
            }
        })
        .ok_or(OpError::InvalidExpire(name))?;
    let key = &args[1];
    let Some(current) = ctx.ks.get_mut(key, ctx.now).map(|e| e.expire_at()) else {
        return Ok(Reply::Int(0));
    };
    let refused = match current {
        Some(cur) => nx || (gt && at <= cur as i64) || (lt && at >= cur as i64),
        None => xx || gt,
    };
    if refused {
        return Ok(Reply::Int(0));
    }
    if at <= ctx.now as i64 {
        ctx.ks.remove(key, ctx.now);
        ctx.notify(notify::GENERIC, "del", key);
    } else {
        ctx.ks.set_expire(key, Some(at as u64), ctx.now);
        ctx.notify(notify::GENERIC, "expire", key);
    }
    Ok(Reply::Int(1))
}

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 no key, -1 no deadline.
pub fn ttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let cmd = &args[0];
    let now = ctx.now;
    let Some(entry) = ctx.ks.get_no_touch(&args[1], now) else {
        return Ok(Reply::Int(-2));
    };
    let Some(at) = entry.expire_at() else {
        return Ok(Reply::Int(-1));
    };
    let left = at.saturating_sub(now) as i64;
    let n = if is(cmd, "ttl") {
        (left + 500) / 1000
    } else if is(cmd, "pttl") {
        left
    } else if is(cmd, "expiretime") {
        (at as i64 + 500) / 1000
    } else {
        at as i64
    };
    Ok(Reply::Int(n))
}

pub fn persist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let had = ctx
        .ks
        .get_mut(&args[1], ctx.now)
        .and_then(|e| e.expire_at())
        .is_some();
    if had {
        ctx.ks.set_expire(&args[1], None, ctx.now);
        ctx.notify(notify::GENERIC, "persist", &args[1]);
    }
    Ok(Reply::Int(i64::from(had)))
}

/// RENAME and RENAMENX: the value moves with its deadline (a value it
/// replaces is freed lazily, as on any overwrite).
pub fn rename(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let nx = is(&args[0], "renamenx");
    let (src, dst) = (&args[1], &args[2]);
    let now = ctx.now;
    if !ctx.ks.contains(src, now) {
        return Err(OpError::NoSuchKey);
    }
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { Reply::ok() });
    }
    if nx && ctx.ks.contains(dst, now) {
        return Ok(Reply::Int(0));
    }
    let Some(entry) = ctx.ks.take(src, now) else {
        return Err(OpError::NoSuchKey);
    };
    let at = entry.expire_at().unwrap_or(0);
    ctx.ks.insert(dst, entry.value, at, now);
    ctx.notify(notify::GENERIC, "rename_from", src);
    ctx.notify(notify::GENERIC, "rename_to", dst);
    Ok(if nx { Reply::Int(1) } else { Reply::ok() })
}

/// COPY source destination [DB 0] [REPLACE]: the copy's size is reserved
/// against the storage maximum before the value is cloned.
pub fn copy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (src, dst) = (&args[1], &args[2]);
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "REPLACE") {
            replace = true;
        } else if is(&args[i], "DB") && i + 1 < args.len() {
            if int(&args[i + 1])? != 0 {
                return Err(OpError::Static(reply::COPY_DB_CLUSTER));
            }
            i += 1;
        } else {
            return Err(OpError::Syntax);
        }
        i += 1;
    }
    if src == dst {
        return Err(OpError::Static(reply::SAME_OBJECT));
    }
    let now = ctx.now;
    let Some(bytes) = ctx.ks.get(src, now).map(|e| e.value.mem_bytes()) else {
        return Ok(Reply::Int(0));
    };
    if !replace && ctx.ks.contains(dst, now) {
        return Ok(Reply::Int(0));
    }
    ctx.reserve_store(dst, bytes)?;
    let Some(entry) = ctx.ks.peek_live(src, now).cloned() else {
        return Ok(Reply::Int(0));
    };
    ctx.work += (bytes / copy_bytes_per_unit(&entry.value)) as u64;
    let at = entry.expire_at().unwrap_or(0);
    ctx.ks.insert(dst, entry.value, at, now);
    ctx.notify(notify::GENERIC, "copy_to", dst);
    Ok(Reply::Int(1))
}

#[cfg(test)]
mod tests {
    use crate::cmd::test_util::{Harness, bulk, err};
    use crate::resp::Reply;

    /// DEL and UNLINK charge the free of a value big enough for the
    /// lazyfree thread (hand-off, elements, KiB) and nothing more for a
    /// small one; they stay bounded commands, run inline.
    #[test]
    fn del_charges_the_free_of_a_big_value_and_stays_inline() {
        use crate::cmd::lookup;
        use crate::cmd::table::{FREE_ELEMENT_MILLI, FREE_HANDOFF_MILLI, FREE_KIB_MILLI};
        use crate::partition::lazyfree::{LAZYFREE_BYTES, LAZYFREE_ELEMENTS};
        for name in [&b"del"[..], b"unlink"] {
            assert!(!lookup(name).unwrap().runs_on_workers());
        }
        let mut h = Harness::new();
        h.run(&["set", "small", "v"]);
        assert_eq!(h.run(&["del", "small", "missing"]), Reply::Int(1));
        assert_eq!(h.last_work, 0);
        let members = LAZYFREE_ELEMENTS + 1;
        let mut sadd = vec!["sadd".to_string(), "big".to_string()];
        sadd.extend((0..members).map(|i| format!("m{i}")));
        let sadd: Vec<&str> = sadd.iter().map(String::as_str).collect();
        h.run(&sadd);
        let bytes = h.ks.peek_live(b"big", h.now).unwrap().value.mem_bytes();
        let want = FREE_HANDOFF_MILLI
            + members as u64 * FREE_ELEMENT_MILLI
            + (bytes / 1024) as u64 * FREE_KIB_MILLI;
        assert_eq!(h.run(&["unlink", "big"]), Reply::Int(1));
        assert_eq!(h.last_work, want);
        let big = "x".repeat(LAZYFREE_BYTES + 1);
        h.run(&["set", "s", &big]);
        h.run(&["set", "t", "v"]);
        assert_eq!(h.run(&["del", "s", "t"]), Reply::Int(2));
        let kib = (LAZYFREE_BYTES + 1) as u64 / 1024;
        assert_eq!(
            h.last_work,
            FREE_HANDOFF_MILLI + FREE_ELEMENT_MILLI + kib * FREE_KIB_MILLI
        );
    }

    #[test]
    fn expire_options() {
        let mut h = Harness::new();
        h.run(&["set", "k", "v"]);
        assert_eq!(h.run(&["expire", "k", "100", "XX"]), Reply::Int(0));
        assert_eq!(h.run(&["expire", "k", "100", "GT"]), Reply::Int(0));
        assert_eq!(h.run(&["expire", "k", "100", "LT"]), Reply::Int(1));
        assert_eq!(h.run(&["expire", "k", "50", "NX"]), Reply::Int(0));
        assert_eq!(h.run(&["expire", "k", "50", "GT"]), Reply::Int(0));
        assert_eq!(h.run(&["expire", "k", "200", "GT"]), Reply::Int(1));
        assert_eq!(h.run(&["ttl", "k"]), Reply::Int(200));
        assert_eq!(
            h.run(&["expire", "k", "1", "NX", "XX"]),
            err("ERR NX and XX, GT or LT options at the same time are not compatible")
        );
        assert_eq!(
            h.run(&["expire", "k", "1", "GT", "LT"]),
            err("ERR GT and LT options at the same time are not compatible")
        );
        assert_eq!(
            h.run(&["expire", "k", "1", "FOO"]),
            err("ERR Unsupported option FOO")
        );
        assert_eq!(
            h.run(&["expire", "k", "9223372036854775807"]),
            err("ERR invalid expire time in 'expire' command")
        );
        assert_eq!(h.run(&["expire", "missing", "10"]), Reply::Int(0));
        let now = h.now;
        assert_eq!(
            h.run(&["pexpireat", "k", &(now + 5000).to_string()]),
            Reply::Int(1)
        );
        assert_eq!(
            h.run(&["pexpiretime", "k"]),
            Reply::Int((now + 5000) as i64)
        );
        assert_eq!(
            h.run(&["expiretime", "k"]),
            Reply::Int(((now + 5000) / 1000) as i64)
        );
        assert_eq!(h.run(&["persist", "k"]), Reply::Int(1));
        assert_eq!(h.run(&["persist", "k"]), Reply::Int(0));
        assert_eq!(h.run(&["ttl", "k"]), Reply::Int(-1));
        assert_eq!(h.run(&["ttl", "missing"]), Reply::Int(-2));
        assert_eq!(h.run(&["expire", "k", "-1"]), Reply::Int(1));
        assert_eq!(h.run(&["exists", "k"]), Reply::Int(0));
    }

    #[test]
    fn time_passes() {
        let mut h = Harness::new();
        h.run(&["set", "k", "v", "PX", "100"]);
        h.now += 99;
        assert_eq!(h.run(&["get", "k"]), bulk("v"));
        h.now += 1;
        assert_eq!(h.run(&["get", "k"]), Reply::Nil);
        assert_eq!(h.ks.len(), 0);
    }

    #[test]
    fn rename_copy_del() {
        let mut h = Harness::new();
        h.run(&["set", "{t}a", "1"]);
        h.run(&["expire", "{t}a", "100"]);
        assert_eq!(h.run(&["rename", "{t}a", "{t}b"]), Reply::ok());
        assert_eq!(h.run(&["ttl", "{t}b"]), Reply::Int(100));
        assert_eq!(h.run(&["rename", "{t}a", "{t}c"]), err("ERR no such key"));
        h.run(&["set", "{t}c", "3"]);
        assert_eq!(h.run(&["renamenx", "{t}b", "{t}c"]), Reply::Int(0));
        assert_eq!(h.run(&["copy", "{t}b", "{t}c"]), Reply::Int(0));
        assert_eq!(h.run(&["copy", "{t}b", "{t}c", "REPLACE"]), Reply::Int(1));
        assert_eq!(h.run(&["get", "{t}c"]), bulk("1"));
        assert_eq!(
            h.run(&["copy", "{t}b", "{t}d", "DB", "1"]),
            err("ERR Copying to another database is not allowed in cluster mode")
        );
        assert_eq!(h.run(&["type", "{t}c"]), Reply::status("string"));
        assert_eq!(h.run(&["type", "nope"]), Reply::status("none"));
        assert_eq!(h.run(&["exists", "{t}b", "{t}b", "nope"]), Reply::Int(2));
        assert_eq!(h.run(&["del", "{t}b", "{t}c", "nope"]), Reply::Int(2));
        assert_eq!(h.ks.len(), 0);
        assert_eq!(h.ks.used_bytes(), 0);
    }

    #[test]
    fn copy_reserves_the_copy() {
        let mut h = Harness::new();
        let value = "v".repeat(1000);
        h.run(&["set", "{t}a", &value]);
        h.room = (1000 + 4 + crate::partition::value::ENTRY_OVERHEAD - 1) as u64;
        assert_eq!(
            h.run(&["copy", "{t}a", "{t}b"]),
            err(crate::resp::reply::OOM)
        );
        assert_eq!(h.run(&["exists", "{t}b"]), Reply::Int(0));
        h.room += 1;
        assert_eq!(h.run(&["copy", "{t}a", "{t}b"]), Reply::Int(1));
        // Replacing a copy of the same size adds nothing.
        h.room = 0;
        assert_eq!(h.run(&["copy", "{t}a", "{t}b", "REPLACE"]), Reply::Int(1));
        assert_eq!(h.run(&["get", "{t}b"]), bulk(&value));
    }
}
