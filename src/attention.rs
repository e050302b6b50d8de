//! [`Attention`]: what a connection waiting for its socket must also
//! notice — CLIENT KILL, its user's disconnection, the server's shutdown —
//! as one word of flags and one waker, polled without a lock.
//!
//! A connection waits once per request (pipeline 1). Cancellation tokens
//! and `Notify` take a mutex to create, poll and drop each wait; three of
//! them were about 7% of a pipeline-1 request's CPU. Here a raise is a
//! `fetch_or` and a wake, a wait is a load: the waker is registered at the
//! first wait only. The one waiter is the connection's own task, and a
//! tokio task's wakers all wake that task, so the first registration
//! serves every later wait until the raise takes it — and a raise is
//! final. (Registered per wait, two atomic read-modify-writes on a line
//! gone cold since the connection's last request: 1.6% of the server's
//! user time in a pipeline-1 GET profile, `perf record`. The mailbox's
//! wait, in `pubsub`, still registers per wait: a delivery takes its
//! waker and is not final.)
//!
//! A [`Roster`] holds the attentions a raise goes to as a group: every
//! connection of the server (shutdown), every connection logged in as a
//! user (its disconnection). Members are weak: a connection that ends
//! without leaving is dropped from it at the next raise.
//!
//! Invariant: a flag once raised stays raised (the connection ends).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;

use atomic_waker::AtomicWaker;
use parking_lot::Mutex;

/// CLIENT KILL (or the cache's deletion) ended the connection.
pub const KILLED: u8 = 1;
/// The connection's user was disconnected (deleted, passwords changed).
pub const REVOKED: u8 = 2;
/// The server is shutting down.
pub const SHUTDOWN: u8 = 4;

/// One connection's flags and waker (see the module doc).
#[derive(Default)]
pub struct Attention {
    raised: AtomicU8,
    /// The waiter's waker is registered (only the waiter touches this).
    armed: AtomicBool,
    waker: AtomicWaker,
}

impl Attention {
    /// Raises `flag` and wakes the connection's wait.
    pub fn raise(&self, flag: u8) {
        self.raised.fetch_or(flag, Ordering::AcqRel);
        self.waker.wake();
    }

    /// The flags raised so far (0 = none).
    pub fn raised(&self) -> u8 {
        self.raised.load(Ordering::Acquire)
    }

    /// Resolves with the raised flags once any is raised. One waiter, for
    /// the attention's whole life: the connection's own task (its first
    /// wait registers the waker every later one relies on).
    pub fn wait(&self) -> impl Future<Output = u8> + '_ {
        std::future::poll_fn(|cx| {
            let now = self.raised();
            if now != 0 {
                return Poll::Ready(now);
            }
            if self.armed.load(Ordering::Relaxed) {
                return Poll::Pending;
            }
            self.armed.store(true, Ordering::Relaxed);
            self.waker.register(cx.waker());
            match self.raised() {
                0 => Poll::Pending,
                now => Poll::Ready(now),
            }
        })
    }
}

/// Attentions raised as a group (see the module doc), by member id.
#[derive(Default)]
pub struct Roster {
    members: Mutex<HashMap<u64, Weak<Attention>>>,
}

impl Roster {
    pub fn join(&self, id: u64, attention: &Arc<Attention>) {
        self.members.lock().insert(id, Arc::downgrade(attention));
    }

    pub fn leave(&self, id: u64) {
        self.members.lock().remove(&id);
    }

    /// Joins for as long as the returned guard lives.
    pub fn member(&self, id: u64, attention: &Arc<Attention>) -> Membership<'_> {
        self.join(id, attention);
        Membership { roster: self, id }
    }

    /// Raises `flag` on every member, which stay members.
    pub fn raise_all(&self, flag: u8) {
        let mut members = self.members.lock();
        members.retain(|_, m| match m.upgrade() {
            Some(a) => {
                a.raise(flag);
                true
            }
            None => false,
        });
    }

    /// Raises `flag` on every member and empties the roster.
    pub fn raise_and_clear(&self, flag: u8) {
        let members = std::mem::take(&mut *self.members.lock());
        for a in members.values().filter_map(Weak::upgrade) {
            a.raise(flag);
        }
    }

    pub fn len(&self) -> usize {
        self.members.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A roster place, left when dropped.
pub struct Membership<'a> {
    roster: &'a Roster,
    id: u64,
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        self.roster.leave(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_raise_wakes_the_wait_and_stays() {
        let a = Arc::new(Attention::default());
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.wait().await })
        };
        tokio::task::yield_now().await;
        a.raise(KILLED);
        assert_eq!(waiter.await.expect("waiter"), KILLED);
        a.raise(SHUTDOWN);
        assert_eq!(a.wait().await, KILLED | SHUTDOWN);
    }

    /// A connection's loop makes a new wait on each turn and drops it when
    /// something else woke it: the raise still reaches the task through
    /// the registration its first wait made.
    #[tokio::test]
    async fn a_raise_reaches_a_loop_that_waited_many_times() {
        let a = Arc::new(Attention::default());
        let other = Arc::new(tokio::sync::Notify::new());
        let turns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let waiter = {
            let (a, other, turns) = (a.clone(), other.clone(), turns.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        biased;
                        raised = a.wait() => return raised,
                        () = other.notified() => {
                            turns.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        };
        for n in 1..=3 {
            while turns.load(Ordering::Relaxed) < n {
                other.notify_one();
                tokio::task::yield_now().await;
            }
        }
        a.raise(REVOKED);
        let raised = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("the raise woke the waiting loop")
            .expect("waiter");
        assert_eq!(raised, REVOKED);
    }

    #[test]
    fn a_roster_raises_its_live_members() {
        let roster = Roster::default();
        let (a, b) = (
            Arc::new(Attention::default()),
            Arc::new(Attention::default()),
        );
        roster.join(1, &a);
        roster.join(2, &b);
        {
            let gone = Arc::new(Attention::default());
            roster.join(3, &gone);
        }
        roster.leave(2);
        roster.raise_all(SHUTDOWN);
        assert_eq!((a.raised(), b.raised()), (SHUTDOWN, 0));
        assert_eq!(roster.len(), 1, "the dropped member went at the raise");
        roster.raise_and_clear(REVOKED);
        assert_eq!(a.raised(), SHUTDOWN | REVOKED);
        assert!(roster.is_empty());
    }
}
