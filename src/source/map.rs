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
