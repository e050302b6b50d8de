//! `ACL LOG`: a cache's recent denials and failed logins, as Redis keeps
//! them (at most [`MAX_ENTRIES`]; a repeat within [`GROUP_WINDOW_MS`] of
//! the same reason, context, object and user counts on the same entry).

use std::collections::VecDeque;

use parking_lot::Mutex;

/// Entries kept per cache (Redis's `acllog-max-len` default).
pub const MAX_ENTRIES: usize = 128;
/// A denial like one logged this recently adds to that entry.
const GROUP_WINDOW_MS: u64 = 60_000;

/// Why an entry was logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Command,
    Key,
    Channel,
    Auth,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Command => "command",
            Reason::Key => "key",
            Reason::Channel => "channel",
            Reason::Auth => "auth",
        }
    }
}

/// One entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub count: u64,
    pub reason: Reason,
    /// `toplevel`, `multi` or `lua`.
    pub context: &'static str,
    pub object: String,
    pub username: String,
    pub client_info: String,
    pub entry_id: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// A cache's log.
#[derive(Default)]
pub struct AclLog {
    inner: Mutex<(VecDeque<Entry>, u64)>,
}

impl AclLog {
    /// Records a denial or failed login at `now_ms`.
    pub fn record(&self, mut entry: Entry, now_ms: u64) {
        let mut guard = self.inner.lock();
        let (entries, next_id) = &mut *guard;
        if let Some(e) = entries.iter_mut().find(|e| {
            e.reason == entry.reason
                && e.context == entry.context
                && e.object == entry.object
                && e.username == entry.username
                && now_ms.saturating_sub(e.updated_ms) < GROUP_WINDOW_MS
        }) {
            e.count += 1;
            e.updated_ms = now_ms;
            e.client_info = entry.client_info;
            return;
        }
        entry.count = 1;
        entry.entry_id = *next_id;
        entry.created_ms = now_ms;
        entry.updated_ms = now_ms;
        *next_id += 1;
        entries.push_front(entry);
        entries.truncate(MAX_ENTRIES);
    }

    /// The newest `count` entries, newest first.
    pub fn entries(&self, count: usize) -> Vec<Entry> {
        self.inner.lock().0.iter().take(count).cloned().collect()
    }

    pub fn reset(&self) {
        self.inner.lock().0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(object: &str) -> Entry {
        Entry {
            count: 0,
            reason: Reason::Command,
            context: "toplevel",
            object: object.into(),
            username: "u".into(),
            client_info: String::new(),
            entry_id: 0,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn repeats_group_and_the_log_is_bounded() {
        let log = AclLog::default();
        log.record(entry("get"), 1000);
        log.record(entry("get"), 2000);
        let e = log.entries(10);
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].count, e[0].created_ms, e[0].updated_ms),
            (2, 1000, 2000)
        );
        log.record(entry("get"), 2000 + GROUP_WINDOW_MS);
        assert_eq!(log.entries(10).len(), 2);
        for i in 0..500 {
            log.record(entry(&format!("c{i}")), 3000);
        }
        let e = log.entries(1000);
        assert_eq!(e.len(), MAX_ENTRIES);
        assert_eq!(e[0].object, "c499");
        log.reset();
        assert!(log.entries(10).is_empty());
    }
}
