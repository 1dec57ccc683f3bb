//! What a batcher serves and how: the knobs of the original `MmapBatcher` plus a seed.

/// How the `line` column of an Arrow batch is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineType {
    /// `Utf8View`. The served lines are checked to be UTF-8 once per file, the first
    /// time strings are asked for; an invalid line is an [`Error::InvalidUtf8`](crate::Error::InvalidUtf8).
    #[default]
    Utf8,
    /// `BinaryView`: any bytes, never validated.
    Binary,
}

/// Options of a [`Batcher`](crate::Batcher). `Options::default()` matches the original
/// Python class: batches of 100, shuffled, last partial batch dropped, blank and `#` lines skipped.
///
/// ```
/// let opts = mmap_batcher::Options { batch_size: 3, seed: Some(7), ..Default::default() };
/// assert!(opts.shuffle && opts.ignore_leftovers);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Lines per batch; must be at least 1.
    pub batch_size: usize,
    /// Serve each epoch in a seeded random order (`false`: file order).
    pub shuffle: bool,
    /// Drop the last partial batch of each epoch's order (a different tail each epoch when shuffled).
    pub ignore_leftovers: bool,
    /// Skip lines made only of ASCII whitespace (space, `\t`, `\r`, `\n`, `\v`, `\f`).
    pub skip_blank_lines: bool,
    /// Skip lines whose first byte is this byte (no whitespace is stripped first). `None`: no comments.
    pub comment_char: Option<u8>,
    /// The shuffle seed. `None` picks one at open time from the OS; read it back with
    /// [`Batcher::seed`](crate::Batcher::seed) to reproduce a run.
    pub seed: Option<u64>,
    /// Keep the line terminator (`\n` or `\r\n`) in the Arrow `line` column.
    pub keep_terminator: bool,
    /// Type of the Arrow `line` column.
    pub line_type: LineType,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_size: 100,
            shuffle: true,
            ignore_leftovers: true,
            skip_blank_lines: true,
            comment_char: Some(b'#'),
            seed: None,
            keep_terminator: false,
            line_type: LineType::Utf8,
        }
    }
}

/// The part of [`Options`] that decides which lines are kept; it is all the index depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeepRules {
    pub skip_blank_lines: bool,
    pub comment_char: Option<u8>,
}

impl Options {
    pub(crate) fn keep_rules(&self) -> KeepRules {
        KeepRules {
            skip_blank_lines: self.skip_blank_lines,
            comment_char: self.comment_char,
        }
    }
}
