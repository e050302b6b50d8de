//! Argument parsing with Redis's exact rules (`string2ll`, `string2ld`).

use super::OpError;
use crate::resp::reply;

/// Parses a signed 64-bit integer as Redis's `string2ll`: optional '-', no
/// '+', no leading zeros, no spaces, no overflow.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = match b[0] {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// An integer argument, or `ERR value is not an integer or out of range`.
pub fn int(b: &[u8]) -> Result<i64, OpError> {
    parse_i64(b).ok_or(OpError::NotInteger)
}

/// Largest number of repeated random picks (SRANDMEMBER and ZRANDMEMBER with
/// a negative count). Redis has no such bound; a larger reply would only
/// cost memory to build and could not reach a client within the default
/// output-buffer limit anyway.
pub const MAX_REPEATED_PICKS: u64 = 1 << 20;

/// A count for SRANDMEMBER/ZRANDMEMBER: an integer in -i64::MAX..=i64::MAX
/// (Redis's range), a negative one at most [`MAX_REPEATED_PICKS`] in size.
pub fn random_count(b: &[u8]) -> Result<i64, OpError> {
    let n = int(b)?;
    if n == i64::MIN {
        return Err(OpError::Text(reply::out_of_range_between(
            -i64::MAX,
            i64::MAX,
        )));
    }
    if n < 0 && n.unsigned_abs() > MAX_REPEATED_PICKS {
        return Err(OpError::Static(reply::TOO_MANY_PICKS));
    }
    Ok(n)
}

/// A non-negative count, else the given error (Redis's
/// `getPositiveLongFromObjectOrReply` with a message: even a non-integer
/// gets that message).
pub fn non_negative(b: &[u8], error: &'static str) -> Result<u64, OpError> {
    parse_i64(b)
        .filter(|n| *n >= 0)
        .map(|n| n as u64)
        .ok_or(OpError::Static(error))
}

/// Parses a float as Redis's `string2ld`: no spaces, no NaN; `inf` allowed.
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    if b.is_empty()
        || b.len() > 5000
        || b[0].is_ascii_whitespace()
        || b[b.len() - 1].is_ascii_whitespace()
    {
        return None;
    }
    let s = std::str::from_utf8(b).ok()?;
    let v: f64 = s.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

/// A float argument, or `ERR value is not a valid float`.
pub fn float(b: &[u8]) -> Result<f64, OpError> {
    parse_f64(b).ok_or(OpError::NotFloat)
}

/// Case-insensitive option match.
pub fn is(arg: &[u8], option: &str) -> bool {
    arg.eq_ignore_ascii_case(option.as_bytes())
}

/// SCAN-family options: `MATCH pattern`, `COUNT n`, `TYPE t`, `NOVALUES`.
#[derive(Debug, Clone, Default)]
pub struct ScanOpts {
    pub cursor: u64,
    pub pattern: Option<bytes::Bytes>,
    pub count: usize,
    pub type_name: Option<bytes::Bytes>,
    pub novalues: bool,
}

impl ScanOpts {
    /// Whether `key` passes the MATCH filter.
    pub fn matches(&self, key: &[u8]) -> bool {
        self.pattern.as_ref().is_none_or(|p| glob_match(p, key))
    }
}

/// Parses `cursor [MATCH p] [COUNT n] [TYPE t] [NOVALUES]` from `args`
/// (cursor first); `TYPE` only for SCAN, `NOVALUES` only for HSCAN.
pub fn scan_opts(
    args: &[bytes::Bytes],
    allow_type: bool,
    allow_novalues: bool,
) -> Result<ScanOpts, OpError> {
    let cursor = std::str::from_utf8(&args[0])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(OpError::InvalidCursor)?;
    let mut opts = ScanOpts {
        cursor,
        count: 10,
        ..ScanOpts::default()
    };
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        let has_value = i + 1 < args.len();
        if is(a, "MATCH") && has_value {
            opts.pattern = Some(args[i + 1].clone());
        } else if is(a, "COUNT") && has_value {
            let n = int(&args[i + 1])?;
            if n < 1 {
                return Err(OpError::Syntax);
            }
            opts.count = n.min(1 << 20) as usize;
        } else if is(a, "TYPE") && has_value && allow_type {
            opts.type_name = Some(args[i + 1].clone());
        } else if is(a, "NOVALUES") && allow_novalues {
            opts.novalues = true;
            i += 1;
            continue;
        } else {
            return Err(OpError::Syntax);
        }
        i += 2;
    }
    Ok(opts)
}

