//! The sandbox's `bit` (LuaBitOp 1.0: `tobit`, `tohex`, `bnot`, `band`,
//! `bor`, `bxor`, `lshift`, `rshift`, `arshift`, `rol`, `ror`, `bswap`) and
//! `struct` (Roberto Ierusalimschy's 0.2: `pack`, `unpack`, `size`)
//! libraries, with the results and errors of Redis 7.0's
//! `deps/lua/src/lua_bit.c` and `lua_struct.c` on x86-64 (little-endian;
//! `long` and `size_t` 8 bytes, `int` 4, the largest alignment 8).
//!
//! Numbers become 32-bit integers as LuaBitOp does (adding 2^52 + 2^51 and
//! keeping the low word: wrapping, rounding to nearest). Each call is
//! charged as a string function for its arguments and the bytes it reads
//! and writes (see [`super::strings`]).

use mlua::{Lua, MultiValue, Table, Value};

use super::Shared;
use super::strings::{
    VALUE_BYTES, arg_error, charge, check_number, check_string, lua_error, opt_integer,
    out_of_memory, room, type_error,
};
use crate::resp::reply;

/// `LUAI_MAXCSTACK`: the slots a C function may use on Lua's stack.
const MAX_C_STACK: usize = 8000;

/// The `bit` table.
pub(super) fn bit_library(lua: &Lua, state: &Shared) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    type Op = fn(&Lua, &MultiValue) -> mlua::Result<u32>;
    let ops: [(&str, Op); 11] = [
        ("tobit", |lua, a| barg(lua, a, 0)),
        ("bnot", |lua, a| Ok(!barg(lua, a, 0)?)),
        ("band", |lua, a| fold(lua, a, |x, y| x & y)),
        ("bor", |lua, a| fold(lua, a, |x, y| x | y)),
        ("bxor", |lua, a| fold(lua, a, |x, y| x ^ y)),
        ("lshift", |lua, a| shift(lua, a, |b, n| b << n)),
        ("rshift", |lua, a| shift(lua, a, |b, n| b >> n)),
        ("arshift", |lua, a| {
            shift(lua, a, |b, n| ((b as i32) >> n) as u32)
        }),
        ("rol", |lua, a| shift(lua, a, u32::rotate_left)),
        ("ror", |lua, a| shift(lua, a, u32::rotate_right)),
        ("bswap", |lua, a| Ok(barg(lua, a, 0)?.swap_bytes())),
    ];
    for (name, op) in ops {
        let st = state.clone();
        t.raw_set(
            name,
            lua.create_function(move |lua, args: MultiValue| {
                let b = op(lua, &args)?;
                charge(&st, args.len() as u64 * VALUE_BYTES)?;
                // BRET: the bits as a signed 32-bit number.
                Ok(Value::Integer(i64::from(b as i32)))
            })?,
        )?;
    }
    let st = state.clone();
    t.raw_set(
        "tohex",
        lua.create_function(move |lua, args: MultiValue| {
            let mut b = barg(lua, &args, 0)?;
            let mut n = if args.len() < 2 {
                8
            } else {
                i64::from(barg(lua, &args, 1)? as i32)
            };
            let digits: &[u8; 16] = if n < 0 {
                n = -n;
                b"0123456789ABCDEF"
            } else {
                b"0123456789abcdef"
            };
            let n = n.min(8) as usize;
            let mut buf = vec![0u8; n];
            for slot in buf.iter_mut().rev() {
                *slot = digits[(b & 15) as usize];
                b >>= 4;
            }
            charge(&st, args.len() as u64 * VALUE_BYTES + n as u64)?;
            Ok(Value::String(lua.create_string(&buf)?))
        })?,
    )?;
    Ok(t)
}

/// `barg`: argument `i` as 32 bits (a non-number is an error, as
/// `luaL_typerror` — but only when its bits are 0, as in LuaBitOp on Lua
/// 5.1).
fn barg(lua: &Lua, args: &MultiValue, i: usize) -> mlua::Result<u32> {
    let n = match args.get(i) {
        Some(Value::Integer(n)) => Some(*n as f64),
        Some(Value::Number(n)) => Some(*n),
        Some(v @ Value::String(_)) => lua.coerce_number(v.clone())?,
        _ => None,
    };
    let b = (n.unwrap_or(0.0) + 6_755_399_441_055_744.0).to_bits() as u32;
    if b == 0 && n.is_none() {
        return Err(type_error(lua, args, i, "number"));
    }
    Ok(b)
}

fn fold(lua: &Lua, args: &MultiValue, f: fn(u32, u32) -> u32) -> mlua::Result<u32> {
    let mut b = barg(lua, args, 0)?;
    // C folds from the last argument down to the second.
    for i in (1..args.len()).rev() {
        b = f(b, barg(lua, args, i)?);
    }
    Ok(b)
}

fn shift(lua: &Lua, args: &MultiValue, f: fn(u32, u32) -> u32) -> mlua::Result<u32> {
    let b = barg(lua, args, 0)?;
    let n = barg(lua, args, 1)? & 31;
    Ok(f(b, n))
}

