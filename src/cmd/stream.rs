//! Stream commands: XADD (with trimming), XLEN, XRANGE/XREVRANGE, XDEL,
//! XTRIM, XREAD, and consumer groups (XGROUP, XREADGROUP, XACK, XPENDING,
//! XCLAIM, XAUTOCLAIM), plus XINFO STREAM/GROUPS/CONSUMERS.
//!
//! Storage is [`StreamValue`]. Streams may exist empty (XDEL, MKSTREAM), as
//! in Redis. XREAD and XREADGROUP accept BLOCK but never block here: they
//! answer at once, as a blocking read whose timeout expired would (blocking
//! lives with the connection layer, which retries them with
//! [`Ctx::still_blocked`] after a write of their keys). Handlers add to
//! `ctx.work` what their reply holds ([`reply_work`]: an entry with two
//! field-value pairs is 7), and the entries they trim or walk without
//! replying them.

use bytes::Bytes;

use super::args::{int, is, parse_i64};
use super::{Ctx, OpError, notify};
use crate::partition::stream::{
    AddError, AutoClaimOpts, ClaimOpts, Fields, Group, IdSpec, Log, Pending, StreamId, Trim,
};
use crate::partition::{Keyspace, StreamValue, Value};
use crate::resp::{Reply, reply};

/// Default LIMIT of an approximate (`~`) trim, as Redis's: 100 nodes of
/// stream-node-max-entries, at most 1,000,000 entries, and 10,000 when nodes
/// have no entry limit.
fn approx_trim_limit(node_entries: u64) -> usize {
    match node_entries {
        0 => 10_000,
        n => n.saturating_mul(100).min(1_000_000) as usize,
    }
}
/// Default XAUTOCLAIM COUNT, and how many PEL entries it may examine per claim.
const AUTOCLAIM_COUNT: usize = 100;
/// Default COUNT of XINFO STREAM FULL.
const XINFO_FULL_COUNT: usize = 10;
/// Steps (the table's per-element cost each) XADD counts for the entry it
/// appends, beyond the key (see `xadd`).
const XADD_ENTRY_STEPS: u64 = 5;

fn invalid_id() -> OpError {
    OpError::Static(reply::STREAM_ID_INVALID)
}

/// Decimal digits only, as an unsigned 64-bit number.
fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// An ID argument: `<ms>-<seq>`, or `<ms>` (sequence `missing_seq`); unless
/// `strict`, also `-` (0-0) and `+` (the largest ID).
fn parse_id(arg: &[u8], missing_seq: u64, strict: bool) -> Result<StreamId, OpError> {
    if arg.len() > 127 {
        return Err(invalid_id());
    }
    match arg {
        b"-" if !strict => return Ok(StreamId::ZERO),
        b"+" if !strict => return Ok(StreamId::MAX),
        _ => {}
    }
    let (ms, seq) = match arg.iter().position(|&b| b == b'-') {
        Some(i) => (&arg[..i], Some(&arg[i + 1..])),
        None => (arg, None),
    };
    let ms = parse_u64(ms).ok_or_else(invalid_id)?;
    let seq = match seq {
        Some(s) => parse_u64(s).ok_or_else(invalid_id)?,
        None => missing_seq,
    };
    Ok(StreamId::new(ms, seq))
}

fn parse_strict(arg: &[u8]) -> Result<StreamId, OpError> {
    parse_id(arg, 0, true)
}

/// The start of an interval: `-`, an ID, or `(ID` (exclusive).
fn range_start(arg: &[u8]) -> Result<StreamId, OpError> {
    match arg.split_first() {
        Some((b'(', rest)) if !rest.is_empty() => parse_id(rest, 0, true)?
            .next()
            .ok_or(OpError::Static(reply::INVALID_START_ID)),
        _ => parse_id(arg, 0, false),
    }
}

/// The end of an interval: `+`, an ID (sequence defaults to the largest),
/// or `(ID` (exclusive).
fn range_end(arg: &[u8]) -> Result<StreamId, OpError> {
    match arg.split_first() {
        Some((b'(', rest)) if !rest.is_empty() => parse_id(rest, u64::MAX, true)?
            .prev()
            .ok_or(OpError::Static(reply::INVALID_END_ID)),
        _ => parse_id(arg, u64::MAX, false),
    }
}

/// The stream under `key` for reading (see [`super::read_as`]).
fn op_read<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<Option<&'a StreamValue>, OpError> {
    super::read_as(ctx, key)
}

/// Runs `f` on the stream under `key` (see [`super::write_as`]).
fn op_write<T>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut StreamValue) -> Result<T, OpError>,
) -> Result<Option<T>, OpError> {
    super::write_as(ctx, key, create, f)
}

/// The work of building a reply, in the unit stream commands are metered
/// in: one per string, number and array in it (an entry `[id, [f, v, f,
/// v]]` is 7; measured about 0.2 GET each).
fn reply_work(r: &Reply) -> u64 {
    match r {
        Reply::Array(items) | Reply::Set(items) => 1 + items.iter().map(reply_work).sum::<u64>(),
        Reply::Map(pairs) => {
            1 + pairs
                .iter()
                .map(|(k, v)| reply_work(k) + reply_work(v))
                .sum::<u64>()
        }
        _ => 1,
    }
}

fn id_reply(id: StreamId) -> Reply {
    Reply::bulk(id.to_string())
}

fn fields_reply(fields: &Fields) -> Reply {
    Reply::Array(fields.iter().map(Reply::bulk_slice).collect())
}

/// `[id, [field, value, ...]]`, or `[id, nil]` for an entry no longer there.
fn entry_reply(id: StreamId, fields: Option<&Fields>) -> Reply {
    Reply::Array(vec![
        id_reply(id),
        fields.map_or(Reply::NilArray, fields_reply),
    ])
}

fn entries_reply<'a>(entries: impl Iterator<Item = (StreamId, &'a Fields)>) -> Reply {
    Reply::Array(entries.map(|(id, f)| entry_reply(id, Some(f))).collect())
}

/// XADD/XTRIM arguments after the key.
struct AddOrTrim {
    trim: Option<Trim>,
    /// `~`: whole blocks only (see [`Log::trim`]).
    approx: bool,
    /// Most entries a trim removes (0 = no limit).
    limit: usize,
    nomkstream: bool,
    id: IdSpec,
    /// Where XADD's field-value pairs start.
    fields_at: usize,
}

/// Parses `[NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] id`
/// (XADD) or `MAXLEN|MINID [=|~] threshold [LIMIT count]` (XTRIM), as Redis's
/// `streamParseAddOrTrimArgsOrReply`.
fn parse_add_or_trim(args: &[Bytes], xadd: bool, node_entries: u64) -> Result<AddOrTrim, OpError> {
    let mut out = AddOrTrim {
        trim: None,
        approx: false,
        limit: 0,
        nomkstream: false,
        id: IdSpec::Auto,
        fields_at: args.len(),
    };
    let (mut approx, mut limit) = (false, None);
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let a = &args[i];
        if xadd && &a[..] == b"*" {
            break;
        } else if (is(a, "MAXLEN") || is(a, "MINID")) && more > 0 {
            if out.trim.is_some() {
                return Err(OpError::Static(reply::MAXLEN_AND_MINID));
            }
            approx = false;
            let next = &args[i + 1][..];
            if more >= 2 && (next == b"~" || next == b"=") {
                approx = next == b"~";
                i += 1;
            }
            let v = &args[i + 1];
            out.trim = Some(if is(a, "MAXLEN") {
                let n = int(v)?;
                if n < 0 {
                    return Err(OpError::Static(reply::MAXLEN_NOT_POSITIVE));
                }
                Trim::MaxLen(n as u64)
            } else {
                Trim::MinId(parse_strict(v)?)
            });
            i += 1;
        } else if is(a, "LIMIT") && more > 0 {
            let n = int(&args[i + 1])?;
            if n < 0 {
                return Err(OpError::Static(reply::TRIM_LIMIT_NEGATIVE));
            }
            limit = Some(usize::try_from(n).unwrap_or(usize::MAX));
            i += 1;
        } else if xadd && is(a, "NOMKSTREAM") {
            out.nomkstream = true;
        } else if xadd {
            out.id = parse_xadd_id(a)?;
            break;
        } else {
            return Err(OpError::Syntax);
        }
        i += 1;
    }
    out.fields_at = i + 1;
    if limit.is_some_and(|l| l > 0) && out.trim.is_none() {
        return Err(OpError::Static(reply::TRIM_LIMIT_WITHOUT_STRATEGY));
    }
    if !xadd && out.trim.is_none() {
        return Err(OpError::Static(reply::XTRIM_NO_STRATEGY));
    }
    out.approx = approx;
    out.limit = match (limit, approx) {
        (Some(_), false) => return Err(OpError::Static(reply::TRIM_LIMIT_WITHOUT_TILDE)),
        (Some(l), true) => l,
        (None, true) => approx_trim_limit(node_entries),
        (None, false) => 0,
    };
    Ok(out)
}

