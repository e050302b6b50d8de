//! Seeded fuzzing of the RESP request decoder, and of the server over TCP.
//!
//! 1. Unstructured: random bytes, protocol-ish alphabet soup and mutations of
//!    valid requests never panic the decoder, and decode the same however the
//!    bytes are split.
//! 2. Structured (`structured_frames_match_the_reference_decoder`): generated
//!    sequences of frames (multibulk with boundary lengths, inline with
//!    quotes, empty requests, malformed numbers — leading zeros, '+', spaces,
//!    `-0`, i64 edges —, wrong element types, nested arrays, bad terminators,
//!    bulk headers promising bytes that never come, lines past 64 KiB, random
//!    limits) must decode exactly as a reference decoder written here from
//!    Redis's rules: same requests, same error, fed whole or in random pieces.
//!    Each decode call must stay within an allocation bound proportional to
//!    the bytes buffered (never a header's promise), and an incomplete input
//!    must leave the buffer's capacity alone.
//! 3. Over TCP: random and structured input never panics the server.
//!
//! `STRATUS_FUZZ_CASES` sets the number of structured cases (default
//! [`CI_CASES`], a few seconds); `STRATUS_FUZZ_SEED` the seed. A failure names
//! the seed and case and prints the input. The long run is in the README.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stratus::resp::codec::split_inline;
use stratus::resp::{Decoder, Limits, ProtocolError, Request};

const ALPHABET: &[u8] = b"*$\r\n\r\n-0123456789 \"'\\xabcSETGET";

// ---------------------------------------------------------------------------
// Allocation accounting: this test binary's allocator counts, per thread, the
// bytes live and the peak, so a decode call's allocations can be bounded.
// ---------------------------------------------------------------------------

struct Counting;

thread_local! {
    /// Bytes allocated minus freed by this thread (frees of memory allocated
    /// elsewhere can make it negative).
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// Highest `LIVE` since the last [`peak_during`] began.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    // `try_with`: never panic inside the allocator, even during thread exit.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// bookkeeping touches only `const`-initialised thread-locals of plain
// integers, which neither allocate nor have destructors.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`; returns its result and the most bytes it had allocated at once
/// on this thread beyond what was live when it began.
fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let r = f();
    let peak = PEAK.with(Cell::get);
    (r, usize::try_from(peak - start).unwrap_or(0))
}

/// What one decode call may allocate: proportional to the bytes buffered
/// (argument vectors, inline words), never to a length a header announces.
fn allocation_bound(buffered: usize) -> usize {
    64 * buffered + 64 * 1024
}

/// Valid requests to mutate.
fn corpus() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        &["SET", "k", "hello"][..],
        &["GET", "k"],
        &["HSET", "h", "f", "v", "g", "w"],
        &["MGET", "a", "b", "c"],
        &["EXPIRE", "k", "100", "NX"],
        &["SCAN", "0", "MATCH", "*", "COUNT", "5"],
        &["HELLO", "3"],
        &["CLIENT", "SETNAME", "x"],
        &["INCRBYFLOAT", "f", "1.5"],
        &["GETRANGE", "k", "0", "-1"],
        &["PING"],
    ]
    .iter()
    .map(|c| encode(c))
    .collect();
    out.push(b"SET k \"a b\\x41\"\r\n".to_vec());
    out.push(b"PING\r\nECHO 'x'\r\n".to_vec());
    out
}

/// Random input: raw bytes, protocol-ish alphabet soup, or mutated requests.
fn random_input(rng: &mut StdRng, corpus: &[Vec<u8>]) -> Vec<u8> {
    match rng.random_range(0..4) {
        0 => {
            let len = rng.random_range(0..200);
            (0..len).map(|_| rng.random()).collect()
        }
        1 => {
            let len = rng.random_range(0..200);
            (0..len)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
                .collect()
        }
        2 => {
            let mut v = corpus[rng.random_range(0..corpus.len())].clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..v.len());
                match rng.random_range(0..3) {
                    0 => v[at] = rng.random(),
                    1 => {
                        v.remove(at);
                    }
                    _ => v.insert(at, ALPHABET[rng.random_range(0..ALPHABET.len())]),
                }
                if v.is_empty() {
                    break;
                }
            }
            v
        }
        _ => {
            // Several whole requests, then a truncated one.
            let mut v = Vec::new();
            for _ in 0..rng.random_range(1..4) {
                v.extend(&corpus[rng.random_range(0..corpus.len())]);
            }
            let cut = rng.random_range(0..=v.len());
            v.truncate(cut);
            v
        }
    }
}

