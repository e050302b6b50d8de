//! `stratus node`: a process that hosts partitions of any caches and runs
//! the batches proxies send it. Proxies reach it through
//! [`crate::link`]; both sides speak [`crate::wire`] and neither knows the
//! other's memory.
//!
//! A node hosts a cache as a [`CachePool`] of its own (its partitions,
//! their locks, WATCH versions and blocked-client lines all live here, on
//! the node), and serves, per connection:
//! 1. read a request frame;
//! 2. run it in a task of its own, so a slow batch (a script, an O(N)
//!    command, which the pool runs on its worker threads) holds up no
//!    other request on the connection;
//! 3. write the response, tagged with the request's id, whenever it is
//!    ready (responses may overtake each other).
//!
//! The node decides slot ownership: a batch for slots its partition no
//! longer owns is answered [`Response::Moved`] with the partition's epoch,
//! and the proxy asks for the routes again ([`Request::Routes`]): the
//! cache's whole table as control last sent it ([`Request::Layout`]), each
//! range with its node, so the answer says where the slots went. Moves
//! between nodes run as admin requests ([`Request::Export`],
//! [`Request::Import`]; see [`crate::pool::transfer`]).
//!
//! What a proxy registers on a node's keys — WATCH's watchers, blocked
//! clients' places in line — belongs to its connection ([`Interest`]) and
//! goes when the connection ends, so a proxy that dies leaves nothing
//! behind. Versions and wake-ups travel in the answers
//! ([`Response::Versions`], [`Response::Woken`]), never through shared
//! memory.
//!
//! What a cache's partitions deliver (keyspace events, scripts' messages,
//! client-side caching's invalidations) goes into its feed
//! ([`crate::pool::feed`]): the batch's own proxy gets its items in the
//! reply, every proxy long-polls the feed for the rest.

pub mod http;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use parking_lot::{Mutex, RwLock};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::cmd;
use crate::partition::key_slot;
use crate::pool::{CachePool, ExecOptions, NotRun, PartitionHandle, transfer};
use crate::resp::reply;
use crate::wire::{self, Envelope, Request, Response};

/// Most partitions one `Host` request may ask for (a cache's pool grows
/// past its first partitions by splitting).
pub const MAX_HOSTED_PARTITIONS: u16 = 64;

/// Requests one proxy connection may have being worked on at once (a
/// waiting `Await` is not one). It only bounds the node's memory against a
/// runaway proxy: a proxy has at most one request of each client
/// connection out, and a cache at most `max-clients-per-cache` (4,000 by
/// default) of those, so no one tenant can fill it and hold up the
/// others' requests on the same link.
const MAX_WORKING: usize = 65_536;

/// What a fenced node answers.
const FENCED: &str = "the node lost its lease (its partitions may be elsewhere now)";

/// How long a new connection has to send its `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest frame before `Hello` is accepted, bytes (a Hello is 38).
const HELLO_MAX_FRAME: usize = 256;

/// Blocked clients one proxy connection may hold on a node at once.
const MAX_SUBSCRIPTIONS: usize = 100_000;

/// The partitions this node hosts, by cache.
pub struct Node {
    caches: RwLock<HashMap<String, Arc<CachePool>>>,
    /// What a proxy's `Hello` must prove ([`wire::hello_proof`] of the
    /// deployment's shared key, or of none).
    proof: [u8; 32],
    /// Its membership lease (with etcd): once it is not valid, the node
    /// answers nothing but errors — control may have given its
    /// partitions to other nodes.
    lease: std::sync::OnceLock<Arc<crate::meta::lease::Lease>>,
}

impl Node {
    /// A node whose proxies prove they hold `key` (the deployment's
    /// `--token-key`; `None`: a loopback-only node, any proxy).
    pub fn new(key: Option<[u8; 32]>) -> Arc<Node> {
        Arc::new(Node {
            caches: RwLock::new(HashMap::new()),
            proof: wire::hello_proof(key.as_ref()),
            lease: std::sync::OnceLock::new(),
        })
    }

