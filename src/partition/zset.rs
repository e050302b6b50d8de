//! Sorted sets: members ordered by (score, member), with score lookup,
//! rank, range-by-score/lex/rank, and random picks.
//!
//! Two forms behind one API, as Redis's listpack and skiplist encodings:
//! 1. packed ([`packed`], over [`crate::partition::packed`]): entries in
//!    (score, member) order in one exact-size block while the set has at
//!    most [`PACKED_MAX_LEN`] members of at most [`PACKED_MAX_BYTES`] bytes;
//!    every operation is a walk of at most that many entries;
//! 2. the skip list ([`skiplist`]): O(log n) everything, once the set has
//!    outgrown the packed form. A set converts (insert of the member that
//!    does not fit) and never converts back, as Redis.
//!
//! ZSCAN: a packed set is returned whole from any cursor (it is small, as
//! Redis returns a listpack); a skip list's arena positions are walked
//! downwards ([`crate::partition::scan::scan_step`]).
//!
//! Invariants: no score is NaN (commands reject NaN before calling); ranks
//! in this API are 0-based; [`ZSetValue::mem_bytes`] is the packed block's
//! charge ([`PACKED_OVERHEAD`] and its bytes: a member costs its length
//! plus 3 to 10 bytes, see [`packed`]) or the skip list's (member lengths
//! plus [`ZSET_MEMBER_OVERHEAD`] each), and [`Charge`] predicts it for a
//! set about to be built.

mod packed;
mod skiplist;

use rand::Rng;

#[cfg(doc)]
use crate::partition::packed::PACKED_MAX_BYTES;
use crate::partition::packed::{self as packing, PACKED_MAX_LEN, PACKED_OVERHEAD};
use packed::PackedZSet;
use skiplist::{SkipIter, SkipList};

/// Bytes charged per member of a skip list on top of its bytes: the
/// 64-byte arena node (member pointer, score, back link, up to three links
/// inline: 98.4% of nodes), the member's heap block (header and rounding)
/// and the 4-byte index entry with its control byte at the table's load
/// factor.
pub const ZSET_MEMBER_OVERHEAD: usize = 96;

/// One end of a score range: `(5` is exclusive, `5` inclusive, `-inf`/`+inf`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

/// A score interval, as ZRANGEBYSCORE and ZCOUNT take it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    pub min: ScoreBound,
    pub max: ScoreBound,
}

impl ScoreRange {
    pub fn above_min(&self, s: f64) -> bool {
        if self.min.exclusive {
            s > self.min.value
        } else {
            s >= self.min.value
        }
    }

    pub fn below_max(&self, s: f64) -> bool {
        if self.max.exclusive {
            s < self.max.value
        } else {
            s <= self.max.value
        }
    }

    pub fn contains(&self, s: f64) -> bool {
        self.above_min(s) && self.below_max(s)
    }

    /// No score can be in it (Redis's `zslIsInRange` quick rejection).
    fn is_empty(&self) -> bool {
        self.min.value > self.max.value
            || (self.min.value == self.max.value && (self.min.exclusive || self.max.exclusive))
    }
}

/// One end of a lexicographic range: `-`, `+`, `[a` (inclusive), `(a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LexBound<'a> {
    Min,
    Max,
    Inclusive(&'a [u8]),
    Exclusive(&'a [u8]),
}

/// A member interval, as ZRANGEBYLEX takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexRange<'a> {
    pub min: LexBound<'a>,
    pub max: LexBound<'a>,
}

impl LexRange<'_> {
    pub fn above_min(&self, m: &[u8]) -> bool {
        match self.min {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Inclusive(b) => m >= b,
            LexBound::Exclusive(b) => m > b,
        }
    }

    pub fn below_max(&self, m: &[u8]) -> bool {
        match self.max {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Inclusive(b) => m <= b,
            LexBound::Exclusive(b) => m < b,
        }
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        self.above_min(m) && self.below_max(m)
    }
}

/// A sorted set (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct ZSetValue {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    Packed(PackedZSet),
    /// Boxed, so a packed set stays a small block.
    Skip(Box<SkipList>),
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::Packed(PackedZSet::default())
    }
}

