//! Turns on a reactor thread: every task that serves clients (each
//! connection, the accept loop) runs at most [`SLICE`] before it lets the
//! others run, and turns go round the *lanes* — a cache's connections, the
//! unauthenticated connections of one address, the accept loop — not the
//! tasks ([`in_turns`]). So another tenant's request waits behind about a
//! slice per busy lane, never behind a whole pipeline, upload or connection
//! storm, nor behind a slice of each of a hundred connections of one cache
//! (DESIGN §12).
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
use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long one task runs on its reactor thread before it yields.
pub const SLICE: Duration = Duration::from_micros(50);

thread_local! {
    /// When the slice of the task this reactor thread is running ends: a
    /// [`SLICE`] after the first clock reading of its current poll (`None`
    /// before that reading). Compared, not subtracted, on every request.
    static SLICE_END: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The lane of the accept loops.
pub const ACCEPT_LANE: u64 = u64::MAX;

/// The lane of every connection bound to `cache` (its address: unique
/// among live caches, below 2⁶³).
pub fn cache_lane<T>(cache: &Arc<T>) -> u64 {
    Arc::as_ptr(cache) as *const () as usize as u64
}

/// The lane of the connections from `ip` not bound to a cache.
pub fn address_lane(ip: IpAddr) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    ip.hash(&mut hasher);
    (hasher.finish() >> 2) | 1 << 63
}

/// A task's place in the turns: the lane its turns count in, which the
/// task may change (a connection that binds to a cache moves to the
/// cache's lane). Clones are the same place.
#[derive(Clone)]
pub struct Lane(Arc<Ticket>);

impl Lane {
    pub fn new(lane: u64) -> Lane {
        Lane(Arc::new(Ticket {
            lane: AtomicU64::new(lane),
            woken: AtomicU64::new(0),
            parked: AtomicU64::new(0),
            gone: AtomicBool::new(false),
            task: Mutex::new(None),
        }))
    }

    /// Counts the task's next turns in `lane`.
    pub fn set(&self, lane: u64) {
        self.0.lane.store(lane, Relaxed);
    }
}

/// What the turns know of one task (behind its waker).
struct Ticket {
    /// The lane it is woken in next.
    lane: AtomicU64,
    /// The lane it waits in since it was woken, 0 when it is not waiting
    /// (changed under [`SCHED`]).
    woken: AtomicU64,
    /// The lane whose parked queue holds its entry, 0 if none (under
    /// [`SCHED`]; it may hold stale ones in others).
    parked: AtomicU64,
    /// Its task has ended (under [`SCHED`]): a waker of it that outlives
    /// the task wakes nothing and counts nowhere.
    gone: AtomicBool,
    /// The task's own waker, from its last poll.
    task: Mutex<Option<Waker>>,
}

impl Wake for Ticket {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Waiting already (read without the lock: at worst a wake-up that
        // races with the start of its turn gives it an unordered one).
        if self.woken.load(Relaxed) == 0 {
            SCHED.lock().woken(self);
        }
        if let Some(task) = &*self.task.lock() {
            task.wake_by_ref();
        }
    }
}

/// Which lanes have tasks waiting for a turn, and since when.
static SCHED: LazyLock<Mutex<Sched>> = LazyLock::new(|| {
    Mutex::new(Sched {
        clock: 0,
        lanes: hashbrown::HashMap::new(),
        waiting: BTreeSet::new(),
        parked: 0,
    })
});

struct Sched {
    /// Counts turns ended.
    clock: u64,
    /// Lanes with a task waiting or running.
    lanes: hashbrown::HashMap<u64, LaneState>,
    /// (since, lane) of every lane with a task waiting.
    waiting: BTreeSet<(u64, u64)>,
    /// Entries in the lanes' parked queues.
    parked: usize,
}

#[derive(Default)]
struct LaneState {
    /// Tasks woken and not yet run (parked ones included).
    waiting: usize,
    running: usize,
    /// The clock when it began to wait, or when its last turn ended if
    /// it has waited since (never before `served`).
    since: u64,
    /// The clock when its last turn ended.
    served: u64,
    /// Tasks that came for a turn out of their lane's order (some may have
    /// run since: those are dropped when they come out).
    parked: VecDeque<Arc<Ticket>>,
}

impl Sched {
    /// `ticket`'s task has been woken: it waits in its lane.
    fn woken(&mut self, ticket: &Ticket) {
        if ticket.woken.load(Relaxed) != 0 || ticket.gone.load(Relaxed) {
            return;
        }
        let id = ticket.lane.load(Relaxed);
        ticket.woken.store(id, Relaxed);
        let lane = self.lanes.entry(id).or_default();
        if lane.waiting == 0 {
            lane.since = self.clock;
            self.waiting.insert((self.clock, id));
        }
        lane.waiting += 1;
    }

