//! Which batches a consumer reads: a shard of an epoch (workers, ranks, a resumed run), or
//! a rectangle of `(epoch, batch)` units cut into partitions (SQL, Polars). One type for
//! each, used by every adapter.

use std::ops::Range;

use crate::error::{Error, Result};

/// One of `count` consumers that split every epoch's batches without talking to each
/// other: shard `index` serves the batches whose rank in the epoch's remaining batches is
/// `index` modulo `count`. Ranks × workers number their shards `rank * workers + worker`,
/// so that `N` shards interleaved round-robin serve exactly the order of one process.
///
/// ```
/// use mmap_batcher::Shard;
/// let s = Shard::of(1, 2, 0, 3)?; // rank 1 of 2, worker 0 of 3
/// assert_eq!((s.index, s.count), (3, 6));
/// assert!(Shard::new(4, 4).is_err());
/// # Ok::<(), mmap_batcher::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u64,
    /// Number of shards.
    pub count: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl Shard {
    /// The one shard that serves everything.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; an error unless `index < count`.
    pub fn new(index: u64, count: u64) -> Result<Self> {
        if count == 0 {
            return Err(Error::InvalidOption { message: "the number of shards must be at least 1".into() });
        }
        if index >= count {
            return Err(Error::InvalidOption { message: format!("shard {index} is out of range for {count} shards") });
        }
        Ok(Shard { index, count })
    }

    /// The shard of worker `worker` of `workers` on rank `rank` of `world_size`.
    pub fn of(rank: u64, world_size: u64, worker: u64, workers: u64) -> Result<Self> {
        let check = |what: &str, i: u64, n: u64| {
            if n == 0 {
                Err(Error::InvalidOption { message: format!("the number of {what}s must be at least 1") })
            } else if i >= n {
                Err(Error::InvalidOption { message: format!("{what} {i} is out of range for {n} {what}s") })
            } else {
                Ok(())
            }
        };
        check("rank", rank, world_size)?;
        check("worker", worker, workers)?;
        let count = world_size.checked_mul(workers).ok_or_else(|| Error::InvalidOption { message: "too many shards".into() })?;
        Shard::new(rank * workers + worker, count)
    }
}

/// The batches of an epoch already served when a run resumes: every batch before
/// `position`, and the few after it listed in `served_ahead` (shards that were ahead of
/// the slowest one when the state was taken).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Served {
    /// The first batch of the epoch's order not yet served.
    pub position: u64,
    /// Batches after `position` already served, ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub served_ahead: Vec<u64>,
}

impl Served {
    /// Nothing served yet.
    pub const NONE: Served = Served { position: 0, served_ahead: Vec::new() };

    /// The `t`-th batch not yet served (`t` counted from 0).
    #[inline]
    pub fn select(&self, t: u64) -> u64 {
        let mut v = self.position + t;
        for &s in &self.served_ahead {
            if s <= v {
                v += 1;
            } else {
                break;
            }
        }
        v
    }

    /// How many of the batches before `end` are not yet served.
    pub fn remaining(&self, end: u64) -> u64 {
        let ahead = self.served_ahead.iter().filter(|&&s| s < end).count() as u64;
        end.saturating_sub(self.position).saturating_sub(ahead)
    }

    /// The rank among the not-yet-served batches of `batch` (which must not be served).
    pub fn rank(&self, batch: u64) -> u64 {
        batch - self.position - self.served_ahead.iter().filter(|&&s| s < batch).count() as u64
    }

    /// Checks the invariants (ascending, after `position`, before `num_batches`).
    pub fn validate(&self, num_batches: u64) -> Result<()> {
        let ok = self.position <= num_batches
            && self.served_ahead.windows(2).all(|w| w[0] < w[1])
            && self.served_ahead.iter().all(|&s| s > self.position && s < num_batches);
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidState {
                message: format!(
                    "served batches (position {}, {} served ahead) do not fit an epoch of {num_batches} batches",
                    self.position,
                    self.served_ahead.len()
                ),
            })
        }
    }
}

/// The batches one shard serves in one epoch, in order.
///
/// ```
/// use mmap_batcher::{Served, Shard, ShardPlan};
/// let p = ShardPlan::new(10, Served::NONE, Shard::new(1, 3)?, false);
/// assert_eq!(p.batches().collect::<Vec<_>>(), vec![1, 4, 7]);
/// let even = ShardPlan::new(10, Served::NONE, Shard::new(1, 3)?, true);
/// assert_eq!(even.len(), 3); // 9 of 10 batches served, 3 per shard
/// // Resumed after batches 0..4 and 5: the rest split over two new shards.
/// let served = Served { position: 4, served_ahead: vec![5] };
/// let a = ShardPlan::new(10, served.clone(), Shard::new(0, 2)?, false);
/// let b = ShardPlan::new(10, served, Shard::new(1, 2)?, false);
/// assert_eq!((a.batches().collect::<Vec<_>>(), b.batches().collect::<Vec<_>>()), (vec![4, 7, 9], vec![6, 8]));
/// # Ok::<(), mmap_batcher::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    served: Served,
    shard: Shard,
    /// How many batches this shard serves.
    len: u64,
}

