//! The Arrow side: the columns and schema of a batch, zero-copy view arrays over the map
//! ([`views`], the only `unsafe` here), and the copies made when a batch must own its
//! bytes ([`compact`], [`to_large`]).

#[allow(unsafe_code)]
mod views;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryViewArray, RecordBatch, RecordBatchOptions, StringViewArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;

use crate::options::{LineLayout, LineType, Options, RecordPolicy};
pub(crate) use views::{every_cut_holds, line_array, packed_line_array, substrings, FileView, Piece, Utf8Checked, Windows};

use crate::index::LineSpan;

/// The columns a batch can carry, in schema order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// The line's bytes (`Utf8View` or `BinaryView`).
    Line,
    /// 1-based physical line number in its file, as `grep -n` prints it.
    LineNumber,
    /// Byte offset of the line's start in its file.
    ByteOffset,
    /// The epoch the row was served in.
    Epoch,
    /// The batch of that epoch the row was served in.
    Batch,
    /// The file the line is in (dictionary-encoded path); in the default columns of
    /// corpora of several files only.
    File,
    /// The named source the line is of (dictionary-encoded name); in the default columns
    /// of batchers opened with sources only.
    Source,
    /// JSON Lines: field `k` of [`Options::fields`], named as written there (`Utf8View`,
    /// nullable); in the default columns whenever fields are asked.
    Field(u16),
}

impl Column {
    /// Every column of fixed name, in schema order (the field columns follow them).
    pub const ALL: [Column; 7] = [Column::Line, Column::LineNumber, Column::ByteOffset, Column::Epoch, Column::Batch, Column::File, Column::Source];

    /// The default columns of a corpus of `files` files without named sources: all but
    /// `source`, `file` only when there are several.
    pub fn defaults(files: usize) -> Vec<Column> {
        Self::ALL.into_iter().filter(|&c| c != Column::Source && (c != Column::File || files > 1)).collect()
    }

    /// The column's name; a field column's is its path in `fields` ([`Options::fields`]).
    pub fn name(self, fields: &[String]) -> &str {
        match self {
            Column::Field(k) => fields.get(k as usize).map_or("", String::as_str),
            Column::Line => "line",
            Column::LineNumber => "line_number",
            Column::ByteOffset => "byte_offset",
            Column::Epoch => "epoch",
            Column::Batch => "batch",
            Column::File => "file",
            Column::Source => "source",
        }
    }

    /// The column named `name`, the paths of `fields` included.
    pub fn from_name(name: &str, fields: &[String]) -> Option<Column> {
        Self::ALL.into_iter().find(|c| c.name(&[]) == name).or_else(|| fields.iter().position(|f| f == name).map(|k| Column::Field(k as u16)))
    }

    /// The column's Arrow field under `options`.
    pub fn field(self, options: &Options) -> Field {
        let (data_type, nullable) = match self {
            Column::Line => (options.line_type.data_type(), options.field.is_some() && options.on_bad_record == RecordPolicy::Null),
            Column::File | Column::Source => (DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8)), false),
            Column::Field(_) => (DataType::Utf8View, true),
            _ => (DataType::UInt64, false),
        };
        Field::new(self.name(&options.fields), data_type, nullable)
    }
}

impl LineType {
    /// The Arrow type of the `line` column.
    pub fn data_type(self) -> DataType {
        match self {
            LineType::Utf8 => DataType::Utf8View,
            LineType::Binary => DataType::BinaryView,
        }
    }
}

/// The schema of batches carrying `columns` under `options`.
pub fn schema(columns: &[Column], options: &Options) -> SchemaRef {
    Arc::new(Schema::new(columns.iter().map(|c| c.field(options)).collect::<Vec<_>>()))
}

/// Copies the referenced line bytes of every view column into fresh, compact buffers.
///
/// A zero-copy batch reports its whole map window as its memory size (about 1 GB for a
/// 1,024-row batch of a 1 GB file), writes that window whole to Arrow IPC and pickles it
/// whole. Use this before handing a batch to anything that must own its data or accounts
/// memory by buffer size: a query engine that buffers rows, a spill file, a network, a
/// `DataLoader` worker's pipe. A compact batch no longer depends on the file at all.
///
/// ```
/// # use std::io::Write;
/// # let mut f = tempfile::NamedTempFile::new().unwrap();
/// # for i in 0..20_000 { writeln!(f, "line number {i} with some padding").unwrap(); }
/// use arrow::array::Array;
/// let o = mmap_batcher::Options { index_cache: mmap_batcher::IndexCache::Off, ..Default::default() };
/// let b = mmap_batcher::Batcher::open(f.path(), o).unwrap();
/// let batch = b.epoch(0).unwrap().batch(0).unwrap().to_record_batch().unwrap();
/// let small = mmap_batcher::compact(&batch);
/// assert_eq!(small.column(0).as_ref(), batch.column(0).as_ref()); // same values
/// assert!(small.get_array_memory_size() < batch.get_array_memory_size() / 5);
/// ```
pub fn compact(batch: &RecordBatch) -> RecordBatch {
    let columns = batch
        .columns()
        .iter()
        .map(|col| {
            if let Some(a) = col.as_any().downcast_ref::<StringViewArray>() {
                Arc::new(a.gc()) as ArrayRef
            } else if let Some(a) = col.as_any().downcast_ref::<BinaryViewArray>() {
                Arc::new(a.gc()) as ArrayRef
            } else {
                col.clone()
            }
        })
        .collect();
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    // Same schema, same row count, arrays of the same types: this cannot fail.
    RecordBatch::try_new_with_options(batch.schema(), columns, &options).unwrap_or_else(|_| batch.clone())
}

