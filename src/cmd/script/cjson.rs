//! The sandbox's `cjson` library (Redis 7.0's lua-cjson 2.1.0): `encode`,
//! `decode`, the settings `encode_sparse_array`, `encode_max_depth`,
//! `decode_max_depth`, `encode_number_precision`, `encode_keep_buffer`,
//! `encode_invalid_numbers`, `decode_invalid_numbers`, and `cjson.null`
//! (a NULL light userdata, as in C).
//!
//! Output and errors follow `deps/lua/src/lua_cjson.c`: numbers as
//! `%.14g` (or the precision set), `/` written `\/`, control bytes and DEL
//! as `\u00XX`, object keys in Lua's table order, arrays for tables whose
//! keys are 1..n (holes as `null`, too sparse ones an error), and the
//! decoder's `Expected <what> but found <token> at character <n>`. Every
//! error carries the calling script's position, as `luaL_error` does.
//!
//! Differences, for the shared interpreter: the settings last for the run
//! (in Redis they last until the next `SCRIPT FLUSH`, shared by every
//! script; here the interpreter serves several caches); nesting stops at
//! [`MAX_DEPTH`] whatever the setting (the encoder and decoder recurse on
//! the thread's stack; C stops near the same depth on Lua's stack limit);
//! `cjson.new` and `cjson.safe` are not provided.
//!
//! Metering and limits: a call is charged as a string function (see
//! [`super::strings`]) for the bytes it reads and writes plus
//! [`VALUE_BYTES`] per value it visits; it checks the run's time budget
//! every [`CHECK_EVERY`] values, and the encoder's output never grows past
//! the room left under the state's memory limit (the decoder's tables are
//! Lua's, under that limit already).

use mlua::{Lua, MultiValue, Table, Value};

use super::strings::{
    VALUE_BYTES, arg_error, charge, check_integer, check_string, lua_error, out_of_memory, room,
    type_name,
};
use super::{Fault, Shared};
use crate::resp::reply;

/// Deepest nesting encoded or decoded, whatever `encode_max_depth` and
/// `decode_max_depth` say (their default, and Redis's own).
pub const MAX_DEPTH: usize = 1000;
/// Values visited between two checks of the run's time budget.
pub const CHECK_EVERY: u64 = 1024;

/// The settings of one run (`json_config_t`'s defaults).
#[derive(Debug, Clone)]
pub(super) struct Config {
    sparse_convert: u8,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0 off, 1 on, 2 null.
    encode_invalid_numbers: u8,
    decode_invalid_numbers: u8,
    keep_buffer: u8,
    precision: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sparse_convert: 0,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: 1,
            keep_buffer: 1,
            precision: 14,
        }
    }
}

