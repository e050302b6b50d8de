//! What a cache's introspection commands read and change: its Redis
//! configuration values, command and error statistics (`INFO
//! commandstats|errorstats`, `CONFIG RESETSTAT`), slow log, latency events,
//! its connected clients (`CLIENT LIST|KILL|UNBLOCK|PAUSE`).
//!
//! Everything here belongs to one cache: no command can see or touch
//! another cache's clients, statistics or logs. Bounded: the slow log by
//! `slowlog-max-len` (at most [`SLOWLOG_HARD_MAX`] entries of at most 32
//! arguments of 128 bytes: about 5 MB at worst, 0.6 MB at Redis's default
//! 128), error codes by [`MAX_ERROR_CODES`] of 64 characters, latency
//! events by their fixed names, clients by the cache's connection limit.
//!
//! Hot path: a command's statistics are atomic adds in a per-command array;
//! the slow log, latency and error tables lock only for slow or failed
//! commands.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::attention::Attention;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::cmd::params::CacheConfig;
use crate::cmd::{COMMANDS, CommandSpec};
use crate::partition::KeyspaceStats;

/// Most slow-log entries a cache keeps, whatever `slowlog-max-len` says.
pub const SLOWLOG_HARD_MAX: usize = 1024;
/// Most arguments a slow-log entry keeps (Redis: 32, the last one counting
/// the rest).
const SLOWLOG_MAX_ARGC: usize = 32;
/// Longest argument a slow-log entry keeps, bytes (Redis: 128).
const SLOWLOG_MAX_ARGLEN: usize = 128;
/// Most distinct error codes counted (Redis: 128, then it stops tracking).
pub const MAX_ERROR_CODES: usize = 128;
/// Most subcommands with statistics of their own, and their longest name.
const MAX_SUBCOMMAND_STATS: usize = 256;
const MAX_SUBCOMMAND_LEN: usize = 32;
/// Longest error code counted, characters (longer ones are cut).
const MAX_ERROR_CODE_LEN: usize = 64;
/// Samples kept per latency event (Redis: 160).
const LATENCY_SAMPLES: usize = 160;

/// Unix time in seconds.
fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Power-of-two latency buckets per command: bucket `i` counts calls of at
/// most 2^i µs (the last one everything slower).
pub const HISTOGRAM_BUCKETS: usize = 28;

/// Calls, time and failures of one command.
#[derive(Default)]
pub struct CommandStat {
    pub calls: AtomicU64,
    pub usec: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    /// Calls by latency (LATENCY HISTOGRAM).
    pub histogram: [AtomicU64; HISTOGRAM_BUCKETS],
}

impl CommandStat {
    /// (bucket's upper bound in µs, calls up to it) where the count grows,
    /// as Redis's LATENCY HISTOGRAM lists them.
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut total = 0;
        for (i, b) in self.histogram.iter().enumerate() {
            let n = b.load(Ordering::Relaxed);
            if n > 0 {
                total += n;
                out.push((1u64 << i, total));
            }
        }
        out
    }

    fn histogram_calls(&self) -> u64 {
        self.histogram
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }
}

/// A command's latency histogram: (name, calls, cumulative buckets).
pub type Histogram = (String, u64, Vec<(u64, u64)>);

/// The latency bucket of a call that took `micros`.
fn bucket(micros: u64) -> usize {
    let b = (64 - micros.saturating_sub(1).leading_zeros()) as usize;
    b.min(HISTOGRAM_BUCKETS - 1)
}

/// One slow-log entry.
#[derive(Clone)]
pub struct SlowEntry {
    pub id: u64,
    pub time: u64,
    pub micros: u64,
    pub args: Vec<Bytes>,
    pub peer: String,
    pub name: String,
}

/// One latency event's samples: (unix time, milliseconds).
#[derive(Default, Clone)]
pub struct LatencyEvent {
    pub samples: VecDeque<(u64, u64)>,
    pub max: u64,
}

