//! `mmap-batcher ipc`: every batch of every epoch as one Arrow IPC stream, or one IPC file.

use std::io::{BufWriter, IsTerminal};
use std::path::PathBuf;

use crate::LineLayout;

use crate::cli::args::{open_inputs, FileArgs};
use crate::cli::error::{CliError, CliResult};

#[derive(clap::Args)]
#[command(override_usage = "mmap-batcher ipc [OPTIONS] <INPUTS>...\n       mmap-batcher ipc [OPTIONS] --source NAME=PATH...")]
pub struct Args {
    /// The line files (paths or globs; - for standard input), served as one corpus (or
    /// none, with --source).
    #[arg(required_unless_present = "sources")]
    inputs: Vec<String>,
    #[command(flatten)]
    files: FileArgs,
    /// Output file; standard output when omitted or `-`.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Layout of the line column: large (LargeUtf8/LargeBinary, read everywhere) or view (Utf8View/BinaryView).
    #[arg(long, value_enum, default_value_t = LineLayout::Large, alias = "line-type")]
    layout: LineLayout,
    /// Write the Arrow IPC file format (a footer indexes the batches: what pl.scan_ipc,
    /// pyarrow.ipc.open_file and DuckDB open) instead of the stream format (for pipes).
    #[arg(long)]
    file: bool,
}

pub fn run(a: Args) -> CliResult {
    let epochs = a.files.epochs;
    // A table view: every line, as `sql` (the last partial batches are in the stream).
    let batcher = open_inputs(&a.inputs, &a.files.mixture, a.files.options(true)?)?;
    let columns = batcher.default_columns();
    let shard = a.files.shard();
    let write = |out: &mut dyn std::io::Write| {
        if a.file {
            crate::write_ipc_file(&batcher, epochs, shard, &columns, a.layout, out)
        } else {
            crate::write_ipc_stream(&batcher, epochs, shard, &columns, a.layout, out)
        }
    };
    match a.output.as_ref().filter(|p| p.as_os_str() != "-") {
        None => {
            if std::io::stdout().is_terminal() {
                return Err(CliError::Usage("refusing to write binary Arrow IPC to a terminal: pass -o FILE or redirect".into()));
            }
            let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            write(&mut out)?;
        }
        Some(path) => {
            crate::cli::output::refuse_input(path, &batcher)?;
            let file = std::fs::File::create(path).map_err(|e| crate::Error::Io { path: path.clone(), source: e })?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            write(&mut out)?;
            // A write error at the last flush would otherwise be lost in the drop.
            std::io::Write::flush(&mut out).map_err(|e| crate::Error::Io { path: path.clone(), source: e })?;
        }
    }
    Ok(())
}
