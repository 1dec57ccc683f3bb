//! Arrow batches point into the map, keep it alive, and stay correct past 4 GiB.

mod common;

use arrow::array::{Array, AsArray, BinaryViewArray, StringViewArray, UInt64Array};
use arrow::datatypes::DataType;
use common::{file_with, reference_lines, strip_terminator};
use mmap_batcher::{compact, Batcher, Column, IndexCache, LineType, Options, Shuffle};

/// Every view longer than the 12-byte inline limit must point inside `map`.
fn assert_views_in_map<T: arrow::datatypes::ByteViewType + ?Sized>(
    array: &arrow::array::GenericByteViewArray<T>,
    map: std::ops::Range<usize>,
) -> usize {
    let mut outside_inline = 0;
    for &v in array.views().iter() {
        let view = arrow::array::ByteView::from(v);
        if view.length > 12 {
            let buf = &array.data_buffers()[view.buffer_index as usize];
            let addr = buf.as_ptr() as usize + view.offset as usize;
            assert!(map.contains(&addr) && addr + view.length as usize <= map.end, "view outside the map");
            outside_inline += 1;
        }
    }
    outside_inline
}

fn corpus() -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..5000u32 {
        let len = (i * 7919) % 300;
        text.extend(format!("{i:05} {} é\n", "x".repeat(len as usize)).as_bytes());
        if i % 50 == 0 {
            text.extend(b"# comment\n\n");
        }
    }
    text
}

