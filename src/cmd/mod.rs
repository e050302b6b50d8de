//! Commands: the one table that declares them, argument parsing, and the data
//! handlers grouped by family (`string`, `keys`, `hash`, `list`, `set`,
//! `zset`, `hll`, `bitmap`, `stream`, and `script`: Lua, EVAL, FCALL and
//! function libraries, with `lua_pattern`, Lua 5.1's pattern matcher in
//! Rust).
//!
//! Adding a command = one row in [`table::COMMANDS`] + one handler in its family
//! file. A data handler runs inside one partition with a [`Ctx`] (the keyspace,
//! the time, a work counter), calls typed storage operations and returns a
//! [`Reply`] or an [`OpError`]; [`OpError::reply`] is the one place errors
//! become RESP. Connection and cache-wide commands ([`ConnOp`]) are declared
//! here but run by the proxy, which owns connection state and the partition pool.
//!
//! This layer never imports the proxy, pool, metering or control layers.

pub mod args;
pub mod bitmap;
pub mod dump;
pub mod float80;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod keys;
pub mod list;
pub mod lua_pattern;
pub mod memcached;
pub mod object;
pub mod params;
pub mod script;
pub mod set;
pub mod sort;
pub mod stream;
pub mod string;
pub mod table;
pub mod zset;

use bytes::Bytes;

use crate::partition::Keyspace;
pub use crate::partition::notify;
use crate::partition::value::{Collection, ENTRY_OVERHEAD};
use crate::resp::{Reply, reply};

pub use table::{COMMANDS, CommandSpec, ConnOp, Exec, Family, KeySpec, TxOp, flags, lookup};

/// What a data handler works with: one partition's keyspace, frozen "now",
/// and counters it reports back.
pub struct Ctx<'a> {
    pub ks: &'a mut Keyspace,
    /// Unix milliseconds, read once per command.
    pub now: u64,
    /// Elements walked beyond the keys named (metered as work).
    pub work: u64,
    /// Whether the client speaks RESP3 (a few replies nest differently).
    pub resp3: bool,
    /// Largest string a write may produce (proto-max-bulk-len).
    pub max_value_len: usize,
    /// Longest a Lua script may run before it is stopped.
    pub script_time_limit: std::time::Duration,
    /// Bytes this command may add to the cache before its storage maximum
    /// (`u64::MAX` = no maximum): a write that would grow a value past it
    /// (SETRANGE, SETBIT, APPEND...) is refused with OOM before allocating.
    pub room: u64,
    /// The controls of the script this command runs, if it is one: SCRIPT
    /// KILL reaches a running script through them.
    pub script: Option<std::sync::Arc<script::ScriptControl>>,
    /// Keys whose elements belong to clients that blocked on them earlier
    /// than this (blocking) command's client: it takes nothing from them,
    /// so blocked clients are served first-come first-served per key.
    pub reserved: Vec<Box<[u8]>>,
    /// This attempt of a blocking command is a retry for a client already
    /// blocked: a key that now holds another type is not ready for it
    /// (Redis 7.0 serves a blocked client only from keys of the type it
    /// waits for) rather than an error.
    pub still_blocked: bool,
    /// Set by a blocking command that found nothing to serve (its reply is
    /// the empty one a timeout gives): its client waits on, and nothing it
    /// did counts as a write (see [`crate::pool`]).
    pub waits: bool,
    /// With `waits`: the arguments the client's retries run with, when they
    /// differ from its own (XREAD's `$` as the stream's last ID at the time
    /// it blocked, as Redis resolves it once).
    pub resume: Option<Vec<Bytes>>,
    /// The cache's encoding thresholds (OBJECT ENCODING).
    pub encoding: params::Encoding,
    /// Which keys one command may combine (scripts, SORT's patterns): the
    /// cache's [`ClusterMode`](crate::partition::ClusterMode).
    pub cluster_mode: crate::partition::ClusterMode,
    /// Called with each key a command run by a script changed (keys it
    /// never declared too, as cluster mode disabled allows): WATCH versions
    /// move, blocked clients wake and tracking clients hear of it, as for
    /// the declared keys of the command itself. Set by the pool.
    pub on_write: Option<&'a OnWrite<'a>>,
    /// The keys this command changed, when it names keys it left alone
    /// (SMOVE of a member the destination has already changes only the
    /// source): WATCH versions, blocked clients and tracking follow these
    /// instead of every key named (Redis's `signalModifiedKey` per key).
    pub changed_only: Option<Vec<Bytes>>,
    /// The cache's CAS counter, for Memcached items ([`memcached`]); set by
    /// the pool.
    pub cas: Option<&'a std::sync::atomic::AtomicU64>,
}

