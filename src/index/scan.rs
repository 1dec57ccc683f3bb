//! Finding every `\n` of a buffer, in either direction: the inner loop of indexing.
//!
//! `memchr_iter` returns to its caller at every match, which costs more than the search
//! itself when lines are short (80 bytes here). On x86-64 with AVX2 we instead compare 64
//! bytes at a time into a bit mask and walk its set bits: in a prototype over the 1 GB
//! benchmark corpus this took two threads' scan from about 170 ms to about 120 ms. Other
//! CPUs use `memchr`.
//!
//! The only `unsafe` here is calling the AVX2 functions, which [`NewlineScanner`] does only
//! after checking once that the CPU has AVX2 (and `popcnt`, `bmi1`, `lzcnt`):
//! `#[target_feature]` functions are unsafe to call from code compiled without the feature,
//! because running their instructions on a CPU without it is undefined behaviour. Inside
//! them, every memory access is safe, bounds-checked Rust.

/// What is told of each newline found. The sink is moved into the scan and handed back.
pub(crate) trait NewlineSink {
    /// Called with the position of a `\n`.
    fn newline(&mut self, position: usize);
}

/// The newline scan for this CPU, chosen once (as `memchr::arch::x86_64::avx2::memchr::One::new`
/// does): holding one proves the CPU check was made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewlineScanner {
    /// True only when the CPU has every feature `avx2::forward`/`backward` are compiled for.
    avx2: bool,
}

