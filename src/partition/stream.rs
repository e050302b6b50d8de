//! Streams: an append-only log of field-value entries keyed by increasing
//! IDs, plus consumer groups with their pending-entry lists (PELs).
//!
//! - [`Log`] owns the entries (a B-tree by [`StreamId`]), the last generated
//!   ID, the largest deleted ID and the count of entries ever added.
//! - [`Group`] owns one consumer group: its last delivered ID, its logical
//!   read counter (for `lag`), its PEL (ID → owner, delivery time, count)
//!   and its consumers (each with the IDs it owns).
//!
//! Invariants: every ID in the log is ≤ `last_id`; an ID is in a group's PEL
//! iff it is in exactly one of its consumers' sets, the one the PEL entry
//! names; PEL entries may outlive the log entry (XDEL does not touch PELs, as
//! in Redis). Byte totals are exact and O(1) to read: the log keeps its own,
//! each group keeps its own, and the stream keeps the sum of its groups'
//! (updated around every group operation by [`StreamValue::group_mut`]).
//! Streams, unlike other collections, may exist empty.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

/// Bytes charged per entry on top of its encoded fields: the B-tree slot
/// (16-byte ID, 16-byte pointer, node overhead amortized) and the entry's
/// heap block (header and rounding).
pub const STREAM_ENTRY_OVERHEAD: usize = 64;
/// Bytes charged per field and per value of an entry: the 4-byte length
/// prefix of the encoding.
pub const STREAM_FIELD_OVERHEAD: usize = 4;
/// Entries per node of Redis's stream layout (stream-node-max-entries): an
/// approximate (`~`) trim removes whole nodes only, and Stratus keeps the
/// same node boundaries so such trims remove what Redis would.
pub const NODE_ENTRIES: u32 = 100;
/// Bytes charged per consumer group on top of its name.
pub const GROUP_OVERHEAD: usize = 128;
/// Bytes charged per consumer on top of its name.
pub const CONSUMER_OVERHEAD: usize = 96;
/// Bytes charged per pending entry on top of its owner's name (which the
/// entry stores): the group PEL slot and the owner's PEL slot.
pub const PENDING_OVERHEAD: usize = 96;

/// An entry ID: milliseconds and a sequence number, ordered as a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID in order, `None` after [`StreamId::MAX`].
    pub fn next(self) -> Option<StreamId> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => self.ms.checked_add(1).map(|ms| StreamId { ms, seq: 0 }),
        }
    }

    /// The previous ID in order, `None` before [`StreamId::ZERO`].
    pub fn prev(self) -> Option<StreamId> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => self
                .ms
                .checked_sub(1)
                .map(|ms| StreamId { ms, seq: u64::MAX }),
        }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::ZERO
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// How XADD names a new entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSpec {
    /// `*`: the current time, or the last ID's ms with the next sequence.
    Auto,
    /// `<ms>-*`: these milliseconds, the next free sequence.
    AutoSeq(u64),
    /// `<ms>-<seq>` (or `<ms>`, sequence 0).
    Explicit(StreamId),
}

/// Why XADD cannot name a new entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddError {
    /// The ID is not above the last one.
    NotGreater,
    /// The explicit ID is 0-0.
    Zero,
    /// The last ID is the largest possible.
    Exhausted,
}

/// An entry's fields and values, encoded in one block: for each string a
/// 4-byte little-endian length, then its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields(Box<[u8]>);

impl Fields {
    /// Encodes alternating fields and values.
    pub fn encode<B: AsRef<[u8]>>(items: &[B]) -> Fields {
        let size = items
            .iter()
            .map(|s| s.as_ref().len() + STREAM_FIELD_OVERHEAD)
            .sum();
        let mut out = Vec::with_capacity(size);
        for s in items {
            let s = s.as_ref();
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s);
        }
        Fields(out.into())
    }

    /// The strings in order: field, value, field, value...
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = &self.0[..];
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = (u32::from_le_bytes(*len) as usize).min(tail.len());
            let (s, tail) = tail.split_at(len);
            rest = tail;
            Some(s)
        })
    }

    fn mem_bytes(&self) -> usize {
        self.0.len() + STREAM_ENTRY_OVERHEAD
    }
}

