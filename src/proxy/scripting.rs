//! The proxy's half of Lua scripting: the cache's script store.
//!
//! - [`prepare`], on the request path before a data command runs: `EVAL` and
//!   `EVAL_RO` store their body (as Redis does, so a later `EVALSHA` finds
//!   it); `EVALSHA` and `EVALSHA_RO` are resolved to the stored body, which
//!   replaces the SHA in the arguments, so the partition runs every script
//!   one way (`cmd::script::eval`, which always receives a body). An unknown
//!   SHA is answered `NOSCRIPT` without reaching a partition.
//!   `FCALL` and `FCALL_RO` are resolved the same way: the function's flags,
//!   its library's id and code are appended to the arguments
//!   (`cmd::script::functions::fcall` reads them); an unknown function is
//!   answered `ERR Function not found` without reaching a partition.
//! - [`script`]: `SCRIPT LOAD | EXISTS | FLUSH | KILL | HELP`; KILL stops
//!   the cache's running scripts (none that has written: `UNKILLABLE`).
//! - [`function`]: `FUNCTION LOAD | LIST | DELETE | FLUSH | DUMP | RESTORE |
//!   STATS | KILL | HELP` on the cache's library store. LOAD and RESTORE, in
//!   phases: (1) read the metadata line (and the payload) here; (2) run the
//!   libraries' code on the worker pool under the cache's worker permits,
//!   bounded by the load time limit, and charge its work; (3) add the
//!   libraries to the store, whole or not at all.
//!
//! The stores belong to the cache the connection is bound to: scripts and
//! libraries are never shared between caches.

use std::borrow::Cow;

use bytes::Bytes;