impl PartialEq for ZSetValue {
    fn eq(&self, other: &ZSetValue) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl ZSetValue {
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.len(),
            Repr::Skip(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the set is in its packed form.
    pub fn is_packed(&self) -> bool {
        matches!(self.repr, Repr::Packed(_))
    }

    pub fn mem_bytes(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.mem_bytes(),
            Repr::Skip(s) => s.mem_bytes(),
        }
    }

    /// Sets `member`'s score; returns the previous score if it was a member.
    /// A packed set converts to the skip list when the member does not fit.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        if let Repr::Packed(p) = &mut self.repr
            // A member too long is new: it converts the set as a full one.
            && packing::fits(member)
            && let Ok(old) = p.insert(member, score)
        {
            return old;
        }
        self.unpack().insert(member, score)
    }

    /// Prepares for up to `additional` new members (a ZADD's, a store's):
    /// a packed set they could take past [`PACKED_MAX_LEN`] moves to the
    /// skip list now, as Redis's `zsetTypeMaybeConvert`, rather than after
    /// inserts into the packed form that the conversion would undo.
    pub fn reserve(&mut self, additional: usize) {
        if self.is_packed() && self.len().saturating_add(additional) > PACKED_MAX_LEN {
            self.unpack();
        }
    }

    /// The skip list, converting a packed set to it first.
    fn unpack(&mut self) -> &mut SkipList {
        if let Repr::Packed(p) = &self.repr {
            let mut s = SkipList::default();
            for (m, score) in p.iter_from(0) {
                s.insert(m, score);
            }
            self.repr = Repr::Skip(Box::new(s));
        }
        match &mut self.repr {
            Repr::Skip(s) => s,
            Repr::Packed(_) => unreachable!("converted above"),
        }
    }