/// The record batches `parts` (of one schema) as one, for an engine that pays per batch:
/// the line views still point into the maps, each distinct window listed once; the other
/// columns copied (a few bytes a row). The `epoch` and `batch` columns keep naming each
/// row's own batch.
pub fn coalesce(parts: &[RecordBatch]) -> Result<RecordBatch, ArrowError> {
    match parts {
        [] => Err(ArrowError::InvalidArgumentError("no batches to coalesce".into())),
        [one] => Ok(one.clone()),
        _ => {
            let schema = parts[0].schema();
            let columns = (0..schema.fields().len())
                .map(|c| {
                    let arrays: Vec<&dyn Array> = parts.iter().map(|p| p.column(c).as_ref()).collect();
                    let joined = match schema.field(c).data_type() {
                        DataType::Utf8View => views::concat_views::<arrow::datatypes::StringViewType>(&arrays),
                        DataType::BinaryView => views::concat_views::<arrow::datatypes::BinaryViewType>(&arrays),
                        _ => None,
                    };
                    joined.map_or_else(|| arrow::compute::concat(&arrays), Ok)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let rows = parts.iter().map(RecordBatch::num_rows).sum();
            RecordBatch::try_new_with_options(schema, columns, &RecordBatchOptions::new().with_row_count(Some(rows)))
        }
    }
}

/// The schema with view columns as `LargeUtf8` / `LargeBinary`: for readers without view
/// support (DuckDB's and Ray's pandas conversions, older Arrow).
pub fn large_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => f.as_ref().clone().with_data_type(DataType::LargeUtf8),
            DataType::BinaryView => f.as_ref().clone().with_data_type(DataType::LargeBinary),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with its view columns cast to `LargeUtf8` / `LargeBinary` (one copy of the
/// line bytes, owned by the result).
pub fn to_large(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = large_schema(batch.schema_ref());
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { arrow::compute::cast(c, f.data_type()) })
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema, columns, &options)
}

/// `batch` laid out as `layout` says: views as they are (compacted when `compact`), or
/// copied to `LargeUtf8` / `LargeBinary`.
pub fn with_layout(batch: RecordBatch, layout: LineLayout, compact: bool) -> Result<RecordBatch, ArrowError> {
    Ok(match layout {
        LineLayout::Large => to_large(&batch)?,
        LineLayout::View if compact => self::compact(&batch),
        LineLayout::View => batch,
    })
}

/// The schema of batches laid out as `layout` says.
pub fn layout_schema(schema: SchemaRef, layout: LineLayout) -> SchemaRef {
    match layout {
        LineLayout::Large => large_schema(&schema),
        LineLayout::View => schema,
    }
}

/// The string array of binary `lines` whose rows that are not UTF-8 are empty, and those
/// rows: for JSON records, where such a line is a bad record. Built with Arrow's own checks.
pub(crate) fn utf8_rows(lines: &dyn Array) -> Result<(StringViewArray, Vec<usize>), ArrowError> {
    let lines = lines.as_any().downcast_ref::<BinaryViewArray>().ok_or_else(|| ArrowError::InvalidArgumentError("not a binary view array".into()))?;
    let mut views = lines.views().to_vec();
    let mut bad = Vec::new();
    for (row, view) in views.iter_mut().enumerate() {
        if simdutf8::basic::from_utf8(lines.value(row)).is_err() {
            *view = 0;
            bad.push(row);
        }
    }
    Ok((StringViewArray::try_new(arrow::buffer::ScalarBuffer::from(views), lines.data_buffers().to_vec(), lines.nulls().cloned())?, bad))
}

/// The `line` column of lines read into `buffer` (each at its span): views into the
/// buffer, which the batch then owns. Built with Arrow's own checks (UTF-8 included for
/// strings): these bytes were copied from the file, so they are validated as they are.
pub(crate) fn owned_line_array(
    buffer: &arrow::buffer::Buffer,
    spans: &[LineSpan],
    line_type: LineType,
    keep_terminator: bool,
) -> Result<ArrayRef, ArrowError> {
    let mut views = Vec::with_capacity(spans.len());
    for s in spans {
        let r = s.served_range(keep_terminator);
        let line = buffer.as_slice().get(r.clone()).ok_or_else(|| ArrowError::InvalidArgumentError("line outside its buffer".into()))?;
        views.push(arrow::array::builder::make_view(line, 0, r.start as u32));
    }
    let views = arrow::buffer::ScalarBuffer::from(views);
    Ok(match line_type {
        LineType::Utf8 => Arc::new(StringViewArray::try_new(views, vec![buffer.clone()], None)?) as ArrayRef,
        LineType::Binary => Arc::new(BinaryViewArray::try_new(views, vec![buffer.clone()], None)?) as ArrayRef,
    })
}
