//! One shuffled epoch through [`BatchStream`], the path of the CLI and the Python iterators:
//! the next batches prepared by the stream's builders while this one is consumed, as Arrow
//! batches (zero-copy views) and as lines copied out (what `list[bytes]` does), with one
//! builder and with one per core.
//!
//! Run: `cargo bench --bench read_ahead` (the corpus of `benches/core.rs`; `MMB_IO=copy`
//! for lines read into buffers of their own; `MMB_INDEX=file` to serve from the index file,
//! whose lines are checked to be cut at line boundaries as they are served as strings).

mod support;

use mmap_batcher::{BatchStream, Batcher, IndexCache, IoPolicy, Options, StreamOptions};
use support::{best_of, corpus, warm};

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
    let mut counts = vec![1, 2, cores];
    counts.dedup();
    for builders in counts {
        let stream = || {
            let options = StreamOptions { builders: Some(builders), columns: Some(columns.as_slice().into()), ..Default::default() };
            BatchStream::with_options(&batcher, (0..batches).map(|b| (0, b)), options)
        };
        let (t_views, rows) = best_of(5, || stream().map(|r| r.unwrap().to_record_batch(&columns).unwrap().num_rows()).sum::<usize>());
        let (t_copied, copied) = best_of(5, || {
            let mut out = Vec::new();
            stream()
                .map(|r| {
                    let ready = r.unwrap();
                    out.clear();
                    ready.located.raw_lines().map(|l| out.extend_from_slice(l)).count()
                })
                .sum::<usize>()
        });
        assert_eq!(rows, copied);
        let mlps = |t: std::time::Duration| rows as f64 / t.as_secs_f64() / 1e6;
        println!(
            "{} lines, io {io:?}, index {:?}, batch 1024, shuffled, through BatchStream with {builders} builder(s): \
             Arrow batches {:.3} s = {:.1} M lines/s   lines copied out {:.3} s = {:.1} M lines/s",
            rows,
            batcher.index_status(0),
            t_views.as_secs_f64(),
            mlps(t_views),
            t_copied.as_secs_f64(),
            mlps(t_copied)
        );
    }
}