/// What other connections may see of a client and do to it.
pub struct ClientHandle {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub created: Instant,
    /// Ends the connection (CLIENT KILL), and tells it of its user's
    /// disconnection and of shutdown.
    pub attention: Arc<Attention>,
    /// Wakes the client's blocked command (CLIENT UNBLOCK); `unblock_error`
    /// says whether it answers with an error rather than a timeout.
    pub unblock: Notify,
    pub unblock_error: AtomicBool,
    /// Whether a blocking command of this client waits now.
    pub blocked: AtomicBool,
    pub view: Mutex<ClientView>,
}

/// A client's mutable state as `CLIENT LIST` shows it.
#[derive(Clone)]
pub struct ClientView {
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    pub last_active: Instant,
    pub last_cmd: String,
    pub resp: u8,
    pub multi: i64,
    pub no_evict: bool,
    pub no_touch: bool,
    pub out_bytes: u64,
    /// Bytes of the request being run (while it runs).
    pub qbuf: u64,
    /// The read buffer's capacity (0 while the connection is idle).
    pub read_buffer: u64,
}

impl ClientHandle {
    pub fn new(id: u64, peer: SocketAddr, local: SocketAddr, created: Instant) -> ClientHandle {
        ClientHandle {
            id,
            peer,
            local,
            created,
            attention: Arc::default(),
            unblock: Notify::new(),
            unblock_error: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            view: Mutex::new(ClientView {
                name: None,
                lib_name: None,
                lib_ver: None,
                last_active: created,
                last_cmd: "NULL".into(),
                resp: 2,
                multi: -1,
                no_evict: false,
                no_touch: false,
                out_bytes: 0,
                qbuf: 0,
                read_buffer: 0,
            }),
        }
    }

    /// One `CLIENT LIST` / `CLIENT INFO` line (Redis 7.0's fields).
    pub fn line(&self, user: &str) -> String {
        let v = self.view.lock().clone();
        let text = |b: &Option<Bytes>| {
            b.as_ref()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let mut flags = String::new();
        if self.blocked.load(Ordering::Relaxed) {
            flags.push('b');
        }
        if v.no_evict {
            flags.push('e');
        }
        if v.no_touch {
            flags.push('T');
        }
        if v.multi >= 0 {
            flags.push('x');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd=8 name={} age={} idle={} flags={flags} db=0 sub=0 psub=0 ssub=0 multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs={} rbp=0 obl=0 oll=0 omem={} tot-mem=0 events=r cmd={} user={user} redir=-1 resp={} lib-name={} lib-ver={}\n",
            self.id,
            self.peer,
            self.local,
            text(&v.name),
            self.created.elapsed().as_secs(),
            v.last_active.elapsed().as_secs(),
            v.multi,
            v.qbuf,
            v.read_buffer.saturating_sub(v.qbuf),
            v.read_buffer,
            v.out_bytes,
            v.last_cmd,
            v.resp,
            text(&v.lib_name),
            text(&v.lib_ver),
        )
    }
}

/// A `CLIENT PAUSE` in force.
#[derive(Clone, Copy)]
pub struct Pause {
    pub until: tokio::time::Instant,
    /// `ALL` (every command) rather than `WRITE`.
    pub all: bool,
}

/// One cache's introspection state.
pub struct ServerState {
    pub config: CacheConfig,
    /// Per command, by its index in [`COMMANDS`].
    stats: Vec<CommandStat>,
    /// Per subcommand of a container command (`config|get`).
    sub_stats: Mutex<HashMap<String, CommandStat>>,
    errors: Mutex<HashMap<String, u64>>,
    /// Errors replied in all (INFO's `total_error_replies`).
    pub error_replies: AtomicU64,
    slowlog: Mutex<VecDeque<SlowEntry>>,
    slowlog_next: AtomicU64,
    latency: Mutex<HashMap<&'static str, LatencyEvent>>,
    /// The partitions' keyspace counters at the last CONFIG RESETSTAT
    /// (INFO shows what came since; the metrics keep counting).
    keyspace_base: Mutex<KeyspaceStats>,
    clients: Mutex<HashMap<u64, Arc<ClientHandle>>>,
    pause: Mutex<Option<Pause>>,
    /// Whether `pause` may hold a pause (read without its lock by every
    /// command).
    pausing: AtomicBool,
    /// Wakes paused clients when a pause ends early (CLIENT UNPAUSE).
    pub unpaused: Notify,
}

impl Default for ServerState {
    fn default() -> Self {
        ServerState {
            config: CacheConfig::default(),
            stats: COMMANDS.iter().map(|_| CommandStat::default()).collect(),
            sub_stats: Mutex::new(HashMap::new()),
            errors: Mutex::new(HashMap::new()),
            error_replies: AtomicU64::new(0),
            slowlog: Mutex::new(VecDeque::new()),
            slowlog_next: AtomicU64::new(0),
            latency: Mutex::new(HashMap::new()),
            keyspace_base: Mutex::new(KeyspaceStats::default()),
            clients: Mutex::new(HashMap::new()),
            pause: Mutex::new(None),
            pausing: AtomicBool::new(false),
            unpaused: Notify::new(),
        }
    }
}

/// The index of a table row.
fn index_of(spec: &CommandSpec) -> Option<usize> {
    let base = COMMANDS.as_ptr() as usize;
    let at = spec as *const CommandSpec as usize;
    let i = at.checked_sub(base)? / std::mem::size_of::<CommandSpec>();
    (i < COMMANDS.len()).then_some(i)
}

impl ServerState {
    /// Records a command that ran: its time, and whether it answered an
    /// error. A container command's subcommand (`client|list`) is counted
    /// under its own name, as Redis 7 does.
    pub fn record_call(&self, spec: &CommandSpec, sub: Option<&str>, micros: u64, failed: bool) {
        self.record_calls(spec, sub, 1, u64::from(failed), micros);
    }

