//! Pub/Sub: each cache's message hub and the subscribers' mailboxes.
//!
//! A cache has one [`MessageHub`]: who listens to which channel, pattern or
//! shard channel, and the fan-out of a message to them. One cache never
//! hears another's channels: the hub belongs to the cache (its pool), and a
//! connection only reaches its own cache's hub. The trait is the seam for a
//! hub that spans several proxies later (a broker or peer links behind the
//! same methods); [`LocalHub`] is the in-process form.
//!
//! Delivery, in phases ([`LocalHub::publish`]):
//! 1. find the channel's subscribers and, for global channels, every pattern
//!    that matches it (Redis's `stringmatchlen`, linear: [`string_match`]);
//! 2. encode the message once per protocol version (RESP2 array / RESP3
//!    push) and per pattern;
//! 3. append the bytes to each subscriber's [`Mailbox`] and wake its
//!    connection — never touching a socket: the publisher never waits on a
//!    subscriber;
//! 4. a mailbox whose backlog (queued here plus what its connection has not
//!    written yet) passes the hard limit, or stays over the soft limit for
//!    the soft time, is dropped: its connection closes, as Redis's
//!    `client-output-buffer-limit pubsub 32mb 8mb 60`.
//!
//! Invariant: a mailbox holds at most `hard` bytes; the hub holds only
//! handles (a subscriber's memory is its connection's, counted there).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hashbrown::HashMap;
use parking_lot::{Mutex, RwLock};

use crate::glob::string_match;

pub mod monitor;
pub mod tracking;

/// What a subscription listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// SUBSCRIBE: a channel by name.
    Channel,
    /// PSUBSCRIBE: every global channel matching a glob pattern.
    Pattern,
    /// SSUBSCRIBE: a shard channel (no patterns reach it).
    Shard,
}

/// Output-buffer limits of a subscriber (Redis's pubsub class).
#[derive(Debug, Clone, Copy)]
pub struct OutputLimits {
    /// Backlog at which the subscriber is dropped at once, bytes.
    pub hard: usize,
    /// Backlog above which the subscriber must catch up within `soft_time`.
    pub soft: usize,
    pub soft_time: Duration,
}

/// What a publication did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Subscriptions that received the message (Redis's PUBLISH reply).
    pub receivers: u64,
    /// Bytes appended to mailboxes: what the fan-out costs in transfer.
    pub bytes: u64,
    /// Patterns compared with the channel (work besides the receivers).
    pub patterns_examined: u64,
}

/// A cache's message hub (see the module doc).
pub trait MessageHub: Send + Sync {
    /// Adds `mailbox` to the subscribers of `name`; false if already there.
    fn subscribe(&self, kind: Kind, name: &Bytes, mailbox: &Arc<Mailbox>) -> bool;
    /// Removes mailbox `id` from the subscribers of `name`; false if absent.
    fn unsubscribe(&self, kind: Kind, name: &[u8], id: u64) -> bool;
    /// Delivers `message` on a global (`shard` false) or shard channel.
    fn publish(&self, channel: &[u8], message: &[u8], shard: bool) -> Delivery;
    /// Channels (or shard channels) with subscribers, matching `pattern` if
    /// given, at most `limit` of them.
    fn channels(&self, shard: bool, pattern: Option<&[u8]>, limit: usize) -> Vec<Bytes>;
    /// Subscribers of a channel (or shard channel), patterns excluded.
    fn numsub(&self, shard: bool, channel: &[u8]) -> usize;
    /// Patterns with subscribers.
    fn numpat(&self) -> usize;
    /// A number that moves on with every subscription change; 0 while
    /// nobody subscribes.
    fn version(&self) -> u64;
    /// Every name with its subscriber count ([`Listeners`]).
    fn listeners(&self) -> Listeners;
}

/// A hub's subscriptions, counted by name: what a node counts a script's
/// PUBLISH against for the proxy whose batch ran it (its subscribers are
/// there, not on the node). Each list sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listeners {
    pub channels: Vec<(Bytes, u64)>,
    pub patterns: Vec<(Bytes, u64)>,
    pub shard: Vec<(Bytes, u64)>,
}

