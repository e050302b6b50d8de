//! A node's feed of a cache's events, for the proxies (`stratus node`).
//!
//! On a node no client subscribes or tracks keys: they are the proxies'.
//! What a hosted cache would deliver to them — keyspace events (writes,
//! expiries, evictions: what client-side caching invalidates on) and the
//! messages its scripts PUBLISH — goes into the cache's feed instead: a
//! bounded log of [`FeedItem`]s numbered in order. Each proxy reads it with
//! a long poll ([`Feed::read`]: what came after the last number it saw, or
//! the next items within [`POLL_WAIT`]) and delivers the items on its own
//! hub, with its own flags and subscribers.
//!
//! The log keeps the last [`MAX_ITEMS`] items, [`MAX_BYTES`] at most: a
//! proxy that falls further behind loses the oldest (as Redis drops a subscriber that cannot keep
//! up). What is recorded follows what the proxies ask for: the union of
//! the flags of the polls of the last [`WANTED_FOR`] (nothing while no
//! proxy reads).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::pubsub::Listeners;
pub use crate::wire::FeedItem;

/// Items a feed keeps.
pub const MAX_ITEMS: usize = 65_536;

/// Bytes of keys, channels and messages a feed keeps (the newest item
/// always).
pub const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Items one read returns at most.
pub const MAX_READ: usize = 4096;

/// How long a read waits for an item before it answers with none.
pub const POLL_WAIT: Duration = Duration::from_secs(1);

/// How long a poll's flags stay wanted.
pub const WANTED_FOR: Duration = Duration::from_secs(5);

/// A hosted cache's feed (see the module doc).
#[derive(Default)]
pub struct Feed {
    log: Mutex<Log>,
    /// Woken when items arrive.
    arrived: tokio::sync::Notify,
    /// The flags the proxies asked for, and until when.
    wanted: AtomicU32,
    wanted_until: Mutex<Option<Instant>>,
    /// Items dropped unread (the log was full).
    pub dropped: AtomicU64,
    /// The proxies' subscriptions, by origin: each table with its version
    /// ([`Feed::listeners`]), at most [`MAX_LISTENER_TABLES`] of them.
    listeners: Mutex<HashMap<u64, (u64, Arc<Listeners>)>>,
}

/// Proxies whose subscription tables a node keeps per cache: past it, the
/// one kept longest goes (its proxy sends it again when it needs it).
const MAX_LISTENER_TABLES: usize = 64;

#[derive(Default)]
struct Log {
    /// Each item with its origin: the proxy whose batch made it (it has
    /// delivered it already, from the batch's reply), 0 for the node's own
    /// doing (expiries, evictions).
    items: VecDeque<(u64, FeedItem)>,
    /// The number of `items[0]`.
    first: u64,
    /// What the items hold ([`FeedItem::size`]).
    bytes: usize,
}

impl Log {
    fn next(&self) -> u64 {
        self.first + self.items.len() as u64
    }
}

impl FeedItem {
    /// What it holds, bytes (with a fixed overhead).
    fn size(&self) -> usize {
        32 + match self {
            FeedItem::Key(e) => e.key.len() + e.event.len(),
            FeedItem::Message {
                channel, message, ..
            } => channel.len() + message.len(),
            FeedItem::Invalidate { keys, .. } => keys.iter().map(|k| k.len() + 8).sum(),
            FeedItem::ScriptRead { .. } => 0,
            FeedItem::Called { name, sub, .. } => {
                name.len() + sub.as_ref().map_or(0, String::len) + 24
            }
            FeedItem::Monitored { argv } => argv.iter().map(|a| a.len() + 8).sum(),
        }
    }
}

impl Feed {
    /// The subscriptions proxy `origin` had at `version`, if kept.
    pub fn listeners(&self, origin: u64, version: u64) -> Option<Arc<Listeners>> {
        match self.listeners.lock().get(&origin) {
            Some((v, table)) if *v == version => Some(table.clone()),
            _ => None,
        }
    }

    /// Keeps proxy `origin`'s subscriptions at `version` (its older table
    /// goes; past [`MAX_LISTENER_TABLES`] proxies, another's).
    pub fn keep_listeners(&self, origin: u64, version: u64, table: Listeners) -> Arc<Listeners> {
        let table = Arc::new(table);
        let mut kept = self.listeners.lock();
        if kept.len() >= MAX_LISTENER_TABLES
            && !kept.contains_key(&origin)
            && let Some(other) = kept.keys().next().copied()
        {
            kept.remove(&other);
        }
        kept.insert(origin, (version, table.clone()));
        table
    }

