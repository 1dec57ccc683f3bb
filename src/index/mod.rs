//! The index of kept lines: one 8-byte record per kept line, in file order (see
//! [`record`] for the layout), built once per file and kept in an index file that every
//! later open maps read-only ([`persist`]).
//!
//! # Line numbers
//! Physical line numbers (as `grep -n` prints them) are not stored: kept line `k` has
//! number `k + 1 + skipped_before(k)`. The index is built from the middle of the file
//! outward (see [`build`]), so each record holds a count of skipped (blank or comment)
//! lines local to its half: in the tail, those before it in the tail; in the head, which
//! is scanned backward, those *after* it in the head. The two halves' totals turn either
//! into `skipped_before`, and each half lists the rare lines at which its count wraps.

pub(crate) mod build;
pub(crate) mod persist;
pub(crate) mod record;
#[allow(unsafe_code)]
mod scan;
mod store;
pub(crate) mod utf8;

use crate::options::KeepRules;
#[cfg(feature = "cli")]
pub(crate) use persist::index_files_of;
use record::{Layout, LONG_LINE};
pub(crate) use store::RecordStore;
use store::Records;
pub use utf8::Utf8Verdict;

/// The longest line (terminator included) that can be served: one Arrow view buffer is
/// addressed with 32-bit signed offsets by pyarrow and the C data interface.
pub const MAX_LINE_LEN: u64 = i32::MAX as u64;

/// Where one kept line lies in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineSpan {
    /// Offset of the line's first byte.
    pub start: u64,
    /// Offset one past its last byte, terminator included.
    pub end: u64,
    /// Length of its terminator: 2 for `\r\n`, 1 for `\n`, 0 for a last line without one.
    pub terminator: u32,
}

impl LineSpan {
    /// The line's bytes in the file, terminator included.
    #[inline]
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The line's bytes as served: without the terminator unless `keep_terminator`.
    #[inline]
    pub fn served_range(&self, keep_terminator: bool) -> std::ops::Range<usize> {
        let end = if keep_terminator { self.end } else { self.end - u64::from(self.terminator) };
        self.start as usize..end as usize
    }

    /// Length in bytes, terminator included.
    #[inline]
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
}

/// Skipped-line counts of one half of the file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Half {
    pub kept: u64,
    pub skipped: u64,
    pub physical: u64,
    /// Scan-order indices of kept lines at which the count's high part grew by one (an
    /// index repeats when it grew by several). Empty unless the half skips `2^skip_bits` lines.
    pub wraps: Vec<u64>,
}

impl Half {
    /// The full skipped count of the `j`-th kept line in scan order, from its low bits.
    #[inline]
    fn count(&self, j: u64, low: u64, skip_bits: u32) -> u64 {
        let high = if self.wraps.is_empty() { 0 } else { self.wraps.partition_point(|&w| w <= j) as u64 };
        (high << skip_bits) | low
    }
}

/// Everything of an index but its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexMeta {
    pub layout: Layout,
    /// The lines before the middle, scanned backward.
    pub head: Half,
    /// The lines from the middle on, scanned forward.
    pub tail: Half,
    /// `(line id, end offset)` of kept lines over [`LONG_LINE`] bytes followed by skipped
    /// lines, ascending.
    pub long_ends: Vec<(u64, u64)>,
    pub utf8: Utf8Verdict,
    /// Every byte of the file is UTF-8, skipped lines too: then lines cut at line
    /// boundaries are UTF-8 whatever the index says of where they are (see
    /// [`LineIndex::cuts_trusted`]).
    pub file_utf8: bool,
    pub rules: KeepRules,
    pub file_len: u64,
}

/// The kept lines of one file under one set of [`KeepRules`].
#[derive(Debug)]
pub struct LineIndex {
    records: Records,
    meta: IndexMeta,
}

impl LineIndex {
    /// Number of kept lines.
    pub fn len(&self) -> u64 {
        self.meta.head.kept + self.meta.tail.kept
    }

