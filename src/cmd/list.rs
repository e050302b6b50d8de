//! List commands: pushes and pops at both ends, index and range access,
//! LINSERT/LREM/LTRIM/LPOS, the atomic moves LMOVE and RPOPLPUSH, LMPOP,
//! and one attempt of each blocking form (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH,
//! BLMPOP): the proxy waits and retries (`flags::BLOCKING`).
//!
//! Storage is [`ListValue`]; an emptied list is deleted, as Redis never keeps
//! empty collections. Handlers add the elements they walk to `ctx.work`.

use bytes::Bytes;

use super::args::{block_timeout_secs, int, is, mpop_args, non_negative};
use super::{Ctx, OpError, notify};
use crate::partition::ListValue;
use crate::resp::{Reply, reply};

/// The list under `key` for reading (see [`super::read_as`]).
fn op_read<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<Option<&'a ListValue>, OpError> {
    super::read_as(ctx, key)
}

/// Runs `f` on the list under `key` (see [`super::write_as`]).
fn op_write<T>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut ListValue) -> Result<T, OpError>,
) -> Result<Option<T>, OpError> {
    super::write_as(ctx, key, create, f)
}

/// Fails with WRONGTYPE if `key` holds something other than a list.
fn check_list(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<(), OpError> {
    op_read(ctx, key).map(|_| ())
}

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

impl End {
    fn parse(arg: &[u8]) -> Result<End, OpError> {
        if is(arg, "LEFT") {
            Ok(End::Left)
        } else if is(arg, "RIGHT") {
            Ok(End::Right)
        } else {
            Err(OpError::Syntax)
        }
    }
}

/// Redis's event names for a push and a pop at `end`.
fn push_event(end: End) -> &'static str {
    match end {
        End::Left => "lpush",
        End::Right => "rpush",
    }
}

fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

fn push(l: &mut ListValue, end: End, v: &[u8]) {
    match end {
        End::Left => l.push_front(v),
        End::Right => l.push_back(v),
    }
}

fn pop(l: &mut ListValue, end: End) -> Option<Box<[u8]>> {
    match end {
        End::Left => l.pop_front(),
        End::Right => l.pop_back(),
    }
}

/// Resolves a Redis index (negative counts from the end) to a position.
fn position(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if index < 0 { len + index } else { index };
    (0..len).contains(&i).then_some(i as usize)
}

/// Resolves a Redis `start stop` pair to positions `start..=stop`, or `None`
/// when the range is empty (LRANGE/LTRIM rules).
fn span(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { len + start } else { start }.max(0);
    let stop = if stop < 0 { len + stop } else { stop };
    if start > stop || start >= len {
        return None;
    }
    Some((start as usize, stop.min(len - 1) as usize))
}

/// LPUSH/RPUSH/LPUSHX/RPUSHX: pushes in argument order; returns the length.
fn push_many(ctx: &mut Ctx<'_>, args: &[Bytes], end: End, create: bool) -> Result<Reply, OpError> {
    let len = op_write(ctx, &args[1], create, |l| {
        for v in &args[2..] {
            push(l, end, v);
        }
        Ok(l.len())
    })?;
    ctx.count_extra(args.len() - 2);
    if len.is_some() {
        ctx.notify(notify::LIST, push_event(end), &args[1]);
    }
    Ok(Reply::Int(len.unwrap_or(0) as i64))
}

pub fn lpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    push_many(ctx, args, End::Left, true)
}

pub fn rpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    push_many(ctx, args, End::Right, true)
}

pub fn lpushx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    push_many(ctx, args, End::Left, false)
}

pub fn rpushx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    push_many(ctx, args, End::Right, false)
}

