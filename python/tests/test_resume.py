"""Training-loop conventions and exact resume: iteration and ``set_epoch``, ``state_dict`` /
``load_state_dict`` across SIGKILL in real processes, elastic resharding, random access."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap

import pytest

from mmap_batcher import MmapBatcher, StateMismatchError


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "c.txt"
    p.write_bytes(b"".join(b"line %d\n" % i for i in range(997)) + b"# skipped\n\n")
    return p


def test_iteration_serves_the_current_epoch_then_moves_on(corpus):
    mmb = MmapBatcher(corpus, batch_size=10, seed=3, index_cache=False)
    assert mmb.epoch_number == 0
    passes = [list(mmb) for _ in range(3)]
    assert passes == [list(mmb.epoch(e).batches()) for e in range(3)]
    assert mmb.epoch_number == 3
    mmb.set_epoch(1)
    assert list(mmb) == passes[1]
    arrow = MmapBatcher(corpus, batch_size=10, seed=3, output="arrow", index_cache=False)
    assert [ab.num_rows for ab in arrow] == [10] * 99


def test_state_dict_is_small_json_and_resumes_exactly(tmp_path):
    big = tmp_path / "ten-million.txt"
    big.write_bytes(b"x\n" * 10_000_000)
    mmb = MmapBatcher(big, batch_size=1000, seed=5)
    it = iter(mmb)
    for _ in range(1234):
        next(it)
    state = mmb.state_dict()
    text = json.dumps(state)
    assert len(text) < 1024, text
    assert state["epoch"] == 0 and state["done"] == 1234 and state["seed"] == 5
    other = MmapBatcher(big, batch_size=1000, seed=5)
    other.load_state_dict(json.loads(text))
    assert next(iter(other)) == next(it)


def test_mismatched_states_raise_naming_what_differs(corpus, tmp_path):
    mmb = MmapBatcher(corpus, batch_size=10, seed=3, index_cache=False)
    next(iter(mmb))
    state = mmb.state_dict()
    with pytest.raises(StateMismatchError, match="batch_size"):
        MmapBatcher(corpus, batch_size=11, seed=3).load_state_dict(state)
    with pytest.raises(StateMismatchError, match="seed"):
        MmapBatcher(corpus, batch_size=10, seed=4).load_state_dict(state)
    other = tmp_path / "other.txt"
    other.write_bytes(corpus.read_bytes().replace(b"line 5\n", b"line X\n"))
    with pytest.raises(StateMismatchError, match="content"):
        MmapBatcher(other, batch_size=10, seed=3).load_state_dict(state)
    with pytest.raises(ValueError, match="shard 0 of 2"):
        mmb.with_shard(0, 2).load_state_dict(MmapBatcher(corpus, batch_size=10, seed=3).with_shard(0, 2).state_dict() | {"shard": {"index": 1, "count": 2}})
    with pytest.raises(ValueError):
        mmb.load_state_dict({"format": 1})


RUNNER = textwrap.dedent(
    """
    import json, os, signal, sys
    from mmap_batcher import MmapBatcher
    path, out, state_path, kill_at, resume, kwargs = sys.argv[1:7]
    kwargs = json.loads(kwargs)
    shard = kwargs.pop("shard", [0, 1])
    mmb = MmapBatcher(path, **kwargs).with_shard(*shard)
    if resume == "1":
        with open(state_path) as f:
            mmb.load_state_dict(json.load(f))
    served = 0
    with open(out, "ab") as f:
        while mmb.epoch_number < 3:
            for batch in mmb:
                f.write(b"".join(batch) + b"----\\n")
                f.flush()
                tmp = state_path + ".tmp"
                with open(tmp, "w") as s:
                    json.dump(mmb.state_dict(), s)
                os.replace(tmp, state_path)
                served += 1
                if served == int(kill_at):
                    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 7, "seed": 11},
        {"batch_size": 7, "shuffle": False},
        {"batch_size": 7, "seed": 11, "ignore_leftovers": False},
        {"batch_size": 5, "shuffle": "block", "shuffle_block": 200, "shuffle_window": 3, "seed": 2},
        {"batch_size": 7, "seed": 11, "shard": [1, 3]},
    ],
    ids=["shuffled", "file-order", "leftovers-kept", "block", "shard-1-of-3"],
)
def test_sigkill_then_resume_matches_an_uninterrupted_run(corpus, tmp_path, kwargs):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    args = json.dumps(kwargs)

    def run(out, state, kill_at, resume):
        return subprocess.run(
            [sys.executable, str(script), str(corpus), str(out), str(state), str(kill_at), resume, args], capture_output=True, timeout=120
        )

    whole = tmp_path / "whole.out"
    assert run(whole, tmp_path / "whole.state", 10**9, "0").returncode == 0
    total = whole.read_bytes().count(b"----\n")
    kill_at = random.Random(len(args)).randrange(5, total - 5)
    out, state = tmp_path / "cut.out", tmp_path / "cut.state"
    killed = run(out, state, kill_at, "0")
    assert killed.returncode == -signal.SIGKILL
    assert run(out, state, 10**9, "1").returncode == 0
    assert out.read_bytes() == whole.read_bytes()


