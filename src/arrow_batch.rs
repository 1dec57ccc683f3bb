//! Arrow record batches whose `line` column points into the map.
//!
//! A view longer than 12 bytes names a data buffer and an offset in it. Our data buffers
//! are *windows* of the map, each at most `i32::MAX` bytes (the most pyarrow and the C
//! data interface address in one buffer) and each ending on a line end, so every kept
//! line lies wholly inside one window. A file of up to 2 GiB is one window.

use std::sync::Arc;

use arrow::array::builder::make_view;
use arrow::array::{Array, ArrayRef, BinaryViewArray, RecordBatch, StringViewArray, UInt64Array};
use arrow::buffer::{Buffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::line_index::{LineIndex, LineRecord, MAX_LINE_LEN};
use crate::mapped_file::MappedFile;
use crate::options::LineType;

/// Name of the line column.
pub const LINE: &str = "line";
/// Name of the 1-based physical line number column.
pub const LINE_NUMBER: &str = "line_number";
/// Name of the byte offset column.
pub const BYTE_OFFSET: &str = "byte_offset";
/// Name of the epoch column.
pub const EPOCH: &str = "epoch";
/// Name of the batch-in-epoch column.
pub const BATCH: &str = "batch";

/// The columns a batch can carry, in schema order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// The line's bytes (`Utf8View` or `BinaryView`).
    Line,
    /// 1-based physical line number, as `grep -n` prints it.
    LineNumber,
    /// Byte offset of the line's start in the file.
    ByteOffset,
    /// The epoch the row was served in.
    Epoch,
    /// The batch of that epoch the row was served in.
    Batch,
}

impl Column {
    /// All columns, in schema order.
    pub const ALL: [Column; 5] = [Column::Line, Column::LineNumber, Column::ByteOffset, Column::Epoch, Column::Batch];

