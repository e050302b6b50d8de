//! The sandbox's `cmsgpack` library (Redis 7.0's lua-cmsgpack 0.4.0):
//! `pack`, `unpack`, `unpack_one`, `unpack_limit`, with the bytes and
//! errors of `deps/lua/src/lua_cmsgpack.c`: integers in the smallest
//! MessagePack form, numbers that are not integers as float 32 when that is
//! exact, else float 64; strings as `str` (fixstr, str 8/16/32); tables
//! whose keys are 1..n as arrays, others as maps (in Lua's table order);
//! tables nested [`MAX_NESTING`] deep, and functions, userdata and nil, as
//! nil (so a table that contains itself packs as a copy 16 levels deep).
//! Unpacking reads Lua 5.1's numbers (every integer a double; a uint 64
//! above 2^63 becomes negative, as in C).
//!
//! Limits: `unpack` returns as many values as Lua's C stack holds (8000
//! slots, as C, with C's `too many return values at once` error); nested
//! arrays and maps unpack at most [`MAX_DEPTH`] deep (C nests until that
//! stack runs out, about 4000). Metering, time checks and the memory limit
//! as in [`super::cjson`].

use mlua::{Lua, MultiValue, Table, Value};

use super::cjson::CHECK_EVERY;
use super::strings::{
    VALUE_BYTES, arg_error, charge, check_integer, check_string, lua_error, opt_integer,
    out_of_memory, room,
};
use super::{Fault, Shared};
use crate::resp::reply;

/// Tables nested deeper than this are packed as nil (`LUACMSGPACK_MAX_NESTING`).
pub const MAX_NESTING: usize = 16;
/// Deepest nesting `unpack` reads.
pub const MAX_DEPTH: usize = 1000;
/// `LUAI_MAXCSTACK`: the slots a C function may use on Lua's stack.
const MAX_C_STACK: usize = 8000;

/// The `cmsgpack` table.
pub(super) fn library(lua: &Lua, state: &Shared) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let st = state.clone();
    t.raw_set(
        "pack",
        lua.create_function(move |lua, args: MultiValue| pack(lua, &st, &args))?,
    )?;
    let st = state.clone();
    t.raw_set(
        "unpack",
        lua.create_function(move |lua, args: MultiValue| unpack(lua, &st, &args, 0, 0))?,
    )?;
    let st = state.clone();
    t.raw_set(
        "unpack_one",
        lua.create_function(move |lua, args: MultiValue| {
            let offset = opt_integer(lua, &args, 1, 0)?;
            unpack(lua, &st, &args, 1, offset)
        })?,
    )?;
    let st = state.clone();
    t.raw_set(
        "unpack_limit",
        lua.create_function(move |lua, args: MultiValue| {
            let limit = check_integer(lua, &args, 1)?;
            let offset = opt_integer(lua, &args, 2, 0)?;
            unpack(lua, &st, &args, limit, offset)
        })?,
    )?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

/// Counts a visited value; every [`CHECK_EVERY`] checks the run's budget.
fn visit(state: &Shared, values: &mut u64) -> mlua::Result<()> {
    *values += 1;
    if (*values).is_multiple_of(CHECK_EVERY) && state.lock().should_stop() {
        return Err(mlua::Error::external(Fault::Killed));
    }
    Ok(())
}

// ---- pack ----

fn pack(lua: &Lua, state: &Shared, args: &MultiValue) -> mlua::Result<Value> {
    if args.is_empty() {
        return Err(arg_error(lua, 0, reply::MSGPACK_NEEDS_INPUT));
    }
    let mut p = Packer {
        state,
        out: Vec::new(),
        limit: room(lua),
        values: 0,
        read: 0,
    };
    let result = args.iter().try_for_each(|v| p.value(v, 0));
    charge(
        state,
        (p.read + p.out.len()) as u64 + p.values * VALUE_BYTES,
    )?;
    result?;
    Ok(Value::String(lua.create_string(&p.out)?))
}

struct Packer<'a> {
    state: &'a Shared,
    out: Vec<u8>,
    limit: usize,
    values: u64,
    /// String bytes read.
    read: usize,
}

