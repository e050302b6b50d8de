//! Redis Functions on the Lua runtime: library metadata (the `#!lua
//! name=<lib>` first line), loading a library (`FUNCTION LOAD`, `FUNCTION
//! RESTORE`: its top-level code runs once and registers functions with
//! `redis.register_function`), and `FCALL` / `FCALL_RO`.
//!
//! The cache's library store is the proxy's (`control::functions`); this
//! module only runs code. The proxy resolves `FCALL name` to the function's
//! flags, its library's id and the library's code, appended to the
//! arguments (`fcall name numkeys key... arg... <flags id> <code>`), so the
//! partition runs every function one way, as `EVALSHA` gets its body.
//!
//! Loading, in phases ([`Runtime::library`]):
//! 1. **compile** the code after the metadata line (chunk `@user_function`,
//!    text only);
//! 2. **run** it with its own globals table whose lookups reach only the
//!    loading API (`redis.register_function`, `redis.log`, the `LOG_*` and
//!    version constants, as Redis 7.0), under a time limit of
//!    [`LOAD_TIME_LIMIT`] (Redis's `FUNCTION LOAD timeout`) and the state's
//!    memory limit, metered as scripts are;
//! 3. **collect** the registered functions (at least one) and keep the
//!    loaded library on this thread, by library id (at most
//!    [`LIBRARY_CACHE`] libraries and [`LIBRARY_CACHE_BYTES`] of code; a
//!    thread that has not seen a library loads it on its first `FCALL`).
//!
//! A function runs as an `EVAL` script does (same deadline, `FUNCTION
//! KILL`, metering, key rules), with its keys and arguments as parameters:
//! its library's globals reach this run's environment (`redis.call`,
//! `string`, ...) while it runs, and there are no `KEYS` and `ARGV`.
//! Library ids are unique per load in the process, so a library's Lua
//! state (its top-level locals) is never shared between caches; like a
//! script's compiled body it is per worker thread, so functions must not
//! rely on top-level locals persisting between calls.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mlua::chunk::ChunkMode;
use mlua::{Function, Lua, MultiValue, Table, Value};

use super::{
    Body, FUNCTION_CHUNK, Fault, GC_ABOVE, MEMORY_LIMIT, RUN_WORK_MILLI, RUNTIME, Ran, RunState,
    Runtime, Script, Shared, find_fault, innermost, is_memory,
};
use crate::cmd::args::parse_i64;
use crate::cmd::{Ctx, OpError};
use crate::partition::key_slot;
use crate::resp::{Reply, reply};

/// Longest a library's top-level code may run (Redis 7.0's
/// `LOAD_TIMEOUT_MS`).
pub const LOAD_TIME_LIMIT: Duration = Duration::from_millis(500);
/// Loaded libraries kept per thread (cleared when full)...
pub const LIBRARY_CACHE: usize = 64;
/// ... and their code's bytes: the interpreter is shared by every cache
/// on the thread, so one cache's libraries must not fill its memory.
pub const LIBRARY_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Function flags (`redis.register_function{..., flags = {...}}`).
pub mod flag {
    pub const NO_WRITES: u8 = 1 << 0;
    pub const ALLOW_OOM: u8 = 1 << 1;
    pub const ALLOW_STALE: u8 = 1 << 2;
    pub const NO_CLUSTER: u8 = 1 << 3;
    pub const ALLOW_CROSS_SLOT_KEYS: u8 = 1 << 4;
    /// Names in Redis's order (`FUNCTION LIST` shows them so).
    pub const NAMES: [(u8, &str); 5] = [
        (NO_WRITES, "no-writes"),
        (ALLOW_OOM, "allow-oom"),
        (ALLOW_STALE, "allow-stale"),
        (NO_CLUSTER, "no-cluster"),
        (ALLOW_CROSS_SLOT_KEYS, "allow-cross-slot-keys"),
    ];
}

/// A function as `FUNCTION LIST` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionMeta {
    pub name: String,
    pub description: Option<Bytes>,
    pub flags: u8,
}

