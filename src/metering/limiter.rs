//! Per-cache ECPU/s admission: a GCRA limiter (governor) weighted by ECPU.
//!
//! Phases of one admission ([`EcpuLimiter::admit`]):
//! 1. the charge is the request's own cost known before it runs (its
//!    transfer, at least 1 ECPU) plus the cache's outstanding debt;
//! 2. the charge is taken in pieces no larger than the burst; a piece that
//!    does not conform waits until it does, as long as the total wait stays
//!    within `max_wait` (throttling shows up as latency first);
//! 3. past `max_wait` the request fails with THROTTLED; unpaid debt stays.
//!
//! Waiters queue: one at a time (the oldest) sleeps until its cells
//! conform, the others wait for their turn in arrival order, and a
//! newcomer does not overtake them ([`EcpuLimiter::try_admit`] refuses
//! while anyone waits). When each waiter slept until its own earliest
//! time, all found the same instant: next to `noisy --heavy get` (100
//! connections at their cache's limit) the waiting requests were polled
//! 116,000 times a second for 5,000 admissions — every waiter woke on
//! every millisecond tick, one got the cells and the rest slept again.
//!
//! After the request ran, [`EcpuLimiter::add_debt`] charges the part of its
//! cost that exceeded the upfront charge (a large reply, walked elements), so
//! a burst of expensive requests cannot escape the limit.
//!
//! Cells: governor counts whole cells; one cell is `cell_milli` milli-ECPU,
//! chosen so a limit needs at most a million cells per second (the GCRA
//! period stays a whole number of microseconds or more, so rates are precise
//! to 0.1%). Charges below a cell are carried, not rounded up, so what is
//! charged over time equals what was metered. The burst is a tenth of a
//! second of the limit.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::cost::MILLI;

/// Most cells per second a limiter uses (sets the cell size).
const MAX_CELLS_PER_SEC: u64 = 1_000_000;
/// The burst, as a fraction of one second of the limit.
const BURST_DIVISOR: u64 = 10;

type Gcra<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A request refused by the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled;

/// The ECPU/s limiter of one cache.
pub struct EcpuLimiter<C: Clock = DefaultClock> {
    gcra: Gcra<C>,
    clock: C,
    /// Limit in ECPU per second.
    pub max_ecpu_per_sec: u64,
    cell_milli: u64,
    burst_cells: u64,
    /// Cells owed by requests that cost more than they were charged upfront.
    debt_cells: AtomicU64,
    /// Milli-ECPU converted to cells so far (carries fractions of a cell).
    converted_milli: AtomicU64,
    /// The waiters' queue (see the module doc): one permit, held by the
    /// waiter whose turn it is; tokio's semaphore hands it on in FIFO order.
    turnstile: tokio::sync::Semaphore,
}

impl EcpuLimiter<DefaultClock> {
    pub fn new(max_ecpu_per_sec: u64) -> Option<EcpuLimiter<DefaultClock>> {
        EcpuLimiter::with_clock(max_ecpu_per_sec, DefaultClock::default())
    }
}

impl<C: Clock + Clone> EcpuLimiter<C> {
    /// A limiter for `max_ecpu_per_sec` on `clock`; `None` for 0 (no limit).
    pub fn with_clock(max_ecpu_per_sec: u64, clock: C) -> Option<EcpuLimiter<C>> {
        if max_ecpu_per_sec == 0 {
            return None;
        }
        let milli_per_sec = max_ecpu_per_sec.checked_mul(MILLI)?;
        let cell_milli = milli_per_sec.div_ceil(MAX_CELLS_PER_SEC).max(1);
        let cells_per_sec = (milli_per_sec / cell_milli).max(1);
        let burst_cells = (cells_per_sec / BURST_DIVISOR)
            .max(MILLI / cell_milli)
            .max(1);
        let rate = NonZeroU32::new(u32::try_from(cells_per_sec).ok()?)?;
        let burst = NonZeroU32::new(u32::try_from(burst_cells).ok()?)?;
        let quota = Quota::per_second(rate).allow_burst(burst);
        Some(EcpuLimiter {
            gcra: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            max_ecpu_per_sec,
            cell_milli,
            burst_cells,
            debt_cells: AtomicU64::new(0),
            converted_milli: AtomicU64::new(0),
            turnstile: tokio::sync::Semaphore::new(1),
        })
    }

