//! `mmap-batcher batches`: print every batch, resumably.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::state::State;
use crate::{BatchStream, Served};
use clap::ValueEnum;

use crate::cli::args::{open_inputs, FileArgs};
use crate::cli::error::{CliError, CliResult};

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// `[b'one\n', b'two\n']` per batch and a line of dashes after each epoch.
    Python,
    /// `{"epoch":0,"batch":0,"line_numbers":[..],"lines":[..]}` per batch (lines must be UTF-8).
    Jsonl,
}

#[derive(clap::Args)]
#[command(override_usage = "mmap-batcher batches [OPTIONS] <INPUTS>...\n       mmap-batcher batches [OPTIONS] --source NAME=PATH...")]
pub struct Args {
    /// The line files (paths or globs; - for standard input), served as one corpus (or
    /// none, with --source).
    #[arg(required_unless_present = "sources")]
    inputs: Vec<String>,
    #[command(flatten)]
    files: FileArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Python)]
    format: Format,
    /// Resume from the state saved by an earlier run's --state-out (same files and options).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Save the resume state here (atomically, after the output it covers is flushed).
    #[arg(long)]
    state_out: Option<PathBuf>,
    /// Save the state every N batches (1: after every batch, exact after kill -9).
    #[arg(long, default_value_t = 1, requires = "state_out")]
    state_every: u64,
}

/// Python's `repr()` of a `bytes` value, so output reads like the original README.
fn py_bytes_repr(bytes: &[u8], s: &mut String) {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') { '"' } else { '\'' };
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
}

/// Writes `state` to `path` atomically: a fresh temporary file beside it (unpredictable
/// name, `O_EXCL`: nothing planted there is followed), renamed into place.
fn write_state(path: &Path, state: &State) -> CliResult {
    let json = serde_json::to_vec(state).map_err(|e| CliError::State(format!("state: {e}")))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".mmb-state.").suffix(".tmp").tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, &json)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

