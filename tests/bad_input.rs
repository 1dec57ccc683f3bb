//! Bad input gets a typed error naming the file, never a panic or silent loss.

mod common;

use common::file_with;
use mmap_batcher::{Batcher, Error, IndexCache, LineType, Options};

fn opts() -> Options {
    Options { index_cache: IndexCache::Off, ..Default::default() }
}

fn open(path: &std::path::Path) -> Result<Batcher, Error> {
    Batcher::open(path, opts())
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.txt");
    let err = open(&path).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.txt"));
}

#[test]
fn directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::IsADirectory { .. }), "{err:?}");
    assert_eq!(err.path(), Some(dir.path()));
}

#[test]
fn unreadable_file() {
    use std::os::unix::fs::PermissionsExt;
    let f = file_with(b"secret\n");
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o000)).unwrap();
    match open(f.path()) {
        Err(err) => assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}"),
        // root reads anything; the mapping from EACCES is still checked by `denied_io_error_maps`.
        Ok(b) => assert_eq!(b.num_lines(), 1),
    }
}

#[test]
fn empty_file_has_no_batches() {
    let f = file_with(b"");
    for ignore_leftovers in [true, false] {
        let b = Batcher::open(f.path(), Options { ignore_leftovers, ..opts() }).unwrap();
        assert_eq!(b.num_lines(), 0);
        let e = b.epoch(0).unwrap();
        assert_eq!(e.batches().count(), 0);
    }
    let only_blanks = file_with(b"\n \n# x\n");
    let b = Batcher::open(only_blanks.path(), Options { ignore_leftovers: false, ..opts() }).unwrap();
    assert_eq!(b.epoch(0).unwrap().batches().count(), 0);
}

#[test]
fn batch_size_zero() {
    let f = file_with(b"a\n");
    let err = Batcher::open(f.path(), Options { batch_size: 0, ..opts() }).unwrap_err();
    assert!(matches!(err, Error::InvalidOption { .. }), "{err:?}");
    assert!(err.to_string().contains("batch_size"));
}

#[test]
fn file_changed_since_indexing() {
    let f = file_with(b"a\nb\n");
    let b = Batcher::open(f.path(), opts()).unwrap();
    assert!(b.epoch(0).is_ok());
    std::fs::OpenOptions::new().append(true).open(f.path()).unwrap().write_all_at_end(b"c\n");
    let err = b.epoch(1).unwrap_err();
    assert!(matches!(err, Error::FileChanged { .. }), "{err:?}");
    assert!(err.to_string().contains("reopen"));
}

trait AppendExt {
    fn write_all_at_end(self, bytes: &[u8]);
}
impl AppendExt for std::fs::File {
    fn write_all_at_end(mut self, bytes: &[u8]) {
        std::io::Write::write_all(&mut self, bytes).unwrap();
    }
}

/// A real line one byte over the limit, in a sparse file (no 2 GiB written to disk).
#[test]
fn line_over_the_view_limit() {
    use std::os::unix::fs::FileExt;
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().write_at(b"short\n", 0).unwrap();
    let long_end = 6 + mmap_batcher::MAX_LINE_LEN + 1; // line 2 is MAX_LINE_LEN + 1 bytes
    f.as_file().write_at(b"\n", long_end - 1).unwrap();
    let err = Batcher::open(f.path(), Options { line_type: LineType::Binary, ..opts() }).unwrap_err();
    match err {
        Error::LineTooLong { line_number, length, .. } => {
            assert_eq!((line_number, length), (2, mmap_batcher::MAX_LINE_LEN + 1));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_file_truncated_while_it_is_indexed_is_an_error_not_a_crash() {
    // The index build reads the map on two threads; a truncation at any moment of it must
    // be `FileChanged` (or, if the build finished first, a batcher that fails its first
    // batch), never `SIGBUS`.
    let mut text = Vec::new();
    for i in 0..1_500_000u32 {
        text.extend_from_slice(format!("line {i:08} with some text after it\n").as_bytes());
    }
    let mut outcomes = std::collections::BTreeSet::new();
    for round in 0..12u64 {
        let f = file_with(&text);
        let file = f.reopen().unwrap();
        let cut = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(round * 3));
            file.set_len(4096).unwrap();
        });
        let outcome = match open(f.path()) {
            Ok(b) => match b.epoch(0).and_then(|e| e.batch(0).unwrap().to_record_batch()) {
                Ok(_) if b.num_lines() <= 4096 / 36 + 1 => "opened after the cut",
                Ok(_) => panic!("round {round}: a batch of a truncated file was served"),
                Err(Error::FileChanged { .. }) => "changed at the first batch",
                Err(e) => panic!("round {round}: {e}"),
            },
            Err(Error::FileChanged { what, .. }) => {
                assert!(what.contains("truncated") || what.contains("size"), "{what}");
                "changed while indexed"
            }
            Err(e) => panic!("round {round}: {e}"),
        };
        cut.join().unwrap();
        outcomes.insert(outcome);
    }
    assert!(outcomes.contains("changed while indexed"), "{outcomes:?}");
}
