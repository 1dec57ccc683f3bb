//! The 8-byte record of one kept line, the same in memory and on disk.
//!
//! ```text
//!  63 ........................ start_bits+3 | start_bits+2 | start_bits+1..start_bits | start_bits-1 .. 0
//!  skipped-line count of its half (low bits)  | gap          | terminator length (0..2) | byte offset of the line
//! ```
//!
//! - **No length.** A line ends where the next kept line starts, unless skipped lines lie
//!   between them; then the next record's *gap* bit is set and the end is found by a
//!   bounded `memchr` for the line's `\n` (lines over [`LONG_LINE`] bytes followed by skipped
//!   lines are listed apart). Skipped lines are rare, so a length costs nothing per line.
//!   A sentinel record after the last line holds the end of the last kept line.
//! - `start_bits` is just enough for the file's size, so the skipped count gets the rest
//!   (32 bits for a 1 GB file); its overflows are listed apart, as the rare lines at which
//!   the count wraps (see [`Half`](super::Half)).

/// Kept lines longer than this followed by skipped lines have their end listed apart, so
/// finding an end never scans more than this many bytes.
pub(crate) const LONG_LINE: u64 = 64 << 10;

/// How the fields of a record are packed for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    start_bits: u32,
    skip_bits: u32,
}

/// The decoded record of one kept line, without its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fields {
    pub start: u64,
    pub terminator: u32,
    /// Skipped lines lie between the previous kept line and this one.
    pub gap: bool,
    /// The half's skipped count, modulo `2^skip_bits`.
    pub skip_low: u64,
}

impl Layout {
    /// The layout for a file of `file_len` bytes (offsets up to and including `file_len`).
    pub(crate) fn for_file(file_len: u64) -> Self {
        let start_bits = (64 - file_len.leading_zeros()).max(1);
        // Unit tests use 2 skip bits so that counts wrap all the time.
        let cap = if cfg!(test) { 2 } else { 61 };
        Layout { start_bits, skip_bits: (61 - start_bits.min(53)).min(cap) }
    }

    /// Rebuilds a layout read from an index file; `None` if it is not one we write.
    pub(crate) fn from_parts(start_bits: u32, skip_bits: u32) -> Option<Self> {
        (start_bits >= 1 && skip_bits >= 1 && start_bits + skip_bits <= 61).then_some(Layout { start_bits, skip_bits })
    }

    pub(crate) fn start_bits(&self) -> u32 {
        self.start_bits
    }

    pub(crate) fn skip_bits(&self) -> u32 {
        self.skip_bits
    }

    pub(crate) fn skip_mask(&self) -> u64 {
        (1u64 << self.skip_bits) - 1
    }

    #[inline]
    pub(crate) fn pack(&self, f: Fields) -> u64 {
        let s = self.start_bits;
        f.start | (u64::from(f.terminator) << s) | (u64::from(f.gap) << (s + 2)) | ((f.skip_low & self.skip_mask()) << (s + 3))
    }

    #[inline(always)]
    pub(crate) fn start(&self, r: u64) -> u64 {
        r & ((1u64 << self.start_bits) - 1)
    }

    #[inline(always)]
    pub(crate) fn terminator(&self, r: u64) -> u32 {
        ((r >> self.start_bits) & 3) as u32
    }

    #[inline(always)]
    pub(crate) fn gap(&self, r: u64) -> bool {
        (r >> (self.start_bits + 2)) & 1 == 1
    }

    #[inline(always)]
    pub(crate) fn skip_low(&self, r: u64) -> u64 {
        (r >> (self.start_bits + 3)) & self.skip_mask()
    }

    /// `r` with its gap bit set.
    pub(crate) fn with_gap(&self, r: u64) -> u64 {
        r | (1u64 << (self.start_bits + 2))
    }

    #[cfg(test)]
    pub(crate) fn unpack(&self, r: u64) -> Fields {
        Fields { start: self.start(r), terminator: self.terminator(r), gap: self.gap(r), skip_low: self.skip_low(r) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_at_the_widths_edges() {
        for len in [0u64, 1, 255, 256, 1 << 30, (1 << 40) + 3, (1 << 53) - 1] {
            let l = Layout::for_file(len);
            assert!(l.start_bits() + l.skip_bits() <= 61);
            let f = Fields { start: len, terminator: 2, gap: true, skip_low: l.skip_mask() };
            assert_eq!(l.unpack(l.pack(f)), f, "len {len}");
            let g = Fields { start: 0, terminator: 1, gap: false, skip_low: 0 };
            assert_eq!(l.unpack(l.pack(g)), g);
        }
    }
}
