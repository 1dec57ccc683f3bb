//! `MmapBatcher`: the Python face of a [`Batcher`], with the PyTorch/JAX dataset
//! conventions (iteration, `set_epoch`, `state_dict`/`load_state_dict`, random access) and
//! pickling (path, options, seed, shard and position; never the index or the data).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use mmap_batcher::state::State;
use mmap_batcher::{
    BatchStream, Batcher, Cancel, Column, FilePolicy, IoPolicy, LineLayout, Options, RecordPolicy, RowFilter, Served, Shard, Shuffle, Source, Units,
};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::arrow::ArrowBatch;
use crate::epoch::Epoch;
use crate::error::{internal_json, option_error, state_json, PyResult};
use crate::iter::{lock, BatchIter, Cursor, Output};
use crate::options::{deprecated, int_arg, warn_deprecated, Arg, Args, Word};

/// Asks Python, at most every 50 ms, whether a signal (Ctrl-C) is pending; keeps the
/// exception to raise it once the long operation has stopped.
pub struct PyCancel {
    last: Mutex<std::time::Instant>,
    pub raised: Mutex<Option<PyErr>>,
}

impl PyCancel {
    pub fn new() -> Self {
        PyCancel { last: Mutex::new(std::time::Instant::now()), raised: Mutex::new(None) }
    }
}

impl Cancel for PyCancel {
    fn cancelled(&self) -> bool {
        if lock(&self.raised).is_some() {
            return true;
        }
        {
            let mut last = lock(&self.last);
            if last.elapsed() < std::time::Duration::from_millis(50) {
                return false;
            }
            *last = std::time::Instant::now();
        }
        // Signal handlers run on the main thread only; elsewhere this finds nothing.
        match Python::attach(|py| py.check_signals()) {
            Ok(()) => false,
            Err(e) => {
                *lock(&self.raised) = Some(e);
                true
            }
        }
    }
}

/// Rank and worker numbers, kept apart so that a `DataLoader` worker can fill in its own.
#[derive(Debug, Clone, Copy)]
struct ShardParts {
    rank: u64,
    world_size: u64,
    worker_id: u64,
    num_workers: u64,
}