def _serve(args):
    """Serves `count` batches of shard `index` of `n` (after loading `state`, if any)."""
    path, kwargs, index, n, count, state = args
    mmb = MmapBatcher(path, **kwargs).with_shard(index, n)
    if state is not None:
        mmb.load_state_dict(state)
    out = []
    it = iter(mmb)
    for _ in range(count):
        try:
            out.append(next(it))
        except StopIteration:
            break
    return out, mmb.state_dict()


@pytest.mark.parametrize("new_layout", [3, 8, 1])
def test_elastic_resume_is_exactly_once(corpus, new_layout):
    kwargs = {"batch_size": 4, "seed": 9, "ignore_leftovers": False}
    ctx = multiprocessing.get_context("spawn")
    ranks, workers = 4, 2
    # Lockstep ranks, each consuming its workers round-robin: rank r served 7 batches,
    # so its worker 0 served 4 and worker 1 served 3.
    jobs = []
    for r in range(ranks):
        for w in range(workers):
            jobs.append((str(corpus), kwargs, r * workers + w, ranks * workers, 4 if w == 0 else 3, None))
    with ctx.Pool(4) as pool:
        before = pool.map(_serve, jobs)
    served = [line for out, _ in before for batch in out for line in batch]
    combined = MmapBatcher(corpus, **kwargs).combine_states([s for _, s in before])
    assert combined["shard"] == {"index": 0, "count": 1}
    assert len(json.dumps(combined)) < 1024
    jobs = [(str(corpus), kwargs, i, new_layout, 10**6, combined) for i in range(new_layout)]
    with ctx.Pool(4) as pool:
        after = pool.map(_serve, jobs)
    served += [line for out, _ in after for batch in out for line in batch]
    epoch0 = [line for batch in MmapBatcher(corpus, **kwargs).epoch(0).batches() for line in batch]
    assert sorted(served) == sorted(epoch0)
    assert all(s["epoch"] == 1 for _, s in after)


def test_one_order_for_any_world_size(corpus):
    base = MmapBatcher(corpus, batch_size=6, seed=4, index_cache=False)
    serial = list(base.epoch(2).batches())
    for n in (1, 2, 3, 4, 8):
        shards = [list(base.with_shard(i, n).epoch(2).batches()) for i in range(n)]
        interleaved = [shards[i][r] for r in range(len(shards[0])) for i in range(n) if r < len(shards[i])]
        assert interleaved == serial, n


def test_even_shards_for_ddp(corpus):
    mmb = MmapBatcher(corpus, batch_size=10, seed=1, even_shards=True, index_cache=False)
    assert mmb.num_batches == 99
    counts = [len(mmb.with_shard(w, 2, rank=r, world_size=2).epoch(0)) for r in range(2) for w in range(2)]
    assert counts == [24, 24, 24, 24]
    plain = MmapBatcher(corpus, batch_size=10, seed=1, index_cache=False)
    assert [len(plain.with_shard(i, 4).epoch(0)) for i in range(4)] == [25, 25, 25, 24]
    # The dropped batches are the end of each epoch's order: other lines each epoch.
    dropped = []
    for e in range(2):
        kept = {l for i in range(4) for b in mmb.with_shard(i, 4).epoch(e).batches() for l in b}
        dropped.append({l for b in mmb.epoch(e).batches() for l in b} - kept)
    assert len(dropped[0]) == 30 and dropped[0] != dropped[1]


def test_random_access(corpus):
    mmb = MmapBatcher(corpus, batch_size=10, index_cache=False)
    lines = mmb.lines
    assert len(lines) == 997
    assert lines[0] == b"line 0\n" and lines[-1] == b"line 996\n"
    assert mmb.line(998) is None  # the comment line is not served
    assert mmb.line(5) == b"line 4\n"
    with pytest.raises(IndexError):
        lines[997]


def test_grain_map_dataset_over_the_batcher(corpus):
    grain = pytest.importorskip("grain")
    mmb = MmapBatcher(corpus, batch_size=10, index_cache=False)
    ds = grain.MapDataset.source(mmb.lines).shuffle(seed=1).map(lambda line: line.strip().upper())
    got = [ds[i] for i in range(len(ds))]
    assert sorted(got) == sorted(mmb.lines[i].strip().upper() for i in range(mmb.num_lines))
