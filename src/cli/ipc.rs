//! `mmap-batcher ipc`: every batch of every epoch as one Arrow IPC stream.

use std::io::{BufWriter, IsTerminal};
use std::path::PathBuf;

use crate::IpcLineType;
use clap::ValueEnum;

use crate::cli::args::{open, FileArgs};
use crate::cli::error::{CliError, CliResult};

#[derive(Clone, Copy, ValueEnum)]
pub enum LineTypeArg {
    /// LargeUtf8 / LargeBinary.
    Large,
    /// Utf8View / BinaryView (compacted).
    View,
}

#[derive(clap::Args)]
pub struct Args {
    /// The line files (paths or globs; - for standard input), served as one corpus.
    #[arg(required = true)]
    inputs: Vec<String>,
    #[command(flatten)]
    files: FileArgs,
    /// Output file; standard output when omitted or `-`.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Type of the line column: large (LargeUtf8/LargeBinary, read everywhere) or view (Utf8View/BinaryView).
    #[arg(long, value_enum, default_value_t = LineTypeArg::Large)]
    line_type: LineTypeArg,
}

pub fn run(a: Args) -> CliResult {
    let epochs = a.files.epochs;
    let batcher = open(&a.inputs, a.files.options(false)?)?;
    let ipc_type = match a.line_type {
        LineTypeArg::Large => IpcLineType::Large,
        LineTypeArg::View => IpcLineType::View,
    };
    let columns = batcher.default_columns();
    let shard = a.files.shard();
    match a.output.filter(|p| p.as_os_str() != "-") {
        None => {
            if std::io::stdout().is_terminal() {
                return Err(CliError::Usage("refusing to write a binary Arrow IPC stream to a terminal: pass -o FILE or redirect".into()));
            }
            let out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            crate::write_ipc_stream(&batcher, epochs, shard, &columns, ipc_type, out)?;
        }
        Some(path) => {
            crate::cli::output::refuse_input(&path, &batcher)?;
            let file = std::fs::File::create(&path).map_err(|e| crate::Error::Io { path: path.clone(), source: e })?;
            crate::write_ipc_stream(&batcher, epochs, shard, &columns, ipc_type, BufWriter::with_capacity(1 << 20, file))?;
        }
    }
    Ok(())
}
