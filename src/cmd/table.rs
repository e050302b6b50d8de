//! The command table: every command Stratus answers, declared once.
//!
//! A row gives the name, the arity (Redis convention: `n` exact, `-n` at least
//! n, command name included), flags, key positions (first, last, step; last
//! `-1` = the last argument, plus a [`KeySpec`] for keys that move with the
//! arguments: `numkeys` counts and `STREAMS` lists), the family (a metric
//! label), the work cost, and how it executes. `COMMAND INFO`, arity checks, key routing, CROSSSLOT
//! checks, auth gating and metering all read this table; nothing else lists
//! commands.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use super::args::{is, parse_i64};
use super::{
    Handler, bitmap, dump, geo, hash, hll, keys, list, memcached, object, script, set, sort,
    stream, string, zset,
};

/// Command flags (bit set).
pub mod flags {
    /// Modifies data.
    pub const WRITE: u16 = 1 << 0;
    /// Reads data only.
    pub const READ: u16 = 1 << 1;
    /// O(1) or O(log n).
    pub const FAST: u16 = 1 << 2;
    /// Allowed before AUTH.
    pub const NO_AUTH: u16 = 1 << 3;
    /// May grow memory (refused at the storage limit).
    pub const DENY_OOM: u16 = 1 << 4;
    /// Not metered in ECPU (AUTH, HELLO, PING, QUIT): counted separately.
    pub const UNMETERED: u16 = 1 << 6;
    /// Redis's `@admin` ACL category (server administration; dangerous too).
    pub const ADMIN: u16 = 1 << 7;
    /// Naturally per-key multi-key command: keys in several partitions are
    /// served by one sub-command per partition, replies merged in key order
    /// (MGET, MSET, DEL, UNLINK, EXISTS, TOUCH). Any other command whose keys
    /// span slots gets CROSSSLOT, unless the cache's cluster mode is
    /// disabled (`partition::ClusterMode`: one partition holds every slot).
    pub const FANOUT: u16 = 1 << 8;
    /// May block: the handler makes one non-blocking attempt and the proxy
    /// waits for the keys to be written and retries, up to the command's
    /// timeout (BLPOP, BRPOP, BLMOVE, XREAD/XREADGROUP with BLOCK).
    pub const BLOCKING: u16 = 1 << 9;
    /// Runs at once while a MULTI is open instead of being queued.
    pub const TX_CONTROL: u16 = 1 << 10;
    /// Redis's `@dangerous` ACL category (also implied by [`ADMIN`]).
    pub const DANGEROUS: u16 = 1 << 11;
    /// A container: its first argument names a subcommand (`CLIENT KILL`),
    /// which ACL rules and denials name as `client|kill`.
    pub const CONTAINER: u16 = 1 << 12;
    /// Bounded on the request path although it counts work per element:
    /// that work runs elsewhere (DEL's frees go to the lazyfree thread), so
    /// the command runs inline as a `FAST` one would. Not shown by
    /// `COMMAND INFO` (Redis has no such flag).
    pub const WORK_OFF_PATH: u16 = 1 << 13;
    /// A Memcached-engine operation (`Family::Memcached`): run only by the
    /// Memcached connection (`src/memcached/`) through [`super::memcached_op`];
    /// invisible to RESP clients ([`super::lookup`], COMMAND, ACL CAT).
    pub const MEMCACHED: u16 = 1 << 14;

    /// Flag names as `COMMAND INFO` shows them.
    pub const NAMES: &[(u16, &str)] = &[
        (WRITE, "write"),
        (READ, "readonly"),
        (DENY_OOM, "denyoom"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (ADMIN, "admin"),
    ];
}

/// Command families: the `family` metric label and the cost model's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    String,
    Keys,
    Hash,
    Connection,
    Server,
    Cluster,
    List,
    Set,
    SortedSet,
    HyperLogLog,
    Bitmap,
    Stream,
    Transaction,
    Scripting,
    Geo,
    PubSub,
    /// The Memcached engine's operations (hidden from RESP clients).
    Memcached,
}

impl Family {
    pub const ALL: [Family; 17] = [
        Family::String,
        Family::Keys,
        Family::Hash,
        Family::Connection,
        Family::Server,
        Family::Cluster,
        Family::List,
        Family::Set,
        Family::SortedSet,
        Family::HyperLogLog,
        Family::Bitmap,
        Family::Stream,
        Family::Transaction,
        Family::Scripting,
        Family::Geo,
        Family::PubSub,
        Family::Memcached,
    ];

    /// The metric label; for data families, also Redis's ACL category name.
    pub fn label(self) -> &'static str {
        match self {
            Family::String => "string",
            Family::Keys => "keys",
            Family::Hash => "hash",
            Family::Connection => "connection",
            Family::Server => "server",
            Family::Cluster => "cluster",
            Family::List => "list",
            Family::Set => "set",
            Family::SortedSet => "sortedset",
            Family::HyperLogLog => "hyperloglog",
            Family::Bitmap => "bitmap",
            Family::Stream => "stream",
            Family::Transaction => "transaction",
            Family::Scripting => "scripting",
            Family::Geo => "geo",
            Family::PubSub => "pubsub",
            Family::Memcached => "memcached",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Commands the proxy runs itself: they need connection state, the cache
/// registry, or every partition of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnOp {
    Auth,
    Hello,
    Ping,
    Echo,
    Quit,
    Reset,
    Select,
    Client,
    Command,
    Info,
    Dbsize,
    Flushdb,
    Time,
    Scan,
    Keys,
    Readonly,
    Readwrite,
    Cluster,
    /// SCRIPT LOAD | EXISTS | FLUSH | KILL | HELP: the cache's script store.
    Script,
    /// ACL WHOAMI | CAT | LOG | DRYRUN | GETUSER | LIST | USERS | GENPASS.
    Acl,
    /// FUNCTION LOAD | LIST | DELETE | FLUSH | DUMP | RESTORE | STATS | KILL
    /// | HELP: the cache's function libraries.
    Function,
    /// RANDOMKEY: a key drawn from every partition of the cache.
    Randomkey,
    Config,
    Slowlog,
    Latency,
    Wait,
    /// The Pub/Sub family (SUBSCRIBE ... PUBSUB), by `args[0]`.
    PubSub,
    /// MONITOR: this client sees the cache's commands from now on.
    Monitor,
}

/// How a command executes.
#[derive(Clone, Copy)]
pub enum Exec {
    /// In the partition that owns its keys.
    Data(Handler),
    /// In the proxy.
    Conn(ConnOp),
    /// In the proxy: a transaction's own commands.
    Tx(TxOp),
}

/// MULTI, EXEC, DISCARD, WATCH, UNWATCH: they open, end or guard a
/// transaction (the proxy's `transaction` module), and run at once inside
/// MULTI rather than being queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOp {
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
}

/// Keys whose positions depend on the arguments, on top of the row's
/// first/last/step range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// Only the first/last/step range.
    Range,
    /// A key count at argument `at`, the keys right after it
    /// (`ZUNIONSTORE dest numkeys key...`, `SINTERCARD numkeys key...`).
    NumKeys { at: usize },
    /// The first half of the arguments after the `STREAMS` keyword, which
    /// follows `COUNT n`, `BLOCK ms`, `GROUP g c` and `NOACK` options
    /// (`XREAD`, `XREADGROUP`).
    Streams,
    /// SORT's `STORE destination`, found by skipping the other options'
    /// arguments as Redis's `sortGetKeys` does (the last STORE wins).
    SortStore,
    /// GEORADIUS's `STORE` / `STOREDIST destination` (from the 6th
    /// argument on, the last one wins, as Redis's `georadiusGetKeys`).
    GeoStore,
}

/// Where the `STREAMS` keyword is in an XREAD/XREADGROUP call, scanning the
/// options before it as Redis's `xreadGetKeys` does; `None` on anything else.
pub fn streams_keyword(args: &[Bytes]) -> Option<usize> {
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if is(a, "STREAMS") {
            return Some(i);
        } else if is(a, "COUNT") || is(a, "BLOCK") {
            i += 2;
        } else if is(a, "GROUP") {
            i += 3;
        } else if is(a, "NOACK") {
            i += 1;
        } else {
            return None;
        }
    }
    None
}

