//! Per-connection state: [`Session`], what a client connection remembers
//! between commands (bound cache, protocol, subscriptions, MULTI queue,
//! WATCHed keys), and [`Connection`], the state every command handler of
//! the proxy receives (the session, the shared state, the output, client
//! memory). A leaf of the proxy: the handlers import it, it imports none
//! of them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hashbrown::HashSet;
use tokio_util::sync::CancellationToken;

use super::memory::{ClientMemory, write_room};
use super::shared::ProxyShared;
use crate::acl::User;
use crate::cmd::CommandSpec;
use crate::cmd::script::CommandGate;
use crate::control::Cache;
use crate::control::introspection::ClientHandle;
use crate::metering::usage::Tally;
use crate::partition::{ClusterMode, lazyfree};
use crate::pool::ExecOptions;
use crate::pubsub::{Kind, Mailbox};
use crate::resp::{Protocol, Request};

/// What one client connection remembers between commands.
pub struct Session {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub created: Instant,
    pub last_command: Instant,
    /// The cache this connection is bound to (`None` = not authenticated).
    pub cache: Option<Arc<Cache>>,
    pub protocol: Protocol,
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    /// Set by QUIT or a fatal error: close after flushing.
    pub closing: bool,
    /// An open MULTI.
    pub multi: Option<Transaction>,
    /// WATCHed keys with their slot and version at WATCH time.
    pub watched: Vec<Watched>,
    /// Keys in `watched` (WATCH is O(1) per key).
    pub watched_keys: hashbrown::HashSet<Box<[u8]>>,
    /// The connection's place among unauthenticated sockets, until it binds.
    pub preauth: Option<super::shared::PreAuth>,
    /// Where its turns on a reactor thread are taken: its cache's lane, or
    /// its address's while unbound.
    pub lane: super::turns::Lane,
    /// The open default cache was full when the connection arrived: it may
    /// still AUTH into a cache; anything else is told `max number of
    /// clients reached` (cleared when it binds).
    pub turned_away: bool,
    /// The named user logged in (`None` = the cache's default user, who
    /// may do everything).
    pub user: Option<Arc<User>>,
    /// The user's permissions for the commands its scripts call.
    pub gate: Option<CommandGate>,
    /// What the bound cache's other clients see of this one (CLIENT LIST,
    /// KILL, UNBLOCK); registered with the cache while bound.
    pub handle: Arc<ClientHandle>,
    /// CLIENT REPLY: whether replies are sent.
    pub reply_mode: ReplyMode,
    /// Wire bytes of the request being run (CLIENT LIST's `qbuf`).
    pub request_len: u64,
    /// Pub/Sub subscriptions and mailbox (from the first SUBSCRIBE or
    /// CLIENT TRACKING).
    pub pubsub: Option<Subscriptions>,
    /// CLIENT TRACKING is on (the cache's table has the options).
    pub tracking: bool,
    /// CLIENT CACHING YES|NO was given for the next command.
    pub caching_given: bool,
    /// CLIENT NO-TOUCH (also shown in the handle's view).
    pub no_touch: bool,
}

/// CLIENT REPLY ON | OFF | SKIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// The next command's reply is dropped, then back to `On`.
    Skip,
    /// Set by SKIP: drop the reply of the command being run now.
    SkipThis,
}

/// A key under WATCH.
pub struct Watched {
    pub key: Box<[u8]>,
    pub slot: u16,
    pub version: u64,
}

/// Commands queued between MULTI and EXEC.
#[derive(Default)]
pub struct Transaction {
    pub queued: Vec<(&'static CommandSpec, Request)>,
    /// A queued command was refused: EXEC answers EXECABORT.
    pub failed: bool,
    /// The one slot every key of the transaction is in.
    pub slot: Option<u16>,
    /// Keys named by the queued commands (metered at EXEC).
    pub keys: u64,
    /// Wire bytes of the queued commands (metered as they were queued).
    pub wire: u64,
    /// Memory the queue holds, bytes (counted with the query buffer).
    pub memory: u64,
}

/// Whether a command may join an open MULTI's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queueing {
    /// Its keys are not in the transaction's slot: refused, and the
    /// transaction is doomed.
    CrossSlot,
    /// The transaction is doomed already: answered QUEUED, not kept.
    Doomed,
    /// Kept (its slot and keys counted; the caller stores it).
    Take,
}

