//! What a batcher serves and how: the knobs of the original `MmapBatcher`, a seed, the
//! shuffle mode, and where the line index is kept. [`Options::validate`] is the one place
//! options are checked; the CLI and the Python extension both call it.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::json::{FieldPath, Fields};

/// How the `line` column of an Arrow batch is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineType {
    /// `Utf8View`. The kept lines are checked to be UTF-8 once per file, while it is
    /// indexed; an invalid line is an [`Error::InvalidUtf8`](crate::Error::InvalidUtf8).
    #[default]
    Utf8,
    /// `BinaryView`: any bytes, never validated.
    Binary,
}

/// An option spelled as a word (`io="disk"`, `--shuffle block`). Each enum names its
/// values once, here in the core; Python parses through [`FromStr`](std::str::FromStr) and
/// the CLI derives clap's `ValueEnum`, whose spellings a test checks against these.
pub trait Choice: Sized + Copy + PartialEq + 'static {
    /// The option's name, for errors (`"io"`).
    const OPTION: &'static str;
    /// Every value and its spelling.
    const VALUES: &'static [(&'static str, Self)];

    /// The value spelled `word`, else an [`Error::InvalidOption`] listing the spellings.
    fn parse(word: &str) -> Result<Self> {
        Self::VALUES.iter().find(|(w, _)| *w == word).map(|&(_, v)| v).ok_or_else(|| {
            let words: Vec<String> = Self::VALUES.iter().map(|(w, _)| format!("'{w}'")).collect();
            let (last, rest) = words.split_last().expect("a choice has values");
            let listed = if rest.is_empty() { last.clone() } else { format!("{} or {last}", rest.join(", ")) };
            Error::InvalidOption { message: format!("{} must be {listed}, got {word:?}", Self::OPTION) }
        })
    }

    /// This value's spelling.
    fn word(self) -> &'static str {
        Self::VALUES.iter().find(|(_, v)| *v == self).map_or("?", |(w, _)| w)
    }
}

/// Implements [`Choice`] and `FromStr` for an enum from its spellings.
macro_rules! choice {
    ($t:ty, $option:literal, [$(($word:literal, $v:expr)),+ $(,)?]) => {
        impl Choice for $t {
            const OPTION: &'static str = $option;
            const VALUES: &'static [(&'static str, Self)] = &[$(($word, $v)),+];
        }

        impl std::str::FromStr for $t {
            type Err = Error;

            fn from_str(word: &str) -> Result<Self> {
                <Self as Choice>::parse(word)
            }
        }
    };
}

/// How a copy of the `line` column is laid out where views do not fit: Arrow IPC output,
/// Ray blocks, `record_batches(layout=...)`. Served batches are always views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum LineLayout {
    /// `LargeUtf8` / `LargeBinary`: read by every Arrow reader, no 2 GiB cap per batch.
    Large,
    /// `Utf8View` / `BinaryView`, compacted: for readers with view support.
    View,
}

choice!(LineLayout, "layout", [("large", LineLayout::Large), ("view", LineLayout::View)]);

/// What to do with a file that cannot be served, or is given twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilePolicy {
    /// Fail the open, naming the file.
    #[default]
    Error,
    /// Leave the file out, with a notice naming it.
    Skip,
}

choice!(FilePolicy, "a file policy (on_bad_file, on_duplicate_file)", [("error", FilePolicy::Error), ("skip", FilePolicy::Skip)]);

/// What to do with a JSON Lines record that is not a JSON object or lacks its
/// [`field`](Options::field) (or holds a value there that is not a string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum RecordPolicy {
    /// Fail the batch, naming the file, the line number and the byte offset.
    #[default]
    Error,
    /// Leave the record out of its batch: the batch is one row shorter, every other batch
    /// stays what it is (random access and resume unchanged).
    Skip,
    /// Keep the row, its `line` null.
    Null,
}

choice!(RecordPolicy, "on_bad_record", [("error", RecordPolicy::Error), ("skip", RecordPolicy::Skip), ("null", RecordPolicy::Null)]);