/// XADD's ID: `*`, `<ms>-*`, `<ms>-<seq>` or `<ms>`.
fn parse_xadd_id(arg: &[u8]) -> Result<IdSpec, OpError> {
    if arg == b"*" {
        return Ok(IdSpec::Auto);
    }
    if let Some(ms) = arg.strip_suffix(b"-*") {
        return parse_u64(ms).map(IdSpec::AutoSeq).ok_or_else(invalid_id);
    }
    parse_strict(arg).map(IdSpec::Explicit)
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [...]
pub fn xadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let node_entries = ctx.encoding.stream_node_entries;
    let p = parse_add_or_trim(args, true, node_entries)?;
    let fields = args.get(p.fields_at..).unwrap_or_default();
    if fields.is_empty() || !fields.len().is_multiple_of(2) {
        return Err(OpError::Arity("xadd"));
    }
    if p.id == IdSpec::Explicit(StreamId::ZERO) {
        return Err(OpError::Static(reply::XADD_ID_ZERO));
    }
    let now = ctx.now;
    let added = op_write(ctx, &args[1], !p.nomkstream, |s| {
        let log = s.log_mut();
        if log.last_id() == StreamId::MAX {
            return Err(OpError::Static(reply::STREAM_EXHAUSTED));
        }
        let id = log.next_id(p.id, now).map_err(|e| match e {
            AddError::NotGreater => OpError::Static(reply::XADD_ID_TOO_SMALL),
            AddError::Zero => OpError::Static(reply::XADD_ID_ZERO),
            AddError::Exhausted => OpError::Static(reply::STREAM_EXHAUSTED),
        })?;
        log.append_in_nodes(id, Fields::encode(fields), node_entries);
        let trimmed = p.trim.map_or(0, |t| log.trim(t, p.limit, p.approx));
        Ok((id, trimmed))
    })?;
    let Some((id, trimmed)) = added else {
        return Ok(Reply::Nil);
    };
    // An entry appended costs more than the key alone: its ID generated
    // and formatted, its fields encoded into a node (XADD of one field
    // measured 1.2-2.2 GETs, each further field 0.05-0.1): five steps
    // (0.5 ECPU) for the entry, one per field beyond the first.
    ctx.work += trimmed as u64 + XADD_ENTRY_STEPS;
    ctx.count_extra(fields.len() / 2);
    ctx.notify(notify::STREAM, "xadd", &args[1]);
    if trimmed > 0 {
        ctx.notify(notify::STREAM, "xtrim", &args[1]);
    }
    Ok(id_reply(id))
}

pub fn xlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    Ok(Reply::Int(
        op_read(ctx, &args[1])?.map_or(0, |s| s.log().len() as i64),
    ))
}

/// XRANGE key start end [COUNT n] and XREVRANGE key end start [COUNT n]
pub fn xrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let rev = is(&args[0], "xrevrange");
    let (start, end) = if rev {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let (start, end) = (range_start(start)?, range_end(end)?);
    let mut count = None;
    let mut i = 4;
    while i < args.len() {
        match args.get(i + 1) {
            Some(n) if is(&args[i], "COUNT") => count = Some(int(n)?.max(0) as u64),
            _ => return Err(OpError::Syntax),
        }
        i += 2;
    }
    let Some(s) = op_read(ctx, &args[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    if count == Some(0) {
        return Ok(Reply::NilArray);
    }
    let take = count.map_or(usize::MAX, |c| usize::try_from(c).unwrap_or(usize::MAX));
    let range = s.log().range(start, end);
    let reply = if rev {
        entries_reply(range.rev().take(take))
    } else {
        entries_reply(range.take(take))
    };
    ctx.work += reply_work(&reply);
    Ok(reply)
}

/// XDEL key id [id ...]
pub fn xdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    if op_read(ctx, &args[1])?.is_none() {
        return Ok(Reply::Int(0));
    }
    let ids = args[2..]
        .iter()
        .map(|a| parse_strict(a))
        .collect::<Result<Vec<_>, _>>()?;
    let deleted = op_write(ctx, &args[1], false, |s| {
        Ok(ids.iter().filter(|id| s.log_mut().delete(**id)).count())
    })?;
    // An entry deleted counts three times: found in the log's index, then
    // unlinked from its node (calibration: 1.4-2.1 at twice, the GET unit
    // 190-210 ns with link-time optimisation).
    ctx.count_extra(3 * ids.len());
    if deleted.unwrap_or(0) > 0 {
        ctx.notify(notify::STREAM, "xdel", &args[1]);
    }
    Ok(Reply::Int(deleted.unwrap_or(0) as i64))
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
pub fn xtrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let p = parse_add_or_trim(args, false, ctx.encoding.stream_node_entries)?;
    let removed = op_write(ctx, &args[1], false, |s| {
        Ok(p.trim.map_or(0, |t| s.log_mut().trim(t, p.limit, p.approx)))
    })?
    .unwrap_or(0);
    ctx.work += removed as u64;
    if removed > 0 {
        ctx.notify(notify::STREAM, "xtrim", &args[1]);
    }
    Ok(Reply::Int(removed as i64))
}

/// Where an XREAD/XREADGROUP stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadFrom {
    /// Entries after this ID (XREAD; XREADGROUP history).
    After(StreamId),
    /// `>`: entries never delivered to the group.
    New,
}

/// XREAD [COUNT n] [BLOCK ms] STREAMS key [key ...] id [id ...] and
/// XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS key [key ...] id [id ...].
/// BLOCK is parsed and checked, then the read answers at once.
pub fn xread(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let group_read = is(&args[0], "xreadgroup");
    // Phase 1: options, as Redis's xreadCommand parses them.
    let (mut count, mut noack, mut group) = (0u64, false, None);
    let mut streams_at = None;
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let a = &args[i];
        if is(a, "BLOCK") && more > 0 {
            let t = parse_i64(&args[i + 1]).ok_or(OpError::Static(reply::TIMEOUT_NOT_INTEGER))?;
            if t < 0 {
                return Err(OpError::Static(reply::TIMEOUT_NEGATIVE));
            }
            i += 1;
        } else if is(a, "COUNT") && more > 0 {
            count = int(&args[i + 1])?.max(0) as u64;
            i += 1;
        } else if is(a, "STREAMS") && more > 0 {
            if !(args.len() - i - 1).is_multiple_of(2) {
                return Err(OpError::Static(reply::UNBALANCED_STREAMS));
            }
            streams_at = Some(i + 1);
            break;
        } else if is(a, "GROUP") && more >= 2 {
            if !group_read {
                return Err(OpError::Static(reply::XREAD_GROUP));
            }
            group = Some((&args[i + 1], &args[i + 2]));
            i += 2;
        } else if is(a, "NOACK") {
            if !group_read {
                return Err(OpError::Static(reply::XREAD_NOACK));
            }
            noack = true;
        } else {
            return Err(OpError::Syntax);
        }
        i += 1;
    }
    let Some(at) = streams_at else {
        return Err(OpError::Syntax);
    };
    if group_read && group.is_none() {
        return Err(OpError::Static(reply::XREADGROUP_NO_GROUP));
    }
    let n = (args.len() - at) / 2;
    let (keys, ids) = (&args[at..at + n], &args[at + n..]);
    let count = if count == 0 {
        usize::MAX
    } else {
        usize::try_from(count).unwrap_or(usize::MAX)
    };
    // Phase 2: each key's type (and group), each start ID.
    // A retry of a blocked read (Redis's serveClientsBlockedOnStreamKey):
    // XREAD keeps waiting on a key that now holds another type; XREADGROUP
    // fails once its key or its group is gone.
    let retry = ctx.still_blocked;
    let mut starts = Vec::with_capacity(n);
    // `$` as each stream's last ID now: what a blocked client waits after.
    let mut resume: Option<Vec<Bytes>> = None;
    for (key, id) in keys.iter().zip(ids) {
        let s = match op_read(ctx, key) {
            Err(OpError::WrongType) if retry && group_read => {
                return Err(OpError::Static(reply::XREADGROUP_KEY_GONE));
            }
            Err(OpError::WrongType) if retry => None,
            other => other?,
        };
        if let Some((g, _)) = group {
            match s {
                None if retry => return Err(OpError::Static(reply::XREADGROUP_KEY_GONE)),
                Some(s) if retry && s.group(g).is_none() => {
                    return Err(OpError::Static(reply::XREADGROUP_GROUP_GONE));
                }
                Some(s) if s.group(g).is_some() => {}
                _ => return Err(OpError::Text(reply::nogroup_xreadgroup(key, g))),
            }
        }
        let from = match &id[..] {
            b"$" if group_read => return Err(OpError::Static(reply::XREADGROUP_DOLLAR)),
            b"$" => {
                let last = s.map_or(StreamId::ZERO, |s| s.log().last_id());
                let id_at = at + n + starts.len();
                resume.get_or_insert_with(|| args.to_vec())[id_at] = Bytes::from(last.to_string());
                ReadFrom::After(last)
            }
            b">" if !group_read => return Err(OpError::Static(reply::XREAD_GT)),
            b">" => ReadFrom::New,
            _ => ReadFrom::After(parse_strict(id)?),
        };
        starts.push(from);
    }
    // Phase 3: serve every stream that has something (history always); a
    // blocked client is served from one stream, as Redis serves it from the
    // key that woke it.
    let now = ctx.now;
    let mut served: Vec<(Reply, Reply)> = Vec::new();
    for (key, from) in keys.iter().zip(starts) {
        if retry && !served.is_empty() {
            break;
        }
        let entries = match group {
            None => {
                let ReadFrom::After(after) = from else {
                    continue;
                };
                let Some(Value::Stream(s)) = ctx.ks.peek_live(key, now).map(|e| &e.value) else {
                    continue;
                };
                let Some(start) = after.next() else {
                    continue;
                };
                let items: Vec<Reply> = s
                    .log()
                    .range(start, StreamId::MAX)
                    .take(count)
                    .map(|(id, f)| entry_reply(id, Some(f)))
                    .collect();
                if items.is_empty() {
                    continue;
                }
                items
            }
            Some((g, consumer)) => {
                let (read, created) = op_write(ctx, key, false, |s| {
                    let before = consumer_count(s, g);
                    let ids = s
                        .group_mut(g, |grp, log| match from {
                            ReadFrom::New => grp.read_new(log, consumer, count, noack, now),
                            ReadFrom::After(after) => grp.read_history(consumer, after, count, now),
                        })
                        .unwrap_or_default();
                    let created = consumer_count(s, g) > before;
                    let log = s.log();
                    let read = ids
                        .into_iter()
                        .map(|id| entry_reply(id, log.get(id)))
                        .collect::<Vec<_>>();
                    Ok((read, created))
                })?
                .unwrap_or_default();
                if created {
                    ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
                }
                if read.is_empty() && from == ReadFrom::New {
                    continue;
                }
                if from != ReadFrom::New {
                    // A pending entry is looked up by ID, not walked to: three
                    // units more than an entry read in order (calibrated with
                    // XREADGROUP of 100 pending entries).
                    ctx.work += 3 * read.len() as u64;
                }
                read
            }
        };
        ctx.work += entries.iter().map(reply_work).sum::<u64>();
        served.push((Reply::Bulk(key.clone()), Reply::Array(entries)));
    }
    // Nothing to read: a blocked reader waits on.
    ctx.waits = served.is_empty();
    if ctx.waits {
        ctx.resume = resume;
    }
    Ok(if served.is_empty() {
        Reply::NilArray
    } else if ctx.resp3 {
        Reply::Map(served)
    } else {
        Reply::Array(
            served
                .into_iter()
                .map(|(k, v)| Reply::Array(vec![k, v]))
                .collect(),
        )
    })
}

