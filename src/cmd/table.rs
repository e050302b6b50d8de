//! The command table: every command Stratus answers, declared once.
//!
//! A row gives the name, the arity (Redis convention: `n` exact, `-n` at least
//! n, command name included), flags, key positions (first, last, step; last
//! `-1` = the last argument), the family (a metric label), the work cost, and
//! how it executes. `COMMAND INFO`, arity checks, key routing, CROSSSLOT
//! checks, auth gating and metering all read this table; nothing else lists
//! commands.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::{Handler, hash, keys, string};

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
    /// All keys must be in one slot (atomic multi-key).
    pub const SAME_SLOT: u16 = 1 << 5;
    /// Not metered in ECPU (AUTH, HELLO, PING, QUIT): counted separately.
    pub const UNMETERED: u16 = 1 << 6;
    /// Administrative / connection command.
    pub const ADMIN: u16 = 1 << 7;
    /// Naturally per-key multi-key command: keys in several partitions are
    /// served by one sub-command per partition, replies merged in key order
    /// (MGET, MSET, DEL, UNLINK, EXISTS, TOUCH). Any other command whose keys
    /// span slots gets CROSSSLOT.
    pub const FANOUT: u16 = 1 << 8;

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
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::String,
        Family::Keys,
        Family::Hash,
        Family::Connection,
        Family::Server,
        Family::Cluster,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Family::String => "string",
            Family::Keys => "keys",
            Family::Hash => "hash",
            Family::Connection => "connection",
            Family::Server => "server",
            Family::Cluster => "cluster",
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
}

/// How a command executes.
#[derive(Clone, Copy)]
pub enum Exec {
    /// In the partition that owns its keys.
    Data(Handler),
    /// In the proxy.
    Conn(ConnOp),
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
    pub family: Family,
    /// Work units per key named (1 = the engine time of a simple GET).
    pub cost_per_key: u32,
    /// Milli-work units per element walked by the handler (`Ctx::work`).
    pub cost_per_element_milli: u32,
    pub exec: Exec,
}

impl CommandSpec {
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Positions of the key arguments in `argc` arguments.
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let argc = argc as i32;
        let (first, step) = (self.first_key, self.step.max(1));
        let last = if self.last_key < 0 {
            argc + self.last_key
        } else {
            self.last_key.min(argc - 1)
        };
        let last = if first > 0 { last } else { -1 };
        (first.max(0)..=last)
            .step_by(step as usize)
            .map(|i| i as usize)
    }
}

const W: u16 = flags::WRITE;
const R: u16 = flags::READ;
const F: u16 = flags::FAST;
const M: u16 = flags::DENY_OOM;
const S: u16 = flags::SAME_SLOT;
const NA: u16 = flags::NO_AUTH;
const UM: u16 = flags::UNMETERED;
const AD: u16 = flags::ADMIN;
const FO: u16 = flags::FANOUT;

/// Work per element walked, in milli-units, calibrated with
/// `loadtest/src/bin/calibrate.rs` against a GET (see the README's cost table):
/// a cheap step (a key visited by SCAN, a field hashed by HSCAN) ...
const WALK: u32 = 100;
/// ... a field or value copied into a reply (HKEYS, HVALS, HRANDFIELD) ...
const WALK_COPY: u32 = 200;
/// ... a field and its value copied into a reply (HGETALL).
const WALK_PAIR: u32 = 400;

macro_rules! row {
    ($name:literal, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $fam:ident, $elem:expr, $exec:expr) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            family: Family::$fam,
            cost_per_key: 1,
            cost_per_element_milli: $elem,
            exec: $exec,
        }
    };
}

use ConnOp as C;
use Exec::{Conn, Data};

