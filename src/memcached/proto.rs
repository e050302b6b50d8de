//! The Memcached text and meta protocols: request lines (and storage data
//! blocks) from the read buffer into [`Request`] values, as memcached
//! 1.6's `proto_text.c` reads them: tokens split on spaces (at most 24,
//! the terminal one included), numbers read as `strtol`/`strtoul` do (a
//! 32-bit field keeps the low bits of a larger number, as memcached's
//! does on 64-bit machines), the error line each malformed command gets.
//!
//! Three outcomes, as the RESP codec: not enough bytes yet
//! ([`Decoded::Incomplete`]); a line that can never be whole (no newline
//! in 2048 bytes, 64 KiB for a multi-get) closes the connection
//! ([`Decoded::Close`]); everything else is a [`Request`], errors included
//! (an error line to answer, and data bytes to swallow after it).
//! A data block is accepted or refused by its announced length before
//! any of it is buffered: past the cache's item size limit, memcached's
//! `SERVER_ERROR object too large for cache` and the block is swallowed
//! as it arrives.

use bytes::{Bytes, BytesMut};

use crate::cmd::memcached::Mode;

/// Longest key, bytes (memcached's `KEY_MAX_LENGTH`).
pub const KEY_MAX: usize = 250;
/// Bytes buffered without a newline before the connection is closed
/// (a multi-get's line may be longer, up to [`GET_LINE_MAX`]).
pub const LINE_MAX: usize = 2048;
/// Longest multi-get line, bytes (memcached has no limit): thousands of
/// keys, while one request's reply stays bounded by keys × item size.
pub const GET_LINE_MAX: usize = 64 * 1024;
/// Tokens memcached reads from a line, the terminal one included.
const MAX_TOKENS: usize = 24;
/// Meta commands take at most this many tokens (`MFLAG_MAX_OPT_LENGTH`).
const META_MAX_TOKENS: usize = 20;
/// Longest opaque token (`O...`), bytes.
const OPAQUE_MAX: usize = 32;

pub const ERROR: &str = "ERROR";
pub const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
pub const BAD_CHUNK: &str = "CLIENT_ERROR bad data chunk";
pub const TOO_LARGE: &str = "SERVER_ERROR object too large for cache";
pub const BAD_EXPTIME: &str = "CLIENT_ERROR invalid exptime argument";
pub const BAD_DELTA: &str = "CLIENT_ERROR invalid numeric delta argument";
pub const DELETE_USAGE: &str =
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";

/// A meta command's flags, as memcached's `_meta_flag_preparse` reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaFlags {
    pub base64: bool,
    pub vivify: Option<i64>,
    pub ttl: Option<i64>,
    pub recache: Option<i64>,
    pub value: bool,
    pub no_update: bool,
    pub quiet: bool,
    pub client_flags: u32,
    pub compare: Option<u64>,
    pub explicit: Option<u64>,
    pub mode: Option<u8>,
    pub initial: u64,
    pub delta: u64,
    pub invalidate: bool,
    /// md `x` (1.6.27+): empty the value, keep the item.
    pub remove_value: bool,
    /// The flag tokens in request order (for the reply's return flags).
    pub tokens: Vec<Bytes>,
}

/// A meta command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// `g`, `s`, `d`, `a` or `e`.
    pub cmd: u8,
    /// The key (decoded when `b` was given).
    pub key: Bytes,
    pub flags: MetaFlags,
    /// ms: the data block.
    pub data: Bytes,
}

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// get, gets, gat, gats.
    Get {
        keys: Vec<Bytes>,
        cas: bool,
        touch: Option<i64>,
    },
    Store {
        mode: Mode,
        key: Bytes,
        flags: u32,
        exptime: i64,
        cas: u64,
        data: Bytes,
        noreply: bool,
    },
    Touch {
        key: Bytes,
        exptime: i64,
        noreply: bool,
    },
    Arith {
        key: Bytes,
        incr: bool,
        delta: u64,
        noreply: bool,
    },
    Delete {
        key: Bytes,
        noreply: bool,
    },
    FlushAll {
        delay: i64,
        noreply: bool,
    },
    Version,
    Verbosity {
        noreply: bool,
    },
    Quit,
    Stats {
        args: Vec<Bytes>,
    },
    Mn,
    Meta(Box<Meta>),
    /// The authentication `set`'s data: `<user> <password>`.
    Auth {
        user: Bytes,
        pass: Bytes,
    },
    /// An error (or fixed) line to answer; then `swallow` bytes of data to
    /// discard. `unlink`: a refused SET removes the key's old item, as
    /// memcached does (no stale data after a failed store).
    Fail {
        line: &'static str,
        noreply: bool,
        swallow: usize,
        unlink: Option<Bytes>,
    },
}

