//! Resume state: where a consumer is in the epochs, in a few integers.
//!
//! Every epoch's order is a pure function of the seed, so a position needs no data: the
//! epoch, which batches of it were served before the consumer's plan started
//! ([`Served`]), the consumer's [`Shard`], and how many batches of its plan it served.
//! A state is under 1 KiB whatever the corpus size, and loading one costs O(1).
//!
//! # The elastic contract
//! Shards advance in lockstep (as DDP ranks do) and a data loader consumes its workers
//! round-robin, so the states of all `N` shards together describe exactly which batches
//! of the epoch were served. [`combine`] turns them into one state with `shard = 0 of 1`,
//! which any new layout of `M` shards loads: the rest of the epoch is split over the `M`
//! shards, each batch served once. A single shard's state resumes that same shard only.

use crate::error::{Error, Result};
use crate::options::{Options, Shuffle};
use crate::plan::{Served, Shard, ShardPlan};

/// The format of [`State`] this build writes and reads.
pub const STATE_FORMAT: u32 = 1;

/// The options that decide the order of the batches (and so what a position means).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderOptions {
    /// [`Options::batch_size`].
    pub batch_size: u64,
    /// [`Options::shuffle`].
    pub shuffle: Shuffle,
    /// [`Options::ignore_leftovers`].
    pub ignore_leftovers: bool,
    /// [`Options::even_shards`].
    pub even_shards: bool,
    /// [`Options::skip_blank_lines`].
    pub skip_blank_lines: bool,
    /// [`Options::comment_char`].
    pub comment_char: Option<u8>,
    /// The sources and their lines per epoch, when an epoch is not the corpus once over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<crate::sources::SourceIdentity>>,
}

impl OrderOptions {
    /// The order-deciding part of `options`.
    pub fn of(options: &Options) -> Self {
        OrderOptions {
            batch_size: options.batch_size as u64,
            shuffle: options.shuffle,
            ignore_leftovers: options.ignore_leftovers,
            even_shards: options.even_shards,
            skip_blank_lines: options.skip_blank_lines,
            comment_char: options.comment_char,
            sources: None,
        }
    }

    /// What differs between `self` (the state's) and `now`, in words.
    fn difference(&self, now: &OrderOptions) -> Option<String> {
        let mut d = Vec::new();
        if self.batch_size != now.batch_size {
            d.push(format!("batch_size {} vs {}", self.batch_size, now.batch_size));
        }
        if self.shuffle != now.shuffle {
            d.push(format!("shuffle {:?} vs {:?}", self.shuffle, now.shuffle));
        }
        if self.ignore_leftovers != now.ignore_leftovers {
            d.push(format!("ignore_leftovers {} vs {}", self.ignore_leftovers, now.ignore_leftovers));
        }
        if self.even_shards != now.even_shards {
            d.push(format!("even_shards {} vs {}", self.even_shards, now.even_shards));
        }
        if (self.skip_blank_lines, self.comment_char) != (now.skip_blank_lines, now.comment_char) {
            d.push("the blank-line or comment rules".into());
        }
        if self.sources != now.sources {
            d.push(format!("the sources or their lines per epoch ({} vs {})", describe_sources(&self.sources), describe_sources(&now.sources)));
        }
        (!d.is_empty()).then(|| d.join(", "))
    }
}