    /// `ticket`'s task is polled: the lane its turn runs in, or `None` if
    /// another lane has waited since before this lane's last turn ended
    /// (the task is parked until this lane's turn comes).
    fn start(&mut self, ticket: &Arc<Ticket>) -> Option<u64> {
        let id = ticket.woken.load(Relaxed);
        if id == 0 {
            // Polled without a wake-up (its first poll): a turn all the same.
            let id = ticket.lane.load(Relaxed);
            self.lanes.entry(id).or_default().running += 1;
            return Some(id);
        }
        let first_other = self.waiting.iter().find(|(_, l)| *l != id).map(|w| w.0);
        let lane = self.lanes.get_mut(&id).expect("a waiting lane has a state");
        if first_other.is_some_and(|since| since < lane.served) {
            if ticket.parked.swap(id, Relaxed) != id {
                lane.parked.push_back(ticket.clone());
                self.parked += 1;
            }
            return None;
        }
        ticket.woken.store(0, Relaxed);
        lane.waiting -= 1;
        if lane.waiting == 0 {
            self.waiting.remove(&(lane.since, id));
        }
        lane.running += 1;
        Some(id)
    }

    /// A turn in lane `id` has ended: the tasks to wake, parked in the lane
    /// whose turn it is now.
    fn end(&mut self, id: u64) -> Vec<Waker> {
        self.clock += 1;
        if let Some(lane) = self.lanes.get_mut(&id) {
            lane.running -= 1;
            lane.served = self.clock;
            if lane.waiting > 0 && self.waiting.len() > 1 {
                // Its other tasks wait from now: a lane waits no longer
                // than since its last turn ended, so the one that has
                // waited longest is never parked. (A lane waiting alone
                // keeps its older time: a lane that comes later waits
                // since after its turns ended, so the order holds.)
                self.waiting.remove(&(lane.since, id));
                lane.since = self.clock;
                self.waiting.insert((self.clock, id));
            } else if lane.waiting == 0 && lane.running == 0 {
                self.forget(id);
            }
        }
        self.release()
    }

    /// Forgets a lane with nothing waiting or running.
    fn forget(&mut self, id: u64) {
        if let Some(lane) = self.lanes.remove(&id) {
            self.parked -= lane.parked.len();
            for ticket in lane.parked {
                let _ = ticket.parked.compare_exchange(id, 0, Relaxed, Relaxed);
            }
        }
    }

    /// Wakes a parked task of the first waiting lane whose turn it is
    /// (that lane's every parked task if no other lane waits).
    fn release(&mut self) -> Vec<Waker> {
        let mut wake = Vec::new();
        if self.parked == 0 {
            return wake;
        }
        let mut order = self.waiting.iter();
        let Some(&(oldest, first)) = order.next() else {
            return wake;
        };
        let alone = self.waiting.len() == 1;
        // The oldest waiting lane's turn has come; another's has if its
        // last turn ended before the oldest began to wait.
        let due: Vec<u64> = std::iter::once(first)
            .chain(
                order
                    .take(16)
                    .map(|w| w.1)
                    .filter(|l| self.lanes.get(l).is_some_and(|s| s.served <= oldest)),
            )
            .collect();
        for id in due {
            let Some(lane) = self.lanes.get_mut(&id) else {
                continue;
            };
            while let Some(ticket) = lane.parked.pop_front() {
                self.parked -= 1;
                // An entry whose task has run since it was parked, or was
                // parked in another lane since, is stale.
                if ticket
                    .parked
                    .compare_exchange(id, 0, Relaxed, Relaxed)
                    .is_ok()
                    && ticket.woken.load(Relaxed) == id
                    && let Some(task) = &*ticket.task.lock()
                {
                    wake.push(task.clone());
                    if !alone {
                        break;
                    }
                }
            }
            if !wake.is_empty() {
                break;
            }
        }
        wake
    }

    /// `ticket`'s task is gone: it no longer waits.
    fn leave(&mut self, ticket: &Ticket) -> Vec<Waker> {
        ticket.gone.store(true, Relaxed);
        let id = ticket.woken.swap(0, Relaxed);
        if id == 0 {
            return Vec::new();
        }
        if let Some(lane) = self.lanes.get_mut(&id) {
            lane.waiting -= 1;
            if lane.waiting == 0 {
                self.waiting.remove(&(lane.since, id));
                if lane.running == 0 {
                    self.forget(id);
                }
            }
        }
        self.release()
    }
}

/// Takes `ticket`'s task out of the turns when it ends or is dropped.
struct Leave<'a>(&'a Ticket);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let wake = SCHED.lock().leave(self.0);
        wake.into_iter().for_each(Waker::wake);
    }
}

