//! Hash commands.

use bytes::Bytes;
use rand::Rng;

use super::args::{int, is, parse_i64, scan_opts};
use super::float80;
use super::table::{COLD_PICK_BYTES, SCAN_REPLY_MILLI, SCAN_VISIT_MILLI};
use super::{Ctx, OpError, notify};
use crate::partition::HashValue;
use crate::partition::scan::{SCAN_WHOLE_UP_TO, scan_step};
use crate::resp::{Reply, reply};

/// The hash under `key` for reading (see [`super::read_as`]).
fn op_read<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<Option<&'a HashValue>, OpError> {
    super::read_as(ctx, key)
}

/// Runs `f` on the hash under `key` (see [`super::write_as`]).
fn op_write<T>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut HashValue) -> Result<T, OpError>,
) -> Result<Option<T>, OpError> {
    super::write_as(ctx, key, create, f)
}

/// HSET and HMSET key field value [field value ...]
pub fn hset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let hmset = is(&args[0], "hmset");
    if !args.len().is_multiple_of(2) {
        return Err(OpError::Arity(if hmset { "hmset" } else { "hset" }));
    }
    let added = op_write(ctx, &args[1], true, |h| {
        h.reserve(args.len() / 2 - 1);
        Ok(args[2..]
            .chunks_exact(2)
            .filter(|p| h.insert(&p[0], &p[1]))
            .count())
    })?
    .unwrap_or(0);
    ctx.count_extra(args.len() / 2 - 1);
    ctx.notify(notify::HASH, "hset", &args[1]);
    Ok(if hmset {
        Reply::ok()
    } else {
        Reply::Int(added as i64)
    })
}

pub fn hsetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let set = op_write(ctx, &args[1], true, |h| {
        Ok(h.get(&args[2]).is_none() && h.insert(&args[2], &args[3]))
    })?;
    if set == Some(true) {
        ctx.notify(notify::HASH, "hset", &args[1]);
    }
    Ok(Reply::Int(i64::from(set == Some(true))))
}

pub fn hget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let v = op_read(ctx, &args[1])?.and_then(|h| h.get(&args[2]));
    Ok(v.map_or(Reply::Nil, Reply::bulk_slice))
}

pub fn hmget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let h = op_read(ctx, &args[1])?;
    let replies = args[2..]
        .iter()
        .map(|f| {
            h.and_then(|h| h.get(f))
                .map_or(Reply::Nil, Reply::bulk_slice)
        })
        .collect();
    ctx.count_extra(args.len() - 2);
    Ok(Reply::Array(replies))
}

/// HGETALL, HKEYS, HVALS.
pub fn hgetall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let cmd = &args[0];
    let Some(h) = op_read(ctx, &args[1])? else {
        return Ok(if is(cmd, "hgetall") {
            Reply::Map(Vec::new())
        } else {
            Reply::Array(Vec::new())
        });
    };
    let len = h.len() as u64;
    let reply = if is(cmd, "hkeys") {
        Reply::Array(h.iter().map(|(f, _)| Reply::bulk_slice(f)).collect())
    } else if is(cmd, "hvals") {
        Reply::Array(h.iter().map(|(_, v)| Reply::bulk_slice(v)).collect())
    } else {
        Reply::Map(
            h.iter()
                .map(|(f, v)| (Reply::bulk_slice(f), Reply::bulk_slice(v)))
                .collect(),
        )
    };
    ctx.work += len;
    Ok(reply)
}

pub fn hdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let n = op_write(ctx, &args[1], false, |h| {
        Ok(args[2..].iter().filter(|f| h.remove(f)).count())
    })?;
    ctx.count_extra(args.len() - 2);
    if n.unwrap_or(0) > 0 {
        ctx.notify_write(notify::HASH, "hdel", &args[1]);
    }
    Ok(Reply::Int(n.unwrap_or(0) as i64))
}

pub fn hexists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let found = op_read(ctx, &args[1])?.is_some_and(|h| h.get(&args[2]).is_some());
    Ok(Reply::Int(i64::from(found)))
}

