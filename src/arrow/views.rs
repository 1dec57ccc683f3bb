//! Zero-copy `Utf8View` / `BinaryView` arrays whose data buffers are windows of the map.
//!
//! A view longer than 12 bytes names a data buffer and an offset in it. Our data buffers
//! are *windows* of a file's map, each at most `i32::MAX` bytes (the most pyarrow and the
//! C data interface address in one buffer) and each ending on a line end, so every kept
//! line lies wholly inside one window. A file of up to 2 GiB is one window.
//!
//! # Safety argument
//! [`line_array`] builds the arrays with `new_unchecked`, skipping Arrow's validation
//! (which re-reads every line: about 0.4 s per epoch of the 1 GB benchmark corpus). It is
//! sound because every view is made here, from the bytes it describes, with an offset and
//! length checked to lie inside the window it names; and a `Utf8View` array is built only
//! with a [`Utf8Checked`], whose constructor checks, for every file the batch reads,
//! that its index found every kept line UTF-8 and that the file is unchanged since
//! (one `fstat` each, or one drain of the watch), or takes both facts for the batch's files
//! as a whole from a corpus that established them for all its files (UTF-8 at its open,
//! unchanged by a watch of every file that reports nothing now: `corpus::Pinned`). See
//! `source::map` for what a concurrent writer can still do.
//!
//! [`substrings`] derives a column from a valid `line` column without validation either:
//! each of its views describes a Rust `&str` taken from a line (a JSON field between its
//! quotes) or from a string the batch decoded, so it is UTF-8 and lies where it says.

use std::sync::Arc;

use arrow::array::builder::make_view;
use arrow::array::{ArrayRef, BinaryViewArray, StringViewArray};
use arrow::buffer::{Buffer, ScalarBuffer};

use crate::error::{Error, Result};
use crate::index::{LineIndex, LineSpan, Utf8Verdict, MAX_LINE_LEN};
use crate::options::LineType;
use crate::source::SourceFile;

/// A file's map cut into view data buffers.
pub(crate) struct Windows {
    /// The one window of a file that fits in one (nearly every file), kept inline: a batch
    /// drawn from a tree reads a thousand files' windows, and behind a `Vec` each was one
    /// more cache miss. For a file mapped side by side with others, the buffer over all of
    /// them (see `source::Pack`), which the batch's other such files share.
    whole: Option<Buffer>,
    /// `whole` is a pack's buffer, and the file starts `base` bytes into it.
    in_pack: bool,
    base: u64,
    /// The file's length (its part of `whole`).
    whole_len: u64,
    /// Otherwise: where each window starts, and the windows.
    starts: Vec<u64>,
    buffers: Vec<Buffer>,
}

impl std::fmt::Debug for Windows {
    /// The windows' places, never their bytes (Arrow's `Debug` of a buffer prints every
    /// byte: a whole file, or a whole pack of them, read outside the truncation guard).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = |b: &Buffer| (b.as_ptr(), b.len());
        f.debug_struct("Windows")
            .field("whole", &self.whole.as_ref().map(place))
            .field("in_pack", &self.in_pack)
            .field("base", &self.base)
            .field("whole_len", &self.whole_len)
            .field("starts", &self.starts)
            .field("buffers", &self.buffers.iter().map(place).collect::<Vec<_>>())
            .finish()
    }
}