    /// Records `calls` calls (`failed` of them failed) that took `micros`
    /// in all, each in the latency range of their mean (calls summed by
    /// range: a script's on a node).
    pub fn record_calls(
        &self,
        spec: &CommandSpec,
        sub: Option<&str>,
        calls: u64,
        failed: u64,
        micros: u64,
    ) {
        let mean = micros / calls.max(1);
        let add = |s: &CommandStat| {
            s.calls.fetch_add(calls, Ordering::Relaxed);
            s.usec.fetch_add(micros, Ordering::Relaxed);
            s.histogram[bucket(mean)].fetch_add(calls, Ordering::Relaxed);
            if failed > 0 {
                s.failed.fetch_add(failed, Ordering::Relaxed);
            }
        };
        if let Some(sub) = sub
            && self.with_sub_stat(spec, sub, add)
        {
            return;
        }
        if let Some(s) = index_of(spec).and_then(|i| self.stats.get(i)) {
            add(s);
        }
    }

    /// Records a call that ran inside another: a command of an EXEC or one
    /// a script called (Redis counts both).
    pub fn record_inner_call(
        &self,
        spec: &CommandSpec,
        args: &[Bytes],
        micros: u64,
        reply: &crate::resp::Reply,
    ) {
        let sub = crate::cmd::stat_sub(spec, args, reply);
        self.record_call(spec, sub.as_deref(), micros, reply.is_error());
    }

    /// The keyspace counters `now` as INFO shows them: since the last reset.
    pub fn keyspace_since_reset(&self, now: KeyspaceStats) -> KeyspaceStats {
        now.since(*self.keyspace_base.lock())
    }

    /// CONFIG RESETSTAT of the keyspace counters, which are `now`.
    pub fn reset_keyspace(&self, now: KeyspaceStats) {
        *self.keyspace_base.lock() = now;
    }

    /// Records a command refused before it ran.
    pub fn record_rejected(&self, spec: &CommandSpec, sub: Option<&str>) {
        let add = |s: &CommandStat| {
            s.rejected.fetch_add(1, Ordering::Relaxed);
        };
        if let Some(sub) = sub
            && self.with_sub_stat(spec, sub, add)
        {
            return;
        }
        if let Some(s) = index_of(spec).and_then(|i| self.stats.get(i)) {
            add(s);
        }
    }