/// How XADD/XTRIM trim: keep at most `MaxLen` entries, or drop IDs below `MinId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

/// One node of Redis's stream layout: entries appended until it has held
/// stream-node-max-entries of them (deleted ones included); it goes away
/// when none is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Node {
    last: StreamId,
    inserted: u32,
    live: u32,
}

/// The entries of a stream (see the module doc).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log {
    entries: BTreeMap<StreamId, Fields>,
    /// Node boundaries, oldest first (they cost a few bytes per 100 entries,
    /// inside [`STREAM_ENTRY_OVERHEAD`]).
    nodes: VecDeque<Node>,
    last_id: StreamId,
    max_deleted: StreamId,
    entries_added: u64,
    bytes: usize,
}

impl Log {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last_id(&self) -> StreamId {
        self.last_id
    }

    pub fn max_deleted(&self) -> StreamId {
        self.max_deleted
    }

    pub fn entries_added(&self) -> u64 {
        self.entries_added
    }

    /// How many nodes Redis's layout would hold (XINFO's radix-tree-keys).
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The first entry's ID, 0-0 when empty (Redis's `first_id`).
    pub fn first_id(&self) -> StreamId {
        self.entries
            .first_key_value()
            .map_or(StreamId::ZERO, |(id, _)| *id)
    }

    pub fn first(&self) -> Option<(StreamId, &Fields)> {
        self.entries.first_key_value().map(|(id, f)| (*id, f))
    }

    pub fn last(&self) -> Option<(StreamId, &Fields)> {
        self.entries.last_key_value().map(|(id, f)| (*id, f))
    }

    pub fn get(&self, id: StreamId) -> Option<&Fields> {
        self.entries.get(&id)
    }

    pub fn contains(&self, id: StreamId) -> bool {
        self.entries.contains_key(&id)
    }

    /// Entries with `start <= id <= end`, ascending (reverse it for XREVRANGE).
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
    ) -> impl DoubleEndedIterator<Item = (StreamId, &Fields)> {
        let range = (start <= end).then(|| self.entries.range(start..=end));
        range.into_iter().flatten().map(|(id, f)| (*id, f))
    }

    /// The ID XADD would give a new entry.
    pub fn next_id(&self, spec: IdSpec, now: u64) -> Result<StreamId, AddError> {
        let last = self.last_id;
        match spec {
            IdSpec::Auto if now > last.ms => Ok(StreamId::new(now, 0)),
            IdSpec::Auto => last.next().ok_or(AddError::Exhausted),
            IdSpec::AutoSeq(ms) if ms > last.ms => Ok(StreamId::new(ms, 0)),
            IdSpec::AutoSeq(ms) if ms == last.ms => match last.seq.checked_add(1) {
                Some(seq) => Ok(StreamId::new(ms, seq)),
                None if last == StreamId::MAX => Err(AddError::Exhausted),
                None => Err(AddError::NotGreater),
            },
            IdSpec::AutoSeq(_) => Err(AddError::NotGreater),
            IdSpec::Explicit(id) if id.is_zero() => Err(AddError::Zero),
            IdSpec::Explicit(id) if id <= last => Err(AddError::NotGreater),
            IdSpec::Explicit(id) => Ok(id),
        }
    }

    /// Appends an entry in nodes of [`NODE_ENTRIES`] (Redis's default).
    pub fn append(&mut self, id: StreamId, fields: Fields) {
        self.append_in_nodes(id, fields, u64::from(NODE_ENTRIES));
    }

    /// Appends an entry; `id` comes from [`Log::next_id`]. A new node starts
    /// when the last one has held `node_entries` (the cache's
    /// stream-node-max-entries; 0 = no limit).
    pub fn append_in_nodes(&mut self, id: StreamId, fields: Fields, node_entries: u64) {
        debug_assert!(id > self.last_id || (self.last_id.is_zero() && !id.is_zero()));
        let node_entries = match node_entries {
            0 => u32::MAX,
            n => u32::try_from(n).unwrap_or(u32::MAX),
        };
        self.bytes += fields.mem_bytes();
        self.entries.insert(id, fields);
        self.last_id = id;
        self.entries_added += 1;
        match self.nodes.back_mut() {
            Some(n) if n.inserted < node_entries => {
                n.inserted += 1;
                n.live += 1;
                n.last = id;
            }
            _ => self.nodes.push_back(Node {
                last: id,
                inserted: 1,
                live: 1,
            }),
        }
    }

    /// Bookkeeping for entry `id` leaving node `at`.
    fn forget_in_node(&mut self, at: usize) {
        if let Some(n) = self.nodes.get_mut(at) {
            n.live -= 1;
            if n.live == 0 {
                self.nodes.remove(at);
            }
        }
    }

    /// Removes the first entry.
    fn pop_first(&mut self) {
        if let Some((_, f)) = self.entries.pop_first() {
            self.bytes -= f.mem_bytes();
            self.forget_in_node(0);
        }
    }

    /// XDEL one ID; true if it was there.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some(f) = self.entries.remove(&id) else {
            return false;
        };
        self.bytes -= f.mem_bytes();
        self.max_deleted = self.max_deleted.max(id);
        let at = self.nodes.partition_point(|n| n.last < id);
        self.forget_in_node(at);
        true
    }

    /// Removes entries from the front as `trim` says, at most `limit` of
    /// them (0 = no limit); returns how many were removed. An `approx` trim
    /// (`~`) removes whole nodes only, as Redis does, so it may leave more
    /// than asked.
    pub fn trim(&mut self, trim: Trim, limit: usize, approx: bool) -> usize {
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut removed = 0;
        loop {
            let (len, node) = (self.entries.len(), self.nodes.front().copied());
            let Some(node) = node else { break };
            // Approximate: the whole head node, or nothing. Exact: one entry.
            let (take, fits) = if approx {
                let take = node.live as usize;
                let fits = match trim {
                    Trim::MaxLen(n) => (len - take) as u64 >= n,
                    Trim::MinId(min) => node.last < min,
                };
                (take, fits)
            } else {
                let fits = match (trim, self.entries.first_key_value()) {
                    (Trim::MaxLen(n), _) => len as u64 > n,
                    (Trim::MinId(min), Some((id, _))) => *id < min,
                    (Trim::MinId(_), None) => false,
                };
                (1, fits)
            };
            if !fits || removed + take > limit {
                break;
            }
            for _ in 0..take {
                self.pop_first();
            }
            removed += take;
        }
        removed
    }

    /// Sets the last ID (XSETID); the caller checks it is not below the top entry.
    pub fn set_last_id(&mut self, id: StreamId) {
        self.last_id = id;
    }

    /// XSETID's ENTRIESADDED and MAXDELETEDID (the caller checks them).
    pub fn set_counters(&mut self, entries_added: Option<u64>, max_deleted: Option<StreamId>) {
        if let Some(n) = entries_added {
            self.entries_added = n;
        }
        if let Some(id) = max_deleted {
            self.max_deleted = id;
        }
    }

    /// Whether a deleted ID may lie at or after `start` (Redis's
    /// `streamRangeHasTombstones` with no end).
    fn has_tombstones_from(&self, start: StreamId) -> bool {
        !self.is_empty()
            && !self.max_deleted.is_zero()
            && self.first_id() <= self.max_deleted
            && start <= self.max_deleted
    }

    /// The logical read counter of `id`, when it can be known (Redis's
    /// `streamEstimateDistanceFromFirstEverEntry`).
    pub fn read_counter_of(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.is_empty() && id <= self.last_id {
            return Some(self.entries_added);
        }
        if id == self.last_id {
            return Some(self.entries_added);
        }
        if id > self.last_id {
            return None;
        }
        let first = self.first_id();
        if self.max_deleted.is_zero() || self.max_deleted < first {
            let before = self.entries_added - self.len() as u64;
            if id < first {
                return Some(before);
            }
            if id == first {
                return Some(before + 1);
            }
        }
        None
    }
}