/// LPOP/RPOP key [count]
fn pop_cmd(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> Result<Reply, OpError> {
    if args.len() > 3 {
        return Err(OpError::Arity(if end == End::Left {
            "lpop"
        } else {
            "rpop"
        }));
    }
    let count = match args.get(2) {
        Some(c) => Some(non_negative(c, reply::MUST_BE_POSITIVE)?),
        None => None,
    };
    let popped = op_write(ctx, &args[1], false, |l| {
        let n = count.unwrap_or(1).min(l.len() as u64) as usize;
        Ok((0..n).filter_map(|_| pop(l, end)).collect::<Vec<_>>())
    })?;
    let Some(popped) = popped else {
        return Ok(if count.is_some() {
            Reply::NilArray
        } else {
            Reply::Nil
        });
    };
    ctx.count_extra(popped.len());
    if !popped.is_empty() {
        ctx.notify_write(notify::LIST, pop_event(end), &args[1]);
    }
    Ok(match count {
        None => popped.first().map_or(Reply::Nil, |v| Reply::bulk_slice(v)),
        Some(_) => Reply::Array(popped.iter().map(|v| Reply::bulk_slice(v)).collect()),
    })
}

pub fn lpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    pop_cmd(ctx, args, End::Left)
}

pub fn rpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    pop_cmd(ctx, args, End::Right)
}

pub fn llen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    Ok(Reply::Int(
        op_read(ctx, &args[1])?.map_or(0, |l| l.len() as i64),
    ))
}

/// LRANGE key start stop
pub fn lrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (start, stop) = (int(&args[2])?, int(&args[3])?);
    let Some(l) = op_read(ctx, &args[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let items: Vec<Reply> = match span(start, stop, l.len()) {
        Some((a, b)) => l.range(a, b).map(Reply::bulk_slice).collect(),
        None => Vec::new(),
    };
    ctx.work += items.len() as u64;
    Ok(Reply::Array(items))
}

/// LINDEX key index
pub fn lindex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let index = int(&args[2])?;
    let v = op_read(ctx, &args[1])?.and_then(|l| position(index, l.len()).and_then(|i| l.get(i)));
    Ok(v.map_or(Reply::Nil, Reply::bulk_slice))
}

/// LSET key index element
pub fn lset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let index = int(&args[2])?;
    op_write(ctx, &args[1], false, |l| match position(index, l.len()) {
        Some(i) if l.set(i, &args[3]) => Ok(()),
        _ => Err(OpError::Static(reply::INDEX_OUT_OF_RANGE)),
    })?
    .ok_or(OpError::NoSuchKey)?;
    ctx.notify(notify::LIST, "lset", &args[1]);
    Ok(Reply::ok())
}

/// LINSERT key BEFORE|AFTER pivot element: the new length, -1 if the pivot
/// is missing, 0 if the key is.
pub fn linsert(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let after = if is(&args[2], "AFTER") {
        true
    } else if is(&args[2], "BEFORE") {
        false
    } else {
        return Err(OpError::Syntax);
    };
    let (pivot, value) = (&args[3], &args[4]);
    let mut walked = 0u64;
    let len = op_write(ctx, &args[1], false, |l| {
        let found = l.iter().position(|v| {
            walked += 1;
            v == &pivot[..]
        });
        Ok(match found {
            Some(i) => {
                l.insert(i + usize::from(after), value);
                l.len() as i64
            }
            None => -1,
        })
    })?;
    // Its walk is a bare comparison per element, half of LPOS's or LREM's
    // (calibration with link-time optimisation: LINSERT nomatch 100k 0.37
    // at a full count, LPOS 0.82, LREM 1.60).
    ctx.work += walked.div_ceil(2);
    if len.is_some_and(|n| n > 0) {
        ctx.notify(notify::LIST, "linsert", &args[1]);
    }
    Ok(Reply::Int(len.unwrap_or(0)))
}

/// LREM key count element: count > 0 from the head, < 0 from the tail, 0 all.
pub fn lrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let count = int(&args[2])?;
    let limit = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
    let done = op_write(ctx, &args[1], false, |l| {
        Ok(l.remove_matching(&args[3], limit, count < 0))
    })?;
    let (removed, walked) = done.unwrap_or((0, 0));
    ctx.work += walked as u64;
    if removed > 0 {
        ctx.notify_write(notify::LIST, "lrem", &args[1]);
    }
    Ok(Reply::Int(removed as i64))
}

