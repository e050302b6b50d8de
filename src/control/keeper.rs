//! Control's state in the metadata store (`stratus control`, DESIGN §13):
//! which control leads, and the caches and routing tables it keeps there.
//!
//! - Every control campaigns ([`Leadership::campaign`]); the one that wins
//!   loads the store's caches and tables ([`Keeper::take_over`]), makes
//!   the open `default` cache if it is wanted and missing, and only then
//!   reports ready and answers the API. Standbys answer `/readyz` 503 and
//!   every API request `503 not_leader` (naming the leader).
//! - The leader writes what changed ([`Keeper::save`]): after every API
//!   change before it answers (an acknowledged change is in the store), a
//!   routing table before its nodes get it and a move from its first step
//!   to its last ([`Journal`]), and each second for the rest (byte-second
//!   figures at most every [`FIGURES_EVERY`]). Every write is guarded by
//!   the leader's fencing token.
//! - A new leader sends every table again, newer, to its nodes (and to
//!   both ends of a recorded move): a move's step in flight is finished if
//!   the recorded table has it and given back if not, so nothing
//!   acknowledged is lost and no slot stays held; then it resumes the move
//!   (what is left of the partition goes on to the same node).
//! - A leader that loses its lease or finds another leader stops: its
//!   process exits (its supervisor starts it again, as a standby).
//!
//! With no etcd configured the store is this process's memory: one
//! control, leading at once, the same code path.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::placement::{Journal, Layout};
use super::registry::{NewCache, Placed, Registry};
use crate::meta::keys::{self, LeaderRecord, MoveRecord, NodeRecord};
use crate::meta::lease::{self, Leadership};
use crate::meta::{MetaError, MetaStore, Op};

/// How often a cache's byte-second figures are written when nothing else
/// of it changed (a new leader bills on from them).
pub const FIGURES_EVERY: Duration = Duration::from_secs(30);

/// How often the leader writes what changed without an API request.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// A key as this leader last wrote it.
struct Written {
    /// Its value, byte-second figures left out.
    compared: Vec<u8>,
    /// When it was written.
    at: Instant,
    /// A routing table's epoch (0 for other keys): a table never replaces
    /// a newer one.
    epoch: u64,
}

/// Control's link to the metadata store.
pub struct Keeper {
    store: Arc<dyn MetaStore>,
    me: LeaderRecord,
    ttl: Duration,
    leadership: std::sync::OnceLock<Leadership>,
    /// Keys as last written; one save at a time.
    written: tokio::sync::Mutex<HashMap<String, Written>>,
    /// A change waits to be written.
    changed: Notify,
    /// What `/readyz` answers: leading, with the store's state loaded.
    ready: Arc<AtomicBool>,
}

impl Keeper {
    pub fn new(
        store: Arc<dyn MetaStore>,
        me: LeaderRecord,
        ttl: Duration,
        ready: Arc<AtomicBool>,
    ) -> Arc<Keeper> {
        Arc::new(Keeper {
            store,
            me,
            ttl,
            leadership: std::sync::OnceLock::new(),
            written: tokio::sync::Mutex::new(HashMap::new()),
            changed: Notify::new(),
            ready,
        })
    }

    /// Whether this control leads and serves the API.
    pub fn leading(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.leadership.get().is_some_and(Leadership::valid)
    }

    /// The leader's record (for a standby's answers), if anyone leads.
    pub async fn leader(&self) -> Option<LeaderRecord> {
        lease::leader(self.store.as_ref()).await.ok().flatten()
    }

    /// Asks for a save soon (a change made outside the API).
    pub fn note_change(&self) {
        self.changed.notify_one();
    }

