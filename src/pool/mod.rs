//! The partition pool of one cache: its routing table (slot range →
//! partition, with an epoch), the [`PartitionHandle`] seam, request routing
//! (with fan-out for per-key multi-key commands), and the split and merge
//! mechanics the autoscaler ([`autoscaler`]) decides on.
//!
//! The proxy path talks only to [`CachePool::execute`] and
//! [`PartitionHandle`]: a handle is local (a keyspace behind a mutex in
//! this process: `stratus serve`, and a node's own partitions) or remote
//! (a partition on a `stratus node`, reached with [`crate::wire`]
//! messages; each range of a proxy's table may be on another node). Slots
//! moving between nodes: [`transfer`].
//!
//! Cluster mode ([`ClusterMode`], chosen per cache at creation): enabled, the
//! pool splits and merges by slot and one command's keys must share a slot;
//! disabled, the pool is one partition owning every slot that never splits
//! ([`CachePool::split`] refuses), so any keys may be combined and a command
//! routed by any of its slots lands in that partition. The request path asks
//! [`CachePool::cluster_mode`]; partition-side checks (scripts, SORT) read
//! it from [`Ctx::cluster_mode`]. Nothing else in a partition assumes one
//! slot per command: storage, WATCH versions, blocked keys, keyspace
//! events and tracking all work per key.
//!
//! Invariants: the routing table's ranges are contiguous, cover all 16384
//! slots, and its epoch only grows; a partition refuses a command for a slot
//! it no longer owns ([`Moved`], carrying the epoch of its last change) and the
//! pool re-routes and retries; a partition's lock is held for one operation,
//! never across `.await`. Lock order: partition (left before right), then
//! routing table.
//!
//! Split, in phases ([`CachePool::split`]):
//! 1. lock the partition and check it still owns the range the decision saw;
//! 2. `split_off` the upper slots into a new keyspace (slot tables move
//!    whole: O(slots), not O(keys));
//! 3. install the new partition in the routing table under a new epoch;
//! 4. unlock: commands queued on the old partition for moved slots get
//!    [`Moved`] and are re-routed to the new one.
//!
//! Merge ([`CachePool::merge`]): lock left then right, move right's slot
//! tables into left, retire right (it refuses everything), replace both
//! routes with one under a new epoch, unlock.
//!
//! Execution ([`CachePool::run_in`], DESIGN §12): a batch of bounded
//! commands (the table's [`CommandSpec::runs_on_workers`] is false for all)
//! runs inline on the calling reactor thread when the partition lock is free
//! or held briefly; anything else — unbounded commands, scripts, and any
//! command that finds the partition held by such work — runs on the
//! [`workers`] pool, admitted per cache. Reactor threads never wait for a
//! lock that slow work holds (they see [`LocalPartition::slow`]), and
//! maintenance (expiry, eviction, statistics, split, merge) only ever
//! `try_lock`s from a reactor. While a script holds a partition past the
//! busy threshold, other commands for it are answered `BUSY`; `SCRIPT KILL`
//! reaches running scripts through [`CachePool::kill_scripts`].
//!
//! Key events ([`KeyEvents`]): keys some connection WATCHes or blocks on.
//! A successful write bumps the key's version and wakes its waiters, under
//! the partition lock, so EXEC's version check (also under that lock) and
//! a blocked BLPOP's retry never miss a write.
//!
//! Blocked clients are served first-come first-served on each key, as
//! Redis serves them. Every blocked client holds a ticket (its place in
//! line, taken before its first attempt), and:
//! 1. every attempt of a blocking command that takes elements
//!    ([`cmd::takes`]) runs with the keys on which a client of the same
//!    kind holds an earlier ticket marked reserved ([`Ctx::reserved`]): it
//!    takes nothing from them (a first attempt in a MULTI has no ticket:
//!    every waiter is earlier);
//! 2. a write wakes every waiter of the key; each retries, and only the
//!    first in line may take;
//! 3. a client served leaves every line under the partition lock, before
//!    the write's wake-up; a client leaving a line (served, timed out,
//!    gone) wakes the rest of it, so an element it was owed passes on.

pub mod autoscaler;
pub mod feed;
pub mod transfer;
pub mod workers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::cmd::script::ScriptControl;
use crate::cmd::{self, CommandSpec, Ctx};
use crate::link::{NodeClient, Nodes};
use crate::partition::keyspace::Keys;
use crate::partition::notify::{self, KeyEvent};
use crate::partition::scan::ScanCursor;
use crate::partition::{ClusterMode, Entry, Eviction, Keyspace, KeyspaceStats, SLOTS, key_slot};
use crate::pubsub::monitor::Monitors;
use crate::pubsub::tracking::Tracking;
use crate::pubsub::{Delivery, LocalHub, MessageHub};
use crate::resp::{Reply, reply};
use crate::wire;
use feed::{Feed, FeedItem};

/// What a run of commands did, in order: inline for the usual one (a
/// request at pipeline 1 allocates nothing for it).
pub type Executions = smallvec::SmallVec<[Executed; 1]>;

/// What executing a command in a partition produced.
pub struct Executed {
    pub reply: Reply,
    /// Elements walked (metered as work).
    pub work: u64,
    /// A blocking command found nothing to serve ([`cmd::Ctx::waits`]):
    /// its client waits on.
    pub waits: bool,
    /// With `waits`: the arguments its retries run with ([`cmd::Ctx::resume`]).
    pub resume: Option<Vec<Bytes>>,
    /// The command did not run, and why (its reply says so to the client).
    pub unserved: Option<Unserved>,
    /// How long it ran in its partition (zero where not timed).
    pub took: Duration,
}

/// Why a command did not run, for the request path to decide on (the reply
/// is for the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unserved {
    /// A script holds its partition past the busy threshold (`BUSY`).
    Busy,
    /// Its keys are moving between nodes (`TRYAGAIN`): a blocked client
    /// stays blocked, in line where they land.
    InTransit,
}

impl Executed {
    /// A reply that walked `work` elements and did not wait.
    pub const fn new(reply: Reply, work: u64) -> Executed {
        Executed {
            reply,
            work,
            waits: false,
            resume: None,
            unserved: None,
            took: Duration::ZERO,
        }
    }

    /// Nothing ran: `reply` tells the client why.
    pub const fn unserved(reply: Reply, why: Unserved) -> Executed {
        Executed {
            reply,
            work: 0,
            waits: false,
            resume: None,
            unserved: Some(why),
            took: Duration::ZERO,
        }
    }
}

impl From<PartitionStats> for wire::Stats {
    fn from(s: PartitionStats) -> wire::Stats {
        wire::Stats {
            first_slot: s.first_slot,
            last_slot: s.last_slot,
            keys: s.keys as u64,
            volatile_keys: s.volatile_keys as u64,
            used_bytes: s.used_bytes as u64,
            events: s.events,
        }
    }
}

impl From<wire::Stats> for PartitionStats {
    fn from(s: wire::Stats) -> PartitionStats {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        PartitionStats {
            first_slot: s.first_slot,
            last_slot: s.last_slot,
            keys: size(s.keys),
            volatile_keys: size(s.volatile_keys),
            used_bytes: size(s.used_bytes),
            events: s.events,
        }
    }
}

/// What one SCAN step found ([`CachePool::scan`]).
#[derive(Debug)]
pub struct Scanned {
    pub keys: Vec<Bytes>,
    /// Where to go on; `None` when the partition's last slot is done.
    pub next: Option<ScanCursor>,
    /// Entries visited (expired and filtered-out ones too) and slots
    /// walked through: the work done.
    pub visited: u64,
    pub slots: u64,
}

/// How often the active expiry cycle runs (Redis's `hz 10`).
pub const EXPIRE_PERIOD: Duration = Duration::from_millis(100);
/// Heap entries examined per partition per round, between lock releases.
const EXPIRE_BUDGET: usize = 128;
/// Rounds per period at most: bounds the cycle's CPU share.
const EXPIRE_MAX_ROUNDS: usize = 20;

/// A blocked client's places in line on its keys ([`CachePool::block`]);
/// it leaves them when dropped.
pub struct Blocked {
    ticket: u64,
    form: BlockedForm,
}

enum BlockedForm {
    Local {
        events: Arc<KeyEvents>,
        keys: Vec<Bytes>,
        notify: Arc<tokio::sync::Notify>,
    },
    Remote {
        node: Arc<NodeClient>,
        /// The partition whose keys it waits on, as routed then.
        partition: u64,
        subscription: u64,
        /// What getting in line again takes (a node that lost the
        /// subscription with its connection).
        again: Box<wire::Request>,
        /// The `Await` sent and not yet answered (true once woken): kept
        /// when a wait is given up (another event won), so no wake-up is
        /// lost.
        waiting: Option<tokio::task::JoinHandle<bool>>,
    },
}

impl Blocked {
    /// Its place in line ([`ExecOptions::ticket`] for its attempts).
    pub fn ticket(&self) -> u64 {
        self.ticket
    }

    /// Waits for a write of one of the keys since the last wait (a write
    /// in between is not missed). `first`: the client's first attempt
    /// found nothing, so it now counts as blocked. A lost node ends the
    /// wait at once (the next attempt reports it).
    pub async fn woken(&mut self, first: bool) {
        match &mut self.form {
            BlockedForm::Local {
                events,
                keys,
                notify,
            } => {
                if first {
                    events.blocked(keys.iter().map(|k| &k[..]), notify);
                }
                notify.notified().await;
            }
            BlockedForm::Remote {
                node,
                subscription,
                again,
                waiting,
                ..
            } => {
                let call = waiting.get_or_insert_with(|| {
                    let node = node.clone();
                    let request = wire::Request::Await {
                        subscription: *subscription,
                        first,
                    };
                    tokio::spawn(async move {
                        matches!(node.call(request).await, Ok(wire::Response::Woken))
                    })
                });
                let woken = call.await.unwrap_or(false);
                *waiting = None;
                if !woken {
                    // The node no longer has this client in line (its
                    // connection to this proxy ended): in line again, at
                    // the back. A node that cannot be reached leaves it as
                    // it is; the next attempt reports it.
                    if let Ok(wire::Response::Blocked {
                        subscription: fresh,
                        ticket,
                    }) = node.call((**again).clone()).await
                    {
                        *subscription = fresh;
                        self.ticket = ticket;
                    }
                }
            }
        }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        match &mut self.form {
            BlockedForm::Local {
                events,
                keys,
                notify,
            } => keys.iter().for_each(|k| events.unsubscribe(k, notify)),
            BlockedForm::Remote {
                node,
                subscription,
                waiting,
                ..
            } => {
                if let Some(call) = waiting.take() {
                    call.abort();
                }
                let request = wire::Request::Unblock {
                    subscription: *subscription,
                };
                in_background(node.clone(), request);
            }
        }
    }
}

/// Sends `request` to `node` without waiting for its answer (something
/// being let go: a lost node forgets it anyway).
pub fn in_background(node: Arc<NodeClient>, request: wire::Request) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = node.call(request).await;
        });
    }
}

/// A node's answer of the wrong kind (a bug on one side of the wire).
fn unexpected(answer: &impl std::fmt::Debug) -> NotRun {
    NotRun::Unavailable(reply::node_unavailable(&format!(
        "unexpected answer {answer:?}"
    )))
}

/// Whether a SCAN step keeps `key` (its `MATCH` and `TYPE`).
fn keeps(filter: &wire::ScanFilter, key: &[u8], entry: &Entry) -> bool {
    filter
        .pattern
        .as_ref()
        .is_none_or(|p| crate::glob::glob_match(p, key))
        && filter
            .value_type
            .is_none_or(|t| entry.value.value_type() == t)
}

/// A partition refused a command for a slot it no longer owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// The epoch of the partition's last split or merge: a routing table at
    /// least this new routes correctly.
    pub epoch: u64,
}

/// Why a batch did not run in the partition it was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRun {
    /// The slot moved: re-route.
    Moved(Moved),
    /// A script holds the partition past the busy threshold: `BUSY`.
    Busy,
    /// A remote partition could not run it (its node unreachable, or a
    /// request it does not serve): why, for the client's error reply.
    Unavailable(String),
}

impl From<Moved> for NotRun {
    fn from(m: Moved) -> NotRun {
        NotRun::Moved(m)
    }
}

/// Figures of one partition, for INFO, metrics and the partition view.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartitionStats {
    pub first_slot: u16,
    pub last_slot: u16,
    pub keys: usize,
    pub volatile_keys: usize,
    pub used_bytes: usize,
    pub events: KeyspaceStats,
}

/// The last change of a partition's range, for the partition view.
#[derive(Debug, Clone)]
pub struct RangeEvent {
    /// `created`, `split` or `merge`.
    pub kind: &'static str,
    /// Why (`initial`, `size`, `load`, `min_ecpu`, `cold`).
    pub reason: &'static str,
    pub at: SystemTime,
}

struct PartitionState {
    ks: Keyspace,
    /// Merged into its left neighbour: owns nothing any more.
    retired: bool,
    /// Routing epoch of the last change of this partition's range.
    epoch: u64,
}

/// Longest a reactor thread waits for a partition lock that bounded work
/// holds before it hands its command to the worker pool instead.
const INLINE_WAIT: Duration = Duration::from_micros(200);
/// Most commands a batch (EXEC) may hold to run inline: a longer
/// transaction runs on the worker pool, however cheap each command is.
const INLINE_BATCH: usize = 64;
/// How often a command waiting behind a script re-checks whether to answer
/// `BUSY`.
const BUSY_POLL: Duration = Duration::from_millis(10);

/// A partition that lives in this process.
pub struct LocalPartition {
    pub id: u64,
    pub created: Instant,
    state: Mutex<PartitionState>,
    /// Worker-pool jobs for this partition, queued or running: while
    /// non-zero, reactor threads do not wait for the lock.
    slow: AtomicUsize,
    /// When the script holding the lock started (monotonic µs since
    /// `created`, plus one; 0 = no script).
    script_since: AtomicU64,
    /// Figures as of the last time the lock was free to read them.
    last_stats: Mutex<PartitionStats>,
    /// The cache's used-bytes total, shared by its partitions.
    cache_used: Arc<AtomicU64>,
    /// The cache's watched and blocked-on keys.
    events: Arc<KeyEvents>,
    /// The cache's hub and keyspace-notification flags.
    notifier: Arc<Notifier>,
    /// The cache's cluster mode: which keys one command may combine.
    mode: ClusterMode,
    /// The cache's CAS counter (Memcached items), shared by its partitions.
    cas: Arc<AtomicU64>,
    /// Milli-ECPU per second at the last autoscaler observation.
    pub ecpu_milli_per_sec: AtomicU64,
    pub last_event: Mutex<RangeEvent>,
    /// A slot of this partition that alone exceeds a split threshold.
    pub hot_slot: Mutex<Option<u16>>,
}

impl LocalPartition {
    /// Runs `f` on the keyspace if its lock is free now (maintenance from a
    /// reactor thread never waits), carrying the change in used bytes to the
    /// cache's total. `None` if the partition is busy.
    fn try_with_ks<R>(&self, f: impl FnOnce(&mut Keyspace) -> R) -> Option<R> {
        self.with_ks_locked(self.state.try_lock()?, f)
    }

    /// As [`Self::try_with_ks`], waiting as a request does for a lock held
    /// briefly ([`Self::lock_inline`]): `None` only while slow work holds
    /// the partition.
    fn with_ks_inline<R>(&self, f: impl FnOnce(&mut Keyspace) -> R) -> Option<R> {
        self.with_ks_locked(self.lock_inline()?, f)
    }

    fn with_ks_locked<R>(
        &self,
        mut st: parking_lot::MutexGuard<'_, PartitionState>,
        f: impl FnOnce(&mut Keyspace) -> R,
    ) -> Option<R> {
        st.ks.notify.flags = self.recording_flags();
        let out = self.with_state(&mut st, f);
        let events = st.ks.notify.take();
        self.events.gone(&events);
        drop(st);
        self.notifier.publish(events);
        Some(out)
    }

    /// Runs `f` on a locked keyspace, carrying the change in used bytes.
    fn with_state<R>(&self, st: &mut PartitionState, f: impl FnOnce(&mut Keyspace) -> R) -> R {
        let before = st.ks.used_bytes() as u64;
        let out = f(&mut st.ks);
        let after = st.ks.used_bytes() as u64;
        if after > before {
            self.cache_used.fetch_add(after - before, Ordering::Relaxed);
        } else if before > after {
            self.cache_used.fetch_sub(before - after, Ordering::Relaxed);
        }
        out
    }

