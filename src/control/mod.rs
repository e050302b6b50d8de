//! Control plane: the cache registry (tenants, tokens, limits, Lua script
//! stores, function libraries, each cache's introspection state: Redis
//! configuration values, statistics, slow log, clients) and the HTTP control
//! API that manages it.

pub mod api;
pub mod drain;
pub mod follow;
pub mod functions;
pub mod http;
pub mod introspection;
pub mod keeper;
pub mod placement;
pub mod registry;
pub mod scripts;

pub use registry::{Cache, Registry};
