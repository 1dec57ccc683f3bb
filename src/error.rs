//! The one error type of the crate. Every variant about a file names it, so a message read
//! in a log (or a Python traceback) says which input was bad and why.

use std::path::{Path, PathBuf};

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when opening, indexing or serving a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)] // the fields are named for what they hold; the messages say the rest
pub enum Error {
    /// The path does not exist.
    #[error("{path}: no such file")]
    NotFound { path: PathBuf },

    /// The path is a directory, not a file.
    #[error("{path}: is a directory, expected a file of lines")]
    IsADirectory { path: PathBuf },

    /// The process may not read the file.
    #[error("{path}: permission denied")]
    PermissionDenied { path: PathBuf },

    /// A device, socket or other special file that cannot be served (pipes and FIFOs are
    /// read to the end and served; see the README).
    #[error("{path}: is a {kind}, not a regular file, pipe or FIFO")]
    NotRegularFile { path: PathBuf, kind: &'static str },

    /// Any other I/O failure (mapping, stat, reading).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An option is out of range (for example `batch_size` 0).
    #[error("invalid option: {message}")]
    InvalidOption { message: String },

    /// A glob matched no file, or a list of inputs was empty.
    #[error("{pattern}: no input file matches")]
    NoInput { pattern: String },

    /// The same file was given twice (a corpus serves each file once).
    #[error("{path}: given twice (as {first} and {second})")]
    DuplicateInput { path: PathBuf, first: PathBuf, second: PathBuf },

    /// One line is longer than an Arrow view can address in a single buffer.
    #[error(
        "{path}: line {line_number} is {length} bytes long (with its terminator); \
         the limit is {limit} bytes because an Arrow view buffer is addressed with 32-bit signed offsets"
    )]
    LineTooLong { path: PathBuf, line_number: u64, length: u64, limit: u64 },

    /// A line that would be served as a string is not valid UTF-8.
    #[error(
        "{path}: line {line_number} is not valid UTF-8 (first bad byte at file offset {byte_offset}); \
         serve it as bytes with --binary / binary=True, or leave such files out with --skip-bad-files / on_bad_file=\"skip\""
    )]
    InvalidUtf8 { path: PathBuf, line_number: u64, byte_offset: u64 },

    /// A JSON Lines record that is not a JSON object, or lacks the string field asked
    /// (`on_bad_record = Error`).
    #[error(
        "{path}:{line_number}: byte {byte_offset}: {reason} (leave such records out with on_bad_record=\"skip\" / \
         --on-bad-record skip, or serve them as null with \"null\")"
    )]
    BadRecord { path: PathBuf, line_number: u64, byte_offset: u64, reason: String },

    /// The file differs from when it was indexed (size, modification or change time,
    /// inode): checked before every batch.
    #[error("{path}: the file changed since it was indexed ({what}); reopen it to re-index")]
    FileChanged { path: PathBuf, what: String },

    /// A persisted index disagrees with its file in a way its header could not show.
    #[error("{path}: the line index is corrupt ({reason}); delete it or open with the index cache off")]
    CorruptIndex { path: PathBuf, reason: String },

    /// The operation was interrupted (Ctrl-C in Python, or a cancelled read of a pipe).
    #[error("{path}: interrupted")]
    Interrupted { path: PathBuf },

    /// A resume state does not belong to this batcher (another file, other options).
    #[error("resume state does not match this batcher: {what}")]
    StateMismatch { what: String },

    /// A resume state is malformed or cannot be combined.
    #[error("invalid resume state: {message}")]
    InvalidState { message: String },

    /// Compressed input that is corrupt, truncated, or in a format not decoded (xz,
    /// bzip2, lz4).
    #[error("{path}: {format}: {reason}")]
    Compressed { path: PathBuf, format: &'static str, reason: String },

    /// A bug: a helper thread stopped on a panic. Reported rather than ending a stream
    /// early, which would lose batches silently.
    #[error("internal error: {message}")]
    Internal { message: String },

    /// Arrow refused to build or write a batch.
    #[error("{context}: arrow: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow::error::ArrowError,
    },
}

impl Error {
    /// Classifies an I/O error from opening or reading `path` into the matching variant.
    pub(crate) fn from_io(path: &Path, source: std::io::Error) -> Self {
        let path = path.to_path_buf();
        match source.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound { path },
            std::io::ErrorKind::PermissionDenied => Error::PermissionDenied { path },
            std::io::ErrorKind::IsADirectory => Error::IsADirectory { path },
            std::io::ErrorKind::Interrupted => Error::Interrupted { path },
            _ => Error::Io { path, source },
        }
    }

    /// The file this error is about, when it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::NotFound { path }
            | Error::IsADirectory { path }
            | Error::PermissionDenied { path }
            | Error::NotRegularFile { path, .. }
            | Error::Io { path, .. }
            | Error::DuplicateInput { path, .. }
            | Error::LineTooLong { path, .. }
            | Error::InvalidUtf8 { path, .. }
            | Error::BadRecord { path, .. }
            | Error::FileChanged { path, .. }
            | Error::CorruptIndex { path, .. }
            | Error::Compressed { path, .. }
            | Error::Interrupted { path } => Some(path),
            Error::InvalidOption { .. }
            | Error::NoInput { .. }
            | Error::StateMismatch { .. }
            | Error::InvalidState { .. }
            | Error::Internal { .. }
            | Error::Arrow { .. } => None,
        }
    }

    /// An error that makes one file unservable while the others can be served: what
    /// `on_bad_file = Skip` skips. Running out of memory or descriptors is not one (the
    /// next file would fail the same way), nor is an interruption.
    pub fn is_bad_file(&self) -> bool {
        match self {
            Error::NotFound { .. }
            | Error::IsADirectory { .. }
            | Error::PermissionDenied { .. }
            | Error::NotRegularFile { .. }
            | Error::LineTooLong { .. }
            | Error::InvalidUtf8 { .. }
            | Error::FileChanged { .. }
            | Error::Compressed { .. } => true,
            Error::Io { source, .. } => {
                use rustix::io::Errno;
                let exhausted = [Errno::MFILE, Errno::NFILE, Errno::NOMEM].map(Errno::raw_os_error);
                !source.raw_os_error().is_some_and(|e| exhausted.contains(&e))
            }
            _ => false,
        }
    }

    /// The underlying I/O error kind, for callers that treat some kinds specially (a
    /// closed pipe is `BrokenPipe`).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}
