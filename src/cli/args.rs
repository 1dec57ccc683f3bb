//! The options every command that reads files shares, turned into [`Options`] once.

use std::path::PathBuf;

use crate::{Batcher, FilePolicy, IndexCache, IoPolicy, LineType, Options, RecordPolicy, Shard, Shuffle, ShuffleMode};

use crate::cli::error::{notice, CliError, CliResult};

/// Which lines are kept and where their index lives: options of every command that opens
/// files, from `count` to `sql`.
#[derive(clap::Args)]
pub struct KeepArgs {
    /// Serve whitespace-only lines too.
    #[arg(long)]
    pub keep_blank_lines: bool,
    /// Lines starting with this ASCII character are comments and skipped.
    #[arg(long, default_value = "#", conflicts_with = "no_comment_char")]
    pub comment_char: char,
    /// Serve lines starting with any character.
    #[arg(long)]
    pub no_comment_char: bool,
    /// Skip the first N lines of each file (CSV/TSV headers), whatever they hold.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub header_lines: u64,
    /// Leave out files that cannot be served (unreadable, special, not UTF-8 without
    /// --binary, ...), listing them, instead of failing.
    #[arg(long)]
    pub skip_bad_files: bool,
    /// Map at most N files at once; more files are mapped and unmapped as batches need
    /// them. Default: cached and file-order reads keep no descriptor per file, only its
    /// map (half of `vm.max_map_count` after 1024); reads from disk keep one (half of
    /// what `ulimit -n` leaves after 64).
    #[arg(long, value_name = "N")]
    pub max_open_files: Option<usize>,
    /// Build batches on N threads, handed out in order (the same batches for any N; in the
    /// page cache the thread that writes them out is one of the N). Default: one per core.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Fail when a file is reached twice (symlinks, hard links, overlapping globs) instead
    /// of serving it once.
    #[arg(long)]
    pub error_on_duplicate_files: bool,
    /// Never read or write a persisted line index; index in memory at every run.
    #[arg(long, conflicts_with_all = ["index_path", "index_dir"])]
    pub no_index_cache: bool,
    /// Read and write the line index at this path (one file only).
    #[arg(long, conflicts_with = "index_dir")]
    pub index_path: Option<PathBuf>,
    /// Read and write the line indexes of all files in this directory only (default: in
    /// $MMAP_BATCHER_CACHE_DIR if set, else beside each file, else the user cache).
    #[arg(long, value_name = "DIR")]
    pub index_dir: Option<PathBuf>,
}

impl KeepArgs {
    /// `options` with these keep rules and this index location.
    pub fn apply(&self, options: Options) -> CliResult<Options> {
        Ok(Options {
            skip_blank_lines: !self.keep_blank_lines,
            comment_char: if self.no_comment_char { None } else { Some(Options::comment_byte(self.comment_char)?) },
            header_lines: self.header_lines,
            on_bad_file: if self.skip_bad_files { FilePolicy::Skip } else { FilePolicy::Error },
            on_duplicate_file: if self.error_on_duplicate_files { FilePolicy::Error } else { FilePolicy::Skip },
            max_open_files: self.max_open_files.or(options.max_open_files),
            threads: self.threads.or(options.threads),
            index_cache: match (&self.index_path, &self.index_dir, self.no_index_cache) {
                (Some(p), _, _) => IndexCache::Path(p.clone()),
                (None, Some(d), _) => IndexCache::Dir(d.clone()),
                (None, None, true) => IndexCache::Off,
                (None, None, false) => options.index_cache.clone(),
            },
            ..options
        })
    }
}

/// Options of every command that reads files.
#[derive(clap::Args)]
pub struct FileArgs {
    /// Lines per batch.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Number of epochs.
    #[arg(long, default_value_t = 1)]
    pub epochs: u64,
    /// Shuffle seed (printed on stderr when not given, so a run can be reproduced).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The order of each epoch.
    #[arg(long, value_enum, default_value_t = ShuffleMode::Global)]
    pub shuffle: ShuffleMode,
    /// Serve lines in file order (same as --shuffle none).
    #[arg(long)]
    pub no_shuffle: bool,
    /// Block shuffle: bytes per block.
    #[arg(long, default_value_t = Shuffle::DEFAULT_BLOCK_BYTES)]
    pub shuffle_block: u64,
    /// Block shuffle: blocks per window (lines are shuffled within a window).
    #[arg(long, default_value_t = Shuffle::DEFAULT_WINDOW_BLOCKS)]
    pub shuffle_window: u64,
    /// Serve the last partial batch of each epoch instead of dropping it.
    #[arg(long, conflicts_with = "drop_leftovers")]
    pub keep_leftovers: bool,
    /// Drop the last partial batch of each epoch.
    #[arg(long)]
    pub drop_leftovers: bool,
    #[command(flatten)]
    pub keep: KeepArgs,
    /// Keep the `\n` / `\r\n` at the end of each line in JSON and Arrow output.
    #[arg(long)]
    pub keep_terminator: bool,
    /// Serve lines as binary (BinaryView) instead of UTF-8 strings (Utf8View).
    #[arg(long)]
    pub binary: bool,
    /// Serve only shard I of N of every epoch (I/N, e.g. 0/4): N processes split each epoch exactly.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Give every shard the same number of batches (drops the remainder of each epoch's order).
    #[arg(long)]
    pub even_shards: bool,
    /// How reads are planned.
    #[arg(long, value_enum, default_value_t = IoPolicy::Auto)]
    pub io: IoPolicy,
    /// Serve zero-copy views even of files another user can write (by default their lines are read and validated: a writer could change mapped bytes without a trace).
    #[arg(long)]
    pub trust_files: bool,
    #[command(flatten)]
    pub mixture: MixtureArgs,
    #[command(flatten)]
    pub records: RecordArgs,
}

