//! Storage of one partition: a contiguous slot range of one cache.
//!
//! - [`slot`]: key → hash slot (CRC16/XMODEM with `{hash tag}`), as Redis Cluster,
//!   and [`ClusterMode`], which keys one command may combine.
//! - [`value`]: the value types and their memory accounting (hash, list, set
//!   there; sorted sets in [`zset`], streams in [`stream`]); [`packed`]: the
//!   compact form of small hashes and sorted sets.
//! - [`keyspace`]: entries bucketed by slot, TTLs (lazy expiry on access plus an
//!   active cycle driven by a deadline heap), used-bytes accounting, SCAN.
//! - [`notify`]: keyspace notifications recorded for the cache's hub.
//! - [`lazyfree`]: values whose free is expensive are dropped on a background
//!   thread, not under the partition lock (the accounting stays at removal).
//!
//! This layer knows no commands and builds no replies: command handlers in
//! [`crate::cmd`] call it and turn its typed results into replies. It never reads
//! the clock itself: callers pass `now` (unix milliseconds).

pub mod key;
pub mod keyspace;
pub mod lazyfree;
pub mod notify;
pub mod packed;
pub mod scan;
pub mod slot;
pub mod stream;
pub mod value;
pub mod zset;

pub use keyspace::{Entry, EntryMut, Eviction, Keyspace, KeyspaceStats};
pub use slot::{ClusterMode, SLOTS, key_slot};
pub use stream::{StreamId, StreamValue};
pub use value::{HashValue, ListValue, SetValue, Value, ValueType};
pub use zset::ZSetValue;

/// Unix time in milliseconds (the clock TTLs are stamped with).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Asks the CPU to load the cache line at `p` into its caches (a hint:
/// nothing happens where the target has no prefetch instruction).
///
/// Why an instruction rather than a plain load of the same bytes: a load
/// that misses holds its place in the CPU's reorder buffer until the line
/// arrives, a prefetch does not. With loads instead (`black_box` of the
/// bytes; `loadtest/ab-serve.sh`, alternated runs on 2026-12-02) SET at
/// pipeline 16 was 13% slower; GET did not move.
#[inline(always)]
pub fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: a prefetch reads no memory into the program and never
    // faults, whatever the address; SSE is part of every x86_64 target.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