/// The first look of a blocking XREAD/XREADGROUP, O(keys · log n) and
/// read only, so the connection layer runs it inline as the command
/// arrives (Redis resolves `$` and decides to block at that instant, before
/// any later command of another client). Returns the arguments with each
/// `$` replaced by its stream's last ID (0-0 for a missing key, or one of
/// another type: the full command answers WRONGTYPE if it still is), and
/// whether the read is valid and finds nothing (the client blocks now, no
/// first attempt needed). `None` if the arguments do not parse (the full
/// command gives the error).
pub fn blocked_read_start(ks: &Keyspace, args: &[Bytes], now: u64) -> Option<(Vec<Bytes>, bool)> {
    let group_read = is(&args[0], "xreadgroup");
    let (mut group, mut streams_at, mut i) = (None, None, 1);
    while i < args.len() {
        let more = args.len() - 1 - i;
        let a = &args[i];
        if is(a, "BLOCK") && more > 0 {
            i += 1;
        } else if is(a, "COUNT") && more > 0 {
            int(&args[i + 1]).ok()?;
            i += 1;
        } else if is(a, "STREAMS") && more > 0 {
            streams_at = Some(i + 1);
            break;
        } else if is(a, "GROUP") && more >= 2 && group_read {
            group = Some(&args[i + 1]);
            i += 2;
        } else if !(is(a, "NOACK") && group_read) {
            return None;
        }
        i += 1;
    }
    let at = streams_at?;
    if !(args.len() - at).is_multiple_of(2) || group_read != group.is_some() {
        return None;
    }
    let n = (args.len() - at) / 2;
    let mut out = args.to_vec();
    let mut finds_nothing = true;
    for k in at..at + n {
        let (stream, valid) = match ks.peek_live(&args[k], now).map(|e| &e.value) {
            Some(Value::Stream(s)) => (Some(s), true),
            Some(_) => (None, false),
            None => (None, group.is_none()),
        };
        let after = match (group, stream, &args[k + n][..]) {
            (Some(g), Some(s), b">") => s.group(g).map(|g| g.last_delivered()),
            (Some(_), _, _) => None,
            (None, s, b"$") => {
                let last = s.map_or(StreamId::ZERO, |s| s.log().last_id());
                out[k + n] = Bytes::from(last.to_string());
                Some(last)
            }
            (None, _, id) => parse_strict(id).ok(),
        };
        let has_more = match (stream, after.and_then(StreamId::next)) {
            (Some(s), Some(from)) => s.log().range(from, StreamId::MAX).next().is_some(),
            _ => false,
        };
        if !valid || after.is_none() || has_more {
            finds_nothing = false;
        }
    }
    Some((out, finds_nothing))
}

/// How many consumers group `group` has (to tell when a read or a claim
/// created one: Redis notifies `xgroup-createconsumer`).
fn consumer_count(s: &StreamValue, group: &[u8]) -> usize {
    s.group(group).map_or(0, |g| g.consumers().len())
}

/// Subcommand arities (Redis convention) of XGROUP and XINFO.
fn sub_arity(cmd: &str, sub: &[u8]) -> Option<(&'static str, i32)> {
    const TABLE: &[(&str, &str, i32)] = &[
        ("xgroup", "create", -5),
        ("xgroup", "setid", -5),
        ("xgroup", "destroy", 4),
        ("xgroup", "createconsumer", 5),
        ("xgroup", "delconsumer", 5),
        ("xgroup", "help", 2),
        ("xinfo", "stream", -3),
        ("xinfo", "groups", 3),
        ("xinfo", "consumers", 4),
        ("xinfo", "help", 2),
    ];
    TABLE
        .iter()
        .find(|(c, s, _)| *c == cmd && is(sub, s))
        .map(|(_, s, a)| (*s, *a))
}

