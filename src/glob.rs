//! Glob matching (Redis's `stringmatchlen`): KEYS and the SCAN family's
//! MATCH, ACL key and channel patterns, PSUBSCRIBE. A leaf: it imports
//! nothing of the crate.

/// Glob matching for KEYS and the SCAN family's MATCH: Redis's
/// `stringmatchlen` ([`string_match`]), except that the bare pattern `*`
/// matches every string, the empty one included — Redis's KEYS and SCAN
/// short-circuit that pattern before they call the matcher.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    pattern == b"*" || string_match(pattern, s, false)
}

/// Redis's recursion limit in `stringmatchlen`: it gives up (no match) below
/// this many nested stars.
const MAX_STAR_NESTING: usize = 1000;

/// Redis's `stringmatchlen` (util.c), byte for byte: `?` one byte, `*` any
/// run, `[abc]`, `[^abc]`, ranges `[a-z]` (reversed `[z-a]` too, bounds
/// compared as C's signed `char`), `\x` a literal x inside and outside a
/// class (a trailing lone `\` is literal), an unterminated class runs to the
/// end of the pattern, `[]` matches nothing and `[^]` any byte; an empty
/// string matches only the empty pattern; `nocase` folds ASCII letters
/// (except an escaped byte inside a class, as in Redis).
///
/// Cost: O(len(pattern) × len(string)) at worst. `*` is the only token of
/// variable length, so on a mismatch it is enough to let the *last* star
/// absorb one more byte and retry from there: an earlier star taking more
/// bytes could only hand the rest of the pattern a suffix the last star
/// already tried. (Redis's recursive form avoids the blow-up with its
/// `skipLongerMatches` flag; before that it was exponential, CVE-2022-36021.)
pub fn string_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    if s.is_empty() {
        // Redis's loop never starts: only an empty pattern matches.
        return pattern.is_empty();
    }
    if past_star_nesting(pattern) {
        return false;
    }
    let (mut pi, mut si) = (0usize, 0usize);
    // Where to resume after the last star: the pattern after its group, and
    // the string position that star's match ends at now.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pattern.get(pi) == Some(&b'*') {
            while pattern.get(pi) == Some(&b'*') {
                pi += 1;
            }
            if pi == pattern.len() {
                return true;
            }
            star = Some((pi, si));
            continue;
        }
        if pi < pattern.len() {
            let (ok, next) = token(pattern, pi, s[si], nocase);
            if ok {
                pi = next;
                si += 1;
                continue;
            }
        }
        match star {
            Some((after, from)) => {
                star = Some((after, from + 1));
                pi = after;
                si = from + 1;
            }
            None => return false,
        }
    }
    // The string is used up: only stars may remain.
    while pattern.get(pi) == Some(&b'*') {
        pi += 1;
    }
    pi == pattern.len()
}

/// Whether Redis's recursion would give up on `pattern`: its star group
/// number 1001 recurses past the limit unless it ends the pattern (a
/// trailing star matches without recursing), and no match can avoid passing
/// through it.
fn past_star_nesting(pattern: &[u8]) -> bool {
    if pattern.iter().filter(|&&b| b == b'*').count() <= MAX_STAR_NESTING {
        return false;
    }
    let (mut i, mut groups) = (0usize, 0usize);
    while i < pattern.len() {
        if pattern[i] == b'*' {
            while pattern.get(i) == Some(&b'*') {
                i += 1;
            }
            groups += 1;
            if groups > MAX_STAR_NESTING && i < pattern.len() {
                return true;
            }
        } else {
            i = token(pattern, i, 0, false).1;
        }
    }
    false
}

/// Matches the one-byte token at `pattern[i]` (anything but `*`) against
/// `c`; returns whether it matched and where the next token starts (which
/// does not depend on `c`).
fn token(pattern: &[u8], i: usize, c: u8, nocase: bool) -> (bool, usize) {
    match pattern[i] {
        b'?' => (true, i + 1),
        b'[' => class(pattern, i + 1, c, nocase),
        b'\\' if i + 1 < pattern.len() => (same(pattern[i + 1], c, nocase), i + 2),
        lit => (same(lit, c, nocase), i + 1),
    }
}

/// A class whose body starts at `pattern[i]` (after the `[`): whether `c` is
/// in it, and the position after its `]` (the pattern's end if unterminated).
fn class(pattern: &[u8], mut i: usize, c: u8, nocase: bool) -> (bool, usize) {
    let not = pattern.get(i) == Some(&b'^');
    if not {
        i += 1;
    }
    let mut matched = false;
    loop {
        match &pattern[i..] {
            [] => break,
            // Redis compares an escaped byte exactly, even with nocase.
            [b'\\', e, ..] => {
                matched |= *e == c;
                i += 2;
            }
            [b']', ..] => {
                i += 1;
                break;
            }
            [a, b'-', b, ..] => {
                matched |= in_range(*a, *b, c, nocase);
                i += 3;
            }
            [x, ..] => {
                matched |= same(*x, c, nocase);
                i += 1;
            }
        }
    }
    (matched != not, i)
}

