//! `Epoch`: one epoch's fixed order, cut into batches, as seen by one shard.

use mmap_batcher::{BatchStream, LineLayout, Served, Shard, ShardPlan};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::arrow::{columns, stream_capsule, ArrowBatch};
use crate::error::PyResult;
use crate::iter::{BatchIter, Output};
use crate::options::{deprecated, warn_deprecated, Word};

/// One epoch: a fixed order of the kept lines, cut into batches (this shard's only).
#[pyclass(module = "mmap_batcher._native", frozen)]
pub struct Epoch {
    epoch: mmap_batcher::Epoch,
    plan: ShardPlan,
    /// Batches of the plan already served (a resumed epoch).
    done: u64,
}

impl Epoch {
    pub fn new(epoch: mmap_batcher::Epoch, shard: Shard, base: Served, done: u64) -> Self {
        let plan = epoch.shard_plan(shard, base);
        Epoch { epoch, plan, done }
    }

    fn stream(&self, output: &Output) -> BatchStream {
        let units = self.plan.clone().units_after(self.epoch.number(), self.done);
        BatchStream::with_options(self.epoch.batcher(), units, output.stream_options(self.epoch.batcher(), None))
    }
}

/// A [`RecordBatchReader`](arrow::array::RecordBatchReader) over an epoch's batches.
struct Reader {
    stream: BatchStream,
    columns: Vec<mmap_batcher::Column>,
    schema: arrow::datatypes::SchemaRef,
}

/// Rows per batch of the Arrow stream an engine reads (DuckDB, `pyarrow`): logical batches
/// are joined up to this many, since an engine pays per batch (DataFusion's default batch
/// size; DuckDB's vectors are 2,048 rows).
const ENGINE_ROWS: usize = 8192;

impl Reader {
    fn next_logical(&mut self) -> Option<mmap_batcher::Result<arrow::array::RecordBatch>> {
        Some(self.stream.next()?.and_then(|r| r.to_record_batch(&self.columns)))
    }
}

impl Iterator for Reader {
    type Item = Result<arrow::array::RecordBatch, arrow::error::ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let external = |e: mmap_batcher::Error| arrow::error::ArrowError::ExternalError(Box::new(e));
        let mut parts = Vec::new();
        let mut rows = 0;
        while rows < ENGINE_ROWS {
            match self.next_logical() {
                Some(Ok(rb)) => {
                    rows += rb.num_rows();
                    parts.push(rb);
                }
                Some(Err(e)) => return Some(Err(external(e))),
                None => break,
            }
        }
        (!parts.is_empty()).then(|| mmap_batcher::coalesce(&parts))
    }
}

impl arrow::array::RecordBatchReader for Reader {
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.schema.clone()
    }
}

#[pymethods]
impl Epoch {
    /// The epoch number.
    #[getter]
    fn number(&self) -> u64 {
        self.epoch.number()
    }

    /// Deprecated: ``number``.
    #[getter]
    fn index(&self, py: Python<'_>) -> PyResult<u64> {
        warn_deprecated(py, "Epoch.index is deprecated, use Epoch.number".into())?;
        Ok(self.epoch.number())
    }

    /// Batches in the whole epoch (all shards).
    #[getter]
    fn num_batches(&self) -> u64 {
        self.epoch.num_batches()
    }

    /// The batch numbers this shard serves, in order.
    #[getter]
    fn batch_ids(&self) -> Vec<u64> {
        (self.done..self.plan.len()).filter_map(|i| self.plan.get(i)).collect()
    }

    /// Number of batches this shard serves.
    fn __len__(&self) -> usize {
        usize::try_from(self.plan.len().saturating_sub(self.done)).unwrap_or(usize::MAX)
    }

    /// Each batch as ``list[bytes]``, lines with their terminator. Works on any bytes.
    /// The next batches are built ahead, on every core, while the caller works on this one.
    fn batches(&self) -> BatchIter {
        BatchIter::new(self.stream(&Output::Bytes), Output::Bytes, None)
    }

    fn __iter__(&self) -> BatchIter {
        self.batches()
    }

    /// Each batch as an ``ArrowBatch`` (``line``, ``line_number``, ``byte_offset``,
    /// ``epoch``, ``batch``, and ``file`` for several files).
    ///
    /// The ``line`` views point into the map: pass the batch to ``pyarrow.record_batch``
    /// or ``polars.DataFrame`` to use it without copying. ``compact=True`` copies only the
    /// referenced bytes (for consumers that account memory by buffer size);
    /// ``layout="large"`` gives ``large_string``/``large_binary`` for consumers without
    /// view support (``line_type=`` is its deprecated spelling). Raises
    /// ``InvalidUtf8Error`` on the string path if a kept line is not UTF-8.
    #[pyo3(signature = (columns=None, *, compact=false, layout=None, line_type=None))]
    fn record_batches(
        &self,
        py: Python<'_>,
        columns: Option<Vec<String>>,
        compact: bool,
        layout: Option<Word<LineLayout>>,
        line_type: Option<Word<LineLayout>>,
    ) -> PyResult<BatchIter> {
        let layout = deprecated(py, "line_type", line_type, "layout", layout)?.map_or(LineLayout::View, |w| w.0);
        let cols = crate::arrow::columns(columns, self.epoch.batcher())?;
        let output = Output::Arrow { columns: cols, layout, compact };
        Ok(BatchIter::new(self.stream(&output), output, None))
    }

    /// Each batch as a ``polars.DataFrame`` (zero-copy import of the Arrow batch).
    #[pyo3(signature = (columns=None))]
    fn dataframes(&self, columns: Option<Vec<String>>) -> PyResult<BatchIter> {
        let cols = crate::arrow::columns(columns, self.epoch.batcher())?;
        let output = Output::Polars { columns: cols };
        Ok(BatchIter::new(self.stream(&output), output, None))
    }

    /// Batch ``b`` of the epoch (any shard's) as an ``ArrowBatch``.
    #[pyo3(signature = (b, columns=None, *, compact=false))]
    fn batch(&self, py: Python<'_>, b: u64, columns: Option<Vec<String>>, compact: bool) -> PyResult<ArrowBatch> {
        let cols = crate::arrow::columns(columns, self.epoch.batcher())?;
        let batch = self
            .epoch
            .batch(b)
            .ok_or_else(|| pyo3::exceptions::PyIndexError::new_err(format!("batch {b} out of range for {} batches", self.epoch.num_batches())))?;
        let rb = py.detach(|| batch.to_record_batch_with(&cols))?;
        let rb = mmap_batcher::with_layout(rb, LineLayout::View, compact)?;
        Ok(ArrowBatch::new(rb, self.epoch.number(), b))
    }

    /// This shard's batches as one Arrow stream (zero-copy views), so ``pyarrow``,
    /// ``polars.from_arrow`` and DuckDB read an epoch directly. The stream's record batches
    /// hold at least 8,192 rows (the last one fewer): several of the epoch's batches joined,
    /// as an engine reads fastest; the ``batch`` column names each row's own batch.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(&self, py: Python<'py>, requested_schema: Option<Bound<'py, PyCapsule>>) -> PyResult<Bound<'py, PyAny>> {
        let cols = columns(None, self.epoch.batcher())?;
        let schema = mmap_batcher::schema(&cols, self.epoch.batcher().options());
        let reader = Reader { stream: self.stream(&Output::Polars { columns: cols.clone() }), columns: cols, schema };
        stream_capsule(py, Box::new(reader), requested_schema)
    }

    fn __repr__(&self) -> String {
        format!("Epoch(number={}, batches={})", self.epoch.number(), self.__len__())
    }
}
