//! The beyond-RAM benchmark's reader: one measured step per run, so that
//! `benches/beyond_ram.sh` can run each step alone inside a memory cgroup with the page
//! cache evicted first.
//!
//! ```text
//! beyond_ram open  FILE [--no-index-cache]
//! beyond_ram epoch FILE [--shuffle none|global|block] [--seconds S] [--block BYTES] [--window BLOCKS]
//!                       [--batch-size N] [--io auto|cached|disk] [--columns line|all]
//! ```
//!
//! Prints one line of `key=value` pairs: elapsed seconds, lines and bytes served, lines/s,
//! major page faults, and the process's RssAnon and peak RSS.

mod support;

use std::time::{Duration, Instant};

use arrow::array::Array;
use mmap_batcher::{BatchStream, Batcher, Column, IndexCache, IoPolicy, Options, Shuffle, StreamOptions};
use support::rss_anon;

fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

fn major_faults() -> u64 {
    // Field 12 of /proc/self/stat (after the parenthesised command name).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    after.split_whitespace().nth(9).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let (Some(step), Some(file)) = (args.first(), args.get(1)) else {
        eprintln!("usage: beyond_ram open|epoch FILE [options]");
        std::process::exit(2);
    };
    let batch_size: usize = arg(&args, "--batch-size").map_or(1024, |v| v.parse().unwrap());
    let block = arg(&args, "--block").map_or(Shuffle::DEFAULT_BLOCK_BYTES, |v| v.parse().unwrap());
    let window = arg(&args, "--window").map_or(Shuffle::DEFAULT_WINDOW_BLOCKS, |v| v.parse().unwrap());
    let shuffle = match arg(&args, "--shuffle").as_deref().unwrap_or("block") {
        "none" => Shuffle::None,
        "global" => Shuffle::Global,
        _ => Shuffle::Block { block_bytes: block, window_blocks: window },
    };
    let io = match arg(&args, "--io").as_deref() {
        Some("cached") => IoPolicy::Cached,
        Some("disk") => IoPolicy::Disk,
        _ => IoPolicy::Auto,
    };
    let index_cache = if args.iter().any(|a| a == "--no-index-cache") { IndexCache::Off } else { IndexCache::Auto };
    let opts = Options { batch_size, shuffle, seed: Some(1), io, index_cache, ..Default::default() };
    let rss0 = rss_anon();
    let t = Instant::now();
    let batcher = Batcher::open(file, opts).unwrap();
    let t_open = t.elapsed();
    if step == "open" {
        println!(
            "step=open seconds={:.3} lines={} index={:?} disk_io={} rss_anon_mib={:.1} peak_rss_mib={:.1} major_faults={}",
            t_open.as_secs_f64(),
            batcher.num_lines(),
            batcher.index_status(0).path().map(|p| p.display().to_string()),
            batcher.reads_from_disk(),
            (rss_anon().saturating_sub(rss0)) as f64 / 1048576.0,
            status_kib("VmHWM:") as f64 / 1024.0,
            major_faults()
        );
        return;
    }
    let limit = arg(&args, "--seconds").map(|v| Duration::from_secs_f64(v.parse().unwrap()));
    let columns = match arg(&args, "--columns").as_deref() {
        Some("all") => batcher.default_columns(),
        _ => vec![Column::Line],
    };
    let faults0 = major_faults();
    let t = Instant::now();
    let per_epoch = batcher.num_batches();
    let (mut lines, mut bytes, mut cut) = (0u64, 0u64, false);
    // Assembled by the stream's builders, as every adapter (Python, SQL, IPC) asks.
    let options = StreamOptions { columns: Some(columns.as_slice().into()), ..Default::default() };
    for ready in BatchStream::with_options(&batcher, (0..per_epoch).map(|b| (0, b)), options) {
        let rb = ready.unwrap().to_record_batch(&columns).unwrap();
        lines += rb.num_rows() as u64;
        if let Some(line) = rb.column(0).as_any().downcast_ref::<arrow::array::StringViewArray>() {
            // Touch every line's last byte (its first is in the view's prefix), as a
            // consumer reading the lines would have the pages read.
            bytes += line.iter().map(|l| l.map_or(0, |s| s.as_bytes().last().map_or(0, |&b| u64::from(b & 1)) + s.len() as u64)).sum::<u64>();
        }
        if limit.is_some_and(|l| t.elapsed() >= l) {
            cut = true;
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "step=epoch shuffle={:?} open_seconds={:.3} seconds={:.2} lines={} of {} cut={} lines_per_s={:.0} bytes={} disk_io={} major_faults={} rss_anon_mib={:.1} peak_rss_mib={:.1}",
        shuffle,
        t_open.as_secs_f64(),
        secs,
        lines,
        batcher.lines_per_epoch(),
        cut,
        lines as f64 / secs,
        bytes,
        batcher.reads_from_disk(),
        major_faults() - faults0,
        (rss_anon().saturating_sub(rss0)) as f64 / 1048576.0,
        status_kib("VmHWM:") as f64 / 1024.0
    );
}