/// One row of the table.
pub struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    pub arity: i32,
    pub flags: u16,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// Keys that move with the arguments (see [`KeySpec`]).
    pub keys: KeySpec,
    pub family: Family,
    /// Work units per key named (1 = the engine time of a simple GET).
    pub cost_per_key: u32,
    /// Milli-work units per element walked by the handler (`Ctx::work`).
    pub cost_per_element_milli: u32,
    pub exec: Exec,
}

/// How the replies of a fanned-out command's sub-commands combine into
/// its reply ([`flags::FANOUT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanIn {
    /// One reply per key, reassembled in the keys' order (MGET).
    PerKey,
    /// Counts that add up (DEL, UNLINK, EXISTS, TOUCH).
    Sum,
    /// The same status from every part (MSET's OK).
    Same,
}

impl CommandSpec {
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    /// How this command's replies combine when its keys are served by
    /// several partitions; `None` for a command that is never fanned out.
    pub fn fan_in(&self) -> Option<FanIn> {
        if !self.has(flags::FANOUT) {
            return None;
        }
        Some(match self.name {
            "mget" => FanIn::PerKey,
            "mset" => FanIn::Same,
            _ => FanIn::Sum,
        })
    }

    /// Whether the command may name keys (its table row gives a key
    /// position or a rule that finds them).
    pub fn names_keys(&self) -> bool {
        self.first_key > 0 || !matches!(self.keys, KeySpec::Range)
    }

    /// Whether this command's cost is not bounded by its request (it walks
    /// a collection or runs a script): it runs on the worker pool, never
    /// inline on a reactor thread (DESIGN §12). Bounded commands are the
    /// `FAST` ones, those that walk nothing, and those whose counted work
    /// runs off the request path (`WORK_OFF_PATH`: DEL).
    pub fn runs_on_workers(&self) -> bool {
        self.family == Family::Scripting
            || (self.cost_per_element_milli > 0
                && !self.has(flags::FAST)
                && !self.has(flags::WORK_OFF_PATH))
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Sets where the movable keys are (used in the table).
    const fn keys(self, keys: KeySpec) -> CommandSpec {
        CommandSpec { keys, ..self }
    }

    /// Positions of the key arguments in `args` (the command name first).
    pub fn key_positions(&self, args: &[Bytes]) -> impl Iterator<Item = usize> + use<> {
        let argc = args.len() as i32;
        let (first, step) = (self.first_key, self.step.max(1));
        let last = if self.last_key < 0 {
            argc + self.last_key
        } else {
            self.last_key.min(argc - 1)
        };
        let last = if first > 0 { last } else { -1 };
        let fixed = (first.max(0)..=last)
            .step_by(step as usize)
            .map(|i| i as usize);
        fixed.chain(self.movable_keys(args))
    }

    /// The contiguous run of keys a [`KeySpec`] finds (empty when the
    /// arguments are malformed, e.g. a count past the last argument, as
    /// Redis's key specs: the handler then replies with the error).
    fn movable_keys(&self, args: &[Bytes]) -> std::ops::Range<usize> {
        match self.keys {
            KeySpec::Range => 0..0,
            KeySpec::NumKeys { at } => {
                let n = args
                    .get(at)
                    .and_then(|a| parse_i64(a))
                    .filter(|n| *n > 0)
                    .map_or(0, |n| n as u64);
                let start = at + 1;
                let end = (start as u64).saturating_add(n);
                if end > args.len() as u64 {
                    return 0..0;
                }
                start..end as usize
            }
            KeySpec::Streams => match streams_keyword(args) {
                Some(at) => {
                    let n = (args.len() - at - 1) / 2;
                    at + 1..at + 1 + n
                }
                None => 0..0,
            },
            KeySpec::GeoStore => {
                let mut found = 0..0;
                let mut i = 5;
                while i < args.len() {
                    if (is(&args[i], "STORE") || is(&args[i], "STOREDIST")) && i + 1 < args.len() {
                        found = i + 1..i + 2;
                        i += 1;
                    }
                    i += 1;
                }
                found
            }
            KeySpec::SortStore => {
                let mut found = 0..0;
                let mut i = 2;
                while i < args.len() {
                    let a = &args[i];
                    if is(a, "LIMIT") {
                        i += 2;
                    } else if is(a, "GET") || is(a, "BY") {
                        i += 1;
                    } else if is(a, "STORE") && i + 1 < args.len() {
                        found = i + 1..i + 2;
                    }
                    i += 1;
                }
                found
            }
        }
    }
}

const W: u16 = flags::WRITE;
const R: u16 = flags::READ;
const F: u16 = flags::FAST;
const M: u16 = flags::DENY_OOM;
const NA: u16 = flags::NO_AUTH;
const UM: u16 = flags::UNMETERED;
const AD: u16 = flags::ADMIN;
const FO: u16 = flags::FANOUT;
const BL: u16 = flags::BLOCKING;
const TX: u16 = flags::TX_CONTROL;
const DG: u16 = flags::DANGEROUS;
const CT: u16 = flags::CONTAINER;
const OP: u16 = flags::WORK_OFF_PATH;
const MC: u16 = flags::MEMCACHED;

/// Work per element a handler counts in `Ctx::work`, in milli-units,
/// calibrated with `loadtest/src/bin/calibrate.rs` against a GET (see the
/// README's cost table; "measured" below is engine time in GETs per
/// element). Handlers count what they walk, return or remove, and the
/// elements a command names beyond its first (`Ctx::count_extra`); a
/// member with its score counts twice. An element compared in place,
/// nothing copied (LPOS, LREM, LINSERT over 100k elements: 0.0035-0.0055
/// on 2026-11-30's full run; 0.0015-0.0035 before) ...
const STEP: u32 = 4;
/// ... an element removed and freed, nothing replied (LTRIM: 0.03-0.04) ...
const FREE: u32 = 40;
/// ... an element looked up in another collection, nothing copied
/// (SINTERCARD, ZINTERCARD, SMISMEMBER: 39-45 ns, 0.11-0.12 of the quiet
/// core's GET on 2026-11-30's full run; 0.04-0.07 of the loaded
/// baselines it was first fitted to) ...
const PROBE: u32 = 100;
/// ... a cheap step: an element trimmed from a stream, pushed onto a
/// list, removed from a set, a field of XADD, 64 bytes of a collection
/// COPY clones (XTRIM, RPUSH, SREM: 0.07-0.1) ...
const WALK: u32 = 100;
/// ... an element copied into a reply or into a collection: a list, set or
/// sorted-set member, a field or a value, a score, a string or an array of
/// a stream reply (LRANGE, SMEMBERS, ZRANGE, HKEYS, HVALS, SADD's members,
/// XRANGE: 0.15-0.25); also a range of sorted-set members removed
/// (ZREMRANGEBY*: 0.1-0.25) ...
const WALK_COPY: u32 = 200;
/// ... an element combined or placed, then replied: picked at random
/// (HRANDFIELD, ZRANDMEMBER: in a sorted set over 1 MiB, twice), walked by
/// SINTER/SUNION/SDIFF or ZUNIONSTORE/ZINTERSTORE, a field HSET adds (a
/// hash growing rehashes), a member ZREM looks up and unlinks, an ID
/// deleted from a stream (XDEL, twice) (0.2-0.55; HSET 1000 new fields and
/// ZREM 1000 members 0.35-0.4) ...
const WALK_BUILD: u32 = 300;
/// ... a field and its value copied into a reply (HGETALL: 0.45-0.55 of
/// the 2026-11-30 afternoon runs' baseline).
const WALK_PAIR: u32 = 400;
/// ... an element taken out of its collection, freed and replied: popped
/// (LPOP, LMPOP, ZPOPMIN, ZMPOP: 0.6-0.7), drawn at random and removed
/// (SPOP with a count: 0.62-0.7, each draw probes the set's table for a
/// filled bucket), a pending entry acknowledged or claimed (XACK, twice
/// an ID: 0.55-0.65 each; XCLAIM, XAUTOCLAIM, with their reply's strings).
const WALK_TAKE: u32 = 600;
/// ... a slot table's length read while RANDOMKEY looks for the key it
/// drew (a pass over up to 16,384 lengths costs about 16 GETs).
const SLOT_STEP: u32 = 1;
/// ... a cell of LCS's dynamic-programming table (a compare and a max,
/// about a nanosecond: 1 milli-unit rounds it up).
const LCS_CELL: u32 = 1;
/// Work per KiB of string scanned by bitmap commands, in milli-units,
/// words at a time (measured 0.23-0.35 GETs per KiB for BITCOUNT over
/// 1 MiB; 0.09-0.16 for BITPOS finding nothing, which counts half; BITOP
/// 0.26 per KiB of each source, its result's allocation included and its
/// bytes charged apart as `FILL_KIB`). A byte at a time they took 2-4 GETs
/// per KiB.
pub(crate) const SCAN_KIB: u32 = 250;
/// Work per whole KiB a write creates beyond its request's bytes (SETRANGE
/// or SETBIT past the end zero-fill, BITOP builds its result), in
/// milli-units: what a SET would pay in transfer to send those bytes, so
/// growing a string costs the same by any command. This is a charge for
/// the bytes, not for CPU: zero-filling 1 MiB measured ~35 µs here (0.06
/// GETs per KiB).
pub(crate) const FILL_KIB: u32 = 1000;
/// Work per KiB of HyperLogLog registers decoded, merged or packed, in
/// milli-units (6-bit fields one by one: a dense count measured 80-150
/// GETs for its 16 KiB walk, a merge 60-95 per source).
const HLL_KIB: u32 = 6000;
/// Scripts count their work in milli-units themselves (`Ctx::work`): a
/// fixed cost per run, each `redis.call` what the command would cost alone
/// plus the crossing of Lua and its values, Lua instructions, and the
/// string functions' calls, matcher steps and bytes (`cmd::script`'s
/// metering notes and constants).
const SCRIPT_MILLI: u32 = 1;
/// A collection charged more bytes than this no longer fits a core's
/// caches: each random pick of ZRANDMEMBER or SRANDMEMBER then misses
/// memory (a sorted set's arena node and member, a set's slot and member)
/// and counts one more element (measured 0.4-0.9 GETs a pick at 100k
/// members, 0.2 at 1000).
pub(crate) const COLD_PICK_BYTES: usize = 1 << 20;
/// Rows whose handler counts milli-units itself, with the constants below,
/// because one per-element cost cannot fit what it does: the SCAN family
/// (elements visited and returned apart) and DEL/UNLINK (frees).
const MILLI_COUNTED: u32 = 1;
/// An element HSCAN, SSCAN or ZSCAN visits, kept or not (the MATCH test):
/// 12-13 ns, 0.02-0.06 GETs as the GET baseline moves with the machine's
/// load (250-750 ns) ...
pub const SCAN_VISIT_MILLI: u64 = 40;
/// ... and a key SCAN or KEYS visits (an expiry check too, in a slot
/// table of up to millions of keys): 17 ns, 0.035-0.08 GETs.
pub const SCAN_KEY_VISIT_MILLI: u64 = 50;
/// Each string a SCAN-family command copies into its reply: a key, a
/// field, a value, a member (measured 0.15-0.18 on top of the visit).
pub const SCAN_REPLY_MILLI: u64 = 150;
/// A score ZSCAN formats into its reply (the member is a reply string):
/// formatting a double costs about twice a copy (measured 0.3).
pub const SCAN_SCORE_MILLI: u64 = 300;
/// A hash slot SCAN or KEYS walks through, holding keys or not: a SCAN
/// from cursor 0 on a cache whose keys sit in late slots walks thousands
/// of empty ones (measured 0.004).
pub const SCAN_SLOT_MILLI: u64 = 4;
/// DEL and UNLINK: freeing a value big enough to go to the lazyfree thread
/// (`partition::lazyfree`) is work the tenant caused, though it runs off
/// the request path. Charged when the value is handed off: a fixed cost
/// for the hand-off (boxing, the queue, waking the thread) ...
pub const FREE_HANDOFF_MILLI: u64 = 10_000;
/// ... plus each allocation the thread frees: a set member or list element
/// one, a hash field (field and value) or a sorted-set member (member and
/// links) two, a stream entry one (measured 0.045-0.09 per member of a
/// 100k set, 0.05-0.2 per field of a 1000-field hash, as the GET baseline
/// moves with the machine's load) ...
pub const FREE_ELEMENT_MILLI: u64 = 50;
/// ... plus each whole KiB freed (a 1 MiB string: 16-27 GETs in all).
pub const FREE_KIB_MILLI: u64 = 15;
/// `numkeys` right after the command name (SINTERCARD).
/// `numkeys` right after the command name (SINTERCARD, ZUNION, LMPOP...).
const NUMKEYS_1: KeySpec = KeySpec::NumKeys { at: 1 };
/// `numkeys` after a destination key or a timeout (ZUNIONSTORE, BLMPOP...).
const NUMKEYS_2: KeySpec = KeySpec::NumKeys { at: 2 };

macro_rules! row {
    ($name:literal, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $fam:ident, $elem:expr, $exec:expr) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            keys: KeySpec::Range,
            family: Family::$fam,
            cost_per_key: 1,
            cost_per_element_milli: $elem,
            exec: $exec,
        }
    };
}