// ---- struct ----

/// The `struct` table.
pub(super) fn struct_library(lua: &Lua, state: &Shared) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let st = state.clone();
    t.raw_set(
        "pack",
        lua.create_function(move |lua, args: MultiValue| pack(lua, &st, &args))?,
    )?;
    let st = state.clone();
    t.raw_set(
        "unpack",
        lua.create_function(move |lua, args: MultiValue| unpack(lua, &st, &args))?,
    )?;
    let st = state.clone();
    t.raw_set(
        "size",
        lua.create_function(move |lua, args: MultiValue| size(lua, &st, &args))?,
    )?;
    Ok(t)
}

/// Largest integer size in bytes (`MAXINTSIZE`).
const MAX_INT_SIZE: usize = 32;
/// Default and largest alignment (`MAXALIGN` on x86-64).
const MAX_ALIGN: usize = 8;

#[derive(Clone, Copy)]
struct Header {
    little: bool,
    align: usize,
}

/// A format string read as C reads it (up to its first NUL).
struct Format<'a> {
    fmt: &'a [u8],
    at: usize,
}

impl Format<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = self.fmt.get(self.at).copied().filter(|&c| c != 0)?;
        self.at += 1;
        Some(c)
    }

    fn peek(&self) -> u8 {
        self.fmt.get(self.at).copied().unwrap_or(0)
    }

    /// `getnum`: a decimal count, or `default` when none follows.
    fn number(&mut self, lua: &Lua, default: usize) -> mlua::Result<usize> {
        if !self.peek().is_ascii_digit() {
            return Ok(default);
        }
        let mut a: i32 = 0;
        while self.peek().is_ascii_digit() {
            let d = i32::from(self.peek() - b'0');
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return Err(lua_error(lua, reply::STRUCT_SIZE_OVERFLOW));
            }
            a = a * 10 + d;
            self.at += 1;
        }
        Ok(a as usize)
    }

    /// `optsize`.
    fn size(&mut self, lua: &Lua, opt: u8) -> mlua::Result<usize> {
        Ok(match opt {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.number(lua, 1)?,
            b'i' | b'I' => {
                let size = self.number(lua, 4)?;
                if size > MAX_INT_SIZE {
                    return Err(lua_error(lua, &reply::struct_integer_too_large(size)));
                }
                size
            }
            _ => 0,
        })
    }

    /// `controloptions`: endianness, alignment, spaces; anything else is
    /// an invalid option.
    fn control(&mut self, lua: &Lua, opt: u8, h: &mut Header) -> mlua::Result<()> {
        match opt {
            b' ' => {}
            b'>' => h.little = false,
            b'<' => h.little = true,
            b'!' => {
                let a = self.number(lua, MAX_ALIGN)?;
                if a == 0 || !a.is_power_of_two() {
                    return Err(lua_error(lua, &reply::struct_alignment(a)));
                }
                h.align = a;
            }
            _ => return Err(arg_error(lua, 1, &reply::struct_invalid_option(opt))),
        }
        Ok(())
    }
}

/// `gettoalign`: padding before an item of `size` at `len`.
fn to_align(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    size.wrapping_sub(len & size.wrapping_sub(1)) & size.wrapping_sub(1)
}

fn defaults() -> Header {
    Header {
        little: true,
        align: 1,
    }
}

/// `struct.pack(fmt, ...)`.
fn pack(lua: &Lua, state: &Shared, args: &MultiValue) -> mlua::Result<Value> {
    let fmt = check_string(lua, args, 0)?;
    // C pushes a nil after the arguments: the first missing one is "nil".
    let mut padded = args.clone();
    padded.push_back(Value::Nil);
    let args = &padded;
    let fmt = fmt.as_bytes();
    let mut f = Format { fmt: &fmt, at: 0 };
    let mut h = defaults();
    // C's 1-based argument number.
    let mut arg = 2;
    let mut out: Vec<u8> = Vec::new();
    let limit = room(lua);
    while let Some(opt) = f.next() {
        let mut size = f.size(lua, opt)?;
        let pad = to_align(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(lua, args, arg - 1)?;
                arg += 1;
                let mut value = if n < 0.0 { n as i64 as u64 } else { n as u64 };
                let mut bytes = vec![0u8; size];
                for i in 0..size {
                    let at = if h.little { i } else { size - 1 - i };
                    bytes[at] = value as u8;
                    value = value.checked_shr(8).unwrap_or(0);
                }
                out.extend_from_slice(&bytes);
            }
            b'x' => out.push(0),
            b'f' => {
                let n = check_number(lua, args, arg - 1)? as f32;
                arg += 1;
                out.extend_from_slice(&if h.little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                });
            }
            b'd' => {
                let n = check_number(lua, args, arg - 1)?;
                arg += 1;
                out.extend_from_slice(&if h.little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                });
            }
            b'c' | b's' => {
                let s = check_string(lua, args, arg - 1)?;
                arg += 1;
                let s = s.as_bytes();
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    return Err(arg_error(lua, arg, reply::STRUCT_STRING_TOO_SHORT));
                }
                if out.len().saturating_add(size) > limit {
                    return Err(out_of_memory());
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(lua, opt, &mut h)?,
        }
        if out.len() > limit {
            return Err(out_of_memory());
        }
    }
    charge(
        state,
        (fmt.len() + out.len()) as u64 + (arg as u64 - 2) * VALUE_BYTES,
    )?;
    Ok(Value::String(lua.create_string(&out)?))
}

