//! Arrow batches handed to Python. The Arrow PyCapsule interface is delegated to
//! pyo3-arrow's own `RecordBatch` and `RecordBatchReader` classes (no capsule code here);
//! this type adds what a batch of lines needs: its epoch and batch numbers, the size it
//! reports, compaction, and pickling (compacted, as an Arrow IPC stream).

use arrow::array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow::datatypes::SchemaRef;
use mmap_batcher::Column;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyCapsule, PyTuple};
use pyo3_arrow::{PyRecordBatch, PyRecordBatchReader};

use crate::error::{option_error, PyResult};

/// The columns named `names` (the batcher's defaults when `None`).
pub fn columns(names: Option<Vec<String>>, batcher: &mmap_batcher::Batcher) -> PyResult<Vec<Column>> {
    let defaults = batcher.default_columns();
    let fields = &batcher.options().fields;
    match names {
        None => Ok(defaults),
        Some(names) => names
            .iter()
            .map(|n| {
                batcher.column(n).ok_or_else(|| {
                    option_error(format!("unknown column {n:?}; columns are {:?}", defaults.iter().map(|c| c.name(fields)).collect::<Vec<_>>()))
                })
            })
            .collect(),
    }
}

/// A stream capsule of `reader`, through pyo3-arrow's `RecordBatchReader`.
pub fn stream_capsule<'py>(
    py: Python<'py>,
    reader: Box<dyn RecordBatchReader + Send>,
    requested_schema: Option<Bound<'py, PyCapsule>>,
) -> PyResult<Bound<'py, PyAny>> {
    let reader = Bound::new(py, PyRecordBatchReader::new(reader))?;
    Ok(reader.call_method1(intern!(py, "__arrow_c_stream__"), (requested_schema,))?)
}

/// An Arrow record batch whose `line` views point into the file's map. It implements the
/// Arrow PyCapsule interface, so `pyarrow.record_batch(b)` and `polars.DataFrame(b)` import
/// it without copying line bytes; they keep the map alive for as long as they need it.
/// Pickling sends a compact copy (only the bytes its rows reference).
#[pyclass(module = "mmap_batcher._native", frozen)]
pub struct ArrowBatch {
    batch: RecordBatch,
    epoch: u64,
    number: u64,
}

impl ArrowBatch {
    pub fn new(batch: RecordBatch, epoch: u64, number: u64) -> Self {
        ArrowBatch { batch, epoch, number }
    }

    pub fn record_batch(&self) -> &RecordBatch {
        &self.batch
    }

    fn exported<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyRecordBatch>> {
        Ok(Bound::new(py, PyRecordBatch::new(self.batch.clone()))?)
    }
}

