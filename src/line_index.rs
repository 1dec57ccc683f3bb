//! The index of kept lines: one 16-byte record per served line, in file order.
//!
//! It is a plain `#[repr(C)]` array so that it can later be written beside the file and
//! mapped back for an instant reopen. Physical line numbers (as `grep -n` prints them) are
//! not stored: line `k` of the index has number `k + 1 + skipped_before(k)`, and
//! `skipped_before` is kept modulo 2^32 in the record, with the rare kept lines at which it
//! wraps listed apart. That keeps the index at 16 bytes a line with no limit on line counts.

use memchr::memchr_iter;

use crate::options::KeepRules;

/// The longest line (terminator included) that can be served: one Arrow view buffer is
/// addressed with 32-bit signed offsets by pyarrow and the C data interface.
pub const MAX_LINE_LEN: u64 = i32::MAX as u64;

/// One kept line.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRecord {
    /// Byte offset of the line's first byte in the file.
    pub start: u64,
    /// Length in bytes, terminator (`\n` or `\r\n`) included.
    pub len: u32,
    /// Skipped (blank or comment) lines before this one, modulo 2^32.
    skipped_lo: u32,
}

impl LineRecord {
    /// Byte offset one past the line's last byte (terminator included).
    pub fn end(&self) -> u64 {
        self.start + self.len as u64
    }
}

/// The kept lines of one file under one set of [`KeepRules`].
#[derive(Debug, Default)]
pub struct LineIndex {
    records: Vec<LineRecord>,
    /// Kept-line indices at which `skipped_before` crossed a multiple of 2^32 (a value
    /// repeats when it crossed several). Empty for any file under 4 G skipped lines.
    skip_wraps: Vec<u64>,
    physical_lines: u64,
}

/// A line over [`MAX_LINE_LEN`] met while indexing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong {
    /// 1-based physical line number.
    pub line_number: u64,
    /// Its length, terminator included.
    pub length: u64,
}

/// ASCII whitespace as the original Python `bytes.isspace()` sees it (Rust's
/// `is_ascii_whitespace` leaves out `\v`).
#[inline]
fn is_blank_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

#[inline]
fn is_kept(line: &[u8], rules: KeepRules) -> bool {
    if rules.comment_char == Some(line[0]) {
        return false;
    }
    !(rules.skip_blank_lines && line.iter().all(|&b| is_blank_byte(b)))
}