    /// The `notify-keyspace-events` flags partitions record with: what the
    /// proxies polled for lately.
    pub fn wanted(&self) -> u32 {
        match *self.wanted_until.lock() {
            Some(until) if Instant::now() < until => self.wanted.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// Keeps `flags` recorded for [`WANTED_FOR`] (with the other recent
    /// polls' and batches'): a proxy's poll, or a batch it sent asking
    /// for them.
    pub fn want(&self, flags: u32) {
        let mut until = self.wanted_until.lock();
        let now = Instant::now();
        let current = match *until {
            Some(u) if now < u => self.wanted.load(Ordering::Relaxed),
            _ => 0,
        };
        if current | flags == current && until.is_some_and(|u| u > now + WANTED_FOR / 2) {
            return;
        }
        self.wanted.store(current | flags, Ordering::Relaxed);
        *until = Some(now + WANTED_FOR);
    }

    /// The number the next item will have.
    pub fn next(&self) -> u64 {
        self.log.lock().next()
    }

    /// Appends items from `origin` (dropping the oldest past
    /// [`MAX_ITEMS`]).
    pub fn push(&self, origin: u64, items: impl IntoIterator<Item = FeedItem>) {
        let mut log = self.log.lock();
        let before = log.next();
        for item in items {
            log.bytes += item.size();
            log.items.push_back((origin, item));
        }
        if log.next() == before {
            return;
        }
        let mut dropped = 0;
        while log.items.len() > 1 && (log.items.len() > MAX_ITEMS || log.bytes > MAX_BYTES) {
            if let Some((_, old)) = log.items.pop_front() {
                log.bytes -= old.size();
                log.first += 1;
                dropped += 1;
            }
        }
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        drop(log);
        self.arrived.notify_waiters();
    }

    /// Items numbered from `after` on (`None`: from now), waiting up to
    /// [`POLL_WAIT`] for one; the number to read from next. A proxy
    /// polling with `flags` keeps them recorded for [`WANTED_FOR`].
    pub async fn read(&self, after: Option<u64>, flags: u32) -> (u64, Vec<(u64, FeedItem)>) {
        self.want(flags);
        let Some(mut from) = after else {
            return (self.log.lock().next(), Vec::new());
        };
        let deadline = tokio::time::Instant::now() + POLL_WAIT;
        loop {
            // Registered before the log is looked at: an item pushed after
            // the look wakes it.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let log = self.log.lock();
                // Fallen behind the log: from its oldest item. Ahead of it
                // (the node restarted, its numbers begin again): from now.
                from = from.max(log.first);
                if from > log.next() {
                    from = log.next();
                }
                if from < log.next() {
                    let skip = (from - log.first) as usize;
                    let items: Vec<(u64, FeedItem)> = log
                        .items
                        .iter()
                        .skip(skip)
                        .take(MAX_READ)
                        .cloned()
                        .collect();
                    return (from + items.len() as u64, items);
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return (from, Vec::new());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message(n: u8) -> FeedItem {
        FeedItem::Message {
            channel: Bytes::from_static(b"c"),
            message: Bytes::from(vec![n]),
            shard: false,
        }
    }

    fn from(origin: u64, n: u8) -> (u64, FeedItem) {
        (origin, message(n))
    }

    /// A reader gets what came after the number it holds, in order; one
    /// that starts "now" gets nothing older; one that fell behind the
    /// bounded log resumes from its oldest item.
    #[tokio::test]
    async fn readers_get_items_in_order_from_where_they_are() {
        let feed = Feed::default();
        feed.push(0, [message(0)]);
        let (now, none) = feed.read(None, 0).await;
        assert_eq!((now, none), (1, Vec::new()));
        feed.push(7, [message(1), message(2)]);
        let (next, items) = feed.read(Some(now), 0).await;
        assert_eq!((next, items), (3, vec![from(7, 1), from(7, 2)]));
        // Waits for the next item.
        let waiting = feed.read(Some(next), 0);
        let pushed = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            feed.push(0, [message(3)]);
        };
        let ((next, items), ()) = tokio::join!(waiting, pushed);
        assert_eq!((next, items), (4, vec![from(0, 3)]));
        // Bounded: the oldest go.
        feed.push(0, (0..MAX_ITEMS).map(|i| message(i as u8)));
        assert_eq!(feed.dropped.load(Ordering::Relaxed), 4);
        let (_, items) = feed.read(Some(0), 0).await;
        assert_eq!(items.len(), MAX_READ);
        // ... by bytes too, the newest kept whatever its size.
        let big = |n: usize| FeedItem::Message {
            channel: Bytes::from_static(b"c"),
            message: Bytes::from(vec![0u8; n]),
            shard: false,
        };
        feed.push(0, [big(MAX_BYTES / 2), big(MAX_BYTES / 2)]);
        assert_eq!(feed.log.lock().items.len(), 1);
        feed.push(0, [big(2 * MAX_BYTES)]);
        let log = feed.log.lock();
        assert_eq!(log.items.len(), 1);
        assert!(log.bytes > MAX_BYTES);
    }

    /// What is recorded follows the polls: their flags together, and
    /// nothing once none has come for a while.
    #[tokio::test]
    async fn the_wanted_flags_are_the_recent_polls() {
        let feed = Feed::default();
        assert_eq!(feed.wanted(), 0);
        let _ = feed.read(None, 0b01).await;
        let _ = feed.read(None, 0b10).await;
        assert_eq!(feed.wanted(), 0b11);
        *feed.wanted_until.lock() = Some(Instant::now());
        assert_eq!(feed.wanted(), 0);
    }
}
