//! The keyspace's own memory per key, without a server around it: inserts
//! `--keys` strings of `--value-size` bytes into one `Keyspace` (all 16,384
//! slots, as an unsplit cache) and reports the heap bytes requested per key
//! (counted by this binary's allocator), allocations per key and resident
//! memory growth per key. Set beside `compare`'s memory rows (the same keys
//! through a server), it tells the keyspace's layout from what the server
//! process adds (connection buffers, malloc arenas and fragmentation).
//!
//! `cargo build --release -p stratus-loadtest && target/release/memprobe`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use clap::Parser;
use stratus::partition::{Keyspace, Value};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
}

/// The system allocator, counting live bytes and allocations.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are only bookkeeping beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Relaxed);
        LIVE_BLOCKS.fetch_add(1, Relaxed);
        // SAFETY: the caller's layout contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Resident bytes of this process.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm resident pages");
    pages * 4096
}

fn main() {
    let a = Args::parse();
    let value = vec![b'x'; a.value_size];
    let (bytes, blocks, resident) = (LIVE_BYTES.load(Relaxed), LIVE_BLOCKS.load(Relaxed), rss());
    let mut keyspace = Keyspace::new(0, 16383);
    for i in 0..a.keys {
        let key = format!("key:{i}");
        keyspace.insert(key.as_bytes(), Value::Str(value.clone()), 0, 1);
    }
    let per_key = |after: usize, before: usize| after.saturating_sub(before) as f64 / a.keys as f64;
    println!(
        "{} keys of {} B in one keyspace: {:.1} B/key requested, {:.2} allocations/key, {:.1} B/key resident",
        a.keys,
        a.value_size,
        per_key(LIVE_BYTES.load(Relaxed), bytes),
        per_key(LIVE_BLOCKS.load(Relaxed), blocks),
        per_key(rss(), resident),
    );
    std::hint::black_box(&keyspace);
}