/// JSON Lines: fields of each record instead of the whole line.
#[derive(clap::Args, Default)]
pub struct RecordArgs {
    /// Serve this field of each JSON record as the `line` (a dotted path like meta.title,
    /// or a JSON Pointer like /a.b/c); a record without it is a bad record.
    #[arg(long, value_name = "PATH")]
    pub field: Option<String>,
    /// More fields, each a column of its own named as written (comma-separated, or
    /// repeat the flag): strings decoded, other values as JSON text, null where absent.
    #[arg(long, value_name = "PATH,...", value_delimiter = ',')]
    pub fields: Vec<String>,
    /// What a bad record does (not a JSON object, or without its --field string).
    #[arg(long, value_enum, default_value_t = RecordPolicy::Error)]
    pub on_bad_record: RecordPolicy,
}

/// A mixture of named sources, instead of the positional files.
#[derive(clap::Args, Default)]
pub struct MixtureArgs {
    /// A named source of a mixture: NAME=PATH (a path or glob). Repeat it for more sources,
    /// and with the same NAME for more paths of one source. Every batch holds each
    /// source's share of its lines; the output gets a `source` column.
    #[arg(long = "source", value_name = "NAME=PATH", value_parser = parse_source)]
    pub sources: Vec<(String, String)>,
    /// The weight of a source: NAME=W (W > 0; weights are normalised to sum to one). Give
    /// every source a weight or none (then each serves its line count).
    #[arg(long = "weight", value_name = "NAME=W", value_parser = parse_weight)]
    pub weights: Vec<(String, f64)>,
    /// Lines per epoch (default: every kept line once); more upsamples, fewer subsamples,
    /// split over the sources by their weights.
    #[arg(long, value_name = "N")]
    pub lines_per_epoch: Option<u64>,
}

fn parse_source(s: &str) -> Result<(String, String), String> {
    let (name, path) = s.split_once('=').ok_or_else(|| format!("expected NAME=PATH, got {s:?}"))?;
    if name.is_empty() || path.is_empty() {
        return Err(format!("expected NAME=PATH, got {s:?}"));
    }
    Ok((name.to_string(), path.to_string()))
}

fn parse_weight(s: &str) -> Result<(String, f64), String> {
    let (name, w) = s.split_once('=').ok_or_else(|| format!("expected NAME=W, got {s:?}"))?;
    let w: f64 = w.trim().parse().map_err(|e| format!("{w:?}: {e}"))?;
    Ok((name.to_string(), w))
}

impl MixtureArgs {
    /// The sources named, each with its paths expanded and its weight; `None` without
    /// `--source`. A weight of a source not named is an error.
    pub(crate) fn sources(&self) -> CliResult<Option<Vec<crate::Source>>> {
        if self.sources.is_empty() {
            if !self.weights.is_empty() {
                return Err(CliError::Usage("--weight names a --source: give the sources with --source NAME=PATH".into()));
            }
            return Ok(None);
        }
        let mut sources: Vec<(String, Vec<String>)> = Vec::new();
        for (name, path) in &self.sources {
            match sources.iter_mut().find(|(n, _)| n == name) {
                Some((_, paths)) => paths.push(path.clone()),
                None => sources.push((name.clone(), vec![path.clone()])),
            }
        }
        for (name, _) in &self.weights {
            if !sources.iter().any(|(n, _)| n == name) {
                let known: Vec<&str> = sources.iter().map(|(n, _)| n.as_str()).collect();
                return Err(CliError::Usage(format!("--weight {name}=…: no --source is named {name:?} (sources: {})", known.join(", "))));
            }
        }
        let mut out = Vec::new();
        for (name, inputs) in sources {
            let weight = self.weights.iter().rev().find(|(n, _)| *n == name).map(|&(_, w)| w);
            out.push(crate::Source { paths: crate::expand_inputs(&inputs)?, name, weight });
        }
        Ok(Some(out))
    }
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    let (i, n) = s.split_once('/').ok_or_else(|| format!("expected I/N, got {s:?}"))?;
    let parse = |x: &str| x.trim().parse::<u64>().map_err(|e| format!("{x:?}: {e}"));
    Shard::new(parse(i)?, parse(n)?).map_err(|e| e.to_string())
}

