//! Autoscaling decisions: pure functions of observed partition figures.
//!
//! No I/O and no clock reads here: the caller observes each partition once a
//! tick (bytes, per-slot bytes, per-slot load, age) and applies the
//! decisions. State carried between ticks (consecutive hot and cold
//! observations) goes in and comes out explicitly ([`State`]).
//!
//! Rules (DESIGN.md §4):
//! 1. split on size: bytes > `split_bytes`; the split point halves bytes;
//! 2. split on load: ECPU/s > `split_ecpu_per_sec` for `split_load_window`
//!    consecutive ticks; the split point halves load;
//! 3. a partition of a single slot over a threshold is reported, not split;
//! 4. pre-scaling: fewer partitions than `min_partitions` → split the widest
//!    at its middle;
//! 5. merge two adjacent partitions when both are older than `merge_delay`,
//!    their combined bytes < `merge_bytes` and combined ECPU/s < a quarter of
//!    `split_ecpu_per_sec`, for `merge_window` consecutive ticks, and the cache
//!    stays at or above `min_partitions`. A partition split or merged this
//!    tick takes part in nothing else this tick.

use std::collections::HashMap;

/// Thresholds (from `serve` flags / environment, see `config.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub split_bytes: u64,
    pub split_ecpu_per_sec: u64,
    /// Consecutive ticks (seconds) over the load threshold before a split.
    pub split_load_window: u32,
    pub merge_bytes: u64,
    /// Consecutive cold ticks (seconds) before a merge.
    pub merge_window: u32,
    /// Minimum age in seconds of both partitions of a merge.
    pub merge_delay_secs: u64,
    /// Partitions the cache keeps at least (pre-scaling for minimum ECPU/s).
    pub min_partitions: usize,
}

/// One partition as observed this tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub id: u64,
    pub first_slot: u16,
    pub last_slot: u16,
    pub bytes: u64,
    /// Bytes per slot of the range, in slot order; only read (and, by
    /// `serve`, only gathered) when `bytes` is over the split threshold.
    pub slot_bytes: Vec<u64>,
    /// Load per slot over the tick, milli-ECPU per second, in slot order.
    pub slot_load: Vec<u64>,
    pub age_secs: u64,
}

impl Observation {
    pub fn ecpu_per_sec(&self) -> f64 {
        self.slot_load.iter().sum::<u64>() as f64 / 1000.0
    }
}

/// Why a partition splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitReason {
    Size,
    Load,
    MinEcpu,
}

impl SplitReason {
    pub fn label(self) -> &'static str {
        match self {
            SplitReason::Size => "size",
            SplitReason::Load => "load",
            SplitReason::MinEcpu => "min_ecpu",
        }
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Split partition `id`: the new partition owns `at..=last`.
    Split {
        id: u64,
        at: u16,
        reason: SplitReason,
    },
    /// Merge `right` into its left neighbour `left`.
    Merge { left: u64, right: u64 },
    /// A single slot alone exceeds a threshold: reported, not split.
    HotSlot { id: u64, slot: u16 },
}

/// Consecutive observations carried between ticks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    hot_ticks: HashMap<u64, u32>,
    cold_ticks: HashMap<(u64, u64), u32>,
}

/// The first slot boundary where the running total reaches half: the new
/// partition starts there. Both sides keep at least one slot.
fn halving_point(first: u16, weights: &[u64]) -> u16 {
    let total: u64 = weights.iter().sum();
    let mut acc = 0;
    for (i, w) in weights.iter().enumerate() {
        acc += w;
        if acc * 2 >= total {
            // The slot that crosses half goes left, unless it is the last one.
            let cut = (i + 1).min(weights.len() - 1).max(1);
            return first + cut as u16;
        }
    }
    first + (weights.len() / 2).max(1) as u16
}