use ConnOp as C;
use Exec::{Conn, Data, Tx};

/// Every command, one row each.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    // connection and server
    row!("auth",        -2, NA | UM | F,     0, 0, 0, Connection, 0, Conn(C::Auth)),
    row!("hello",       -1, NA | UM | F,     0, 0, 0, Connection, 0, Conn(C::Hello)),
    row!("ping",        -1, NA | UM | F,     0, 0, 0, Connection, 0, Conn(C::Ping)),
    row!("quit",        -1, NA | UM | F | TX,     0, 0, 0, Connection, 0, Conn(C::Quit)),
    row!("echo",         2, F,               0, 0, 0, Connection, 0, Conn(C::Echo)),
    row!("reset",        1, NA | F | TX,          0, 0, 0, Connection, 0, Conn(C::Reset)),
    row!("select",       2, F,               0, 0, 0, Connection, 0, Conn(C::Select)),
    row!("client",      -2, CT,              0, 0, 0, Connection, 0, Conn(C::Client)),
    row!("command",     -1, CT,              0, 0, 0, Connection,    0, Conn(C::Command)),
    row!("info",        -1, DG,              0, 0, 0, Server,     0, Conn(C::Info)),
    row!("monitor",      1, AD | DG,         0, 0, 0, Server,     0, Conn(C::Monitor)),
    row!("dbsize",       1, R | F,           0, 0, 0, Keys,       0, Conn(C::Dbsize)),
    row!("flushdb",     -1, W | DG,           0, 0, 0, Keys,       0, Conn(C::Flushdb)),
    row!("flushall",    -1, W | DG,           0, 0, 0, Keys,       0, Conn(C::Flushdb)),
    row!("time",         1, F,               0, 0, 0, Server,     0, Conn(C::Time)),
    row!("scan",        -2, R,               0, 0, 0, Keys,    MILLI_COUNTED, Conn(C::Scan)),
    row!("keys",         2, R | DG,           0, 0, 0, Keys,    MILLI_COUNTED, Conn(C::Keys)),
    row!("randomkey",    1, R,               0, 0, 0, Keys,    SLOT_STEP, Conn(C::Randomkey)),
    row!("readonly",     1, F,               0, 0, 0, Connection, 0, Conn(C::Readonly)),
    row!("readwrite",    1, F,               0, 0, 0, Connection, 0, Conn(C::Readwrite)),
    row!("cluster",     -2, CT,              0, 0, 0, Cluster,    0, Conn(C::Cluster)),
    row!("config",      -2, CT,              0, 0, 0, Server,     0, Conn(C::Config)),
    row!("slowlog",     -2, CT,              0, 0, 0, Server,     0, Conn(C::Slowlog)),
    row!("latency",     -2, CT,              0, 0, 0, Server,     0, Conn(C::Latency)),
    row!("wait",         3, 0,               0, 0, 0, Connection,    0, Conn(C::Wait)),
    // OBJECT ENCODING walks up to the cache's listpack thresholds.
    row!("object",      -2, R | CT,             2, 2, 1, Keys,    STEP, Data(object::object)),
    row!("memory",      -2, R | CT,             2, 2, 1, Server,     0, Data(object::memory)),
    // transactions
    row!("multi",        1, F | TX,          0, 0, 0, Transaction, 0, Tx(TxOp::Multi)),
    row!("exec",         1, TX,              0, 0, 0, Transaction, 1, Tx(TxOp::Exec)),
    row!("discard",      1, F | TX,          0, 0, 0, Transaction, 0, Tx(TxOp::Discard)),
    row!("watch",       -2, F | TX,          1,-1, 1, Transaction, 0, Tx(TxOp::Watch)),
    row!("unwatch",      1, F | TX,          0, 0, 0, Transaction, 0, Tx(TxOp::Unwatch)),
    // strings
    row!("get",          2, R | F,           1, 1, 1, String, 0, Data(string::get)),
    row!("set",         -3, W | M,           1, 1, 1, String, 0, Data(string::set)),
    row!("setnx",        3, W | M | F,       1, 1, 1, String, 0, Data(string::setnx)),
    row!("setex",        4, W | M,           1, 1, 1, String, 0, Data(string::setex)),
    row!("psetex",       4, W | M,           1, 1, 1, String, 0, Data(string::psetex)),
    row!("getset",       3, W | M | F,       1, 1, 1, String, 0, Data(string::getset)),
    row!("getdel",       2, W | F,           1, 1, 1, String, 0, Data(string::getdel)),
    row!("getex",       -2, W | F,           1, 1, 1, String, 0, Data(string::getex)),
    row!("mget",        -2, R | F | FO,           1,-1, 1, String, 0, Data(string::mget)),
    row!("mset",        -3, W | M | FO,           1,-1, 2, String, 0, Data(string::mset)),
    row!("msetnx",      -3, W | M,       1,-1, 2, String, 0, Data(string::msetnx)),
    row!("incr",         2, W | M | F,       1, 1, 1, String, 0, Data(string::incr)),
    row!("decr",         2, W | M | F,       1, 1, 1, String, 0, Data(string::decr)),
    row!("incrby",       3, W | M | F,       1, 1, 1, String, 0, Data(string::incrby)),
    row!("decrby",       3, W | M | F,       1, 1, 1, String, 0, Data(string::decrby)),
    row!("incrbyfloat",  3, W | M | F,       1, 1, 1, String, 0, Data(string::incrbyfloat)),
    row!("append",       3, W | M | F,       1, 1, 1, String, 0, Data(string::append)),
    row!("strlen",       2, R | F,           1, 1, 1, String, 0, Data(string::strlen)),
    row!("getrange",     4, R,               1, 1, 1, String, 0, Data(string::getrange)),
    row!("lcs",         -3, R,               1, 2, 1, String, LCS_CELL, Data(string::lcs)),
    row!("substr",       4, R,               1, 1, 1, String, 0, Data(string::getrange)),
    row!("setrange",     4, W | M,           1, 1, 1, String, FILL_KIB, Data(string::setrange)),
    // keys
    row!("del",         -2, W | FO | OP,          1,-1, 1, Keys, MILLI_COUNTED, Data(keys::del)),
    row!("unlink",      -2, W | F | FO | OP,      1,-1, 1, Keys, MILLI_COUNTED, Data(keys::del)),
    row!("exists",      -2, R | F | FO,           1,-1, 1, Keys, 0, Data(keys::exists)),
    row!("touch",       -2, R | F | FO,           1,-1, 1, Keys, 0, Data(keys::exists)),
    row!("type",         2, R | F,           1, 1, 1, Keys, 0, Data(keys::type_)),
    row!("expire",      -3, W | F,           1, 1, 1, Keys, 0, Data(keys::expire)),
    row!("pexpire",     -3, W | F,           1, 1, 1, Keys, 0, Data(keys::expire)),
    row!("expireat",    -3, W | F,           1, 1, 1, Keys, 0, Data(keys::expire)),
    row!("pexpireat",   -3, W | F,           1, 1, 1, Keys, 0, Data(keys::expire)),
    row!("ttl",          2, R | F,           1, 1, 1, Keys, 0, Data(keys::ttl)),
    row!("pttl",         2, R | F,           1, 1, 1, Keys, 0, Data(keys::ttl)),
    row!("expiretime",   2, R | F,           1, 1, 1, Keys, 0, Data(keys::ttl)),
    row!("pexpiretime",  2, R | F,           1, 1, 1, Keys, 0, Data(keys::ttl)),
    row!("persist",      2, W | F,           1, 1, 1, Keys, 0, Data(keys::persist)),
    row!("rename",       3, W,           1, 2, 1, Keys, 0, Data(keys::rename)),
    row!("renamenx",     3, W | F,       1, 2, 1, Keys, 0, Data(keys::rename)),
    row!("sort",        -2, W | M | DG,  1, 1, 1, Keys, WALK_BUILD, Data(sort::sort)).keys(KeySpec::SortStore),
    row!("sort_ro",     -2, R | DG,      1, 1, 1, Keys, WALK_BUILD, Data(sort::sort)),
    row!("dump",         2, R,               1, 1, 1, Keys, WALK_COPY, Data(dump::dump)),
    row!("restore",     -4, W | M | DG,      1, 1, 1, Keys, WALK_COPY, Data(dump::restore)),
    row!("copy",        -3, W | M,       1, 2, 1, Keys, WALK, Data(keys::copy)),
    // hashes
    row!("hset",        -4, W | M | F,       1, 1, 1, Hash, WALK_BUILD, Data(hash::hset)),
    row!("hmset",       -4, W | M | F,       1, 1, 1, Hash, WALK_BUILD, Data(hash::hset)),
    row!("hsetnx",       4, W | M | F,       1, 1, 1, Hash, 0, Data(hash::hsetnx)),
    row!("hget",         3, R | F,           1, 1, 1, Hash, 0, Data(hash::hget)),
    row!("hmget",       -3, R | F,           1, 1, 1, Hash, WALK_COPY, Data(hash::hmget)),
    row!("hgetall",      2, R,               1, 1, 1, Hash, WALK_PAIR, Data(hash::hgetall)),
    row!("hkeys",        2, R,               1, 1, 1, Hash, WALK_COPY, Data(hash::hgetall)),
    row!("hvals",        2, R,               1, 1, 1, Hash, WALK_COPY, Data(hash::hgetall)),
    row!("hdel",        -3, W | F,           1, 1, 1, Hash, WALK_COPY, Data(hash::hdel)),
    row!("hexists",      3, R | F,           1, 1, 1, Hash, 0, Data(hash::hexists)),
    row!("hlen",         2, R | F,           1, 1, 1, Hash, 0, Data(hash::hlen)),
    row!("hstrlen",      3, R | F,           1, 1, 1, Hash, 0, Data(hash::hstrlen)),
    row!("hincrby",      4, W | M | F,       1, 1, 1, Hash, 0, Data(hash::hincrby)),
    row!("hincrbyfloat", 4, W | M | F,       1, 1, 1, Hash, 0, Data(hash::hincrbyfloat)),
    row!("hscan",       -3, R,               1, 1, 1, Hash, MILLI_COUNTED, Data(hash::hscan)),
    row!("hrandfield",  -2, R,               1, 1, 1, Hash, WALK_BUILD, Data(hash::hrandfield)),
    // lists
    row!("lpush",       -3, W | M | F,       1, 1, 1, List, WALK, Data(list::lpush)),
    row!("rpush",       -3, W | M | F,       1, 1, 1, List, WALK, Data(list::rpush)),
    row!("lpushx",      -3, W | M | F,       1, 1, 1, List, WALK, Data(list::lpushx)),
    row!("rpushx",      -3, W | M | F,       1, 1, 1, List, WALK, Data(list::rpushx)),
    row!("lpop",        -2, W | F,           1, 1, 1, List, WALK_TAKE, Data(list::lpop)),
    row!("rpop",        -2, W | F,           1, 1, 1, List, WALK_TAKE, Data(list::rpop)),
    row!("llen",         2, R | F,           1, 1, 1, List, 0, Data(list::llen)),
    row!("lrange",       4, R,               1, 1, 1, List, WALK_COPY, Data(list::lrange)),
    row!("lindex",       3, R,               1, 1, 1, List, 0, Data(list::lindex)),
    row!("lset",         4, W | M,           1, 1, 1, List, 0, Data(list::lset)),
    row!("linsert",      5, W | M,           1, 1, 1, List, STEP, Data(list::linsert)),
    row!("lrem",         4, W,               1, 1, 1, List, STEP, Data(list::lrem)),
    row!("ltrim",        4, W,               1, 1, 1, List, FREE, Data(list::ltrim)),
    row!("lpos",        -3, R,               1, 1, 1, List, STEP, Data(list::lpos)),
    row!("lmove",        5, W | M,       1, 2, 1, List, 0, Data(list::lmove)),
    row!("rpoplpush",    3, W | M,       1, 2, 1, List, 0, Data(list::rpoplpush)),
    row!("blpop",       -3, W | BL,          1,-2, 1, List, WALK_TAKE, Data(list::bpop)),
    row!("brpop",       -3, W | BL,          1,-2, 1, List, WALK_TAKE, Data(list::bpop)),
    row!("blmove",       6, W | M | BL,      1, 2, 1, List, 0, Data(list::blmove)),
    row!("brpoplpush",   4, W | M | BL,      1, 2, 1, List, 0, Data(list::brpoplpush)),
    row!("lmpop",       -4, W,               0, 0, 0, List, WALK_TAKE, Data(list::lmpop)).keys(NUMKEYS_1),
    row!("blmpop",      -5, W | BL,          0, 0, 0, List, WALK_TAKE, Data(list::blmpop)).keys(NUMKEYS_2),
    // sets
    row!("sadd",        -3, W | M | F,       1, 1, 1, Set, WALK_COPY, Data(set::sadd)),
    row!("srem",        -3, W | F,           1, 1, 1, Set, WALK, Data(set::srem)),
    row!("smembers",     2, R,               1, 1, 1, Set, WALK_COPY, Data(set::smembers)),
    row!("sismember",    3, R | F,           1, 1, 1, Set, 0, Data(set::sismember)),
    row!("smismember",  -3, R | F,           1, 1, 1, Set, PROBE, Data(set::smismember)),
    row!("scard",        2, R | F,           1, 1, 1, Set, 0, Data(set::scard)),
    row!("spop",        -2, W | F,           1, 1, 1, Set, WALK_TAKE, Data(set::spop)),
    row!("srandmember", -2, R,               1, 1, 1, Set, WALK_COPY, Data(set::srandmember)),
    row!("smove",        4, W | F,       1, 2, 1, Set, 0, Data(set::smove)),
    row!("sinter",      -2, R,           1,-1, 1, Set, WALK_BUILD, Data(set::sinter)),
    row!("sunion",      -2, R,           1,-1, 1, Set, WALK_BUILD, Data(set::sunion)),
    row!("sdiff",       -2, R,           1,-1, 1, Set, WALK_BUILD, Data(set::sdiff)),
    row!("sinterstore", -3, W | M,       1,-1, 1, Set, WALK_COPY, Data(set::sinterstore)),
    row!("sunionstore", -3, W | M,       1,-1, 1, Set, WALK_COPY, Data(set::sunionstore)),
    row!("sdiffstore",  -3, W | M,       1,-1, 1, Set, WALK_COPY, Data(set::sdiffstore)),
    row!("sintercard",  -3, R,           0, 0, 0, Set, PROBE, Data(set::sintercard)).keys(NUMKEYS_1),
    row!("sscan",       -3, R,               1, 1, 1, Set, MILLI_COUNTED, Data(set::sscan)),
    // sorted sets
    row!("zadd",        -4, W | M | F,       1, 1, 1, SortedSet, WALK_COPY, Data(zset::zadd)),
    row!("zincrby",      4, W | M | F,       1, 1, 1, SortedSet, 0, Data(zset::zincrby)),
    row!("zrem",        -3, W | F,           1, 1, 1, SortedSet, WALK_BUILD, Data(zset::zrem)),
    row!("zscore",       3, R | F,           1, 1, 1, SortedSet, 0, Data(zset::zscore)),
    row!("zmscore",     -3, R | F,           1, 1, 1, SortedSet, WALK_COPY, Data(zset::zmscore)),
    row!("zcard",        2, R | F,           1, 1, 1, SortedSet, 0, Data(zset::zcard)),
    row!("zcount",       4, R | F,           1, 1, 1, SortedSet, 0, Data(zset::zcount)),
    row!("zlexcount",    4, R | F,           1, 1, 1, SortedSet, 0, Data(zset::zlexcount)),
    row!("zrank",       -3, R | F,           1, 1, 1, SortedSet, 0, Data(zset::zrank)),
    row!("zrevrank",    -3, R | F,           1, 1, 1, SortedSet, 0, Data(zset::zrank)),
    row!("zrange",      -4, R,               1, 1, 1, SortedSet, WALK_COPY, Data(zset::zrange)),
    row!("zrevrange",   -4, R,               1, 1, 1, SortedSet, WALK_COPY, Data(zset::zrange)),
    row!("zrangebyscore", -4, R,             1, 1, 1, SortedSet, WALK_COPY, Data(zset::zrange)),
    row!("zrevrangebyscore", -4, R,          1, 1, 1, SortedSet, WALK_COPY, Data(zset::zrange)),
    row!("zrangebylex", -4, R,               1, 1, 1, SortedSet, WALK_COPY, Data(zset::zrange)),
    row!("zrevrangebylex", -4, R,            1, 1, 1, SortedSet, WALK_COPY, Data(zset::zrange)),
    row!("zremrangebyscore", 4, W,           1, 1, 1, SortedSet, WALK_COPY, Data(zset::zremrange)),
    row!("zremrangebyrank", 4, W,            1, 1, 1, SortedSet, WALK_COPY, Data(zset::zremrange)),
    row!("zremrangebylex", 4, W,             1, 1, 1, SortedSet, WALK_COPY, Data(zset::zremrange)),
    row!("zpopmin",     -2, W | F,           1, 1, 1, SortedSet, WALK_TAKE, Data(zset::zpop)),
    row!("zpopmax",     -2, W | F,           1, 1, 1, SortedSet, WALK_TAKE, Data(zset::zpop)),
    row!("bzpopmin",    -3, W | BL | F,      1,-2, 1, SortedSet, WALK_TAKE, Data(zset::bzpop)),
    row!("bzpopmax",    -3, W | BL | F,      1,-2, 1, SortedSet, WALK_TAKE, Data(zset::bzpop)),
    row!("zmpop",       -4, W,               0, 0, 0, SortedSet, WALK_TAKE, Data(zset::zmpop)).keys(NUMKEYS_1),
    row!("bzmpop",      -5, W | BL,          0, 0, 0, SortedSet, WALK_TAKE, Data(zset::bzmpop)).keys(NUMKEYS_2),
    row!("zrandmember", -2, R,               1, 1, 1, SortedSet, WALK_BUILD, Data(zset::zrandmember)),
    row!("zunionstore", -4, W | M,       1, 1, 1, SortedSet, WALK_BUILD, Data(zset::zunionstore)).keys(NUMKEYS_2),
    row!("zinterstore", -4, W | M,       1, 1, 1, SortedSet, WALK_BUILD, Data(zset::zinterstore)).keys(NUMKEYS_2),
    row!("zdiffstore",  -4, W | M,       1, 1, 1, SortedSet, WALK_BUILD, Data(zset::zdiffstore)).keys(NUMKEYS_2),
    row!("zunion",      -3, R,           0, 0, 0, SortedSet, WALK_BUILD, Data(zset::zunion)).keys(NUMKEYS_1),
    row!("zinter",      -3, R,           0, 0, 0, SortedSet, WALK_BUILD, Data(zset::zinter)).keys(NUMKEYS_1),
    row!("zdiff",       -3, R,           0, 0, 0, SortedSet, WALK_BUILD, Data(zset::zdiff)).keys(NUMKEYS_1),
    row!("zintercard",  -3, R,           0, 0, 0, SortedSet, PROBE, Data(zset::zintercard)).keys(NUMKEYS_1),
    row!("zrangestore", -5, W | M,       1, 2, 1, SortedSet, WALK_COPY, Data(zset::zrangestore)),
    row!("zscan",       -3, R,               1, 1, 1, SortedSet, MILLI_COUNTED, Data(zset::zscan)),
    // geospatial (sorted sets)
    row!("geoadd",      -5, W | M,           1, 1, 1, Geo, WALK_COPY, Data(geo::geoadd)),
    row!("geodist",     -4, R,               1, 1, 1, Geo, 0, Data(geo::geodist)),
    row!("geohash",     -2, R,               1, 1, 1, Geo, WALK_COPY, Data(geo::geohash)),
    row!("geopos",      -2, R,               1, 1, 1, Geo, WALK_COPY, Data(geo::geopos)),
    row!("geosearch",   -7, R,               1, 1, 1, Geo, WALK_COPY, Data(geo::georadius)),
    row!("geosearchstore", -8, W | M,        1, 2, 1, Geo, WALK_COPY, Data(geo::georadius)),
    row!("georadius",   -6, W | M,           1, 1, 1, Geo, WALK_COPY, Data(geo::georadius)).keys(KeySpec::GeoStore),
    row!("georadius_ro", -6, R,              1, 1, 1, Geo, WALK_COPY, Data(geo::georadius)),
    row!("georadiusbymember", -5, W | M,     1, 1, 1, Geo, WALK_COPY, Data(geo::georadius)).keys(KeySpec::GeoStore),
    row!("georadiusbymember_ro", -5, R,      1, 1, 1, Geo, WALK_COPY, Data(geo::georadius)),
    // HyperLogLogs (strings)
    row!("pfadd",       -2, W | M | F,       1, 1, 1, HyperLogLog, HLL_KIB, Data(hll::pfadd)),
    row!("pfcount",     -2, R,           1,-1, 1, HyperLogLog, HLL_KIB, Data(hll::pfcount)),
    row!("pfmerge",     -2, W | M,       1,-1, 1, HyperLogLog, HLL_KIB, Data(hll::pfmerge)),
    // bitmaps (strings)
    row!("setbit",       4, W | M,           1, 1, 1, Bitmap, FILL_KIB, Data(bitmap::setbit)),
    row!("getbit",       3, R | F,           1, 1, 1, Bitmap, 0, Data(bitmap::getbit)),
    row!("bitcount",    -2, R,               1, 1, 1, Bitmap, SCAN_KIB, Data(bitmap::bitcount)),
    row!("bitpos",      -3, R,               1, 1, 1, Bitmap, SCAN_KIB, Data(bitmap::bitpos)),
    row!("bitfield",    -2, W | M,           1, 1, 1, Bitmap, FILL_KIB, Data(bitmap::bitfield)),
    row!("bitfield_ro", -2, R | F,           1, 1, 1, Bitmap, FILL_KIB, Data(bitmap::bitfield)),
    row!("bitop",       -4, W | M,       2,-1, 1, Bitmap, SCAN_KIB, Data(bitmap::bitop)),
    // streams
    row!("xadd",        -5, W | M | F,       1, 1, 1, Stream, WALK, Data(stream::xadd)),
    row!("xlen",         2, R | F,           1, 1, 1, Stream, 0, Data(stream::xlen)),
    row!("xrange",      -4, R,               1, 1, 1, Stream, WALK_COPY, Data(stream::xrange)),
    row!("xrevrange",   -4, R,               1, 1, 1, Stream, WALK_COPY, Data(stream::xrange)),
    row!("xdel",        -3, W | F,           1, 1, 1, Stream, WALK_BUILD, Data(stream::xdel)),
    row!("xtrim",       -4, W,               1, 1, 1, Stream, WALK, Data(stream::xtrim)),
    row!("xread",       -4, R | BL,           0, 0, 0, Stream, WALK_COPY, Data(stream::xread)).keys(KeySpec::Streams),
    row!("xreadgroup",  -7, W | BL,           0, 0, 0, Stream, WALK_COPY, Data(stream::xread)).keys(KeySpec::Streams),
    row!("xgroup",      -2, W | M | CT,        2, 2, 1, Stream, WALK, Data(stream::xgroup)),
    row!("xack",        -4, W | F,           1, 1, 1, Stream, WALK_TAKE, Data(stream::xack)),
    row!("xpending",    -3, R,               1, 1, 1, Stream, WALK_COPY, Data(stream::xpending)),
    row!("xclaim",      -6, W | F,           1, 1, 1, Stream, WALK_TAKE, Data(stream::xclaim)),
    row!("xautoclaim",  -6, W | F,           1, 1, 1, Stream, WALK_TAKE, Data(stream::xautoclaim)),
    row!("xsetid",      -3, W | M | F,       1, 1, 1, Stream, 0, Data(stream::xsetid)),
    row!("xinfo",       -2, R | CT,           2, 2, 1, Stream, WALK_COPY, Data(stream::xinfo)),
    // scripting: keys after numkeys (one slot, else CROSSSLOT; keyless
    // scripts run in slot 0's partition); EVALSHA* reach the handler with the
    // body in place of the SHA (the proxy resolves it).
    row!("eval",        -3, M,           0, 0, 0, Scripting, SCRIPT_MILLI, Data(script::eval)).keys(NUMKEYS_2),
    row!("evalsha",     -3, M,           0, 0, 0, Scripting, SCRIPT_MILLI, Data(script::eval)).keys(NUMKEYS_2),
    row!("eval_ro",     -3, R,           0, 0, 0, Scripting, SCRIPT_MILLI, Data(script::eval)).keys(NUMKEYS_2),
    row!("evalsha_ro",  -3, R,           0, 0, 0, Scripting, SCRIPT_MILLI, Data(script::eval)).keys(NUMKEYS_2),
    row!("acl",         -2, CT,              0, 0, 0, Server,     0, Conn(C::Acl)),
    row!("script",      -2, CT,          0, 0, 0, Scripting, 0, Conn(C::Script)),
    // functions: FCALL routes as EVAL (keys after numkeys) and reaches the
    // handler with `<flags> <library id>` and the library's code appended
    // (the proxy resolves the function in the cache's library store);
    // FUNCTION LOAD / RESTORE run library code on the worker pool and
    // count milli-units as scripts do.
    row!("fcall",       -3, M,           0, 0, 0, Scripting, SCRIPT_MILLI, Data(script::functions::fcall)).keys(NUMKEYS_2),
    row!("fcall_ro",    -3, R,           0, 0, 0, Scripting, SCRIPT_MILLI, Data(script::functions::fcall)).keys(NUMKEYS_2),
    row!("function",    -2, CT,          0, 0, 0, Scripting, SCRIPT_MILLI, Conn(C::Function)),
    // Pub/Sub (the cache's hub; shard channels route like keys: one slot
    // per call, else CROSSSLOT). PUBLISH pays its fan-out: delivered bytes
    // as transfer, receivers and patterns compared as work.
    row!("subscribe",   -2, 0,           0, 0, 0, PubSub, 0, Conn(C::PubSub)),
    row!("unsubscribe", -1, 0,           0, 0, 0, PubSub, 0, Conn(C::PubSub)),
    row!("psubscribe",  -2, 0,           0, 0, 0, PubSub, 0, Conn(C::PubSub)),
    row!("punsubscribe", -1, 0,          0, 0, 0, PubSub, 0, Conn(C::PubSub)),
    row!("ssubscribe",  -2, 0,           1,-1, 1, PubSub, 0, Conn(C::PubSub)),
    row!("sunsubscribe", -1, 0,          1,-1, 1, PubSub, 0, Conn(C::PubSub)),
    row!("publish",      3, F,           0, 0, 0, PubSub, WALK, Conn(C::PubSub)),
    row!("spublish",     3, F,           1, 1, 1, PubSub, WALK, Conn(C::PubSub)),
    row!("pubsub",      -2, CT,          0, 0, 0, PubSub, WALK, Conn(C::PubSub)),
    // The Memcached engine (`src/memcached/`, handlers in `memcached.rs`):
    // hidden from RESP clients. One unit per key; the bytes by transfer.
    // A read; with a new exptime (gat, touch, mg T) or a vivify (mg N) a
    // write that may grow memory.
    row!("mc_get",       8, R | F | MC,         1, 1, 1, Memcached, 0, Data(memcached::get)),
    row!("mc_gat",       8, W | M | F | MC,     1, 1, 1, Memcached, 0, Data(memcached::get)),
    row!("mc_store",    10, W | M | F | MC,     1, 1, 1, Memcached, 0, Data(memcached::store)),
    row!("mc_delete",    8, W | F | MC,         1, 1, 1, Memcached, 0, Data(memcached::delete)),
    row!("mc_arith",    10, W | M | F | MC,     1, 1, 1, Memcached, 0, Data(memcached::arith)),
    // Run by the Memcached connection itself (every partition, or none).
    row!("mc_flush_all", -1, W | MC,            0, 0, 0, Memcached, 0, Conn(C::Flushdb)),
    row!("mc_stats",    -1, MC,                 0, 0, 0, Memcached, 0, Conn(C::Info)),
    row!("mc_version",  -1, UM | F | MC,        0, 0, 0, Memcached, 0, Conn(C::Ping)),
];

