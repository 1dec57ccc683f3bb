//! The kept lines of a corpus whose files all stay mapped, as one array of places in the
//! buffers views name (a pack of small files, `source::Pack`, or a file's own window): a
//! batch drawn from a tree of small files then reads like one drawn from one file — two
//! entries of one array a line, one data buffer a pack — and looks at no file's own state.
//! Each file's state (several cold cache lines: its index's records, layout and verdicts,
//! its map and windows) read for the thousand files a batch of a 30,000-file tree touches
//! was most of what kept that epoch at 4× one file's.
//!
//! Built once, at the first batch that needs it (a `count` or an `info` never pays for
//! it), on every core. It costs 8 bytes a kept line of memory, beside the files' own
//! indexes, at most an eighth of the memory there is (beyond it, each file is looked up as
//! before).

use std::sync::Arc;

use arrow::buffer::Buffer;

use crate::index::LineSpan;
use crate::options::LineType;

use super::OpenFile;

/// An entry: `skipped << 34 | gap << 33 | terminator << 31 | start`.
const START_MASK: u64 = (1 << 31) - 1;
const TERMINATOR_SHIFT: u32 = 31;
const GAP_SHIFT: u32 = 33;
const SKIPPED_SHIFT: u32 = 34;

/// Per kept line: where it starts in its pack, its terminator's length, whether skipped
/// lines come before it, and how many lines of its file before it are skipped (so its line
/// number).
#[derive(Debug)]
pub(crate) struct PackedLines {
    /// File after file in corpus order, each file's kept lines and then its sentinel (where
    /// its last kept line ends, and whether skipped lines follow it). The entry of line `k`
    /// of file `f`, whose first line id is `s`, is `entries[s + k + f]`; the next entry's
    /// start is where the line ends (before a gap is cut at its newline).
    entries: crate::index::RecordStore,
    /// Each file's start in its pack, and its pack.
    places: Vec<(u32, u32)>,
    /// The buffers (packs, or files' own windows: "packs" here), as `places` number them.
    packs: Vec<Buffer>,
}

impl PackedLines {
    /// The lines of `files`, if each lies in one buffer, with every line's span checked as a
    /// string view of `line_type` checks it (`arrow::every_cut_holds`): an index read from a
    /// file is checked here once, not at every view. `None` when a file spans several
    /// buffers, a check fails (the views then find and report it, line by line, as without
    /// this array), a file was truncated while read, a count does not fit an entry, or the
    /// array would exceed `max_bytes`.
    pub(crate) fn build(files: &[Arc<OpenFile>], line_type: LineType, keep_terminator: bool, max_bytes: u64) -> Option<Self> {
        let total: u64 = files.iter().map(|f| f.index.len() + 1).sum();
        if total.saturating_mul(8) > max_bytes {
            return None;
        }
        let mut packs: Vec<Buffer> = Vec::new();
        let mut known: std::collections::HashMap<usize, u32> = std::collections::HashMap::new();
        let mut places = Vec::with_capacity(files.len());
        for f in files {
            let Some((buffer, base)) = f.windows.one_buffer() else {
                // No line of a file without lines is ever looked up: its one entry, the
                // sentinel, is never read.
                if f.index.len() == 0 {
                    places.push((0, 0));
                    continue;
                }
                return None;
            };
            let end = base.checked_add(f.source.bytes().len() as u64)?;
            if end > buffer.len() as u64 || end > START_MASK {
                return None;
            }
            let pack = *known.entry(buffer.as_ptr() as usize).or_insert_with(|| {
                packs.push(buffer.clone());
                packs.len() as u32 - 1
            });
            places.push((base as u32, pack));
        }
        // In memory of its own, in 2 MiB pages where the kernel has them: entries are read
        // at random, two a line, and in 4 KiB pages each read was a TLB miss as well (the
        // tree's epoch in the `many_files` bench: 0.08 s against 0.05 s).
        let mut store = crate::index::RecordStore::reserve(total as usize).ok()?;
        store.set_used(0..total as usize);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(files.len().max(1));
        let chunk = files.len().div_ceil(threads).max(1);
        let filled = std::thread::scope(|s| {
            let mut rest = &mut store.slots_mut()[..total as usize];
            let mut handles = Vec::new();
            for (files, places) in files.chunks(chunk).zip(places.chunks(chunk)) {
                let count = files.iter().map(|f| f.index.len() as usize + 1).sum();
                let (mine, others) = std::mem::take(&mut rest).split_at_mut(count);
                rest = others;
                handles.push(s.spawn(move || fill(mine, files, places, line_type, keep_terminator)));
            }
            handles.into_iter().all(|h| h.join().unwrap_or(false))
        });
        filled.then_some(PackedLines { entries: store, places, packs })
    }