/// The `cjson` table.
pub(super) fn library(lua: &Lua, state: &Shared) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let st = state.clone();
    t.raw_set(
        "encode",
        lua.create_function(move |lua, args: MultiValue| encode(lua, &st, &args))?,
    )?;
    let st = state.clone();
    t.raw_set(
        "decode",
        lua.create_function(move |lua, args: MultiValue| decode(lua, &st, &args))?,
    )?;
    let st = state.clone();
    t.raw_set(
        "encode_sparse_array",
        lua.create_function(move |lua, args: MultiValue| {
            too_many(lua, &args, 3)?;
            let mut cfg = st.lock().cjson.clone();
            let convert = enum_option(lua, &args, 0, &mut cfg.sparse_convert, BOOL_OPTIONS)?;
            let ratio = integer_option(lua, &args, 1, &mut cfg.sparse_ratio, 0, i32::MAX)?;
            let safe = integer_option(lua, &args, 2, &mut cfg.sparse_safe, 0, i32::MAX)?;
            st.lock().cjson = cfg;
            charge(&st, 0)?;
            Ok(MultiValue::from_vec(vec![convert, ratio, safe]))
        })?,
    )?;
    type Pick = fn(&mut Config) -> &mut i32;
    let integers: [(&str, Pick, i32, i32); 3] = [
        ("encode_max_depth", |c| &mut c.encode_max_depth, 1, i32::MAX),
        ("decode_max_depth", |c| &mut c.decode_max_depth, 1, i32::MAX),
        ("encode_number_precision", |c| &mut c.precision, 1, 14),
    ];
    for (name, pick, min, max) in integers {
        let st = state.clone();
        t.raw_set(
            name,
            lua.create_function(move |lua, args: MultiValue| {
                too_many(lua, &args, 1)?;
                let mut cfg = st.lock().cjson.clone();
                let out = integer_option(lua, &args, 0, pick(&mut cfg), min, max)?;
                st.lock().cjson = cfg;
                charge(&st, 0)?;
                Ok(out)
            })?,
        )?;
    }
    type PickEnum = fn(&mut Config) -> &mut u8;
    let enums: [(&str, PickEnum, &'static [&'static str]); 3] = [
        ("encode_keep_buffer", |c| &mut c.keep_buffer, BOOL_OPTIONS),
        (
            "encode_invalid_numbers",
            |c| &mut c.encode_invalid_numbers,
            &["off", "on", "null"],
        ),
        (
            "decode_invalid_numbers",
            |c| &mut c.decode_invalid_numbers,
            BOOL_OPTIONS,
        ),
    ];
    for (name, pick, options) in enums {
        let st = state.clone();
        t.raw_set(
            name,
            lua.create_function(move |lua, args: MultiValue| {
                too_many(lua, &args, 1)?;
                let mut cfg = st.lock().cjson.clone();
                let out = enum_option(lua, &args, 0, pick(&mut cfg), options)?;
                st.lock().cjson = cfg;
                charge(&st, 0)?;
                Ok(out)
            })?,
        )?;
    }
    t.raw_set("null", Value::NULL)?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    Ok(t)
}

const BOOL_OPTIONS: &[&str] = &["off", "on"];

/// `json_arg_init`: at most `n` arguments.
fn too_many(lua: &Lua, args: &MultiValue, n: usize) -> mlua::Result<()> {
    if args.len() > n {
        return Err(arg_error(lua, n + 1, reply::CJSON_TOO_MANY_ARGUMENTS));
    }
    Ok(())
}

/// `json_integer_option`: sets `setting` from argument `i` unless it is
/// nil; returns the setting.
fn integer_option(
    lua: &Lua,
    args: &MultiValue,
    i: usize,
    setting: &mut i32,
    min: i32,
    max: i32,
) -> mlua::Result<Value> {
    if !matches!(args.get(i), None | Some(Value::Nil)) {
        // An int in C.
        let value = check_integer(lua, args, i)? as i32;
        if value < min || value > max {
            // lua_cjson.c names argument 1 whichever it checks.
            return Err(arg_error(lua, 1, &reply::cjson_integer_range(min, max)));
        }
        *setting = value;
    }
    Ok(Value::Integer(i64::from(*setting)))
}

/// `json_enum_option`: a boolean or one of `options` (`off`, `on`, ...);
/// returns the setting as a boolean when it is off or on, else its name.
fn enum_option(
    lua: &Lua,
    args: &MultiValue,
    i: usize,
    setting: &mut u8,
    options: &[&str],
) -> mlua::Result<Value> {
    match args.get(i) {
        None | Some(Value::Nil) => {}
        Some(Value::Boolean(b)) => *setting = u8::from(*b),
        Some(_) => {
            let name = check_string(lua, args, i)?;
            let name = name.as_bytes();
            match options.iter().position(|o| o.as_bytes() == &name[..]) {
                Some(at) => *setting = at as u8,
                None => {
                    let name = String::from_utf8_lossy(&name).into_owned();
                    return Err(arg_error(lua, i + 1, &reply::lua_invalid_option(&name)));
                }
            }
        }
    }
    Ok(match *setting {
        0 | 1 => Value::Boolean(*setting == 1),
        n => Value::String(lua.create_string(options[n as usize])?),
    })
}

