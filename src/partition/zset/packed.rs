//! The packed form of a sorted set (see [`crate::partition::packed`]): an
//! entry per member, keyed by the member, its payload the score, in
//! ascending (score, member) order, so ranks and ranges are a walk from
//! the start.
//!
//! A score is stored in the fewest bytes that keep it exactly (the
//! payload's length tells which): 1, 2 or 4 for an integral score that
//! fits an `i8`, `i16` or `i32` (little-endian), 8 for any other score (the
//! `f64`'s bits; -0.0 too, which keeps its sign). Redis's listpack also
//! stores integral scores as integers.
//!
//! Invariants: entries are in strictly ascending (score, member) order, no
//! member repeats, no score is NaN (commands reject NaN before calling).

use std::cmp::Ordering;

use super::{LexRange, ScoreRange};
use crate::partition::packed::{self, Entry, PACKED_MAX_LEN, Packed};

/// An encoded score, in `bytes[..len]`.
struct Score {
    bytes: [u8; 8],
    len: usize,
}

impl Score {
    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

fn encode_score(s: f64) -> Score {
    let mut bytes = [0u8; 8];
    let int = (s.fract() == 0.0 && !(s == 0.0 && s.is_sign_negative()))
        .then_some(s)
        .filter(|s| (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(s))
        .map(|s| s as i32);
    let payload: &[u8] = match int {
        Some(i) if i8::try_from(i).is_ok() => &(i as i8).to_le_bytes(),
        Some(i) if i16::try_from(i).is_ok() => &(i as i16).to_le_bytes(),
        Some(i) => &i.to_le_bytes(),
        None => &s.to_le_bytes(),
    };
    bytes[..payload.len()].copy_from_slice(payload);
    Score {
        bytes,
        len: payload.len(),
    }
}

/// Bytes a member with this score takes packed.
pub(super) fn entry_bytes(member: &[u8], score: f64) -> usize {
    packed::ENTRY_HEADER + member.len() + encode_score(score).len
}

/// An encoded score (an entry's payload) as the score.
fn decode_score(p: &[u8]) -> f64 {
    match *p {
        [a] => f64::from(a as i8),
        [a, b] => f64::from(i16::from_le_bytes([a, b])),
        [a, b, c, d] => f64::from(i32::from_le_bytes([a, b, c, d])),
        _ => f64::from_le_bytes(p.try_into().unwrap_or_default()),
    }
}

/// An entry's score (decoded when asked for: a lookup by member skips it).
fn score(e: &Entry<'_>) -> f64 {
    decode_score(e.payload)
}

/// (score, member) order; scores are never NaN.
fn cmp(a: (f64, &[u8]), b: (f64, &[u8])) -> Ordering {
    a.0.partial_cmp(&b.0)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.1.cmp(b.1))
}

/// The insert did not fit: the set is full (the caller converts it).
pub(super) struct Full;

/// A packed sorted set (see the module doc).
#[derive(Debug, Clone, Default)]
pub(super) struct PackedZSet(Packed);

impl PackedZSet {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn mem_bytes(&self) -> usize {
        self.0.mem_bytes()
    }

    /// Entries in order, with their byte positions.
    fn entries(&self) -> packed::Entries<'_> {
        self.0.entries()
    }

    fn find(&self, member: &[u8]) -> Option<(usize, Entry<'_>)> {
        self.0.find(member)
    }