/// Every command, one row each.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    // connection and server
    row!("auth",        -2, NA | UM | F,     0, 0, 0, Connection, 0, Conn(C::Auth)),
    row!("hello",       -1, NA | UM | F,     0, 0, 0, Connection, 0, Conn(C::Hello)),
    row!("ping",        -1, NA | UM | F,     0, 0, 0, Connection, 0, Conn(C::Ping)),
    row!("quit",        -1, NA | UM | F,     0, 0, 0, Connection, 0, Conn(C::Quit)),
    row!("echo",         2, F,               0, 0, 0, Connection, 0, Conn(C::Echo)),
    row!("reset",        1, NA | F,          0, 0, 0, Connection, 0, Conn(C::Reset)),
    row!("select",       2, F,               0, 0, 0, Connection, 0, Conn(C::Select)),
    row!("client",      -2, AD,              0, 0, 0, Connection, 0, Conn(C::Client)),
    row!("command",     -1, 0,               0, 0, 0, Server,     0, Conn(C::Command)),
    row!("info",        -1, 0,               0, 0, 0, Server,     0, Conn(C::Info)),
    row!("dbsize",       1, R | F,           0, 0, 0, Server,     0, Conn(C::Dbsize)),
    row!("flushdb",     -1, W,               0, 0, 0, Server,     0, Conn(C::Flushdb)),
    row!("flushall",    -1, W,               0, 0, 0, Server,     0, Conn(C::Flushdb)),
    row!("time",         1, F,               0, 0, 0, Server,     0, Conn(C::Time)),
    row!("scan",        -2, R,               0, 0, 0, Keys,    WALK, Conn(C::Scan)),
    row!("keys",         2, R,               0, 0, 0, Keys,    WALK, Conn(C::Keys)),
    row!("readonly",     1, F,               0, 0, 0, Cluster,    0, Conn(C::Readonly)),
    row!("readwrite",    1, F,               0, 0, 0, Cluster,    0, Conn(C::Readwrite)),
    row!("cluster",     -2, 0,               0, 0, 0, Cluster,    0, Conn(C::Cluster)),
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
    row!("msetnx",      -3, W | M | S,       1,-1, 2, String, 0, Data(string::msetnx)),
    row!("incr",         2, W | M | F,       1, 1, 1, String, 0, Data(string::incr)),
    row!("decr",         2, W | M | F,       1, 1, 1, String, 0, Data(string::decr)),
    row!("incrby",       3, W | M | F,       1, 1, 1, String, 0, Data(string::incrby)),
    row!("decrby",       3, W | M | F,       1, 1, 1, String, 0, Data(string::decrby)),
    row!("incrbyfloat",  3, W | M | F,       1, 1, 1, String, 0, Data(string::incrbyfloat)),
    row!("append",       3, W | M | F,       1, 1, 1, String, 0, Data(string::append)),
    row!("strlen",       2, R | F,           1, 1, 1, String, 0, Data(string::strlen)),
    row!("getrange",     4, R,               1, 1, 1, String, 0, Data(string::getrange)),
    row!("setrange",     4, W | M,           1, 1, 1, String, 0, Data(string::setrange)),
    // keys
    row!("del",         -2, W | FO,               1,-1, 1, Keys, 0, Data(keys::del)),
    row!("unlink",      -2, W | F | FO,           1,-1, 1, Keys, 0, Data(keys::del)),
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
    row!("rename",       3, W | S,           1, 2, 1, Keys, 0, Data(keys::rename)),
    row!("renamenx",     3, W | S | F,       1, 2, 1, Keys, 0, Data(keys::rename)),
    row!("copy",        -3, W | M | S,       1, 2, 1, Keys, WALK, Data(keys::copy)),
    // hashes
    row!("hset",        -4, W | M | F,       1, 1, 1, Hash, 0, Data(hash::hset)),
    row!("hmset",       -4, W | M | F,       1, 1, 1, Hash, 0, Data(hash::hset)),
    row!("hsetnx",       4, W | M | F,       1, 1, 1, Hash, 0, Data(hash::hsetnx)),
    row!("hget",         3, R | F,           1, 1, 1, Hash, 0, Data(hash::hget)),
    row!("hmget",       -3, R | F,           1, 1, 1, Hash, 0, Data(hash::hmget)),
    row!("hgetall",      2, R,               1, 1, 1, Hash, WALK_PAIR, Data(hash::hgetall)),
    row!("hkeys",        2, R,               1, 1, 1, Hash, WALK_COPY, Data(hash::hgetall)),
    row!("hvals",        2, R,               1, 1, 1, Hash, WALK_COPY, Data(hash::hgetall)),
    row!("hdel",        -3, W | F,           1, 1, 1, Hash, 0, Data(hash::hdel)),
    row!("hexists",      3, R | F,           1, 1, 1, Hash, 0, Data(hash::hexists)),
    row!("hlen",         2, R | F,           1, 1, 1, Hash, 0, Data(hash::hlen)),
    row!("hstrlen",      3, R | F,           1, 1, 1, Hash, 0, Data(hash::hstrlen)),
    row!("hincrby",      4, W | M | F,       1, 1, 1, Hash, 0, Data(hash::hincrby)),
    row!("hincrbyfloat", 4, W | M | F,       1, 1, 1, Hash, 0, Data(hash::hincrbyfloat)),
    row!("hscan",       -3, R,               1, 1, 1, Hash, WALK, Data(hash::hscan)),
    row!("hrandfield",  -2, R,               1, 1, 1, Hash, WALK_COPY, Data(hash::hrandfield)),
];

/// Finds a command by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    static INDEX: OnceLock<HashMap<&'static str, &'static CommandSpec>> = OnceLock::new();
    let index = INDEX.get_or_init(|| COMMANDS.iter().map(|c| (c.name, c)).collect());
    if name.len() > 32 {
        return None;
    }
    let mut buf = [0u8; 32];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    index.get(std::str::from_utf8(lower).ok()?).copied()
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn key_positions_follow_first_last_step() {
        let mset = lookup(b"MSET").unwrap();
        assert_eq!(mset.key_positions(5).collect::<Vec<_>>(), vec![1, 3]);
        let del = lookup(b"del").unwrap();
        assert_eq!(del.key_positions(4).collect::<Vec<_>>(), vec![1, 2, 3]);
        let ping = lookup(b"PiNg").unwrap();
        assert_eq!(ping.key_positions(1).count(), 0);
        assert!(lookup(b"nosuch").is_none());
    }
}