#[pymethods]
impl ArrowBatch {
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(&self, py: Python<'py>, requested_schema: Option<Bound<'py, PyCapsule>>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.exported(py)?.call_method1(intern!(py, "__arrow_c_array__"), (requested_schema,))?)
    }

    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.exported(py)?.call_method0(intern!(py, "__arrow_c_schema__"))?)
    }

    /// A one-batch Arrow stream, for readers that take streams (`polars.DataFrame`).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(&self, py: Python<'py>, requested_schema: Option<Bound<'py, PyCapsule>>) -> PyResult<Bound<'py, PyAny>> {
        let schema: SchemaRef = self.batch.schema();
        let reader = RecordBatchIterator::new([Ok(self.batch.clone())], schema);
        stream_capsule(py, Box::new(reader), requested_schema)
    }

    /// Number of rows.
    #[getter]
    fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    fn __len__(&self) -> usize {
        self.batch.num_rows()
    }

    /// The column names.
    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.batch.schema().fields().iter().map(|f| f.name().clone()).collect()
    }

    /// The epoch of this batch.
    #[getter]
    fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The batch's position in its epoch.
    #[getter]
    fn batch(&self) -> u64 {
        self.number
    }

    /// Bytes Arrow reports for this batch: the whole map window(s) while zero-copy.
    #[getter]
    fn nbytes(&self) -> usize {
        self.batch.columns().iter().map(|c| c.get_array_memory_size()).sum()
    }

    /// A copy holding only the line bytes its rows reference (read under the truncation
    /// guard: a mapped file truncated meanwhile raises ``FileChangedError``).
    fn compact(&self) -> PyResult<ArrowBatch> {
        Ok(ArrowBatch { batch: mmap_batcher::read_guarded(|| mmap_batcher::compact(&self.batch))?, epoch: self.epoch, number: self.number })
    }

    /// A copy with the `line` column as `large_string` / `large_binary`, for consumers
    /// without string-view support.
    fn to_large(&self) -> PyResult<ArrowBatch> {
        Ok(ArrowBatch { batch: mmap_batcher::read_guarded(|| mmap_batcher::to_large(&self.batch))??, epoch: self.epoch, number: self.number })
    }

    /// The ``line`` column as two ``bytearray``s: every line's bytes end to end, and
    /// ``num_rows + 1`` little-endian ``int64`` offsets into them (line ``i`` is
    /// ``values[offsets[i]:offsets[i + 1]]``). The tensor form of ``mmap_batcher.torch``
    /// wraps them without a Python loop; this is one copy of the line bytes.
    fn line_buffers<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyByteArray>, Bound<'py, PyByteArray>)> {
        let column = self.batch.column_by_name("line").ok_or_else(|| option_error("this batch has no line column"))?;
        let lines = line_slices(column.as_ref())?;
        let total: usize = lines.iter().map(|l| l.len()).sum();
        // The one read of the lines: under the truncation guard.
        let values = mmap_batcher::read_guarded(|| {
            PyByteArray::new_with(py, total, |buf| {
                let mut at = 0;
                for l in &lines {
                    buf[at..at + l.len()].copy_from_slice(l);
                    at += l.len();
                }
                Ok(())
            })
        })??;
        let offsets = PyByteArray::new_with(py, (lines.len() + 1) * 8, |buf| {
            let mut end = 0i64;
            buf[..8].copy_from_slice(&0i64.to_le_bytes());
            for (i, l) in lines.iter().enumerate() {
                end += l.len() as i64;
                buf[(i + 1) * 8..(i + 2) * 8].copy_from_slice(&end.to_le_bytes());
            }
            Ok(())
        })?;
        Ok((values, offsets))
    }

    /// Pickles a compact copy as an Arrow IPC stream: never the map.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let me = slf.get();
        let compact = mmap_batcher::read_guarded(|| mmap_batcher::compact(&me.batch))?;
        let mut bytes = Vec::new();
        let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, compact.schema_ref())?;
        w.write(&compact)?;
        w.finish()?;
        drop(w);
        let restore = py.import(intern!(py, "mmap_batcher._native"))?.getattr(intern!(py, "_arrow_batch_from_ipc"))?;
        Ok((restore, (PyBytes::new(py, &bytes), me.epoch, me.number).into_pyobject(py)?))
    }

    fn __repr__(&self) -> String {
        format!("ArrowBatch(epoch={}, batch={}, num_rows={}, columns={:?})", self.epoch, self.number, self.batch.num_rows(), self.column_names())
    }
}

/// Unpickles an [`ArrowBatch`].
#[pyfunction]
pub fn _arrow_batch_from_ipc(data: &[u8], epoch: u64, batch: u64) -> PyResult<ArrowBatch> {
    let mut reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(data), None)?;
    let rb = reader.next().ok_or_else(|| option_error("an empty pickled ArrowBatch"))??;
    Ok(ArrowBatch { batch: rb, epoch, number: batch })
}

/// The bytes of each row of a line column (any of the string and binary types; null rows
/// are empty).
fn line_slices(column: &dyn arrow::array::Array) -> PyResult<Vec<&[u8]>> {
    use arrow::array::AsArray;
    use arrow::datatypes::DataType;
    fn rows<'a, T: AsRef<[u8]> + ?Sized + 'a>(values: impl Iterator<Item = Option<&'a T>>) -> Vec<&'a [u8]> {
        values.map(|v| v.map_or(&[][..], |v| v.as_ref())).collect()
    }
    Ok(match column.data_type() {
        DataType::Utf8View => rows(column.as_string_view().iter().map(|v| v.map(str::as_bytes))),
        DataType::BinaryView => rows(column.as_binary_view().iter()),
        DataType::Utf8 => rows(column.as_string::<i32>().iter().map(|v| v.map(str::as_bytes))),
        DataType::LargeUtf8 => rows(column.as_string::<i64>().iter().map(|v| v.map(str::as_bytes))),
        DataType::Binary => rows(column.as_binary::<i32>().iter()),
        DataType::LargeBinary => rows(column.as_binary::<i64>().iter()),
        other => return Err(option_error(format!("the line column has type {other}, not a string or binary type"))),
    })
}