/// What the read buffer holds.
#[derive(Debug)]
pub enum Decoded {
    Incomplete,
    /// A line that can never end: close the connection.
    Close,
    Request(Request),
}

fn fail(line: &'static str) -> Request {
    Request::Fail {
        line,
        noreply: false,
        swallow: 0,
        unlink: None,
    }
}

/// memcached's `safe_strtol` into an `int32_t` (a 64-bit `long` truncated).
pub fn strtol32(t: &[u8]) -> Option<i64> {
    strtoll(t).map(|v| i64::from(v as i32))
}

/// memcached's `safe_strtoll`.
pub fn strtoll(t: &[u8]) -> Option<i64> {
    let (neg, digits) = sign_and_digits(t)?;
    let mut v: i64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(i64::from(d - b'0'))?
        } else {
            v.checked_add(i64::from(d - b'0'))?
        };
    }
    Some(v)
}

/// memcached's `safe_strtoull`: a `-` refused only on results past
/// `i64::MAX` (as a signed number), as `strtoull` wraps.
pub fn strtoull(t: &[u8]) -> Option<u64> {
    let (neg, digits) = sign_and_digits(t)?;
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    let v = if neg { v.wrapping_neg() } else { v };
    if (v as i64) < 0 && t.contains(&b'-') {
        return None;
    }
    Some(v)
}

/// memcached's `safe_strtoul` into a `uint32_t` (the low 32 bits).
pub fn strtoul32(t: &[u8]) -> Option<u32> {
    strtoull(t).map(|v| v as u32)
}

/// Leading whitespace, a sign, digits; then the end or whitespace.
fn sign_and_digits(t: &[u8]) -> Option<(bool, &[u8])> {
    let start = t.iter().position(|c| !is_space(*c)).unwrap_or(t.len());
    let s = &t[start..];
    let (neg, rest) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let end = rest
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if end == 0 || (end < rest.len() && !is_space(rest[end])) {
        return None;
    }
    Some((neg, &rest[..end]))
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Splits a line into memcached's tokens: at most `MAX_TOKENS - 1`; the
/// bool says whether text is left after the last one.
fn tokenize(line: &Bytes, max: usize) -> (Vec<Bytes>, Option<Bytes>) {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    while i < n {
        while i < n && line[i] == b' ' {
            i += 1;
        }
        if i >= n {
            break;
        }
        if out.len() == max - 1 {
            return (out, Some(line.slice(i..)));
        }
        let start = i;
        while i < n && line[i] != b' ' {
            i += 1;
        }
        out.push(line.slice(start..i));
    }
    (out, None)
}

/// Longest authentication data accepted, bytes: a user and a token (the
/// data of a longer one is swallowed and the attempt fails).
pub const AUTH_DATA_MAX: usize = 4096;

/// Decodes the request of a connection that has not authenticated
/// (memcached's `try_read_command_asciiauth`): the `set` line and its data
/// as [`Request::Auth`]; any other line is refused `unauthenticated`.
pub fn decode_auth(buf: &mut BytesMut) -> Decoded {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > LINE_MAX {
            Decoded::Close
        } else {
            Decoded::Incomplete
        };
    };
    let line = Bytes::copy_from_slice(&buf[..nl]);
    let (tokens, _) = tokenize(&line, MAX_TOKENS);
    let size = (tokens.len() >= 5 && &tokens[0][..] == b"set")
        .then(|| strtoul32(&tokens[4]))
        .flatten();
    let Some(size) = size else {
        let _ = buf.split_to(nl + 1);
        return Decoded::Request(fail(super::UNAUTHENTICATED));
    };
    let size = size as usize;
    if size > AUTH_DATA_MAX {
        let _ = buf.split_to(nl + 1);
        return Decoded::Request(Request::Fail {
            line: super::AUTH_FAILED,
            noreply: false,
            swallow: size + 2,
            unlink: None,
        });
    }
    let total = nl + 1 + size + 2;
    if buf.len() < total {
        return Decoded::Incomplete;
    }
    let frame = buf.split_to(total).freeze();
    let data = frame.slice(nl + 1..total);
    if &data[size..] != b"\r\n" {
        return Decoded::Request(fail(super::AUTH_BAD_TERMINATION));
    }
    let data = data.slice(..size);
    let data = match memchr::memchr(0, &data) {
        Some(z) => data.slice(..z),
        None => data,
    };
    match auth_words(&data) {
        Some((user, pass)) => Decoded::Request(Request::Auth { user, pass }),
        None => Decoded::Request(fail(super::AUTH_BAD_FORMAT)),
    }
}

