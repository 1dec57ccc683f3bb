"""Mixtures of named sources: exact shares in every batch, passes, resume, errors."""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import pytest

import mmap_batcher as mmb


def _write(d: Path, name: str, n: int) -> str:
    p = d / f"{name}.txt"
    p.write_text("".join(f"{name} {i}\n" for i in range(n)))
    return str(p)


@pytest.fixture
def three(tmp_path: Path) -> dict[str, str]:
    return {"web": _write(tmp_path, "web", 700), "code": _write(tmp_path, "code", 250), "books": _write(tmp_path, "books", 40)}


def _source_of(line: bytes) -> str:
    return line.split(b" ")[0].decode()


def test_every_batch_holds_each_sources_share(three: dict[str, str]) -> None:
    weights = {"web": 0.7, "code": 0.2, "books": 0.1}
    b = mmb.MmapBatcher(three, weights=weights, batch_size=64, seed=3, index_cache=False)
    served = collections.Counter()
    for batch in b:
        counts = collections.Counter(_source_of(line) for line in batch)
        for name, w in weights.items():
            assert counts[name] in (int(w * 64), int(w * 64) + 1), (name, counts)
        served.update(counts)
    lines = sum(s["lines"] for s in b.sources)
    per_epoch = {s["name"]: s["lines_per_epoch"] for s in b.sources}
    assert sum(per_epoch.values()) == lines
    assert per_epoch["books"] == round(0.1 * lines)
    books = next(s for s in b.sources if s["name"] == "books")
    assert books["passes_per_epoch"] > 2  # 99 of 40 lines: upsampled
    # Leftovers dropped: within a batch of the exact shares.
    for name, w in weights.items():
        assert abs(served[name] - w * b.lines_per_epoch) <= 1.0 + 1e-9


def test_the_source_column_names_each_lines_source(three: dict[str, str]) -> None:
    import pyarrow as pa

    b = mmb.MmapBatcher(three, batch_size=50, seed=1, index_cache=False)
    table = pa.table(b.epoch(0))
    assert "source" in table.column_names and "file" in table.column_names
    names = table.column("source").to_pylist()
    lines = table.column("line").to_pylist()
    assert all(line.startswith(name + " ") for name, line in zip(names, lines))
    assert len(table) == b.lines_per_epoch


def test_resume_mid_epoch_is_exact_and_other_weights_are_refused(three: dict[str, str]) -> None:
    kw = dict(weights={"web": 1, "code": 1, "books": 1}, batch_size=30, seed=9, index_cache=False)
    b = mmb.MmapBatcher(three, **kw)
    it = iter(b)
    first = [next(it) for _ in range(5)]
    state = b.state_dict()
    rest = list(it)
    again = mmb.MmapBatcher(three, **kw)
    again.load_state_dict(state)
    assert list(again) == rest
    whole = list(mmb.MmapBatcher(three, **kw))
    assert first + rest == whole
    other = mmb.MmapBatcher(three, **{**kw, "weights": {"web": 2, "code": 1, "books": 1}})
    with pytest.raises(mmb.StateMismatchError, match="sources"):
        other.load_state_dict(state)
    clone = pickle.loads(pickle.dumps(b))
    assert [s["lines_per_epoch"] for s in clone.sources] == [s["lines_per_epoch"] for s in b.sources]


