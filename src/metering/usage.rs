//! Usage figures of one cache: the counters billing and INFO read.
//! Updated on the request path with relaxed atomic adds; read when
//! `/metrics`, `/v1/caches/{name}/usage` or INFO render.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::cmd::Family;

/// Why a request was refused before it ran (not billed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    UnknownCommand,
    Arity,
    KeyTooLong,
    CrossSlot,
    Throttled,
    Oom,
    /// A script kept the partition busy (`BUSY`).
    Busy,
    /// The connection's, cache's or server's client memory is full.
    ClientMemory,
    /// The user's access string denies the command, a key or a channel.
    NoPerm,
}

impl Rejection {
    pub const ALL: [Rejection; 9] = [
        Rejection::UnknownCommand,
        Rejection::Arity,
        Rejection::KeyTooLong,
        Rejection::CrossSlot,
        Rejection::Throttled,
        Rejection::Oom,
        Rejection::Busy,
        Rejection::ClientMemory,
        Rejection::NoPerm,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Rejection::UnknownCommand => "unknown_command",
            Rejection::Arity => "arity",
            Rejection::KeyTooLong => "key_too_long",
            Rejection::CrossSlot => "crossslot",
            Rejection::Throttled => "throttled",
            Rejection::Oom => "oom",
            Rejection::Busy => "busy",
            Rejection::ClientMemory => "client_memory",
            Rejection::NoPerm => "noperm",
        }
    }
}

const FAMILIES: usize = Family::ALL.len();

/// Upper bounds of the command-duration histogram's buckets, nanoseconds
/// (10 µs to 2.5 s; `stratus_command_duration_seconds`), and one more
/// bucket past the last (`+Inf`).
pub const DURATION_BOUNDS_NS: [u64; 17] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
];
const DURATION_BUCKETS: usize = DURATION_BOUNDS_NS.len() + 1;

/// Whether a command read or wrote: the duration histogram's `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub const ALL: [Access; 2] = [Access::Read, Access::Write];

    pub fn label(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// One kind's command durations: a count per bucket (not cumulative; the
/// exposition sums them) and their total.
#[derive(Debug, Default)]
pub struct Durations {
    pub buckets: [AtomicU64; DURATION_BUCKETS],
    pub sum_nanos: AtomicU64,
}

fn bucket_of(nanos: u64) -> usize {
    DURATION_BOUNDS_NS.partition_point(|&b| b < nanos)
}

/// Counters of one cache.
#[derive(Debug, Default)]
pub struct Usage {
    /// Metered commands by family.
    pub commands: [AtomicU64; FAMILIES],
    /// Milli-ECPU by family.
    pub ecpu_milli: [AtomicU64; FAMILIES],
    /// AUTH, HELLO, PING, QUIT: executed, not metered.
    pub unmetered: AtomicU64,
    /// Refused before execution, by [`Rejection`].
    pub rejected: [AtomicU64; Rejection::ALL.len()],
    pub net_in: AtomicU64,
    pub net_out: AtomicU64,
    pub connections_received: AtomicU64,
    pub connected: AtomicU64,
    /// Logins naming this cache that were refused.
    pub auth_failures: AtomicU64,
    /// Time from a request's decoding to its reply, by [`Access`].
    pub durations: [Durations; 2],
    /// Bytes of buffered requests and MULTI queues of this cache's
    /// connections (bounded by the cache's client allowance).
    pub client_memory: AtomicU64,
    /// Integral of stored bytes over time.
    pub byte_seconds: AtomicU64,
    /// Same with the storage minimum applied (what is billed).
    pub billed_byte_seconds: AtomicU64,
    /// A proxy: the two integrals as control bills them (read at each
    /// check-in; shown by the usage API, never exported as this process's
    /// own, so they are not counted twice).
    pub billed_by_control: [AtomicU64; 2],
}

/// A connection's usage not yet added to its cache's [`Usage`]: the request
/// path adds to it with plain arithmetic, and [`Tally::flush`] adds it to
/// the cache's shared counters once per batch of requests — before their
/// replies are written, so a client holding a reply sees its request
/// counted. (Per request, these were four `lock add`s on counters every
/// connection of the cache shares: the hottest instructions of the
/// connection loop at pipeline 16; the command-duration histogram's
/// samples, recorded one by one, were 4% of the server's CPU.)
#[derive(Debug, Default)]
pub struct Tally {
    net_in: u64,
    net_out: u64,
    commands: [u64; FAMILIES],
    ecpu_milli: [u64; FAMILIES],
    durations: [[u64; DURATION_BUCKETS]; 2],
    duration_nanos: [u64; 2],
    pending: bool,
    /// Which families (bit i: `Family::ALL[i]`) and which buckets of each
    /// kind hold counts: a flush visits only those (scanning every counter
    /// of the tally was 2% of a pipeline-1 request's instructions).
    families_touched: u64,
    buckets_touched: [u64; 2],
}

const _: () = assert!(FAMILIES <= 64 && DURATION_BUCKETS <= 64);

/// The positions of `mask`'s set bits, lowest first.
fn ones(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let i = mask.trailing_zeros() as usize;
        mask &= mask.checked_sub(1)?;
        Some(i)
    })
}

impl Tally {
    /// Bytes a request and its reply moved.
    pub fn transfer(&mut self, wire_in: u64, wire_out: u64) {
        self.net_in += wire_in;
        self.net_out += wire_out;
        self.pending = true;
    }

    /// As [`Usage::meter`].
    pub fn meter(&mut self, family: Family, ecpu_milli: u64) {
        self.commands[family.index()] += 1;
        self.meter_transfer(family, ecpu_milli);
    }