/// LTRIM key start stop
pub fn ltrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (start, stop) = (int(&args[2])?, int(&args[3])?);
    let removed = op_write(ctx, &args[1], false, |l| {
        Ok(match span(start, stop, l.len()) {
            Some((a, b)) => l.retain_range(a, b + 1),
            None => l.retain_range(0, 0),
        })
    })?;
    ctx.work += removed.unwrap_or(0) as u64;
    if removed.is_some() {
        ctx.notify_write(notify::LIST, "ltrim", &args[1]);
    }
    Ok(Reply::ok())
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
pub fn lpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (mut rank, mut count, mut maxlen) = (1i64, None::<u64>, 0u64);
    let mut i = 3;
    while i < args.len() {
        let Some(v) = args.get(i + 1) else {
            return Err(OpError::Syntax);
        };
        if is(&args[i], "RANK") {
            rank = int(v)?;
            if rank == i64::MIN {
                return Err(OpError::Text(reply::out_of_range_between(
                    -i64::MAX,
                    i64::MAX,
                )));
            }
            if rank == 0 {
                return Err(OpError::Static(reply::LPOS_RANK_ZERO));
            }
        } else if is(&args[i], "COUNT") {
            count = Some(non_negative(v, reply::COUNT_NEGATIVE)?);
        } else if is(&args[i], "MAXLEN") {
            maxlen = non_negative(v, reply::MAXLEN_NEGATIVE)?;
        } else {
            return Err(OpError::Syntax);
        }
        i += 2;
    }
    let element = &args[2];
    let Some(l) = op_read(ctx, &args[1])? else {
        return Ok(if count.is_some() {
            Reply::Array(Vec::new())
        } else {
            Reply::Nil
        });
    };
    let len = l.len();
    let want = match count {
        Some(0) => usize::MAX,
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => 1,
    };
    let budget = if maxlen == 0 {
        len
    } else {
        len.min(usize::try_from(maxlen).unwrap_or(usize::MAX))
    };
    let mut skip = rank.unsigned_abs() - 1;
    let mut found = Vec::new();
    let mut walked = 0u64;
    let mut look = |i: usize, v: &[u8]| {
        walked += 1;
        if v == &element[..] {
            if skip > 0 {
                skip -= 1;
            } else {
                found.push(i);
            }
        }
        found.len() < want
    };
    if rank > 0 {
        for (i, v) in l.iter().enumerate().take(budget) {
            if !look(i, v) {
                break;
            }
        }
    } else {
        for (i, v) in l.iter().enumerate().rev().take(budget) {
            if !look(i, v) {
                break;
            }
        }
    }
    ctx.work += walked;
    Ok(match count {
        Some(_) => Reply::Array(found.into_iter().map(|i| Reply::Int(i as i64)).collect()),
        None => found.first().map_or(Reply::Nil, |&i| Reply::Int(i as i64)),
    })
}

/// Pops from `src`'s `from` end and pushes onto `dst`'s `to` end, atomically.
fn op_move(
    ctx: &mut Ctx<'_>,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Reply, OpError> {
    if op_read(ctx, src)?.is_none() {
        return Ok(Reply::Nil);
    }
    check_list(ctx, dst)?;
    let moved = if src == dst {
        // Rotation in place: the key (and its TTL) never goes away.
        op_write(ctx, src, false, |l| {
            let v = pop(l, from);
            if let Some(v) = &v {
                push(l, to, v);
            }
            Ok(v)
        })?
    } else {
        let v = op_write(ctx, src, false, |l| Ok(pop(l, from)))?.flatten();
        if let Some(v) = &v {
            op_write(ctx, dst, true, |l| {
                push(l, to, v);
                Ok(())
            })?;
        }
        Some(v)
    };
    if moved.as_ref().is_some_and(Option::is_some) {
        ctx.notify(notify::LIST, push_event(to), dst);
        ctx.notify_write(notify::LIST, pop_event(from), src);
    }
    Ok(moved
        .flatten()
        .map_or(Reply::Nil, |v| Reply::bulk_slice(&v)))
}

