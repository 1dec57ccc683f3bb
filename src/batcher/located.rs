//! A batch's lines found in the index and read: views into the maps, or copies read
//! with `pread`; which thread may read a map, and when (see [`Located::prefetch`]).

use std::sync::Arc;

use crate::corpus::{packed, BatchFiles, OpenFile, PackedLines, Pinned};
use crate::error::Result;
use crate::index::LineSpan;

use super::Batcher;

impl Batcher {
    /// The lines `ids` found in the index, without reading the files: lines followed by
    /// skipped lines keep the span up to the next kept line until
    /// [`Located::resolve_gaps`] (or [`Located::read_into_memory`]) cuts them at their newline.
    pub(crate) fn locate_with(&self, ids: &[u64]) -> Result<Located> {
        let corpus = &self.inner.corpus;
        if let Some((all, packed)) = corpus.packed() {
            return Ok(self.locate_packed(ids, all, packed));
        }
        let files;
        let mut file_ids: Vec<usize> = Vec::new();
        let mut slots: Vec<u32> = Vec::new();
        let mut locals: Vec<u64> = Vec::with_capacity(ids.len());
        if corpus.num_files() == 1 {
            files = BatchFiles::Held(vec![corpus.file(0)?]);
            locals.extend_from_slice(ids);
        } else {
            slots.reserve(ids.len());
            let slot_of = |f: usize, file_ids: &mut Vec<usize>| {
                file_ids.push(f);
                file_ids.len() as u32 - 1
            };
            if corpus.num_files() <= 1 << 16 {
                // File -> slot in this batch: a table of this thread's, reused from batch to
                // batch (a fresh one was 120 KB to fill for every batch drawn from a tree of
                // 30,000 files), an entry valid only in the batch that wrote it.
                SLOT_TABLE.with_borrow_mut(|table| {
                    let batch = table.next_batch(corpus.num_files());
                    for &id in ids {
                        let (f, k) = corpus.locate(id);
                        let entry = &mut table.entries[f];
                        if entry.0 != batch {
                            *entry = (batch, slot_of(f, &mut file_ids));
                        }
                        slots.push(entry.1);
                        locals.push(k);
                    }
                });
            } else {
                let mut map = std::collections::HashMap::new();
                for &id in ids {
                    let (f, k) = corpus.locate(id);
                    slots.push(*map.entry(f).or_insert_with(|| slot_of(f, &mut file_ids)));
                    locals.push(k);
                }
            }
            files = corpus.files(&file_ids)?;
        }
        // Gather first, in a loop of a few instructions a line: its cache misses overlap
        // by the dozen, where a loop that also decodes lets only a few be in flight (the
        // profile of the core bench showed that loop waiting).
        let slot_of = |i: usize| slots.get(i).copied().unwrap_or(0) as usize;
        let gathered: Vec<[u64; 2]> = if files.len() == 1 {
            let records = files[0].index.raw_records();
            locals.iter().map(|&k| [records[k as usize], records[k as usize + 1]]).collect()
        } else {
            let records: Vec<&[u64]> = files.iter().map(|f| f.index.raw_records()).collect();
            locals
                .iter()
                .zip(&slots)
                .map(|(&k, &slot)| {
                    let records = records[slot as usize];
                    [records[k as usize], records[k as usize + 1]]
                })
                .collect()
        };
        let mut spans = Vec::with_capacity(ids.len());
        let mut gaps = Vec::new();
        for (i, &[rec, next]) in gathered.iter().enumerate() {
            let file = &files[slot_of(i)];
            let (span, gap) = file.index.span_before_gap(rec, next, file.source.bytes());
            if gap {
                gaps.push(i);
            }
            spans.push(span);
        }
        let recs = gathered.into_iter().map(|[rec, _]| rec).collect();
        Ok(Located { files, file_ids, slots, locals, recs, spans, gaps, owned: None })
    }