/// `<user> <password>` of an authentication `set`'s data.
pub fn auth_words(data: &Bytes) -> Option<(Bytes, Bytes)> {
    let (words, _) = tokenize(data, MAX_TOKENS);
    (words.len() >= 2).then(|| (words[0].clone(), words[1].clone()))
}

/// What an item costs in memcached's item size limit beyond its data and
/// key: the item header (48 bytes), the CAS (8), the key's terminator (1)
/// and the data's CRLF (2); client flags other than 0 add 4. A store is
/// too large when these and its key and data pass `item_size_max`, as
/// memcached counts (its `item_size_ok`), so both refuse the same sizes.
pub const ITEM_OVERHEAD: usize = 59;

/// Whether an item of `len` data bytes under `key` with `flags` passes
/// the item size limit `item_max` (see [`ITEM_OVERHEAD`]).
fn too_large(len: usize, key: &[u8], flags: u32, item_max: usize) -> bool {
    let flags_len = if flags == 0 { 0 } else { 4 };
    len.saturating_add(key.len() + ITEM_OVERHEAD + flags_len) > item_max
}

/// Decodes one request from the front of `buf` (consuming it), with
/// items up to `item_max` bytes (see [`ITEM_OVERHEAD`]).
pub fn decode(buf: &mut BytesMut, item_max: usize) -> Decoded {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        if buf.len() > LINE_MAX {
            let lead = buf.iter().take_while(|c| **c == b' ').count();
            let rest = &buf[lead..];
            if lead > 100
                || buf.len() > GET_LINE_MAX
                || !(rest.starts_with(b"get ") || rest.starts_with(b"gets "))
            {
                return Decoded::Close;
            }
        }
        return Decoded::Incomplete;
    };
    let mut end = nl;
    if end > 1 && buf[end - 1] == b'\r' {
        end -= 1;
    }
    let after_line = nl + 1;
    // A command without a data block takes its line out of the buffer (its
    // keys are slices of it); a storage command's line is parsed from a
    // copy first, as what it announces is checked before its data is
    // awaited.
    let visible = memchr::memchr(0, &buf[..end]).unwrap_or(end);
    let first = buf[..visible]
        .split(|c| *c == b' ')
        .find(|t| !t.is_empty())
        .unwrap_or(&[]);
    let takes_data = matches!(
        first,
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" | b"ms"
    );
    let (line, consumed) = if takes_data {
        (Bytes::copy_from_slice(&buf[..end]), false)
    } else {
        (buf.split_to(after_line).freeze().slice(..end), true)
    };
    let line = match memchr::memchr(0, &line) {
        Some(z) => line.slice(..z),
        None => line,
    };
    match parse_line(&line, item_max) {
        Parsed::Done(req) => {
            if !consumed {
                let _ = buf.split_to(after_line);
            }
            Decoded::Request(req)
        }
        Parsed::NeedsData { len, build } => {
            let total = after_line + len + 2;
            if buf.len() < total {
                return Decoded::Incomplete;
            }
            let frame = buf.split_to(total).freeze();
            let block = frame.slice(after_line..total);
            if &block[len..] != b"\r\n" {
                return Decoded::Request(build(None));
            }
            Decoded::Request(build(Some(block.slice(..len))))
        }
    }
}

/// A line parsed: a request, or a request that needs its data block
/// (`None` given to `build` when the block does not end in `\r\n`).
enum Parsed {
    Done(Request),
    NeedsData {
        len: usize,
        build: Box<dyn FnOnce(Option<Bytes>) -> Request + Send>,
    },
}