/// Batches of lines from memory-mapped files, shuffled anew each epoch.
///
/// The original API, with its defects fixed: the last line is served even without a
/// trailing newline, no batch is ever empty, and shuffles are seeded::
///
///     mmb = MmapBatcher("corpus.txt", batch_size=100, seed=1)
///     for epoch in mmb.epochs(2):
///         for batch in epoch.batches():  # list[bytes], lines with their "\n"
///             ...
///
/// ``for batch in mmb`` serves this shard's batches of the current epoch, then moves to
/// the next epoch; ``set_epoch``, ``state_dict`` and ``load_state_dict`` follow the
/// ``DistributedSampler`` and ``StatefulDataLoader`` conventions. For PyTorch, hand
/// ``mmb.torch()`` (an ``IterableDataset``) to the ``DataLoader``, never the batcher itself;
/// ``mmb.lines`` is the map-style view of the lines (``len``, ``[k]``).
///
/// Args:
///     paths: a path (``str``, ``bytes``, ``os.PathLike``), a glob, or a sequence of
///         them: the files are served as one corpus, in that order (``filename=`` is its
///         deprecated spelling). Or a ``dict`` of source name → path, glob or sequence:
///         a mixture, every batch holding each source's share of its lines, each source
///         shuffled in itself, a ``source`` column beside ``file`` (see ``sources``).
///     weights: with sources, a ``dict`` of name → positive weight for every source
///         (normalised to sum to one); ``None``: each source's share is its line count.
///     lines_per_epoch: lines each epoch serves (``None``: every kept line once); more
///         upsamples (another pass, in a fresh order), fewer subsamples (a different subset
///         each epoch); with sources, split by the weights.
///     field: JSON Lines: serve this field of each record (a JSON object per line) instead
///         of the line: a dotted path (``"meta.title"``) or a JSON Pointer (``"/a.b/c"``).
///         Strings without escapes are views into the map (zero-copy), others decoded. A
///         record that is not JSON, lacks the field or holds no string there is a bad record.
///     fields: JSON Lines: more paths, each a ``Utf8View`` column of its own named as
///         written (strings decoded, other values as their JSON text, ``None`` where absent).
///     on_bad_record: ``"error"`` (``BadRecordError`` naming file, line and byte),
///         ``"skip"`` (the record leaves its batch, which is one row shorter) or ``"null"``.
///     batch_size: lines per batch.
///     shuffle: ``True``/``"global"`` (a uniform shuffle), ``"block"`` (blocks of
///         ``shuffle_block`` bytes in random order, lines shuffled within windows of
///         ``shuffle_window`` blocks: for files larger than memory), ``False``/``"none"``.
///     ignore_leftovers: drop the last partial batch of each epoch's order.
///     skip_blank_lines: skip lines made only of ASCII whitespace.
///     comment_char: skip lines whose first byte is this character; ``None`` disables it.
///     header_lines: skip the first this many lines of each file (CSV/TSV headers),
///         whatever they hold; line numbers stay the file's own.
///     on_bad_file: ``"error"`` (an unreadable, special, badly compressed or, on the
///         string path, non-UTF-8 file fails the open) or ``"skip"`` (left out with a
///         warning; listed in ``skipped_files``).
///     on_duplicate_file: ``"skip"`` (a file reached twice, through a symlink, a hard link
///         or overlapping globs, is served once, with a warning) or ``"error"``.
///     seed: the shuffle seed; ``None`` picks one, readable as ``.seed``.
///     keep_terminator: keep ``\n`` / ``\r\n`` in the Arrow ``line`` column.
///     binary: type the Arrow ``line`` column as binary (no UTF-8 promise).
///     worker_id, num_workers, rank, world_size: serve only this shard of each epoch,
///         shard ``rank * num_workers + worker_id`` of ``world_size * num_workers``.
///         (``mmb.torch()`` splits it further over a ``DataLoader``'s workers.)
///     shuffle_block, shuffle_window: the block shuffle's block size (bytes) and window (blocks).
///     even_shards: every shard serves the same number of batches per epoch (DDP).
///     index_cache: keep the line index in an index file and reuse it: in
///         ``$MMAP_BATCHER_CACHE_DIR`` when it is set, else beside the file, else in the
///         per-user cache directory; ``False`` indexes in memory every time.
///     index_path: read and write the line index at this path (one file only).
///     index_dir: read and write the line indexes of all files in this directory only.
///     io: ``"auto"``, ``"cached"`` (expect the page cache), ``"disk"`` (request reads ahead) or
///         ``"copy"`` (every line read into a buffer of its batch's own: no change to the file, not
///         even a truncation, can fault the reader).
///     output: what iterating the batcher yields: ``"bytes"`` (``list[bytes]``),
///         ``"arrow"`` (``ArrowBatch``) or ``"polars"`` (``polars.DataFrame``).
///     max_open_files: at most this many files of a many-file corpus are mapped at once
///         (``None``: what the process's limits allow: half of ``vm.max_map_count`` for files
///         served from the page cache, which keep no descriptor; half of ``ulimit -n`` read
///         from disk).
///     threads: build batches on this many threads, handed out in order (the same
///         batches for any number; ``None``: one per core). In the page cache the thread
///         that iterates is one of them: it builds when it has no finished batch to take.
///     trust_files: serve zero-copy views into the map even of files another user can
///         write (owned by someone else, or group/other-writable). Off by default: their
///         lines are read into buffers of the batch's own and validated (a writer could
///         change the mapped bytes without a trace). See the README's trust model.
///
/// Raises:
///     MissingFileError (a ``FileNotFoundError``), DirectoryError, AccessError: the file
///     cannot be opened. OptionError (a ``ValueError``): a bad argument. LineTooLongError:
///     a line over 2 GiB. Every error is a ``MmapBatcherError``.
#[pyclass(module = "mmap_batcher._native", frozen)]
pub struct MmapBatcher {
    /// `None` after `close()`. Batches hold their own reference to the map.
    core: RwLock<Option<Batcher>>,
    inputs: Vec<PathBuf>,
    /// The named sources, as given (the inputs are their paths, in order).
    sources: Option<Vec<Source>>,
    /// With the seed in use.
    options: Options,
    parts: ShardParts,
    output: Output,
    output_name: String,
    cursor: Arc<Mutex<Cursor>>,
}

impl MmapBatcher {
    pub fn core(&self) -> PyResult<Batcher> {
        self.core.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or_else(|| option_error("the batcher is closed"))
    }

    /// This batcher's shard, as constructed (a `DataLoader` worker's share is the torch
    /// adapter's business: `mmap_batcher.torch`).
    fn shard(&self) -> PyResult<Shard> {
        let p = self.parts;
        Ok(Shard::of(p.rank, p.world_size, p.worker_id, p.num_workers)?)
    }

    fn with_parts(&self, parts: ShardParts, core: Batcher) -> MmapBatcher {
        MmapBatcher {
            core: RwLock::new(Some(core)),
            inputs: self.inputs.clone(),
            sources: self.sources.clone(),
            options: self.options.clone(),
            parts,
            output: self.output.clone(),
            output_name: self.output_name.clone(),
            cursor: Arc::new(Mutex::new(lock(&self.cursor).clone())),
        }
    }

