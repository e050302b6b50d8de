//! Sorted-set commands: ZADD and ZINCRBY, scores and ranks, the ZRANGE
//! family (by rank, score or lex, either direction, LIMIT, WITHSCORES),
//! range removals, pops, random members, ZUNIONSTORE/ZINTERSTORE and ZSCAN.
//!
//! Storage is [`ZSetValue`] (O(log n) rank and range lookups); an emptied
//! sorted set is deleted. Ranges are resolved to rank spans by the storage
//! layer, so LIMIT offsets skip in O(log n) and handlers only walk (and add
//! to `ctx.work`) the members they return or remove, a member with its
//! score counting twice; ZADD, ZREM and ZMSCORE count the members they name
//! beyond the first.

use std::collections::HashMap;

use bytes::Bytes;

use super::args::{
    block_timeout_secs, float, int, is, mpop_args, non_negative, parse_f64, random_count, scan_opts,
};
use super::table::{COLD_PICK_BYTES, SCAN_REPLY_MILLI, SCAN_SCORE_MILLI, SCAN_VISIT_MILLI};
use super::{Ctx, OpError, notify};
use crate::partition::lazyfree;
use crate::partition::scan::{SCAN_WHOLE_UP_TO, scan_step};
use crate::partition::zset::{Charge, LexBound, LexRange, ScoreBound, ScoreRange};
use crate::partition::{Value, ZSetValue};
use crate::resp::value::format_double;
use crate::resp::{Reply, reply};

/// The zset under `key` for reading (see [`super::read_as`]).
fn op_read<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<Option<&'a ZSetValue>, OpError> {
    super::read_as(ctx, key)
}

/// Runs `f` on the zset under `key` (see [`super::write_as`]).
fn op_write<T>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut ZSetValue) -> Result<T, OpError>,
) -> Result<Option<T>, OpError> {
    super::write_as(ctx, key, create, f)
}

/// A score bound: `1.5`, `(1.5`, `-inf`, `+inf`. Parsed as Redis's
/// `strtod` call does: leading spaces pass, and nothing at all reads as 0.
fn score_bound(arg: &[u8]) -> Result<ScoreBound, OpError> {
    let bad = || OpError::Static(reply::MIN_MAX_NOT_FLOAT);
    let (exclusive, text) = match arg.split_first() {
        Some((b'(', rest)) => (true, rest),
        _ => (false, arg),
    };
    let value = if text.is_empty() {
        0.0
    } else {
        parse_f64(text.trim_ascii_start()).ok_or_else(bad)?
    };
    Ok(ScoreBound { value, exclusive })
}

fn score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, OpError> {
    Ok(ScoreRange {
        min: score_bound(min)?,
        max: score_bound(max)?,
    })
}

/// A lex bound: `-`, `+`, `[member`, `(member`.
fn lex_bound(arg: &[u8]) -> Result<LexBound<'_>, OpError> {
    match arg {
        b"-" => Ok(LexBound::Min),
        b"+" => Ok(LexBound::Max),
        [b'[', rest @ ..] => Ok(LexBound::Inclusive(rest)),
        [b'(', rest @ ..] => Ok(LexBound::Exclusive(rest)),
        _ => Err(OpError::Static(reply::MIN_MAX_NOT_LEX)),
    }
}

fn lex_range<'a>(min: &'a [u8], max: &'a [u8]) -> Result<LexRange<'a>, OpError> {
    Ok(LexRange {
        min: lex_bound(min)?,
        max: lex_bound(max)?,
    })
}

/// Resolves Redis `start stop` rank indexes to an inclusive rank span.
fn rank_span(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { len + start } else { start }.max(0);
    let stop = if stop < 0 { len + stop } else { stop };
    if start > stop || start >= len {
        return None;
    }
    Some((start as usize, stop.min(len - 1) as usize))
}

/// Member-and-score pairs as a reply: flat in RESP2 (and always when
/// `flat`), nested pairs in RESP3.
fn pairs_reply(pairs: Vec<(Bytes, f64)>, resp3: bool, flat: bool) -> Reply {
    if resp3 && !flat {
        Reply::Array(
            pairs
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                .collect(),
        )
    } else {
        Reply::Array(
            pairs
                .into_iter()
                .flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)])
                .collect(),
        )
    }
}

fn members_reply(pairs: Vec<(Bytes, f64)>, withscores: bool, resp3: bool) -> Reply {
    if withscores {
        pairs_reply(pairs, resp3, false)
    } else {
        Reply::Array(pairs.into_iter().map(|(m, _)| Reply::Bulk(m)).collect())
    }
}

fn owned<'a>(it: impl Iterator<Item = (&'a [u8], f64)>) -> Vec<(Bytes, f64)> {
    it.map(|(m, s)| (Bytes::copy_from_slice(m), s)).collect()
}

/// ZADD's flags.
#[derive(Debug, Clone, Copy, Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// What adding one member did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Added {
    New,
    Updated,
    Unchanged,
    /// Refused by NX/XX/GT/LT.
    Skipped,
}

/// Redis's `zsetAdd`: one member with the given flags; the new score.
fn op_add(
    z: &mut ZSetValue,
    member: &[u8],
    score: f64,
    f: AddFlags,
) -> Result<(Added, f64), OpError> {
    match z.score(member) {
        Some(cur) => {
            if f.nx {
                return Ok((Added::Skipped, cur));
            }
            let new = if f.incr { cur + score } else { score };
            if new.is_nan() {
                return Err(OpError::Static(reply::SCORE_NAN));
            }
            if (f.lt && new >= cur) || (f.gt && new <= cur) {
                return Ok((Added::Skipped, cur));
            }
            if new == cur {
                return Ok((Added::Unchanged, cur));
            }
            z.insert(member, new);
            Ok((Added::Updated, new))
        }
        None if f.xx => Ok((Added::Skipped, score)),
        None => {
            z.insert(member, score);
            Ok((Added::New, score))
        }
    }
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
pub fn zadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let mut f = AddFlags::default();
    let mut i = 2;
    while let Some(a) = args.get(i) {
        match () {
            _ if is(a, "NX") => f.nx = true,
            _ if is(a, "XX") => f.xx = true,
            _ if is(a, "GT") => f.gt = true,
            _ if is(a, "LT") => f.lt = true,
            _ if is(a, "CH") => f.ch = true,
            _ if is(a, "INCR") => f.incr = true,
            _ => break,
        }
        i += 1;
    }
    let rest = &args[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(OpError::Syntax);
    }
    if f.nx && f.xx {
        return Err(OpError::Static(reply::ZADD_NX_XX));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(OpError::Static(reply::ZADD_GT_LT_NX));
    }
    if f.incr && rest.len() > 2 {
        return Err(OpError::Static(reply::ZADD_INCR_PAIR));
    }
    // Every score is checked before anything changes (one pair, the
    // commonest ZADD, without an allocation).
    let pairs: smallvec::SmallVec<[(f64, &Bytes); 2]> = rest
        .chunks_exact(2)
        .map(|p| Ok((float(&p[0])?, &p[1])))
        .collect::<Result<_, OpError>>()?;
    let outcome = op_write(ctx, &args[1], !f.xx, |z| {
        if !f.xx {
            z.reserve(pairs.len());
        }
        let (mut added, mut changed, mut last) = (0i64, 0i64, None);
        for (score, member) in &pairs {
            let (what, new) = op_add(z, member, *score, f)?;
            match what {
                Added::New => added += 1,
                Added::Updated => changed += 1,
                Added::Unchanged | Added::Skipped => {}
            }
            last = (what != Added::Skipped).then_some(new);
        }
        Ok((added, changed, last))
    })?;
    let (added, changed, last) = outcome.unwrap_or((0, 0, None));
    // A member and its score count as two elements (as in replies); a
    // member inserted costs one more than one updated (a skiplist node,
    // index entry and arena slot; less in a packed set: ZADD creating its
    // key measured 0.6-1.0 GET, 1000 new members 0.35 each).
    ctx.count_extra(rest.len() - 1);
    ctx.work += added.unsigned_abs();
    if added + changed > 0 {
        let event = if f.incr { "zincr" } else { "zadd" };
        ctx.notify(notify::ZSET, event, &args[1]);
    }
    Ok(if f.incr {
        last.map_or(Reply::Nil, Reply::Double)
    } else if f.ch {
        Reply::Int(added + changed)
    } else {
        Reply::Int(added)
    })
}

/// ZINCRBY key increment member
pub fn zincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let delta = float(&args[2])?;
    let f = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    let new = op_write(ctx, &args[1], true, |z| op_add(z, &args[3], delta, f))?;
    ctx.notify(notify::ZSET, "zincr", &args[1]);
    Ok(new.map_or(Reply::Nil, |(_, s)| Reply::Double(s)))
}

pub fn zrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let n = op_write(ctx, &args[1], false, |z| {
        Ok(args[2..].iter().filter(|m| z.remove(m).is_some()).count())
    })?;
    ctx.count_extra(args.len() - 2);
    if n.unwrap_or(0) > 0 {
        ctx.notify_write(notify::ZSET, "zrem", &args[1]);
    }
    Ok(Reply::Int(n.unwrap_or(0) as i64))
}

pub fn zscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let s = op_read(ctx, &args[1])?.and_then(|z| z.score(&args[2]));
    Ok(s.map_or(Reply::Nil, Reply::Double))
}