/// Which order an epoch serves, without its parameters (what `--shuffle` and
/// `shuffle="block"` name); [`Shuffle::of`] adds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ShuffleMode {
    /// A uniform permutation of all lines (random reads over the whole file).
    Global,
    /// Blocks in random order, lines shuffled within windows of blocks (streams files larger than memory).
    Block,
    /// File order.
    None,
}

choice!(ShuffleMode, "shuffle", [("global", ShuffleMode::Global), ("block", ShuffleMode::Block), ("none", ShuffleMode::None)]);

/// The order an epoch serves its lines in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum Shuffle {
    /// File order.
    None,
    /// A uniform permutation of all lines: the best mixing, and random reads over the
    /// whole file (fast in the page cache, disk-bound beyond it).
    Global,
    /// Blocks of about `block_bytes` (cut at line starts) in a random order; lines fully
    /// shuffled within each window of `window_blocks` consecutive blocks of that order.
    /// Streams a file larger than memory at disk speed: a window is read ahead while the
    /// previous one is served.
    Block {
        /// Target bytes per block.
        block_bytes: u64,
        /// Blocks per window.
        window_blocks: u64,
    },
}

impl Shuffle {
    /// Default bytes per block of [`Shuffle::Block`] (see the README's shuffle-quality table).
    pub const DEFAULT_BLOCK_BYTES: u64 = 16 << 20;
    /// Default blocks per window of [`Shuffle::Block`].
    pub const DEFAULT_WINDOW_BLOCKS: u64 = 16;

    /// Block mode with the default block and window sizes.
    pub const fn block() -> Self {
        Shuffle::Block { block_bytes: Self::DEFAULT_BLOCK_BYTES, window_blocks: Self::DEFAULT_WINDOW_BLOCKS }
    }

    /// The order `mode` names, with these block parameters if it is block mode.
    pub const fn of(mode: ShuffleMode, block_bytes: u64, window_blocks: u64) -> Self {
        match mode {
            ShuffleMode::Global => Shuffle::Global,
            ShuffleMode::Block => Shuffle::Block { block_bytes, window_blocks },
            ShuffleMode::None => Shuffle::None,
        }
    }

    /// False for file order.
    pub fn is_shuffled(&self) -> bool {
        !matches!(self, Shuffle::None)
    }
}

/// Where the line index of each file is kept between runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexCache {
    /// Use a valid persisted index if one exists, and write one after building it: in
    /// `$MMAP_BATCHER_CACHE_DIR` only when it is set; else beside the file, then in the
    /// per-user cache directory (see the guide).
    #[default]
    Auto,
    /// Build the index in memory at every open; never read or write an index file.
    Off,
    /// Read and write the index at this path only (one input file).
    Path(PathBuf),
    /// Read and write the index files of every file in this directory only (named by
    /// the data file's name and a hash of its full path).
    Dir(PathBuf),
    /// Use a valid index file where the inner choice looks, but never write one (what
    /// `info` does).
    ReadOnly(Box<IndexCache>),
}

/// How reads of the file are planned. The file is always memory-mapped; this decides
/// what the kernel is told about the coming reads, and whether lines are viewed in the map
/// or read into buffers of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum IoPolicy {
    /// Cached if the files fit in half the memory this process may use (the smaller of
    /// RAM and its cgroup limit), disk otherwise.
    #[default]
    Auto,
    /// Expect the files in the page cache: map them with 2 MiB pages, no read-ahead calls.
    Cached,
    /// Expect page-cache misses: request the lines or windows an epoch is about to serve
    /// ahead, so the disk sees many reads in flight instead of one fault at a time.
    Disk,
    /// Copy every line into a buffer of its batch's own (`pread`), and index from a copy in
    /// memory when it fits: no change to the files, not even a truncation, can fault a
    /// reader (what files others can write get unless `trust_files`).
    Copy,
}

choice!(IoPolicy, "io", [("auto", IoPolicy::Auto), ("cached", IoPolicy::Cached), ("disk", IoPolicy::Disk), ("copy", IoPolicy::Copy)]);