/// A function registered by the loading library.
pub(super) struct Registered {
    meta: FunctionMeta,
    callback: Function,
}

/// A library loaded on this thread.
pub(super) struct Loaded {
    /// The metatable of the library's globals.
    mt: Table,
    functions: Vec<(FunctionMeta, Function)>,
}

/// A library's metadata line and code.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub name: String,
    /// The code after the metadata line, from its newline on (so Lua's
    /// line numbers count the metadata line, as in Redis).
    pub body: Bytes,
}

/// Whether `name` is a valid library or function name: one or more of
/// `[a-zA-Z0-9_]`.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Reads the `#!<engine> name=<lib>` first line of a library's code.
pub fn parse_metadata(code: &Bytes) -> Result<Metadata, OpError> {
    if !code.starts_with(b"#!") {
        return Err(OpError::Static(reply::FUNCTION_MISSING_METADATA));
    }
    let Some(end) = memchr::memchr(b'\n', code) else {
        return Err(OpError::Static(reply::FUNCTION_INVALID_METADATA));
    };
    let Some(parts) = split_args(&code[..end]) else {
        return Err(OpError::Static(reply::FUNCTION_INVALID_METADATA));
    };
    let Some((engine, options)) = parts.split_first() else {
        return Err(OpError::Static(reply::FUNCTION_INVALID_METADATA));
    };
    let engine = &engine[2..];
    let mut name = None;
    for part in options {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(OpError::Static(reply::FUNCTION_NAME_TWICE));
            }
            name = Some(&part[5..]);
            continue;
        }
        return Err(OpError::Text(reply::function_metadata_value(part)));
    }
    let Some(name) = name else {
        return Err(OpError::Static(reply::FUNCTION_NO_LIBRARY_NAME));
    };
    if !valid_name(name) {
        return Err(OpError::Static(reply::FUNCTION_BAD_NAME));
    }
    if !engine.eq_ignore_ascii_case(b"lua") {
        return Err(OpError::Text(reply::function_engine(engine)));
    }
    Ok(Metadata {
        name: String::from_utf8_lossy(name).into_owned(),
        body: code.slice(end..),
    })
}

