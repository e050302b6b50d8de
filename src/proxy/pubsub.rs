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

use bytes::Bytes;
use hashbrown::HashSet;

use super::session::{Connection, Session, Subscriptions};
use super::subcommands::{Subcommands, help_reply, subcommand};
use crate::cmd::{CommandSpec, OpError, flags};
use crate::control::Cache;
use crate::pubsub::tracking::Options;
use crate::pubsub::{Kind, Mailbox, OutputLimits};
use crate::resp::{Protocol, Reply, reply};

/// Client memory one subscription holds besides its name, bytes (the
/// connection's set entry and the hub's table entry).
const SUBSCRIPTION_OVERHEAD: u64 = 96;
/// Most channel names PUBSUB CHANNELS returns (a reply stays bounded).
const MAX_CHANNELS_LISTED: usize = 100_000;

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

/// Gives the connection a mailbox (its first subscription or CLIENT
/// TRACKING), known to the cache's tracking table as a possible target.
pub(crate) fn ensure_mailbox(conn: &mut Connection<'_>, cache: &Cache) {
    if conn.session.pubsub.is_some() {
        return;
    }
    let limits = OutputLimits {
        hard: conn.shared.pubsub_hard_limit,
        soft: conn.shared.pubsub_soft_limit,
        soft_time: conn.shared.pubsub_soft_time,
    };
    let resp3 = conn.session.protocol == Protocol::Resp3;
    let mailbox = Mailbox::new(conn.session.id, resp3, limits);
    cache.pool.tracking().register(&mailbox);
    conn.session.pubsub = Some(Subscriptions {
        mailbox,
        channels: HashSet::new(),
        patterns: HashSet::new(),
        shard: HashSet::new(),
        memory: 0,
        monitor: false,
    });
}

/// MONITOR: from now on the connection gets a line for every command its
/// cache runs (see [`crate::pubsub::monitor`]); a second MONITOR answers
/// nothing, as Redis.
pub fn monitor(conn: &mut Connection<'_>) -> Result<Reply, OpError> {
    let cache = conn
        .session
        .cache
        .clone()
        .ok_or(OpError::Static(reply::NOAUTH))?;
    ensure_mailbox(conn, &cache);
    let Some(subs) = conn.session.pubsub.as_mut() else {
        return Err(OpError::Static(reply::NOAUTH));
    };
    if subs.monitor || !cache.pool.monitors().add(&subs.mailbox) {
        return Ok(Reply::Frames(Vec::new()));
    }
    subs.monitor = true;
    subs.mailbox.set_monitor(true);
    Ok(Reply::ok())
}

