//! The batcher: a corpus, its options and seed, served as epochs of batches.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, DictionaryArray, RecordBatch, RecordBatchOptions, StringArray, UInt32Array, UInt64Array};

use crate::arrow::{line_array, schema, Column, FileView, Utf8Checked};
use crate::corpus::{Corpus, OpenFile};
use crate::error::{Error, Result};
use crate::index::{IndexStatus, LineSpan, Utf8Verdict, MAX_LINE_LEN};
use crate::options::{LineType, Options};
use crate::order::EpochOrder;
use crate::plan::{Served, Shard, ShardPlan};
use crate::source::{Cancel, NeverCancel};
use crate::state::{CorpusIdentity, OrderOptions, State, STATE_FORMAT};

/// A corpus of one or more line files opened for batching. Cloning is cheap (an `Arc`),
/// and every [`Epoch`] and [`Batch`] holds a clone, so they can outlive the value they
/// came from.
///
/// ```
/// # use std::io::Write;
/// # let mut f = tempfile::NamedTempFile::new().unwrap();
/// # write!(f, "one\ntwo two\n# a comment\n\nthree\nfour\nfive").unwrap();
/// use mmap_batcher::{Batcher, IndexCache, Options};
/// let b = Batcher::open(f.path(), Options { batch_size: 2, seed: Some(1), index_cache: IndexCache::Off, ..Default::default() })?;
/// assert_eq!(b.num_lines(), 5);
/// for epoch in b.epochs(2) {
///     let epoch = epoch?;
///     assert_eq!(epoch.num_batches(), 2); // 5 lines, batches of 2, leftover dropped
///     for batch in epoch.batches() {
///         let lines = batch.locate()?; // with their `\n`, as the original
///         assert_eq!(lines.raw_lines().count(), 2);
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
    corpus: Corpus,
    options: Options,
    seed: u64,
    /// The `file` column's dictionary: every path, once.
    file_names: Arc<StringArray>,
    /// Computed on the first resume state.
    identity: std::sync::OnceLock<CorpusIdentity>,
}

/// A seed from the OS's randomness (std seeds `RandomState` from it).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

