//! An epoch's order cut into batches, and one batch: which lines, and the ways to read them.

use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::arrow::Column;
use crate::error::Result;
use crate::order::EpochOrder;
use crate::plan::{Served, Shard, ShardPlan};

use super::{Batcher, Located};

/// One epoch: a fixed order of the kept lines, cut into batches.
#[derive(Debug, Clone)]
pub struct Epoch {
    pub(super) batcher: Batcher,
    pub(super) number: u64,
    pub(super) order: Arc<EpochOrder>,
}

impl Epoch {
    /// The epoch number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The batcher this epoch is of.
    pub fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    /// The order of this epoch (position → line id).
    pub fn order(&self) -> &EpochOrder {
        &self.order
    }

    /// Number of batches in this epoch (all shards together).
    pub fn num_batches(&self) -> u64 {
        self.batcher.num_batches()
    }

    /// Batch `b` of this epoch, or `None` past the end. Random access: batches can be
    /// served in any order, by any worker.
    pub fn batch(&self, b: u64) -> Option<Batch> {
        if b >= self.num_batches() {
            return None;
        }
        let size = self.batcher.inner.options.batch_size as u64;
        let positions = b * size..((b + 1) * size).min(self.order.len());
        let mut ids = Vec::with_capacity((positions.end - positions.start) as usize);
        self.order.fill(positions, &mut ids);
        Some(Batch { batcher: self.batcher.clone(), epoch: self.number, number: b, ids })
    }

    /// The batches of this epoch, in order.
    pub fn batches(&self) -> impl Iterator<Item = Batch> + '_ {
        self.batches_from(0)
    }

    /// The batches of this epoch from batch `first` on: a resumed run starts here (for a
    /// shard, or for a combined state's `served_ahead`, see [`shard_plan`](Self::shard_plan)).
    pub fn batches_from(&self, first: u64) -> impl Iterator<Item = Batch> + '_ {
        (first..self.num_batches()).map_while(|b| self.batch(b))
    }

    /// The batches shard `shard` serves of this epoch, after `served` (see [`ShardPlan`];
    /// `even_shards` from the options).
    ///
    /// ```
    /// # use std::io::Write;
    /// # let mut f = tempfile::NamedTempFile::new().unwrap();
    /// # for i in 0..10 { writeln!(f, "row {i}").unwrap(); }
    /// use mmap_batcher::{Batcher, IndexCache, Options, Served, Shard};
    /// let b = Batcher::open(f.path(), Options { batch_size: 2, index_cache: IndexCache::Off, ..Default::default() })?;
    /// let plan = b.epoch(0)?.shard_plan(Shard::new(1, 2)?, Served::NONE);
    /// assert_eq!(plan.batches().collect::<Vec<_>>(), vec![1, 3]);
    /// # Ok::<(), mmap_batcher::Error>(())
    /// ```
    pub fn shard_plan(&self, shard: Shard, served: Served) -> ShardPlan {
        ShardPlan::new(self.num_batches(), served, shard, self.batcher.inner.options.even_shards)
    }
}

/// One batch: the lines it serves, in served order, and where it sits in its epoch.
#[derive(Debug, Clone)]
pub struct Batch {
    batcher: Batcher,
    epoch: u64,
    number: u64,
    ids: Vec<u64>,
}

impl Batch {
    /// The batcher this batch is of.
    pub fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    /// The epoch this batch belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The batch's position in its epoch.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Never true for a batch served by an epoch (only after [`retain`](Self::retain)).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Line ids (positions in the corpus's index), in served order.
    pub fn line_ids(&self) -> &[u64] {
        &self.ids
    }

    /// Finds the batch's lines in their files, after checking that the files are unchanged.
    pub fn locate(&self) -> Result<Located> {
        let located = self.located(true)?;
        located.check_unchanged()?;
        if self.batcher.corpus().io() == crate::source::ResolvedIo::Cached {
            located.reading(|| {
                located.touch(true);
                Ok(())
            })?;
        }
        Ok(located)
    }

    /// The batch's lines found; with `read`, ready to be read: lines of files others can
    /// write, or read at random from disk, read into a buffer of the batch's own (never
    /// viewed in the map), other files checked unchanged before their lines are cut at
    /// their newlines in the map. Without `read`, nothing of the files is read.
    fn located(&self, read: bool) -> Result<Located> {
        use crate::source::ResolvedIo;
        let mut located = self.batcher.locate_with(&self.ids)?;
        match self.batcher.corpus().io() {
            _ if !read => {}
            ResolvedIo::DiskLines => located.read_into_memory()?,
            _ => located.resolve_gaps()?,
        }
        Ok(located)
    }

    /// All default columns as an Arrow batch; the `line` views point into the map (zero-copy).
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        self.to_record_batch_with(&self.batcher.default_columns())
    }

    /// Only `columns`, in that order: a batch without [`Column::Line`] never reads the map.
    pub fn to_record_batch_with(&self, columns: &[Column]) -> Result<RecordBatch> {
        let located = self.located(self.batcher().reads_lines(columns))?;
        located.record_batch(&self.batcher, self.epoch, self.number, columns)
    }

    /// Keeps only the lines whose id passes `keep` (for filters answered from the index,
    /// such as a range of line numbers), in served order.
    pub fn retain(&mut self, keep: impl FnMut(&u64) -> bool) {
        self.ids.retain(keep);
    }

    /// Keeps only the first `len` lines (for a row limit).
    pub fn truncate(&mut self, len: usize) {
        self.ids.truncate(len);
    }
}
