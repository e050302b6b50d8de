//! Request framing: RESP multibulk (`*N\r\n$len\r\n...`) and inline commands
//! (a line of space-separated words, with Redis's quoting rules).
//!
//! [`Decoder::decode`] looks at the connection's read buffer and returns one of:
//! 1. `Ok(None)`: incomplete; wait for more bytes (nothing is consumed but
//!    empty requests such as `*0` or a blank line before the partial one);
//! 2. `Err(ProtocolError)`: a framing violation; the caller replies and closes;
//! 3. `Ok(Some(Request))`: a whole request, consumed from the buffer. Arguments
//!    are `Bytes` slices of the read buffer: no second copy.
//!
//! Limits are checked on headers before any byte of the body is awaited, and
//! nothing is reserved on a header's promise. The outcome never depends on how
//! the bytes were split across reads.
//!
//! Headers follow Redis 7's `processMultibulkBuffer`: a `*N`/`$N` line is
//! awaited whole (up to its CR, within 64 KiB) before it is judged, and `N`
//! is read as `string2ll` reads it: no leading zeros, '+' or spaces, no `-0`.
//! Deliberate differences, all on input no client sends: a bulk string not
//! followed by CRLF is a framing error (Redis skips two bytes blindly); a NUL
//! byte in a header is just an invalid length (Redis's `strchr` stops there
//! and waits); a header whose CR lies past 64 KiB is "too big" however it
//! arrives (Redis's answer depends on its read sizes); a non-ASCII byte in
//! `expected '$', got 'c'` is sent as that Latin-1 character in UTF-8 (Redis
//! sends the raw byte; our error replies are text).

use bytes::{Buf, Bytes, BytesMut};

/// A request's arguments: up to [`INLINE_ARGS`] held in the request
/// itself, so the commonest requests (GET, SET, INCR, HGET...) decode with
/// no allocation (a vector was a malloc and a free per request: 2% of a
/// pipeline-1 GET's instructions, 4% of a pipeline-16 one's). Four inline
/// spared HSET and ZADD theirs but cost GET more than it saved.
pub type Args = smallvec::SmallVec<[Bytes; INLINE_ARGS]>;

/// Arguments a request holds without an allocation (see [`Args`]).
pub const INLINE_ARGS: usize = 3;

/// One decoded request: the command name is `args[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub args: Args,
    /// Bytes this request occupied on the wire (for metering).
    pub wire_len: usize,
}

/// Framing limits (ElastiCache defaults in [`crate::config`]).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest bulk string accepted, in bytes.
    pub max_bulk_len: usize,
    /// Largest number of arguments in one request (command name included).
    pub max_args: usize,
    /// Longest inline command line, in bytes.
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_args: 3999,
            max_inline_len: 64 * 1024,
        }
    }
}

/// A framing violation: the connection cannot be resynchronised and is closed
/// after the error reply (the message follows `-ERR Protocol error: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("invalid bulk length")]
    InvalidBulkLength,
    #[error("expected '$', got '{0}'")]
    ExpectedBulk(char),
    #[error("too big inline request")]
    TooBigInline,
    #[error("too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("too big bulk count string")]
    TooBigBulkCount,
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
}

impl ProtocolError {
    /// `expected '$', got 'c'` for the first byte of an element line. As Redis
    /// (`addReplyErrorFormat`), CR and LF show as a space so the reply stays
    /// one line; an empty line shows its CR, so a space too.
    fn expected_bulk(first: Option<u8>) -> ProtocolError {
        match first {
            None | Some(b'\r' | b'\n') => ProtocolError::ExpectedBulk(' '),
            Some(b) => ProtocolError::ExpectedBulk(char::from(b)),
        }
    }

    /// The full error line as Redis sends it (without CRLF).
    pub fn reply_text(&self) -> String {
        format!("ERR Protocol error: {self}")
    }
}

