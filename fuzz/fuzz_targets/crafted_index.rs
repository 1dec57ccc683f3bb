//! Index files written by someone else, as a reader might find them: a valid index of the
//! data is written, then its body replaced by arbitrary bytes (or a few words of it
//! changed) and its header made valid again around them — both checksums recomputed, as
//! only a deliberate writer would. Opening it must never crash: the index is rejected
//! (and rebuilt, serving exactly the reference lines), or it passes the structural checks
//! and every batch passes Arrow's full validation with every line a range of the file
//! of at most `MAX_LINE_LEN` bytes.
#![no_main]

#[path = "common.rs"]
mod common;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mmap_batcher::{Batcher, IndexCache, Options};

#[derive(Debug, Arbitrary)]
struct Crafted {
    case: common::Case,
    /// Replace the whole body with these bytes (when `whole`), else xor these words in.
    body: Vec<u8>,
    whole: bool,
    edits: Vec<(u16, u64)>,
}

const HEADER_LEN: usize = 256;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

fuzz_target!(|c: Crafted| {
    let f = c.case.file();
    let dir = tempfile::tempdir().unwrap();
    let index_path = dir.path().join("crafted.mmbi");
    let options = Options { index_cache: IndexCache::Path(index_path.clone()), ..c.case.options() };
    Batcher::open(f.path(), options.clone()).expect("any bytes can be indexed");
    let Ok(mut file) = std::fs::read(&index_path) else { return };
    if file.len() < HEADER_LEN {
        return;
    }
    if c.whole {
        file.truncate(HEADER_LEN);
        file.extend_from_slice(&c.body);
    } else {
        let words = (file.len() - HEADER_LEN) / 8;
        for &(at, x) in c.edits.iter().take(8) {
            if words > 0 {
                let i = HEADER_LEN + 8 * (usize::from(at) % words);
                let w = u64::from_ne_bytes(file[i..i + 8].try_into().unwrap()) ^ x;
                file[i..i + 8].copy_from_slice(&w.to_ne_bytes());
            }
        }
    }
    // Header word 3 (record count) and the section counts stay as written; word 26 is the
    // body checksum, word 31 the header's.
    let sum = twox_hash::XxHash3_64::oneshot(&file[HEADER_LEN..]);
    file[26 * 8..27 * 8].copy_from_slice(&sum.to_ne_bytes());
    let head = fnv1a(&file[..31 * 8]);
    file[31 * 8..32 * 8].copy_from_slice(&head.to_ne_bytes());
    std::fs::write(&index_path, &file).unwrap();

    let b = Batcher::open(f.path(), options).expect("a rejected index is rebuilt");
    let data = c.case.bytes.as_slice();
    let want = common::reference(data, c.case.skip_blank, c.case.comment);
    let loaded = matches!(b.index_status(0), mmap_batcher::IndexStatus::Loaded(_));
    let epoch = b.epoch(0).unwrap();
    let mut served = 0usize;
    for batch in epoch.batches() {
        let rb = match batch.to_record_batch() {
            Ok(rb) => rb,
            Err(mmap_batcher::Error::InvalidUtf8 { .. }) => return,
            // A crafted body whose lines are not cut at the file's line boundaries.
            Err(mmap_batcher::Error::CorruptIndex { .. }) if loaded => return,
            Err(e) => panic!("{e}"),
        };
        for col in rb.columns() {
            col.to_data().validate_full().expect("a valid Arrow array");
        }
        let located = batch.locate().unwrap();
        for line in located.raw_lines() {
            assert!(line.len() as u64 <= mmap_batcher::MAX_LINE_LEN);
            // A range of the file: its address lies inside the data.
            let inside = data.windows(line.len().max(1)).any(|w| line.is_empty() || w == line);
            assert!(inside, "a line that is no range of the file");
            served += 1;
        }
    }
    if !loaded {
        assert_eq!(served, want.len(), "a rebuilt index serves the reference");
    }
});
