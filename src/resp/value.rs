//! [`Reply`]: what command handlers return, encoded for the connection's
//! protocol version. RESP3 types degrade to their RESP2 forms as Redis does:
//! maps flatten to arrays, sets to arrays, doubles to bulk strings, booleans to
//! integers, nulls to `$-1`/`*-1`.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

/// The protocol version a connection speaks (`HELLO 2|3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// A reply value, independent of protocol version (serializable: a node
/// sends its replies to the proxy in this form, see [`crate::wire`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Reply {
    /// `+text`
    Status(Cow<'static, str>),
    /// `-text` (the text starts with its code, e.g. `ERR ...`)
    Error(Cow<'static, str>),
    Int(i64),
    Bulk(Bytes),
    /// Null bulk string (`$-1` / `_`).
    Nil,
    Array(Vec<Reply>),
    /// Null array (`*-1` / `_`).
    NilArray,
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(f64),
    Bool(bool),
    /// Verbatim text (`=len\r\ntxt:...`), a bulk string in RESP2.
    Verbatim(String),
    /// Out-of-band data (`>n`, Pub/Sub confirmations and messages), an
    /// array in RESP2.
    Push(Vec<Reply>),
    /// Several replies to one command, one after another (SUBSCRIBE a b
    /// answers a frame per channel); none is nothing at all.
    Frames(Vec<Reply>),
}

impl Reply {
    pub const fn ok() -> Reply {
        Reply::Status(Cow::Borrowed(super::reply::OK))
    }

    pub const fn status(s: &'static str) -> Reply {
        Reply::Status(Cow::Borrowed(s))
    }

    pub fn status_owned(s: String) -> Reply {
        Reply::Status(Cow::Owned(s))
    }

    pub const fn err(s: &'static str) -> Reply {
        Reply::Error(Cow::Borrowed(s))
    }

    pub fn err_owned(s: String) -> Reply {
        Reply::Error(Cow::Owned(s))
    }

    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    pub fn bulk_slice(b: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(b))
    }

    /// About how many bytes this reply carries (its payloads, not its
    /// framing): what a batch counts against its reply budget.
    pub fn size_hint(&self) -> usize {
        match self {
            Reply::Status(t) | Reply::Error(t) => t.len(),
            Reply::Bulk(b) => b.len(),
            Reply::Verbatim(t) => t.len(),
            Reply::Array(items) | Reply::Set(items) | Reply::Push(items) | Reply::Frames(items) => {
                items.iter().map(Reply::size_hint).sum()
            }
            Reply::Map(pairs) => pairs
                .iter()
                .map(|(k, v)| k.size_hint() + v.size_hint())
                .sum(),
            Reply::Int(_) | Reply::Nil | Reply::NilArray | Reply::Double(_) | Reply::Bool(_) => 8,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends this reply to `out`, encoded for `proto`.
    pub fn encode(&self, proto: Protocol, out: &mut BytesMut) {
        let resp3 = proto == Protocol::Resp3;
        match self {
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Int(n) => {
                out.put_u8(b':');
                put_int(out, *n);
                out.put_slice(b"\r\n");
            }
            Reply::Bulk(b) => bulk(out, b),
            Reply::Nil if resp3 => out.put_slice(b"_\r\n"),
            Reply::Nil => out.put_slice(b"$-1\r\n"),
            Reply::NilArray if resp3 => out.put_slice(b"_\r\n"),
            Reply::NilArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                header(out, b'*', items.len());
                for r in items {
                    r.encode(proto, out);
                }
            }
            Reply::Set(items) => {
                header(out, if resp3 { b'~' } else { b'*' }, items.len());
                for r in items {
                    r.encode(proto, out);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len() * 2);
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    line(out, b',', text.as_bytes());
                } else {
                    bulk(out, text.as_bytes());
                }
            }
            Reply::Bool(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Bool(b) => out.put_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
            Reply::Verbatim(text) if resp3 => {
                header(out, b'=', text.len() + 4);
                out.put_slice(b"txt:");
                out.put_slice(text.as_bytes());
                out.put_slice(b"\r\n");
            }
            Reply::Verbatim(text) => bulk(out, text.as_bytes()),
            Reply::Push(items) => {
                header(out, if resp3 { b'>' } else { b'*' }, items.len());
                for r in items {
                    r.encode(proto, out);
                }
            }
            Reply::Frames(frames) => {
                for r in frames {
                    r.encode(proto, out);
                }
            }
        }
    }
}

impl From<i64> for Reply {
    fn from(n: i64) -> Reply {
        Reply::Int(n)
    }
}

impl From<Option<Bytes>> for Reply {
    fn from(v: Option<Bytes>) -> Reply {
        v.map_or(Reply::Nil, Reply::Bulk)
    }
}

/// Formats a double as Redis 7.2 does: the shortest text that reads back as
/// the same value, `inf`/`-inf`, integers without a fraction.
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == d.trunc() && d.abs() < 1e17 {
        return format!("{}", d as i64);
    }
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(d);
    // ryu writes exponents as `1e300`; Redis writes `1e+300`.
    match s.find('e') {
        Some(at) if !s[at + 1..].starts_with('-') => format!("{}e+{}", &s[..at], &s[at + 1..]),
        _ => s.to_string(),
    }
}

fn line(out: &mut BytesMut, prefix: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(prefix);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

fn header(out: &mut BytesMut, prefix: u8, len: usize) {
    out.put_u8(prefix);
    put_int(out, len as i64);
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, b: &[u8]) {
    out.reserve(b.len() + 16);
    header(out, b'$', b.len());
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

fn put_int(out: &mut BytesMut, n: i64) {
    let mut buf = itoa::Buffer::new();
    out.put_slice(buf.format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, p: Protocol) -> String {
        let mut out = BytesMut::new();
        r.encode(p, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn resp3_types_degrade_for_resp2() {
        let m = Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]);
        assert_eq!(enc(&m, Protocol::Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&m, Protocol::Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Nil, Protocol::Resp2), "$-1\r\n");
        assert_eq!(enc(&Reply::Nil, Protocol::Resp3), "_\r\n");
        assert_eq!(enc(&Reply::NilArray, Protocol::Resp2), "*-1\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Protocol::Resp2), "$3\r\n1.5\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Protocol::Resp3), ",1.5\r\n");
        assert_eq!(enc(&Reply::Bool(true), Protocol::Resp2), ":1\r\n");
        assert_eq!(
            enc(&Reply::Verbatim("x".into()), Protocol::Resp3),
            "=5\r\ntxt:x\r\n"
        );
    }

    #[test]
    fn doubles_format_like_redis() {
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(10.6), "10.6");
        assert_eq!(format_double(-0.1), "-0.1");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(1e300), "1e+300");
    }
}