    /// Converts a charge to cells: the cell boundaries the running total crosses.
    fn cells(&self, milli: u64) -> u64 {
        let before = self.converted_milli.fetch_add(milli, Ordering::AcqRel);
        (before + milli) / self.cell_milli - before / self.cell_milli
    }

    /// Tries to take `cells` (at most one burst) now; on refusal, how long
    /// until they would conform.
    fn take(&self, cells: u64) -> Result<(), Duration> {
        let n = NonZeroU32::new(cells.min(self.burst_cells) as u32).unwrap_or(NonZeroU32::MIN);
        match self.gcra.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(self.clock.now())),
            // Cannot happen: pieces never exceed the burst.
            Err(_) => Err(Duration::MAX),
        }
    }

    /// One admission attempt without sleeping: charges debt and `upfront_milli`
    /// in burst-sized pieces. Returns `Ok` when all is charged, or the
    /// remaining charge and how long to wait before trying it again (no
    /// time and the whole charge while others wait: it queues behind them).
    pub fn try_admit(&self, upfront_milli: u64) -> Result<(), (u64, Duration)> {
        if self.turnstile.available_permits() == 0 {
            return Err((self.cells(upfront_milli), Duration::ZERO));
        }
        let debt = self.debt_cells.swap(0, Ordering::AcqRel);
        self.charge(debt + self.cells(upfront_milli), debt)
    }

    /// Charges `need` cells of which the first `debt` are debt; on refusal the
    /// unpaid debt goes back and the remaining need is returned with the wait.
    fn charge(&self, mut need: u64, mut debt: u64) -> Result<(), (u64, Duration)> {
        while need > 0 {
            let piece = need.min(self.burst_cells);
            match self.take(piece) {
                Ok(()) => {
                    need -= piece;
                    debt = debt.saturating_sub(piece);
                }
                Err(wait) => {
                    self.debt_cells.fetch_add(debt, Ordering::AcqRel);
                    return Err((need - debt, wait));
                }
            }
        }
        Ok(())
    }

    /// Admits a request whose cost known upfront is `upfront_milli`, waiting
    /// (asynchronously) up to `max_wait` in total.
    pub async fn admit(&self, upfront_milli: u64, max_wait: Duration) -> Result<(), Throttled> {
        match self.try_admit(upfront_milli) {
            Ok(()) => Ok(()),
            Err(pending) => self.wait_admitted(pending, max_wait).await,
        }
    }

    /// Finishes the admission [`EcpuLimiter::try_admit`] refused (`pending`:
    /// what it still needs), waiting up to `max_wait` in total: first for
    /// its turn among the waiters, then, its turn come, for its cells.
    pub async fn wait_admitted(
        &self,
        pending: (u64, Duration),
        max_wait: Duration,
    ) -> Result<(), Throttled> {
        let deadline = tokio::time::Instant::now() + max_wait;
        let Ok(Ok(_turn)) = tokio::time::timeout_at(deadline, self.turnstile.acquire()).await
        else {
            return Err(Throttled);
        };
        let mut need = pending.0;
        loop {
            let debt = self.debt_cells.swap(0, Ordering::AcqRel);
            match self.charge(debt + need, debt) {
                Ok(()) => return Ok(()),
                Err((rest, wait)) => {
                    if tokio::time::Instant::now() + wait > deadline {
                        return Err(Throttled);
                    }
                    need = rest;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Charges the part of a request's cost beyond its upfront charge.
    pub fn add_debt(&self, upfront_milli: u64, actual_milli: u64) {
        let extra = self.cells(actual_milli.saturating_sub(upfront_milli));
        if extra > 0 {
            self.debt_cells.fetch_add(extra, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limiter(max: u64) -> (EcpuLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (EcpuLimiter::with_clock(max, clock.clone()).unwrap(), clock)
    }

    #[test]
    fn admits_the_burst_then_exactly_the_rate() {
        // 100 ECPU/s: cells of 1 milli-ECPU, burst = 10 ECPU.
        let (l, clock) = limiter(100);
        for _ in 0..10 {
            assert_eq!(l.try_admit(1000), Ok(()));
        }
        let Err((need, wait)) = l.try_admit(1000) else {
            panic!("over the burst")
        };
        assert_eq!(need, 1000);
        assert_eq!(wait, Duration::from_millis(10));
        clock.advance(Duration::from_millis(9));
        assert!(l.try_admit(1000).is_err());
        clock.advance(Duration::from_millis(1));
        assert_eq!(l.try_admit(1000), Ok(()));
        // After an idle second the bucket holds one burst again, not a
        // second's worth: bursts stay bounded.
        clock.advance(Duration::from_secs(1));
        let admitted = (0..200).filter(|_| l.try_admit(1000).is_ok()).count();
        assert_eq!(admitted, 10);
    }

    #[test]
    fn debt_is_charged_to_later_requests() {
        let (l, clock) = limiter(100);
        assert_eq!(l.try_admit(1000), Ok(()));
        // The request turned out to cost 5 ECPU: 4 owed.
        l.add_debt(1000, 5000);
        for _ in 0..5 {
            assert_eq!(l.try_admit(1000), Ok(()));
        }
        // 1 + 4 + 5 = 10 ECPU: the burst is spent.
        assert!(l.try_admit(1000).is_err());
        clock.advance(Duration::from_millis(10));
        assert_eq!(l.try_admit(1000), Ok(()));
    }

    #[test]
    fn a_request_larger_than_the_burst_is_charged_in_pieces() {
        let (l, clock) = limiter(100);
        // 25 ECPU with a 10 ECPU burst: the first piece goes through, then waits.
        let Err((need, wait)) = l.try_admit(25_000) else {
            panic!()
        };
        assert_eq!(need, 15_000);
        assert_eq!(wait, Duration::from_millis(100));
        clock.advance(Duration::from_millis(100));
        let Err((need, _)) = l.charge(need, 0) else {
            panic!()
        };
        assert_eq!(need, 5_000);
        clock.advance(Duration::from_millis(100));
        assert_eq!(l.charge(need, 0), Ok(()));
    }

    #[test]
    fn cell_size_keeps_rates_precise() {
        let l = EcpuLimiter::new(15_000_000).unwrap();
        assert_eq!(l.cell_milli, 15_000);
        assert_eq!(l.burst_cells, 100_000);
        // Charges below a cell carry over: 30 one-ECPU requests are 2 cells.
        let cells: u64 = (0..30).map(|_| l.cells(1000)).sum();
        assert_eq!(cells, 2);
        assert!(EcpuLimiter::new(0).is_none());
    }

    /// While a request waits for cells, another is not admitted ahead of
    /// it even when cells have come (it queues), and waiters are admitted
    /// in the order they came.
    #[tokio::test]
    async fn waiters_are_admitted_in_order_and_not_overtaken() {
        // 1,000 ECPU/s (1 per ms), burst 100 ECPU: spent at once.
        let l = std::sync::Arc::new(EcpuLimiter::new(1000).unwrap());
        assert_eq!(l.try_admit(100_000), Ok(()));
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for i in 0..5u64 {
            let pending = l.try_admit(30_000).expect_err("over the limit");
            let (l, order) = (l.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                l.wait_admitted(pending, Duration::from_secs(10))
                    .await
                    .expect("admitted within the wait");
                order.lock().unwrap().push(i);
            }));
            // The first takes its turn before the next comes.
            tokio::task::yield_now().await;
        }
        // 20 ms in, 20 ECPU have come: enough for a 1-ECPU request, which
        // still queues behind the first waiter's 30.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (_, wait) = l.try_admit(1000).expect_err("queued behind the waiters");
        assert_eq!(wait, Duration::ZERO);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }
}