    /// [`locate_with`](Self::locate_with) in a corpus's packed lines: each line's two
    /// entries of one array, its file only numbered (never looked at).
    fn locate_packed(&self, ids: &[u64], all: &Arc<Pinned>, packed: &PackedLines) -> Located {
        let corpus = &self.inner.corpus;
        let mut slots = Vec::with_capacity(ids.len());
        let mut locals = Vec::with_capacity(ids.len());
        for &id in ids {
            let (f, k) = corpus.locate(id);
            slots.push(f as u32);
            locals.push(k);
        }
        // Gathered in a loop of its own, as in `locate_with`: without the branches of
        // finding each line's file, dozens of its cache misses are in flight at once.
        let entries = packed.entries();
        let gathered: Vec<[u64; 2]> = ids.iter().zip(&slots).map(|(&id, &f)| packed::pair(entries, id, f as usize)).collect();
        let mut spans = Vec::with_capacity(ids.len());
        let mut gaps = Vec::new();
        for (i, &[entry, next]) in gathered.iter().enumerate() {
            let (span, gap) = packed::span(entry, next);
            if gap {
                gaps.push(i);
            }
            spans.push(span);
        }
        let recs = gathered.into_iter().map(|[entry, _]| entry).collect();
        Located { files: BatchFiles::Packed(all.clone()), file_ids: Vec::new(), slots, locals, recs, spans, gaps, owned: None }
    }
}

thread_local! {
    static SLOT_TABLE: std::cell::RefCell<SlotTable> = const { std::cell::RefCell::new(SlotTable { batch: 0, entries: Vec::new() }) };
}

/// Per file of the corpus: the batch that last used the entry, and the file's slot in it.
struct SlotTable {
    batch: u32,
    entries: Vec<(u32, u32)>,
}

impl SlotTable {
    /// A fresh batch number, with an entry for each of `files`: no entry holds it yet.
    fn next_batch(&mut self, files: usize) -> u32 {
        if self.entries.len() < files {
            self.entries.resize(files, (0, 0));
        }
        self.batch = self.batch.wrapping_add(1);
        if self.batch == 0 {
            // Wrapped: entries of 2^32 batches ago could look current.
            self.entries.iter_mut().for_each(|e| *e = (0, 0));
            self.batch = 1;
        }
        self.batch
    }
}

/// A batch's lines found in their files: owned, so it can be made on one thread (the
/// read-ahead of [`BatchStream`](crate::BatchStream)) and used on another.
#[derive(Debug)]
pub struct Located {
    pub(super) files: BatchFiles,
    /// Corpus index of each of `files` (empty for a one-file corpus: file 0).
    pub(super) file_ids: Vec<usize>,
    /// Per line: its index into `files` (empty when there is one file; the file's number in
    /// the corpus for [`BatchFiles::Packed`]).
    pub(super) slots: Vec<u32>,
    /// Per line: its id within its file.
    pub(super) locals: Vec<u64>,
    /// Per line: its index record (its entry, for packed lines: see [`PackedLines`]).
    pub(super) recs: Vec<u64>,
    /// Per line: where it lies (in its file; in its pack, for packed lines).
    pub(super) spans: Vec<LineSpan>,
    /// Lines whose span still runs to the next kept line (see [`Batcher::locate_with`]).
    pub(super) gaps: Vec<usize>,
    /// The lines read into memory (global shuffle from disk): the buffer, and each line's
    /// span in it.
    pub(super) owned: Option<(arrow::buffer::Buffer, Vec<LineSpan>)>,
}

impl Located {
    /// Number of lines.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True for no lines.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    #[inline(always)]
    pub(super) fn file(&self, i: usize) -> &OpenFile {
        &self.files[self.slots.get(i).copied().unwrap_or(0) as usize]
    }

    /// Checks that the files are unchanged since they were indexed: one `fstat` per file,
    /// or one drain of the watch for files mapped without a descriptor (and, when one watch
    /// watches every file of the corpus and reports nothing, no look at each file).
    pub fn check_unchanged(&self) -> Result<()> {
        if self.files.all_unchanged_at_once() {
            return Ok(());
        }
        crate::source::check_all_unchanged(self.read_files().map(|f| &f.source))
    }

