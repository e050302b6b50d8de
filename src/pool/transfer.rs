//! Slots moving between nodes (a partition moved by `stratus control`),
//! seen from one node's pool:
//! 1. [`CachePool::export_top`]: under the source partition's lock, its top
//!    slots leave whole (as a split moves them: O(slots)); from then on the
//!    partition refuses them (`Moved`) and nobody on this node writes them;
//!    off the lock, their keys are written out as DUMP payloads, and the
//!    slots are held here until a table says where they are: elsewhere
//!    (they go) or still here (they come back: a move that failed);
//! 2. [`CachePool::import`]: on the destination node the keys are restored
//!    into a keyspace of those slots, which becomes a partition (staged
//!    until the table names it) or extends one;
//! 3. [`CachePool::apply_layout`]: every node of the cache installs
//!    control's new table: its own partitions where the table puts them,
//!    every other range refused and answered with the node that has it. A
//!    table that disagrees with what a node holds is refused, never applied
//!    by dropping data.
//!
//! Between 1 and 3 no node serves the slots in transit (a proxy retries
//! them, then answers `TRYAGAIN`): at any instant at most one node accepts
//! writes for a slot. Blocked clients and watchers of the slots that left
//! are woken, so they try again where the keys went.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::Bytes;

use super::{CachePool, PartitionHandle, RangeEvent, RoutingTable};
use crate::cmd::dump;
use crate::partition::Keyspace;
use crate::wire;

/// Largest decoded size of one carried value (its DUMP payload inflates
/// at most to this).
const MAX_CARRIED: usize = 1 << 30;

/// Most bytes one step of a move carries (one slot or a cluster-mode
/// disabled partition, which move whole, may not exceed it): a step is one
/// frame, held in memory on both sides and in control.
pub const MAX_STEP_BYTES: u64 = 256 << 20;

/// Slots a partition gave up in a move, kept until a table says where
/// they are ([`CachePool::apply_layout`]).
pub struct Held {
    partition: u64,
    ks: Keyspace,
}

/// One range of a layout as this node applies it.
pub struct Placed {
    pub first: u16,
    pub last: u16,
    pub partition: u64,
    /// Where it is: `None` here, else the node's address.
    pub elsewhere: Option<String>,
}

impl CachePool {
    /// A node's pool for a cache it learns from control's table: it owns
    /// nothing until [`Self::apply_layout`] gives it partitions.
    pub fn hosting(mode: crate::partition::ClusterMode) -> CachePool {
        let mut pool = CachePool::with_mode(1, mode).fed();
        let nothing = pool.gone(0, 0, crate::partition::SLOTS - 1, 0);
        *pool.routing.get_mut() = RoutingTable {
            epoch: 0,
            ranges: vec![(0, crate::partition::SLOTS - 1, nothing)],
        };
        pool
    }

    /// A partition that refuses everything: a range this node does not
    /// serve, known by the id of the partition that has it.
    fn gone(&self, id: u64, first: u16, last: u16, epoch: u64) -> PartitionHandle {
        let event = RangeEvent {
            kind: "moved",
            reason: "elsewhere",
            at: SystemTime::now(),
        };
        let handle =
            PartitionHandle::local(id, Keyspace::new(first, last), epoch, &self.shared, event);
        if let Some(p) = handle.in_process() {
            p.state.lock().retired = true;
        }
        handle
    }

