//! The proxy tier: accepts RESP connections and runs each one's request path.
//!
//! - [`server`]: accept loop with a connection limit, one task per connection,
//!   a shared shutdown signal.
//! - [`conn`]: the connection loop (read, decode every buffered frame,
//!   execute, flush once) and the request path, top to bottom in one function:
//!   auth → admit → route → execute → meter → reply.
//! - [`session`]: what a connection remembers (bound cache, protocol, name).
//! - [`transaction`]: MULTI, EXEC, DISCARD, WATCH and UNWATCH;
//! - [`conn_cmds`]: the commands the proxy answers itself (AUTH, HELLO, CLIENT,
//!   COMMAND, INFO, SCAN, ...), declared in [`crate::cmd::table`].
//! - [`pubsub`]: SUBSCRIBE ... PUBSUB against the cache's hub, the
//!   connection's subscriptions and mailbox;
//! - [`config`]: CONFIG GET / SET over a table of per-cache parameters;
//! - [`scripting`]: the cache's Lua script store (SCRIPT, EVALSHA → body).
//! - [`turns`]: time slices on the reactor threads (no task holds one long).
//!
//! The proxy keeps no data: caches live in the registry, data in partitions.

pub mod acl_cmd;
pub mod conn;
pub mod conn_cmds;
pub mod introspect;
pub mod memcached;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod session;
pub mod transaction;
pub mod turns;

pub use server::{ProxyShared, Wire, serve};
