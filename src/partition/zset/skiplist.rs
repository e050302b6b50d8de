//! The table form of a sorted set (see [`super`]): members ordered by
//! (score, member) with O(log n) insert, remove, score lookup, rank, and
//! range-by-score/lex/rank lookups.
//!
//! Layout (as Redis's zset, in safe Rust):
//! - a skip list whose nodes live in a vector used as an arena (positions are
//!   `u32`, node 0 is the head, freed slots are reused); every forward link
//!   carries its *span*, the number of elements it skips, so a descent sums
//!   ranks on the way down;
//! - a hash table of node positions keyed by the node's member, so a member's
//!   score is found in O(1) and each member's bytes are stored once.
//!
//! ZSCAN walks the arena's positions downwards ([`scan_step`]):
//! a freed slot is reused by a new member, and compaction keeps the arena
//! order of the live nodes, so a member never moves to a higher position
//! and one present for the whole scan is returned.
//!
//! Invariants: the level-0 chain visits every member in ascending
//! (score, member) order; the span of a link is the rank distance to its
//! target (to the end of the list for a link to nothing); `prev` is the
//! level-0 predecessor (none for the first node); no score is NaN (commands
//! reject NaN before calling); `bytes` is the sum of member lengths plus
//! [`ZSET_MEMBER_OVERHEAD`] per member. Ranks in this API are 0-based.

use std::cmp::Ordering;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use rand::Rng;
use smallvec::{SmallVec, smallvec};

use super::{LexRange, ScoreRange, ZSET_MEMBER_OVERHEAD};
#[cfg(doc)]
use crate::partition::scan::scan_step;

/// Levels of the skip list: with p = 1/4, enough for 2^64 elements.
const MAX_LEVEL: usize = 32;
const HEAD: u32 = 0;
const NIL: u32 = u32::MAX;
/// Freed arena slots are compacted away once they are this many and outnumber
/// the live nodes.
const COMPACT_AFTER: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Link {
    next: u32,
    span: u32,
}

const NO_LINK: Link = Link { next: NIL, span: 0 };

/// A node's forward links, one per level, inline up to [`INLINE_LEVELS`]
/// (98.4% of nodes, with p = 1/4): a descent reads each node it passes
/// once — its links and the score next to them — where a boxed tower cost
/// a second cache miss per step (ZADD's skip-list work was 38% of its
/// CPU at pipeline 1 with the towers boxed).
type Tower = SmallVec<[Link; INLINE_LEVELS]>;

/// Levels kept in a node itself (see [`Tower`]): three make the node 64
/// bytes, one cache line (at four it was 72, and most nodes straddled two
/// lines: a step of a descent could miss twice).
const INLINE_LEVELS: usize = 3;

/// One cache line (see [`INLINE_LEVELS`]).
#[derive(Debug, Clone)]
#[repr(align(64))]
struct Node {
    member: Box<[u8]>,
    score: f64,
    prev: u32,
    links: Tower,
}

impl Node {
    fn cmp_to(&self, score: f64, member: &[u8]) -> Ordering {
        self.score
            .partial_cmp(&score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| (*self.member).cmp(member))
    }
}

/// For each level, the last node before a position and its 1-based rank
/// (the head has rank 0).
struct Path {
    update: [u32; MAX_LEVEL],
    rank: [usize; MAX_LEVEL],
}

impl Path {
    /// The head at every level (what levels above the list's own keep).
    fn from_head() -> Path {
        Path {
            update: [HEAD; MAX_LEVEL],
            rank: [0; MAX_LEVEL],
        }
    }
}

/// A sorted set's skip list and index (see the module doc).
#[derive(Debug, Clone)]
pub struct SkipList {
    nodes: Vec<Node>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    tail: u32,
    level: usize,
    bytes: usize,
}

impl Default for SkipList {
    fn default() -> SkipList {
        let head = Node {
            member: Box::default(),
            score: 0.0,
            prev: NIL,
            links: smallvec![NO_LINK; MAX_LEVEL],
        };
        SkipList {
            nodes: vec![head],
            free: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            tail: NIL,
            level: 1,
            bytes: 0,
        }
    }
}

/// A random level with P(level > k) = 4^-k, as Redis's ZSKIPLIST_P = 0.25.
fn random_level() -> usize {
    let bits: u64 = rand::random();
    (1 + bits.trailing_zeros() as usize / 2).min(MAX_LEVEL)
}

