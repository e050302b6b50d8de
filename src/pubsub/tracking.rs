//! Client-side caching (CLIENT TRACKING) for one cache: which client
//! cached which key, and the invalidation messages when a key changes.
//!
//! - Default mode: the keys a tracking client reads are remembered
//!   ([`Tracking::remember`]); the first write of such a key sends the
//!   client (or its REDIRECT target) one invalidation and forgets the key.
//!   A client that has since turned tracking off or switched to BCAST hears
//!   nothing of the keys it read before (as Redis).
//! - BCAST mode: a client names prefixes (none = every key) and hears of
//!   every write of a matching key; nothing is remembered per key. The keys
//!   changed by one run of a partition (a command, a transaction, a batch
//!   of expiries) are sent together, one message per prefix with the keys
//!   in order ([`Tracking::flush_broadcast`], Redis's per-event-loop batch).
//! - Messages go to the client's [`Mailbox`]: a RESP3 push
//!   `>2 invalidate [keys]`, or, for a RESP2 redirect target in the
//!   subscribed state, a message on `__redis__:invalidate` (Redis's forms).
//!   NOLOOP skips writes the client made itself. FLUSHDB sends a null key
//!   list to every tracking client. A client whose REDIRECT target has gone
//!   is told so (`>2 tracking-redir-broken <id>`, RESP3 only).
//! - Order on the writer's own connection: an invalidation caused by the
//!   client's own command comes after that command's reply (Redis 7.0).
//!
//! Bounds: at most `tracking-table-max-keys` keys (never more than
//! [`MAX_TRACKED_KEYS`]) are remembered per cache; past it, arbitrary
//! remembered keys are invalidated (their clients told) to make room, as
//! Redis does. Nothing here costs anything while no client of the cache
//! tracks (one atomic load).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::{BufMut, Bytes, BytesMut};
use hashbrown::{HashMap, HashSet};
use parking_lot::Mutex;

use super::Mailbox;

/// Keys remembered for default-mode clients, per cache, at most (also
/// what `tracking-table-max-keys 0`, "no limit" in Redis, means here).
pub const MAX_TRACKED_KEYS: usize = 1_000_000;
/// Remembered keys invalidated at most per call when the limit is
/// lowered (the rest go on later calls, as Redis's growing effort).
const EVICT_EFFORT: usize = 10_000;

/// A client's CLIENT TRACKING options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Client id invalidations go to (0: the client itself).
    pub redirect: u64,
    pub bcast: bool,
    pub prefixes: Vec<Bytes>,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// The REDIRECT target has gone (CLIENT TRACKINGINFO's `broken_redirect`).
    pub broken: bool,
}

/// What CLIENT TRACKING keeps for INFO (Redis's field names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `tracking_clients`
    pub clients: usize,
    /// `tracking_total_keys`
    pub keys: usize,
    /// `tracking_total_items`: (key, client) pairs remembered.
    pub items: usize,
    /// `tracking_total_prefixes`
    pub prefixes: usize,
}

pub struct Tracking {
    /// Tracking clients: the write path skips everything while zero.
    active: AtomicUsize,
    state: Mutex<State>,
}

impl Default for Tracking {
    fn default() -> Self {
        Tracking {
            active: AtomicUsize::new(0),
            state: Mutex::new(State {
                max_keys: MAX_TRACKED_KEYS,
                ..State::default()
            }),
        }
    }
}

#[derive(Default)]
struct State {
    /// Every connection of the cache that has a mailbox, by client id.
    mailboxes: HashMap<u64, Weak<Mailbox>>,
    clients: HashMap<u64, Options>,
    keys: HashMap<Bytes, HashSet<u64>>,
    /// (key, client) pairs in `keys`.
    items: usize,
    max_keys: usize,
    /// BCAST prefixes (the empty prefix matches all), in order.
    prefixes: BTreeMap<Bytes, Prefix>,
    /// Some prefix has keys waiting for [`Tracking::flush_broadcast`].
    pending: bool,
    /// Clients whose running script called a read-only command (their
    /// EVAL / FCALL keys are remembered, as Redis).
    script_read: HashSet<u64>,
}