use super::code_store;
use super::subcommands::{help_reply, subcommand};
use crate::cmd::args::is;
use crate::cmd::script::functions::{self as lua_functions, flag};
use crate::cmd::{CommandSpec, Family, OpError};
use crate::control::Cache;
use crate::control::functions::{self as store, Library, RestorePolicy};
use crate::control::scripts::Origin;
use crate::glob::string_match;
use crate::meta::MetaStore;
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
        "fcall" | "fcall_ro" => {
            let f = cache
                .functions
                .resolve(&args[1])
                .ok_or(Reply::err(reply::FUNCTION_NOT_FOUND))?;
            let mut resolved = Vec::with_capacity(args.len() + 2);
            resolved.extend_from_slice(args);
            resolved.push(Bytes::from(format!("{} {}", f.flags, f.library_id)));
            resolved.push(f.body);
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

/// SCRIPT LOAD body | EXISTS sha... | FLUSH [ASYNC|SYNC] | KILL | HELP;
/// with `shared` (etcd), loaded scripts are shared with the cache's other
/// proxies ([`code_store`]).
pub async fn script(
    cache: &Cache,
    args: &[Bytes],
    shared: Option<&dyn MetaStore>,
) -> Result<Reply, OpError> {
    match subcommand("script", SCRIPT_SUBS, args)? {
        "load" => match cache.scripts.add(&args[2], Origin::Load) {
            Ok(sha) => {
                if let Some(store) = shared {
                    code_store::put_script(store, &cache.name, &sha, &args[2]).await;
                }
                Ok(Reply::bulk(sha))
            }
            Err(_) => Err(OpError::Static(reply::SCRIPT_STORE_FULL)),
        },
        "exists" => {
            let mut found = Vec::with_capacity(args.len() - 2);
            for sha in &args[2..] {
                let known = cache.scripts.contains(sha) || fetch_script(cache, sha, shared).await;
                found.push(Reply::Int(i64::from(known)));
            }
            Ok(Reply::Array(found))
        }
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
            if let Some(store) = shared {
                code_store::forget_scripts(store, &cache.name).await;
            }
            Ok(Reply::ok())
        }
        // Scripts also stop themselves at the time limit.
        "kill" => match cache.pool.kill_running(false).await {
            KillOutcome::NotBusy => Err(OpError::Static(reply::NOTBUSY)),
            KillOutcome::Unkillable => Err(OpError::Static(reply::UNKILLABLE)),
            KillOutcome::OtherKind => Err(OpError::Static(reply::BUSY_FUNCTION)),
            KillOutcome::Killed => Ok(Reply::ok()),
        },
        _ => Ok(help_reply(&[
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

/// Whether a script command may write, as CLIENT PAUSE WRITE decides it:
/// `EVAL_RO`, `EVALSHA_RO`, `FCALL_RO`, a script whose shebang declares
/// `no-writes` and a function flagged `no-writes` do not; other scripts
/// may; SCRIPT and FUNCTION subcommands write only if their row says so.
pub fn may_write(cache: &Cache, spec: &CommandSpec, args: &[Bytes]) -> bool {
    let Some(target) = args.get(1) else {
        return spec.has(crate::cmd::flags::WRITE);
    };
    match spec.name {
        "eval" => !crate::cmd::script::declares_no_writes(target),
        "evalsha" => cache
            .scripts
            .get(target)
            .is_none_or(|body| !crate::cmd::script::declares_no_writes(&body)),
        "fcall" => cache
            .functions
            .resolve(target)
            .is_none_or(|f| f.flags & flag::NO_WRITES == 0),
        _ => spec.has(crate::cmd::flags::WRITE),
    }
}

/// Whether a command may be refused at the storage maximum: not an
/// `FCALL` of a function flagged `allow-oom` or `no-writes` (Redis drops
/// `denyoom` for those).
pub fn denies_oom(cache: &Cache, spec: &CommandSpec, args: &[Bytes]) -> bool {
    if !spec.name.starts_with("fcall") || args.len() < 2 {
        return true;
    }
    cache
        .functions
        .resolve(&args[1])
        .is_none_or(|f| f.flags & (flag::ALLOW_OOM | flag::NO_WRITES) == 0)
}

const FUNCTION_SUBS: &[(&str, i32)] = &[
    ("load", -3),
    ("list", -2),
    ("delete", 3),
    ("flush", -2),
    ("dump", 2),
    ("restore", -3),
    ("stats", 2),
    ("kill", 2),
    ("help", 2),
];

/// Work of listing one library, milli-units (its bytes are metered as
/// transfer).
const LIST_WORK_MILLI: u64 = 1_000;

/// The server's script limits, as `FUNCTION` needs them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A script's time limit (a library's top-level code gets at most
    /// this, and at most Redis's 500 ms).
    pub script_time_limit: std::time::Duration,
    /// Redis's `busy-reply-threshold` (`FUNCTION STATS` answers `BUSY`
    /// while an `EVAL` script has run longer).
    pub busy_threshold: std::time::Duration,
}

/// What loading function libraries may take on `conn`.
pub fn limits(conn: &super::session::Connection) -> Limits {
    Limits {
        script_time_limit: conn.shared.script_time_limit,
        busy_threshold: conn.busy_threshold(),
    }
}

/// FUNCTION LOAD [REPLACE] code | LIST [WITHCODE] [LIBRARYNAME pattern] |
/// DELETE lib | FLUSH [ASYNC|SYNC] | DUMP | RESTORE payload
/// [FLUSH|APPEND|REPLACE] | STATS | KILL | HELP. `work` gets the
/// milli-units the command did (library code run, libraries listed).
pub async fn function(
    cache: &Cache,
    args: &[Bytes],
    limits: Limits,
    work: &mut u64,
    shared: Option<&dyn MetaStore>,
) -> Result<Reply, OpError> {
    let sub = subcommand("function", FUNCTION_SUBS, args)?;
    let reply = function_sub(cache, sub, args, limits, work).await?;
    // A change of the libraries: the cache's other proxies take it.
    if let Some(store) = shared
        && matches!(sub, "load" | "delete" | "flush" | "restore")
    {
        let libs = cache.functions.libraries();
        let dump = (!libs.is_empty()).then(|| store::dump(&libs));
        code_store::put_functions(store, &cache.name, dump).await;
    }
    Ok(reply)
}

/// Makes `cache`'s libraries those of `payload` (a `FUNCTION DUMP`
/// another proxy shared; `None`: none), running their code as `FUNCTION
/// RESTORE ... FLUSH` does; nothing if they are already.
pub async fn adopt(cache: &Cache, payload: Option<&[u8]>, limits: Limits) -> Result<(), String> {
    let Some(payload) = payload else {
        cache.functions.flush();
        return Ok(());
    };
    if store::dump(&cache.functions.libraries()) == payload {
        return Ok(());
    }
    let mut parsed = Vec::new();
    for code in store::parse_payload(payload)? {
        let md = lua_functions::parse_metadata(&code).map_err(|e| e.to_string())?;
        parsed.push((md, code));
    }
    let mut work = 0;
    let libs = load_libraries(cache, parsed, limits, &mut work)
        .await
        .map_err(|e| e.to_string())?;
    cache.functions.restore(libs, RestorePolicy::Flush)
}

/// Whether another proxy shared script `sha` of `cache` (it is kept here
/// then, as `SCRIPT LOAD` keeps it).
async fn fetch_script(cache: &Cache, sha: &[u8], shared: Option<&dyn MetaStore>) -> bool {
    let Some(store) = shared else {
        return false;
    };
    match code_store::get_script(store, &cache.name, sha).await {
        Some(body) => cache.scripts.add(&body, Origin::Load).is_ok(),
        None => false,
    }
}

/// Before [`prepare`]: a script (`EVALSHA`) or function (`FCALL`) this
/// proxy does not know is looked up among those the cache's other
/// proxies shared.
pub async fn fetch_missing(
    cache: &Cache,
    spec: &CommandSpec,
    args: &[Bytes],
    limits: Limits,
    shared: Option<&dyn MetaStore>,
) {
    let Some(store) = shared else {
        return;
    };
    if spec.family != Family::Scripting || args.len() < 2 {
        return;
    }
    match spec.name {
        "evalsha" | "evalsha_ro" if !cache.scripts.contains(&args[1]) => {
            fetch_script(cache, &args[1], shared).await;
        }
        "fcall" | "fcall_ro" if cache.functions.resolve(&args[1]).is_none() => {
            let payload = match store.get(&crate::meta::keys::functions(&cache.name)).await {
                Ok(Some(e)) => e.value,
                _ => return,
            };
            if let Err(e) = adopt(cache, Some(&payload), limits).await {
                tracing::warn!(cache = %cache.name, "shared libraries not taken: {e}");
            }
        }
        _ => {}
    }
}

/// One FUNCTION subcommand.
async fn function_sub(
    cache: &Cache,
    sub: &str,
    args: &[Bytes],
    limits: Limits,
    work: &mut u64,
) -> Result<Reply, OpError> {
    match sub {
        "load" => {
            let mut replace = false;
            let mut i = 2;
            while i < args.len() - 1 {
                if !is(&args[i], "REPLACE") {
                    return Err(OpError::Text(reply::function_load_option(&args[i])));
                }
                replace = true;
                i += 1;
            }
            let code = &args[args.len() - 1];
            // 1. The metadata line; a taken name without REPLACE runs nothing.
            let md = lua_functions::parse_metadata(code)?;
            if !replace && cache.functions.has_library(&md.name) {
                return Err(OpError::Text(reply::function_library_exists(&md.name)));
            }
            // 2. Run the code; 3. store the library.
            let lib = load_libraries(cache, vec![(md, code.clone())], limits, work).await?;
            let name = lib[0].name.clone();
            cache
                .functions
                .load(lib.into_iter().next().expect("one library"), replace)
                .map_err(OpError::Text)?;
            Ok(Reply::bulk(name))
        }
        "list" => {
            let mut with_code = false;
            let mut pattern: Option<&Bytes> = None;
            let mut i = 2;
            while i < args.len() {
                if !with_code && is(&args[i], "WITHCODE") {
                    with_code = true;
                } else if pattern.is_none() && is(&args[i], "LIBRARYNAME") {
                    if i + 1 >= args.len() {
                        return Err(OpError::Static(reply::FUNCTION_LIST_NO_NAME));
                    }
                    i += 1;
                    pattern = Some(&args[i]);
                } else {
                    return Err(OpError::Text(reply::function_list_argument(&args[i])));
                }
                i += 1;
            }
            let libs = cache.functions.libraries();
            let mut out = Vec::new();
            for lib in &libs {
                if pattern.is_some_and(|p| !string_match(p, lib.name.as_bytes(), true)) {
                    continue;
                }
                *work += LIST_WORK_MILLI;
                out.push(library_reply(lib, with_code));
            }
            Ok(Reply::Array(out))
        }
        "delete" => {
            if cache.functions.delete(&args[2]) {
                Ok(Reply::ok())
            } else {
                Err(OpError::Static(reply::FUNCTION_LIBRARY_NOT_FOUND))
            }
        }
        "flush" => {
            if args.len() > 3 {
                return Err(OpError::Text(reply::subcommand_syntax(
                    "function", &args[1],
                )));
            }
            if let Some(mode) = args.get(2)
                && !is(mode, "SYNC")
                && !is(mode, "ASYNC")
            {
                return Err(OpError::Static(reply::FUNCTION_FLUSH_OPTION));
            }
            cache.functions.flush();
            Ok(Reply::ok())
        }
        "dump" => {
            let libs = cache.functions.libraries();
            *work += LIST_WORK_MILLI * libs.len() as u64;
            Ok(Reply::bulk(store::dump(&libs)))
        }
        "restore" => {
            if args.len() > 4 {
                return Err(OpError::Text(reply::subcommand_syntax(
                    "function", &args[1],
                )));
            }
            let policy = match args.get(3) {
                None => RestorePolicy::Append,
                Some(p) if is(p, "APPEND") => RestorePolicy::Append,
                Some(p) if is(p, "REPLACE") => RestorePolicy::Replace,
                Some(p) if is(p, "FLUSH") => RestorePolicy::Flush,
                Some(_) => return Err(OpError::Static(reply::FUNCTION_RESTORE_POLICY)),
            };
            let codes = store::parse_payload(&args[2]).map_err(OpError::Text)?;
            // More libraries than a cache may keep: refused before any runs.
            if codes.len() > store::MAX_LIBRARIES {
                return Err(OpError::Text(reply::function_store_full(
                    store::MAX_LIBRARIES,
                    store::MAX_BYTES,
                )));
            }
            let mut parsed = Vec::with_capacity(codes.len());
            for code in codes {
                let md = lua_functions::parse_metadata(&code)?;
                // A payload naming a library twice fails as Redis's
                // loading of it does.
                if parsed
                    .iter()
                    .any(|(m, _): &(lua_functions::Metadata, Bytes)| m.name == md.name)
                {
                    return Err(OpError::Text(reply::function_library_exists(&md.name)));
                }
                parsed.push((md, code));
            }
            let libs = load_libraries(cache, parsed, limits, work).await?;
            // Two restored libraries must not register the same function.
            let mut seen = std::collections::HashSet::new();
            for f in libs.iter().flat_map(|l| &l.functions) {
                if !seen.insert(f.name.to_ascii_lowercase()) {
                    return Err(OpError::Text(reply::function_exists(&f.name)));
                }
            }
            cache
                .functions
                .restore(libs, policy)
                .map_err(OpError::Text)?;
            Ok(Reply::ok())
        }
        "stats" => {
            let running = match cache.pool.running_function(limits.busy_threshold) {
                Ok(Some((f, elapsed))) => Reply::Map(vec![
                    (Reply::bulk("name"), Reply::Bulk(f.name)),
                    (
                        Reply::bulk("command"),
                        Reply::Array(f.command.into_iter().map(Reply::Bulk).collect()),
                    ),
                    (
                        Reply::bulk("duration_ms"),
                        Reply::Int(elapsed.as_millis() as i64),
                    ),
                ]),
                Ok(None) => Reply::Nil,
                Err(_) => return Err(OpError::Static(reply::BUSY)),
            };
            let (libraries, functions) = cache.functions.counts();
            Ok(Reply::Map(vec![
                (Reply::bulk("running_script"), running),
                (
                    Reply::bulk("engines"),
                    Reply::Map(vec![(
                        Reply::bulk("LUA"),
                        Reply::Map(vec![
                            (Reply::bulk("libraries_count"), Reply::Int(libraries as i64)),
                            (Reply::bulk("functions_count"), Reply::Int(functions as i64)),
                        ]),
                    )]),
                ),
            ]))
        }
        "kill" => match cache.pool.kill_running(true).await {
            KillOutcome::NotBusy => Err(OpError::Static(reply::NOTBUSY)),
            KillOutcome::Unkillable => Err(OpError::Static(reply::UNKILLABLE)),
            KillOutcome::OtherKind => Err(OpError::Static(reply::BUSY)),
            KillOutcome::Killed => Ok(Reply::ok()),
        },
        _ => Ok(help_reply(FUNCTION_HELP)),
    }
}

/// Runs the libraries' code on the worker pool (one job for all) and
/// returns them ready for the store; `work` gets the milli-units the code
/// took.
async fn load_libraries(
    cache: &Cache,
    parsed: Vec<(lua_functions::Metadata, Bytes)>,
    limits: Limits,
    work: &mut u64,
) -> Result<Vec<Library>, OpError> {
    let limit = lua_functions::load_limit(limits.script_time_limit);
    if parsed.is_empty() {
        return Ok(Vec::new());
    }
    // All the libraries of one request share the scripts' time limit: a
    // RESTORE of many slow libraries is bounded as one script is.
    let total = limits.script_time_limit;
    let job = move || {
        let started = std::time::Instant::now();
        let mut done = Vec::with_capacity(parsed.len());
        let mut work = 0;
        for (md, code) in parsed {
            let id = store::next_id();
            let left = total.saturating_sub(started.elapsed());
            if left.is_zero() {
                let timeout = reply::function_register_error(reply::FUNCTION_LOAD_TIMEOUT);
                return (Err(timeout), work);
            }
            let (outcome, w) = lua_functions::load_library(id, &md.body, limit.min(left));
            work += w;
            match outcome {
                Ok(functions) => done.push(Library {
                    id,
                    name: md.name,
                    code,
                    body: md.body,
                    functions,
                }),
                Err(e) => return (Err(e), work),
            }
        }
        (Ok(done), work)
    };
    let Some((outcome, w)) = cache.pool.run_job(job).await else {
        return Err(OpError::Static(reply::SCRIPT_NO_INTERPRETER));
    };
    *work += w;
    outcome.map_err(OpError::Text)
}

/// One library as `FUNCTION LIST` shows it.
fn library_reply(lib: &Library, with_code: bool) -> Reply {
    let functions = lib
        .functions
        .iter()
        .map(|f| {
            Reply::Map(vec![
                (Reply::bulk("name"), Reply::bulk(f.name.clone())),
                (
                    Reply::bulk("description"),
                    f.description.clone().map_or(Reply::Nil, Reply::Bulk),
                ),
                (
                    Reply::bulk("flags"),
                    Reply::Set(
                        flag::NAMES
                            .iter()
                            .filter(|(bit, _)| f.flags & bit != 0)
                            .map(|(_, name)| Reply::status(name))
                            .collect(),
                    ),
                ),
            ])
        })
        .collect();
    let mut fields = vec![
        (Reply::bulk("library_name"), Reply::bulk(lib.name.clone())),
        (Reply::bulk("engine"), Reply::bulk("LUA")),
        (Reply::bulk("functions"), Reply::Array(functions)),
    ];
    if with_code {
        fields.push((Reply::bulk("library_code"), Reply::Bulk(lib.code.clone())));
    }
    Reply::Map(fields)
}

const FUNCTION_HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];