/// Counts a visited value; every [`CHECK_EVERY`] checks the run's budget.
fn visit(state: &Shared, values: &mut u64) -> mlua::Result<()> {
    *values += 1;
    if (*values).is_multiple_of(CHECK_EVERY) && state.lock().should_stop() {
        return Err(mlua::Error::external(Fault::Killed));
    }
    Ok(())
}

// ---- Encoding ----

fn encode(lua: &Lua, state: &Shared, args: &MultiValue) -> mlua::Result<Value> {
    if args.len() != 1 {
        return Err(arg_error(lua, 1, reply::CJSON_ONE_ARGUMENT));
    }
    let cfg = state.lock().cjson.clone();
    let mut enc = Encoder {
        lua,
        state,
        max_depth: (cfg.encode_max_depth.max(1) as usize).min(MAX_DEPTH),
        cfg,
        out: Vec::new(),
        limit: room(lua),
        values: 0,
        read: 0,
    };
    let result = enc.value(&args[0], 0);
    let (out, values, read) = (enc.out, enc.values, enc.read);
    charge(state, (read + out.len()) as u64 + values * VALUE_BYTES)?;
    result?;
    Ok(Value::String(lua.create_string(&out)?))
}

struct Encoder<'a> {
    lua: &'a Lua,
    state: &'a Shared,
    cfg: Config,
    max_depth: usize,
    out: Vec<u8>,
    /// Bytes the output may reach (the room under the memory limit).
    limit: usize,
    values: u64,
    /// String bytes read.
    read: usize,
}

