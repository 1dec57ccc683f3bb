//! Core benchmark: open (index build, newlines and UTF-8 in one pass) against a bare memchr
//! newline count; reopen from the persisted index; one shuffled epoch of zero-copy batches
//! against the same rows copied into a `BinaryArray`; anonymous memory per kept line.
//!
//! The epoch rate depends on the page size the kernel maps the file with (see the README),
//! so the run measures the epoch three times: with the page cache filled by mmap-batcher
//! itself reading the file cold (it asks for 2 MiB pages), filled by another program's
//! `read()` calls, and holding a copy of the corpus just written by `write()`.
//!
//! Run: `cargo bench --bench core` (corpus: 10 M lines ≈ 1 GB in `bench-data/`, generated
//! on first use; `MMB_LINES=1000000` for a smaller one, `MMB_CORPUS=path` for your own file).

mod support;

use arrow::array::{Array, BinaryArray};
use mmap_batcher::{Batcher, IndexCache, Options};
use support::{best_of, corpus, evict, file_pmd_mapped, mib, rss_anon, warm};

fn main() {
    let path = corpus();
    let size = std::fs::metadata(&path).unwrap().len();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("corpus {} ({:.0} MiB), {threads} cores", path.display(), mib(size));
    let opts = Options { batch_size: 1024, seed: Some(1), index_cache: IndexCache::Off, ..Default::default() };
    evict(&path);
    let (t_cold, cold) = best_of(1, || Batcher::open(&path, opts.clone()).unwrap());
    println!("cold open (page cache evicted, read from disk): {:.3} s", t_cold.as_secs_f64());
    drop(cold);

    // Baseline: count newlines in a fresh map, as a minimal reader would. The two are
    // timed in alternation, best of ten each, so that a noisy moment of this shared
    // machine does not land on one of them only.
    let count = || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: the bench's own corpus, which nothing writes while it runs.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        memchr::memchr_iter(b'\n', &map).count()
    };
    let rss0 = rss_anon();
    let (mut t_count, mut t_open) = (std::time::Duration::MAX, std::time::Duration::MAX);
    let (mut newlines, mut batcher) = (0, None);
    for _ in 0..10 {
        let (t, n) = best_of(1, count);
        (t_count, newlines) = (t_count.min(t), n);
        drop(batcher.take());
        let (t, b) = best_of(1, || Batcher::open(&path, opts.clone()).unwrap());
        (t_open, batcher) = (t_open.min(t), Some(b));
    }
    let batcher = batcher.unwrap();
    let rss_open = rss_anon();
    let lines = batcher.num_lines();
    persisted_index(&path, &opts);
    println!("lines: {newlines} physical, {lines} kept");
    println!(
        "open:  {:>7.3} s   memchr newline count {:>7.3} s   ratio {:.2}x (target <= 2x)   {:.0} MiB/s",
        t_open.as_secs_f64(),
        t_count.as_secs_f64(),
        t_open.as_secs_f64() / t_count.as_secs_f64(),
        mib(size) / t_open.as_secs_f64()
    );

    println!("utf-8 verdict (made during the open's one pass): {:?}", batcher.utf8_verdict(0));

    epoch_rates(&batcher, "file read by mmap-batcher");
    let rss_end = rss_anon();
    let index_bytes = rss_open.saturating_sub(rss0);
    println!(
        "RssAnon: {:.1} MiB before open, {:.1} MiB after open, {:.1} MiB after epochs; \
         index growth {:.2} bytes/kept line (target <= 8)",
        mib(rss0),
        mib(rss_open),
        mib(rss_end),
        index_bytes as f64 / lines as f64
    );
    let budget = 8 * lines + (64 << 20);
    println!(
        "memory verdict: RssAnon {:.1} MiB vs budget {:.1} MiB: {}",
        mib(rss_end),
        mib(budget),
        if rss_end <= budget { "within" } else { "OVER" }
    );

    // The other page-cache state: the file cached by another program's reads.
    drop(batcher);
    evict(&path);
    warm(&path);
    let batcher = Batcher::open(&path, opts.clone()).unwrap();
    epoch_rates(&batcher, "file cached by read()");
    drop(batcher);

    // And a file just written by another program in 64 KiB writes, still in the page cache
    // as written.
    let copy = path.with_extension("written.txt");
    let mut out = std::fs::File::create(&copy).unwrap();
    for piece in std::fs::read(&path).unwrap().chunks(64 << 10) {
        std::io::Write::write_all(&mut out, piece).unwrap();
    }
    drop(out);
    let batcher = Batcher::open(&copy, opts.clone()).unwrap();
    epoch_rates(&batcher, "file just written");
    drop(batcher);
    std::fs::remove_file(&copy).unwrap();
}