/// The hook of [`Ctx::on_write`]: called with each key changed.
pub type OnWrite<'a> = dyn Fn(&[u8]) + 'a;

impl<'a> Ctx<'a> {
    pub fn new(ks: &'a mut Keyspace, now: u64) -> Ctx<'a> {
        Ctx {
            ks,
            now,
            work: 0,
            resp3: false,
            max_value_len: 512 * 1024 * 1024,
            script_time_limit: std::time::Duration::from_millis(
                crate::cmd::script::DEFAULT_SCRIPT_TIME_LIMIT_MS,
            ),
            room: u64::MAX,
            script: None,
            reserved: Vec::new(),
            still_blocked: false,
            waits: false,
            resume: None,
            encoding: params::Encoding::default(),
            cluster_mode: crate::partition::ClusterMode::Enabled,
            on_write: None,
            changed_only: None,
            cas: None,
        }
    }

    /// Whether a blocking command may take elements from `key` now (see
    /// [`Ctx::reserved`]).
    pub fn may_serve(&self, key: &[u8]) -> bool {
        !self.reserved.iter().any(|k| **k == *key)
    }

    /// Records a keyspace event (Redis's `notifyKeyspaceEvent`): `class` is
    /// a [`notify`] class, `event` Redis's event name. One flag check when
    /// the cache's notifications leave the class off; the pool publishes
    /// what was recorded after the command.
    #[inline]
    pub fn notify(&mut self, class: u32, event: &'static str, key: &[u8]) {
        self.ks.notify.record(class, event, key);
    }

    /// Records `event` for a write that changed `key`, then `del` if the
    /// write emptied the collection and so deleted the key (Redis's order).
    pub fn notify_write(&mut self, class: u32, event: &'static str, key: &[u8]) {
        if self.ks.notify.flags == 0 {
            return;
        }
        self.notify(class, event, key);
        if self.ks.peek_live(key, self.now).is_none() {
            self.notify(notify::GENERIC, "del", key);
        }
    }

    /// Counts the elements a command names beyond its first (HSET's fields,
    /// SADD's members, RPUSH's values...) as work: the first rides with
    /// the key's unit, as a single-element call costs about one GET; each
    /// further one is charged the row's `cost_per_element_milli`.
    pub fn count_extra(&mut self, elements: usize) {
        self.work += elements.saturating_sub(1) as u64;
    }

    /// Takes `bytes` out of the room this command may still add (see
    /// [`Ctx::room`]), or fails with OOM, taking nothing, if they do not fit.
    /// A write calls it with the growth it is about to allocate, before
    /// allocating; successive reservations of one command add up.
    pub fn reserve(&mut self, bytes: u64) -> Result<(), OpError> {
        if bytes > self.room {
            return Err(OpError::Static(reply::OOM));
        }
        if self.room != u64::MAX {
            self.room -= bytes;
        }
        Ok(())
    }

    /// Reserves what storing a value of `value_bytes` (as charged by
    /// [`Value::mem_bytes`]) under `key` adds to the cache: the whole entry
    /// if the key is new, else only what it grows by (a shrink reserves
    /// nothing). Side-effect free on the keyspace, so a refused write leaves
    /// no trace.
    ///
    /// [`Value::mem_bytes`]: crate::partition::Value::mem_bytes
    pub fn reserve_store(&mut self, key: &[u8], value_bytes: usize) -> Result<(), OpError> {
        let growth = match self.ks.peek_live(key, self.now) {
            Some(e) => value_bytes.saturating_sub(e.value.mem_bytes()),
            None => key.len() + ENTRY_OVERHEAD + value_bytes,
        };
        self.reserve(growth as u64)
    }

    /// The largest value (in [`Ctx::reserve_store`]'s bytes) that may be
    /// stored under `key` within the room left: a result built element by
    /// element checks its size against it before each addition, so a write
    /// refused with OOM never allocated past the room.
    pub fn room_for_store(&self, key: &[u8]) -> usize {
        if self.room == u64::MAX {
            return usize::MAX;
        }
        let room = usize::try_from(self.room).unwrap_or(usize::MAX);
        match self.ks.peek_live(key, self.now) {
            Some(e) => room.saturating_add(e.value.mem_bytes()),
            None => room.saturating_sub(key.len() + ENTRY_OVERHEAD),
        }
    }
}

/// The collection of type `C` under `key` for reading (a hit or miss is
/// counted): `None` if missing, WRONGTYPE if the key holds another type.
pub fn read_as<'a, C: Collection>(
    ctx: &'a mut Ctx<'_>,
    key: &[u8],
) -> Result<Option<&'a C>, OpError> {
    match ctx.ks.get(key, ctx.now) {
        None => Ok(None),
        Some(e) => C::of(&e.value).map(Some).ok_or(OpError::WrongType),
    }
}

