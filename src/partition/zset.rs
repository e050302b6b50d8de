//! Sorted sets; the skip list is in [`skiplist`].

mod skiplist;

pub use skiplist::*;