impl Packer<'_> {
    fn value(&mut self, v: &Value, level: usize) -> mlua::Result<()> {
        visit(self.state, &mut self.values)?;
        match v {
            Value::Table(_) if level == MAX_NESTING => self.out.push(0xc0),
            Value::String(s) => self.bytes(&s.as_bytes())?,
            Value::Boolean(b) => self.out.push(if *b { 0xc3 } else { 0xc2 }),
            Value::Integer(n) => self.int(*n),
            Value::Number(n) => self.number(*n),
            Value::Table(t) => {
                if self.is_array(t)? {
                    self.array(t, level)?;
                } else {
                    self.map(t, level)?;
                }
            }
            _ => self.out.push(0xc0),
        }
        if self.out.len() > self.limit {
            return Err(out_of_memory());
        }
        Ok(())
    }

    fn bytes(&mut self, s: &[u8]) -> mlua::Result<()> {
        if self.out.len().saturating_add(s.len()) > self.limit {
            return Err(out_of_memory());
        }
        self.read += s.len();
        let len = s.len();
        if len < 32 {
            self.out.push(0xa0 | len as u8);
        } else if len <= 0xff {
            self.out.extend_from_slice(&[0xd9, len as u8]);
        } else if len <= 0xffff {
            self.out.push(0xda);
            self.out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.out.push(0xdb);
            self.out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        self.out.extend_from_slice(s);
        Ok(())
    }

    /// `mp_encode_lua_number`: integers (exactly an int64) as integers,
    /// else a float 32 if that is exact, else a float 64.
    fn number(&mut self, n: f64) {
        // IS_INT64_EQUIVALENT: !isinf(x) && (int64_t)x == x.
        if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&n) {
            let i = n as i64;
            if i as f64 == n {
                return self.int(i);
            }
        }
        let f = n as f32;
        if f64::from(f) == n {
            self.out.push(0xca);
            self.out.extend_from_slice(&f.to_be_bytes());
        } else {
            self.out.push(0xcb);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
    }

    fn int(&mut self, n: i64) {
        let out = &mut self.out;
        if n >= 0 {
            if n <= 127 {
                out.push(n as u8);
            } else if n <= 0xff {
                out.extend_from_slice(&[0xcc, n as u8]);
            } else if n <= 0xffff {
                out.push(0xcd);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else if n <= 0xffff_ffff {
                out.push(0xce);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            } else {
                out.push(0xcf);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        } else if n >= -32 {
            out.push(n as i8 as u8);
        } else if n >= -128 {
            out.extend_from_slice(&[0xd0, n as i8 as u8]);
        } else if n >= -32768 {
            out.push(0xd1);
            out.extend_from_slice(&(n as i16).to_be_bytes());
        } else if n >= -2_147_483_648 {
            out.push(0xd2);
            out.extend_from_slice(&(n as i32).to_be_bytes());
        } else {
            out.push(0xd3);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }

    fn header(&mut self, n: usize, fix: u8, n16: u8, n32: u8) {
        if n <= 15 {
            self.out.push(fix | n as u8);
        } else if n <= 0xffff {
            self.out.push(n16);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.out.push(n32);
            self.out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }

    /// `table_is_an_array`: every key a positive number that is a C int,
    /// and as many keys as the largest.
    fn is_array(&mut self, t: &Table) -> mlua::Result<bool> {
        let mut count = 0i64;
        let mut max = 0i64;
        for pair in t.pairs::<Value, Value>() {
            let (k, _) = pair?;
            visit(self.state, &mut self.values)?;
            let n = match k {
                Value::Integer(n) => n as f64,
                Value::Number(n) => n,
                _ => return Ok(false),
            };
            if n <= 0.0 || n > f64::from(i32::MAX) || n.fract() != 0.0 {
                return Ok(false);
            }
            max = max.max(n as i64);
            count += 1;
        }
        Ok(max == count)
    }

    fn array(&mut self, t: &Table, level: usize) -> mlua::Result<()> {
        let len = t.raw_len();
        self.header(len, 0x90, 0xdc, 0xdd);
        // lua_gettable: metamethods apply, as in C (a raw read without).
        let plain = t.metatable().is_none();
        for j in 1..=len {
            let v: Value = if plain { t.raw_get(j)? } else { t.get(j)? };
            self.value(&v, level + 1)?;
        }
        Ok(())
    }

    fn map(&mut self, t: &Table, level: usize) -> mlua::Result<()> {
        let len = t.pairs::<Value, Value>().count();
        self.header(len, 0x80, 0xde, 0xdf);
        for pair in t.pairs::<Value, Value>() {
            let (k, v) = pair?;
            self.value(&k, level + 1)?;
            self.value(&v, level + 1)?;
        }
        Ok(())
    }
}

// ---- unpack ----

/// `mp_unpack_full`: `limit` values from `offset` (0 and 0: all of them,
/// without the offset in front).
fn unpack(
    lua: &Lua,
    state: &Shared,
    args: &MultiValue,
    limit: i64,
    offset: i64,
) -> mlua::Result<MultiValue> {
    let s = check_string(lua, args, 0)?;
    let data = s.as_bytes();
    let len = data.len() as i64;
    if offset < 0 || limit < 0 {
        return Err(lua_error(
            lua,
            &reply::msgpack_bad_request(i64::from(offset as i32), i64::from(len as i32)),
        ));
    }
    if offset > len {
        return Err(lua_error(
            lua,
            &reply::msgpack_offset_past_end(i64::from(offset as i32), i64::from(len as i32)),
        ));
    }
    let decode_all = limit == 0 && offset == 0;
    let limit = if decode_all {
        i64::from(i32::MAX)
    } else {
        limit
    };
    let mut u = Unpacker {
        lua,
        state,
        data: &data,
        pos: offset as usize,
        // The input string stays on the stack.
        slots: 1,
        depth: 0,
        values: 0,
    };
    let mut out = Vec::new();
    let result = (|| -> mlua::Result<()> {
        let mut count = 0;
        while u.pos < data.len() && count < limit {
            out.push(u.value()?);
            count += 1;
        }
        Ok(())
    })();
    charge(
        state,
        (u.pos as u64).saturating_sub(offset as u64) + u.values * VALUE_BYTES,
    )?;
    result?;
    if !decode_all {
        let next = if u.pos >= data.len() {
            -1
        } else {
            u.pos as i64
        };
        out.insert(0, Value::Integer(next));
    }
    Ok(MultiValue::from_vec(out))
}

struct Unpacker<'a> {
    lua: &'a Lua,
    state: &'a Shared,
    data: &'a [u8],
    pos: usize,
    /// Slots C's unpacker would use on Lua's stack now.
    slots: usize,
    depth: usize,
    values: u64,
}

impl Unpacker<'_> {
    fn need(&self, n: usize) -> mlua::Result<&[u8]> {
        match self.data.get(self.pos..self.pos.saturating_add(n)) {
            Some(bytes) if self.pos.saturating_add(n) <= self.data.len() => Ok(bytes),
            _ => Err(lua_error(self.lua, reply::MSGPACK_MISSING_BYTES)),
        }
    }

    fn be(&self, from: usize, n: usize) -> mlua::Result<u64> {
        let bytes = self.need(from + n)?;
        Ok(bytes[from..]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn string(&mut self, header: usize, len: usize) -> mlua::Result<Value> {
        let bytes = self.need(header.saturating_add(len))?;
        let s = self.lua.create_string(&bytes[header..])?;
        self.pos += header + len;
        Ok(Value::String(s))
    }

    /// `mp_decode_to_lua_type`: the next value (one more slot in use).
    fn value(&mut self) -> mlua::Result<Value> {
        self.need(1)?;
        if self.slots + 1 > MAX_C_STACK {
            return Err(lua_error(self.lua, reply::MSGPACK_TOO_MANY_VALUES));
        }
        visit(self.state, &mut self.values)?;
        let b = self.data[self.pos];
        let number = |n: f64| Value::Number(n);
        let v = match b {
            0xcc..=0xcf => {
                let n = 1 << (b - 0xcc);
                let u = self.be(1, n)?;
                self.pos += 1 + n;
                // lua_pushunsigned is lua_pushinteger: above 2^63 wraps.
                number(u as i64 as f64)
            }
            0xd0..=0xd3 => {
                let n = 1 << (b - 0xd0);
                let u = self.be(1, n)?;
                self.pos += 1 + n;
                let shift = 64 - 8 * n as u32;
                number(((u << shift) as i64 >> shift) as f64)
            }
            0xc0 => {
                self.pos += 1;
                Value::Nil
            }
            0xc2 | 0xc3 => {
                self.pos += 1;
                Value::Boolean(b == 0xc3)
            }
            0xca => {
                let u = self.be(1, 4)?;
                self.pos += 5;
                number(f64::from(f32::from_bits(u as u32)))
            }
            0xcb => {
                let u = self.be(1, 8)?;
                self.pos += 9;
                number(f64::from_bits(u))
            }
            0xd9 => {
                let l = self.be(1, 1)? as usize;
                self.string(2, l)?
            }
            0xda => {
                let l = self.be(1, 2)? as usize;
                self.string(3, l)?
            }
            0xdb => {
                let l = self.be(1, 4)? as usize;
                self.string(5, l)?
            }
            0xdc..=0xdf => {
                let n = if b & 1 == 0 { 2 } else { 4 };
                let l = self.be(1, n)? as usize;
                self.pos += 1 + n;
                if b < 0xde {
                    self.array(l)?
                } else {
                    self.map(l)?
                }
            }
            _ if b & 0x80 == 0 => {
                self.pos += 1;
                number(f64::from(b))
            }
            _ if b & 0xe0 == 0xe0 => {
                self.pos += 1;
                number(f64::from(b as i8))
            }
            _ if b & 0xe0 == 0xa0 => self.string(1, usize::from(b & 0x1f))?,
            _ if b & 0xf0 == 0x90 => {
                self.pos += 1;
                self.array(usize::from(b & 0xf))?
            }
            _ if b & 0xf0 == 0x80 => {
                self.pos += 1;
                self.map(usize::from(b & 0xf))?
            }
            _ => return Err(lua_error(self.lua, reply::MSGPACK_BAD_FORMAT)),
        };
        self.slots += 1;
        Ok(v)
    }

    fn array(&mut self, len: usize) -> mlua::Result<Value> {
        // The new table and a slot more must fit (C checks there), and
        // the nesting stays under MAX_DEPTH (C's stack allows about 4000).
        if self.slots + 2 > MAX_C_STACK || self.depth >= MAX_DEPTH {
            return Err(lua_error(self.lua, reply::MSGPACK_ARRAY_STACK));
        }
        let t = self.lua.create_table()?;
        self.depth += 1;
        // The table and an index on the stack while an element is read.
        self.slots += 2;
        for i in 1..=len {
            let v = self.value()?;
            self.slots -= 1;
            t.raw_set(i, v)?;
        }
        self.slots -= 2;
        self.depth -= 1;
        Ok(Value::Table(t))
    }

    fn map(&mut self, len: usize) -> mlua::Result<Value> {
        if self.depth >= MAX_DEPTH {
            return Err(lua_error(self.lua, reply::MSGPACK_TOO_MANY_VALUES));
        }
        let t = self.lua.create_table()?;
        self.depth += 1;
        self.slots += 1;
        for _ in 0..len {
            let k = self.value()?;
            let v = self.value()?;
            self.slots -= 2;
            match &k {
                // lua_settable's errors (raised from C: no position).
                Value::Nil => {
                    return Err(mlua::Error::external(Fault::Lua(
                        reply::LUA_TABLE_INDEX_NIL.into(),
                    )));
                }
                Value::Number(n) if n.is_nan() => {
                    return Err(mlua::Error::external(Fault::Lua(
                        reply::LUA_TABLE_INDEX_NAN.into(),
                    )));
                }
                _ => t.raw_set(k, v)?,
            }
        }
        self.slots -= 1;
        self.depth -= 1;
        Ok(Value::Table(t))
    }
}
