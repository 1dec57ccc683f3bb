//! The commands about the files themselves: `index`, `count`, `info`, `line`.

use std::io::{BufWriter, Write};

use crate::{Batcher, IndexCache, IndexStatus, Options, SkipReason, Utf8Verdict};

use crate::cli::args::{open, open_inputs, KeepArgs, MixtureArgs};
use crate::cli::error::{CliError, CliResult};

/// Arguments of `index`, `count` and `info`: the files, which lines are kept, and where
/// indexes live.
#[derive(clap::Args)]
pub struct InputArgs {
    /// The line files (paths or globs; - for standard input), or none with --source.
    #[arg(required_unless_present = "sources")]
    inputs: Vec<String>,
    #[command(flatten)]
    keep: KeepArgs,
    #[command(flatten)]
    mixture: MixtureArgs,
}

impl InputArgs {
    /// The corpus, its indexes found, and written where none is unless `read_only`.
    fn open(&self, read_only: bool) -> CliResult<Batcher> {
        // Nothing is batched here: no leftovers to drop (nor a notice about them).
        let given = Options { seed: Some(0), ignore_leftovers: false, lines_per_epoch: self.mixture.lines_per_epoch, ..Options::default() };
        let options = self.keep.apply(given)?;
        let index_cache = if read_only { IndexCache::ReadOnly(Box::new(options.index_cache)) } else { options.index_cache };
        open_inputs(&self.inputs, &self.mixture, Options { index_cache, ..options })
    }
}

#[derive(clap::Args)]
#[command(override_usage = "mmap-batcher index [OPTIONS] <INPUTS>...\n       mmap-batcher index [OPTIONS] --source NAME=PATH...")]
pub struct IndexArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Remove the index files of these files instead (every keep-rule variant, beside the
    /// files, in --index-dir and in the cache directories), printing each one removed.
    #[arg(long)]
    clean: bool,
}

#[derive(clap::Args)]
#[command(override_usage = "mmap-batcher count [OPTIONS] <INPUTS>...\n       mmap-batcher count [OPTIONS] --source NAME=PATH...")]
pub struct CountArgs {
    #[command(flatten)]
    input: InputArgs,
}

#[derive(clap::Args)]
#[command(override_usage = "mmap-batcher info [OPTIONS] <INPUTS>...\n       mmap-batcher info [OPTIONS] --source NAME=PATH...")]
pub struct InfoArgs {
    #[command(flatten)]
    input: InputArgs,
}

#[derive(clap::Args)]
pub struct LineArgs {
    /// The line file.
    file: String,
    /// Physical line numbers (1-based, as `grep -n`), or byte offsets with --offset.
    #[arg(required = true)]
    numbers: Vec<u64>,
    /// The numbers are byte offsets: print the line containing each.
    #[arg(long)]
    offset: bool,
}

fn status(s: &IndexStatus) -> String {
    match s {
        IndexStatus::Memory => "in memory only (not persisted)".into(),
        IndexStatus::Loaded(p) => format!("{} (valid, reused)", p.display()),
        IndexStatus::Written(p) => format!("{} (built now)", p.display()),
    }
}

fn bytes_per_line(b: &Batcher) -> String {
    let lines = b.num_lines().max(1);
    let bytes: u64 = b.paths().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    format!("{:.1}", bytes as f64 / lines as f64)
}

/// Index bytes per kept line: 8 per record, plus the sentinel and side lists.
fn index_bytes_per_line(b: &Batcher, f: usize) -> String {
    let lines = b.file_lines(f);
    let n = (lines.end - lines.start).max(1);
    match b.index_status(f).path().and_then(|p| std::fs::metadata(p).ok()) {
        Some(m) => format!("{:.2}", (m.len().saturating_sub(crate::index::persist::HEADER_LEN as u64)) as f64 / n as f64),
        None => "8.00".into(),
    }
}

pub fn index(a: IndexArgs) -> CliResult {
    let m = &a.input.mixture;
    if let Some(flag) = [(!m.weights.is_empty(), "--weight"), (m.lines_per_epoch.is_some(), "--lines-per-epoch")].iter().find(|f| f.0) {
        return Err(CliError::Usage(format!("{}: how an epoch serves the sources; index builds their indexes only", flag.1)));
    }
    if a.clean {
        return clean(&a.input);
    }
    let b = a.input.open(false)?;
    let mut out = std::io::stdout().lock();
    for (f, path) in b.paths().enumerate() {
        let lines = b.file_lines(f);
        writeln!(
            out,
            "{}: {} lines, index {} bytes/line: {}",
            path.display(),
            lines.end - lines.start,
            index_bytes_per_line(&b, f),
            status(b.index_status(f))
        )?;
    }
    Ok(())
}

pub fn count(a: CountArgs) -> CliResult {
    let b = a.input.open(false)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} kept lines, {} physical lines", b.num_lines(), b.physical_lines())?;
    if b.is_mixture() {
        writeln!(out, "{} lines per epoch", b.lines_per_epoch())?;
    }
    Ok(())
}