/// Splits a line into arguments as Redis's `sdssplitargs`: blanks separate,
/// `"..."` (with `\` escapes) and `'...'` quote; `None` for unbalanced
/// quotes or a closing quote not followed by a blank.
fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut dq, mut sq) = (false, false);
        loop {
            let c = line.get(i).copied();
            if dq {
                match c {
                    None => return None,
                    Some(b'\\') if i + 1 < line.len() => {
                        i += 1;
                        cur.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        if line.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(c) => cur.push(c),
                }
            } else if sq {
                match c {
                    None => return None,
                    Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                        i += 1;
                        cur.push(b'\'');
                    }
                    Some(b'\'') => {
                        if line.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(c) => cur.push(c),
                }
            } else {
                match c {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => dq = true,
                    Some(b'\'') => sq = true,
                    Some(c) => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

/// The `redis` table a library's top-level code sees.
pub(super) fn loading_library(lua: &Lua, state: &Shared, redis: &Table) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let st = state.clone();
    t.raw_set(
        "register_function",
        lua.create_function(move |lua, args: MultiValue| register(lua, &st, args))?,
    )?;
    for k in [
        "log",
        "LOG_DEBUG",
        "LOG_VERBOSE",
        "LOG_NOTICE",
        "LOG_WARNING",
        "REDIS_VERSION",
        "REDIS_VERSION_NUM",
    ] {
        t.raw_set(k, redis.raw_get::<Value>(k)?)?;
    }
    Ok(t)
}

fn fail<T>(msg: &str) -> mlua::Result<T> {
    Err(mlua::Error::external(Fault::Reply(msg.to_string())))
}

/// A Lua string or number as bytes (`lua_isstring`), else `None`.
fn string_of(lua: &Lua, v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(_) | Value::Number(_) => lua
            .coerce_string(v.clone())
            .ok()
            .flatten()
            .map(|s| s.as_bytes().to_vec()),
        _ => None,
    }
}

/// `redis.register_function(name, callback)` or
/// `redis.register_function{function_name=, callback=, flags=, description=}`.
fn register(lua: &Lua, st: &Shared, args: MultiValue) -> mlua::Result<()> {
    if !st.lock().loading {
        return fail(reply::REGISTER_ONLY_ON_LOAD);
    }
    let args: Vec<Value> = args.into_iter().collect();
    let (name, description, callback, flags) = match args.as_slice() {
        [one] => named_args(lua, one)?,
        [name, callback] => {
            let Some(name) = string_of(lua, name) else {
                return fail(reply::REGISTER_FIRST_NOT_STRING);
            };
            let Value::Function(callback) = callback else {
                return fail(reply::REGISTER_SECOND_NOT_FUNCTION);
            };
            (name, None, callback.clone(), 0)
        }
        _ => return fail(reply::REGISTER_ARGS),
    };
    if !valid_name(&name) {
        return fail(reply::FUNCTION_BAD_NAME);
    }
    let name = String::from_utf8_lossy(&name).into_owned();
    let mut s = st.lock();
    if s.registered.iter().any(|r| r.meta.name == name) {
        return fail(reply::REGISTER_DUPLICATE);
    }
    s.registered.push(Registered {
        meta: FunctionMeta {
            name,
            description,
            flags,
        },
        callback,
    });
    Ok(())
}

type Named = (Vec<u8>, Option<Bytes>, Function, u8);

fn named_args(lua: &Lua, arg: &Value) -> mlua::Result<Named> {
    let Value::Table(t) = arg else {
        return fail(reply::REGISTER_SINGLE_ARG);
    };
    let (mut name, mut description, mut callback, mut flags) = (None, None, None, 0u8);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, v) = pair?;
        let Some(key) = string_of(lua, &k) else {
            return fail(reply::REGISTER_KEY_NOT_STRING);
        };
        if key.eq_ignore_ascii_case(b"function_name") {
            let Some(n) = string_of(lua, &v) else {
                return fail(reply::REGISTER_NAME_NOT_STRING);
            };
            name = Some(n);
        } else if key.eq_ignore_ascii_case(b"description") {
            let Some(d) = string_of(lua, &v) else {
                return fail(reply::REGISTER_DESC_NOT_STRING);
            };
            description = Some(Bytes::from(d));
        } else if key.eq_ignore_ascii_case(b"callback") {
            let Value::Function(f) = v else {
                return fail(reply::REGISTER_CALLBACK_NOT_FUNCTION);
            };
            callback = Some(f);
        } else if key.eq_ignore_ascii_case(b"flags") {
            let Value::Table(list) = v else {
                return fail(reply::REGISTER_FLAGS_NOT_TABLE);
            };
            flags = read_flags(lua, &list)?;
        } else {
            return fail(reply::REGISTER_UNKNOWN_ARG);
        }
    }
    let Some(name) = name else {
        return fail(reply::REGISTER_NO_NAME);
    };
    let Some(callback) = callback else {
        return fail(reply::REGISTER_NO_CALLBACK);
    };
    Ok((name, description, callback, flags))
}

/// The flags of a `flags = {...}` list (names in any case).
fn read_flags(lua: &Lua, list: &Table) -> mlua::Result<u8> {
    let mut flags = 0;
    for i in 1.. {
        let v: Value = list.raw_get(i)?;
        if v.is_nil() {
            break;
        }
        let Some(name) = string_of(lua, &v) else {
            return fail(reply::REGISTER_UNKNOWN_FLAG);
        };
        match flag::NAMES
            .iter()
            .find(|(_, n)| name.eq_ignore_ascii_case(n.as_bytes()))
        {
            Some((bit, _)) => flags |= bit,
            None => return fail(reply::REGISTER_UNKNOWN_FLAG),
        }
    }
    Ok(flags)
}