/// Runs `task` with its turns timed and taken in `lane`'s order.
///
/// Turns are fair per lane (a cache), not per task: while another lane
/// waits, a lane that has had a turn since that lane began to wait gets no
/// other until that lane has had one. A task that comes for a turn out of
/// order is parked (it returns at once, without running) and woken when
/// its lane's turn comes, from the end of another turn. So a cache with a
/// hundred busy connections delays another cache's request by about one of
/// its turns, not a hundred; a lone lane runs as without lanes.
///
/// The lanes' state is one lock for the process, taken at each wake-up and
/// at the start and end of each turn: 2–5 % of a pipeline-1 request's CPU
/// on this project's two cores (`loadtest/HISTORY.md`); with many reactor
/// threads it would want a lock per thread.
pub async fn in_turns<F: Future>(lane: Lane, task: F) -> F::Output {
    let ticket = &lane.0;
    let waker = Waker::from(ticket.clone());
    let _leave = Leave(ticket);
    // Its first turn waits in its lane as the next ones do: a burst of new
    // connections from one address takes that address's turns.
    SCHED.lock().woken(ticket);
    let mut task = std::pin::pin!(task);
    std::future::poll_fn(|cx| {
        {
            let mut own = ticket.task.lock();
            if !own.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *own = Some(cx.waker().clone());
            }
        }
        let Some(id) = SCHED.lock().start(ticket) else {
            return Poll::Pending;
        };
        SLICE_END.set(None);
        let done = task.as_mut().poll(&mut Context::from_waker(&waker));
        let wake = SCHED.lock().end(id);
        wake.into_iter().for_each(Waker::wake);
        done
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
        let long = tokio::spawn(in_turns(Lane::new(1), async move {
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
                        tokio::spawn(in_turns(Lane::new(1), async move {
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

    /// A lane with many ready tasks lets a task of another lane, woken
    /// behind them, run after about one of its turns, not after each of
    /// them (without lanes: after the 39 others).
    #[tokio::test(flavor = "current_thread")]
    async fn a_lane_of_many_tasks_takes_one_turn_before_another_lane() {
        const A: u64 = 0xA11;
        const B: u64 = 0xB11;
        let turns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (send, receive) = tokio::sync::oneshot::channel::<usize>();
        let counted = turns.clone();
        let b = tokio::spawn(in_turns(Lane::new(B), async move {
            let sent = receive.await.unwrap();
            counted.load(Ordering::Relaxed) - sent
        }));
        let mut send = Some(send);
        let mut tasks = Vec::new();
        for i in 0..40 {
            let turns = turns.clone();
            let mut send = if i == 0 { send.take() } else { None };
            tasks.push(tokio::spawn(in_turns(Lane::new(A), async move {
                for round in 0..20 {
                    let seen = turns.fetch_add(1, Ordering::Relaxed) + 1;
                    if round == 5
                        && let Some(send) = send.take()
                    {
                        send.send(seen).unwrap();
                    }
                    // Back of the run queue (a wake-up from its own poll).
                    end_of_round(1).await;
                }
            })));
        }
        let a_turns_first = b.await.unwrap();
        for task in tasks {
            task.await.unwrap();
        }
        assert!(
            a_turns_first <= 2,
            "lane A took {a_turns_first} turns before lane B's woken task ran"
        );
        let sched = SCHED.lock();
        assert!(!sched.lanes.contains_key(&A) && !sched.lanes.contains_key(&B));
    }

    /// Many tasks in a few lanes, on two threads, yielding, waking
    /// themselves, sleeping and changing lanes, all finish, and the lanes
    /// are forgotten once they have nothing waiting or running.
    #[test]
    fn lanes_never_leave_a_task_parked() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let lanes: Vec<u64> = (0..6).map(|i| 0x1a_0000 + i).collect();
        let ids = lanes.clone();
        runtime.block_on(async move {
            let mut tasks = Vec::new();
            for t in 0..120u64 {
                let lanes = lanes.clone();
                let lane = Lane::new(lanes[(t % 6) as usize]);
                let moved = lane.clone();
                tasks.push(tokio::spawn(in_turns(lane, async move {
                    for i in 0..300u64 {
                        match (t * 7 + i * 13) % 5 {
                            0 => tokio::task::yield_now().await,
                            1 => end_of_round(1).await,
                            2 => tokio::time::sleep(Duration::from_micros(30)).await,
                            3 => moved.set(lanes[((t + i) % 6) as usize]),
                            _ => {
                                let until = Instant::now() + SLICE / 5;
                                while Instant::now() < until {
                                    std::hint::spin_loop();
                                }
                            }
                        }
                    }
                })));
            }
            let all = async {
                for task in tasks {
                    task.await.unwrap();
                }
            };
            tokio::time::timeout(Duration::from_secs(120), all)
                .await
                .expect("every task finished");
        });
        let sched = SCHED.lock();
        for id in ids {
            assert!(!sched.lanes.contains_key(&id), "lane {id:x} forgotten");
        }
    }

    /// A waker that outlives its task (a timer's, a channel's) wakes it
    /// into no lane: otherwise its lane would seem to wait for ever, and
    /// every other lane would be parked behind it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_waker_outliving_its_task_counts_nowhere() {
        const X: u64 = 0x0dd;
        let kept = Arc::new(std::sync::Mutex::new(None::<Waker>));
        let keep = kept.clone();
        tokio::spawn(in_turns(Lane::new(X), async move {
            std::future::poll_fn(|cx| {
                *keep.lock().unwrap() = Some(cx.waker().clone());
                Poll::Ready(())
            })
            .await;
        }))
        .await
        .unwrap();
        kept.lock().unwrap().take().unwrap().wake();
        assert!(!SCHED.lock().lanes.contains_key(&X));
    }
}
