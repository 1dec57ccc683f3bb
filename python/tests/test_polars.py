"""``scan_lines``: a Polars IO plugin with projection, predicate and limit pushdown."""

from __future__ import annotations

import polars as pl
import pytest

from conftest import reference_lines
from mmap_batcher import MmapBatcher, scan_lines


@pytest.fixture
def corpus(write):
    data = b"".join(
        (b"# header %d\n" % i if i % 50 == 0 else b"") + b"row %d %s\n" % (i, b"ab" if i % 7 == 0 else b"cd")
        for i in range(3000)
    )
    return write(data), data


def test_scan_matches_the_batcher_order(corpus):
    path, data = corpus
    df = scan_lines(path, batch_size=64, seed=11, epochs=2).collect()
    mmb = MmapBatcher(path, batch_size=64, seed=11, ignore_leftovers=False)
    serial = [line.rstrip(b"\n").decode() for e in mmb.epochs(2) for b in e.batches() for line in b]
    assert df["line"].to_list() == serial
    assert df.schema == pl.Schema(
        {"line": pl.String, "line_number": pl.UInt64, "byte_offset": pl.UInt64, "epoch": pl.UInt64, "batch": pl.UInt64}
    )
    physical = data.split(b"\n")
    assert all(physical[n - 1].decode() == l for n, l in zip(df["line_number"], df["line"]))
    assert df["epoch"].value_counts().sort("epoch")["count"].to_list() == [3000, 3000]


def test_filter_select_head(corpus):
    path, data = corpus
    expected = sorted(l.rstrip(b"\n").decode() for l in reference_lines(data) if b"ab" in l)
    lf = scan_lines(path, batch_size=100, seed=5, epochs=3)
    got = (
        lf.filter(pl.col("epoch") == 1)
        .filter(pl.col("line").str.contains("ab"))
        .select("line", "epoch")
        .collect()
    )
    assert sorted(got["line"].to_list()) == expected
    assert set(got["epoch"].to_list()) == {1}
    assert got.columns == ["line", "epoch"]
    head = lf.head(150).collect()
    assert head.height == 150
    assert head["line"].to_list() == lf.collect()["line"].to_list()[:150]
    one_batch = lf.filter((pl.col("batch") == 4) & (pl.col("epoch") >= 2)).collect()
    assert one_batch.height == 100 and set(one_batch["batch"]) == {4} and set(one_batch["epoch"]) == {2}


def test_projection_never_builds_unrequested_lines(write):
    """On a file that is not UTF-8, only scans that read ``line`` fail: proof that the
    ``line`` column is not built when it is not projected."""
    path = write(b"good\n\xff bad\n")
    lf = scan_lines(path, batch_size=1, shuffle=False)
    assert lf.select("line_number").collect()["line_number"].to_list() == [1, 2]
    with pytest.raises(Exception, match="not valid UTF-8"):
        lf.select("line").collect()
    assert scan_lines(path, binary=True, shuffle=False).collect()["line"].to_list() == [b"good", b"\xff bad"]


def test_missing_file_fails_at_scan_time(tmp_path):
    with pytest.raises(FileNotFoundError):
        scan_lines(tmp_path / "nope.txt")


@pytest.mark.parametrize("shuffle", [False, True])
def test_line_number_pushdown_reads_only_matching_lines(write, shuffle):
    path = write(b"".join(b"row %d\n" % i for i in range(1, 61)))
    lf = scan_lines(path, batch_size=4, shuffle=shuffle, seed=3)
    got = lf.filter((pl.col("line_number") >= 5) & (pl.col("line_number") < 12)).select("line_number", "line").collect()
    assert sorted(got["line_number"].to_list()) == list(range(5, 12))
    assert sorted(got["line"].to_list(), key=lambda s: int(s.split()[1])) == [f"row {i}" for i in range(5, 12)]
    between = lf.filter(pl.col("line_number").is_between(41, 43)).collect()
    assert sorted(between["line_number"].to_list()) == [41, 42, 43]
    # What the scan is handed for that predicate: only the matching lines are built, and
    # in file order only the two batches that hold them are read.
    mmb = MmapBatcher(path, batch_size=4, shuffle=shuffle, seed=3, ignore_leftovers=False)
    batches = list(mmb._scan(["line_number"], (0, 1), (0, mmb.num_batches), line_numbers=(5, 12)))
    assert sum(len(b) for b in batches) == 7
    assert len(batches) == (2 if not shuffle else mmb.num_batches)


def test_pushdown_parses_every_form():
    from mmap_batcher._polars import _pushdown

    c = pl.col
    assert _pushdown(c("line_number") > 9, 2, 5).line_numbers == (10, 2**64 - 1)
    assert _pushdown((c("line_number") <= 3) & (c("epoch") == 1), 2, 5) == ((1, 2), (0, 5), (0, 4), None, None)
    assert _pushdown(c("epoch") == 2**70, 2, 5).epochs[0] <= 2**64 - 1
    assert _pushdown(c("line") == "x", 2, 5) == ((0, 2), (0, 5), None, None, None)
    assert _pushdown((c("source") == "code") & (c("source") == "web"), 2, 5).sources == []
