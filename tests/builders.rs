//! A [`BatchStream`]'s pool of builders: the same batches, in the same order, for any
//! number of them, and a stream that fails ends at the failing batch's place.

mod common;

use std::io::Write;

use arrow::array::RecordBatch;
use common::file_with;
use mmap_batcher::{BatchStream, Batcher, Error, IndexCache, IoPolicy, Options, Shuffle, StreamOptions};

fn corpus(lines: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for i in 0..lines {
        // Lengths from 1 to 40, blank and comment lines among them.
        match i % 17 {
            5 => bytes.extend_from_slice(b"\n"),
            9 => bytes.extend_from_slice(b"# a comment\n"),
            _ => writeln!(bytes, "line {i} {}", "x".repeat(i % 29)).unwrap(),
        }
    }
    bytes
}

/// Every batch of `units` as (epoch, number, lines), read through a stream of `builders`.
fn served(b: &Batcher, units: &[(u64, u64)], options: StreamOptions) -> Vec<(u64, u64, Vec<Vec<u8>>)> {
    BatchStream::with_options(b, Vec::from(units).into_iter(), options)
        .map(|r| {
            let r = r.unwrap();
            (r.batch.epoch(), r.batch.number(), r.located.raw_lines().map(<[u8]>::to_vec).collect())
        })
        .collect()
}

fn units(b: &Batcher, epochs: u64) -> Vec<(u64, u64)> {
    (0..epochs).flat_map(|e| (0..b.epoch(e).unwrap().num_batches()).map(move |n| (e, n))).collect()
}

#[test]
fn any_number_of_builders_serves_the_same_batches_in_order() {
    let files: Vec<_> = (0..3).map(|k| file_with(&corpus(500 + 300 * k))).collect();
    let paths: Vec<_> = files.iter().map(|f| f.path().to_path_buf()).collect();
    let shuffles = [Shuffle::Global, Shuffle::None, Shuffle::Block { block_bytes: 512, window_blocks: 3 }];
    for shuffle in shuffles {
        for io in [IoPolicy::Cached, IoPolicy::Copy, IoPolicy::Disk] {
            let options = Options { batch_size: 37, seed: Some(5), shuffle, io, index_cache: IndexCache::Off, ..Default::default() };
            let b = Batcher::open_many(&paths, options).unwrap();
            let units = units(&b, 2);
            // The reference: batch by batch, no stream.
            let expected: Vec<_> = units
                .iter()
                .map(|&(e, n)| {
                    let batch = b.epoch(e).unwrap().batch(n).unwrap();
                    (e, n, batch.locate().unwrap().raw_lines().map(<[u8]>::to_vec).collect::<Vec<_>>())
                })
                .collect();
            let columns = b.default_columns();
            let expected_batches: Vec<RecordBatch> =
                units.iter().map(|&(e, n)| b.epoch(e).unwrap().batch(n).unwrap().to_record_batch_with(&columns).unwrap()).collect();
            for builders in [0, 1, 2, 3, 8] {
                let got = served(&b, &units, StreamOptions { builders: Some(builders), ..Default::default() });
                assert_eq!(got, expected, "{shuffle:?} {io:?} with {builders} builders");
                // Assembled by the builders: the same Arrow batches.
                let options = StreamOptions { builders: Some(builders), columns: Some(columns.as_slice().into()), ..Default::default() };
                let assembled: Vec<RecordBatch> = BatchStream::with_options(&b, units.clone().into_iter(), options)
                    .map(|r| r.unwrap().to_record_batch(&columns).unwrap())
                    .collect();
                assert_eq!(assembled, expected_batches, "{shuffle:?} {io:?} assembled by {builders} builders");
            }
        }
    }
}

#[test]
fn a_filtered_stream_is_the_same_for_any_number_of_builders() {
    let f = file_with(&corpus(2000));
    let b = Batcher::open(f.path(), Options { batch_size: 64, seed: Some(9), index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    let units = units(&b, 1);
    let allowed: std::sync::Arc<[std::ops::Range<u64>]> = vec![10..200, 700..701, 900..1500].into();
    let one = served(&b, &units, StreamOptions { allowed: Some(allowed.clone()), builders: Some(1), ..Default::default() });
    let four = served(&b, &units, StreamOptions { allowed: Some(allowed), builders: Some(4), ..Default::default() });
    assert_eq!(one, four);
    assert!(one.iter().map(|(_, _, l)| l.len()).sum::<usize>() < b.num_lines() as usize);
}

#[test]
fn a_failing_batch_ends_the_stream_at_its_place() {
    let f = file_with(&corpus(3000));
    let b = Batcher::open(f.path(), Options { batch_size: 10, seed: Some(2), index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    // Batch 10,000 does not exist: everything before it is served, nothing after it.
    let mut units: Vec<(u64, u64)> = (0..40).map(|n| (0, n)).collect();
    units.push((0, 10_000));
    units.extend((40..80).map(|n| (0, n)));
    for builders in [0, 1, 2, 4] {
        let mut stream = BatchStream::with_options(&b, units.clone().into_iter(), StreamOptions { builders: Some(builders), ..Default::default() });
        for n in 0..40 {
            assert_eq!(stream.next().unwrap().unwrap().batch.number(), n, "{builders} builders");
        }
        let err = stream.next().unwrap().unwrap_err().to_string();
        assert!(err.contains("out of range"), "{err}");
        assert!(stream.next().is_none(), "{builders} builders: a batch after the error");
    }
}

#[test]
fn a_stream_dropped_early_stops_its_builders() {
    let f = file_with(&corpus(3000));
    let b = Batcher::open(f.path(), Options { batch_size: 10, seed: Some(2), index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    // An endless run of units: the builders must stop at the drop, not run on.
    let mut stream = BatchStream::with_options(&b, (0..).map(|n| (n / 200, n % 200)), StreamOptions { builders: Some(4), ..Default::default() });
    for _ in 0..50 {
        stream.next().unwrap().unwrap();
    }
    // Returns only once every builder has stopped (it joins them).
    drop(stream);
}

#[test]
fn a_file_truncated_while_builders_assemble_is_an_error_not_a_crash() {
    // Builders read the map ahead of the consumer; a truncation at any moment must end the
    // stream with `FileChanged` (the page read under it was gone: `SIGBUS` without the guard).
    for round in 0..20 {
        let f = file_with(&corpus(200_000));
        let options = Options { batch_size: 512, seed: Some(round), index_cache: IndexCache::Off, ..Default::default() };
        let b = Batcher::open(f.path(), options).unwrap();
        let columns = b.default_columns();
        let stream_options = StreamOptions { builders: Some(3), columns: Some(columns.as_slice().into()), ..Default::default() };
        let stream = BatchStream::with_options(&b, (0..).map(|n| (n / 300, n % 300)), stream_options);
        let truncate = {
            let file = f.reopen().unwrap();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_micros(200 * (round % 7)));
                file.set_len(4096).unwrap();
            })
        };
        let mut ended = None;
        for ready in stream {
            match ready.and_then(|r| r.to_record_batch(&columns)) {
                Ok(rb) => assert_eq!(rb.num_rows(), 512),
                Err(e) => {
                    ended = Some(e);
                    break;
                }
            }
        }
        truncate.join().unwrap();
        assert!(matches!(ended, Some(Error::FileChanged { .. })), "round {round}: {ended:?}");
    }
}
