//! The index of kept lines: one 16-byte record per served line, in file order.
//!
//! It is a plain `#[repr(C)]` array so that it can later be written beside the file and
//! mapped back for an instant reopen.
//!
//! # Built from the middle outward
//! Two threads index the file at once: one scans the *head* (the lines before the middle
//! line start) backward, the other scans the *tail* forward. Each writes its records
//! straight into their final slots of one reserved array ([`RecordStore`]), the backward
//! scan from the middle slot down and the forward scan from it up, so the index comes out
//! contiguous and in file order with no merge copy (about a fifth of the build time, in a
//! prototype, when each thread filled its own vector).
//!
//! # Line numbers
//! Physical line numbers (as `grep -n` prints them) are not stored: kept line `k` has
//! number `k + 1 + skipped_before(k)`. Each record holds a count of skipped (blank or
//! comment) lines local to its half, modulo 2^30: in the tail, those before it in the tail;
//! in the head, which is scanned backward, those *after* it in the head. The two halves'
//! totals turn either into `skipped_before`, and each half lists the rare lines at which
//! its count wraps. That keeps the index at 16 bytes a line with no limit on line counts.
//! The record's other two bits hold the terminator's length, so serving a line without its
//! `\n` or `\r\n` needs no second read of the file.

use crate::newline_scan::{for_each_newline, for_each_newline_rev, NewlineSink};
use crate::options::KeepRules;
use crate::record_store::RecordStore;

/// The longest line (terminator included) that can be served: one Arrow view buffer is
/// addressed with 32-bit signed offsets by pyarrow and the C data interface.
pub const MAX_LINE_LEN: u64 = i32::MAX as u64;

/// Low bits of a record's skipped count. Unit tests use 2 so that they wrap all the time.
const SKIP_BITS: u32 = if cfg!(test) { 2 } else { 30 };
const SKIP_MASK: u32 = (1 << SKIP_BITS) - 1;
const TERMINATOR_SHIFT: u32 = 30;

/// One kept line.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LineRecord {
    /// Byte offset of the line's first byte in the file.
    pub start: u64,
    /// Length in bytes, terminator (`\n` or `\r\n`) included.
    pub len: u32,
    /// Bits 0..30: the half's skipped count (see the module docs), modulo 2^30.
    /// Bits 30..32: the terminator's length (0, 1 or 2).
    meta: u32,
}

impl LineRecord {
    /// Byte offset one past the line's last byte (terminator included).
    pub fn end(&self) -> u64 {
        self.start + self.len as u64
    }

    /// The line's bytes in the file, terminator included.
    #[inline]
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end() as usize
    }

    /// The line's bytes as served: without the terminator unless `keep_terminator`.
    #[inline]
    pub fn served_range(&self, keep_terminator: bool) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.served_len(keep_terminator) as usize
    }

    /// Length of the line's terminator: 2 for `\r\n`, 1 for `\n`, 0 for a last line without one.
    pub fn terminator_len(&self) -> u32 {
        self.meta >> TERMINATOR_SHIFT
    }

    /// Length of the line as served: without its terminator unless `keep_terminator`.
    #[inline]
    pub fn served_len(&self, keep_terminator: bool) -> u32 {
        if keep_terminator {
            self.len
        } else {
            self.len - self.terminator_len()
        }
    }

    fn skip_low(&self) -> u64 {
        (self.meta & SKIP_MASK) as u64
    }
}

/// Skipped-line counts of one half of the file.
#[derive(Debug, Default)]
struct Half {
    kept: u64,
    skipped: u64,
    physical: u64,
    /// Scan-order indices of kept lines at which the count's high part grew by one (an
    /// index repeats when it grew by several). Empty unless the half skips 2^30 lines.
    wraps: Vec<u64>,
}

impl Half {
    /// The full skipped count of the `j`-th kept line in scan order, from its low bits.
    fn count(&self, j: u64, low: u64) -> u64 {
        let high = if self.wraps.is_empty() { 0 } else { self.wraps.partition_point(|&w| w <= j) as u64 };
        (high << SKIP_BITS) | low
    }
}