impl Batcher {
    /// Maps and indexes `path` (`-` is standard input).
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        Self::open_many(&[path.as_ref().to_path_buf()], options)
    }

    /// Maps and indexes the files `paths`, served as one corpus in that order.
    pub fn open_many(paths: &[PathBuf], options: Options) -> Result<Self> {
        Self::open_with(paths, options, &|_| {}, &NeverCancel)
    }

    /// Like [`open_many`](Self::open_many), calling `progress` with the number of bytes
    /// indexed since the last call (from several threads; the files' size is the total)
    /// and asking `cancel` now and then whether to stop.
    pub fn open_with(paths: &[PathBuf], options: Options, progress: &(dyn Fn(u64) + Sync), cancel: &dyn Cancel) -> Result<Self> {
        Self::open_with_limit(paths, options, MAX_LINE_LEN, progress, cancel)
    }

    pub(crate) fn open_with_limit(
        paths: &[PathBuf],
        options: Options,
        max_line_len: u64,
        progress: &(dyn Fn(u64) + Sync),
        cancel: &dyn Cancel,
    ) -> Result<Self> {
        options.validate()?;
        if paths.is_empty() {
            return Err(Error::NoInput { pattern: "(empty list of inputs)".into() });
        }
        let corpus = Corpus::open(paths, &options, max_line_len, progress, cancel)?;
        let seed = options.seed.unwrap_or_else(random_seed);
        let file_names = Arc::new(StringArray::from_iter_values(corpus.paths().map(|p| p.to_string_lossy().into_owned())));
        Ok(Batcher { inner: Arc::new(Inner { corpus, options, seed, file_names, identity: Default::default() }) })
    }

    /// The path of the first (often only) file.
    pub fn path(&self) -> &Path {
        self.inner.corpus.path(0)
    }

    /// The paths of the corpus's files, in line-id order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.inner.corpus.paths()
    }

    /// Number of files.
    pub fn num_files(&self) -> usize {
        self.inner.corpus.num_files()
    }

    /// The options in force (with `seed` as given; see [`seed`](Self::seed) for the one used).
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The shuffle seed in use: the one given, or the one picked at open time.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// Number of kept (served) lines of all files.
    pub fn num_lines(&self) -> u64 {
        self.inner.corpus.num_lines()
    }

    /// Number of physical lines, skipped ones included.
    pub fn physical_lines(&self) -> u64 {
        self.inner.corpus.physical_lines()
    }

    /// The line ids of file `f`.
    pub fn file_lines(&self, f: usize) -> std::ops::Range<u64> {
        self.inner.corpus.file_lines(f)
    }

    /// How the index of file `f` was obtained (and which index file it lives in).
    pub fn index_status(&self, f: usize) -> &IndexStatus {
        self.inner.corpus.index_status(f)
    }

    /// Whether every served line of file `f` is UTF-8 (known from its index).
    pub fn utf8_verdict(&self, f: usize) -> Utf8Verdict {
        self.inner.corpus.utf8(f)
    }

    /// The identity of file `f` when it was indexed.
    pub fn identity(&self, f: usize) -> &crate::source::Identity {
        self.inner.corpus.identity(f)
    }

    /// What the open had to say: stale index files rebuilt, indexes kept in memory only.
    pub fn notices(&self) -> &[String] {
        self.inner.corpus.notices()
    }

    /// True when reads are planned for a corpus larger than memory (see [`IoPolicy`](crate::IoPolicy)).
    pub fn reads_from_disk(&self) -> bool {
        self.inner.corpus.io() != crate::source::ResolvedIo::Cached
    }

    /// Where the block shuffle cuts the corpus (one block for the other modes).
    pub fn block_layout(&self) -> &crate::order::BlockLayout {
        self.inner.corpus.blocks()
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

    /// Lines served in every epoch by all shards together: all kept lines, less the
    /// dropped leftovers.
    pub fn lines_per_epoch(&self) -> u64 {
        self.num_lines().min(self.num_batches() * self.inner.options.batch_size as u64)
    }

    /// Lines in batch `b` of any epoch (0 past the end).
    pub fn batch_len(&self, b: u64) -> u64 {
        if b >= self.num_batches() {
            return 0;
        }
        let size = self.inner.options.batch_size as u64;
        size.min(self.num_lines() - b * size)
    }

    /// The default columns: the five of a single file, and `file` for several files.
    pub fn default_columns(&self) -> Vec<Column> {
        Column::defaults(self.num_files())
    }

    /// The address ranges of the files mapped now: every non-inline view points inside one.
    pub fn map_address_ranges(&self) -> Vec<std::ops::Range<usize>> {
        (0..self.num_files()).filter_map(|f| self.inner.corpus.file(f).ok()).map(|f| f.source.address_range()).collect()
    }

    /// The bytes of line `id` (terminator included), copied.
    pub fn line_bytes(&self, id: u64) -> Result<Vec<u8>> {
        if id >= self.num_lines() {
            return Err(Error::InvalidOption { message: format!("line {id} out of range for {} lines", self.num_lines()) });
        }
        let (f, k) = self.inner.corpus.locate(id);
        let file = self.inner.corpus.file(f)?;
        file.source.check_unchanged()?;
        let span = file.span(k);
        if self.inner.corpus.io() == crate::source::ResolvedIo::DiskLines {
            // Read, not copied from the map (see `Options::trust_files`).
            let range = span.start..span.end;
            let (bytes, _) = crate::source::read_ranges(file.source.random_reader(), &[range]).map_err(|e| Error::from_io(file.source.path(), e))?;
            return Ok(bytes);
        }
        Ok(file.source.bytes()[span.range()].to_vec())
    }

    /// The id of the kept line with physical line number `number` in file `f`, if that line is kept.
    pub fn line_id(&self, f: usize, number: u64) -> Result<Option<u64>> {
        let file = self.inner.corpus.file(f)?;
        let k = file.index.first_at_or_after_line(number);
        Ok((k < file.index.len() && file.index.line_number(k) == number).then(|| self.file_lines(f).start + k))
    }

    /// The kept line of file `f` whose bytes contain byte `offset`, if any.
    pub fn line_id_at_offset(&self, f: usize, offset: u64) -> Result<Option<u64>> {
        let file = self.inner.corpus.file(f)?;
        Ok(file.index.line_containing(offset, file.source.bytes()).map(|k| self.file_lines(f).start + k))
    }

    /// `(file, 1-based line number, byte offset)` of line `id`.
    pub fn line_position(&self, id: u64) -> Result<(usize, u64, u64)> {
        let (f, k) = self.inner.corpus.locate(id);
        let file = self.inner.corpus.file(f)?;
        Ok((f, file.index.line_number(k), file.index.start(k)))
    }

    /// Epoch `epoch`, after checking that no file changed since it was indexed.
    pub fn epoch(&self, epoch: u64) -> Result<Epoch> {
        for f in 0..self.num_files() {
            self.inner.corpus.file(f)?.source.check_path_unchanged()?;
        }
        let o = &self.inner.options;
        let order = EpochOrder::new(self.inner.seed, epoch, o.shuffle, self.inner.corpus.blocks());
        Ok(Epoch { batcher: self.clone(), number: epoch, order: Arc::new(order) })
    }

    /// Epochs `0..count`, each checked as in [`epoch`](Self::epoch).
    pub fn epochs(&self, count: u64) -> impl Iterator<Item = Result<Epoch>> + '_ {
        (0..count).map(move |e| self.epoch(e))
    }

    /// Checks that every served line is UTF-8 (known from the indexes): the error names
    /// the first bad line.
    pub fn validate_utf8(&self) -> Result<()> {
        for f in 0..self.num_files() {
            if let Utf8Verdict::Invalid { line_id, offset } = self.inner.corpus.utf8(f) {
                let file = self.inner.corpus.file(f)?;
                return Err(Error::InvalidUtf8 {
                    path: self.inner.corpus.path(f).to_path_buf(),
                    line_number: file.index.line_number(line_id),
                    byte_offset: offset,
                });
            }
        }
        Ok(())
    }

    /// What a resume state records of this corpus: sizes, line count and a fingerprint of
    /// sampled bytes of every file (computed once).
    pub fn corpus_identity(&self) -> Result<CorpusIdentity> {
        if let Some(id) = self.inner.identity.get() {
            return Ok(id.clone());
        }
        let corpus = &self.inner.corpus;
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        let mut mix = |v: u64| hash = crate::order::mix64(hash ^ v);
        let (mut bytes, mut mtime) = (0u64, i64::MIN);
        for f in 0..corpus.num_files() {
            let file = corpus.file(f)?;
            let data = file.source.bytes();
            let len = data.len();
            bytes += len as u64;
            mtime = mtime.max(file.source.identity().mtime_ns);
            mix(len as u64);
            mix(file.index.len());
            let mut sample = |range: std::ops::Range<usize>| {
                for chunk in data[range].chunks(8) {
                    let mut w = [0u8; 8];
                    w[..chunk.len()].copy_from_slice(chunk);
                    mix(u64::from_le_bytes(w));
                }
            };
            sample(0..len.min(4096));
            sample(len.saturating_sub(4096)..len);
            for i in 1..=16 {
                let at = len / 17 * i;
                sample(at..(at + 64).min(len));
            }
        }
        let id = CorpusIdentity { files: corpus.num_files() as u64, bytes, lines: self.num_lines(), mtime_ns: mtime, fingerprint: hash };
        Ok(self.inner.identity.get_or_init(|| id).clone())
    }

    /// The resume state of shard `shard` that served `done` batches of its plan in epoch
    /// `epoch` after `base` (see [`state`](crate::state)).
    pub fn state(&self, epoch: u64, base: Served, shard: Shard, done: u64) -> Result<State> {
        Ok(State {
            format: STATE_FORMAT,
            seed: self.seed(),
            epoch,
            base,
            shard,
            done,
            order: OrderOptions::of(self.options()),
            corpus: self.corpus_identity()?,
        })
    }

    /// Where shard `shard` resumes from `state`: `(epoch, base, batches of its plan done)`.
    /// The state must match this batcher (corpus, order options, seed); a shard's own
    /// state resumes that shard, a combined one ([`combine_states`](Self::combine_states))
    /// any shard of any layout.
    pub fn resume_point(&self, state: &State, shard: Shard) -> Result<(u64, Served, u64)> {
        state.check_matches(self.seed(), &OrderOptions::of(self.options()), &self.corpus_identity()?)?;
        let nb = self.num_batches();
        state.base.validate(nb)?;
        if state.epoch == u64::MAX {
            return Err(Error::InvalidState { message: format!("epoch {} is out of range", state.epoch) });
        }
        if state.shard == shard {
            let plan = ShardPlan::new(nb, state.base.clone(), shard, self.options().even_shards);
            if state.done > plan.len() {
                return Err(Error::InvalidState { message: format!("the state served {} batches of a plan of {}", state.done, plan.len()) });
            }
            return Ok((state.epoch, state.base.clone(), state.done));
        }
        match state.served(nb) {
            Some(served) => Ok((state.epoch, served, 0)),
            None => Err(Error::StateMismatch {
                what: format!(
                    "the state is shard {} of {}, this batcher is shard {} of {}; to resume with another layout, \
                     combine the states of all {} shards first \
                     (or, for ranks that ran in lockstep, one rank's states with lockstep)",
                    state.shard.index, state.shard.count, shard.index, shard.count, state.shard.count
                ),
            }),
        }
    }

    /// Combines the states of all shards of one layout into one any layout can load.
    pub fn combine_states(&self, states: &[State]) -> Result<State> {
        crate::state::combine(states, self.num_batches(), self.options().even_shards)
    }

    /// [`combine_states`](Self::combine_states) of every rank's states, made from one
    /// rank's (see [`state::lockstep`](crate::state::lockstep)): elastic resume from rank 0's
    /// checkpoint when the ranks ran in lockstep.
    pub fn combine_lockstep_states(&self, one_rank: &[State]) -> Result<State> {
        self.combine_states(&crate::state::lockstep(one_rank)?)
    }

    pub(crate) fn corpus(&self) -> &Corpus {
        &self.inner.corpus
    }

    /// [`locate`](Self::locate); with `resolve_gaps` false, lines followed by skipped
    /// lines keep the span up to the next kept line, to be cut at their newline once read
    /// ([`Located::read_into_memory`] does).
    pub(crate) fn locate_with(&self, ids: &[u64], resolve_gaps: bool) -> Result<Located> {
        let corpus = &self.inner.corpus;
        let mut files: Vec<Arc<OpenFile>> = Vec::new();
        let mut file_ids: Vec<usize> = Vec::new();
        let mut slots: Vec<u32> = Vec::new();
        let mut locals: Vec<u64> = Vec::with_capacity(ids.len());
        if corpus.num_files() == 1 {
            files.push(corpus.file(0)?);
            locals.extend_from_slice(ids);
        } else {
            slots.reserve(ids.len());
            // File -> slot in this batch: a table for up to 64 Ki files, a map beyond.
            let mut table = (corpus.num_files() <= 1 << 16).then(|| vec![u32::MAX; corpus.num_files()]);
            let mut map = std::collections::HashMap::new();
            for &id in ids {
                let (f, k) = corpus.locate(id);
                let known = match &table {
                    Some(t) => Some(t[f]).filter(|&s| s != u32::MAX),
                    None => map.get(&f).copied(),
                };
                let slot = match known {
                    Some(s) => s,
                    None => {
                        files.push(corpus.file(f)?);
                        file_ids.push(f);
                        let s = files.len() as u32 - 1;
                        match &mut table {
                            Some(t) => t[f] = s,
                            None => {
                                map.insert(f, s);
                            }
                        }
                        s
                    }
                };
                slots.push(slot);
                locals.push(k);
            }
        }
        // Gather first, in a loop of a few instructions a line: its cache misses overlap
        // by the dozen, where a loop that also decodes lets only a few be in flight (the
        // profile of the core bench showed that loop waiting).
        let slot_of = |i: usize| slots.get(i).copied().unwrap_or(0) as usize;
        let gathered: Vec<[u64; 2]> = if files.len() == 1 {
            let records = files[0].index.raw_records();
            locals.iter().map(|&k| [records[k as usize], records[k as usize + 1]]).collect()
        } else {
            let records: Vec<&[u64]> = files.iter().map(|f| f.index.raw_records()).collect();
            locals
                .iter()
                .zip(&slots)
                .map(|(&k, &slot)| {
                    let records = records[slot as usize];
                    [records[k as usize], records[k as usize + 1]]
                })
                .collect()
        };
        let mut spans = Vec::with_capacity(ids.len());
        let mut gaps = Vec::new();
        for (i, (&k, &[rec, next])) in locals.iter().zip(&gathered).enumerate() {
            let file = &files[slot_of(i)];
            let (span, gap) = file.index.span_before_gap(rec, next, file.source.bytes());
            if gap {
                gaps.push(i);
            }
            spans.push(span);
            let _ = k;
        }
        // Lines followed by skipped lines (a few percent) end at their first newline:
        // touch them all first, so their cache misses overlap, then search.
        if resolve_gaps && !gaps.is_empty() {
            let touched = gaps.iter().fold(0u8, |acc, &i| {
                let bytes = files[slot_of(i)].source.bytes();
                acc ^ bytes.get(spans[i].start as usize).copied().unwrap_or(0)
            });
            std::hint::black_box(touched);
            for &i in &gaps {
                let file = &files[slot_of(i)];
                spans[i] = file.index.span_after_gap(locals[i], spans[i], file.source.bytes());
            }
            gaps.clear();
        }
        let recs = gathered.into_iter().map(|[rec, _]| rec).collect();
        Ok(Located { files, file_ids, slots, locals, recs, spans, gaps, owned: None })
    }
}