pub fn run(a: Args) -> CliResult {
    if a.format == Format::Jsonl && a.files.binary {
        return Err(CliError::Usage("--format jsonl prints lines as JSON strings; use --format python for arbitrary bytes".into()));
    }
    let options = a.files.options(false)?;
    let batcher = open_inputs(&a.inputs, &a.files.mixture, options)?;
    if a.format == Format::Jsonl {
        batcher.validate_utf8().map_err(|e| CliError::NotText(format!("{e} (--format jsonl prints strings; use --format python)")))?;
    }
    if let Some(path) = &a.state_out {
        crate::cli::output::refuse_input(path, &batcher)?;
    }
    let shard = a.files.shard();
    let (mut epoch, mut base, mut done) = match &a.resume {
        Some(path) => {
            let text = std::fs::read(path).map_err(|e| crate::Error::Io { path: path.clone(), source: e })?;
            let state: State = serde_json::from_slice(&text).map_err(|e| CliError::State(format!("{}: not a resume state: {e}", path.display())))?;
            batcher.resume_point(&state, shard)?
        }
        None => (0, Served::NONE, 0),
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let fresh = crate::ShardPlan::new(batcher.num_batches(), Served::NONE, shard, batcher.options().even_shards).len();
    let first = crate::ShardPlan::new(batcher.num_batches(), base.clone(), shard, batcher.options().even_shards).len();
    let total = if epoch < a.files.epochs { first.saturating_sub(done) + (a.files.epochs - epoch - 1).saturating_mul(fresh) } else { 0 };
    let bar = crate::cli::output::progress_bar(total, "batches", false);
    let mut line = String::new();
    let mut since_save = 0;
    while epoch < a.files.epochs {
        let ep = batcher.epoch(epoch)?;
        let units = ep.shard_plan(shard, base.clone()).units_after(epoch, done);
        for ready in BatchStream::new(&batcher, units) {
            let ready = ready?;
            line.clear();
            // Read out of the map under the guard: a truncation meanwhile is an error.
            ready.located.reading(|| Ok(format_batch(a.format, &ready, &mut line)))??;
            writeln!(out, "{line}")?;
            done += 1;
            since_save += 1;
            if let Some(bar) = &bar {
                bar.inc(1);
            }
            if let Some(path) = &a.state_out {
                if since_save >= a.state_every {
                    out.flush()?;
                    write_state(path, &batcher.state(epoch, base.clone(), shard, done)?)?;
                    since_save = 0;
                }
            }
        }
        if a.format == Format::Python {
            writeln!(out, "{}", "-".repeat(40))?;
        }
        epoch += 1;
        base = Served::NONE;
        done = 0;
    }
    out.flush()?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(path) = &a.state_out {
        write_state(path, &batcher.state(epoch, Served::NONE, shard, 0)?)?;
    }
    Ok(())
}

/// One batch as a line of output, in `format`.
fn format_batch(format: Format, ready: &crate::Ready, line: &mut String) -> CliResult<()> {
    match format {
        Format::Python => {
            line.push('[');
            for (i, (_, l)) in ready.located.values(ready.batch.batcher(), true)?.iter().enumerate() {
                if i > 0 {
                    line.push_str(", ");
                }
                match l {
                    Some(l) => py_bytes_repr(l, line),
                    None => line.push_str("None"),
                }
            }
            line.push(']');
        }
        Format::Jsonl => {
            let batcher = ready.batch.batcher();
            let names = &batcher.options().fields;
            // `--fields`: a list of each field's values, beside the lines.
            let first = usize::from(batcher.options().field.is_some());
            let mut columns: Vec<Vec<serde_json::Value>> = vec![Vec::new(); names.len()];
            let values = ready.located.values_and_fields(batcher, false, |line, found| {
                for (k, column) in columns.iter_mut().enumerate() {
                    column.push(found.and_then(|f| f.get(first + k)).map_or(serde_json::Value::Null, |f| json_value(line, f)));
                }
            })?;
            let lines = values
                .iter()
                .map(|(_, l)| l.as_deref().map(std::str::from_utf8).transpose().map_err(|e| CliError::NotText(format!("a line is not UTF-8: {e}"))))
                .collect::<CliResult<Vec<Option<&str>>>>()?;
            let numbers: Vec<u64> = ready.located.line_numbers().collect();
            let obj = serde_json::json!({
                "epoch": ready.batch.epoch(),
                "batch": ready.batch.number(),
                "line_numbers": values.iter().map(|(row, _)| numbers[*row]).collect::<Vec<u64>>(),
                "lines": lines,
            });
            line.push_str(&obj.to_string());
            if !names.is_empty() {
                // Written by hand to keep the order of --fields (a JSON map would sort them).
                line.pop();
                line.push_str(",\"fields\":{");
                for (k, (name, column)) in names.iter().zip(columns).enumerate() {
                    if k > 0 {
                        line.push(',');
                    }
                    line.push_str(&serde_json::Value::from(name.as_str()).to_string());
                    line.push(':');
                    line.push_str(&serde_json::Value::Array(column).to_string());
                }
                line.push_str("}}");
            }
        }
    }
    Ok(())
}

/// A field's value as JSON: a string decoded, any other value parsed from its text (which
/// the walk checked), `null` when absent.
fn json_value(line: &[u8], found: &crate::json::Found) -> serde_json::Value {
    use crate::json::Found;
    let text = |raw: &std::ops::Range<usize>| line.get(raw.clone()).unwrap_or_default();
    match found {
        Found::Missing | Found::Null => serde_json::Value::Null,
        Found::Str { .. } => serde_json::Value::String(String::from_utf8_lossy(&found.string(line).unwrap_or_default()).into_owned()),
        // A number beyond what serde_json holds (1e400) stays its text.
        Found::Other(raw) => {
            serde_json::from_slice(text(raw)).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(text(raw)).into_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_repr_matches_python() {
        let r = |b: &[u8]| {
            let mut s = String::new();
            super::py_bytes_repr(b, &mut s);
            s
        };
        assert_eq!(r(b"one\n"), r"b'one\n'");
        assert_eq!(r(b"it's"), r#"b"it's""#);
        assert_eq!(r(b"'\""), r#"b'\'"'"#);
        assert_eq!(r(b"a\\\x00\xff\t\r"), r"b'a\\\x00\xff\t\r'");
    }
}
