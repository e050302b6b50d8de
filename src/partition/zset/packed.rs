//! The packed form of a sorted set (see [`crate::partition::packed`]):
//! `[member length][member][score tag][score]` per member, in ascending
//! (score, member) order, so ranks and ranges are a walk from the start.
//!
//! A score is stored in the fewest bytes that keep it exactly: its tag is
//! the number of bytes that follow — 1, 2 or 4 for an integral score that
//! fits an `i8`, `i16` or `i32` (little-endian), 8 for any other score (the
//! `f64`'s bits; -0.0 too, which keeps its sign). Redis's listpack also
//! stores integral scores as integers.
//!
//! Invariants: entries are in strictly ascending (score, member) order, no
//! member repeats, no score is NaN (commands reject NaN before calling).

use std::cmp::Ordering;

use super::{LexRange, ScoreRange};
use crate::partition::packed::{self, PACKED_MAX_LEN, Packed};

/// The encoded score: its tag and payload, in `bytes[..len]`.
struct Score {
    bytes: [u8; 9],
    len: usize,
}

fn encode_score(s: f64) -> Score {
    let mut bytes = [0u8; 9];
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
    bytes[0] = payload.len() as u8;
    bytes[1..=payload.len()].copy_from_slice(payload);
    Score {
        bytes,
        len: 1 + payload.len(),
    }
}

/// Bytes a member with this score takes packed (with its length byte).
pub(super) fn entry_bytes(member: &[u8], score: f64) -> usize {
    1 + member.len() + encode_score(score).len
}

/// The score whose tag is at `at`, and where the next entry starts.
fn score_at(buf: &[u8], at: usize) -> (f64, usize) {
    let n = usize::from(buf[at]);
    let p = &buf[at + 1..at + 1 + n];
    let s = match *p {
        [a] => f64::from(a as i8),
        [a, b] => f64::from(i16::from_le_bytes([a, b])),
        [a, b, c, d] => f64::from(i32::from_le_bytes([a, b, c, d])),
        _ => f64::from_le_bytes(p.try_into().unwrap_or_default()),
    };
    (s, at + 1 + n)
}

/// One entry, read at byte `at`.
#[derive(Clone, Copy)]
struct Entry<'a> {
    at: usize,
    member: &'a [u8],
    score: f64,
    next: usize,
}

