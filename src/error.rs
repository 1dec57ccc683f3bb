//! The one error type of the crate. Every variant names the file it is about, so a
//! message read in a log (or a Python traceback) says which input was bad and why.

use std::path::PathBuf;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when opening, indexing or serving a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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

    /// Any other I/O failure (mapping, stat, reading).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An option is out of range (for example `batch_size` 0).
    #[error("{path}: invalid option: {message}")]
    InvalidOption { path: PathBuf, message: String },

    /// One line is longer than an Arrow view can address in a single buffer.
    #[error(
        "{path}: line {line_number} is {length} bytes long (with its terminator); \
         the limit is {limit} bytes because an Arrow view buffer is addressed with 32-bit signed offsets"
    )]
    LineTooLong {
        path: PathBuf,
        line_number: u64,
        length: u64,
        limit: u64,
    },

    /// A line that would be served as a string is not valid UTF-8.
    #[error(
        "{path}: line {line_number} is not valid UTF-8 (first bad byte at file offset {byte_offset}); \
         use the binary line type (BinaryView / raw bytes) to serve arbitrary bytes"
    )]
    InvalidUtf8 {
        path: PathBuf,
        line_number: u64,
        byte_offset: u64,
    },

    /// The file's size or modification time differs from when it was indexed.
    #[error("{path}: the file changed since it was indexed ({what}); reopen it to re-index")]
    FileChanged { path: PathBuf, what: String },

    /// Arrow refused to build or write a batch.
    #[error("{path}: arrow: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow::error::ArrowError,
    },
}

impl Error {
    /// Classifies an I/O error from opening or reading `path` into the matching variant.
    pub(crate) fn from_io(path: &std::path::Path, source: std::io::Error) -> Self {
        let path = path.to_path_buf();
        match source.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound { path },
            std::io::ErrorKind::PermissionDenied => Error::PermissionDenied { path },
            std::io::ErrorKind::IsADirectory => Error::IsADirectory { path },
            _ => Error::Io { path, source },
        }
    }

    /// The file this error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Error::NotFound { path }
            | Error::IsADirectory { path }
            | Error::PermissionDenied { path }
            | Error::Io { path, .. }
            | Error::InvalidOption { path, .. }
            | Error::LineTooLong { path, .. }
            | Error::InvalidUtf8 { path, .. }
            | Error::FileChanged { path, .. }
            | Error::Arrow { path, .. } => path,
        }
    }
}