/// Why a library did not load, whether the interpreter may be reused, and
/// the work its code took until it failed (milli-units).
struct LoadFailed {
    msg: String,
    keep: bool,
    work: u64,
}

impl Runtime {
    /// The library `id` with code `body`, loaded on this thread (phases in
    /// the module doc), and the work its loading took (0 if it was loaded
    /// already).
    fn library(
        &self,
        id: u64,
        body: &[u8],
        limit: Duration,
    ) -> Result<(Rc<Loaded>, u64), LoadFailed> {
        if let Some(l) = self.libraries.borrow().get(&id) {
            return Ok((l.clone(), 0));
        }
        // 1. Compile.
        let compiled = self
            .lua
            .load(body)
            .set_name(format!("@{FUNCTION_CHUNK}"))
            .set_mode(ChunkMode::Text)
            .into_function();
        let f = match compiled {
            Ok(f) => f,
            Err(mlua::Error::MemoryError(_)) => {
                return Err(LoadFailed {
                    msg: reply::script_out_of_memory(MEMORY_LIMIT),
                    keep: false,
                    work: RUN_WORK_MILLI,
                });
            }
            Err(mlua::Error::SyntaxError { message, .. }) => {
                return Err(LoadFailed {
                    msg: reply::function_compile_error(&message),
                    keep: true,
                    work: RUN_WORK_MILLI,
                });
            }
            Err(e) => {
                return Err(LoadFailed {
                    msg: reply::function_compile_error(&e.to_string()),
                    keep: true,
                    work: RUN_WORK_MILLI,
                });
            }
        };
        // 2. Run the top-level code.
        *self.state.lock() = RunState {
            deadline: Some(Instant::now() + limit),
            limit,
            chunk: FUNCTION_CHUNK,
            loading: true,
            ..RunState::default()
        };
        let outcome: mlua::Result<(bool, Table)> = self.load_lib.call((f, self.handler.clone()));
        let mut st = self.state.lock();
        let work = RUN_WORK_MILLI + st.lua_work(0);
        let stopped = st.stop_message();
        st.loading = false;
        st.deadline = None;
        let registered = std::mem::take(&mut st.registered);
        let killed = st.killed;
        let fault = st.fault.take();
        drop(st);
        let failed = |msg: String, keep: bool| Err(LoadFailed { msg, keep, work });
        // 3. Collect.
        let mt = match outcome {
            Ok((true, mt)) => mt,
            Ok((false, _)) if killed => {
                return failed(reply::function_register_error(&stopped), false);
            }
            Ok((false, _)) => {
                let msg = fault.map_or_else(|| "ERR unknown error".to_string(), |(m, _)| m);
                if msg.starts_with("ERR Script used too much memory") {
                    return failed(msg, false);
                }
                return failed(reply::function_register_error(&msg), true);
            }
            Err(e) if killed || matches!(find_fault(&e), Some(Fault::Killed)) => {
                return failed(reply::function_register_error(&stopped), false);
            }
            Err(e) if is_memory(&e) => {
                return failed(reply::script_out_of_memory(MEMORY_LIMIT), false);
            }
            Err(e) => {
                let msg = format!("ERR {}", innermost(&e));
                return failed(reply::function_register_error(&msg), true);
            }
        };
        if registered.is_empty() {
            return failed(reply::FUNCTION_NO_FUNCTIONS.to_string(), true);
        }
        if self.lua.used_memory() > GC_ABOVE {
            let _ = self.lua.gc_collect();
        }
        let loaded = Rc::new(Loaded {
            mt,
            functions: registered
                .into_iter()
                .map(|r| (r.meta, r.callback))
                .collect(),
        });
        let mut cache = self.libraries.borrow_mut();
        let bytes = self.library_bytes.get() + body.len();
        if cache.len() >= LIBRARY_CACHE || bytes > LIBRARY_CACHE_BYTES {
            cache.clear();
            self.library_bytes.set(body.len());
        } else {
            self.library_bytes.set(bytes);
        }
        cache.insert(id, loaded.clone());
        Ok((loaded, work))
    }
}