/// Checks a subcommand exists and has a valid argument count.
fn check_sub(cmd: &'static str, args: &[Bytes]) -> Result<&'static str, OpError> {
    let Some((name, arity)) = sub_arity(cmd, &args[1]) else {
        return Err(OpError::Text(reply::unknown_subcommand(cmd, &args[1])));
    };
    let argc = args.len() as i32;
    if (arity >= 0 && argc != arity) || (arity < 0 && argc < -arity) {
        return Err(OpError::Text(reply::wrong_arity(&format!("{cmd}|{name}"))));
    }
    Ok(name)
}

/// `ENTRIESREAD n`: -1 (unknown) or a count.
fn entries_read(arg: &[u8]) -> Result<Option<u64>, OpError> {
    match int(arg)? {
        -1 => Ok(None),
        n if n >= 0 => Ok(Some(n as u64)),
        _ => Err(OpError::Static(reply::ENTRIES_READ_INVALID)),
    }
}

/// XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER|HELP
pub fn xgroup(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let sub = check_sub("xgroup", args)?;
    if sub == "help" {
        return Ok(help(&[
            "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
            "HELP",
            "    Prints this help.",
        ]));
    }
    let (key, group) = (&args[2], &args[3]);
    let syntax = || OpError::Text(reply::subcommand_syntax("xgroup", &args[1]));
    // Options of CREATE and SETID.
    let (mut mkstream, mut read) = (false, None);
    if sub == "create" || sub == "setid" {
        let mut i = 5;
        while i < args.len() {
            if sub == "create" && is(&args[i], "MKSTREAM") {
                mkstream = true;
                i += 1;
            } else if is(&args[i], "ENTRIESREAD") && i + 1 < args.len() {
                read = entries_read(&args[i + 1])?;
                i += 2;
            } else {
                return Err(syntax());
            }
        }
        if (sub == "setid" && args.len() != 5 && args.len() != 7)
            || (sub == "create" && args.len() > 8)
        {
            return Err(syntax());
        }
    }
    let now = ctx.now;
    let Some(s) = op_read(ctx, key)? else {
        if sub != "create" || !mkstream {
            return Err(OpError::Static(reply::XGROUP_NO_KEY));
        }
        let id = match &args[4][..] {
            b"$" => StreamId::ZERO,
            other => parse_strict(other)?,
        };
        op_write(ctx, key, true, |s| Ok(s.create_group(group, id, read)))?;
        ctx.notify(notify::STREAM, "xgroup-create", key);
        return Ok(Reply::ok());
    };
    let has_group = s.group(group).is_some();
    let last_id = s.log().last_id();
    if !has_group && matches!(sub, "setid" | "createconsumer" | "delconsumer") {
        return Err(OpError::Text(reply::nogroup_for_key(key, group)));
    }
    let reply = match sub {
        "create" => {
            let id = match &args[4][..] {
                b"$" => last_id,
                other => parse_strict(other)?,
            };
            let created = op_write(ctx, key, false, |s| Ok(s.create_group(group, id, read)))?;
            if created != Some(true) {
                return Err(OpError::Static(reply::BUSYGROUP));
            }
            ctx.notify(notify::STREAM, "xgroup-create", key);
            Reply::ok()
        }
        "setid" => {
            let id = match &args[4][..] {
                b"$" => last_id,
                other => parse_id(other, 0, false)?,
            };
            op_write(ctx, key, false, |s| {
                Ok(s.group_mut(group, |g, _| g.set_last_delivered(id, read)))
            })?;
            ctx.notify(notify::STREAM, "xgroup-setid", key);
            Reply::ok()
        }
        "destroy" => {
            let gone = op_write(ctx, key, false, |s| Ok(s.destroy_group(group)))?;
            if gone == Some(true) {
                ctx.notify(notify::STREAM, "xgroup-destroy", key);
            }
            Reply::Int(i64::from(gone == Some(true)))
        }
        "createconsumer" => {
            let made = op_write(ctx, key, false, |s| {
                Ok(s.group_mut(group, |g, _| g.create_consumer(&args[4], now)))
            })?;
            let made = made.flatten() == Some(true);
            if made {
                ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
            }
            Reply::Int(i64::from(made))
        }
        _ => {
            let deleted = op_write(ctx, key, false, |s| {
                Ok(s.group_mut(group, |g, _| g.delete_consumer(&args[4])))
            })?
            .flatten()
            .flatten();
            // As Redis: an event only when there was such a consumer.
            if deleted.is_some() {
                ctx.notify(notify::STREAM, "xgroup-delconsumer", key);
            }
            let pending = deleted.unwrap_or(0);
            ctx.work += pending as u64;
            Reply::Int(pending as i64)
        }
    };
    Ok(reply)
}

fn help(lines: &[&'static str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::status(l)).collect())
}

/// XACK key group id [id ...]
pub fn xack(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let group = &args[2];
    if op_read(ctx, &args[1])?.is_none_or(|s| s.group(group).is_none()) {
        return Ok(Reply::Int(0));
    }
    let ids = args[3..]
        .iter()
        .map(|a| parse_strict(a))
        .collect::<Result<Vec<_>, _>>()?;
    let acked = op_write(ctx, &args[1], false, |s| {
        Ok(s.group_mut(group, |g, _| g.ack(&ids)))
    })?
    .flatten()
    .unwrap_or(0);
    // Each ID leaves two lists: the group's pending entries and its
    // consumer's.
    ctx.count_extra(2 * ids.len());
    Ok(Reply::Int(acked as i64))
}

/// The group `group` of the stream under `key`, or NOGROUP.
fn require_group<'a>(
    ctx: &'a mut Ctx<'_>,
    key: &[u8],
    group: &[u8],
) -> Result<(&'a StreamValue, &'a Group), OpError> {
    match op_read(ctx, key)? {
        Some(s) => match s.group(group) {
            Some(g) => Ok((s, g)),
            None => Err(OpError::Text(reply::nogroup_key(key, group))),
        },
        None => Err(OpError::Text(reply::nogroup_key(key, group))),
    }
}

/// XPENDING key group [[IDLE min-idle] start end count [consumer]]
pub fn xpending(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let argc = args.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return Err(OpError::Syntax);
    }
    // The extended form's arguments are checked before the key.
    let mut extended = None;
    if argc >= 6 {
        let (mut min_idle, mut at) = (0i64, 3);
        if is(&args[3], "IDLE") {
            min_idle = int(&args[4])?;
            if argc < 8 {
                return Err(OpError::Syntax);
            }
            at = 5;
        }
        let count = int(&args[at + 2])?.max(0) as u64;
        let start = range_start(&args[at])?;
        let end = range_end(&args[at + 1])?;
        let consumer = args.get(at + 3);
        extended = Some((min_idle, start, end, count, consumer));
    }
    let now = ctx.now;
    let (_, g) = require_group(ctx, &args[1], &args[2])?;
    let Some((min_idle, start, end, count, consumer)) = extended else {
        let Some((first, _)) = g.pending_range(StreamId::ZERO, StreamId::MAX).next() else {
            return Ok(Reply::Array(vec![
                Reply::Int(0),
                Reply::Nil,
                Reply::Nil,
                Reply::NilArray,
            ]));
        };
        let last = g
            .pending_range(StreamId::ZERO, StreamId::MAX)
            .next_back()
            .map_or(first, |(id, _)| id);
        let owners: Vec<Reply> = g
            .consumers()
            .filter(|(_, c)| c.pending_len() > 0)
            .map(|(name, c)| {
                Reply::Array(vec![
                    Reply::bulk_slice(name),
                    Reply::bulk(c.pending_len().to_string()),
                ])
            })
            .collect();
        let reply = Reply::Array(vec![
            Reply::Int(g.pending_len() as i64),
            id_reply(first),
            id_reply(last),
            Reply::Array(owners),
        ]);
        ctx.work += reply_work(&reply);
        return Ok(reply);
    };
    let take = usize::try_from(count).unwrap_or(usize::MAX);
    let idle_ok =
        |p: &Pending| min_idle <= 0 || (now.saturating_sub(p.delivered_at) as i64) >= min_idle;
    let row = |id: StreamId, p: &Pending| {
        Reply::Array(vec![
            id_reply(id),
            Reply::bulk_slice(&p.consumer),
            Reply::Int(now.saturating_sub(p.delivered_at) as i64),
            Reply::Int(p.deliveries as i64),
        ])
    };
    let rows: Vec<Reply> = match consumer {
        Some(c) => g
            .consumer_pending_range(c, start, end)
            .filter(|(_, p)| idle_ok(p))
            .take(take)
            .map(|(id, p)| row(id, p))
            .collect(),
        None => g
            .pending_range(start, end)
            .filter(|(_, p)| idle_ok(p))
            .take(take)
            .map(|(id, p)| row(id, p))
            .collect(),
    };
    let reply = Reply::Array(rows);
    ctx.work += reply_work(&reply);
    Ok(reply)
}

/// Claimed entries as XCLAIM/XAUTOCLAIM reply them: IDs, or full entries.
fn claimed_reply(log: &Log, ids: &[StreamId], justid: bool) -> Reply {
    Reply::Array(
        ids.iter()
            .map(|&id| {
                if justid {
                    id_reply(id)
                } else {
                    entry_reply(id, log.get(id))
                }
            })
            .collect(),
    )
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms]
/// [TIME unix-ms] [RETRYCOUNT n] [FORCE] [JUSTID] [LASTID id]
pub fn xclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (key, group, consumer) = (&args[1], &args[2], &args[3]);
    require_group(ctx, key, group)?;
    let min_idle = parse_i64(&args[4])
        .ok_or_else(|| OpError::Text(reply::invalid_claim_arg("min-idle-time", "XCLAIM")))?;
    // IDs run until the first argument that is not one; options follow.
    let ids: Vec<StreamId> = args[5..]
        .iter()
        .map_while(|a| parse_strict(a).ok())
        .collect();
    let now = ctx.now as i64;
    let mut opts = ClaimOpts {
        min_idle: min_idle.max(0) as u64,
        ..ClaimOpts::default()
    };
    let mut delivered_at = None;
    let mut i = 5 + ids.len();
    while i < args.len() {
        let (a, next) = (&args[i], args.get(i + 1));
        let number = |what: &str| {
            next.and_then(|n| parse_i64(n))
                .ok_or_else(|| OpError::Text(reply::invalid_claim_arg(what, "XCLAIM")))
        };
        if is(a, "FORCE") {
            opts.force = true;
        } else if is(a, "JUSTID") {
            opts.justid = true;
        } else if is(a, "IDLE") && next.is_some() {
            delivered_at = Some(now.saturating_sub(number("IDLE option")?));
            i += 1;
        } else if is(a, "TIME") && next.is_some() {
            delivered_at = Some(number("TIME option")?);
            i += 1;
        } else if is(a, "RETRYCOUNT") && next.is_some() {
            let n = number("RETRYCOUNT option")?;
            opts.retry_count = (n >= 0).then_some(n as u64);
            i += 1;
        } else if is(a, "LASTID") && next.is_some() {
            opts.last_id = Some(parse_strict(next.map_or(&[][..], |n| &n[..]))?);
            i += 1;
        } else {
            return Err(OpError::Text(reply::unrecognized_xclaim_option(a)));
        }
        i += 1;
    }
    // A delivery time in the future or before the epoch means now.
    opts.delivered_at = delivered_at
        .filter(|t| (0..=now).contains(t))
        .map(|t| t as u64);
    let (reply, created) = op_write(ctx, key, false, |s| {
        let before = consumer_count(s, group);
        let claimed = s
            .group_mut(group, |g, log| {
                g.claim(log, consumer, &ids, &opts, now as u64)
            })
            .unwrap_or_default();
        let created = consumer_count(s, group) > before;
        Ok((claimed_reply(s.log(), &claimed, opts.justid), created))
    })?
    .unwrap_or((Reply::Array(Vec::new()), false));
    if created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    ctx.work += ids.len() as u64 + reply_work(&reply);
    Ok(reply)
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
pub fn xautoclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let (key, group, consumer) = (&args[1], &args[2], &args[3]);
    // Arguments first, then the key's type and group (Redis's order).
    let min_idle = parse_i64(&args[4])
        .ok_or_else(|| OpError::Text(reply::invalid_claim_arg("min-idle-time", "XAUTOCLAIM")))?;
    let start = range_start(&args[5])?;
    let (mut count, mut justid) = (AUTOCLAIM_COUNT, false);
    let mut i = 6;
    while i < args.len() {
        if is(&args[i], "COUNT") && i + 1 < args.len() {
            count = parse_i64(&args[i + 1])
                .filter(|n| (1..=i64::MAX / 16).contains(n))
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                .ok_or(OpError::Static(reply::XAUTOCLAIM_COUNT))?;
            i += 1;
        } else if is(&args[i], "JUSTID") {
            justid = true;
        } else {
            return Err(OpError::Syntax);
        }
        i += 1;
    }
    require_group(ctx, key, group)?;
    let now = ctx.now;
    let opts = AutoClaimOpts {
        start,
        count,
        min_idle: min_idle.max(0) as u64,
        justid,
    };
    let (reply, walked, created) = op_write(ctx, key, false, |s| {
        let before = consumer_count(s, group);
        let done = s
            .group_mut(group, |g, log| g.auto_claim(log, consumer, &opts, now))
            .unwrap_or_default();
        let created = consumer_count(s, group) > before;
        let reply = Reply::Array(vec![
            id_reply(done.next),
            claimed_reply(s.log(), &done.claimed, justid),
            Reply::Array(done.deleted.iter().map(|id| id_reply(*id)).collect()),
        ]);
        Ok((reply, done.walked, created))
    })?
    .unwrap_or((Reply::Array(Vec::new()), 0, false));
    if created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    ctx.work += walked as u64 + reply_work(&reply);
    Ok(reply)
}