impl Windows {
    /// Greedy windows: each starts at a kept line and takes as many whole kept lines as fit.
    pub(crate) fn new(source: &SourceFile, index: &LineIndex) -> Self {
        let bytes = source.bytes();
        let file_len = bytes.len() as u64;
        let mut starts = Vec::new();
        let mut buffers = Vec::new();
        if let Some((pack, base)) = source.placed() {
            // The file lies inside the pack (it was placed there): checked again, since the
            // views' bounds rest on it.
            if (base as u64).checked_add(file_len).is_some_and(|end| end <= pack.len() as u64 && end <= MAX_LINE_LEN) {
                return Windows { whole: Some(pack.clone()), in_pack: true, base: base as u64, whole_len: file_len, starts, buffers };
            }
        }
        if file_len <= MAX_LINE_LEN {
            return Windows { whole: source.window(0..file_len as usize), in_pack: false, base: 0, whole_len: file_len, starts, buffers };
        }
        let n = index.len();
        let mut k = 0;
        while k < n {
            let start = index.start(k);
            // Every line is at most MAX_LINE_LEN long, so at least line k fits.
            let (mut lo, mut hi) = (k + 1, n);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if index.span(mid, bytes).end - start <= MAX_LINE_LEN {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            let end = index.span(lo - 1, bytes).end.max(start + 1).min(file_len);
            if let Some(b) = source.window(start as usize..end as usize) {
                starts.push(start);
                buffers.push(b);
            }
            k = lo;
        }
        Windows { whole: None, in_pack: false, base: 0, whole_len: 0, starts, buffers }
    }

    /// The one buffer all of the file lies in, and where the file starts in it: its own
    /// window (a file of at most `MAX_LINE_LEN` bytes) or its pack. `None` for a file of
    /// several windows.
    pub(crate) fn one_buffer(&self) -> Option<(&Buffer, u64)> {
        self.whole.as_ref().map(|b| (b, self.base))
    }

    /// The data buffers, in the order views name them.
    fn buffers(&self) -> impl Iterator<Item = &Buffer> {
        self.whole.iter().chain(&self.buffers)
    }

    /// (window, offset inside it) of a line starting at `start`, and whether `len` bytes
    /// from there fit in that window.
    #[inline]
    fn locate(&self, start: u64, len: u64) -> (usize, u64, bool) {
        if self.whole.is_some() {
            return (0, self.base + start, start.saturating_add(len) <= self.whole_len);
        }
        let w = self.starts.partition_point(|&s| s <= start).saturating_sub(1);
        let offset = start - self.starts.get(w).copied().unwrap_or(0);
        (w, offset, self.buffers.get(w).is_some_and(|b| offset + len <= b.len() as u64))
    }
}

/// One file of a batch, as the view builder sees it: its map, index and windows.
pub(crate) struct FileView<'a> {
    pub source: &'a SourceFile,
    pub index: &'a LineIndex,
    pub windows: &'a Windows,
}

/// Proof that every line a batch serves as a string is UTF-8 in the file version that is
/// mapped. Made only by [`Utf8Checked::check`] (and [`Utf8Checked::check_known`], which
/// skips the look at each file when the batch's files are known as a whole to pass it).
pub(crate) struct Utf8Checked(());

impl Utf8Checked {
    /// Checks that each of `files` is unchanged since it was indexed and that its index
    /// found every kept line UTF-8.
    pub(crate) fn check(files: &[FileView<'_>]) -> Result<Self> {
        crate::source::check_all_unchanged(files.iter().map(|f| f.source))?;
        for f in files {
            if let Utf8Verdict::Invalid { line_id, offset } = f.index.utf8() {
                return Err(Error::InvalidUtf8 {
                    path: f.source.path().to_path_buf(),
                    line_number: f.index.line_number(line_id),
                    byte_offset: offset,
                });
            }
        }
        Ok(Utf8Checked(()))
    }
}

impl Utf8Checked {
    /// [`check`](Self::check), unless `known`: the caller knows, for all of `files` at once,
    /// what `check` would find of each — their indexes found every kept line UTF-8, and
    /// they are unchanged since (a corpus that keeps every file mapped fixes the first at
    /// its open from those very files, and a watch of all of them that reports no event
    /// when drained now says the second: see `corpus::Pinned`). A batch drawn from a tree
    /// reads a thousand files, and this look at each one's state was a twentieth of it.
    pub(crate) fn check_known(files: &[FileView<'_>], known: bool) -> Result<Self> {
        if known {
            return Ok(Utf8Checked(()));
        }
        Self::check(files)
    }
}

/// How the cuts of a file's lines are checked before they are served as strings.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cuts {
    /// Binary views, or an index built by this process: nothing to check.
    Trusted,
    /// An index from a file, of a file that is UTF-8 throughout: each line must start and
    /// end at a line boundary (then its bytes are UTF-8, `\n` being ASCII).
    Boundaries,
    /// An index from a file, of a file with invalid bytes in skipped lines: each line is
    /// validated.
    Validate,
}

impl Cuts {
    fn of(file: &FileView<'_>, line_type: LineType) -> Self {
        match line_type {
            LineType::Binary => Cuts::Trusted,
            _ if file.index.cuts_trusted() => Cuts::Trusted,
            _ if file.index.meta().file_utf8 => Cuts::Boundaries,
            _ => Cuts::Validate,
        }
    }