    /// The flags the keyspace records events with: the cache's, plus
    /// expiries and evictions while a client tracks or WATCHes keys (they
    /// invalidate and touch them, as Redis's `signalModifiedKey`).
    fn recording_flags(&self) -> u32 {
        let flags = self.notifier.recording_flags();
        if self.events.registered.load(Ordering::Relaxed) > 0 {
            flags | notify::TRACKING
        } else {
            flags
        }
    }

    /// The lock, for a reactor thread: at once if free, after at most
    /// [`INLINE_WAIT`] if bounded work holds it; `None` if slow work holds
    /// or awaits it (the caller goes to the worker pool).
    fn lock_inline(&self) -> Option<parking_lot::MutexGuard<'_, PartitionState>> {
        if let Some(st) = self.state.try_lock() {
            return Some(st);
        }
        if self.slow.load(Ordering::Acquire) > 0 {
            return None;
        }
        self.state.try_lock_for(INLINE_WAIT)
    }

    /// The lock, for a worker thread: waits, but gives up with
    /// [`NotRun::Busy`] while a script has held it longer than `busy`.
    fn lock_waiting(
        &self,
        busy: Duration,
    ) -> Result<parking_lot::MutexGuard<'_, PartitionState>, NotRun> {
        loop {
            if let Some(st) = self.state.try_lock_for(BUSY_POLL) {
                return Ok(st);
            }
            if self.script_busy(busy) {
                return Err(NotRun::Busy);
            }
        }
    }

    /// Whether a script has held the partition longer than `busy`.
    fn script_busy(&self, busy: Duration) -> bool {
        match self.script_since.load(Ordering::Acquire) {
            0 => false,
            since => {
                let now = self.created.elapsed().as_micros() as u64 + 1;
                now.saturating_sub(since) > busy.as_micros() as u64
            }
        }
    }

    /// Runs commands one after another on the locked partition, first
    /// checking it owns `slots` and that no `watched` key's version moved
    /// (`Ok(None)` if one did: nothing runs).
    /// Runs a walk over this partition's keys, its lock held.
    fn keys_op(
        &self,
        st: &mut PartitionState,
        op: wire::KeysOp,
        now: u64,
    ) -> Result<wire::KeysDone, NotRun> {
        let owns = |st: &PartitionState, slot: u16| {
            if st.retired || !st.ks.owns(slot) {
                Err(NotRun::Moved(Moved { epoch: st.epoch }))
            } else {
                Ok(())
            }
        };
        let bytes = |keys: Keys| {
            keys.into_iter()
                .map(|k| Bytes::from(k.into_vec()))
                .collect()
        };
        Ok(match op {
            wire::KeysOp::Scan {
                cursor,
                count,
                filter,
            } => {
                let cursor = ScanCursor::decode(cursor);
                owns(st, cursor.slot)?;
                let count = usize::try_from(count).unwrap_or(usize::MAX);
                let step = st.ks.scan(cursor, count, now, |k, e| keeps(&filter, k, e));
                wire::KeysDone::Scanned {
                    keys: bytes(step.keys),
                    next: step.next.map(ScanCursor::encode),
                    visited: step.visited,
                    slots: step.slots,
                }
            }
            // A retired partition's keys live on elsewhere.
            wire::KeysOp::Random if st.retired => wire::KeysDone::Random {
                key: None,
                walked: 0,
            },
            wire::KeysOp::Random => {
                let (key, walked) = st.ks.random_key(now);
                wire::KeysDone::Random {
                    key: key.map(|k| Bytes::from(k.into_vec())),
                    walked,
                }
            }
            wire::KeysOp::InSlot { slot, limit } => {
                owns(st, slot)?;
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                wire::KeysDone::InSlot {
                    count: st.ks.keys_in_slot_count(slot) as u64,
                    keys: bytes(st.ks.keys_in_slot(slot, limit)),
                }
            }
            wire::KeysOp::Flush => {
                // Its slots are elsewhere now (moved or merged away): the
                // caller flushes where they are.
                if st.retired {
                    return Err(NotRun::Moved(Moved { epoch: st.epoch }));
                }
                self.events.flushing(&st.ks);
                self.with_state(st, Keyspace::flush);
                wire::KeysDone::Flushed
            }
        })
    }

    fn run_locked(
        &self,
        st: &mut PartitionState,
        cmds: &[(&CommandSpec, &[Bytes])],
        slots: &[u16],
        watched: &[(Box<[u8]>, u64)],
        opts: &ExecOptions,
        notified: &mut Vec<KeyEvent>,
    ) -> Result<Option<Executions>, Moved> {
        if st.retired || !slots.iter().all(|s| st.ks.owns(*s)) {
            return Err(Moved { epoch: st.epoch });
        }
        if watched.iter().any(|(k, v)| self.events.version(k) != *v) {
            return Ok(None);
        }
        let events = &self.events;
        st.ks.notify.flags = self.recording_flags() | opts.notify;
        let tracking = &self.notifier.tracking;
        let notifier = &self.notifier;
        let batch = opts.batch_events.as_deref();
        let out = self.with_state(st, |ks| {
            let mut out = Executions::with_capacity(cmds.len());
            // Keys that commands inside a script change.
            let written = |key: &[u8]| {
                events.touched(std::iter::once(key));
                notifier.invalidate(std::iter::once(key), opts.client, batch);
            };
            // The room to grow is the batch's: what one command reserved,
            // the next cannot.
            let mut room = opts.room;
            let mut replied = 0usize;
            // Each command of several is timed (the caller shares out the
            // rest of the batch's time); one alone is timed by its caller.
            let timed = cmds.len() > 1;
            let mut clock = timed.then(Instant::now);
            for (spec, args) in cmds {
                if replied >= opts.reply_budget {
                    break;
                }
                let changes = ks.mutations();
                let mut ctx = Ctx::new(ks, opts.now);
                ctx.on_write = Some(&written);
                ctx.resp3 = opts.resp3;
                ctx.max_value_len = opts.max_value_len;
                ctx.script_time_limit = opts.script_time_limit;
                ctx.room = room;
                ctx.script = opts.script.clone();
                ctx.still_blocked = opts.retry;
                // First come, first served: keys owed to earlier waiters.
                let takes = cmd::takes(spec);
                if let Some(takes) = takes {
                    let keys = spec.key_positions(args).map(|i| &args[i][..]);
                    ctx.reserved = events.reserved(keys, takes, opts.ticket);
                }
                ctx.encoding = opts.encoding;
                ctx.cluster_mode = self.mode;
                ctx.cas = Some(&self.cas);
                // CLIENT NO-TOUCH: this client's reads leave last-access times.
                ctx.ks.no_touch = opts.no_touch;
                let reply = cmd::execute(spec, &mut ctx, args);
                let work = ctx.work;
                room = ctx.room;
                let took = match &mut clock {
                    Some(clock) => {
                        let ran = Instant::now();
                        let took = ran.saturating_duration_since(*clock);
                        *clock = ran;
                        took
                    }
                    None => Duration::ZERO,
                };
                if opts.reply_budget != usize::MAX {
                    replied += reply.size_hint();
                }
                // A blocking command that found nothing changed nothing a
                // client can see (XREADGROUP's consumer bookkeeping): else a
                // blocked client would wake itself forever.
                let served_nothing = spec.has(cmd::flags::BLOCKING) && ctx.waits;
                let resume = ctx.resume.take().filter(|_| served_nothing);
                let changed_only = ctx.changed_only.take();
                // A script that read something: its caller's tracking
                // remembers the script's keys (see `proxy::pubsub`).
                if let Some(control) = &ctx.script
                    && control.read.swap(false, Ordering::Relaxed)
                {
                    notifier.script_read(opts.client, batch);
                }
                ks.no_touch = false;
                // Keys of a command that changed anything (a write, a lazy
                // expiry) move on: WATCH sees it, blocked clients wake
                // (not for a blocking command that served nothing).
                // A blocked client answered leaves its lines now, before
                // the wake-up below lets the next in line retry.
                if let (Some(_), Some(ticket), false) = (takes, opts.ticket, served_nothing) {
                    events.leave(spec.key_positions(args).map(|i| &args[i][..]), ticket);
                }
                if ks.mutations() != changes && !served_nothing {
                    match &changed_only {
                        Some(keys) => {
                            events.touched(keys.iter().map(|k| &k[..]));
                            notifier.invalidate(keys.iter().map(|k| &k[..]), opts.client, batch);
                        }
                        None => {
                            events.touched(spec.key_positions(args).map(|i| &args[i][..]));
                            notifier.invalidate(
                                spec.key_positions(args).map(|i| &args[i][..]),
                                opts.client,
                                batch,
                            );
                        }
                    }
                }
                out.push(Executed {
                    reply,
                    work,
                    waits: served_nothing,
                    resume,
                    unserved: None,
                    took,
                });
            }
            // BCAST clients hear of this run's keys together.
            tracking.flush_broadcast(opts.client);
            if !ks.notify.is_empty() {
                let recorded = ks.notify.take();
                events.gone(&recorded);
                notified.extend(recorded);
            }
            out
        });
        // A node's batch: its reply carries the figures, read here under
        // the batch's own lock.
        if let Some(b) = batch {
            *b.stats.lock() = Some(self.read_stats(st));
        }
        Ok(Some(out))
    }

    /// Figures of the partition, read under its lock.
    fn read_stats(&self, st: &PartitionState) -> PartitionStats {
        let ks = &st.ks;
        PartitionStats {
            first_slot: ks.first_slot(),
            last_slot: ks.last_slot(),
            keys: if st.retired { 0 } else { ks.len() },
            volatile_keys: ks.volatile_keys(),
            used_bytes: ks.used_bytes(),
            events: ks.stats,
        }
    }
}

/// The one way the proxy reaches a partition: in this process, or on a
/// `stratus node` through [`NodeClient`] (requests and replies as
/// [`crate::wire`] messages).
#[derive(Clone)]
pub enum PartitionHandle {
    Local(Arc<LocalPartition>),
    Remote(Arc<RemotePartition>),
}

/// A partition hosted by a node: the proxy knows its id and its node.
pub struct RemotePartition {
    id: u64,
    cache: String,
    node: Arc<NodeClient>,
    created: Instant,
    /// Its figures as the node last reported them.
    last_stats: Mutex<PartitionStats>,
    /// The load its slots served, as control's autoscaler last measured it
    /// from the proxies' reports (milli-ECPU per second).
    ecpu_milli_per_sec: AtomicU64,
    /// A slot over a split threshold alone, as control's autoscaler found.
    hot_slot: Mutex<Option<u16>>,
    /// Its last split or merge, as control's placer made it
    /// ([`CachePool::note_change`]).
    last_event: Mutex<RangeEvent>,
    /// The feed number its node's first reply gave, plus one (0: none
    /// yet) ([`CachePool::feed_mark`]).
    feed_mark: AtomicU64,
    /// When each script this process sent it started (until it answers):
    /// past the busy threshold, this process answers `BUSY` for the
    /// partition as its node would.
    scripts: Mutex<Vec<Instant>>,
}

/// A script sent to a remote partition, until it answers.
struct ScriptSent<'a>(&'a RemotePartition, Instant);

impl Drop for ScriptSent<'_> {
    fn drop(&mut self) {
        let mut scripts = self.0.scripts.lock();
        if let Some(i) = scripts.iter().position(|t| *t == self.1) {
            scripts.swap_remove(i);
        }
    }
}

impl RemotePartition {
    /// Whether a script this process sent has run longer than `busy`.
    fn script_busy(&self, busy: Duration) -> bool {
        self.scripts.lock().iter().any(|t| t.elapsed() > busy)
    }

    /// Its data is gone (flushed, or its cache deleted): it holds nothing
    /// until its node says otherwise.
    fn emptied(&self) {
        let mut stats = self.last_stats.lock();
        (stats.keys, stats.volatile_keys, stats.used_bytes) = (0, 0, 0);
    }
}

/// Per-command execution settings the proxy passes down.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Reply bytes after which a batch stops before its next command (the
    /// rest is not run, and the caller runs it later): a pipeline's batch
    /// (see [`CachePool::execute_run`]). Unlimited for a transaction.
    pub reply_budget: usize,
    pub now: u64,
    pub resp3: bool,
    pub max_value_len: usize,
    /// Longest a Lua script may run.
    pub script_time_limit: Duration,
    /// A command reaching a partition that a script has held this long is
    /// answered `BUSY` (Redis's `busy-reply-threshold`).
    pub busy_threshold: Duration,
    /// Bytes the cache may still grow before its storage maximum.
    pub room: u64,
    /// Set by the pool for a batch that runs a script.
    pub script: Option<Arc<ScriptControl>>,
    /// The caller's permissions, for the commands a script calls.
    pub gate: Option<crate::cmd::script::CommandGate>,
    /// The place in line of the blocked client this attempt is for
    /// ([`KeyEvents::ticket`]); `None` when it is not blocked (it then
    /// comes after every waiter).
    pub ticket: Option<u64>,
    /// A retry of a blocked client's command ([`Ctx::still_blocked`]).
    pub retry: bool,
    /// The cache's encoding thresholds (OBJECT ENCODING).
    pub encoding: crate::cmd::params::Encoding,
    /// CLIENT NO-TOUCH ON: reads do not update last-access times.
    pub no_touch: bool,
    /// The client running the command (CLIENT TRACKING's NOLOOP); 0 = none.
    pub client: u64,
    /// For a script: counts what it calls in the cache's command stats.
    pub calls: Option<crate::cmd::script::CallRecorder>,
    /// Keyspace event classes the caller needs recorded for this batch
    /// (a proxy's, sent to a node with it: besides what the node's feed
    /// polls want, so a batch right after a CONFIG SET is not missed).
    pub notify: u32,
    /// A node's batch for a proxy: where its events go besides the feed.
    pub batch_events: Option<Arc<BatchEvents>>,
}

impl ExecOptions {
    /// Settings with the defaults of `stratus serve` (tests, maintenance).
    pub fn new(now: u64) -> ExecOptions {
        ExecOptions {
            reply_budget: usize::MAX,
            now,
            resp3: false,
            max_value_len: 512 * 1024 * 1024,
            script_time_limit: Duration::from_millis(
                crate::cmd::script::DEFAULT_SCRIPT_TIME_LIMIT_MS,
            ),
            busy_threshold: Duration::from_millis(crate::cmd::script::DEFAULT_BUSY_THRESHOLD_MS),
            room: u64::MAX,
            script: None,
            gate: None,
            ticket: None,
            retry: false,
            encoding: Default::default(),
            no_touch: false,
            client: 0,
            calls: None,
            notify: 0,
            batch_events: None,
        }
    }
}

impl PartitionHandle {
    fn local(
        id: u64,
        ks: Keyspace,
        epoch: u64,
        shared: &PoolShared,
        event: RangeEvent,
    ) -> PartitionHandle {
        PartitionHandle::Local(Arc::new(LocalPartition {
            id,
            created: Instant::now(),
            state: Mutex::new(PartitionState {
                ks,
                retired: false,
                epoch,
            }),
            slow: AtomicUsize::new(0),
            script_since: AtomicU64::new(0),
            last_stats: Mutex::new(PartitionStats::default()),
            cache_used: shared.used_bytes.clone(),
            events: shared.events.clone(),
            notifier: shared.notifier.clone(),
            mode: shared.mode,
            cas: shared.cas.clone(),
            ecpu_milli_per_sec: AtomicU64::new(0),
            last_event: Mutex::new(event),
            hot_slot: Mutex::new(None),
        }))
    }

    /// The partition itself when it is in this process.
    fn in_process(&self) -> Option<&Arc<LocalPartition>> {
        match self {
            PartitionHandle::Local(p) => Some(p),
            PartitionHandle::Remote(_) => None,
        }
    }

    pub fn id(&self) -> u64 {
        match self {
            PartitionHandle::Local(p) => p.id,
            PartitionHandle::Remote(r) => r.id,
        }
    }

    /// The node hosting a remote partition.
    pub fn node(&self) -> Option<std::net::SocketAddr> {
        match self {
            PartitionHandle::Local(_) => None,
            PartitionHandle::Remote(r) => Some(r.node.addr()),
        }
    }

    /// The partition's figures: read now if its lock is free or held by a
    /// bounded command (waited for as an inline command waits: DBSIZE after
    /// a SET must count it), else, while slow work holds it, as they were
    /// the last time they were read (a reader never waits for slow work).
    /// A remote partition's are as its node last reported them.
    pub fn stats(&self) -> PartitionStats {
        let p = match self {
            PartitionHandle::Local(p) => p,
            PartitionHandle::Remote(r) => return *r.last_stats.lock(),
        };
        match p.lock_inline() {
            Some(st) => {
                let stats = p.read_stats(&st);
                drop(st);
                *p.last_stats.lock() = stats;
                stats
            }
            None => *p.last_stats.lock(),
        }
    }

