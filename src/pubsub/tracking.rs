//! Client-side caching (CLIENT TRACKING) for one cache: which client
//! cached which key, and the invalidation messages when a key changes.
//!
//! - Default mode: the keys a tracking client reads are remembered
//!   ([`Tracking::remember`]); the first write of such a key sends the
//!   client (or its REDIRECT target) one invalidation and forgets the key.
//! - BCAST mode: a client names prefixes (none = every key) and hears of
//!   every write of a matching key; nothing is remembered per key.
//! - Messages go to the client's [`Mailbox`]: a RESP3 push
//!   `>2 invalidate [keys]`, or, for a RESP2 redirect target in the
//!   subscribed state, a message on `__redis__:invalidate` (Redis's forms).
//!   NOLOOP skips writes the client made itself. FLUSHDB sends a null key
//!   list to every tracking client.
//!
//! Bounds: at most [`MAX_TRACKED_KEYS`] keys are remembered per cache; past
//! it, an arbitrary remembered key is invalidated (its clients told) to make
//! room, as Redis's `tracking-table-max-keys`. Nothing here costs anything
//! while no client of the cache tracks (one atomic load).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::{BufMut, Bytes, BytesMut};
use hashbrown::{HashMap, HashSet};
use parking_lot::Mutex;

use super::Mailbox;

/// Keys remembered for default-mode clients, per cache.
pub const MAX_TRACKED_KEYS: usize = 1_000_000;

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
}

#[derive(Default)]
pub struct Tracking {
    /// Tracking clients: the write path skips everything while zero.
    active: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Every connection of the cache that has a mailbox, by client id.
    mailboxes: HashMap<u64, Weak<Mailbox>>,
    clients: HashMap<u64, Options>,
    keys: HashMap<Bytes, HashSet<u64>>,
    /// BCAST prefixes and their clients (the empty prefix matches all).
    prefixes: HashMap<Bytes, HashSet<u64>>,
}

/// `>2 invalidate <keys>` or, for RESP2, `*3 message __redis__:invalidate <keys>`;
/// `keys` is `None` for a flush: a null in the tracking client's own
/// protocol (`null_resp3`), whatever its redirect target speaks, as Redis.
fn encode(resp3: bool, keys: Option<&[u8]>, null_resp3: bool) -> Bytes {
    let mut out = BytesMut::new();
    if resp3 {
        out.put_slice(b">2\r\n$10\r\ninvalidate\r\n");
    } else {
        out.put_slice(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n");
    }
    match keys {
        Some(k) => {
            out.put_slice(b"*1\r\n$");
            out.put_slice(k.len().to_string().as_bytes());
            out.put_slice(b"\r\n");
            out.put_slice(k);
            out.put_slice(b"\r\n");
        }
        None if null_resp3 => out.put_slice(b"_\r\n"),
        None => out.put_slice(b"$-1\r\n"),
    }
    out.freeze()
}

impl State {
    /// Sends one invalidation to tracking client `id` (through its redirect).
    fn send(&self, id: u64, key: Option<&[u8]>) {
        self.send_from(id, key, 0);
    }

    /// As [`Self::send`], for a change made by client `writer`: a client
    /// told of its own write hears it after its reply (Redis 7.0).
    fn send_from(&self, id: u64, key: Option<&[u8]>, writer: u64) {
        let Some(opts) = self.clients.get(&id) else {
            return;
        };
        let (target, redirected) = match opts.redirect {
            0 => (id, false),
            r => (r, true),
        };
        let Some(mailbox) = self.mailboxes.get(&target).and_then(Weak::upgrade) else {
            return;
        };
        let resp3 = mailbox.resp3();
        // A RESP2 connection only takes them as a subscribed redirect target.
        let reachable = resp3 || (redirected && mailbox.subscribed());
        if !reachable {
            return;
        }
        let own_resp3 = if redirected {
            self.mailboxes
                .get(&id)
                .and_then(Weak::upgrade)
                .is_some_and(|m| m.resp3())
        } else {
            resp3
        };
        let msg = encode(resp3, key, own_resp3);
        if target == writer {
            mailbox.deliver_after_reply(&msg);
        } else {
            mailbox.deliver(&msg);
        }
    }

    /// Makes room for one more remembered key.
    fn make_room(&mut self) {
        if self.keys.len() < MAX_TRACKED_KEYS {
            return;
        }
        let Some(key) = self.keys.keys().next().cloned() else {
            return;
        };
        if let Some(ids) = self.keys.remove(&key) {
            for id in ids {
                self.send(id, Some(&key));
            }
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
        self.state.lock().mailboxes.remove(&id);
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

    /// CLIENT TRACKING ON (options checked by the caller). Turning it on
    /// again adds prefixes and replaces the other options, as Redis does.
    pub fn enable(&self, id: u64, mut opts: Options) {
        let mut st = self.state.lock();
        if opts.bcast {
            if opts.prefixes.is_empty() {
                opts.prefixes.push(Bytes::new());
            }
            for p in &opts.prefixes {
                st.prefixes.entry(p.clone()).or_default().insert(id);
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
            if let Some(ids) = st.prefixes.get_mut(p) {
                ids.remove(&id);
                if ids.is_empty() {
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
            if !st.keys.contains_key(k) {
                st.make_room();
            }
            st.keys.entry(k.clone()).or_default().insert(id);
        }
    }

    /// `keys` changed (a write by client `writer`, 0 for none: expiry,
    /// eviction): the clients that cached them or watch their prefixes
    /// hear of it.
    pub fn invalidate<'a>(&self, keys: impl Iterator<Item = &'a [u8]>, writer: u64) {
        if !self.active() {
            return;
        }
        let mut st = self.state.lock();
        for key in keys {
            let mut told: Vec<u64> = Vec::new();
            if let Some(ids) = st.keys.remove(key) {
                told.extend(ids);
            }
            for (p, ids) in &st.prefixes {
                if key.starts_with(p) {
                    told.extend(ids.iter().copied());
                }
            }
            for id in told {
                let noloop = st.clients.get(&id).is_some_and(|o| o.noloop);
                if noloop && id == writer {
                    continue;
                }
                st.send_from(id, Some(key), writer);
            }
        }
    }

    /// FLUSHDB: every tracking client hears of it (a null key list).
    pub fn invalidate_all(&self) {
        if !self.active() {
            return;
        }
        let mut st = self.state.lock();
        st.keys.clear();
        let ids: Vec<u64> = st.clients.keys().copied().collect();
        for id in ids {
            st.send(id, None);
        }
    }
}