/// Options of a [`Batcher`](crate::Batcher). `Options::default()` matches the original
/// Python class: batches of 100, shuffled, last partial batch dropped, blank and `#` lines skipped.
///
/// ```
/// use mmap_batcher::{Options, Shuffle};
/// let opts = Options { batch_size: 3, seed: Some(7), ..Default::default() };
/// assert!(opts.shuffle == Shuffle::Global && opts.ignore_leftovers);
/// opts.validate()?;
/// assert!(Options { batch_size: 0, ..Default::default() }.validate().is_err());
/// # Ok::<(), mmap_batcher::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Options {
    /// Lines per batch; must be at least 1.
    pub batch_size: usize,
    /// The order each epoch serves (`Shuffle::None`: file order).
    pub shuffle: Shuffle,
    /// Drop the last partial batch of each epoch's order (a different tail each epoch when shuffled).
    pub ignore_leftovers: bool,
    /// Give every shard the same number of batches in every epoch (the `DistributedSampler`
    /// `drop_last` convention): the last `num_batches % shards` batches of each epoch's
    /// order are not served. Ranks that all-reduce after each batch need this.
    pub even_shards: bool,
    /// Skip lines made only of ASCII whitespace (space, `\t`, `\r`, `\n`, `\v`, `\f`).
    pub skip_blank_lines: bool,
    /// Skip lines whose first byte is this byte (no whitespace is stripped first). `None`: no comments.
    pub comment_char: Option<u8>,
    /// Skip the first this many physical lines of each file (CSV/TSV headers), whatever
    /// they hold. Line numbers stay the file's own.
    #[serde(default)]
    pub header_lines: u64,
    /// The shuffle seed. `None` picks one at open time from the OS; read it back with
    /// [`Batcher::seed`](crate::Batcher::seed) to reproduce a run.
    pub seed: Option<u64>,
    /// Keep the line terminator (`\n` or `\r\n`) in the Arrow `line` column.
    pub keep_terminator: bool,
    /// Type of the Arrow `line` column.
    pub line_type: LineType,
    /// Where line indexes are persisted.
    pub index_cache: IndexCache,
    /// How reads are planned.
    pub io: IoPolicy,
    /// At most this many files of a many-file corpus are mapped at once (least recently
    /// used ones are unmapped; batches keep the maps they point into alive). `None`: as many
    /// as the process's limits allow, see [`Options::default_max_open_files`].
    pub max_open_files: Option<usize>,
    /// Serve zero-copy views into the map even of files that another user can write (not
    /// owned by this process's user, or writable by group or others). Off by default: such a
    /// writer can change bytes under the map without a trace (a shared writable mapping
    /// leaves size and times alone), so by default their lines are read with `pread` into
    /// buffers of the batch's own and validated there. See the README's trust model.
    #[serde(default)]
    pub trust_files: bool,
    /// Files that cannot be served (unreadable, not regular, compressed badly, not UTF-8
    /// on the string path, a line too long): an error (the default), or skipped and listed
    /// in [`Batcher::skipped_files`](crate::Batcher::skipped_files) and a notice.
    #[serde(default)]
    pub on_bad_file: FilePolicy,
    /// A file reached twice (a symlink, a hard link, overlapping globs): served once with
    /// a notice naming both paths (the default), or an error.
    #[serde(default)]
    pub on_duplicate_file: FilePolicy,
    /// Carry the `file` column even for a corpus of one file. The entry points set it when
    /// the input was a glob or a list ([`inputs_name_a_corpus`](crate::inputs_name_a_corpus)),
    /// so a glob that happens to match one file keeps the schema of one that matches many.
    #[serde(default)]
    pub file_column: bool,
    /// Threads that build the batches of a [`BatchStream`](crate::BatchStream): compute
    /// the order, locate and gather the lines and start their reads ahead of the consumer,
    /// handing the batches over in order. In the page cache the consumer is one of them
    /// (it builds whenever it has no finished batch to take), so `threads - 1` builder
    /// threads are started; from disk, `threads`. `None`: one per available core. The
    /// batches are the same for any number.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Lines each epoch serves (before leftovers are dropped). `None`: every kept line once.
    /// More than the kept lines upsamples (each source starts another pass, in a fresh
    /// order), fewer subsamples (a different subset each epoch, every line served once
    /// before any repeats). With named sources it is split by their weights.
    #[serde(default)]
    pub lines_per_epoch: Option<u64>,
    /// JSON Lines: the `line` column holds this field of each record (a JSON object per
    /// line) instead of the line: a dotted path (`meta.title`) or a JSON Pointer
    /// (`/a.b/c`). A string without escapes is a view into the map; one with escapes is
    /// decoded into a buffer of the batch. A record without the field, with a value there
    /// that is not a string, or that is not JSON is a bad record ([`Options::on_bad_record`]).
    #[serde(default)]
    pub field: Option<String>,
    /// JSON Lines: one more `Utf8View` column per path, named as written: strings
    /// decoded, other values as their JSON text, `null` where absent or JSON `null`.
    #[serde(default)]
    pub fields: Vec<String>,
    /// What a bad record of [`Options::field`] does: an error (the default), skipped, or
    /// a null `line`.
    #[serde(default)]
    pub on_bad_record: RecordPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_size: 100,
            shuffle: Shuffle::Global,
            ignore_leftovers: true,
            even_shards: false,
            skip_blank_lines: true,
            comment_char: Some(b'#'),
            header_lines: 0,
            seed: None,
            keep_terminator: false,
            line_type: LineType::Utf8,
            index_cache: IndexCache::Auto,
            io: IoPolicy::Auto,
            max_open_files: None,
            trust_files: false,
            on_bad_file: FilePolicy::Error,
            on_duplicate_file: FilePolicy::Skip,
            file_column: false,
            threads: None,
            lines_per_epoch: None,
            field: None,
            fields: Vec::new(),
            on_bad_record: RecordPolicy::Error,
        }
    }
}