    /// Runs `f` on the statistics of `spec|sub`; false (nothing done) if
    /// the subcommand name is not one (too long, odd characters) or the
    /// table is full.
    fn with_sub_stat(&self, spec: &CommandSpec, sub: &str, f: impl FnOnce(&CommandStat)) -> bool {
        let plausible = !sub.is_empty()
            && sub.len() <= MAX_SUBCOMMAND_LEN
            && sub
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !plausible {
            return false;
        }
        let name = format!("{}|{sub}", spec.name);
        let mut subs = self.sub_stats.lock();
        if let Some(s) = subs.get(&name) {
            f(s);
            return true;
        }
        if subs.len() >= MAX_SUBCOMMAND_STATS {
            return false;
        }
        let s = subs.entry(name).or_default();
        f(s);
        true
    }

    /// Counts an error reply by its code (the first word: `ERR`, `WRONGTYPE`).
    pub fn record_error(&self, message: &str) {
        self.error_replies.fetch_add(1, Ordering::Relaxed);
        let code = message.split(' ').next().unwrap_or("ERR");
        // A script can make up codes: keep them short.
        let code = match code.char_indices().nth(MAX_ERROR_CODE_LEN) {
            Some((at, _)) => &code[..at],
            None => code,
        };
        let mut errors = self.errors.lock();
        if let Some(n) = errors.get_mut(code) {
            *n += 1;
        } else if errors.len() < MAX_ERROR_CODES {
            errors.insert(code.to_string(), 1);
        }
    }

    /// Commands and subcommands that ran at least once or were refused:
    /// (name, [calls, usec, rejected, failed]).
    pub fn command_stats(&self) -> Vec<(String, [u64; 4])> {
        let load = |s: &CommandStat| {
            [
                s.calls.load(Ordering::Relaxed),
                s.usec.load(Ordering::Relaxed),
                s.rejected.load(Ordering::Relaxed),
                s.failed.load(Ordering::Relaxed),
            ]
        };
        let mut out: Vec<(String, [u64; 4])> = COMMANDS
            .iter()
            .zip(&self.stats)
            .map(|(c, s)| (c.name.to_string(), load(s)))
            .collect();
        let mut subs: Vec<_> = self
            .sub_stats
            .lock()
            .iter()
            .map(|(n, s)| (n.clone(), load(s)))
            .collect();
        subs.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(subs);
        out.retain(|(_, v)| v[0] + v[2] + v[3] > 0);
        out
    }

    /// LATENCY HISTOGRAM [name...]: (name, calls, cumulative buckets) of
    /// commands with calls; a container command named stands for its
    /// subcommands, a `parent|sub` name for that subcommand; unknown names
    /// are skipped.
    pub fn latency_histograms(&self, names: &[String]) -> Vec<Histogram> {
        let subs = self.sub_stats.lock();
        let mut out = Vec::new();
        let mut push = |name: &str, s: &CommandStat| {
            let calls = s.histogram_calls();
            if calls > 0 && !out.iter().any(|(n, _, _): &Histogram| n == name) {
                out.push((name.to_string(), calls, s.cumulative()));
            }
        };
        let mut sub_names: Vec<&String> = subs.keys().collect();
        sub_names.sort();
        let all = names.is_empty();
        for (c, s) in COMMANDS.iter().zip(&self.stats) {
            let prefix = format!("{}|", c.name);
            let named = all || names.iter().any(|n| n.eq_ignore_ascii_case(c.name));
            if named {
                push(c.name, s);
                for n in sub_names.iter().filter(|n| n.starts_with(&prefix)) {
                    push(n, &subs[*n]);
                }
            }
        }
        if !all {
            for n in names {
                let n = n.to_ascii_lowercase();
                if let Some(s) = subs.get(&n) {
                    push(&n, s);
                }
            }
        }
        out
    }

    pub fn error_stats(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self
            .errors
            .lock()
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        v.sort();
        v
    }

    /// CONFIG RESETSTAT: command, error and latency statistics.
    pub fn reset_stats(&self) {
        for s in &self.stats {
            s.calls.store(0, Ordering::Relaxed);
            s.usec.store(0, Ordering::Relaxed);
            s.rejected.store(0, Ordering::Relaxed);
            s.failed.store(0, Ordering::Relaxed);
            for b in &s.histogram {
                b.store(0, Ordering::Relaxed);
            }
        }
        self.sub_stats.lock().clear();
        self.errors.lock().clear();
        self.error_replies.store(0, Ordering::Relaxed);
    }

