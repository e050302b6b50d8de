//! Lua 5.1 pattern matching for scripts: the matcher behind `string.find`,
//! `string.match`, `string.gmatch` and `string.gsub`, ported from Lua
//! 5.1.5's `lstrlib.c` so that scripts get Lua's results and Lua's error
//! messages, but able to stop.
//!
//! What it owns: the matcher ([`Matcher`]) over one subject and one pattern,
//! and the search loops of the four functions ([`find`], [`gmatch_next`],
//! [`gsub`]) on plain bytes. It knows nothing of mlua or of scripts: the
//! caller converts arguments and results (`cmd/script/strings.rs`).
//!
//! Differences from C Lua, all on purpose:
//! - **It stops.** Every unit of work (a pattern item tried, a subject byte
//!   scanned or compared, a backtrack) is a step; every [`CHECK_EVERY`] steps
//!   the caller's stop check runs, and when it says stop the match ends with
//!   [`Error::Stopped`] (the script's time limit or `SCRIPT KILL`). C Lua's
//!   matcher cannot be interrupted by the instruction hook, so a pattern like
//!   `string.rep("a*", 40) .. "b"` used to hold the server for ever.
//! - **It does not recurse.** Where `lstrlib.c` calls `match` recursively
//!   (captures, `?`, `*`, `+`, `-`), this keeps an explicit backtracking
//!   stack of the same frames, so its depth equals C Lua's recursion depth;
//!   past [`MAX_DEPTH`] frames the match fails with Lua 5.2's
//!   `pattern too complex` (C Lua 5.1 overflows the C stack and crashes
//!   the server a little further).
//! - Plain searches (`find` with `plain` or without special characters) use
//!   a linear-time substring search instead of `memchr` + `memcmp`.
//!
//! Kept from C Lua 5.1, also on purpose: the pattern ends at its first NUL
//! byte (it is a C string there), the byte at the end of the subject reads
//! as NUL (for `%f`), `gmatch` has no `^` anchor, a lone `%` at the end of a
//! `gsub` replacement adds a NUL byte, and character classes are those of
//! the C locale (ASCII).
//!
//! Invariant: no input (subject, pattern, replacement) can panic, recurse,
//! or run more than [`CHECK_EVERY`] steps without asking the stop check.

use crate::resp::reply;

/// Most captures in one pattern (`LUA_MAXCAPTURES`).
pub const MAX_CAPTURES: usize = 32;
/// Deepest backtracking stack (frames of 32 bytes: 4.8 MB at most). C Lua
/// 5.1 in `redis-server` 7.0.15 matches `^` .. `a?` x 150 000 .. `$` and
/// crashes (C stack overflow) at 200 000: every pattern it survives runs here.
pub const MAX_DEPTH: usize = 150_000;
/// Steps between two calls of the stop check (a few microseconds of
/// matching).
pub const CHECK_EVERY: u64 = 4096;

/// Why a match or a search did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Lua raises this message (a malformed pattern, a bad capture, ...).
    Lua(&'static str),
    /// The stop check asked to stop.
    Stopped,
    /// `gsub`'s result would pass the caller's size limit.
    TooLarge,
}

/// One capture of a successful match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// The subject's bytes `start..end`.
    Text(usize, usize),
    /// A position capture `()`: the 1-based position in the subject.
    Position(usize),
}

/// A capture's length while open, or the mark of a position capture.
const CAP_UNFINISHED: isize = -1;
const CAP_POSITION: isize = -2;
const L_ESC: u8 = b'%';
/// Bytes that make a pattern more than a plain string (`SPECIALS`).
const SPECIALS: &[u8] = b"^$*+?.([%-";

/// A way back into the match: what C Lua keeps in one recursive `match`
/// call. On failure the top frame is popped and either undone (captures) or
/// resumed with its next alternative.
#[derive(Debug, Clone, Copy)]
enum Frame {
    /// A capture was opened: on failure, close it again (`level -= 1`).
    Open,
    /// Capture `l` was closed: on failure, reopen it.
    Close(usize),
    /// `x?` matched one: on failure, go on at `s` without it.
    Optional { s: usize, p: usize },
    /// `x*`/`x+` matched `i` more at `s`: on failure, try one fewer.
    Max { s: usize, i: usize, ep: usize },
    /// `x-` is at `s`: on failure, try one more.
    Min { s: usize, p: usize, ep: usize },
}

/// A pattern without its `^` anchor, and whether it had one (`find`,
/// `match` and `gsub` anchor; `gmatch` does not).
pub fn strip_anchor(pat: &[u8]) -> (bool, &[u8]) {
    match pat.first() {
        Some(b'^') => (true, &pat[1..]),
        _ => (false, pat),
    }
}

/// The pattern as C Lua sees it: up to its first NUL byte.
fn c_string(pat: &[u8]) -> &[u8] {
    match pat.iter().position(|&b| b == 0) {
        Some(end) => &pat[..end],
        None => pat,
    }
}

