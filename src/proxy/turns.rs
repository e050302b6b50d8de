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
//!
//! [`end_of_round`] is the other kind of wait: a connection that has
//! answered what it read sends its replies once the tasks ready now have
//! run, before the thread polls for I/O again (Redis's `beforeSleep`).

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long one task runs on its reactor thread before it yields.
pub const SLICE: Duration = Duration::from_micros(50);

thread_local! {
    /// When the task this reactor thread is running was polled, and when
    /// its slice ends (compared, not subtracted, on every request).
    static TURN: Cell<(Instant, Instant)> = Cell::new((Instant::now(), Instant::now()));
}

/// Runs `task` with its turns timed.
pub async fn in_turns<F: Future>(task: F) -> F::Output {
    let mut task = std::pin::pin!(task);
    std::future::poll_fn(|cx| {
        let now = Instant::now();
        TURN.set((now, now + SLICE));
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
    now >= TURN.get().1
}

/// Waits until the other tasks ready on this reactor thread now have had
/// their turn, and no longer: returns the time it resumed.
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
///
/// Not [`yield_turn`]: tokio runs a yielded task only after its next poll
/// for I/O, and the requests that poll finds ran before the replies of the
/// round before them, each reply waiting for a second round of work (p50
/// at pipeline 1 1.1–1.4× Redis's at the same throughput), with an extra
/// `epoll_wait` per round. A task that wakes itself while it runs goes to
/// the back of the run queue instead: after the tasks ready now, before
/// the thread polls for I/O (tokio's `multi_thread` harness, "Notified").
pub async fn end_of_round() -> Instant {
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
    TURN.get().0
}

/// Lets the other tasks run; returns the time it resumed (its new turn's
/// stamp: the task is run [`in_turns`], so no second clock reading).
pub async fn yield_turn() -> Instant {
    tokio::task::yield_now().await;
    TURN.get().0
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

    /// Connections that end their round while a socket has become readable
    /// resume (and send their replies) before the task waiting for that
    /// socket runs: the new requests wait for the round's replies, as in
    /// Redis, not the other way round (the server's runtime: one worker of
    /// the multi-thread scheduler).
    #[test]
    fn a_round_ends_before_the_thread_polls_for_io() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let order = runtime.block_on(async {
            tokio::spawn(async {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (server, _) = listener.accept().unwrap();
                server.set_nonblocking(true).unwrap();
                let server = tokio::net::TcpStream::from_std(server).unwrap();
                let order = Arc::new(std::sync::Mutex::new(Vec::new()));
                let seen = order.clone();
                let reader = tokio::spawn(async move {
                    server.readable().await.unwrap();
                    seen.lock().unwrap().push("request read");
                });
                let client = Arc::new(client);
                let rounds: Vec<_> = (0..2)
                    .map(|_| {
                        let (seen, client) = (order.clone(), client.clone());
                        tokio::spawn(in_turns(async move {
                            // The socket becomes readable while the round
                            // runs (the thread learns it at its next poll
                            // for I/O).
                            std::io::Write::write_all(&mut &*client, b"PING\r\n").unwrap();
                            end_of_round().await;
                            seen.lock().unwrap().push("replies sent");
                        }))
                    })
                    .collect();
                for task in rounds {
                    task.await.unwrap();
                }
                reader.await.unwrap();
                order.lock().unwrap().clone()
            })
            .await
            .unwrap()
        });
        assert_eq!(order, ["replies sent", "replies sent", "request read"]);
    }
}
