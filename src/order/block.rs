//! The block shuffle: for files larger than the page cache.
//!
//! The lines are cut into *blocks* of about B bytes at line starts (blocks never span
//! files). Each epoch permutes the blocks, groups the block order into *windows* of W
//! consecutive blocks, and permutes the lines of each window uniformly. An epoch thus
//! reads a window's W blocks — W sequential reads of B bytes — while serving it, and the
//! next window can be read ahead; the memory it needs is about two windows.
//!
//! Like the global order it is a permutation of the lines with random access by
//! position: window `w`'s positions are `cum[wW] .. cum[(w+1)W]` of the running line
//! count over the block order, and inside it a keyed [`Permutation`] picks the line.

use std::ops::Range;
use std::sync::Arc;

use super::{epoch_key, mix64, Permutation};

/// Where the blocks are cut: block `i` holds lines `starts[i] .. starts[i + 1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockLayout {
    starts: Arc<Vec<u64>>,
}

impl BlockLayout {
    /// One block of `n` lines (the layout of the modes that do not use blocks).
    pub fn single(n: u64) -> Self {
        Self::from_starts(vec![0, n])
    }

    /// Blocks of `lines_per_block` lines over `n` lines (tests, simulations).
    pub fn uniform(n: u64, lines_per_block: u64) -> Self {
        let step = lines_per_block.max(1);
        let mut starts: Vec<u64> = (0..n).step_by(step as usize).collect();
        starts.push(n);
        Self::from_starts(starts)
    }

    /// Blocks from ascending cut points (the first 0, the last the line count); empty
    /// blocks are dropped.
    pub fn from_starts(mut starts: Vec<u64>) -> Self {
        starts.dedup();
        if starts.is_empty() {
            starts.push(0);
        }
        if starts.len() == 1 && starts[0] != 0 {
            starts.insert(0, 0);
        }
        BlockLayout { starts: Arc::new(starts) }
    }

    /// Number of lines.
    pub fn num_lines(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> u64 {
        self.starts.len() as u64 - 1
    }

    /// The lines of block `i`.
    pub fn block(&self, i: u64) -> Range<u64> {
        self.starts[i as usize]..self.starts[i as usize + 1]
    }
}

/// One epoch's block order (see the module docs).
#[derive(Debug, Clone)]
pub struct BlockOrder {
    layout: BlockLayout,
    key: u64,
    window_blocks: u64,
    /// Block ids in this epoch's order.
    order: Arc<Vec<u64>>,
    /// `cum[i]`: lines in the first `i` blocks of the order.
    cum: Arc<Vec<u64>>,
}

impl BlockOrder {
    /// Epoch `epoch`'s order of the blocks of `layout`, shuffled within windows of
    /// `window_blocks` blocks.
    pub fn new(seed: u64, epoch: u64, layout: &BlockLayout, window_blocks: u64) -> Self {
        let key = mix64(epoch_key(seed, epoch) ^ 0x6a09_e667_f3bc_c908);
        let nb = layout.num_blocks();
        let perm = Permutation::new(key, nb);
        let mut order = Vec::with_capacity(nb as usize);
        perm.fill(0..nb, &mut order);
        let mut cum = Vec::with_capacity(nb as usize + 1);
        cum.push(0);
        let mut total = 0;
        for &b in &order {
            let r = layout.block(b);
            total += r.end - r.start;
            cum.push(total);
        }
        BlockOrder { layout: layout.clone(), key, window_blocks: window_blocks.max(1), order: Arc::new(order), cum: Arc::new(cum) }
    }

    /// Number of positions (lines).
    pub fn len(&self) -> u64 {
        self.cum.last().copied().unwrap_or(0)
    }

    /// True when there is nothing to order.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of windows.
    pub fn num_windows(&self) -> u64 {
        self.layout.num_blocks().div_ceil(self.window_blocks)
    }

    /// The block-order indices of window `w`.
    fn window_span(&self, w: u64) -> Range<usize> {
        let nb = self.order.len() as u64;
        (w * self.window_blocks).min(nb) as usize..((w + 1) * self.window_blocks).min(nb) as usize
    }

    /// The positions window `w` serves.
    pub fn window_positions(&self, w: u64) -> Range<u64> {
        let s = self.window_span(w);
        self.cum[s.start]..self.cum[s.end]
    }