/// Whether `find` may search `pat` as a plain string (no special byte
/// before its first NUL, as `strpbrk` sees it).
pub fn is_plain(pat: &[u8]) -> bool {
    !c_string(pat).iter().any(|b| SPECIALS.contains(b))
}

/// One subject, one pattern, the captures of the match in progress, and the
/// step count.
pub struct Matcher<'a, S: FnMut() -> bool> {
    src: &'a [u8],
    pat: &'a [u8],
    /// Captures opened so far (finished or not).
    level: usize,
    /// Each capture's start and length (or a `CAP_*` mark).
    caps: [(usize, isize); MAX_CAPTURES],
    stack: Vec<Frame>,
    steps: u64,
    next_check: u64,
    stop: S,
}

impl<'a, S: FnMut() -> bool> Matcher<'a, S> {
    /// A matcher of `pat` (anchor already stripped, if any) over `src`;
    /// `stop` is asked every [`CHECK_EVERY`] steps.
    pub fn new(src: &'a [u8], pat: &'a [u8], stop: S) -> Self {
        Matcher {
            src,
            pat: c_string(pat),
            level: 0,
            caps: [(0, 0); MAX_CAPTURES],
            stack: Vec::new(),
            steps: 0,
            next_check: CHECK_EVERY,
            stop,
        }
    }

    /// Steps counted so far (for metering).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Counts `n` steps and asks the stop check when it is due.
    #[inline]
    fn tick(&mut self, n: u64) -> Result<(), Error> {
        self.steps += n;
        if self.steps >= self.next_check {
            self.next_check = self.steps + CHECK_EVERY;
            if (self.stop)() {
                return Err(Error::Stopped);
            }
        }
        Ok(())
    }

    /// The pattern byte at `p`, NUL past the end (as the C string reads).
    #[inline]
    fn pat_at(&self, p: usize) -> u8 {
        self.pat.get(p).copied().unwrap_or(0)
    }

    /// The subject byte at `s`, NUL past the end (as the C string reads).
    #[inline]
    fn src_at(&self, s: usize) -> u8 {
        self.src.get(s).copied().unwrap_or(0)
    }

    /// Where the single-character class at `p` ends (`classend`).
    fn class_end(&self, p: usize) -> Result<usize, Error> {
        let c = self.pat_at(p);
        let mut p = p + 1;
        match c {
            L_ESC => {
                if p >= self.pat.len() {
                    return Err(Error::Lua(reply::LUA_PATTERN_ENDS_WITH_ESC));
                }
                Ok(p + 1)
            }
            b'[' => {
                if self.pat_at(p) == b'^' {
                    p += 1;
                }
                // do { ... } while (*p != ']'): the first byte is always in the set.
                loop {
                    if p >= self.pat.len() {
                        return Err(Error::Lua(reply::LUA_PATTERN_MISSING_BRACKET));
                    }
                    let c = self.pat[p];
                    p += 1;
                    if c == L_ESC && p < self.pat.len() {
                        p += 1;
                    }
                    if self.pat_at(p) == b']' {
                        return Ok(p + 1);
                    }
                }
            }
            _ => Ok(p),
        }
    }

    /// Whether byte `c` is in the set `[...]` from `p` (its `[`) to `ec`
    /// (its `]`) (`matchbracketclass`).
    fn in_set(&self, c: u8, p: usize, ec: usize) -> bool {
        let mut p = p;
        let mut sig = true;
        if self.pat_at(p + 1) == b'^' {
            sig = false;
            p += 1;
        }
        loop {
            p += 1;
            if p >= ec {
                return !sig;
            }
            let pc = self.pat_at(p);
            if pc == L_ESC {
                p += 1;
                if match_class(c, self.pat_at(p)) {
                    return sig;
                }
            } else if self.pat_at(p + 1) == b'-' && p + 2 < ec {
                p += 2;
                if pc <= c && c <= self.pat_at(p) {
                    return sig;
                }
            } else if pc == c {
                return sig;
            }
        }
    }

    /// Whether byte `c` matches the single-character class `p..ep`.
    #[inline]
    fn single(&self, c: u8, p: usize, ep: usize) -> bool {
        match self.pat_at(p) {
            b'.' => true,
            L_ESC => match_class(c, self.pat_at(p + 1)),
            b'[' => self.in_set(c, p, ep - 1),
            pc => pc == c,
        }
    }

    /// Whether the subject byte at `s` exists and matches `p..ep`.
    #[inline]
    fn single_at(&self, s: usize, p: usize, ep: usize) -> bool {
        s < self.src.len() && self.single(self.src[s], p, ep)
    }

    /// `%bxy` at `s` (`p` at `x`): the end of the balanced run, if any.
    fn balance(&mut self, s: usize, p: usize) -> Result<Option<usize>, Error> {
        if p + 1 >= self.pat.len() {
            return Err(Error::Lua(reply::LUA_PATTERN_UNBALANCED));
        }
        let (b, e) = (self.pat[p], self.pat[p + 1]);
        if self.src_at(s) != b || s >= self.src.len() {
            return Ok(None);
        }
        let mut cont = 1usize;
        let mut s = s + 1;
        while s < self.src.len() {
            self.tick(1)?;
            let c = self.src[s];
            if c == e {
                cont -= 1;
                if cont == 0 {
                    return Ok(Some(s + 1));
                }
            } else if c == b {
                cont += 1;
            }
            s += 1;
        }
        Ok(None)
    }

