//! CONFIG GET / SET, scoped to the caller's cache, driven by one table of
//! parameters ([`PARAMS`]): a row gives the name, how to read the value
//! from the cache, and how to set it (`None` = read-only). Adding a
//! parameter = one row.
//!
//! CONFIG SET applies its pairs all or nothing: every name and value is
//! checked (unknown, read-only, duplicate, invalid) before any is applied,
//! as Redis does.

use bytes::Bytes;

use super::conn::Connection;
use super::conn_cmds::{Subcommands, help_reply, subcommand};
use crate::cmd::OpError;
use crate::cmd::args::string_match;
use crate::control::Cache;
use crate::partition::notify;
use crate::resp::{Reply, reply};

/// Reads a parameter's value for a cache.
type Getter = fn(&Cache) -> String;
/// Checks a new value; returns how to apply it (or Redis's reason).
type Setter = fn(&[u8]) -> Result<Apply, &'static str>;
/// A checked value, applied once every pair of the call has been checked.
type Apply = Box<dyn FnOnce(&Cache) + Send>;

/// One configuration parameter.
pub struct Param {
    pub name: &'static str,
    pub get: Getter,
    pub set: Option<Setter>,
}

/// Every parameter CONFIG knows, one row each.
pub static PARAMS: &[Param] = &[Param {
    name: "notify-keyspace-events",
    get: |c| notify::format_flags(c.pool.notify_flags()),
    set: Some(|v| {
        let flags = notify::parse_flags(v).ok_or(reply::INVALID_EVENT_CLASS)?;
        Ok(Box::new(move |c: &Cache| c.pool.set_notify_flags(flags)))
    }),
}];

const CONFIG_SUBS: Subcommands = &[("get", -3), ("set", -4), ("help", 2)];

fn is_glob(p: &[u8]) -> bool {
    p.iter().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// CONFIG GET pattern... | SET name value [name value ...] | HELP
pub fn config(conn: &Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let sub = subcommand("config", CONFIG_SUBS, args)?;
    let cache = conn
        .session
        .cache
        .clone()
        .ok_or(OpError::Static(reply::NOAUTH))?;
    match sub {
        "get" => {
            let mut out = Vec::new();
            for param in PARAMS {
                // A plain name is echoed as given; a glob answers the
                // canonical name (Redis 7.0).
                let shown = args[2..].iter().find_map(|p| {
                    if is_glob(p) {
                        string_match(p, param.name.as_bytes(), true).then(|| param.name.into())
                    } else {
                        p.eq_ignore_ascii_case(param.name.as_bytes())
                            .then(|| p.clone())
                    }
                });
                if let Some(name) = shown {
                    out.push(Reply::Bulk(name));
                    out.push(Reply::bulk((param.get)(&cache)));
                }
            }
            Ok(Reply::Map(
                out.chunks(2)
                    .map(|kv| (kv[0].clone(), kv[1].clone()))
                    .collect(),
            ))
        }
        "set" => {
            if !args.len().is_multiple_of(2) {
                return Err(OpError::Text(reply::wrong_arity("config|set")));
            }
            let mut seen: Vec<&'static str> = Vec::new();
            let mut apply = Vec::new();
            for pair in args[2..].chunks(2) {
                let Some(param) = PARAMS
                    .iter()
                    .find(|p| pair[0].eq_ignore_ascii_case(p.name.as_bytes()))
                else {
                    return Err(OpError::Text(reply::config_set_unknown(&pair[0])));
                };
                let Some(set) = param.set else {
                    return Err(OpError::Text(reply::config_set_failed(
                        &pair[0],
                        "can't set immutable config",
                    )));
                };
                if seen.contains(&param.name) {
                    return Err(OpError::Text(reply::config_set_failed(
                        &pair[0],
                        "duplicate parameter",
                    )));
                }
                seen.push(param.name);
                apply.push(
                    set(&pair[1])
                        .map_err(|why| OpError::Text(reply::config_set_failed(&pair[0], why)))?,
                );
            }
            for a in apply {
                a(&cache);
            }
            Ok(Reply::ok())
        }
        _ => Ok(help_reply(&[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "HELP",
            "    Prints this help.",
        ])),
    }
}