    /// True when `line`, served from `span` of `bytes`, is a whole line (or UTF-8).
    #[inline]
    fn hold(self, bytes: &[u8], span: &LineSpan, line: &[u8]) -> bool {
        match self {
            Cuts::Trusted => true,
            Cuts::Validate => simdutf8::basic::from_utf8(line).is_ok(),
            Cuts::Boundaries => {
                let (start, end) = (span.start as usize, span.end as usize);
                let starts = start == 0 || bytes.get(start - 1) == Some(&b'\n');
                let ends = end == bytes.len() || bytes.get(end.wrapping_sub(1)) == Some(&b'\n');
                let terminator = match span.terminator {
                    0 => true,
                    1 => bytes.get(end.wrapping_sub(1)) == Some(&b'\n'),
                    2 => bytes.get(end.wrapping_sub(2)..end) == Some(b"\r\n".as_slice()),
                    _ => false,
                };
                starts && ends && terminator
            }
        }
    }
}

/// True when every kept line of `file` is cut as a view of `line_type` must be (the check
/// [`line_array`] makes of each line it serves, made here once for all of them): nothing to
/// check for binary views or an index this process built. Reads the map: call it guarded.
pub(crate) fn every_cut_holds(file: &FileView<'_>, line_type: LineType, keep_terminator: bool) -> bool {
    let cuts = Cuts::of(file, line_type);
    if cuts == Cuts::Trusted {
        return true;
    }
    let bytes = file.source.bytes();
    (0..file.index.len()).all(|k| {
        let span = file.index.span(k, bytes);
        bytes.get(span.served_range(keep_terminator)).is_some_and(|line| cuts.hold(bytes, &span, line))
    })
}

/// The Arrow view of `line`, at `offset` in data buffer `buffer`. A line over 12 bytes gets
/// its length, first 4 bytes, buffer and offset (the Arrow spec's layout, little-endian)
/// built here, inline: arrow's `make_view` is `#[inline(never)]`, and its calls were 4–8%
/// of the epoch's samples in `perf record` of the core bench.
#[inline]
fn view(line: &[u8], buffer: u32, offset: u32) -> u128 {
    match line.first_chunk::<4>() {
        Some(prefix) if line.len() > 12 => {
            (line.len() as u128) | (u32::from_le_bytes(*prefix) as u128) << 32 | (buffer as u128) << 64 | (offset as u128) << 96
        }
        _ => make_view(line, buffer, offset),
    }
}

/// The `line` column of a batch: line `i` is `spans[i]` of `files[slots[i]]` (of
/// `files[0]` when `slots` is empty). `utf8` is required for [`LineType::Utf8`].
pub(crate) fn line_array(
    files: &[FileView<'_>],
    slots: &[u32],
    spans: &[LineSpan],
    line_type: LineType,
    keep_terminator: bool,
    utf8: Option<&Utf8Checked>,
) -> Result<ArrayRef> {
    let mut bases = Vec::with_capacity(files.len());
    let mut buffers = Vec::new();
    // The packs listed so far (their address, their index): a pack is listed once however
    // many of its files the batch reads.
    let mut packs: Vec<(usize, u32)> = Vec::new();
    for f in files {
        if let (Some(whole), true) = (&f.windows.whole, f.windows.in_pack) {
            let at = whole.as_ptr() as usize;
            match packs.iter().find(|(p, _)| *p == at) {
                Some(&(_, index)) => bases.push(index),
                None => {
                    packs.push((at, buffers.len() as u32));
                    bases.push(buffers.len() as u32);
                    buffers.push(whole.clone());
                }
            }
            continue;
        }
        bases.push(buffers.len() as u32);
        buffers.extend(f.windows.buffers().cloned());
    }
    let corrupt = |file: &FileView<'_>, span: &LineSpan| Error::CorruptIndex {
        path: file.source.path().to_path_buf(),
        reason: format!("line at offset {} does not fit its window", span.start),
    };
    let miscut = |file: &FileView<'_>, span: &LineSpan| Error::CorruptIndex {
        path: file.source.path().to_path_buf(),
        reason: format!("line at offset {} is not cut at the file's line boundaries", span.start),
    };
    let cuts: Vec<Cuts> = files.iter().map(|f| Cuts::of(f, line_type)).collect();
    let mut views = Vec::with_capacity(spans.len());
    match (files, slots.is_empty()) {
        // One file in one window (files under 2 GiB): offsets are file offsets.
        ([file], true) if file.windows.whole.is_some() => {
            let bytes = file.source.bytes();
            let (window_len, base) = (file.windows.whole_len as usize, file.windows.base as usize);
            let cuts = cuts[0];
            for span in spans {
                let range = span.served_range(keep_terminator);
                let line = bytes.get(range).filter(|l| span.start as usize + l.len() <= window_len).ok_or_else(|| corrupt(file, span))?;
                if !cuts.hold(bytes, span, line) {
                    return Err(miscut(file, span));
                }
                views.push(view(line, 0, (base + span.start as usize) as u32));
            }
        }
        _ => {
            let maps: Vec<&[u8]> = files.iter().map(|f| f.source.bytes()).collect();
            for (i, span) in spans.iter().enumerate() {
                let slot = slots.get(i).copied().unwrap_or(0) as usize;
                let file = &files[slot];
                let range = span.served_range(keep_terminator);
                let (w, offset, fits) = file.windows.locate(span.start, (range.end - range.start) as u64);
                let line = maps[slot].get(range).filter(|_| fits).ok_or_else(|| corrupt(file, span))?;
                if !cuts[slot].hold(maps[slot], span, line) {
                    return Err(miscut(file, span));
                }
                views.push(view(line, bases[slot] + w as u32, offset as u32));
            }
        }
    }
    // SAFETY: every view was made by `view` from the bytes of the window it names, with
    // `offset + len` checked against that window's length above (for a file in a pack:
    // against the file's length, its part of the pack starting at `base`, which
    // `Windows::new` checked lies inside the pack), so offsets, lengths and buffer indices
    // are in bounds and prefixes match; for strings, the `Utf8Checked` proves that every
    // kept line is UTF-8 in this version of each file *as the index cuts it*, and `Cuts`
    // that each line here is cut so: by this process's own build, at line boundaries of a
    // file UTF-8 throughout (checked per line), or validated.
    unsafe { view_array(views, buffers, line_type, utf8) }
}

