//! SORT and SORT_RO: the elements of a list, set or sorted set, sorted
//! numerically or (ALPHA) by bytes, optionally weighted by other keys (BY),
//! projected through other keys (GET), sliced (LIMIT) and stored as a list
//! (STORE).
//!
//! BY and GET patterns name other keys by substituting each element for the
//! pattern's first `*` (`weight_*`, `obj_*->field` for a hash field). As in
//! Redis Cluster (7.2 and later), a pattern is accepted only when every key
//! it can form is in the sorted key's slot (its hash tag fixes the slot),
//! so every key SORT reads lives in the partition running it; otherwise
//! the error says so, in Redis's words. `GET #` (the element itself) needs
//! no key and is always accepted. A cache with cluster mode disabled is one
//! partition that owns every slot: any pattern is accepted there, as in
//! standalone Redis.
//!
//! Phases: 1 parse the options (and check the patterns' slots); 2 load the
//! elements (the whole collection, or only the LIMIT range when nothing is
//! sorted); 3 weigh them (BY lookups or the elements themselves); 4 sort;
//! 5 project (GET) into the reply, or into a list stored under STORE, whose
//! size is checked against the room left before each element is added.
//!
//! Metering: every element loaded, looked up (BY, GET) and returned or
//! stored counts one element (the row's per-element cost), and a sort of
//! n elements counts n·log2(n) more for its comparisons.

use bytes::Bytes;

use super::args::{int, is};
use super::{Ctx, OpError};
use crate::partition::value::{LIST_ELEM_OVERHEAD, ListValue};
use crate::partition::{Value, key_slot};
use crate::resp::{Reply, reply};

/// The slot every key a pattern can form hashes to, or `None` when the
/// keys may land in different slots (a wildcard or an escape before the
/// hash tag closes), as Redis's `patternHashSlot`.
fn pattern_slot(pattern: &[u8]) -> Option<u16> {
    let mut open: Option<usize> = None;
    let mut empty_tag = false;
    for (i, &c) in pattern.iter().enumerate() {
        if c == b'*' || c == b'?' || c == b'[' || c == b'\\' {
            return None;
        }
        if open.is_none() && !empty_tag && c == b'{' {
            open = Some(i);
        } else if let Some(s) = open
            && c == b'}'
        {
            if i == s + 1 {
                open = None;
                empty_tag = true;
            } else {
                return Some(key_slot(&pattern[s..=i]));
            }
        }
    }
    Some(key_slot(pattern))
}

/// The value a pattern names for `element`: the element itself for `#`,
/// the string under the substituted key, or a hash field for `...->field`;
/// `None` if there is no `*`, the key is missing or of another type.
fn lookup_pattern(ctx: &mut Ctx<'_>, pattern: &[u8], element: &[u8]) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(element.to_vec());
    }
    let star = pattern.iter().position(|&c| c == b'*')?;
    let rest = &pattern[star + 1..];
    let (post, field) = match rest.windows(2).position(|w| w == b"->") {
        Some(at) if at + 2 < rest.len() => (&rest[..at], Some(&rest[at + 2..])),
        _ => (rest, None),
    };
    let mut key = Vec::with_capacity(star + element.len() + post.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(post);
    // Only keys of this partition (the patterns' slots were checked).
    if !ctx.ks.owns(key_slot(&key)) {
        return None;
    }
    let e = ctx.ks.get(&key, ctx.now)?;
    match (&e.value, field) {
        (Value::Str(s), None) => Some(s.clone()),
        (Value::Hash(h), Some(f)) => h.get(f).map(<[u8]>::to_vec),
        _ => None,
    }
}

/// A number as Redis's `strtod` reads a weight: leading spaces skipped, the
/// whole rest a float (an empty string is 0); `None` when it is not one or
/// is NaN.
fn weight(s: &[u8]) -> Option<f64> {
    let t = std::str::from_utf8(s).ok()?.trim_start();
    if t.is_empty() {
        return Some(0.0);
    }
    let v: f64 = t.parse().ok()?;
    let named_inf = matches!(
        t.to_ascii_lowercase().trim_start_matches(['+', '-']),
        "inf" | "infinity"
    );
    // NaN is refused; so is a finite text out of range (strtod's ERANGE).
    (!v.is_nan() && (v.is_finite() || named_inf)).then_some(v)
}

/// SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC]
/// [ALPHA] [STORE destination], and SORT_RO (no STORE).
pub fn sort(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    // Phase 1: options.
    let readonly = is(&args[0], "sort_ro");
    let key = &args[1];
    // The keys a pattern forms must be in the sorted key's slot — any slot
    // with cluster mode disabled (as Redis's `patternHashSlot` check).
    let mode = ctx.cluster_mode;
    let slot = key_slot(key);
    let same_slot =
        |p: &[u8]| mode.spans_slots() || pattern_slot(p).is_some_and(|s| mode.together(s, slot));
    let (mut desc, mut alpha, mut dontsort) = (false, false, false);
    let (mut limit_start, mut limit_count): (i64, i64) = (0, -1);
    let mut by: Option<&Bytes> = None;
    let mut gets: Vec<&Bytes> = Vec::new();
    let mut store: Option<&Bytes> = None;
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if is(a, "ASC") {
            desc = false;
        } else if is(a, "DESC") {
            desc = true;
        } else if is(a, "ALPHA") {
            alpha = true;
        } else if is(a, "LIMIT") && left >= 2 {
            limit_start = int(&args[j + 1])?;
            limit_count = int(&args[j + 2])?;
            j += 2;
        } else if !readonly && is(a, "STORE") && left >= 1 {
            store = Some(&args[j + 1]);
            j += 1;
        } else if is(a, "BY") && left >= 1 {
            let p = &args[j + 1];
            by = Some(p);
            if !p.contains(&b'*') {
                dontsort = true;
            } else if !same_slot(&p[..]) {
                return Err(OpError::Static(reply::SORT_BY_CROSSSLOT));
            }
            j += 1;
        } else if is(a, "GET") && left >= 1 {
            let p = &args[j + 1];
            if &p[..] != b"#" && !same_slot(&p[..]) {
                return Err(OpError::Static(reply::SORT_GET_CROSSSLOT));
            }
            gets.push(p);
            j += 1;
        } else {
            return Err(OpError::Syntax);
        }
        j += 1;
    }

    // Phase 2: the elements.
    let kind = match ctx.ks.get(key, ctx.now).map(|e| &e.value) {
        None => None,
        Some(Value::List(_)) => Some(0),
        Some(Value::Set(_)) => Some(1),
        Some(Value::ZSet(_)) => Some(2),
        Some(_) => return Err(OpError::WrongType),
    };
    // A set has no order of its own: sorted when stored or when a script
    // sorts it (its result must not depend on the set's layout), as Redis
    // does.
    if dontsort && kind == Some(1) && (store.is_some() || ctx.script.is_some()) {
        dontsort = false;
        alpha = true;
        by = None;
    }
    let len = match ctx.ks.peek_live(key, ctx.now).map(|e| &e.value) {
        Some(Value::List(l)) => l.len(),
        Some(Value::Set(s)) => s.len(),
        Some(Value::ZSet(z)) => z.len(),
        _ => 0,
    } as i64;
    let mut start = limit_start.max(0).min(len);
    let count = limit_count.max(-1).min(len);
    let mut end = if count < 0 {
        len - 1
    } else {
        start + count - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    let mut elements: Vec<Vec<u8>> = match ctx.ks.peek_live(key, ctx.now).map(|e| &e.value) {
        Some(Value::List(l)) if dontsort => {
            if end >= start {
                let (a, b) = (start as usize, end as usize);
                if desc {
                    let n = l.len();
                    l.range(n - 1 - b, n - 1 - a)
                        .rev()
                        .map(<[u8]>::to_vec)
                        .collect()
                } else {
                    l.range(a, b).map(<[u8]>::to_vec).collect()
                }
            } else {
                Vec::new()
            }
        }
        Some(Value::ZSet(z)) if dontsort => {
            if end >= start {
                let n = (end - start + 1) as usize;
                if desc {
                    z.iter_rev_from(z.len() - 1 - start as usize)
                        .take(n)
                        .map(|(m, _)| m.to_vec())
                        .collect()
                } else {
                    z.iter_from(start as usize)
                        .take(n)
                        .map(|(m, _)| m.to_vec())
                        .collect()
                }
            } else {
                Vec::new()
            }
        }
        Some(Value::List(l)) => l.iter().map(<[u8]>::to_vec).collect(),
        Some(Value::Set(s)) => s.iter().map(<[u8]>::to_vec).collect(),
        Some(Value::ZSet(z)) => z.iter().map(|(m, _)| m.to_vec()).collect(),
        _ => Vec::new(),
    };
    ctx.work += elements.len() as u64;
    if dontsort && matches!(kind, Some(0) | Some(2)) {
        // Loaded in their own order, the LIMIT range only.
        if end >= start {
            end -= start;
            start = 0;
        }
    }

    // Phases 3 and 4: weigh and sort.
    if !dontsort {
        let n = elements.len();
        let mut weighed: Vec<(Vec<u8>, f64, Option<Vec<u8>>)> = Vec::with_capacity(n);
        let mut bad_weight = false;
        for el in elements {
            let byval = match by {
                Some(p) => {
                    ctx.work += 1;
                    lookup_pattern(ctx, p, &el)
                }
                None => Some(el.clone()),
            };
            let (mut score, mut cmp) = (0.0, None);
            if let Some(v) = byval {
                if alpha {
                    if by.is_some() {
                        cmp = Some(v);
                    }
                } else {
                    match weight(&v) {
                        Some(w) => score = w,
                        None => bad_weight = true,
                    }
                }
            }
            weighed.push((el, score, cmp));
        }
        if bad_weight {
            return Err(OpError::Static(reply::SORT_NOT_DOUBLE));
        }
        ctx.work += (n as u64) * u64::from(usize::BITS - n.leading_zeros());
        let by_pattern = by.is_some();
        weighed.sort_by(|a, b| {
            let ord = if !alpha {
                a.1.partial_cmp(&b.1)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.0.cmp(&b.0))
            } else if by_pattern {
                match (&a.2, &b.2) {
                    (Some(x), Some(y)) => x.cmp(y),
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                }
            } else {
                a.0.cmp(&b.0)
            };
            if desc { ord.reverse() } else { ord }
        });
        elements = weighed.into_iter().map(|(el, _, _)| el).collect();
    }

    // Phase 5: project and reply, or store.
    let picked: &[Vec<u8>] = if end >= start {
        &elements[start as usize..=end as usize]
    } else {
        &[]
    };
    let mut out: Vec<Option<Vec<u8>>> = Vec::new();
    let room = store.map(|d| ctx.room_for_store(d));
    let mut size = 0usize;
    for el in picked {
        let row: Vec<Option<Vec<u8>>> = if gets.is_empty() {
            vec![Some(el.clone())]
        } else {
            gets.iter().map(|p| lookup_pattern(ctx, p, el)).collect()
        };
        ctx.work += row.len() as u64 + if gets.is_empty() { 0 } else { row.len() as u64 };
        for v in row {
            if let Some(room) = room {
                size += v.as_ref().map_or(0, Vec::len) + LIST_ELEM_OVERHEAD;
                if size > room {
                    return Err(OpError::Static(reply::OOM));
                }
            }
            out.push(v);
        }
    }
    let Some(dest) = store else {
        return Ok(Reply::Array(
            out.into_iter()
                .map(|v| v.map_or(Reply::Nil, Reply::bulk))
                .collect(),
        ));
    };
    let n = out.len();
    if n == 0 {
        ctx.ks.remove(dest, ctx.now);
        return Ok(Reply::Int(0));
    }
    let mut list = ListValue::default();
    for v in &out {
        list.push_back(v.as_deref().unwrap_or_default());
    }
    ctx.reserve_store(dest, list.mem_bytes())?;
    ctx.ks.insert(dest, Value::List(Box::new(list)), 0, ctx.now);
    Ok(Reply::Int(n as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_span_slots_with_cluster_mode_disabled() {
        use crate::cmd::test_util::Harness;
        let mut h = Harness::new();
        h.run(&["rpush", "ids", "2", "1"]);
        h.run(&["mset", "w_1", "20", "w_2", "10", "o_1", "one", "o_2", "two"]);
        let by = h.run(&["sort", "ids", "by", "w_*", "get", "o_*"]);
        assert_eq!(by, Reply::err(reply::SORT_BY_CROSSSLOT));
        h.cluster_mode = crate::partition::ClusterMode::Disabled;
        let by = h.run(&["sort", "ids", "by", "w_*", "get", "o_*"]);
        assert_eq!(
            by,
            Reply::Array(vec![
                Reply::Bulk(Bytes::from_static(b"two")),
                Reply::Bulk(Bytes::from_static(b"one")),
            ])
        );
    }

    #[test]
    fn pattern_slots_follow_redis() {
        assert_eq!(pattern_slot(b"w_*"), None);
        assert_eq!(pattern_slot(b"{t}w_*"), Some(key_slot(b"t")));
        assert_eq!(pattern_slot(b"{t}w_*->f"), Some(key_slot(b"t")));
        assert_eq!(pattern_slot(b"{}w_*"), None);
        assert_eq!(pattern_slot(b"w_{*}"), None);
        assert_eq!(pattern_slot(b"abc"), Some(key_slot(b"abc")));
        assert_eq!(pattern_slot(b"{t\\}*"), None);
    }

    #[test]
    fn weights_read_as_strtod() {
        assert_eq!(weight(b""), Some(0.0));
        assert_eq!(weight(b" 1.5"), Some(1.5));
        assert_eq!(weight(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(weight(b"1e3"), Some(1000.0));
        assert_eq!(weight(b"nan"), None);
        assert_eq!(weight(b"1x"), None);
    }
}
