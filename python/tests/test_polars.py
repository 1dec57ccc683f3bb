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
