//! JSON Lines records: whatever the bytes, `field=` / `fields=` batches under every bad-record
//! policy are valid Arrow (views in bounds and UTF-8, checked by Arrow's full validation)
//! or a typed error, and every string served is a substring of its line or decoded from it.
#![no_main]

#[path = "common.rs"]
mod common;

use arrow::array::{Array, AsArray};
use libfuzzer_sys::fuzz_target;
use mmap_batcher::{Batcher, Error, LineType, RecordPolicy};

fuzz_target!(|case: common::Case| {
    let f = case.file();
    let policy = [RecordPolicy::Error, RecordPolicy::Skip, RecordPolicy::Null][(case.seed % 3) as usize];
    let opts = mmap_batcher::Options {
        field: Some("a".into()),
        fields: vec!["a.b".into(), "/c".into(), "d".into()],
        on_bad_record: policy,
        line_type: LineType::Utf8,
        ..case.options()
    };
    let b = Batcher::open(f.path(), opts).expect("any bytes can be indexed");
    let epoch = b.epoch(case.seed % 2).unwrap();
    for batch in epoch.batches() {
        let rb = match batch.to_record_batch() {
            Ok(rb) => rb,
            Err(Error::InvalidUtf8 { .. }) => return,
            Err(Error::BadRecord { .. }) => {
                assert_eq!(policy, RecordPolicy::Error);
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        assert!(rb.num_rows() <= batch.len());
        for col in rb.columns() {
            col.to_data().validate_full().expect("a batch Arrow accepts");
            if let Some(strings) = col.as_string_view_opt() {
                for s in strings.iter().flatten() {
                    // A field is never longer than the longest line.
                    assert!(s.len() <= case.bytes.len());
                }
            }
        }
        let located = batch.locate().unwrap();
        match located.values(&b, false) {
            Ok(values) => assert!(values.len() <= batch.len()),
            Err(e) => assert!(matches!(e, Error::BadRecord { .. }), "{e}"),
        }
    }
});