    /// Logs a command that took `micros` if the cache's threshold says so,
    /// and records a latency event above `latency-monitor-threshold`.
    pub fn maybe_log_slow(&self, args: &[Bytes], micros: u64, peer: &SocketAddr, name: &[u8]) {
        let threshold = self.config.slowlog_slower_than();
        if threshold >= 0 && micros >= threshold as u64 {
            let max = self.config.slowlog_max_len().min(SLOWLOG_HARD_MAX);
            let mut kept: Vec<Bytes> = Vec::with_capacity(args.len().min(SLOWLOG_MAX_ARGC));
            for (i, a) in args.iter().enumerate() {
                if i == SLOWLOG_MAX_ARGC - 1 && args.len() > SLOWLOG_MAX_ARGC {
                    kept.push(Bytes::from(format!(
                        "... ({} more arguments)",
                        args.len() - SLOWLOG_MAX_ARGC + 1
                    )));
                    break;
                }
                if a.len() > SLOWLOG_MAX_ARGLEN {
                    let mut s = a[..SLOWLOG_MAX_ARGLEN].to_vec();
                    s.extend_from_slice(
                        format!("... ({} more bytes)", a.len() - SLOWLOG_MAX_ARGLEN).as_bytes(),
                    );
                    kept.push(Bytes::from(s));
                } else {
                    // A copy: the argument is a slice of the connection's
                    // read buffer, which a clone would keep whole (a slow
                    // 500 MB SET's key kept its 500 MB buffer alive).
                    kept.push(Bytes::copy_from_slice(a));
                }
            }
            let entry = SlowEntry {
                id: self.slowlog_next.fetch_add(1, Ordering::Relaxed),
                time: unix_secs(),
                micros,
                args: kept,
                peer: peer.to_string(),
                name: String::from_utf8_lossy(name).into_owned(),
            };
            let mut log = self.slowlog.lock();
            log.push_front(entry);
            log.truncate(max);
        }
        let ms = micros / 1000;
        let latency = self.config.latency_threshold();
        if latency > 0 && ms >= latency as u64 {
            self.add_latency("command", ms);
        }
    }

    fn add_latency(&self, event: &'static str, ms: u64) {
        let now = unix_secs();
        let mut events = self.latency.lock();
        let e = events.entry(event).or_default();
        e.max = e.max.max(ms);
        match e.samples.back_mut() {
            Some(last) if last.0 == now => last.1 = last.1.max(ms),
            _ => e.samples.push_back((now, ms)),
        }
        if e.samples.len() > LATENCY_SAMPLES {
            e.samples.pop_front();
        }
    }

    /// The newest `count` slow-log entries.
    pub fn slowlog(&self, count: usize) -> Vec<SlowEntry> {
        self.slowlog.lock().iter().take(count).cloned().collect()
    }

    pub fn slowlog_len(&self) -> usize {
        self.slowlog.lock().len()
    }

    pub fn slowlog_reset(&self) {
        self.slowlog.lock().clear();
    }