fn parse_line(line: &Bytes, item_max: usize) -> Parsed {
    let (tokens, rest) = tokenize(line, MAX_TOKENS);
    // `ntokens` as memcached counts: the tokens plus the terminal one.
    let ntokens = tokens.len() + 1;
    if ntokens < 2 || tokens[0].len() < 2 {
        return Parsed::Done(fail(ERROR));
    }
    let name = &tokens[0][..];
    // `noreply` is the last token, where a command takes it.
    let noreply = tokens.last().is_some_and(|t| &t[..] == b"noreply");
    if name.len() == 2 && name[0] == b'm' {
        return meta(name[1], &tokens, rest.is_some(), item_max);
    }
    let done = Parsed::Done;
    match name {
        b"get" | b"gets" | b"gat" | b"gats" | b"bget" => {
            if ntokens < 3 {
                return done(fail(ERROR));
            }
            let cas = name == b"gets" || name == b"gats";
            let touch = name == b"gat" || name == b"gats";
            let mut keys: Vec<Bytes> = tokens[1..].to_vec();
            if let Some(rest) = rest {
                // A multi-get longer than 23 tokens: the rest of the line.
                keys.extend(
                    rest.split(|c| *c == b' ')
                        .filter(|k| !k.is_empty())
                        .map(|k| rest.slice_ref(k)),
                );
            }
            let touch = if touch {
                match strtol32(&keys[0]) {
                    Some(t) => {
                        keys.remove(0);
                        Some(t)
                    }
                    None => return done(fail(BAD_EXPTIME)),
                }
            } else {
                None
            };
            if keys.iter().any(|k| k.len() > KEY_MAX) {
                return done(fail(BAD_FORMAT));
            }
            done(Request::Get { keys, cas, touch })
        }
        b"set" | b"add" | b"append" | b"replace" | b"prepend" | b"cas" => {
            let with_cas = name == b"cas";
            let want = if with_cas { [7, 8] } else { [6, 7] };
            if !want.contains(&ntokens) {
                return done(fail(ERROR));
            }
            let mode = match name {
                b"add" => Mode::Add,
                b"append" => Mode::Append,
                b"replace" => Mode::Replace,
                b"prepend" => Mode::Prepend,
                b"cas" => Mode::Cas,
                _ => Mode::Set,
            };
            let bad = |noreply| {
                done(Request::Fail {
                    line: BAD_FORMAT,
                    noreply,
                    swallow: 0,
                    unlink: None,
                })
            };
            if tokens[1].len() > KEY_MAX {
                return bad(noreply);
            }
            let (Some(flags), Some(exptime), Some(len)) = (
                strtoul32(&tokens[2]),
                strtol32(&tokens[3]),
                strtol32(&tokens[4]),
            ) else {
                return bad(noreply);
            };
            let cas = if with_cas {
                match strtoull(&tokens[5]) {
                    Some(c) => c,
                    None => return bad(noreply),
                }
            } else {
                0
            };
            if len < 0 {
                return bad(noreply);
            }
            let len = len as usize;
            let key = tokens[1].clone();
            if too_large(len, &key, flags, item_max) {
                return done(Request::Fail {
                    line: TOO_LARGE,
                    noreply,
                    swallow: len + 2,
                    unlink: (mode == Mode::Set).then_some(key),
                });
            }
            Parsed::NeedsData {
                len,
                build: Box::new(move |data| match data {
                    Some(data) => Request::Store {
                        mode,
                        key,
                        flags,
                        exptime,
                        cas,
                        data,
                        noreply,
                    },
                    None => Request::Fail {
                        line: BAD_CHUNK,
                        noreply,
                        swallow: 0,
                        unlink: None,
                    },
                }),
            }
        }
        b"touch" => {
            if ntokens != 4 && ntokens != 5 {
                return done(fail(ERROR));
            }
            let reply = |line| {
                done(Request::Fail {
                    line,
                    noreply,
                    swallow: 0,
                    unlink: None,
                })
            };
            if tokens[1].len() > KEY_MAX {
                return reply(BAD_FORMAT);
            }
            match strtol32(&tokens[2]) {
                Some(exptime) => done(Request::Touch {
                    key: tokens[1].clone(),
                    exptime,
                    noreply,
                }),
                None => reply(BAD_EXPTIME),
            }
        }
        b"incr" | b"decr" => {
            if ntokens != 4 && ntokens != 5 {
                return done(fail(ERROR));
            }
            let reply = |line| {
                done(Request::Fail {
                    line,
                    noreply,
                    swallow: 0,
                    unlink: None,
                })
            };
            if tokens[1].len() > KEY_MAX {
                return reply(BAD_FORMAT);
            }
            match strtoull(&tokens[2]) {
                Some(delta) => done(Request::Arith {
                    key: tokens[1].clone(),
                    incr: name == b"incr",
                    delta,
                    noreply,
                }),
                None => reply(BAD_DELTA),
            }
        }
        b"delete" => {
            if !(3..=5).contains(&ntokens) {
                return done(fail(ERROR));
            }
            let mut noreply_set = false;
            if ntokens > 3 {
                let hold_is_zero = &tokens[2][..] == b"0";
                noreply_set = noreply;
                let valid = (ntokens == 4 && (hold_is_zero || noreply))
                    || (ntokens == 5 && hold_is_zero && noreply);
                if !valid {
                    return done(Request::Fail {
                        line: DELETE_USAGE,
                        noreply: noreply_set,
                        swallow: 0,
                        unlink: None,
                    });
                }
            }
            if tokens[1].len() > KEY_MAX {
                return done(Request::Fail {
                    line: BAD_FORMAT,
                    noreply: noreply_set,
                    swallow: 0,
                    unlink: None,
                });
            }
            done(Request::Delete {
                key: tokens[1].clone(),
                noreply: noreply_set,
            })
        }
        b"flush_all" => {
            if !(2..=4).contains(&ntokens) {
                return done(fail(ERROR));
            }
            let delay = if ntokens == (if noreply { 3 } else { 2 }) {
                0
            } else {
                match strtol32(&tokens[1]) {
                    Some(d) => d,
                    None => {
                        return done(Request::Fail {
                            line: BAD_EXPTIME,
                            noreply,
                            swallow: 0,
                            unlink: None,
                        });
                    }
                }
            };
            done(Request::FlushAll { delay, noreply })
        }
        b"version" => done(Request::Version),
        b"quit" => done(Request::Quit),
        b"verbosity" => {
            if ntokens != 3 && ntokens != 4 {
                return done(fail(ERROR));
            }
            if strtoul32(&tokens[1]).is_none() {
                return done(Request::Fail {
                    line: BAD_FORMAT,
                    noreply,
                    swallow: 0,
                    unlink: None,
                });
            }
            done(Request::Verbosity { noreply })
        }
        b"stats" => done(Request::Stats {
            args: tokens[1..].to_vec(),
        }),
        _ => done(fail(ERROR)),
    }
}

