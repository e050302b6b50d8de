//! `ACL`: the users of the caller's own cache. `ACL SETUSER` and `DELUSER`
//! change the same users the control API does (`/v1/caches/<cache>/users`;
//! only a user whose rules allow `acl` may, as in Redis: the token holder
//! does). There is no ACL file, so `LOAD` and `SAVE` are refused.

use bytes::Bytes;
use rand::Rng;

use super::session::Connection;
use super::subcommands::{Subcommands, help_reply, subcommand};
use crate::acl::{self, Access, CATEGORIES};
use crate::cmd::args::parse_i64;
use crate::cmd::table::SUBCOMMANDS;
use crate::cmd::{OpError, flags, lookup};
use crate::control::Cache;
use crate::partition::now_ms;
use crate::resp::{Reply, reply};

const ACL_SUBS: Subcommands = &[
    ("cat", -2),
    ("whoami", 2),
    ("log", -2),
    ("dryrun", -4),
    ("getuser", 3),
    ("list", 2),
    ("users", 2),
    ("genpass", -2),
    ("help", 2),
    ("setuser", -3),
    ("deluser", -3),
    ("load", 2),
    ("save", 2),
];

/// A proxy's `ACL SETUSER` / `DELUSER`: control owns the users and
/// applies the change (`POST /v1/caches/<cache>/acl`); the proxy serves it
/// before this returns. Control's answer, or its refusal as `ERR`.
async fn forward_to_control(
    follower: &crate::control::follow::Follower,
    cache: &Cache,
    change: serde_json::Value,
) -> Result<serde_json::Value, OpError> {
    let (status, body) = follower
        .forward(
            hyper::Method::POST,
            &format!("/v1/caches/{}/acl", cache.name),
            Some(b"application/json"),
            Bytes::from(change.to_string()),
        )
        .await
        .map_err(|e| OpError::Text(format!("ERR control cannot be reached: {e}")))?;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if !status.is_success() {
        let why = answer["error"]["message"].as_str().unwrap_or("refused");
        return Err(OpError::Text(format!("ERR {why}")));
    }
    Ok(answer)
}

/// ACL CAT | WHOAMI | LOG | DRYRUN | GETUSER | LIST | USERS | GENPASS |
/// SETUSER | DELUSER | HELP
pub async fn acl(conn: &mut Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    let cache = conn
        .session
        .cache
        .clone()
        .ok_or(OpError::Static(reply::NOAUTH))?;
    match subcommand("acl", ACL_SUBS, args)? {
        "whoami" => Ok(Reply::bulk(conn.session.user_name().to_string())),
        "cat" => cat(args.get(2)),
        "log" => log(&cache, args.get(2)),
        "dryrun" => dryrun(&cache, args),
        "getuser" => Ok(getuser(&cache, &args[2])),
        "list" => Ok(Reply::Array(
            users(&cache)
                .into_iter()
                .map(|(name, access)| Reply::bulk(format!("user {name} {}", access.describe())))
                .collect(),
        )),
        "users" => Ok(Reply::Array(
            users(&cache)
                .into_iter()
                .map(|(name, _)| Reply::bulk(name))
                .collect(),
        )),
        "genpass" => genpass(args.get(2)),
        "setuser" => {
            let name = String::from_utf8_lossy(&args[2]).into_owned();
            let rules: Vec<String> = args[3..]
                .iter()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .collect();
            if let Some(follower) = &conn.shared.follower {
                let change = serde_json::json!({"setuser": {"name": name, "rules": rules}});
                forward_to_control(follower, &cache, change).await?;
                return Ok(Reply::ok());
            }
            cache
                .set_user_rules(&name, &rules)
                .map_err(|e| OpError::Text(format!("ERR {e}")))?;
            Ok(Reply::ok())
        }
        "deluser" => {
            let names: Vec<String> = args[2..]
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect();
            if names.iter().any(|n| n == "default") {
                return Err(OpError::Static(reply::DEFAULT_USER_FIXED));
            }
            if let Some(follower) = &conn.shared.follower {
                let change = serde_json::json!({"deluser": {"names": names}});
                let answer = forward_to_control(follower, &cache, change).await?;
                return Ok(Reply::Int(answer["deleted"].as_i64().unwrap_or(0)));
            }
            let deleted = names
                .iter()
                .filter(|n| cache.delete_user(n).is_ok())
                .count();
            Ok(Reply::Int(deleted as i64))
        }
        "help" => Ok(help_reply(&[
            "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories",
            "    when no category is specified.",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing the command.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
            "SETUSER <username> <attribs> ...",
            "    Create or modify a user with the specified attributes.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users.",
            "HELP",
            "    Print this help.",
        ])),
        _ => Err(OpError::Static(reply::NO_ACL_FILE)),
    }
}

/// The cache's users with what they may do, the default user first.
fn users(cache: &Cache) -> Vec<(String, std::sync::Arc<Access>)> {
    let mut all = vec![("default".to_string(), std::sync::Arc::new(Access::full()))];
    all.extend(
        cache
            .users()
            .into_iter()
            .map(|u| (u.name.clone(), u.access())),
    );
    all
}

fn access_of(cache: &Cache, name: &[u8]) -> Option<std::sync::Arc<Access>> {
    let name = std::str::from_utf8(name).ok()?;
    if name == "default" {
        return Some(std::sync::Arc::new(Access::full()));
    }
    cache.user(name).map(|u| u.access())
}