    /// Number of physical lines in the file, kept or not.
    pub fn physical_lines(&self) -> u64 {
        self.meta.head.physical + self.meta.tail.physical
    }

    /// Whether every kept line is UTF-8.
    pub fn utf8(&self) -> Utf8Verdict {
        self.meta.utf8
    }

    /// Bytes of the records (sentinel included) and of the side lists.
    #[cfg(test)]
    fn size_bytes(&self) -> u64 {
        let side = (self.meta.head.wraps.len() + self.meta.tail.wraps.len() + 2 * self.meta.long_ends.len()) as u64 * 8;
        self.records.as_slice().len() as u64 * 8 + side
    }

    /// True when this process built the index: its lines are cut where the file's line
    /// boundaries are. An index mapped from a file may have been written by anyone who
    /// can write it as this user: its cuts are checked as each line is served as a string.
    pub(crate) fn cuts_trusted(&self) -> bool {
        !self.records.loaded()
    }

    pub(crate) fn meta(&self) -> &IndexMeta {
        &self.meta
    }

    pub(crate) fn raw_records(&self) -> &[u64] {
        self.records.as_slice()
    }

    pub(crate) fn from_parts(records: Records, meta: IndexMeta) -> Self {
        LineIndex { records, meta }
    }

    /// Checks what an index read from a file must satisfy for every span it gives to be a
    /// line of the file that a view can hold: starts ascending and within the file (the
    /// sentinel too), terminators of at most 2 bytes and within their line, lines at most
    /// [`MAX_LINE_LEN`] bytes, listed line ends within their lines. One pass over the
    /// records, on every core for a large index. (A line followed by skipped lines ends at
    /// its newline, found at use within [`LONG_LINE`] bytes or listed; at most
    /// [`MAX_LINE_LEN`] bytes whatever the index says.)
    pub(crate) fn check_structure(&self) -> Result<(), String> {
        let (l, recs, m) = (self.meta.layout, self.records.as_slice(), &self.meta);
        if recs.len() as u64 != m.head.kept + m.tail.kept + 1 {
            return Err("record count disagrees with line counts".into());
        }
        check_records_on_every_core(l, recs, m.file_len)?;
        let starts = |k: u64| l.start(recs[k as usize]);
        if m.long_ends.iter().any(|&(k, end)| end < starts(k) || end > starts(k + 1) || end - starts(k) > MAX_LINE_LEN) {
            return Err("a listed line end out of its line".into());
        }
        Ok(())
    }

    /// Asks the kernel to read a mapped index into the page cache (before random access).
    pub(crate) fn will_need(&self) {
        self.records.will_need()
    }

    /// The start offset of kept line `k`.
    #[inline]
    pub fn start(&self, k: u64) -> u64 {
        self.meta.layout.start(self.records.as_slice()[k as usize])
    }

    /// Where kept line `k` lies in `bytes` (its file's map).
    ///
    /// # Panics
    /// If `k >= len()`.
    #[inline]
    pub fn span(&self, k: u64, bytes: &[u8]) -> LineSpan {
        let records = self.records.as_slice();
        self.span_of(k, records[k as usize], records[k as usize + 1], bytes)
    }

    /// [`span`](Self::span) from the records of `k` and `k + 1`, for callers that gathered
    /// them. Every offset is clamped into `bytes`, so even a corrupt index yields slices
    /// that are in bounds (and wrong); batch building reports such spans as corruption.
    #[inline(always)]
    pub(crate) fn span_of(&self, k: u64, rec: u64, next: u64, bytes: &[u8]) -> LineSpan {
        match self.span_before_gap(rec, next, bytes) {
            (span, false) => span,
            (span, true) => self.span_after_gap(k, span, bytes),
        }
    }

    /// The span from the records of a line and the next, and whether skipped lines lie
    /// between them: then the span ends where the next line starts, too far, until
    /// [`span_after_gap`](Self::span_after_gap) finds the line's newline.
    #[inline(always)]
    pub(crate) fn span_before_gap(&self, rec: u64, next: u64, bytes: &[u8]) -> (LineSpan, bool) {
        let l = self.meta.layout;
        let len = bytes.len() as u64;
        let start = l.start(rec).min(len);
        let end = l.start(next).min(len).max(start);
        (LineSpan { start, end, terminator: l.terminator(rec).min((end - start) as u32) }, l.gap(next))
    }