impl Listeners {
    /// Subscriptions a message on `channel` reaches, as [`LocalHub::publish`]
    /// counts them (the channel's subscribers, and for a global channel each
    /// matching pattern's).
    pub fn receivers(&self, channel: &[u8], shard: bool) -> u64 {
        let direct = if shard { &self.shard } else { &self.channels };
        let named = direct
            .binary_search_by(|(name, _)| name[..].cmp(channel))
            .map_or(0, |i| direct[i].1);
        let matched: u64 = if shard {
            0
        } else {
            self.patterns
                .iter()
                .filter(|(p, _)| string_match(p, channel, false))
                .map(|(_, n)| n)
                .sum()
        };
        named + matched
    }

    /// Bytes it holds (what a node keeps of it is bounded by this).
    pub fn size(&self) -> usize {
        [&self.channels, &self.patterns, &self.shard]
            .iter()
            .flat_map(|l| l.iter())
            .map(|(name, _)| name.len() + 16)
            .sum()
    }
}

/// Where a subscriber's messages wait for its connection.
pub struct Mailbox {
    pub id: u64,
    resp3: AtomicBool,
    /// In Redis's subscribed state (a RESP2 redirect target then gets
    /// invalidations as `__redis__:invalidate` messages).
    subscribed: AtomicBool,
    /// A MONITOR: held to the same limits as a subscriber.
    monitor: AtomicBool,
    limits: OutputLimits,
    inbox: Mutex<Inbox>,
    /// Set (under the inbox lock) when messages were queued or the mailbox
    /// was dropped; cleared when the connection takes them. Every client
    /// of a cache has a mailbox: one that never hears anything takes the
    /// lock for nothing on each request without this.
    news: AtomicBool,
    /// Set (under the lock) when messages wait for after the reply.
    deferred_news: AtomicBool,
    /// The connection's wait: a delivery not yet seen by it (`rung`, kept
    /// until it is, as `Notify::notify_one`'s permit) and its waker. Not a
    /// `Notify`, whose waits take a lock to register and to drop: every
    /// connection waits on its mailbox once per request (see
    /// [`crate::attention`]).
    rung: AtomicBool,
    waker: atomic_waker::AtomicWaker,
}

#[derive(Default)]
struct Inbox {
    queued: BytesMut,
    /// Messages for after the reply of the command running now (the
    /// invalidation of a key the tracking client itself wrote, as Redis).
    deferred: BytesMut,
    /// Reply bytes the connection holds and has not written yet.
    pending_out: usize,
    over_soft_since: Option<Instant>,
    dropped: bool,
}

impl Inbox {
    /// Applies the limits to a backlog of `total` bytes; true if dropped.
    fn check(&mut self, total: usize, limits: &OutputLimits) -> bool {
        if total > limits.hard {
            self.dropped = true;
        } else if total > limits.soft {
            let since = *self.over_soft_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= limits.soft_time {
                self.dropped = true;
            }
        } else {
            self.over_soft_since = None;
        }
        if self.dropped {
            self.queued = BytesMut::new();
            self.deferred = BytesMut::new();
        }
        self.dropped
    }
}

impl Mailbox {
    pub fn new(id: u64, resp3: bool, limits: OutputLimits) -> Arc<Mailbox> {
        Arc::new(Mailbox {
            id,
            resp3: AtomicBool::new(resp3),
            subscribed: AtomicBool::new(false),
            monitor: AtomicBool::new(false),
            limits,
            inbox: Mutex::default(),
            news: AtomicBool::new(false),
            deferred_news: AtomicBool::new(false),
            rung: AtomicBool::new(false),
            waker: atomic_waker::AtomicWaker::new(),
        })
    }

    /// The protocol messages are encoded for (HELLO may change it).
    pub fn set_resp3(&self, resp3: bool) {
        self.resp3.store(resp3, Ordering::Relaxed);
    }