    /// The window serving `position`.
    pub fn window_of(&self, position: u64) -> u64 {
        let (mut lo, mut hi) = (0, self.num_windows());
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            if self.window_positions(mid).start <= position {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The blocks of window `w`, as line ranges, in block order.
    pub fn window_blocks(&self, w: u64) -> impl Iterator<Item = Range<u64>> + '_ {
        self.order[self.window_span(w)].iter().map(|&b| self.layout.block(b))
    }

    fn window_permutation(&self, w: u64) -> Permutation {
        let r = self.window_positions(w);
        Permutation::new(mix64(self.key ^ mix64(w.wrapping_add(0xbb67_ae85_84ca_a73b))), r.end - r.start)
    }

    /// The line at window-relative position `r` of window `w` (whose blocks are `span`).
    #[inline]
    fn line_at(&self, span: &Range<usize>, base: u64, r: u64) -> u64 {
        let abs = base + r;
        let cum = &self.cum[span.start..=span.end];
        let i = span.start + cum.partition_point(|&c| c <= abs) - 1;
        self.layout.starts[self.order[i] as usize] + (abs - self.cum[i])
    }

    /// The line served at `position`.
    ///
    /// # Panics
    /// If `position >= len()`.
    pub fn get(&self, position: u64) -> u64 {
        assert!(position < self.len(), "position {position} out of range for {} lines", self.len());
        let w = self.window_of(position);
        let base = self.window_positions(w).start;
        let r = self.window_permutation(w).get(position - base);
        self.line_at(&self.window_span(w), base, r)
    }

    /// Appends the lines served at `positions` to `out`, window by window.
    pub fn fill(&self, positions: Range<u64>, out: &mut Vec<u64>) {
        assert!(positions.end <= self.len(), "positions {positions:?} out of range for {} lines", self.len());
        let mut p = positions.start;
        while p < positions.end {
            let w = self.window_of(p);
            let win = self.window_positions(w);
            let end = positions.end.min(win.end);
            let first = out.len();
            self.window_permutation(w).fill(p - win.start..end - win.start, out);
            let span = self.window_span(w);
            for v in &mut out[first..] {
                *v = self.line_at(&span, win.start, *v);
            }
            p = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, written as plainly as possible: the same block order, then each
    /// window's lines listed in block order and permuted by the window's permutation.
    fn naive(order: &BlockOrder) -> Vec<u64> {
        let mut out = Vec::new();
        for w in 0..order.num_windows() {
            let lines: Vec<u64> = order.window_blocks(w).flatten().collect();
            let perm = order.window_permutation(w);
            out.extend((0..lines.len() as u64).map(|q| lines[perm.get(q) as usize]));
        }
        out
    }

    #[test]
    fn a_permutation_equal_to_the_definition_with_random_access() {
        let cuts: Vec<u64> = vec![0, 3, 3, 10, 11, 40, 41, 42, 60, 100];
        let layout = BlockLayout::from_starts(cuts);
        assert_eq!(layout.num_blocks(), 8);
        for w in [1, 2, 3, 8, 100] {
            for epoch in 0..4 {
                let order = BlockOrder::new(7, epoch, &layout, w);
                let want = naive(&order);
                let got: Vec<u64> = (0..order.len()).map(|p| order.get(p)).collect();
                assert_eq!(got, want);
                let mut filled = Vec::new();
                order.fill(0..37, &mut filled);
                order.fill(37..100, &mut filled);
                assert_eq!(filled, want);
                let mut sorted = got.clone();
                sorted.sort();
                assert_eq!(sorted, (0..100).collect::<Vec<_>>());
            }
        }
        let a: Vec<u64> = (0..100).map(|p| BlockOrder::new(7, 0, &layout, 2).get(p)).collect();
        let b: Vec<u64> = (0..100).map(|p| BlockOrder::new(7, 1, &layout, 2).get(p)).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn empty() {
        let layout = BlockLayout::from_starts(vec![0]);
        let order = BlockOrder::new(1, 0, &layout, 4);
        assert_eq!((order.len(), order.num_windows()), (0, 0));
        let mut out = vec![];
        order.fill(0..0, &mut out);
        assert!(out.is_empty());
    }
}