pub fn hlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    Ok(Reply::Int(
        op_read(ctx, &args[1])?.map_or(0, |h| h.len() as i64),
    ))
}

pub fn hstrlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let len = op_read(ctx, &args[1])?
        .and_then(|h| h.get(&args[2]))
        .map_or(0, |v| v.len());
    Ok(Reply::Int(len as i64))
}

pub fn hincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let delta = int(&args[3])?;
    let field = &args[2];
    let new = op_write(ctx, &args[1], true, |h| {
        let cur = match h.get(field) {
            Some(v) => parse_i64(v).ok_or(OpError::HashNotInteger)?,
            None => 0,
        };
        let new = cur.checked_add(delta).ok_or(OpError::Overflow)?;
        h.insert(field, itoa::Buffer::new().format(new).as_bytes());
        Ok(new)
    })?;
    ctx.notify(notify::HASH, "hincrby", &args[1]);
    Ok(Reply::Int(new.unwrap_or(0)))
}

/// HINCRBYFLOAT: extended precision, as INCRBYFLOAT (see [`super::float80`]).
pub fn hincrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    match float80::parse(&args[3]) {
        None => return Err(OpError::NotFloat),
        Some(float80::Operand::Infinite { .. }) => {
            return Err(OpError::Static(reply::VALUE_NAN_OR_INF));
        }
        Some(_) => {}
    }
    let field = &args[2];
    let text = op_write(ctx, &args[1], true, |h| {
        let current = h.get(field).unwrap_or(b"0").to_vec();
        let text = float80::incr(&current, &args[3]).map_err(|bad| {
            if bad {
                OpError::HashNotFloat
            } else {
                OpError::NanOrInf
            }
        })?;
        h.insert(field, text.as_bytes());
        Ok(text)
    })?;
    ctx.notify(notify::HASH, "hincrbyfloat", &args[1]);
    Ok(Reply::bulk(text.unwrap_or_default()))
}

/// HSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES]: a small hash
/// whole (a packed one from any cursor, as Redis returns a listpack), a
/// larger one in steps of at most COUNT * 10 fields visited (see
/// [`scan_step`] for the cursor).
pub fn hscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let opts = scan_opts(&args[2..], false, true)?;
    let Some(h) = op_read(ctx, &args[1])? else {
        return Ok(Reply::Array(vec![
            Reply::bulk("0"),
            Reply::Array(Vec::new()),
        ]));
    };
    let mut out = Vec::new();
    let mut keep = |(f, v): (&[u8], &[u8])| {
        let kept = opts.matches(f);
        if kept {
            out.push(Reply::bulk_slice(f));
            if !opts.novalues {
                out.push(Reply::bulk_slice(v));
            }
        }
        kept
    };
    let (next, walked) = if h.is_packed() || (opts.cursor == 0 && h.len() <= SCAN_WHOLE_UP_TO) {
        h.iter().for_each(|p| {
            keep(p);
        });
        (0, h.len() as u64)
    } else {
        scan_step(h.len(), opts.cursor, opts.count, |i| {
            h.get_at(i).is_some_and(&mut keep)
        })
    };
    // Visited and replied apart: a MATCH that keeps nothing pays its walk.
    ctx.work += walked * SCAN_VISIT_MILLI + out.len() as u64 * SCAN_REPLY_MILLI;
    let cursor = itoa::Buffer::new().format(next).to_string();
    Ok(Reply::Array(vec![Reply::bulk(cursor), Reply::Array(out)]))
}

