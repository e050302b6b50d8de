//! The sandbox's string functions that do work in proportion to their
//! input: pattern matching (`string.find`, `match`, `gmatch`/`gfind`,
//! `gsub`) on the stoppable matcher of [`crate::cmd::lua_pattern`], and
//! `upper`, `lower`, `rep`, `reverse`, `sub`, `byte`, `char`, `format` and
//! `table.concat`, metered by the bytes they read and write; and
//! `setmetatable`, which refuses the sandbox's read-only tables with
//! Redis's error.
//!
//! They replace Lua's C functions one for one, installed directly in the
//! sandbox's `string` and `table` (no Lua wrapper: a Lua function in
//! between would change the position Lua puts in front of an error, and
//! what a tail call keeps). Each keeps Lua 5.1's semantics and error texts:
//! `user_script:3: bad argument #1 to 'find' (string expected, got nil)` —
//! the position is the calling Lua code's (`luaL_where(L, 1)`), the name how
//! the script called the function, a method call counts from `self`.
//! `format` runs Lua's own C `string.format` (its errors are renamed and
//! positioned the same way); the others are Rust.
//!
//! Errors. A Lua error raised from Rust would reach the script as an mlua
//! userdata, so errors are raised as [`Fault::Lua`] (the message) and the
//! sandbox's catch points (`pcall`, `xpcall`, `coroutine.resume`/`wrap`, the
//! run's handler) turn them back into the message string. What a `gsub`
//! replacement function raises is caught with Lua's `pcall` and raised again
//! unchanged: strings as [`Fault::Lua`], errors from the run (time limit,
//! memory) as they were, other values (Redis error tables) kept in
//! [`RunState::thrown`] and raised as [`Fault::Thrown`]. Only the line that
//! Redis reports (`on @user_script:N`) can differ: it is the `gsub` call's
//! line, not the replacement function's.
//!
//! Stopping: the matcher asks [`RunState::should_stop`] every few thousand
//! steps and raises [`Fault::Killed`] as the instruction hook does; the other
//! functions are bounded by the memory limit (their output is checked
//! against what is left before it is built) and check on each call.
//!
//! Metering: each call adds its matcher steps to [`RunState::steps`] and the
//! bytes it read and wrote to [`RunState::bytes`]; the run turns them into
//! work ([`super::STEP_WORK_MILLI_PER_1000`], [`super::KIB_WORK_MILLI`]).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mlua::{Function, Lua, LuaString, MultiValue, Table, Value};

use super::{Fault, MEMORY_LIMIT, RunState, Shared};
use crate::cmd::lua_pattern::{
    Capture, Error as PatternError, Matcher, find, find_plain, gmatch_next, gmatch_resume, gsub,
    is_plain, start_offset, strip_anchor,
};
use crate::resp::reply;

/// `LUAI_MAXCSTACK`: most values a C function may push (`string.byte`).
const MAX_C_STACK: usize = 8000;
/// Values `string.byte` pushes count as this many bytes each (a stack slot).
pub(super) const VALUE_BYTES: u64 = 16;

type Ret = mlua::Result<MultiValue>;
/// A single result: pushed as it is, no list to allocate.
type One = mlua::Result<Value>;

