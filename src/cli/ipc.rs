//! `mmap-batcher ipc`: every batch of every epoch as one Arrow IPC stream.

use std::io::{BufWriter, IsTerminal};
use std::path::PathBuf;

use crate::LineLayout;

use crate::cli::args::{open, FileArgs};
use crate::cli::error::{CliError, CliResult};

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
    /// Layout of the line column: large (LargeUtf8/LargeBinary, read everywhere) or view (Utf8View/BinaryView).
    #[arg(long, value_enum, default_value_t = LineLayout::Large, alias = "line-type")]
    layout: LineLayout,
}

pub fn run(a: Args) -> CliResult {
    let epochs = a.files.epochs;
    let batcher = open(&a.inputs, a.files.options(false)?)?;
    let columns = batcher.default_columns();
    let shard = a.files.shard();
    match a.output.filter(|p| p.as_os_str() != "-") {
        None => {
            if std::io::stdout().is_terminal() {
                return Err(CliError::Usage("refusing to write a binary Arrow IPC stream to a terminal: pass -o FILE or redirect".into()));
            }
            let out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            crate::write_ipc_stream(&batcher, epochs, shard, &columns, a.layout, out)?;
        }
        Some(path) => {
            crate::cli::output::refuse_input(&path, &batcher)?;
            let file = std::fs::File::create(&path).map_err(|e| crate::Error::Io { path: path.clone(), source: e })?;
            crate::write_ipc_stream(&batcher, epochs, shard, &columns, a.layout, BufWriter::with_capacity(1 << 20, file))?;
        }
    }
    Ok(())
}