/// Every row a RESP client may see (the Memcached engine's are hidden).
pub fn resp_commands() -> impl Iterator<Item = &'static CommandSpec> {
    COMMANDS.iter().filter(|c| !c.has(flags::MEMCACHED))
}

/// The Memcached engine's row `name` (`mc_get`...): a fixed name from the
/// Memcached layer, never client bytes.
pub fn memcached_op(name: &str) -> &'static CommandSpec {
    static INDEX: OnceLock<HashMap<&'static str, &'static CommandSpec>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        COMMANDS
            .iter()
            .filter(|c| c.has(flags::MEMCACHED))
            .map(|c| (c.name, c))
            .collect()
    });
    index
        .get(name)
        .copied()
        .unwrap_or_else(|| panic!("no Memcached row {name}"))
}

/// The subcommands of container commands, as `COMMAND LIST` names them
/// (`client|list`); each handler checks its own arities.
pub static SUBCOMMANDS: &[(&str, &[&str])] = &[
    (
        "client",
        &[
            "id",
            "getname",
            "setname",
            "setinfo",
            "info",
            "list",
            "kill",
            "pause",
            "unpause",
            "unblock",
            "reply",
            "no-evict",
            "no-touch",
            "tracking",
            "trackinginfo",
            "caching",
            "getredir",
            "help",
        ],
    ),
    (
        "command",
        &[
            "count",
            "list",
            "info",
            "docs",
            "getkeys",
            "getkeysandflags",
            "help",
        ],
    ),
    ("config", &["get", "set", "resetstat", "rewrite", "help"]),
    (
        "cluster",
        &[
            "slots",
            "shards",
            "nodes",
            "info",
            "myid",
            "keyslot",
            "countkeysinslot",
            "getkeysinslot",
            "help",
        ],
    ),
    (
        "latency",
        &[
            "doctor",
            "graph",
            "history",
            "latest",
            "reset",
            "histogram",
            "help",
        ],
    ),
    (
        "memory",
        &["doctor", "malloc-stats", "purge", "usage", "help"],
    ),
    (
        "object",
        &["encoding", "freq", "idletime", "refcount", "help"],
    ),
    ("script", &["load", "exists", "flush", "kill", "help"]),
    ("slowlog", &["get", "len", "reset", "help"]),
    (
        "xgroup",
        &[
            "create",
            "createconsumer",
            "delconsumer",
            "destroy",
            "setid",
            "help",
        ],
    ),
    ("xinfo", &["consumers", "groups", "stream", "help"]),
    (
        "pubsub",
        &[
            "channels",
            "numpat",
            "numsub",
            "shardchannels",
            "shardnumsub",
            "help",
        ],
    ),
    (
        "acl",
        &[
            "cat", "whoami", "log", "dryrun", "getuser", "list", "users", "genpass", "help",
            "setuser", "deluser", "load", "save",
        ],
    ),
    (
        "function",
        &[
            "load", "list", "delete", "flush", "dump", "restore", "stats", "kill", "help",
        ],
    ),
];

