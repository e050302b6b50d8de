//! Where `stratus control` puts caches' partitions, and how it moves them
//! (DESIGN §13). Control owns each cache's routing table ([`Layout`]: slot
//! range → partition → node, with an epoch); nodes apply the tables it
//! sends ([`Request::Layout`]) and proxies read them from the nodes.
//!
//! - A new cache's partitions go to the nodes hosting the fewest, round
//!   robin, never to a draining node.
//! - A move ([`Placer::move_partition`]) carries a partition's slots from
//!   its node to another in chunks of at most [`MOVE_CHUNK`] bytes: the
//!   source exports its top slots (refusing them from then on), the
//!   destination imports them into the new partition, and control sends
//!   the new table to every node of the cache. At any instant at most
//!   one node accepts writes for a slot; an import that fails gives the
//!   slots back to the source.
//! - A split ([`Placer::split`]) happens on the partition's node; the new
//!   partition then moves to the least loaded node. A merge of partitions
//!   on two nodes first moves the right one to the left one's node.
//! - A drain ([`Placer::drain`]) moves every partition off a node and
//!   keeps new ones away from it.
//!
//! Every change of one cache holds that cache's table lock from start to
//! end: one change at a time per cache, each table newer than the last.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::link::{NodeClient, Nodes};
use crate::partition::{ClusterMode, SLOTS};
use crate::wire::{self, Request, Response};

/// Bytes carried per step of a move: small steps keep each slot's time in
/// transit (when no node serves it) to milliseconds.
pub const MOVE_CHUNK: u64 = 256 * 1024;

/// Tries of a step that a node refused because slow work held the
/// partition, and the pause between them.
const BUSY_TRIES: usize = 50;
const BUSY_PAUSE: Duration = Duration::from_millis(100);

/// Tries a drain gives one partition's move before leaving it in place.
const DRAIN_TRIES: usize = 3;

/// One node control places partitions on.
pub struct PlacedNode {
    /// What the API names it by (`node-1`, ... in `--nodes` order).
    pub id: String,
    pub client: Arc<NodeClient>,
    draining: AtomicBool,
    /// It joined through the metadata store (its lease keeps it a node).
    joined: bool,
}

impl PlacedNode {
    pub fn addr(&self) -> SocketAddr {
        self.client.addr()
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// A cache's routing table as control keeps it (and stores, as JSON, at
/// [`keys::routing`](crate::meta::keys::routing)).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    pub mode: ClusterMode,
    pub epoch: u64,
    /// Which cache of the name this is (a table of a deleted cache is
    /// never changed again).
    serial: u64,
    /// The next partition id to give.
    pub next_id: u64,
    /// The node proxies ask first for the table (the cache's first).
    pub entry: SocketAddr,
    /// Sorted by first slot; contiguous; covering every slot.
    pub ranges: Vec<Part>,
}

/// One partition in a [`Layout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Part {
    pub first: u16,
    pub last: u16,
    pub id: u64,
    pub node: SocketAddr,
}

impl Layout {
    fn find(&self, id: u64) -> Option<usize> {
        self.ranges.iter().position(|p| p.id == id)
    }

    /// Every node the table names, and the entry node.
    fn nodes(&self) -> Vec<SocketAddr> {
        let mut nodes: Vec<SocketAddr> = self.ranges.iter().map(|p| p.node).collect();
        nodes.push(self.entry);
        nodes.sort();
        nodes.dedup();
        nodes
    }

    fn request(&self, cache: &str, me: SocketAddr) -> Request {
        Request::Layout {
            cache: cache.to_string(),
            cluster_mode: self.mode,
            epoch: self.epoch,
            me: me.to_string(),
            ranges: self
                .ranges
                .iter()
                .map(|p| wire::Range {
                    first: p.first,
                    last: p.last,
                    partition: p.id,
                    node: p.node.to_string(),
                })
                .collect(),
        }
    }
}

/// Why a placement change was refused or failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlaceError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

