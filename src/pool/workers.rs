//! The worker pool: OS threads where work of unbounded cost runs, so the
//! async reactor threads only move bytes, parse, admit, route and run
//! bounded commands (DESIGN §12).
//!
//! What runs here: commands whose cost the request does not bound (Lua,
//! collection walks, KEYS and SCAN steps, FLUSHDB), and any command that
//! finds its partition held by such work (it waits here, not on a reactor).
//!
//! Invariants:
//! - a job may block (on a partition lock, on CPU), never a reactor thread;
//! - the threads run at the lowest CPU priority (`SCHED_IDLE`): a reactor
//!   thread that wakes with another tenant's GET preempts them at once, so
//!   one tenant's slow work shows up as its own latency, not as others';
//! - each cache has its own admission to the pool ([`crate::pool::CachePool`]
//!   holds a semaphore of [`per_cache_permits`]), so one cache's queued jobs
//!   never occupy every thread: another cache always finds one.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};

/// Threads when not configured: twice the CPUs this process may use, at
/// least 4 (so caches that each run a job still leave threads for others;
/// at nice 19 the extra threads cost the reactors nothing).
fn default_threads() -> usize {
    (2 * std::thread::available_parallelism().map_or(2, |n| n.get())).max(4)
}

/// A job: runs once on a worker thread.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The pool: a FIFO of jobs and the threads that take them.
pub struct Workers {
    queue: Mutex<VecDeque<Job>>,
    ready: Condvar,
    threads: usize,
    /// Jobs queued or running (for metrics and tests).
    pending: AtomicUsize,
}

/// Stack of a worker thread. Lua scripts run here, and what they call
/// recurses on this stack: the result's conversion and the `cjson` and
/// `cmsgpack` encoders and decoders go up to 1000 levels deep (Redis's
/// limit), which takes more than the default 2 MiB in debug builds. Only
/// the pages a thread touches are committed.
pub const WORKER_STACK_BYTES: usize = 16 * 1024 * 1024;

static WORKERS: OnceLock<&'static Workers> = OnceLock::new();
static CONFIGURED: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of worker threads; effective only before the first job.
pub fn configure(threads: usize) {
    CONFIGURED.store(threads, Ordering::Relaxed);
}

/// The process's worker pool, started on first use.
pub fn get() -> &'static Workers {
    WORKERS.get_or_init(|| {
        let n = match CONFIGURED.load(Ordering::Relaxed) {
            0 => default_threads(),
            n => n,
        };
        let w: &'static Workers = Box::leak(Box::new(Workers {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            threads: n,
            pending: AtomicUsize::new(0),
        }));
        for i in 0..n {
            let spawned = std::thread::Builder::new()
                .name(format!("stratus-worker-{i}"))
                .stack_size(WORKER_STACK_BYTES)
                .spawn(move || w.work());
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a worker thread");
            }
        }
        w
    })
}

/// How many jobs one cache may have queued or running at once: half the
/// threads (at least one), so other caches always find a free thread.
pub fn per_cache_permits() -> usize {
    (get().threads / 2).max(1)
}

impl Workers {
    /// Runs `f` on a worker thread and returns its result. If the pool
    /// cannot take it (its threads are gone), `f` is dropped and the
    /// returned future yields `None`.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.queue.lock().push_back(Box::new(move || {
            let _ = tx.send(f());
        }));
        self.ready.notify_one();
        rx.await.ok()
    }

    /// Jobs queued or running.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    fn work(&self) {
        lower_thread_priority();
        loop {
            let job = {
                let mut q = self.queue.lock();
                loop {
                    if let Some(job) = q.pop_front() {
                        break job;
                    }
                    self.ready.wait(&mut q);
                }
            };
            // A panicking job must not take the thread with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The lowest CPU priority for the calling thread (Linux keeps it per
/// thread): `SCHED_IDLE`, which any normal thread preempts at once, falling
/// back to nice 19; failure only leaves it at normal priority. (Public for
/// load generators that must not disturb the client they run beside.)
pub fn lower_thread_priority() {
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    use thread_priority::{ThreadPriority, set_current_thread_priority};
    let idle = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    );
    if idle.is_err()
        && let Err(e) = set_current_thread_priority(ThreadPriority::Min)
    {
        tracing::debug!(error = ?e, "worker thread keeps its priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_off_the_calling_thread_and_return() {
        let here = std::thread::current().id();
        let (there, v) = get()
            .run(|| (std::thread::current().id(), 6 * 7))
            .await
            .expect("ran");
        assert_eq!(v, 42);
        assert_ne!(here, there);
    }

    #[tokio::test]
    async fn a_panicking_job_leaves_the_pool_working() {
        assert!(get().run(|| panic!("boom")).await.is_none());
        assert_eq!(get().run(|| 1).await, Some(1));
    }

    #[test]
    fn worker_threads_run_at_idle_priority() {
        let policy = std::thread::spawn(|| {
            lower_thread_priority();
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
            // Field 41 (the 39th after the parenthesised name) is the policy.
            let after = stat.rsplit(')').next().unwrap_or("");
            after
                .split_whitespace()
                .nth(38)
                .and_then(|n| n.parse::<i32>().ok())
        })
        .join()
        .expect("thread");
        // SCHED_IDLE is policy 5.
        assert_eq!(policy, Some(5));
    }
}