/// The part of [`Options`] that decides which lines are kept; it is all the index depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeepRules {
    /// See [`Options::skip_blank_lines`].
    pub skip_blank_lines: bool,
    /// See [`Options::comment_char`].
    pub comment_char: Option<u8>,
    /// See [`Options::header_lines`].
    pub header_lines: u64,
}

/// Why a line is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// One of the first `header_lines` lines of its file.
    Header,
    /// Its first byte is the comment character.
    Comment,
    /// Only ASCII whitespace.
    Blank,
}

/// ASCII whitespace as the original Python `bytes.isspace()` sees it (Rust's
/// `is_ascii_whitespace` leaves out `\v`).
#[inline]
fn is_blank_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

impl KeepRules {
    /// Why physical line `number` (1-based) of a file, `line` with its terminator, is
    /// skipped under these rules; `None` when it is kept. The index build applies the
    /// same rules (the header by offset, the rest through [`content_skip`](Self::content_skip)).
    pub fn skip_reason(&self, line: &[u8], number: u64) -> Option<SkipReason> {
        if number <= self.header_lines {
            return Some(SkipReason::Header);
        }
        self.content_skip(line)
    }

    /// Why `line` is skipped by its bytes alone (comment, blank), whatever its place.
    #[inline]
    pub(crate) fn content_skip(&self, line: &[u8]) -> Option<SkipReason> {
        if line.first().is_some_and(|&c| self.comment_char == Some(c)) {
            return Some(SkipReason::Comment);
        }
        (self.skip_blank_lines && line.iter().all(|&b| is_blank_byte(b))).then_some(SkipReason::Blank)
    }

    /// A short tag naming these rules in index file names, so that indexes built under
    /// different rules live side by side: `b1-c23` (skip blanks, comment byte 0x23), and
    /// `-h1` with one header line.
    pub fn tag(&self) -> String {
        let comment = self.comment_char.map_or_else(|| "none".to_string(), |c| format!("{c:02x}"));
        let header = if self.header_lines > 0 { format!("-h{}", self.header_lines) } else { String::new() };
        format!("b{}-c{comment}{header}", u8::from(self.skip_blank_lines))
    }
}

impl Options {
    /// The default `max_open_files`. A mapped file held in memory (`descriptors` false:
    /// the cached and file-order modes) keeps no descriptor, only its map: then half of
    /// the kernel's maps per process (`vm.max_map_count`, 65,530 by default) after 1,024
    /// for everything else — a file's map and, for a large file, its index's. Reading
    /// from disk keeps a descriptor per file: half of what the descriptor limit
    /// (`RLIMIT_NOFILE`, `ulimit -n`) leaves after 64. At least 16 either way.
    pub fn default_max_open_files(descriptors: bool) -> usize {
        let budget = if descriptors {
            let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(1 << 20);
            soft.saturating_sub(64) / 2
        } else {
            let maps = std::fs::read_to_string("/proc/sys/vm/max_map_count").ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(65_530);
            maps.saturating_sub(1024) / 2
        };
        usize::try_from(budget).unwrap_or(usize::MAX).max(16)
    }

