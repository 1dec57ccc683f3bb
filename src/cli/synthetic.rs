//! `mmap-batcher corpus`: the deterministic benchmark corpus.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use crate::cli::error::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// Output file.
    out: PathBuf,
    /// Number of lines (10 M is about 1 GB).
    #[arg(long, default_value_t = 10_000_000)]
    lines: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Start each line with a label `LABEL<k>` (k in 0..LABELS), sorted into LABELS runs of
    /// equal length: the shuffle-quality benchmark's corpus.
    #[arg(long)]
    labels: Option<u64>,
}

pub fn run(a: Args) -> CliResult {
    let file = std::fs::File::create(&a.out).map_err(|e| crate::Error::Io { path: a.out.clone(), source: e })?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    match a.labels {
        Some(labels) => crate::synthetic::write_labelled_corpus(&mut w, a.lines, labels, a.seed)?,
        None => crate::synthetic::write_corpus(&mut w, a.lines, a.seed)?,
    }
    w.flush()?;
    Ok(())
}
