//! Scan cursors, a leaf the keyspace, the collections, the pool and the
//! proxy share: [`ScanCursor`], SCAN's position in a cache (a slot and a
//! place in it), and cursor walks over a collection's positions (HSCAN,
//! SSCAN, ZSCAN: [`scan_step`]).

/// Collections of at most this many elements are returned whole by one
/// HSCAN/SSCAN/ZSCAN call from cursor 0, as Redis returns its small
/// (listpack) encodings (`zset-max-listpack-entries` is 128); a packed
/// hash or sorted set from any cursor.
pub const SCAN_WHOLE_UP_TO: usize = 128;

/// One step of a collection SCAN over positions `0..len` whose entries only
/// ever move to lower positions between calls (a removal moves the last
/// entry into the hole, an insert appends: [`HashValue`], [`SetValue`], and
/// the sorted set's arena, see [`super::zset`]). The walk goes downwards:
/// `cursor` 0 starts at the top, `c > 0` means positions `0..c` are left
/// (clamped to `len`). An entry present for the whole scan is below the
/// cursor until visited, so it is returned at least once; an entry moved
/// down past the cursor may be returned twice, as in Redis.
///
/// `visit(pos)` says whether it kept the entry at `pos`; the walk stops after
/// `count` kept or `count * 10` visited. Returns the cursor to continue from
/// (0 when done) and the positions visited.
pub fn scan_step(
    len: usize,
    cursor: u64,
    count: usize,
    mut visit: impl FnMut(usize) -> bool,
) -> (u64, u64) {
    let mut below = match cursor {
        0 => len,
        c => usize::try_from(c).map_or(len, |c| c.min(len)),
    };
    let budget = count.max(1).saturating_mul(10);
    let (mut kept, mut visited) = (0usize, 0usize);
    while below > 0 && kept < count && visited < budget {
        below -= 1;
        visited += 1;
        kept += usize::from(visit(below));
    }
    (below as u64, visited as u64)
}

/// A SCAN position: a slot and, inside it, how far the walk down its scan
/// positions has come: `pos` 0 = the slot is not started, `pos` p > 0 =
/// positions `0..p` are still to visit. Encoded in one integer as
/// `pos << 14 | slot`, so it survives splits and merges (it names slots,
/// not partitions) and table resizes (positions do not move, see
/// [`Keyspace::scan`](super::Keyspace::scan)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanCursor {
    pub slot: u16,
    pub pos: u64,
}

impl ScanCursor {
    pub fn encode(self) -> u64 {
        (self.pos << 14) | u64::from(self.slot)
    }

    pub fn decode(n: u64) -> ScanCursor {
        ScanCursor {
            slot: (n & 0x3FFF) as u16,
            pos: n >> 14,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_step_walks_down_within_its_budget() {
        let mut seen = Vec::new();
        // From the top: COUNT kept, then stop.
        let (next, visited) = scan_step(100, 0, 5, |p| {
            seen.push(p);
            true
        });
        assert_eq!((next, visited), (95, 5));
        assert_eq!(seen, vec![99, 98, 97, 96, 95]);
        // Nothing kept: COUNT * 10 visited.
        assert_eq!(scan_step(100, 95, 5, |_| false), (45, 50));
        // A cursor past the end (the collection shrank) is clamped.
        assert_eq!(scan_step(10, 95, 5, |_| false), (0, 10));
        assert_eq!(scan_step(0, 0, 5, |_| true), (0, 0));
    }
}