pub fn zmscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let z = op_read(ctx, &args[1])?;
    let reply = Reply::Array(
        args[2..]
            .iter()
            .map(|m| z.and_then(|z| z.score(m)).map_or(Reply::Nil, Reply::Double))
            .collect(),
    );
    ctx.count_extra(args.len() - 2);
    Ok(reply)
}

pub fn zcard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    Ok(Reply::Int(
        op_read(ctx, &args[1])?.map_or(0, |z| z.len() as i64),
    ))
}

/// ZCOUNT key min max: O(log n) through ranks.
pub fn zcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let range = score_range(&args[2], &args[3])?;
    let n = op_read(ctx, &args[1])?
        .and_then(|z| z.score_ranks(&range))
        .map_or(0, |(a, b)| b - a + 1);
    Ok(Reply::Int(n as i64))
}

/// ZLEXCOUNT key min max: O(log n) through ranks.
pub fn zlexcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let range = lex_range(&args[2], &args[3])?;
    let n = op_read(ctx, &args[1])?
        .and_then(|z| z.lex_ranks(&range))
        .map_or(0, |(a, b)| b - a + 1);
    Ok(Reply::Int(n as i64))
}

/// ZRANK and ZREVRANK key member [WITHSCORE]
pub fn zrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let rev = is(&args[0], "zrevrank");
    if args.len() > 4 {
        return Err(OpError::Arity(if rev { "zrevrank" } else { "zrank" }));
    }
    let withscore = match args.get(3) {
        Some(a) if is(a, "WITHSCORE") => true,
        Some(_) => return Err(OpError::Syntax),
        None => false,
    };
    let none = if withscore {
        Reply::NilArray
    } else {
        Reply::Nil
    };
    let Some(z) = op_read(ctx, &args[1])? else {
        return Ok(none);
    };
    let (Some(rank), Some(score)) = (z.rank(&args[2]), z.score(&args[2])) else {
        return Ok(none);
    };
    let rank = if rev { z.len() - 1 - rank } else { rank } as i64;
    Ok(if withscore {
        Reply::Array(vec![Reply::Int(rank), Reply::Double(score)])
    } else {
        Reply::Int(rank)
    })
}

/// How a ZRANGE-family call selects members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeBy {
    Rank,
    Score,
    Lex,
}

/// A parsed ZRANGE-family call: what to select, and how.
struct RangeQuery<'a> {
    span: Span<'a>,
    rev: bool,
    withscores: bool,
    limit: Option<(i64, i64)>,
}

/// Parses a ZRANGE-family call whose source key is at `at` (the range
/// follows it, then the options), in Redis's order of checks; a `store`
/// form (ZRANGESTORE) takes no WITHSCORES.
fn parse_range(args: &[Bytes], at: usize, store: bool) -> Result<RangeQuery<'_>, OpError> {
    let cmd = &args[0];
    let (mut by, mut rev) = (None, None);
    if is(cmd, "zrevrange") {
        (by, rev) = (Some(RangeBy::Rank), Some(true));
    } else if is(cmd, "zrangebyscore") {
        (by, rev) = (Some(RangeBy::Score), Some(false));
    } else if is(cmd, "zrevrangebyscore") {
        (by, rev) = (Some(RangeBy::Score), Some(true));
    } else if is(cmd, "zrangebylex") {
        (by, rev) = (Some(RangeBy::Lex), Some(false));
    } else if is(cmd, "zrevrangebylex") {
        (by, rev) = (Some(RangeBy::Lex), Some(true));
    }
    // Phase 1: options, in Redis's order of checks.
    let (mut withscores, mut limit) = (false, None::<(i64, i64)>);
    let mut i = at + 3;
    while i < args.len() {
        let a = &args[i];
        if !store && is(a, "WITHSCORES") {
            withscores = true;
        } else if is(a, "LIMIT") && i + 2 < args.len() {
            limit = Some((int(&args[i + 1])?, int(&args[i + 2])?));
            i += 2;
        } else if rev.is_none() && is(a, "REV") {
            rev = Some(true);
        } else if by.is_none() && is(a, "BYLEX") {
            by = Some(RangeBy::Lex);
        } else if by.is_none() && is(a, "BYSCORE") {
            by = Some(RangeBy::Score);
        } else {
            return Err(OpError::Syntax);
        }
        i += 1;
    }
    let (by, rev) = (by.unwrap_or(RangeBy::Rank), rev.unwrap_or(false));
    if limit.is_some() && by == RangeBy::Rank {
        return Err(OpError::Static(reply::LIMIT_NEEDS_BY));
    }
    if withscores && by == RangeBy::Lex {
        return Err(OpError::Static(reply::WITHSCORES_BYLEX));
    }
    // Phase 2: the range (given max first when reversed by score or lex).
    let (lo, hi) = if rev && by != RangeBy::Rank {
        (&args[at + 2], &args[at + 1])
    } else {
        (&args[at + 1], &args[at + 2])
    };
    let span = match by {
        RangeBy::Rank => Span::Rank(int(lo)?, int(hi)?),
        RangeBy::Score => Span::Score(score_range(lo, hi)?),
        RangeBy::Lex => Span::Lex(lex_range(lo, hi)?),
    };
    Ok(RangeQuery {
        span,
        rev,
        withscores,
        limit,
    })
}

/// ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES],
/// and the older forms ZREVRANGE, Z[REV]RANGEBYSCORE, Z[REV]RANGEBYLEX.
pub fn zrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let q = parse_range(args, 1, false)?;
    // Phase 3: the members.
    let resp3 = ctx.resp3;
    let Some(z) = op_read(ctx, &args[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let pairs = select(z, &q.span, q.rev, q.limit);
    // A member and its score are two strings in the reply.
    ctx.work += pairs.len() as u64 * (1 + u64::from(q.withscores));
    Ok(members_reply(pairs, q.withscores, resp3))
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]:
/// the selected members and their scores replace `dst` (deleted if none),
/// built within the room the cache has left.
pub fn zrangestore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let q = parse_range(args, 2, true)?;
    let limit = ctx.room_for_store(&args[1]);
    let Some(z) = op_read(ctx, &args[2])? else {
        return store(ctx, &args[1], Vec::new(), "zrangestore");
    };
    // Check the size before copying anything: the selection is a rank span.
    let pairs = select_within(z, &q.span, q.rev, q.limit, limit)?;
    // Each member is copied out, then inserted with its score into the
    // result's table and skip list: about a GET each (measured 1.0-1.1).
    ctx.work += 5 * pairs.len() as u64;
    store(ctx, &args[1], pairs, "zrangestore")
}

/// [`select`], refused with OOM before copying if the members it selects
/// would take more than `limit` bytes as a sorted set.
fn select_within(
    z: &ZSetValue,
    span: &Span<'_>,
    rev: bool,
    limit: Option<(i64, i64)>,
    bytes: usize,
) -> Result<Vec<(Bytes, f64)>, OpError> {
    if bytes != usize::MAX {
        let mut need = Charge::default();
        for (m, s) in select_iter(z, span, rev, limit) {
            need.add(m, s);
            if need.bytes() > bytes {
                return Err(OpError::Static(reply::OOM));
            }
        }
    }
    Ok(select(z, span, rev, limit))
}

/// Replaces `key` with the sorted set of `pairs` (no TTL), or deletes it if
/// there are none; reserves its growth first. Replies with its size.
/// Stores a result (an empty one deletes the destination); `event` is the
/// keyspace event Redis emits for the store (`zunionstore`...).
fn store(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    pairs: Vec<(Bytes, f64)>,
    event: &'static str,
) -> Result<Reply, OpError> {
    let len = pairs.len();
    if pairs.is_empty() {
        if ctx.ks.remove(key, ctx.now) {
            ctx.notify(notify::GENERIC, "del", key);
        }
        return Ok(Reply::Int(0));
    }
    // The charge of a sorted set is known from its members and scores:
    // reserve before building.
    let charge: Charge = pairs.iter().map(|(m, s)| (&m[..], *s)).collect();
    ctx.reserve_store(key, charge.bytes())?;
    let mut out = ZSetValue::default();
    out.reserve(pairs.len());
    for (m, s) in &pairs {
        out.insert(m, *s);
    }
    ctx.ks.insert(key, Value::ZSet(Box::new(out)), 0, ctx.now);
    ctx.notify(notify::ZSET, event, key);
    Ok(Reply::Int(len as i64))
}

/// A parsed range of any kind.
enum Span<'a> {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange<'a>),
}

/// The members a range selects, in order (descending when `rev`), after
/// LIMIT's offset and count (a negative count means all).
fn select(
    z: &ZSetValue,
    span: &Span<'_>,
    rev: bool,
    limit: Option<(i64, i64)>,
) -> Vec<(Bytes, f64)> {
    owned(select_iter(z, span, rev, limit))
}

