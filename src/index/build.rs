//! Building the index: one pass over the file, on two threads, from its middle outward.
//!
//! One thread scans the *head* (the lines before the middle line start) backward, the
//! other the *tail* forward. Each writes its records straight into their final slots of
//! one reserved array ([`RecordStore`]), the backward scan from the middle slot down and
//! the forward scan from it up, so the index comes out contiguous and in file order with
//! no merge copy (about a fifth of the build time, in a prototype, when each thread
//! filled its own vector).
//!
//! Each thread reads its half in segments of about [`SEGMENT`] bytes cut at line starts:
//! newlines first (writing records), then UTF-8 over the same bytes while they are still
//! in cache, so the file is read once for both.

use std::sync::atomic::{AtomicBool, Ordering};

use super::record::{Fields, Layout, LONG_LINE};
use super::scan::{NewlineScanner, NewlineSink};
use super::store::{RecordStore, Records};
use super::utf8::{invalid_bytes, Utf8Verdict};
use super::{Half, IndexMeta, LineIndex};
use crate::options::KeepRules;
use std::fs::File;

use crate::source::{Cancel, Prefetcher};

/// Bytes per segment: small enough to stay in L2 between the newline and UTF-8 passes.
const SEGMENT: usize = 256 << 10;

/// How far ahead of each scan reads are requested when the file comes from disk: the
/// backward scan gets no help from the kernel's read-ahead, which only follows forward
/// reads, and the forward one gets more than the kernel's default window.
const READ_AHEAD: usize = 64 << 20;
/// Reads are requested in pieces of this size.
const READ_AHEAD_STEP: usize = 8 << 20;

/// What a build reports to, asks, and tells the kernel.
#[derive(Clone, Copy)]
pub(crate) struct Hooks<'a> {
    /// Called now and then with the number of bytes just indexed (from both threads).
    pub progress: &'a (dyn Fn(u64) + Sync),
    /// Asked every segment whether to stop.
    pub cancel: &'a dyn Cancel,
    /// When the file comes from disk: the file, which each scan reads ahead of itself
    /// with a [`Prefetcher`].
    pub read_ahead: Option<&'a File>,
    /// When the file comes from disk: called with byte ranges the scans are done with.
    pub release: Option<&'a (dyn Fn(std::ops::Range<usize>) + Sync)>,
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
    /// No memory for the records, or a file too large to index (over 8 PiB).
    Memory(std::io::Error),
    /// Cancelled.
    Interrupted,
    /// The file was truncated while a scan read it (see `source::truncation`).
    Truncated,
}

#[inline]
pub(crate) fn is_kept(line: &[u8], rules: KeepRules) -> bool {
    rules.content_skip(line).is_none()
}

#[inline]
fn terminator_len(line: &[u8]) -> u32 {
    match line {
        [.., b'\r', b'\n'] => 2,
        [.., b'\n'] => 1,
        _ => 0,
    }
}

/// Where line `lines + 1` of `bytes` starts (the end of a header of `lines` lines; the
/// file's end if it has no more).
fn header_end(bytes: &[u8], lines: u64) -> u64 {
    if lines == 0 {
        return 0;
    }
    memchr::memchr_iter(b'\n', bytes).nth((lines - 1).min(usize::MAX as u64) as usize).map_or(bytes.len() as u64, |p| p as u64 + 1)
}