/// The kept lines of one file under one set of [`KeepRules`].
#[derive(Debug)]
pub struct LineIndex {
    store: RecordStore,
    /// The lines before the middle, scanned backward.
    head: Half,
    /// The lines from the middle on, scanned forward.
    tail: Half,
}

/// Why an index could not be built.
#[derive(Debug)]
pub(crate) enum BuildError {
    /// A line over the length limit.
    TooLong {
        /// 1-based physical line number.
        line_number: u64,
        /// Its length, terminator included.
        length: u64,
    },
    /// No memory for the records.
    Memory(std::io::Error),
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

#[inline]
fn terminator_len(line: &[u8]) -> u32 {
    match line {
        [.., b'\r', b'\n'] => 2,
        [.., b'\n'] => 1,
        _ => 0,
    }
}

/// Number of lines in `bytes` (a last line without `\n` counts).
fn count_lines(bytes: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', bytes).count() + usize::from(bytes.last().is_some_and(|&b| b != b'\n'))
}

impl LineIndex {
    /// Indexes `bytes`, on two threads for inputs over 2 MiB. `progress` is called now and
    /// then with the number of bytes just indexed.
    pub(crate) fn build(
        bytes: &[u8],
        rules: KeepRules,
        max_line_len: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Self, BuildError> {
        let two_cores = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
        let ranges = split_at_lines(bytes, if two_cores { 2 } else { 1 }, 1 << 20);
        Self::build_from(bytes, ranges[ranges.len() - 1].start, false, rules, max_line_len, progress)
    }

    /// Indexes `bytes` outward from `middle`, which must be 0 or a line start. With
    /// `count_first` (tests), the store is sized as when the generous reservation is refused.
    fn build_from(
        bytes: &[u8],
        middle: usize,
        count_first: bool,
        rules: KeepRules,
        max_line_len: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Self, BuildError> {
        let (head_bytes, tail_bytes) = bytes.split_at(middle);
        // A line holds at least one byte, so a half of n bytes has at most n lines: that
        // much address space costs nothing until written. Where it is refused, count.
        let generous = if count_first { None } else { RecordStore::reserve(bytes.len()).ok() };
        let (mut store, split) = match generous {
            Some(store) => (store, middle),
            None => {
                let split = count_lines(head_bytes);
                let store = RecordStore::reserve(split + count_lines(tail_bytes)).map_err(BuildError::Memory)?;
                (store, split)
            }
        };
        let (head_slots, tail_slots) = store.slots_mut().split_at_mut(split);
        let ((head, head_too_long), (tail, tail_too_long)) = std::thread::scope(|s| {
            let head = (middle > 0).then(|| s.spawn(|| Scan::<true>::run(head_bytes, 0, rules, max_line_len, head_slots, progress)));
            let tail = Scan::<false>::run(tail_bytes, middle as u64, rules, max_line_len, tail_slots, progress);
            (head.map_or_else(|| (Half::default(), None), |h| h.join().expect("index worker panicked")), tail)
        });
        if let Some((offset, length)) = head_too_long.or(tail_too_long) {
            let line_number = count_lines(&bytes[..offset as usize]) as u64 + 1;
            return Err(BuildError::TooLong { line_number, length });
        }
        store.set_used(split - head.kept as usize..split + tail.kept as usize);
        Ok(LineIndex { store, head, tail })
    }

    /// Number of kept lines.
    pub fn len(&self) -> u64 {
        self.head.kept + self.tail.kept
    }

    /// True when no line is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of physical lines in the file, kept or not.
    pub fn physical_lines(&self) -> u64 {
        self.head.physical + self.tail.physical
    }

    /// The records, in file order.
    pub fn records(&self) -> &[LineRecord] {
        self.store.records()
    }

    /// The record of kept line `k`.
    #[inline]
    pub fn record(&self, k: u64) -> LineRecord {
        self.records()[k as usize]
    }

    /// The 1-based physical line number of kept line `k`.
    #[inline]
    pub fn line_number(&self, k: u64) -> u64 {
        self.line_number_of(k, &self.record(k))
    }

    /// [`line_number`](Self::line_number) of kept line `k` whose record is `rec`, for
    /// callers that hold it already.
    #[inline]
    pub fn line_number_of(&self, k: u64, rec: &LineRecord) -> u64 {
        let low = rec.skip_low();
        let (head, tail) = (&self.head, &self.tail);
        let skipped_before = if k < head.kept {
            head.skipped - head.count(head.kept - 1 - k, low)
        } else {
            head.skipped + tail.count(k - head.kept, low)
        };
        k + 1 + skipped_before
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
        let records = self.records();
        let k = records.partition_point(|r| r.start <= offset);
        let rec = records.get(k.checked_sub(1)?)?;
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

const PROGRESS_STEP: usize = 16 << 20;


/// One thread's scan of one half, writing records into its slots: backward from the end of
/// the slots when `BACKWARD`, forward from their start otherwise.
struct Scan<'a, const BACKWARD: bool> {
    bytes: &'a [u8],
    /// File offset of `bytes[0]`.
    base: u64,
    rules: KeepRules,
    max_line_len: u64,
    slots: &'a mut [LineRecord],
    /// Where the next line starts (forward) or ends (backward).
    cursor: usize,
    half: Half,
    /// `(offset, length)` of the first line over the limit in file order.
    too_long: Option<(u64, u64)>,
    progress: &'a (dyn Fn(u64) + Sync),
    reported_at: usize,
}

impl<'a, const BACKWARD: bool> Scan<'a, BACKWARD> {
    /// Scans `bytes` into `slots`: the half's counts, and the first line over the limit.
    fn run(
        bytes: &'a [u8],
        base: u64,
        rules: KeepRules,
        max_line_len: u64,
        slots: &'a mut [LineRecord],
        progress: &'a (dyn Fn(u64) + Sync),
    ) -> (Half, Option<(u64, u64)>) {
        let edge = if BACKWARD { bytes.len() } else { 0 };
        let scan = Scan::<BACKWARD> {
            bytes,
            base,
            rules,
            max_line_len,
            slots,
            cursor: edge,
            half: Half::default(),
            too_long: None,
            progress,
            reported_at: edge,
        };
        let scan = if BACKWARD {
            // A newline at the very end ends the last line; every other one ends the line before.
            let mut scan = for_each_newline_rev(&bytes[..bytes.len().saturating_sub(1)], scan);
            if scan.cursor > 0 {
                scan.line(0, scan.cursor);
            }
            scan
        } else {
            let mut scan = for_each_newline(bytes, scan);
            // A final line without a newline is a line too.
            if scan.cursor < bytes.len() {
                scan.line(scan.cursor, bytes.len());
            }
            scan
        };
        (scan.progress)(scan.reported_at.abs_diff(if BACKWARD { 0 } else { bytes.len() }) as u64);
        (scan.half, scan.too_long)
    }

    // Inlined into the SIMD loop rather than called once per line.
    #[inline(always)]
    fn line(&mut self, start: usize, end: usize) {
        let line = &self.bytes[start..end];
        let half = &mut self.half;
        half.physical += 1;
        let edge = if BACKWARD { start } else { end };
        if edge.abs_diff(self.reported_at) >= PROGRESS_STEP {
            (self.progress)(edge.abs_diff(self.reported_at) as u64);
            self.reported_at = edge;
        }
        if !is_kept(line, self.rules) {
            half.skipped += 1;
            return;
        }
        let offset = self.base + start as u64;
        if line.len() as u64 > self.max_line_len {
            // Keep the first in file order: the last one met when scanning backward.
            if BACKWARD || self.too_long.is_none() {
                self.too_long = Some((offset, line.len() as u64));
            }
            return;
        }
        while half.skipped >> SKIP_BITS > half.wraps.len() as u64 {
            half.wraps.push(half.kept);
        }
        let slot = if BACKWARD { self.slots.len() - 1 - half.kept as usize } else { half.kept as usize };
        self.slots[slot] = LineRecord {
            start: offset,
            len: line.len() as u32,
            meta: (half.skipped as u32 & SKIP_MASK) | (terminator_len(line) << TERMINATOR_SHIFT),
        };
        half.kept += 1;
    }
}

impl<const BACKWARD: bool> NewlineSink for Scan<'_, BACKWARD> {
    #[inline(always)]
    fn newline(&mut self, position: usize) {
        if BACKWARD {
            self.line(position + 1, self.cursor);
        } else {
            self.line(self.cursor, position + 1);
        }
        self.cursor = position + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: KeepRules = KeepRules { skip_blank_lines: true, comment_char: Some(b'#') };

    fn build_from(bytes: &[u8], middle: usize, max_line_len: u64) -> Result<LineIndex, BuildError> {
        LineIndex::build_from(bytes, middle, false, RULES, max_line_len, &|_| {})
    }

    fn build(bytes: &[u8]) -> LineIndex {
        build_from(bytes, 0, MAX_LINE_LEN).unwrap()
    }

    /// Everything the index says about each kept line.
    fn lines(idx: &LineIndex) -> Vec<(u64, u64, u32, u32)> {
        (0..idx.len()).map(|k| (idx.line_number(k), idx.record(k).start, idx.record(k).len, idx.record(k).terminator_len())).collect()
    }

    #[test]
    fn keeps_last_line_without_newline_and_numbers_physically() {
        let idx = build(b"a\n\n# c\n \t\x0b\nb\r\nlast");
        assert_eq!(lines(&idx), vec![(1, 0, 2, 1), (5, 11, 3, 2), (6, 14, 4, 0)]);
        assert_eq!(idx.physical_lines(), 6);
    }

    /// Splitting at any line start gives the same index; with 2 skip bits in tests, the
    /// runs of skipped lines below wrap the per-half counts once or several times.
    #[test]
    fn every_middle_gives_the_same_index() {
        let mut text = Vec::new();
        for i in 0..40 {
            text.extend_from_slice(format!("line {i}\r\n").as_bytes());
            text.extend(b"\n#c\n \n".repeat(i % 7));
        }
        text.extend_from_slice(b"unterminated");
        let whole = build(&text);
        assert!(whole.len() == 41 && whole.physical_lines() > 100);
        let starts = std::iter::once(0).chain((1..text.len()).filter(|&m| text[m - 1] == b'\n'));
        for middle in starts {
            // Both ways of sizing the store: generously, and counted exactly as when the
            // address space is limited.
            for count_first in [false, true] {
                let split = LineIndex::build_from(&text, middle, count_first, RULES, MAX_LINE_LEN, &|_| {}).unwrap();
                assert_eq!(lines(&split), lines(&whole), "middle {middle}");
                assert_eq!(split.physical_lines(), whole.physical_lines());
            }
        }
    }

    #[test]
    fn too_long_reports_the_first_in_file_order() {
        let text = b"aa\nbbbbbbb\ncc\nddddddd\nee\n";
        for middle in [0, 3, 11, 14, 22] {
            let err = build_from(text, middle, 5).unwrap_err();
            assert!(matches!(err, BuildError::TooLong { line_number: 2, length: 8 }), "middle {middle}: {err:?}");
        }
    }

    #[test]
    fn line_number_search() {
        let idx = build(b"a\n\n\n#\nb\nc\n");
        assert_eq!(lines(&idx).iter().map(|l| l.0).collect::<Vec<_>>(), vec![1, 5, 6]);
        assert_eq!(idx.first_kept_at_or_after_line(2), 1);
        assert_eq!(idx.first_kept_at_or_after_line(6), 2);
        assert_eq!(idx.first_kept_at_or_after_line(7), 3);
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

    #[test]
    fn empty_input() {
        let idx = build(b"");
        assert_eq!((idx.len(), idx.physical_lines()), (0, 0));
        assert!(idx.records().is_empty());
    }
}
