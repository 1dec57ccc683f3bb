"""Ray Data: epochs of a line corpus as a ``ray.data.Dataset``, read by tasks on any node.

    import ray
    from mmap_batcher.ray import read_lines
    ds = read_lines("corpus.txt", epochs=2, batch_size=1024, seed=1)
    for batch in ds.iter_batches(batch_size=4096):
        ...

The driver opens the corpus once (indexing it, or mapping its index file) and fixes the
seed; each read task is a contiguous run of the epochs' ``(epoch, batch)`` units, opens the
files itself on the node that runs it (cheap with the persisted index beside the files on
a shared file system) and yields one Arrow block per batch. Blocks cross Ray's object store,
so their lines are copied to ``large_string`` (``layout="large"``, the default) or
compacted views (``"view"``): a zero-copy block would report, and serialise, its whole
mapped window.

Order: blocks come in each task's serial order; Ray runs tasks in parallel, so rows keep the
epochs' order only with ``ray.data.DataContext.get_current().execution_options.preserve_order = True``.
Ray's supported range here: 2.60 (``Datasource.get_read_tasks(parallelism,
per_task_row_limit, data_context)``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ._native import MmapBatcher

if TYPE_CHECKING:
    import pyarrow
    import ray.data

try:
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask
except ImportError as e:  # pragma: no cover - a clear message rather than a bare ImportError
    raise ImportError("mmap_batcher.ray needs Ray Data: pip install 'ray[data]'") from e


class LinesDatasource(Datasource):
    """A ``ray.data.Datasource`` of the epochs of a line corpus (see the module docs)."""

    def __init__(
        self,
        batcher: MmapBatcher,
        epochs: int,
        layout: Literal["large", "view"] = "large",
        *,
        line_type: Literal["large", "view"] | None = None,
    ) -> None:
        super().__init__()
        layout = _renamed(layout, line_type, "large")
        if layout not in ("large", "view"):
            raise ValueError(f"layout must be 'large' or 'view', got {layout!r}")
        self._batcher = batcher
        self._epochs = epochs
        self._layout: Literal["large", "view"] = layout
        self._files = tuple(str(f) for f in batcher.paths)
        self._bytes = sum(os.path.getsize(f) for f in self._files) if self._files[0] != "-" else 0

    def get_name(self) -> str:
        return "MmapBatcherLines"

    def estimate_inmemory_data_size(self) -> int | None:
        return self._bytes * self._epochs

    def _schema(self) -> pyarrow.Schema:
        import pyarrow as pa

        empty = self._batcher._empty_batch()
        return pa.record_batch(empty.to_large() if self._layout == "large" else empty).schema

    def get_read_tasks(
        self,
        parallelism: int,
        per_task_row_limit: int | None = None,
        data_context: Any = None,
    ) -> list[ReadTask]:
        schema = self._schema()
        lines_total = max(1, self._batcher.lines_per_epoch * self._epochs)
        tasks = []
        for start, end, rows in self._batcher._unit_splits(self._epochs, max(1, parallelism)):
            if start == end:
                continue
            read = _Read(self._batcher, self._epochs, (start, end), self._layout)
            meta = BlockMetadata(
                num_rows=rows,
                size_bytes=int(self._bytes * self._epochs * rows / lines_total),
                exec_stats=None,
                input_files=self._files,
            )
            tasks.append(ReadTask(read, meta, schema=schema, per_task_row_limit=per_task_row_limit))
        return tasks


class _Read:
    """One read task: a picklable callable (the batcher pickles as its paths and options)."""

    def __init__(self, batcher: MmapBatcher, epochs: int, units: tuple[int, int], layout: Literal["large", "view"]) -> None:
        self.batcher, self.epochs, self.units, self.layout = batcher, epochs, units, layout

    def __call__(self) -> Iterator[pyarrow.Table]:
        import pyarrow as pa

        b = self.batcher
        # Blocks of at least 8,192 rows (several batches joined): Ray pays per block.
        batches = b._scan(b.columns, (0, self.epochs), (0, b.num_batches), self.units, self.layout, join_rows=8192)
        for ab in batches:
            yield pa.table(ab if self.layout == "large" else ab.compact())


def _renamed(layout: Literal["large", "view"], line_type: Literal["large", "view"] | None, default: str) -> Literal["large", "view"]:
    """``layout``, or the deprecated ``line_type`` with a warning."""
    if line_type is None:
        return layout
    if layout != default:
        raise ValueError("line_type is the deprecated spelling of layout: pass only layout")
    warnings.warn("line_type= is deprecated, use layout=", DeprecationWarning, stacklevel=3)
    return line_type


def read_lines(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    epochs: int = 1,
    batch_size: int = 1024,
    seed: int | None = None,
    shuffle: bool | Literal["global", "block", "none"] = True,
    ignore_leftovers: bool = False,
    layout: Literal["large", "view"] = "large",
    override_num_blocks: int | None = None,
    line_type: Literal["large", "view"] | None = None,
    **options: Any,
) -> ray.data.Dataset:
    """``epochs`` epochs of the line files as a ``ray.data.Dataset`` (see the module docs).

    Columns as ``MmapBatcher``'s Arrow batches; ``line`` is ``large_string`` (or compacted
    ``string_view`` with ``layout="view"``; ``line_type=`` is its deprecated spelling).
    Leftovers are kept (every line is read);
    other keywords (``shuffle_block``, ``skip_blank_lines``, ...) go to ``MmapBatcher``.
    """
    import ray.data

    batcher = MmapBatcher(
        paths, batch_size=batch_size, seed=seed, shuffle=shuffle, ignore_leftovers=ignore_leftovers, **options
    )
    source = LinesDatasource(batcher, epochs, _renamed(layout, line_type, "large"))
    return ray.data.read_datasource(source, override_num_blocks=override_num_blocks)