impl NewlineScanner {
    /// Detects the CPU's features.
    pub(crate) fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        return NewlineScanner { avx2: avx2::detected() };
        #[cfg(not(target_arch = "x86_64"))]
        NewlineScanner { avx2: false }
    }

    /// Tells `sink` `offset + p` for the position `p` of every `\n` in `bytes`, ascending.
    #[inline]
    pub(crate) fn forward<S: NewlineSink>(&self, bytes: &[u8], offset: usize, mut sink: S) -> S {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `self.avx2` is true only when the CPU has the features `avx2::forward`
            // is compiled for (checked in `new`).
            return unsafe { avx2::forward(bytes, offset, sink) };
        }
        memchr::memchr_iter(b'\n', bytes).for_each(|p| sink.newline(offset + p));
        sink
    }

    /// Tells `sink` `offset + p` for the position `p` of every `\n` in `bytes`, descending.
    #[inline]
    pub(crate) fn backward<S: NewlineSink>(&self, bytes: &[u8], offset: usize, mut sink: S) -> S {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: as in `forward`, for `avx2::backward`.
            return unsafe { avx2::backward(bytes, offset, sink) };
        }
        memchr::memrchr_iter(b'\n', bytes).for_each(|p| sink.newline(offset + p));
        sink
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::NewlineSink;
    use std::arch::x86_64::{__m256i, _mm256_cmpeq_epi8, _mm256_movemask_epi8, _mm256_set1_epi8};

    /// AVX2, and the bit instructions every AVX2 CPU has (without `popcnt`, counting a
    /// mask's bits compiled to a dozen instructions per 64 bytes).
    pub(super) fn detected() -> bool {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("popcnt")
            && std::is_x86_feature_detected!("bmi1")
            && std::is_x86_feature_detected!("lzcnt")
    }

    /// Bit `i` set when `block[i]` is `\n`.
    #[target_feature(enable = "avx2,popcnt,bmi1,lzcnt")]
    #[inline]
    fn newline_mask(block: &[u8; 64]) -> u64 {
        let newline = _mm256_set1_epi8(b'\n' as i8);
        let half = |h: usize| {
            let v: __m256i = bytemuck::pod_read_unaligned(&block[h * 32..h * 32 + 32]);
            _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, newline)) as u32 as u64
        };
        half(0) | (half(1) << 32)
    }

    /// Newline positions decoded before the sink sees them. Walking each mask's bits
    /// straight into the sink put an unpredictable branch (how many lines end in this
    /// block?) on every line; decoding a fixed two positions a block without branching, and
    /// handing the sink whole runs, leaves one mispredicted branch per run.
    struct Positions {
        buf: [usize; RUN + 64],
        len: usize,
    }

    const RUN: usize = 256;

    impl Positions {
        /// Appends the positions `at(bit)` of `mask`'s set bits, lowest bit first, or highest
        /// first when `descending`.
        #[inline(always)]
        fn push(&mut self, mut mask: u64, descending: bool, at: impl Fn(usize) -> usize) {
            let count = mask.count_ones() as usize;
            let mut next = || {
                let bit = if descending { 63 - mask.leading_zeros().min(63) as usize } else { mask.trailing_zeros().min(63) as usize };
                mask &= !(1u64 << bit);
                at(bit)
            };
            // Most blocks of text end zero, one or two lines: write two slots whatever the
            // count (those past it are overwritten later), loop only for more.
            self.buf[self.len] = next();
            self.buf[self.len + 1] = next();
            for slot in 2..count {
                self.buf[self.len + slot] = next();
            }
            self.len += count;
        }

        #[inline(always)]
        fn drain_into<S: NewlineSink>(&mut self, sink: &mut S) {
            for &p in &self.buf[..self.len] {
                sink.newline(p);
            }
            self.len = 0;
        }
    }

    #[target_feature(enable = "avx2,popcnt,bmi1,lzcnt")]
    pub(super) fn forward<S: NewlineSink>(bytes: &[u8], offset: usize, mut sink: S) -> S {
        let (blocks, tail) = bytes.as_chunks::<64>();
        let mut positions = Positions { buf: [0; RUN + 64], len: 0 };
        for (i, block) in blocks.iter().enumerate() {
            positions.push(newline_mask(block), false, |bit| offset + i * 64 + bit);
            if positions.len >= RUN {
                positions.drain_into(&mut sink);
            }
        }
        positions.drain_into(&mut sink);
        let tail_start = offset + bytes.len() - tail.len();
        memchr::memchr_iter(b'\n', tail).for_each(|p| sink.newline(tail_start + p));
        sink
    }

    #[target_feature(enable = "avx2,popcnt,bmi1,lzcnt")]
    pub(super) fn backward<S: NewlineSink>(bytes: &[u8], offset: usize, mut sink: S) -> S {
        // Whole blocks are aligned to the end, so the odd bytes are at the front.
        let head_len = bytes.len() % 64;
        let (head, rest) = bytes.split_at(head_len);
        let (blocks, _) = rest.as_chunks::<64>();
        let mut positions = Positions { buf: [0; RUN + 64], len: 0 };
        for (i, block) in blocks.iter().enumerate().rev() {
            positions.push(newline_mask(block), true, |bit| offset + head_len + i * 64 + bit);
            if positions.len >= RUN {
                positions.drain_into(&mut sink);
            }
        }
        positions.drain_into(&mut sink);
        memchr::memrchr_iter(b'\n', head).for_each(|p| sink.newline(offset + p));
        sink
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    impl NewlineSink for Vec<usize> {
        fn newline(&mut self, position: usize) {
            self.push(position);
        }
    }

    fn forward(bytes: &[u8]) -> Vec<usize> {
        NewlineScanner::new().forward(bytes, 0, vec![])
    }

    fn backward(bytes: &[u8]) -> Vec<usize> {
        NewlineScanner::new().backward(bytes, 0, vec![])
    }

    #[test]
    fn offsets_are_added_and_memchr_fallback_agrees() {
        let bytes = b"a\nbb\n\nccc\n".repeat(20);
        let fast = NewlineScanner::new().forward(&bytes, 1000, vec![]);
        let slow = NewlineScanner { avx2: false }.forward(&bytes, 1000, vec![]);
        assert_eq!(fast, slow);
        assert_eq!(fast[0], 1001);
        let back = NewlineScanner::new().backward(&bytes, 7, vec![]);
        let slow_back = NewlineScanner { avx2: false }.backward(&bytes, 7, vec![]);
        assert_eq!(back, slow_back);
    }

    proptest! {
        #[test]
        fn matches_memchr(bytes in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), any::<u8>()], 0..400)) {
            let expected: Vec<usize> = memchr::memchr_iter(b'\n', &bytes).collect();
            prop_assert_eq!(forward(&bytes), expected.clone());
            let mut rev = backward(&bytes);
            rev.reverse();
            prop_assert_eq!(rev, expected);
        }
    }

    #[test]
    fn block_edges() {
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 200] {
            let bytes = vec![b'\n'; len];
            assert_eq!(forward(&bytes), (0..len).collect::<Vec<_>>());
            assert_eq!(backward(&bytes), (0..len).rev().collect::<Vec<_>>());
        }
    }
}
