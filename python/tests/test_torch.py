"""PyTorch with the real packages: torch's DataLoader, torchdata's StatefulDataLoader,
DDP over gloo on 127.0.0.1, Lightning's Trainer. Every loader with workers has a timeout,
every multi-process run a deadline."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
stateful = pytest.importorskip("torchdata.stateful_dataloader")
from torch.utils.data import DataLoader, IterableDataset  # noqa: E402

from mmap_batcher import MmapBatcher  # noqa: E402
from mmap_batcher.torch import LineTensors, TorchDataset  # noqa: E402

StatefulDataLoader = stateful.StatefulDataLoader
TIMEOUT = 120  # seconds a loader waits for a worker's batch


@pytest.fixture
def corpus(write):
    return write(b"".join(b"row %d\n" % i for i in range(1000)))


def serial(mmb: MmapBatcher, epoch: int) -> list[list[bytes]]:
    return [list(b) for b in mmb.epoch(epoch).batches()]


def loader(ds, workers: int, *, stateful_loader: bool = False, **kwargs):
    cls = StatefulDataLoader if stateful_loader else DataLoader
    if workers:
        kwargs.setdefault("timeout", TIMEOUT)
    return cls(ds, batch_size=None, num_workers=workers, **kwargs)


def flat(batches) -> list[bytes]:
    return [line for b in batches for line in b]


def test_the_batcher_itself_is_refused_by_a_dataloader_naming_the_adapter(corpus):
    mmb = MmapBatcher(corpus, batch_size=4, seed=1)
    with pytest.raises(TypeError, match=r"mmb\.torch\(\)"):
        next(iter(DataLoader(mmb, batch_size=None)))
    with pytest.raises(TypeError, match=r"mmb\.torch\(\)"):
        len(mmb)
    assert mmb and mmb.num_lines == 1000


def test_dataloader_over_the_adapter_yields_the_shuffled_batches(corpus):
    mmb = MmapBatcher(corpus, batch_size=4, seed=1)
    ds = mmb.torch()
    assert isinstance(ds, IterableDataset) and isinstance(ds, TorchDataset)
    got = list(DataLoader(ds, batch_size=None))
    assert got == serial(mmb, 0)
    assert got[0] != [b"row 0\n", b"row 1\n", b"row 2\n", b"row 3\n"]
    assert sorted(flat(got)) == sorted(b"row %d\n" % i for i in range(1000))


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_workers_serve_each_epoch_once_and_passes_advance_epochs(corpus, method):
    mmb = MmapBatcher(corpus, batch_size=7, seed=3)
    dl = loader(mmb.torch(), 2, multiprocessing_context=method)
    # No set_epoch: each pass is the next epoch, in the serial order (workers taken in turn).
    passes = [list(dl) for _ in range(3)]
    for e, got in enumerate(passes):
        assert got == serial(mmb, e), f"pass {e}"
    assert passes[0] != passes[1] != passes[2]


@pytest.mark.parametrize("workers", [0, 1, 3, 4])
def test_any_number_of_workers_serves_the_epoch_in_order(corpus, workers):
    mmb = MmapBatcher(corpus, batch_size=10, seed=5, ignore_leftovers=False)
    dl = loader(mmb.torch(), workers)
    assert [list(dl) for _ in range(2)] == [serial(mmb, 0), serial(mmb, 1)]


@pytest.mark.parametrize("output", ["bytes", "arrow", "polars"])
def test_a_file_truncated_under_the_workers_is_an_error_not_a_bus_error(write, output):
    # torch installs its own SIGBUS handler in each worker ("Unexpected bus error ... killed
    # by signal"); the batcher's guard is installed again over it when a worker's stream
    # starts, so a truncation while the worker's builders read the map is FileChangedError,
    # raised in the main process by the loader.
    lines = b"".join(b"line %08d with some text after it\n" % i for i in range(200_000))
    for run in range(3):
        path = write(lines)
        mmb = MmapBatcher(path, batch_size=1024, seed=run, index_cache=False, output=output)
        dl = loader(mmb.torch(), 2)
        with pytest.raises(Exception) as raised:
            for i, _ in enumerate(dl):
                if i == 2:
                    os.truncate(path, 4096)
        text = str(raised.value)
        assert "changed" in text and "signal" not in text, text


def test_set_epoch_reaches_persistent_workers_and_epochs_replay(corpus):
    mmb = MmapBatcher(corpus, batch_size=9, seed=11)
    ds = mmb.torch()
    dl = loader(ds, 2, persistent_workers=True)
    assert list(dl) == serial(mmb, 0)
    assert list(dl) == serial(mmb, 1)
    ds.set_epoch(5)
    assert ds.epoch_number == 5
    assert list(dl) == serial(mmb, 5)
    assert list(dl) == serial(mmb, 6)
    ds.set_epoch(1)  # replays
    assert list(dl) == serial(mmb, 1)


def test_set_epoch_each_epoch_as_with_a_distributed_sampler(corpus):
    mmb = MmapBatcher(corpus, batch_size=9, seed=11)
    ds = mmb.torch()
    dl = loader(ds, 2)
    for e in (0, 1, 1, 7):
        ds.set_epoch(e)
        assert list(dl) == serial(mmb, e)


def test_ranks_and_workers_split_the_epoch_exactly_once(corpus):
    mmb = MmapBatcher(corpus, batch_size=5, seed=2)
    whole = serial(mmb, 0)
    parts = [list(loader(mmb.torch(rank=r, world_size=3), 2)) for r in range(3)]
    served = [b for p in parts for b in p]
    assert sorted(map(tuple, served)) == sorted(map(tuple, whole))
    # A shard of a batcher has the adapter too, and splits further over the workers.
    again = [list(loader(mmb.with_shard(rank=r, world_size=3).torch(), 2)) for r in range(3)]
    assert again == parts


def test_even_shards_give_every_rank_the_same_count(corpus):
    mmb = MmapBatcher(corpus, batch_size=7, seed=2, even_shards=True)
    counts = [len(list(loader(mmb.torch(rank=r, world_size=3), 2))) for r in range(3)]
    assert len(set(counts)) == 1 and counts[0] == mmb.num_batches // 6 * 2


def test_arrow_and_tensor_items_with_pin_memory(corpus):
    mmb = MmapBatcher(corpus, batch_size=8, seed=4)
    want = serial(mmb, 0)
    arrow = list(loader(mmb.torch(output="arrow"), 2))
    pa = pytest.importorskip("pyarrow")
    assert [pa.record_batch(b).column("line").to_pylist() for b in arrow] == [
        [line.decode().rstrip("\n") for line in b] for b in want
    ]
    with pytest.warns(UserWarning, match="pin"):
        tensors = list(loader(mmb.torch(output="tensor"), 2, pin_memory=True))
    assert all(isinstance(t, LineTensors) and t.data.dtype == torch.uint8 for t in tensors)
    assert [[t.line(i) for i in range(t.num_lines)] for t in tensors] == [[line.rstrip(b"\n") for line in b] for b in want]
    assert [(t.epoch, t.batch) for t in tensors] == [(0, b) for b in range(len(want))]


def test_pickled_arrow_batches_are_small(corpus):
    mmb = MmapBatcher(corpus, batch_size=64, seed=4, output="arrow")
    batch = next(iter(mmb))
    assert len(pickle.dumps(batch)) < 4 * sum(len(x) for x in serial(mmb, 0)[0]) + 2048


@pytest.mark.parametrize("workers", [0, 2, 4])
def test_stateful_dataloader_resumes_exactly(corpus, workers):
    mmb = MmapBatcher(corpus, batch_size=6, seed=8)
    whole = serial(mmb, 0) + serial(mmb, 1)
    dl = loader(mmb.torch(), workers, stateful_loader=True)
    it = iter(dl)
    head = [next(it) for _ in range(17)]
    state = dl.state_dict()
    del it, dl
    # A new process would do this: a new batcher, a new loader, the saved state.
    dl2 = loader(MmapBatcher(corpus, batch_size=6, seed=8).torch(), workers, stateful_loader=True)
    dl2.load_state_dict(state)
    rest = list(dl2)
    assert head + rest == whole[: len(serial(mmb, 0))]
    assert list(dl2) == serial(mmb, 1)  # and the next pass is the next epoch


def test_stateful_resume_twice_and_at_the_epoch_boundary(corpus):
    mmb = MmapBatcher(corpus, batch_size=6, seed=8)
    e0, e1 = serial(mmb, 0), serial(mmb, 1)
    new = lambda: loader(MmapBatcher(corpus, batch_size=6, seed=8).torch(), 2, stateful_loader=True)  # noqa: E731
    dl = new()
    it = iter(dl)
    got = [next(it) for _ in range(5)]
    for _ in range(2):  # twice in a row, each from the last state
        state = dl.state_dict()
        dl = new()
        dl.load_state_dict(state)
        it = iter(dl)
        got += [next(it) for _ in range(5)]
    got += list(it)
    assert got == e0
    state = dl.state_dict()  # the epoch finished
    dl = new()
    dl.load_state_dict(state)
    assert list(dl) == e1


def test_stateful_resume_with_persistent_workers(corpus):
    mmb = MmapBatcher(corpus, batch_size=6, seed=8)
    dl = loader(mmb.torch(), 2, stateful_loader=True, persistent_workers=True)
    assert list(dl) == serial(mmb, 0)
    it = iter(dl)
    head = [next(it) for _ in range(9)]
    state = dl.state_dict()
    dl2 = loader(MmapBatcher(corpus, batch_size=6, seed=8).torch(), 2, stateful_loader=True, persistent_workers=True)
    dl2.load_state_dict(state)
    assert head + list(dl2) == serial(mmb, 1)
    assert list(dl2) == serial(mmb, 2)


@pytest.mark.parametrize("before,after", [(2, 3), (4, 1), (3, 0)])
def test_resume_into_another_number_of_workers(corpus, before, after):
    mmb = MmapBatcher(corpus, batch_size=5, seed=6)
    whole = serial(mmb, 0)
    dl = loader(mmb.torch(), before, stateful_loader=True)
    it = iter(dl)
    head = [next(it) for _ in range(23)]
    state = dl.state_dict()
    ds = MmapBatcher(corpus, batch_size=5, seed=6).torch()
    ds.resume_from(state)
    rest = list(loader(ds, after))
    assert sorted(map(tuple, head + rest)) == sorted(map(tuple, whole))
    assert len(head + rest) == len(whole)


def test_lockstep_resume_from_one_rank_only(corpus):
    mmb = MmapBatcher(corpus, batch_size=5, seed=6, even_shards=True)
    steps = 7
    heads, states = [], []
    for r in range(2):  # two ranks in lockstep, two workers each
        dl = loader(mmb.torch(rank=r, world_size=2), 2, stateful_loader=True)
        it = iter(dl)
        heads += [next(it) for _ in range(steps)]
        states.append(dl.state_dict())
    ds = mmb.torch(rank=0, world_size=3)
    with pytest.raises(ValueError, match="lockstep"):
        ds.resume_from(states[0])
    rests = []
    for r in range(3):
        ds = MmapBatcher(corpus, batch_size=5, seed=6, even_shards=True).torch(rank=r, world_size=3)
        ds.resume_from(states[0], lockstep=True)
        rests += list(loader(ds, 1))
    served = heads + rests
    whole = serial(MmapBatcher(corpus, batch_size=5, seed=6), 0)
    assert len(set(map(tuple, served))) == len(served)
    assert set(map(tuple, served)) <= set(map(tuple, whole))
    assert len(whole) - len(served) < 3  # even shards drop less than one batch per new shard


def test_grain_takes_the_lines_view(corpus):
    grain = pytest.importorskip("grain")
    mmb = MmapBatcher(corpus, batch_size=4, seed=1)
    ds = grain.MapDataset.source(mmb.lines).shuffle(seed=1)
    assert sorted(ds[i] for i in range(len(ds))) == sorted(b"row %d\n" % i for i in range(1000))
    assert pickle.loads(pickle.dumps(mmb.lines))[3] == b"row 3\n"
    with pytest.warns(DeprecationWarning, match=r"mmb\.lines\[k\]"):
        assert mmb[0] == b"row 0\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDP = textwrap.dedent(
    """
    import json, os, sys
    import torch, torch.distributed as dist, torch.multiprocessing as mp
    from torchdata.stateful_dataloader import StatefulDataLoader
    from mmap_batcher import MmapBatcher

    path, world, port, out, steps, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]

    def run(rank):
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
        ds = MmapBatcher(path, batch_size=5, seed=6, even_shards=True).torch()  # rank from torch.distributed
        if resume != "-":
            ds.resume_from(torch.load(resume), lockstep=True)
        dl = StatefulDataLoader(ds, batch_size=None, num_workers=2, timeout=120)
        got = []
        for i, b in enumerate(dl):
            if i == steps:
                break
            got.append([x.decode() for x in b])
        if rank == 0:
            torch.save(dl.state_dict(), out + ".state")
        everyone = [None] * world
        dist.all_gather_object(everyone, {"rank": rank, "shard": ds.shard, "batches": got})
        if rank == 0:
            json.dump(everyone, open(out, "w"))
        dist.destroy_process_group()

    if __name__ == "__main__":
        mp.spawn(run, nprocs=world, join=True)
    """
)


def _ddp(tmp_path, corpus, world: int, steps: int, resume: str, name: str):
    script = tmp_path / "ddp.py"
    script.write_text(DDP)
    out = tmp_path / name
    args = [sys.executable, str(script), str(corpus), str(world), str(_free_port()), str(out), str(steps), resume]
    done = subprocess.run(args, capture_output=True, timeout=300, env=dict(os.environ, MASTER_ADDR="127.0.0.1"))
    assert done.returncode == 0, done.stderr.decode()[-4000:]
    return json.loads(out.read_text()), str(out) + ".state"


@pytest.mark.parametrize("world", [2, 3])
def test_ddp_ranks_from_torch_distributed_serve_the_epoch_once(tmp_path, corpus, world):
    result, _ = _ddp(tmp_path, corpus, world, -1, "-", "full.json")
    assert sorted(r["rank"] for r in result) == list(range(world))
    counts = {len(r["batches"]) for r in result}
    assert len(counts) == 1  # even shards: every rank the same number of steps
    served = [tuple(b) for r in result for b in r["batches"]]
    whole = [tuple(x.decode() for x in b) for b in serial(MmapBatcher(corpus, batch_size=5, seed=6), 0)]
    assert len(set(served)) == len(served) and set(served) <= set(whole)
    assert len(whole) - len(served) < world * 2


def test_ddp_checkpoint_of_rank_0_resumes_on_another_world_size(tmp_path, corpus):
    first, state = _ddp(tmp_path, corpus, 2, 11, "-", "first.json")
    second, _ = _ddp(tmp_path, corpus, 3, -1, state, "second.json")
    served = [tuple(b) for r in first + second for b in r["batches"]]
    whole = [tuple(x.decode() for x in b) for b in serial(MmapBatcher(corpus, batch_size=5, seed=6), 0)]
    assert all(len(r["batches"]) == 11 for r in first)
    assert len(set(served)) == len(served) and set(served) <= set(whole)
    assert len(whole) - len(served) < 3 * 2


def test_lightning_fit_serves_new_epochs_and_resumes_mid_epoch(tmp_path, corpus):
    L = pytest.importorskip("lightning")

    class Data(L.LightningDataModule):
        def train_dataloader(self):
            ds = MmapBatcher(corpus, batch_size=20, seed=7).torch()
            return StatefulDataLoader(ds, batch_size=None, num_workers=2, timeout=TIMEOUT)

    class Model(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[tuple[int, tuple[bytes, ...]]] = []

        def training_step(self, batch, batch_idx):
            self.seen.append((self.current_epoch, tuple(batch)))
            return (self.w * len(batch)).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def trainer(*callbacks):
        return L.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=list(callbacks), default_root_dir=tmp_path)

    every = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=60, save_top_k=-1)
    model = Model()
    trainer(every).fit(model, Data())
    mmb = MmapBatcher(corpus, batch_size=20, seed=7)
    for e in range(3):
        assert [b for (epoch, b) in model.seen if epoch == e] == [tuple(b) for b in serial(mmb, e)], f"epoch {e}"
    (ckpt,) = (tmp_path / "ckpt").glob("*step=60*.ckpt")
    resumed = Model()
    trainer(L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "again")).fit(resumed, Data(), ckpt_path=ckpt)
    # Lightning's fit loop fetches one batch ahead (its _PrefetchDataFetcher, to know the last
    # batch), and the loader state in a checkpoint counts that batch as served: the resumed run
    # starts one batch after the checkpoint's step. Exact from there on.
    prefetched = 1
    assert resumed.seen == model.seen[60 + prefetched:]
