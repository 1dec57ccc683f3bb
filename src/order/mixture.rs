//! The order of a mixture: several sources, each a contiguous range of line ids, served
//! in fixed shares of every batch.
//!
//! Source `s` serves `M_s` lines per epoch of `L = Σ M_s` (its share `M_s / L`, the
//! weights' apportionment, decided by [`crate::sources`]). A batch of `B` lines holds
//! `f_s = ⌊B·M_s/L⌋` lines of `s`, or one more: the `R = B − Σ f_s` extra lines of each
//! batch go to sources by the PD² Pfair rule (Anderson & Srinivasan), which keeps every
//! source's count after any number of batches within one line of `M_s/L` × the lines
//! served — the sources' fractions `B·M_s/L − f_s` sum to `R`, so it is exactly the
//! schedule of `S` tasks of those weights on `R` processors. The schedule is the same in
//! every epoch; it is replayed from checkpoints kept every [`CHECKPOINT`] batches.
//!
//! Each source reads its own endless stream: pass after pass over its lines, each pass a
//! fresh order of the chosen mode (global, block or file order) keyed by the seed, the
//! source and the pass, so an upsampled source serves each line once per pass and a
//! subsampled one a different subset each epoch, every line once before any repeats.
//! Epoch `e` reads source `s`'s stream positions `e·M_s ..`, so any batch of any epoch is
//! computed on its own. The lines of a batch are shuffled together by a permutation keyed
//! by the epoch and the batch (sources in order in file-order mode).

use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use super::{epoch_key, mix64, BlockLayout, EpochOrder, Permutation};
use crate::options::Shuffle;

/// Batches between two kept states of the schedule.
const CHECKPOINT: u64 = 64;
/// Passes of one source in one epoch kept built (more are built per batch).
const CACHED_PASSES: u64 = 4096;

/// One source of a mixture, as the order sees it.
#[derive(Debug, Clone)]
pub struct MixSource {
    /// Its line ids in the corpus.
    pub lines: Range<u64>,
    /// Lines it serves per epoch.
    pub per_epoch: u64,
    /// Its block cuts, as ids local to the source.
    pub blocks: BlockLayout,
}

/// The sources, the batch size and the extra lines' schedule (see the module docs).
#[derive(Debug)]
pub struct Mixture {
    sources: Vec<MixSource>,
    batch: u64,
    /// `L`: lines per epoch.
    epoch_lines: u64,
    /// `f_s`.
    base: Vec<u64>,
    /// `B·M_s − L·f_s`: source `s`'s share of the extra lines, over `L`.
    extra: Vec<u128>,
    /// Extra lines each source had before batch `i · CHECKPOINT`, flattened.
    checkpoints: Mutex<Vec<u64>>,
}

/// How batch `k` is made: per source, its first line in the epoch's stream and its count.
struct Shares {
    start: Vec<u64>,
    count: Vec<u64>,
}

impl Mixture {
    /// The mixture of `sources` (each serving `per_epoch` lines, at least one line in
    /// all) in batches of `batch` lines.
    pub fn new(sources: Vec<MixSource>, batch: u64) -> Self {
        let batch = batch.max(1);
        let epoch_lines: u64 = sources.iter().map(|s| s.per_epoch).sum();
        let l = u128::from(epoch_lines.max(1));
        let base: Vec<u64> = sources.iter().map(|s| (u128::from(batch) * u128::from(s.per_epoch) / l) as u64).collect();
        let extra = sources.iter().zip(&base).map(|(s, &f)| u128::from(batch) * u128::from(s.per_epoch) - l * u128::from(f)).collect();
        let checkpoints = Mutex::new(vec![0; sources.len()]);
        Mixture { sources, batch, epoch_lines, base, extra, checkpoints }
    }

    /// Lines per epoch.
    pub fn epoch_lines(&self) -> u64 {
        self.epoch_lines
    }

    /// The sources.
    pub fn sources(&self) -> &[MixSource] {
        &self.sources
    }

    /// Full batches per epoch.
    fn full_batches(&self) -> u64 {
        self.epoch_lines / self.batch
    }

