//! Stratus: a Redis-compatible, multi-tenant, autoscaling serverless cache.
//!
//! Module map (the path of a request runs top to bottom):
//! - [`config`]: every setting, its default, flag, environment name and check;
//! - [`resp`]: the wire (framing, reply values, reply strings); no tenants, no storage;
//! - [`cmd`]: the command table and data-command handlers by family;
//! - [`proxy`]: connections and the request path (auth → admit → route →
//!   execute → meter → reply);
//! - [`metering`]: the ECPU cost model, per-cache ECPU/s limiter, usage figures;
//! - [`pubsub`]: each cache's Pub/Sub hub (behind a trait) and subscribers' mailboxes;
//! - [`pool`]: each cache's routing table and the `PartitionHandle` seam;
//! - [`partition`]: one partition's storage: slot-bucketed keyspace, TTLs, accounting;
//! - [`control`]: the cache registry and the HTTP control API;
//! - [`memcached`]: the Memcached engine's protocol and connections (its
//!   operations are rows of the command table, run as any command is);
//! - [`metrics`]: the one list of metric names and the Prometheus exposition;
//! - [`server`]: `stratus serve` wiring: listeners, background tasks, shutdown;
//! - [`wire`]: the data plane's format between a proxy and a `stratus node`
//!   (versioned bincode frames); [`node`]: a node's server and a proxy's
//!   client for it.
//!
//! - [`attention`]: the flags a waiting connection must notice (kill, its
//!   user's disconnection, shutdown), without a lock.
//! - [`allocator`]: the process's allocator (small blocks from glibc, large
//!   ones from mimalloc).
//!
//! `resp` and `cmd` never import the layers above them.

// `deny`, not `forbid`: two measured exceptions, the CPU prefetch hint in
// `partition::prefetch_line` and the global allocator in `allocator` (their
// SAFETY notes say why).
#![deny(unsafe_code)]

pub mod acl;
pub mod allocator;
pub mod attention;
pub mod cmd;
pub mod config;
pub mod control;
pub mod glob;
pub mod http1;
pub mod link;
pub mod memcached;
pub mod meta;
pub mod metering;
pub mod metrics;
pub mod node;
pub mod partition;
pub mod pool;
pub mod proxy;
pub mod pubsub;
pub mod resp;
pub mod server;
pub mod tls;
pub mod wire;
