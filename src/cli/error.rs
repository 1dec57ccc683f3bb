//! The CLI's errors, typed end to end: a closed standard output (`| head`) is the reader's
//! choice and exits 0 quietly; everything else prints one message and exits non-zero.

use std::io::Write;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the library: bad input, a changed file, …
    #[error(transparent)]
    Batcher(#[from] crate::Error),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    /// Arrow failed to format or write.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The arguments make no sense together.
    #[error("{0}")]
    Usage(String),
    /// A resume state could not be read (`--resume`) or written (`--state-out`).
    #[error("{0}")]
    State(String),
    /// The output format needs text, and a line is not UTF-8.
    #[error("{0}")]
    NotText(String),
    /// A query failed.
    #[cfg(feature = "datafusion")]
    #[error("{0}")]
    Query(#[from] datafusion::error::DataFusionError),
}

impl CliError {
    /// True when the output's reader went away: not a failure.
    fn is_broken_pipe(&self) -> bool {
        let io = |e: &std::io::Error| e.kind() == std::io::ErrorKind::BrokenPipe;
        match self {
            CliError::Output(e) => io(e),
            CliError::Arrow(arrow::error::ArrowError::IoError(_, e)) => io(e),
            CliError::Batcher(crate::Error::Arrow { source: arrow::error::ArrowError::IoError(_, e), .. }) => io(e),
            #[cfg(feature = "datafusion")]
            CliError::Query(datafusion::error::DataFusionError::IoError(e)) => io(e),
            _ => false,
        }
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// Writes one line on standard error, ignoring a closed one (never a panic).
pub fn notice(message: &str) {
    let _ = writeln!(std::io::stderr(), "mmap-batcher: {message}");
}

/// The exit status of a command's result: 0, or 1 after printing the error.
pub fn exit_code(result: CliResult) -> u8 {
    match result {
        Ok(()) => 0,
        Err(e) if e.is_broken_pipe() => 0,
        Err(e) => {
            notice(&format!("error: {e}"));
            1
        }
    }
}
