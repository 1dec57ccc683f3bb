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
}

#[derive(Clone, Copy, ValueEnum)]
enum BatchFormat {
    /// `[b'one\n', b'two\n']` per batch and a line of dashes after each epoch.
    Python,
    /// `{"epoch":0,"batch":0,"line_numbers":[..],"lines":[..]}` per batch (lines must be UTF-8).
    Jsonl,
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