/// The time limit of a library's top-level code: Redis's
/// [`LOAD_TIME_LIMIT`], or the scripts' time limit if that is shorter.
pub fn load_limit(script_time_limit: Duration) -> Duration {
    LOAD_TIME_LIMIT.min(script_time_limit)
}

/// Loads a library's code (after its metadata line) on this thread's
/// interpreter, its top-level code stopped after `limit`: its functions and
/// the work it took (milli-units), or the error text. `FUNCTION LOAD` and
/// `FUNCTION RESTORE` run this on the worker pool.
pub fn load_library(
    id: u64,
    body: &[u8],
    limit: Duration,
) -> (Result<Vec<FunctionMeta>, String>, u64) {
    let Some(rt) = RUNTIME
        .with(|r| r.borrow_mut().take())
        .or_else(|| Runtime::new().ok())
    else {
        return (Err(reply::SCRIPT_NO_INTERPRETER.to_string()), 0);
    };
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.library(id, body, limit)));
    match outcome {
        Ok(Ok((lib, work))) => {
            RUNTIME.with(|r| *r.borrow_mut() = Some(rt));
            let metas = lib.functions.iter().map(|(m, _)| m.clone()).collect();
            (Ok(metas), work.max(RUN_WORK_MILLI))
        }
        Ok(Err(LoadFailed { msg, keep, work })) => {
            if keep {
                RUNTIME.with(|r| *r.borrow_mut() = Some(rt));
            }
            (Err(msg), work.max(RUN_WORK_MILLI))
        }
        Err(_) => (
            Err(reply::SCRIPT_NO_INTERPRETER.to_string()),
            RUN_WORK_MILLI,
        ),
    }
}

/// FCALL / FCALL_RO function numkeys key... arg..., with `<flags id>` and
/// the library's code appended by the proxy.
pub fn fcall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    // 1. Parse: what the proxy appended, then Redis's checks in its order.
    let n = args.len();
    let resolved = (n >= 5)
        .then(|| std::str::from_utf8(&args[n - 2]).ok())
        .flatten()
        .and_then(|m| m.split_once(' '))
        .and_then(|(f, id)| Some((f.parse::<u8>().ok()?, id.parse::<u64>().ok()?)));
    let Some((flags, id)) = resolved else {
        return Err(OpError::Static(reply::FUNCTION_NOT_FOUND));
    };
    let body = &args[n - 1];
    let args = &args[..n - 2];
    let numkeys = parse_i64(&args[2]).ok_or(OpError::Static(reply::FUNCTION_BAD_NUMKEYS))?;
    let rest = &args[3..];
    if numkeys > rest.len() as i64 {
        return Err(OpError::Static(reply::NUMKEYS_TOO_MANY));
    }
    if numkeys < 0 {
        return Err(OpError::Static(reply::NUMKEYS_NEGATIVE));
    }
    let ro_command = args[0].len() > 3 && args[0][args[0].len() - 3..].eq_ignore_ascii_case(b"_ro");
    let no_writes = flags & flag::NO_WRITES != 0;
    if ro_command && !no_writes {
        return Err(OpError::Static(reply::FUNCTION_RO_WITH_WRITE_FLAG));
    }
    if flags & flag::NO_CLUSTER != 0 && !ctx.cluster_mode.spans_slots() {
        return Err(OpError::Static(reply::SCRIPT_NO_CLUSTER));
    }
    let (keys, argv) = rest.split_at(numkeys as usize);
    let slot = keys.first().map(|k| key_slot(k));
    if let Some(first) = slot
        && keys
            .iter()
            .any(|k| !ctx.cluster_mode.together(first, key_slot(k)))
    {
        return Err(OpError::Static(reply::CROSSSLOT));
    }
    let script = Script {
        sha: String::from_utf8_lossy(&args[1]).into_owned(),
        read_only: ro_command || no_writes,
        slot,
        chunk: FUNCTION_CHUNK,
    };
    // 2–5. Run on this thread's interpreter.
    let Some(rt) = RUNTIME
        .with(|r| r.borrow_mut().take())
        .or_else(|| Runtime::new().ok())
    else {
        return Err(OpError::Static(reply::SCRIPT_NO_INTERPRETER));
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_function(&rt, ctx, &script, id, body, keys, argv)
    }));
    match outcome {
        Ok(Ran { reply, keep }) => {
            if keep {
                RUNTIME.with(|r| *r.borrow_mut() = Some(rt));
            }
            reply
        }
        Err(_) => Err(OpError::Static(reply::SCRIPT_NO_INTERPRETER)),
    }
}