/// One pending (delivered, unacknowledged) entry of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub consumer: Box<[u8]>,
    /// Unix ms of the last delivery.
    pub delivered_at: u64,
    pub deliveries: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumer {
    /// Unix ms of the consumer's last interaction.
    pub seen_at: u64,
    pending: BTreeSet<StreamId>,
}

impl Consumer {
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

/// XCLAIM's options, parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimOpts {
    pub min_idle: u64,
    /// Delivery time to record (from IDLE or TIME), else now.
    pub delivered_at: Option<u64>,
    pub retry_count: Option<u64>,
    pub force: bool,
    pub justid: bool,
    pub last_id: Option<StreamId>,
}

/// XAUTOCLAIM's arguments, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoClaimOpts {
    /// First PEL ID to examine.
    pub start: StreamId,
    /// Most entries to claim (PEL entries examined: ten times as many).
    pub count: usize,
    pub min_idle: u64,
    pub justid: bool,
}

/// What XAUTOCLAIM did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoClaimed {
    pub claimed: Vec<StreamId>,
    pub deleted: Vec<StreamId>,
    /// Where the next call should start (0-0 when the PEL was walked to its end).
    pub next: StreamId,
    /// PEL entries examined (metered as work).
    pub walked: usize,
}

/// A consumer group (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    last_delivered: StreamId,
    entries_read: Option<u64>,
    pending: BTreeMap<StreamId, Pending>,
    consumers: BTreeMap<Box<[u8]>, Consumer>,
    bytes: usize,
}