/// [`select`] without copying: the selected members, borrowed.
fn select_iter<'z>(
    z: &'z ZSetValue,
    span: &Span<'_>,
    rev: bool,
    limit: Option<(i64, i64)>,
) -> impl Iterator<Item = (&'z [u8], f64)> + use<'z> {
    let len = z.len();
    let ranks = match span {
        Span::Rank(start, stop) => {
            // Reversed rank indexes count from the highest score.
            rank_span(*start, *stop, len).map(|(a, b)| {
                if rev {
                    (len - 1 - b, len - 1 - a)
                } else {
                    (a, b)
                }
            })
        }
        Span::Score(r) => z.score_ranks(r),
        Span::Lex(r) => z.lex_ranks(r),
    };
    let (offset, count) = limit.unwrap_or((0, -1));
    let picked = ranks.and_then(|(first, last)| {
        let offset = usize::try_from(offset).ok()?;
        let available = (last - first + 1).saturating_sub(offset);
        let take = usize::try_from(count).map_or(available, |c| c.min(available));
        if take == 0 {
            return None;
        }
        Some(if rev {
            z.iter_rev_from(last - offset).take(take)
        } else {
            z.iter_from(first + offset).take(take)
        })
    });
    picked.into_iter().flatten()
}

/// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX key min max
pub fn zremrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let cmd = &args[0];
    let span = if is(cmd, "zremrangebyrank") {
        Span::Rank(int(&args[2])?, int(&args[3])?)
    } else if is(cmd, "zremrangebyscore") {
        Span::Score(score_range(&args[2], &args[3])?)
    } else {
        Span::Lex(lex_range(&args[2], &args[3])?)
    };
    let removed = op_write(ctx, &args[1], false, |z| {
        let ranks = match &span {
            Span::Rank(start, stop) => rank_span(*start, *stop, z.len()),
            Span::Score(r) => z.score_ranks(r),
            Span::Lex(r) => z.lex_ranks(r),
        };
        Ok(ranks.map_or(0, |(a, b)| z.remove_rank_range(a, b)))
    })?
    .unwrap_or(0);
    ctx.work += removed as u64;
    if removed > 0 {
        let event = if is(cmd, "zremrangebyrank") {
            "zremrangebyrank"
        } else if is(cmd, "zremrangebyscore") {
            "zremrangebyscore"
        } else {
            "zremrangebylex"
        };
        ctx.notify_write(notify::ZSET, event, &args[1]);
    }
    Ok(Reply::Int(removed as i64))
}

/// Removes up to `n` members from the low (or, with `max`, the high) end:
/// the members and scores, in the order popped.
fn op_pop(z: &mut ZSetValue, max: bool, n: usize) -> Vec<(Bytes, f64)> {
    let n = n.min(z.len());
    if n == 0 {
        return Vec::new();
    }
    let len = z.len();
    if max {
        let out = owned(z.iter_rev_from(len - 1).take(n));
        z.remove_rank_range(len - n, len - 1);
        out
    } else {
        let out = owned(z.iter().take(n));
        z.remove_rank_range(0, n - 1);
        out
    }
}

/// ZPOPMIN and ZPOPMAX key [count]
pub fn zpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let max = is(&args[0], "zpopmax");
    if args.len() > 3 {
        return Err(OpError::Syntax);
    }
    let count = match args.get(2) {
        Some(c) => Some(non_negative(c, reply::MUST_BE_POSITIVE)?),
        None => None,
    };
    let resp3 = ctx.resp3;
    let n = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    let popped = op_write(ctx, &args[1], false, |z| Ok(op_pop(z, max, n)))?.unwrap_or_default();
    // Each member comes with its score: two strings in the reply (the first
    // member rides with the key, as a single pop costs about one GET).
    ctx.count_extra(2 * popped.len());
    if !popped.is_empty() {
        let event = if max { "zpopmax" } else { "zpopmin" };
        ctx.notify_write(notify::ZSET, event, &args[1]);
    }
    Ok(pairs_reply(popped, resp3, count.is_none()))
}

/// A key and the members (with scores) popped from it.
type Popped = (Bytes, Vec<(Bytes, f64)>);

/// The first of `keys` holding a sorted set that a blocking command may
/// take from (`Ctx::may_serve`): pops up to `n` from it. WRONGTYPE on the
/// first key that exists with another type, as Redis checks them in order.
fn pop_first(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    max: bool,
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
        let popped = op_write(ctx, key, false, |z| Ok(op_pop(z, max, n)))?.unwrap_or_default();
        if !popped.is_empty() {
            ctx.count_extra(2 * popped.len());
            return Ok(Some((key.clone(), popped)));
        }
    }
    ctx.waits = blocking;
    Ok(None)
}

/// BZPOPMIN and BZPOPMAX key [key ...] timeout: one non-blocking attempt —
/// `[key, member, score]` from the first non-empty sorted set, else a null
/// array and the proxy waits for a write (see `flags::BLOCKING`).
pub fn bzpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    block_timeout_secs(&args[args.len() - 1])?;
    let max = is(&args[0], "bzpopmax");
    let keys = &args[1..args.len() - 1];
    Ok(match pop_first(ctx, keys, max, 1, true)? {
        Some((key, popped)) => {
            let mut out = vec![Reply::Bulk(key)];
            for (m, s) in popped {
                out.push(Reply::Bulk(m));
                out.push(Reply::Double(s));
            }
            Reply::Array(out)
        }
        None => Reply::NilArray,
    })
}

/// MIN or MAX: whether the high end.
fn min_max(arg: &[u8]) -> Option<bool> {
    if is(arg, "MIN") {
        Some(false)
    } else if is(arg, "MAX") {
        Some(true)
    } else {
        None
    }
}

/// ZMPOP's and BZMPOP's reply: `[key, [[member, score], ...]]` (nested in
/// RESP2 too), or a null array.
fn mpop_reply(popped: Option<Popped>) -> Reply {
    match popped {
        Some((key, pairs)) => Reply::Array(vec![Reply::Bulk(key), pairs_reply(pairs, true, false)]),
        None => Reply::NilArray,
    }
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
pub fn zmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (keys, max, count) = mpop_args(args, 1, min_max)?;
    Ok(mpop_reply(pop_first(ctx, keys, max, count, false)?))
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]: one attempt
/// of ZMPOP (the timeout is checked after the other arguments, as Redis).
pub fn bzmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (keys, max, count) = mpop_args(args, 2, min_max)?;
    block_timeout_secs(&args[1])?;
    Ok(mpop_reply(pop_first(ctx, keys, max, count, true)?))
}

/// ZRANDMEMBER key [count [WITHSCORES]]
pub fn zrandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let count = match args.get(2) {
        Some(c) => Some(random_count(c)?),
        None => None,
    };
    let withscores = match args.get(3) {
        Some(a) if is(a, "WITHSCORES") => true,
        Some(_) => return Err(OpError::Syntax),
        None => false,
    };
    if args.len() > 4 {
        return Err(OpError::Syntax);
    }
    let resp3 = ctx.resp3;
    let z = op_read(ctx, &args[1])?;
    let mut rng = rand::rng();
    // Picks are O(1): random arena positions (`ZSetValue::random`), or
    // entries of a packed set walked once.
    let Some(count) = count else {
        let pick = z.and_then(|z| z.random(&mut rng));
        return Ok(pick.map_or(Reply::Nil, |(m, _)| Reply::bulk_slice(m)));
    };
    let Some(z) = z.filter(|z| !z.is_empty()) else {
        return Ok(Reply::Array(Vec::new()));
    };
    let picks: Vec<(Bytes, f64)> = if count >= 0 && count as u64 >= z.len() as u64 {
        owned(z.iter())
    } else if count >= 0 {
        owned(z.random_distinct(&mut rng, count as usize).into_iter())
    } else {
        // Repeats share one copy of each member picked (keyed by where the
        // member's bytes are: each member is stored once).
        let mut copies: HashMap<usize, (Bytes, f64)> = HashMap::new();
        z.random_picks(&mut rng, count.unsigned_abs() as usize)
            .into_iter()
            .map(|(m, s)| {
                let p = copies
                    .entry(m.as_ptr() as usize)
                    .or_insert_with(|| (Bytes::copy_from_slice(m), s));
                p.clone()
            })
            .collect()
    };
    // A pick counts 1, its score 1 more, a pick in a cold set 1 more, and
    // a pick of a negative count 1 more (the shared copies' map), as
    // SRANDMEMBER's does.
    let cold = u64::from(z.mem_bytes() > COLD_PICK_BYTES);
    let repeats = u64::from(count < 0);
    ctx.work += picks.len() as u64 * (1 + u64::from(withscores) + cold + repeats);
    Ok(members_reply(picks, withscores, resp3))
}

/// How ZUNION/ZINTER and their STORE forms combine the scores of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn apply(self, acc: f64, v: f64) -> f64 {
        match self {
            // inf + -inf is NaN: Redis makes it 0.
            Aggregate::Sum => {
                let s = acc + v;
                if s.is_nan() { 0.0 } else { s }
            }
            Aggregate::Min => acc.min(v),
            Aggregate::Max => acc.max(v),
        }
    }
}

/// A source of the sorted-set algebra: a sorted set, or a set (scores 1).
enum Source<'a> {
    ZSet(&'a ZSetValue),
    Set(&'a crate::partition::SetValue),
}

impl Source<'_> {
    fn len(&self) -> usize {
        match self {
            Source::ZSet(z) => z.len(),
            Source::Set(s) => s.len(),
        }
    }

    fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            Source::ZSet(z) => z.score(m),
            Source::Set(s) => s.contains(m).then_some(1.0),
        }
    }

    /// Visits members until `f` returns false.
    fn walk(&self, mut f: impl FnMut(&[u8], f64) -> bool) {
        match self {
            Source::ZSet(z) => {
                for (m, s) in z.iter() {
                    if !f(m, s) {
                        return;
                    }
                }
            }
            Source::Set(s) => {
                for m in s.iter() {
                    if !f(m, 1.0) {
                        return;
                    }
                }
            }
        }
    }
}

