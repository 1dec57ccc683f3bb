//! A deterministic synthetic corpus for benchmarks: log-normal line lengths (median near
//! 80 bytes) with a few lines of several KB, about 2% blank and 1% `#` lines, and some
//! non-ASCII UTF-8. The same `(lines, seed)` always writes the same bytes, so every tool
//! in a side-by-side comparison reads the same file.

use std::io::Write;

/// SplitMix64: tiny, fast, and reproducible everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        crate::order::mix64(self.0)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }
}

const NON_ASCII: [&str; 4] = ["é", "ü", "漢字", "🙂"];

/// Writes `lines` lines of synthetic text to `out`.
///
/// ```
/// let mut buf = Vec::new();
/// mmap_batcher::synthetic::write_corpus(&mut buf, 1000, 1).unwrap();
/// assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1000);
/// ```
pub fn write_corpus(out: &mut impl Write, lines: u64, seed: u64) -> std::io::Result<()> {
    let mut rng = Rng(seed);
    let mut line = Vec::with_capacity(16 << 10);
    for _ in 0..lines {
        line.clear();
        let kind = rng.unit();
        if kind < 0.02 {
            // Blank: empty or a few spaces/tabs.
            line.extend(std::iter::repeat_n(b' ', (rng.next() % 4) as usize));
        } else {
            if kind < 0.03 {
                line.extend_from_slice(b"# ");
            }
            let target = if rng.unit() < 0.001 {
                2_000 + (rng.next() % 8_000) as usize
            } else {
                (80.0 * (0.6 * rng.normal()).exp()).clamp(1.0, 4_000.0) as usize
            };
            while line.len() < target {
                let r = rng.next();
                if r.is_multiple_of(40) {
                    line.extend_from_slice(NON_ASCII[(r >> 8) as usize % NON_ASCII.len()].as_bytes());
                } else {
                    // Independent 5-bit chunks per letter, so every letter pair occurs.
                    let word_len = 2 + (r >> 16) as usize % 8;
                    let letters = rng.next();
                    line.extend((0..word_len).map(|i| b'a' + ((letters >> (5 * i)) & 31) as u8 % 26));
                }
                line.push(b' ');
            }
        }
        line.push(b'\n');
        out.write_all(&line)?;
    }
    Ok(())
}

/// Writes `lines` lines sorted into `labels` runs of equal length: line `i` starts with
/// `L<label>` where `label = i * labels / lines`, then random words (no blank or comment
/// lines, so kept line `i` is physical line `i + 1`). The shuffle-quality benchmark reads
/// the labels back to see how well each batch mixes them.
///
/// ```
/// let mut buf = Vec::new();
/// mmap_batcher::synthetic::write_labelled_corpus(&mut buf, 10, 5, 1).unwrap();
/// let text = String::from_utf8(buf).unwrap();
/// assert!(text.lines().nth(3).unwrap().starts_with("L1 "));
/// ```
pub fn write_labelled_corpus(out: &mut impl Write, lines: u64, labels: u64, seed: u64) -> std::io::Result<()> {
    let mut rng = Rng(seed);
    let mut line = Vec::with_capacity(1 << 10);
    for i in 0..lines {
        line.clear();
        let label = (u128::from(i) * u128::from(labels.max(1)) / u128::from(lines.max(1))) as u64;
        line.extend_from_slice(format!("L{label} ").as_bytes());
        let target = (80.0 * (0.6 * rng.normal()).exp()).clamp(8.0, 2_000.0) as usize;
        while line.len() < target {
            let letters = rng.next();
            line.extend((0..6).map(|k| b'a' + ((letters >> (5 * k)) & 31) as u8 % 26));
            line.push(b' ');
        }
        line.push(b'\n');
        out.write_all(&line)?;
    }
    Ok(())
}