/// Decodes `input` fed in pieces of the given sizes; returns the requests and
/// the framing error, if any. Checks every call's outcome is one of the three
/// (a whole request consumed, incomplete with the buffer's bytes and capacity
/// untouched but for skipped empty requests, or a framing error) and stays
/// within [`allocation_bound`].
fn decode_in_pieces(
    d: &Decoder,
    input: &[u8],
    sizes: &mut dyn FnMut() -> usize,
    what: &dyn Fn() -> String,
) -> (Vec<Request>, Option<ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    loop {
        loop {
            let before = buf.len();
            let capacity = buf.capacity();
            let (outcome, peak) = peak_during(|| d.decode(&mut buf));
            assert!(
                peak <= allocation_bound(before),
                "decode allocated {peak} bytes with {before} buffered: {}",
                what()
            );
            match outcome {
                Ok(Some(req)) => {
                    let consumed = before - buf.len();
                    assert!(req.wire_len > 0 && req.wire_len <= consumed, "{}", what());
                    assert!(!req.args.is_empty(), "{}", what());
                    out.push(req);
                }
                Ok(None) => {
                    let untouched = buf.len() == before && buf.capacity() == capacity;
                    assert!(untouched || buf.len() < before, "{}", what());
                    break;
                }
                Err(e) => return (out, Some(e)),
            }
        }
        if fed == input.len() {
            return (out, None);
        }
        let n = sizes().max(1).min(input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
    }
}

#[test]
fn decoder_never_panics_and_ignores_how_bytes_are_split() {
    let d = Decoder::new(Limits {
        max_bulk_len: 1 << 16,
        max_args: 64,
        max_inline_len: 512,
    });
    let corpus = corpus();
    for seed in [1u64, 2, 3, 0x5eed, 0xdead_beef] {
        let mut rng = StdRng::seed_from_u64(seed);
        for round in 0..20_000 {
            let input = random_input(&mut rng, &corpus);
            let what = || format!("seed {seed} round {round}: input {input:?}");
            let whole = decode_in_pieces(&d, &input, &mut || usize::MAX, &what);
            let mut split_rng = StdRng::seed_from_u64(seed ^ round);
            let pieces = decode_in_pieces(&d, &input, &mut || split_rng.random_range(1..8), &what);
            assert_eq!(
                pieces,
                whole,
                "seed {seed} round {round}: input {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Reference decoder: Redis's framing rules, written independently of the codec
// ---------------------------------------------------------------------------

/// Longest `*N` / `$N` line before "too big ... count string" (Redis's
/// `PROTO_INLINE_MAX_SIZE`).
const HEADER_LINE_MAX: usize = 64 * 1024;

/// Redis's `string2ll` accepts exactly the canonical decimal form of an i64:
/// what `i64::to_string` prints (so no '+', no leading zeros, no `-0`).
fn reference_number(s: &[u8]) -> Option<i64> {
    let n: i64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    (n.to_string().as_bytes() == s).then_some(n)
}

enum Line<'a> {
    Whole(&'a [u8], usize),
    Incomplete,
    TooBig,
}

/// The header line at `at`: up to the first CR, which must lie within
/// [`HEADER_LINE_MAX`] bytes, and one byte after it must have arrived.
fn reference_line(input: &[u8], at: usize) -> Line<'_> {
    match input[at..].iter().position(|&b| b == b'\r') {
        Some(cr) if cr > HEADER_LINE_MAX => Line::TooBig,
        Some(cr) if at + cr + 2 <= input.len() => Line::Whole(&input[at..at + cr], at + cr + 2),
        Some(_) => Line::Incomplete,
        None if input.len() - at > HEADER_LINE_MAX => Line::TooBig,
        None => Line::Incomplete,
    }
}

/// Decodes all of `input` by the rules: the requests (args, wire length) and
/// the framing error, if any (`None`: the rest is incomplete or empty).
type Decoded = (Vec<(Vec<Vec<u8>>, usize)>, Option<ProtocolError>);

fn reference_decode(limits: &Limits, input: &[u8]) -> Decoded {
    let mut out = Vec::new();
    let mut pos = 0;
    macro_rules! fail {
        ($e:expr) => {
            return (out, Some($e))
        };
    }
    while pos < input.len() {
        let start = pos;
        if input[pos] != b'*' {
            // Inline: one line up to LF, a trailing CR dropped, split as sdssplitargs.
            let nl = match input[pos..].iter().position(|&b| b == b'\n') {
                Some(nl) if nl > limits.max_inline_len => fail!(ProtocolError::TooBigInline),
                Some(nl) => nl,
                None if input.len() - pos > limits.max_inline_len => {
                    fail!(ProtocolError::TooBigInline)
                }
                None => break,
            };
            let mut line = &input[pos..pos + nl];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            let words = match split_inline(line) {
                Ok(w) => w,
                Err(e) => fail!(e),
            };
            if words.len() > limits.max_args {
                fail!(ProtocolError::InvalidMultibulkLength);
            }
            pos += nl + 1;
            if !words.is_empty() {
                out.push((words, pos - start));
            }
            continue;
        }
        let (count, mut at) = match reference_line(input, pos) {
            Line::TooBig => fail!(ProtocolError::TooBigMultibulkCount),
            Line::Incomplete => break,
            Line::Whole(line, next) => match reference_number(&line[1..]) {
                Some(n) if n <= limits.max_args as i64 => (n, next),
                _ => fail!(ProtocolError::InvalidMultibulkLength),
            },
        };
        let mut args = Vec::new();
        let mut whole = true;
        for _ in 0..count.max(0) {
            let (line, body) = match reference_line(input, at) {
                Line::TooBig => fail!(ProtocolError::TooBigBulkCount),
                Line::Incomplete => {
                    whole = false;
                    break;
                }
                Line::Whole(line, next) => (line, next),
            };
            if line.first() != Some(&b'$') {
                let shown = match line.first() {
                    None | Some(b'\r' | b'\n') => ' ',
                    Some(&b) => char::from(b),
                };
                fail!(ProtocolError::ExpectedBulk(shown));
            }
            let len = match reference_number(&line[1..]) {
                Some(n) if n >= 0 && n as u64 <= limits.max_bulk_len as u64 => n as usize,
                _ => fail!(ProtocolError::InvalidBulkLength),
            };
            if input.len() < body + len + 2 {
                whole = false;
                break;
            }
            if &input[body + len..body + len + 2] != b"\r\n" {
                fail!(ProtocolError::InvalidBulkLength);
            }
            args.push(input[body..body + len].to_vec());
            at = body + len + 2;
        }
        if !whole {
            break;
        }
        pos = at;
        if !args.is_empty() {
            out.push((args, pos - start));
        }
    }
    (out, None)
}

// ---------------------------------------------------------------------------
// Structured generator
// ---------------------------------------------------------------------------

/// Command names for generated requests (the TCP pass executes them).
const COMMANDS: &[&str] = &[
    "SET", "GET", "DEL", "INCR", "INCRBY", "APPEND", "GETRANGE", "SETRANGE", "MGET", "MSET",
    "HSET", "HGET", "HGETALL", "LPUSH", "LRANGE", "LPOP", "SADD", "SMEMBERS", "ZADD", "ZRANGE",
    "EXPIRE", "TTL", "EXISTS", "TYPE", "SCAN", "PING", "ECHO", "HELLO", "CLIENT", "STRLEN",
];

/// A length written as Redis must refuse it, or as it should be.
fn number_text(rng: &mut StdRng, n: i64) -> (String, bool) {
    let bad = |s: String| (s, false);
    match rng.random_range(0..24) {
        0 => bad(format!("0{n}")),
        1 => bad(format!("+{n}")),
        2 => bad(format!(" {n}")),
        3 => bad(format!("{n} ")),
        4 => bad(format!("{n}x")),
        5 => bad(format!("00{n}")),
        6 => bad("-0".into()),
        7 => bad(String::new()),
        8 => bad("-".into()),
        9 => bad("9223372036854775808".into()),
        10 => bad("-9223372036854775809".into()),
        11 => bad("1".repeat(rng.random_range(19..=22))),
        12 => bad(format!("{n}.0")),
        13 => bad(format!("0x{n:x}")),
        _ => (n.to_string(), true),
    }
}

/// Random bytes for an argument, CR and LF included.
fn arg_bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| match rng.random_range(0..8) {
            0 => b'\r',
            1 => b'\n',
            2 => rng.random(),
            _ => ALPHABET[rng.random_range(0..ALPHABET.len())],
        })
        .collect()
}

/// Requests as their arguments.
type Requests = Vec<Vec<Vec<u8>>>;

/// One generated part of an input, and the requests it decodes to when it
/// is valid (`None`: it is not, or not on its own).
struct Part {
    bytes: Vec<u8>,
    requests: Option<Requests>,
}

/// A multibulk request; `mangle` may corrupt one header or terminator.
fn multibulk(rng: &mut StdRng, limits: &Limits, mangle: bool) -> Part {
    let max_args = limits.max_args.min(8);
    let count = match rng.random_range(0..10) {
        0 => limits.max_args,
        1 => limits.max_args + 1,
        _ => rng.random_range(1..=max_args),
    };
    let small_bulk = limits.max_bulk_len <= 4096;
    let args: Vec<Vec<u8>> = (0..count.min(64))
        .map(|i| {
            if i == 0 && rng.random_bool(0.6) {
                return COMMANDS[rng.random_range(0..COMMANDS.len())]
                    .as_bytes()
                    .to_vec();
            }
            let len = match rng.random_range(0..10) {
                0 => 0,
                1 if small_bulk => limits.max_bulk_len,
                2 if small_bulk => limits.max_bulk_len + 1,
                _ => rng.random_range(0..12),
            };
            arg_bytes(rng, len)
        })
        .collect();
    let corrupt = if mangle {
        rng.random_range(0..=args.len())
    } else {
        usize::MAX
    };
    let mut ok = count == args.len()
        && count <= limits.max_args
        && args.iter().all(|a| a.len() <= limits.max_bulk_len);
    let mut out = Vec::new();
    let (text, fine) = if corrupt == 0 {
        number_text(rng, count as i64)
    } else {
        (count.to_string(), true)
    };
    ok &= fine;
    out.extend(format!("*{text}\r\n").as_bytes());
    for (i, a) in args.iter().enumerate() {
        if corrupt == i + 1 {
            match rng.random_range(0..5) {
                0 => {
                    ok = false;
                    // Another type where a bulk string must be.
                    let t = b"+-:*#,(!=%~>_ \r\n\0x"[rng.random_range(0..17)];
                    out.push(t);
                    out.extend(format!("{}\r\n", a.len()).as_bytes());
                    out.extend(a);
                    out.extend(b"\r\n");
                }
                1 => {
                    ok = false;
                    // A nested array.
                    out.extend(format!("*1\r\n${}\r\n", a.len()).as_bytes());
                    out.extend(a);
                    out.extend(b"\r\n");
                }
                2 => {
                    ok = false;
                    // The wrong terminator after the body.
                    out.extend(format!("${}\r\n", a.len()).as_bytes());
                    out.extend(a);
                    out.extend(&[rng.random(), rng.random()]);
                }
                _ => {
                    let (text, fine) = number_text(rng, a.len() as i64);
                    ok &= fine;
                    out.extend(format!("${text}\r\n").as_bytes());
                    out.extend(a);
                    out.extend(b"\r\n");
                }
            }
            continue;
        }
        out.extend(format!("${}\r\n", a.len()).as_bytes());
        out.extend(a);
        out.extend(b"\r\n");
    }
    Part {
        bytes: out,
        requests: ok.then(|| vec![args]),
    }
}

/// An inline request, sometimes quoted, sometimes with unbalanced quotes.
fn inline(rng: &mut StdRng, limits: &Limits) -> Part {
    let words = rng.random_range(0..=limits.max_args.min(6) + 1);
    let mut line = Vec::new();
    let mut expected = Vec::new();
    let mut ok = true;
    for i in 0..words {
        if i > 0 {
            line.extend(b" ".repeat(rng.random_range(1..3)));
        }
        let plain: Vec<u8> = (0..rng.random_range(1..8))
            .map(|_| b"abcSETGET0129-_.:"[rng.random_range(0..17)])
            .collect();
        match rng.random_range(0..8) {
            0 => {
                line.push(b'"');
                line.extend(&plain);
                line.extend(b"\\x41\\n\"");
                let mut w = plain.clone();
                w.extend(b"A\n");
                expected.push(w);
            }
            1 => {
                line.push(b'\'');
                line.extend(&plain);
                line.push(b'\'');
                expected.push(plain);
            }
            2 => {
                // Unbalanced, or a closing quote not followed by a space.
                line.push(b'"');
                line.extend(&plain);
                if rng.random_bool(0.5) {
                    line.extend(b"\"x");
                }
                ok = false;
            }
            _ => {
                line.extend(&plain);
                expected.push(plain);
            }
        }
    }
    ok &= expected.len() <= limits.max_args;
    line.extend(if rng.random_bool(0.5) {
        &b"\r\n"[..]
    } else {
        b"\n"
    });
    ok &= line.len() <= limits.max_inline_len;
    let requests = if expected.is_empty() {
        vec![]
    } else {
        vec![expected]
    };
    Part {
        bytes: line,
        requests: ok.then_some(requests),
    }
}

fn part(rng: &mut StdRng, limits: &Limits) -> Part {
    let raw = |bytes: Vec<u8>| Part {
        bytes,
        requests: None,
    };
    match rng.random_range(0..20) {
        0..=6 => multibulk(rng, limits, false),
        7..=10 => multibulk(rng, limits, true),
        11..=13 => inline(rng, limits),
        14 => {
            let empty: [&[u8]; 5] = [b"*0\r\n", b"*-1\r\n", b"\r\n", b" \r\n", b"\n"];
            Part {
                bytes: empty[rng.random_range(0..empty.len())].to_vec(),
                requests: Some(vec![]),
            }
        }
        15 => {
            // A bulk header promising more than will ever arrive.
            let len = rng.random_range(limits.max_bulk_len / 2..=limits.max_bulk_len);
            let mut v = format!("*2\r\n$3\r\nSET\r\n${len}\r\n").into_bytes();
            let arrived = rng.random_range(0..10).min(len);
            v.extend(arg_bytes(rng, arrived));
            raw(v)
        }
        16 => {
            // A header line past 64 KiB, with or without its CR.
            let mut v = if rng.random_bool(0.5) {
                b"*".to_vec()
            } else {
                b"*1\r\n$".to_vec()
            };
            v.extend(b"1".repeat(HEADER_LINE_MAX + rng.random_range(0..3)));
            if rng.random_bool(0.5) {
                v.extend(b"\r\n");
            }
            raw(v)
        }
        _ => {
            let len = rng.random_range(0..40);
            raw((0..len)
                .map(|_| match rng.random_range(0..4) {
                    0 => rng.random(),
                    _ => ALPHABET[rng.random_range(0..ALPHABET.len())],
                })
                .collect())
        }
    }
}

/// Random limits: small ones so boundaries are reachable, sometimes Redis's.
fn random_limits(rng: &mut StdRng) -> Limits {
    if rng.random_range(0..8) == 0 {
        return Limits::default();
    }
    Limits {
        max_bulk_len: rng.random_range(0..64),
        max_args: rng.random_range(1..10),
        max_inline_len: rng.random_range(8..256),
    }
}

/// One structured case: the input and, when every part is valid and whole,
/// the requests it must decode to.
fn structured_case(rng: &mut StdRng, limits: &Limits) -> (Vec<u8>, Option<Requests>) {
    // Long header lines are rare: they cost a 64 KiB scan each.
    let long_ok = rng.random_range(0..200) == 0;
    let mut input = Vec::new();
    let mut expected = Some(Vec::new());
    for _ in 0..rng.random_range(1..=5) {
        let mut p = part(rng, limits);
        while !long_ok && p.bytes.len() > HEADER_LINE_MAX {
            p = part(rng, limits);
        }
        input.extend(&p.bytes);
        expected = match (expected, p.requests) {
            (Some(mut all), Some(reqs)) => {
                all.extend(reqs);
                Some(all)
            }
            _ => None,
        };
    }
    if rng.random_range(0..4) == 0 {
        input.truncate(rng.random_range(0..=input.len()));
        expected = None;
    }
    (input, expected)
}

/// A case's own generator: any case can be replayed alone.
fn case_rng(seed: u64, case: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Structured cases in the CI pass (a few seconds in a debug build).
const CI_CASES: u64 = 20_000;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
        Err(_) => default,
    }
}

fn outcome_label(e: &Option<ProtocolError>) -> &'static str {
    match e {
        None => "ok or incomplete",
        Some(ProtocolError::InvalidMultibulkLength) => "invalid multibulk length",
        Some(ProtocolError::InvalidBulkLength) => "invalid bulk length",
        Some(ProtocolError::ExpectedBulk(_)) => "expected '$'",
        Some(ProtocolError::TooBigInline) => "too big inline request",
        Some(ProtocolError::TooBigMultibulkCount) => "too big mbulk count string",
        Some(ProtocolError::TooBigBulkCount) => "too big bulk count string",
        Some(ProtocolError::UnbalancedQuotes) => "unbalanced quotes",
    }
}

