//! The batcher: a corpus, its options and seed, served as epochs of batches. The facade
//! lives here; [`epoch`] holds `Epoch` and `Batch`, [`located`] a batch's lines found and
//! read (the I/O strategies), [`assemble`] their Arrow arrays, [`resume`] the states.

mod assemble;
mod epoch;
mod located;
mod records;
mod resume;

pub use epoch::{Batch, Epoch};
pub use located::Located;
pub use records::Value;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::StringArray;

use crate::arrow::Column;
use crate::corpus::Corpus;
use crate::error::{Error, Result};
use crate::index::{IndexStatus, Utf8Verdict};
use crate::options::{Options, Shuffle};
use crate::order::{EpochOrder, MixSource, MixedOrder, Mixture};
use crate::source::{Cancel, NeverCancel};
use crate::sources::{Source, SourceIdentity, SourceInfo};
use crate::state::CorpusIdentity;

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
    /// Shared by the batchers derived from this one ([`Batcher::keeping_leftovers`]).
    corpus: Arc<Corpus>,
    options: Options,
    seed: u64,
    /// The `file` column's dictionary: every path, once.
    file_names: Arc<StringArray>,
    /// Computed on the first resume state.
    identity: std::sync::OnceLock<CorpusIdentity>,
    /// The corpus's notices, and this batcher's own (an epoch without a batch).
    notices: Vec<String>,
    /// The named sources (none for a corpus opened without them).
    sources: Arc<[SourceInfo]>,
    /// The order of the sources' shares, when the epoch is not the corpus once over.
    mixture: Option<Arc<Mixture>>,
    /// The `source` column's dictionary, and each file's key into it.
    source_names: Arc<StringArray>,
    source_of_file: Arc<[u32]>,
    /// The JSON fields asked of each record (`field=`, `fields=`).
    records: Option<Arc<records::Records>>,
}