impl SkipList {
    fn cost(member: &[u8]) -> usize {
        member.len() + ZSET_MEMBER_OVERHEAD
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn mem_bytes(&self) -> usize {
        self.bytes
    }

    fn node(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    /// Starts loading node `i`'s cache line (nothing for `NIL`).
    fn prefetch(&self, i: u32) {
        if let Some(n) = self.nodes.get(i as usize) {
            crate::partition::prefetch_line(std::ptr::from_ref(n).cast());
        }
    }

    fn node_mut(&mut self, i: u32) -> &mut Node {
        &mut self.nodes[i as usize]
    }

    fn find(&self, member: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(member);
        self.index
            .find(hash, |&i| &*self.nodes[i as usize].member == member)
            .copied()
    }

    /// Descends the list, moving forward while `before(node, its 1-based
    /// rank)` holds; `before` must hold for a prefix of the order.
    fn path(&self, before: impl Fn(&Node, usize) -> bool) -> Path {
        let mut p = Path::from_head();
        let (mut x, mut r) = (HEAD, 0usize);
        for i in (0..self.level).rev() {
            while self.step(&mut x, &mut r, i, &before) {}
            p.update[i] = x;
            p.rank[i] = r;
        }
        p
    }

    /// One step of a descent at level `i` from `x` (rank `r`): moves right
    /// if `before` holds for the next node, else says it stops here.
    #[inline(always)]
    fn step(
        &self,
        x: &mut u32,
        r: &mut usize,
        i: usize,
        before: &impl Fn(&Node, usize) -> bool,
    ) -> bool {
        let links = &self.node(*x).links;
        let link = links[i];
        // The node this descent reads next if it steps down here is
        // fetched while the one to the right is compared: two cache
        // misses wait together, not one after the other.
        if i > 0 {
            self.prefetch(links[i - 1].next);
        }
        if link.next == NIL {
            return false;
        }
        let next_rank = *r + link.span as usize;
        if !before(self.node(link.next), next_rank) {
            return false;
        }
        *x = link.next;
        *r = next_rank;
        true
    }

    /// [`Self::path`] for two orders at once, their steps interleaved: the
    /// two descents' cache misses wait together (a score change needs the
    /// node's old place and its new one). Fills paths made by
    /// [`Path::from_head`]: returned, the pair of 384-byte paths was copied
    /// out (1.3% of a ZADD's instructions).
    fn two_paths(
        &self,
        (pa, pb): (&mut Path, &mut Path),
        a: impl Fn(&Node, usize) -> bool,
        b: impl Fn(&Node, usize) -> bool,
    ) {
        let (mut xa, mut ra, mut xb, mut rb) = (HEAD, 0usize, HEAD, 0usize);
        for i in (0..self.level).rev() {
            let (mut on_a, mut on_b) = (true, true);
            while on_a || on_b {
                on_a = on_a && self.step(&mut xa, &mut ra, i, &a);
                on_b = on_b && self.step(&mut xb, &mut rb, i, &b);
            }
            (pa.update[i], pa.rank[i]) = (xa, ra);
            (pb.update[i], pb.rank[i]) = (xb, rb);
        }
    }

    /// The path that ends just before the node of 0-based rank `rank`.
    fn path_to_rank(&self, rank: usize) -> Path {
        self.path(|_, r| r <= rank)
    }

    /// Links the (allocated, indexed, unlinked) node `x` in at its ordered
    /// position.
    fn link_in(&mut self, x: u32) {
        let p = {
            let n = self.node(x);
            self.path(|other, _| other.cmp_to(n.score, &n.member) == Ordering::Less)
        };
        self.link_at(x, &p);
    }

    /// Links the unlinked node `x` in after the path `p` to its position.
    fn link_at(&mut self, x: u32, p: &Path) {
        let level = random_level();
        // Members already linked (the index holds `x` too).
        let linked = (self.len() - 1) as u32;
        if level > self.level {
            for i in self.level..level {
                self.node_mut(HEAD).links[i] = Link {
                    next: NIL,
                    span: linked,
                };
            }
            self.level = level;
        }
        let mut links: Tower = smallvec![NO_LINK; level];
        for (i, link) in links.iter_mut().enumerate() {
            let before = &mut self.nodes[p.update[i] as usize].links[i];
            let dist = (p.rank[0] - p.rank[i]) as u32;
            *link = Link {
                next: before.next,
                span: before.span - dist,
            };
            *before = Link {
                next: x,
                span: dist + 1,
            };
        }
        for i in level..self.level {
            self.nodes[p.update[i] as usize].links[i].span += 1;
        }
        let prev = if p.update[0] == HEAD {
            NIL
        } else {
            p.update[0]
        };
        let next = links[0].next;
        let node = self.node_mut(x);
        node.links = links;
        node.prev = prev;
        if next == NIL {
            self.tail = x;
        } else {
            self.node_mut(next).prev = x;
        }
    }

    /// Unlinks node `x`, whose predecessors at each level are `update`.
    /// The node keeps its member and score.
    fn unlink(&mut self, x: u32, update: &[u32; MAX_LEVEL]) {
        let links = std::mem::take(&mut self.node_mut(x).links);
        for (i, &u) in update.iter().enumerate().take(self.level) {
            let before = &mut self.nodes[u as usize].links[i];
            if before.next == x {
                before.span = before.span + links[i].span - 1;
                before.next = links[i].next;
            } else {
                before.span -= 1;
            }
        }
        let prev = self.node(x).prev;
        match links.first().map_or(NIL, |l| l.next) {
            NIL => self.tail = prev,
            next => self.node_mut(next).prev = prev,
        }
        while self.level > 1 && self.node(HEAD).links[self.level - 1].next == NIL {
            self.level -= 1;
        }
    }

    /// Forgets the unlinked node `x`: its index entry, its bytes, its slot.
    fn release(&mut self, x: u32) -> (Box<[u8]>, f64) {
        let node = self.node_mut(x);
        let member = std::mem::take(&mut node.member);
        let score = node.score;
        let hash = self.hasher.hash_one(&*member);
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == x) {
            entry.remove();
        }
        self.bytes -= Self::cost(&member);
        self.free.push(x);
        (member, score)
    }

    /// Rebuilds the arena without its free slots once they dominate it. The
    /// live nodes keep their arena order (each moves down by the free slots
    /// below it), which ZSCAN's cursor relies on (see the module doc).
    fn maybe_compact(&mut self) {
        if self.free.len() < COMPACT_AFTER || self.free.len() < self.len() {
            return;
        }
        let mut fresh = SkipList {
            hasher: self.hasher.clone(),
            ..SkipList::default()
        };
        fresh.nodes.reserve(self.len());
        for p in 0..self.scan_positions() {
            if let Some((m, s)) = self.at_position(p) {
                fresh.insert(m, s);
            }
        }
        *self = fresh;
    }

    /// Positions of the arena (members and free slots) for ZSCAN.
    pub fn scan_positions(&self) -> usize {
        self.nodes.len() - 1
    }

    /// The member at arena position `p`, if that slot holds one.
    pub fn at_position(&self, p: usize) -> Option<(&[u8], f64)> {
        let n = self.nodes.get(p + 1)?;
        // A free slot has no links (taken when it was unlinked).
        (!n.links.is_empty()).then_some((&n.member[..], n.score))
    }

    /// Sets `member`'s score; returns the previous score if it was a member.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        if let Some(x) = self.find(member) {
            let old = self.node(x).score;
            if old != score {
                self.update_score(x, score);
            }
            return Some(old);
        }
        // Positions are u32 (NIL reserved): unreachable before memory runs out.
        if self.nodes.len() >= NIL as usize - 1 && self.free.is_empty() {
            return None;
        }
        let node = Node {
            member: member.into(),
            score,
            prev: NIL,
            links: Tower::new(),
        };
        let x = match self.free.pop() {
            Some(x) => {
                self.nodes[x as usize] = node;
                x
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let SkipList {
            nodes,
            index,
            hasher,
            ..
        } = self;
        let hash = hasher.hash_one(member);
        index.insert_unique(hash, x, |&i| hasher.hash_one(&*nodes[i as usize].member));
        self.link_in(x);
        self.bytes += Self::cost(member);
        None
    }

    /// Moves node `x` to `score`: in place when its neighbours still bracket
    /// it (the common small change), else unlinked and linked in again.
    fn update_score(&mut self, x: u32, score: f64) {
        let n = self.node(x);
        let prev_ok = n.prev == NIL || self.node(n.prev).cmp_to(score, &n.member).is_lt();
        let next = n.links[0].next;
        let next_ok = next == NIL || self.node(next).cmp_to(score, &n.member).is_gt();
        if prev_ok && next_ok {
            self.node_mut(x).score = score;
            return;
        }
        // Both places in one descent: where the node is (to unlink it)
        // and where it goes.
        let (mut from, mut to) = (Path::from_head(), Path::from_head());
        let n = self.node(x);
        self.two_paths(
            (&mut from, &mut to),
            |other, _| other.cmp_to(n.score, &n.member).is_lt(),
            |other, _| other.cmp_to(score, &n.member).is_lt(),
        );
        self.unlink(x, &from.update);
        self.node_mut(x).score = score;
        // The new place as it is without `x`: where `x` itself came last
        // before it, its predecessor does; the nodes after `x` moved one
        // rank down.
        let rank_x = from.rank[0] + 1;
        for i in 0..MAX_LEVEL {
            if to.update[i] == x {
                (to.update[i], to.rank[i]) = (from.update[i], from.rank[i]);
            } else if to.rank[i] > rank_x {
                to.rank[i] -= 1;
            }
        }
        self.link_at(x, &to);
    }

    /// Removes `member`; returns its score if it was a member.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let x = self.find(member)?;
        let p = {
            let n = self.node(x);
            self.path(|other, _| other.cmp_to(n.score, &n.member).is_lt())
        };
        self.unlink(x, &p.update);
        let (_, score) = self.release(x);
        self.maybe_compact();
        Some(score)
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.find(member).map(|x| self.node(x).score)
    }