/// Subcommands whose ACL flags differ from their container's row (Redis
/// marks them one by one: `client|kill` is admin, `client|id` is not):
/// the flags given replace the row's read, write, admin and dangerous ones.
const SUBCOMMAND_FLAGS: &[(&str, &str, u16)] = &[
    ("client", "kill", AD),
    ("client", "list", AD),
    ("client", "no-evict", AD),
    ("client", "pause", AD),
    ("client", "unblock", AD),
    ("client", "unpause", AD),
    ("config", "get", AD),
    ("config", "resetstat", AD),
    ("config", "rewrite", AD),
    ("config", "set", AD),
    ("latency", "doctor", AD),
    ("latency", "graph", AD),
    ("latency", "histogram", AD),
    ("latency", "history", AD),
    ("latency", "latest", AD),
    ("latency", "reset", AD),
    ("slowlog", "get", AD),
    ("slowlog", "len", AD),
    ("slowlog", "reset", AD),
    ("acl", "deluser", AD),
    ("acl", "dryrun", AD),
    ("acl", "getuser", AD),
    ("acl", "list", AD),
    ("acl", "load", AD),
    ("acl", "log", AD),
    ("acl", "save", AD),
    ("acl", "setuser", AD),
    ("acl", "users", AD),
    ("function", "delete", W),
    ("function", "flush", W),
    ("function", "load", W),
    ("function", "restore", W),
    ("memory", "doctor", 0),
    ("memory", "help", 0),
    ("memory", "malloc-stats", 0),
    ("memory", "purge", 0),
    ("object", "help", 0),
    ("xgroup", "help", 0),
    ("xinfo", "help", 0),
];