/// Runs `f` on the collection of type `C` under `key`; if missing and
/// `create`, on a new one, stored when `f` succeeds (and left something, for
/// types Redis deletes when empty). An emptied collection of those types is
/// deleted. `None` if missing and not created.
pub fn write_as<C: Collection, T>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut C) -> Result<T, OpError>,
) -> Result<Option<T>, OpError> {
    let now = ctx.now;
    let (out, emptied) = if let Some(mut e) = ctx.ks.get_mut(key, now) {
        let c = C::of_mut(e.value_mut()).ok_or(OpError::WrongType)?;
        let out = f(c)?;
        (out, C::DROP_WHEN_EMPTY && c.is_empty_collection())
    } else {
        if !create {
            return Ok(None);
        }
        let mut c = C::default();
        let out = f(&mut c)?;
        if !C::DROP_WHEN_EMPTY || !c.is_empty_collection() {
            ctx.ks.insert(key, c.into_value(), 0, now);
        }
        return Ok(Some(out));
    };
    if emptied {
        ctx.ks.remove(key, now);
    }
    Ok(Some(out))
}

/// A data handler: `args[0]` is the command name, arity is already checked.
pub type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> Result<Reply, OpError>;

/// Why a command failed; [`OpError::reply`] turns it into the Redis error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("{}", reply::WRONGTYPE)]
    WrongType,
    #[error("{}", reply::NOT_INTEGER)]
    NotInteger,
    #[error("{}", reply::NOT_FLOAT)]
    NotFloat,
    #[error("{}", reply::OVERFLOW)]
    Overflow,
    #[error("{}", reply::NAN_OR_INF)]
    NanOrInf,
    #[error("{}", reply::NO_SUCH_KEY)]
    NoSuchKey,
    #[error("{}", reply::SYNTAX)]
    Syntax,
    #[error("{}", reply::STRING_TOO_LONG)]
    StringTooLong,
    #[error("{}", reply::OFFSET_OUT_OF_RANGE)]
    OffsetOutOfRange,
    #[error("{}", reply::HASH_NOT_INTEGER)]
    HashNotInteger,
    #[error("{}", reply::HASH_NOT_FLOAT)]
    HashNotFloat,
    #[error("{}", reply::INVALID_CURSOR)]
    InvalidCursor,
    /// `ERR invalid expire time in '<cmd>' command`
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(&'static str),
    /// `ERR wrong number of arguments for '<cmd>' command`
    #[error("ERR wrong number of arguments for '{0}' command")]
    Arity(&'static str),
    /// Any other fixed error string from [`reply`].
    #[error("{0}")]
    Static(&'static str),
    /// An error whose text is built at run time.
    #[error("{0}")]
    Text(String),
}

impl OpError {
    /// The one mapping from errors to RESP.
    pub fn reply(&self) -> Reply {
        match self {
            OpError::Static(s) => Reply::err(s),
            other => Reply::err_owned(other.to_string()),
        }
    }
}

/// What a blocking command takes from its keys. Blocked clients that take
/// the same kind of thing are served first-come first-served on each key
/// (see [`Ctx::reserved`]); XREAD takes nothing (every reader is served)
/// and XREADGROUP's groups do not compete, so streams have no kind here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Takes {
    /// Elements of a list (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP).
    List,
    /// Members of a sorted set (BZPOPMIN, BZPOPMAX, BZMPOP).
    ZSet,
}

/// What `spec` takes from its keys when it blocks (`None`: it does not
/// block, or takes nothing another blocked client could want).
pub fn takes(spec: &CommandSpec) -> Option<Takes> {
    if !spec.has(flags::BLOCKING) {
        return None;
    }
    match spec.family {
        Family::List => Some(Takes::List),
        Family::SortedSet => Some(Takes::ZSet),
        _ => None,
    }
}

/// How long a blocking command may wait: `None` if this call does not block
/// (not a blocking command, or XREAD without BLOCK), `Some(None)` forever.
pub fn blocking_timeout(
    spec: &CommandSpec,
    args: &[Bytes],
) -> Result<Option<Option<std::time::Duration>>, OpError> {
    if !spec.has(flags::BLOCKING) {
        return Ok(None);
    }
    match spec.name {
        "xread" | "xreadgroup" => args::block_option_ms(args),
        // BLMPOP/BZMPOP timeout numkeys key ...: the timeout comes first.
        "blmpop" | "bzmpop" => args::block_timeout_secs(&args[1]).map(Some),
        _ => args::block_timeout_secs(&args[args.len() - 1]).map(Some),
    }
}

/// Runs a data command on `ctx` and returns its reply (errors included).
pub fn execute(spec: &CommandSpec, ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match spec.exec {
        Exec::Data(handler) => handler(ctx, args).unwrap_or_else(|e| e.reply()),
        Exec::Conn(_) | Exec::Tx(_) => Reply::err("ERR command must run on the connection"),
    }
}

/// The subcommand a container's call counts under in the command
/// statistics (`client|list`), if it named a known one.
pub fn stat_sub(spec: &CommandSpec, args: &[Bytes], reply: &Reply) -> Option<String> {
    (spec.has(flags::CONTAINER) && args.len() > 1)
        .then(|| String::from_utf8_lossy(&args[1]).to_ascii_lowercase())
        .filter(|_| !matches!(reply, Reply::Error(e) if e.starts_with("ERR unknown subcommand")))
}

#[cfg(test)]
pub(crate) mod test_util {
    //! `run(&["set","k","v"])`: command semantics in-process, no network.
    use super::*;

    pub struct Harness {
        pub ks: Keyspace,
        pub now: u64,
        pub resp3: bool,
        /// Passed as [`Ctx::room`] (`u64::MAX` = no storage maximum).
        pub room: u64,
        /// Passed as [`Ctx::reserved`].
        pub reserved: Vec<Box<[u8]>>,
        /// Passed as [`Ctx::still_blocked`].
        pub still_blocked: bool,
        /// [`Ctx::work`] of the last command run.
        pub last_work: u64,
        /// Passed as [`Ctx::cluster_mode`].
        pub cluster_mode: crate::partition::ClusterMode,
        /// Passed as [`Ctx::encoding`].
        pub encoding: params::Encoding,
    }

    impl Harness {
        pub fn new() -> Harness {
            Harness {
                ks: Keyspace::whole(),
                now: 1_700_000_000_000,
                resp3: false,
                room: u64::MAX,
                reserved: Vec::new(),
                still_blocked: false,
                last_work: 0,
                cluster_mode: crate::partition::ClusterMode::Enabled,
                encoding: params::Encoding::default(),
            }
        }

        pub fn run(&mut self, argv: &[&str]) -> Reply {
            let args: Vec<Bytes> = argv
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect();
            let spec = lookup(&args[0]).expect("unknown command in test");
            if !spec.arity_ok(args.len()) {
                return Reply::err_owned(reply::wrong_arity(spec.name));
            }
            let mut ctx = Ctx::new(&mut self.ks, self.now);
            ctx.resp3 = self.resp3;
            ctx.room = self.room;
            ctx.reserved = self.reserved.clone();
            ctx.still_blocked = self.still_blocked;
            ctx.cluster_mode = self.cluster_mode;
            ctx.encoding = self.encoding;
            let reply = execute(spec, &mut ctx, &args);
            self.last_work = ctx.work;
            reply
        }
    }

    /// Runs `cmd` (a SCAN-family command and its key, e.g. `["hscan", "h"]`)
    /// from cursor 0 to the end with `extra` options after the cursor,
    /// calling `between` before each call. Returns every `stride`-th element
    /// of the pages (names, without values or scores) and the calls made.
    pub fn scan_to_end(
        h: &mut Harness,
        cmd: &[&str],
        extra: &[&str],
        stride: usize,
        mut between: impl FnMut(&mut Harness, usize),
    ) -> (Vec<String>, usize) {
        let mut cursor = "0".to_string();
        let (mut names, mut calls) = (Vec::new(), 0);
        loop {
            between(h, calls);
            let mut argv = cmd.to_vec();
            argv.push(&cursor);
            argv.extend_from_slice(extra);
            let Reply::Array(parts) = h.run(&argv) else {
                panic!("not a SCAN reply")
            };
            let (Reply::Bulk(c), Reply::Array(items)) = (&parts[0], &parts[1]) else {
                panic!("not a SCAN reply: {parts:?}")
            };
            for item in items.iter().step_by(stride) {
                let Reply::Bulk(b) = item else {
                    panic!("not a bulk: {item:?}")
                };
                names.push(String::from_utf8_lossy(b).into_owned());
            }
            cursor = String::from_utf8_lossy(c).into_owned();
            calls += 1;
            assert!(calls < 1_000_000, "the scan does not end");
            if cursor == "0" {
                return (names, calls);
            }
        }
    }

    pub fn bulk(s: &str) -> Reply {
        Reply::bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    pub fn err(s: &str) -> Reply {
        Reply::err_owned(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_add_up_and_no_maximum_stays_none() {
        let mut ks = Keyspace::whole();
        let mut ctx = Ctx::new(&mut ks, 0);
        assert_eq!(ctx.reserve(u64::MAX / 2), Ok(()));
        assert_eq!(ctx.room, u64::MAX);
        assert_eq!(ctx.room_for_store(b"k"), usize::MAX);
        ctx.room = 100;
        assert_eq!(ctx.reserve(60), Ok(()));
        assert_eq!(ctx.reserve(41), Err(OpError::Static(reply::OOM)));
        assert_eq!(ctx.reserve(40), Ok(()));
        assert_eq!(ctx.room, 0);
        // A new key needs room for its name and the entry overhead too.
        ctx.room = (1 + ENTRY_OVERHEAD + 10) as u64;
        assert_eq!(ctx.room_for_store(b"k"), 10);
        assert_eq!(
            ctx.reserve_store(b"k", 11),
            Err(OpError::Static(reply::OOM))
        );
        assert_eq!(ctx.reserve_store(b"k", 10), Ok(()));
    }
}