#[test]
fn structured_frames_match_the_reference_decoder() {
    let cases = env_u64("STRATUS_FUZZ_CASES", CI_CASES);
    let seed = env_u64("STRATUS_FUZZ_SEED", 0x5742_7475);
    let began = Instant::now();
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut requests, mut bytes, mut checked_round_trips) = (0u64, 0u64, 0u64);
    for case in 0..cases {
        let mut rng = case_rng(seed, case);
        let limits = random_limits(&mut rng);
        let d = Decoder::new(limits);
        let (input, expected) = structured_case(&mut rng, &limits);
        let show = || {
            format!(
                "STRATUS_FUZZ_SEED={seed} case {case}, {limits:?}, input {:?}",
                String::from_utf8_lossy(&input[..input.len().min(600)])
            )
        };
        let reference = reference_decode(&limits, &input);
        if let Some(expected) = &expected {
            let got: Vec<_> = reference.0.iter().map(|(a, _)| a.clone()).collect();
            assert_eq!(
                (&got, &reference.1),
                (expected, &None),
                "generator/reference: {}",
                show()
            );
            checked_round_trips += 1;
        }
        let as_reference = |(reqs, err): (Vec<Request>, Option<ProtocolError>)| -> Decoded {
            let reqs = reqs
                .into_iter()
                .map(|r| (r.args.iter().map(|a| a.to_vec()).collect(), r.wire_len))
                .collect();
            (reqs, err)
        };
        let whole = as_reference(decode_in_pieces(&d, &input, &mut || usize::MAX, &show));
        assert_eq!(whole, reference, "decoded whole: {}", show());
        let largest = (input.len() / 64).max(16);
        let pieces = as_reference(decode_in_pieces(
            &d,
            &input,
            &mut || rng.random_range(1..=largest),
            &show,
        ));
        assert_eq!(pieces, reference, "decoded in pieces: {}", show());
        *outcomes.entry(outcome_label(&reference.1)).or_default() += 1;
        requests += reference.0.len() as u64;
        bytes += input.len() as u64;
    }
    eprintln!(
        "fuzz: {cases} structured cases (seed {seed:#x}) in {:.1?}: {bytes} bytes, {requests} requests, \
         {checked_round_trips} all-valid inputs round-tripped, 0 failures; outcomes {outcomes:?}",
        began.elapsed()
    );
}