/// HRANDFIELD key [count [WITHVALUES]]: O(1) per field picked.
pub fn hrandfield(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let count = match args.get(2) {
        Some(c) => Some(int(c)?),
        None => None,
    };
    let withvalues = match args.get(3) {
        Some(a) if is(a, "WITHVALUES") => true,
        Some(_) => return Err(OpError::Syntax),
        None => false,
    };
    if args.len() > 4 {
        return Err(OpError::Syntax);
    }
    if let Some(c) = count
        && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&c)
    {
        return Err(OpError::Static(reply::VALUE_OUT_OF_RANGE));
    }
    // Repeated picks build a reply as long as the count: bounded.
    if let Some(c) = count
        && c < 0
        && c.unsigned_abs() > super::args::MAX_REPEATED_PICKS
    {
        return Err(OpError::Static(reply::TOO_MANY_PICKS));
    }
    let resp3 = ctx.resp3;
    let h = op_read(ctx, &args[1])?;
    let mut rng = rand::rng();
    let Some(count) = count else {
        let field = h
            .filter(|h| !h.is_empty())
            .and_then(|h| h.get_at(rng.random_range(0..h.len())))
            .map(|(f, _)| f);
        return Ok(field.map_or(Reply::Nil, Reply::bulk_slice));
    };
    let Some(h) = h.filter(|h| !h.is_empty()) else {
        return Ok(Reply::Array(Vec::new()));
    };
    let picks: Vec<(&[u8], &[u8])> = if count >= 0 && count as u64 >= h.len() as u64 {
        h.iter().collect()
    } else if count >= 0 {
        // Distinct positions, in random order.
        h.at_positions(rand::seq::index::sample(&mut rng, h.len(), count as usize))
    } else {
        let len = h.len();
        h.at_positions((0..count.unsigned_abs()).map(|_| rng.random_range(0..len)))
    };
    // A pick counts once, its value replied once more; a pick in a hash
    // that no longer fits the CPU caches once more (as SRANDMEMBER's).
    let cold = u64::from(h.mem_bytes() > COLD_PICK_BYTES);
    let walked = picks.len() as u64 * (1 + u64::from(withvalues) + cold);
    let reply = match (withvalues, resp3) {
        (false, _) => Reply::Array(picks.iter().map(|(f, _)| Reply::bulk_slice(f)).collect()),
        (true, true) => Reply::Array(
            picks
                .iter()
                .map(|(f, v)| Reply::Array(vec![Reply::bulk_slice(f), Reply::bulk_slice(v)]))
                .collect(),
        ),
        (true, false) => Reply::Array(
            picks
                .iter()
                .flat_map(|(f, v)| [Reply::bulk_slice(f), Reply::bulk_slice(v)])
                .collect(),
        ),
    };
    ctx.work += walked;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use crate::cmd::test_util::{Harness, bulk, err, scan_to_end};
    use crate::partition::packed::PACKED_OVERHEAD;
    use crate::partition::value::{ENTRY_OVERHEAD, HASH_FIELD_OVERHEAD};
    use crate::resp::Reply;

    #[test]
    fn hash_basics() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["hset", "h", "a", "1", "b", "2"]), Reply::Int(2));
        assert_eq!(h.run(&["hset", "h", "a", "3"]), Reply::Int(0));
        assert_eq!(
            h.run(&["hset", "h", "a"]),
            err("ERR wrong number of arguments for 'hset' command")
        );
        assert_eq!(h.run(&["hmset", "h", "c", "4"]), Reply::ok());
        assert_eq!(h.run(&["hsetnx", "h", "c", "5"]), Reply::Int(0));
        assert_eq!(h.run(&["hget", "h", "a"]), bulk("3"));
        assert_eq!(
            h.run(&["hmget", "h", "a", "x"]),
            Reply::Array(vec![bulk("3"), Reply::Nil])
        );
        assert_eq!(h.run(&["hlen", "h"]), Reply::Int(3));
        assert_eq!(h.run(&["hstrlen", "h", "a"]), Reply::Int(1));
        assert_eq!(h.run(&["hexists", "h", "b"]), Reply::Int(1));
        // Packed: two length bytes per pair.
        assert_eq!(
            h.ks.used_bytes(),
            1 + ENTRY_OVERHEAD + PACKED_OVERHEAD + 3 * (2 + 2)
        );
        // A value past 64 bytes moves the hash to its table.
        let long = "x".repeat(65);
        h.run(&["hset", "h", "c", &long]);
        assert_eq!(
            h.ks.used_bytes(),
            1 + ENTRY_OVERHEAD + 2 * (2 + HASH_FIELD_OVERHEAD) + (1 + 65 + HASH_FIELD_OVERHEAD)
        );
        h.run(&["hset", "h", "c", "4"]);
        assert_eq!(h.run(&["hdel", "h", "a", "b", "zz"]), Reply::Int(2));
        assert_eq!(h.run(&["hdel", "h", "c"]), Reply::Int(1));
        assert_eq!(h.run(&["exists", "h"]), Reply::Int(0));
        assert_eq!(h.ks.used_bytes(), 0);
        h.run(&["set", "s", "v"]);
        assert_eq!(
            h.run(&["hget", "s", "a"]),
            err(crate::resp::reply::WRONGTYPE)
        );
        assert_eq!(h.run(&["hgetall", "nope"]), Reply::Map(vec![]));
    }

    #[test]
    fn hash_counters() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["hincrby", "h", "n", "5"]), Reply::Int(5));
        assert_eq!(h.run(&["hincrbyfloat", "h", "f", "1.5"]), bulk("1.5"));
        h.run(&["hset", "h", "s", "abc"]);
        assert_eq!(
            h.run(&["hincrby", "h", "s", "1"]),
            err("ERR hash value is not an integer")
        );
        assert_eq!(
            h.run(&["hincrbyfloat", "h", "s", "1"]),
            err("ERR hash value is not a float")
        );
        assert_eq!(
            h.run(&["hincrby", "h", "n", "9223372036854775807"]),
            err("ERR increment or decrement would overflow")
        );
    }

    #[test]
    fn hscan_and_hrandfield() {
        let mut h = Harness::new();
        for i in 0..100 {
            h.run(&["hset", "h", &format!("f{i}"), "v"]);
        }
        let mut cursor = "0".to_string();
        let mut seen = std::collections::HashSet::new();
        loop {
            let Reply::Array(parts) = h.run(&["hscan", "h", &cursor, "COUNT", "7", "NOVALUES"])
            else {
                panic!()
            };
            let (Reply::Bulk(c), Reply::Array(fields)) = (&parts[0], &parts[1]) else {
                panic!()
            };
            for f in fields {
                assert!(seen.insert(format!("{f:?}")));
            }
            cursor = String::from_utf8(c.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 100);
        let Reply::Array(v) = h.run(&["hrandfield", "h", "5"]) else {
            panic!()
        };
        assert_eq!(v.len(), 5);
        let Reply::Array(v) = h.run(&["hrandfield", "h", "-200", "WITHVALUES"]) else {
            panic!()
        };
        assert_eq!(v.len(), 400);
        let Reply::Array(v) = h.run(&["hrandfield", "h", "500"]) else {
            panic!()
        };
        assert_eq!(v.len(), 100);
        assert_eq!(h.run(&["hrandfield", "nope"]), Reply::Nil);
        assert_eq!(h.run(&["hscan", "h", "x"]), err("ERR invalid cursor"));
    }

    /// A cursor left from a big hash's scan, used on a small hash under
    /// the same key: a packed hash is returned whole, in insertion order,
    /// cursor 0.
    #[test]
    fn hscan_of_a_packed_hash_from_any_cursor_is_whole() {
        let mut h = Harness::new();
        for i in 0..200 {
            h.run(&["hset", "h", &format!("f{i}"), "v"]);
        }
        let Reply::Array(parts) = h.run(&["hscan", "h", "0", "COUNT", "10"]) else {
            panic!()
        };
        let Reply::Bulk(c) = &parts[0] else { panic!() };
        let c = String::from_utf8(c.to_vec()).unwrap();
        assert_ne!(c, "0");
        h.run(&["del", "h"]);
        h.run(&["hset", "h", "b", "2", "a", "1"]);
        for cursor in [c.as_str(), "1", "18446744073709551615"] {
            assert_eq!(
                h.run(&["hscan", "h", cursor, "COUNT", "1"]),
                Reply::Array(vec![
                    bulk("0"),
                    Reply::Array(vec![bulk("b"), bulk("2"), bulk("a"), bulk("1")])
                ]),
                "cursor {cursor}"
            );
        }
    }

    /// HSCAN counts the fields it visits and the strings it replies apart:
    /// a MATCH that keeps nothing pays the visits only.
    #[test]
    fn hscan_counts_visits_and_replies_apart() {
        use crate::cmd::table::{SCAN_REPLY_MILLI, SCAN_VISIT_MILLI};
        let mut h = Harness::new();
        for i in 0..1000 {
            h.run(&["hset", "h", &format!("f{i}"), "v"]);
        }
        h.run(&["hscan", "h", "0", "MATCH", "nomatch", "COUNT", "10"]);
        assert_eq!(h.last_work, 100 * SCAN_VISIT_MILLI);
        h.run(&["hscan", "h", "0", "COUNT", "10"]);
        assert_eq!(h.last_work, 10 * (SCAN_VISIT_MILLI + 2 * SCAN_REPLY_MILLI));
        h.run(&["hscan", "h", "0", "COUNT", "10", "NOVALUES"]);
        assert_eq!(h.last_work, 10 * (SCAN_VISIT_MILLI + SCAN_REPLY_MILLI));
    }

    #[test]
    fn hscan_steps_keep_stable_fields_through_changes() {
        let mut h = Harness::new();
        for i in 0..1000 {
            h.run(&["hset", "h", &format!("stable:{i}"), "v"]);
        }
        // A MATCH that keeps nothing: COUNT * 10 fields visited, no more.
        let Reply::Array(parts) = h.run(&["hscan", "h", "0", "MATCH", "nomatch", "COUNT", "10"])
        else {
            panic!()
        };
        assert_eq!(parts, vec![bulk("900"), Reply::Array(vec![])]);
        // Fields come and go between calls (the hash grows past its
        // capacity, then shrinks): every stable field is returned.
        let mut churn = 0;
        let (names, calls) = scan_to_end(&mut h, &["hscan", "h"], &["COUNT", "5"], 2, |h, call| {
            if call < 60 {
                for _ in 0..40 {
                    h.run(&["hset", "h", &format!("churn:{churn}"), "v"]);
                    churn += 1;
                }
            } else {
                for _ in 0..60.min(churn) {
                    churn -= 1;
                    h.run(&["hdel", "h", &format!("churn:{churn}")]);
                }
            }
        });
        let seen: std::collections::HashSet<String> = names.into_iter().collect();
        for i in 0..1000 {
            assert!(seen.contains(&format!("stable:{i}")), "stable:{i} missed");
        }
        assert!(calls > 100, "{calls} calls");
        // Values follow their fields; NOVALUES gives fields only.
        let (names, _) = scan_to_end(&mut h, &["hscan", "h"], &["NOVALUES"], 1, |_, _| {});
        assert_eq!(names.len(), 1000 + churn);
    }

    #[test]
    fn hrandfield_picks_from_a_big_hash() {
        let mut h = Harness::new();
        for i in 0..5000 {
            h.run(&["hset", "h", &format!("f{i}"), &format!("v{i}")]);
        }
        let Reply::Array(v) = h.run(&["hrandfield", "h", "20", "WITHVALUES"]) else {
            panic!()
        };
        assert_eq!(v.len(), 40);
        let fields: std::collections::HashSet<String> =
            v.iter().step_by(2).map(|f| format!("{f:?}")).collect();
        assert_eq!(fields.len(), 20, "distinct");
        for pair in v.chunks(2) {
            let (Reply::Bulk(f), Reply::Bulk(val)) = (&pair[0], &pair[1]) else {
                panic!()
            };
            assert_eq!(val[..], [b"v", &f[1..]].concat()[..]);
        }
        let Reply::Array(v) = h.run(&["hrandfield", "h", "-30"]) else {
            panic!()
        };
        assert_eq!(v.len(), 30);
        assert!(matches!(h.run(&["hrandfield", "h"]), Reply::Bulk(_)));
    }
}