impl Group {
    fn new(name: &[u8], last_delivered: StreamId, entries_read: Option<u64>) -> Group {
        Group {
            last_delivered,
            entries_read,
            pending: BTreeMap::new(),
            consumers: BTreeMap::new(),
            bytes: name.len() + GROUP_OVERHEAD,
        }
    }

    pub fn last_delivered(&self) -> StreamId {
        self.last_delivered
    }

    pub fn entries_read(&self) -> Option<u64> {
        self.entries_read
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn consumers(&self) -> impl ExactSizeIterator<Item = (&[u8], &Consumer)> {
        self.consumers.iter().map(|(n, c)| (&n[..], c))
    }

    pub fn consumer(&self, name: &[u8]) -> Option<&Consumer> {
        self.consumers.get(name)
    }

    /// The group PEL from `start` to `end`, ascending.
    pub fn pending_range(
        &self,
        start: StreamId,
        end: StreamId,
    ) -> impl DoubleEndedIterator<Item = (StreamId, &Pending)> {
        let range = (start <= end).then(|| self.pending.range(start..=end));
        range.into_iter().flatten().map(|(id, p)| (*id, p))
    }

    /// One consumer's PEL from `start` to `end`, ascending.
    pub fn consumer_pending_range(
        &self,
        consumer: &[u8],
        start: StreamId,
        end: StreamId,
    ) -> impl Iterator<Item = (StreamId, &Pending)> {
        let ids = self
            .consumers
            .get(consumer)
            .filter(|_| start <= end)
            .map(|c| c.pending.range(start..=end));
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.pending.get(id).map(|p| (*id, p)))
    }

    /// The lag of the group behind the stream's end, when it can be known
    /// (XINFO GROUPS).
    pub fn lag(&self, log: &Log) -> Option<i64> {
        if log.entries_added == 0 {
            return Some(0);
        }
        let read = match self.entries_read {
            Some(read) if !log.has_tombstones_from(self.last_delivered) => Some(read),
            _ => log.read_counter_of(self.last_delivered),
        }?;
        Some(log.entries_added as i64 - read as i64)
    }

