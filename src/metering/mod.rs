//! Metering: what a request costs in ECPU, the per-cache ECPU/s limiter, and
//! the usage figures billing reads.
//!
//! - [`cost`]: the ECPU cost model (`max(1, transfer KiB, work units)`), in
//!   milli-ECPU integers; work units come from the command table.
//! - [`limiter`]: GCRA admission (governor) weighted by ECPU, with debt for
//!   the part of a request's cost known only after it ran.
//! - [`usage`]: per-cache counters (ECPU and commands by family, throttled and
//!   rejected requests, bytes on the wire, byte-seconds stored);
//! - [`shares`]: a cache's limit split among several proxies (max-min fair).

pub mod cost;
pub mod limiter;
pub mod limits;
pub mod shares;
pub mod usage;

pub use cost::{ecpu_milli, transfer_milli, work_milli};
pub use limiter::{EcpuLimiter, Throttled};
pub use usage::{Rejection, Usage};