/// Meta commands (`mg ms md ma me mn`).
fn meta(cmd: u8, tokens: &[Bytes], more: bool, item_max: usize) -> Parsed {
    let done = Parsed::Done;
    let ntokens = tokens.len() + 1 + usize::from(more);
    match cmd {
        b'n' => return done(Request::Mn),
        b'g' | b's' | b'd' | b'a' | b'e' => {}
        _ => return done(fail(ERROR)),
    }
    if cmd == b'e' && (ntokens < 3 || tokens[1].len() > KEY_MAX) {
        return done(fail(BAD_FORMAT));
    }
    if ntokens < 3 {
        return done(fail(ERROR));
    }
    if tokens[1].len() > KEY_MAX {
        return done(fail(BAD_FORMAT));
    }
    if cmd == b'e' {
        let key = if tokens.get(2).is_some_and(|t| &t[..] == b"b") {
            match base64_decode(&tokens[1]) {
                Some(k) => Bytes::from(k),
                None => return done(fail(BAD_FORMAT)),
            }
        } else {
            tokens[1].clone()
        };
        return done(Request::Meta(Box::new(Meta {
            cmd,
            key,
            flags: MetaFlags {
                base64: tokens.get(2).is_some_and(|t| &t[..] == b"b"),
                ..MetaFlags::default()
            },
            data: Bytes::new(),
        })));
    }
    if cmd == b's' && ntokens == 3 {
        return done(fail(BAD_FORMAT));
    }
    if ntokens > META_MAX_TOKENS {
        return done(fail(if cmd == b'g' {
            "CLIENT_ERROR options flags are too long"
        } else {
            "CLIENT_ERROR options flags too long"
        }));
    }
    let mut len = 0usize;
    let first_flag = if cmd == b's' {
        match strtol32(&tokens[2]) {
            Some(l) if l >= 0 => len = l as usize,
            _ => return done(fail(BAD_FORMAT)),
        }
        3
    } else {
        2
    };
    // ms errors from here on swallow the data block announced.
    let swallow = if cmd == b's' { len + 2 } else { 0 };
    let error = |line: &'static str| {
        done(Request::Fail {
            line,
            noreply: false,
            swallow,
            unlink: None,
        })
    };
    let mut key = tokens[1].clone();
    let flags = match preparse(&tokens[first_flag..], &mut key) {
        Ok(f) => f,
        Err(e) => {
            return error(match cmd {
                b'd' | b'a' => "CLIENT_ERROR invalid or duplicate flag",
                _ => e,
            });
        }
    };
    if flags
        .tokens
        .iter()
        .any(|t| t[0] == b'O' && t.len() > OPAQUE_MAX)
    {
        return error("CLIENT_ERROR opaque token too long");
    }
    match (cmd, flags.mode) {
        (b's', Some(m)) if !b"EAPRS".contains(&m) => {
            return error("CLIENT_ERROR invalid mode for ms M token");
        }
        (b'a', Some(m)) if !b"ID+-".contains(&m) => {
            return error("CLIENT_ERROR invalid mode for ma M token");
        }
        _ => {}
    }
    if cmd != b's' {
        return done(Request::Meta(Box::new(Meta {
            cmd,
            key,
            flags,
            data: Bytes::new(),
        })));
    }
    if too_large(len, &key, flags.client_flags, item_max) {
        return done(Request::Fail {
            line: TOO_LARGE,
            noreply: false,
            swallow,
            unlink: Some(key),
        });
    }
    Parsed::NeedsData {
        len,
        build: Box::new(move |data| match data {
            Some(data) => Request::Meta(Box::new(Meta {
                cmd,
                key,
                flags,
                data,
            })),
            None => fail(BAD_CHUNK),
        }),
    }
}