/// One tick of decisions. `obs` is in slot order.
pub fn decide(t: &Thresholds, state: &State, obs: &[Observation]) -> (Vec<Decision>, State) {
    let mut out = Vec::new();
    let mut next = State::default();
    let mut busy: Vec<u64> = Vec::new();
    let mut count = obs.len();
    for o in obs {
        let single = o.first_slot == o.last_slot;
        let hot = o.ecpu_per_sec() > t.split_ecpu_per_sec as f64;
        let ticks = if hot {
            state.hot_ticks.get(&o.id).copied().unwrap_or(0) + 1
        } else {
            0
        };
        // Size first (its split point halves bytes), then sustained load
        // (its split point halves load); one slot alone is reported instead.
        let over = if o.bytes > t.split_bytes {
            Some((SplitReason::Size, &o.slot_bytes))
        } else if ticks >= t.split_load_window.max(1) {
            Some((SplitReason::Load, &o.slot_load))
        } else {
            None
        };
        if let Some((reason, weights)) = over {
            if single {
                out.push(Decision::HotSlot {
                    id: o.id,
                    slot: o.first_slot,
                });
            } else {
                let at = halving_point(o.first_slot, weights);
                out.push(Decision::Split {
                    id: o.id,
                    at,
                    reason,
                });
                busy.push(o.id);
                count += 1;
                continue;
            }
        }
        if ticks > 0 {
            next.hot_ticks.insert(o.id, ticks);
        }
    }
    // Pre-scaling: split the widest partitions at their middle.
    let mut widths: Vec<&Observation> = obs
        .iter()
        .filter(|o| !busy.contains(&o.id) && o.first_slot < o.last_slot)
        .collect();
    widths.sort_by_key(|o| std::cmp::Reverse(o.last_slot - o.first_slot));
    for o in widths {
        if count >= t.min_partitions {
            break;
        }
        let at = o.first_slot + (o.last_slot - o.first_slot).div_ceil(2);
        out.push(Decision::Split {
            id: o.id,
            at,
            reason: SplitReason::MinEcpu,
        });
        busy.push(o.id);
        count += 1;
    }
    // Merges of cold, small, old neighbours.
    let cold_load = t.split_ecpu_per_sec as f64 / 4.0;
    for pair in obs.windows(2) {
        let (l, r) = (&pair[0], &pair[1]);
        if busy.contains(&l.id) || busy.contains(&r.id) {
            continue;
        }
        let cold = l.age_secs >= t.merge_delay_secs
            && r.age_secs >= t.merge_delay_secs
            && l.bytes + r.bytes < t.merge_bytes
            && l.ecpu_per_sec() + r.ecpu_per_sec() < cold_load;
        if !cold {
            continue;
        }
        let ticks = state.cold_ticks.get(&(l.id, r.id)).copied().unwrap_or(0) + 1;
        if ticks >= t.merge_window.max(1) && count > t.min_partitions.max(1) {
            out.push(Decision::Merge {
                left: l.id,
                right: r.id,
            });
            busy.push(l.id);
            busy.push(r.id);
            count -= 1;
        } else {
            next.cold_ticks.insert((l.id, r.id), ticks);
        }
    }
    (out, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        split_bytes: 1000,
        split_ecpu_per_sec: 100,
        split_load_window: 3,
        merge_bytes: 250,
        merge_window: 2,
        merge_delay_secs: 60,
        min_partitions: 1,
    };

    /// A partition over `first..=last` with bytes and load (ECPU/s) spread
    /// evenly over its slots, unless `hot` puts them all on one slot.
    fn part(
        id: u64,
        first: u16,
        last: u16,
        bytes: u64,
        ecpu: u64,
        age: u64,
        hot: Option<u16>,
    ) -> Observation {
        let n = usize::from(last - first) + 1;
        let spread = |total: u64| -> Vec<u64> {
            match hot {
                Some(s) => (first..=last)
                    .map(|x| if x == s { total } else { 0 })
                    .collect(),
                None => (0..n)
                    .map(|i| total / n as u64 + u64::from((i as u64) < total % n as u64))
                    .collect(),
            }
        };
        Observation {
            id,
            first_slot: first,
            last_slot: last,
            bytes,
            slot_bytes: spread(bytes),
            slot_load: spread(ecpu * 1000),
            age_secs: age,
        }
    }

    fn run(t: &Thresholds, state: &State, obs: &[Observation]) -> Vec<Decision> {
        decide(t, state, obs).0
    }

    #[test]
    fn decision_table() {
        use Decision::*;
        use SplitReason::*;
        let none: Vec<Decision> = vec![];
        let cases: Vec<(&str, Vec<Observation>, Vec<Decision>)> = vec![
            (
                "small and idle: nothing",
                vec![part(1, 0, 16383, 500, 10, 0, None)],
                none.clone(),
            ),
            (
                "over split_bytes: split halving bytes",
                vec![part(1, 0, 99, 2000, 0, 0, None)],
                vec![Split {
                    id: 1,
                    at: 50,
                    reason: Size,
                }],
            ),
            (
                "bytes skewed low: split point moves left",
                vec![part(1, 0, 99, 2000, 0, 0, Some(10))],
                vec![Split {
                    id: 1,
                    at: 11,
                    reason: Size,
                }],
            ),
            (
                "one slot over split_bytes: reported",
                vec![part(1, 7, 7, 2000, 0, 0, None)],
                vec![HotSlot { id: 1, slot: 7 }],
            ),
            (
                "load over threshold once: not yet",
                vec![part(1, 0, 99, 0, 500, 0, None)],
                none.clone(),
            ),
            (
                "cold neighbours but too young: no merge",
                vec![
                    part(1, 0, 99, 10, 0, 30, None),
                    part(2, 100, 16383, 10, 0, 30, None),
                ],
                none.clone(),
            ),
            (
                "cold neighbours but too big together: no merge",
                vec![
                    part(1, 0, 99, 200, 0, 600, None),
                    part(2, 100, 16383, 100, 0, 600, None),
                ],
                none.clone(),
            ),
            (
                "cold neighbours but warm together: no merge",
                vec![
                    part(1, 0, 99, 10, 20, 600, None),
                    part(2, 100, 16383, 10, 10, 600, None),
                ],
                none.clone(),
            ),
        ];
        for (name, obs, want) in cases {
            assert_eq!(run(&T, &State::default(), &obs), want, "{name}");
        }
    }

    #[test]
    fn load_split_needs_a_sustained_window() {
        let obs = vec![part(1, 0, 99, 0, 500, 0, Some(80))];
        let (d1, s1) = decide(&T, &State::default(), &obs);
        let (d2, s2) = decide(&T, &s1, &obs);
        assert!(d1.is_empty() && d2.is_empty());
        let (d3, s3) = decide(&T, &s2, &obs);
        // All the load on slot 80: the split isolates it on the left side.
        assert_eq!(
            d3,
            vec![Decision::Split {
                id: 1,
                at: 81,
                reason: SplitReason::Load
            }]
        );
        assert_eq!(s3, State::default());
        // A cool tick resets the streak.
        let cool = vec![part(1, 0, 99, 0, 50, 0, None)];
        let (_, s) = decide(&T, &s2, &cool);
        let (d, _) = decide(&T, &s, &obs);
        assert!(d.is_empty());
        // A hot single slot is reported once the window passes.
        let single = vec![part(9, 80, 80, 0, 500, 0, None)];
        let mut st = State::default();
        for _ in 0..2 {
            st = decide(&T, &st, &single).1;
        }
        assert_eq!(
            decide(&T, &st, &single).0,
            vec![Decision::HotSlot { id: 9, slot: 80 }]
        );
    }

    #[test]
    fn merge_needs_a_cold_window_and_respects_the_minimum() {
        let obs = vec![
            part(1, 0, 99, 10, 1, 600, None),
            part(2, 100, 16383, 10, 1, 600, None),
        ];
        let (d1, s1) = decide(&T, &State::default(), &obs);
        assert!(d1.is_empty());
        let (d2, _) = decide(&T, &s1, &obs);
        assert_eq!(d2, vec![Decision::Merge { left: 1, right: 2 }]);
        let keep_two = Thresholds {
            min_partitions: 2,
            ..T
        };
        let (_, s) = decide(&keep_two, &State::default(), &obs);
        assert!(decide(&keep_two, &s, &obs).0.is_empty());
    }

    #[test]
    fn minimum_partitions_pre_split_the_widest() {
        let t = Thresholds {
            min_partitions: 3,
            ..T
        };
        let d = run(&t, &State::default(), &[part(1, 0, 16383, 0, 0, 0, None)]);
        assert_eq!(
            d,
            vec![Decision::Split {
                id: 1,
                at: 8192,
                reason: SplitReason::MinEcpu
            }]
        );
        let d = run(
            &t,
            &State::default(),
            &[
                part(1, 0, 8191, 0, 0, 0, None),
                part(2, 8192, 16383, 0, 0, 0, None),
            ],
        );
        assert_eq!(
            d,
            vec![Decision::Split {
                id: 1,
                at: 4096,
                reason: SplitReason::MinEcpu
            }]
        );
    }
}