    /// Step 1 of a move: partition `id` gives up its top slots, as many
    /// whole ones as hold at most `max_bytes` (at least one; all of them
    /// retire the partition). Returns the slots, the routing epoch after,
    /// and their live keys. Fails, changing nothing, while slow work holds
    /// the partition (control tries again).
    pub async fn export_top(
        &self,
        id: u64,
        max_bytes: u64,
        now: u64,
    ) -> Result<(u16, u16, u64, Vec<wire::Carried>), String> {
        let handle = self
            .partition(id)
            .ok_or_else(|| format!("partition {id} is not here"))?;
        let p = handle
            .in_process()
            .ok_or("a remote partition exports on its node")?
            .clone();
        let (out, epoch) = {
            let Some(mut st) = p.lock_inline() else {
                return Err(format!("partition {id} is busy"));
            };
            if st.retired {
                return Err(format!("partition {id} is not here"));
            }
            let (first, last) = (st.ks.first_slot(), st.ks.last_slot());
            let bytes = st.ks.slot_bytes();
            let mut at = last;
            let mut taken = bytes[usize::from(last - first)] as u64;
            while at > first && taken + bytes[usize::from(at - 1 - first)] as u64 <= max_bytes {
                at -= 1;
                taken += bytes[usize::from(at - first)] as u64;
            }
            if taken > MAX_STEP_BYTES {
                return Err(format!(
                    "slots {at}..={last} of partition {id} hold {taken} bytes: more than a move step carries ({MAX_STEP_BYTES})"
                ));
            }
            let whole = at == first;
            let out = if whole {
                p.with_state(&mut st, |ks| {
                    std::mem::replace(ks, Keyspace::new(first, first))
                })
            } else {
                p.with_state(&mut st, |ks| ks.split_off(at))
            };
            let mut table = self.routing.write();
            table.epoch += 1;
            st.epoch = table.epoch;
            if whole {
                st.retired = true;
            } else {
                let epoch = table.epoch;
                let i = table
                    .ranges
                    .iter()
                    .position(|(_, _, h)| h.id() == id)
                    .ok_or("routing lost a partition")?;
                table.ranges[i].1 = at - 1;
                let gone = self.gone(0, at, last, epoch);
                table.ranges.insert(i + 1, (at, last, gone));
            }
            (out, table.epoch)
        };
        // Blocked clients of those slots try again, and find their keys
        // gone from here.
        let (first, last) = (out.first_slot(), out.last_slot());
        p.events.touched_slots(first, last);
        let (out, keys) = tokio::task::spawn_blocking(move || {
            let keys = carry(&out, now);
            (out, keys)
        })
        .await
        .map_err(|e| format!("export failed: {e}"))?;
        self.held.lock().push(Held {
            partition: id,
            ks: out,
        });
        Ok((first, last, epoch, keys))
    }

    /// Step 2 of a move: partition `id` takes slots `first..=last` with
    /// `keys`. A partition of that id here must end just before them or
    /// start just after; with none, a new one waits for the table that
    /// names it. Returns the routing epoch.
    pub async fn import(
        &self,
        id: u64,
        first: u16,
        last: u16,
        keys: Vec<wire::Carried>,
        now: u64,
    ) -> Result<u64, String> {
        if first > last || last >= crate::partition::SLOTS {
            return Err(format!("bad slot range {first}..={last}"));
        }
        let ks = tokio::task::spawn_blocking(move || restore(first, last, keys, now))
            .await
            .map_err(|e| format!("import failed: {e}"))??;
        let found = self
            .partition(id)
            .or_else(|| self.staged.lock().iter().find(|h| h.id() == id).cloned());
        let mut live = None;
        if let Some(p) = found.as_ref().and_then(|h| h.in_process()) {
            // Never waiting for slow work on the partition (control retries),
            // only for a lock held briefly.
            let st = p.lock_inline().ok_or(format!("partition {id} is busy"))?;
            if !st.retired {
                live = found.clone();
            }
        }
        let Some(handle) = live else {
            let epoch = self.epoch();
            let event = RangeEvent {
                kind: "moved",
                reason: "imported",
                at: SystemTime::now(),
            };
            self.shared
                .used_bytes
                .fetch_add(ks.used_bytes() as u64, Ordering::Relaxed);
            let handle = PartitionHandle::local(id, ks, epoch, &self.shared, event);
            self.staged.lock().push(handle);
            return Ok(epoch);
        };
        let p = handle.in_process().expect("found in-process");
        let mut st = p.lock_inline().ok_or(format!("partition {id} is busy"))?;
        if st.ks.last_slot().checked_add(1) == Some(first) {
            p.with_state(&mut st, |mine| mine.absorb(ks));
        } else if last.checked_add(1) == Some(st.ks.first_slot()) {
            p.with_state(&mut st, |mine| {
                let mut ks = ks;
                let old = std::mem::replace(mine, Keyspace::new(first, first));
                ks.absorb(old);
                *mine = ks;
            });
        } else {
            return Err(format!(
                "slots {first}..={last} do not extend partition {id} ({}..={})",
                st.ks.first_slot(),
                st.ks.last_slot()
            ));
        }
        Ok(self.epoch())
    }

