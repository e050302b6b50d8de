//! INCRBYFLOAT arithmetic exactly as Redis does it: x87 extended precision.
//!
//! Redis parses both operands with `strtold`, adds them as `long double`
//! (a 64-bit mantissa on x86-64) and prints the sum with `%.17Lf`, trimming
//! trailing zeros. So `0.1 + 0.2` is `0.3`, but `5.6 + 200` is
//! `205.60000000000000001`. Rust has no 80-bit float; this module emulates the
//! three steps with big integers: correctly rounded parsing to a 64-bit
//! mantissa, an exact sum rounded once (to nearest, ties to even), and an exact
//! decimal rendering rounded at 17 fractional digits.

use num_bigint::BigUint;
use num_traits::{One, Zero};

/// Mantissa bits of the x87 extended format.
const MANTISSA_BITS: u64 = 64;
/// Decimal exponents beyond this overflow or underflow `long double`.
const MAX_DECIMAL_EXPONENT: i64 = 4900;

/// A finite extended-precision value: `(-1)^negative × mantissa × 2^exp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ext {
    negative: bool,
    mantissa: BigUint,
    exp: i64,
}

/// A parsed operand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Finite(Ext),
    Infinite { negative: bool },
}

/// Rounds `n × 2^exp` to at most 64 significant bits, ties to even;
/// `sticky` says whether non-zero bits below `n` were already dropped.
fn round(n: BigUint, exp: i64, sticky: bool) -> (BigUint, i64) {
    let bits = n.bits();
    if bits <= MANTISSA_BITS {
        return (n, exp);
    }
    let extra = bits - MANTISSA_BITS;
    let mut m = &n >> extra;
    let low = &n - (&m << extra);
    let half = BigUint::one() << (extra - 1);
    let odd = m.bit(0);
    if low > half || (low == half && (sticky || odd)) {
        m += 1u32;
    }
    // Rounding up can carry into a 65th bit.
    if m.bits() > MANTISSA_BITS {
        m >>= 1;
        return (m, exp + extra as i64 + 1);
    }
    (m, exp + extra as i64)
}

/// Parses a decimal as `strtold` does (optional sign, digits with an optional
/// point, optional exponent; `inf`/`infinity`), rounded to 64 mantissa bits.
/// `None` for anything Redis's `string2ld` refuses (spaces, NaN, hex,
/// overflow, junk).
pub fn parse(text: &[u8]) -> Option<Operand> {
    let s = std::str::from_utf8(text).ok()?;
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
        return Some(Operand::Infinite { negative });
    }
    let (num, exp10) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], body[at + 1..].parse::<i64>().ok()?),
        None => (body, 0),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{int}{frac}");
    let d = BigUint::parse_bytes(digits.as_bytes(), 10)?;
    if d.is_zero() {
        return Some(Operand::Finite(Ext {
            negative,
            mantissa: d,
            exp: 0,
        }));
    }
    let k = exp10 - frac.len() as i64;
    let magnitude = k + digits.trim_start_matches('0').len() as i64;
    if magnitude.abs() > MAX_DECIMAL_EXPONENT {
        return None;
    }
    let (mantissa, exp) = if k >= 0 {
        round(d * BigUint::from(10u32).pow(k as u32), 0, false)
    } else {
        let p = BigUint::from(10u32).pow((-k) as u32);
        // Enough bits that the quotient carries 66+ significant bits.
        let s = (MANTISSA_BITS + 2 + p.bits()).saturating_sub(d.bits()) as i64;
        let scaled = d << s as u64;
        let q = &scaled / &p;
        let sticky = !(&scaled % &p).is_zero();
        round(q, -s, sticky)
    };
    Some(Operand::Finite(Ext {
        negative,
        mantissa,
        exp,
    }))
}

/// `a + b` in extended precision; `None` if the result is infinite or NaN.
pub fn add(a: &Operand, b: &Operand) -> Option<Ext> {
    let (a, b) = match (a, b) {
        (Operand::Finite(a), Operand::Finite(b)) => (a, b),
        _ => return None,
    };
    let low = a.exp.min(b.exp);
    let x = &a.mantissa << (a.exp - low) as u64;
    let y = &b.mantissa << (b.exp - low) as u64;
    let (negative, sum) = match (a.negative, b.negative) {
        (sa, sb) if sa == sb => (sa, x + y),
        (sa, _) if x >= y => (sa, x - y),
        (_, sb) => (sb, y - x),
    };
    if sum.is_zero() {
        return Some(Ext {
            negative: false,
            mantissa: sum,
            exp: 0,
        });
    }
    let (mantissa, exp) = round(sum, low, false);
    Some(Ext {
        negative,
        mantissa,
        exp,
    })
}

/// Renders as Redis's `ld2string(..., LD_STR_HUMAN)`: `%.17Lf`, trailing
/// zeros (and a bare point) removed, `-0` written `0`.
pub fn format(v: &Ext) -> String {
    const FRACTION_DIGITS: usize = 17;
    let scale = BigUint::from(10u32).pow(FRACTION_DIGITS as u32);
    let scaled = if v.exp >= 0 {
        (&v.mantissa << v.exp as u64) * scale
    } else {
        let num = &v.mantissa * scale;
        let shift = (-v.exp) as u64;
        let q = &num >> shift;
        let r = &num - (&q << shift);
        let half = BigUint::one() << (shift - 1);
        if r > half || (r == half && q.bit(0)) {
            q + 1u32
        } else {
            q
        }
    };
    let digits = scaled.to_str_radix(10);
    let padded = format!("{digits:0>width$}", width = FRACTION_DIGITS + 1);
    let (int, frac) = padded.split_at(padded.len() - FRACTION_DIGITS);
    let frac = frac.trim_end_matches('0');
    let body = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    if v.negative && body != "0" {
        format!("-{body}")
    } else {
        body
    }
}

/// Parses, adds and formats: the whole INCRBYFLOAT step. `Err(true)` if an
/// operand is not a valid float, `Err(false)` if the sum is NaN or infinite.
pub fn incr(current: &[u8], by: &[u8]) -> Result<String, bool> {
    let a = parse(current).ok_or(true)?;
    let b = parse(by).ok_or(true)?;
    add(&a, &b).map(|s| format(&s)).ok_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected strings are what redis-server 7 on x86-64 replies.
    #[test]
    fn sums_print_like_redis_long_double() {
        let cases = [
            ("0.1", "0.2", "0.3"),
            ("10.5", "0.1", "10.6"),
            ("5.6", "200", "205.60000000000000001"),
            ("0", "1e20", "100000000000000000000"),
            ("0", "1e-20", "0"),
            ("3", "-3", "0"),
            ("-5", "2", "-3"),
            ("0", "5.0e3", "5000"),
            ("1.5", "0", "1.5"),
            ("0", "-0.1", "-0.1"),
        ];
        for (a, b, want) in cases {
            assert_eq!(
                incr(a.as_bytes(), b.as_bytes()).as_deref(),
                Ok(want),
                "{a} + {b}"
            );
        }
    }

    #[test]
    fn invalid_and_infinite_operands() {
        assert_eq!(incr(b"abc", b"1"), Err(true));
        assert_eq!(incr(b"1", b" 1"), Err(true));
        assert_eq!(incr(b"1", b"nan"), Err(true));
        assert_eq!(incr(b"1", b"1e99999"), Err(true));
        assert_eq!(incr(b"1", b"inf"), Err(false));
        assert_eq!(incr(b"", b"1"), Err(true));
        assert_eq!(incr(b"1.", b".5"), Ok("1.5".into()));
    }
}