/// Number of lines in `bytes` (a last line without `\n` counts).
fn count_lines(bytes: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', bytes).count() + usize::from(bytes.last().is_some_and(|&b| b != b'\n'))
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

/// What each half hands back.
struct HalfResult {
    half: Half,
    /// `(offset, length)` of the first line over the limit in file order.
    too_long: Option<(u64, u64)>,
    /// `(scan-order index, end offset)` of long lines followed by skipped lines.
    long_ends: Vec<(u64, u64)>,
    /// Skipped lines met before the first kept line in scan order: for the head, those
    /// right before the middle.
    leading_skips: u64,
    /// `(end, length)` of the first kept line in scan order (the head's last line).
    first_kept: Option<(u64, u64)>,
    /// End offset of the last kept line in scan order (the tail's last line).
    last_end: u64,
    /// File offset of the first invalid UTF-8 byte of a kept line (the lowest found).
    bad_utf8: Option<u64>,
    /// A skipped line holds an invalid UTF-8 byte.
    skipped_invalid: bool,
}

impl LineIndex {
    /// Indexes `bytes`, on two threads for inputs over 2 MiB.
    pub(crate) fn build(bytes: &[u8], rules: KeepRules, max_line_len: u64, hooks: Hooks<'_>) -> Result<Self, BuildError> {
        let two_cores = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
        let ranges = split_at_lines(bytes, if two_cores { 2 } else { 1 }, 1 << 20);
        Self::build_from(bytes, ranges[ranges.len() - 1].start, false, rules, max_line_len, hooks)
    }

    /// Indexes `bytes` outward from `middle`, which must be 0 or a line start. With
    /// `count_first` (tests), the store is sized as when the generous reservation is refused.
    pub(crate) fn build_from(
        bytes: &[u8],
        middle: usize,
        count_first: bool,
        rules: KeepRules,
        max_line_len: u64,
        hooks: Hooks<'_>,
    ) -> Result<Self, BuildError> {
        if bytes.len() as u64 >= 1 << 53 {
            return Err(BuildError::Memory(std::io::Error::other("files over 8 PiB cannot be indexed")));
        }
        let layout = Layout::for_file(bytes.len() as u64);
        let (head_bytes, tail_bytes) = bytes.split_at(middle);
        // A line holds at least one byte, so a half of n bytes has at most n lines: that
        // much address space (plus the sentinel) costs nothing until written. Where it is
        // refused, count.
        let generous = if count_first { None } else { RecordStore::reserve(bytes.len() + 1).ok() };
        let (mut store, split) = match generous {
            Some(store) => (store, middle),
            None => {
                let split = count_lines(head_bytes);
                let store = RecordStore::reserve(split + count_lines(tail_bytes) + 1).map_err(BuildError::Memory)?;
                (store, split)
            }
        };
        let stop = AtomicBool::new(false);
        let scanner = NewlineScanner::new();
        let (head_slots, tail_slots) = store.slots_mut().split_at_mut(split);
        let common = Common {
            rules,
            header_end: header_end(bytes, rules.header_lines),
            max_line_len,
            layout,
            scanner,
            progress: hooks.progress,
            read_ahead: hooks.read_ahead,
            release: hooks.release,
            stop: &stop,
        };
        let (head, tail) = std::thread::scope(|s| {
            // Each thread's reads of the map guarded: a truncation is an error, not `SIGBUS`.
            let head =
                (middle > 0).then(|| s.spawn(|| crate::source::guarded(|| Scan::<true>::run(head_bytes, 0, head_slots, common.clone(), &NeverAsk))));
            let tail = crate::source::guarded(|| Scan::<false>::run(tail_bytes, middle as u64, tail_slots, common.clone(), hooks.cancel));
            let head = head.map(|h| h.join());
            (head, tail)
        });
        let head = match head {
            None => HalfResult::empty(),
            Some(Ok(Ok(h))) => h,
            Some(Ok(Err(crate::source::Truncated))) => return Err(BuildError::Truncated),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
        };
        let tail = tail.map_err(|crate::source::Truncated| BuildError::Truncated)?;
        if stop.load(Ordering::Relaxed) {
            return Err(BuildError::Interrupted);
        }
        if let Some((offset, length)) = head.too_long.or(tail.too_long) {
            let line_number = count_lines(&bytes[..offset as usize]) as u64 + 1;
            return Err(BuildError::TooLong { line_number, length });
        }
        let (head_kept, tail_kept) = (head.half.kept, tail.half.kept);
        let n = head_kept + tail_kept;
        let first = split - head_kept as usize;
        let slots = store.slots_mut();
        // Skipped lines at the end of the head precede the tail's first line too.
        if head.leading_skips > 0 && tail_kept > 0 {
            slots[split] = layout.with_gap(slots[split]);
        }
        let tail_first_gap = tail_kept > 0 && layout.gap(slots[split]);
        let last_end = if tail_kept > 0 { tail.last_end } else { head.first_kept.map_or(0, |(end, _)| end) };
        slots[split + tail_kept as usize] = layout.pack(Fields { start: last_end, terminator: 0, gap: false, skip_low: 0 });
        store.set_used(first..split + tail_kept as usize + 1);

        let mut long_ends: Vec<(u64, u64)> = head.long_ends.iter().rev().map(|&(j, end)| (head_kept - 1 - j, end)).collect();
        if let (true, Some((end, len))) = (tail_first_gap, head.first_kept) {
            if len > LONG_LINE && long_ends.last().is_none_or(|&(k, _)| k != head_kept - 1) {
                long_ends.push((head_kept - 1, end));
            }
        }
        long_ends.extend(tail.long_ends.iter().map(|&(j, end)| (head_kept + j, end)));

        let bad = match (head.bad_utf8, tail.bad_utf8) {
            (Some(h), _) => Some(h),
            (None, t) => t,
        };
        let meta = IndexMeta {
            layout,
            head: head.half,
            tail: tail.half,
            long_ends,
            utf8: Utf8Verdict::Valid,
            file_utf8: bad.is_none() && !head.skipped_invalid && !tail.skipped_invalid,
            rules,
            file_len: bytes.len() as u64,
        };
        let mut index = LineIndex { records: Records::built(store), meta };
        if let Some(offset) = bad {
            let line_start = memchr::memrchr(b'\n', &bytes[..offset as usize]).map_or(0, |p| p + 1) as u64;
            let line_id = index.first_at_or_after_offset(line_start);
            debug_assert!(line_id < n);
            index.meta.utf8 = Utf8Verdict::Invalid { line_id, offset };
        }
        Ok(index)
    }
}

impl HalfResult {
    fn empty() -> Self {
        HalfResult {
            half: Half::default(),
            too_long: None,
            long_ends: Vec::new(),
            leading_skips: 0,
            first_kept: None,
            last_end: 0,
            bad_utf8: None,
            skipped_invalid: false,
        }
    }
}

/// The head's thread never asks Python for signals (only the calling thread may); it
/// stops when the tail's thread raises the shared flag.
struct NeverAsk;

impl Cancel for NeverAsk {
    fn cancelled(&self) -> bool {
        false
    }
}

/// What both scans share.
#[derive(Clone)]
struct Common<'a> {
    rules: KeepRules,
    /// Lines starting before this offset are header lines, skipped whatever they hold.
    header_end: u64,
    max_line_len: u64,
    layout: Layout,
    scanner: NewlineScanner,
    progress: &'a (dyn Fn(u64) + Sync),
    read_ahead: Option<&'a File>,
    release: Option<&'a (dyn Fn(std::ops::Range<usize>) + Sync)>,
    stop: &'a AtomicBool,
}

