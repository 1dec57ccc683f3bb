//! JSON Lines records of a batch: `field` as the `line` column (or the `list[bytes]`
//! value), the `fields` columns, and what a bad record does.
//!
//! A bad record is skipped, nulled or an error *within its batch*: batch `k` of an epoch
//! holds the same lines however it is reached (random access, a resumed run, another
//! number of workers), and a skipped record only makes its own batch one row shorter.

use std::borrow::Cow;
use std::ops::Range;

use arrow::array::{Array, ArrayRef, BooleanArray, StringViewArray};

use crate::arrow::Piece;
use crate::error::{Error, Result};
use crate::index::Utf8Verdict;
use crate::json::{Fields, Found, NotJson};
use crate::options::RecordPolicy;

use super::{Batcher, Located};

/// The JSON asked of a batcher's records.
#[derive(Debug)]
pub(crate) struct Records {
    pub fields: Fields,
    /// Field 0 is `field` (the `line` column); the rest are `fields`.
    pub line_field: bool,
    pub policy: RecordPolicy,
}

/// A row of [`Located::values`]: its row in the batch, and its bytes (`None`: a null).
pub type Value<'a> = (usize, Option<Cow<'a, [u8]>>);

/// What is wrong with one record.
enum Bad {
    NotJson(NotJson),
    Field(&'static str),
}

/// The `line` column of `field` (if asked), the `fields` columns, and the rows to keep.
pub(crate) type Extracted = (Option<ArrayRef>, Vec<ArrayRef>, Option<BooleanArray>);

/// The decoded strings of a batch, in buffers of at most [`Decoded::CHUNK`] bytes (or one
/// string, up to `i32::MAX`: what a view's offset and the C data interface address).
struct Decoded {
    buffers: Vec<String>,
    /// Escaped bytes still to decode (decoding never lengthens a string): each buffer is
    /// allocated once at its final size, not grown by doubling copies.
    left: usize,
}

impl Decoded {
    /// Buffers of a few MiB: allocations the size of a whole batch's texts (tens of MB for
    /// 8,192 records) are mapped and unmapped by `malloc` each batch, and their first touch
    /// page-faulted (`benches/jsonl.py`, one builder, 8,192 records a batch: 1.25 GB/s in
    /// one buffer, 1.8 GB/s in these; 2.1 GB/s at 1,024 records); chunks this size are
    /// reused from the heap.
    const CHUNK: usize = 4 << 20;

    fn with_capacity(bytes: usize) -> Self {
        Decoded { buffers: Vec::new(), left: bytes }
    }

    fn push(&mut self, raw: &[u8]) -> (usize, Range<usize>) {
        if self.buffers.last().is_none_or(|b| b.len() + raw.len() > b.capacity()) {
            let size = self.left.min(Self::CHUNK).max(raw.len()).min(i32::MAX as usize);
            self.buffers.push(String::with_capacity(size));
        }
        self.left = self.left.saturating_sub(raw.len());
        let last = self.buffers.len() - 1;
        let b = &mut self.buffers[last];
        let start = b.len();
        crate::json::unescape(raw, b);
        (last, start..b.len())
    }
}

/// The `line` column's value of a record whose field is `found`.
fn line_value(found: &Found) -> std::result::Result<(), Bad> {
    match found {
        Found::Str { .. } => Ok(()),
        Found::Missing => Err(Bad::Field("the record has no such field")),
        Found::Null => Err(Bad::Field("the field is null")),
        Found::Other(_) => Err(Bad::Field("the field is not a string")),
    }
}

impl Records {
    /// Walks `line`; the first error is the record's, if any.
    fn walk(&self, line: &[u8], found: &mut [Found]) -> std::result::Result<(), Bad> {
        self.fields.find(line, found).map_err(Bad::NotJson)?;
        if self.line_field {
            line_value(&found[0])?;
        }
        Ok(())
    }
}

impl Located {
    /// The error naming line `i` as a bad record.
    fn bad_record(&self, batcher: &Batcher, i: usize, bad: Bad) -> Error {
        let field = batcher.options().field.clone().unwrap_or_default();
        let (at, reason) = match bad {
            Bad::NotJson(e) => (e.at as u64, format!("not a JSON object: {}", e.reason)),
            Bad::Field(why) => (0, format!("field {field:?}: {why}")),
        };
        Error::BadRecord {
            path: self.file(i).source.path().to_path_buf(),
            line_number: self.line_numbers().nth(i).unwrap_or(0),
            byte_offset: self.byte_offsets().nth(i).unwrap_or(0) + at,
            reason,
        }
    }

