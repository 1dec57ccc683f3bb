//! The batcher: a mapped file, its line index and options, served as epochs of batches.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;

use crate::arrow_batch::{gather_records, touch_lines, BatchSource, Column, Windows};
use crate::epoch_order::EpochOrder;
use crate::error::{Error, Result};
use crate::line_index::{BuildError, LineIndex, LineRecord, MAX_LINE_LEN};
use crate::mapped_file::MappedFile;
use crate::options::{LineType, Options};
use crate::utf8_check::{first_invalid_served_byte, Utf8Failure};

/// A line file opened for batching. Cloning is cheap (an `Arc`), and every [`Epoch`] and
/// [`Batch`] holds a clone, so they can outlive the value they came from.
///
/// ```
/// # use std::io::Write;
/// # let mut f = tempfile::NamedTempFile::new().unwrap();
/// # write!(f, "one\ntwo two\n# a comment\n\nthree\nfour\nfive").unwrap();
/// use mmap_batcher::{Batcher, Options};
/// let b = Batcher::open(f.path(), Options { batch_size: 2, seed: Some(1), ..Default::default() })?;
/// assert_eq!(b.num_lines(), 5);
/// for epoch in b.epochs(2) {
///     let epoch = epoch?;
///     assert_eq!(epoch.num_batches(), 2); // 5 lines, batches of 2, leftover dropped
///     for batch in epoch.batches() {
///         let lines: Vec<&[u8]> = batch.raw_lines().collect(); // with their `\n`, as the original
///         assert_eq!(lines.len(), 2);
///     }
/// }
/// # Ok::<(), mmap_batcher::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Batcher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: MappedFile,
    index: LineIndex,
    windows: Windows,
    options: Options,
    seed: u64,
    utf8: OnceLock<Option<Utf8Failure>>,
}

/// A seed from the OS's randomness (std seeds `RandomState` from it).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