#[derive(Default)]
struct Prefix {
    clients: HashSet<u64>,
    /// Keys changed since the last broadcast, with who changed each last
    /// (0: nobody, an expiry or eviction).
    keys: BTreeMap<Bytes, u64>,
}

/// `*n` followed by the keys as bulk strings: an invalidation's key list.
fn key_list<'a>(keys: impl ExactSizeIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(b'*');
    out.put_slice(keys.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    for k in keys {
        out.put_u8(b'$');
        out.put_slice(k.len().to_string().as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(k);
        out.put_slice(b"\r\n");
    }
    out.freeze()
}

/// `>2 invalidate <keys>` or, for RESP2, `*3 message __redis__:invalidate
/// <keys>`; `keys` is the encoded key list, `None` for a flush: a null in
/// the tracking client's own protocol (`null_resp3`), whatever its
/// redirect target speaks, as Redis.
fn encode(resp3: bool, keys: Option<&[u8]>, null_resp3: bool) -> Bytes {
    let mut out = BytesMut::new();
    if resp3 {
        out.put_slice(b">2\r\n$10\r\ninvalidate\r\n");
    } else {
        out.put_slice(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n");
    }
    match keys {
        Some(k) => out.put_slice(k),
        None if null_resp3 => out.put_slice(b"_\r\n"),
        None => out.put_slice(b"$-1\r\n"),
    }
    out.freeze()
}

/// When a message goes relative to the reply of the running command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum When {
    Now,
    /// After the reply, if the message lands on this client's connection.
    AfterReplyOf(u64),
}

impl State {
    /// Sends one invalidation (`keys`: an encoded key list, `None` for a
    /// flush) to tracking client `id`, through its redirect.
    fn send(&mut self, id: u64, keys: Option<&[u8]>, when: When) {
        let Some(opts) = self.clients.get_mut(&id) else {
            return;
        };
        let redirect = opts.redirect;
        let own = self.mailboxes.get(&id).and_then(Weak::upgrade);
        let own_resp3 = own.as_ref().is_some_and(|m| m.resp3());
        let deliver = |mailbox: &Mailbox, bytes: &[u8]| match when {
            When::AfterReplyOf(w) if w == mailbox.id => mailbox.deliver_after_reply(bytes),
            _ => mailbox.deliver(bytes),
        };
        if redirect == 0 {
            // A RESP2 client cannot take pushes on its own connection.
            if let Some(m) = own.filter(|m| m.resp3()) {
                deliver(&m, &encode(true, keys, own_resp3));
            }
            return;
        }
        let Some(target) = self.mailboxes.get(&redirect).and_then(Weak::upgrade) else {
            // The target has gone: the client is told (RESP3 only).
            opts.broken = true;
            if let Some(m) = own.filter(|m| m.resp3()) {
                let mut out = BytesMut::new();
                out.put_slice(b">2\r\n$21\r\ntracking-redir-broken\r\n:");
                out.put_slice(redirect.to_string().as_bytes());
                out.put_slice(b"\r\n");
                deliver(&m, &out);
            }
            return;
        };
        // A RESP2 target only takes them in the subscribed state.
        if target.resp3() || target.subscribed() {
            deliver(&target, &encode(target.resp3(), keys, own_resp3));
        }
    }

    /// Forgets remembered `key`, telling its default-mode clients (but
    /// `writer` if it asked for NOLOOP).
    fn invalidate_key(&mut self, key: &[u8], writer: u64, when: When) {
        let Some(ids) = self.keys.remove(key) else {
            return;
        };
        self.items -= ids.len();
        let mut encoded: Option<Bytes> = None;
        for id in ids {
            let Some(opts) = self.clients.get(&id) else {
                continue;
            };
            if opts.bcast || (opts.noloop && id == writer) {
                continue;
            }
            let list = encoded
                .get_or_insert_with(|| key_list(std::iter::once(key)))
                .clone();
            let when = match when {
                // Only the writer's own invalidations wait for its reply.
                When::AfterReplyOf(w) if w == id => when,
                _ => When::Now,
            };
            self.send(id, Some(&list), when);
        }
    }

    /// Invalidates remembered keys until at most `max_keys` remain
    /// (at most [`EVICT_EFFORT`] of them now).
    fn limit(&mut self, when: When) {
        for _ in 0..EVICT_EFFORT {
            if self.keys.len() <= self.max_keys {
                return;
            }
            let Some(key) = self.keys.keys().next().cloned() else {
                return;
            };
            self.invalidate_key(&key, 0, when);
        }
    }
}

impl Tracking {
    /// Whether any client of the cache tracks keys.
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    /// A connection got a mailbox: it may receive invalidations (its own,
    /// or as a REDIRECT target).
    pub fn register(&self, mailbox: &Arc<Mailbox>) {
        self.state
            .lock()
            .mailboxes
            .insert(mailbox.id, Arc::downgrade(mailbox));
    }

    /// Connection `id` ends (or leaves the cache): tracking off, forgotten.
    pub fn unregister(&self, id: u64) {
        self.disable(id);
        let mut st = self.state.lock();
        st.mailboxes.remove(&id);
        st.script_read.remove(&id);
    }

    /// Whether client `id` exists (has a mailbox) in this cache.
    pub fn exists(&self, id: u64) -> bool {
        self.state
            .lock()
            .mailboxes
            .get(&id)
            .is_some_and(|w| w.strong_count() > 0)
    }

    /// The options of tracking client `id`, if it tracks.
    pub fn options(&self, id: u64) -> Option<Options> {
        self.state.lock().clients.get(&id).cloned()
    }

    /// INFO's tracking figures.
    pub fn stats(&self) -> Stats {
        let st = self.state.lock();
        Stats {
            clients: st.clients.len(),
            keys: st.keys.len(),
            items: st.items,
            prefixes: st.prefixes.len(),
        }
    }

    /// `tracking-table-max-keys` (0: [`MAX_TRACKED_KEYS`]) set by client
    /// `by`; keys past the new limit are invalidated now (after `by`'s
    /// reply on its own connection).
    pub fn set_max_keys(&self, max: u64, by: u64) {
        let mut st = self.state.lock();
        st.max_keys = match max {
            0 => MAX_TRACKED_KEYS,
            n => (n as usize).min(MAX_TRACKED_KEYS),
        };
        st.limit(When::AfterReplyOf(by));
    }

    /// CLIENT TRACKING ON (options checked by the caller). Turning it on
    /// again adds prefixes and replaces the other options, as Redis does.
    pub fn enable(&self, id: u64, mut opts: Options) {
        let mut st = self.state.lock();
        if opts.bcast {
            if opts.prefixes.is_empty() {
                opts.prefixes.push(Bytes::new());
            }
            for p in &opts.prefixes {
                st.prefixes.entry(p.clone()).or_default().clients.insert(id);
            }
        }
        if let Some(old) = st.clients.get(&id) {
            let mut all = old.prefixes.clone();
            all.extend(
                opts.prefixes
                    .iter()
                    .filter(|p| !old.prefixes.contains(p))
                    .cloned(),
            );
            opts.prefixes = all;
        } else {
            self.active.fetch_add(1, Ordering::Relaxed);
        }
        st.clients.insert(id, opts);
    }

    /// CLIENT TRACKING OFF.
    pub fn disable(&self, id: u64) {
        let mut st = self.state.lock();
        let Some(opts) = st.clients.remove(&id) else {
            return;
        };
        self.active.fetch_sub(1, Ordering::Relaxed);
        for p in &opts.prefixes {
            if let Some(prefix) = st.prefixes.get_mut(p) {
                prefix.clients.remove(&id);
                if prefix.clients.is_empty() {
                    st.prefixes.remove(p);
                }
            }
        }
        // Default-mode keys are dropped lazily: a write finds no client.
    }

    /// Default mode: client `id` read `keys`.
    pub fn remember<'a>(&self, id: u64, keys: impl Iterator<Item = &'a Bytes>) {
        let mut st = self.state.lock();
        if st.clients.get(&id).is_none_or(|o| o.bcast) {
            return;
        }
        for k in keys {
            if st.keys.entry(k.clone()).or_default().insert(id) {
                st.items += 1;
            }
        }
        st.limit(When::AfterReplyOf(id));
    }

    /// A script run by client `id` called a read-only command.
    pub fn note_script_read(&self, id: u64) {
        self.state.lock().script_read.insert(id);
    }

    /// Whether the script client `id` just ran called a read-only command
    /// (and forgets it).
    pub fn take_script_read(&self, id: u64) -> bool {
        self.state.lock().script_read.remove(&id)
    }

    /// `keys` changed (a write by client `writer`, 0 for none: expiry,
    /// eviction): the clients that cached them hear of it now (the writer
    /// after its reply); BCAST clients at the next
    /// [`Self::flush_broadcast`].
    pub fn invalidate<'a>(&self, keys: impl Iterator<Item = &'a [u8]>, writer: u64) {
        if !self.active() {
            return;
        }
        let mut st = self.state.lock();
        let when = match writer {
            0 => When::Now,
            w => When::AfterReplyOf(w),
        };
        for key in keys {
            let mut matched = false;
            for (p, prefix) in st.prefixes.iter_mut() {
                if key.starts_with(p) {
                    prefix.keys.insert(Bytes::copy_from_slice(key), writer);
                    matched = true;
                }
            }
            st.pending |= matched;
            st.invalidate_key(key, writer, when);
        }
    }

    /// Sends BCAST clients the keys changed since the last call: per
    /// prefix, one message with those keys in order (a NOLOOP client's
    /// own changes left out; the writer's own connection hears it after
    /// its reply).
    pub fn flush_broadcast(&self, writer: u64) {
        if !self.active() {
            return;
        }
        let mut st = self.state.lock();
        if !std::mem::take(&mut st.pending) {
            return;
        }
        let mut out: Vec<(u64, Bytes)> = Vec::new();
        let clients = std::mem::take(&mut st.clients);
        for prefix in st.prefixes.values_mut() {
            if prefix.keys.is_empty() {
                continue;
            }
            let keys = std::mem::take(&mut prefix.keys);
            let mut all: Option<Bytes> = None;
            for &id in &prefix.clients {
                if clients.get(&id).is_some_and(|o| o.noloop) {
                    let own: Vec<&[u8]> = keys
                        .iter()
                        .filter(|(_, w)| **w != id)
                        .map(|(k, _)| &k[..])
                        .collect();
                    if !own.is_empty() {
                        out.push((id, key_list(own.into_iter())));
                    }
                } else {
                    let list = all.get_or_insert_with(|| key_list(keys.keys().map(|k| &k[..])));
                    out.push((id, list.clone()));
                }
            }
        }
        st.clients = clients;
        let when = match writer {
            0 => When::Now,
            w => When::AfterReplyOf(w),
        };
        for (id, list) in out {
            st.send(id, Some(&list), when);
        }
    }

    /// FLUSHDB by client `writer` (0: none): every tracking client hears of
    /// it (a null key list), the writer after its reply.
    /// The table is emptied even when nobody tracks now (keys read by
    /// clients that have since turned tracking off linger until then).
    pub fn invalidate_all(&self, writer: u64) {
        let mut st = self.state.lock();
        let table = std::mem::take(&mut st.keys);
        let items = std::mem::take(&mut st.items);
        // A big table is freed off the reactor, as a big value.
        crate::partition::lazyfree::free(table, items + 1, items * 64);
        if !self.active() {
            return;
        }
        let ids: Vec<u64> = st.clients.keys().copied().collect();
        for id in ids {
            let when = if id == writer {
                When::AfterReplyOf(writer)
            } else {
                When::Now
            };
            st.send(id, None, when);
        }
    }
}
