"""Many files, one corpus: lists and globs served as one shuffled corpus."""

from __future__ import annotations

import os
import subprocess
import sys

import polars as pl
import pyarrow as pa
import pytest

from conftest import REPO, reference_lines
from mmap_batcher import (
    DirectoryError,
    DuplicateInputError,
    FileChangedError,
    MissingFileError,
    MmapBatcher,
    NoInputError,
    scan_lines,
)


@pytest.fixture
def whole(tmp_path):
    data = b"".join((b"# header %d\n" % i if i % 97 == 0 else b"") + b"row %05d text\n" % i for i in range(6000))
    path = tmp_path / "whole.txt"
    path.write_bytes(data)
    return path, data


def split(tmp_path, data: bytes, parts: int) -> list[str]:
    lines = data.splitlines(keepends=True)
    d = tmp_path / f"split-{parts}"
    d.mkdir()
    paths = []
    for i in range(parts):
        p = d / f"part-{i:04d}.txt"
        p.write_bytes(b"".join(lines[i * len(lines) // parts : (i + 1) * len(lines) // parts]))
        paths.append(str(p))
    return paths


@pytest.mark.parametrize("parts", [1, 3, 200])
def test_split_corpus_serves_the_same_lines(tmp_path, whole, parts):
    path, data = whole
    paths = split(tmp_path, data, parts)
    glob = str(tmp_path / f"split-{parts}" / "part-*.txt")
    for source in (glob, paths, [os.fsencode(p) for p in paths]):
        mmb = MmapBatcher(source, batch_size=64, seed=3, ignore_leftovers=False, index_cache=False)
        assert mmb.num_files == parts
        served = sorted(l for e in range(2) for b in mmb.epoch(e).batches() for l in b)
        assert served == sorted(reference_lines(data) * 2)
    if parts == 1:
        one = MmapBatcher(paths, batch_size=64, seed=3)
        assert list(one.epoch(0).batches()) == list(MmapBatcher(path, batch_size=64, seed=3).epoch(0).batches())


def test_file_column_and_its_pushdown(tmp_path, whole):
    _, data = whole
    paths = split(tmp_path, data, 3)
    mmb = MmapBatcher(paths, batch_size=100, seed=1, ignore_leftovers=False)
    assert mmb.columns == ["line", "line_number", "byte_offset", "epoch", "batch", "file"]
    rb = pa.record_batch(next(iter(mmb.epoch(0).record_batches())))
    files = rb.column("file").to_pylist()
    assert set(files) <= set(paths)
    for f, n, line in zip(files, rb.column("line_number").to_pylist(), rb.column("line").to_pylist()):
        assert open(f, "rb").read().split(b"\n")[n - 1].decode() == line
    lf = scan_lines(paths, seed=1, batch_size=100)
    only = lf.filter(pl.col("file") == paths[1]).collect()
    assert set(only["file"].to_list()) == {paths[1]}
    assert only.height == len(reference_lines(open(paths[1], "rb").read()))
    datafusion = pytest.importorskip("datafusion")
    ctx = datafusion.SessionContext()
    ctx.register_table("lines", mmb.table(epochs=1))
    n = ctx.sql(f"SELECT count(*) FROM lines WHERE file = '{paths[2]}'").collect()[0].column(0)[0].as_py()
    assert n == len(reference_lines(open(paths[2], "rb").read()))


def test_bad_inputs_name_the_file(tmp_path, whole):
    path, _ = whole
    with pytest.raises(NoInputError, match="nothing-\\*"):
        MmapBatcher(str(tmp_path / "nothing-*.txt"))
    with pytest.raises(MissingFileError, match="missing.txt"):
        MmapBatcher([str(path), str(tmp_path / "missing.txt")])
    with pytest.raises(DirectoryError):
        MmapBatcher([str(path), str(tmp_path)])
    with pytest.raises(DuplicateInputError, match="twice"):
        MmapBatcher([str(path), str(tmp_path / "." / "whole.txt")], on_duplicate_file="error")
    with pytest.raises(NoInputError):
        MmapBatcher([])
    other = tmp_path / "other.txt"
    other.write_bytes(b"a\nb\n")
    mmb = MmapBatcher([str(path), str(other)], batch_size=10, index_cache=False)
    other.write_bytes(b"a\nc\n")
    with pytest.raises(FileChangedError, match="other.txt"):
        list(mmb.epoch(0).batches())


def test_a_thousand_files_under_256_descriptors(tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(1000):
        (d / f"f{i:04d}.txt").write_bytes(b"".join(b"file %d line %d\n" % (i, j) for j in range(5)))
    code = f"""
import resource
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
from mmap_batcher import MmapBatcher
for attempt in range(2):  # the second open maps the 1,000 index files
    mmb = MmapBatcher({str(d / "f*.txt")!r}, batch_size=50, seed=1, max_open_files=100)
    lines = [l for e in range(2) for b in mmb.epoch(e).batches() for l in b]
    assert len(lines) == 2 * 5000 and len(set(lines)) == 5000, len(lines)
    assert mmb.index_status.count("loaded" if attempt else "written") == 1000
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == b"ok", out.stderr.decode()[-2000:]
    cli = subprocess.run(
        f"ulimit -n 256 && '{REPO / 'target' / 'debug' / 'mmap-batcher'}' count '{d}'/f*.txt", shell=True, capture_output=True, timeout=300
    )
    assert cli.returncode == 0 and cli.stdout.decode().startswith("5000 kept lines"), cli.stderr


def test_compressed_shards_serve_what_their_twins_serve(tmp_path, whole):
    """gzip and zstd shards (recognised by their bytes) equal their uncompressed twins,
    in every mode, through Python, Polars and a pickled copy."""
    import gzip
    import pickle

    from mmap_batcher import CompressionError

    _, data = whole
    paths = split(tmp_path, data, 3)
    packed = [paths[0], paths[1] + ".gz", paths[2] + ".gz"]
    for plain, gz in zip(paths[1:], packed[1:]):
        with open(plain, "rb") as f, gzip.open(gz, "wb") as out:
            out.write(f.read())
    for shuffle in (True, "block", False):
        kw = dict(batch_size=50, seed=8, shuffle=shuffle, ignore_leftovers=False)
        twin = MmapBatcher(paths, **kw)
        ours = MmapBatcher(packed, **kw)
        assert list(ours.epoch(1).batches()) == list(twin.epoch(1).batches())
        again = pickle.loads(pickle.dumps(ours))
        assert list(again.epoch(1).batches()) == list(twin.epoch(1).batches())
    frame = scan_lines(packed, shuffle=False).select("file", "line").collect()
    assert frame.height == len(reference_lines(data))
    assert frame["file"].unique().sort().to_list() == sorted(packed)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(open(packed[1], "rb").read()[:-20])
    with pytest.raises(CompressionError, match="cut.gz: gzip") as e:
        MmapBatcher(str(cut))
    assert isinstance(e.value, OSError) and e.value.path == str(cut)