/// The functions that replace Lua's (a `concat` for `table`, the rest for
/// `string`). Reads Lua's own `string.format` and `pcall` from the globals:
/// call it before the prelude empties them.
pub(super) fn library(lua: &Lua, state: &Shared) -> mlua::Result<Table> {
    let globals = lua.globals();
    let c_format: Function = globals.get::<Table>("string")?.get("format")?;
    let c_pcall: Function = globals.get("pcall")?;
    // `t[k]` as Lua code (metamethods included), for gsub's table.
    let index: Function = lua
        .load("return function(t, k) return t[k] end")
        .set_name("=stratus")
        .eval()?;
    let c_concat: Function = globals.get::<Table>("table")?.get("concat")?;
    let t = lua.create_table()?;
    let add = |name: &str, f: Function| t.raw_set(name, f);
    let st = state.clone();
    add(
        "find",
        measured(lua, state, move |lua, args: MultiValue| {
            find_or_match(lua, &st, &args, true)
        })?,
    )?;
    let st = state.clone();
    add(
        "match",
        measured(lua, state, move |lua, args: MultiValue| {
            find_or_match(lua, &st, &args, false)
        })?,
    )?;
    let st = state.clone();
    let gmatch_fn = measured(lua, state, move |lua, args: MultiValue| {
        gmatch_iterator(lua, &st, &args)
    })?;
    add("gmatch", gmatch_fn.clone())?;
    add("gfind", gmatch_fn)?;
    let st = state.clone();
    add(
        "gsub",
        measured(lua, state, move |lua, args: MultiValue| {
            gsub_any(
                lua,
                &st,
                &args,
                &Protected {
                    c_pcall: &c_pcall,
                    index: &index,
                },
            )
        })?,
    )?;
    let st = state.clone();
    add(
        "upper",
        measured(lua, state, move |lua, args: MultiValue| {
            change_case(lua, &st, &args, true)
        })?,
    )?;
    let st = state.clone();
    add(
        "lower",
        measured(lua, state, move |lua, args: MultiValue| {
            change_case(lua, &st, &args, false)
        })?,
    )?;
    let st = state.clone();
    add(
        "reverse",
        measured(lua, state, move |lua, args: MultiValue| {
            reverse(lua, &st, &args)
        })?,
    )?;
    let st = state.clone();
    add(
        "rep",
        measured(lua, state, move |lua, args: MultiValue| {
            rep(lua, &st, &args)
        })?,
    )?;
    let st = state.clone();
    add(
        "sub",
        measured(lua, state, move |lua, args: MultiValue| {
            sub(lua, &st, &args)
        })?,
    )?;
    let st = state.clone();
    add(
        "byte",
        measured(lua, state, move |lua, args: MultiValue| {
            byte(lua, &st, &args)
        })?,
    )?;
    let st = state.clone();
    add(
        "char",
        measured(lua, state, move |lua, args: MultiValue| {
            char(lua, &st, &args)
        })?,
    )?;
    let st = state.clone();
    add(
        "format",
        measured(lua, state, move |lua, args: MultiValue| {
            format(lua, &st, &args, &c_format)
        })?,
    )?;
    let c_setmetatable: Function = globals.get("setmetatable")?;
    add(
        "setmetatable",
        lua.create_function(move |lua, args: MultiValue| {
            setmetatable(lua, &args, &c_setmetatable)
        })?,
    )?;
    let st = state.clone();
    add(
        "concat",
        measured(lua, state, move |lua, args: MultiValue| {
            concat(lua, &st, &args, &c_concat)
        })?,
    )?;
    Ok(t)
}

impl RunState {
    /// Whether the run must stop now: `SCRIPT KILL` was asked, or the time
    /// limit passed. Once true, stays true for the run.
    pub(super) fn should_stop(&mut self) -> bool {
        if !self.killed {
            if self
                .control
                .as_ref()
                .is_some_and(|c| c.kill.load(Ordering::Relaxed))
            {
                self.killed = true;
                self.by_user = true;
            } else if self
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
            {
                self.killed = true;
            }
        }
        self.killed
    }
}

// ---- Errors, as lauxlib raises them ----

/// `luaL_where(L, 1)`: `chunk:line: ` of the calling Lua code, empty when
/// the caller is not Lua code (`pcall(string.rep)`).
fn position(lua: &Lua) -> String {
    lua.inspect_stack(1, |d| match d.current_line() {
        Some(line) if line > 0 => {
            let src = d.source();
            format!("{}:{line}: ", src.short_src.as_deref().unwrap_or("?"))
        }
        _ => String::new(),
    })
    .unwrap_or_default()
}

/// `luaL_error`: the message with the caller's position.
pub(super) fn lua_error(lua: &Lua, msg: &str) -> mlua::Error {
    mlua::Error::external(Fault::Lua(format!("{}{msg}", position(lua))))
}

