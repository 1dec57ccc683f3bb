"""Every engine through its own public API, giving the same numbers as the CLI's `sql`:
datafusion-python, DuckDB, pyarrow, Polars and Ray Data (a real local cluster)."""

from __future__ import annotations

import pickle
import subprocess

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.ipc
import pytest

from conftest import REPO
from mmap_batcher import MmapBatcher

CLI = str(REPO / "target" / "debug" / "mmap-batcher")


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "c.txt"
    subprocess.run([CLI, "corpus", str(path), "--lines", "20000", "--seed", "3"], check=True)
    return path


def cli_count(path, where: str, epochs: int = 2) -> int:
    out = subprocess.run(
        [CLI, "sql", str(path), f"SELECT count(*) FROM lines WHERE {where}", "--epochs", str(epochs), "--seed", "1",
         "--batch-size", "512", "--format", "csv"],
        capture_output=True, check=True,
    )
    return int(out.stdout.decode().splitlines()[1])


def test_datafusion_python_table_with_pushdown(corpus):
    datafusion = pytest.importorskip("datafusion")
    mmb = MmapBatcher(corpus, batch_size=512, seed=1, ignore_leftovers=False)
    ctx = datafusion.SessionContext()
    ctx.register_table("lines", mmb.table(epochs=2))
    n = ctx.sql("SELECT count(*) FROM lines WHERE line LIKE '%ab%'").collect()[0].column(0)[0].as_py()
    assert n == cli_count(corpus, "line LIKE '%ab%'")
    one = ctx.sql("SELECT line, epoch, batch FROM lines WHERE epoch = 1 AND batch = 3").collect()
    rows = sum(b.num_rows for b in one)
    assert rows == 512
    want = [l.rstrip(b"\n").decode() for l in list(mmb.epoch(1).batches())[3]]
    assert [v for b in one for v in b.column("line").to_pylist()] == want
    plan = ctx.sql("EXPLAIN SELECT line FROM lines WHERE epoch = 1 AND batch = 3").collect()
    assert "full_filters" in str(plan[0].column(1))


def test_duckdb_reads_epochs_and_the_ipc_stream(corpus, tmp_path):
    mmb = MmapBatcher(corpus, batch_size=512, seed=1, ignore_leftovers=False)
    ep = mmb.epoch(0)  # an Arrow stream: a DuckDB replacement scan
    n = duckdb.sql("SELECT count(*) FROM ep WHERE line LIKE '%ab%'").fetchall()[0][0]
    assert n == cli_count(corpus, "line LIKE '%ab%' AND epoch = 0")
    for line_type in ("large", "view"):
        out = tmp_path / f"{line_type}.arrows"
        subprocess.run([CLI, "ipc", str(corpus), "-o", str(out), "--epochs", "2", "--seed", "1", "--batch-size", "512",
                        "--keep-leftovers", "--layout", line_type], check=True)
        reader = pa.ipc.open_stream(out)  # noqa: F841 - read by DuckDB below
        got = duckdb.sql("SELECT count(*) FROM reader WHERE line LIKE '%ab%'").fetchall()[0][0]
        assert got == cli_count(corpus, "line LIKE '%ab%'")


def test_pyarrow_and_polars_read_an_epoch_stream(corpus):
    mmb = MmapBatcher(corpus, batch_size=512, seed=1, ignore_leftovers=False)
    table = pa.RecordBatchReader.from_stream(mmb.epoch(1)).read_all()
    assert table.num_rows == mmb.num_lines
    df = pl.DataFrame(mmb.epoch(1))
    assert df.height == mmb.num_lines and df["line"].to_list() == table.column("line").to_pylist()
    assert df.filter(pl.col("line").str.contains("ab")).height == cli_count(corpus, "line LIKE '%ab%' AND epoch = 1")


def test_batches_that_travel_pickle_small(corpus):
    mmb = MmapBatcher(corpus, batch_size=1024, seed=1)
    ab = next(iter(mmb.epoch(0).record_batches()))
    assert ab.nbytes >= corpus.stat().st_size  # zero-copy: the whole window
    blob = pickle.dumps(ab)
    assert len(blob) < 4 * sum(len(l) for l in next(iter(mmb.epoch(0).batches()))) + 20_000
    back = pickle.loads(blob)
    assert pa.record_batch(back).equals(pa.record_batch(ab))
    assert (back.epoch, back.batch) == (0, 0)
    large = next(iter(mmb.epoch(0).record_batches(layout="large")))
    assert pa.record_batch(large).schema.field("line").type == pa.large_string()


def test_ray_data_local_cluster(corpus):
    ray = pytest.importorskip("ray")
    from mmap_batcher.ray import read_lines

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        ds = read_lines(corpus, epochs=2, batch_size=512, seed=1, override_num_blocks=4)
        counts = {r["epoch"]: r["count()"] for r in ds.groupby("epoch").count().take_all()}
        mmb = MmapBatcher(corpus, batch_size=512, seed=1, ignore_leftovers=False)
        assert counts == {0: mmb.num_lines, 1: mmb.num_lines}
        rows = ds.take_all()
        per_epoch = {e: sorted(r["line_number"] for r in rows if r["epoch"] == e) for e in (0, 1)}
        numbers = sorted(pa.RecordBatchReader.from_stream(mmb.epoch(0)).read_all().column("line_number").to_pylist())
        assert per_epoch[0] == per_epoch[1] == numbers  # every line once per epoch
        assert ds.filter(lambda r: "ab" in r["line"]).count() == cli_count(corpus, "line LIKE '%ab%'")
        sizes = [b.num_rows for b in ds.iter_batches(batch_size=1000, batch_format="pyarrow")]
        assert sum(sizes) == 2 * mmb.num_lines
        # Blocks carry their lines, not the map: close to the corpus size per epoch.
        assert ds.materialize().size_bytes() < 4 * 2 * corpus.stat().st_size
        assert ds.to_pandas()["line"].str.len().sum() > 0  # large_string converts to pandas
    finally:
        ray.shutdown()
