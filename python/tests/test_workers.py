"""Pickling and shards: spawned worker processes split each epoch exactly."""

from __future__ import annotations

import multiprocessing
import pickle

from mmap_batcher import MmapBatcher


def _serve(args: tuple[MmapBatcher, int]) -> list[tuple[bytes, ...]]:
    mmb, epoch = args
    return [tuple(b) for b in mmb.epoch(epoch).batches()]


def test_pickle_carries_path_options_and_seed_not_data(write):
    path = write(b"".join(b"line %d\n" % i for i in range(10_000)))
    mmb = MmapBatcher(path, batch_size=32, seed=None, comment_char=None, skip_blank_lines=False)
    blob = pickle.dumps(mmb)
    assert len(blob) < 1000
    again = pickle.loads(blob)
    assert again.seed == mmb.seed and again.num_lines == mmb.num_lines
    assert _serve((again, 3)) == _serve((mmb, 3))


def test_spawned_workers_serve_each_epoch_once(write):
    path = write(b"".join(b"row %d\n" % i for i in range(1000)))
    mmb = MmapBatcher(path, batch_size=7, seed=9)
    ctx = multiprocessing.get_context("spawn")
    for epoch in (0, 1):
        serial = _serve((mmb, epoch))
        with ctx.Pool(3) as pool:
            parts = pool.map(_serve, [(mmb.with_shard(w, 3), epoch) for w in range(3)])
        for w in range(3):
            assert parts[w] == serial[w::3]
        served = [line for part in parts for batch in part for line in batch]
        assert len(served) == len(set(served)) == mmb.num_batches * 7


def test_ranks_times_workers_partition_the_epoch(write):
    path = write(b"".join(b"row %d\n" % i for i in range(500)))
    mmb = MmapBatcher(path, batch_size=5, seed=1)
    serial = _serve((mmb, 0))
    shards = {}
    for rank in range(2):
        for worker in range(3):
            s = mmb.with_shard(worker, 3, rank=rank, world_size=2)
            shards[s.shard] = _serve((s, 0))
    assert sorted(shards) == [(i, 6) for i in range(6)]
    for i, batches in shards.items():
        assert batches == serial[i[0]::6]