/// memcached's `_meta_flag_preparse`: the flags after the key (and the
/// data length of ms); decodes a base64 key in place.
fn preparse(tokens: &[Bytes], key: &mut Bytes) -> Result<MetaFlags, &'static str> {
    let mut f = MetaFlags::default();
    let mut seen = [false; 128];
    let mut error: Option<&'static str> = None;
    let bad_token = "CLIENT_ERROR bad token in command line format";
    for t in tokens {
        let o = t[0];
        if o >= 127 || seen[usize::from(o)] {
            return Err("CLIENT_ERROR duplicate flag");
        }
        seen[usize::from(o)] = true;
        let arg = &t[1..];
        match o {
            b'b' => match base64_decode(key) {
                Some(k) if !k.is_empty() => {
                    *key = Bytes::from(k);
                    f.base64 = true;
                }
                _ => error = Some("CLIENT_ERROR error decoding key"),
            },
            b'N' => match strtol32(arg) {
                Some(v) => f.vivify = Some(v),
                None => error = Some(bad_token),
            },
            b'T' => match strtol32(arg) {
                Some(v) => f.ttl = Some(v),
                None => error = Some(bad_token),
            },
            b'R' => match strtol32(arg) {
                Some(v) => f.recache = Some(v),
                None => error = Some(bad_token),
            },
            b'l' | b'O' | b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' | b'h' => {}
            b'v' => f.value = true,
            b'u' => f.no_update = true,
            b'q' => f.quiet = true,
            b'F' => match strtoul32(arg) {
                Some(v) => f.client_flags = v,
                None => error = Some(BAD_FORMAT),
            },
            b'C' => match strtoull(arg) {
                Some(v) => f.compare = Some(v),
                None => error = Some(bad_token),
            },
            // Memcached 1.6.27+'s explicit CAS (not in 1.6.18).
            b'E' => match strtoull(arg) {
                Some(v) => f.explicit = Some(v),
                None => error = Some(bad_token),
            },
            b'M' => {
                if t.len() != 2 {
                    error = Some("CLIENT_ERROR incorrect length for M token");
                } else {
                    f.mode = Some(t[1]);
                }
            }
            b'J' => match strtoull(arg) {
                Some(v) => f.initial = v,
                None => error = Some("CLIENT_ERROR invalid numeric initial value"),
            },
            b'D' => match strtoull(arg) {
                Some(v) => f.delta = v,
                None => error = Some("CLIENT_ERROR invalid numeric delta value"),
            },
            b'I' => f.invalidate = true,
            // Memcached 1.6.27+'s md `x` (not in 1.6.18).
            b'x' => f.remove_value = true,
            _ => return Err("CLIENT_ERROR invalid flag"),
        }
        f.tokens.push(t.clone());
    }
    match error {
        Some(e) => Err(e),
        None => Ok(f),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (meta `b` keys).
pub fn base64_encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(B64[(n >> 18) as usize & 63]);
        out.push(B64[(n >> 12) as usize & 63]);
        out.push(if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if chunk.len() > 2 {
            B64[n as usize & 63]
        } else {
            b'='
        });
    }
    out
}

