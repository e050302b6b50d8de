//! The proxy tier: accepts RESP and Memcached connections and runs each
//! one's request path.
//!
//! Its modules import downwards only, in these layers (top first; the
//! `structure` test holds the crate to one-way imports):
//! 1. [`server`]: the accept loop, connection limits, one task per
//!    connection, a shared shutdown signal.
//! 2. [`conn`]: the RESP connection loop (read, decode every buffered
//!    frame, execute, flush once) and the request path, top to bottom:
//!    auth → admit → route → execute → meter → reply; [`memcached`]: the
//!    Memcached connection, with the same discipline.
//! 3. [`transaction`]: MULTI, EXEC, DISCARD, WATCH and UNWATCH (EXEC runs
//!    its queued proxy commands through [`conn_cmds`]).
//! 4. [`conn_cmds`]: the commands the proxy answers itself (AUTH, HELLO,
//!    CLIENT, COMMAND, INFO, SCAN, ...), declared in [`crate::cmd::table`];
//!    beside it the command families it hands on: [`pubsub`] (SUBSCRIBE ...
//!    PUBSUB, MONITOR, client tracking), [`scripting`] (the cache's script and
//!    function stores), [`acl_cmd`] (ACL), [`introspect`] (INFO, CONFIG,
//!    SLOWLOG, LATENCY).
//! 5. [`session`]: what a connection remembers (bound cache, protocol,
//!    subscriptions, MULTI queue) and [`session::Connection`], the state
//!    every command handler receives; [`memory`]: client memory, buffers and
//!    room in the storage maximum; [`subcommands`]: container commands'
//!    subcommands and HELP; [`shared`]: what every connection shares;
//!    [`turns`]: time slices on the reactor threads (no task holds one long);
//!    [`code_store`]: scripts and libraries shared through etcd.
//!
//! The proxy keeps no data: caches live in the registry, data in partitions.

pub mod acl_cmd;
pub mod code_store;
pub mod conn;
pub mod conn_cmds;
pub mod flood;
pub mod introspect;
pub mod memcached;
pub mod memory;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod session;
pub mod shared;
pub mod subcommands;
pub mod transaction;
pub mod turns;

pub use server::serve;
pub use shared::{ProxyShared, Wire};