    /// `%1`-`%9` at `s`: the end of the repeated capture, if it repeats.
    fn back_reference(&mut self, s: usize, l: u8) -> Result<Option<usize>, Error> {
        let l = self.check_capture(l)?;
        let (init, len) = self.caps[l];
        if len < 0 {
            // A position capture: C compares (size_t)-2 bytes, never equal.
            return Ok(None);
        }
        let len = len as usize;
        self.tick(len as u64)?;
        if self.src.len() - s >= len && self.src[init..init + len] == self.src[s..s + len] {
            Ok(Some(s + len))
        } else {
            Ok(None)
        }
    }

    /// The capture a back-reference names (`check_capture`).
    fn check_capture(&self, l: u8) -> Result<usize, Error> {
        let l = usize::from(l).wrapping_sub(usize::from(b'1'));
        if l >= self.level || self.caps[l].1 == CAP_UNFINISHED {
            return Err(Error::Lua(reply::LUA_INVALID_CAPTURE_INDEX));
        }
        Ok(l)
    }

    /// The innermost open capture (`capture_to_close`).
    fn capture_to_close(&self) -> Result<usize, Error> {
        (0..self.level)
            .rev()
            .find(|&l| self.caps[l].1 == CAP_UNFINISHED)
            .ok_or(Error::Lua(reply::LUA_INVALID_PATTERN_CAPTURE))
    }

