//! Pub/Sub commands on the connection: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE,
//! PUNSUBSCRIBE, SSUBSCRIBE, SUNSUBSCRIBE, PUBLISH, SPUBLISH and PUBSUB,
//! against the bound cache's hub (`cache.pool.hub()`).
//!
//! A connection's subscriptions live in [`Subscriptions`] (its session): the
//! names, counted as its client memory, and its [`Mailbox`], where
//! publishers leave messages that the connection loop moves into its output
//! (`Connection::drain_mailbox`). In RESP2 a subscribed connection only
//! takes the subscribe family, PING, QUIT and RESET (Redis's error
//! otherwise, see [`refused_in_context`]); in RESP3 messages are pushes on
//! an ordinary connection.
//!
//! PUBLISH is metered by what fan-out costs: the bytes delivered to
//! mailboxes count as the publisher's transfer, the receivers and the
//! patterns compared as its work.

use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashSet;

use super::conn::Connection;
use super::conn_cmds::{Subcommands, help_reply, subcommand};
use super::session::Session;
use crate::cmd::OpError;
use crate::pubsub::{Kind, Mailbox, OutputLimits};
use crate::resp::{Protocol, Reply, reply};

/// Client memory one subscription holds besides its name, bytes (the
/// connection's set entry and the hub's table entry).
const SUBSCRIPTION_OVERHEAD: u64 = 96;
/// Most channel names PUBSUB CHANNELS returns (a reply stays bounded).
const MAX_CHANNELS_LISTED: usize = 100_000;

/// A connection's subscriptions and mailbox.
pub struct Subscriptions {
    pub mailbox: Arc<Mailbox>,
    channels: HashSet<Bytes>,
    patterns: HashSet<Bytes>,
    shard: HashSet<Bytes>,
    /// Client memory the names hold, bytes.
    pub memory: u64,
}

impl Subscriptions {
    fn set(&mut self, kind: Kind) -> &mut HashSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// Redis's count in confirmations: channels and patterns together,
    /// shard channels apart.
    fn count(&self, kind: Kind) -> i64 {
        match kind {
            Kind::Shard => self.shard.len() as i64,
            _ => (self.channels.len() + self.patterns.len()) as i64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty() && self.shard.is_empty()
    }
}

/// Whether the connection is in Redis's subscribed state.
pub fn subscribed(session: &Session) -> bool {
    session.pubsub.as_ref().is_some_and(|s| !s.is_empty())
}

/// Commands a RESP2 connection in the subscribed state may run.
const ALLOWED_SUBSCRIBED: &[&str] = &[
    "subscribe",
    "unsubscribe",
    "psubscribe",
    "punsubscribe",
    "ssubscribe",
    "sunsubscribe",
    "ping",
    "quit",
    "reset",
];

/// Container commands whose refusals name the subcommand (`client|id`).
const CONTAINERS: &[&str] = &["client", "cluster", "command", "config", "pubsub", "script"];

/// Redis's refusal of `name` on a RESP2 connection in the subscribed
/// state, `None` if it may run.
pub fn refused_in_context(session: &Session, name: &str, args: &[Bytes]) -> Option<String> {
    if session.protocol != Protocol::Resp2
        || !subscribed(session)
        || ALLOWED_SUBSCRIBED.contains(&name)
    {
        return None;
    }
    let full = match args.get(1) {
        Some(sub) if CONTAINERS.contains(&name) => {
            format!(
                "{name}|{}",
                String::from_utf8_lossy(sub).to_ascii_lowercase()
            )
        }
        _ => name.to_string(),
    };
    Some(reply::pubsub_context(&full))
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

/// Runs a Pub/Sub command (`args[0]` names which); `work` gets the
/// receivers and patterns a publication visited.
pub fn run(conn: &mut Connection<'_>, args: &[Bytes], work: &mut u64) -> Result<Reply, OpError> {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    match name.as_str() {
        "subscribe" => subscribe(conn, Kind::Channel, &args[1..]),
        "psubscribe" => subscribe(conn, Kind::Pattern, &args[1..]),
        "ssubscribe" => subscribe(conn, Kind::Shard, &args[1..]),
        "unsubscribe" => Ok(unsubscribe(conn, Kind::Channel, &args[1..])),
        "punsubscribe" => Ok(unsubscribe(conn, Kind::Pattern, &args[1..])),
        "sunsubscribe" => Ok(unsubscribe(conn, Kind::Shard, &args[1..])),
        "publish" | "spublish" => Ok(publish(conn, args, name == "spublish", work)),
        _ => pubsub(conn, args),
    }
}

/// The words of a kind's confirmations.
fn words(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Channel => ("subscribe", "unsubscribe"),
        Kind::Pattern => ("psubscribe", "punsubscribe"),
        Kind::Shard => ("ssubscribe", "sunsubscribe"),
    }
}

fn confirmation(word: &'static str, name: Option<&Bytes>, count: i64) -> Reply {
    Reply::Push(vec![
        Reply::bulk(word),
        name.map_or(Reply::Nil, |n| Reply::Bulk(n.clone())),
        Reply::Int(count),
    ])
}