pub fn info(a: InfoArgs) -> CliResult {
    // Looks, never writes: an index file missing is built in memory for the report.
    let b = a.input.open(true)?;
    let mut out = std::io::stdout().lock();
    let mut total_skipped = [0u64; 3];
    for (f, path) in b.paths().enumerate() {
        let id = b.identity(f);
        let lines = b.file_lines(f);
        let utf8 = match b.utf8_verdict(f) {
            Utf8Verdict::Valid => "every kept line is valid UTF-8".to_string(),
            Utf8Verdict::Invalid { offset, .. } => format!("not UTF-8 (first bad byte of a kept line at offset {offset}; serve it with --binary)"),
        };
        writeln!(out, "{}", path.display())?;
        writeln!(out, "  size:        {} bytes", id.size)?;
        writeln!(out, "  lines:       {} kept", lines.end - lines.start)?;
        writeln!(out, "  index:       {}", status(b.index_status(f)))?;
        writeln!(out, "  index size:  {} bytes per kept line", index_bytes_per_line(&b, f))?;
        writeln!(out, "  utf-8:       {utf8}")?;
        for line in b.header(f)? {
            writeln!(out, "  header:      {}", String::from_utf8_lossy(&line))?;
        }
        if let Some(skipped) = skipped_by_reason(path, b.options().keep_rules(), b.physical_lines_of(f)) {
            writeln!(out, "  skipped:     {}", describe(&skipped, b.options().comment_char))?;
            for (t, n) in total_skipped.iter_mut().zip(skipped) {
                *t += n;
            }
        }
    }
    for (path, why) in b.skipped_files() {
        writeln!(out, "{} (skipped)\n  why:         {why}", path.display())?;
    }
    writeln!(out, "total: {} kept lines, {} physical lines, {} bytes per kept line", b.num_lines(), b.physical_lines(), bytes_per_line(&b))?;
    writeln!(out, "skipped lines: {}", describe(&total_skipped, b.options().comment_char))?;
    if !b.skipped_files().is_empty() {
        writeln!(out, "skipped: {} files", b.skipped_files().len())?;
    }
    if b.is_mixture() {
        writeln!(out, "lines per epoch: {}", b.lines_per_epoch())?;
        for s in b.sources() {
            writeln!(out, "source {}", s.name)?;
            writeln!(out, "  files:       {}", s.files.len())?;
            writeln!(out, "  lines:       {} kept", s.lines)?;
            writeln!(out, "  weight:      {:.4}", s.weight)?;
            writeln!(out, "  lines per epoch: {} ({:.2} passes)", s.per_epoch, s.passes_per_epoch())?;
        }
    }
    Ok(())
}

/// The skipped lines of `path` by reason (header, comment, blank), counted with plain
/// reads (never through the map: `info` may look at files others can write); `None` for
/// input that cannot be read again (standard input, pipes) or that changed (its count of
/// physical lines differs from the index's).
fn skipped_by_reason(path: &std::path::Path, rules: crate::KeepRules, physical: u64) -> Option<[u64; 3]> {
    use std::io::BufRead;
    use std::os::unix::fs::OpenOptionsExt;
    // Never blocking: a FIFO at that path (standard input's spool has none) is not read.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let (mut counts, mut line, mut number) = ([0u64; 3], Vec::new(), 0u64);
    while reader.read_until(b'\n', &mut line).ok()? > 0 {
        number += 1;
        match rules.skip_reason(&line, number) {
            Some(SkipReason::Header) => counts[0] += 1,
            Some(SkipReason::Comment) => counts[1] += 1,
            Some(SkipReason::Blank) => counts[2] += 1,
            None => {}
        }
        line.clear();
    }
    (number == physical).then_some(counts)
}

fn describe(counts: &[u64; 3], comment: Option<u8>) -> String {
    let comment = comment.map_or_else(String::new, |c| format!(" (starting with '{}'; --no-comment-char serves them)", c as char));
    format!("{} header, {} comment{comment}, {} blank", counts[0], counts[1], counts[2])
}

/// `index --clean`: removes our index files of the inputs, wherever the options look.
fn clean(input: &InputArgs) -> CliResult {
    let paths = match input.mixture.sources()? {
        Some(_) if !input.inputs.is_empty() => return Err(CliError::Usage("give the files with --source NAME=PATH or as inputs, not both".into())),
        Some(sources) => sources.into_iter().flat_map(|s| s.paths).collect(),
        None => crate::expand_inputs(&input.inputs)?,
    };
    let dir = input.keep.index_dir.clone();
    let mut out = std::io::stdout().lock();
    let mut removed = 0u64;
    for data in &paths {
        for p in crate::index::index_files_of(data, dir.as_deref()) {
            std::fs::remove_file(&p).map_err(|e| crate::Error::from_io(&p, e))?;
            writeln!(out, "removed {}", p.display())?;
            removed += 1;
        }
    }
    writeln!(out, "{removed} index files removed")?;
    Ok(())
}

pub fn line(a: LineArgs) -> CliResult {
    // Every line is kept here, so that any physical line number can be printed.
    let options = Options { skip_blank_lines: false, comment_char: None, seed: Some(0), ..Options::default() };
    let b = open(std::slice::from_ref(&a.file), options)?;
    if b.num_files() != 1 {
        return Err(CliError::Usage("line reads one file".into()));
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    for &n in &a.numbers {
        let id = if a.offset { b.line_id_at_offset(0, n)? } else { b.line_id(0, n)? };
        let Some(id) = id else {
            let what = if a.offset { format!("byte offset {n}") } else { format!("line {n}") };
            return Err(CliError::Usage(format!("{}: no {what} (the file has {} lines)", a.file, b.physical_lines())));
        };
        let bytes = b.line_bytes(id)?;
        out.write_all(&bytes)?;
        if !bytes.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}
