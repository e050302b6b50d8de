//! Set commands: membership, random members, SMOVE, the algebra
//! (SINTER/SUNION/SDIFF, their STORE forms, SINTERCARD) and SSCAN.
//!
//! Storage is [`SetValue`]; an emptied set is deleted. Multi-key commands
//! run in two phases: (1) check every key's type with a counted lookup,
//! (2) borrow all the sets at once with [`Keyspace::peek_live`] and combine
//! them; a STORE form then writes its (owned) result. A STORE form builds
//! its result within the room the cache has left ([`Ctx::room_for_store`]):
//! past it, OOM before the member that would not fit is copied.
//!
//! [`Keyspace::peek_live`]: crate::partition::Keyspace::peek_live

use std::collections::HashMap;

use bytes::Bytes;

use super::args::{is, non_negative, parse_i64, random_count, scan_opts};
use super::table::{COLD_PICK_BYTES, SCAN_REPLY_MILLI, SCAN_VISIT_MILLI};
use super::{Ctx, OpError, notify};
use crate::partition::lazyfree;
use crate::partition::scan::{SCAN_WHOLE_UP_TO, scan_step};
use crate::partition::value::SET_MEMBER_OVERHEAD;
use crate::partition::{SetValue, Value};
use crate::resp::{Reply, reply};

/// The set under `key` for reading (see [`super::read_as`]).
fn op_read<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<Option<&'a SetValue>, OpError> {
    super::read_as(ctx, key)
}

/// Runs `f` on the set under `key` (see [`super::write_as`]).
fn op_write<T>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut SetValue) -> Result<T, OpError>,
) -> Result<Option<T>, OpError> {
    super::write_as(ctx, key, create, f)
}

/// Phase 1 of a multi-key command: every key is a set or missing.
fn check_sets(ctx: &mut Ctx<'_>, keys: &[Bytes]) -> Result<(), OpError> {
    keys.iter().try_for_each(|k| op_read(ctx, k).map(|_| ()))
}

/// Phase 2: all the sets at once (`None` for a missing key).
fn peek_sets<'a>(ctx: &'a Ctx<'_>, keys: &[Bytes]) -> Result<Vec<Option<&'a SetValue>>, OpError> {
    keys.iter()
        .map(|k| match ctx.ks.peek_live(k, ctx.now).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Set(s)) => Ok(Some(&**s)),
            Some(_) => Err(OpError::WrongType),
        })
        .collect()
}

/// Replaces `key` with `set` (no TTL), or deletes it if `set` is empty; its
/// growth is reserved (it was built within [`Ctx::room_for_store`]).
fn store(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    set: SetValue,
    event: &'static str,
) -> Result<Reply, OpError> {
    let len = set.len();
    if set.is_empty() {
        if ctx.ks.remove(key, ctx.now) {
            ctx.notify(notify::GENERIC, "del", key);
        }
    } else {
        ctx.reserve_store(key, set.mem_bytes())?;
        ctx.ks.insert(key, Value::Set(Box::new(set)), 0, ctx.now);
        ctx.notify(notify::SET, event, key);
    }
    Ok(Reply::Int(len as i64))
}

/// Adds `m` to a result that may hold at most `limit` bytes: OOM, before
/// copying it, if a new member would not fit.
fn add_within(out: &mut SetValue, m: &[u8], limit: usize) -> Result<(), OpError> {
    let after = out.mem_bytes() + m.len() + SET_MEMBER_OVERHEAD;
    if after > limit && !out.contains(m) {
        return Err(OpError::Static(reply::OOM));
    }
    out.insert(m);
    Ok(())
}

fn members_reply<'a>(members: impl Iterator<Item = &'a [u8]>) -> Reply {
    Reply::Set(members.map(Reply::bulk_slice).collect())
}

pub fn sadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let added = op_write(ctx, &args[1], true, |s| {
        Ok(args[2..].iter().filter(|m| s.insert(m)).count())
    })?;
    ctx.count_extra(args.len() - 2);
    if added.unwrap_or(0) > 0 {
        ctx.notify(notify::SET, "sadd", &args[1]);
    }
    Ok(Reply::Int(added.unwrap_or(0) as i64))
}