/// Inputs the fuzzer found wrong, kept as regressions.
#[test]
fn fuzz_regressions() {
    let d = Decoder::default();
    let cases: &[(&[u8], Option<ProtocolError>)] = &[];
    for (input, err) in cases {
        let what = || format!("{:?}", String::from_utf8_lossy(input));
        let (_, got) = decode_in_pieces(&d, input, &mut || usize::MAX, &what);
        assert_eq!(&got, err, "{}", what());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_structured_input_over_tcp_never_panics_the_server() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counter = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counter.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));

    let server = start(stratus::config::ServeConfig {
        max_bulk_len: 1 << 16,
        max_args: 64,
        ..stratus::config::ServeConfig::default()
    })
    .await;
    let addr = server.resp_addr;
    let corpus = corpus();
    let server_limits = Limits {
        max_bulk_len: 1 << 16,
        max_args: 64,
        max_inline_len: 64 * 1024,
    };
    let mut rng = StdRng::seed_from_u64(0x5742_7475);
    for _batch in 0..20 {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let writes: Vec<Vec<u8>> = (0..rng.random_range(1..5))
                .map(|_| {
                    if rng.random_bool(0.5) {
                        random_input(&mut rng, &corpus)
                    } else {
                        structured_case(&mut rng, &server_limits).0
                    }
                })
                .collect();
            tasks.push(tokio::spawn(async move {
                let mut c = Raw::connect(addr).await;
                for w in &writes {
                    if c.stream.try_write(w).is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                // Read whatever comes until the server closes or goes quiet.
                while let Read::Reply(_) = c.read_timeout(Duration::from_millis(50)).await {}
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
        let mut probe = Raw::connect(addr).await;
        assert_eq!(probe.cmd(&["PING"]).await, simple("PONG"));
    }
    let mut probe = Raw::connect(addr).await;
    assert!(!probe.cmd(&["DBSIZE"]).await.is_error());
    tokio::time::timeout(DEADLINE, server.shutdown())
        .await
        .expect("shutdown");
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a task panicked");
}