    /// The span of line `k`, followed by skipped lines, from its span before the gap: it
    /// ends at its first `\n` in `bytes` (the file's, or a copy of its start).
    pub(crate) fn span_after_gap(&self, k: u64, span: LineSpan, bytes: &[u8]) -> LineSpan {
        let (start, next_start) = (span.start, span.end);
        let limit = next_start.min(start.saturating_add(LONG_LINE));
        match bytes.get(start as usize..limit as usize).and_then(|b| memchr::memchr(b'\n', b)) {
            Some(p) => Self::cut(span, start + p as u64 + 1),
            None => self.long_span_after_gap(k, span),
        }
    }

    /// [`span_after_gap`](Self::span_after_gap) for a line with no `\n` in its first
    /// `LONG_LINE` bytes: its end is listed in the index, no byte of the file is read.
    pub(crate) fn long_span_after_gap(&self, k: u64, span: LineSpan) -> LineSpan {
        let (start, next_start) = (span.start, span.end);
        let end = match self.meta.long_ends.binary_search_by_key(&k, |&(id, _)| id) {
            Ok(i) => self.meta.long_ends[i].1.clamp(start, next_start),
            // Only a corrupt index gets here (a line over `LONG_LINE` before skipped
            // lines is always listed); a view still never exceeds the longest line.
            Err(_) => next_start.min(start.saturating_add(MAX_LINE_LEN)),
        };
        Self::cut(span, end)
    }

    fn cut(span: LineSpan, end: u64) -> LineSpan {
        LineSpan { start: span.start, end, terminator: span.terminator.min((end - span.start) as u32) }
    }

    /// The 1-based physical line number of kept line `k`.
    #[inline]
    pub fn line_number(&self, k: u64) -> u64 {
        self.line_number_of(k, self.records.as_slice()[k as usize])
    }

    /// [`line_number`](Self::line_number) of kept line `k` whose record is `rec`.
    #[inline]
    pub(crate) fn line_number_of(&self, k: u64, rec: u64) -> u64 {
        let (l, head, tail) = (self.meta.layout, &self.meta.head, &self.meta.tail);
        let low = l.skip_low(rec);
        let bits = l.skip_bits();
        // Both halves' answers, then a select: which half a shuffled line is in is a coin
        // toss, and a branch on it mispredicted half the time.
        let in_head = head.skipped.wrapping_sub(head.count(head.kept.wrapping_sub(1).wrapping_sub(k), low, bits));
        let in_tail = head.skipped.wrapping_add(tail.count(k.wrapping_sub(head.kept), low, bits));
        let skipped_before = if k < head.kept { in_head } else { in_tail };
        k.wrapping_add(1).wrapping_add(skipped_before)
    }