    /// The entries, to look lines up with [`pair`].
    pub(crate) fn entries(&self) -> &[u64] {
        self.entries.records()
    }

    /// The buffers, in the order [`pack_of`](Self::pack_of) numbers them.
    pub(crate) fn packs(&self) -> &[Buffer] {
        &self.packs
    }

    /// Where file `f` starts in its pack.
    #[inline]
    pub(crate) fn base(&self, f: usize) -> u64 {
        u64::from(self.places[f].0)
    }

    /// The pack of file `f`.
    #[inline(always)]
    pub(crate) fn pack_of(&self, f: usize) -> usize {
        self.places[f].1 as usize
    }
}

/// The entries (of [`PackedLines::entries`]) of line `id` of the corpus, which is in file
/// `f`, and of the one after it (the next line's, or the file's sentinel).
#[inline(always)]
pub(crate) fn pair(entries: &[u64], id: u64, f: usize) -> [u64; 2] {
    let at = id as usize + f;
    [entries[at], entries[at + 1]]
}

/// The span in its pack of the line of entry `entry`, followed by entry `next`, and
/// whether skipped lines lie between them (then it ends at its newline: see
/// [`LineIndex::span_after_gap`](crate::index::LineIndex::span_after_gap)).
#[inline(always)]
pub(crate) fn span(entry: u64, next: u64) -> (LineSpan, bool) {
    let start = entry & START_MASK;
    let end = (next & START_MASK).max(start);
    let terminator = ((entry >> TERMINATOR_SHIFT) & 3) as u32;
    (LineSpan { start, end, terminator: terminator.min((end - start) as u32) }, (next >> GAP_SHIFT) & 1 == 1)
}

/// The 1-based physical line number of line `k` of its file, whose entry is `entry`.
#[inline]
pub(crate) fn line_number(entry: u64, k: u64) -> u64 {
    k + 1 + (entry >> SKIPPED_SHIFT)
}

/// Fills `out` with the entries of `files`, whose places are `places`; false if a file's
/// lines are not all cut as views need them, it was truncated while read, or a count does
/// not fit.
fn fill(out: &mut [u64], files: &[Arc<OpenFile>], places: &[(u32, u32)], line_type: LineType, keep_terminator: bool) -> bool {
    let mut out = out.iter_mut();
    let mut push = |entry: u64| out.next().map(|slot| *slot = entry).is_some();
    for (file, &(base, _)) in files.iter().zip(places) {
        let bytes = file.source.bytes();
        let view = crate::arrow::FileView { source: &file.source, index: &file.index, windows: &file.windows };
        if !crate::source::guarded(|| crate::arrow::every_cut_holds(&view, line_type, keep_terminator)).unwrap_or(false) {
            return false;
        }
        let records = file.index.raw_records();
        let n = file.index.len() as usize;
        let entry = |start: u64, terminator: u32, gap_before: bool, skipped: u64| {
            (skipped << SKIPPED_SHIFT)
                | (u64::from(gap_before) << GAP_SHIFT)
                | (u64::from(terminator) << TERMINATOR_SHIFT)
                | (u64::from(base) + start)
        };
        // (where the previous line ends before its gap is cut, and whether skipped lines follow it)
        let mut prev: Option<(u64, bool)> = None;
        for k in 0..n {
            let (span, gap_after) = file.index.span_before_gap(records[k], records[k + 1], bytes);
            // Line k - 1 ends where line k starts (before its gap is cut): the next entry's
            // start gives each line's end, as the file's own records do.
            if prev.is_some_and(|(end, _)| end != span.start) {
                return false;
            }
            let Some(skipped) = file.index.line_number_of(k as u64, records[k]).checked_sub(1 + k as u64) else { return false };
            if skipped >> (64 - SKIPPED_SHIFT) != 0 || !push(entry(span.start, span.terminator, prev.is_some_and(|(_, gap)| gap), skipped)) {
                return false;
            }
            prev = Some((span.end, gap_after));
        }
        // The sentinel: where the last kept line ends, and whether skipped lines follow it.
        let (end, gap) = prev.unwrap_or((0, false));
        if !push(entry(end, 0, gap, 0)) {
            return false;
        }
    }
    out.next().is_none()
}
