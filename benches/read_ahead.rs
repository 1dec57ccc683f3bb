//! One shuffled epoch through [`BatchStream`], the path of the CLI and the Python iterators:
//! the next batch prepared on the read-ahead thread while this one is consumed, as Arrow
//! batches (zero-copy views) and as lines copied out (what `list[bytes]` does).
//!
//! Run: `cargo bench --bench read_ahead` (the corpus of `benches/core.rs`; `MMB_IO=copy`
//! for lines read into buffers of their own; `MMB_INDEX=file` to serve from the index file,
//! whose lines are checked to be cut at line boundaries as they are served as strings).

mod support;

use mmap_batcher::{BatchStream, Batcher, IndexCache, IoPolicy, Options};
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
    let stream = || BatchStream::new(&batcher, (0..batches).map(|b| (0, b)));
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
        "{} lines, io {io:?}, index {:?}, batch 1024, shuffled, through BatchStream: Arrow batches {:.3} s = {:.1} M lines/s   \
         lines copied out {:.3} s = {:.1} M lines/s",
        rows,
        batcher.index_status(0),
        t_views.as_secs_f64(),
        mlps(t_views),
        t_copied.as_secs_f64(),
        mlps(t_copied)
    );
}