/// Glob matching as Redis's `stringmatchlen`: `*`, `?`, `[abc]`, `[^a-z]`, `\x`.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    glob(pattern, s, 0)
}

fn glob(mut p: &[u8], mut s: &[u8], depth: usize) -> bool {
    if depth > 1000 {
        return false;
    }
    while !p.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                for i in 0..=s.len() {
                    if glob(&p[1..], &s[i..], depth + 1) {
                        return true;
                    }
                }
                return false;
            }
            b'?' => {
                if s.is_empty() {
                    return false;
                }
                s = &s[1..];
            }
            b'[' => {
                if s.is_empty() {
                    return false;
                }
                p = &p[1..];
                let not = p.first() == Some(&b'^');
                if not {
                    p = &p[1..];
                }
                let mut matched = false;
                loop {
                    match p {
                        [] => break,
                        [b'\\', c, ..] => {
                            matched |= *c == s[0];
                            p = &p[2..];
                        }
                        [b']', ..] => break,
                        [a, b'-', b, ..] if *b != b']' => {
                            let (lo, hi) = if a <= b { (*a, *b) } else { (*b, *a) };
                            matched |= s[0] >= lo && s[0] <= hi;
                            p = &p[3..];
                        }
                        [c, ..] => {
                            matched |= *c == s[0];
                            p = &p[1..];
                        }
                    }
                }
                if matched == not {
                    return false;
                }
                s = &s[1..];
                if p.is_empty() {
                    // Unterminated class: Redis treats the end as closing it.
                    return s.is_empty();
                }
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if s.first() != Some(&p[0]) {
                    return false;
                }
                s = &s[1..];
            }
            c => {
                if s.first() != Some(&c) {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            return p.is_empty();
        }
    }
    s.is_empty()
}

/// A blocking command's timeout in seconds (BLPOP and friends): a float,
/// not negative; 0 = wait forever (`None`).
pub fn block_timeout_secs(b: &[u8]) -> Result<Option<std::time::Duration>, OpError> {
    let secs = parse_f64(b)
        .filter(|s| s.is_finite())
        .ok_or(OpError::Static(reply::TIMEOUT_NOT_FLOAT))?;
    if secs < 0.0 {
        return Err(OpError::Static(reply::TIMEOUT_NEGATIVE));
    }
    Ok((secs > 0.0).then(|| std::time::Duration::from_secs_f64(secs.min(1e9))))
}

/// The BLOCK option of XREAD/XREADGROUP in milliseconds: `None` if absent,
/// `Some(None)` for 0 (forever).
pub fn block_option_ms(
    args: &[bytes::Bytes],
) -> Result<Option<Option<std::time::Duration>>, OpError> {
    let Some(at) = args.iter().position(|a| is(a, "BLOCK")) else {
        return Ok(None);
    };
    let Some(v) = args.get(at + 1) else {
        return Ok(None);
    };
    let ms = parse_i64(v).ok_or(OpError::Static(reply::TIMEOUT_NOT_INTEGER))?;
    if ms < 0 {
        return Err(OpError::Static(reply::TIMEOUT_NEGATIVE));
    }
    Ok(Some(
        (ms > 0).then(|| std::time::Duration::from_millis(ms as u64)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b"9223372036854775808"[..],
            b"01",
            b"+1",
            b"-0",
            b" 1",
            b"1 ",
            b"",
            b"-",
            b"1.0",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn floats_follow_string2ld() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"abc"), None);
    }

    #[test]
    fn glob_like_redis() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("user:*:name", "user:42:name", true),
            ("a*", "", false),
            ("*", "", true),
        ];
        for (p, s, want) in cases {
            assert_eq!(glob_match(p.as_bytes(), s.as_bytes()), *want, "{p} {s}");
        }
    }
}