    /// Time since the partition was created (a remote one: since this
    /// proxy first routed to it).
    pub fn age(&self) -> std::time::Duration {
        match self {
            PartitionHandle::Local(p) => p.created.elapsed(),
            PartitionHandle::Remote(r) => r.created.elapsed(),
        }
    }

    pub fn set_ecpu_per_sec(&self, ecpu: f64) {
        let milli = match self {
            PartitionHandle::Local(p) => &p.ecpu_milli_per_sec,
            PartitionHandle::Remote(r) => &r.ecpu_milli_per_sec,
        };
        milli.store((ecpu * 1000.0) as u64, Ordering::Relaxed);
    }

    /// The partition's figures for the partition view.
    pub fn view(&self) -> PartitionView {
        let (milli, age, last_event, hot_slot) = match self {
            PartitionHandle::Local(p) => (
                &p.ecpu_milli_per_sec,
                p.created.elapsed(),
                p.last_event.lock().clone(),
                *p.hot_slot.lock(),
            ),
            PartitionHandle::Remote(r) => (
                &r.ecpu_milli_per_sec,
                r.created.elapsed(),
                r.last_event.lock().clone(),
                *r.hot_slot.lock(),
            ),
        };
        PartitionView {
            id: self.id(),
            stats: self.stats(),
            ecpu_per_sec: milli.load(Ordering::Relaxed) as f64 / 1000.0,
            age,
            last_event,
            hot_slot,
        }
    }

    /// The partition's bytes and, if they are over `split_bytes` (a split
    /// point is needed), its bytes per slot, in slot order (else empty: a
    /// walk of 16,384 slots' tables each second is a cache miss per slot,
    /// on the reactor); `None` while slow work holds the partition, or when
    /// its node decides.
    pub fn slot_bytes(&self, split_bytes: u64) -> Option<(u64, Vec<u64>)> {
        let st = self.in_process()?.state.try_lock()?;
        let bytes = st.ks.used_bytes() as u64;
        let per_slot = if bytes > split_bytes {
            st.ks.slot_bytes().iter().map(|b| *b as u64).collect()
        } else {
            Vec::new()
        };
        Some((bytes, per_slot))
    }

    /// One bounded step of the active expiry cycle; returns keys deleted
    /// (0 while the partition is busy: the next round tries again; a
    /// remote partition's node runs its own).
    pub fn active_expire(&self, now: u64, budget: usize) -> usize {
        self.in_process()
            .and_then(|p| p.try_with_ks(|ks| ks.active_expire(now, budget)))
            .unwrap_or(0)
    }

    /// Evicts one key as `policy` chooses (see [`Keyspace::evict_one`]);
    /// `None` if none can be, slow work holds the partition, or it is
    /// remote. (A write needing room waits for a lock held briefly, as
    /// its own command would: else a maintenance round holding it at that
    /// instant would make the write fail with OOM.)
    pub fn evict_one(&self, now: u64, policy: Eviction) -> Option<usize> {
        self.in_process()?
            .with_ks_inline(|ks| ks.evict_one(now, policy))
            .flatten()
    }
}

/// Keys one eviction request to a node takes at most.
pub const EVICT_BATCH: u32 = 16;

/// A partition as the control API shows it.
#[derive(Debug, Clone)]
pub struct PartitionView {
    pub id: u64,
    pub stats: PartitionStats,
    pub ecpu_per_sec: f64,
    pub age: std::time::Duration,
    pub last_event: RangeEvent,
    pub hot_slot: Option<u16>,
}

impl PartitionView {
    /// A partition known only by its id so far (placed by control, not yet
    /// read from its node).
    pub fn placed(id: u64) -> PartitionView {
        PartitionView {
            id,
            stats: PartitionStats::default(),
            ecpu_per_sec: 0.0,
            age: std::time::Duration::ZERO,
            last_event: RangeEvent {
                kind: "created",
                reason: "placed",
                at: SystemTime::now(),
            },
            hot_slot: None,
        }
    }
}

/// Slot range → partition, with the epoch of the last change.
struct RoutingTable {
    epoch: u64,
    /// Sorted by first slot; contiguous; covering 0..=16383.
    ranges: Vec<(u16, u16, PartitionHandle)>,
}

impl RoutingTable {
    /// The range holding `slot`: its first and last slot and its partition.
    fn entry(&self, slot: u16) -> &(u16, u16, PartitionHandle) {
        let at = self.ranges.partition_point(|(_, last, _)| *last < slot);
        &self.ranges[at.min(self.ranges.len() - 1)]
    }
}

/// Keys of one cache that connections WATCH or block on.
pub struct KeyEvents {
    /// Keys with any interest: the request path skips all work when zero.
    registered: AtomicUsize,
    /// The next blocked client's place in line.
    tickets: AtomicU64,
    /// The last key version handed out.
    versions: AtomicU64,
    keys: Mutex<hashbrown::HashMap<Box<[u8]>, Interest>>,
}

impl Default for KeyEvents {
    fn default() -> KeyEvents {
        KeyEvents {
            registered: AtomicUsize::new(0),
            tickets: AtomicU64::new(0),
            // A random start, far from wrapping: a version handed out by
            // one process is (but for a 2^-63 chance) never handed out by
            // another, so versions read on one node never match another's.
            versions: AtomicU64::new(rand::random::<u64>() >> 2),
            keys: Mutex::default(),
        }
    }
}

#[derive(Default)]
struct Interest {
    /// Connections WATCHing the key.
    watchers: usize,
    /// Moves on every successful write of the key.
    version: u64,
    /// Connections blocked on the key, in the order they blocked; each is
    /// woken with a permit, so a write between a blocked client's attempt
    /// and its wait is not lost.
    waiters: Vec<Waiter>,
}

/// A connection blocked on a key.
struct Waiter {
    notify: Arc<tokio::sync::Notify>,
    /// Its place in line ([`KeyEvents::ticket`]).
    ticket: u64,
    /// What it takes from the key (`None`: nothing another waiter wants).
    takes: Option<cmd::Takes>,
    /// Its first attempt found nothing: it is blocked, as Redis counts
    /// blocked clients (in line before that, from its subscription).
    blocked: bool,
}

