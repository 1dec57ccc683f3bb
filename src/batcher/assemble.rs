//! A batch's lines as Arrow arrays: views into the maps (with the UTF-8 proof), or arrays
//! over the buffer they were read into (validated there).

use std::sync::Arc;

use arrow::array::{ArrayRef, DictionaryArray, RecordBatch, RecordBatchOptions, UInt32Array, UInt64Array};

use crate::arrow::{line_array, schema, Column, FileView, Utf8Checked};
use crate::error::{Error, Result};
use crate::index::LineSpan;
use crate::options::LineType;

use super::{Batcher, Located};

impl Located {
    /// Checks that every line read into `buffer` is UTF-8 (the bytes read, not the index's
    /// verdict: they may have changed since), naming the first that is not.
    fn check_owned_utf8(&self, buffer: &arrow::buffer::Buffer, spans: &[LineSpan], keep_terminator: bool) -> Result<()> {
        let bytes = buffer.as_slice();
        for (i, s) in spans.iter().enumerate() {
            let line = bytes.get(s.served_range(keep_terminator)).unwrap_or_default();
            if let Err(e) = simdutf8::compat::from_utf8(line) {
                let file = self.file(i);
                let line_number = self.line_numbers().nth(i).unwrap_or(0);
                return Err(Error::InvalidUtf8 {
                    path: file.source.path().to_path_buf(),
                    line_number,
                    byte_offset: self.spans[i].start + e.valid_up_to() as u64,
                });
            }
        }
        Ok(())
    }

    /// The batch as Arrow arrays: `columns` of batch `number` of `epoch`.
    pub(crate) fn record_batch(&self, batcher: &Batcher, epoch: u64, number: u64, columns: &[Column]) -> Result<RecordBatch> {
        let opts = &batcher.inner.options;
        let n = self.len();
        let arrays = columns
            .iter()
            .map(|c| {
                Ok(match c {
                    Column::Line if self.owned.is_some() => {
                        self.check_unchanged()?;
                        let (buffer, spans) =
                            self.owned.as_ref().ok_or_else(|| Error::Internal { message: "owned lines without a buffer".into() })?;
                        if opts.line_type == LineType::Utf8 {
                            self.check_owned_utf8(buffer, spans, opts.keep_terminator)?;
                        }
                        crate::arrow::owned_line_array(buffer, spans, opts.line_type, opts.keep_terminator)
                            .map_err(|source| Error::Arrow { context: batcher.path().display().to_string(), source })?
                    }
                    Column::Line => {
                        if !self.gaps.is_empty() {
                            return Err(Error::Internal { message: "a batch assembled before its lines were cut at their newlines".into() });
                        }
                        let views: Vec<FileView<'_>> =
                            self.files.iter().map(|f| FileView { source: &f.source, index: &f.index, windows: &f.windows }).collect();
                        // Checked unchanged before the first read of the map.
                        let utf8 = match opts.line_type {
                            LineType::Utf8 => Some(Utf8Checked::check(&views)?),
                            LineType::Binary => {
                                self.check_unchanged()?;
                                None
                            }
                        };
                        self.reading(|| {
                            self.touch(false);
                            line_array(&views, &self.slots, &self.spans, opts.line_type, opts.keep_terminator, utf8.as_ref())
                        })?
                    }
                    Column::LineNumber => Arc::new(UInt64Array::from_iter_values(self.line_numbers())) as ArrayRef,
                    Column::ByteOffset => Arc::new(UInt64Array::from_iter_values(self.byte_offsets())) as ArrayRef,
                    Column::Epoch => Arc::new(UInt64Array::from_value(epoch, n)) as ArrayRef,
                    Column::Batch => Arc::new(UInt64Array::from_value(number, n)) as ArrayRef,
                    Column::File => {
                        let keys = UInt32Array::from_iter_values(self.file_ids().map(|f| f as u32));
                        let dict = DictionaryArray::try_new(keys, batcher.inner.file_names.clone())
                            .map_err(|source| Error::Arrow { context: "file column".into(), source })?;
                        Arc::new(dict) as ArrayRef
                    }
                    Column::Source => {
                        let (names, of_file) = batcher.source_column();
                        let keys = UInt32Array::from_iter_values(self.file_ids().map(|f| of_file[f]));
                        let dict = DictionaryArray::try_new(keys, names.clone())
                            .map_err(|source| Error::Arrow { context: "source column".into(), source })?;
                        Arc::new(dict) as ArrayRef
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        RecordBatch::try_new_with_options(schema(columns, opts.line_type), arrays, &options)
            .map_err(|source| Error::Arrow { context: batcher.path().display().to_string(), source })
    }
}