pub fn srem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let removed = op_write(ctx, &args[1], false, |s| {
        Ok(args[2..].iter().filter(|m| s.remove(m)).count())
    })?;
    ctx.count_extra(args.len() - 2);
    if removed.unwrap_or(0) > 0 {
        ctx.notify_write(notify::SET, "srem", &args[1]);
    }
    Ok(Reply::Int(removed.unwrap_or(0) as i64))
}

pub fn smembers(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let Some(s) = op_read(ctx, &args[1])? else {
        return Ok(Reply::Set(Vec::new()));
    };
    let reply = members_reply(s.iter());
    ctx.work += s.len() as u64;
    Ok(reply)
}

pub fn sismember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let found = op_read(ctx, &args[1])?.is_some_and(|s| s.contains(&args[2]));
    Ok(Reply::Int(i64::from(found)))
}

pub fn smismember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let s = op_read(ctx, &args[1])?;
    let reply = Reply::Array(
        args[2..]
            .iter()
            .map(|m| Reply::Int(i64::from(s.is_some_and(|s| s.contains(m)))))
            .collect(),
    );
    ctx.count_extra(args.len() - 2);
    Ok(reply)
}

pub fn scard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    Ok(Reply::Int(
        op_read(ctx, &args[1])?.map_or(0, |s| s.len() as i64),
    ))
}

/// SPOP key [count]
pub fn spop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    if args.len() > 3 {
        return Err(OpError::Syntax);
    }
    let count = match args.get(2) {
        Some(c) => Some(non_negative(c, reply::MUST_BE_POSITIVE)?),
        None => None,
    };
    let mut rng = rand::rng();
    let popped = op_write(ctx, &args[1], false, |s| {
        let n = count.unwrap_or(1).min(s.len() as u64);
        Ok((0..n)
            .filter_map(|_| s.pop_random(&mut rng))
            .collect::<Vec<_>>())
    })?
    .unwrap_or_default();
    ctx.count_extra(popped.len());
    if !popped.is_empty() {
        ctx.notify_write(notify::SET, "spop", &args[1]);
    }
    Ok(match count {
        None => popped.first().map_or(Reply::Nil, |m| Reply::bulk_slice(m)),
        Some(_) => members_reply(popped.iter().map(|m| &m[..])),
    })
}

/// SRANDMEMBER key [count]: distinct members for count >= 0, |count| picks
/// with repeats for count < 0.
pub fn srandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    if args.len() > 3 {
        return Err(OpError::Syntax);
    }
    let count = match args.get(2) {
        Some(c) => Some(random_count(c)?),
        None => None,
    };
    let s = op_read(ctx, &args[1])?;
    let mut rng = rand::rng();
    let Some(count) = count else {
        return Ok(s
            .and_then(|s| s.random(&mut rng))
            .map_or(Reply::Nil, Reply::bulk_slice));
    };
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(Reply::Array(Vec::new()));
    };
    let picks: Vec<Reply> = if count >= 0 && count as u64 >= s.len() as u64 {
        s.iter().map(Reply::bulk_slice).collect()
    } else if count >= 0 {
        rand::seq::index::sample(&mut rng, s.len(), count as usize)
            .into_iter()
            .filter_map(|i| s.get(i))
            .map(Reply::bulk_slice)
            .collect()
    } else {
        // Repeats share one copy of each member picked.
        let mut copies: HashMap<usize, Bytes> = HashMap::new();
        (0..count.unsigned_abs())
            .map(|_| {
                let i = rand::Rng::random_range(&mut rng, 0..s.len());
                let m = copies
                    .entry(i)
                    .or_insert_with(|| Bytes::copy_from_slice(s.get(i).unwrap_or_default()));
                Reply::Bulk(m.clone())
            })
            .collect()
    };
    // A repeated pick counts three times: a random access into the whole
    // set, a lookup in the map of copies, the copy; a pick in a set that no
    // longer fits the CPU caches once more.
    let cold = u64::from(s.mem_bytes() > COLD_PICK_BYTES);
    ctx.work += picks.len() as u64 * (if count < 0 { 3 } else { 1 } + cold);
    Ok(Reply::Array(picks))
}

