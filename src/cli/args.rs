//! The options every command that reads files shares, turned into [`Options`] once.

use std::path::PathBuf;

use crate::{Batcher, FilePolicy, IndexCache, IoPolicy, LineType, Options, Shard, Shuffle, ShuffleMode};

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
    /// Build batches ahead on N threads, handed out in order (the same batches for any N).
    /// Default: one per core.
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
    let total: u64 = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let bar = crate::cli::output::progress_bar(total, "indexing", true);
    let batcher = match &bar {
        Some(bar) => Batcher::open_with(&paths, options.clone(), &|n| bar.inc(n), &crate::NeverCancel),
        None => Batcher::open_many(&paths, options.clone()),
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
