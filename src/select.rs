//! Which rows a scan reads: the one row filter of the SQL table, the Polars scan and the
//! Python scans. A [`RowFilter`] is a conjunction of ranges of `epoch`, `batch` and
//! `line_number`, a set of files and a set of sources; [`RowFilter::select`] turns it into the
//! `(epoch, batch)` units to read and the line ids to keep, from the index alone.

use std::ops::Range;
use std::sync::Arc;

use crate::batcher::Batcher;
use crate::error::Result;
use crate::plan::Units;

const ALL: Range<u64> = 0..u64::MAX;

/// Rows whose `epoch`, `batch` and `line_number` lie in these half-open ranges and whose
/// file is one of `files` (every file when `None`). Each method narrows the filter: calls
/// combine with AND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFilter {
    epochs: Range<u64>,
    batches: Range<u64>,
    line_numbers: Range<u64>,
    files: Option<Vec<String>>,
    sources: Option<Vec<String>>,
}

impl Default for RowFilter {
    fn default() -> Self {
        RowFilter { epochs: ALL, batches: ALL, line_numbers: ALL, files: None, sources: None }
    }
}

/// What a [`RowFilter`] reads of a corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The `(epoch, batch)` units that can hold matching rows.
    pub units: Units,
    /// The line ids that match (sorted, disjoint ranges); `None`: every line.
    pub lines: Option<Arc<[Range<u64>]>>,
}

impl RowFilter {
    /// Only epochs in `r`.
    pub fn epochs(mut self, r: Range<u64>) -> Self {
        self.epochs = intersect(&self.epochs, &r);
        self
    }

    /// Only batches in `r`.
    pub fn batches(mut self, r: Range<u64>) -> Self {
        self.batches = intersect(&self.batches, &r);
        self
    }

    /// Only lines whose physical line number (1-based, per file) is in `r`.
    pub fn line_numbers(mut self, r: Range<u64>) -> Self {
        self.line_numbers = intersect(&self.line_numbers, &r);
        self
    }

    /// Only lines of the files among `paths` (spelled as the `file` column shows them).
    pub fn files<S: Into<String>>(mut self, paths: impl IntoIterator<Item = S>) -> Self {
        self.files = Some(narrowed(self.files, paths));
        self
    }

    /// Only lines of the named sources among `names`.
    pub fn sources<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.sources = Some(narrowed(self.sources, names));
        self
    }

    /// The units of epochs `0..epochs` and the lines of `batcher` this filter reads.
    pub fn select(&self, batcher: &Batcher, epochs: u64) -> Result<Selection> {
        let mut units = Units { epochs: intersect(&(0..epochs), &self.epochs), batches: intersect(&(0..batcher.num_batches()), &self.batches) };
        if self.line_numbers == ALL && self.files.is_none() && self.sources.is_none() {
            return Ok(Selection { units, lines: None });
        }
        let lines = self.line_ids(batcher)?;
        if !batcher.options().shuffle.is_shuffled() && !batcher.is_mixture() {
            // File order: line id k sits in batch k / batch_size, so skip whole batches.
            let size = batcher.options().batch_size as u64;
            let hull = match (lines.first(), lines.last()) {
                (Some(first), Some(last)) => first.start / size..last.end.div_ceil(size),
                _ => 0..0,
            };
            units.batches = intersect(&units.batches, &hull);
        }
        Ok(Selection { units, lines: Some(lines.into()) })
    }

    /// The ids of the lines of the chosen files within the line-number range, found by a
    /// binary search of each file's index.
    fn line_ids(&self, b: &Batcher) -> Result<Vec<Range<u64>>> {
        let mut ranges = Vec::new();
        for (f, path) in b.paths().enumerate() {
            if self.files.as_ref().is_some_and(|names| !names.iter().any(|n| path.to_string_lossy() == n.as_str())) {
                continue;
            }
            if let Some(names) = &self.sources {
                let source = b.sources().get(b.source_of_file(f)).map(|s| s.name.as_str());
                if !source.is_some_and(|s| names.iter().any(|n| n == s)) {
                    continue;
                }
            }
            let ids = b.file_lines(f);
            let (lo, hi) = if self.line_numbers == ALL {
                (0, ids.end - ids.start)
            } else {
                let index = &b.corpus().file(f)?.index;
                let hi = if self.line_numbers.end == u64::MAX { index.len() } else { index.first_at_or_after_line(self.line_numbers.end) };
                (index.first_at_or_after_line(self.line_numbers.start), hi)
            };
            if lo < hi {
                ranges.push(ids.start + lo..ids.start + hi);
            }
        }
        Ok(ranges)
    }
}

