//! The `unsafe` of memory-mapping: mapping a file read-only, lending windows of a map to
//! Arrow, dropping a map's page-table entries, and prefetching from it (and, with the same
//! instruction, from the structures that describe the maps). Nothing else in
//! the crate maps files.
//!
//! # Safety argument
//!
//! A read-only shared mapping is sound to *read* through Rust references only if no one
//! changes the file underneath it, and we cannot prevent that (advisory locks do not bind
//! other writers; leases need ownership or `CAP_LEASE` and a signal handler). What we do:
//!
//! - Nothing we compute from the map is trusted for memory safety: every slice taken of it
//!   is bounds-checked against the map's length, which is fixed when it is mapped, so
//!   changed bytes give wrong *values*, never an out-of-bounds access.
//! - The one promise we make about the *contents* — that a `Utf8View` holds UTF-8 — is
//!   tied to the file's identity (device, inode, size, modification and change time, see
//!   [`Identity`](super::Identity)) and the identity is checked with one `fstat` before
//!   every batch is built (for a file mapped without a descriptor, its inotify watch and,
//!   after an event, a `stat` of its path: see [`super::watch`]), so a file rewritten in place is a
//!   [`FileChanged`](crate::Error::FileChanged) error at the next batch. Arrays already
//!   handed out keep pointing into the shared map; the README says what a consumer risks
//!   then, and which modes cannot be hurt (`binary`, `compact`).
//! - A file *truncated* while mapped makes reads past its new end raise `SIGBUS`, as with
//!   any mmap reader (ripgrep, LMDB, SQLite's mmap mode say the same). The per-batch check
//!   turns the common case into an error before a read, and our own reads run under the
//!   guard of [`super::truncation`], which turns a truncation racing a batch into an error
//!   for that batch; a read through a view someone holds is not ours to guard. Input that
//!   must be immune is spooled (pipes are) or read with `pread` (`io="copy"`).

use std::fs::File;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::Arc;

use arrow::buffer::Buffer;
use memmap2::Mmap;

/// Maps `file` read-only and shared.
pub(crate) fn map_file(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: a read-only mapping; the module's safety argument says what happens when
    // the file is changed while mapped and why no Rust-level bound depends on its bytes.
    unsafe { Mmap::map(file) }
}

/// Maps the first `len` bytes of `file` read-only and shared: `len` is its size from the
/// `stat` just made (which spares the one `Mmap::map` makes: one system call of about twenty
/// per file when a tree of 30,000 files is opened).
pub(crate) fn map_file_of_len(file: &File, len: u64) -> std::io::Result<Mmap> {
    let len = usize::try_from(len).map_err(|_| std::io::Error::other("too large to map"))?;
    // SAFETY: as in `map_file`. Should the file have shrunk since its `stat`, the pages past
    // its end fault like those of any file truncated while mapped (see `super::truncation`),
    // and the size in its identity, from that `stat`, makes the next check report it.
    unsafe { memmap2::MmapOptions::new().len(len).map(file) }
}

/// An Arrow buffer over `range` of `map`, without copying. The buffer keeps the map alive.
/// Returns `None` if `range` is not inside the map.
pub(crate) fn window(map: &Arc<Mmap>, range: Range<usize>) -> Option<Buffer> {
    let bytes = map.get(range)?;
    let ptr = NonNull::new(bytes.as_ptr().cast_mut())?;
    let owner: Arc<dyn arrow::alloc::Allocation> = map.clone();
    // SAFETY: `ptr..ptr + len` lies inside the mapping (`get` checked it), the mapping is
    // never written through, and `owner` keeps it mapped for as long as the buffer or any
    // clone of it lives.
    Some(unsafe { Buffer::from_custom_allocation(ptr, bytes.len(), owner) })
}

/// Drops this process's page-table entries for `range` of `map` (a finished
/// block-shuffle window), so the kernel reclaims those page-cache pages cheaply (no
/// mapping to undo) when the next windows need room. Only a hint. (`MADV_PAGEOUT`, which
/// reclaims them at once, measured slower: the beyond-RAM benchmark's block epoch took
/// 14.8 s against 7.8 s; so did `posix_fadvise(DONTNEED)` after it, dropping the pages
/// from the cache at once: 12.0–12.7 s against 7.8–8.7 s, with three times the major
/// faults, in one A/B run on 2026-11-23.)
pub(crate) fn release(map: &Mmap, range: Range<usize>) {
    let start = range.start & !4095;
    let Some(len) = range.end.min(map.len()).checked_sub(start) else { return };
    if len == 0 {
        return;
    }
    // SAFETY: the mapping is a read-only *shared file* mapping: `MADV_DONTNEED` drops only
    // page-table entries, and the next access (by us, or through an Arrow buffer still
    // pointing here) faults the same file bytes back in. It never discards data, which is
    // what makes the advice unsafe for private or anonymous mappings.
    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len) };
}