    /// The threads that build a stream's batches: [`threads`](Self::threads), else one per
    /// available core (in the page cache the consumer is one of them).
    pub fn build_threads(&self) -> usize {
        self.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
    }

    /// Checks every option; the error says which and why.
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(Error::InvalidOption { message });
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if u64::try_from(self.batch_size).is_err() || self.batch_size > u32::MAX as usize {
            return bad(format!("batch_size must be at most {}, got {}", u32::MAX, self.batch_size));
        }
        if let Shuffle::Block { block_bytes, window_blocks } = self.shuffle {
            if block_bytes == 0 {
                return bad("shuffle_block (bytes per block) must be at least 1".into());
            }
            if window_blocks == 0 {
                return bad("shuffle_window (blocks per window) must be at least 1".into());
            }
        }
        if self.max_open_files == Some(0) {
            return bad("max_open_files must be at least 1".into());
        }
        if self.threads == Some(0) {
            return bad("threads must be at least 1".into());
        }
        if self.lines_per_epoch == Some(0) {
            return bad("lines_per_epoch must be at least 1".into());
        }
        self.records()?;
        Ok(())
    }

    /// The JSON fields asked (`field` first, then `fields`), parsed; `None` when the lines
    /// are served as they are.
    pub fn records(&self) -> Result<Option<Fields>> {
        if self.field.is_none() && self.fields.is_empty() {
            if self.on_bad_record != RecordPolicy::Error {
                return Err(Error::InvalidOption { message: "on_bad_record applies to field=; no field is asked".into() });
            }
            return Ok(None);
        }
        if self.line_type == LineType::Binary {
            return Err(Error::InvalidOption { message: "field= and fields= read JSON, which is text: they do not go with binary lines".into() });
        }
        let mut seen = std::collections::HashSet::new();
        for name in &self.fields {
            if !seen.insert(name.as_str()) {
                return Err(Error::InvalidOption { message: format!("fields= names {name:?} twice") });
            }
        }
        let paths = self.field.iter().chain(&self.fields).map(|p| FieldPath::parse(p)).collect::<Result<Vec<_>>>()?;
        Fields::new(paths).map(Some)
    }

    /// The rules that decide which lines are kept.
    pub fn keep_rules(&self) -> KeepRules {
        KeepRules { skip_blank_lines: self.skip_blank_lines, comment_char: self.comment_char, header_lines: self.header_lines }
    }

    /// The comment byte for a comment character typed by a user (CLI, Python `str`): it
    /// must be one ASCII character, so that it is one byte.
    pub fn comment_byte(c: char) -> Result<u8> {
        if c.is_ascii() {
            Ok(c as u8)
        } else {
            Err(Error::InvalidOption { message: format!("comment_char must be one ASCII character, got {c:?}") })
        }
    }
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;
    use clap::ValueEnum;

    /// The CLI's spellings (derived by clap) are the core's.
    fn same_words<T: Choice + ValueEnum + std::fmt::Debug>() {
        let clap: Vec<(String, T)> = T::value_variants().iter().map(|v| (v.to_possible_value().unwrap().get_name().to_string(), *v)).collect();
        let core: Vec<(String, T)> = T::VALUES.iter().map(|(w, v)| (w.to_string(), *v)).collect();
        assert_eq!(clap, core, "{}", T::OPTION);
        for (w, v) in T::VALUES {
            assert_eq!(T::parse(w).unwrap(), *v);
            assert_eq!(v.word(), *w);
        }
        let err = T::parse("nope").unwrap_err().to_string();
        assert!(err.contains(T::OPTION) && err.contains(T::VALUES[0].0), "{err}");
    }

    #[test]
    fn choices_are_spelled_once() {
        same_words::<IoPolicy>();
        same_words::<ShuffleMode>();
        same_words::<LineLayout>();
        same_words::<RecordPolicy>();
    }
}
