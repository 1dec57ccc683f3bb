//! `mmap_batcher._native`: the Rust core behind the Python package.
//!
//! The Python layer (`python/mmap_batcher`) owns the public API and its argument checks;
//! this module exposes the batcher, its epochs and zero-copy Arrow batches, and maps the
//! core's error enum to Python exceptions. Heavy work (indexing, UTF-8 checks, building
//! batches) runs with the GIL released, so threads of a data loader overlap.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use arrow::array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow::datatypes::Field;
use mmap_batcher::{Batcher, Column, Epoch, Error, LineType, Options};
use pyo3::create_exception;
use pyo3::exceptions::{
    PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyPermissionError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule, PyList, PyTuple};
use pyo3_arrow::ffi::{to_array_pycapsules, to_schema_pycapsule, to_stream_pycapsule, ArrayIterator};

create_exception!(_native, InvalidUtf8Error, PyValueError, "A served line is not valid UTF-8 (string/Arrow path only).");
create_exception!(_native, LineTooLongError, PyValueError, "A line is longer than one Arrow view buffer can address.");
create_exception!(_native, FileChangedError, PyRuntimeError, "The file changed since it was indexed; reopen it.");

/// Maps the core's error to the Python exception a user would catch for it.
fn to_py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    let path = e.path().display().to_string();
    match e {
        Error::NotFound { .. } => PyFileNotFoundError::new_err((2, msg, path)),
        Error::IsADirectory { .. } => PyIsADirectoryError::new_err((21, msg, path)),
        Error::PermissionDenied { .. } => PyPermissionError::new_err((13, msg, path)),
        Error::Io { source, .. } => PyOSError::new_err((source.raw_os_error().unwrap_or(0), msg, path)),
        Error::InvalidOption { .. } => PyValueError::new_err(msg),
        Error::LineTooLong { line_number, .. } => with_attrs(LineTooLongError::new_err(msg), &path, line_number, None),
        Error::InvalidUtf8 { line_number, byte_offset, .. } => {
            with_attrs(InvalidUtf8Error::new_err(msg), &path, line_number, Some(byte_offset))
        }
        Error::FileChanged { .. } => FileChangedError::new_err(msg),
        _ => PyRuntimeError::new_err(msg),
    }
}

/// Sets `path`, `line_number` and `byte_offset` on the exception, for programs that react to them.
fn with_attrs(err: PyErr, path: &str, line_number: u64, byte_offset: Option<u64>) -> PyErr {
    Python::attach(|py| {
        let value = err.value(py);
        let _ = value.setattr("path", path);
        let _ = value.setattr("line_number", line_number);
        let _ = value.setattr("byte_offset", byte_offset);
    });
    err
}

fn column_by_name(name: &str) -> PyResult<Column> {
    Column::ALL
        .into_iter()
        .find(|c| c.field(LineType::Binary).name() == name)
        .ok_or_else(|| PyValueError::new_err(format!("unknown column {name:?}; columns are {:?}", column_names())))
}

fn column_names() -> Vec<String> {
    Column::ALL.iter().map(|c| c.field(LineType::Binary).name().clone()).collect()
}

fn columns_from(names: Option<Vec<String>>) -> PyResult<Vec<Column>> {
    match names {
        None => Ok(Column::ALL.to_vec()),
        Some(names) => names.iter().map(|n| column_by_name(n)).collect(),
    }
}

/// An open, indexed line file.
#[pyclass(module = "mmap_batcher._native", frozen)]
struct NativeBatcher {
    /// `None` after `close()`. Batches hold their own reference to the map, so closing
    /// never unmaps memory that a live batch points to.
    batcher: RwLock<Option<Batcher>>,
}

impl NativeBatcher {
    fn get(&self) -> PyResult<Batcher> {
        self.batcher
            .read()
            .expect("lock poisoned")
            .clone()
            .ok_or_else(|| PyValueError::new_err("the batcher is closed"))
    }
}

