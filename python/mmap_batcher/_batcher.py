"""The seed-compatible ``MmapBatcher`` and its epochs."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ._native import ArrowBatch, NativeBatcher, NativeEpoch

if TYPE_CHECKING:
    import polars


def _comment_byte(comment_char: str | bytes | None) -> int | None:
    if comment_char is None:
        return None
    if isinstance(comment_char, str):
        if len(comment_char) != 1 or not comment_char.isascii():
            raise ValueError(f"comment_char must be one ASCII character or None, got {comment_char!r}")
        return ord(comment_char)
    if isinstance(comment_char, (bytes, bytearray)) and len(comment_char) == 1:
        return comment_char[0]
    raise ValueError(f"comment_char must be one ASCII character or None, got {comment_char!r}")


def _check_shard(name: str, index: int, count: int) -> None:
    if count < 1:
        raise ValueError(f"num_{name}s must be at least 1, got {count}")
    if not 0 <= index < count:
        raise ValueError(f"{name} {index} is out of range for {count} {name}s")


class MmapBatcher:
    """Batches of lines from a memory-mapped file, shuffled anew each epoch.

    The original API, with its defects fixed: the last line is served even without a
    trailing newline, no batch is ever empty, and shuffles are seeded::

        mmb = MmapBatcher("corpus.txt", batch_size=100, seed=1)
        for epoch in mmb.epochs(2):
            for batch in epoch.batches():  # list[bytes], lines with their "\\n"
                ...

    Args:
        filename: the line file (``str`` or ``os.PathLike``).
        batch_size: lines per batch (at least 1).
        shuffle: serve each epoch in a seeded random order; ``False`` serves file order.
        ignore_leftovers: drop the last partial batch of each epoch's order (a different
            tail each epoch when shuffled).
        skip_blank_lines: skip lines made only of ASCII whitespace.
        comment_char: skip lines whose first byte is this character; ``None`` disables it.
        seed: the shuffle seed; ``None`` picks one, readable as ``.seed``.
        keep_terminator: keep ``\\n`` / ``\\r\\n`` in the Arrow ``line`` column
            (``batches()`` always keeps it, as the original did).
        binary: type the Arrow ``line`` column as binary (no UTF-8 check) instead of string.
        worker_id, num_workers, rank, world_size: serve only this process's shard of each
            epoch: batches ``b`` with ``b % (world_size * num_workers) == rank * num_workers
            + worker_id``. All shards together serve each epoch's order exactly once.

    Epoch ``e``'s order depends only on ``(seed, e, number of kept lines)``: any process
    with the same file and seed computes the same order. Pickling sends the path, options,
    seed and shard, never the data; the receiving process maps and indexes the file again.
    ``len(mmb)`` is the number of kept (served) lines.

    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError: the file cannot be opened.
        ValueError: a bad argument (``batch_size`` 0, a multi-character ``comment_char``).
        LineTooLongError: a line over 2 GiB (the most one Arrow buffer addresses).
    """

    def __init__(
        self,
        filename: str | os.PathLike[str],
        batch_size: int = 100,
        shuffle: bool = True,
        ignore_leftovers: bool = True,
        skip_blank_lines: bool = True,
        comment_char: str | bytes | None = "#",
        seed: int | None = None,
        *,
        keep_terminator: bool = False,
        binary: bool = False,
        worker_id: int = 0,
        num_workers: int = 1,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if seed is not None and not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        _check_shard("worker", worker_id, num_workers)
        _check_shard("rank", rank, world_size)
        self._filename = os.fspath(filename)
        self._options = {
            "batch_size": batch_size,
            "shuffle": bool(shuffle),
            "ignore_leftovers": bool(ignore_leftovers),
            "skip_blank_lines": bool(skip_blank_lines),
            "comment_char": comment_char,
            "keep_terminator": bool(keep_terminator),
            "binary": bool(binary),
        }
        self._shard = (worker_id, num_workers, rank, world_size)
        self._native = NativeBatcher(
            self._filename,
            batch_size,
            bool(shuffle),
            bool(ignore_leftovers),
            bool(skip_blank_lines),
            _comment_byte(comment_char),
            seed,
            bool(keep_terminator),
            bool(binary),
        )

    # -- properties -------------------------------------------------------------------
    @property
    def filename(self) -> str:
        """The path the file was opened with."""
        return self._filename

    @property
    def seed(self) -> int:
        """The shuffle seed in use (the one given, or the one picked at open)."""
        return self._native.seed

    @property
    def batch_size(self) -> int:
        """Lines per batch."""
        return self._options["batch_size"]

    @property
    def num_lines(self) -> int:
        """Kept (served) lines in the file."""
        return self._native.num_lines

    @property
    def physical_lines(self) -> int:
        """All lines of the file, skipped ones included."""
        return self._native.physical_lines

    @property
    def num_batches(self) -> int:
        """Batches in one whole epoch (all shards together)."""
        return self._native.num_batches

    @property
    def shard(self) -> tuple[int, int]:
        """``(index, count)`` of this batcher's shard among ranks × workers."""
        worker_id, num_workers, rank, world_size = self._shard
        return rank * num_workers + worker_id, world_size * num_workers

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
        return self._native.closed

    def __len__(self) -> int:
        return self._native.num_lines

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.num_lines} lines"
        return f"MmapBatcher({self._filename!r}, batch_size={self.batch_size}, seed={self._native.seed if not self.closed else '?'}, {state})"

    # -- epochs -----------------------------------------------------------------------
    def epoch(self, index: int) -> Epoch:
        """Epoch ``index`` (any epoch, in any order: each is a pure function of the seed)."""
        if index < 0:
            raise ValueError(f"epoch must be >= 0, got {index}")
        return Epoch(self._native.epoch(index), self.shard)

    def epochs(self, n: int, start: int = 0) -> Iterator[Epoch]:
        """Epochs ``start`` .. ``start + n - 1``. Each checks first that the file is unchanged."""
        for e in range(start, start + n):
            yield self.epoch(e)

    def with_shard(self, worker_id: int = 0, num_workers: int = 1, rank: int = 0, world_size: int = 1) -> MmapBatcher:
        """This batcher (same map, same seed) restricted to another shard. No re-indexing."""
        _check_shard("worker", worker_id, num_workers)
        _check_shard("rank", rank, world_size)
        other = object.__new__(MmapBatcher)
        other.__dict__.update(self.__dict__)
        other._shard = (worker_id, num_workers, rank, world_size)
        return other

    def validate_utf8(self) -> None:
        """Check once (cached) that every served line is UTF-8; raise ``InvalidUtf8Error`` if not."""
        self._native.validate_utf8()

    def map_address_range(self) -> tuple[int, int]:
        """``(start, end)`` addresses of the mapping: zero-copy buffers lie inside it."""
        return self._native.map_address_range()

    # -- lifetime ---------------------------------------------------------------------
    def close(self) -> None:
        """Release this object's reference to the map. Live Arrow batches keep theirs."""
        self._native.close()

    def __enter__(self) -> MmapBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        worker_id, num_workers, rank, world_size = self._shard
        kwargs = dict(self._options, seed=self._native.seed, worker_id=worker_id,
                      num_workers=num_workers, rank=rank, world_size=world_size)
        return (_restore, (self._filename, kwargs))