    /// Serves only while `lease` is valid.
    pub fn hold(&self, lease: Arc<crate::meta::lease::Lease>) {
        let _ = self.lease.set(lease);
    }

    /// Whether the node lost its lease: it serves nothing more.
    pub fn fenced(&self) -> bool {
        self.lease.get().is_some_and(|l| !l.valid())
    }

    /// Partitions and bytes hosted, by cache (the node's metrics).
    pub fn hosted(&self) -> Vec<(String, usize, u64)> {
        self.caches
            .read()
            .iter()
            .map(|(name, pool)| (name.clone(), pool.partitions().len(), pool.used_bytes()))
            .collect()
    }

    /// Accepts proxies' connections until `shutdown` fires.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        tokio::spawn(self.clone().expire_cycle(shutdown.clone()));
        loop {
            let (stream, peer) = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors: wait instead of spinning.
                        tracing::warn!("node accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            crate::link::keepalive(&stream);
            let node = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = node.connection(stream, shutdown).await {
                    tracing::info!(%peer, "proxy connection ended: {e}");
                }
            });
        }
    }

    /// The active expiry cycle of every hosted cache (as `serve` runs it).
    async fn expire_cycle(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(crate::pool::EXPIRE_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let pools: Vec<Arc<CachePool>> = self.caches.read().values().cloned().collect();
            for pool in pools {
                pool.expire_round().await;
            }
        }
    }

    /// Phases 1–3 of the module doc for one proxy connection.
    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), wire::WireError> {
        let (read, write) = stream.into_split();
        // Until the peer proves the key, a frame is a Hello or nothing: a
        // stranger cannot make the node buffer a big one.
        let mut requests = FramedRead::new(read, wire::NodeCodec::default());
        requests.decoder_mut().set_max_frame(HELLO_MAX_FRAME);
        let mut responses = FramedWrite::new(write, wire::NodeCodec::default());
        let (tx, mut rx) = mpsc::channel::<Envelope<Response>>(wire::SEND_QUEUE);
        let interest = Arc::new(Interest::new());
        let writer = tokio::spawn(async move {
            while let Some(response) = rx.recv().await {
                let id = response.id;
                match responses.feed(response).await {
                    Ok(()) => {}
                    // Only this request fails: the link carries the others.
                    Err(wire::WireError::TooBig(bytes)) => {
                        let failed = Envelope {
                            id,
                            body: Response::Failed(wire::too_big(bytes)),
                        };
                        responses.feed(failed).await?;
                    }
                    Err(e) => return Err(e),
                }
                // Write out once nothing else is ready (responses batch).
                if rx.is_empty() {
                    responses.flush().await?;
                }
            }
            Ok::<(), wire::WireError>(())
        });
        // 0. The first frame proves the proxy holds the shared key.
        let hello = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(HELLO_TIMEOUT) => None,
            r = requests.next() => r.transpose()?,
        };
        let welcome = match hello {
            Some(Envelope {
                id,
                body: Request::Hello { proof },
            }) if bool::from(subtle::ConstantTimeEq::ct_eq(&proof[..], &self.proof[..])) => {
                Envelope {
                    id,
                    body: Response::Welcome,
                }
            }
            other => {
                let id = other.map_or(0, |e| e.id);
                let refused =
                    Response::Failed("ERR the data plane needs the deployment's key".into());
                let _ = tx.send(Envelope { id, body: refused }).await;
                drop(tx);
                let _ = writer.await;
                return Err(wire::WireError::Refused);
            }
        };
        if tx.send(welcome).await.is_err() {
            return Ok(());
        }
        requests.decoder_mut().set_max_frame(wire::MAX_FRAME);
        // Requests being worked on at once (a waiting `Await` is not one:
        // it holds no place, so blocked clients cannot stall the rest).
        let working = Arc::new(tokio::sync::Semaphore::new(MAX_WORKING));
        let outcome = loop {
            let request = tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                r = requests.next() => match r {
                    None => break Ok(()),
                    Some(Err(e)) => break Err(e),
                    Some(Ok(r)) => r,
                },
            };
            let Envelope { id, body } = request;
            if self.fenced() {
                let done = Response::Failed(reply::node_unavailable(FENCED));
                if tx.send(Envelope { id, body: done }).await.is_err() {
                    break Ok(());
                }
                continue;
            }
            // Admin requests run here, in the order they came (a Host after
            // an Unhost of the same name must not overtake it).
            if body.is_admin() {
                let done = self.admin(body).await;
                if tx.send(Envelope { id, body: done }).await.is_err() {
                    break Ok(());
                }
                continue;
            }
            let permit = if matches!(body, Request::Await { .. }) {
                None
            } else {
                match working.clone().acquire_owned().await {
                    Ok(p) => Some(p),
                    Err(_) => break Ok(()),
                }
            };
            let node = self.clone();
            let interest = interest.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                // A panic answers (the proxy's request must end) and loses
                // nothing else: a partition lock is released as it unwinds.
                let run = std::panic::AssertUnwindSafe(node.handle(body, &interest));
                let body = futures_util::FutureExt::catch_unwind(run)
                    .await
                    .unwrap_or_else(|_| {
                        Response::Failed(reply::node_unavailable("the request failed on the node"))
                    });
                // Fenced while it ran (it waited behind slow work): what
                // it did here is not acknowledged — control may have given
                // its slots to another node meanwhile.
                let body = if node.fenced() {
                    Response::Failed(reply::node_unavailable(FENCED))
                } else {
                    body
                };
                let _ = tx.send(Envelope { id, body }).await;
            });
        };
        drop(tx);
        interest.release();
        let _ = writer.await;
        outcome
    }

    /// Runs an admin request ([`is_admin`]), before the connection reads
    /// another.
    async fn admin(&self, request: Request) -> Response {
        if let Request::Import {
            cache,
            partition,
            first,
            last,
            keys,
        } = request
        {
            let pool = match self.cache(&cache) {
                Ok(p) => p,
                Err(failed) => return failed,
            };
            let now = crate::partition::now_ms();
            return match pool.import(partition, first, last, keys, now).await {
                Ok(epoch) => Response::Imported { epoch },
                Err(why) => Response::Failed(why),
            };
        }
        match &request {
            Request::Host {
                cache,
                partitions,
                cluster_mode,
            } => {
                if *partitions == 0 || *partitions > MAX_HOSTED_PARTITIONS {
                    return Response::Failed(format!(
                        "ERR partitions must be 1 to {MAX_HOSTED_PARTITIONS}"
                    ));
                }
                self.caches.write().entry(cache.clone()).or_insert_with(|| {
                    Arc::new(CachePool::with_mode(*partitions as usize, *cluster_mode).fed())
                });
                Response::Hosted
            }
            Request::Unhost { cache } => {
                let pool = self.caches.write().remove(cache);
                if let Some(pool) = pool {
                    // The data goes off the reactor (a big cache frees for a while).
                    tokio::task::spawn_blocking(move || pool.flush_blocking());
                }
                Response::Done
            }
            Request::Split {
                cache,
                partition,
                at,
            } => match self.cache(cache) {
                Ok(pool) => match pool.split(*partition, *at, "admin") {
                    Ok(new) => Response::Changed { partition: new },
                    Err(why) => Response::Failed(why),
                },
                Err(failed) => failed,
            },
            Request::Merge { cache, left, right } => match self.cache(cache) {
                Ok(pool) => match pool.merge(*left, *right) {
                    Ok(()) => Response::Changed { partition: *left },
                    Err(why) => Response::Failed(why),
                },
                Err(failed) => failed,
            },
            Request::Layout {
                cache,
                cluster_mode,
                epoch,
                me,
                ranges,
            } => {
                let pool = self
                    .caches
                    .write()
                    .entry(cache.clone())
                    .or_insert_with(|| Arc::new(CachePool::hosting(*cluster_mode)))
                    .clone();
                let placed = ranges
                    .iter()
                    .map(|r| transfer::Placed {
                        first: r.first,
                        last: r.last,
                        partition: r.partition,
                        elsewhere: (r.node != *me).then(|| r.node.clone()),
                    })
                    .collect();
                match pool.apply_layout(*epoch, placed) {
                    Ok(()) => Response::Done,
                    Err(why) => Response::Failed(why),
                }
            }
            Request::Export {
                cache,
                partition,
                max_bytes,
            } => match self.cache(cache) {
                Ok(pool) => {
                    let now = crate::partition::now_ms();
                    match pool.export_top(*partition, *max_bytes, now).await {
                        Ok((first, last, epoch, keys)) => Response::Exported {
                            first,
                            last,
                            epoch,
                            keys,
                        },
                        Err(why) => Response::Failed(why),
                    }
                }
                Err(failed) => failed,
            },
            _ => Response::Failed("ERR not an admin request".into()),
        }
    }

    /// Partition `id` of cache `name`, with its pool; else the answer:
    /// the cache's refusal, or `Moved` (merged or moved away).
    fn partition(
        &self,
        name: &str,
        id: u64,
    ) -> Result<(Arc<CachePool>, PartitionHandle), Response> {
        let pool = self.cache(name)?;
        match find(&pool, id) {
            Some(part) => Ok((pool, part)),
            None => Err(Response::Moved {
                epoch: pool.epoch(),
            }),
        }
    }

    fn cache(&self, name: &str) -> Result<Arc<CachePool>, Response> {
        self.caches.read().get(name).cloned().ok_or_else(|| {
            Response::Failed(reply::node_unavailable(&format!(
                "no cache {name} on this node"
            )))
        })
    }

    /// The pool of `cache` if partition `partition` is here and serves
    /// `keys` (what WATCH and blocked clients register on); else the
    /// answer: `Moved`, or no such cache.
    fn serving(
        &self,
        cache: &str,
        partition: u64,
        keys: &[Bytes],
    ) -> Result<Arc<CachePool>, Response> {
        let pool = self.cache(cache)?;
        if pool.serves(partition, keys) {
            Ok(pool)
        } else {
            Err(Response::Moved {
                epoch: pool.epoch(),
            })
        }
    }

    /// Runs one request of a connection that registered `interest`.
    async fn handle(&self, request: Request, interest: &Interest) -> Response {
        // Checked again as it runs: the process may have stood still
        // (SIGSTOP, a long pause) since the request came.
        if self.fenced() {
            return Response::Failed(reply::node_unavailable(FENCED));
        }
        match request {
            Request::Watch {
                cache,
                partition,
                keys,
            } => match self.serving(&cache, partition, &keys) {
                Ok(pool) => Response::Versions(interest.watch(&pool, &cache, &keys)),
                Err(refused) => refused,
            },
            Request::Unwatch { cache, keys } => {
                interest.unwatch(&cache, &keys);
                Response::Done
            }
            Request::Block {
                cache,
                partition,
                keys,
                takes,
            } => match self.serving(&cache, partition, &keys) {
                Ok(pool) => match interest.block(pool, keys, takes) {
                    Some((subscription, ticket)) => Response::Blocked {
                        subscription,
                        ticket,
                    },
                    None => Response::Failed(reply::node_unavailable(
                        "too many blocked clients on this connection",
                    )),
                },
                Err(refused) => refused,
            },
            Request::Await {
                subscription,
                first,
            } => {
                if interest.woken(subscription, first).await {
                    Response::Woken
                } else {
                    // Its place in line is gone (a connection that ended):
                    // the proxy gets in line again.
                    Response::Failed(reply::node_unavailable("no such subscription"))
                }
            }
            Request::Unblock { subscription } => {
                interest.unblock(subscription);
                Response::Done
            }
            Request::Kill { cache, functions } => match self.cache(&cache) {
                Ok(pool) => Response::Killed(pool.kill_here(functions)),
                Err(failed) => failed,
            },
            Request::Ping => Response::Done,
            // Only ever the first frame (phase 0).
            Request::Hello { .. } => Response::Failed("ERR Hello twice".into()),
            // Run in order by the connection ([`Node::admin`]).
            Request::Host { .. }
            | Request::Unhost { .. }
            | Request::Split { .. }
            | Request::Merge { .. }
            | Request::Layout { .. }
            | Request::Export { .. }
            | Request::Import { .. } => Response::Failed("ERR admin request out of order".into()),
            Request::Routes { cache } => match self.cache(&cache) {
                Ok(pool) => routes(&pool),
                Err(failed) => failed,
            },
            Request::Stats { cache, partition } => {
                let pool = match self.cache(&cache) {
                    Ok(p) => p,
                    Err(failed) => return failed,
                };
                match find(&pool, partition) {
                    Some(part) => Response::Stats(part.stats().into()),
                    None => Response::Moved {
                        epoch: pool.epoch(),
                    },
                }
            }
            Request::Publish {
                cache,
                origin,
                channel,
                message,
                shard,
            } => {
                let pool = match self.cache(&cache) {
                    Ok(p) => p,
                    Err(failed) => return failed,
                };
                if let Some(feed) = pool.feed() {
                    let item = crate::pool::feed::FeedItem::Message {
                        channel,
                        message,
                        shard,
                    };
                    feed.push(origin, [item]);
                }
                Response::Done
            }
            Request::Feed {
                cache,
                after,
                flags,
            } => {
                let pool = match self.cache(&cache) {
                    Ok(p) => p,
                    Err(failed) => return failed,
                };
                let Some(feed) = pool.feed().cloned() else {
                    return Response::Failed("ERR no feed".into());
                };
                let (next, items) = feed.read(after, flags).await;
                Response::Fed { next, items }
            }
            Request::Evict {
                cache,
                partition,
                policy,
                bytes,
                count,
            } => {
                let (_, part) = match self.partition(&cache, partition) {
                    Ok(found) => found,
                    Err(answer) => return answer,
                };
                let now = crate::partition::now_ms();
                let (mut keys, mut freed) = (0u64, 0u64);
                while keys < u64::from(count.min(MAX_EVICT)) && freed < bytes {
                    match part.evict_one(now, policy) {
                        Some(b) => (keys, freed) = (keys + 1, freed + b as u64),
                        None => break,
                    }
                }
                Response::Evicted {
                    keys,
                    stats: part.stats().into(),
                }
            }
            Request::Keys {
                cache,
                partition,
                busy_threshold_ms,
                op,
            } => {
                let now = crate::partition::now_ms();
                let (pool, part) = match self.partition(&cache, partition) {
                    Ok(found) => found,
                    Err(answer) => return answer,
                };
                let busy = Duration::from_millis(busy_threshold_ms);
                match pool.keys_op(&part, op, now, busy).await {
                    Ok(done) => Response::Keys(done),
                    Err(not_run) => not_run.into(),
                }
            }
            Request::Execute(batch) => match self.cache(&batch.cache) {
                Ok(pool) => execute(&pool, batch).await,
                Err(failed) => failed,
            },
        }
    }
}

