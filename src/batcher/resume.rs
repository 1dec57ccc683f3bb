//! Resume states of a batcher: what they record of the corpus, where they resume, and how
//! several combine.

use crate::error::{Error, Result};
use crate::plan::{Served, Shard, ShardPlan};
use crate::state::{CorpusIdentity, OrderOptions, State, STATE_FORMAT};

use super::Batcher;

impl Batcher {
    /// What a resume state records of this corpus: sizes, line count and a fingerprint of
    /// sampled bytes of every file (computed once).
    pub fn corpus_identity(&self) -> Result<CorpusIdentity> {
        if let Some(id) = self.inner.identity.get() {
            return Ok(id.clone());
        }
        let corpus = &self.inner.corpus;
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        let mut mix = |v: u64| hash = crate::order::mix64(hash ^ v);
        let (mut bytes, mut mtime) = (0u64, i64::MIN);
        for f in 0..corpus.num_files() {
            let file = corpus.file(f)?;
            let data = file.source.bytes();
            let len = data.len();
            bytes += len as u64;
            mtime = mtime.max(file.source.identity().mtime_ns);
            mix(len as u64);
            mix(file.index.len());
            let mut sample = |range: std::ops::Range<usize>| {
                for chunk in data[range].chunks(8) {
                    let mut w = [0u8; 8];
                    w[..chunk.len()].copy_from_slice(chunk);
                    mix(u64::from_le_bytes(w));
                }
            };
            sample(0..len.min(4096));
            sample(len.saturating_sub(4096)..len);
            for i in 1..=16 {
                let at = len / 17 * i;
                sample(at..(at + 64).min(len));
            }
        }
        let id = CorpusIdentity { files: corpus.num_files() as u64, bytes, lines: self.num_lines(), mtime_ns: mtime, fingerprint: hash };
        Ok(self.inner.identity.get_or_init(|| id).clone())
    }

    /// The options and sources that decide what a position means.
    fn order_options(&self) -> OrderOptions {
        OrderOptions { sources: self.source_identity(), ..OrderOptions::of(self.options()) }
    }

    /// The resume state of shard `shard` that served `done` batches of its plan in epoch
    /// `epoch` after `base` (see [`state`](crate::state)).
    pub fn state(&self, epoch: u64, base: Served, shard: Shard, done: u64) -> Result<State> {
        Ok(State { format: STATE_FORMAT, seed: self.seed(), epoch, base, shard, done, order: self.order_options(), corpus: self.corpus_identity()? })
    }

    /// Where shard `shard` resumes from `state`: `(epoch, base, batches of its plan done)`.
    /// The state must match this batcher (corpus, order options, seed); a shard's own
    /// state resumes that shard, a combined one ([`combine_states`](Self::combine_states))
    /// any shard of any layout.
    pub fn resume_point(&self, state: &State, shard: Shard) -> Result<(u64, Served, u64)> {
        state.check_matches(self.seed(), &self.order_options(), &self.corpus_identity()?)?;
        let nb = self.num_batches();
        state.base.validate(nb)?;
        if state.epoch == u64::MAX {
            return Err(Error::InvalidState { message: format!("epoch {} is out of range", state.epoch) });
        }
        if state.shard == shard {
            let plan = ShardPlan::new(nb, state.base.clone(), shard, self.options().even_shards);
            if state.done > plan.len() {
                return Err(Error::InvalidState { message: format!("the state served {} batches of a plan of {}", state.done, plan.len()) });
            }
            return Ok((state.epoch, state.base.clone(), state.done));
        }
        match state.served(nb) {
            Some(served) => Ok((state.epoch, served, 0)),
            None => Err(Error::StateMismatch {
                what: format!(
                    "the state is shard {} of {}, this batcher is shard {} of {}; to resume with another layout, \
                     combine the states of all {} shards first \
                     (or, for ranks that ran in lockstep, one rank's states with lockstep)",
                    state.shard.index, state.shard.count, shard.index, shard.count, state.shard.count
                ),
            }),
        }
    }

    /// Combines the states of all shards of one layout into one any layout can load.
    pub fn combine_states(&self, states: &[State]) -> Result<State> {
        crate::state::combine(states, self.num_batches(), self.options().even_shards)
    }

    /// [`combine_states`](Self::combine_states) of every rank's states, made from one
    /// rank's (see [`state::lockstep`](crate::state::lockstep)): elastic resume from rank 0's
    /// checkpoint when the ranks ran in lockstep.
    pub fn combine_lockstep_states(&self, one_rank: &[State]) -> Result<State> {
        self.combine_states(&crate::state::lockstep(one_rank)?)
    }
}