impl Transaction {
    /// Checks a command whose keys are in `slots`: every key of a
    /// transaction shares one slot (unless `mode` lets any slots go
    /// together), as it runs atomically in one partition.
    pub fn admit(&mut self, slots: &[u16], mode: ClusterMode) -> Queueing {
        let mut all = self.slot.into_iter().chain(slots.iter().copied());
        let first = all.next();
        if let Some(first) = first
            && all.any(|s| !mode.together(first, s))
        {
            self.failed = true;
            return Queueing::CrossSlot;
        }
        if self.failed {
            return Queueing::Doomed;
        }
        self.slot = first;
        self.keys += slots.len() as u64;
        Queueing::Take
    }
}

impl Drop for Transaction {
    /// A long queue is freed off the reactor ([`lazyfree`]): 300k queued
    /// commands take tens of ms to drop.
    fn drop(&mut self) {
        let queued = std::mem::take(&mut self.queued);
        let allocations = queued.iter().map(|(_, r)| r.args.len() + 1).sum();
        lazyfree::free(queued, allocations, self.memory as usize);
    }
}

impl Session {
    pub fn new(id: u64, peer: SocketAddr, local: SocketAddr) -> Session {
        let now = Instant::now();
        Session {
            id,
            peer,
            local,
            created: now,
            last_command: now,
            cache: None,
            protocol: Protocol::Resp2,
            name: None,
            lib_name: None,
            lib_ver: None,
            closing: false,
            multi: None,
            watched: Vec::new(),
            watched_keys: hashbrown::HashSet::new(),
            preauth: None,
            lane: super::turns::Lane::new(super::turns::address_lane(peer.ip())),
            turned_away: false,
            user: None,
            gate: None,
            handle: Arc::new(ClientHandle::new(id, peer, local, now)),
            reply_mode: ReplyMode::On,
            request_len: 0,
            pubsub: None,
            tracking: false,
            caching_given: false,
            no_touch: false,
        }
    }

    /// Logs the (bound) connection in as `user` (`None` = default user).
    pub fn login(&mut self, user: Option<Arc<User>>) {
        // The user's roster raises REVOKED on this connection when the
        // user is disconnected.
        if let Some(old) = &self.user {
            old.sessions.leave(self.id);
        }
        if let Some(u) = &user {
            u.sessions.join(self.id, &self.handle.attention);
        }
        // The user's rules as they are when the script runs.
        self.gate = user
            .clone()
            .map(|u| crate::acl::script_gate(move || u.access()));
        self.user = user;
    }

    /// The user's name, as `ACL WHOAMI` and denials show it.
    pub fn user_name(&self) -> &str {
        self.user.as_ref().map_or("default", |u| u.name.as_str())
    }

