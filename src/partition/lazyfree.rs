//! Lazy free: values whose destructor is expensive are dropped on one
//! background thread, never on the request path under a partition lock
//! (Redis's lazyfree; DESIGN §12).
//!
//! It owns the "free" half of a removal only. The keyspace still removes the
//! entry and adjusts its byte accounting at once, under the lock, exactly as
//! before: `used_bytes` never counts garbage, and this module never touches
//! a keyspace. What moves is the destructor:
//!
//! 1. **Weigh**: the caller gives what it drops with its rough free effort
//!    (elements ≈ allocations, and bytes). Below both thresholds
//!    ([`LAZYFREE_ELEMENTS`], [`LAZYFREE_BYTES`]) it is dropped inline: the
//!    hand-off would cost more than the free.
//! 2. **Hand off**: otherwise it goes, boxed, into a bounded queue to the
//!    `stratus-lazyfree` thread (started on first use).
//! 3. **Drop**: the thread drops it, then counts it in
//!    [`freed_in_background`].
//!
//! Saturation: at most [`QUEUE_ITEMS`] items and [`QUEUE_BYTES`] bytes wait
//! (an item of any size is accepted into an empty queue). Beyond that, or if
//! the thread cannot be started, the item is dropped inline: the cost then
//! falls on the command that freed it (its own partition's lock, which only
//! its own cache uses), and the memory waiting to be freed stays bounded.
//!
//! Measured on this machine (glibc malloc, release build): a set of 64
//! members drops in ~1 µs, 10 k members in ~150 µs, 1 M in ~13 ms (≈15 ns
//! per member); a string below malloc's mmap threshold drops in < 1 µs at
//! any size, above it (128 KiB and up, first time) ≈ 40 µs per MiB
//! (munmap of 512 MiB ≈ 30 ms).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use super::value::Value;

/// Collections with more elements than this are freed in the background
/// (Redis's `LAZYFREE_THRESHOLD`: ~1 µs of frees here).
pub const LAZYFREE_ELEMENTS: usize = 64;
/// Values charged more bytes than this are freed in the background: a
/// string this large may be one munmap away (malloc's mmap threshold starts
/// at 128 KiB), which costs tens of µs per MiB.
pub const LAZYFREE_BYTES: usize = 64 * 1024;
/// Most items waiting for the background thread.
pub const QUEUE_ITEMS: usize = 1024;
/// Most bytes waiting for the background thread (memory already taken out of
/// `used_bytes` but not yet returned): bounds the overshoot and, since every
/// element is charged at least its overhead, the backlog's drop time too.
pub const QUEUE_BYTES: usize = 256 * 1024 * 1024;

/// Values the background thread has dropped since start.
static FREED: AtomicU64 = AtomicU64::new(0);
/// Bytes handed off and not yet dropped.
static PENDING_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Anything sendable, type-erased: dropping the box runs its destructor.
struct Garbage {
    item: Box<dyn Send>,
    bytes: usize,
}

/// Values dropped by the background thread since start (tests read it).
pub fn freed_in_background() -> u64 {
    FREED.load(Ordering::Relaxed)
}

/// Bytes handed to the background thread and not yet dropped.
pub fn pending_bytes() -> usize {
    PENDING_BYTES.load(Ordering::Relaxed)
}