    /// Campaigns until this control leads, takes over the store's state,
    /// then writes changes until `shutdown` (resigning then) or until
    /// leadership is lost (`failed` is cancelled: the process exits).
    /// `default` is the open cache to make when the store has none.
    pub async fn run(
        self: Arc<Self>,
        registry: Arc<Registry>,
        default: Option<NewCache>,
        shutdown: CancellationToken,
        failed: CancellationToken,
    ) {
        let Some(leadership) =
            Leadership::campaign(self.store.clone(), &self.me, self.ttl, &shutdown).await
        else {
            return;
        };
        let lost = leadership.lost().clone();
        let _ = self.leadership.set(leadership);
        tracing::info!(id = %self.me.id, "leading control");
        loop {
            match self.take_over(&registry, default.clone()).await {
                Ok(()) => break,
                Err(MetaError::Fenced) => {
                    failed.cancel();
                    return;
                }
                Err(e) => tracing::warn!("cannot load control's state (trying again): {e}"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return self.resign().await,
                () = lost.cancelled() => return failed.cancel(),
                () = tokio::time::sleep(SAVE_EVERY) => {}
            }
        }
        self.ready.store(true, Ordering::Release);
        tracing::info!(id = %self.me.id, http_addr = %self.me.http, caches = registry.list().len(), "control ready: leading");
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = self.save(&registry).await;
                    return self.resign().await;
                }
                () = lost.cancelled() => break,
                () = self.changed.notified() => {}
                () = tokio::time::sleep(SAVE_EVERY) => {}
            }
            if let Err(e) = self.follow_members(&registry).await {
                tracing::warn!("cannot read the nodes' membership: {e}");
            }
            match self.save(&registry).await {
                Ok(()) | Err(MetaError::Unavailable(_) | MetaError::Invalid(_)) => {}
                Err(MetaError::Fenced) => break,
            }
        }
        self.ready.store(false, Ordering::Release);
        tracing::error!(id = %self.me.id, "control lost its leadership: stopping");
        failed.cancel();
    }

    async fn resign(&self) {
        self.ready.store(false, Ordering::Release);
        if let Some(l) = self.leadership.get() {
            l.resign().await;
        }
    }

    /// Loads the store's caches and tables into `registry` (empty: a
    /// standby holds none) and makes `default` if it is missing.
    async fn take_over(
        &self,
        registry: &Registry,
        default: Option<NewCache>,
    ) -> Result<(), MetaError> {
        let caches = self.store.list(keys::CACHES).await?;
        let tables = self.store.list(keys::ROUTING).await?;
        let mut placed: Vec<Placed> = Vec::new();
        for e in &caches {
            match serde_json::from_slice::<Placed>(&e.value) {
                Ok(p) if keys::name_of(keys::CACHES, &e.key) == Some(p.name.as_str()) => {
                    placed.push(p)
                }
                _ => tracing::error!(key = %e.key, "unreadable cache record: left out"),
            }
        }
        let mut layouts: Vec<(String, Layout)> = Vec::new();
        for e in &tables {
            let name = keys::name_of(keys::ROUTING, &e.key);
            match (name, serde_json::from_slice::<Layout>(&e.value)) {
                (Some(name), Ok(l)) if placed.iter().any(|p| p.name == name) => {
                    layouts.push((name.to_string(), l))
                }
                _ => tracing::error!(key = %e.key, "routing table without its cache: left out"),
            }
        }
        // A cache with no table cannot be served: left out too.
        placed.retain(|p| layouts.iter().any(|(n, _)| *n == p.name));
        if let Some(placer) = registry.placer() {
            placer.restore(layouts);
            registry
                .follow(&placed, placer.directory())
                .map_err(|e| MetaError::Invalid(e.to_string()))?;
        }
        for p in &placed {
            if let Some(cache) = registry.get(&p.name) {
                cache
                    .usage
                    .byte_seconds
                    .store(p.byte_seconds[0], Ordering::Relaxed);
                cache
                    .usage
                    .billed_byte_seconds
                    .store(p.byte_seconds[1], Ordering::Relaxed);
            }
        }
        {
            // Only what was loaded: a record left out stays in the store.
            let loaded = |key: &str| {
                keys::name_of(keys::CACHES, key)
                    .or_else(|| keys::name_of(keys::ROUTING, key))
                    .is_some_and(|name| registry.get(name).is_some())
            };
            let mut written = self.written.lock().await;
            written.clear();
            for e in caches.iter().chain(&tables).filter(|e| loaded(&e.key)) {
                written.insert(
                    e.key.clone(),
                    Written {
                        compared: compared(&e.key, &e.value),
                        at: Instant::now(),
                        epoch: epoch_of(&e.key, &e.value),
                    },
                );
            }
        }
        // The nodes first: the default cache is placed on them.
        self.follow_members(registry).await?;
        if let Some(new) = default.filter(|d| registry.get(&d.name).is_none()) {
            registry
                .create(new)
                .map_err(|e| MetaError::Invalid(e.to_string()))?;
        }
        // Every table again, newer, to its nodes and those of a move in
        // flight: the step the record has is finished, one it lacks given
        // back.
        let moves = self.store.list(keys::MOVES).await?;
        if let Some(placer) = registry.placer() {
            for (name, _) in placer.tables() {
                let key = keys::moves(&name);
                let also: Vec<std::net::SocketAddr> = moves
                    .iter()
                    .filter(|e| e.key == key)
                    .filter_map(|e| serde_json::from_slice::<MoveRecord>(&e.value).ok())
                    .flat_map(|m| {
                        tracing::warn!(cache = %name, partition = m.partition, from = %m.from, to = %m.to, "a move was in progress: its step in flight is finished or given back");
                        [m.from, m.to]
                    })
                    .collect();
                placer.reaffirm(&name, &also).await;
            }
        }
        self.save(registry).await?;
        // The rest of each move, resumed in the background: what is left
        // of the partition on its node goes where the move was taking it.
        // Its record stays until the resumed move ends (a move with
        // nothing left to do ends at once).
        if let Some(placer) = registry.placer() {
            for e in moves {
                let Some(cache) = keys::name_of(keys::MOVES, &e.key).map(str::to_string) else {
                    continue;
                };
                let Ok(record) = serde_json::from_slice::<MoveRecord>(&e.value) else {
                    tracing::error!(key = %e.key, "unreadable move record: left out");
                    continue;
                };
                let placer = placer.clone();
                tokio::spawn(async move {
                    match placer.resume_move(&cache, &record).await {
                        Ok(id) => {
                            tracing::info!(%cache, partition = record.partition, to = %record.to, new = id, "resumed move done")
                        }
                        Err(e) => {
                            tracing::warn!(%cache, partition = record.partition, "resumed move stopped: {e}")
                        }
                    }
                });
            }
        }
        Ok(())
    }

    /// Makes control's nodes those whose membership the store holds (and
    /// the `--nodes` given).
    async fn follow_members(&self, registry: &Registry) -> Result<(), MetaError> {
        let Some(placer) = registry.placer() else {
            return Ok(());
        };
        let mut members = Vec::new();
        for e in self.store.list(keys::NODES).await? {
            let id = keys::name_of(keys::NODES, &e.key);
            match (id, serde_json::from_slice::<NodeRecord>(&e.value)) {
                (Some(id), Ok(r)) => members.push((id.to_string(), r.addr)),
                _ => tracing::warn!(key = %e.key, "unreadable node record: left out"),
            }
        }
        placer.follow_members(&members).await;
        Ok(())
    }

    /// Writes what changed in `registry` since the last save: caches and
    /// tables new or changed, those gone deleted. A table changes through
    /// [`Journal::record`] before its nodes get it; what a save finds (the
    /// tables as last sent) may be older than that and never replaces it:
    /// a save writes a new cache's first table, and one made again.
    pub async fn save(&self, registry: &Registry) -> Result<(), MetaError> {
        let leadership = self.leadership.get().ok_or(MetaError::Fenced)?;
        let mut written = self.written.lock().await;
        // Each key's value and, for a table, its epoch.
        let mut wanted: HashMap<String, (Vec<u8>, u64)> = HashMap::new();
        for p in registry.placement() {
            wanted.insert(keys::cache(&p.name), (to_json(&p), 0));
        }
        if let Some(placer) = registry.placer() {
            for (name, layout) in placer.tables() {
                if wanted.contains_key(&keys::cache(&name)) {
                    wanted.insert(keys::routing(&name), (to_json(&layout), layout.epoch));
                }
            }
        }
        let now = Instant::now();
        let mut ops = Vec::new();
        let mut done = Vec::new();
        for (key, (value, epoch)) in &wanted {
            let c = compared(key, value);
            // Unchanged, only a cache's figures moved (written every
            // FIGURES_EVERY), or a table older than the one recorded.
            let skip = written.get(key).is_some_and(|w| {
                (w.compared == c
                    && (!key.starts_with(keys::CACHES) || now.duration_since(w.at) < FIGURES_EVERY))
                    || w.epoch > *epoch
            });
            if skip {
                continue;
            }
            ops.push(Op::put(key.clone(), value.clone()));
            done.push((key.clone(), c, *epoch));
        }
        let gone: Vec<String> = written
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        ops.extend(gone.iter().cloned().map(Op::Delete));
        // A deleted cache's shared scripts and libraries go with it.
        for name in gone.iter().filter_map(|k| keys::name_of(keys::CACHES, k)) {
            ops.push(Op::Delete(keys::functions(name)));
            for e in self.store.list(&keys::scripts(name)).await? {
                ops.push(Op::Delete(e.key));
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        leadership.write(ops).await?;
        for (key, c, epoch) in done {
            written.insert(
                key,
                Written {
                    compared: c,
                    at: now,
                    epoch,
                },
            );
        }
        for key in gone {
            written.remove(&key);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Journal for Keeper {
    fn leading(&self) -> bool {
        self.leadership.get().is_some_and(Leadership::valid)
    }

    async fn record(&self, cache: &str, layout: &Layout) -> Result<(), MetaError> {
        let leadership = self.leadership.get().ok_or(MetaError::Fenced)?;
        let key = keys::routing(cache);
        let value = to_json(layout);
        let mut written = self.written.lock().await;
        // A table of a cache not yet recorded waits for the cache's save.
        if !written.contains_key(&keys::cache(cache)) {
            return Ok(());
        }
        leadership
            .write(vec![Op::put(key.clone(), value.clone())])
            .await?;
        written.insert(
            key.clone(),
            Written {
                compared: compared(&key, &value),
                at: Instant::now(),
                epoch: layout.epoch,
            },
        );
        Ok(())
    }

    async fn moving(&self, cache: &str, record: Option<&MoveRecord>) -> Result<(), MetaError> {
        let leadership = self.leadership.get().ok_or(MetaError::Fenced)?;
        let key = keys::moves(cache);
        let op = match record {
            Some(r) => Op::put(key, to_json(r)),
            None => Op::Delete(key),
        };
        leadership.write(vec![op]).await
    }
}

/// The epoch of a recorded table (0 for any other key).
fn epoch_of(key: &str, value: &[u8]) -> u64 {
    if !key.starts_with(keys::ROUTING) {
        return 0;
    }
    serde_json::from_slice::<Layout>(value).map_or(0, |l| l.epoch)
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("control's records serialize")
}

/// A record as saves compare it: a cache's without its byte-second
/// figures (they move every second; [`FIGURES_EVERY`] writes them).
fn compared(key: &str, value: &[u8]) -> Vec<u8> {
    if !key.starts_with(keys::CACHES) {
        return value.to_vec();
    }
    match serde_json::from_slice::<Placed>(value) {
        Ok(mut p) => {
            p.byte_seconds = [0, 0];
            to_json(&p)
        }
        Err(_) => value.to_vec(),
    }
}
