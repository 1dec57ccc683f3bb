//! Named sources of a mixture, as given and as served: which files each holds, its weight
//! and how many lines it serves per epoch (the apportionment of the epoch's lines by the
//! weights). The order that serves them lives in [`crate::order`]'s mixture.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::order::{BlockLayout, MixSource};

/// One named source of a mixture, as given to [`Batcher::open_sources`](crate::Batcher::open_sources).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Source {
    /// Its name (the `source` column's value).
    pub name: String,
    /// Its files, globs already expanded ([`expand_inputs`](crate::expand_inputs)).
    pub paths: Vec<PathBuf>,
    /// Its weight: every source has one, or none does (then each serves its line count).
    /// Weights are normalised to sum to one.
    pub weight: Option<f64>,
}

/// A source as served.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// Its name.
    pub name: String,
    /// Its files, as indices into the batcher's [`paths`](crate::Batcher::paths).
    pub files: Range<usize>,
    /// Its kept lines.
    pub lines: u64,
    /// Its weight, normalised (without weights: its share of the lines).
    pub weight: f64,
    /// Lines it serves per epoch (before leftovers are dropped).
    pub per_epoch: u64,
}

impl SourceInfo {
    /// Passes over its lines per epoch: above 1 upsampled, below 1 subsampled.
    pub fn passes_per_epoch(&self) -> f64 {
        self.per_epoch as f64 / self.lines.max(1) as f64
    }
}

/// What a resume state records of each source: a state taken with other sources, weights or
/// epoch length means other positions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceIdentity {
    /// The source's name.
    pub name: String,
    /// Its kept lines.
    pub lines: u64,
    /// Lines it serves per epoch.
    pub per_epoch: u64,
}

/// Checks the sources as given: at least one, names unique and non-empty, weights on all
/// or none, each finite and positive.
pub(crate) fn validate(sources: &[Source]) -> Result<()> {
    let bad = |message: String| Err(Error::InvalidOption { message });
    if sources.is_empty() {
        return Err(Error::NoInput { pattern: "(no sources)".into() });
    }
    let mut seen = std::collections::HashSet::new();
    for s in sources {
        if s.name.is_empty() {
            return bad("a source needs a name".into());
        }
        if !seen.insert(s.name.as_str()) {
            return bad(format!("source {:?} is given twice", s.name));
        }
        if s.paths.is_empty() {
            return Err(Error::NoInput { pattern: format!("(source {:?})", s.name) });
        }
        if let Some(w) = s.weight {
            if !(w.is_finite() && w > 0.0) {
                return bad(format!("the weight of source {:?} must be a positive number, got {w}", s.name));
            }
        }
    }
    let weighted: Vec<&str> = sources.iter().filter(|s| s.weight.is_some()).map(|s| s.name.as_str()).collect();
    if !weighted.is_empty() && weighted.len() != sources.len() {
        let missing: Vec<&str> = sources.iter().filter(|s| s.weight.is_none()).map(|s| s.name.as_str()).collect();
        return bad(format!("weights are given for {} but not for {}: give every source a weight, or none", weighted.join(", "), missing.join(", ")));
    }
    Ok(())
}

/// The source of each of the corpus's files (`paths`, in order: a file given twice was kept
/// where it first appeared, skipped files are gone), as ranges of file indices.
pub(crate) fn file_ranges<'a>(sources: &[Source], paths: impl Iterator<Item = &'a Path>) -> Result<Vec<Range<usize>>> {
    let mut owner: HashMap<&Path, usize> = HashMap::new();
    for (i, s) in sources.iter().enumerate() {
        for p in &s.paths {
            owner.entry(p.as_path()).or_insert(i);
        }
    }
    let mut ranges = vec![0..0; sources.len()];
    let mut last = 0;
    for (f, p) in paths.enumerate() {
        let s = *owner.get(p).ok_or_else(|| Error::Internal { message: format!("{} is in no source", p.display()) })?;
        if s < last {
            return Err(Error::Internal { message: "the files of the sources are out of order".into() });
        }
        last = s;
        if ranges[s].is_empty() {
            ranges[s] = f..f;
        }
        ranges[s].end = f + 1;
    }
    Ok(ranges)
}

/// The sources as served, given each one's kept lines: the epoch's `lines_per_epoch`
/// (default: all kept lines) apportioned by the normalised weights (without weights, by
/// the line counts) with the largest-remainder rule, ties to the earlier source.
pub(crate) fn describe(sources: &[Source], files: &[Range<usize>], lines: &[u64], lines_per_epoch: Option<u64>) -> Result<Vec<SourceInfo>> {
    for (s, &n) in sources.iter().zip(lines) {
        if n == 0 {
            return Err(Error::InvalidOption {
                message: format!("source {:?} has no kept lines (its files are empty, skipped, or given by another source)", s.name),
            });
        }
    }
    let total: u64 = lines.iter().sum();
    let epoch = lines_per_epoch.unwrap_or(total);
    if epoch == 0 {
        return Err(Error::InvalidOption { message: "lines_per_epoch must be at least 1".into() });
    }
    let raw: Vec<f64> = sources.iter().zip(lines).map(|(s, &n)| s.weight.unwrap_or(n as f64)).collect();
    let sum: f64 = raw.iter().sum();
    let weights: Vec<f64> = raw.iter().map(|w| w / sum).collect();
    let per_epoch = if lines_per_epoch.is_none() && sources.iter().all(|s| s.weight.is_none()) {
        // Each line once per epoch, exactly (no rounding through the weights).
        lines.to_vec()
    } else {
        apportion(epoch, &weights)
    };
    Ok(sources
        .iter()
        .enumerate()
        .map(|(i, s)| SourceInfo { name: s.name.clone(), files: files[i].clone(), lines: lines[i], weight: weights[i], per_epoch: per_epoch[i] })
        .collect())
}

