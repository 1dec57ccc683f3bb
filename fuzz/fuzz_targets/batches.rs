//! The batch builder: every epoch (file order, global, block) is a permutation of the kept
//! lines, and every Arrow batch passes Arrow's full validation (views in bounds, UTF-8 for
//! strings) and holds the reference's bytes.
#![no_main]

#[path = "common.rs"]
mod common;

use arrow::array::{Array, AsArray};
use libfuzzer_sys::fuzz_target;
use mmap_batcher::{Batcher, LineType};

fuzz_target!(|case: common::Case| {
    let f = case.file();
    let opts = case.options();
    let b = Batcher::open(f.path(), opts.clone()).expect("any bytes can be indexed");
    let want = common::reference(&case.bytes, case.skip_blank, case.comment);
    let epoch = b.epoch(case.seed % 3).unwrap();
    let mut seen = vec![false; want.len()];
    for batch in epoch.batches() {
        let rb = match batch.to_record_batch() {
            Ok(rb) => rb,
            Err(mmap_batcher::Error::InvalidUtf8 { .. }) => {
                assert_eq!(opts.line_type, LineType::Utf8);
                assert!(want.iter().any(|(_, _, l)| std::str::from_utf8(l).is_err()));
                return;
            }
            Err(e) => panic!("{e}"),
        };
        for col in rb.columns() {
            col.to_data().validate_full().expect("a valid Arrow array");
        }
        let strip = |l: &[u8]| -> Vec<u8> {
            if case.keep_terminator {
                return l.to_vec();
            }
            let l = l.strip_suffix(b"\n").map(|l| l.strip_suffix(b"\r").unwrap_or(l)).unwrap_or(l);
            l.to_vec()
        };
        for (row, &id) in batch.line_ids().iter().enumerate() {
            assert!(!std::mem::replace(&mut seen[id as usize], true), "line {id} served twice");
            let expected = strip(want[id as usize].2);
            let got: &[u8] = match opts.line_type {
                LineType::Utf8 => rb.column(0).as_string_view().value(row).as_bytes(),
                LineType::Binary => rb.column(0).as_binary_view().value(row),
            };
            assert_eq!(got, &expected[..]);
        }
    }
    assert!(seen.iter().all(|&s| s), "a line was never served");
});