/// `luaL_argerror` for argument `narg` (1-based).
pub(super) fn arg_error(lua: &Lua, narg: usize, problem: &str) -> mlua::Error {
    let (name, method) = lua
        .inspect_stack(0, |d| {
            let n = d.names();
            (
                n.name.map(|s| s.into_owned()),
                n.name_what == Some("method"),
            )
        })
        .unwrap_or((None, false));
    let name = name.as_deref().unwrap_or("?");
    let msg = match (method, narg) {
        (true, 1) => reply::lua_bad_self(name, problem),
        (true, 0) => reply::lua_bad_argument_signed(-1, name, problem),
        (true, n) => reply::lua_bad_argument(n - 1, name, problem),
        (false, n) => reply::lua_bad_argument(n, name, problem),
    };
    lua_error(lua, &msg)
}

/// Lua 5.1's name of a value's type (`luaL_typename`); `no value` past the
/// last argument.
pub(super) fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

pub(super) fn type_error(lua: &Lua, args: &MultiValue, i: usize, expected: &str) -> mlua::Error {
    arg_error(
        lua,
        i + 1,
        &reply::lua_type_expected(expected, type_name(args.get(i))),
    )
}

fn pattern_error(lua: &Lua, e: PatternError) -> mlua::Error {
    match e {
        PatternError::Lua(msg) => lua_error(lua, msg),
        PatternError::Stopped => mlua::Error::external(Fault::Killed),
        PatternError::TooLarge => out_of_memory(),
    }
}

pub(super) fn out_of_memory() -> mlua::Error {
    mlua::Error::MemoryError("not enough memory".into())
}

// ---- Arguments, as lauxlib checks them (0-based `i`) ----

/// `luaL_checklstring`: a string, or a number as Lua prints it.
pub(super) fn check_string<'a>(
    lua: &Lua,
    args: &'a MultiValue,
    i: usize,
) -> mlua::Result<Cow<'a, LuaString>> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(Cow::Borrowed(s)),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => lua
            .coerce_string(v.clone())?
            .map(Cow::Owned)
            .ok_or_else(|| type_error(lua, args, i, "string")),
        _ => Err(type_error(lua, args, i, "string")),
    }
}

/// `luaL_checkinteger`: a number truncated toward zero, or a string that
/// reads as one.
pub(super) fn check_integer(lua: &Lua, args: &MultiValue, i: usize) -> mlua::Result<i64> {
    match args.get(i) {
        Some(Value::Integer(n)) => Ok(*n),
        Some(Value::Number(n)) => Ok(*n as i64),
        Some(v @ Value::String(_)) => match lua.coerce_number(v.clone())? {
            Some(n) => Ok(n as i64),
            None => Err(type_error(lua, args, i, "number")),
        },
        _ => Err(type_error(lua, args, i, "number")),
    }
}

/// `luaL_optinteger`: `default` for none or nil.
pub(super) fn opt_integer(
    lua: &Lua,
    args: &MultiValue,
    i: usize,
    default: i64,
) -> mlua::Result<i64> {
    match args.get(i) {
        None | Some(Value::Nil) => Ok(default),
        _ => check_integer(lua, args, i),
    }
}

/// `luaL_checknumber`: a number, or a string that reads as one.
pub(super) fn check_number(lua: &Lua, args: &MultiValue, i: usize) -> mlua::Result<f64> {
    match args.get(i) {
        Some(Value::Integer(n)) => Ok(*n as f64),
        Some(Value::Number(n)) => Ok(*n),
        Some(v @ Value::String(_)) => match lua.coerce_number(v.clone())? {
            Some(n) => Ok(n),
            None => Err(type_error(lua, args, i, "number")),
        },
        _ => Err(type_error(lua, args, i, "number")),
    }
}

/// `posrelat`: a 1-based position, negative from the end, never negative.
fn relative(pos: i64, len: usize) -> i64 {
    let pos = if pos < 0 { pos + len as i64 + 1 } else { pos };
    pos.max(0)
}

/// Lua's truth: anything but nil and false.
fn is_true(v: Option<&Value>) -> bool {
    !matches!(v, None | Some(Value::Nil | Value::Boolean(false)))
}

