//! Heap-block counts for allocation tests that hold on a loaded machine.
//!
//! dhat counts the allocations of every thread of the process, and the
//! test harness's own threads allocate at moments of their own (its main
//! thread once while it waits for a result, a reporter now and then): on a
//! loaded machine such an allocation can land inside a count. A count that
//! is repeated and reduced to its least cannot be raised by one stray
//! allocation, and a per-call cost shows in every run, so the least of
//! [`RUNS`] counts is what the tests assert on.
//!
//! The test binary installs dhat's allocator and starts a testing profiler
//! itself:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: dhat::Alloc = dhat::Alloc;
//!
//! #[test]
//! fn nothing_allocates() {
//!     let _profiler = dhat::Profiler::builder().testing().build();
//!     let blocks = evenkeel_alloc_count::least(|| {
//!         let input = vec![1u8; 16]; // made outside the count
//!         evenkeel_alloc_count::blocks_while(|| drop(input))
//!     });
//!     assert_eq!(blocks, 0);
//! }
//! ```

/// How many times [`least`] repeats a count.
pub const RUNS: usize = 5;

/// Heap blocks allocated, by any thread, while `f` runs.
pub fn blocks_while(f: impl FnOnce()) -> u64 {
    let before = dhat::HeapStats::get().total_blocks;
    f();
    dhat::HeapStats::get().total_blocks - before
}

/// Heap bytes allocated, by any thread, while `f` runs.
pub fn bytes_while(f: impl FnOnce()) -> u64 {
    let before = dhat::HeapStats::get().total_bytes;
    f();
    dhat::HeapStats::get().total_bytes - before
}

/// The least of [`RUNS`] counts made by `count` (each run prepares its own
/// input, then counts with [`blocks_while`] or [`bytes_while`]).
pub fn least(mut count: impl FnMut() -> u64) -> u64 {
    (0..RUNS).map(|_| count()).min().unwrap_or(0)
}
