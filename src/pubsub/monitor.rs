//! MONITOR for one cache: the clients that watch every command the cache's
//! other clients run, and the lines they get.
//!
//! A monitor sees only its own cache's commands (the list belongs to the
//! cache), in Redis's format: `+<unix s>.<us> [0 <ip:port>] "arg" ...`,
//! `[0 lua]` for the commands a script or function calls, arguments
//! escaped as Redis's `sdscatrepr`; secrets (AUTH, HELLO ... AUTH) are
//! replaced by `(redacted)` by the caller before they get here.
//!
//! Lines go to the monitor's [`Mailbox`], so its Pub/Sub output-buffer
//! limits bound what a slow monitor holds (past them it is disconnected)
//! and the command that caused a line never waits for the monitor. The
//! bytes delivered are returned to the caller, which meters them. Nothing
//! here costs anything while the cache has no monitor (one atomic load).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;

use super::Mailbox;

/// A cache's monitors.
#[derive(Default)]
pub struct Monitors {
    count: AtomicUsize,
    list: Mutex<Vec<Weak<Mailbox>>>,
}

impl Monitors {
    /// Whether any client of the cache monitors.
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Adds a monitor; false if it monitors already.
    pub fn add(&self, mailbox: &Arc<Mailbox>) -> bool {
        let mut list = self.list.lock();
        if list
            .iter()
            .any(|w| w.upgrade().is_some_and(|m| m.id == mailbox.id))
        {
            return false;
        }
        list.push(Arc::downgrade(mailbox));
        self.count.store(list.len(), Ordering::Relaxed);
        true
    }

    /// Client `id` stops monitoring (RESET, or its connection ends).
    pub fn remove(&self, id: u64) {
        let mut list = self.list.lock();
        list.retain(|w| w.upgrade().is_some_and(|m| m.id != id));
        self.count.store(list.len(), Ordering::Relaxed);
    }

    /// Sends every monitor the line for `argv` run by `who` (`ip:port`,
    /// or `lua`); returns the bytes delivered.
    pub fn feed(&self, who: &str, argv: &[Bytes]) -> u64 {
        if !self.active() {
            return 0;
        }
        let line = line(who, argv);
        let list = self.list.lock();
        let mut delivered = 0;
        for m in list.iter().filter_map(Weak::upgrade) {
            if m.deliver(&line) {
                delivered += line.len() as u64;
            }
        }
        delivered
    }
}

/// `+<s>.<us> [0 <who>] "arg" "arg"\r\n`
pub fn line(who: &str, argv: &[Bytes]) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = format!("+{}.{:06} [0 {who}] ", now.as_secs(), now.subsec_micros()).into_bytes();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        repr(&mut out, a);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Redis's `sdscatrepr`: a quoted string with `\\ \" \n \r \t \a \b`
/// escaped, other unprintable bytes as `\xhh`.
fn repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_quote_as_redis() {
        let mut out = Vec::new();
        repr(&mut out, b"a \"b\"\\\n\x01\xff");
        assert_eq!(out, b"\"a \\\"b\\\"\\\\\\n\\x01\\xff\"");
        let l = line("lua", &[Bytes::from("set"), Bytes::from("k")]);
        let s = String::from_utf8(l).unwrap();
        assert!(
            s.starts_with('+') && s.ends_with(" [0 lua] \"set\" \"k\"\r\n"),
            "{s}"
        );
    }

    #[test]
    fn a_monitor_gets_lines_until_removed() {
        let limits = super::super::OutputLimits {
            hard: 1000,
            soft: 1000,
            soft_time: std::time::Duration::from_secs(60),
        };
        let monitors = Monitors::default();
        let m = Mailbox::new(7, false, limits);
        assert!(monitors.add(&m));
        assert!(!monitors.add(&m));
        assert!(monitors.feed("1.2.3.4:5", &[Bytes::from("get")]) > 0);
        monitors.remove(7);
        assert!(!monitors.active());
        assert_eq!(monitors.feed("x", &[Bytes::from("get")]), 0);
    }
}
