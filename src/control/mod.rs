//! Control plane: the cache registry (tenants, tokens, limits, Lua script
//! stores, function libraries) and the HTTP control API that manages it.

pub mod api;
pub mod functions;
pub mod http;
pub mod registry;
pub mod scripts;

pub use registry::{Cache, Registry};