impl KeyEvents {
    /// The next key version (unique in this pool; 0 is never one: it is
    /// what an unwatched key reads).
    fn next_version(&self) -> u64 {
        // From a random start (see `Default`): versions of two nodes never
        // meet, so an EXEC whose watched key moved to another node aborts.
        self.versions.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn with_key<R>(&self, key: &[u8], f: impl FnOnce(&mut Interest) -> R) -> R {
        let mut keys = self.keys.lock();
        if !keys.contains_key(key) {
            // A fresh version, never one handed out before: a watcher
            // whose registration was lost (its proxy's connection to the
            // node ended) can never match it again, so its EXEC aborts.
            let version = self.next_version();
            keys.insert(
                key.into(),
                Interest {
                    version,
                    ..Interest::default()
                },
            );
            self.registered.fetch_add(1, Ordering::Relaxed);
        }
        let i = keys.get_mut(key).expect("just inserted");
        let out = f(i);
        if i.watchers == 0 && i.waiters.is_empty() {
            keys.remove(key);
            self.registered.fetch_sub(1, Ordering::Relaxed);
        }
        out
    }

    /// WATCH: returns the key's current version.
    pub fn watch(&self, key: &[u8]) -> u64 {
        self.with_key(key, |i| {
            i.watchers += 1;
            i.version
        })
    }

    pub fn unwatch(&self, key: &[u8]) {
        self.with_key(key, |i| i.watchers = i.watchers.saturating_sub(1));
    }

    /// A place in line for a client about to block: later than every
    /// ticket handed out before.
    pub fn ticket(&self) -> u64 {
        self.tickets.fetch_add(1, Ordering::Relaxed)
    }

    /// A blocked connection waits for writes of `key` on `notify`, in line
    /// with `ticket` for what it `takes`.
    pub fn subscribe(
        &self,
        key: &[u8],
        notify: &Arc<tokio::sync::Notify>,
        ticket: u64,
        takes: Option<cmd::Takes>,
    ) {
        self.with_key(key, |i| {
            i.waiters.push(Waiter {
                notify: notify.clone(),
                ticket,
                takes,
                blocked: false,
            });
        });
    }

    /// The connection stops waiting for `key` (if it still was: a client
    /// served has left already). The rest of the line wakes: it may have
    /// been passed over for an element this one was owed.
    pub fn unsubscribe(&self, key: &[u8], notify: &Arc<tokio::sync::Notify>) {
        self.with_key(key, |i| {
            let before = i.waiters.len();
            i.waiters.retain(|w| !Arc::ptr_eq(&w.notify, notify));
            if i.waiters.len() != before {
                i.waiters.iter().for_each(|w| w.notify.notify_one());
            }
        });
    }

    /// Of `keys`, those on which a waiter that takes the same kind of thing
    /// holds a ticket earlier than `ticket` (any waiter, for `None`).
    fn reserved<'a>(
        &self,
        keys: impl Iterator<Item = &'a [u8]>,
        takes: cmd::Takes,
        ticket: Option<u64>,
    ) -> Vec<Box<[u8]>> {
        if self.registered.load(Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        let ticket = ticket.unwrap_or(u64::MAX);
        let map = self.keys.lock();
        keys.filter(|k| {
            map.get(*k).is_some_and(|i| {
                i.waiters
                    .iter()
                    .any(|w| w.takes == Some(takes) && w.ticket < ticket)
            })
        })
        .map(Box::from)
        .collect()
    }

    /// The blocked client holding `ticket` was answered: it leaves the
    /// lines of `keys`, and the rest of each line wakes.
    fn leave<'a>(&self, keys: impl Iterator<Item = &'a [u8]>, ticket: u64) {
        if self.registered.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut map = self.keys.lock();
        for k in keys {
            if let Some(i) = map.get_mut(k) {
                let before = i.waiters.len();
                i.waiters.retain(|w| w.ticket != ticket);
                if i.waiters.len() != before {
                    i.waiters.iter().for_each(|w| w.notify.notify_one());
                }
                if i.watchers == 0 && i.waiters.is_empty() {
                    map.remove(k);
                    self.registered.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// The connection waiting on `notify` made its first attempt and found
    /// nothing: it now counts as blocked on `keys`.
    pub fn blocked<'a>(
        &self,
        keys: impl Iterator<Item = &'a [u8]>,
        notify: &Arc<tokio::sync::Notify>,
    ) {
        let mut map = self.keys.lock();
        for k in keys {
            if let Some(i) = map.get_mut(k) {
                i.waiters
                    .iter_mut()
                    .filter(|w| Arc::ptr_eq(&w.notify, notify))
                    .for_each(|w| w.blocked = true);
            }
        }
    }

    /// How many connections are blocked on `key` (past their first attempt).
    pub fn waiting(&self, key: &[u8]) -> usize {
        self.keys
            .lock()
            .get(key)
            .map_or(0, |i| i.waiters.iter().filter(|w| w.blocked).count())
    }

    /// The version of a watched key (0 if nobody watches it).
    pub fn version(&self, key: &[u8]) -> u64 {
        self.keys.lock().get(key).map_or(0, |i| i.version)
    }

    /// Marks keys as written: versions move on, blocked connections wake.
    fn touched<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) {
        if self.registered.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut map = self.keys.lock();
        for k in keys {
            if let Some(i) = map.get_mut(k) {
                i.version = self.next_version();
                i.waiters.iter().for_each(|w| w.notify.notify_one());
            }
        }
    }

    /// Keys that expired or were evicted (recorded `events`) move on, as
    /// Redis signals them modified; called under the partition lock.
    fn gone(&self, events: &[KeyEvent]) {
        self.touched(
            events
                .iter()
                .filter(|e| e.class & (notify::EXPIRED | notify::EVICTED) != 0)
                .map(|e| &e.key[..]),
        );
    }

    /// The keys `ks` holds are about to be flushed (FLUSHDB): those of them
    /// watched or blocked on move on; keys it does not hold stay as they
    /// are (Redis's `touchAllWatchedKeysInDb`).
    fn flushing(&self, ks: &Keyspace) {
        if self.registered.load(Ordering::Relaxed) == 0 {
            return;
        }
        for (k, i) in self.keys.lock().iter_mut() {
            if ks.holds(k) {
                i.version = self.next_version();
                i.waiters.iter().for_each(|w| w.notify.notify_one());
            }
        }
    }

    /// Every key of slots `first..=last` changed (they left this node in a
    /// move): their watchers' versions move on and their blocked clients
    /// wake (and get in line where the slots went) — keys that do not
    /// exist yet too.
    fn touched_slots(&self, first: u16, last: u16) {
        if self.registered.load(Ordering::Relaxed) == 0 {
            return;
        }
        for (k, i) in self.keys.lock().iter_mut() {
            if (first..=last).contains(&key_slot(k)) {
                i.version = self.next_version();
                i.waiters.iter().for_each(|w| w.notify.notify_one());
            }
        }
    }

    /// Every key changed (a deleted cache).
    fn touched_all(&self) {
        if self.registered.load(Ordering::Relaxed) == 0 {
            return;
        }
        for i in self.keys.lock().values_mut() {
            i.version = self.next_version();
            i.waiters.iter().for_each(|w| w.notify.notify_one());
        }
    }
}

/// How many times a command is re-routed after [`Moved`] before giving up
/// (`TRYAGAIN`, as Redis Cluster answers during a resharding).
const MAX_REROUTES: usize = 40;

/// A remote partition refused slots and no newer table says where they
/// are (a move between nodes is carrying them): the pause before the
/// next try. With [`MAX_REROUTES`], a command waits up to 200 ms for a
/// slot in transit.
const IN_TRANSIT_PAUSE: Duration = Duration::from_millis(5);

/// The reply of a batch that ran nothing.
const NOTHING: Executed = Executed::new(Reply::Nil, 0);

/// Changes noted for partitions a table does not show yet, at most.
const MAX_NOTED: usize = 1024;

/// How long a client's PUBLISH waits for its channel's node to take the
/// message for the other proxies ([`CachePool::spread`]).
const SPREAD_WAIT: Duration = Duration::from_secs(1);

/// How long a proxy waits for each node to take its new feed classes
/// ([`CachePool::want_feed`]): past it, its reader's next poll tells it (a
/// node that is down costs a SUBSCRIBE this much, not more).
const FEED_ANNOUNCE_WAIT: Duration = Duration::from_millis(500);

/// Counts a worker-pool job on its partition until the job ends.
struct SlowGuard(Arc<LocalPartition>);

impl Drop for SlowGuard {
    fn drop(&mut self) {
        self.0.slow.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Split and merge counters of one cache (published as metrics).
#[derive(Debug, Default)]
pub struct ScalingCounters {
    pub splits_size: AtomicU64,
    pub splits_load: AtomicU64,
    pub splits_min_ecpu: AtomicU64,
    pub merges: AtomicU64,
}

/// What the partitions of one cache share with the pool.
struct PoolShared {
    used_bytes: Arc<AtomicU64>,
    /// The last CAS value given to a Memcached item of the cache: unique
    /// and increasing per cache, whichever partition holds the item, across
    /// splits and merges.
    cas: Arc<AtomicU64>,
    events: Arc<KeyEvents>,
    notifier: Arc<Notifier>,
    mode: ClusterMode,
}

/// A cache's message hub and its `notify-keyspace-events` flags: keyspace
/// events recorded in partitions are published here after each command
/// (outside the partition lock).
pub struct Notifier {
    flags: AtomicU32,
    hub: Arc<dyn MessageHub>,
    /// Bytes keyspace events delivered to subscribers and not yet billed:
    /// the next request of the cache to finish pays them as transfer
    /// ([`CachePool::take_fanout`]), as PUBLISH pays its fan-out.
    fanout: AtomicU64,
    /// Client-side caching: invalidations on writes, expiries, evictions.
    tracking: Tracking,
    /// MONITOR clients (the commands scripts call reach them from here).
    monitors: Arc<Monitors>,
    /// A cache hosted on a node: its events go to the proxies' feed
    /// instead of a hub ([`feed`]).
    feed: std::sync::OnceLock<Arc<Feed>>,
}

impl Notifier {
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    /// The flags partitions record with: the cache's, plus expiries and
    /// evictions while some client tracks keys (they invalidate); on a
    /// node, what the proxies poll for.
    fn recording_flags(&self) -> u32 {
        if let Some(feed) = self.feed.get() {
            return feed.wanted();
        }
        let flags = self.flags();
        if self.tracking.active() {
            flags | notify::TRACKING
        } else {
            flags
        }
    }

    /// Publishes a message on the hub (a script's PUBLISH), metering the
    /// bytes delivered as keyspace events' are.
    fn publish_message(&self, channel: &[u8], message: &[u8], shard: bool) -> Delivery {
        self.publish_message_for(channel, message, shard, None)
    }

    /// [`Self::publish_message`] for a batch of `batch` (on a node: the
    /// message goes to the feed and to the batch's reply).
    fn publish_message_for(
        &self,
        channel: &[u8],
        message: &[u8],
        shard: bool,
        batch: Option<&BatchEvents>,
    ) -> Delivery {
        if let Some(feed) = self.feed.get() {
            // Delivered by the proxies: how many receive it is theirs to
            // know.
            let item = FeedItem::Message {
                channel: Bytes::copy_from_slice(channel),
                message: Bytes::copy_from_slice(message),
                shard,
            };
            let receivers = match batch {
                Some(b) => {
                    b.items.lock().push(item.clone());
                    feed.push(b.origin, [item]);
                    // As many as its proxy's subscriptions take it (a
                    // client's PUBLISH there counts that proxy's too).
                    b.listeners
                        .as_ref()
                        .map_or(0, |l| l.receivers(channel, shard))
                }
                None => {
                    feed.push(0, [item]);
                    0
                }
            };
            return Delivery {
                receivers,
                ..Delivery::default()
            };
        }
        let done = self.hub.publish(channel, message, shard);
        if done.bytes > 0 {
            self.fanout.fetch_add(done.bytes, Ordering::Relaxed);
        }
        done
    }

    /// Client-side caching: a script of client `client` read something,
    /// so its declared keys are remembered for the client (on a node: by
    /// its proxy, told in the batch's reply).
    fn script_read(&self, client: u64, batch: Option<&BatchEvents>) {
        match (self.feed.get(), batch) {
            (None, _) if self.tracking.active() => self.tracking.note_script_read(client),
            (Some(_), Some(b)) if b.notify & notify::TRACKING != 0 => {
                b.items.lock().push(FeedItem::ScriptRead { client });
            }
            _ => {}
        }
    }

    /// Client-side caching: `keys` changed by client `client` (`batch`: a
    /// node's batch for a proxy). Here, the tracking clients hear of it; on
    /// a node, the proxies do — in the batch's reply and the feed — while
    /// some track keys.
    fn invalidate<'a>(
        &self,
        keys: impl Iterator<Item = &'a [u8]>,
        client: u64,
        batch: Option<&BatchEvents>,
    ) {
        let Some(feed) = self.feed.get() else {
            self.tracking.invalidate(keys, client);
            return;
        };
        let asked = feed.wanted() | batch.map_or(0, |b| b.notify);
        if asked & notify::TRACKING == 0 {
            return;
        }
        let keys: Vec<Bytes> = keys.map(Bytes::copy_from_slice).collect();
        if keys.is_empty() {
            return;
        }
        let item = FeedItem::Invalidate { keys, client };
        match batch {
            Some(b) => {
                b.items.lock().push(item.clone());
                feed.push(b.origin, [item]);
            }
            None => feed.push(0, [item]),
        }
    }

    /// Publishes keyspace events on `__keyspace@0__:<key>` (the event as
    /// message) and `__keyevent@0__:<event>` (the key), as Redis's
    /// `notifyKeyspaceEvent`.
    fn publish(&self, events: Vec<KeyEvent>) {
        self.publish_for(events, None);
    }

    /// [`Self::publish`] for a batch of `batch` (on a node: the events go
    /// to the feed and to the batch's reply).
    fn publish_for(&self, events: Vec<KeyEvent>, batch: Option<&BatchEvents>) {
        if events.is_empty() {
            return;
        }
        if let Some(feed) = self.feed.get() {
            let items: Vec<FeedItem> = events.into_iter().map(FeedItem::Key).collect();
            match batch {
                Some(b) => {
                    b.items.lock().extend(items.iter().cloned());
                    feed.push(b.origin, items);
                }
                None => feed.push(0, items),
            }
            return;
        }
        let flags = self.flags();
        let mut channel = Vec::new();
        let mut delivered = 0;
        for e in events {
            if e.class & (notify::EXPIRED | notify::EVICTED) != 0 {
                self.tracking.invalidate(std::iter::once(&e.key[..]), 0);
            }
            if flags & e.class == 0 {
                continue;
            }
            if flags & notify::KEYSPACE != 0 {
                channel.clear();
                channel.extend_from_slice(b"__keyspace@0__:");
                channel.extend_from_slice(&e.key);
                delivered += self.hub.publish(&channel, e.event.as_bytes(), false).bytes;
            }
            if flags & notify::KEYEVENT != 0 {
                channel.clear();
                channel.extend_from_slice(b"__keyevent@0__:");
                channel.extend_from_slice(e.event.as_bytes());
                delivered += self.hub.publish(&channel, &e.key, false).bytes;
            }
        }
        if delivered > 0 {
            self.fanout.fetch_add(delivered, Ordering::Relaxed);
        }
        self.tracking.flush_broadcast(0);
    }
}

/// A node's batch run for a proxy: its origin (the proxy's, so the proxy
/// skips these in the feed) and what it delivers, for the batch's reply.
#[derive(Debug, Default)]
pub struct BatchEvents {
    pub origin: u64,
    /// The event classes the proxy asked the batch for.
    pub notify: u32,
    /// The partition's figures right after the batch.
    pub stats: Mutex<Option<PartitionStats>>,
    pub items: Mutex<Vec<FeedItem>>,
    /// The proxy's subscriptions, which a script's PUBLISH counts its
    /// receivers against (`None`: it has none).
    pub listeners: Option<Arc<crate::pubsub::Listeners>>,
    /// What its scripts called, summed (see [`FeedItem::Called`]): bounded
    /// by the commands, subcommands and latency ranges, not by the calls.
    calls: Mutex<hashbrown::HashMap<CallKey, CallSum>>,
    /// Its scripts' commands shown to MONITOR so far.
    monitored: AtomicUsize,
}

/// A command, its subcommand and a latency range (`64 - (µs-1).leading_zeros()`).
type CallKey = (&'static str, Option<String>, u32);

/// Calls, failed calls and their time in all (µs).
type CallSum = (u64, u64, u64);

impl BatchEvents {
    /// A batch from proxy `origin`, which asked for the `notify` classes
    /// and has the `listeners` subscriptions.
    pub fn new(
        origin: u64,
        notify: u32,
        listeners: Option<Arc<crate::pubsub::Listeners>>,
    ) -> BatchEvents {
        BatchEvents {
            origin,
            notify,
            listeners,
            ..BatchEvents::default()
        }
    }

    /// A command one of its scripts called.
    fn called(&self, call: cmd::script::InnerCall<'_>) {
        let mean = call.micros / call.calls.max(1);
        let range = 64 - mean.saturating_sub(1).leading_zeros();
        let key = (call.spec.name, call.sub.map(str::to_string), range);
        let mut calls = self.calls.lock();
        let sum = calls.entry(key).or_default();
        sum.0 += call.calls;
        sum.1 += call.failed;
        sum.2 += call.micros;
    }

    /// A command one of its scripts called, for MONITOR (the first
    /// [`wire::MAX_MONITORED`]).
    fn monitored(&self, argv: &[Bytes]) {
        if self.monitored.fetch_add(1, Ordering::Relaxed) < wire::MAX_MONITORED {
            let argv = argv.to_vec();
            self.items.lock().push(FeedItem::Monitored { argv });
        }
    }

    /// Everything for the batch's reply: its items, then its scripts'
    /// calls.
    pub fn take(&self) -> Vec<FeedItem> {
        let mut items = std::mem::take(&mut *self.items.lock());
        let calls = std::mem::take(&mut *self.calls.lock());
        items.extend(
            calls.into_iter().map(
                |((name, sub, _), (calls, failed, micros))| FeedItem::Called {
                    name: name.to_string(),
                    sub,
                    calls,
                    failed,
                    micros,
                },
            ),
        );
        items
    }
}

/// The partitions of one cache.
pub struct CachePool {
    routing: RwLock<RoutingTable>,
    shared: PoolShared,
    /// Where the next eviction starts looking (spreads evictions).
    evict_cursor: AtomicUsize,
    /// Milli-ECPU per slot since the autoscaler last looked: the load signal.
    slot_load: Box<[AtomicU64]>,
    next_id: AtomicU64,
    pub scaling: ScalingCounters,
    /// This cache's admission to the worker pool.
    slow_permits: Arc<tokio::sync::Semaphore>,
    /// Scripts running now, for SCRIPT KILL.
    scripts: Arc<Mutex<Vec<Arc<ScriptControl>>>>,
    /// For a pool whose partitions a node hosts: the cache's name there
    /// and the node (routes are refreshed from it).
    origin: Option<Origin>,
    /// The feed classes this proxy last told the nodes it needs
    /// ([`Self::want_feed`]).
    feed_announced: AtomicU32,
    /// The version of this proxy's subscriptions each node was last sent
    /// (a script's PUBLISH there counts them).
    listeners_sent: Mutex<std::collections::HashMap<std::net::SocketAddr, u64>>,
    /// Changes noted for partitions not yet in the table (control: a split
    /// whose new partition its routes do not show yet).
    noted: Mutex<std::collections::HashMap<u64, RangeEvent>>,
    /// A node's partitions imported and not yet in a table
    /// ([`transfer`]).
    staged: Mutex<Vec<PartitionHandle>>,
    /// A node's slots given up in moves, until a table says where they
    /// are ([`transfer`]).
    held: Mutex<Vec<transfer::Held>>,

    /// Where the partitions this node does not have are, by id, as the
    /// last table said ([`transfer`]).
    homes: Mutex<std::collections::HashMap<u64, String>>,
}

/// Where a remote pool's partitions are: the cache's name on the nodes,
/// the node first asked for its routes, and every node's connection.
struct Origin {
    cache: String,
    entry: Arc<NodeClient>,
    nodes: Arc<Nodes>,
}

pub use crate::wire::KillOutcome;

/// `FUNCTION STATS` found an `EVAL` script holding a partition past the
/// busy threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyWithEval;

/// Removes a script's controls from the running list when its job ends.
struct RunningScript {
    list: Arc<Mutex<Vec<Arc<ScriptControl>>>>,
    control: Arc<ScriptControl>,
}

impl Drop for RunningScript {
    fn drop(&mut self) {
        self.list.lock().retain(|c| !Arc::ptr_eq(c, &self.control));
    }
}

impl Default for CachePool {
    fn default() -> Self {
        CachePool::new(1)
    }
}

impl CachePool {
    /// A pool with `partitions` partitions of (nearly) equal slot ranges.
    pub fn new(partitions: usize) -> CachePool {
        CachePool::with_mode(partitions, ClusterMode::Enabled)
    }

    /// A pool for a cache in `mode`: with cluster mode disabled, one
    /// partition that owns every slot and never splits, whatever
    /// `partitions` asks.
    pub fn with_mode(partitions: usize, mode: ClusterMode) -> CachePool {
        let n = match mode {
            ClusterMode::Enabled => partitions.clamp(1, usize::from(SLOTS)),
            ClusterMode::Disabled => 1,
        };
        let shared = PoolShared {
            mode,
            used_bytes: Arc::new(AtomicU64::new(0)),
            cas: Arc::new(AtomicU64::new(0)),
            events: Arc::new(KeyEvents::default()),
            notifier: Arc::new(Notifier {
                flags: AtomicU32::new(0),
                hub: Arc::new(LocalHub::default()),
                fanout: AtomicU64::new(0),
                tracking: Tracking::default(),
                monitors: Arc::new(Monitors::default()),
                feed: std::sync::OnceLock::new(),
            }),
        };
        let ranges = (0..n)
            .map(|i| {
                let first = (i * usize::from(SLOTS) / n) as u16;
                let last = ((i + 1) * usize::from(SLOTS) / n - 1) as u16;
                let event = RangeEvent {
                    kind: "created",
                    reason: "initial",
                    at: SystemTime::now(),
                };
                let h = PartitionHandle::local(
                    i as u64 + 1,
                    Keyspace::new(first, last),
                    1,
                    &shared,
                    event,
                );
                (first, last, h)
            })
            .collect();
        CachePool {
            routing: RwLock::new(RoutingTable { epoch: 1, ranges }),
            shared,
            evict_cursor: AtomicUsize::new(0),
            slot_load: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            next_id: AtomicU64::new(n as u64 + 1),
            scaling: ScalingCounters::default(),
            slow_permits: Arc::new(tokio::sync::Semaphore::new(workers::per_cache_permits())),
            scripts: Arc::default(),
            origin: None,
            feed_announced: AtomicU32::new(0),
            listeners_sent: Mutex::default(),
            noted: Mutex::default(),
            staged: Mutex::default(),
            held: Mutex::default(),
            homes: Mutex::default(),
        }
    }

    /// A proxy's pool for cache `cache` whose partitions are on nodes,
    /// first asking `entry` where (connections from `nodes`). Its routes
    /// are loaded on first use: until then one placeholder partition (id
    /// 0, epoch 0) on `entry` owns every slot, and the node's `Moved`
    /// answer to it loads the real table ([`Self::load_routes`]).
    pub fn remote(cache: &str, entry: Arc<NodeClient>, nodes: Arc<Nodes>) -> CachePool {
        let mut pool = CachePool::new(1);
        let placeholder = PartitionHandle::Remote(Arc::new(RemotePartition {
            id: 0,
            cache: cache.to_string(),
            node: entry.clone(),
            created: Instant::now(),
            last_stats: Mutex::new(PartitionStats {
                last_slot: SLOTS - 1,
                ..PartitionStats::default()
            }),
            ecpu_milli_per_sec: AtomicU64::new(0),
            hot_slot: Mutex::new(None),
            last_event: Mutex::new(RangeEvent {
                kind: "created",
                reason: "initial",
                at: SystemTime::now(),
            }),
            scripts: Mutex::new(Vec::new()),
            feed_mark: AtomicU64::new(0),
        }));
        *pool.routing.get_mut() = RoutingTable {
            epoch: 0,
            ranges: vec![(0, SLOTS - 1, placeholder)],
        };
        pool.origin = Some(Origin {
            cache: cache.to_string(),
            entry,
            nodes,
        });
        pool
    }

    /// The node first asked for this pool's routes (a remote pool's).
    pub fn node(&self) -> Option<&Arc<NodeClient>> {
        self.origin.as_ref().map(|o| &o.entry)
    }

    /// Loads the routing table from the node first asked.
    pub async fn load_routes(&self) -> Result<(), String> {
        match &self.origin {
            Some(o) => self.load_routes_from(&o.entry).await,
            None => Ok(()),
        }
    }

    /// Loads the routing table from the first node that answers: the one
    /// first asked, then every node of the table, then `also` (a node
    /// that died took its copy with it; control gave its slots to others,
    /// which have the new table).
    pub async fn load_routes_any(&self, also: &[Arc<NodeClient>]) -> Result<(), String> {
        let Some(origin) = &self.origin else {
            return Ok(());
        };
        let mut nodes = vec![origin.entry.clone()];
        nodes.extend(self.nodes());
        nodes.extend(also.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        let mut last = String::from("no node to ask");
        for node in nodes {
            if !seen.insert(node.addr()) {
                continue;
            }
            match self.load_routes_from(&node).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Loads the routing table from `node` (done when a partition there
    /// answers `Moved`: it knows where its slots went); a table older than
    /// this pool's is ignored, and partitions already known on the same
    /// node keep their handles.
    pub async fn load_routes_from(&self, node: &Arc<NodeClient>) -> Result<(), String> {
        let Some(origin) = &self.origin else {
            return Ok(());
        };
        let request = wire::Request::Routes {
            cache: origin.cache.clone(),
        };
        let (epoch, ranges) = match node.call(request).await.map_err(|e| e.to_string())? {
            wire::Response::Routes { epoch, ranges } => (epoch, ranges),
            wire::Response::Failed(why) => return Err(why),
            other => return Err(format!("unexpected answer to Routes: {other:?}")),
        };
        let covered = ranges.first().is_some_and(|r| r.first == 0)
            && ranges.last().is_some_and(|r| r.last == SLOTS - 1)
            && ranges.windows(2).all(|w| w[0].last + 1 == w[1].first);
        if !covered {
            return Err(format!("node {} sent routes with gaps", node.addr()));
        }
        let mut homes = Vec::with_capacity(ranges.len());
        for r in &ranges {
            homes.push(if r.node.is_empty() {
                node.clone()
            } else {
                let addr = r
                    .node
                    .parse()
                    .map_err(|_| format!("node {} sent a bad address {}", node.addr(), r.node))?;
                origin.nodes.client(addr)
            });
        }
        let mut table = self.routing.write();
        if epoch < table.epoch {
            // An older table than ours (answers overtook each other).
            return Ok(());
        }
        let known: Vec<PartitionHandle> = table.ranges.iter().map(|(_, _, h)| h.clone()).collect();
        table.ranges = ranges
            .iter()
            .zip(homes)
            .map(|(r, home)| {
                let same = |h: &&PartitionHandle| match h {
                    PartitionHandle::Remote(p) => {
                        p.id == r.partition && p.node.addr() == home.addr()
                    }
                    PartitionHandle::Local(_) => false,
                };
                let handle = known.iter().find(same).cloned().unwrap_or_else(|| {
                    // Moved from another node: still the same partition.
                    let before = known.iter().find_map(|h| match h {
                        PartitionHandle::Remote(p) if p.id == r.partition => Some(p),
                        _ => None,
                    });
                    let noted = self.noted.lock().remove(&r.partition);
                    let last_event = noted.unwrap_or_else(|| {
                        before.map_or_else(
                            || RangeEvent {
                                kind: "created",
                                reason: "initial",
                                at: SystemTime::now(),
                            },
                            |p| p.last_event.lock().clone(),
                        )
                    });
                    PartitionHandle::Remote(Arc::new(RemotePartition {
                        id: r.partition,
                        cache: origin.cache.clone(),
                        node: home,
                        created: before.map_or_else(Instant::now, |p| p.created),
                        last_event: Mutex::new(last_event),
                        last_stats: Mutex::new(PartitionStats {
                            first_slot: r.first,
                            last_slot: r.last,
                            ..PartitionStats::default()
                        }),
                        ecpu_milli_per_sec: AtomicU64::new(0),
                        hot_slot: Mutex::new(None),
                        scripts: Mutex::new(Vec::new()),
                        feed_mark: AtomicU64::new(0),
                    }))
                });
                (r.first, r.last, handle)
            })
            .collect();
        table.epoch = epoch;
        Ok(())
    }

    /// Reads every remote partition's figures from its node (what
    /// [`PartitionHandle::stats`] then reports for it).
    /// Returns false when the node answered that it does not host the
    /// cache (a node that restarted empty).
    pub async fn refresh_remote_stats(&self) -> bool {
        if self.origin.is_none() {
            // In-process partitions: their figures are read when asked.
            return true;
        }
        if self.epoch() == 0 {
            // Routes never loaded: the placeholder has no figures.
            let _ = self.load_routes().await;
        }
        let mut hosted = true;
        let mut moved = false;
        let mut unreachable = false;
        for part in self.partitions() {
            let PartitionHandle::Remote(r) = part else {
                continue;
            };
            let request = wire::Request::Stats {
                cache: r.cache.clone(),
                partition: r.id,
            };
            match r.node.call(request).await {
                Ok(wire::Response::Stats(s)) => *r.last_stats.lock() = s.into(),
                Ok(wire::Response::Moved { .. }) => moved = true,
                Ok(wire::Response::Failed(_)) => hosted = false,
                Ok(_) => {}
                Err(_) => unreachable = true,
            }
        }
        if moved {
            // Split or merged on the node: the next round reads the rest.
            let _ = self.load_routes().await;
        }
        if unreachable {
            // A node gone: control may have given its slots to others.
            let _ = self.load_routes_any(&[]).await;
        }
        hosted
    }

    /// Draws the cache's next Memcached CAS value (memcached's `flush_all`
    /// draws one too).
    pub fn next_cas(&self) -> u64 {
        self.shared.cas.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The cache's cluster mode ([`ClusterMode`]): whether one command may
    /// combine keys of different slots (the request path asks it).
    pub fn cluster_mode(&self) -> ClusterMode {
        self.shared.mode
    }

    /// The cache's watched and blocked-on keys (of its in-process
    /// partitions; a remote partition's are on its node).
    pub fn events(&self) -> &KeyEvents {
        &self.shared.events
    }

    /// One period of the active expiry cycle over the in-process
    /// partitions (a remote partition's node runs its own): each in rounds
    /// of [`EXPIRE_BUDGET`] keys while a quarter of a round keeps expiring,
    /// yielding between rounds.
    pub async fn expire_round(&self) {
        for part in self.partitions() {
            for _ in 0..EXPIRE_MAX_ROUNDS {
                let now = crate::partition::now_ms();
                if part.active_expire(now, EXPIRE_BUDGET) < EXPIRE_BUDGET / 4 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
    }

    /// WATCH: counts a watcher on each of `keys` (all in the partition
    /// owning `slot`) where that partition is, and returns their versions
    /// for EXEC to check.
    pub async fn watch(&self, slot: u16, keys: &[Bytes]) -> Result<Vec<u64>, NotRun> {
        let mut why = NotRun::Moved(Moved { epoch: 0 });
        for _ in 0..MAX_REROUTES {
            let r = match self.route(slot) {
                PartitionHandle::Local(_) => {
                    return Ok(keys.iter().map(|k| self.shared.events.watch(k)).collect());
                }
                PartitionHandle::Remote(r) => r,
            };
            let request = wire::Request::Watch {
                cache: r.cache.clone(),
                partition: r.id,
                keys: keys.to_vec(),
            };
            match self.call_remote(&r, request).await {
                Ok(wire::Response::Versions(v)) if v.len() == keys.len() => return Ok(v),
                Ok(other) => return Err(unexpected(&other)),
                Err(NotRun::Moved(m)) => why = NotRun::Moved(m),
                Err(not_run) => return Err(not_run),
            }
        }
        Err(why)
    }

    /// The watchers [`Self::watch`] counted on `keys` go (a remote
    /// partition's node hears of it in the background; if it never does,
    /// it forgets them when the proxy's connection to it ends).
    pub fn unwatch(&self, keys: Vec<Bytes>) {
        let Some(origin) = &self.origin else {
            keys.iter().for_each(|k| self.shared.events.unwatch(k));
            return;
        };
        // The keys may have moved since WATCH: every node of the cache
        // hears it, and forgets only watchers this connection counted.
        let mut nodes: Vec<Arc<NodeClient>> = Vec::new();
        for part in self.partitions() {
            if let PartitionHandle::Remote(r) = part
                && !nodes.iter().any(|n| n.addr() == r.node.addr())
            {
                nodes.push(r.node.clone());
            }
        }
        for node in nodes {
            let request = wire::Request::Unwatch {
                cache: origin.cache.clone(),
                keys: keys.clone(),
            };
            in_background(node, request);
        }
    }

    /// A client about to block on `keys` (all in the partition owning
    /// `slot`) gets in line on each, where that partition is; it leaves
    /// the lines when the returned [`Blocked`] is dropped.
    pub async fn block(
        &self,
        slot: u16,
        keys: &[Bytes],
        takes: Option<cmd::Takes>,
    ) -> Result<Blocked, NotRun> {
        let mut why = NotRun::Moved(Moved { epoch: 0 });
        for _ in 0..MAX_REROUTES {
            let r = match self.route(slot) {
                PartitionHandle::Local(_) => {
                    let events = self.shared.events.clone();
                    let notify = Arc::new(tokio::sync::Notify::new());
                    let ticket = events.ticket();
                    for k in keys {
                        events.subscribe(k, &notify, ticket, takes);
                    }
                    return Ok(Blocked {
                        ticket,
                        form: BlockedForm::Local {
                            events,
                            keys: keys.to_vec(),
                            notify,
                        },
                    });
                }
                PartitionHandle::Remote(r) => r,
            };
            let request = wire::Request::Block {
                cache: r.cache.clone(),
                partition: r.id,
                keys: keys.to_vec(),
                takes,
            };
            match self.call_remote(&r, request.clone()).await {
                Ok(wire::Response::Blocked {
                    subscription,
                    ticket,
                }) => {
                    return Ok(Blocked {
                        ticket,
                        form: BlockedForm::Remote {
                            node: r.node.clone(),
                            partition: r.id,
                            subscription,
                            again: Box::new(request),
                            waiting: None,
                        },
                    });
                }
                Ok(other) => return Err(unexpected(&other)),
                Err(NotRun::Moved(m)) => why = NotRun::Moved(m),
                Err(not_run) => return Err(not_run),
            }
        }
        Err(why)
    }

    /// Whether `blocked` is in line where `slot`'s partition is now (a
    /// client whose keys moved to another node gets in line there).
    pub fn in_line_here(&self, blocked: &Blocked, slot: u16) -> bool {
        match &blocked.form {
            BlockedForm::Local { .. } => true,
            BlockedForm::Remote {
                node, partition, ..
            } => {
                let now = self.route(slot);
                now.id() == *partition && now.node() == Some(node.addr())
            }
        }
    }

    /// The cache's Pub/Sub hub.
    pub fn hub(&self) -> &Arc<dyn MessageHub> {
        &self.shared.notifier.hub
    }

    /// The cache's client-side caching table (CLIENT TRACKING).
    pub fn tracking(&self) -> &Tracking {
        &self.shared.notifier.tracking
    }

    /// Bytes of keyspace events delivered since the last call (see
    /// [`Notifier`]): one shared read when there are none.
    pub fn take_fanout(&self) -> u64 {
        let fanout = &self.shared.notifier.fanout;
        if fanout.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        fanout.swap(0, Ordering::Relaxed)
    }

    /// The cache's MONITOR clients.
    pub fn monitors(&self) -> &Monitors {
        &self.shared.notifier.monitors
    }

    /// The same pool hosted on a node: its events go to a feed the proxies
    /// read ([`feed`]) instead of a hub.
    pub fn fed(self) -> CachePool {
        let _ = self.shared.notifier.feed.set(Arc::new(Feed::default()));
        self
    }

    /// A node's feed of this cache's events for the proxies ([`feed`]).
    pub fn feed(&self) -> Option<&Arc<Feed>> {
        self.shared.notifier.feed.get()
    }

    /// What a proxy asks a node's feed for: the events this cache's
    /// subscribers and tracking clients here need.
    pub fn feed_flags(&self) -> u32 {
        self.shared.notifier.recording_flags()
    }

    /// A proxy delivers what a node's feed gave: keyspace events on this
    /// cache's hub (with its flags; expiries and evictions invalidate
    /// tracked keys) and scripts' messages to its subscribers.
    pub fn deliver(&self, items: Vec<FeedItem>) {
        let notifier = &self.shared.notifier;
        let mut events = Vec::new();
        // BCAST clients hear of the batch's keys together, at its end.
        let mut broadcast = None;
        for item in items {
            match item {
                FeedItem::Key(e) => events.push(e),
                FeedItem::Invalidate { keys, client } => {
                    notifier.publish(std::mem::take(&mut events));
                    notifier
                        .tracking
                        .invalidate(keys.iter().map(|k| &k[..]), client);
                    broadcast = Some(client);
                }
                FeedItem::ScriptRead { client } => notifier.tracking.note_script_read(client),
                FeedItem::Monitored { argv } => {
                    notifier.monitors.feed("lua", &argv);
                }
                // Counted by the batch's runner (`record_calls`).
                FeedItem::Called { .. } => {}
                FeedItem::Message {
                    channel,
                    message,
                    shard,
                } => {
                    notifier.publish(std::mem::take(&mut events));
                    notifier.publish_message(&channel, &message, shard);
                }
            }
        }
        notifier.publish(events);
        if let Some(client) = broadcast {
            notifier.tracking.flush_broadcast(client);
        }
    }

    /// A proxy delivers what a node's feed gave, but for its own batches'
    /// (delivered from their replies).
    pub fn deliver_feed(&self, items: Vec<(u64, FeedItem)>) {
        let mine = self.feed_origin();
        self.deliver(
            items
                .into_iter()
                .filter(|(origin, _)| *origin != mine)
                .map(|(_, item)| match item {
                    // Another proxy's client: none of ours made the change.
                    FeedItem::Invalidate { keys, .. } => FeedItem::Invalidate { keys, client: 0 },
                    item => item,
                })
                .collect(),
        );
    }

    /// A client's PUBLISH of a cache on nodes, for the other proxies: into
    /// the feed of the node of the channel's slot (every proxy reads every
    /// node of the cache). Nothing to do for an in-process cache. Bounded
    /// by [`SPREAD_WAIT`]: a node that does not answer fails the PUBLISH
    /// (this proxy's subscribers have it already) rather than holding its
    /// client for a call's whole timeout.
    pub async fn spread(
        &self,
        channel: &Bytes,
        message: &Bytes,
        shard: bool,
    ) -> Result<(), String> {
        let Some(origin) = &self.origin else {
            return Ok(());
        };
        let PartitionHandle::Remote(r) = self.route(key_slot(channel)) else {
            return Ok(());
        };
        let request = wire::Request::Publish {
            cache: origin.cache.clone(),
            origin: origin.nodes.origin(),
            channel: channel.clone(),
            message: message.clone(),
            shard,
        };
        let Ok(answer) = tokio::time::timeout(SPREAD_WAIT, r.node.call(request)).await else {
            return Err(reply::node_unavailable(&format!(
                "node {} did not take the message within {SPREAD_WAIT:?}",
                r.node.addr()
            )));
        };
        match answer {
            Ok(wire::Response::Done) => Ok(()),
            Ok(wire::Response::Failed(why)) => Err(why),
            Ok(other) => Err(reply::node_unavailable(&format!("{other:?}"))),
            Err(e) => Err(reply::node_unavailable(&e.to_string())),
        }
    }

    /// Where a new reader of `node`'s feed starts (`None`: from now): the
    /// earliest number a reply of one of its partitions gave (missing
    /// nothing after this proxy's first batch there).
    pub fn feed_mark(&self, node: std::net::SocketAddr) -> Option<u64> {
        self.partitions()
            .iter()
            .filter_map(|p| match p {
                PartitionHandle::Remote(r) if r.node.addr() == node => {
                    r.feed_mark.load(Ordering::Relaxed).checked_sub(1)
                }
                _ => None,
            })
            .min()
    }

    /// This process's number in the nodes' feeds (a remote pool; 0 else).
    fn feed_origin(&self) -> u64 {
        self.origin.as_ref().map_or(0, |o| o.nodes.origin())
    }

    /// The cache's name on its nodes (a remote pool).
    pub fn hosted_as(&self) -> Option<&str> {
        self.origin.as_ref().map(|o| o.cache.as_str())
    }

    /// A proxy, after a command that may have changed what its clients
    /// need of the nodes' feeds (SUBSCRIBE, CLIENT TRACKING, CONFIG SET
    /// notify-keyspace-events): the cache's nodes record any new classes,
    /// and each node whose feed this proxy has no position in yet gives
    /// one (its reader starts there) — before the client hears back, so an
    /// event made anywhere after its reply reaches it. At most one round
    /// trip to each such node, bounded by [`FEED_ANNOUNCE_WAIT`]; nothing
    /// once every node is known and the classes stand.
    pub async fn want_feed(&self) {
        let Some(origin) = &self.origin else {
            return;
        };
        if self.epoch() == 0 {
            let _ = self.load_routes().await;
        }
        let flags = self.feed_flags();
        let gained = self.feed_announced.swap(flags, Ordering::Relaxed) & flags != flags;
        let nodes: Vec<Arc<NodeClient>> = self
            .nodes()
            .into_iter()
            .filter(|n| gained || self.feed_mark(n.addr()).is_none())
            .collect();
        let asks = nodes.into_iter().map(|node| {
            let request = wire::Request::Feed {
                cache: origin.cache.clone(),
                after: None,
                flags,
            };
            async move {
                let answer = tokio::time::timeout(FEED_ANNOUNCE_WAIT, node.call(request)).await;
                if let Ok(Ok(wire::Response::Fed { next, .. })) = answer {
                    self.mark_feed(node.addr(), next);
                }
            }
        });
        futures_util::future::join_all(asks).await;
    }

    /// `node`'s feed is read from `next` on, unless a reader position is
    /// known already.
    pub fn mark_feed(&self, node: std::net::SocketAddr, next: u64) {
        for part in self.partitions() {
            if let PartitionHandle::Remote(r) = part
                && r.node.addr() == node
            {
                let _ =
                    r.feed_mark
                        .compare_exchange(0, next + 1, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    /// The nodes hosting this cache's partitions, as the routes say.
    pub fn nodes(&self) -> Vec<Arc<NodeClient>> {
        let mut nodes: Vec<Arc<NodeClient>> = Vec::new();
        for part in self.partitions() {
            if let PartitionHandle::Remote(r) = part
                && !nodes.iter().any(|n| Arc::ptr_eq(n, &r.node))
            {
                nodes.push(r.node.clone());
            }
        }
        nodes
    }

    /// The cache's `notify-keyspace-events` flags ([`notify`] classes).
    pub fn notify_flags(&self) -> u32 {
        self.shared.notifier.flags()
    }

    pub fn set_notify_flags(&self, flags: u32) {
        self.shared.notifier.flags.store(flags, Ordering::Relaxed);
    }

    pub fn epoch(&self) -> u64 {
        self.routing.read().epoch
    }

    /// Whether a script has held the partition that owns `slot` longer
    /// than `busy` (a command for it would be answered BUSY). On a node:
    /// a script this process sent there.
    pub fn script_busy(&self, slot: u16, busy: Duration) -> bool {
        match self.route(slot) {
            PartitionHandle::Local(p) => p.script_busy(busy),
            PartitionHandle::Remote(r) => r.script_busy(busy),
        }
    }

    /// The partition that owns `slot`.
    pub fn route(&self, slot: u16) -> PartitionHandle {
        self.routing.read().entry(slot).2.clone()
    }

    /// The first and last slot of the partition owning `slot`, if that
    /// partition is in this process: the slots a pipeline's batch may
    /// span ([`Self::execute_run`]).
    pub fn local_range(&self, slot: u16) -> Option<(u16, u16)> {
        let table = self.routing.read();
        let (low, high, part) = table.entry(slot);
        part.in_process().map(|_| (*low, *high))
    }

    /// Prefetches what a batch of requests on `keys` (slot, key) will read
    /// and write: their slots' load counters ([`Self::record_load`]), then
    /// their keys ([`Keyspace::prefetch`]), partition by partition. A hint:
    /// partitions in another process, or whose lock is taken, are skipped.
    pub fn prefetch(&self, keys: &[(u16, &[u8])]) {
        for &(slot, _) in keys {
            if let Some(load) = self.slot_load.get(usize::from(slot)) {
                crate::partition::prefetch_line(load.as_ptr().cast());
            }
        }
        let table = self.routing.read();
        let mut rest = keys;
        while let Some(&(slot, _)) = rest.first() {
            let (first, last, part) = table.entry(slot);
            let n = rest
                .iter()
                .position(|(s, _)| s < first || s > last)
                .unwrap_or(rest.len())
                .max(1);
            if let Some(p) = part.in_process()
                && let Some(st) = p.state.try_lock()
            {
                st.ks.prefetch(&rest[..n]);
            }
            rest = &rest[n..];
        }
    }

    /// Every partition with its range, in slot order.
    pub fn ranges(&self) -> Vec<(u16, u16, PartitionHandle)> {
        self.routing.read().ranges.clone()
    }

    /// Whether partition `id` is in this process, serving, and owns the
    /// slots of `keys` (a node checks what a proxy registers on keys).
    pub fn serves(&self, id: u64, keys: &[Bytes]) -> bool {
        let Some(part) = self.partition(id) else {
            return false;
        };
        let Some(p) = part.in_process() else {
            return false;
        };
        // Held by slow work: it serves (a move takes the lock to retire it).
        let Some(st) = p.state.try_lock() else {
            return true;
        };
        !st.retired && keys.iter().all(|k| st.ks.owns(key_slot(k)))
    }

    /// The partition with this id, if it is in the routing table.
    pub fn partition(&self, id: u64) -> Option<PartitionHandle> {
        self.routing
            .read()
            .ranges
            .iter()
            .find(|(_, _, h)| h.id() == id)
            .map(|(_, _, h)| h.clone())
    }

    /// Every partition, in slot order.
    pub fn partitions(&self) -> Vec<PartitionHandle> {
        self.routing
            .read()
            .ranges
            .iter()
            .map(|(_, _, h)| h.clone())
            .collect()
    }

    /// Bytes stored by all partitions (kept exact by every operation).
    pub fn used_bytes(&self) -> u64 {
        if self.origin.is_some() {
            // A remote pool's bytes are its node's, as last read (at most
            // a second old: the storage maximum holds to within a
            // second's writes).
            return self.totals().used_bytes as u64;
        }
        self.shared.used_bytes.load(Ordering::Relaxed)
    }

    /// Adds a metered request's ECPU to its slot's load.
    pub fn record_load(&self, slot: u16, ecpu_milli: u64) {
        self.slot_load[usize::from(slot)].fetch_add(ecpu_milli, Ordering::Relaxed);
    }

    /// Takes (and resets) every slot's load since the last call. Only a
    /// slot with load is swapped: 16,384 atomic swaps a cache were 1.1 ms
    /// of a reactor's time each second (`perf`, `noisy --heavy bigbulk`),
    /// where plain loads of mostly idle slots take microseconds.
    pub fn take_slot_load(&self) -> Vec<u64> {
        self.slot_load
            .iter()
            .map(|l| match l.load(Ordering::Relaxed) {
                0 => 0,
                _ => l.swap(0, Ordering::Relaxed),
            })
            .collect()
    }

    /// Runs a data command: routed by its slot, or — for per-key multi-key
    /// commands (`FANOUT`) whose keys live in several partitions — split into
    /// one command per partition whose replies are merged in key order.
    /// Commands refused with [`Moved`] are re-routed.
    pub async fn execute(
        &self,
        spec: &'static CommandSpec,
        args: &[Bytes],
        slot: u16,
        opts: &ExecOptions,
    ) -> Executed {
        if let Some(how) = spec.fan_in()
            && spec.key_positions(args).nth(1).is_some()
        {
            return self.fan_out(spec, how, args, opts).await;
        }
        for _ in 0..MAX_REROUTES {
            let part = self.route(slot);
            match self
                .run_in(&part, &[(spec, args)], &[slot], &[], opts)
                .await
            {
                Ok(done) => return done.and_then(|mut v| v.pop()).unwrap_or(NOTHING),
                Err(NotRun::Busy) => return self.busy(),
                Err(NotRun::Unavailable(why)) => {
                    return Executed::new(Reply::err_owned(why), 0);
                }
                Err(NotRun::Moved(_)) => {}
            }
        }
        Executed::unserved(Reply::err(reply::TRYAGAIN), Unserved::InTransit)
    }

    /// Runs a pipeline's run of commands (one per slot in `slots`, all in
    /// one [`Self::local_range`]) as one batch: one route, one hold of the
    /// partition's lock, results in order — fewer than `cmds` if the
    /// replies reached `opts.reply_budget` first. Only commands
    /// [`Self::execute`] would run whole in one partition belong in a run
    /// (no multi-key fan-out). If the slots moved apart meanwhile (a
    /// split), each command runs on its own.
    pub async fn execute_run(
        &self,
        cmds: &[(&'static CommandSpec, &[Bytes])],
        slots: &[u16],
        opts: &ExecOptions,
    ) -> Executions {
        let part = self.route(slots[0]);
        match self.run_in(&part, cmds, slots, &[], opts).await {
            Ok(Some(done)) => return done,
            Err(NotRun::Busy) => return cmds.iter().map(|_| self.busy()).collect(),
            Err(NotRun::Unavailable(why)) => {
                return cmds
                    .iter()
                    .map(|_| Executed::new(Reply::err_owned(why.clone()), 0))
                    .collect();
            }
            Ok(None) | Err(NotRun::Moved(_)) => {}
        }
        // (Each timed here, as `run_locked` times the commands of a run.)
        let mut out = Executions::with_capacity(cmds.len());
        for (&(spec, args), &slot) in cmds.iter().zip(slots) {
            let started = Instant::now();
            let mut done = self.execute(spec, args, slot, opts).await;
            done.took = started.elapsed();
            out.push(done);
        }
        out
    }

    /// Runs a bounded, read-only `f` on the keyspace of the partition owning
    /// `slot`, on the calling (reactor) thread: `None` if its lock is not
    /// free within [`INLINE_WAIT`] or the slot moved. The first look of a
    /// blocking stream read, which must see the keys as they are when the
    /// command arrives (see `proxy::conn`).
    pub fn peek_inline<R>(&self, slot: u16, f: impl FnOnce(&Keyspace) -> R) -> Option<R> {
        let part = self.route(slot);
        let st = part.in_process()?.lock_inline()?;
        (!st.retired && st.ks.owns(slot)).then(|| f(&st.ks))
    }

    /// Runs a transaction: `cmds` in the partition owning `slot`, under one
    /// hold of its lock, unless a `watched` key changed (`Ok(None)`).
    /// `Err` if the slot kept moving or a script keeps the partition busy.
    pub async fn execute_batch(
        &self,
        cmds: &[(&'static CommandSpec, &[Bytes])],
        slot: u16,
        watched: &[(Box<[u8]>, u64)],
        opts: &ExecOptions,
    ) -> Result<Option<Executions>, NotRun> {
        let mut why = NotRun::Moved(Moved { epoch: 0 });
        for _ in 0..MAX_REROUTES {
            let part = self.route(slot);
            match self.run_in(&part, cmds, &[slot], watched, opts).await {
                Ok(done) => return Ok(done),
                Err(NotRun::Moved(m)) => why = NotRun::Moved(m),
                Err(not_run) => return Err(not_run),
            }
        }
        Err(why)
    }

    /// Runs a batch in one partition (the phases in the module doc): inline
    /// when every command is bounded and the lock is free, else as a job on
    /// the worker pool, admitted by this cache's permits.
    pub async fn run_in(
        &self,
        part: &PartitionHandle,
        cmds: &[(&'static CommandSpec, &[Bytes])],
        slots: &[u16],
        watched: &[(Box<[u8]>, u64)],
        opts: &ExecOptions,
    ) -> Result<Option<Executions>, NotRun> {
        let p = match part {
            PartitionHandle::Local(p) => p,
            PartitionHandle::Remote(r) => {
                return self.run_remote(r, cmds, slots, watched, opts).await;
            }
        };
        let bounded = cmds.len() <= INLINE_BATCH && !cmds.iter().any(|(s, _)| s.runs_on_workers());
        let mut notified = Vec::new();
        if bounded && let Some(mut st) = p.lock_inline() {
            let out = p.run_locked(&mut st, cmds, slots, watched, opts, &mut notified);
            drop(st);
            p.notifier
                .publish_for(notified, opts.batch_events.as_deref());
            return Ok(out?);
        }
        let scripted = runs_script(cmds);
        let cmds: Vec<(&'static CommandSpec, Vec<Bytes>)> =
            cmds.iter().map(|(s, a)| (*s, a.to_vec())).collect();
        let slots = slots.to_vec();
        let watched = watched.to_vec();
        let mut opts = opts.clone();
        let function = running_function(&cmds);
        let running = scripted.then(|| {
            let notifier = self.shared.notifier.clone();
            let batch = opts.batch_events.clone();
            // On a node, what the proxy asked of the batch's reply.
            let asked = |class: u32| batch.clone().filter(|b| b.notify & class != 0);
            // MONITOR sees what the script calls, as `[0 lua]` (a node's
            // proxy shows it to its monitors).
            let monitors = self.shared.notifier.monitors.clone();
            let monitor = match asked(notify::MONITOR) {
                Some(b) => Some(cmd::script::ScriptMonitor(Arc::new(
                    move |argv: &[Bytes]| b.monitored(argv),
                ))),
                None => monitors.active().then(|| {
                    cmd::script::ScriptMonitor(Arc::new(move |argv: &[Bytes]| {
                        monitors.feed("lua", argv);
                    }))
                }),
            };
            // Its commands count in the proxy's command statistics.
            let calls = match asked(notify::CALLS) {
                Some(b) => Some(cmd::script::CallRecorder(Arc::new(
                    move |call: cmd::script::InnerCall<'_>| b.called(call),
                ))),
                None => opts.calls.clone(),
            };
            let control = Arc::new(ScriptControl {
                gate: opts.gate.clone(),
                calls,
                monitor,
                started: Some(Instant::now()),
                function,
                // On a node its messages go to the proxies' feed.
                publisher: Some(cmd::script::Publisher(Arc::new(
                    move |channel: &[u8], message: &[u8], shard: bool| {
                        notifier.publish_message_for(channel, message, shard, batch.as_deref())
                    },
                ))),
                ..ScriptControl::default()
            });
            self.scripts.lock().push(control.clone());
            opts.script = Some(control.clone());
            RunningScript {
                list: self.scripts.clone(),
                control,
            }
        });
        let busy = opts.busy_threshold;
        let batch = opts.batch_events.clone();
        self.on_workers(
            part,
            move |p, st| {
                let _running = running;
                if scripted {
                    let started = p.created.elapsed().as_micros() as u64 + 1;
                    p.script_since.store(started, Ordering::Release);
                }
                let refs: Vec<(&CommandSpec, &[Bytes])> =
                    cmds.iter().map(|(s, a)| (*s, &a[..])).collect();
                let out = p.run_locked(st, &refs, &slots, &watched, &opts, &mut notified);
                p.script_since.store(0, Ordering::Release);
                Ok((out?, notified))
            },
            busy,
        )
        .await
        .map(|(out, notified)| {
            p.notifier.publish_for(notified, batch.as_deref());
            out
        })
    }

    /// Runs a batch in a partition hosted on a node: sent as a
    /// [`wire::Execute`] at this pool's routing epoch; a `Moved` answer
    /// refreshes the routes before the caller re-routes.
    async fn run_remote(
        &self,
        part: &RemotePartition,
        cmds: &[(&'static CommandSpec, &[Bytes])],
        slots: &[u16],
        watched: &[(Box<[u8]>, u64)],
        opts: &ExecOptions,
    ) -> Result<Option<Executions>, NotRun> {
        // A script runs on the node; here it is known to run (the kind of
        // `BUSY` other clients get, `FUNCTION STATS`) until it answers.
        let scripted = runs_script(cmds);
        let _running = scripted.then(|| {
            let control = Arc::new(ScriptControl {
                started: Some(Instant::now()),
                function: running_function(cmds),
                ..ScriptControl::default()
            });
            self.scripts.lock().push(control.clone());
            let started = Instant::now();
            part.scripts.lock().push(started);
            (
                RunningScript {
                    list: self.scripts.clone(),
                    control,
                },
                ScriptSent(part, started),
            )
        });
        // A script's PUBLISH on the node counts this proxy's subscribers:
        // their table goes along when the node may not have this version.
        let listeners = if scripted { self.hub().version() } else { 0 };
        let node = part.node.addr();
        let sent = listeners == 0 || self.listeners_sent.lock().get(&node) == Some(&listeners);
        let batch = wire::Execute {
            cache: part.cache.clone(),
            partition: part.id,
            epoch: self.epoch(),
            slots: slots.to_vec(),
            commands: cmds.iter().map(|(_, args)| args.to_vec()).collect(),
            watched: watched
                .iter()
                .map(|(k, v)| (Bytes::copy_from_slice(k), *v))
                .collect(),
            options: wire::Options {
                resp3: opts.resp3,
                max_value_len: opts.max_value_len as u64,
                room: opts.room,
                no_touch: opts.no_touch,
                client: opts.client,
                ticket: opts.ticket,
                retry: opts.retry,
                busy_threshold_ms: opts.busy_threshold.as_millis() as u64,
                encoding: opts.encoding,
                script_time_limit_ms: opts.script_time_limit.as_millis() as u64,
                // Only a script calls commands the gate checks.
                rules: opts.gate.as_ref().filter(|_| scripted).map(|g| (g.rules)()),
                notify: self.feed_flags() | self.script_classes(scripted, opts),
                origin: self.feed_origin(),
                listeners,
                listener_table: (!sent).then(|| self.listener_table()),
            },
        };
        // A copy to send again if the node lacks the table (scripts only).
        let again = (listeners != 0).then(|| batch.clone());
        let mut answer = self
            .call_remote(part, wire::Request::Execute(batch))
            .await?;
        if let (wire::Response::NeedListeners, Some(mut batch)) = (&answer, again) {
            // The node no longer has them (it restarted, or kept others').
            batch.options.listener_table = Some(self.listener_table());
            answer = self
                .call_remote(part, wire::Request::Execute(batch))
                .await?;
        }
        if listeners != 0 {
            self.listeners_sent.lock().insert(node, listeners);
        }
        match answer {
            wire::Response::Executed {
                replies,
                stats,
                events,
                feed,
            } => {
                *part.last_stats.lock() = (*stats).into();
                // Where a reader of that node's feed starts at the latest
                // (the first reply's number, kept; stored plus one: 0 is
                // "none yet").
                self.mark_feed(part.node.addr(), feed);
                // Delivered here before the client hears of its batch.
                let events = self.record_calls(events, opts);
                self.deliver(events);
                Ok(Some(
                    replies
                        .into_iter()
                        .map(|e| Executed {
                            reply: e.reply,
                            work: e.work,
                            waits: e.waits,
                            resume: e.resume,
                            unserved: None,
                            took: Duration::ZERO,
                        })
                        .collect(),
                ))
            }
            wire::Response::Aborted => Ok(None),
            other => Err(unexpected(&other)),
        }
    }

    /// This proxy's subscriptions as a node counts a script's PUBLISH
    /// against them; the cache pays their bytes as it pays a PUBLISH's
    /// fan-out (a tenant that keeps changing many subscriptions between
    /// scripts pays for each table sent).
    fn listener_table(&self) -> Box<crate::pubsub::Listeners> {
        let table = self.hub().listeners();
        let bytes = table.size() as u64;
        self.shared
            .notifier
            .fanout
            .fetch_add(bytes, Ordering::Relaxed);
        Box::new(table)
    }

    /// What a batch with a script asks its node to return of the script's
    /// calls: for the command statistics, and for MONITOR while a client
    /// here watches.
    fn script_classes(&self, scripted: bool, opts: &ExecOptions) -> u32 {
        if !scripted {
            return 0;
        }
        let calls = if opts.calls.is_some() {
            notify::CALLS
        } else {
            0
        };
        let monitor = if self.shared.notifier.monitors.active() {
            notify::MONITOR
        } else {
            0
        };
        calls | monitor
    }

    /// A script's calls a node returned, counted here as a script running
    /// here counts them (`opts.calls`); the rest of `events` to deliver.
    fn record_calls(&self, events: Vec<FeedItem>, opts: &ExecOptions) -> Vec<FeedItem> {
        let Some(calls) = &opts.calls else {
            return events;
        };
        events
            .into_iter()
            .filter_map(|item| match item {
                FeedItem::Called {
                    name,
                    sub,
                    calls: n,
                    failed,
                    micros,
                } => {
                    if let Some(spec) = cmd::lookup(name.as_bytes()) {
                        (calls.0)(cmd::script::InnerCall {
                            spec,
                            sub: sub.as_deref(),
                            calls: n,
                            failed,
                            micros,
                        });
                    }
                    None
                }
                other => Some(other),
            })
            .collect()
    }

    /// Sends `request` to `part`'s node. The answers every request may get
    /// come back as [`NotRun`]: `Busy`, `Failed`, an unreachable node, and
    /// `Moved` (after the routes are loaded again, for the caller to
    /// re-route).
    async fn call_remote(
        &self,
        part: &RemotePartition,
        request: wire::Request,
    ) -> Result<wire::Response, NotRun> {
        let unavailable = |why: String| NotRun::Unavailable(reply::node_unavailable(&why));
        match part
            .node
            .call(request)
            .await
            .map_err(|e| unavailable(e.to_string()))?
        {
            wire::Response::Busy => Err(NotRun::Busy),
            wire::Response::Moved { epoch } => {
                let before = self.epoch();
                self.load_routes_from(&part.node)
                    .await
                    .map_err(unavailable)?;
                if self.epoch() == before {
                    // Slots in transit between nodes: no table says where
                    // yet (the caller re-routes a bounded number of times).
                    tokio::time::sleep(IN_TRANSIT_PAUSE).await;
                }
                Err(NotRun::Moved(Moved { epoch }))
            }
            wire::Response::Failed(why) => Err(NotRun::Unavailable(why)),
            other => Ok(other),
        }
    }

    /// Runs `f` on the locked partition on a worker thread, once this cache
    /// has a worker permit. Waiting (for the permit or the lock) ends with
    /// [`NotRun::Busy`] while a script holds the partition past `busy`.
    async fn on_workers<R: Send + 'static>(
        &self,
        part: &PartitionHandle,
        f: impl FnOnce(&LocalPartition, &mut PartitionState) -> Result<R, NotRun> + Send + 'static,
        busy: Duration,
    ) -> Result<R, NotRun> {
        let Some(p) = part.in_process().cloned() else {
            return Err(NotRun::Unavailable(reply::REMOTE_NOT_YET.into()));
        };
        p.slow.fetch_add(1, Ordering::AcqRel);
        // Undone when the job ends, or here if it never gets to run.
        let slow = SlowGuard(p.clone());
        let permit = loop {
            if p.script_busy(busy) {
                return Err(NotRun::Busy);
            }
            tokio::select! {
                permit = self.slow_permits.clone().acquire_owned() => match permit {
                    Ok(permit) => break permit,
                    Err(_) => return Err(NotRun::Busy),
                },
                () = tokio::time::sleep(BUSY_POLL) => {}
            }
        };
        let job = move || {
            let _permit = permit;
            let _slow = slow;
            let mut st = p.lock_waiting(busy)?;
            f(&p, &mut st)
        };
        workers::get().run(job).await.unwrap_or(Err(NotRun::Busy))
    }

    /// Splits a FANOUT command by partition, runs each part, merges replies.
    async fn fan_out(
        &self,
        spec: &'static CommandSpec,
        how: cmd::table::FanIn,
        args: &[Bytes],
        opts: &ExecOptions,
    ) -> Executed {
        let step = spec.step.max(1) as usize;
        let positions: Vec<usize> = spec.key_positions(args).collect();
        // Key groups must be whole (MSET's key-value pairs): else an arity error.
        if positions.last().is_some_and(|p| p + step > args.len()) {
            return Executed::new(Reply::err_owned(reply::wrong_arity(spec.name)), 0);
        }
        let mut parts: Vec<(Vec<usize>, Reply)> = Vec::new();
        let mut pending: Vec<usize> = (0..positions.len()).collect();
        let mut work = 0;
        for _ in 0..MAX_REROUTES {
            if pending.is_empty() {
                break;
            }
            // Group the pending keys by the partition owning them now.
            let groups = group_by_partition(&pending, |k| {
                let slot = key_slot(&args[positions[k]]);
                (self.route(slot), slot)
            });
            pending.clear();
            for (part, keys, slots) in groups {
                let mut sub = Vec::with_capacity(1 + keys.len() * step);
                sub.push(args[0].clone());
                for &k in &keys {
                    sub.extend_from_slice(&args[positions[k]..positions[k] + step]);
                }
                match self.run_in(&part, &[(spec, &sub)], &slots, &[], opts).await {
                    Ok(done) => {
                        let done = done.and_then(|mut v| v.pop()).unwrap_or(NOTHING);
                        work += done.work;
                        parts.push((keys, done.reply));
                    }
                    Err(NotRun::Busy) => return self.busy(),
                    Err(NotRun::Unavailable(why)) => {
                        return Executed::new(Reply::err_owned(why), work);
                    }
                    Err(NotRun::Moved(_)) => pending.extend(keys),
                }
            }
        }
        if !pending.is_empty() {
            // Keys still moving: the client tries again (what ran is paid).
            return Executed {
                work,
                ..Executed::unserved(Reply::err(reply::TRYAGAIN), Unserved::InTransit)
            };
        }
        Executed::new(merge(how, parts, positions.len()), work)
    }

    /// Runs a walk over the keys of `part` ([`wire::KeysOp`]: data only,
    /// so the same request runs here, on the worker pool, or on the
    /// partition's node).
    pub async fn keys_op(
        &self,
        part: &PartitionHandle,
        op: wire::KeysOp,
        now: u64,
        busy: Duration,
    ) -> Result<wire::KeysDone, NotRun> {
        if let PartitionHandle::Remote(r) = part {
            let request = wire::Request::Keys {
                cache: r.cache.clone(),
                partition: r.id,
                busy_threshold_ms: busy.as_millis() as u64,
                op,
            };
            return match self.call_remote(r, request).await? {
                wire::Response::Keys(wire::KeysDone::Flushed) => {
                    r.emptied();
                    Ok(wire::KeysDone::Flushed)
                }
                wire::Response::Keys(done) => Ok(done),
                other => Err(unexpected(&other)),
            };
        }
        self.on_workers(part, move |p, st| p.keys_op(st, op, now), busy)
            .await
    }

    /// One SCAN step in the partition owning `cursor.slot` (see
    /// [`Keyspace::scan`]): the partition's id and what the step found.
    pub async fn scan(
        &self,
        cursor: ScanCursor,
        count: usize,
        now: u64,
        filter: wire::ScanFilter,
        busy: Duration,
    ) -> Result<(u64, Scanned), NotRun> {
        let part = self.route(cursor.slot);
        let op = wire::KeysOp::Scan {
            cursor: cursor.encode(),
            count: count as u64,
            filter,
        };
        match self.keys_op(&part, op, now, busy).await? {
            wire::KeysDone::Scanned {
                keys,
                next,
                visited,
                slots,
            } => Ok((
                part.id(),
                Scanned {
                    keys,
                    next: next.map(ScanCursor::decode),
                    visited,
                    slots,
                },
            )),
            other => Err(unexpected(&other)),
        }
    }

    /// RANDOMKEY: a partition drawn with a probability proportional to its
    /// keys (from the stats they last published), then a key drawn in it
    /// (see [`Keyspace::random_key`]), on the worker pool. Returns the key
    /// (`None` if the partitions drawn had none) and the slots walked.
    ///
    /// [`Keyspace::random_key`]: crate::partition::Keyspace::random_key
    pub async fn random_key(
        &self,
        now: u64,
        busy: Duration,
    ) -> Result<(Option<Bytes>, u64), NotRun> {
        let parts = self.partitions();
        let counts: Vec<usize> = parts.iter().map(|p| p.stats().keys).collect();
        let total: usize = counts.iter().sum();
        let mut order: Vec<usize> = (0..parts.len()).collect();
        if self.origin.is_some() {
            // A remote partition's count is a second old: draw the
            // partitions in a random order instead.
            rand::seq::SliceRandom::shuffle(&mut order[..], &mut rand::rng());
        } else if total > 0 {
            // The drawn partition first, then the others in case it emptied.
            let mut rank = rand::Rng::random_range(&mut rand::rng(), 0..total);
            if let Some(first) = counts.iter().position(|&n| {
                let hit = rank < n;
                rank = rank.saturating_sub(n);
                hit
            }) {
                order.swap(0, first);
            }
        }
        let mut walked = 0;
        for i in order {
            let done = match self
                .keys_op(&parts[i], wire::KeysOp::Random, now, busy)
                .await
            {
                Ok(done) => done,
                // Its keys live on elsewhere (a remote pool's routes were
                // loaded again): the others are still drawn from.
                Err(NotRun::Moved(_)) => continue,
                Err(not_run) => return Err(not_run),
            };
            match done {
                wire::KeysDone::Random { key, walked: w } => {
                    walked += w;
                    if key.is_some() {
                        return Ok((key, walked));
                    }
                }
                other => return Err(unexpected(&other)),
            }
        }
        Ok((None, walked))
    }

    /// Keys in `slot` (CLUSTER COUNTKEYSINSLOT / GETKEYSINSLOT): how many,
    /// and up to `limit` of them.
    pub async fn slot_keys(
        &self,
        slot: u16,
        limit: usize,
        busy: Duration,
    ) -> Result<(usize, Vec<Bytes>), NotRun> {
        let part = self.route(slot);
        let op = wire::KeysOp::InSlot {
            slot,
            limit: limit as u64,
        };
        match self.keys_op(&part, op, 0, busy).await? {
            wire::KeysDone::InSlot { count, keys } => {
                Ok((usize::try_from(count).unwrap_or(usize::MAX), keys))
            }
            other => Err(unexpected(&other)),
        }
    }

    /// SCRIPT KILL (`functions` false) or FUNCTION KILL (true): stops the
    /// cache's running scripts of that kind, unless one has written
    /// (Redis's `UNKILLABLE`).
    pub async fn kill_running(&self, functions: bool) -> KillOutcome {
        let Some(origin) = &self.origin else {
            return self.kill_here(functions);
        };
        // Scripts run where their partitions are: every node is asked.
        let mut nodes: Vec<Arc<NodeClient>> = Vec::new();
        for part in self.partitions() {
            if let PartitionHandle::Remote(r) = part
                && !nodes.iter().any(|n| n.addr() == r.node.addr())
            {
                nodes.push(r.node.clone());
            }
        }
        let mut found = Vec::new();
        for node in nodes {
            let request = wire::Request::Kill {
                cache: origin.cache.clone(),
                functions,
            };
            if let Ok(wire::Response::Killed(outcome)) = node.call(request).await {
                found.push(outcome);
            }
        }
        [
            KillOutcome::Killed,
            KillOutcome::Unkillable,
            KillOutcome::OtherKind,
        ]
        .into_iter()
        .find(|o| found.contains(o))
        .unwrap_or(KillOutcome::NotBusy)
    }

    /// SCRIPT KILL or FUNCTION KILL of the scripts running in this process.
    pub fn kill_here(&self, functions: bool) -> KillOutcome {
        let scripts = self.scripts.lock();
        if scripts.is_empty() {
            return KillOutcome::NotBusy;
        }
        if scripts.iter().any(|c| c.wrote.load(Ordering::Acquire)) {
            return KillOutcome::Unkillable;
        }
        let mut killed = false;
        for c in scripts.iter().filter(|c| c.function.is_some() == functions) {
            c.kill.store(true, Ordering::Release);
            killed = true;
        }
        if killed {
            KillOutcome::Killed
        } else {
            KillOutcome::OtherKind
        }
    }

    /// The first running function (`FUNCTION STATS`): its name, command
    /// and how long it has run; `Err` if none runs but an `EVAL` script has
    /// run longer than `busy` (Redis answers `BUSY` then).
    pub fn running_function(
        &self,
        busy: Duration,
    ) -> Result<Option<(cmd::script::RunningFunction, Duration)>, BusyWithEval> {
        let scripts = self.scripts.lock();
        if let Some(c) = scripts.iter().find(|c| c.function.is_some()) {
            let elapsed = c.started.map_or(Duration::ZERO, |s| s.elapsed());
            return Ok(c.function.clone().map(|f| (f, elapsed)));
        }
        let busy_eval = scripts
            .iter()
            .any(|c| c.started.is_some_and(|s| s.elapsed() > busy));
        if busy_eval {
            Err(BusyWithEval)
        } else {
            Ok(None)
        }
    }

    /// `BUSY`, naming FUNCTION KILL when a function holds the partition.
    /// The BUSY reply while a script (or a function) holds a partition
    /// of this cache.
    pub fn busy_reply(&self) -> Reply {
        self.busy().reply
    }

    fn busy(&self) -> Executed {
        let function = self.scripts.lock().iter().any(|c| c.function.is_some());
        let reply = Reply::err(if function {
            reply::BUSY_FUNCTION
        } else {
            reply::BUSY
        });
        Executed::unserved(reply, Unserved::Busy)
    }

    /// Runs `f` on the worker pool once this cache has a worker permit
    /// (library code of `FUNCTION LOAD` and `RESTORE`: it needs no
    /// partition). `None` if the pool could not run it.
    pub async fn run_job<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let permit = self.slow_permits.clone().acquire_owned().await.ok()?;
        workers::get()
            .run(move || {
                let _permit = permit;
                f()
            })
            .await
    }

    /// Stops every running script of this cache, unless one has written
    /// (Redis's `UNKILLABLE`) and not `force` (the cache is going away).
    pub fn kill_scripts(&self, force: bool) -> KillOutcome {
        let scripts = self.scripts.lock();
        if scripts.is_empty() {
            return KillOutcome::NotBusy;
        }
        if !force && scripts.iter().any(|c| c.wrote.load(Ordering::Acquire)) {
            return KillOutcome::Unkillable;
        }
        for c in scripts.iter() {
            c.kill.store(true, Ordering::Release);
        }
        KillOutcome::Killed
    }

    /// Records that `slot` of partition `id` is hot; true if newly reported.
    /// A split (`ids`: both sides) or a merge (`ids`: the survivor) for
    /// `reason`, shown in the partition view and counted: this pool's own,
    /// or (control) one its placer made on the nodes.
    pub fn note_change(&self, ids: &[u64], kind: &'static str, reason: &'static str) {
        let event = RangeEvent {
            kind,
            reason,
            at: SystemTime::now(),
        };
        for id in ids {
            let Some(part) = self.partition(*id) else {
                // Not in this process's table yet: noted when it comes
                // (a few at most; one that never comes is forgotten).
                let mut noted = self.noted.lock();
                if noted.len() >= MAX_NOTED {
                    noted.clear();
                }
                noted.insert(*id, event.clone());
                continue;
            };
            let (last, hot) = match &part {
                PartitionHandle::Local(p) => (&p.last_event, &p.hot_slot),
                PartitionHandle::Remote(r) => (&r.last_event, &r.hot_slot),
            };
            *last.lock() = event.clone();
            *hot.lock() = None;
        }
        let counter = match (kind, reason) {
            ("merge", _) => &self.scaling.merges,
            (_, "size") => &self.scaling.splits_size,
            (_, "load") => &self.scaling.splits_load,
            _ => &self.scaling.splits_min_ecpu,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn report_hot_slot(&self, id: u64, slot: u16) -> bool {
        let Some(part) = self.partitions().into_iter().find(|p| p.id() == id) else {
            return false;
        };
        let mut hot = match &part {
            PartitionHandle::Local(p) => p.hot_slot.lock(),
            PartitionHandle::Remote(r) => r.hot_slot.lock(),
        };
        let new = *hot != Some(slot);
        *hot = Some(slot);
        new
    }

    /// Hot slots currently reported.
    pub fn hot_slots(&self) -> usize {
        self.partitions()
            .iter()
            .filter(|p| match p {
                PartitionHandle::Local(l) => l.hot_slot.lock().is_some(),
                PartitionHandle::Remote(r) => r.hot_slot.lock().is_some(),
            })
            .count()
    }

    /// Evicts keys as `policy` chooses, from the partitions in turn: one
    /// key of an in-process partition, or on a node up to `bytes` freed in
    /// one request (at most [`EVICT_BATCH`] keys). How many keys went; 0
    /// if none could.
    pub async fn evict(&self, now: u64, policy: Eviction, bytes: u64) -> usize {
        if policy == Eviction::NoEviction {
            return 0;
        }
        let parts = self.partitions();
        let start = self.evict_cursor.fetch_add(1, Ordering::Relaxed);
        for i in 0..parts.len() {
            let keys = match &parts[(start + i) % parts.len()] {
                PartitionHandle::Remote(r) => {
                    // None to take there, as its node last said.
                    let known = *r.last_stats.lock();
                    let candidates = if policy.volatile() {
                        known.volatile_keys
                    } else {
                        known.keys
                    };
                    if candidates == 0 {
                        continue;
                    }
                    let request = wire::Request::Evict {
                        cache: r.cache.clone(),
                        partition: r.id,
                        policy,
                        bytes,
                        count: EVICT_BATCH,
                    };
                    match r.node.call(request).await {
                        Ok(wire::Response::Evicted { keys, stats }) => {
                            *r.last_stats.lock() = stats.into();
                            usize::try_from(keys).unwrap_or(usize::MAX)
                        }
                        // Moved, busy or unreachable: the others first.
                        _ => 0,
                    }
                }
                local => usize::from(local.evict_one(now, policy).is_some()),
            };
            if keys > 0 {
                return keys;
            }
        }
        0
    }

    /// Sum of the partitions' figures.
    pub fn totals(&self) -> PartitionStats {
        self.partitions().iter().map(PartitionHandle::stats).fold(
            PartitionStats {
                last_slot: SLOTS - 1,
                ..PartitionStats::default()
            },
            |mut acc, s| {
                acc.keys += s.keys;
                acc.volatile_keys += s.volatile_keys;
                acc.used_bytes += s.used_bytes;
                acc.events += s.events;
                acc
            },
        )
    }

    /// FLUSHDB by client `client`: empties every partition, each on the
    /// worker pool.
    pub async fn flush(&self, busy: Duration, client: u64) -> Result<(), NotRun> {
        // A remote pool flushes the partitions its node has now.
        if self.origin.is_some() {
            self.load_routes()
                .await
                .map_err(|why| NotRun::Unavailable(reply::node_unavailable(&why)))?;
        }
        let mut tries = 0;
        'again: loop {
            for part in self.partitions() {
                match self.keys_op(&part, wire::KeysOp::Flush, 0, busy).await {
                    Ok(_) => {}
                    // Split or merged meanwhile: flush the new table's
                    // partitions (flushing twice is harmless).
                    Err(NotRun::Moved(_)) if tries < MAX_REROUTES => {
                        tries += 1;
                        continue 'again;
                    }
                    Err(not_run) => return Err(not_run),
                }
            }
            break;
        }
        // Client-side caches hear of it once (a null key list).
        self.shared.notifier.tracking.invalidate_all(client);
        Ok(())
    }

    /// Empties every partition whose lock is free now; false if some were
    /// busy (then [`Self::flush_blocking`], off the reactor, finishes). A
    /// deleted cache's: a remote partition's data goes with its node's copy
    /// (control lets it go there), so here it shows nothing more.
    pub fn try_flush(&self) -> bool {
        let mut all = true;
        for part in self.partitions() {
            if let PartitionHandle::Remote(r) = &part {
                r.emptied();
                continue;
            }
            let Some(p) = part.in_process() else {
                continue;
            };
            let flushed = p.try_with_ks(|ks| {
                p.events.flushing(ks);
                ks.flush();
            });
            if flushed.is_none() {
                all = false;
            }
        }
        all
    }

    /// Empties every partition now, waiting for their locks (a deleted
    /// cache; call off the reactor threads).
    pub fn flush_blocking(&self) {
        for part in self.partitions() {
            let Some(p) = part.in_process() else {
                continue;
            };
            let mut st = p.state.lock();
            p.with_state(&mut st, Keyspace::flush);
            p.events.touched_all();
        }
    }

    /// Splits partition `id` at slot `at` (the new partition owns `at..=last`).
    pub fn split(&self, id: u64, at: u16, reason: &'static str) -> Result<u64, String> {
        if self.shared.mode.spans_slots() {
            return Err("a cache with cluster mode disabled never splits".into());
        }
        let Some((first, last, handle)) = self.ranges().into_iter().find(|(_, _, h)| h.id() == id)
        else {
            return Err(format!("partition {id} is gone"));
        };
        if at <= first || at > last {
            return Err(format!("slot {at} does not split {first}..={last}"));
        }
        let Some(left) = handle.in_process() else {
            return Err(format!("partition {id} splits on its node"));
        };
        // 1. Lock (never waiting: slow work may hold it; the next tick
        //    retries), and check the range is still what the decision saw.
        let Some(mut st) = left.state.try_lock() else {
            return Err(format!("partition {id} is busy"));
        };
        if st.retired || st.ks.first_slot() != first || st.ks.last_slot() != last {
            return Err(format!("partition {id} changed"));
        }
        // 2. Move the upper slot tables out.
        let right_ks = st.ks.split_off(at);
        let new_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // 3. Install both halves under a new epoch.
        let mut table = self.routing.write();
        table.epoch += 1;
        let epoch = table.epoch;
        let event = RangeEvent {
            kind: "split",
            reason,
            at: SystemTime::now(),
        };
        let right = PartitionHandle::local(new_id, right_ks, epoch, &self.shared, event.clone());
        let at_index = table
            .ranges
            .iter()
            .position(|(_, _, h)| h.id() == id)
            .ok_or("routing lost a partition")?;
        table.ranges[at_index].1 = at - 1;
        table.ranges.insert(at_index + 1, (at, last, right));
        st.epoch = epoch;
        drop(table);
        // 4. Unlock: queued commands for moved slots get Moved and re-route.
        drop(st);
        self.note_change(&[id, new_id], "split", reason);
        Ok(new_id)
    }

    /// Merges partition `right_id` into its left neighbour `left_id`.
    pub fn merge(&self, left_id: u64, right_id: u64) -> Result<(), String> {
        let ranges = self.ranges();
        let find = |id| ranges.iter().position(|(_, _, h)| h.id() == id);
        let (Some(li), Some(ri)) = (find(left_id), find(right_id)) else {
            return Err("partition gone".into());
        };
        if ri != li + 1 {
            return Err(format!(
                "partitions {left_id} and {right_id} are not adjacent"
            ));
        }
        let (Some(left), Some(right)) = (ranges[li].2.in_process(), ranges[ri].2.in_process())
        else {
            return Err("remote partitions merge on their node".into());
        };
        let (Some(mut lst), Some(mut rst)) = (left.state.try_lock(), right.state.try_lock()) else {
            return Err("partitions are busy".into());
        };
        if lst.retired || rst.retired || lst.ks.last_slot() + 1 != rst.ks.first_slot() {
            return Err("partitions changed".into());
        }
        let first = rst.ks.first_slot();
        let right_ks = std::mem::replace(&mut rst.ks, Keyspace::new(first, first));
        lst.ks.absorb(right_ks);
        rst.retired = true;
        let mut table = self.routing.write();
        table.epoch += 1;
        let epoch = table.epoch;
        let li = table
            .ranges
            .iter()
            .position(|(_, _, h)| h.id() == left_id)
            .ok_or("routing lost a partition")?;
        table.ranges[li].1 = table.ranges[li + 1].1;
        table.ranges.remove(li + 1);
        lst.epoch = epoch;
        rst.epoch = epoch;
        drop(table);
        drop(rst);
        drop(lst);
        self.note_change(&[left_id], "merge", "cold");
        Ok(())
    }
}

/// Whether a batch runs a script (EVAL, FCALL...).
fn runs_script(cmds: &[(&'static CommandSpec, &[Bytes])]) -> bool {
    cmds.iter()
        .any(|(spec, _)| spec.family == cmd::Family::Scripting)
}

/// The function a batch calls (`FCALL`), as `FUNCTION STATS` shows it.
fn running_function<A: AsRef<[Bytes]>>(
    cmds: &[(&'static CommandSpec, A)],
) -> Option<cmd::script::RunningFunction> {
    cmds.iter()
        .find(|(spec, _)| spec.name.starts_with("fcall"))
        .map(|(_, a)| {
            let a = a.as_ref();
            cmd::script::RunningFunction {
                name: a.get(1).cloned().unwrap_or_default(),
                // Without what the proxy appended (flags and id, code).
                command: a[..a.len().saturating_sub(2)].to_vec(),
            }
        })
}

/// Groups key indexes by the partition `locate` finds for each, with
/// their slots, in the order partitions are first met.
fn group_by_partition(
    keys: &[usize],
    mut locate: impl FnMut(usize) -> (PartitionHandle, u16),
) -> Vec<(PartitionHandle, Vec<usize>, Vec<u16>)> {
    let mut groups: Vec<(PartitionHandle, Vec<usize>, Vec<u16>)> = Vec::new();
    for &k in keys {
        let (part, slot) = locate(k);
        match groups.iter_mut().find(|(p, _, _)| p.id() == part.id()) {
            Some((_, keys, slots)) => {
                keys.push(k);
                slots.push(slot);
            }
            None => groups.push((part, vec![k], vec![slot])),
        }
    }
    groups
}

/// Merges fanned-out replies (each with the key indexes it answers) as the
/// command's [`cmd::table::FanIn`] says; the first error wins.
fn merge(how: cmd::table::FanIn, parts: Vec<(Vec<usize>, Reply)>, keys: usize) -> Reply {
    use cmd::table::FanIn;
    if let Some((_, e)) = parts.iter().find(|(_, r)| r.is_error()) {
        return e.clone();
    }
    match how {
        FanIn::PerKey => {
            let mut out = vec![Reply::Nil; keys];
            for (k, r) in parts {
                if let Reply::Array(items) = r {
                    for (i, item) in k.into_iter().zip(items) {
                        out[i] = item;
                    }
                }
            }
            Reply::Array(out)
        }
        FanIn::Sum => Reply::Int(
            parts
                .iter()
                .map(|(_, r)| if let Reply::Int(n) = r { *n } else { 0 })
                .sum(),
        ),
        FanIn::Same => parts.into_iter().next().map_or(Reply::Nil, |(_, r)| r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Reply {
        Reply::bulk_slice(s.as_bytes())
    }

    /// Fanned-out replies come back together as the command's kind says:
    /// per-key replies in the keys' order whatever order the parts
    /// arrived in, counts added, one status; the first error wins.
    #[test]
    fn fanned_out_replies_merge_by_the_commands_kind() {
        use cmd::table::FanIn;
        let parts = vec![
            (vec![1, 3], Reply::Array(vec![b("b"), Reply::Nil])),
            (vec![0, 2], Reply::Array(vec![b("a"), b("c")])),
        ];
        assert_eq!(
            merge(FanIn::PerKey, parts, 4),
            Reply::Array(vec![b("a"), b("b"), b("c"), Reply::Nil])
        );
        let counts = vec![(vec![0], Reply::Int(1)), (vec![1, 2], Reply::Int(2))];
        assert_eq!(merge(FanIn::Sum, counts, 3), Reply::Int(3));
        let oks = vec![(vec![0], Reply::ok()), (vec![1], Reply::ok())];
        assert_eq!(merge(FanIn::Same, oks, 2), Reply::ok());
        let failed = vec![
            (vec![0], Reply::Int(1)),
            (vec![1], Reply::err("WRONGTYPE x")),
            (vec![2], Reply::err("ERR y")),
        ];
        assert_eq!(merge(FanIn::Sum, failed, 3), Reply::err("WRONGTYPE x"));
        // The kind comes from the command table, not from the replies.
        let spec = |name: &str| cmd::table::lookup(name.as_bytes()).expect(name);
        assert_eq!(spec("mget").fan_in(), Some(FanIn::PerKey));
        assert_eq!(spec("mset").fan_in(), Some(FanIn::Same));
        assert_eq!(spec("del").fan_in(), Some(FanIn::Sum));
        assert_eq!(spec("get").fan_in(), None);
    }

    /// Keys are grouped by the partition owning each, partitions in the
    /// order first met, each key's slot kept with it.
    #[test]
    fn keys_group_by_their_partition() {
        let pool = CachePool::new(2);
        let keys: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d", b"e"];
        let groups = group_by_partition(&[0, 1, 2, 3, 4], |k| {
            let slot = key_slot(keys[k]);
            (pool.route(slot), slot)
        });
        let total: usize = groups.iter().map(|(_, k, _)| k.len()).sum();
        assert_eq!(total, 5);
        for (part, idx, slots) in &groups {
            assert_eq!(idx.len(), slots.len());
            for (k, slot) in idx.iter().zip(slots) {
                assert_eq!(*slot, key_slot(keys[*k]));
                assert_eq!(pool.route(*slot).id(), part.id());
            }
        }
        let ids: Vec<u64> = groups.iter().map(|(p, _, _)| p.id()).collect();
        assert_eq!(ids[0], pool.route(key_slot(b"a")).id(), "first met first");
        assert!(ids.len() <= 2 && ids.windows(2).all(|w| w[0] != w[1]));
    }

    /// A command sent to a partition that no longer owns its slot (a
    /// caller holding a stale table) is refused with the new epoch and
    /// runs once re-routed; nothing ran in the stale partition.
    #[tokio::test]
    async fn a_stale_route_is_refused_then_rerouted() {
        let pool = CachePool::new(1);
        let key = Bytes::from_static(b"k");
        let slot = key_slot(&key);
        let set = cmd::table::lookup(b"set").unwrap();
        let get = cmd::table::lookup(b"get").unwrap();
        let opts = ExecOptions::new(crate::partition::now_ms());
        let set_args = [
            Bytes::from_static(b"SET"),
            key.clone(),
            Bytes::from_static(b"v"),
        ];
        let done = pool.execute(set, &set_args, slot, &opts).await;
        assert_eq!(done.reply, Reply::ok());
        let stale = pool.route(slot);
        let before = pool.epoch();
        // Split so that the key's slot moves to the new partition.
        let at = if slot == 0 { 1 } else { slot };
        let new = pool.split(stale.id(), at, "size").expect("split");
        assert!(pool.epoch() > before);
        let get_args = [Bytes::from_static(b"GET"), key.clone()];
        if slot != 0 {
            match pool
                .run_in(&stale, &[(get, &get_args)], &[slot], &[], &opts)
                .await
            {
                Err(NotRun::Moved(m)) => assert_eq!(m.epoch, pool.epoch()),
                Err(other) => panic!("a stale route is refused with Moved: {other:?}"),
                Ok(_) => panic!("a stale route is refused with Moved, it ran"),
            }
            assert_eq!(pool.route(slot).id(), new);
        }
        let done = pool.execute(get, &get_args, slot, &opts).await;
        assert_eq!(done.reply, b("v"));
    }

    /// A key watched again after all its watchers left gets a version
    /// never handed out before, and a write moves it on: a watcher whose
    /// registration was lost (a proxy's connection to the node ended) can
    /// never match it, so its EXEC aborts rather than runs.
    #[test]
    fn a_rewatched_key_gets_a_fresh_version() {
        let events = KeyEvents::default();
        let first = events.watch(b"k");
        assert_ne!(first, 0, "0 is what an unwatched key reads");
        events.unwatch(b"k");
        assert_eq!(events.version(b"k"), 0);
        let second = events.watch(b"k");
        assert_ne!(first, second);
        assert_eq!(events.version(b"k"), second);
        events.touched(std::iter::once(&b"k"[..]));
        let third = events.version(b"k");
        assert!(third != second && third != first);
    }
}
