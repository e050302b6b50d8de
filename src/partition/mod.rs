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