/// One thread's scan of one half, writing records into its slots: backward from the end of
/// the slots when `BACKWARD`, forward from their start otherwise.
struct Scan<'a, const BACKWARD: bool> {
    bytes: &'a [u8],
    /// File offset of `bytes[0]`.
    base: u64,
    common: Common<'a>,
    slots: &'a mut [u64],
    /// Where the next line starts (forward) or ends (backward).
    cursor: usize,
    out: HalfResult,
    /// Skipped lines since the last kept line in scan order.
    skipped_since: u64,
    /// Forward: `(index, end, length)` of the last kept line.
    last_kept: Option<(u64, u64, u64)>,
    /// Reads were requested from here on (forward) or up to here (backward).
    requested: usize,
    prefetcher: Option<Prefetcher>,
    /// Each request's far end (its end forward, its start backward) and its number, in the
    /// order requested.
    reads: Vec<(usize, u64)>,
}

impl<'a, const BACKWARD: bool> Scan<'a, BACKWARD> {
    fn run(bytes: &'a [u8], base: u64, slots: &'a mut [u64], common: Common<'a>, cancel: &dyn Cancel) -> HalfResult {
        let prefetcher = common.read_ahead.and_then(|f| Prefetcher::new(f, 4, 1));
        let mut scan = Scan::<BACKWARD> {
            bytes,
            base,
            common,
            slots,
            cursor: if BACKWARD { bytes.len() } else { 0 },
            out: HalfResult::empty(),
            skipped_since: 0,
            last_kept: None,
            requested: if BACKWARD { bytes.len() } else { 0 },
            prefetcher,
            reads: Vec::new(),
        };
        if BACKWARD {
            let mut end = bytes.len();
            while end > 0 {
                scan.read_ahead(end);
                // The segment and the search for its first line start, read.
                scan.wait_read(end.saturating_sub(2 * SEGMENT));
                let s = end.saturating_sub(SEGMENT);
                let start = if s == 0 { 0 } else { memchr::memrchr(b'\n', &bytes[..s]).map_or(0, |p| p + 1) };
                // Newlines in [start - 1, end - 1) end the lines that start in [start, end);
                // a newline at the very end of the half ends its last line, not a line before.
                let first_written = scan.slots.len() - scan.out.half.kept as usize;
                let scanner = scan.common.scanner;
                scan = scanner.backward(&bytes[start.saturating_sub(1)..end - 1], start.saturating_sub(1), scan);
                if start == 0 && scan.cursor > 0 {
                    scan.line(0, scan.cursor);
                }
                scan.segment_done(start..end, first_written);
                if scan.should_stop(cancel) {
                    break;
                }
                end = start;
            }
            if scan.skipped_since > 0 && scan.out.half.kept > 0 {
                // Lines skipped at the very start of the file precede line 0.
                let slot = scan.slots.len() - scan.out.half.kept as usize;
                scan.slots[slot] = scan.common.layout.with_gap(scan.slots[slot]);
            }
            if scan.out.half.kept == 0 {
                scan.out.leading_skips = scan.out.half.skipped;
            }
        } else {
            let mut start = 0;
            while start < bytes.len() {
                scan.read_ahead(start);
                scan.wait_read((start + 2 * SEGMENT).min(bytes.len()));
                let s = start + SEGMENT;
                let end = if s >= bytes.len() { bytes.len() } else { memchr::memchr(b'\n', &bytes[s..]).map_or(bytes.len(), |p| s + p + 1) };
                let first_written = scan.out.half.kept as usize;
                let scanner = scan.common.scanner;
                scan = scanner.forward(&bytes[start..end], start, scan);
                // A final line without a newline is a line too.
                if end == bytes.len() && scan.cursor < bytes.len() {
                    scan.line(scan.cursor, bytes.len());
                }
                scan.segment_done(start..end, first_written);
                if scan.should_stop(cancel) {
                    break;
                }
                start = end;
            }
        }
        scan.out
    }

