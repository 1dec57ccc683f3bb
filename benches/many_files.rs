//! Many files, one corpus: one shuffled epoch over the benchmark corpus split into 100
//! files against the same corpus as one file (ratio), the open time of 1,000 files
//! whose index files exist (a reopen) against building them, and a global epoch over a
//! tree of 30,000 small files against their concatenation (`MMB_TREE_FILES` to change it).
//!
//! Run: `cargo bench --bench many_files --no-default-features --features synthetic` (the corpus of `core`; the
//! split copies go to `bench-data/split-N/`).

mod support;

use std::path::PathBuf;
use std::time::Instant;

use mmap_batcher::{BatchStream, Batcher, Column, Options, StreamOptions};
use support::{best_of, corpus, mib};

/// `corpus` split at line boundaries into `parts` files (made once).
fn split(corpus: &std::path::Path, parts: usize) -> Vec<PathBuf> {
    let dir = corpus.with_file_name(format!("split-{parts}"));
    let paths: Vec<PathBuf> = (0..parts).map(|i| dir.join(format!("part-{i:05}.txt"))).collect();
    if paths.iter().all(|p| p.exists()) {
        return paths;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(corpus).unwrap();
    let mut start = 0;
    for (i, p) in paths.iter().enumerate() {
        let target = bytes.len() * (i + 1) / parts;
        let end = if i + 1 == parts { bytes.len() } else { memchr::memchr(b'\n', &bytes[target..]).map_or(bytes.len(), |x| target + x + 1) };
        std::fs::write(p, &bytes[start..end.max(start)]).unwrap();
        start = end.max(start);
    }
    paths
}

/// A tree of `files` small files of 40 lines (100 directories), and their concatenation
/// (made once): the shape of a source tree.
fn tree(files: usize) -> (Vec<PathBuf>, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("bench-data/tree-{files}"));
    let one = dir.with_extension("txt");
    let paths: Vec<PathBuf> = (0..files).map(|i| dir.join(format!("d{:03}/f{:05}.txt", i % 100, i))).collect();
    if one.exists() && paths.iter().all(|p| p.exists()) {
        return (paths, one);
    }
    let mut all = Vec::new();
    let mut state = 1u64;
    for (i, p) in paths.iter().enumerate() {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut text = Vec::new();
        for k in 0..40 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let pad = 5 + (state >> 33) as usize % 56;
            text.extend_from_slice(format!("file {i} line {k} {}\n", "x".repeat(pad)).as_bytes());
        }
        std::fs::write(p, &text).unwrap();
        all.extend_from_slice(&text);
    }
    std::fs::write(&one, &all).unwrap();
    (paths, one)
}

fn epoch_seconds(b: &Batcher) -> (f64, u64) {
    epoch_seconds_with(b, &[Column::Line])
}

/// One epoch of `columns`, batch after batch on this thread.
fn epoch_seconds_with(b: &Batcher, columns: &[Column]) -> (f64, u64) {
    let runs = std::env::var("MMB_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let (t, rows) = best_of(runs, || {
        let epoch = b.epoch(0).unwrap();
        epoch.batches().map(|x| x.to_record_batch_with(columns).unwrap().num_rows() as u64).sum::<u64>()
    });
    (t.as_secs_f64(), rows)
}

