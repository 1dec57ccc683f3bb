"""PyTorch: ``mmb.torch()``, a ``torch.utils.data.IterableDataset`` over a batcher.

Hand it to a ``DataLoader`` (or torchdata's ``StatefulDataLoader``) with ``batch_size=None``:
an item is one batch of the epoch (``collate_fn=keep_batch`` spares the loader walking every
line of it). ::

    loader = DataLoader(mmb.torch(), batch_size=None, collate_fn=keep_batch, num_workers=4)
    for epoch in range(3):
        for batch in loader:  # list[bytes]; each pass serves the next epoch
            ...

**Shards.** Every process serves shard ``rank * W + worker`` of ``world_size * W`` of each
epoch (``W`` the loader's ``num_workers``): the rank and world size come from the
``torch(rank=, world_size=)`` arguments, else from the batcher's own shard, else from
``torch.distributed`` when it is initialised; the worker from ``get_worker_info()``. So the
epoch is served exactly once across workers and ranks (``even_shards=True`` on the batcher:
every rank the same number of batches, as DDP needs).

**Epochs.** Each pass over the loader serves the next epoch, with or without
``set_epoch``: the loader's workers are fresh copies of the dataset each pass (or, with
``persistent_workers=True``, copies made once), so they agree on the epoch through a small
block of shared memory that the dataset creates (the *epoch clock*). The workers of one pass
are told apart from the next pass's by the loader's per-pass seed and by each worker's own
count of passes; the first worker of a pass takes the clock's next epoch and advances it.
``set_epoch(e)`` makes the next pass serve epoch ``e`` (the ``DistributedSampler``
convention, and it reaches persistent workers). A copy pickled other than into a worker
process (``pickle.dumps``) keeps its own clock from where the original was.

**State.** ``state_dict()`` in a worker is that worker's batcher state (a few integers, see
``MmapBatcher.state_dict``); ``StatefulDataLoader`` collects them, and its
``load_state_dict`` hands each worker its own back, so a resume with the same layout is
exact. ``resume_from(state)`` resumes another layout from a loader's state (or a list of
them, or batcher states): with ``lockstep=True`` one rank's state stands for every rank's
(DDP, where only rank 0's checkpoint is kept).
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.context
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple, cast

import torch
import torch.distributed
from torch.utils.data import IterableDataset, get_worker_info

from ._native import ArrowBatch, MmapBatcher, OptionError

__all__ = ["LineTensors", "TorchDataset", "batcher_states", "keep_batch"]

_OUTPUTS = ("bytes", "arrow", "polars", "tensor")
_Native = Literal["bytes", "arrow", "polars"]


class LineTensors(NamedTuple):
    """One batch as tensors: every line's bytes end to end (``uint8``) and ``len + 1``
    ``int64`` offsets (line ``i`` is ``data[offsets[i]:offsets[i + 1]]``), with the epoch
    and batch numbers. Lines are the Arrow ``line`` column (without the terminator unless
    the batcher keeps it). ``pin_memory=True`` pins both tensors."""

    data: torch.Tensor
    offsets: torch.Tensor
    epoch: int
    batch: int

    def line(self, i: int) -> bytes:
        """Line ``i`` as bytes."""
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return bytes(self.data[start:end].numpy())

    @property
    def num_lines(self) -> int:
        return int(self.offsets.numel()) - 1


def keep_batch(batch: Any) -> Any:
    """A ``collate_fn`` that hands each batch over as it is: ``DataLoader(ds,
    batch_size=None, collate_fn=keep_batch)``. The default (``default_convert``) walks every
    line of a ``list[bytes]`` to look for arrays to convert, about 2.4 µs a line: 8× the cost
    of building the batch (see the benchmarks)."""
    return batch


def _tensors(batch: ArrowBatch) -> LineTensors:
    values, offsets = batch.line_buffers()
    data = torch.frombuffer(values, dtype=torch.uint8) if len(values) else torch.empty(0, dtype=torch.uint8)
    return LineTensors(data, torch.frombuffer(offsets, dtype=torch.int64), batch.epoch, batch.batch)


# The clock's integers; the worker slots follow.
_NEXT_EPOCH, _SERIAL, _KEY_SEED, _KEY_PASS, _WORKERS, _PASS_EPOCH, _PENDING_LEN, _RESUME_LEN = range(8)
_SLOTS = 8
_MAX_WORKERS = 1024
_STATE_BYTES = 1 << 16


class _EpochClock:
    """Which epoch each pass serves, agreed by the processes of one pass (see the module
    docs). Lives in shared memory made from the ``spawn`` context, so that it reaches
    workers started by ``fork`` (inherited), ``spawn`` and ``forkserver`` (passed with the
    dataset when the worker starts)."""

    def __init__(self, next_epoch: int, pending: dict[str, Any] | None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._lock = ctx.Lock()
        self._ints = ctx.RawArray("q", _SLOTS + _MAX_WORKERS)
        self._pending = ctx.RawArray("B", _STATE_BYTES)
        self._resume = ctx.RawArray("B", _STATE_BYTES)
        self._ints[_NEXT_EPOCH] = next_epoch
        self._ints[_KEY_SEED] = self._ints[_KEY_PASS] = -1
        if pending is not None:
            self.set_pending(pending)

    def __getstate__(self) -> dict[str, Any]:
        if multiprocessing.context.get_spawning_popen() is not None:
            return {"shared": (self._lock, self._ints, self._pending, self._resume)}
        # Not into a worker: a detached clock, from where this one is.
        with self._lock:
            return {"next_epoch": self._ints[_NEXT_EPOCH], "pending": self._read(self._pending, _PENDING_LEN)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "shared" in state:
            self._lock, self._ints, self._pending, self._resume = state["shared"]
        else:
            pending = state["pending"]
            self.__init__(state["next_epoch"], None if pending is None else json.loads(pending))  # type: ignore[misc]

    def _read(self, buf: Any, length_slot: int) -> bytes | None:
        n = self._ints[length_slot]
        return bytes(buf[:n]) if n > 0 else None

    def _write(self, buf: Any, length_slot: int, data: bytes | None) -> None:
        if data is None:
            self._ints[length_slot] = 0
            return
        if len(data) > _STATE_BYTES:
            raise OptionError(f"a resume state of {len(data)} bytes is larger than the {_STATE_BYTES} the epoch clock holds")
        buf[: len(data)] = data
        self._ints[length_slot] = len(data)

    def set_next(self, epoch: int) -> None:
        with self._lock:
            self._ints[_NEXT_EPOCH] = epoch
            self._ints[_PENDING_LEN] = 0
            self._ints[_KEY_SEED] = self._ints[_KEY_PASS] = -1

    def set_pending(self, state: dict[str, Any]) -> None:
        data = json.dumps(state).encode()
        with self._lock:
            self._write(self._pending, _PENDING_LEN, data)
            self._ints[_NEXT_EPOCH] = int(state["epoch"])
            self._ints[_KEY_SEED] = self._ints[_KEY_PASS] = -1

    def peek(self) -> tuple[int, dict[str, Any] | None]:
        """The next pass's epoch and the state it resumes from, if any."""
        with self._lock:
            pending = self._read(self._pending, _PENDING_LEN)
            return self._ints[_NEXT_EPOCH], None if pending is None else json.loads(pending)

    def join(self, worker: int, workers: int, key: tuple[int, int] | None, loaded_epoch: int | None) -> tuple[int, bytes | None]:
        """Joins worker ``worker`` of ``workers`` to its pass (``key`` names the pass; ``None``
        in the main process, where every pass is new) and returns the pass's epoch and the
        state it resumes from."""
        if not 0 <= worker < workers <= _MAX_WORKERS:
            raise OptionError(f"at most {_MAX_WORKERS} DataLoader workers per process (got {workers})")
        ints = self._ints
        with self._lock:
            new = (
                key is None
                or (ints[_KEY_SEED], ints[_KEY_PASS]) != key
                or ints[_WORKERS] != workers
                or ints[_SLOTS + worker] == ints[_SERIAL]
            )
            if new:
                ints[_SERIAL] += 1
                ints[_KEY_SEED], ints[_KEY_PASS] = key if key is not None else (-1, -1)
                ints[_WORKERS] = workers
                resume = None
                if loaded_epoch is not None:
                    epoch = loaded_epoch
                else:
                    resume = self._read(self._pending, _PENDING_LEN)
                    epoch = json.loads(resume)["epoch"] if resume is not None else ints[_NEXT_EPOCH]
                self._write(self._resume, _RESUME_LEN, resume)
                ints[_PENDING_LEN] = 0
                ints[_PASS_EPOCH] = epoch
                ints[_NEXT_EPOCH] = epoch + 1
            ints[_SLOTS + worker] = ints[_SERIAL]
            return ints[_PASS_EPOCH], self._read(self._resume, _RESUME_LEN)