    /// Removes `member`; returns its score if it was a member.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.repr {
            Repr::Packed(p) => p.remove(member),
            Repr::Skip(s) => s.remove(member),
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Packed(p) => p.score(member),
            Repr::Skip(s) => s.score(member),
        }
    }

    /// The 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Packed(p) => p.rank(member),
            Repr::Skip(s) => s.rank(member),
        }
    }

    /// The member and score at 0-based rank `rank`.
    pub fn get_by_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        match &self.repr {
            Repr::Packed(p) => p.get_by_rank(rank),
            Repr::Skip(s) => s.get_by_rank(rank),
        }
    }

    /// Positions ZSCAN walks (see [`crate::partition::scan::scan_step`]):
    /// a skip list's arena slots, a packed set's ranks.
    pub fn scan_positions(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.len(),
            Repr::Skip(s) => s.scan_positions(),
        }
    }

    /// The member at scan position `p`, if that slot holds one.
    pub fn at_position(&self, p: usize) -> Option<(&[u8], f64)> {
        match &self.repr {
            Repr::Packed(z) => z.get_by_rank(p),
            Repr::Skip(s) => s.at_position(p),
        }
    }

    /// A uniformly random member (O(1) expected in a skip list, see
    /// `skiplist::SkipList::random`; a walk in a packed set).
    pub fn random(&self, rng: &mut impl Rng) -> Option<(&[u8], f64)> {
        match &self.repr {
            Repr::Packed(p) if p.len() > 0 => p.get_by_rank(rng.random_range(0..p.len())),
            Repr::Packed(_) => None,
            Repr::Skip(s) => s.random(rng),
        }
    }

    /// `count` members picked uniformly and independently (repeats
    /// allowed): O(1) expected each (a packed set is walked once first).
    pub fn random_picks(&self, rng: &mut impl Rng, count: usize) -> Vec<(&[u8], f64)> {
        match &self.repr {
            Repr::Packed(p) => {
                let all = p.all();
                if all.is_empty() {
                    return Vec::new();
                }
                (0..count)
                    .map(|_| all[rng.random_range(0..all.len())])
                    .collect()
            }
            Repr::Skip(s) => (0..count).filter_map(|_| s.random(rng)).collect(),
        }
    }

    /// `count` distinct members picked uniformly, in random order (`count`
    /// below [`Self::len`]; see `skiplist::SkipList::random_distinct`).
    pub fn random_distinct(&self, rng: &mut impl Rng, count: usize) -> Vec<(&[u8], f64)> {
        match &self.repr {
            Repr::Packed(p) => {
                let all = p.all();
                rand::seq::index::sample(rng, all.len(), count.min(all.len()))
                    .into_iter()
                    .map(|i| all[i])
                    .collect()
            }
            Repr::Skip(s) => s.random_distinct(rng, count),
        }
    }

    /// Members in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Members in ascending order from 0-based rank `rank`.
    pub fn iter_from(&self, rank: usize) -> Iter<'_> {
        Iter(match &self.repr {
            Repr::Packed(p) => Walk::Packed(p.iter_from(rank)),
            Repr::Skip(s) => Walk::Skip(s.iter_from(rank)),
        })
    }

    /// Members in descending order from 0-based (ascending) rank `rank`.
    pub fn iter_rev_from(&self, rank: usize) -> Iter<'_> {
        Iter(match &self.repr {
            Repr::Packed(p) => Walk::PackedRev(p.iter_rev_from(rank)),
            Repr::Skip(s) => Walk::Skip(s.iter_rev_from(rank)),
        })
    }

    /// Ranks (first, last; 0-based, inclusive) of the members whose score is
    /// in `range`, or `None` if there are none.
    pub fn score_ranks(&self, range: &ScoreRange) -> Option<(usize, usize)> {
        if range.is_empty() {
            return None;
        }
        match &self.repr {
            Repr::Packed(p) => p.score_ranks(range),
            Repr::Skip(s) => s.score_ranks(range),
        }
    }

    /// Ranks (first, last; 0-based, inclusive) of the members in the lex
    /// `range` (meaningful when all scores are equal, as in Redis).
    pub fn lex_ranks(&self, range: &LexRange<'_>) -> Option<(usize, usize)> {
        // Redis's quick rejections (which matter when scores differ).
        let (first, last) = (self.get_by_rank(0)?, self.get_by_rank(self.len() - 1)?);
        if !range.above_min(last.0) || !range.below_max(first.0) {
            return None;
        }
        match &self.repr {
            Repr::Packed(p) => p.lex_ranks(range),
            Repr::Skip(s) => s.lex_ranks(range),
        }
    }

    /// Removes the members of 0-based ranks `start..=end` in one pass;
    /// returns how many were removed.
    pub fn remove_rank_range(&mut self, start: usize, end: usize) -> usize {
        if start > end || start >= self.len() {
            return 0;
        }
        match &mut self.repr {
            Repr::Packed(p) => p.remove_rank_range(start, end),
            Repr::Skip(s) => s.remove_rank_range(start, end),
        }
    }
}

/// Iterator over (member, score) in rank order, either direction.
pub struct Iter<'a>(Walk<'a>);