/// The sources of a state, in words: `web: 700 of 1000 lines per epoch, code: …`.
fn describe_sources(sources: &Option<Vec<crate::sources::SourceIdentity>>) -> String {
    match sources {
        None => "the corpus once over".into(),
        Some(s) => s
            .iter()
            .map(|s| format!("{}: {} of {} lines per epoch", if s.name.is_empty() { "corpus" } else { &s.name }, s.per_epoch, s.lines))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// What the state knows of the corpus it was taken on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CorpusIdentity {
    /// Number of files.
    pub files: u64,
    /// Total bytes.
    pub bytes: u64,
    /// Kept lines.
    pub lines: u64,
    /// Modification time of the newest file, nanoseconds (recorded, not compared: a copy
    /// of the corpus on another machine has other times and the same content).
    pub mtime_ns: i64,
    /// A hash of each file's size, line count and sampled bytes (head, tail, 16 spots).
    pub fingerprint: u64,
}

impl CorpusIdentity {
    fn difference(&self, now: &CorpusIdentity) -> Option<String> {
        if self.files != now.files {
            Some(format!("{} files vs {}", self.files, now.files))
        } else if self.bytes != now.bytes {
            Some(format!("{} bytes vs {}", self.bytes, now.bytes))
        } else if self.lines != now.lines {
            Some(format!("{} lines vs {}", self.lines, now.lines))
        } else if self.fingerprint != now.fingerprint {
            Some("the content differs (fingerprint)".into())
        } else {
            None
        }
    }
}

/// Where a consumer is: see the module docs. Serialises to a small JSON object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// [`STATE_FORMAT`].
    pub format: u32,
    /// The shuffle seed.
    pub seed: u64,
    /// The epoch in progress.
    pub epoch: u64,
    /// Batches of the epoch served before this shard's plan started.
    pub base: Served,
    /// The shard this state was taken in.
    pub shard: Shard,
    /// Batches of its plan this shard has served.
    pub done: u64,
    /// The options that decide the order.
    pub order: OrderOptions,
    /// The corpus.
    pub corpus: CorpusIdentity,
}

impl State {
    /// Checks that this state can be loaded into a batcher with `seed`, `order` and `corpus`.
    pub fn check_matches(&self, seed: u64, order: &OrderOptions, corpus: &CorpusIdentity) -> Result<()> {
        let mismatch = |what: String| Err(Error::StateMismatch { what });
        if self.format != STATE_FORMAT {
            return mismatch(format!("state format {} (this build reads {STATE_FORMAT})", self.format));
        }
        if let Some(d) = self.corpus.difference(corpus) {
            return mismatch(format!("another corpus: {d}"));
        }
        if let Some(d) = self.order.difference(order) {
            return mismatch(format!("options that change the order differ: {d}"));
        }
        // The seed decides nothing in file order.
        if self.seed != seed && order.shuffle.is_shuffled() {
            return mismatch(format!("seed {} vs {seed}", self.seed));
        }
        Ok(())
    }

    /// The batches of the epoch served so far, if this state alone tells them (it was
    /// taken by shard 0 of 1, or is a combination).
    pub fn served(&self, num_batches: u64) -> Option<Served> {
        (self.shard.count == 1).then(|| advance(&self.base, &[(0, self.done)], 1, num_batches))
    }
}

/// Batches served once shard `j` of `m` served `done_j` batches of its plan after `base`.
fn advance(base: &Served, done: &[(u64, u64)], m: u64, num_batches: u64) -> Served {
    // Ranks (among the batches not served at `base`) that the shards served.
    let remaining = base.remaining(num_batches);
    let mut ranks: Vec<u64> = done.iter().flat_map(|&(j, c)| (0..c).map(move |i| j + i * m)).filter(|&t| t < remaining).collect();
    ranks.sort_unstable();
    // The first rank not served.
    let first_gap = ranks.iter().enumerate().find(|&(i, &t)| t != i as u64).map_or(ranks.len() as u64, |(i, _)| i as u64);
    let position = if first_gap >= remaining { num_batches } else { base.select(first_gap) };
    let mut ahead: Vec<u64> = ranks.iter().filter(|&&t| t > first_gap).map(|&t| base.select(t)).collect();
    ahead.extend(base.served_ahead.iter().filter(|&&s| s > position));
    ahead.sort_unstable();
    ahead.dedup();
    Served { position, served_ahead: ahead }
}