/// The `line` column of a batch drawn from the packs of a corpus (`corpus::PackedLines`):
/// line `i` is `spans[i]` of pack `pack_of(i)` of `packs`. Every span was checked, when
/// the packed lines were built, as [`line_array`] checks each line of an index read from a
/// file ([`every_cut_holds`]); `utf8` is required for [`LineType::Utf8`].
pub(crate) fn packed_line_array(
    packs: &[Buffer],
    pack_of: impl Fn(usize) -> usize,
    spans: &[LineSpan],
    line_type: LineType,
    keep_terminator: bool,
    utf8: Option<&Utf8Checked>,
) -> Result<ArrayRef> {
    // Each pack the batch reads, listed once, in the order first read.
    let mut listed: Vec<u32> = vec![u32::MAX; packs.len()];
    let mut buffers = Vec::new();
    let mut views = Vec::with_capacity(spans.len());
    for (i, span) in spans.iter().enumerate() {
        let p = pack_of(i);
        let pack = packs.get(p).ok_or_else(|| Error::Internal { message: format!("a line of pack {p}, of {}", packs.len()) })?;
        let line = pack
            .as_slice()
            .get(span.served_range(keep_terminator))
            .ok_or_else(|| Error::Internal { message: format!("a line at {} outside its pack of {} bytes", span.start, pack.len()) })?;
        if listed[p] == u32::MAX {
            listed[p] = buffers.len() as u32;
            buffers.push(pack.clone());
        }
        views.push(view(line, listed[p], span.start as u32));
    }
    // SAFETY: every view was made by `view` from the bytes of the pack it names, at their
    // offset in it (`get` checked that the line lies inside the pack, whose length is below
    // 2^31, so the offset fits), so offsets, lengths, buffer indices and prefixes are in
    // bounds and match; for strings, the `Utf8Checked` proves that every kept line of each
    // file read is UTF-8 in the version mapped *as its index cuts it*, and each span here is
    // such a line, rebased into the pack, checked when the packed lines were built
    // (`every_cut_holds`, the check `line_array` makes per line, on the same spans).
    unsafe { view_array(views, buffers, line_type, utf8) }
}