    /// The files the batch reads, each once: for packed lines, the files its lines are in
    /// (not every file of the corpus, which `files` holds).
    pub(super) fn read_files(&self) -> impl Iterator<Item = &OpenFile> + '_ {
        let distinct = self.files.packed().map(|_| {
            let mut fs = self.slots.clone();
            fs.sort_unstable();
            fs.dedup();
            fs
        });
        // (Every file of the batch otherwise, without a list of them made for the purpose.)
        let all = distinct.is_none().then_some(0..self.files.len() as u32);
        distinct.into_iter().flatten().chain(all.into_iter().flatten()).map(move |s| &self.files[s as usize])
    }

    /// Line `i`'s pack among the packed lines' packs.
    #[inline(always)]
    pub(super) fn pack_of(&self, packed: &PackedLines, i: usize) -> usize {
        packed.pack_of(self.slots[i] as usize)
    }

    /// Runs `read`, which reads this batch's maps, guarded (see `source::truncation`): a
    /// file truncated under it is [`FileChanged`](crate::Error::FileChanged), not `SIGBUS`.
    pub fn reading<T>(&self, read: impl FnOnce() -> Result<T>) -> Result<T> {
        match crate::source::guarded(read) {
            Ok(done) => done,
            Err(crate::source::Truncated) => {
                // The change names the file; a file truncated and grown back in between
                // shows nothing, and is still not served.
                self.check_unchanged()?;
                let path = self.read_files().next().map(|f| f.source.path().to_path_buf()).unwrap_or_default();
                Err(crate::Error::FileChanged { path, what: "truncated while its lines were read".into() })
            }
        }
    }

    /// Line `i`'s bytes and span in them: the file's map (its pack, for packed lines), or
    /// the buffer it was read into.
    #[inline]
    fn source_of(&self, i: usize) -> (&[u8], &LineSpan) {
        match (&self.owned, self.files.packed()) {
            (Some((buffer, spans)), _) => (buffer.as_slice(), &spans[i]),
            (None, Some(packed)) => (packed.packs()[self.pack_of(packed, i)].as_slice(), &self.spans[i]),
            (None, None) => (self.file(i).source.bytes(), &self.spans[i]),
        }
    }

    /// The one buffer every line is in, when there is one (a single file's map, or the
    /// lines read into memory): the per-line loops below then skip the file lookup.
    fn single_source(&self) -> Option<(&[u8], &[LineSpan])> {
        match (&self.owned, self.files.packed()) {
            (Some((buffer, spans)), _) => Some((buffer.as_slice(), spans)),
            (None, Some(packed)) => match packed.packs() {
                [pack] => Some((pack.as_slice(), &self.spans)),
                _ => None,
            },
            (None, None) if self.files.len() == 1 => Some((self.files[0].source.bytes(), &self.spans)),
            (None, None) => None,
        }
    }

    /// The lines as they are in the file, terminator included: the original `list[bytes]`.
    pub fn raw_lines(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let single = self.single_source();
        (0..self.len()).map(move |i| match single {
            Some((bytes, spans)) => &bytes[spans[i].range()],
            None => {
                let (bytes, s) = self.source_of(i);
                &bytes[s.range()]
            }
        })
    }

    /// The lines as the `line` column serves them (terminator dropped unless `keep_terminator`).
    pub fn lines(&self, keep_terminator: bool) -> impl Iterator<Item = &[u8]> + '_ {
        let single = self.single_source();
        (0..self.len()).map(move |i| match single {
            Some((bytes, spans)) => &bytes[spans[i].served_range(keep_terminator)],
            None => {
                let (bytes, s) = self.source_of(i);
                &bytes[s.served_range(keep_terminator)]
            }
        })
    }

    /// Reads the lines into a buffer of their own with many reads in flight (the global
    /// shuffle from disk): every line is a random read, which the disk serves far faster
    /// in parallel than as page faults one at a time.
    pub(crate) fn read_into_memory(&mut self) -> Result<()> {
        if self.files.packed().is_some() {
            return Err(crate::Error::Internal { message: "packed lines read from disk".into() });
        }
        // A line not yet cut at its newline is read up to the bound of the search for it.
        let limit = crate::index::record::LONG_LINE;
        for &i in &self.gaps {
            let s = &mut self.spans[i];
            s.end = s.end.min(s.start + limit);
        }
        let mut buffer = Vec::new();
        let mut spans = vec![LineSpan::default(); self.len()];
        for (slot, file) in self.files.iter().enumerate() {
            let lines: Vec<usize> = (0..self.len()).filter(|&i| self.slots.get(i).copied().unwrap_or(0) as usize == slot).collect();
            let ranges: Vec<std::ops::Range<u64>> = lines.iter().map(|&i| self.spans[i].start..self.spans[i].end).collect();
            let (bytes, offsets) = crate::source::read_ranges(file.source.random_reader()?, &ranges).map_err(|e| file.source.read_error(e))?;
            let base = buffer.len() as u64;
            buffer.extend_from_slice(&bytes);
            for (&i, &at) in lines.iter().zip(&offsets) {
                let s = self.spans[i];
                spans[i] = LineSpan { start: base + at as u64, end: base + at as u64 + s.len(), terminator: s.terminator };
            }
        }
        for i in std::mem::take(&mut self.gaps) {
            let got = &buffer[spans[i].range()];
            match memchr::memchr(b'\n', got) {
                Some(p) => {
                    spans[i].end = spans[i].start + p as u64 + 1;
                    self.spans[i].end = self.spans[i].start + p as u64 + 1;
                }
                None => {
                    // A line longer than the search bound (rare): its end from the index,
                    // its bytes read again whole.
                    let file = self.file(i);
                    let full = file.index.long_span_after_gap(self.locals[i], self.spans[i]);
                    let mut bytes = vec![0u8; full.len() as usize];
                    std::os::unix::fs::FileExt::read_exact_at(file.source.random_reader()?, &mut bytes, full.start)
                        .map_err(|e| file.source.read_error(e))?;
                    let at = buffer.len() as u64;
                    buffer.extend_from_slice(&bytes);
                    spans[i] = LineSpan { start: at, end: at + full.len(), terminator: full.terminator };
                    self.spans[i] = full;
                }
            }
            spans[i].terminator = spans[i].terminator.min(spans[i].len() as u32);
            self.spans[i].terminator = spans[i].terminator;
        }
        self.owned = Some((arrow::buffer::Buffer::from_vec(buffer), spans));
        Ok(())
    }

    /// 1-based physical line numbers, in served order.
    pub fn line_numbers(&self) -> impl Iterator<Item = u64> + '_ {
        let packed = self.files.packed().is_some();
        self.locals.iter().zip(&self.recs).enumerate().map(move |(i, (&k, &rec))| match packed {
            true => packed::line_number(rec, k),
            false => self.file(i).index.line_number_of(k, rec),
        })
    }

    /// Corpus index of the file of each line.
    pub fn file_ids(&self) -> impl Iterator<Item = usize> + '_ {
        let packed = self.files.packed().is_some();
        (0..self.len()).map(move |i| match self.slots.get(i) {
            Some(&s) if packed => s as usize,
            Some(&s) => self.file_ids[s as usize],
            None => 0,
        })
    }

    /// Byte offsets of the lines in their files.
    pub fn byte_offsets(&self) -> impl Iterator<Item = u64> + '_ {
        let packed = self.files.packed();
        self.spans.iter().enumerate().map(move |(i, s)| match (packed, &self.owned) {
            (Some(p), None) => s.start - p.base(self.slots[i] as usize),
            _ => s.start,
        })
    }

    /// The span of line `i`, followed by skipped lines, cut at its newline (see
    /// [`LineIndex::span_after_gap`](crate::index::LineIndex::span_after_gap)): packed
    /// lines in their file's terms, then back in their pack's.
    fn span_after_gap(&self, i: usize) -> LineSpan {
        let file = self.file(i);
        let span = self.spans[i];
        match self.files.packed() {
            Some(p) => {
                let base = p.base(self.slots[i] as usize);
                let local = LineSpan { start: span.start - base, end: span.end - base, terminator: span.terminator };
                let cut = file.index.span_after_gap(self.locals[i], local, file.source.bytes());
                LineSpan { start: cut.start + base, end: cut.end + base, terminator: cut.terminator }
            }
            None => file.index.span_after_gap(self.locals[i], span, file.source.bytes()),
        }
    }

    /// Cuts the lines followed by skipped lines at their first newline, read in the map
    /// after checking that their files are unchanged (the only reads of a map before a
    /// batch is assembled: see [`touch`](Self::touch)).
    pub(crate) fn resolve_gaps(&mut self) -> Result<()> {
        if self.owned.is_some() || self.gaps.is_empty() {
            return Ok(());
        }
        self.check_unchanged()?;
        let gaps = std::mem::take(&mut self.gaps);
        let cut = self.reading(|| {
            // Touch them all first, so their cache misses overlap, then search.
            let touched = gaps.iter().fold(0u8, |acc, &i| {
                let (bytes, span) = self.source_of(i);
                acc ^ bytes.get(span.start as usize).copied().unwrap_or(0)
            });
            std::hint::black_box(touched);
            Ok(gaps.iter().map(|&i| (i, self.span_after_gap(i))).collect::<Vec<_>>())
        })?;
        for (i, span) in cut {
            self.spans[i] = span;
        }
        Ok(())
    }

    /// Asks the CPU to fetch each line's first and last byte (and the start of each line
    /// still to be cut at its newline) into its cache, for a builder whose consumer will
    /// read the lines (`list[bytes]`): a prefetch is a hint that loads nothing, so it needs
    /// no guard, and the consumer checks the file before reading.
    pub(crate) fn prefetch(&self) {
        if self.owned.is_some() {
            return;
        }
        if let Some((bytes, spans)) = self.single_source() {
            for s in spans {
                crate::source::prefetch(bytes, s.start as usize);
                crate::source::prefetch(bytes, (s.end as usize).saturating_sub(1));
            }
        } else {
            for (i, s) in self.spans.iter().enumerate() {
                let (bytes, _) = self.source_of(i);
                crate::source::prefetch(bytes, s.start as usize);
                crate::source::prefetch(bytes, (s.end as usize).saturating_sub(1));
            }
        }
    }

    /// Reads each line's first byte in one branch-free pass: the page-cache misses of a
    /// shuffled batch overlap here, and the per-line loops that follow (whose length
    /// branches would stall them one by one) read from cache. With `ends`, for callers
    /// about to copy whole lines, each line's last byte is read too.
    pub(crate) fn touch(&self, ends: bool) {
        if self.owned.is_some() {
            return;
        }
        let touch = |bytes: &[u8], s: &LineSpan| {
            let first = bytes.get(s.start as usize).copied().unwrap_or(0);
            let last = if ends { bytes.get((s.end as usize).wrapping_sub(1)).copied().unwrap_or(0) } else { 0 };
            first ^ last
        };
        let touched = if let Some((bytes, spans)) = self.single_source() {
            spans.iter().fold(0u8, |acc, s| acc ^ touch(bytes, s))
        } else if let Some(packed) = self.files.packed() {
            let maps: Vec<&[u8]> = packed.packs().iter().map(|p| p.as_slice()).collect();
            self.spans.iter().enumerate().fold(0u8, |acc, (i, s)| acc ^ touch(maps[self.pack_of(packed, i)], s))
        } else {
            let maps: Vec<&[u8]> = self.files.iter().map(|f| f.source.bytes()).collect();
            self.spans.iter().zip(&self.slots).fold(0u8, |acc, (s, &slot)| acc ^ touch(maps[slot as usize], s))
        };
        std::hint::black_box(touched);
    }
}