    /// The `line` column (when `field` is asked) and the `fields` columns of the records
    /// whose lines are `lines` (this batch's `line` column), and which rows to keep when
    /// bad records are skipped.
    /// Rows `not_utf8` (ascending) are bad records whatever they hold.
    pub(crate) fn extract(&self, batcher: &Batcher, records: &Records, lines: &StringViewArray, not_utf8: &[usize]) -> Result<Extracted> {
        let n = lines.len();
        let k = records.fields.len();
        let mut found = vec![Found::Missing; k];
        let mut pieces: Vec<Vec<Piece>> = (0..k).map(|_| Vec::with_capacity(n)).collect();
        // Escaped strings, decoded once the walk has sized their buffers: (field, row, place).
        let mut escaped: Vec<(usize, usize, Range<usize>)> = Vec::new();
        let mut escaped_bytes = vec![0usize; k];
        let mut keep: Option<Vec<bool>> = None;
        let mut not_utf8 = not_utf8.iter().peekable();
        for row in 0..n {
            let line = lines.value(row).as_bytes();
            let bad = if not_utf8.next_if_eq(&&row).is_some() {
                Some(Bad::NotJson(NotJson { at: 0, reason: "the line is not UTF-8" }))
            } else {
                records.walk(line, &mut found).err()
            };
            if let Some(bad) = bad {
                match records.policy {
                    RecordPolicy::Error => return Err(self.bad_record(batcher, row, bad)),
                    RecordPolicy::Skip => keep.get_or_insert_with(|| vec![true; n])[row] = false,
                    RecordPolicy::Null => {}
                }
                if let Bad::NotJson(_) = bad {
                    found.iter_mut().for_each(|f| *f = Found::Missing);
                }
                if records.line_field {
                    // A skipped row leaves with the filter; until then its `line` is empty,
                    // not null (the column is not nullable).
                    found[0] = if records.policy == RecordPolicy::Skip { Found::Str { raw: 0..0, escaped: false } } else { Found::Missing };
                }
            }
            for (field, (f, p)) in found.iter().zip(&mut pieces).enumerate() {
                p.push(match f {
                    Found::Missing | Found::Null => Piece::Null,
                    Found::Str { raw, escaped: false } | Found::Other(raw) => Piece::Sub { row, range: raw.clone() },
                    Found::Str { raw, escaped: true } => {
                        escaped.push((field, row, raw.clone()));
                        escaped_bytes[field] += raw.len();
                        Piece::Null
                    }
                });
            }
        }
        let mut decoded: Vec<Decoded> = escaped_bytes.iter().map(|&b| Decoded::with_capacity(b)).collect();
        for (field, row, raw) in escaped {
            let (buffer, range) = decoded[field].push(&lines.value(row).as_bytes()[raw]);
            pieces[field][row] = Piece::Decoded { buffer, range };
        }
        let mut columns = pieces.iter().zip(decoded).map(|(p, d)| crate::arrow::substrings(lines, p, d.buffers)).collect::<Result<Vec<_>>>()?;
        let line = records.line_field.then(|| columns.remove(0));
        Ok((line, columns, keep.map(BooleanArray::from)))
    }

    /// The `list[bytes]` values: each record's `field` (decoded when it holds escapes), or
    /// its line (`raw`: as in the file, else as the `line` column serves it) when only
    /// `fields` are asked; `None` for a bad record under `null`, bad records left out under
    /// `skip`. Each value comes with its row in the batch.
    pub fn values(&self, batcher: &Batcher, raw: bool) -> Result<Vec<Value<'_>>> {
        self.values_and_fields(batcher, raw, |_, _| {})
    }

    /// [`values`](Self::values), calling `fields` with each value's line and what the walk
    /// found of every field (`field` first, if given) — `None` for a bad record under
    /// `null` — in the order of the values.
    pub(crate) fn values_and_fields(&self, batcher: &Batcher, raw: bool, mut fields: impl FnMut(&[u8], Option<&[Found]>)) -> Result<Vec<Value<'_>>> {
        let keep_terminator = batcher.options().keep_terminator;
        let lines: Box<dyn Iterator<Item = &[u8]>> = if raw { Box::new(self.raw_lines()) } else { Box::new(self.lines(keep_terminator)) };
        let Some(records) = batcher.records() else {
            return Ok(lines.map(|l| Some(Cow::Borrowed(l))).enumerate().collect());
        };
        let mut found = vec![Found::Missing; records.fields.len()];
        let mut out = Vec::with_capacity(self.len());
        // Lines are checked for UTF-8 only where the index found invalid bytes, or where they
        // were read into memory (the bytes read may not be the ones indexed).
        let may_be_invalid = |row: usize| self.owned.is_some() || self.file(row).index.utf8() != Utf8Verdict::Valid;
        for (row, line) in lines.enumerate() {
            // A terminator is white space to the walk.
            let walked = if records.line_field && may_be_invalid(row) && simdutf8::basic::from_utf8(line).is_err() {
                Err(Bad::NotJson(NotJson { at: 0, reason: "the line is not UTF-8" }))
            } else {
                records.walk(line, &mut found)
            };
            match walked {
                Ok(()) => {
                    fields(line, Some(&found));
                    let field = if records.line_field { found[0].string(line) } else { None };
                    out.push((row, Some(field.unwrap_or(Cow::Borrowed(line)))))
                }
                Err(bad) => match records.policy {
                    RecordPolicy::Error => return Err(self.bad_record(batcher, row, bad)),
                    RecordPolicy::Skip => {}
                    RecordPolicy::Null => {
                        fields(line, None);
                        out.push((row, (!records.line_field).then_some(Cow::Borrowed(line))))
                    }
                },
            }
        }
        Ok(out)
    }
}
