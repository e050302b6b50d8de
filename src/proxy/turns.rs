//! Turns on a reactor thread: every task that serves clients (each
//! connection, the accept loop) runs at most [`SLICE`] before it lets the
//! others run, so another tenant's request waits behind at most a slice per
//! busy task ahead of it, never behind a whole pipeline, upload or
//! connection storm (DESIGN §12).
//!
//! [`in_turns`] stamps each poll of the task it wraps; [`end_of_slice`],
//! called between units of work (a request, a 64 KiB piece of a read
//! buffer, an accepted socket), yields once the current poll has used its
//! slice. Tokio defers a yielded task's wake-up until it has polled for
//! I/O, so the clients that became ready meanwhile go first.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long one task runs on its reactor thread before it yields.
pub const SLICE: Duration = Duration::from_micros(50);

thread_local! {
    /// When the task this reactor thread is running was polled.
    static TURN: Cell<Instant> = Cell::new(Instant::now());
}

/// Runs `task` with its turns timed.
pub async fn in_turns<F: Future>(task: F) -> F::Output {
    let mut task = std::pin::pin!(task);
    std::future::poll_fn(|cx| {
        TURN.set(Instant::now());
        task.as_mut().poll(cx)
    })
    .await
}

/// Yields once the current turn has lasted a slice (see the module doc).
pub async fn end_of_slice() {
    end_of_slice_at(Instant::now()).await;
}

/// [`end_of_slice`] with the clock just read by the caller; returns the
/// time to carry on from (read again if it yielded).
pub async fn end_of_slice_at(now: Instant) -> Instant {
    if slice_over(now) {
        return yield_turn().await;
    }
    now
}

/// Whether the current turn has lasted a slice by `now` (then the caller
/// finishes what must not wait for the others' turns, and yields).
pub fn slice_over(now: Instant) -> bool {
    now.saturating_duration_since(TURN.get()) >= SLICE
}

/// Waits until the other tasks ready on this reactor thread have had their
/// turn (tokio runs a yielded task again only after it has emptied its run
/// queue and polled for I/O); returns the time it resumed.
///
/// A connection calls it between answering the requests it read and
/// sending the replies, so the replies of one round of connections go out
/// together, as Redis writes its clients' replies in `beforeSleep` after the
/// event loop has run them all. Sent one connection at a time between the
/// others' work, each send found the client asleep and paid its wake-up
/// (an interrupt to the client's CPU: the `sock_def_readable` → `_raw_spin_
/// unlock_irqrestore` at 16% of the server's CPU in `perf record`), and
/// redis-benchmark GET/SET at pipeline 16 ran 18–20% slower (README,
/// Performance).
pub async fn end_of_round() -> Instant {
    yield_turn().await
}

/// Lets the other tasks run; returns the time it resumed (its new turn's
/// stamp: the task is run [`in_turns`], so no second clock reading).
pub async fn yield_turn() -> Instant {
    tokio::task::yield_now().await;
    TURN.get()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A task that works for many slices lets a task woken meanwhile run
    /// before it finishes (without turns, one thread would run it to the end).
    #[tokio::test(flavor = "current_thread")]
    async fn a_long_task_lets_others_run_before_it_ends() {
        let other_ran = Arc::new(AtomicBool::new(false));
        let seen = other_ran.clone();
        let long = tokio::spawn(in_turns(async move {
            let until = Instant::now() + SLICE * 40;
            let mut others_first = false;
            while Instant::now() < until {
                std::hint::spin_loop();
                others_first |= seen.load(Ordering::Relaxed);
                end_of_slice().await;
            }
            others_first
        }));
        let flag = other_ran.clone();
        tokio::spawn(async move { flag.store(true, Ordering::Relaxed) });
        assert!(
            long.await.unwrap(),
            "the other task ran only after the long one"
        );
    }
}
