//! Compressed shards (gzip, zstd) are served exactly as their uncompressed twins, in every
//! shuffle mode and mixed with plain files; corrupt, truncated and undecoded formats are
//! errors naming the file.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::file_with;
use mmap_batcher::{Batcher, Error, IndexCache, Options, Shuffle};

fn text(lines: usize, tag: &str) -> Vec<u8> {
    (0..lines).map(|i| format!("{tag} {i:06} {}\n", "z".repeat((i * 31) % 90))).collect::<String>().into_bytes()
}

fn gzip(bytes: &[u8], members: usize) -> Vec<u8> {
    // Several members, as `cat a.gz b.gz` or pigz make: all must be read.
    let mut out = Vec::new();
    for chunk in bytes.chunks(bytes.len().div_ceil(members).max(1)) {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(chunk).unwrap();
        out.extend(e.finish().unwrap());
    }
    out
}

fn zstd(bytes: &[u8], frames: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in bytes.chunks(bytes.len().div_ceil(frames).max(1)) {
        out.extend(zstd::encode_all(chunk, 3).unwrap());
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn options(shuffle: Shuffle) -> Options {
    Options { batch_size: 37, seed: Some(11), ignore_leftovers: false, index_cache: IndexCache::Auto, shuffle, ..Default::default() }
}

/// Every batch's lines of epochs 0 and 1, with their file numbers and line numbers.
fn served(b: &Batcher) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for e in 0..2 {
        for batch in b.epoch(e).unwrap().batches() {
            out.extend(batch.locate().unwrap().raw_lines().map(<[u8]>::to_vec));
        }
    }
    out
}

const MODES: [Shuffle; 3] = [Shuffle::Global, Shuffle::Block { block_bytes: 4096, window_blocks: 3 }, Shuffle::None];

#[test]
fn gzip_and_zstd_shards_serve_what_their_twins_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (text(700, "a"), text(1300, "b"), text(50, "c"));
    let plain = [write(dir.path(), "a.txt", &a), write(dir.path(), "b.txt", &b), write(dir.path(), "c.txt", &c)];
    // Names say nothing: formats are recognised by their first bytes.
    let packed = [write(dir.path(), "a.txt", &a), write(dir.path(), "b.gz", &gzip(&b, 3)), write(dir.path(), "c.data", &zstd(&c, 2))];
    for mode in MODES {
        let twin = Batcher::open_many(&plain, options(mode)).unwrap();
        let ours = Batcher::open_many(&packed, options(mode)).unwrap();
        assert_eq!(ours.num_lines(), twin.num_lines());
        assert_eq!(served(&ours), served(&twin), "{mode:?}");
    }
    // One compressed file alone, under its record-batch path too.
    let one = write(dir.path(), "only.zst", &zstd(&b, 1));
    let twin = Batcher::open(&plain[1], options(Shuffle::Global)).unwrap();
    let ours = Batcher::open(&one, options(Shuffle::Global)).unwrap();
    let rb = |x: &Batcher| x.epoch(3).unwrap().batch(5).unwrap().to_record_batch().unwrap();
    assert_eq!(rb(&ours).column(0), rb(&twin).column(0));
}

#[test]
fn empty_and_corrupt_compressed_input() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.gz", &gzip(b"", 1));
    assert_eq!(Batcher::open(&empty, options(Shuffle::Global)).unwrap().num_lines(), 0);

    let good = gzip(&text(2000, "t"), 1);
    let truncated = write(dir.path(), "cut.gz", &good[..good.len() / 2]);
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    flipped[mid + 1] ^= 0x55;
    let corrupt = write(dir.path(), "bad.gz", &flipped);
    let z = zstd(&text(2000, "t"), 1);
    let ztrunc = write(dir.path(), "cut.zst", &z[..z.len() - 7]);
    for p in [&truncated, &corrupt, &ztrunc] {
        match Batcher::open(p, options(Shuffle::Global)) {
            Err(e @ Error::Compressed { .. }) => assert!(e.to_string().starts_with(&p.display().to_string()), "{e}"),
            other => panic!("{}: expected a compression error, got {other:?}", p.display()),
        }
    }
}

#[test]
fn formats_not_decoded_are_refused_by_name() {
    for (head, name) in [(&b"\xfd7zXZ\x00\x00\x04rest"[..], "xz"), (b"BZh91AY&SY", "bzip2"), (b"\x04\x22\x4d\x18junk", "lz4")] {
        let f = file_with(head);
        let e = Batcher::open(f.path(), options(Shuffle::Global)).unwrap_err();
        let message = e.to_string();
        assert!(matches!(e, Error::Compressed { .. }) && message.contains(name) && message.contains("decompress it first"), "{message}");
    }
    // Text that merely starts like a magic number is text (in a directory of its own: the
    // index file written beside it goes away with it).
    let dir = tempfile::tempdir().unwrap();
    let text = write(dir.path(), "looks-compressed.txt", b"BZh is not bzip2\n\x1f\x8b is two bytes\n");
    assert_eq!(Batcher::open(&text, options(Shuffle::None)).unwrap().num_lines(), 2);
}