/// `first-entry`/`last-entry` of XINFO STREAM.
fn edge_entry(edge: Option<(StreamId, &Fields)>) -> Reply {
    edge.map_or(Reply::Nil, |(id, f)| entry_reply(id, Some(f)))
}

fn kv(k: &'static str, v: Reply) -> (Reply, Reply) {
    (Reply::bulk(k), v)
}

/// The fields XINFO STREAM shows first, in both forms. The radix-tree
/// figures describe Redis's layout: keys are its nodes (Stratus keeps the
/// same boundaries), nodes are estimated as keys + 1.
fn stream_head(s: &StreamValue) -> Vec<(Reply, Reply)> {
    let log = s.log();
    let keys = log.nodes() as i64;
    vec![
        kv("length", Reply::Int(log.len() as i64)),
        kv("radix-tree-keys", Reply::Int(keys)),
        kv("radix-tree-nodes", Reply::Int(keys + 1)),
        kv("last-generated-id", id_reply(log.last_id())),
        kv("max-deleted-entry-id", id_reply(log.max_deleted())),
        kv("entries-added", Reply::Int(log.entries_added() as i64)),
        kv("recorded-first-entry-id", id_reply(log.first_id())),
    ]
}

fn entries_read_reply(g: &Group) -> Reply {
    g.entries_read()
        .map_or(Reply::Nil, |n| Reply::Int(n as i64))
}

fn lag_reply(g: &Group, log: &Log) -> Reply {
    g.lag(log).map_or(Reply::Nil, Reply::Int)
}

/// XINFO STREAM key [FULL [COUNT n]] | GROUPS key | CONSUMERS key group | HELP
pub fn xinfo(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let sub = check_sub("xinfo", args)?;
    if sub == "help" {
        return Ok(help(&[
            "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
            "HELP",
            "    Prints this help.",
        ]));
    }
    let key = &args[2];
    // XINFO STREAM's own arguments come before the key lookup.
    let mut full = None;
    if sub == "stream" {
        full = match args.len() {
            3 => None,
            4 if is(&args[3], "FULL") => Some(XINFO_FULL_COUNT),
            6 if is(&args[3], "FULL") && is(&args[4], "COUNT") => {
                let n = int(&args[5])?;
                Some(if n < 0 {
                    XINFO_FULL_COUNT
                } else if n == 0 {
                    usize::MAX
                } else {
                    usize::try_from(n).unwrap_or(usize::MAX)
                })
            }
            _ => return Err(OpError::Text(reply::subcommand_syntax("xinfo", &args[1]))),
        };
    }
    let now = ctx.now;
    let Some(s) = op_read(ctx, key)? else {
        return Err(OpError::NoSuchKey);
    };
    let log = s.log();
    let reply = match sub {
        "stream" => {
            let mut fields = stream_head(s);
            match full {
                None => {
                    fields.push(kv("groups", Reply::Int(s.groups().len() as i64)));
                    fields.push(kv("first-entry", edge_entry(log.first())));
                    fields.push(kv("last-entry", edge_entry(log.last())));
                }
                Some(count) => {
                    let entries: Vec<Reply> = log
                        .range(StreamId::ZERO, StreamId::MAX)
                        .take(count)
                        .map(|(id, f)| entry_reply(id, Some(f)))
                        .collect();
                    fields.push(kv("entries", Reply::Array(entries)));
                    let groups = s
                        .groups()
                        .map(|(name, g)| {
                            let pending: Vec<Reply> = g
                                .pending_range(StreamId::ZERO, StreamId::MAX)
                                .take(count)
                                .map(|(id, p)| {
                                    Reply::Array(vec![
                                        id_reply(id),
                                        Reply::bulk_slice(&p.consumer),
                                        Reply::Int(p.delivered_at as i64),
                                        Reply::Int(p.deliveries as i64),
                                    ])
                                })
                                .collect();
                            let consumers: Vec<Reply> = g
                                .consumers()
                                .map(|(cname, c)| {
                                    let own: Vec<Reply> = g
                                        .consumer_pending_range(
                                            cname,
                                            StreamId::ZERO,
                                            StreamId::MAX,
                                        )
                                        .take(count)
                                        .map(|(id, p)| {
                                            Reply::Array(vec![
                                                id_reply(id),
                                                Reply::Int(p.delivered_at as i64),
                                                Reply::Int(p.deliveries as i64),
                                            ])
                                        })
                                        .collect();
                                    Reply::Map(vec![
                                        kv("name", Reply::bulk_slice(cname)),
                                        kv("seen-time", Reply::Int(c.seen_at as i64)),
                                        kv("pel-count", Reply::Int(c.pending_len() as i64)),
                                        kv("pending", Reply::Array(own)),
                                    ])
                                })
                                .collect();
                            Reply::Map(vec![
                                kv("name", Reply::bulk_slice(name)),
                                kv("last-delivered-id", id_reply(g.last_delivered())),
                                kv("entries-read", entries_read_reply(g)),
                                kv("lag", lag_reply(g, log)),
                                kv("pel-count", Reply::Int(g.pending_len() as i64)),
                                kv("pending", Reply::Array(pending)),
                                kv("consumers", Reply::Array(consumers)),
                            ])
                        })
                        .collect();
                    fields.push(kv("groups", Reply::Array(groups)));
                }
            }
            Reply::Map(fields)
        }
        "groups" => Reply::Array(
            s.groups()
                .map(|(name, g)| {
                    Reply::Map(vec![
                        kv("name", Reply::bulk_slice(name)),
                        kv("consumers", Reply::Int(g.consumers().len() as i64)),
                        kv("pending", Reply::Int(g.pending_len() as i64)),
                        kv("last-delivered-id", id_reply(g.last_delivered())),
                        kv("entries-read", entries_read_reply(g)),
                        kv("lag", lag_reply(g, log)),
                    ])
                })
                .collect(),
        ),
        _ => {
            let group = &args[3];
            let Some(g) = s.group(group) else {
                return Err(OpError::Text(reply::nogroup_for_key(key, group)));
            };
            Reply::Array(
                g.consumers()
                    .map(|(name, c)| {
                        Reply::Map(vec![
                            kv("name", Reply::bulk_slice(name)),
                            kv("pending", Reply::Int(c.pending_len() as i64)),
                            kv("idle", Reply::Int(now.saturating_sub(c.seen_at) as i64)),
                        ])
                    })
                    .collect(),
            )
        }
    };
    ctx.work += reply_work(&reply);
    Ok(reply)
}