/// Where control records each table before its nodes get it: the
/// metadata store, through control's keeper (a new leader starts from
/// what is recorded).
#[async_trait::async_trait]
pub trait Journal: Send + Sync {
    /// Whether this control may still change nodes (it leads).
    fn leading(&self) -> bool;
    async fn record(&self, cache: &str, layout: &Layout) -> Result<(), crate::meta::MetaError>;
    /// A move of `cache`'s partition begins (`Some`) or ends (`None`).
    async fn moving(
        &self,
        cache: &str,
        record: Option<&crate::meta::keys::MoveRecord>,
    ) -> Result<(), crate::meta::MetaError>;
}

/// How far a new leader's partition ids jump past each recorded table's.
const ID_JUMP: u64 = 1 << 16;

/// The pause between tries to record a table.
const RECORD_RETRY: Duration = Duration::from_millis(200);

/// How far a new leader's first epoch jumps past every recorded table:
/// tables the last leader sent but could not record stay older than the
/// new leader's.
pub const EPOCH_JUMP: u64 = 1 << 20;

/// Control's nodes and every cache's table.
pub struct Placer {
    /// `--nodes` first, then those that joined through the metadata store.
    nodes: parking_lot::RwLock<Vec<Arc<PlacedNode>>>,
    directory: Arc<Nodes>,
    layouts: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Layout>>>>,
    /// Each cache's table as last sent to its nodes (what the API shows,
    /// read without waiting for a change in progress).
    snapshots: parking_lot::Mutex<HashMap<String, Layout>>,
    /// The last epoch given to any table: every new table gets a higher
    /// one, so a cache deleted and made again under its name has tables
    /// newer than its predecessor's.
    epochs: AtomicU64,
    /// Tables a node did not get (cache, node): sent again each second
    /// ([`Placer::resend`]).
    unsent: parking_lot::Mutex<std::collections::HashSet<(String, SocketAddr)>>,
    /// Where tables are recorded before they are sent (set once).
    journal: std::sync::OnceLock<Arc<dyn Journal>>,
}

