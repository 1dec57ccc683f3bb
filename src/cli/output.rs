//! Terminal output helpers: progress bars drawn only on a terminal.

use std::io::IsTerminal;

/// A progress bar on stderr over `total` (bytes when `bytes`, batches otherwise), or
/// `None` when stderr is not a terminal or the work is small.
pub fn progress_bar(total: u64, what: &str, bytes: bool) -> Option<indicatif::ProgressBar> {
    let small = if bytes { total < 64 << 20 } else { total < 1000 };
    if !std::io::stderr().is_terminal() || small {
        return None;
    }
    let template = if bytes {
        format!("{what} {{bar:40}} {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, {{eta}})")
    } else {
        format!("{what} {{bar:40}} {{pos}}/{{len}} batches ({{per_sec}}, {{eta}})")
    };
    let style = indicatif::ProgressStyle::with_template(&template).ok()?;
    Some(indicatif::ProgressBar::new(total).with_style(style))
}

/// Refuses an output path that is one of the corpus's files (same device and inode): a
/// typo like `ipc d.txt -o d.txt` must not truncate the input.
pub fn refuse_input(path: &std::path::Path, batcher: &crate::Batcher) -> crate::cli::error::CliResult {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else { return Ok(()) };
    for (f, input) in batcher.paths().enumerate() {
        let id = batcher.identity(f);
        if (meta.dev(), meta.ino()) == (id.dev, id.ino) {
            return Err(crate::cli::error::CliError::Usage(format!(
                "refusing to write {}: it is the input file {}",
                path.display(),
                input.display()
            )));
        }
    }
    Ok(())
}
