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
//! Blocks of [`MAPPED`] bytes and more (big values, a big request's read
//! buffer) are mappings of their own, as glibc's malloc makes its big
//! blocks, so that growing one moves page tables instead of bytes
//! (`mremap`). A 512 MB upload's read buffer grows by a quarter at a time
//! (its size is what has arrived, never a header's promise): in mimalloc
//! every step allocated a bigger block and copied the upload into it, four
//! copies of it in all, and every page of every copy was a fresh page and
//! a page fault, on the connection's reactor (a full-speed 500 MiB SET:
//! 1.55–1.79 s of server CPU, 0.64–1.13 s remapped;
//! `loadtest/big-set.py`). A mapping starts on a 2 MiB boundary
//! and is moved to one, so the kernel moves whole page-table pages: 400 MB
//! moved in 0.1–0.4 ms where page by page took 2–3 ms. Mappings ask for no
//! transparent huge pages, as mimalloc (`no_thp`, above).
//!
//! Invariant: a block is freed and resized by the allocator its size (and,
//! for [`MAPPED`], its alignment) chose (Rust passes the layout it was
//! allocated with to `dealloc` and `realloc`) — for a big block, mimalloc
//! or its own mapping, told apart by its address (past [`MAX_MAPPINGS`]
//! big blocks are mimalloc's); a `realloc` from one side to another
//! allocates on the new side, copies and frees on the old.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mimalloc::MiMalloc;

/// Blocks this large and larger go to mimalloc: a page, the size of the
/// values whose expiry stalled glibc (at 1 KiB a string key cost 207 B
/// against 188, see the module doc).
pub const LARGE: usize = 4096;

/// Blocks this large and larger (aligned to at most a page) are mappings
/// of their own (see the module doc): a syscall to make and free one is
/// small next to writing a MiB, and a value this big is freed off the
/// request path (`partition::lazyfree`).
pub const MAPPED: usize = 1024 * 1024;

/// Most blocks mapped at once. Each is one of the kernel's
/// `vm.max_map_count` areas (65,530 by default), and a process past that
/// limit cannot map anything (a thread's stack, mimalloc's next arena): so
/// past this many, or when `mmap` refuses, a big block comes from mimalloc,
/// which packs them into its own few mappings (and copies when one grows).
/// Which of the two holds a big block is told by its address
/// (`mi_is_in_heap_region`).
pub const MAX_MAPPINGS: usize = 16 * 1024;

/// Blocks mapped now.
static MAPPINGS: AtomicUsize = AtomicUsize::new(0);

/// The boundary mappings start on: the span of one page-table page, which
/// `mremap` moves whole when source and destination both start on it.
const MAP_ALIGN: usize = 2 * 1024 * 1024;
const PAGE: usize = 4096;
/// A mapping is unmapped this much at a time, from its end: unmapping
/// holds the process's address-space lock, which another thread's `mmap`
/// or `mremap` waits for (≈ 40 µs per MiB here, so about 0.2 ms a piece,
/// where a 512 MB value at once held it for ~30 ms).
const UNMAP_PIECE: usize = 4 * 1024 * 1024;

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

/// Which allocator holds a block of this layout.
#[derive(Clone, Copy)]
enum Side {
    Glibc,
    Mimalloc,
    Mapped,
}

fn side(size: usize, align: usize) -> Side {
    if size >= MAPPED && align <= PAGE {
        Side::Mapped
    } else if size >= LARGE {
        Side::Mimalloc
    } else {
        Side::Glibc
    }
}

/// Whether `ptr` may be the start of a block of [`MAPPED`] bytes or more
/// (mappings start on a [`MAP_ALIGN`] boundary): a caller about to resize a
/// buffer in place learns that nothing was cut from its front, so that
/// handing it to `realloc` moves no byte (a `BytesMut` that has been cut
/// moves what it holds to the front first).
pub fn starts_mapping(ptr: *const u8) -> bool {
    (ptr as usize).is_multiple_of(MAP_ALIGN) && !in_mimalloc(ptr)
}

/// Whether a big block (of a [`Side::Mapped`] layout) is mimalloc's, not a
/// mapping of its own (see [`MAX_MAPPINGS`]).
fn in_mimalloc(ptr: *const u8) -> bool {
    // SAFETY: reads mimalloc's region map for an address; any pointer will do.
    unsafe { libmimalloc_sys::mi_is_in_heap_region(ptr.cast()) }
}

/// A block of a [`Side::Mapped`] layout: a mapping of its own while there
/// are fewer than [`MAX_MAPPINGS`] and the kernel agrees, else mimalloc's.
///
/// # Safety
/// As `GlobalAlloc::alloc` (a non-zero size).
unsafe fn alloc_big(layout: Layout, zeroed: bool) -> *mut u8 {
    if MAPPINGS.fetch_add(1, Ordering::Relaxed) < MAX_MAPPINGS {
        let p = map_aligned(map_len(layout.size()), false);
        if !p.is_null() {
            return p;
        }
    }
    MAPPINGS.fetch_sub(1, Ordering::Relaxed);
    // SAFETY: the caller's layout, forwarded.
    unsafe {
        if zeroed {
            MiMalloc.alloc_zeroed(layout)
        } else {
            MiMalloc.alloc(layout)
        }
    }
}