    /// The column's Arrow field.
    pub fn field(self, line_type: LineType) -> Field {
        match self {
            Column::Line => Field::new(LINE, line_type.data_type(), false),
            Column::LineNumber => Field::new(LINE_NUMBER, DataType::UInt64, false),
            Column::ByteOffset => Field::new(BYTE_OFFSET, DataType::UInt64, false),
            Column::Epoch => Field::new(EPOCH, DataType::UInt64, false),
            Column::Batch => Field::new(BATCH, DataType::UInt64, false),
        }
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

/// The schema of batches carrying `columns`.
pub fn schema(columns: &[Column], line_type: LineType) -> SchemaRef {
    Arc::new(Schema::new(columns.iter().map(|c| c.field(line_type)).collect::<Vec<_>>()))
}

/// The map cut into view data buffers.
#[derive(Debug)]
pub(crate) struct Windows {
    starts: Vec<u64>,
    buffers: Vec<Buffer>,
}

impl Windows {
    /// Greedy windows: each starts at a kept line and takes as many whole kept lines as fit.
    pub(crate) fn new(file: &MappedFile, index: &LineIndex) -> Self {
        let records = index.records();
        let file_len = file.bytes().len() as u64;
        let mut starts = Vec::new();
        let mut buffers = Vec::new();
        if file_len <= MAX_LINE_LEN {
            starts.push(0);
            buffers.push(file.window(0..file_len as usize));
            return Windows { starts, buffers };
        }
        let mut k = 0;
        while k < records.len() {
            let start = records[k].start;
            // Every line is at most MAX_LINE_LEN long, so at least line k fits.
            let fit = records[k..].partition_point(|r| r.end() - start <= MAX_LINE_LEN);
            let end = records[k + fit - 1].end();
            starts.push(start);
            buffers.push(file.window(start as usize..end as usize));
            k += fit;
        }
        Windows { starts, buffers }
    }

    /// (window index, offset inside it) of a kept line starting at `start`.
    #[inline]
    fn locate(&self, start: u64) -> (u32, u32) {
        let w = if self.starts.len() == 1 { 0 } else { self.starts.partition_point(|&s| s <= start) - 1 };
        (w as u32, (start - self.starts[w]) as u32)
    }

    pub(crate) fn buffers(&self) -> &[Buffer] {
        &self.buffers
    }
}

/// The index records of `ids`, in one gather: the loads are independent, so their cache
/// misses overlap instead of being paid one line at a time in each later loop.
pub(crate) fn gather_records(index: &LineIndex, ids: &[u64]) -> Vec<LineRecord> {
    let records = index.records();
    ids.iter().map(|&k| records[k as usize]).collect()
}

/// Reads each line's first byte (where its view prefix, or all of a short line, is) in one
/// branch-free pass: the page-cache misses of a shuffled batch overlap here, and the
/// per-line loops that follow (whose length branches would stall them one by one) read
/// from cache. Views need nothing past the prefix (the terminator's length is in the
/// record); with `ends`, for callers about to copy whole lines, each line's last byte is
/// read too, since it is often on another cache line.
pub(crate) fn touch_lines(bytes: &[u8], recs: &[LineRecord], ends: bool) {
    let touched = if ends {
        recs.iter().fold(0u8, |acc, r| acc ^ bytes[r.start as usize] ^ bytes[r.end() as usize - 1])
    } else {
        recs.iter().fold(0u8, |acc, r| acc ^ bytes[r.start as usize])
    };
    std::hint::black_box(touched);
}

/// The Arrow view of `line`, at `offset` in data buffer `window`. A line over 12 bytes gets
/// its length, first 4 bytes, buffer and offset (the Arrow spec's layout, little-endian)
/// built here, inline: arrow's `make_view` is `#[inline(never)]`, and its calls were 4–8%
/// of the epoch's samples in `perf record` of the core bench.
#[inline]
fn view(line: &[u8], window: u32, offset: u32) -> u128 {
    if line.len() > 12 {
        let prefix = u32::from_le_bytes(line[..4].try_into().expect("4 bytes"));
        (line.len() as u128) | (prefix as u128) << 32 | (window as u128) << 64 | (offset as u128) << 96
    } else {
        make_view(line, window, offset)
    }
}

/// What building a batch needs from the batcher.
pub(crate) struct BatchSource<'a> {
    pub file: &'a MappedFile,
    pub index: &'a LineIndex,
    pub windows: &'a Windows,
    pub line_type: LineType,
    pub keep_terminator: bool,
}

impl BatchSource<'_> {
    /// The `columns` of the kept lines `ids` of batch `batch` of `epoch`, in that order.
    /// The caller has validated UTF-8 when `line_type` is `Utf8`.
    pub(crate) fn record_batch(&self, ids: &[u64], epoch: u64, batch: u64, columns: &[Column]) -> RecordBatch {
        let recs = gather_records(self.index, ids);
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|c| match c {
                Column::Line => self.line_array(&recs),
                Column::LineNumber => {
                    let numbers = ids.iter().zip(&recs).map(|(&k, rec)| self.index.line_number_of(k, rec));
                    Arc::new(UInt64Array::from_iter_values(numbers)) as ArrayRef
                }
                Column::ByteOffset => Arc::new(UInt64Array::from_iter_values(recs.iter().map(|r| r.start))) as ArrayRef,
                Column::Epoch => Arc::new(UInt64Array::from_value(epoch, ids.len())) as ArrayRef,
                Column::Batch => Arc::new(UInt64Array::from_value(batch, ids.len())) as ArrayRef,
            })
            .collect();
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(ids.len()));
        RecordBatch::try_new_with_options(schema(columns, self.line_type), arrays, &options)
            .expect("columns match the schema by construction")
    }

    fn line_array(&self, recs: &[LineRecord]) -> ArrayRef {
        let bytes = self.file.bytes();
        touch_lines(bytes, recs, false);
        let views: ScalarBuffer<u128> = recs
            .iter()
            .map(|rec| {
                let line = &bytes[rec.served_range(self.keep_terminator)];
                let (window, offset) = self.windows.locate(rec.start);
                view(line, window, offset)
            })
            .collect();
        let buffers = self.windows.buffers().to_vec();
        // SAFETY: every view was made by `view` from a slice of the map that lies
        // inside window `window` at `offset` (windows hold whole kept lines), so offsets and
        // lengths are in bounds; for Utf8 the caller validated every served line.
        unsafe {
            match self.line_type {
                LineType::Utf8 => Arc::new(StringViewArray::new_unchecked(views, buffers, None)) as ArrayRef,
                LineType::Binary => Arc::new(BinaryViewArray::new_unchecked(views, buffers, None)) as ArrayRef,
            }
        }
    }
}

/// Copies the referenced line bytes of every view column into fresh, compact buffers.
///
/// A zero-copy batch reports its whole map window as its memory size (about 1 GB for a
/// 1,024-row batch of a 1 GB file) and writes that window whole to Arrow IPC. Use this
/// before handing a batch to anything that must own its data or accounts memory by
/// buffer size: a query engine that buffers rows, a spill file, a network.
///
/// ```
/// # use std::io::Write;
/// # let mut f = tempfile::NamedTempFile::new().unwrap();
/// # for i in 0..20_000 { writeln!(f, "line number {i} with some padding").unwrap(); }
/// use arrow::array::Array;
/// let b = mmap_batcher::Batcher::open(f.path(), Default::default()).unwrap();
/// let batch = b.epoch(0).unwrap().batch(0).unwrap().to_record_batch().unwrap();
/// let small = mmap_batcher::compact(&batch);
/// assert_eq!(small.column(0).as_ref(), batch.column(0).as_ref()); // same values
/// assert!(small.get_array_memory_size() < batch.get_array_memory_size() / 5);
/// ```
pub fn compact(batch: &RecordBatch) -> RecordBatch {
    let columns = batch
        .columns()
        .iter()
        .map(|col| match col.data_type() {
            DataType::Utf8View => Arc::new(col.as_any().downcast_ref::<StringViewArray>().expect("type checked").gc()) as ArrayRef,
            DataType::BinaryView => Arc::new(col.as_any().downcast_ref::<BinaryViewArray>().expect("type checked").gc()) as ArrayRef,
            _ => col.clone(),
        })
        .collect();
    RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .expect("same schema and row count")
}