fn cat(category: Option<&Bytes>) -> Result<Reply, OpError> {
    let Some(category) = category else {
        return Ok(Reply::Array(
            CATEGORIES.iter().map(|c| Reply::bulk(*c)).collect(),
        ));
    };
    let name = String::from_utf8_lossy(category);
    let bit = acl::category_bit(&name)
        .ok_or_else(|| OpError::Text(format!("ERR Unknown category '{name}'")))?;
    let mut names = Vec::new();
    for spec in crate::cmd::table::resp_commands() {
        if spec.has(flags::CONTAINER) {
            let subs = SUBCOMMANDS.iter().filter(|(c, _)| *c == spec.name);
            for sub in subs.flat_map(|(_, subs)| subs.iter()) {
                if acl::categories(spec, Some(sub.as_bytes())) & bit != 0 {
                    names.push(Reply::bulk(format!("{}|{sub}", spec.name)));
                }
            }
        } else if acl::categories(spec, None) & bit != 0 {
            names.push(Reply::bulk(spec.name));
        }
    }
    Ok(Reply::Array(names))
}

fn log(cache: &Cache, arg: Option<&Bytes>) -> Result<Reply, OpError> {
    let count = match arg {
        None => 10,
        Some(a) if a.eq_ignore_ascii_case(b"RESET") => {
            cache.acl_log.reset();
            return Ok(Reply::ok());
        }
        Some(a) => match parse_i64(a) {
            Some(n) if n >= 0 => n as usize,
            _ => return Err(OpError::Static(reply::NOT_INTEGER)),
        },
    };
    let now = now_ms();
    let entries = cache
        .acl_log
        .entries(count)
        .into_iter()
        .map(|e| {
            Reply::Map(vec![
                (Reply::bulk("count"), Reply::Int(e.count as i64)),
                (Reply::bulk("reason"), Reply::bulk(e.reason.name())),
                (Reply::bulk("context"), Reply::bulk(e.context)),
                (Reply::bulk("object"), Reply::bulk(e.object)),
                (Reply::bulk("username"), Reply::bulk(e.username)),
                (
                    Reply::bulk("age-seconds"),
                    Reply::Double(now.saturating_sub(e.created_ms) as f64 / 1000.0),
                ),
                (Reply::bulk("client-info"), Reply::bulk(e.client_info)),
                (Reply::bulk("entry-id"), Reply::Int(e.entry_id as i64)),
                (
                    Reply::bulk("timestamp-created"),
                    Reply::Int(e.created_ms as i64),
                ),
                (
                    Reply::bulk("timestamp-last-updated"),
                    Reply::Int(e.updated_ms as i64),
                ),
            ])
        })
        .collect();
    Ok(Reply::Array(entries))
}

fn dryrun(cache: &Cache, args: &[Bytes]) -> Result<Reply, OpError> {
    let access = access_of(cache, &args[2]).ok_or_else(|| {
        OpError::Text(format!(
            "ERR User '{}' not found",
            String::from_utf8_lossy(&args[2])
        ))
    })?;
    let cmd = &args[3..];
    let spec = lookup(&cmd[0]).ok_or_else(|| {
        OpError::Text(format!(
            "ERR Command '{}' not found",
            String::from_utf8_lossy(&cmd[0])
        ))
    })?;
    if !spec.arity_ok(cmd.len()) {
        return Err(OpError::Text(reply::wrong_arity(spec.name)));
    }
    Ok(match access.check(spec, cmd) {
        Ok(()) => Reply::ok(),
        Err(acl::Denied::Command(name)) => Reply::bulk(format!(
            "User {} has no permissions to run the '{name}' command",
            String::from_utf8_lossy(&args[2])
        )),
        Err(acl::Denied::Key(i)) => Reply::bulk(format!(
            "User {} has no permissions to access the '{}' key",
            String::from_utf8_lossy(&args[2]),
            String::from_utf8_lossy(&cmd[i])
        )),
        Err(acl::Denied::Channel(i)) => Reply::bulk(format!(
            "User {} has no permissions to access the '{}' channel",
            String::from_utf8_lossy(&args[2]),
            String::from_utf8_lossy(&cmd[i])
        )),
    })
}

fn getuser(cache: &Cache, name: &[u8]) -> Reply {
    let Some(access) = access_of(cache, name) else {
        return Reply::Nil;
    };
    let (flags, passwords, keys, channels, commands) = access.parts();
    Reply::Map(vec![
        (
            Reply::bulk("flags"),
            Reply::Array(flags.into_iter().map(Reply::bulk).collect()),
        ),
        (
            Reply::bulk("passwords"),
            Reply::Array(passwords.into_iter().map(Reply::bulk).collect()),
        ),
        (Reply::bulk("commands"), Reply::bulk(commands)),
        (Reply::bulk("keys"), Reply::bulk(keys)),
        (Reply::bulk("channels"), Reply::bulk(channels)),
        (Reply::bulk("selectors"), Reply::Array(Vec::new())),
    ])
}

fn genpass(bits: Option<&Bytes>) -> Result<Reply, OpError> {
    let bits = match bits {
        None => 256,
        Some(b) => match parse_i64(b) {
            Some(n) if (1..=4096).contains(&n) => n as usize,
            _ => {
                return Err(OpError::Static(
                    "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096",
                ));
            }
        },
    };
    let chars = bits.div_ceil(4);
    let mut rng = rand::rng();
    let hex: String = (0..chars)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect();
    Ok(Reply::bulk(hex))
}
