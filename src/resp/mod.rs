//! The wire: RESP2/RESP3 request decoding, reply values and their encoding, and
//! every client-visible reply string.
//!
//! This layer knows nothing of tenants, commands or storage. Its invariant: input
//! never panics the decoder and never makes it allocate ahead of the bytes that
//! have arrived (a bulk header promising 500 MiB costs nothing until the bytes come).
//!
//! - [`codec`]: request framing (multibulk and inline), with three outcomes:
//!   incomplete, a framing violation (reply `-ERR Protocol error: ...` and close),
//!   or a well-framed request.
//! - [`value`]: the [`Reply`] value handlers return, encoded per protocol version.
//! - [`reply`]: the one list of reply and error strings, byte for byte as Redis 7.

pub mod codec;
pub mod reply;
pub mod value;

pub use codec::{Decoder, Limits, ProtocolError, Request};
pub use value::{Protocol, Reply};