    /// Binds the connection to `cache`, moving the connection counts;
    /// false (nothing changes) if the cache already has `max_per_cache`
    /// connections.
    pub fn bind(&mut self, cache: Arc<Cache>, max_per_cache: usize) -> bool {
        if self.cache.as_ref().is_some_and(|c| Arc::ptr_eq(c, &cache)) {
            return true;
        }
        let before = cache.usage.connected.fetch_add(1, Ordering::AcqRel);
        if before >= max_per_cache as u64 {
            cache.usage.connected.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        self.unbind();
        cache
            .usage
            .connections_received
            .fetch_add(1, Ordering::Relaxed);
        cache.server.add_client(self.handle.clone());
        self.lane.set(super::turns::cache_lane(&cache));
        self.cache = Some(cache);
        self.preauth = None;
        self.turned_away = false;
        true
    }

    /// A new connection joins the open default cache `cache`. If that
    /// cache is full the client may still be on its way to AUTH into
    /// another: it waits unbound, in a place among unauthenticated sockets
    /// (and their time limit), so one tenant filling the default cache
    /// locks no other tenant out. False: no room there either (refuse it).
    pub fn join_default(&mut self, cache: Arc<Cache>, shared: &ProxyShared) -> bool {
        if self.bind(cache, shared.max_clients_per_cache) {
            return true;
        }
        let Some(place) = shared.preauth(self.handle.peer.ip()) else {
            return false;
        };
        self.preauth = Some(place);
        self.turned_away = true;
        true
    }

    /// Forgets every WATCHed key.
    pub fn unwatch(&mut self) {
        if let Some(cache) = &self.cache
            && !self.watched.is_empty()
        {
            let keys = self
                .watched
                .drain(..)
                .map(|w| bytes::Bytes::from(w.key.into_vec()))
                .collect();
            cache.pool.unwatch(keys);
        }
        self.watched.clear();
        self.watched_keys.clear();
    }

    pub fn unbind(&mut self) {
        self.unwatch();
        unsubscribe_all(self);
        self.multi = None;
        self.login(None);
        if let Some(old) = self.cache.take() {
            old.server.remove_client(self.id);
            old.usage.connected.fetch_sub(1, Ordering::Relaxed);
            self.lane.set(super::turns::address_lane(self.peer.ip()));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.unbind();
    }
}

/// A connection's subscriptions and mailbox.
pub struct Subscriptions {
    pub mailbox: Arc<Mailbox>,
    pub channels: HashSet<Bytes>,
    pub patterns: HashSet<Bytes>,
    pub shard: HashSet<Bytes>,
    /// Client memory the names hold, bytes.
    pub memory: u64,
    /// The connection is a MONITOR (its mailbox is in the cache's list).
    pub monitor: bool,
}

impl Subscriptions {
    pub fn set(&mut self, kind: Kind) -> &mut HashSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// Redis's count in confirmations: channels and patterns together,
    /// shard channels apart.
    pub fn count(&self, kind: Kind) -> i64 {
        match kind {
            Kind::Shard => self.shard.len() as i64,
            _ => (self.channels.len() + self.patterns.len()) as i64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty() && self.shard.is_empty()
    }
}

/// Forgets every subscription of the session in its cache's hub (on
/// RESET, a new AUTH, or the connection's end).
pub fn unsubscribe_all(session: &mut Session) {
    let Some(subs) = session.pubsub.take() else {
        return;
    };
    let Some(cache) = &session.cache else {
        return;
    };
    let hub = cache.pool.hub();
    let id = subs.mailbox.id;
    cache.pool.tracking().unregister(id);
    if subs.monitor {
        cache.pool.monitors().remove(id);
    }
    session.tracking = false;
    for (kind, names) in [
        (Kind::Channel, &subs.channels),
        (Kind::Pattern, &subs.patterns),
        (Kind::Shard, &subs.shard),
    ] {
        for name in names {
            hub.unsubscribe(kind, name, id);
        }
    }
}

/// A connection's state outside the socket.
pub struct Connection<'a> {
    pub session: Session,
    pub shared: &'a ProxyShared,
    pub wbuf: BytesMut,
    /// Server shutdown: ends blocked commands too.
    pub shutdown: CancellationToken,
    /// Client memory this connection holds (read buffer and MULTI queue),
    /// as charged to the server's and its cache's totals.
    pub memory: ClientMemory,
    /// Bytes at the front of the read buffer whose transfer the cache's
    /// limiter has admitted already (a big request admitted as it arrives).
    pub prepaid: u64,
    /// Milli-ECPU of the current request's bytes billed to the cache while
    /// they arrived (its final bill leaves them out).
    pub billed_early: u64,
    /// Bytes the current PUBLISH delivered to subscribers: the publisher
    /// pays their transfer.
    pub delivered: u64,
    /// What the cache's limiter already decided for the requests at the
    /// front of the decoded ones (see `conn::run_batch`).
    pub admission: Admission,
    /// Usage of the requests run since the last flush (see [`Tally`]).
    pub tally: Tally,
    /// The last command run and when it started, for `CLIENT LIST`'s view
    /// of this connection: written there once per batch of requests, with
    /// the usage ([`Connection::flush_usage`](super::conn)).
    pub last_command: Option<(std::borrow::Cow<'static, str>, std::time::Instant)>,
    /// The command last looked up by name: a client repeats its commands,
    /// and comparing a name with it is cheaper than the table's lookup.
    pub last_spec: Option<&'static CommandSpec>,
}

impl Connection<'_> {
    /// How long a script may hold a partition before this cache's other
    /// commands there get BUSY (the cache's `busy-reply-threshold`).
    pub fn busy_threshold(&self) -> Duration {
        self.session
            .cache
            .as_ref()
            .map_or(self.shared.busy_threshold, |c| {
                c.server.config.busy_threshold(self.shared.busy_threshold)
            })
    }

    /// Memory held besides the read buffer: an open MULTI's queue and the
    /// Pub/Sub subscriptions.
    pub fn queued_memory(&self) -> u64 {
        self.session.multi.as_ref().map_or(0, |t| t.memory)
            + self.session.pubsub.as_ref().map_or(0, |s| s.memory)
    }

    /// Charges `extra` bytes more of client memory (see [`Self::account`]).
    pub fn charge_more(&mut self, extra: u64) -> Result<(), &'static str> {
        self.account(self.memory.charged + extra)
    }

    /// Sets the client memory this connection holds to `bytes`, charged to
    /// the server and its cache; `Err` (nothing changes) if that would pass
    /// the connection's, its cache's or the server's limit.
    pub fn account(&mut self, bytes: u64) -> Result<(), &'static str> {
        self.memory
            .set(self.shared, self.session.cache.as_ref(), bytes)
    }