/// The flags of `spec`, or of its subcommand `sub`, for ACL categories.
pub fn acl_flags(spec: &CommandSpec, sub: Option<&[u8]>) -> u16 {
    let Some(sub) = sub.filter(|_| spec.has(flags::CONTAINER)) else {
        return spec.flags;
    };
    const REPLACED: u16 = flags::READ | flags::WRITE | flags::ADMIN | flags::DANGEROUS;
    SUBCOMMAND_FLAGS
        .iter()
        .find(|(c, s, _)| *c == spec.name && is(sub, s))
        .map_or(spec.flags, |(_, _, f)| (spec.flags & !REPLACED) | f)
}

/// Commands whose ACL data categories are not their family's (Redis puts
/// SORT in the categories of the types it sorts).
/// (`name|sub` for one subcommand: PUBSUB HELP is in none).
const ACL_FAMILY_CATEGORIES: &[(&str, &[&str])] = &[
    ("sort", &["list", "set", "sortedset"]),
    ("sort_ro", &["list", "set", "sortedset"]),
    ("pubsub|help", &[]),
];

/// The data categories of `spec` (and its subcommand `sub`) when they are
/// not its family's.
pub fn acl_family_categories(
    spec: &CommandSpec,
    sub: Option<&[u8]>,
) -> Option<&'static [&'static str]> {
    ACL_FAMILY_CATEGORIES
        .iter()
        .find(|(name, _)| match name.split_once('|') {
            Some((c, s)) => c == spec.name && sub.is_some_and(|x| is(x, s)),
            None => *name == spec.name,
        })
        .map(|(_, cats)| *cats)
}