/// The corpus's notices, and one when these options leave every epoch without a batch.
fn notices(corpus: &Corpus, options: &Options, mixture: Option<&Mixture>) -> Vec<String> {
    let mut notices = corpus.notices().to_vec();
    let lines = mixture.map_or(corpus.num_lines(), Mixture::epoch_lines);
    if lines > 0 && options.ignore_leftovers && lines < options.batch_size as u64 {
        notices.push(format!(
            "{lines} kept lines make no full batch of {}: every epoch is empty (the partial batch is dropped; \
             ignore_leftovers=False / --keep-leftovers serves it)",
            options.batch_size
        ));
    }
    notices
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
        options.validate()?;
        if paths.is_empty() {
            return Err(Error::NoInput { pattern: "(empty list of inputs)".into() });
        }
        let corpus = Arc::new(Corpus::open(paths, &options, progress, cancel)?);
        Self::serving(corpus, options, None)
    }

    /// Maps and indexes the files of several named sources, served as a mixture: every
    /// batch holds each source's share of its lines (the weights', or without weights the
    /// line counts'), each source shuffled in itself (see the guide's "Mixtures").
    ///
    /// ```
    /// # use std::io::Write;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let write = |name: &str, n: usize| { let p = dir.path().join(name); std::fs::write(&p, (0..n).map(|i| format!("{name} {i}\n")).collect::<String>()).unwrap(); p };
    /// use mmap_batcher::{Batcher, IndexCache, Options, Source};
    /// let web = Source { name: "web".into(), paths: vec![write("web", 100)], weight: Some(0.7) };
    /// let code = Source { name: "code".into(), paths: vec![write("code", 10)], weight: Some(0.3) };
    /// let b = Batcher::open_sources(&[web, code], Options { batch_size: 10, seed: Some(1), index_cache: IndexCache::Off, ..Default::default() })?;
    /// assert_eq!(b.sources()[1].per_epoch, 33); // 110 lines per epoch, 30% of them code
    /// let batch = b.epoch(0)?.batch(0).unwrap();
    /// let code_lines = batch.line_ids().iter().filter(|&&id| id >= 100).count();
    /// assert_eq!(code_lines, 3); // 10 × 0.3, in every batch
    /// # Ok::<(), mmap_batcher::Error>(())
    /// ```
    pub fn open_sources(sources: &[Source], options: Options) -> Result<Self> {
        Self::open_sources_with(sources, options, &|_| {}, &NeverCancel)
    }

    /// [`open_sources`](Self::open_sources) with progress and cancellation, as [`open_with`](Self::open_with).
    pub fn open_sources_with(sources: &[Source], options: Options, progress: &(dyn Fn(u64) + Sync), cancel: &dyn Cancel) -> Result<Self> {
        options.validate()?;
        crate::sources::validate(sources)?;
        let paths: Vec<PathBuf> = sources.iter().flat_map(|s| s.paths.iter().cloned()).collect();
        let corpus = Arc::new(Corpus::open(&paths, &options, progress, cancel)?);
        Self::serving(corpus, options, Some(sources))
    }

    /// The batcher of an opened corpus: its sources described and their mixture made.
    fn serving(corpus: Arc<Corpus>, options: Options, sources: Option<&[Source]>) -> Result<Self> {
        let seed = options.seed.unwrap_or_else(random_seed);
        let file_names = Arc::new(StringArray::from_iter_values(corpus.paths().map(|p| p.to_string_lossy().into_owned())));
        let (infos, source_of_file) = match sources {
            Some(sources) => {
                let files = crate::sources::file_ranges(sources, corpus.paths())?;
                let lines: Vec<u64> = files.iter().map(|r| r.clone().map(|f| corpus.file_lines(f).end - corpus.file_lines(f).start).sum()).collect();
                let infos = crate::sources::describe(sources, &files, &lines, options.lines_per_epoch)?;
                let mut of_file = vec![0u32; corpus.num_files()];
                for (s, r) in files.iter().enumerate() {
                    of_file[r.clone()].fill(s as u32);
                }
                (infos, of_file)
            }
            None => (Vec::new(), vec![0u32; corpus.num_files()]),
        };
        let block_mode = matches!(options.shuffle, Shuffle::Block { .. });
        let mix_sources: Vec<MixSource> = if infos.is_empty() {
            let n = corpus.num_lines();
            let per_epoch = options.lines_per_epoch.unwrap_or(n);
            let lines = vec![0..n; 1];
            let whole = SourceInfo { name: String::new(), files: 0..corpus.num_files(), lines: n, weight: 1.0, per_epoch };
            crate::sources::mix_sources(&[whole], &lines, corpus.blocks(), block_mode)
        } else {
            let ranges: Vec<std::ops::Range<u64>> =
                infos.iter().map(|i| corpus.file_lines(i.files.start).start..corpus.file_lines(i.files.end - 1).end).collect();
            crate::sources::mix_sources(&infos, &ranges, corpus.blocks(), block_mode)
        };
        // The corpus once over, in one order, is no mixture: the orders stay the ones a seed
        // gave before sources existed.
        let once_over = mix_sources.len() == 1 && mix_sources[0].per_epoch == corpus.num_lines();
        let mixture = (!once_over).then(|| Arc::new(Mixture::new(mix_sources, options.batch_size as u64)));
        let source_names = Arc::new(StringArray::from_iter_values(infos.iter().map(|i| i.name.clone())));
        let notices = notices(&corpus, &options, mixture.as_deref());
        let records = options
            .records()?
            .map(|fields| Arc::new(records::Records { fields, line_field: options.field.is_some(), policy: options.on_bad_record }));
        if let Some(clash) = options.fields.iter().find(|f| Column::from_name(f, &[]).is_some()) {
            return Err(Error::InvalidOption {
                message: format!("fields= names {clash:?}, a column of its own; write it as a JSON Pointer (\"/{clash}\")"),
            });
        }
        let inner = Inner {
            corpus,
            options,
            seed,
            file_names,
            identity: Default::default(),
            notices,
            sources: infos.into(),
            mixture,
            source_names,
            source_of_file: source_of_file.into(),
            records,
        };
        Ok(Batcher { inner: Arc::new(inner) })
    }

    /// This batcher with the last partial batch of each epoch served (the same files,
    /// maps, seed and orders; only the batch count differs): what the table views read —
    /// SQL, Polars, Ray, IPC read every line whatever `ignore_leftovers` says, which governs
    /// the batch iterators.
    pub fn keeping_leftovers(&self) -> Batcher {
        if !self.inner.options.ignore_leftovers {
            return self.clone();
        }
        let i = &self.inner;
        let options = Options { ignore_leftovers: false, ..i.options.clone() };
        let notices = notices(&i.corpus, &options, i.mixture.as_deref());
        let inner = Inner {
            corpus: i.corpus.clone(),
            options,
            seed: i.seed,
            file_names: i.file_names.clone(),
            identity: Default::default(),
            notices,
            sources: i.sources.clone(),
            mixture: i.mixture.clone(),
            source_names: i.source_names.clone(),
            source_of_file: i.source_of_file.clone(),
            records: i.records.clone(),
        };
        Batcher { inner: Arc::new(inner) }
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

    /// Files left out by `on_bad_file = Skip`, each with the error that made it unservable.
    pub fn skipped_files(&self) -> &[(PathBuf, String)] {
        self.inner.corpus.skipped()
    }

    /// The header of file `f`: its first [`header_lines`](Options::header_lines) physical
    /// lines (a CSV's column names), which no batch serves, each without its terminator.
    /// Read from the file now (checked unchanged first, the read guarded).
    pub fn header(&self, f: usize) -> Result<Vec<Vec<u8>>> {
        if f >= self.num_files() {
            return Err(Error::InvalidOption { message: format!("file {f} out of range for {} files", self.num_files()) });
        }
        let wanted = usize::try_from(self.inner.options.header_lines).unwrap_or(usize::MAX);
        if wanted == 0 {
            return Ok(Vec::new());
        }
        let file = self.inner.corpus.file(f)?;
        file.source.check_unchanged()?;
        crate::source::read_guarded(|| {
            let bytes = file.source.bytes();
            let mut lines = Vec::new();
            let mut at = 0;
            while lines.len() < wanted && at < bytes.len() {
                let end = memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |p| at + p + 1);
                let line = &bytes[at..end];
                let line = line.strip_suffix(b"\n").map_or(line, |l| l.strip_suffix(b"\r").unwrap_or(l));
                lines.push(line.to_vec());
                at = end;
            }
            lines
        })
    }

    /// Number of kept lines of all files.
    pub fn num_lines(&self) -> u64 {
        self.inner.corpus.num_lines()
    }

    /// Number of physical lines, skipped ones included.
    pub fn physical_lines(&self) -> u64 {
        self.inner.corpus.physical_lines()
    }

    /// Physical lines of file `f`, skipped ones included.
    pub fn physical_lines_of(&self, f: usize) -> u64 {
        self.inner.corpus.physical_lines_of(f)
    }

    /// The line ids of file `f`.
    pub fn file_lines(&self, f: usize) -> std::ops::Range<u64> {
        self.inner.corpus.file_lines(f)
    }

    /// How the index of file `f` was obtained (and which index file it lives in).
    pub fn index_status(&self, f: usize) -> &IndexStatus {
        self.inner.corpus.index_status(f)
    }

    /// Whether every kept line of file `f` is UTF-8 (known from its index).
    pub fn utf8_verdict(&self, f: usize) -> Utf8Verdict {
        self.inner.corpus.utf8(f)
    }

    /// The identity of file `f` when it was indexed.
    pub fn identity(&self, f: usize) -> &crate::source::Identity {
        self.inner.corpus.identity(f)
    }

    /// What the open had to say: stale index files rebuilt, indexes kept in memory only.
    pub fn notices(&self) -> &[String] {
        &self.inner.notices
    }

    /// True when reads are planned for a corpus larger than memory (see [`IoPolicy`](crate::IoPolicy)).
    pub fn reads_from_disk(&self) -> bool {
        self.inner.corpus.io() != crate::source::ResolvedIo::Cached
    }

    /// Where the block shuffle cuts the corpus (one block for the other modes).
    pub fn block_layout(&self) -> &crate::order::BlockLayout {
        self.inner.corpus.blocks()
    }

    /// The named sources, in order (empty for a corpus opened without them).
    pub fn sources(&self) -> &[SourceInfo] {
        &self.inner.sources
    }

    /// The source of file `f` (an index into [`sources`](Self::sources); 0 without sources).
    pub fn source_of_file(&self, f: usize) -> usize {
        self.inner.source_of_file[f] as usize
    }

    /// The `source` column's dictionary and each file's key into it.
    pub(crate) fn source_column(&self) -> (&Arc<StringArray>, &[u32]) {
        (&self.inner.source_names, &self.inner.source_of_file)
    }

    /// What a resume state records of the sources: `None` when the epoch is the corpus
    /// once over (states taken before sources existed load unchanged).
    pub(crate) fn source_identity(&self) -> Option<Vec<SourceIdentity>> {
        let mixture = self.inner.mixture.as_ref()?;
        let names = self.inner.sources.iter().map(|s| s.name.clone()).chain(std::iter::repeat(String::new()));
        Some(
            mixture
                .sources()
                .iter()
                .zip(names)
                .map(|(s, name)| SourceIdentity { name, lines: s.lines.end - s.lines.start, per_epoch: s.per_epoch })
                .collect(),
        )
    }

    /// True when an epoch is a mixture (named sources in shares, or `lines_per_epoch`
    /// other than the kept lines), not the corpus once over.
    pub fn is_mixture(&self) -> bool {
        self.inner.mixture.is_some()
    }

    /// Positions in every epoch's order: all kept lines, or the mixture's `lines_per_epoch`.
    fn epoch_lines(&self) -> u64 {
        self.inner.mixture.as_ref().map_or(self.num_lines(), |m| m.epoch_lines())
    }

    /// Batches in every epoch: leftovers dropped or kept as the options say; never an empty batch.
    pub fn num_batches(&self) -> u64 {
        let (n, size) = (self.epoch_lines(), self.inner.options.batch_size as u64);
        if self.inner.options.ignore_leftovers {
            n / size
        } else {
            n.div_ceil(size)
        }
    }

    /// Lines served in every epoch by all shards together: all kept lines, less the
    /// dropped leftovers.
    pub fn lines_per_epoch(&self) -> u64 {
        self.epoch_lines().min(self.num_batches() * self.inner.options.batch_size as u64)
    }

    /// Lines in batch `b` of any epoch (0 past the end).
    pub fn batch_len(&self, b: u64) -> u64 {
        if b >= self.num_batches() {
            return 0;
        }
        let size = self.inner.options.batch_size as u64;
        size.min(self.epoch_lines() - b * size)
    }

    /// The default columns: the five of a single file, `file` for several files (or a
    /// glob or list), `source` for named sources, one per path of `fields=`.
    pub fn default_columns(&self) -> Vec<Column> {
        let mut columns = Column::defaults(if self.inner.options.file_column { usize::MAX } else { self.num_files() });
        if !self.inner.sources.is_empty() {
            columns.push(Column::Source);
        }
        columns.extend((0..self.inner.options.fields.len()).map(|k| Column::Field(k as u16)));
        columns
    }

    /// True when a batch of `columns` reads its lines: the `line` column asked, a field
    /// column, or JSON records whose bad ones change the batch (skipped, or an error).
    pub fn reads_lines(&self, columns: &[Column]) -> bool {
        columns.contains(&Column::Line)
            || self.records().is_some_and(|r| r.policy != crate::options::RecordPolicy::Null || columns.iter().any(|c| matches!(c, Column::Field(_))))
    }

    /// True when every batch holds the lines the plan counts (no bad record can be skipped).
    pub fn row_counts_exact(&self) -> bool {
        self.records().is_none_or(|r| r.policy != crate::options::RecordPolicy::Skip)
    }

    /// The JSON asked of each record, if any.
    pub(crate) fn records(&self) -> Option<&records::Records> {
        self.inner.records.as_deref()
    }

    /// The column named `name` (a field column's name is its path in `fields=`).
    pub fn column(&self, name: &str) -> Option<Column> {
        Column::from_name(name, &self.inner.options.fields)
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
            let (bytes, _) = crate::source::read_ranges(file.source.random_reader()?, &[range]).map_err(|e| file.source.read_error(e))?;
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
        self.inner.corpus.check_paths_unchanged()?;
        let o = &self.inner.options;
        let order = match &self.inner.mixture {
            Some(m) => EpochOrder::Mixed(MixedOrder::new(m.clone(), self.inner.seed, epoch, o.shuffle)),
            None => EpochOrder::new(self.inner.seed, epoch, o.shuffle, self.inner.corpus.blocks()),
        };
        Ok(Epoch { batcher: self.clone(), number: epoch, order: Arc::new(order) })
    }

    /// Epochs `0..count`, each checked as in [`epoch`](Self::epoch).
    pub fn epochs(&self, count: u64) -> impl Iterator<Item = Result<Epoch>> + '_ {
        (0..count).map(move |e| self.epoch(e))
    }

    /// Checks that every kept line is UTF-8 (known from the indexes): the error names
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

    pub(crate) fn corpus(&self) -> &Corpus {
        &self.inner.corpus
    }
}
