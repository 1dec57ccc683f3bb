//! A keyed permutation of `[0, n)` with O(1) random access: the global shuffle, and the
//! building block of the block shuffle.
//!
//! [`Permutation::get`] maps a position to a value in O(1) time and O(1) memory. Nothing
//! is materialised, so any epoch (or any slice of one, for a worker, a rank or a resumed
//! run) can be regenerated on its own, on any machine.
//!
//! It is a keyed Feistel network over the smallest power-of-two domain of at least
//! `max(n, 4)` elements, with cycle walking to land back in `[0, n)`: a bijection on
//! `[0, n)`, with fewer than two walks a position on average. The round function is
//! multiply-shift hashing: the half-block xor a round key, times a keyed odd multiplier,
//! high bits kept; round keys come from the key through SplitMix64. This is
//! a statistical shuffle (the kind training loops need), not a cryptographic one.

/// Rounds of the Feistel network. Fewer left tiny domains visibly biased (a chi-square z of
/// 33 for n = 7 over 200k seeds with 8 rounds); twelve measured uniform (|z| < 2, positions
/// and pairs) for n from 2 to 5,000. A round costs a multiply; `cargo bench --bench core`
/// reports the order's speed ("order only").
const ROUNDS: usize = 12;

/// SplitMix64's output function: a fast 64-bit mixer with full avalanche.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Whether the batched rounds run with AVX-512 multiplies: decided once per process.
#[cfg(target_arch = "x86_64")]
static AVX512: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| std::is_x86_feature_detected!("avx512dq"));

/// A seeded permutation of `[0, n)` with O(1) random access.
#[derive(Debug, Clone)]
pub struct Permutation {
    n: u64,
    bits: u32,
    /// Per round: the key xored into the half-block, and an odd multiplier.
    keys: [(u64, u64); ROUNDS],
    /// The CPU has AVX-512 F and DQ (checked once, in `AVX512`).
    avx512: bool,
}