    /// The 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let x = self.find(member)?;
        let n = self.node(x);
        let p = self.path(|other, _| other.cmp_to(n.score, &n.member).is_le());
        Some(p.rank[0] - 1)
    }

    /// The member and score at 0-based rank `rank`.
    pub fn get_by_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        self.iter_from(rank).next()
    }

    /// Whether random picks may draw arena positions: the live members are
    /// at least half of the positions, so a draw hits one with probability
    /// ≥ 1/2. Always true past [`COMPACT_AFTER`] members (compaction keeps
    /// free slots below the live count there); a small set emptied of most
    /// members picks by rank instead.
    fn dense_enough(&self) -> bool {
        self.scan_positions() <= 2 * self.len()
    }

    /// A uniformly random member: a random arena position, drawn again if
    /// it is free (O(1) expected, as ZSCAN walks them), or a random rank
    /// (O(log n)) when free slots dominate.
    pub fn random(&self, rng: &mut impl Rng) -> Option<(&[u8], f64)> {
        if self.is_empty() {
            return None;
        }
        if self.dense_enough() {
            // Each draw hits a member with probability >= 1/2: 64 misses
            // in a row do not happen, but the walk stays bounded if they do.
            for _ in 0..64 {
                if let Some(m) = self.at_position(rng.random_range(0..self.scan_positions())) {
                    return Some(m);
                }
            }
        }
        self.get_by_rank(rng.random_range(0..self.len()))
    }

    /// `count` distinct members picked uniformly, in random order (`count`
    /// below [`Self::len`]): random arena positions drawn until `count`
    /// distinct members are hit (O(1) expected each while `count` is at
    /// most a third of the members); above that, or when free slots
    /// dominate, a sample of the members walked in arena order (O(n): n <
    /// 3 × count, or a set of fewer than 2048 positions, see
    /// `maybe_compact`).
    pub fn random_distinct(&self, rng: &mut impl Rng, count: usize) -> Vec<(&[u8], f64)> {
        let count = count.min(self.len());
        if self.dense_enough() && count.saturating_mul(3) <= self.len() {
            let mut seen = std::collections::HashSet::with_capacity(count);
            let mut out = Vec::with_capacity(count);
            while out.len() < count {
                let p = rng.random_range(0..self.scan_positions());
                if let Some(m) = self.at_position(p)
                    && seen.insert(p)
                {
                    out.push(m);
                }
            }
            return out;
        }
        let live: Vec<(&[u8], f64)> = (0..self.scan_positions())
            .filter_map(|p| self.at_position(p))
            .collect();
        rand::seq::index::sample(rng, live.len(), count)
            .into_iter()
            .map(|i| live[i])
            .collect()
    }

    /// Members in ascending order from 0-based rank `rank`.
    pub fn iter_from(&self, rank: usize) -> SkipIter<'_> {
        self.iter_at(rank, false)
    }

    /// Members in descending order from 0-based (ascending) rank `rank`.
    pub fn iter_rev_from(&self, rank: usize) -> SkipIter<'_> {
        self.iter_at(rank, true)
    }

    fn iter_at(&self, rank: usize, rev: bool) -> SkipIter<'_> {
        if rank >= self.len() {
            return SkipIter {
                z: self,
                at: NIL,
                rev,
                left: 0,
            };
        }
        let at = if rank == self.len() - 1 {
            self.tail
        } else {
            let p = self.path_to_rank(rank);
            self.node(p.update[0]).links[0].next
        };
        let left = if rev { rank + 1 } else { self.len() - rank };
        SkipIter {
            z: self,
            at,
            rev,
            left,
        }
    }

    /// The 0-based ranks of the first and last members satisfying
    /// `above_min` and `below_max` (each true on a suffix / prefix).
    fn rank_span(
        &self,
        above_min: impl Fn(&Node) -> bool,
        below_max: impl Fn(&Node) -> bool,
    ) -> Option<(usize, usize)> {
        let first = self.path(|n, _| !above_min(n)).rank[0];
        let end = self.path(|n, _| below_max(n)).rank[0];
        (first < end).then(|| (first, end - 1))
    }

    /// Ranks (first, last; 0-based, inclusive) of the members whose score is
    /// in `range` (not empty: [`super::ZSetValue::score_ranks`] checks).
    pub fn score_ranks(&self, range: &ScoreRange) -> Option<(usize, usize)> {
        self.rank_span(|n| range.above_min(n.score), |n| range.below_max(n.score))
    }

    /// Ranks (first, last; 0-based, inclusive) of the members in the lex
    /// `range` (after [`super::ZSetValue::lex_ranks`]'s quick rejections).
    pub fn lex_ranks(&self, range: &LexRange<'_>) -> Option<(usize, usize)> {
        self.rank_span(
            |n| range.above_min(&n.member),
            |n| range.below_max(&n.member),
        )
    }

    /// Removes the members of 0-based ranks `start..=end` in one pass;
    /// returns how many were removed.
    pub fn remove_rank_range(&mut self, start: usize, end: usize) -> usize {
        if start > end || start >= self.len() {
            return 0;
        }
        let update = self.path_to_rank(start).update;
        let mut x = self.node(update[0]).links[0].next;
        let mut removed = 0;
        while x != NIL && removed <= end - start {
            let next = self.node(x).links[0].next;
            self.unlink(x, &update);
            self.release(x);
            removed += 1;
            x = next;
        }
        self.maybe_compact();
        removed
    }
}