    /// Creates `name` if missing; true if created.
    pub fn create_consumer(&mut self, name: &[u8], now: u64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(
            name.into(),
            Consumer {
                seen_at: now,
                pending: BTreeSet::new(),
            },
        );
        self.bytes += name.len() + CONSUMER_OVERHEAD;
        true
    }

    /// Deletes a consumer and its pending entries; returns how many it had.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pending {
            if self.pending.remove(id).is_some() {
                self.bytes -= PENDING_OVERHEAD + name.len();
            }
        }
        self.bytes -= name.len() + CONSUMER_OVERHEAD;
        Some(c.pending.len())
    }

    /// RESTORE: records PEL entry `id` as owned by `consumer` (created,
    /// seen at `seen_at`, if missing) with its delivery time and count.
    pub fn restore_pending(
        &mut self,
        id: StreamId,
        consumer: &[u8],
        seen_at: u64,
        delivered_at: u64,
        deliveries: u64,
    ) {
        self.create_consumer(consumer, seen_at);
        let p = self.assign(id, consumer);
        p.delivered_at = delivered_at;
        p.deliveries = deliveries;
    }

    /// The IDs `consumer` owns, ascending (DUMP).
    pub fn consumer_ids(&self, consumer: &[u8]) -> impl Iterator<Item = StreamId> + '_ {
        self.consumers
            .get(consumer)
            .into_iter()
            .flat_map(|c| c.pending.iter().copied())
    }

    /// XGROUP SETID.
    pub fn set_last_delivered(&mut self, id: StreamId, entries_read: Option<u64>) {
        self.last_delivered = id;
        self.entries_read = entries_read;
    }

    fn touch(&mut self, consumer: &[u8], now: u64) {
        self.create_consumer(consumer, now);
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.seen_at = now;
        }
    }

    /// Gives PEL entry `id` to `consumer` (creating the entry if needed),
    /// keeping both PELs and the byte total right. The consumer exists.
    fn assign(&mut self, id: StreamId, consumer: &[u8]) -> &mut Pending {
        let old_owner = self.pending.get(&id).map(|p| p.consumer.clone());
        match old_owner {
            Some(owner) if &owner[..] == consumer => {}
            Some(owner) => {
                if let Some(c) = self.consumers.get_mut(&owner) {
                    c.pending.remove(&id);
                }
                self.bytes = self.bytes - owner.len() + consumer.len();
                if let Some(p) = self.pending.get_mut(&id) {
                    p.consumer = consumer.into();
                }
            }
            None => {
                self.pending.insert(
                    id,
                    Pending {
                        consumer: consumer.into(),
                        delivered_at: 0,
                        deliveries: 0,
                    },
                );
                self.bytes += PENDING_OVERHEAD + consumer.len();
            }
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pending.insert(id);
        }
        self.pending.entry(id).or_insert_with(|| Pending {
            consumer: consumer.into(),
            delivered_at: 0,
            deliveries: 0,
        })
    }

    /// Drops PEL entry `id` wherever it is; true if it was pending.
    fn unassign(&mut self, id: StreamId) -> bool {
        let Some(p) = self.pending.remove(&id) else {
            return false;
        };
        if let Some(c) = self.consumers.get_mut(&p.consumer) {
            c.pending.remove(&id);
        }
        self.bytes -= PENDING_OVERHEAD + p.consumer.len();
        true
    }

    /// XREADGROUP `>`: delivers up to `count` entries after the last
    /// delivered one to `consumer`; returns their IDs.
    pub fn read_new(
        &mut self,
        log: &Log,
        consumer: &[u8],
        count: usize,
        noack: bool,
        now: u64,
    ) -> Vec<StreamId> {
        let Some(from) = self.last_delivered.next() else {
            return Vec::new();
        };
        let ids: Vec<StreamId> = log
            .range(from, StreamId::MAX)
            .take(count)
            .map(|(id, _)| id)
            .collect();
        // As Redis 7.0: a read that finds nothing new does not see the consumer.
        if !ids.is_empty() {
            self.touch(consumer, now);
        }
        for &id in &ids {
            // Advance the group, keeping its logical read counter when it can.
            self.entries_read = match self.entries_read {
                Some(read) if !log.has_tombstones_from(id) => Some(read + 1),
                _ if log.entries_added > 0 => log.read_counter_of(id),
                other => other,
            };
            self.last_delivered = id;
            if !noack {
                let p = self.assign(id, consumer);
                p.delivered_at = now;
                p.deliveries = 1;
            }
        }
        ids
    }

    /// XREADGROUP with an ID: `consumer`'s own pending entries after `after`
    /// (up to `count`), counted as delivered again.
    pub fn read_history(
        &mut self,
        consumer: &[u8],
        after: StreamId,
        count: usize,
        now: u64,
    ) -> Vec<StreamId> {
        self.touch(consumer, now);
        let Some(from) = after.next() else {
            return Vec::new();
        };
        let ids: Vec<StreamId> = self
            .consumers
            .get(consumer)
            .map(|c| c.pending.range(from..).take(count).copied().collect())
            .unwrap_or_default();
        for id in &ids {
            if let Some(p) = self.pending.get_mut(id) {
                p.delivered_at = now;
                p.deliveries = p.deliveries.saturating_add(1);
            }
        }
        ids
    }

    /// XACK: how many of `ids` were pending.
    pub fn ack(&mut self, ids: &[StreamId]) -> usize {
        ids.iter().filter(|id| self.unassign(**id)).count()
    }

    /// XCLAIM: gives `consumer` the pending entries among `ids` idle for at
    /// least `min_idle`; entries no longer in the log leave the PEL. Returns
    /// the IDs claimed, in the order given.
    pub fn claim(
        &mut self,
        log: &Log,
        consumer: &[u8],
        ids: &[StreamId],
        opts: &ClaimOpts,
        now: u64,
    ) -> Vec<StreamId> {
        if let Some(last) = opts.last_id
            && last > self.last_delivered
        {
            self.last_delivered = last;
        }
        let delivered_at = opts.delivered_at.filter(|t| *t <= now).unwrap_or(now);
        let mut claimed = Vec::new();
        for &id in ids {
            let pending_since = self.pending.get(&id).map(|p| p.delivered_at);
            if !log.contains(id) {
                self.unassign(id);
                continue;
            }
            let forced = pending_since.is_none();
            if forced && !opts.force {
                continue;
            }
            if let Some(since) = pending_since
                && opts.min_idle > 0
                && now.saturating_sub(since) < opts.min_idle
            {
                continue;
            }
            self.touch(consumer, now);
            let p = self.assign(id, consumer);
            if forced {
                p.deliveries = 1;
            }
            p.delivered_at = delivered_at;
            match opts.retry_count {
                Some(n) => p.deliveries = n,
                None if !opts.justid => p.deliveries = p.deliveries.saturating_add(1),
                None => {}
            }
            claimed.push(id);
        }
        claimed
    }

    /// XAUTOCLAIM: walks the PEL from `start`, claiming for `consumer` up to
    /// `count` entries idle for at least `min_idle`, examining at most
    /// `count * 10`; entries no longer in the log leave the PEL (and count).
    pub fn auto_claim(
        &mut self,
        log: &Log,
        consumer: &[u8],
        opts: &AutoClaimOpts,
        now: u64,
    ) -> AutoClaimed {
        let AutoClaimOpts {
            start,
            count,
            min_idle,
            justid,
        } = *opts;
        let mut out = AutoClaimed::default();
        let mut attempts = count.saturating_mul(10);
        let mut left = count;
        let mut cursor = Some(start);
        while attempts > 0 && left > 0 {
            attempts -= 1;
            let Some(from) = cursor else { break };
            let Some((id, since)) = self
                .pending
                .range(from..)
                .next()
                .map(|(id, p)| (*id, p.delivered_at))
            else {
                cursor = None;
                break;
            };
            cursor = id.next();
            out.walked += 1;
            if !log.contains(id) {
                self.unassign(id);
                out.deleted.push(id);
                left -= 1;
                continue;
            }
            if min_idle > 0 && now.saturating_sub(since) < min_idle {
                continue;
            }
            self.touch(consumer, now);
            let p = self.assign(id, consumer);
            p.delivered_at = now;
            if !justid {
                p.deliveries = p.deliveries.saturating_add(1);
            }
            out.claimed.push(id);
            left -= 1;
        }
        out.next = cursor
            .and_then(|from| self.pending.range(from..).next().map(|(id, _)| *id))
            .unwrap_or(StreamId::ZERO);
        out
    }
}