/// What one proxy connection registered on this node's keys: watchers
/// and blocked clients, all let go when the connection ends (a proxy that
/// dies leaves nothing behind).
struct Interest {
    watched: Mutex<HashMap<(String, Bytes), Watchers>>,
    /// `None` once the connection ended: nothing registers any more (a
    /// request still running then must not leave a registration behind).
    blocked: Mutex<Option<HashMap<u64, Subscription>>>,
    closed: std::sync::atomic::AtomicBool,
}

/// Subscription ids, unique on this node (a stale id from an ended
/// connection never names another client's place in line).
static NEXT_SUBSCRIPTION: AtomicU64 = AtomicU64::new(1);

/// Watchers one connection counted on a key: the cache's pool and how many.
type Watchers = (Arc<CachePool>, usize);

/// A blocked client's places in line.
struct Subscription {
    pool: Arc<CachePool>,
    keys: Vec<Bytes>,
    notify: Arc<tokio::sync::Notify>,
}

impl Subscription {
    /// Leaves every line; an `Await` still waiting ends.
    fn leave(self) {
        for k in &self.keys {
            self.pool.events().unsubscribe(k, &self.notify);
        }
        self.notify.notify_one();
    }
}

impl Interest {
    fn new() -> Interest {
        Interest {
            watched: Mutex::new(HashMap::new()),
            blocked: Mutex::new(Some(HashMap::new())),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn watch(&self, pool: &Arc<CachePool>, cache: &str, keys: &[Bytes]) -> Vec<u64> {
        let mut watched = self.watched.lock();
        if self.closed.load(Ordering::Acquire) {
            // No version a later EXEC could match.
            return vec![u64::MAX; keys.len()];
        }
        keys.iter()
            .map(|k| {
                watched
                    .entry((cache.to_string(), k.clone()))
                    .or_insert_with(|| (pool.clone(), 0))
                    .1 += 1;
                pool.events().watch(k)
            })
            .collect()
    }

    /// Only watchers this connection counted go, from the pool they were
    /// counted in.
    fn unwatch(&self, cache: &str, keys: &[Bytes]) {
        let mut watched = self.watched.lock();
        for k in keys {
            let entry = (cache.to_string(), k.clone());
            let Some((pool, n)) = watched.get_mut(&entry) else {
                continue;
            };
            pool.events().unwatch(k);
            *n -= 1;
            if *n == 0 {
                watched.remove(&entry);
            }
        }
    }

    /// Puts a client in line on `keys`: its subscription and ticket, or
    /// `None` past [`MAX_SUBSCRIPTIONS`] or once the connection ended.
    fn block(
        &self,
        pool: Arc<CachePool>,
        keys: Vec<Bytes>,
        takes: Option<cmd::Takes>,
    ) -> Option<(u64, u64)> {
        let mut blocked = self.blocked.lock();
        let subs = blocked.as_mut().filter(|s| s.len() < MAX_SUBSCRIPTIONS)?;
        let notify = Arc::new(tokio::sync::Notify::new());
        let ticket = pool.events().ticket();
        for k in &keys {
            pool.events().subscribe(k, &notify, ticket, takes);
        }
        let id = NEXT_SUBSCRIPTION.fetch_add(1, Ordering::Relaxed);
        subs.insert(id, Subscription { pool, keys, notify });
        Some((id, ticket))
    }

    /// Waits for a write of a key of subscription `id`; false at once if
    /// it is not (or no longer) this connection's.
    async fn woken(&self, id: u64, first: bool) -> bool {
        let notify = {
            let blocked = self.blocked.lock();
            let Some(sub) = blocked.as_ref().and_then(|b| b.get(&id)) else {
                return false;
            };
            if first {
                sub.pool
                    .events()
                    .blocked(sub.keys.iter().map(|k| &k[..]), &sub.notify);
            }
            sub.notify.clone()
        };
        notify.notified().await;
        true
    }

    fn unblock(&self, id: u64) {
        let sub = self.blocked.lock().as_mut().and_then(|b| b.remove(&id));
        if let Some(sub) = sub {
            sub.leave();
        }
    }

    /// The connection ended: everything it registered goes, and nothing
    /// registers after.
    fn release(&self) {
        let watched = {
            let mut watched = self.watched.lock();
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut *watched)
        };
        let blocked = self.blocked.lock().take().unwrap_or_default();
        for sub in blocked.into_values() {
            sub.leave();
        }
        for ((_, key), (pool, n)) in watched {
            for _ in 0..n {
                pool.events().unwatch(&key);
            }
        }
    }
}

/// The cache's routing table as a node reports it.
fn routes(pool: &CachePool) -> Response {
    // The epoch first: a table read after it is at least that new.
    let epoch = pool.epoch();
    Response::Routes {
        epoch,
        ranges: pool
            .ranges()
            .into_iter()
            .map(|(first, last, part)| wire::Range {
                first,
                last,
                partition: part.id(),
                // Empty: on this node.
                node: pool.home(part.id()).unwrap_or_default(),
            })
            .collect(),
    }
}

/// Keys one [`Request::Evict`] takes at most (about 0.15 ms of the
/// partition's lock, taken per key).
const MAX_EVICT: u32 = 64;

fn find(pool: &CachePool, partition: u64) -> Option<PartitionHandle> {
    pool.partition(partition)
}

/// Runs a batch in the partition it names, as the in-process path runs it.
async fn execute(pool: &CachePool, batch: wire::Execute) -> Response {
    let Some(part) = find(pool, batch.partition) else {
        // Merged away: its slots are elsewhere now.
        return Response::Moved {
            epoch: pool.epoch(),
        };
    };
    let mut specs = Vec::with_capacity(batch.commands.len());
    for args in &batch.commands {
        let Some(spec) = args.first().and_then(|name| cmd::table::lookup(name)) else {
            return Response::Failed(reply::node_unavailable("unknown command"));
        };
        // The node checks what it runs: a data command, whole, and (below)
        // the slots of its keys, whatever the proxy said.
        if !matches!(spec.exec, cmd::Exec::Data(_)) || !spec.arity_ok(args.len()) {
            return Response::Failed(reply::node_unavailable("malformed batch"));
        }
        specs.push(spec);
    }
    let mut slots = batch.slots.clone();
    for (spec, args) in specs.iter().zip(&batch.commands) {
        // FCALL's last two arguments are the proxy's (the function's
        // flags and library, its code), not the client's keys.
        let client_args = match spec.name {
            "fcall" | "fcall_ro" => &args[..args.len().saturating_sub(2)],
            _ => &args[..],
        };
        slots.extend(
            spec.key_positions(client_args)
                .map(|i| key_slot(&client_args[i])),
        );
    }
    slots.sort_unstable();
    slots.dedup();
    let cmds: Vec<(&'static cmd::CommandSpec, &[Bytes])> = specs
        .into_iter()
        .zip(&batch.commands)
        .map(|(spec, args)| (spec, &args[..]))
        .collect();
    let watched: Vec<(Box<[u8]>, u64)> = batch
        .watched
        .iter()
        .map(|(k, v)| (k.to_vec().into_boxed_slice(), *v))
        .collect();
    let mut o = batch.options;
    // A script's PUBLISH counts the sending proxy's subscribers: the node
    // keeps the proxy's table by version, and asks for it when it has not
    // that one.
    let listeners = match (o.listeners, pool.feed()) {
        (0, _) | (_, None) => None,
        (version, Some(feed)) => match feed.listeners(o.origin, version) {
            Some(table) => Some(table),
            None => match o.listener_table.take() {
                Some(table) => Some(feed.keep_listeners(o.origin, version, *table)),
                None => return Response::NeedListeners,
            },
        },
    };
    // A script's calls are checked against its user's rules.
    let gate = match o.rules.as_deref().map(crate::acl::Access::from_rules) {
        None => None,
        Some(Ok(access)) => {
            let access = Arc::new(access);
            Some(crate::acl::script_gate(move || access.clone()))
        }
        Some(Err(e)) => return Response::Failed(format!("ERR bad rules in batch: {e}")),
    };
    // The batch's events: in its reply for the proxy that sent it (it
    // delivers them before answering its client), and in the feed for the
    // others.
    if o.notify != 0
        && let Some(feed) = pool.feed()
    {
        feed.want(o.notify);
    }
    let batch_events = (o.origin != 0)
        .then(|| Arc::new(crate::pool::BatchEvents::new(o.origin, o.notify, listeners)));
    let opts = ExecOptions {
        resp3: o.resp3,
        max_value_len: usize::try_from(o.max_value_len).unwrap_or(usize::MAX),
        busy_threshold: Duration::from_millis(o.busy_threshold_ms),
        room: o.room,
        ticket: o.ticket,
        retry: o.retry,
        no_touch: o.no_touch,
        client: o.client,
        encoding: o.encoding,
        script_time_limit: Duration::from_millis(o.script_time_limit_ms),
        gate,
        notify: o.notify,
        batch_events: batch_events.clone(),
        // The partition's node stamps time (TTLs, LRU clocks), as its
        // expiry cycle does: a proxy's skewed clock changes nothing.
        ..ExecOptions::new(crate::partition::now_ms())
    };
    match pool.run_in(&part, &cmds, &slots, &watched, &opts).await {
        Ok(Some(done)) => Response::Executed {
            replies: done
                .into_iter()
                .map(|e| wire::Executed {
                    reply: e.reply,
                    work: e.work,
                    waits: e.waits,
                    resume: e.resume,
                })
                .collect(),
            stats: Box::new(
                batch_events
                    .as_ref()
                    .and_then(|b| b.stats.lock().take())
                    .unwrap_or_else(|| part.stats())
                    .into(),
            ),
            events: batch_events.map_or_else(Vec::new, |b| b.take()),
            feed: pool.feed().map_or(0, |f| f.next()),
        },
        Ok(None) => Response::Aborted,
        Err(not_run) => not_run.into(),
    }
}

impl From<NotRun> for Response {
    fn from(not_run: NotRun) -> Response {
        match not_run {
            NotRun::Moved(m) => Response::Moved { epoch: m.epoch },
            NotRun::Busy => Response::Busy,
            NotRun::Unavailable(why) => Response::Failed(why),
        }
    }
}

/// Joins the deployment through etcd: a lease of `meta`'s TTL, renewed
/// until `stop`, under which the node announces itself as `id` at `addr`
/// ([`keys::node`](crate::meta::keys::node)); a node already announced
/// under the id (a restart) is replaced.
pub async fn join(
    meta: &crate::config::MetaConfig,
    id: &str,
    addr: std::net::SocketAddr,
    stop: tokio_util::sync::CancellationToken,
) -> Result<Arc<crate::meta::lease::Lease>, crate::meta::MetaError> {
    use crate::meta::keys;
    let store = crate::meta::open(&meta.etcd).await?;
    let lease = crate::meta::lease::Lease::grant(store.clone(), meta.lease_ttl(), stop).await?;
    let record = serde_json::to_vec(&keys::NodeRecord { addr }).expect("a node record serializes");
    let key = keys::node(id);
    // A node of the same id still announced (this one's previous life,
    // or another process): joined only once its lease has expired, so
    // the two never serve at once.
    let mut waited = false;
    loop {
        let put = crate::meta::Op::Put {
            key: key.clone(),
            value: record.clone(),
            lease: lease.id,
        };
        if store
            .txn(vec![crate::meta::Cond::Absent(key.clone())], vec![put])
            .await?
        {
            return Ok(lease);
        }
        if !waited {
            tracing::warn!(
                id,
                "a node of this id is still announced: joining once its lease expires"
            );
            waited = true;
        }
        if lease.lost().is_cancelled() {
            return Err(crate::meta::MetaError::Fenced);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