    /// Requests the reads of the next [`READ_AHEAD`] bytes past `at`, in the scan's
    /// direction, when the file comes from disk.
    fn read_ahead(&mut self, at: usize) {
        let Some(prefetcher) = &mut self.prefetcher else { return };
        let base = self.base;
        if BACKWARD {
            while self.requested > at.saturating_sub(READ_AHEAD) {
                let start = self.requested.saturating_sub(READ_AHEAD_STEP);
                let n = prefetcher.request(base + start as u64..base + self.requested as u64);
                self.reads.push((start, n));
                self.requested = start;
            }
        } else {
            let limit = (at + READ_AHEAD).min(self.bytes.len());
            while self.requested < limit {
                let end = (self.requested + READ_AHEAD_STEP).min(self.bytes.len());
                let n = prefetcher.request(base + self.requested as u64..base + end as u64);
                self.reads.push((end, n));
                self.requested = end;
            }
        }
    }

    /// When the file comes from disk, waits until the requested reads have reached `to`
    /// (down to it, backward): the scan then reads from the page cache instead of faulting
    /// on pages the reads have not reached (each fault a small synchronous read of its own,
    /// beside the large ones: a cold open of the 1 GB corpus took 0.70–1.20 s so, against
    /// 0.36–0.39 s for the requested reads alone). A scan waiting on a read the kernel
    /// never ends would have waited in the fault as well; a cancel ends the wait.
    fn wait_read(&self, to: usize) {
        let Some(prefetcher) = &self.prefetcher else { return };
        // The first request whose far end reaches `to`.
        let i = if BACKWARD { self.reads.partition_point(|&(start, _)| start > to) } else { self.reads.partition_point(|&(end, _)| end < to) };
        if let Some(&(_, n)) = self.reads.get(i) {
            prefetcher.wait_for(n, || self.common.stop.load(Ordering::Relaxed));
        }
    }