/// Asks the CPU to bring the cache line holding `bytes[at]` into its caches, without a
/// load: a prefetch never faults (a page not mapped, or past a truncated file's end, is
/// simply not fetched), so it is safe on a map that may shrink. A no-op off x86-64.
#[inline(always)]
pub(crate) fn prefetch(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let at = at.min(bytes.len().saturating_sub(1));
        // SAFETY: `PREFETCHT0` is a hint: it reads nothing architecturally and never raises
        // a fault, whatever the address, and SSE is part of every x86-64 CPU; the pointer
        // is inside `bytes` anyway (`at` clamped, `wrapping_add` for the empty slice).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().wrapping_add(at).cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, at);
}

/// Like [`prefetch`], for the cache line holding the start of `value` (structures of a
/// batch's many files, read one after another: their misses overlap when all are asked
/// for first).
#[inline(always)]
pub(crate) fn prefetch_value<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: as in `prefetch`: a hint that reads nothing and never faults; the pointer
        // comes from a live reference.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Address space reserved for small files mapped side by side: a read-only anonymous
/// mapping (zeros, no memory, no commit charge) over which each file is mapped at its
/// [`Slot`]. One Arrow buffer over the whole range then serves every line of all its
/// files, so a batch drawn from a tree of small files names one data buffer, not one per
/// file (a buffer per file cost an atomic count and a cold cache line per file per batch).
/// Unused slots, and the tail of each file's last page, read zeros, so a reader of the
/// whole buffer reads only file bytes and zeros (and the same `SIGBUS` past a truncated
/// end as any map).
#[derive(Debug)]
pub(crate) struct Pack {
    /// The start of the range (an address: the range is ours alone until dropped).
    start: usize,
    len: usize,
}

impl Pack {
    /// Reserves `len` bytes (a multiple of the page size).
    fn reserve(len: usize) -> std::io::Result<Arc<Pack>> {
        // SAFETY: a new anonymous read-only mapping at an address the kernel chooses: it
        // overlaps nothing of ours, and it is ours until `Drop` unmaps it.
        let at =
            unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE, -1, 0) };
        if at == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Arc::new(Pack { start: at as usize, len }))
    }

    /// The whole range as one Arrow buffer, which keeps it mapped.
    fn buffer(self: &Arc<Self>) -> Option<Buffer> {
        let ptr = NonNull::new(self.start as *mut u8)?;
        let owner: Arc<dyn arrow::alloc::Allocation> = self.clone();
        // SAFETY: `start..start + len` is mapped readable for as long as the pack lives
        // (file pages or zeros: `place` only replaces a slot's pages with a read-only map
        // of a file), it is never written through, and `owner` keeps it alive for as long
        // as the buffer or any clone of it lives.
        Some(unsafe { Buffer::from_custom_allocation(ptr, self.len, owner) })
    }

    /// One slot per size of `sizes` that fits (`Some` sizes up to `max_file`), side by
    /// side in as many packs as it takes, each at most `max_pack` bytes.
    pub(crate) fn slots(sizes: &[Option<u64>], max_file: u64, max_pack: u64) -> Vec<Option<Slot>> {
        let page = super::truncation::page_size() as u64;
        let round = |n: u64| n.div_ceil(page) * page;
        // Consecutive runs of slots, each run one pack.
        let mut plan: Vec<Option<(usize, u64)>> = vec![None; sizes.len()];
        let mut packs: Vec<u64> = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            let Some(size) = size.filter(|&s| s > 0 && s <= max_file) else { continue };
            let need = round(size);
            let count = packs.len();
            match packs.last_mut() {
                Some(used) if *used + need <= max_pack => {
                    plan[i] = Some((count - 1, *used));
                    *used += need;
                }
                _ if need <= max_pack => {
                    plan[i] = Some((packs.len(), 0));
                    packs.push(need);
                }
                _ => {}
            }
        }
        let buffers: Vec<Option<Buffer>> =
            packs.iter().map(|&len| usize::try_from(len).ok().and_then(|len| Pack::reserve(len).ok()).and_then(|p| p.buffer())).collect();
        plan.into_iter()
            .zip(sizes)
            .map(|(at, size)| {
                let (pack, offset) = at?;
                let pack = buffers[pack].clone()?;
                Some(Slot { pack, offset: offset as usize, len: round((*size)?) as usize })
            })
            .collect()
    }
}