    fn push(&mut self, frame: Frame) -> Result<(), Error> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Error::Lua(reply::LUA_PATTERN_TOO_COMPLEX));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Matches the whole pattern at subject position `s` with no capture
    /// open (`ms.level = 0; match(ms, s, p)`): where the match ends, if it
    /// matches.
    pub fn match_at(&mut self, s: usize) -> Result<Option<usize>, Error> {
        self.level = 0;
        self.stack.clear();
        let (mut s, mut p) = (s, 0usize);
        'attempt: loop {
            // Forward: follow the pattern until it ends (a match) or fails.
            let failed = loop {
                self.tick(1)?;
                match self.pat_at(p) {
                    _ if p >= self.pat.len() => return Ok(Some(s)),
                    b'(' => {
                        if self.level >= MAX_CAPTURES {
                            return Err(Error::Lua(reply::LUA_TOO_MANY_CAPTURES));
                        }
                        let (what, next) = if self.pat_at(p + 1) == b')' {
                            (CAP_POSITION, p + 2)
                        } else {
                            (CAP_UNFINISHED, p + 1)
                        };
                        self.caps[self.level] = (s, what);
                        self.level += 1;
                        self.push(Frame::Open)?;
                        p = next;
                    }
                    b')' => {
                        let l = self.capture_to_close()?;
                        self.caps[l].1 = (s - self.caps[l].0) as isize;
                        self.push(Frame::Close(l))?;
                        p += 1;
                    }
                    b'$' if p + 1 == self.pat.len() => {
                        if s == self.src.len() {
                            return Ok(Some(s));
                        }
                        break true;
                    }
                    L_ESC if self.pat_at(p + 1) == b'b' => match self.balance(s, p + 2)? {
                        Some(end) => {
                            s = end;
                            p += 4;
                        }
                        None => break true,
                    },
                    L_ESC if self.pat_at(p + 1) == b'f' => {
                        p += 2;
                        if self.pat_at(p) != b'[' {
                            return Err(Error::Lua(reply::LUA_FRONTIER_NO_BRACKET));
                        }
                        let ep = self.class_end(p)?;
                        let previous = if s == 0 { 0 } else { self.src[s - 1] };
                        if self.in_set(previous, p, ep - 1)
                            || !self.in_set(self.src_at(s), p, ep - 1)
                        {
                            break true;
                        }
                        p = ep;
                    }
                    L_ESC if self.pat_at(p + 1).is_ascii_digit() => {
                        match self.back_reference(s, self.pat_at(p + 1))? {
                            Some(end) => {
                                s = end;
                                p += 2;
                            }
                            None => break true,
                        }
                    }
                    _ => {
                        let ep = self.class_end(p)?;
                        let m = self.single_at(s, p, ep);
                        match self.pat_at(ep) {
                            b'?' => {
                                if m {
                                    self.push(Frame::Optional { s, p: ep + 1 })?;
                                    s += 1;
                                }
                                p = ep + 1;
                            }
                            b'*' => {
                                let i = self.expand(s, p, ep)?;
                                self.push(Frame::Max { s, i, ep })?;
                                s += i;
                                p = ep + 1;
                            }
                            b'+' => {
                                if !m {
                                    break true;
                                }
                                let i = self.expand(s + 1, p, ep)?;
                                self.push(Frame::Max { s: s + 1, i, ep })?;
                                s += 1 + i;
                                p = ep + 1;
                            }
                            b'-' => {
                                self.push(Frame::Min { s, p, ep })?;
                                p = ep + 1;
                            }
                            _ => {
                                if !m {
                                    break true;
                                }
                                s += 1;
                                p = ep;
                            }
                        }
                    }
                }
            };
            debug_assert!(failed);
            // Backward: undo or resume the newest way back.
            loop {
                self.tick(1)?;
                match self.stack.pop() {
                    None => return Ok(None),
                    Some(Frame::Open) => self.level -= 1,
                    Some(Frame::Close(l)) => self.caps[l].1 = CAP_UNFINISHED,
                    Some(Frame::Optional { s: at, p: next }) => {
                        s = at;
                        p = next;
                        continue 'attempt;
                    }
                    Some(Frame::Max { s: at, i, ep }) => {
                        if i > 0 {
                            self.stack.push(Frame::Max {
                                s: at,
                                i: i - 1,
                                ep,
                            });
                            s = at + i - 1;
                            p = ep + 1;
                            continue 'attempt;
                        }
                    }
                    Some(Frame::Min { s: at, p: item, ep }) => {
                        if self.single_at(at, item, ep) {
                            self.stack.push(Frame::Min {
                                s: at + 1,
                                p: item,
                                ep,
                            });
                            s = at + 1;
                            p = ep + 1;
                            continue 'attempt;
                        }
                    }
                }
            }
        }
    }

    /// How many subject bytes from `s` match the item `p..ep` (the first
    /// loop of `max_expand`).
    fn expand(&mut self, s: usize, p: usize, ep: usize) -> Result<usize, Error> {
        let mut i = 0;
        while self.single_at(s + i, p, ep) {
            self.tick(1)?;
            i += 1;
        }
        Ok(i)
    }

    /// Capture `i` of the match `s..e` just found (`push_onecapture`): with
    /// no capture in the pattern, capture 0 is the whole match.
    pub fn capture(&self, i: usize, s: usize, e: usize) -> Result<Capture, Error> {
        if i >= self.level {
            return if i == 0 {
                Ok(Capture::Text(s, e))
            } else {
                Err(Error::Lua(reply::LUA_INVALID_CAPTURE_INDEX))
            };
        }
        match self.caps[i] {
            (_, CAP_UNFINISHED) => Err(Error::Lua(reply::LUA_UNFINISHED_CAPTURE)),
            (init, CAP_POSITION) => Ok(Capture::Position(init + 1)),
            (init, len) => Ok(Capture::Text(init, init + len as usize)),
        }
    }

    /// The captures of the match `s..e` just found (`push_captures`): the
    /// pattern's captures, or the whole match when it has none and `whole`.
    pub fn captures(&self, s: usize, e: usize, whole: bool) -> Result<Vec<Capture>, Error> {
        let n = if self.level == 0 && whole {
            1
        } else {
            self.level
        };
        (0..n).map(|i| self.capture(i, s, e)).collect()
    }

    /// The subject.
    pub fn subject(&self) -> &'a [u8] {
        self.src
    }
}

/// Lua's character classes in the C locale (`match_class`): `cl` is the
/// byte after `%`; an upper-case class letter is the complement; any other
/// byte stands for itself.
fn match_class(c: u8, cl: u8) -> bool {
    let res = match cl.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        // isspace: also \v, which is_ascii_whitespace leaves out.
        b's' => c == b' ' || (b'\t'..=b'\r').contains(&c),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        b'z' => c == 0,
        _ => return cl == c,
    };
    if cl.is_ascii_lowercase() { res } else { !res }
}

/// A Lua string position (1-based, negative from the end) as a 0-based
/// start, clamped to the subject as `str_find_aux` does.
pub fn start_offset(init: i64, len: usize) -> usize {
    let len_i = len as i64;
    let pos = if init < 0 { init + len_i + 1 } else { init };
    let pos = pos.max(0); // posrelat
    (pos - 1).clamp(0, len_i) as usize
}

/// `string.find`/`string.match`: the first match of `pat` (with its anchor,
/// if any) at or after `init` (0-based): its start and end. The captures
/// are read from the matcher afterwards.
pub fn find<S: FnMut() -> bool>(
    m: &mut Matcher<'_, S>,
    anchor: bool,
    init: usize,
) -> Result<Option<(usize, usize)>, Error> {
    let mut s1 = init;
    loop {
        if let Some(e) = m.match_at(s1)? {
            return Ok(Some((s1, e)));
        }
        if anchor || s1 >= m.src.len() {
            return Ok(None);
        }
        s1 += 1;
    }
}

/// A plain search for `needle` in `src` from `init` (0-based): its start.
/// Also returns the bytes scanned, for metering.
pub fn find_plain(src: &[u8], needle: &[u8], init: usize) -> (Option<usize>, usize) {
    let hay = &src[init.min(src.len())..];
    match memchr::memmem::find(hay, needle) {
        Some(at) => (Some(init + at), at + needle.len()),
        None => (None, hay.len()),
    }
}