fn run_function(
    rt: &Runtime,
    ctx: &mut Ctx<'_>,
    script: &Script,
    id: u64,
    body: &[u8],
    keys: &[Bytes],
    argv: &[Bytes],
) -> Ran {
    let (lib, work) = match rt.library(id, body, load_limit(ctx.script_time_limit)) {
        Ok(l) => l,
        Err(LoadFailed { msg, keep, work }) => {
            ctx.work += work;
            return Ran {
                reply: Err(OpError::Text(msg)),
                keep,
            };
        }
    };
    ctx.work += work;
    // Function names are case-insensitive; errors name the function as it
    // was registered.
    let Some((meta, f)) = lib
        .functions
        .iter()
        .find(|(m, _)| m.name.eq_ignore_ascii_case(&script.sha))
    else {
        return Ran {
            reply: Err(OpError::Static(reply::FUNCTION_NOT_FOUND)),
            keep: true,
        };
    };
    let body = Body::Function {
        f: f.clone(),
        mt: lib.mt.clone(),
    };
    let script = Script {
        sha: meta.name.clone(),
        read_only: script.read_only,
        slot: script.slot,
        chunk: script.chunk,
    };
    rt.run_body(ctx, &script, body, keys, argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(code: &str) -> Result<(String, String), String> {
        parse_metadata(&Bytes::copy_from_slice(code.as_bytes()))
            .map(|m| (m.name, String::from_utf8_lossy(&m.body).into_owned()))
            .map_err(|e| match e {
                OpError::Static(s) => s.to_string(),
                OpError::Text(s) => s,
                other => format!("{other:?}"),
            })
    }

    #[test]
    fn metadata_lines_as_redis_reads_them() {
        assert_eq!(
            meta("#!lua name=mylib\nreturn 1"),
            Ok(("mylib".into(), "\nreturn 1".into()))
        );
        assert_eq!(meta("#!LUA NAME=up\nx"), Ok(("up".into(), "\nx".into())));
        assert_eq!(
            meta("#!lua  name=\"q\"  \nx"),
            Ok(("q".into(), "\nx".into()))
        );
        assert_eq!(
            meta("return 1"),
            Err(reply::FUNCTION_MISSING_METADATA.into())
        );
        assert_eq!(
            meta("#!lua name=a"),
            Err(reply::FUNCTION_INVALID_METADATA.into())
        );
        assert_eq!(
            meta("#!lua name=\"a\nx"),
            Err(reply::FUNCTION_INVALID_METADATA.into())
        );
        assert_eq!(
            meta("#!lua\nx"),
            Err(reply::FUNCTION_NO_LIBRARY_NAME.into())
        );
        assert_eq!(
            meta("#!lua name=a name=b\nx"),
            Err(reply::FUNCTION_NAME_TWICE.into())
        );
        assert_eq!(
            meta("#!lua name=a foo=b\nx"),
            Err("ERR Invalid metadata value given: foo=b".into())
        );
        assert_eq!(
            meta("#!lua name=a-b\nx"),
            Err(reply::FUNCTION_BAD_NAME.into())
        );
        assert_eq!(meta("#!lua name=\nx"), Err(reply::FUNCTION_BAD_NAME.into()));
        assert_eq!(
            meta("#!js name=a\nx"),
            Err("ERR Engine 'js' not found".into())
        );
    }
}