/// Finds a command by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    // Every request looks its command up: hashbrown's fast hash over the
    // lowercased bytes (no UTF-8 check, no SipHash).
    static INDEX: OnceLock<hashbrown::HashMap<&'static [u8], &'static CommandSpec>> =
        OnceLock::new();
    let index = INDEX.get_or_init(|| resp_commands().map(|c| (c.name.as_bytes(), c)).collect());
    if name.len() > 32 {
        return None;
    }
    let mut buf = [0u8; 32];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    index.get(&*lower).copied()
}

#[cfg(test)]
mod tests {
    #[test]
    fn containers_and_their_subcommands_are_listed_once() {
        for spec in super::COMMANDS {
            let listed = super::SUBCOMMANDS.iter().any(|(c, _)| *c == spec.name);
            assert_eq!(
                spec.has(super::flags::CONTAINER),
                listed,
                "{}: the CONTAINER flag and SUBCOMMANDS disagree",
                spec.name
            );
        }
    }

    use super::*;

    #[test]
    fn names_are_unique_and_lowercase() {
        let mut seen = std::collections::HashSet::new();
        for c in COMMANDS {
            assert!(seen.insert(c.name), "duplicate {}", c.name);
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(c.arity != 0);
        }
    }

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn keys_of(s: &str) -> Vec<usize> {
        let args = argv(s);
        lookup(&args[0]).unwrap().key_positions(&args).collect()
    }