#[pymethods]
impl NativeBatcher {
    #[new]
    #[pyo3(signature = (path, batch_size, shuffle, ignore_leftovers, skip_blank_lines, comment_char, seed, keep_terminator, binary))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        batch_size: usize,
        shuffle: bool,
        ignore_leftovers: bool,
        skip_blank_lines: bool,
        comment_char: Option<u8>,
        seed: Option<u64>,
        keep_terminator: bool,
        binary: bool,
    ) -> PyResult<Self> {
        let options = Options {
            batch_size,
            shuffle,
            ignore_leftovers,
            skip_blank_lines,
            comment_char,
            seed,
            keep_terminator,
            line_type: if binary { LineType::Binary } else { LineType::Utf8 },
        };
        let batcher = py.detach(|| Batcher::open(&path, options)).map_err(to_py_err)?;
        Ok(NativeBatcher { batcher: RwLock::new(Some(batcher)) })
    }

    /// Drops this object's reference to the map (live batches keep theirs).
    fn close(&self) {
        self.batcher.write().expect("lock poisoned").take();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.batcher.read().expect("lock poisoned").is_none()
    }

    #[getter]
    fn seed(&self) -> PyResult<u64> {
        Ok(self.get()?.seed())
    }

    #[getter]
    fn num_lines(&self) -> PyResult<u64> {
        Ok(self.get()?.num_lines())
    }

    #[getter]
    fn physical_lines(&self) -> PyResult<u64> {
        Ok(self.get()?.physical_lines())
    }

    #[getter]
    fn num_batches(&self) -> PyResult<u64> {
        Ok(self.get()?.num_batches())
    }

    #[getter]
    fn lines_per_epoch(&self) -> PyResult<u64> {
        Ok(self.get()?.lines_per_epoch())
    }

    /// `(start, end)` addresses of the mapping, for checking that buffers point into it.
    fn map_address_range(&self) -> PyResult<(usize, usize)> {
        let r = self.get()?.map_address_range();
        Ok((r.start, r.end))
    }

    fn validate_utf8(&self, py: Python<'_>) -> PyResult<()> {
        let b = self.get()?;
        py.detach(|| b.validate_utf8()).map_err(to_py_err)
    }

    fn epoch(&self, py: Python<'_>, index: u64) -> PyResult<NativeEpoch> {
        let b = self.get()?;
        let epoch = py.detach(|| b.epoch(index)).map_err(to_py_err)?;
        Ok(NativeEpoch { epoch })
    }
}

/// One epoch's fixed order, cut into batches.
#[pyclass(module = "mmap_batcher._native", frozen)]
struct NativeEpoch {
    epoch: Epoch,
}

impl NativeEpoch {
    fn batch(&self, b: u64) -> PyResult<mmap_batcher::Batch> {
        self.epoch
            .batch(b)
            .ok_or_else(|| pyo3::exceptions::PyIndexError::new_err(format!("batch {b} out of range")))
    }
}

#[pymethods]
impl NativeEpoch {
    #[getter]
    fn index(&self) -> u64 {
        self.epoch.index()
    }

    #[getter]
    fn num_batches(&self) -> u64 {
        self.epoch.num_batches()
    }

    /// The batch numbers of shard `shard` of `shards`.
    fn shard_batches(&self, shard: u64, shards: u64) -> PyResult<Vec<u64>> {
        if shard >= shards {
            return Err(PyValueError::new_err(format!("shard {shard} out of range for {shards} shards")));
        }
        Ok(self.epoch.shard_batches(shard, shards).collect())
    }

    /// Batches `batch_ids` as `list[bytes]`, in order, each located (order, index gather,
    /// cache touch) one batch ahead on a second thread while Python consumes the current one.
    fn iter_batch_lines(&self, batch_ids: Vec<u64>) -> PyResult<BatchLinesIter> {
        if let Some(&b) = batch_ids.iter().find(|&&b| b >= self.epoch.num_batches()) {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!("batch {b} out of range")));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let epoch = self.epoch.clone();
        std::thread::spawn(move || {
            for b in batch_ids {
                let located = epoch.batch(b).expect("checked above").locate();
                // The receiver is gone when Python dropped the iterator: stop early.
                if tx.send(located).is_err() {
                    return;
                }
            }
        });
        Ok(BatchLinesIter { rx: std::sync::Mutex::new(Some(rx)) })
    }

    /// Batch `b` as a zero-copy Arrow batch with `columns` (all five when `None`).
    #[pyo3(signature = (b, columns=None, compact=false))]
    fn record_batch(&self, py: Python<'_>, b: u64, columns: Option<Vec<String>>, compact: bool) -> PyResult<ArrowBatch> {
        let columns = columns_from(columns)?;
        let batch = self.batch(b)?;
        let rb = py.detach(|| batch.to_record_batch_with(&columns)).map_err(to_py_err)?;
        let rb = if compact { mmap_batcher::compact(&rb) } else { rb };
        Ok(ArrowBatch { batch: rb, epoch: self.epoch.index(), index: b })
    }
}