/// BLPOP/BRPOP key [key ...] timeout: one non-blocking attempt — the first
/// non-empty list gives `[key, element]`, else a null array and the proxy
/// waits for a push (see `flags::BLOCKING`). Keys reserved for clients
/// that blocked earlier are passed over (`Ctx::may_serve`).
pub fn bpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    block_timeout_secs(&args[args.len() - 1])?;
    let end = if is(&args[0], "blpop") {
        End::Left
    } else {
        End::Right
    };
    Ok(
        match pop_first(ctx, &args[1..args.len() - 1], end, 1, true)? {
            Some((key, mut popped)) => match popped.pop() {
                Some(v) => Reply::Array(vec![Reply::Bulk(key), Reply::bulk_slice(&v)]),
                None => Reply::NilArray,
            },
            None => Reply::NilArray,
        },
    )
}

/// A key and the elements popped from it.
type Popped = (Bytes, Vec<Box<[u8]>>);

/// The first of `keys` holding a list (that a blocking command may take
/// from, when `blocking`): pops up to `n` elements from its `end`.
/// WRONGTYPE on the first key that exists with another type.
fn pop_first(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    end: End,
    n: usize,
    blocking: bool,
) -> Result<Option<Popped>, OpError> {
    for key in keys {
        let still_blocked = blocking && ctx.still_blocked;
        let found = match op_read(ctx, key).map(|found| found.is_some()) {
            Ok(found) => found,
            // Not ready for a client that blocked waiting for this type.
            Err(OpError::WrongType) if still_blocked => false,
            Err(e) => return Err(e),
        };
        if !found || (blocking && !ctx.may_serve(key)) {
            continue;
        }
        let popped = op_write(ctx, key, false, |l| {
            let n = n.min(l.len());
            Ok((0..n).filter_map(|_| pop(l, end)).collect::<Vec<_>>())
        })?
        .unwrap_or_default();
        if !popped.is_empty() {
            ctx.count_extra(popped.len());
            ctx.notify_write(notify::LIST, pop_event(end), key);
            return Ok(Some((key.clone(), popped)));
        }
    }
    ctx.waits = blocking;
    Ok(None)
}

/// LEFT or RIGHT, as LMPOP reads it.
fn end_of(arg: &[u8]) -> Option<End> {
    End::parse(arg).ok()
}

/// LMPOP's and BLMPOP's reply: `[key, [element, ...]]`, or a null array.
fn mpop_reply(popped: Option<Popped>) -> Reply {
    match popped {
        Some((key, items)) => Reply::Array(vec![
            Reply::Bulk(key),
            Reply::Array(items.iter().map(|v| Reply::bulk_slice(v)).collect()),
        ]),
        None => Reply::NilArray,
    }
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn lmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (keys, end, count) = mpop_args(args, 1, end_of)?;
    Ok(mpop_reply(pop_first(ctx, keys, end, count, false)?))
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]: one
/// attempt of LMPOP (the timeout is checked after the other arguments).
pub fn blmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (keys, end, count) = mpop_args(args, 2, end_of)?;
    block_timeout_secs(&args[1])?;
    Ok(mpop_reply(pop_first(ctx, keys, end, count, true)?))
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout: one attempt of
/// LMOVE (null when the source is empty, or reserved for a client that
/// blocked earlier: the proxy waits and retries).
pub fn blmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (from, to) = (End::parse(&args[3])?, End::parse(&args[4])?);
    block_timeout_secs(&args[5])?;
    op_block_move(ctx, &args[1], &args[2], from, to)
}

/// BRPOPLPUSH source destination timeout: BLMOVE source destination RIGHT LEFT.
pub fn brpoplpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    block_timeout_secs(&args[3])?;
    op_block_move(ctx, &args[1], &args[2], End::Right, End::Left)
}

