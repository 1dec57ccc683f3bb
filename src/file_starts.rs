//! Where each file's lines start in a corpus's one space of line ids, and the file of a
//! line id in a few loads.
//!
//! A binary search over 30,000 files' starts is fifteen dependent loads a line, and was the
//! most expensive instruction of a global epoch over a tree of 30,000 small files (`perf
//! annotate`: a third of the samples of finding a batch's lines). A jump table of the file
//! at every 2^`shift`-th id (about one entry per file) narrows the search to the files
//! between two entries, usually one or two.

/// The first line id of each file, and the jump table over them.
#[derive(Debug)]
pub(crate) struct FileStarts {
    /// `first[f]`: the id of file `f`'s first line; `first[len]`: the total.
    first: Vec<u64>,
    shift: u32,
    /// `jump[b]`: the file holding id `b << shift`.
    jump: Vec<u32>,
}

impl FileStarts {
    /// From `first` (non-decreasing, starting at 0, ending at the total; one entry more
    /// than there are files).
    pub(crate) fn new(first: Vec<u64>) -> Self {
        let files = first.len().saturating_sub(1).max(1) as u64;
        let total = first.last().copied().unwrap_or(0);
        // About one entry per file: ids per entry the largest power of two at most the mean.
        let shift = (total / files).max(1).ilog2();
        let blocks = if total == 0 { 0 } else { ((total - 1) >> shift) + 1 };
        let jump = (0..blocks).map(|b| (first.partition_point(|&s| s <= b << shift) - 1) as u32).collect();
        FileStarts { first, shift, jump }
    }

    /// Number of files.
    pub(crate) fn files(&self) -> usize {
        self.first.len() - 1
    }

    /// The total of lines.
    pub(crate) fn total(&self) -> u64 {
        *self.first.last().unwrap_or(&0)
    }

    /// The line-id range of file `f`.
    pub(crate) fn lines_of(&self, f: usize) -> std::ops::Range<u64> {
        self.first[f]..self.first[f + 1]
    }

    /// The file holding line `id` (below the total), and the line's id within it.
    #[inline]
    pub(crate) fn locate(&self, id: u64) -> (usize, u64) {
        let b = (id >> self.shift) as usize;
        let Some(&lo) = self.jump.get(b) else {
            // Past the end: the last file, as a search of `first` would say.
            let f = self.files().saturating_sub(1);
            return (f, id - self.first[f]);
        };
        let lo = lo as usize;
        // The file of the next entry holds an id above `id`, so the file of `id` is at most it.
        let hi = self.jump.get(b + 1).map_or(self.files() - 1, |&h| h as usize);
        let f = lo + self.first[lo + 1..=hi + 1].partition_point(|&s| s <= id);
        (f, id - self.first[f])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn locate_agrees_with_a_search_of_the_starts(lines in proptest::collection::vec(prop_oneof![Just(0u64), 1u64..4, 1u64..200, Just(5000u64)], 1..60)) {
            let mut first = vec![0u64];
            for n in &lines {
                first.push(first.last().unwrap() + n);
            }
            let starts = FileStarts::new(first.clone());
            for id in 0..starts.total() {
                let f = first.partition_point(|&s| s <= id) - 1;
                prop_assert_eq!(starts.locate(id), (f, id - first[f]), "id {}", id);
            }
        }
    }
}