    /// The extra lines each source had before batch `k` (a full batch or the partial one).
    fn extras_before(&self, k: u64) -> Vec<u64> {
        let c = k / CHECKPOINT;
        let s = self.sources.len();
        let mut x = {
            let mut kept = self.checkpoints.lock().unwrap_or_else(|p| p.into_inner());
            let mut have = (kept.len() / s) as u64;
            // Extend the checkpoints to `c`, one interval at a time.
            while have <= c {
                let from = kept[kept.len() - s..].to_vec();
                let next = self.replay(from, (have - 1) * CHECKPOINT, have * CHECKPOINT);
                kept.extend_from_slice(&next);
                have += 1;
            }
            kept[c as usize * s..(c as usize + 1) * s].to_vec()
        };
        x = self.replay(x, c * CHECKPOINT, k);
        x
    }

    /// `x` (the extras before batch `from`) advanced to batch `to`.
    fn replay(&self, mut x: Vec<u64>, from: u64, to: u64) -> Vec<u64> {
        let to = to.min(self.full_batches());
        for k in from..to {
            for s in self.extras_of(k, &x) {
                x[s] += 1;
            }
        }
        x
    }

    /// The sources given an extra line in full batch `k`, `x` being their extras before it:
    /// PD² — the earliest pseudo-deadline first, then the successor bit, then the group
    /// deadline; among eligible subtasks (released by batch `k`). Remaining ties rotate
    /// with `k`.
    fn extras_of(&self, k: u64, x: &[u64]) -> Vec<usize> {
        let l = u128::from(self.epoch_lines);
        let n = self.sources.len() as u64;
        let wanted = (self.batch - self.base.iter().sum::<u64>()) as usize;
        // (eligible, deadline, successor bit, group deadline, rotation, source)
        let mut keys: Vec<(bool, u128, bool, u128, u64, usize)> = (0..self.sources.len())
            .filter(|&s| self.extra[s] > 0)
            .map(|s| {
                let w = self.extra[s];
                let j = u128::from(x[s]) + 1;
                let released = u128::from(k) >= (j - 1) * l / w;
                let deadline = (j * l).div_ceil(w);
                let successor = deadline != j * l / w;
                let group = if w == l {
                    u128::MAX
                } else if 2 * w >= l {
                    let rest = l - w;
                    ((deadline * rest).div_ceil(l) * l).div_ceil(rest)
                } else {
                    0
                };
                (!released, deadline, !successor, u128::MAX - group, (s as u64 + n - k % n) % n, s)
            })
            .collect();
        keys.sort_unstable();
        keys.into_iter().take(wanted).map(|key| key.5).collect()
    }

    /// The shares of batch `k` (`k` below the epoch's batch count, the partial one included).
    fn shares(&self, k: u64) -> Shares {
        let x = self.extras_before(k);
        let start: Vec<u64> = self.base.iter().zip(&x).map(|(&f, &x)| k * f + x).collect();
        let count = if k < self.full_batches() {
            let mut count = self.base.clone();
            for s in self.extras_of(k, &x) {
                count[s] += 1;
            }
            count
        } else {
            // The partial batch: what each source has left of its epoch.
            self.sources.iter().zip(&start).map(|(src, &st)| src.per_epoch.saturating_sub(st)).collect()
        };
        Shares { start, count }
    }

    /// How many lines of each source batch `k` holds (for tests and the quality bench).
    pub fn counts(&self, k: u64) -> Vec<u64> {
        self.shares(k).count
    }
}

/// One epoch of a mixture: position → line id, like the other orders.
#[derive(Debug, Clone)]
pub struct MixedOrder {
    mixture: Arc<Mixture>,
    seed: u64,
    epoch: u64,
    shuffle: Shuffle,
    /// Per source: its first pass this epoch and those passes' orders, built on first use.
    passes: Arc<Vec<(u64, Vec<OnceLock<EpochOrder>>)>>,
}

impl MixedOrder {
    /// Epoch `epoch` of `mixture` under `seed` and `shuffle`.
    pub fn new(mixture: Arc<Mixture>, seed: u64, epoch: u64, shuffle: Shuffle) -> Self {
        let passes = mixture
            .sources
            .iter()
            .map(|s| {
                let n = (s.lines.end - s.lines.start).max(1);
                let first = epoch.saturating_mul(s.per_epoch) / n;
                let last = (epoch.saturating_add(1).saturating_mul(s.per_epoch)).saturating_sub(1) / n;
                let count = if s.per_epoch == 0 || last - first >= CACHED_PASSES { 0 } else { last - first + 1 };
                (first, (0..count).map(|_| OnceLock::new()).collect())
            })
            .collect();
        MixedOrder { mixture, seed, epoch, shuffle, passes: Arc::new(passes) }
    }