/// SMOVE source destination member
pub fn smove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    let Some(s) = op_read(ctx, src)? else {
        return Ok(Reply::Int(0));
    };
    let in_src = s.contains(member);
    op_read(ctx, dst)?;
    if src == dst {
        return Ok(Reply::Int(i64::from(in_src)));
    }
    if !in_src {
        return Ok(Reply::Int(0));
    }
    op_write(ctx, src, false, |s| Ok(s.remove(member)))?;
    ctx.notify_write(notify::SET, "srem", src);
    let added = op_write(ctx, dst, true, |d| Ok(d.insert(member)))?;
    if added == Some(true) {
        ctx.notify(notify::SET, "sadd", dst);
    } else {
        // The destination had it: only the source changed (WATCH).
        ctx.changed_only = Some(vec![src.clone()]);
    }
    Ok(Reply::Int(1))
}

/// Which set operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algebra {
    Inter,
    Union,
    Diff,
}

/// Combines the sets under `keys` into a new set of at most `limit` bytes
/// (else OOM); counts elements examined, also when refused.
fn op_combine(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    op: Algebra,
    limit: usize,
) -> Result<SetValue, OpError> {
    check_sets(ctx, keys)?;
    let sets = peek_sets(ctx, keys)?;
    let mut out = SetValue::default();
    let mut walked = 0u64;
    let built = combine_into(&sets, op, limit, &mut out, &mut walked);
    ctx.work += walked;
    match built {
        Ok(()) => Ok(out),
        Err(e) => {
            // A refused result may be as large as the room: not freed here.
            let (elements, bytes) = (out.len(), out.mem_bytes());
            lazyfree::free(out, elements, bytes);
            Err(e)
        }
    }
}

/// The algebra itself, into `out` (see [`op_combine`]).
fn combine_into(
    sets: &[Option<&SetValue>],
    op: Algebra,
    limit: usize,
    out: &mut SetValue,
    walked: &mut u64,
) -> Result<(), OpError> {
    match op {
        Algebra::Inter => {
            if let Some(mut present) = sets.iter().copied().collect::<Option<Vec<&SetValue>>>() {
                present.sort_by_key(|s| s.len());
                if let Some((smallest, rest)) = present.split_first() {
                    for m in smallest.iter() {
                        *walked += 1;
                        if rest.iter().all(|s| s.contains(m)) {
                            add_within(out, m, limit)?;
                        }
                    }
                }
            }
        }
        Algebra::Union => {
            for m in sets.iter().flatten().flat_map(|s| s.iter()) {
                *walked += 1;
                add_within(out, m, limit)?;
            }
        }
        Algebra::Diff => {
            if let Some(Some(first)) = sets.first() {
                for m in first.iter() {
                    *walked += 1;
                    if !sets[1..].iter().flatten().any(|s| s.contains(m)) {
                        add_within(out, m, limit)?;
                    }
                }
            }
        }
    }
    Ok(())
}

pub fn sinter(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let s = op_combine(ctx, &args[1..], Algebra::Inter, usize::MAX)?;
    Ok(members_reply(s.iter()))
}

pub fn sunion(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let s = op_combine(ctx, &args[1..], Algebra::Union, usize::MAX)?;
    Ok(members_reply(s.iter()))
}

pub fn sdiff(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let s = op_combine(ctx, &args[1..], Algebra::Diff, usize::MAX)?;
    Ok(members_reply(s.iter()))
}

pub fn sinterstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let limit = ctx.room_for_store(&args[1]);
    let s = op_combine(ctx, &args[2..], Algebra::Inter, limit)?;
    store(ctx, &args[1], s, "sinterstore")
}

pub fn sunionstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let limit = ctx.room_for_store(&args[1]);
    let s = op_combine(ctx, &args[2..], Algebra::Union, limit)?;
    store(ctx, &args[1], s, "sunionstore")
}