/// A stream: its log and its consumer groups (see the module doc).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamValue {
    log: Log,
    groups: BTreeMap<Box<[u8]>, Group>,
    group_bytes: usize,
}

impl StreamValue {
    pub fn mem_bytes(&self) -> usize {
        self.log.bytes + self.group_bytes
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The log, for appends, deletes and trims (groups are not touched).
    pub fn log_mut(&mut self) -> &mut Log {
        &mut self.log
    }

    pub fn groups(&self) -> impl ExactSizeIterator<Item = (&[u8], &Group)> {
        self.groups.iter().map(|(n, g)| (&n[..], g))
    }

    pub fn group(&self, name: &[u8]) -> Option<&Group> {
        self.groups.get(name)
    }

    /// Runs `f` on group `name` with the log, keeping the byte total exact;
    /// `None` if there is no such group.
    pub fn group_mut<T>(
        &mut self,
        name: &[u8],
        f: impl FnOnce(&mut Group, &Log) -> T,
    ) -> Option<T> {
        let g = self.groups.get_mut(name)?;
        let before = g.bytes;
        let out = f(g, &self.log);
        self.group_bytes = self.group_bytes - before + g.bytes;
        Some(out)
    }

    /// XGROUP CREATE; false if the group exists. `entries_read` `None` means
    /// unknown (Redis's -1).
    pub fn create_group(&mut self, name: &[u8], id: StreamId, entries_read: Option<u64>) -> bool {
        if self.groups.contains_key(name) {
            return false;
        }
        let g = Group::new(name, id, entries_read);
        self.group_bytes += g.bytes;
        self.groups.insert(name.into(), g);
        true
    }

    /// XGROUP DESTROY; true if the group existed.
    pub fn destroy_group(&mut self, name: &[u8]) -> bool {
        match self.groups.remove(name) {
            Some(g) => {
                self.group_bytes -= g.bytes;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    #[test]
    fn ids_order_and_step() {
        assert!(id(1, 5) < id(2, 0));
        assert_eq!(id(1, u64::MAX).next(), Some(id(2, 0)));
        assert_eq!(StreamId::MAX.next(), None);
        assert_eq!(id(2, 0).prev(), Some(id(1, u64::MAX)));
        assert_eq!(StreamId::ZERO.prev(), None);
        assert_eq!(id(7, 3).to_string(), "7-3");
    }

    #[test]
    fn next_id_like_redis() {
        let mut log = Log::default();
        assert_eq!(log.next_id(IdSpec::Auto, 100), Ok(id(100, 0)));
        assert_eq!(
            log.next_id(IdSpec::Explicit(StreamId::ZERO), 0),
            Err(AddError::Zero)
        );
        log.append(id(100, 0), Fields::encode(&["f", "v"]));
        assert_eq!(log.next_id(IdSpec::Auto, 50), Ok(id(100, 1)));
        assert_eq!(log.next_id(IdSpec::AutoSeq(100), 0), Ok(id(100, 1)));
        assert_eq!(
            log.next_id(IdSpec::AutoSeq(99), 0),
            Err(AddError::NotGreater)
        );
        assert_eq!(
            log.next_id(IdSpec::Explicit(id(100, 0)), 0),
            Err(AddError::NotGreater)
        );
        log.append(StreamId::MAX, Fields::encode(&["f", "v"]));
        assert_eq!(log.next_id(IdSpec::Auto, 0), Err(AddError::Exhausted));
        assert_eq!(
            log.next_id(IdSpec::AutoSeq(u64::MAX), 0),
            Err(AddError::Exhausted)
        );
    }

    #[test]
    fn approximate_trims_remove_whole_nodes() {
        let mut log = Log::default();
        for ms in 1..=250 {
            log.append(id(ms, 0), Fields::encode(&["f", "v"]));
        }
        assert_eq!(log.nodes(), 3);
        assert_eq!(log.trim(Trim::MaxLen(200), 0, true), 0);
        assert_eq!(
            log.trim(Trim::MaxLen(120), 50, true),
            0,
            "LIMIT below a node"
        );
        assert_eq!(log.trim(Trim::MaxLen(120), 0, true), 100);
        // An exact trim leaves a partial head node, which `~` then removes whole.
        assert_eq!(log.trim(Trim::MaxLen(140), 0, false), 10);
        assert!(log.delete(id(150, 0)));
        assert_eq!(log.trim(Trim::MinId(id(201, 0)), 0, true), 89);
        assert_eq!(log.len(), 50);
        assert_eq!(log.nodes(), 1);
        assert_eq!(log.trim(Trim::MaxLen(0), 0, true), 50);
        assert_eq!((log.len(), log.nodes(), log.bytes), (0, 0, 0));
        // Deleting every entry of a node drops the node.
        log.append(id(300, 0), Fields::encode(&["f", "v"]));
        assert!(log.delete(id(300, 0)));
        assert_eq!(log.nodes(), 0);
        log.append(id(301, 0), Fields::encode(&["f", "v"]));
        assert_eq!(log.nodes(), 1);
    }

    #[test]
    fn fields_round_trip() {
        let f = Fields::encode(&["a", "", "ccc", "dd"]);
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            vec![&b"a"[..], b"", b"ccc", b"dd"]
        );
    }

    #[test]
    fn bytes_are_exact_through_group_changes() {
        let mut s = StreamValue::default();
        for ms in 1..=5 {
            s.log_mut()
                .append(id(ms, 0), Fields::encode(&["field", "value"]));
        }
        let entry = STREAM_ENTRY_OVERHEAD + 2 * STREAM_FIELD_OVERHEAD + 10;
        assert_eq!(s.mem_bytes(), 5 * entry);
        assert!(s.create_group(b"g", StreamId::ZERO, Some(0)));
        s.group_mut(b"g", |g, log| g.read_new(log, b"alice", 3, false, 10));
        s.group_mut(b"g", |g, log| {
            g.claim(log, b"bob", &[id(2, 0)], &ClaimOpts::default(), 20)
        });
        let groups = (1 + GROUP_OVERHEAD)
            + (5 + CONSUMER_OVERHEAD)
            + (3 + CONSUMER_OVERHEAD)
            + 2 * (PENDING_OVERHEAD + 5)
            + (PENDING_OVERHEAD + 3);
        assert_eq!(s.mem_bytes(), 5 * entry + groups);
        assert_eq!(
            s.group_mut(b"g", |g, _| g.ack(&[id(1, 0), id(9, 9)])),
            Some(1)
        );
        assert_eq!(
            s.group_mut(b"g", |g, _| g.delete_consumer(b"bob")),
            Some(Some(1))
        );
        assert_eq!(
            s.group_mut(b"g", |g, _| g.delete_consumer(b"alice")),
            Some(Some(1))
        );
        assert_eq!(s.mem_bytes(), 5 * entry + 1 + GROUP_OVERHEAD);
        assert!(s.destroy_group(b"g"));
        assert_eq!(s.log_mut().trim(Trim::MaxLen(2), 0, true), 0);
        assert_eq!(s.log_mut().trim(Trim::MaxLen(2), 0, false), 3);
        assert!(s.log_mut().delete(id(4, 0)));
        assert_eq!(s.log_mut().trim(Trim::MinId(id(9, 0)), 0, false), 1);
        assert_eq!(s.mem_bytes(), 0);
        assert_eq!(s.log().max_deleted(), id(4, 0));
    }
}