impl Batcher {
    /// Maps and indexes `path`.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        Self::open_with_progress(path, options, &|_| {})
    }

    /// Like [`open`](Self::open), calling `progress` with the number of bytes indexed
    /// since the last call (from several threads; the file's size is the total).
    pub fn open_with_progress(
        path: impl AsRef<Path>,
        options: Options,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Self> {
        Self::open_with_limit(path.as_ref(), options, MAX_LINE_LEN, progress)
    }

    pub(crate) fn open_with_limit(
        path: &Path,
        options: Options,
        max_line_len: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Self> {
        if options.batch_size == 0 {
            return Err(Error::InvalidOption { path: path.to_path_buf(), message: "batch_size must be at least 1".into() });
        }
        let file = MappedFile::open(path)?;
        let index = LineIndex::build(file.bytes(), options.keep_rules(), max_line_len, progress).map_err(|e| match e {
            BuildError::TooLong { line_number, length } => {
                Error::LineTooLong { path: path.to_path_buf(), line_number, length, limit: max_line_len }
            }
            BuildError::Memory(e) => Error::from_io(path, e),
        })?;
        let windows = Windows::new(&file, &index);
        let seed = options.seed.unwrap_or_else(random_seed);
        Ok(Batcher { inner: Arc::new(Inner { file, index, windows, options, seed, utf8: OnceLock::new() }) })
    }

    /// The path the file was opened with.
    pub fn path(&self) -> &Path {
        self.inner.file.path()
    }

    /// The options in force (with `seed` as given; see [`seed`](Self::seed) for the one used).
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The shuffle seed in use: the one given, or the one picked at open time.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// Number of kept (served) lines.
    pub fn num_lines(&self) -> u64 {
        self.inner.index.len()
    }

    /// Number of physical lines in the file, skipped ones included.
    pub fn physical_lines(&self) -> u64 {
        self.inner.index.physical_lines()
    }

    /// Batches in every epoch: leftovers dropped or kept as the options say; never an empty batch.
    pub fn num_batches(&self) -> u64 {
        let (n, size) = (self.num_lines(), self.inner.options.batch_size as u64);
        if self.inner.options.ignore_leftovers {
            n / size
        } else {
            n.div_ceil(size)
        }
    }

    /// Lines served in every epoch: all kept lines, less the dropped leftovers.
    pub fn lines_per_epoch(&self) -> u64 {
        self.num_lines().min(self.num_batches() * self.inner.options.batch_size as u64)
    }

    /// The line index (kept lines in file order).
    pub fn index(&self) -> &LineIndex {
        &self.inner.index
    }

    /// The address range of the mapping: every non-inline view of a batch points inside it.
    pub fn map_address_range(&self) -> std::ops::Range<usize> {
        self.inner.file.address_range()
    }

    /// The bytes of kept line `k`, terminator included.
    pub fn raw_line(&self, k: u64) -> &[u8] {
        let rec: LineRecord = self.inner.index.record(k);
        &self.inner.file.bytes()[rec.range()]
    }

    /// Epoch `epoch`, after checking that the file has not changed since it was indexed.
    pub fn epoch(&self, epoch: u64) -> Result<Epoch> {
        self.inner.file.check_unchanged()?;
        let o = &self.inner.options;
        Ok(Epoch { batcher: self.clone(), epoch, order: EpochOrder::new(self.inner.seed, epoch, self.num_lines(), o.shuffle) })
    }

    /// Epochs `0..count`, each checked as in [`epoch`](Self::epoch).
    pub fn epochs(&self, count: u64) -> impl Iterator<Item = Result<Epoch>> + '_ {
        (0..count).map(move |e| self.epoch(e))
    }

    /// Checks, once per file (the verdict is cached), that every served line is UTF-8.
    /// Called by the first `Utf8View` batch; the raw-bytes path never needs it.
    pub fn validate_utf8(&self) -> Result<()> {
        let inner = &self.inner;
        match *inner.utf8.get_or_init(|| first_invalid_served_byte(inner.file.bytes(), &inner.index)) {
            None => Ok(()),
            Some((k, offset)) => Err(Error::InvalidUtf8 {
                path: self.path().to_path_buf(),
                line_number: inner.index.line_number(k),
                byte_offset: offset,
            }),
        }
    }

    fn record_batch(&self, ids: &[u64], epoch: u64, batch: u64, columns: &[Column]) -> Result<RecordBatch> {
        let inner = &self.inner;
        if inner.options.line_type == LineType::Utf8 && columns.contains(&Column::Line) {
            self.validate_utf8()?;
        }
        let source = BatchSource {
            file: &inner.file,
            index: &inner.index,
            windows: &inner.windows,
            line_type: inner.options.line_type,
            keep_terminator: inner.options.keep_terminator,
        };
        Ok(source.record_batch(ids, epoch, batch, columns))
    }
}

/// One epoch: a fixed order of the kept lines, cut into batches.
#[derive(Debug, Clone)]
pub struct Epoch {
    batcher: Batcher,
    epoch: u64,
    order: EpochOrder,
}

impl Epoch {
    /// The epoch number.
    pub fn index(&self) -> u64 {
        self.epoch
    }

    /// The order of this epoch (position → kept line).
    pub fn order(&self) -> &EpochOrder {
        &self.order
    }