    /// The first kept line whose physical line number is at least `line_number`
    /// (`len()` if none). Line numbers grow with `k`, so this is a binary search.
    pub fn first_at_or_after_line(&self, line_number: u64) -> u64 {
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

    /// The first kept line starting at or after file offset `offset` (`len()` if none).
    pub fn first_at_or_after_offset(&self, offset: u64) -> u64 {
        let l = self.meta.layout;
        let records = &self.records.as_slice()[..self.len() as usize];
        records.partition_point(|&r| l.start(r) < offset) as u64
    }

    /// The kept line whose bytes (terminator included) contain file offset `offset`.
    pub fn line_containing(&self, offset: u64, bytes: &[u8]) -> Option<u64> {
        let k = self.first_at_or_after_offset(offset + 1).checked_sub(1)?;
        (offset < self.span(k, bytes).end).then_some(k)
    }
}

/// [`check_records`] over all of `recs`, split over the cores when there are millions of
/// records (the loop runs at about 1.2 ns a record: 12 ms of each reopen of a 10 M-line
/// index on one core). Each part checks its records and the next part's first, so every
/// pair is checked once; the error reported is the first in file order.
fn check_records_on_every_core(l: record::Layout, recs: &[u64], file_len: u64) -> Result<(), String> {
    const PER_THREAD: usize = 1 << 20;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    check_records_in_parts(l, recs, file_len, cores.min(recs.len() / PER_THREAD))
}

/// [`check_records`] over `recs` in `parts` parts (at most one per pair of records), each
/// on a thread of its own (on the caller's alone for one).
fn check_records_in_parts(l: record::Layout, recs: &[u64], file_len: u64, parts: usize) -> Result<(), String> {
    let pairs = recs.len().saturating_sub(1);
    let parts = parts.min(pairs);
    if parts <= 1 {
        return check_records(l, recs, 0, file_len);
    }
    let pairs_per_part = pairs.div_ceil(parts);
    // As many parts as that size needs (999 parts of 1,000 pairs are 500 of 2).
    let parts = pairs.div_ceil(pairs_per_part);
    std::thread::scope(|s| {
        let checks: Vec<_> = (0..parts)
            .map(|p| {
                let first = p * pairs_per_part;
                let end = (first + pairs_per_part + 1).min(recs.len());
                s.spawn(move || check_records(l, &recs[first..end], first, file_len))
            })
            .collect();
        for check in checks {
            check.join().unwrap_or_else(|_| Err("the record check panicked".into()))?;
        }
        Ok(())
    })
}

/// Checks each pair of consecutive records of `recs` (record `first` of the index and
/// on): starts ascending and within the file, terminators of at most 2 bytes and within
/// their line, lines at most [`MAX_LINE_LEN`] bytes.
fn check_records(l: record::Layout, recs: &[u64], first: usize, file_len: u64) -> Result<(), String> {
    for (i, pair) in recs.windows(2).enumerate() {
        let k = first + i;
        let (start, next) = (l.start(pair[0]), l.start(pair[1]));
        let term = u64::from(l.terminator(pair[0]));
        if next < start || next > file_len || term > 2 {
            return Err(format!("record {k} out of order or range"));
        }
        let len = next - start;
        if !l.gap(pair[1]) && term > len {
            return Err(format!("record {k}: terminator longer than its line"));
        }
        if len > MAX_LINE_LEN && !l.gap(pair[1]) {
            return Err(format!("record {k}: a line longer than {MAX_LINE_LEN} bytes"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::build::BuildError;
    use super::*;
    use crate::source::NeverCancel;

    #[test]
    fn the_record_check_in_parts_finds_what_one_pass_finds() {
        let n = 1000u64;
        let layout = record::Layout::for_file(10 * n);
        let good: Vec<u64> =
            (0..=n).map(|k| layout.pack(record::Fields { start: 10 * k, terminator: if k < n { 1 } else { 0 }, gap: false, skip_low: 0 })).collect();
        let pack = |start: u64, terminator: u32| layout.pack(record::Fields { start, terminator, gap: false, skip_low: 0 });
        // Faults at the ends, at and beside the parts' edges (2 parts cut at pair 500,
        // 3 at 333 and 666), and two at once (the first in file order is named).
        let faults: Vec<Vec<(usize, u64)>> = vec![
            vec![],
            vec![(0, pack(5000, 1))],
            vec![(1000, pack(20_000, 0))],
            vec![(500, pack(4980, 1))],
            vec![(499, pack(5005, 1))],
            vec![(501, pack(5000, 1))],
            vec![(333, pack(3330, 3))],
            vec![(667, pack(6700, 1)), (666, pack(6660, 3))],
            vec![(900, pack(8990, 1)), (100, pack(90, 1))],
        ];
        for fault in faults {
            let mut recs = good.clone();
            for &(k, r) in &fault {
                recs[k] = r;
            }
            let one = check_records(layout, &recs, 0, 10 * n);
            assert_eq!(fault.is_empty(), one.is_ok(), "{fault:?}: {one:?}");
            for parts in [2, 3, 4, 7, 999, 1000, 5000] {
                assert_eq!(check_records_in_parts(layout, &recs, 10 * n, parts), one, "{fault:?} in {parts} parts");
            }
        }
    }

    const RULES: KeepRules = KeepRules { skip_blank_lines: true, comment_char: Some(b'#'), header_lines: 0 };

    fn hooks() -> build::Hooks<'static> {
        build::Hooks { progress: &|_| {}, cancel: &NeverCancel, read_ahead: None, release: None }
    }

    fn build_from(bytes: &[u8], middle: usize, max_line_len: u64) -> Result<LineIndex, BuildError> {
        LineIndex::build_from(bytes, middle, false, RULES, max_line_len, hooks())
    }

    fn build(bytes: &[u8]) -> LineIndex {
        build_from(bytes, 0, MAX_LINE_LEN).unwrap()
    }

    /// Everything the index says about each kept line.
    fn lines(idx: &LineIndex, bytes: &[u8]) -> Vec<(u64, u64, u64, u32)> {
        (0..idx.len())
            .map(|k| {
                let s = idx.span(k, bytes);
                (idx.line_number(k), s.start, s.len(), s.terminator)
            })
            .collect()
    }

    #[test]
    fn header_lines_are_skipped_whatever_they_hold_from_any_middle() {
        let text = b"id,name\n#x\n\nrow 1\n\nrow 2\n#c\nrow 3\nrow 4";
        let starts: Vec<usize> = std::iter::once(0).chain(text.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i + 1)).collect();
        for header in 0..11u64 {
            let rules = KeepRules { header_lines: header, ..RULES };
            // The reference: physical numbers of lines past the header that the rules keep.
            let want: Vec<u64> = text
                .split_inclusive(|&b| b == b'\n')
                .enumerate()
                .filter(|&(i, line)| i as u64 >= header && build::is_kept(line, RULES))
                .map(|(i, _)| i as u64 + 1)
                .collect();
            for &middle in &starts {
                let idx = LineIndex::build_from(text, middle, false, rules, MAX_LINE_LEN, hooks()).unwrap();
                let got: Vec<u64> = (0..idx.len()).map(|k| idx.line_number(k)).collect();
                assert_eq!(got, want, "header {header}, middle {middle}");
                assert_eq!(idx.physical_lines(), 9);
            }
        }
    }

    #[test]
    fn keeps_last_line_without_newline_and_numbers_physically() {
        let text = b"a\n\n# c\n \t\x0b\nb\r\nlast";
        let idx = build(text);
        assert_eq!(lines(&idx, text), vec![(1, 0, 2, 1), (5, 11, 3, 2), (6, 14, 4, 0)]);
        assert_eq!(idx.physical_lines(), 6);
        assert_eq!(idx.size_bytes(), 4 * 8);
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
                let split = LineIndex::build_from(&text, middle, count_first, RULES, MAX_LINE_LEN, hooks()).unwrap();
                assert_eq!(lines(&split, &text), lines(&whole, &text), "middle {middle}");
                assert_eq!(split.physical_lines(), whole.physical_lines());
            }
        }
    }

    /// Lines longer than the end-scan bound followed by skipped lines keep their exact
    /// end, whichever half they fall in and wherever the middle is.
    #[test]
    fn long_lines_before_skipped_lines() {
        let long = "x".repeat(LONG_LINE as usize + 10);
        let text = format!("{long}\n\n{long}\n# c\nshort\n{long}\n\n");
        let bytes = text.as_bytes();
        let starts = std::iter::once(0).chain((1..bytes.len()).filter(|&m| bytes[m - 1] == b'\n'));
        for middle in starts {
            let idx = build_from(bytes, middle, MAX_LINE_LEN).unwrap();
            let got: Vec<usize> = (0..idx.len()).map(|k| idx.span(k, bytes).range().len()).collect();
            assert_eq!(got, vec![long.len() + 1, long.len() + 1, 6, long.len() + 1], "middle {middle}");
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
        assert_eq!((0..3).map(|k| idx.line_number(k)).collect::<Vec<_>>(), vec![1, 5, 6]);
        assert_eq!(idx.first_at_or_after_line(2), 1);
        assert_eq!(idx.first_at_or_after_line(6), 2);
        assert_eq!(idx.first_at_or_after_line(7), 3);
    }

    #[test]
    fn containing_offset() {
        let text = b"ab\n\ncd\n";
        let idx = build(text);
        assert_eq!(idx.line_containing(0, text), Some(0));
        assert_eq!(idx.line_containing(2, text), Some(0));
        assert_eq!(idx.line_containing(3, text), None);
        assert_eq!(idx.line_containing(4, text), Some(1));
        assert_eq!(idx.line_containing(7, text), None);
    }

    #[test]
    fn empty_input() {
        let idx = build(b"");
        assert_eq!((idx.len(), idx.physical_lines()), (0, 0));
        assert_eq!(idx.raw_records().len(), 1);
    }

    #[test]
    fn utf8_verdict_names_the_first_bad_served_line() {
        // The Latin-1 comment is skipped, so only line 4 counts; every middle agrees.
        let text = b"ok\n# caf\xe9\nfine\nbad \xff\nworse \xfe\n";
        let starts = std::iter::once(0).chain((1..text.len()).filter(|&m| text[m - 1] == b'\n'));
        for middle in starts {
            let idx = build_from(text, middle, MAX_LINE_LEN).unwrap();
            assert_eq!(idx.utf8(), Utf8Verdict::Invalid { line_id: 2, offset: 19 }, "middle {middle}");
        }
        assert_eq!(build(b"ok\n# caf\xe9\nfine\n").utf8(), Utf8Verdict::Valid);
    }
}

/// How the index of an opened file was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexStatus {
    /// Built in this process and kept in its memory only.
    Memory,
    /// A valid index file was mapped.
    Loaded(std::path::PathBuf),
    /// Built in this process, written to this index file and mapped from it.
    Written(std::path::PathBuf),
}

impl IndexStatus {
    /// The index file in use, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            IndexStatus::Memory => None,
            IndexStatus::Loaded(p) | IndexStatus::Written(p) => Some(p),
        }
    }
}

