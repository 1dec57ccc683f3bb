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
