//! The `mmap-batcher` command line.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mmap_batcher::{Batcher, LineType, Options};

#[derive(Parser)]
#[command(name = "mmap-batcher", version, about = "Serve a huge line file as seeded, shuffled batches of lines, epoch after epoch.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every batch of every epoch.
    Batches {
        #[command(flatten)]
        batcher: BatcherArgs,
        /// Output format: Python-style bytes lists (as the original README) or one JSON object per batch.
        #[arg(long, value_enum, default_value_t = BatchFormat::Python)]
        format: BatchFormat,
    },
    /// Run a SQL query over the epochs of a file, registered as the table `lines`
    /// (columns line, line_number, byte_offset, epoch, batch).
    #[cfg(feature = "datafusion")]
    Sql {
        #[command(flatten)]
        batcher: BatcherArgs,
        /// The query, e.g. "SELECT count(*) FROM lines WHERE line LIKE '%abc%'".
        query: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
        format: SqlFormat,
        /// Bound DataFusion's memory pool to this many MiB (sorts and joins spill or fail past it).
        #[arg(long)]
        memory_limit_mib: Option<usize>,
    },
    /// Write every batch of every epoch as one Arrow IPC stream.
    Ipc {
        #[command(flatten)]
        batcher: BatcherArgs,
        /// Output file, or - for standard output.
        #[arg(short = 'o', long = "output", default_value = "-")]
        output: String,
        /// Type of the line column: large (LargeUtf8/LargeBinary, read everywhere) or view (Utf8View/BinaryView).
        #[arg(long, value_enum, default_value_t = IpcType::Large)]
        line_type: IpcType,
    },
    /// Write the deterministic benchmark corpus (log-normal line lengths, blanks, comments, UTF-8).
    Corpus {
        /// Output file.
        out: PathBuf,
        /// Number of lines (10 M is about 1 GB).
        #[arg(long, default_value_t = 10_000_000)]
        lines: u64,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum BatchFormat {
    /// `[b'one\n', b'two\n']` per batch and a line of dashes after each epoch.
    Python,
    /// `{"epoch":0,"batch":0,"line_numbers":[..],"lines":[..]}` per batch (lines must be UTF-8).
    Jsonl,
}

#[cfg(feature = "datafusion")]
#[derive(Clone, Copy, ValueEnum)]
enum SqlFormat {
    /// An aligned text table.
    Table,
    /// A header row, then one row per result row.
    Csv,
    /// One JSON object per result row.
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum IpcType {
    /// LargeUtf8 / LargeBinary.
    Large,
    /// Utf8View / BinaryView (compacted).
    View,
}

/// Options shared by every command that reads a file.
#[derive(Args)]
struct BatcherArgs {
    /// The line file to serve.
    file: PathBuf,
    /// Lines per batch.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Number of epochs.
    #[arg(long, default_value_t = 1)]
    epochs: u64,
    /// Shuffle seed (printed on stderr when not given, so a run can be reproduced).
    #[arg(long)]
    seed: Option<u64>,
    /// Serve lines in file order.
    #[arg(long)]
    no_shuffle: bool,
    /// Serve the last partial batch of each epoch instead of dropping it.
    #[arg(long)]
    keep_leftovers: bool,
    /// Serve whitespace-only lines too.
    #[arg(long)]
    keep_blank_lines: bool,
    /// Lines starting with this ASCII character are comments and skipped.
    #[arg(long, default_value = "#", conflicts_with = "no_comment_char")]
    comment_char: char,
    /// Serve lines starting with any character.
    #[arg(long)]
    no_comment_char: bool,
    /// Keep the `\n` / `\r\n` at the end of each line in JSON and Arrow output.
    #[arg(long)]
    keep_terminator: bool,
    /// Serve lines as binary (BinaryView) instead of UTF-8 strings (Utf8View).
    #[arg(long)]
    binary: bool,
}

impl BatcherArgs {
    fn open(&self) -> Result<Batcher, String> {
        let comment_char = if self.no_comment_char {
            None
        } else if self.comment_char.is_ascii() {
            Some(self.comment_char as u8)
        } else {
            return Err(format!("--comment-char must be one ASCII character, got {:?}", self.comment_char));
        };
        let options = Options {
            batch_size: self.batch_size,
            shuffle: !self.no_shuffle,
            ignore_leftovers: !self.keep_leftovers,
            skip_blank_lines: !self.keep_blank_lines,
            comment_char,
            seed: self.seed,
            keep_terminator: self.keep_terminator,
            line_type: if self.binary { LineType::Binary } else { LineType::Utf8 },
        };
        let batcher = open_with_progress_bar(&self.file, options).map_err(|e| e.to_string())?;
        if self.seed.is_none() && !self.no_shuffle {
            eprintln!("mmap-batcher: seed {} (pass --seed {} to reproduce this run)", batcher.seed(), batcher.seed());
        }
        Ok(batcher)
    }
}

/// Opens `path`, drawing a progress bar on stderr for large files when stderr is a terminal.
fn open_with_progress_bar(path: &std::path::Path, options: Options) -> mmap_batcher::Result<Batcher> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if !std::io::stderr().is_terminal() || size < 64 << 20 {
        return Batcher::open(path, options);
    }
    let bar = indicatif::ProgressBar::new(size).with_style(
        indicatif::ProgressStyle::with_template("indexing {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .expect("static template"),
    );
    let result = Batcher::open_with_progress(path, options, &|n| bar.inc(n));
    bar.finish_and_clear();
    result
}

/// Python's `repr()` of a `bytes` value, so output reads like the original README.
fn py_bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') { '"' } else { '\'' };
    let mut s = String::with_capacity(bytes.len() + 3);
    s.push('b');
    s.push(quote);
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\'' if quote == '\'' => s.push_str("\\'"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push(quote);
    s
}

fn print_batches(batcher: &Batcher, epochs: u64, format: BatchFormat, out: &mut impl Write) -> Result<(), String> {
    if matches!(format, BatchFormat::Jsonl) {
        batcher.validate_utf8().map_err(|e| e.to_string())?;
    }
    for epoch in batcher.epochs(epochs) {
        let epoch = epoch.map_err(|e| e.to_string())?;
        for batch in epoch.batches() {
            let written = match format {
                BatchFormat::Python => {
                    let items: Vec<String> = batch.raw_lines().map(py_bytes_repr).collect();
                    writeln!(out, "[{}]", items.join(", "))
                }
                BatchFormat::Jsonl => {
                    let lines: Vec<&str> =
                        batch.lines().map(|l| std::str::from_utf8(l).expect("validated above")).collect();
                    let line_numbers: Vec<u64> = batch.line_numbers().collect();
                    let obj = serde_json::json!({
                        "epoch": batch.epoch(),
                        "batch": batch.index(),
                        "line_numbers": line_numbers,
                        "lines": lines,
                    });
                    writeln!(out, "{obj}")
                }
            };
            written.map_err(io_error)?;
        }
        if matches!(format, BatchFormat::Python) {
            writeln!(out, "{}", "-".repeat(40)).map_err(io_error)?;
        }
    }
    out.flush().map_err(io_error)
}

#[cfg(feature = "datafusion")]
fn run_sql(
    batcher: Batcher,
    epochs: u64,
    query: &str,
    format: SqlFormat,
    memory_limit_mib: Option<usize>,
    out: &mut impl Write,
) -> Result<(), String> {
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(mib) = memory_limit_mib {
        runtime = runtime.with_memory_limit(mib << 20, 1.0);
    }
    let runtime = runtime.build_arc().map_err(|e| e.to_string())?;
    let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
    ctx.register_table("lines", std::sync::Arc::new(mmap_batcher::LinesTable::new(batcher, epochs)))
        .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    let batches = rt
        .block_on(async { ctx.sql(query).await?.collect().await })
        .map_err(|e| e.to_string())?;
    match format {
        SqlFormat::Table => {
            let table = arrow::util::pretty::pretty_format_batches(&batches).map_err(|e| e.to_string())?;
            writeln!(out, "{table}").map_err(io_error)?;
        }
        SqlFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut *out);
            for b in &batches {
                w.write(b).map_err(|e| e.to_string())?;
            }
        }
        SqlFormat::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut *out);
            w.write_batches(&batches.iter().collect::<Vec<_>>()).map_err(|e| e.to_string())?;
            w.finish().map_err(|e| e.to_string())?;
        }
    }
    out.flush().map_err(io_error)
}