/// `getinteger`: `size` bytes as an unsigned or sign-extended integer (a
/// 64-bit `long` in C: bytes past the eighth push the first ones out).
fn get_integer(bytes: &[u8], little: bool, signed: bool) -> f64 {
    let mut l: u64 = 0;
    let mut push = |b: u8| l = (l << 8) | u64::from(b);
    if little {
        bytes.iter().rev().for_each(|&b| push(b));
    } else {
        bytes.iter().for_each(|&b| push(b));
    }
    if !signed {
        return l as f64;
    }
    // x86 masks the shift count to 6 bits.
    let mask = u64::MAX.wrapping_shl((bytes.len() as u32 * 8).wrapping_sub(1));
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

/// `struct.unpack(fmt, data [, pos])`.
fn unpack(lua: &Lua, state: &Shared, args: &MultiValue) -> mlua::Result<MultiValue> {
    let fmt = check_string(lua, args, 0)?;
    let data = check_string(lua, args, 1)?;
    let (fmt, data) = (fmt.as_bytes(), data.as_bytes());
    let ld = data.len();
    // A size_t in C: a negative position is a huge one.
    let pos = opt_integer(lua, args, 2, 1)? as u64;
    if pos == 0 {
        return Err(arg_error(lua, 3, reply::STRUCT_OFFSET));
    }
    let mut pos = (pos - 1) as usize;
    let mut f = Format { fmt: &fmt, at: 0 };
    let mut h = defaults();
    let mut out: Vec<Value> = Vec::new();
    let too_short = || arg_error(lua, 2, reply::STRUCT_DATA_TOO_SHORT);
    while let Some(opt) = f.next() {
        let mut size = f.size(lua, opt)?;
        pos = pos.wrapping_add(to_align(pos, &h, opt, size));
        if size > ld || pos > ld - size {
            return Err(too_short());
        }
        // The arguments, the results and two more slots (luaL_checkstack).
        if args.len() + out.len() + 2 > MAX_C_STACK {
            return Err(lua_error(lua, reply::STRUCT_TOO_MANY_RESULTS));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = get_integer(&data[pos..pos + size], h.little, opt.is_ascii_lowercase());
                out.push(Value::Number(n));
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[pos..pos + 4].try_into().unwrap_or_default();
                let v = if h.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(Value::Number(f64::from(v)));
            }
            b'd' => {
                let b: [u8; 8] = data[pos..pos + 8].try_into().unwrap_or_default();
                let v = if h.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(Value::Number(v));
            }
            b'c' => {
                if size == 0 {
                    let previous = match out.last() {
                        Some(v @ (Value::Number(_) | Value::Integer(_) | Value::String(_))) => {
                            lua.coerce_number(v.clone())?
                        }
                        _ => None,
                    };
                    let Some(n) = previous else {
                        return Err(lua_error(lua, reply::STRUCT_C0_NEEDS_SIZE));
                    };
                    size = n as usize;
                    out.pop();
                    if size > ld || pos > ld - size {
                        return Err(too_short());
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(end) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(lua_error(lua, reply::STRUCT_UNFINISHED_STRING));
                };
                size = end + 1;
                out.push(Value::String(lua.create_string(&data[pos..pos + end])?));
            }
            _ => f.control(lua, opt, &mut h)?,
        }
        pos = pos.wrapping_add(size);
    }
    charge(
        state,
        (fmt.len() + pos.min(ld)) as u64 + out.len() as u64 * VALUE_BYTES,
    )?;
    out.push(Value::Integer((pos as i64).wrapping_add(1)));
    Ok(MultiValue::from_vec(out))
}

/// `struct.size(fmt)`.
fn size(lua: &Lua, state: &Shared, args: &MultiValue) -> mlua::Result<Value> {
    let fmt = check_string(lua, args, 0)?;
    let fmt = fmt.as_bytes();
    let mut f = Format { fmt: &fmt, at: 0 };
    let mut h = defaults();
    let mut pos: usize = 0;
    while let Some(opt) = f.next() {
        let size = f.size(lua, opt)?;
        pos = pos.wrapping_add(to_align(pos, &h, opt, size));
        if opt == b's' {
            return Err(arg_error(lua, 1, reply::STRUCT_S_NO_SIZE));
        } else if opt == b'c' && size == 0 {
            return Err(arg_error(lua, 1, reply::STRUCT_C0_NO_SIZE));
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(lua, opt, &mut h)?;
        }
        pos = pos.wrapping_add(size);
    }
    charge(state, fmt.len() as u64)?;
    Ok(Value::Integer(pos as i64))
}