fn entry_at(buf: &[u8], at: usize) -> Entry<'_> {
    let (member, s) = packed::string_at(buf, at);
    let (score, next) = score_at(buf, s);
    Entry {
        at,
        member,
        score,
        next,
    }
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
    fn entries(&self) -> impl Iterator<Item = Entry<'_>> {
        let buf = self.0.bytes();
        let mut at = 0;
        std::iter::from_fn(move || {
            (at < buf.len()).then(|| {
                let e = entry_at(buf, at);
                at = e.next;
                e
            })
        })
    }

    fn find(&self, member: &[u8]) -> Option<(usize, Entry<'_>)> {
        self.entries().enumerate().find(|(_, e)| e.member == member)
    }

    /// Sets `member`'s score; the previous score if it was a member, or
    /// [`Full`] (nothing changed) if it is new and the set is full.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Result<Option<f64>, Full> {
        let old = self.find(member).map(|(_, e)| (e.at, e.next, e.score));
        if let Some((_, _, s)) = old
            && s == score
        {
            return Ok(Some(s));
        }
        if old.is_none() && self.len() >= PACKED_MAX_LEN {
            return Err(Full);
        }
        // Where the entry goes: before the first greater entry (the old
        // entry of this member, at another score, is never equal).
        let mut pos = self
            .entries()
            .find(|e| cmp((e.score, e.member), (score, member)).is_gt())
            .map_or(self.0.bytes().len(), |e| e.at);
        let enc = encode_score(score);
        let parts: [&[u8]; 3] = [&packed::len_byte(member), member, &enc.bytes[..enc.len]];
        match old {
            // Its place is where it was (the common small change).
            Some((at, next, _)) if pos == at || pos == next => {
                self.0.splice(at, next - at, &parts, 0);
            }
            Some((at, next, _)) => {
                self.0.splice(at, next - at, &[], -1);
                if pos > at {
                    pos -= next - at;
                }
                self.0.splice(pos, 0, &parts, 1);
            }
            None => self.0.splice(pos, 0, &parts, 1),
        }
        Ok(old.map(|(_, _, s)| s))
    }

    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (_, e) = self.find(member)?;
        let (at, next, score) = (e.at, e.next, e.score);
        self.0.splice(at, next - at, &[], -1);
        Some(score)
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.find(member).map(|(_, e)| e.score)
    }

    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        self.find(member).map(|(r, _)| r)
    }

    pub fn get_by_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        self.entries().nth(rank).map(|e| (e.member, e.score))
    }

    /// All members in order (for picks that index them).
    pub fn all(&self) -> Vec<(&[u8], f64)> {
        self.entries().map(|e| (e.member, e.score)).collect()
    }

    /// Members in ascending order from 0-based rank `rank`.
    pub fn iter_from(&self, rank: usize) -> Iter<'_> {
        let buf = self.0.bytes();
        let at = self.entries().nth(rank).map_or(buf.len(), |e| e.at);
        Iter {
            buf,
            at,
            left: self.len().saturating_sub(rank),
        }
    }

    /// Members in descending order from 0-based (ascending) rank `rank`.
    pub fn iter_rev_from(&self, rank: usize) -> RevIter<'_> {
        let upto = if rank < self.len() { rank + 1 } else { 0 };
        RevIter {
            buf: self.0.bytes(),
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
        self.rank_span(|e| range.above_min(e.score), |e| range.below_max(e.score))
    }

    pub fn lex_ranks(&self, range: &LexRange<'_>) -> Option<(usize, usize)> {
        self.rank_span(|e| range.above_min(e.member), |e| range.below_max(e.member))
    }

    /// Removes the members of ranks `start..=end`; how many were removed.
    pub fn remove_rank_range(&mut self, start: usize, end: usize) -> usize {
        let buf_len = self.0.bytes().len();
        let mut entries = self.entries().skip(start);
        let Some(first) = entries.next() else {
            return 0;
        };
        let (from, mut to, mut n) = (first.at, first.next, 1);
        for e in entries.take(end - start) {
            (to, n) = (e.next, n + 1);
        }
        debug_assert!(to <= buf_len);
        self.0.splice(from, to - from, &[], -(n as isize));
        n
    }
}

/// Ascending iterator over a packed sorted set.
pub(super) struct Iter<'a> {
    buf: &'a [u8],
    at: usize,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        if self.left == 0 {
            return None;
        }
        let e = entry_at(self.buf, self.at);
        (self.at, self.left) = (e.next, self.left - 1);
        Some((e.member, e.score))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// Descending iterator over a packed sorted set: the entries' starts,
/// found by one walk, read backwards.
pub(super) struct RevIter<'a> {
    buf: &'a [u8],
    starts: Vec<u16>,
}

impl<'a> Iterator for RevIter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        let e = entry_at(self.buf, usize::from(self.starts.pop()?));
        Some((e.member, e.score))
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
            (0.0, 2),
            (-128.0, 2),
            (127.0, 2),
            (128.0, 3),
            (-32768.0, 3),
            (40000.0, 5),
            (f64::from(i32::MIN), 5),
            (f64::from(i32::MAX) + 1.0, 9),
            (-0.0, 9),
            (0.5, 9),
            (1e300, 9),
            (f64::INFINITY, 9),
            (f64::NEG_INFINITY, 9),
            (f64::MIN_POSITIVE, 9),
        ] {
            let e = encode_score(s);
            assert_eq!(e.len, len, "{s}");
            let (back, next) = score_at(&e.bytes, 0);
            assert_eq!(back.to_bits(), s.to_bits(), "{s}");
            assert_eq!(next, len);
        }
    }
}