#[test]
fn views_point_into_the_map_and_values_are_right() {
    let text = corpus();
    let f = file_with(&text);
    let b = Batcher::open(f.path(), Options { batch_size: 1024, seed: Some(3), index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    let reference = reference_lines(&text, true, Some(b'#'));
    let map = b.map_address_ranges()[0].clone();
    let mut long_views = 0;
    for batch in b.epoch(0).unwrap().batches() {
        let rb = batch.to_record_batch().unwrap();
        assert_eq!(rb.schema().field(0).data_type(), &DataType::Utf8View);
        let lines: &StringViewArray = rb.column(0).as_string_view();
        let numbers: &UInt64Array = rb.column(1).as_primitive();
        let offsets: &UInt64Array = rb.column(2).as_primitive();
        long_views += assert_views_in_map(lines, map.clone());
        for (row, &k) in batch.line_ids().iter().enumerate() {
            let r = &reference[k as usize];
            assert_eq!(lines.value(row).as_bytes(), strip_terminator(r.bytes));
            assert_eq!(numbers.value(row), r.number);
            assert_eq!(offsets.value(row), r.start);
        }
    }
    assert!(long_views > 4000, "the corpus has long lines, so most views must reference the map");
}

#[test]
fn batches_keep_the_map_alive_after_the_batcher_is_dropped() {
    let text = corpus();
    let f = file_with(&text);
    let rb = {
        let b =
            Batcher::open(f.path(), Options { batch_size: 100, shuffle: Shuffle::None, index_cache: IndexCache::Off, ..Default::default() }).unwrap();
        let batch = b.epoch(0).unwrap().batch(1).unwrap().to_record_batch().unwrap();
        drop(b);
        batch
    };
    drop(f); // the file is even unlinked: the mapping still holds its pages
    let lines = rb.column(0).as_string_view();
    assert!(lines.value(0).starts_with("00100 xx"), "{}", lines.value(0));
    assert_eq!(lines.len(), 100);
}

#[test]
fn projection_without_line_and_compaction() {
    let text = corpus();
    let f = file_with(&text);
    let b = Batcher::open(f.path(), Options { batch_size: 256, seed: Some(1), index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    let batch = b.epoch(0).unwrap().batch(0).unwrap();
    let numbers = batch.to_record_batch_with(&[Column::LineNumber]).unwrap();
    assert_eq!(numbers.num_columns(), 1);
    assert_eq!(numbers.schema().field(0).name(), "line_number");

    let full = batch.to_record_batch().unwrap();
    let small = compact(&full);
    assert_eq!(small.column(0).as_ref(), full.column(0).as_ref());
    // The zero-copy batch reports the whole file window; the compact one only its bytes.
    assert!(full.get_array_memory_size() >= text.len());
    let line_bytes: usize = batch.locate().unwrap().lines(false).map(<[u8]>::len).sum();
    // gc rounds its buffer up, so allow twice the line bytes; still far below the file.
    let size = small.get_array_memory_size();
    assert!(size < 2 * line_bytes + 256 * 32 && size < text.len() / 4, "{size} for {line_bytes} line bytes");
    let small_lines = small.column(0).as_string_view();
    let map = b.map_address_ranges()[0].clone();
    assert!(small_lines.data_buffers().iter().all(|buf| !map.contains(&(buf.as_ptr() as usize))));
}

#[test]
fn invalid_utf8_fails_the_string_path_only_for_served_lines() {
    let f = file_with(b"ok line\n# caf\xe9 in a comment is fine\nbad \xff byte here\nlast\n");
    let b = Batcher::open(f.path(), Options { batch_size: 3, shuffle: Shuffle::None, index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    let err = b.epoch(0).unwrap().batch(0).unwrap().to_record_batch().unwrap_err();
    match &err {
        mmap_batcher::Error::InvalidUtf8 { line_number, byte_offset, .. } => {
            assert_eq!((*line_number, *byte_offset), (3, 40));
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&f.path().display().to_string()) && msg.contains("line 3") && msg.contains("binary"), "{msg}");
    // Raw bytes and the binary type serve it.
    let bin = Batcher::open(f.path(), Options { line_type: LineType::Binary, ..b.options().clone() }).unwrap();
    let rb = bin.epoch(0).unwrap().batch(0).unwrap().to_record_batch().unwrap();
    let lines: &BinaryViewArray = rb.column(0).as_binary_view();
    assert_eq!(lines.value(1), b"bad \xff byte here");
    // Without the bad line, the comment's Latin-1 byte does not matter.
    let g = file_with(b"ok line\n# caf\xe9 in a comment is fine\nlast\n");
    let good = Batcher::open(g.path(), Options { batch_size: 2, index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    assert!(good.epoch(0).unwrap().batch(0).unwrap().to_record_batch().is_ok());
}

/// A sparse file past 4 GiB: lines land in several ≤ 2 GiB windows and views stay correct.
#[test]
fn files_over_4_gib_are_served_through_windows() {
    use std::os::unix::fs::FileExt;
    let gib = 1u64 << 30;
    let f = tempfile::NamedTempFile::new().unwrap();
    let file = f.as_file();
    file.write_at(b"head line number one\n", 0).unwrap();
    // Three lines of 1.5 GiB of NUL bytes each, then a short tail line past 4.5 GiB.
    let ends = [gib * 3 / 2, gib * 3, gib * 9 / 2];
    for &e in &ends {
        file.write_at(b"\n", e - 1).unwrap();
    }
    let tail = b"tail line far beyond four gib\n";
    file.write_at(tail, ends[2]).unwrap();
    let b = Batcher::open(
        f.path(),
        Options { batch_size: 5, shuffle: Shuffle::None, line_type: LineType::Binary, index_cache: IndexCache::Off, ..Default::default() },
    )
    .unwrap();
    assert_eq!(b.num_lines(), 5);
    let batch = b.epoch(0).unwrap().batch(0).unwrap();
    let rb = batch.to_record_batch().unwrap();
    let lines: &BinaryViewArray = rb.column(0).as_binary_view();
    assert!(lines.data_buffers().len() >= 3, "expected several windows");
    assert!(lines.data_buffers().iter().all(|w| w.len() <= i32::MAX as usize));
    assert_views_in_map(lines, b.map_address_ranges()[0].clone());
    assert_eq!(lines.value(0), b"head line number one");
    assert_eq!(lines.value(4), &tail[..tail.len() - 1]);
    assert_eq!(lines.value(2).len() as u64, ends[1] - ends[0] - 1);
    assert!(lines.value(3).iter().all(|&x| x == 0));
    let offsets: &UInt64Array = rb.column(2).as_primitive();
    assert_eq!(offsets.value(4), ends[2]);
}

/// How many mappings of `path` this process holds.
fn mappings_of(path: &std::path::Path) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let name = path.to_str().unwrap();
    maps.lines().filter(|l| l.ends_with(name)).count()
}

#[test]
fn a_stream_dropped_mid_epoch_releases_the_map_at_once() {
    // The read-ahead thread holds the batcher (and so the map): dropping the stream must
    // stop and join it, not leave it preparing batches past the consumer (the IPC fuzz
    // target found a helper still running after the stream was gone).
    let f = file_with(&corpus());
    for _ in 0..20 {
        let b = Batcher::open(f.path(), Options { batch_size: 10, index_cache: IndexCache::Off, ..Default::default() }).unwrap();
        let mut stream = mmap_batcher::BatchStream::new(&b, (0..1000).map(|n| (0, n % 500)));
        assert!(stream.next().unwrap().is_ok());
        assert!(mappings_of(f.path()) >= 1);
        drop(stream);
        drop(b);
        assert_eq!(mappings_of(f.path()), 0, "the map outlived the stream and the batcher");
    }
}

#[test]
fn coalesced_batches_still_view_the_map_each_window_once() {
    // Engines get several logical batches as one record batch: the views must still point
    // into the map (no copy of a line), each window listed once, and every row keep its
    // own batch number.
    let f = file_with(&corpus());
    let b = Batcher::open(f.path(), Options { batch_size: 16, seed: Some(3), index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    let epoch = b.epoch(0).unwrap();
    let parts: Vec<_> = (0..5).map(|n| epoch.batch(n).unwrap().to_record_batch().unwrap()).collect();
    let joined = mmap_batcher::coalesce(&parts).unwrap();
    assert_eq!(joined.num_rows(), 80);
    let lines: &StringViewArray = joined.column(0).as_string_view();
    assert_eq!(lines.data_buffers().len(), parts[0].column(0).as_string_view().data_buffers().len(), "a window listed twice");
    assert!(assert_views_in_map(lines, b.map_address_ranges()[0].clone()) > 0);
    let expected: Vec<String> =
        parts.iter().flat_map(|p| p.column(0).as_string_view().iter().map(|l| l.unwrap().to_string()).collect::<Vec<_>>()).collect();
    assert_eq!(lines.iter().map(|l| l.unwrap().to_string()).collect::<Vec<_>>(), expected);
    let batch: &UInt64Array = joined.column_by_name("batch").unwrap().as_primitive();
    assert_eq!(batch.values().iter().copied().collect::<Vec<_>>(), (0..5u64).flat_map(|n| std::iter::repeat_n(n, 16)).collect::<Vec<_>>());
    assert_eq!(mmap_batcher::coalesce(&parts[..1]).unwrap(), parts[0]);
}

#[test]
fn small_files_share_one_buffer_and_each_view_points_into_its_own_file() {
    // Small files are mapped side by side in one reserved range: a batch drawn from many of
    // them names one data buffer (not one per file), every view still lies inside its own
    // file's bytes, and a large file keeps a map of its own beside them.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    let mut texts = Vec::new();
    for i in 0..60u32 {
        let text: String = (0..(i % 7 + 1)).map(|k| format!("file {i:02} line {k} {}\n", "y".repeat((i * 13 + k) as usize % 40))).collect();
        let p = dir.path().join(format!("f{i:02}.txt"));
        std::fs::write(&p, &text).unwrap();
        paths.push(p);
        texts.push(text.into_bytes());
    }
    let big: String = (0..40_000u32).map(|k| format!("big line {k:06} {}\n", "z".repeat(k as usize % 30))).collect();
    assert!(big.len() > 1 << 20, "larger than a packed file");
    let p = dir.path().join("big.txt");
    std::fs::write(&p, &big).unwrap();
    paths.push(p);
    texts.push(big.into_bytes());
    let b = Batcher::open_many(&paths, Options { batch_size: 256, seed: Some(5), index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    let maps = b.map_address_ranges();
    assert_eq!(maps.len(), paths.len());
    // Debug output names where the maps lie, never their bytes (Arrow prints a buffer's).
    let debug = format!("{b:?}");
    assert!(!debug.contains("121, 121, 121") && debug.len() < 1 << 20, "{} bytes of debug output", debug.len());
    assert!(maps[..60].windows(2).all(|w| w[0].end <= w[1].start), "the small files lie side by side, in order");
    let references: Vec<_> = texts.iter().map(|t| reference_lines(t, true, Some(b'#'))).collect();
    let epoch = b.epoch(0).unwrap();
    let mut seen = 0;
    for batch in epoch.batches() {
        let rb = batch.to_record_batch().unwrap();
        let lines: &StringViewArray = rb.column(0).as_string_view();
        let files: Vec<usize> = batch.locate().unwrap().file_ids().collect();
        let small = files.iter().filter(|&&f| f < 60).count();
        let big = usize::from(files.contains(&60));
        if small > 1 {
            assert!(lines.data_buffers().len() <= 1 + big, "{} buffers for {small} small files", lines.data_buffers().len());
        }
        let numbers: &UInt64Array = rb.column(1).as_primitive();
        for (row, &f) in files.iter().enumerate() {
            let expected = strip_terminator(references[f][numbers.value(row) as usize - 1].bytes);
            assert_eq!(lines.value(row).as_bytes(), expected);
            let view = arrow::array::ByteView::from(lines.views()[row]);
            if view.length > 12 {
                let at = lines.data_buffers()[view.buffer_index as usize].as_ptr() as usize + view.offset as usize;
                assert!(maps[f].contains(&at) && at + view.length as usize <= maps[f].end, "a view of file {f} outside it");
            }
            seen += 1;
        }
    }
    assert_eq!(seen as u64, epoch.num_batches() * 256);
}

#[test]
fn a_small_file_truncated_in_its_pack_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = (0..8)
        .map(|i| {
            let p = dir.path().join(format!("f{i}.txt"));
            std::fs::write(&p, (0..2000).map(|k| format!("file {i} line {k:05} padding padding\n")).collect::<String>()).unwrap();
            p
        })
        .collect();
    let b = Batcher::open_many(&paths, Options { batch_size: 512, seed: Some(1), index_cache: IndexCache::Off, ..Default::default() }).unwrap();
    let epoch = b.epoch(0).unwrap();
    let first = epoch.batch(0).unwrap().to_record_batch().unwrap();
    let files: Vec<usize> = epoch.batch(0).unwrap().locate().unwrap().file_ids().collect();
    std::fs::OpenOptions::new().write(true).open(&paths[3]).unwrap().set_len(100).unwrap();
    let err = (1..epoch.num_batches()).find_map(|n| epoch.batch(n).unwrap().to_record_batch().err()).expect("the truncation is seen");
    assert!(matches!(&err, mmap_batcher::Error::FileChanged { path, .. } if path == &paths[3]), "{err}");
    // The batch made before reads file 3's lines past its new end as zeros under the guard:
    // an error, not `SIGBUS`.
    let offsets: &UInt64Array = first.column(2).as_primitive();
    let lines: &StringViewArray = first.column(0).as_string_view();
    let past_end = (0..lines.len()).any(|row| files[row] == 3 && offsets.value(row) as usize + lines.value(row).len() > 4096);
    let read = mmap_batcher::read_guarded(|| lines.iter().map(|l| l.map_or(0, |s| s.bytes().map(usize::from).sum::<usize>())).sum::<usize>());
    assert!(past_end, "the batch reads file 3 past its new end (seed 1)");
    assert!(matches!(read, Err(mmap_batcher::Error::FileChanged { .. })), "{read:?}");
}

/// Files of many shapes for the packed lines: line ends `\n` and `\r\n`, blank and comment
/// lines between kept ones (a line's end then found at its newline), a line of 70,000 bytes
/// before a comment (its end listed in the index), no final newline, an empty file, a file
/// of comments only, and one file too large for a pack (its own window).
fn tree_of_shapes(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut paths = Vec::new();
    for i in 0..40u32 {
        let end = if i % 5 == 0 { "\r\n" } else { "\n" };
        let mut text: String = (0..(i % 9 + 2))
            .map(|k| {
                let gap = match (i + k) % 4 {
                    0 => format!("# comment {k}{end}"),
                    1 => end.to_string(),
                    _ => String::new(),
                };
                format!("{gap}file {i:02} é line {k} {}{end}", "w".repeat(((i * 17 + k * 5) % 50) as usize))
            })
            .collect();
        match i {
            7 => text.push_str(&format!("{}\n# after the long line\nlast\n", "L".repeat(70_000))),
            11 => text.push_str("no final newline"),
            13 => text.clear(),
            17 => text = "# only\n# comments\n\n".into(),
            _ => {}
        }
        let p = dir.join(format!("d{}/f{i:02}.txt", i % 3));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &text).unwrap();
        paths.push(p);
    }
    let big: String = (0..40_000u32).map(|k| format!("big line {k:06} {}\n", "z".repeat(k as usize % 30))).collect();
    let p = dir.join("big.txt");
    std::fs::write(&p, &big).unwrap();
    paths.push(p);
    paths
}

#[test]
fn a_tree_served_from_its_packed_lines_serves_what_looking_up_each_file_serves() {
    // A corpus whose files all stay mapped is served from one array of its lines
    // (`corpus::PackedLines`); the same files with one fewer allowed to stay mapped are
    // looked up file by file. Every column of every batch must agree, from indexes built in
    // this process and from index files read back (whose cuts the array checks once), for
    // strings with and without terminators and for bytes.
    let dir = tempfile::tempdir().unwrap();
    let paths = tree_of_shapes(&dir.path().join("tree"));
    let texts: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let references: Vec<_> = texts.iter().map(|t| reference_lines(t, true, Some(b'#'))).collect();
    let columns = [Column::Line, Column::LineNumber, Column::ByteOffset, Column::File, Column::Batch];
    for cache in [IndexCache::Off, IndexCache::Dir(dir.path().join("idx")), IndexCache::Dir(dir.path().join("idx"))] {
        for (line_type, keep_terminator) in [(LineType::Utf8, false), (LineType::Utf8, true), (LineType::Binary, false)] {
            let options = Options { batch_size: 64, seed: Some(3), index_cache: cache.clone(), line_type, keep_terminator, ..Default::default() };
            let packed = Batcher::open_many(&paths, options.clone()).unwrap();
            let looked_up = Batcher::open_many(&paths, Options { max_open_files: Some(paths.len() - 1), ..options }).unwrap();
            let (a, b) = (packed.epoch(0).unwrap(), looked_up.epoch(0).unwrap());
            assert_eq!(a.num_batches(), b.num_batches());
            let mut rows = 0;
            for n in 0..a.num_batches() {
                let (x, y) = (a.batch(n).unwrap(), b.batch(n).unwrap());
                assert!(format!("{:?}", x.locate().unwrap()).contains("packed lines"), "batch {n} not served from the packed lines");
                let (rx, ry) = (x.to_record_batch_with(&columns).unwrap(), y.to_record_batch_with(&columns).unwrap());
                assert_eq!(rx, ry, "batch {n} ({line_type:?}, keep_terminator {keep_terminator}, {cache:?})");
                let files = rx.column(3).as_dictionary::<arrow::datatypes::UInt32Type>().keys().clone();
                let numbers: &UInt64Array = rx.column(1).as_primitive();
                let offsets: &UInt64Array = rx.column(2).as_primitive();
                for row in 0..rx.num_rows() {
                    let f = files.value(row) as usize;
                    let at = references[f].binary_search_by_key(&numbers.value(row), |l| l.number).expect("a kept line");
                    let line = &references[f][at];
                    assert_eq!(line.start, offsets.value(row));
                    let expected = if keep_terminator { line.bytes } else { strip_terminator(line.bytes) };
                    let got = match line_type {
                        LineType::Utf8 => rx.column(0).as_string_view().value(row).as_bytes(),
                        LineType::Binary => rx.column(0).as_binary_view().value(row),
                    };
                    assert_eq!(got, expected, "file {f} line {}", numbers.value(row));
                    rows += 1;
                }
                let lines_x: Vec<Vec<u8>> = x.locate().unwrap().lines(keep_terminator).map(<[u8]>::to_vec).collect();
                let lines_y: Vec<Vec<u8>> = y.locate().unwrap().lines(keep_terminator).map(<[u8]>::to_vec).collect();
                assert_eq!(lines_x, lines_y);
            }
            assert_eq!(rows as u64, a.num_batches() * 64);
        }
    }
}

#[test]
fn a_crafted_index_of_one_small_file_is_refused_as_in_a_file_alone() {
    // An index file whose cut lands inside a line (its checksums made valid again, as only
    // a deliberate writer would) fails the check of the packed lines when they are built:
    // the batches are then made file by file, and the one reading the bad line reports the
    // index corrupt, as it would of the file alone; the other batches are served.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for i in 0..6 {
        let p = dir.path().join(format!("f{i}.txt"));
        std::fs::write(&p, (0..20).map(|k| format!("ünïcödé file {i} line {k}\n")).collect::<String>()).unwrap();
        paths.push(p);
    }
    let idx = dir.path().join("idx");
    let options = Options { batch_size: 10, seed: Some(2), index_cache: IndexCache::Dir(idx.clone()), ..Default::default() };
    drop(Batcher::open_many(&paths, options.clone()).unwrap());
    let index = std::fs::read_dir(&idx).unwrap().map(|e| e.unwrap().path()).find(|p| p.to_string_lossy().contains("f4.txt")).unwrap();
    let mut raw = std::fs::read(&index).unwrap();
    const HEADER: usize = 256;
    // Record 2's start one byte later: inside the first character of line 2.
    let at = HEADER + 2 * 8;
    let word = u64::from_le_bytes(raw[at..at + 8].try_into().unwrap()) + 1;
    raw[at..at + 8].copy_from_slice(&word.to_le_bytes());
    let body = twox_hash::XxHash3_64::oneshot(&raw[HEADER..]);
    raw[26 * 8..27 * 8].copy_from_slice(&body.to_le_bytes());
    let head = raw[..31 * 8].iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    raw[31 * 8..32 * 8].copy_from_slice(&head.to_le_bytes());
    std::fs::write(&index, &raw).unwrap();
    let b = Batcher::open_many(&paths, options).unwrap();
    let epoch = b.epoch(0).unwrap();
    let mut refused = 0;
    for n in 0..epoch.num_batches() {
        let batch = epoch.batch(n).unwrap();
        let located = batch.locate().unwrap();
        assert!(!format!("{located:?}").contains("packed lines"), "the packed lines were built over a bad cut");
        // Line 3 starts inside a character, and line 2 ends there.
        let reads_bad_line = located.file_ids().zip(located.line_numbers()).any(|(f, l)| f == 4 && (l == 2 || l == 3));
        match batch.to_record_batch() {
            Err(mmap_batcher::Error::CorruptIndex { path, reason }) => {
                assert!(reads_bad_line && path == paths[4] && reason.contains("line boundaries"), "{reason}");
                refused += 1;
            }
            Err(e) => panic!("{e}"),
            Ok(_) => assert!(!reads_bad_line),
        }
    }
    assert!(refused >= 1);
}
