//! The block shuffle through the batcher, against a naive reference of its definition.

mod common;

use std::collections::HashSet;

use common::file_with;
use mmap_batcher::{Batcher, IndexCache, Options, Served, Shard, Shuffle};
use proptest::prelude::*;

/// The definition, written plainly from the layout the batcher cut: blocks in the order of
/// a permutation of block numbers, windows of `w` blocks, each window's lines permuted.
fn naive(b: &Batcher, epoch: u64) -> Vec<u64> {
    let mmap_batcher::EpochOrder::Block(order) = b.epoch(epoch).unwrap().order().clone() else { panic!("not block mode") };
    let mut out = Vec::new();
    for win in 0..order.num_windows() {
        let lines: Vec<u64> = order.window_blocks(win).flatten().collect();
        let positions = order.window_positions(win);
        assert_eq!(positions.end - positions.start, lines.len() as u64);
        let mut served: Vec<u64> = positions.clone().map(|p| order.get(p)).collect();
        // Kept lines of a window are exactly its blocks' lines, in some order.
        let mut sorted = served.clone();
        sorted.sort_unstable();
        let mut want = lines.clone();
        want.sort_unstable();
        assert_eq!(sorted, want);
        out.append(&mut served);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn block_mode_is_a_reproducible_permutation_with_random_access(
        lines in 1usize..600, width in 1usize..60, block in 16u64..2000, window in 1u64..6,
        batch_size in 1usize..13, shards in 1u64..5, seed in any::<u64>(),
    ) {
        let text: String = (0..lines).map(|i| format!("{i:05} {}\n", "y".repeat((i * 7919) % width))).collect();
        let f = file_with(text.as_bytes());
        let opts = Options {
            batch_size, seed: Some(seed), ignore_leftovers: false, index_cache: IndexCache::Off,
            shuffle: Shuffle::Block { block_bytes: block, window_blocks: window }, ..Default::default()
        };
        let b = Batcher::open(f.path(), opts.clone()).unwrap();
        let mut epochs = Vec::new();
        for e in 0..2 {
            let epoch = b.epoch(e).unwrap();
            let sequential: Vec<u64> = epoch.batches().flat_map(|x| x.line_ids().to_vec()).collect();
            prop_assert_eq!(&sequential, &naive(&b, e));
            let mut sorted = sequential.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..lines as u64).collect::<Vec<_>>());
            // Random access by batch, backward, equals the sequential order.
            let backward: Vec<Vec<u64>> = (0..epoch.num_batches()).rev().map(|i| epoch.batch(i).unwrap().line_ids().to_vec()).collect();
            prop_assert_eq!(backward.into_iter().rev().flatten().collect::<Vec<_>>(), sequential.clone());
            // Shards together: every batch once.
            let mut from_shards = HashSet::new();
            for s in 0..shards {
                for batch in epoch.shard_plan(Shard::new(s, shards).unwrap(), Served::NONE).batches() {
                    prop_assert!(from_shards.insert(batch));
                }
            }
            prop_assert_eq!(from_shards.len() as u64, epoch.num_batches());
            epochs.push(sequential);
        }
        // Deterministic: a fresh open gives the same epoch.
        let again = Batcher::open(f.path(), opts).unwrap();
        let replay: Vec<u64> = again.epoch(1).unwrap().batches().flat_map(|x| x.line_ids().to_vec()).collect();
        prop_assert_eq!(&replay, &epochs[1]);
        if lines > 50 && block < 200 {
            prop_assert_ne!(&epochs[0], &epochs[1]);
        }
    }
}

/// Blocks are contiguous byte ranges of about the block size, cut at line starts.
#[test]
fn blocks_follow_the_byte_size() {
    let text: String = (0..10_000).map(|i| format!("line {i:06} padding\n")).collect();
    let f = file_with(text.as_bytes());
    let opts = Options {
        shuffle: Shuffle::Block { block_bytes: 20_000, window_blocks: 4 },
        index_cache: IndexCache::Off,
        seed: Some(1),
        ..Default::default()
    };
    let b = Batcher::open(f.path(), opts).unwrap();
    let layout = b.block_layout();
    let bytes_per_line = text.len() as u64 / 10_000;
    assert_eq!(layout.num_blocks(), (text.len() as u64).div_ceil(20_000));
    for i in 0..layout.num_blocks() - 1 {
        let r = layout.block(i);
        assert!(((r.end - r.start) * bytes_per_line).abs_diff(20_000) <= bytes_per_line, "{r:?}");
    }
}