// ---- Metering ----

/// A library function whose calls on a big string start the run's CPU
/// measurement, if nothing has yet (see `RunState::lua_work`): a run of a
/// few instructions can spend milliseconds inside one such call, where no
/// instruction hook sees it.
fn measured<F, R>(lua: &Lua, state: &Shared, f: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, MultiValue) -> mlua::Result<R> + Send + 'static,
    R: mlua::IntoLuaMulti,
{
    let st = state.clone();
    lua.create_function(move |lua, args: MultiValue| {
        if super::MEASURE_CPU
            && args
                .iter()
                .any(|v| matches!(v, Value::String(s) if s.as_bytes().len() as u64 >= CLOCK_BYTES))
        {
            let mut s = st.lock();
            if s.cpu_start.is_none() {
                s.cpu_start = super::thread_cpu_time();
            }
        }
        f(lua, args)
    })
}

/// Counts a call and the bytes it read and wrote; stops the run here if it
/// must. Every function here calls it once per call that returns.
pub(super) fn charge(state: &Shared, bytes: u64) -> mlua::Result<()> {
    let mut s = state.lock();
    s.lib_calls += 1;
    s.bytes += bytes;
    // The clock is read every CLOCK_EVERY calls or after a large call; the
    // kill flag on each.
    let kill = s
        .control
        .as_ref()
        .is_some_and(|c| c.kill.load(Ordering::Relaxed));
    let stop = if kill || s.lib_calls.is_multiple_of(CLOCK_EVERY) || bytes >= CLOCK_BYTES {
        s.should_stop()
    } else {
        s.killed
    };
    if stop {
        return Err(mlua::Error::external(Fault::Killed));
    }
    Ok(())
}

/// Calls between two readings of the clock by [`charge`] (64 small calls
/// take well under a millisecond).
const CLOCK_EVERY: u64 = 64;
/// Bytes after which [`charge`] reads the clock whatever the call count.
const CLOCK_BYTES: u64 = 64 * 1024;

/// Room left under the memory limit for a result.
pub(super) fn room(lua: &Lua) -> usize {
    MEMORY_LIMIT.saturating_sub(lua.used_memory())
}

pub(super) fn string_result(lua: &Lua, bytes: &[u8]) -> One {
    Ok(Value::String(lua.create_string(bytes)?))
}

// ---- upper, lower, reverse, rep, sub, byte, char ----

/// `string.upper`/`string.lower` (C locale: ASCII letters only).
fn change_case(lua: &Lua, state: &Shared, args: &MultiValue, upper: bool) -> One {
    let s = check_string(lua, args, 0)?;
    let out = if upper {
        s.as_bytes().to_ascii_uppercase()
    } else {
        s.as_bytes().to_ascii_lowercase()
    };
    charge(state, 2 * out.len() as u64)?;
    string_result(lua, &out)
}

fn reverse(lua: &Lua, state: &Shared, args: &MultiValue) -> One {
    let s = check_string(lua, args, 0)?;
    let mut out = s.as_bytes().to_vec();
    out.reverse();
    charge(state, 2 * out.len() as u64)?;
    string_result(lua, &out)
}

/// `string.rep(s, n)` (Lua 5.1: no separator; `n` is a C int).
fn rep(lua: &Lua, state: &Shared, args: &MultiValue) -> One {
    let s = check_string(lua, args, 0)?;
    let n = check_integer(lua, args, 1)? as i32;
    let s = s.as_bytes();
    let n = usize::try_from(n).unwrap_or(0);
    let total = s.len().saturating_mul(n);
    if total > room(lua) {
        return Err(out_of_memory());
    }
    charge(state, 2 * total as u64)?;
    string_result(lua, &s.repeat(n))
}