/// One epoch through a stream whose `builders` assemble the line column (what the Python
/// iterators and the engines read).
fn streamed_seconds(b: &Batcher, builders: usize) -> f64 {
    let runs = std::env::var("MMB_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let columns: std::sync::Arc<[Column]> = vec![Column::Line].into();
    let (t, _) = best_of(runs, || {
        let n = b.epoch(0).unwrap().num_batches();
        let options = StreamOptions { builders: Some(builders), columns: Some(columns.clone()), ..Default::default() };
        BatchStream::with_options(b, (0..n).map(|k| (0, k)), options).map(|r| r.unwrap().to_record_batch(&columns).unwrap().num_rows()).sum::<usize>()
    });
    t.as_secs_f64()
}

fn main() {
    let threads = std::env::var("MMB_THREADS").ok().and_then(|s| s.parse().ok());
    let opts = Options { batch_size: 1024, seed: Some(1), threads, ..Default::default() };
    // `-- tree`: the tree alone (to profile it).
    if std::env::args().skip(1).all(|a| a != "tree") {
        split_and_reopen(&opts);
    }
    the_tree(&opts);
}

fn split_and_reopen(opts: &Options) {
    let path = corpus();
    println!("corpus {} ({:.0} MiB)", path.display(), mib(std::fs::metadata(&path).unwrap().len()));
    let one = Batcher::open(&path, opts.clone()).unwrap();
    let (t1, rows1) = epoch_seconds(&one);
    let parts = split(&path, 100);
    let many = Batcher::open_many(&parts, opts.clone()).unwrap();
    let (t100, rows100) = epoch_seconds(&many);
    assert_eq!(rows1, rows100);
    println!(
        "one shuffled epoch (zero-copy line column): 1 file {t1:.3} s = {:.1} M lines/s; 100 files {t100:.3} s = {:.1} M lines/s; ratio {:.2}x",
        rows1 as f64 / t1 / 1e6,
        rows100 as f64 / t100 / 1e6,
        t100 / t1
    );
    let parts = split(&path, 1000);
    for p in &parts {
        let _ = std::fs::remove_file(p.with_extension("txt.b1-c23.mmbi"));
    }
    let t = Instant::now();
    let built = Batcher::open_many(&parts, opts.clone()).unwrap();
    let t_build = t.elapsed().as_secs_f64();
    drop(built);
    let (t_reopen, reopened) = best_of(3, || Batcher::open_many(&parts, opts.clone()).unwrap());
    println!(
        "1,000 files: first open (indexes built and written, both cores) {t_build:.3} s; reopen with index files {:.3} s ({} lines)",
        t_reopen.as_secs_f64(),
        reopened.num_lines()
    );
}

fn the_tree(opts: &Options) {
    let files = std::env::var("MMB_TREE_FILES").ok().and_then(|s| s.parse().ok()).unwrap_or(30_000);
    let (paths, one) = tree(files);
    let tree = Batcher::open_many(&paths, opts.clone()).unwrap();
    // The first batch builds the packed lines (each file's index in one array).
    let t = Instant::now();
    tree.epoch(0).unwrap().batch(0).unwrap().to_record_batch_with(&[Column::Line]).unwrap();
    println!("a tree of {files} files: its first batch {:.3} s (the packed lines built)", t.elapsed().as_secs_f64());
    let (t_tree, rows_tree) = epoch_seconds(&tree);
    let whole = Batcher::open(&one, opts.clone()).unwrap();
    let (t_one, rows_one) = epoch_seconds(&whole);
    assert_eq!(rows_tree, rows_one);
    println!(
        "a tree of {files} files, global epoch: {t_tree:.3} s against {t_one:.3} s as one file ({} lines): ratio {:.2}x",
        rows_one,
        t_tree / t_one
    );
    // What `record_batches()` serves by default: line numbers and offsets too.
    let columns = [Column::Line, Column::LineNumber, Column::ByteOffset, Column::Epoch, Column::Batch];
    let ((t_tree_all, _), (t_one_all, _)) = (epoch_seconds_with(&tree, &columns), epoch_seconds_with(&whole, &columns));
    println!("  with line numbers, offsets, epoch and batch: {t_tree_all:.3} s against {t_one_all:.3} s: ratio {:.2}x", t_tree_all / t_one_all);
    let runs = std::env::var("MMB_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let (t_start, _) = best_of(runs, || tree.epoch(0).unwrap().num_batches());
    println!("  of which the epoch's start (every path checked): {:.3} s", t_start.as_secs_f64());
    for builders in [1, 2] {
        let (tree_s, one_s) = (streamed_seconds(&tree, builders), streamed_seconds(&whole, builders));
        println!("  streamed, {builders} builder(s): {tree_s:.3} s against {one_s:.3} s: ratio {:.2}x", tree_s / one_s);
    }
}