/// Frees a block of a [`Side::Mapped`] layout where it was made.
///
/// # Safety
/// As `GlobalAlloc::dealloc`.
unsafe fn free_big(ptr: *mut u8, layout: Layout) {
    // SAFETY: a mimalloc block goes back to mimalloc with its layout; else
    // `ptr` is a mapping of `map_len(size)` bytes made by `alloc_big`.
    unsafe {
        if in_mimalloc(ptr) {
            MiMalloc.dealloc(ptr, layout);
        } else {
            unmap(ptr, map_len(layout.size()));
            MAPPINGS.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A mapping's length for a block of `size` bytes: whole pages.
fn map_len(size: usize) -> usize {
    size.next_multiple_of(PAGE)
}

/// Maps `len` bytes (whole pages), read-write or (`reserve_only`) with no
/// access, starting on a [`MAP_ALIGN`] boundary; null if the kernel
/// refuses.
fn map_aligned(len: usize, reserve_only: bool) -> *mut u8 {
    let prot = if reserve_only {
        libc::PROT_NONE
    } else {
        libc::PROT_READ | libc::PROT_WRITE
    };
    let Some(span) = len.checked_add(MAP_ALIGN) else {
        return std::ptr::null_mut();
    };
    // SAFETY: a fresh anonymous mapping; the parts before the boundary and
    // after `len` are unmapped again and were never handed out.
    unsafe {
        let raw = libc::mmap(
            std::ptr::null_mut(),
            span,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if raw == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let raw = raw as usize;
        let start = raw.next_multiple_of(MAP_ALIGN);
        if start > raw {
            libc::munmap(raw as *mut libc::c_void, start - raw);
        }
        let end = start + len;
        if raw + span > end {
            libc::munmap(end as *mut libc::c_void, raw + span - end);
        }
        if !reserve_only {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_NOHUGEPAGE);
        }
        start as *mut u8
    }
}

/// Unmaps a mapping of `len` bytes (whole pages) in pieces of at most
/// [`UNMAP_PIECE`], last piece first.
///
/// # Safety
/// `ptr` must be a mapping of `len` bytes made by [`map_aligned`] and not
/// used after.
unsafe fn unmap(ptr: *mut u8, len: usize) {
    let mut left = len;
    while left > 0 {
        let piece = left.min(UNMAP_PIECE);
        left -= piece;
        // SAFETY: the last `piece` bytes of what is still mapped of the
        // caller's mapping.
        unsafe { libc::munmap(ptr.add(left) as *mut libc::c_void, piece) };
    }
}

/// Resizes a mapping from `old` to `new` bytes: in place when the address
/// space after it is free or it shrinks, else its pages move to a fresh
/// [`MAP_ALIGN`] boundary (no byte is copied); null if the kernel refuses
/// (the old mapping is then untouched).
///
/// # Safety
/// `ptr` must be a mapping of `map_len(old)` bytes made by [`map_aligned`].
unsafe fn remap(ptr: *mut u8, old: usize, new: usize) -> *mut u8 {
    let (old, new) = (map_len(old), map_len(new));
    if old == new {
        return ptr;
    }
    // SAFETY: `ptr` is a mapping of `old` bytes (the caller's promise); the
    // destination is a reservation of `new` bytes this call just made,
    // which `MREMAP_FIXED` replaces (or which is unmapped on failure).
    unsafe {
        let in_place = libc::mremap(ptr as *mut libc::c_void, old, new, 0);
        if in_place != libc::MAP_FAILED {
            return ptr;
        }
        let dest = map_aligned(new, true);
        if dest.is_null() {
            return dest;
        }
        let moved = libc::mremap(
            ptr as *mut libc::c_void,
            old,
            new,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            dest as *mut libc::c_void,
        );
        if moved == libc::MAP_FAILED {
            libc::munmap(dest as *mut libc::c_void, new);
            return std::ptr::null_mut();
        }
        moved as *mut u8
    }
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
            match side(layout.size(), layout.align()) {
                Side::Mapped => alloc_big(layout, false),
                Side::Mimalloc => MiMalloc.alloc(layout),
                Side::Glibc => System.alloc(layout),
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`; a fresh mapping reads as zeros.
        unsafe {
            match side(layout.size(), layout.align()) {
                Side::Mapped => alloc_big(layout, true),
                Side::Mimalloc => MiMalloc.alloc_zeroed(layout),
                Side::Glibc => System.alloc_zeroed(layout),
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `layout` is the one `ptr` was allocated with, so it names
        // the allocator that made it (and a mapping's length).
        unsafe {
            match side(layout.size(), layout.align()) {
                Side::Mapped => free_big(ptr, layout),
                Side::Mimalloc => MiMalloc.dealloc(ptr, layout),
                Side::Glibc => System.dealloc(ptr, layout),
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same-side resizes are forwarded (a big block to whichever
        // of mimalloc and its own mapping holds it); otherwise it allocates
        // `new_size` with the block's alignment (a valid layout: the caller
        // guarantees `new_size` rounded to it does not overflow), copies what
        // both blocks hold and frees the old block where it was made.
        unsafe {
            let align = layout.align();
            match (side(layout.size(), align), side(new_size, align)) {
                (Side::Mapped, Side::Mapped) if in_mimalloc(ptr) => {
                    return MiMalloc.realloc(ptr, layout, new_size);
                }
                (Side::Mapped, Side::Mapped) => {
                    let moved = remap(ptr, layout.size(), new_size);
                    if !moved.is_null() {
                        return moved;
                    }
                    // The kernel would not resize it: copied below.
                }
                (Side::Mimalloc, Side::Mimalloc) => return MiMalloc.realloc(ptr, layout, new_size),
                (Side::Glibc, Side::Glibc) => return System.realloc(ptr, layout, new_size),
                _ => {}
            }
            let new_layout = Layout::from_size_align_unchecked(new_size, align);
            let moved = self.alloc(new_layout);
            if !moved.is_null() {
                std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            moved
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
            (LARGE, MAPPED),
            (MAPPED - 1, MAPPED + 1),
            (MAPPED, 64),
            (MAPPED, 3 * MAPPED + 5),
            (8 * MAPPED, MAPPED + 7),
            (MAPPED + 1, MAPPED + 2),
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

    /// A mapped block grown a quarter at a time, with other mappings made
    /// between its steps (so that it cannot always grow in place), keeps
    /// its bytes and always starts on a page-table boundary.
    #[test]
    fn mapped_blocks_grow_in_place_or_by_moving_pages() {
        let a = SplitAllocator;
        let mut size = MAPPED;
        let mut others = Vec::new();
        // SAFETY: valid non-zero layouts; every block is written and read
        // within its size and freed once with its current layout.
        unsafe {
            let mut p = a.alloc(Layout::from_size_align(size, 1).unwrap());
            for i in 0..size {
                *p.add(i) = (i % 253) as u8;
            }
            for _ in 0..12 {
                assert_eq!(p as usize % MAP_ALIGN, 0);
                let other = Layout::from_size_align(MAPPED, 8).unwrap();
                others.push(a.alloc(other));
                let grown = size + size / 4;
                p = a.realloc(p, Layout::from_size_align(size, 1).unwrap(), grown);
                assert!(!p.is_null());
                for i in (0..size).step_by(4093) {
                    assert_eq!(*p.add(i), (i % 253) as u8, "byte {i} of {size} -> {grown}");
                }
                for i in size..grown {
                    *p.add(i) = (i % 253) as u8;
                }
                size = grown;
            }
            a.dealloc(p, Layout::from_size_align(size, 1).unwrap());
            for o in others {
                a.dealloc(o, Layout::from_size_align(MAPPED, 8).unwrap());
            }
        }
    }

    /// Past [`MAX_MAPPINGS`] live mappings a big block comes from mimalloc,
    /// and each block is freed and grown by the allocator that holds it.
    /// (Other tests of this module may hold a few mappings meanwhile.)
    #[test]
    fn past_the_mapping_cap_big_blocks_come_from_mimalloc() {
        let a = SplitAllocator;
        let big = Layout::from_size_align(MAPPED, 8).unwrap();
        // SAFETY: valid non-zero layouts; every block is written within its
        // size and freed once with its current layout.
        unsafe {
            let mut mapped = Vec::new();
            let extra = loop {
                let p = a.alloc(big);
                assert!(!p.is_null());
                if in_mimalloc(p) {
                    break p;
                }
                mapped.push(p);
                assert!(mapped.len() <= MAX_MAPPINGS, "more mappings than the cap");
            };
            assert!(
                mapped.len() + 64 >= MAX_MAPPINGS,
                "mimalloc's before the cap"
            );
            assert!(!starts_mapping(extra));
            *extra.add(MAPPED - 1) = 7;
            let grown = a.realloc(extra, big, 2 * MAPPED);
            assert!(in_mimalloc(grown));
            assert_eq!(*grown.add(MAPPED - 1), 7);
            // A mapping freed makes room for the next one.
            a.dealloc(mapped[0], big);
            let again = a.alloc(big);
            assert!(!in_mimalloc(again));
            a.dealloc(again, big);
            a.dealloc(grown, Layout::from_size_align(2 * MAPPED, 8).unwrap());
            for p in &mapped[1..] {
                a.dealloc(*p, big);
            }
        }
        assert!(MAPPINGS.load(Ordering::Relaxed) < 64);
    }

    #[test]
    fn zeroed_blocks_are_zero_on_both_sides() {
        let a = SplitAllocator;
        for size in [64, LARGE, MAPPED, 3 * MAPPED + 1] {
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