/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID
/// max-deleted-id]: the checks and their order are Redis's.
pub fn xsetid(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let id = parse_strict(&args[2])?;
    let mut entries_added: Option<u64> = None;
    let mut max_deleted = StreamId::ZERO;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if is(&args[i], "ENTRIESADDED") && more > 0 {
            let n = int(&args[i + 1])?;
            if n < 0 {
                return Err(OpError::Static(reply::XSETID_ENTRIES_NEGATIVE));
            }
            entries_added = Some(n as u64);
        } else if is(&args[i], "MAXDELETEDID") && more > 0 {
            max_deleted = parse_strict(&args[i + 1])?;
            if id < max_deleted {
                return Err(OpError::Static(reply::XSETID_BELOW_MAX_DELETED));
            }
        } else {
            return Err(OpError::Syntax);
        }
        i += 2;
    }
    let done = super::write_as::<StreamValue, _>(ctx, &args[1], false, |s| {
        let log = s.log_mut();
        if !log.is_empty() {
            if log.last().is_some_and(|(top, _)| id < top) {
                return Err(OpError::Static(reply::XSETID_BELOW_TOP));
            }
            if entries_added.is_some_and(|n| (log.len() as u64) > n) {
                return Err(OpError::Static(reply::XSETID_ENTRIES_BELOW_LENGTH));
            }
        }
        log.set_last_id(id);
        log.set_counters(
            entries_added,
            (!max_deleted.is_zero()).then_some(max_deleted),
        );
        Ok(())
    })?;
    match done {
        Some(()) => {
            ctx.notify(notify::STREAM, "xsetid", &args[1]);
            Ok(Reply::ok())
        }
        None => Err(OpError::NoSuchKey),
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::test_util::{Harness, bulk, err};
    use crate::resp::{Reply, reply};

    fn entry(id: &str, fields: &[&str]) -> Reply {
        Reply::Array(vec![
            bulk(id),
            Reply::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    fn arr(items: Vec<Reply>) -> Reply {
        Reply::Array(items)
    }

    /// One stream's part of an XREAD reply (RESP2).
    fn read(key: &str, entries: Vec<Reply>) -> Reply {
        arr(vec![bulk(key), arr(entries)])
    }

    /// A retry of a blocked read: XREAD waits on through a key of another
    /// type; XREADGROUP fails once its key or group is gone.
    #[test]
    fn blocked_retries_like_redis() {
        let mut h = Harness::new();
        h.run(&["lpush", "l", "x"]);
        h.run(&["xadd", "s", "1-0", "f", "v"]);
        let group_read = |key: &'static str| ["xreadgroup", "GROUP", "g", "c", "STREAMS", key, ">"];
        h.still_blocked = true;
        assert_eq!(h.run(&["xread", "STREAMS", "l", "0"]), Reply::NilArray);
        assert_eq!(
            h.run(&["xread", "STREAMS", "l", "s", "0", "0"]),
            arr(vec![read("s", vec![entry("1-0", &["f", "v"])])])
        );
        // Served from one stream, as Redis serves the key that woke it.
        assert_eq!(
            h.run(&["xread", "STREAMS", "s", "s", "0", "0"]),
            arr(vec![read("s", vec![entry("1-0", &["f", "v"])])])
        );
        for key in ["l", "nokey"] {
            assert_eq!(h.run(&group_read(key)), err(reply::XREADGROUP_KEY_GONE));
        }
        assert_eq!(h.run(&group_read("s")), err(reply::XREADGROUP_GROUP_GONE));
        h.still_blocked = false;
        assert_eq!(
            h.run(&["xread", "STREAMS", "l", "0"]),
            err(reply::WRONGTYPE)
        );
        assert_eq!(
            h.run(&group_read("s")),
            err("NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option")
        );
    }

    /// XADD starts a new node after stream-node-max-entries entries, and an
    /// approximate trim's default LIMIT is 100 such nodes.
    #[test]
    fn nodes_follow_stream_node_max_entries() {
        let mut h = Harness::new();
        h.encoding.stream_node_entries = 1;
        for i in 1..=102 {
            h.run(&["xadd", "s", &format!("{i}-0"), "f", "v"]);
        }
        assert_eq!(h.run(&["xtrim", "s", "MAXLEN", "~", "1"]), Reply::Int(100));
        assert_eq!(h.run(&["xlen", "s"]), Reply::Int(2));
        h.encoding.stream_node_entries = 0;
        for i in 103..=300 {
            h.run(&["xadd", "s", &format!("{i}-0"), "f", "v"]);
        }
        // One node without an entry limit: nothing to remove whole.
        assert_eq!(h.run(&["xtrim", "s", "MAXLEN", "~", "1"]), Reply::Int(1));
        assert_eq!(h.run(&["xlen", "s"]), Reply::Int(199));
    }

    #[test]
    fn xadd_ids_and_errors() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["xadd", "s", "5", "f", "v"]), bulk("5-0"));
        assert_eq!(
            h.run(&["xadd", "s", "5", "f", "v"]),
            err(reply::XADD_ID_TOO_SMALL)
        );
        assert_eq!(
            h.run(&["xadd", "s", "0-0", "f", "v"]),
            err(reply::XADD_ID_ZERO)
        );
        assert_eq!(
            h.run(&["xadd", "n", "0", "f", "v"]),
            err(reply::XADD_ID_ZERO)
        );
        assert_eq!(h.run(&["xadd", "s", "5-*", "f", "v"]), bulk("5-1"));
        assert_eq!(
            h.run(&["xadd", "s", "4-*", "f", "v"]),
            err(reply::XADD_ID_TOO_SMALL)
        );
        assert_eq!(
            h.run(&["xadd", "s", "abc", "f", "v"]),
            err(reply::STREAM_ID_INVALID)
        );
        assert_eq!(
            h.run(&["xadd", "s", "6-x", "f", "v"]),
            err(reply::STREAM_ID_INVALID)
        );
        assert_eq!(
            h.run(&["xadd", "s", "-", "f", "v"]),
            err(reply::STREAM_ID_INVALID)
        );
        let now = h.now.to_string();
        assert_eq!(
            h.run(&["xadd", "s", "*", "f", "v"]),
            bulk(&format!("{now}-0"))
        );
        assert_eq!(
            h.run(&["xadd", "s", "*", "f", "v"]),
            bulk(&format!("{now}-1"))
        );
        assert_eq!(
            h.run(&[
                "xadd",
                "s",
                "18446744073709551615-18446744073709551615",
                "f",
                "v"
            ]),
            bulk("18446744073709551615-18446744073709551615")
        );
        assert_eq!(
            h.run(&["xadd", "s", "*", "f", "v"]),
            err(reply::STREAM_EXHAUSTED)
        );
        assert_eq!(
            h.run(&["xadd", "s", "9-9", "f", "v"]),
            err(reply::STREAM_EXHAUSTED)
        );
        assert_eq!(
            h.run(&["xadd", "s", "*", "f"]),
            err("ERR wrong number of arguments for 'xadd' command")
        );
        assert_eq!(
            h.run(&["xadd", "s", "nomkstream", "f"]),
            err("ERR wrong number of arguments for 'xadd' command")
        );
        assert_eq!(
            h.run(&["xadd", "nos", "NOMKSTREAM", "*", "f", "v"]),
            Reply::Nil
        );
        assert_eq!(h.run(&["exists", "nos"]), Reply::Int(0));
        assert_eq!(
            h.run(&["xadd", "s", "MAXLEN", "-1", "*", "f", "v"]),
            err("ERR The MAXLEN argument must be >= 0.")
        );
        assert_eq!(
            h.run(&["xadd", "s", "MAXLEN", "=", "1", "LIMIT", "5", "*", "f", "v"]),
            err(reply::TRIM_LIMIT_WITHOUT_TILDE)
        );
        assert_eq!(
            h.run(&["xadd", "s", "MAXLEN", "1", "MINID", "0", "*", "f", "v"]),
            err(reply::MAXLEN_AND_MINID)
        );
        assert_eq!(
            h.run(&["xadd", "s", "LIMIT", "5", "*", "f", "v"]),
            err(reply::TRIM_LIMIT_WITHOUT_STRATEGY)
        );
        assert_eq!(h.run(&["type", "s"]), Reply::status("stream"));
        h.run(&["set", "str", "x"]);
        assert_eq!(
            h.run(&["xadd", "str", "*", "f", "v"]),
            err(reply::WRONGTYPE)
        );
        assert_eq!(h.run(&["xlen", "str"]), err(reply::WRONGTYPE));
    }

    #[test]
    fn ranges_deletes_and_trims() {
        let mut h = Harness::new();
        for i in 1..=5 {
            h.run(&["xadd", "s", &format!("{i}-1"), "n", &i.to_string()]);
        }
        assert_eq!(h.run(&["xlen", "s"]), Reply::Int(5));
        assert_eq!(h.run(&["xlen", "nokey"]), Reply::Int(0));
        assert_eq!(
            h.run(&["xrange", "s", "2", "(4-1"]),
            arr(vec![entry("2-1", &["n", "2"]), entry("3-1", &["n", "3"])])
        );
        assert_eq!(
            h.run(&["xrange", "s", "(4-1", "+"]),
            arr(vec![entry("5-1", &["n", "5"])])
        );
        assert_eq!(
            h.run(&["xrevrange", "s", "+", "-", "COUNT", "2"]),
            arr(vec![entry("5-1", &["n", "5"]), entry("4-1", &["n", "4"])])
        );
        assert_eq!(
            h.run(&["xrange", "s", "-", "+", "COUNT", "0"]),
            Reply::NilArray
        );
        assert_eq!(h.run(&["xrange", "s", "+", "-"]), arr(vec![]));
        assert_eq!(h.run(&["xrange", "nokey", "-", "+"]), arr(vec![]));
        assert_eq!(
            h.run(&[
                "xrange",
                "s",
                "(18446744073709551615-18446744073709551615",
                "+"
            ]),
            err("ERR invalid start ID for the interval")
        );
        assert_eq!(
            h.run(&["xrange", "s", "-", "(0-0"]),
            err("ERR invalid end ID for the interval")
        );
        assert_eq!(
            h.run(&["xrange", "s", "x", "+"]),
            err(reply::STREAM_ID_INVALID)
        );
        assert_eq!(
            h.run(&["xrange", "s", "-", "+", "COUNT"]),
            err("ERR syntax error")
        );
        assert_eq!(h.run(&["xdel", "s", "2-1", "9-9"]), Reply::Int(1));
        assert_eq!(h.run(&["xdel", "s", "x"]), err(reply::STREAM_ID_INVALID));
        assert_eq!(h.run(&["xdel", "nokey", "x"]), Reply::Int(0));
        assert_eq!(h.run(&["xtrim", "s", "MAXLEN", "2"]), Reply::Int(2));
        assert_eq!(h.run(&["xtrim", "s", "MINID", "5"]), Reply::Int(1));
        assert_eq!(
            h.run(&["xtrim", "s", "MAXLEN", "~", "0", "LIMIT", "0"]),
            Reply::Int(1)
        );
        assert_eq!(h.run(&["xtrim", "s", "MAXLEN", "=", "0"]), Reply::Int(0));
        assert_eq!(h.run(&["xtrim", "s", "foo", "1"]), err("ERR syntax error"));
        assert_eq!(
            h.run(&["xtrim", "s", "LIMIT", "5"]),
            err(reply::TRIM_LIMIT_WITHOUT_STRATEGY)
        );
        assert_eq!(
            h.run(&["xtrim", "s", "MAXLEN", "~", "0", "LIMIT", "-1"]),
            err("ERR The LIMIT argument must be >= 0.")
        );
        assert_eq!(h.run(&["xtrim", "nokey", "MAXLEN", "0"]), Reply::Int(0));
        // An emptied stream stays, with its history.
        assert_eq!(h.run(&["xlen", "s"]), Reply::Int(0));
        assert_eq!(h.run(&["exists", "s"]), Reply::Int(1));
        assert_eq!(
            h.run(&["xadd", "s", "3-0", "f", "v"]),
            err(reply::XADD_ID_TOO_SMALL)
        );
        assert_eq!(
            h.run(&["xadd", "s", "MAXLEN", "1", "9-0", "a", "1"]),
            bulk("9-0")
        );
        assert_eq!(
            h.run(&["xadd", "s", "MAXLEN", "1", "9-1", "a", "1"]),
            bulk("9-1")
        );
        assert_eq!(h.run(&["xlen", "s"]), Reply::Int(1));
    }

    #[test]
    fn xread_without_groups() {
        let mut h = Harness::new();
        h.run(&["xadd", "{s}a", "1-1", "f", "1"]);
        h.run(&["xadd", "{s}a", "2-1", "f", "2"]);
        h.run(&["xadd", "{s}b", "3-1", "g", "3"]);
        assert_eq!(
            h.run(&["xread", "COUNT", "1", "STREAMS", "{s}a", "{s}b", "0", "0"]),
            arr(vec![
                read("{s}a", vec![entry("1-1", &["f", "1"])]),
                read("{s}b", vec![entry("3-1", &["g", "3"])]),
            ])
        );
        assert_eq!(
            h.run(&[
                "xread", "BLOCK", "100", "STREAMS", "{s}a", "{s}nope", "1-1", "0"
            ]),
            arr(vec![read("{s}a", vec![entry("2-1", &["f", "2"])])])
        );
        assert_eq!(h.run(&["xread", "STREAMS", "{s}a", "$"]), Reply::NilArray);
        assert_eq!(
            h.run(&["xread", "STREAMS", "{s}nope", "$"]),
            Reply::NilArray
        );
        assert_eq!(
            h.run(&["xread", "STREAMS", "{s}a", "{s}b", "0"]),
            err(reply::UNBALANCED_STREAMS)
        );
        assert_eq!(
            h.run(&["xread", "COUNT", "x", "STREAMS", "{s}a", "0"]),
            err(reply::NOT_INTEGER)
        );
        assert_eq!(
            h.run(&["xread", "BLOCK", "-1", "STREAMS", "{s}a", "0"]),
            err("ERR timeout is negative")
        );
        assert_eq!(
            h.run(&["xread", "BLOCK", "x", "STREAMS", "{s}a", "0"]),
            err("ERR timeout is not an integer or out of range")
        );
        assert_eq!(
            h.run(&["xread", "foo", "STREAMS", "{s}a", "0"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["xread", "NOACK", "STREAMS", "{s}a", "0"]),
            err(reply::XREAD_NOACK)
        );
        assert_eq!(
            h.run(&["xread", "GROUP", "g", "c", "STREAMS", "{s}a", "0"]),
            err(reply::XREAD_GROUP)
        );
        assert_eq!(
            h.run(&["xread", "STREAMS", "{s}a", ">"]),
            err(reply::XREAD_GT)
        );
        assert_eq!(
            h.run(&["xread", "STREAMS", "{s}a", "+"]),
            err(reply::STREAM_ID_INVALID)
        );
        h.resp3 = true;
        assert_eq!(
            h.run(&["xread", "STREAMS", "{s}b", "0"]),
            Reply::Map(vec![(bulk("{s}b"), arr(vec![entry("3-1", &["g", "3"])]))])
        );
    }

    #[test]
    fn groups_pending_and_claims() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["xgroup", "CREATE", "s", "g", "$"]),
            err(reply::XGROUP_NO_KEY)
        );
        assert_eq!(
            h.run(&["xgroup", "CREATE", "s", "g", "$", "MKSTREAM"]),
            Reply::ok()
        );
        assert_eq!(
            h.run(&["xgroup", "CREATE", "s", "g", "$"]),
            err(reply::BUSYGROUP)
        );
        assert_eq!(
            h.run(&["xgroup", "CREATE", "s", "g2", "x"]),
            err(reply::STREAM_ID_INVALID)
        );
        assert_eq!(
            h.run(&["xgroup", "CREATE", "s", "g3", "0", "ENTRIESREAD", "-5"]),
            err("ERR value for ENTRIESREAD must be positive or -1")
        );
        assert_eq!(
            h.run(&["xgroup", "CREATECONSUMER", "s", "nog", "c"]),
            err("NOGROUP No such consumer group 'nog' for key name 's'")
        );
        assert_eq!(
            h.run(&["xgroup", "CREATECONSUMER", "s", "g", "c"]),
            Reply::Int(1)
        );
        assert_eq!(
            h.run(&["xgroup", "CREATECONSUMER", "s", "g", "c"]),
            Reply::Int(0)
        );
        assert_eq!(
            h.run(&["xgroup", "DELCONSUMER", "s", "g", "zz"]),
            Reply::Int(0)
        );
        assert_eq!(h.run(&["xgroup", "DESTROY", "s", "nog"]), Reply::Int(0));
        assert_eq!(
            h.run(&["xgroup", "foo", "s", "g"]),
            err("ERR unknown subcommand 'foo'. Try XGROUP HELP.")
        );
        assert_eq!(
            h.run(&["xgroup", "create", "s", "g"]),
            err("ERR wrong number of arguments for 'xgroup|create' command")
        );
        assert_eq!(
            h.run(&["xgroup", "create", "s", "g", "0", "foo"]),
            err(
                "ERR unknown subcommand or wrong number of arguments for 'create'. Try XGROUP HELP."
            )
        );
        assert_eq!(
            h.run(&["xgroup", "CREATE", "s", "g4", "0", "ENTRIESREAD", "3"]),
            Reply::ok()
        );
        h.run(&["xadd", "s", "1-1", "a", "1"]);
        h.run(&["xadd", "s", "2-1", "b", "2"]);
        h.run(&["xadd", "s", "3-1", "c", "3"]);
        assert_eq!(
            h.run(&[
                "xreadgroup",
                "GROUP",
                "g4",
                "c",
                "COUNT",
                "1",
                "STREAMS",
                "s",
                ">"
            ]),
            arr(vec![read("s", vec![entry("1-1", &["a", "1"])])])
        );
        assert_eq!(
            h.run(&[
                "xreadgroup",
                "GROUP",
                "g4",
                "c2",
                "COUNT",
                "1",
                "STREAMS",
                "s",
                ">"
            ]),
            arr(vec![read("s", vec![entry("2-1", &["b", "2"])])])
        );
        assert_eq!(
            h.run(&["xreadgroup", "GROUP", "g4", "c", "STREAMS", "s", "0"]),
            arr(vec![read("s", vec![entry("1-1", &["a", "1"])])])
        );
        assert_eq!(
            h.run(&["xreadgroup", "GROUP", "nog", "c", "STREAMS", "s", ">"]),
            err("NOGROUP No such key 's' or consumer group 'nog' in XREADGROUP with GROUP option")
        );
        assert_eq!(
            h.run(&["xreadgroup", "GROUP", "g4", "c", "STREAMS", "s", "$"]),
            err(reply::XREADGROUP_DOLLAR)
        );
        assert_eq!(
            h.run(&["xpending", "s", "g4"]),
            arr(vec![
                Reply::Int(2),
                bulk("1-1"),
                bulk("2-1"),
                arr(vec![
                    arr(vec![bulk("c"), bulk("1")]),
                    arr(vec![bulk("c2"), bulk("1")])
                ]),
            ])
        );
        let row = |id: &str, c: &str, idle: i64, n: i64| {
            arr(vec![bulk(id), bulk(c), Reply::Int(idle), Reply::Int(n)])
        };
        assert_eq!(
            h.run(&["xpending", "s", "g4", "-", "+", "10"]),
            arr(vec![row("1-1", "c", 0, 2), row("2-1", "c2", 0, 1)])
        );
        h.now += 50;
        assert_eq!(
            h.run(&["xpending", "s", "g4", "IDLE", "10", "-", "+", "10", "c2"]),
            arr(vec![row("2-1", "c2", 50, 1)])
        );
        assert_eq!(
            h.run(&["xpending", "s", "g4", "-", "+", "10", "nobody"]),
            arr(vec![])
        );
        assert_eq!(
            h.run(&["xpending", "s", "g4", "-", "+"]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["xpending", "s", "g4", "-", "+", "x"]),
            err(reply::NOT_INTEGER)
        );
        assert_eq!(
            h.run(&["xpending", "s", "nog"]),
            err("NOGROUP No such key 's' or consumer group 'nog'")
        );
        assert_eq!(
            h.run(&["xinfo", "groups", "s"]),
            arr(vec![
                Reply::Map(vec![
                    (bulk("name"), bulk("g")),
                    (bulk("consumers"), Reply::Int(1)),
                    (bulk("pending"), Reply::Int(0)),
                    (bulk("last-delivered-id"), bulk("0-0")),
                    (bulk("entries-read"), Reply::Nil),
                    (bulk("lag"), Reply::Int(3)),
                ]),
                Reply::Map(vec![
                    (bulk("name"), bulk("g4")),
                    (bulk("consumers"), Reply::Int(2)),
                    (bulk("pending"), Reply::Int(2)),
                    (bulk("last-delivered-id"), bulk("2-1")),
                    (bulk("entries-read"), Reply::Int(5)),
                    (bulk("lag"), Reply::Int(-2)),
                ]),
            ])
        );
        assert_eq!(h.run(&["xack", "s", "g4", "1-1", "9-9"]), Reply::Int(1));
        assert_eq!(
            h.run(&["xack", "s", "g4", "bad"]),
            err(reply::STREAM_ID_INVALID)
        );
        assert_eq!(h.run(&["xack", "nokey", "g4", "bad"]), Reply::Int(0));
        // A deleted entry shows as nil in history, and leaves the PEL on claim.
        h.run(&["xdel", "s", "2-1"]);
        assert_eq!(
            h.run(&["xreadgroup", "GROUP", "g4", "c2", "STREAMS", "s", "0"]),
            arr(vec![read(
                "s",
                vec![arr(vec![bulk("2-1"), Reply::NilArray])]
            )])
        );
        assert_eq!(h.run(&["xclaim", "s", "g4", "c", "0", "2-1"]), arr(vec![]));
        assert_eq!(
            h.run(&["xpending", "s", "g4"]),
            arr(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray])
        );
        assert_eq!(
            h.run(&["xautoclaim", "s", "g4", "c", "0", "0"]),
            arr(vec![bulk("0-0"), arr(vec![]), arr(vec![])])
        );
        assert_eq!(
            h.run(&["xautoclaim", "s", "g4", "c", "0", "0", "COUNT", "0"]),
            err("ERR COUNT must be > 0")
        );
        assert_eq!(
            h.run(&["xclaim", "s", "g4", "c", "x", "1-1"]),
            err("ERR Invalid min-idle-time argument for XCLAIM")
        );
        assert_eq!(
            h.run(&["xclaim", "s", "g4", "c", "0", "1-1", "IDLE", "x"]),
            err("ERR Invalid IDLE option argument for XCLAIM")
        );
        assert_eq!(
            h.run(&["xclaim", "s", "g4", "c", "0", "1-1", "FOO"]),
            err("ERR Unrecognized XCLAIM option 'FOO'")
        );
        assert_eq!(
            h.run(&["xclaim", "s", "g4", "c", "0", "1-1", "FORCE", "JUSTID"]),
            arr(vec![bulk("1-1")])
        );
        assert_eq!(
            h.run(&["xpending", "s", "g4", "-", "+", "10"]),
            arr(vec![row("1-1", "c", 0, 1)])
        );
        assert_eq!(
            h.run(&["xclaim", "nokey", "g", "c", "0", "0"]),
            err("NOGROUP No such key 'nokey' or consumer group 'g'")
        );
    }

    #[test]
    fn claims_move_ownership_by_idle_time() {
        let mut h = Harness::new();
        for i in 1..=4 {
            h.run(&["xadd", "s", &format!("{i}-0"), "k", &i.to_string()]);
        }
        h.run(&["xgroup", "CREATE", "s", "g", "0"]);
        h.run(&["xreadgroup", "GROUP", "g", "alice", "STREAMS", "s", ">"]);
        h.now += 1000;
        // Too young for bob.
        assert_eq!(
            h.run(&["xclaim", "s", "g", "bob", "5000", "1-0"]),
            arr(vec![])
        );
        assert_eq!(
            h.run(&[
                "xclaim",
                "s",
                "g",
                "bob",
                "500",
                "1-0",
                "2-0",
                "RETRYCOUNT",
                "7"
            ]),
            arr(vec![entry("1-0", &["k", "1"]), entry("2-0", &["k", "2"])])
        );
        assert_eq!(
            h.run(&["xpending", "s", "g", "-", "+", "10", "bob"]),
            arr(vec![
                arr(vec![bulk("1-0"), bulk("bob"), Reply::Int(0), Reply::Int(7)]),
                arr(vec![bulk("2-0"), bulk("bob"), Reply::Int(0), Reply::Int(7)]),
            ])
        );
        // XAUTOCLAIM walks alice's remaining two with COUNT 1: a cursor comes back.
        assert_eq!(
            h.run(&[
                "xautoclaim",
                "s",
                "g",
                "carol",
                "500",
                "0",
                "COUNT",
                "1",
                "JUSTID"
            ]),
            arr(vec![bulk("4-0"), arr(vec![bulk("3-0")]), arr(vec![])])
        );
        h.run(&["xdel", "s", "4-0"]);
        assert_eq!(
            h.run(&["xautoclaim", "s", "g", "carol", "500", "4-0"]),
            arr(vec![bulk("0-0"), arr(vec![]), arr(vec![bulk("4-0")])])
        );
        assert_eq!(
            h.run(&["xgroup", "DELCONSUMER", "s", "g", "bob"]),
            Reply::Int(2)
        );
        assert_eq!(
            h.run(&["xinfo", "consumers", "s", "g"]),
            arr(vec![
                Reply::Map(vec![
                    (bulk("name"), bulk("alice")),
                    (bulk("pending"), Reply::Int(0)),
                    (bulk("idle"), Reply::Int(1000)),
                ]),
                Reply::Map(vec![
                    (bulk("name"), bulk("carol")),
                    (bulk("pending"), Reply::Int(1)),
                    (bulk("idle"), Reply::Int(0)),
                ]),
            ])
        );
        assert_eq!(
            h.run(&["xinfo", "consumers", "s", "nog"]),
            err("NOGROUP No such consumer group 'nog' for key name 's'")
        );
        assert_eq!(h.run(&["xgroup", "DESTROY", "s", "g"]), Reply::Int(1));
        assert_eq!(h.run(&["xdel", "s", "1-0", "2-0", "3-0"]), Reply::Int(3));
        // Nothing but the (empty) stream is left to pay for.
        assert_eq!(
            h.ks.used_bytes(),
            1 + crate::partition::value::ENTRY_OVERHEAD
        );
        h.run(&["del", "s"]);
        assert_eq!(h.ks.used_bytes(), 0);
    }

    #[test]
    fn xinfo_stream() {
        let mut h = Harness::new();
        h.run(&["xadd", "s", "1-1", "a", "1"]);
        h.run(&["xadd", "s", "2-1", "b", "2"]);
        h.run(&["xgroup", "CREATE", "s", "g", "0"]);
        h.run(&[
            "xreadgroup",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            ">",
        ]);
        let head = |len: i64| {
            vec![
                (bulk("length"), Reply::Int(len)),
                (bulk("radix-tree-keys"), Reply::Int(1)),
                (bulk("radix-tree-nodes"), Reply::Int(2)),
                (bulk("last-generated-id"), bulk("2-1")),
                (bulk("max-deleted-entry-id"), bulk("0-0")),
                (bulk("entries-added"), Reply::Int(2)),
                (bulk("recorded-first-entry-id"), bulk("1-1")),
            ]
        };
        let mut basic = head(2);
        basic.push((bulk("groups"), Reply::Int(1)));
        basic.push((bulk("first-entry"), entry("1-1", &["a", "1"])));
        basic.push((bulk("last-entry"), entry("2-1", &["b", "2"])));
        assert_eq!(h.run(&["xinfo", "stream", "s"]), Reply::Map(basic));
        let now = h.now as i64;
        let mut full = head(2);
        full.push((
            bulk("entries"),
            arr(vec![entry("1-1", &["a", "1"]), entry("2-1", &["b", "2"])]),
        ));
        full.push((
            bulk("groups"),
            arr(vec![Reply::Map(vec![
                (bulk("name"), bulk("g")),
                (bulk("last-delivered-id"), bulk("1-1")),
                (bulk("entries-read"), Reply::Int(1)),
                (bulk("lag"), Reply::Int(1)),
                (bulk("pel-count"), Reply::Int(1)),
                (
                    bulk("pending"),
                    arr(vec![arr(vec![
                        bulk("1-1"),
                        bulk("c"),
                        Reply::Int(now),
                        Reply::Int(1),
                    ])]),
                ),
                (
                    bulk("consumers"),
                    arr(vec![Reply::Map(vec![
                        (bulk("name"), bulk("c")),
                        (bulk("seen-time"), Reply::Int(now)),
                        (bulk("pel-count"), Reply::Int(1)),
                        (
                            bulk("pending"),
                            arr(vec![arr(vec![bulk("1-1"), Reply::Int(now), Reply::Int(1)])]),
                        ),
                    ])]),
                ),
            ])]),
        ));
        assert_eq!(
            h.run(&["xinfo", "stream", "s", "FULL", "COUNT", "0"]),
            Reply::Map(full)
        );
        assert_eq!(
            h.run(&["xinfo", "stream", "s", "full", "foo"]),
            err(
                "ERR unknown subcommand or wrong number of arguments for 'stream'. Try XINFO HELP."
            )
        );
        assert_eq!(h.run(&["xinfo", "stream", "nokey"]), err("ERR no such key"));
        assert_eq!(
            h.run(&["xinfo", "stream"]),
            err("ERR wrong number of arguments for 'xinfo|stream' command")
        );
        assert!(matches!(h.run(&["xinfo", "help"]), Reply::Array(_)));
        assert!(matches!(h.run(&["xgroup", "help"]), Reply::Array(_)));
    }

    #[test]
    fn copy_is_independent() {
        let mut h = Harness::new();
        h.run(&["xadd", "{c}a", "1-1", "f", "v"]);
        h.run(&["xgroup", "CREATE", "{c}a", "g", "0"]);
        h.run(&["xreadgroup", "GROUP", "g", "c", "STREAMS", "{c}a", ">"]);
        let one = h.ks.used_bytes();
        assert_eq!(h.run(&["copy", "{c}a", "{c}b"]), Reply::Int(1));
        assert_eq!(h.ks.used_bytes(), 2 * one);
        assert_eq!(h.run(&["type", "{c}b"]), Reply::status("stream"));
        assert_eq!(h.run(&["xack", "{c}b", "g", "1-1"]), Reply::Int(1));
        assert_eq!(h.run(&["xack", "{c}a", "g", "1-1"]), Reply::Int(1));
        assert_eq!(h.run(&["xack", "{c}b", "g", "1-1"]), Reply::Int(0));
        h.run(&["del", "{c}a", "{c}b"]);
        assert_eq!(h.ks.used_bytes(), 0);
    }
}