impl Permutation {
    /// The permutation of `[0, n)` keyed by `key`.
    ///
    /// ```
    /// use mmap_batcher::Permutation;
    /// let p = Permutation::new(42, 10);
    /// let mut seen: Vec<u64> = (0..10).map(|i| p.get(i)).collect();
    /// seen.sort();
    /// assert_eq!(seen, (0..10).collect::<Vec<_>>()); // a permutation
    /// assert_eq!(Permutation::new(42, 10).get(3), p.get(3)); // reproducible
    /// ```
    pub fn new(key: u64, n: u64) -> Self {
        let bits = 64 - n.max(4).saturating_sub(1).leading_zeros();
        let mut state = key;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix64(state)
        };
        let keys = std::array::from_fn(|_| (next(), next() | 1));
        #[cfg(target_arch = "x86_64")]
        let avx512 = *AVX512;
        #[cfg(not(target_arch = "x86_64"))]
        let avx512 = false;
        Permutation { n, bits, keys, avx512 }
    }

    /// Number of positions (kept lines).
    pub fn len(&self) -> u64 {
        self.n
    }

    /// True when there is nothing to order.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The value at `position`.
    ///
    /// # Panics
    /// If `position >= len()`.
    #[inline]
    pub fn get(&self, position: u64) -> u64 {
        assert!(position < self.n, "position {position} out of range for {} values", self.n);
        let mut x = position;
        loop {
            x = self.permute_domain(x);
            if x < self.n {
                return x;
            }
        }
    }

    /// Appends the kept-line indices served at `positions` to `out`: the same values as
    /// [`get`](Self::get), computed for a whole batch at once. The network runs over all the
    /// positions together, round by round ([`permute_all`](Self::permute_all)); the few
    /// values that land outside `[0, n)` walk on the same way, in ever smaller groups.
    pub fn fill(&self, positions: std::ops::Range<u64>, out: &mut Vec<u64>) {
        assert!(positions.end <= self.n, "positions {positions:?} out of range for {} values", self.n);
        let first = out.len();
        out.extend(positions);
        self.permute_all(&mut out[first..]);
        let n = self.n;
        let mut walking: Vec<usize> = (first..out.len()).filter(|&i| out[i] >= n).collect();
        let mut values = Vec::with_capacity(walking.len());
        while !walking.is_empty() {
            values.clear();
            values.extend(walking.iter().map(|&i| out[i]));
            self.permute_all(&mut values);
            for (&i, &v) in walking.iter().zip(&values) {
                out[i] = v;
            }
            walking.retain(|&i| out[i] >= n);
        }
    }

    /// [`permute_domain`](Self::permute_domain) of every value, rounds outermost: each
    /// round is a short loop over 16 independent values, which the compiler unrolls and
    /// the CPU overlaps, where one value's twelve dependent rounds would leave it idle.
    /// CPUs with AVX-512 run the same code with 64-bit vector multiplies.
    fn permute_all(&self, values: &mut [u64]) {
        #[cfg(target_arch = "x86_64")]
        if self.avx512 {
            // SAFETY: `avx512` is true only when the CPU has AVX-512 F and DQ (DQ implies
            // F), checked once in `AVX512`.
            return unsafe { self.permute_all_avx512(values) };
        }
        self.permute_all_here(values)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn permute_all_avx512(&self, values: &mut [u64]) {
        self.permute_all_here(values)
    }

    #[inline(always)]
    fn permute_all_here(&self, values: &mut [u64]) {
        for group in values.chunks_mut(16) {
            let mut low_w = self.bits / 2;
            for &(key, multiplier) in &self.keys {
                let high_w = self.bits - low_w;
                let (low_mask, hash_shift) = ((1u64 << low_w) - 1, 64 - high_w);
                for x in group.iter_mut() {
                    let (left, right) = (*x >> low_w, *x & low_mask);
                    *x = (right << high_w) | (left ^ ((right ^ key).wrapping_mul(multiplier) >> hash_shift));
                }
                low_w = high_w;
            }
        }
    }

    /// A bijection on `[0, 2^bits)`: an unbalanced Feistel network whose two halves
    /// swap widths each round.
    #[inline]
    fn permute_domain(&self, mut x: u64) -> u64 {
        let mask = |w: u32| (1u64 << w) - 1;
        let mut low_w = self.bits / 2;
        for (key, multiplier) in self.keys {
            let high_w = self.bits - low_w;
            let right = x & mask(low_w);
            let left = x >> low_w;
            let new_low = left ^ ((right ^ key).wrapping_mul(multiplier) >> (64 - high_w));
            x = (right << high_w) | new_low;
            low_w = high_w;
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_permutation(order: &Permutation) -> bool {
        let mut seen = vec![false; order.len() as usize];
        (0..order.len()).all(|p| !std::mem::replace(&mut seen[order.get(p) as usize], true))
    }

    #[test]
    fn permutation_for_many_sizes() {
        // (Miri interprets a hundred times slower: fewer sizes there, the same edges.)
        let (small, big): (u64, &[u64]) = if cfg!(miri) { (40, &[1023, 1024, 1025]) } else { (300, &[1023, 1024, 1025, 65_537]) };
        for n in (0..small).chain(big.iter().copied()) {
            for seed in 0..3 {
                assert!(is_permutation(&Permutation::new(seed * 7 + 1, n)), "n={n}");
            }
        }
    }

    #[test]
    fn fill_matches_get() {
        for n in [1u64, 5, 100, 4097] {
            let o = Permutation::new(31, n);
            let mut out = vec![];
            o.fill(0..n, &mut out);
            assert_eq!(out, (0..n).map(|p| o.get(p)).collect::<Vec<_>>());
            let mut part = vec![];
            o.fill(n / 2..n, &mut part);
            assert_eq!(part, out[n as usize / 2..]);
        }
    }

    #[test]
    fn keys_differ() {
        let orders = |key| (0..1000).map(|p| Permutation::new(key, 1000).get(p)).collect::<Vec<_>>();
        assert_ne!(orders(1), orders(2));
        assert_eq!(orders(5), orders(5));
    }

    /// Every line lands in every position about equally often over many seeds, and the
    /// first two positions are not correlated: a loose chi-square-style bound that a
    /// biased shuffle (for example two rounds, or a key ignoring the epoch) fails.
    #[test]
    #[cfg_attr(miri, ignore = "statistics over 70,000 permutations: hours in Miri, and no unsafe")]
    fn positions_are_uniform() {
        let n = 7u64;
        let trials = 70_000u64;
        let mut counts = vec![vec![0u64; n as usize]; n as usize];
        let mut pairs = vec![0u64; (n * n) as usize];
        for t in 0..trials {
            let o = Permutation::new(crate::order::epoch_key(t / 3, t % 3), n);
            for p in 0..n {
                counts[p as usize][o.get(p) as usize] += 1;
            }
            pairs[(o.get(0) * n + o.get(1)) as usize] += 1;
        }
        let expected = (trials / n) as f64;
        for row in &counts {
            for &c in row {
                assert!((c as f64 - expected).abs() < expected * 0.05, "count {c} vs {expected}");
            }
        }
        let expected_pair = trials as f64 / (n * (n - 1)) as f64;
        for a in 0..n {
            for b in 0..n {
                let c = pairs[(a * n + b) as usize] as f64;
                if a == b {
                    assert_eq!(c, 0.0);
                } else {
                    assert!((c - expected_pair).abs() < expected_pair * 0.1, "pair ({a},{b}) {c} vs {expected_pair}");
                }
            }
        }
    }
}