impl Encoder<'_> {
    fn fail(&self, type_name: &str, reason: &str) -> mlua::Error {
        lua_error(self.lua, &reply::cjson_cannot_serialise(type_name, reason))
    }

    fn value(&mut self, v: &Value, depth: usize) -> mlua::Result<()> {
        visit(self.state, &mut self.values)?;
        match v {
            Value::String(s) => self.string(&s.as_bytes())?,
            Value::Integer(n) => self.write_number(*n as f64)?,
            Value::Number(n) => self.write_number(*n)?,
            Value::Boolean(true) => self.out.extend_from_slice(b"true"),
            Value::Boolean(false) => self.out.extend_from_slice(b"false"),
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => self.out.extend_from_slice(b"null"),
            Value::Table(t) => {
                let depth = depth + 1;
                if depth > self.max_depth {
                    return Err(lua_error(self.lua, &reply::cjson_excessive_nesting(depth)));
                }
                match self.array_length(t)? {
                    Some(len) if len > 0 => self.array(t, len, depth)?,
                    _ => self.object(t, depth)?,
                }
            }
            other => return Err(self.fail(type_name(Some(other)), reply::CJSON_TYPE_NOT_SUPPORTED)),
        }
        if self.out.len() > self.limit {
            return Err(out_of_memory());
        }
        Ok(())
    }

    fn number_checked(&mut self, n: f64) -> mlua::Result<bool> {
        match self.cfg.encode_invalid_numbers {
            0 if !n.is_finite() => Err(self.fail("number", reply::CJSON_NAN_OR_INF)),
            1 if n.is_nan() => {
                self.out.extend_from_slice(b"nan");
                Ok(false)
            }
            2 if !n.is_finite() => {
                self.out.extend_from_slice(b"null");
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    /// `json_append_string`; stops once the output passes the limit.
    fn string(&mut self, s: &[u8]) -> mlua::Result<()> {
        if self.out.len().saturating_add(s.len()) > self.limit {
            return Err(out_of_memory());
        }
        self.read += s.len();
        self.out.push(b'"');
        for (i, &b) in s.iter().enumerate() {
            if i % 4096 == 4095 && self.out.len() > self.limit {
                return Err(out_of_memory());
            }
            match b {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'/' => self.out.extend_from_slice(b"\\/"),
                b'\x08' => self.out.extend_from_slice(b"\\b"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                b'\x0c' => self.out.extend_from_slice(b"\\f"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                0..=0x1f | 0x7f => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.out.extend_from_slice(b"\\u00");
                    self.out.push(HEX[usize::from(b >> 4)]);
                    self.out.push(HEX[usize::from(b & 15)]);
                }
                _ => self.out.push(b),
            }
        }
        self.out.push(b'"');
        Ok(())
    }

    /// `lua_array_length`: `Some(n)` for a table whose keys are all
    /// integers ≥ 1 (n the largest), `None` for an object; an error for an
    /// excessively sparse array unless those are written as objects.
    fn array_length(&mut self, t: &Table) -> mlua::Result<Option<usize>> {
        let mut max = 0usize;
        let mut items = 0usize;
        for pair in t.pairs::<Value, Value>() {
            let (k, _) = pair?;
            visit(self.state, &mut self.values)?;
            let k = match k {
                Value::Integer(n) => n as f64,
                Value::Number(n) => n,
                _ => return Ok(None),
            };
            if k == 0.0 || k.floor() != k || k < 1.0 {
                return Ok(None);
            }
            // An int in C.
            max = max.max(k.min(f64::from(i32::MAX)) as usize);
            items += 1;
        }
        let ratio = self.cfg.sparse_ratio.max(0) as usize;
        if ratio > 0
            && max > items.saturating_mul(ratio)
            && max > self.cfg.sparse_safe.max(0) as usize
        {
            if self.cfg.sparse_convert == 0 {
                return Err(self.fail("table", reply::CJSON_SPARSE_ARRAY));
            }
            return Ok(None);
        }
        Ok(Some(max))
    }

    fn array(&mut self, t: &Table, len: usize, depth: usize) -> mlua::Result<()> {
        self.out.push(b'[');
        for i in 1..=len {
            if i > 1 {
                self.out.push(b',');
            }
            let v: Value = t.raw_get(i)?;
            self.value(&v, depth)?;
        }
        self.out.push(b']');
        Ok(())
    }

    fn object(&mut self, t: &Table, depth: usize) -> mlua::Result<()> {
        self.out.push(b'{');
        let mut first = true;
        for pair in t.pairs::<Value, Value>() {
            let (k, v) = pair?;
            if !first {
                self.out.push(b',');
            }
            first = false;
            match &k {
                Value::Integer(_) | Value::Number(_) => {
                    let n = match k {
                        Value::Integer(n) => n as f64,
                        Value::Number(n) => n,
                        _ => 0.0,
                    };
                    self.out.push(b'"');
                    self.write_number(n)?;
                    self.out.extend_from_slice(b"\":");
                }
                Value::String(s) => {
                    self.string(&s.as_bytes())?;
                    self.out.push(b':');
                }
                other => return Err(self.fail(type_name(Some(other)), reply::CJSON_KEY_TYPE)),
            }
            self.value(&v, depth)?;
        }
        self.out.push(b'}');
        Ok(())
    }

    /// `json_append_number`.
    fn write_number(&mut self, n: f64) -> mlua::Result<()> {
        if self.number_checked(n)? {
            let text = format_g(n, self.cfg.precision.clamp(1, 14) as usize);
            self.out.extend_from_slice(text.as_bytes());
        }
        Ok(())
    }
}

/// C's `%.<precision>g`.
pub(super) fn format_g(x: f64, precision: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let p = precision.max(1);
    let sci = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let mantissa = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

/// `%g` drops trailing zeros of the fraction, and the point if nothing
/// is left after it.
fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

// ---- Decoding ----

fn decode(lua: &Lua, state: &Shared, args: &MultiValue) -> mlua::Result<Value> {
    if args.len() != 1 {
        return Err(arg_error(lua, 1, reply::CJSON_ONE_ARGUMENT));
    }
    let text = check_string(lua, args, 0)?;
    let data = text.as_bytes();
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(lua_error(lua, reply::CJSON_UTF16));
    }
    let cfg = state.lock().cjson.clone();
    let mut dec = Decoder {
        lua,
        state,
        data: &data,
        pos: 0,
        depth: 0,
        max_depth: (cfg.decode_max_depth.max(1) as usize).min(MAX_DEPTH),
        invalid_numbers: cfg.decode_invalid_numbers != 0,
        values: 0,
    };
    let result = (|| -> mlua::Result<Value> {
        let token = dec.next_token();
        let value = dec.process_value(token)?;
        let token = dec.next_token();
        if !matches!(token.kind, Kind::End) {
            return Err(dec.expected("the end", &token));
        }
        Ok(value)
    })();
    let values = dec.values;
    charge(state, data.len() as u64 + values * VALUE_BYTES)?;
    result
}

enum Kind {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(Vec<u8>),
    Number(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

struct Token {
    kind: Kind,
    /// 0-based position (of the token, or of the problem for errors).
    index: usize,
}

impl Kind {
    /// `json_token_type_name`.
    fn name(&self) -> &'static str {
        match self {
            Kind::ObjBegin => "T_OBJ_BEGIN",
            Kind::ObjEnd => "T_OBJ_END",
            Kind::ArrBegin => "T_ARR_BEGIN",
            Kind::ArrEnd => "T_ARR_END",
            Kind::Str(_) => "T_STRING",
            Kind::Number(_) => "T_NUMBER",
            Kind::Bool(_) => "T_BOOLEAN",
            Kind::Null => "T_NULL",
            Kind::Colon => "T_COLON",
            Kind::Comma => "T_COMMA",
            Kind::End => "T_END",
            Kind::Error(e) => e,
        }
    }
}

struct Decoder<'a> {
    lua: &'a Lua,
    state: &'a Shared,
    data: &'a [u8],
    pos: usize,
    depth: usize,
    max_depth: usize,
    invalid_numbers: bool,
    values: u64,
}

impl Decoder<'_> {
    /// The byte at `i`; the text ends at its first NUL, as a C string.
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn error(&self, msg: &'static str) -> Token {
        Token {
            kind: Kind::Error(msg),
            index: self.pos,
        }
    }

    fn expected(&self, what: &str, token: &Token) -> mlua::Error {
        lua_error(
            self.lua,
            &reply::cjson_expected(what, token.kind.name(), token.index + 1),
        )
    }

    /// `json_next_token`.
    fn next_token(&mut self) -> Token {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let index = self.pos;
        let ch = self.at(self.pos);
        let single = |kind| Token { kind, index };
        let simple = match ch {
            b'{' => Some(Kind::ObjBegin),
            b'}' => Some(Kind::ObjEnd),
            b'[' => Some(Kind::ArrBegin),
            b']' => Some(Kind::ArrEnd),
            b',' => Some(Kind::Comma),
            b':' => Some(Kind::Colon),
            _ => None,
        };
        if let Some(kind) = simple {
            self.pos += 1;
            return single(kind);
        }
        match ch {
            0 => single(Kind::End),
            b'"' => self.string_token(),
            b'-' | b'0'..=b'9' => {
                if !self.invalid_numbers && self.is_invalid_number() {
                    return self.error("invalid number");
                }
                self.number_token()
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' => {
                let rest = &self.data[self.pos.min(self.data.len())..];
                for (word, kind) in [
                    (&b"true"[..], Kind::Bool(true)),
                    (&b"false"[..], Kind::Bool(false)),
                    (&b"null"[..], Kind::Null),
                ] {
                    if rest.starts_with(word) {
                        self.pos += word.len();
                        return single(kind);
                    }
                }
                if self.invalid_numbers && self.is_invalid_number() {
                    return self.number_token();
                }
                self.error("invalid token")
            }
            _ => self.error("invalid token"),
        }
    }

    /// `json_is_invalid_number`: what strtod reads but JSON does not allow.
    fn is_invalid_number(&self) -> bool {
        let mut p = self.pos;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        if self.at(p) == b'0' {
            let c2 = self.at(p + 1);
            return (c2 | 0x20) == b'x' || c2.is_ascii_digit();
        }
        if self.at(p) <= b'9' {
            return false;
        }
        let word = |w: &[u8]| (0..3).all(|i| self.at(p + i).eq_ignore_ascii_case(&w[i]));
        word(b"inf") || word(b"nan")
    }

    fn number_token(&mut self) -> Token {
        // strtod stops at a NUL as at any other byte no number has.
        match strtod(&self.data[self.pos.min(self.data.len())..]) {
            Some((n, used)) if used > 0 => {
                let index = self.pos;
                self.pos += used;
                Token {
                    kind: Kind::Number(n),
                    index,
                }
            }
            _ => self.error("invalid number"),
        }
    }

    /// `json_next_string_token`.
    fn string_token(&mut self) -> Token {
        let index = self.pos;
        self.pos += 1;
        let mut buf = Vec::new();
        loop {
            let ch = self.at(self.pos);
            if ch == b'"' {
                break;
            }
            if ch == 0 {
                return self.error("unexpected end of string");
            }
            if ch == b'\\' {
                let translated = match self.at(self.pos + 1) {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => 12,
                    b'r' => b'\r',
                    b'u' => {
                        if self.unicode_escape(&mut buf) {
                            continue;
                        }
                        return self.error("invalid unicode escape code");
                    }
                    _ => return self.error("invalid escape code"),
                };
                buf.push(translated);
                self.pos += 2;
                continue;
            }
            buf.push(ch);
            self.pos += 1;
        }
        self.pos += 1;
        Token {
            kind: Kind::Str(buf),
            index,
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let mut v = 0;
        for i in 0..4 {
            v = (v << 4) | char::from(self.at(at + i)).to_digit(16)?;
        }
        Some(v)
    }

    /// `json_append_unicode_escape`: `\uXXXX` (or a surrogate pair) as
    /// UTF-8; false if it is not a valid escape.
    fn unicode_escape(&mut self, buf: &mut Vec<u8>) -> bool {
        let Some(mut cp) = self.hex4(self.pos + 2) else {
            return false;
        };
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 {
                return false;
            }
            if self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.pos + 8) else {
                return false;
            };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        let mut utf8 = [0u8; 4];
        let n = match cp {
            0..=0x7F => {
                utf8[0] = cp as u8;
                1
            }
            0x80..=0x7FF => {
                utf8[0] = (cp >> 6) as u8 | 0xC0;
                utf8[1] = (cp & 0x3F) as u8 | 0x80;
                2
            }
            0x800..=0xFFFF => {
                utf8[0] = (cp >> 12) as u8 | 0xE0;
                utf8[1] = ((cp >> 6) & 0x3F) as u8 | 0x80;
                utf8[2] = (cp & 0x3F) as u8 | 0x80;
                3
            }
            _ => {
                utf8[0] = (cp >> 18) as u8 | 0xF0;
                utf8[1] = ((cp >> 12) & 0x3F) as u8 | 0x80;
                utf8[2] = ((cp >> 6) & 0x3F) as u8 | 0x80;
                utf8[3] = (cp & 0x3F) as u8 | 0x80;
                4
            }
        };
        buf.extend_from_slice(&utf8[..n]);
        self.pos += len;
        true
    }

    /// `json_process_value`.
    fn process_value(&mut self, token: Token) -> mlua::Result<Value> {
        visit(self.state, &mut self.values)?;
        Ok(match token.kind {
            Kind::Str(s) => Value::String(self.lua.create_string(&s)?),
            Kind::Number(n) => Value::Number(n),
            Kind::Bool(b) => Value::Boolean(b),
            Kind::Null => Value::NULL,
            Kind::ObjBegin => self.object()?,
            Kind::ArrBegin => self.array()?,
            _ => return Err(self.expected("value", &token)),
        })
    }

    fn descend(&mut self) -> mlua::Result<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(lua_error(
                self.lua,
                &reply::cjson_too_deep(self.depth, self.pos),
            ));
        }
        Ok(())
    }

    fn object(&mut self) -> mlua::Result<Value> {
        self.descend()?;
        let t = self.lua.create_table()?;
        let mut token = self.next_token();
        if matches!(token.kind, Kind::ObjEnd) {
            self.depth -= 1;
            return Ok(Value::Table(t));
        }
        loop {
            let Kind::Str(key) = &token.kind else {
                return Err(self.expected("object key string", &token));
            };
            let key = self.lua.create_string(key)?;
            token = self.next_token();
            if !matches!(token.kind, Kind::Colon) {
                return Err(self.expected("colon", &token));
            }
            token = self.next_token();
            let value = self.process_value(token)?;
            t.raw_set(key, value)?;
            token = self.next_token();
            if matches!(token.kind, Kind::ObjEnd) {
                self.depth -= 1;
                return Ok(Value::Table(t));
            }
            if !matches!(token.kind, Kind::Comma) {
                return Err(self.expected("comma or object end", &token));
            }
            token = self.next_token();
        }
    }

    fn array(&mut self) -> mlua::Result<Value> {
        self.descend()?;
        let t = self.lua.create_table()?;
        let mut token = self.next_token();
        if matches!(token.kind, Kind::ArrEnd) {
            self.depth -= 1;
            return Ok(Value::Table(t));
        }
        for i in 1.. {
            let value = self.process_value(token)?;
            t.raw_set(i, value)?;
            token = self.next_token();
            if matches!(token.kind, Kind::ArrEnd) {
                break;
            }
            if !matches!(token.kind, Kind::Comma) {
                return Err(self.expected("comma or array end", &token));
            }
            token = self.next_token();
        }
        self.depth -= 1;
        Ok(Value::Table(t))
    }
}