/// The names of `prev` (every name when `None`) that are also among `names`.
fn narrowed<S: Into<String>>(prev: Option<Vec<String>>, names: impl IntoIterator<Item = S>) -> Vec<String> {
    let names: Vec<String> = names.into_iter().map(Into::into).collect();
    match prev {
        Some(prev) => prev.into_iter().filter(|p| names.contains(p)).collect(),
        None => names,
    }
}

/// The intersection of two half-open ranges (an empty one starts where it would).
pub(crate) fn intersect(a: &Range<u64>, b: &Range<u64>) -> Range<u64> {
    let start = a.start.max(b.start);
    start..a.end.min(b.end).max(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{IndexCache, Options, Shuffle};
    use std::io::Write;

    fn corpus(files: &[&str], shuffle: Shuffle) -> (Vec<tempfile::NamedTempFile>, Batcher) {
        let tmp: Vec<_> = files
            .iter()
            .map(|text| {
                let mut f = tempfile::NamedTempFile::new().unwrap();
                f.write_all(text.as_bytes()).unwrap();
                f
            })
            .collect();
        let paths: Vec<_> = tmp.iter().map(|f| f.path().to_path_buf()).collect();
        let o = Options { batch_size: 2, shuffle, ignore_leftovers: false, seed: Some(1), index_cache: IndexCache::Off, ..Default::default() };
        (tmp, Batcher::open_many(&paths, o).unwrap())
    }

    /// The ids a filter keeps, by brute force over every line's position.
    fn naive(b: &Batcher, f: &RowFilter) -> Vec<u64> {
        (0..b.num_lines())
            .filter(|&id| {
                let (file, number, _) = b.line_position(id).unwrap();
                let path = b.paths().nth(file).unwrap().to_string_lossy().into_owned();
                f.line_numbers.contains(&number) && f.files.as_ref().is_none_or(|names| names.contains(&path))
            })
            .collect()
    }

    fn kept(s: &Selection, b: &Batcher) -> Vec<u64> {
        (0..b.num_lines()).filter(|id| s.lines.as_ref().is_none_or(|r| r.iter().any(|r| r.contains(id)))).collect()
    }

    #[test]
    fn lines_match_a_brute_force_filter() {
        let (_tmp, b) = corpus(&["a\n\nb\n#c\nd\ne\n", "f\ng\n\nh\n"], Shuffle::Global);
        let second = b.paths().nth(1).unwrap().to_string_lossy().into_owned();
        for f in [
            RowFilter::default(),
            RowFilter::default().line_numbers(3..6),
            RowFilter::default().line_numbers(5..u64::MAX),
            RowFilter::default().files([second.clone()]),
            RowFilter::default().files([second.clone()]).line_numbers(0..3),
            RowFilter::default().files([second.clone()]).files(["nope"]),
            RowFilter::default().line_numbers(2..4).line_numbers(3..9),
        ] {
            let s = f.select(&b, 2).unwrap();
            assert_eq!(kept(&s, &b), naive(&b, &f), "{f:?}");
            assert_eq!(s.units, Units { epochs: 0..2, batches: 0..b.num_batches() }, "a shuffled scan reads every batch");
        }
    }

    #[test]
    fn file_order_skips_batches_without_a_match() {
        let (_tmp, b) = corpus(&["1\n2\n3\n4\n5\n6\n7\n"], Shuffle::None);
        let s = RowFilter::default().line_numbers(5..6).epochs(1..9).select(&b, 3).unwrap();
        assert_eq!(s.units, Units { epochs: 1..3, batches: 2..3 });
        let none = RowFilter::default().files(["elsewhere"]).select(&b, 3).unwrap();
        assert!(none.units.batches.is_empty() && none.lines.unwrap().is_empty());
    }
}
