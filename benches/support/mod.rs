//! Shared by the bench binaries: the corpus on disk, timing, and anonymous memory.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The benchmark corpus: `$MMB_CORPUS`, or `bench-data/corpus.txt` generated on first use
/// (`$MMB_LINES` lines, 10 M by default ≈ 1 GB).
pub fn corpus() -> PathBuf {
    if let Ok(p) = std::env::var("MMB_CORPUS") {
        return PathBuf::from(p);
    }
    let lines: u64 = std::env::var("MMB_LINES").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench-data");
    let path = dir.join(format!("corpus-{lines}.txt"));
    if !path.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        eprintln!("generating {} ({lines} lines)…", path.display());
        let tmp = path.with_extension("tmp");
        let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).unwrap());
        mmap_batcher::synthetic::write_corpus(&mut w, lines, 1).unwrap();
        std::io::Write::flush(&mut w).unwrap();
        drop(w);
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

/// Reads the whole file once so every measurement starts from a warm page cache.
pub fn warm(path: &std::path::Path) {
    let mut f = std::fs::File::open(path).unwrap();
    std::io::copy(&mut f, &mut std::io::sink()).unwrap();
}

/// Drops the file's pages from the page cache, so that the next reader fills it anew.
pub fn evict(path: &std::path::Path) {
    let file = std::fs::File::open(path).unwrap();
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
}

/// Bytes of files this process maps with 2 MiB pages (`FilePmdMapped` of `/proc/self/smaps_rollup`).
pub fn file_pmd_mapped() -> u64 {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let line = rollup.lines().find(|l| l.starts_with("FilePmdMapped:"));
    line.and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).unwrap_or(0) * 1024
}

/// Anonymous resident memory of this process, in bytes (`RssAnon` of `/proc/self/status`).
pub fn rss_anon() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// The best of `runs` timings of `f` (the machine is noisy; the minimum is the least disturbed).
pub fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        out = Some(v);
    }
    (best, out.unwrap())
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}
