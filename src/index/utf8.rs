//! The UTF-8 check of kept lines, made while indexing (the same pass reads each segment
//! of the file once, for newlines and then for UTF-8, while it is in cache) and kept in
//! the index, so it is never repeated for a file whose identity is unchanged.
//!
//! Only *served* lines must be UTF-8 (Polars and pyarrow import string views without
//! validating them, so an invalid view would be undefined behaviour downstream); skipped
//! lines (comments, blanks) may hold any bytes.

/// What the index knows of the kept lines' UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utf8Verdict {
    /// Every kept line is valid UTF-8.
    Valid,
    /// Kept line `line_id` holds the file's first invalid byte of a kept line, at
    /// file offset `offset`.
    Invalid {
        /// The line's position in the index.
        line_id: u64,
        /// File offset of the first invalid byte.
        offset: u64,
    },
}

/// Validates `segment` (which starts at a line start, at file offset `base`), returning
/// the file offsets of the first invalid byte of each line that has one, in order, until
/// `is_served(line_start)` says one of them is served: that one is the last returned.
/// `skipped_invalid` is set when a skipped line holds an invalid byte.
pub(crate) fn invalid_bytes(segment: &[u8], base: usize, skipped_invalid: &mut bool, mut is_served: impl FnMut(usize) -> bool) -> Option<usize> {
    let mut pos = 0;
    while pos < segment.len() {
        let err = match simdutf8::compat::from_utf8(&segment[pos..]) {
            Ok(_) => return None,
            Err(e) => e,
        };
        let bad = pos + err.valid_up_to();
        let line_start = memchr::memrchr(b'\n', &segment[..bad]).map_or(0, |p| p + 1);
        if is_served(base + line_start) {
            return Some(base + bad);
        }
        // The bad byte is in a skipped line: carry on from the next line.
        *skipped_invalid = true;
        pos = match memchr::memchr(b'\n', &segment[bad..]) {
            Some(p) => bad + p + 1,
            None => segment.len(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_bad_bytes_in_skipped_lines() {
        let seg = b"ok\n# caf\xe9\nbad \xff here\n";
        // Lines start at 0, 3, 10; pretend line 3 is a skipped comment.
        let mut skipped = false;
        let got = invalid_bytes(seg, 100, &mut skipped, |start| start != 103);
        assert_eq!(got, Some(100 + 14));
        assert!(skipped);
        let mut skipped = false;
        assert_eq!(invalid_bytes(b"fine\n\xc3\xa9\n", 0, &mut skipped, |_| true), None);
        // A sequence cut by the segment's end is invalid within that segment.
        assert_eq!(invalid_bytes(b"x\n\xc3", 0, &mut skipped, |_| true), Some(2));
        assert!(!skipped);
    }
}