    fn output_of(name: &str, defaults: Vec<Column>) -> PyResult<Output> {
        match name {
            "bytes" => Ok(Output::Bytes),
            "arrow" => Ok(Output::Arrow { columns: defaults, layout: LineLayout::View, compact: false }),
            "polars" => Ok(Output::Polars { columns: defaults }),
            _ => Err(option_error(format!("output must be 'bytes', 'arrow' or 'polars', got {name:?}"))),
        }
    }

    fn json<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
        let text = serde_json::to_string(value).map_err(internal_json("a state"))?;
        Ok(py.import(intern!(py, "json"))?.call_method1(intern!(py, "loads"), (text,))?)
    }

    fn from_json<T: serde::de::DeserializeOwned>(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<T> {
        let text: String = py.import(intern!(py, "json"))?.call_method1(intern!(py, "dumps"), (value,))?.extract()?;
        serde_json::from_str(&text).map_err(state_json)
    }
}

#[pymethods]
impl MmapBatcher {
    #[new]
    #[pyo3(signature = (
        paths=None, batch_size=Arg::Missing, shuffle=Arg::Missing, ignore_leftovers=true, skip_blank_lines=true,
        comment_char=Arg::Missing, seed=None, *, keep_terminator=false, binary=false, worker_id=Arg::Missing,
        num_workers=Arg::Missing, rank=Arg::Missing, world_size=Arg::Missing, shuffle_block=Arg::Missing,
        shuffle_window=Arg::Missing, even_shards=false, index_cache=true, index_path=None, index_dir=None, io=Word(IoPolicy::Auto),
        output="bytes", max_open_files=Arg::Missing, threads=Arg::Missing, trust_files=false, header_lines=Arg::Missing,
        on_bad_file=Word(FilePolicy::Error), on_duplicate_file=Word(FilePolicy::Skip), weights=None,
        lines_per_epoch=Arg::Missing, field=None, fields=None, on_bad_record=Word(RecordPolicy::Error), filename=None
    ))]
    #[pyo3(
        text_signature = "(paths, batch_size=100, shuffle=True, ignore_leftovers=True, skip_blank_lines=True, comment_char='#', seed=None, *, keep_terminator=False, binary=False, worker_id=0, num_workers=1, rank=0, world_size=1, shuffle_block=16777216, shuffle_window=16, even_shards=False, index_cache=True, index_path=None, index_dir=None, io='auto', output='bytes', max_open_files=None, threads=None, trust_files=False, header_lines=0, on_bad_file='error', on_duplicate_file='skip', weights=None, lines_per_epoch=None, field=None, fields=None, on_bad_record='error')"
    )]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments, forwarded once to `Args`
    fn new<'py>(
        py: Python<'py>,
        paths: Option<Bound<'py, PyAny>>,
        batch_size: Arg<'py>,
        shuffle: Arg<'py>,
        ignore_leftovers: bool,
        skip_blank_lines: bool,
        comment_char: Arg<'py>,
        seed: Option<Bound<'py, PyAny>>,
        keep_terminator: bool,
        binary: bool,
        worker_id: Arg<'py>,
        num_workers: Arg<'py>,
        rank: Arg<'py>,
        world_size: Arg<'py>,
        shuffle_block: Arg<'py>,
        shuffle_window: Arg<'py>,
        even_shards: bool,
        index_cache: bool,
        index_path: Option<Bound<'py, PyAny>>,
        index_dir: Option<Bound<'py, PyAny>>,
        io: Word<IoPolicy>,
        output: &str,
        max_open_files: Arg<'py>,
        threads: Arg<'py>,
        trust_files: bool,
        header_lines: Arg<'py>,
        on_bad_file: Word<FilePolicy>,
        on_duplicate_file: Word<FilePolicy>,
        weights: Option<Bound<'py, PyAny>>,
        lines_per_epoch: Arg<'py>,
        field: Option<String>,
        fields: Option<Vec<String>>,
        on_bad_record: Word<RecordPolicy>,
        filename: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let paths = deprecated(py, "filename", filename, "paths", paths)?
            .ok_or_else(|| option_error("paths is required: a path, a glob or a sequence of them"))?;
        let args = Args {
            batch_size: batch_size.or(py, 100u64)?,
            shuffle: shuffle.or(py, true)?,
            ignore_leftovers,
            skip_blank_lines,
            comment_char: comment_char.or(py, "#")?,
            seed,
            keep_terminator,
            binary,
            shuffle_block: shuffle_block.or(py, Shuffle::DEFAULT_BLOCK_BYTES)?,
            shuffle_window: shuffle_window.or(py, Shuffle::DEFAULT_WINDOW_BLOCKS)?,
            even_shards,
            index_cache,
            index_path,
            index_dir,
            io: io.0,
            max_open_files: max_open_files.or(py, py.None())?,
            threads: threads.or(py, py.None())?,
            trust_files,
            header_lines: header_lines.or(py, 0u64)?,
            on_bad_file: on_bad_file.0,
            on_duplicate_file: on_duplicate_file.0,
            worker_id: worker_id.or(py, 0u64)?,
            num_workers: num_workers.or(py, 1u64)?,
            rank: rank.or(py, 0u64)?,
            world_size: world_size.or(py, 1u64)?,
            lines_per_epoch: lines_per_epoch.or(py, py.None())?,
            field,
            fields: fields.unwrap_or_default(),
            on_bad_record: on_bad_record.0,
        };
        let options = args.options()?;
        // Checked here, used per iteration (a DataLoader worker may fill in its numbers).
        args.shard()?;
        let parts = ShardParts {
            rank: int_arg("rank", &args.rank)?,
            world_size: int_arg("world_size", &args.world_size)?,
            worker_id: int_arg("worker_id", &args.worker_id)?,
            num_workers: int_arg("num_workers", &args.num_workers)?,
        };
        let sources = match paths.cast::<PyDict>() {
            Ok(dict) => Some(crate::options::sources(dict, weights.as_ref())?),
            Err(_) if weights.as_ref().is_some_and(|w| !w.is_none()) => {
                return Err(option_error("weights= weighs named sources: pass paths as a dict of name to paths"));
            }
            Err(_) => None,
        };
        let (inputs, corpus) = match &sources {
            Some(s) => (s.iter().flat_map(|s| s.paths.iter().cloned()).collect(), true),
            None => crate::options::inputs(&paths)?,
        };
        let options = Options { file_column: corpus, ..options };
        let cancel = PyCancel::new();
        let opened = py.detach(|| open_core(&inputs, sources.as_deref(), options.clone(), &cancel));
        if let Some(e) = lock(&cancel.raised).take() {
            return Err(e.into());
        }
        let core = opened?;
        let warnings = py.import(intern!(py, "warnings"))?;
        for notice in core.notices() {
            warnings.call_method1(intern!(py, "warn"), (notice.as_str(), py.get_type::<pyo3::exceptions::PyRuntimeWarning>(), 2))?;
        }
        let output_value = Self::output_of(output, core.default_columns())?;
        let options = Options { seed: Some(core.seed()), ..options };
        Ok(MmapBatcher {
            core: RwLock::new(Some(core)),
            inputs,
            sources,
            options,
            parts,
            output: output_value,
            output_name: output.to_string(),
            cursor: Arc::new(Mutex::new(Cursor::default())),
        })
    }

    /// The named sources, in order (empty without): one ``dict`` each, with ``name``,
    /// ``files`` (indices into ``paths``), ``lines`` (kept), ``weight`` (normalised),
    /// ``lines_per_epoch`` and ``passes_per_epoch`` (above 1: upsampled).
    #[getter]
    fn sources<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.core()?
            .sources()
            .iter()
            .map(|s| {
                let d = PyDict::new(py);
                d.set_item("name", &s.name)?;
                d.set_item("files", (s.files.start..s.files.end).collect::<Vec<usize>>())?;
                d.set_item("lines", s.lines)?;
                d.set_item("weight", s.weight)?;
                d.set_item("lines_per_epoch", s.per_epoch)?;
                d.set_item("passes_per_epoch", s.passes_per_epoch())?;
                Ok(d)
            })
            .collect()
    }

    /// The paths of the files served, in order (files reached twice or skipped as bad
    /// are not among them).
    #[getter]
    fn paths(&self) -> PyResult<Vec<PathBuf>> {
        Ok(self.core()?.paths().map(|p| p.to_path_buf()).collect())
    }

    /// The files left out by ``on_bad_file="skip"``: ``(path, why)`` pairs.
    #[getter]
    fn skipped_files(&self) -> PyResult<Vec<(PathBuf, String)>> {
        Ok(self.core()?.skipped_files().to_vec())
    }

    /// Deprecated: ``paths[0]``.
    #[getter]
    fn filename(&self, py: Python<'_>) -> PyResult<PathBuf> {
        warn_deprecated(py, "MmapBatcher.filename is deprecated, use paths[0]".into())?;
        Ok(self.inputs[0].clone())
    }

    /// Deprecated: ``paths``.
    #[getter]
    fn filenames(&self, py: Python<'_>) -> PyResult<Vec<PathBuf>> {
        warn_deprecated(py, "MmapBatcher.filenames is deprecated, use paths".into())?;
        Ok(self.inputs.clone())
    }

    /// The shuffle seed in use (the one given, or the one picked at open).
    #[getter]
    fn seed(&self) -> PyResult<u64> {
        Ok(self.core()?.seed())
    }

    /// What iterating the batcher yields: ``"bytes"``, ``"arrow"`` or ``"polars"``.
    #[getter]
    fn output(&self) -> &str {
        &self.output_name
    }

    /// Lines per batch.
    #[getter]
    fn batch_size(&self) -> usize {
        self.options.batch_size
    }

    /// Kept lines of all files.
    #[getter]
    fn num_lines(&self) -> PyResult<u64> {
        Ok(self.core()?.num_lines())
    }

    /// All lines of the files, skipped ones included.
    #[getter]
    fn physical_lines(&self) -> PyResult<u64> {
        Ok(self.core()?.physical_lines())
    }

    /// Batches in one whole epoch (all shards together).
    #[getter]
    fn num_batches(&self) -> PyResult<u64> {
        Ok(self.core()?.num_batches())
    }

    /// Lines served per epoch by all shards together (leftovers dropped or kept).
    #[getter]
    fn lines_per_epoch(&self) -> PyResult<u64> {
        Ok(self.core()?.lines_per_epoch())
    }

    /// The header of file ``file`` (an index into ``paths``): its first ``header_lines``
    /// lines, which no batch serves (a CSV's column names), each as ``bytes`` without its
    /// terminator; ``[]`` without ``header_lines``.
    #[pyo3(signature = (file=0))]
    fn header<'py>(&self, py: Python<'py>, file: usize) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let lines = self.core()?.header(file)?;
        Ok(lines.iter().map(|l| PyBytes::new(py, l)).collect())
    }

    /// Number of files.
    #[getter]
    fn num_files(&self) -> PyResult<usize> {
        Ok(self.core()?.num_files())
    }

    /// ``(index, count)`` of this batcher's shard among ranks × workers.
    #[getter(shard)]
    fn shard_py(&self) -> PyResult<(u64, u64)> {
        let s = self.shard()?;
        Ok((s.index, s.count))
    }

    /// The index file of each file (``None`` where the index is kept in memory only).
    #[getter]
    fn index_paths(&self) -> PyResult<Vec<Option<PathBuf>>> {
        let core = self.core()?;
        Ok((0..core.num_files()).map(|f| core.index_status(f).path().map(|p| p.to_path_buf())).collect())
    }

    /// How each file's index was obtained at open: ``"loaded"`` (a valid index file was
    /// mapped), ``"written"`` (built now and written to ``index_paths``) or ``"memory"``
    /// (built and kept in memory only).
    #[getter]
    fn index_status(&self) -> PyResult<Vec<&'static str>> {
        let core = self.core()?;
        Ok((0..core.num_files())
            .map(|f| match core.index_status(f) {
                mmap_batcher::IndexStatus::Loaded(_) => "loaded",
                mmap_batcher::IndexStatus::Written(_) => "written",
                mmap_batcher::IndexStatus::Memory => "memory",
            })
            .collect())
    }

    /// True after ``close()``.
    #[getter]
    fn closed(&self) -> bool {
        self.core.read().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// The epoch that iterating the batcher serves next (see ``set_epoch``).
    #[getter]
    fn epoch_number(&self) -> u64 {
        lock(&self.cursor).epoch
    }

    /// Not a length: a batcher is not a map-style dataset. ``DataLoader(mmb)`` would take it
    /// for one and sample single lines in file order, so this raises ``TypeError`` naming
    /// ``mmb.torch()``; ``num_lines`` counts the lines and ``lines`` is the map-style view.
    fn __len__(&self) -> PyResult<usize> {
        Err(pyo3::exceptions::PyTypeError::new_err(
            "MmapBatcher has no len(): it is not a map-style dataset. For PyTorch use \
             DataLoader(mmb.torch(), batch_size=None); for the number of lines, mmb.num_lines; \
             for random access (Grain's MapDataset.source), mmb.lines",
        )
        .into())
    }

    fn __bool__(&self) -> bool {
        true
    }

    /// Deprecated spelling of ``mmb.lines[k]`` (kept for one release).
    fn __getitem__<'py>(slf: &Bound<'py, Self>, k: i64) -> PyResult<Bound<'py, PyBytes>> {
        let py = slf.py();
        let warnings = py.import(intern!(py, "warnings"))?;
        let category = py.get_type::<pyo3::exceptions::PyDeprecationWarning>();
        warnings.call_method1(intern!(py, "warn"), ("mmb[k] is deprecated: use mmb.lines[k]", category, 2))?;
        crate::lines::line_at(py, &slf.get().core()?, k)
    }

    /// The corpus's kept lines as a read-only sequence: ``len(mmb.lines)``, ``mmb.lines[k]``
    /// (bytes, with the terminator), negative indices too. A map-style source for
    /// ``grain.MapDataset.source(mmb.lines)``; it pickles as its batcher does.
    #[getter]
    fn lines(slf: &Bound<'_, Self>) -> crate::lines::Lines {
        crate::lines::Lines::new(slf.clone().unbind())
    }

    /// A ``torch.utils.data.IterableDataset`` over this batcher (see ``mmap_batcher.torch``):
    /// ``DataLoader(mmb.torch(), batch_size=None, num_workers=W)`` serves each epoch once
    /// across workers and ranks, the next epoch at each pass, resumable with
    /// ``StatefulDataLoader``. Keywords go to ``mmap_batcher.torch.TorchDataset``.
    #[pyo3(signature = (**kwargs))]
    fn torch<'py>(slf: &Bound<'py, Self>, kwargs: Option<&Bound<'py, pyo3::types::PyDict>>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let module = py.import(intern!(py, "mmap_batcher.torch"))?;
        Ok(module.getattr(intern!(py, "TorchDataset"))?.call((slf,), kwargs)?)
    }

    /// The line with 1-based physical line number ``number`` in file ``file`` (as
    /// ``sed -n Np`` prints it), or ``None`` when that line is skipped (blank, comment).
    #[pyo3(signature = (number, file=0))]
    fn line<'py>(&self, py: Python<'py>, number: u64, file: usize) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let core = self.core()?;
        if file >= core.num_files() {
            return Err(option_error(format!("file {file} out of range for {} files", core.num_files())));
        }
        match core.line_id(file, number)? {
            Some(id) => Ok(Some(PyBytes::new(py, &core.line_bytes(id)?))),
            None => Ok(None),
        }
    }

    /// Epoch ``number`` for this shard (any epoch, in any order: each is a pure function
    /// of the seed).
    fn epoch(&self, py: Python<'_>, number: u64) -> PyResult<Epoch> {
        let core = self.core()?;
        let shard = self.shard()?;
        let epoch = py.detach(|| core.epoch(number))?;
        Ok(Epoch::new(epoch, shard, Served::NONE, 0))
    }

    /// Epochs ``start`` .. ``start + n - 1``.
    #[pyo3(signature = (n, start=0))]
    fn epochs(&self, py: Python<'_>, n: u64, start: u64) -> PyResult<Vec<Epoch>> {
        (start..start.saturating_add(n)).map(|e| self.epoch(py, e)).collect()
    }

    /// This batcher (same map, same seed) restricted to another shard, and optionally
    /// yielding another ``output``. No re-indexing.
    #[pyo3(signature = (worker_id=0, num_workers=1, rank=0, world_size=1, *, output=None))]
    fn with_shard(&self, worker_id: u64, num_workers: u64, rank: u64, world_size: u64, output: Option<&str>) -> PyResult<MmapBatcher> {
        Shard::of(rank, world_size, worker_id, num_workers)?;
        let core = self.core()?;
        let mut shard = self.with_parts(ShardParts { rank, world_size, worker_id, num_workers }, core.clone());
        if let Some(name) = output {
            shard.output = Self::output_of(name, core.default_columns())?;
            shard.output_name = name.to_string();
        }
        Ok(shard)
    }

    /// Serves this shard's batches of the current epoch (``epoch_number``), from where the
    /// last iteration or ``load_state_dict`` left it, then moves to the next epoch.
    fn __iter__(&self, py: Python<'_>) -> PyResult<BatchIter> {
        let core = self.core()?;
        let shard = self.shard()?;
        let c = lock(&self.cursor).clone();
        let epoch = py.detach(|| core.epoch(c.epoch))?;
        let units = epoch.shard_plan(shard, c.base.clone()).units_after(c.epoch, c.done);
        let stream = BatchStream::with_options(&core, units, self.output.stream_options(&core, None));
        Ok(BatchIter::new(stream, self.output.clone(), Some(self.cursor.clone())))
    }

    /// Makes the next iteration serve epoch ``epoch`` from its start (the
    /// ``DistributedSampler`` convention: call it before each epoch's loop).
    fn set_epoch(&self, epoch: u64) {
        *lock(&self.cursor) = Cursor { epoch, base: Served::NONE, done: 0 };
    }

    /// Where this shard's iteration is, as a small JSON-serialisable dict (under 1 KiB):
    /// format, seed, epoch, the batches served, the shard, the options that decide the
    /// order, and the corpus's identity. See ``load_state_dict`` and ``combine_states``.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core()?;
        let shard = self.shard()?;
        let c = lock(&self.cursor).clone();
        let state = py.detach(|| core.state(c.epoch, c.base, shard, c.done))?;
        Self::json(py, &state)
    }

    /// Makes the next batch served the one that followed the last one served when
    /// ``state`` was taken. A shard's own state resumes that shard; a state from
    /// ``combine_states`` resumes any shard of any layout (the rest of the epoch is split
    /// over the new shards, each batch once). A state of another corpus or of options that
    /// change the order raises ``StateMismatchError`` (a ``ValueError``) naming what differs.
    fn load_state_dict(&self, py: Python<'_>, state: Bound<'_, PyAny>) -> PyResult<()> {
        let core = self.core()?;
        let state: State = Self::from_json(py, &state)?;
        let shard = self.shard()?;
        let (epoch, base, done) = py.detach(|| core.resume_point(&state, shard))?;
        *lock(&self.cursor) = Cursor { epoch, base, done };
        Ok(())
    }

    /// Combines the ``state_dict()`` of every shard of one layout, taken at one step, into
    /// one state that any layout loads (elastic resume). With ``lockstep=True``, ``states``
    /// are one rank's (its workers', or its own): every rank is taken to have served the same
    /// (DDP with ``even_shards``, where often only rank 0's checkpoint is kept).
    #[pyo3(signature = (states, *, lockstep=false))]
    fn combine_states<'py>(&self, py: Python<'py>, states: Vec<Bound<'py, PyAny>>, lockstep: bool) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core()?;
        let states: Vec<State> = states.iter().map(|s| Self::from_json(py, s)).collect::<PyResult<_>>()?;
        let combined = if lockstep { core.combine_lockstep_states(&states)? } else { core.combine_states(&states)? };
        Self::json(py, &combined)
    }

    /// Check (from the index) that every kept line is UTF-8; raise ``InvalidUtf8Error`` if not.
    fn validate_utf8(&self) -> PyResult<()> {
        Ok(self.core()?.validate_utf8()?)
    }

    /// ``(start, end)`` addresses of the first file's mapping: zero-copy buffers lie inside it.
    fn map_address_range(&self) -> PyResult<(usize, usize)> {
        let ranges = self.core()?.map_address_ranges();
        Ok(ranges.first().map_or((0, 0), |r| (r.start, r.end)))
    }

    /// The column names of this corpus's batches.
    #[getter]
    fn columns(&self) -> PyResult<Vec<String>> {
        let core = self.core()?;
        Ok(core.default_columns().iter().map(|c| c.name(&core.options().fields).to_owned()).collect())
    }

    /// An empty batch with every column: the schema, for adapters.
    fn _empty_batch(&self) -> PyResult<ArrowBatch> {
        let core = self.core()?;
        let schema = mmap_batcher::schema(&core.default_columns(), core.options());
        Ok(ArrowBatch::new(arrow::array::RecordBatch::new_empty(schema), 0, 0))
    }

    /// The batches of epochs ``epochs[0]..epochs[1]`` × batches ``batches[0]..batches[1]``
    /// (all shards), in serial order, as Arrow batches with ``columns``: the Polars scan's
    /// and the Ray read tasks' source. ``line_numbers`` (a half-open range) and ``files``
    /// (paths, as the ``file`` column shows them) keep only those lines, through the core's
    /// row filter (in file order, batches without a match are not read). ``units`` narrows
    /// the scan to a run of the rectangle's ``(epoch, batch)`` pairs (Ray's read tasks);
    /// ``layout="large"`` casts the lines (copies). ``join_rows``: batches are joined until
    /// they hold that many rows (an engine pays per batch; zero-copy, the ``batch`` column
    /// names each row's own).
    #[pyo3(signature = (columns, epochs, batches, units=None, layout=None, files=None, line_numbers=None, join_rows=1, sources=None))]
    #[allow(clippy::too_many_arguments)] // the scan's keyword arguments, turned into one RowFilter
    fn _scan(
        &self,
        columns: Vec<String>,
        epochs: (u64, u64),
        batches: (u64, u64),
        units: Option<(u64, u64)>,
        layout: Option<Word<LineLayout>>,
        files: Option<Vec<String>>,
        line_numbers: Option<(u64, u64)>,
        join_rows: usize,
        sources: Option<Vec<String>>,
    ) -> PyResult<BatchIter> {
        let core = self.core()?;
        let cols = crate::arrow::columns(Some(columns), &core)?;
        let mut filter = RowFilter::default().epochs(epochs.0..epochs.1).batches(batches.0..batches.1);
        if let Some((lo, hi)) = line_numbers {
            filter = filter.line_numbers(lo..hi);
        }
        if let Some(paths) = files {
            filter = filter.files(paths);
        }
        if let Some(names) = sources {
            filter = filter.sources(names);
        }
        let selection = filter.select(&core, epochs.1)?;
        // Ray's `units` index the whole rectangle, so it is not narrowed under them.
        let (rect, run) = match units {
            Some((lo, hi)) => {
                let rect = Units { epochs: epochs.0..epochs.1, batches: batches.0..batches.1.min(core.num_batches()) };
                (rect, lo..hi)
            }
            None => {
                let n = selection.units.len();
                (selection.units, 0..n)
            }
        };
        let run = run.start..run.end.min(rect.len());
        let output = Output::Arrow { columns: cols, layout: layout.map_or(LineLayout::View, |w| w.0), compact: false };
        let stream = BatchStream::with_options(&core, run.map(move |u| rect.get(u)), output.stream_options(&core, selection.lines));
        Ok(BatchIter::joining(stream, output, join_rows))
    }

    /// ``parts`` contiguous runs of the ``epochs × num_batches`` units, with the rows of
    /// each: the Ray read tasks' shares.
    fn _unit_splits(&self, epochs: u64, parts: usize) -> PyResult<Vec<(u64, u64, u64)>> {
        let core = self.core()?;
        let rect = Units { epochs: 0..epochs, batches: 0..core.num_batches() };
        Ok(rect
            .split(parts)
            .into_iter()
            .map(|r| {
                let rows = (r.start..r.end).map(|u| core.batch_len(rect.get(u).1)).sum();
                (r.start, r.end, rows)
            })
            .collect())
    }

    /// Epochs ``0..epochs`` as a table for datafusion-python:
    /// ``SessionContext().register_table("lines", mmb.table(epochs=3))``. Like every table
    /// view (the CLI's ``sql``, ``scan_lines``, Ray, ``ipc``) it holds every kept line: the
    /// last partial batch of each epoch is in it whatever ``ignore_leftovers`` says.
    #[pyo3(signature = (epochs=1))]
    fn table(&self, epochs: u64) -> PyResult<crate::datafusion::Table> {
        crate::datafusion::Table::new(self.core()?.keeping_leftovers(), epochs)
    }

    /// Release this object's reference to the maps. Live Arrow batches keep theirs.
    fn close(&self) {
        self.core.write().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: Bound<'_, PyTuple>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        match self.core.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(c) => format!(
                "MmapBatcher({:?}, batch_size={}, seed={}, {} lines)",
                self.inputs[0].display().to_string(),
                self.options.batch_size,
                c.seed(),
                c.num_lines()
            ),
            None => format!("MmapBatcher({:?}, closed)", self.inputs[0].display().to_string()),
        }
    }

    /// Pickles the paths, options (with the seed in use), shard and position — never the
    /// index or the data; the receiving process maps the files (and their index files) again.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let me = slf.get();
        use std::os::unix::ffi::OsStrExt;
        let paths = PyList::new(py, me.inputs.iter().map(|p| PyBytes::new(py, p.as_os_str().as_bytes())))?;
        let options = serde_json::to_string(&me.options).map_err(internal_json("pickling the options"))?;
        let p = me.parts;
        let c = lock(&me.cursor).clone();
        let base = serde_json::to_string(&c.base).map_err(internal_json("pickling the position"))?;
        let restore = py.import(intern!(py, "mmap_batcher._native"))?.getattr(intern!(py, "_restore_batcher"))?;
        let sources = me.sources.as_ref().map(serde_json::to_string).transpose().map_err(internal_json("pickling the sources"))?;
        let args = (paths, options, (p.rank, p.world_size, p.worker_id, p.num_workers), (c.epoch, base, c.done), me.output_name.clone(), sources);
        Ok((restore, args.into_pyobject(py)?))
    }
}