    /// Number of positions (lines per epoch).
    pub fn len(&self) -> u64 {
        self.mixture.epoch_lines
    }

    /// True for a mixture serving nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The line served at `position`.
    ///
    /// # Panics
    /// If `position >= len()`.
    pub fn get(&self, position: u64) -> u64 {
        let mut out = Vec::with_capacity(1);
        self.fill(position..position + 1, &mut out);
        out[0]
    }

    /// Appends the lines served at `positions` to `out`.
    ///
    /// # Panics
    /// If `positions` reaches past `len()`.
    pub fn fill(&self, positions: Range<u64>, out: &mut Vec<u64>) {
        assert!(positions.end <= self.len(), "positions {positions:?} out of range for {} lines", self.len());
        let b = self.mixture.batch;
        let mut at = positions.start;
        let mut lines = Vec::new();
        let mut slots = Vec::new();
        while at < positions.end {
            let k = at / b;
            let first = k * b;
            let len = b.min(self.len() - first);
            self.batch_lines(k, &mut lines);
            let span = at - first..positions.end.min(first + len) - first;
            if self.shuffle.is_shuffled() {
                slots.clear();
                Permutation::new(self.batch_key(k), len).fill(span.clone(), &mut slots);
                out.extend(slots.iter().map(|&j| lines[j as usize]));
            } else {
                out.extend_from_slice(&lines[span.start as usize..span.end as usize]);
            }
            at = first + len;
        }
    }

    /// The key of batch `k`'s interleaving.
    fn batch_key(&self, k: u64) -> u64 {
        mix64(epoch_key(self.seed, self.epoch) ^ mix64(k ^ 0x5851_f42d_4c95_7f2d))
    }

    /// Batch `k`'s lines, source after source, into `lines`.
    fn batch_lines(&self, k: u64, lines: &mut Vec<u64>) {
        lines.clear();
        let shares = self.mixture.shares(k);
        for (s, src) in self.mixture.sources.iter().enumerate() {
            let n = src.lines.end - src.lines.start;
            let mut p = self.epoch.saturating_mul(src.per_epoch) + shares.start[s];
            let end = p + shares.count[s];
            while p < end {
                let pass = p / n;
                let q = p - pass * n;
                let take = (n - q).min(end - p);
                let before = lines.len();
                self.with_pass(s, pass, |order| order.fill(q..q + take, lines));
                for id in &mut lines[before..] {
                    *id += src.lines.start;
                }
                p += take;
            }
        }
    }

