//! Checks that every *served* line is UTF-8, once per file, before the first `Utf8View`
//! batch: Polars and pyarrow import string views without validating them, so an invalid
//! view would be undefined behaviour downstream. Skipped lines (comments, blanks) may hold
//! any bytes: an error there would refuse a file we never serve from.

use crate::line_index::{split_at_lines, LineIndex};

/// The first invalid byte inside a kept line: `(kept line index, file offset)`.
pub(crate) type Utf8Failure = (u64, u64);

/// Validates the served bytes of `bytes` on all cores; returns the first failure in file order.
pub(crate) fn first_invalid_served_byte(bytes: &[u8], index: &LineIndex) -> Option<Utf8Failure> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ranges = split_at_lines(bytes, threads, 32 << 20);
    if ranges.len() == 1 {
        return check_range(bytes, 0..bytes.len(), index);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = ranges.into_iter().map(|r| s.spawn(move || check_range(bytes, r, index))).collect();
        handles.into_iter().map(|h| h.join().expect("utf-8 worker panicked")).find_map(|r| r)
    })
}

/// `range` starts at a line start and ends at a line end, so no UTF-8 sequence of a
/// served line crosses it.
fn check_range(bytes: &[u8], range: std::ops::Range<usize>, index: &LineIndex) -> Option<Utf8Failure> {
    let mut pos = range.start;
    while pos < range.end {
        let err = match simdutf8::compat::from_utf8(&bytes[pos..range.end]) {
            Ok(_) => return None,
            Err(e) => e,
        };
        let bad = pos + err.valid_up_to();
        if let Some(k) = index.kept_line_containing(bad as u64) {
            return Some((k, bad as u64));
        }
        // The bad byte is in a skipped line: carry on from the next line.
        pos = match memchr::memchr(b'\n', &bytes[bad..range.end]) {
            Some(p) => bad + p + 1,
            None => range.end,
        };
    }
    None
}