/// Which combination of sorted sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZOp {
    Union,
    Inter,
    Diff,
}

/// What a sorted-set algebra command does with its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Stored under the destination key (the `*STORE` forms).
    Store,
    /// Replied (ZUNION, ZINTER, ZDIFF; WITHSCORES allowed).
    Reply,
    /// Only counted (ZINTERCARD; LIMIT allowed).
    Count,
}

/// A parsed ZUNION/ZINTER/ZDIFF[STORE]/ZINTERCARD call.
struct Algebra<'a> {
    keys: &'a [Bytes],
    weights: Vec<f64>,
    aggregate: Aggregate,
    withscores: bool,
    /// ZINTERCARD's LIMIT (0 = none).
    limit: u64,
}

/// Parses the keys (`numkeys` at `at`) and options of a sorted-set algebra
/// command in Redis's order: the key count, every source's type (a set or
/// a sorted set), then the options this form accepts.
fn parse_algebra<'a>(
    ctx: &mut Ctx<'_>,
    args: &'a [Bytes],
    at: usize,
    op: ZOp,
    output: Output,
) -> Result<Algebra<'a>, OpError> {
    let numkeys = int(&args[at])?;
    if numkeys < 1 {
        let name = super::lookup(&args[0]).map_or("", |c| c.name);
        return Err(OpError::Text(reply::needs_input_key(name)));
    }
    if numkeys as u64 > (args.len() - at - 1) as u64 {
        return Err(OpError::Syntax);
    }
    let keys = &args[at + 1..at + 1 + numkeys as usize];
    let now = ctx.now;
    for k in keys {
        match ctx.ks.get(k, now).map(|e| &e.value) {
            None | Some(Value::ZSet(_)) | Some(Value::Set(_)) => {}
            Some(_) => return Err(OpError::WrongType),
        }
    }
    let mut q = Algebra {
        keys,
        weights: vec![1.0; keys.len()],
        aggregate: Aggregate::Sum,
        withscores: false,
        limit: 0,
    };
    let scored = op != ZOp::Diff && output != Output::Count;
    let mut i = at + 1 + keys.len();
    while i < args.len() {
        let (a, remaining) = (&args[i], args.len() - i);
        if scored && remaining > keys.len() && is(a, "WEIGHTS") {
            for (w, a) in q.weights.iter_mut().zip(&args[i + 1..]) {
                *w = parse_f64(a).ok_or(OpError::Static(reply::WEIGHT_NOT_FLOAT))?;
            }
            i += 1 + keys.len();
        } else if scored && remaining >= 2 && is(a, "AGGREGATE") {
            let a = &args[i + 1];
            q.aggregate = if is(a, "SUM") {
                Aggregate::Sum
            } else if is(a, "MIN") {
                Aggregate::Min
            } else if is(a, "MAX") {
                Aggregate::Max
            } else {
                return Err(OpError::Syntax);
            };
            i += 2;
        } else if output == Output::Reply && is(a, "WITHSCORES") {
            q.withscores = true;
            i += 1;
        } else if output == Output::Count && remaining >= 2 && is(a, "LIMIT") {
            q.limit = non_negative(&args[i + 1], reply::LIMIT_NEGATIVE)?;
            i += 2;
        } else {
            return Err(OpError::Syntax);
        }
    }
    Ok(q)
}

/// The sources of `keys`, all borrowed at once (`None` for a missing key;
/// types were checked by [`parse_algebra`]).
fn peek_sources<'k>(ctx: &'k Ctx<'_>, keys: &[Bytes]) -> Vec<Option<Source<'k>>> {
    keys.iter()
        .map(|k| match ctx.ks.peek_live(k, ctx.now).map(|e| &e.value) {
            Some(Value::ZSet(z)) => Some(Source::ZSet(z)),
            Some(Value::Set(s)) => Some(Source::Set(s)),
            _ => None,
        })
        .collect()
}

/// A weighted score; NaN (0 * inf) is 0, as Redis.
fn weighted(s: f64, w: f64) -> f64 {
    let v = s * w;
    if v.is_nan() { 0.0 } else { v }
}

/// Bytes a result being built will be charged as a sorted set, against
/// the most it may take.
struct Budget {
    charge: Charge,
    limit: usize,
    oom: bool,
}

impl Budget {
    /// Counts a new member with its score (a union's may still change the
    /// size of a packed entry: the store checks the final charge); false
    /// (and `oom`) once past the limit.
    fn fits(&mut self, m: &[u8], score: f64) -> bool {
        self.charge.add(m, score);
        self.oom = self.charge.bytes() > self.limit;
        !self.oom
    }
}

/// Lookups of a member in another source that cost as much as one element
/// walked and combined (a lookup measured 0.04-0.07 GETs, like SINTERCARD's,
/// against 0.2-0.55 for an element combined and replied).
const PROBES_PER_ELEMENT: u64 = 6;

/// Combines the sources into members and scores sorted as a sorted set,
/// refused with OOM once they would take more than `limit` bytes as one
/// (before the member that would not fit is copied). Counts the elements
/// walked (twice in a union), a sixth of the lookups in other sources, and
/// for a stored result its members, also when refused.
fn op_algebra(
    ctx: &mut Ctx<'_>,
    q: &Algebra<'_>,
    op: ZOp,
    output: Output,
    limit: usize,
) -> Result<Vec<(Bytes, f64)>, OpError> {
    let sources = peek_sources(ctx, q.keys);
    let (mut walked, mut probes) = (0u64, 0u64);
    let mut budget = Budget {
        charge: Charge::default(),
        limit,
        oom: false,
    };
    let mut out: Vec<(Bytes, f64)> = Vec::new();
    match op {
        ZOp::Inter => {
            // Smallest first: every member of the result is in it.
            let present: Option<Vec<(&Source<'_>, f64)>> = sources
                .iter()
                .zip(&q.weights)
                .map(|(s, w)| s.as_ref().map(|s| (s, *w)))
                .collect();
            if let Some(mut present) = present {
                present.sort_by_key(|(s, _)| s.len());
                if let Some(((first, w0), rest)) = present.split_first() {
                    first.walk(|m, s| {
                        walked += 1;
                        let mut acc = weighted(s, *w0);
                        for (other, w) in rest {
                            probes += 1;
                            match other.score(m) {
                                Some(s) => acc = q.aggregate.apply(acc, weighted(s, *w)),
                                None => return true,
                            }
                        }
                        if !budget.fits(m, acc) {
                            return false;
                        }
                        out.push((Bytes::copy_from_slice(m), acc));
                        true
                    });
                }
            }
        }
        ZOp::Union => {
            let mut acc: HashMap<Bytes, f64> = HashMap::new();
            'sources: for (src, w) in sources.iter().zip(&q.weights) {
                let Some(src) = src else { continue };
                src.walk(|m, s| {
                    walked += 1;
                    let v = weighted(s, *w);
                    match acc.get_mut(m) {
                        Some(cur) => *cur = q.aggregate.apply(*cur, v),
                        None => {
                            if !budget.fits(m, v) {
                                return false;
                            }
                            acc.insert(Bytes::copy_from_slice(m), v);
                        }
                    }
                    true
                });
                if budget.oom {
                    break 'sources;
                }
            }
            // Each element walked is also a copy and a hash insert into the
            // scratch map: it counts twice.
            walked *= 2;
            let members = acc.len();
            out = if budget.oom {
                lazyfree::free(acc, members, budget.charge.bytes());
                Vec::new()
            } else {
                acc.into_iter().collect()
            };
        }
        ZOp::Diff => {
            // The first source's members (and scores) found in no other.
            if let Some(Some(first)) = sources.first() {
                first.walk(|m, s| {
                    walked += 1;
                    for other in sources[1..].iter().flatten() {
                        probes += 1;
                        if other.score(m).is_some() {
                            return true;
                        }
                    }
                    if !budget.fits(m, s) {
                        return false;
                    }
                    out.push((Bytes::copy_from_slice(m), s));
                    true
                });
            }
        }
    }
    // A stored result is also inserted into a sorted set: three more each,
    // as a new member ZADD inserts (hash entry, skip-list node, links).
    let stored = if output == Output::Store {
        3 * out.len() as u64
    } else {
        0
    };
    ctx.work += walked + probes / PROBES_PER_ELEMENT + stored;
    if budget.oom {
        let members = out.len();
        lazyfree::free(out, members, budget.charge.bytes());
        return Err(OpError::Static(reply::OOM));
    }
    out.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// ZUNIONSTORE/ZINTERSTORE/ZDIFFSTORE destination numkeys key [key ...]
/// [WEIGHTS weight [weight ...]] [AGGREGATE SUM|MIN|MAX] (no options for
/// ZDIFFSTORE): the result replaces the destination, whatever its type.
fn algebra_store(ctx: &mut Ctx<'_>, args: &[Bytes], op: ZOp) -> Result<Reply, OpError> {
    let q = parse_algebra(ctx, args, 2, op, Output::Store)?;
    let limit = ctx.room_for_store(&args[1]);
    let pairs = op_algebra(ctx, &q, op, Output::Store, limit)?;
    let event = match op {
        ZOp::Union => "zunionstore",
        ZOp::Inter => "zinterstore",
        ZOp::Diff => "zdiffstore",
    };
    store(ctx, &args[1], pairs, event)
}

/// ZUNION/ZINTER/ZDIFF numkeys key [key ...] [WEIGHTS ...] [AGGREGATE ...]
/// [WITHSCORES]: the result in order (pairs nested in RESP3).
fn algebra_reply(ctx: &mut Ctx<'_>, args: &[Bytes], op: ZOp) -> Result<Reply, OpError> {
    let q = parse_algebra(ctx, args, 1, op, Output::Reply)?;
    let pairs = op_algebra(ctx, &q, op, Output::Reply, usize::MAX)?;
    if q.withscores {
        // The score is a second string in the reply.
        ctx.work += pairs.len() as u64;
    }
    Ok(members_reply(pairs, q.withscores, ctx.resp3))
}

pub fn zunionstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    algebra_store(ctx, args, ZOp::Union)
}