    /// Number of batches in this epoch.
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
        Some(Batch { batcher: self.batcher.clone(), epoch: self.epoch, index: b, ids })
    }

    /// The batches of this epoch, in order.
    pub fn batches(&self) -> impl Iterator<Item = Batch> + '_ {
        (0..self.num_batches()).map_while(|b| self.batch(b))
    }

    /// The batch numbers shard `shard` of `shards` serves: every `shards`-th batch from
    /// `shard` on. Together the shards serve each batch of the epoch's order exactly once,
    /// so N data-loader workers (or ranks × workers, numbered `rank * workers + worker`)
    /// split one epoch without overlap and without talking to each other.
    ///
    /// ```
    /// # use std::io::Write;
    /// # let mut f = tempfile::NamedTempFile::new().unwrap();
    /// # for i in 0..10 { writeln!(f, "row {i}").unwrap(); }
    /// let b = mmap_batcher::Batcher::open(f.path(), mmap_batcher::Options { batch_size: 2, ..Default::default() })?;
    /// let epoch = b.epoch(0)?;
    /// assert_eq!(epoch.shard_batches(1, 2).collect::<Vec<_>>(), vec![1, 3]);
    /// # Ok::<(), mmap_batcher::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `shards` is 0 or `shard >= shards`.
    pub fn shard_batches(&self, shard: u64, shards: u64) -> impl Iterator<Item = u64> {
        assert!(shard < shards, "shard {shard} out of range for {shards} shards");
        (shard..self.num_batches()).step_by(shards as usize)
    }
}

/// One batch: the kept lines it serves, in served order, and where it sits in its epoch.
#[derive(Debug, Clone)]
pub struct Batch {
    batcher: Batcher,
    epoch: u64,
    index: u64,
    ids: Vec<u64>,
}

impl Batch {
    /// The epoch this batch belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The batch's position in its epoch.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Never true for a batch served by an epoch (only after [`retain`](Self::retain)).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Kept-line indices (positions in the line index), in served order.
    pub fn line_ids(&self) -> &[u64] {
        &self.ids
    }

    /// 1-based physical line numbers, in served order.
    pub fn line_numbers(&self) -> impl Iterator<Item = u64> + '_ {
        self.ids.iter().map(|&k| self.batcher.inner.index.line_number(k))
    }

    /// The lines as they are in the file, terminator included: the original `list[bytes]`.
    pub fn raw_lines(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let bytes = self.batcher.inner.file.bytes();
        self.located_records().into_iter().map(move |r| &bytes[r.range()])
    }

    /// The batch's lines located and brought into cache, as an owned value: a loader can
    /// locate batch `b + 1` on another thread while it consumes batch `b`.
    pub fn locate(&self) -> LocatedLines {
        LocatedLines { batcher: self.batcher.clone(), records: self.located_records() }
    }

    fn located_records(&self) -> Vec<LineRecord> {
        let inner = &self.batcher.inner;
        let recs = gather_records(&inner.index, &self.ids);
        touch_lines(inner.file.bytes(), &recs, true);
        recs
    }

    /// The lines as the `line` column serves them (terminator dropped unless
    /// `keep_terminator`). Bytes: no UTF-8 check.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let keep = self.batcher.inner.options.keep_terminator;
        let bytes = self.batcher.inner.file.bytes();
        self.located_records().into_iter().map(move |r| &bytes[r.served_range(keep)])
    }

    /// All five columns ([`Column::ALL`]) as an Arrow batch; the `line` views point into the map (zero-copy).
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        self.to_record_batch_with(&Column::ALL)
    }

    /// Only `columns`, in that order: a batch without [`Column::Line`] never touches the map.
    pub fn to_record_batch_with(&self, columns: &[Column]) -> Result<RecordBatch> {
        self.batcher.record_batch(&self.ids, self.epoch, self.index, columns)
    }

    /// Keeps only the lines whose kept-line index passes `keep` (for filters answered from
    /// the index, such as a range of line numbers), in served order.
    pub fn retain(&mut self, keep: impl FnMut(&u64) -> bool) {
        self.ids.retain(keep);
    }

    /// Keeps only the first `len` lines (for a row limit).
    pub fn truncate(&mut self, len: usize) {
        self.ids.truncate(len);
    }
}

/// The lines of a batch, located by [`Batch::locate`].
#[derive(Debug)]
pub struct LocatedLines {
    batcher: Batcher,
    records: Vec<LineRecord>,
}

impl LocatedLines {
    /// The lines as they are in the file, terminator included, in served order.
    pub fn raw_lines(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let bytes = self.batcher.inner.file.bytes();
        self.records.iter().map(move |r| &bytes[r.range()])
    }
}
