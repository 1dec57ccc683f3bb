//! Iterating batches from Python: a [`BatchStream`] read with the GIL released, waiting in
//! short slices so that Ctrl-C interrupts, each batch handed out as `list[bytes]`, an
//! [`ArrowBatch`] or a `polars.DataFrame`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mmap_batcher::{BatchStream, Column, LineLayout, Served, StreamOptions, Wait};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::arrow::ArrowBatch;
use crate::error::PyResult;

/// What each batch is handed out as.
#[derive(Debug, Clone)]
pub enum Output {
    /// `list[bytes]`, lines with their terminators (the original API).
    Bytes,
    /// [`ArrowBatch`] with these columns.
    Arrow { columns: Vec<Column>, layout: LineLayout, compact: bool },
    /// `polars.DataFrame` with these columns.
    Polars { columns: Vec<Column> },
}

impl Output {
    /// How a stream for this output reads: Arrow outputs are assembled by the stream's
    /// builders, and read no line bytes without the `line` column; `list[bytes]` copies
    /// on the consumer's side, under the GIL.
    pub fn stream_options(&self, core: &mmap_batcher::Batcher, allowed: Option<Arc<[std::ops::Range<u64>]>>) -> StreamOptions {
        match self {
            Output::Bytes => StreamOptions { allowed, ..Default::default() },
            Output::Arrow { columns, .. } | Output::Polars { columns } => {
                StreamOptions { allowed, read_lines: core.reads_lines(columns), columns: Some(columns.as_slice().into()), ..Default::default() }
            }
        }
    }
}

/// Where a batcher's own iteration is: the epoch, what of it was served before the
/// current plan started, and how many batches of the plan were handed out.
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    pub epoch: u64,
    pub base: Served,
    pub done: u64,
}

/// Locks a mutex, ignoring poisoning (the data is plain counters and handles).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An iterator of batches.
#[pyclass(module = "mmap_batcher._native", frozen)]
pub struct BatchIter {
    /// Taken out while waiting (a stream may move across threads but not be shared).
    stream: Mutex<Option<BatchStream>>,
    output: Output,
    /// The batcher's cursor, advanced batch by batch, and to the next epoch at the end.
    cursor: Option<Arc<Mutex<Cursor>>>,
    /// Arrow output for an engine (the Polars scan, Ray): batches joined until they hold
    /// this many rows, since an engine pays per batch. 1: one batch each.
    join_rows: usize,
}

impl BatchIter {
    pub fn new(stream: BatchStream, output: Output, cursor: Option<Arc<Mutex<Cursor>>>) -> Self {
        BatchIter { stream: Mutex::new(Some(stream)), output, cursor, join_rows: 1 }
    }

    /// Like [`new`](Self::new), Arrow batches joined up to `rows` rows (see `join_rows`).
    pub fn joining(stream: BatchStream, output: Output, rows: usize) -> Self {
        BatchIter { stream: Mutex::new(Some(stream)), output, cursor: None, join_rows: rows.max(1) }
    }

    /// The next batch of the stream, waiting with the GIL released (Ctrl-C interrupts);
    /// `None` at its end.
    fn next_ready(&self, py: Python<'_>) -> PyResult<Option<mmap_batcher::Ready>> {
        let mut slot = lock(&self.stream);
        let Some(mut stream) = slot.take() else { return Ok(None) };
        loop {
            let (back, wait) = py.detach(move || {
                let w = stream.wait(Duration::from_millis(100));
                (stream, w)
            });
            stream = back;
            match wait {
                Wait::Pending => {
                    if let Err(e) = py.check_signals() {
                        *slot = Some(stream);
                        return Err(e.into());
                    }
                }
                Wait::Done => {
                    if let Some(c) = &self.cursor {
                        let mut c = lock(c);
                        *c = Cursor { epoch: c.epoch.saturating_add(1), base: Served::NONE, done: 0 };
                    }
                    return Ok(None);
                }
                Wait::Batch(ready) => {
                    // After an error the stream is over, and the epoch is not finished.
                    let ready = (*ready)?;
                    *slot = Some(stream);
                    return Ok(Some(ready));
                }
            }
        }
    }

    /// Batches joined up to `join_rows` rows, as one [`ArrowBatch`] named by the first.
    fn joined<'py>(
        &self,
        py: Python<'py>,
        first: mmap_batcher::Ready,
        columns: &[Column],
        layout: LineLayout,
        compact: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (epoch, number) = (first.batch.epoch(), first.batch.number());
        let mut parts = vec![py.detach(|| first.to_record_batch(columns))?];
        let mut rows = parts[0].num_rows();
        while rows < self.join_rows {
            let Some(ready) = self.next_ready(py)? else { break };
            let rb = py.detach(|| ready.to_record_batch(columns))?;
            rows += rb.num_rows();
            parts.push(rb);
        }
        let rb = py.detach(|| mmap_batcher::coalesce(&parts))?;
        let rb = mmap_batcher::read_guarded(|| mmap_batcher::with_layout(rb, layout, compact))??;
        Ok(Bound::new(py, ArrowBatch::new(rb, epoch, number))?.into_any())
    }

    fn convert<'py>(&self, py: Python<'py>, ready: mmap_batcher::Ready) -> PyResult<Bound<'py, PyAny>> {
        Ok(match &self.output {
            // Copied out of the map under the guard: a truncation meanwhile is an error.
            // Only `bytes` are made there (not tracked by the garbage collector, so no
            // finalizer of anyone's can run under the guard); the list after.
            Output::Bytes => {
                let batcher = ready.batch.batcher();
                let lines: Vec<Option<Bound<'py, PyBytes>>> = ready.located.reading(|| {
                    let opts = batcher.options();
                    Ok(if opts.field.is_none() && opts.fields.is_empty() {
                        ready.located.raw_lines().map(|l| Some(PyBytes::new(py, l))).collect()
                    } else {
                        ready.located.values(batcher, true)?.into_iter().map(|(_, v)| v.map(|l| PyBytes::new(py, &l))).collect()
                    })
                })?;
                PyList::new(py, lines)?.into_any()
            }
            Output::Arrow { columns, layout, compact } => {
                let rb = py.detach(|| ready.to_record_batch(columns))?;
                let rb = mmap_batcher::read_guarded(|| mmap_batcher::with_layout(rb, *layout, *compact))??;
                Bound::new(py, ArrowBatch::new(rb, ready.batch.epoch(), ready.batch.number()))?.into_any()
            }
            Output::Polars { columns } => {
                let rb = py.detach(|| ready.to_record_batch(columns))?;
                let batch = Bound::new(py, ArrowBatch::new(rb, ready.batch.epoch(), ready.batch.number()))?;
                py.import(intern!(py, "polars"))?.getattr(intern!(py, "DataFrame"))?.call1((batch,))?
            }
        })
    }
}

#[pymethods]
impl BatchIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(ready) = self.next_ready(py)? else { return Ok(None) };
        if let (Output::Arrow { columns, layout, compact }, true) = (&self.output, self.join_rows > 1) {
            return self.joined(py, ready, columns, *layout, *compact).map(Some);
        }
        let out = self.convert(py, ready)?;
        if let Some(c) = &self.cursor {
            lock(c).done += 1;
        }
        Ok(Some(out))
    }
}