def batcher_states(state: Any) -> list[dict[str, Any]]:
    """The batcher states in ``state``: one batcher state, a ``StatefulDataLoader`` state
    (its workers' dataset states, or its own in a single-process loader), or a list of them
    (a Lightning checkpoint's ``combined_loader`` list)."""
    if isinstance(state, (list, tuple)):
        return [s for part in state for s in batcher_states(part)]
    if not isinstance(state, dict):
        raise OptionError(f"not a resume state: {type(state).__name__}")
    if "format" in state and "shard" in state:
        return [state]
    if "_snapshot" in state:
        workers = state["_snapshot"].get("_worker_snapshots", {})
        found = [w.get("dataset_state") for _, w in sorted(workers.items(), key=lambda kv: kv[1].get("worker_id", 0))]
        return [s for part in found if part is not None for s in batcher_states(part)]
    if "dataset_state" in state and state["dataset_state"] is not None:
        return batcher_states(state["dataset_state"])
    raise OptionError("no batcher state found in this state (expected a batcher or StatefulDataLoader state)")


class _Pass(Iterator[Any]):
    """One pass of one process: the shard batcher's iteration, counted for ``state_dict``."""

    def __init__(self, dataset: TorchDataset, batches: Iterator[Any]) -> None:
        self._dataset = dataset
        self._batches = batches

    def __next__(self) -> Any:
        batch = next(self._batches)
        self._dataset._served += 1
        output = self._dataset.output
        if output == "tensor":
            return _tensors(batch)
        if output in ("arrow", "polars") and get_worker_info() is not None:
            # Copied here, under the batcher's truncation guard, rather than read from the
            # map later by the loader's pickling thread, which no guard covers.
            batch = batch.compact()
        if output == "polars":
            import polars

            return polars.DataFrame(batch)
        return batch