    fn should_stop(&self, cancel: &dyn Cancel) -> bool {
        if cancel.cancelled() {
            self.common.stop.store(true, Ordering::Relaxed);
        }
        self.common.stop.load(Ordering::Relaxed)
    }

    /// After the records of `range` are written: progress, and its UTF-8 check.
    fn segment_done(&mut self, range: std::ops::Range<usize>, first_written: usize) {
        (self.common.progress)(range.len() as u64);
        if let Some(release) = self.common.release {
            // Unmapped pages are the cheapest for the kernel to reclaim when the file does
            // not fit: done with, they make room for the reads ahead.
            let base = self.base as usize;
            release(base + range.start..base + range.end);
        }
        if self.out.bad_utf8.is_some() && !BACKWARD {
            // The tail's first failure is its lowest; the head's are found ever lower.
            return;
        }
        let layout = self.common.layout;
        let written = if BACKWARD {
            &self.slots[self.slots.len() - self.out.half.kept as usize..first_written]
        } else {
            &self.slots[first_written..self.out.half.kept as usize]
        };
        let base = self.base;
        let found = invalid_bytes(&self.bytes[range.clone()], range.start, &mut self.out.skipped_invalid, |line_start| {
            let start = base + line_start as u64;
            written.binary_search_by_key(&start, |&r| layout.start(r)).is_ok()
        });
        if let Some(at) = found {
            self.out.bad_utf8 = Some(base + at as u64);
        }
    }

    // Inlined into the SIMD loop rather than called once per line.
    #[inline(always)]
    fn line(&mut self, start: usize, end: usize) {
        let line = &self.bytes[start..end];
        let half = &mut self.out.half;
        half.physical += 1;
        if self.base + (start as u64) < self.common.header_end || !is_kept(line, self.common.rules) {
            half.skipped += 1;
            if !BACKWARD && self.skipped_since == 0 {
                if let Some((j, end, len)) = self.last_kept {
                    if len > LONG_LINE {
                        self.out.long_ends.push((j, end));
                    }
                }
            }
            self.skipped_since += 1;
            return;
        }
        let offset = self.base + start as u64;
        let len = line.len() as u64;
        if len > self.common.max_line_len {
            // Keep the first in file order: the last one met when scanning backward.
            if BACKWARD || self.out.too_long.is_none() {
                self.out.too_long = Some((offset, len));
            }
            return;
        }
        let skip_bits = self.common.layout.skip_bits();
        while half.skipped >> skip_bits > half.wraps.len() as u64 {
            half.wraps.push(half.kept);
        }
        let j = half.kept;
        let gap = !BACKWARD && self.skipped_since > 0;
        let rec = self.common.layout.pack(Fields { start: offset, terminator: terminator_len(line), gap, skip_low: half.skipped });
        if BACKWARD {
            let slot = self.slots.len() - 1 - j as usize;
            self.slots[slot] = rec;
            if self.skipped_since > 0 {
                if j > 0 {
                    self.slots[slot + 1] = self.common.layout.with_gap(self.slots[slot + 1]);
                } else {
                    self.out.leading_skips = self.skipped_since;
                }
                if len > LONG_LINE {
                    self.out.long_ends.push((j, offset + len));
                }
            }
            if j == 0 {
                self.out.first_kept = Some((offset + len, len));
            }
        } else {
            self.slots[j as usize] = rec;
            self.last_kept = Some((j, offset + len, len));
            self.out.last_end = offset + len;
        }
        self.skipped_since = 0;
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