pub fn zinterstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    algebra_store(ctx, args, ZOp::Inter)
}

pub fn zdiffstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    algebra_store(ctx, args, ZOp::Diff)
}

pub fn zunion(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    algebra_reply(ctx, args, ZOp::Union)
}

pub fn zinter(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    algebra_reply(ctx, args, ZOp::Inter)
}

pub fn zdiff(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    algebra_reply(ctx, args, ZOp::Diff)
}

/// ZINTERCARD numkeys key [key ...] [LIMIT limit]: the size of the
/// intersection, counting stopped at LIMIT (0 = no limit); nothing copied.
pub fn zintercard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let q = parse_algebra(ctx, args, 1, ZOp::Inter, Output::Count)?;
    let sources = peek_sources(ctx, q.keys);
    let Some(mut present) = sources
        .iter()
        .map(Option::as_ref)
        .collect::<Option<Vec<&Source<'_>>>>()
    else {
        return Ok(Reply::Int(0));
    };
    present.sort_by_key(|s| s.len());
    let (mut count, mut walked, mut probed) = (0u64, 0u64, 0u64);
    if let Some((first, rest)) = present.split_first() {
        first.walk(|m, _| {
            walked += 1;
            for other in rest {
                probed += 1;
                if other.score(m).is_none() {
                    return true;
                }
            }
            count += 1;
            q.limit == 0 || count < q.limit
        });
    }
    // Each member walked is looked up in the next source (SINTERCARD counts
    // it once): the count follows the lookups when there are more sources.
    ctx.work += walked.max(probed);
    Ok(Reply::Int(count as i64))
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]: scores as bulk strings;
/// a small sorted set whole (in order, as Redis; a packed one from any
/// cursor, as Redis returns a listpack), a larger one in steps of at most
/// COUNT * 10 arena positions visited (see [`scan_step`]).
pub fn zscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let opts = scan_opts(&args[2..], false, false)?;
    let Some(z) = op_read(ctx, &args[1])? else {
        return Ok(Reply::Array(vec![
            Reply::bulk("0"),
            Reply::Array(Vec::new()),
        ]));
    };
    let mut out = Vec::new();
    let mut keep = |(m, s): (&[u8], f64)| {
        let kept = opts.matches(m);
        if kept {
            out.push(Reply::bulk_slice(m));
            out.push(Reply::bulk(format_double(s)));
        }
        kept
    };
    let (next, walked) = if z.is_packed() || (opts.cursor == 0 && z.len() <= SCAN_WHOLE_UP_TO) {
        z.iter().for_each(|p| {
            keep(p);
        });
        (0, z.len() as u64)
    } else {
        scan_step(z.scan_positions(), opts.cursor, opts.count, |p| {
            z.at_position(p).is_some_and(&mut keep)
        })
    };
    // Visited and replied apart: a MATCH that keeps nothing pays its walk;
    // each member kept is a reply string and a formatted score.
    let kept = out.len() as u64 / 2;
    ctx.work += walked * SCAN_VISIT_MILLI + kept * (SCAN_REPLY_MILLI + SCAN_SCORE_MILLI);
    let cursor = itoa::Buffer::new().format(next).to_string();
    Ok(Reply::Array(vec![Reply::bulk(cursor), Reply::Array(out)]))
}

#[cfg(test)]
mod tests {
    use crate::cmd::test_util::{Harness, bulk, err, scan_to_end};
    use crate::partition::packed::PACKED_OVERHEAD;
    use crate::partition::value::{ENTRY_OVERHEAD, ZSET_MEMBER_OVERHEAD};
    use crate::resp::{Reply, reply};

    fn bulks(items: &[&str]) -> Reply {
        Reply::Array(items.iter().map(|s| bulk(s)).collect())
    }

    /// A RESP2-shaped WITHSCORES reply: member, score, member, score...
    fn scored(items: &[(&str, f64)]) -> Reply {
        Reply::Array(
            items
                .iter()
                .flat_map(|(m, s)| [bulk(m), Reply::Double(*s)])
                .collect(),
        )
    }

    fn abcd(h: &mut Harness) {
        h.run(&["zadd", "z", "1", "a", "2", "b", "3", "c", "4", "d"]);
    }