    /// Step 3: installs control's table at `epoch` (older or equal tables
    /// change nothing). First, slots this node holds from a move come back
    /// to their partition if the table keeps them here, or go if it puts
    /// them elsewhere. Then partitions here keep their data where the
    /// table puts them; one that also holds slots below the table's range
    /// (an import the table never took) lets those go — a copy: their
    /// source still has them. The table's ranges for this node with no
    /// partition here get an empty one (a node that restarted); every
    /// other range is refused, answered with its node. A table that would
    /// take from a partition here slots it does not say are elsewhere is
    /// refused whole, as is one arriving while slow work holds a partition
    /// (control sends it again).
    pub fn apply_layout(&self, epoch: u64, ranges: Vec<Placed>) -> Result<(), String> {
        let covered = ranges.first().is_some_and(|r| r.first == 0)
            && ranges
                .last()
                .is_some_and(|r| r.last == crate::partition::SLOTS - 1)
            && ranges.windows(2).all(|w| w[0].last + 1 == w[1].first);
        if !covered {
            return Err("a layout with gaps".into());
        }
        let mut staged = self.staged.lock();
        let mut held = self.held.lock();
        let mut table = self.routing.write();
        if epoch <= table.epoch {
            return Ok(());
        }
        // Every partition here, locked without waiting (never under the
        // routing lock: slow work would stall the node).
        let from_table = table
            .ranges
            .iter()
            .filter(|(_, _, h)| h.in_process().is_some())
            .count();
        let locals: Vec<(PartitionHandle, Arc<super::LocalPartition>)> = table
            .ranges
            .iter()
            .map(|(_, _, h)| h)
            .chain(staged.iter())
            .filter_map(|h| h.in_process().map(|p| (h.clone(), p.clone())))
            .collect();
        let mut guards = Vec::with_capacity(locals.len());
        for (h, p) in &locals {
            guards.push(
                p.lock_inline()
                    .ok_or_else(|| format!("partition {} is busy", h.id()))?,
            );
        }
        // 1. Held slots: back to their partition (the latest taken first:
        //    each starts where the partition now ends) or gone.
        while let Some(h) = held.pop() {
            let (first, last) = (h.ks.first_slot(), h.ks.last_slot());
            let home = ranges.iter().find(|r| r.first <= first && first <= r.last);
            match home {
                // Elsewhere now: the node that has them got them whole.
                Some(r) if r.elsewhere.is_some() => continue,
                Some(r) if r.partition == h.partition => {}
                _ => {
                    held.push(h);
                    return Err(format!(
                        "the table puts slots {first}..={last}, held here, in another partition"
                    ));
                }
            }
            let Some(i) = locals.iter().position(|(x, _)| x.id() == h.partition) else {
                held.push(h);
                return Err(format!(
                    "slots {first}..={last} held for a partition not here"
                ));
            };
            let (p, st) = (&locals[i].1, &mut guards[i]);
            if st.retired {
                st.retired = false;
                p.with_state(st, |ks| *ks = h.ks);
            } else if st.ks.last_slot().checked_add(1) == Some(first) {
                p.with_state(st, |ks| ks.absorb(h.ks));
            } else {
                held.push(h);
                return Err(format!(
                    "slots {first}..={last} held do not fit their partition"
                ));
            }
        }
        // 2. The table's ranges.
        let mut new = Vec::with_capacity(ranges.len());
        let mut homes = std::collections::HashMap::new();
        let mut kept = vec![false; locals.len()];
        for r in &ranges {
            if let Some(node) = &r.elsewhere {
                homes.insert(r.partition, node.clone());
                new.push((
                    r.first,
                    r.last,
                    self.gone(r.partition, r.first, r.last, epoch),
                ));
                continue;
            }
            let found = (0..locals.len())
                .find(|&i| locals[i].0.id() == r.partition && !guards[i].retired && !kept[i]);
            let handle = match found {
                Some(i) => {
                    let (p, st) = (&locals[i].1, &mut guards[i]);
                    let (first, last) = (st.ks.first_slot(), st.ks.last_slot());
                    if last != r.last || first > r.first {
                        return Err(format!(
                            "partition {} holds {first}..={last}, the table says {}..={}",
                            r.partition, r.first, r.last
                        ));
                    }
                    if first < r.first {
                        // Slots below it from an import the table never
                        // took: a copy, its source has them.
                        p.with_state(st, |ks| *ks = ks.split_off(r.first));
                    }
                    kept[i] = true;
                    st.epoch = epoch;
                    locals[i].0.clone()
                }
                None => {
                    let event = RangeEvent {
                        kind: "created",
                        reason: "placed",
                        at: SystemTime::now(),
                    };
                    let ks = Keyspace::new(r.first, r.last);
                    PartitionHandle::local(r.partition, ks, epoch, &self.shared, event)
                }
            };
            new.push((r.first, r.last, handle));
        }
        // 3. A live partition of the table that the new one does not keep
        //    would lose its data: refused. Staged imports it does not
        //    name are copies: they go.
        for (i, st) in guards.iter_mut().enumerate() {
            if kept[i] || st.retired {
                continue;
            }
            if i < from_table {
                return Err(format!(
                    "the table leaves partition {} and its slots nowhere",
                    locals[i].0.id()
                ));
            }
            let first = st.ks.first_slot();
            locals[i]
                .1
                .with_state(st, |ks| *ks = Keyspace::new(first, first));
            st.retired = true;
        }
        drop(guards);
        let top = ranges.iter().map(|r| r.partition).max().unwrap_or(0);
        self.next_id.fetch_max(top + 1, Ordering::Relaxed);
        table.ranges = new;
        table.epoch = epoch;
        staged.clear();
        *self.homes.lock() = homes;
        Ok(())
    }

