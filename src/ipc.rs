//! Arrow IPC stream output, compact by construction.
//!
//! A zero-copy batch written as it is would carry its whole map window (the whole file for
//! a file under 2 GiB) once per batch, so every batch is converted before it is written,
//! copying only the line bytes it references. The default layout is plain
//! `LargeUtf8` / `LargeBinary`, which every Arrow reader (pyarrow, Polars, DuckDB, older
//! Arrow versions) reads; `Utf8View` / `BinaryView` is the option for readers that want views.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ipc::writer::{FileWriter, StreamWriter};

use crate::arrow::{layout_schema, schema, with_layout, Column};
use crate::batcher::Batcher;
use crate::error::{Error, Result};
use crate::options::LineLayout;
use crate::plan::{Served, Shard, ShardPlan};
use crate::stream::{BatchStream, StreamOptions};

/// What a stream held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpcSummary {
    /// Record batches written.
    pub batches: u64,
    /// Rows written.
    pub rows: u64,
}

/// The schema of the stream: `columns`, with `line` laid out as `layout` says.
pub fn ipc_schema(batcher: &Batcher, columns: &[Column], layout: LineLayout) -> SchemaRef {
    layout_schema(schema(columns, batcher.options()), layout)
}

/// Writes epochs `0..epochs` of `batcher` to `out` as one Arrow IPC stream.
///
/// ```
/// # use std::io::Write;
/// # let mut f = tempfile::NamedTempFile::new().unwrap();
/// # for i in 0..10 { writeln!(f, "row {i}").unwrap(); }
/// use mmap_batcher::{write_ipc_stream, Batcher, Column, IndexCache, LineLayout, Options, Shard};
/// let b = Batcher::open(f.path(), Options { batch_size: 4, index_cache: IndexCache::Off, ..Default::default() })?;
/// let mut bytes = Vec::new();
/// let summary = write_ipc_stream(&b, 2, Shard::WHOLE, &b.default_columns(), LineLayout::Large, &mut bytes)?;
/// assert_eq!((summary.batches, summary.rows), (4, 16));
/// let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
/// assert_eq!(reader.map(|b| b.unwrap().num_rows()).sum::<usize>(), 16);
/// # Ok::<(), mmap_batcher::Error>(())
/// ```
pub fn write_ipc_stream(batcher: &Batcher, epochs: u64, shard: Shard, columns: &[Column], layout: LineLayout, out: impl Write) -> Result<IpcSummary> {
    let schema = ipc_schema(batcher, columns, layout);
    let writer = StreamWriter::try_new(out, &schema).map_err(arrow_error(batcher))?;
    write_batches(batcher, epochs, shard, columns, layout, writer)
}

/// Like [`write_ipc_stream`], in the Arrow IPC *file* format: a footer indexes the
/// batches, so readers that open files (`pyarrow.ipc.open_file`, `polars.scan_ipc`,
/// DuckDB) can seek. Needs a file, not a pipe, to be useful; written front to back all
/// the same.
///
/// ```
/// # use std::io::Write;
/// # let mut f = tempfile::NamedTempFile::new().unwrap();
/// # for i in 0..10 { writeln!(f, "row {i}").unwrap(); }
/// use mmap_batcher::{write_ipc_file, Batcher, IndexCache, LineLayout, Options, Shard};
/// let b = Batcher::open(f.path(), Options { batch_size: 4, index_cache: IndexCache::Off, ..Default::default() })?;
/// let mut bytes = Vec::new();
/// write_ipc_file(&b, 1, Shard::WHOLE, &b.default_columns(), LineLayout::View, &mut bytes)?;
/// let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
/// assert_eq!(reader.num_batches(), 2);
/// # Ok::<(), mmap_batcher::Error>(())
/// ```
pub fn write_ipc_file(batcher: &Batcher, epochs: u64, shard: Shard, columns: &[Column], layout: LineLayout, out: impl Write) -> Result<IpcSummary> {
    let schema = ipc_schema(batcher, columns, layout);
    let writer = FileWriter::try_new(out, &schema).map_err(arrow_error(batcher))?;
    write_batches(batcher, epochs, shard, columns, layout, writer)
}

/// The two IPC writers, as the loop below uses them.
trait IpcWriter {
    fn write(&mut self, batch: &RecordBatch) -> std::result::Result<(), ArrowError>;
    fn finish(&mut self) -> std::result::Result<(), ArrowError>;
}

impl<W: Write> IpcWriter for StreamWriter<W> {
    fn write(&mut self, batch: &RecordBatch) -> std::result::Result<(), ArrowError> {
        StreamWriter::write(self, batch)
    }
    fn finish(&mut self) -> std::result::Result<(), ArrowError> {
        StreamWriter::finish(self)
    }
}

impl<W: Write> IpcWriter for FileWriter<W> {
    fn write(&mut self, batch: &RecordBatch) -> std::result::Result<(), ArrowError> {
        FileWriter::write(self, batch)
    }
    fn finish(&mut self) -> std::result::Result<(), ArrowError> {
        FileWriter::finish(self)
    }
}

fn arrow_error(batcher: &Batcher) -> impl Fn(ArrowError) -> Error + '_ {
    |source| Error::Arrow { context: batcher.path().display().to_string(), source }
}

/// Epochs `0..epochs` of this shard, each batch laid out and written.
fn write_batches(
    batcher: &Batcher,
    epochs: u64,
    shard: Shard,
    columns: &[Column],
    layout: LineLayout,
    mut writer: impl IpcWriter,
) -> Result<IpcSummary> {
    let arrow_err = arrow_error(batcher);
    let mut summary = IpcSummary::default();
    let (per_epoch, even) = (batcher.num_batches(), batcher.options().even_shards);
    let units = (0..epochs).flat_map(move |e| {
        let plan = ShardPlan::new(per_epoch, Served::NONE, shard, even);
        (0..plan.len()).filter_map(move |i| plan.get(i)).map(move |b| (e, b))
    });
    let options = StreamOptions { columns: Some(columns.into()), ..Default::default() };
    for ready in BatchStream::with_options(batcher, units, options) {
        let ready = ready?;
        let rb = ready.to_record_batch(columns)?;
        // Copies the lines out of the map: guarded, like every read of ours.
        let rb = crate::read_guarded(|| with_layout(rb, layout, true))?.map_err(&arrow_err)?;
        writer.write(&rb).map_err(&arrow_err)?;
        summary.batches += 1;
        summary.rows += rb.num_rows() as u64;
    }
    writer.finish().map_err(&arrow_err)?;
    Ok(summary)
}