/// The view array of `line_type` over `views` and `buffers`, without Arrow's validation
/// (which re-reads every line). A string array needs the `Utf8Checked` proof.
///
/// # Safety
/// Every view longer than 12 bytes must describe bytes that lie in the buffer it names, at
/// its offset, with its prefix their first 4 bytes (shorter views their bytes inline); for
/// [`LineType::Utf8`], those bytes must be UTF-8.
unsafe fn view_array(views: Vec<u128>, buffers: Vec<Buffer>, line_type: LineType, utf8: Option<&Utf8Checked>) -> Result<ArrayRef> {
    let views = ScalarBuffer::from(views);
    Ok(match (line_type, utf8) {
        // SAFETY: the caller's contract: views in bounds, prefixes matching, bytes UTF-8.
        (LineType::Utf8, Some(_)) => Arc::new(unsafe { StringViewArray::new_unchecked(views, buffers, None) }) as ArrayRef,
        (LineType::Utf8, None) => return Err(Error::Internal { message: "a string line column without the UTF-8 check".into() }),
        // SAFETY: the caller's contract for bounds and prefixes; binary views promise nothing
        // of the bytes.
        (LineType::Binary, _) => Arc::new(unsafe { BinaryViewArray::new_unchecked(views, buffers, None) }) as ArrayRef,
    })
}

/// The view arrays `parts` as one, their data buffers shared, not copied: each distinct
/// buffer (the same window of a map, held by several batches) listed once and the views'
/// buffer indices renumbered. `None` if a part is not a view array of type `T` or has nulls
/// (then the caller concatenates another way).
pub(crate) fn concat_views<T: arrow::datatypes::ByteViewType>(parts: &[&dyn arrow::array::Array]) -> Option<ArrayRef> {
    use arrow::array::{Array, AsArray, ByteView, GenericByteViewArray};
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut known: std::collections::HashMap<(usize, usize), u32> = std::collections::HashMap::new();
    let mut views = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        let part = part.as_byte_view_opt::<T>()?;
        if part.null_count() > 0 {
            return None;
        }
        let renumber: Vec<u32> = part
            .data_buffers()
            .iter()
            .map(|b| {
                *known.entry((b.as_ptr() as usize, b.len())).or_insert_with(|| {
                    buffers.push(b.clone());
                    buffers.len() as u32 - 1
                })
            })
            .collect();
        for &v in part.views() {
            if (v as u32) > 12 {
                let mut view = ByteView::from(v);
                view.buffer_index = *renumber.get(view.buffer_index as usize)?;
                views.push(view.as_u128());
            } else {
                views.push(v);
            }
        }
    }
    let views = ScalarBuffer::from(views);
    // SAFETY: every view is a view of a valid array of type `T` (a `GenericByteViewArray<T>`
    // upholds its invariants: offsets, lengths and prefixes in bounds and matching its
    // buffers, UTF-8 for strings), copied unchanged but for its buffer index, which now
    // names the very same buffer (same address and length) in `buffers`; inline views carry
    // their bytes. So each view describes the same bytes as before, in bounds.
    Some(Arc::new(unsafe { GenericByteViewArray::<T>::new_unchecked(views, buffers, None) }) as ArrayRef)
}