    pub fn resp3(&self) -> bool {
        self.resp3.load(Ordering::Relaxed)
    }

    pub fn set_subscribed(&self, subscribed: bool) {
        self.subscribed.store(subscribed, Ordering::Relaxed);
    }

    pub fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    pub fn set_monitor(&self, monitor: bool) {
        self.monitor.store(monitor, Ordering::Relaxed);
    }

    /// Whether the connection's whole output counts against the limits
    /// (Redis's pubsub class: a subscriber, here a monitor too). Any other
    /// connection (one that only gets invalidations) may hold a big reply
    /// as a normal client: only its waiting messages count.
    fn whole_output_limited(&self) -> bool {
        self.subscribed() || self.monitor.load(Ordering::Relaxed)
    }

    /// Appends encoded bytes (false, nothing kept, if the subscriber is or
    /// now goes over its limits) and wakes the connection.
    pub(crate) fn deliver(&self, bytes: &[u8]) -> bool {
        self.deliver_to(bytes, false)
    }

    /// As [`Self::deliver`], for after the reply of the running command.
    pub(crate) fn deliver_after_reply(&self, bytes: &[u8]) -> bool {
        self.deliver_to(bytes, true)
    }

    fn deliver_to(&self, bytes: &[u8], after_reply: bool) -> bool {
        let mut inbox = self.inbox.lock();
        if inbox.dropped {
            return false;
        }
        let pending_out = if self.whole_output_limited() {
            inbox.pending_out
        } else {
            0
        };
        let total = inbox.queued.len() + inbox.deferred.len() + pending_out + bytes.len();
        let kept = !inbox.check(total, &self.limits);
        if kept && after_reply {
            inbox.deferred.extend_from_slice(bytes);
            self.deferred_news.store(true, Ordering::Release);
        } else if kept {
            inbox.queued.extend_from_slice(bytes);
        }
        if !(kept && after_reply) {
            // Queued, or dropped: either way the connection must look.
            self.news.store(true, Ordering::Release);
        }
        drop(inbox);
        self.rung.store(true, Ordering::Release);
        self.waker.wake();
        kept
    }

    /// What waits for after the current reply.
    pub fn take_deferred(&self) -> BytesMut {
        // A plain load first: the swap is a full barrier on x86.
        if !self.deferred_news.load(Ordering::Acquire)
            || !self.deferred_news.swap(false, Ordering::Acquire)
        {
            return BytesMut::new();
        }
        self.inbox.lock().deferred.split()
    }

    /// The connection takes what is queued (if `room`, else it only
    /// checks the limits), telling how many reply bytes it still holds
    /// unwritten (`pending_out`; after a take the messages are among them).
    /// `Err` once the subscriber has been dropped.
    pub fn take(&self, pending_out: usize, room: bool) -> Result<BytesMut, Dropped> {
        // Nothing queued, not dropped, and no limit on the output itself:
        // nothing to take or check.
        if !self.news.load(Ordering::Acquire) && !self.whole_output_limited() {
            return Ok(BytesMut::new());
        }
        let mut inbox = self.inbox.lock();
        let counted = if self.whole_output_limited() {
            pending_out
        } else {
            0
        };
        let total = inbox.queued.len() + counted;
        if inbox.dropped || inbox.check(total, &self.limits) {
            return Err(Dropped);
        }
        if !room {
            inbox.pending_out = pending_out;
            return Ok(BytesMut::new());
        }
        inbox.pending_out = inbox.queued.len() + pending_out;
        self.news.store(false, Ordering::Relaxed);
        if inbox.queued.is_empty() {
            return Ok(BytesMut::new());
        }
        Ok(inbox.queued.split())
    }

    /// The connection's unwritten reply bytes now (after it wrote some).
    pub fn set_pending(&self, pending_out: usize) {
        // Only the limits of a subscriber or a monitor count it.
        if !self.whole_output_limited() {
            return;
        }
        let mut inbox = self.inbox.lock();
        inbox.pending_out = pending_out;
    }