    /// As [`Usage::meter_transfer`].
    pub fn meter_transfer(&mut self, family: Family, ecpu_milli: u64) {
        self.ecpu_milli[family.index()] += ecpu_milli;
        self.families_touched |= 1 << family.index();
        self.pending = true;
    }

    /// As [`Usage::duration`].
    pub fn duration(&mut self, kind: Access, elapsed: std::time::Duration) {
        let nanos = elapsed.as_nanos().min(u128::from(u64::MAX)) as u64;
        let bucket = bucket_of(nanos);
        self.durations[kind as usize][bucket] += 1;
        self.buckets_touched[kind as usize] |= 1 << bucket;
        self.duration_nanos[kind as usize] += nanos;
        self.pending = true;
    }

    /// Adds what was tallied to `usage` and starts again from zero.
    pub fn flush(&mut self, usage: &Usage) {
        if !std::mem::take(&mut self.pending) {
            return;
        }
        let add = |a: &AtomicU64, n: &mut u64| {
            if *n > 0 {
                a.fetch_add(std::mem::take(n), Ordering::Relaxed);
            }
        };
        add(&usage.net_in, &mut self.net_in);
        add(&usage.net_out, &mut self.net_out);
        for i in ones(std::mem::take(&mut self.families_touched)) {
            add(&usage.commands[i], &mut self.commands[i]);
            add(&usage.ecpu_milli[i], &mut self.ecpu_milli[i]);
        }
        for (k, shared) in usage.durations.iter().enumerate() {
            for b in ones(std::mem::take(&mut self.buckets_touched[k])) {
                add(&shared.buckets[b], &mut self.durations[k][b]);
            }
            add(&shared.sum_nanos, &mut self.duration_nanos[k]);
        }
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Usage {
    /// Records how long a command took, from its decoding to its reply.
    pub fn duration(&self, kind: Access, elapsed: std::time::Duration) {
        let nanos = elapsed.as_nanos().min(u128::from(u64::MAX)) as u64;
        let d = &self.durations[kind as usize];
        d.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        d.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Records one metered command.
    pub fn meter(&self, family: Family, ecpu_milli: u64) {
        self.commands[family.index()].fetch_add(1, Ordering::Relaxed);
        self.ecpu_milli[family.index()].fetch_add(ecpu_milli, Ordering::Relaxed);
    }

    /// ECPU of a request that is not (yet) a command run: the bytes of a
    /// command queued in MULTI (EXEC counts the command).
    pub fn meter_transfer(&self, family: Family, ecpu_milli: u64) {
        self.ecpu_milli[family.index()].fetch_add(ecpu_milli, Ordering::Relaxed);
    }

    pub fn reject(&self, why: Rejection) {
        self.rejected[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected(&self, why: Rejection) -> u64 {
        get(&self.rejected[why as usize])
    }

    pub fn ecpu_total_milli(&self) -> u64 {
        self.ecpu_milli.iter().map(get).sum()
    }

    pub fn commands_total(&self) -> u64 {
        self.commands.iter().map(get).sum()
    }

    /// Every command that ran: metered and unmetered (INFO's total).
    pub fn commands_processed(&self) -> u64 {
        self.commands_total() + get(&self.unmetered)
    }

    pub fn load(a: &AtomicU64) -> u64 {
        get(a)
    }

    /// Adds `dt_ms` of storage at `used` bytes, billed at least `minimum`.
    pub fn accrue_storage(&self, used: u64, minimum: u64, dt_ms: u64) {
        let bs = |bytes: u64| (u128::from(bytes) * u128::from(dt_ms) / 1000) as u64;
        self.byte_seconds.fetch_add(bs(used), Ordering::Relaxed);
        self.billed_byte_seconds
            .fetch_add(bs(used.max(minimum)), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_flush_adds_every_touched_counter_once() {
        let usage = Usage::default();
        let mut tally = Tally::default();
        tally.meter(Family::String, 1_000);
        tally.meter(Family::Memcached, 2_500);
        tally.meter(Family::String, 500);
        tally.duration(Access::Read, Duration::from_nanos(1));
        tally.duration(Access::Read, Duration::from_secs(100));
        tally.duration(Access::Write, Duration::from_micros(30));
        tally.transfer(10, 20);
        tally.flush(&usage);
        // A second flush adds nothing more.
        tally.flush(&usage);
        let s = Family::String.index();
        let m = Family::Memcached.index();
        assert_eq!(get(&usage.commands[s]), 2);
        assert_eq!(get(&usage.ecpu_milli[s]), 1_500);
        assert_eq!(get(&usage.commands[m]), 1);
        assert_eq!(get(&usage.ecpu_milli[m]), 2_500);
        let total: u64 = usage.commands.iter().map(get).sum();
        assert_eq!(total, 3);
        let read = &usage.durations[Access::Read as usize];
        assert_eq!(get(&read.buckets[0]), 1);
        assert_eq!(get(&read.buckets[DURATION_BUCKETS - 1]), 1);
        assert_eq!(read.buckets.iter().map(get).sum::<u64>(), 2);
        let write = &usage.durations[Access::Write as usize];
        assert_eq!(get(&write.buckets[bucket_of(30_000)]), 1);
        assert_eq!(get(&write.sum_nanos), 30_000);
        assert_eq!((get(&usage.net_in), get(&usage.net_out)), (10, 20));
        // Counted again after a flush.
        tally.meter(Family::String, 1);
        tally.flush(&usage);
        assert_eq!(get(&usage.commands[s]), 3);
    }
}
