//! One shuffled epoch through [`BatchStream`], the path of the CLI and the Python iterators:
//! the next batches prepared by the stream's builders while this one is consumed, as Arrow
//! batches (zero-copy views) and as lines copied out (what `list[bytes]` does), with 0, 1
//! and 2 builder threads besides the consumer and with the default; beside the same epoch
//! on one thread, and on every core with no hand-over (each thread its own batches).
//!
//! Run: `cargo bench --bench read_ahead` (the corpus of `benches/core.rs`; `MMB_IO=copy`
//! for lines read into buffers of their own; `MMB_INDEX=file` to serve from the index file,
//! whose lines are checked to be cut at line boundaries as they are served as strings;
//! `MMB_ALLOC=system` for glibc's malloc instead of mimalloc, the binaries' allocator;
//! `MMB_BUILDERS=0,1` for some builder counts only, `MMB_VIEWS_ONLY=1` without the copies).

mod support;

use mmap_batcher::{BatchStream, Batcher, IndexCache, IoPolicy, Options, StreamOptions};
use support::{best_of, corpus, warm};

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

/// The allocator, chosen by `MMB_ALLOC` at the first allocation and never changed after
/// it, so that every block is freed by the allocator that made it.
struct Chosen;

/// 0 until chosen, then 1 for the system allocator, 2 for mimalloc.
static CHOICE: AtomicU8 = AtomicU8::new(0);

fn system() -> bool {
    let mut choice = CHOICE.load(Ordering::Relaxed);
    if choice == 0 {
        // SAFETY: `getenv` with a NUL-terminated name; the first allocation happens before
        // `main` starts any thread, so nothing changes the environment meanwhile.
        let value = unsafe { libc::getenv(c"MMB_ALLOC".as_ptr()) };
        // SAFETY: a non-null result of `getenv` is a NUL-terminated string.
        let is_system = !value.is_null() && unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes() == b"system";
        choice = if is_system { 1 } else { 2 };
        CHOICE.store(choice, Ordering::Relaxed);
    }
    choice == 1
}

// SAFETY: every call is passed on unchanged to one of two allocators, the same one for the
// whole run (`CHOICE` is set once, before any block exists).
unsafe impl GlobalAlloc for Chosen {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if system() {
            System.alloc(layout)
        } else {
            mimalloc::MiMalloc.alloc(layout)
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if system() {
            System.alloc_zeroed(layout)
        } else {
            mimalloc::MiMalloc.alloc_zeroed(layout)
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if system() {
            System.dealloc(ptr, layout)
        } else {
            mimalloc::MiMalloc.dealloc(ptr, layout)
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if system() {
            System.realloc(ptr, layout, new_size)
        } else {
            mimalloc::MiMalloc.realloc(ptr, layout, new_size)
        }
    }
}

#[global_allocator]
static ALLOCATOR: Chosen = Chosen;

fn main() {
    let path = corpus();
    warm(&path);
    let io = match std::env::var("MMB_IO").as_deref() {
        Ok("copy") => IoPolicy::Copy,
        _ => IoPolicy::Cached,
    };
    let index_cache = if std::env::var("MMB_INDEX").as_deref() == Ok("file") { IndexCache::Auto } else { IndexCache::Off };
    let opts = Options { batch_size: 1024, seed: Some(1), io, index_cache, ..Default::default() };
    let batcher = Batcher::open(&path, opts).unwrap();
    let columns = batcher.default_columns();
    let batches = batcher.epoch(0).unwrap().num_batches();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("allocator: {}", if system() { "the system's" } else { "mimalloc" });
    // The same epoch on this thread alone, batch after batch: the figure the builders scale.
    let (t_alone, alone) = best_of(5, || {
        let epoch = batcher.epoch(0).unwrap();
        epoch.batches().map(|b| b.to_record_batch_with(&columns).unwrap().num_rows()).sum::<usize>()
    });
    println!(
        "{alone} lines, io {io:?}, batch 1024, shuffled, one thread, no stream: Arrow batches {:.3} s = {:.1} M lines/s",
        t_alone.as_secs_f64(),
        alone as f64 / t_alone.as_secs_f64() / 1e6
    );
    // `MMB_BUILDERS=1,2` picks the builder counts; `MMB_VIEWS_ONLY=1` skips the copy-out runs
    // (for a profile of one setting).
    // The ceiling of the hand-over: every thread building its own share of the batches
    // (batch k on thread k mod cores), nothing handed over or put back in order.
    let (t_shared, shared) = best_of(5, || {
        let epoch = batcher.epoch(0).unwrap();
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..cores)
                .map(|t| {
                    let (epoch, columns) = (&epoch, &columns);
                    s.spawn(move || {
                        (t as u64..batches)
                            .step_by(cores)
                            .map(|b| epoch.batch(b).unwrap().to_record_batch_with(columns).unwrap().num_rows())
                            .sum::<usize>()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum::<usize>()
        })
    });
    assert_eq!(shared, alone);
    println!(
        "{shared} lines, {cores} threads each building every {cores}th batch, no hand-over: Arrow batches {:.3} s = {:.1} M lines/s",
        t_shared.as_secs_f64(),
        shared as f64 / t_shared.as_secs_f64() / 1e6
    );
    // Builder threads besides the consumer (`None`: the default for this machine).
    let mut counts: Vec<Option<usize>> = match std::env::var("MMB_BUILDERS") {
        Ok(list) => list.split(',').map(|n| n.trim().parse().ok()).collect(),
        Err(_) => vec![Some(0), Some(1), Some(2), Some(cores), None],
    };
    counts.dedup();
    let views_only = std::env::var("MMB_VIEWS_ONLY").is_ok();
    for builders in counts {
        let stream = || {
            let options = StreamOptions { builders, columns: Some(columns.as_slice().into()), ..Default::default() };
            BatchStream::with_options(&batcher, (0..batches).map(|b| (0, b)), options)
        };
        let (t_views, rows) = best_of(5, || stream().map(|r| r.unwrap().to_record_batch(&columns).unwrap().num_rows()).sum::<usize>());
        let (t_copied, copied) = if views_only {
            (std::time::Duration::from_secs(1), rows)
        } else {
            best_of(5, || {
                let mut out = Vec::new();
                stream()
                    .map(|r| {
                        let ready = r.unwrap();
                        out.clear();
                        ready.located.raw_lines().map(|l| out.extend_from_slice(l)).count()
                    })
                    .sum::<usize>()
            })
        };
        assert_eq!(rows, copied);
        let mlps = |t: std::time::Duration| rows as f64 / t.as_secs_f64() / 1e6;
        println!(
            "{} lines, io {io:?}, index {:?}, batch 1024, shuffled, through BatchStream with {} builder(s): \
             Arrow batches {:.3} s = {:.1} M lines/s   lines copied out {:.3} s = {:.1} M lines/s",
            rows,
            batcher.index_status(0),
            builders.map_or(format!("the default {cores} threads'"), |n| n.to_string()),
            t_views.as_secs_f64(),
            mlps(t_views),
            t_copied.as_secs_f64(),
            mlps(t_copied)
        );
    }
}