/// The arguments as MONITOR shows them: AUTH's and HELLO ... AUTH's
/// secrets redacted, as Redis.
pub fn monitor_args(args: &[Bytes]) -> std::borrow::Cow<'_, [Bytes]> {
    let redacted = || Bytes::from_static(b"(redacted)");
    let name = &args[0];
    if name.eq_ignore_ascii_case(b"auth") {
        let mut out = vec![args[0].clone()];
        out.extend(args[1..].iter().map(|_| redacted()));
        return out.into();
    }
    if name.eq_ignore_ascii_case(b"hello")
        && let Some(at) = args
            .iter()
            .skip(2)
            .position(|a| a.eq_ignore_ascii_case(b"auth"))
    {
        let at = at + 2;
        let mut out = args.to_vec();
        for a in out.iter_mut().skip(at + 1).take(2) {
            *a = redacted();
        }
        return out.into();
    }
    args.into()
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN]
/// [OPTOUT] [NOLOOP], CLIENT CACHING YES|NO, CLIENT GETREDIR: Redis's
/// checks and errors, in its order.
pub fn client_tracking(
    conn: &mut Connection<'_>,
    sub: &str,
    args: &[Bytes],
) -> Result<Reply, OpError> {
    let cache = conn
        .session
        .cache
        .clone()
        .ok_or(OpError::Static(reply::NOAUTH))?;
    let tracking = cache.pool.tracking();
    let id = conn.session.id;
    let current = tracking.options(id);
    match sub {
        "getredir" => Ok(Reply::Int(current.map_or(-1, |o| o.redirect as i64))),
        "trackinginfo" => Ok(tracking_info(current.as_ref(), conn.session.caching_given)),
        "caching" => {
            let Some(opts) = current else {
                return Err(OpError::Static(reply::CACHING_NOT_TRACKING));
            };
            if crate::cmd::args::is(&args[2], "YES") {
                if !opts.optin {
                    return Err(OpError::Static(reply::CACHING_YES_OPTIN));
                }
            } else if crate::cmd::args::is(&args[2], "NO") {
                if !opts.optout {
                    return Err(OpError::Static(reply::CACHING_NO_OPTOUT));
                }
            } else {
                return Err(OpError::Syntax);
            }
            conn.session.caching_given = true;
            Ok(Reply::ok())
        }
        _ => {
            let mut opts = Options::default();
            let mut j = 3;
            while j < args.len() {
                let more = j + 1 < args.len();
                let a = &args[j];
                if crate::cmd::args::is(a, "REDIRECT") && more {
                    j += 1;
                    if opts.redirect != 0 {
                        return Err(OpError::Static(reply::TRACKING_ONE_REDIRECT));
                    }
                    let r = crate::cmd::args::int(&args[j])?;
                    if r <= 0 || !tracking.exists(r as u64) {
                        return Err(OpError::Static(reply::TRACKING_NO_REDIRECT_CLIENT));
                    }
                    opts.redirect = r as u64;
                } else if crate::cmd::args::is(a, "BCAST") {
                    opts.bcast = true;
                } else if crate::cmd::args::is(a, "OPTIN") {
                    opts.optin = true;
                } else if crate::cmd::args::is(a, "OPTOUT") {
                    opts.optout = true;
                } else if crate::cmd::args::is(a, "NOLOOP") {
                    opts.noloop = true;
                } else if crate::cmd::args::is(a, "PREFIX") && more {
                    j += 1;
                    opts.prefixes.push(args[j].clone());
                } else {
                    return Err(OpError::Syntax);
                }
                j += 1;
            }
            // CLIENT CACHING holds for the next command of one mode only.
            conn.session.caching_given = false;
            if crate::cmd::args::is(&args[2], "OFF") {
                tracking.disable(id);
                conn.session.tracking = false;
                return Ok(Reply::ok());
            }
            if !crate::cmd::args::is(&args[2], "ON") {
                return Err(OpError::Syntax);
            }
            if !opts.bcast && !opts.prefixes.is_empty() {
                return Err(OpError::Static(reply::TRACKING_PREFIX_NEEDS_BCAST));
            }
            if let Some(old) = &current
                && old.bcast != opts.bcast
            {
                return Err(OpError::Static(reply::TRACKING_BCAST_SWITCH));
            }
            if opts.bcast && (opts.optin || opts.optout) {
                return Err(OpError::Static(reply::TRACKING_BCAST_OPTIN));
            }
            if opts.optin && opts.optout {
                return Err(OpError::Static(reply::TRACKING_OPTIN_AND_OPTOUT));
            }
            if let Some(old) = &current
                && ((opts.optin && old.optout) || (opts.optout && old.optin))
            {
                return Err(OpError::Static(reply::TRACKING_OPT_SWITCH));
            }
            if opts.bcast {
                check_prefix_collisions(current.as_ref(), &opts.prefixes)?;
            }
            ensure_mailbox(conn, &cache);
            tracking.enable(id, opts);
            conn.session.tracking = true;
            Ok(Reply::ok())
        }
    }
}

/// CLIENT TRACKINGINFO: Redis's map of `flags` (a set), `redirect` and
/// `prefixes`.
fn tracking_info(opts: Option<&Options>, caching_given: bool) -> Reply {
    let mut flags = Vec::new();
    let mut redirect = -1;
    let mut prefixes = Vec::new();
    match opts {
        None => flags.push("off"),
        Some(o) => {
            flags.push("on");
            if o.bcast {
                flags.push("bcast");
            }
            if o.optin {
                flags.push("optin");
                if caching_given {
                    flags.push("caching-yes");
                }
            }
            if o.optout {
                flags.push("optout");
                if caching_given {
                    flags.push("caching-no");
                }
            }
            if o.noloop {
                flags.push("noloop");
            }
            if o.broken {
                flags.push("broken_redirect");
            }
            redirect = o.redirect as i64;
            let mut sorted = o.prefixes.clone();
            sorted.sort();
            prefixes = sorted.into_iter().map(Reply::Bulk).collect();
        }
    }
    Reply::Map(vec![
        (
            Reply::bulk("flags"),
            Reply::Set(flags.into_iter().map(Reply::bulk).collect()),
        ),
        (Reply::bulk("redirect"), Reply::Int(redirect)),
        (Reply::bulk("prefixes"), Reply::Array(prefixes)),
    ])
}

