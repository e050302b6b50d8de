//! Turns on a reactor thread: every task that serves clients (each
//! connection, the accept loop) runs at most [`SLICE`] before it lets the
//! others run, so another tenant's request waits behind at most a slice per
//! busy task ahead of it, never behind a whole pipeline, upload or
//! connection storm (DESIGN §12).
//!
//! A turn is one poll of a task wrapped in [`in_turns`]. Its slice starts
//! at the first clock reading the task hands in during that poll
//! ([`slice_over`], [`end_of_slice_at`], [`now`]; the tasks read the clock
//! after each unit of work anyway), so a turn costs no clock reading of its
//! own. What runs before that first reading is one unit of work: a socket
//! read of at most 16 KiB, an accept, the rest of a request that waited
//! (for a worker, a node), or one request's reply written after
//! [`end_of_round`] (a pipeline's replies are timed: it resumes through
//! [`yield_turn`]). Between units of work (a request, a 16
//! KiB piece of a read buffer being regrown, an accepted socket) the task
//! yields once its slice is used. Tokio defers a yielded task's wake-up
//! until it has polled for I/O, so the clients that became ready meanwhile
//! go first.
//!
//! [`end_of_round`] is the wait between running what a connection read and
//! writing the replies, so a round's replies go out together (Redis's
//! `beforeSleep`); one request's reply goes before the next poll for I/O.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long one task runs on its reactor thread before it yields.
pub const SLICE: Duration = Duration::from_micros(50);

thread_local! {
    /// When the slice of the task this reactor thread is running ends: a
    /// [`SLICE`] after the first clock reading of its current poll (`None`
    /// before that reading). Compared, not subtracted, on every request.
    static SLICE_END: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `task` with its turns timed.
pub async fn in_turns<F: Future>(task: F) -> F::Output {
    let mut task = std::pin::pin!(task);
    std::future::poll_fn(|cx| {
        SLICE_END.set(None);
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
/// finishes what must not wait for the others' turns, and yields); the
/// turn's first reading starts its slice.
pub fn slice_over(now: Instant) -> bool {
    match SLICE_END.get() {
        Some(end) => now >= end,
        None => {
            SLICE_END.set(Some(now + SLICE));
            false
        }
    }
}

/// Waits, before a connection sends the replies to the `answered`
/// requests it has just run, until the other tasks ready on this reactor
/// thread have had their turn.
///
/// So the replies of one round of connections go out together, as Redis
/// writes its clients' replies in `beforeSleep` after the event loop has
/// run them all. Sent one connection at a time between the others' work,
/// each send found the client asleep and paid its wake-up (an interrupt to
/// the client's CPU: the `sock_def_readable` → `_raw_spin_unlock_irqrestore`
/// at 16% of the server's CPU in `perf record`), and redis-benchmark
/// GET/SET at pipeline 16 ran 18–20% slower (`loadtest/HISTORY.md`).
///
/// How long it waits depends on the round:
/// - **One request**: until the tasks ready now have run, not longer. A
///   task that wakes itself while it runs goes to the back of the run
///   queue (tokio's `multi_thread` harness, "Notified"): its reply goes out
///   before the thread polls for I/O again. Through [`yield_turn`] the
///   requests that poll found ran first, and each reply waited for a second
///   round of work (p50 at pipeline 1 1.1–1.4× Redis's at the same
///   throughput, and a second `epoll_wait` per round).
/// - **A pipeline** (more than one request): [`yield_turn`], so requests
///   that arrived meanwhile run before its replies are written (and the
///   writes count in the new turn's slice). One
///   tenant's pipelined flood (100 connections × 32 requests) then delays
///   another tenant's request by its work, not by its hundred writes as
///   well (with every round written first, cache B's p99 next to `noisy
///   --heavy get` was 2.2–2.3× its p99 alone in two runs, against
///   1.44–1.63× in earlier sessions; `loadtest/HISTORY.md`).
pub async fn end_of_round(answered: usize) {
    if answered > 1 {
        yield_turn().await;
        return;
    }
    let mut woken = false;
    std::future::poll_fn(|cx| {
        if woken {
            return std::task::Poll::Ready(());
        }
        woken = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// Lets the other tasks run; returns the time it resumed, its new turn's
/// first clock reading.
pub async fn yield_turn() -> Instant {
    tokio::task::yield_now().await;
    now()
}

/// Reads the clock (the current turn's first reading starts its slice).
pub fn now() -> Instant {
    let now = Instant::now();
    slice_over(now);
    now
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

    /// A turn's slice runs from the first clock reading of its poll: that
    /// reading never ends it, a later one a slice after it does, and the
    /// next poll starts a slice of its own.
    #[test]
    fn a_slice_starts_at_the_first_reading_of_its_turn() {
        SLICE_END.set(None);
        let first = Instant::now() + Duration::from_secs(60);
        assert!(!slice_over(first), "the first reading started the slice");
        assert!(!slice_over(first + SLICE / 2));
        assert!(slice_over(first + SLICE));
        // A new poll (`in_turns` clears the end): an earlier time starts
        // a fresh slice instead of being compared with the old one.
        SLICE_END.set(None);
        assert!(!slice_over(first - SLICE * 10));
        assert!(slice_over(first - SLICE * 9));
    }

    /// The order in which two connections that end their round (each
    /// having answered `answered` requests) and a task waiting for a socket
    /// that became readable during the round go on, on the server's
    /// runtime (one worker of the multi-thread scheduler).
    fn round_and_new_request(answered: usize) -> Vec<&'static str> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            tokio::spawn(async move {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let mut client =
                    std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (server, _) = listener.accept().unwrap();
                // The request has arrived (a blocking peek) before the
                // socket is registered: the thread learns that it is
                // readable at its next poll for I/O, which comes after
                // the rounds below have started (the test's task does not
                // wait for I/O until then).
                std::io::Write::write_all(&mut client, b"PING\r\n").unwrap();
                server.peek(&mut [0u8; 1]).unwrap();
                server.set_nonblocking(true).unwrap();
                let server = tokio::net::TcpStream::from_std(server).unwrap();
                let order = Arc::new(std::sync::Mutex::new(Vec::new()));
                let seen = order.clone();
                let reader = tokio::spawn(async move {
                    server.readable().await.unwrap();
                    seen.lock().unwrap().push("request read");
                });
                let rounds: Vec<_> = (0..2)
                    .map(|_| {
                        let seen = order.clone();
                        tokio::spawn(in_turns(async move {
                            end_of_round(answered).await;
                            seen.lock().unwrap().push("replies sent");
                        }))
                    })
                    .collect();
                for task in rounds {
                    task.await.unwrap();
                }
                reader.await.unwrap();
                drop(client);
                order.lock().unwrap().clone()
            })
            .await
            .unwrap()
        })
    }

    /// One request's reply goes out before the requests that arrived
    /// during its round run (as Redis); a pipeline's replies go out after
    /// them (a newcomer does not wait behind a flood's writes).
    #[test]
    fn a_round_of_one_request_ends_before_the_thread_polls_for_io() {
        assert_eq!(
            round_and_new_request(1),
            ["replies sent", "replies sent", "request read"]
        );
        let pipelines = round_and_new_request(16);
        assert_eq!(
            pipelines.last(),
            Some(&"replies sent"),
            "the new request ran after every reply of the pipelines: {pipelines:?}"
        );
    }
}
