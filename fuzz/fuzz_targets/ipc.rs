//! The IPC writer: a stream of every batch reads back (with Arrow's full validation) to the
//! same rows, in both line types.
#![no_main]

#[path = "common.rs"]
mod common;

use arrow::array::{Array, AsArray};
use libfuzzer_sys::fuzz_target;
use mmap_batcher::{write_ipc_stream, Batcher, LineLayout};

fuzz_target!(|case: common::Case| {
    let f = case.file();
    let b = Batcher::open(f.path(), case.options()).expect("any bytes can be indexed");
    let columns = b.default_columns();
    for ipc_type in [LineLayout::Large, LineLayout::View] {
        let mut bytes = Vec::new();
        let summary = match write_ipc_stream(&b, 2, mmap_batcher::Shard::WHOLE, &columns, ipc_type, &mut bytes) {
            Ok(s) => s,
            Err(mmap_batcher::Error::InvalidUtf8 { .. }) => return,
            Err(e) => panic!("{e}"),
        };
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        let mut rows = 0;
        for rb in reader {
            let rb = rb.expect("the stream reads back");
            for col in rb.columns() {
                col.to_data().validate_full().expect("a valid Arrow array");
            }
            rows += rb.num_rows() as u64;
            let _ = rb.column(1).as_primitive::<arrow::datatypes::UInt64Type>().len();
        }
        assert_eq!(rows, summary.rows);
        assert_eq!(rows, 2 * b.lines_per_epoch());
    }
});
