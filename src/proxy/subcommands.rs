//! Container commands' subcommands (`CLIENT SETNAME`, `SCRIPT LOAD`...):
//! finding one with its arity, the `HELP` reply, and the Redis version the
//! proxy reports. A leaf of the proxy: every command module may use it.

use bytes::Bytes;

use crate::cmd::OpError;
use crate::resp::{Reply, reply};

/// The Redis version Stratus reports (its command set and replies follow 7.0;
/// Redis's own 7.0.15 test suite measures it).
pub const REDIS_VERSION: &str = "7.0.15";

/// Subcommands of a container command with their arities (Redis
/// convention, the command name counted: `n` exact, `-n` at least n).
pub type Subcommands = &'static [(&'static str, i32)];

/// Finds `args[1]` among `subs` and checks its arity: the lower-case
/// subcommand name, or Redis's error for an unknown one or a wrong count
/// (`wrong number of arguments for 'client|setname' command`).
pub fn subcommand(cmd: &str, subs: Subcommands, args: &[Bytes]) -> Result<&'static str, OpError> {
    let sub = &args[1];
    let Some((name, arity)) = subs
        .iter()
        .find(|(n, _)| sub.eq_ignore_ascii_case(n.as_bytes()))
    else {
        return Err(OpError::Text(reply::unknown_subcommand(cmd, sub)));
    };
    let argc = args.len() as i32;
    let ok = if *arity >= 0 {
        argc == *arity
    } else {
        argc >= -arity
    };
    if !ok {
        return Err(OpError::Text(reply::wrong_arity(&format!("{cmd}|{name}"))));
    }
    Ok(name)
}

pub fn help_reply(lines: &[&'static str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::status(l)).collect())
}
