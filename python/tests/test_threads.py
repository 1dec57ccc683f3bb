"""The batch builders: ``threads=`` / ``--threads`` change how many threads build the
batches ahead, never which batches are served or in what order."""

from __future__ import annotations

import subprocess

import pyarrow as pa
import pytest
from conftest import REPO

import mmap_batcher as mmb
from mmap_batcher import MmapBatcher, OptionError

CLI = str(REPO / "target" / "debug" / "mmap-batcher")


@pytest.fixture
def files(tmp_path):
    paths = []
    for k in range(3):
        p = tmp_path / f"part{k}.txt"
        p.write_bytes(b"".join(b"part %d line %d %s\n" % (k, i, b"x" * (i % 23)) for i in range(3000 + 500 * k)))
        paths.append(str(p))
    return paths


def test_any_number_of_threads_serves_the_same_batches(files):
    def served(threads):
        b = MmapBatcher(files, batch_size=128, seed=4, threads=threads)
        batches = [list(x) for x in b]
        arrow = [pa.record_batch(rb).to_pylist() for rb in b.epoch(1).record_batches()]
        return batches, arrow

    one = served(1)
    assert one[0] and one[1]
    for threads in (2, 3, 8, None):
        assert served(threads) == one, threads


def test_scan_lines_is_the_same_for_any_number_of_threads(files):
    pl = pytest.importorskip("polars")

    def scan(threads):
        return mmb.scan_lines(files, batch_size=100, seed=2, epochs=2, threads=threads).collect()

    one = scan(1)
    assert one.height > 0
    assert scan(4).equals(one)
    filtered = mmb.scan_lines(files, batch_size=100, seed=2, threads=3).filter(pl.col("batch") < 5).collect()
    assert filtered.equals(mmb.scan_lines(files, batch_size=100, seed=2, threads=1).filter(pl.col("batch") < 5).collect())


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5])
def test_a_bad_thread_count_is_refused(files, bad):
    with pytest.raises((OptionError, TypeError)):
        MmapBatcher(files, threads=bad)


def test_the_cli_serves_the_same_batches_for_any_number_of_threads(files):
    def run(*threads):
        out = subprocess.run([CLI, "batches", *files, "--batch-size", "64", "--seed", "3", "--epochs", "2", *threads], capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    one = run("--threads", "1")
    assert one.count(b"\n") > 100
    assert run("--threads", "4") == one
    assert run() == one
    refused = subprocess.run([CLI, "batches", *files, "--threads", "0"], capture_output=True, timeout=60)
    assert refused.returncode != 0 and b"threads" in refused.stderr
