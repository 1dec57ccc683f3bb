"""The seed's API and rules, against a pure-Python reference."""

from __future__ import annotations

import pytest

from conftest import EXAMPLE, reference_lines
from mmap_batcher import FileChangedError, InvalidUtf8Error, MmapBatcher

TRICKY = {
    "crlf": b"one\r\ntwo\r\n\r\nthree\r\n",
    "no_trailing_newline": b"a\nb\nlast line",
    "blank_variants": b"x\n \t \n\x0b\n\x0c\ny\n\t\x0b\n",
    "comments": b"# c\n#\nnot # a comment\n  # indented is kept\n",
    "inline_edge": b"123456789012\n1234567890123\n12345678901\n",
    "nul_bytes": b"\x00\x00\n\x00abc\n",
    "invalid_utf8": b"ok\n\xff\xfe bad\nfine\n",
    "empty": b"",
    "only_blank": b"\n\n  \n",
    "huge_line": b"short\n" + b"x" * (3 << 20) + b"\nafter\n",
}


def unshuffled(path, batch_size, **kw):
    mmb = MmapBatcher(path, batch_size=batch_size, shuffle=False, ignore_leftovers=False, **kw)
    return [line for batch in mmb.epoch(0).batches() for line in batch]


@pytest.mark.parametrize("name", sorted(TRICKY))
@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_rules_match_reference(write, name, batch_size):
    data = TRICKY[name]
    path = write(data)
    assert unshuffled(path, batch_size) == reference_lines(data)
    assert unshuffled(path, batch_size, skip_blank_lines=False, comment_char=None) == reference_lines(data, False, None)


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_batches_are_full_and_never_empty(write, name):
    data = TRICKY[name]
    n = len(reference_lines(data))
    for ignore in (True, False):
        mmb = MmapBatcher(write(data), batch_size=2, ignore_leftovers=ignore, seed=3)
        sizes = [len(b) for b in mmb.epoch(0).batches()]
        assert all(s > 0 for s in sizes)
        assert sum(sizes) == (n - n % 2 if ignore else n)


def test_readme_example_shape():
    mmb = MmapBatcher(EXAMPLE, batch_size=3, seed=5)
    kept = set(reference_lines(EXAMPLE.read_bytes()))
    assert len(kept) == 10
    leftovers = set()
    for epoch in mmb.epochs(4):
        batches = list(epoch.batches())
        assert [len(b) for b in batches] == [3, 3, 3]
        served = {line for b in batches for line in b}
        assert len(served) == 9 and served <= kept
        assert all(line.endswith(b"\n") for line in served)
        leftovers |= kept - served
    assert len(leftovers) > 1, "the same leftover every epoch"


def test_seeded_runs_reproduce_and_epochs_reshuffle(write):
    path = write(b"".join(b"line %d\n" % i for i in range(1000)))
    a = MmapBatcher(path, batch_size=10, seed=42)
    b = MmapBatcher(str(path), batch_size=10, seed=42)
    ea = [list(e.batches()) for e in a.epochs(3)]
    eb = [list(e.batches()) for e in b.epochs(3)]
    assert ea == eb
    assert ea[0] != ea[1] != ea[2]
    assert sorted(x for batch in ea[0] for x in batch) == sorted(x for batch in ea[1] for x in batch)
    c = MmapBatcher(path, batch_size=10)
    assert isinstance(c.seed, int)
    assert [list(e.batches()) for e in MmapBatcher(path, batch_size=10, seed=c.seed).epochs(1)] == [
        list(e.batches()) for e in c.epochs(1)
    ]


def test_properties_and_context_manager(write):
    path = write(b"a\n\n#c\nb\nc\n")
    with MmapBatcher(path, batch_size=2, seed=1) as mmb:
        assert len(mmb.lines) == 3 and mmb.num_lines == 3 and mmb.physical_lines == 5
        assert mmb.num_batches == 1 and mmb.seed == 1
    assert mmb.closed
    with pytest.raises(ValueError, match="closed"):
        mmb.epoch(0)


def test_errors(write, tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        MmapBatcher(tmp_path / "missing.txt")
    assert e.value.filename.endswith("missing.txt")
    with pytest.raises(IsADirectoryError):
        MmapBatcher(tmp_path)
    path = write(b"a\n")
    with pytest.raises(ValueError, match="batch_size"):
        MmapBatcher(path, batch_size=0)
    with pytest.raises(ValueError, match="comment_char"):
        MmapBatcher(path, comment_char="//")
    with pytest.raises(ValueError, match="comment_char"):
        MmapBatcher(path, comment_char="é")
    assert MmapBatcher(path, comment_char=b";").num_lines == 1


def test_invalid_utf8_only_fails_the_string_path(write):
    path = write(TRICKY["invalid_utf8"])
    mmb = MmapBatcher(path, batch_size=3, shuffle=False)
    assert list(mmb.epoch(0).batches()) == [[b"ok\n", b"\xff\xfe bad\n", b"fine\n"]]
    with pytest.raises(InvalidUtf8Error) as e:
        next(mmb.epoch(0).record_batches())
    assert isinstance(e.value, ValueError)
    assert (e.value.line_number, e.value.byte_offset) == (2, 3)
    assert str(path) in str(e.value)
    binary = MmapBatcher(path, batch_size=3, shuffle=False, binary=True)
    import pyarrow as pa

    rb = pa.record_batch(next(binary.epoch(0).record_batches()))
    assert rb.column("line").to_pylist()[1] == b"\xff\xfe bad"


def test_file_changed_is_detected(write):
    path = write(b"a\nb\n")
    mmb = MmapBatcher(path, batch_size=1)
    mmb.epoch(0)
    with open(path, "ab") as f:
        f.write(b"c\n")
    with pytest.raises(FileChangedError, match="reopen"):
        mmb.epoch(1)


def test_abandoned_epoch_iterator_stops_cleanly(write):
    """``batches()`` locates the next batch on a helper thread; dropping the iterator early
    must neither hang nor disturb a later pass over the same epoch."""
    path = write(b"".join(b"line %d\n" % i for i in range(5000)))
    mmb = MmapBatcher(path, batch_size=10, seed=8)
    epoch = mmb.epoch(0)
    it = epoch.batches()
    first = next(it)
    del it
    full = list(epoch.batches())
    assert full[0] == first and len(full) == 500
    assert [b for b in mmb.epoch(0).batches()] == full