/// One attempt of a blocking move: as [`op_move`], but a reserved source
/// reads as empty (after its type is checked, as Redis checks it first),
/// and so does a source of another type on a retry (`Ctx::still_blocked`).
fn op_block_move(
    ctx: &mut Ctx<'_>,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Reply, OpError> {
    let still_blocked = ctx.still_blocked;
    match op_read(ctx, src).map(|found| found.is_some()) {
        Ok(true) if ctx.may_serve(src) => op_move(ctx, src, dst, from, to),
        // Empty, reserved, or (on a retry) not a list: not ready for it.
        Ok(_) => {
            ctx.waits = true;
            Ok(Reply::Nil)
        }
        Err(OpError::WrongType) if still_blocked => {
            ctx.waits = true;
            Ok(Reply::Nil)
        }
        Err(e) => Err(e),
    }
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT
pub fn lmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (from, to) = (End::parse(&args[3])?, End::parse(&args[4])?);
    op_move(ctx, &args[1], &args[2], from, to)
}

/// RPOPLPUSH source destination
pub fn rpoplpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    op_move(ctx, &args[1], &args[2], End::Right, End::Left)
}

#[cfg(test)]
mod tests {
    use crate::cmd::test_util::{Harness, bulk, err};
    use crate::partition::value::{ENTRY_OVERHEAD, LIST_ELEM_OVERHEAD};
    use crate::resp::{Reply, reply};

    fn bulks(items: &[&str]) -> Reply {
        Reply::Array(items.iter().map(|s| bulk(s)).collect())
    }

    fn ints(items: &[i64]) -> Reply {
        Reply::Array(items.iter().map(|n| Reply::Int(*n)).collect())
    }

