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

/// Drops `f`'s pages from the page cache (written out first), as after a reboot.
fn evict(f: &tempfile::NamedTempFile) {
    f.as_file().sync_all().unwrap();
    rustix::fs::fadvise(f.as_file(), 0, None, rustix::fs::Advice::DontNeed).unwrap();
}

#[test]
fn a_file_out_of_the_page_cache_is_indexed_as_one_in_it_and_a_cut_while_it_is_read_is_an_error() {
    // A file mostly not cached is read ahead of the index scans, which wait for the reads
    // (several 8 MiB reads, several segments each way here): the same index, and a
    // truncation during the reads still `FileChanged` or a failed first batch, never a hang
    // or `SIGBUS`.
    let mut text = Vec::new();
    for i in 0..900_000u32 {
        text.extend_from_slice(format!("line {i:08} {}\n", "y".repeat(i as usize % 50)).as_bytes());
    }
    let f = file_with(&text);
    let in_order = || Batcher::open(f.path(), Options { shuffle: mmap_batcher::Shuffle::None, batch_size: 4096, ..opts() }).unwrap();
    let warm = in_order();
    evict(&f);
    let cold = in_order();
    assert_eq!(cold.num_lines(), warm.num_lines());
    let epoch = |b: &Batcher| {
        let e = b.epoch(0).unwrap();
        (0..e.num_batches())
            .map(|n| {
                let located = e.batch(n).unwrap().locate().unwrap();
                (located.raw_lines().map(<[u8]>::to_vec).collect::<Vec<_>>(), located.byte_offsets().collect::<Vec<_>>())
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(epoch(&cold), epoch(&warm));
    for round in 0..6u64 {
        let f = file_with(&text);
        evict(&f);
        let file = f.reopen().unwrap();
        let cut = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(round * 4));
            file.set_len(4096).unwrap();
        });
        match open(f.path()) {
            Ok(b) => match b.epoch(0).and_then(|e| e.batch(0).unwrap().to_record_batch()) {
                Ok(_) => assert!(b.num_lines() <= 4096 / 10 + 1, "round {round}: a batch of a truncated file was served"),
                Err(Error::FileChanged { .. }) => {}
                Err(e) => panic!("round {round}: {e}"),
            },
            Err(Error::FileChanged { .. }) => {}
            Err(e) => panic!("round {round}: {e}"),
        }
        cut.join().unwrap();
    }
}

/// A tree of two directories of five files each, and a link to the second: the paths
/// given are `d0/f*` and `via/f*` (through the link).
fn linked_tree(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    for d in ["d0", "d1"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
        for i in 0..5 {
            std::fs::write(root.join(format!("{d}/f{i}.txt")), format!("{d} file {i}\nsecond line\n")).unwrap();
        }
    }
    std::os::unix::fs::symlink(root.join("d1"), root.join("via")).unwrap();
    (0..5).map(|i| root.join(format!("d0/f{i}.txt"))).chain((0..5).map(|i| root.join(format!("via/f{i}.txt")))).collect()
}

/// `dir` made again as a directory of five files of other contents (new inodes).
fn remade(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..5 {
        std::fs::write(dir.join(format!("f{i}.txt")), format!("other {i}\nother line\n")).unwrap();
    }
}

#[test]
fn every_epoch_sees_a_path_that_names_another_file_now() {
    // Each epoch checks that every path still names the file indexed. Once every file has
    // passed, a quiet watch of the files and a `stat` of each directory stand for the
    // files' own `stat`s; these are the changes that only the directories' show, and the
    // ones the files' watches show.
    type Change = fn(&std::path::Path);
    let changes: [(&str, Change, &str); 6] = [
        (
            "a directory moved away and made again",
            |r| {
                std::fs::rename(r.join("d0"), r.join("d0-old")).unwrap();
                remade(&r.join("d0"));
            },
            "d0/f0.txt",
        ),
        (
            "the link pointed elsewhere",
            |r| {
                remade(&r.join("d2"));
                std::os::unix::fs::symlink(r.join("d2"), r.join("via-new")).unwrap();
                std::fs::rename(r.join("via-new"), r.join("via")).unwrap();
            },
            "via/f0.txt",
        ),
        (
            "the whole tree moved away and copied back",
            |r| {
                let old = r.with_extension("old");
                std::fs::rename(r, &old).unwrap();
                std::fs::create_dir_all(r).unwrap();
                for d in ["d0", "d1"] {
                    std::fs::create_dir_all(r.join(d)).unwrap();
                    for i in 0..5 {
                        std::fs::copy(old.join(format!("{d}/f{i}.txt")), r.join(format!("{d}/f{i}.txt"))).unwrap();
                    }
                }
                std::os::unix::fs::symlink(r.join("d1"), r.join("via")).unwrap();
            },
            "d0/f0.txt",
        ),
        (
            "a file renamed over",
            |r| {
                std::fs::write(r.join("d1/new.txt"), "replaced\n").unwrap();
                std::fs::rename(r.join("d1/new.txt"), r.join("d1/f3.txt")).unwrap();
            },
            "via/f3.txt",
        ),
        ("a file removed", |r| std::fs::remove_file(r.join("d0/f2.txt")).unwrap(), "d0/f2.txt"),
        (
            "a file moved away and another put in its place",
            |r| {
                std::fs::rename(r.join("d0/f4.txt"), r.join("d0/moved.txt")).unwrap();
                std::fs::write(r.join("d0/f4.txt"), "d0 file 4\nsecond line\n").unwrap();
            },
            "d0/f4.txt",
        ),
    ];
    for (what, change, named) in changes {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        let paths = linked_tree(&root);
        let b = Batcher::open_many(&paths, Options { batch_size: 4, seed: Some(1), ..opts() }).unwrap();
        for e in 0..3 {
            b.epoch(e).unwrap_or_else(|err| panic!("{what}: epoch {e} before the change: {err}"));
        }
        // Entries added beside the files change their directories, not what the paths name.
        std::fs::write(root.join("d0/unrelated.txt"), "x\n").unwrap();
        b.epoch(3).unwrap_or_else(|err| panic!("{what}: after an unrelated file: {err}"));
        change(&root);
        let err = b.epoch(4).err().unwrap_or_else(|| panic!("{what}: not seen"));
        assert_eq!(err.path(), Some(root.join(named).as_path()), "{what}: {err}");
        assert!(matches!(err, Error::FileChanged { .. } | Error::Io { .. } | Error::NotFound { .. }), "{what}: {err:?}");
    }
}