class TorchDataset(IterableDataset[Any]):
    """A batcher as a ``torch.utils.data.IterableDataset``: ``DataLoader(ds,
    batch_size=None, num_workers=W)`` yields this process's batches of one epoch per pass.
    Made by ``MmapBatcher.torch()``; see the module docs for shards, epochs and state.

    Args:
        batcher: the batcher (its shard, if it has one, is split further).
        rank, world_size: this process's rank among ``world_size`` (default: the batcher's
            shard, else ``torch.distributed`` when initialised, else 0 of 1).
        output: ``"bytes"`` (``list[bytes]``), ``"arrow"`` (``ArrowBatch``, pickled compact
            across the worker boundary), ``"polars"`` or ``"tensor"`` (``LineTensors``);
            default: the batcher's ``output``.
    """

    def __init__(
        self,
        batcher: MmapBatcher,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        output: Literal["bytes", "arrow", "polars", "tensor"] | None = None,
    ) -> None:
        if (rank is None) != (world_size is None):
            raise OptionError("give rank and world_size together")
        if output is not None and output not in _OUTPUTS:
            raise OptionError(f"output must be one of {', '.join(map(repr, _OUTPUTS))}, got {output!r}")
        self.batcher = batcher
        self.output = output or batcher.output
        # Polars frames are made from the Arrow batch by the pass (compacted first in a worker).
        native = cast(_Native, "arrow" if self.output in ("tensor", "polars") else self.output)
        self._base = batcher.with_shard(output=native)
        self._explicit = None if rank is None else (int(rank), int(world_size))  # type: ignore[arg-type]
        if self._explicit is not None:
            batcher.with_shard(rank=self._explicit[0], world_size=self._explicit[1])  # checks the numbers
        state = batcher.state_dict()
        fresh = state["done"] == 0 and state["base"] == {"position": 0}
        self._clock = _EpochClock(batcher.epoch_number, None if fresh else state)
        self._passes = 0
        self._loaded: dict[str, Any] | None = None
        self._start: dict[str, Any] | None = None
        self._served = 0
        self._rank: tuple[int, int] | None = None

    # -- where this process stands ---------------------------------------------------------

    def _process_shard(self) -> tuple[int, int]:
        """(index, count) of this process among all processes, before the worker split."""
        if self._rank is not None:
            return self._rank
        own = self.batcher.shard
        if self._explicit is not None:
            rank, world = self._explicit
            return rank * own[1] + own[0], world * own[1]
        if own != (0, 1):
            return own
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def _shard_batcher(self, worker: int, workers: int) -> MmapBatcher:
        index, count = self._process_shard()
        return self._base.with_shard(worker_id=worker, num_workers=workers, rank=index, world_size=count)

    @property
    def shard(self) -> tuple[int, int]:
        """``(index, count)`` of the shard this process serves (in a worker: the worker's)."""
        info = get_worker_info()
        b = self._shard_batcher(0, 1) if info is None else self._shard_batcher(info.id, info.num_workers)
        return b.shard

    @property
    def epoch_number(self) -> int:
        """The epoch the next pass serves."""
        return self._clock.peek()[0]

    # -- the DataLoader protocol --------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        if info is None:
            worker, workers, key = 0, 1, None
        else:
            worker, workers, key = info.id, info.num_workers, (info.seed - info.id, self._passes)
        self._passes += 1
        loaded, self._loaded = self._loaded, None
        epoch, resume = self._clock.join(worker, workers, key, None if loaded is None else int(loaded["epoch"]))
        shard = self._shard_batcher(worker, workers)
        if loaded is not None:
            shard.load_state_dict(loaded)
        elif resume is not None:
            shard.load_state_dict(json.loads(resume))
        else:
            shard.set_epoch(epoch)
        self._start = shard.state_dict()
        self._served = 0
        return _Pass(self, iter(shard))

    def set_epoch(self, epoch: int) -> None:
        """Makes the next pass serve epoch ``epoch`` from its start (reaches persistent workers)."""
        if epoch < 0:
            raise OptionError(f"epoch must be >= 0, got {epoch}")
        self._clock.set_next(epoch)

    def state_dict(self) -> dict[str, Any]:
        """This process's position: in a worker (or a single-process loader), the batcher
        state of its shard after the batches it handed out; before any pass, where the next
        pass starts."""
        if self._start is not None:
            return dict(self._start, done=self._start["done"] + self._served)
        epoch, pending = self._clock.peek()
        if pending is not None:
            return pending
        b = self._shard_batcher(0, 1)
        b.set_epoch(epoch)
        return b.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """In a worker (``StatefulDataLoader`` restoring it): its next pass resumes from
        ``state``, its own shard's. In the main process: the next pass of every worker does,
        so ``state`` must be this process's own (a single-process loader) or a combined one."""
        if get_worker_info() is not None:
            self._loaded = state
        else:
            self._start = None
            self._clock.set_pending(state)

    def resume_from(self, state: Any, *, lockstep: bool = False) -> None:
        """Makes the next pass resume, in whatever layout this loader has, from ``state``:
        a ``StatefulDataLoader`` state, a list of them (one per rank), or batcher states.
        Without ``lockstep``, the states of every worker of every rank are needed (they are
        combined, see ``MmapBatcher.combine_states``); with ``lockstep=True``, one rank's
        loader state stands for every rank's (the ranks ran in lockstep, as DDP with
        ``even_shards`` does)."""
        states = batcher_states(state)
        if not lockstep and len(states) == 1 and states[0]["shard"]["count"] == 1:
            combined = states[0]
        else:
            combined = self.batcher.combine_states(states, lockstep=lockstep)
        self.load_state_dict(combined)

    # -- pickling -------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if multiprocessing.context.get_spawning_popen() is not None:
            # Into a worker: fix the rank here, where torch.distributed is initialised.
            state["_rank"] = self._process_shard()
        state["_start"], state["_served"] = None, 0
        del state["_base"]  # the same map as `batcher`: made again from it, not reopened
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._base = self.batcher.with_shard(output=cast(_Native, "arrow" if self.output == "tensor" else self.output))

    def __repr__(self) -> str:
        return f"TorchDataset({self.batcher!r}, output={self.output!r}, next epoch {self.epoch_number})"