    pub fn latency_events(&self) -> Vec<(&'static str, LatencyEvent)> {
        let mut v: Vec<_> = self
            .latency
            .lock()
            .iter()
            .map(|(k, e)| (*k, e.clone()))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// LATENCY RESET [event...]: how many events were reset.
    pub fn latency_reset(&self, events: &[String]) -> usize {
        let mut all = self.latency.lock();
        if events.is_empty() {
            let n = all.len();
            all.clear();
            return n;
        }
        events
            .iter()
            .filter(|e| all.remove(e.to_ascii_lowercase().as_str()).is_some())
            .count()
    }

    pub fn add_client(&self, c: Arc<ClientHandle>) {
        self.clients.lock().insert(c.id, c);
    }

    pub fn remove_client(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    /// Client `id`, unless it is ending (see [`ServerState::clients`]).
    pub fn client(&self, id: u64) -> Option<Arc<ClientHandle>> {
        self.clients
            .lock()
            .get(&id)
            .filter(|c| c.attention.raised() == 0)
            .cloned()
    }

    /// This cache's clients, by id. A client told to end (CLIENT KILL, its
    /// user's disconnection, shutdown) is left out at once, as Redis frees
    /// a killed client before KILL answers: its task leaves the table a
    /// moment later, after its socket has closed, and a second KILL or a
    /// LIST in that moment must not find it.
    pub fn clients(&self) -> Vec<Arc<ClientHandle>> {
        let mut v: Vec<_> = self
            .clients
            .lock()
            .values()
            .filter(|c| c.attention.raised() == 0)
            .cloned()
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    pub fn pause(&self, p: Pause) {
        let mut cur = self.pause.lock();
        // A longer or stricter pause wins (Redis keeps the later end time).
        *cur = Some(match *cur {
            Some(old) if old.until > p.until => Pause {
                until: old.until,
                all: old.all || p.all,
            },
            _ => p,
        });
        self.pausing.store(true, Ordering::Release);
    }

    pub fn unpause(&self) {
        let mut cur = self.pause.lock();
        *cur = None;
        self.pausing.store(false, Ordering::Release);
        drop(cur);
        self.unpaused.notify_waiters();
    }

    /// Whether a pause may be in force (then ask [`ServerState::paused`]).
    pub fn pausing(&self) -> bool {
        self.pausing.load(Ordering::Acquire)
    }

    /// The pause a command must wait for, if any (`write`: it writes).
    pub fn paused(&self, write: bool) -> Option<Pause> {
        let mut cur = self.pause.lock();
        match *cur {
            Some(p) if p.until <= tokio::time::Instant::now() => {
                *cur = None;
                self.pausing.store(false, Ordering::Release);
                None
            }
            Some(p) if p.all || write => Some(p),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_bounded() {
        let s = ServerState::default();
        s.record_error("ERR x");
        s.record_error(&"Y".repeat(10_000));
        for i in 0..1000 {
            s.record_error(&format!("CODE{i} boom"));
        }
        let stats = s.error_stats();
        assert_eq!(stats.len(), MAX_ERROR_CODES);
        assert!(stats.iter().all(|(c, _)| c.len() <= MAX_ERROR_CODE_LEN));
        assert_eq!(s.error_replies.load(Ordering::Relaxed), 1002);
        s.reset_stats();
        assert!(s.error_stats().is_empty());
    }

    #[test]
    fn slowlog_keeps_its_length_and_cuts_arguments() {
        let s = ServerState::default();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        s.config.set_all(&[(
            crate::cmd::params::find("slowlog-max-len").unwrap(),
            "3".into(),
        )]);
        let args: Vec<Bytes> = (0..40).map(|_| Bytes::from(vec![b'a'; 200])).collect();
        for _ in 0..10 {
            s.maybe_log_slow(&args, 20_000, &peer, b"");
        }
        s.maybe_log_slow(&args, 5, &peer, b"");
        assert_eq!(s.slowlog_len(), 3);
        let e = &s.slowlog(1)[0];
        assert_eq!(e.id, 9);
        assert_eq!(e.args.len(), 32);
        assert_eq!(&e.args[31][..], b"... (9 more arguments)");
        assert_eq!(e.args[0].len(), 128 + "... (72 more bytes)".len());
    }

    /// A request's arguments are slices of its connection's read buffer:
    /// an entry keeps copies, never the buffer (a slow 500 MB SET's key
    /// kept its whole read buffer alive until the entry left the log).
    #[test]
    fn slowlog_entries_do_not_keep_the_read_buffer() {
        let s = ServerState::default();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let buffer = Bytes::from(b"SETkvalue".repeat(1000));
        let args = [buffer.slice(0..3), buffer.slice(3..4), buffer.slice(4..)];
        s.maybe_log_slow(&args, 20_000, &peer, b"");
        drop(args);
        assert_eq!(s.slowlog_len(), 1);
        assert!(buffer.is_unique(), "the log holds a slice of the buffer");
        assert_eq!(&s.slowlog(1)[0].args[1][..], b"k");
    }
}
