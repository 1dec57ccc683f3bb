//! The memory that holds a line index: records of an index file mapped read-only (shared
//! by every process through the page cache), or an anonymous mapping while building.
//!
//! The anonymous mapping is not a `Vec`, for two reasons:
//! - The kernel can back it with 2 MiB pages (`MADV_HUGEPAGE`): fewer page faults while it
//!   fills, and an epoch's random reads of it stay within the TLB's reach.
//! - It can be reserved far larger than it will be filled, for free: untouched pages of a
//!   `MAP_NORESERVE` mapping are never backed by memory and do not count in RssAnon. That
//!   lets two threads index the file from its middle outward, one writing backward and one
//!   forward, straight into their final places, with no merge copy (see `build`).
//!
//! When the address space is limited (`ulimit -v`, or `vm.overcommit_memory = 2`, where
//! `MAP_NORESERVE` is ignored), the large reservation fails and the builder asks for the
//! exact size instead.

use std::ops::Range;

use memmap2::{Mmap, MmapMut, MmapOptions};

/// A reserved array of records, of which `used` holds the index.
#[derive(Debug)]
pub(crate) struct RecordStore {
    map: MmapMut,
    used: Range<usize>,
}

impl RecordStore {
    /// Reserves room for `capacity` records, none of them backed by memory yet.
    pub(crate) fn reserve(capacity: usize) -> std::io::Result<Self> {
        let bytes = capacity.checked_mul(8).ok_or(std::io::ErrorKind::OutOfMemory)?.max(8);
        let map = MmapOptions::new().len(bytes).no_reserve_swap().map_anon()?;
        #[cfg(target_os = "linux")]
        {
            // Only a hint: without transparent huge pages the index still works, slower.
            let _ = map.advise(memmap2::Advice::HugePage);
        }
        Ok(RecordStore { map, used: 0..0 })
    }

    /// All reserved slots, for filling.
    pub(crate) fn slots_mut(&mut self) -> &mut [u64] {
        bytemuck::cast_slice_mut(&mut self.map[..])
    }

    /// Declares which slots hold the index (records and the sentinel).
    pub(crate) fn set_used(&mut self, used: Range<usize>) {
        assert!(used.end <= self.map.len() / 8, "used slots {used:?} past the reservation");
        self.used = used;
    }

    pub(crate) fn records(&self) -> &[u64] {
        &bytemuck::cast_slice::<u8, u64>(&self.map[..])[self.used.clone()]
    }
}

/// Where the records of an index live.
#[derive(Debug)]
pub(crate) enum Records {
    /// Built in this process.
    Anonymous(RecordStore),
    /// Built in this process, small: moved off its own mapping (see [`Records::built`]).
    Built(Vec<u64>),
    /// Mapped from an index file: the records are the bytes `bytes` of the map (checked
    /// at load to be 8-byte aligned and a whole number of records).
    /// (No file descriptor is kept: a corpus of many files keeps one per open file only.)
    Mapped { map: Mmap, bytes: Range<usize>, path: std::path::PathBuf },
    /// Read from a small index file into memory: a map per index of a 40-line file would
    /// spend two of the kernel's 65,530 maps per process on each file of a large tree.
    Read(Vec<u64>),
}

impl Records {
    /// The records, sentinel included.
    #[inline(always)]
    pub(crate) fn as_slice(&self) -> &[u64] {
        match self {
            Records::Anonymous(store) => store.records(),
            Records::Built(records) => records,
            Records::Mapped { map, bytes, .. } => bytemuck::cast_slice::<u8, u64>(&map[bytes.clone()]),
            Records::Read(records) => records,
        }
    }

    /// True for records loaded from an index file (mapped or read), which anyone who can
    /// write that file as this user may have written.
    pub(crate) fn loaded(&self) -> bool {
        !matches!(self, Records::Anonymous(_) | Records::Built(_))
    }

    /// The records of a finished build. A small index leaves its mapping for the heap:
    /// each mapping counts against the kernel's 65,530 per process, which a tree of
    /// 30,000 files indexed in memory would otherwise nearly spend on indexes.
    pub(crate) fn built(store: RecordStore) -> Self {
        const ON_HEAP_BELOW: usize = 8 << 10;
        if store.used.len() < ON_HEAP_BELOW {
            Records::Built(store.records().to_vec())
        } else {
            Records::Anonymous(store)
        }
    }

    /// Reads a mapped index into the page cache, in the background, ahead of random reads.
    pub(crate) fn will_need(&self) {
        if let Records::Mapped { path, .. } = self {
            if let Ok(file) = std::fs::File::open(path) {
                crate::source::read_all_detached(&file);
            }
        }
    }
}