    /// Whether messages are waiting (or the mailbox was dropped).
    pub fn has_news(&self) -> bool {
        let inbox = self.inbox.lock();
        inbox.dropped || !inbox.queued.is_empty()
    }

    /// Waits until something is delivered (or was, since the last wait).
    /// One waiter at a time: the connection's own loop.
    pub fn wait(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            // A plain load first: the swap is a full barrier on x86.
            let seen =
                || self.rung.load(Ordering::Acquire) && self.rung.swap(false, Ordering::AcqRel);
            if seen() {
                return std::task::Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if seen() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }
}

/// A subscriber went over its output-buffer limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped;

type Subscribers = HashMap<u64, Arc<Mailbox>>;

/// The in-process hub: subscriber tables behind one lock (publishers read,
/// subscription changes write).
#[derive(Default)]
pub struct LocalHub {
    tables: RwLock<Tables>,
    /// Subscription changes so far ([`MessageHub::version`]).
    changes: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Tables {
    channels: HashMap<Bytes, Subscribers>,
    patterns: HashMap<Bytes, Subscribers>,
    shard: HashMap<Bytes, Subscribers>,
}

impl Tables {
    fn of(&mut self, kind: Kind) -> &mut HashMap<Bytes, Subscribers> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }
}

/// One message encoded for both protocol versions, on demand.
struct Encoded<'a> {
    parts: [&'a [u8]; 4],
    n: usize,
    resp2: Option<Bytes>,
    resp3: Option<Bytes>,
}

impl<'a> Encoded<'a> {
    fn new(parts: &[&'a [u8]]) -> Encoded<'a> {
        let mut all: [&[u8]; 4] = [&[]; 4];
        all[..parts.len()].copy_from_slice(parts);
        Encoded {
            parts: all,
            n: parts.len(),
            resp2: None,
            resp3: None,
        }
    }

    fn for_mailbox(&mut self, resp3: bool) -> &[u8] {
        let (slot, marker) = if resp3 {
            (&mut self.resp3, b'>')
        } else {
            (&mut self.resp2, b'*')
        };
        slot.get_or_insert_with(|| encode_frame(marker, &self.parts[..self.n]))
    }
}

/// `*n` (RESP2) or `>n` (RESP3 push) followed by bulk strings.
pub fn encode_frame(marker: u8, parts: &[&[u8]]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len() + 16).sum();
    let mut out = BytesMut::with_capacity(len + 8);
    out.put_u8(marker);
    out.put_slice(parts.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    for p in parts {
        out.put_u8(b'$');
        out.put_slice(p.len().to_string().as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(p);
        out.put_slice(b"\r\n");
    }
    out.freeze()
}

/// Delivers one encoded message to `subs`, adding to `done`.
fn fan_out(subs: &Subscribers, msg: &mut Encoded<'_>, done: &mut Delivery) {
    for mailbox in subs.values() {
        let bytes = msg.for_mailbox(mailbox.resp3());
        if mailbox.deliver(bytes) {
            done.bytes += bytes.len() as u64;
        }
        done.receivers += 1;
    }
}

impl MessageHub for LocalHub {
    fn subscribe(&self, kind: Kind, name: &Bytes, mailbox: &Arc<Mailbox>) -> bool {
        let mut tables = self.tables.write();
        let subs = tables.of(kind).entry(name.clone()).or_default();
        let added = subs.insert(mailbox.id, mailbox.clone()).is_none();
        if added {
            self.changes.fetch_add(1, Ordering::Relaxed);
        }
        added
    }

    fn unsubscribe(&self, kind: Kind, name: &[u8], id: u64) -> bool {
        let mut tables = self.tables.write();
        let table = tables.of(kind);
        let Some(subs) = table.get_mut(name) else {
            return false;
        };
        let removed = subs.remove(&id).is_some();
        if subs.is_empty() {
            table.remove(name);
        }
        if removed {
            self.changes.fetch_add(1, Ordering::Relaxed);
        }
        removed
    }

    fn publish(&self, channel: &[u8], message: &[u8], shard: bool) -> Delivery {
        let tables = self.tables.read();
        let mut done = Delivery::default();
        let (direct, kind) = if shard {
            (&tables.shard, &b"smessage"[..])
        } else {
            (&tables.channels, &b"message"[..])
        };
        if let Some(subs) = direct.get(channel) {
            fan_out(
                subs,
                &mut Encoded::new(&[kind, channel, message]),
                &mut done,
            );
        }
        if !shard {
            for (pattern, subs) in &tables.patterns {
                done.patterns_examined += 1;
                if string_match(pattern, channel, false) {
                    let mut msg = Encoded::new(&[b"pmessage", pattern, channel, message]);
                    fan_out(subs, &mut msg, &mut done);
                }
            }
        }
        done
    }

    fn channels(&self, shard: bool, pattern: Option<&[u8]>, limit: usize) -> Vec<Bytes> {
        let tables = self.tables.read();
        let table = if shard {
            &tables.shard
        } else {
            &tables.channels
        };
        table
            .keys()
            .filter(|c| pattern.is_none_or(|p| string_match(p, c, false)))
            .take(limit)
            .cloned()
            .collect()
    }

    fn numsub(&self, shard: bool, channel: &[u8]) -> usize {
        let tables = self.tables.read();
        let table = if shard {
            &tables.shard
        } else {
            &tables.channels
        };
        table.get(channel).map_or(0, HashMap::len)
    }

    fn numpat(&self) -> usize {
        self.tables.read().patterns.len()
    }

    fn version(&self) -> u64 {
        let tables = self.tables.read();
        if tables.channels.is_empty() && tables.patterns.is_empty() && tables.shard.is_empty() {
            return 0;
        }
        self.changes.load(Ordering::Relaxed)
    }

    fn listeners(&self) -> Listeners {
        let tables = self.tables.read();
        let counted = |table: &HashMap<Bytes, Subscribers>| {
            let mut list: Vec<(Bytes, u64)> = table
                .iter()
                .map(|(name, subs)| (name.clone(), subs.len() as u64))
                .collect();
            list.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            list
        };
        Listeners {
            channels: counted(&tables.channels),
            patterns: counted(&tables.patterns),
            shard: counted(&tables.shard),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: OutputLimits = OutputLimits {
        hard: 1000,
        soft: 500,
        soft_time: Duration::from_secs(60),
    };

    /// A node counts a script's PUBLISH against a proxy's table as the
    /// proxy's hub counts its own PUBLISH.
    #[test]
    fn a_listener_table_counts_receivers_as_the_hub_delivers() {
        let hub = LocalHub::default();
        assert_eq!(hub.version(), 0);
        let a = Mailbox::new(1, false, LIMITS);
        let b = Mailbox::new(2, false, LIMITS);
        hub.subscribe(Kind::Channel, &Bytes::from("news"), &a);
        hub.subscribe(Kind::Channel, &Bytes::from("news"), &b);
        hub.subscribe(Kind::Pattern, &Bytes::from("n*"), &a);
        hub.subscribe(Kind::Pattern, &Bytes::from("x*"), &b);
        hub.subscribe(Kind::Shard, &Bytes::from("news"), &b);
        let v = hub.version();
        assert_ne!(v, 0);
        let table = hub.listeners();
        for (channel, shard) in [
            ("news", false),
            ("nope", false),
            ("x", false),
            ("news", true),
        ] {
            let delivered = hub.publish(channel.as_bytes(), b"m", shard).receivers;
            assert_eq!(
                table.receivers(channel.as_bytes(), shard),
                delivered,
                "{channel}"
            );
        }
        hub.unsubscribe(Kind::Channel, b"news", 1);
        assert_ne!(hub.version(), v, "a change moves the version on");
        for (kind, name, id) in [
            (Kind::Channel, "news", 2),
            (Kind::Pattern, "n*", 1),
            (Kind::Pattern, "x*", 2),
            (Kind::Shard, "news", 2),
        ] {
            hub.unsubscribe(kind, name.as_bytes(), id);
        }
        assert_eq!(hub.version(), 0, "nobody subscribes");
    }

    #[test]
    fn messages_reach_channel_and_pattern_subscribers_in_their_protocol() {
        let hub = LocalHub::default();
        let a = Mailbox::new(1, false, LIMITS);
        let b = Mailbox::new(2, true, LIMITS);
        assert!(hub.subscribe(Kind::Channel, &Bytes::from("news"), &a));
        assert!(!hub.subscribe(Kind::Channel, &Bytes::from("news"), &a));
        assert!(hub.subscribe(Kind::Pattern, &Bytes::from("n*"), &b));
        let done = hub.publish(b"news", b"hi", false);
        assert_eq!(done.receivers, 2);
        assert_eq!(
            &a.take(0, true).unwrap()[..],
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert_eq!(
            &b.take(0, true).unwrap()[..],
            b">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert_eq!(done.bytes, 35 + 44);
        // Shard channels are apart from global ones, and patterns skip them.
        assert_eq!(hub.publish(b"news", b"hi", true).receivers, 0);
        assert_eq!(hub.numsub(false, b"news"), 1);
        assert_eq!(hub.numpat(), 1);
        assert!(hub.unsubscribe(Kind::Channel, b"news", 1));
        assert!(hub.channels(false, None, 100).is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_delivery_wakes_the_wait_once_whenever_it_comes() {
        use std::time::Duration;
        let mailbox = Mailbox::new(1, false, LIMITS);
        let idle = tokio::time::timeout(Duration::from_millis(20), mailbox.wait()).await;
        assert!(idle.is_err(), "nothing delivered: the wait waits");
        // Delivered before the wait: kept for it, once.
        assert!(mailbox.deliver(b"one"));
        mailbox.wait().await;
        let again = tokio::time::timeout(Duration::from_millis(20), mailbox.wait()).await;
        assert!(again.is_err(), "one delivery wakes one wait");
        // Delivered while the wait waits: it wakes.
        let from = Arc::clone(&mailbox);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            from.deliver(b"two");
        });
        tokio::time::timeout(Duration::from_secs(5), mailbox.wait())
            .await
            .expect("woken by the delivery");
        sender.await.unwrap();
        assert_eq!(&mailbox.take(0, true).unwrap()[..], b"onetwo");
    }

    #[test]
    fn a_subscriber_past_the_hard_limit_is_dropped_and_the_publisher_goes_on() {
        let hub = LocalHub::default();
        let slow = Mailbox::new(1, false, LIMITS);
        hub.subscribe(Kind::Channel, &Bytes::from("c"), &slow);
        let big = vec![b'x'; 300];
        for _ in 0..3 {
            assert_eq!(hub.publish(b"c", &big, false).receivers, 1);
        }
        // The fourth would pass 1000 bytes: the mailbox is dropped.
        let done = hub.publish(b"c", &big, false);
        assert_eq!((done.receivers, done.bytes), (1, 0));
        assert_eq!(slow.take(0, true), Err(Dropped));
    }

    #[test]
    fn only_a_subscriber_s_big_replies_count_against_the_limits() {
        // A client that only gets invalidations may hold a big reply.
        let plain = Mailbox::new(1, true, LIMITS);
        assert!(plain.take(5000, true).is_ok());
        assert!(plain.deliver(b"small"));
        // A subscriber (or monitor) may not.
        let sub = Mailbox::new(2, false, LIMITS);
        sub.set_subscribed(true);
        assert_eq!(sub.take(5000, true), Err(Dropped));
        let monitor = Mailbox::new(3, false, LIMITS);
        monitor.set_monitor(true);
        monitor.set_pending(5000);
        assert!(!monitor.deliver(b"line"));
    }
}