    #[test]
    fn zadd_flags_like_redis() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["zadd", "z", "1", "a", "2", "b"]), Reply::Int(2));
        assert_eq!(
            h.run(&["zadd", "z", "NX", "5", "a", "3", "c"]),
            Reply::Int(1)
        );
        assert_eq!(h.run(&["zscore", "z", "a"]), Reply::Double(1.0));
        assert_eq!(
            h.run(&["zadd", "z", "XX", "CH", "5", "a", "9", "new"]),
            Reply::Int(1)
        );
        assert_eq!(h.run(&["zscore", "z", "new"]), Reply::Nil);
        assert_eq!(
            h.run(&["zadd", "z", "GT", "CH", "4", "a", "3", "b"]),
            Reply::Int(1)
        );
        assert_eq!(h.run(&["zscore", "z", "a"]), Reply::Double(5.0));
        assert_eq!(h.run(&["zadd", "z", "LT", "CH", "1", "a"]), Reply::Int(1));
        assert_eq!(h.run(&["zadd", "z", "INCR", "2", "a"]), Reply::Double(3.0));
        assert_eq!(h.run(&["zadd", "z", "XX", "INCR", "1", "zz"]), Reply::Nil);
        assert_eq!(h.run(&["zadd", "z", "GT", "INCR", "-1", "a"]), Reply::Nil);
        assert_eq!(h.run(&["zadd", "z", "CH", "3", "a"]), Reply::Int(0));
        assert_eq!(h.run(&["zadd", "nokey", "XX", "1", "a"]), Reply::Int(0));
        assert_eq!(h.run(&["exists", "nokey"]), Reply::Int(0));
        assert_eq!(
            h.run(&["zadd", "z", "NX", "XX", "1", "a"]),
            err(reply::ZADD_NX_XX)
        );
        assert_eq!(
            h.run(&["zadd", "z", "GT", "LT", "1", "a"]),
            err(reply::ZADD_GT_LT_NX)
        );
        assert_eq!(
            h.run(&["zadd", "z", "GT", "NX", "1", "a"]),
            err(reply::ZADD_GT_LT_NX)
        );
        assert_eq!(
            h.run(&["zadd", "z", "INCR", "1", "a", "2", "b"]),
            err("ERR INCR option supports a single increment-element pair")
        );
        assert_eq!(h.run(&["zadd", "z", "NX", "1"]), err("ERR syntax error"));
        assert_eq!(
            h.run(&["zadd", "z", "1", "a", "2"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["zadd", "z", "x", "a"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            h.run(&["zadd", "z", "nan", "a"]),
            err("ERR value is not a valid float")
        );
        // A bad score anywhere means nothing is added.
        assert_eq!(
            h.run(&["zadd", "z", "1", "q", "x", "r"]),
            err(reply::NOT_FLOAT)
        );
        assert_eq!(h.run(&["zscore", "z", "q"]), Reply::Nil);
        assert_eq!(
            h.run(&["zincrby", "z", "inf", "a"]),
            Reply::Double(f64::INFINITY)
        );
        assert_eq!(
            h.run(&["zincrby", "z", "-inf", "a"]),
            err("ERR resulting score is not a number (NaN)")
        );
        assert_eq!(h.run(&["zincrby", "z", "x", "a"]), err(reply::NOT_FLOAT));
        assert_eq!(h.run(&["zincrby", "n", "2.5", "m"]), Reply::Double(2.5));
        assert_eq!(
            h.run(&["zmscore", "z", "a", "nope"]),
            Reply::Array(vec![Reply::Double(f64::INFINITY), Reply::Nil])
        );
        assert_eq!(
            h.run(&["zmscore", "nokey", "a"]),
            Reply::Array(vec![Reply::Nil])
        );
        assert_eq!(h.run(&["type", "z"]), Reply::status("zset"));
        h.run(&["set", "s", "x"]);
        assert_eq!(h.run(&["zadd", "s", "1", "a"]), err(reply::WRONGTYPE));
        assert_eq!(h.run(&["zscore", "s", "a"]), err(reply::WRONGTYPE));
    }

    #[test]
    fn ranks_counts_and_bytes() {
        let mut h = Harness::new();
        abcd(&mut h);
        assert_eq!(h.run(&["zcard", "z"]), Reply::Int(4));
        assert_eq!(h.run(&["zrank", "z", "c"]), Reply::Int(2));
        assert_eq!(h.run(&["zrevrank", "z", "c"]), Reply::Int(1));
        assert_eq!(
            h.run(&["zrank", "z", "c", "WITHSCORE"]),
            Reply::Array(vec![Reply::Int(2), Reply::Double(3.0)])
        );
        assert_eq!(h.run(&["zrank", "z", "zz"]), Reply::Nil);
        assert_eq!(h.run(&["zrank", "z", "zz", "withscore"]), Reply::NilArray);
        assert_eq!(
            h.run(&["zrank", "nokey", "a", "withscore"]),
            Reply::NilArray
        );
        assert_eq!(h.run(&["zrank", "z", "a", "foo"]), err("ERR syntax error"));
        assert_eq!(
            h.run(&["zrank", "z", "a", "withscore", "x"]),
            err("ERR wrong number of arguments for 'zrank' command")
        );
        assert_eq!(h.run(&["zcount", "z", "2", "3"]), Reply::Int(2));
        assert_eq!(h.run(&["zcount", "z", "(2", "+inf"]), Reply::Int(2));
        assert_eq!(h.run(&["zcount", "z", "-inf", "(1"]), Reply::Int(0));
        assert_eq!(
            h.run(&["zcount", "z", "x", "1"]),
            err("ERR min or max is not a float")
        );
        assert_eq!(h.run(&["zcount", "z", "(", "1"]), Reply::Int(1));
        assert_eq!(h.run(&["zcount", "z", " 2", "(3"]), Reply::Int(1));
        assert_eq!(
            h.run(&["zcount", "z", "2 ", "3"]),
            err("ERR min or max is not a float")
        );
        assert_eq!(h.run(&["zlexcount", "z", "-", "+"]), Reply::Int(4));
        assert_eq!(h.run(&["zlexcount", "z", "[b", "(d"]), Reply::Int(2));
        assert_eq!(
            h.run(&["zlexcount", "z", "b", "d"]),
            err("ERR min or max not valid string range item")
        );
        assert_eq!(
            h.ks.used_bytes(),
            // Packed: two length bytes, the member, and the score as one
            // byte (integral, below 128).
            1 + ENTRY_OVERHEAD + PACKED_OVERHEAD + 4 * (1 + 1 + 2)
        );
        // A member past 64 bytes moves the set to its skip list.
        let long = "x".repeat(65);
        h.run(&["zadd", "z", "0.5", &long]);
        assert_eq!(
            h.ks.used_bytes(),
            1 + ENTRY_OVERHEAD + 4 * (1 + ZSET_MEMBER_OVERHEAD) + (65 + ZSET_MEMBER_OVERHEAD)
        );
        assert_eq!(h.run(&["zrank", "z", &long]), Reply::Int(0));
        assert_eq!(h.run(&["zrem", "z", &long]), Reply::Int(1));
        assert_eq!(h.run(&["zrem", "z", "a", "b", "zz"]), Reply::Int(2));
        assert_eq!(h.run(&["zrem", "z", "c", "d"]), Reply::Int(2));
        assert_eq!(h.run(&["exists", "z"]), Reply::Int(0));
        assert_eq!(h.ks.used_bytes(), 0);
    }

    #[test]
    fn zrange_forms() {
        let mut h = Harness::new();
        abcd(&mut h);
        assert_eq!(
            h.run(&["zrange", "z", "0", "-1"]),
            bulks(&["a", "b", "c", "d"])
        );
        assert_eq!(h.run(&["zrange", "z", "1", "2", "REV"]), bulks(&["c", "b"]));
        assert_eq!(h.run(&["zrevrange", "z", "0", "0"]), bulks(&["d"]));
        assert_eq!(
            h.run(&["zrange", "z", "-9223372036854775808", "9223372036854775807"]),
            bulks(&["a", "b", "c", "d"])
        );
        assert_eq!(h.run(&["zrange", "z", "5", "9"]), bulks(&[]));
        assert_eq!(
            h.run(&["zrange", "z", "0", "1", "WITHSCORES"]),
            scored(&[("a", 1.0), ("b", 2.0)])
        );
        assert_eq!(
            h.run(&["zrange", "z", "(1", "3", "BYSCORE"]),
            bulks(&["b", "c"])
        );
        assert_eq!(
            h.run(&[
                "zrange", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "2"
            ]),
            bulks(&["c", "b"])
        );
        assert_eq!(
            h.run(&["zrangebyscore", "z", "-inf", "+inf", "LIMIT", "1", "-1"]),
            bulks(&["b", "c", "d"])
        );
        assert_eq!(
            h.run(&["zrangebyscore", "z", "-inf", "+inf", "LIMIT", "-1", "2"]),
            bulks(&[])
        );
        assert_eq!(
            h.run(&[
                "zrangebyscore",
                "z",
                "0",
                "9",
                "LIMIT",
                "9223372036854775807",
                "9223372036854775807"
            ]),
            bulks(&[])
        );
        assert_eq!(
            h.run(&["zrangebyscore", "z", "0", "9", "LIMIT", "0", "0"]),
            bulks(&[])
        );
        assert_eq!(
            h.run(&["zrevrangebyscore", "z", "3", "(1", "WITHSCORES"]),
            scored(&[("c", 3.0), ("b", 2.0)])
        );
        assert_eq!(h.run(&["zrevrangebyscore", "z", "1", "3"]), bulks(&[]));
        assert_eq!(h.run(&["zrangebylex", "z", "(a", "[c"]), bulks(&["b", "c"]));
        assert_eq!(
            h.run(&["zrevrangebylex", "z", "+", "-", "LIMIT", "0", "2"]),
            bulks(&["d", "c"])
        );
        assert_eq!(
            h.run(&["zrange", "z", "[c", "+", "BYLEX"]),
            bulks(&["c", "d"])
        );
        assert_eq!(h.run(&["zrange", "nokey", "0", "-1"]), bulks(&[]));
        assert_eq!(
            h.run(&["zrange", "z", "0", "-1", "LIMIT", "0", "1"]),
            err(reply::LIMIT_NEEDS_BY)
        );
        assert_eq!(
            h.run(&["zrange", "z", "-", "+", "BYLEX", "WITHSCORES"]),
            err(reply::WITHSCORES_BYLEX)
        );
        assert_eq!(
            h.run(&["zrange", "z", "x", "1", "BYSCORE"]),
            err(reply::MIN_MAX_NOT_FLOAT)
        );
        assert_eq!(
            h.run(&["zrange", "z", "a", "b", "BYLEX"]),
            err(reply::MIN_MAX_NOT_LEX)
        );
        assert_eq!(
            h.run(&["zrange", "z", "0", "-1", "foo"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["zrangebyscore", "z", "0", "1", "BYLEX"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["zrevrange", "z", "0", "1", "REV"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["zrangebyscore", "z", "0", "1", "LIMIT", "1"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["zrange", "z", "x", "1"]),
            err("ERR value is not an integer or out of range")
        );
        h.resp3 = true;
        assert_eq!(
            h.run(&["zrange", "z", "0", "0", "WITHSCORES"]),
            Reply::Array(vec![Reply::Array(vec![bulk("a"), Reply::Double(1.0)])])
        );
    }

    #[test]
    fn removals_and_pops() {
        let mut h = Harness::new();
        abcd(&mut h);
        assert_eq!(h.run(&["zremrangebyrank", "z", "0", "0"]), Reply::Int(1));
        assert_eq!(h.run(&["zremrangebyscore", "z", "(2", "3"]), Reply::Int(1));
        assert_eq!(h.run(&["zremrangebylex", "z", "-", "[b"]), Reply::Int(1));
        assert_eq!(h.run(&["zrange", "z", "0", "-1"]), bulks(&["d"]));
        assert_eq!(h.run(&["zremrangebyrank", "z", "5", "9"]), Reply::Int(0));
        assert_eq!(
            h.run(&["zremrangebyscore", "z", "x", "9"]),
            err(reply::MIN_MAX_NOT_FLOAT)
        );
        assert_eq!(h.run(&["zremrangebyrank", "z", "0", "-1"]), Reply::Int(1));
        assert_eq!(h.run(&["exists", "z"]), Reply::Int(0));
        abcd(&mut h);
        assert_eq!(
            h.run(&["zpopmin", "z"]),
            Reply::Array(vec![bulk("a"), Reply::Double(1.0)])
        );
        assert_eq!(
            h.run(&["zpopmax", "z", "2"]),
            scored(&[("d", 4.0), ("c", 3.0)])
        );
        assert_eq!(h.run(&["zpopmax", "z", "0"]), Reply::Array(vec![]));
        assert_eq!(h.run(&["zpopmin", "z", "-1"]), err(reply::MUST_BE_POSITIVE));
        assert_eq!(h.run(&["zpopmin", "z", "1", "2"]), err("ERR syntax error"));
        h.resp3 = true;
        assert_eq!(
            h.run(&["zpopmin", "z", "9223372036854775807"]),
            Reply::Array(vec![Reply::Array(vec![bulk("b"), Reply::Double(2.0)])])
        );
        assert_eq!(h.run(&["zpopmin", "z"]), Reply::Array(vec![]));
        assert_eq!(h.ks.used_bytes(), 0);
    }

    #[test]
    fn random_members() {
        let mut h = Harness::new();
        for i in 0..30 {
            h.run(&["zadd", "z", &i.to_string(), &format!("m{i}")]);
        }
        let Reply::Array(v) = h.run(&["zrandmember", "z", "5", "WITHSCORES"]) else {
            panic!()
        };
        assert_eq!(v.len(), 10);
        let Reply::Array(v) = h.run(&["zrandmember", "z", "-100"]) else {
            panic!()
        };
        assert_eq!(v.len(), 100);
        let Reply::Array(v) = h.run(&["zrandmember", "z", "100"]) else {
            panic!()
        };
        assert_eq!(v.len(), 30);
        assert!(matches!(h.run(&["zrandmember", "z"]), Reply::Bulk(_)));
        assert_eq!(h.run(&["zrandmember", "nokey"]), Reply::Nil);
        assert_eq!(h.run(&["zrandmember", "nokey", "1"]), Reply::Array(vec![]));
        assert_eq!(
            h.run(&["zrandmember", "z", "1", "foo"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["zrandmember", "z", "-9223372036854775808"]),
            err(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
            )
        );
    }

    #[test]
    fn union_and_intersection() {
        let mut h = Harness::new();
        h.run(&["zadd", "{k}a", "1", "x", "2", "y"]);
        h.run(&["zadd", "{k}b", "10", "y", "20", "z"]);
        h.run(&["sadd", "{k}s", "y", "w"]);
        assert_eq!(
            h.run(&[
                "zunionstore",
                "{k}d",
                "3",
                "{k}a",
                "{k}b",
                "{k}s",
                "WEIGHTS",
                "1",
                "2",
                "3"
            ]),
            Reply::Int(4)
        );
        assert_eq!(
            h.run(&["zrange", "{k}d", "0", "-1", "WITHSCORES"]),
            scored(&[("x", 1.0), ("w", 3.0), ("y", 25.0), ("z", 40.0)])
        );
        assert_eq!(
            h.run(&[
                "zinterstore",
                "{k}d",
                "2",
                "{k}a",
                "{k}b",
                "AGGREGATE",
                "MAX"
            ]),
            Reply::Int(1)
        );
        assert_eq!(
            h.run(&["zrange", "{k}d", "0", "-1", "WITHSCORES"]),
            scored(&[("y", 10.0)])
        );
        assert_eq!(
            h.run(&[
                "zinterstore",
                "{k}d",
                "3",
                "{k}a",
                "{k}b",
                "{k}s",
                "AGGREGATE",
                "min"
            ]),
            Reply::Int(1)
        );
        assert_eq!(h.run(&["zscore", "{k}d", "y"]), Reply::Double(1.0));
        assert_eq!(
            h.run(&["zinterstore", "{k}d", "2", "{k}a", "{k}nope"]),
            Reply::Int(0)
        );
        assert_eq!(h.run(&["exists", "{k}d"]), Reply::Int(0));
        h.run(&["zadd", "{k}p", "inf", "m"]);
        h.run(&["zadd", "{k}n", "-inf", "m"]);
        assert_eq!(
            h.run(&["zunionstore", "{k}d", "2", "{k}p", "{k}n"]),
            Reply::Int(1)
        );
        assert_eq!(h.run(&["zscore", "{k}d", "m"]), Reply::Double(0.0));
        assert_eq!(
            h.run(&["zunionstore", "{k}d", "1", "{k}p", "WEIGHTS", "0"]),
            Reply::Int(1)
        );
        assert_eq!(h.run(&["zscore", "{k}d", "m"]), Reply::Double(0.0));
        assert_eq!(
            h.run(&["zunionstore", "{k}d", "0", "{k}a"]),
            err("ERR at least 1 input key is needed for 'zunionstore' command")
        );
        assert_eq!(
            h.run(&["zunionstore", "{k}d", "2", "{k}a"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["zunionstore", "{k}d", "x", "{k}a"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["zunionstore", "{k}d", "1", "{k}a", "WEIGHTS", "x"]),
            err("ERR weight value is not a float")
        );
        assert_eq!(
            h.run(&["zunionstore", "{k}d", "1", "{k}a", "WEIGHTS", "1", "2"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["zunionstore", "{k}d", "1", "{k}a", "AGGREGATE", "avg"]),
            err("ERR syntax error")
        );
        h.run(&["set", "{k}str", "x"]);
        assert_eq!(
            h.run(&["zunionstore", "{k}d", "1", "{k}str", "foo"]),
            err(reply::WRONGTYPE)
        );
        // The destination may be a source, and may hold any type.
        assert_eq!(
            h.run(&["zunionstore", "{k}str", "2", "{k}a", "{k}str"]),
            err(reply::WRONGTYPE)
        );
        assert_eq!(
            h.run(&["zunionstore", "{k}a", "2", "{k}a", "{k}b"]),
            Reply::Int(3)
        );
        assert_eq!(
            h.run(&["zunionstore", "{k}str", "1", "{k}b"]),
            Reply::Int(2)
        );
        assert_eq!(h.run(&["type", "{k}str"]), Reply::status("zset"));
    }

    #[test]
    fn algebra_replies_and_cardinality() {
        let mut h = Harness::new();
        h.run(&["zadd", "{k}a", "1", "x", "2", "y", "3", "z"]);
        h.run(&["zadd", "{k}b", "10", "y", "20", "z", "30", "w"]);
        h.run(&["sadd", "{k}s", "y", "q"]);
        assert_eq!(
            h.run(&["zunion", "2", "{k}a", "{k}b", "WITHSCORES"]),
            scored(&[("x", 1.0), ("y", 12.0), ("z", 23.0), ("w", 30.0)])
        );
        assert_eq!(
            h.run(&["zinter", "3", "{k}a", "{k}b", "{k}s", "AGGREGATE", "MAX"]),
            bulks(&["y"])
        );
        assert_eq!(
            h.run(&["zdiff", "2", "{k}a", "{k}s", "WITHSCORES"]),
            scored(&[("x", 1.0), ("z", 3.0)])
        );
        assert_eq!(h.run(&["zdiff", "1", "{k}nope"]), bulks(&[]));
        assert_eq!(
            h.run(&["zdiff", "1", "{k}a", "WEIGHTS", "1"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["zinter", "0", "{k}a"]),
            err("ERR at least 1 input key is needed for 'zinter' command")
        );
        assert_eq!(h.run(&["zintercard", "2", "{k}a", "{k}b"]), Reply::Int(2));
        let all = h.last_work;
        assert_eq!(
            h.run(&["zintercard", "2", "{k}a", "{k}b", "LIMIT", "1"]),
            Reply::Int(1)
        );
        assert!(h.last_work < all, "LIMIT stops the walk");
        assert_eq!(
            h.run(&["zintercard", "2", "{k}a", "{k}b", "LIMIT", "-1"]),
            err(reply::LIMIT_NEGATIVE)
        );
        h.resp3 = true;
        assert_eq!(
            h.run(&["zinter", "2", "{k}a", "{k}b", "WITHSCORES"]),
            Reply::Array(vec![
                Reply::Array(vec![bulk("y"), Reply::Double(12.0)]),
                Reply::Array(vec![bulk("z"), Reply::Double(23.0)]),
            ])
        );
    }

    #[test]
    fn zrangestore_and_zdiffstore_stay_within_the_room() {
        let mut h = Harness::new();
        for i in 0..100 {
            h.run(&["zadd", "{z}a", &i.to_string(), &format!("a{i:02}")]);
        }
        let entry = 4 + ENTRY_OVERHEAD;
        // Packed results: 6 bytes a member (two length bytes, 3 bytes, a
        // one-byte score).
        let ten = PACKED_OVERHEAD + 10 * 6;
        let used = h.ks.used_bytes();
        h.room = (ten + entry - 1) as u64;
        let range = ["zrangestore", "{z}d", "{z}a", "0", "9"];
        assert_eq!(h.run(&range), err(reply::OOM));
        assert_eq!(h.run(&["exists", "{z}d"]), Reply::Int(0));
        assert_eq!(h.ks.used_bytes(), used);
        h.room += 1;
        assert_eq!(h.run(&range), Reply::Int(10));
        assert_eq!(
            h.run(&["zrange", "{z}d", "0", "1", "WITHSCORES"]),
            scored(&[("a00", 0.0), ("a01", 1.0)])
        );
        h.run(&["del", "{z}d"]);
        let diff = ["zdiffstore", "{z}d", "2", "{z}a", "{z}d"];
        h.room = (PACKED_OVERHEAD + 100 * 6 + entry - 1) as u64;
        assert_eq!(h.run(&diff), err(reply::OOM));
        assert_eq!(h.run(&["exists", "{z}d"]), Reply::Int(0));
        h.room += 1;
        assert_eq!(h.run(&diff), Reply::Int(100));
        // An empty result deletes the destination, whatever it held.
        h.room = u64::MAX;
        h.run(&["set", "{z}s", "x"]);
        assert_eq!(
            h.run(&["zrangestore", "{z}s", "{z}a", "(1000", "+inf", "BYSCORE"]),
            Reply::Int(0)
        );
        assert_eq!(h.run(&["exists", "{z}s"]), Reply::Int(0));
    }

    #[test]
    fn multi_pops_and_blocking_attempts() {
        let mut h = Harness::new();
        h.run(&["zadd", "{p}b", "1", "a", "2", "b", "3", "c"]);
        let nested = |key: &str, pairs: &[(&str, f64)]| {
            Reply::Array(vec![
                bulk(key),
                Reply::Array(
                    pairs
                        .iter()
                        .map(|(m, s)| Reply::Array(vec![bulk(m), Reply::Double(*s)]))
                        .collect(),
                ),
            ])
        };
        assert_eq!(
            h.run(&["zmpop", "2", "{p}a", "{p}b", "MAX", "COUNT", "2"]),
            nested("{p}b", &[("c", 3.0), ("b", 2.0)])
        );
        assert_eq!(
            h.run(&["bzmpop", "1", "1", "{p}b", "MIN", "COUNT", "9"]),
            nested("{p}b", &[("a", 1.0)])
        );
        assert_eq!(h.run(&["exists", "{p}b"]), Reply::Int(0));
        assert_eq!(h.ks.used_bytes(), 0);
        assert_eq!(h.run(&["zmpop", "1", "{p}b", "MIN"]), Reply::NilArray);
        assert_eq!(
            h.run(&["zmpop", "1", "{p}b", "MIN", "COUNT", "0"]),
            err(reply::COUNT_NOT_POSITIVE)
        );
        assert_eq!(
            h.run(&["bzmpop", "x", "1", "{p}b", "MIN", "COUNT", "0"]),
            err(reply::COUNT_NOT_POSITIVE),
            "the count is checked before the timeout"
        );
        // A key reserved for clients that blocked earlier is passed over
        // by a blocking attempt (not by ZMPOP).
        h.run(&["zadd", "{p}a", "1", "a"]);
        h.run(&["zadd", "{p}b", "5", "e"]);
        h.reserved = vec![Box::from(&b"{p}a"[..])];
        assert_eq!(
            h.run(&["bzpopmax", "{p}a", "{p}b", "0"]),
            Reply::Array(vec![bulk("{p}b"), bulk("e"), Reply::Double(5.0)])
        );
        assert_eq!(h.run(&["bzpopmin", "{p}a", "0"]), Reply::NilArray);
        assert_eq!(h.run(&["bzmpop", "0", "1", "{p}a", "MIN"]), Reply::NilArray);
        assert_eq!(
            h.run(&["zmpop", "1", "{p}a", "MIN"]),
            nested("{p}a", &[("a", 1.0)])
        );
    }

    #[test]
    fn zscan_walks_everything() {
        let mut h = Harness::new();
        for i in 0..60 {
            h.run(&["zadd", "z", &format!("{i}.5"), &format!("m{i}")]);
        }
        let mut cursor = "0".to_string();
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let Reply::Array(parts) = h.run(&["zscan", "z", &cursor, "COUNT", "7"]) else {
                panic!()
            };
            let (Reply::Bulk(c), Reply::Array(items)) = (&parts[0], &parts[1]) else {
                panic!()
            };
            for pair in items.chunks(2) {
                assert!(matches!(pair[1], Reply::Bulk(_)));
                assert!(seen.insert(format!("{:?}", pair[0])));
            }
            cursor = String::from_utf8(c.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 60);
        let Reply::Array(parts) = h.run(&["zscan", "z", "0", "MATCH", "m1", "COUNT", "100"]) else {
            panic!()
        };
        assert_eq!(parts[1], Reply::Array(vec![bulk("m1"), bulk("1.5")]));
    }

    #[test]
    fn copy_is_independent() {
        let mut h = Harness::new();
        h.run(&["zadd", "{c}a", "1", "x", "2", "y"]);
        let one = h.ks.used_bytes();
        assert_eq!(h.run(&["copy", "{c}a", "{c}b"]), Reply::Int(1));
        assert_eq!(h.ks.used_bytes(), 2 * one);
        h.run(&["zadd", "{c}b", "0", "y"]);
        assert_eq!(h.run(&["zrange", "{c}a", "0", "-1"]), bulks(&["x", "y"]));
        assert_eq!(h.run(&["zrange", "{c}b", "0", "-1"]), bulks(&["y", "x"]));
        assert_eq!(h.run(&["zscore", "{c}a", "y"]), Reply::Double(2.0));
        h.run(&["del", "{c}a", "{c}b"]);
        assert_eq!(h.ks.used_bytes(), 0);
    }

    #[test]
    fn stored_results_stay_within_the_room() {
        let mut h = Harness::new();
        for i in 0..100 {
            h.run(&["zadd", "{z}a", "1", &format!("a{i:02}")]);
            h.run(&["zadd", "{z}b", "1", &format!("b{i:02}")]);
        }
        let result = 200 * (3 + ZSET_MEMBER_OVERHEAD);
        let entry = 4 + ENTRY_OVERHEAD;
        let used = h.ks.used_bytes();
        h.room = (result + entry - 1) as u64;
        let union = ["zunionstore", "{z}d", "2", "{z}a", "{z}b"];
        assert_eq!(h.run(&union), err(reply::OOM));
        assert_eq!(h.run(&["exists", "{z}d"]), Reply::Int(0));
        assert_eq!(h.ks.used_bytes(), used);
        h.room = (result + entry) as u64;
        assert_eq!(h.run(&union), Reply::Int(200));
        h.run(&["del", "{z}d"]);
        // 100 members: packed, 6 bytes each (scores 2).
        h.room = (PACKED_OVERHEAD + 100 * 6 + entry - 1) as u64;
        let inter = ["zinterstore", "{z}d", "2", "{z}a", "{z}a"];
        assert_eq!(h.run(&inter), err(reply::OOM));
        assert_eq!(h.run(&["exists", "{z}d"]), Reply::Int(0));
        h.room += 1;
        assert_eq!(h.run(&inter), Reply::Int(100));
    }

    /// ZSCAN counts the members it visits and replies (with their
    /// formatted scores) apart.
    /// A cursor left from a big set's scan, used on a small set under the
    /// same key: a packed set is returned whole, in order, cursor 0.
    #[test]
    fn zscan_of_a_packed_set_from_any_cursor_is_whole() {
        let mut h = Harness::new();
        for i in 0..200 {
            h.run(&["zadd", "z", &i.to_string(), &format!("m{i}")]);
        }
        let Reply::Array(parts) = h.run(&["zscan", "z", "0", "COUNT", "10"]) else {
            panic!()
        };
        let cursor = parts[0].clone();
        assert_ne!(cursor, bulk("0"));
        h.run(&["del", "z"]);
        h.run(&["zadd", "z", "2", "b", "1", "a", "1.5", "c"]);
        let Reply::Bulk(c) = cursor else { panic!() };
        let c = String::from_utf8(c.to_vec()).unwrap();
        for cursor in [c.as_str(), "1", "18446744073709551615"] {
            assert_eq!(
                h.run(&["zscan", "z", cursor, "COUNT", "1"]),
                Reply::Array(vec![bulk("0"), bulks(&["a", "1", "c", "1.5", "b", "2"])]),
                "cursor {cursor}"
            );
        }
    }

    #[test]
    fn zscan_counts_visits_and_replies_apart() {
        use crate::cmd::table::{SCAN_REPLY_MILLI, SCAN_SCORE_MILLI, SCAN_VISIT_MILLI};
        let mut h = Harness::new();
        for i in 0..1000 {
            h.run(&["zadd", "z", &i.to_string(), &format!("m{i}")]);
        }
        h.run(&["zscan", "z", "0", "MATCH", "nomatch", "COUNT", "10"]);
        assert_eq!(h.last_work, 100 * SCAN_VISIT_MILLI);
        h.run(&["zscan", "z", "0", "COUNT", "10"]);
        assert_eq!(
            h.last_work,
            10 * (SCAN_VISIT_MILLI + SCAN_REPLY_MILLI + SCAN_SCORE_MILLI)
        );
    }

    /// ZSCAN in steps while members come and go, including a mass removal
    /// that compacts the arena mid-scan: every stable member is returned.
    #[test]
    fn zscan_steps_keep_stable_members_through_changes_and_compaction() {
        let mut h = Harness::new();
        // Scores out of insertion order: rank order differs from arena order.
        for i in 0..2000 {
            let score = (i * 7919) % 2000;
            h.run(&["zadd", "z", &score.to_string(), &format!("stable:{i}")]);
        }
        let Reply::Array(parts) = h.run(&["zscan", "z", "0", "MATCH", "nomatch", "COUNT", "10"])
        else {
            panic!()
        };
        assert_eq!(parts, vec![bulk("1900"), Reply::Array(vec![])]);
        let mut churn = 0;
        let (names, calls) = scan_to_end(&mut h, &["zscan", "z"], &["COUNT", "5"], 2, |h, call| {
            if call < 75 {
                for _ in 0..40 {
                    h.run(&["zadd", "z", "1e9", &format!("churn:{churn}")]);
                    churn += 1;
                }
            } else if call == 75 {
                // 3000 removed of 5000: the arena compacts.
                assert_eq!(
                    h.run(&["zremrangebyscore", "z", "1e9", "1e9"]),
                    Reply::Int(3000)
                );
            } else if call % 7 == 0 {
                // Score changes move members in the order, not in the arena.
                h.run(&["zincrby", "z", "0.5", &format!("stable:{call}")]);
            }
        });
        let seen: std::collections::HashSet<String> = names.into_iter().collect();
        for i in 0..2000 {
            assert!(seen.contains(&format!("stable:{i}")), "stable:{i} missed");
        }
        assert!(calls > 100, "{calls} calls");
    }
}