def _restore(filename: str, kwargs: dict[str, Any]) -> MmapBatcher:
    return MmapBatcher(filename, **kwargs)


class Epoch:
    """One epoch: a fixed order of the kept lines, cut into batches (this shard's only)."""

    def __init__(self, native: NativeEpoch, shard: tuple[int, int]) -> None:
        self._native = native
        self._batch_ids = native.shard_batches(*shard)

    @property
    def index(self) -> int:
        """The epoch number."""
        return self._native.index

    @property
    def batch_ids(self) -> list[int]:
        """The batch numbers this shard serves, in order."""
        return list(self._batch_ids)

    def __len__(self) -> int:
        return len(self._batch_ids)

    def batches(self) -> Iterator[list[bytes]]:
        """Each batch as ``list[bytes]``, lines with their terminator. Works on any bytes."""
        # Batch b + 1 is located on a second thread while the caller works on batch b.
        yield from self._native.iter_batch_lines(self._batch_ids)

    def record_batches(self, columns: Sequence[str] | None = None, *, compact: bool = False) -> Iterator[ArrowBatch]:
        """Each batch as an Arrow batch (``line``, ``line_number``, ``byte_offset``, ``epoch``, ``batch``).

        The ``line`` views point into the map; pass the batch to ``pyarrow.record_batch``
        or ``polars.DataFrame`` to use it without copying. ``compact=True`` copies only the
        referenced bytes (for consumers that account memory by buffer size). Raises
        ``InvalidUtf8Error`` on the string path if a served line is not UTF-8.
        """
        cols = list(columns) if columns is not None else None
        native = self._native
        for b in self._batch_ids:
            yield native.record_batch(b, cols, compact)

    def dataframes(self, columns: Sequence[str] | None = None) -> Iterator[polars.DataFrame]:
        """Each batch as a ``polars.DataFrame`` (zero-copy import of the Arrow batch)."""
        import polars as pl

        for rb in self.record_batches(columns):
            yield pl.DataFrame(rb)

    def __repr__(self) -> str:
        return f"Epoch(index={self.index}, batches={len(self)})"
