//! Slows down password guessing: failed logins are counted per cache and
//! source address, and once a source has failed [`FREE_FAILURES`] times in a
//! row, every login it tries for that cache waits first (doubling from
//! [`FIRST_DELAY`] up to [`MAX_DELAY`]), successful or not, so a guess's
//! answer does not come sooner when it is right. The wait is the
//! connection's own (an async sleep): nobody else waits.
//!
//! The table is bounded ([`MAX_SOURCES`]); a source is forgotten
//! [`FORGET_AFTER`] after its last failure, or when it logs in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failures before logins from a source are slowed down.
pub const FREE_FAILURES: u32 = 5;
/// The first wait once a source is slowed down.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait.
pub const MAX_DELAY: Duration = Duration::from_secs(2);
/// A source is forgotten this long after its last failure.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Sources tracked at most (the oldest are forgotten first).
const MAX_SOURCES: usize = 16_384;

#[derive(Default)]
pub struct AuthGuard {
    failures: Mutex<HashMap<(String, IpAddr), (u32, Instant)>>,
}

impl AuthGuard {
    /// How long a login for `cache` from `ip` waits before it is answered.
    pub fn delay(&self, cache: &str, ip: IpAddr, now: Instant) -> Duration {
        let map = self.failures.lock();
        match map.get(&(cache.to_string(), ip)) {
            Some(&(n, last)) if n >= FREE_FAILURES && now - last < FORGET_AFTER => {
                let doublings = (n - FREE_FAILURES).min(16);
                (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    /// Counts a failed login; returns the source's failures in a row.
    pub fn failed(&self, cache: &str, ip: IpAddr, now: Instant) -> u32 {
        let mut map = self.failures.lock();
        if map.len() >= MAX_SOURCES {
            map.retain(|_, (_, last)| now - *last < FORGET_AFTER);
            if map.len() >= MAX_SOURCES
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let e = map.entry((cache.to_string(), ip)).or_insert((0, now));
        if now - e.1 >= FORGET_AFTER {
            e.0 = 0;
        }
        e.0 += 1;
        e.1 = now;
        e.0
    }

    /// A successful login forgets the source's failures.
    pub fn succeeded(&self, cache: &str, ip: IpAddr) {
        self.failures.lock().remove(&(cache.to_string(), ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_slow_a_source_down_and_a_login_forgets_them() {
        let g = AuthGuard::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let t = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(g.delay("c", ip, t), Duration::ZERO);
            g.failed("c", ip, t);
        }
        assert_eq!(g.delay("c", ip, t), FIRST_DELAY);
        g.failed("c", ip, t);
        assert_eq!(g.delay("c", ip, t), FIRST_DELAY * 2);
        for _ in 0..20 {
            g.failed("c", ip, t);
        }
        assert_eq!(g.delay("c", ip, t), MAX_DELAY);
        // Another source, another cache: not slowed.
        assert_eq!(g.delay("c", other, t), Duration::ZERO);
        assert_eq!(g.delay("d", ip, t), Duration::ZERO);
        // Forgotten after a quiet minute, or on a login.
        assert_eq!(g.delay("c", ip, t + FORGET_AFTER), Duration::ZERO);
        g.succeeded("c", ip);
        assert_eq!(g.delay("c", ip, t), Duration::ZERO);
    }

    #[test]
    fn the_table_stays_bounded() {
        let g = AuthGuard::default();
        let t = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 100) {
            g.failed("c", IpAddr::from(i.to_be_bytes()), t);
        }
        assert!(g.failures.lock().len() <= MAX_SOURCES);
    }
}
