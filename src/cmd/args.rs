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
        self.pattern
            .as_ref()
            .is_none_or(|p| crate::glob::glob_match(p, key))
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

/// A blocking command's timeout in seconds (BLPOP and friends): a float,
/// rounded up to whole milliseconds as Redis does (so `-0.0001` is 0), not
/// negative; 0 = wait forever (`None`).
pub fn block_timeout_secs(b: &[u8]) -> Result<Option<std::time::Duration>, OpError> {
    let secs = parse_f64(b)
        .filter(|s| s.is_finite())
        .ok_or(OpError::Static(reply::TIMEOUT_NOT_FLOAT))?;
    let ms = (secs * 1000.0).ceil();
    // Past i64::MAX ms Redis's conversion to `long long` yields LLONG_MIN
    // on x86-64: such a timeout is "negative" there, and so here.
    if !(0.0..9.223_372_036_854_776e18).contains(&ms) {
        return Err(OpError::Static(reply::TIMEOUT_NEGATIVE));
    }
    Ok((ms > 0.0).then(|| std::time::Duration::from_millis(ms.min(1e12) as u64)))
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

/// Parses `numkeys key [key ...] MIN|MAX [COUNT count]` with the key count
/// at `at` (ZMPOP, BZMPOP; LMPOP and BLMPOP with LEFT|RIGHT): the keys,
/// the end named, and the count (1 by default).
pub fn mpop_args<E>(
    args: &[bytes::Bytes],
    at: usize,
    end: impl Fn(&[u8]) -> Option<E>,
) -> Result<(&[bytes::Bytes], E, usize), OpError> {
    let numkeys = parse_i64(&args[at])
        .filter(|n| *n > 0)
        .ok_or(OpError::Static(reply::NUMKEYS_NOT_POSITIVE))? as u64;
    let where_at = (at as u64 + 1).saturating_add(numkeys);
    if where_at >= args.len() as u64 {
        return Err(OpError::Syntax);
    }
    let where_at = where_at as usize;
    let keys = &args[at + 1..where_at];
    let end = end(&args[where_at]).ok_or(OpError::Syntax)?;
    let mut count = None;
    let mut i = where_at + 1;
    while i < args.len() {
        match args.get(i + 1) {
            Some(v) if count.is_none() && is(&args[i], "COUNT") => {
                let n = parse_i64(v)
                    .filter(|n| *n > 0)
                    .ok_or(OpError::Static(reply::COUNT_NOT_POSITIVE))?;
                count = Some(usize::try_from(n).unwrap_or(usize::MAX));
            }
            _ => return Err(OpError::Syntax),
        }
        i += 2;
    }
    Ok((keys, end, count.unwrap_or(1)))
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
}
