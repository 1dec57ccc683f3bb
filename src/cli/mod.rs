//! The `mmap-batcher` command line (cargo feature `cli`): one file per subcommand, the
//! shared file options in `args`, and typed errors (`error`) so a closed pipe is told from
//! a real failure. The `mmap-batcher` binary and the Python package's `python -m
//! mmap_batcher` both run [`main`].

mod args;
mod batches;
mod error;
mod files;
mod ipc;
mod output;
#[cfg(feature = "datafusion")]
mod sql;
mod synthetic;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "mmap-batcher", version, about = "Serve huge line files as seeded, shuffled batches of lines, epoch after epoch.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every batch of every epoch.
    Batches(batches::Args),
    /// Run a SQL query over the epochs of the files, registered as the table `lines`.
    #[cfg(feature = "datafusion")]
    Sql(sql::Args),
    /// Write every batch of every epoch as one Arrow IPC stream.
    Ipc(ipc::Args),
    /// Build (or check) the persisted line index of each file and say where it is.
    Index(files::IndexArgs),
    /// Count the served and physical lines of the files (from their indexes).
    Count(files::CountArgs),
    /// Describe each file: size, lines, bytes per line, index status and place, UTF-8.
    Info(files::InfoArgs),
    /// Print lines by physical line number (like `sed -n Np`), or by byte offset.
    Line(files::LineArgs),
    /// Write the deterministic benchmark corpus (log-normal line lengths, blanks, comments, UTF-8).
    Corpus(synthetic::Args),
}

/// Runs the command line `args` (the program name first) as a process's `main`.
pub fn main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    ExitCode::from(run(args))
}

/// Runs the command line `args` (the program name first) and returns its exit status.
pub fn run<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors to stderr with 2.
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    raise_descriptor_limit();
    let result = match cli.command {
        Command::Batches(a) => batches::run(a),
        #[cfg(feature = "datafusion")]
        Command::Sql(a) => sql::run(a),
        Command::Ipc(a) => ipc::run(a),
        Command::Index(a) => files::index(a),
        Command::Count(a) => files::count(a),
        Command::Info(a) => files::info(a),
        Command::Line(a) => files::line(a),
        Command::Corpus(a) => synthetic::run(a),
    };
    error::exit_code(result)
}

/// Raises this process's soft descriptor limit to its hard limit, as a command line over
/// tens of thousands of files needs (Go's runtime does the same for every program); the
/// default `--max-open-files` follows. Only the command line does this: a library must not
/// change its host process's limits. Failure leaves the limit as it was.
fn raise_descriptor_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum) {
        if soft < hard {
            let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) });
        }
    }
}