impl LineIndex {
    /// Indexes `bytes`, splitting the work over the available cores for large inputs.
    /// `progress` is called now and then with the number of bytes just indexed.
    pub(crate) fn build(
        bytes: &[u8],
        rules: KeepRules,
        max_line_len: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Self, TooLong> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ranges = split_at_lines(bytes, threads, 32 << 20);
        let chunks: Vec<Result<Chunk, TooLong>> = if ranges.len() == 1 {
            vec![index_chunk(bytes, 0, rules, max_line_len, progress)]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = ranges
                    .iter()
                    .map(|r| {
                        let r = r.clone();
                        s.spawn(move || index_chunk(&bytes[r.clone()], r.start as u64, rules, max_line_len, progress))
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("index worker panicked")).collect()
            })
        };
        Self::merge(chunks)
    }

    /// Joins per-chunk results in file order, rebasing skipped counts and line numbers.
    fn merge(chunks: Vec<Result<Chunk, TooLong>>) -> Result<Self, TooLong> {
        let mut index = LineIndex::default();
        let mut skipped_base = 0u64;
        for chunk in chunks {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    return Err(TooLong { line_number: index.physical_lines + e.line_number, ..e });
                }
            };
            if index.records.is_empty() && skipped_base == 0 {
                // The first chunk is already in global terms: adopt its vectors as they are.
                index.records = chunk.records;
                index.skip_wraps = chunk.skip_wraps;
            } else if chunk.skip_wraps.is_empty() && (skipped_base + chunk.skipped_lines) >> 32 == 0 {
                // The usual case (under 4 G skipped lines): a plain, vectorisable rebase.
                let base = skipped_base as u32;
                index.records.extend(chunk.records.iter().map(|r| LineRecord { skipped_lo: r.skipped_lo + base, ..*r }));
            } else {
                index.records.reserve(chunk.records.len());
                let mut local_wraps = chunk.skip_wraps.iter().peekable();
                let mut local_hi = 0u64;
                let mut global_hi = index.skipped_hi();
                for (local_k, rec) in chunk.records.iter().enumerate() {
                    while local_wraps.next_if(|&&w| w <= local_k as u64).is_some() {
                        local_hi += 1;
                    }
                    let skipped = skipped_base + ((local_hi << 32) | rec.skipped_lo as u64);
                    let k = index.records.len() as u64;
                    while skipped >> 32 > global_hi {
                        index.skip_wraps.push(k);
                        global_hi += 1;
                    }
                    index.records.push(LineRecord { skipped_lo: skipped as u32, ..*rec });
                }
            }
            index.physical_lines += chunk.physical_lines;
            skipped_base += chunk.skipped_lines;
        }
        Ok(index)
    }

    /// The high half of `skipped_before` for the next line to be appended.
    fn skipped_hi(&self) -> u64 {
        self.skip_wraps.len() as u64
    }

    /// Number of kept lines.
    pub fn len(&self) -> u64 {
        self.records.len() as u64
    }

    /// True when no line is kept.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Number of physical lines in the file, kept or not.
    pub fn physical_lines(&self) -> u64 {
        self.physical_lines
    }

    /// The records, in file order.
    pub fn records(&self) -> &[LineRecord] {
        &self.records
    }

    /// The record of kept line `k`.
    #[inline]
    pub fn record(&self, k: u64) -> LineRecord {
        self.records[k as usize]
    }

    /// The 1-based physical line number of kept line `k`.
    #[inline]
    pub fn line_number(&self, k: u64) -> u64 {
        let lo = self.records[k as usize].skipped_lo as u64;
        let hi = if self.skip_wraps.is_empty() {
            0
        } else {
            self.skip_wraps.partition_point(|&w| w <= k) as u64
        };
        k + 1 + ((hi << 32) | lo)
    }

    /// The first kept line whose physical line number is at least `line_number`
    /// (`len()` if none). Line numbers grow with `k`, so this is a binary search.
    pub fn first_kept_at_or_after_line(&self, line_number: u64) -> u64 {
        let (mut lo, mut hi) = (0u64, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.line_number(mid) < line_number {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The kept line whose bytes (terminator included) contain file offset `offset`.
    pub fn kept_line_containing(&self, offset: u64) -> Option<u64> {
        let k = self.records.partition_point(|r| r.start <= offset);
        let rec = self.records.get(k.checked_sub(1)?)?;
        (offset < rec.end()).then_some(k as u64 - 1)
    }
}

/// Splits `bytes` into at most `parts` ranges that each start at a line start, no smaller
/// than `min_part` bytes (so small inputs stay in one piece).
pub(crate) fn split_at_lines(bytes: &[u8], parts: usize, min_part: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, (bytes.len() / min_part.max(1)).max(1));
    let mut ranges = Vec::with_capacity(parts);
    let mut start = 0;
    for i in 1..parts {
        let target = (bytes.len() / parts * i).max(start);
        let cut = match memchr::memchr(b'\n', &bytes[target..]) {
            Some(p) => target + p + 1,
            None => bytes.len(),
        };
        if cut > start && cut < bytes.len() {
            ranges.push(start..cut);
            start = cut;
        }
    }
    ranges.push(start..bytes.len());
    ranges
}

/// The index of one piece of the file, with counts local to the piece.
struct Chunk {
    records: Vec<LineRecord>,
    skip_wraps: Vec<u64>,
    physical_lines: u64,
    skipped_lines: u64,
}

const PROGRESS_STEP: usize = 16 << 20;

fn index_chunk(
    bytes: &[u8],
    base: u64,
    rules: KeepRules,
    max_line_len: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Chunk, TooLong> {
    let mut chunk = Chunk {
        records: Vec::with_capacity(bytes.len() / 64),
        skip_wraps: Vec::new(),
        physical_lines: 0,
        skipped_lines: 0,
    };
    let mut start = 0usize;
    let mut reported = 0usize;
    let mut visit = |end: usize, chunk: &mut Chunk| -> Result<(), TooLong> {
        let line = &bytes[start..end];
        chunk.physical_lines += 1;
        if is_kept(line, rules) {
            let len = line.len() as u64;
            if len > max_line_len {
                return Err(TooLong { line_number: chunk.physical_lines, length: len });
            }
            let skipped = chunk.skipped_lines;
            while skipped >> 32 > chunk.skip_wraps.len() as u64 {
                chunk.skip_wraps.push(chunk.records.len() as u64);
            }
            chunk.records.push(LineRecord { start: base + start as u64, len: len as u32, skipped_lo: skipped as u32 });
        } else {
            chunk.skipped_lines += 1;
        }
        start = end;
        if start - reported >= PROGRESS_STEP {
            progress((start - reported) as u64);
            reported = start;
        }
        Ok(())
    };
    for newline in memchr_iter(b'\n', bytes) {
        visit(newline + 1, &mut chunk)?;
    }
    // A final line without a newline is a line too.
    if bytes.last().is_some_and(|&b| b != b'\n') {
        visit(bytes.len(), &mut chunk)?;
    }
    progress((bytes.len() - reported) as u64);
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: KeepRules = KeepRules { skip_blank_lines: true, comment_char: Some(b'#') };

    fn build(bytes: &[u8]) -> LineIndex {
        LineIndex::build(bytes, RULES, MAX_LINE_LEN, &|_| {}).unwrap()
    }

    #[test]
    fn keeps_last_line_without_newline_and_numbers_physically() {
        let idx = build(b"a\n\n# c\n \t\x0b\nb\r\nlast");
        let lines: Vec<_> = (0..idx.len()).map(|k| (idx.line_number(k), idx.record(k).start, idx.record(k).len)).collect();
        assert_eq!(lines, vec![(1, 0, 2), (5, 11, 3), (6, 14, 4)]);
        assert_eq!(idx.physical_lines(), 6);
    }

    #[test]
    fn merge_rebases_chunks() {
        let text = b"x\n\n#\ny\nz\n\n\nw\n".repeat(1000);
        let whole = LineIndex::merge(vec![Ok(index_chunk(&text, 0, RULES, MAX_LINE_LEN, &|_| {}).unwrap())]).unwrap();
        for parts in [2, 3, 7] {
            let ranges = split_at_lines(&text, parts, 1);
            let chunks = ranges
                .iter()
                .map(|r| index_chunk(&text[r.clone()], r.start as u64, RULES, MAX_LINE_LEN, &|_| {}))
                .collect();
            let split = LineIndex::merge(chunks).unwrap();
            assert_eq!(split.records(), whole.records());
            assert_eq!(split.physical_lines(), whole.physical_lines());
            for k in 0..whole.len() {
                assert_eq!(split.line_number(k), whole.line_number(k));
            }
        }
    }

    #[test]
    fn skipped_counts_past_u32_wrap() {
        // Simulate two chunks where the first holds 2^32 + 5 skipped lines.
        let first = Chunk {
            records: vec![LineRecord { start: 0, len: 2, skipped_lo: 0 }],
            skip_wraps: vec![],
            physical_lines: 1 + (1u64 << 32) + 5,
            skipped_lines: (1u64 << 32) + 5,
        };
        let second = index_chunk(b"a\n\nb\n", 100, RULES, MAX_LINE_LEN, &|_| {}).unwrap();
        let idx = LineIndex::merge(vec![Ok(first), Ok(second)]).unwrap();
        assert_eq!(idx.line_number(0), 1);
        assert_eq!(idx.line_number(1), 1 + (1u64 << 32) + 5 + 1);
        assert_eq!(idx.line_number(2), 1 + (1u64 << 32) + 5 + 3);
        assert_eq!(idx.first_kept_at_or_after_line(3), 1);
    }

    #[test]
    fn too_long_reports_global_line_number() {
        let text = b"aaaa\nbb\nccccccc\n";
        let chunks = vec![
            index_chunk(&text[..8], 0, RULES, 5, &|_| {}),
            index_chunk(&text[8..], 8, RULES, 5, &|_| {}),
        ];
        assert_eq!(LineIndex::merge(chunks).unwrap_err(), TooLong { line_number: 3, length: 8 });
    }

    #[test]
    fn containing_offset() {
        let idx = build(b"ab\n\ncd\n");
        assert_eq!(idx.kept_line_containing(0), Some(0));
        assert_eq!(idx.kept_line_containing(2), Some(0));
        assert_eq!(idx.kept_line_containing(3), None);
        assert_eq!(idx.kept_line_containing(4), Some(1));
        assert_eq!(idx.kept_line_containing(7), None);
    }
}