/// `string.sub(s, i [, j])`.
fn sub(lua: &Lua, state: &Shared, args: &MultiValue) -> One {
    let s = check_string(lua, args, 0)?;
    let bytes = s.as_bytes();
    let len = bytes.len();
    let start = relative(check_integer(lua, args, 1)?, len).max(1);
    let end = relative(opt_integer(lua, args, 2, -1)?, len).min(len as i64);
    if start > end {
        charge(state, 0)?;
        return string_result(lua, b"");
    }
    let piece = &bytes[start as usize - 1..end as usize];
    charge(state, 2 * piece.len() as u64)?;
    string_result(lua, piece)
}

/// `string.byte(s [, i [, j]])`.
fn byte(lua: &Lua, state: &Shared, args: &MultiValue) -> Ret {
    let s = check_string(lua, args, 0)?;
    let bytes = s.as_bytes();
    let len = bytes.len();
    let posi = relative(opt_integer(lua, args, 1, 1)?, len);
    let pose = relative(opt_integer(lua, args, 2, posi)?, len).min(len as i64);
    let posi = posi.max(1);
    if posi > pose {
        charge(state, 0)?;
        return Ok(MultiValue::new());
    }
    let n = (pose - posi + 1) as usize;
    if n + args.len() > MAX_C_STACK {
        return Err(lua_error(lua, "stack overflow (string slice too long)"));
    }
    charge(state, n as u64 * (1 + VALUE_BYTES))?;
    Ok(bytes[posi as usize - 1..pose as usize]
        .iter()
        .map(|&b| Value::Integer(i64::from(b)))
        .collect())
}

/// `string.char(...)`: each argument a byte value.
fn char(lua: &Lua, state: &Shared, args: &MultiValue) -> One {
    let mut out = Vec::with_capacity(args.len());
    for i in 0..args.len() {
        let c = check_integer(lua, args, i)? as i32;
        match u8::try_from(c) {
            Ok(b) => out.push(b),
            Err(_) => return Err(arg_error(lua, i + 1, "invalid value")),
        }
    }
    charge(state, out.len() as u64 * (1 + VALUE_BYTES))?;
    string_result(lua, &out)
}

// ---- format, table.concat ----

/// `string.format`: Lua's own C function, its errors renamed and positioned
/// as if the script had called it.
fn format(lua: &Lua, state: &Shared, args: &MultiValue, c_format: &Function) -> One {
    let read: usize = args
        .iter()
        .map(|v| match v {
            Value::String(s) => s.as_bytes().len(),
            _ => 8,
        })
        .sum();
    match c_format.call::<LuaString>(args.clone()) {
        Ok(out) => {
            // Lua's buffer copies the output about twice more as it grows
            // (`format` of 1 MiB measured 0.55-0.65 GETs per KiB read and
            // written, three times `upper`'s).
            charge(state, (read + 3 * out.as_bytes().len()) as u64)?;
            Ok(Value::String(out))
        }
        Err(e) => Err(c_error(lua, e)),
    }
}

/// An error of a C library function called from here: it names the
/// function `?` and has no position (its caller was this Rust function).
fn c_error(lua: &Lua, e: mlua::Error) -> mlua::Error {
    let msg = match &e {
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => match &**cause {
            mlua::Error::RuntimeError(m) => m.clone(),
            _ => return e,
        },
        _ => return e,
    };
    // mlua's message handler appends a traceback.
    let msg = match msg.split_once("\nstack traceback:") {
        Some((msg, _)) => msg.to_string(),
        None => msg,
    };
    // "bad argument #N to '?' (problem)"
    if let Some(rest) = msg.strip_prefix("bad argument #")
        && let Some((n, rest)) = rest.split_once(" to '?' (")
        && let Ok(narg) = n.parse::<usize>()
        && let Some(problem) = rest.strip_suffix(')')
    {
        return arg_error(lua, narg, problem);
    }
    lua_error(lua, &msg)
}