/// `total` split by `weights` (summing to one): the floors of the quotas, then one more for
/// the largest remainders.
fn apportion(total: u64, weights: &[f64]) -> Vec<u64> {
    let quotas: Vec<f64> = weights.iter().map(|w| w * total as f64).collect();
    let mut shares: Vec<u64> = quotas.iter().map(|q| (q.floor() as u64).min(total)).collect();
    let given: u64 = shares.iter().sum();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    by_remainder.sort_by(|&a, &b| (quotas[b] - quotas[b].floor()).total_cmp(&(quotas[a] - quotas[a].floor())).then(a.cmp(&b)));
    let left = total.saturating_sub(given);
    for &i in by_remainder.iter().cycle().take(left as usize) {
        shares[i] += 1;
    }
    // Rounding of very large totals can overshoot: take the excess from the largest.
    let mut over = shares.iter().sum::<u64>().saturating_sub(total);
    while over > 0 {
        let i = (0..shares.len()).max_by_key(|&i| shares[i]).unwrap_or(0);
        let take = over.min(shares[i]);
        shares[i] -= take;
        over -= take;
    }
    shares
}

/// The order's view of the sources: their line ids, epoch shares and block cuts (taken
/// from the corpus's `blocks`, which cut at every file boundary).
pub(crate) fn mix_sources(infos: &[SourceInfo], line_ranges: &[Range<u64>], blocks: &BlockLayout, block_mode: bool) -> Vec<MixSource> {
    infos
        .iter()
        .zip(line_ranges)
        .map(|(info, r)| {
            let layout = if block_mode {
                let mut starts: Vec<u64> =
                    (0..blocks.num_blocks()).map(|i| blocks.block(i).start).filter(|s| r.contains(s)).map(|s| s - r.start).collect();
                starts.push(r.end - r.start);
                BlockLayout::from_starts(starts)
            } else {
                BlockLayout::single(r.end - r.start)
            };
            MixSource { lines: r.clone(), per_epoch: info.per_epoch, blocks: layout }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, weight: Option<f64>) -> Source {
        Source { name: name.into(), paths: vec![PathBuf::from(name)], weight }
    }

    #[test]
    fn weights_are_checked_and_normalised() {
        assert!(validate(&[source("a", Some(1.0)), source("a", Some(1.0))]).is_err());
        assert!(validate(&[source("a", Some(0.0))]).is_err());
        assert!(validate(&[source("a", Some(-1.0))]).is_err());
        assert!(validate(&[source("a", Some(f64::NAN))]).is_err());
        let e = validate(&[source("a", Some(1.0)), source("b", None)]).unwrap_err().to_string();
        assert!(e.contains("not for b"), "{e}");
        let s = [source("a", Some(7.0)), source("b", Some(2.0)), source("c", Some(1.0))];
        validate(&s).unwrap();
        let d = describe(&s, &[0..1, 1..2, 2..3], &[10, 10, 10], None).unwrap();
        assert_eq!(d.iter().map(|i| i.per_epoch).collect::<Vec<_>>(), vec![21, 6, 3]);
        assert!((d[0].weight - 0.7).abs() < 1e-12 && (d[0].passes_per_epoch() - 2.1).abs() < 1e-12);
        let d = describe(&[source("a", None), source("b", None)], &[0..1, 1..2], &[3, 5], None).unwrap();
        assert_eq!(d.iter().map(|i| i.per_epoch).collect::<Vec<_>>(), vec![3, 5]);
        assert!(describe(&s, &[0..1, 1..1, 1..2], &[10, 0, 10], None).unwrap_err().to_string().contains("\"b\" has no kept lines"));
        assert!(describe(&s, &[0..1, 1..2, 2..3], &[1, 1, 1], Some(0)).is_err());
    }

    #[test]
    fn apportionment_sums_to_the_total() {
        for total in [1u64, 2, 7, 100, 12_345] {
            for w in [vec![0.5, 0.5], vec![0.7, 0.2, 0.1], vec![1.0 / 3.0; 3], vec![0.999, 0.0005, 0.0005]] {
                let a = apportion(total, &w);
                assert_eq!(a.iter().sum::<u64>(), total);
                for (x, w) in a.iter().zip(&w) {
                    assert!((*x as f64 - w * total as f64).abs() < 1.0 + 1e-9);
                }
            }
        }
    }
}