/// Opens the core batcher: one corpus, or the named sources.
fn open_core(inputs: &[PathBuf], sources: Option<&[Source]>, options: Options, cancel: &PyCancel) -> mmap_batcher::Result<Batcher> {
    match sources {
        Some(s) => Batcher::open_sources_with(s, options, &|_| {}, cancel),
        None => Batcher::open_with(inputs, options, &|_| {}, cancel),
    }
}

/// Unpickles a [`MmapBatcher`].
#[pyfunction]
#[pyo3(signature = (paths, options, parts, cursor, output, sources=None))]
pub fn _restore_batcher(
    py: Python<'_>,
    paths: Vec<Vec<u8>>,
    options: &str,
    parts: (u64, u64, u64, u64),
    cursor: (u64, String, u64),
    output: &str,
    sources: Option<&str>,
) -> PyResult<MmapBatcher> {
    use std::os::unix::ffi::OsStrExt;
    let inputs: Vec<PathBuf> = paths.iter().map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p))).collect();
    let options: Options = serde_json::from_str(options).map_err(internal_json("unpickling the options"))?;
    let sources: Option<Vec<Source>> = sources.map(serde_json::from_str).transpose().map_err(internal_json("unpickling the sources"))?;
    let cancel = PyCancel::new();
    let core = py.detach(|| open_core(&inputs, sources.as_deref(), options.clone(), &cancel))?;
    let output_value = MmapBatcher::output_of(output, core.default_columns())?;
    let base: Served = serde_json::from_str(&cursor.1).map_err(internal_json("unpickling the position"))?;
    Ok(MmapBatcher {
        core: RwLock::new(Some(core)),
        inputs,
        sources,
        options,
        parts: ShardParts { rank: parts.0, world_size: parts.1, worker_id: parts.2, num_workers: parts.3 },
        output: output_value,
        output_name: output.to_string(),
        cursor: Arc::new(Mutex::new(Cursor { epoch: cursor.0, base, done: cursor.2 })),
    })
}