fn io_error(e: std::io::Error) -> String {
    format!("writing output: {e}")
}

fn run(cli: Cli) -> Result<(), String> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    match cli.command {
        Command::Batches { batcher, format } => {
            let epochs = batcher.epochs;
            print_batches(&batcher.open()?, epochs, format, &mut out)
        }
        #[cfg(feature = "datafusion")]
        Command::Sql { batcher, query, format, memory_limit_mib } => {
            let epochs = batcher.epochs;
            run_sql(batcher.open()?, epochs, &query, format, memory_limit_mib, &mut out)
        }
        Command::Ipc { batcher, output, line_type } => {
            let epochs = batcher.epochs;
            let b = batcher.open()?;
            let ipc_type = match line_type {
                IpcType::Large => mmap_batcher::IpcLineType::Large,
                IpcType::View => mmap_batcher::IpcLineType::View,
            };
            let columns = mmap_batcher::Column::ALL;
            let result = if output == "-" {
                if std::io::stdout().is_terminal() {
                    return Err("refusing to write a binary Arrow IPC stream to a terminal: pass -o FILE or redirect".into());
                }
                mmap_batcher::write_ipc_stream(&b, epochs, &columns, ipc_type, &mut out)
            } else {
                let file = std::fs::File::create(&output).map_err(|e| format!("{output}: {e}"))?;
                mmap_batcher::write_ipc_stream(&b, epochs, &columns, ipc_type, BufWriter::with_capacity(1 << 20, file))
            };
            result.map_err(|e| e.to_string())?;
            out.flush().map_err(io_error)
        }
        Command::Corpus { out: path, lines, seed } => {
            let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            mmap_batcher::corpus::write_corpus(&mut w, lines, seed).and_then(|()| w.flush()).map_err(io_error)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.contains("Broken pipe") => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mmap-batcher: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::py_bytes_repr;

    #[test]
    fn bytes_repr_matches_python() {
        assert_eq!(py_bytes_repr(b"one\n"), r"b'one\n'");
        assert_eq!(py_bytes_repr(b"it's"), r#"b"it's""#);
        assert_eq!(py_bytes_repr(b"'\""), r#"b'\'"'"#);
        assert_eq!(py_bytes_repr(b"a\\\x00\xff\t\r"), r"b'a\\\x00\xff\t\r'");
    }
}