/// One step of `gmatch` from `from` (0-based): the match's start and end,
/// or `None` when no match is left. The next call starts at the end (one
/// byte further for an empty match).
pub fn gmatch_next<S: FnMut() -> bool>(
    m: &mut Matcher<'_, S>,
    from: usize,
) -> Result<Option<(usize, usize)>, Error> {
    let mut src = from;
    while src <= m.src.len() {
        if let Some(e) = m.match_at(src)? {
            return Ok(Some((src, e)));
        }
        src += 1;
    }
    Ok(None)
}

/// Where `gmatch` goes on after the match `s..e`.
pub fn gmatch_resume(s: usize, e: usize) -> usize {
    if e == s { e + 1 } else { e }
}

/// `string.gsub` with a string replacement (`add_s`: `%0`-`%9` are the
/// match and its captures, `%` before any other byte is that byte): the
/// result in `out` and the number of matches replaced. `max_n` is Lua's
/// optional fourth argument; `max_out` bounds the result's size.
pub fn gsub<S: FnMut() -> bool>(
    m: &mut Matcher<'_, S>,
    anchor: bool,
    repl: &[u8],
    max_n: i64,
    max_out: usize,
    out: &mut Vec<u8>,
) -> Result<i64, Error> {
    let src = m.src;
    let mut at = 0usize;
    let mut n = 0i64;
    while n < max_n {
        let e = m.match_at(at)?;
        if let Some(e) = e {
            n += 1;
            add_replacement(m, repl, at, e, out)?;
        }
        match e {
            Some(e) if e > at => at = e,
            _ if at < src.len() => {
                out.push(src[at]);
                at += 1;
            }
            _ => break,
        }
        if out.len() > max_out {
            return Err(Error::TooLarge);
        }
        if anchor {
            break;
        }
    }
    out.extend_from_slice(&src[at..]);
    if out.len() > max_out {
        return Err(Error::TooLarge);
    }
    Ok(n)
}