/// Combines the states of all shards `0..N` of one layout, taken at one time, into one
/// state (shard 0 of 1) that any layout can load. Shards that finished the epoch and moved
/// on to the next one without serving from it count as done.
///
/// `num_batches` is the number of batches per epoch and `even` the batcher's
/// [`Options::even_shards`].
pub fn combine(states: &[State], num_batches: u64, even: bool) -> Result<State> {
    let invalid = |message: String| Err(Error::InvalidState { message });
    let Some(first) = states.first() else { return invalid("no states to combine".into()) };
    let m = first.shard.count;
    let mut seen = vec![false; usize::try_from(m).unwrap_or(usize::MAX).min(states.len() + 1)];
    if states.len() as u64 != m {
        return invalid(format!("{} states for {m} shards: every shard's state is needed (or lockstep, if the ranks ran in lockstep)", states.len()));
    }
    for s in states {
        if s.shard.count != m || s.format != first.format || s.seed != first.seed || s.order != first.order || s.corpus != first.corpus {
            return invalid("the states are not from one run and one shard layout".into());
        }
        let slot = seen.get_mut(s.shard.index as usize).ok_or_else(|| Error::InvalidState { message: "bad shard index".into() })?;
        if std::mem::replace(slot, true) {
            return invalid(format!("shard {} appears twice", s.shard.index));
        }
    }
    let epoch = states.iter().map(|s| s.epoch).min().unwrap_or(0);
    let current: Vec<&State> = states.iter().filter(|s| s.epoch == epoch).collect();
    let later_fresh = states.iter().filter(|s| s.epoch != epoch).all(|s| s.epoch == epoch + 1 && s.done == 0 && s.base == Served::NONE);
    if !later_fresh {
        return invalid("the states are more than one epoch apart".into());
    }
    let base = current[0].base.clone();
    if current.iter().any(|s| s.base != base) {
        return invalid("the states of the epoch started from different positions".into());
    }
    let plan_len = |j: u64| ShardPlan::new(num_batches, base.clone(), Shard { index: j, count: m }, even).len();
    let done: Vec<(u64, u64)> = states.iter().map(|s| (s.shard.index, if s.epoch == epoch { s.done } else { plan_len(s.shard.index) })).collect();
    let all_finished = done.iter().all(|&(j, c)| c >= plan_len(j));
    let (epoch, served) = if all_finished { (epoch + 1, Served::NONE) } else { (epoch, advance(&base, &done, m, num_batches)) };
    Ok(State { epoch, base: served, shard: Shard::WHOLE, done: 0, ..first.clone() })
}