enum Walk<'a> {
    Packed(packed::Iter<'a>),
    PackedRev(packed::RevIter<'a>),
    Skip(SkipIter<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        match &mut self.0 {
            Walk::Packed(it) => it.next(),
            Walk::PackedRev(it) => it.next(),
            Walk::Skip(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            Walk::Packed(it) => it.size_hint(),
            Walk::PackedRev(it) => it.size_hint(),
            Walk::Skip(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// What a sorted set built by inserting distinct members one by one is
/// charged ([`ZSetValue::mem_bytes`]), known before building it: a store
/// checks a result against the room left before allocating it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Charge {
    len: usize,
    packed: usize,
    skip: usize,
    too_long: bool,
}

impl Charge {
    /// Counts one more member.
    pub fn add(&mut self, member: &[u8], score: f64) {
        self.len += 1;
        self.packed += packed::entry_bytes(member, score);
        self.skip += member.len() + ZSET_MEMBER_OVERHEAD;
        self.too_long |= !packing::fits(member);
    }

    /// The charge of the set built so far.
    pub fn bytes(&self) -> usize {
        if self.len <= PACKED_MAX_LEN && !self.too_long {
            PACKED_OVERHEAD + self.packed
        } else {
            self.skip
        }
    }
}

impl<'a> FromIterator<(&'a [u8], f64)> for Charge {
    fn from_iter<I: IntoIterator<Item = (&'a [u8], f64)>>(pairs: I) -> Charge {
        let mut c = Charge::default();
        for (m, s) in pairs {
            c.add(m, s);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::packed::PACKED_MAX_BYTES;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    /// A sorted set held in the skip list from the start, as the model of
    /// the packed form.
    fn skip() -> ZSetValue {
        ZSetValue {
            repr: Repr::Skip(Box::default()),
        }
    }

    /// Everything observable of `z` equals the model's, and its charge is
    /// what its form documents.
    fn same(z: &ZSetValue, model: &ZSetValue, rng: &mut impl Rng) {
        assert_eq!(z.len(), model.len());
        assert_eq!(z, model);
        let all: Vec<(&[u8], f64)> = model.iter().collect();
        for (r, &(m, s)) in all.iter().enumerate() {
            assert_eq!(z.rank(m), Some(r));
            assert_eq!(z.score(m), Some(s));
            assert_eq!(z.get_by_rank(r), Some((m, s)));
            if z.is_packed() {
                assert_eq!(
                    z.at_position(r),
                    Some((m, s)),
                    "a packed set's positions are ranks"
                );
            }
            let n = rng.random_range(0..=all.len());
            assert!(z.iter_from(r).take(n).eq(model.iter_from(r).take(n)));
            assert!(z.iter_rev_from(r).eq(model.iter_rev_from(r)));
            assert_eq!(z.iter_rev_from(r).len(), r + 1);
        }
        let mut at_positions: Vec<(&[u8], f64)> = (0..z.scan_positions())
            .filter_map(|p| z.at_position(p))
            .collect();
        // The set's order: -0.0 and 0.0 are equal scores.
        at_positions.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(b.0)));
        assert_eq!(at_positions, all, "scan positions hold every member once");
        assert_eq!(z.iter_from(all.len()).next(), None);
        assert_eq!(z.iter_rev_from(all.len()).next(), None);
        assert_eq!(z.rank(b"absent"), None);
        let want = if z.is_packed() {
            PACKED_OVERHEAD
                + all
                    .iter()
                    .map(|&(m, s)| packed::entry_bytes(m, s))
                    .sum::<usize>()
        } else {
            all.iter()
                .map(|(m, _)| m.len() + ZSET_MEMBER_OVERHEAD)
                .sum()
        };
        assert_eq!(z.mem_bytes(), want);
        // A set built from these members is charged as predicted.
        let mut built = ZSetValue::default();
        for &(m, s) in all.iter().rev() {
            built.insert(m, s);
        }
        assert_eq!(
            all.iter().copied().collect::<Charge>().bytes(),
            built.mem_bytes()
        );
        // Ranges: random bounds, both forms agree.
        for _ in 0..4 {
            let b = |rng: &mut dyn rand::RngCore| ScoreBound {
                value: f64::from(rng.random_range(-3..40)) / 2.0,
                exclusive: rng.random_bool(0.5),
            };
            let range = ScoreRange {
                min: b(rng),
                max: b(rng),
            };
            assert_eq!(z.score_ranks(&range), model.score_ranks(&range));
            // Lex ranges mean something when all scores are equal.
            if all.iter().any(|&(_, s)| s != all[0].1) {
                continue;
            }
            let m1 = format!("m{}", rng.random_range(0..200)).into_bytes();
            let m2 = format!("m{}", rng.random_range(0..200)).into_bytes();
            let lex = LexRange {
                min: LexBound::Inclusive(&m1),
                max: LexBound::Exclusive(&m2),
            };
            assert_eq!(z.lex_ranks(&lex), model.lex_ranks(&lex));
        }
    }

    /// The packed form against the skip list as a model: random inserts,
    /// score changes, removals and rank-range removals, through the
    /// conversion at the 129th member and at a 65-byte member.
    #[test]
    fn packed_matches_the_skip_list() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..60 {
            let (mut z, mut model) = (ZSetValue::default(), skip());
            let members = if round % 2 == 0 { 100 } else { 140 };
            let (mut converted_at, mut peak) = (None, 0);
            for step in 0..600 {
                let m = format!("m{}", rng.random_range(0..members)).into_bytes();
                // Integral scores of every width, halves, and -0.0; one
                // score for all in some rounds (lex ranges).
                let s = match rng.random_range(0..6) {
                    _ if round % 3 == 0 => 1.0,
                    0 => f64::from(rng.random_range(-200..200)),
                    1 => f64::from(rng.random_range(-40_000..40_000)),
                    2 => f64::from(rng.random_range(0..20)) / 2.0,
                    3 => -0.0,
                    4 => f64::from(rng.random::<i32>()) * 4.0,
                    _ => f64::from(rng.random_range(0..20)),
                };
                match rng.random_range(0..10) {
                    0..=5 => assert_eq!(z.insert(&m, s), model.insert(&m, s)),
                    6..=8 => assert_eq!(z.remove(&m), model.remove(&m)),
                    _ => {
                        let a = rng.random_range(0..=model.len());
                        let b = a + rng.random_range(0..3);
                        assert_eq!(z.remove_rank_range(a, b), model.remove_rank_range(a, b));
                    }
                }
                if round == 5 && step == 300 {
                    let long = vec![b'x'; PACKED_MAX_BYTES + 1];
                    assert_eq!(z.insert(&long, 1.0), model.insert(&long, 1.0));
                }
                peak = peak.max(model.len());
                if converted_at.is_none() && !z.is_packed() {
                    converted_at = Some(z.len());
                }
                if step % 50 == 0 {
                    same(&z, &model, &mut rng);
                }
                assert_eq!(z.is_packed(), converted_at.is_none(), "never back");
            }
            same(&z, &model, &mut rng);
            match converted_at {
                // Converted by the 129th member, or the long one.
                Some(n) => assert!(n == PACKED_MAX_LEN + 1 || round == 5, "{n}"),
                None => assert!(peak <= PACKED_MAX_LEN && round != 5),
            }
        }
    }

    #[test]
    fn converts_at_the_129th_member_and_at_a_65_byte_one() {
        let mut z = ZSetValue::default();
        for i in 0..PACKED_MAX_LEN {
            z.insert(format!("m{i:03}").as_bytes(), i as f64);
        }
        assert!(z.is_packed());
        // Entries of two length bytes, 4 bytes of member and a one-byte
        // score (< 128).
        assert_eq!(z.mem_bytes(), PACKED_OVERHEAD + PACKED_MAX_LEN * 7);
        z.insert(b"m000", 5.0);
        assert!(z.is_packed(), "a change is not a new member");
        z.insert(b"m128", 128.0);
        assert!(!z.is_packed());
        assert_eq!(z.mem_bytes(), 129 * (4 + ZSET_MEMBER_OVERHEAD));
        assert_eq!(z.rank(b"m128"), Some(128));
        assert_eq!(z.rank(b"m000"), Some(4), "(5, m000) < (5, m005)");
        // Never back, however small it gets.
        z.remove_rank_range(0, 127);
        assert_eq!((z.len(), z.is_packed()), (1, false));

        let mut z = ZSetValue::default();
        z.insert(&[b'a'; PACKED_MAX_BYTES], 1.0);
        assert!(z.is_packed());
        assert_eq!(z.mem_bytes(), PACKED_OVERHEAD + 1 + PACKED_MAX_BYTES + 2);
        z.insert(&[b'b'; PACKED_MAX_BYTES + 1], 0.5);
        assert!(!z.is_packed());
        assert_eq!(
            z.iter().map(|(m, _)| m.len()).collect::<Vec<_>>(),
            vec![PACKED_MAX_BYTES + 1, PACKED_MAX_BYTES]
        );
    }

    #[test]
    fn reserve_converts_only_what_would_outgrow_the_packed_form() {
        let mut z = ZSetValue::default();
        z.reserve(PACKED_MAX_LEN);
        assert!(z.is_packed());
        z.insert(b"a", 1.0);
        z.reserve(PACKED_MAX_LEN - 1);
        assert!(z.is_packed());
        z.reserve(PACKED_MAX_LEN);
        assert!(!z.is_packed());
        assert_eq!(z.iter().collect::<Vec<_>>(), vec![(&b"a"[..], 1.0)]);
        assert_eq!(z.mem_bytes(), 1 + ZSET_MEMBER_OVERHEAD);
        let mut empty = ZSetValue::default();
        empty.reserve(PACKED_MAX_LEN + 1);
        assert!(!empty.is_packed() && empty.is_empty());
    }

    #[test]
    fn random_picks_come_from_the_set() {
        let mut rng = rand::rng();
        for n in [1usize, 10, 128, 300] {
            let mut z = ZSetValue::default();
            for i in 0..n {
                z.insert(format!("m{i}").as_bytes(), i as f64);
            }
            assert_eq!(z.is_packed(), n <= PACKED_MAX_LEN);
            let mut seen = BTreeSet::new();
            for (m, s) in z.random_picks(&mut rng, 40 * n) {
                assert_eq!(z.score(m), Some(s));
                seen.insert(m.to_vec());
            }
            assert_eq!(seen.len(), n, "every member picked");
            let (m, s) = z.random(&mut rng).unwrap();
            assert_eq!(z.score(m), Some(s));
            for count in [0, n / 3, n - 1] {
                let picks = z.random_distinct(&mut rng, count);
                let distinct: BTreeSet<&[u8]> = picks.iter().map(|p| p.0).collect();
                assert_eq!((picks.len(), distinct.len()), (count, count));
            }
        }
        assert_eq!(ZSetValue::default().random(&mut rng), None);
        assert!(ZSetValue::default().random_picks(&mut rng, 3).is_empty());
    }

    #[test]
    fn a_packed_set_is_a_small_block() {
        assert_eq!(std::mem::size_of::<ZSetValue>(), 24);
    }

    #[test]
    fn score_and_lex_ranges() {
        for (packed, new) in [
            (true, ZSetValue::default as fn() -> ZSetValue),
            (false, skip),
        ] {
            score_and_lex_ranges_in(new);
            assert_eq!(new().is_packed(), packed);
        }
    }

    fn score_and_lex_ranges_in(new: fn() -> ZSetValue) {
        let mut z = new();
        for (i, m) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            z.insert(m.as_bytes(), i as f64);
        }
        let incl = |v| ScoreBound {
            value: v,
            exclusive: false,
        };
        let excl = |v| ScoreBound {
            value: v,
            exclusive: true,
        };
        let r = |min, max| ScoreRange { min, max };
        assert_eq!(z.score_ranks(&r(incl(1.0), incl(3.0))), Some((1, 3)));
        assert_eq!(z.score_ranks(&r(excl(1.0), excl(3.0))), Some((2, 2)));
        assert_eq!(
            z.score_ranks(&r(incl(f64::NEG_INFINITY), incl(f64::INFINITY))),
            Some((0, 4))
        );
        assert_eq!(z.score_ranks(&r(excl(3.0), excl(3.0))), None);
        assert_eq!(z.score_ranks(&r(incl(5.0), incl(9.0))), None);
        assert_eq!(z.score_ranks(&r(incl(3.5), incl(3.7))), None);
        let mut lex = new();
        for m in ["a", "b", "c", "d"] {
            lex.insert(m.as_bytes(), 0.0);
        }
        let lr = |min, max| LexRange { min, max };
        assert_eq!(
            lex.lex_ranks(&lr(LexBound::Min, LexBound::Max)),
            Some((0, 3))
        );
        assert_eq!(
            lex.lex_ranks(&lr(LexBound::Exclusive(b"a"), LexBound::Inclusive(b"c"))),
            Some((1, 2))
        );
        assert_eq!(lex.lex_ranks(&lr(LexBound::Max, LexBound::Min)), None);
        assert_eq!(
            lex.lex_ranks(&lr(LexBound::Inclusive(b"bb"), LexBound::Exclusive(b"c"))),
            None
        );
        // Redis's quick rejections, with differing scores.
        let mut mixed = new();
        mixed.insert(b"b", 1.0);
        mixed.insert(b"a", 2.0);
        assert_eq!(
            mixed.lex_ranks(&lr(LexBound::Min, LexBound::Exclusive(b"b"))),
            None
        );
        assert_eq!(
            ZSetValue::default().lex_ranks(&lr(LexBound::Min, LexBound::Max)),
            None
        );
    }
}