/// The queue to the background thread, started on first use (`None` if the
/// thread could not be started: everything is then dropped inline).
fn queue() -> Option<&'static SyncSender<Garbage>> {
    static QUEUE: OnceLock<Option<SyncSender<Garbage>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = sync_channel::<Garbage>(QUEUE_ITEMS);
            std::thread::Builder::new()
                .name("stratus-lazyfree".into())
                .spawn(move || {
                    // Nice 19: a request's thread that wakes while this
                    // one unmaps hundreds of MB runs first (it used to take
                    // the priority of whichever thread started it).
                    let nice = thread_priority::ThreadPriority::Min;
                    if let Err(e) = thread_priority::set_current_thread_priority(nice) {
                        tracing::debug!(error = ?e, "lazy free thread keeps its priority");
                    }
                    for g in rx {
                        let bytes = g.bytes;
                        drop(g.item);
                        PENDING_BYTES.fetch_sub(bytes, Ordering::Relaxed);
                        FREED.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .map_err(|e| tracing::warn!("lazy free thread not started, freeing inline: {e}"))
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

/// Phase 1: whether freeing something of `elements` allocations and `bytes`
/// bytes is worth a hand-off.
pub fn is_expensive(elements: usize, bytes: usize) -> bool {
    elements > LAZYFREE_ELEMENTS || bytes > LAZYFREE_BYTES
}

/// Frees `item`, whose free effort is `elements` allocations and `bytes`
/// bytes: in the background if that is expensive and the queue has room,
/// else here.
pub fn free<T: Send + 'static>(item: T, elements: usize, bytes: usize) {
    if is_expensive(elements, bytes) {
        defer(item, bytes);
    } else {
        drop(item);
    }
}

/// Frees a value removed from a keyspace (see [`free`]).
pub fn free_value(value: Value) {
    let (elements, bytes) = free_effort(&value);
    free(value, elements, bytes);
}

/// A value's free effort: its elements (allocations) and charged bytes.
pub fn free_effort(value: &Value) -> (usize, usize) {
    let elements = match value {
        Value::Str(_) => 1,
        Value::Hash(h) => h.len(),
        Value::List(l) => l.len(),
        Value::Set(s) => s.len(),
        Value::ZSet(z) => z.len(),
        Value::Stream(s) => s.log().len() + s.groups().len(),
    };
    (elements, value.mem_bytes())
}

/// Phase 2: hands `item` to the background thread, or drops it here if the
/// queue is full (by items or bytes) or the thread is missing.
fn defer<T: Send + 'static>(item: T, bytes: usize) {
    let Some(tx) = queue() else {
        return;
    };
    let admitted = PENDING_BYTES.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |pending| {
        (pending == 0 || pending.saturating_add(bytes) <= QUEUE_BYTES).then(|| pending + bytes)
    });
    if admitted.is_err() {
        return;
    }
    let garbage = Garbage {
        item: Box::new(item),
        bytes,
    };
    match tx.try_send(garbage) {
        Ok(()) => {
            #[cfg(test)]
            tests::DEFERRED.with(|d| d.set(d.get() + 1));
        }
        Err(TrySendError::Full(g) | TrySendError::Disconnected(g)) => {
            PENDING_BYTES.fetch_sub(bytes, Ordering::Relaxed);
            drop(g);
        }
    }
}

/// Waits until everything handed off before this call has been dropped
/// (FIFO queue, one consumer): for tests, and for the calibration, which
/// times a DEL with the background free it causes.
pub fn sync() {
    struct Marker(std::sync::mpsc::Sender<()>);
    impl Drop for Marker {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let Some(q) = queue() else {
        return;
    };
    let marker = Garbage {
        item: Box::new(Marker(tx)),
        bytes: 0,
    };
    if q.send(marker).is_ok() {
        let _ = rx.recv_timeout(std::time::Duration::from_secs(10));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::mpsc;
    use std::thread::ThreadId;

    thread_local! {
        /// Items this thread handed to the background thread.
        pub(crate) static DEFERRED: Cell<u64> = const { Cell::new(0) };
    }

    /// Items the calling thread has handed off so far.
    pub(crate) fn deferred_here() -> u64 {
        DEFERRED.with(Cell::get)
    }

    /// Reports the thread its destructor ran on.
    struct Witness(mpsc::Sender<ThreadId>);

    impl Drop for Witness {
        fn drop(&mut self) {
            let _ = self.0.send(std::thread::current().id());
        }
    }

    #[test]
    fn expensive_items_drop_on_the_background_thread() {
        let (tx, rx) = mpsc::channel();
        let before = freed_in_background();
        free(Witness(tx), LAZYFREE_ELEMENTS + 1, 0);
        let ran_on = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("dropped");
        assert_ne!(ran_on, std::thread::current().id());
        sync();
        assert!(freed_in_background() > before);
    }

    #[test]
    fn cheap_items_drop_inline() {
        let (tx, rx) = mpsc::channel();
        let before = deferred_here();
        free(Witness(tx), LAZYFREE_ELEMENTS, LAZYFREE_BYTES);
        assert_eq!(rx.try_recv(), Ok(std::thread::current().id()));
        assert_eq!(deferred_here(), before);
    }

    #[test]
    fn big_values_are_handed_off() {
        let before = deferred_here();
        free_value(Value::Str(vec![0; LAZYFREE_BYTES + 1]));
        let mut set = crate::partition::SetValue::default();
        for i in 0..=LAZYFREE_ELEMENTS {
            set.insert(format!("m{i}").as_bytes());
        }
        free_value(Value::Set(Box::new(set)));
        assert_eq!(deferred_here(), before + 2);
        free_value(Value::Str(vec![0; 100]));
        assert_eq!(deferred_here(), before + 2);
    }
}