/// Decodes standard base64 (padding optional); `None` on a bad character.
pub fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in text {
        if c == b'=' {
            break;
        }
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(input: &[u8]) -> Request {
        let mut buf = BytesMut::from(input);
        match decode(&mut buf, 1 << 20) {
            Decoded::Request(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numbers_read_as_memcached_reads_them() {
        assert_eq!(strtoul32(b"4294967296"), Some(0));
        assert_eq!(strtol32(b"4294967297"), Some(1));
        assert_eq!(strtoull(b"-1"), None);
        assert_eq!(strtoull(b"-0"), Some(0));
        assert_eq!(strtol32(b"-5"), Some(-5));
        assert_eq!(strtol32(b"5x"), None);
        assert_eq!(strtol32(b""), None);
    }

    #[test]
    fn storage_waits_for_its_block_and_checks_its_end() {
        let mut buf = BytesMut::from(&b"set k 1 0 3\r\nab"[..]);
        assert!(matches!(decode(&mut buf, 100), Decoded::Incomplete));
        buf.extend_from_slice(b"c\r\n");
        assert!(matches!(
            decode(&mut buf, 100),
            Decoded::Request(Request::Store { .. })
        ));
        assert!(buf.is_empty());
        assert!(matches!(
            one(b"set k 1 0 2\r\nabc\r\n"),
            Request::Fail {
                line: BAD_CHUNK,
                ..
            }
        ));
        assert!(matches!(
            one(b"set k 1 0 4000000\r\n"),
            Request::Fail {
                line: TOO_LARGE,
                swallow: 4000002,
                ..
            }
        ));
    }

    /// Random lines from memcached's vocabulary, whole or cut anywhere,
    /// never panic the decoder, and it always consumes what it answers.
    #[test]
    fn random_input_never_panics() {
        use rand::{Rng, SeedableRng};
        const POOL: &[&str] = &[
            "get",
            "gets",
            "gat",
            "gats",
            "set",
            "add",
            "cas",
            "append",
            "incr",
            "decr",
            "delete",
            "touch",
            "flush_all",
            "verbosity",
            "stats",
            "mg",
            "ms",
            "md",
            "ma",
            "me",
            "mn",
            "noreply",
            "k",
            "0",
            "1",
            "-1",
            "5",
            "99999999999",
            "4294967296",
            "v",
            "b",
            "T1",
            "N5",
            "R3",
            "C1",
            "E2",
            "MA",
            "MX",
            "M",
            "Ok",
            "q",
            "I",
            "D5",
            "J7",
            "Zm9v",
            "!!",
            "\r",
            "\t",
            "x",
            "",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..20_000 {
            let n = rng.random_range(0..8);
            let mut line = String::new();
            for i in 0..n {
                if i > 0 {
                    line.push(' ');
                }
                line.push_str(POOL[rng.random_range(0..POOL.len())]);
            }
            line.push_str("\r\n");
            if rng.random_bool(0.5) {
                line.push_str("abcde\r\n");
            }
            let bytes = line.as_bytes();
            let cut = rng.random_range(0..=bytes.len());
            for input in [&bytes[..cut], bytes] {
                let mut buf = BytesMut::from(input);
                let before = buf.len();
                if let Decoded::Request(_) = decode(&mut buf, 64) {
                    assert!(buf.len() < before, "{line:?}");
                }
                let mut buf = BytesMut::from(input);
                let _ = decode_auth(&mut buf);
            }
        }
    }

    #[test]
    fn base64_round_trips() {
        for s in [&b""[..], b"a", b"ab", b"abc", b"\x00\xff\x10key"] {
            assert_eq!(base64_decode(&base64_encode(s)).unwrap(), s);
        }
        assert_eq!(base64_encode(b"foo"), b"Zm9v");
        assert_eq!(base64_decode(b"!!"), None);
    }
}