    /// Sets `member`'s score; the previous score if it was a member, or
    /// [`Full`] (nothing changed) if it is new and the set is full.
    pub fn insert(&mut self, member: &[u8], new: f64) -> Result<Option<f64>, Full> {
        // One walk: the member's entry, and where the new entry goes
        // (before the first greater entry other than the member's own).
        let (mut old, mut pos) = (None, None);
        for e in self.entries() {
            if old.is_none() && e.key == member {
                old = Some((e.at, e.next, score(&e)));
            } else if pos.is_none() && cmp((score(&e), e.key), (new, member)).is_gt() {
                pos = Some(e.at);
            }
            if old.is_some() && pos.is_some() {
                break;
            }
        }
        if let Some((_, _, s)) = old
            && s == new
        {
            return Ok(Some(s));
        }
        if old.is_none() && self.len() >= PACKED_MAX_LEN {
            return Err(Full);
        }
        let mut pos = pos.unwrap_or(self.0.end());
        let enc = encode_score(new);
        match old {
            // Its place is where it was (the common small change).
            Some((at, next, _)) if pos == at || pos == next => {
                self.0.replace(at, next, member, enc.bytes());
            }
            Some((at, next, _)) => {
                self.0.remove(at, next, 1);
                if pos > at {
                    pos -= next - at;
                }
                self.0.insert(pos, member, enc.bytes());
            }
            None => self.0.insert(pos, member, enc.bytes()),
        }
        Ok(old.map(|(_, _, s)| s))
    }

    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (_, e) = self.find(member)?;
        let (at, next, s) = (e.at, e.next, score(&e));
        self.0.remove(at, next, 1);
        Some(s)
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.find(member).map(|(_, e)| score(&e))
    }

    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        self.find(member).map(|(r, _)| r)
    }

    pub fn get_by_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        self.entries().nth(rank).map(|e| (e.key, score(&e)))
    }

    /// All members in order (for picks that index them).
    pub fn all(&self) -> Vec<(&[u8], f64)> {
        self.entries().map(|e| (e.key, score(&e))).collect()
    }

    /// Members in ascending order from 0-based rank `rank`.
    pub fn iter_from(&self, rank: usize) -> Iter<'_> {
        let at = self.entries().nth(rank).map_or(self.0.end(), |e| e.at);
        Iter {
            entries: self.0.entries_from(at),
            left: self.len().saturating_sub(rank),
        }
    }

    /// Members in descending order from 0-based (ascending) rank `rank`.
    pub fn iter_rev_from(&self, rank: usize) -> RevIter<'_> {
        let upto = if rank < self.len() { rank + 1 } else { 0 };
        RevIter {
            packed: &self.0,
            // A packed block is at most 128 * 74 bytes.
            starts: self.entries().take(upto).map(|e| e.at as u16).collect(),
        }
    }

    /// Ranks (first, last) of the members for which `above_min` holds
    /// after a prefix where it does not, up to the first for which
    /// `below_max` fails: a walk from the start, the skip list's descent
    /// made linear.
    fn rank_span(
        &self,
        above_min: impl Fn(&Entry<'_>) -> bool,
        below_max: impl Fn(&Entry<'_>) -> bool,
    ) -> Option<(usize, usize)> {
        let (mut first, mut end, mut past_min) = (0, 0, false);
        for e in self.entries() {
            past_min = past_min || above_min(&e);
            if !past_min {
                first += 1;
            }
            if !below_max(&e) {
                break;
            }
            end += 1;
        }
        (first < end).then(|| (first, end - 1))
    }

    pub fn score_ranks(&self, range: &ScoreRange) -> Option<(usize, usize)> {
        self.rank_span(|e| range.above_min(score(e)), |e| range.below_max(score(e)))
    }

    pub fn lex_ranks(&self, range: &LexRange<'_>) -> Option<(usize, usize)> {
        self.rank_span(|e| range.above_min(e.key), |e| range.below_max(e.key))
    }

    /// Removes the members of ranks `start..=end`; how many were removed.
    pub fn remove_rank_range(&mut self, start: usize, end: usize) -> usize {
        let mut entries = self.entries().skip(start);
        let Some(first) = entries.next() else {
            return 0;
        };
        let (from, mut to, mut n) = (first.at, first.next, 1);
        for e in entries.take(end - start) {
            (to, n) = (e.next, n + 1);
        }
        self.0.remove(from, to, n);
        n
    }
}

/// Ascending iterator over a packed sorted set.
pub(super) struct Iter<'a> {
    entries: packed::Entries<'a>,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        let e = self.entries.next()?;
        self.left -= 1;
        Some((e.key, score(&e)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// Descending iterator over a packed sorted set: the entries' starts,
/// found by one walk, read backwards.
pub(super) struct RevIter<'a> {
    packed: &'a Packed,
    starts: Vec<u16>,
}

impl<'a> Iterator for RevIter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        let at = usize::from(self.starts.pop()?);
        let e = self.packed.entries_from(at).next()?;
        Some((e.key, score(&e)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.starts.len(), Some(self.starts.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_take_the_fewest_exact_bytes() {
        for (s, len) in [
            (0.0, 1),
            (-128.0, 1),
            (127.0, 1),
            (128.0, 2),
            (-32768.0, 2),
            (40000.0, 4),
            (f64::from(i32::MIN), 4),
            (f64::from(i32::MAX) + 1.0, 8),
            (-0.0, 8),
            (0.5, 8),
            (1e300, 8),
            (f64::INFINITY, 8),
            (f64::NEG_INFINITY, 8),
            (f64::MIN_POSITIVE, 8),
        ] {
            let e = encode_score(s);
            assert_eq!(e.len, len, "{s}");
            assert_eq!(decode_score(e.bytes()).to_bits(), s.to_bits(), "{s}");
        }
    }
}
