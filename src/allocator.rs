//! The process's memory allocator: blocks under [`LARGE`] bytes come from
//! glibc's malloc, blocks of [`LARGE`] bytes and more from mimalloc.
//!
//! Why two (measured, see `loadtest/HISTORY.md`, "The request path and the allocator"):
//! - glibc packs small blocks tightly (16-byte steps, an 8-byte header) and
//!   reuses a growing vector's old block for anything smaller: 1 M string
//!   keys of 100 B cost 188 B/key resident, under redis-server's 192.
//!   mimalloc for every block gave 202, and for every block from 1 KiB up
//!   207 (a slot's entry vector grows by a quarter at a time, and the
//!   blocks it leaves stay in their size class).
//! - glibc keeps freed blocks of 1 KiB and more in "large bins" sorted by
//!   size, and an allocation that needs one walks and sorts them: after
//!   1 GiB of 4 KiB values expired, single `malloc` calls ran for up to
//!   80 ms and writers waited 7 ms a request for minutes after. mimalloc
//!   keeps each size class in its own pages and frees in O(1).
//!
//! So values and buffers of 4 KiB and more (where the bytes are) live in
//! mimalloc; keys' entries, slots' vectors and small values in glibc. What
//! stays in glibc from 1 to 4 KiB (slots' entry vectors and deadline heaps)
//! still meets its large bins, but rarely: since deadlines hold no boxed
//! key, writers' p99 during that expiry is 0.4–1.4 ms.
//!
//! mimalloc hands freed pages back to the kernel (`madvise(MADV_DONTNEED)`)
//! in batches, a second after they were freed, on whichever thread frees
//! or allocates next: at the end of that expiry, a batch of ~150 MB took
//! 30–40 ms on a worker that was expiring keys under its partition's lock,
//! and readers and writers waited that long. [`spawn_purger`] starts a
//! thread that hands them back every [`PURGE_INTERVAL`] instead, so
//! batches are small and no request's thread ever gets one (a batch is due
//! only a second after its first free, long after the purger took it).
//! It runs at nice 19: on a saturated core it may fall a second behind,
//! and then mimalloc purges on the request threads again, as without it.
//!
//! mimalloc is built with its `no_thp` feature: it does not ask the kernel
//! for transparent huge pages (`madvise(MADV_HUGEPAGE)` on its arenas).
//! When it did, fresh 2 MiB were zeroed in one page fault on the request
//! path, and readers' p99 rose from 0.6 to 5 ms while a cache grew at
//! 128 MB/s.
//!
//! Invariant: a block is freed and resized by the allocator its size chose
//! (Rust passes the size it was allocated with to `dealloc` and `realloc`);
//! a `realloc` across [`LARGE`] moves the block from one to the other.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::time::Duration;

use mimalloc::MiMalloc;

/// Blocks this large and larger go to mimalloc: a page, the size of the
/// values whose expiry stalled glibc (at 1 KiB a string key cost 207 B
/// against 188, see the module doc).
pub const LARGE: usize = 4096;

/// How often the purger hands mimalloc's freed pages back to the kernel:
/// well under mimalloc's own delay (a second), so it always comes first,
/// and often enough that a batch stays small (at 150 MB/s freed, 7.5 MB,
/// about 2 ms of the kernel's time).
pub const PURGE_INTERVAL: Duration = Duration::from_millis(50);

/// The global allocator of `stratus` (see the module doc).
pub struct SplitAllocator;

/// Starts the thread that hands mimalloc's freed pages back to the kernel
/// (see the module doc). Call it once, when [`SplitAllocator`] is the
/// global allocator.
pub fn spawn_purger() -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("alloc-purge".into())
        .spawn(|| {
            // SAFETY: no arguments; sets up this thread's mimalloc heap,
            // without which `mi_collect` does nothing here (this thread
            // makes no large blocks of its own).
            unsafe { libmimalloc_sys::mi_thread_init() };
            // SAFETY: no pointers; on Linux `who = 0` is this thread alone.
            // Nice 19: on a busy core the workers come first, and the
            // pages wait for a gap.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
            loop {
                std::thread::sleep(PURGE_INTERVAL);
                // SAFETY: `mi_collect` takes no pointers and may be called
                // from any thread at any time. Forced, it purges every
                // freed range now, whatever its delay.
                unsafe { libmimalloc_sys::mi_collect(true) };
            }
        })?;
    Ok(())
}

fn is_large(size: usize) -> bool {
    size >= LARGE
}

// SAFETY: every call is forwarded to one of two sound allocators with the
// caller's own arguments; which one is a function of the block's size, which
// the caller must pass unchanged to `dealloc`/`realloc` (GlobalAlloc's
// contract), so a block always returns to the allocator that made it. A
// `realloc` that crosses `LARGE` allocates in the other allocator, copies
// the smaller of the two sizes and frees the old block in its own.
unsafe impl GlobalAlloc for SplitAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, forwarded (see the impl's note).
        unsafe {
            if is_large(layout.size()) {
                MiMalloc.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if is_large(layout.size()) {
                MiMalloc.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `layout` is the one `ptr` was allocated with, so its size
        // names the allocator that made it.
        unsafe {
            if is_large(layout.size()) {
                MiMalloc.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same-side resizes are forwarded; a crossing one allocates
        // `new_size` with the block's alignment (a valid layout: the caller
        // guarantees `new_size` rounded to it does not overflow), copies what
        // both blocks hold and frees the old block where it was made.
        unsafe {
            match (is_large(layout.size()), is_large(new_size)) {
                (true, true) => MiMalloc.realloc(ptr, layout, new_size),
                (false, false) => System.realloc(ptr, layout, new_size),
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks grown and shrunk across the boundary keep their bytes and
    /// are freed by the allocator that holds them (glibc aborts on a
    /// pointer it did not make).
    #[test]
    fn blocks_keep_their_bytes_across_the_boundary() {
        let a = SplitAllocator;
        for (from, to) in [
            (16, 4096),
            (LARGE - 1, LARGE),
            (8192, 64),
            (LARGE, LARGE - 1),
        ] {
            let layout = Layout::from_size_align(from, 8).unwrap();
            // SAFETY: valid non-zero layouts; each block is written within
            // its size and freed once with its current layout.
            unsafe {
                let p = a.alloc(layout);
                assert!(!p.is_null());
                for i in 0..from {
                    *p.add(i) = (i % 251) as u8;
                }
                let q = a.realloc(p, layout, to);
                assert!(!q.is_null());
                for i in 0..from.min(to) {
                    assert_eq!(*q.add(i), (i % 251) as u8, "byte {i} of {from} -> {to}");
                }
                a.dealloc(q, Layout::from_size_align(to, 8).unwrap());
            }
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_on_both_sides() {
        let a = SplitAllocator;
        for size in [64, LARGE, 1 << 20] {
            let layout = Layout::from_size_align(size, 16).unwrap();
            // SAFETY: a valid non-zero layout, read within its size, freed once.
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert!((0..size).all(|i| *p.add(i) == 0));
                a.dealloc(p, layout);
            }
        }
    }
}