/// `setmetatable(t, mt)`: Lua's own, except on the sandbox's read-only
/// tables (`_G`, `redis`, the libraries: their metatables say
/// `__sealed`), where it is Redis's readonly error (raised from C in Redis:
/// no position).
fn setmetatable(lua: &Lua, args: &MultiValue, c_setmetatable: &Function) -> Ret {
    if let Some(Value::Table(t)) = args.front()
        && let Some(mt) = t.metatable()
        && matches!(mt.raw_get::<Value>("__sealed"), Ok(Value::Boolean(true)))
    {
        return Err(mlua::Error::external(Fault::Lua(
            reply::LUA_READONLY_TABLE.to_string(),
        )));
    }
    c_setmetatable
        .call::<MultiValue>(args.clone())
        .map_err(|e| c_error(lua, e))
}

/// `table.concat(t [, sep [, i [, j]]])`: Lua's own C function (its
/// errors renamed and positioned as for `format`), charged for its output
/// and for each element it visits.
fn concat(lua: &Lua, state: &Shared, args: &MultiValue, c_concat: &Function) -> One {
    let elements = match args.front() {
        Some(Value::Table(t)) => {
            let first = opt_integer(lua, args, 2, 1).unwrap_or(1);
            let last = match args.get(3) {
                None | Some(Value::Nil) => t.raw_len() as i64,
                _ => check_integer(lua, args, 3).unwrap_or(0),
            };
            last.saturating_sub(first).saturating_add(1).max(0) as u64
        }
        _ => 0,
    };
    match c_concat.call::<LuaString>(args.clone()) {
        Ok(out) => {
            charge(
                state,
                2 * out.as_bytes().len() as u64 + elements * VALUE_BYTES,
            )?;
            Ok(Value::String(out))
        }
        Err(e) => Err(c_error(lua, e)),
    }
}

// ---- Pattern matching ----

/// Runs `f` with a matcher over `src` and `pat` that stops with the run,
/// then charges its steps.
fn with_matcher<T>(
    state: &Shared,
    src: &[u8],
    pat: &[u8],
    f: impl FnOnce(&mut Matcher<'_, &mut dyn FnMut() -> bool>) -> Result<T, PatternError>,
) -> Result<T, PatternError> {
    let mut stop = || state.lock().should_stop();
    let mut m = Matcher::new(src, pat, &mut stop as &mut dyn FnMut() -> bool);
    let out = f(&mut m);
    let steps = m.steps();
    drop(m);
    state.lock().steps += steps;
    out
}

/// A capture as a Lua value: the text, or the position as a number.
fn capture_value(lua: &Lua, src: &[u8], c: Capture) -> mlua::Result<Value> {
    Ok(match c {
        Capture::Text(a, b) => Value::String(lua.create_string(&src[a..b])?),
        Capture::Position(p) => Value::Integer(p as i64),
    })
}

/// Captures as values, after `first` values already in `out`; charges the
/// captured bytes.
fn push_captures(
    lua: &Lua,
    state: &Shared,
    src: &[u8],
    caps: Vec<Capture>,
    out: &mut Vec<Value>,
) -> mlua::Result<()> {
    let mut produced = 0;
    for c in caps {
        if let Capture::Text(a, b) = c {
            produced += b - a;
        }
        out.push(capture_value(lua, src, c)?);
    }
    charge(state, 2 * produced as u64)
}

/// `string.find(s, pattern [, init [, plain]])` and `string.match(s,
/// pattern [, init])` (`str_find_aux`).
fn find_or_match(lua: &Lua, state: &Shared, args: &MultiValue, is_find: bool) -> Ret {
    let s = check_string(lua, args, 0)?;
    let p = check_string(lua, args, 1)?;
    let src = s.as_bytes();
    let pat = p.as_bytes();
    let init = start_offset(opt_integer(lua, args, 2, 1)?, src.len());
    if is_find && (is_true(args.get(3)) || is_plain(&pat)) {
        let (at, scanned) = find_plain(&src, &pat, init);
        charge(state, scanned as u64)?;
        return Ok(match at {
            Some(at) => MultiValue::from_vec(vec![
                Value::Integer(at as i64 + 1),
                Value::Integer((at + pat.len()) as i64),
            ]),
            None => MultiValue::from_vec(vec![Value::Nil]),
        });
    }
    let (anchor, pat) = strip_anchor(&pat);
    let found = with_matcher(state, &src, pat, |m| {
        let Some((start, end)) = find(m, anchor, init)? else {
            return Ok(None);
        };
        Ok(Some((start, end, m.captures(start, end, !is_find)?)))
    })
    .map_err(|e| pattern_error(lua, e))?;
    let Some((start, end, caps)) = found else {
        charge(state, 0)?;
        return Ok(MultiValue::from_vec(vec![Value::Nil]));
    };
    let mut out = Vec::with_capacity(caps.len() + 2);
    if is_find {
        out.push(Value::Integer(start as i64 + 1));
        out.push(Value::Integer(end as i64));
    }
    push_captures(lua, state, &src, caps, &mut out)?;
    Ok(MultiValue::from_vec(out))
}

/// `string.gmatch(s, pattern)`: an iterator over the matches (no `^`
/// anchor in Lua 5.1's gmatch).
fn gmatch_iterator(lua: &Lua, state: &Shared, args: &MultiValue) -> One {
    let s = check_string(lua, args, 0)?.into_owned();
    let p = check_string(lua, args, 1)?.into_owned();
    charge(state, 0)?;
    let st = state.clone();
    let from = Arc::new(AtomicUsize::new(0));
    let next = lua.create_function(move |lua, _: MultiValue| {
        let src = s.as_bytes();
        let pat = p.as_bytes();
        let found = with_matcher(&st, &src, &pat, |m| {
            let Some((start, end)) = gmatch_next(m, from.load(Ordering::Relaxed))? else {
                return Ok(None);
            };
            Ok(Some((start, end, m.captures(start, end, true)?)))
        })
        .map_err(|e| pattern_error(lua, e))?;
        let Some((start, end, caps)) = found else {
            charge(&st, 0)?;
            return Ok(MultiValue::new());
        };
        from.store(gmatch_resume(start, end), Ordering::Relaxed);
        let mut out = Vec::with_capacity(caps.len());
        push_captures(lua, &st, &src, caps, &mut out)?;
        Ok(MultiValue::from_vec(out))
    })?;
    Ok(Value::Function(next))
}

/// `string.gsub(s, pattern, repl [, n])` (`str_gsub`): `repl` a string (or
/// number), a table or a function.
/// Lua's `pcall`, and a Lua function indexing a table, for [`gsub_calling`].
struct Protected<'a> {
    c_pcall: &'a Function,
    index: &'a Function,
}

