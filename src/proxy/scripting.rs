//! The proxy's half of Lua scripting: the cache's script store.
//!
//! - [`prepare`], on the request path before a data command runs: `EVAL` and
//!   `EVAL_RO` store their body (as Redis does, so a later `EVALSHA` finds
//!   it); `EVALSHA` and `EVALSHA_RO` are resolved to the stored body, which
//!   replaces the SHA in the arguments, so the partition runs every script
//!   one way (`cmd::script::eval`, which always receives a body). An unknown
//!   SHA is answered `NOSCRIPT` without reaching a partition.
//! - [`script`]: `SCRIPT LOAD | EXISTS | FLUSH | KILL | HELP`; KILL stops
//!   the cache's running scripts (none that has written: `UNKILLABLE`).
//!
//! The store belongs to the cache the connection is bound to: scripts are
//! never shared between caches.

use std::borrow::Cow;

use bytes::Bytes;

use crate::cmd::{CommandSpec, Family, OpError};
use crate::control::Cache;
use crate::control::scripts::Origin;
use crate::pool::KillOutcome;
use crate::resp::{Reply, reply};

/// The arguments a script command runs with: `EVALSHA*` get the body in
/// place of the SHA; other commands pass through untouched.
pub fn prepare<'a>(
    cache: &Cache,
    spec: &CommandSpec,
    args: &'a [Bytes],
) -> Result<Cow<'a, [Bytes]>, Reply> {
    if spec.family != Family::Scripting || args.len() < 2 {
        return Ok(Cow::Borrowed(args));
    }
    match spec.name {
        "eval" | "eval_ro" => {
            // A full store only means the body is not kept for EVALSHA.
            let _ = cache.scripts.add(&args[1], Origin::Eval);
            Ok(Cow::Borrowed(args))
        }
        "evalsha" | "evalsha_ro" => {
            let body = cache
                .scripts
                .get(&args[1])
                .ok_or(Reply::err(reply::NOSCRIPT))?;
            let mut resolved = args.to_vec();
            resolved[1] = body;
            Ok(Cow::Owned(resolved))
        }
        _ => Ok(Cow::Borrowed(args)),
    }
}

const SCRIPT_SUBS: &[(&str, i32)] = &[
    ("load", 3),
    ("exists", -3),
    ("flush", -2),
    ("kill", 2),
    ("help", 2),
];

/// SCRIPT LOAD body | EXISTS sha... | FLUSH [ASYNC|SYNC] | KILL | HELP
pub fn script(cache: &Cache, args: &[Bytes]) -> Result<Reply, OpError> {
    match super::conn_cmds::subcommand("script", SCRIPT_SUBS, args)? {
        "load" => match cache.scripts.add(&args[2], Origin::Load) {
            Ok(sha) => Ok(Reply::bulk(sha)),
            Err(_) => Err(OpError::Static(reply::SCRIPT_STORE_FULL)),
        },
        "exists" => Ok(Reply::Array(
            args[2..]
                .iter()
                .map(|sha| Reply::Int(i64::from(cache.scripts.contains(sha))))
                .collect(),
        )),
        "flush" => {
            let mode_ok = match args.get(2) {
                None => true,
                Some(m) => {
                    args.len() == 3
                        && (m.eq_ignore_ascii_case(b"ASYNC") || m.eq_ignore_ascii_case(b"SYNC"))
                }
            };
            if !mode_ok {
                return Err(OpError::Static(reply::SCRIPT_FLUSH_OPTION));
            }
            cache.scripts.flush();
            Ok(Reply::ok())
        }
        // Scripts also stop themselves at the time limit.
        "kill" => match cache.pool.kill_scripts(false) {
            KillOutcome::NotBusy => Err(OpError::Static(reply::NOTBUSY)),
            KillOutcome::Unkillable => Err(OpError::Static(reply::UNKILLABLE)),
            KillOutcome::Killed => Ok(Reply::ok()),
        },
        _ => Ok(super::conn_cmds::help_reply(&[
            "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script (scripts over the time limit stop by themselves).",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
            "HELP",
            "    Prints this help.",
        ])),
    }
}