/// glibc's `strtod` on the start of `s`: the number and the bytes it read
/// (`None`: no number there). Decimal (through Rust's correctly rounded
/// parser, as glibc's), hexadecimal (`0x1.8p3`), `inf`/`infinity`, `nan`
/// and `nan(...)`, each with an optional sign.
pub(super) fn strtod(s: &[u8]) -> Option<(f64, usize)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut i = 0;
    while matches!(at(i), b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let negative = at(i) == b'-';
    if matches!(at(i), b'+' | b'-') {
        i += 1;
    }
    let sign = if negative { -1.0 } else { 1.0 };
    let word = |from: usize, w: &[u8]| {
        w.iter()
            .enumerate()
            .all(|(k, c)| at(from + k).eq_ignore_ascii_case(c))
    };
    if word(i, b"infinity") {
        return Some((sign * f64::INFINITY, i + 8));
    }
    if word(i, b"inf") {
        return Some((sign * f64::INFINITY, i + 3));
    }
    if word(i, b"nan") {
        let mut end = i + 3;
        if at(end) == b'(' {
            let mut j = end + 1;
            while at(j).is_ascii_alphanumeric() || at(j) == b'_' {
                j += 1;
            }
            if at(j) == b')' {
                end = j + 1;
            }
        }
        let nan = if negative { -f64::NAN } else { f64::NAN };
        return Some((nan, end));
    }
    if at(i) == b'0' && (at(i + 1) | 0x20) == b'x' {
        if let Some((v, end)) = hex_float(s, i + 2) {
            return Some((sign * v, end));
        }
        // "0x" without digits reads as 0.
        return Some((sign * 0.0, i + 1));
    }
    let digits_from = i;
    let mut digits = 0;
    while at(i).is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if at(i) == b'.' {
        i += 1;
        while at(i).is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if (at(i) | 0x20) == b'e' {
        let mut j = i + 1;
        if matches!(at(j), b'+' | b'-') {
            j += 1;
        }
        if at(j).is_ascii_digit() {
            while at(j).is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    let text = std::str::from_utf8(&s[digits_from..i]).ok()?;
    let text = text.strip_suffix('.').unwrap_or(text);
    let text = if text.starts_with('.') {
        format!("0{text}")
    } else {
        text.to_string()
    };
    let v: f64 = text.replace(".e", "e").replace(".E", "E").parse().ok()?;
    Some((sign * v, i))
}

/// The digits of a hexadecimal float after `0x`: the value and where it
/// ends, `None` without a hex digit.
fn hex_float(s: &[u8], from: usize) -> Option<(f64, usize)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut i = from;
    let mut mantissa = 0f64;
    let mut scale = 0i32;
    let mut digits = 0;
    while let Some(d) = char::from(at(i)).to_digit(16) {
        mantissa = mantissa * 16.0 + f64::from(d);
        i += 1;
        digits += 1;
    }
    if at(i) == b'.' {
        let mut j = i + 1;
        let mut frac = 0;
        while let Some(d) = char::from(at(j)).to_digit(16) {
            mantissa = mantissa * 16.0 + f64::from(d);
            scale -= 4;
            j += 1;
            frac += 1;
        }
        if digits + frac > 0 {
            i = j;
            digits += frac;
        }
    }
    if digits == 0 {
        return None;
    }
    if (at(i) | 0x20) == b'p' {
        let mut j = i + 1;
        let negative = at(j) == b'-';
        if matches!(at(j), b'+' | b'-') {
            j += 1;
        }
        if at(j).is_ascii_digit() {
            let mut e: i32 = 0;
            while at(j).is_ascii_digit() {
                e = e.saturating_mul(10).saturating_add(i32::from(at(j) - b'0'));
                j += 1;
            }
            scale = scale.saturating_add(if negative { -e } else { e });
            i = j;
        }
    }
    Some((mantissa * 2f64.powi(scale), i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_g_as_c() {
        let cases: &[(f64, &str)] = &[
            (100.0, "100"),
            (0.1, "0.1"),
            (1023.2, "1023.2"),
            (0.0003, "0.0003"),
            (0.00003, "3e-05"),
            (1e15, "1e+15"),
            (123456789012345.0, "1.2345678901234e+14"),
            (12345678901234.0, "12345678901234"),
            (-5000.0, "-5000"),
            (1.0 / 3.0, "0.33333333333333"),
            (1e300, "1e+300"),
            (2f64.powi(40), "1099511627776"),
        ];
        for (x, want) in cases {
            assert_eq!(format_g(*x, 14), *want, "{x}");
        }
        assert_eq!(format_g(1.23456, 3), "1.23");
    }

    #[test]
    fn strtod_as_glibc() {
        assert_eq!(strtod(b"-5e3,"), Some((-5000.0, 4)));
        assert_eq!(strtod(b"0.3e-3]"), Some((0.0003, 6)));
        assert_eq!(strtod(b"0e10"), Some((0.0, 4)));
        assert_eq!(strtod(b"1e"), Some((1.0, 1)));
        assert_eq!(strtod(b"1."), Some((1.0, 2)));
        assert_eq!(strtod(b"0x10"), Some((16.0, 4)));
        assert_eq!(strtod(b"-Infinity"), Some((f64::NEG_INFINITY, 9)));
        assert_eq!(strtod(b"-"), None);
        assert_eq!(strtod(b"x"), None);
        assert!(strtod(b"nan").is_some_and(|(v, n)| v.is_nan() && n == 3));
    }
}
