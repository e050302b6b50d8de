//! Keyspace notifications, as recorded inside a partition.
//!
//! Handlers record what they did (`Ctx::notify`, Redis's
//! `notifyKeyspaceEvent`), and the keyspace itself records lazy and active
//! expiries and evictions. Recording is one flag check when the cache's
//! `notify-keyspace-events` leaves the class off; events wait in
//! [`Notifications`] until the pool publishes them on the cache's hub after
//! the command, outside the partition lock.
//!
//! The classes are Redis's `notify-keyspace-events` letters, with its bits.

use bytes::Bytes;

/// `K`: `__keyspace@0__:<key>` channels.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: `__keyevent@0__:<event>` channels.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME, ...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted-set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: expired keys.
pub const EXPIRED: u32 = 1 << 8;
/// `e`: evicted keys.
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub const STREAM: u32 = 1 << 10;
/// `m`: key misses (not part of `A`).
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module events (none here; accepted for compatibility).
pub const MODULE: u32 = 1 << 13;
/// `n`: new keys (not part of `A`).
pub const NEW: u32 = 1 << 14;
/// Not a Redis letter: expiries and evictions are recorded for client-side
/// caching's invalidations while some client tracks keys.
pub const TRACKING: u32 = 1 << 20;
/// Not a Redis letter: the commands a script of the batch calls, for the
/// proxy's command statistics (only ever in the batch's reply).
pub const CALLS: u32 = 1 << 21;
/// Not a Redis letter: the commands a script of the batch calls, for the
/// proxy's MONITOR clients (only ever in the batch's reply).
pub const MONITOR: u32 = 1 << 22;
/// `A`: alias for `g$lshzxetd`.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The letters in Redis's order for [`format_flags`].
const LETTERS: [(u32, u8); 11] = [
    (GENERIC, b'g'),
    (STRING, b'$'),
    (LIST, b'l'),
    (SET, b's'),
    (HASH, b'h'),
    (ZSET, b'z'),
    (EXPIRED, b'x'),
    (EVICTED, b'e'),
    (STREAM, b't'),
    (MODULE, b'd'),
    (NEW, b'n'),
];

/// Parses `notify-keyspace-events` letters (Redis's
/// `keyspaceEventsStringToFlags`); `None` on an unknown letter.
pub fn parse_flags(letters: &[u8]) -> Option<u32> {
    let mut flags = 0;
    for c in letters {
        flags |= match c {
            b'A' => ALL,
            b'K' => KEYSPACE,
            b'E' => KEYEVENT,
            b'm' => KEY_MISS,
            other => LETTERS.iter().find(|(_, l)| l == other)?.0,
        };
    }
    Some(flags)
}

/// The letters of `flags`, as `CONFIG GET` shows them (Redis's
/// `keyspaceEventsFlagsToString`).
pub fn format_flags(flags: u32) -> String {
    let mut out = String::new();
    if flags & ALL == ALL {
        out.push('A');
    } else {
        for (f, l) in LETTERS {
            if flags & f != 0 {
                out.push(l as char);
            }
        }
    }
    for (f, l) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & f != 0 {
            out.push(l);
        }
    }
    out
}

/// One event: the class it belongs to, Redis's event name, the key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyEvent {
    pub class: u32,
    pub event: std::borrow::Cow<'static, str>,
    pub key: Bytes,
}

/// A partition's pending events and the flags in force for this command.
#[derive(Debug, Default)]
pub struct Notifications {
    /// The cache's `notify-keyspace-events` (0 = off: nothing recorded).
    pub flags: u32,
    pending: Vec<KeyEvent>,
}

impl Notifications {
    /// Records an event if its class is on (and K or E is).
    #[inline]
    pub fn record(&mut self, class: u32, event: &'static str, key: &[u8]) {
        let published = self.flags & class != 0 && self.flags & (KEYSPACE | KEYEVENT) != 0;
        let tracked = self.flags & TRACKING != 0 && class & (EXPIRED | EVICTED) != 0;
        if published || tracked {
            self.pending.push(KeyEvent {
                class,
                event: std::borrow::Cow::Borrowed(event),
                key: Bytes::copy_from_slice(key),
            });
        }
    }

    /// Takes the events recorded so far.
    pub fn take(&mut self) -> Vec<KeyEvent> {
        std::mem::take(&mut self.pending)
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_as_redis_prints_them() {
        assert_eq!(
            parse_flags(b"KEA").map(format_flags).as_deref(),
            Some("AKE")
        );
        assert_eq!(parse_flags(b"Ex").map(format_flags).as_deref(), Some("xE"));
        assert_eq!(
            parse_flags(b"g$lshzxetdnKEm").map(format_flags).as_deref(),
            Some("AKEm")
        );
        assert_eq!(parse_flags(b"").map(format_flags).as_deref(), Some(""));
        assert_eq!(parse_flags(b"Kq"), None);
    }

    #[test]
    fn nothing_is_recorded_when_off() {
        let mut n = Notifications::default();
        n.record(STRING, "set", b"k");
        assert!(n.is_empty());
        n.flags = STRING;
        n.record(STRING, "set", b"k");
        assert!(n.is_empty(), "neither K nor E");
        n.flags = STRING | KEYEVENT;
        n.record(STRING, "set", b"k");
        n.record(LIST, "lpush", b"k");
        assert_eq!(n.take().len(), 1);
    }
}
