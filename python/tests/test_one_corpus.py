"""One corpus, one answer: the same glob, with each entry point's defaults, gives the same
number of rows through every table view — the CLI's `count`, `sql` and `ipc`, Polars
`scan_lines`, the datafusion-python `table()`, Ray's `read_lines` and DuckDB over the IPC
file — and the batch iterators drop only the last partial batch of each epoch, as
`ignore_leftovers=True` (their default, the original class's) says."""

from __future__ import annotations

import subprocess

import duckdb
import polars as pl
import pyarrow as pa
import pytest

from conftest import REPO
from mmap_batcher import MmapBatcher, scan_lines

CLI = str(REPO / "target" / "debug" / "mmap-batcher")


@pytest.fixture
def glob(tmp_path):
    for i, n in enumerate([333, 45, 1001]):
        text = "".join(f"file {i} row {k}\n" + ("# note\n\n" if k % 10 == 0 else "") for k in range(n))
        (tmp_path / f"part{i}.log").write_text(text)
    return str(tmp_path / "*.log")


def cli(*args: str) -> str:
    return subprocess.run([CLI, *args], capture_output=True, text=True, check=True).stdout


def test_every_table_view_counts_every_kept_line(glob, tmp_path):
    kept = 333 + 45 + 1001
    assert cli("count", glob).startswith(f"{kept} kept lines")
    assert cli("sql", "--format", "csv", glob, "SELECT count(*) AS n FROM lines").split() == ["n", str(kept)]
    cli("ipc", "--file", "-o", str(tmp_path / "all.arrow"), glob)
    assert pa.ipc.open_file(str(tmp_path / "all.arrow")).read_all().num_rows == kept
    ipc_table = pa.ipc.open_file(str(tmp_path / "all.arrow")).read_all()  # DuckDB reads it through pyarrow
    assert duckdb.sql("SELECT count(*) FROM ipc_table").fetchall() == [(kept,)]
    assert scan_lines(glob).select(pl.len()).collect().item() == kept

    datafusion = pytest.importorskip("datafusion")
    mmb = MmapBatcher(glob, seed=1)  # the batch iterators' defaults: batches of 100, leftovers dropped
    ctx = datafusion.SessionContext()
    ctx.register_table("lines", mmb.table(epochs=1))
    assert ctx.sql("SELECT count(*) FROM lines").collect()[0].column(0)[0].as_py() == kept
    assert sum(len(b) for b in mmb) == kept // 100 * 100

    ray = pytest.importorskip("ray")
    from mmap_batcher.ray import read_lines

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        assert read_lines(glob, seed=1).count() == kept
    finally:
        ray.shutdown()
