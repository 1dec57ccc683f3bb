//! The index (built by two threads from the middle, newlines and UTF-8 in one pass)
//! against a plain reference of the line rules: every kept line, its number, its offset,
//! its bytes, and the UTF-8 verdict.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use mmap_batcher::{Batcher, Utf8Verdict};

fuzz_target!(|case: common::Case| {
    let f = case.file();
    let b = Batcher::open(f.path(), case.options()).expect("any bytes can be indexed");
    let want = common::reference(&case.bytes, case.skip_blank, case.comment);
    assert_eq!(b.num_lines(), want.len() as u64);
    for (k, &(number, start, bytes)) in want.iter().enumerate() {
        assert_eq!(b.line_position(k as u64).unwrap(), (0, number, start));
        assert_eq!(b.line_bytes(k as u64).unwrap(), bytes);
    }
    let first_bad = want.iter().position(|(_, _, l)| std::str::from_utf8(l).is_err());
    match (b.utf8_verdict(0), first_bad) {
        (Utf8Verdict::Valid, None) => {}
        (Utf8Verdict::Invalid { line_id, .. }, Some(k)) => assert_eq!(line_id, k as u64),
        (got, want) => panic!("utf-8 verdict {got:?}, first bad kept line {want:?}"),
    }
});