/// The states of every shard of a layout whose ranks ran in lockstep, from the states of
/// one rank's shards (DDP with even shards, where scripts often keep rank 0's checkpoint only).
///
/// `states` are shards `r·k … r·k + k − 1` of `N` (the `k` data-loader workers of rank `r`,
/// with `k` dividing `N`); in lockstep, worker `w` of every rank served what worker `w` of
/// rank `r` served, so each state is copied to the same worker of every rank. [`combine`]
/// then gives the one state any layout loads. Exact only when the ranks did run in
/// lockstep (the same number of steps, each rank's loader taking its workers in turn).
pub fn lockstep(states: &[State]) -> Result<Vec<State>> {
    let invalid = |message: String| Err(Error::InvalidState { message });
    let Some(first) = states.first() else { return invalid("no states to replicate".into()) };
    let k = states.len() as u64;
    let n = first.shard.count;
    if n % k != 0 {
        return invalid(format!("{k} states of {n} shards: lockstep needs the states of one rank's workers (a divisor of {n})"));
    }
    let start = states.iter().map(|s| s.shard.index).min().unwrap_or(0);
    let mut indices: Vec<u64> = states.iter().map(|s| s.shard.index).collect();
    indices.sort_unstable();
    let contiguous = indices.iter().enumerate().all(|(i, &x)| x == start + i as u64);
    if start % k != 0 || !contiguous || states.iter().any(|s| s.shard.count != n) {
        return invalid(format!("the states are not the {k} workers of one rank of a {n}-shard layout"));
    }
    Ok((0..n / k)
        .flat_map(|rank| states.iter().map(move |s| State { shard: Shard { index: rank * k + (s.shard.index - start), count: n }, ..s.clone() }))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state(epoch: u64, base: Served, shard: Shard, done: u64) -> State {
        State {
            format: STATE_FORMAT,
            seed: 1,
            epoch,
            base,
            shard,
            done,
            order: OrderOptions::of(&Options::default()),
            corpus: CorpusIdentity { files: 1, bytes: 10, lines: 5, mtime_ns: 0, fingerprint: 9 },
        }
    }

    proptest! {
        /// Serve a random number of batches on N shards, combine, resume on M shards:
        /// every batch of the epoch is served exactly once, over any number of reshardings.
        #[test]
        fn elastic_resume_is_exactly_once(
            nb in 0u64..80,
            layouts in proptest::collection::vec((1u64..9, proptest::collection::vec(0u64..12, 8)), 1..4),
            even in any::<bool>(),
        ) {
            let mut base = Served::NONE;
            let mut served: Vec<u64> = Vec::new();
            let mut epoch = 0;
            for (m, progress) in layouts {
                if epoch > 0 { break; }
                let mut states = Vec::new();
                for j in 0..m {
                    let plan = ShardPlan::new(nb, base.clone(), Shard { index: j, count: m }, even);
                    let c = progress[j as usize % progress.len()].min(plan.len());
                    served.extend(plan.batches().take(c as usize));
                    states.push(state(0, base.clone(), Shard { index: j, count: m }, c));
                }
                let combined = combine(&states, nb, even).unwrap();
                epoch = combined.epoch;
                base = combined.base;
            }
            // Finish the epoch on one shard.
            if epoch == 0 {
                let plan = ShardPlan::new(nb, base.clone(), Shard::WHOLE, even);
                served.extend(plan.batches());
            }
            let mut sorted = served.clone();
            sorted.sort_unstable();
            let before = sorted.len();
            sorted.dedup();
            prop_assert_eq!(before, sorted.len(), "a batch served twice");
            if !even {
                prop_assert_eq!(sorted, (0..nb).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn lockstep_replicates_one_rank_to_every_rank() {
        // 3 ranks × 2 workers; rank 1's workers served 2 and 1 batches of their plans.
        let w = |j| Shard { index: j, count: 6 };
        let rank1 = [state(0, Served::NONE, w(2), 2), state(0, Served::NONE, w(3), 1)];
        let all = lockstep(&rank1).unwrap();
        let got: Vec<(u64, u64)> = all.iter().map(|s| (s.shard.index, s.done)).collect();
        assert_eq!(got, [(0, 2), (1, 1), (2, 2), (3, 1), (4, 2), (5, 1)]);
        // Shard j serves ranks j, j + 6, …: served 0..=6, 8 and 10.
        let c = combine(&all, 40, false).unwrap();
        assert_eq!(c.base, Served { position: 7, served_ahead: vec![8, 10] });
        assert!(lockstep(&[state(0, Served::NONE, w(1), 1), state(0, Served::NONE, w(2), 1)]).is_err());
        assert!(lockstep(&vec![state(0, Served::NONE, w(0), 1); 4]).is_err());
        assert!(lockstep(&[]).is_err());
    }

    #[test]
    fn finished_shards_and_bad_sets() {
        let w = |j| Shard { index: j, count: 2 };
        // Shard 0 finished (moved to epoch 1), shard 1 served 1 of its 2 batches of 4.
        let s = [state(1, Served::NONE, w(0), 0), state(0, Served::NONE, w(1), 1)];
        let c = combine(&s, 4, false).unwrap();
        assert_eq!((c.epoch, c.base.clone()), (0, Served { position: 3, served_ahead: vec![] }));
        let done = [state(1, Served::NONE, w(0), 0), state(0, Served::NONE, w(1), 2)];
        assert_eq!(combine(&done, 4, false).unwrap().epoch, 1);
        assert!(combine(&s[..1], 4, false).is_err());
        assert!(combine(&[s[1].clone(), s[1].clone()], 4, false).is_err());
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.len() < 1024, "{json}");
        assert_eq!(serde_json::from_str::<State>(&json).unwrap(), c);
    }
}