    #[test]
    fn key_positions_follow_first_last_step() {
        assert_eq!(keys_of("MSET a 1 b 2"), vec![1, 3]);
        assert_eq!(keys_of("del a b c"), vec![1, 2, 3]);
        assert_eq!(keys_of("PiNg"), Vec::<usize>::new());
        assert!(lookup(b"nosuch").is_none());
        assert_eq!(keys_of("bitop and d a b"), vec![2, 3, 4]);
        assert_eq!(keys_of("xgroup create s g $"), vec![2]);
        assert_eq!(keys_of("xgroup help"), Vec::<usize>::new());
    }

    #[test]
    fn key_positions_follow_numkeys_and_streams() {
        assert_eq!(keys_of("zunionstore d 2 a b WEIGHTS 1 2"), vec![1, 3, 4]);
        assert_eq!(keys_of("zinterstore d 5 a b"), vec![1]);
        assert_eq!(keys_of("lmpop 2 a LEFT"), vec![2, 3]);
        assert_eq!(keys_of("lmpop 3 a LEFT"), Vec::<usize>::new());
        assert_eq!(keys_of("blmpop 0 2 a b RIGHT COUNT 2"), vec![3, 4]);
        assert_eq!(keys_of("zinterstore d x a b"), vec![1]);
        assert_eq!(keys_of("zinterstore d -1 a b"), vec![1]);
        assert_eq!(keys_of("zinterstore d 9223372036854775807 a"), vec![1]);
        assert_eq!(keys_of("sintercard 2 a b LIMIT 5"), vec![2, 3]);
        assert_eq!(keys_of("xread COUNT 5 BLOCK 0 STREAMS a b 0 0"), vec![6, 7]);
        assert_eq!(keys_of("xread streams a 0"), vec![2]);
        assert_eq!(
            keys_of("xreadgroup GROUP streams c NOACK STREAMS a b c 0 0 0"),
            vec![6, 7, 8]
        );
        assert_eq!(keys_of("xread COUNT 5 a 0"), Vec::<usize>::new());
        assert_eq!(keys_of("xread STREAMS a b 0"), vec![2]);
    }

    /// Random, hostile arguments to every list, set, sorted-set,
    /// HyperLogLog, bitmap and stream command: replies or errors, no panic.
    #[test]
    fn collection_commands_never_panic() {
        use crate::cmd::test_util::Harness;
        use rand::{Rng, SeedableRng};
        const POOL: &[&str] = &[
            "",
            "0",
            "1",
            "2",
            "-1",
            "-2",
            "3",
            "100",
            "-100",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
            "4294967296",
            "1.5",
            "inf",
            "-inf",
            "+inf",
            "nan",
            "(",
            "(1",
            "(-inf",
            "[a",
            "(a",
            "[",
            "-",
            "+",
            "$",
            ">",
            "*",
            "0-0",
            "1-1",
            "0-1",
            "5-*",
            "18446744073709551615-18446744073709551615",
            "(18446744073709551615-18446744073709551615",
            "(0-0",
            "x",
            "COUNT",
            "LIMIT",
            "WITHSCORES",
            "WITHSCORE",
            "BYSCORE",
            "BYLEX",
            "REV",
            "STREAMS",
            "GROUP",
            "NOACK",
            "BLOCK",
            "MAXLEN",
            "MINID",
            "~",
            "=",
            "FORCE",
            "JUSTID",
            "IDLE",
            "TIME",
            "RETRYCOUNT",
            "LASTID",
            "RANK",
            "WEIGHTS",
            "AGGREGATE",
            "MIN",
            "MAX",
            "BIT",
            "BYTE",
            "AND",
            "OR",
            "XOR",
            "NOT",
            "LEFT",
            "RIGHT",
            "BEFORE",
            "AFTER",
            "NX",
            "XX",
            "GT",
            "LT",
            "CH",
            "INCR",
            "CREATE",
            "SETID",
            "DESTROY",
            "CREATECONSUMER",
            "DELCONSUMER",
            "MKSTREAM",
            "ENTRIESREAD",
            "STREAM",
            "GROUPS",
            "CONSUMERS",
            "FULL",
            "HELP",
            "MATCH",
            "g",
            "c",
            "{t}list",
            "{t}set",
            "{t}zset",
            "{t}str",
            "{t}hll",
            "{t}stream",
            "{t}none",
            "{t}hash",
            "{t}w_*",
            "{t}h_*->f",
            "#",
            "i8",
            "u63",
            "i64",
            "#3",
            "OVERFLOW",
            "SAT",
            "FAIL",
            "WRAP",
            "INCRBY",
            "GET",
            "SET",
            "BY",
            "ALPHA",
            "DESC",
            "STORE",
            "{t}dst",
            "IDX",
            "LEN",
            "MINMATCHLEN",
            "WITHMATCHLEN",
            "FROMLONLAT",
            "FROMMEMBER",
            "BYRADIUS",
            "BYBOX",
            "km",
            "m",
            "WITHCOORD",
            "WITHDIST",
            "WITHHASH",
            "ANY",
            "ASC",
            "STOREDIST",
            "13.361389",
            "38.115556",
            "-85.05112878",
            "180",
            "{t}geo",
            "REPLACE",
            "ABSTTL",
            "ENTRIESADDED",
            "MAXDELETEDID",
        ];
        let families = [
            Family::List,
            Family::Set,
            Family::SortedSet,
            Family::HyperLogLog,
            Family::Bitmap,
            Family::Stream,
        ];
        let extra = [
            "lcs", "substr", "sort", "sort_ro", "dump", "restore", "copy",
        ];
        let names: Vec<&str> = COMMANDS
            .iter()
            .filter(|c| families.contains(&c.family) || extra.contains(&c.name))
            .map(|c| c.name)
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut h = Harness::new();
        let setup: &[&[&str]] = &[
            &["rpush", "{t}list", "a", "b", "1", "2"],
            &["sadd", "{t}set", "a", "b", "1"],
            &["zadd", "{t}zset", "1", "a", "2", "b", "inf", "c"],
            &["set", "{t}str", "foobar"],
            &["pfadd", "{t}hll", "a", "b"],
            &["xadd", "{t}stream", "1-1", "f", "v"],
            &["xgroup", "CREATE", "{t}stream", "g", "0"],
            &["hset", "{t}hash", "f", "v"],
            &[
                "geoadd",
                "{t}geo",
                "13.361389",
                "38.115556",
                "a",
                "15",
                "37",
                "b",
            ],
        ];
        for round in 0..30_000 {
            if round % 1000 == 0 {
                for cmd in setup {
                    h.run(cmd);
                }
            }
            let name = names[rng.random_range(0..names.len())];
            let mut argv = vec![name];
            for _ in 0..rng.random_range(0..9) {
                argv.push(POOL[rng.random_range(0..POOL.len())]);
            }
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.run(&argv)));
            assert!(outcome.is_ok(), "panicked on {argv:?}");
        }
    }

    #[test]
    fn families_are_complete() {
        for (i, f) in Family::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
        }
        for c in COMMANDS {
            assert!(Family::ALL.contains(&c.family), "{}", c.name);
        }
    }
}
