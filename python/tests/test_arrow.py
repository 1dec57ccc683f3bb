"""Zero-copy Arrow batches through the PyCapsule interface, proven by addresses and RssAnon."""

from __future__ import annotations

import gc

import polars as pl
import pyarrow as pa

from mmap_batcher import MmapBatcher


def rss_anon() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon")


def long_lines(n: int, width: int = 200) -> bytes:
    return b"".join(b"%08d %s\n" % (i, b"abcdefghij" * (width // 10)) for i in range(n))


def data_buffers(arr: pa.Array) -> list[pa.Buffer]:
    """The variadic data buffers of a view array (after the validity and views buffers)."""
    return [b for b in arr.buffers()[2:] if b is not None]


def test_pyarrow_views_point_into_the_map_and_outlive_the_batcher(write):
    path = write(long_lines(5000))
    mmb = MmapBatcher(path, batch_size=256, seed=1)
    lo, hi = mmb.map_address_range()
    kept = []
    for ab in mmb.epoch(0).record_batches():
        rb = pa.record_batch(ab)
        line = rb.column("line")
        assert line.type == pa.string_view()
        bufs = data_buffers(line)
        assert bufs, "long lines must reference data buffers"
        for b in bufs:
            assert lo <= b.address and b.address + b.size <= hi, "a data buffer outside the map"
        kept.append(rb)
    assert rb.column_names == ["line", "line_number", "byte_offset", "epoch", "batch"]
    mmb.close()
    del mmb, ab
    gc.collect()
    # The map is still mapped: the batches own a reference to it.
    all_rows = pa.Table.from_batches(kept)
    lines = all_rows.column("line").to_pylist()
    numbers = all_rows.column("line_number").to_pylist()
    text = path.read_bytes().split(b"\n")
    assert all(text[n - 1].decode() == l for n, l in zip(numbers, lines))


def test_polars_imports_without_copying(write):
    path = write(long_lines(200_000))  # ~43 MB
    size = path.stat().st_size
    mmb = MmapBatcher(path, batch_size=1024, seed=2)
    lo, hi = mmb.map_address_range()
    first = pl.DataFrame(next(mmb.epoch(0).record_batches()))
    # The newest compat level exports Polars' own view buffers (the default converts to large_string).
    exported = first["line"].to_arrow(compat_level=pl.CompatLevel.newest())
    bufs = data_buffers(exported)
    assert bufs and all(lo <= b.address < hi for b in bufs), "Polars copied the line bytes"
    before = rss_anon()
    frames = list(mmb.epoch(0).dataframes(["line"]))
    grown = rss_anon() - before
    assert sum(f.height for f in frames) == mmb.num_batches * 1024
    # Holding a whole epoch costs the 16-byte views (~8% of this file), not a copy (100%).
    assert grown < size / 5, f"RssAnon grew {grown} bytes holding one epoch of a {size}-byte file"
    assert frames[3]["line"].str.len_bytes().min() == 209


def test_compact_copies_only_referenced_bytes(write):
    path = write(long_lines(20_000))
    mmb = MmapBatcher(path, batch_size=100, seed=3)
    ab = next(mmb.epoch(0).record_batches())
    small = ab.compact()
    assert ab.nbytes >= path.stat().st_size  # zero-copy reports the whole window
    assert small.nbytes < 100 * 250 * 2
    assert pa.record_batch(small).equals(pa.record_batch(ab))
    lo, hi = mmb.map_address_range()
    assert all(not (lo <= b.address < hi) for b in data_buffers(pa.record_batch(small).column("line")))


def test_projection_and_epoch_batch_columns(write):
    path = write(long_lines(1000))
    mmb = MmapBatcher(path, batch_size=100, seed=4)
    epoch = mmb.epoch(2)
    rbs = [pa.record_batch(ab) for ab in epoch.record_batches(["batch", "line_number"])]
    assert rbs[0].column_names == ["batch", "line_number"]
    assert [rb.column("batch")[0].as_py() for rb in rbs] == list(range(10))
    numbers = sorted(n for rb in rbs for n in rb.column("line_number").to_pylist())
    assert numbers == list(range(1, 1001))
