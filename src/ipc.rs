//! Arrow IPC stream output, compact by construction.
//!
//! A zero-copy batch written as it is would carry its whole map window (the whole file for
//! a file under 2 GiB) once per batch, so every batch is converted before it is written,
//! copying only the line bytes it references. The default line type is plain
//! `LargeUtf8` / `LargeBinary`, which every Arrow reader (pyarrow, Polars, DuckDB, older
//! Arrow versions) reads; `Utf8View` / `BinaryView` is the option for readers that want views.

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::StreamWriter;

use crate::arrow_batch::{compact, schema, Column};
use crate::batcher::Batcher;
use crate::error::{Error, Result};
use crate::options::LineType;

/// How the `line` column is typed in an IPC stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpcLineType {
    /// `LargeUtf8` (or `LargeBinary`): the widest compatibility, no 2 GiB cap per batch.
    #[default]
    Large,
    /// `Utf8View` (or `BinaryView`), compacted: for readers with view support.
    View,
}

/// What a stream held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpcSummary {
    pub batches: u64,
    pub rows: u64,
}

/// The schema of the stream: `columns`, with `line` typed as `ipc_type` says.
pub fn ipc_schema(columns: &[Column], line_type: LineType, ipc_type: IpcLineType) -> SchemaRef {
    let base = schema(columns, line_type);
    if ipc_type == IpcLineType::View {
        return base;
    }
    let fields: Vec<Field> = base
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => f.as_ref().clone().with_data_type(DataType::LargeUtf8),
            DataType::BinaryView => f.as_ref().clone().with_data_type(DataType::LargeBinary),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Writes epochs `0..epochs` of `batcher` to `out` as one Arrow IPC stream.
///
/// ```
/// # use std::io::Write;
/// # let mut f = tempfile::NamedTempFile::new().unwrap();
/// # for i in 0..10 { writeln!(f, "row {i}").unwrap(); }
/// use mmap_batcher::{write_ipc_stream, Batcher, Column, IpcLineType, Options};
/// let b = Batcher::open(f.path(), Options { batch_size: 4, ..Default::default() })?;
/// let mut bytes = Vec::new();
/// let summary = write_ipc_stream(&b, 2, &Column::ALL, IpcLineType::Large, &mut bytes)?;
/// assert_eq!((summary.batches, summary.rows), (4, 16));
/// let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
/// assert_eq!(reader.map(|b| b.unwrap().num_rows()).sum::<usize>(), 16);
/// # Ok::<(), mmap_batcher::Error>(())
/// ```
pub fn write_ipc_stream(
    batcher: &Batcher,
    epochs: u64,
    columns: &[Column],
    ipc_type: IpcLineType,
    out: impl Write,
) -> Result<IpcSummary> {
    let arrow_err = |source| Error::Arrow { path: batcher.path().to_path_buf(), source };
    let schema = ipc_schema(columns, batcher.options().line_type, ipc_type);
    let mut writer = StreamWriter::try_new(out, &schema).map_err(arrow_err)?;
    let mut summary = IpcSummary::default();
    for epoch in batcher.epochs(epochs) {
        for batch in epoch?.batches() {
            let rb = batch.to_record_batch_with(columns)?;
            let rb = match ipc_type {
                IpcLineType::View => compact(&rb),
                IpcLineType::Large => to_large(&rb, &schema).map_err(arrow_err)?,
            };
            writer.write(&rb).map_err(arrow_err)?;
            summary.batches += 1;
            summary.rows += rb.num_rows() as u64;
        }
    }
    writer.finish().map_err(arrow_err)?;
    Ok(summary)
}

/// Casts the view columns of `rb` to the large types of `schema` (one copy of the line bytes).
fn to_large(rb: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let columns = rb
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { arrow::compute::cast(c, f.data_type()) })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rb.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
}
