//! The order in which one epoch serves the kept lines: a pure function of the seed, the
//! epoch number, the line count and the shuffle options (for block mode, also of where
//! the blocks are cut), with random access by position, so any epoch — or any batch of
//! one, for a worker, a rank, a SQL filter or a resumed run — is computed on its own.

mod block;
#[allow(unsafe_code)]
mod feistel;
mod mixture;

pub use block::{BlockLayout, BlockOrder};
pub(crate) use feistel::mix64;
pub use feistel::Permutation;
pub use mixture::{MixSource, MixedOrder, Mixture};

use crate::options::Shuffle;

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The key of epoch `epoch`'s global permutation (unchanged since the first release, so a
/// seed replays the same global order).
pub(crate) fn epoch_key(seed: u64, epoch: u64) -> u64 {
    seed ^ mix64(epoch.wrapping_add(GOLDEN))
}

/// The order of one epoch over `n` kept lines.
#[derive(Debug, Clone)]
pub enum EpochOrder {
    /// File order.
    Sequential {
        /// Number of lines.
        n: u64,
    },
    /// A uniform permutation of all lines.
    Global(Permutation),
    /// Blocks in a random order, lines shuffled within windows of blocks.
    Block(BlockOrder),
    /// Several sources in fixed shares of every batch, each in its own order.
    Mixed(MixedOrder),
}

impl EpochOrder {
    /// The order of epoch `epoch` over the lines of `blocks` (whose cuts matter only to
    /// [`Shuffle::Block`]) under `shuffle` and `seed`.
    ///
    /// ```
    /// use mmap_batcher::{BlockLayout, EpochOrder, Shuffle};
    /// let blocks = BlockLayout::uniform(10, 1); // 10 lines, one block each
    /// let order = EpochOrder::new(42, 0, Shuffle::Global, &blocks);
    /// let mut seen: Vec<u64> = (0..10).map(|p| order.get(p)).collect();
    /// seen.sort();
    /// assert_eq!(seen, (0..10).collect::<Vec<_>>()); // a permutation
    /// assert_eq!(EpochOrder::new(42, 0, Shuffle::Global, &blocks).get(3), order.get(3)); // reproducible
    /// ```
    pub fn new(seed: u64, epoch: u64, shuffle: Shuffle, blocks: &BlockLayout) -> Self {
        let n = blocks.num_lines();
        match shuffle {
            Shuffle::None => EpochOrder::Sequential { n },
            Shuffle::Global => EpochOrder::Global(Permutation::new(epoch_key(seed, epoch), n)),
            Shuffle::Block { window_blocks, .. } => EpochOrder::Block(BlockOrder::new(seed, epoch, blocks, window_blocks)),
        }
    }

    /// Number of positions (lines).
    pub fn len(&self) -> u64 {
        match self {
            EpochOrder::Sequential { n } => *n,
            EpochOrder::Global(p) => p.len(),
            EpochOrder::Block(b) => b.len(),
            EpochOrder::Mixed(m) => m.len(),
        }
    }

    /// True when there is nothing to order.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The line served at `position`.
    ///
    /// # Panics
    /// If `position >= len()`.
    pub fn get(&self, position: u64) -> u64 {
        match self {
            EpochOrder::Sequential { n } => {
                assert!(position < *n, "position {position} out of range for {n} lines");
                position
            }
            EpochOrder::Global(p) => p.get(position),
            EpochOrder::Block(b) => b.get(position),
            EpochOrder::Mixed(m) => m.get(position),
        }
    }

    /// Appends the lines served at `positions` to `out`: the same values as
    /// [`get`](Self::get), computed for a whole batch at once.
    pub fn fill(&self, positions: std::ops::Range<u64>, out: &mut Vec<u64>) {
        match self {
            EpochOrder::Sequential { n } => {
                assert!(positions.end <= *n, "positions {positions:?} out of range for {n} lines");
                out.extend(positions);
            }
            EpochOrder::Global(p) => p.fill(positions, out),
            EpochOrder::Block(b) => b.fill(positions, out),
            EpochOrder::Mixed(m) => m.fill(positions, out),
        }
    }
}