impl FileArgs {
    /// The options these arguments ask for; `keep_leftovers_by_default` for commands that
    /// should see every line (sql).
    pub fn options(&self, keep_leftovers_by_default: bool) -> CliResult<Options> {
        let mode = if self.no_shuffle { ShuffleMode::None } else { self.shuffle };
        let shuffle = Shuffle::of(mode, self.shuffle_block, self.shuffle_window);
        let options = self.keep.apply(Options {
            batch_size: self.batch_size,
            shuffle,
            ignore_leftovers: if keep_leftovers_by_default { self.drop_leftovers } else { !self.keep_leftovers },
            even_shards: self.even_shards,
            seed: self.seed,
            keep_terminator: self.keep_terminator,
            line_type: if self.binary { LineType::Binary } else { LineType::Utf8 },
            io: self.io,
            trust_files: self.trust_files,
            lines_per_epoch: self.mixture.lines_per_epoch,
            field: self.records.field.clone(),
            fields: self.records.fields.clone(),
            on_bad_record: self.records.on_bad_record,
            ..Options::default()
        })?;
        options.validate()?;
        Ok(options)
    }

    /// The shard to serve.
    pub fn shard(&self) -> Shard {
        self.shard.unwrap_or(Shard::WHOLE)
    }
}

/// Opens the positional `inputs` as one corpus, or the `--source`s of `mixture` as a
/// mixture (then no positional input may be given), as [`open`] does.
pub fn open_inputs(inputs: &[String], mixture: &MixtureArgs, options: Options) -> CliResult<Batcher> {
    let Some(sources) = mixture.sources()? else {
        return open(inputs, options);
    };
    if !inputs.is_empty() {
        return Err(CliError::Usage(format!("{:?}: give the files of a mixture with --source NAME=PATH, not as positional inputs", inputs[0])));
    }
    if matches!(options.index_cache, IndexCache::Path(_)) {
        return Err(CliError::Usage("--index-path names the index of one file; a mixture has several".into()));
    }
    let paths: Vec<PathBuf> = sources.iter().flat_map(|s| s.paths.iter().cloned()).collect();
    let options = Options { file_column: true, ..options };
    let given = options.clone();
    opened(&paths, options, |progress| Batcher::open_sources_with(&sources, given, progress, &crate::NeverCancel))
}

/// Expands `inputs` (paths, globs, `-`) and opens them as one corpus, drawing a progress
/// bar on stderr while indexing large files when stderr is a terminal, and printing the
/// open's notices and the seed it picked.
pub fn open(inputs: &[String], options: Options) -> CliResult<Batcher> {
    let paths = crate::expand_inputs(inputs)?;
    let options = Options { file_column: crate::inputs_name_a_corpus(inputs), ..options };
    let one_path = |c: &IndexCache| matches!(c, IndexCache::Path(_));
    let explicit = one_path(&options.index_cache) || matches!(&options.index_cache, IndexCache::ReadOnly(inner) if one_path(inner));
    if explicit && paths.len() > 1 {
        return Err(CliError::Usage("--index-path names the index of one file; several were given".into()));
    }
    opened(&paths, options.clone(), |progress| Batcher::open_with(&paths, options.clone(), progress, &crate::NeverCancel))
}

/// Runs `open` with a progress bar over the bytes of `paths` when stderr is a terminal,
/// then prints the open's notices and the seed it picked.
fn opened(paths: &[PathBuf], options: Options, open: impl FnOnce(&(dyn Fn(u64) + Sync)) -> crate::Result<Batcher>) -> CliResult<Batcher> {
    // The bytes to index are summed only for a bar someone sees: a `stat` a file, of about
    // twenty system calls a file in the reopen of a tree.
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr())
        .then(|| crate::cli::output::progress_bar(paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum(), "indexing", true))
        .flatten();
    let batcher = match &bar {
        Some(bar) => open(&|n| bar.inc(n)),
        None => open(&|_| {}),
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let batcher = batcher?;
    for n in batcher.notices() {
        notice(n);
    }
    if options.seed.is_none() && options.shuffle.is_shuffled() {
        notice(&format!("seed {} (pass --seed {} to reproduce this run)", batcher.seed(), batcher.seed()));
    }
    Ok(batcher)
}
