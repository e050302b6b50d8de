//! Control plane: the cache registry (tenants, tokens, limits) and the HTTP
//! control API that manages it.

pub mod api;
pub mod http;
pub mod registry;

pub use registry::{Cache, Registry};
