//! Shared by the fuzz targets: the input as a file, and a plain reference of the rules.
#![allow(dead_code)]

use std::io::Write;

use arbitrary::Arbitrary;

/// A fuzz case: file bytes and the options that matter to what is served.
#[derive(Debug, Arbitrary)]
pub struct Case {
    pub bytes: Vec<u8>,
    pub skip_blank: bool,
    pub comment: Option<u8>,
    pub batch_size: u8,
    pub shuffle: u8,
    pub block: u16,
    pub window: u8,
    pub seed: u64,
    pub keep_terminator: bool,
    pub binary: bool,
}

impl Case {
    pub fn options(&self) -> mmap_batcher::Options {
        use mmap_batcher::{IndexCache, LineType, Options, Shuffle};
        Options {
            batch_size: usize::from(self.batch_size.max(1)),
            shuffle: match self.shuffle % 3 {
                0 => Shuffle::None,
                1 => Shuffle::Global,
                _ => Shuffle::Block { block_bytes: u64::from(self.block.max(1)), window_blocks: u64::from(self.window.max(1)) },
            },
            ignore_leftovers: false,
            skip_blank_lines: self.skip_blank,
            comment_char: self.comment,
            seed: Some(self.seed),
            keep_terminator: self.keep_terminator,
            line_type: if self.binary { LineType::Binary } else { LineType::Utf8 },
            index_cache: IndexCache::Off,
            ..Options::default()
        }
    }

    /// The bytes in a fresh file of the RAM-backed file system.
    pub fn file(&self) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().tempfile_in("/dev/shm").unwrap_or_else(|_| tempfile::NamedTempFile::new().unwrap());
        f.write_all(&self.bytes).unwrap();
        f.flush().unwrap();
        f
    }
}

/// (1-based number, start, bytes with terminator) of each kept line: the README's rules,
/// written as plainly as possible.
pub fn reference(bytes: &[u8], skip_blank: bool, comment: Option<u8>) -> Vec<(u64, u64, &[u8])> {
    let mut out = Vec::new();
    let (mut start, mut number) = (0usize, 0u64);
    while start < bytes.len() {
        let end = bytes[start..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| start + p + 1);
        let line = &bytes[start..end];
        number += 1;
        let blank = line.iter().all(|b| b" \t\r\n\x0b\x0c".contains(b));
        if !(comment == Some(line[0]) || skip_blank && blank) {
            out.push((number, start as u64, line));
        }
        start = end;
    }
    out
}