/// Appends the replacement of the match `s..e` (`add_s`).
fn add_replacement<S: FnMut() -> bool>(
    m: &mut Matcher<'_, S>,
    repl: &[u8],
    s: usize,
    e: usize,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let src = m.src;
    let mut i = 0;
    while i < repl.len() {
        let c = repl[i];
        i += 1;
        if c != L_ESC {
            out.push(c);
            continue;
        }
        // A lone % at the end reads the C string's terminating NUL.
        let d = repl.get(i).copied().unwrap_or(0);
        i += 1;
        if !d.is_ascii_digit() {
            out.push(d);
        } else if d == b'0' {
            out.extend_from_slice(&src[s..e]);
        } else {
            match m.capture(usize::from(d - b'1'), s, e)? {
                Capture::Text(a, b) => out.extend_from_slice(&src[a..b]),
                Capture::Position(pos) => out.extend_from_slice(pos.to_string().as_bytes()),
            }
        }
    }
    m.tick(repl.len() as u64 + (e - s) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A capture as Lua shows it: the text, or the position as a number.
    fn show(src: &[u8], c: Capture) -> String {
        match c {
            Capture::Text(a, b) => String::from_utf8_lossy(&src[a..b]).into_owned(),
            Capture::Position(p) => format!("#{p}"),
        }
    }

    /// `string.match(s, p)` as a list of strings (`nil` when none, the
    /// error message on error).
    fn lua_match(s: &str, p: &str) -> Vec<String> {
        let (anchor, pat) = strip_anchor(p.as_bytes());
        let mut m = Matcher::new(s.as_bytes(), pat, || false);
        match find(&mut m, anchor, 0) {
            Ok(Some((a, e))) => match m.captures(a, e, true) {
                Ok(caps) => caps.into_iter().map(|c| show(s.as_bytes(), c)).collect(),
                Err(Error::Lua(msg)) => vec![format!("error: {msg}")],
                Err(e) => vec![format!("{e:?}")],
            },
            Ok(None) => vec!["nil".into()],
            Err(Error::Lua(msg)) => vec![format!("error: {msg}")],
            Err(e) => vec![format!("{e:?}")],
        }
    }

    /// `string.find(s, p, init)` as start, end and captures.
    fn lua_find(s: &str, p: &str, init: i64) -> Vec<String> {
        let init = start_offset(init, s.len());
        if is_plain(p.as_bytes()) {
            return match find_plain(s.as_bytes(), p.as_bytes(), init).0 {
                Some(at) => vec![(at + 1).to_string(), (at + p.len()).to_string()],
                None => vec!["nil".into()],
            };
        }
        let (anchor, pat) = strip_anchor(p.as_bytes());
        let mut m = Matcher::new(s.as_bytes(), pat, || false);
        match find(&mut m, anchor, init) {
            Ok(Some((a, e))) => {
                let mut out = vec![(a + 1).to_string(), e.to_string()];
                match m.captures(a, e, false) {
                    Ok(caps) => out.extend(caps.into_iter().map(|c| show(s.as_bytes(), c))),
                    Err(Error::Lua(msg)) => return vec![format!("error: {msg}")],
                    Err(e) => return vec![format!("{e:?}")],
                }
                out
            }
            Ok(None) => vec!["nil".into()],
            Err(Error::Lua(msg)) => vec![format!("error: {msg}")],
            Err(e) => vec![format!("{e:?}")],
        }
    }

    fn lua_gsub(s: &str, p: &str, r: &str, max_n: i64) -> (String, i64) {
        let (anchor, pat) = strip_anchor(p.as_bytes());
        let mut m = Matcher::new(s.as_bytes(), pat, || false);
        let mut out = Vec::new();
        match gsub(&mut m, anchor, r.as_bytes(), max_n, usize::MAX, &mut out) {
            Ok(n) => (String::from_utf8_lossy(&out).into_owned(), n),
            Err(Error::Lua(msg)) => (format!("error: {msg}"), -1),
            Err(e) => (format!("{e:?}"), -1),
        }
    }

    fn lua_gmatch(s: &str, p: &str) -> Vec<Vec<String>> {
        let mut m = Matcher::new(s.as_bytes(), p.as_bytes(), || false);
        let mut from = 0;
        let mut all = Vec::new();
        while let Some((a, e)) = gmatch_next(&mut m, from).unwrap() {
            let caps = m.captures(a, e, true).unwrap();
            all.push(caps.into_iter().map(|c| show(s.as_bytes(), c)).collect());
            from = gmatch_resume(a, e);
        }
        all
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// `string.match` cases; every expected value in these tables is what
    /// `redis-server` 7.0.15's Lua 5.1 returns (`tests/scripting.rs` compares
    /// more cases with a running one).
    #[test]
    fn match_agrees_with_lua() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("hello world", "o w", &["o w"]),
            ("hello world", "^hello", &["hello"]),
            ("hello world", "^world", &["nil"]),
            ("hello world", "world$", &["world"]),
            ("hello world", "(h)(e)(l)", &["h", "e", "l"]),
            ("hello", "l+", &["ll"]),
            ("hello", "l*", &[""]),
            ("hello", "hel-o", &["hello"]),
            ("hello", "hel-", &["he"]),
            ("hello", "x?h", &["h"]),
            (
                "  key = value  ",
                "^%s*(%S+)%s*=%s*(%S+)%s*$",
                &["key", "value"],
            ),
            ("2024-01-15", "(%d+)-(%d+)-(%d+)", &["2024", "01", "15"]),
            ("abc123def", "%a+", &["abc"]),
            ("abc123def", "%d+", &["123"]),
            ("abc123def", "%D+", &["abc"]),
            ("a.b", "%.", &["."]),
            ("a+b", "[+-]", &["+"]),
            ("a-b", "[+-]", &["-"]),
            ("x]y", "[]]", &["]"]),
            ("x^y", "[%^]", &["^"]),
            ("abc", "[^a]+", &["bc"]),
            ("ABCdef", "[A-Z]+", &["ABC"]),
            ("a-z", "[a%-z]+", &["a-z"]),
            ("hello", "()ll()", &["#3", "#5"]),
            ("hello", "()", &["#1"]),
            ("THE (quick) fox", "%((%a+)%)", &["quick"]),
            ("f(a(b)c)d", "%b()", &["(a(b)c)"]),
            ("f(a(b c", "%b()", &["nil"]),
            ("THE (quick) fox", "%f[%a]%a+", &["THE"]),
            ("hello world", "%f[%w]%w+$", &["world"]),
            ("abcabc", "(abc)%1", &["abc"]),
            ("abab", "(a)(b)%1%2", &["a", "b"]),
            ("x = 'it''s'", "(['\"])(.-)%1", &["'", "it"]),
            ("aaa", "a-b", &["nil"]),
            ("aaab", "a-b", &["aaab"]),
            ("", "", &[""]),
            ("", "a*", &[""]),
            ("", "$", &[""]),
            ("abc", "$", &[""]),
            ("a$b", "a$b", &["a$b"]),
            ("a\0b", "%z", &["\0"]),
            ("tab\there", "%c", &["\t"]),
            ("x\x0by", "%s", &["\x0b"]),
            ("HeLLo", "%u+", &["H"]),
            ("HeLLo", "%l+", &["e"]),
            ("0xFF", "%x+", &["0"]),
            ("a,b;c", "%p", &[","]),
            ("word1 word2", "%w+", &["word1"]),
            ("abc", "((a)(b))", &["ab", "a", "b"]),
            ("abc", "a(.-)c", &["b"]),
            ("[[x]]", "%[(.*)%]", &["[x]"]),
            // Errors, with Lua 5.1's messages.
            ("abc", "%", &["error: malformed pattern (ends with '%')"]),
            ("abc", "[a", &["error: malformed pattern (missing ']')"]),
            ("abc", "[a%", &["error: malformed pattern (missing ']')"]),
            ("abc", "(a", &["error: unfinished capture"]),
            ("abc", "a)", &["error: invalid pattern capture"]),
            ("abc", "%1", &["error: invalid capture index"]),
            ("abc", "(a%1)", &["error: invalid capture index"]),
            ("abc", "%f", &["error: missing '[' after '%f' in pattern"]),
            ("abc", "%fx", &["error: missing '[' after '%f' in pattern"]),
            ("abc", "%b", &["error: unbalanced pattern"]),
            ("abc", "%b(", &["error: unbalanced pattern"]),
            // Only reached when the matcher gets there.
            ("xyz", "a%1", &["nil"]),
            ("a]b", "[%]]", &["]"]),
            ("a]b", "[]a]+", &["a]"]),
            ("-a-", "[a-]+", &["-a-"]),
            ("ab]", "[^]]+", &["ab"]),
            ("b", "[%a-z]", &["b"]),
            ("aXb", "%Ab", &["nil"]),
            ("abc", "(()a)", &["a", "#1"]),
            ("aaa", "(a*(.))%2", &["aa", "a"]),
            ("x(y)z", "%b)(", &["nil"]),
            ("((a)", "%b()", &["(a)"]),
            ("THE END", "%f[%l]", &["nil"]),
            ("hello", "%f[%z]", &[""]),
            ("abc", "a**", &["nil"]),
            ("aaaa", "^(a-)(a+)$", &["", "aaaa"]),
            ("ab", "(a)(b)%3", &["error: invalid capture index"]),
            ("a", "()%1", &["nil"]),
            ("aa", "(a)%0", &["error: invalid capture index"]),
            // The pattern ends at a NUL byte.
            ("abc", "b\0z", &["b"]),
        ];
        for (s, p, want) in cases {
            assert_eq!(lua_match(s, p), v(want), "match({s:?}, {p:?})");
        }
        let many = "(a)".repeat(33);
        assert_eq!(
            lua_match(&"a".repeat(40), &many),
            v(&["error: too many captures"])
        );
    }

    #[test]
    fn find_agrees_with_lua() {
        let cases: &[(&str, &str, i64, &[&str])] = &[
            ("hello", "l", 1, &["3", "3"]),
            ("hello", "l", 4, &["4", "4"]),
            ("hello", "l", -1, &["nil"]),
            ("hello", "l", -2, &["4", "4"]),
            ("hello", "l", -100, &["3", "3"]),
            ("hello", "", 10, &["6", "5"]),
            ("hello", "", 1, &["1", "0"]),
            ("hello", "(l)(l)", 1, &["3", "4", "l", "l"]),
            ("hello", "()l", 1, &["3", "3", "#3"]),
            ("a.b", ".", 1, &["1", "1"]),
            ("hello", "^l", 3, &["3", "3"]),
            ("hello", "^l", 1, &["nil"]),
            // A quantifier with nothing before it is a literal item.
            ("a+b", "+", 1, &["2", "2"]),
            ("abc", "", 4, &["4", "3"]),
            ("abc", "", 5, &["4", "3"]),
            ("hello", "lo$", 1, &["4", "5"]),
            ("hello", "", -1, &["5", "4"]),
            ("", "", 2, &["1", "0"]),
            ("aaa", "a-", 2, &["2", "1"]),
        ];
        for (s, p, init, want) in cases {
            assert_eq!(lua_find(s, p, *init), v(want), "find({s:?}, {p:?}, {init})");
        }
        // No specials before the NUL: a plain search for all the bytes.
        assert_eq!(lua_find("xa\0.y", "a\0.", 1), v(&["2", "4"]));
    }

    #[test]
    fn gsub_agrees_with_lua() {
        let cases: &[(&str, &str, &str, i64, &str, i64)] = &[
            ("hello world", "o", "0", i64::MAX, "hell0 w0rld", 2),
            ("hello world", "o", "0", 1, "hell0 world", 1),
            ("hello world", "o", "0", 0, "hello world", 0),
            ("hello world", "o", "0", -1, "hello world", 0),
            ("hello", "", "-", i64::MAX, "-h-e-l-l-o-", 6),
            ("hello", "l*", "X", i64::MAX, "XhXeXXoX", 5),
            (
                "hello world",
                "(%w+)",
                "<%1>",
                i64::MAX,
                "<hello> <world>",
                2,
            ),
            (
                "hello world",
                "%w+",
                "%0 %0",
                i64::MAX,
                "hello hello world world",
                2,
            ),
            ("abc", "%w", "%%", i64::MAX, "%%%", 3),
            ("abc", "b", "%", i64::MAX, "a\0c", 1),
            ("abc", "b", "%x", i64::MAX, "axc", 1),
            ("abc", "b", "%1", i64::MAX, "abc", 1),
            (
                "abc",
                "b",
                "%2",
                i64::MAX,
                "error: invalid capture index",
                -1,
            ),
            ("abc", "", "", i64::MAX, "abc", 4),
            ("abc", ".", "%0%0", 2, "aabbc", 2),
            ("abc", "(a)(b)(c)", "%3%2%1", i64::MAX, "cba", 1),
            ("abc", "a", "%", i64::MAX, "\0bc", 1),
            ("abc", "(", "x", i64::MAX, "xaxbxcx", 4),
            (
                "abc",
                "%",
                "x",
                i64::MAX,
                "error: malformed pattern (ends with '%')",
                -1,
            ),
            ("abc", "()b", "%1", i64::MAX, "a2c", 1),
            ("hello", "^h", "J", i64::MAX, "Jello", 1),
            ("hello", "^x", "J", i64::MAX, "hello", 0),
            ("hello", "^", ">", i64::MAX, ">hello", 1),
            ("", "", "x", i64::MAX, "x", 1),
            ("abc", "$", "!", i64::MAX, "abc!", 1),
            ("a b  c", "%s+", " ", i64::MAX, "a b c", 2),
        ];
        for (s, p, r, n, want, count) in cases {
            let (got, k) = lua_gsub(s, p, r, *n);
            assert_eq!(got, *want, "gsub({s:?}, {p:?}, {r:?})");
            if *count >= 0 {
                assert_eq!(k, *count, "gsub({s:?}, {p:?}, {r:?}) count");
            }
        }
    }

    #[test]
    fn gmatch_agrees_with_lua() {
        assert_eq!(
            lua_gmatch("one two  three", "%a+"),
            vec![v(&["one"]), v(&["two"]), v(&["three"])]
        );
        assert_eq!(
            lua_gmatch("k1=v1, k2=v2", "(%w+)=(%w+)"),
            vec![v(&["k1", "v1"]), v(&["k2", "v2"])]
        );
        assert_eq!(
            lua_gmatch("abc", ""),
            vec![v(&[""]), v(&[""]), v(&[""]), v(&[""])]
        );
        assert_eq!(lua_gmatch("ab", "a*"), vec![v(&["a"]), v(&[""]), v(&[""])]);
        // No anchor in gmatch: '^' is a literal byte.
        assert_eq!(lua_gmatch("a^b", "^b"), vec![v(&["^b"])]);
        assert_eq!(
            lua_gmatch("abc", "()"),
            vec![v(&["#1"]), v(&["#2"]), v(&["#3"]), v(&["#4"])]
        );
    }

    #[test]
    fn catastrophic_patterns_stop() {
        // 'a*' x 40 then 'b' on 40 a's: about 40^40/40! ... steps in C Lua,
        // for ever in practice. Here the stop check ends it.
        let s = "a".repeat(40);
        let p = format!("{}b", "a*".repeat(40));
        let mut checks = 0;
        let mut m = Matcher::new(s.as_bytes(), p.as_bytes(), || {
            checks += 1;
            checks > 100
        });
        assert_eq!(find(&mut m, false, 0), Err(Error::Stopped));
        assert!(m.steps() >= 100 * CHECK_EVERY);
        // '.-b' over 60 000 a's: quadratic.
        let s = "a".repeat(60_000);
        let mut m = Matcher::new(s.as_bytes(), b".-b", || true);
        assert_eq!(find(&mut m, false, 0), Err(Error::Stopped));
        assert!(m.steps() <= 2 * CHECK_EVERY);
    }

    #[test]
    fn deep_patterns_do_not_recurse() {
        // As deep as C Lua would recurse: fine up to the limit.
        let n = 20_000;
        let s = "a".repeat(n);
        let p = format!("^{}$", "a?".repeat(n));
        assert_eq!(lua_match(&s, &p), v(&[&s]));
        let n = MAX_DEPTH + 10;
        let s = "a".repeat(n);
        let p = format!("^{}$", "a?".repeat(n));
        assert_eq!(lua_match(&s, &p), v(&["error: pattern too complex"]));
        // Many nested captures are bounded by MAX_CAPTURES.
        let p = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(lua_match("a", &p), v(&["error: too many captures"]));
    }

    #[test]
    fn frames_are_small() {
        // MAX_DEPTH's memory bound counts on it.
        assert!(std::mem::size_of::<Frame>() <= 32);
    }

    #[test]
    fn classes_follow_the_c_locale() {
        for c in 0..=255u8 {
            let cls = [
                (b'a', c.is_ascii_alphabetic()),
                (b'd', c.is_ascii_digit()),
                (b's', matches!(c, b' ' | 9..=13)),
                (
                    b'p',
                    (33..=47).contains(&c)
                        || (58..=64).contains(&c)
                        || (91..=96).contains(&c)
                        || (123..=126).contains(&c),
                ),
                (b'c', c < 32 || c == 127),
            ];
            for (cl, want) in cls {
                assert_eq!(match_class(c, cl), want, "{c} %{}", cl as char);
                assert_eq!(match_class(c, cl.to_ascii_uppercase()), !want);
            }
        }
    }
}