    #[test]
    fn push_pop_and_length() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["lpush", "l", "a", "b"]), Reply::Int(2));
        assert_eq!(h.run(&["rpush", "l", "c"]), Reply::Int(3));
        assert_eq!(h.run(&["lrange", "l", "0", "-1"]), bulks(&["b", "a", "c"]));
        assert_eq!(h.run(&["lpushx", "nope", "a"]), Reply::Int(0));
        assert_eq!(h.run(&["exists", "nope"]), Reply::Int(0));
        assert_eq!(h.run(&["rpushx", "l", "d"]), Reply::Int(4));
        assert_eq!(h.run(&["llen", "l"]), Reply::Int(4));
        assert_eq!(h.run(&["lpop", "l"]), bulk("b"));
        assert_eq!(h.run(&["rpop", "l", "2"]), bulks(&["d", "c"]));
        assert_eq!(h.run(&["lpop", "l", "0"]), Reply::Array(vec![]));
        assert_eq!(h.run(&["lpop", "l", "-1"]), err(reply::MUST_BE_POSITIVE));
        assert_eq!(h.run(&["lpop", "l", "x"]), err(reply::MUST_BE_POSITIVE));
        assert_eq!(
            h.run(&["lpop", "l", "1", "2"]),
            err("ERR wrong number of arguments for 'lpop' command")
        );
        assert_eq!(h.run(&["lpop", "l", "9223372036854775807"]), bulks(&["a"]));
        assert_eq!(h.run(&["exists", "l"]), Reply::Int(0));
        assert_eq!(h.run(&["lpop", "l"]), Reply::Nil);
        assert_eq!(h.run(&["lpop", "l", "2"]), Reply::NilArray);
        assert_eq!(h.run(&["llen", "l"]), Reply::Int(0));
        h.run(&["set", "s", "x"]);
        assert_eq!(h.run(&["lpush", "s", "a"]), err(reply::WRONGTYPE));
        assert_eq!(h.run(&["lrange", "s", "0", "1"]), err(reply::WRONGTYPE));
        assert_eq!(h.run(&["type", "s"]), Reply::status("string"));
        h.run(&["rpush", "l", "a"]);
        assert_eq!(h.run(&["type", "l"]), Reply::status("list"));
    }

    #[test]
    fn index_and_ranges() {
        let mut h = Harness::new();
        h.run(&["rpush", "l", "a", "b", "c", "d", "e"]);
        assert_eq!(h.run(&["lrange", "l", "1", "2"]), bulks(&["b", "c"]));
        assert_eq!(h.run(&["lrange", "l", "-2", "100"]), bulks(&["d", "e"]));
        assert_eq!(h.run(&["lrange", "l", "3", "1"]), bulks(&[]));
        assert_eq!(
            h.run(&["lrange", "l", "-9223372036854775808", "9223372036854775807"]),
            bulks(&["a", "b", "c", "d", "e"])
        );
        assert_eq!(h.run(&["lrange", "l", "5", "10"]), bulks(&[]));
        assert_eq!(h.run(&["lrange", "nope", "0", "-1"]), bulks(&[]));
        assert_eq!(
            h.run(&["lrange", "l", "x", "1"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(h.run(&["lindex", "l", "-1"]), bulk("e"));
        assert_eq!(h.run(&["lindex", "l", "5"]), Reply::Nil);
        assert_eq!(h.run(&["lindex", "l", "-9223372036854775808"]), Reply::Nil);
        assert_eq!(h.run(&["lset", "l", "-1", "E"]), Reply::ok());
        assert_eq!(h.run(&["lindex", "l", "4"]), bulk("E"));
        assert_eq!(
            h.run(&["lset", "l", "10", "x"]),
            err("ERR index out of range")
        );
        assert_eq!(h.run(&["lset", "nope", "0", "x"]), err("ERR no such key"));
        assert_eq!(h.run(&["ltrim", "l", "1", "-2"]), Reply::ok());
        assert_eq!(h.run(&["lrange", "l", "0", "-1"]), bulks(&["b", "c", "d"]));
        assert_eq!(h.run(&["ltrim", "l", "5", "1"]), Reply::ok());
        assert_eq!(h.run(&["exists", "l"]), Reply::Int(0));
        assert_eq!(h.ks.used_bytes(), 0);
    }

    #[test]
    fn insert_remove_and_search() {
        let mut h = Harness::new();
        h.run(&["rpush", "l", "a", "b", "a", "c", "a"]);
        assert_eq!(h.run(&["linsert", "l", "BEFORE", "b", "x"]), Reply::Int(6));
        assert_eq!(h.run(&["linsert", "l", "after", "c", "y"]), Reply::Int(7));
        assert_eq!(h.run(&["linsert", "l", "after", "zz", "y"]), Reply::Int(-1));
        assert_eq!(
            h.run(&["linsert", "nope", "after", "a", "y"]),
            Reply::Int(0)
        );
        assert_eq!(
            h.run(&["linsert", "l", "middle", "a", "y"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["lrange", "l", "0", "-1"]),
            bulks(&["a", "x", "b", "a", "c", "y", "a"])
        );
        assert_eq!(h.run(&["lpos", "l", "a"]), Reply::Int(0));
        assert_eq!(h.run(&["lpos", "l", "a", "RANK", "2"]), Reply::Int(3));
        assert_eq!(h.run(&["lpos", "l", "a", "RANK", "-1"]), Reply::Int(6));
        assert_eq!(h.run(&["lpos", "l", "a", "COUNT", "0"]), ints(&[0, 3, 6]));
        assert_eq!(
            h.run(&["lpos", "l", "a", "RANK", "-1", "COUNT", "2"]),
            ints(&[6, 3])
        );
        assert_eq!(
            h.run(&["lpos", "l", "a", "COUNT", "0", "MAXLEN", "4"]),
            ints(&[0, 3])
        );
        assert_eq!(h.run(&["lpos", "l", "zz"]), Reply::Nil);
        assert_eq!(h.run(&["lpos", "l", "zz", "COUNT", "1"]), ints(&[]));
        assert_eq!(h.run(&["lpos", "nope", "a", "COUNT", "1"]), ints(&[]));
        assert_eq!(
            h.run(&["lpos", "l", "a", "RANK", "0"]),
            err(reply::LPOS_RANK_ZERO)
        );
        assert_eq!(
            h.run(&["lpos", "l", "a", "RANK", "-9223372036854775808"]),
            err(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
            )
        );
        assert_eq!(
            h.run(&["lpos", "l", "a", "COUNT", "-1"]),
            err("ERR COUNT can't be negative")
        );
        assert_eq!(
            h.run(&["lpos", "l", "a", "MAXLEN", "x"]),
            err("ERR MAXLEN can't be negative")
        );
        assert_eq!(h.run(&["lpos", "l", "a", "RANK"]), err("ERR syntax error"));
        assert_eq!(h.run(&["lrem", "l", "-2", "a"]), Reply::Int(2));
        assert_eq!(
            h.run(&["lrange", "l", "0", "-1"]),
            bulks(&["a", "x", "b", "c", "y"])
        );
        h.run(&["rpush", "l", "a", "a"]);
        assert_eq!(h.run(&["lrem", "l", "1", "a"]), Reply::Int(1));
        assert_eq!(h.run(&["lrem", "l", "0", "a"]), Reply::Int(2));
        assert_eq!(
            h.run(&["lrange", "l", "0", "-1"]),
            bulks(&["x", "b", "c", "y"])
        );
        let bytes = 1 + ENTRY_OVERHEAD + 4 * (1 + LIST_ELEM_OVERHEAD);
        assert_eq!(h.ks.used_bytes(), bytes);
        assert_eq!(h.run(&["lrem", "l", "0", "x"]), Reply::Int(1));
        assert_eq!(h.run(&["lrem", "l", "0", "b"]), Reply::Int(1));
        assert_eq!(h.run(&["lrem", "l", "0", "c"]), Reply::Int(1));
        assert_eq!(h.run(&["lrem", "l", "0", "y"]), Reply::Int(1));
        assert_eq!(h.run(&["exists", "l"]), Reply::Int(0));
        assert_eq!(h.ks.used_bytes(), 0);
    }

    #[test]
    fn moves_between_lists() {
        let mut h = Harness::new();
        h.run(&["rpush", "{t}a", "1", "2", "3"]);
        assert_eq!(
            h.run(&["lmove", "{t}a", "{t}b", "LEFT", "RIGHT"]),
            bulk("1")
        );
        assert_eq!(h.run(&["rpoplpush", "{t}a", "{t}b"]), bulk("3"));
        assert_eq!(h.run(&["lrange", "{t}b", "0", "-1"]), bulks(&["3", "1"]));
        assert_eq!(
            h.run(&["lmove", "{t}b", "{t}b", "LEFT", "RIGHT"]),
            bulk("3")
        );
        assert_eq!(h.run(&["lrange", "{t}b", "0", "-1"]), bulks(&["1", "3"]));
        h.run(&["expire", "{t}a", "100"]);
        assert_eq!(h.run(&["lmove", "{t}a", "{t}a", "LEFT", "LEFT"]), bulk("2"));
        assert_eq!(h.run(&["ttl", "{t}a"]), Reply::Int(100));
        assert_eq!(
            h.run(&["lmove", "{t}a", "{t}b", "up", "LEFT"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["rpoplpush", "{t}nope", "{t}b"]), Reply::Nil);
        h.run(&["set", "{t}s", "x"]);
        assert_eq!(h.run(&["rpoplpush", "{t}a", "{t}s"]), err(reply::WRONGTYPE));
        assert_eq!(h.run(&["llen", "{t}a"]), Reply::Int(1));
        assert_eq!(h.run(&["rpoplpush", "{t}a", "{t}b"]), bulk("2"));
        assert_eq!(h.run(&["exists", "{t}a"]), Reply::Int(0));
        assert_eq!(h.run(&["llen", "{t}b"]), Reply::Int(3));
    }

    #[test]
    fn multi_pops_and_blocking_attempts() {
        let mut h = Harness::new();
        h.run(&["rpush", "{l}b", "1", "2", "3"]);
        let popped = |key: &str, items: &[&str]| Reply::Array(vec![bulk(key), bulks(items)]);
        assert_eq!(
            h.run(&["lmpop", "2", "{l}a", "{l}b", "RIGHT", "COUNT", "2"]),
            popped("{l}b", &["3", "2"])
        );
        assert_eq!(
            h.run(&["blmpop", "0", "1", "{l}b", "LEFT", "COUNT", "5"]),
            popped("{l}b", &["1"])
        );
        assert_eq!(h.run(&["exists", "{l}b"]), Reply::Int(0));
        assert_eq!(h.run(&["lmpop", "1", "{l}b", "LEFT"]), Reply::NilArray);
        assert_eq!(
            h.run(&["lmpop", "1", "{l}b", "UP"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["lmpop", "x", "{l}b", "LEFT"]),
            err(reply::NUMKEYS_NOT_POSITIVE)
        );
        assert_eq!(
            h.run(&["blmpop", "-1", "1", "{l}b", "LEFT"]),
            err(reply::TIMEOUT_NEGATIVE)
        );
        h.run(&["set", "{l}s", "x"]);
        assert_eq!(
            h.run(&["lmpop", "2", "{l}b", "{l}s", "LEFT"]),
            err(reply::WRONGTYPE)
        );
        h.run(&["rpush", "{l}a", "1", "2"]);
        assert_eq!(h.run(&["brpoplpush", "{l}a", "{l}c", "0"]), bulk("2"));
        assert_eq!(h.run(&["lrange", "{l}c", "0", "-1"]), bulks(&["2"]));
        // A source reserved for clients that blocked earlier reads as
        // empty to a blocking attempt, after its type is checked.
        h.reserved = vec![Box::from(&b"{l}a"[..]), Box::from(&b"{l}s"[..])];
        assert_eq!(h.run(&["brpoplpush", "{l}a", "{l}c", "0"]), Reply::Nil);
        assert_eq!(h.run(&["blpop", "{l}a", "0"]), Reply::NilArray);
        assert_eq!(
            h.run(&["blmpop", "0", "1", "{l}a", "LEFT"]),
            Reply::NilArray
        );
        assert_eq!(
            h.run(&["blmove", "{l}s", "{l}c", "LEFT", "LEFT", "0"]),
            err(reply::WRONGTYPE)
        );
        assert_eq!(
            h.run(&["blpop", "{l}a", "{l}c", "0"]),
            Reply::Array(vec![bulk("{l}c"), bulk("2")])
        );
        assert_eq!(
            h.run(&["lmpop", "1", "{l}a", "LEFT"]),
            popped("{l}a", &["1"])
        );
        // A retry for a blocked client passes over keys of another type.
        h.reserved.clear();
        h.run(&["rpush", "{l}c", "2"]);
        h.still_blocked = true;
        assert_eq!(h.run(&["blpop", "{l}s", "0"]), Reply::NilArray);
        assert_eq!(h.run(&["brpoplpush", "{l}s", "{l}c", "0"]), Reply::Nil);
        assert_eq!(
            h.run(&["blmpop", "0", "2", "{l}s", "{l}c", "LEFT"]),
            popped("{l}c", &["2"])
        );
        h.still_blocked = false;
        assert_eq!(h.run(&["blpop", "{l}s", "0"]), err(reply::WRONGTYPE));
    }

    #[test]
    fn copy_is_independent() {
        let mut h = Harness::new();
        h.run(&["rpush", "{c}a", "1", "2"]);
        let one = h.ks.used_bytes();
        assert_eq!(h.run(&["copy", "{c}a", "{c}b"]), Reply::Int(1));
        assert_eq!(h.ks.used_bytes(), 2 * one);
        h.run(&["rpush", "{c}b", "3"]);
        assert_eq!(h.run(&["lrange", "{c}a", "0", "-1"]), bulks(&["1", "2"]));
        assert_eq!(
            h.run(&["lrange", "{c}b", "0", "-1"]),
            bulks(&["1", "2", "3"])
        );
        h.run(&["del", "{c}a", "{c}b"]);
        assert_eq!(h.ks.used_bytes(), 0);
    }
}