/// Iterator of `list[bytes]` batches fed by a locating thread.
#[pyclass(module = "mmap_batcher._native", frozen)]
struct BatchLinesIter {
    /// Taken out while waiting (a `Receiver` may move across threads but not be shared).
    rx: std::sync::Mutex<Option<std::sync::mpsc::Receiver<mmap_batcher::LocatedLines>>>,
}

#[pymethods]
impl BatchLinesIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyList>>> {
        let mut slot = self.rx.lock().expect("lock poisoned");
        let Some(rx) = slot.take() else { return Ok(None) };
        let (rx, next) = py.detach(move || {
            let next = rx.recv();
            (rx, next)
        });
        match next {
            Ok(located) => {
                *slot = Some(rx);
                Ok(Some(PyList::new(py, located.raw_lines().map(|l| PyBytes::new(py, l)))?))
            }
            Err(_) => Ok(None),
        }
    }
}

/// An Arrow record batch whose `line` views point into the file's map. It implements the
/// Arrow PyCapsule interface, so `pyarrow.record_batch(b)` and `polars.DataFrame(b)` import
/// it without copying line bytes; they keep the map alive for as long as they need it.
#[pyclass(module = "mmap_batcher._native", frozen)]
struct ArrowBatch {
    batch: RecordBatch,
    epoch: u64,
    index: u64,
}

impl ArrowBatch {
    fn as_struct(&self) -> (Arc<Field>, ArrayRef) {
        let field = Field::new_struct("", self.batch.schema_ref().fields().clone(), false);
        (Arc::new(field), Arc::new(StructArray::from(self.batch.clone())))
    }
}

#[pymethods]
impl ArrowBatch {
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyCapsule>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let (field, array) = self.as_struct();
        Ok(to_array_pycapsules(py, field, array.as_ref(), requested_schema)?)
    }

    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        Ok(to_schema_pycapsule(py, self.batch.schema_ref().as_ref())?)
    }

    /// A one-batch Arrow stream, for readers that take streams (`polars.DataFrame`).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyCapsule>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let (field, array) = self.as_struct();
        let reader = ArrayIterator::new(std::iter::once(Ok(array)), field);
        Ok(to_stream_pycapsule(py, Box::new(reader), requested_schema)?)
    }

    #[getter]
    fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    fn __len__(&self) -> usize {
        self.batch.num_rows()
    }

    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.batch.schema().fields().iter().map(|f| f.name().clone()).collect()
    }

    #[getter]
    fn epoch(&self) -> u64 {
        self.epoch
    }

    #[getter]
    fn batch(&self) -> u64 {
        self.index
    }

    /// Bytes Arrow reports for this batch: the whole map window(s) while zero-copy.
    #[getter]
    fn nbytes(&self) -> usize {
        self.batch.columns().iter().map(|c| c.get_array_memory_size()).sum()
    }

    /// A copy holding only the line bytes its rows reference.
    fn compact(&self) -> ArrowBatch {
        ArrowBatch { batch: mmap_batcher::compact(&self.batch), epoch: self.epoch, index: self.index }
    }

    fn __repr__(&self) -> String {
        format!(
            "ArrowBatch(epoch={}, batch={}, num_rows={}, columns={:?})",
            self.epoch,
            self.index,
            self.batch.num_rows(),
            self.column_names()
        )
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeBatcher>()?;
    m.add_class::<NativeEpoch>()?;
    m.add_class::<ArrowBatch>()?;
    m.add_class::<BatchLinesIter>()?;
    m.add("InvalidUtf8Error", m.py().get_type::<InvalidUtf8Error>())?;
    m.add("LineTooLongError", m.py().get_type::<LineTooLongError>())?;
    m.add("FileChangedError", m.py().get_type::<FileChangedError>())?;
    m.add("COLUMNS", column_names())?;
    m.add("MAX_LINE_LEN", mmap_batcher::MAX_LINE_LEN)?;
    Ok(())
}
