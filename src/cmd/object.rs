//! OBJECT and MEMORY USAGE: what a key's value looks like inside.
//!
//! OBJECT ENCODING names the encoding Redis 7.0 would use for the value
//! under the cache's thresholds (`hash-max-listpack-*`,
//! `zset-max-listpack-*`, `set-max-intset-entries`): Stratus keeps its own
//! layouts, so this is the closest Redis name, which clients and tools
//! expect. It walks at most the threshold's number of elements (counted as
//! work); a collection above it is decided by its length alone.

use bytes::Bytes;

use super::args::{is, parse_i64};
use super::params::Encoding;
use super::{Ctx, OpError};
use crate::partition::Value;
use crate::resp::{Reply, reply};

const OBJECT_SUBS: &[(&str, usize)] = &[
    ("encoding", 3),
    ("freq", 3),
    ("idletime", 3),
    ("refcount", 3),
    ("help", 2),
];

/// Redis's name for the encoding of `v` under thresholds `t`, and the
/// elements looked at to decide.
fn encoding(t: Encoding, v: &Value) -> (&'static str, u64) {
    let small_hash = |b: &[u8]| b.len() as u64 <= t.hash_value;
    let name = match v {
        Value::Str(s) => {
            return if s.len() <= 20 && parse_i64(s).is_some() {
                ("int", 0)
            } else if s.len() <= 44 {
                ("embstr", 0)
            } else {
                ("raw", 0)
            };
        }
        Value::List(_) => return ("quicklist", 0),
        Value::Stream(_) => return ("stream", 0),
        Value::Hash(h) if h.len() as u64 > t.hash_entries => return ("hashtable", 0),
        Value::Set(s) if s.len() as u64 > t.set_intset_entries => return ("hashtable", 0),
        Value::ZSet(z) if z.len() as u64 > t.zset_entries => return ("skiplist", 0),
        Value::Hash(h) => {
            if h.iter().all(|(f, v)| small_hash(f) && small_hash(v)) {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Value::Set(s) => {
            if s.iter().all(|m| m.len() <= 20 && parse_i64(m).is_some()) {
                "intset"
            } else {
                "hashtable"
            }
        }
        Value::ZSet(z) => {
            if z.iter().all(|(m, _)| m.len() as u64 <= t.zset_value) {
                "listpack"
            } else {
                "skiplist"
            }
        }
    };
    let walked = match v {
        Value::Hash(h) => h.len(),
        Value::Set(s) => s.len(),
        Value::ZSet(z) => z.len(),
        _ => 0,
    };
    (name, walked as u64)
}

/// OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT key, OBJECT HELP
pub fn object(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let Some((sub, arity)) = OBJECT_SUBS.iter().find(|(n, _)| is(&args[1], n)) else {
        return Err(OpError::Text(reply::unknown_subcommand("object", &args[1])));
    };
    if args.len() != *arity {
        return Err(OpError::Text(reply::wrong_arity(&format!("object|{sub}"))));
    }
    if *sub == "help" {
        return Ok(Reply::Array(
            reply::OBJECT_HELP
                .iter()
                .map(|l| Reply::status(l))
                .collect(),
        ));
    }
    let now = ctx.now;
    let Some(entry) = ctx.ks.peek_live(&args[2], now) else {
        return Ok(Reply::Nil);
    };
    match *sub {
        "encoding" => {
            let (name, walked) = encoding(ctx.encoding, &entry.value);
            ctx.work += walked;
            Ok(Reply::bulk(name))
        }
        "freq" => Err(OpError::Static(reply::OBJECT_FREQ_NOT_LFU)),
        "idletime" => Ok(Reply::Int(
            ctx.ks.idle_secs(&args[2], now).unwrap_or_default() as i64,
        )),
        _ => Ok(Reply::Int(1)),
    }
}

/// MEMORY USAGE key [SAMPLES count] | MEMORY HELP | MEMORY PURGE: the
/// bytes the key is accounted with (what its cache is billed for).
pub fn memory(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    if is(&args[1], "help") && args.len() == 2 {
        return Ok(Reply::Array(
            reply::MEMORY_HELP
                .iter()
                .map(|l| Reply::status(l))
                .collect(),
        ));
    }
    if is(&args[1], "purge") && args.len() == 2 {
        return Ok(Reply::ok());
    }
    // Stratus accounts each value exactly and has no allocator report.
    if is(&args[1], "doctor") && args.len() == 2 {
        return Ok(Reply::Verbatim(reply::MEMORY_DOCTOR_FINE.into()));
    }
    if is(&args[1], "malloc-stats") && args.len() == 2 {
        return Ok(Reply::Verbatim(reply::MALLOC_STATS_UNSUPPORTED.into()));
    }
    if !is(&args[1], "usage") {
        return Err(OpError::Text(reply::unknown_subcommand("memory", &args[1])));
    }
    if args.len() < 3 {
        return Err(OpError::Text(reply::wrong_arity("memory|usage")));
    }
    // SAMPLES n (any number of times, as Redis): an integer, not negative.
    for pair in args[3..].chunks(2) {
        match pair {
            [opt, n] if is(opt, "samples") => match parse_i64(n) {
                None => return Err(OpError::NotInteger),
                Some(n) if n < 0 => return Err(OpError::Syntax),
                Some(_) => {}
            },
            _ => return Err(OpError::Syntax),
        }
    }
    let now = ctx.now;
    Ok(match ctx.ks.peek_live(&args[2], now) {
        Some(e) => Reply::Int(e.memory_usage(args[2].len()) as i64),
        None => Reply::Nil,
    })
}