impl Drop for Pack {
    fn drop(&mut self) {
        // SAFETY: unmaps the range `reserve` mapped, files placed in it included; nothing
        // refers to it any more (every buffer and map over it holds the pack).
        unsafe { libc::munmap(self.start as *mut libc::c_void, self.len) };
    }
}

/// A file's place in a [`Pack`]: owned by one file only (it is not `Clone`), so no two
/// files are ever mapped over each other.
pub(crate) struct Slot {
    /// The whole pack, as a buffer (which keeps it mapped).
    pack: Buffer,
    offset: usize,
    /// A whole number of pages.
    len: usize,
}

/// A file mapped at its slot of a pack: its bytes are `pack[offset..offset + len]`.
pub(crate) struct Placed {
    pub pack: Buffer,
    pub offset: usize,
    pub len: usize,
}

/// Where a slot or placed file lies, never the bytes: Arrow's `Debug` of a buffer prints
/// every byte, which for a pack is every small file of the corpus (and, past a truncated
/// end, a read no guard covers).
fn fmt_place(f: &mut std::fmt::Formatter<'_>, name: &str, pack: &Buffer, offset: usize, len: usize) -> std::fmt::Result {
    f.debug_struct(name).field("pack", &(pack.as_ptr(), pack.len())).field("offset", &offset).field("len", &len).finish()
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fmt_place(f, "Slot", &self.pack, self.offset, self.len)
    }
}

impl std::fmt::Debug for Placed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fmt_place(f, "Placed", &self.pack, self.offset, self.len)
    }
}

/// Maps the first `len` bytes of `file` at `slot`, or hands the slot back when they do not
/// fit in it.
pub(crate) fn place(file: &File, len: u64, slot: Slot) -> std::io::Result<Result<Placed, Slot>> {
    let Some(len) = usize::try_from(len).ok().filter(|&l| l > 0 && l <= slot.len) else { return Ok(Err(slot)) };
    let at = slot.pack.as_ptr() as usize + slot.offset;
    // SAFETY: `at..at + slot.len` is this slot's part of a pack we reserved and still hold
    // (`slot.pack` keeps it mapped), no other slot overlaps it and this slot is consumed
    // here, so `MAP_FIXED` replaces only zeros of ours, never another mapping; the new map
    // is read-only and shared, with the safety argument of `map_file`. It is unmapped with
    // the pack.
    let mapped = unsafe {
        libc::mmap(at as *mut libc::c_void, len, libc::PROT_READ, libc::MAP_SHARED | libc::MAP_FIXED, std::os::fd::AsRawFd::as_raw_fd(file), 0)
    };
    if mapped == libc::MAP_FAILED {
        let error = std::io::Error::last_os_error();
        // A failed `MAP_FIXED` may have unmapped the slot already: zeros go back, so the
        // pack stays readable throughout. Should even that fail, the hole is reported as
        // exhaustion, which fails the whole open (never a file merely skipped).
        // SAFETY: as above, over the same slot of ours.
        let zeros = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                slot.len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if zeros == libc::MAP_FAILED {
            return Err(std::io::Error::from_raw_os_error(libc::ENOMEM));
        }
        return Err(error);
    }
    Ok(Ok(Placed { pack: slot.pack, offset: slot.offset, len }))
}

/// A file's map: its own, or its place in a pack.
#[derive(Debug)]
pub(crate) enum Map {
    Own(Arc<Mmap>),
    Placed(Placed),
}

impl Map {
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Map::Own(map) => map,
            Map::Placed(p) => p.pack.as_slice().get(p.offset..p.offset + p.len).unwrap_or_default(),
        }
    }

    /// An Arrow buffer over `range` of the file, without copying; `None` outside it.
    pub(crate) fn window(&self, range: Range<usize>) -> Option<Buffer> {
        match self {
            Map::Own(map) => window(map, range),
            Map::Placed(p) => (range.start <= range.end && range.end <= p.len).then(|| p.pack.slice_with_length(p.offset + range.start, range.len())),
        }
    }

    /// The pack's buffer and where the file starts in it, for a placed file.
    pub(crate) fn placed(&self) -> Option<(&Buffer, usize)> {
        match self {
            Map::Own(_) => None,
            Map::Placed(p) => Some((&p.pack, p.offset)),
        }
    }

    /// Advice for the kernel's paging of an own map (a placed file is smaller than the
    /// 2 MiB pages the advice is mostly about, and shares its range with others).
    pub(crate) fn advise(&self, advice: memmap2::Advice) {
        if let Map::Own(map) = self {
            let _ = map.advise(advice);
        }
    }

    /// See [`release`]; nothing for a placed file (a hint, for the windows of large files).
    pub(crate) fn release(&self, range: Range<usize>) {
        if let Map::Own(map) = self {
            release(map, range)
        }
    }
}