/// Options of [`open_index`] besides the file.
pub(crate) struct IndexRequest<'a> {
    pub rules: KeepRules,
    pub cache: &'a crate::options::IndexCache,
    pub progress: &'a (dyn Fn(u64) + Sync),
    pub cancel: &'a dyn crate::source::Cancel,
    /// The file comes from disk: request the build's reads ahead.
    pub from_disk: bool,
    /// Build from a copy read into memory, not through the map: for a file others can
    /// write, whose truncation during the build would otherwise be `SIGBUS`.
    pub from_copy: bool,
}

/// The index of `source`: a valid index file mapped, or one built (and written where the
/// cache option allows). Rebuilding over a stale or invalid index file adds a notice.
pub(crate) fn open_index(
    source: &crate::source::SourceFile,
    req: &IndexRequest<'_>,
    notices: &mut Vec<String>,
) -> crate::Result<(LineIndex, IndexStatus)> {
    use crate::options::IndexCache;
    let path = source.path();
    // (A file mapped without a descriptor is small: no read-ahead for it.)
    let cold = |source: &crate::source::SourceFile| {
        !req.from_copy && source.file().ok().is_some_and(|f| crate::source::mostly_uncached(f, source.bytes().len() as u64))
    };
    let build = || -> crate::Result<LineIndex> {
        let release = |r: std::ops::Range<usize>| source.release(r);
        // The build's reads are guarded (`source::truncation`); the caller's hooks are not ours.
        let progress = |n: u64| crate::source::unguarded(|| (req.progress)(n));
        let cancel = crate::source::UnguardedCancel(req.cancel);
        let hooks = build::Hooks {
            progress: &progress,
            cancel: &cancel,
            // From disk, and for a file to keep in the page cache that is mostly not there
            // yet: the scans otherwise read it by page faults, a small synchronous read each
            // (a cold open of the 1 GB corpus 0.39–0.98 s so, against `cat` 0.32–0.56 s).
            read_ahead: if req.from_disk {
                Some(source.file()?)
            } else if cold(source) {
                source.file().ok()
            } else {
                None
            },
            release: req.from_disk.then_some(&release),
        };
        let copy;
        let bytes = if req.from_copy {
            let mut buf = vec![0u8; source.bytes().len()];
            std::os::unix::fs::FileExt::read_exact_at(source.file()?, &mut buf, 0).map_err(|e| source.read_error(e))?;
            copy = buf;
            &copy[..]
        } else {
            source.bytes()
        };
        let hooks = if req.from_copy { build::Hooks { read_ahead: None, release: None, ..hooks } } else { hooks };
        // Guarded on this thread too (the header's lines, the counts of an error message);
        // the scan's threads guard their own reads.
        let built = crate::source::guarded(|| LineIndex::build(bytes, req.rules, MAX_LINE_LEN, hooks)).unwrap_or(Err(build::BuildError::Truncated));
        built.map_err(|e| match e {
            build::BuildError::TooLong { line_number, length } => {
                crate::Error::LineTooLong { path: path.to_path_buf(), line_number, length, limit: MAX_LINE_LEN }
            }
            build::BuildError::Memory(e) => crate::Error::from_io(path, e),
            build::BuildError::Interrupted => crate::Error::Interrupted { path: path.to_path_buf() },
            build::BuildError::Truncated => crate::Error::FileChanged { path: path.to_path_buf(), what: "truncated while it was indexed".into() },
        })
    };
    let candidates = persist::locations(path, req.rules, req.cache);
    if candidates.is_empty() || source.is_anonymous() {
        return Ok((build()?, IndexStatus::Memory));
    }
    let identity = source.identity();
    let try_load = |c: &std::path::Path, notices: &mut Vec<String>| match persist::load(c, identity, req.rules) {
        Ok(index) => Some(index),
        Err(persist::Unusable::Missing) => None,
        Err(persist::Unusable::Stale(why) | persist::Unusable::Invalid(why)) => {
            notices.push(format!("{}: index {} not used ({why}); rebuilding", path.display(), c.display()));
            None
        }
    };
    let mut seen = Vec::new();
    for c in &candidates {
        if let Some(index) = try_load(c, &mut seen) {
            return Ok((index, IndexStatus::Loaded(c.clone())));
        }
    }
    // Only the first candidate's complaint matters: later ones are fallbacks.
    notices.extend(seen.into_iter().take(1));
    if matches!(req.cache, IndexCache::ReadOnly(_)) {
        return Ok((build()?, IndexStatus::Memory));
    }
    // Build under the data file's lock, so that processes opening the same new file at
    // once build it once; then check again: another process may have just written it.
    let Some(_lock) = persist::BuildLock::acquire(source.file()?, req.cancel) else {
        return Err(crate::Error::Interrupted { path: path.to_path_buf() });
    };
    for c in &candidates {
        if let Ok(index) = persist::load(c, identity, req.rules) {
            return Ok((index, IndexStatus::Loaded(c.clone())));
        }
    }
    let index = build()?;
    let data_mode = source.file()?.metadata().map_or(0o600, |m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    let mut failures = Vec::new();
    for c in &candidates {
        if let Some(dir) = c.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() && std::fs::create_dir_all(dir).is_err() {
                failures.push(format!("{}: cannot create its directory", c.display()));
                continue;
            }
        }
        let written = persist::write(c, &index, identity, data_mode).map_err(|e| e.to_string());
        match written.and_then(|()| persist::load(c, identity, req.rules).map_err(|e| format!("{e:?}"))) {
            Ok(mapped) => return Ok((mapped, IndexStatus::Written(c.clone()))),
            Err(why) => failures.push(format!("{}: {why}", c.display())),
        }
    }
    notices.push(format!("{}: index kept in memory; could not write it ({})", path.display(), failures.join("; ")));
    Ok((index, IndexStatus::Memory))
}