impl Placer {
    /// A placer over the nodes at `addrs`, connecting with the shared `key`.
    pub fn new(addrs: &[SocketAddr], key: Option<[u8; 32]>) -> Placer {
        let directory = Nodes::new(key);
        let nodes = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                Arc::new(PlacedNode {
                    id: format!("node-{}", i + 1),
                    client: directory.client(*a),
                    draining: AtomicBool::new(false),
                    joined: false,
                })
            })
            .collect();
        Placer {
            nodes: parking_lot::RwLock::new(nodes),
            directory,
            layouts: parking_lot::Mutex::new(HashMap::new()),
            snapshots: parking_lot::Mutex::new(HashMap::new()),
            epochs: AtomicU64::new(0),
            unsent: parking_lot::Mutex::new(std::collections::HashSet::new()),
            journal: std::sync::OnceLock::new(),
        }
    }

    /// Whether this control may change nodes now: it leads (always, with
    /// no journal).
    fn leading(&self) -> Result<(), PlaceError> {
        match self.journal.get() {
            Some(j) if !j.leading() => Err(PlaceError::Failed(
                "this control no longer leads: it changes no node".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Records every table in `journal` before its nodes get it.
    pub fn set_journal(&self, journal: Arc<dyn Journal>) {
        let _ = self.journal.set(journal);
    }

    /// Every cache's table as last sent to its nodes.
    pub fn tables(&self) -> Vec<(String, Layout)> {
        self.snapshots
            .lock()
            .iter()
            .map(|(name, l)| (name.clone(), l.clone()))
            .collect()
    }

    /// Takes over the recorded `tables` (a new leader): they become the
    /// caches' tables, and every table from now on has an epoch
    /// [`EPOCH_JUMP`] past theirs.
    pub fn restore(&self, tables: Vec<(String, Layout)>) {
        let top = tables.iter().map(|(_, l)| l.epoch).max().unwrap_or(0);
        self.epochs
            .fetch_max(top.saturating_add(EPOCH_JUMP), Ordering::AcqRel);
        for (name, mut layout) in tables {
            // Partition ids the last leader gave but did not record (a
            // move's destination) are never given again.
            layout.next_id += ID_JUMP;
            self.snapshots.lock().insert(name.clone(), layout.clone());
            self.layouts
                .lock()
                .insert(name, Arc::new(tokio::sync::Mutex::new(layout)));
        }
    }

    /// Makes the nodes that joined through the metadata store those of
    /// `members` (id, data-plane address): new ones join; one gone (its
    /// lease expired: dead, stopped or cut off past its TTL, and fenced by
    /// now) leaves, and its partitions go to the other nodes, empty — their
    /// data went with it (no replicas yet).
    pub async fn follow_members(&self, members: &[(String, SocketAddr)]) {
        {
            let mut nodes = self.nodes.write();
            nodes.retain(|n| {
                let keep = !n.joined || members.iter().any(|(id, a)| *id == n.id && *a == n.addr());
                if !keep {
                    tracing::warn!(node = %n.id, addr = %n.addr(), "node left (its lease expired)");
                }
                keep
            });
            for (id, addr) in members {
                if nodes.iter().any(|n| n.id == *id || n.addr() == *addr) {
                    continue;
                }
                tracing::info!(node = %id, %addr, "node joined");
                nodes.push(Arc::new(PlacedNode {
                    id: id.clone(),
                    client: self.directory.client(*addr),
                    draining: AtomicBool::new(false),
                    joined: true,
                }));
            }
        }
        // Tables naming a node that is no node (left now, or before this
        // control led).
        let known: Vec<SocketAddr> = self.nodes.read().iter().map(|n| n.addr()).collect();
        let mut orphaned: Vec<SocketAddr> = self
            .snapshots
            .lock()
            .values()
            .flat_map(|l| l.ranges.iter().map(|p| p.node).chain([l.entry]))
            .filter(|a| !known.contains(a))
            .collect();
        orphaned.sort();
        orphaned.dedup();
        for addr in orphaned {
            tracing::warn!(node = %addr, "partitions on a node that left go to other nodes, empty");
            self.reassign(addr).await;
        }
    }

    /// Gives every partition on `dead` to the open nodes (round robin):
    /// they serve again, empty.
    async fn reassign(&self, dead: SocketAddr) {
        let caches: Vec<String> = self
            .snapshots
            .lock()
            .iter()
            .filter(|(_, l)| l.entry == dead || l.ranges.iter().any(|p| p.node == dead))
            .map(|(name, _)| name.clone())
            .collect();
        for cache in caches {
            let Some(layout) = self.layout(&cache) else {
                continue;
            };
            let mut layout = layout.lock().await;
            if !self.current(&cache, &layout) {
                continue;
            }
            let open: Vec<SocketAddr> = self
                .open_nodes()
                .into_iter()
                .filter(|n| *n != dead)
                .collect();
            if open.is_empty() {
                tracing::error!(%cache, "no node left to take the partitions of a dead one");
                continue;
            }
            let orphans = layout.ranges.iter_mut().filter(|p| p.node == dead);
            for (i, part) in orphans.enumerate() {
                part.node = open[i % open.len()];
            }
            if layout.entry == dead {
                layout.entry = layout.ranges[0].node;
            }
            self.bump(&mut layout, 0);
            self.publish(&cache, &layout, &[]).await;
        }
    }

    /// Sends `cache`'s table again, with a new epoch, to its nodes and to
    /// `also` (a new leader, for every cache: the nodes of a move in
    /// flight). A step the recorded table has is finished (its slots are
    /// where it says), one it does not have is given back (the source
    /// takes its held slots back, the destination drops its copy).
    pub async fn reaffirm(&self, cache: &str, also: &[SocketAddr]) {
        let Some(layout) = self.layout(cache) else {
            return;
        };
        let mut layout = layout.lock().await;
        self.bump(&mut layout, 0);
        self.publish(cache, &layout, also).await;
    }

    /// The node proxies ask first for `cache`'s table.
    pub fn entry(&self, cache: &str) -> Option<SocketAddr> {
        self.snapshots.lock().get(cache).map(|l| l.entry)
    }

    pub fn nodes(&self) -> Vec<Arc<PlacedNode>> {
        self.nodes.read().clone()
    }

    pub fn directory(&self) -> &Arc<Nodes> {
        &self.directory
    }

    /// The node named `id` (its id or its address).
    pub fn node(&self, id: &str) -> Option<Arc<PlacedNode>> {
        self.nodes
            .read()
            .iter()
            .find(|n| n.id == id || n.addr().to_string() == id)
            .cloned()
    }

    fn layout(&self, cache: &str) -> Option<Arc<tokio::sync::Mutex<Layout>>> {
        self.layouts.lock().get(cache).cloned()
    }

    /// Every cache's partitions as last sent to the nodes: (cache,
    /// partition, node).
    pub fn partitions(&self) -> Vec<(String, u64, SocketAddr)> {
        self.snapshots
            .lock()
            .iter()
            .flat_map(|(name, s)| s.ranges.iter().map(|p| (name.clone(), p.id, p.node)))
            .collect()
    }

    /// `cache`'s ranges as last sent to its nodes, in slot order.
    pub fn ranges(&self, cache: &str) -> Vec<Part> {
        self.snapshots
            .lock()
            .get(cache)
            .map(|s| s.ranges.clone())
            .unwrap_or_default()
    }

    /// The epoch of `cache`'s table as last sent to its nodes.
    pub fn epoch(&self, cache: &str) -> Option<u64> {
        self.snapshots.lock().get(cache).map(|s| s.epoch)
    }

    /// Gives `layout` a new epoch, above every table sent before and the
    /// node epoch `seen`.
    fn bump(&self, layout: &mut Layout, seen: u64) {
        let floor = layout.epoch.max(seen);
        let next = |e: u64| e.max(floor) + 1;
        let prev = self
            .epochs
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| Some(next(e)))
            .unwrap_or_else(|e| e);
        layout.epoch = next(prev);
    }

    /// Partitions placed on each node now.
    fn counts(&self) -> HashMap<SocketAddr, usize> {
        let mut counts: HashMap<SocketAddr, usize> =
            self.nodes.read().iter().map(|n| (n.addr(), 0)).collect();
        for (_, _, node) in self.partitions() {
            *counts.entry(node).or_default() += 1;
        }
        counts
    }

    /// Nodes that take new partitions (up and not draining), least loaded
    /// first.
    fn open_nodes(&self) -> Vec<SocketAddr> {
        let counts = self.counts();
        let mut open: Vec<Arc<PlacedNode>> = self
            .nodes
            .read()
            .iter()
            .filter(|n| !n.draining())
            .cloned()
            .collect();
        open.sort_by_key(|n| (!n.client.up(), counts.get(&n.addr()).copied().unwrap_or(0)));
        open.iter().map(|n| n.addr()).collect()
    }

    /// Places a new cache of `partitions` partitions over the open nodes
    /// and tells them (in the background, in order with what each was told
    /// before). Returns the node proxies ask first.
    pub fn place(
        &self,
        cache: &str,
        partitions: usize,
        mode: ClusterMode,
    ) -> Result<SocketAddr, PlaceError> {
        let open = self.open_nodes();
        if open.is_empty() {
            return Err(PlaceError::Invalid("no nodes to place caches on".into()));
        }
        let n = match mode {
            ClusterMode::Enabled => partitions.clamp(1, 64),
            ClusterMode::Disabled => 1,
        };
        let ranges: Vec<Part> = (0..n)
            .map(|i| Part {
                first: (i * usize::from(SLOTS) / n) as u16,
                last: ((i + 1) * usize::from(SLOTS) / n - 1) as u16,
                id: i as u64 + 1,
                node: open[i % open.len()],
            })
            .collect();
        let mut layout = Layout {
            mode,
            epoch: 0,
            serial: 0,
            next_id: n as u64 + 1,
            entry: ranges[0].node,
            ranges,
        };
        self.bump(&mut layout, 0);
        layout.serial = layout.epoch;
        for addr in layout.nodes() {
            self.directory
                .client(addr)
                .admin(layout.request(cache, addr));
        }
        let entry = layout.entry;
        self.snapshots
            .lock()
            .insert(cache.to_string(), layout.clone());
        self.layouts
            .lock()
            .insert(cache.to_string(), Arc::new(tokio::sync::Mutex::new(layout)));
        Ok(entry)
    }

    /// Sends `cache`'s table again to every node it names (a node that
    /// restarted empty gets empty partitions back: their data is lost).
    pub fn rehost(&self, cache: &str) {
        let Some(layout) = self.layout(cache) else {
            return;
        };
        let cache = cache.to_string();
        let directory = self.directory.clone();
        tokio::spawn(async move {
            let layout = layout.lock().await;
            for addr in layout.nodes() {
                directory.client(addr).admin(layout.request(&cache, addr));
            }
        });
    }

    /// Lets a deleted cache go on every node that has any of it, in order
    /// with what each node was told before (a cache made again under the
    /// name comes after); a change of it in progress stops at its next step.
    pub fn unhost(&self, cache: &str) {
        self.layouts.lock().remove(cache);
        if self.snapshots.lock().remove(cache).is_none() {
            return;
        }
        self.unsent.lock().retain(|(c, _)| c != cache);
        // Every node: one that had a part of it in a move too.
        for node in self.nodes() {
            node.client.admin(Request::Unhost {
                cache: cache.to_string(),
            });
        }
    }

    /// Whether `layout` is still the table of `cache` (not deleted).
    fn current(&self, cache: &str, layout: &Layout) -> bool {
        self.snapshots
            .lock()
            .get(cache)
            .is_some_and(|s| s.serial == layout.serial)
    }

    /// Sends the tables nodes missed again (each second, from control's
    /// node cycle).
    pub async fn resend(&self) {
        let missed: Vec<(String, SocketAddr)> = self.unsent.lock().iter().cloned().collect();
        for (cache, addr) in missed {
            let Some(layout) = self.layout(&cache) else {
                self.unsent.lock().remove(&(cache, addr));
                continue;
            };
            // A change in progress sends its own tables.
            let Ok(layout) = layout.try_lock() else {
                continue;
            };
            if self.send_layout(&cache, &layout, addr).await.is_ok() {
                self.unsent.lock().remove(&(cache, addr));
            }
        }
    }

    /// Moves partition `id` of `cache` to node `to` (its id or address);
    /// returns the partition's id there (a moved partition gets a new
    /// one). Moving it to its own node does nothing.
    pub async fn move_partition(&self, cache: &str, id: u64, to: &str) -> Result<u64, PlaceError> {
        let to = self
            .node(to)
            .ok_or_else(|| PlaceError::NotFound(format!("no node {to}")))?
            .addr();
        let layout = self
            .layout(cache)
            .ok_or_else(|| PlaceError::NotFound(format!("cache {cache} is not on nodes")))?;
        let mut layout = layout.lock().await;
        self.move_locked(cache, &mut layout, id, to).await
    }

    /// Resumes a move a former leader recorded: what is left of the
    /// partition on its node goes where the move was taking it. A move
    /// with nothing left to do (the partition or a node gone) ends here:
    /// its record goes, under the cache's lock, so the record stays until
    /// the move has ended one way or the other.
    pub async fn resume_move(
        &self,
        cache: &str,
        record: &crate::meta::keys::MoveRecord,
    ) -> Result<u64, PlaceError> {
        let Some(layout) = self.layout(cache) else {
            self.end_record(cache).await;
            return Err(PlaceError::NotFound(format!(
                "cache {cache} is not on nodes"
            )));
        };
        let mut layout = layout.lock().await;
        let resumable = layout
            .find(record.partition)
            .is_some_and(|at| layout.ranges[at].node == record.from)
            && self.node(&record.to.to_string()).is_some();
        if !resumable {
            self.end_record(cache).await;
            return Err(PlaceError::NotFound(format!(
                "partition {} is no longer on {} or node {} is gone",
                record.partition, record.from, record.to
            )));
        }
        self.move_locked(cache, &mut layout, record.partition, record.to)
            .await
    }

    async fn end_record(&self, cache: &str) {
        if let Some(journal) = self.journal.get()
            && let Err(e) = journal.moving(cache, None).await
        {
            tracing::warn!(%cache, "end of move not recorded: {e}");
        }
    }

    /// Moves partition `id` of `cache` to node `to`, recorded in the
    /// journal from its first step to its last (a new leader finishes or
    /// gives back the step in flight: [`Self::reaffirm`]).
    async fn move_locked(
        &self,
        cache: &str,
        layout: &mut Layout,
        id: u64,
        to: SocketAddr,
    ) -> Result<u64, PlaceError> {
        let at = layout
            .find(id)
            .ok_or_else(|| PlaceError::NotFound(format!("no partition {id} in cache {cache}")))?;
        let from = layout.ranges[at].node;
        if from == to {
            return Ok(id);
        }
        let record = crate::meta::keys::MoveRecord {
            partition: id,
            from,
            to,
        };
        if let Some(journal) = self.journal.get() {
            journal
                .moving(cache, Some(&record))
                .await
                .map_err(|e| PlaceError::Failed(format!("move not recorded: {e}")))?;
        }
        let moved = self.move_steps(cache, layout, id, from, to).await;
        self.end_record(cache).await;
        moved
    }

    async fn move_steps(
        &self,
        cache: &str,
        layout: &mut Layout,
        id: u64,
        from: SocketAddr,
        to: SocketAddr,
    ) -> Result<u64, PlaceError> {
        // The destination learns the cache first (the table as it is).
        self.send_layout(cache, layout, to).await?;
        let new_id = layout.next_id;
        layout.next_id += 1;
        let chunk = match layout.mode {
            ClusterMode::Enabled => MOVE_CHUNK,
            // Keys of any slots go together: the partition moves whole.
            ClusterMode::Disabled => u64::MAX,
        };
        let source = self.directory.client(from);
        let target = self.directory.client(to);
        loop {
            if !self.current(cache, layout) {
                return Err(PlaceError::NotFound(format!("cache {cache} was deleted")));
            }
            self.leading()?;
            let export = Request::Export {
                cache: cache.to_string(),
                partition: id,
                max_bytes: chunk,
            };
            let exported = match retry_busy(&source, export).await {
                Ok(Response::Exported {
                    first,
                    last,
                    epoch,
                    keys,
                }) => Ok((first, last, epoch, keys)),
                Ok(other) => Err(unexpected(&other)),
                Err(e) => Err(e),
            };
            let (first, last, epoch, keys) = match exported {
                Ok(done) => done,
                Err(e) => {
                    // The source may have given the slots up and holds
                    // them: the table as it was, newer, gives them back.
                    self.bump(layout, 0);
                    self.publish(cache, layout, &[from, to]).await;
                    return Err(e);
                }
            };
            // The slots carried must be the top of the partition as the
            // table has it; a node that disagrees stops the move (its
            // held slots go back with the table as it was).
            let expected = layout.find(id).map(|at| layout.ranges[at]);
            if expected.is_none_or(|p| p.last != last || p.first > first) {
                self.bump(layout, epoch);
                self.publish(cache, layout, &[from, to]).await;
                tracing::error!(%cache, partition = id, node = %from, first, last, "a node's partition disagrees with the table: move stopped");
                return Err(PlaceError::Failed(format!(
                    "move of partition {id} stopped: {from} exported slots {first}..={last}, which do not end the partition as its table has it"
                )));
            }
            let import = Request::Import {
                cache: cache.to_string(),
                partition: new_id,
                first,
                last,
                keys,
            };
            let imported = match retry_busy(&target, import).await {
                Ok(Response::Imported { epoch }) => epoch,
                failed => {
                    // The source holds the slots until a table says where
                    // they are: the table as it was (newer) takes them
                    // back there, and lets go of any copy the destination
                    // made.
                    self.bump(layout, epoch);
                    self.publish(cache, layout, &[from, to]).await;
                    let why = match failed {
                        Ok(other) => unexpected(&other).to_string(),
                        Err(e) => e.to_string(),
                    };
                    tracing::warn!(%cache, partition = id, %to, "move stopped: {why}");
                    return Err(PlaceError::Failed(format!(
                        "move of partition {id} stopped, its slots stay where they were: {why}"
                    )));
                }
            };
            // The table: the partition ends before the slots carried, the
            // new one starts with them.
            let at = layout
                .find(id)
                .ok_or_else(|| PlaceError::Failed("table lost a partition".into()))?;
            let whole = layout.ranges[at].first == first;
            match layout.find(new_id) {
                Some(n) => layout.ranges[n].first = first,
                None => layout.ranges.insert(
                    at + 1,
                    Part {
                        first,
                        last,
                        id: new_id,
                        node: to,
                    },
                ),
            }
            if whole {
                layout.ranges.remove(at);
            } else {
                layout.ranges[at].last = first - 1;
            }
            self.bump(layout, epoch.max(imported));
            self.publish(cache, layout, &[from]).await;
            if whole {
                return Ok(new_id);
            }
        }
    }

    /// Splits partition `id` of `cache` at slot `at` on its node; the new
    /// partition then moves to the least loaded open node. Returns the new
    /// partition's id.
    pub async fn split(&self, cache: &str, id: u64, at: u16) -> Result<u64, PlaceError> {
        let layout = self
            .layout(cache)
            .ok_or_else(|| PlaceError::NotFound(format!("cache {cache} is not on nodes")))?;
        let mut layout = layout.lock().await;
        self.leading()?;
        let i = layout
            .find(id)
            .ok_or_else(|| PlaceError::NotFound(format!("no partition {id} in cache {cache}")))?;
        let part = layout.ranges[i];
        if at <= part.first || at > part.last {
            return Err(PlaceError::Invalid(format!(
                "slot {at} does not split {}..={}",
                part.first, part.last
            )));
        }
        let node = self.directory.client(part.node);
        let request = Request::Split {
            cache: cache.to_string(),
            partition: id,
            at,
        };
        let new_id = match retry_busy(&node, request).await? {
            Response::Changed { partition } => partition,
            other => return Err(unexpected(&other)),
        };
        let epoch = node_epoch(&node, cache).await?;
        layout.next_id = layout.next_id.max(new_id + 1);
        layout.ranges[i].last = at - 1;
        let seen = epoch;
        layout.ranges.insert(
            i + 1,
            Part {
                first: at,
                last: part.last,
                id: new_id,
                node: part.node,
            },
        );
        self.bump(&mut layout, seen);
        self.publish(cache, &layout, &[]).await;
        // New partitions go to the least loaded node.
        let counts = self.counts();
        let best = self
            .open_nodes()
            .into_iter()
            .find(|n| self.nodes().iter().any(|p| p.addr() == *n && p.client.up()));
        match best {
            Some(to) if to != part.node && counts.get(&to) < counts.get(&part.node) => {
                self.move_locked(cache, &mut layout, new_id, to).await
            }
            _ => Ok(new_id),
        }
    }

    /// Merges partition `right` of `cache` into its left neighbour `left`
    /// (moving it to `left`'s node first if it is elsewhere).
    pub async fn merge(&self, cache: &str, left: u64, right: u64) -> Result<(), PlaceError> {
        let layout = self
            .layout(cache)
            .ok_or_else(|| PlaceError::NotFound(format!("cache {cache} is not on nodes")))?;
        let mut layout = layout.lock().await;
        self.leading()?;
        let (Some(l), Some(r)) = (layout.find(left), layout.find(right)) else {
            return Err(PlaceError::NotFound(format!(
                "no partitions {left} and {right} in cache {cache}"
            )));
        };
        if r != l + 1 {
            return Err(PlaceError::Invalid(format!(
                "partitions {left} and {right} are not adjacent"
            )));
        }
        let home = layout.ranges[l].node;
        let right = self.move_locked(cache, &mut layout, right, home).await?;
        let node = self.directory.client(home);
        let request = Request::Merge {
            cache: cache.to_string(),
            left,
            right,
        };
        match retry_busy(&node, request).await? {
            Response::Changed { .. } => {}
            other => return Err(unexpected(&other)),
        }
        let epoch = node_epoch(&node, cache).await?;
        let (l, r) = (
            layout
                .find(left)
                .ok_or_else(|| PlaceError::Failed("table lost a partition".into()))?,
            layout
                .find(right)
                .ok_or_else(|| PlaceError::Failed("table lost a partition".into()))?,
        );
        layout.ranges[l].last = layout.ranges[r].last;
        layout.ranges.remove(r);
        self.bump(&mut layout, epoch);
        self.publish(cache, &layout, &[]).await;
        Ok(())
    }

    /// Marks node `id` draining (nothing new goes there) and moves every
    /// partition off it, one at a time, to the least loaded open nodes.
    pub fn drain(self: &Arc<Self>, id: &str) -> Result<String, PlaceError> {
        let node = self
            .node(id)
            .ok_or_else(|| PlaceError::NotFound(format!("no node {id}")))?;
        if self
            .nodes()
            .iter()
            .all(|n| n.addr() == node.addr() || n.draining())
        {
            return Err(PlaceError::Invalid(format!(
                "no other node takes {}'s partitions",
                node.id
            )));
        }
        node.draining.store(true, Ordering::Relaxed);
        let (addr, name) = (node.addr(), node.id.clone());
        let placer = self.clone();
        tokio::spawn(async move {
            // Partitions whose moves kept failing (a slot too big to carry,
            // a destination refusing): left where they are, after a few tries.
            let mut failures: HashMap<(String, u64), usize> = HashMap::new();
            loop {
                let next = placer
                    .partitions()
                    .into_iter()
                    .filter(|(c, p, n)| {
                        *n == addr
                            && failures.get(&(c.clone(), *p)).copied().unwrap_or(0) < DRAIN_TRIES
                    })
                    .map(|(c, p, _)| (c, p))
                    .next();
                let Some((cache, part)) = next else {
                    if !failures.is_empty() {
                        tracing::error!(node = %name, "drain stopped: {} partitions could not be moved off", failures.len());
                    }
                    return;
                };
                let Some(to) = placer.open_nodes().first().copied() else {
                    return;
                };
                let to = to.to_string();
                if let Err(e) = placer.move_partition(&cache, part, &to).await {
                    tracing::warn!(node = %name, %cache, partition = part, "drain: {e}");
                    *failures.entry((cache, part)).or_default() += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
        Ok(node.id.clone())
    }

    /// Sends `layout` to node `addr`.
    async fn send_layout(
        &self,
        cache: &str,
        layout: &Layout,
        addr: SocketAddr,
    ) -> Result<(), PlaceError> {
        match call(&self.directory.client(addr), layout.request(cache, addr)).await? {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends `layout` to every node of the cache and to `also`, and keeps
    /// it as what the API shows; a node that did not get it gets it again
    /// each second ([`Self::resend`]).
    async fn publish(&self, cache: &str, layout: &Layout, also: &[SocketAddr]) {
        if let Some(journal) = self.journal.get() {
            // Recorded first, whatever it takes: until then the source
            // holds the slots a move carried. Lost leadership (the lease
            // lapsed, another control leads) ends the tries: the next
            // leader decides the tables.
            loop {
                match journal.record(cache, layout).await {
                    Ok(()) => break,
                    Err(crate::meta::MetaError::Fenced) => return,
                    Err(e) => {
                        tracing::warn!(%cache, "table not recorded yet (tried again): {e}");
                        tokio::time::sleep(RECORD_RETRY).await;
                    }
                }
            }
        }
        let mut nodes = layout.nodes();
        nodes.extend_from_slice(also);
        nodes.sort();
        nodes.dedup();
        for addr in nodes {
            match self.send_layout(cache, layout, addr).await {
                Ok(()) => {
                    self.unsent.lock().remove(&(cache.to_string(), addr));
                }
                Err(e) => {
                    tracing::warn!(%cache, node = %addr, "table not sent (sent again each second): {e}");
                    self.unsent.lock().insert((cache.to_string(), addr));
                }
            }
        }
        if self.current(cache, layout) {
            self.snapshots
                .lock()
                .insert(cache.to_string(), layout.clone());
        }
    }
}

async fn call(node: &NodeClient, request: Request) -> Result<Response, PlaceError> {
    node.call(request)
        .await
        .map_err(|e| PlaceError::Failed(e.to_string()))
}

/// Sends `request`, again while the node answers that slow work holds the
/// partition.
async fn retry_busy(node: &NodeClient, request: Request) -> Result<Response, PlaceError> {
    for _ in 0..BUSY_TRIES {
        match call(node, request.clone()).await? {
            Response::Failed(why) if why.ends_with("is busy") || why.ends_with("are busy") => {
                tokio::time::sleep(BUSY_PAUSE).await;
            }
            Response::Failed(why) => return Err(PlaceError::Failed(why)),
            other => return Ok(other),
        }
    }
    Err(PlaceError::Failed(format!(
        "node {} stayed busy",
        node.addr()
    )))
}

/// The routing epoch of `cache` on `node` now.
async fn node_epoch(node: &NodeClient, cache: &str) -> Result<u64, PlaceError> {
    let request = Request::Routes {
        cache: cache.to_string(),
    };
    match call(node, request).await? {
        Response::Routes { epoch, .. } => Ok(epoch),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(answer: &Response) -> PlaceError {
    match answer {
        Response::Failed(why) => PlaceError::Failed(why.clone()),
        other => PlaceError::Failed(format!("unexpected answer {other:?}")),
    }
}