def test_lines_per_epoch_subsamples_a_new_subset_each_epoch(three: dict[str, str]) -> None:
    b = mmb.MmapBatcher({"web": three["web"]}, lines_per_epoch=350, batch_size=50, seed=2, index_cache=False)
    e0 = {line for batch in b for line in batch}
    e1 = {line for batch in b for line in batch}
    assert len(e0) == len(e1) == 350 and not e0 & e1  # two halves of one pass


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({"web": 1, "code": 1}, "not for books"),
        ({"web": 1, "code": 1, "books": 0}, "positive"),
        ({"web": 1, "code": 1, "books": -2}, "positive"),
        ({"web": 1, "code": 1, "books": 1, "nope": 1}, "not a source"),
    ],
)
def test_bad_weights_are_clear_errors(three: dict[str, str], weights: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mmb.MmapBatcher(three, weights=weights, index_cache=False)


def test_an_empty_source_is_an_error(three: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n")
    with pytest.raises(ValueError, match='"empty" has no kept lines'):
        mmb.MmapBatcher({**three, "empty": str(empty)}, index_cache=False)


def test_engines_take_the_same_sources_and_push_the_source_filter_down(three: dict[str, str]) -> None:
    import polars as pl

    weights = {"web": 0.5, "code": 0.3, "books": 0.2}
    b = mmb.MmapBatcher(three, weights=weights, batch_size=50, seed=1, index_cache=False)
    per_epoch = {s["name"]: s["lines_per_epoch"] for s in b.sources}
    counts = mmb.scan_lines(three, weights=weights, batch_size=50, seed=1, index_cache=False).group_by("source").len().collect()
    assert dict(zip(counts["source"].cast(pl.String).to_list(), counts["len"].to_list())) == per_epoch
    from mmap_batcher._polars import _pushdown

    assert _pushdown(pl.col("source") == "code", 1, 10).sources == ["code"]
    code = mmb.scan_lines(three, weights=weights, batch_size=50, seed=1, index_cache=False).filter(pl.col("source") == "code").collect()
    assert code.height == per_epoch["code"] and set(code["line"].str.split(" ").list.first()) == {"code"}
    datafusion = pytest.importorskip("datafusion")
    ctx = datafusion.SessionContext()
    ctx.register_table("lines", b.table(2))
    rows = ctx.sql("SELECT count(*) AS n FROM lines WHERE source IN ('web', 'books')").to_pydict()
    assert rows["n"] == [2 * (per_epoch["web"] + per_epoch["books"])]
    plan = "\n".join(str(r) for r in ctx.sql("EXPLAIN SELECT line FROM lines WHERE source IN ('web', 'books')").to_pydict().values())
    assert "FilterExec" not in plan


def _serve_shard(args: tuple) -> tuple[list[list[bytes]], dict]:
    paths, kwargs, worker, workers, take, state = args
    b = mmb.MmapBatcher(paths, worker_id=worker, num_workers=workers, **kwargs)
    if state is not None:
        b.load_state_dict(state)
    it = iter(b)
    out = [batch for _, batch in zip(range(take), it)]
    return out, b.state_dict()


@pytest.mark.parametrize("new_layout", [1, 3])
def test_a_mixture_resumes_elastically_exactly_once(three: dict[str, str], new_layout: int) -> None:
    import multiprocessing

    kwargs = {"weights": {"web": 0.6, "code": 0.3, "books": 0.1}, "batch_size": 20, "seed": 5, "ignore_leftovers": False, "index_cache": False}
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        before = pool.map(_serve_shard, [(three, kwargs, w, 4, 3 + w % 2, None) for w in range(4)])
    served = [line for out, _ in before for batch in out for line in batch]
    combined = mmb.MmapBatcher(three, **kwargs).combine_states([s for _, s in before])
    with ctx.Pool(2) as pool:
        after = pool.map(_serve_shard, [(three, kwargs, w, new_layout, 10**6, combined) for w in range(new_layout)])
    served += [line for out, _ in after for batch in out for line in batch]
    epoch0 = [line for batch in mmb.MmapBatcher(three, **kwargs).epoch(0).batches() for line in batch]
    assert collections.Counter(served) == collections.Counter(epoch0)


def test_torch_dataloader_workers_serve_the_mixtures_shares(three: dict[str, str]) -> None:
    torch = pytest.importorskip("torch")
    weights = {"web": 0.7, "code": 0.2, "books": 0.1}
    b = mmb.MmapBatcher(three, weights=weights, batch_size=40, seed=2, index_cache=False)
    loader = torch.utils.data.DataLoader(b.torch(), batch_size=None, num_workers=2, timeout=120)
    batches = list(loader)
    assert len(batches) == b.num_batches
    for batch in batches:
        counts = collections.Counter(_source_of(line) for line in batch)
        for name, w in weights.items():
            assert counts[name] in (int(w * 40), int(w * 40) + 1), counts
    assert sorted(line for batch in batches for line in batch) == sorted(line for batch in b.epoch(0).batches() for line in batch)


def test_cli_info_and_count_describe_the_sources(three: dict[str, str]) -> None:
    import subprocess

    from conftest import REPO

    cli = str(REPO / "target" / "debug" / "mmap-batcher")
    given = ["--source", f"web={three['web']}", "--source", f"code={three['code']}", "--source", f"books={three['books']}"]
    weights = ["--weight", "web=0.7", "--weight", "code=0.2", "--weight", "books=0.1"]
    run = lambda *a: subprocess.run([cli, *a], capture_output=True, text=True, check=True).stdout  # noqa: E731
    info = run("info", *given, *weights, "--lines-per-epoch", "2000")
    mixture = mmb.MmapBatcher(three, weights={"web": 0.7, "code": 0.2, "books": 0.1}, lines_per_epoch=2000, index_cache=False)
    assert "\nlines per epoch: 2000\n" in info
    for s in mixture.sources:
        block = info.split(f"source {s['name']}\n")[1].split("source ")[0]
        assert block.startswith(f"  files:       1\n  lines:       {s['lines']} kept\n")
        assert f"  lines per epoch: {s['lines_per_epoch']} ({s['passes_per_epoch']:.2f} passes)" in block
    assert run("count", three["web"]).splitlines() == ["700 kept lines, 700 physical lines"]  # no mixture
    assert run("count", *given, *weights, "--lines-per-epoch", "500").splitlines() == ["990 kept lines, 990 physical lines", "500 lines per epoch"]
    done = subprocess.run([cli, "index", *given, "--weight", "web=1"], capture_output=True, text=True)
    assert done.returncode != 0 and "--weight" in done.stderr
    assert "3 index files removed" in run("index", "--clean", *given)