pub fn sdiffstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let limit = ctx.room_for_store(&args[1]);
    let s = op_combine(ctx, &args[2..], Algebra::Diff, limit)?;
    store(ctx, &args[1], s, "sdiffstore")
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn sintercard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let numkeys = parse_i64(&args[1])
        .filter(|n| *n > 0)
        .ok_or(OpError::Static(reply::NUMKEYS_NOT_POSITIVE))? as u64;
    if numkeys > (args.len() - 2) as u64 {
        return Err(OpError::Static(reply::NUMKEYS_TOO_MANY));
    }
    let keys = &args[2..2 + numkeys as usize];
    let mut limit = 0u64;
    let mut i = 2 + keys.len();
    while i < args.len() {
        match args.get(i + 1) {
            Some(v) if is(&args[i], "LIMIT") => limit = non_negative(v, reply::LIMIT_NEGATIVE)?,
            _ => return Err(OpError::Syntax),
        }
        i += 2;
    }
    check_sets(ctx, keys)?;
    let sets = peek_sets(ctx, keys)?;
    let Some(mut present) = sets.into_iter().collect::<Option<Vec<&SetValue>>>() else {
        return Ok(Reply::Int(0));
    };
    present.sort_by_key(|s| s.len());
    let (mut count, mut walked) = (0u64, 0u64);
    if let Some((smallest, rest)) = present.split_first() {
        for m in smallest.iter() {
            walked += 1;
            if rest.iter().all(|s| s.contains(m)) {
                count += 1;
                if count == limit {
                    break;
                }
            }
        }
    }
    ctx.work += walked;
    Ok(Reply::Int(count as i64))
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]: a small set whole, a
/// larger one in steps of at most COUNT * 10 members visited (see
/// [`scan_step`] for the cursor).
pub fn sscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let opts = scan_opts(&args[2..], false, false)?;
    let Some(s) = op_read(ctx, &args[1])? else {
        return Ok(Reply::Array(vec![
            Reply::bulk("0"),
            Reply::Array(Vec::new()),
        ]));
    };
    let mut out = Vec::new();
    let mut keep = |m: &[u8]| {
        let kept = opts.matches(m);
        if kept {
            out.push(Reply::bulk_slice(m));
        }
        kept
    };
    let (next, walked) = if opts.cursor == 0 && s.len() <= SCAN_WHOLE_UP_TO {
        s.iter().for_each(|m| {
            keep(m);
        });
        (0, s.len() as u64)
    } else {
        scan_step(s.len(), opts.cursor, opts.count, |i| {
            s.get(i).is_some_and(&mut keep)
        })
    };
    // Visited and replied apart: a MATCH that keeps nothing pays its walk.
    ctx.work += walked * SCAN_VISIT_MILLI + out.len() as u64 * SCAN_REPLY_MILLI;
    let cursor = itoa::Buffer::new().format(next).to_string();
    Ok(Reply::Array(vec![Reply::bulk(cursor), Reply::Array(out)]))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::cmd::test_util::{Harness, bulk, err, scan_to_end};
    use crate::partition::value::{ENTRY_OVERHEAD, SET_MEMBER_OVERHEAD};
    use crate::resp::{Reply, reply};

    /// The members of a set or array reply, sorted.
    fn sorted(r: Reply) -> Vec<String> {
        let (Reply::Set(items) | Reply::Array(items)) = r else {
            panic!("not a collection: {r:?}")
        };
        let mut out: Vec<String> = items
            .into_iter()
            .map(|i| match i {
                Reply::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
                other => panic!("not a bulk: {other:?}"),
            })
            .collect();
        out.sort();
        out
    }

    fn strs(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn membership_and_bytes() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["sadd", "s", "a", "b", "a"]), Reply::Int(2));
        assert_eq!(h.run(&["sadd", "s", "b", "c"]), Reply::Int(1));
        assert_eq!(h.run(&["scard", "s"]), Reply::Int(3));
        assert_eq!(h.run(&["sismember", "s", "a"]), Reply::Int(1));
        assert_eq!(h.run(&["sismember", "nope", "a"]), Reply::Int(0));
        assert_eq!(
            h.run(&["smismember", "s", "a", "z"]),
            Reply::Array(vec![Reply::Int(1), Reply::Int(0)])
        );
        assert_eq!(sorted(h.run(&["smembers", "s"])), strs(&["a", "b", "c"]));
        assert_eq!(h.run(&["smembers", "nope"]), Reply::Set(vec![]));
        assert_eq!(
            h.ks.used_bytes(),
            1 + ENTRY_OVERHEAD + 3 * (1 + SET_MEMBER_OVERHEAD)
        );
        assert_eq!(h.run(&["srem", "s", "a", "z"]), Reply::Int(1));
        assert_eq!(h.run(&["srem", "s", "b", "c"]), Reply::Int(2));
        assert_eq!(h.run(&["exists", "s"]), Reply::Int(0));
        assert_eq!(h.ks.used_bytes(), 0);
        h.run(&["set", "str", "x"]);
        assert_eq!(h.run(&["sadd", "str", "a"]), err(reply::WRONGTYPE));
        assert_eq!(h.run(&["smismember", "str", "a"]), err(reply::WRONGTYPE));
        h.run(&["sadd", "s", "a"]);
        assert_eq!(h.run(&["type", "s"]), Reply::status("set"));
    }

    #[test]
    fn random_members() {
        let mut h = Harness::new();
        for i in 0..50 {
            h.run(&["sadd", "s", &format!("m{i}")]);
        }
        let Reply::Array(v) = h.run(&["srandmember", "s", "10"]) else {
            panic!()
        };
        let distinct: BTreeSet<_> = v.iter().map(|r| format!("{r:?}")).collect();
        assert_eq!((v.len(), distinct.len()), (10, 10));
        assert_eq!(sorted(h.run(&["srandmember", "s", "100"])).len(), 50);
        let Reply::Array(v) = h.run(&["srandmember", "s", "-200"]) else {
            panic!()
        };
        assert_eq!(v.len(), 200);
        assert!(matches!(h.run(&["srandmember", "s"]), Reply::Bulk(_)));
        assert_eq!(h.run(&["srandmember", "nope"]), Reply::Nil);
        assert_eq!(h.run(&["srandmember", "nope", "5"]), Reply::Array(vec![]));
        assert_eq!(
            h.run(&["srandmember", "s", "-9223372036854775808"]),
            err(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
            )
        );
        assert_eq!(
            h.run(&["srandmember", "s", "-9223372036854775807"]),
            err("ERR value is out of range")
        );
        assert_eq!(
            sorted(h.run(&["srandmember", "s", "9223372036854775807"])).len(),
            50
        );
        assert_eq!(
            h.run(&["srandmember", "s", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["srandmember", "s", "1", "2"]),
            err("ERR syntax error")
        );
        assert_eq!(sorted(h.run(&["spop", "s", "45"])).len(), 45);
        assert_eq!(h.run(&["scard", "s"]), Reply::Int(5));
        assert!(matches!(h.run(&["spop", "s"]), Reply::Bulk(_)));
        assert_eq!(h.run(&["spop", "s", "0"]), Reply::Set(vec![]));
        assert_eq!(h.run(&["spop", "s", "-1"]), err(reply::MUST_BE_POSITIVE));
        assert_eq!(h.run(&["spop", "s", "x"]), err(reply::MUST_BE_POSITIVE));
        assert_eq!(h.run(&["spop", "s", "1", "2"]), err("ERR syntax error"));
        assert_eq!(
            sorted(h.run(&["spop", "s", "9223372036854775807"])).len(),
            4
        );
        assert_eq!(h.run(&["exists", "s"]), Reply::Int(0));
        assert_eq!(h.run(&["spop", "s"]), Reply::Nil);
        assert_eq!(h.run(&["spop", "s", "3"]), Reply::Set(vec![]));
        assert_eq!(h.ks.used_bytes(), 0);
    }

    #[test]
    fn algebra_and_moves() {
        let mut h = Harness::new();
        h.run(&["sadd", "{k}a", "1", "2", "3", "4"]);
        h.run(&["sadd", "{k}b", "3", "4", "5"]);
        h.run(&["sadd", "{k}c", "4", "6"]);
        assert_eq!(
            sorted(h.run(&["sinter", "{k}a", "{k}b", "{k}c"])),
            strs(&["4"])
        );
        assert_eq!(sorted(h.run(&["sinter", "{k}a", "{k}nope"])), strs(&[]));
        assert_eq!(
            sorted(h.run(&["sunion", "{k}a", "{k}b", "{k}nope"])),
            strs(&["1", "2", "3", "4", "5"])
        );
        assert_eq!(
            sorted(h.run(&["sdiff", "{k}a", "{k}b", "{k}c"])),
            strs(&["1", "2"])
        );
        assert_eq!(sorted(h.run(&["sdiff", "{k}nope", "{k}a"])), strs(&[]));
        assert_eq!(
            h.run(&["sinterstore", "{k}d", "{k}a", "{k}b"]),
            Reply::Int(2)
        );
        assert_eq!(sorted(h.run(&["smembers", "{k}d"])), strs(&["3", "4"]));
        assert_eq!(
            h.run(&["sunionstore", "{k}d", "{k}b", "{k}c"]),
            Reply::Int(4)
        );
        assert_eq!(
            h.run(&["sdiffstore", "{k}d", "{k}c", "{k}a"]),
            Reply::Int(1)
        );
        assert_eq!(
            h.run(&["sinterstore", "{k}d", "{k}a", "{k}nope"]),
            Reply::Int(0)
        );
        assert_eq!(h.run(&["exists", "{k}d"]), Reply::Int(0));
        h.run(&["set", "{k}s", "x"]);
        assert_eq!(h.run(&["sinter", "{k}nope", "{k}s"]), err(reply::WRONGTYPE));
        assert_eq!(
            h.run(&["sunionstore", "{k}d", "{k}a", "{k}s"]),
            err(reply::WRONGTYPE)
        );
        // The destination may hold any type: it is replaced.
        assert_eq!(h.run(&["sunionstore", "{k}s", "{k}c"]), Reply::Int(2));
        assert_eq!(h.run(&["type", "{k}s"]), Reply::status("set"));
        assert_eq!(h.run(&["sintercard", "2", "{k}a", "{k}b"]), Reply::Int(2));
        assert_eq!(
            h.run(&["sintercard", "2", "{k}a", "{k}b", "LIMIT", "1"]),
            Reply::Int(1)
        );
        assert_eq!(
            h.run(&["sintercard", "2", "{k}a", "{k}nope"]),
            Reply::Int(0)
        );
        assert_eq!(
            h.run(&["sintercard", "0", "{k}a"]),
            err("ERR numkeys should be greater than 0")
        );
        assert_eq!(
            h.run(&["sintercard", "x", "{k}a"]),
            err("ERR numkeys should be greater than 0")
        );
        assert_eq!(
            h.run(&["sintercard", "3", "{k}a"]),
            err("ERR Number of keys can't be greater than number of args")
        );
        assert_eq!(
            h.run(&["sintercard", "1", "{k}a", "LIMIT", "-1"]),
            err("ERR LIMIT can't be negative")
        );
        assert_eq!(
            h.run(&["sintercard", "1", "{k}a", "LIMIT"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["sintercard", "1", "{k}a", "{k}b"]),
            err("ERR syntax error")
        );
        // SMOVE
        assert_eq!(h.run(&["smove", "{k}a", "{k}e", "1"]), Reply::Int(1));
        assert_eq!(h.run(&["smove", "{k}a", "{k}e", "1"]), Reply::Int(0));
        assert_eq!(h.run(&["smove", "{k}a", "{k}a", "2"]), Reply::Int(1));
        assert_eq!(h.run(&["smove", "{k}nope", "{k}str", "2"]), Reply::Int(0));
        h.run(&["set", "{k}str", "x"]);
        assert_eq!(
            h.run(&["smove", "{k}a", "{k}str", "2"]),
            err(reply::WRONGTYPE)
        );
        assert_eq!(h.run(&["smove", "{k}e", "{k}a", "1"]), Reply::Int(1));
        assert_eq!(h.run(&["exists", "{k}e"]), Reply::Int(0));
    }

    #[test]
    fn sscan_walks_everything() {
        let mut h = Harness::new();
        for i in 0..100 {
            h.run(&["sadd", "s", &format!("m{i}")]);
        }
        let mut cursor = "0".to_string();
        let mut seen = BTreeSet::new();
        loop {
            let Reply::Array(parts) = h.run(&["sscan", "s", &cursor, "COUNT", "7"]) else {
                panic!()
            };
            let (Reply::Bulk(c), Reply::Array(members)) = (&parts[0], &parts[1]) else {
                panic!()
            };
            for m in members {
                assert!(seen.insert(format!("{m:?}")));
            }
            cursor = String::from_utf8(c.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 100);
        let Reply::Array(parts) = h.run(&["sscan", "s", "0", "MATCH", "m1*", "COUNT", "1000"])
        else {
            panic!()
        };
        assert_eq!(sorted(parts[1].clone()).len(), 11);
        assert_eq!(
            h.run(&["sscan", "nope", "0"]),
            Reply::Array(vec![bulk("0"), Reply::Array(vec![])])
        );
        assert_eq!(h.run(&["sscan", "s", "x"]), err("ERR invalid cursor"));
    }

    #[test]
    fn copy_is_independent() {
        let mut h = Harness::new();
        h.run(&["sadd", "{c}a", "1", "2"]);
        let one = h.ks.used_bytes();
        assert_eq!(h.run(&["copy", "{c}a", "{c}b"]), Reply::Int(1));
        assert_eq!(h.ks.used_bytes(), 2 * one);
        h.run(&["srem", "{c}b", "1"]);
        assert_eq!(sorted(h.run(&["smembers", "{c}a"])), strs(&["1", "2"]));
        assert_eq!(sorted(h.run(&["smembers", "{c}b"])), strs(&["2"]));
        assert_eq!(h.run(&["sismember", "{c}b", "2"]), Reply::Int(1));
        h.run(&["del", "{c}a", "{c}b"]);
        assert_eq!(h.ks.used_bytes(), 0);
    }

    #[test]
    fn stored_results_stay_within_the_room() {
        let mut h = Harness::new();
        for i in 0..100 {
            h.run(&["sadd", "{s}a", &format!("a{i:02}")]);
            h.run(&["sadd", "{s}b", &format!("b{i:02}")]);
        }
        // 200 members of 3 bytes: 200 * (3 + 40) bytes, plus the entry.
        let result = 200 * (3 + SET_MEMBER_OVERHEAD);
        let entry = 4 + ENTRY_OVERHEAD;
        h.room = (result + entry - 1) as u64;
        let used = h.ks.used_bytes();
        assert_eq!(
            h.run(&["sunionstore", "{s}d", "{s}a", "{s}b"]),
            err(reply::OOM)
        );
        assert_eq!(h.run(&["exists", "{s}d"]), Reply::Int(0));
        assert_eq!(h.ks.used_bytes(), used);
        h.room = (result + entry) as u64;
        assert_eq!(
            h.run(&["sunionstore", "{s}d", "{s}a", "{s}b"]),
            Reply::Int(200)
        );
        // Replacing the destination only needs room for what it grows by.
        h.room = 0;
        assert_eq!(h.run(&["sdiffstore", "{s}d", "{s}a"]), Reply::Int(100));
        assert_eq!(
            h.run(&["sinterstore", "{s}d", "{s}a", "{s}a"]),
            Reply::Int(100)
        );
        assert_eq!(
            h.run(&["sunionstore", "{s}d", "{s}a", "{s}b"]),
            err(reply::OOM)
        );
        assert_eq!(h.run(&["scard", "{s}d"]), Reply::Int(100));
        // Reads build their result without a room.
        assert!(matches!(h.run(&["sunion", "{s}a", "{s}b"]), Reply::Set(m) if m.len() == 200));
    }

    /// SSCAN counts the members it visits and replies apart.
    #[test]
    fn sscan_counts_visits_and_replies_apart() {
        use crate::cmd::table::{SCAN_REPLY_MILLI, SCAN_VISIT_MILLI};
        let mut h = Harness::new();
        for i in 0..1000 {
            h.run(&["sadd", "s", &format!("m{i}")]);
        }
        h.run(&["sscan", "s", "0", "MATCH", "nomatch", "COUNT", "10"]);
        assert_eq!(h.last_work, 100 * SCAN_VISIT_MILLI);
        h.run(&["sscan", "s", "0", "COUNT", "10"]);
        assert_eq!(h.last_work, 10 * (SCAN_VISIT_MILLI + SCAN_REPLY_MILLI));
    }

    #[test]
    fn sscan_steps_keep_stable_members_through_changes() {
        let mut h = Harness::new();
        for i in 0..1000 {
            h.run(&["sadd", "s", &format!("stable:{i}")]);
        }
        let Reply::Array(parts) = h.run(&["sscan", "s", "0", "MATCH", "nomatch", "COUNT", "10"])
        else {
            panic!()
        };
        assert_eq!(parts, vec![bulk("900"), Reply::Array(vec![])]);
        let mut churn = 0;
        let (names, calls) = scan_to_end(&mut h, &["sscan", "s"], &["COUNT", "5"], 1, |h, call| {
            if call < 60 {
                for _ in 0..40 {
                    h.run(&["sadd", "s", &format!("churn:{churn}")]);
                    churn += 1;
                }
            } else {
                for _ in 0..60.min(churn) {
                    churn -= 1;
                    h.run(&["srem", "s", &format!("churn:{churn}")]);
                }
            }
        });
        let seen: BTreeSet<String> = names.into_iter().collect();
        for i in 0..1000 {
            assert!(seen.contains(&format!("stable:{i}")), "stable:{i} missed");
        }
        assert!(calls > 100, "{calls} calls");
    }
}