    /// What a data command of this connection runs with at `now`.
    pub fn exec_options(&self, now: u64) -> ExecOptions {
        // Growth allowed before the memory limit (checked by the writes that
        // allocate more than their request carries), with the overshoot a
        // write may make past it.
        let room = self
            .session
            .cache
            .as_ref()
            .map_or(u64::MAX, |c| write_room(c));
        ExecOptions {
            reply_budget: usize::MAX,
            now,
            resp3: self.session.protocol == Protocol::Resp3,
            max_value_len: self.shared.decoder.limits.max_bulk_len,
            script_time_limit: self.shared.script_time_limit,
            busy_threshold: self.busy_threshold(),
            room,
            script: None,
            gate: self.session.gate.clone(),
            ticket: None,
            retry: false,
            encoding: self
                .session
                .cache
                .as_ref()
                .map(|c| c.server.config.encoding())
                .unwrap_or_default(),
            no_touch: self.session.no_touch,
            client: self.session.id,
            calls: None,
            notify: 0,
            batch_events: None,
        }
    }
}

/// The limiter's decision carried from a pipeline's batch to the requests
/// it did not run (`conn::run_batch` admits requests one by one, without
/// waiting, before running them together).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Nothing decided: the next request is admitted as it runs.
    #[default]
    Undecided,
    /// The next `n` requests are admitted already (a batch stopped at its
    /// reply budget before running them); the one after them owes what it
    /// was refused, if anything (as [`Admission::Owed`]).
    Paid(usize, Option<(u64, std::time::Duration)>),
    /// The next request was refused now: the charge still due and how long
    /// until it may pass; the request path waits for it or throttles.
    Owed(u64, std::time::Duration),
}

impl Admission {
    /// Takes the decision for the next request, leaving the others'.
    pub fn take_next(&mut self) -> Admission {
        match *self {
            Admission::Paid(n, then) if n > 1 => {
                *self = Admission::Paid(n - 1, then);
                Admission::Paid(1, None)
            }
            Admission::Paid(_, Some((charge, wait))) => {
                *self = Admission::Owed(charge, wait);
                Admission::Paid(1, None)
            }
            taken => {
                *self = Admission::Undecided;
                taken
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paid_requests_come_first_then_the_refused_one_owes() {
        let wait = std::time::Duration::from_millis(5);
        let mut a = Admission::Paid(2, Some((700, wait)));
        assert_eq!(a.take_next(), Admission::Paid(1, None));
        assert_eq!(a.take_next(), Admission::Paid(1, None));
        assert_eq!(a.take_next(), Admission::Owed(700, wait));
        assert_eq!(a.take_next(), Admission::Undecided);
        let mut b = Admission::Paid(1, None);
        assert_eq!(b.take_next(), Admission::Paid(1, None));
        assert_eq!(b.take_next(), Admission::Undecided);
    }

    /// MULTI queueing: keys of one slot are kept and counted; a key of
    /// another slot dooms the transaction, after which commands are
    /// answered QUEUED and dropped; with cluster mode disabled any slots
    /// go together; keyless commands join any transaction.
    #[test]
    fn a_transaction_queues_keys_of_one_slot() {
        let mut tx = Transaction::default();
        assert_eq!(tx.admit(&[], ClusterMode::Enabled), Queueing::Take);
        assert_eq!(tx.slot, None);
        assert_eq!(tx.admit(&[7, 7], ClusterMode::Enabled), Queueing::Take);
        assert_eq!((tx.slot, tx.keys), (Some(7), 2));
        assert_eq!(tx.admit(&[], ClusterMode::Enabled), Queueing::Take);
        assert_eq!(tx.admit(&[8], ClusterMode::Enabled), Queueing::CrossSlot);
        assert!(tx.failed);
        assert_eq!(tx.admit(&[7], ClusterMode::Enabled), Queueing::Doomed);
        assert_eq!(tx.keys, 2, "nothing counted once doomed");

        let mut any = Transaction::default();
        assert_eq!(any.admit(&[1], ClusterMode::Disabled), Queueing::Take);
        assert_eq!(
            any.admit(&[16000, 2], ClusterMode::Disabled),
            Queueing::Take
        );
        assert_eq!(any.keys, 3);
        assert!(!any.failed);
    }
}
