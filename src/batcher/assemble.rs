//! A batch's lines as Arrow arrays: views into the maps (with the UTF-8 proof), or arrays
//! over the buffer they were read into (validated there).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, DictionaryArray, RecordBatch, RecordBatchOptions, StringViewArray, UInt32Array, UInt64Array};

use crate::arrow::{line_array, packed_line_array, schema, Column, FileView, Utf8Checked};
use crate::error::{Error, Result};
use crate::index::LineSpan;
use crate::options::{LineType, RecordPolicy};

use super::records::Extracted;
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

    /// The proof that the strings of the files this batch reads are UTF-8 (see
    /// [`Utf8Checked::check_known`]).
    fn utf8_checked(&self) -> Result<Utf8Checked> {
        let known = self.files.utf8_known();
        let views: Vec<FileView<'_>> = match known {
            true => Vec::new(),
            false => self.read_files().map(|f| FileView { source: &f.source, index: &f.index, windows: &f.windows }).collect(),
        };
        Utf8Checked::check_known(&views, known)
    }

    /// The `line` column as it is in the files, of `line_type`: views into the maps (with
    /// the UTF-8 proof for strings), or over the buffer the lines were read into.
    fn line_column(&self, batcher: &Batcher, line_type: LineType) -> Result<ArrayRef> {
        let keep_terminator = batcher.inner.options.keep_terminator;
        if let Some((buffer, spans)) = self.owned.as_ref() {
            self.check_unchanged()?;
            if line_type == LineType::Utf8 {
                self.check_owned_utf8(buffer, spans, keep_terminator)?;
            }
            return crate::arrow::owned_line_array(buffer, spans, line_type, keep_terminator)
                .map_err(|source| Error::Arrow { context: batcher.path().display().to_string(), source });
        }
        if !self.gaps.is_empty() {
            return Err(Error::Internal { message: "a batch assembled before its lines were cut at their newlines".into() });
        }
        if let Some(packed) = self.files.packed() {
            let utf8 = match line_type {
                LineType::Utf8 => Some(self.utf8_checked()?),
                LineType::Binary => {
                    self.check_unchanged()?;
                    None
                }
            };
            // Every cut was checked when the packed lines were built: no line end to read.
            return self.reading(|| {
                self.touch(false);
                let pack_of = |i: usize| self.pack_of(packed, i);
                packed_line_array(packed.packs(), pack_of, &self.spans, line_type, keep_terminator, utf8.as_ref())
            });
        }
        let views: Vec<FileView<'_>> = self.files.iter().map(|f| FileView { source: &f.source, index: &f.index, windows: &f.windows }).collect();
        // Checked unchanged before the first read of the map.
        let utf8 = match line_type {
            LineType::Utf8 => Some(Utf8Checked::check_known(&views, self.files.utf8_known())?),
            LineType::Binary => {
                self.check_unchanged()?;
                None
            }
        };
        // Strings cut by an index from a file are checked to end at a line end, which reads
        // each line's last byte: touched in the branch-free pass too, their misses overlap
        // there rather than one by one in the checks (the first file says for all: it is
        // only a matter of speed).
        let ends = line_type == LineType::Utf8 && self.files.first().is_some_and(|f| !f.index.cuts_trusted());
        self.reading(|| {
            self.touch(ends);
            line_array(&views, &self.slots, &self.spans, line_type, keep_terminator, utf8.as_ref())
        })
    }

    /// The `line` column as in the files, when `columns` or the records need it, and what
    /// the JSON records give (walked whenever a bad record could change the batch: an
    /// error, or a row skipped).
    fn lines_and_records(&self, batcher: &Batcher, columns: &[Column]) -> Result<(Option<ArrayRef>, Extracted)> {
        let records = batcher.records();
        let wants_json = columns.iter().any(|c| matches!(c, Column::Field(_)) || (*c == Column::Line && records.is_some_and(|r| r.line_field)));
        let walk = records.filter(|r| wants_json || r.policy != RecordPolicy::Null);
        let line_type = batcher.inner.options.line_type;
        let mut not_utf8 = Vec::new();
        let raw = match walk {
            None if !columns.contains(&Column::Line) => None,
            // A line that is not UTF-8 is one more bad record when the policy leaves no
            // line of it behind (skipped, or a null `line` of `field`).
            Some(r) if r.policy == RecordPolicy::Skip || (r.policy == RecordPolicy::Null && r.line_field) => {
                match self.line_column(batcher, line_type) {
                    Err(Error::InvalidUtf8 { .. }) => {
                        let bytes = self.line_column(batcher, LineType::Binary)?;
                        let (strings, bad) = self.reading(|| {
                            crate::arrow::utf8_rows(bytes.as_ref())
                                .map_err(|source| Error::Arrow { context: batcher.path().display().to_string(), source })
                        })?;
                        not_utf8 = bad;
                        Some(Arc::new(strings) as ArrayRef)
                    }
                    other => Some(other?),
                }
            }
            _ => Some(self.line_column(batcher, line_type)?),
        };
        let extracted = match (walk, &raw) {
            (Some(r), Some(raw)) => {
                let lines = raw
                    .as_any()
                    .downcast_ref::<StringViewArray>()
                    .ok_or_else(|| Error::Internal { message: "JSON records without a string line column".into() })?;
                self.reading(|| self.extract(batcher, r, lines, &not_utf8))?
            }
            _ => (None, Vec::new(), None),
        };
        Ok((raw, extracted))
    }

    /// The batch as Arrow arrays: `columns` of batch `number` of `epoch`. With JSON fields
    /// asked, a `count(*)` counts what `SELECT line` serves.
    pub(crate) fn record_batch(&self, batcher: &Batcher, epoch: u64, number: u64, columns: &[Column]) -> Result<RecordBatch> {
        let opts = &batcher.inner.options;
        let n = self.len();
        let (raw, (json_line, json_fields, keep)) = self.lines_and_records(batcher, columns)?;
        let arrays = columns
            .iter()
            .map(|c| {
                Ok(match c {
                    Column::Line => match (&json_line, &raw) {
                        (Some(line), _) => line.clone(),
                        (None, Some(raw)) => raw.clone(),
                        (None, None) => return Err(Error::Internal { message: "the line column was not built".into() }),
                    },
                    Column::Field(k) => {
                        let k = *k as usize;
                        match json_fields.get(k) {
                            Some(a) => a.clone(),
                            None => return Err(Error::Internal { message: format!("field column {k} was not built") }),
                        }
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
        let arrow_error = |source| Error::Arrow { context: batcher.path().display().to_string(), source };
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let batch = RecordBatch::try_new_with_options(schema(columns, opts), arrays, &options).map_err(arrow_error)?;
        match keep {
            Some(keep) => arrow::compute::filter_record_batch(&batch, &keep).map_err(arrow_error),
            None => Ok(batch),
        }
    }
}