/// One shuffled epoch three ways, best of five each, with the share of the file the kernel
/// maps with 2 MiB pages.
fn epoch_rates(batcher: &Batcher, page_cache: &str) {
    batcher.validate_utf8().unwrap();
    let (t_epoch, rows) = best_of(5, || {
        let epoch = batcher.epoch(0).unwrap();
        let mut rows = 0;
        for b in epoch.batches() {
            rows += b.to_record_batch().unwrap().num_rows();
        }
        rows
    });
    let (t_copy, copied) = best_of(5, || {
        let epoch = batcher.epoch(0).unwrap();
        let mut rows = 0;
        for b in epoch.batches() {
            rows += BinaryArray::from_iter_values(b.locate().unwrap().lines(false)).len();
        }
        rows
    });
    let (t_ids, _) = best_of(5, || {
        let epoch = batcher.epoch(0).unwrap();
        epoch.batches().map(|b| b.len()).sum::<usize>()
    });
    assert_eq!(rows, copied);
    let mlps = |t: std::time::Duration| rows as f64 / t.as_secs_f64() / 1e6;
    let file_mib = mib(batcher.map_address_ranges()[0].len() as u64);
    println!(
        "epoch, {page_cache} ({:.0} of {:.0} MiB mapped with 2 MiB pages), batch 1024, shuffled, 1 core:\n  \
         zero-copy views {:.3} s = {:.1} M lines/s (target >= 15)   \
         copied BinaryArray {:.3} s = {:.1} M lines/s   order only {:.1} M lines/s",
        mib(file_pmd_mapped()).min(file_mib),
        file_mib,
        t_epoch.as_secs_f64(),
        mlps(t_epoch),
        t_copy.as_secs_f64(),
        mlps(t_copy),
        mlps(t_ids)
    );
}

/// Writing the index once, then reopening from it: time and anonymous memory of a reopen.
fn persisted_index(path: &std::path::Path, opts: &Options) {
    let dir = std::env::temp_dir().join(format!("mmb-bench-index-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let index_path = dir.join("corpus.mmbi");
    let cached = Options { index_cache: IndexCache::Path(index_path.clone()), ..opts.clone() };
    let (t_write, b) = best_of(1, || Batcher::open(path, cached.clone()).unwrap());
    let size = std::fs::metadata(&index_path).unwrap().len();
    let lines = b.num_lines();
    drop(b);
    let rss0 = rss_anon();
    let (t_reopen, b) = best_of(10, || Batcher::open(path, cached.clone()).unwrap());
    let rss = rss_anon().saturating_sub(rss0);
    println!(
        "index file: {:.1} MiB = {:.2} bytes/kept line (target <= 8); first open + write {:.3} s; \
         reopen {:.2} ms (target <= 10), RssAnon growth {:.1} MiB (target <= 16)",
        mib(size),
        size as f64 / lines as f64,
        t_write.as_secs_f64(),
        t_reopen.as_secs_f64() * 1e3,
        mib(rss)
    );
    drop(b);
    std::fs::remove_dir_all(&dir).unwrap();
}