    /// Where partition `id` is, if another node has it (as the last table
    /// said).
    pub fn home(&self, id: u64) -> Option<String> {
        self.homes.lock().get(&id).cloned()
    }
}

/// The live keys of `ks` as DUMP payloads with their deadlines.
fn carry(ks: &Keyspace, now: u64) -> Vec<wire::Carried> {
    let mut out = Vec::with_capacity(ks.len());
    for slot in ks.first_slot()..=ks.last_slot() {
        for key in ks.keys_in_slot(slot, usize::MAX) {
            let Some(entry) = ks.peek_live(&key, now) else {
                continue;
            };
            let mut elements = 0;
            let payload = dump::dump_value(&entry.value, &mut elements);
            out.push(wire::Carried {
                key: Bytes::from(key),
                expire_at: entry.expire_at().unwrap_or(0),
                payload: Bytes::from(payload),
            });
        }
    }
    out
}

/// A keyspace of slots `first..=last` holding `keys` (those whose slot is
/// in the range and whose deadline has not passed).
fn restore(first: u16, last: u16, keys: Vec<wire::Carried>, now: u64) -> Result<Keyspace, String> {
    let mut ks = Keyspace::new(first, last);
    for k in keys {
        if !ks.owns(crate::partition::key_slot(&k.key)) {
            return Err("a carried key outside its slots".into());
        }
        if k.expire_at != 0 && k.expire_at <= now {
            continue;
        }
        let object = dump::verify_payload(&k.payload).ok_or("a carried value is corrupt")?;
        let (value, _, _) = dump::load_payload(object, MAX_CARRIED)
            .map_err(|_| "a carried value does not load".to_string())?;
        ks.insert(&k.key, value, k.expire_at, now);
    }
    Ok(ks)
}
