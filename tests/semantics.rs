//! What is served: the line rules, batching, epochs and seeds, against a naive reference.

mod common;

use std::collections::HashSet;

use common::{file_with, reference_lines, strip_terminator};
use mmap_batcher::{Batcher, IndexCache, Options, Shuffle};
use proptest::prelude::*;

fn opts(batch_size: usize) -> Options {
    Options { batch_size, seed: Some(11), index_cache: IndexCache::Off, ..Default::default() }
}

/// Every served line of every batch of `epoch`, raw.
fn epoch_lines(b: &Batcher, epoch: u64) -> Vec<Vec<Vec<u8>>> {
    let e = b.epoch(epoch).unwrap();
    e.batches().map(|batch| batch.locate().unwrap().raw_lines().map(<[u8]>::to_vec).collect()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// The index and the unshuffled batches match the naive reference on inputs rich in
    /// the bytes that matter: newlines, CR, blanks, comment chars and NUL.
    #[test]
    fn unshuffled_batches_match_reference(
        bytes in proptest::collection::vec(prop_oneof![
            Just(b'\n'), Just(b'\r'), Just(b' '), Just(b'\t'), Just(0x0b), Just(b'#'), Just(0u8), Just(b'a'), any::<u8>()
        ], 0..300),
        batch_size in 1usize..6,
        skip_blank in any::<bool>(),
        comment in prop_oneof![Just(None), Just(Some(b'#')), Just(Some(b' '))],
        keep_leftovers in any::<bool>(),
    ) {
        let f = file_with(&bytes);
        let options = Options {
            batch_size, shuffle: Shuffle::None, ignore_leftovers: !keep_leftovers,
            skip_blank_lines: skip_blank, comment_char: comment, index_cache: IndexCache::Off, ..Default::default()
        };
        let b = Batcher::open(f.path(), options).unwrap();
        let expected = reference_lines(&bytes, skip_blank, comment);
        prop_assert_eq!(b.num_lines(), expected.len() as u64);
        for (k, r) in expected.iter().enumerate() {
            prop_assert_eq!(b.line_position(k as u64).unwrap(), (0, r.number, r.start));
            prop_assert_eq!(b.line_bytes(k as u64).unwrap(), r.bytes);
        }
        let e = b.epoch(0).unwrap();
        let served: Vec<Vec<u8>> = e.batches().flat_map(|batch| {
            assert!(!batch.is_empty() && batch.len() <= batch_size);
            batch.locate().unwrap().lines(false).map(<[u8]>::to_vec).collect::<Vec<_>>()
        }).collect();
        let full = expected.len() / batch_size * batch_size;
        let want: Vec<Vec<u8>> = expected.iter()
            .take(if keep_leftovers { expected.len() } else { full })
            .map(|r| strip_terminator(r.bytes).to_vec()).collect();
        prop_assert_eq!(served, want);
    }

    /// A shuffled epoch with leftovers kept serves every kept line exactly once.
    #[test]
    fn shuffled_epoch_is_a_permutation(
        n in 0usize..200, batch_size in 1usize..17, seed in any::<u64>(), epoch in 0u64..5
    ) {
        let text: String = (0..n).map(|i| format!("line {i}\n")).collect();
        let f = file_with(text.as_bytes());
        let b = Batcher::open(f.path(), Options { batch_size, seed: Some(seed), ignore_leftovers: false, index_cache: IndexCache::Off, ..Default::default() }).unwrap();
        let mut ids: Vec<u64> = b.epoch(epoch).unwrap().batches().flat_map(|x| x.line_ids().to_vec()).collect();
        ids.sort_unstable();
        prop_assert_eq!(ids, (0..n as u64).collect::<Vec<_>>());
    }
}

#[test]
fn last_line_without_newline_is_served() {
    let f = file_with(b"a\nb\nlast");
    let b = Batcher::open(f.path(), Options { batch_size: 1, shuffle: Shuffle::None, ..opts(1) }).unwrap();
    let lines: Vec<Vec<u8>> = epoch_lines(&b, 0).concat();
    assert_eq!(lines, vec![b"a\n".to_vec(), b"b\n".to_vec(), b"last".to_vec()]);
}

#[test]
fn even_division_with_leftovers_kept_has_no_empty_batch() {
    let f = file_with(b"1\n2\n3\n4\n5\n6\n");
    let b = Batcher::open(f.path(), Options { batch_size: 3, ignore_leftovers: false, ..opts(3) }).unwrap();
    let batches = epoch_lines(&b, 0);
    assert_eq!(batches.len(), 2);
    assert!(batches.iter().all(|x| x.len() == 3));
}

#[test]
fn leftovers_differ_between_epochs_and_runs_reproduce() {
    let text: String = (0..101).map(|i| format!("{i}\n")).collect();
    let f = file_with(text.as_bytes());
    let b = Batcher::open(f.path(), opts(10)).unwrap();
    let all: HashSet<u64> = (0..101).collect();
    let dropped: Vec<u64> = (0..8)
        .map(|e| {
            let served: HashSet<u64> = b.epoch(e).unwrap().batches().flat_map(|x| x.line_ids().to_vec()).collect();
            assert_eq!(served.len(), 100);
            *all.difference(&served).next().unwrap()
        })
        .collect();
    let distinct: HashSet<_> = dropped.iter().collect();
    assert!(distinct.len() > 1, "the same line was dropped every epoch: {dropped:?}");
    // Same seed, fresh open: the same epochs.
    let again = Batcher::open(f.path(), opts(10)).unwrap();
    assert_eq!(epoch_lines(&b, 3), epoch_lines(&again, 3));
    // Epochs differ from each other, and another seed differs.
    assert_ne!(epoch_lines(&b, 0), epoch_lines(&b, 1));
    let other = Batcher::open(f.path(), Options { seed: Some(12), ..opts(10) }).unwrap();
    assert_ne!(epoch_lines(&b, 0), epoch_lines(&other, 0));
}

#[test]
fn unseeded_batchers_pick_and_report_their_seed() {
    let f = file_with(b"a\nb\nc\n");
    let unseeded = Options { seed: None, ..opts(100) };
    let one = Batcher::open(f.path(), unseeded.clone()).unwrap();
    let two = Batcher::open(f.path(), unseeded).unwrap();
    assert_ne!(one.seed(), two.seed());
    let replay = Batcher::open(f.path(), Options { seed: Some(one.seed()), ..opts(100) }).unwrap();
    assert_eq!(replay.seed(), one.seed());
    let small = |seed| Batcher::open(f.path(), Options { seed: Some(seed), ..opts(1) }).unwrap();
    assert_eq!(epoch_lines(&small(one.seed()), 0), epoch_lines(&small(one.seed()), 0));
}

#[test]
fn crlf_terminators_are_stripped_or_kept() {
    let f = file_with(b"one\r\ntwo\n\r\nthree\r");
    let plain = Batcher::open(f.path(), Options { shuffle: Shuffle::None, ignore_leftovers: false, ..opts(10) }).unwrap();
    let got: Vec<Vec<u8>> = plain.epoch(0).unwrap().batch(0).unwrap().locate().unwrap().lines(false).map(<[u8]>::to_vec).collect();
    // A lone `\r` at the very end is content, not a terminator.
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec(), b"three\r".to_vec()]);
    let got: Vec<Vec<u8>> = plain.epoch(0).unwrap().batch(0).unwrap().locate().unwrap().lines(true).map(<[u8]>::to_vec).collect();
    assert_eq!(got, vec![b"one\r\n".to_vec(), b"two\n".to_vec(), b"three\r".to_vec()]);
}

#[test]
fn comments_are_first_byte_only_and_can_be_disabled() {
    let f = file_with(b"# c\n  # not a comment\n;x\ny\n");
    let hash = Batcher::open(f.path(), opts(1)).unwrap();
    assert_eq!(hash.num_lines(), 3);
    let semi = Batcher::open(f.path(), Options { comment_char: Some(b';'), ..opts(1) }).unwrap();
    assert_eq!(semi.num_lines(), 3);
    let none = Batcher::open(f.path(), Options { comment_char: None, ..opts(1) }).unwrap();
    assert_eq!(none.num_lines(), 4);
}