/// Iterator over (member, score) in rank order, either direction.
pub struct SkipIter<'a> {
    z: &'a SkipList,
    at: u32,
    rev: bool,
    left: usize,
}

impl<'a> Iterator for SkipIter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        if self.left == 0 || self.at == NIL {
            return None;
        }
        let n = self.z.node(self.at);
        self.at = if self.rev { n.prev } else { n.links[0].next };
        self.left -= 1;
        Some((&n.member, n.score))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for SkipIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The node holds its tower (see `Tower`) in one 64-byte cache line,
    /// as the storage estimate `ZSET_MEMBER_OVERHEAD` counts it.
    #[test]
    fn a_node_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Node>(), 64);
    }

    /// Orders (score, member) as the sorted set does, for a model.
    #[derive(Debug, Clone, PartialEq)]
    struct Key(f64, Vec<u8>);
    impl Eq for Key {}
    impl PartialOrd for Key {
        fn partial_cmp(&self, o: &Key) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Key {
        fn cmp(&self, o: &Key) -> Ordering {
            self.0.total_cmp(&o.0).then_with(|| self.1.cmp(&o.1))
        }
    }

    fn check(z: &SkipList, model: &BTreeSet<Key>) {
        assert_eq!(z.len(), model.len());
        let got: Vec<Key> = z.iter_from(0).map(|(m, s)| Key(s, m.to_vec())).collect();
        let want: Vec<Key> = model.iter().cloned().collect();
        assert_eq!(got, want);
        let back: Vec<Key> = z
            .iter_rev_from(z.len().saturating_sub(1))
            .map(|(m, s)| Key(s, m.to_vec()))
            .collect();
        assert_eq!(back, want.iter().rev().cloned().collect::<Vec<_>>());
        for (r, k) in want.iter().enumerate() {
            assert_eq!(z.rank(&k.1), Some(r));
            assert_eq!(z.get_by_rank(r).map(|(m, _)| m.to_vec()), Some(k.1.clone()));
            assert_eq!(z.score(&k.1), Some(k.0));
        }
        let bytes: usize = want.iter().map(|k| k.1.len() + ZSET_MEMBER_OVERHEAD).sum();
        assert_eq!(z.mem_bytes(), bytes);
    }

    #[test]
    fn matches_a_model_under_random_changes() {
        let mut rng = rand::rng();
        let mut z = SkipList::default();
        let mut model = BTreeSet::new();
        for round in 0..4000 {
            let m = format!("m{}", rng.random_range(0..300)).into_bytes();
            let s = f64::from(rng.random_range(0..50u32));
            match rng.random_range(0..4) {
                0 => {
                    let old = z.remove(&m);
                    let had = model.iter().find(|k: &&Key| k.1 == m).cloned();
                    assert_eq!(old, had.as_ref().map(|k| k.0));
                    if let Some(k) = had {
                        model.remove(&k);
                    }
                }
                _ => {
                    let had = model.iter().find(|k: &&Key| k.1 == m).cloned();
                    assert_eq!(z.insert(&m, s), had.as_ref().map(|k| k.0));
                    if let Some(k) = had {
                        model.remove(&k);
                    }
                    model.insert(Key(s, m));
                }
            }
            if round % 50 == 0 {
                check(&z, &model);
            }
        }
        check(&z, &model);
        // Range removal by rank matches the model too.
        let n = z.len();
        let removed = z.remove_rank_range(n / 4, n / 2);
        assert_eq!(removed, n / 2 - n / 4 + 1);
        let keep: BTreeSet<Key> = model
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < n / 4 || *i > n / 2)
            .map(|(_, k)| k.clone())
            .collect();
        check(&z, &keep);
    }

    #[test]
    fn compaction_keeps_order_and_bytes() {
        let mut z = SkipList::default();
        for i in 0..5000 {
            z.insert(format!("m{i:05}").as_bytes(), f64::from(i));
        }
        for i in 0..4900 {
            z.remove(format!("m{i:05}").as_bytes());
        }
        assert!(z.nodes.len() < 5000);
        assert_eq!(z.len(), 100);
        assert_eq!(z.rank(b"m04950"), Some(50));
        assert_eq!(z.mem_bytes(), 100 * (6 + ZSET_MEMBER_OVERHEAD));
    }

    /// Random picks land only on live members, with their scores, and
    /// reach every member: in a dense arena (positions) and in a small one
    /// whose free slots outnumber its members (ranks, or a walk).
    #[test]
    fn random_picks_are_live_distinct_and_cover_the_set() {
        let mut rng = rand::rng();
        for (n, keep) in [(3000usize, 3000usize), (900, 30)] {
            let mut z = SkipList::default();
            for i in 0..n {
                z.insert(format!("m{i}").as_bytes(), i as f64);
            }
            // Remove all but `keep`, spread out (no compaction below 1024
            // free slots: the small set stays sparse).
            for i in keep..n {
                z.remove(format!("m{i}").as_bytes());
            }
            assert_eq!(z.len(), keep);
            assert_eq!(z.dense_enough(), keep == n, "{n}/{keep}");
            let check = |(m, s): (&[u8], f64)| {
                assert_eq!(z.score(m), Some(s));
                m.to_vec()
            };
            let mut seen = BTreeSet::new();
            for _ in 0..keep * 40 {
                seen.insert(check(z.random(&mut rng).unwrap()));
            }
            assert_eq!(seen.len(), keep, "every member picked");
            for count in [1, keep / 10, keep / 3, keep / 2, keep - 1] {
                let picks = z.random_distinct(&mut rng, count);
                let distinct: BTreeSet<Vec<u8>> = picks.iter().map(|p| check(*p)).collect();
                assert_eq!(picks.len(), count);
                assert_eq!(distinct.len(), count, "distinct");
            }
        }
        assert_eq!(SkipList::default().random(&mut rng), None);
    }

    #[test]
    fn compaction_keeps_the_arena_order() {
        let mut z = SkipList::default();
        for i in 0..3000 {
            z.insert(format!("m{i}").as_bytes(), f64::from(i % 17));
        }
        // Remove two thirds, spread out: the arena compacts.
        for i in (0..3000).filter(|i| i % 3 != 0) {
            z.remove(format!("m{i}").as_bytes());
        }
        let order: Vec<Vec<u8>> = (0..z.scan_positions())
            .filter_map(|p| z.at_position(p).map(|(m, _)| m.to_vec()))
            .collect();
        let want: Vec<Vec<u8>> = (0..3000)
            .filter(|i| i % 3 == 0)
            .map(|i| format!("m{i}").into_bytes())
            .collect();
        assert_eq!(order, want, "live members in their old arena order");
        assert_eq!(z.scan_positions(), 1000 + z.free.len());
        assert!(z.scan_positions() < 3000);
    }
}