    /// Runs `f` with source `s`'s order of pass `pass`.
    fn with_pass<R>(&self, s: usize, pass: u64, f: impl FnOnce(&EpochOrder) -> R) -> R {
        let (first, cached) = &self.passes[s];
        let build = || {
            let src = &self.mixture.sources[s];
            let key = mix64(self.seed ^ mix64((s as u64).wrapping_add(0x2545_f491_4f6c_dd1d)));
            EpochOrder::new(key, pass, self.shuffle, &src.blocks)
        };
        match pass.checked_sub(*first).and_then(|i| cached.get(i as usize)) {
            Some(slot) => f(slot.get_or_init(build)),
            None => f(&build()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mixture(per_epoch: &[u64], sizes: &[u64], batch: u64) -> Mixture {
        let mut at = 0;
        let sources = per_epoch
            .iter()
            .zip(sizes)
            .map(|(&m, &n)| {
                let s = MixSource { lines: at..at + n, per_epoch: m, blocks: BlockLayout::uniform(n, 3) };
                at += n;
                s
            })
            .collect();
        Mixture::new(sources, batch)
    }

    proptest! {
        /// Every batch holds ⌊w·B⌋ or ⌈w·B⌉ lines of each source (the partial one: within
        /// one line), every source's running count stays within one line of its share, and
        /// the epoch serves exactly `M_s` of each.
        #[test]
        fn shares_are_exact_in_every_batch(
            per_epoch in proptest::collection::vec(0u64..400, 2..7), batch in 1u64..90,
        ) {
            prop_assume!(per_epoch.iter().sum::<u64>() > 0);
            let m = mixture(&per_epoch, &per_epoch.iter().map(|&x| x.max(1)).collect::<Vec<_>>(), batch);
            let l = u128::from(m.epoch_lines());
            let batches = m.epoch_lines().div_ceil(batch);
            let mut served = vec![0u64; per_epoch.len()];
            for k in 0..batches {
                let counts = m.counts(k);
                let len = batch.min(m.epoch_lines() - k * batch);
                prop_assert_eq!(counts.iter().sum::<u64>(), len);
                for (s, &c) in counts.iter().enumerate() {
                    let exact = u128::from(len) * u128::from(per_epoch[s]);
                    prop_assert!(u128::from(c) * l + l > exact && u128::from(c) * l < exact + l, "batch {} source {} count {}", k, s, c);
                    served[s] += c;
                    let due = u128::from(k * batch + len) * u128::from(per_epoch[s]);
                    prop_assert!((u128::from(served[s]) * l).abs_diff(due) < l, "batch {} source {} behind or ahead", k, s);
                }
            }
            prop_assert_eq!(served, per_epoch);
        }

        /// Each epoch is a function of its number with random access: positions read one
        /// at a time, in runs or batch by batch agree; a source serving at most its line
        /// count per epoch never repeats a line before all its lines are served.
        #[test]
        fn random_access_and_passes(
            per_epoch in proptest::collection::vec(1u64..60, 2..5), batch in 1u64..20, seed in any::<u64>(), block in any::<bool>(),
        ) {
            let sizes: Vec<u64> = per_epoch.iter().enumerate().map(|(i, &m)| if i == 0 { (m / 3).max(1) } else { m + 5 }).collect();
            let m = Arc::new(mixture(&per_epoch, &sizes, batch));
            let shuffle = if block { Shuffle::Block { block_bytes: 1, window_blocks: 2 } } else { Shuffle::Global };
            let mut stream: Vec<Vec<u64>> = vec![Vec::new(); sizes.len()];
            for epoch in 0..3 {
                let o = MixedOrder::new(m.clone(), seed, epoch, shuffle);
                let mut whole = Vec::new();
                o.fill(0..o.len(), &mut whole);
                let single: Vec<u64> = (0..o.len()).map(|p| o.get(p)).collect();
                prop_assert_eq!(&whole, &single);
                let again = MixedOrder::new(m.clone(), seed, epoch, shuffle);
                let mut mid = Vec::new();
                again.fill(o.len() / 3..o.len(), &mut mid);
                prop_assert_eq!(&whole[(o.len() / 3) as usize..], &mid[..]);
                for (k, chunk) in whole.chunks(batch as usize).enumerate() {
                    let counts = m.counts(k as u64);
                    let mut lines: Vec<u64> = chunk.to_vec();
                    lines.sort_unstable();
                    for (s, src) in m.sources().iter().enumerate() {
                        let of: Vec<u64> = lines.iter().copied().filter(|id| src.lines.contains(id)).collect();
                        prop_assert_eq!(of.len() as u64, counts[s]);
                        stream[s].extend(of);
                    }
                }
            }
            // Every pass serves each line of its source once: after `P` whole passes and
            // part of one, each line was served `P` or `P + 1` times.
            for (s, ids) in stream.iter().enumerate() {
                let (n, total) = (sizes[s], ids.len() as u64);
                let mut times = std::collections::HashMap::new();
                for id in ids {
                    *times.entry(*id).or_insert(0u64) += 1;
                }
                let more = times.values().filter(|&&t| t == total / n + 1).count() as u64;
                prop_assert!(times.values().all(|&t| t == total / n || t == total / n + 1), "source {} repeats a line within a pass", s);
                prop_assert_eq!(more, total % n);
            }
        }
    }

    #[test]
    fn file_order_keeps_sources_in_order_within_a_batch() {
        let m = Arc::new(mixture(&[4, 4], &[4, 4], 4));
        let o = MixedOrder::new(m, 0, 0, Shuffle::None);
        let all: Vec<u64> = (0..o.len()).map(|p| o.get(p)).collect();
        assert_eq!(all, vec![0, 1, 4, 5, 2, 3, 6, 7]);
    }
}