/// Longest `*N` / `$N` header line Redis accepts before giving up on it.
const MAX_HEADER_LINE: usize = 64 * 1024;

/// Stateless request decoder configured with [`Limits`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Decoder {
    pub limits: Limits,
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Decoder { limits }
    }

    /// Decodes one request from the front of `buf` (see the module doc).
    /// Empty inline lines are skipped, as Redis does.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        let mut spans = Spans::new();
        loop {
            if buf.is_empty() {
                return Ok(None);
            }
            if buf[0] != b'*' {
                let Some((consumed, words)) = self.parse_inline(buf)? else {
                    return Ok(None);
                };
                buf.advance(consumed);
                if words.is_empty() {
                    continue; // a blank line
                }
                return Ok(Some(Request {
                    args: words.into_iter().map(Bytes::from).collect(),
                    wire_len: consumed,
                }));
            }
            spans.clear();
            let Some(consumed) = self.parse_multibulk(buf, &mut spans)? else {
                return Ok(None);
            };
            let mut frame = buf.split_to(consumed).freeze();
            let Some((&(start, end), before)) = spans.split_last() else {
                continue; // `*0` or `*-1`: nothing to run
            };
            let mut args = Args::with_capacity(spans.len());
            args.extend(before.iter().map(|&(s, e)| frame.slice(s..e)));
            // The last argument is the frame itself, narrowed: one
            // reference count taken and dropped fewer per request.
            frame.truncate(end);
            frame.advance(start);
            args.push(frame);
            return Ok(Some(Request {
                args,
                wire_len: consumed,
            }));
        }
    }

    /// Frames the multibulk request at the front of `buf` into `spans`:
    /// the bytes it takes, or `None` while it has not all arrived.
    fn parse_multibulk(
        &self,
        buf: &[u8],
        spans: &mut Spans,
    ) -> Result<Option<usize>, ProtocolError> {
        let Some((line, mut pos)) = read_line(buf, 0, ProtocolError::TooBigMultibulkCount)? else {
            return Ok(None);
        };
        let count = string2ll(&line[1..]).ok_or(ProtocolError::InvalidMultibulkLength)?;
        if count > self.limits.max_args as i64 {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        if count <= 0 {
            return Ok(Some(pos));
        }
        // Capacity bounded by max_args and by what can have arrived (4 bytes per arg minimum).
        spans.reserve((count as usize).min(buf.len() / 4 + 1));
        for _ in 0..count {
            // As Redis: the whole `$N` line first, then its first byte.
            let Some((line, body)) = read_line(buf, pos, ProtocolError::TooBigBulkCount)? else {
                return Ok(None);
            };
            match line.first() {
                Some(b'$') => {}
                other => return Err(ProtocolError::expected_bulk(other.copied())),
            }
            let len = string2ll(&line[1..]).ok_or(ProtocolError::InvalidBulkLength)?;
            if len < 0 || len as u64 > self.limits.max_bulk_len as u64 {
                return Err(ProtocolError::InvalidBulkLength);
            }
            // `len` is at most max_bulk_len (a usize), so this cannot overflow.
            let end = body + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                // Redis trusts the length and skips two bytes; a wrong terminator
                // means the client is out of sync: treat it as a framing error.
                return Err(ProtocolError::InvalidBulkLength);
            }
            spans.push((body, end));
            pos = end + 2;
        }
        Ok(Some(pos))
    }

    /// An inline command at the front of `buf`: the bytes it takes and its
    /// words (none for a blank line), or `None` while its line has not all
    /// arrived.
    fn parse_inline(&self, buf: &[u8]) -> Result<Option<InlineLine>, ProtocolError> {
        let scan = &buf[..buf.len().min(self.limits.max_inline_len + 1)];
        let Some(nl) = scan.iter().position(|&b| b == b'\n') else {
            if buf.len() > self.limits.max_inline_len {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(None);
        };
        if nl > self.limits.max_inline_len {
            return Err(ProtocolError::TooBigInline);
        }
        let mut line = &buf[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let words = split_inline(line)?;
        if words.len() > self.limits.max_args {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        Ok(Some((nl + 1, words)))
    }
}

/// An inline command's line: the bytes it takes and its words.
type InlineLine = (usize, Vec<Vec<u8>>);

/// Where a multibulk request's arguments lie in its frame, while it is
/// framed: on the stack for the usual few.
type Spans = smallvec::SmallVec<[(usize, usize); 8]>;

/// Finds the header line starting at `start` (its `*` or `$` included) and
/// ending at the first CR; returns the line and the offset just past its CR
/// and the byte after it (Redis skips two bytes without looking at the second).
/// A line that has no CR within [`MAX_HEADER_LINE`] bytes is `too_big`,
/// however the bytes arrive; only that window is scanned.
fn read_line(
    buf: &[u8],
    start: usize,
    too_big: ProtocolError,
) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let window = &buf[start..];
    let scan = &window[..window.len().min(MAX_HEADER_LINE + 1)];
    match scan.iter().position(|&b| b == b'\r') {
        Some(cr) => {
            if window.len() < cr + 2 {
                return Ok(None);
            }
            Ok(Some((&window[..cr], start + cr + 2)))
        }
        None if window.len() > MAX_HEADER_LINE => Err(too_big),
        None => Ok(None),
    }
}

/// The command name of a multibulk request that may not have fully arrived
/// (`*<n>\r\n$<len>\r\n<name>\r\n...`), if its first argument has.
pub fn command_name(buf: &[u8]) -> Option<&[u8]> {
    let line = |from: usize| {
        let end = from + buf.get(from..)?.iter().position(|&b| b == b'\n')?;
        Some((buf.get(from..end.checked_sub(1)?)?, end + 1))
    };
    let (count, next) = line(0)?;
    if count.first() != Some(&b'*') {
        return None;
    }
    let (len, start) = line(next)?;
    let len = usize::try_from(string2ll(len.strip_prefix(b"$")?)?).ok()?;
    buf.get(start..start.checked_add(len)?)
}

/// Longest number string2ll looks at (Redis's `LONG_STR_SIZE`, 21, less one).
const MAX_NUMBER_LEN: usize = 20;

/// Parses a length as Redis's `string2ll` does: an optional '-', then either
/// a lone `0` or a digit 1-9 followed by digits; no '+', no spaces, no leading
/// zeros (`*02`, `$-0` are refused), at most 20 characters, within `i64`.
pub fn string2ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > MAX_NUMBER_LEN {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let (first, rest) = digits.split_first()?;
    if !(b'1'..=b'9').contains(first) {
        return None;
    }
    let mut v = u64::from(first - b'0');
    for d in rest {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        // i64::MIN's magnitude is one more than i64::MAX.
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// Splits an inline line into words as Redis's `sdssplitargs` does: spaces
/// separate, "double quotes" take `\n \r \t \b \a \\ \" \xHH` escapes,
/// 'single quotes' take `\'`; a closing quote must be followed by a space.
pub fn split_inline(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return Ok(words);
        }
        let mut word = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= line.len() {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\' && i + 3 < line.len() && line[i + 1] == b'x' {
                    let hex = |b: u8| (b as char).to_digit(16);
                    if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                        word.push((h * 16 + l) as u8);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < line.len() {
                    word.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    word.push(c);
                    i += 1;
                }
            } else if in_sq {
                if i >= line.len() {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\' && i + 1 < line.len() && line[i + 1] == b'\'' {
                    word.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    word.push(c);
                    i += 1;
                }
            } else {
                if i >= line.len() || line[i].is_ascii_whitespace() {
                    break;
                }
                match line[i] {
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => word.push(c),
                }
                i += 1;
            }
        }
        words.push(word);
    }
}

/// Decodes every whole request in `input` (tests and tools).
pub fn decode_all(decoder: &Decoder, input: &[u8]) -> Result<Vec<Request>, ProtocolError> {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(req) = decoder.decode(&mut buf)? {
        out.push(req);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {

    #[test]
    fn command_name_of_a_request_still_arriving() {
        assert_eq!(
            command_name(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$999999\r\nxx"),
            Some(&b"SET"[..])
        );
        assert_eq!(command_name(b"*3\r\n$3\r\nSE"), None);
        assert_eq!(command_name(b"*3\r\n$"), None);
        assert_eq!(command_name(b"SET k v\r\n"), None);
        assert_eq!(command_name(b"*1\r\n$-1\r\n"), None);
    }

    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn args(reqs: &[Request]) -> Vec<Vec<&[u8]>> {
        reqs.iter()
            .map(|r| r.args.iter().map(|a| a.as_ref()).collect())
            .collect()
    }

    #[test]
    fn decodes_pipelined_multibulk_in_order() {
        let d = Decoder::default();
        let reqs = decode_all(&d, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(args(&reqs), vec![vec![&b"GET"[..], b"k"], vec![b"PING"]]);
        assert_eq!(reqs[0].wire_len, 20);
    }

    #[test]
    fn incomplete_input_consumes_nothing() {
        let d = Decoder::default();
        let full = b"*2\r\n$3\r\nSET\r\n$5\r\nhello\r\n";
        for cut in 1..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(d.decode(&mut buf).unwrap(), None, "cut at {cut}");
            assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn huge_bulk_header_reserves_nothing() {
        let d = Decoder::default();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$524288000\r\nabc"[..]);
        let cap = buf.capacity();
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.capacity(), cap);
    }

    #[test]
    fn framing_violations() {
        let d = Decoder::default();
        let cases: &[(&[u8], ProtocolError)] = &[
            (b"*x\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*4000\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*1\r\n+PING\r\n", ProtocolError::ExpectedBulk('+')),
            (b"*1\r\n$-5\r\n", ProtocolError::InvalidBulkLength),
            (b"*1\r\n$536870913\r\n", ProtocolError::InvalidBulkLength),
            (b"*1\r\n$2\r\nabcd\r\n", ProtocolError::InvalidBulkLength),
            (b"SET \"a\"b\r\n", ProtocolError::UnbalancedQuotes),
            (b"SET \"ab\r\n", ProtocolError::UnbalancedQuotes),
        ];
        for (input, err) in cases {
            assert_eq!(decode_all(&d, input).unwrap_err(), *err, "{input:?}");
        }
        let long = vec![b'a'; 70 * 1024];
        assert_eq!(
            decode_all(&d, &long).unwrap_err(),
            ProtocolError::TooBigInline
        );
        assert_eq!(
            ProtocolError::ExpectedBulk('+').reply_text(),
            "ERR Protocol error: expected '$', got '+'"
        );
    }

    /// Lengths are read as Redis's `string2ll`: leading zeros, '+' signs and
    /// spaces are framing violations, in the multibulk count and in bulk lengths
    /// (checked against redis-server 7.0 in `tests/wire.rs`).
    #[test]
    fn lengths_follow_string2ll() {
        let d = Decoder::default();
        let mb = ProtocolError::InvalidMultibulkLength;
        let bl = ProtocolError::InvalidBulkLength;
        let cases: &[(&[u8], ProtocolError)] = &[
            (b"*02\r\n$4\r\nECHO\r\n$1\r\na\r\n", mb.clone()),
            (b"*00\r\n", mb.clone()),
            (b"*-0\r\n", mb.clone()),
            (b"*-01\r\n", mb.clone()),
            (b"*+2\r\n", mb.clone()),
            (b"* 2\r\n", mb.clone()),
            (b"*2 \r\n", mb.clone()),
            (b"*-\r\n", mb.clone()),
            (b"*\r\n", mb.clone()),
            (b"*-9223372036854775809\r\n", mb.clone()),
            (b"*99999999999999999999\r\n", mb.clone()),
            (b"*2\r\n$04\r\nECHO\r\n$1\r\na\r\n", bl.clone()),
            (b"*1\r\n$00\r\n\r\n", bl.clone()),
            (b"*1\r\n$-0\r\n", bl.clone()),
            (b"*1\r\n$-1\r\n", bl.clone()),
            (b"*1\r\n$+4\r\nPING\r\n", bl.clone()),
            (b"*1\r\n$ 4\r\nPING\r\n", bl.clone()),
            (b"*1\r\n$4 \r\nPING\r\n", bl.clone()),
            (b"*1\r\n$\r\n", bl.clone()),
            (b"*1\r\n\r\n", ProtocolError::ExpectedBulk(' ')),
            (b"*1\r\n\n\r\n", ProtocolError::ExpectedBulk(' ')),
        ];
        for (input, err) in cases {
            assert_eq!(
                decode_all(&d, input).unwrap_err(),
                *err,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // Valid, and skipped: zero and negative counts, down to i64::MIN.
        let reqs = decode_all(
            &d,
            b"*0\r\n*-1\r\n*-9223372036854775808\r\n*-1000000000000000000\r\n*1\r\n$0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(args(&reqs), vec![vec![&b""[..]]]);
        // The element line is awaited whole before its first byte is judged.
        assert_eq!(decode_all(&d, b"*1\r\n+PI").unwrap(), vec![]);
    }

    #[test]
    fn string2ll_matches_redis() {
        let ok: &[(&[u8], i64)] = &[
            (b"0", 0),
            (b"1", 1),
            (b"-1", -1),
            (b"10", 10),
            (b"9223372036854775807", i64::MAX),
            (b"-9223372036854775808", i64::MIN),
        ];
        for (s, v) in ok {
            assert_eq!(string2ll(s), Some(*v), "{s:?}");
        }
        let bad: &[&[u8]] = &[
            b"",
            b"-",
            b"+1",
            b"00",
            b"01",
            b"-0",
            b"-01",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"18446744073709551616",
            b"000000000000000000001",
        ];
        for s in bad {
            assert_eq!(string2ll(s), None, "{s:?}");
        }
    }

    #[test]
    fn inline_commands_with_quotes() {
        let d = Decoder::default();
        let reqs = decode_all(&d, b"set k \"a b\\x41\\n\"\r\n\r\nget 'it\\'s'\nPING\r\n").unwrap();
        assert_eq!(
            args(&reqs),
            vec![
                vec![&b"set"[..], b"k", b"a bA\n"],
                vec![b"get", b"it's"],
                vec![b"PING"]
            ]
        );
    }

    #[test]
    fn empty_multibulk_is_skipped() {
        let d = Decoder::default();
        let reqs = decode_all(&d, b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(args(&reqs), vec![vec![&b"PING"[..]]]);
    }

    /// Seeded random bytes (and random mutations of valid frames) never panic
    /// the decoder, and every outcome is one of the three.
    #[test]
    fn random_input_never_panics() {
        let d = Decoder::new(Limits {
            max_bulk_len: 1 << 20,
            max_args: 100,
            max_inline_len: 1024,
        });
        let mut rng = StdRng::seed_from_u64(0x5742_7475);
        let alphabet = b"*$\r\n-0123456789abc \"'\\x";
        let valid = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        for round in 0..200_000 {
            let len = rng.random_range(0..64);
            let mut input: Vec<u8> = if round % 2 == 0 {
                (0..len).map(|_| rng.random()).collect()
            } else {
                (0..len)
                    .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                    .collect()
            };
            if round % 3 == 0 {
                let mut v = valid.to_vec();
                let at = rng.random_range(0..v.len());
                v[at] = rng.random();
                input = v;
            }
            let mut buf = BytesMut::from(&input[..]);
            let before = buf.len();
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(req)) => assert!(req.wire_len > 0),
                    Ok(None) => {
                        assert!(buf.len() <= before);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    }
}