/// One epoch: a fixed order of the kept lines, cut into batches.
#[derive(Debug, Clone)]
pub struct Epoch {
    batcher: Batcher,
    number: u64,
    order: Arc<EpochOrder>,
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
        self.located(true)
    }

    /// The batch's lines found; with `prepare`, checked unchanged and their cache misses
    /// overlapped for a caller about to read them (`record_batch` checks and touches on its
    /// own). Lines of files others can write, or read at random from disk, are read into a
    /// buffer of the batch's own either way, never viewed in the map.
    fn located(&self, prepare: bool) -> Result<Located> {
        use crate::source::ResolvedIo;
        let io = self.batcher.corpus().io();
        let mut located = self.batcher.locate_with(&self.ids, io != ResolvedIo::DiskLines)?;
        if prepare {
            located.check_unchanged()?;
        }
        match io {
            ResolvedIo::Cached if prepare => located.touch(true),
            ResolvedIo::DiskLines => located.read_into_memory()?,
            _ => {}
        }
        Ok(located)
    }

    /// All default columns as an Arrow batch; the `line` views point into the map (zero-copy).
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        self.to_record_batch_with(&self.batcher.default_columns())
    }

    /// Only `columns`, in that order: a batch without [`Column::Line`] never reads the map.
    pub fn to_record_batch_with(&self, columns: &[Column]) -> Result<RecordBatch> {
        let located = self.located(false)?;
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

/// A batch's lines found in their files: owned, so it can be made on one thread (the
/// read-ahead of [`BatchStream`](crate::BatchStream)) and used on another.
#[derive(Debug)]
pub struct Located {
    files: Vec<Arc<OpenFile>>,
    /// Corpus index of each of `files` (empty for a one-file corpus: file 0).
    file_ids: Vec<usize>,
    /// Per line: its index into `files` (empty when there is one file).
    slots: Vec<u32>,
    /// Per line: its id within its file.
    locals: Vec<u64>,
    /// Per line: its index record.
    recs: Vec<u64>,
    /// Per line: where it lies.
    spans: Vec<LineSpan>,
    /// Lines whose span still runs to the next kept line (see [`Batcher::locate_with`]).
    gaps: Vec<usize>,
    /// The lines read into memory (global shuffle from disk): the buffer, and each line's
    /// span in it.
    owned: Option<(arrow::buffer::Buffer, Vec<LineSpan>)>,
}

impl Located {
    /// Number of lines.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True for no lines.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    #[inline(always)]
    fn file(&self, i: usize) -> &OpenFile {
        &self.files[self.slots.get(i).copied().unwrap_or(0) as usize]
    }

    /// Checks that every line read into `buffer` is UTF-8 (the bytes read, not the index's
    /// verdict: they may have changed since), naming the first that is not.
    fn check_owned_utf8(&self, buffer: &arrow::buffer::Buffer, spans: &[LineSpan], keep_terminator: bool) -> Result<()> {
        let bytes = buffer.as_slice();
        for (i, s) in spans.iter().enumerate() {
            let line = bytes.get(s.served_range(keep_terminator)).unwrap_or_default();
            if let Err(e) = simdutf8::compat::from_utf8(line) {
                let file = self.file(i);
                let line_number = self.line_numbers().nth(i).unwrap_or(0);
                return Err(Error::InvalidUtf8 {
                    path: file.source.path().to_path_buf(),
                    line_number,
                    byte_offset: self.spans[i].start + e.valid_up_to() as u64,
                });
            }
        }
        Ok(())
    }

    /// Checks (one `fstat` per file) that the files are unchanged since they were indexed.
    pub fn check_unchanged(&self) -> Result<()> {
        self.files.iter().try_for_each(|f| f.source.check_unchanged())
    }

    /// Line `i`'s bytes and span in them: the file's map, or the buffer it was read into.
    #[inline]
    fn source_of(&self, i: usize) -> (&[u8], &LineSpan) {
        match &self.owned {
            Some((buffer, spans)) => (buffer.as_slice(), &spans[i]),
            None => (self.file(i).source.bytes(), &self.spans[i]),
        }
    }

    /// The one buffer every line is in, when there is one (a single file's map, or the
    /// lines read into memory): the per-line loops below then skip the file lookup.
    fn single_source(&self) -> Option<(&[u8], &[LineSpan])> {
        match &self.owned {
            Some((buffer, spans)) => Some((buffer.as_slice(), spans)),
            None if self.files.len() == 1 => Some((self.files[0].source.bytes(), &self.spans)),
            None => None,
        }
    }

    /// The lines as they are in the file, terminator included: the original `list[bytes]`.
    pub fn raw_lines(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let single = self.single_source();
        (0..self.len()).map(move |i| match single {
            Some((bytes, spans)) => &bytes[spans[i].range()],
            None => {
                let (bytes, s) = self.source_of(i);
                &bytes[s.range()]
            }
        })
    }

    /// The lines as the `line` column serves them (terminator dropped unless `keep_terminator`).
    pub fn lines(&self, keep_terminator: bool) -> impl Iterator<Item = &[u8]> + '_ {
        let single = self.single_source();
        (0..self.len()).map(move |i| match single {
            Some((bytes, spans)) => &bytes[spans[i].served_range(keep_terminator)],
            None => {
                let (bytes, s) = self.source_of(i);
                &bytes[s.served_range(keep_terminator)]
            }
        })
    }

    /// Reads the lines into a buffer of their own with many reads in flight (the global
    /// shuffle from disk): every line is a random read, which the disk serves far faster
    /// in parallel than as page faults one at a time.
    pub(crate) fn read_into_memory(&mut self) -> Result<()> {
        // A line not yet cut at its newline is read up to the bound of the search for it.
        let limit = crate::index::record::LONG_LINE;
        for &i in &self.gaps {
            let s = &mut self.spans[i];
            s.end = s.end.min(s.start + limit);
        }
        let mut buffer = Vec::new();
        let mut spans = vec![LineSpan::default(); self.len()];
        for (slot, file) in self.files.iter().enumerate() {
            let lines: Vec<usize> = (0..self.len()).filter(|&i| self.slots.get(i).copied().unwrap_or(0) as usize == slot).collect();
            let ranges: Vec<std::ops::Range<u64>> = lines.iter().map(|&i| self.spans[i].start..self.spans[i].end).collect();
            let (bytes, offsets) =
                crate::source::read_ranges(file.source.random_reader(), &ranges).map_err(|e| Error::from_io(file.source.path(), e))?;
            let base = buffer.len() as u64;
            buffer.extend_from_slice(&bytes);
            for (&i, &at) in lines.iter().zip(&offsets) {
                let s = self.spans[i];
                spans[i] = LineSpan { start: base + at as u64, end: base + at as u64 + s.len(), terminator: s.terminator };
            }
        }
        for i in std::mem::take(&mut self.gaps) {
            let got = &buffer[spans[i].range()];
            match memchr::memchr(b'\n', got) {
                Some(p) => {
                    spans[i].end = spans[i].start + p as u64 + 1;
                    self.spans[i].end = self.spans[i].start + p as u64 + 1;
                }
                None => {
                    // A line longer than the search bound (rare): its end from the index,
                    // its bytes read again whole.
                    let file = self.file(i);
                    let full = file.index.span_after_gap(
                        self.locals[i],
                        LineSpan { end: self.spans[i].end.max(self.spans[i].start + limit), ..self.spans[i] },
                        file.source.bytes(),
                    );
                    let mut bytes = vec![0u8; full.len() as usize];
                    std::os::unix::fs::FileExt::read_exact_at(file.source.random_reader(), &mut bytes, full.start)
                        .map_err(|e| Error::from_io(file.source.path(), e))?;
                    let at = buffer.len() as u64;
                    buffer.extend_from_slice(&bytes);
                    spans[i] = LineSpan { start: at, end: at + full.len(), terminator: full.terminator };
                    self.spans[i] = full;
                }
            }
            spans[i].terminator = spans[i].terminator.min(spans[i].len() as u32);
            self.spans[i].terminator = spans[i].terminator;
        }
        self.owned = Some((arrow::buffer::Buffer::from_vec(buffer), spans));
        Ok(())
    }

    /// 1-based physical line numbers, in served order.
    pub fn line_numbers(&self) -> impl Iterator<Item = u64> + '_ {
        self.locals.iter().zip(&self.recs).enumerate().map(move |(i, (&k, &rec))| self.file(i).index.line_number_of(k, rec))
    }

    /// Corpus index of the file of each line.
    pub fn file_ids(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).map(move |i| self.slots.get(i).map_or(0, |&s| self.file_ids[s as usize]))
    }

    /// Byte offsets of the lines in their files.
    pub fn byte_offsets(&self) -> impl Iterator<Item = u64> + '_ {
        self.spans.iter().map(|s| s.start)
    }

    /// Reads each line's first byte in one branch-free pass: the page-cache misses of a
    /// shuffled batch overlap here, and the per-line loops that follow (whose length
    /// branches would stall them one by one) read from cache. With `ends`, for callers
    /// about to copy whole lines, each line's last byte is read too.
    pub(crate) fn touch(&self, ends: bool) {
        if self.owned.is_some() {
            return;
        }
        let touch = |bytes: &[u8], s: &LineSpan| {
            let first = bytes.get(s.start as usize).copied().unwrap_or(0);
            let last = if ends { bytes.get((s.end as usize).wrapping_sub(1)).copied().unwrap_or(0) } else { 0 };
            first ^ last
        };
        let touched = if self.files.len() == 1 {
            let bytes = self.files[0].source.bytes();
            self.spans.iter().fold(0u8, |acc, s| acc ^ touch(bytes, s))
        } else {
            let maps: Vec<&[u8]> = self.files.iter().map(|f| f.source.bytes()).collect();
            self.spans.iter().zip(&self.slots).fold(0u8, |acc, (s, &slot)| acc ^ touch(maps[slot as usize], s))
        };
        std::hint::black_box(touched);
    }

    /// The batch as Arrow arrays: `columns` of batch `number` of `epoch`.
    pub(crate) fn record_batch(&self, batcher: &Batcher, epoch: u64, number: u64, columns: &[Column]) -> Result<RecordBatch> {
        let opts = &batcher.inner.options;
        let n = self.len();
        let arrays = columns
            .iter()
            .map(|c| {
                Ok(match c {
                    Column::Line if self.owned.is_some() => {
                        self.check_unchanged()?;
                        let (buffer, spans) = self.owned.as_ref().ok_or_else(|| Error::InvalidOption { message: "no lines".into() })?;
                        if opts.line_type == LineType::Utf8 {
                            self.check_owned_utf8(buffer, spans, opts.keep_terminator)?;
                        }
                        crate::arrow::owned_line_array(buffer, spans, opts.line_type, opts.keep_terminator)
                            .map_err(|source| Error::Arrow { context: batcher.path().display().to_string(), source })?
                    }
                    Column::Line => {
                        self.touch(false);
                        let views: Vec<FileView<'_>> =
                            self.files.iter().map(|f| FileView { source: &f.source, index: &f.index, windows: &f.windows }).collect();
                        let utf8 = match opts.line_type {
                            LineType::Utf8 => Some(Utf8Checked::check(&views)?),
                            LineType::Binary => {
                                self.check_unchanged()?;
                                None
                            }
                        };
                        line_array(&views, &self.slots, &self.spans, opts.line_type, opts.keep_terminator, utf8.as_ref())?
                    }
                    Column::LineNumber => Arc::new(UInt64Array::from_iter_values(self.line_numbers())) as ArrayRef,
                    Column::ByteOffset => Arc::new(UInt64Array::from_iter_values(self.byte_offsets())) as ArrayRef,
                    Column::Epoch => Arc::new(UInt64Array::from_value(epoch, n)) as ArrayRef,
                    Column::Batch => Arc::new(UInt64Array::from_value(number, n)) as ArrayRef,
                    Column::File => {
                        let keys = UInt32Array::from_iter_values(self.file_ids().map(|f| f as u32));
                        let dict = DictionaryArray::try_new(keys, batcher.inner.file_names.clone())
                            .map_err(|source| Error::Arrow { context: "file column".into(), source })?;
                        Arc::new(dict) as ArrayRef
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        RecordBatch::try_new_with_options(schema(columns, opts.line_type), arrays, &options)
            .map_err(|source| Error::Arrow { context: batcher.path().display().to_string(), source })
    }
}
