//! How random is it? Shuffle quality of each order, on a corpus whose lines are sorted
//! into 100 label runs (line `k` of `n` has label `100 k / n`):
//!
//! - **label TV**: the mean total-variation distance between each batch's label histogram
//!   and the corpus's (0: every batch mixes labels as the corpus does; 1: one label per
//!   batch);
//! - **neighbour gap**: the mean |Δ line id| between consecutive lines served, over `n/3`
//!   (1.0 for a uniform shuffle, 0 for file order).
//!
//! Orders: file order, the global shuffle, the block shuffle at several (block, window),
//! and a HuggingFace-`datasets`-style buffer shuffle (100 shards in random order, streamed
//! through a 1,000-line buffer) as the reference users know.
//!
//! The block layout is modelled from line counts: blocks of `B / mean line bytes` lines,
//! as the index cuts them at line starts (`--file F` reads a real labelled corpus's index
//! instead: `mmap-batcher corpus F --lines N --labels 100`).
//!
//! Run: `cargo bench --bench quality` (defaults: 77.6 M lines of 106.5 bytes, the 8.26 GB
//! beyond-RAM corpus; `--lines N --line-bytes L` for another, `--batches K` batches sampled).

use mmap_batcher::{Batcher, BlockLayout, EpochOrder, IndexCache, Options, Shuffle};

const LABELS: u64 = 100;
const BATCH: u64 = 1024;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// SplitMix64, for the buffer shuffle's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The metrics of `batches` (each a list of line ids) over `n` lines.
fn metrics(batches: &[Vec<u64>], n: u64) -> (f64, f64) {
    let mut tv_sum = 0.0;
    let mut gap_sum = 0.0;
    let mut gaps = 0u64;
    for batch in batches {
        let mut hist = vec![0u64; LABELS as usize];
        for &k in batch {
            hist[(u128::from(k) * u128::from(LABELS) / u128::from(n)) as usize] += 1;
        }
        let len = batch.len() as f64;
        tv_sum += 0.5 * hist.iter().map(|&c| (c as f64 / len - 1.0 / LABELS as f64).abs()).sum::<f64>();
        for w in batch.windows(2) {
            gap_sum += w[0].abs_diff(w[1]) as f64;
            gaps += 1;
        }
    }
    (tv_sum / batches.len() as f64, gap_sum / gaps as f64 / (n as f64 / 3.0))
}

/// `count` batches spread over epoch 0 of `order`.
fn sample(order: &EpochOrder, count: u64) -> Vec<Vec<u64>> {
    let total = order.len() / BATCH;
    let step = (total / count).max(1);
    (0..total)
        .step_by(step as usize)
        .map(|b| {
            let mut ids = Vec::new();
            order.fill(b * BATCH..(b + 1) * BATCH, &mut ids);
            ids
        })
        .collect()
}

/// The HuggingFace `IterableDataset.shuffle(buffer_size)` algorithm over `shards` equal
/// shards in random order: each incoming line replaces a random buffer slot, whose line is
/// served. Returns `count` batches spread over the epoch.
fn buffer_shuffle(n: u64, shards: u64, buffer: usize, count: u64) -> Vec<Vec<u64>> {
    let mut rng = Rng(7);
    let mut order: Vec<u64> = (0..shards).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let total = n / BATCH;
    let step = (total / count).max(1);
    let mut out = Vec::new();
    let mut buf: Vec<u64> = Vec::with_capacity(buffer);
    let mut current = Vec::new();
    let mut batch_index = 0;
    let mut emit = |line: u64, current: &mut Vec<u64>, out: &mut Vec<Vec<u64>>| {
        current.push(line);
        if current.len() as u64 == BATCH {
            if batch_index % step == 0 {
                out.push(std::mem::take(current));
            } else {
                current.clear();
            }
            batch_index += 1;
        }
    };
    for s in order {
        for line in s * n / shards..(s + 1) * n / shards {
            if buf.len() < buffer {
                buf.push(line);
                continue;
            }
            let i = (rng.next() % buffer as u64) as usize;
            let served = std::mem::replace(&mut buf[i], line);
            emit(served, &mut current, &mut out);
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let count: u64 = arg(&args, "--batches").map_or(3000, |v| v.parse().unwrap());
    // The layout of blocks of `bytes` bytes: from a real index, or modelled.
    let (n, blocks_of): (u64, Box<dyn Fn(u64) -> BlockLayout>) = match arg(&args, "--file") {
        Some(file) => {
            let open = move |b: u64| {
                let opts = Options {
                    batch_size: BATCH as usize,
                    seed: Some(1),
                    shuffle: Shuffle::Block { block_bytes: b, window_blocks: 1 },
                    index_cache: IndexCache::Auto,
                    ..Default::default()
                };
                Batcher::open(&file, opts).unwrap()
            };
            let n = open(1 << 20).num_lines();
            (n, Box::new(move |b| open(b).block_layout().clone()))
        }
        None => {
            let n: u64 = arg(&args, "--lines").map_or(77_599_440, |v| v.parse().unwrap());
            let line_bytes: f64 = arg(&args, "--line-bytes").map_or(106.5, |v| v.parse().unwrap());
            (n, Box::new(move |b| BlockLayout::uniform(n, ((b as f64 / line_bytes) as u64).max(1))))
        }
    };
    println!("{n} lines, {LABELS} label runs, batch {BATCH}, {count} batches sampled");
    println!("| order | window (bytes) | label TV | neighbour gap |");
    println!("| --- | --- | --- | --- |");
    let row = |name: String, window: String, (tv, gap): (f64, f64)| println!("| {name} | {window} | {tv:.3} | {gap:.3} |");
    let single = BlockLayout::single(n);
    row("file order".into(), "—".into(), metrics(&sample(&EpochOrder::new(1, 0, Shuffle::None, &single), count), n));
    row("global".into(), "—".into(), metrics(&sample(&EpochOrder::new(1, 0, Shuffle::Global, &single), count), n));
    for (b, w) in [(4u64 << 20, 64u64), (16 << 20, 16), (16 << 20, 64), (32 << 20, 8), (64 << 20, 4), (64 << 20, 16), (1 << 20, 256)] {
        let layout = blocks_of(b);
        let order = EpochOrder::new(1, 0, Shuffle::Block { block_bytes: b, window_blocks: w }, &layout);
        row(format!("block {} MiB × {w}", b >> 20), format!("{} MiB", (b * w) >> 20), metrics(&sample(&order, count), n));
    }
    row("buffer 1,000 over 100 shuffled shards (HF-style)".into(), "1,000 lines".into(), metrics(&buffer_shuffle(n, 100, 1000, count), n));
}