fn gsub_any(lua: &Lua, state: &Shared, args: &MultiValue, protected: &Protected<'_>) -> Ret {
    let s = check_string(lua, args, 0)?;
    let p = check_string(lua, args, 1)?;
    let src = s.as_bytes();
    // luaL_optint: a C int.
    let max_n = i64::from(opt_integer(lua, args, 3, src.len() as i64 + 1)? as i32);
    let repl = match args.get(2) {
        Some(Value::String(r)) => Repl::Text(r.clone()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => match lua.coerce_string(v.clone())? {
            Some(r) => Repl::Text(r),
            None => return Err(arg_error(lua, 3, reply::LUA_GSUB_REPL_TYPE)),
        },
        Some(Value::Table(t)) => Repl::Table(t.clone()),
        Some(Value::Function(f)) => Repl::Function(f.clone()),
        _ => return Err(arg_error(lua, 3, reply::LUA_GSUB_REPL_TYPE)),
    };
    let pat = p.as_bytes();
    let (anchor, pat) = strip_anchor(&pat);
    let limit = room(lua);
    let mut out = Vec::new();
    let n = match repl {
        Repl::Text(r) => with_matcher(state, &src, pat, |m| {
            gsub(m, anchor, &r.as_bytes(), max_n, limit, &mut out)
        })
        .map_err(|e| pattern_error(lua, e))?,
        other => gsub_calling(
            lua, state, &src, pat, anchor, &other, max_n, limit, protected, &mut out,
        )?,
    };
    charge(state, (src.len() + out.len()) as u64)?;
    Ok(MultiValue::from_vec(vec![
        Value::String(lua.create_string(&out)?),
        Value::Integer(n),
    ]))
}

/// What `gsub` puts in place of a match.
enum Repl {
    Text(LuaString),
    Table(Table),
    Function(Function),
}

/// `gsub`'s loop (`str_gsub` with `add_value`) for a table or function
/// replacement, which runs Lua code for each match.
#[allow(clippy::too_many_arguments)]
fn gsub_calling(
    lua: &Lua,
    state: &Shared,
    src: &[u8],
    pat: &[u8],
    anchor: bool,
    repl: &Repl,
    max_n: i64,
    limit: usize,
    protected: &Protected<'_>,
    out: &mut Vec<u8>,
) -> mlua::Result<i64> {
    let mut at = 0;
    let mut n = 0;
    while n < max_n {
        // The next match (trying each position, as the loop of str_gsub
        // copies the bytes where none starts).
        let found = with_matcher(state, src, pat, |m| {
            let Some((start, end)) = find(m, anchor, at)? else {
                return Ok(None);
            };
            let first = match repl {
                Repl::Function(_) => m.captures(start, end, true)?,
                _ => vec![m.capture(0, start, end)?],
            };
            Ok(Some((start, end, first)))
        })
        .map_err(|e| pattern_error(lua, e))?;
        let Some((start, end, caps)) = found else {
            break;
        };
        out.extend_from_slice(&src[at..start]);
        n += 1;
        let mut values = Vec::with_capacity(caps.len());
        for c in caps {
            values.push(capture_value(lua, src, c)?);
        }
        // Each replacement crosses into Lua and back, like a library call.
        state.lock().lib_calls += 1;
        let value = match repl {
            Repl::Function(f) => call_protected(state, protected.c_pcall, f, values)?,
            Repl::Table(t) => {
                let key = values.into_iter().next().unwrap_or(Value::Nil);
                let args = vec![Value::Table(t.clone()), key];
                call_protected(state, protected.c_pcall, protected.index, args)?
            }
            Repl::Text(_) => Value::Nil,
        };
        match value {
            Value::Nil | Value::Boolean(false) => out.extend_from_slice(&src[start..end]),
            v @ (Value::String(_) | Value::Integer(_) | Value::Number(_)) => {
                if let Some(s) = lua.coerce_string(v)? {
                    out.extend_from_slice(&s.as_bytes());
                }
            }
            other => {
                return Err(lua_error(
                    lua,
                    &format!(
                        "{}{})",
                        reply::LUA_INVALID_REPLACEMENT,
                        type_name(Some(&other))
                    ),
                ));
            }
        }
        if end > start {
            at = end;
        } else if start < src.len() {
            out.push(src[start]);
            at = start + 1;
        } else {
            at = start;
            break;
        }
        if out.len() > limit {
            return Err(out_of_memory());
        }
        if anchor {
            break;
        }
    }
    out.extend_from_slice(&src[at..]);
    if out.len() > limit {
        return Err(out_of_memory());
    }
    Ok(n)
}

/// Calls a script's function through Lua's `pcall`: its first result, or
/// what it raised, raised again unchanged (see the module doc).
fn call_protected(
    state: &Shared,
    c_pcall: &Function,
    f: &Function,
    args: Vec<Value>,
) -> mlua::Result<Value> {
    let mut call = Vec::with_capacity(args.len() + 1);
    call.push(Value::Function(f.clone()));
    call.extend(args);
    let mut results = c_pcall
        .call::<MultiValue>(MultiValue::from_vec(call))?
        .into_iter();
    let ok = results.next();
    let value = results.next().unwrap_or(Value::Nil);
    if matches!(ok, Some(Value::Boolean(true))) {
        return Ok(value);
    }
    Err(match value {
        Value::Error(e) => *e,
        Value::String(s) if s.as_bytes().starts_with(b"not enough memory") => out_of_memory(),
        Value::String(s) => mlua::Error::external(Fault::Lua(s.to_string_lossy())),
        other => {
            let mut st = state.lock();
            st.thrown.push(other);
            mlua::Error::external(Fault::Thrown(st.thrown.len() - 1))
        }
    })
}