/// Redis refuses BCAST prefixes that overlap (one a prefix of another,
/// among the new ones or with the client's current ones).
fn check_prefix_collisions(current: Option<&Options>, new: &[Bytes]) -> Result<(), OpError> {
    let old: &[Bytes] = current.map_or(&[], |o| &o.prefixes[..]);
    for (i, p) in new.iter().enumerate() {
        for q in old {
            if q.starts_with(p) || p.starts_with(q) {
                return Err(OpError::Text(reply::prefix_overlap(p, q, "an existing")));
            }
        }
        for q in &new[i + 1..] {
            if q.starts_with(p) || p.starts_with(q) {
                return Err(OpError::Text(reply::prefix_overlap(
                    p,
                    q,
                    "another provided",
                )));
            }
        }
    }
    Ok(())
}

/// After a command on a tracking connection: a read remembers its keys
/// (default mode, with OPTIN/OPTOUT's CLIENT CACHING rule); CLIENT CACHING
/// holds for the next command only.
pub fn after_command(conn: &mut Connection<'_>, spec: &CommandSpec, args: &[Bytes]) {
    if spec.name == "client" {
        return;
    }
    let caching = std::mem::take(&mut conn.session.caching_given);
    remember_read(conn, spec, args, caching);
}

/// A read on a tracking connection remembers its keys (the command alone,
/// or each command an EXEC ran); `caching` is whether CLIENT CACHING YES
/// came before it.
pub fn remember_read(conn: &Connection<'_>, spec: &CommandSpec, args: &[Bytes], caching: bool) {
    let Some(cache) = &conn.session.cache else {
        return;
    };
    let tracking = cache.pool.tracking();
    // A script counts as a read if it called a read-only command (its
    // declared keys are remembered); EVAL_RO itself does not.
    let read = if spec.family == crate::cmd::Family::Scripting {
        tracking.take_script_read(conn.session.id)
    } else {
        spec.has(flags::READ) && spec.family != crate::cmd::Family::PubSub
    };
    if !read {
        return;
    }
    let Some(opts) = tracking.options(conn.session.id) else {
        return;
    };
    if opts.bcast || (opts.optin && !caching) || (opts.optout && caching) {
        return;
    }
    tracking.remember(conn.session.id, spec.key_positions(args).map(|i| &args[i]));
}

/// Runs a Pub/Sub command (`args[0]` names which); `work` gets the
/// receivers and patterns a publication visited.
pub async fn run(
    conn: &mut Connection<'_>,
    args: &[Bytes],
    work: &mut u64,
) -> Result<Reply, OpError> {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    match name.as_str() {
        "subscribe" => subscribe(conn, Kind::Channel, &args[1..]),
        "psubscribe" => subscribe(conn, Kind::Pattern, &args[1..]),
        "ssubscribe" => subscribe(conn, Kind::Shard, &args[1..]),
        "unsubscribe" => Ok(unsubscribe(conn, Kind::Channel, &args[1..])),
        "punsubscribe" => Ok(unsubscribe(conn, Kind::Pattern, &args[1..])),
        "sunsubscribe" => Ok(unsubscribe(conn, Kind::Shard, &args[1..])),
        "publish" | "spublish" => Ok(publish(conn, args, name == "spublish", work).await),
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
        ensure_mailbox(conn, &cache);
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
                // A copy: `name` is a slice of the read buffer, which a
                // clone would keep whole for as long as the subscription.
                let name = Bytes::copy_from_slice(name);
                subs.set(kind).insert(name.clone());
                subs.memory += cost;
                hub.subscribe(kind, &name, &subs.mailbox);
                subs.mailbox.set_subscribed(true);
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
    subs.mailbox.set_subscribed(!subs.is_empty());
    Reply::Frames(frames)
}

/// PUBLISH / SPUBLISH: delivered to this proxy's subscribers (the reply
/// counts them, as a Redis Cluster node counts its own) and, for a cache
/// on nodes, through the feed of the channel's node to every other proxy's.
async fn publish(conn: &mut Connection<'_>, args: &[Bytes], shard: bool, work: &mut u64) -> Reply {
    let Some(cache) = conn.session.cache.clone() else {
        return Reply::err(reply::NOAUTH);
    };
    let done = cache.pool.hub().publish(&args[1], &args[2], shard);
    *work += done.receivers + done.patterns_examined;
    conn.delivered += done.bytes;
    if let Err(why) = cache.pool.spread(&args[1], &args[2], shard).await {
        return Reply::err_owned(why);
    }
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