/// Redis's range test: bounds and byte as C's (signed, on x86 and most
/// targets) `char`, swapped if reversed, then lowercased with `nocase`.
fn in_range(a: u8, b: u8, c: u8, nocase: bool) -> bool {
    let signed = |x: u8| i32::from(x as i8);
    let (mut lo, mut hi, mut c) = (signed(a), signed(b), signed(c));
    if lo > hi {
        std::mem::swap(&mut lo, &mut hi);
    }
    if nocase {
        let lower = |x: i32| if (65..=90).contains(&x) { x + 32 } else { x };
        (lo, hi, c) = (lower(lo), lower(hi), lower(c));
    }
    lo <= c && c <= hi
}

fn same(p: u8, c: u8, nocase: bool) -> bool {
    p == c || (nocase && p.eq_ignore_ascii_case(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_like_redis() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"*", b"anything", true),
            (b"h?llo", b"hello", true),
            (b"h?llo", b"hllo", false),
            (b"h*llo", b"heeeello", true),
            (b"h[ae]llo", b"hallo", true),
            (b"h[ae]llo", b"hillo", false),
            (b"h[^e]llo", b"hallo", true),
            (b"h[^e]llo", b"hello", false),
            (b"h[a-b]llo", b"hbllo", true),
            (b"h\\*llo", b"h*llo", true),
            (b"h\\*llo", b"hello", false),
            (b"user:*:name", b"user:42:name", true),
            (b"a*", b"", false),
            // KEYS and SCAN short-circuit the bare star: the empty key too.
            (b"*", b"", true),
            // ... but the matcher itself does not (Redis: `KEYS **`).
            (b"**", b"", false),
            (b"", b"", true),
            (b"", b"a", false),
            // Reversed ranges; a range bound may be `]`; `-` first is literal.
            (b"[z-a]", b"m", true),
            (b"[a-]", b"]", true),
            (b"[a-]", b"_", true),
            (b"[a-]", b"b", false),
            (b"[a-]b]", b"b", true),
            (b"[-a]", b"-", true),
            // Bounds compare as signed chars: 0xff is -1, below 'a'.
            (b"[a-\xff]", b"\xff", true),
            (b"[a-\xff]", b"b", false),
            (b"[a-\xff]", b"a", true),
            (b"[a-\xff]", b"\x00", true),
            // Escapes inside a class, and an escaped `]`.
            (b"[\\]]", b"]", true),
            (b"[\\-a]", b"-", true),
            (b"[\\-a]", b"b", false),
            (b"[\\^]", b"^", true),
            // Unterminated classes run to the end of the pattern.
            (b"[", b"[", false),
            (b"[", b"", false),
            (b"[^", b"x", true),
            (b"[^", b"xy", false),
            (b"a[bc", b"ac", true),
            (b"a[bc", b"acx", false),
            (b"*[bc", b"xxb", true),
            (b"[\\", b"\\", true),
            // Empty classes.
            (b"[]", b"]", false),
            (b"[^]", b"x", true),
            (b"[]a]", b"a", false),
            // A trailing lone backslash is a literal.
            (b"a\\", b"a\\", true),
            (b"a\\", b"a", false),
            // `?` and `*` take any byte, NUL and 0xff included.
            (b"?", b"\x00", true),
            (b"a*b", b"a\x00\xffb", true),
            (b"*a*b*c*", b"xxaxxbxxcxx", true),
            (b"*a*b*c*", b"xxaxxcxxbxx", false),
            (b"a*a*a*b", b"aaaaaaaaab", true),
            (b"a*a*a*b", b"aaaaaaaaaa", false),
            (b"*?", b"x", true),
            (b"?*?", b"x", false),
        ];
        for (p, s, want) in cases {
            if *p != b"*" {
                assert_eq!(redis_oracle(p, s, false), *want, "oracle");
            }
            assert_eq!(
                glob_match(p, s),
                *want,
                "{:?} {:?}",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(s)
            );
        }
    }

    #[test]
    fn glob_nocase() {
        assert!(string_match(b"HeLLo", b"hello", true));
        assert!(!string_match(b"HeLLo", b"hello", false));
        assert!(string_match(b"[A-C]x", b"bX", true));
        assert!(string_match(b"[^a]", b"B", true));
        assert!(!string_match(b"[^a]", b"A", true));
        // Redis compares an escaped byte in a class exactly.
        assert!(!string_match(b"[\\A]", b"a", true));
    }

    /// Redis's own algorithm (util.c `stringmatchlen_impl`, with
    /// `skipLongerMatches` and the nesting limit), transcribed as the oracle
    /// for short inputs. Reads past the pattern's end as C reads its NUL.
    fn redis_oracle(p: &[u8], s: &[u8], nocase: bool) -> bool {
        fn at(p: &[u8], i: usize) -> u8 {
            p.get(i).copied().unwrap_or(0)
        }
        fn lower(x: i32) -> i32 {
            if (65..=90).contains(&x) { x + 32 } else { x }
        }
        fn imp(
            p: &[u8],
            mut pi: usize,
            s: &[u8],
            mut si: usize,
            nc: bool,
            skip: &mut bool,
            nesting: usize,
        ) -> bool {
            if nesting > 1000 {
                return false;
            }
            let plen = |pi: usize| p.len() - pi;
            while plen(pi) > 0 && si < s.len() {
                match p[pi] {
                    b'*' => {
                        while plen(pi) > 0 && at(p, pi + 1) == b'*' {
                            pi += 1;
                        }
                        if plen(pi) == 1 {
                            return true;
                        }
                        while si < s.len() {
                            if imp(p, pi + 1, s, si, nc, skip, nesting + 1) {
                                return true;
                            }
                            if *skip {
                                return false;
                            }
                            si += 1;
                        }
                        *skip = true;
                        return false;
                    }
                    b'?' => si += 1,
                    b'[' => {
                        pi += 1;
                        let not = at(p, pi) == b'^';
                        if not {
                            pi += 1;
                        }
                        let mut m = false;
                        loop {
                            if at(p, pi) == b'\\' && plen(pi) >= 2 {
                                pi += 1;
                                m |= p[pi] == s[si];
                            } else if at(p, pi) == b']' {
                                break;
                            } else if plen(pi) == 0 {
                                pi -= 1;
                                break;
                            } else if plen(pi) >= 3 && p[pi + 1] == b'-' {
                                let (mut a, mut b) = (p[pi] as i8 as i32, p[pi + 2] as i8 as i32);
                                let mut c = s[si] as i8 as i32;
                                if a > b {
                                    std::mem::swap(&mut a, &mut b);
                                }
                                if nc {
                                    (a, b, c) = (lower(a), lower(b), lower(c));
                                }
                                pi += 2;
                                m |= c >= a && c <= b;
                            } else if nc {
                                m |= lower(p[pi] as i8 as i32) == lower(s[si] as i8 as i32);
                            } else {
                                m |= p[pi] == s[si];
                            }
                            pi += 1;
                        }
                        if not {
                            m = !m;
                        }
                        if !m {
                            return false;
                        }
                        si += 1;
                    }
                    c => {
                        let c = if c == b'\\' && plen(pi) >= 2 {
                            pi += 1;
                            p[pi]
                        } else {
                            c
                        };
                        let eq = if nc {
                            lower(c as i8 as i32) == lower(s[si] as i8 as i32)
                        } else {
                            c == s[si]
                        };
                        if !eq {
                            return false;
                        }
                        si += 1;
                    }
                }
                pi += 1;
                if si == s.len() {
                    while at(p, pi) == b'*' {
                        pi += 1;
                    }
                    break;
                }
            }
            plen(pi) == 0 && si == s.len()
        }
        imp(p, 0, s, 0, nocase, &mut false, 0)
    }

    #[test]
    fn glob_agrees_with_redis_on_random_inputs() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let pattern_bytes = b"ab*?[]^-\\Az\xff";
        let string_bytes = b"ab]^-\\*Az\xff";
        for _ in 0..200_000 {
            let p: Vec<u8> = (0..rng.random_range(0..9))
                .map(|_| pattern_bytes[rng.random_range(0..pattern_bytes.len())])
                .collect();
            let s: Vec<u8> = (0..rng.random_range(0..7))
                .map(|_| string_bytes[rng.random_range(0..string_bytes.len())])
                .collect();
            let nocase = rng.random_bool(0.2);
            assert_eq!(
                string_match(&p, &s, nocase),
                redis_oracle(&p, &s, nocase),
                "{:?} {:?} nocase={nocase}",
                String::from_utf8_lossy(&p),
                String::from_utf8_lossy(&s)
            );
        }
    }

    #[test]
    fn glob_nesting_limit_like_redis() {
        // Redis gives up past 1000 nested stars unless the last one ends the
        // pattern (checked against redis-server 7.0.15).
        for (n, ends_with_b, want) in [
            (1000, true, true),
            (1001, true, false),
            (1001, false, true),
            (1002, false, false),
        ] {
            let mut p = b"a*".repeat(n);
            let mut s = b"a".repeat(n + 1);
            if ends_with_b {
                p.push(b'b');
                s.push(b'b');
            }
            assert_eq!(string_match(&p, &s, false), want, "{n} stars");
        }
        // An escaped or bracketed star is not a star.
        let p = [b"\\*".repeat(1500), b"x*".to_vec()].concat();
        let s = [b"*".repeat(1500), b"xyz".to_vec()].concat();
        assert!(string_match(&p, &s, false));
    }

    /// The CVE-2022-36021 shape: exponential for a backtracking matcher.
    /// No timing assertion: the old matcher never got past this test.
    #[test]
    fn glob_pathological_patterns_finish() {
        let s = b"a".repeat(40);
        let p = [b"a*".repeat(20), b"b".to_vec()].concat();
        assert!(!glob_match(&p, &s));
        let s = b"a".repeat(4096);
        let p = [b"*a".repeat(500), b"*b".to_vec()].concat();
        assert!(!glob_match(&p, &s));
        let p = b"*[a-b]?".repeat(300);
        assert!(glob_match(&p, &s));
    }
}