impl ShardPlan {
    /// Shard `shard`'s batches of an epoch of `num_batches` batches of which `served` are
    /// served already; with `even`, every shard serves the same number (the remainder of
    /// the epoch's order is dropped).
    pub fn new(num_batches: u64, served: Served, shard: Shard, even: bool) -> Self {
        let remaining = served.remaining(num_batches);
        let len = if even { remaining / shard.count } else { remaining.saturating_sub(shard.index).div_ceil(shard.count) };
        ShardPlan { served, shard, len }
    }

    /// Number of batches this shard serves.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when this shard serves nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The shard.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// What was served before this plan started.
    pub fn served(&self) -> &Served {
        &self.served
    }

    /// The `i`-th batch this shard serves.
    pub fn get(&self, i: u64) -> Option<u64> {
        (i < self.len).then(|| self.served.select(self.shard.index + i * self.shard.count))
    }

    /// The `(epoch, batch)` units this shard still serves of epoch `epoch` once `done` of
    /// its batches are served: what a resumed reader streams.
    pub fn units_after(self, epoch: u64, done: u64) -> impl Iterator<Item = (u64, u64)> + Send + 'static {
        (done..self.len).filter_map(move |i| self.get(i)).map(move |b| (epoch, b))
    }

    /// The batches, in order.
    pub fn batches(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.len).map(move |i| self.served.select(self.shard.index + i * self.shard.count))
    }
}

/// A rectangle of `(epoch, batch)` units, read epoch by epoch, batch by batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Units {
    /// Epochs, half-open.
    pub epochs: Range<u64>,
    /// Batches of every epoch, half-open.
    pub batches: Range<u64>,
}

impl Units {
    fn per_epoch(&self) -> u64 {
        self.batches.end.saturating_sub(self.batches.start)
    }

    /// Number of units (saturating: the callers bound epochs so that it never does).
    pub fn len(&self) -> u64 {
        self.epochs.end.saturating_sub(self.epochs.start).saturating_mul(self.per_epoch())
    }

    /// True for an empty rectangle.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `(epoch, batch)` of unit `u`.
    pub fn get(&self, u: u64) -> (u64, u64) {
        let per = self.per_epoch().max(1);
        (self.epochs.start + u / per, self.batches.start + u % per)
    }

    /// Contiguous runs of units, at most `parts` of them, covering all units in order.
    pub fn split(&self, parts: usize) -> Vec<Range<u64>> {
        let units = self.len();
        let parts = (parts as u64).clamp(1, units.max(1));
        (0..parts)
            .map(|p| {
                let cut = |q: u64| (u128::from(units) * u128::from(q) / u128::from(parts)) as u64;
                cut(p)..cut(p + 1)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever was served before, the shards of any layout together serve every
        /// other batch exactly once, and interleaved round-robin in the epoch's order.
        #[test]
        fn shards_cover_the_rest_exactly_once(
            n in 0u64..60, position in 0u64..60, ahead in proptest::collection::btree_set(0u64..60, 0..8), count in 1u64..9,
        ) {
            let position = position.min(n);
            let served = Served { position, served_ahead: ahead.into_iter().filter(|&s| s > position && s < n).collect() };
            let rest: Vec<u64> = (position..n).filter(|b| !served.served_ahead.contains(b)).collect();
            let plans: Vec<ShardPlan> = (0..count).map(|i| ShardPlan::new(n, served.clone(), Shard::new(i, count).unwrap(), false)).collect();
            let mut interleaved = Vec::new();
            for round in 0.. {
                let before = interleaved.len();
                interleaved.extend(plans.iter().filter_map(|p| p.get(round)));
                if interleaved.len() == before { break; }
            }
            prop_assert_eq!(&interleaved, &rest);
            for b in &rest {
                prop_assert_eq!(served.select(served.rank(*b)), *b);
            }
            let even: Vec<u64> = (0..count).map(|i| ShardPlan::new(n, served.clone(), Shard::new(i, count).unwrap(), true).len()).collect();
            prop_assert!(even.iter().all(|&l| l == rest.len() as u64 / count));
        }
    }

    #[test]
    fn units_split_in_order() {
        let u = Units { epochs: 2..4, batches: 1..4 };
        assert_eq!(u.len(), 6);
        assert_eq!((0..6).map(|i| u.get(i)).collect::<Vec<_>>(), vec![(2, 1), (2, 2), (2, 3), (3, 1), (3, 2), (3, 3)]);
        assert_eq!(u.split(4), vec![0..1, 1..3, 3..4, 4..6]);
        assert_eq!(Units { epochs: 0..0, batches: 0..5 }.split(3), vec![0..0]);
    }
}
