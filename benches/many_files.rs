//! Many files, one corpus: one shuffled epoch over the benchmark corpus split into 100
//! files against the same corpus as one file (ratio), and the open time of 1,000 files
//! whose index files exist (a reopen) against building them.
//!
//! Run: `cargo bench --bench many_files --no-default-features --features synthetic` (the corpus of `core`; the
//! split copies go to `bench-data/split-N/`).

mod support;

use std::path::PathBuf;
use std::time::Instant;

use mmap_batcher::{Batcher, Column, Options};
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

fn epoch_seconds(b: &Batcher) -> (f64, u64) {
    let (t, rows) = best_of(3, || {
        let epoch = b.epoch(0).unwrap();
        epoch.batches().map(|x| x.to_record_batch_with(&[Column::Line]).unwrap().num_rows() as u64).sum::<u64>()
    });
    (t.as_secs_f64(), rows)
}

fn main() {
    let path = corpus();
    println!("corpus {} ({:.0} MiB)", path.display(), mib(std::fs::metadata(&path).unwrap().len()));
    let opts = Options { batch_size: 1024, seed: Some(1), ..Default::default() };
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