/// One row of a string column derived from a `line` column: no value, a substring of the
/// row's line, or a string decoded into the batch's own buffer.
#[derive(Debug, Clone)]
pub(crate) enum Piece {
    /// A null.
    Null,
    /// Bytes `range` of line `row`.
    Sub { row: usize, range: std::ops::Range<usize> },
    /// Bytes `range` of decoded buffer `buffer`.
    Decoded { buffer: usize, range: std::ops::Range<usize> },
}

/// The string column whose rows are `pieces`: substrings of `lines` keep pointing into
/// its buffers (views into the map, zero-copy); decoded strings point into `decoded`,
/// which the column then owns. A substring that is not one of its line (out of bounds, or
/// not at character boundaries) is an `Internal` error, never a view.
pub(crate) fn substrings(lines: &StringViewArray, pieces: &[Piece], decoded: Vec<String>) -> Result<ArrayRef> {
    use arrow::array::{Array, ByteView};
    let first_decoded = lines.data_buffers().len();
    let mut views = Vec::with_capacity(pieces.len());
    let mut valid = arrow::array::BooleanBufferBuilder::new(pieces.len());
    let outside = || Error::Internal { message: "a field outside its line".into() };
    for piece in pieces {
        let (sub, buffer, offset) = match piece {
            Piece::Null => {
                views.push(0u128);
                valid.append(false);
                continue;
            }
            Piece::Sub { row, range } => {
                if *row >= lines.len() || lines.is_null(*row) {
                    return Err(outside());
                }
                let line = lines.value(*row);
                let sub = line.get(range.clone()).ok_or_else(outside)?;
                let whole = ByteView::from(lines.views()[*row]);
                (sub, whole.buffer_index, whole.offset as usize + range.start)
            }
            Piece::Decoded { buffer, range } => {
                let sub = decoded.get(*buffer).and_then(|d| d.get(range.clone())).ok_or_else(outside)?;
                (sub, (first_decoded + buffer) as u32, range.start)
            }
        };
        valid.append(true);
        views.push(if sub.len() <= 12 {
            make_view(sub.as_bytes(), 0, 0)
        } else {
            view(sub.as_bytes(), buffer, u32::try_from(offset).map_err(|_| outside())?)
        });
    }
    let mut buffers = lines.data_buffers().to_vec();
    buffers.extend(decoded.into_iter().map(|d| Buffer::from_vec(d.into_bytes())));
    let nulls = arrow::buffer::NullBuffer::from(valid.finish());
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    // SAFETY: every view over 12 bytes describes `sub`, a `&str` (so UTF-8) that is either
    // a substring of line `row` of `lines` or a part of decoded string `buffer`. For a
    // line's substring longer than 12 bytes the line is longer still, so its view names a
    // data buffer and an offset where its bytes lie (the invariants of the valid array
    // `lines`); `sub` lies `range.start` bytes further, inside the same buffer, which
    // `buffers` keeps at the same index. A decoded string lies at `range.start` of the
    // buffer made from its `String`, at index `first_decoded + buffer`; offsets are checked
    // to fit `u32`. Null rows are zero views, which are valid.
    Ok(Arc::new(unsafe { StringViewArray::new_unchecked(ScalarBuffer::from(views), buffers, nulls) }) as ArrayRef)
}