fn subscribe(conn: &mut Connection<'_>, kind: Kind, names: &[Bytes]) -> Result<Reply, OpError> {
    let cache = conn
        .session
        .cache
        .clone()
        .ok_or(OpError::Static(reply::NOAUTH))?;
    let hub = cache.pool.hub();
    let (word, _) = words(kind);
    let mut frames = Vec::with_capacity(names.len());
    for name in names {
        if conn.session.pubsub.is_none() {
            let limits = OutputLimits {
                hard: conn.shared.pubsub_hard_limit,
                soft: conn.shared.pubsub_soft_limit,
                soft_time: conn.shared.pubsub_soft_time,
            };
            let resp3 = conn.session.protocol == Protocol::Resp3;
            conn.session.pubsub = Some(Subscriptions {
                mailbox: Mailbox::new(conn.session.id, resp3, limits),
                channels: HashSet::new(),
                patterns: HashSet::new(),
                shard: HashSet::new(),
                memory: 0,
            });
        }
        let fresh = conn
            .session
            .pubsub
            .as_mut()
            .is_some_and(|s| !s.set(kind).contains(name));
        if fresh {
            // A subscription is client memory: refused past the limits.
            let cost = name.len() as u64 + SUBSCRIPTION_OVERHEAD;
            if let Err(why) = conn.charge_more(cost) {
                frames.push(Reply::err(why));
                break;
            }
            if let Some(subs) = conn.session.pubsub.as_mut() {
                subs.set(kind).insert(name.clone());
                subs.memory += cost;
                hub.subscribe(kind, name, &subs.mailbox);
            }
        }
        let count = conn.session.pubsub.as_ref().map_or(0, |s| s.count(kind));
        frames.push(confirmation(word, Some(name), count));
    }
    Ok(Reply::Frames(frames))
}

fn unsubscribe(conn: &mut Connection<'_>, kind: Kind, names: &[Bytes]) -> Reply {
    let (_, word) = words(kind);
    let cache = conn.session.cache.clone();
    let Some(subs) = conn.session.pubsub.as_mut() else {
        // Never subscribed: one confirmation per name, or a null one.
        if names.is_empty() {
            return Reply::Frames(vec![confirmation(word, None, 0)]);
        }
        return Reply::Frames(
            names
                .iter()
                .map(|n| confirmation(word, Some(n), 0))
                .collect(),
        );
    };
    let all: Vec<Bytes>;
    let names = if names.is_empty() {
        all = subs.set(kind).iter().cloned().collect();
        if all.is_empty() {
            return Reply::Frames(vec![confirmation(word, None, subs.count(kind))]);
        }
        &all[..]
    } else {
        names
    };
    let mut frames = Vec::with_capacity(names.len());
    for name in names {
        if subs.set(kind).remove(name) {
            subs.memory = subs
                .memory
                .saturating_sub(name.len() as u64 + SUBSCRIPTION_OVERHEAD);
            if let Some(cache) = &cache {
                cache.pool.hub().unsubscribe(kind, name, subs.mailbox.id);
            }
        }
        frames.push(confirmation(word, Some(name), subs.count(kind)));
    }
    Reply::Frames(frames)
}

fn publish(conn: &mut Connection<'_>, args: &[Bytes], shard: bool, work: &mut u64) -> Reply {
    let Some(cache) = conn.session.cache.clone() else {
        return Reply::err(reply::NOAUTH);
    };
    let done = cache.pool.hub().publish(&args[1], &args[2], shard);
    *work += done.receivers + done.patterns_examined;
    conn.delivered += done.bytes;
    Reply::Int(done.receivers as i64)
}

const PUBSUB_SUBS: Subcommands = &[
    ("channels", -2),
    ("numpat", 2),
    ("numsub", -2),
    ("shardchannels", -2),
    ("shardnumsub", -2),
    ("help", 2),
];

/// PUBSUB CHANNELS | NUMSUB | NUMPAT | SHARDCHANNELS | SHARDNUMSUB | HELP
fn pubsub(conn: &Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let sub = subcommand("pubsub", PUBSUB_SUBS, args)?;
    let cache = conn
        .session
        .cache
        .clone()
        .ok_or(OpError::Static(reply::NOAUTH))?;
    let hub = cache.pool.hub();
    match sub {
        "channels" | "shardchannels" => {
            if args.len() > 3 {
                return Err(OpError::Text(reply::pubsub_syntax(&args[1])));
            }
            let pattern = args.get(2).map(|p| &p[..]);
            let names = hub.channels(sub == "shardchannels", pattern, MAX_CHANNELS_LISTED);
            Ok(Reply::Array(names.into_iter().map(Reply::Bulk).collect()))
        }
        "numsub" | "shardnumsub" => {
            let shard = sub == "shardnumsub";
            let mut out = Vec::with_capacity((args.len() - 2) * 2);
            for c in &args[2..] {
                out.push(Reply::Bulk(c.clone()));
                out.push(Reply::Int(hub.numsub(shard, c) as i64));
            }
            Ok(Reply::Array(out))
        }
        "numpat" => Ok(Reply::Int(hub.numpat() as i64)),
        _ => Ok(help_reply(&[
            "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
            "HELP",
            "    Prints this help.",
        ])),
    }
}
