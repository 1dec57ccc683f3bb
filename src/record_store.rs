//! The memory that holds the line index: an anonymous mapping rather than a `Vec`.
//!
//! Two reasons:
//! - The kernel can back it with 2 MiB pages (`MADV_HUGEPAGE`): the 155 MB of records of
//!   the 1 GB benchmark corpus fill about 80 pages instead of about 38,000, and an epoch's
//!   random reads of them stay within the TLB's reach.
//! - It can be reserved far larger than it will be filled, for free: untouched pages of a
//!   `MAP_NORESERVE` mapping are never backed by memory and do not count in RssAnon. That
//!   lets two threads index the file from its middle outward, one writing backward and one
//!   forward, straight into their final places, with no merge copy (see `line_index`).
//!
//! When the address space is limited (`ulimit -v`, or `vm.overcommit_memory = 2`, where
//! `MAP_NORESERVE` is ignored), the large reservation fails and the caller asks for the
//! exact size instead.

use std::ops::Range;

use memmap2::{MmapMut, MmapOptions};

use crate::line_index::LineRecord;

/// A reserved array of records, of which `used` holds the index.
#[derive(Debug)]
pub(crate) struct RecordStore {
    map: MmapMut,
    used: Range<usize>,
}

impl RecordStore {
    /// Reserves room for `capacity` records, none of them backed by memory yet.
    pub(crate) fn reserve(capacity: usize) -> std::io::Result<Self> {
        let bytes = capacity.checked_mul(size_of::<LineRecord>()).ok_or(std::io::ErrorKind::OutOfMemory)?;
        let map = MmapOptions::new().len(bytes).no_reserve_swap().map_anon()?;
        #[cfg(target_os = "linux")]
        {
            // Only a hint: without transparent huge pages the index still works, slower.
            let _ = map.advise(memmap2::Advice::HugePage);
        }
        Ok(RecordStore { map, used: 0..0 })
    }

    /// All reserved slots, for filling.
    pub(crate) fn slots_mut(&mut self) -> &mut [LineRecord] {
        bytemuck::cast_slice_mut(&mut self.map[..])
    }

    /// Declares which slots hold the index.
    pub(crate) fn set_used(&mut self, used: Range<usize>) {
        assert!(used.end <= self.map.len() / size_of::<LineRecord>(), "used slots {used:?} past the reservation");
        self.used = used;
    }

    /// The records of the index.
    pub(crate) fn records(&self) -> &[LineRecord] {
        &bytemuck::cast_slice::<u8, LineRecord>(&self.map[..])[self.used.clone()]
    }
}
